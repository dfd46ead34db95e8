// File: keel/model/model.h
//
// The model IR: one in-memory representation for tree ensembles (XGBoost
// gbtree/dart, LightGBM) and linear models (XGBoost gblinear, keel's own).
// Importers never build a Model directly: they talk to ModelBuilder
// (builder.h), which validates everything the evaluator relies on. The
// evaluator (predictor.h) compiles a Model; it never sees file formats.
//
//   KEEL_ASSIGN_OR_RETURN(keel::model::Model m, keel::model::LoadModelFile(path));
//   KEEL_ASSIGN_OR_RETURN(keel::model::Predictor p, keel::model::Predictor::Compile(m));
//   float out[1];
//   p.PredictRow(features, out);
//
// Semantics of a prediction, for every format:
//   margin[g] = base_margin[g] + sum over trees t in group g, in tree order, of
//               weight[t] * leaf(t, x)                        (tree models)
//             = base_margin[g] + bias[g] + sum_f x[f] * w[f][g] (linear; NaN x skipped)
//   output    = transform(margin)
// Sums are accumulated in `accumulator` precision (float for XGBoost, double
// for LightGBM) so results match the reference implementations bit for bit
// where they can.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace keel::model {

// How a numerical split treats missing values (NaN) and zeros.
enum class MissingRule : uint8_t {
  kNanToDefault,       // NaN follows default_left (XGBoost; LightGBM missing_type=NaN)
  kNanAsZero,          // NaN is compared as 0.0 (LightGBM missing_type=None)
  kZeroAndNanDefault,  // NaN and |x| <= 1e-35 follow default_left (LightGBM missing_type=Zero)
};

// How a categorical split treats values that are not a valid category index.
// NaN always follows default_left.
enum class InvalidCategory : uint8_t {
  kDefault,   // XGBoost: negative values and values >= 2^24 are not in the
              // set (nor is a category beyond the node's bitset)
  kNotInSet,  // LightGBM: the value is truncated to int first (so -0.5 is
              // category 0); negative results are not in the set
};

struct Node {
  enum class Kind : uint8_t { kLeaf, kNumerical, kCategorical };
  Kind kind = Kind::kLeaf;
  int32_t left = -1;  // child node index within the tree; -1 for leaves
  int32_t right = -1;
  uint32_t feature = 0;
  // kNumerical: x < threshold goes left (builder converts x <= t splits).
  float threshold = 0.0f;
  bool default_left = false;  // where NaN (and per MissingRule, zero) goes
  MissingRule missing = MissingRule::kNanToDefault;
  // kCategorical: sorted category indices; a value in the set goes to the
  // left child when categories_go_left, else to the right child.
  std::vector<uint32_t> categories;
  bool categories_go_left = false;
  InvalidCategory invalid = InvalidCategory::kDefault;
  // kLeaf
  double leaf_value = 0.0;
};

struct Tree {
  std::vector<Node> nodes;  // nodes[0] is the root
  int32_t group = 0;        // output this tree adds to (class index)
  double weight = 1.0;      // dart tree weight; 1 otherwise
  int32_t depth = 0;        // longest root-to-leaf path (edges), set by the builder
};

struct Linear {
  // weights[f * num_groups + g]; bias[g].
  std::vector<double> weights;
  std::vector<double> bias;
};

// What turns the margin vector into outputs.
enum class Transform : uint8_t {
  kIdentity,       // regression, ranking, margins (binary:logitraw)
  kSigmoid,        // binary/logistic: 1 / (1 + exp(-m))
  kSoftmax,        // multiclass probabilities
  kSoftmaxArgmax,  // multi:softmax: index of the largest margin (1 output)
  kExp,            // poisson, gamma, tweedie, cox, aft
  kHinge,          // binary:hinge: 1 if m > 0 else 0
};

enum class Accumulator : uint8_t { kFloat, kDouble };

// What the model predicts, for callers that present outputs (serving, metrics).
enum class Task : uint8_t { kRegression, kBinary, kMulticlass, kRanking };

struct Model {
  int32_t num_features = 0;
  int32_t num_groups = 1;  // margins per row (classes for multiclass trees)
  Task task = Task::kRegression;
  Transform transform = Transform::kIdentity;
  Accumulator accumulator = Accumulator::kFloat;
  std::vector<double> base_margin;  // size num_groups, in margin space
  std::vector<Tree> trees;
  std::vector<Linear> linear;  // empty or exactly one
  // Optional metadata, as the source file states it.
  std::vector<std::string> feature_names;  // empty or num_features entries
  std::vector<std::string> feature_types;  // "q" numeric, "c" categorical, "i" indicator...
  std::string source_format;               // "xgboost-json", "lightgbm-text", ...
  std::string objective;                   // the source's objective string

  // Outputs per row after the transform (1 for kSoftmaxArgmax).
  int32_t num_outputs() const { return transform == Transform::kSoftmaxArgmax ? 1 : num_groups; }
  bool has_categorical() const;
};

// Human-readable names ("sigmoid", "binary", ...), stable for JSON and logs.
const char* TransformName(Transform t);
const char* TaskName(Task t);

}  // namespace keel::model
