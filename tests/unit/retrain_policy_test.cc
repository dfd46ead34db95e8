// Retraining policies from YAML: the issue's example, defaults, and errors
// that name the source, the model and the key.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "keel/retrain/policy.h"
#include "test_util.h"

namespace keel::retrain {
namespace {

constexpr char kExample[] = R"(
model: churn
train: { data: data/churn.csv, target: churn, model: xgboost, params: { n_estimators: 400, learning_rate: 0.05 } }
schedule: "0 3 * * 1"                 # cron: Mondays 03:00
on_alerts: [data_drift, performance_decay]
window: { recent: 30d, include_labeled_predictions: true }
gate: { metric: auc, min_delta: 0.0, max_regression: 0.005, min_rows: 500, holdout: recent }
shadow: { duration: 1h, min_requests: 1000 }
promote: champion
watch: { duration: 24h, rollback_if: { metric: auc, drop_more_than: 0.02 } }
)";

TEST(RetrainPolicyTest, TheIssueExample) {
  ASSERT_OK_AND_ASSIGN(std::vector<RetrainPolicy> ps, ParsePolicies(kExample, "retrain.yaml"));
  ASSERT_EQ(ps.size(), 1u);
  const RetrainPolicy& p = ps[0];
  EXPECT_EQ(p.model, "churn");
  EXPECT_EQ(p.train.data, "data/churn.csv");
  EXPECT_EQ(p.train.target, "churn");
  EXPECT_EQ(p.train.model, "xgboost");
  ASSERT_EQ(p.train.params.size(), 2u);
  EXPECT_EQ(p.train.params[0], (std::pair<std::string, std::string>{"n_estimators", "400"}));
  EXPECT_EQ(p.train.params[1], (std::pair<std::string, std::string>{"learning_rate", "0.05"}));
  ASSERT_TRUE(p.schedule.has_value());
  EXPECT_EQ(p.schedule->expression(), "0 3 * * 1");
  EXPECT_EQ(p.on_alerts, (std::vector<std::string>{"data_drift", "performance_decay"}));
  EXPECT_EQ(p.window.recent_ms, 30LL * 86'400'000);
  EXPECT_TRUE(p.window.include_labeled_predictions);
  EXPECT_EQ(p.gate.metric, "auc");
  EXPECT_EQ(p.gate.min_delta, 0.0);
  EXPECT_EQ(p.gate.max_regression, 0.005);
  EXPECT_EQ(p.gate.min_rows, 500u);
  EXPECT_EQ(p.shadow.duration_ms, 3'600'000);
  EXPECT_EQ(p.shadow.min_requests, 1000u);
  EXPECT_EQ(p.promote, "champion");
  EXPECT_EQ(p.watch.duration_ms, 86'400'000);
  EXPECT_EQ(p.watch.metric, "auc");
  EXPECT_EQ(p.watch.drop_more_than, 0.02);
}

TEST(RetrainPolicyTest, DefaultsListsAndCommands) {
  ASSERT_OK_AND_ASSIGN(std::vector<RetrainPolicy> ps, ParsePolicies(R"(
policies:
  - model: a
    train: { data: a.csv, target: y }
    gate: { min_rows: 15 }
    continuous: { every: 15m, min_rows: 50, rounds: 10, learning_rate: 0.1 }
  - model: b
    train: { command: "python train.py --out {output_dir}", target: label }
    timezone: "+01:00"
    schedule: "@daily"
    missed: skip
)",
                                                                    "p.yaml"));
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0].promote, "champion");
  EXPECT_FALSE(ps[0].schedule.has_value());
  EXPECT_EQ(ps[0].missed, "run_once");
  EXPECT_EQ(ps[0].gate.min_rows, 15u);
  EXPECT_EQ(ps[0].gate.holdout_fraction, 0.3);
  EXPECT_EQ(ps[0].job.retries, 0);
  EXPECT_EQ(ps[0].continuous.every_ms, 15 * 60'000);
  EXPECT_EQ(ps[0].continuous.min_rows, 50u);
  EXPECT_EQ(ps[0].continuous.rounds, 10);
  EXPECT_EQ(ps[0].continuous.learning_rate, 0.1);
  EXPECT_EQ(ps[1].continuous.every_ms, 0);  // no continuous mode unless asked
  EXPECT_EQ(ps[1].continuous.min_rows, 200u);
  EXPECT_EQ(ps[1].train.command, "python train.py --out {output_dir}");
  ASSERT_TRUE(ps[1].schedule.has_value());
  EXPECT_EQ(ps[1].schedule->zone().OffsetMs(0), 3'600'000);
  EXPECT_EQ(ps[1].missed, "skip");

  // Several YAML documents are several policies too.
  ASSERT_OK_AND_ASSIGN(ps, ParsePolicies("model: a\ntrain: {data: a.csv, target: y}\n---\n"
                                         "model: b\ntrain: {data: b.csv, target: y}\n",
                                         "multi.yaml"));
  EXPECT_EQ(ps.size(), 2u);
}

TEST(RetrainPolicyTest, ErrorsNameSourceModelAndKey) {
  struct Bad {
    std::string yaml;
    std::string want;
  };
  const std::string train = "train: { data: d.csv, target: y }\n";
  for (const Bad& b : {
           Bad{"model: churn\n" + train + "gate: { min_rows: many }\n",
               "r.yaml: policy 'churn': gate.min_rows: expected a non-negative integer, got "
               "'many'"},
           Bad{"model: churn\n" + train + "gate: { min_row: 5 }\n",
               "r.yaml: policy 'churn': gate.min_row: unknown key"},
           Bad{"model: churn\n" + train + "schedul: \"0 3 * * 1\"\n",
               "r.yaml: policy 'churn': schedul: unknown key"},
           Bad{"model: churn\n" + train + "schedule: \"0 25 * * 1\"\n",
               "r.yaml: policy 'churn': schedule: cron field 'hour': 25 is out of range"},
           Bad{"model: churn\n" + train + "window: { recent: soon }\n",
               "r.yaml: policy 'churn': window.recent: 'soon' is not a duration"},
           Bad{"model: churn\ntrain: { target: y }\n",
               "give exactly one of data (keel trains) and command (your trainer)"},
           Bad{"model: churn\ntrain: { data: d.csv }\n", "train.target: required"},
           Bad{"train: { data: d.csv, target: y }\n", "r.yaml: policy 1: model: required"},
           Bad{"model: churn\n" + train + "missed: maybe\n", "missed: expected run_once or skip"},
           Bad{"model: churn\n" + train + "promote: challenger\n", "promote: name the alias"},
           Bad{"model: churn\n" + train + "gate: { holdout_fraction: 1.5 }\n",
               "gate.holdout_fraction: must be between 0 and 1"},
           Bad{"model: churn\n" + train + "timezone: Europe/Nowhere\n",
               "timezone: time zone 'Europe/Nowhere': no such zone"},
           Bad{"model: churn\n" + train + "schedule: \"0 3 * * 1\"\ntimezone: Mars/Olympus\n",
               "r.yaml: policy 'churn': timezone: time zone 'Mars/Olympus'"},
           Bad{"model: churn\n" + train + "gate: { metric: acu }\n",
               "gate.metric: 'acu' is not a metric keel computes"},
           Bad{"model: churn\n" + train + "watch: { duration: 1h, rollback_if: { metric: acu } }\n",
               "watch.rollback_if.metric: 'acu' is not a metric keel computes"},
           Bad{"model: a\n" + train + "---\nmodel: a\n" + train, "two policies for model 'a'"},
           Bad{"model: churn\n" + train + "continuous: { min_rows: 10 }\n",
               "r.yaml: policy 'churn': continuous.every: required"},
           Bad{"model: churn\n" + train + "continuous: { every: 1h, min_rows: 1000 }\n",
               "continuous.min_rows: 1000 new rows give a holdout of 300 (gate.holdout_fraction "
               "0.3), below gate.min_rows 500; raise continuous.min_rows or lower gate.min_rows"},
           Bad{"model: churn\n" + train + "continuous: { every: 1h, rounds: 0 }\n",
               "continuous.rounds: between 1 and 10000"},
           Bad{"model: churn\n" + train +
                   "gate: { min_rows: 10 }\ncontinuous: { every: 1h, learning_rate: -1 }\n",
               "continuous.learning_rate: must be positive"},
           Bad{"model: churn\n" + train + "continuous: { every: 1h, epochs: 3 }\n",
               "continuous.epochs: unknown key"},
           Bad{"model: churn\ntrain: { command: \"x {output_dir}\", target: y }\n"
               "continuous: { every: 1h }\n",
               "continuous: updates keel-trained models"},
           Bad{"model: churn\n" + train + "shadow: { duration: 1h, min_requests: 2000000 }\n",
               "shadow.min_requests: at most 1000000"},
           Bad{"model: [unclosed\n", "r.yaml:"},
           Bad{"", "no retraining policy"},
       }) {
    Result<std::vector<RetrainPolicy>> ps = ParsePolicies(b.yaml, "r.yaml");
    ASSERT_FALSE(ps.ok()) << b.yaml;
    EXPECT_EQ(ps.status().code(), StatusCode::kInvalidArgument) << b.yaml;
    EXPECT_NE(ps.status().message().find(b.want), std::string::npos)
        << b.yaml << "\n=> " << ps.status().message();
  }
}

TEST(RetrainPolicyTest, RelativeDataPathsFollowTheFile) {
  testing::TempDir dir;
  const std::string path = (dir.path() / "retrain.yaml").string();
  std::ofstream(path) << "model: churn\ntrain: { data: data/churn.csv, target: churn }\n";
  ASSERT_OK_AND_ASSIGN(std::vector<RetrainPolicy> ps, LoadPolicies(path));
  EXPECT_EQ(ps[0].train.data, (dir.path() / "data/churn.csv").string());
  EXPECT_EQ(LoadPolicies((dir.path() / "missing.yaml").string()).status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace keel::retrain
