// Time zones (keel/core/timezone.h): TZif files (RFC 8536) and their POSIX
// TZ footer.
#include "keel/core/timezone.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <vector>

namespace keel {
namespace {

constexpr int64_t kSecond = 1000;
constexpr int64_t kDaySeconds = 86400;

// One side of a POSIX TZ rule: when DST starts or ends, in local time.
struct RuleDate {
  char kind = 'M';  // 'J' (Julian 1-365, no Feb 29), 'D' (0-365), 'M' (month.week.day)
  int n = 0;        // J, D
  int month = 0, week = 0, weekday = 0;
  int64_t time_s = 2 * 3600;  // local time of day (may be negative or past 24h)
};

struct PosixRule {
  int64_t std_offset_s = 0;  // local minus UTC
  bool has_dst = false;
  int64_t dst_offset_s = 0;
  RuleDate start, end;
};

int64_t DaysFromCivil(int y, unsigned m, unsigned d) {
  using namespace std::chrono;
  return sys_days{year{y} / month{m} / day{d}}.time_since_epoch().count();
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// The local second (since the epoch, in local time) a rule date gives in `year`.
int64_t LocalSeconds(const RuleDate& r, int year) {
  int64_t day = 0;
  if (r.kind == 'J') {
    // 1..365, February 29 never counted.
    int n = r.n;
    if (IsLeap(year) && n >= 60) ++n;
    day = DaysFromCivil(year, 1, 1) + n - 1;
  } else if (r.kind == 'D') {
    day = DaysFromCivil(year, 1, 1) + r.n;
  } else {
    using namespace std::chrono;
    const int64_t first = DaysFromCivil(year, static_cast<unsigned>(r.month), 1);
    const unsigned first_wd = weekday{sys_days{days{first}}}.c_encoding();
    int64_t d = first + (r.weekday - static_cast<int>(first_wd) + 7) % 7 + 7 * (r.week - 1);
    const int64_t month_end =
        r.month == 12 ? DaysFromCivil(year + 1, 1, 1) : DaysFromCivil(year, r.month + 1, 1);
    while (d >= month_end) d -= 7;  // week 5: the last such weekday
    day = d;
  }
  return day * kDaySeconds + r.time_s;
}

int YearOf(int64_t seconds) {
  using namespace std::chrono;
  const int64_t days =
      seconds >= 0 ? seconds / kDaySeconds : -((-seconds + kDaySeconds - 1) / kDaySeconds);
  return static_cast<int>(year_month_day{sys_days{std::chrono::days{days}}}.year());
}

// Parsers for the POSIX TZ string; each advances `s`.
class TzParser {
 public:
  explicit TzParser(std::string_view s) : s_(s) {}

  bool Name() {
    if (!s_.empty() && s_.front() == '<') {
      const size_t close = s_.find('>');
      if (close == std::string_view::npos) return false;
      s_.remove_prefix(close + 1);
      return true;
    }
    size_t n = 0;
    while (n < s_.size() && std::isalpha(static_cast<unsigned char>(s_[n])) != 0) ++n;
    if (n < 3) return false;
    s_.remove_prefix(n);
    return true;
  }
  // [+-]hh[:mm[:ss]] as seconds (sign as written).
  bool Time(int64_t* out) {
    int sign = 1;
    if (!s_.empty() && (s_.front() == '+' || s_.front() == '-')) {
      sign = s_.front() == '-' ? -1 : 1;
      s_.remove_prefix(1);
    }
    int64_t parts[3] = {0, 0, 0};
    for (int i = 0; i < 3; ++i) {
      if (i > 0) {
        if (s_.empty() || s_.front() != ':') break;
        s_.remove_prefix(1);
      }
      size_t n = 0;
      while (n < s_.size() && n < 3 && std::isdigit(static_cast<unsigned char>(s_[n])) != 0) ++n;
      if (n == 0) return false;
      parts[i] = std::atoi(std::string(s_.substr(0, n)).c_str());
      s_.remove_prefix(n);
    }
    *out = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
    return true;
  }
  bool Number(int* out) {
    size_t n = 0;
    while (n < s_.size() && std::isdigit(static_cast<unsigned char>(s_[n])) != 0) ++n;
    if (n == 0 || n > 3) return false;
    *out = std::atoi(std::string(s_.substr(0, n)).c_str());
    s_.remove_prefix(n);
    return true;
  }
  bool Date(RuleDate* r) {
    if (s_.empty()) return false;
    if (s_.front() == 'J') {
      s_.remove_prefix(1);
      r->kind = 'J';
      if (!Number(&r->n) || r->n < 1 || r->n > 365) return false;
    } else if (s_.front() == 'M') {
      s_.remove_prefix(1);
      r->kind = 'M';
      if (!Number(&r->month) || !Eat('.') || !Number(&r->week) || !Eat('.') ||
          !Number(&r->weekday)) {
        return false;
      }
      if (r->month < 1 || r->month > 12 || r->week < 1 || r->week > 5 || r->weekday > 6) {
        return false;
      }
    } else {
      r->kind = 'D';
      if (!Number(&r->n) || r->n > 365) return false;
    }
    if (Eat('/')) return Time(&r->time_s);
    return true;
  }
  bool Eat(char c) {
    if (s_.empty() || s_.front() != c) return false;
    s_.remove_prefix(1);
    return true;
  }
  bool Done() const { return s_.empty(); }

 private:
  std::string_view s_;
};

std::optional<PosixRule> ParsePosix(std::string_view text) {
  TzParser p(text);
  PosixRule r;
  int64_t posix_std = 0;
  if (!p.Name() || !p.Time(&posix_std)) return std::nullopt;
  r.std_offset_s = -posix_std;  // POSIX counts west of Greenwich as positive
  if (p.Done()) return r;
  if (!p.Name()) return std::nullopt;
  r.has_dst = true;
  r.dst_offset_s = r.std_offset_s + 3600;
  if (!p.Done() && text.find(',') != std::string_view::npos) {
    int64_t posix_dst = 0;
    TzParser probe = p;
    if (probe.Time(&posix_dst)) {
      p = probe;
      r.dst_offset_s = -posix_dst;
    }
  }
  if (!p.Eat(',') || !p.Date(&r.start) || !p.Eat(',') || !p.Date(&r.end) || !p.Done()) {
    return std::nullopt;
  }
  return r;
}

uint32_t Be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
int64_t Be64(const unsigned char* p) {
  return static_cast<int64_t>((uint64_t{Be32(p)} << 32) | Be32(p + 4));
}

// "+HH:MM" or "-HHMM" as minutes east of UTC (at most 14 hours).
std::optional<int> ParseFixed(std::string_view tz) {
  if (tz.size() != 6 && tz.size() != 5) return std::nullopt;
  if (tz[0] != '+' && tz[0] != '-') return std::nullopt;
  std::string digits;
  for (char c : tz.substr(1)) {
    if (c == ':') continue;
    if (std::isdigit(static_cast<unsigned char>(c)) == 0) return std::nullopt;
    digits += c;
  }
  if (digits.size() != 4 || (tz.size() == 6 && tz[3] != ':')) return std::nullopt;
  const int hours = (digits[0] - '0') * 10 + (digits[1] - '0');
  const int minutes = (digits[2] - '0') * 10 + (digits[3] - '0');
  if (hours > 14 || minutes > 59) return std::nullopt;
  return (tz[0] == '-' ? -1 : 1) * (hours * 60 + minutes);
}

}  // namespace

struct TimeZone::Data {
  std::string name = "UTC";
  bool fixed = true;
  int64_t fixed_offset_s = 0;
  std::vector<int64_t> times;       // transition instants (s), ascending
  std::vector<int64_t> offsets;     // offset (s) from each transition on
  int64_t before_offset_s = 0;      // before the first transition
  std::optional<PosixRule> footer;  // after the last transition

  int64_t RuleOffset(const PosixRule& r, int64_t t) const {
    if (!r.has_dst) return r.std_offset_s;
    const int y = YearOf(t + r.std_offset_s);
    const int64_t start = LocalSeconds(r.start, y) - r.std_offset_s;
    const int64_t end = LocalSeconds(r.end, y) - r.dst_offset_s;
    const bool dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    return dst ? r.dst_offset_s : r.std_offset_s;
  }

  int64_t OffsetSeconds(int64_t t) const {
    if (fixed) return fixed_offset_s;
    if (times.empty() || t >= times.back()) {
      if (footer) return RuleOffset(*footer, t);
      return times.empty() ? before_offset_s : offsets.back();
    }
    if (t < times.front()) return before_offset_s;
    const auto it = std::upper_bound(times.begin(), times.end(), t);
    return offsets[static_cast<size_t>(std::distance(times.begin(), it) - 1)];
  }
};

TimeZone::TimeZone() : d_(std::make_shared<Data>()) {}

TimeZone TimeZone::Fixed(int offset_minutes) {
  auto d = std::make_shared<Data>();
  d->fixed_offset_s = int64_t{offset_minutes} * 60;
  const int a = std::abs(offset_minutes);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%c%02d:%02d", offset_minutes < 0 ? '-' : '+', a / 60, a % 60);
  d->name = offset_minutes == 0 ? "UTC" : buf;
  return TimeZone(std::move(d));
}

Result<TimeZone> TimeZone::Load(std::string_view name) {
  if (name.empty() || name == "UTC" || name == "utc" || name == "Z" || name == "GMT") {
    return TimeZone();
  }
  if (name[0] == '+' || name[0] == '-') {
    const std::optional<int> minutes = ParseFixed(name);
    if (!minutes) {
      return InvalidArgument("time zone '" + std::string(name) +
                             "': a fixed offset is written +HH:MM or -HHMM (at most 14 hours)");
    }
    return Fixed(*minutes);
  }
  const bool safe = name.front() != '/' && name.find("..") == std::string_view::npos &&
                    std::all_of(name.begin(), name.end(), [](char c) {
                      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' ||
                             c == '-' || c == '+' || c == '/';
                    });
  if (!safe) {
    return InvalidArgument("time zone '" + std::string(name) +
                           "': expected UTC, a fixed offset such as +02:00, or a zone name such "
                           "as Europe/Paris");
  }
  const char* env = std::getenv("TZDIR");
  const std::string dir = env != nullptr && *env != '\0' ? env : "/usr/share/zoneinfo";
  const std::string path = dir + "/" + std::string(name);
  std::error_code ec;
  std::ifstream in;
  if (std::filesystem::is_regular_file(path, ec)) in.open(path, std::ios::binary);
  if (!in.is_open() || !in) {
    return NotFound("time zone '" + std::string(name) + "': no such zone in " + dir +
                    " (Debian's tzdata package)");
  }
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto bad = [&](const std::string& why) {
    return InvalidArgument("time zone '" + std::string(name) + "': " + path +
                           " is not a TZif file (" + why + ")");
  };
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t size = bytes.size();
  if (size < 44 || bytes.compare(0, 4, "TZif") != 0) return bad("no TZif header");
  struct Counts {
    uint32_t isut, isstd, leap, time, type, chars;
  };
  auto counts = [&](size_t at) {
    return Counts{Be32(p + at + 20), Be32(p + at + 24), Be32(p + at + 28),
                  Be32(p + at + 32), Be32(p + at + 36), Be32(p + at + 40)};
  };
  auto block_size = [](const Counts& c, size_t time_size) {
    return size_t{c.time} * time_size + c.time + size_t{c.type} * 6 + c.chars +
           size_t{c.leap} * (time_size + 4) + c.isstd + c.isut;
  };
  Counts c = counts(0);
  size_t at = 44;
  size_t time_size = 4;
  if (p[4] >= '2') {
    at += block_size(c, 4);
    if (size < at + 44 || bytes.compare(at, 4, "TZif") != 0) return bad("no second header");
    c = counts(at);
    at += 44;
    time_size = 8;
  }
  if (c.type == 0 || size < at + block_size(c, time_size)) return bad("truncated");
  if (c.leap > 0) {
    return InvalidArgument("time zone '" + std::string(name) +
                           "': leap-second zones (right/...) are not supported; use the zone "
                           "without the prefix");
  }
  auto d = std::make_shared<Data>();
  d->name = std::string(name);
  d->fixed = false;
  const unsigned char* times = p + at;
  const unsigned char* idx = times + size_t{c.time} * time_size;
  const unsigned char* types = idx + c.time;
  std::vector<int64_t> type_offset(c.type);
  for (uint32_t i = 0; i < c.type; ++i) {
    type_offset[i] = static_cast<int32_t>(Be32(types + 6 * size_t{i}));
  }
  for (uint32_t i = 0; i < c.time; ++i) {
    const int64_t t = time_size == 8 ? Be64(times + 8 * size_t{i})
                                     : static_cast<int32_t>(Be32(times + 4 * size_t{i}));
    if (idx[i] >= c.type) return bad("a transition names no type");
    if (!d->times.empty() && t <= d->times.back()) return bad("transitions out of order");
    d->times.push_back(t);
    d->offsets.push_back(type_offset[idx[i]]);
  }
  d->before_offset_s = type_offset[0];
  if (time_size == 8) {
    const size_t footer = at + block_size(c, 8);
    if (footer >= size || p[footer] != '\n') return bad("no footer");
    const size_t end = bytes.find('\n', footer + 1);
    if (end == std::string::npos) return bad("the footer does not end with a newline");
    if (end > footer + 1) {
      d->footer = ParsePosix(std::string_view(bytes).substr(footer + 1, end - footer - 1));
      if (!d->footer) return bad("its POSIX TZ rule does not parse");
    }
  }
  return TimeZone(std::move(d));
}

int64_t TimeZone::OffsetMs(int64_t utc_ms) const {
  // Years past +-30000 are clamped (the rules repeat; chrono's years end there).
  constexpr int64_t kLimitMs = 30000LL * 366 * kDaySeconds * kSecond;
  utc_ms = std::clamp(utc_ms, -kLimitMs, kLimitMs);
  const int64_t s = utc_ms >= 0 ? utc_ms / kSecond : -((-utc_ms + kSecond - 1) / kSecond);
  return d_->OffsetSeconds(s) * kSecond;
}

const std::string& TimeZone::name() const { return d_->name; }
bool TimeZone::fixed() const { return d_->fixed; }

}  // namespace keel
