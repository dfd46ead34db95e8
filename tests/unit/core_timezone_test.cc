// keel::TimeZone against two other readers of the same tz database: glibc's
// localtime_r (at test time, any tzdata version) and Python's zoneinfo
// (tests/data/core/tz_golden.json, made by make_tz_golden.py, compared when
// the installed tzdata is the version it was made from). Offsets of ten
// zones from 1971 to 2100, at and around every change of 2026 and 2091 (past
// 2037 the files' POSIX TZ rules decide); fixed offsets; errors.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <time.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "keel/core/timezone.h"
#include "test_util.h"

namespace keel {
namespace {

std::string InstalledTzdata() {
  std::ifstream in("/usr/share/zoneinfo/tzdata.zi");
  std::string hash, word, version;
  in >> hash >> word >> version;
  return word == "version" ? version : "";
}

// glibc's offset at `t` (seconds) in the zone TZ names.
int64_t GlibcOffset(int64_t t) {
  const time_t tt = static_cast<time_t>(t);
  struct tm local {};
  localtime_r(&tt, &local);
  return local.tm_gmtoff;
}

TEST(TimeZoneTest, OffsetsEqualGlibcAndZoneinfo) {
  std::ifstream in(std::string(KEEL_SOURCE_DIR) + "/tests/data/core/tz_golden.json");
  ASSERT_TRUE(in) << "tz_golden.json";
  const nlohmann::json golden = nlohmann::json::parse(in);
  const bool same_tzdata = golden["tzdata"].get<std::string>() == InstalledTzdata();
  if (!same_tzdata) {
    std::cerr << "tzdata " << InstalledTzdata() << " is not the golden file's " << golden["tzdata"]
              << ": comparing with glibc only\n";
  }
  const std::optional<std::string> saved_tz =
      std::getenv("TZ") ? std::optional<std::string>(std::getenv("TZ")) : std::nullopt;
  size_t checked = 0;
  for (const auto& [name, cases] : golden["zones"].items()) {
    ASSERT_OK_AND_ASSIGN(TimeZone tz, TimeZone::Load(name));
    EXPECT_EQ(tz.name(), name);
    EXPECT_FALSE(tz.fixed());
    ::setenv("TZ", (":" + name).c_str(), 1);
    ::tzset();
    for (const auto& c : cases) {
      const int64_t t = c[0].get<int64_t>();
      const int64_t got = tz.OffsetMs(t * 1000);
      ASSERT_EQ(got, GlibcOffset(t) * 1000) << name << " at " << t;
      if (same_tzdata) ASSERT_EQ(got, c[1].get<int64_t>() * 1000) << name << " at " << t;
      // Any millisecond of that second has the same offset.
      ASSERT_EQ(tz.OffsetMs(t * 1000 + 999), got) << name << " at " << t;
      ++checked;
    }
  }
  if (saved_tz) {
    ::setenv("TZ", saved_tz->c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
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
  const std::optional<std::string> tzdir =
      std::getenv("TZDIR") ? std::optional<std::string>(std::getenv("TZDIR")) : std::nullopt;
  const std::string dir = tzdir && !tzdir->empty() ? *tzdir : "/usr/share/zoneinfo";
  Result<TimeZone> r = TimeZone::Load("Mars/Olympus");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(),
            "time zone 'Mars/Olympus': no such zone in " + dir + " (Debian's tzdata package)");
  // A folder of zones is no zone.
  EXPECT_EQ(TimeZone::Load("America").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(TimeZone::Load("Europe/").status().code(), StatusCode::kNotFound);
  // Leap-second zones count time differently: refused.
  r = TimeZone::Load("right/Europe/Paris");
  if (r.status().code() != StatusCode::kNotFound) {  // present with tzdata's right/ files
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("leap-second zones"), std::string::npos);
  }
  for (const char* bad :
       {"../../etc/passwd", "/etc/localtime", "Europe/Paris;rm", "+25:00", "+2", "02:00"}) {
    EXPECT_EQ(TimeZone::Load(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  // A file that is not TZif, found through TZDIR.
  testing::TempDir tmp;
  std::ofstream(tmp.path() / "Bogus") << "not a zone";
  // A v2 file cut before its footer.
  {
    std::ifstream paris(dir + "/Europe/Paris", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(paris)), std::istreambuf_iterator<char>());
    ASSERT_GT(bytes.size(), 40u);
    bytes.resize(bytes.rfind('\n', bytes.size() - 2));  // drop the rule and its newlines
    std::ofstream(tmp.path() / "Cut", std::ios::binary) << bytes;
  }
  ::setenv("TZDIR", tmp.path().c_str(), 1);
  r = TimeZone::Load("Bogus");
  Result<TimeZone> cut = TimeZone::Load("Cut");
  if (tzdir) {
    ::setenv("TZDIR", tzdir->c_str(), 1);
  } else {
    ::unsetenv("TZDIR");
  }
  EXPECT_EQ(cut.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(cut.status().message().find("footer"), std::string::npos) << cut.status().message();
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("is not a TZif file (no TZif header)"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace keel
