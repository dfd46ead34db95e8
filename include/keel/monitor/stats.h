// File: keel/monitor/stats.h
//
// Drift statistics: small pure functions over a reference and a current
// sample of one column, one open table of them (DriftStatistics()), and the
// presets that pick a statistic and threshold per column (DriftPresets()).
// docs/monitoring.md defines every statistic and how it was verified.
//
//   namespace mon = keel::monitor;
//   auto ref = mon::NumericSample::FromValues(train_column);  // NaN, +-inf: missing
//   auto cur = mon::NumericSample::FromValues(window_column);
//   mon::ColumnData data = mon::NumericColumn(ref, cur);
//   KEEL_ASSIGN_OR_RETURN(mon::TestChoice choice, mon::ChooseTest("keel", mon::Summarize(data)));
//   KEEL_ASSIGN_OR_RETURN(mon::ColumnDrift d, mon::EvaluateColumn(data, choice));
//   if (d.drift) ...;  // d.value.score against d.threshold; d.missing, d.unseen
//
//   // Or one statistic directly, from sorted spans (e.g. a stored profile):
//   KEEL_ASSIGN_OR_RETURN(mon::KsResult ks, mon::KolmogorovSmirnov(ref_sorted, cur_sorted));
//
// Inputs are shaped so they can come from stored reference profiles as well
// as raw arrays: numeric statistics read ascending spans of non-missing
// values; PSI/Jensen-Shannon/Hellinger read shares on bins fitted once on the
// reference (QuantileBins) and current counts on those bins; categorical
// statistics read category -> count maps. Every input is mergeable: sorted
// samples merge by merging, bin counts and category counts by adding
// (NumericSample::Merge, CategoricalSample::Merge), so hour/day/week windows
// can be built from the same pieces.
//
// Errors: InvalidArgument for an empty side (no non-missing values), unsorted
// or non-finite sorted input, misaligned bins/counts, or a statistic that does
// not apply to the column kind. Nothing throws.
//
// Threads: everything here is a pure function or a plain value; the tables
// are immutable statics.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keel/core/result.h"
#include "keel/core/status.h"

namespace keel::monitor {

inline constexpr double kNoThreshold = std::numeric_limits<double>::quiet_NaN();

enum class ColumnKind : uint8_t { kNumeric, kCategorical };
std::string_view ColumnKindName(ColumnKind kind);  // "numeric", "categorical"

// ---------------------------------------------------------------------------
// Samples (exact, mergeable profiles of one side of a column)

// Non-missing values of a numeric column, ascending. NaN and +-infinity are
// missing (Evidently drops both before testing). A plain vector, so a
// column's own storage can become a sample without a copy.
using SortedValues = std::vector<double>;

struct NumericSample {
  SortedValues sorted;
  uint64_t missing = 0;

  static NumericSample FromValues(std::span<const double> values);
  // The same, sorting `values` in place and keeping its storage: no second
  // array (on a virtual machine, fresh memory costs more than the sort).
  static NumericSample FromValues(std::vector<double>&& values);
  // Merges another window's sample into this one (sorted merge, missing added).
  void Merge(const NumericSample& other);
  uint64_t rows() const { return sorted.size() + missing; }
};

// Category -> count of non-missing rows; categories compare bytewise.
using CategoryCounts = std::map<std::string, uint64_t, std::less<>>;

struct CategoricalSample {
  CategoryCounts counts;
  uint64_t missing = 0;

  void Add(std::string_view category, uint64_t n = 1);
  void AddMissing(uint64_t n = 1) { missing += n; }
  void Merge(const CategoricalSample& other);  // counts and missing added
  uint64_t non_missing() const;
  uint64_t rows() const { return non_missing() + missing; }
};

// ---------------------------------------------------------------------------
// Histograms

// Quantile bins fitted once on the reference (keel's PSI bins):
//   edges = unique(s[(k * n) / bins] for k = 1..bins-1), s = ascending reference,
//   bin(x) = number of edges <= x, so there are edges.size() + 1 bins and the
//   outer bins are open to -inf/+inf (no value is ever dropped).
// ref_shares[i] = reference count in bin i / n.
struct QuantileBins {
  std::vector<double> edges;
  std::vector<double> ref_shares;
  uint64_t ref_count = 0;
};
// InvalidArgument for an empty reference or bins < 1; ref_sorted as below.
[[nodiscard]] Result<QuantileBins> FitQuantileBins(std::span<const double> ref_sorted,
                                                   int bins = 10);
// Counts of `values` (any order, finite) in the bins of `edges` (the rule above).
std::vector<uint64_t> CountInBins(std::span<const double> edges, std::span<const double> values);
// The same counts for ascending `sorted` values, in O(edges * log n).
std::vector<uint64_t> CountSortedInBins(std::span<const double> edges,
                                        std::span<const double> sorted);

// Reference and current counts on the same bins or categories.
struct AlignedCounts {
  std::vector<std::string> labels;  // category names or bin descriptions
  std::vector<uint64_t> ref;
  std::vector<uint64_t> cur;
};
// The union of both maps' categories, in bytewise order.
AlignedCounts AlignCategories(const CategoryCounts& ref, const CategoryCounts& cur);
// One bin per distinct value of ref U cur (how chi-square and the z-test read
// a numeric column).
AlignedCounts DistinctValueCounts(std::span<const double> ref_sorted,
                                  std::span<const double> cur_sorted);
// Evidently's binning (get_binned_data): when the reference has more than 20
// distinct values, numpy.histogram_bin_edges(ref ++ cur, "sturges") with
// numpy.histogram's counting; otherwise one bin per distinct value of ref U cur.
[[nodiscard]] Result<AlignedCounts> EvidentlyBins(std::span<const double> ref_sorted,
                                                  std::span<const double> cur_sorted);

// counts[i] / sum(counts). Empty or all-zero counts give an empty vector.
std::vector<double> Shares(std::span<const uint64_t> counts);
// The empty-bin rule (Evidently's utils.get_binned_data "feel_zeroes"): with m
// the smallest non-zero share, every zero share becomes m / 1e6 when
// m <= 1e-4, else 1e-4. Applied to each side separately before PSI.
std::vector<double> FillEmptyShares(std::span<const double> shares);

// ---------------------------------------------------------------------------
// Statistics (pure functions). Sorted spans must be ascending and finite.

struct KsResult {
  double statistic = 0;  // D = max |F_ref(x) - F_cur(x)|
  double p_value = 1;
  bool exact = false;   // exact distribution (max(n_ref, n_cur) <= 10000), else asymptotic
  double location = 0;  // an x where the maximum is attained
  int sign = 1;         // +1 when F_ref > F_cur there, else -1
};
// Two-sided two-sample Kolmogorov-Smirnov test with scipy.stats.ks_2samp's
// method='auto': exact when max(n_ref, n_cur) <= 10000 (D is then rounded to
// h / lcm(n_ref, n_cur) as scipy does), else the Kolmogorov distribution
// kstwo.sf(D, round(n_ref * n_cur / (n_ref + n_cur))). An exact computation
// that fails falls back to the asymptotic one, as in scipy.
[[nodiscard]] Result<KsResult> KolmogorovSmirnov(std::span<const double> ref_sorted,
                                                 std::span<const double> cur_sorted);

// First Wasserstein distance between the two empirical distributions
// (scipy.stats.wasserstein_distance), in the column's units.
[[nodiscard]] Result<double> WassersteinDistance(std::span<const double> ref_sorted,
                                                 std::span<const double> cur_sorted);
// KolmogorovSmirnov and WassersteinDistance from one merge of the two sides
// (equal to both bit for bit): what a column's ks, wasserstein and
// wasserstein_norm share.
struct SortedComparison {
  KsResult ks;
  double wasserstein = 0;
};
[[nodiscard]] Result<SortedComparison> CompareSorted(std::span<const double> ref_sorted,
                                                     std::span<const double> cur_sorted);
// WassersteinDistance / max(std(ref, ddof=0), 0.001) (Evidently's "wasserstein").
[[nodiscard]] Result<double> WassersteinNormalized(std::span<const double> ref_sorted,
                                                   std::span<const double> cur_sorted);
// Population standard deviation (ddof 0); NaN when empty.
double PopulationStd(std::span<const double> values);

// PSI = sum((r - c) * ln(r / c)) over FillEmptyShares(ref), FillEmptyShares(cur).
// InvalidArgument when the sizes differ or a side has no mass.
[[nodiscard]] Result<double> Psi(std::span<const double> ref_shares,
                                 std::span<const double> cur_shares);
// Jensen-Shannon distance (scipy.spatial.distance.jensenshannon, natural log):
// p and q are first divided by their sums; sqrt((KL(p||m) + KL(q||m)) / 2),
// m = (p + q) / 2, in [0, sqrt(ln 2)]. Empty bins need no epsilon.
[[nodiscard]] Result<double> JensenShannonDistance(std::span<const double> p,
                                                   std::span<const double> q);
// Hellinger distance sqrt(sum((sqrt(p) - sqrt(q))^2)) / sqrt(2), in [0, 1],
// on p and q divided by their sums (Evidently's and NannyML's definition).
[[nodiscard]] Result<double> HellingerDistance(std::span<const double> p,
                                               std::span<const double> q);

struct ChiSquareResult {
  double statistic = 0;
  double p_value = 1;
  int64_t dof = 0;
};
// Chi-square test of homogeneity on the 2 x k table [ref; cur]
// (scipy.stats.chi2_contingency, correction=True): categories empty on both
// sides are dropped; Yates' correction when dof == 1; dof 0 (one category)
// gives statistic 0 and p 1; p = chi2.sf(statistic, dof).
[[nodiscard]] Result<ChiSquareResult> ChiSquareContingency(std::span<const uint64_t> ref_counts,
                                                           std::span<const uint64_t> cur_counts);
[[nodiscard]] Result<ChiSquareResult> ChiSquareContingency(const CategoryCounts& ref,
                                                           const CategoryCounts& cur);

struct ZTestResult {
  double statistic = 0;  // z for the share of `category`, ref minus cur
  double p_value = 1;    // two-sided: erfc(|z| / sqrt(2))
  std::string category;  // the category whose share was compared
};
// Two-sample z-test for proportions with the pooled variance (Evidently's
// z_stat_test): p1 = hits_ref / n_ref, p2 = hits_cur / n_cur,
// P = (p1 n_ref + p2 n_cur) / (n_ref + n_cur), z = (p1 - p2) / sqrt(P (1 - P) (1/n_ref + 1/n_cur)).
// P in {0, 1} (both samples the same single value) gives z = 0, p = 1.
[[nodiscard]] Result<ZTestResult> TwoProportionZTest(uint64_t ref_hits, uint64_t ref_n,
                                                     uint64_t cur_hits, uint64_t cur_n);
// The binary form: at most two categories in ref U cur (InvalidArgument
// otherwise); the compared category is the first in bytewise order.
[[nodiscard]] Result<ZTestResult> TwoProportionZTest(const CategoryCounts& ref,
                                                     const CategoryCounts& cur);

// Missing share of each side (missing / rows; NaN for a side with no rows)
// and the change cur - ref.
struct MissingShift {
  double ref_share = 0;
  double cur_share = 0;
  double change = 0;
};
MissingShift MissingShareChange(uint64_t ref_missing, uint64_t ref_rows, uint64_t cur_missing,
                                uint64_t cur_rows);

// Categories present in the current sample but absent from the reference,
// reported as such (the statistics stay finite: PSI's empty-bin rule, JS and
// chi-square need no special case).
struct UnseenCategories {
  std::vector<std::string> names;  // bytewise order
  uint64_t rows = 0;               // current rows in them
  double share = 0;                // of the current non-missing rows
};
UnseenCategories FindUnseenCategories(const CategoryCounts& ref, const CategoryCounts& cur);

// ---------------------------------------------------------------------------
// The statistics table

// One column's two sides as the table's statistics read them. Views only: the
// builder keeps the data alive. Numeric columns fill ref_sorted/cur_sorted
// (and optionally ref_bins + cur_bin_counts from a stored profile);
// categorical columns fill ref_counts/cur_counts.
struct ColumnData {
  ColumnKind kind = ColumnKind::kNumeric;
  std::span<const double> ref_sorted;
  std::span<const double> cur_sorted;
  // Reference quantile bins fitted once, and the current counts on them
  // (empty: counted from cur_sorted). Null: fitted from ref_sorted per call
  // with StatOptions::bins.
  const QuantileBins* ref_bins = nullptr;
  std::span<const uint64_t> cur_bin_counts;
  const CategoryCounts* ref_counts = nullptr;
  const CategoryCounts* cur_counts = nullptr;
  uint64_t ref_missing = 0;
  uint64_t cur_missing = 0;
  // CompareSorted of the two sides, computed by the first statistic that
  // needs it (ks, wasserstein, wasserstein_norm) so a column pays for one
  // merge. A ColumnData is used by one thread at a time.
  mutable std::optional<Result<SortedComparison>> compared;
};
ColumnData NumericColumn(const NumericSample& ref, const NumericSample& cur,
                         const QuantileBins* ref_bins = nullptr,
                         std::span<const uint64_t> cur_bin_counts = {});
ColumnData CategoricalColumn(const CategoricalSample& ref, const CategoricalSample& cur);

// How histogram statistics bin a numeric column.
enum class Binning : uint8_t {
  kReferenceQuantiles,  // QuantileBins (ColumnData::ref_bins, or fitted with `bins`)
  kEvidently,           // EvidentlyBins (needs both sorted sides)
};
struct StatOptions {
  int bins = 10;
  Binning binning = Binning::kReferenceQuantiles;
};

// What a statistic returns: the score compared with the threshold, and for
// tests the statistic behind the p-value.
struct StatValue {
  double score = 0;  // a p-value for Direction::kPValue rows, else the distance
  double statistic = std::numeric_limits<double>::quiet_NaN();  // D, chi-square, z; NaN otherwise
  int64_t dof = -1;                                             // chi-square only
};

enum class Direction : uint8_t {
  kDistance,  // drift when score >= threshold
  kPValue,    // drift when score < threshold
};

inline constexpr uint8_t KindBit(ColumnKind kind) { return uint8_t{1} << static_cast<int>(kind); }
inline constexpr uint8_t kNumericOnly = KindBit(ColumnKind::kNumeric);
inline constexpr uint8_t kCategoricalOnly = KindBit(ColumnKind::kCategorical);
inline constexpr uint8_t kAnyKind = kNumericOnly | kCategoricalOnly;

// One row of the table: a new statistic is one pure function and one row.
struct DriftStatistic {
  std::string_view name;  // stable id: "ks", "psi", "wasserstein_norm", ...
  std::string_view description;
  uint8_t kinds;  // KindBit mask of the column kinds it accepts
  Direction direction;
  double default_threshold;  // kNoThreshold: a threshold must be given
  Result<StatValue> (*compute)(const ColumnData& data, const StatOptions& options);
};

std::span<const DriftStatistic> DriftStatistics();
const DriftStatistic* FindDriftStatistic(std::string_view name);
// The row's verdict for a score (false for a NaN score).
bool IsDrift(const DriftStatistic& statistic, double score, double threshold);

// ---------------------------------------------------------------------------
// Presets: which statistic and threshold per column, and the dataset verdict

// What a preset decides on.
struct ColumnSummary {
  ColumnKind kind = ColumnKind::kNumeric;
  uint64_t reference_rows = 0;  // non-missing reference values
  uint64_t current_rows = 0;    // non-missing current values
  uint64_t unique_values = 0;   // distinct non-missing values in ref U cur (Evidently's n_values)
};
ColumnSummary Summarize(const ColumnData& data);

struct TestChoice {
  const DriftStatistic* statistic = nullptr;
  double threshold = kNoThreshold;
  StatOptions options;
};

struct DriftPreset {
  std::string_view name;  // "keel", "evidently"
  std::string_view description;
  double drift_share;  // dataset drift when drifted columns / columns >= drift_share
  TestChoice (*choose)(const ColumnSummary& column);
};
std::span<const DriftPreset> DriftPresets();
const DriftPreset* FindDriftPreset(std::string_view name);

// NotFound for an unknown preset.
[[nodiscard]] Result<TestChoice> ChooseTest(std::string_view preset, const ColumnSummary& column);
[[nodiscard]] Result<std::vector<TestChoice>> ChooseTests(std::string_view preset,
                                                          std::span<const ColumnSummary> columns);

// A statistic with its threshold chosen by name (threshold NaN: the row's default).
[[nodiscard]] Result<TestChoice> MakeChoice(std::string_view statistic,
                                            double threshold = kNoThreshold,
                                            StatOptions options = {});

struct ColumnDrift {
  std::string_view statistic;  // the row's name
  double threshold = 0;
  StatValue value;
  bool drift = false;
  MissingShift missing;
  UnseenCategories unseen;  // categorical columns only
};
// Runs choice.statistic on data. InvalidArgument when the statistic does not
// take the column's kind, when there is no threshold, or when a side has no
// non-missing values (the missing share is still available from
// MissingShareChange).
[[nodiscard]] Result<ColumnDrift> EvaluateColumn(const ColumnData& data, const TestChoice& choice);

struct DatasetDrift {
  uint64_t columns = 0;
  uint64_t drifted = 0;
  double share = 0;  // drifted / columns (0 with no columns)
  double drift_share = 0;
  bool drift = false;  // share >= drift_share (and at least one column)
};
[[nodiscard]] Result<DatasetDrift> DatasetVerdict(std::string_view preset,
                                                  std::span<const ColumnDrift> columns);
DatasetDrift DatasetVerdict(double drift_share, std::span<const bool> column_drift);

}  // namespace keel::monitor
