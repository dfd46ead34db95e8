// File: keel/core/timezone.h
//
// Time zones for wall-clock schedules: UTC, a fixed offset, or an IANA zone
// ("Europe/Paris") read from the system's tz database (TZif files under
// $TZDIR, default /usr/share/zoneinfo; Debian's tzdata package), including
// the POSIX TZ rule at the end of the file for times after its last
// transition.
//
//   KEEL_ASSIGN_OR_RETURN(keel::TimeZone tz, keel::TimeZone::Load("Europe/Paris"));
//   int64_t local_ms = utc_ms + tz.OffsetMs(utc_ms);
//
// Names: "UTC", "Z", "GMT" and "" are UTC; "+02:00", "-0530" are fixed
// offsets (up to 14 hours); anything else is a zone name made of letters,
// digits, '_', '-', '+' and '/' (no "..", no leading '/'), looked up as a file.
// Errors name the zone and why: NotFound("time zone 'Mars/Olympus': no such
// zone in /usr/share/zoneinfo") (also for directories such as "America"),
// InvalidArgument for a file that is not TZif (or has no footer), and for
// leap-second zones ("right/Europe/Paris"). Instants beyond +-30000 years
// are clamped.
//
// Threads: a TimeZone is an immutable value (its data is shared by copies).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "keel/core/result.h"

namespace keel {

class TimeZone {
 public:
  // UTC.
  TimeZone();
  static Result<TimeZone> Load(std::string_view name);
  static TimeZone Fixed(int offset_minutes);

  // Local time minus UTC at the instant `utc_ms` (ms), e.g. +3600000 for
  // Paris in winter.
  int64_t OffsetMs(int64_t utc_ms) const;

  const std::string& name() const;
  // True for UTC and fixed offsets.
  bool fixed() const;

 private:
  struct Data;
  explicit TimeZone(std::shared_ptr<const Data> d) : d_(std::move(d)) {}
  std::shared_ptr<const Data> d_;
};

}  // namespace keel
