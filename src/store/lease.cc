// Lease (keel/store/lease.h): one row per role in `leases`, taken with a
// conditional upsert so that the store decides between racing processes.
#include "keel/store/lease.h"

#include <unistd.h>

#include "keel/core/util.h"

namespace keel::store {

Lease::Lease(Database& db, const Clock& clock, std::string name, std::string holder, int64_t ttl_ms)
    : db_(db), clock_(clock), name_(std::move(name)), holder_(std::move(holder)), ttl_ms_(ttl_ms) {}

Result<bool> Lease::Acquire() {
  const int64_t now = clock_.NowMillis();
  bool mine = false;
  KEEL_RETURN_IF_ERROR(db_.Write([&](Connection& c) -> Status {
    // A new row, or this holder's renewal, or a takeover of an expired one.
    KEEL_RETURN_IF_ERROR(c.Exec(
        "INSERT INTO leases(name, holder, expires, acquired) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires, "
        "acquired = CASE WHEN leases.holder = excluded.holder THEN leases.acquired "
        "ELSE excluded.acquired END "
        "WHERE leases.holder = excluded.holder OR leases.expires <= ?",
        {Value(name_), Value(holder_), Value(now + ttl_ms_), Value(now), Value(now)}));
    return c.Query("SELECT holder FROM leases WHERE name = ?", {Value(name_)},
                   [&](const RowView& row) {
                     mine = row.Text(0) == holder_;
                     return OkStatus();
                   });
  }));
  return mine;
}

Status Lease::Release() {
  return db_.Write([&](Connection& c) {
    return c.Exec("UPDATE leases SET expires = 0 WHERE name = ? AND holder = ?",
                  {Value(name_), Value(holder_)});
  });
}

Result<Lease::State> Lease::Current() const {
  State st;
  KEEL_RETURN_IF_ERROR(db_.Read([&](Connection& c) {
    return c.Query("SELECT holder, expires FROM leases WHERE name = ?", {Value(name_)},
                   [&](const RowView& row) {
                     st.holder = std::string(row.Text(0));
                     st.expires_ms = row.Int(1);
                     return OkStatus();
                   });
  }));
  return st;
}

std::string Lease::ProcessHolder() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + RandomHex(4);
}

}  // namespace keel::store
