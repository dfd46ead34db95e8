// File: src/model/xgboost_doc.h (private to src/model)
//
// One small document tree for XGBoost's two model encodings, JSON text and
// UBJSON, so a single walker (xgboost_importer.cc) reads both:
//
//   KEEL_ASSIGN_OR_RETURN(DocValue doc, ParseUbjsonDoc(bytes));
//   const DocValue* learner = doc.Find("learner");
//
// Both parsers are bounded: nesting deeper than `max_depth` is refused, every
// read is checked against the end of the input, and no allocation is made on
// the strength of a declared size that the remaining input cannot back, so
// memory stays proportional to the input size.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keel/core/result.h"

namespace keel::model::internal {

inline constexpr int kMaxDocDepth = 64;

struct DocMember;

// A parsed value. Arrays whose elements are all numbers, booleans (as 1/0) or
// nulls (as NaN) are stored compactly as kNumbers; an empty array is kArray.
struct DocValue {
  enum class Kind : uint8_t { kNull, kBool, kNumber, kString, kArray, kNumbers, kObject };

  Kind kind = Kind::kNull;
  bool boolean = false;                                   // kBool
  double number = 0.0;                                    // kNumber
  std::string string;                                     // kString
  std::vector<DocValue> items;                            // kArray
  std::vector<double> numbers;                            // kNumbers
  std::vector<DocMember> members;                         // kObject, in input order

  // The first member named `key`; nullptr when absent or not an object.
  const DocValue* Find(std::string_view key) const;
  // "object", "array of numbers", ... for error messages.
  const char* KindName() const;
  bool is_array() const { return kind == Kind::kArray || kind == Kind::kNumbers; }
};

// One object member (a struct rather than std::pair, whose traits need the
// complete DocValue while DocValue is being defined).
struct DocMember {
  std::string first;  // key
  DocValue second;    // value
};

// Rounds to float32 as an IEEE conversion does (out-of-range values become
// infinities), without the undefined behaviour of a plain cast.
float RoundToFloat(double d);

// XGBoost's JSON dialect: RFC 8259 JSON plus the literals NaN, Infinity and
// -Infinity that XGBoost writes for non-finite floats. As in XGBoost, a number
// with a fraction or an exponent is read as float32 (then widened); one
// without is read as an integer. Errors name the line and column.
Result<DocValue> ParseXgboostJsonDoc(std::string_view text, int max_depth = kMaxDocDepth);

// UBJSON as XGBoost >= 1.6 writes it (big-endian; markers Z T F i U I l L d D
// C S [ ] { }, optimized containers with `$type#count` or `#count`). Errors
// name the byte offset.
Result<DocValue> ParseUbjsonDoc(std::string_view bytes, int max_depth = kMaxDocDepth);

}  // namespace keel::model::internal
