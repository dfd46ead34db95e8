// File: keel/retrain/retrain.h
//
// One retraining job, behind a champion/challenger gate, recorded as an
// audit trail. The server's scheduler and `keel retrain` are two callers.
//
//   keel::retrain::RetrainEnv env{.db = &db, .registry = &registry,
//                                 .recorder = recorder.get(), .clock = &clock,
//                                 .model_path = resolve};
//   KEEL_ASSIGN_OR_RETURN(keel::retrain::RetrainJob job,
//                         keel::retrain::RunRetrainJob(policy, env, {.trigger = "manual"}));
//   // job.status: promoted | rejected | failed | cancelled | shadow (| skipped)
//
// The job:
//  1. records itself (status running) in retrain_jobs (in the scheduler's queued row
//     when RetrainRequest::queued_job_id names one);
//  2. reads the model's labeled predictions of the last window.recent from
//     the prediction log (every version, oldest first); the newest
//     gate.holdout_fraction of them are the holdout, never trained on;
//  3. writes the training data: policy.train.data followed, when
//     window.include_labeled_predictions, by the other labeled predictions
//     as rows (inputs by column name; the label in the target column, spelt
//     as the champion's class when it names one); every source's version
//     (path, SHA-256, rows; the window's time range and rows) is recorded;
//  4. trains the challenger as a new run (keel's trainer, or policy.train.command
//     with {output_dir}, {data} and {target} substituted, run by /bin/sh)
//     and registers it as a new version of the model with alias `challenger`;
//  5. gate: the champion (the version policy.promote names now) and the
//     challenger score the same holdout; the challenger passes when the
//     holdout has at least gate.min_rows labeled rows, it beats the
//     champion's gate.metric by at least gate.min_delta, and no other metric
//     of the task is worse by more than gate.max_regression. Without a
//     champion the challenger passes on min_rows alone;
//  6. shadow (policy.shadow.duration > 0 and a champion exists): the
//     challenger takes the registry alias `shadow`; every server following
//     the champion scores the requests it logs with the challenger too,
//     without answering (keel/serve/shadow.h), and the job ends its first
//     part in status `shadow`. FinishShadow (run by the scheduler) decides
//     once shadow.duration has passed and at least shadow.min_requests
//     requests were shadowed: see ShadowReport;
//  7. passed: the alias policy.promote moves to the challenger (actor and
//     reason recorded in the alias history); the previous version stays
//     registered, so `keel models rollback` (or Rollback) returns to it.
// A job that fails or is cancelled before step 7 never touches the
// champion; a failure after the challenger was registered leaves it
// registered with alias `challenger` and the job `failed` with the reason.
// After promotion, WatchPromotion (run by the scheduler) compares the new
// champion with the old on live traffic and rolls the alias back. Not yet:
// the shadow phase (its settings are read and recorded, not acted on).
//
// Continuous mode (request.continuous, policy.continuous): the rows are the
// labeled predictions of the window logged after the newest row the
// champion learnt from (the end of the window and holdout of the job that
// promoted it; the whole window for a champion promoted otherwise). With
// fewer than continuous.min_rows of them the job is not run nor recorded:
// it returns status `skipped`. Otherwise the newest holdout_fraction is the
// holdout as above, and step 4 updates the champion on the rest
// (train::ContinueAndRecord: XGBoost continued training, keel-linear online
// passes) instead of training from scratch; policy.train.data is not read.
// Steps 5 to 8 are the same.
//
// Timeout: policy.job.timeout cancels the job (keel's trainer stops at the
// next round; a command gets SIGTERM, then SIGKILL 10 s later).
//
// Threads: RunRetrainJob blocks the calling thread; run one job per model at
// a time (the scheduler's rule). The env's members must outlive the call.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "keel/core/clock.h"
#include "keel/core/result.h"
#include "keel/model/package.h"
#include "keel/monitor/alerts.h"
#include "keel/registry/registry.h"
#include "keel/retrain/policy.h"
#include "keel/serve/prediction_log.h"
#include "keel/serve/shadow.h"
#include "keel/store/store.h"
#include "keel/train/train.h"

namespace keel::retrain {

struct RetrainEnv {
  store::Database* db = nullptr;
  registry::RegistryService* registry = nullptr;
  train::RunRecorder* recorder = nullptr;  // where the challenger's run is recorded
  const Clock* clock = nullptr;
  // The local package directory (or file) of a registered version.
  std::function<Result<std::filesystem::path>(const std::string& name, const std::string& version)>
      model_path;
  std::filesystem::path scratch_dir;                  // job files; empty: the system temp folder
  std::function<void(const std::string&)> on_status;  // progress lines (may be empty)
  // One job per model across processes: a job does not start (Unavailable)
  // while another process's job of the model is running with a heartbeat
  // younger than this (the server passes its --lease-ttl).
  int64_t stale_after_ms = 30'000;
};

// A job waiting in the scheduler's queue, as stored: a retrain_jobs row in
// status `queued` whose owner is the process that will run it (see
// QueueJob, TakeOverStaleWork and keel/retrain/scheduler.h).
struct QueuedJob {
  int64_t id = 0;  // retrain_jobs.job_id; 0 until stored
  std::string model;
  std::string trigger;
  std::string actor;
  int attempt = 1;            // retries count on from 1
  int64_t not_before_ms = 0;  // it does not start before (a retry's backoff)
  bool continuous = false;    // an update of the champion (policy.continuous)
};

struct RetrainRequest {
  std::string trigger = "manual";  // manual | schedule | alert:<rule> | continuous
  std::string actor = "keel-retrain";
  const std::atomic<bool>* cancel = nullptr;
  // Continuous mode (policy.continuous): update the champion on the labeled
  // predictions it has not learnt from instead of training from scratch.
  bool continuous = false;
  // The scheduler's queued row this run becomes (0: a new row). The job
  // starts only if it can claim the row (compare-and-set: still `queued`
  // and this process's), and then records itself in that row, so history
  // shows one job per queued run; otherwise it returns FailedPrecondition
  // without running. A continuous update skipped deletes the row. Either
  // way a job does not start while another process runs one of the model
  // (RetrainEnv::stale_after_ms): Unavailable, its queued row left queued.
  int64_t queued_job_id = 0;
  // When set and the job ends `failed` (a cancel or a timeout ends it
  // `cancelled`), this retry is queued (QueueJob) in the same store
  // transaction as that status, not before retry_backoff_ms after the job's
  // end; its id and not_before_ms are set then (id left 0 otherwise).
  QueuedJob* retry = nullptr;
  int64_t retry_backoff_ms = 0;
};

struct GateMetric {
  std::string name;
  double champion = std::numeric_limits<double>::quiet_NaN();
  double challenger = std::numeric_limits<double>::quiet_NaN();
};

struct GateDecision {
  bool passed = false;
  std::string metric;  // the deciding metric
  double champion = std::numeric_limits<double>::quiet_NaN();
  double challenger = std::numeric_limits<double>::quiet_NaN();
  uint64_t holdout_rows = 0;        // labeled holdout rows both models scored
  uint64_t non_finite = 0;          // the challenger's non-finite outputs on them
  std::vector<GateMetric> metrics;  // every metric of the task
  std::string reason;               // one line: why it passed or not
};

// The shadow phase's comparison (step 6), over the requests the champion
// answered and logged since the phase began, each scored by the challenger
// too. It passes when the challenger scored every one of them (no encoding
// errors, no non-finite outputs) and, when at least gate.min_rows of them
// are labeled, the gate's rule (min_delta, max_regression) holds on those
// live rows with the champion's logged answers against the challenger's.
// With fewer labeled rows the holdout's verdict stands: the shadow then
// checks that the challenger runs on live traffic, not that it is better.
struct ShadowReport {
  int64_t started_ms = 0;
  int64_t ends_ms = 0;    // started_ms + shadow.duration (the earliest decision)
  uint64_t requests = 0;  // shadowed requests compared
  uint64_t errors = 0;    // requests the challenger could not encode
  uint64_t non_finite = 0;
  // Binary and multiclass: share of requests where both predict the same
  // class (binary at 0.5). NaN for regression.
  double agreement = std::numeric_limits<double>::quiet_NaN();
  double mean_abs_diff = std::numeric_limits<double>::quiet_NaN();  // over output values
  double latency_p50_us = 0, latency_p99_us = 0;  // the challenger's per-row scoring time
  uint64_t labeled_rows = 0;
  std::optional<GateDecision> live;  // the gate on labeled live rows (>= gate.min_rows)
  bool passed = false;
  std::string reason;
};

struct DataSource {
  std::string role;  // data | window | holdout
  std::string path;  // file, or the window's description
  std::string sha256;
  uint64_t rows = 0;
  int64_t from_ms = 0;  // window and holdout: time range of the rows
  int64_t to_ms = 0;
};

// One line of a job's log: what it did, when.
struct JobLogLine {
  int64_t time_ms = 0;
  std::string text;
};

struct RetrainJob {
  int64_t id = 0;
  std::string model;
  std::string trigger;
  std::string actor;
  // queued (waiting in the scheduler's queue) | running | shadow | promoted | rejected |
  // failed | cancelled | superseded
  // (a shadow phase whose alias moved to a newer challenger) | rolled_back
  std::string status;
  int64_t started_ms = 0;  // a queued job: when it was queued
  int64_t finished_ms = 0;
  std::string run_id;
  std::string challenger_version;
  std::string champion_version;  // the promoted alias's version before the job ("" none)
  std::string promote_alias;
  std::vector<DataSource> data;
  std::optional<GateDecision> gate;
  std::optional<ShadowReport> shadow;
  std::string message;  // the failure, or a one-line summary
  std::string host;     // where the job runs (gethostname)
  int64_t pid = 0;      // the process running it
  // What the job did, step by step (the job's own status lines, also given
  // to RetrainEnv::on_status; not the trainer's progress lines), and for a
  // command trainer the tail of its output (under 8 KiB). Text is valid
  // UTF-8 (other bytes become U+FFFD); at most kMaxJobLogLines lines plus one
  // saying the log is full, each at most kMaxJobLogLineBytes plus " [cut]".
  std::vector<JobLogLine> log;

  std::string ToJson() const;
  static Result<RetrainJob> FromJson(std::string_view json);
};

// A job's log is bounded: lines beyond this many are dropped (one line says
// so), and a line is cut at kMaxJobLogLineBytes.
inline constexpr size_t kMaxJobLogLines = 200;
inline constexpr size_t kMaxJobLogLineBytes = 8192;
// Appends a line to job.log within those bounds.
void AppendJobLog(RetrainJob& job, int64_t time_ms, std::string text);

// Runs one job now (see above). Returns the job as recorded; an error only
// when it could not be recorded at all (bad env, store failure at the start).
Result<RetrainJob> RunRetrainJob(const RetrainPolicy& policy, const RetrainEnv& env,
                                 const RetrainRequest& request);

// Scores both models on the labeled holdout and decides (step 5). `champion`
// may be null. Rows whose input does not encode or whose label names no
// class are left out (and not counted in holdout_rows).
Result<GateDecision> EvaluateGate(const GateConfig& gate, const model::LoadedModel* champion,
                                  const model::LoadedModel& challenger,
                                  const std::vector<serve::LoggedPrediction>& holdout);

// Compares the logged champion answers with the challenger's shadow answers
// (ShadowReport). Pairs whose champion version is not `champion_version`
// are left out.
Result<ShadowReport> CompareShadow(const GateConfig& gate, const model::LoadedModel& champion,
                                   const std::string& champion_version,
                                   const model::LoadedModel& challenger,
                                   const std::vector<serve::ShadowPair>& pairs);

// Ends the model's shadow phase when it is due (step 6). Every state change
// is a compare-and-set, so a cancel, a newer job or another server deciding
// at the same moment never leaves two outcomes:
//  - a job in status `shadow` whose challenger no longer holds the `shadow`
//    alias ends `superseded` (the alias names a newer challenger) or
//    `cancelled` (the alias was removed); with a policy that has no shadow
//    phase any more it ends `cancelled`;
//  - the job whose challenger holds it is decided once shadow.duration has
//    passed and shadow.min_requests requests (answered by the champion the
//    gate saw) were shadowed: CompareShadow on them; the job is claimed
//    (status `running`, this process), the alias removed if it still names
//    the challenger, then `promoted` (policy.promote compared-and-set on the
//    champion the gate saw) or `rejected` (a store error at promotion:
//    `failed`, the champion untouched);
//  - a `shadow` alias no job owns (none in its phase or running with that
//    version) is removed (actor keel-shadow).
// Returns the job decided, if any. The phase has no upper bound: with too
// little traffic it waits. At most 1,000,000 shadowed requests (the oldest)
// are compared.
Result<std::optional<RetrainJob>> FinishShadow(const RetrainPolicy& policy, const RetrainEnv& env);

// Ends the shadow phase of `model` without a decision: its jobs in status
// `shadow` become `cancelled` and the `shadow` alias is removed (the
// champion is untouched). Returns how many jobs it ended.
Result<int> CancelShadow(store::Database& db, registry::RegistryService& registry,
                         const Clock& clock, const std::string& model,
                         const registry::ChangeContext& context);

// Cancellation from any process sharing the store: another replica, or
// `keel retrain cancel` (a scheduler's own Cancel() is immediate for its
// jobs; this reaches every process's). In one transaction, the model's
// queued rows end `cancelled` whoever owns them (their owner's scheduler
// drops them at its next tick, and a worker about to start one finds it
// gone), and its running jobs are marked with a cancel request naming
// `actor` (retrain_jobs.cancel_requested). A running job's own process
// reads the request with the job's heartbeat, at most about a second later,
// and stops it as a local cancel does: it ends `cancelled` ("cancelled by
// <actor>: ..."), never retried, the champion untouched (a job that had
// already moved an alias when it read the request ends as it would have; a
// job that fails before reading it ends `cancelled` all the same).
// A job whose process died with a request pending is ended `cancelled` by
// the takeover, not run again. A job in its shadow phase is left to
// CancelShadow.
struct CancelRequest {
  int queued = 0;   // queued rows ended `cancelled`
  int running = 0;  // running jobs asked to stop whose heartbeat is under 30 s old
};
Result<CancelRequest> RequestCancel(store::Database& db, const std::string& model,
                                    const std::string& actor, int64_t now_ms);

// The watch after a promotion (policy.watch): when the latest change of the
// alias policy.promote (from the alias history; by a job or by hand, but not
// a rollback by the watch itself, nor a change that undoes the one before it,
// such as `keel models rollback`) is younger than watch.duration, both the
// new version and the one before score the new version's labeled
// predictions since the change (EvaluateGate: the same rows for both). With
// at least gate.min_rows of them, a drop of watch.metric (default: the
// gate's) by more than watch.drop_more_than moves the alias back, compared-
// and-set on the new version (actor "keel-watch"); so does any non-finite
// output of the new version, or a metric it cannot compute where the version
// before can. It records a job with
// trigger "watch" and status "rolled_back" carrying both scores; the
// returned alert (rule "watch_rollback", critical) is for the caller to
// store and publish. Nothing to do: no outcome, OK.
struct WatchOutcome {
  bool rolled_back = false;
  RetrainJob job;        // the audit record, when rolled back
  monitor::Alert alert;  // when rolled back
};
Result<std::optional<WatchOutcome>> WatchPromotion(const RetrainPolicy& policy,
                                                   const RetrainEnv& env);
inline constexpr char kWatchActor[] = "keel-watch";
// The actor of alias changes FinishShadow makes on its own (an orphaned
// `shadow` alias removed).
inline constexpr char kShadowActor[] = "keel-shadow";

// Jobs of `model` (all models when empty), newest first.
Result<std::vector<RetrainJob>> RetrainHistory(store::Database& db, const std::string& model,
                                               size_t limit = 50);
// Marks jobs left `running` by a process of this host that is gone (killed,
// crashed) as failed ("interrupted"); returns how many. Jobs of other hosts
// are left alone. `keel retrain` calls it before each job. What such a job
// left is ended too (here and in TakeOverStaleWork): its run (the record
// names it from the moment it exists) ends FAILED if still RUNNING, a
// version of that run left PENDING_REGISTRATION becomes FAILED_REGISTRATION,
// a version the run had registered is named in the job's record as its
// challenger, never gated, and a job that had already moved its `promote`
// alias to its challenger (the alias history's latest change names it) is
// recorded `promoted` (TakeOverStaleWork then drops its rerun). A job with a
// cancel request pending ends `cancelled`, not `failed`.
Result<int> MarkInterruptedJobs(store::Database& db, int64_t now_ms);

// Replicas. Each job row names the process running it (retrain_jobs.owner,
// "host:pid") and when that process last said it was alive (heartbeat).
// HeartbeatJobs renews the heartbeat of this process's running and queued
// jobs (the scheduler's ticker, every tick); TakeOverStaleWork (below) takes
// over the jobs of processes whose heartbeat stopped.
Status HeartbeatJobs(store::Database& db, int64_t now_ms);

// The scheduler's durable queue. Queued jobs are retrain_jobs rows in status
// `queued` (owner, heartbeat as above; attempt, not_before and continuous in
// their own columns); HeartbeatJobs renews them too.
//
// QueueJob inserts `job` as a queued row of this process (heartbeat now_ms)
// within the caller's transaction, and sets job.id.
Status QueueJob(store::Connection& c, QueuedJob& job, int64_t now_ms);
// Removes a queued row of this process (a trigger folded into another job,
// a skipped continuous update); a row no longer queued or no longer this
// process's is left alone. Returns whether it removed it.
Result<bool> DropQueuedJob(store::Database& db, int64_t id);
// Ends a queued row of this process without running it: status `status`
// (`cancelled` by Scheduler::Cancel) with `message`. Returns whether it did.
Result<bool> EndQueuedJob(store::Database& db, int64_t id, int64_t now_ms,
                          const std::string& status, const std::string& message);
// Turns a queued row of this process into its next attempt in place (a
// job that failed before it could start): kInPlace when it did; kNotQueued
// when the row is still this process's but no longer queued (it became a
// job); kNotMine when another process owns it now (taken over: that process
// runs it, so no retry is queued here); kCancelled when it was cancelled
// (from another process, RequestCancel) or deleted: nothing runs it again.
enum class Requeued : uint8_t { kInPlace, kNotQueued, kNotMine, kCancelled };
// Of `ids`, rows this process holds queued in memory, those no longer its
// to run: ended by another process (RequestCancel), claimed by another
// (taken over), or gone. A row still queued or running for this process
// is not among them (one of its workers may have just started it).
Result<std::vector<int64_t>> QueuedRowsGoneElsewhere(store::Database& db,
                                                     const std::vector<int64_t>& ids);
Result<Requeued> RequeueJob(store::Database& db, const QueuedJob& retry);
// The lease holder's takeover, in one transaction: other processes' running
// jobs whose heartbeat is older than `stale_before_ms`, each marked failed
// ("interrupted: its process ... stopped renewing") together with its rerun
// queued for this process (trigger "takeover of job N (...)", attempt 1;
// a job someone asked to cancel, RequestCancel, ends `cancelled` instead,
// with no rerun), and the queued rows of other processes whose heartbeat is older than
// `stale_before_ms`, claimed for this process as they are (compare-and-set
// on their owner).
// A live process of this host is never taken over. Only models for which
// `runs` is true get a rerun or are claimed (a stale running job of another
// model is still marked failed; a stale queued one stays queued until a
// lease holder with a policy for its model takes it over: replicas are
// expected to share their policies). Returns the queued jobs now this
// process's to run.
Result<std::vector<QueuedJob>> TakeOverStaleWork(
    store::Database& db, int64_t now_ms, int64_t stale_before_ms,
    const std::function<bool(const std::string& model)>& runs);

}  // namespace keel::retrain
