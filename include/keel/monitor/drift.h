// File: keel/monitor/drift.h
//
// Data drift between two tables (a reference, e.g. the training data, and a
// current sample): one verdict per column from the drift statistics table
// (keel/monitor/stats.h), a dataset verdict, the prediction column's drift,
// and the result as a terminal table, JSON or a self-contained HTML report.
// `keel drift` is a thin client of CompareTables.
//
//   keel::monitor::DriftOptions options;
//   options.preset = "keel";                   // or "evidently"
//   options.extra = {"psi", "wasserstein"};    // reported besides the deciding test
//   options.prediction = "score";              // its drift is prediction drift
//   KEEL_ASSIGN_OR_RETURN(keel::monitor::DriftReport r,
//                         keel::monitor::CompareTables(train, last_week, options));
//   if (r.dataset.drift) ...;
//   KEEL_RETURN_IF_ERROR(keel::WriteFileAtomically("report.html", r.ToHtml()));
//
// Columns: every reference column (or options.columns, minus options.exclude)
// must exist in the current table with the same kind. Numeric columns are
// tested as numeric; categorical and boolean columns as categorical (booleans
// as the categories "false"/"true"). A column whose side has no non-missing
// value is reported with an error and left out of the dataset verdict; the
// other columns are still tested.
//
// Verdicts: per column the deciding statistic is the first of options.tests
// that takes the column's kind, else the preset's choice (ChooseTest). The dataset
// verdict counts feature columns only (not the target and prediction
// columns), with the preset's drift share. Prediction drift is the prediction
// column's own verdict.
//
// Cost: each numeric column is sorted once and every statistic reads the
// sorted sides; reference quantile bins are fitted once per column. Columns
// run in parallel on options.pool. Memory: the two tables, a sorted copy of
// every compared reference column (CompareTables builds a ReferenceProfile
// first), and a sorted copy of the current columns being compared at a time.
// Reports hold histograms (options.histogram_bins bins, or the
// options.top_categories most frequent categories and "(other)"), never raw
// rows, so their size does not grow with the number of rows.
//
// Threads: CompareTables is thread-safe; a DriftReport is a plain value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "keel/core/result.h"
#include "keel/core/thread_pool.h"
#include "keel/data/table.h"
#include "keel/monitor/stats.h"

namespace keel::monitor {

enum class ColumnRole : uint8_t { kFeature, kTarget, kPrediction };
std::string_view ColumnRoleName(ColumnRole role);  // "feature", "target", "prediction"

struct DriftOptions {
  std::string preset = "keel";
  // Deciding statistics: a column is decided by the first one that takes its
  // kind (e.g. {"ks", "chisquare"}: KS for numeric, chi-square for
  // categorical columns), else by the preset. A NaN threshold means the
  // statistic's default.
  struct Test {
    std::string name;
    double threshold = kNoThreshold;
  };
  std::vector<Test> tests;
  // Statistics reported beside the deciding one, on the columns they take.
  std::vector<std::string> extra;
  std::vector<std::string> columns;  // empty: every reference column
  std::vector<std::string> exclude;
  std::string target;          // optional column names
  std::string prediction;      //
  int bins = 10;               // reference quantile bins (PSI, Jensen-Shannon, Hellinger)
  int histogram_bins = 20;     // report histograms of numeric columns
  int top_categories = 20;     // report histograms of categorical columns
  ThreadPool* pool = nullptr;  // null: ThreadPool::Default()
};

// Reference and current counts on shared bins, for plots.
struct Histogram {
  std::vector<double> edges;        // numeric: equal-width, size() + 1 of the counts
  std::vector<std::string> labels;  // categorical: one per count ("(other)" last)
  std::vector<uint64_t> ref;
  std::vector<uint64_t> cur;
};

struct ExtraStatistic {
  std::string_view name;  // the statistic table row
  StatValue value;
  bool drift = false;  // against the row's default threshold (false without one)
  std::string error;   // non-empty: not computed (the value is meaningless)
};

struct ColumnReport {
  std::string name;
  ColumnKind kind = ColumnKind::kNumeric;
  ColumnRole role = ColumnRole::kFeature;
  uint64_t ref_rows = 0;  // rows, missing included
  uint64_t cur_rows = 0;
  std::string error;  // non-empty: not tested (drift is then unset)
  ColumnDrift drift;
  Direction direction = Direction::kDistance;  // how drift.value.score reads
  std::vector<ExtraStatistic> extra;
  Histogram histogram;
};

struct DriftReport {
  std::string preset;
  std::string reference_name;  // e.g. the file names; set by the caller
  std::string current_name;
  uint64_t reference_rows = 0;
  uint64_t current_rows = 0;
  std::vector<ColumnReport> columns;  // in reference column order
  DatasetDrift dataset;               // feature columns only
  int prediction_index = -1;          // the prediction column in `columns`, or -1

  // {"keel_drift_report":1,"preset":..,"reference":{"name":..,"rows":..},
  //  "current":{..},"dataset":{"columns":..,"drifted":..,"share":..,
  //  "drift_share":..,"drift":..},"prediction_drift":bool|null,
  //  "columns":[{"name":..,"kind":..,"role":..,"test":..,"score":..,
  //  "statistic":..,"threshold":..,"direction":"p_value"|"distance",
  //  "drift":..,"missing":{"reference":..,"current":..,"change":..},
  //  "unseen":{"categories":[..],"rows":..,"share":..},"extra":{name:{..}},
  //  "histogram":{..},"error":..}]}. Non-finite numbers are null.
  std::string ToJson() const;
  // A fixed-width table, one line per column, then the dataset and
  // prediction verdicts.
  std::string ToText() const;
  // One self-contained HTML page (inline CSS and SVG, no script, no network):
  // the summary table and reference vs current histograms per column.
  // `extra_html` (trusted markup, e.g. performance tables) goes after the
  // verdict banner.
  std::string ToHtml(std::string_view title = "Data drift", std::string_view extra_html = {}) const;
};

// InvalidArgument for an unknown preset or statistic, a listed column the
// reference lacks, a reference column the current table lacks, or a column
// whose kind differs between the tables (each naming the column).
[[nodiscard]] Result<DriftReport> CompareTables(const data::Table& reference,
                                                const data::Table& current,
                                                const DriftOptions& options = {});
// The same, consuming both tables: numeric columns are sorted in place
// instead of copied. Both tables are left empty, whatever the outcome (one
// table passed as both is only read). The report is the same.
[[nodiscard]] Result<DriftReport> CompareTables(data::Table&& reference, data::Table&& current,
                                                const DriftOptions& options = {});

struct ReferenceProfile;  // keel/monitor/reference.h
// The same against a stored reference profile (no reference table read or
// sorted). With options.bins equal to the profile's bins the result equals
// CompareTables on the table the profile was built from; other bins are
// refitted from the stored values.
[[nodiscard]] Result<DriftReport> CompareToReference(const ReferenceProfile& reference,
                                                     const data::Table& current,
                                                     const DriftOptions& options = {});
// The same, consuming `current` (sorted in place; left empty whatever the
// outcome).
[[nodiscard]] Result<DriftReport> CompareToReference(const ReferenceProfile& reference,
                                                     data::Table&& current,
                                                     const DriftOptions& options = {});

}  // namespace keel::monitor
