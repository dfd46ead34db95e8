// CopyStore (keel migrate): SQLite -> PostgreSQL (the test server
// KEEL_TEST_POSTGRES_URI names; a second SQLite file without it) -> SQLite,
// every table compared cell by cell with the first.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "keel/core/clock.h"
#include "keel/registry/registry.h"
#include "keel/store/store.h"
#include "keel/tracking/tracking.h"
#include "tests/unit/test_util.h"

namespace keel::store {
namespace {

using keel::testing::TempDir;

// Every table as text: "table|col=value|..." per row, in primary-key-free
// order (sorted), doubles by their bits, bytes in hex.
std::vector<std::string> Dump(Database& db) {
  std::vector<std::string> out;
  Status s = db.Read([&](Connection& c) -> Status {
    std::vector<std::string> tables;
    KEEL_RETURN_IF_ERROR(c.Query(db.dialect().list_tables, {}, [&](const RowView& r) {
      tables.emplace_back(r.Text(0));
      return OkStatus();
    }));
    for (const std::string& t : tables) {
      if (t == "schema_migrations") continue;
      std::vector<std::pair<std::string, std::string>> columns;
      KEEL_RETURN_IF_ERROR(c.Query(db.dialect().list_columns, {Value(t)}, [&](const RowView& r) {
        columns.emplace_back(r.Text(0), r.Text(1));
        return OkStatus();
      }));
      std::string names;
      for (size_t i = 0; i < columns.size(); ++i) names += (i ? "," : "") + columns[i].first;
      KEEL_RETURN_IF_ERROR(c.Query("SELECT " + names + " FROM " + t, {}, [&](const RowView& r) {
        std::string line = t;
        for (size_t i = 0; i < columns.size(); ++i) {
          const int col = static_cast<int>(i);
          std::string type = columns[i].second;
          for (char& ch : type)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          line += "|" + columns[i].first + "=";
          if (r.IsNull(col)) {
            line += "NULL";
          } else if (type.find("int") != std::string::npos) {
            line += std::to_string(r.Int(col));
          } else if (type.find("double") != std::string::npos) {
            const double d = r.Double(col);
            uint64_t bits;
            std::memcpy(&bits, &d, sizeof bits);
            line += std::to_string(bits);
          } else if (type.find("blob") != std::string::npos ||
                     type.find("bytea") != std::string::npos) {
            static const char* kHex = "0123456789abcdef";
            for (unsigned char b : r.Bytes(col)) {
              line += kHex[b >> 4];
              line += kHex[b & 15];
            }
          } else {
            line += std::string(r.Text(col));
          }
        }
        out.push_back(std::move(line));
        return OkStatus();
      }));
    }
    return OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  std::sort(out.begin(), out.end());
  return out;
}

// A store with tracking and registry records holding awkward values.
void Fill(Database& db) {
  ManualClock clock(1'700'000'000'000);
  tracking::TrackingService tracking(db, clock, {});
  auto exp = tracking.CreateExperiment("copy", "", {{"team", "名前 🚀"}});
  ASSERT_TRUE(exp.ok()) << exp.status().ToString();
  tracking::CreateRunRequest req;
  req.experiment_id = *exp;
  req.run_name = "r1";
  auto run = tracking.CreateRun(req);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  const std::string id = run->info.run_id;
  std::vector<tracking::Metric> metrics;
  const double values[] = {0.1 + 0.2,
                           -0.0,
                           1e-310,
                           std::numeric_limits<double>::max(),
                           std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity(),
                           -1.0 / 3.0};
  for (int step = 0; step < 7; ++step) {
    metrics.push_back({"m", values[step], 1'700'000'000'000 + step, step});
  }
  ASSERT_OK(tracking.LogBatch(id, metrics, {{"lr", "0.05"}, {"quote", "it's \"x\"\n"}},
                              {{"t", "\u2028\u00e9"}}));
  registry::RegistryService registry(db, clock);
  ASSERT_TRUE(registry.CreateRegisteredModel("churn", {}, "").ok());
  registry::CreateVersionRequest version;
  version.name = "churn";
  version.source = "runs:/" + id + "/model";
  version.run_id = id;
  auto v = registry.CreateModelVersion(version);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_OK(registry.SetAlias("churn", "champion", "1", {"test", "copy"}));
  // A stored monitoring piece: bytes of every value.
  std::string bytes;
  for (int b = 0; b < 256; ++b) bytes.push_back(static_cast<char>(b));
  ASSERT_OK(db.Write([&](Connection& c) {
    return c.Exec(
        "INSERT INTO window_profiles(model, version, bucket_ms, start_time, row_count, "
        "counted_only, profile, labels_time, updated_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        {Value(std::string_view("churn")), Value(std::string_view("1")), Value(int64_t{900'000}),
         Value(int64_t{1'699'999'100'000}), Value(int64_t{42}), Value(int64_t{0}),
         Value(Blob{bytes}), Value(int64_t{1'700'000'000'000}), Value(int64_t{1'700'000'000'001})});
  }));
}

// The id of experiment "copy".
std::string runs_experiment(Database& db) {
  ManualClock clock(0);
  tracking::TrackingService tracking(db, clock, {});
  auto e = tracking.GetExperimentByName("copy");
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return e.ok() ? e->experiment_id : "";
}

TEST(StoreCopyTest, ThroughAnotherBackendAndBackKeepsEveryValue) {
  TempDir dir;
  auto src = OpenDatabase(dir.SqliteUri("src.db"), {});
  ASSERT_OK(src.status());
  Fill(**src);
  if (HasFailure()) return;

  // The middle store: PostgreSQL when the test server is there.
  const char* admin = std::getenv("KEEL_TEST_POSTGRES_URI");
  const std::string middle_uri =
      admin != nullptr ? dir.PostgresUri(admin) : dir.SqliteUri("middle.db");
  auto middle = OpenDatabase(middle_uri, {});
  ASSERT_OK(middle.status());
  ASSERT_OK_AND_ASSIGN(CopyReport there, CopyStore(**src, **middle));
  const std::vector<std::string> before = Dump(**src);
  EXPECT_EQ(there.rows, static_cast<int64_t>(before.size()));

  auto dst = OpenDatabase(dir.SqliteUri("dst.db"), {});
  ASSERT_OK(dst.status());
  ASSERT_OK_AND_ASSIGN(CopyReport back, CopyStore(**middle, **dst));
  EXPECT_EQ(back.rows, there.rows);
  const std::vector<std::string> after = Dump(**dst);
  EXPECT_EQ(before.size(), after.size());
  EXPECT_EQ(before, after);
  if (admin != nullptr) EXPECT_EQ(Dump(**middle), before);

  // Ids assigned after the copy continue after the copied ones.
  ManualClock clock(1'800'000'000'000);
  tracking::TrackingService tracking(**middle, clock, {});
  tracking::SearchRunsRequest search;
  search.experiment_ids = {runs_experiment(**middle)};
  auto runs = tracking.SearchRuns(search);
  ASSERT_OK(runs.status());
  ASSERT_FALSE(runs->runs.empty());
  const std::string id = runs->runs[0].info.run_id;
  ASSERT_OK(tracking.LogMetric(id, {"m", 2.5, 1'800'000'000'000, 7}));
  auto history = tracking.GetMetricHistory(id, "m", 1000, "");
  ASSERT_OK(history.status());
  EXPECT_EQ(history->metrics.size(), 8u);
  tracking::CreateRunRequest req;
  req.experiment_id = runs->runs[0].info.experiment_id;
  auto second = tracking.CreateRun(req);
  ASSERT_OK(second.status());
  EXPECT_NE(second->info.run_id, id);
}

TEST(StoreCopyTest, RefusesATargetThatHoldsData) {
  TempDir dir;
  auto src = OpenDatabase(dir.SqliteUri("src.db"), {});
  ASSERT_OK(src.status());
  Fill(**src);
  auto dst = OpenDatabase(dir.SqliteUri("dst.db"), {});
  ASSERT_OK(dst.status());
  Fill(**dst);
  auto copied = CopyStore(**src, **dst);
  ASSERT_EQ(copied.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(copied.status().message().find("already holds data"), std::string::npos)
      << copied.status().message();
}

TEST(StoreCopyTest, RefusesDifferentSchemaVersions) {
  TempDir dir;
  auto src = OpenDatabase(dir.SqliteUri("src.db"), {});
  ASSERT_OK(src.status());
  OpenOptions old;
  old.target_schema_version = 1;
  auto dst = OpenDatabase(dir.SqliteUri("dst.db"), old);
  ASSERT_OK(dst.status());
  auto copied = CopyStore(**src, **dst);
  ASSERT_EQ(copied.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(copied.status().message().find("schema versions differ"), std::string::npos);
}

}  // namespace
}  // namespace keel::store
