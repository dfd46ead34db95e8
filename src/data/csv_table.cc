// ReadCsvTable: one streaming pass with per-column type inference, and a
// partial second pass for columns that turn categorical part-way.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <unordered_map>

#include "keel/data/csv.h"
#include "src/data/text.h"

namespace keel::data {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr uint64_t kEstimateAfter = 1000;  // rows read before sizing columns

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Dictionary encoder: strings to codes in first-seen order.
class Interner {
 public:
  int32_t Intern(std::string_view text) {
    auto it = index_.find(text);
    if (it != index_.end()) return it->second;
    auto code = static_cast<int32_t>(strings_.size());
    strings_.emplace_back(text);
    index_.emplace(strings_.back(), code);
    return code;
  }
  const std::vector<std::string>& strings() const { return strings_; }
  std::vector<std::string> TakeStrings() && { return std::move(strings_); }

 private:
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> index_;
  std::vector<std::string> strings_;
};

enum class State { kEmpty, kNumeric, kBoolean, kCategorical };

struct ColumnBuilder {
  std::string name;
  bool forced = false;  // type fixed by a schema override
  State state = State::kEmpty;
  std::vector<double> values;  // kEmpty, kNumeric, kBoolean
  std::vector<int32_t> codes;  // kCategorical
  Interner dictionary;
  // Rows [0, pending_rows) held numbers/booleans before the column turned
  // categorical; their text is read again in a second pass.
  size_t pending_rows = 0;

  void ToCategorical() {
    pending_rows = state == State::kEmpty ? 0 : values.size();
    codes.assign(values.size(), -1);
    std::vector<double>().swap(values);
    state = State::kCategorical;
  }
};

class TableReader {
 public:
  TableReader(const CsvOptions& options) : options_(options), missing_(options.missing_markers) {}

  // Pass one over `reader`.
  Status ReadAll(CsvReader& reader) {
    const std::vector<std::string>& header = reader.header();
    if (header.empty())
      return InvalidArgument(reader.source_name() + ": empty file, no header row");
    std::unordered_map<std::string_view, size_t> seen;
    for (size_t i = 0; i < header.size(); ++i) {
      if (!seen.emplace(header[i], i).second) {
        return InvalidArgument(reader.source_name() + ":1: duplicate column name '" + header[i] +
                               "'");
      }
    }
    for (const auto& [name, type] : options_.types) {
      if (!seen.contains(name)) {
        return InvalidArgument(reader.source_name() + ": schema names column '" + name +
                               "', which the header lacks");
      }
    }
    columns_.resize(header.size());
    for (size_t i = 0; i < header.size(); ++i) {
      ColumnBuilder& b = columns_[i];
      b.name = header[i];
      auto it = options_.types.find(header[i]);
      if (it != options_.types.end()) {
        b.forced = true;
        b.state = it->second == ColumnType::kNumeric   ? State::kNumeric
                  : it->second == ColumnType::kBoolean ? State::kBoolean
                                                       : State::kCategorical;
      }
    }
    const uint64_t header_bytes = reader.position();
    while (true) {
      KEEL_ASSIGN_OR_RETURN(bool more, reader.Next());
      if (!more) break;
      if (reader.records() == kEstimateAfter) Reserve(reader, header_bytes);
      const std::vector<std::string_view>& fields = reader.fields();
      for (size_t j = 0; j < fields.size(); ++j) {
        KEEL_RETURN_IF_ERROR(Add(columns_[j], fields[j], reader));
      }
    }
    num_rows_ = reader.records();
    return OkStatus();
  }

  // Sizes column storage from the bytes per row seen so far, so large files
  // do not pay for repeated reallocation.
  void Reserve(const CsvReader& reader, uint64_t header_bytes) {
    const uint64_t total = reader.total_bytes();
    const uint64_t used = reader.position() - header_bytes;
    if (total == 0 || used == 0) return;
    const double rows = static_cast<double>(total - header_bytes) / static_cast<double>(used) *
                        static_cast<double>(kEstimateAfter) * 1.05;
    const auto n = static_cast<size_t>(std::min(rows, 4.0e9));
    for (ColumnBuilder& b : columns_) {
      if (b.state == State::kCategorical) {
        b.codes.reserve(n);
      } else {
        b.values.reserve(n);
      }
    }
  }

  size_t MaxPendingRows() const {
    size_t n = 0;
    for (const ColumnBuilder& b : columns_) n = std::max(n, b.pending_rows);
    return n;
  }

  // Pass two: the text of pending rows.
  Status ReadPending(CsvReader& reader) {
    const size_t max_rows = MaxPendingRows();
    std::vector<Interner> prefix(columns_.size());
    for (size_t row = 0; row < max_rows; ++row) {
      KEEL_ASSIGN_OR_RETURN(bool more, reader.Next());
      if (!more) return Internal(reader.source_name() + ": the source changed while being read");
      const std::vector<std::string_view>& fields = reader.fields();
      for (size_t j = 0; j < columns_.size(); ++j) {
        ColumnBuilder& b = columns_[j];
        if (row >= b.pending_rows) continue;
        b.codes[row] = missing_.Matches(fields[j]) ? -1 : prefix[j].Intern(fields[j]);
      }
    }
    // Merge: prefix strings first (first seen), then those first seen later.
    for (size_t j = 0; j < columns_.size(); ++j) {
      ColumnBuilder& b = columns_[j];
      if (b.pending_rows == 0) continue;
      Interner merged = std::move(prefix[j]);
      std::vector<int32_t> remap;
      for (const std::string& s : b.dictionary.strings()) remap.push_back(merged.Intern(s));
      for (size_t row = b.pending_rows; row < b.codes.size(); ++row) {
        if (b.codes[row] >= 0) b.codes[row] = remap[static_cast<size_t>(b.codes[row])];
      }
      b.dictionary = std::move(merged);
      b.pending_rows = 0;
    }
    return OkStatus();
  }

  Result<Table> Finish() && {
    Table table;
    for (ColumnBuilder& b : columns_) {
      Column column = Column::Numeric(b.name, {});
      switch (b.state) {
        case State::kEmpty:
        case State::kNumeric:
          column = Column::Numeric(std::move(b.name), std::move(b.values));
          break;
        case State::kBoolean: {
          KEEL_ASSIGN_OR_RETURN(column, Column::Boolean(std::move(b.name), std::move(b.values)));
          break;
        }
        case State::kCategorical: {
          KEEL_ASSIGN_OR_RETURN(column, Column::Categorical(std::move(b.name), std::move(b.codes),
                                                            std::move(b.dictionary).TakeStrings()));
          break;
        }
      }
      KEEL_RETURN_IF_ERROR(table.AddColumn(std::move(column)));
    }
    return table;
  }

 private:
  Status Add(ColumnBuilder& b, std::string_view text, const CsvReader& reader) {
    if (missing_.Matches(text)) {
      if (b.state == State::kCategorical) {
        b.codes.push_back(-1);
      } else {
        b.values.push_back(kNaN);
      }
      return OkStatus();
    }
    double number;
    bool flag;
    switch (b.state) {
      case State::kNumeric:
        if (internal::ParseNumber(text, &number)) {
          b.values.push_back(number);
          return OkStatus();
        }
        if (b.forced) return Refused(b, text, reader, "not a number");
        b.ToCategorical();
        break;
      case State::kBoolean:
        if (b.forced ? internal::ParseLooseBool(text, &flag)
                     : internal::ParseStrictBool(text, &flag)) {
          b.values.push_back(flag ? 1.0 : 0.0);
          return OkStatus();
        }
        if (b.forced) return Refused(b, text, reader, "not a boolean");
        b.ToCategorical();
        break;
      case State::kEmpty:
        if (internal::ParseNumber(text, &number)) {
          b.state = State::kNumeric;
          b.values.push_back(number);
          return OkStatus();
        }
        if (internal::ParseStrictBool(text, &flag)) {
          b.state = State::kBoolean;
          b.values.push_back(flag ? 1.0 : 0.0);
          return OkStatus();
        }
        b.ToCategorical();
        break;
      case State::kCategorical:
        break;
    }
    b.codes.push_back(b.dictionary.Intern(text));
    return OkStatus();
  }

  Status Refused(const ColumnBuilder& b, std::string_view text, const CsvReader& reader,
                 std::string_view what) const {
    std::string shown(text.substr(0, 64));
    return InvalidArgument(reader.source_name() + ":" + std::to_string(reader.line()) +
                           ": column '" + b.name + "' is " +
                           std::string(ColumnTypeName(options_.types.find(b.name)->second)) +
                           " by schema, '" + shown + "' is " + std::string(what));
  }

  const CsvOptions& options_;
  internal::MissingMatcher missing_;
  std::vector<ColumnBuilder> columns_;
  size_t num_rows_ = 0;
};

CsvReaderOptions WithHeader(const CsvReaderOptions& options) {
  CsvReaderOptions o = options;
  o.has_header = true;
  return o;
}

}  // namespace

Result<Table> ReadCsvTable(const std::string& path, const CsvOptions& options) {
  TableReader builder(options);
  {
    KEEL_ASSIGN_OR_RETURN(auto reader, CsvReader::Open(path, WithHeader(options.reader)));
    KEEL_RETURN_IF_ERROR(builder.ReadAll(*reader));
  }
  if (builder.MaxPendingRows() > 0) {
    CsvReaderOptions again = WithHeader(options.reader);
    again.progress = nullptr;
    KEEL_ASSIGN_OR_RETURN(auto reader, CsvReader::Open(path, again));
    KEEL_RETURN_IF_ERROR(builder.ReadPending(*reader));
  }
  return std::move(builder).Finish();
}

Result<Table> ReadCsvTable(std::istream& in, std::string source_name, const CsvOptions& options) {
  const std::streampos start = in.tellg();
  TableReader builder(options);
  {
    KEEL_ASSIGN_OR_RETURN(auto reader,
                          CsvReader::FromStream(in, source_name, WithHeader(options.reader)));
    KEEL_RETURN_IF_ERROR(builder.ReadAll(*reader));
  }
  if (builder.MaxPendingRows() > 0) {
    in.clear();
    if (start == std::streampos(-1) || !in.seekg(start)) {
      return FailedPrecondition(source_name +
                                ": a column changes type part-way and the stream cannot be "
                                "read again; give its type in CsvOptions::types");
    }
    CsvReaderOptions again = WithHeader(options.reader);
    again.progress = nullptr;
    KEEL_ASSIGN_OR_RETURN(auto reader, CsvReader::FromStream(in, source_name, again));
    KEEL_RETURN_IF_ERROR(builder.ReadPending(*reader));
  }
  return std::move(builder).Finish();
}

}  // namespace keel::data
