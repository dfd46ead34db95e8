// MonitorWindow: a window of the prediction log against the model's reference
// profile (keel/monitor/live.h).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include <simdjson.h>

#include "keel/core/json.h"
#include "keel/monitor/cbpe.h"
#include "keel/monitor/live.h"
#include "keel/serve/prediction_log.h"
#include "keel/train/metrics.h"
#include "src/monitor/format.h"

namespace keel::monitor {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool ParseDouble(std::string_view text, double* out) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// One reference column's values of the window, as table cells.
struct ColumnCells {
  const ReferenceColumn* ref = nullptr;
  std::vector<double> numbers;      // numeric and boolean columns
  std::vector<std::string> texts;   // categorical columns ("" = missing)
};

// Reads element `v` into the column's next cell; false when it is present but
// unreadable (the cell is then missing).
bool AddCell(ColumnCells& c, simdjson::dom::element v, bool present) {
  const bool categorical = c.ref->kind == ColumnKind::kCategorical && !c.ref->boolean;
  if (!present || v.is_null()) {
    if (categorical) {
      c.texts.emplace_back();
    } else {
      c.numbers.push_back(kNaN);
    }
    return true;
  }
  if (categorical) {
    std::string_view s;
    double d;
    bool b;
    int64_t i;
    if (!v.get_string().get(s)) {
      c.texts.emplace_back(s);
    } else if (!v.get_int64().get(i)) {
      c.texts.push_back(std::to_string(i));
    } else if (!v.get_double().get(d)) {
      c.texts.push_back(FormatDouble(d));
    } else if (!v.get_bool().get(b)) {
      c.texts.emplace_back(b ? "true" : "false");
    } else {
      c.texts.emplace_back();
      return false;
    }
    return true;
  }
  double d = kNaN;
  bool b;
  std::string_view s;
  bool ok = true;
  if (!v.get_double().get(d)) {
  } else if (!v.get_bool().get(b)) {
    d = b ? 1.0 : 0.0;
  } else if (!v.get_string().get(s)) {
    if (c.ref->boolean) {
      std::string lower(s);
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      if (lower == "true" || lower == "yes" || lower == "1") {
        d = 1;
      } else if (lower == "false" || lower == "no" || lower == "0") {
        d = 0;
      } else {
        ok = false;
        d = kNaN;
      }
    } else if (!ParseDouble(s, &d)) {
      ok = false;
      d = kNaN;
    }
  } else {
    ok = false;
  }
  c.numbers.push_back(d);
  return ok;
}

// The class index a label names, or -1: a class name, a boolean or number
// whose text is a class name.
int ClassOf(simdjson::dom::element v, const std::vector<std::string>& classes) {
  std::string text;
  std::string_view s;
  bool b;
  int64_t i;
  double d;
  if (!v.get_string().get(s)) {
    text = s;
  } else if (!v.get_bool().get(b)) {
    text = b ? "true" : "false";
  } else if (!v.get_int64().get(i)) {
    text = std::to_string(i);
  } else if (!v.get_double().get(d)) {
    text = FormatDouble(d);
  } else {
    return -1;
  }
  // true/false and 1/0 name the same class.
  const std::string alias = text == "true" ? "1" : text == "false" ? "0" : text == "1" ? "true"
                          : text == "0" ? "false" : "";
  for (size_t k = 0; k < classes.size(); ++k) {
    if (classes[k] == text || (!alias.empty() && classes[k] == alias)) return static_cast<int>(k);
    // Booleans and 0/1 against capitalised or numeric class names.
    if (classes[k].size() == text.size() &&
        std::equal(text.begin(), text.end(), classes[k].begin(), [](char a, char b2) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b2));
        })) {
      return static_cast<int>(k);
    }
  }
  return -1;
}

}  // namespace

int LabelClass(std::string_view label_json, const std::vector<std::string>& classes) {
  // Called once per labeled row (the retraining gate and watch): the parser
  // and its buffers are kept per thread rather than built per label.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element v;
  if (parser.parse(label_json.data(), label_json.size()).get(v)) return -1;
  return ClassOf(v, classes);
}

namespace {

double Percentile(std::vector<double>& sorted, double q) {
  if (sorted.empty()) return kNaN;
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

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
  KEEL_ASSIGN_OR_RETURN(std::vector<serve::LoggedPrediction> logged, serve::ReadPredictions(db, pq));
  if (logged.empty()) {
    return NotFound("no logged predictions of " + query.model +
                    (query.version.empty() ? "" : " version " + query.version) +
                    " in the window");
  }
  WindowReport report;
  report.query = query;
  report.rows = logged.size();
  uint64_t total = logged.size();
  if (logged.size() >= query.max_rows) {
    KEEL_ASSIGN_OR_RETURN(total, serve::CountPredictions(db, pq));
    report.truncated = total > logged.size();
  }

  // Inputs and outputs into table cells, column by column.
  std::vector<ColumnCells> cells;
  for (const ReferenceColumn& c : reference.columns) {
    // The label is not a model input (labels arrive separately).
    if (c.name == reference.prediction_column || c.name == reference.target_column) continue;
    cells.push_back(ColumnCells{.ref = &c, .numbers = {}, .texts = {}});
  }
  const ReferenceColumn* pred_ref =
      reference.prediction_column.empty() ? nullptr : reference.Find(reference.prediction_column);
  ColumnCells pred_cells{.ref = pred_ref, .numbers = {}, .texts = {}};
  const bool multiclass = info.task == "multiclass";
  const bool binary = info.task == "binary";
  std::vector<float> perf_pred;
  std::vector<float> perf_label;
  std::vector<float> window_scores;  // every binary probability, for the estimate
  size_t outputs_per_row = 0;
  simdjson::dom::parser parser;
  std::map<std::string, uint64_t> endpoints;
  std::vector<double> latencies;
  latencies.reserve(logged.size());
  int64_t first_ms = logged.front().record.time_ms;
  int64_t last_ms = first_ms;
  for (const serve::LoggedPrediction& lp : logged) {
    const serve::PredictionRecord& r = lp.record;
    ++endpoints[r.endpoint];
    latencies.push_back(r.latency_us);
    first_ms = std::min(first_ms, r.time_ms);
    last_ms = std::max(last_ms, r.time_ms);
    simdjson::dom::element input;
    const bool input_ok = !parser.parse(r.input_json).get(input) && input.is_object();
    if (!input_ok) ++report.unreadable;
    for (ColumnCells& c : cells) {
      simdjson::dom::element v;
      const bool present = input_ok && !input.at_key(c.ref->name).get(v);
      if (!AddCell(c, v, present)) ++report.unreadable;
    }
    // The output: a number, or an array of scores.
    std::vector<float> scores;
    simdjson::dom::element out;
    if (!parser.parse(r.output_json).get(out)) {
      double d;
      simdjson::dom::array arr;
      if (!out.get_double().get(d)) {
        scores.push_back(static_cast<float>(d));
      } else if (!out.get_array().get(arr)) {
        for (simdjson::dom::element e : arr) {
          double x;
          if (e.get_double().get(x)) {
            scores.clear();
            break;
          }
          scores.push_back(static_cast<float>(x));
        }
      }
    }
    if (scores.empty()) ++report.unreadable;
    if (binary && scores.size() == 1) window_scores.push_back(scores[0]);
    if (pred_ref != nullptr) {
      if (pred_ref->kind == ColumnKind::kCategorical) {
        if (scores.empty()) {
          pred_cells.texts.emplace_back();
        } else {
          const size_t best =
              static_cast<size_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
          pred_cells.texts.push_back(best < info.classes.size() ? info.classes[best]
                                                                : std::to_string(best));
        }
      } else {
        pred_cells.numbers.push_back(scores.size() == 1 ? scores[0] : kNaN);
      }
    }
    // Performance: predictions with a label.
    if (!lp.label_json || scores.empty()) continue;
    simdjson::dom::element label;
    if (parser.parse(*lp.label_json).get(label)) continue;
    ++report.performance.labelled;
    if (binary || multiclass) {
      const int k = ClassOf(label, info.classes);
      if (k < 0 || (binary && scores.size() != 1) ||
          (multiclass && scores.size() != info.classes.size())) {
        ++report.performance.unmatched_labels;
        continue;
      }
      outputs_per_row = scores.size();
      perf_pred.insert(perf_pred.end(), scores.begin(), scores.end());
      perf_label.push_back(static_cast<float>(k));
    } else {
      double y;
      if (label.get_double().get(y) || scores.size() != 1) {
        ++report.performance.unmatched_labels;
        continue;
      }
      perf_pred.push_back(scores[0]);
      perf_label.push_back(static_cast<float>(y));
    }
  }

  data::Table current;
  for (ColumnCells& c : cells) {
    if (c.ref->kind == ColumnKind::kNumeric) {
      KEEL_RETURN_IF_ERROR(current.AddColumn(data::Column::Numeric(c.ref->name, std::move(c.numbers))));
    } else if (c.ref->boolean) {
      for (double& v : c.numbers) {
        if (!std::isnan(v) && v != 0 && v != 1) v = kNaN;  // not a boolean: missing
      }
      KEEL_ASSIGN_OR_RETURN(data::Column col, data::Column::Boolean(c.ref->name, std::move(c.numbers)));
      KEEL_RETURN_IF_ERROR(current.AddColumn(std::move(col)));
    } else {
      KEEL_RETURN_IF_ERROR(
          current.AddColumn(data::Column::CategoricalFromText(c.ref->name, c.texts)));
    }
  }
  DriftOptions drift_options = options;
  if (!reference.target_column.empty()) drift_options.exclude.push_back(reference.target_column);
  if (pred_ref != nullptr) {
    if (pred_ref->kind == ColumnKind::kNumeric) {
      KEEL_RETURN_IF_ERROR(
          current.AddColumn(data::Column::Numeric(pred_ref->name, std::move(pred_cells.numbers))));
    } else {
      KEEL_RETURN_IF_ERROR(
          current.AddColumn(data::Column::CategoricalFromText(pred_ref->name, pred_cells.texts)));
    }
    drift_options.prediction = pred_ref->name;
  }
  KEEL_ASSIGN_OR_RETURN(report.drift, CompareToReference(reference, current, drift_options));
  report.drift.current_name = "window";

  // Performance against the validation performance recorded at training.
  report.performance.reference = reference.performance;
  if (binary && !window_scores.empty()) {
    report.performance.estimated = EstimateBinaryPerformance(
        window_scores, reference.calibration.empty() ? nullptr : &reference.calibration);
  }
  if (!perf_label.empty()) {
    std::vector<train::Metric> metrics;
    if (binary) {
      metrics = train::BinaryMetrics(perf_pred, perf_label);
    } else if (multiclass) {
      metrics = train::MulticlassMetrics(perf_pred, static_cast<int>(outputs_per_row), perf_label);
    } else {
      metrics = train::RegressionMetrics(perf_pred, perf_label);
    }
    for (const train::Metric& m : metrics) report.performance.live.emplace_back(m.name, m.value);
  }

  // Operational figures.
  OperationalSummary& ops = report.operational;
  ops.predictions = total;  // all of the window's, also when only the newest were read
  const bool open = query.from_ms <= 0 || query.to_ms == std::numeric_limits<int64_t>::max();
  ops.seconds = open ? static_cast<double>(last_ms - first_ms) / 1000.0
                     : static_cast<double>(query.to_ms - query.from_ms) / 1000.0;
  ops.rate_per_s = ops.seconds > 0 ? static_cast<double>(ops.predictions) / ops.seconds : kNaN;
  std::sort(latencies.begin(), latencies.end());
  ops.latency_p50_us = Percentile(latencies, 0.50);
  ops.latency_p95_us = Percentile(latencies, 0.95);
  ops.latency_p99_us = Percentile(latencies, 0.99);
  ops.latency_max_us = latencies.back();
  for (const auto& [name, n] : endpoints) ops.endpoints.emplace_back(name, n);
  return report;
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
  std::string out = "model " + query.model +
                    (query.version.empty() ? " (all versions)" : " version " + query.version) +
                    ": " + std::to_string(rows) + " predictions" +
                    (truncated ? " (window truncated to the oldest " + std::to_string(rows) + ")" : "") +
                    ", " + std::to_string(performance.labelled) + " labelled" +
                    (unreadable > 0 ? ", " + std::to_string(unreadable) + " unreadable fields" : "") +
                    "\n";
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
