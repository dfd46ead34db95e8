// RetrainScheduler (keel/retrain/scheduler.h).
#include "keel/retrain/scheduler.h"

#include <algorithm>
#include <optional>

namespace keel::retrain {
namespace {

// A slot older than this when first seen due is "missed" (the server was
// down, or the clock jumped forward), not merely noticed late by a tick.
constexpr int64_t kOnTimeGraceMs = 2 * 60'000;
// Scanning for the newest slot due stops after this many slots.
constexpr int kMaxSlotsScanned = 1'000'000;
// A job that could not start because another process runs one of its model
// waits this long before it tries again.
constexpr int64_t kBusyWaitMs = 5'000;

}  // namespace

RetrainScheduler::RetrainScheduler(std::vector<RetrainPolicy> policies, store::Database& db,
                                   const Clock& clock, JobRunner run_job, SchedulerOptions options)
    : policies_(std::move(policies)),
      db_(db),
      clock_(clock),
      run_job_(std::move(run_job)),
      options_(options) {
  options_.max_concurrent = std::max(1, options_.max_concurrent);
  if (!options_.lease_holder.empty()) {
    lease_ = std::make_unique<store::Lease>(db_, clock_, "retrain-scheduler", options_.lease_holder,
                                            options_.lease_ttl_ms);
  }
}

RetrainScheduler::~RetrainScheduler() { Stop(); }

const RetrainPolicy* RetrainScheduler::Find(const std::string& model) const {
  for (const RetrainPolicy& p : policies_) {
    if (p.model == model) return &p;
  }
  return nullptr;
}

Status RetrainScheduler::SaveSlot(const std::string& model, int64_t slot_ms, Pending* job,
                                  int64_t now_ms) {
  return db_.Write([&](store::Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(
        c.Exec("INSERT INTO retrain_schedule(model, last_slot) VALUES (?, ?) ON CONFLICT(model) DO "
               "UPDATE SET last_slot = excluded.last_slot",
               {store::Value(model), store::Value(slot_ms)}));
    if (job != nullptr) KEEL_RETURN_IF_ERROR(QueueJob(c, *job, now_ms));
    return OkStatus();
  });
}

Status RetrainScheduler::Store(Pending& job, int64_t now_ms) {
  return db_.Write([&](store::Connection& c) { return QueueJob(c, job, now_ms); });
}

void RetrainScheduler::DropRows(const std::vector<int64_t>& rows) {
  for (int64_t id : rows) {
    if (id == 0) continue;
    if (!DropQueuedJob(db_, id).ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      orphans_.push_back(id);  // dropped at a later tick
    }
  }
}

Status RetrainScheduler::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (started_flag_ || stopping_) {
      return FailedPrecondition("the retraining scheduler is already started (or stopped)");
    }
    started_flag_ = true;
  }
  KEEL_RETURN_IF_ERROR(Tick());
  for (int i = 0; i < options_.max_concurrent; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  ticker_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      cv_.wait_for(lock, options_.tick_interval);
      if (stopping_) return;
      lock.unlock();
      Tick().IgnoreError();  // a store error is retried at the next tick
      lock.lock();
    }
  });
  if (options_.watch || options_.shadow) {
    // The watch and the shadow decisions score live rows with two models:
    // on their own thread, so a slow pass never delays a schedule or a
    // trigger.
    watcher_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!stopping_) {
        const int64_t now = clock_.NowMillis();
        // Due after an interval, or at once when the clock went back.
        if (now - last_watch_ms_ >= options_.watch_interval_ms || now < last_watch_ms_) {
          last_watch_ms_ = now;
          if (!leader_) continue;  // the lease holder decides shadows and watches
          lock.unlock();
          // Errors are retried next time.
          for (const RetrainPolicy& p : policies_) {
            if (options_.shadow) options_.shadow(p).IgnoreError();
            if (options_.watch && p.watch.duration_ms > 0) options_.watch(p).IgnoreError();
          }
          lock.lock();
          continue;
        }
        cv_.wait_for(lock, std::min(options_.tick_interval,
                                    std::chrono::milliseconds(options_.watch_interval_ms)));
      }
    });
  }
  return OkStatus();
}

void RetrainScheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    queue_.clear();
    for (auto& [model, r] : running_) r.cancel->store(true);
  }
  cv_.notify_all();
  // One caller joins; a concurrent Stop() waits for it through join_mu_.
  std::lock_guard<std::mutex> join_lock(join_mu_);
  if (ticker_.joinable()) ticker_.join();
  if (watcher_.joinable()) watcher_.join();
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
  // Another replica need not wait for the lease to expire.
  if (lease_ != nullptr) {
    std::lock_guard<std::mutex> ticking(tick_mu_);  // a Tick() from another thread
    lease_->Release().IgnoreError();
  }
}

bool RetrainScheduler::leader() const {
  std::lock_guard<std::mutex> lock(mu_);
  return leader_;
}

// The store round trips run without mu_, so triggers, snapshots and the
// workers never wait on the store for a tick; tick_mu_ keeps one Tick at a
// time, and only Tick writes leader_, loaded_, last_slot_ and
// next_continuous_ (under mu_, for Snapshot), so it reads them without mu_.
Status RetrainScheduler::Tick() {
  std::lock_guard<std::mutex> ticking(tick_mu_);
  const int64_t now = clock_.NowMillis();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return OkStatus();
  }
  std::vector<Pending> due;  // stored; queued in memory at the end, under mu_
  {
    std::vector<int64_t> orphans;
    {
      std::lock_guard<std::mutex> lock(mu_);
      orphans.swap(orphans_);
    }
    DropRows(orphans);
  }
  ForgetRowsGoneElsewhere();
  if (lease_ != nullptr) {
    // This process's running and queued jobs (its shadow decisions included) are alive.
    // Jobs also beat from their own watchdog; a missed beat is renewed next tick.
    HeartbeatJobs(db_, now).IgnoreError();
    Result<bool> mine = lease_->Acquire();
    const bool was = leader_;
    const bool leader = mine.ok() && *mine;
    {
      std::lock_guard<std::mutex> lock(mu_);
      leader_ = leader;
      if (!leader) {
        // A standby: the holder fires the slots. Its view of them is read
        // again on taking over.
        loaded_ = false;
        next_continuous_.clear();
      } else if (!was) {
        loaded_ = false;
      }
    }
    if (!leader) return mine.ok() ? OkStatus() : mine.status();
    // Running and queued jobs whose process stopped renewing their heartbeat
    // run here (their rows already queued for this process).
    Result<std::vector<QueuedJob>> stale =
        TakeOverStaleWork(db_, now, now - options_.lease_ttl_ms,
                          [this](const std::string& model) { return Find(model) != nullptr; });
    if (stale.ok()) {
      for (QueuedJob& job : *stale) due.push_back(std::move(job));
    }
  }
  if (!loaded_) {
    std::map<std::string, int64_t> slots;
    const Status read = db_.Read([&](store::Connection& c) {
      slots.clear();
      return c.Query("SELECT model, last_slot FROM retrain_schedule", {},
                     [&](const store::RowView& row) {
                       slots[std::string(row.Text(0))] = row.Int(1);
                       return OkStatus();
                     });
    });
    if (!read.ok()) {
      QueueAll(std::move(due));
      return read;
    }
    std::lock_guard<std::mutex> lock(mu_);
    last_slot_ = std::move(slots);
    loaded_ = true;
  }
  Status first_error;
  for (const RetrainPolicy& p : policies_) {
    if (p.continuous.every_ms <= 0) continue;
    auto it = next_continuous_.find(p.model);
    if (it == next_continuous_.end()) {
      std::lock_guard<std::mutex> lock(mu_);
      next_continuous_.emplace(p.model, now + p.continuous.every_ms);
      continue;
    }
    if (it->second - now > p.continuous.every_ms) {
      // The clock went back: the cadence counts from now, not from a
      // future it may take as long as the jump to reach again.
      std::lock_guard<std::mutex> lock(mu_);
      it->second = now + p.continuous.every_ms;
      continue;
    }
    if (now < it->second) continue;
    Pending update;
    update.model = p.model;
    update.trigger = "continuous";
    update.actor = "keel-scheduler";
    update.continuous = true;
    bool absorbed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      absorbed = AbsorbedLocked(update);
    }
    // Stored first (a failed write leaves it due for the next tick).
    if (!absorbed) {
      if (Status s = Store(update, now); !s.ok()) {
        if (first_error.ok()) first_error = s;
        continue;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      it->second = now + p.continuous.every_ms;
      if (absorbed) ++folded_;
    }
    if (!absorbed) due.push_back(std::move(update));
  }
  for (const RetrainPolicy& p : policies_) {
    if (!p.schedule) continue;
    auto it = last_slot_.find(p.model);
    if (it == last_slot_.end()) {
      // First sight: count from now, no run for the past.
      if (Status s = SaveSlot(p.model, now, nullptr, now); !s.ok()) {
        if (first_error.ok()) first_error = s;
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      last_slot_[p.model] = now;
      continue;
    }
    const int64_t first_due = p.schedule->NextAfter(it->second);
    if (first_due < 0 || first_due > now) continue;  // not yet (also after a backward jump)
    int64_t newest = first_due;
    int slots = 1;
    for (; slots < kMaxSlotsScanned; ++slots) {
      const int64_t next = p.schedule->NextAfter(newest);
      if (next < 0 || next > now) break;
      newest = next;
    }
    const bool on_time = slots == 1 && now - first_due <= kOnTimeGraceMs;
    std::optional<Pending> job;
    if (on_time || p.missed == "run_once") {
      job.emplace();
      job->model = p.model;
      job->trigger = on_time ? "schedule" : "schedule (missed " + std::to_string(slots) + ")";
      job->actor = "keel-scheduler";
    }
    bool absorbed = false;
    if (job) {
      std::lock_guard<std::mutex> lock(mu_);
      absorbed = AbsorbedLocked(*job);
    }
    // Stored first, with its queued job in the same transaction: a slot
    // counts as fired only once that is durable (a failed write leaves it
    // due for the next tick).
    if (Status s = SaveSlot(p.model, newest, job && !absorbed ? &*job : nullptr, now); !s.ok()) {
      if (first_error.ok()) first_error = s;
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      it->second = newest;
      if (absorbed) ++folded_;
    }
    if (job && !absorbed) due.push_back(std::move(*job));
  }
  QueueAll(std::move(due));
  return first_error;
}

void RetrainScheduler::ForgetRowsGoneElsewhere() {
  std::vector<int64_t> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Pending& p : queue_) {
      if (p.id > 0) ids.push_back(p.id);
    }
  }
  if (ids.empty()) return;
  Result<std::vector<int64_t>> gone = QueuedRowsGoneElsewhere(db_, ids);
  if (!gone.ok() || gone->empty()) return;  // a store error: looked at again next tick
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::erase_if(queue_, [&](const Pending& p) {
      return std::find(gone->begin(), gone->end(), p.id) != gone->end();
    });
  }
  cv_.notify_all();
}

void RetrainScheduler::QueueAll(std::vector<Pending> due) {
  if (due.empty()) return;
  std::vector<int64_t> drop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Stopping: the rows stay queued, for the lease holder to take over.
    if (stopping_) return;
    for (Pending& p : due) EnqueueLocked(std::move(p), drop);
  }
  cv_.notify_all();
  DropRows(drop);
}

std::vector<RetrainScheduler::PolicyState> RetrainScheduler::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<PolicyState> out;
  for (const RetrainPolicy& p : policies_) {
    PolicyState st;
    st.policy = &p;
    if (auto it = last_slot_.find(p.model); it != last_slot_.end()) {
      st.last_slot_ms = it->second;
      if (p.schedule) st.next_slot_ms = p.schedule->NextAfter(it->second);
    }
    if (auto it = next_continuous_.find(p.model); it != next_continuous_.end()) {
      st.next_continuous_ms = it->second;
    }
    st.state = running_.contains(p.model) ? "running"
               : std::any_of(queue_.begin(), queue_.end(),
                             [&](const Pending& q) { return q.model == p.model; })
                   ? "queued"
                   : "idle";
    out.push_back(std::move(st));
  }
  return out;
}

bool RetrainScheduler::BusyLocked(const Pending& p) const {
  // A running job whose cancel flag is set will not do the work: queue
  // behind it instead of folding into it.
  auto r = running_.find(p.model);
  // A full retrain does not fold into a running update (it learns more).
  return (r != running_.end() && !r->second.cancel->load() &&
          (p.continuous || !r->second.continuous)) ||
         std::any_of(queue_.begin(), queue_.end(),
                     [&](const Pending& q) { return q.model == p.model; });
}

std::deque<RetrainScheduler::Pending>::iterator RetrainScheduler::ReplaceableLocked(
    const Pending& p) {
  // A full retrain replaces a queued continuous update (it sees the same
  // rows and more).
  if (p.continuous) return queue_.end();
  return std::find_if(queue_.begin(), queue_.end(),
                      [&](const Pending& x) { return x.model == p.model && x.continuous; });
}

bool RetrainScheduler::AbsorbedLocked(const Pending& p) {
  return BusyLocked(p) && ReplaceableLocked(p) == queue_.end();
}

void RetrainScheduler::EnqueueLocked(Pending p, std::vector<int64_t>& drop) {
  if (BusyLocked(p)) {
    ++folded_;
    auto q = ReplaceableLocked(p);
    if (q != queue_.end()) {
      drop.push_back(q->id);
      *q = std::move(p);
    } else {
      drop.push_back(p.id);
    }
    return;
  }
  queue_.push_back(std::move(p));
}

Status RetrainScheduler::Trigger(const std::string& model, const std::string& trigger,
                                 const std::string& actor) {
  if (Find(model) == nullptr) return NotFound("no retraining policy for model '" + model + "'");
  Pending p;
  p.model = model;
  p.trigger = trigger;
  p.actor = actor;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Unavailable("the retraining scheduler is stopping");
    if (AbsorbedLocked(p)) {
      ++folded_;  // the queued or running job does the work: nothing to store
      return OkStatus();
    }
  }
  // Durable before it returns (not under mu_: a tick or a worker may be on the store).
  KEEL_RETURN_IF_ERROR(Store(p, clock_.NowMillis()));
  std::vector<int64_t> drop;
  bool stopping;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping = stopping_;
    if (!stopping) EnqueueLocked(std::move(p), drop);
  }
  if (stopping) {
    DropRows({p.id});
    return Unavailable("the retraining scheduler is stopping");
  }
  cv_.notify_all();
  DropRows(drop);
  return OkStatus();
}

void RetrainScheduler::OnAlert(const monitor::Alert& alert) {
  for (const RetrainPolicy& p : policies_) {
    if (p.model != alert.model) continue;
    if (std::find(p.on_alerts.begin(), p.on_alerts.end(), alert.rule) == p.on_alerts.end())
      continue;
    const std::string trigger = "alert:" + alert.rule;
    const Status st = Trigger(p.model, trigger, "keel-monitor");
    if (st.ok() || st.code() == StatusCode::kNotFound) continue;
    // The alert is not raised again within its cooldown: a retrain its
    // trigger could not store is queued in memory only rather than lost.
    Pending job;
    job.model = p.model;
    job.trigger = trigger;
    job.actor = "keel-monitor";
    std::vector<int64_t> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      EnqueueLocked(std::move(job), drop);
    }
    cv_.notify_all();
    DropRows(drop);
  }
}

Status RetrainScheduler::Cancel(const std::string& model) {
  int64_t row = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto q = std::find_if(queue_.begin(), queue_.end(),
                          [&](const Pending& p) { return p.model == model; });
    if (q == queue_.end()) {
      auto r = running_.find(model);
      if (r == running_.end()) {
        return NotFound("no retraining job of model '" + model + "' to cancel");
      }
      r->second.cancel->store(true);
      return OkStatus();
    }
    row = q->id;
    queue_.erase(q);
  }
  cv_.notify_all();
  if (row != 0 &&
      !EndQueuedJob(db_, row, clock_.NowMillis(), "cancelled", "cancelled while queued").ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    orphans_.push_back(row);  // deleted at a later tick instead
  }
  return OkStatus();
}

void RetrainScheduler::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    // The oldest queued job that is due and whose model has none running.
    auto ready = queue_.end();
    if (!stopping_) {
      const int64_t now = clock_.NowMillis();
      ready = std::find_if(queue_.begin(), queue_.end(), [&](const Pending& p) {
        return p.not_before_ms <= now && running_.count(p.model) == 0;
      });
    }
    if (stopping_) return;
    if (ready == queue_.end()) {
      cv_.wait_for(lock, options_.tick_interval);
      continue;
    }
    Pending job = std::move(*ready);
    queue_.erase(ready);
    const RetrainPolicy* policy = Find(job.model);
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    running_[job.model] = Running{cancel, job.continuous};
    ++started_;
    lock.unlock();

    const bool may_retry = job.attempt <= policy->job.retries;
    const int64_t backoff = policy->job.retry_backoff_ms << std::min(job.attempt - 1, 20);
    Pending retry = job;
    retry.id = 0;
    retry.attempt = job.attempt + 1;
    RetrainRequest request;
    request.trigger = job.attempt > 1
                          ? job.trigger + " (attempt " + std::to_string(job.attempt) + ")"
                          : job.trigger;
    request.actor = job.actor;
    request.cancel = cancel.get();
    request.continuous = job.continuous;
    request.queued_job_id = job.id;
    if (may_retry) {
      request.retry = &retry;
      request.retry_backoff_ms = backoff;
    }
    Result<RetrainJob> result = run_job_(*policy, request);
    bool ended_elsewhere = false;
    if (!result.ok() && result.status().code() == StatusCode::kUnavailable && job.id > 0) {
      // Not started: another process runs a job of the model (or the store
      // was unavailable). The row waits its turn, queued as it was; this is
      // not an attempt. Cancelled meanwhile (here: it ends so; elsewhere: its
      // row is no longer queued), it does not wait.
      if (cancel->load()) {
        EndQueuedJob(db_, job.id, clock_.NowMillis(), "cancelled", "cancelled while queued")
            .status()
            .IgnoreError();  // a row left queued is forgotten at a later tick
        ended_elsewhere = true;
      } else {
        Pending again = job;
        again.not_before_ms = clock_.NowMillis() + kBusyWaitMs;
        Result<Requeued> kept = RequeueJob(db_, again);
        if (kept.ok() && *kept == Requeued::kInPlace) {
          lock.lock();
          running_.erase(job.model);
          --started_;  // it did not start
          if (!stopping_) queue_.push_back(std::move(again));
          cv_.notify_all();
          continue;
        }
        // Cancelled, or taken over, by another process.
        ended_elsewhere =
            kept.ok() && (*kept == Requeued::kCancelled || *kept == Requeued::kNotMine);
      }
    }
    const bool failed = !result.ok() || result->status == "failed";
    // FailedPrecondition: the row is no longer this process's (cancelled, or
    // taken over by another replica, which runs it): nothing more here.
    const bool disowned = ended_elsewhere || (!result.ok() && result.status().code() ==
                                                                  StatusCode::kFailedPrecondition);
    bool retrying = failed && !disowned && !cancel->load() && may_retry;
    // The stored queue follows, before the job counts as done (WaitIdle).
    if (retrying && retry.id == 0) {
      // The runner queued no retry (it failed before it started, or it is
      // not RunRetrainJob): the queued row becomes the retry in place, or a
      // new row when the runner had turned it into a job.
      retry.not_before_ms = clock_.NowMillis() + backoff;
      retry.id = job.id;
      Result<Requeued> in_place =
          job.id != 0 ? RequeueJob(db_, retry) : Result<Requeued>(Requeued::kNotQueued);
      if (in_place.ok() && (*in_place == Requeued::kNotMine || *in_place == Requeued::kCancelled)) {
        retrying = false;  // taken over meanwhile (its new owner runs it), or cancelled
        retry.id = 0;
      } else if (!in_place.ok() || *in_place != Requeued::kInPlace) {
        retry.id = 0;
        if (!Store(retry, clock_.NowMillis()).ok()) retry.id = -1;  // kept in memory only
      }
    } else if (!retrying && retry.id > 0) {
      DropRows({retry.id});  // cancelled after the runner queued it
    }
    if (!retrying && job.id != 0) {
      // A row the runner did not turn into a job (a runner that is not
      // RunRetrainJob, or one that failed before it started) is not left
      // queued; a row it did, or one no longer this process's, is not
      // touched (both calls only change this process's queued rows).
      if (result.ok()) {
        DropRows({job.id});
      } else {
        if (!EndQueuedJob(db_, job.id, clock_.NowMillis(), "failed", result.status().message())
                 .ok()) {
          std::lock_guard<std::mutex> orphan_lock(mu_);
          orphans_.push_back(job.id);  // deleted at a later tick instead
        }
      }
    }

    lock.lock();
    running_.erase(job.model);
    // Stopping cancels the running jobs (Stop), so no retry is queued then:
    // the job's failure stands, and a retry row the runner had stored was
    // dropped above.
    if (retrying && !stopping_) {
      if (retry.id < 0) retry.id = 0;
      queue_.push_back(std::move(retry));
    }
    cv_.notify_all();
  }
}

void RetrainScheduler::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    const int64_t now = clock_.NowMillis();
    const bool due = std::any_of(queue_.begin(), queue_.end(),
                                 [&](const Pending& p) { return p.not_before_ms <= now; });
    if (stopping_ || (running_.empty() && !due)) return;
    cv_.wait_for(lock, std::chrono::milliseconds(20));
  }
}

uint64_t RetrainScheduler::started() const {
  std::lock_guard<std::mutex> lock(mu_);
  return started_;
}

uint64_t RetrainScheduler::folded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return folded_;
}

Result<CancelOutcome> CancelRetraining(store::Database& db, registry::RegistryService& registry,
                                       const Clock& clock, const std::string& model,
                                       const registry::ChangeContext& context,
                                       RetrainScheduler* local) {
  CancelOutcome out;
  KEEL_ASSIGN_OR_RETURN(out.request, RequestCancel(db, model, context.actor, clock.NowMillis()));
  bool held_here = false;
  if (local != nullptr) {
    const Status c = local->Cancel(model);
    if (!c.ok() && c.code() != StatusCode::kNotFound) return c;
    held_here = c.ok();
  }
  if (held_here || out.request.queued > 0 || out.request.running > 0) {
    out.what = "job";
    return out;
  }
  KEEL_ASSIGN_OR_RETURN(int ended, CancelShadow(db, registry, clock, model, context));
  if (ended == 0) {
    return NotFound("no retraining job of model '" + model +
                    "' is queued, running or in its shadow phase");
  }
  out.what = "shadow";
  return out;
}

}  // namespace keel::retrain
