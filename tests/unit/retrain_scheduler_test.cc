// The retraining scheduler on a ManualClock and a real SQLite store: cron
// slots on time, missed while down (run_once / skip), clock jumps, alert
// triggers, one job per model with folding, the concurrency limit, retries
// with backoff, cancellation. The job itself is the JobRunner seam here (the
// real job is covered by tests/e2e/test_retrain.py).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "keel/retrain/scheduler.h"
#include "test_util.h"

namespace keel::retrain {
namespace {

using keel::testing::OpenTestDb;
using keel::testing::TempDir;

constexpr int64_t kMinute = 60'000;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;
// 2026-12-07T00:00:00Z, a Monday.
constexpr int64_t kMonday = 1'796'601'600'000;

RetrainPolicy Policy(const std::string& model, const std::string& cron = "",
                     const std::string& missed = "run_once") {
  RetrainPolicy p;
  p.model = model;
  p.train.data = model + ".csv";
  p.train.target = "y";
  p.missed = missed;
  if (!cron.empty()) p.schedule = *CronSchedule::Parse(cron);
  return p;
}

// Records every job; a job may be held until released, or fail.
class Jobs {
 public:
  RetrainScheduler::JobRunner Runner() {
    return [this](const RetrainPolicy& p, const RetrainRequest& r) -> Result<RetrainJob> {
      std::unique_lock<std::mutex> lock(mu_);
      calls_.push_back(p.model + " " + r.trigger + (r.continuous ? " [update]" : ""));
      ++running_;
      max_running_ = std::max(max_running_, running_);
      cv_.notify_all();
      // The cancel flag is set without a notify: look at it every few ms.
      while (hold_ && !(r.cancel != nullptr && r.cancel->load())) {
        cv_.wait_for(lock, std::chrono::milliseconds(5));
      }
      --running_;
      RetrainJob job;
      job.model = p.model;
      // A cancelled job reports "failed" here, so the tests see that the
      // scheduler's own cancel flag (not the status) stops the retries.
      if (busy_ > 0) {
        --busy_;
        if (on_busy_) {
          lock.unlock();
          on_busy_();
          lock.lock();
        }
        return Unavailable("another process runs a job of " + p.model);
      }
      job.status = r.cancel != nullptr && r.cancel->load() ? "failed"
                   : failures_ > 0                         ? "failed"
                                                           : "promoted";
      if (failures_ > 0 && job.status == "failed") --failures_;
      return job;
    };
  }
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_ = false;
    }
    cv_.notify_all();
  }
  void FailNext(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_ = n;
  }
  // The next n jobs do not start: another process runs one (Unavailable);
  // `then` runs before each refusal returns.
  void BusyNext(int n, std::function<void()> then = nullptr) {
    std::lock_guard<std::mutex> lock(mu_);
    busy_ = n;
    on_busy_ = std::move(then);
  }
  void WaitRunning(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(10), [&] { return running_ == n; }));
  }
  std::vector<std::string> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  int max_running() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_running_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> calls_;
  bool hold_ = false;
  int failures_ = 0;
  int busy_ = 0;
  std::function<void()> on_busy_;
  int running_ = 0;
  int max_running_ = 0;
};

SchedulerOptions Fast(int concurrent = 1) {
  SchedulerOptions o;
  o.max_concurrent = concurrent;
  o.tick_interval = std::chrono::milliseconds(10);
  return o;
}

// Starts `s` (one worker) with the jobs held and fraud's job running on
// the worker, so that the next trigger of another model queues.
void StartWithFraudRunning(RetrainScheduler& s, Jobs& jobs) {
  jobs.Hold();
  ASSERT_OK(s.Start());
  ASSERT_OK(s.Trigger("fraud", "manual", "me"));
  jobs.WaitRunning(1);
}

TEST(RetrainSchedulerTest, CronSlotsFireOnTimeOnceEach) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ManualClock clock(kMonday + 2 * kHour + 59 * kMinute);  // Monday 02:59
  Jobs jobs;
  RetrainScheduler s({Policy("churn", "0 3 * * *")}, *db, clock, jobs.Runner(), Fast());
  ASSERT_OK(s.Start());
  s.WaitIdle();
  EXPECT_TRUE(jobs.calls().empty());        // first sight: no run for the past
  clock.Set(kMonday + 3 * kHour + 10'000);  // 03:00:10
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"churn schedule"}));
  clock.Set(kMonday + 3 * kHour + 5 * kMinute);
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_EQ(jobs.calls().size(), 1u);
  clock.Set(kMonday + kDay + 3 * kHour + 30'000);  // Tuesday 03:00:30
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_EQ(jobs.calls().size(), 2u);
  s.Stop();
}

TEST(RetrainSchedulerTest, MissedWhileDownRunsOnceOrSkips) {
  for (const std::string missed : {"run_once", "skip"}) {
    SCOPED_TRACE(missed);
    TempDir dir;
    auto db = OpenTestDb(dir);
    ManualClock clock(kMonday + 2 * kHour);
    {
      Jobs jobs;
      RetrainScheduler s({Policy("churn", "0 3 * * *", missed)}, *db, clock, jobs.Runner(), Fast());
      ASSERT_OK(s.Start());
      clock.Set(kMonday + 3 * kHour);
      ASSERT_OK(s.Tick());
      s.WaitIdle();
      ASSERT_EQ(jobs.calls().size(), 1u);
    }  // the server stops; three slots pass (Tuesday, Wednesday, Thursday 03:00)
    clock.Set(kMonday + 3 * kDay + 12 * kHour);
    Jobs jobs;
    RetrainScheduler s({Policy("churn", "0 3 * * *", missed)}, *db, clock, jobs.Runner(), Fast());
    ASSERT_OK(s.Start());
    s.WaitIdle();
    if (missed == "run_once") {
      EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"churn schedule (missed 3)"}));
    } else {
      EXPECT_TRUE(jobs.calls().empty());
    }
    // The next slot runs normally either way, and the missed ones never again.
    clock.Set(kMonday + 4 * kDay + 3 * kHour + 1000);
    ASSERT_OK(s.Tick());
    s.WaitIdle();
    EXPECT_EQ(jobs.calls().back(), "churn schedule");
    EXPECT_EQ(jobs.calls().size(), missed == "run_once" ? 2u : 1u);
  }
}

TEST(RetrainSchedulerTest, ClockJumps) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ManualClock clock(kMonday + 2 * kHour);
  Jobs jobs;
  RetrainScheduler s({Policy("churn", "0 3 * * *")}, *db, clock, jobs.Runner(), Fast());
  ASSERT_OK(s.Start());
  clock.Set(kMonday + 3 * kHour);
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  ASSERT_EQ(jobs.calls().size(), 1u);
  // Backwards by an hour, then forward through 03:00 again: not re-run.
  clock.Set(kMonday + 2 * kHour);
  ASSERT_OK(s.Tick());
  clock.Set(kMonday + 3 * kHour + 30'000);
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_EQ(jobs.calls().size(), 1u);
  // Forward by two days at once: the missed slots are one run (run_once).
  clock.Set(kMonday + 2 * kDay + 3 * kHour + 30 * kMinute);
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_EQ(jobs.calls().back(), "churn schedule (missed 2)");
  EXPECT_EQ(jobs.calls().size(), 2u);
}

// missed: skip: slots jumped over run nothing; the next slot on time does.
TEST(RetrainSchedulerTest, ClockJumpsForwardWithSkip) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ManualClock clock(kMonday + 2 * kHour);
  Jobs jobs;
  RetrainScheduler s({Policy("churn", "0 3 * * *", "skip")}, *db, clock, jobs.Runner(), Fast());
  ASSERT_OK(s.Start());
  clock.Set(kMonday + 2 * kDay + 3 * kHour + 30 * kMinute);  // over three 03:00 slots
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_TRUE(jobs.calls().empty());
  clock.Set(kMonday + 3 * kDay + 3 * kHour + 30'000);
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"churn schedule"}));
}

TEST(RetrainSchedulerTest, ContinuousUpdatesAtTheirCadence) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ManualClock clock(kMonday);
  Jobs jobs;
  RetrainPolicy churn = Policy("churn");
  churn.continuous.every_ms = 10 * kMinute;
  RetrainScheduler s({churn, Policy("b")}, *db, clock, jobs.Runner(), Fast());
  ASSERT_OK(s.Start());
  s.WaitIdle();
  EXPECT_TRUE(jobs.calls().empty());  // counted from the start
  clock.Set(kMonday + 10 * kMinute);
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"churn continuous [update]"}));
  clock.Set(kMonday + 35 * kMinute);  // a forward jump over two intervals: one update
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_EQ(jobs.calls().size(), 2u);
  // A full retrain takes the place of a queued update: with the only worker
  // busy on model b, the update waits in the queue when churn is triggered.
  jobs.Hold();
  ASSERT_OK(s.Trigger("b", "manual", "me"));
  jobs.WaitRunning(1);
  clock.Set(kMonday + 45 * kMinute);
  ASSERT_OK(s.Tick());
  ASSERT_OK(s.Trigger("churn", "alert:auc_decay", "keel-monitor"));
  jobs.Release();
  s.WaitIdle();
  EXPECT_EQ(jobs.calls(),
            (std::vector<std::string>{"churn continuous [update]", "churn continuous [update]",
                                      "b manual", "churn alert:auc_decay"}));
  // Nor is a full retrain folded into a running update: it runs after it.
  jobs.Hold();
  clock.Set(kMonday + 55 * kMinute);
  ASSERT_OK(s.Tick());
  jobs.WaitRunning(1);
  ASSERT_OK(s.Trigger("churn", "manual", "me"));
  ASSERT_OK(s.Trigger("churn", "manual", "me"));  // this one folds into the queued retrain
  jobs.Release();
  s.WaitIdle();
  const std::vector<std::string> calls = jobs.calls();
  ASSERT_EQ(calls.size(), 6u);
  EXPECT_EQ(calls[4], "churn continuous [update]");
  EXPECT_EQ(calls[5], "churn manual");
  // The clock goes back a day: the next update is one cadence later, not a
  // day and a cadence.
  clock.Set(kMonday + 55 * kMinute - kDay);
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  clock.Advance(10 * kMinute);
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  ASSERT_EQ(jobs.calls().size(), 7u);
  EXPECT_EQ(jobs.calls()[6], "churn continuous [update]");
  s.Stop();
}

TEST(RetrainSchedulerTest, AlertsTriggerTheirPolicies) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ManualClock clock(kMonday);
  Jobs jobs;
  RetrainPolicy churn = Policy("churn");
  churn.on_alerts = {"performance_decay", "data_drift"};
  RetrainScheduler s({churn, Policy("fraud")}, *db, clock, jobs.Runner(), Fast());
  ASSERT_OK(s.Start());
  monitor::Alert a;
  a.model = "churn";
  a.version = "3";
  a.rule = "performance_decay";
  s.OnAlert(a);
  s.WaitIdle();
  a.rule = "latency_p99";  // not listed
  s.OnAlert(a);
  a.model = "fraud";  // no alert triggers for fraud
  a.rule = "performance_decay";
  s.OnAlert(a);
  s.WaitIdle();
  EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"churn alert:performance_decay"}));
  EXPECT_EQ(s.Trigger("nosuch", "manual", "me").code(), StatusCode::kNotFound);
}

TEST(RetrainSchedulerTest, OneJobPerModelAndAConcurrencyLimit) {
  for (int limit : {1, 2}) {
    SCOPED_TRACE(limit);
    TempDir dir;
    auto db = OpenTestDb(dir);
    ManualClock clock(kMonday);
    Jobs jobs;
    jobs.Hold();
    RetrainScheduler s({Policy("a"), Policy("b")}, *db, clock, jobs.Runner(), Fast(limit));
    ASSERT_OK(s.Start());
    ASSERT_OK(s.Trigger("a", "manual", "me"));
    jobs.WaitRunning(1);
    ASSERT_OK(s.Trigger("a", "manual", "me"));  // folded into the running job
    ASSERT_OK(s.Trigger("b", "manual", "me"));
    ASSERT_OK(s.Trigger("b", "manual", "me"));  // folded into the queued (or running) one
    if (limit == 2) jobs.WaitRunning(2);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(jobs.max_running(), limit);
    jobs.Release();
    s.WaitIdle();
    EXPECT_EQ(s.started(), 2u);
    EXPECT_EQ(s.folded(), 2u);
    EXPECT_EQ(jobs.calls().size(), 2u);
  }
}

TEST(RetrainSchedulerTest, FailedJobsAreRetriedWithBackoff) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ManualClock clock(kMonday);
  Jobs jobs;
  jobs.FailNext(2);
  RetrainPolicy p = Policy("churn");
  p.job.retries = 2;
  p.job.retry_backoff_ms = 5 * kMinute;
  RetrainScheduler s({p}, *db, clock, jobs.Runner(), Fast());
  ASSERT_OK(s.Start());
  ASSERT_OK(s.Trigger("churn", "manual", "me"));
  s.WaitIdle();
  EXPECT_EQ(jobs.calls().size(), 1u);  // failed; the retry waits 5 minutes
  clock.Advance(5 * kMinute);
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_EQ(jobs.calls().size(), 2u);  // failed again; now 10 minutes
  clock.Advance(5 * kMinute);
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_EQ(jobs.calls().size(), 2u);
  clock.Advance(5 * kMinute);
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"churn manual", "churn manual (attempt 2)",
                                                    "churn manual (attempt 3)"}));
  // Retries are used up: a job failing every time runs 1 + retries times.
  jobs.FailNext(10);
  ASSERT_OK(s.Trigger("churn", "manual", "me"));
  for (int i = 0; i < 5; ++i) {
    s.WaitIdle();
    clock.Advance(kHour);
    ASSERT_OK(s.Tick());
  }
  s.WaitIdle();
  EXPECT_EQ(jobs.calls().size(), 6u);
}

TEST(RetrainSchedulerTest, CancelAndStop) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ManualClock clock(kMonday);
  Jobs jobs;
  jobs.Hold();
  RetrainPolicy p = Policy("churn");
  p.job.retries = 3;
  RetrainScheduler s({p, Policy("fraud")}, *db, clock, jobs.Runner(), Fast());
  ASSERT_OK(s.Start());
  ASSERT_OK(s.Trigger("churn", "manual", "me"));
  jobs.WaitRunning(1);
  ASSERT_OK(s.Cancel("churn"));
  // A trigger while the job is being cancelled queues behind it.
  ASSERT_OK(s.Trigger("churn", "alert:x", "monitor"));
  jobs.Release();
  s.WaitIdle();
  EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"churn manual", "churn alert:x"}));
  jobs.Hold();
  clock.Advance(kDay);
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_EQ(jobs.calls().size(), 2u);  // the cancelled job was not retried
  EXPECT_EQ(s.Cancel("churn").code(), StatusCode::kNotFound);
  // A queued job can be cancelled too.
  ASSERT_OK(s.Trigger("fraud", "manual", "me"));
  jobs.WaitRunning(1);
  ASSERT_OK(s.Trigger("churn", "manual", "me"));  // queued: the only worker is busy
  ASSERT_OK(s.Cancel("churn"));
  s.Stop();  // cancels the running job and returns
  EXPECT_EQ(jobs.calls().size(), 3u);
  EXPECT_EQ(s.Trigger("fraud", "manual", "me").code(), StatusCode::kUnavailable);
}

// A running job row owned by `owner` with the given heartbeat.
int64_t RunningJob(store::Database& db, const std::string& owner, int64_t heartbeat) {
  RetrainJob job;
  job.model = "churn";
  job.trigger = "manual";
  job.actor = "t";
  job.status = "running";
  job.started_ms = 1'000;
  int64_t id = -1;
  Status s = db.Write([&](store::Connection& c) -> Status {
    KEEL_RETURN_IF_ERROR(c.Query(
        "INSERT INTO retrain_jobs(model, trigger_name, actor, status, started_time, "
        "finished_time, details, owner, heartbeat) VALUES ('churn', 'manual', 't', 'running', "
        "1000, 0, '', ?, ?) RETURNING job_id",
        {store::Value(owner), store::Value(heartbeat)}, [&](const store::RowView& r) {
          id = r.Int(0);
          return OkStatus();
        }));
    job.id = id;
    return c.Exec("UPDATE retrain_jobs SET details = ? WHERE job_id = ?",
                  {store::Value(job.ToJson()), store::Value(id)});
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return id;
}

// A ManualClock that holds the calls of one thread (the gated one) until
// opened, or for 5 s (then timed_out()).
class GatedClock final : public Clock {
 public:
  explicit GatedClock(int64_t now) : now_(now) {}
  int64_t NowMillis() const override {
    std::unique_lock<std::mutex> lock(mu_);
    if (std::this_thread::get_id() == gated_ && !open_) {
      held_ = true;
      cv_.notify_all();
      if (!cv_.wait_for(lock, std::chrono::seconds(5), [&] { return open_; })) timed_out_ = true;
    }
    return now_;
  }
  void GateThisThread() {
    std::lock_guard<std::mutex> lock(mu_);
    gated_ = std::this_thread::get_id();
  }
  void WaitHeld() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return held_; });
  }
  void Open() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  bool timed_out() const {
    std::lock_guard<std::mutex> lock(mu_);
    return timed_out_;
  }

 private:
  const int64_t now_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::thread::id gated_;
  bool open_ = false;
  mutable bool held_ = false;
  mutable bool timed_out_ = false;
};

// A tick in progress holds no lock a trigger needs: a trigger (which stores
// its queued row) returns while a tick is stuck in its pass (the tick's clock
// lets go once the trigger returned, or after 5 s, which fails the test).
TEST(RetrainSchedulerTest, TriggersDoNotWaitForATick) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  GatedClock clock(kMonday);
  Jobs jobs;
  SchedulerOptions o = Fast();
  o.lease_holder = "here";  // the tick writes: heartbeats and the lease
  RetrainScheduler s({Policy("churn")}, *db, clock, jobs.Runner(), o);
  std::thread ticker([&] {
    clock.GateThisThread();
    s.Tick().IgnoreError();
  });
  clock.WaitHeld();
  const Status t = s.Trigger("churn", "manual", "me");
  clock.Open();
  ticker.join();
  EXPECT_TRUE(t.ok()) << t.ToString();
  EXPECT_FALSE(clock.timed_out()) << "the trigger waited for the tick";
}

TEST(RetrainSchedulerTest, StaleJobsOfOtherProcessesAreTakenOverOnce) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  const int64_t stale = RunningJob(*db, "gone-host:1", 5'000);
  const int64_t fresh = RunningJob(*db, "live-host:2", 9'500);
  const int64_t legacy = RunningJob(*db, "", 0);  // from before heartbeats
  auto all_models = [](const std::string&) { return true; };
  auto taken = TakeOverStaleWork(*db, 10'000, 8'000, all_models);
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  ASSERT_EQ(taken->size(), 1u);  // the stale job's rerun, queued here
  EXPECT_EQ((*taken)[0].trigger, "takeover of job " + std::to_string(stale) + " (manual)");
  auto again = TakeOverStaleWork(*db, 11'000, 8'000, all_models);  // already failed: not twice
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
  auto history = RetrainHistory(*db, "churn", 10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 4u);  // three jobs and the rerun
  for (const RetrainJob& j : *history) {
    if (j.id == (*taken)[0].id) {
      EXPECT_EQ(j.status, "queued");
    } else {
      EXPECT_EQ(j.status, j.id == stale ? "failed" : "running") << j.id;
    }
    if (j.id == stale) EXPECT_NE(j.message.find("gone-host:1"), std::string::npos) << j.message;
  }
  // Only the jobs whose heartbeat stopped are taken over.
  ASSERT_TRUE(HeartbeatJobs(*db, 20'000).ok());
  auto later = TakeOverStaleWork(*db, 30'000, 25'000, all_models);
  ASSERT_TRUE(later.ok());
  ASSERT_EQ(later->size(), 1u);  // live-host:2 stopped beating at 9.5 s
  EXPECT_EQ((*later)[0].trigger, "takeover of job " + std::to_string(fresh) + " (manual)");
  (void)legacy;
}

// The queued rows in the store (the scheduler's durable queue).
struct QueuedRow {
  int64_t id = 0;
  std::string model, trigger, owner;
  int64_t attempt = 0, not_before = 0, heartbeat = 0;
};
// The queued rows (of `model`, when given).
std::vector<QueuedRow> QueuedRows(store::Database& db, const std::string& model = "") {
  std::vector<QueuedRow> out;
  Status s = db.Read([&](store::Connection& c) {
    out.clear();
    return c.Query(
        "SELECT job_id, model, trigger_name, owner, attempt, not_before, heartbeat FROM "
        "retrain_jobs WHERE status = 'queued' ORDER BY job_id",
        {}, [&](const store::RowView& r) {
          if (!model.empty() && r.Text(1) != model) return OkStatus();
          out.push_back({r.Int(0), std::string(r.Text(1)), std::string(r.Text(2)),
                         std::string(r.Text(3)), r.Int(4), r.Int(5), r.Int(6)});
          return OkStatus();
        });
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// Gives every row of this process to `owner` (a process that is gone).
void Disown(store::Database& db, const std::string& owner) {
  Status s = db.Write([&](store::Connection& c) {
    return c.Exec("UPDATE retrain_jobs SET owner = ? WHERE status = 'queued'",
                  {store::Value(owner)});
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
}

// A scheduler that queues one manual job of "churn" and stops before any
// worker takes it: the queue of a process that dies.
void QueueOneJobAndStop(store::Database& db, const Clock& clock) {
  Jobs none;
  RetrainScheduler dead({Policy("churn")}, db, clock, none.Runner(), Fast());
  ASSERT_OK(dead.Trigger("churn", "manual", "me"));
  dead.Stop();
  EXPECT_TRUE(none.calls().empty());
}

// A job queued by a process that died before a worker started it is run,
// once, by the lease holder of another. The dead process is one of another
// host, or an earlier one of this host with this process's pid (a restarted
// container: same host name, same pid, often 1), not mistaken for this one.
TEST(RetrainSchedulerTest, QueuedJobsOfADeadProcessRunOnceElsewhere) {
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  for (const std::string& dead_owner :
       {std::string("gone-host:1:abc"),
        std::string(host) + ":" + std::to_string(::getpid()) + ":earlier"}) {
    SCOPED_TRACE(dead_owner);
    TempDir dir;
    auto db = OpenTestDb(dir);
    ASSERT_NE(db, nullptr);
    ManualClock clock(kMonday);
    QueueOneJobAndStop(*db, clock);
    std::vector<QueuedRow> rows = QueuedRows(*db);
    ASSERT_EQ(rows.size(), 1u);  // stored before Trigger returned
    EXPECT_EQ(rows[0].trigger, "manual");
    EXPECT_EQ(rows[0].heartbeat, kMonday);
    Disown(*db, dead_owner);

    Jobs jobs;
    jobs.Hold();
    SchedulerOptions o = Fast();
    o.lease_holder = "survivor";
    o.lease_ttl_ms = 30'000;
    RetrainScheduler s({Policy("churn")}, *db, clock, jobs.Runner(), o);
    ASSERT_OK(s.Start());  // its heartbeat is fresh: not taken over yet
    s.WaitIdle();
    EXPECT_TRUE(jobs.calls().empty());
    clock.Advance(31'000);
    ASSERT_OK(s.Tick());
    jobs.WaitRunning(1);
    // Claimed for this process as it was (one row, the same id).
    rows = QueuedRows(*db);
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_NE(rows[0].owner, dead_owner);
    // Later ticks (and more time) neither take it again nor run it twice.
    clock.Advance(kHour);
    ASSERT_OK(s.Tick());
    ASSERT_OK(s.Tick());
    jobs.Release();
    s.WaitIdle();
    clock.Advance(kHour);
    ASSERT_OK(s.Tick());
    s.WaitIdle();
    EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"churn manual"}));
    EXPECT_TRUE(QueuedRows(*db).empty());
    s.Stop();
  }
}

// Triggers folded into a queued or running job store no row (or lose it), a
// cancelled queued job's row ends `cancelled`, and a finished job leaves no
// row queued.
TEST(RetrainSchedulerTest, FoldedAndCancelledJobsLeaveNoQueuedRows) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  ManualClock clock(kMonday);
  Jobs jobs;
  RetrainScheduler s({Policy("churn"), Policy("fraud")}, *db, clock, jobs.Runner(), Fast());
  StartWithFraudRunning(s, jobs);
  ASSERT_OK(s.Trigger("fraud", "alert:x", "monitor"));  // folded into the running job
  ASSERT_OK(s.Trigger("churn", "alert:x", "monitor"));  // queued: the only worker is busy
  ASSERT_OK(s.Trigger("churn", "alert:y", "monitor"));  // folded into the queued one
  ASSERT_OK(s.Trigger("churn", "manual", "you"));       // folded too
  EXPECT_EQ(s.folded(), 3u);
  EXPECT_EQ(QueuedRows(*db, "fraud").size(), 1u);  // the running job's (this runner keeps it)
  std::vector<QueuedRow> rows = QueuedRows(*db, "churn");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].trigger, "alert:x");
  const int64_t queued = rows[0].id;
  ASSERT_OK(s.Cancel("churn"));  // the queued one
  EXPECT_TRUE(QueuedRows(*db, "churn").empty());
  auto history = RetrainHistory(*db, "churn", 10);
  ASSERT_TRUE(history.ok()) << history.status().ToString();
  bool cancelled = false;
  for (const RetrainJob& j : *history) {
    if (j.id == queued) cancelled = j.status == "cancelled";
  }
  EXPECT_TRUE(cancelled) << "the cancelled queued job's row";
  jobs.Release();
  s.WaitIdle();
  EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"fraud manual"}));
  EXPECT_TRUE(QueuedRows(*db).empty());
  s.Stop();
}

// A job that could not start because another process runs one of its model
// waits 5 s of the clock, queued as it was (same row), and is not counted
// as an attempt (no retries configured, and it still runs).
TEST(RetrainSchedulerTest, AJobBusyElsewhereWaitsItsTurn) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  ManualClock clock(kMonday);
  Jobs jobs;
  jobs.BusyNext(1);
  RetrainPolicy p = Policy("churn");
  p.job.retries = 0;
  RetrainScheduler s({p}, *db, clock, jobs.Runner(), Fast());
  ASSERT_OK(s.Start());
  ASSERT_OK(s.Trigger("churn", "manual", "me"));
  const int64_t row = QueuedRows(*db, "churn").at(0).id;
  s.WaitIdle();  // the refused start; the job then waits out its 5 s
  EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"churn manual"}));
  std::vector<QueuedRow> rows = QueuedRows(*db, "churn");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].id, row);
  EXPECT_EQ(rows[0].attempt, 1);
  EXPECT_EQ(rows[0].not_before, kMonday + 5'000);
  const uint64_t folded = s.folded();
  ASSERT_OK(s.Trigger("churn", "alert:x", "monitor"));  // folded into the waiting job
  EXPECT_EQ(s.folded(), folded + 1);
  clock.Advance(5'000);
  s.WaitIdle();
  EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"churn manual", "churn manual"}));
  s.Stop();
}

// A job refused as busy whose row is cancelled meanwhile (from another
// process, or by this scheduler's Cancel) is neither waited for nor retried,
// and its row ends `cancelled`.
TEST(RetrainSchedulerTest, AJobCancelledWhileBusyElsewhereIsDropped) {
  for (const bool here : {false, true}) {
    SCOPED_TRACE(here ? "cancelled here" : "cancelled elsewhere");
    TempDir dir;
    auto db = OpenTestDb(dir);
    ASSERT_NE(db, nullptr);
    ManualClock clock(kMonday);
    Jobs jobs;
    RetrainPolicy p = Policy("churn");
    p.job.retries = 3;
    RetrainScheduler s({p}, *db, clock, jobs.Runner(), Fast());
    jobs.BusyNext(1, [&] {
      const Status cancelled =
          here ? s.Cancel("churn") : RequestCancel(*db, "churn", "frank", kMonday).status();
      EXPECT_TRUE(cancelled.ok()) << cancelled.ToString();
    });
    ASSERT_OK(s.Start());
    ASSERT_OK(s.Trigger("churn", "manual", "me"));
    s.WaitIdle();
    clock.Advance(kHour);
    ASSERT_OK(s.Tick());
    s.WaitIdle();
    EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"churn manual"}));  // not again
    EXPECT_TRUE(QueuedRows(*db).empty());
    auto history = RetrainHistory(*db, "churn", 10);
    ASSERT_TRUE(history.ok());
    ASSERT_EQ(history->size(), 1u);
    EXPECT_EQ(history->front().status, "cancelled");
    s.Stop();
  }
}

// Cancelled from another process through the store (RequestCancel): a
// queued row ends `cancelled` whoever holds it, and its holder's scheduler
// forgets it at its next tick (the model takes triggers again, and the job
// never runs); running jobs are asked to stop.
TEST(RetrainSchedulerTest, QueuedJobsCancelledElsewhereLeaveTheQueue) {
  // The row held by this process, and by another replica's scheduler.
  for (const bool disown : {false, true}) {
    SCOPED_TRACE(disown ? "held elsewhere" : "held here");
    TempDir dir;
    auto db = OpenTestDb(dir);
    ASSERT_NE(db, nullptr);
    ManualClock clock(kMonday);
    Jobs jobs;
    RetrainScheduler s({Policy("churn"), Policy("fraud")}, *db, clock, jobs.Runner(), Fast());
    StartWithFraudRunning(s, jobs);
    ASSERT_OK(s.Trigger("churn", "alert:x", "monitor"));  // queued: the only worker is busy
    std::vector<QueuedRow> rows = QueuedRows(*db, "churn");
    ASSERT_EQ(rows.size(), 1u);
    const int64_t queued = rows[0].id;
    if (disown) Disown(*db, "another-host:7:xyz");
    auto asked = RequestCancel(*db, "churn", "bob", kMonday + 5);
    ASSERT_TRUE(asked.ok()) << asked.status().ToString();
    EXPECT_EQ(asked->queued, 1);
    EXPECT_EQ(asked->running, 0);
    EXPECT_TRUE(QueuedRows(*db, "churn").empty());
    auto history = RetrainHistory(*db, "churn", 10);
    ASSERT_TRUE(history.ok());
    ASSERT_EQ(history->size(), 1u);
    EXPECT_EQ(history->front().id, queued);
    EXPECT_EQ(history->front().status, "cancelled");
    EXPECT_EQ(history->front().message, "cancelled by bob while queued");
    auto state = [&](const std::string& model) {
      for (const auto& st : s.Snapshot()) {
        if (st.policy->model == model) return st.state;
      }
      return std::string("?");
    };
    // (Its ticker may already have run; an explicit tick makes sure.)
    ASSERT_OK(s.Tick());
    EXPECT_EQ(state("churn"), "idle");
    const uint64_t folded = s.folded();
    ASSERT_OK(s.Trigger("churn", "manual", "you"));  // not folded into the cancelled job
    EXPECT_EQ(s.folded(), folded);
    jobs.Release();
    s.WaitIdle();
    EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"fraud manual", "churn manual"}));
    // A model without jobs: nothing to cancel.
    auto none = RequestCancel(*db, "nobody", "bob", kMonday + 6);
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(none->queued + none->running, 0);
    s.Stop();
  }
}

// A running job of a process that died with a cancel request pending ends
// `cancelled` at the takeover, and is not run again.
TEST(RetrainSchedulerTest, ATakeOverEndsAJobAskedToStop) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  const int64_t asked = RunningJob(*db, "gone-host:1:abc", 5'000);
  auto request = RequestCancel(*db, "churn", "carol", 6'000);
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(request->running, 1);
  EXPECT_EQ(request->queued, 0);
  auto taken = TakeOverStaleWork(*db, 40'000, 10'000, [](const std::string&) { return true; });
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  EXPECT_TRUE(taken->empty());  // no rerun
  auto history = RetrainHistory(*db, "churn", 10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ(history->front().id, asked);
  EXPECT_EQ(history->front().status, "cancelled");
  EXPECT_NE(history->front().message.find("cancelled by carol"), std::string::npos)
      << history->front().message;
  EXPECT_NE(history->front().message.find("gone-host:1:abc"), std::string::npos)
      << history->front().message;
}

// A schedule slot and its job are stored together: right after the tick
// that fires the slot, before any worker starts the job, the job is queued
// in the store.
TEST(RetrainSchedulerTest, ASlotIsStoredWithItsQueuedJob) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  ManualClock clock(kMonday + 2 * kHour + 59 * kMinute);
  Jobs jobs;
  // Not started: no worker, so the job stays queued.
  RetrainScheduler s({Policy("churn", "0 3 * * *")}, *db, clock, jobs.Runner(), Fast());
  ASSERT_OK(s.Tick());  // first sight
  EXPECT_TRUE(QueuedRows(*db).empty());
  clock.Set(kMonday + 3 * kHour + 10'000);
  ASSERT_OK(s.Tick());
  std::vector<QueuedRow> rows = QueuedRows(*db);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].model, "churn");
  EXPECT_EQ(rows[0].trigger, "schedule");
  EXPECT_EQ(rows[0].attempt, 1);
  int64_t last_slot = -1;
  ASSERT_OK(db->Read([&](store::Connection& c) {
    return c.Query("SELECT last_slot FROM retrain_schedule WHERE model = 'churn'", {},
                   [&](const store::RowView& r) {
                     last_slot = r.Int(0);
                     return OkStatus();
                   });
  }));
  EXPECT_EQ(last_slot, kMonday + 3 * kHour);
  EXPECT_TRUE(jobs.calls().empty());
}

// A failed job's retry waits out its backoff in the store: a queued row of
// the next attempt, not before the backoff's end.
TEST(RetrainSchedulerTest, RetriesAreQueuedInTheStore) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  ManualClock clock(kMonday);
  Jobs jobs;
  jobs.FailNext(1);
  RetrainPolicy p = Policy("churn");
  p.job.retries = 2;
  p.job.retry_backoff_ms = 5 * kMinute;
  RetrainScheduler s({p}, *db, clock, jobs.Runner(), Fast());
  ASSERT_OK(s.Start());
  ASSERT_OK(s.Trigger("churn", "manual", "me"));
  s.WaitIdle();
  std::vector<QueuedRow> rows = QueuedRows(*db);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].attempt, 2);
  EXPECT_EQ(rows[0].not_before, kMonday + 5 * kMinute);
  clock.Advance(5 * kMinute);
  ASSERT_OK(s.Tick());
  s.WaitIdle();
  EXPECT_EQ(jobs.calls(), (std::vector<std::string>{"churn manual", "churn manual (attempt 2)"}));
  EXPECT_TRUE(QueuedRows(*db).empty());
  s.Stop();
}

}  // namespace
}  // namespace keel::retrain
