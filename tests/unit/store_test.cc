#include "keel/store/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "keel/core/clock.h"
#include "keel/registry/registry.h"
#include "keel/store/lease.h"
#include "keel/tracking/tracking.h"
#include "tests/unit/test_util.h"

namespace keel::store {
namespace {

using keel::testing::CountRows;
using keel::testing::TempDir;

TEST(StoreTest, FreshDatabaseIsAtLatestVersionWithDefaultExperiment) {
  TempDir dir;
  auto db = keel::testing::OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  auto v = SchemaVersion(*db);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, LatestSchemaVersion());
  EXPECT_GE(LatestSchemaVersion(), 2);
  EXPECT_EQ(CountRows(*db, "experiments"), 1);
}

TEST(StoreTest, UnknownSchemeListsKnownOnes) {
  auto db = OpenDatabase("mysql://x", {});
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("sqlite://"), std::string::npos);
  EXPECT_FALSE(OpenDatabase("sqlite:relative-without-slashes", {}).ok());
}

TEST(StoreTest, WriteRollsBackOnError) {
  TempDir dir;
  auto db = keel::testing::OpenTestDb(dir);
  Status s = db->Write([](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(c.Exec("INSERT INTO sequences(name, value) VALUES ('t', 1)", {}));
    return InvalidArgument("abort");
  });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  int64_t n = 0;
  ASSERT_OK(db->Read([&](Connection& c) {
    return c.Query("SELECT COUNT(*) FROM sequences WHERE name = 't'", {}, [&](const RowView& r) {
      n = r.Int(0);
      return OkStatus();
    });
  }));
  EXPECT_EQ(n, 0);
}

// Change notifications (Database::Listen): on PostgreSQL a committed
// NotifyChange reaches every listener, a rolled-back one none; SQLite has
// none (callers poll) and NotifyChange is a no-op there.
TEST(StoreTest, ChangeNotificationsArriveOnCommitOnly) {
  TempDir dir;
  auto db = keel::testing::OpenTestDb(dir);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> got_a, got_b;  // guarded by mu
  auto listen = [&](std::vector<std::string>& into) {
    return db->Listen("keel_test", [&mu, &cv, &into](std::string_view payload) {
      std::lock_guard<std::mutex> lock(mu);
      into.emplace_back(payload);
      cv.notify_all();
    });
  };
  auto a = listen(got_a);
  if (db->dialect().name == "sqlite") {
    EXPECT_EQ(a.status().code(), StatusCode::kUnimplemented);
    ASSERT_OK(db->Write([](Connection& c) { return c.NotifyChange("keel_test", "x"); }));
    return;
  }
  ASSERT_OK(a.status());
  ASSERT_OK_AND_ASSIGN(auto b, listen(got_b));
  EXPECT_EQ(db->Listen("Bad-Channel", [](std::string_view) {}).status().code(),
            StatusCode::kInvalidArgument);
  Status rolled = db->Write([](Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(c.NotifyChange("keel_test", "rolled back"));
    return InvalidArgument("abort");
  });
  EXPECT_EQ(rolled.code(), StatusCode::kInvalidArgument);
  ASSERT_OK(db->Write([](Connection& c) { return c.NotifyChange("keel_test", "churn"); }));
  std::unique_lock<std::mutex> lock(mu);
  // Notifications arrive in commit order, so once "churn" is in, a
  // delivered "rolled back" would be in before it.
  // Each listener is called once with "" when it starts (changes before it
  // listened are read again by the caller), then per notification.
  auto has_churn = [](const std::vector<std::string>& v) {
    return std::find(v.begin(), v.end(), "churn") != v.end();
  };
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10),
                          [&] { return has_churn(got_a) && has_churn(got_b); }));
  EXPECT_EQ(got_a, (std::vector<std::string>{"", "churn"}));
  EXPECT_EQ(got_b, (std::vector<std::string>{"", "churn"}));
}

TEST(StoreTest, SequencesAreDenseUnderConcurrentWriters) {
  TempDir dir;
  auto db = keel::testing::OpenTestDb(dir);
  std::vector<std::thread> threads;
  std::vector<std::vector<int64_t>> got(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        Status s = db->Write([&](Connection& c) -> Status {
          KEEL_ASSIGN_OR_RETURN(int64_t v, NextSequenceValue(c, "test_seq"));
          got[t].push_back(v);
          return OkStatus();
        });
        EXPECT_TRUE(s.ok()) << s.ToString();
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<int64_t> all;
  for (auto& g : got) all.insert(all.end(), g.begin(), g.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 200u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], static_cast<int64_t>(i + 1));
}

TEST(StoreTest, OpeningAVersion1DatabaseUpgradesIt) {
  TempDir dir;
  {
    OpenOptions options;
    options.target_schema_version = 1;
    auto db = keel::testing::OpenTestDb(dir, options);
    ASSERT_EQ(*SchemaVersion(*db), 1);
    tracking::TrackingService tracking(*db, SystemClock::Default(), {});
    ASSERT_TRUE(tracking.CreateExperiment("old", "", {}).ok());
  }
  auto db = keel::testing::OpenTestDb(dir);
  EXPECT_EQ(*SchemaVersion(*db), LatestSchemaVersion());
  tracking::TrackingService tracking(*db, SystemClock::Default(), {});
  auto e = tracking.GetExperimentByName("old");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(CountRows(*db, "alias_history"), 0);
}

// tests/data/store/keel-v1.sql is a dump written by make_keel_v1.sh from the
// version-1 schema; opening it must upgrade it and keep every row usable.
TEST(StoreTest, Version1FixtureUpgradesWithoutLoss) {
  if (keel::testing::TestsOnPostgres()) GTEST_SKIP() << "a SQLite file fixture";
  TempDir dir;
  std::ifstream in(std::string(KEEL_SOURCE_DIR) + "/tests/data/store/keel-v1.sql");
  ASSERT_TRUE(in.good());
  std::stringstream sql;
  sql << in.rdbuf();
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open((dir.path() / "keel.db").c_str(), &raw), SQLITE_OK);
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(raw, sql.str().c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_close(raw);
  }
  auto db = keel::testing::OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(*SchemaVersion(*db), LatestSchemaVersion());
  tracking::TrackingService tracking(*db, SystemClock::Default(), {});
  auto run = tracking.GetRun("0123456789abcdef0123456789abcdef");
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->info.run_name, "old-run-1");
  ASSERT_EQ(run->metrics.size(), 1u);
  EXPECT_DOUBLE_EQ(run->metrics[0].value, 0.93);
  // New ids continue after the old ones.
  auto exp = tracking.CreateExperiment("new", "", {});
  ASSERT_TRUE(exp.ok());
  EXPECT_EQ(*exp, "2");
  registry::RegistryService registry(*db, SystemClock::Default());
  auto champion = registry.GetVersionByAlias("churn", "champion");
  ASSERT_TRUE(champion.ok());
  EXPECT_EQ(champion->version, "2");
  // The alias history table from migration 2 works on the upgraded data.
  ASSERT_OK(registry.SetAlias("churn", "champion", "1", {"test", "upgrade"}));
  auto history = registry.AliasHistory("churn", "champion");
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ(*(*history)[0].from_version, "2");
  auto v3 = registry.CreateModelVersion({"churn", "s3://x", "", "", "", "", {}});
  ASSERT_TRUE(v3.ok());
  EXPECT_EQ(v3->version, "3");
}

TEST(StoreTest, RefusesADatabaseFromANewerKeel) {
  TempDir dir;
  {
    auto db = keel::testing::OpenTestDb(dir);
    ASSERT_OK(db->Write([](Connection& c) {
      return c.Exec(
          "INSERT INTO schema_migrations(version, name, applied_at) VALUES (999, 'future', 0)", {});
    }));
  }
  auto db = OpenDatabase(keel::testing::TestStoreUri(dir), {});
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("newer"), std::string::npos);
}

TEST(StoreTest, RedactUriHidesPasswords) {
  EXPECT_EQ(RedactUri("postgresql://keel:s3cret@db:5432/keel"),
            "postgresql://keel:***@db:5432/keel");
  EXPECT_EQ(RedactUri("postgresql://keel:p@ss@db/keel"), "postgresql://keel:***@db/keel");
  EXPECT_EQ(RedactUri("postgresql://keel@db/keel?password=x&sslmode=require"),
            "postgresql://keel@db/keel?password=***&sslmode=require");
  EXPECT_EQ(RedactUri("sqlite:///var/lib/keel/keel.db"), "sqlite:///var/lib/keel/keel.db");
  EXPECT_EQ(RedactUri("postgresql://keel@db/keel"), "postgresql://keel@db/keel");
}

TEST(StoreTest, LeaseHasOneHolderUntilItExpiresOrIsReleased) {
  TempDir dir;
  auto db = keel::testing::OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  ManualClock clock(1'000'000);
  Lease a(*db, clock, "monitor", "a", 10'000);
  Lease b(*db, clock, "monitor", "b", 10'000);
  Lease other_role(*db, clock, "scheduler", "b", 10'000);
  ASSERT_OK_AND_ASSIGN(bool a_has, a.Acquire());
  EXPECT_TRUE(a_has);
  ASSERT_OK_AND_ASSIGN(bool b_has, b.Acquire());
  EXPECT_FALSE(b_has);
  ASSERT_OK_AND_ASSIGN(bool other, other_role.Acquire());
  EXPECT_TRUE(other);  // roles are independent
  // Renewals keep it past the first ttl.
  clock.Advance(9'000);
  ASSERT_OK_AND_ASSIGN(a_has, a.Acquire());
  EXPECT_TRUE(a_has);
  clock.Advance(9'000);
  ASSERT_OK_AND_ASSIGN(b_has, b.Acquire());
  EXPECT_FALSE(b_has);
  ASSERT_OK_AND_ASSIGN(Lease::State st, b.Current());
  EXPECT_EQ(st.holder, "a");
  EXPECT_EQ(st.expires_ms, 1'000'000 + 18'000 + 1'000);
  // Unrenewed, it expires and the other takes it; the first has lost it.
  clock.Advance(10'000);
  ASSERT_OK_AND_ASSIGN(b_has, b.Acquire());
  EXPECT_TRUE(b_has);
  ASSERT_OK_AND_ASSIGN(a_has, a.Acquire());
  EXPECT_FALSE(a_has);
  // Released, it is free at once.
  ASSERT_OK(b.Release());
  ASSERT_OK_AND_ASSIGN(a_has, a.Acquire());
  EXPECT_TRUE(a_has);
  ASSERT_OK(b.Release());  // not b's: changes nothing
  ASSERT_OK_AND_ASSIGN(b_has, b.Acquire());
  EXPECT_FALSE(b_has);
}

TEST(StoreTest, RacingProcessesGetOneLeaseHolder) {
  TempDir dir;
  auto first = keel::testing::OpenTestDb(dir);
  ASSERT_NE(first, nullptr);
  // Separate Database objects on one store, as separate processes have.
  std::vector<std::unique_ptr<Database>> dbs;
  for (int i = 0; i < 4; ++i) dbs.push_back(keel::testing::OpenTestDb(dir));
  ManualClock clock(5'000'000);
  for (int round = 0; round < 5; ++round) {
    std::atomic<int> holders{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&, i] {
        Lease l(*dbs[static_cast<size_t>(i)], clock, "race", "p" + std::to_string(i), 1'000);
        auto mine = l.Acquire();
        ASSERT_TRUE(mine.ok()) << mine.status().ToString();
        if (*mine) ++holders;
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(holders.load(), 1) << "round " << round;
    clock.Advance(1'001);  // expired: the next round races again
  }
}

}  // namespace
}  // namespace keel::store
