// File: keel/core/json.h
//
// Fast JSON output (JsonWriter) and MLflow-convention readers over simdjson.
//
//   keel::JsonWriter w;
//   w.BeginObject(); w.Key("run_id"); w.String(id); w.EndObject();
//   std::string body = std::move(w).Take();
//
//   KEEL_ASSIGN_OR_RETURN(auto doc, keel::ParseJsonObject(body));   // JsonDoc
//   auto name = keel::JsonString(doc.root(), "name");                // optional
//
// Conventions (MLflow REST): int64 accepted as number or decimal string; doubles
// accepted as numbers or the strings "NaN", "Infinity", "-Infinity", and
// written back the same way.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "keel/core/result.h"

namespace keel {

class JsonWriter {
 public:
  explicit JsonWriter(size_t reserve = 256) { out_.reserve(reserve); }
  void BeginObject();
  void EndObject();
  void BeginArray();
  void EndArray();
  void Key(std::string_view key);
  void String(std::string_view value);
  void Int(int64_t value);
  void Double(double value);  // NaN/Inf as MLflow strings
  void Bool(bool value);
  void Null();
  // Inserts already-serialised JSON verbatim.
  void Raw(std::string_view json);
  const std::string& str() const { return out_; }
  std::string Take() && { return std::move(out_); }

 private:
  void Separate();
  std::string out_;
  bool need_comma_ = false;
};

// Appends `value` JSON-escaped (without quotes).
void AppendJsonEscaped(std::string& out, std::string_view value);
// Appends `value` as its shortest round-trip decimal text; NaN and infinities
// as null (JSON has no such numbers).
void AppendJsonFloat(std::string& out, float value);
// One row of model outputs as keel answers and logs it: a number when k is 1,
// else an array of k numbers (AppendJsonFloat each).
void AppendJsonFloats(std::string& out, const float* values, size_t k);
// Shortest round-trip decimal text for a finite double.
std::string FormatDouble(double value);
// True when `text` is a JSON number token by RFC 8259's grammar (no leading
// zeros, no "1." or ".5", no NaN/Infinity).
bool IsJsonNumber(std::string_view text);

// A parsed document; keeps its parser alive.
class JsonDoc {
 public:
  simdjson::dom::element root() const { return root_; }

 private:
  friend Result<JsonDoc> ParseJson(std::string_view text);
  std::shared_ptr<simdjson::dom::parser> parser_;
  simdjson::dom::element root_;
};

Result<JsonDoc> ParseJson(std::string_view text);
// As ParseJson, and the root must be an object.
Result<JsonDoc> ParseJsonObject(std::string_view text);

// Field readers: absent or JSON null -> nullopt; wrong type -> InvalidArgument
// naming the field.
Result<std::optional<std::string>> JsonString(simdjson::dom::element obj, std::string_view key);
Result<std::optional<int64_t>> JsonInt64(simdjson::dom::element obj, std::string_view key);
Result<std::optional<double>> JsonDouble(simdjson::dom::element obj, std::string_view key);
Result<std::optional<bool>> JsonBool(simdjson::dom::element obj, std::string_view key);

// Reads a double in MLflow conventions from an element.
Result<double> JsonElementDouble(simdjson::dom::element e, std::string_view field);
Result<int64_t> JsonElementInt64(simdjson::dom::element e, std::string_view field);

}  // namespace keel
