#include "src/model/xgboost_doc.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "keel/core/status.h"

namespace keel::model::internal {
namespace {

using Kind = DocValue::Kind;

DocValue NumberValue(double d) {
  DocValue v;
  v.kind = Kind::kNumber;
  v.number = d;
  return v;
}

// Collects array elements, keeping all-numeric arrays compact. Booleans and
// nulls count as numbers (1/0 and NaN) but keep their kind should the array
// turn out to be mixed.
class ArrayCollector {
 public:
  void AddNumber(double d) {
    if (numeric_) {
      numbers_.push_back(d);
    } else {
      items_.push_back(NumberValue(d));
    }
  }

  void Add(DocValue&& v) {
    if (numeric_) {
      switch (v.kind) {
        case Kind::kNumber:
          numbers_.push_back(v.number);
          return;
        case Kind::kBool:
          specials_.push_back(numbers_.size());
          numbers_.push_back(v.boolean ? 1.0 : 0.0);
          return;
        case Kind::kNull:
          specials_.push_back(numbers_.size());
          numbers_.push_back(std::numeric_limits<double>::quiet_NaN());
          return;
        default:
          ToItems();
      }
    }
    items_.push_back(std::move(v));
  }

  DocValue Finish() && {
    DocValue out;
    if (numeric_ && !numbers_.empty()) {
      out.kind = Kind::kNumbers;
      out.numbers = std::move(numbers_);
    } else {
      out.kind = Kind::kArray;
      out.items = std::move(items_);
    }
    return out;
  }

 private:
  void ToItems() {
    numeric_ = false;
    items_.reserve(numbers_.size() + 1);
    for (double d : numbers_) items_.push_back(NumberValue(d));
    for (size_t i : specials_) {
      DocValue& v = items_[i];
      if (std::isnan(v.number)) {
        v.kind = Kind::kNull;
      } else {
        v.kind = Kind::kBool;
        v.boolean = v.number == 1.0;
      }
      v.number = 0.0;
    }
    numbers_ = {};
    specials_ = {};
  }

  bool numeric_ = true;
  std::vector<double> numbers_;
  std::vector<size_t> specials_;  // indices of booleans and nulls in numbers_
  std::vector<DocValue> items_;
};

// ---------------------------------------------------------------------------
// JSON text.

class JsonParser {
 public:
  JsonParser(std::string_view s, int max_depth) : s_(s), max_depth_(max_depth) {}

  Result<DocValue> Parse() {
    DocValue v;
    KEEL_RETURN_IF_ERROR(ParseValue(&v, 0));
    SkipSpace();
    if (pos_ != s_.size()) return Error("unexpected data after the end of the document");
    return v;
  }

 private:
  Status Error(std::string_view what) const {
    size_t line = 1;
    size_t column = 1;
    const size_t end = std::min(pos_, s_.size());
    for (size_t i = 0; i < end; ++i) {
      if (s_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return InvalidArgument("line " + std::to_string(line) + ", column " + std::to_string(column) +
                           ": " + std::string(what));
  }

  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool Consume(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Status ParseValue(DocValue* out, int depth) {
    SkipSpace();
    if (pos_ >= s_.size()) return Error("unexpected end of input, expected a value");
    const char c = s_[pos_];
    switch (c) {
      case '{':
      case '[':
        if (depth >= max_depth_) {
          return Error("nesting deeper than " + std::to_string(max_depth_) + " levels");
        }
        return c == '{' ? ParseObject(out, depth + 1) : ParseArray(out, depth + 1);
      case '"':
        out->kind = Kind::kString;
        return ParseString(&out->string);
      case 't':
      case 'f':
        if (Consume("true") || Consume("false")) {
          out->kind = Kind::kBool;
          out->boolean = c == 't';
          return OkStatus();
        }
        break;
      case 'n':
        if (Consume("null")) {
          out->kind = Kind::kNull;
          return OkStatus();
        }
        break;
      case 'N':
        if (Consume("NaN")) {
          *out = NumberValue(std::numeric_limits<double>::quiet_NaN());
          return OkStatus();
        }
        break;
      case 'I':
        if (Consume("Infinity")) {
          *out = NumberValue(std::numeric_limits<double>::infinity());
          return OkStatus();
        }
        break;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) {
          out->kind = Kind::kNumber;
          return ParseNumber(&out->number);
        }
    }
    return Error(std::string("unexpected character '") + c + "', expected a value");
  }

  Status ParseObject(DocValue* out, int depth) {
    ++pos_;  // '{'
    out->kind = Kind::kObject;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return OkStatus();
    }
    while (true) {
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected a string key");
      DocMember member;
      KEEL_RETURN_IF_ERROR(ParseString(&member.first));
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Error("expected ':' after an object key");
      ++pos_;
      KEEL_RETURN_IF_ERROR(ParseValue(&member.second, depth));
      out->members.push_back(std::move(member));
      SkipSpace();
      if (pos_ >= s_.size()) return Error("unexpected end of input inside an object");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        return OkStatus();
      }
      return Error("expected ',' or '}' in an object");
    }
  }

  Status ParseArray(DocValue* out, int depth) {
    ++pos_;  // '['
    ArrayCollector items;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      *out = std::move(items).Finish();
      return OkStatus();
    }
    while (true) {
      SkipSpace();
      if (pos_ < s_.size() && (s_[pos_] == '-' || (s_[pos_] >= '0' && s_[pos_] <= '9'))) {
        double d = 0.0;
        KEEL_RETURN_IF_ERROR(ParseNumber(&d));
        items.AddNumber(d);
      } else {
        DocValue v;
        KEEL_RETURN_IF_ERROR(ParseValue(&v, depth));
        items.Add(std::move(v));
      }
      SkipSpace();
      if (pos_ >= s_.size()) return Error("unexpected end of input inside an array");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        *out = std::move(items).Finish();
        return OkStatus();
      }
      return Error("expected ',' or ']' in an array");
    }
  }

  static int HexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  Status ReadHex4(uint32_t* out) {
    if (s_.size() - pos_ < 4) return Error("unexpected end of input in a \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int d = HexDigit(s_[pos_ + static_cast<size_t>(i)]);
      if (d < 0) return Error("invalid \\u escape");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    pos_ += 4;
    *out = v;
    return OkStatus();
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  Status ParseString(std::string* out) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= s_.size()) return Error("unexpected end of input inside a string");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return OkStatus();
      }
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character inside a string");
      if (c != '\\') {
        size_t end = pos_ + 1;
        while (end < s_.size() && s_[end] != '"' && s_[end] != '\\' &&
               static_cast<unsigned char>(s_[end]) >= 0x20) {
          ++end;
        }
        out->append(s_.data() + pos_, end - pos_);
        pos_ = end;
        continue;
      }
      if (++pos_ >= s_.size()) return Error("unexpected end of input in an escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp = 0;
          KEEL_RETURN_IF_ERROR(ReadHex4(&cp));
          if (cp >= 0xDC00 && cp <= 0xDFFF) return Error("unpaired low surrogate in a \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low = 0;
            if (!Consume("\\u")) return Error("unpaired high surrogate in a \\u escape");
            KEEL_RETURN_IF_ERROR(ReadHex4(&low));
            if (low < 0xDC00 || low > 0xDFFF) return Error("invalid surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return Error(std::string("invalid escape '\\") + e + "'");
      }
    }
  }

  bool Digit() const { return pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; }

  Status ParseNumber(double* out) {
    const size_t start = pos_;
    if (s_[pos_] == '-') {
      ++pos_;
      if (Consume("Infinity")) {
        *out = -std::numeric_limits<double>::infinity();
        return OkStatus();
      }
    }
    if (!Digit()) return Error("invalid number");
    if (s_[pos_] == '0') {
      ++pos_;
    } else {
      while (Digit()) ++pos_;
    }
    bool is_float = false;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!Digit()) return Error("invalid number: no digits after '.'");
      while (Digit()) ++pos_;
      is_float = true;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!Digit()) return Error("invalid number: no digits in the exponent");
      while (Digit()) ++pos_;
      is_float = true;
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    if (!is_float) {
      int64_t i = 0;
      auto [p, ec] = std::from_chars(first, last, i);
      if (ec == std::errc() && p == last) {
        *out = static_cast<double>(i);
        return OkStatus();
      }
      // Too large for int64: read as a floating-point value below.
    }
    float f = 0.0f;
    auto [p, ec] = std::from_chars(first, last, f);
    if (ec == std::errc() && p == last) {
      *out = f;
      return OkStatus();
    }
    double d = 0.0;
    auto [pd, ecd] = std::from_chars(first, last, d);
    if (ecd == std::errc() && pd == last) {
      *out = is_float ? static_cast<double>(RoundToFloat(d)) : d;
      return OkStatus();
    }
    pos_ = start;
    return Error("number out of range");
  }

  std::string_view s_;
  size_t pos_ = 0;
  int max_depth_;
};

// ---------------------------------------------------------------------------
// UBJSON.

class UbjsonParser {
 public:
  UbjsonParser(std::string_view s, int max_depth) : s_(s), max_depth_(max_depth) {}

  Result<DocValue> Parse() {
    DocValue v;
    char marker = 0;
    KEEL_RETURN_IF_ERROR(ReadMarker(&marker));
    KEEL_RETURN_IF_ERROR(ParseValue(marker, &v, 0));
    if (pos_ != s_.size()) return Error("unexpected data after the end of the document");
    return v;
  }

 private:
  Status Error(std::string_view what) const { return ErrorAt(pos_, what); }
  static Status ErrorAt(size_t at, std::string_view what) {
    return InvalidArgument("byte " + std::to_string(at) + ": " + std::string(what));
  }

  size_t remaining() const { return s_.size() - pos_; }

  Status ReadMarker(char* c) {
    if (pos_ >= s_.size()) return Error("unexpected end of input, expected a type marker");
    *c = s_[pos_++];
    return OkStatus();
  }

  // Size in bytes of a fixed-size scalar payload; 0 for anything else.
  static size_t ScalarSize(char m) {
    switch (m) {
      case 'i':
      case 'U':
      case 'C':
        return 1;
      case 'I':
        return 2;
      case 'l':
      case 'd':
        return 4;
      case 'L':
      case 'D':
        return 8;
      default:
        return 0;
    }
  }

  uint64_t BigEndian(size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(s_[pos_ + i]);
    pos_ += n;
    return v;
  }

  // Reads the payload of an integer marker (its size already checked).
  int64_t ReadIntegerPayload(char m) {
    switch (m) {
      case 'i':
        return static_cast<int8_t>(BigEndian(1));
      case 'U':
        return static_cast<int64_t>(BigEndian(1));
      case 'I':
        return static_cast<int16_t>(BigEndian(2));
      case 'l':
        return static_cast<int32_t>(BigEndian(4));
      default:  // 'L'
        return static_cast<int64_t>(BigEndian(8));
    }
  }

  // Reads the payload of a numeric marker (its size already checked).
  double ReadNumberPayload(char m) {
    switch (m) {
      case 'i':
      case 'U':
      case 'I':
      case 'l':
      case 'L':
        return static_cast<double>(ReadIntegerPayload(m));
      case 'd': {
        const uint32_t bits = static_cast<uint32_t>(BigEndian(4));
        float f;
        std::memcpy(&f, &bits, sizeof f);
        return f;
      }
      default: {  // 'D'
        const uint64_t bits = BigEndian(8);
        double d;
        std::memcpy(&d, &bits, sizeof d);
        return d;
      }
    }
  }

  static bool IsInteger(char m) { return m == 'i' || m == 'U' || m == 'I' || m == 'l' || m == 'L'; }

  // A non-negative integer (a length or a count): a marker, then its payload.
  Status ReadLength(int64_t* n) {
    char m = 0;
    KEEL_RETURN_IF_ERROR(ReadMarker(&m));
    if (!IsInteger(m))
      return Error(std::string("expected an integer length, found marker '") + m + "'");
    if (remaining() < ScalarSize(m)) return Error("unexpected end of input in a length");
    const int64_t v = ReadIntegerPayload(m);
    if (v < 0) return Error("negative length " + std::to_string(v));
    *n = v;
    return OkStatus();
  }

  Status ReadStringBody(std::string* out) {
    int64_t n = 0;
    KEEL_RETURN_IF_ERROR(ReadLength(&n));
    if (static_cast<uint64_t>(n) > remaining()) {
      return Error("string of " + std::to_string(n) + " bytes but only " +
                   std::to_string(remaining()) + " remain");
    }
    out->assign(s_.data() + pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return OkStatus();
  }

  // A value whose marker `m` was already read (or given by a typed container).
  Status ParseValue(char m, DocValue* out, int depth) {
    switch (m) {
      case 'Z':
        out->kind = Kind::kNull;
        return OkStatus();
      case 'T':
      case 'F':
        out->kind = Kind::kBool;
        out->boolean = m == 'T';
        return OkStatus();
      case 'i':
      case 'U':
      case 'I':
      case 'l':
      case 'L':
      case 'd':
      case 'D':
        if (remaining() < ScalarSize(m)) {
          return Error(std::string("unexpected end of input in a number of type '") + m + "'");
        }
        *out = NumberValue(ReadNumberPayload(m));
        return OkStatus();
      case 'C':
        if (remaining() < 1) return Error("unexpected end of input in a char");
        out->kind = Kind::kString;
        out->string.assign(1, s_[pos_++]);
        return OkStatus();
      case 'S':
        out->kind = Kind::kString;
        return ReadStringBody(&out->string);
      case '[':
      case '{':
        if (depth >= max_depth_) {
          return ErrorAt(pos_ - 1, "nesting deeper than " + std::to_string(max_depth_) + " levels");
        }
        return ParseContainer(m == '{', out, depth + 1);
      default:
        return Error(std::string("unsupported or invalid type marker 0x") +
                     "0123456789abcdef"[(static_cast<unsigned char>(m) >> 4) & 0xF] +
                     "0123456789abcdef"[static_cast<unsigned char>(m) & 0xF]);
    }
  }

  Status ParseContainer(bool object, DocValue* out, int depth) {
    char type = 0;
    int64_t count = -1;
    if (pos_ < s_.size() && s_[pos_] == '$') {
      ++pos_;
      KEEL_RETURN_IF_ERROR(ReadMarker(&type));
      if (std::string_view("ZTFiUIlLdDCS[{").find(type) == std::string_view::npos) {
        return Error(std::string("unsupported element type '") + type + "' in a typed container");
      }
      if (pos_ >= s_.size() || s_[pos_] != '#') return Error("typed container without a count");
    }
    if (pos_ < s_.size() && s_[pos_] == '#') {
      ++pos_;
      KEEL_RETURN_IF_ERROR(ReadLength(&count));
      // A count above the remaining bytes (divided by the payload size of
      // typed numbers) cannot be real; check before anything is allocated.
      // Payload-free element types (Z, T, F) still need a byte each here,
      // which keeps memory proportional to the input.
      const size_t min_size = std::max<size_t>(1, ScalarSize(type));
      if (static_cast<uint64_t>(count) > remaining() / min_size) {
        return Error("container declares " + std::to_string(count) + " elements but only " +
                     std::to_string(remaining()) + " bytes remain");
      }
    }
    return object ? ParseObjectBody(type, count, out, depth)
                  : ParseArrayBody(type, count, out, depth);
  }

  Status ParseArrayBody(char type, int64_t count, DocValue* out, int depth) {
    if (ScalarSize(type) != 0 && type != 'C') {
      // Typed numeric array: the count was checked against the bytes left.
      const size_t n = static_cast<size_t>(count);
      out->kind = n == 0 ? Kind::kArray : Kind::kNumbers;
      out->numbers.reserve(n);
      for (size_t i = 0; i < n; ++i) out->numbers.push_back(ReadNumberPayload(type));
      return OkStatus();
    }
    ArrayCollector items;
    for (int64_t i = 0; count < 0 || i < count; ++i) {
      char m = type;
      if (type == 0) {
        KEEL_RETURN_IF_ERROR(ReadMarker(&m));
        if (count < 0 && m == ']') break;
      }
      if (const size_t size = ScalarSize(m); size != 0 && m != 'C') {
        if (remaining() < size) {
          return Error(std::string("unexpected end of input in a number of type '") + m + "'");
        }
        items.AddNumber(ReadNumberPayload(m));
        continue;
      }
      DocValue v;
      KEEL_RETURN_IF_ERROR(ParseValue(m, &v, depth));
      items.Add(std::move(v));
    }
    *out = std::move(items).Finish();
    return OkStatus();
  }

  Status ParseObjectBody(char type, int64_t count, DocValue* out, int depth) {
    out->kind = Kind::kObject;
    for (int64_t i = 0; count < 0 || i < count; ++i) {
      if (count < 0) {
        if (pos_ >= s_.size()) return Error("unexpected end of input inside an object");
        if (s_[pos_] == '}') {
          ++pos_;
          break;
        }
      }
      DocMember member;
      KEEL_RETURN_IF_ERROR(ReadStringBody(&member.first));
      char m = type;
      if (type == 0) KEEL_RETURN_IF_ERROR(ReadMarker(&m));
      KEEL_RETURN_IF_ERROR(ParseValue(m, &member.second, depth));
      out->members.push_back(std::move(member));
    }
    return OkStatus();
  }

  std::string_view s_;
  size_t pos_ = 0;
  int max_depth_;
};

}  // namespace

float RoundToFloat(double d) {
  // The midpoint between FLT_MAX and the next power of two rounds to infinity.
  constexpr double kOverflow = 0x1.ffffffp+127;
  if (d >= kOverflow) return std::numeric_limits<float>::infinity();
  if (d <= -kOverflow) return -std::numeric_limits<float>::infinity();
  return static_cast<float>(d);
}

const DocValue* DocValue::Find(std::string_view key) const {
  if (kind != Kind::kObject) return nullptr;
  for (const auto& [k, v] : members) {
    if (k == key) return &v;
  }
  return nullptr;
}

const char* DocValue::KindName() const {
  switch (kind) {
    case Kind::kNull:
      return "null";
    case Kind::kBool:
      return "a boolean";
    case Kind::kNumber:
      return "a number";
    case Kind::kString:
      return "a string";
    case Kind::kArray:
      return "an array";
    case Kind::kNumbers:
      return "an array of numbers";
    case Kind::kObject:
      return "an object";
  }
  return "?";
}

Result<DocValue> ParseXgboostJsonDoc(std::string_view text, int max_depth) {
  return JsonParser(text, max_depth).Parse();
}

Result<DocValue> ParseUbjsonDoc(std::string_view bytes, int max_depth) {
  return UbjsonParser(bytes, max_depth).Parse();
}

}  // namespace keel::model::internal
