// File: keel/retrain/cron.h
//
// Cron schedules for retraining policies: the five fields of crontab(5), in
// UTC, at a fixed offset, or in a named zone with daylight saving time.
//
//   KEEL_ASSIGN_OR_RETURN(keel::retrain::CronSchedule s,
//                         keel::retrain::CronSchedule::Parse("0 3 * * 1"));  // Mondays 03:00
//   int64_t next = s.NextAfter(clock.NowMillis());  // Unix ms of the next run
//
// Syntax (Vixie cron): "minute hour day-of-month month day-of-week", each a
// comma-separated list of `*`, `N`, `A-B`, with an optional `/STEP` after `*`,
// `A-B` or `N` (`N/STEP` = from N to the field's maximum). Ranges: minute
// 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, day of week 0-7
// (0 and 7 are Sunday) or SUN-SAT; names in any case. A range may not run
// backwards (`5-1` is an error). Shorthands: @yearly (@annually), @monthly,
// @weekly, @daily (@midnight), @hourly.
// Day rule: when both day-of-month and day-of-week are restricted (neither
// starts with `*`), a day matches when EITHER matches (crontab(5)); otherwise
// both must.
//
// Time zone: fields are read as wall-clock time in the zone given at Parse
// (keel/core/timezone.h: "UTC", "+02:00", "-0530", or "Europe/Paris" from
// the system tz database). Where a zone's clock skips (spring forward), a
// time inside the gap fires once, at the instant the gap ends (02:30 on the
// day Paris goes from 02:00 to 03:00 fires at 03:00 CEST), as cronie does;
// where it repeats (fall back), a time inside the repeated hour fires at
// its first occurrence only. Fixed offsets never skip or repeat.
//
// Errors name the field and the text: InvalidArgument("cron field 'hour':
// 24 is out of range 0-23 in '0 24 * * *'").
//
// Threads: a CronSchedule is an immutable value.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "keel/core/result.h"
#include "keel/core/timezone.h"

namespace keel::retrain {

class CronSchedule {
 public:
  // `timezone`: "UTC" (also "" and "Z"), a fixed offset "+HH:MM", "-HHMM",
  // or a zone name (TimeZone::Load).
  static Result<CronSchedule> Parse(std::string_view expression, std::string_view timezone = "UTC");

  // The first time strictly after `after_ms` at which the schedule fires (a
  // whole minute, Unix ms, for after_ms from 1970 on), or -1 when none comes
  // within 8 years (a date that never exists, such as "0 0 30 2 *").
  int64_t NextAfter(int64_t after_ms) const;
  // Whether the wall-clock minute holding `time_ms` matches the fields (in a
  // named zone an instant NextAfter gives may not: a skipped time fires when
  // its gap ends, and a repeated minute matches both times it occurs).
  bool Matches(int64_t time_ms) const;

  const std::string& expression() const { return expression_; }
  const TimeZone& zone() const { return zone_; }

 private:
  bool DayMatches(int64_t days_since_epoch) const;
  bool MinuteMatches(int64_t minute_of_day) const;
  // The instant (UTC ms) a matching local minute `local_ms` fires at;
  // none when that is at or before `after_ms` (see the DST rules above).
  std::optional<int64_t> FireTime(int64_t local_ms, int64_t after_ms) const;

  std::string expression_;
  TimeZone zone_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_of_month_;  // 1-31
  std::bitset<13> months_;         // 1-12
  std::bitset<7> days_of_week_;    // 0 = Sunday
  bool dom_restricted_ = false;
  bool dow_restricted_ = false;
};

}  // namespace keel::retrain
