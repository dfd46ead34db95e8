// File: keel/model/builder.h
//
// ModelBuilder: the only way importers create a Model. It checks every
// invariant the evaluator relies on, so a hostile file cannot make the
// evaluator crash or loop: feature indices in range, node ids dense, every
// child defined and with exactly one parent, the root nobody's child (so no
// cycles), finite thresholds and leaf values, bounded sizes. Nodes the root
// cannot reach are dropped and the tree renumbered in preorder.
//
//   ModelBuilder b({.num_features = 73, .num_groups = 1, .task = Task::kBinary,
//                   .transform = Transform::kSigmoid});
//   KEEL_RETURN_IF_ERROR(b.SetBaseMargin({0.0}));
//   KEEL_RETURN_IF_ERROR(b.BeginTree(/*group=*/0));
//   KEEL_RETURN_IF_ERROR(b.AddNumericalSplit(0, {.feature = 3, .threshold = 1.5,
//                                                .left = 1, .right = 2}));
//   KEEL_RETURN_IF_ERROR(b.AddLeaf(1, -0.2));
//   KEEL_RETURN_IF_ERROR(b.AddLeaf(2, 0.4));
//   KEEL_RETURN_IF_ERROR(b.EndTree());
//   KEEL_ASSIGN_OR_RETURN(Model m, std::move(b).Finish());
//
// Node ids are chosen by the importer, dense from 0 (the root) within a tree.
// Not thread-safe; one builder per import.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "keel/core/result.h"
#include "keel/core/status.h"
#include "keel/model/model.h"

namespace keel::model {

struct ModelHeader {
  int32_t num_features = 0;
  int32_t num_groups = 1;
  Task task = Task::kRegression;
  Transform transform = Transform::kIdentity;
  Accumulator accumulator = Accumulator::kFloat;
  std::string source_format;
  std::string objective;
};

// Limits that bound memory and time for any input.
struct BuilderLimits {
  int64_t max_features = 1 << 24;
  int64_t max_groups = 1 << 16;
  int64_t max_trees = 1 << 20;
  int64_t max_nodes_per_tree = 1 << 24;
  int64_t max_total_nodes = int64_t{1} << 28;
  int64_t max_category = (1 << 24) - 1;  // largest category index
  // Sum over categorical splits of (largest category + 1): bounds the
  // evaluator's bitsets (1 bit each).
  int64_t max_total_category_bits = int64_t{1} << 28;
};

enum class Comparison : uint8_t {
  kLess,       // x <  threshold goes left (XGBoost)
  kLessEqual,  // x <= threshold goes left (LightGBM)
};

struct NumericalSplit {
  uint32_t feature = 0;
  double threshold = 0.0;
  Comparison cmp = Comparison::kLess;
  bool default_left = false;
  MissingRule missing = MissingRule::kNanToDefault;
  int32_t left = -1;
  int32_t right = -1;
};

struct CategoricalSplit {
  uint32_t feature = 0;
  std::vector<uint32_t> categories;  // any order, duplicates allowed
  bool categories_go_left = false;
  bool default_left = false;
  InvalidCategory invalid = InvalidCategory::kDefault;
  int32_t left = -1;
  int32_t right = -1;
};

class ModelBuilder {
 public:
  explicit ModelBuilder(ModelHeader header, BuilderLimits limits = {});

  // Margin added to every row before trees/linear terms, per group
  // (size num_groups, or size 1 to broadcast). Default 0.
  Status SetBaseMargin(std::vector<double> margin);
  Status SetFeatureNames(std::vector<std::string> names);
  Status SetFeatureTypes(std::vector<std::string> types);

  Status BeginTree(int32_t group, double weight = 1.0);
  Status AddNumericalSplit(int32_t node, const NumericalSplit& split);
  Status AddCategoricalSplit(int32_t node, CategoricalSplit split);
  Status AddLeaf(int32_t node, double value);
  Status EndTree();

  // weights[f * num_groups + g], bias[g]. At most one linear part.
  Status SetLinear(std::vector<double> weights, std::vector<double> bias);

  // Validates the whole model (at least one tree or a linear part) and
  // returns it. The builder is spent afterwards.
  Result<Model> Finish() &&;

 private:
  Status SetPerFeature(std::vector<std::string> values, const char* what,
                       std::vector<std::string>& field);
  Status CheckNodeId(int32_t node) const;
  // The checks every split shares: sticky error, node id, children, feature.
  Status CheckSplit(int32_t node, uint32_t feature, int32_t left, int32_t right);
  Status CheckChildren(int32_t node, int32_t left, int32_t right) const;

  Model model_;
  BuilderLimits limits_;
  bool in_tree_ = false;
  int64_t total_nodes_ = 0;
  int64_t total_category_bits_ = 0;
  Status error_;                  // the first error; sticky
  std::vector<uint8_t> defined_;  // per node of the open tree
};

}  // namespace keel::model
