// DriftReport renderings: JSON, a terminal table and a self-contained HTML
// page (keel/monitor/drift.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <tuple>
#include <utility>

#include "keel/core/json.h"
#include "keel/monitor/drift.h"
#include "src/monitor/format.h"

namespace keel::monitor {
namespace internal {

std::string Num(double v, const char* format) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string Percent(double share) {
  if (std::isnan(share)) return "-";
  return Num(100.0 * share, "%.1f") + "%";
}

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

void JsonNumber(JsonWriter& w, double v) {
  if (std::isfinite(v)) {
    w.Double(v);
  } else {
    w.Null();
  }
}

}  // namespace internal

namespace {

using internal::HtmlEscape;
using internal::JsonNumber;
using internal::Num;
using internal::Percent;


std::string_view DirectionName(Direction d) {
  return d == Direction::kPValue ? "p_value" : "distance";
}

void WriteHistogram(JsonWriter& w, const Histogram& h) {
  w.BeginObject();
  if (!h.edges.empty()) {
    w.Key("edges");
    w.BeginArray();
    for (double e : h.edges) JsonNumber(w, e);
    w.EndArray();
  } else {
    w.Key("labels");
    w.BeginArray();
    for (const std::string& l : h.labels) w.String(l);
    w.EndArray();
  }
  for (const auto& [key, counts] : {std::pair{"reference", &h.ref}, std::pair{"current", &h.cur}}) {
    w.Key(key);
    w.BeginArray();
    for (uint64_t c : *counts) w.Int(static_cast<int64_t>(c));
    w.EndArray();
  }
  w.EndObject();
}

std::string UnseenText(const UnseenCategories& u) {
  if (u.names.empty()) return "";
  std::string names;
  for (size_t i = 0; i < u.names.size() && i < 3; ++i) names += (i ? ", " : "") + u.names[i];
  if (u.names.size() > 3) names += ", ...";
  return std::to_string(u.names.size()) + " unseen (" + names + "; " + Percent(u.share) + " of rows)";
}

std::string VerdictText(const ColumnReport& c) {
  if (!c.error.empty()) return "error";
  return c.drift.drift ? "DRIFT" : "ok";
}

// Reference vs current shares as paired bars, with the bin in each bar's tooltip.
std::string HistogramSvg(const Histogram& h) {
  const size_t k = h.ref.size();
  if (k == 0) return "<p class=muted>no values</p>";
  uint64_t ref_total = 0;
  uint64_t cur_total = 0;
  for (size_t i = 0; i < k; ++i) {
    ref_total += h.ref[i];
    cur_total += h.cur[i];
  }
  auto share = [](uint64_t c, uint64_t total) {
    return total == 0 ? 0.0 : static_cast<double>(c) / static_cast<double>(total);
  };
  double top = 0;
  for (size_t i = 0; i < k; ++i) {
    top = std::max({top, share(h.ref[i], ref_total), share(h.cur[i], cur_total)});
  }
  if (top <= 0) top = 1;
  const double width = 360;
  const double height = 110;
  const double slot = width / static_cast<double>(k);
  std::string svg = "<svg width=\"360\" height=\"130\" viewBox=\"0 0 360 130\" role=img>";
  for (size_t i = 0; i < k; ++i) {
    std::string label;
    if (!h.edges.empty()) {
      label = "[" + Num(h.edges[i]) + ", " + Num(h.edges[i + 1]) + (i + 1 == k ? "]" : ")");
    } else {
      label = h.labels[i];
    }
    const double r = share(h.ref[i], ref_total);
    const double c = share(h.cur[i], cur_total);
    const double x = slot * static_cast<double>(i);
    const double bar = std::max(slot / 2 - 1, 0.5);
    std::string title = "<title>" + HtmlEscape(label) + ": reference " + Percent(r) + ", current " +
                        Percent(c) + "</title>";
    char buf[256];
    std::snprintf(buf, sizeof buf, "<g><rect class=r x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>",
                  x, height - r / top * height, bar, r / top * height);
    svg += buf;
    std::snprintf(buf, sizeof buf, "<rect class=c x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>",
                  x + bar, height - c / top * height, bar, c / top * height);
    svg += buf;
    svg += title + "</g>";
  }
  std::string left = h.edges.empty() ? h.labels.front() : Num(h.edges.front());
  std::string right = h.edges.empty() ? h.labels.back() : Num(h.edges.back());
  svg += "<text x=\"0\" y=\"126\">" + HtmlEscape(left.substr(0, 24)) + "</text>";
  svg += "<text x=\"360\" y=\"126\" text-anchor=end>" + HtmlEscape(right.substr(0, 24)) + "</text>";
  svg += "</svg>";
  return svg;
}

}  // namespace

std::string DriftReport::ToJson() const {
  JsonWriter w(4096 + columns.size() * 1024);
  w.BeginObject();
  w.Key("keel_drift_report");
  w.Int(1);
  w.Key("preset");
  w.String(preset);
  for (const auto& [key, name, rows] : {std::tuple{"reference", &reference_name, reference_rows},
                                        std::tuple{"current", &current_name, current_rows}}) {
    w.Key(key);
    w.BeginObject();
    w.Key("name");
    w.String(*name);
    w.Key("rows");
    w.Int(static_cast<int64_t>(rows));
    w.EndObject();
  }
  w.Key("dataset");
  w.BeginObject();
  w.Key("columns");
  w.Int(static_cast<int64_t>(dataset.columns));
  w.Key("drifted");
  w.Int(static_cast<int64_t>(dataset.drifted));
  w.Key("share");
  JsonNumber(w, dataset.share);
  w.Key("drift_share");
  JsonNumber(w, dataset.drift_share);
  w.Key("drift");
  w.Bool(dataset.drift);
  w.EndObject();
  w.Key("prediction_drift");
  if (prediction_index >= 0 && columns[static_cast<size_t>(prediction_index)].error.empty()) {
    w.Bool(columns[static_cast<size_t>(prediction_index)].drift.drift);
  } else {
    w.Null();
  }
  w.Key("columns");
  w.BeginArray();
  for (const ColumnReport& c : columns) {
    w.BeginObject();
    w.Key("name");
    w.String(c.name);
    w.Key("kind");
    w.String(ColumnKindName(c.kind));
    w.Key("role");
    w.String(ColumnRoleName(c.role));
    w.Key("rows");
    w.BeginObject();
    w.Key("reference");
    w.Int(static_cast<int64_t>(c.ref_rows));
    w.Key("current");
    w.Int(static_cast<int64_t>(c.cur_rows));
    w.EndObject();
    if (!c.error.empty()) {
      w.Key("error");
      w.String(c.error);
    }
    w.Key("test");
    w.String(c.drift.statistic);
    w.Key("direction");
    w.String(DirectionName(c.direction));
    w.Key("threshold");
    JsonNumber(w, c.drift.threshold);
    if (c.error.empty()) {
      w.Key("score");
      JsonNumber(w, c.drift.value.score);
      w.Key("statistic");
      JsonNumber(w, c.drift.value.statistic);
      if (c.drift.value.dof >= 0) {
        w.Key("dof");
        w.Int(c.drift.value.dof);
      }
      w.Key("drift");
      w.Bool(c.drift.drift);
    }
    w.Key("missing");
    w.BeginObject();
    w.Key("reference");
    JsonNumber(w, c.drift.missing.ref_share);
    w.Key("current");
    JsonNumber(w, c.drift.missing.cur_share);
    w.Key("change");
    JsonNumber(w, c.drift.missing.change);
    w.EndObject();
    if (c.kind == ColumnKind::kCategorical) {
      w.Key("unseen");
      w.BeginObject();
      w.Key("categories");
      w.BeginArray();
      for (const std::string& n : c.drift.unseen.names) w.String(n);
      w.EndArray();
      w.Key("rows");
      w.Int(static_cast<int64_t>(c.drift.unseen.rows));
      w.Key("share");
      JsonNumber(w, c.drift.unseen.share);
      w.EndObject();
    }
    w.Key("extra");
    w.BeginObject();
    for (const ExtraStatistic& e : c.extra) {
      w.Key(e.name);
      w.BeginObject();
      if (!e.error.empty()) {
        w.Key("error");
        w.String(e.error);
      } else {
        w.Key("score");
        JsonNumber(w, e.value.score);
        w.Key("statistic");
        JsonNumber(w, e.value.statistic);
        w.Key("drift");
        w.Bool(e.drift);
      }
      w.EndObject();
    }
    w.EndObject();
    w.Key("histogram");
    WriteHistogram(w, c.histogram);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::move(w).Take();
}

std::string DriftReport::ToText() const {
  std::vector<std::string> extra_names;
  for (const ColumnReport& c : columns) {
    for (const ExtraStatistic& e : c.extra) {
      if (std::find(extra_names.begin(), extra_names.end(), e.name) == extra_names.end()) {
        extra_names.emplace_back(e.name);
      }
    }
  }
  std::vector<std::string> header = {"column", "kind", "test", "score", "threshold", "drift",
                                     "missing ref->cur"};
  for (const std::string& n : extra_names) header.push_back(n);
  header.push_back("notes");
  std::vector<std::vector<std::string>> rows;
  for (const ColumnReport& c : columns) {
    std::vector<std::string> row;
    row.push_back(c.role == ColumnRole::kFeature ? c.name
                                                 : c.name + " (" + std::string(ColumnRoleName(c.role)) + ")");
    row.emplace_back(ColumnKindName(c.kind));
    row.emplace_back(c.drift.statistic);
    row.push_back(c.error.empty() ? Num(c.drift.value.score) : "-");
    row.push_back(Num(c.drift.threshold));
    row.push_back(VerdictText(c));
    row.push_back(Percent(c.drift.missing.ref_share) + " -> " + Percent(c.drift.missing.cur_share));
    for (const std::string& n : extra_names) {
      std::string cell = "-";
      for (const ExtraStatistic& e : c.extra) {
        if (e.name == n && e.error.empty()) cell = Num(e.value.score) + (e.drift ? "*" : "");
      }
      row.push_back(cell);
    }
    row.push_back(c.error.empty() ? UnseenText(c.drift.unseen) : c.error);
    rows.push_back(std::move(row));
  }
  std::vector<size_t> widths(header.size());
  for (size_t i = 0; i < header.size(); ++i) widths[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& row) {
    std::string l;
    for (size_t i = 0; i < row.size(); ++i) {
      l += row[i];
      if (i + 1 < row.size()) l += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header);
  std::vector<std::string> rule;
  for (size_t wd : widths) rule.push_back(std::string(wd, '-'));
  line(rule);
  for (const auto& row : rows) line(row);
  if (!extra_names.empty()) out += "(* beyond the statistic's default threshold)\n";
  out += "dataset drift: " + std::string(dataset.drift ? "YES" : "no") + " (" +
         std::to_string(dataset.drifted) + " of " + std::to_string(dataset.columns) +
         " features drifted, share " + Num(dataset.share, "%.3f") + ", threshold " +
         Num(dataset.drift_share, "%.3f") + "; preset " + preset + ")\n";
  if (prediction_index >= 0) {
    const ColumnReport& p = columns[static_cast<size_t>(prediction_index)];
    out += "prediction drift: " +
           (p.error.empty() ? std::string(p.drift.drift ? "YES" : "no") + " (" +
                                  std::string(p.drift.statistic) + " " + Num(p.drift.value.score) +
                                  ", threshold " + Num(p.drift.threshold) + ")"
                            : "not tested: " + p.error) +
           "\n";
  }
  return out;
}

std::string DriftReport::ToHtml(std::string_view title, std::string_view extra_html) const {
  std::string h;
  h.reserve(8192 + columns.size() * 4096);
  h += "<!doctype html><html><head><meta charset=utf-8><title>keel report</title><style>"
       "body{font:14px system-ui,sans-serif;margin:24px;color:#222}"
       "table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;"
       "text-align:left}th{background:#f4f4f4}.drift{color:#fff;background:#c0392b;padding:1px 6px;"
       "border-radius:3px}.ok{color:#1e7a34}.err{color:#a60}.muted{color:#777}"
       ".banner{padding:10px 14px;border-radius:4px;margin:12px 0}.yes{background:#fdecea}"
       ".no{background:#e9f6ec}.cols{display:flex;flex-wrap:wrap;gap:18px}"
       "section{border:1px solid #e2e2e2;border-radius:4px;padding:8px 12px;width:372px}"
       "section h3{margin:4px 0;font-size:14px}rect.r{fill:#4a78b5}rect.c{fill:#e8883a}"
       "svg text{font-size:10px;fill:#555}.key span{display:inline-block;width:10px;height:10px;"
       "margin:0 4px 0 10px}</style></head><body>";
  h += "<h1>" + HtmlEscape(title) + "</h1><p>Reference <b>" + HtmlEscape(reference_name) + "</b> (" +
       std::to_string(reference_rows) + " rows) vs current <b>" + HtmlEscape(current_name) + "</b> (" +
       std::to_string(current_rows) + " rows); preset <b>" + HtmlEscape(preset) + "</b>.</p>";
  h += "<div class=\"banner " + std::string(dataset.drift ? "yes" : "no") + "\"><b>Dataset drift: " +
       (dataset.drift ? "yes" : "no") + "</b> &mdash; " + std::to_string(dataset.drifted) + " of " +
       std::to_string(dataset.columns) + " features drifted (share " + Num(dataset.share, "%.3f") +
       ", threshold " + Num(dataset.drift_share, "%.3f") + ")";
  if (prediction_index >= 0) {
    const ColumnReport& p = columns[static_cast<size_t>(prediction_index)];
    h += "<br><b>Prediction drift: " +
         std::string(p.error.empty() ? (p.drift.drift ? "yes" : "no") : "not tested") + "</b>";
  }
  h += "</div>";
  h += extra_html;
  h += "<h2>Columns</h2><table><tr><th>column</th><th>role</th><th>kind</th><th>test</th><th>score</th>"
       "<th>threshold</th><th>verdict</th><th>missing (ref &rarr; cur)</th><th>notes</th></tr>";
  for (size_t i = 0; i < columns.size(); ++i) {
    const ColumnReport& c = columns[i];
    std::string verdict = !c.error.empty() ? "<span class=err>error</span>"
                          : c.drift.drift  ? "<span class=drift>drift</span>"
                                           : "<span class=ok>ok</span>";
    std::string notes = c.error.empty() ? UnseenText(c.drift.unseen) : c.error;
    for (const ExtraStatistic& e : c.extra) {
      if (e.error.empty()) notes += " " + std::string(e.name) + "=" + Num(e.value.score);
    }
    h += "<tr><td><a href=\"#c" + std::to_string(i) + "\">" + HtmlEscape(c.name) + "</a></td><td>" +
         std::string(ColumnRoleName(c.role)) + "</td><td>" + std::string(ColumnKindName(c.kind)) +
         "</td><td>" + HtmlEscape(c.drift.statistic) + "</td><td>" +
         (c.error.empty() ? Num(c.drift.value.score) : "-") + "</td><td>" + Num(c.drift.threshold) +
         "</td><td>" + verdict + "</td><td>" + Percent(c.drift.missing.ref_share) + " &rarr; " +
         Percent(c.drift.missing.cur_share) + "</td><td>" + HtmlEscape(notes) + "</td></tr>";
  }
  h += "</table><h2>Distributions</h2><p class=key><span style=\"background:#4a78b5\"></span>"
       "reference<span style=\"background:#e8883a\"></span>current (share of non-missing rows)</p>"
       "<div class=cols>";
  for (size_t i = 0; i < columns.size(); ++i) {
    const ColumnReport& c = columns[i];
    h += "<section id=\"c" + std::to_string(i) + "\"><h3>" + HtmlEscape(c.name) + " " +
         (!c.error.empty() ? "<span class=err>error</span>"
          : c.drift.drift  ? "<span class=drift>drift</span>"
                           : "<span class=ok>ok</span>") +
         "</h3><div class=muted>" + HtmlEscape(c.drift.statistic) + " " +
         (c.error.empty() ? Num(c.drift.value.score) : "-") + " (threshold " + Num(c.drift.threshold) +
         ")</div>" + HistogramSvg(c.histogram) + "</section>";
  }
  h += "</div></body></html>\n";
  return h;
}

}  // namespace keel::monitor
