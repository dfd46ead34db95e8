// File: keel/store/store.h
//
// The storage seam: one Database interface, backends chosen by URI scheme
// through an open table (see src/store/backends.cc). Domain modules
// (tracking, registry, later the prediction log, monitoring, retraining)
// write portable SQL against it; everything dialect-specific stays behind the
// backend (placeholders are always `?`; migration SQL may use the tokens the
// backend's Dialect expands, e.g. {{WITHOUT_ROWID}}).
//
//   KEEL_ASSIGN_OR_RETURN(auto db, keel::store::OpenDatabase("sqlite:///tmp/k.db", {}));
//   KEEL_RETURN_IF_ERROR(db->Write([&](keel::store::Connection& c) {
//     return c.Exec("INSERT INTO t(a) VALUES (?)", {keel::store::Value(int64_t{1})});
//   }));
//   KEEL_RETURN_IF_ERROR(db->Read([&](keel::store::Connection& c) {
//     return c.Query("SELECT a FROM t", {}, [&](const keel::store::RowView& row) {
//       use(row.Int(0));
//       return keel::OkStatus();
//     });
//   }));
//
// Threads: a Database is shared by all threads. Write() calls are serialised
// (one writer at a time, each a transaction that commits when the callback
// returns OK and rolls back otherwise). Read() calls run concurrently on
// pooled connections, each seeing a consistent snapshot. A Connection is only
// valid inside the callback that received it.
//
// Durability: a Write() that returned OK survives a crash of the process
// (SIGKILL). With OpenOptions::sync = kFull it also survives power loss.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "keel/core/result.h"

namespace keel::store {

// Bytes bound as a BLOB (not text).
struct Blob {
  std::string_view bytes;
};

// A bound parameter. std::monostate binds SQL NULL.
using Value = std::variant<std::monostate, int64_t, double, std::string_view, std::string, Blob>;

// One result row, valid only during the row callback.
class RowView {
 public:
  virtual ~RowView() = default;
  virtual int size() const = 0;
  virtual bool IsNull(int col) const = 0;
  virtual int64_t Int(int col) const = 0;
  virtual double Double(int col) const = 0;
  virtual std::string_view Text(int col) const = 0;
  virtual std::string_view Bytes(int col) const = 0;
};

using RowCallback = std::function<Status(const RowView&)>;

class Connection {
 public:
  virtual ~Connection() = default;
  // Executes one statement. Statements are prepared once per connection and cached.
  virtual Status Exec(std::string_view sql, std::span<const Value> params) = 0;
  Status Exec(std::string_view sql, std::initializer_list<Value> params) {
    return Exec(sql, std::span<const Value>(params.begin(), params.size()));
  }
  // Runs a query, calling `row` per result row; a non-OK return stops early.
  virtual Status Query(std::string_view sql, std::span<const Value> params,
                       const RowCallback& row) = 0;
  Status Query(std::string_view sql, std::initializer_list<Value> params, const RowCallback& row) {
    return Query(sql, std::span<const Value>(params.begin(), params.size()), row);
  }
  // Rows changed by the last Exec.
  virtual int64_t ChangedRows() const = 0;
  // Executes a script of several statements without parameters (migrations).
  virtual Status ExecScript(std::string_view sql) = 0;
  // Inside Write(): tells the store's listeners on `channel`
  // (Database::Listen) that something changed, once the transaction
  // commits; nothing when it rolls back. A no-op on backends without
  // notifications. Channels are lower-case identifiers; payloads short text.
  virtual Status NotifyChange(std::string_view channel, std::string_view payload) {
    (void)channel;
    (void)payload;
    return OkStatus();
  }
};

// What differs between SQL dialects, provided by each backend.
struct Dialect {
  std::string name;  // "sqlite", "postgresql"
  // Expansion of {{WITHOUT_ROWID}} in migrations (clustered primary-key tables).
  std::string without_rowid;
  // Expansion of {{BLOB}}.
  std::string blob_type;
  // Expansion of {{AUTO_ID}}: an auto-assigned BIGINT primary key column.
  std::string auto_id;
  // Catalog queries (CopyStore): the tables, in name order; the columns of
  // table ? as (name, declared type) in order; the auto-assigned columns as
  // (table, column), or "" when the backend needs no counter reset after
  // explicit ids were inserted; that reset, with {table} and {column}.
  std::string list_tables;
  std::string list_columns;
  std::string list_auto_ids;
  std::string reset_auto_id;
};

// Runs on its own thread; see Database::Listen.
using ChangeCallback = std::function<void(std::string_view payload)>;

// A subscription to change notifications; destroying it stops them (and
// waits for a callback in progress).
class ChangeListener {
 public:
  virtual ~ChangeListener() = default;
};

enum class SyncMode {
  kNormal,  // acknowledged writes survive a process crash (SQLite WAL, synchronous=NORMAL)
  kFull,    // acknowledged writes also survive power loss (fsync per commit)
};

struct OpenOptions {
  SyncMode sync = SyncMode::kNormal;
  int read_connections = 4;
  // Apply migrations up to this version only (tests of upgrades); -1 = all.
  int target_schema_version = -1;
};

class Database {
 public:
  virtual ~Database() = default;
  virtual Status Write(const std::function<Status(Connection&)>& fn) = 0;
  virtual Status Read(const std::function<Status(Connection&)>& fn) = 0;
  virtual const Dialect& dialect() const = 0;
  // The URI the database was opened with.
  virtual const std::string& uri() const = 0;
  // Calls `on_change` after each committed NotifyChange on `channel` by any
  // process on this store, on a thread of the listener's own. It is also
  // called with an empty payload ("changes may have been missed: read
  // again") once when the listener starts, and after it reconnects a lost
  // connection (reconnecting may hold the listener's destruction for up to
  // the connect timeout, 10 s).
  // Unimplemented on backends without notifications (SQLite): poll instead.
  // The listener must be destroyed before the database.
  virtual Result<std::unique_ptr<ChangeListener>> Listen(std::string_view channel,
                                                         ChangeCallback on_change) {
    (void)channel;
    (void)on_change;
    return Unimplemented(dialect().name + " stores have no change notifications");
  }
};

// The channel alias changes are announced on (payload: the model's name).
inline constexpr std::string_view kAliasChannel = "keel_aliases";

// Opens (creating if needed) the database at `uri` and applies pending
// schema migrations. Schemes: sqlite:///abs/path, sqlite://rel/path,
// sqlite::memory: (tests). An unknown scheme is InvalidArgument listing the
// known ones.
Result<std::unique_ptr<Database>> OpenDatabase(std::string_view uri, const OpenOptions& options);

// `uri` with any password replaced by "***" (the user info's and a
// password= parameter's), for messages and logs.
std::string RedactUri(std::string_view uri);

// Schema version currently applied to `db` (0 for an empty database).
Result<int> SchemaVersion(Database& db);
// The newest schema version this build knows.
int LatestSchemaVersion();

// Reserves the next value of a named counter inside a write transaction.
Result<int64_t> NextSequenceValue(Connection& conn, std::string_view name);

// CopyStore: every row of every table of `from` into `to` (keel migrate),
// e.g. a single-machine SQLite store into PostgreSQL.
//  - Both must be at the same schema version (OpenDatabase brings both to
//    this build's latest), and `to` must be empty: only what the migrations
//    create (the Default experiment, counters). FailedPrecondition otherwise,
//    naming the table that holds data.
//  - One read snapshot of `from`, one write transaction on `to` (all or
//    nothing); values keep their declared column types (integers, doubles
//    bit for bit, text, bytes), auto-assigned ids are carried over and the
//    target's id counters moved past them.
//  - Afterwards every table's row count is compared (DataLoss on a mismatch).
// `progress` is called per table as rows are copied (rows so far, rows in the
// table) and may be empty.
struct CopyReport {
  std::vector<std::pair<std::string, int64_t>> tables;  // name, rows copied
  int64_t rows = 0;
};
using CopyProgress = std::function<void(std::string_view table, int64_t copied, int64_t total)>;
[[nodiscard]] Result<CopyReport> CopyStore(Database& from, Database& to,
                                           const CopyProgress& progress = {});

}  // namespace keel::store
