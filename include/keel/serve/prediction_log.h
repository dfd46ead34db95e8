// File: keel/serve/prediction_log.h
//
// The prediction log and ground-truth labels: every served prediction
// (request id, time, model, version, raw input, output, latency) written to
// the store off the request path by one batching writer thread, and labels
// joined to those predictions when they arrive later.
//
//   keel::serve::PredictionLogOptions opts;            // defaults: interval durability
//   keel::serve::PredictionLog log(db, clock, opts);
//   KEEL_RETURN_IF_ERROR(log.Start());
//   keel::serve::PredictionRecord r{.request_id = id, .time_ms = now, .model = "churn",
//                                   .version = "3", .endpoint = "predict",
//                                   .input_json = R"({"state":"KS"})", .output_json = "0.07",
//                                   .latency_us = 41};
//   KEEL_RETURN_IF_ERROR(log.Append(std::move(batch)));  // strict mode: returns once durable
//   ...
//   KEEL_ASSIGN_OR_RETURN(auto result, keel::serve::RecordLabels(db, labels, now_ms));
//   log.Stop();                                          // flushes what is queued
//
// Durability:
//   kInterval (default): Append returns at once; the writer commits a batch
//     when flush_interval has passed since the oldest queued record or
//     max_batch records are queued. A SIGKILL loses at most the records
//     queued in the last flush_interval (plus the batch being committed).
//   kStrict: Append returns only after a transaction holding its records has
//     committed (the store's SyncMode decides what "committed" survives:
//     a process crash with kNormal, power loss with kFull). Concurrent
//     Appends share commits (group commit), so the cost is one commit per
//     batch, not per request.
// When the queue holds queue_capacity records, Append follows when_full:
//   kDrop: the new records are dropped and counted (dropped()); Append
//     returns OK (in strict mode ResourceExhausted, since nothing is durable).
//   kBlock: Append waits for room.
// Sampling: Sample() decides, with probability sample_rate, whether a request
// is logged (callers skip building records otherwise); not-sampled requests
// are counted in sampled_out().
//
// Schema (migration 0003): predictions(request_id PRIMARY KEY, time, model,
// version, endpoint, input, output, latency_us); labels(request_id PRIMARY
// KEY, label, time). A request id already in the log is skipped (counted in
// duplicates()); the first record wins.
//
// Threads: Append, Sample, Flush and the counters may be called from any
// thread. The writer thread owns the batch being written; `mu_` guards the
// queue and the counters that are not atomics. Stop() is idempotent and is
// called by the destructor.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "keel/core/clock.h"
#include "keel/core/result.h"
#include "keel/store/store.h"

namespace keel::serve {

struct PredictionRecord {
  std::string request_id;   // unique per predicted row
  int64_t time_ms = 0;      // when the request arrived (Unix ms)
  std::string model;        // registered model name
  std::string version;      // model version that answered
  std::string endpoint;     // predict, invocations, v2, stream, batch ...
  std::string input_json;   // the raw input record as a JSON object
  std::string output_json;  // the answer (a JSON number, array or object)
  double latency_us = 0;    // server time spent on the request
};

enum class Durability { kInterval, kStrict };
enum class WhenFull { kDrop, kBlock };

struct PredictionLogOptions {
  Durability durability = Durability::kInterval;
  WhenFull when_full = WhenFull::kDrop;
  double sample_rate = 1.0;  // in [0, 1]
  size_t queue_capacity = 200000;
  size_t max_batch = 4096;  // records per transaction
  std::chrono::milliseconds flush_interval{200};
};

class PredictionLog {
 public:
  PredictionLog(store::Database& db, const Clock& clock, PredictionLogOptions options);
  ~PredictionLog();
  PredictionLog(const PredictionLog&) = delete;
  PredictionLog& operator=(const PredictionLog&) = delete;

  // Starts the writer thread. InvalidArgument for bad options.
  Status Start();
  // Queues records (see Durability and WhenFull above). After Stop():
  // FailedPrecondition.
  Status Append(std::vector<PredictionRecord> records);
  // True with probability sample_rate (thread-local generator).
  bool Sample();
  // Returns once every record queued before the call is committed (or failed).
  Status Flush();
  // Flushes and joins the writer. Later Appends fail.
  void Stop();

  const PredictionLogOptions& options() const { return options_; }
  size_t queued() const;         // records waiting in the queue now
  uint64_t written() const;      // records committed
  uint64_t dropped() const;      // records dropped because the queue was full
  uint64_t failed() const;       // records lost to failed commits
  uint64_t duplicates() const;   // records skipped: request id already logged
  uint64_t sampled_out() const;  // Sample() calls that said no
  uint64_t commits() const;      // transactions committed

 private:
  // A strict Append or a Flush waiting for records [begin, end) (queue
  // sequence numbers) to be committed; the writer sets `status` to the error
  // of a failed commit that held any of them.
  struct Waiter {
    uint64_t begin;
    uint64_t end;
    Status status;
  };

  void WriterLoop();
  Status WriteBatch(std::vector<PredictionRecord>& batch, uint64_t* inserted);
  // Interval mode: reports a failed commit on stderr, once per distinct error
  // and then at most once a minute while it repeats. Writer thread, mu_ held.
  void ReportFailure(const Status& status, size_t records);

  store::Database& db_;
  const Clock& clock_;
  PredictionLogOptions options_;
  std::mutex lifecycle_mu_;  // serialises Start and Stop (owner of writer_)
  std::thread writer_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;     // writer waits for records / stop
  std::condition_variable done_cv_;     // Append(strict)/Flush wait for commits; kBlock for room
  std::deque<PredictionRecord> queue_;  // guarded by mu_
  uint64_t enqueued_seq_ = 0;           // records ever queued; guarded by mu_
  uint64_t committed_seq_ = 0;          // records whose batch finished; guarded by mu_
  std::optional<std::chrono::steady_clock::time_point> oldest_;  // guarded by mu_
  bool stopping_ = false;                                        // guarded by mu_
  bool started_ = false;                                         // guarded by mu_
  Status last_error_;                 // last failed commit; guarded by mu_
  int64_t last_error_report_ms_ = 0;  // guarded by mu_
  uint64_t unreported_failures_ = 0;  // repeats of last_error_; guarded by mu_
  std::vector<Waiter*> waiters_;      // guarded by mu_
  int flush_waiters_ = 0;             // guarded by mu_
  int blocked_appenders_ = 0;         // kBlock Appends waiting for room; guarded by mu_

  std::atomic<uint64_t> written_{0}, dropped_{0}, failed_{0}, duplicates_{0}, sampled_out_{0},
      commits_{0};
};

// One ground-truth label: a JSON scalar (number, string or boolean) as text.
struct Label {
  std::string request_id;
  std::string label_json;
};

struct LabelResult {
  uint64_t matched = 0;                  // labels stored (new or replaced)
  std::vector<std::string> unknown_ids;  // request ids with no logged prediction
};

// Stores labels for logged predictions in one transaction; a label for an id
// already labelled replaces it. Ids not in the prediction log are not stored
// and are returned in unknown_ids. InvalidArgument for an empty id or a
// label that is not a JSON scalar (null, objects and arrays are refused).
Result<LabelResult> RecordLabels(store::Database& db, std::span<const Label> labels,
                                 int64_t now_ms);

struct LoggedPrediction {
  PredictionRecord record;
  std::optional<std::string> label_json;  // joined label, if any
  int64_t label_time_ms = 0;
};

struct PredictionQuery {
  std::string model;          // required
  std::string version;        // empty = all versions
  int64_t from_ms = 0;        // time >= from_ms
  int64_t to_ms = INT64_MAX;  // time < to_ms
  bool labelled_only = false;
  size_t limit = 1000;
  // With a limit, keep the newest matching rows (still returned oldest first).
  bool newest = false;
};

// Predictions of a model in time order (oldest first), joined with labels.
Result<std::vector<LoggedPrediction>> ReadPredictions(store::Database& db,
                                                      const PredictionQuery& query);
// Number of logged predictions matching the query (limit ignored).
Result<uint64_t> CountPredictions(store::Database& db, const PredictionQuery& query);

}  // namespace keel::serve
