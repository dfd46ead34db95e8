#include "keel/model/builder.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace keel::model {
namespace {

std::string TreeCtx(size_t tree, int32_t node) {
  return "tree " + std::to_string(tree) + " node " + std::to_string(node);
}

// Largest float <= t (t is a double threshold of an `x <= t` split).
float FloatAtOrBelow(double t) {
  float f = static_cast<float>(t);
  if (static_cast<double>(f) > t) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

}  // namespace

ModelBuilder::ModelBuilder(ModelHeader header, BuilderLimits limits) : limits_(limits) {
  model_.num_features = header.num_features;
  model_.num_groups = header.num_groups;
  model_.task = header.task;
  model_.transform = header.transform;
  model_.accumulator = header.accumulator;
  model_.source_format = std::move(header.source_format);
  model_.objective = std::move(header.objective);
  if (header.num_features <= 0 || header.num_features > limits_.max_features) {
    error_ = InvalidArgument("num_features " + std::to_string(header.num_features) +
                             " out of range [1, " + std::to_string(limits_.max_features) + "]");
  } else if (header.num_groups <= 0 || header.num_groups > limits_.max_groups) {
    error_ = InvalidArgument("number of outputs " + std::to_string(header.num_groups) +
                             " out of range [1, " + std::to_string(limits_.max_groups) + "]");
  } else if ((header.transform == Transform::kSoftmax ||
              header.transform == Transform::kSoftmaxArgmax) &&
             header.num_groups < 2) {
    error_ = InvalidArgument("softmax needs at least 2 classes");
  }
  if (error_.ok()) model_.base_margin.assign(static_cast<size_t>(model_.num_groups), 0.0);
}

Status ModelBuilder::SetBaseMargin(std::vector<double> margin) {
  KEEL_RETURN_IF_ERROR(error_);
  if (margin.size() == 1) margin.assign(static_cast<size_t>(model_.num_groups), margin[0]);
  if (margin.size() != static_cast<size_t>(model_.num_groups)) {
    return error_ = InvalidArgument("base margin has " + std::to_string(margin.size()) +
                                    " values, expected " + std::to_string(model_.num_groups));
  }
  for (double m : margin) {
    if (!std::isfinite(m)) return error_ = InvalidArgument("base margin is not finite");
  }
  model_.base_margin = std::move(margin);
  return OkStatus();
}

Status ModelBuilder::SetPerFeature(std::vector<std::string> values, const char* what,
                                   std::vector<std::string>& field) {
  KEEL_RETURN_IF_ERROR(error_);
  if (!values.empty() && values.size() != static_cast<size_t>(model_.num_features)) {
    return error_ = InvalidArgument(std::string(what) + " has " + std::to_string(values.size()) +
                                    " entries, the model has " +
                                    std::to_string(model_.num_features) + " features");
  }
  field = std::move(values);
  return OkStatus();
}

Status ModelBuilder::SetFeatureNames(std::vector<std::string> names) {
  return SetPerFeature(std::move(names), "feature_names", model_.feature_names);
}

Status ModelBuilder::SetFeatureTypes(std::vector<std::string> types) {
  return SetPerFeature(std::move(types), "feature_types", model_.feature_types);
}

Status ModelBuilder::BeginTree(int32_t group, double weight) {
  KEEL_RETURN_IF_ERROR(error_);
  if (in_tree_) return error_ = InvalidArgument("BeginTree while a tree is open");
  if (static_cast<int64_t>(model_.trees.size()) >= limits_.max_trees) {
    return error_ = ResourceExhausted("more than " + std::to_string(limits_.max_trees) + " trees");
  }
  if (group < 0 || group >= model_.num_groups) {
    return error_ = InvalidArgument("tree " + std::to_string(model_.trees.size()) + ": group " +
                                    std::to_string(group) + " out of range [0, " +
                                    std::to_string(model_.num_groups) + ")");
  }
  if (!std::isfinite(weight)) {
    return error_ = InvalidArgument("tree " + std::to_string(model_.trees.size()) +
                                    ": weight is not finite");
  }
  Tree t;
  t.group = group;
  t.weight = weight;
  model_.trees.push_back(std::move(t));
  defined_.clear();
  in_tree_ = true;
  return OkStatus();
}

Status ModelBuilder::CheckNodeId(int32_t node) const {
  if (!in_tree_) return InvalidArgument("node added outside a tree");
  if (node < 0 || node >= limits_.max_nodes_per_tree) {
    return InvalidArgument(TreeCtx(model_.trees.size() - 1, node) + ": node id out of range");
  }
  if (static_cast<size_t>(node) < defined_.size() && defined_[static_cast<size_t>(node)]) {
    return InvalidArgument(TreeCtx(model_.trees.size() - 1, node) + ": defined twice");
  }
  if (total_nodes_ + 1 > limits_.max_total_nodes) {
    return ResourceExhausted("more than " + std::to_string(limits_.max_total_nodes) + " nodes");
  }
  return OkStatus();
}

Status ModelBuilder::CheckChildren(int32_t node, int32_t left, int32_t right) const {
  const std::string ctx = TreeCtx(model_.trees.size() - 1, node);
  if (left < 0 || right < 0 || left >= limits_.max_nodes_per_tree ||
      right >= limits_.max_nodes_per_tree) {
    return InvalidArgument(ctx + ": child id out of range (" + std::to_string(left) + ", " +
                           std::to_string(right) + ")");
  }
  if (left == right)
    return InvalidArgument(ctx + ": both children are node " + std::to_string(left));
  if (left == node || right == node) return InvalidArgument(ctx + ": node is its own child");
  return OkStatus();
}

namespace {
void Place(Tree& tree, std::vector<uint8_t>& defined, int32_t id, Node node) {
  const size_t i = static_cast<size_t>(id);
  if (tree.nodes.size() <= i) {
    tree.nodes.resize(i + 1);
    defined.resize(i + 1, 0);
  }
  tree.nodes[i] = std::move(node);
  defined[i] = 1;
}
}  // namespace

Status ModelBuilder::CheckSplit(int32_t node, uint32_t feature, int32_t left, int32_t right) {
  KEEL_RETURN_IF_ERROR(error_);
  if (Status st = CheckNodeId(node); !st.ok()) return error_ = st;
  if (Status st = CheckChildren(node, left, right); !st.ok()) return error_ = st;
  if (feature >= static_cast<uint32_t>(model_.num_features)) {
    return error_ = InvalidArgument(TreeCtx(model_.trees.size() - 1, node) + ": split feature " +
                                    std::to_string(feature) + " out of range (the model has " +
                                    std::to_string(model_.num_features) + " features)");
  }
  return OkStatus();
}

Status ModelBuilder::AddNumericalSplit(int32_t node, const NumericalSplit& s) {
  KEEL_RETURN_IF_ERROR(CheckSplit(node, s.feature, s.left, s.right));
  const std::string ctx = TreeCtx(model_.trees.size() - 1, node);
  if (!std::isfinite(s.threshold)) {
    return error_ = InvalidArgument(ctx + ": threshold is not finite");
  }
  Node n;
  n.kind = Node::Kind::kNumerical;
  n.left = s.left;
  n.right = s.right;
  n.feature = s.feature;
  n.default_left = s.default_left;
  n.missing = s.missing;
  if (s.cmp == Comparison::kLess) {
    n.threshold = static_cast<float>(s.threshold);
    // A double threshold between two floats: x < t for float x is x < ceil_float(t).
    if (static_cast<double>(n.threshold) < s.threshold) {
      n.threshold = std::nextafter(n.threshold, std::numeric_limits<float>::infinity());
    }
  } else {
    // x <= t  <=>  x < next float above the largest float <= t.
    float f = FloatAtOrBelow(s.threshold);
    n.threshold = std::nextafter(f, std::numeric_limits<float>::infinity());
  }
  Place(model_.trees.back(), defined_, node, std::move(n));
  ++total_nodes_;
  return OkStatus();
}

Status ModelBuilder::AddCategoricalSplit(int32_t node, CategoricalSplit s) {
  KEEL_RETURN_IF_ERROR(CheckSplit(node, s.feature, s.left, s.right));
  const std::string ctx = TreeCtx(model_.trees.size() - 1, node);
  std::sort(s.categories.begin(), s.categories.end());
  s.categories.erase(std::unique(s.categories.begin(), s.categories.end()), s.categories.end());
  if (!s.categories.empty() && s.categories.back() > limits_.max_category) {
    return error_ = InvalidArgument(ctx + ": category " + std::to_string(s.categories.back()) +
                                    " above the limit " + std::to_string(limits_.max_category));
  }
  if (!s.categories.empty()) {
    total_category_bits_ += static_cast<int64_t>(s.categories.back()) + 1;
    if (total_category_bits_ > limits_.max_total_category_bits) {
      return error_ = ResourceExhausted(ctx + ": categorical splits need more than " +
                                        std::to_string(limits_.max_total_category_bits) +
                                        " bitset bits in all");
    }
  }
  Node n;
  n.kind = Node::Kind::kCategorical;
  n.left = s.left;
  n.right = s.right;
  n.feature = s.feature;
  n.default_left = s.default_left;
  n.categories = std::move(s.categories);
  n.categories_go_left = s.categories_go_left;
  n.invalid = s.invalid;
  Place(model_.trees.back(), defined_, node, std::move(n));
  ++total_nodes_;
  return OkStatus();
}

Status ModelBuilder::AddLeaf(int32_t node, double value) {
  KEEL_RETURN_IF_ERROR(error_);
  if (Status st = CheckNodeId(node); !st.ok()) return error_ = st;
  if (!std::isfinite(value)) {
    return error_ = InvalidArgument(TreeCtx(model_.trees.size() - 1, node) +
                                    ": leaf value is not finite");
  }
  Node n;
  n.kind = Node::Kind::kLeaf;
  n.leaf_value = value;
  Place(model_.trees.back(), defined_, node, std::move(n));
  ++total_nodes_;
  return OkStatus();
}

Status ModelBuilder::EndTree() {
  KEEL_RETURN_IF_ERROR(error_);
  if (!in_tree_) return error_ = InvalidArgument("EndTree without BeginTree");
  in_tree_ = false;
  Tree& tree = model_.trees.back();
  const size_t index = model_.trees.size() - 1;
  if (tree.nodes.empty()) {
    return error_ = InvalidArgument("tree " + std::to_string(index) + " has no nodes");
  }
  for (size_t i = 0; i < defined_.size(); ++i) {
    if (!defined_[i]) {
      return error_ = InvalidArgument(TreeCtx(index, static_cast<int32_t>(i)) +
                                      ": node id skipped (ids must be dense from 0)");
    }
  }
  // Every child must exist and have exactly one parent, and every node must be
  // reachable from the root: together that rules out cycles and shared nodes.
  const size_t n = tree.nodes.size();
  std::vector<uint8_t> has_parent(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const Node& node = tree.nodes[i];
    if (node.kind == Node::Kind::kLeaf) continue;
    for (int32_t child : {node.left, node.right}) {
      if (static_cast<size_t>(child) >= n) {
        return error_ = InvalidArgument(TreeCtx(index, static_cast<int32_t>(i)) + ": child " +
                                        std::to_string(child) + " is not defined");
      }
      if (child == 0) {
        return error_ = InvalidArgument(TreeCtx(index, static_cast<int32_t>(i)) +
                                        ": the root cannot be a child (cycle)");
      }
      if (has_parent[static_cast<size_t>(child)]++) {
        return error_ = InvalidArgument(TreeCtx(index, child) + ": node has two parents");
      }
    }
  }
  // Depth-first walk from the root computes depths and reachability. Nodes the
  // root cannot reach (XGBoost keeps pruned nodes in its arrays) are dropped
  // and the rest renumbered in preorder.
  std::vector<int32_t> order;
  order.reserve(n);
  std::vector<std::pair<int32_t, int32_t>> stack = {{0, 0}};
  int32_t depth = 0;
  while (!stack.empty()) {
    auto [id, d] = stack.back();
    stack.pop_back();
    order.push_back(id);
    depth = std::max(depth, d);
    const Node& node = tree.nodes[static_cast<size_t>(id)];
    if (node.kind != Node::Kind::kLeaf) {
      stack.push_back({node.right, d + 1});
      stack.push_back({node.left, d + 1});
    }
  }
  if (order.size() != n) {
    std::vector<int32_t> new_id(n, -1);
    for (size_t i = 0; i < order.size(); ++i)
      new_id[static_cast<size_t>(order[i])] = static_cast<int32_t>(i);
    std::vector<Node> nodes;
    nodes.reserve(order.size());
    for (int32_t id : order) {
      Node node = std::move(tree.nodes[static_cast<size_t>(id)]);
      if (node.kind != Node::Kind::kLeaf) {
        node.left = new_id[static_cast<size_t>(node.left)];
        node.right = new_id[static_cast<size_t>(node.right)];
      }
      nodes.push_back(std::move(node));
    }
    total_nodes_ -= static_cast<int64_t>(n - nodes.size());
    tree.nodes = std::move(nodes);
  }
  tree.depth = depth;
  return OkStatus();
}

Status ModelBuilder::SetLinear(std::vector<double> weights, std::vector<double> bias) {
  KEEL_RETURN_IF_ERROR(error_);
  if (!model_.linear.empty()) return error_ = InvalidArgument("linear part set twice");
  const size_t groups = static_cast<size_t>(model_.num_groups);
  if (weights.size() != static_cast<size_t>(model_.num_features) * groups) {
    return error_ =
               InvalidArgument("linear weights have " + std::to_string(weights.size()) +
                               " values, expected num_features * num_groups = " +
                               std::to_string(static_cast<size_t>(model_.num_features) * groups));
  }
  if (bias.size() != groups) {
    return error_ = InvalidArgument("linear bias has " + std::to_string(bias.size()) +
                                    " values, expected " + std::to_string(groups));
  }
  for (double w : weights) {
    if (!std::isfinite(w)) return error_ = InvalidArgument("linear weight is not finite");
  }
  for (double b : bias) {
    if (!std::isfinite(b)) return error_ = InvalidArgument("linear bias is not finite");
  }
  model_.linear.push_back(Linear{std::move(weights), std::move(bias)});
  return OkStatus();
}

Result<Model> ModelBuilder::Finish() && {
  KEEL_RETURN_IF_ERROR(error_);
  if (in_tree_) return InvalidArgument("model ends inside an open tree");
  if (model_.trees.empty() && model_.linear.empty()) {
    return InvalidArgument("the model has no trees and no linear part");
  }
  return std::move(model_);
}

}  // namespace keel::model
