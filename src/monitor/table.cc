// The drift statistics table, the presets that choose from it, and column /
// dataset evaluation (keel/monitor/stats.h). A new statistic is a pure
// function in stats.cc (declared in stats.h) and one row in DriftStatistics().
#include "keel/monitor/stats.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

namespace keel::monitor {
namespace {

Status RequireKind(const ColumnData& d, ColumnKind kind, std::string_view stat) {
  if (d.kind != kind) {
    return InvalidArgument(std::string(stat) + " does not apply to " +
                           std::string(ColumnKindName(d.kind)) + " columns");
  }
  if (kind == ColumnKind::kCategorical && (d.ref_counts == nullptr || d.cur_counts == nullptr)) {
    return InvalidArgument("categorical column data without category counts");
  }
  return OkStatus();
}

struct SharePair {
  std::vector<double> ref;
  std::vector<double> cur;
};

Status NoMass(const std::vector<double>& ref, const std::vector<double>& cur) {
  if (ref.empty()) return InvalidArgument("reference has no non-missing values");
  if (cur.empty()) return InvalidArgument("current has no non-missing values");
  return OkStatus();
}

// The two histograms a histogram statistic compares: categories for
// categorical columns; for numeric columns the reference quantile bins
// (stored or fitted now) or Evidently's bins, per options.binning.
Result<SharePair> HistogramShares(const ColumnData& d, const StatOptions& options) {
  SharePair out;
  if (d.kind == ColumnKind::kCategorical) {
    KEEL_RETURN_IF_ERROR(RequireKind(d, ColumnKind::kCategorical, "histogram"));
    const AlignedCounts a = AlignCategories(*d.ref_counts, *d.cur_counts);
    out.ref = Shares(a.ref);
    out.cur = Shares(a.cur);
  } else if (options.binning == Binning::kEvidently) {
    KEEL_ASSIGN_OR_RETURN(AlignedCounts a, EvidentlyBins(d.ref_sorted, d.cur_sorted));
    out.ref = Shares(a.ref);
    out.cur = Shares(a.cur);
  } else {
    QuantileBins fitted;
    const QuantileBins* bins = d.ref_bins;
    if (bins == nullptr) {
      KEEL_ASSIGN_OR_RETURN(fitted, FitQuantileBins(d.ref_sorted, options.bins));
      bins = &fitted;
    }
    if (bins->ref_shares.size() != bins->edges.size() + 1) {
      return InvalidArgument("reference bins: shares do not match edges");
    }
    std::vector<uint64_t> counts;
    if (!d.cur_bin_counts.empty()) {
      if (d.cur_bin_counts.size() != bins->ref_shares.size()) {
        return InvalidArgument("current bin counts do not match the reference bins");
      }
      counts.assign(d.cur_bin_counts.begin(), d.cur_bin_counts.end());
    } else {
      counts = CountInBins(bins->edges, d.cur_sorted);
    }
    out.ref = bins->ref_shares;
    out.cur = Shares(counts);
  }
  KEEL_RETURN_IF_ERROR(NoMass(out.ref, out.cur));
  return out;
}

// Chi-square and the z-test read a numeric column one value per category.
AlignedCounts CategoryTable(const ColumnData& d) {
  if (d.kind == ColumnKind::kNumeric) return DistinctValueCounts(d.ref_sorted, d.cur_sorted);
  return AlignCategories(*d.ref_counts, *d.cur_counts);
}

Status RequireCategoryTable(const ColumnData& d) {
  if (d.kind == ColumnKind::kCategorical) {
    return RequireKind(d, ColumnKind::kCategorical, "this statistic");
  }
  if (d.ref_sorted.empty()) return InvalidArgument("reference has no non-missing values");
  if (d.cur_sorted.empty()) return InvalidArgument("current has no non-missing values");
  return OkStatus();
}

// ---------------------------------------------------------------- row functions

const Result<SortedComparison>& Compared(const ColumnData& d) {
  if (!d.compared) d.compared = CompareSorted(d.ref_sorted, d.cur_sorted);
  return *d.compared;
}

Result<StatValue> RunKs(const ColumnData& d, const StatOptions&) {
  KEEL_RETURN_IF_ERROR(RequireKind(d, ColumnKind::kNumeric, "ks"));
  const Result<SortedComparison>& c = Compared(d);
  KEEL_RETURN_IF_ERROR(c.status());
  return StatValue{.score = c->ks.p_value, .statistic = c->ks.statistic};
}

Result<StatValue> RunWasserstein(const ColumnData& d, const StatOptions&) {
  KEEL_RETURN_IF_ERROR(RequireKind(d, ColumnKind::kNumeric, "wasserstein"));
  const Result<SortedComparison>& c = Compared(d);
  KEEL_RETURN_IF_ERROR(c.status());
  return StatValue{.score = c->wasserstein};
}

Result<StatValue> RunWassersteinNorm(const ColumnData& d, const StatOptions&) {
  KEEL_RETURN_IF_ERROR(RequireKind(d, ColumnKind::kNumeric, "wasserstein_norm"));
  const Result<SortedComparison>& c = Compared(d);
  KEEL_RETURN_IF_ERROR(c.status());
  return StatValue{.score = c->wasserstein / std::max(PopulationStd(d.ref_sorted), 0.001)};
}

Result<StatValue> RunPsi(const ColumnData& d, const StatOptions& o) {
  KEEL_ASSIGN_OR_RETURN(SharePair h, HistogramShares(d, o));
  KEEL_ASSIGN_OR_RETURN(double v, Psi(h.ref, h.cur));
  return StatValue{.score = v};
}

Result<StatValue> RunJensenShannon(const ColumnData& d, const StatOptions& o) {
  KEEL_ASSIGN_OR_RETURN(SharePair h, HistogramShares(d, o));
  KEEL_ASSIGN_OR_RETURN(double v, JensenShannonDistance(h.ref, h.cur));
  return StatValue{.score = v};
}

Result<StatValue> RunHellinger(const ColumnData& d, const StatOptions& o) {
  KEEL_ASSIGN_OR_RETURN(SharePair h, HistogramShares(d, o));
  KEEL_ASSIGN_OR_RETURN(double v, HellingerDistance(h.ref, h.cur));
  return StatValue{.score = v};
}

Result<StatValue> RunChiSquare(const ColumnData& d, const StatOptions&) {
  KEEL_RETURN_IF_ERROR(RequireCategoryTable(d));
  const AlignedCounts t = CategoryTable(d);
  KEEL_ASSIGN_OR_RETURN(ChiSquareResult r, ChiSquareContingency(t.ref, t.cur));
  return StatValue{.score = r.p_value, .statistic = r.statistic, .dof = r.dof};
}

Result<StatValue> RunZTest(const ColumnData& d, const StatOptions&) {
  KEEL_RETURN_IF_ERROR(RequireCategoryTable(d));
  const AlignedCounts t = CategoryTable(d);
  if (t.labels.size() > 2) {
    return InvalidArgument("ztest compares two values; the column has " +
                           std::to_string(t.labels.size()));
  }
  uint64_t ref_n = 0, cur_n = 0;
  for (size_t i = 0; i < t.labels.size(); ++i) {
    ref_n += t.ref[i];
    cur_n += t.cur[i];
  }
  if (t.labels.empty()) return InvalidArgument("no non-missing values");
  KEEL_ASSIGN_OR_RETURN(ZTestResult r, TwoProportionZTest(t.ref[0], ref_n, t.cur[0], cur_n));
  return StatValue{.score = r.p_value, .statistic = r.statistic};
}

// ---------------------------------------------------------------- the table

constexpr DriftStatistic kStatistics[] = {
    {"ks", "two-sample Kolmogorov-Smirnov test; p-value exact for max(n) <= 10000, else asymptotic",
     kNumericOnly, Direction::kPValue, 0.05, RunKs},
    {"psi",
     "population stability index on 10 reference-quantile bins (numeric) or categories, "
     "empty bins filled by Evidently's epsilon rule",
     kAnyKind, Direction::kDistance, 0.2, RunPsi},
    {"wasserstein", "first Wasserstein distance in the column's units (no default threshold)",
     kNumericOnly, Direction::kDistance, kNoThreshold, RunWasserstein},
    {"wasserstein_norm", "Wasserstein distance / max(std(ref), 0.001) (Evidently's wasserstein)",
     kNumericOnly, Direction::kDistance, 0.1, RunWassersteinNorm},
    {"jensenshannon", "Jensen-Shannon distance (natural log) on the bins or categories", kAnyKind,
     Direction::kDistance, 0.1, RunJensenShannon},
    {"hellinger", "Hellinger distance on the bins or categories", kAnyKind, Direction::kDistance,
     0.1, RunHellinger},
    {"chisquare",
     "chi-square test of homogeneity on the 2 x k contingency table (numeric: one category per "
     "value)",
     kAnyKind, Direction::kPValue, 0.05, RunChiSquare},
    {"ztest", "two-sample z-test for proportions (at most two categories or values)", kAnyKind,
     Direction::kPValue, 0.05, RunZTest},
};

// ---------------------------------------------------------------- presets

TestChoice Choice(std::string_view name, double threshold, StatOptions options = {}) {
  return TestChoice{FindDriftStatistic(name), threshold, options};
}

// keel: a calibrated test while the reference is small, a magnitude that does
// not grow significant with sample size once it is large (docs/monitoring.md).
TestChoice ChooseKeel(const ColumnSummary& c) {
  if (c.kind == ColumnKind::kNumeric) {
    return c.reference_rows <= 1000 ? Choice("ks", 0.05) : Choice("psi", 0.2);
  }
  return c.reference_rows <= 1000 ? Choice("chisquare", 0.05) : Choice("psi", 0.2);
}

// Evidently's get_default_stattest (DataDriftPreset without a stattest).
TestChoice ChooseEvidently(const ColumnSummary& c) {
  const StatOptions evidently_bins{.binning = Binning::kEvidently};
  if (c.reference_rows <= 1000) {
    if (c.kind == ColumnKind::kNumeric && c.unique_values > 5) return Choice("ks", 0.05);
    return c.unique_values > 2 ? Choice("chisquare", 0.05) : Choice("ztest", 0.05);
  }
  if (c.kind == ColumnKind::kNumeric) {
    return c.unique_values > 5 ? Choice("wasserstein_norm", 0.1)
                               : Choice("jensenshannon", 0.1, evidently_bins);
  }
  return Choice("jensenshannon", 0.1, evidently_bins);
}

constexpr DriftPreset kPresets[] = {
    {"keel",
     "numeric: KS p < 0.05 up to 1000 reference rows, else PSI (10 reference-quantile bins) "
     ">= 0.2; categorical: chi-square contingency p < 0.05 up to 1000 reference rows, else PSI "
     ">= 0.2; dataset drift when >= 50% of columns drift",
     0.5, ChooseKeel},
    {"evidently",
     "Evidently's default stattest choice: up to 1000 reference rows KS (numeric, > 5 values), "
     "chi-square (> 2 values) or z-test; above, Wasserstein normed >= 0.1 (numeric, > 5 values) "
     "or Jensen-Shannon >= 0.1; dataset drift when >= 50% of columns drift",
     0.5, ChooseEvidently},
};

uint64_t NonMissingRef(const ColumnData& d) {
  if (d.kind == ColumnKind::kCategorical) {
    uint64_t n = 0;
    if (d.ref_counts != nullptr) {
      for (const auto& [name, c] : *d.ref_counts) n += c;
    }
    return n;
  }
  if (d.ref_sorted.empty() && d.ref_bins != nullptr) return d.ref_bins->ref_count;
  return d.ref_sorted.size();
}

uint64_t NonMissingCur(const ColumnData& d) {
  if (d.kind == ColumnKind::kCategorical) {
    uint64_t n = 0;
    if (d.cur_counts != nullptr) {
      for (const auto& [name, c] : *d.cur_counts) n += c;
    }
    return n;
  }
  if (d.cur_sorted.empty() && !d.cur_bin_counts.empty()) {
    uint64_t n = 0;
    for (uint64_t c : d.cur_bin_counts) n += c;
    return n;
  }
  return d.cur_sorted.size();
}

// Evidently's get_dataset_drift: share = drifted / columns, drift when share >= drift_share.
DatasetDrift Verdict(uint64_t columns, uint64_t drifted, double drift_share) {
  DatasetDrift out;
  out.columns = columns;
  out.drifted = drifted;
  out.drift_share = drift_share;
  out.share = columns == 0 ? 0.0 : static_cast<double>(drifted) / static_cast<double>(columns);
  out.drift = columns > 0 && out.share >= drift_share;
  return out;
}

}  // namespace

std::span<const DriftStatistic> DriftStatistics() { return kStatistics; }

const DriftStatistic* FindDriftStatistic(std::string_view name) {
  for (const DriftStatistic& s : kStatistics) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

bool IsDrift(const DriftStatistic& statistic, double score, double threshold) {
  if (std::isnan(score) || std::isnan(threshold)) return false;
  return statistic.direction == Direction::kDistance ? score >= threshold : score < threshold;
}

ColumnData NumericColumn(const NumericSample& ref, const NumericSample& cur,
                         const QuantileBins* ref_bins, std::span<const uint64_t> cur_bin_counts) {
  ColumnData d;
  d.kind = ColumnKind::kNumeric;
  d.ref_sorted = ref.sorted;
  d.cur_sorted = cur.sorted;
  d.ref_bins = ref_bins;
  d.cur_bin_counts = cur_bin_counts;
  d.ref_missing = ref.missing;
  d.cur_missing = cur.missing;
  return d;
}

ColumnData CategoricalColumn(const CategoricalSample& ref, const CategoricalSample& cur) {
  ColumnData d;
  d.kind = ColumnKind::kCategorical;
  d.ref_counts = &ref.counts;
  d.cur_counts = &cur.counts;
  d.ref_missing = ref.missing;
  d.cur_missing = cur.missing;
  return d;
}

ColumnSummary Summarize(const ColumnData& d) {
  ColumnSummary s;
  s.kind = d.kind;
  s.reference_rows = NonMissingRef(d);
  s.current_rows = NonMissingCur(d);
  if (d.kind == ColumnKind::kCategorical) {
    if (d.ref_counts != nullptr && d.cur_counts != nullptr) {
      s.unique_values = AlignCategories(*d.ref_counts, *d.cur_counts).labels.size();
    }
    return s;
  }
  size_t i = 0, j = 0;
  const auto& r = d.ref_sorted;
  const auto& c = d.cur_sorted;
  while (i < r.size() || j < c.size()) {
    const double v = (j >= c.size() || (i < r.size() && r[i] <= c[j])) ? r[i] : c[j];
    while (i < r.size() && r[i] == v) ++i;
    while (j < c.size() && c[j] == v) ++j;
    ++s.unique_values;
  }
  return s;
}

std::span<const DriftPreset> DriftPresets() { return kPresets; }

const DriftPreset* FindDriftPreset(std::string_view name) {
  for (const DriftPreset& p : kPresets) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

Result<TestChoice> ChooseTest(std::string_view preset, const ColumnSummary& column) {
  const DriftPreset* p = FindDriftPreset(preset);
  if (p == nullptr) return NotFound("unknown drift preset '" + std::string(preset) + "'");
  return p->choose(column);
}

Result<std::vector<TestChoice>> ChooseTests(std::string_view preset,
                                            std::span<const ColumnSummary> columns) {
  const DriftPreset* p = FindDriftPreset(preset);
  if (p == nullptr) return NotFound("unknown drift preset '" + std::string(preset) + "'");
  std::vector<TestChoice> out;
  out.reserve(columns.size());
  for (const ColumnSummary& c : columns) out.push_back(p->choose(c));
  return out;
}

Result<TestChoice> MakeChoice(std::string_view statistic, double threshold, StatOptions options) {
  const DriftStatistic* s = FindDriftStatistic(statistic);
  if (s == nullptr) return NotFound("unknown drift statistic '" + std::string(statistic) + "'");
  return TestChoice{s, std::isnan(threshold) ? s->default_threshold : threshold, options};
}

Result<ColumnDrift> EvaluateColumn(const ColumnData& data, const TestChoice& choice) {
  const DriftStatistic* s = choice.statistic;
  if (s == nullptr) return InvalidArgument("no drift statistic chosen");
  if ((s->kinds & KindBit(data.kind)) == 0) {
    return InvalidArgument(std::string(s->name) + " does not apply to " +
                           std::string(ColumnKindName(data.kind)) + " columns");
  }
  const double threshold = std::isnan(choice.threshold) ? s->default_threshold : choice.threshold;
  if (std::isnan(threshold)) {
    return InvalidArgument(std::string(s->name) + " has no default threshold; give one");
  }
  KEEL_ASSIGN_OR_RETURN(StatValue value, s->compute(data, choice.options));
  ColumnDrift out;
  out.statistic = s->name;
  out.threshold = threshold;
  out.value = value;
  out.drift = IsDrift(*s, value.score, threshold);
  const uint64_t ref_n = NonMissingRef(data), cur_n = NonMissingCur(data);
  out.missing = MissingShareChange(data.ref_missing, ref_n + data.ref_missing, data.cur_missing,
                                   cur_n + data.cur_missing);
  if (data.kind == ColumnKind::kCategorical) {
    out.unseen = FindUnseenCategories(*data.ref_counts, *data.cur_counts);
  }
  return out;
}

Result<DatasetDrift> DatasetVerdict(std::string_view preset, std::span<const ColumnDrift> columns) {
  const DriftPreset* p = FindDriftPreset(preset);
  if (p == nullptr) return NotFound("unknown drift preset '" + std::string(preset) + "'");
  uint64_t drifted = 0;
  for (const ColumnDrift& c : columns) drifted += c.drift ? 1 : 0;
  return Verdict(columns.size(), drifted, p->drift_share);
}

DatasetDrift DatasetVerdict(double drift_share, std::span<const bool> column_drift) {
  uint64_t drifted = 0;
  for (bool b : column_drift) drifted += b ? 1 : 0;
  return Verdict(column_drift.size(), drifted, drift_share);
}

}  // namespace keel::monitor
