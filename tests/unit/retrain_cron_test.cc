// Cron schedules against croniter (tests/data/retrain/cron_golden.json, made
// by make_cron_golden.py in the same folder), and the parser's errors.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "keel/retrain/cron.h"
#include "test_util.h"

namespace keel::retrain {
namespace {

using nlohmann::json;

json Golden() {
  std::ifstream in(std::string(KEEL_SOURCE_DIR) + "/tests/data/retrain/cron_golden.json");
  return json::parse(in);
}

TEST(CronTest, NextFireTimesMatchCroniter) {
  const json golden = Golden();
  ASSERT_GE(golden["cases"].size(), 100u);
  for (const json& c : golden["cases"]) {
    const std::string expr = c["expression"];
    const std::string tz = c["timezone"];
    SCOPED_TRACE(expr + " in " + tz + " after " + std::to_string(c["after_ms"].get<int64_t>()));
    ASSERT_OK_AND_ASSIGN(CronSchedule s, CronSchedule::Parse(expr, tz));
    int64_t t = c["after_ms"];
    for (const json& next : c["next_ms"]) {
      t = s.NextAfter(t);
      EXPECT_EQ(t, next.get<int64_t>());
      if (t != next.get<int64_t>()) break;
      EXPECT_TRUE(s.Matches(t));
    }
  }
}

TEST(CronTest, StrictlyAfterAndMinuteResolution) {
  ASSERT_OK_AND_ASSIGN(CronSchedule s, CronSchedule::Parse("*/15 * * * *"));
  // 2026-12-11T03:00:00Z.
  const int64_t on = 1'796'958'000'000;
  EXPECT_TRUE(s.Matches(on));
  EXPECT_TRUE(s.Matches(on + 59'999));  // the whole minute matches
  EXPECT_EQ(s.NextAfter(on), on + 15 * 60'000);
  EXPECT_EQ(s.NextAfter(on - 1), on);
  EXPECT_EQ(s.NextAfter(on + 1), on + 15 * 60'000);
}

TEST(CronTest, HugeStepsStopAtTheFieldsEnd) {
  ASSERT_OK_AND_ASSIGN(CronSchedule s, CronSchedule::Parse("1/2147483647 0 * * 1/2147483647"));
  // Minute 1 only, Mondays only.
  const int64_t monday = 1'796'601'600'000;               // 2026-12-07T00:00:00Z
  EXPECT_TRUE(s.Matches(monday + 60'000));                // Monday 00:01
  EXPECT_FALSE(s.Matches(monday + 2 * 60'000));           // 00:02
  EXPECT_FALSE(s.Matches(monday + 86'400'000 + 60'000));  // Tuesday 00:01
  EXPECT_EQ(s.NextAfter(monday + 60'000), monday + 7 * 86'400'000 + 60'000);
}

TEST(CronTest, ImpossibleDatesNeverFire) {
  ASSERT_OK_AND_ASSIGN(CronSchedule s, CronSchedule::Parse("0 0 30 2 *"));
  EXPECT_EQ(s.NextAfter(0), -1);
}

TEST(CronTest, ErrorsNameTheFieldAndTheText) {
  struct Bad {
    const char* expr;
    const char* want;
  };
  for (const Bad& b : {
           Bad{"0 24 * * *", "cron field 'hour': 24 is out of range 0-23 in '0 24 * * *'"},
           Bad{"0 3 * *", "has 4 fields; expected 5"},
           Bad{"0 3 * * 1 2", "has 6 fields"},
           Bad{"5-1 * * * *", "cron field 'minute': range 5-1 runs backwards"},
           Bad{"*/0 * * * *", "step '0' is not a positive number"},
           Bad{"0 3 * * FUNDAY", "cron field 'day of week': 'FUNDAY' is not a name"},
           Bad{"0 3 0 * *", "cron field 'day of month': 0 is out of range 1-31"},
           Bad{"0 3 * 13 *", "cron field 'month': 13 is out of range 1-12"},
           Bad{"a * * * *", "cron field 'minute': 'a' is not a number"},
           Bad{"1,,2 * * * *", "an empty list item"},
           Bad{"@fortnightly", "cron shorthand '@fortnightly'"},
       }) {
    Result<CronSchedule> s = CronSchedule::Parse(b.expr);
    ASSERT_FALSE(s.ok()) << b.expr;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(b.want), std::string::npos)
        << b.expr << ": " << s.status().message();
  }
  for (const char* tz : {"Europe/Nowhere", "+2", "+25:00", "02:00", "+02:60"}) {
    Result<CronSchedule> s = CronSchedule::Parse("0 3 * * *", tz);
    ASSERT_FALSE(s.ok()) << tz;
    EXPECT_NE(s.status().message().find("time zone"), std::string::npos) << tz;
  }
}

// Daylight saving time in a named zone (Europe/Paris, 2026): the clock
// goes from 02:00 to 03:00 on 29 March (01:00 UTC) and from 03:00 back to
// 02:00 on 25 October (01:00 UTC). cronie's rule: a time in the skipped
// hour runs once when the hour is skipped; a time in the repeated hour runs
// at its first occurrence only.
int64_t Utc(int y, unsigned mo, unsigned d, int h, int mi) {
  using namespace std::chrono;
  const sys_days day{year{y} / month{mo} / std::chrono::day{d}};
  return (day.time_since_epoch().count() * 86400LL + h * 3600LL + mi * 60LL) * 1000;
}

TEST(CronTest, SpringForwardRunsSkippedTimesWhenTheGapEnds) {
  ASSERT_OK_AND_ASSIGN(CronSchedule s, CronSchedule::Parse("30 2 * * *", "Europe/Paris"));
  EXPECT_EQ(s.NextAfter(Utc(2026, 3, 27, 12, 0)), Utc(2026, 3, 28, 1, 30));  // 02:30 CET
  // 02:30 does not exist on the 29th: once, at 03:00 CEST (01:00 UTC).
  EXPECT_EQ(s.NextAfter(Utc(2026, 3, 28, 1, 30)), Utc(2026, 3, 29, 1, 0));
  EXPECT_EQ(s.NextAfter(Utc(2026, 3, 29, 1, 0)), Utc(2026, 3, 30, 0, 30));  // 02:30 CEST
  // Every quarter hour: the four skipped slots fire once, then 03:00 is the
  // same instant and does not fire again.
  ASSERT_OK_AND_ASSIGN(CronSchedule q, CronSchedule::Parse("*/15 * * * *", "Europe/Paris"));
  EXPECT_EQ(q.NextAfter(Utc(2026, 3, 29, 0, 50)), Utc(2026, 3, 29, 1, 0));
  EXPECT_EQ(q.NextAfter(Utc(2026, 3, 29, 1, 0)), Utc(2026, 3, 29, 1, 15));  // 03:15 CEST
  // A time outside the gap is untouched.
  ASSERT_OK_AND_ASSIGN(CronSchedule three, CronSchedule::Parse("0 3 * * *", "Europe/Paris"));
  EXPECT_EQ(three.NextAfter(Utc(2026, 3, 28, 12, 0)), Utc(2026, 3, 29, 1, 0));
  EXPECT_EQ(three.NextAfter(Utc(2026, 3, 29, 1, 0)), Utc(2026, 3, 30, 1, 0));
}

TEST(CronTest, FallBackRunsRepeatedTimesOnce) {
  ASSERT_OK_AND_ASSIGN(CronSchedule s, CronSchedule::Parse("30 2 * * *", "Europe/Paris"));
  // 02:30 happens twice on 25 October: at 00:30 UTC (CEST) and 01:30 UTC (CET).
  EXPECT_EQ(s.NextAfter(Utc(2026, 10, 24, 12, 0)), Utc(2026, 10, 25, 0, 30));
  EXPECT_EQ(s.NextAfter(Utc(2026, 10, 25, 0, 30)), Utc(2026, 10, 26, 1, 30));
  // Asked from inside the repeated hour (a server started then): the second
  // 02:30 is not a new slot either.
  EXPECT_EQ(s.NextAfter(Utc(2026, 10, 25, 1, 10)), Utc(2026, 10, 26, 1, 30));
  // Hourly: 02:00 CEST, then 03:00 CET; the repeated 02:00 CET is not run.
  ASSERT_OK_AND_ASSIGN(CronSchedule h, CronSchedule::Parse("0 * * * *", "Europe/Paris"));
  EXPECT_EQ(h.NextAfter(Utc(2026, 10, 24, 23, 30)), Utc(2026, 10, 25, 0, 0));
  EXPECT_EQ(h.NextAfter(Utc(2026, 10, 25, 0, 0)), Utc(2026, 10, 25, 2, 0));
  // Winter and summer wall clocks: Mondays 03:00 in Paris.
  ASSERT_OK_AND_ASSIGN(CronSchedule m, CronSchedule::Parse("0 3 * * 1", "Europe/Paris"));
  EXPECT_EQ(m.NextAfter(Utc(2026, 12, 6, 0, 0)), Utc(2026, 12, 7, 2, 0));  // CET: 02:00 UTC
  EXPECT_EQ(m.NextAfter(Utc(2026, 7, 1, 0, 0)), Utc(2026, 7, 6, 1, 0));    // CEST: 01:00 UTC
  EXPECT_TRUE(m.Matches(Utc(2026, 7, 6, 1, 0)));
  EXPECT_FALSE(m.Matches(Utc(2026, 7, 6, 2, 0)));
}

TEST(CronTest, SouthernHemisphereAndHalfHourChanges) {
  // Sydney 2026: 03:00 AEDT back to 02:00 AEST on 5 April (16:00 UTC on the
  // 4th); 02:00 AEST on to 03:00 AEDT on 4 October (16:00 UTC on the 3rd).
  ASSERT_OK_AND_ASSIGN(CronSchedule s, CronSchedule::Parse("30 2 * * *", "Australia/Sydney"));
  EXPECT_EQ(s.NextAfter(Utc(2026, 4, 4, 12, 0)), Utc(2026, 4, 4, 15, 30));  // first 02:30
  EXPECT_EQ(s.NextAfter(Utc(2026, 4, 4, 15, 30)), Utc(2026, 4, 5, 16, 30));
  EXPECT_EQ(s.NextAfter(Utc(2026, 10, 3, 12, 0)), Utc(2026, 10, 3, 16, 0));  // gap end
  EXPECT_EQ(s.NextAfter(Utc(2026, 10, 3, 16, 0)), Utc(2026, 10, 4, 15, 30));
  // Lord Howe moves by half an hour: 02:00 to 02:30 on 4 October (15:30 UTC).
  ASSERT_OK_AND_ASSIGN(CronSchedule l, CronSchedule::Parse("15 2 * * *", "Australia/Lord_Howe"));
  EXPECT_EQ(l.NextAfter(Utc(2026, 10, 3, 12, 0)), Utc(2026, 10, 3, 15, 30));
  EXPECT_EQ(l.NextAfter(Utc(2026, 10, 3, 15, 30)), Utc(2026, 10, 4, 15, 15));  // 02:15 +11
}

}  // namespace
}  // namespace keel::retrain
