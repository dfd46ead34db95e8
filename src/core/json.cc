#include "keel/core/json.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace keel {

namespace {

// 1 for bytes that need escaping in a JSON string: controls, '"' and '\\'.
constexpr std::array<uint8_t, 256> MakeEscapeTable() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 1;
  t['"'] = 1;
  t['\\'] = 1;
  return t;
}
constexpr std::array<uint8_t, 256> kNeedsEscape = MakeEscapeTable();

}  // namespace

void AppendJsonEscaped(std::string& out, std::string_view value) {
  static const char* kHex = "0123456789abcdef";
  const char* p = value.data();
  const char* end = p + value.size();
  while (p < end) {
    const char* run = p;
    while (p < end && !kNeedsEscape[static_cast<unsigned char>(*p)]) ++p;
    out.append(run, static_cast<size_t>(p - run));
    if (p == end) break;
    unsigned char c = static_cast<unsigned char>(*p++);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default: {
        char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out.append(esc, 6);
      }
    }
  }
}

namespace {
bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }
}  // namespace

bool IsJsonNumber(std::string_view t) {
  size_t i = 0;
  const size_t n = t.size();
  if (i < n && t[i] == '-') ++i;
  if (i == n) return false;
  if (t[i] == '0') {
    ++i;
  } else if (IsAsciiDigit(t[i])) {
    while (i < n && IsAsciiDigit(t[i])) ++i;
  } else {
    return false;
  }
  if (i < n && t[i] == '.') {
    ++i;
    if (i == n || !IsAsciiDigit(t[i])) return false;
    while (i < n && IsAsciiDigit(t[i])) ++i;
  }
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < n && (t[i] == '+' || t[i] == '-')) ++i;
    if (i == n || !IsAsciiDigit(t[i])) return false;
    while (i < n && IsAsciiDigit(t[i])) ++i;
  }
  return i == n;
}

void AppendJsonFloat(std::string& out, float value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, res.ptr);
}

void AppendJsonFloats(std::string& out, const float* values, size_t k) {
  if (k == 1) {
    AppendJsonFloat(out, values[0]);
    return;
  }
  out += '[';
  for (size_t j = 0; j < k; ++j) {
    if (j) out += ',';
    AppendJsonFloat(out, values[j]);
  }
  out += ']';
}

std::string FormatDouble(double value) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof(buf), value);
  std::string s(buf, res.ptr);
  // Keep a float-looking token for integral values ("1.0" like Python's json).
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

void JsonWriter::Separate() {
  if (need_comma_) out_ += ',';
  need_comma_ = true;
}

void JsonWriter::BeginObject() {
  Separate();
  out_ += '{';
  need_comma_ = false;
}
void JsonWriter::EndObject() {
  out_ += '}';
  need_comma_ = true;
}
void JsonWriter::BeginArray() {
  Separate();
  out_ += '[';
  need_comma_ = false;
}
void JsonWriter::EndArray() {
  out_ += ']';
  need_comma_ = true;
}
void JsonWriter::Key(std::string_view key) {
  Separate();
  out_ += '"';
  AppendJsonEscaped(out_, key);
  out_ += "\":";
  need_comma_ = false;
}
void JsonWriter::String(std::string_view value) {
  Separate();
  out_ += '"';
  AppendJsonEscaped(out_, value);
  out_ += '"';
}
void JsonWriter::Int(int64_t value) {
  Separate();
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), value);
  out_.append(buf, res.ptr);
}
void JsonWriter::Double(double value) {
  Separate();
  if (std::isnan(value)) {
    out_ += "\"NaN\"";
  } else if (std::isinf(value)) {
    out_ += value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  } else {
    out_ += FormatDouble(value);
  }
}
void JsonWriter::Bool(bool value) {
  Separate();
  out_ += value ? "true" : "false";
}
void JsonWriter::Null() {
  Separate();
  out_ += "null";
}
void JsonWriter::Raw(std::string_view json) {
  Separate();
  out_ += json;
}

Result<JsonDoc> ParseJson(std::string_view text) {
  JsonDoc doc;
  doc.parser_ = std::make_shared<simdjson::dom::parser>();
  auto err = doc.parser_->parse(text.data(), text.size()).get(doc.root_);
  if (err) {
    return InvalidArgument(std::string("Malformed JSON: ") + simdjson::error_message(err));
  }
  return doc;
}

Result<JsonDoc> ParseJsonObject(std::string_view text) {
  KEEL_ASSIGN_OR_RETURN(JsonDoc doc, ParseJson(text));
  if (!doc.root().is_object()) return InvalidArgument("Request body must be a JSON object");
  return doc;
}

namespace {

bool Lookup(simdjson::dom::element obj, std::string_view key, simdjson::dom::element& out) {
  simdjson::dom::object o;
  if (obj.get_object().get(o)) return false;
  if (o.at_key(key).get(out)) return false;
  return !out.is_null();
}

}  // namespace

Result<std::optional<std::string>> JsonString(simdjson::dom::element obj, std::string_view key) {
  simdjson::dom::element e;
  if (!Lookup(obj, key, e)) return std::optional<std::string>();
  std::string_view sv;
  if (e.get_string().get(sv)) {
    return InvalidArgument("Invalid value for parameter '" + std::string(key) +
                           "': expected a string");
  }
  return std::optional<std::string>(std::string(sv));
}

Result<int64_t> JsonElementInt64(simdjson::dom::element e, std::string_view field) {
  int64_t i;
  if (!e.get_int64().get(i)) return i;
  uint64_t u;
  if (!e.get_uint64().get(u)) {
    return InvalidArgument("Invalid value for parameter '" + std::string(field) +
                           "': integer out of range");
  }
  double d;
  if (!e.get_double().get(d) && std::floor(d) == d && std::fabs(d) < 9.2e18) {
    return static_cast<int64_t>(d);
  }
  std::string_view sv;
  if (!e.get_string().get(sv) && !sv.empty()) {
    auto res = std::from_chars(sv.data(), sv.data() + sv.size(), i);
    if (res.ec == std::errc() && res.ptr == sv.data() + sv.size()) return i;
  }
  return InvalidArgument("Invalid value for parameter '" + std::string(field) +
                         "': expected an integer");
}

Result<double> JsonElementDouble(simdjson::dom::element e, std::string_view field) {
  double d;
  if (!e.get_double().get(d)) return d;
  int64_t i;
  if (!e.get_int64().get(i)) return static_cast<double>(i);
  uint64_t u;
  if (!e.get_uint64().get(u)) return static_cast<double>(u);
  std::string_view sv;
  if (!e.get_string().get(sv)) {
    if (sv == "NaN" || sv == "nan") return std::nan("");
    if (sv == "Infinity" || sv == "inf") return HUGE_VAL;
    if (sv == "-Infinity" || sv == "-inf") return -HUGE_VAL;
    auto res = std::from_chars(sv.data(), sv.data() + sv.size(), d);
    if (!sv.empty() && res.ec == std::errc() && res.ptr == sv.data() + sv.size()) return d;
  }
  return InvalidArgument("Invalid value for parameter '" + std::string(field) +
                         "': expected a number");
}

Result<std::optional<int64_t>> JsonInt64(simdjson::dom::element obj, std::string_view key) {
  simdjson::dom::element e;
  if (!Lookup(obj, key, e)) return std::optional<int64_t>();
  KEEL_ASSIGN_OR_RETURN(int64_t v, JsonElementInt64(e, key));
  return std::optional<int64_t>(v);
}

Result<std::optional<double>> JsonDouble(simdjson::dom::element obj, std::string_view key) {
  simdjson::dom::element e;
  if (!Lookup(obj, key, e)) return std::optional<double>();
  KEEL_ASSIGN_OR_RETURN(double v, JsonElementDouble(e, key));
  return std::optional<double>(v);
}

Result<std::optional<bool>> JsonBool(simdjson::dom::element obj, std::string_view key) {
  simdjson::dom::element e;
  if (!Lookup(obj, key, e)) return std::optional<bool>();
  bool b;
  if (!e.get_bool().get(b)) return std::optional<bool>(b);
  std::string_view sv;
  if (!e.get_string().get(sv)) {
    if (sv == "true" || sv == "True") return std::optional<bool>(true);
    if (sv == "false" || sv == "False") return std::optional<bool>(false);
  }
  return InvalidArgument("Invalid value for parameter '" + std::string(key) +
                         "': expected a boolean");
}

}  // namespace keel
