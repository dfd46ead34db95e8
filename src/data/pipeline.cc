#include "keel/data/pipeline.h"

#include "keel/core/util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "keel/core/json.h"
#include "src/data/text.h"

namespace keel::data {

namespace {

constexpr float kMissing = std::numeric_limits<float>::quiet_NaN();
constexpr int kUnknown = -1;
constexpr int kMissingCategory = -2;

std::string_view EncodingName(CategoricalEncoding e) {
  return e == CategoricalEncoding::kNative ? "native" : "one_hot";
}

// The value as shown in an error message: quoted, at most 64 bytes, not
// splitting a UTF-8 sequence.
std::string Shown(std::string_view text) {
  std::string s = "\"";
  size_t n = std::min<size_t>(text.size(), 64);
  if (n < text.size()) {
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  }
  s.append(text.substr(0, n));
  if (text.size() > 64) s += "...";
  s += '"';
  return s;
}

std::string ShownNumber(double v) {
  if (std::isfinite(v)) return FormatDouble(v);
  return std::isnan(v) ? "NaN" : (v > 0 ? "inf" : "-inf");
}

// Per-thread scratch for the string_view entry point.
struct JsonScratch {
  simdjson::dom::parser parser;
  std::vector<char> buffer;
};

}  // namespace

struct FeaturePipeline::Value {
  enum Kind { kNull, kNumber, kString, kBool } kind = kNull;
  double number = 0;
  std::string_view text;
  bool flag = false;
};

namespace {

// Exact-match string -> position table (open addressing, linear probing);
// owns its keys.
class TextIndex {
 public:
  TextIndex() = default;
  explicit TextIndex(std::vector<std::string> keys) : keys_(std::move(keys)) {
    size_t size = 4;
    while (size < 2 * keys_.size()) size *= 2;
    mask_ = size - 1;
    slots_.assign(size, -1);
    hashes_.resize(keys_.size());
    for (size_t k = 0; k < keys_.size(); ++k) {
      hashes_[k] = Hash(keys_[k]);
      size_t i = hashes_[k] & mask_;
      while (slots_[i] >= 0) {
        // Keep the first of equal keys.
        if (keys_[static_cast<size_t>(slots_[i])] == keys_[k]) break;
        i = (i + 1) & mask_;
      }
      if (slots_[i] < 0) slots_[i] = static_cast<int32_t>(k);
    }
  }

  // Position of `key`, or -1.
  int Find(std::string_view key) const {
    if (slots_.empty()) return -1;
    const uint64_t h = Hash(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const int32_t k = slots_[i];
      if (k < 0) return -1;
      if (hashes_[static_cast<size_t>(k)] == h && keys_[static_cast<size_t>(k)] == key) return k;
    }
  }

 private:
  // FNV-1a, 8 bytes at a time, then a final mix: keys are short.
  static uint64_t Hash(std::string_view s) {
    uint64_t h = 0xcbf29ce484222325ull ^ s.size();
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      h = (h ^ w) * 0x100000001b3ull;
    }
    for (; i < s.size(); ++i) h = (h ^ static_cast<unsigned char>(s[i])) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
  }

  std::vector<std::string> keys_;
  std::vector<uint64_t> hashes_;
  std::vector<int32_t> slots_;
  size_t mask_ = 0;
};

}  // namespace

struct FeaturePipeline::Index {
  internal::MissingMatcher missing;
  TextIndex columns;                  // input column names
  std::vector<TextIndex> categories;  // per input column (empty unless categorical)
  // Per input column: (value, category) for categories whose text is a
  // number, sorted by value.
  std::vector<std::vector<std::pair<double, int>>> numeric_categories;
};

// --- construction -----------------------------------------------------------

Status FeaturePipeline::Build() {
  if (columns_.empty()) return InvalidArgument("a pipeline needs at least one input column");
  auto index = std::make_shared<Index>();
  index->missing = internal::MissingMatcher(missing_markers_);
  index->categories.resize(columns_.size());
  index->numeric_categories.resize(columns_.size());
  feature_names_.clear();
  feature_types_.clear();
  missing_row_.clear();
  std::vector<std::string> names;
  for (const InputColumn& col : columns_) names.push_back(col.name);
  index->columns = TextIndex(names);
  for (size_t c = 0; c < columns_.size(); ++c) {
    InputColumn& col = columns_[c];
    if (index->columns.Find(col.name) != static_cast<int>(c)) {
      return InvalidArgument("input column '" + col.name + "' is named twice");
    }
    if (col.type != ColumnType::kCategorical && !col.categories.empty()) {
      return InvalidArgument("input column '" + col.name + "' is " +
                             std::string(ColumnTypeName(col.type)) + " but lists categories");
    }
    for (size_t i = 1; i < col.categories.size(); ++i) {
      if (!(col.categories[i - 1] < col.categories[i])) {
        return InvalidArgument("categories of '" + col.name +
                               "' must be sorted and unique; found " + Shown(col.categories[i]) +
                               " after " + Shown(col.categories[i - 1]));
      }
    }
    col.first_feature = feature_names_.size();
    if (col.type == ColumnType::kCategorical) {
      index->categories[c] = TextIndex(col.categories);
      std::vector<std::pair<double, int>>& nums = index->numeric_categories[c];
      for (size_t i = 0; i < col.categories.size(); ++i) {
        double v;
        if (internal::ParseNumber(col.categories[i], &v) && !std::isnan(v)) {
          nums.emplace_back(v, static_cast<int>(i));
        }
      }
      // Stable: among equal values the first category in sorted order wins.
      std::stable_sort(nums.begin(), nums.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      if (encoding_ == CategoricalEncoding::kOneHot) {
        for (const std::string& cat : col.categories) {
          feature_names_.push_back(col.name + "=" + cat);
          feature_types_.push_back("i");
          missing_row_.push_back(0.0f);
        }
      } else {
        feature_names_.push_back(col.name);
        feature_types_.push_back("c");
        missing_row_.push_back(kMissing);
      }
    } else {
      feature_names_.push_back(col.name);
      feature_types_.push_back(col.type == ColumnType::kBoolean ? "i" : "q");
      missing_row_.push_back(kMissing);
    }
    col.num_features = feature_names_.size() - col.first_feature;
  }
  index_ = std::move(index);
  return OkStatus();
}

Result<FeaturePipeline> FeaturePipeline::Fit(const Table& table,
                                             const std::vector<std::string>& feature_columns,
                                             const PipelineOptions& options) {
  if (feature_columns.empty()) return InvalidArgument("no feature columns given");
  FeaturePipeline p;
  p.encoding_ = options.encoding;
  p.missing_markers_ = options.missing_markers;
  internal::MissingMatcher missing(options.missing_markers);
  for (const std::string& name : feature_columns) {
    const Column* column = table.FindColumn(name);
    if (column == nullptr) return InvalidArgument("the table has no column '" + name + "'");
    // The pipeline is stored as JSON, which holds only UTF-8 text.
    if (!IsValidUtf8(name)) return InvalidArgument("a column name is not valid UTF-8 text");
    InputColumn in;
    in.name = name;
    in.type = column->type();
    if (in.type == ColumnType::kCategorical) {
      const std::vector<std::string>& dict = column->dictionary();
      std::vector<bool> used(dict.size(), false);
      for (int32_t code : column->codes()) {
        if (code >= 0) used[static_cast<size_t>(code)] = true;
      }
      for (size_t i = 0; i < dict.size(); ++i) {
        if (used[i] && !missing.Matches(dict[i])) {
          if (!IsValidUtf8(dict[i])) {
            return InvalidArgument("column '" + name + "': a value is not valid UTF-8 text");
          }
          in.categories.push_back(dict[i]);
        }
      }
      std::sort(in.categories.begin(), in.categories.end());
    }
    p.columns_.push_back(std::move(in));
  }
  KEEL_RETURN_IF_ERROR(p.Build());
  return p;
}

Result<FeaturePipeline> FeaturePipeline::Identity(const std::vector<std::string>& feature_names) {
  FeaturePipeline p;
  p.missing_markers_ = DefaultMissingMarkers();
  for (const std::string& name : feature_names) {
    InputColumn in;
    in.name = name;
    in.type = ColumnType::kNumeric;
    p.columns_.push_back(std::move(in));
  }
  KEEL_RETURN_IF_ERROR(p.Build());
  return p;
}

bool operator==(const FeaturePipeline& a, const FeaturePipeline& b) {
  if (a.encoding_ != b.encoding_ || a.missing_markers_ != b.missing_markers_ ||
      a.columns_.size() != b.columns_.size()) {
    return false;
  }
  for (size_t i = 0; i < a.columns_.size(); ++i) {
    const InputColumn& x = a.columns_[i];
    const InputColumn& y = b.columns_[i];
    if (x.name != y.name || x.type != y.type || x.categories != y.categories) return false;
  }
  return true;
}

// --- JSON document ------------------------------------------------------------

std::string FeaturePipeline::ToJson() const {
  JsonWriter w(1024);
  w.BeginObject();
  w.Key("keel_pipeline");
  w.Int(1);
  w.Key("encoding");
  w.String(EncodingName(encoding_));
  w.Key("missing_markers");
  w.BeginArray();
  for (const std::string& m : missing_markers_) w.String(m);
  w.EndArray();
  w.Key("columns");
  w.BeginArray();
  for (const InputColumn& c : columns_) {
    w.BeginObject();
    w.Key("name");
    w.String(c.name);
    w.Key("type");
    w.String(ColumnTypeName(c.type));
    if (c.type == ColumnType::kCategorical) {
      w.Key("categories");
      w.BeginArray();
      for (const std::string& cat : c.categories) w.String(cat);
      w.EndArray();
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("feature_names");
  w.BeginArray();
  for (const std::string& n : feature_names_) w.String(n);
  w.EndArray();
  w.Key("feature_types");
  w.BeginArray();
  for (const std::string& t : feature_types_) w.String(t);
  w.EndArray();
  w.EndObject();
  return std::move(w).Take();
}

namespace {

Result<std::vector<std::string>> StringArray(simdjson::dom::element e, std::string_view field) {
  simdjson::dom::array arr;
  if (e.get_array().get(arr))
    return InvalidArgument("pipeline: '" + std::string(field) + "' must be an array of strings");
  std::vector<std::string> out;
  for (simdjson::dom::element item : arr) {
    std::string_view s;
    if (item.get_string().get(s)) {
      return InvalidArgument("pipeline: '" + std::string(field) + "' must be an array of strings");
    }
    out.emplace_back(s);
  }
  return out;
}

}  // namespace

Result<FeaturePipeline> FeaturePipeline::FromJson(std::string_view json) {
  KEEL_ASSIGN_OR_RETURN(JsonDoc doc, ParseJsonObject(json));
  simdjson::dom::object root = doc.root().get_object().value_unsafe();
  int64_t version = 0;
  if (root["keel_pipeline"].get_int64().get(version)) {
    return InvalidArgument(
        "pipeline: 'keel_pipeline' (the format version) is missing or not an integer");
  }
  if (version != 1) {
    return InvalidArgument("pipeline: unsupported keel_pipeline version " +
                           std::to_string(version) + " (this keel reads version 1)");
  }
  FeaturePipeline p;
  std::string_view encoding;
  if (root["encoding"].get_string().get(encoding)) {
    return InvalidArgument("pipeline: 'encoding' is missing or not a string");
  }
  if (encoding == "one_hot") {
    p.encoding_ = CategoricalEncoding::kOneHot;
  } else if (encoding == "native") {
    p.encoding_ = CategoricalEncoding::kNative;
  } else {
    return InvalidArgument("pipeline: unknown encoding " + Shown(encoding) +
                           " (one_hot or native)");
  }
  simdjson::dom::element markers;
  if (root["missing_markers"].get(markers)) {
    return InvalidArgument("pipeline: 'missing_markers' is missing");
  }
  KEEL_ASSIGN_OR_RETURN(p.missing_markers_, StringArray(markers, "missing_markers"));
  simdjson::dom::array columns;
  if (root["columns"].get_array().get(columns)) {
    return InvalidArgument("pipeline: 'columns' is missing or not an array");
  }
  for (simdjson::dom::element ce : columns) {
    simdjson::dom::object co;
    if (ce.get_object().get(co)) return InvalidArgument("pipeline: each column must be an object");
    InputColumn in;
    std::string_view name, type;
    if (co["name"].get_string().get(name)) {
      return InvalidArgument("pipeline: a column lacks a string 'name'");
    }
    in.name = std::string(name);
    if (co["type"].get_string().get(type)) {
      return InvalidArgument("pipeline: column '" + in.name + "' lacks a string 'type'");
    }
    std::optional<ColumnType> t = ColumnTypeFromName(type);
    if (!t) {
      return InvalidArgument("pipeline: column '" + in.name + "' has unknown type " + Shown(type));
    }
    in.type = *t;
    simdjson::dom::element cats;
    if (co["categories"].get(cats) == simdjson::SUCCESS) {
      KEEL_ASSIGN_OR_RETURN(in.categories, StringArray(cats, "categories"));
    } else if (in.type == ColumnType::kCategorical) {
      return InvalidArgument("pipeline: categorical column '" + in.name + "' lacks 'categories'");
    }
    p.columns_.push_back(std::move(in));
  }
  {
    Status s = p.Build();
    if (!s.ok()) return s.WithContext("pipeline");
  }
  simdjson::dom::element names;
  if (root["feature_names"].get(names) == simdjson::SUCCESS) {
    KEEL_ASSIGN_OR_RETURN(std::vector<std::string> given, StringArray(names, "feature_names"));
    if (given != p.feature_names_) {
      return InvalidArgument("pipeline: 'feature_names' do not match the columns");
    }
  }
  simdjson::dom::element types;
  if (root["feature_types"].get(types) == simdjson::SUCCESS) {
    KEEL_ASSIGN_OR_RETURN(std::vector<std::string> given, StringArray(types, "feature_types"));
    if (given != p.feature_types_) {
      return InvalidArgument("pipeline: 'feature_types' do not match the columns");
    }
  }
  return p;
}

// --- encoding -------------------------------------------------------------------

int FeaturePipeline::InputColumnIndex(std::string_view name) const {
  return index_->columns.Find(name);
}

int FeaturePipeline::FindColumn(std::string_view key, size_t expected) const {
  // Clients usually send keys in the pipeline's order: try the next one first.
  if (expected < columns_.size() && columns_[expected].name == key) {
    return static_cast<int>(expected);
  }
  return index_->columns.Find(key);
}

int FeaturePipeline::CategoryOfText(size_t c, std::string_view text) const {
  const int k = index_->categories[c].Find(text);
  return k >= 0 ? k : kUnknown;
}

int FeaturePipeline::CategoryOfNumber(size_t c, double value) const {
  const std::vector<std::pair<double, int>>& nums = index_->numeric_categories[c];
  auto it = std::lower_bound(nums.begin(), nums.end(), value,
                             [](const std::pair<double, int>& a, double v) { return a.first < v; });
  if (it != nums.end() && it->first == value) return it->second;
  return kUnknown;
}

Status FeaturePipeline::EncodeValue(size_t c, const Value& v, float* out, bool* present,
                                    EncodeStats* stats) const {
  const InputColumn& col = columns_[c];
  float* dst = out + col.first_feature;
  *present = false;
  if (v.kind == Value::kNull || (v.kind == Value::kString && index_->missing.Matches(v.text))) {
    std::memcpy(dst, missing_row_.data() + col.first_feature, col.num_features * sizeof(float));
    return OkStatus();
  }
  *present = true;
  switch (col.type) {
    case ColumnType::kNumeric: {
      double d;
      switch (v.kind) {
        case Value::kNumber:
          d = v.number;
          break;
        case Value::kString:
          if (!internal::ParseNumber(v.text, &d)) {
            return InvalidArgument("field '" + col.name + "': " + Shown(v.text) +
                                   " is not a number");
          }
          break;
        default:
          return InvalidArgument("field '" + col.name + "': expected a number, got a boolean");
      }
      *dst = static_cast<float>(d);
      if (std::isnan(d)) *present = false;
      return OkStatus();
    }
    case ColumnType::kBoolean: {
      bool b = false;
      switch (v.kind) {
        case Value::kBool:
          b = v.flag;
          break;
        case Value::kNumber:
          if (v.number != 0.0 && v.number != 1.0) {
            return InvalidArgument("field '" + col.name + "': " + ShownNumber(v.number) +
                                   " is not a boolean (0 or 1)");
          }
          b = v.number == 1.0;
          break;
        default:
          if (!internal::ParseLooseBool(v.text, &b)) {
            return InvalidArgument("field '" + col.name + "': " + Shown(v.text) +
                                   " is not a boolean");
          }
      }
      *dst = b ? 1.0f : 0.0f;
      return OkStatus();
    }
    case ColumnType::kCategorical: {
      int k;
      switch (v.kind) {
        case Value::kNumber:
          k = std::isnan(v.number) ? kMissingCategory : CategoryOfNumber(c, v.number);
          break;
        case Value::kBool:
          k = CategoryOfText(c, v.flag ? "true" : "false");
          break;
        default:
          k = CategoryOfText(c, v.text);
      }
      if (k == kMissingCategory) {
        *present = false;
      } else if (k == kUnknown && stats != nullptr) {
        ++stats->unknown;
      }
      if (encoding_ == CategoricalEncoding::kOneHot) {
        std::memset(dst, 0, col.num_features * sizeof(float));
        if (k >= 0) dst[k] = 1.0f;
      } else {
        *dst = k >= 0 ? static_cast<float>(k) : kMissing;
      }
      return OkStatus();
    }
  }
  return OkStatus();
}

namespace {

// Marks which input columns received a value in the current record: on the
// stack for up to 256 columns, else in a per-thread array (encoding is not
// re-entrant on one thread).
class Presence {
 public:
  explicit Presence(size_t n) {
    if (n <= kInline) {
      flags_ = inline_;
    } else {
      thread_local std::vector<uint8_t> heap;
      if (heap.size() < n) heap.resize(n);
      flags_ = heap.data();
    }
    std::memset(flags_, 0, n);
  }
  uint8_t* flags() { return flags_; }

 private:
  static constexpr size_t kInline = 256;
  uint8_t inline_[kInline];
  uint8_t* flags_;
};

}  // namespace

Status FeaturePipeline::EncodeJsonObject(std::string_view json_object_text, float* out,
                                         EncodeStats* stats) const {
  // The DOM parser is used here because it dispatches at run time to the
  // best SIMD kernel; simdjson's On-Demand front end is bound to the kernel
  // chosen at compile time (the scalar one for a generic x86-64 build).
  thread_local JsonScratch scratch;
  const size_t need = json_object_text.size() + simdjson::SIMDJSON_PADDING;
  if (scratch.buffer.size() < need) {
    scratch.buffer.resize(std::max(need, 2 * scratch.buffer.size()));
  }
  std::memcpy(scratch.buffer.data(), json_object_text.data(), json_object_text.size());
  std::memset(scratch.buffer.data() + json_object_text.size(), 0, simdjson::SIMDJSON_PADDING);
  simdjson::dom::element root;
  if (auto err =
          scratch.parser.parse(scratch.buffer.data(), json_object_text.size(), false).get(root)) {
    return InvalidArgument(std::string("malformed JSON: ") + simdjson::error_message(err));
  }
  simdjson::dom::object object;
  if (root.get_object().get(object)) return InvalidArgument("expected a JSON object");
  return EncodeJsonObject(object, out, stats);
}

Status FeaturePipeline::EncodeJsonObject(simdjson::ondemand::object& object, float* out,
                                         EncodeStats* stats) const {
  std::memcpy(out, missing_row_.data(), missing_row_.size() * sizeof(float));
  Presence presence(columns_.size());
  uint8_t* present = presence.flags();
  size_t expected = 0;
  for (auto field : object) {
    std::string_view key;
    if (auto err = field.unescaped_key().get(key)) {
      return InvalidArgument(std::string("malformed JSON: ") + simdjson::error_message(err));
    }
    int c = FindColumn(key, expected);
    if (c < 0) continue;  // not an input: the iterator skips the value
    expected = static_cast<size_t>(c) + 1;
    simdjson::ondemand::value value;
    simdjson::ondemand::json_type type;
    if (auto err = field.value().get(value); err || (err = value.type().get(type))) {
      return InvalidArgument(std::string("malformed JSON: ") + simdjson::error_message(err));
    }
    Value v;
    simdjson::error_code err = simdjson::SUCCESS;
    switch (type) {
      case simdjson::ondemand::json_type::number:
        v.kind = Value::kNumber;
        err = value.get_double().get(v.number);
        break;
      case simdjson::ondemand::json_type::string:
        v.kind = Value::kString;
        err = value.get_string().get(v.text);
        break;
      case simdjson::ondemand::json_type::boolean:
        v.kind = Value::kBool;
        err = value.get_bool().get(v.flag);
        break;
      case simdjson::ondemand::json_type::null:
        v.kind = Value::kNull;
        break;
      default:
        return InvalidArgument("field '" + columns_[static_cast<size_t>(c)].name +
                               "': expected a number, string, boolean or null");
    }
    if (err) return InvalidArgument(std::string("malformed JSON: ") + simdjson::error_message(err));
    bool is_present;
    KEEL_RETURN_IF_ERROR(EncodeValue(static_cast<size_t>(c), v, out, &is_present, stats));
    present[c] = is_present;
  }
  if (stats != nullptr) {
    for (size_t c = 0; c < columns_.size(); ++c) stats->missing += !present[c];
  }
  return OkStatus();
}

Status FeaturePipeline::EncodeJsonObject(simdjson::dom::object object, float* out,
                                         EncodeStats* stats) const {
  std::memcpy(out, missing_row_.data(), missing_row_.size() * sizeof(float));
  Presence presence(columns_.size());
  uint8_t* present = presence.flags();
  size_t expected = 0;
  for (simdjson::dom::key_value_pair kv : object) {
    int c = FindColumn(kv.key, expected);
    if (c < 0) continue;
    expected = static_cast<size_t>(c) + 1;
    Value v;
    if (!ValueOfElement(kv.value, &v)) {
      return InvalidArgument("field '" + columns_[static_cast<size_t>(c)].name +
                             "': expected a number, string, boolean or null");
    }
    bool is_present;
    KEEL_RETURN_IF_ERROR(EncodeValue(static_cast<size_t>(c), v, out, &is_present, stats));
    present[c] = is_present;
  }
  if (stats != nullptr) {
    for (size_t c = 0; c < columns_.size(); ++c) stats->missing += !present[c];
  }
  return OkStatus();
}

bool FeaturePipeline::ValueOfElement(simdjson::dom::element e, Value* v) {
  switch (e.type()) {
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE:
      v->kind = Value::kNumber;
      v->number = e.get_double().value_unsafe();
      return true;
    case simdjson::dom::element_type::STRING:
      v->kind = Value::kString;
      v->text = e.get_string().value_unsafe();
      return true;
    case simdjson::dom::element_type::BOOL:
      v->kind = Value::kBool;
      v->flag = e.get_bool().value_unsafe();
      return true;
    case simdjson::dom::element_type::NULL_VALUE:
      v->kind = Value::kNull;
      return true;
    default:
      return false;
  }
}

void FeaturePipeline::InitRow(float* out) const {
  std::memcpy(out, missing_row_.data(), missing_row_.size() * sizeof(float));
}

Status FeaturePipeline::EncodeJsonValue(size_t column, simdjson::dom::element value, float* row,
                                        EncodeStats* stats) const {
  if (column >= columns_.size()) {
    return InvalidArgument("input column " + std::to_string(column) +
                           " out of range: " + std::to_string(columns_.size()) + " input columns");
  }
  Value v;
  if (!ValueOfElement(value, &v)) {
    return InvalidArgument("field '" + columns_[column].name +
                           "': expected a number, string, boolean or null");
  }
  bool present;
  KEEL_RETURN_IF_ERROR(EncodeValue(column, v, row, &present, stats));
  if (stats != nullptr) stats->missing += !present;
  return OkStatus();
}

Status FeaturePipeline::EncodeTextValue(size_t column, std::string_view text, float* row,
                                        EncodeStats* stats) const {
  if (column >= columns_.size()) {
    return InvalidArgument("input column " + std::to_string(column) +
                           " out of range: " + std::to_string(columns_.size()) + " input columns");
  }
  Value v;
  v.kind = Value::kString;
  v.text = text;
  bool present;
  KEEL_RETURN_IF_ERROR(EncodeValue(column, v, row, &present, stats));
  if (stats != nullptr) stats->missing += !present;
  return OkStatus();
}

Result<ColumnMap> FeaturePipeline::MapCsvHeader(const std::vector<std::string>& header,
                                                bool allow_missing_columns) const {
  ColumnMap map;
  map.num_fields = header.size();
  map.field_of_column.assign(columns_.size(), -1);
  for (size_t i = 0; i < header.size(); ++i) {
    int c = InputColumnIndex(header[i]);
    if (c < 0) continue;
    if (map.field_of_column[static_cast<size_t>(c)] >= 0) {
      return InvalidArgument("CSV header names column '" + header[i] + "' twice");
    }
    map.field_of_column[static_cast<size_t>(c)] = static_cast<int>(i);
  }
  if (!allow_missing_columns) {
    for (size_t c = 0; c < columns_.size(); ++c) {
      if (map.field_of_column[c] < 0) {
        return InvalidArgument("CSV header lacks input column '" + columns_[c].name + "'");
      }
    }
  }
  return map;
}

Status FeaturePipeline::EncodeCsvFields(const std::vector<std::string_view>& fields,
                                        const ColumnMap& header_map, float* out,
                                        EncodeStats* stats) const {
  if (fields.size() != header_map.num_fields ||
      header_map.field_of_column.size() != columns_.size()) {
    return InvalidArgument(std::to_string(fields.size()) + " fields, header has " +
                           std::to_string(header_map.num_fields));
  }
  for (size_t c = 0; c < columns_.size(); ++c) {
    const int f = header_map.field_of_column[c];
    Value v;
    if (f >= 0) {
      v.kind = Value::kString;
      v.text = fields[static_cast<size_t>(f)];
    }
    bool present;
    KEEL_RETURN_IF_ERROR(EncodeValue(c, v, out, &present, stats));
    if (stats != nullptr) stats->missing += !present;
  }
  return OkStatus();
}

// --- tables -----------------------------------------------------------------------

namespace {

// How one table column feeds one pipeline input: per-row numbers, category
// indices or booleans, with conversions decided once per dictionary entry.
struct TableColumnPlan {
  const Column* column = nullptr;
  // Categorical table column: per dictionary entry, the pipeline value: for a
  // categorical input the category index (kUnknown/kMissingCategory); for a
  // numeric/boolean input a double (NaN missing) or an error.
  std::vector<int> category_of_code;
  std::vector<double> value_of_code;
  std::vector<uint8_t> bad_code;
};

}  // namespace

template <typename RowAt>
Status FeaturePipeline::EncodeTableRows(const Table& table, size_t count, RowAt row_at, float* out,
                                        EncodeStats* stats) const {
  const size_t width = num_features();
  std::vector<TableColumnPlan> plans(columns_.size());
  for (size_t c = 0; c < columns_.size(); ++c) {
    const InputColumn& in = columns_[c];
    TableColumnPlan& plan = plans[c];
    plan.column = table.FindColumn(in.name);
    if (plan.column == nullptr) return InvalidArgument("the table has no column '" + in.name + "'");
    if (plan.column->type() != ColumnType::kCategorical) continue;
    const std::vector<std::string>& dict = plan.column->dictionary();
    plan.category_of_code.resize(dict.size());
    plan.value_of_code.resize(dict.size());
    plan.bad_code.assign(dict.size(), 0);
    for (size_t i = 0; i < dict.size(); ++i) {
      const bool missing = index_->missing.Matches(dict[i]);
      double d = std::numeric_limits<double>::quiet_NaN();
      bool b;
      switch (in.type) {
        case ColumnType::kCategorical:
          plan.category_of_code[i] = missing ? kMissingCategory : CategoryOfText(c, dict[i]);
          break;
        case ColumnType::kNumeric:
          if (!missing && !internal::ParseNumber(dict[i], &d)) plan.bad_code[i] = 1;
          plan.value_of_code[i] = d;
          break;
        case ColumnType::kBoolean:
          if (!missing) {
            if (internal::ParseLooseBool(dict[i], &b)) {
              d = b ? 1.0 : 0.0;
            } else {
              plan.bad_code[i] = 1;
            }
          }
          plan.value_of_code[i] = d;
          break;
      }
    }
  }

  for (size_t r = 0; r < count; ++r) {
    const size_t row = row_at(r);
    float* dst_row = out + r * width;
    for (size_t c = 0; c < columns_.size(); ++c) {
      const InputColumn& in = columns_[c];
      const TableColumnPlan& plan = plans[c];
      const Column& col = *plan.column;
      float* dst = dst_row + in.first_feature;
      const bool table_categorical = col.type() == ColumnType::kCategorical;
      const int32_t code = table_categorical ? col.codes()[row] : -1;
      if (in.type == ColumnType::kCategorical) {
        int k;
        if (table_categorical) {
          k = code < 0 ? kMissingCategory : plan.category_of_code[static_cast<size_t>(code)];
        } else {
          const double v = col.values()[row];
          if (std::isnan(v)) {
            k = kMissingCategory;
          } else if (col.type() == ColumnType::kBoolean) {
            k = CategoryOfText(c, v != 0.0 ? "true" : "false");
          } else {
            k = CategoryOfNumber(c, v);
          }
        }
        if (stats != nullptr) {
          stats->missing += k == kMissingCategory;
          stats->unknown += k == kUnknown;
        }
        if (encoding_ == CategoricalEncoding::kOneHot) {
          std::memset(dst, 0, in.num_features * sizeof(float));
          if (k >= 0) dst[k] = 1.0f;
        } else {
          *dst = k >= 0 ? static_cast<float>(k) : kMissing;
        }
        continue;
      }
      double v;
      if (table_categorical) {
        if (code < 0) {
          v = std::numeric_limits<double>::quiet_NaN();
        } else if (plan.bad_code[static_cast<size_t>(code)]) {
          return InvalidArgument("row " + std::to_string(row) + ", column '" + in.name + "': " +
                                 Shown(col.dictionary()[static_cast<size_t>(code)]) + " is not a " +
                                 (in.type == ColumnType::kNumeric ? "number" : "boolean"));
        } else {
          v = plan.value_of_code[static_cast<size_t>(code)];
        }
      } else {
        v = col.values()[row];
        if (in.type == ColumnType::kBoolean && !std::isnan(v) && v != 0.0 && v != 1.0) {
          return InvalidArgument("row " + std::to_string(row) + ", column '" + in.name +
                                 "': " + ShownNumber(v) + " is not a boolean (0 or 1)");
        }
      }
      if (stats != nullptr) stats->missing += std::isnan(v);
      *dst = static_cast<float>(v);
    }
  }
  return OkStatus();
}

Status FeaturePipeline::EncodeTable(const Table& table, float* out, size_t row_begin,
                                    size_t row_end, EncodeStats* stats) const {
  if (row_begin > row_end || row_end > table.num_rows()) {
    return InvalidArgument("rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) +
                           ") out of range: the table has " + std::to_string(table.num_rows()));
  }
  return EncodeTableRows(
      table, row_end - row_begin, [row_begin](size_t r) { return row_begin + r; }, out, stats);
}

Status FeaturePipeline::EncodeRows(const Table& table, std::span<const uint32_t> rows, float* out,
                                   EncodeStats* stats) const {
  for (uint32_t r : rows) {
    if (r >= table.num_rows()) {
      return InvalidArgument("row " + std::to_string(r) + " out of range: the table has " +
                             std::to_string(table.num_rows()));
    }
  }
  return EncodeTableRows(
      table, rows.size(), [rows](size_t r) { return static_cast<size_t>(rows[r]); }, out, stats);
}

}  // namespace keel::data
