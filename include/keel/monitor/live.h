// File: keel/monitor/live.h
//
// Monitoring a deployed model from its prediction log: one window of logged
// predictions (every endpoint: real-time, batch windows, stream) compared
// with the model's reference profile (data drift on the inputs, prediction
// drift on the outputs), its performance once labels have arrived compared
// with the validation performance recorded at training, and operational
// figures (volume, rate, latency percentiles). `keel monitor` is a thin
// client.
//
//   keel::monitor::WindowQuery q{.model = "churn", .version = "3",
//                                .from_ms = now - 3'600'000, .to_ms = now};
//   KEEL_ASSIGN_OR_RETURN(keel::monitor::WindowReport w,
//                         keel::monitor::MonitorWindow(db, reference, info, q, {}));
//   if (w.drift.dataset.drift || w.performance.Change("auc") < -0.02) ...;
//
// Inputs are read from each logged record's JSON object by the reference's
// column names and kinds: numbers for numeric columns (numeric strings and
// booleans as 1/0 are accepted; anything else is counted in `unreadable` and
// treated as missing), strings, numbers (as their shortest text) and booleans for
// categorical columns; absent fields and nulls are missing. The prediction is
// the logged output: a number (binary probability, regression value) or, for
// a multiclass model, the class with the largest score.
//
// Labels: a logged label that is a class name, a boolean or a number matching
// a class name (case-insensitively; true/false also match classes "1"/"0" and
// the other way round) is that class (binary: classes[1] is the positive class); for
// regression a number. Labels that match no class are counted in
// performance.unmatched_labels and left out.
//
// Memory: at most query.max_rows records of the window are read (the newest
// ones; `truncated` says when there were more, and the operational figures
// still count all of them) as raw JSON, summarised into a WindowProfile
// (keel/monitor/window_profile.h: exact up to 10,000 values per numeric
// column, gridded beyond, within the error stated there) and evaluated from
// it as table cells.
//
// Threads: MonitorWindow is thread-safe (it reads the store in read
// transactions: the records, and their count when truncated); the report is
// a plain value.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "keel/core/result.h"
#include "keel/model/package.h"
#include "keel/monitor/drift.h"
#include "keel/monitor/reference.h"
#include "keel/store/store.h"

namespace keel::monitor {

// The class index a logged label names under the label rule above, or -1
// (also for text that is not a JSON scalar).
int LabelClass(std::string_view label_json, const std::vector<std::string>& classes);

struct WindowQuery {
  std::string model;    // registered model name
  std::string version;  // empty: every version of the model
  int64_t from_ms = 0;  // time >= from_ms
  int64_t to_ms = std::numeric_limits<int64_t>::max();  // time < to_ms
  size_t max_rows = 1'000'000;
};

struct PerformanceSummary {
  uint64_t labelled = 0;          // predictions in the window with a label
  uint64_t unmatched_labels = 0;  // labels that are no class of the model
  // auc, log_loss, accuracy, precision, recall, f1 (binary); accuracy,
  // log_loss, f1_macro (multiclass); rmse, mae, r2 (regression).
  std::vector<std::pair<std::string, double>> live;
  std::vector<std::pair<std::string, double>> reference;  // validation, at training
  // Binary classifiers: the label-free estimate for the whole window from the
  // calibrated probabilities (keel/monitor/cbpe.h): auc, accuracy,
  // precision, recall, f1. Empty for other models.
  std::vector<std::pair<std::string, double>> estimated;
  // live - reference for a metric both have, else NaN.
  double Change(const std::string& metric) const;
  double Live(const std::string& metric) const;  // NaN when absent
};

struct OperationalSummary {
  uint64_t predictions = 0;
  double seconds = 0;     // the window's length (to - from), or the logged span when open
  double rate_per_s = 0;  // predictions / seconds
  double latency_p50_us = 0;
  double latency_p95_us = 0;
  double latency_p99_us = 0;
  double latency_max_us = 0;
  std::vector<std::pair<std::string, uint64_t>> endpoints;  // predictions per endpoint
};

struct WindowReport {
  WindowQuery query;
  uint64_t rows = 0;        // predictions read
  bool truncated = false;   // the window held more than query.max_rows
  uint64_t unreadable = 0;  // input or output fields that could not be read (as missing)
  DriftReport drift;        // reference = the model's profile, current = this window
  PerformanceSummary performance;
  OperationalSummary operational;

  // {"keel_monitor_report":1,"model":..,"version":..,"from_ms":..,"to_ms":..,
  //  "rows":..,"truncated":..,"unreadable":..,"operational":{..},
  //  "performance":{"labelled":..,"unmatched_labels":..,"live":{..},
  //  "reference":{..}},"drift":{the DriftReport's JSON}}
  std::string ToJson() const;
  std::string ToText() const;
  // `history_html` (e.g. HistoryHtml of the stored windows) is added after
  // the performance section.
  std::string ToHtml(std::string_view history_html = {}) const;
};

// NotFound when the window holds no prediction; InvalidArgument for a query
// without a model or with from_ms >= to_ms, and whatever CompareToReference
// refuses.
[[nodiscard]] Result<WindowReport> MonitorWindow(store::Database& db,
                                                 const ReferenceProfile& reference,
                                                 const model::PackageInfo& info,
                                                 const WindowQuery& query,
                                                 const DriftOptions& options);

}  // namespace keel::monitor
