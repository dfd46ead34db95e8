// File: keel/data/table.h
//
// A columnar, in-memory table: the training-time view of a data set.
//
//   keel::data::Table t;
//   KEEL_RETURN_IF_ERROR(t.AddColumn(keel::data::Column::Numeric("age", {31, NAN, 45})));
//   KEEL_RETURN_IF_ERROR(t.AddColumn(
//       keel::data::Column::CategoricalFromText("state", {"KS", "", "OH"})));  // "" -> missing
//   int i = t.ColumnIndex("state");                       // -1 when absent
//   keel::data::RowSplit split = keel::data::SplitRows(t.num_rows(), 0.2, /*seed=*/7);
//   KEEL_ASSIGN_OR_RETURN(keel::data::Table train, t.Take(split.train));
//
// Column kinds and their storage:
//   kNumeric      one double per row; NaN is missing.
//   kBoolean      one double per row: 0 (false), 1 (true) or NaN (missing).
//   kCategorical  one int32 code per row into dictionary() (strings in
//                 first-seen order); -1 is missing.
// A Column owns its values; categorical dictionaries are immutable and shared
// between a table and the tables Take() makes from it.
//
// Threads: a Table or Column is a value; const methods may be called from any
// number of threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keel/core/result.h"

namespace keel::data {

enum class ColumnType : uint8_t { kNumeric, kCategorical, kBoolean };

// "numeric", "categorical", "boolean": the names used in every keel JSON
// document and schema override.
std::string_view ColumnTypeName(ColumnType type);
std::optional<ColumnType> ColumnTypeFromName(std::string_view name);

// The missing-value markers keel uses unless told otherwise:
// "", "NA", "N/A", "NaN", "nan", "null", "NULL", "None". Markers are compared
// with the text after stripping ASCII spaces/tabs, case-sensitively (so a
// blank field is missing too).
const std::vector<std::string>& DefaultMissingMarkers();

class Column {
 public:
  // Numeric values; NaN is missing.
  static Column Numeric(std::string name, std::vector<double> values);
  // Booleans as 0/1, NaN missing. InvalidArgument for any other value.
  static Result<Column> Boolean(std::string name, std::vector<double> values);
  // Codes into `dictionary`, -1 missing. InvalidArgument when a code is out of
  // range or the dictionary repeats a string.
  static Result<Column> Categorical(std::string name, std::vector<int32_t> codes,
                                    std::vector<std::string> dictionary);
  // Dictionary-encodes `values` in first-seen order; a value matching one of
  // `missing_markers` (see DefaultMissingMarkers) is missing.
  static Column CategoricalFromText(
      std::string name, const std::vector<std::string>& values,
      const std::vector<std::string>& missing_markers = DefaultMissingMarkers());

  const std::string& name() const { return name_; }
  ColumnType type() const { return type_; }
  size_t size() const;
  size_t missing_count() const { return missing_; }

  // Numeric and boolean columns: one value per row. Empty for categorical.
  const std::vector<double>& values() const { return values_; }
  // Numeric and boolean columns: moves the values out, leaving the column
  // with none (size() 0); for a column about to be discarded, e.g. sorted in
  // place by a drift comparison. Empty for categorical.
  std::vector<double> ReleaseValues() && {
    std::vector<double> out;
    if (type_ == ColumnType::kCategorical) return out;
    missing_ = 0;
    out.swap(values_);
    return out;
  }
  // Categorical columns: one code per row. Empty otherwise.
  const std::vector<int32_t>& codes() const { return codes_; }
  // Categorical columns: the strings codes() index. Empty otherwise.
  const std::vector<std::string>& dictionary() const;

  bool IsMissing(size_t row) const;
  // The value as text: shortest round-trip decimal, "true"/"false", the
  // category, or "" when missing.
  std::string ValueText(size_t row) const;

 private:
  friend class Table;
  Column() = default;
  void CountMissing();

  std::string name_;
  ColumnType type_ = ColumnType::kNumeric;
  std::vector<double> values_;
  std::vector<int32_t> codes_;
  std::shared_ptr<const std::vector<std::string>> dictionary_;
  size_t missing_ = 0;
};

class Table {
 public:
  Table() = default;

  // Appends a column. InvalidArgument when its name is already used or its
  // length differs from the table's (the first column sets num_rows()).
  Status AddColumn(Column column);

  size_t num_rows() const { return num_rows_; }
  size_t num_columns() const { return columns_.size(); }
  const Column& column(size_t i) const { return columns_[i]; }
  const std::vector<Column>& columns() const { return columns_; }
  // Index of the column named `name`, or -1 when absent.
  int ColumnIndex(std::string_view name) const;
  // The column named `name`, or nullptr.
  const Column* FindColumn(std::string_view name) const;
  std::vector<std::string> ColumnNames() const;
  // Moves the columns out, leaving the table empty.
  std::vector<Column> ReleaseColumns() && {
    num_rows_ = 0;
    std::vector<Column> out;
    out.swap(columns_);
    return out;
  }

  // A new table holding rows `rows` (in that order; repeats allowed) of every
  // column. Dictionaries are shared, not copied, so a categorical dictionary
  // may list strings no selected row uses. InvalidArgument when an index is
  // >= num_rows().
  Result<Table> Take(std::span<const uint32_t> rows) const;

 private:
  std::vector<Column> columns_;
  size_t num_rows_ = 0;
};

// Row indices of a train/validation split; each list ascending.
struct RowSplit {
  std::vector<uint32_t> train;
  std::vector<uint32_t> validation;
};

// Randomly puts round(validation_fraction * num_rows) rows into validation and
// the rest into train. The permutation comes from std::mt19937_64(seed) and a
// Fisher-Yates shuffle written here, so a seed gives the same split on every
// platform. With `stratify` (a column of num_rows values) each class (each
// distinct value; missing is one class) is split separately, contributing
// round(validation_fraction * class size) rows, so class proportions are kept.
// validation_fraction is clamped to [0, 1].
RowSplit SplitRows(size_t num_rows, double validation_fraction, uint64_t seed,
                   const Column* stratify = nullptr);

}  // namespace keel::data
