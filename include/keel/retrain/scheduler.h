// File: keel/retrain/scheduler.h
//
// The retraining scheduler of `keel server`: runs the policies' jobs when
// their cron schedule comes due, when monitoring raises one of their alerts,
// or when asked, one job per model at a time and at most `max_concurrent`
// jobs at once, with retries and cancellation.
//
//   keel::retrain::RetrainScheduler scheduler(policies, db, clock, run_job, {});
//   KEEL_RETURN_IF_ERROR(scheduler.Start());
//   alert_bus.Subscribe([&](const monitor::Alert& a) { scheduler.OnAlert(a); });
//   ...
//   scheduler.Stop();   // cancels running jobs and waits for them
//
// Triggers:
//   - schedule: the first slot after the last one fired comes due on the
//     injected Clock. The last slot fired per model is kept in the store
//     (retrain_schedule), so a restart neither repeats nor forgets a run.
//     Slots missed while the server was down (or skipped by a forward clock
//     jump) follow policy.missed: run_once runs one job for all of them at
//     start (or at the jump), skip runs none and waits for the next slot. A
//     backward clock jump never re-runs a slot already fired: nothing fires
//     until the clock passes the next slot after the last one fired. A
//     policy seen for the first time starts counting from now (no run for
//     the past).
//   - alert: an alert whose rule is in policy.on_alerts, for the policy's
//     model (any version).
//   - continuous: every policy.continuous.every of the Clock (counted from
//     Start, not stored: a restart waits one interval), a continuous update
//     (RetrainRequest::continuous; the job itself is skipped, unrecorded,
//     while there are too few new labeled rows). A cadence that comes due
//     while the clock jumped forward runs once; when the clock goes back by
//     more than the cadence, the next update is one cadence from then.
//   - manual: Trigger().
// A job whose challenger is in its shadow phase has finished as far as the
// scheduler is concerned: a new trigger runs a new job, whose challenger
// supersedes the one in shadow if it passes the gate.
// A trigger for a model whose job is queued or running is folded into it
// (counted in folded()); it does not queue a second job. A full retrain
// is never folded into a continuous update: it takes the place of a queued
// one, and queues behind a running one. A running job being
// cancelled takes no more triggers: they queue behind it.
//
// One job per model holds across processes too: a job the runner could not
// start because another process runs one of its model (RunRetrainJob
// returns Unavailable and leaves its row queued) waits 5 s of the Clock
// and tries again, without counting as an attempt.
//
// Retries: a job that ends `failed` is queued again after
// job.retry_backoff * 2^(attempt-1), up to job.retries times; rejected,
// promoted and cancelled jobs are not retried, nor a job whose runner
// returns FailedPrecondition (its row is no longer this process's).
//
// The queue is durable: every queued job is also a retrain_jobs row in
// status `queued` (keel/retrain/retrain.h, QueuedJob) owned by this process
// (owner, heartbeat renewed by the ticker with its running jobs), stored
// before it counts as queued: a schedule slot's job in the same transaction
// as the slot, a takeover's rerun in the same transaction as the mark on
// the job taken over, a retry in the same transaction as its job's `failed`
// status (RetrainRequest::retry), a trigger before Trigger() returns. A
// worker starting it turns that row into the running job (RunRetrainJob
// claims it with a compare-and-set; one row per run in the history). When
// the process dies, the lease holder takes its queued rows over like its
// running jobs (TakeOverStaleWork) and runs them once. A trigger folded into
// another job stores no row (or its row is deleted when the fold is only
// seen once it is stored); a continuous update replaced by a full retrain,
// or skipped by the job, is deleted; Cancel() of a queued job ends its row
// `cancelled` (deleted at a later tick instead if that write fails); a
// queued row that another process ended (RequestCancel from another
// replica or `keel retrain cancel`) or took over leaves the in-memory queue
// at the next tick, and a running job asked to stop through the store stops
// within about a second (RunRetrainJob reads the request with its
// heartbeat). Stop()
// leaves queued rows queued: the lease holder takes them over once their
// heartbeat is older than lease_ttl_ms. Without a lease (one process, no
// replicas) nothing takes them over.
//
// Time: due times are read from the Clock at each Tick(); Start() runs a
// thread that calls Tick() every tick_interval of real time (tests call
// Tick() themselves with a ManualClock).
//
// Threads: all members may be called from any thread; mu_ guards the
// in-memory queue (each entry names its stored row), the running set, the
// rows left to delete and the counters, and is never held across a store
// round trip (Tick() serialises itself with tick_mu_ instead; Trigger(),
// Cancel() and the workers write their rows between two holds of mu_); jobs
// run on the scheduler's worker threads (max_concurrent of them), never on
// the caller's.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "keel/core/clock.h"
#include "keel/core/result.h"
#include "keel/monitor/alerts.h"
#include "keel/retrain/policy.h"
#include "keel/retrain/retrain.h"
#include "keel/store/lease.h"
#include "keel/store/store.h"

namespace keel::retrain {

struct SchedulerOptions {
  int max_concurrent = 1;
  std::chrono::milliseconds tick_interval{1000};
  // Called for every policy with a watch (policy.watch.duration > 0) once
  // per watch_interval of the Clock, on the scheduler's own watch thread
  // (WatchPromotion in the server). Errors are retried at the next interval.
  std::function<Status(const RetrainPolicy&)> watch;
  // The same for every policy, before its watch: FinishShadow in the
  // server (which also ends phases of policies that no longer have one).
  std::function<Status(const RetrainPolicy&)> shadow;
  int64_t watch_interval_ms = 30'000;
  // Replicas: when set, schedule slots, continuous updates, shadow decisions
  // and watches run only while this process holds the store's
  // "retrain-scheduler" lease (keel/store/lease.h) under this holder name,
  // renewed every tick; a standby takes over within lease_ttl_ms of the
  // holder's last renewal. Triggers (alerts, API) run wherever they arrive.
  std::string lease_holder;
  int64_t lease_ttl_ms = 30'000;
};

class RetrainScheduler {
 public:
  // Runs one job (RunRetrainJob with the server's RetrainEnv, in the server).
  using JobRunner = std::function<Result<RetrainJob>(const RetrainPolicy&, const RetrainRequest&)>;

  RetrainScheduler(std::vector<RetrainPolicy> policies, store::Database& db, const Clock& clock,
                   JobRunner run_job, SchedulerOptions options);
  ~RetrainScheduler();
  RetrainScheduler(const RetrainScheduler&) = delete;
  RetrainScheduler& operator=(const RetrainScheduler&) = delete;

  // Loads the schedule state, applies the missed-run policy (one Tick()) and
  // starts the ticker, the workers and the watch thread. Once only, and not
  // after Stop().
  Status Start();
  // Cancels queued and running jobs, waits for every thread. Idempotent;
  // concurrent calls all return after the threads are joined.
  void Stop();

  // One scheduling pass at the Clock's time: queues due schedules (a slot
  // counts as fired once stored with its queued job; a store error leaves
  // it due and is returned after the other policies were seen). Thread-safe;
  // Start()'s ticker calls it.
  Status Tick();
  // Queues a job for `model`, stored as a queued row before it returns (NotFound when no
  // policy names it; the store's error when it could not be stored, and then nothing is queued).
  Status Trigger(const std::string& model, const std::string& trigger, const std::string& actor);
  // Queues jobs for the policies that list the alert's rule.
  void OnAlert(const monitor::Alert& alert);
  // Cancels the model's queued or running job (NotFound when none); a
  // queued one's row ends `cancelled`.
  Status Cancel(const std::string& model);

  // Blocks until no job runs and none queued is due; retries still waiting
  // out their backoff do not count (tests).
  void WaitIdle();

  // Each policy's scheduling state now (the dashboard's retraining page).
  struct PolicyState {
    const RetrainPolicy* policy;      // one of policies()
    int64_t last_slot_ms = -1;        // the newest schedule slot counted as fired; -1 none yet
    int64_t next_slot_ms = -1;        // the next one; -1 without a schedule
    int64_t next_continuous_ms = -1;  // the next continuous update; -1 without one
    std::string state;                // "idle", "queued" or "running"
  };
  std::vector<PolicyState> Snapshot() const;

  // Whether this process runs the schedules now (always without a lease).
  bool leader() const;

  uint64_t started() const;  // jobs started
  uint64_t folded() const;   // triggers folded into a queued or running job
  const std::vector<RetrainPolicy>& policies() const { return policies_; }

 private:
  // A queued job; id is its stored row (0: none, a retry whose row could not be stored).
  using Pending = QueuedJob;
  struct Running {
    std::shared_ptr<std::atomic<bool>> cancel;
    bool continuous = false;
  };

  const RetrainPolicy* Find(const std::string& model) const;
  // Whether the model has a job queued, or running that `p` would fold into. mu_ held.
  bool BusyLocked(const Pending& p) const;
  // The queued continuous update `p` (a full retrain) would replace; queue_.end() if none.
  // mu_ held.
  std::deque<Pending>::iterator ReplaceableLocked(const Pending& p);
  // Whether EnqueueLocked would fold `p` away entirely (then it needs no row). mu_ held.
  bool AbsorbedLocked(const Pending& p);
  // Queues unless the model has a job queued or running; the rows of what
  // is folded away (p's, or the continuous update p replaces) go to `drop`.
  // mu_ held.
  void EnqueueLocked(Pending p, std::vector<int64_t>& drop);
  // EnqueueLocked for each, under mu_ (nothing once stopping: the rows stay
  // queued); wakes the workers, then deletes the folded rows.
  void QueueAll(std::vector<Pending> due);
  void WorkerLoop();
  // Stores the model's last slot and, when given, `job` as a queued row, in one transaction.
  Status SaveSlot(const std::string& model, int64_t slot_ms, Pending* job, int64_t now_ms);
  // Stores `job` as a queued row (sets job.id).
  Status Store(Pending& job, int64_t now_ms);
  // Deletes queued rows of this process; those it could not go to orphans_. mu_ not held.
  void DropRows(const std::vector<int64_t>& rows);
  // Removes from queue_ the jobs whose rows another process ended (RequestCancel) or took
  // over. mu_ not held.
  void ForgetRowsGoneElsewhere();

  std::vector<RetrainPolicy> policies_;
  store::Database& db_;
  const Clock& clock_;
  JobRunner run_job_;
  SchedulerOptions options_;

  std::mutex tick_mu_;  // one Tick() at a time; held across its store round trips, mu_ not
  mutable std::mutex mu_;
  std::condition_variable cv_;              // work queued, job done, stop
  std::deque<Pending> queue_;               // guarded by mu_; each names its stored row
  std::vector<int64_t> orphans_;            // rows to delete at the next tick; guarded by mu_
  std::map<std::string, Running> running_;  // by model; guarded by mu_
  // Written by Tick() only, under mu_; Tick reads them without it.
  std::map<std::string, int64_t> last_slot_;        // by model; guarded by mu_
  std::map<std::string, int64_t> next_continuous_;  // by model; guarded by mu_
  int64_t last_watch_ms_ = 0;                       // guarded by mu_
  bool loaded_ = false;                             // guarded by mu_; written by Tick() only
  bool stopping_ = false;                           // guarded by mu_
  bool started_flag_ = false;                       // guarded by mu_
  uint64_t started_ = 0;                            // guarded by mu_
  uint64_t folded_ = 0;                             // guarded by mu_
  std::unique_ptr<store::Lease> lease_;             // set once; used by Tick() under tick_mu_
  bool leader_ = true;                              // guarded by mu_; written by Tick() only
  std::mutex join_mu_;                              // held by the Stop() that joins the threads
  std::vector<std::thread> workers_;
  std::thread ticker_;
  std::thread watcher_;
};

// Cancels the model's retraining wherever it runs, for
// POST /api/2.0/keel/retrain/jobs/cancel and `keel retrain cancel`:
// RequestCancel (every process's queued and running jobs; stored first, so
// a job names context.actor when it stops), then `local`'s Cancel() (this
// server's scheduler, may be null: immediate for the jobs it holds, those
// only in its memory included); when neither found a job, the shadow phase
// ends (CancelShadow). NotFound when there was nothing to cancel.
struct CancelOutcome {
  std::string what;       // "job" or "shadow"
  CancelRequest request;  // what RequestCancel did
};
Result<CancelOutcome> CancelRetraining(store::Database& db, registry::RegistryService& registry,
                                       const Clock& clock, const std::string& model,
                                       const registry::ChangeContext& context,
                                       RetrainScheduler* local);

}  // namespace keel::retrain
