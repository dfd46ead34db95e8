// Request body decoders (keel/serve/requests.h).
//
// Every JSON body is parsed once by a per-thread simdjson DOM parser (the DOM
// front end picks the best SIMD kernel at run time) into a per-thread padded
// buffer, both grown to the largest body the thread has seen and released
// after a body over kKeepBytes, so steady-state requests allocate nothing but
// what the output vectors need beyond their capacity. Values are encoded by
// the pipeline one at a time (FeaturePipeline::EncodeJsonValue/EncodeTextValue),
// straight into DecodedBatch::features.
//
// Counting rules not spelled out in the header:
//   - ignored_columns: for rows given as JSON objects, every unknown key of
//     every row counts; for formats that name columns once (dataframe_split
//     "columns", "inputs" as an object, a CSV header) every unknown column
//     counts once.
//   - stats.missing counts, per row, the input columns that are absent, null
//     or hold a missing marker, as EncodeJsonObject does.
//   - Raw rows hold every field of the row as the request gave it, unknown
//     ones included, in request order; JSON values are re-serialised
//     compactly; CSV fields are JSON numbers when their text is a JSON number,
//     strings otherwise.
#include "keel/serve/requests.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include <simdjson.h>

#include "keel/core/json.h"
#include "keel/data/csv.h"

namespace keel::serve {

namespace {

using data::ColumnType;
using data::EncodeStats;
using data::FeaturePipeline;
using data::InputColumn;
using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

// Longest piece of request text quoted in an error message.
constexpr size_t kShownBytes = 64;
// A thread keeps its parse buffers for the next request up to this body size.
constexpr size_t kKeepBytes = size_t{16} << 20;
// Most input columns listed in an error message.
constexpr size_t kListedColumns = 8;

// ---- error messages ------------------------------------------------------------

// Appends at most kShownBytes of `text`, not splitting a UTF-8 sequence, and
// "..." when cut.
void AppendShown(std::string& s, std::string_view text) {
  if (text.size() <= kShownBytes) {
    s.append(text);
    return;
  }
  size_t n = kShownBytes;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  s.append(text.substr(0, n));
  s += "...";
}

std::string Quoted(std::string_view text) {
  std::string s = "\"";
  AppendShown(s, text);
  s += '"';
  return s;
}

std::string_view KindOf(element e) {
  switch (e.type()) {
    case element_type::ARRAY:
      return "an array";
    case element_type::OBJECT:
      return "an object";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
      return "a number";
    case element_type::STRING:
      return "a string";
    case element_type::BOOL:
      return "a boolean";
    case element_type::NULL_VALUE:
      return "null";
  }
  return "a value";
}

// Appends `d` in the shortest round-trip form ("1.0" for integral values).
void AppendDouble(std::string& s, double d) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof(buf), d);
  const std::string_view text(buf, static_cast<size_t>(res.ptr - buf));
  s.append(text);
  if (text.find_first_of(".eEn") == std::string_view::npos) s += ".0";
}

// A scalar element as shown in an error message: numbers as numbers,
// strings quoted, anything else by kind.
std::string Shown(element e) {
  std::string s;
  switch (e.type()) {
    case element_type::INT64:
      s = std::to_string(e.get_int64().value_unsafe());
      break;
    case element_type::UINT64:
      s = std::to_string(e.get_uint64().value_unsafe());
      break;
    case element_type::DOUBLE:
      AppendDouble(s, e.get_double().value_unsafe());
      break;
    case element_type::STRING:
      s = Quoted(e.get_string().value_unsafe());
      break;
    case element_type::BOOL:
      s = e.get_bool().value_unsafe() ? "true" : "false";
      break;
    default:
      s = std::string(KindOf(e));
  }
  return s;
}

// "state, account_length, ..." (the first kListedColumns input columns).
std::string ColumnList(const FeaturePipeline& p) {
  std::string s;
  const std::vector<InputColumn>& cols = p.input_columns();
  for (size_t c = 0; c < cols.size() && c < kListedColumns; ++c) {
    if (c > 0) s += ", ";
    AppendShown(s, cols[c].name);
  }
  if (cols.size() > kListedColumns) s += ", ...";
  return s;
}

// Where a value sits, for error messages: `row 3, field "x"` or, for V2
// tensors, `input "x", row 3`.
struct Where {
  size_t row = 0;
  std::string_view field;
  bool tensor = false;

  std::string ToString() const {
    if (tensor) return "input " + Quoted(field) + ", row " + std::to_string(row);
    return "row " + std::to_string(row) + ", field " + Quoted(field);
  }
};

// The pipeline's "field '<column>': <reason>" as "<where>: <reason>".
Status Reframe(const Status& s, const Where& where, std::string_view column) {
  std::string_view m = s.message();
  std::string prefix = "field '";
  prefix.append(column);
  prefix += "': ";
  if (m.starts_with(prefix)) m.remove_prefix(prefix.size());
  std::string msg = where.ToString();
  msg += ": ";
  msg.append(m);
  return Status(s.code(), std::move(msg));
}

// ---- raw rows ----------------------------------------------------------------------

void AppendKey(std::string& s, std::string_view key) {
  if (s.back() != '{') s += ',';
  s += '"';
  AppendJsonEscaped(s, key);
  s += "\":";
}

// Appends `e` as compact JSON. Depth is bounded by the parser's (1024).
void AppendJsonValue(std::string& s, element e) {
  switch (e.type()) {
    case element_type::ARRAY: {
      array a;
      if (e.get_array().get(a)) return;
      s += '[';
      bool first = true;
      for (element v : a) {
        if (!first) s += ',';
        first = false;
        AppendJsonValue(s, v);
      }
      s += ']';
      return;
    }
    case element_type::OBJECT: {
      object o;
      if (e.get_object().get(o)) return;
      s += '{';
      for (simdjson::dom::key_value_pair kv : o) {
        AppendKey(s, kv.key);
        AppendJsonValue(s, kv.value);
      }
      s += '}';
      return;
    }
    case element_type::INT64: {
      char buf[24];
      const auto res = std::to_chars(buf, buf + sizeof(buf), e.get_int64().value_unsafe());
      s.append(buf, res.ptr);
      return;
    }
    case element_type::UINT64: {
      char buf[24];
      const auto res = std::to_chars(buf, buf + sizeof(buf), e.get_uint64().value_unsafe());
      s.append(buf, res.ptr);
      return;
    }
    case element_type::DOUBLE:
      AppendDouble(s, e.get_double().value_unsafe());
      return;
    case element_type::STRING:
      s += '"';
      AppendJsonEscaped(s, e.get_string().value_unsafe());
      s += '"';
      return;
    case element_type::BOOL:
      s += e.get_bool().value_unsafe() ? "true" : "false";
      return;
    case element_type::NULL_VALUE:
      s += "null";
      return;
  }
}

// ---- per-thread parse state ------------------------------------------------------

struct Scratch {
  simdjson::dom::parser parser;
  std::vector<char> buffer;             // the body, padded
  std::vector<int> column_of_field;     // per request column: input column or -1
  std::vector<uint8_t> flags;           // per input column
  std::vector<element> columns;         // per input column: its values (columnar forms)
  std::vector<std::string_view> names;  // per request column
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

// Holds the thread's scratch for one decode; parsed elements stay valid until
// it is destroyed, which drops the buffers of a huge body.
class ScratchLease {
 public:
  ScratchLease() : s_(ThreadScratch()) {}
  ~ScratchLease() {
    if (s_.buffer.size() > kKeepBytes) {
      s_.buffer = std::vector<char>();
      s_.parser = simdjson::dom::parser();
    }
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;

  Scratch& operator*() { return s_; }
  Scratch* operator->() { return &s_; }

  simdjson::error_code Parse(std::string_view body, element* root) {
    const size_t need = body.size() + simdjson::SIMDJSON_PADDING;
    if (s_.buffer.size() < need) s_.buffer.resize(std::max(need, 2 * s_.buffer.size()));
    if (!body.empty()) std::memcpy(s_.buffer.data(), body.data(), body.size());
    std::memset(s_.buffer.data() + body.size(), 0, simdjson::SIMDJSON_PADDING);
    return s_.parser.parse(s_.buffer.data(), body.size(), false).get(*root);
  }

 private:
  Scratch& s_;
};

// Flags per input column: on the stack for up to 256 columns, else in the
// thread's scratch.
class ColumnFlags {
 public:
  ColumnFlags(Scratch& s, size_t n) {
    if (n <= kInline) {
      flags_ = inline_;
    } else {
      if (s.flags.size() < n) s.flags.resize(n);
      flags_ = s.flags.data();
    }
    std::memset(flags_, 0, n);
  }
  uint8_t& operator[](size_t i) { return flags_[i]; }

 private:
  static constexpr size_t kInline = 256;
  uint8_t inline_[kInline];
  uint8_t* flags_;
};

// ---- the batch being written -----------------------------------------------------

class Encoder {
 public:
  Encoder(const FeaturePipeline& p, const DecodeOptions& o, DecodedBatch* out, Scratch& s)
      : p_(p), cols_(p.input_columns()), o_(o), out_(out), s_(s) {
    out_->rows = 0;
    out_->num_features = p.num_features();
    out_->stats = EncodeStats();
    out_->ignored_columns = 0;
    out_->single_record = false;
    if (!o_.want_raw) out_->raw_rows.clear();
  }

  const FeaturePipeline& pipeline() const { return p_; }
  const DecodeOptions& options() const { return o_; }
  DecodedBatch* out() { return out_; }
  Scratch& scratch() { return s_; }

  // Sizes the output for `rows` rows of `width` features (the pipeline's by
  // default). Rows are not initialised.
  Status SetRows(size_t rows, size_t width = 0) {
    if (width == 0) width = p_.num_features();
    if (rows > o_.max_rows) {
      return ResourceExhausted("the request has " + std::to_string(rows) + " rows; at most " +
                               std::to_string(o_.max_rows) + " are accepted");
    }
    if (rows > std::numeric_limits<size_t>::max() / sizeof(float) / width) {
      return ResourceExhausted("the request has too many rows");
    }
    out_->rows = rows;
    out_->num_features = width;
    out_->features.resize(rows * width);
    if (o_.want_raw) {
      out_->raw_rows.resize(rows);
      for (std::string& r : out_->raw_rows) r.clear();
    }
    return OkStatus();
  }

  // Adds one row at the end (CSV, where the count is not known up front).
  Status AddRow() {
    const size_t rows = out_->rows + 1;
    if (rows > o_.max_rows) {
      return ResourceExhausted("the request has more than " + std::to_string(o_.max_rows) +
                               " rows; at most " + std::to_string(o_.max_rows) + " are accepted");
    }
    const size_t width = p_.num_features();
    out_->rows = rows;
    out_->features.resize(rows * width);
    if (o_.want_raw) {
      out_->raw_rows.resize(rows);
      out_->raw_rows.back().clear();
    }
    return OkStatus();
  }

  float* Row(size_t r) { return out_->features.data() + r * out_->num_features; }
  std::string* Raw(size_t r) { return o_.want_raw ? &out_->raw_rows[r] : nullptr; }

  // Encodes `v` as the value of input column `c` into row `row`, adding its
  // counts to *stats. Numeric values outside the float range are refused.
  Status Value(size_t c, element v, float* row, EncodeStats* stats, const Where& where) const {
    Status s = p_.EncodeJsonValue(c, v, row, stats);
    if (!s.ok()) return Reframe(s, where, cols_[c].name);
    if (cols_[c].type == ColumnType::kNumeric && std::isinf(row[cols_[c].first_feature])) {
      return InvalidArgument(where.ToString() + ": " + Shown(v) + " is out of the float range");
    }
    return OkStatus();
  }
  Status Text(size_t c, std::string_view text, float* row, EncodeStats* stats,
              const Where& where) const {
    Status s = p_.EncodeTextValue(c, text, row, stats);
    if (!s.ok()) return Reframe(s, where, cols_[c].name);
    if (cols_[c].type == ColumnType::kNumeric && std::isinf(row[cols_[c].first_feature])) {
      return InvalidArgument(where.ToString() + ": " + Quoted(text) + " is out of the float range");
    }
    return OkStatus();
  }

  // Input column named `name` (trying `expected` first), or -1.
  int ColumnOf(std::string_view name, size_t expected) const {
    if (expected < cols_.size() && cols_[expected].name == name) return static_cast<int>(expected);
    return p_.InputColumnIndex(name);
  }
  // An unknown column name: counted, or refused with reject_unknown_columns
  // (naming the row unless the name is given once for all rows).
  Status Unknown(std::string_view name, size_t row, bool named_once) {
    if (!o_.reject_unknown_columns) {
      ++out_->ignored_columns;
      return OkStatus();
    }
    const std::string reason = ": not an input of the model (inputs: " + ColumnList(p_) + ")";
    if (named_once) return InvalidArgument("field " + Quoted(name) + reason);
    return InvalidArgument(Where{row, name}.ToString() + reason);
  }
  // With require_all_columns: every input column must be among the `named`
  // ones (a request's column names, a CSV header, V2 tensor names).
  Status RequireAll(ColumnFlags& named) {
    if (!o_.require_all_columns) return OkStatus();
    for (size_t c = 0; c < cols_.size(); ++c) {
      if (!named[c]) return AbsentError(cols_[c].name, nullptr);
    }
    return OkStatus();
  }
  Status AbsentError(std::string_view name, const size_t* row) const {
    std::string where = row ? "row " + std::to_string(*row) + ", field " : "field ";
    return InvalidArgument(where + Quoted(name) +
                           " is missing: every input of the model must be given "
                           "(null for a missing value)");
  }
  // ColumnOf and Unknown.
  Result<int> Column(std::string_view name, size_t expected, size_t row, bool named_once) {
    const int c = ColumnOf(name, expected);
    if (c < 0) KEEL_RETURN_IF_ERROR(Unknown(name, row, named_once));
    return c;
  }

  // One JSON object as row `r`. Duplicate keys: the last one wins.
  Status Record(object obj, size_t r) {
    float* row = Row(r);
    p_.InitRow(row);
    std::string* raw = Raw(r);
    if (raw != nullptr) *raw += '{';
    const size_t n = cols_.size();
    ColumnFlags present(s_, n);
    size_t expected = 0;
    for (simdjson::dom::key_value_pair kv : obj) {
      if (raw != nullptr) {
        AppendKey(*raw, kv.key);
        AppendJsonValue(*raw, kv.value);
      }
      const int c = ColumnOf(kv.key, expected);
      if (c < 0) {
        KEEL_RETURN_IF_ERROR(Unknown(kv.key, r, false));
        continue;
      }
      const size_t col = static_cast<size_t>(c);
      expected = col + 1;
      EncodeStats one;
      KEEL_RETURN_IF_ERROR(Value(col, kv.value, row, &one, Where{r, cols_[col].name}));
      out_->stats.unknown += one.unknown;
      present[col] = one.missing == 0 ? 3 : 1;  // bit 0: given; bit 1: not missing
    }
    if (raw != nullptr) *raw += '}';
    for (size_t c = 0; c < n; ++c) {
      if (o_.require_all_columns && !(present[c] & 1)) return AbsentError(cols_[c].name, &r);
      out_->stats.missing += !(present[c] & 2);
    }
    return OkStatus();
  }

  // A JSON array of rows, each an object.
  Status Records(array rows, std::string_view what) {
    KEEL_RETURN_IF_ERROR(SetRows(rows.size()));
    size_t r = 0;
    for (element e : rows) {
      object obj;
      if (e.get_object().get(obj)) {
        return InvalidArgument("row " + std::to_string(r) + ": expected " + std::string(what) +
                               ", got " + std::string(KindOf(e)));
      }
      KEEL_RETURN_IF_ERROR(Record(obj, r));
      ++r;
    }
    return OkStatus();
  }

  // A JSON array of values, one per input column in input_columns() order,
  // as row `r`.
  Status Positional(array values, size_t r) {
    const size_t n = cols_.size();
    const size_t given = values.size();
    if (given != n) {
      return InvalidArgument("row " + std::to_string(r) + ": " + std::to_string(given) +
                             " values, expected " + std::to_string(n) +
                             " (one per input column: " + ColumnList(p_) + ")");
    }
    float* row = Row(r);
    p_.InitRow(row);
    std::string* raw = Raw(r);
    if (raw != nullptr) *raw += '{';
    size_t c = 0;
    for (element v : values) {
      if (raw != nullptr) {
        AppendKey(*raw, cols_[c].name);
        AppendJsonValue(*raw, v);
      }
      KEEL_RETURN_IF_ERROR(Value(c, v, row, &out_->stats, Where{r, cols_[c].name}));
      ++c;
    }
    if (raw != nullptr) *raw += '}';
    return OkStatus();
  }

  // One scalar as row `r` of a model with one input column.
  Status Scalar(element v, size_t r) {
    float* row = Row(r);
    p_.InitRow(row);
    if (std::string* raw = Raw(r)) {
      *raw += '{';
      AppendKey(*raw, cols_[0].name);
      AppendJsonValue(*raw, v);
      *raw += '}';
    }
    return Value(0, v, row, &out_->stats, Where{r, cols_[0].name});
  }

  // Columnar input: BeginColumns, then ColumnValue for every (column, row)
  // in any order that keeps each row's columns in request order, then
  // EndColumns with the number of distinct input columns given.
  void BeginColumns() {
    for (size_t r = 0; r < out_->rows; ++r) {
      p_.InitRow(Row(r));
      if (std::string* raw = Raw(r)) *raw += '{';
    }
  }
  Status ColumnValue(size_t r, int c, std::string_view name, element v, bool tensor) {
    if (std::string* raw = Raw(r)) {
      AppendKey(*raw, name);
      AppendJsonValue(*raw, v);
    }
    if (c < 0) return OkStatus();
    return Value(static_cast<size_t>(c), v, Row(r), &out_->stats, Where{r, name, tensor});
  }
  void EndColumns(size_t given_columns) {
    for (size_t r = 0; r < out_->rows; ++r) {
      if (std::string* raw = Raw(r)) *raw += '}';
    }
    out_->stats.missing += out_->rows * (cols_.size() - given_columns);
  }

 private:
  const FeaturePipeline& p_;
  const std::vector<InputColumn>& cols_;
  const DecodeOptions& o_;
  DecodedBatch* out_;
  Scratch& s_;
};

// ---- MLflow -----------------------------------------------------------------------

constexpr std::string_view kRequiredInputFormat =
    "The input must be a JSON dictionary with exactly one of the input fields "
    "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}";
constexpr std::string_view kProtocolChangeInfo =
    "IMPORTANT: The MLflow Model scoring protocol has changed in MLflow version 2.0. If you are "
    "seeing this error, you are likely using an outdated scoring request format. To resolve the "
    "error, either update your request format or adjust your MLflow Model's requirements file to "
    "specify an older version of MLflow (for example, change the 'mlflow' requirement specifier "
    "to 'mlflow==1.30.0'). If you are making a request using the MLflow client (e.g. via "
    "`mlflow.pyfunc.spark_udf()`), upgrade your MLflow client to a version >= 2.0 in order to use "
    "the new request format. For more information about the updated MLflow Model scoring "
    "protocol in MLflow 2.0, see https://mlflow.org/docs/latest/models.html#deploy-mlflow-models.";
constexpr std::string_view kTfServingError = "Failed to parse data as TF serving input";
// Most keys listed by the "Received dictionary with input fields" message.
constexpr size_t kListedKeys = 16;

std::string_view PythonTypeOf(element e) {
  switch (e.type()) {
    case element_type::INT64:
    case element_type::UINT64:
      return "<class 'int'>";
    case element_type::DOUBLE:
      return "<class 'float'>";
    case element_type::STRING:
      return "<class 'str'>";
    case element_type::BOOL:
      return "<class 'bool'>";
    case element_type::NULL_VALUE:
      return "<class 'NoneType'>";
    default:
      return "<class 'object'>";
  }
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// dataframe_split: {"columns": [...]?, "data": [[...], ...], "index": [...]?}.
Status DecodeDataframeSplit(element split, Encoder& enc) {
  object obj;
  if (split.get_object().get(obj)) {
    return InvalidArgument(
        "dataframe_split: expected an object {\"columns\": [...], \"data\": [[...], ...]}, got " +
        std::string(KindOf(split)));
  }
  element columns_e, data_e;
  bool has_columns = false, has_data = false;
  for (simdjson::dom::key_value_pair kv : obj) {
    if (kv.key == "columns") {
      columns_e = kv.value;
      has_columns = true;
    } else if (kv.key == "data") {
      data_e = kv.value;
      has_data = true;
    } else if (kv.key != "index") {
      return InvalidArgument("dataframe_split: unexpected key " + Quoted(kv.key) +
                             " (expected columns, data and index)");
    }
  }
  if (!has_data) return InvalidArgument("dataframe_split: \"data\" is missing");
  array data;
  if (data_e.get_array().get(data)) {
    return InvalidArgument("dataframe_split: \"data\" must be a list of rows, got " +
                           std::string(KindOf(data_e)));
  }
  const FeaturePipeline& p = enc.pipeline();
  const std::vector<InputColumn>& cols = p.input_columns();
  if (has_columns && columns_e.is_null()) has_columns = false;
  if (!has_columns) {
    // Positional rows.
    KEEL_RETURN_IF_ERROR(enc.SetRows(data.size()));
    size_t r = 0;
    for (element row : data) {
      array values;
      if (row.get_array().get(values)) {
        return InvalidArgument("row " + std::to_string(r) + ": expected a list of values, got " +
                               std::string(KindOf(row)));
      }
      KEEL_RETURN_IF_ERROR(enc.Positional(values, r));
      ++r;
    }
    return OkStatus();
  }

  array columns;
  if (columns_e.get_array().get(columns)) {
    return InvalidArgument("dataframe_split: \"columns\" must be a list of names, got " +
                           std::string(KindOf(columns_e)));
  }
  // Map the request's columns to input columns once.
  Scratch& s = enc.scratch();
  s.column_of_field.clear();
  s.names.clear();
  ColumnFlags named(s, cols.size());
  size_t given = 0;
  for (element name_e : columns) {
    std::string_view name;
    if (name_e.get_string().get(name)) {
      return InvalidArgument("dataframe_split: column " + std::to_string(s.names.size()) +
                             ": a column name must be a string, got " + Shown(name_e));
    }
    KEEL_ASSIGN_OR_RETURN(const int c, enc.Column(name, s.names.size(), 0, true));
    if (c >= 0) {
      if (named[static_cast<size_t>(c)]) {
        return InvalidArgument("dataframe_split: column " + Quoted(name) + " is named twice");
      }
      named[static_cast<size_t>(c)] = 1;
      ++given;
    }
    s.column_of_field.push_back(c);
    s.names.push_back(name);
  }
  KEEL_RETURN_IF_ERROR(enc.RequireAll(named));
  const size_t width = s.names.size();
  const size_t absent = cols.size() - given;
  KEEL_RETURN_IF_ERROR(enc.SetRows(data.size()));
  DecodedBatch* out = enc.out();
  size_t r = 0;
  for (element row_e : data) {
    array values;
    if (row_e.get_array().get(values)) {
      return InvalidArgument("row " + std::to_string(r) + ": expected a list of values, got " +
                             std::string(KindOf(row_e)));
    }
    if (values.size() != width) {
      return InvalidArgument("row " + std::to_string(r) + ": " + std::to_string(values.size()) +
                             " values, but " + std::to_string(width) + " columns");
    }
    float* row = enc.Row(r);
    p.InitRow(row);
    std::string* raw = enc.Raw(r);
    if (raw != nullptr) *raw += '{';
    size_t f = 0;
    for (element v : values) {
      if (raw != nullptr) {
        AppendKey(*raw, s.names[f]);
        AppendJsonValue(*raw, v);
      }
      const int c = s.column_of_field[f];
      if (c >= 0) {
        KEEL_RETURN_IF_ERROR(
            enc.Value(static_cast<size_t>(c), v, row, &out->stats, Where{r, s.names[f]}));
      }
      ++f;
    }
    if (raw != nullptr) *raw += '}';
    out->stats.missing += absent;
    ++r;
  }
  return OkStatus();
}

// instances, or inputs given as a list: records, positional rows or scalars,
// as the first element says.
Status DecodeRowList(array items, std::string_view key, Encoder& enc) {
  const size_t n = items.size();
  if (n == 0) return enc.SetRows(0);
  const element_type kind = (*items.begin()).type();
  if (kind == element_type::OBJECT) return enc.Records(items, "a JSON object like row 0");
  KEEL_RETURN_IF_ERROR(enc.SetRows(n));
  if (kind == element_type::ARRAY) {
    size_t r = 0;
    for (element e : items) {
      array values;
      if (e.get_array().get(values)) {
        return InvalidArgument("row " + std::to_string(r) + ": expected a list like row 0, got " +
                               std::string(KindOf(e)));
      }
      KEEL_RETURN_IF_ERROR(enc.Positional(values, r));
      ++r;
    }
    return OkStatus();
  }
  const std::vector<InputColumn>& cols = enc.pipeline().input_columns();
  if (cols.size() != 1) {
    return InvalidArgument(std::string(kTfServingError) + ": \"" + std::string(key) +
                           "\" holds single values, which need a model with one input column; "
                           "this one has " +
                           std::to_string(cols.size()) + " (" + ColumnList(enc.pipeline()) +
                           "): send rows as objects or lists");
  }
  size_t r = 0;
  for (element e : items) {
    if (e.is_array() || e.is_object()) {
      return InvalidArgument("row " + std::to_string(r) +
                             ": expected a single value like row 0, got " + std::string(KindOf(e)));
    }
    KEEL_RETURN_IF_ERROR(enc.Scalar(e, r));
    ++r;
  }
  return OkStatus();
}

// inputs as an object: {"column": [v, ...], ...}, equal lengths.
Status DecodeColumnar(object columns, Encoder& enc) {
  const FeaturePipeline& p = enc.pipeline();
  Scratch& s = enc.scratch();
  s.column_of_field.clear();
  s.names.clear();
  ColumnFlags named(s, p.input_columns().size());
  size_t rows = 0, given = 0;
  bool first = true;
  for (simdjson::dom::key_value_pair kv : columns) {
    array values;
    if (kv.value.get_array().get(values)) {
      return InvalidArgument(std::string(kTfServingError) + ": input " + Quoted(kv.key) +
                             " must be a list of values, got " + std::string(KindOf(kv.value)));
    }
    const size_t len = values.size();
    if (first) {
      rows = len;
      first = false;
    } else if (len != rows) {
      return InvalidArgument(std::string(kTfServingError) +
                             ". The length of values for each input/column name are not the "
                             "same: " +
                             Quoted(kv.key) + " has " + std::to_string(len) + ", " +
                             Quoted(s.names.front()) + " has " + std::to_string(rows));
    }
    KEEL_ASSIGN_OR_RETURN(const int c, enc.Column(kv.key, s.names.size(), 0, true));
    if (c >= 0) {
      if (named[static_cast<size_t>(c)]) {
        return InvalidArgument("inputs: column " + Quoted(kv.key) + " is given twice");
      }
      named[static_cast<size_t>(c)] = 1;
      ++given;
    }
    s.column_of_field.push_back(c);
    s.names.push_back(kv.key);
  }
  KEEL_RETURN_IF_ERROR(enc.RequireAll(named));
  KEEL_RETURN_IF_ERROR(enc.SetRows(rows));
  enc.BeginColumns();
  size_t f = 0;
  for (simdjson::dom::key_value_pair kv : columns) {
    array values;
    if (kv.value.get_array().get(values)) return Internal("inputs: a column changed type");
    size_t r = 0;
    for (element v : values) {
      KEEL_RETURN_IF_ERROR(enc.ColumnValue(r, s.column_of_field[f], s.names[f], v, false));
      ++r;
    }
    ++f;
  }
  enc.EndColumns(given);
  return OkStatus();
}

Status DecodeMlflowJson(std::string_view body, Encoder& enc, ScratchLease& lease) {
  element root;
  if (auto err = lease.Parse(body, &root)) {
    return InvalidArgument(
        std::string("Failed to parse input from JSON. Ensure that input is a valid JSON "
                    "formatted string. Error: '") +
        simdjson::error_message(err) + "'");
  }
  object obj;
  if (root.get_object().get(obj)) {
    if (root.is_array()) {
      return InvalidArgument(std::string(kRequiredInputFormat) + ". Received a list. " +
                             std::string(kProtocolChangeInfo));
    }
    return InvalidArgument(std::string(kRequiredInputFormat) +
                           ". Received unexpected input type '" + std::string(PythonTypeOf(root)) +
                           "'.");
  }
  size_t formats = 0, keys = 0;
  std::string_view format;
  element value;
  for (simdjson::dom::key_value_pair kv : obj) {
    ++keys;
    if (kv.key == "signature_name") {
      return InvalidArgument(std::string(kTfServingError) +
                             ". \"signature_name\" is currently not supported.");
    }
    if (kv.key == "dataframe_split" || kv.key == "dataframe_records" || kv.key == "instances" ||
        kv.key == "inputs") {
      if (formats == 0 || kv.key != format) ++formats;
      format = kv.key;
      value = kv.value;
    }
  }
  if (formats != 1) {
    std::string msg(kRequiredInputFormat);
    msg += ". Received dictionary with input fields: [";
    size_t i = 0;
    for (simdjson::dom::key_value_pair kv : obj) {
      if (i == kListedKeys) {
        msg += ", ... (" + std::to_string(keys) + " in all)";
        break;
      }
      if (i++ > 0) msg += ", ";
      msg += '\'';
      AppendShown(msg, kv.key);
      msg += '\'';
    }
    msg += "]. ";
    msg += kProtocolChangeInfo;
    return InvalidArgument(std::move(msg));
  }
  if (format == "dataframe_split") return DecodeDataframeSplit(value, enc);
  if (format == "dataframe_records") {
    array rows;
    if (value.get_array().get(rows)) {
      return InvalidArgument("dataframe_records: expected a list of records, got " +
                             std::string(KindOf(value)));
    }
    return enc.Records(rows, "a JSON object (a record)");
  }
  array items;
  if (!value.get_array().get(items)) return DecodeRowList(items, format, enc);
  if (format == "inputs") {
    object columns;
    if (!value.get_object().get(columns)) return DecodeColumnar(columns, enc);
    return InvalidArgument(std::string(kTfServingError) +
                           ": \"inputs\" must be an object of columns or a list of rows, got " +
                           std::string(KindOf(value)));
  }
  return InvalidArgument(std::string(kTfServingError) +
                         ": \"instances\" must be a list of rows, got " +
                         std::string(KindOf(value)));
}

Status DecodeCsv(std::string_view body, Encoder& enc) {
  if (!simdjson::validate_utf8(body.data(), body.size())) {
    return InvalidArgument("the CSV body is not valid UTF-8 text");
  }
  data::CsvReaderOptions ro;
  ro.block_size = std::clamp<size_t>(body.size() + 1, 64, size_t{1} << 20);
  auto reader = data::CsvReader::FromString(std::string(body), "CSV body", ro);
  if (!reader.ok()) return reader.status();
  data::CsvReader& csv = **reader;
  const std::vector<std::string>& header = csv.header();
  if (header.empty()) return InvalidArgument("the CSV body has no header row");
  const FeaturePipeline& p = enc.pipeline();
  const size_t n = p.input_columns().size();
  Scratch& s = enc.scratch();
  s.column_of_field.clear();
  ColumnFlags named(s, n);
  size_t given = 0;
  for (size_t f = 0; f < header.size(); ++f) {
    KEEL_ASSIGN_OR_RETURN(const int c, enc.Column(header[f], f, 0, true));
    if (c >= 0) {
      if (named[static_cast<size_t>(c)]) {
        return InvalidArgument("CSV header names column " + Quoted(header[f]) + " twice");
      }
      named[static_cast<size_t>(c)] = 1;
      ++given;
    }
    s.column_of_field.push_back(c);
  }
  KEEL_RETURN_IF_ERROR(enc.RequireAll(named));
  KEEL_RETURN_IF_ERROR(enc.SetRows(0));
  DecodedBatch* out = enc.out();
  for (size_t r = 0;; ++r) {
    auto more = csv.Next();
    if (!more.ok()) {
      return Status(more.status().code(),
                    "row " + std::to_string(r) + ": " + more.status().message());
    }
    if (!*more) break;
    KEEL_RETURN_IF_ERROR(enc.AddRow());
    float* row = enc.Row(r);
    p.InitRow(row);
    std::string* raw = enc.Raw(r);
    if (raw != nullptr) *raw += '{';
    const std::vector<std::string_view>& fields = csv.fields();
    for (size_t f = 0; f < fields.size(); ++f) {
      if (raw != nullptr) {
        AppendKey(*raw, header[f]);
        if (IsJsonNumber(fields[f])) {
          raw->append(fields[f]);
        } else {
          *raw += '"';
          AppendJsonEscaped(*raw, fields[f]);
          *raw += '"';
        }
      }
      const int c = s.column_of_field[f];
      if (c >= 0) {
        KEEL_RETURN_IF_ERROR(
            enc.Text(static_cast<size_t>(c), fields[f], row, &out->stats, Where{r, header[f]}));
      }
    }
    if (raw != nullptr) *raw += '}';
    out->stats.missing += n - given;
  }
  return OkStatus();
}

// ---- Open Inference Protocol V2 ------------------------------------------------------

enum class DType {
  kBool,
  kUint8,
  kUint16,
  kUint32,
  kUint64,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFp16,
  kFp32,
  kFp64,
  kBytes
};

bool DTypeOf(std::string_view name, DType* t) {
  static constexpr std::pair<std::string_view, DType> kNames[] = {
      {"BOOL", DType::kBool},     {"UINT8", DType::kUint8},   {"UINT16", DType::kUint16},
      {"UINT32", DType::kUint32}, {"UINT64", DType::kUint64}, {"INT8", DType::kInt8},
      {"INT16", DType::kInt16},   {"INT32", DType::kInt32},   {"INT64", DType::kInt64},
      {"FP16", DType::kFp16},     {"FP32", DType::kFp32},     {"FP64", DType::kFp64},
      {"BYTES", DType::kBytes}};
  for (const auto& [n, d] : kNames) {
    if (n == name) {
      *t = d;
      return true;
    }
  }
  return false;
}

bool IsNumeric(DType t) { return t != DType::kBool && t != DType::kBytes; }

// Checks one data element against the tensor's datatype. JSON null is
// accepted by every datatype as a missing value.
bool ElementFits(DType t, element v) {
  const element_type et = v.type();
  if (et == element_type::NULL_VALUE) return true;
  int64_t lo = 0;
  int64_t hi = 0;
  switch (t) {
    case DType::kBool:
      return et == element_type::BOOL;
    case DType::kBytes:
      return et == element_type::STRING;
    case DType::kFp16:
      return false;
    case DType::kFp32:
    case DType::kFp64:
      return et == element_type::INT64 || et == element_type::UINT64 || et == element_type::DOUBLE;
    case DType::kUint64:
      return et == element_type::UINT64 ||
             (et == element_type::INT64 && v.get_int64().value_unsafe() >= 0);
    case DType::kInt64:
      return et == element_type::INT64;
    case DType::kUint8:
      hi = UINT8_MAX;
      break;
    case DType::kUint16:
      hi = UINT16_MAX;
      break;
    case DType::kUint32:
      hi = UINT32_MAX;
      break;
    case DType::kInt8:
      lo = INT8_MIN;
      hi = INT8_MAX;
      break;
    case DType::kInt16:
      lo = INT16_MIN;
      hi = INT16_MAX;
      break;
    case DType::kInt32:
      lo = INT32_MIN;
      hi = INT32_MAX;
      break;
  }
  if (et != element_type::INT64) return false;
  const int64_t i = v.get_int64().value_unsafe();
  return i >= lo && i <= hi;
}

// Calls f(element) for the scalars of nested arrays in row-major order;
// stops at the first error. Depth is bounded by the parser's (1024).
template <typename F>
Status ForEachLeaf(element e, F& f) {
  array a;
  if (e.get_array().get(a)) return f(e);
  for (element v : a) KEEL_RETURN_IF_ERROR(ForEachLeaf(v, f));
  return OkStatus();
}

uint64_t CountLeaves(element e) {
  array a;
  if (e.get_array().get(a)) return 1;
  uint64_t n = 0;
  for (element v : a) n += CountLeaves(v);
  return n;
}

constexpr size_t kMaxRank = 8;

struct Tensor {
  std::string_view name;
  std::string_view datatype;
  DType dtype = DType::kFp32;
  uint64_t dims[kMaxRank] = {};
  size_t rank = 0;
  uint64_t elements = 0;  // product of dims
  element data;
  int column = -1;  // input column (per-column form)

  std::string Shape() const {
    std::string s = "[";
    for (size_t i = 0; i < rank; ++i) {
      if (i > 0) s += ", ";
      s += std::to_string(dims[i]);
    }
    return s + "]";
  }
  std::string Name() const { return "input " + Quoted(name); }
};

// Reads one element of "inputs": name, datatype, shape and data, checked
// against each other.
Status ReadTensor(element e, size_t index, Tensor* t) {
  object obj;
  if (e.get_object().get(obj)) {
    return InvalidArgument("inputs[" + std::to_string(index) + "]: expected an object, got " +
                           std::string(KindOf(e)));
  }
  element shape_e, data_e;
  bool has_name = false, has_type = false, has_shape = false, has_data = false;
  for (simdjson::dom::key_value_pair kv : obj) {
    if (kv.key == "name") {
      if (kv.value.get_string().get(t->name)) {
        return InvalidArgument("inputs[" + std::to_string(index) +
                               "]: \"name\" must be a string, got " +
                               std::string(KindOf(kv.value)));
      }
      has_name = true;
    } else if (kv.key == "datatype") {
      if (kv.value.get_string().get(t->datatype)) {
        return InvalidArgument("inputs[" + std::to_string(index) +
                               "]: \"datatype\" must be a string, got " +
                               std::string(KindOf(kv.value)));
      }
      has_type = true;
    } else if (kv.key == "shape") {
      shape_e = kv.value;
      has_shape = true;
    } else if (kv.key == "data") {
      data_e = kv.value;
      has_data = true;
    }
  }
  if (!has_name)
    return InvalidArgument("inputs[" + std::to_string(index) + "]: \"name\" is missing");
  if (!has_type) return InvalidArgument(t->Name() + ": \"datatype\" is missing");
  if (!has_shape) return InvalidArgument(t->Name() + ": \"shape\" is missing");
  if (!has_data) {
    return InvalidArgument(t->Name() +
                           ": \"data\" is missing (the binary tensor data extension is not "
                           "supported)");
  }
  if (!DTypeOf(t->datatype, &t->dtype)) {
    return InvalidArgument(t->Name() + ": unknown datatype " + Quoted(t->datatype) +
                           " (BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, "
                           "FP32, FP64 or BYTES)");
  }
  if (t->dtype == DType::kFp16) {
    return InvalidArgument(t->Name() +
                           ": datatype FP16 is not supported in JSON requests; send FP32 (or "
                           "FP64) data");
  }
  array shape;
  if (shape_e.get_array().get(shape)) {
    return InvalidArgument(t->Name() + ": \"shape\" must be a list of dimensions, got " +
                           std::string(KindOf(shape_e)));
  }
  t->rank = 0;
  t->elements = 1;
  bool overflow = false;
  for (element d : shape) {
    uint64_t dim;
    if (d.get_uint64().get(dim)) {
      return InvalidArgument(t->Name() + ": shape dimensions must be non-negative integers, got " +
                             Shown(d));
    }
    if (t->rank == kMaxRank) {
      return InvalidArgument(t->Name() + ": shape has more than " + std::to_string(kMaxRank) +
                             " dimensions");
    }
    t->dims[t->rank++] = dim;
    if (__builtin_mul_overflow(t->elements, dim, &t->elements)) overflow = true;
  }
  if (overflow) {
    return InvalidArgument(t->Name() + ": shape " + t->Shape() +
                           " has more elements than can be counted");
  }
  array data;
  if (data_e.get_array().get(data)) {
    return InvalidArgument(t->Name() + ": \"data\" must be a list, got " +
                           std::string(KindOf(data_e)));
  }
  t->data = data_e;
  const uint64_t count = CountLeaves(data_e);
  if (count != t->elements) {
    return InvalidArgument(t->Name() + ": shape " + t->Shape() + " does not match " +
                           std::to_string(count) + " data elements");
  }
  return OkStatus();
}

std::string Mismatch(const Tensor& t, element v) {
  return ": expected " + std::string(t.datatype) + " data, got " + Shown(v);
}

// One numeric tensor holding the model's input vectors.
Status DecodeV2Matrix(const Tensor& t, size_t num_model_features, Encoder& enc) {
  const FeaturePipeline& p = enc.pipeline();
  if (!IsNumeric(t.dtype)) {
    return InvalidArgument(
        t.Name() + ": not an input column of the model (inputs: " + ColumnList(p) +
        "); a single tensor of the model's " + std::to_string(num_model_features) +
        " features must have a numeric datatype, not " + std::string(t.datatype));
  }
  const size_t nf = num_model_features;
  size_t rows;
  if (nf > 0 && t.rank == 2 && t.dims[1] == nf) {
    rows = static_cast<size_t>(t.dims[0]);
  } else if (nf > 0 && t.rank == 1 && t.dims[0] == nf) {
    rows = 1;
  } else {
    return InvalidArgument(
        t.Name() + ": not an input column of the model (inputs: " + ColumnList(p) +
        "), and its shape " + t.Shape() + " does not hold the model's " + std::to_string(nf) +
        " features (expected [n, " + std::to_string(nf) + "] or [" + std::to_string(nf) + "])");
  }
  KEEL_RETURN_IF_ERROR(enc.SetRows(rows, nf));
  const bool named = p.num_features() == nf;
  const std::vector<std::string>& names = p.feature_names();
  DecodedBatch* out = enc.out();
  float* x = out->features.data();
  size_t i = 0;
  auto visit = [&](element v) -> Status {
    const size_t r = i / nf, j = i % nf;
    if (!ElementFits(t.dtype, v)) {
      return InvalidArgument(t.Name() + ", row " + std::to_string(r) + ", feature " +
                             std::to_string(j) + Mismatch(t, v));
    }
    float f;
    if (v.is_null()) {
      f = std::numeric_limits<float>::quiet_NaN();
      ++out->stats.missing;
    } else {
      const double d = v.get_double().value_unsafe();
      f = static_cast<float>(d);
      if (std::isinf(f)) {
        return InvalidArgument(t.Name() + ", row " + std::to_string(r) + ", feature " +
                               std::to_string(j) + ": " + Shown(v) + " is out of the float range");
      }
    }
    x[i] = f;
    if (std::string* raw = enc.Raw(r)) {
      raw->push_back(j == 0 ? '{' : ',');
      *raw += '"';
      if (named) {
        AppendJsonEscaped(*raw, names[j]);
      } else {
        *raw += 'f';
        *raw += std::to_string(j);
      }
      *raw += "\":";
      AppendJsonValue(*raw, v);
      if (j + 1 == nf) *raw += '}';
    }
    ++i;
    return OkStatus();
  };
  return ForEachLeaf(t.data, visit);
}

Status DecodeV2(std::string_view body, size_t num_model_features, Encoder& enc, ScratchLease& lease,
                V2Request* request) {
  element root;
  if (auto err = lease.Parse(body, &root)) {
    return InvalidArgument(std::string("malformed JSON: ") + simdjson::error_message(err));
  }
  object obj;
  if (root.get_object().get(obj)) {
    return InvalidArgument("expected a JSON object (an inference request), got " +
                           std::string(KindOf(root)));
  }
  element inputs_e;
  bool has_inputs = false;
  for (simdjson::dom::key_value_pair kv : obj) {
    if (kv.key == "id") {
      std::string_view id;
      if (kv.value.get_string().get(id)) {
        return InvalidArgument("\"id\" must be a string, got " + std::string(KindOf(kv.value)));
      }
      if (request != nullptr) request->id.assign(id);
    } else if (kv.key == "outputs") {
      array outputs;
      if (kv.value.get_array().get(outputs)) {
        return InvalidArgument("\"outputs\" must be a list of {\"name\": ...} objects, got " +
                               std::string(KindOf(kv.value)));
      }
      if (request != nullptr) request->requested_outputs.clear();
      size_t k = 0;
      for (element o : outputs) {
        std::string_view name;
        if (o.at_key("name").get_string().get(name)) {
          return InvalidArgument("outputs[" + std::to_string(k) +
                                 "]: expected an object with a string \"name\"");
        }
        if (request != nullptr) request->requested_outputs.emplace_back(name);
        ++k;
      }
    } else if (kv.key == "inputs") {
      inputs_e = kv.value;
      has_inputs = true;
    }
  }
  if (!has_inputs) return InvalidArgument("\"inputs\" is missing");
  array inputs;
  if (inputs_e.get_array().get(inputs)) {
    return InvalidArgument("\"inputs\" must be a list of tensors, got " +
                           std::string(KindOf(inputs_e)));
  }
  const size_t count = inputs.size();
  if (count == 0) return InvalidArgument("\"inputs\" is empty");
  const FeaturePipeline& p = enc.pipeline();
  const std::vector<InputColumn>& cols = p.input_columns();

  if (count == 1) {
    Tensor t;
    KEEL_RETURN_IF_ERROR(ReadTensor(*inputs.begin(), 0, &t));
    if (p.InputColumnIndex(t.name) < 0) return DecodeV2Matrix(t, num_model_features, enc);
  }

  // One tensor per input column. The tensors are read twice (checked, then
  // encoded) rather than stored, so that a request costs no allocation.
  ColumnFlags named(enc.scratch(), cols.size());
  size_t rows = 0;
  std::string_view first_name;
  size_t index = 0;
  for (element e : inputs) {
    Tensor t;
    KEEL_RETURN_IF_ERROR(ReadTensor(e, index, &t));
    const int c = p.InputColumnIndex(t.name);
    if (c < 0) {
      return InvalidArgument(t.Name() +
                             ": not an input column of the model (inputs: " + ColumnList(p) + ")");
    }
    if (named[static_cast<size_t>(c)]) return InvalidArgument(t.Name() + ": given twice");
    named[static_cast<size_t>(c)] = 1;
    if (!(t.rank == 1 || (t.rank == 2 && t.dims[1] == 1))) {
      return InvalidArgument(t.Name() + ": shape " + t.Shape() +
                             " is not [n] or [n, 1] (one value per row)");
    }
    if (index == 0) {
      rows = static_cast<size_t>(t.dims[0]);
      first_name = t.name;
    } else if (t.dims[0] != rows) {
      return InvalidArgument(t.Name() + ": " + std::to_string(t.dims[0]) + " rows, but input " +
                             Quoted(first_name) + " has " + std::to_string(rows));
    }
    ++index;
  }
  KEEL_RETURN_IF_ERROR(enc.RequireAll(named));
  KEEL_RETURN_IF_ERROR(enc.SetRows(rows));
  enc.BeginColumns();
  for (element e : inputs) {
    Tensor t;
    (void)ReadTensor(e, 0, &t);  // checked above
    const int c = p.InputColumnIndex(t.name);
    size_t r = 0;
    auto visit = [&](element v) -> Status {
      if (!ElementFits(t.dtype, v)) {
        return InvalidArgument(t.Name() + ", row " + std::to_string(r) + Mismatch(t, v));
      }
      KEEL_RETURN_IF_ERROR(enc.ColumnValue(r, c, t.name, v, true));
      ++r;
      return OkStatus();
    };
    KEEL_RETURN_IF_ERROR(ForEachLeaf(t.data, visit));
  }
  enc.EndColumns(count);
  return OkStatus();
}

}  // namespace

// ---- entry points ------------------------------------------------------------------

Status DecodePredictBody(std::string_view body, const data::FeaturePipeline& pipeline,
                         const DecodeOptions& options, DecodedBatch* out) {
  ScratchLease lease;
  Encoder enc(pipeline, options, out, *lease);
  element root;
  if (auto err = lease.Parse(body, &root)) {
    return InvalidArgument(std::string("malformed JSON: ") + simdjson::error_message(err));
  }
  object obj;
  if (!root.get_object().get(obj)) {
    KEEL_RETURN_IF_ERROR(enc.SetRows(1));
    out->single_record = true;
    return enc.Record(obj, 0);
  }
  array rows;
  if (!root.get_array().get(rows)) return enc.Records(rows, "a JSON object (a record)");
  return InvalidArgument("expected a JSON object (a record) or a list of records, got " +
                         std::string(KindOf(root)));
}

Result<InvocationsFormat> InvocationsFormatOf(std::string_view content_type) {
  const std::string_view all = Trim(content_type);
  if (all.empty()) return InvocationsFormat::kJson;
  std::string_view rest = all;
  const size_t semi = rest.find(';');
  const std::string_view mime = Trim(rest.substr(0, semi));
  rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
  std::string unexpected;
  bool bad_charset = false;
  while (!rest.empty()) {
    const size_t next = rest.find(';');
    const std::string_view param = Trim(rest.substr(0, next));
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
    if (param.empty()) continue;
    const size_t eq = param.find('=');
    const std::string_view key = Trim(param.substr(0, eq));
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : Trim(param.substr(eq + 1));
    if (EqualsNoCase(key, "charset")) {
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      if (!EqualsNoCase(value, "utf-8")) bad_charset = true;
    } else {
      if (!unexpected.empty()) unexpected += ", ";
      AppendShown(unexpected, key);
    }
  }
  // MLflow's order: charset, then other parameters, then the media type.
  if (bad_charset) return InvalidArgument("The scoring server only supports UTF-8");
  if (!unexpected.empty()) {
    return InvalidArgument("Unrecognized content type parameters: " + unexpected + ". " +
                           std::string(kProtocolChangeInfo));
  }
  if (EqualsNoCase(mime, "application/json")) return InvocationsFormat::kJson;
  if (EqualsNoCase(mime, "text/csv") || EqualsNoCase(mime, "application/csv")) {
    return InvocationsFormat::kCsv;
  }
  std::string got;
  AppendShown(got, all);
  return InvalidArgument(
      "This predictor only supports the following content types: Types: ['text/csv', "
      "'application/csv', 'application/json']. Got '" +
      got + "'.");
}

Status DecodeInvocations(InvocationsFormat format, std::string_view body,
                         const data::FeaturePipeline& pipeline, const DecodeOptions& options,
                         DecodedBatch* out) {
  ScratchLease lease;
  Encoder enc(pipeline, options, out, *lease);
  if (format == InvocationsFormat::kCsv) return DecodeCsv(body, enc);
  return DecodeMlflowJson(body, enc, lease);
}

Status DecodeV2Infer(std::string_view body, const data::FeaturePipeline& pipeline,
                     size_t num_model_features, const DecodeOptions& options, DecodedBatch* out,
                     V2Request* request) {
  if (request != nullptr) {
    request->id.clear();
    request->requested_outputs.clear();
  }
  ScratchLease lease;
  Encoder enc(pipeline, options, out, *lease);
  return DecodeV2(body, num_model_features, enc, lease, request);
}

}  // namespace keel::serve
