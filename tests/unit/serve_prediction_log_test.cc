#include "keel/serve/prediction_log.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/test_util.h"

namespace keel::serve {
namespace {

using keel::testing::CountRows;
using keel::testing::OpenTestDb;
using keel::testing::TempDir;
using store::Connection;
using store::RowView;
using store::Value;

constexpr std::chrono::hours kNever{1};

PredictionRecord Rec(std::string id, int64_t time_ms = 1000, std::string model = "churn",
                     std::string version = "1") {
  PredictionRecord r;
  r.request_id = std::move(id);
  r.time_ms = time_ms;
  r.model = std::move(model);
  r.version = std::move(version);
  r.endpoint = "predict";
  r.input_json = R"({"state":"KS","account_length":128})";
  r.output_json = "0.07";
  r.latency_us = 41.5;
  return r;
}

std::vector<PredictionRecord> Recs(const std::string& prefix, int n, int64_t time_ms = 1000) {
  std::vector<PredictionRecord> out;
  for (int i = 0; i < n; ++i) out.push_back(Rec(prefix + std::to_string(i), time_ms));
  return out;
}

bool HasPrediction(store::Database& db, const std::string& id) {
  bool found = false;
  Status s = db.Read([&](Connection& c) {
    return c.Query("SELECT 1 FROM predictions WHERE request_id = ?", {Value(id)},
                   [&](const RowView&) {
                     found = true;
                     return OkStatus();
                   });
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return found;
}

std::string OutputOf(store::Database& db, const std::string& id) {
  std::string out;
  Status s = db.Read([&](Connection& c) {
    return c.Query("SELECT output FROM predictions WHERE request_id = ?", {Value(id)},
                   [&](const RowView& r) {
                     out = r.Text(0);
                     return OkStatus();
                   });
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// A copy of the status (ASSERT_OK binds a reference; a temporary Result's
// status() would dangle).
template <typename T>
Status StatusOf(const Result<T>& r) {
  return r.status();
}

PredictionLogOptions Options(Durability durability = Durability::kInterval) {
  PredictionLogOptions o;
  o.durability = durability;
  return o;
}

TEST(PredictionLogTest, StartRejectsBadOptions) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  auto bad = [&](auto mutate) {
    PredictionLogOptions o;
    mutate(o);
    PredictionLog log(*db, SystemClock::Default(), o);
    return log.Start().code();
  };
  EXPECT_EQ(bad([](auto& o) { o.sample_rate = 1.5; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.sample_rate = -0.1; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.sample_rate = std::nan(""); }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.queue_capacity = 0; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.max_batch = 0; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto& o) { o.flush_interval = std::chrono::milliseconds(-1); }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](auto&) {}), StatusCode::kOk);
}

TEST(PredictionLogTest, AppendOutsideStartAndStopFails) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  PredictionLog log(*db, SystemClock::Default(), Options());
  EXPECT_EQ(log.Append({Rec("a")}).code(), StatusCode::kFailedPrecondition);
  ASSERT_OK(log.Start());
  EXPECT_EQ(log.Start().code(), StatusCode::kFailedPrecondition);
  ASSERT_OK(log.Append({Rec("b")}));
  log.Stop();
  log.Stop();
  EXPECT_EQ(log.Append({Rec("c")}).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(log.Start().code(), StatusCode::kFailedPrecondition);
  ASSERT_OK(log.Flush());
  EXPECT_EQ(log.written(), 1u);
  EXPECT_TRUE(HasPrediction(*db, "b"));
}

TEST(PredictionLogTest, IntervalModeWritesEverythingOnStop) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  PredictionLogOptions o = Options();
  o.flush_interval = kNever;
  PredictionLog log(*db, SystemClock::Default(), o);
  ASSERT_OK(log.Start());
  for (int i = 0; i < 100; ++i) ASSERT_OK(log.Append(Recs("r" + std::to_string(i) + "-", 10)));
  log.Stop();
  EXPECT_EQ(CountRows(*db, "predictions"), 1000);
  EXPECT_EQ(log.written(), 1000u);
  EXPECT_EQ(log.queued(), 0u);
  EXPECT_EQ(log.dropped(), 0u);
  EXPECT_EQ(log.failed(), 0u);
  EXPECT_GE(log.commits(), 1u);
}

TEST(PredictionLogTest, DestructorFlushes) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  {
    PredictionLogOptions o = Options();
    o.flush_interval = kNever;
    PredictionLog log(*db, SystemClock::Default(), o);
    ASSERT_OK(log.Start());
    ASSERT_OK(log.Append(Recs("d", 7)));
  }
  EXPECT_EQ(CountRows(*db, "predictions"), 7);
}

// With a flush interval of an hour, Flush returning at all shows it wakes
// the writer.
TEST(PredictionLogTest, FlushMakesRecordsVisible) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  PredictionLogOptions o = Options();
  o.flush_interval = kNever;
  PredictionLog log(*db, SystemClock::Default(), o);
  ASSERT_OK(log.Start());
  ASSERT_OK(log.Flush());  // nothing queued
  ASSERT_OK(log.Append(Recs("a", 5)));
  ASSERT_OK(log.Flush());
  EXPECT_EQ(CountRows(*db, "predictions"), 5);
  EXPECT_EQ(log.queued(), 0u);
  ASSERT_OK(log.Append(Recs("b", 3)));
  ASSERT_OK(log.Flush());
  EXPECT_EQ(CountRows(*db, "predictions"), 8);
  EXPECT_EQ(log.written(), 8u);
}

TEST(PredictionLogTest, MaxBatchCommitsWithoutWaitingForTheInterval) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  PredictionLogOptions o = Options();
  o.flush_interval = kNever;
  o.max_batch = 10;
  PredictionLog log(*db, SystemClock::Default(), o);
  ASSERT_OK(log.Start());
  ASSERT_OK(log.Append(Recs("a", 25)));
  // Two full batches are due at once; Flush then takes the remaining five.
  ASSERT_OK(log.Flush());
  EXPECT_EQ(CountRows(*db, "predictions"), 25);
  EXPECT_GE(log.commits(), 3u);
}

TEST(PredictionLogTest, StrictAppendIsReadableFromAnotherDatabase) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  auto other = OpenTestDb(dir);  // a second set of connections on the same file
  ASSERT_NE(other, nullptr);
  PredictionLog log(*db, SystemClock::Default(), Options(Durability::kStrict));
  ASSERT_OK(log.Start());
  for (int i = 0; i < 50; ++i) {
    std::string id = "s" + std::to_string(i);
    ASSERT_OK(log.Append({Rec(id)}));
    ASSERT_TRUE(HasPrediction(*other, id)) << id;
  }
  // Several records in one Append, more than one INSERT chunk.
  ASSERT_OK(log.Append(Recs("m", 150)));
  EXPECT_EQ(CountRows(*other, "predictions"), 200);
  EXPECT_EQ(log.written(), 200u);
}

TEST(PredictionLogTest, StrictConcurrentAppendsAreAllDurable) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  auto other = OpenTestDb(dir);
  PredictionLog log(*db, SystemClock::Default(), Options(Durability::kStrict));
  ASSERT_OK(log.Start());
  constexpr int kThreads = 8, kPerThread = 100;
  std::atomic<int> missing{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!log.Append({Rec(id)}).ok()) ++errors;
        if (!HasPrediction(*other, id)) ++missing;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(missing.load(), 0);
  EXPECT_EQ(CountRows(*other, "predictions"), kThreads * kPerThread);
  EXPECT_LE(log.commits(), static_cast<uint64_t>(kThreads * kPerThread));
}

TEST(PredictionLogTest, ConcurrentAppendsLoseNothing) {
  for (WhenFull when_full : {WhenFull::kBlock, WhenFull::kDrop}) {
    TempDir dir;
    auto db = OpenTestDb(dir);
    PredictionLogOptions o = Options();
    o.when_full = when_full;
    o.max_batch = 100;
    o.flush_interval = std::chrono::milliseconds(2);
    // kBlock with a small queue makes Appends wait for room; kDrop with a
    // large one must never drop.
    o.queue_capacity = when_full == WhenFull::kBlock ? 64 : 100000;
    PredictionLog log(*db, SystemClock::Default(), o);
    ASSERT_OK(log.Start());
    constexpr int kThreads = 8, kAppends = 300;
    std::atomic<int> total{0}, errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kAppends; ++i) {
          int n = 1 + (i % 5);
          if (!log.Append(Recs("t" + std::to_string(t) + "-" + std::to_string(i) + "-", n)).ok()) {
            ++errors;
          }
          total += n;
        }
      });
    }
    for (auto& th : threads) th.join();
    log.Stop();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(log.dropped(), 0u);
    EXPECT_EQ(CountRows(*db, "predictions"), total.load());
    EXPECT_EQ(log.written(), static_cast<uint64_t>(total.load()));
  }
}

TEST(PredictionLogTest, BlockedAppendTakesMoreThanTheCapacityOnceEmpty) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  PredictionLogOptions o = Options();
  o.when_full = WhenFull::kBlock;
  o.queue_capacity = 4;
  o.flush_interval = kNever;
  PredictionLog log(*db, SystemClock::Default(), o);
  ASSERT_OK(log.Start());
  ASSERT_OK(log.Append(Recs("a", 3)));
  ASSERT_OK(log.Append(Recs("b", 10)));
  ASSERT_OK(log.Flush());
  EXPECT_EQ(CountRows(*db, "predictions"), 13);
  EXPECT_EQ(log.dropped(), 0u);
}

TEST(PredictionLogTest, DropWhenFullDropsAndCounts) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  PredictionLogOptions o = Options();
  o.queue_capacity = 10;
  o.max_batch = 1000;
  o.flush_interval = kNever;
  PredictionLog log(*db, SystemClock::Default(), o);
  ASSERT_OK(log.Start());
  ASSERT_OK(log.Append(Recs("big", 11)));  // more than fits: dropped, still OK
  EXPECT_EQ(log.dropped(), 11u);
  ASSERT_OK(log.Append(Recs("a", 4)));
  EXPECT_EQ(log.queued(), 4u);
  ASSERT_OK(log.Append(Recs("b", 7)));  // 4 + 7 > 10
  EXPECT_EQ(log.dropped(), 18u);
  log.Stop();
  EXPECT_EQ(CountRows(*db, "predictions"), 4);
  EXPECT_EQ(log.written(), 4u);
}

TEST(PredictionLogTest, DropUnderLoadAccountsForEveryRecord) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  PredictionLogOptions o = Options();
  o.queue_capacity = 8;
  o.flush_interval = kNever;
  PredictionLog log(*db, SystemClock::Default(), o);
  ASSERT_OK(log.Start());
  constexpr int kThreads = 4, kAppends = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAppends; ++i) {
        EXPECT_TRUE(
            log.Append(Recs("t" + std::to_string(t) + "-" + std::to_string(i) + "-", 3)).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  log.Stop();
  EXPECT_EQ(log.written() + log.dropped(), static_cast<uint64_t>(kThreads * kAppends * 3));
  EXPECT_EQ(CountRows(*db, "predictions"), static_cast<int64_t>(log.written()));
}

TEST(PredictionLogTest, StrictDropIsResourceExhausted) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  PredictionLogOptions o = Options(Durability::kStrict);
  o.queue_capacity = 2;
  PredictionLog log(*db, SystemClock::Default(), o);
  ASSERT_OK(log.Start());
  EXPECT_EQ(log.Append(Recs("a", 3)).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(log.dropped(), 3u);
  ASSERT_OK(log.Append(Recs("b", 2)));
  EXPECT_EQ(CountRows(*db, "predictions"), 2);
}

TEST(PredictionLogTest, DuplicatesAreSkippedAndTheFirstWins) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  PredictionLogOptions o = Options();
  o.flush_interval = kNever;
  PredictionLog log(*db, SystemClock::Default(), o);
  ASSERT_OK(log.Start());
  PredictionRecord first = Rec("a"), second = Rec("a");
  first.output_json = "1";
  second.output_json = "2";
  ASSERT_OK(log.Append({first, Rec("b"), second}));  // same batch
  ASSERT_OK(log.Flush());
  ASSERT_OK(log.Append({Rec("b"), Rec("c")}));  // later batch
  ASSERT_OK(log.Flush());
  EXPECT_EQ(log.written(), 3u);
  EXPECT_EQ(log.duplicates(), 2u);
  EXPECT_EQ(OutputOf(*db, "a"), "1");
  // Duplicates inside and across multi-row chunks.
  std::vector<PredictionRecord> many;
  for (int i = 0; i < 200; ++i) many.push_back(Rec("m" + std::to_string(i % 150)));
  ASSERT_OK(log.Append(std::move(many)));
  ASSERT_OK(log.Flush());
  EXPECT_EQ(log.written(), 153u);
  EXPECT_EQ(log.duplicates(), 52u);
  EXPECT_EQ(CountRows(*db, "predictions"), 153);
}

TEST(PredictionLogTest, SampleRates) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  for (double rate : {0.0, 1.0}) {
    PredictionLogOptions o = Options();
    o.sample_rate = rate;
    PredictionLog log(*db, SystemClock::Default(), o);
    int yes = 0;
    for (int i = 0; i < 1000; ++i) yes += log.Sample() ? 1 : 0;
    EXPECT_EQ(yes, rate == 1.0 ? 1000 : 0);
    EXPECT_EQ(log.sampled_out(), rate == 1.0 ? 0u : 1000u);
  }
  PredictionLogOptions o = Options();
  o.sample_rate = 0.5;
  PredictionLog log(*db, SystemClock::Default(), o);
  int yes = 0;
  for (int i = 0; i < 10000; ++i) yes += log.Sample() ? 1 : 0;
  EXPECT_GT(yes, 0);
  EXPECT_LT(yes, 10000);
  EXPECT_EQ(log.sampled_out(), static_cast<uint64_t>(10000 - yes));
}

TEST(PredictionLogTest, FailedCommitsAreReportedAndCounted) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ASSERT_OK(db->Write([](Connection& c) { return c.ExecScript("DROP TABLE predictions"); }));
  {
    PredictionLog log(*db, SystemClock::Default(), Options(Durability::kStrict));
    ASSERT_OK(log.Start());
    Status s = log.Append(Recs("a", 3));
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(log.failed(), 3u);
    EXPECT_EQ(log.written(), 0u);
  }
  {
    PredictionLogOptions o = Options();
    o.flush_interval = kNever;
    PredictionLog log(*db, SystemClock::Default(), o);
    ASSERT_OK(log.Start());
    ASSERT_OK(log.Append(Recs("b", 2)));
    EXPECT_FALSE(log.Flush().ok());
    ASSERT_OK(log.Append(Recs("c", 2)));
    EXPECT_FALSE(log.Flush().ok());
    EXPECT_EQ(log.failed(), 4u);
    EXPECT_EQ(log.commits(), 0u);
    ASSERT_OK(log.Flush());  // nothing left to wait for
  }
}

// Logs three predictions p1..p3 of model churn and returns once they are committed.
void LogThree(store::Database& db) {
  PredictionLog log(db, SystemClock::Default(), Options(Durability::kStrict));
  ASSERT_OK(log.Start());
  ASSERT_OK(log.Append({Rec("p1", 10), Rec("p2", 20), Rec("p3", 30)}));
}

std::optional<std::string> LabelOf(store::Database& db, const std::string& id,
                                   int64_t* time_ms = nullptr) {
  PredictionQuery q;
  q.model = "churn";
  auto rows = ReadPredictions(db, q);
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  if (!rows.ok()) return std::nullopt;
  for (const auto& p : *rows) {
    if (p.record.request_id != id) continue;
    if (time_ms != nullptr) *time_ms = p.label_time_ms;
    return p.label_json;
  }
  ADD_FAILURE() << "no prediction " << id;
  return std::nullopt;
}

TEST(PredictionLabelsTest, MatchesKnownIdsAndReturnsUnknownOnes) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  LogThree(*db);
  std::vector<Label> labels = {{"p1", "1"}, {"nope", "0"}, {"p2", R"( "yes" )"}, {"gone", "1"}};
  ASSERT_OK_AND_ASSIGN(LabelResult r, RecordLabels(*db, labels, 5000));
  EXPECT_EQ(r.matched, 2u);
  EXPECT_EQ(r.unknown_ids, (std::vector<std::string>{"nope", "gone"}));
  EXPECT_EQ(CountRows(*db, "labels"), 2);
  int64_t t = 0;
  EXPECT_EQ(LabelOf(*db, "p1", &t), "1");
  EXPECT_EQ(t, 5000);
  EXPECT_EQ(LabelOf(*db, "p2"), R"("yes")");
  EXPECT_EQ(LabelOf(*db, "p3"), std::nullopt);
  ASSERT_OK_AND_ASSIGN(LabelResult none, RecordLabels(*db, {}, 5000));
  EXPECT_EQ(none.matched, 0u);
}

TEST(PredictionLabelsTest, NewLabelReplacesOld) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  LogThree(*db);
  std::vector<Label> first = {{"p1", "0"}};
  ASSERT_OK(StatusOf(RecordLabels(*db, first, 100)));
  std::vector<Label> second = {{"p1", " 0.50 "}, {"p3", "true"}};
  ASSERT_OK_AND_ASSIGN(LabelResult r, RecordLabels(*db, second, 200));
  EXPECT_EQ(r.matched, 2u);
  EXPECT_TRUE(r.unknown_ids.empty());
  int64_t t = 0;
  EXPECT_EQ(LabelOf(*db, "p1", &t), "0.5");
  EXPECT_EQ(t, 200);
  EXPECT_EQ(LabelOf(*db, "p3"), "true");
  EXPECT_EQ(CountRows(*db, "labels"), 2);
}

TEST(PredictionLabelsTest, RefusesNonScalarLabelsAndStoresNothing) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  LogThree(*db);
  for (std::string bad : {"null", "{}", R"({"a":1})", "[1]", "[]", "", "yes", "1 2", "tru"}) {
    std::vector<Label> labels = {{"p1", "1"}, {"p2", bad}};
    auto r = RecordLabels(*db, labels, 100);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << "label " << bad;
  }
  std::vector<Label> empty_id = {{"", "1"}};
  EXPECT_EQ(RecordLabels(*db, empty_id, 100).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CountRows(*db, "labels"), 0);
  std::vector<Label> ok = {{"p1", "false"}, {"p2", "-3"}, {"p3", R"("a\u0062")"}};
  ASSERT_OK(StatusOf(RecordLabels(*db, ok, 100)));
  EXPECT_EQ(LabelOf(*db, "p3"), R"("ab")");
}

TEST(PredictionReadTest, FiltersOrderAndJoin) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  {
    PredictionLog log(*db, SystemClock::Default(), Options(Durability::kStrict));
    ASSERT_OK(log.Start());
    PredictionRecord special = Rec("x", 100, "churn", "1");
    special.endpoint = "invocations";
    special.input_json = R"({"k":"v"})";
    special.output_json = "[0.1,0.9]";
    special.latency_us = 12.25;
    ASSERT_OK(log.Append({Rec("c", 300, "churn", "2"), Rec("b", 200, "churn", "1"),
                          Rec("a", 200, "churn", "2"), special, Rec("d", 400, "churn", "1"),
                          Rec("o", 250, "other", "1")}));
  }
  std::vector<Label> labels = {{"b", "1"}, {"d", "0"}, {"o", "1"}};
  ASSERT_OK(StatusOf(RecordLabels(*db, labels, 999)));

  auto ids = [&](const PredictionQuery& q) {
    std::vector<std::string> out;
    auto rows = ReadPredictions(*db, q);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (rows.ok()) {
      for (const auto& p : *rows) out.push_back(p.record.request_id);
    }
    return out;
  };
  auto count = [&](const PredictionQuery& q) {
    auto n = CountPredictions(*db, q);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : 0;
  };
  using V = std::vector<std::string>;

  PredictionQuery q;
  q.model = "churn";
  EXPECT_EQ(ids(q), (V{"x", "a", "b", "c", "d"}));  // time, then request id
  EXPECT_EQ(count(q), 5u);

  PredictionQuery v2 = q;
  v2.version = "2";
  EXPECT_EQ(ids(v2), (V{"a", "c"}));
  EXPECT_EQ(count(v2), 2u);

  PredictionQuery range = q;
  range.from_ms = 200;
  range.to_ms = 400;  // exclusive
  EXPECT_EQ(ids(range), (V{"a", "b", "c"}));
  EXPECT_EQ(count(range), 3u);

  PredictionQuery labelled = q;
  labelled.labelled_only = true;
  EXPECT_EQ(ids(labelled), (V{"b", "d"}));
  EXPECT_EQ(count(labelled), 2u);

  PredictionQuery limited = q;
  limited.limit = 2;
  EXPECT_EQ(ids(limited), (V{"x", "a"}));
  EXPECT_EQ(count(limited), 5u);  // limit ignored
  limited.limit = 0;
  EXPECT_EQ(ids(limited), V{});

  PredictionQuery other;
  other.model = "other";
  EXPECT_EQ(ids(other), V{"o"});
  PredictionQuery unknown;
  unknown.model = "nobody";
  EXPECT_EQ(ids(unknown), V{});

  ASSERT_OK_AND_ASSIGN(auto rows, ReadPredictions(*db, q));
  ASSERT_EQ(rows.size(), 5u);
  const LoggedPrediction& x = rows[0];
  EXPECT_EQ(x.record.time_ms, 100);
  EXPECT_EQ(x.record.model, "churn");
  EXPECT_EQ(x.record.version, "1");
  EXPECT_EQ(x.record.endpoint, "invocations");
  EXPECT_EQ(x.record.input_json, R"({"k":"v"})");
  EXPECT_EQ(x.record.output_json, "[0.1,0.9]");
  EXPECT_EQ(x.record.latency_us, 12.25);
  EXPECT_FALSE(x.label_json.has_value());
  const LoggedPrediction& b = rows[2];
  EXPECT_EQ(b.record.request_id, "b");
  EXPECT_EQ(b.label_json, "1");
  EXPECT_EQ(b.label_time_ms, 999);

  PredictionQuery no_model;
  EXPECT_EQ(ReadPredictions(*db, no_model).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CountPredictions(*db, no_model).status().code(), StatusCode::kInvalidArgument);
}

// Child side of the crash test: appends strictly from several threads and
// writes each acknowledged record number to `fd`. Returns an exit code.
int AppendUntilKilled(const std::string& uri, int fd) {
  auto db = store::OpenDatabase(uri, {});
  if (!db.ok()) return 2;
  PredictionLogOptions o = Options(Durability::kStrict);
  o.when_full = WhenFull::kBlock;
  PredictionLog log(**db, SystemClock::Default(), o);
  if (!log.Start().ok()) return 3;
  std::atomic<int> rc{0};
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < 50000 && rc == 0; ++i) {
        uint64_t n = t * 1000000 + i;
        if (!log.Append({Rec("k" + std::to_string(n))}).ok()) rc = 4;
        if (write(fd, &n, sizeof n) != sizeof n) rc = 5;
      }
    });
  }
  for (auto& th : threads) th.join();
  log.Stop();
  return rc;
}

TEST(PredictionLogCrashTest, AcknowledgedStrictRecordsSurviveSigkill) {
  TempDir dir;
  const std::string uri = keel::testing::TestStoreUri(dir);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::fflush(nullptr);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    _exit(AppendUntilKilled(uri, fds[1]));
  }
  close(fds[1]);
  struct Reap {
    pid_t pid;
    int status = 0;
    bool done = false;
    void Kill() {
      if (done) return;
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      done = true;
    }
    ~Reap() { Kill(); }
  } child{pid};

  constexpr size_t kKillAfter = 2000;
  std::set<uint64_t> acked;
  std::string pending;
  char buf[4096];
  for (;;) {
    ssize_t got = read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    pending.append(buf, static_cast<size_t>(got));
    size_t whole = pending.size() / sizeof(uint64_t) * sizeof(uint64_t);
    for (size_t off = 0; off < whole; off += sizeof(uint64_t)) {
      uint64_t n;
      std::memcpy(&n, pending.data() + off, sizeof n);
      acked.insert(n);
    }
    pending.erase(0, whole);
    if (acked.size() >= kKillAfter) child.Kill();  // reads go on until EOF
  }
  close(fds[0]);
  child.Kill();
  ASSERT_GE(acked.size(), kKillAfter) << "child ended early, wait status " << child.status;

  auto db = OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  std::set<std::string> stored;
  ASSERT_OK(db->Read([&](Connection& c) {
    return c.Query("SELECT request_id FROM predictions", {}, [&](const RowView& r) {
      stored.emplace(r.Text(0));
      return OkStatus();
    });
  }));
  size_t lost = 0;
  for (uint64_t n : acked) lost += stored.count("k" + std::to_string(n)) == 0 ? 1 : 0;
  EXPECT_EQ(lost, 0u) << "of " << acked.size() << " acknowledged records";
  EXPECT_GE(stored.size(), acked.size());
}

}  // namespace
}  // namespace keel::serve
