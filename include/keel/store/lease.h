// File: keel/store/lease.h
//
// A lease: one holder at a time for a named role among every process that
// shares a store (replicas of keel server on one PostgreSQL, or processes on
// one SQLite file). The holder renews it before it expires; once it has
// expired any other process may take it. Roles that must run once per
// installation (the monitoring passes, the retraining scheduler's slots)
// run only while their process holds the lease.
//
//   keel::store::Lease lease(db, clock, "monitor", keel::store::Lease::ProcessHolder(),
//                            /*ttl_ms=*/60'000);
//   KEEL_ASSIGN_OR_RETURN(bool mine, lease.Acquire());   // take or renew
//   if (mine) RunThePass();
//   lease.Release();                                    // on shutdown: no wait for expiry
//
// Time is the Clock's wall-clock time: processes sharing a store must have
// clocks that agree to well within the ttl (one machine, or NTP).
//
// Threads: a Lease is used by one thread at a time (the role's own thread);
// the store serialises the processes.
#pragma once

#include <cstdint>
#include <string>

#include "keel/core/clock.h"
#include "keel/core/result.h"
#include "keel/store/store.h"

namespace keel::store {

class Lease {
 public:
  Lease(Database& db, const Clock& clock, std::string name, std::string holder, int64_t ttl_ms);

  // Takes the lease if it is free or expired, or renews it if this holder
  // has it; true while this holder has it (until now + ttl). Store errors
  // are returned (and the caller should act as if it does not hold it).
  [[nodiscard]] Result<bool> Acquire();
  // Gives the lease up if this holder has it, so another process need not
  // wait for it to expire.
  [[nodiscard]] Status Release();
  // The current holder and its expiry (an empty holder when nobody ever took it).
  struct State {
    std::string holder;
    int64_t expires_ms = 0;
  };
  [[nodiscard]] Result<State> Current() const;

  const std::string& name() const { return name_; }
  const std::string& holder() const { return holder_; }
  int64_t ttl_ms() const { return ttl_ms_; }

  // "host:pid:random": a holder name unique to this process.
  static std::string ProcessHolder();

 private:
  Database& db_;
  const Clock& clock_;
  std::string name_;
  std::string holder_;
  int64_t ttl_ms_;
};

}  // namespace keel::store
