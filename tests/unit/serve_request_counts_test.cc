#include "keel/serve/request_counts.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "tests/unit/test_util.h"

namespace keel::serve {
namespace {

using keel::testing::OpenTestDb;
using keel::testing::TempDir;

constexpr int64_t kMinute = 60'000;

std::vector<RequestPoint> Read(store::Database& db, const std::string& version, int64_t from,
                               int64_t to, int64_t step) {
  auto points = ReadRequestCounts(
      db, {.model = "churn", .version = version, .from_ms = from, .to_ms = to, .step_ms = step});
  EXPECT_TRUE(points.ok()) << points.status().message();
  return points.ok() ? *points : std::vector<RequestPoint>{};
}

// Two processes' counters on one store add up per model version and minute;
// reads sum versions (or keep one) per step.
TEST(RequestCountsTest, ReplicasAddUpPerMinuteAndStep) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ManualClock clock(100 * kMinute + 5'000);
  RequestCounts a(*db, clock), b(*db, clock);
  for (int i = 0; i < 3; ++i) a.Record("churn", "1", Outcome::kOk);
  a.Record("churn", "1", Outcome::kClientError);
  a.Record("churn", "2", Outcome::kServerError);
  a.Record("fraud", "1", Outcome::kOk);
  b.Record("churn", "1", Outcome::kOk);
  b.Record("churn", "1", Outcome::kClientError);
  ASSERT_OK(a.Flush());
  ASSERT_OK(b.Flush());
  ASSERT_OK(b.Flush());  // nothing pending: adds nothing
  clock.Set(107 * kMinute + 59'999);
  a.Record("churn", "1", Outcome::kOk);
  a.Record("churn", "1", Outcome::kServerError);
  ASSERT_OK(a.Flush());

  auto all = Read(*db, "", 100 * kMinute, 110 * kMinute, kMinute);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].time_ms, 100 * kMinute);
  EXPECT_EQ(all[0].requests, 7u);  // 4 + 1 (v2) + 2 (b)
  EXPECT_EQ(all[0].client_errors, 2u);
  EXPECT_EQ(all[0].server_errors, 1u);
  EXPECT_EQ(all[1].time_ms, 107 * kMinute);
  EXPECT_EQ(all[1].requests, 2u);
  EXPECT_EQ(all[1].server_errors, 1u);

  auto v1 = Read(*db, "1", 100 * kMinute, 110 * kMinute, kMinute);
  ASSERT_EQ(v1.size(), 2u);
  EXPECT_EQ(v1[0].requests, 6u);
  EXPECT_EQ(v1[0].server_errors, 0u);

  // Five-minute steps from a start inside a step: floored to the step.
  auto steps = Read(*db, "", 102 * kMinute, 110 * kMinute, 5 * kMinute);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].time_ms, 100 * kMinute);
  EXPECT_EQ(steps[0].requests, 7u);
  EXPECT_EQ(steps[1].time_ms, 105 * kMinute);
  EXPECT_EQ(steps[1].requests, 2u);
  // The range's end is exclusive.
  EXPECT_EQ(Read(*db, "", 100 * kMinute, 107 * kMinute, kMinute).size(), 1u);
  EXPECT_TRUE(Read(*db, "", 200 * kMinute, 210 * kMinute, kMinute).empty());
}

TEST(RequestCountsTest, StopFlushesAndBadQueriesAreRefused) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ManualClock clock(50 * kMinute);
  {
    RequestCounts counts(*db, clock, {.flush_interval = std::chrono::hours(1)});
    ASSERT_OK(counts.Start());
    counts.Record("churn", "3", Outcome::kClientError);
  }  // the destructor stops, which flushes
  auto points = Read(*db, "3", 0, 100 * kMinute, kMinute);
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].client_errors, 1u);

  auto code = [&](int64_t from, int64_t to, int64_t step) {
    return ReadRequestCounts(*db, {.model = "churn", .from_ms = from, .to_ms = to, .step_ms = step})
        .status()
        .code();
  };
  EXPECT_EQ(code(0, kMinute, 1000), StatusCode::kInvalidArgument);  // not whole minutes
  EXPECT_EQ(code(0, kMinute, 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(kMinute, kMinute, kMinute), StatusCode::kInvalidArgument);     // empty range
  EXPECT_EQ(code(0, 20'000 * kMinute, kMinute), StatusCode::kInvalidArgument);  // > 10,000 steps
  EXPECT_EQ(code(0, 20'000 * kMinute, 2 * kMinute), StatusCode::kOk);
}

// The flusher thread writes on its own, every flush interval.
TEST(RequestCountsTest, FlusherWritesOnItsOwn) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ManualClock clock(10 * kMinute);
  RequestCounts counts(*db, clock, {.flush_interval = std::chrono::milliseconds(20)});
  ASSERT_OK(counts.Start());
  counts.Record("churn", "1", Outcome::kOk);
  std::vector<RequestPoint> points;
  for (int i = 0; i < 500 && points.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    points = Read(*db, "", 0, 20 * kMinute, kMinute);
  }
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].requests, 1u);
  counts.Stop();
  counts.Stop();  // idempotent
}

}  // namespace
}  // namespace keel::serve
