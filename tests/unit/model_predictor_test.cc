// ModelBuilder validation and Predictor semantics on hand-built models whose
// outputs are computed by hand in the test.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "keel/core/thread_pool.h"
#include "keel/model/builder.h"
#include "keel/model/predictor.h"
#include "test_util.h"

namespace keel::model {
namespace {

constexpr float kMissing = std::numeric_limits<float>::quiet_NaN();

ModelHeader Header(int32_t features, int32_t groups = 1, Transform tr = Transform::kIdentity,
                   Accumulator acc = Accumulator::kFloat) {
  ModelHeader h;
  h.num_features = features;
  h.num_groups = groups;
  h.transform = tr;
  h.accumulator = acc;
  h.task = groups > 1 ? Task::kMulticlass : Task::kRegression;
  return h;
}

// x0 < 1.5 ? (x1 < 0 ? 1 : 2) : 3; NaN at the root goes right, NaN at x1 left.
Status AddStump2(ModelBuilder& b, int32_t group = 0, double scale = 1.0) {
  KEEL_RETURN_IF_ERROR(b.BeginTree(group));
  KEEL_RETURN_IF_ERROR(b.AddNumericalSplit(
      0, {.feature = 0, .threshold = 1.5, .default_left = false, .left = 1, .right = 2}));
  KEEL_RETURN_IF_ERROR(b.AddNumericalSplit(
      1, {.feature = 1, .threshold = 0.0, .default_left = true, .left = 3, .right = 4}));
  KEEL_RETURN_IF_ERROR(b.AddLeaf(2, 3 * scale));
  KEEL_RETURN_IF_ERROR(b.AddLeaf(3, 1 * scale));
  KEEL_RETURN_IF_ERROR(b.AddLeaf(4, 2 * scale));
  return b.EndTree();
}

float PredictOne(const Predictor& p, std::vector<float> x) {
  float out = 0;
  p.PredictRow(x.data(), &out);
  return out;
}

TEST(ModelBuilder, NumericalTreeWithMissingDirections) {
  ModelBuilder b(Header(2));
  ASSERT_OK(b.SetBaseMargin({0.5}));
  ASSERT_OK(AddStump2(b));
  ASSERT_OK_AND_ASSIGN(Model m, std::move(b).Finish());
  EXPECT_EQ(m.trees[0].depth, 2);
  ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(m));
  EXPECT_FLOAT_EQ(PredictOne(p, {1.0f, -1.0f}), 1.5f);
  EXPECT_FLOAT_EQ(PredictOne(p, {1.0f, 0.0f}), 2.5f);   // 0 < 0 is false: right
  EXPECT_FLOAT_EQ(PredictOne(p, {1.5f, -1.0f}), 3.5f);  // 1.5 < 1.5 is false: right
  EXPECT_FLOAT_EQ(PredictOne(p, {kMissing, -1.0f}), 3.5f);  // root default right
  EXPECT_FLOAT_EQ(PredictOne(p, {0.0f, kMissing}), 1.5f);   // inner default left
}

TEST(ModelBuilder, LessEqualThresholdsBecomeStrict) {
  // LightGBM-style x <= 0.1 (a double between two floats) and x <= 2 (exact).
  ModelBuilder b(Header(1, 1, Transform::kIdentity, Accumulator::kDouble));
  ASSERT_OK(b.BeginTree(0));
  ASSERT_OK(b.AddNumericalSplit(
      0, {.feature = 0, .threshold = 0.1, .cmp = Comparison::kLessEqual, .left = 1, .right = 2}));
  ASSERT_OK(b.AddLeaf(1, -1));
  ASSERT_OK(b.AddNumericalSplit(
      2, {.feature = 0, .threshold = 2.0, .cmp = Comparison::kLessEqual, .left = 3, .right = 4}));
  ASSERT_OK(b.AddLeaf(3, 2));
  ASSERT_OK(b.AddLeaf(4, 3));
  ASSERT_OK(b.EndTree());
  ASSERT_OK_AND_ASSIGN(Model m, std::move(b).Finish());
  ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(m));
  const float below = std::nextafter(0.1f, 0.0f);
  // 0.1f is above the double 0.1, so it is not <= 0.1.
  ASSERT_GT(static_cast<double>(0.1f), 0.1);
  EXPECT_EQ(PredictOne(p, {below}), -1);
  EXPECT_EQ(PredictOne(p, {0.1f}), 2);
  EXPECT_EQ(PredictOne(p, {2.0f}), 2);
  EXPECT_EQ(PredictOne(p, {std::nextafter(2.0f, 3.0f)}), 3);
}

TEST(ModelBuilder, LightgbmMissingRules) {
  ModelBuilder b(Header(1, 1, Transform::kIdentity, Accumulator::kDouble));
  // Tree 0: missing None (NaN as zero), 0 <= 0.5 goes left.
  ASSERT_OK(b.BeginTree(0));
  ASSERT_OK(b.AddNumericalSplit(0, {.feature = 0,
                                    .threshold = 0.5,
                                    .cmp = Comparison::kLessEqual,
                                    .default_left = false,
                                    .missing = MissingRule::kNanAsZero,
                                    .left = 1,
                                    .right = 2}));
  ASSERT_OK(b.AddLeaf(1, 10));
  ASSERT_OK(b.AddLeaf(2, 20));
  ASSERT_OK(b.EndTree());
  // Tree 1: missing Zero, default right: zero, tiny and NaN go right.
  ASSERT_OK(b.BeginTree(0));
  ASSERT_OK(b.AddNumericalSplit(0, {.feature = 0,
                                    .threshold = 0.5,
                                    .cmp = Comparison::kLessEqual,
                                    .default_left = false,
                                    .missing = MissingRule::kZeroAndNanDefault,
                                    .left = 1,
                                    .right = 2}));
  ASSERT_OK(b.AddLeaf(1, 100));
  ASSERT_OK(b.AddLeaf(2, 200));
  ASSERT_OK(b.EndTree());
  ASSERT_OK_AND_ASSIGN(Model m, std::move(b).Finish());
  ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(m));
  EXPECT_EQ(PredictOne(p, {kMissing}), 10 + 200);
  EXPECT_EQ(PredictOne(p, {0.0f}), 10 + 200);
  EXPECT_EQ(PredictOne(p, {1e-36f}), 10 + 200);
  EXPECT_EQ(PredictOne(p, {0.25f}), 10 + 100);
  EXPECT_EQ(PredictOne(p, {-1.0f}), 10 + 100);
  EXPECT_EQ(PredictOne(p, {0.75f}), 20 + 200);
}

TEST(ModelBuilder, CategoricalSplits) {
  ModelBuilder b(Header(1));
  // XGBoost rule: in the set -> right; invalid or beyond the bitset -> default (left).
  ASSERT_OK(b.BeginTree(0));
  ASSERT_OK(b.AddCategoricalSplit(0, {.feature = 0,
                                      .categories = {3, 1, 3},
                                      .categories_go_left = false,
                                      .default_left = true,
                                      .invalid = InvalidCategory::kDefault,
                                      .left = 1,
                                      .right = 2}));
  ASSERT_OK(b.AddLeaf(1, 1));
  ASSERT_OK(b.AddLeaf(2, 2));
  ASSERT_OK(b.EndTree());
  // LightGBM rule: in the set -> left; NaN and negative -> right.
  ASSERT_OK(b.BeginTree(0));
  ASSERT_OK(b.AddCategoricalSplit(0, {.feature = 0,
                                      .categories = {0, 40},
                                      .categories_go_left = true,
                                      .default_left = false,
                                      .invalid = InvalidCategory::kNotInSet,
                                      .left = 1,
                                      .right = 2}));
  ASSERT_OK(b.AddLeaf(1, 10));
  ASSERT_OK(b.AddLeaf(2, 20));
  ASSERT_OK(b.EndTree());
  ASSERT_OK_AND_ASSIGN(Model m, std::move(b).Finish());
  EXPECT_TRUE(m.has_categorical());
  EXPECT_EQ(m.trees[0].nodes[0].categories, (std::vector<uint32_t>{1, 3}));
  ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(m));
  EXPECT_EQ(PredictOne(p, {1.0f}), 2 + 20);
  EXPECT_EQ(PredictOne(p, {3.7f}), 2 + 20);   // truncated to 3
  EXPECT_EQ(PredictOne(p, {2.0f}), 1 + 20);   // not in set -> left
  EXPECT_EQ(PredictOne(p, {31.0f}), 1 + 20);  // inside the 32-bit bitset, not in set
  EXPECT_EQ(PredictOne(p, {32.0f}), 1 + 20);  // beyond the bitset -> default (left)
  EXPECT_EQ(PredictOne(p, {-0.5f}), 1 + 10);  // XGBoost invalid -> default; LightGBM int 0
  EXPECT_EQ(PredictOne(p, {-2.0f}), 1 + 20);
  EXPECT_EQ(PredictOne(p, {kMissing}), 1 + 20);
  EXPECT_EQ(PredictOne(p, {40.0f}), 1 + 10);
  EXPECT_EQ(PredictOne(p, {0.0f}), 1 + 10);

  // XGBoost rule with default right: only NaN follows the default; values
  // outside the set (negative, beyond the bitset, huge) go left.
  ModelBuilder b2(Header(1));
  ASSERT_OK(b2.BeginTree(0));
  ASSERT_OK(b2.AddCategoricalSplit(0, {.feature = 0,
                                       .categories = {2},
                                       .categories_go_left = false,
                                       .default_left = false,
                                       .invalid = InvalidCategory::kDefault,
                                       .left = 1,
                                       .right = 2}));
  ASSERT_OK(b2.AddLeaf(1, 1));
  ASSERT_OK(b2.AddLeaf(2, 2));
  ASSERT_OK(b2.EndTree());
  ASSERT_OK_AND_ASSIGN(Model m2, std::move(b2).Finish());
  ASSERT_OK_AND_ASSIGN(Predictor p2, Predictor::Compile(m2));
  EXPECT_EQ(PredictOne(p2, {kMissing}), 2);
  EXPECT_EQ(PredictOne(p2, {2.0f}), 2);
  EXPECT_EQ(PredictOne(p2, {2.9f}), 2);
  EXPECT_EQ(PredictOne(p2, {3.0f}), 1);
  EXPECT_EQ(PredictOne(p2, {40.0f}), 1);
  EXPECT_EQ(PredictOne(p2, {-0.5f}), 1);
  EXPECT_EQ(PredictOne(p2, {1e30f}), 1);
}

TEST(ModelBuilder, RejectsMalformedTrees) {
  {
    ModelBuilder b(Header(2));
    ASSERT_OK(b.BeginTree(0));
    Status s = b.AddNumericalSplit(0, {.feature = 7, .threshold = 1, .left = 1, .right = 2});
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("feature 7 out of range"), std::string::npos) << s.ToString();
    EXPECT_FALSE(std::move(b).Finish().ok());  // errors are sticky
  }
  {  // a cycle back to the root
    ModelBuilder b(Header(2));
    ASSERT_OK(b.BeginTree(0));
    ASSERT_OK(b.AddNumericalSplit(0, {.feature = 0, .threshold = 1, .left = 1, .right = 2}));
    ASSERT_OK(b.AddNumericalSplit(1, {.feature = 0, .threshold = 1, .left = 0, .right = 2}));
    ASSERT_OK(b.AddLeaf(2, 1));
    Status s = b.EndTree();
    EXPECT_FALSE(s.ok());
  }
  {  // two parents
    ModelBuilder b(Header(2));
    ASSERT_OK(b.BeginTree(0));
    ASSERT_OK(b.AddNumericalSplit(0, {.feature = 0, .threshold = 1, .left = 1, .right = 2}));
    ASSERT_OK(b.AddNumericalSplit(1, {.feature = 0, .threshold = 1, .left = 3, .right = 2}));
    ASSERT_OK(b.AddLeaf(2, 1));
    ASSERT_OK(b.AddLeaf(3, 1));
    EXPECT_FALSE(b.EndTree().ok());
  }
  {  // an undefined child
    ModelBuilder b(Header(2));
    ASSERT_OK(b.BeginTree(0));
    ASSERT_OK(b.AddNumericalSplit(0, {.feature = 0, .threshold = 1, .left = 1, .right = 5}));
    ASSERT_OK(b.AddLeaf(1, 1));
    EXPECT_FALSE(b.EndTree().ok());
  }
  {  // self child, NaN threshold, infinite leaf, bad group, duplicate node
    ModelBuilder b(Header(2));
    ASSERT_OK(b.BeginTree(0));
    EXPECT_FALSE(
        b.AddNumericalSplit(0, {.feature = 0, .threshold = 1, .left = 0, .right = 1}).ok());
  }
  {
    ModelBuilder b(Header(2));
    ASSERT_OK(b.BeginTree(0));
    EXPECT_FALSE(
        b.AddNumericalSplit(0, {.feature = 0, .threshold = std::nan(""), .left = 1, .right = 2})
            .ok());
  }
  {
    ModelBuilder b(Header(2));
    ASSERT_OK(b.BeginTree(0));
    EXPECT_FALSE(b.AddLeaf(0, std::numeric_limits<double>::infinity()).ok());
  }
  {  // an infinite threshold (x <= +inf cannot be a float x < t split)
    ModelBuilder b(Header(2));
    ASSERT_OK(b.BeginTree(0));
    EXPECT_FALSE(b.AddNumericalSplit(0, {.feature = 0,
                                         .threshold = std::numeric_limits<double>::infinity(),
                                         .cmp = Comparison::kLessEqual,
                                         .left = 1,
                                         .right = 2})
                     .ok());
  }
  {
    ModelBuilder b(Header(2, 3, Transform::kSoftmax));
    EXPECT_FALSE(b.BeginTree(3).ok());
  }
  {
    ModelBuilder b(Header(2));
    ASSERT_OK(b.BeginTree(0));
    ASSERT_OK(b.AddLeaf(0, 1));
    EXPECT_FALSE(b.AddLeaf(0, 1).ok());
  }
  {  // limits: too many nodes per tree
    BuilderLimits limits;
    limits.max_nodes_per_tree = 4;
    ModelBuilder b(Header(2), limits);
    ASSERT_OK(b.BeginTree(0));
    EXPECT_FALSE(
        b.AddNumericalSplit(0, {.feature = 0, .threshold = 1, .left = 1, .right = 9}).ok());
  }
  {  // header checks and empty models
    EXPECT_FALSE(std::move(ModelBuilder(Header(0))).Finish().ok());
    EXPECT_FALSE(std::move(ModelBuilder(Header(3, 1, Transform::kSoftmax))).Finish().ok());
    EXPECT_FALSE(std::move(ModelBuilder(Header(3))).Finish().ok());
  }
}

TEST(ModelBuilder, UnreachableNodesAreDropped) {
  ModelBuilder b(Header(1));
  ASSERT_OK(b.BeginTree(0));
  ASSERT_OK(b.AddNumericalSplit(0, {.feature = 0, .threshold = 1, .left = 2, .right = 3}));
  ASSERT_OK(b.AddLeaf(1, 99));  // pruned, unreachable
  ASSERT_OK(b.AddLeaf(2, 5));
  ASSERT_OK(b.AddLeaf(3, 7));
  ASSERT_OK(b.EndTree());
  ASSERT_OK_AND_ASSIGN(Model m, std::move(b).Finish());
  ASSERT_EQ(m.trees[0].nodes.size(), 3u);
  ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(m));
  EXPECT_EQ(PredictOne(p, {0.0f}), 5);
  EXPECT_EQ(PredictOne(p, {2.0f}), 7);
}

TEST(Predictor, SoftmaxDartWeightsAndLinear) {
  ModelBuilder b(Header(2, 3, Transform::kSoftmax));
  ASSERT_OK(b.SetBaseMargin({0.1, 0.2, 0.3}));
  ASSERT_OK(AddStump2(b, 0));
  ASSERT_OK(AddStump2(b, 2, -1.0));
  ASSERT_OK(b.BeginTree(1, /*weight=*/0.5));
  ASSERT_OK(b.AddLeaf(0, 4));
  ASSERT_OK(b.EndTree());
  ASSERT_OK(b.SetLinear({1, 0, 0, 0, 0, 2}, {0, 0, 1}));
  ASSERT_OK_AND_ASSIGN(Model m, std::move(b).Finish());
  ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(m));
  ASSERT_EQ(p.num_outputs(), 3);
  const float x[2] = {1.0f, 2.0f};
  float margin[3];
  p.PredictRowMargin(x, margin);
  EXPECT_FLOAT_EQ(margin[0], 0.1f + 2 + 1 * 1.0f);
  EXPECT_FLOAT_EQ(margin[1], 0.2f + 2);
  EXPECT_FLOAT_EQ(margin[2], 0.3f - 2 + 1 + 2 * 2.0f);
  float out[3];
  p.PredictRow(x, out);
  double z = std::exp(3.1) + std::exp(2.2) + std::exp(3.3);
  EXPECT_NEAR(out[0], std::exp(3.1) / z, 1e-6);
  EXPECT_NEAR(out[1], std::exp(2.2) / z, 1e-6);
  EXPECT_NEAR(out[2], std::exp(3.3) / z, 1e-6);
  // NaN inputs are skipped by the linear part.
  const float xn[2] = {kMissing, kMissing};
  p.PredictRowMargin(xn, margin);
  EXPECT_FLOAT_EQ(margin[0], 0.1f + 3);
  EXPECT_FLOAT_EQ(margin[2], 0.3f - 3 + 1);
}

TEST(Predictor, TransformsAndArgmax) {
  for (Transform tr : {Transform::kSigmoid, Transform::kExp, Transform::kHinge}) {
    ModelBuilder b(Header(2, 1, tr));
    ASSERT_OK(AddStump2(b, 0, -0.5));
    ASSERT_OK_AND_ASSIGN(Model m, std::move(b).Finish());
    ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(m));
    const float got = PredictOne(p, {1.0f, -1.0f});  // margin -0.5
    const float want = tr == Transform::kSigmoid ? 1.0f / (1.0f + std::exp(0.5f))
                       : tr == Transform::kExp   ? std::exp(-0.5f)
                                                 : 0.0f;
    EXPECT_NEAR(got, want, 1e-7) << TransformName(tr);
  }
  ModelBuilder b(Header(2, 3, Transform::kSoftmaxArgmax));
  ASSERT_OK(AddStump2(b, 1));
  ASSERT_OK_AND_ASSIGN(Model m, std::move(b).Finish());
  ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(m));
  EXPECT_EQ(p.num_outputs(), 1);
  EXPECT_EQ(PredictOne(p, {1.0f, -1.0f}), 1.0f);
}

// Batch and single-row paths agree on a random deep ensemble, with a pool.
TEST(Predictor, BatchEqualsRowOnRandomEnsemble) {
  std::mt19937 rng(7);
  const int32_t nf = 9;
  for (bool categorical : {false, true}) {
    ModelBuilder b(Header(nf, 2, Transform::kSoftmax));
    for (int t = 0; t < 50; ++t) {
      ASSERT_OK(b.BeginTree(t % 2));
      // A random binary tree of up to 63 nodes, ids assigned in creation order.
      int32_t next = 1;
      std::vector<int32_t> open = {0};
      while (!open.empty()) {
        int32_t id = open.back();
        open.pop_back();
        if (next + 2 <= 63 && rng() % 3 != 0) {
          const int32_t l = next++, r = next++;
          if (categorical && rng() % 4 == 0) {
            ASSERT_OK(
                b.AddCategoricalSplit(id, {.feature = static_cast<uint32_t>(rng() % nf),
                                           .categories = {static_cast<uint32_t>(rng() % 5), 7},
                                           .categories_go_left = static_cast<bool>(rng() % 2),
                                           .default_left = static_cast<bool>(rng() % 2),
                                           .left = l,
                                           .right = r}));
          } else {
            ASSERT_OK(b.AddNumericalSplit(id, {.feature = static_cast<uint32_t>(rng() % nf),
                                               .threshold = static_cast<double>(rng() % 100) / 10.0,
                                               .default_left = static_cast<bool>(rng() % 2),
                                               .left = l,
                                               .right = r}));
          }
          open.push_back(l);
          open.push_back(r);
        } else {
          ASSERT_OK(b.AddLeaf(id, static_cast<double>(rng() % 1000) / 1000.0 - 0.5));
        }
      }
      ASSERT_OK(b.EndTree());
    }
    ASSERT_OK_AND_ASSIGN(Model m, std::move(b).Finish());
    ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(m));
    const size_t rows = 1000;
    std::vector<float> x(rows * nf);
    for (float& v : x) v = rng() % 10 == 0 ? kMissing : static_cast<float>(rng() % 100) / 10.0f;
    std::vector<float> batch(rows * 2), pooled(rows * 2);
    p.PredictBatch(x.data(), rows, batch.data());
    ThreadPool pool(2);
    p.PredictBatch(x.data(), rows, pooled.data(), &pool);
    for (size_t r = 0; r < rows; ++r) {
      float row[2];
      p.PredictRow(x.data() + r * nf, row);
      ASSERT_EQ(row[0], batch[r * 2]) << r;
      ASSERT_EQ(row[1], batch[r * 2 + 1]) << r;
      ASSERT_EQ(row[0], pooled[r * 2]) << r;
      ASSERT_NEAR(row[0] + row[1], 1.0f, 1e-6);
    }
  }
}

}  // namespace
}  // namespace keel::model
