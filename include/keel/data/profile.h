// File: keel/data/profile.h
//
// A reference profile of a Table's columns, stored with a model version and
// compared later against live data for drift (PSI, KS, category shifts).
//
//   KEEL_ASSIGN_OR_RETURN(keel::data::TableProfile p, keel::data::ProfileTable(train));
//   const keel::data::ColumnProfile* age = p.Find("age");
//   double median = age->quantiles[10];            // quantile_probs[10] == 0.5
//   std::string saved = p.ToJson();
//   KEEL_ASSIGN_OR_RETURN(auto again, keel::data::TableProfile::FromJson(saved));
//
// Numeric columns (count = non-missing values):
//   min, max      over the non-missing values (may be +-infinity).
//   mean, std     over the finite values; std is the population standard
//                 deviation (divides by n).
//   quantiles     one per quantile_probs entry (0, 1/q, ..., 1; q =
//                 ProfileOptions::quantile_intervals), linear interpolation
//                 between order statistics (numpy's default, "type 7").
//   histogram     `histogram_bins` equal-width bins between the smallest and
//                 largest finite value: bin i is [edges[i], edges[i+1]), the
//                 last bin also holds edges[bins]; -infinity counts in the
//                 first bin and +infinity in the last. When all finite values
//                 are equal every edge is that value and all of them count in
//                 bin 0.
//   With no non-missing value, the statistics are NaN and quantiles,
//   edges and counts are empty; with no finite value, mean/std are NaN and
//   the histogram is empty.
// Categorical columns: the categories present (sorted bytewise) and their
// counts. Boolean columns: always the two categories "false" and "true".
//
// Threads: plain values; ProfileTable is thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "keel/core/result.h"
#include "keel/data/table.h"

namespace keel::data {

struct ProfileOptions {
  int quantile_intervals = 20;  // quantiles at 0, 0.05, ..., 1
  int histogram_bins = 20;
  // Columns to profile, in this order; empty means all, in table order.
  std::vector<std::string> columns;
};

struct ColumnProfile {
  std::string name;
  ColumnType type = ColumnType::kNumeric;
  uint64_t count = 0;    // non-missing values
  uint64_t missing = 0;  // missing values; count + missing = rows
  // Numeric.
  double min = 0, max = 0, mean = 0, std = 0;
  std::vector<double> quantiles;        // at TableProfile::quantile_probs
  std::vector<double> histogram_edges;  // bins + 1 edges
  std::vector<uint64_t> histogram_counts;
  // Categorical and boolean.
  std::vector<std::string> categories;
  std::vector<uint64_t> category_counts;
};

struct TableProfile {
  uint64_t num_rows = 0;
  std::vector<double> quantile_probs;
  std::vector<ColumnProfile> columns;

  // The profile of column `name`, or nullptr.
  const ColumnProfile* Find(std::string_view name) const;

  // {"keel_profile":1,"num_rows":...,"quantile_probs":[...],"columns":[
  //   {"name":..,"type":"numeric","count":..,"missing":..,"min":..,"max":..,
  //    "mean":..,"std":..,"quantiles":[..],"histogram":{"edges":[..],"counts":[..]}},
  //   {"name":..,"type":"categorical","count":..,"missing":..,
  //    "categories":[..],"counts":[..]}]}
  // Doubles are written shortest-round-trip (NaN/Infinity as strings), so
  // FromJson(ToJson()) reproduces every value exactly.
  std::string ToJson() const;
  static Result<TableProfile> FromJson(std::string_view json);
};

// InvalidArgument for fewer than 1 quantile interval or histogram bin, or a
// listed column the table lacks.
Result<TableProfile> ProfileTable(const Table& table, const ProfileOptions& options = {});

// The q-quantile of ascending `sorted` values by linear interpolation (the
// rule ProfileTable uses); NaN when empty.
double SortedQuantile(const std::vector<double>& sorted, double q);

}  // namespace keel::data
