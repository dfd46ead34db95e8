// Internal: what the backends share: a fixed pool of read connections and
// the call of a transaction's callback with exceptions turned into Status.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "keel/store/store.h"

namespace keel::store::internal {

// fn(conn), an exception from it (third-party code under the callback)
// becoming Internal("exception in <what> transaction: ...").
inline Status CallInTransaction(const std::function<Status(Connection&)>& fn, Connection& conn,
                                const char* what) {
  try {
    return fn(conn);
  } catch (const std::exception& e) {
    return Internal(std::string("exception in ") + what + " transaction: " + e.what());
  } catch (...) {
    return Internal(std::string("exception in ") + what + " transaction");
  }
}

// Read connections, owned, handed out one per Read() call.
// Threads: Borrow() blocks while every connection is in use; mu_ guards idle_.
template <typename Conn>
class ReaderPool {
 public:
  void Add(std::unique_ptr<Conn> conn) {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(conn.get());
    owned_.push_back(std::move(conn));
  }

  // Runs fn(conn) on an idle connection, which goes back to the pool however
  // fn ends.
  template <typename Fn>
  Status With(Fn&& fn) {
    Conn* conn;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !idle_.empty(); });
      conn = idle_.back();
      idle_.pop_back();
    }
    struct GiveBack {
      ReaderPool* pool;
      Conn* conn;
      ~GiveBack() {
        {
          std::lock_guard<std::mutex> lock(pool->mu_);
          pool->idle_.push_back(conn);
        }
        pool->cv_.notify_one();
      }
    } give_back{this, conn};
    return fn(*conn);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> owned_;  // fixed after the backend's Init
  std::vector<Conn*> idle_;                   // guarded by mu_
};

}  // namespace keel::store::internal
