// Shared helpers for keel's unit tests: temporary directories and a fresh
// SQLite database per test (real files, real migrations).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "keel/core/util.h"
#include "keel/store/store.h"

namespace keel::testing {

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() / ("keel-test-" + RandomHex(8));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string SqliteUri(const std::string& name = "keel.db") const {
    return "sqlite://" + (path_ / name).string();
  }

 private:
  std::filesystem::path path_;
};

inline std::unique_ptr<store::Database> OpenTestDb(const TempDir& dir,
                                                   store::OpenOptions options = {}) {
  auto db = store::OpenDatabase(dir.SqliteUri(), options);
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  return db.ok() ? std::move(*db) : nullptr;
}

// Rows in `table` (-1 and a test failure when the query fails).
inline int64_t CountRows(store::Database& db, const std::string& table) {
  int64_t n = -1;
  Status s = db.Read([&](store::Connection& c) {
    return c.Query("SELECT COUNT(*) FROM " + table, {}, [&](const store::RowView& r) {
      n = r.Int(0);
      return OkStatus();
    });
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return n;
}

#define ASSERT_OK(expr)                                  \
  do {                                                   \
    auto&& keel_s_ = (expr);                             \
    ASSERT_TRUE(keel_s_.ok()) << keel_s_.ToString();     \
  } while (0)

#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                 \
  auto KEEL_CONCAT_(keel_r_, __LINE__) = (expr);                        \
  ASSERT_TRUE(KEEL_CONCAT_(keel_r_, __LINE__).ok())                     \
      << KEEL_CONCAT_(keel_r_, __LINE__).status().ToString();           \
  lhs = std::move(KEEL_CONCAT_(keel_r_, __LINE__)).value()

}  // namespace keel::testing
