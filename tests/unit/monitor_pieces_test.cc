// Pieces stored in the store (src/monitor/live/pieces.h, window_profiles):
// a new cache on the same store serves the same windows from the stored
// pieces without the log of their buckets, and follows labels recorded
// while no cache ran; stored pieces that no window reaches are deleted; a
// damaged stored piece is reported and rebuilt from the log. Each store
// test compares against a control: the same log in a second store, served
// by one cache that lives throughout.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "keel/core/clock.h"
#include "keel/monitor/window_profile.h"
#include "keel/serve/prediction_log.h"
#include "src/monitor/live/pieces.h"
#include "tests/unit/test_util.h"

namespace keel::monitor {
namespace pieces_test {  // a name of its own: unit tests are built in unity batches
namespace {

using internal::PieceCache;
using keel::testing::CountRows;
using keel::testing::OpenTestDb;
using keel::testing::TempDir;

constexpr int64_t kMinute = 60'000;
constexpr int64_t kHour = 3'600'000;
constexpr int64_t kNow = 1'796'601'600'000 + 10 * kHour + 30 * kMinute;  // 10:30 UTC
constexpr int64_t kWindow = 6 * kHour;
constexpr int64_t kSettle = kMinute;
constexpr uint64_t kAllRows = 1'000'000;

#define KEEL_EXPECT_OK(expr)                         \
  do {                                               \
    auto&& keel_s_ = (expr);                         \
    EXPECT_TRUE(keel_s_.ok()) << keel_s_.ToString(); \
  } while (0)

ReferenceProfile Reference() {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal(0, 1);
  data::Table t;
  std::vector<double> x;
  std::vector<std::string> tier;
  for (int i = 0; i < 3000; ++i) {
    x.push_back(normal(rng));
    tier.push_back(i % 3 == 0 ? "gold" : "silver");
  }
  EXPECT_TRUE(t.AddColumn(data::Column::Numeric("x", x)).ok());
  EXPECT_TRUE(t.AddColumn(data::Column::CategoricalFromText("tier", tier)).ok());
  ReferenceProfile ref = BuildReference(t).value();
  ReferenceColumn pred;
  pred.name = "p";
  std::vector<double> probs;
  for (int i = 0; i < 1000; ++i) probs.push_back((i + 0.5) / 1000);
  pred.numeric = NumericSample::FromValues(probs);
  pred.bins = FitQuantileBins(pred.numeric.sorted).value();
  ref.columns.push_back(pred);
  ref.prediction_column = "p";
  return ref;
}

model::PackageInfo Info() {
  model::PackageInfo info;
  info.task = "binary";
  info.classes = {"0", "1"};
  return info;
}

class MonitorPiecesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = OpenTestDb(dir_);
    control_db_ = OpenTestDb(control_dir_);
    ASSERT_NE(db_, nullptr);
    ASSERT_NE(control_db_, nullptr);
  }

  // The same `n` predictions over [from, to) into both stores, every other
  // one labelled at `label_ms`.
  void Log(int n, int64_t from, int64_t to, int64_t label_ms) {
    std::mt19937_64 rng(5);
    std::normal_distribution<double> normal(0.3, 1);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<serve::PredictionRecord> recs;
    std::vector<serve::Label> labels;
    for (int i = 0; i < n; ++i) {
      serve::PredictionRecord r;
      r.request_id = "r" + std::to_string(i);
      r.time_ms = from + (to - from) * i / n;
      r.model = "m";
      r.version = "1";
      r.endpoint = i % 7 == 0 ? "batch" : "predict";
      const double x = normal(rng);
      const double p = 1 / (1 + std::exp(-x));
      r.input_json =
          "{\"x\":" + std::to_string(x) + ",\"tier\":\"" + (i % 4 == 0 ? "gold" : "silver") + "\"}";
      r.output_json = std::to_string(p);
      r.latency_us = 100 + i % 50;
      recs.push_back(r);
      if (i % 2 == 0) labels.push_back({r.request_id, u(rng) < p ? "1" : "0"});
    }
    for (store::Database* db : {db_.get(), control_db_.get()}) {
      ManualClock clock(label_ms);
      serve::PredictionLog log(*db, clock, {});
      ASSERT_OK(log.Start());
      ASSERT_OK(log.Append(recs));
      ASSERT_OK(log.Flush());
      log.Stop();
      // Held by value: the status of a temporary Result dies with it.
      const auto recorded = serve::RecordLabels(*db, labels, label_ms);
      ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();
    }
  }

  // Labels every logged request in [from, to) as "1" at `at_ms`, in both stores.
  void LabelLate(int64_t from, int64_t to, int64_t at_ms) {
    std::vector<serve::Label> labels;
    Status s = db_->Read([&](store::Connection& c) {
      return c.Query("SELECT request_id FROM predictions WHERE time >= ? AND time < ?",
                     {store::Value(from), store::Value(to)}, [&](const store::RowView& row) {
                       labels.push_back({std::string(row.Text(0)), "1"});
                       return OkStatus();
                     });
    });
    ASSERT_OK(s);
    ASSERT_FALSE(labels.empty());
    for (store::Database* db : {db_.get(), control_db_.get()}) {
      // Held by value: the status of a temporary Result dies with it.
      const auto recorded = serve::RecordLabels(*db, labels, at_ms);
      ASSERT_TRUE(recorded.ok()) << recorded.status().ToString();
    }
  }

  std::unique_ptr<PieceCache> Cache(int64_t bucket = internal::PieceBucket(kWindow)) {
    return std::make_unique<PieceCache>("m", "1", bucket, kSettle);
  }

  // Refreshes `cache` at `now` and returns the window [now - kWindow, now).
  WindowProfile Window(PieceCache& cache, store::Database& db, int64_t now,
                       uint64_t max_rows = kAllRows, uint64_t* total = nullptr) {
    KEEL_EXPECT_OK(cache.Refresh(db, layout_, now, kWindow, max_rows));
    const std::vector<std::string> errors = cache.TakeStoreErrors();
    EXPECT_TRUE(errors.empty()) << errors.front();
    uint64_t rows = 0;
    auto w = cache.Window(db, layout_, now - kWindow, now, max_rows, &rows);
    EXPECT_TRUE(w.ok()) << w.status().message();
    if (total != nullptr) *total = rows;
    return w.ok() ? std::move(w).value() : WindowProfile();
  }

  int64_t Scalar(store::Database& db, const std::string& sql, std::vector<store::Value> params) {
    int64_t v = -1;
    KEEL_EXPECT_OK(db.Read([&](store::Connection& c) {
      return c.Query(sql, params, [&](const store::RowView& row) {
        v = row.IsNull(0) ? -1 : row.Int(0);
        return OkStatus();
      });
    }));
    return v;
  }

  const ReferenceProfile ref_ = Reference();
  const model::PackageInfo info_ = Info();
  const ProfileLayout layout_{ref_, info_};
  TempDir dir_;
  TempDir control_dir_;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<store::Database> control_db_;
};

TEST_F(MonitorPiecesTest, ANewCacheServesStoredPiecesWithoutTheirLogAndFollowsLaterLabels) {
  const int64_t bucket = internal::PieceBucket(kWindow);
  ASSERT_EQ(bucket, 15 * kMinute);
  Log(3000, kNow - kWindow, kNow, kNow - kHour);
  const int64_t t1 = kNow;
  const int64_t t2 = kNow + 10 * kMinute;
  auto control = Cache();
  const WindowProfile before = Window(*control, *control_db_, t1);
  {
    auto first = Cache();
    const WindowProfile w = Window(*first, *db_, t1);
    EXPECT_EQ(EncodeProfile(w, layout_), EncodeProfile(before, layout_));
  }  // a restart
  // The complete buckets at t1: 04:30 to 10:15, one row each.
  EXPECT_EQ(CountRows(*db_, "window_profiles"), 23);

  // While no cache runs: labels for the rows of one old bucket.
  const int64_t relabelled = kNow - 4 * kHour;  // 06:30, a bucket's start
  LabelLate(relabelled, relabelled + bucket, t1 + 5 * kMinute);
  // The log of every other complete bucket of the next window is deleted:
  // only the stored pieces hold those rows now.
  const int64_t first_t2 = kNow - kWindow + 15 * kMinute;  // 04:45
  const int64_t until_t1 = kNow - 15 * kMinute;            // 10:15
  const int64_t logged = CountRows(*db_, "predictions");
  ASSERT_OK(db_->Write([&](store::Connection& c) {
    return c.Exec(
        "DELETE FROM predictions WHERE time >= ? AND time < ? AND NOT (time >= ? AND time < ?)",
        {store::Value(first_t2), store::Value(until_t1), store::Value(relabelled),
         store::Value(relabelled + bucket)});
  }));
  const int64_t left = CountRows(*db_, "predictions");
  ASSERT_LT(left, logged / 4);

  auto second = Cache();
  const WindowProfile after = Window(*second, *db_, t2);
  const WindowProfile expected = Window(*control, *control_db_, t2);
  EXPECT_EQ(after.rows, expected.rows);
  EXPECT_GT(after.rows, static_cast<uint64_t>(left));  // counted from the stored pieces
  EXPECT_EQ(after.labelled, expected.labelled);
  EXPECT_GT(expected.labelled, before.labelled);  // the late labels are in
  EXPECT_GT(expected.positives.count(), before.positives.count());
  EXPECT_EQ(EncodeProfile(after, layout_), EncodeProfile(expected, layout_));

  // The relabelled piece was stored again, with labels watermark t2; a third
  // cache starting from the stored pieces agrees.
  EXPECT_EQ(Scalar(*db_, "SELECT labels_time FROM window_profiles WHERE start_time = ?",
                   {store::Value(relabelled)}),
            t2);
  auto third = Cache();
  EXPECT_EQ(EncodeProfile(Window(*third, *db_, t2), layout_), EncodeProfile(expected, layout_));
}

TEST_F(MonitorPiecesTest, CountedOnlyPiecesAreStoredToo) {
  Log(3000, kNow - kWindow, kNow, kNow - kHour);
  const uint64_t max_rows = 700;
  auto control = Cache();
  uint64_t expected_total = 0;
  const WindowProfile expected = Window(*control, *control_db_, kNow, max_rows, &expected_total);
  ASSERT_OK(Cache()->Refresh(*db_, layout_, kNow, kWindow, max_rows));
  EXPECT_GT(Scalar(*db_, "SELECT COUNT(*) FROM window_profiles WHERE counted_only = 1", {}), 10);
  ASSERT_OK(db_->Write([&](store::Connection& c) {
    return c.Exec("DELETE FROM predictions WHERE time < ?", {store::Value(kNow - kHour)});
  }));
  auto second = Cache();
  uint64_t total = 0;
  const WindowProfile w = Window(*second, *db_, kNow, max_rows, &total);
  EXPECT_EQ(total, 3000u);
  EXPECT_EQ(total, expected_total);
  EXPECT_EQ(EncodeProfile(w, layout_), EncodeProfile(expected, layout_));
}

TEST_F(MonitorPiecesTest, PiecesNoWindowReachesAreDeleted) {
  Log(3000, kNow - kWindow, kNow, kNow - kHour);
  auto cache = Cache();
  ASSERT_OK(cache->Refresh(*db_, layout_, kNow, kWindow, kAllRows));
  EXPECT_EQ(Scalar(*db_, "SELECT MIN(start_time) FROM window_profiles", {}),
            kNow - kWindow);  // 04:30, a bucket's start
  // Three hours later the window starts at 07:30: older rows are gone, the
  // newer buckets (no traffic) are stored with no rows.
  const int64_t later = kNow + 3 * kHour;
  ASSERT_OK(cache->Refresh(*db_, layout_, later, kWindow, kAllRows));
  EXPECT_TRUE(cache->TakeStoreErrors().empty());
  EXPECT_EQ(Scalar(*db_, "SELECT MIN(start_time) FROM window_profiles", {}), later - kWindow);
  EXPECT_EQ(CountRows(*db_, "window_profiles"), 23);
  EXPECT_EQ(Scalar(*db_, "SELECT COUNT(*) FROM window_profiles WHERE start_time < ?",
                   {store::Value(later - kWindow)}),
            0);

  // Another bucket length (the rules changed): the old length's rows go.
  auto hourly = Cache(kHour);
  ASSERT_OK(hourly->Refresh(*db_, layout_, later, kWindow, kAllRows));
  EXPECT_EQ(Scalar(*db_, "SELECT COUNT(*) FROM window_profiles WHERE bucket_ms <> ?",
                   {store::Value(kHour)}),
            0);
  EXPECT_EQ(CountRows(*db_, "window_profiles"), 5);  // 08:00 to 12:00

  // Versions no longer monitored: DropStalePieces removes what is older than
  // every window.
  ASSERT_OK(internal::DropStalePieces(*db_, later - 2 * kHour));
  EXPECT_EQ(Scalar(*db_, "SELECT COUNT(*) FROM window_profiles WHERE start_time < ?",
                   {store::Value(later - 2 * kHour)}),
            0);
  EXPECT_EQ(CountRows(*db_, "window_profiles"), 1);  // 12:00
}

TEST_F(MonitorPiecesTest, ADamagedStoredPieceIsReportedAndRebuilt) {
  Log(3000, kNow - kWindow, kNow, kNow - kHour);
  auto control = Cache();
  const WindowProfile expected = Window(*control, *control_db_, kNow);
  ASSERT_OK(Cache()->Refresh(*db_, layout_, kNow, kWindow, kAllRows));
  const int64_t damaged = kNow - 2 * kHour;
  const std::string garbage = "KWP\x01 not a profile";
  ASSERT_OK(db_->Write([&](store::Connection& c) {
    return c.Exec("UPDATE window_profiles SET profile = ? WHERE start_time = ?",
                  {store::Value(store::Blob{garbage}), store::Value(damaged)});
  }));
  auto second = Cache();
  ASSERT_OK(second->Refresh(*db_, layout_, kNow, kWindow, kAllRows));
  const std::vector<std::string> errors = second->TakeStoreErrors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find(std::to_string(damaged)), std::string::npos) << errors[0];
  EXPECT_NE(errors[0].find("checksum"), std::string::npos) << errors[0];
  uint64_t total = 0;
  auto w = second->Window(*db_, layout_, kNow - kWindow, kNow, kAllRows, &total);
  ASSERT_OK(w.status());
  EXPECT_EQ(EncodeProfile(*w, layout_), EncodeProfile(expected, layout_));
  // Its row was rewritten: the next cache reads every piece.
  auto third = Cache();
  EXPECT_EQ(EncodeProfile(Window(*third, *db_, kNow), layout_), EncodeProfile(expected, layout_));
}

}  // namespace
}  // namespace pieces_test
}  // namespace keel::monitor
