// File: keel/serve/request_counts.h
//
// Request outcomes over time: per model version and minute, how many
// requests were answered, and how many of them were client errors and server
// errors. Counted in memory on the request path (one short lock) and added
// to the store's request_counts table by one thread every flush_interval, so
// several replicas on one store add up. This is what the dashboard's error
// rate over time reads; /metrics has the same counts since the process started.
//
//   keel::serve::RequestCounts counts(db, clock, {});
//   KEEL_RETURN_IF_ERROR(counts.Start());
//   counts.Record("churn", "3", keel::serve::Outcome::kClientError);   // per request
//   ...
//   counts.Stop();                                                      // flushes
//   KEEL_ASSIGN_OR_RETURN(auto points, keel::serve::ReadRequestCounts(
//       db, {.model = "churn", .from_ms = t0, .to_ms = t1, .step_ms = 300'000}));
//
// Schema (migration 0011): request_counts(model, version, minute, requests,
// client_errors, server_errors), primary key (model, version, minute);
// minute is the minute's start in Unix milliseconds (the clock's time when
// Record was called, floored). A flush adds its counts to the rows
// (INSERT ... ON CONFLICT DO UPDATE), all in one write transaction; when
// the write fails the counts are kept and added to the next flush (a process
// killed meanwhile loses at most one flush interval of counts).
//
// Threads: Record, Flush and Stop may be called from any thread; `mu_`
// guards the pending counts, `stop_mu_` the flusher thread. Start creates
// the thread, Stop joins it (and is called by the destructor); every Stop
// flushes what is pending. A commit whose outcome is unknown (the connection
// lost during COMMIT) is counted as failed and its counts added again, so
// such a rare case can count a flush twice.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "keel/core/clock.h"
#include "keel/core/result.h"
#include "keel/store/store.h"

namespace keel::serve {

enum class Outcome { kOk, kClientError, kServerError };

struct RequestCountsOptions {
  std::chrono::milliseconds flush_interval{5000};
};

class RequestCounts {
 public:
  // `db` and `clock` must outlive this object.
  RequestCounts(store::Database& db, const Clock& clock, RequestCountsOptions options = {});
  ~RequestCounts();
  RequestCounts(const RequestCounts&) = delete;
  RequestCounts& operator=(const RequestCounts&) = delete;

  [[nodiscard]] Status Start();
  // Stops the flusher after a last flush. Idempotent.
  void Stop();
  void Record(std::string_view model, std::string_view version, Outcome outcome);
  // Adds what is pending to the store now.
  [[nodiscard]] Status Flush();

 private:
  struct Counts {
    uint64_t requests = 0, client_errors = 0, server_errors = 0;
  };
  using Key = std::tuple<std::string, std::string, int64_t>;  // model, version, minute
  // Orders keys and (model, version, minute) views alike, so a request's
  // lookup builds no strings.
  struct KeyView {
    std::string_view model, version;
    int64_t minute;
  };
  struct KeyLess {
    using is_transparent = void;
    static KeyView View(const Key& k) { return {std::get<0>(k), std::get<1>(k), std::get<2>(k)}; }
    static KeyView View(const KeyView& v) { return v; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      const KeyView x = View(a), y = View(b);
      return std::tie(x.model, x.version, x.minute) < std::tie(y.model, y.version, y.minute);
    }
  };
  void Loop();

  store::Database& db_;
  const Clock& clock_;
  RequestCountsOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<Key, Counts, KeyLess> pending_;  // guarded by mu_
  bool stop_ = false;                       // guarded by mu_
  std::mutex flush_mu_;                     // one flush at a time
  std::mutex stop_mu_;                      // guards thread_ (Start, Stop)
  std::thread thread_;
};

struct RequestCountsQuery {
  std::string model;
  std::string version;       // empty: every version
  int64_t from_ms = 0;       // inclusive, floored to step_ms
  int64_t to_ms = 0;         // exclusive
  int64_t step_ms = 60'000;  // a multiple of a minute
};

struct RequestPoint {
  int64_t time_ms = 0;  // the step's start
  uint64_t requests = 0;
  uint64_t client_errors = 0;
  uint64_t server_errors = 0;
};

// The sums per step of the counts in [from_ms, to_ms), steps without
// requests left out, in time order. InvalidArgument for a step that is not a
// positive multiple of a minute or longer than a year, times beyond ±10^15
// ms, an empty range, or more than 10,000 steps.
Result<std::vector<RequestPoint>> ReadRequestCounts(store::Database& db,
                                                    const RequestCountsQuery& query);

}  // namespace keel::serve
