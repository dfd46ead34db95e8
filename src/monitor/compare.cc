// CompareTables: per-column drift between two tables (keel/monitor/drift.h).
#include <algorithm>
#include <cmath>
#include <memory>
#include <set>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "keel/monitor/drift.h"
#include "keel/monitor/reference.h"
#include "src/monitor/columns.h"

namespace keel::monitor {
namespace {

using data::Column;
using data::ColumnType;
using internal::CategoricalOf;
using internal::KindOf;

std::string_view TypeWord(ColumnType type) { return data::ColumnTypeName(type); }

// Equal-width bins over the finite range of both sorted sides.
Histogram NumericHistogram(std::span<const double> ref, std::span<const double> cur, int bins) {
  Histogram h;
  if (ref.empty() && cur.empty()) return h;
  double lo = std::numeric_limits<double>::infinity();
  double hi = -lo;
  for (std::span<const double> side : {ref, cur}) {
    if (side.empty()) continue;
    lo = std::min(lo, side.front());
    hi = std::max(hi, side.back());
  }
  if (!(hi > lo)) bins = 1;
  const double width = (hi - lo) / bins;
  h.edges.reserve(static_cast<size_t>(bins) + 1);
  for (int i = 0; i < bins; ++i) h.edges.push_back(lo + width * i);
  h.edges.push_back(hi);
  // Bin i is [edges[i], edges[i+1]); the last also holds hi.
  std::span<const double> inner(h.edges.data() + 1, static_cast<size_t>(bins) - 1);
  h.ref = CountSortedInBins(inner, ref);
  h.cur = CountSortedInBins(inner, cur);
  return h;
}

// The `top` most frequent categories of ref + cur, then "(other)" when any
// category is left out.
Histogram CategoricalHistogram(const CategoryCounts& ref, const CategoryCounts& cur, int top) {
  AlignedCounts all = AlignCategories(ref, cur);
  std::vector<size_t> order(all.labels.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return all.ref[a] + all.cur[a] > all.ref[b] + all.cur[b];
  });
  Histogram h;
  const size_t keep = std::min(order.size(), static_cast<size_t>(std::max(top, 1)));
  uint64_t other_ref = 0;
  uint64_t other_cur = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    if (k < keep) {
      h.labels.push_back(all.labels[i]);
      h.ref.push_back(all.ref[i]);
      h.cur.push_back(all.cur[i]);
    } else {
      other_ref += all.ref[i];
      other_cur += all.cur[i];
    }
  }
  if (keep < order.size()) {
    h.labels.emplace_back("(other)");
    h.ref.push_back(other_ref);
    h.cur.push_back(other_cur);
  }
  return h;
}

struct Plan {
  const ReferenceColumn* ref = nullptr;
  const Column* cur = nullptr;
  Column* consume = nullptr;  // set when cur's values may be sorted in place
  ColumnRole role = ColumnRole::kFeature;
};

// The current data's columns; `consumable` is either empty or the same
// columns, mutable, whose numeric values the comparison may take.
struct Current {
  size_t rows = 0;
  std::span<const Column> columns;
  std::span<Column> consumable;
  int Find(std::string_view name) const {
    for (size_t i = 0; i < columns.size(); ++i) {
      if (columns[i].name() == name) return static_cast<int>(i);
    }
    return -1;
  }
};

struct Forced {
  const DriftStatistic* statistic;
  double threshold;
};

// Fills everything in `out` but name/role from the reference and the current column.
void CompareColumn(const Plan& plan, int ref_bins, const DriftOptions& options,
                   const std::vector<Forced>& forced,
                   const std::vector<const DriftStatistic*>& extras, ColumnReport& out) {
  const ReferenceColumn& ref = *plan.ref;
  out.kind = ref.kind;
  out.ref_rows = ref.rows();
  out.cur_rows = plan.cur->size();
  StatOptions stat_options;
  stat_options.bins = options.bins;

  NumericSample cur_num;
  CategoricalSample cur_cat;
  QuantileBins refit;
  std::vector<uint64_t> cur_bin_counts;
  ColumnData data;
  if (out.kind == ColumnKind::kNumeric) {
    cur_num = plan.consume != nullptr
                  ? NumericSample::FromValues(std::move(*plan.consume).ReleaseValues())
                  : NumericSample::FromValues(plan.cur->values());
    const QuantileBins* bins = nullptr;
    if (!ref.numeric.sorted.empty()) {
      bins = &ref.bins;
      if (ref_bins != options.bins) {  // the profile's bins are not the ones asked for
        Result<QuantileBins> b = FitQuantileBins(ref.numeric.sorted, options.bins);
        if (b.ok()) refit = std::move(b).value();
        bins = b.ok() ? &refit : nullptr;
      }
      if (bins != nullptr) cur_bin_counts = CountSortedInBins(bins->edges, cur_num.sorted);
    }
    data = NumericColumn(ref.numeric, cur_num, bins, cur_bin_counts);
    out.histogram = NumericHistogram(ref.numeric.sorted, cur_num.sorted, options.histogram_bins);
  } else {
    cur_cat = CategoricalOf(*plan.cur);
    data = CategoricalColumn(ref.categorical, cur_cat);
    out.histogram =
        CategoricalHistogram(ref.categorical.counts, cur_cat.counts, options.top_categories);
  }

  Result<TestChoice> choice = [&]() -> Result<TestChoice> {
    for (const Forced& f : forced) {
      if ((f.statistic->kinds & KindBit(out.kind)) != 0) {
        return MakeChoice(f.statistic->name, f.threshold, stat_options);
      }
    }
    return ChooseTest(options.preset, Summarize(data));
  }();
  if (!choice.ok()) {
    out.error = choice.status().message();
    return;
  }
  out.direction = choice->statistic->direction;
  Result<ColumnDrift> drift = EvaluateColumn(data, *choice);
  if (!drift.ok()) {
    out.error = drift.status().message();
    // The missing-share change is still meaningful.
    out.drift.missing =
        MissingShareChange(data.ref_missing, out.ref_rows, data.cur_missing, out.cur_rows);
    out.drift.statistic = choice->statistic->name;
    out.drift.threshold = choice->threshold;
    return;
  }
  out.drift = std::move(drift).value();
  for (const DriftStatistic* stat : extras) {
    if ((stat->kinds & KindBit(out.kind)) == 0) continue;
    ExtraStatistic e;
    e.name = stat->name;
    Result<StatValue> v = stat->compute(data, stat_options);
    if (v.ok()) {
      e.value = *v;
      e.drift = IsDrift(*stat, e.value.score, stat->default_threshold);
    } else {
      e.error = v.status().message();
    }
    out.extra.push_back(std::move(e));
  }
}

std::string KnownStatistics() {
  std::string known;
  for (const DriftStatistic& s : DriftStatistics()) {
    known += (known.empty() ? "" : ", ") + std::string(s.name);
  }
  return known;
}

}  // namespace

std::string_view ColumnRoleName(ColumnRole role) {
  switch (role) {
    case ColumnRole::kFeature:
      return "feature";
    case ColumnRole::kTarget:
      return "target";
    case ColumnRole::kPrediction:
      return "prediction";
  }
  return "feature";
}

namespace {

Result<DriftReport> Compare(const ReferenceProfile& reference, const Current& current,
                            const DriftOptions& options) {
  const DriftPreset* preset = FindDriftPreset(options.preset);
  if (preset == nullptr) {
    std::string known;
    for (const DriftPreset& p : DriftPresets()) {
      known += (known.empty() ? "" : ", ") + std::string(p.name);
    }
    return InvalidArgument("unknown drift preset '" + options.preset + "' (known: " + known + ")");
  }
  auto find_stat = [](const std::string& name) -> Result<const DriftStatistic*> {
    if (const DriftStatistic* s = FindDriftStatistic(name)) return s;
    return InvalidArgument("unknown drift statistic '" + name + "' (known: " + KnownStatistics() +
                           ")");
  };
  std::vector<Forced> forced;
  for (const DriftOptions::Test& test : options.tests) {
    KEEL_ASSIGN_OR_RETURN(const DriftStatistic* s, find_stat(test.name));
    if (std::isnan(test.threshold) && std::isnan(s->default_threshold)) {
      return InvalidArgument("statistic '" + test.name + "' has no default threshold: give one");
    }
    forced.push_back(Forced{s, test.threshold});
  }
  std::vector<const DriftStatistic*> extras;
  for (const std::string& name : options.extra) {
    KEEL_ASSIGN_OR_RETURN(const DriftStatistic* s, find_stat(name));
    if (std::find(extras.begin(), extras.end(), s) == extras.end()) extras.push_back(s);
  }
  if (options.bins < 1) return InvalidArgument("bins must be at least 1");
  if (options.histogram_bins < 1) return InvalidArgument("histogram bins must be at least 1");

  for (const std::string& name : options.exclude) {
    if (reference.Find(name) == nullptr) {
      return InvalidArgument("excluded column '" + name + "' is not in the reference data");
    }
  }
  std::vector<std::string> names;
  if (options.columns.empty()) {
    for (const ReferenceColumn& c : reference.columns) names.push_back(c.name);
  } else {
    for (const std::string& name : options.columns) {
      if (reference.Find(name) == nullptr) {
        return InvalidArgument("column '" + name + "' is not in the reference data");
      }
      names.push_back(name);
    }
  }
  for (const std::string* role_column : {&options.target, &options.prediction}) {
    if (!role_column->empty() && reference.Find(*role_column) == nullptr) {
      return InvalidArgument("column '" + *role_column + "' is not in the reference data");
    }
  }

  const std::set<std::string, std::less<>> excluded(options.exclude.begin(), options.exclude.end());
  DriftReport report;
  report.preset = preset->name;
  report.reference_rows = reference.rows;
  report.current_rows = current.rows;
  std::vector<Plan> plans;
  std::vector<int> uses(current.columns.size(), 0);
  for (const std::string& name : names) {
    if (excluded.count(name) > 0) continue;
    Plan plan;
    plan.ref = reference.Find(name);
    const int index = current.Find(name);
    if (index < 0) {
      return InvalidArgument("column '" + name +
                             "' is in the reference data but not in the current data");
    }
    plan.cur = &current.columns[static_cast<size_t>(index)];
    ++uses[static_cast<size_t>(index)];
    if (plan.ref->kind != KindOf(plan.cur->type())) {
      return InvalidArgument(
          "column '" + name + "' is " +
          std::string(plan.ref->boolean ? "boolean" : ColumnKindName(plan.ref->kind)) +
          " in the reference data but " + std::string(TypeWord(plan.cur->type())) +
          " in the current data");
    }
    if (name == options.prediction) {
      plan.role = ColumnRole::kPrediction;
    } else if (name == options.target) {
      plan.role = ColumnRole::kTarget;
    }
    plans.push_back(plan);
    ColumnReport column;
    column.name = name;
    column.role = plan.role;
    report.columns.push_back(std::move(column));
  }

  // A column compared once may be sorted in place; one listed twice is read.
  if (!current.consumable.empty()) {
    for (Plan& plan : plans) {
      const auto index = static_cast<size_t>(plan.cur - current.columns.data());
      if (uses[index] == 1) plan.consume = &current.consumable[index];
    }
  }

  ThreadPool& pool = options.pool != nullptr ? *options.pool : ThreadPool::Default();
  pool.ParallelFor(
      plans.size(),
      [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) {
          CompareColumn(plans[i], reference.bins, options, forced, extras, report.columns[i]);
        }
      },
      1);

  std::unique_ptr<bool[]> drifted = std::make_unique<bool[]>(report.columns.size());
  size_t features = 0;
  for (size_t i = 0; i < report.columns.size(); ++i) {
    const ColumnReport& c = report.columns[i];
    if (c.role == ColumnRole::kPrediction) report.prediction_index = static_cast<int>(i);
    if (c.role != ColumnRole::kFeature || !c.error.empty()) continue;
    drifted[features++] = c.drift.drift;
  }
  report.dataset =
      DatasetVerdict(preset->drift_share, std::span<const bool>(drifted.get(), features));
  return report;
}

// Profiles the reference's columns the comparison reads (from `consumable`,
// sorted in place, when given), then compares `current` with it.
Result<DriftReport> CompareWithTable(const data::Table& reference, data::Table* consumable,
                                     const Current& current, const DriftOptions& options) {
  // Only the columns the comparison reads are profiled; unknown names are
  // left for Compare to report.
  ReferenceOptions ref_options;
  ref_options.bins = options.bins;
  ref_options.pool = options.pool;
  std::set<std::string, std::less<>> wanted(options.columns.begin(), options.columns.end());
  for (const std::string* role_column : {&options.target, &options.prediction}) {
    if (!wanted.empty() && !role_column->empty()) wanted.insert(*role_column);
  }
  for (const data::Column& c : reference.columns()) {
    const bool listed = wanted.empty() || wanted.count(c.name()) > 0;
    const bool excluded = std::find(options.exclude.begin(), options.exclude.end(), c.name()) !=
                          options.exclude.end();
    if (listed && !excluded) ref_options.columns.push_back(c.name());
  }
  if (ref_options.columns.empty() && reference.num_columns() > 0) {
    // Everything excluded: profile nothing, but keep the names for the checks.
    ref_options.columns.push_back(reference.column(0).name());
  }
  if (options.bins < 1) return InvalidArgument("bins must be at least 1");
  // Names the comparison checks against the reference must exist in the
  // profile even when not profiled: they are added as empty columns.
  std::vector<ReferenceColumn> stubs;
  for (const data::Column& c : reference.columns()) {
    if (std::find(ref_options.columns.begin(), ref_options.columns.end(), c.name()) ==
        ref_options.columns.end()) {
      ReferenceColumn stub;
      stub.name = c.name();
      stub.kind = KindOf(c.type());
      stubs.push_back(std::move(stub));
    }
  }
  KEEL_ASSIGN_OR_RETURN(ReferenceProfile profile,
                        consumable != nullptr ? BuildReference(std::move(*consumable), ref_options)
                                              : BuildReference(reference, ref_options));
  for (ReferenceColumn& stub : stubs) profile.columns.push_back(std::move(stub));
  return Compare(profile, current, options);
}

Current ViewOf(const data::Table& table) { return Current{table.num_rows(), table.columns(), {}}; }

}  // namespace

Result<DriftReport> CompareToReference(const ReferenceProfile& reference,
                                       const data::Table& current, const DriftOptions& options) {
  return Compare(reference, ViewOf(current), options);
}

Result<DriftReport> CompareToReference(const ReferenceProfile& reference, data::Table&& current,
                                       const DriftOptions& options) {
  const size_t rows = current.num_rows();
  std::vector<Column> columns = std::move(current).ReleaseColumns();
  return Compare(reference, Current{rows, columns, columns}, options);
}

Result<DriftReport> CompareTables(const data::Table& reference, const data::Table& current,
                                  const DriftOptions& options) {
  return CompareWithTable(reference, nullptr, ViewOf(current), options);
}

Result<DriftReport> CompareTables(data::Table&& reference, data::Table&& current,
                                  const DriftOptions& options) {
  if (&reference == &current) {  // one table twice: nothing to take
    return CompareTables(std::as_const(reference), std::as_const(current), options);
  }
  // Both are left empty whatever the outcome.
  data::Table ref;
  std::swap(ref, reference);
  const size_t rows = current.num_rows();
  std::vector<Column> columns = std::move(current).ReleaseColumns();
  return CompareWithTable(ref, &ref, Current{rows, columns, columns}, options);
}

}  // namespace keel::monitor
