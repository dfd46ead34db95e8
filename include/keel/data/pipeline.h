// File: keel/data/pipeline.h
//
// FeaturePipeline: the feature encoding that travels with a model, turning a
// raw record (JSON object, CSV record or Table row) into the model's dense
// float input vector exactly as at training time.
//
//   KEEL_ASSIGN_OR_RETURN(auto pipeline, keel::data::FeaturePipeline::Fit(
//       train, {"state", "account_length", "international_plan"}, {}));
//   std::vector<float> x(pipeline.num_features() * train.num_rows());
//   KEEL_RETURN_IF_ERROR(pipeline.EncodeTable(train, x.data(), 0, train.num_rows()));
//   std::string saved = pipeline.ToJson();                       // store beside the model
//
//   // Serving:
//   KEEL_ASSIGN_OR_RETURN(auto p, keel::data::FeaturePipeline::FromJson(saved));
//   std::vector<float> row(p.num_features());
//   keel::data::EncodeStats stats;
//   KEEL_RETURN_IF_ERROR(p.EncodeJsonObject(R"({"state":"KS","account_length":128})",
//                                           row.data(), &stats));
//
// Input columns and output features. Output features follow the input columns
// in order, each expanded in place:
//   numeric      1 feature, the value;             name = column, type "q"
//   boolean      1 feature, 0/1;                   name = column, type "i"
//   categorical  kOneHot: one indicator per category, categories sorted
//                bytewise (= code point order for UTF-8), name "column=category",
//                type "i" (sklearn OneHotEncoder(handle_unknown='ignore'));
//                kNative: 1 feature holding the category's index in that sorted
//                list as a float, name = column, type "c" (XGBoost native
//                categorical support).
// Categories are those present in the rows given to Fit (missing excluded).
//
// Encoding rules, the same for every entry point:
//   - missing (absent column, JSON null, a missing marker text -- see
//     DefaultMissingMarkers(), stored in the pipeline): NaN for numeric,
//     boolean and native categorical; all zeros for one-hot.
//   - unknown category (not seen at Fit): all zeros for one-hot, NaN for
//     native; counted in EncodeStats::unknown.
//   - fields not named by the pipeline are ignored.
//   - numeric: JSON numbers; strings (JSON or CSV) holding a number by the CSV
//     rules in csv.h ("3.5", " +1e3 ", "inf"). Anything else is
//     InvalidArgument naming the field and the value; a JSON boolean too.
//   - boolean: JSON true/false, numbers 0/1, strings true/false, yes/no, 1/0
//     (any case). Anything else is InvalidArgument.
//   - categorical: strings (JSON strings, CSV fields, table dictionary
//     entries) match categories by exact text; JSON numbers (and numeric
//     table columns) match by value the categories whose text is a number, so
//     415, 415.0 and "415" all select a category "415" (with several such
//     categories, e.g. "1" and "1.0", the first in sorted order wins); JSON
//     booleans match the text "true"/"false". A JSON object or array is
//     InvalidArgument.
//   - duplicate JSON keys: the last one wins.
// Values are converted to float (the model input type) after parsing as
// double.
//
// Errors are InvalidArgument: the messages above, "malformed JSON: <reason>"
// and "expected a JSON object".
//
// Threads: a FeaturePipeline is immutable after construction; every const
// method may run concurrently (copies share immutable lookup tables).
// EncodeJsonObject(string_view) keeps one simdjson DOM parser and input
// buffer per thread, grown to the largest record that thread has seen, so
// steady-state calls do not allocate.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "keel/core/result.h"
#include "keel/data/table.h"

namespace keel::data {

enum class CategoricalEncoding : uint8_t { kOneHot, kNative };

struct PipelineOptions {
  CategoricalEncoding encoding = CategoricalEncoding::kOneHot;
  // Texts read as missing at encode time; should match the CsvOptions the
  // training table was read with.
  std::vector<std::string> missing_markers = DefaultMissingMarkers();
};

struct InputColumn {
  std::string name;
  ColumnType type = ColumnType::kNumeric;
  std::vector<std::string> categories;  // categorical only; sorted, unique
  size_t first_feature = 0;             // index of its first output feature
  size_t num_features = 0;              // 1, or categories.size() for one-hot
};

// Per-record data quality counts. Encode calls add to these (callers zero
// them to get one record's counts, or let them accumulate over a batch).
struct EncodeStats {
  uint64_t missing = 0;  // input columns absent, null or holding a missing marker
  uint64_t unknown = 0;  // categorical values not among the fitted categories
};

// Where each input column sits in a CSV record; see MapCsvHeader.
struct ColumnMap {
  std::vector<int> field_of_column;  // per input column: field index, or -1
  size_t num_fields = 0;             // fields per record (the header's size)
};

class FeaturePipeline {
 public:
  // Learns the encoding of `feature_columns` (in that order) from `table`.
  // InvalidArgument when a column is absent, named twice, or the list is
  // empty.
  static Result<FeaturePipeline> Fit(const Table& table,
                                     const std::vector<std::string>& feature_columns,
                                     const PipelineOptions& options = {});
  // For models imported without a pipeline: every input is a numeric feature
  // of that name. InvalidArgument for an empty list or repeated names.
  static Result<FeaturePipeline> Identity(const std::vector<std::string>& feature_names);

  // A stable JSON document, version 1:
  //   {"keel_pipeline":1,"encoding":"one_hot"|"native","missing_markers":[...],
  //    "columns":[{"name":"state","type":"categorical","categories":[...]},
  //               {"name":"age","type":"numeric"}, ...],
  //    "feature_names":[...],"feature_types":[...]}
  // feature_names/types are derived, written for readers in other languages.
  std::string ToJson() const;
  // Parses and validates ToJson() output (unknown version, bad types,
  // unsorted/repeated categories, repeated names, derived features that do
  // not match -> InvalidArgument). FromJson(p.ToJson()) == p.
  static Result<FeaturePipeline> FromJson(std::string_view json);

  CategoricalEncoding encoding() const { return encoding_; }
  const std::vector<std::string>& missing_markers() const { return missing_markers_; }
  const std::vector<InputColumn>& input_columns() const { return columns_; }
  // Index into input_columns(), or -1.
  int InputColumnIndex(std::string_view name) const;
  size_t num_features() const { return feature_names_.size(); }
  const std::vector<std::string>& feature_names() const { return feature_names_; }
  // "q", "i" or "c" per feature (XGBoost feature_types).
  const std::vector<std::string>& feature_types() const { return feature_types_; }

  // Encodes one JSON object into out[0, num_features()) and adds its missing
  // and unknown counts to *stats (when given). On error `out` holds partial
  // values.
  Status EncodeJsonObject(std::string_view json_object_text, float* out,
                          EncodeStats* stats = nullptr) const;
  // The same for an object already parsed with simdjson (e.g. one element of
  // a request's "instances" array). The On-Demand overload consumes the
  // object; note that simdjson's On-Demand front end runs the SIMD kernel
  // chosen at compile time (scalar for a generic x86-64 build), the DOM
  // parser the best one for the CPU at run time.
  Status EncodeJsonObject(simdjson::dom::object object, float* out,
                          EncodeStats* stats = nullptr) const;
  Status EncodeJsonObject(simdjson::ondemand::object& object, float* out,
                          EncodeStats* stats = nullptr) const;

  // Copies the all-missing row -- what a record without any input column
  // encodes to -- into out[0, num_features()).
  void InitRow(float* out) const;
  // Encodes one value of input column `column` (an index into
  // input_columns()) into that column's features inside `row`, which points
  // at feature 0 of the row; other features are left alone. The rules are
  // EncodeJsonObject's for the value of that field: null and missing-marker
  // strings are missing, objects and arrays are InvalidArgument naming the
  // field. Adds 1 to stats->missing for a missing value and to
  // stats->unknown for an unknown category. A column index out of range is
  // InvalidArgument. On error the column's features hold partial values.
  Status EncodeJsonValue(size_t column, simdjson::dom::element value, float* row,
                         EncodeStats* stats = nullptr) const;
  // The same for a text value, read as EncodeCsvFields reads a CSV field.
  Status EncodeTextValue(size_t column, std::string_view text, float* row,
                         EncodeStats* stats = nullptr) const;

  // Finds the input columns in a CSV header. Without allow_missing_columns an
  // input column the header lacks is InvalidArgument; with it the column is
  // encoded as missing in every record.
  Result<ColumnMap> MapCsvHeader(const std::vector<std::string>& header,
                                 bool allow_missing_columns = false) const;
  // Encodes one CSV record (CsvReader::fields()) laid out as `header_map`
  // says. A record with a different field count is InvalidArgument.
  Status EncodeCsvFields(const std::vector<std::string_view>& fields, const ColumnMap& header_map,
                         float* out, EncodeStats* stats = nullptr) const;

  // Encodes rows [row_begin, row_end) of `table`, row-major:
  // out[(r - row_begin) * num_features() + j]. Columns are found by name; an
  // absent column is InvalidArgument. A table column of another type than
  // the pipeline's is converted by the rules above (e.g. a numeric table
  // column for a categorical input matches categories by value).
  Status EncodeTable(const Table& table, float* out, size_t row_begin, size_t row_end,
                     EncodeStats* stats = nullptr) const;
  // The same for selected rows (e.g. RowSplit::validation), in that order.
  Status EncodeRows(const Table& table, std::span<const uint32_t> rows, float* out,
                    EncodeStats* stats = nullptr) const;

  // Same encoding, missing markers and input columns (so the same ToJson()).
  friend bool operator==(const FeaturePipeline& a, const FeaturePipeline& b);

 private:
  struct Value;  // one raw input value (JSON or text)

  FeaturePipeline() = default;
  // Fills the derived members from encoding_, missing_markers_ and columns_.
  Status Build();
  int FindColumn(std::string_view key, size_t expected) const;
  // Reads a scalar JSON value; false for an object or array.
  static bool ValueOfElement(simdjson::dom::element e, Value* v);
  // Writes column `c`'s encoding of `v` at out; sets *present.
  Status EncodeValue(size_t c, const Value& v, float* out, bool* present, EncodeStats* stats) const;
  int CategoryOfText(size_t c, std::string_view text) const;
  int CategoryOfNumber(size_t c, double value) const;
  template <typename RowAt>
  Status EncodeTableRows(const Table& table, size_t count, RowAt row_at, float* out,
                         EncodeStats* stats) const;

  CategoricalEncoding encoding_ = CategoricalEncoding::kOneHot;
  std::vector<std::string> missing_markers_;
  std::vector<InputColumn> columns_;
  // Derived.
  std::vector<std::string> feature_names_;
  std::vector<std::string> feature_types_;
  std::vector<float> missing_row_;  // every column missing
  struct Index;                     // lookup tables, immutable, shared by copies
  std::shared_ptr<const Index> index_;
};

}  // namespace keel::data
