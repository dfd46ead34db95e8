// File: keel/serve/shadow.h
//
// Shadow scoring: while a challenger is in its shadow phase (registry alias
// `shadow`, set by a retraining job; see keel/retrain/retrain.h), it scores
// the requests the champion answers, without answering them. The serving
// routes hand each logged request's raw input rows to the ShadowScorer after
// the answer is built; its worker thread encodes them with the challenger's
// own pipeline, scores them and writes one row per request id to the
// `shadow_predictions` table (migration 0007). ReadShadowPairs joins those
// rows with the champion's logged predictions and their labels.
//
//   keel::serve::ShadowScorer shadow(db, &metrics, {});
//   KEEL_RETURN_IF_ERROR(shadow.Start());
//   if (auto s = engine.Shadow(deployment->ref)) {      // a shadow is being followed
//     shadow.Submit(s, {{.request_id = id, .time_ms = now, .input_json = raw}});
//   }
//   ...
//   KEEL_ASSIGN_OR_RETURN(auto pairs, keel::serve::ReadShadowPairs(db, query));
//
// Cost and bounds: the request path only copies the raw rows into the queue
// (Submit never blocks and never fails a request); at most queue_rows rows
// wait, more are dropped and counted (keel_shadow_rows_total{result="dropped"},
// which also counts rows lost to a failed commit or left queued by Stop()).
// Only requests the prediction log samples are shadowed, since the comparison
// needs the champion's logged answer. A row the challenger cannot encode is
// stored with output null and the reason in `error`.
//
// Threads: Submit, Flush and the counters may be called from any thread;
// `mu_` guards the queue; the worker thread owns the batch it scores and
// writes. Stop() is idempotent and called by the destructor.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "keel/core/metrics.h"
#include "keel/core/result.h"
#include "keel/serve/engine.h"
#include "keel/store/store.h"

namespace keel::serve {

struct ShadowRow {
  std::string request_id;  // the champion's logged request id
  int64_t time_ms = 0;     // when the request arrived
  std::string input_json;  // the raw input record (a JSON object)
};

struct ShadowOptions {
  size_t queue_rows = 20000;  // rows waiting beyond this are dropped
  size_t max_batch = 2048;    // rows per transaction
};

class ShadowScorer {
 public:
  ShadowScorer(store::Database& db, metrics::Registry* metrics, ShadowOptions options);
  ~ShadowScorer();
  ShadowScorer(const ShadowScorer&) = delete;
  ShadowScorer& operator=(const ShadowScorer&) = delete;

  Status Start();
  // Writes what is queued and joins the worker; later Submits are dropped.
  void Stop();
  // Queues rows for `shadow` (the deployment ServingEngine::Shadow returned).
  // False when they were dropped (queue full or stopped).
  bool Submit(std::shared_ptr<const Deployment> shadow, std::vector<ShadowRow> rows);
  // Returns once every row queued before the call is written (or failed);
  // FailedPrecondition before Start().
  Status Flush();

  uint64_t scored() const;   // rows written with an output
  uint64_t errors() const;   // rows written with an error
  uint64_t dropped() const;  // rows dropped: queue full, stopped, or a failed commit

 private:
  struct Item {
    std::shared_ptr<const Deployment> shadow;
    std::vector<ShadowRow> rows;
    uint64_t seq_end = 0;  // rows queued up to and including this item
  };
  void WorkerLoop();
  void CountDropped(const Item& item);
  Status Write(const std::vector<Item>& items, uint64_t* scored, uint64_t* errors);

  store::Database& db_;
  ShadowOptions options_;
  metrics::CounterFamily* rows_ = nullptr;  // {model, result}

  mutable std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Item> queue_;       // guarded by mu_
  size_t queued_rows_ = 0;       // guarded by mu_
  uint64_t enqueued_seq_ = 0;    // rows ever queued; guarded by mu_
  uint64_t done_seq_ = 0;        // rows written or failed; guarded by mu_
  bool stopping_ = false;        // guarded by mu_
  bool started_ = false;         // guarded by mu_
  Status last_error_;            // the last failed commit; guarded by mu_
  uint64_t failed_commits_ = 0;  // guarded by mu_
  std::mutex lifecycle_mu_;      // serialises Start and Stop
  std::thread worker_;
  std::atomic<uint64_t> scored_{0}, errors_{0}, dropped_{0};
};

// One shadowed request: the champion's logged answer beside the shadow's.
struct ShadowPair {
  std::string request_id;
  int64_t time_ms = 0;
  std::string champion_version;
  std::string champion_output;  // JSON, as logged
  std::string shadow_output;    // JSON; "null" when it failed
  double shadow_latency_us = 0;
  std::string error;                      // why the shadow could not score the row
  std::optional<std::string> label_json;  // the ground truth, once posted
};

struct ShadowQuery {
  std::string model;             // required
  std::string shadow_version;    // required
  std::string champion_version;  // only requests this version answered; empty: any
  int64_t from_ms = 0;           // time >= from_ms
  int64_t to_ms = INT64_MAX;     // time < to_ms
  size_t limit = 1'000'000;      // the oldest rows first
};

// Shadow rows of one version in time order, each with the champion's logged
// prediction for the same request id (rows without one are left out) and
// its label, if any.
Result<std::vector<ShadowPair>> ReadShadowPairs(store::Database& db, const ShadowQuery& query);
// How many pairs ReadShadowPairs would return without a limit.
Result<uint64_t> CountShadowPairs(store::Database& db, const ShadowQuery& query);

}  // namespace keel::serve
