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
  // Two rows of one feature (x = 1, 2: mean 1.5, sd 0.5, so z = -1, +1), one
  // pass: each AdaGrad step is (p - y) z over the root of the squared
  // gradients so far, on the standardised weight and the bias, mapped back.
  const std::vector<float> x = {1.0f, 2.0f};
  const std::vector<float> y = {1.0f, 0.0f};
  ASSERT_OK_AND_ASSIGN(
      std::string out,
      UpdateLinear(R"({"keel_linear": 1, "task": "binary", "num_features": 1,
                      "weights": [0.5], "bias": [0]})",
                   x.data(), y.data(), 2, 1, {.learning_rate = 0.1, .passes = 1, .l2 = 0}));
  const double mean = 1.5, sd = 0.5, z[2] = {-1, 1};
  double ws = 0.5 * sd, bs = 0 + 0.5 * mean, gw = 0, gb = 0;
  for (int r = 0; r < 2; ++r) {
    const double p = 1 / (1 + std::exp(-(ws * z[r] + bs)));
    const double e = p - y[r];
    gw += e * z[r] * e * z[r];
    ws -= 0.1 * e * z[r] / (std::sqrt(gw) + 1e-8);
    gb += e * e;
    bs -= 0.1 * e / (std::sqrt(gb) + 1e-8);
  }
  const double w = ws / sd, b = bs - w * mean;
  const auto j = nlohmann::json::parse(out);
  EXPECT_NEAR(j["weights"][0].get<double>(), w, 1e-12);
  EXPECT_NEAR(j["bias"][0].get<double>(), b, 1e-12);
}

TEST(ContinueTest, OnlineStepsDoNotDependOnFeatureScale) {
  // The same concept at scales 1 and 1000 (a model with weights / 1000 is
  // the same model): an update gives the same predictions on both.
  const Rows r = Make(600, 11);
  std::vector<float> big = r.x;
  for (float& v : big) v *= 1000.0f;
  const std::string small_model = R"({"keel_linear": 1, "task": "binary", "num_features": 3,
      "weights": [2, -1, 0], "bias": [0]})";
  const std::string big_model = R"({"keel_linear": 1, "task": "binary", "num_features": 3,
      "weights": [0.002, -0.001, 0], "bias": [0]})";
  ASSERT_OK_AND_ASSIGN(std::string a,
                       UpdateLinear(small_model, r.x.data(), r.y_old.data(), r.rows, 3, {}));
  ASSERT_OK_AND_ASSIGN(std::string b,
                       UpdateLinear(big_model, big.data(), r.y_old.data(), r.rows, 3, {}));
  const auto ja = nlohmann::json::parse(a), jb = nlohmann::json::parse(b);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(jb["weights"][c].get<double>() * 1000, ja["weights"][c].get<double>(), 1e-6);
  }
  EXPECT_NEAR(jb["bias"][0].get<double>(), ja["bias"][0].get<double>(), 1e-6);
  // And on the same concept it stays a good model (log loss barely moves).
  auto log_loss = [&](const std::string& json) {
    const auto j = nlohmann::json::parse(json);
    double sum = 0;
    for (size_t i = 0; i < r.rows; ++i) {
      double s = j["bias"][0].get<double>();
      for (int c = 0; c < 3; ++c) s += j["weights"][c].get<double>() * r.x[3 * i + c];
      const double p = 1 / (1 + std::exp(-s));
      sum -= r.y_old[i] > 0 ? std::log(p) : std::log(1 - p);
    }
    return sum / static_cast<double>(r.rows);
  };
  EXPECT_LT(log_loss(a), log_loss(small_model) + 0.05);
}

TEST(ContinueTest, RegressionTargetsOnAnyScaleAreLearnt) {
  // y = 5000 + 300 c, from a model that drifted to 4800 + 250 c: a few passes
  // at the default step size recover it, the target's scale notwithstanding.
  const Rows r = Make(800, 12);
  std::vector<float> y(r.rows);
  for (size_t i = 0; i < r.rows; ++i) y[i] = 5000.0f + 300.0f * r.x[3 * i + 2];
  ASSERT_OK_AND_ASSIGN(std::string out,
                       UpdateLinear(R"({"keel_linear": 1, "task": "regression",
                                        "num_features": 3, "weights": [0, 0, 250], "bias": [4800]})",
                                    r.x.data(), y.data(), r.rows, 3, {.passes = 5}));
  const auto j = nlohmann::json::parse(out);
  EXPECT_NEAR(j["weights"][2].get<double>(), 300, 10);
  EXPECT_NEAR(j["bias"][0].get<double>(), 5000, 10);
}

}  // namespace
}  // namespace keel::train
