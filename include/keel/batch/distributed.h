// File: keel/batch/distributed.h
//
// Batch scoring spread over worker processes through NATS JetStream. A
// coordinator (ScoreDistributed, `keel batch --distributed`) splits the input
// into partitions and publishes them to a work-queue stream; any number of
// workers (BatchWorker, `keel worker`) take partitions from one shared durable
// pull consumer, score them with ScoreText and publish each partition's
// output to a results stream; the coordinator writes the outputs in input
// order and commits the output file only when every partition is in.
//
//   keel::batch::DistributedOptions d;
//   d.nats_url = "nats://127.0.0.1:4222";
//   keel::batch::BatchOptions o;                 // input, output, columns, max_rejects
//   o.input = "customers.csv";
//   o.output = "scores.csv";
//   KEEL_ASSIGN_OR_RETURN(auto s, keel::batch::ScoreDistributed(model, "churn/3", o, d));
//
//   keel::batch::BatchWorker worker(loader, worker_options);   // in each worker process
//   KEEL_RETURN_IF_ERROR(worker.Start());
//   KEEL_RETURN_IF_ERROR(worker.Run(stop_flag));   // until stop_flag is set
//
// Wire format (both sides are this file; the subjects are
// <subject_prefix>.tasks.<job> and <subject_prefix>.results.<job>):
//   task:   headers Keel-Job, Keel-Partition, Keel-Model (the pinned model
//           reference), Keel-Format (csv|jsonl), Keel-Line-Offset, Keel-Rows,
//           Keel-Options ({"id_column":..,"keep_columns":[..],"chunk_rows":N}),
//           Nats-Msg-Id <job>:<partition>; body: zstd of the partition's text
//           (a CSV partition starts with the input's header row).
//   result: headers Keel-Job, Keel-Partition, Keel-Rows-In, Keel-Rows-Out,
//           Keel-Rejected, Keel-Header-Bytes, Keel-Output-Bytes,
//           Keel-Worker, Keel-Deliveries, Keel-Error and Keel-Error-Code (a
//           partition that cannot be scored: the message, one line, and the
//           StatusCode number), Nats-Msg-Id <job>:<partition>:result; body:
//           zstd of the output header, the scored rows and the rejects
//           ("line,reason" rows), concatenated.
// Both streams are work queues (file storage, a 2-minute duplicate window,
// messages older than a day dropped): a task leaves when a worker acks it, a
// result when the coordinator does; a job's leftovers are purged at its end.
// A worker drops (terminates) the tasks of a job whose coordinator's results
// consumer is gone: the job ended, or its coordinator died (the server drops
// a consumer 5 minutes after its last fetch).
//
// Delivery: a worker publishes a partition's result, waits for JetStream's
// acknowledgement, then acknowledges the task. A worker killed before that
// ack leaves the task pending; JetStream redelivers it after ack_wait to any
// worker. A partition scored twice (the result was published but the task's
// ack was lost) is a duplicate: the results stream drops it inside its
// duplicate window and the coordinator keeps the first result of each
// partition and counts the rest. Scoring is deterministic, so which copy is
// kept does not matter. While a worker scores, it marks the task in progress
// every third of the consumer's ack wait, so a slow partition is not
// redelivered. A task delivered more than 10 times (workers crashing on it)
// is answered with an error result.
//
// Completeness: the coordinator counts each partition's records as it splits
// the input; a result whose rows_in differs fails the job, and the output is
// committed only when partitions 0..N-1 are all in. Rejected rows come back
// with their line numbers in the whole input; more than max_rejects fail the
// job, naming the first. A failed or interrupted job leaves no output; its
// tasks and results are purged from the streams.
//
// Memory (coordinator): at most `window` partitions are outstanding
// (published and not yet written), so it holds at most `window` compressed
// results, plus the partition being read (its text, a copy with the header
// and the compressed body) and the decompressed result being written;
// JetStream holds at most `window` tasks of the job. A partition's text is
// cut at partition_rows records or partition_bytes (default: the server's
// max payload less 8 KiB), plus at most one record of at most 64 MiB.
// Worker: one partition and its output.
//
// Threads: ScoreDistributed runs on the calling thread (libnats adds its
// own). A BatchWorker is driven by one thread (Start, then Run); while it
// scores a partition one helper thread sends the in-progress marks, under
// the worker's ack mutex, which also guards the final ack. stats() may be
// read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "keel/batch/batch.h"
#include "keel/core/result.h"
#include "keel/model/package.h"

namespace keel::batch {

// Where the work goes; coordinator and workers must agree on these.
struct QueueOptions {
  // One or more server URLs, comma-separated.
  std::string nats_url = "nats://127.0.0.1:4222";
  std::string stream = "KEEL_BATCH";                  // work queue of tasks
  std::string results_stream = "KEEL_BATCH_RESULTS";  // partition outputs
  std::string subject_prefix = "keel.batch";
  std::string durable = "keel-batch-workers";  // the workers' shared consumer
};

struct DistributedOptions {
  QueueOptions queue;
  size_t partition_rows = 20000;  // records per partition (fewer when over the byte cap)
  // Uncompressed bytes per partition (cut at the next record boundary); 0:
  // the server's max payload less 8 KiB, so the compressed form fits it. A
  // compressed partition over the max payload fails the job.
  size_t partition_bytes = 0;
  size_t window = 16;  // partitions outstanding (published, not yet written)
  // The job fails when no partition finishes for this long (no workers?).
  std::chrono::milliseconds stall_timeout{std::chrono::minutes(5)};
  // Called on the calling thread after each batch of results that wrote
  // partitions.
  std::function<void(uint64_t partitions_done, uint64_t partitions_published, bool input_done,
                     uint64_t rows_done)>
      progress;
};

struct DistributedSummary {
  BatchSummary batch;  // as ScoreFile's (sampled is 0: workers send no samples)
  std::string job;     // the job id in the subjects
  uint64_t partitions = 0;
  uint64_t redelivered = 0;          // partitions whose result came from a second or later delivery
  uint64_t duplicates = 0;           // extra results for partitions already in (dropped)
  std::vector<std::string> workers;  // the workers that returned results
};

// Scores options.input through the workers into options.output (a path, not
// stdout; .gz/.zst compressed by extension). `model` is the coordinator's copy
// of the model, used to check the input's header before anything is
// published; `model_ref` is what workers load (a pinned "name/version", or a
// path every worker can read). on_scored, progress and pool are not used
// (DistributedOptions::progress reports). Errors: InvalidArgument for bad
// input or options, Unavailable when NATS is unreachable or JetStream is off,
// Unavailable after stall_timeout without progress, an error result
// from a worker as that worker reported it.
Result<DistributedSummary> ScoreDistributed(const model::LoadedModel& model,
                                            const std::string& model_ref,
                                            const BatchOptions& options,
                                            const DistributedOptions& distributed);

struct WorkerOptions {
  QueueOptions queue;
  // How long a task may go without an ack or an in-progress mark before
  // JetStream redelivers it (the durable's ack_wait, set by every worker at
  // Start; at least 1 s). Workers mark progress by the consumer's value.
  std::chrono::milliseconds ack_wait{std::chrono::seconds(30)};
  std::string name;  // in results and logs; empty: host:pid
};

struct WorkerStats {
  uint64_t partitions = 0;  // results published and tasks acked
  uint64_t rows = 0;
  uint64_t failed = 0;       // error results published
  uint64_t redelivered = 0;  // tasks that came with a delivery count above 1
  uint64_t dropped = 0;      // tasks of jobs whose coordinator was gone
};

// Loads a model by the reference a task names; called on the worker's thread.
using ModelLoader =
    std::function<Result<std::shared_ptr<const model::LoadedModel>>(const std::string& ref)>;

class BatchWorker {
 public:
  // Called after each partition on the Run thread: job, partition, rows, seconds.
  using OnPartition = std::function<void(const std::string& job, uint64_t partition, uint64_t rows,
                                         double seconds, const Status& error)>;
  BatchWorker(ModelLoader loader, WorkerOptions options);
  ~BatchWorker();
  BatchWorker(const BatchWorker&) = delete;
  BatchWorker& operator=(const BatchWorker&) = delete;

  // Connects, creates the streams and the shared consumer when missing (or
  // updates its ack_wait) and binds to it.
  [[nodiscard]] Status Start();
  // Takes and scores partitions until `stop` is set (checked at least every
  // 500 ms; a partition being scored is finished first). A model that fails
  // to load (other than Unavailable) or a partition that cannot be scored is
  // answered with an error result; an Unavailable error hands the task back
  // (nak with a delay) for another try. Returns the error that stopped it
  // (the connection closed for good), or OK when stopped.
  [[nodiscard]] Status Run(const std::atomic<bool>& stop, const OnPartition& on_partition = {});
  WorkerStats stats() const;
  const WorkerOptions& options() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::batch
