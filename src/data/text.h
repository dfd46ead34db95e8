// Text rules shared by the CSV reader, type inference and the feature
// pipeline, so that a value is read the same way at training and at serving
// time. Private to the data module.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace keel::data::internal {

// Strips ASCII spaces and tabs from both ends.
std::string_view TrimSpaces(std::string_view text);

inline constexpr double kExactPowersOf10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                              1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                              1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

// Correctly rounded double of mantissa / 10^fraction for any 64-bit
// mantissa and fraction <= 22, through one x87 extended-precision division: both
// operands are exact in its 64-bit significand, so the quotient is the true
// value rounded once to 64 bits. Rounding that again to 53 bits gives the
// true value's rounding unless the 64-bit quotient sits exactly on a 53-bit
// halfway point (its 11 low bits 10000000000): then false, and the caller
// takes the general path. Only where long double is the x87 format, with
// the x87 precision control at 64 bits (the Linux x86-64 default, which keel
// never changes): the conversion of mantissas of 2^63 and more then rounds
// nothing either.
inline bool DivideExtended(uint64_t mantissa, int fraction, double* value) {
#if (defined(__x86_64__) || defined(__i386__)) && __LDBL_MANT_DIG__ == 64
  static constexpr long double kPowers[] = {1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,
                                            1e8L,  1e9L,  1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L,
                                            1e16L, 1e17L, 1e18L, 1e19L, 1e20L, 1e21L, 1e22L};
  const long double q = static_cast<long double>(mantissa) / kPowers[fraction];
  uint64_t significand;
  static_assert(sizeof(long double) >= sizeof significand);
  std::memcpy(&significand, &q, sizeof significand);  // x87: the low 8 bytes
  if ((significand & 0x7ff) == 0x400) return false;
  *value = static_cast<double>(q);
  return true;
#else
  (void)mantissa;
  (void)fraction;
  (void)value;
  return false;
#endif
}

// Eight bytes at `p` as a little-endian word: byte i is p[i].
inline uint64_t LoadEightBytes(const char* p) {
  uint64_t word;
  std::memcpy(&word, p, sizeof word);
  if constexpr (std::endian::native == std::endian::big) word = __builtin_bswap64(word);
  return word;
}

// True when every byte of `word` is an ASCII digit: each byte's high nibble
// is 3, and adding 6 leaves it 3 (bytes 0x3A-0x3F become 0x4_). A carry out
// of a byte only happens for bytes >= 0xFA, whose own high nibble already
// fails the test.
inline bool EightDigits(uint64_t word) {
  constexpr uint64_t kHigh = 0xF0F0F0F0F0F0F0F0;
  return ((word & kHigh) | (((word + 0x0606060606060606) & kHigh) >> 4)) == 0x3333333333333333;
}

// The value of eight ASCII digits (byte 0 the most significant), combined
// pairwise in three multiplications: digit pairs in 16-bit lanes, then
// four-digit groups in 32-bit lanes, then the whole. No lane overflows
// (99, 9999, 99999999).
inline uint64_t EightDigitsValue(uint64_t word) {
  uint64_t v = word - 0x3030303030303030;
  v = (v * 10 + (v >> 8)) & 0x00FF00FF00FF00FF;
  v = (v * 100 + (v >> 16)) & 0x0000FFFF0000FFFF;
  return (v * 10000 + (v >> 32)) & 0xFFFFFFFF;
}

// Plain decimals ("-123.45", no blanks, no '+', no exponent): at most 19
// digits and at most 22 fraction digits. Up to 2^53 both the integer and the
// power of ten are exact doubles, so one IEEE division gives the correctly
// rounded result; above, DivideExtended does. Either way it is the double
// std::from_chars returns. False means "not handled here", not "not a number".
inline bool ParseSimpleDecimal(std::string_view text, double* value) {
  const char* p = text.data();
  const char* const end = p + text.size();
  bool negative = false;
  if (p < end && *p == '-') {
    negative = true;
    ++p;
  }
  uint64_t mantissa = 0;
  int digits = 0;
  int fraction = 0;
  while (p < end && static_cast<unsigned>(*p - '0') < 10) {
    mantissa = mantissa * 10 + static_cast<unsigned>(*p - '0');
    ++p;
    ++digits;
  }
  if (p < end && *p == '.') {
    ++p;
    // Eight fraction digits at a time while eight bytes remain (shortest
    // round-trip texts have 15-17); the rest one by one. A mantissa of more
    // than 19 digits wraps here as below, and is refused after the loop.
    while (end - p >= 8) {
      const uint64_t word = LoadEightBytes(p);
      if (!EightDigits(word)) break;
      mantissa = mantissa * 100000000 + EightDigitsValue(word);
      p += 8;
      digits += 8;
      fraction += 8;
    }
    while (p < end && static_cast<unsigned>(*p - '0') < 10) {
      mantissa = mantissa * 10 + static_cast<unsigned>(*p - '0');
      ++p;
      ++digits;
      ++fraction;
    }
  }
  if (p != end || digits == 0 || digits > 19 || fraction > 22) return false;
  double d;
  if (mantissa <= (uint64_t{1} << 53)) {
    d = static_cast<double>(mantissa);
    if (fraction > 0) d /= kExactPowersOf10[fraction];
  } else if (!DivideExtended(mantissa, fraction, &d)) {
    return false;
  }
  *value = negative ? -d : d;
  return true;
}

// The general case of ParseNumber (blanks, '+', exponents, inf/nan, long
// mantissas), via std::from_chars.
bool ParseNumberSlow(std::string_view text, double* value);

// Parses the whole of `text` (after TrimSpaces) as a decimal number: an
// optional '+' or '-', digits with an optional fraction and exponent, or
// inf/infinity (any case). "nan" parses to NaN. Hex and thousands separators
// are rejected. Returns false when the text is not entirely a number.
inline bool ParseNumber(std::string_view text, double* value) {
  return ParseSimpleDecimal(text, value) || ParseNumberSlow(text, value);
}

// "true"/"false", any case, after TrimSpaces: the only texts inference reads
// as booleans.
bool ParseStrictBool(std::string_view text, bool* value);
// ParseStrictBool plus "yes"/"no" and "1"/"0" (any case): what a column that
// is boolean by schema or by pipeline accepts.
bool ParseLooseBool(std::string_view text, bool* value);

// Matches missing-value markers (compared after TrimSpaces, case-sensitive).
// Cheap rejection by first byte and length before any comparison.
class MissingMatcher {
 public:
  MissingMatcher() = default;
  explicit MissingMatcher(const std::vector<std::string>& markers);

  bool Matches(std::string_view text) const {
    if (text.empty()) return empty_;
    const auto first = static_cast<unsigned char>(text[0]);
    const char last = text.back();
    // Fast rejection for the common case: no surrounding blanks and a first
    // byte no marker starts with (digits, usually).
    if (!first_[first] && first != ' ' && first != '\t' && last != ' ' && last != '\t') {
      return false;
    }
    text = TrimSpaces(text);
    if (text.empty()) return empty_;
    if (!first_[static_cast<unsigned char>(text[0])]) return false;
    for (const std::string& m : markers_) {
      if (m == text) return true;
    }
    return false;
  }

 private:
  std::vector<std::string> markers_;  // trimmed, non-empty
  std::array<bool, 256> first_{};
  bool empty_ = false;
};

}  // namespace keel::data::internal
