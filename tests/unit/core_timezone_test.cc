// keel::TimeZone against Python's zoneinfo on the same tz database
// (tests/data/core/tz_golden.json, made by make_tz_golden.py): offsets of ten
// zones from 1971 to 2100, at and around every change of 2026 and 2091 (past
// 2037 the files' POSIX TZ rules decide); fixed offsets; errors.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "keel/core/timezone.h"
#include "test_util.h"

namespace keel {
namespace {

TEST(TimeZoneTest, OffsetsEqualZoneinfo) {
  std::ifstream in(std::string(KEEL_SOURCE_DIR) + "/tests/data/core/tz_golden.json");
  ASSERT_TRUE(in) << "tz_golden.json";
  const nlohmann::json golden = nlohmann::json::parse(in);
  size_t checked = 0;
  for (const auto& [name, cases] : golden["zones"].items()) {
    ASSERT_OK_AND_ASSIGN(TimeZone tz, TimeZone::Load(name));
    EXPECT_EQ(tz.name(), name);
    EXPECT_FALSE(tz.fixed());
    for (const auto& c : cases) {
      const int64_t t = c[0].get<int64_t>();
      ASSERT_EQ(tz.OffsetMs(t * 1000), c[1].get<int64_t>() * 1000) << name << " at " << t;
      // Any millisecond of that second has the same offset.
      ASSERT_EQ(tz.OffsetMs(t * 1000 + 999), c[1].get<int64_t>() * 1000) << name << " at " << t;
      ++checked;
    }
  }
  EXPECT_GT(checked, 8000u);
}

TEST(TimeZoneTest, UtcAndFixedOffsets) {
  for (const char* utc : {"", "UTC", "Z", "GMT"}) {
    ASSERT_OK_AND_ASSIGN(TimeZone tz, TimeZone::Load(utc));
    EXPECT_TRUE(tz.fixed());
    EXPECT_EQ(tz.OffsetMs(1'796'601'600'000), 0);
  }
  ASSERT_OK_AND_ASSIGN(TimeZone plus, TimeZone::Load("+05:30"));
  EXPECT_EQ(plus.OffsetMs(0), 330 * 60'000);
  EXPECT_EQ(plus.name(), "+05:30");
  ASSERT_OK_AND_ASSIGN(TimeZone minus, TimeZone::Load("-0001"));
  EXPECT_EQ(minus.OffsetMs(0), -60'000);
  EXPECT_EQ(TimeZone().OffsetMs(123), 0);
}

TEST(TimeZoneTest, ErrorsNameTheZone) {
  Result<TimeZone> r = TimeZone::Load("Mars/Olympus");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(),
            "time zone 'Mars/Olympus': no such zone in /usr/share/zoneinfo (Debian's tzdata "
            "package)");
  for (const char* bad :
       {"../../etc/passwd", "/etc/localtime", "Europe/Paris;rm", "+25:00", "+2", "02:00"}) {
    EXPECT_EQ(TimeZone::Load(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  // A file that is not TZif, found through TZDIR.
  testing::TempDir dir;
  std::ofstream(dir.path() / "Bogus") << "not a zone";
  ::setenv("TZDIR", dir.path().c_str(), 1);
  r = TimeZone::Load("Bogus");
  ::unsetenv("TZDIR");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("is not a TZif file (no TZif header)"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace keel
