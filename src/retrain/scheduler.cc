// RetrainScheduler (keel/retrain/scheduler.h).
#include "keel/retrain/scheduler.h"

#include <algorithm>

namespace keel::retrain {
namespace {

// A slot older than this when first seen due is "missed" (the server was
// down, or the clock jumped forward), not merely noticed late by a tick.
constexpr int64_t kOnTimeGraceMs = 2 * 60'000;
// Scanning for the newest slot due stops after this many slots.
constexpr int kMaxSlotsScanned = 1'000'000;

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

Status RetrainScheduler::SaveSlot(const std::string& model, int64_t slot_ms) {
  return db_.Write([&](store::Connection& c) {
    return c.Exec(
        "INSERT INTO retrain_schedule(model, last_slot) VALUES (?, ?) ON CONFLICT(model) DO "
        "UPDATE SET last_slot = excluded.last_slot",
        {store::Value(model), store::Value(slot_ms)});
  });
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
        if (now - last_watch_ms_ >= options_.watch_interval_ms) {
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
  std::vector<Pending> due;  // queued at the end, under mu_
  if (lease_ != nullptr) {
    // This process's running jobs (its shadow decisions included) are alive.
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
    // Jobs whose process stopped renewing their heartbeat run again here.
    Result<std::vector<RetrainJob>> stale =
        TakeOverStaleJobs(db_, now, now - options_.lease_ttl_ms);
    if (stale.ok()) {
      for (const RetrainJob& job : *stale) {
        if (Find(job.model) == nullptr) continue;  // no policy here any more
        Pending again{job.model,
                      "takeover of job " + std::to_string(job.id) + " (" + job.trigger + ")",
                      "keel-scheduler", 1, 0};
        again.continuous = job.trigger.rfind("continuous", 0) == 0;  // an update stays one
        due.push_back(std::move(again));
      }
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
    if (now < it->second) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      it->second = now + p.continuous.every_ms;
    }
    Pending update{p.model, "continuous", "keel-scheduler", 1, 0};
    update.continuous = true;
    due.push_back(std::move(update));
  }
  for (const RetrainPolicy& p : policies_) {
    if (!p.schedule) continue;
    auto it = last_slot_.find(p.model);
    if (it == last_slot_.end()) {
      // First sight: count from now, no run for the past.
      if (Status s = SaveSlot(p.model, now); !s.ok()) {
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
    // Stored first: a slot counts as fired only once that is durable (a
    // failed write leaves it due for the next tick).
    if (Status s = SaveSlot(p.model, newest); !s.ok()) {
      if (first_error.ok()) first_error = s;
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      it->second = newest;
    }
    if (on_time) {
      due.push_back({p.model, "schedule", "keel-scheduler", 1, 0});
    } else if (p.missed == "run_once") {
      due.push_back(
          {p.model, "schedule (missed " + std::to_string(slots) + ")", "keel-scheduler", 1, 0});
    }
  }
  QueueAll(std::move(due));
  return first_error;
}

void RetrainScheduler::QueueAll(std::vector<Pending> due) {
  if (due.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    for (Pending& p : due) EnqueueLocked(std::move(p));
  }
  cv_.notify_all();
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

void RetrainScheduler::EnqueueLocked(Pending p) {
  // A running job whose cancel flag is set will not do the work: queue
  // behind it instead of folding into it.
  auto r = running_.find(p.model);
  // A full retrain does not fold into a running update (it learns more).
  const bool busy = (r != running_.end() && !r->second.cancel->load() &&
                     (p.continuous || !r->second.continuous)) ||
                    std::any_of(queue_.begin(), queue_.end(),
                                [&](const Pending& q) { return q.model == p.model; });
  if (busy) {
    ++folded_;
    if (!p.continuous) {
      // A full retrain replaces a queued continuous update (it sees the
      // same rows and more).
      auto q = std::find_if(queue_.begin(), queue_.end(),
                            [&](const Pending& x) { return x.model == p.model && x.continuous; });
      if (q != queue_.end()) *q = std::move(p);
    }
    return;
  }
  queue_.push_back(std::move(p));
}

Status RetrainScheduler::Trigger(const std::string& model, const std::string& trigger,
                                 const std::string& actor) {
  if (Find(model) == nullptr) return NotFound("no retraining policy for model '" + model + "'");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Unavailable("the retraining scheduler is stopping");
    EnqueueLocked({model, trigger, actor, 1, 0});
  }
  cv_.notify_all();
  return OkStatus();
}

void RetrainScheduler::OnAlert(const monitor::Alert& alert) {
  for (const RetrainPolicy& p : policies_) {
    if (p.model != alert.model) continue;
    if (std::find(p.on_alerts.begin(), p.on_alerts.end(), alert.rule) == p.on_alerts.end())
      continue;
    Trigger(p.model, "alert:" + alert.rule, "keel-monitor").IgnoreError();
  }
}

Status RetrainScheduler::Cancel(const std::string& model) {
  std::lock_guard<std::mutex> lock(mu_);
  auto q = std::find_if(queue_.begin(), queue_.end(),
                        [&](const Pending& p) { return p.model == model; });
  if (q != queue_.end()) {
    queue_.erase(q);
    cv_.notify_all();
    return OkStatus();
  }
  auto r = running_.find(model);
  if (r == running_.end()) return NotFound("no retraining job of model '" + model + "' to cancel");
  r->second.cancel->store(true);
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

    RetrainRequest request;
    request.trigger = job.attempt > 1
                          ? job.trigger + " (attempt " + std::to_string(job.attempt) + ")"
                          : job.trigger;
    request.actor = job.actor;
    request.cancel = cancel.get();
    request.continuous = job.continuous;
    Result<RetrainJob> result = run_job_(*policy, request);
    const bool failed = !result.ok() || result->status == "failed";

    lock.lock();
    running_.erase(job.model);
    if (failed && !stopping_ && !cancel->load() && job.attempt <= policy->job.retries) {
      Pending retry = job;
      retry.attempt = job.attempt + 1;
      const int64_t backoff = policy->job.retry_backoff_ms << std::min(job.attempt - 1, 20);
      retry.not_before_ms = clock_.NowMillis() + backoff;
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

}  // namespace keel::retrain
