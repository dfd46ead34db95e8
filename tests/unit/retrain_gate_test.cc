// The champion/challenger gate on real model packages (keel-linear binary
// classifiers written and loaded as packages), and MarkInterruptedJobs on a
// real SQLite store.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "keel/core/json.h"
#include "keel/retrain/retrain.h"
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

TEST(RetrainJobsTest, InterruptedJobsOfThisHostAreMarkedFailed) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  const pid_t gone = fork();
  if (gone == 0) _exit(0);
  ASSERT_GT(gone, 0);
  waitpid(gone, nullptr, 0);
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

}  // namespace
}  // namespace keel::retrain
