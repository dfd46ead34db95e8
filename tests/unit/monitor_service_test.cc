// MonitorService (keel/monitor/alerts.h) on a real SQLite store with a
// manual clock: a long window is merged from pieces of the log and agrees
// with the exact window read from the log (within window_profile.h's stated
// error); labels recorded later for rows in old buckets reach the next pass;
// small windows are still read exactly; a restarted service merges the
// pieces the first one stored, without their log.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "keel/core/clock.h"
#include "keel/monitor/alerts.h"
#include "keel/serve/prediction_log.h"
#include "tests/unit/test_util.h"

namespace keel::monitor {
namespace {

using keel::testing::OpenTestDb;
using keel::testing::TempDir;

constexpr int64_t kHour = 3'600'000;
constexpr int64_t kNow = 1'796'601'600'000 + 10 * kHour + 30 * 60'000;  // 10:30 UTC

ReferenceProfile Reference() {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal(0, 1);
  data::Table t;
  std::vector<double> x;
  for (int i = 0; i < 3000; ++i) x.push_back(normal(rng));
  EXPECT_TRUE(t.AddColumn(data::Column::Numeric("x", x)).ok());
  ReferenceProfile ref = BuildReference(t).value();
  ReferenceColumn pred;
  pred.name = "p";
  std::vector<double> probs;
  for (int i = 0; i < 1000; ++i) probs.push_back((i + 0.5) / 1000);
  pred.numeric = NumericSample::FromValues(probs);
  pred.bins = FitQuantileBins(pred.numeric.sorted).value();
  ref.columns.push_back(pred);
  ref.prediction_column = "p";
  ref.performance = {{"auc", 0.8}};
  return ref;
}

class MonitorServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = OpenTestDb(dir_);
    ASSERT_TRUE(db_->Write([](store::Connection& c) {
                     return c.Exec(
                         "INSERT INTO registered_models(name, creation_time, last_updated_time, "
                         "description) VALUES ('m', 0, 0, '')",
                         {});
                   })
                    .ok());
    // Any loadable model: the service reads its info and its package's profile.
    auto base = model::LoadModelPackage(std::filesystem::path(KEEL_SOURCE_DIR) /
                                        "tests/data/xgboost/small_cat.json");
    ASSERT_TRUE(base.ok()) << base.status().message();
    auto loaded = std::make_shared<model::LoadedModel>(**base);
    loaded->info.task = "binary";
    loaded->info.classes = {"0", "1"};
    loaded->path = dir_.path() / "package";
    std::filesystem::create_directories(loaded->path / "keel");
    ASSERT_TRUE(WriteReferenceFile(loaded->path / "keel" / "reference.keelref", Reference()).ok());
    model_ = loaded;
  }

  // `n` predictions spread evenly over [from, to), x ~ N(shift, 1), every
  // other one labelled when `label` (ids prefixed by `tag`).
  void Log(const std::string& tag, int n, int64_t from, int64_t to, double shift, bool label) {
    std::mt19937_64 rng(static_cast<uint64_t>(n) + static_cast<uint64_t>(from));
    std::normal_distribution<double> normal(shift, 1);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<serve::PredictionRecord> recs;
    std::vector<serve::Label> labels;
    for (int i = 0; i < n; ++i) {
      serve::PredictionRecord r;
      r.request_id = tag + std::to_string(i);
      r.time_ms = from + (to - from) * i / n;
      r.model = "m";
      r.version = "1";
      r.endpoint = "predict";
      const double x = normal(rng);
      const double p = 1 / (1 + std::exp(-x));
      r.input_json = "{\"x\":" + std::to_string(x) + "}";
      r.output_json = std::to_string(p);
      r.latency_us = 100 + i % 50;
      recs.push_back(r);
      if (label && i % 2 == 0) labels.push_back({r.request_id, u(rng) < p ? "1" : "0"});
    }
    serve::PredictionLog log(*db_, clock_, {});
    ASSERT_TRUE(log.Start().ok());
    ASSERT_TRUE(log.Append(std::move(recs)).ok());
    ASSERT_TRUE(log.Flush().ok());
    log.Stop();
    ASSERT_TRUE(serve::RecordLabels(*db_, labels, clock_.NowMillis()).ok());
  }

  std::unique_ptr<MonitorService> Service(uint64_t exact_rows, size_t max_rows = 200'000) {
    MonitorService::Options o;
    AlertRule day{
        .name = "drift", .metric = "drift.dataset", .threshold = 1, .window_ms = 6 * kHour};
    AlertRule hour = day;
    hour.name = "short";
    hour.window_ms = kHour;
    o.rules = {day, hour};
    o.exact_rows = exact_rows;
    o.max_rows = max_rows;
    o.settle_ms = 60'000;
    return std::make_unique<MonitorService>(
        *db_, clock_,
        [this](const std::string&, const std::string&)
            -> Result<std::shared_ptr<const model::LoadedModel>> { return model_; },
        bus_, o);
  }

  // The newest stored report of the window starting at `from`.
  std::string Stored(int64_t from) {
    WindowHistoryQuery q;
    q.model = "m";
    auto stored = ListStoredWindows(*db_, q);
    EXPECT_TRUE(stored.ok());
    for (const StoredWindow& w : *stored) {
      if (w.from_ms == from) return w.report_json;
    }
    ADD_FAILURE() << "no stored window from " << from;
    return "";
  }

  WindowReport Exact(int64_t from, int64_t to) {
    WindowQuery q{.model = "m", .version = "1", .from_ms = from, .to_ms = to};
    const ReferenceProfile ref = Reference();
    auto w = MonitorWindow(*db_, ref, model_->info, q, {});
    EXPECT_TRUE(w.ok()) << w.status().message();
    return std::move(w).value();
  }

  TempDir dir_;
  std::unique_ptr<store::Database> db_;
  ManualClock clock_{kNow};
  AlertBus bus_;
  std::shared_ptr<const model::LoadedModel> model_;
};

double Number(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\":");
  EXPECT_NE(at, std::string::npos) << key;
  return std::stod(json.substr(at + key.size() + 3));
}

TEST_F(MonitorServiceTest, LongWindowsMergePiecesAndFollowLateLabels) {
  // 6 hours of traffic: the inputs shift in the last 2 hours.
  Log("a", 4000, kNow - 6 * kHour, kNow - 2 * kHour, 0, true);
  Log("b", 2000, kNow - 2 * kHour, kNow, 0.7, false);
  auto service = Service(/*exact_rows=*/500);
  auto pass = service->RunOnce();
  ASSERT_TRUE(pass.ok()) << pass.status().message();
  EXPECT_TRUE(pass->errors.empty()) << pass->errors.front();
  EXPECT_EQ(pass->windows, 2u);
  EXPECT_EQ(pass->windows_from_pieces, 2u);

  const WindowReport exact = Exact(kNow - 6 * kHour, kNow);
  const std::string merged = Stored(kNow - 6 * kHour);
  EXPECT_EQ(Number(merged, "rows"), 6000);
  EXPECT_EQ(Number(merged, "labelled"), 2000);
  const ColumnReport& x = exact.drift.columns[0];
  ASSERT_EQ(x.name, "x");
  EXPECT_NEAR(Number(merged.substr(merged.find("\"name\":\"x\"")), "score"), x.drift.value.score,
              0.01);
  EXPECT_NEAR(Number(merged, "auc"), exact.performance.Live("auc"), 0.002);

  // Labels arrive an hour later for the shifted rows (buckets already built).
  clock_.Advance(kHour);
  std::vector<serve::Label> late;
  for (int i = 0; i < 2000; i += 4) late.push_back({"b" + std::to_string(i), "1"});
  ASSERT_TRUE(serve::RecordLabels(*db_, late, clock_.NowMillis()).ok());
  pass = service->RunOnce();
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->windows, 1u);  // the last hour has no traffic
  EXPECT_EQ(pass->windows_from_pieces, 1u);
  const int64_t now = clock_.NowMillis();
  const WindowReport exact2 = Exact(now - 6 * kHour, now);
  const std::string merged2 = Stored(now - 6 * kHour);
  EXPECT_EQ(Number(merged2, "labelled"), exact2.performance.labelled);
  EXPECT_EQ(exact2.performance.labelled, 2000u);  // 1500 labelled at logging, 500 late
  EXPECT_EQ(Number(merged2, "rows"), exact2.rows);
  EXPECT_NEAR(Number(merged2, "accuracy"), exact2.performance.Live("accuracy"), 1e-9);
}

TEST_F(MonitorServiceTest, ARestartedServiceMergesTheStoredPieces) {
  Log("a", 4000, kNow - 6 * kHour, kNow - 2 * kHour, 0, true);
  Log("b", 2000, kNow - 2 * kHour, kNow, 0.7, false);
  auto pass = Service(/*exact_rows=*/500)->RunOnce();
  ASSERT_TRUE(pass.ok()) << pass.status().message();
  EXPECT_TRUE(pass->errors.empty()) << pass->errors.front();
  EXPECT_EQ(pass->windows_from_pieces, 2u);
  // The log of every complete 15-minute bucket (04:30 to 10:15) is gone.
  ASSERT_TRUE(db_->Write([](store::Connection& c) {
                   return c.Exec(
                       "DELETE FROM predictions WHERE time >= ? AND time < ?",
                       {store::Value(kNow - 6 * kHour), store::Value(kNow - 15 * 60'000)});
                 })
                  .ok());
  pass = Service(/*exact_rows=*/500)->RunOnce();
  ASSERT_TRUE(pass.ok()) << pass.status().message();
  EXPECT_TRUE(pass->errors.empty()) << pass->errors.front();
  EXPECT_EQ(pass->windows_from_pieces, 2u);
  // Both passes stored the same reports.
  WindowHistoryQuery q;
  q.model = "m";
  auto stored = ListStoredWindows(*db_, q);
  ASSERT_TRUE(stored.ok());
  std::map<int64_t, std::vector<std::string>> by_from;
  for (const StoredWindow& w : *stored) by_from[w.from_ms].push_back(w.report_json);
  ASSERT_EQ(by_from.size(), 2u);
  for (const auto& [from, reports] : by_from) {
    ASSERT_EQ(reports.size(), 2u) << from;
    EXPECT_EQ(reports[0], reports[1]) << from;
  }
  EXPECT_EQ(Number(by_from[kNow - 6 * kHour][0], "rows"), 6000);
}

TEST_F(MonitorServiceTest, PiecesStopAtMaxRowsAndCountTheRest) {
  Log("a", 6000, kNow - 6 * kHour, kNow, 0, true);
  // 15-minute buckets of 250 rows: the unsettled tail and three pieces fill 1,000 rows.
  auto service = Service(/*exact_rows=*/500, /*max_rows=*/1000);
  auto pass = service->RunOnce();
  ASSERT_TRUE(pass.ok());
  EXPECT_TRUE(pass->errors.empty()) << pass->errors.front();
  EXPECT_EQ(pass->windows_from_pieces, 2u);
  const std::string merged = Stored(kNow - 6 * kHour);
  EXPECT_EQ(Number(merged, "rows"), 1000);
  EXPECT_NE(merged.find("\"truncated\":true"), std::string::npos);
  EXPECT_EQ(Number(merged, "predictions"), 6000);
  EXPECT_EQ(Number(merged, "labelled"), 500);
}

TEST_F(MonitorServiceTest, SmallWindowsAreReadExactly) {
  Log("a", 300, kNow - 3 * kHour, kNow, 0.2, true);
  auto service = Service(/*exact_rows=*/10'000);
  auto pass = service->RunOnce();
  ASSERT_TRUE(pass.ok());
  EXPECT_EQ(pass->windows, 2u);
  EXPECT_EQ(pass->windows_from_pieces, 0u);
  const WindowReport exact = Exact(kNow - 6 * kHour, kNow);
  const std::string stored = Stored(kNow - 6 * kHour);
  EXPECT_EQ(stored, exact.ToJson());
}

}  // namespace
}  // namespace keel::monitor
