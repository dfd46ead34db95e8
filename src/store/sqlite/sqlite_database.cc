// SQLite backend: one write connection (serialised by write_mu_) and a pool of
// read connections, WAL journal, prepared statements cached per connection.
#include <sqlite3.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "src/store/backend.h"
#include "src/store/pool.h"

namespace keel::store::internal {
namespace {

class SqliteRow final : public RowView {
 public:
  explicit SqliteRow(sqlite3_stmt* stmt) : stmt_(stmt) {}
  int size() const override { return sqlite3_column_count(stmt_); }
  bool IsNull(int col) const override { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int64_t Int(int col) const override { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const override { return sqlite3_column_double(stmt_, col); }
  std::string_view Text(int col) const override {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    if (p == nullptr) return {};
    return std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  std::string_view Bytes(int col) const override {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
    if (p == nullptr) return {};
    return std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }

 private:
  sqlite3_stmt* stmt_;
};

class SqliteConnection final : public Connection {
 public:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  ~SqliteConnection() override {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  Status Exec(std::string_view sql, std::span<const Value> params) override {
    sqlite3_stmt* stmt = nullptr;
    KEEL_RETURN_IF_ERROR(Prepare(sql, params, &stmt));
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) return Error(rc, sql);
    return OkStatus();
  }

  Status Query(std::string_view sql, std::span<const Value> params,
               const RowCallback& row) override {
    sqlite3_stmt* stmt = nullptr;
    KEEL_RETURN_IF_ERROR(Prepare(sql, params, &stmt));
    SqliteRow view(stmt);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      Status s = row(view);
      if (!s.ok()) {
        sqlite3_reset(stmt);
        return s;
      }
    }
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) return Error(rc, sql);
    return OkStatus();
  }

  int64_t ChangedRows() const override { return sqlite3_changes64(db_); }

  Status ExecScript(std::string_view sql) override {
    std::string copy(sql);
    char* err = nullptr;
    int rc = sqlite3_exec(db_, copy.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      return Internal("sqlite: " + msg);
    }
    return OkStatus();
  }

  Status Error(int rc, std::string_view sql) const {
    std::string msg = std::string("sqlite: ") + sqlite3_errmsg(db_) + " [" +
                      std::string(sql.substr(0, 120)) + "]";
    int primary = rc & 0xff;
    if (primary == SQLITE_CONSTRAINT) return Status(StatusCode::kAlreadyExists, msg);
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) return Unavailable(msg);
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) return DataLoss(msg);
    return Internal(msg);
  }

  sqlite3* raw() { return db_; }

 private:
  Status Prepare(std::string_view sql, std::span<const Value> params, sqlite3_stmt** out) {
    auto it = cache_.find(sql);
    sqlite3_stmt* stmt;
    if (it != cache_.end()) {
      stmt = it->second;
    } else {
      int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                  SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) return Error(rc, sql);
      // Dynamic SQL (search) varies per call: cache only a bounded number.
      if (cache_.size() > 512) {
        for (auto& [k, v] : cache_) sqlite3_finalize(v);
        cache_.clear();
      }
      cache_.emplace(std::string(sql), stmt);
    }
    sqlite3_clear_bindings(stmt);
    int n = sqlite3_bind_parameter_count(stmt);
    if (n != static_cast<int>(params.size())) {
      return Internal("sqlite: statement wants " + std::to_string(n) + " parameters, got " +
                      std::to_string(params.size()) + " [" + std::string(sql.substr(0, 120)) + "]");
    }
    for (int i = 0; i < n; ++i) {
      const Value& v = params[static_cast<size_t>(i)];
      int rc = SQLITE_OK;
      if (std::holds_alternative<int64_t>(v)) {
        rc = sqlite3_bind_int64(stmt, i + 1, std::get<int64_t>(v));
      } else if (std::holds_alternative<double>(v)) {
        rc = sqlite3_bind_double(stmt, i + 1, std::get<double>(v));
      } else if (std::holds_alternative<std::string_view>(v)) {
        auto sv = std::get<std::string_view>(v);
        rc = sqlite3_bind_text64(stmt, i + 1, sv.data(), sv.size(), SQLITE_STATIC, SQLITE_UTF8);
      } else if (std::holds_alternative<std::string>(v)) {
        const auto& s = std::get<std::string>(v);
        rc = sqlite3_bind_text64(stmt, i + 1, s.data(), s.size(), SQLITE_STATIC, SQLITE_UTF8);
      } else if (std::holds_alternative<Blob>(v)) {
        auto b = std::get<Blob>(v).bytes;
        rc = sqlite3_bind_blob64(stmt, i + 1, b.data(), b.size(), SQLITE_STATIC);
      } else {
        rc = sqlite3_bind_null(stmt, i + 1);
      }
      if (rc != SQLITE_OK) return Error(rc, sql);
    }
    *out = stmt;
    return OkStatus();
  }

  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*, Hash, std::equal_to<>> cache_;
};

class SqliteDatabase final : public Database {
 public:
  SqliteDatabase(std::string uri, Dialect dialect) : uri_(std::move(uri)), dialect_(dialect) {}

  Status Init(const std::string& path, const OpenOptions& options) {
    bool memory = path == ":memory:";
    std::string open_path = memory ? "file:keelmem" +
                                         std::to_string(reinterpret_cast<uintptr_t>(this)) +
                                         "?mode=memory&cache=shared"
                                   : path;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
    KEEL_ASSIGN_OR_RETURN(writer_, OpenOne(open_path, flags));
    std::string sync = options.sync == SyncMode::kFull ? "FULL" : "NORMAL";
    KEEL_RETURN_IF_ERROR(
        writer_->ExecScript((memory ? std::string() : std::string("PRAGMA journal_mode=WAL;")) +
                            "PRAGMA synchronous=" + sync + ";"));
    int readers = std::max(1, options.read_connections);
    for (int i = 0; i < readers; ++i) {
      KEEL_ASSIGN_OR_RETURN(auto conn, OpenOne(open_path, flags));
      readers_.Add(std::move(conn));
    }
    return OkStatus();
  }

  Status Write(const std::function<Status(Connection&)>& fn) override {
    std::lock_guard<std::mutex> lock(write_mu_);
    KEEL_RETURN_IF_ERROR(writer_->Exec("BEGIN IMMEDIATE", {}));
    Status s = CallInTransaction(fn, *writer_, "write");
    if (!s.ok()) {
      writer_->Exec("ROLLBACK", {}).IgnoreError();
      return s;
    }
    Status c = writer_->Exec("COMMIT", {});
    if (!c.ok()) writer_->Exec("ROLLBACK", {}).IgnoreError();
    return c;
  }

  Status Read(const std::function<Status(Connection&)>& fn) override {
    return readers_.With([&](SqliteConnection& conn) {
      Status s = conn.Exec("BEGIN", {});
      if (!s.ok()) return s;
      s = CallInTransaction(fn, conn, "read");
      conn.Exec("COMMIT", {}).IgnoreError();
      return s;
    });
  }

  const Dialect& dialect() const override { return dialect_; }
  const std::string& uri() const override { return uri_; }

 private:
  static Result<std::unique_ptr<SqliteConnection>> OpenOne(const std::string& path, int flags) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
      sqlite3_close_v2(db);
      return Unavailable("cannot open sqlite database '" + path + "': " + msg);
    }
    sqlite3_busy_timeout(db, 10000);
    auto conn = std::make_unique<SqliteConnection>(db);
    // LIKE is case-sensitive as in PostgreSQL; ILIKE is spelled LOWER(x) LIKE LOWER(y).
    KEEL_RETURN_IF_ERROR(conn->ExecScript(
        "PRAGMA case_sensitive_like=ON; PRAGMA foreign_keys=OFF; PRAGMA mmap_size=268435456; "
        "PRAGMA temp_store=MEMORY;"));
    return conn;
  }

  std::string uri_;
  Dialect dialect_;
  std::mutex write_mu_;                       // guards writer_ use
  std::unique_ptr<SqliteConnection> writer_;  // owned; used under write_mu_
  ReaderPool<SqliteConnection> readers_;      // fixed after Init
};

}  // namespace

Result<std::unique_ptr<Database>> OpenSqlite(std::string_view uri, const OpenOptions& options) {
  // sqlite:///abs/path, sqlite://rel/path, sqlite::memory:
  std::string_view rest = uri.substr(std::string_view("sqlite:").size());
  std::string path;
  if (rest == ":memory:" || rest == "//:memory:") {
    path = ":memory:";
  } else if (rest.starts_with("//")) {
    path = std::string(rest.substr(2));
  } else {
    return InvalidArgument(
        "sqlite URI must look like sqlite:///abs/path or sqlite://rel/path, got '" +
        std::string(uri) + "'");
  }
  if (path.empty()) return InvalidArgument("sqlite URI has no path: '" + std::string(uri) + "'");
  if (path != ":memory:") {
    std::error_code ec;
    auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) return Unavailable("cannot create directory " + parent.string() + ": " + ec.message());
  }
  Dialect dialect;
  dialect.name = "sqlite";
  dialect.without_rowid = "WITHOUT ROWID";
  dialect.blob_type = "BLOB";
  dialect.auto_id = "INTEGER PRIMARY KEY";
  dialect.list_tables =
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
      "ORDER BY name";
  dialect.list_columns = "SELECT name, type FROM pragma_table_info(?) ORDER BY cid";
  // INTEGER PRIMARY KEY columns continue after their largest value by themselves.
  auto db = std::make_unique<SqliteDatabase>(std::string(uri), std::move(dialect));
  KEEL_RETURN_IF_ERROR(db->Init(path, options));
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace keel::store::internal
