#include "keel/retrain/cron.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <vector>

namespace keel::retrain {
namespace {

constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kDayMs = 86'400'000;

struct FieldSpec {
  const char* name;
  int min;
  int max;
  const char* const* names;  // names[i] is value min + i, or nullptr
};

constexpr const char* kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr const char* kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

constexpr FieldSpec kFields[] = {
    {"minute", 0, 59, nullptr},       {"hour", 0, 23, nullptr},
    {"day of month", 1, 31, nullptr}, {"month", 1, 12, kMonthNames},
    {"day of week", 0, 7, kDayNames},
};

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t at = text.find(sep, start);
    out.push_back(text.substr(start, at == std::string_view::npos ? text.npos : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Sets the bits of one field (values min..max; day of week 7 is folded to 0
// by the caller).
Status ParseField(std::string_view text, const FieldSpec& spec, const std::string& expression,
                  std::vector<bool>* bits) {
  auto fail = [&](const std::string& why) {
    return InvalidArgument("cron field '" + std::string(spec.name) + "': " + why + " in '" +
                           expression + "'");
  };
  auto value = [&](std::string_view s, int* out) -> Status {
    if (s.empty()) return fail("an empty value");
    if (spec.names != nullptr && std::isalpha(static_cast<unsigned char>(s[0])) != 0) {
      const std::string l = Lower(s);
      const int count = spec.max - spec.min + 1 - (spec.max == 7 ? 1 : 0);
      for (int i = 0; i < count; ++i) {
        if (l == spec.names[i]) {
          *out = spec.min + i;
          return OkStatus();
        }
      }
      return fail("'" + std::string(s) + "' is not a name");
    }
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    if (ec != std::errc() || p != s.data() + s.size()) {
      return fail("'" + std::string(s) + "' is not a number");
    }
    if (*out < spec.min || *out > spec.max) {
      return fail(std::string(s) + " is out of range " + std::to_string(spec.min) + "-" +
                  std::to_string(spec.max));
    }
    return OkStatus();
  };
  for (std::string_view item : Split(text, ',')) {
    if (item.empty()) return fail("an empty list item");
    int step = 1;
    const size_t slash = item.find('/');
    std::string_view range = item;
    bool stepped = false;
    if (slash != std::string_view::npos) {
      std::string_view step_text = item.substr(slash + 1);
      const auto [p, ec] =
          std::from_chars(step_text.data(), step_text.data() + step_text.size(), step);
      if (ec != std::errc() || p != step_text.data() + step_text.size() || step < 1) {
        return fail("step '" + std::string(step_text) + "' is not a positive number");
      }
      range = item.substr(0, slash);
      stepped = true;
    }
    int lo = spec.min, hi = spec.max;
    if (range == "*") {
      if (spec.max == 7) hi = 6;  // day of week: 0-6 (7 is 0 again)
    } else {
      const size_t dash = range.find('-');
      if (dash == std::string_view::npos) {
        KEEL_RETURN_IF_ERROR(value(range, &lo));
        hi = stepped ? (spec.max == 7 ? 6 : spec.max) : lo;
      } else {
        KEEL_RETURN_IF_ERROR(value(range.substr(0, dash), &lo));
        KEEL_RETURN_IF_ERROR(value(range.substr(dash + 1), &hi));
        if (hi < lo) {
          return fail("range " + std::string(range) + " runs backwards");
        }
      }
    }
    for (int v = lo; v <= hi; v += step) {
      (*bits)[static_cast<size_t>(v)] = true;
      if (step > hi - v) break;  // the next step would pass the field's end (or overflow)
    }
  }
  return OkStatus();
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

Result<CronSchedule> CronSchedule::Parse(std::string_view expression, std::string_view timezone) {
  CronSchedule s;
  KEEL_ASSIGN_OR_RETURN(s.zone_, TimeZone::Load(timezone));
  std::string text(expression);
  // Trim.
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0)
    text.pop_back();
  size_t b = 0;
  while (b < text.size() && std::isspace(static_cast<unsigned char>(text[b])) != 0) ++b;
  text = text.substr(b);
  s.expression_ = text;
  const std::string lower = Lower(text);
  if (!lower.empty() && lower[0] == '@') {
    if (lower == "@yearly" || lower == "@annually") {
      text = "0 0 1 1 *";
    } else if (lower == "@monthly") {
      text = "0 0 1 * *";
    } else if (lower == "@weekly") {
      text = "0 0 * * 0";
    } else if (lower == "@daily" || lower == "@midnight") {
      text = "0 0 * * *";
    } else if (lower == "@hourly") {
      text = "0 * * * *";
    } else {
      return InvalidArgument("cron shorthand '" + s.expression_ +
                             "' is not one of @yearly, @annually, @monthly, @weekly, @daily, "
                             "@midnight, @hourly");
    }
  }
  std::vector<std::string_view> fields;
  {
    std::string_view rest = text;
    while (!rest.empty()) {
      const size_t start = rest.find_first_not_of(" \t");
      if (start == std::string_view::npos) break;
      rest = rest.substr(start);
      const size_t end = rest.find_first_of(" \t");
      fields.push_back(rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    }
  }
  if (fields.size() != 5) {
    return InvalidArgument("cron expression '" + s.expression_ + "' has " +
                           std::to_string(fields.size()) +
                           " fields; expected 5: minute hour day-of-month month day-of-week");
  }
  std::vector<bool> bits[5];
  for (int f = 0; f < 5; ++f) {
    bits[f].assign(static_cast<size_t>(kFields[f].max) + 1, false);
    KEEL_RETURN_IF_ERROR(
        ParseField(fields[static_cast<size_t>(f)], kFields[f], s.expression_, &bits[f]));
  }
  for (int v = 0; v < 60; ++v) s.minutes_[static_cast<size_t>(v)] = bits[0][static_cast<size_t>(v)];
  for (int v = 0; v < 24; ++v) s.hours_[static_cast<size_t>(v)] = bits[1][static_cast<size_t>(v)];
  for (int v = 1; v <= 31; ++v)
    s.days_of_month_[static_cast<size_t>(v)] = bits[2][static_cast<size_t>(v)];
  for (int v = 1; v <= 12; ++v) s.months_[static_cast<size_t>(v)] = bits[3][static_cast<size_t>(v)];
  for (int v = 0; v <= 7; ++v) {
    if (bits[4][static_cast<size_t>(v)]) s.days_of_week_[static_cast<size_t>(v % 7)] = true;
  }
  s.dom_restricted_ = fields[2][0] != '*';
  s.dow_restricted_ = fields[4][0] != '*';
  return s;
}

bool CronSchedule::DayMatches(int64_t days) const {
  using namespace std::chrono;
  const year_month_day ymd{sys_days{std::chrono::days{days}}};
  if (!months_[static_cast<unsigned>(ymd.month())]) return false;
  const bool dom = days_of_month_[static_cast<unsigned>(ymd.day())];
  const bool dow = days_of_week_[weekday{sys_days{std::chrono::days{days}}}.c_encoding()];
  if (dom_restricted_ && dow_restricted_) return dom || dow;
  return dom && dow;
}

bool CronSchedule::MinuteMatches(int64_t m) const {
  return hours_[static_cast<size_t>(m / 60)] && minutes_[static_cast<size_t>(m % 60)];
}

bool CronSchedule::Matches(int64_t time_ms) const {
  const int64_t local = time_ms + zone_.OffsetMs(time_ms);
  const int64_t days = FloorDiv(local, kDayMs);
  const int64_t minute_of_day = (local - days * kDayMs) / kMinuteMs;
  return DayMatches(days) && MinuteMatches(minute_of_day);
}

std::optional<int64_t> CronSchedule::FireTime(int64_t local, int64_t after_ms) const {
  if (zone_.fixed()) {
    const int64_t u = local - zone_.OffsetMs(0);
    return u > after_ms ? std::optional<int64_t>(u) : std::nullopt;
  }
  // The offsets on either side of any change near this wall-clock time
  // (offsets stay within +-14 h, changes are months apart).
  constexpr int64_t kProbe = 18 * 3'600'000LL;
  const int64_t before = zone_.OffsetMs(local - kProbe);
  const int64_t later = zone_.OffsetMs(local + kProbe);
  // The earliest instant showing this wall-clock time; in a repeated hour
  // only that first occurrence fires.
  std::optional<int64_t> first;
  for (int64_t o : {before, later}) {
    const int64_t u = local - o;
    if (u + zone_.OffsetMs(u) == local && (!first || u < *first)) first = u;
  }
  if (first) return *first > after_ms ? first : std::nullopt;
  if (later <= before) return std::nullopt;  // no gap here
  // In the gap a change to a larger offset skips over: fire when it ends,
  // at the change itself (the first instant with the later offset).
  int64_t lo = local - later;   // still the earlier offset
  int64_t hi = local - before;  // already the later one
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (zone_.OffsetMs(mid) == later ? hi : lo) = mid;
  }
  return hi > after_ms ? std::optional<int64_t>(hi) : std::nullopt;
}

int64_t CronSchedule::NextAfter(int64_t after_ms) const {
  // The next whole wall-clock minute after `after_ms`.
  const int64_t local = (FloorDiv(after_ms + zone_.OffsetMs(after_ms), kMinuteMs) + 1) * kMinuteMs;
  int64_t day = FloorDiv(local, kDayMs);
  int64_t first_minute = (local - day * kDayMs) / kMinuteMs;
  for (int scanned = 0; scanned < 366 * 8 + 2; ++scanned, ++day, first_minute = 0) {
    if (!DayMatches(day)) continue;
    for (int64_t m = first_minute; m < 24 * 60; ++m) {
      if (!MinuteMatches(m)) continue;
      if (const std::optional<int64_t> fire = FireTime(day * kDayMs + m * kMinuteMs, after_ms)) {
        return *fire;
      }
    }
  }
  return -1;
}

}  // namespace keel::retrain
