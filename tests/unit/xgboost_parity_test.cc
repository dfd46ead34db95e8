// Parity of keel's XGBoost importers and evaluator with libxgboost itself:
// each case trains a model with the libxgboost C API on seeded synthetic (or
// the churn) data, saves it as JSON and as UBJSON, imports both with keel and
// compares keel's outputs (PredictRow for every row, PredictBatch with and
// without a thread pool, and margins) with XGBoosterPredictFromDMatrix on
// every row, to 1e-6 (relative above magnitude 1).
#include <gtest/gtest.h>
#include <xgboost/c_api.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "keel/core/thread_pool.h"
#include "keel/model/formats.h"
#include "keel/model/predictor.h"
#include "tests/unit/test_util.h"

namespace keel::model {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

void Xgb(int rc) {
  if (rc != 0) throw std::runtime_error(std::string("libxgboost: ") + XGBGetLastError());
}

// A dense row-major data set; NaN marks a missing value.
struct Data {
  size_t rows = 0;
  size_t cols = 0;
  std::vector<float> x;
  std::vector<float> y;
  std::vector<std::string> types;  // empty, or "q"/"c" per column
  std::vector<unsigned> groups;    // ranking query sizes (optional)

  float& at(size_t r, size_t c) { return x[r * cols + c]; }
  float at(size_t r, size_t c) const { return x[r * cols + c]; }
  void AddRow(const std::vector<float>& row) {
    x.insert(x.end(), row.begin(), row.end());
    ++rows;
  }
  std::vector<float> Row(size_t r) const {
    return std::vector<float>(x.begin() + r * cols, x.begin() + (r + 1) * cols);
  }
};

class DMatrix {
 public:
  explicit DMatrix(const Data& d) {
    Xgb(XGDMatrixCreateFromMat(d.x.data(), d.rows, d.cols, kNaN, &h_));
    if (!d.y.empty()) Xgb(XGDMatrixSetFloatInfo(h_, "label", d.y.data(), d.rows));
    if (!d.types.empty()) {
      std::vector<const char*> t;
      for (const auto& s : d.types) t.push_back(s.c_str());
      Xgb(XGDMatrixSetStrFeatureInfo(h_, "feature_type", t.data(), t.size()));
    }
    if (!d.groups.empty()) {
      Xgb(XGDMatrixSetUIntInfo(h_, "group", d.groups.data(), d.groups.size()));
    }
  }
  ~DMatrix() { XGDMatrixFree(h_); }
  DMatrix(const DMatrix&) = delete;
  DMatrix& operator=(const DMatrix&) = delete;
  DMatrixHandle get() const { return h_; }

 private:
  DMatrixHandle h_ = nullptr;
};

using Params = std::vector<std::pair<std::string, std::string>>;

class Booster {
 public:
  static Data OneValue() {
    Data d;
    d.cols = 1;
    d.AddRow({0.0f});
    return d;
  }

  Booster(const Data& train, const Params& params, int rounds) : train_(train) {
    DMatrixHandle dm = train_.get();
    Xgb(XGBoosterCreate(&dm, 1, &h_));
    // One thread: OpenMP workers spinning on a busy machine slow training down
    // by orders of magnitude.
    Xgb(XGBoosterSetParam(h_, "nthread", "1"));
    Xgb(XGBoosterSetParam(h_, "seed", "7"));
    for (const auto& [k, v] : params) Xgb(XGBoosterSetParam(h_, k.c_str(), v.c_str()));
    for (int i = 0; i < rounds; ++i) Xgb(XGBoosterUpdateOneIter(h_, i, dm));
    if (!train.types.empty()) {
      // Saved with the model, as the Python package does.
      std::vector<std::string> names;
      std::vector<const char*> n;
      std::vector<const char*> t;
      for (size_t c = 0; c < train.cols; ++c) names.push_back("f" + std::to_string(c));
      for (size_t c = 0; c < train.cols; ++c) {
        n.push_back(names[c].c_str());
        t.push_back(train.types[c].c_str());
      }
      Xgb(XGBoosterSetStrFeatureInfo(h_, "feature_name", n.data(), n.size()));
      Xgb(XGBoosterSetStrFeatureInfo(h_, "feature_type", t.data(), t.size()));
    }
  }

  // A booster loaded from a saved model.
  explicit Booster(const std::string& model) : train_(OneValue()) {
    Xgb(XGBoosterCreate(nullptr, 0, &h_));
    Xgb(XGBoosterLoadModelFromBuffer(h_, model.data(), model.size()));
  }
  ~Booster() { XGBoosterFree(h_); }
  Booster(const Booster&) = delete;
  Booster& operator=(const Booster&) = delete;

  std::string Save(const std::string& format) const {
    bst_ulong len = 0;
    const char* bytes = nullptr;
    const std::string config = "{\"format\": \"" + format + "\"}";
    Xgb(XGBoosterSaveModelToBuffer(h_, config.c_str(), &len, &bytes));
    return std::string(bytes, len);
  }

  // Outputs (or margins) for every row, as libxgboost computes them.
  std::vector<float> Predict(const Data& d, bool margin) const {
    DMatrix dm(d);
    const std::string config = std::string("{\"type\": ") + (margin ? "1" : "0") +
                               ", \"training\": false, \"iteration_begin\": 0, "
                               "\"iteration_end\": 0, \"strict_shape\": false}";
    const bst_ulong* shape = nullptr;
    bst_ulong dim = 0;
    const float* out = nullptr;
    Xgb(XGBoosterPredictFromDMatrix(h_, dm.get(), config.c_str(), &shape, &dim, &out));
    bst_ulong n = 1;
    for (bst_ulong i = 0; i < dim; ++i) n *= shape[i];
    return std::vector<float>(out, out + n);
  }

 private:
  DMatrix train_;
  BoosterHandle h_ = nullptr;
};

// ---------------------------------------------------------------------------
// Synthetic data.

Data Numeric(size_t rows, size_t cols, uint64_t seed, double nan_frac) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Data d;
  d.rows = rows;
  d.cols = cols;
  d.x.resize(rows * cols);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      float v = normal(rng);
      if (c % 4 == 3) v = std::round(v * 3.0f);  // a few low-cardinality columns
      d.at(r, c) = unit(rng) < nan_frac ? kNaN : v;
    }
  }
  return d;
}

float Z(float v) { return std::isnan(v) ? 0.0f : v; }

// A smooth score with interactions; missing values count as 0.
float Score(const Data& d, size_t r) {
  return Z(d.at(r, 0)) + 0.5f * Z(d.at(r, 1)) * Z(d.at(r, 1)) - 0.8f * Z(d.at(r, 2)) +
         (d.cols > 3 ? 0.3f * Z(d.at(r, 3)) * Z(d.at(r, 0)) : 0.0f);
}

enum class Label { kBinary, kRegression, kPositive, kCount, kUnit, kMulticlass };

void SetLabels(Data& d, Label kind, uint64_t seed, int classes = 3) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  d.y.resize(d.rows);
  for (size_t r = 0; r < d.rows; ++r) {
    const float s = Score(d, r);
    switch (kind) {
      case Label::kBinary:
        d.y[r] = s + noise(rng) > 0.3f ? 1.0f : 0.0f;
        break;
      case Label::kRegression:
        d.y[r] = 3.0f * s + noise(rng);
        break;
      case Label::kPositive:
        d.y[r] = std::exp(0.5f * s + noise(rng));
        break;
      case Label::kCount: {
        std::poisson_distribution<int> p(std::exp(0.4f * std::clamp(s, -3.0f, 3.0f)));
        d.y[r] = static_cast<float>(p(rng));
        break;
      }
      case Label::kUnit:
        d.y[r] = 1.0f / (1.0f + std::exp(-s - noise(rng)));
        break;
      case Label::kMulticlass: {
        const float v = s + noise(rng);
        int k = static_cast<int>(std::floor((v + 1.5f) * classes / 3.0f));
        d.y[r] = static_cast<float>(std::clamp(k, 0, classes - 1));
        break;
      }
    }
  }
}

// Two numeric columns and three categorical ones with 3, 12 and 40 categories.
Data Categorical(size_t rows, uint64_t seed, double nan_frac) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const int card[3] = {3, 12, 40};
  std::vector<std::vector<float>> effect(3);
  for (int k = 0; k < 3; ++k) {
    for (int c = 0; c < card[k]; ++c) effect[k].push_back(normal(rng));
  }
  Data d;
  d.cols = 5;
  d.types = {"q", "q", "c", "c", "c"};
  for (size_t r = 0; r < rows; ++r) {
    std::vector<float> row(5);
    row[0] = normal(rng);
    row[1] = normal(rng);
    for (int k = 0; k < 3; ++k) {
      row[2 + k] = static_cast<float>(std::uniform_int_distribution<int>(0, card[k] - 1)(rng));
    }
    float s = row[0] - 0.5f * row[1];
    for (int k = 0; k < 3; ++k) s += effect[k][static_cast<size_t>(row[2 + k])];
    for (float& v : row) {
      if (unit(rng) < nan_frac) v = kNaN;
    }
    d.AddRow(row);
    d.y.push_back(s + 0.3f * normal(rng));
  }
  return d;
}

// Evaluation rows for categorical models: fresh rows plus values a model
// never saw: unseen, huge, negative and fractional categories.
Data CategoricalEval(uint64_t seed) {
  Data d = Categorical(200, seed, 0.1);
  d.y.clear();
  const float odd[] = {-1.0f, -0.5f, -100.0f, 2.5f,        11.99f,      12.0f,  39.0f,   40.0f,
                       63.0f, 64.0f, 1000.0f, 16777215.0f, 16777216.0f, 3.0e7f, 1.0e10f, kNaN,
                       0.0f,  31.0f, 32.0f,   33.0f,       -0.0f,       1e-30f};
  std::mt19937_64 rng(seed + 1);
  for (float v : odd) {
    for (int k = 0; k < 3; ++k) {
      std::vector<float> row = d.Row(std::uniform_int_distribution<size_t>(0, 199)(rng));
      row[2 + k] = v;
      d.AddRow(row);
    }
    d.AddRow({0.1f, -0.2f, v, v, v});
  }
  return d;
}

Data WithoutLabels(Data d) {
  d.y.clear();
  d.groups.clear();
  return d;
}

// Adds rows probing numerical thresholds exactly and one float on each side,
// plus a row of all-missing values and rows of extreme values.
void AddProbeRows(const Model& m, Data& eval, size_t max_probes) {
  size_t probes = 0;
  std::vector<float> base = eval.Row(0);
  for (const Tree& t : m.trees) {
    for (const Node& n : t.nodes) {
      if (n.kind != Node::Kind::kNumerical || probes >= max_probes) continue;
      for (float v : {n.threshold, std::nextafter(n.threshold, -INFINITY),
                      std::nextafter(n.threshold, INFINITY)}) {
        std::vector<float> row = base;
        row[n.feature] = v;
        eval.AddRow(row);
      }
      ++probes;
    }
  }
  eval.AddRow(std::vector<float>(eval.cols, kNaN));
  eval.AddRow(std::vector<float>(eval.cols, 1e30f));
  eval.AddRow(std::vector<float>(eval.cols, -1e30f));
  eval.AddRow(std::vector<float>(eval.cols, 0.0f));
}

// ---------------------------------------------------------------------------
// Comparison.

ThreadPool& Pool() {
  static ThreadPool pool(2);
  return pool;
}

bool Close(float got, float want, double tol) {
  if (got == want) return true;  // also equal infinities
  if (std::isnan(got) || std::isnan(want)) return std::isnan(got) && std::isnan(want);
  return std::fabs(static_cast<double>(got) - want) <= tol * std::max(1.0, std::fabs(double{want}));
}

// Compares n rows of `width` values; reports the first few mismatches.
void ExpectRowsClose(const std::string& what, const Data& eval, const std::vector<float>& got,
                     const std::vector<float>& want, size_t width, double tol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  size_t bad = 0;
  for (size_t r = 0; r < eval.rows; ++r) {
    for (size_t k = 0; k < width; ++k) {
      const size_t i = r * width + k;
      if (Close(got[i], want[i], tol)) continue;
      ++bad;
      if (reported++ < 5) {
        std::ostringstream row;
        for (size_t c = 0; c < eval.cols; ++c) row << (c ? ", " : "") << eval.at(r, c);
        ADD_FAILURE() << what << ": row " << r << " output " << k << ": keel "
                      << std::setprecision(9) << got[i] << ", xgboost " << want[i] << " (diff "
                      << got[i] - want[i] << ")\n  x = [" << row.str() << "]";
      }
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " values differ";
}

struct Imported {
  Model model;
  Predictor predictor;
};

Imported ImportBoth(const Booster& booster, const std::string& format) {
  const std::string bytes = booster.Save(format);
  const std::string name = format == "json" ? "xgboost-json" : "xgboost-ubj";
  Result<Model> m = ImportModel(bytes, name);
  if (!m.ok()) throw std::runtime_error(name + " import failed: " + m.status().ToString());
  // Sniffing picks the same importer.
  Result<Model> sniffed = ImportModel(bytes);
  if (!sniffed.ok() || sniffed->source_format != name) {
    throw std::runtime_error(name + ": sniffing did not pick the " + name + " importer");
  }
  Result<Predictor> p = Predictor::Compile(*m);
  if (!p.ok()) throw std::runtime_error(name + " compile failed: " + p.status().ToString());
  return Imported{std::move(*m), std::move(*p)};
}

// Checks keel against libxgboost on every row of `eval`, for both encodings.
// Returns the JSON-imported model for further checks.
Model ExpectParity(const std::string& label, const Booster& booster, Data eval, double tol = 1e-6,
                   size_t max_probes = 40) {
  Model first;
  for (const std::string format : {"json", "ubj"}) {
    SCOPED_TRACE(label + " [" + format + "]");
    Imported im = ImportBoth(booster, format);
    if (format == "json") {
      AddProbeRows(im.model, eval, max_probes);
    }
    const Predictor& p = im.predictor;
    const std::vector<float> want = booster.Predict(eval, /*margin=*/false);
    const std::vector<float> want_margin = booster.Predict(eval, /*margin=*/true);
    const size_t outs = static_cast<size_t>(p.num_outputs());
    const size_t groups = static_cast<size_t>(p.num_groups());
    EXPECT_EQ(static_cast<size_t>(p.num_features()), eval.cols);
    EXPECT_EQ(want.size(), eval.rows * outs) << "output shape differs from libxgboost";
    EXPECT_EQ(want_margin.size(), eval.rows * groups) << "margin shape differs from libxgboost";
    if (want.size() != eval.rows * outs || want_margin.size() != eval.rows * groups) break;

    std::vector<float> row_out(eval.rows * outs);
    std::vector<float> row_margin(eval.rows * groups);
    for (size_t r = 0; r < eval.rows; ++r) {
      p.PredictRow(&eval.x[r * eval.cols], &row_out[r * outs]);
      p.PredictRowMargin(&eval.x[r * eval.cols], &row_margin[r * groups]);
    }
    ExpectRowsClose("PredictRow", eval, row_out, want, outs, tol);
    ExpectRowsClose("PredictRowMargin", eval, row_margin, want_margin, groups, tol);

    std::vector<float> batch(eval.rows * outs);
    p.PredictBatch(eval.x.data(), eval.rows, batch.data());
    ExpectRowsClose("PredictBatch", eval, batch, want, outs, tol);
    std::vector<float> pooled(eval.rows * outs);
    p.PredictBatch(eval.x.data(), eval.rows, pooled.data(), &Pool());
    ExpectRowsClose("PredictBatch(pool)", eval, pooled, want, outs, tol);
    std::vector<float> batch_margin(eval.rows * groups);
    p.PredictBatchMargin(eval.x.data(), eval.rows, batch_margin.data(), &Pool());
    ExpectRowsClose("PredictBatchMargin(pool)", eval, batch_margin, want_margin, groups, tol);
    if (format == "json") first = std::move(im.model);
  }
  return first;
}

int MaxDepth(const Model& m) {
  int d = 0;
  for (const Tree& t : m.trees) d = std::max(d, t.depth);
  return d;
}

// Counts numerical splits sending missing values left and right.
std::pair<int, int> DefaultDirections(const Model& m) {
  int left = 0;
  int right = 0;
  for (const Tree& t : m.trees) {
    for (const Node& n : t.nodes) {
      if (n.kind == Node::Kind::kLeaf) continue;
      (n.default_left ? left : right)++;
    }
  }
  return {left, right};
}

// ---------------------------------------------------------------------------
// Objectives.

struct ObjectiveCase {
  const char* objective;
  Label label;
  const char* base_score;  // nullptr: XGBoost's default
  Transform transform;
  Task task;
  Params extra;
};

TEST(XgboostParityTest, Objectives) {
  const ObjectiveCase cases[] = {
      {"binary:logistic", Label::kBinary, "0.3", Transform::kSigmoid, Task::kBinary, {}},
      {"binary:logitraw", Label::kBinary, "0.7", Transform::kIdentity, Task::kBinary, {}},
      {"binary:hinge", Label::kBinary, nullptr, Transform::kHinge, Task::kBinary, {}},
      {"reg:logistic", Label::kUnit, "0.6", Transform::kSigmoid, Task::kRegression, {}},
      {"reg:squarederror", Label::kRegression, "2.5", Transform::kIdentity, Task::kRegression, {}},
      {"reg:squaredlogerror",
       Label::kPositive,
       nullptr,
       Transform::kIdentity,
       Task::kRegression,
       {}},
      {"reg:pseudohubererror",
       Label::kRegression,
       "0.1",
       Transform::kIdentity,
       Task::kRegression,
       {}},
      {"reg:absoluteerror",
       Label::kRegression,
       "-1.5",
       Transform::kIdentity,
       Task::kRegression,
       {}},
      {"count:poisson", Label::kCount, "1.5", Transform::kExp, Task::kRegression, {}},
      {"reg:gamma", Label::kPositive, "0.8", Transform::kExp, Task::kRegression, {}},
      {"reg:tweedie",
       Label::kPositive,
       "2.0",
       Transform::kExp,
       Task::kRegression,
       {{"tweedie_variance_power", "1.3"}}},
      {"survival:cox", Label::kPositive, "0.9", Transform::kExp, Task::kRegression, {}},
  };
  for (const ObjectiveCase& c : cases) {
    SCOPED_TRACE(c.objective);
    Data train = Numeric(400, 6, 11, 0.15);
    SetLabels(train, c.label, 12);
    Params params = {{"objective", c.objective}, {"max_depth", "4"}, {"eta", "0.3"}};
    if (c.base_score != nullptr) params.push_back({"base_score", c.base_score});
    params.insert(params.end(), c.extra.begin(), c.extra.end());
    Booster booster(train, params, 25);
    Model m = ExpectParity(c.objective, booster, WithoutLabels(Numeric(300, 6, 13, 0.15)));
    EXPECT_EQ(m.transform, c.transform);
    EXPECT_EQ(m.task, c.task);
    EXPECT_EQ(m.objective, c.objective);
    EXPECT_EQ(m.source_format, "xgboost-json");
    EXPECT_EQ(m.accumulator, Accumulator::kFloat);
    // Missing values in training: both default directions occur.
    const auto [dl, dr] = DefaultDirections(m);
    EXPECT_GT(dl, 0);
    EXPECT_GT(dr, 0);
  }
}

TEST(XgboostParityTest, LargeRegressionValues) {
  Data train = Numeric(400, 5, 21, 0.1);
  SetLabels(train, Label::kRegression, 22);
  for (float& y : train.y) y = y * 1000.0f + 50000.0f;
  Booster booster(train,
                  {{"objective", "reg:squarederror"},
                   {"max_depth", "5"},
                   {"base_score", "50000"},
                   {"tree_method", "hist"}},
                  40);
  ExpectParity("large values", booster, WithoutLabels(Numeric(300, 5, 23, 0.1)));
}

TEST(XgboostParityTest, Multiclass) {
  for (const char* objective : {"multi:softprob", "multi:softmax"}) {
    for (int classes : {3, 5}) {
      SCOPED_TRACE(std::string(objective) + " " + std::to_string(classes));
      Data train = Numeric(500, 6, 31, 0.12);
      SetLabels(train, Label::kMulticlass, 32, classes);
      Booster booster(train,
                      {{"objective", objective},
                       {"num_class", std::to_string(classes)},
                       {"max_depth", "4"},
                       {"base_score", "0.2"}},
                      15);
      Model m = ExpectParity(objective, booster, WithoutLabels(Numeric(300, 6, 33, 0.12)));
      EXPECT_EQ(m.num_groups, classes);
      EXPECT_EQ(m.num_outputs(), std::string(objective) == "multi:softmax" ? 1 : classes);
      EXPECT_EQ(m.task, Task::kMulticlass);
      EXPECT_EQ(m.trees.size(), static_cast<size_t>(15 * classes));
    }
  }
}

TEST(XgboostParityTest, Ranking) {
  Data train = Numeric(400, 5, 41, 0.1);
  SetLabels(train, Label::kMulticlass, 42, 4);
  train.groups.assign(20, 20);
  for (const char* objective : {"rank:pairwise", "rank:ndcg"}) {
    SCOPED_TRACE(objective);
    Booster booster(train, {{"objective", objective}, {"max_depth", "4"}}, 20);
    Model m = ExpectParity(objective, booster, WithoutLabels(Numeric(200, 5, 43, 0.1)));
    EXPECT_EQ(m.task, Task::kRanking);
  }
}

// ---------------------------------------------------------------------------
// Tree shapes.

TEST(XgboostParityTest, StumpsAndSingleTree) {
  Data train = Numeric(300, 5, 51, 0.15);
  SetLabels(train, Label::kBinary, 52);
  {
    Booster booster(train, {{"objective", "binary:logistic"}, {"max_depth", "1"}}, 60);
    Model m = ExpectParity("stumps", booster, WithoutLabels(Numeric(300, 5, 53, 0.15)));
    EXPECT_EQ(MaxDepth(m), 1);
  }
  {
    Booster booster(train, {{"objective", "binary:logistic"}, {"max_depth", "3"}}, 1);
    Model m = ExpectParity("one tree", booster, WithoutLabels(Numeric(300, 5, 53, 0.15)));
    EXPECT_EQ(m.trees.size(), 1u);
  }
}

TEST(XgboostParityTest, DeepTrees) {
  Data train = Numeric(3000, 8, 61, 0.1);
  SetLabels(train, Label::kRegression, 62);
  {
    Booster booster(train,
                    {{"objective", "reg:squarederror"},
                     {"tree_method", "hist"},
                     {"grow_policy", "lossguide"},
                     {"max_depth", "0"},
                     {"max_leaves", "400"},
                     {"max_bin", "1024"},
                     {"min_child_weight", "0"},
                     {"lambda", "0"}},
                    3);
    Model m =
        ExpectParity("lossguide", booster, WithoutLabels(Numeric(300, 8, 63, 0.1)), 1e-6, 200);
    EXPECT_GE(MaxDepth(m), 12);
  }
  {
    Booster booster(train,
                    {{"objective", "reg:squarederror"},
                     {"tree_method", "exact"},
                     {"max_depth", "14"},
                     {"min_child_weight", "0"},
                     {"lambda", "0"}},
                    2);
    Model m = ExpectParity("depth 14", booster, WithoutLabels(Numeric(300, 8, 63, 0.1)), 1e-6, 200);
    EXPECT_GE(MaxDepth(m), 12);
  }
}

TEST(XgboostParityTest, TwoThousandTrees) {
  Data train = Numeric(120, 4, 71, 0.1);
  SetLabels(train, Label::kBinary, 72);
  Booster booster(train,
                  {{"objective", "binary:logistic"},
                   {"max_depth", "3"},
                   {"eta", "0.05"},
                   {"tree_method", "hist"},
                   {"subsample", "0.8"}},
                  2000);
  Model m = ExpectParity("2000 trees", booster, WithoutLabels(Numeric(150, 4, 73, 0.1)));
  EXPECT_EQ(m.trees.size(), 2000u);
}

TEST(XgboostParityTest, ParallelTrees) {
  Data train = Numeric(400, 6, 81, 0.1);
  SetLabels(train, Label::kMulticlass, 82, 3);
  Booster booster(train,
                  {{"objective", "multi:softprob"},
                   {"num_class", "3"},
                   {"num_parallel_tree", "4"},
                   {"subsample", "0.7"},
                   {"colsample_bynode", "0.7"},
                   {"max_depth", "4"}},
                  6);
  Model m = ExpectParity("num_parallel_tree", booster, WithoutLabels(Numeric(300, 6, 83, 0.1)));
  EXPECT_EQ(m.trees.size(), 6u * 3u * 4u);

  Data reg = Numeric(400, 6, 84, 0.1);
  SetLabels(reg, Label::kRegression, 85);
  Booster forest(reg,
                 {{"objective", "reg:squarederror"},
                  {"num_parallel_tree", "20"},
                  {"subsample", "0.6"},
                  {"colsample_bynode", "0.6"},
                  {"eta", "1"},
                  {"max_depth", "6"}},
                 1);
  ExpectParity("random forest", forest, WithoutLabels(Numeric(300, 6, 86, 0.1)));
}

// ---------------------------------------------------------------------------
// Categorical splits.

TEST(XgboostParityTest, Categorical) {
  Data train = Categorical(1500, 91, 0.1);
  const Data eval = CategoricalEval(92);
  for (const char* onehot : {"1", "64"}) {
    SCOPED_TRACE(std::string("max_cat_to_onehot=") + onehot);
    Data binary = train;
    for (float& y : binary.y) y = y > 0.0f ? 1.0f : 0.0f;
    Booster booster(binary,
                    {{"objective", "binary:logistic"},
                     {"tree_method", "hist"},
                     {"max_cat_to_onehot", onehot},
                     {"max_depth", "5"},
                     {"base_score", "0.35"}},
                    20);
    Model m = ExpectParity("categorical binary", booster, eval);
    size_t categorical = 0;
    size_t max_set = 0;
    for (const Tree& t : m.trees) {
      for (const Node& n : t.nodes) {
        if (n.kind != Node::Kind::kCategorical) continue;
        ++categorical;
        max_set = std::max(max_set, n.categories.size());
      }
    }
    EXPECT_GT(categorical, 0u);
    if (std::string(onehot) == "64") {
      EXPECT_EQ(max_set, 1u) << "one-hot splits test a single category";
    } else {
      EXPECT_GT(max_set, 1u) << "partition splits test a set of categories";
    }
    EXPECT_EQ(m.feature_types, (std::vector<std::string>{"q", "q", "c", "c", "c"}));
    EXPECT_EQ(m.feature_names, (std::vector<std::string>{"f0", "f1", "f2", "f3", "f4"}));
    EXPECT_TRUE(m.has_categorical());

    Booster reg(train,
                {{"objective", "reg:squarederror"},
                 {"tree_method", "hist"},
                 {"max_cat_to_onehot", onehot},
                 {"max_depth", "6"}},
                20);
    ExpectParity("categorical regression", reg, eval);
  }
  // Multiclass over categories.
  Data multi = train;
  for (float& y : multi.y) y = static_cast<float>(std::clamp(static_cast<int>(y + 2.0f), 0, 3));
  Booster booster(multi,
                  {{"objective", "multi:softprob"},
                   {"num_class", "4"},
                   {"tree_method", "hist"},
                   {"max_cat_to_onehot", "4"},
                   {"max_depth", "4"}},
                  10);
  ExpectParity("categorical multiclass", booster, eval);
}

// Where libxgboost sends each kind of value at a categorical split: a stump
// on feature 0 whose left leaf is -1 and right leaf +1, per category set and
// default direction, against the values a request may carry. libxgboost 1.7.4
// sends NaN the default way, members of the set right, and everything else
// left whatever default_left says: non-members, negative values (-0.5 too,
// though -0.0 is category 0), values >= 2^24 and values beyond the bitset.
std::string CategoricalStump(const std::vector<int>& set, bool default_left) {
  std::string cats;
  for (int c : set) cats += (cats.empty() ? "" : ", ") + std::to_string(c);
  const std::string dl = default_left ? "1" : "0";
  return R"({"learner": {"attributes": {}, "feature_names": [], "feature_types": [],
   "gradient_booster": {"model": {"gbtree_model_param": {"num_parallel_tree": "1",
   "num_trees": "1", "size_leaf_vector": "0"}, "tree_info": [0], "trees": [{
   "base_weights": [0.0, 0.0, 0.0], "categories": [)" +
         cats + R"(],
   "categories_nodes": [0], "categories_segments": [0], "categories_sizes": [)" +
         std::to_string(set.size()) + R"(], "default_left": [)" + dl + R"(, 0, 0], "id": 0,
   "left_children": [1, -1, -1], "loss_changes": [0.0, 0.0, 0.0],
   "parents": [2147483647, 0, 0], "right_children": [2, -1, -1],
   "split_conditions": [NaN, -1.0, 1.0], "split_indices": [0, 0, 0],
   "split_type": [1, 0, 0], "sum_hessian": [1.0, 1.0, 1.0],
   "tree_param": {"num_deleted": "0", "num_feature": "1", "num_nodes": "3",
   "size_leaf_vector": "0"}}]}, "name": "gbtree"},
   "learner_model_param": {"base_score": "0E0", "boost_from_average": "0",
   "num_class": "0", "num_feature": "1", "num_target": "1"},
   "objective": {"name": "reg:squarederror", "reg_loss_param": {"scale_pos_weight": "1"}}},
   "version": [1, 7, 4]})";
}

TEST(XgboostParityTest, CategoricalSplitSemantics) {
  const float values[] = {0.0f,        -0.0f,       -0.25f,      -0.5f,         -0.99f, -1.0f,
                          -1.5f,       1.0f,        3.0f,        3.5f,          5.0f,   31.9f,
                          32.0f,       35.0f,       63.0f,       64.0f,         100.0f, 1e9f,
                          16777215.0f, 16777216.0f, 16777218.0f, 2147483648.0f, kNaN};
  Data eval;
  eval.cols = 1;
  eval.types = {"c"};
  for (float v : values) eval.AddRow({v});
  const std::vector<std::vector<int>> sets = {{1, 3, 5}, {0, 3}, {0, 35}, {3}, {31}, {32, 40}};
  for (const auto& set : sets) {
    for (bool default_left : {false, true}) {
      const std::string text = CategoricalStump(set, default_left);
      Booster xgb(text);
      const std::vector<float> want = xgb.Predict(eval, /*margin=*/true);
      ASSERT_OK_AND_ASSIGN(Model m, ImportXgboostJson(text, {}));
      ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(m));
      for (size_t r = 0; r < eval.rows; ++r) {
        float got = 0.0f;
        p.PredictRowMargin(&eval.x[r], &got);
        std::string s;
        for (int c : set) s += " " + std::to_string(c);
        EXPECT_EQ(got, want[r]) << "x = " << eval.x[r] << ", set {" << s << " }, default_left "
                                << default_left << ": keel goes " << (got < 0 ? "left" : "right")
                                << ", xgboost " << (want[r] < 0 ? "left" : "right");
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Other boosters.

TEST(XgboostParityTest, Linear) {
  Data train = Numeric(400, 6, 101, 0.15);
  Data eval = WithoutLabels(Numeric(300, 6, 102, 0.15));
  {
    Data d = train;
    SetLabels(d, Label::kRegression, 103);
    Booster booster(
        d, {{"booster", "gblinear"}, {"objective", "reg:squarederror"}, {"base_score", "1.25"}},
        20);
    Model m = ExpectParity("gblinear regression", booster, eval);
    EXPECT_TRUE(m.trees.empty());
    ASSERT_EQ(m.linear.size(), 1u);
  }
  {
    Data d = train;
    SetLabels(d, Label::kBinary, 104);
    Booster booster(
        d,
        {{"booster", "gblinear"}, {"objective", "binary:logistic"}, {"updater", "coord_descent"}},
        20);
    ExpectParity("gblinear binary", booster, eval);
  }
  {
    Data d = train;
    SetLabels(d, Label::kMulticlass, 105, 4);
    Booster booster(
        d, {{"booster", "gblinear"}, {"objective", "multi:softprob"}, {"num_class", "4"}}, 20);
    Model m = ExpectParity("gblinear multiclass", booster, eval);
    EXPECT_EQ(m.num_groups, 4);
  }
  {
    Data d = train;
    SetLabels(d, Label::kCount, 106);
    Booster booster(
        d, {{"booster", "gblinear"}, {"objective", "count:poisson"}, {"base_score", "2"}}, 20);
    ExpectParity("gblinear poisson", booster, eval);
  }
}

TEST(XgboostParityTest, Dart) {
  Data train = Numeric(400, 6, 111, 0.15);
  Data eval = WithoutLabels(Numeric(300, 6, 112, 0.15));
  {
    Data d = train;
    SetLabels(d, Label::kBinary, 113);
    Booster booster(d,
                    {{"booster", "dart"},
                     {"objective", "binary:logistic"},
                     {"rate_drop", "0.3"},
                     {"skip_drop", "0"},
                     {"max_depth", "4"}},
                    30);
    Model m = ExpectParity("dart binary", booster, eval);
    std::set<double> weights;
    for (const Tree& t : m.trees) weights.insert(t.weight);
    EXPECT_GT(weights.size(), 1u) << "dropout should give trees different weights";
  }
  {
    Data d = train;
    SetLabels(d, Label::kRegression, 114);
    Booster booster(d,
                    {{"booster", "dart"},
                     {"objective", "reg:squarederror"},
                     {"rate_drop", "0.2"},
                     {"normalize_type", "forest"},
                     {"base_score", "0.75"},
                     {"max_depth", "4"}},
                    30);
    ExpectParity("dart regression", booster, eval);
  }
  {
    Data d = train;
    SetLabels(d, Label::kMulticlass, 115, 3);
    Booster booster(d,
                    {{"booster", "dart"},
                     {"objective", "multi:softprob"},
                     {"num_class", "3"},
                     {"rate_drop", "0.25"},
                     {"max_depth", "3"}},
                    15);
    ExpectParity("dart multiclass", booster, eval);
  }
}

// ---------------------------------------------------------------------------
// Real data: the churn table.

struct Churn {
  Data numeric;  // string columns as integer codes
  std::vector<size_t> string_columns;
};

std::vector<std::string> SplitCsv(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      cells.push_back(cell);
      cell.clear();
    } else if (c != '\r') {
      cell += c;
    }
  }
  cells.push_back(cell);
  return cells;
}

Churn LoadChurn() {
  std::ifstream in(KEEL_SOURCE_DIR "/../shared/data/mlc_churn.csv");
  if (!in) throw std::runtime_error("cannot open ../shared/data/mlc_churn.csv");
  std::string line;
  std::getline(in, line);
  const std::vector<std::string> header = SplitCsv(line);
  std::vector<std::vector<std::string>> rows;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    rows.push_back(SplitCsv(line));
    if (rows.back().size() != header.size()) throw std::runtime_error("ragged churn row");
  }
  const size_t label = header.size() - 1;  // "churn"
  Churn c;
  c.numeric.cols = header.size() - 1;
  std::vector<std::map<std::string, float>> codes(header.size());
  for (size_t j = 0; j < label; ++j) {
    char* end = nullptr;
    std::strtod(rows[0][j].c_str(), &end);
    if (*end == '\0' && !rows[0][j].empty()) continue;
    c.string_columns.push_back(j);
    std::set<std::string> values;
    for (const auto& r : rows) values.insert(r[j]);
    float code = 0.0f;
    for (const auto& v : values) codes[j][v] = code++;
  }
  for (const auto& r : rows) {
    std::vector<float> row(c.numeric.cols);
    for (size_t j = 0; j < label; ++j) {
      const bool is_string =
          std::find(c.string_columns.begin(), c.string_columns.end(), j) != c.string_columns.end();
      row[j] = is_string ? codes[j].at(r[j]) : std::strtof(r[j].c_str(), nullptr);
    }
    c.numeric.AddRow(row);
    c.numeric.y.push_back(r[label] == "yes" ? 1.0f : 0.0f);
  }
  return c;
}

TEST(XgboostParityTest, Churn) {
  Churn churn = LoadChurn();
  ASSERT_GT(churn.numeric.rows, 1000u);
  ASSERT_EQ(churn.string_columns.size(), 4u);  // state, area_code, two plans
  Booster booster(churn.numeric,
                  {{"objective", "binary:logistic"},
                   {"tree_method", "hist"},
                   {"max_depth", "6"},
                   {"eta", "0.05"}},
                  400);
  Data eval = WithoutLabels(churn.numeric);
  eval.x.resize(1500 * eval.cols);
  eval.rows = 1500;
  Model m = ExpectParity("churn", booster, eval);
  EXPECT_EQ(m.trees.size(), 400u);

  // The same table with the string columns declared categorical.
  Data cat = churn.numeric;
  cat.types.assign(cat.cols, "q");
  for (size_t j : churn.string_columns) cat.types[j] = "c";
  Booster cat_booster(cat,
                      {{"objective", "binary:logistic"},
                       {"tree_method", "hist"},
                       {"max_depth", "6"},
                       {"eta", "0.1"},
                       {"max_cat_to_onehot", "4"}},
                      100);
  Data cat_eval = WithoutLabels(cat);
  cat_eval.x.resize(1000 * cat_eval.cols);
  cat_eval.rows = 1000;
  Model cm = ExpectParity("churn categorical", cat_booster, cat_eval);
  EXPECT_TRUE(cm.has_categorical());
}

}  // namespace
}  // namespace keel::model
