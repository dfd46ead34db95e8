#include "keel/store/store.h"

#include <string>

#include "keel/core/clock.h"
#include "src/store/backend.h"
#include "src/store/migrations.h"

namespace keel::store {
namespace {

std::string ExpandDialect(std::string sql, const Dialect& d) {
  auto replace_all = [&sql](std::string_view token, const std::string& with) {
    for (size_t pos = sql.find(token); pos != std::string::npos; pos = sql.find(token, pos)) {
      sql.replace(pos, token.size(), with);
      pos += with.size();
    }
  };
  replace_all("{{WITHOUT_ROWID}}", d.without_rowid);
  replace_all("{{BLOB}}", d.blob_type);
  replace_all("{{AUTO_ID}}", d.auto_id);
  return sql;
}

}  // namespace

namespace internal {

Status Migrate(Database& db, int target) {
  KEEL_RETURN_IF_ERROR(db.Write([](Connection& c) {
    return c.ExecScript(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)");
  }));
  KEEL_ASSIGN_OR_RETURN(int current, SchemaVersion(db));
  const auto migrations = Migrations();
  int latest = static_cast<int>(migrations.size());
  if (current > latest) {
    return FailedPrecondition("database schema version " + std::to_string(current) +
                              " is newer than this keel build supports (" + std::to_string(latest) +
                              "); upgrade keel");
  }
  for (const Migration& m : migrations) {
    if (m.version <= current) continue;
    if (target >= 0 && m.version > target) break;
    Status s = db.Write([&](Connection& c) -> Status {
      // Another process may have applied it since we looked: check under the write lock.
      bool applied = false;
      KEEL_RETURN_IF_ERROR(c.Query("SELECT 1 FROM schema_migrations WHERE version = ?",
                                   {Value(int64_t{m.version})}, [&](const RowView&) {
                                     applied = true;
                                     return OkStatus();
                                   }));
      if (applied) return OkStatus();
      KEEL_RETURN_IF_ERROR(c.ExecScript(ExpandDialect(std::string(m.sql), db.dialect())));
      return c.Exec(
          "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
          {Value(int64_t{m.version}), Value(m.name), Value(SystemClock::Default().NowMillis())});
    });
    if (!s.ok()) {
      return s.WithContext("migration " + std::to_string(m.version) + " (" + std::string(m.name) +
                           ")");
    }
  }
  return OkStatus();
}

}  // namespace internal

std::string RedactUri(std::string_view uri) {
  std::string out(uri);
  const size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    const size_t start = scheme + 3;
    size_t end = out.find_first_of("/?", start);
    if (end == std::string::npos) end = out.size();
    // The last '@' of the authority ends the user info (a password may hold
    // an unencoded '@').
    const size_t at = out.rfind('@', end - 1);
    if (at != std::string::npos && at >= start) {
      const size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  for (size_t p = out.find("password="); p != std::string::npos; p = out.find("password=", p + 1)) {
    if (p > 0 && out[p - 1] != '?' && out[p - 1] != '&' && out[p - 1] != ' ') continue;
    const size_t value = p + 9;
    size_t end = out.find_first_of("& ", value);
    if (end == std::string::npos) end = out.size();
    out.replace(value, end - value, "***");
  }
  return out;
}

int LatestSchemaVersion() { return static_cast<int>(internal::Migrations().size()); }

Result<int> SchemaVersion(Database& db) {
  int version = 0;
  KEEL_RETURN_IF_ERROR(db.Read([&](Connection& c) {
    return c.Query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", {},
                   [&](const RowView& row) {
                     version = static_cast<int>(row.Int(0));
                     return OkStatus();
                   });
  }));
  return version;
}

Result<int64_t> NextSequenceValue(Connection& conn, std::string_view name) {
  KEEL_RETURN_IF_ERROR(
      conn.Exec("INSERT INTO sequences(name, value) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
                {Value(name)}));
  int64_t value = -1;
  KEEL_RETURN_IF_ERROR(
      conn.Query("UPDATE sequences SET value = value + 1 WHERE name = ? "
                 "RETURNING value",
                 {Value(name)}, [&](const RowView& row) {
                   value = row.Int(0);
                   return OkStatus();
                 }));
  if (value < 0) return Internal("sequence " + std::string(name) + " did not advance");
  return value;
}

Result<std::unique_ptr<Database>> OpenDatabase(std::string_view uri, const OpenOptions& options) {
  size_t colon = uri.find(':');
  std::string_view scheme = colon == std::string_view::npos ? uri : uri.substr(0, colon);
  std::string known;
  for (const auto& backend : internal::Backends()) {
    if (backend.scheme == scheme) {
      KEEL_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, backend.open(uri, options));
      KEEL_RETURN_IF_ERROR(internal::Migrate(*db, options.target_schema_version));
      return db;
    }
    known += (known.empty() ? "" : ", ") + std::string(backend.scheme) + "://";
  }
  return InvalidArgument("unsupported store URI '" + std::string(uri) +
                         "' (known schemes: " + known + ")");
}

}  // namespace keel::store
