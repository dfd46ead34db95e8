// Trainers: libxgboost early stopping and parameter validation, keel's
// linear/logistic models (checked against their optimality conditions), the
// run spec round trip and TrainModel on the churn data.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "keel/model/formats.h"
#include "keel/model/predictor.h"
#include "keel/train/linear_trainer.h"
#include "keel/train/train.h"
#include "keel/train/xgboost_trainer.h"
#include "test_util.h"

namespace keel::train {
namespace {

struct Data {
  std::vector<float> x, y;
  size_t rows = 0, cols = 0;
};

// y = 1 when 2*x0 - x1 + noise > 0; x2 is pure noise.
Data Synthetic(size_t rows, uint32_t seed, double noise) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n(0, 1);
  Data d;
  d.rows = rows;
  d.cols = 3;
  for (size_t r = 0; r < rows; ++r) {
    const double a = n(rng), b = n(rng), c = n(rng);
    d.x.insert(d.x.end(), {static_cast<float>(a), static_cast<float>(b), static_cast<float>(c)});
    d.y.push_back(2 * a - b + noise * n(rng) > 0 ? 1.0f : 0.0f);
  }
  return d;
}

TEST(XgboostTrainer, EarlyStoppingKeepsTheBestRounds) {
  Data train = Synthetic(400, 1, 2.0), valid = Synthetic(200, 2, 2.0);
  XgbMatrix mt{train.x.data(), train.rows, train.cols, train.y.data(), {}, {}};
  XgbMatrix mv{valid.x.data(), valid.rows, valid.cols, valid.y.data(), {}, {}};
  XgbOptions o;
  // Deep trees and a high learning rate overfit the noisy labels quickly.
  o.params = {{"objective", "binary:logistic"},
              {"eval_metric", "logloss"},
              {"max_depth", "8"},
              {"eta", "0.5"},
              {"nthread", "1"},
              {"verbosity", "1"},
              {"validate_parameters", "1"}};
  o.num_boost_round = 300;
  o.early_stopping_rounds = 5;
  int reported = 0;
  o.progress = [&](int round, int total, const std::string& line) {
    ++reported;
    EXPECT_EQ(total, 300);
    EXPECT_NE(line.find("valid-logloss"), std::string::npos) << line;
  };
  ASSERT_OK_AND_ASSIGN(XgbResult r, TrainXgboost(mt, &mv, o));
  EXPECT_EQ(r.eval_metric, "logloss");
  ASSERT_GE(r.best_round, 0);
  EXPECT_LT(reported, 300);                   // it stopped early
  EXPECT_EQ(reported, r.best_round + 1 + 5);  // 5 rounds past the best
  EXPECT_EQ(r.rounds, r.best_round + 1);      // and kept only the best ones
  for (const auto& [round, value] : r.history) {
    EXPECT_GE(value, r.best_score) << "round " << round;  // logloss: lower is better
  }
  ASSERT_OK_AND_ASSIGN(model::Model m, model::ImportModel(r.model_json, "xgboost-json"));
  EXPECT_EQ(static_cast<int>(m.trees.size()), r.rounds);
  // The sliced model's validation logloss is the best score.
  ASSERT_OK_AND_ASSIGN(model::Predictor p, model::Predictor::Compile(m));
  std::vector<float> pred(valid.rows);
  p.PredictBatch(valid.x.data(), valid.rows, pred.data());
  EXPECT_NEAR(LogLoss(pred, valid.y), r.best_score, 1e-5);
}

TEST(XgboostTrainer, UnknownParameterIsAnError) {
  Data train = Synthetic(50, 3, 0.5);
  XgbMatrix mt{train.x.data(), train.rows, train.cols, train.y.data(), {}, {}};
  XgbOptions o;
  o.params = {{"objective", "binary:logistic"},
              {"max_dept", "2"},
              {"nthread", "1"},
              {"verbosity", "1"},
              {"validate_parameters", "1"}};
  o.num_boost_round = 3;
  auto r = TrainXgboost(mt, nullptr, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("max_dept"), std::string::npos) << r.status().ToString();
  o.params = {{"objective", "binary:logistic"}, {"max_depth", "not-a-number"}, {"nthread", "1"}};
  EXPECT_FALSE(TrainXgboost(mt, nullptr, o).ok());
}

TEST(LinearTrainer, LeastSquaresRecoversExactCoefficients) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(-10, 10);
  std::vector<float> x, y;
  const size_t rows = 200;
  for (size_t r = 0; r < rows; ++r) {
    const float a = static_cast<float>(u(rng)), b = static_cast<float>(u(rng));
    x.insert(x.end(), {a, b, 7.0f});  // a constant column gets weight 0
    y.push_back(static_cast<float>(2.5 * a - 0.75 * b + 4.0));
  }
  ASSERT_OK_AND_ASSIGN(std::string json,
                       TrainLinear(x.data(), y.data(), rows, 3, {"a", "b", "c"}, {.l2 = 0.0}));
  auto doc = nlohmann::json::parse(json);
  EXPECT_NEAR(doc["weights"][0].get<double>(), 2.5, 1e-5);
  EXPECT_NEAR(doc["weights"][1].get<double>(), -0.75, 1e-5);
  EXPECT_EQ(doc["weights"][2].get<double>(), 0.0);
  EXPECT_NEAR(doc["bias"][0].get<double>(), 4.0, 1e-4);
  // The saved model predicts through keel's engine.
  ASSERT_OK_AND_ASSIGN(model::Model m, model::ImportModel(json, "keel-linear"));
  ASSERT_OK_AND_ASSIGN(model::Predictor p, model::Predictor::Compile(m));
  float out;
  const float row[3] = {1.0f, 2.0f, 7.0f};
  p.PredictRow(row, &out);
  EXPECT_NEAR(out, 2.5 - 1.5 + 4.0, 1e-4);
}

TEST(LinearTrainer, LogisticSatisfiesTheScoreEquations) {
  // Unpenalised logistic regression: at the optimum, sum (p - y) x_j = 0 for
  // every feature and for the intercept.
  Data d = Synthetic(500, 9, 1.0);
  ASSERT_OK_AND_ASSIGN(std::string json,
                       TrainLinear(d.x.data(), d.y.data(), d.rows, d.cols, {},
                                   {.logistic = true, .l2 = 0.0, .max_iter = 100}));
  ASSERT_OK_AND_ASSIGN(model::Model m, model::ImportModel(json, "keel-linear"));
  ASSERT_OK_AND_ASSIGN(model::Predictor p, model::Predictor::Compile(m));
  std::vector<float> prob(d.rows);
  p.PredictBatch(d.x.data(), d.rows, prob.data());
  std::vector<double> score(d.cols + 1, 0.0);
  for (size_t r = 0; r < d.rows; ++r) {
    const double e = prob[r] - d.y[r];
    for (size_t c = 0; c < d.cols; ++c) score[c] += e * d.x[r * d.cols + c];
    score[d.cols] += e;
  }
  for (double s : score) EXPECT_NEAR(s / static_cast<double>(d.rows), 0.0, 1e-5);
  const double auc = RocAuc(prob, d.y);
  EXPECT_GT(auc, 0.85);
  // Labels other than 0/1 are refused.
  std::vector<float> bad = d.y;
  bad[3] = 2.0f;
  EXPECT_FALSE(TrainLinear(d.x.data(), bad.data(), d.rows, d.cols, {}, {.logistic = true}).ok());
}

TEST(Train, SpecRoundTripsThroughRunParams) {
  TrainSpec spec;
  spec.data_path = "/data/churn.csv";
  spec.target = "churn";
  spec.model = "xgboost";
  spec.params = {{"n_estimators", "30"}, {"max_depth", "3"}};
  spec.validation_fraction = 0.25;
  spec.seed = 7;
  spec.categorical = "native";
  spec.drop_columns = {"state", "area_code"};
  spec.column_types = {{"number_customer_service_calls", "categorical"}};
  spec.early_stopping_rounds = 4;
  spec.output_name = "p";
  TrainProgress progress;
  ASSERT_OK_AND_ASSIGN(TrainedModel m, TrainModel(
                                           [&] {
                                             TrainSpec s = spec;
                                             s.data_path = std::string(KEEL_SOURCE_DIR) +
                                                           "/../shared/data/mlc_churn.csv";
                                             return s;
                                           }(),
                                           progress));
  KeyValues params = m.params;
  for (auto& [k, v] : params) {
    if (k == "keel.data") v = spec.data_path;
  }
  ASSERT_OK_AND_ASSIGN(TrainSpec back, SpecFromParams(params));
  EXPECT_EQ(back.data_path, spec.data_path);
  EXPECT_EQ(back.target, spec.target);
  EXPECT_EQ(back.model, spec.model);
  EXPECT_EQ(back.params, spec.params);
  EXPECT_EQ(back.validation_fraction, spec.validation_fraction);
  EXPECT_EQ(back.seed, spec.seed);
  EXPECT_EQ(back.categorical, spec.categorical);
  EXPECT_EQ(back.drop_columns, spec.drop_columns);
  EXPECT_EQ(back.column_types, spec.column_types);
  EXPECT_EQ(back.early_stopping_rounds, spec.early_stopping_rounds);
  EXPECT_EQ(back.output_name, spec.output_name);
  EXPECT_EQ(back.positive_class, "yes");
  EXPECT_FALSE(SpecFromParams({{"lr", "0.1"}}).ok());
  // What the run records.
  EXPECT_EQ(m.package.info.classes, (std::vector<std::string>{"no", "yes"}));
  EXPECT_GT(FindMetric(m.metrics, "valid_auc"), 0.8);
  EXPECT_LE(FindMetric(m.metrics, "rounds"), 30.0);
  EXPECT_GE(FindMetric(m.metrics, "best_iteration"), 0.0);
  auto pipeline = data::FeaturePipeline::FromJson(m.package.pipeline_json);
  ASSERT_TRUE(pipeline.ok());
  EXPECT_EQ(pipeline->encoding(), data::CategoricalEncoding::kNative);
  // 20 columns - target - 2 dropped = 17 features, one per column when native.
  EXPECT_EQ(pipeline->num_features(), 17u);
}

}  // namespace
}  // namespace keel::train
