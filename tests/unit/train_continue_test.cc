// Continued training (retraining's continuous mode): a package keel trained
// is updated on rows of a changed concept, through libxgboost (XGBoost) and
// keel's online logistic steps (keel-linear); ReadModelPackage round trips
// what WriteModelPackage wrote.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "keel/model/package.h"
#include "keel/train/linear_trainer.h"
#include "keel/train/metrics.h"
#include "keel/train/train.h"
#include "test_util.h"

namespace keel::train {
namespace {

using keel::testing::TempDir;

// Rows of (a, b, c) ~ N(0, 1); the old concept's label is 2a - b > 0, the
// new one's c > 0 (a, b carry nothing then).
struct Rows {
  std::vector<float> x, y_old, y_new;
  size_t rows = 0;
};

Rows Make(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0, 1);
  Rows r;
  r.rows = n;
  for (size_t i = 0; i < n; ++i) {
    const double a = g(rng), b = g(rng), c = g(rng);
    r.x.insert(r.x.end(), {static_cast<float>(a), static_cast<float>(b), static_cast<float>(c)});
    r.y_old.push_back(2 * a - b + 0.3 * g(rng) > 0 ? 1.0f : 0.0f);
    r.y_new.push_back(c + 0.3 * g(rng) > 0 ? 1.0f : 0.0f);
  }
  return r;
}

// A package trained by keel on the old concept (CSV a,b,c,y).
std::filesystem::path TrainBase(const TempDir& dir, const std::string& model) {
  const Rows r = Make(2000, 1);
  const auto csv = dir.path() / "old.csv";
  {
    std::ofstream f(csv);
    f << "a,b,c,y\n";
    for (size_t i = 0; i < r.rows; ++i) {
      f << r.x[3 * i] << "," << r.x[3 * i + 1] << "," << r.x[3 * i + 2] << ","
        << (r.y_old[i] > 0 ? "yes" : "no") << "\n";
    }
  }
  TrainSpec spec;
  spec.data_path = csv.string();
  spec.target = "y";
  spec.model = model;
  if (model == "xgboost") spec.params = {{"n_estimators", "30"}, {"max_depth", "3"}};
  auto trained = TrainModel(spec, {});
  EXPECT_TRUE(trained.ok()) << trained.status().ToString();
  const auto path = dir.path() / ("base-" + model);
  EXPECT_TRUE(model::WriteModelPackage(path, trained->package).ok());
  return path;
}

// The AUC of a package on rows (encoded as the pipeline would: a, b, c).
double Auc(const std::filesystem::path& package, const std::vector<float>& x,
           const std::vector<float>& y) {
  auto m = model::LoadModelPackage(package);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  std::vector<float> p(y.size());
  (*m)->predictor.PredictBatch(x.data(), y.size(), p.data());
  return RocAuc(p, y);
}

int NumTrees(const std::string& xgboost_json) {
  const auto j = nlohmann::json::parse(xgboost_json);
  return std::stoi(j["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"]
                       .get<std::string>());
}

TEST(ContinueTest, ReadModelPackageReturnsWhatWasWritten) {
  TempDir dir;
  const auto base = TrainBase(dir, "xgboost");
  ASSERT_OK_AND_ASSIGN(model::PackageContents c, model::ReadModelPackage(base));
  EXPECT_EQ(c.info.format, "xgboost-json");
  EXPECT_EQ(c.info.task, "binary");
  EXPECT_EQ(c.info.classes, (std::vector<std::string>{"no", "yes"}));
  EXPECT_FALSE(c.pipeline_json.empty());
  EXPECT_FALSE(c.input_example_json.empty());
  EXPECT_FALSE(c.reference_bytes.empty());
  EXPECT_FALSE(c.signature_inputs.empty());
  EXPECT_FALSE(c.xgboost_version.empty());
  EXPECT_EQ(NumTrees(c.model_bytes), 30);
  // Written again, it loads and answers as the original.
  const auto copy = dir.path() / "copy";
  ASSERT_OK(model::WriteModelPackage(copy, c));
  const Rows r = Make(300, 5);
  EXPECT_DOUBLE_EQ(Auc(copy, r.x, r.y_old), Auc(base, r.x, r.y_old));
  EXPECT_EQ(model::ReadModelPackage(dir.path() / "nothing").status().code(),
            StatusCode::kFailedPrecondition);
}

TEST(ContinueTest, XgboostAddsTreesThatLearnTheNewConcept) {
  TempDir dir;
  const auto base = TrainBase(dir, "xgboost");
  const Rows fresh = Make(1500, 2), test = Make(1000, 3);
  const double before = Auc(base, test.x, test.y_new);
  ContinueSpec spec;
  spec.base_package = base;
  spec.base_label = "m version 1";
  spec.x = fresh.x.data();
  spec.labels = fresh.y_new.data();
  spec.rows = fresh.rows;
  spec.rounds = 40;
  spec.params = {{"max_depth", "3"}};
  ASSERT_OK_AND_ASSIGN(TrainedModel m, ContinueModel(spec, {}));
  EXPECT_EQ(NumTrees(m.package.model_bytes), 70);  // 30 kept + 40 new
  const auto updated = dir.path() / "updated";
  ASSERT_OK(model::WriteModelPackage(updated, m.package));
  const double after = Auc(updated, test.x, test.y_new);
  EXPECT_LT(before, 0.65);
  EXPECT_GT(after, 0.85);
  EXPECT_GT(FindMetric(m.metrics, "train_auc"), 0.85);
  // The package keeps its pipeline and classes; the run says what it grew from.
  ASSERT_OK_AND_ASSIGN(model::PackageContents c, model::ReadModelPackage(base));
  EXPECT_EQ(m.package.pipeline_json, c.pipeline_json);
  EXPECT_EQ(m.package.info.classes, c.info.classes);
  const KeyValues want = {{"keel.continue.base", "m version 1"},
                          {"keel.continue.format", "xgboost-json"},
                          {"keel.continue.rounds", "40"},
                          {"keel.continue.rows", "1500"},
                          {"keel.param.max_depth", "3"}};
  EXPECT_EQ(m.params, want);
  // No rows is an error.
  spec.rows = 0;
  EXPECT_EQ(ContinueModel(spec, {}).status().code(), StatusCode::kInvalidArgument);
}

TEST(ContinueTest, LinearOnlineStepsLearnTheNewConcept) {
  TempDir dir;
  const auto base = TrainBase(dir, "logistic");
  const Rows fresh = Make(1500, 2), test = Make(1000, 3);
  const double before = Auc(base, test.x, test.y_new);
  ContinueSpec spec;
  spec.base_package = base;
  spec.x = fresh.x.data();
  spec.labels = fresh.y_new.data();
  spec.rows = fresh.rows;
  spec.rounds = 3;
  spec.learning_rate = 0.1;
  ASSERT_OK_AND_ASSIGN(TrainedModel m, ContinueModel(spec, {}));
  const auto updated = dir.path() / "updated";
  ASSERT_OK(model::WriteModelPackage(updated, m.package));
  const double after = Auc(updated, test.x, test.y_new);
  EXPECT_LT(before, 0.65);
  EXPECT_GT(after, 0.85);
  // Multiclass and mismatched rows are refused.
  EXPECT_EQ(UpdateLinear(R"({"keel_linear": 1, "task": "multiclass", "num_features": 3,
                              "num_classes": 3, "weights": [0,0,0,0,0,0,0,0,0],
                              "bias": [0,0,0]})",
                         fresh.x.data(), fresh.y_new.data(), 10, 3, {})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(UpdateLinear(R"({"keel_linear": 1, "task": "binary", "num_features": 2,
                              "weights": [0,0], "bias": [0]})",
                         fresh.x.data(), fresh.y_new.data(), 10, 3, {})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

TEST(ContinueTest, OnlineStepsMatchTheirDefinition) {
  // Two rows, one pass: each step is p - y times the input over the root of
  // the squared gradients so far (AdaGrad), for the weight and the bias.
  const std::vector<float> x = {1.0f, 2.0f};  // one feature, two rows
  const std::vector<float> y = {1.0f, 0.0f};
  ASSERT_OK_AND_ASSIGN(
      std::string out,
      UpdateLinear(R"({"keel_linear": 1, "task": "binary", "num_features": 1,
                      "weights": [0.5], "bias": [0]})",
                   x.data(), y.data(), 2, 1, {.learning_rate = 0.1, .passes = 1, .l2 = 0}));
  double w = 0.5, b = 0, gw = 0, gb = 0;
  for (int r = 0; r < 2; ++r) {
    const double p = 1 / (1 + std::exp(-(w * x[r] + b)));
    const double e = p - y[r];
    gw += e * x[r] * e * x[r];
    w -= 0.1 * e * x[r] / (std::sqrt(gw) + 1e-8);
    gb += e * e;
    b -= 0.1 * e / (std::sqrt(gb) + 1e-8);
  }
  const auto j = nlohmann::json::parse(out);
  EXPECT_DOUBLE_EQ(j["weights"][0].get<double>(), w);
  EXPECT_DOUBLE_EQ(j["bias"][0].get<double>(), b);
}

}  // namespace
}  // namespace keel::train
