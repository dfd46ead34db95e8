#include "keel/data/table.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <random>
#include <unordered_map>

#include "keel/core/json.h"
#include "src/data/text.h"

namespace keel::data {

std::string_view ColumnTypeName(ColumnType type) {
  switch (type) {
    case ColumnType::kNumeric:
      return "numeric";
    case ColumnType::kCategorical:
      return "categorical";
    case ColumnType::kBoolean:
      return "boolean";
  }
  return "numeric";
}

std::optional<ColumnType> ColumnTypeFromName(std::string_view name) {
  if (name == "numeric") return ColumnType::kNumeric;
  if (name == "categorical") return ColumnType::kCategorical;
  if (name == "boolean") return ColumnType::kBoolean;
  return std::nullopt;
}

const std::vector<std::string>& DefaultMissingMarkers() {
  static const std::vector<std::string> kMarkers = {"",    "NA",   "N/A",  "NaN",
                                                    "nan", "null", "NULL", "None"};
  return kMarkers;
}

Column Column::Numeric(std::string name, std::vector<double> values) {
  Column c;
  c.name_ = std::move(name);
  c.type_ = ColumnType::kNumeric;
  c.values_ = std::move(values);
  c.CountMissing();
  return c;
}

Result<Column> Column::Boolean(std::string name, std::vector<double> values) {
  for (size_t i = 0; i < values.size(); ++i) {
    double v = values[i];
    if (!std::isnan(v) && v != 0.0 && v != 1.0) {
      return InvalidArgument("boolean column '" + name + "': row " + std::to_string(i) + " holds " +
                             FormatDouble(v) + ", not 0, 1 or NaN");
    }
  }
  Column c;
  c.name_ = std::move(name);
  c.type_ = ColumnType::kBoolean;
  c.values_ = std::move(values);
  c.CountMissing();
  return c;
}

Result<Column> Column::Categorical(std::string name, std::vector<int32_t> codes,
                                   std::vector<std::string> dictionary) {
  const auto n = static_cast<int64_t>(dictionary.size());
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] < -1 || codes[i] >= n) {
      return InvalidArgument("categorical column '" + name + "': row " + std::to_string(i) +
                             " has code " + std::to_string(codes[i]) + ", dictionary has " +
                             std::to_string(n) + " entries");
    }
  }
  std::vector<std::string_view> sorted(dictionary.begin(), dictionary.end());
  std::sort(sorted.begin(), sorted.end());
  auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  if (dup != sorted.end()) {
    return InvalidArgument("categorical column '" + name + "': dictionary repeats '" +
                           std::string(*dup) + "'");
  }
  Column c;
  c.name_ = std::move(name);
  c.type_ = ColumnType::kCategorical;
  c.codes_ = std::move(codes);
  c.dictionary_ = std::make_shared<const std::vector<std::string>>(std::move(dictionary));
  c.CountMissing();
  return c;
}

Column Column::CategoricalFromText(std::string name, const std::vector<std::string>& values,
                                   const std::vector<std::string>& missing_markers) {
  internal::MissingMatcher missing(missing_markers);
  std::unordered_map<std::string_view, int32_t> index;
  std::vector<std::string> dictionary;
  std::vector<int32_t> codes;
  codes.reserve(values.size());
  for (const std::string& v : values) {
    if (missing.Matches(v)) {
      codes.push_back(-1);
      continue;
    }
    auto [it, inserted] = index.emplace(v, static_cast<int32_t>(dictionary.size()));
    if (inserted) dictionary.push_back(v);
    codes.push_back(it->second);
  }
  Column c;
  c.name_ = std::move(name);
  c.type_ = ColumnType::kCategorical;
  c.codes_ = std::move(codes);
  c.dictionary_ = std::make_shared<const std::vector<std::string>>(std::move(dictionary));
  c.CountMissing();
  return c;
}

size_t Column::size() const {
  return type_ == ColumnType::kCategorical ? codes_.size() : values_.size();
}

const std::vector<std::string>& Column::dictionary() const {
  static const std::vector<std::string> kEmpty;
  return dictionary_ ? *dictionary_ : kEmpty;
}

bool Column::IsMissing(size_t row) const {
  return type_ == ColumnType::kCategorical ? codes_[row] < 0 : std::isnan(values_[row]);
}

std::string Column::ValueText(size_t row) const {
  if (IsMissing(row)) return "";
  switch (type_) {
    case ColumnType::kCategorical:
      return (*dictionary_)[static_cast<size_t>(codes_[row])];
    case ColumnType::kBoolean:
      return values_[row] != 0.0 ? "true" : "false";
    case ColumnType::kNumeric: {
      double v = values_[row];
      if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
      char buf[32];
      auto res = std::to_chars(buf, buf + sizeof(buf), v);
      return std::string(buf, res.ptr);
    }
  }
  return "";
}

void Column::CountMissing() {
  missing_ = 0;
  if (type_ == ColumnType::kCategorical) {
    for (int32_t c : codes_) missing_ += c < 0;
  } else {
    for (double v : values_) missing_ += std::isnan(v);
  }
}

Status Table::AddColumn(Column column) {
  if (ColumnIndex(column.name()) >= 0) {
    return InvalidArgument("duplicate column name '" + column.name() + "'");
  }
  if (!columns_.empty() && column.size() != num_rows_) {
    return InvalidArgument("column '" + column.name() + "' has " + std::to_string(column.size()) +
                           " rows, the table has " + std::to_string(num_rows_));
  }
  num_rows_ = column.size();
  columns_.push_back(std::move(column));
  return OkStatus();
}

int Table::ColumnIndex(std::string_view name) const {
  for (size_t i = 0; i < columns_.size(); ++i) {
    if (columns_[i].name() == name) return static_cast<int>(i);
  }
  return -1;
}

const Column* Table::FindColumn(std::string_view name) const {
  int i = ColumnIndex(name);
  return i < 0 ? nullptr : &columns_[static_cast<size_t>(i)];
}

std::vector<std::string> Table::ColumnNames() const {
  std::vector<std::string> names;
  names.reserve(columns_.size());
  for (const Column& c : columns_) names.push_back(c.name());
  return names;
}

Result<Table> Table::Take(std::span<const uint32_t> rows) const {
  for (uint32_t r : rows) {
    if (r >= num_rows_) {
      return InvalidArgument("row " + std::to_string(r) + " out of range: the table has " +
                             std::to_string(num_rows_) + " rows");
    }
  }
  Table out;
  out.num_rows_ = rows.size();
  out.columns_.reserve(columns_.size());
  for (const Column& src : columns_) {
    Column c;
    c.name_ = src.name_;
    c.type_ = src.type_;
    c.dictionary_ = src.dictionary_;
    if (src.type_ == ColumnType::kCategorical) {
      c.codes_.resize(rows.size());
      for (size_t i = 0; i < rows.size(); ++i) c.codes_[i] = src.codes_[rows[i]];
    } else {
      c.values_.resize(rows.size());
      for (size_t i = 0; i < rows.size(); ++i) c.values_[i] = src.values_[rows[i]];
    }
    c.CountMissing();
    out.columns_.push_back(std::move(c));
  }
  return out;
}

namespace {

// Fisher-Yates with a portable bounded draw (std::uniform_int_distribution is
// implementation-defined).
void Shuffle(std::vector<uint32_t>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    // Unbiased draw in [0, i) by rejection.
    const uint64_t bound = i;
    const uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
    uint64_t x;
    do {
      x = rng();
    } while (x >= limit);
    std::swap(v[i - 1], v[static_cast<size_t>(x % bound)]);
  }
}

}  // namespace

RowSplit SplitRows(size_t num_rows, double validation_fraction, uint64_t seed,
                   const Column* stratify) {
  if (!(validation_fraction >= 0.0)) validation_fraction = 0.0;
  if (validation_fraction > 1.0) validation_fraction = 1.0;
  std::mt19937_64 rng(seed);
  std::vector<std::vector<uint32_t>> groups;
  if (stratify != nullptr && stratify->size() == num_rows) {
    // Class key: the code for categorical columns, the value otherwise;
    // missing is its own class. Ordered map: classes in a fixed order.
    std::map<std::pair<int, double>, std::vector<uint32_t>> by_class;
    for (size_t r = 0; r < num_rows; ++r) {
      std::pair<int, double> key{0, 0.0};
      if (stratify->IsMissing(r)) {
        key = {-1, 0.0};
      } else if (stratify->type() == ColumnType::kCategorical) {
        key = {1, static_cast<double>(stratify->codes()[r])};
      } else {
        key = {1, stratify->values()[r]};
      }
      by_class[key].push_back(static_cast<uint32_t>(r));
    }
    for (auto& [key, rows] : by_class) groups.push_back(std::move(rows));
  } else {
    std::vector<uint32_t> all(num_rows);
    for (size_t r = 0; r < num_rows; ++r) all[r] = static_cast<uint32_t>(r);
    groups.push_back(std::move(all));
  }
  RowSplit split;
  for (std::vector<uint32_t>& rows : groups) {
    Shuffle(rows, rng);
    auto n_val =
        static_cast<size_t>(std::llround(validation_fraction * static_cast<double>(rows.size())));
    n_val = std::min(n_val, rows.size());
    split.validation.insert(split.validation.end(), rows.begin(), rows.begin() + n_val);
    split.train.insert(split.train.end(), rows.begin() + n_val, rows.end());
  }
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.validation.begin(), split.validation.end());
  return split;
}

}  // namespace keel::data
