// File: keel/monitor/window_profile.h
//
// A window profile: everything a monitoring window report needs of a span of
// the prediction log, in a form that merges. Profiles of adjacent spans
// (pieces) add up to the profile of their union, so an hour, a day and a
// week are evaluated from the same pieces without rereading the log.
//
//   keel::monitor::ProfileLayout layout(reference, info);
//   keel::monitor::WindowProfile hour = keel::monitor::ProfileOf(layout, rows_a, {});
//   hour.Merge(keel::monitor::ProfileOf(layout, rows_b, {}));
//   KEEL_ASSIGN_OR_RETURN(keel::monitor::WindowReport w,
//                         keel::monitor::EvaluateProfile(layout, hour, query, drift_options));
//
// What a profile holds, per part:
// - numeric inputs and a numeric prediction: the finite values, exactly while
//   a merged profile holds at most `exact_limit` of them (default 10,000: up
//   to there the Kolmogorov-Smirnov test is scipy's exact one, and reports
//   equal those over the raw rows), then counts on the column's grid; and the
//   missing count (absent, null, unreadable, non-finite).
// - categorical and boolean inputs, a categorical prediction: category counts
//   and the missing count (exact, always).
// - operational: rows, rows per endpoint, first/last time (exact); latencies
//   exact up to the limit, then on a log grid (each value kept within 0.5%).
// - performance: labelled and unmatched-label counts; binary models the
//   confusion at 0.5 and the log-loss sum (exact), the labelled scores of each
//   class (values as above: AUC from them) and every score (the label-free
//   estimate from them); multiclass the confusion matrix and log-loss sum;
//   regression the error sums and the labels' mean and squared deviations
//   (Chan's merge), so rmse, mae, r2 are exact up to rounding.
//
// The grid of a numeric column: its interior edges are the reference's
// quantile-bin edges (the profile's PSI bins), 1,000 more reference
// quantiles, its maximum, and its repeated values (every distinct value when
// the reference has at most 4,096, else the 4,096 most repeated); values
// beyond the reference range go to log buckets of their distance past the
// range's end (2% wide relative to it, distances clamped to 1e-17..1e17 times
// the reference's scale). A gridded column is evaluated on stand-in values:
// each interior bin's count spread over the reference values in that bin at
// evenly spaced ranks, each tail bucket's at its centre. The error this
// costs, stated:
// - PSI, Jensen-Shannon and Hellinger on the profile's bins (DriftOptions::
//   bins equal to the profile's): exact, those bins being unions of grid bins.
// - Kolmogorov-Smirnov D: off by at most the window's largest share in one
//   interior bin; values beyond the reference range cost nothing (the
//   reference CDF is flat there). The p-value is computed from that D.
// - Wasserstein: off by at most the sum over interior bins of the window's
//   share times the bin's width, plus 1% of the mean distance of the values
//   past the reference range (inside the clamp).
// - A column with at most 4,096 distinct reference values, and a window
//   whose values are reference values: every statistic exact, each value
//   being a bin of its own. Evidently's binning reads the stand-ins.
// - Latency percentiles: within 0.5%. AUC: ties within one grid bin.
//
// Encoding (EncodeProfile): how the server stores its pieces (the store's
// window_profiles table). Version 1, little-endian throughout: the 3 bytes
// "KWP", a version byte (1), the CRC-32 (zlib) of the body as u32, then the
// body: a u64 fingerprint of the layout (task, classes, every profiled
// column's name, kind and reference bins), then every field of the profile
// in declaration order (doubles as their IEEE-754 bits, so a round trip is
// exact; strings as u32 length and bytes; a ValueCounts as its count, its
// exact values and its (code, count) grid pairs). DecodeProfile refuses,
// with InvalidArgument naming what is wrong, a blob that is truncated, has
// trailing bytes, fails its checksum, has another version or layout, or
// whose parts disagree with each other or the layout (per-column counts that
// do not add up to its rows, grid codes outside the column's grid, unsorted
// grids, non-finite exact values); it reads every length against the bytes
// left before allocating, so it allocates at most a small multiple of the
// blob's size.
//
// Memory: a profile in exact mode holds at most exact_limit values per
// numeric part; a gridded one the grid bins in use (12-16 bytes each, at
// most the number of edges plus the tail buckets) per numeric part, and its
// categories. Evaluating a profile materialises the stand-ins: 8 bytes x
// rows per numeric column, transiently.
//
// Threads: plain values. A ProfileLayout refers to the ReferenceProfile and
// PackageInfo it was made from, which must outlive it and every profile made
// with it.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keel/core/result.h"
#include "keel/model/package.h"
#include "keel/monitor/live.h"
#include "keel/monitor/reference.h"
#include "keel/serve/prediction_log.h"

namespace keel::monitor {

// Where values of one numeric quantity fall when they are not kept exactly.
// Codes are bin ids; Fill appends `count` stand-in values for a code.
class ValueGrid {
 public:
  virtual ~ValueGrid() = default;
  virtual int32_t Code(double value) const = 0;  // value finite
  virtual void Fill(int32_t code, uint64_t count, std::vector<double>& out) const = 0;
  // Whether Code() can return `code` (decoded profiles are checked with it).
  virtual bool Holds(int32_t code) const = 0;
};

// Reference-quantile grid of a numeric reference column (see above).
std::unique_ptr<ValueGrid> ReferenceGrid(const ReferenceColumn& column);
// Log grid for positive quantities (latencies): each value within 0.5%;
// zero and negatives share one code, whose stand-in is 0.
std::unique_ptr<ValueGrid> LogGrid();

namespace internal {
struct ProfileCodec;  // EncodeProfile / DecodeProfile
}  // namespace internal

// The values of one numeric quantity: exact while few, else counts on a grid.
class ValueCounts {
 public:
  void Add(double value, const ValueGrid& grid, uint64_t exact_limit);
  void Merge(const ValueCounts& other, const ValueGrid& grid, uint64_t exact_limit);
  uint64_t count() const { return count_; }
  bool exact() const { return grid_.empty() && exact_.size() == count_; }
  // The exact values, or the grid's stand-ins, appended in no set order.
  void AppendTo(const ValueGrid& grid, std::vector<double>& out) const;
  // The values kept exactly, and the grid's (code, count) pairs in
  // ascending codes; count() is their total.
  const std::vector<double>& exact_values() const { return exact_; }
  const std::vector<std::pair<int32_t, uint64_t>>& grid_counts() const { return grid_; }

 private:
  friend struct internal::ProfileCodec;
  void ToGrid(const ValueGrid& grid);
  void AddCode(int32_t code, uint64_t n);
  void AddGrid(std::vector<std::pair<int32_t, uint64_t>> other);
  static std::vector<std::pair<int32_t, uint64_t>> Coded(std::span<const double> values,
                                                         const ValueGrid& grid);
  uint64_t count_ = 0;
  std::vector<double> exact_;
  std::vector<std::pair<int32_t, uint64_t>> grid_;  // (code, count), ascending codes
};

// Which columns a profile has and how each is gridded, from a model version's
// reference profile and package info.
class ProfileLayout {
 public:
  struct Column {
    const ReferenceColumn* ref = nullptr;
    bool numeric = false;             // else categorical (boolean columns too)
    std::unique_ptr<ValueGrid> grid;  // numeric columns
  };
  ProfileLayout(const ReferenceProfile& reference, const model::PackageInfo& info);

  const ReferenceProfile& reference() const { return *reference_; }
  const model::PackageInfo& info() const { return *info_; }
  // Model inputs of the reference (not its target, not its prediction column).
  const std::vector<Column>& inputs() const { return inputs_; }
  // The prediction column (ref null when the profile has none).
  const Column& prediction() const { return prediction_; }
  const ValueGrid& latency_grid() const { return *latency_grid_; }
  // Binary models' scores: the prediction column's grid, else a log grid.
  const ValueGrid& score_grid() const { return *score_grid_; }
  bool binary() const { return info_->task == "binary"; }
  bool multiclass() const { return info_->task == "multiclass"; }

 private:
  const ReferenceProfile* reference_;
  const model::PackageInfo* info_;
  std::vector<Column> inputs_;
  Column prediction_;
  std::unique_ptr<ValueGrid> latency_grid_;
  std::unique_ptr<ValueGrid> score_grid_;
};

struct ProfileOptions {
  // Values kept exactly per numeric part; 0 grids from the first value
  // (pieces meant for long windows).
  uint64_t exact_limit = 10'000;
};

struct ColumnProfile {
  ValueCounts values;            // numeric columns: finite values
  uint64_t missing = 0;          // numeric columns
  CategoricalSample categories;  // categorical columns (booleans as "0"/"1"), with missing
};

struct WindowProfile {
  uint64_t exact_limit = 10'000;
  uint64_t rows = 0;
  uint64_t unreadable = 0;
  int64_t first_ms = std::numeric_limits<int64_t>::max();
  int64_t last_ms = std::numeric_limits<int64_t>::min();
  std::vector<ColumnProfile> inputs;  // ProfileLayout::inputs() order
  ColumnProfile prediction;
  std::map<std::string, uint64_t> endpoints;
  ValueCounts latency_us;
  // Performance.
  uint64_t labelled = 0;
  uint64_t unmatched_labels = 0;
  uint64_t scored = 0;  // labelled rows that entered the metrics
  double log_loss_sum = 0;
  ValueCounts scores;     // binary: every finite score
  ValueCounts positives;  // binary: scores of rows labelled positive
  ValueCounts negatives;  // binary: scores of rows labelled negative
  // Binary: [tn, fp, fn, tp] at threshold 0.5; multiclass: k x k, row =
  // label, column = argmax.
  std::vector<uint64_t> confusion;
  // Regression: sum of squared and absolute errors, labels' mean and sum of
  // squared deviations.
  double sse = 0, sae = 0, label_mean = 0, label_m2 = 0;

  // Adds another span's profile made with the same layout.
  void Merge(const WindowProfile& other, const ProfileLayout& layout);
};

WindowProfile EmptyProfile(const ProfileLayout& layout, const ProfileOptions& options = {});
// Adds one logged prediction (inputs, output, label) under keel/monitor/live.h's reading rules.
void AddToProfile(const ProfileLayout& layout, const serve::LoggedPrediction& row,
                  WindowProfile& profile);
// Only the performance part of AddToProfile (the row's label against its
// output), and its reset: how a piece follows labels that arrive later.
void AddPerformance(const ProfileLayout& layout, const serve::LoggedPrediction& row,
                    WindowProfile& profile);
void ClearPerformance(const ProfileLayout& layout, WindowProfile& profile);
WindowProfile ProfileOf(const ProfileLayout& layout, std::span<const serve::LoggedPrediction> rows,
                        const ProfileOptions& options = {});

// The encoding above; `layout` is the one the profile was made with.
std::string EncodeProfile(const WindowProfile& profile, const ProfileLayout& layout);
[[nodiscard]] Result<WindowProfile> DecodeProfile(std::string_view bytes,
                                                  const ProfileLayout& layout);

// The report of a window from its profile (keel/monitor/live.h).
// NotFound for a profile without rows; what CompareToReference refuses.
// `total_rows` (when larger than profile.rows) marks the report truncated.
[[nodiscard]] Result<WindowReport> EvaluateProfile(const ProfileLayout& layout,
                                                   const WindowProfile& profile,
                                                   const WindowQuery& query,
                                                   const DriftOptions& options,
                                                   uint64_t total_rows = 0);

}  // namespace keel::monitor
