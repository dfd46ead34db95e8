// MonitorWindow: a window of the prediction log against the model's reference
// profile (keel/monitor/live.h).
#include <algorithm>
#include <cmath>

#include "keel/core/json.h"
#include "keel/monitor/live.h"
#include "keel/monitor/window_profile.h"
#include "keel/serve/prediction_log.h"
#include "src/monitor/format.h"

namespace keel::monitor {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double Lookup(const std::vector<std::pair<std::string, double>>& v, const std::string& name) {
  for (const auto& [k, x] : v) {
    if (k == name) return x;
  }
  return kNaN;
}

}  // namespace

double PerformanceSummary::Live(const std::string& metric) const { return Lookup(live, metric); }

double PerformanceSummary::Change(const std::string& metric) const {
  return Lookup(live, metric) - Lookup(reference, metric);
}

Result<WindowReport> MonitorWindow(store::Database& db, const ReferenceProfile& reference,
                                   const model::PackageInfo& info, const WindowQuery& query,
                                   const DriftOptions& options) {
  if (query.model.empty()) return InvalidArgument("a monitoring window needs a model name");
  if (query.from_ms >= query.to_ms) return InvalidArgument("the window is empty (from >= to)");
  serve::PredictionQuery pq;
  pq.model = query.model;
  pq.version = query.version;
  pq.from_ms = query.from_ms;
  pq.to_ms = query.to_ms;
  pq.limit = query.max_rows;
  pq.newest = true;  // a truncated window keeps its most recent rows
  KEEL_ASSIGN_OR_RETURN(std::vector<serve::LoggedPrediction> logged,
                        serve::ReadPredictions(db, pq));
  uint64_t total = logged.size();
  if (!logged.empty() && logged.size() >= query.max_rows) {
    KEEL_ASSIGN_OR_RETURN(total, serve::CountPredictions(db, pq));
  }
  const ProfileLayout layout(reference, info);
  // Every row read is kept exactly (the rows are in memory already).
  ProfileOptions exact;
  exact.exact_limit = std::max<uint64_t>(exact.exact_limit, logged.size());
  const WindowProfile profile = ProfileOf(layout, logged, exact);
  logged = {};
  return EvaluateProfile(layout, profile, query, options, total);
}

std::string WindowReport::ToJson() const {
  JsonWriter w(4096);
  const auto number = [&w](double v) { internal::JsonNumber(w, v); };
  w.BeginObject();
  w.Key("keel_monitor_report");
  w.Int(1);
  w.Key("model");
  w.String(query.model);
  w.Key("version");
  w.String(query.version);
  w.Key("from_ms");
  w.Int(query.from_ms);
  w.Key("to_ms");
  if (query.to_ms == std::numeric_limits<int64_t>::max()) {
    w.Null();
  } else {
    w.Int(query.to_ms);
  }
  w.Key("rows");
  w.Int(static_cast<int64_t>(rows));
  w.Key("truncated");
  w.Bool(truncated);
  w.Key("unreadable");
  w.Int(static_cast<int64_t>(unreadable));
  w.Key("operational");
  w.BeginObject();
  w.Key("predictions");
  w.Int(static_cast<int64_t>(operational.predictions));
  w.Key("seconds");
  number(operational.seconds);
  w.Key("rate_per_s");
  number(operational.rate_per_s);
  w.Key("latency_us");
  w.BeginObject();
  w.Key("p50");
  number(operational.latency_p50_us);
  w.Key("p95");
  number(operational.latency_p95_us);
  w.Key("p99");
  number(operational.latency_p99_us);
  w.Key("max");
  number(operational.latency_max_us);
  w.EndObject();
  w.Key("endpoints");
  w.BeginObject();
  for (const auto& [name, n] : operational.endpoints) {
    w.Key(name);
    w.Int(static_cast<int64_t>(n));
  }
  w.EndObject();
  w.EndObject();
  w.Key("performance");
  w.BeginObject();
  w.Key("labelled");
  w.Int(static_cast<int64_t>(performance.labelled));
  w.Key("unmatched_labels");
  w.Int(static_cast<int64_t>(performance.unmatched_labels));
  for (const auto& [key, values] :
       {std::pair{"live", &performance.live}, std::pair{"reference", &performance.reference},
        std::pair{"estimated", &performance.estimated}}) {
    w.Key(key);
    w.BeginObject();
    for (const auto& [name, v] : *values) {
      w.Key(name);
      number(v);
    }
    w.EndObject();
  }
  w.EndObject();
  w.Key("drift");
  w.Raw(drift.ToJson());
  w.EndObject();
  return std::move(w).Take();
}

std::string WindowReport::ToText() const {
  using internal::Num;
  std::string out =
      "model " + query.model +
      (query.version.empty() ? " (all versions)" : " version " + query.version) + ": " +
      std::to_string(rows) + " predictions" +
      (truncated ? " (window truncated to the oldest " + std::to_string(rows) + ")" : "") + ", " +
      std::to_string(performance.labelled) + " labelled" +
      (unreadable > 0 ? ", " + std::to_string(unreadable) + " unreadable fields" : "") + "\n";
  out += "operational: " + Num(operational.rate_per_s, "%.3g") + " predictions/s, latency p50 " +
         Num(operational.latency_p50_us, "%.0f") + " us, p95 " +
         Num(operational.latency_p95_us, "%.0f") + " us, p99 " +
         Num(operational.latency_p99_us, "%.0f") + " us; by endpoint:";
  for (const auto& [name, n] : operational.endpoints) out += " " + name + "=" + std::to_string(n);
  out += "\n";
  if (!performance.live.empty() || !performance.reference.empty()) {
    out += "performance (live vs validation at training):\n";
    std::vector<std::string> names;
    for (const auto& [name, v] : performance.reference) names.push_back(name);
    for (const auto& [name, v] : performance.live) {
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
    for (const std::string& name : names) {
      const double live = performance.Live(name);
      const double ref = Lookup(performance.reference, name);
      const double est = Lookup(performance.estimated, name);
      out += "  " + name + std::string(name.size() < 10 ? 10 - name.size() : 1, ' ') + Num(live) +
             "  (validation " + Num(ref) + ", change " + Num(live - ref, "%+.4g") +
             (std::isnan(est) ? "" : "; estimated without labels " + Num(est)) + ")\n";
    }
    if (performance.live.empty()) out += "  no labels in the window yet\n";
  }
  out += drift.ToText();
  return out;
}

std::string WindowReport::ToHtml(std::string_view history_html) const {
  using internal::HtmlEscape;
  using internal::Num;
  std::string extra = "<h2>Operational</h2><p>" + std::to_string(operational.predictions) +
                      " predictions, " + Num(operational.rate_per_s, "%.3g") +
                      " per second; latency p50 " + Num(operational.latency_p50_us, "%.0f") +
                      " us, p95 " + Num(operational.latency_p95_us, "%.0f") + " us, p99 " +
                      Num(operational.latency_p99_us, "%.0f") + " us.</p>";
  extra += "<h2>Performance</h2><p>" + std::to_string(performance.labelled) +
           " labelled predictions" +
           (performance.live.empty() ? " (realised performance appears once labels arrive)" : "") +
           ".</p><table><tr><th>metric</th><th>realised</th><th>estimated without labels</th>"
           "<th>validation</th><th>change</th></tr>";
  for (const auto& [name, ref] : performance.reference) {
    const double live = performance.Live(name);
    extra += "<tr><td>" + HtmlEscape(name) + "</td><td>" + Num(live) + "</td><td>" +
             Num(Lookup(performance.estimated, name)) + "</td><td>" + Num(ref) + "</td><td>" +
             Num(live - ref, "%+.4g") + "</td></tr>";
  }
  extra += "</table>";
  extra += history_html;
  return drift.ToHtml("Model monitoring: " + query.model +
                          (query.version.empty() ? "" : " version " + query.version),
                      extra);
}

}  // namespace keel::monitor
