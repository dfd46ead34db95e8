// Shared helpers for keel's unit tests: temporary directories and a fresh
// database per test (real files or a real server, real migrations).
//
// OpenTestDb opens a fresh SQLite file by default. With KEEL_TEST_STORE=
// postgresql it creates a fresh database on the PostgreSQL server that
// KEEL_TEST_POSTGRES_URI names (scripts/pg-test-server.sh), one per TempDir
// (opening it twice opens the same database), dropped with the TempDir: the
// store conformance run
// (tests/CMakeLists.txt, unit_on_postgresql) runs the store-backed suites so.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "keel/core/util.h"
#include "keel/store/store.h"

namespace keel::testing {

// Runs one statement outside a transaction on the server `uri` names.
inline void PostgresAdmin(const std::string& uri, const std::string& sql) {
  PGconn* conn = PQconnectdb(uri.c_str());
  EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << uri << ": " << PQerrorMessage(conn);
  PGresult* r = PQexec(conn, sql.c_str());
  EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << sql << ": " << PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(conn);
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() / ("keel-test-" + RandomHex(8));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (!pg_name_.empty()) {
      PostgresAdmin(pg_admin_, "DROP DATABASE IF EXISTS " + pg_name_ + " WITH (FORCE)");
    }
  }
  const std::filesystem::path& path() const { return path_; }
  std::string SqliteUri(const std::string& name = "keel.db") const {
    return "sqlite://" + (path_ / name).string();
  }
  // A database of this directory's own on the PostgreSQL server `admin_uri`
  // names: created on the first call, dropped with the directory.
  std::string PostgresUri(const std::string& admin_uri) const {
    if (pg_name_.empty()) {
      pg_admin_ = admin_uri;
      pg_name_ = "keel_test_" + RandomHex(8);
      PostgresAdmin(pg_admin_, "CREATE DATABASE " + pg_name_);
    }
    const size_t slash = pg_admin_.find('/', pg_admin_.find("://") + 3);
    return (slash == std::string::npos ? pg_admin_ : pg_admin_.substr(0, slash)) + "/" + pg_name_;
  }

 private:
  std::filesystem::path path_;
  mutable std::string pg_admin_;
  mutable std::string pg_name_;
};

inline bool TestsOnPostgres() {
  const char* store = std::getenv("KEEL_TEST_STORE");
  return store != nullptr && std::string(store) == "postgresql";
}

// The store URI of `dir`'s test: its SQLite file, or on PostgreSQL its own
// database (created on first use, dropped with `dir`).
inline std::string TestStoreUri(const TempDir& dir) {
  if (!TestsOnPostgres()) return dir.SqliteUri();
  const char* admin = std::getenv("KEEL_TEST_POSTGRES_URI");
  EXPECT_NE(admin, nullptr)
      << "KEEL_TEST_STORE=postgresql needs KEEL_TEST_POSTGRES_URI: run scripts/test.sh, or start "
         "a server with scripts/pg-test-server.sh start DIR and export the URI it prints";
  if (admin == nullptr) return "postgresql://unset";
  return dir.PostgresUri(admin);
}

inline std::unique_ptr<store::Database> OpenTestDb(const TempDir& dir,
                                                   store::OpenOptions options = {}) {
  auto db = store::OpenDatabase(TestStoreUri(dir), options);
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

// `expr` is a Status; it is copied, so f().status() of a temporary Result
// is safe.
#define ASSERT_OK(expr)                              \
  do {                                               \
    const ::keel::Status keel_s_ = (expr);           \
    ASSERT_TRUE(keel_s_.ok()) << keel_s_.ToString(); \
  } while (0)

#define ASSERT_OK_AND_ASSIGN(lhs, expr)                       \
  auto KEEL_CONCAT_(keel_r_, __LINE__) = (expr);              \
  ASSERT_TRUE(KEEL_CONCAT_(keel_r_, __LINE__).ok())           \
      << KEEL_CONCAT_(keel_r_, __LINE__).status().ToString(); \
  lhs = std::move(KEEL_CONCAT_(keel_r_, __LINE__)).value()

}  // namespace keel::testing
