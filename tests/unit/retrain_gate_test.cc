// The champion/challenger gate on real model packages (keel-linear binary
// classifiers written and loaded as packages), and MarkInterruptedJobs on a
// real SQLite store.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "keel/core/json.h"
#include "keel/retrain/retrain.h"
#include "keel/tracking/tracking.h"
#include "keel/train/metrics.h"
#include "test_util.h"

namespace keel::retrain {
namespace {

using keel::testing::OpenTestDb;
using keel::testing::TempDir;

// A binary keel-linear package: p(yes) = sigmoid(w * x).
model::PackageContents LinearContents(double w) {
  model::PackageContents c;
  c.model_bytes = R"({"keel_linear": 1, "task": "binary", "num_features": 1, "weights": [)" +
                  FormatDouble(w) + R"(], "bias": [0], "feature_names": ["x"]})";
  c.info.format = "keel-linear";
  c.info.task = "binary";
  c.info.output_name = "p";
  c.info.classes = {"no", "yes"};
  c.input_example_json = R"({"columns": ["x"], "data": [[1.0]]})";
  return c;
}

std::shared_ptr<const model::LoadedModel> Linear(const TempDir& dir, double w) {
  const auto path = dir.path() / ("w" + FormatDouble(w));
  const Status written = model::WriteModelPackage(path, LinearContents(w));
  EXPECT_TRUE(written.ok()) << written.ToString();
  auto loaded = model::LoadModelPackage(path);
  EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
  return loaded.ok() ? *loaded : nullptr;
}

// x evenly over [-1, 1]; the label is "yes" when x + a fixed wobble > 0, so
// any increasing score has the same AUC (below 1), and w sets the log loss.
std::vector<serve::LoggedPrediction> Holdout(int n) {
  std::vector<serve::LoggedPrediction> out;
  for (int i = 0; i < n; ++i) {
    const double x = -1.0 + 2.0 * i / (n - 1);
    const double wobble = 0.3 * std::sin(i * 12.9898);
    serve::LoggedPrediction lp;
    lp.record.request_id = "r" + std::to_string(i);
    lp.record.input_json = R"({"x": )" + FormatDouble(x) + "}";
    lp.label_json = x + wobble > 0 ? R"("yes")" : R"("no")";
    out.push_back(lp);
  }
  serve::LoggedPrediction unmatched;
  unmatched.record.input_json = R"({"x": 0.5})";
  unmatched.label_json = R"("maybe")";  // names no class: left out
  out.push_back(unmatched);
  serve::LoggedPrediction unreadable;
  unreadable.record.input_json = R"({"x": "high"})";  // does not encode: left out
  unreadable.label_json = R"("yes")";
  out.push_back(unreadable);
  return out;
}

TEST(RetrainGateTest, DecidesOnTheMetricAndGuardsTheOthers) {
  TempDir dir;
  auto sharp = Linear(dir, 4.0), blunt = Linear(dir, 0.5), inverted = Linear(dir, -4.0);
  const auto holdout = Holdout(1000);
  GateConfig gate;
  gate.min_rows = 500;

  // A challenger that ranks worse is rejected on AUC.
  ASSERT_OK_AND_ASSIGN(GateDecision d, EvaluateGate(gate, sharp.get(), *inverted, holdout));
  EXPECT_FALSE(d.passed);
  EXPECT_EQ(d.metric, "auc");
  EXPECT_EQ(d.holdout_rows, 1000u);  // the unmatched label and the unreadable input left out
  EXPECT_LT(d.challenger, 0.5);
  EXPECT_GT(d.champion, 0.8);
  EXPECT_NE(d.reason.find("is below gate.min_delta 0"), std::string::npos) << d.reason;

  // Same ranking (equal AUC, gain 0 >= min_delta 0) but a far worse log loss:
  // max_regression stops it.
  ASSERT_OK_AND_ASSIGN(d, EvaluateGate(gate, sharp.get(), *blunt, holdout));
  EXPECT_EQ(d.challenger, d.champion);
  EXPECT_FALSE(d.passed);
  EXPECT_NE(d.reason.find("log_loss"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("more than gate.max_regression 0.005"), std::string::npos) << d.reason;
  gate.max_regression = 1.0;
  ASSERT_OK_AND_ASSIGN(d, EvaluateGate(gate, sharp.get(), *blunt, holdout));
  EXPECT_TRUE(d.passed) << d.reason;

  // Lower is better for log_loss: the sharper model beats the blunt one.
  gate.metric = "log_loss";
  gate.max_regression = 0.005;
  gate.min_delta = 0.01;
  ASSERT_OK_AND_ASSIGN(d, EvaluateGate(gate, blunt.get(), *sharp, holdout));
  EXPECT_TRUE(d.passed) << d.reason;
  EXPECT_LT(d.challenger + 0.01, d.champion);
  ASSERT_OK_AND_ASSIGN(d, EvaluateGate(gate, sharp.get(), *blunt, holdout));
  EXPECT_FALSE(d.passed);

  // Every metric of the task is reported for both, as train::BinaryMetrics computes it.
  std::vector<std::string> names;
  for (const GateMetric& m : d.metrics) names.push_back(m.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"auc", "log_loss", "accuracy", "precision", "recall", "f1"}));
}

TEST(RetrainGateTest, MinRowsNoChampionAndUnknownMetrics) {
  TempDir dir;
  auto sharp = Linear(dir, 4.0);
  const auto holdout = Holdout(300);
  GateConfig gate;
  gate.min_rows = 500;
  ASSERT_OK_AND_ASSIGN(GateDecision d, EvaluateGate(gate, nullptr, *sharp, holdout));
  EXPECT_FALSE(d.passed);
  EXPECT_NE(d.reason.find("the holdout has 300 labeled rows"), std::string::npos) << d.reason;
  gate.min_rows = 100;
  ASSERT_OK_AND_ASSIGN(d, EvaluateGate(gate, nullptr, *sharp, holdout));
  EXPECT_TRUE(d.passed);
  EXPECT_NE(d.reason.find("no champion"), std::string::npos) << d.reason;
  EXPECT_TRUE(std::isnan(d.champion));
  gate.metric = "rmse";  // not a metric of a binary model
  EXPECT_EQ(EvaluateGate(gate, nullptr, *sharp, holdout).status().code(),
            StatusCode::kInvalidArgument);
}

// This machine's host name.
std::string ThisHost() {
  char host[256] = {};
  EXPECT_EQ(gethostname(host, sizeof host - 1), 0);
  return host;
}

// The pid of a process that has ended (a child, reaped).
pid_t GonePid() {
  const pid_t gone = fork();
  if (gone == 0) _exit(0);
  EXPECT_GT(gone, 0);
  waitpid(gone, nullptr, 0);
  return gone;
}

TEST(RetrainJobsTest, InterruptedJobsOfThisHostAreMarkedFailed) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  const std::string host = ThisHost();
  const pid_t gone = GonePid();
  struct Row {
    std::string host;
    int64_t pid;
    std::string status;
  };
  const std::vector<Row> rows = {{host, gone, "running"},         // process gone: interrupted
                                 {host, getpid(), "running"},     // alive: left alone
                                 {"elsewhere", gone, "running"},  // another host: left alone
                                 {host, gone, "promoted"}};       // finished: left alone
  for (size_t i = 0; i < rows.size(); ++i) {
    RetrainJob job;
    job.id = static_cast<int64_t>(i + 1);
    job.model = "churn";
    job.status = rows[i].status;
    job.host = rows[i].host;
    job.pid = rows[i].pid;
    job.message = "training";
    ASSERT_OK(db->Write([&](store::Connection& c) {
      return c.Exec(
          "INSERT INTO retrain_jobs(job_id, model, trigger_name, actor, status, started_time, "
          "finished_time, details) VALUES (?, 'churn', 'manual', 'me', ?, 0, 0, ?)",
          {store::Value(job.id), store::Value(job.status), store::Value(job.ToJson())});
    }));
  }
  ASSERT_OK_AND_ASSIGN(int marked, MarkInterruptedJobs(*db, 1234));
  EXPECT_EQ(marked, 1);
  ASSERT_OK_AND_ASSIGN(std::vector<RetrainJob> jobs, RetrainHistory(*db, "churn"));
  ASSERT_EQ(jobs.size(), 4u);  // newest first
  EXPECT_EQ(jobs[3].status, "failed");
  EXPECT_EQ(jobs[3].finished_ms, 1234);
  EXPECT_EQ(jobs[3].message, "interrupted: the process running the job stopped (training)");
  EXPECT_EQ(jobs[2].status, "running");
  EXPECT_EQ(jobs[1].status, "running");
  EXPECT_EQ(jobs[0].status, "promoted");
  ASSERT_OK_AND_ASSIGN(marked, MarkInterruptedJobs(*db, 5678));
  EXPECT_EQ(marked, 0);
}

// A job that died halfway leaves nothing half-done once it is marked: its
// run (named in its record from the start) ends FAILED, a version of that run
// left PENDING_REGISTRATION (the process died registering it) becomes
// FAILED_REGISTRATION, and a version it had registered before recording it
// is named in the job's record. Both paths: this host's gone process
// (MarkInterruptedJobs) and another host's stale job (TakeOverStaleWork).
TEST(RetrainJobsTest, AJobThatDiedHalfwayLeavesNothingHalfDone) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ASSERT_NE(db, nullptr);
  ManualClock clock(1'800'000'000'000);
  tracking::TrackingService tracking(*db, clock, {});
  registry::RegistryService registry(*db, clock);
  ASSERT_OK(registry.CreateRegisteredModel("churn", {}, "").status());
  const std::string host = ThisHost();
  const pid_t gone = GonePid();
  // Three dead jobs, each with a running run: the first died registering its
  // version (left pending), the second after registering it (READY) but
  // before recording it, the third after recording it and moving champion
  // to it (its rerun is dropped: it is found promoted).
  struct Dead {
    std::string owner;
    std::string host;
    int64_t pid;
    std::string run_id;
    std::string version;
  };
  std::vector<Dead> dead = {{host + ":" + std::to_string(gone) + ":x", host, gone},
                            {"other-host:5:y", "other-host", 5},
                            {"other-host:6:z", "other-host", 6}};
  for (size_t i = 0; i < dead.size(); ++i) {
    tracking::CreateRunRequest run;
    run.experiment_id = "0";
    run.run_name = "retrain-churn-job" + std::to_string(i + 1);
    ASSERT_OK_AND_ASSIGN(tracking::Run r, tracking.CreateRun(run));
    dead[i].run_id = r.info.run_id;
    ASSERT_OK_AND_ASSIGN(
        registry::ModelVersion v,
        registry.CreateModelVersion(
            {"churn", "test:/v" + std::to_string(i + 1), r.info.run_id, "", "", "me", {}}));
    dead[i].version = v.version;
    RetrainJob job;
    job.model = "churn";
    job.trigger = "manual";
    job.status = "running";
    job.host = dead[i].host;
    job.pid = dead[i].pid;
    job.run_id = r.info.run_id;
    if (i == 2) {
      job.challenger_version = v.version;
      job.promote_alias = "champion";
      ASSERT_OK(registry.SetAlias("churn", "champion", v.version,
                                  {"keel-retrain", "retrain job 3 (manual): gate passed"}));
    }
    ASSERT_OK(db->Write([&](store::Connection& c) -> Status {
      if (i == 0) {
        KEEL_RETURN_IF_ERROR(
            c.Exec("UPDATE model_versions SET status = 'PENDING_REGISTRATION' WHERE version = ?",
                   {store::Value(static_cast<int64_t>(std::stoll(v.version)))}));
      }
      // The store numbers the job (1, 2, 3 here: the reasons name them).
      KEEL_RETURN_IF_ERROR(
          c.Query("INSERT INTO retrain_jobs(model, trigger_name, actor, status, started_time, "
                  "finished_time, details, owner, heartbeat) VALUES ('churn', 'manual', 'me', "
                  "'running', 1, 0, '', ?, 1) RETURNING job_id",
                  {store::Value(dead[i].owner)}, [&](const store::RowView& row) {
                    job.id = row.Int(0);
                    return OkStatus();
                  }));
      return c.Exec("UPDATE retrain_jobs SET details = ? WHERE job_id = ?",
                    {store::Value(job.ToJson()), store::Value(job.id)});
    }));
    ASSERT_EQ(job.id, static_cast<int64_t>(i + 1));
  }
  ASSERT_OK_AND_ASSIGN(int marked, MarkInterruptedJobs(*db, 5'000));
  EXPECT_EQ(marked, 1);  // this host's
  ASSERT_OK_AND_ASSIGN(
      std::vector<QueuedJob> reruns,
      TakeOverStaleWork(*db, 6'000, 3'000, [](const std::string&) { return true; }));
  ASSERT_EQ(reruns.size(), 1u);  // the other host's: job 2 runs again, job 3 does not
  EXPECT_EQ(reruns[0].trigger, "takeover of job 2 (manual)");
  for (size_t i = 0; i < dead.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_OK_AND_ASSIGN(tracking::Run run, tracking.GetRun(dead[i].run_id));
    EXPECT_EQ(run.info.status, "FAILED");
    ASSERT_OK_AND_ASSIGN(registry::ModelVersion v,
                         registry.GetModelVersion("churn", dead[i].version));
    EXPECT_EQ(v.status, i == 0 ? "FAILED_REGISTRATION" : "READY");
    if (i == 0) {
      EXPECT_NE(v.status_message.find("stopped while registering it"), std::string::npos);
    }
  }
  ASSERT_OK_AND_ASSIGN(std::vector<RetrainJob> jobs, RetrainHistory(*db, "churn"));
  ASSERT_EQ(jobs.size(), 4u);  // newest first: job 2's rerun, jobs 3, 2, 1
  EXPECT_EQ(jobs[0].id, reruns[0].id);
  EXPECT_EQ(jobs[3].status, "failed");
  EXPECT_EQ(jobs[3].challenger_version, "");
  EXPECT_EQ(jobs[2].status, "failed");
  EXPECT_EQ(jobs[2].challenger_version, dead[1].version);
  EXPECT_NE(
      jobs[2].message.find("its run had registered version " + dead[1].version + ", never gated"),
      std::string::npos)
      << jobs[2].message;
  EXPECT_EQ(jobs[1].status, "promoted");
  EXPECT_NE(jobs[1].message.find("champion -> version " + dead[2].version +
                                 " before its process stopped"),
            std::string::npos)
      << jobs[1].message;
}

// The watch: a real registry and prediction log on SQLite, keel-linear
// packages as versions 1 (sharp) and 2 (inverted, or as good), a ManualClock.
class WatchTest : public ::testing::Test {
 protected:
  WatchTest() : db_(OpenTestDb(dir_)), clock_(1'800'000'000'000), registry_(*db_, clock_) {}

  void SetUp() override {
    ASSERT_TRUE(registry_.CreateRegisteredModel("churn", {}, "").ok());
    for (int v = 1; v <= 2; ++v) {
      ASSERT_TRUE(
          registry_
              .CreateModelVersion({"churn", "test:/v" + std::to_string(v), "", "", "", "me", {}})
              .ok());
    }
    policy_.model = "churn";
    policy_.train.data = "x.csv";
    policy_.train.target = "y";
    policy_.gate.min_rows = 200;
    policy_.watch.duration_ms = 3'600'000;
    policy_.watch.drop_more_than = 0.05;
    env_.db = db_.get();
    env_.registry = &registry_;
    env_.clock = &clock_;
    env_.model_path = [this](const std::string&,
                             const std::string& version) -> Result<std::filesystem::path> {
      auto it = paths_.find(version);
      if (it == paths_.end()) return NotFound("no package for version " + version);
      return it->second;
    };
  }

  void Package(const std::string& version, double w) {
    paths_[version] = dir_.path() / ("pkg" + version + "-" + std::to_string(++serial_));
    ASSERT_OK(model::WriteModelPackage(paths_[version], LinearContents(w)));
  }

  // n labeled predictions answered by `version`, logged now.
  void Traffic(const std::string& version, int n) {
    std::vector<serve::Label> labels;
    ASSERT_OK(db_->Write([&](store::Connection& c) -> Status {
      for (int i = 0; i < n; ++i) {
        const double x = -1.0 + 2.0 * i / (n - 1);
        const std::string id = "r" + std::to_string(++serial_);
        KEEL_RETURN_IF_ERROR(c.Exec(
            "INSERT INTO predictions(request_id, time, model, version, endpoint, input, output, "
            "latency_us) VALUES (?, ?, 'churn', ?, 'predict', ?, '0.5', 10)",
            {store::Value(id), store::Value(clock_.NowMillis()), store::Value(version),
             store::Value(R"({"x": )" + FormatDouble(x) + "}")}));
        labels.push_back({id, x + 0.3 * std::sin(i * 12.9898) > 0 ? R"("yes")" : R"("no")"});
      }
      return OkStatus();
    }));
    ASSERT_TRUE(serve::RecordLabels(*db_, labels, clock_.NowMillis()).ok());
  }

  TempDir dir_;
  std::unique_ptr<store::Database> db_;
  ManualClock clock_;
  registry::RegistryService registry_;
  std::map<std::string, std::filesystem::path> paths_;
  int serial_ = 0;  // unique package folders and request ids
  RetrainPolicy policy_;
  RetrainEnv env_;
};

TEST_F(WatchTest, ABadPromotionIsRolledBack) {
  Package("1", 4.0);
  Package("2", -4.0);  // ranks the wrong way round
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {"alice", "first"}));
  clock_.Advance(60'000);
  Traffic("2", 300);  // version 2 answered before it was promoted: not counted
  clock_.Advance(60'000);
  ASSERT_OK(registry_.SetAlias("churn", "champion", "2", {"bob", "forced"}));
  clock_.Advance(60'000);
  Traffic("1", 300);  // another version's rows: not counted
  Traffic("2", 100);
  ASSERT_OK_AND_ASSIGN(std::optional<WatchOutcome> none, WatchPromotion(policy_, env_));
  EXPECT_FALSE(none.has_value());  // 100 rows < gate.min_rows 200: no verdict yet
  Traffic("2", 150);
  ASSERT_OK_AND_ASSIGN(std::optional<WatchOutcome> out, WatchPromotion(policy_, env_));
  ASSERT_TRUE(out.has_value());
  EXPECT_TRUE(out->rolled_back);
  EXPECT_EQ(registry_.GetVersionByAlias("churn", "champion")->version, "1");
  const RetrainJob& job = out->job;
  EXPECT_EQ(job.status, "rolled_back");
  EXPECT_EQ(job.trigger, "watch");
  EXPECT_EQ(job.champion_version, "2");
  EXPECT_EQ(job.challenger_version, "1");
  ASSERT_TRUE(job.gate.has_value());
  EXPECT_EQ(job.gate->holdout_rows, 250u);                    // version 2's rows since the change
  EXPECT_GT(job.gate->challenger - job.gate->champion, 0.5);  // version 1 over version 2
  EXPECT_EQ(out->alert.rule, "watch_rollback");
  EXPECT_EQ(out->alert.version, "2");
  EXPECT_EQ(out->alert.metric, "performance.auc.drop");
  EXPECT_GT(out->alert.value, 0.05);
  auto history = *registry_.AliasHistory("churn", "champion");
  EXPECT_EQ(history.front().actor, kWatchActor);
  EXPECT_NE(history.front().reason.find("watch rolled back"), std::string::npos);
  ASSERT_OK_AND_ASSIGN(std::vector<RetrainJob> jobs, RetrainHistory(*db_, "churn"));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].status, "rolled_back");
  // The rollback itself is not watched.
  ASSERT_OK_AND_ASSIGN(none, WatchPromotion(policy_, env_));
  EXPECT_FALSE(none.has_value());
}

TEST_F(WatchTest, APersonsRollbackIsNotUndone) {
  Package("1", 4.0);
  Package("2", -4.0);
  ASSERT_OK(registry_.SetAlias("churn", "champion", "2", {"alice", "first"}));
  clock_.Advance(60'000);
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {"bob", "better"}));
  clock_.Advance(60'000);
  // Bob is overruled by hand (version 2 back), for a reason the metric cannot see.
  ASSERT_TRUE(registry_.Rollback("churn", "champion", {"carol", "latency"}).ok());
  clock_.Advance(60'000);
  Traffic("2", 300);  // version 2 scores far worse than version 1 on these rows
  ASSERT_OK_AND_ASSIGN(std::optional<WatchOutcome> none, WatchPromotion(policy_, env_));
  EXPECT_FALSE(none.has_value());
  EXPECT_EQ(registry_.GetVersionByAlias("churn", "champion")->version, "2");
}

TEST_F(WatchTest, AGoodPromotionStaysAndTheWatchEnds) {
  Package("1", 0.5);
  Package("2", 4.0);  // the same ranking, sharper: AUC equal, no drop
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {"alice", "first"}));
  clock_.Advance(60'000);
  ASSERT_OK(registry_.SetAlias("churn", "champion", "2", {"job", "gate passed"}));
  clock_.Advance(60'000);
  Traffic("2", 300);
  ASSERT_OK_AND_ASSIGN(std::optional<WatchOutcome> none, WatchPromotion(policy_, env_));
  EXPECT_FALSE(none.has_value());
  EXPECT_EQ(registry_.GetVersionByAlias("churn", "champion")->version, "2");
  // Once watch.duration has passed, even a bad version is left alone.
  Package("2", -4.0);
  clock_.Advance(policy_.watch.duration_ms);
  ASSERT_OK_AND_ASSIGN(none, WatchPromotion(policy_, env_));
  EXPECT_FALSE(none.has_value());
  EXPECT_EQ(registry_.GetVersionByAlias("churn", "champion")->version, "2");
}

// The shadow phase: jobs in status `shadow` decided by FinishShadow on the
// champion's logged answers and the challenger's shadow answers, written by
// a real ShadowScorer.
class ShadowTest : public WatchTest {
 protected:
  void SetUp() override {
    WatchTest::SetUp();
    policy_.shadow.duration_ms = 3'600'000;
    policy_.shadow.min_requests = 100;
    policy_.gate.max_regression = 10;  // the deciding metric only
  }

  // A job of this fixture's model in its shadow phase from now on.
  RetrainJob ShadowJob(int64_t id, const std::string& champion, const std::string& challenger) {
    RetrainJob job;
    job.id = id;
    job.model = "churn";
    job.trigger = "manual";
    job.actor = "tester";
    job.status = "shadow";
    job.started_ms = clock_.NowMillis();
    job.champion_version = champion;
    job.challenger_version = challenger;
    job.promote_alias = "champion";
    job.shadow.emplace();
    job.shadow->started_ms = clock_.NowMillis();
    job.shadow->ends_ms = clock_.NowMillis() + policy_.shadow.duration_ms;
    const Status s = db_->Write([&](store::Connection& c) {
      return c.Exec(
          "INSERT INTO retrain_jobs(job_id, model, trigger_name, actor, status, started_time, "
          "finished_time, details) VALUES (?, 'churn', 'manual', 'tester', 'shadow', ?, 0, ?)",
          {store::Value(id), store::Value(job.started_ms), store::Value(job.ToJson())});
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return job;
  }

  // n labeled requests answered by `champion` (its real outputs logged) and
  // scored in shadow by `challenger`.
  void Shadowed(const std::string& champion, double w_champion, const std::string& challenger,
                int n) {
    auto loaded = model::LoadModelPackage(paths_[challenger]);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    auto d = std::make_shared<serve::Deployment>();
    d->name = "churn";
    d->version = challenger;
    d->ref = "churn@champion";
    d->model = *loaded;
    std::vector<serve::ShadowRow> rows;
    std::vector<serve::Label> labels;
    ASSERT_OK(db_->Write([&](store::Connection& c) -> Status {
      for (int i = 0; i < n; ++i) {
        const double x = -1.0 + 2.0 * i / (n - 1);
        const std::string id = "s" + std::to_string(++serial_);
        const std::string input = R"({"x": )" + FormatDouble(x) + "}";
        const double p = 1.0 / (1.0 + std::exp(-w_champion * x));
        KEEL_RETURN_IF_ERROR(c.Exec(
            "INSERT INTO predictions(request_id, time, model, version, endpoint, input, output, "
            "latency_us) VALUES (?, ?, 'churn', ?, 'predict', ?, ?, 10)",
            {store::Value(id), store::Value(clock_.NowMillis()), store::Value(champion),
             store::Value(input), store::Value(FormatDouble(p))}));
        rows.push_back({id, clock_.NowMillis(), input});
        labels.push_back({id, x + 0.3 * std::sin(i * 12.9898) > 0 ? R"("yes")" : R"("no")"});
      }
      return OkStatus();
    }));
    ASSERT_TRUE(serve::RecordLabels(*db_, labels, clock_.NowMillis()).ok());
    serve::ShadowScorer scorer(*db_, nullptr, {});
    ASSERT_OK(scorer.Start());
    ASSERT_TRUE(scorer.Submit(d, std::move(rows)));
    ASSERT_OK(scorer.Flush());
  }

  std::string Alias(const std::string& alias) {
    auto v = registry_.GetVersionByAlias("churn", alias);
    return v.ok() ? v->version : "";
  }
};

TEST_F(ShadowTest, AnEquallyGoodChallengerIsPromotedOnceTheShadowIsDue) {
  Package("1", 0.5);
  Package("2", 4.0);
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {"alice", "first"}));
  ASSERT_OK(registry_.SetAlias("churn", serve::kShadowAlias, "2", {"job", "gate passed"}));
  ShadowJob(1, "1", "2");
  clock_.Advance(60'000);
  Shadowed("1", 0.5, "2", 300);
  Shadowed("7", 0.5, "2", 200);  // answered by another version: not compared
  // Not due yet: the phase lasts shadow.duration whatever the traffic.
  ASSERT_OK_AND_ASSIGN(std::optional<RetrainJob> none, FinishShadow(policy_, env_));
  EXPECT_FALSE(none.has_value());
  EXPECT_EQ(Alias("champion"), "1");
  clock_.Advance(policy_.shadow.duration_ms);
  ASSERT_OK_AND_ASSIGN(std::optional<RetrainJob> done, FinishShadow(policy_, env_));
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->status, "promoted") << done->message;
  EXPECT_EQ(Alias("champion"), "2");
  EXPECT_EQ(Alias(serve::kShadowAlias), "");  // the phase is over
  ASSERT_TRUE(done->shadow.has_value());
  const ShadowReport& r = *done->shadow;
  EXPECT_TRUE(r.passed);
  EXPECT_EQ(r.requests, 300u);
  EXPECT_EQ(r.labeled_rows, 300u);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_DOUBLE_EQ(r.agreement, 1.0);  // both increasing in x: the same side of 0.5
  EXPECT_GT(r.mean_abs_diff, 0.05);
  ASSERT_TRUE(r.live.has_value());
  EXPECT_TRUE(r.live->passed);
  EXPECT_EQ(r.live->holdout_rows, 300u);
  EXPECT_NEAR(r.live->champion, r.live->challenger, 1e-9);  // same ranking, same AUC
  // The record kept it all, and the alias history says why.
  ASSERT_OK_AND_ASSIGN(std::vector<RetrainJob> jobs, RetrainHistory(*db_, "churn"));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].status, "promoted");
  ASSERT_TRUE(jobs[0].shadow.has_value());
  EXPECT_EQ(jobs[0].shadow->requests, 300u);
  EXPECT_TRUE(jobs[0].shadow->live.has_value());
  EXPECT_NE(registry_.AliasHistory("churn", "champion")->front().reason.find("shadow passed"),
            std::string::npos);
  // Nothing left to decide.
  ASSERT_OK_AND_ASSIGN(none, FinishShadow(policy_, env_));
  EXPECT_FALSE(none.has_value());
}

TEST_F(ShadowTest, MinDeltaIsAppliedOnTheLabeledLiveRows) {
  ASSERT_TRUE(registry_.CreateModelVersion({"churn", "test:/v3", "", "", "", "me", {}}).ok());
  Package("1", -1.0);  // the champion ranks live traffic the wrong way round
  Package("2", 4.0);
  Package("3", 0.5);
  policy_.gate.min_delta = 0.3;
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {"alice", "first"}));
  ASSERT_OK(registry_.SetAlias("churn", serve::kShadowAlias, "2", {"job", "gate passed"}));
  ShadowJob(1, "1", "2");
  Shadowed("1", -1.0, "2", 300);
  clock_.Advance(policy_.shadow.duration_ms);
  ASSERT_OK_AND_ASSIGN(std::optional<RetrainJob> done, FinishShadow(policy_, env_));
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->status, "promoted") << done->message;
  ASSERT_TRUE(done->shadow->live.has_value());
  EXPECT_GT(done->shadow->live->challenger - done->shadow->live->champion, 0.3);
  // Version 3 ranks as version 2 does: no gain of 0.3 over it, rejected.
  ASSERT_OK(registry_.SetAlias("churn", serve::kShadowAlias, "3", {"job", "gate passed"}));
  ShadowJob(2, "2", "3");
  Shadowed("2", 4.0, "3", 300);
  clock_.Advance(policy_.shadow.duration_ms);
  ASSERT_OK_AND_ASSIGN(done, FinishShadow(policy_, env_));
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->status, "rejected");
  EXPECT_NE(done->message.find("is below gate.min_delta 0.3"), std::string::npos) << done->message;
  EXPECT_EQ(Alias("champion"), "2");
}

TEST_F(ShadowTest, AliasesMovedOrRemovedEndThePhaseWithoutADecision) {
  ASSERT_TRUE(registry_.CreateModelVersion({"churn", "test:/v3", "", "", "", "me", {}}).ok());
  Package("1", 4.0);
  Package("2", 4.0);
  Package("3", 4.0);
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {"alice", "first"}));
  // Removed by hand: the job ends cancelled.
  ShadowJob(1, "1", "2");
  ASSERT_OK_AND_ASSIGN(std::optional<RetrainJob> none, FinishShadow(policy_, env_));
  EXPECT_FALSE(none.has_value());
  ASSERT_OK_AND_ASSIGN(std::vector<RetrainJob> jobs, RetrainHistory(*db_, "churn"));
  EXPECT_EQ(jobs[0].status, "cancelled");
  EXPECT_EQ(jobs[0].message, "the shadow alias was removed before a decision");
  // An alias no job owns (set by hand, or left by a record that could not be
  // finished) is removed.
  ASSERT_OK(registry_.SetAlias("churn", serve::kShadowAlias, "3", {"bob", "try"}));
  ASSERT_OK_AND_ASSIGN(none, FinishShadow(policy_, env_));
  EXPECT_EQ(Alias(serve::kShadowAlias), "");
  EXPECT_EQ(registry_.AliasHistory("churn", serve::kShadowAlias)->front().actor, kShadowActor);
  // A policy whose shadow section went away ends the phase, champion untouched.
  ASSERT_OK(registry_.SetAlias("churn", serve::kShadowAlias, "2", {"job", "gate passed"}));
  ShadowJob(2, "1", "2");
  Shadowed("1", 4.0, "2", 300);
  RetrainPolicy plain = policy_;
  plain.shadow = {};
  clock_.Advance(policy_.shadow.duration_ms);
  ASSERT_OK_AND_ASSIGN(none, FinishShadow(plain, env_));
  EXPECT_FALSE(none.has_value());
  ASSERT_OK_AND_ASSIGN(jobs, RetrainHistory(*db_, "churn"));
  EXPECT_EQ(jobs[0].status, "cancelled");
  EXPECT_NE(jobs[0].message.find("no shadow phase any more"), std::string::npos);
  EXPECT_EQ(Alias(serve::kShadowAlias), "");
  EXPECT_EQ(Alias("champion"), "1");
}

TEST_F(ShadowTest, AChallengerWorseOnLiveTrafficIsRejected) {
  Package("1", 4.0);
  Package("2", -4.0);  // passed a holdout somehow; ranks live traffic the wrong way round
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {"alice", "first"}));
  ASSERT_OK(registry_.SetAlias("churn", serve::kShadowAlias, "2", {"job", "gate passed"}));
  ShadowJob(1, "1", "2");
  Shadowed("1", 4.0, "2", 300);
  clock_.Advance(policy_.shadow.duration_ms);
  ASSERT_OK_AND_ASSIGN(std::optional<RetrainJob> done, FinishShadow(policy_, env_));
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->status, "rejected");
  EXPECT_NE(done->message.find("shadow: on 300 labeled live rows: auc"), std::string::npos)
      << done->message;
  EXPECT_EQ(Alias("champion"), "1");  // untouched
  EXPECT_EQ(Alias(serve::kShadowAlias), "");
  EXPECT_LT(done->shadow->agreement, 0.2);
  EXPECT_FALSE(done->shadow->passed);
}

TEST_F(ShadowTest, TooLittleTrafficWaitsAndANewerChallengerSupersedes) {
  ASSERT_TRUE(registry_.CreateModelVersion({"churn", "test:/v3", "", "", "", "me", {}}).ok());
  Package("1", 4.0);
  Package("2", 4.0);
  Package("3", 4.0);
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {"alice", "first"}));
  ShadowJob(1, "1", "2");
  ShadowJob(2, "1", "3");
  ASSERT_OK(registry_.SetAlias("churn", serve::kShadowAlias, "3", {"job 2", "gate passed"}));
  Shadowed("1", 4.0, "3", 50);  // below shadow.min_requests 100
  clock_.Advance(policy_.shadow.duration_ms);
  ASSERT_OK_AND_ASSIGN(std::optional<RetrainJob> none, FinishShadow(policy_, env_));
  EXPECT_FALSE(none.has_value());
  ASSERT_OK_AND_ASSIGN(std::vector<RetrainJob> jobs, RetrainHistory(*db_, "churn"));
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].status, "shadow");  // waiting for traffic
  EXPECT_EQ(jobs[1].status, "superseded");
  EXPECT_NE(jobs[1].message.find("moved to version 3"), std::string::npos) << jobs[1].message;
  Shadowed("1", 4.0, "3", 60);
  ASSERT_OK_AND_ASSIGN(std::optional<RetrainJob> done, FinishShadow(policy_, env_));
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->id, 2);
  EXPECT_EQ(done->status, "promoted") << done->message;
  EXPECT_EQ(done->shadow->requests, 110u);
  // 110 labeled rows < gate.min_rows 200: no live verdict, the holdout's stands.
  EXPECT_FALSE(done->shadow->live.has_value());
  EXPECT_NE(done->message.find("the holdout's verdict stands"), std::string::npos);
  EXPECT_EQ(Alias("champion"), "3");
}

TEST_F(ShadowTest, CancellingEndsThePhaseAndLeavesTheChampion) {
  Package("1", 4.0);
  Package("2", 4.0);
  ASSERT_OK(registry_.SetAlias("churn", "champion", "1", {"alice", "first"}));
  ASSERT_OK(registry_.SetAlias("churn", serve::kShadowAlias, "2", {"job", "gate passed"}));
  ShadowJob(1, "1", "2");
  ASSERT_OK_AND_ASSIGN(int ended,
                       CancelShadow(*db_, registry_, clock_, "churn", {"bob", "not now"}));
  EXPECT_EQ(ended, 1);
  EXPECT_EQ(Alias(serve::kShadowAlias), "");
  EXPECT_EQ(Alias("champion"), "1");
  ASSERT_OK_AND_ASSIGN(std::vector<RetrainJob> jobs, RetrainHistory(*db_, "churn"));
  EXPECT_EQ(jobs[0].status, "cancelled");
  EXPECT_EQ(jobs[0].message, "cancelled by bob during the shadow phase (not now)");
  ASSERT_OK_AND_ASSIGN(ended, CancelShadow(*db_, registry_, clock_, "churn", {"bob", ""}));
  EXPECT_EQ(ended, 0);
  Shadowed("1", 4.0, "2", 300);
  clock_.Advance(policy_.shadow.duration_ms);
  ASSERT_OK_AND_ASSIGN(std::optional<RetrainJob> none, FinishShadow(policy_, env_));
  EXPECT_FALSE(none.has_value());
  EXPECT_EQ(Alias("champion"), "1");
}

TEST_F(ShadowTest, ErrorsAndNonFiniteOutputsFailTheShadow) {
  TempDir dir;
  auto champion = Linear(dir, 1.0);
  auto challenger = Linear(dir, 2.0);
  ASSERT_NE(champion, nullptr);
  ASSERT_NE(challenger, nullptr);
  std::vector<serve::ShadowPair> pairs;
  for (int i = 0; i < 10; ++i) {
    serve::ShadowPair p;
    p.request_id = "r" + std::to_string(i);
    p.champion_version = "1";
    p.champion_output = "0.75";
    p.shadow_output = "0.25";
    pairs.push_back(p);
  }
  serve::ShadowPair other = pairs[0];
  other.champion_version = "7";  // answered by another version: left out
  other.shadow_output = "null";
  pairs.push_back(other);
  ASSERT_OK_AND_ASSIGN(ShadowReport ok, CompareShadow({}, *champion, "1", *challenger, pairs));
  EXPECT_TRUE(ok.passed) << ok.reason;
  EXPECT_EQ(ok.requests, 10u);
  EXPECT_DOUBLE_EQ(ok.agreement, 0.0);  // 0.75 vs 0.25: opposite classes every time
  EXPECT_DOUBLE_EQ(ok.mean_abs_diff, 0.5);
  pairs[3].shadow_output = "null";
  ASSERT_OK_AND_ASSIGN(ShadowReport nf, CompareShadow({}, *champion, "1", *challenger, pairs));
  EXPECT_FALSE(nf.passed);
  EXPECT_EQ(nf.non_finite, 1u);
  EXPECT_NE(nf.reason.find("non-finite outputs for 1 of 10"), std::string::npos) << nf.reason;
  pairs[5].error = "row 0, field \"x\": expected a number";
  ASSERT_OK_AND_ASSIGN(ShadowReport err, CompareShadow({}, *champion, "1", *challenger, pairs));
  EXPECT_FALSE(err.passed);
  EXPECT_EQ(err.errors, 1u);
  EXPECT_NE(err.reason.find("could not score 1 of 10 shadowed requests (first: request r5"),
            std::string::npos)
      << err.reason;
}

}  // namespace
}  // namespace keel::retrain

namespace keel::retrain {
namespace {

// A job's log keeps valid UTF-8 (a command's output may be in any encoding
// or cut inside a character) and stays bounded; it survives the job's JSON.
TEST(RetrainJobsTest, JobLogIsValidUtf8AndBounded) {
  RetrainJob job;
  job.id = 7;
  AppendJobLog(job, 1, std::string("latin-1 caf\xe9, cut \xe2\x82", 20) + " end");
  AppendJobLog(job, 2, "euro \xe2\x82\xac, overlong \xc0\xaf, surrogate \xed\xa0\x80");
  ASSERT_EQ(job.log.size(), 2u);
  EXPECT_EQ(job.log[0].text, "latin-1 caf\xef\xbf\xbd, cut \xef\xbf\xbd\xef\xbf\xbd end");
  EXPECT_EQ(job.log[1].text,
            "euro \xe2\x82\xac, overlong \xef\xbf\xbd\xef\xbf\xbd, surrogate "
            "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  // A long line is cut at a character boundary, then marked.
  std::string long_line;
  while (long_line.size() < kMaxJobLogLineBytes + 10) long_line += "\xe2\x82\xac";
  AppendJobLog(job, 3, long_line);
  const std::string cut = job.log[2].text;  // a copy: the log grows below
  ASSERT_TRUE(cut.ends_with(" [cut]"));
  EXPECT_LE(cut.size(), kMaxJobLogLineBytes + 6);
  EXPECT_EQ((cut.size() - 6) % 3, 0u);  // whole euro signs only
  // Bounded: one line says the log is full, later ones are dropped.
  for (size_t i = job.log.size(); i < kMaxJobLogLines + 5; ++i) AppendJobLog(job, 4, "step");
  ASSERT_EQ(job.log.size(), kMaxJobLogLines + 1);
  EXPECT_NE(job.log.back().text.find("the log is full"), std::string::npos);
  // The record round-trips through its JSON.
  auto back = RetrainJob::FromJson(job.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->log.size(), job.log.size());
  EXPECT_EQ(back->log[0].text, job.log[0].text);
  EXPECT_EQ(back->log[2].text, cut);
  // A message holding invalid UTF-8 does not break the record either.
  job.message = "bad \xff byte";
  EXPECT_TRUE(RetrainJob::FromJson(job.ToJson()).ok());
}

// A recorder for jobs that end before they record a run: every call fails.
class NoRecorder final : public train::RunRecorder {
 public:
  Result<std::string> StartRun(const std::string&, const std::string&, const std::string&,
                               const train::KeyValues&) override {
    return Unimplemented("no recorder");
  }
  Status LogParams(const std::string&, const train::KeyValues&) override {
    return Unimplemented("no recorder");
  }
  Status LogMetrics(const std::string&, const std::vector<train::Metric>&) override {
    return Unimplemented("no recorder");
  }
  Status SetTags(const std::string&, const train::KeyValues&) override {
    return Unimplemented("no recorder");
  }
  Status LogDatasets(const std::string&, const std::vector<train::DataVersion>&,
                     const std::string&) override {
    return Unimplemented("no recorder");
  }
  Result<std::string> UploadDirectory(const std::string&, const std::filesystem::path&,
                                      const std::string&) override {
    return Unimplemented("no recorder");
  }
  Status EndRun(const std::string&, const std::string&) override {
    return Unimplemented("no recorder");
  }
  Result<RunInfo> GetRun(const std::string&) override { return Unimplemented("no recorder"); }
  Result<std::string> PutSharedFile(const std::string&, const std::filesystem::path&) override {
    return Unimplemented("no recorder");
  }
  Status DownloadFile(const std::string&, const std::filesystem::path&) override {
    return Unimplemented("no recorder");
  }
  Result<std::pair<std::string, std::string>> RegisterModel(const std::string&, const std::string&,
                                                            const std::string&) override {
    return Unimplemented("no recorder");
  }
};

void StoreOk(const Status& s) { EXPECT_TRUE(s.ok()) << s.ToString(); }

// The status of job row `id` ("" when there is none).
std::string StatusOf(store::Database& db, int64_t id) {
  std::string status;
  StoreOk(db.Read([&](store::Connection& c) {
    return c.Query("SELECT status FROM retrain_jobs WHERE job_id = ?", {store::Value(id)},
                   [&](const store::RowView& r) {
                     status = std::string(r.Text(0));
                     return OkStatus();
                   });
  }));
  return status;
}

class RetrainQueueTest : public WatchTest {
 protected:
  // A manual job of churn, queued for this process.
  QueuedJob QueueManualJob() {
    QueuedJob queued;
    queued.model = "churn";
    queued.trigger = "manual";
    queued.actor = "me";
    StoreOk(
        db_->Write([&](store::Connection& c) { return QueueJob(c, queued, clock_.NowMillis()); }));
    EXPECT_NE(queued.id, 0);
    return queued;
  }
};

// The scheduler's queued row becomes the job (one row per run), a failed
// job's retry is queued with its failure, and a row no longer queued for
// this process does not run.
TEST_F(RetrainQueueTest, AQueuedRowBecomesItsJobAndAFailureQueuesItsRetry) {
  NoRecorder recorder;
  env_.recorder = &recorder;
  policy_.train.data = (dir_.path() / "missing.csv").string();  // the job fails at step 3
  const QueuedJob queued = QueueManualJob();
  ASSERT_NE(queued.id, 0);
  QueuedJob retry = queued;
  retry.id = 0;
  retry.attempt = 2;
  RetrainRequest request;
  request.trigger = "manual";
  request.actor = "me";
  request.queued_job_id = queued.id;
  request.retry = &retry;
  request.retry_backoff_ms = 60'000;
  Result<RetrainJob> job = RunRetrainJob(policy_, env_, request);
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_EQ(job->id, queued.id);
  EXPECT_EQ(job->status, "failed") << job->message;
  EXPECT_NE(retry.id, 0);
  EXPECT_NE(retry.id, queued.id);
  EXPECT_EQ(retry.not_before_ms, job->finished_ms + 60'000);
  auto history = RetrainHistory(*db_, "churn", 10);
  ASSERT_TRUE(history.ok()) << history.status().ToString();
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[0].id, retry.id);
  EXPECT_EQ((*history)[0].status, "queued");
  EXPECT_EQ((*history)[1].id, queued.id);
  EXPECT_EQ((*history)[1].status, "failed");
  int64_t attempt = 0;
  ASSERT_OK(db_->Read([&](store::Connection& c) {
    return c.Query("SELECT attempt FROM retrain_jobs WHERE job_id = ?", {store::Value(retry.id)},
                   [&](const store::RowView& r) {
                     attempt = r.Int(0);
                     return OkStatus();
                   });
  }));
  EXPECT_EQ(attempt, 2);
  // The first row is a job now: starting it again is refused, nothing runs.
  request.retry = nullptr;
  Result<RetrainJob> again = RunRetrainJob(policy_, env_, request);
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition) << again.status().ToString();
  history = RetrainHistory(*db_, "churn", 10);
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->size(), 2u);
}

// One job per model across processes: a job does not start while another
// process's job of the model is running with a fresh heartbeat (its queued
// row stays queued, nothing is inserted); a stale heartbeat, or a process of
// this host that is gone, does not hold it back.
TEST_F(RetrainQueueTest, AJobWaitsWhileAnotherProcessRunsOneOfItsModel) {
  NoRecorder recorder;
  env_.recorder = &recorder;
  env_.stale_after_ms = 30'000;
  policy_.train.data = (dir_.path() / "missing.csv").string();  // a started job fails at step 3
  auto running_row = [&](const std::string& owner) {
    int64_t id = 0;
    StoreOk(db_->Write([&](store::Connection& c) {
      return c.Query(
          "INSERT INTO retrain_jobs(model, trigger_name, actor, status, started_time, "
          "finished_time, details, owner, heartbeat) VALUES ('churn', 'manual', 't', 'running', "
          "?, 0, '{}', ?, ?) RETURNING job_id",
          {store::Value(clock_.NowMillis()), store::Value(owner), store::Value(clock_.NowMillis())},
          [&](const store::RowView& r) {
            id = r.Int(0);
            return OkStatus();
          });
    }));
    return id;
  };
  const int64_t other = running_row("other-host:9:abc");
  const QueuedJob queued = QueueManualJob();
  auto status_of = [&](int64_t id) { return StatusOf(*db_, id); };
  auto rows = [&] {
    int64_t n = 0;
    StoreOk(db_->Read([&](store::Connection& c) {
      return c.Query("SELECT COUNT(*) FROM retrain_jobs", {}, [&](const store::RowView& r) {
        n = r.Int(0);
        return OkStatus();
      });
    }));
    return n;
  };
  RetrainRequest from_queue;
  from_queue.queued_job_id = queued.id;
  Result<RetrainJob> waiting = RunRetrainJob(policy_, env_, from_queue);
  ASSERT_EQ(waiting.status().code(), StatusCode::kUnavailable) << waiting.status().ToString();
  EXPECT_NE(waiting.status().message().find("already has retraining job " + std::to_string(other)),
            std::string::npos)
      << waiting.status().message();
  EXPECT_EQ(status_of(queued.id), "queued");
  Result<RetrainJob> direct = RunRetrainJob(policy_, env_, RetrainRequest{});
  EXPECT_EQ(direct.status().code(), StatusCode::kUnavailable) << direct.status().ToString();
  EXPECT_EQ(rows(), 2);  // nothing inserted

  // A gone process of this host, with a fresh heartbeat, holds nothing back.
  ASSERT_OK(db_->Write([&](store::Connection& c) {
    return c.Exec("UPDATE retrain_jobs SET status = 'failed' WHERE job_id = ?",
                  {store::Value(other)});
  }));
  running_row(ThisHost() + ":999999999:gone");
  // Nor does another host's job once its heartbeat is stale.
  running_row("other-host:9:abc");
  clock_.Advance(30'001);
  Result<RetrainJob> started = RunRetrainJob(policy_, env_, from_queue);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  EXPECT_EQ(started->id, queued.id);
  EXPECT_EQ(started->status, "failed") << started->message;  // it ran: the data is missing

  // A queued row cancelled while it waited is not waited for again: the
  // claim refuses it (FailedPrecondition, not Unavailable), busy or not.
  const QueuedJob second = QueueManualJob();
  ASSERT_OK(db_->Write([&](store::Connection& c) {
    return c.Exec("UPDATE retrain_jobs SET heartbeat = ? WHERE status = 'running'",
                  {store::Value(clock_.NowMillis())});
  }));
  ASSERT_OK(RequestCancel(*db_, "churn", "erin", clock_.NowMillis()).status());
  RetrainRequest cancelled;
  cancelled.queued_job_id = second.id;
  Result<RetrainJob> refused = RunRetrainJob(policy_, env_, cancelled);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition)
      << refused.status().ToString();
  EXPECT_EQ(status_of(second.id), "cancelled");
}

// A store whose writes fail while `failing` is set (reads and the rest go
// to the real one).
class FlakyDatabase final : public store::Database {
 public:
  explicit FlakyDatabase(store::Database& real) : real_(real) {}
  Status Write(const std::function<Status(store::Connection&)>& fn) override {
    if (failing.load()) return Unavailable("the store is unreachable (test)");
    return real_.Write(fn);
  }
  Status Read(const std::function<Status(store::Connection&)>& fn) override {
    return real_.Read(fn);
  }
  const store::Dialect& dialect() const override { return real_.dialect(); }
  const std::string& uri() const override { return real_.uri(); }
  std::atomic<bool> failing{false};

 private:
  store::Database& real_;
};

// A job whose final record cannot be written (the store fails from the
// moment its end is known) is returned all the same, with its end, and the
// record is written with a later HeartbeatJobs on that store, so the row
// does not stay `running`; a HeartbeatJobs on another store does not write it.
TEST_F(RetrainQueueTest, AnUnwrittenRecordIsWrittenWithTheNextHeartbeats) {
  NoRecorder recorder;
  FlakyDatabase flaky(*db_);
  env_.db = &flaky;
  env_.recorder = &recorder;
  policy_.train.data = (dir_.path() / "missing.csv").string();  // the job fails at step 3
  env_.on_status = [&](const std::string& line) {
    if (line.find(" failed: ") != std::string::npos) flaky.failing = true;
  };
  Result<RetrainJob> job = RunRetrainJob(policy_, env_, RetrainRequest{});
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_EQ(job->status, "failed");
  EXPECT_EQ(StatusOf(*db_, job->id), "running");  // not written yet
  flaky.failing = false;
  TempDir other_dir;
  auto other = OpenTestDb(other_dir);
  ASSERT_NE(other, nullptr);
  ASSERT_OK(HeartbeatJobs(*other, clock_.NowMillis()));
  EXPECT_EQ(StatusOf(*db_, job->id), "running");
  ASSERT_OK(HeartbeatJobs(flaky, clock_.NowMillis()));
  EXPECT_EQ(StatusOf(*db_, job->id), "failed");
  auto history = RetrainHistory(*db_, "churn", 10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ(history->front().message, job->message);
}

// A cancel asked for through the store wins over a failure that comes
// before the job's heartbeat reads it: the job ends `cancelled` and no retry
// is queued.
TEST_F(RetrainQueueTest, ACancelBeforeAFailureEndsTheJobCancelled) {
  NoRecorder recorder;
  env_.recorder = &recorder;
  policy_.train.data = (dir_.path() / "missing.csv").string();  // the job fails at step 3
  // Asked as soon as the job has started (its first status line).
  env_.on_status = [this, asked = false](const std::string& line) mutable {
    if (asked || line.find(" started: ") == std::string::npos) return;
    asked = true;
    StoreOk(RequestCancel(*db_, "churn", "dora", clock_.NowMillis()).status());
  };
  const QueuedJob queued = QueueManualJob();
  QueuedJob retry = queued;
  retry.id = 0;
  retry.attempt = 2;
  RetrainRequest request;
  request.queued_job_id = queued.id;
  request.retry = &retry;
  request.retry_backoff_ms = 60'000;
  Result<RetrainJob> job = RunRetrainJob(policy_, env_, request);
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_EQ(job->status, "cancelled") << job->message;
  EXPECT_EQ(job->message.rfind("cancelled by dora: ", 0), 0u) << job->message;
  EXPECT_EQ(retry.id, 0);  // no retry queued
  EXPECT_EQ(StatusOf(*db_, queued.id), "cancelled");
  auto history = RetrainHistory(*db_, "churn", 10);
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->size(), 1u);
}

}  // namespace
}  // namespace keel::retrain
