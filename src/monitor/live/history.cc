// Monitoring history: the stored window reports of a model as time series in
// HTML (keel/monitor/history.h).
#include "keel/monitor/history.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>

#include "keel/core/json.h"
#include "src/monitor/format.h"

namespace keel::monitor {
namespace {

using internal::HtmlEscape;
using internal::Num;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double DoubleAt(simdjson::dom::element e, std::string_view key) {
  double v = kNaN;
  if (e[key].get_double().get(v)) return kNaN;
  return v;
}

std::string Clock(int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%m-%d %H:%M", &tm);
  return buf;
}

// One small line chart: several series over the same times, an optional
// horizontal threshold, min/max labels. NaN points are gaps.
std::string LineChart(const std::string& title, const std::vector<int64_t>& times,
                      const std::vector<std::pair<std::string, std::vector<double>>>& series,
                      double threshold = kNaN) {
  constexpr double kW = 360, kH = 110, kLeft = 4, kTop = 6;
  double lo = std::isnan(threshold) ? kNaN : threshold;
  double hi = lo;
  for (const auto& [name, values] : series) {
    for (double v : values) {
      if (std::isnan(v)) continue;
      lo = std::isnan(lo) ? v : std::min(lo, v);
      hi = std::isnan(hi) ? v : std::max(hi, v);
    }
  }
  std::string svg = "<section><h3>" + HtmlEscape(title) + "</h3>";
  if (times.empty() || std::isnan(lo)) return svg + "<p class=muted>no values</p></section>";
  if (!(hi - lo > 0)) hi = lo + std::max(1.0, std::fabs(lo) * 1e-9);
  const int64_t t0 = times.front();
  const int64_t t1 = times.back() > t0 ? times.back() : t0 + 1;
  auto x = [&](int64_t t) {
    return kLeft + (kW - 2 * kLeft) * static_cast<double>(t - t0) / static_cast<double>(t1 - t0);
  };
  auto y = [&](double v) { return kTop + (kH - 2 * kTop) * (1 - (v - lo) / (hi - lo)); };
  svg += "<svg width=\"360\" height=\"130\" viewBox=\"0 0 360 130\" role=img>";
  static const char* kColors[] = {"#4a78b5", "#e8883a", "#2e9e5b", "#9b59b6"};
  size_t color = 0;
  for (const auto& [name, values] : series) {
    std::string path;
    std::string dots;  // points with no neighbour: a path would not show them
    const std::string colour = kColors[color++ % 4];
    bool pen = false;
    const size_t m = std::min(times.size(), values.size());
    for (size_t i = 0; i < m; ++i) {
      if (std::isnan(values[i])) {
        pen = false;
        continue;
      }
      char buf[128];
      std::snprintf(buf, sizeof buf, "%s%.1f %.1f", pen ? " L" : " M", x(times[i]), y(values[i]));
      path += buf;
      const bool next = i + 1 < m && !std::isnan(values[i + 1]);
      if (!pen && !next) {
        std::snprintf(buf, sizeof buf, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2\" fill=\"%s\"/>",
                      x(times[i]), y(values[i]), colour.c_str());
        dots += buf;
      }
      pen = true;
    }
    svg += "<path fill=none stroke=\"" + colour + "\" stroke-width=1.5 d=\"" + path +
           "\"><title>" + HtmlEscape(name) + "</title></path>" + dots;
  }
  if (!std::isnan(threshold)) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"0\" x2=\"360\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#c0392b\" "
                  "stroke-dasharray=\"4 3\"><title>threshold %s</title></line>",
                  y(threshold), y(threshold), Num(threshold).c_str());
    svg += buf;
  }
  svg += "<text x=\"0\" y=\"126\">" + Clock(t0) + "</text><text x=\"360\" y=\"126\" "
         "text-anchor=end>" + Clock(t1) + "</text><text x=\"358\" y=\"12\" text-anchor=end>" +
         Num(hi) + "</text><text x=\"358\" y=\"104\" text-anchor=end>" + Num(lo) + "</text>";
  svg += "</svg><div class=muted>";
  color = 0;
  for (const auto& [name, values] : series) {
    svg += "<span style=\"color:" + std::string(kColors[color++ % 4]) + "\">&#9632;</span> " +
           HtmlEscape(name) + " ";
  }
  return svg + "</div></section>";
}

}  // namespace

Result<std::string> HistoryHtml(std::span<const StoredWindow> windows, size_t max_columns) {
  struct Point {
    int64_t t;
    simdjson::dom::element report;
  };
  // Oldest first.
  std::vector<const StoredWindow*> ordered;
  for (const StoredWindow& w : windows) ordered.push_back(&w);
  std::sort(ordered.begin(), ordered.end(),
            [](const StoredWindow* a, const StoredWindow* b) { return a->to_ms < b->to_ms; });
  std::vector<int64_t> times;
  for (const StoredWindow* w : ordered) times.push_back(w->to_ms);
  // One parser, reused: each report is read and dropped (memory stays that of
  // one report, not of all of them).
  simdjson::dom::parser parser;
  size_t unreadable = 0;
  const size_t n = ordered.size();
  std::vector<double> share(n, kNaN), p99(n, kNaN), volume(n, kNaN);
  std::map<std::string, std::vector<double>> live, estimated;
  std::map<std::string, double> validation;
  std::map<std::string, std::vector<double>> column_scores;
  std::map<std::string, double> column_threshold;
  std::map<std::string, double> column_worst;  // max score / threshold, to pick the columns shown
  for (size_t i = 0; i < n; ++i) {
    simdjson::dom::element r;
    if (parser.parse(ordered[i]->report_json).get(r) || !r.is_object()) {
      ++unreadable;  // a gap in every series
      continue;
    }
    simdjson::dom::element drift, perf, ops, dataset;
    const bool has_drift = !r["drift"].get(drift);
    if (has_drift && !drift["dataset"].get(dataset)) share[i] = DoubleAt(dataset, "share");
    if (!r["operational"].get(ops)) {
      volume[i] = DoubleAt(ops, "predictions");
      simdjson::dom::element lat;
      if (!ops["latency_us"].get(lat)) p99[i] = DoubleAt(lat, "p99");
    }
    if (!r["performance"].get(perf)) {
      for (const auto& [key, target] : {std::pair{"live", &live}, std::pair{"estimated", &estimated}}) {
        simdjson::dom::object obj;
        if (perf[key].get_object().get(obj)) continue;
        for (auto field : obj) {
          double v;
          if (field.value.get_double().get(v)) continue;
          auto& s = (*target)[std::string(field.key)];
          s.resize(n, kNaN);
          s[i] = v;
        }
      }
      simdjson::dom::object ref;
      if (!perf["reference"].get_object().get(ref)) {
        for (auto field : ref) {
          double v;
          if (!field.value.get_double().get(v)) validation[std::string(field.key)] = v;
        }
      }
    }
    simdjson::dom::array columns;
    if (has_drift && !drift["columns"].get_array().get(columns)) {
      for (simdjson::dom::element c : columns) {
        std::string_view name, direction;
        if (c["name"].get_string().get(name)) continue;
        const double score = DoubleAt(c, "score");
        const double threshold = DoubleAt(c, "threshold");
        if (c["direction"].get_string().get(direction)) direction = "distance";
        auto& s = column_scores[std::string(name)];
        s.resize(n, kNaN);
        s[i] = score;
        column_threshold[std::string(name)] = threshold;
        // How far past its threshold the column went (p-values: smaller is worse).
        const double badness = std::isnan(score)         ? kNaN
                               : direction == "p_value" ? (score > 0 ? threshold / score : 1e300)
                                                        : score / threshold;
        if (!std::isnan(badness)) {
          double& worst = column_worst[std::string(name)];
          worst = std::max(worst, badness);
        }
      }
    }
  }
  std::string h = "<h2>Over time (" + std::to_string(n) + " stored windows)</h2>";
  if (n == 0) {
    return h + "<p class=muted>No stored windows yet: keel server stores one per window length "
               "per hour.</p>";
  }
  h += "<div class=cols>";
  h += LineChart("Share of drifted features", times, {{"dataset drift share", share}});
  // Performance: auc when realised or estimated, else the first realised
  // metric, else the first estimated one.
  std::string metric = (live.count("auc") || estimated.count("auc")) ? "auc"
                       : !live.empty()                                ? live.begin()->first
                       : !estimated.empty()                           ? estimated.begin()->first
                                                                      : "";
  if (!metric.empty()) {
    std::vector<std::pair<std::string, std::vector<double>>> series;
    if (live.count(metric)) series.emplace_back("realised " + metric, live[metric]);
    if (estimated.count(metric)) series.emplace_back("estimated " + metric, estimated[metric]);
    const double v = validation.count(metric) ? validation[metric] : kNaN;
    h += LineChart("Performance: " + metric + " (validation " + Num(v) + " dashed)", times, series, v);
  }
  h += LineChart("Latency p99 (us)", times, {{"p99", p99}});
  h += LineChart("Predictions per window", times, {{"predictions", volume}});
  std::vector<std::pair<double, std::string>> worst;
  for (const auto& [name, badness] : column_worst) worst.emplace_back(-badness, name);
  std::sort(worst.begin(), worst.end());
  for (size_t k = 0; k < worst.size() && k < max_columns; ++k) {
    const std::string& name = worst[k].second;
    h += LineChart("Drift score: " + name, times, {{name, column_scores[name]}},
                   column_threshold[name]);
  }
  h += "</div>";
  if (unreadable > 0) {
    h += "<p class=muted>" + std::to_string(unreadable) +
         " stored reports could not be read and show as gaps.</p>";
  }
  if (worst.size() > max_columns) {
    h += "<p class=muted>" + std::to_string(worst.size() - max_columns) +
         " more columns stayed further from their thresholds.</p>";
  }
  return h;
}

}  // namespace keel::monitor
