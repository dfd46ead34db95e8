#include "src/data/text.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <system_error>

namespace keel::data::internal {

std::string_view TrimSpaces(std::string_view text) {
  size_t b = 0;
  size_t e = text.size();
  while (b < e && (text[b] == ' ' || text[b] == '\t')) ++b;
  while (e > b && (text[e - 1] == ' ' || text[e - 1] == '\t')) --e;
  return text.substr(b, e - b);
}

bool ParseNumberSlow(std::string_view text, double* value) {
  const char* p = text.data();
  const char* end = p + text.size();
  // Fast path: no surrounding blanks (the common case).
  if (p == end) return false;
  if (*p == ' ' || *p == '\t' || end[-1] == ' ' || end[-1] == '\t') {
    text = TrimSpaces(text);
    p = text.data();
    end = p + text.size();
    if (p == end) return false;
  }
  if (*p == '+') {
    ++p;
    // from_chars takes no sign of its own after ours.
    if (p == end || *p == '-' || *p == '+') return false;
  }
  auto [ptr, ec] = std::from_chars(p, end, *value, std::chars_format::general);
  if (ptr != end) return false;
  if (ec == std::errc::result_out_of_range) {
    // Overflow or underflow: strtod gives +-HUGE_VAL or the denormal/zero.
    std::string copy(p, end);
    *value = std::strtod(copy.c_str(), nullptr);
    return true;
  }
  return ec == std::errc();
}

namespace {

bool EqualsIgnoreCase(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

}  // namespace

bool ParseStrictBool(std::string_view text, bool* value) {
  text = TrimSpaces(text);
  if (EqualsIgnoreCase(text, "true")) {
    *value = true;
    return true;
  }
  if (EqualsIgnoreCase(text, "false")) {
    *value = false;
    return true;
  }
  return false;
}

bool ParseLooseBool(std::string_view text, bool* value) {
  if (ParseStrictBool(text, value)) return true;
  text = TrimSpaces(text);
  if (EqualsIgnoreCase(text, "yes") || text == "1") {
    *value = true;
    return true;
  }
  if (EqualsIgnoreCase(text, "no") || text == "0") {
    *value = false;
    return true;
  }
  return false;
}

MissingMatcher::MissingMatcher(const std::vector<std::string>& markers) {
  for (const std::string& m : markers) {
    std::string_view t = TrimSpaces(m);
    if (t.empty()) {
      empty_ = true;
      continue;
    }
    markers_.emplace_back(t);
    first_[static_cast<unsigned char>(t[0])] = true;
  }
}

}  // namespace keel::data::internal
