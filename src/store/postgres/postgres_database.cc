// PostgreSQL backend (libpq): one write connection, serialised in this process
// by write_mu_ and across processes by a transaction-scoped advisory lock, so
// Write() keeps SQLite's one-writer-at-a-time semantics on a database shared
// by several keel replicas; a pool of read connections, each Read() one
// REPEATABLE READ, READ ONLY transaction (a consistent snapshot).
//
// Statements: `?` placeholders are rewritten to $1..$n (outside quotes),
// prepared once per connection (at most kMaxPrepared, then the cache is
// dropped) with their parameter types left to the server to infer from the
// context, and run with text parameters (bytea in binary) and text results.
// A broken connection is reset before its next use.
//
// Change notifications: NotifyChange is pg_notify (delivered at commit);
// Listen opens one more connection that LISTENs, watched by a thread of its
// own (PgListener).
#include <libpq-fe.h>
#include <poll.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "src/store/backend.h"
#include "src/store/pool.h"

namespace keel::store::internal {
namespace {

constexpr size_t kMaxPrepared = 512;
constexpr Oid kByteaOid = 17;
// pg_advisory_xact_lock key of Write(): "keel" in ASCII.
constexpr int64_t kWriteLockKey = 0x6b65656c;

// `?` -> `$n`, leaving quoted strings, quoted identifiers and comments alone.
std::string NumberPlaceholders(std::string_view sql, int* count) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (c == '\'' || c == '"') {
      const size_t end = sql.find(c, i + 1);
      const size_t stop = end == std::string_view::npos ? sql.size() : end + 1;
      out.append(sql.substr(i, stop - i));
      i = stop - 1;
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      const size_t end = sql.find('\n', i);
      const size_t stop = end == std::string_view::npos ? sql.size() : end;
      out.append(sql.substr(i, stop - i));
      i = stop - 1;
    } else if (c == '?') {
      out += '$';
      out += std::to_string(++n);
    } else {
      out += c;
    }
  }
  *count = n;
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class PgRow final : public RowView {
 public:
  PgRow(const PGresult* result, int row)
      : result_(result), row_(row), decoded_(static_cast<size_t>(PQnfields(result))) {}
  int size() const override { return PQnfields(result_); }
  bool IsNull(int col) const override { return PQgetisnull(result_, row_, col) != 0; }
  int64_t Int(int col) const override {
    const std::string_view t = Text(col);
    if (t == "t") return 1;  // booleans
    if (t == "f") return 0;
    int64_t v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec == std::errc() && p == t.data() + t.size()) return v;
    // A numeric or float text (e.g. an AVG): truncated as SQLite's column_int64
    // does, clamped to the int64 range (NaN is 0).
    const double d = Double(col);
    if (!(d == d)) return 0;
    if (d >= 9.2233720368547758e18) return std::numeric_limits<int64_t>::max();
    if (d <= -9.2233720368547758e18) return std::numeric_limits<int64_t>::min();
    return static_cast<int64_t>(d);
  }
  double Double(int col) const override {
    const std::string_view t = Text(col);
    if (t.empty()) return 0.0;
    // strtod reads "NaN", "Infinity" and "-Infinity" as PostgreSQL writes them.
    return std::strtod(std::string(t).c_str(), nullptr);
  }
  std::string_view Text(int col) const override {
    if (PQgetisnull(result_, row_, col)) return {};
    return std::string_view(PQgetvalue(result_, row_, col),
                            static_cast<size_t>(PQgetlength(result_, row_, col)));
  }
  std::string_view Bytes(int col) const override {
    const std::string_view t = Text(col);
    if (PQftype(result_, col) != kByteaOid || !t.starts_with("\\x")) return t;
    std::string& out = decoded_[static_cast<size_t>(col)];  // sized per column: views stay valid
    out.clear();
    out.reserve((t.size() - 2) / 2);
    for (size_t i = 2; i + 1 < t.size(); i += 2) {
      out += static_cast<char>(HexDigit(t[i]) * 16 + HexDigit(t[i + 1]));
    }
    return out;
  }

 private:
  const PGresult* result_;
  int row_;
  mutable std::vector<std::string> decoded_;  // bytea columns of this row, decoded on demand
};

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

class PgConnection final : public Connection {
 public:
  explicit PgConnection(PGconn* conn) : conn_(conn) {}
  ~PgConnection() override { PQfinish(conn_); }

  Status Exec(std::string_view sql, std::span<const Value> params) override {
    KEEL_ASSIGN_OR_RETURN(ResultPtr r, Run(sql, params));
    const char* tuples = PQcmdTuples(r.get());
    changed_ = (tuples != nullptr && *tuples != '\0') ? std::strtoll(tuples, nullptr, 10) : 0;
    return OkStatus();
  }

  Status Query(std::string_view sql, std::span<const Value> params,
               const RowCallback& row) override {
    KEEL_ASSIGN_OR_RETURN(ResultPtr r, Run(sql, params));
    const int rows = PQntuples(r.get());
    for (int i = 0; i < rows; ++i) {
      PgRow view(r.get(), i);
      KEEL_RETURN_IF_ERROR(row(view));
    }
    return OkStatus();
  }

  int64_t ChangedRows() const override { return changed_; }

  Status ExecScript(std::string_view sql) override {
    ResultPtr r(PQexec(conn_, std::string(sql).c_str()));
    return Check(r.get(), sql);
  }

  Status NotifyChange(std::string_view channel, std::string_view payload) override {
    const Value params[] = {Value(channel), Value(payload)};
    return Exec("SELECT pg_notify(?, ?)", std::span<const Value>(params));
  }

  bool InFailedTransaction() const { return PQtransactionStatus(conn_) == PQTRANS_INERROR; }

  // Resets a connection the server or network dropped (its prepared statements go with it).
  void EnsureConnected() {
    if (PQstatus(conn_) == CONNECTION_OK) return;
    PQreset(conn_);
    prepared_.clear();
  }

 private:
  struct Prepared {
    std::string name;
    int params = 0;
  };

  Result<ResultPtr> Run(std::string_view sql, std::span<const Value> params) {
    auto it = prepared_.find(sql);
    if (it == prepared_.end()) {
      if (prepared_.size() >= kMaxPrepared) {
        ResultPtr d(PQexec(conn_, "DEALLOCATE ALL"));
        KEEL_RETURN_IF_ERROR(Check(d.get(), "DEALLOCATE ALL"));
        prepared_.clear();
      }
      Prepared p;
      const std::string text = NumberPlaceholders(sql, &p.params);
      p.name = "k" + std::to_string(next_statement_++);
      ResultPtr r(PQprepare(conn_, p.name.c_str(), text.c_str(), 0, nullptr));
      KEEL_RETURN_IF_ERROR(Check(r.get(), sql));
      it = prepared_.emplace(std::string(sql), std::move(p)).first;
    }
    const Prepared& p = it->second;
    if (p.params != static_cast<int>(params.size())) {
      return Internal("postgresql: statement wants " + std::to_string(p.params) +
                      " parameters, got " + std::to_string(params.size()) + " [" +
                      std::string(sql.substr(0, 120)) + "]");
    }
    std::vector<std::string> texts(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    std::vector<int> lengths(params.size(), 0);
    std::vector<int> formats(params.size(), 0);
    for (size_t i = 0; i < params.size(); ++i) {
      const Value& v = params[i];
      if (const auto* n = std::get_if<int64_t>(&v)) {
        texts[i] = std::to_string(*n);
      } else if (const auto* d = std::get_if<double>(&v)) {
        if (std::isnan(*d)) {
          texts[i] = "NaN";
        } else if (std::isinf(*d)) {
          texts[i] = *d > 0 ? "Infinity" : "-Infinity";
        } else if (*d == std::trunc(*d) && std::fabs(*d) < 9.0e15) {
          // Integral: as an integer, which a parameter the server infers as
          // bigint (e.g. compared with a BIGINT column) also reads.
          texts[i] = std::to_string(static_cast<int64_t>(*d));
          if (*d == 0 && std::signbit(*d)) texts[i] = "-0";
        } else {
          char buf[32];
          auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *d);  // shortest round trip
          texts[i].assign(buf, end);
        }
      } else if (const auto* sv = std::get_if<std::string_view>(&v)) {
        KEEL_RETURN_IF_ERROR(CheckText(*sv, i));
        texts[i].assign(*sv);
      } else if (const auto* s = std::get_if<std::string>(&v)) {
        KEEL_RETURN_IF_ERROR(CheckText(*s, i));
        values[i] = s->c_str();
        continue;
      } else if (const auto* b = std::get_if<Blob>(&v)) {
        values[i] = b->bytes.data() != nullptr ? b->bytes.data() : "";
        lengths[i] = static_cast<int>(b->bytes.size());
        formats[i] = 1;
        continue;
      } else {
        continue;  // NULL
      }
      values[i] = texts[i].c_str();
    }
    ResultPtr r(PQexecPrepared(conn_, p.name.c_str(), static_cast<int>(params.size()),
                               values.data(), lengths.data(), formats.data(), 0));
    KEEL_RETURN_IF_ERROR(Check(r.get(), sql));
    return r;
  }

  // PostgreSQL text holds no U+0000: such a value is refused, not cut at the NUL.
  static Status CheckText(std::string_view text, size_t index) {
    if (text.find('\0') == std::string_view::npos) return OkStatus();
    return InvalidArgument(
        "a text value holds the NUL character (U+0000), which a "
        "PostgreSQL store cannot keep (parameter " +
        std::to_string(index + 1) + ")");
  }

  Status Check(const PGresult* r, std::string_view sql) const {
    const ExecStatusType st = r == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
      return OkStatus();
    }
    const char* state = r == nullptr ? nullptr : PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const std::string_view code = state == nullptr ? "" : state;
    // The primary message only: the detail may quote row values (a key that
    // already exists), which must not reach an API client.
    const char* primary = r == nullptr ? nullptr : PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    std::string msg = primary != nullptr ? primary : PQerrorMessage(conn_);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    msg = "postgresql: " + msg + " [" + std::string(sql.substr(0, 120)) + "]";
    if (code.starts_with("23")) return Status(StatusCode::kAlreadyExists, msg);  // integrity
    if (code == "40001" || code == "40P01" || code.starts_with("08") || code.starts_with("53") ||
        code.starts_with("57") || PQstatus(conn_) != CONNECTION_OK) {
      return Unavailable(msg);  // serialization, deadlock, connection, resources, shutdown
    }
    if (code == "XX001" || code == "XX002") return DataLoss(msg);
    return Internal(msg);
  }

  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  PGconn* conn_;
  std::unordered_map<std::string, Prepared, Hash, std::equal_to<>> prepared_;
  uint64_t next_statement_ = 0;
  int64_t changed_ = 0;
};

// A connection that LISTENs on one channel; its thread calls the callback per
// notification. Owns the connection (used by the thread only) and the thread;
// stop_ is the only state shared with the destructor.
class PgListener final : public ChangeListener {
 public:
  using Connect = std::function<Result<PGconn*>()>;
  PgListener(Connect connect, std::string channel, ChangeCallback on_change)
      : connect_(std::move(connect)),
        channel_(std::move(channel)),
        on_change_(std::move(on_change)) {}
  ~PgListener() override {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    if (conn_ != nullptr) PQfinish(conn_);
  }

  Status Start() {
    KEEL_RETURN_IF_ERROR(Subscribe());
    thread_ = std::thread([this] { Loop(); });
    return OkStatus();
  }

 private:
  Status Subscribe() {
    if (conn_ != nullptr) {
      PQfinish(conn_);
      conn_ = nullptr;
    }
    KEEL_ASSIGN_OR_RETURN(conn_, connect_());
    const std::string sql = "LISTEN \"" + channel_ + "\"";
    PGresult* r = PQexec(conn_, sql.c_str());
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) return Unavailable(std::string("postgresql: LISTEN failed: ") + PQerrorMessage(conn_));
    return OkStatus();
  }

  void Loop() {
    // A change made between the caller's first read and the LISTEN would
    // otherwise wait for the next poll: one call at the start covers it.
    on_change_("");
    bool broken = false;
    while (!stop_.load()) {
      if (broken) {
        // Reconnect every second; a change may have been missed meanwhile.
        for (int i = 0; i < 4 && !stop_.load(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(250));
        }
        if (stop_.load() || !Subscribe().ok()) continue;
        broken = false;
        on_change_("");
      }
      pollfd fd{PQsocket(conn_), POLLIN, 0};
      const int ready = ::poll(&fd, 1, 250);  // stop_ is checked at least this often
      if (ready < 0 && errno != EINTR) {
        broken = true;
        continue;
      }
      if (ready <= 0) continue;
      if (PQconsumeInput(conn_) == 0 || PQstatus(conn_) != CONNECTION_OK) {
        broken = true;
        continue;
      }
      while (PGnotify* n = PQnotifies(conn_)) {
        on_change_(n->extra != nullptr ? n->extra : "");
        PQfreemem(n);
      }
    }
  }

  Connect connect_;
  std::string channel_;
  ChangeCallback on_change_;
  PGconn* conn_ = nullptr;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class PgDatabase final : public Database {
 public:
  explicit PgDatabase(std::string uri) : uri_(std::move(uri)) {
    dialect_.name = "postgresql";
    dialect_.blob_type = "BYTEA";
    dialect_.auto_id = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY";
    dialect_.list_tables =
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_type = 'BASE TABLE' ORDER BY table_name";
    dialect_.list_columns =
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = ? ORDER BY ordinal_position";
    dialect_.list_auto_ids =
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND is_identity = 'YES' ORDER BY table_name";
    dialect_.reset_auto_id =
        "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
        "COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)";
  }

  Status Init(const OpenOptions& options) {
    KEEL_ASSIGN_OR_RETURN(writer_, OpenOne(options));
    const int readers = std::max(1, options.read_connections);
    for (int i = 0; i < readers; ++i) {
      KEEL_ASSIGN_OR_RETURN(auto conn, OpenOne(options));
      readers_.Add(std::move(conn));
    }
    return OkStatus();
  }

  Status Write(const std::function<Status(Connection&)>& fn) override {
    std::lock_guard<std::mutex> lock(write_mu_);
    writer_->EnsureConnected();
    KEEL_RETURN_IF_ERROR(writer_->ExecScript("BEGIN"));
    Connection& writer = *writer_;
    Status s = writer.Exec("SELECT pg_advisory_xact_lock(?)", {Value(kWriteLockKey)});
    if (s.ok()) s = CallInTransaction(fn, *writer_, "write");
    if (s.ok() && writer_->InFailedTransaction()) {
      // A statement failed and the callback went on: PostgreSQL would turn
      // the COMMIT into a ROLLBACK. Say so instead of reporting success.
      s = Internal("postgresql: a statement of the write transaction failed; rolled back");
    }
    if (!s.ok()) {
      writer_->ExecScript("ROLLBACK").IgnoreError();
      return s;
    }
    Status c = writer_->ExecScript("COMMIT");
    if (!c.ok()) writer_->ExecScript("ROLLBACK").IgnoreError();
    return c;
  }

  Status Read(const std::function<Status(Connection&)>& fn) override {
    return readers_.With([&](PgConnection& conn) {
      conn.EnsureConnected();
      Status s = conn.ExecScript("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
      if (!s.ok()) return s;
      s = CallInTransaction(fn, conn, "read");
      conn.ExecScript(s.ok() ? "COMMIT" : "ROLLBACK").IgnoreError();
      return s;
    });
  }

  const Dialect& dialect() const override { return dialect_; }
  const std::string& uri() const override { return uri_; }

  Result<std::unique_ptr<ChangeListener>> Listen(std::string_view channel,
                                                 ChangeCallback on_change) override {
    if (channel.empty() || channel.size() > 63 ||
        channel.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") !=
            std::string_view::npos) {
      return InvalidArgument("a notification channel is a lower-case identifier, got '" +
                             std::string(channel) + "'");
    }
    auto listener = std::make_unique<PgListener>([this] { return ConnectRaw(); },
                                                 std::string(channel), std::move(on_change));
    KEEL_RETURN_IF_ERROR(listener->Start());
    return std::unique_ptr<ChangeListener>(std::move(listener));
  }

 private:
  Result<std::unique_ptr<PgConnection>> OpenOne(const OpenOptions& options) {
    (void)options;
    KEEL_ASSIGN_OR_RETURN(PGconn * conn, ConnectRaw());
    return std::make_unique<PgConnection>(conn);
  }

  Result<PGconn*> ConnectRaw() {
    // The session settings travel with the connection parameters, so a
    // reset connection (PQreset) gets them again: UTC, UTF-8, commits that
    // wait for the WAL flush (a server crash keeps acknowledged writes),
    // bytea in hex and doubles in their shortest exact form (what PgRow
    // reads), and a session idle inside a transaction for 60 s (a hung
    // replica holding the write lock) ended by the server. TCP keepalives
    // notice a vanished peer within about 30 s.
    const char* keys[] = {"dbname",           "options",         "client_encoding",
                          "keepalives",       "keepalives_idle", "keepalives_interval",
                          "keepalives_count", "connect_timeout", nullptr};
    const char* values[] = {uri_.c_str(),
                            "-c TimeZone=UTC -c synchronous_commit=on -c bytea_output=hex "
                            "-c extra_float_digits=1 -c client_min_messages=warning "
                            "-c idle_in_transaction_session_timeout=60000",
                            "UTF8",
                            "1",
                            "10",
                            "5",
                            "4",
                            "10",
                            nullptr};
    PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
      std::string msg = conn ? PQerrorMessage(conn) : "out of memory";
      PQfinish(conn);
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
      // One line: libpq's hint lines are joined.
      for (size_t nl = msg.find('\n'); nl != std::string::npos; nl = msg.find('\n', nl)) {
        size_t end = nl + 1;
        while (end < msg.size() && (msg[end] == '\t' || msg[end] == ' ')) ++end;
        msg.replace(nl, end - nl, "; ");
      }
      return Unavailable("cannot connect to " + RedactUri(uri_) + ": " + msg);
    }
    return conn;
  }

  std::string uri_;
  Dialect dialect_;
  std::mutex write_mu_;                   // guards writer_ use
  std::unique_ptr<PgConnection> writer_;  // owned; used under write_mu_
  ReaderPool<PgConnection> readers_;      // fixed after Init
};

}  // namespace

Result<std::unique_ptr<Database>> OpenPostgres(std::string_view uri, const OpenOptions& options) {
  // postgresql://user[:password]@host[:port]/db[?param=value...], as libpq reads it.
  if (!uri.starts_with("postgresql://") && !uri.starts_with("postgres://")) {
    return InvalidArgument("postgresql URI must look like postgresql://user@host:port/db, got '" +
                           std::string(uri) + "'");
  }
  auto db = std::make_unique<PgDatabase>(std::string(uri));
  KEEL_RETURN_IF_ERROR(db->Init(options));
  return std::unique_ptr<Database>(std::move(db));
}

}  // namespace keel::store::internal
