// XGBoost model importers: JSON (xgboost >= 1.0 `save_model("*.json")`) and
// UBJSON (xgboost >= 1.6 `*.ubj`). Both encodings are parsed into one
// document tree (xgboost_doc.h) and read by one walker, ImportDocument, which
// talks only to a ModelBuilder.
//
// What is read (XGBoost's doc/model.schema):
//   learner.learner_model_param  num_feature, num_class, num_target, base_score
//   learner.objective.name       the transform, the task, and how base_score
//                                maps to margin space
//   learner.gradient_booster     gbtree | dart (weight_drop) | gblinear
//   learner.feature_names / feature_types (optional)
// Per tree: left_children, right_children, split_indices, split_conditions,
// default_left, and for categorical splits split_type, categories,
// categories_nodes, categories_segments, categories_sizes. A node whose left
// child is -1 is a leaf whose value is split_conditions[node].
//
// XGBoost prediction semantics (libxgboost 1.7.4, checked by
// xgboost_parity_test.cc): numerical splits send x < threshold left, with
// thresholds, leaf values, dart weights and linear weights all float32; NaN
// follows default_left. A categorical split sends the categories in its set
// right; NaN follows default_left; every other value goes left: categories
// not in the set, negative values (even -0.5), values >= 2^24 and categories
// beyond the node's bitset. Such splits are given to the builder as
// InvalidCategory::kDefault, the IR's XGBoost rule. Margins are summed in
// float32, starting from base_score mapped to margin space in float32.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "keel/model/builder.h"
#include "keel/model/formats.h"
#include "src/model/xgboost_doc.h"

namespace keel::model {
namespace {

using internal::DocValue;
using internal::RoundToFloat;
using Kind = DocValue::Kind;

// How XGBoost maps the stored base_score (in output space) to margin space.
enum class BaseScoreMap : uint8_t { kAsIs, kLogit, kLog };

struct Objective {
  std::string_view name;
  Task task;
  Transform transform;
  BaseScoreMap base;
};

constexpr Objective kObjectives[] = {
    {"binary:logistic", Task::kBinary, Transform::kSigmoid, BaseScoreMap::kLogit},
    {"binary:logitraw", Task::kBinary, Transform::kIdentity, BaseScoreMap::kAsIs},
    {"binary:hinge", Task::kBinary, Transform::kHinge, BaseScoreMap::kAsIs},
    {"reg:logistic", Task::kRegression, Transform::kSigmoid, BaseScoreMap::kLogit},
    {"multi:softprob", Task::kMulticlass, Transform::kSoftmax, BaseScoreMap::kAsIs},
    {"multi:softmax", Task::kMulticlass, Transform::kSoftmaxArgmax, BaseScoreMap::kAsIs},
    {"reg:squarederror", Task::kRegression, Transform::kIdentity, BaseScoreMap::kAsIs},
    {"reg:linear", Task::kRegression, Transform::kIdentity, BaseScoreMap::kAsIs},
    {"reg:squaredlogerror", Task::kRegression, Transform::kIdentity, BaseScoreMap::kAsIs},
    {"reg:pseudohubererror", Task::kRegression, Transform::kIdentity, BaseScoreMap::kAsIs},
    {"reg:absoluteerror", Task::kRegression, Transform::kIdentity, BaseScoreMap::kAsIs},
    {"count:poisson", Task::kRegression, Transform::kExp, BaseScoreMap::kLog},
    {"reg:gamma", Task::kRegression, Transform::kExp, BaseScoreMap::kLog},
    {"reg:tweedie", Task::kRegression, Transform::kExp, BaseScoreMap::kLog},
    {"survival:cox", Task::kRegression, Transform::kExp, BaseScoreMap::kLog},
    {"survival:aft", Task::kRegression, Transform::kExp, BaseScoreMap::kLog},
    {"rank:pairwise", Task::kRanking, Transform::kIdentity, BaseScoreMap::kAsIs},
    {"rank:ndcg", Task::kRanking, Transform::kIdentity, BaseScoreMap::kAsIs},
    {"rank:map", Task::kRanking, Transform::kIdentity, BaseScoreMap::kAsIs},
};

// ---------------------------------------------------------------------------
// Typed access to the document; every error names the field.

std::string Num(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

Status FieldError(std::string_view path, std::string_view what) {
  return InvalidArgument(std::string(path) + ": " + std::string(what));
}

std::string Index(std::string_view path, size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

Status ExpectObject(const DocValue& v, std::string_view path) {
  if (v.kind == Kind::kObject) return OkStatus();
  return FieldError(path, std::string("expected an object, found ") + v.KindName());
}

Result<const DocValue*> Member(const DocValue& obj, std::string_view path, std::string_view key) {
  KEEL_RETURN_IF_ERROR(ExpectObject(obj, path));
  const DocValue* v = obj.Find(key);
  if (v == nullptr) return FieldError(std::string(path) + "." + std::string(key), "missing");
  return v;
}

// True when v is an integer in [lo, hi] (and so safe to cast to int64_t).
bool IntegerIn(double v, int64_t lo, int64_t hi) {
  return v >= static_cast<double>(lo) && v <= static_cast<double>(hi) && v < 0x1p63 &&
         v == std::floor(v);
}

// An integer parameter, written as a number or (as XGBoost writes its
// *_param objects) as a decimal string.
Result<int64_t> ReadInt(const DocValue& v, std::string_view path, int64_t lo, int64_t hi) {
  const std::string range =
      " out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (v.kind == Kind::kNumber) {
    if (!IntegerIn(v.number, lo, hi)) return FieldError(path, Num(v.number) + range);
    return static_cast<int64_t>(v.number);
  }
  if (v.kind == Kind::kString) {
    int64_t i = 0;
    const char* first = v.string.data();
    const char* last = first + v.string.size();
    auto [p, ec] = std::from_chars(first, last, i);
    if (ec != std::errc() || p != last || v.string.empty()) {
      return FieldError(path, "expected an integer, found \"" + v.string.substr(0, 40) + "\"");
    }
    if (i < lo || i > hi) return FieldError(path, v.string + range);
    return i;
  }
  return FieldError(path, std::string("expected an integer, found ") + v.KindName());
}

Result<int64_t> ReadIntMember(const DocValue& obj, std::string_view path, std::string_view key,
                              int64_t lo, int64_t hi, std::optional<int64_t> fallback) {
  KEEL_RETURN_IF_ERROR(ExpectObject(obj, path));
  const DocValue* v = obj.Find(key);
  if (v == nullptr) {
    if (fallback) return *fallback;
    return FieldError(std::string(path) + "." + std::string(key), "missing");
  }
  return ReadInt(*v, std::string(path) + "." + std::string(key), lo, hi);
}

// A float32 parameter: a number, or a string such as "5E-1" (XGBoost 1.x) or
// "[5E-1]" (XGBoost 2.x, one value per target).
Result<float> ReadFloat(const DocValue& v, std::string_view path) {
  if (v.kind == Kind::kNumber) return RoundToFloat(v.number);
  if (v.kind != Kind::kString) {
    return FieldError(path, std::string("expected a number, found ") + v.KindName());
  }
  std::string_view s = v.string;
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  float f = 0.0f;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), f);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) {
    return FieldError(path, "expected a number, found \"" + v.string.substr(0, 40) + "\"");
  }
  return f;
}

Result<std::string> ReadString(const DocValue& v, std::string_view path) {
  if (v.kind != Kind::kString) {
    return FieldError(path, std::string("expected a string, found ") + v.KindName());
  }
  return v.string;
}

// An array of numbers (an empty array is fine).
Result<const std::vector<double>*> ReadNumbers(const DocValue& v, std::string_view path) {
  static const std::vector<double> kEmpty;
  if (v.kind == Kind::kNumbers) return &v.numbers;
  if (v.kind == Kind::kArray) {
    if (v.items.empty()) return &kEmpty;
    // A mixed array: name its first element that is not number-like.
    for (size_t i = 0; i < v.items.size(); ++i) {
      const Kind k = v.items[i].kind;
      if (k != Kind::kNumber && k != Kind::kBool && k != Kind::kNull) {
        return FieldError(Index(path, i),
                          std::string("expected a number, found ") + v.items[i].KindName());
      }
    }
    return FieldError(path, "expected an array of numbers");
  }
  return FieldError(path, std::string("expected an array of numbers, found ") + v.KindName());
}

// An array of values of any kind; an empty or all-numeric array has no items.
Result<const DocValue*> ReadArray(const DocValue& v, std::string_view path) {
  if (!v.is_array()) {
    return FieldError(path, std::string("expected an array, found ") + v.KindName());
  }
  return &v;
}

Result<std::vector<std::string>> ReadStrings(const DocValue& v, std::string_view path) {
  if (v.kind == Kind::kNumbers) {
    return FieldError(Index(path, 0), "expected a string, found a number");
  }
  KEEL_RETURN_IF_ERROR(ReadArray(v, path).status());
  std::vector<std::string> out;
  out.reserve(v.items.size());
  for (size_t i = 0; i < v.items.size(); ++i) {
    KEEL_ASSIGN_OR_RETURN(std::string s, ReadString(v.items[i], Index(path, i)));
    out.push_back(std::move(s));
  }
  return out;
}

// ---------------------------------------------------------------------------
// The model.

struct Header {
  int32_t num_features = 0;
  int32_t num_groups = 1;
  const Objective* objective = nullptr;
  double base_margin = 0.0;
};

Result<Header> ReadHeader(const DocValue& learner, const BuilderLimits& limits) {
  Header h;
  constexpr std::string_view kParam = "learner.learner_model_param";
  KEEL_ASSIGN_OR_RETURN(const DocValue* param, Member(learner, "learner", "learner_model_param"));
  {
    KEEL_ASSIGN_OR_RETURN(int64_t nf, ReadIntMember(*param, kParam, "num_feature", 1,
                                                    limits.max_features, std::nullopt));
    h.num_features = static_cast<int32_t>(nf);
  }
  KEEL_ASSIGN_OR_RETURN(const int64_t num_class,
                        ReadIntMember(*param, kParam, "num_class", 0, limits.max_groups, 0));
  {
    KEEL_ASSIGN_OR_RETURN(
        int64_t num_target,
        ReadIntMember(*param, kParam, "num_target", 0, std::numeric_limits<int32_t>::max(), 1));
    if (num_target > 1) {
      return FieldError(
          std::string(kParam) + ".num_target",
          "multi-output models (num_target=" + std::to_string(num_target) + ") are not supported");
    }
  }
  h.num_groups = static_cast<int32_t>(std::max<int64_t>(num_class, 1));

  KEEL_ASSIGN_OR_RETURN(const DocValue* objective, Member(learner, "learner", "objective"));
  KEEL_ASSIGN_OR_RETURN(const DocValue* name_value,
                        Member(*objective, "learner.objective", "name"));
  KEEL_ASSIGN_OR_RETURN(std::string name, ReadString(*name_value, "learner.objective.name"));
  for (const Objective& o : kObjectives) {
    if (o.name == name) h.objective = &o;
  }
  if (h.objective == nullptr) {
    std::string known;
    for (const Objective& o : kObjectives) {
      known += (known.empty() ? "" : ", ") + std::string(o.name);
    }
    return FieldError("learner.objective.name", "unsupported objective '" + name.substr(0, 64) +
                                                    "' (supported: " + known + ")");
  }
  const bool multi = h.objective->task == Task::kMulticlass;
  if (multi && num_class < 2) {
    return FieldError(std::string(kParam) + ".num_class",
                      name + " needs num_class >= 2, found " + std::to_string(num_class));
  }
  if (!multi && num_class > 1) {
    return FieldError(
        std::string(kParam) + ".num_class",
        name + " is not a multiclass objective but num_class is " + std::to_string(num_class));
  }

  // XGBoost converts base_score to margin space in float32 arithmetic.
  const std::string base_path = std::string(kParam) + ".base_score";
  float base = 0.5f;
  if (const DocValue* b = param->Find("base_score"); b != nullptr) {
    KEEL_ASSIGN_OR_RETURN(base, ReadFloat(*b, base_path));
  }
  if (!std::isfinite(base)) return FieldError(base_path, "not a finite number");
  float margin = base;
  switch (h.objective->base) {
    case BaseScoreMap::kAsIs:
      break;
    case BaseScoreMap::kLogit:
      if (!(base > 0.0f && base < 1.0f)) {
        return FieldError(base_path, Num(base) + " must be in (0, 1) for " + name);
      }
      margin = -std::log(1.0f / base - 1.0f);
      break;
    case BaseScoreMap::kLog:
      if (!(base > 0.0f)) return FieldError(base_path, Num(base) + " must be > 0 for " + name);
      margin = std::log(base);
      break;
  }
  if (!std::isfinite(margin)) {
    return FieldError(base_path, Num(base) + " has no finite margin for " + name);
  }
  h.base_margin = margin;
  return h;
}

// The categorical sets of one tree: for each node, [begin, end) into
// `categories`, or begin == -1 for numerical nodes.
struct CategorySets {
  const std::vector<double>* categories = nullptr;
  std::vector<std::pair<int64_t, int64_t>> range;  // per node
};

Result<CategorySets> ReadCategorySets(const DocValue& tree, const std::string& path, size_t n) {
  CategorySets sets;
  sets.range.assign(n, {-1, -1});
  const DocValue* split_type = tree.Find("split_type");
  const std::vector<double>* types = nullptr;
  if (split_type != nullptr) {
    KEEL_ASSIGN_OR_RETURN(types, ReadNumbers(*split_type, path + ".split_type"));
    if (types->size() != n) {
      return FieldError(path + ".split_type",
                        "has " + std::to_string(types->size()) +
                            " entries, expected num_nodes = " + std::to_string(n));
    }
    for (size_t i = 0; i < n; ++i) {
      if ((*types)[i] != 0.0 && (*types)[i] != 1.0) {
        return FieldError(Index(path + ".split_type", i),
                          "expected 0 (numerical) or 1 (categorical), found " + Num((*types)[i]));
      }
    }
  }
  static constexpr std::string_view kFields[] = {"categories", "categories_nodes",
                                                 "categories_segments", "categories_sizes"};
  const std::vector<double>* arrays[4] = {};
  int present = 0;
  for (int k = 0; k < 4; ++k) {
    if (const DocValue* v = tree.Find(kFields[k]); v != nullptr) {
      KEEL_ASSIGN_OR_RETURN(arrays[k], ReadNumbers(*v, path + "." + std::string(kFields[k])));
      ++present;
    }
  }
  if (present != 0 && present != 4) {
    for (int k = 0; k < 4; ++k) {
      if (arrays[k] == nullptr) {
        return FieldError(path + "." + std::string(kFields[k]),
                          "missing (the other categories_* fields are present)");
      }
    }
  }
  if (present == 4) {
    const auto& cats = *arrays[0];
    const auto& nodes = *arrays[1];
    const auto& segments = *arrays[2];
    const auto& sizes = *arrays[3];
    if (segments.size() != nodes.size() || sizes.size() != nodes.size()) {
      return FieldError(path + ".categories_nodes",
                        "categories_nodes, categories_segments and categories_sizes have " +
                            std::to_string(nodes.size()) + ", " + std::to_string(segments.size()) +
                            " and " + std::to_string(sizes.size()) + " entries");
    }
    const int64_t num_cats = static_cast<int64_t>(cats.size());
    for (size_t k = 0; k < nodes.size(); ++k) {
      if (!IntegerIn(nodes[k], 0, static_cast<int64_t>(n) - 1)) {
        return FieldError(Index(path + ".categories_nodes", k),
                          "node " + Num(nodes[k]) + " out of range [0, " + std::to_string(n) + ")");
      }
      const size_t node = static_cast<size_t>(nodes[k]);
      if (sets.range[node].first >= 0) {
        return FieldError(Index(path + ".categories_nodes", k),
                          "node " + std::to_string(node) + " listed twice");
      }
      if (!IntegerIn(segments[k], 0, num_cats)) {
        return FieldError(Index(path + ".categories_segments", k),
                          "segment start " + Num(segments[k]) + " out of range [0, " +
                              std::to_string(num_cats) + "]");
      }
      if (!IntegerIn(sizes[k], 1, num_cats)) {
        return FieldError(
            Index(path + ".categories_sizes", k),
            "size " + Num(sizes[k]) + " out of range [1, " + std::to_string(num_cats) + "]");
      }
      const int64_t begin = static_cast<int64_t>(segments[k]);
      const int64_t end = begin + static_cast<int64_t>(sizes[k]);
      if (end > num_cats) {
        return FieldError(Index(path + ".categories_sizes", k),
                          "segment [" + std::to_string(begin) + ", " + std::to_string(end) +
                              ") runs past the " + std::to_string(num_cats) + " categories");
      }
      sets.range[node] = {begin, end};
    }
    sets.categories = &cats;
  }
  for (size_t i = 0; i < n; ++i) {
    const bool listed = sets.range[i].first >= 0;
    if (types != nullptr && ((*types)[i] == 1.0) != listed) {
      return FieldError(Index(path + ".split_type", i),
                        listed ? "node has categories but split_type 0 (numerical)"
                               : "categorical split (split_type 1) without categories");
    }
  }
  return sets;
}

// Reads trees[t] and feeds it to the builder. Node ids are the array indices.
Status AddTree(ModelBuilder& b, const DocValue& tree, size_t t, int32_t group, double weight,
               const Header& h, const BuilderLimits& limits) {
  const std::string path = "trees[" + std::to_string(t) + "]";
  KEEL_RETURN_IF_ERROR(ExpectObject(tree, path));
  static constexpr std::string_view kArrays[] = {"left_children", "right_children", "split_indices",
                                                 "split_conditions", "default_left"};
  const std::vector<double>* a[5] = {};
  for (int k = 0; k < 5; ++k) {
    KEEL_ASSIGN_OR_RETURN(const DocValue* v, Member(tree, path, kArrays[k]));
    KEEL_ASSIGN_OR_RETURN(a[k], ReadNumbers(*v, path + "." + std::string(kArrays[k])));
  }
  const auto& left = *a[0];
  const auto& right = *a[1];
  const auto& split_index = *a[2];
  const auto& split_cond = *a[3];
  const auto& default_left = *a[4];
  const size_t n = left.size();
  if (const DocValue* param = tree.Find("tree_param"); param != nullptr) {
    const std::string param_path = path + ".tree_param";
    KEEL_ASSIGN_OR_RETURN(int64_t num_nodes,
                          ReadIntMember(*param, param_path, "num_nodes", 0,
                                        std::numeric_limits<int32_t>::max(), std::nullopt));
    if (static_cast<size_t>(num_nodes) != n) {
      return FieldError(
          param_path + ".num_nodes",
          std::to_string(num_nodes) + " but left_children has " + std::to_string(n) + " entries");
    }
    KEEL_ASSIGN_OR_RETURN(int64_t leaf_vector,
                          ReadIntMember(*param, param_path, "size_leaf_vector", 0,
                                        std::numeric_limits<int32_t>::max(), 0));
    if (leaf_vector > 1) {
      return FieldError(param_path + ".size_leaf_vector",
                        "vector leaves (multi-output trees) are not supported");
    }
  }
  if (n == 0) return FieldError(path + ".left_children", "the tree has no nodes");
  if (static_cast<int64_t>(n) > limits.max_nodes_per_tree) {
    return ResourceExhausted(path + ".left_children: " + std::to_string(n) +
                             " nodes, above the limit of " +
                             std::to_string(limits.max_nodes_per_tree));
  }
  for (int k = 1; k < 5; ++k) {
    if (a[k]->size() != n) {
      return FieldError(path + "." + std::string(kArrays[k]),
                        "has " + std::to_string(a[k]->size()) +
                            " entries, expected num_nodes = " + std::to_string(n));
    }
  }
  KEEL_ASSIGN_OR_RETURN(CategorySets cats, ReadCategorySets(tree, path, n));

  KEEL_RETURN_IF_ERROR(b.BeginTree(group, weight));
  const int64_t last = static_cast<int64_t>(n) - 1;
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = static_cast<int32_t>(i);
    if (left[i] == -1.0) {
      // Leaf values are float32 in XGBoost.
      KEEL_RETURN_IF_ERROR(b.AddLeaf(id, RoundToFloat(split_cond[i])));
      continue;
    }
    if (!IntegerIn(left[i], 0, last)) {
      return FieldError(Index(path + ".left_children", i),
                        "child " + Num(left[i]) + " out of range [0, " + std::to_string(n) +
                            ") (-1 marks a leaf)");
    }
    if (!IntegerIn(right[i], 0, last)) {
      return FieldError(Index(path + ".right_children", i),
                        "child " + Num(right[i]) + " out of range [0, " + std::to_string(n) + ")");
    }
    const int32_t l = static_cast<int32_t>(left[i]);
    const int32_t r = static_cast<int32_t>(right[i]);
    if (l == id || r == id) {
      return FieldError(Index(path + (l == id ? ".left_children" : ".right_children"), i),
                        "node " + std::to_string(i) + " is its own child");
    }
    if (l == r) {
      return FieldError(Index(path + ".right_children", i),
                        "both children are node " + std::to_string(l));
    }
    if (!IntegerIn(split_index[i], 0, h.num_features - 1)) {
      return FieldError(Index(path + ".split_indices", i),
                        "feature " + Num(split_index[i]) + " out of range [0, " +
                            std::to_string(h.num_features) + ")");
    }
    const uint32_t feature = static_cast<uint32_t>(split_index[i]);
    if (default_left[i] != 0.0 && default_left[i] != 1.0) {
      return FieldError(Index(path + ".default_left", i),
                        "expected 0 or 1, found " + Num(default_left[i]));
    }
    const bool dleft = default_left[i] == 1.0;
    if (const auto [begin, end] = cats.range[i]; begin >= 0) {
      CategoricalSplit split;
      split.feature = feature;
      split.categories.reserve(static_cast<size_t>(end - begin));
      for (int64_t j = begin; j < end; ++j) {
        const double c = (*cats.categories)[static_cast<size_t>(j)];
        if (!IntegerIn(c, 0, limits.max_category)) {
          return FieldError(Index(path + ".categories", static_cast<size_t>(j)),
                            "category " + Num(c) + " out of range [0, " +
                                std::to_string(limits.max_category) + "]");
        }
        split.categories.push_back(static_cast<uint32_t>(c));
      }
      split.categories_go_left = false;
      split.default_left = dleft;
      split.invalid = InvalidCategory::kDefault;
      split.left = l;
      split.right = r;
      KEEL_RETURN_IF_ERROR(b.AddCategoricalSplit(id, std::move(split)));
    } else {
      const float threshold = RoundToFloat(split_cond[i]);
      if (std::isnan(threshold)) {
        return FieldError(Index(path + ".split_conditions", i), "split threshold is NaN");
      }
      KEEL_RETURN_IF_ERROR(b.AddNumericalSplit(id, {.feature = feature,
                                                    .threshold = threshold,
                                                    .cmp = Comparison::kLess,
                                                    .default_left = dleft,
                                                    .missing = MissingRule::kNanToDefault,
                                                    .left = l,
                                                    .right = r}));
    }
  }
  return b.EndTree();
}

// gbtree.model (also dart's gbtree.model); `weights` are dart's weight_drop.
Status AddTrees(ModelBuilder& b, const DocValue& model, std::string_view path, const Header& h,
                const std::vector<double>* weights, const BuilderLimits& limits) {
  KEEL_ASSIGN_OR_RETURN(const DocValue* trees_value, Member(model, path, "trees"));
  const std::string trees_path = std::string(path) + ".trees";
  KEEL_ASSIGN_OR_RETURN(const DocValue* trees, ReadArray(*trees_value, trees_path));
  if (trees->kind == Kind::kNumbers) {
    return FieldError(Index(trees_path, 0), "expected an object, found a number");
  }
  const size_t num_trees = trees->items.size();
  if (static_cast<int64_t>(num_trees) > limits.max_trees) {
    return ResourceExhausted(trees_path + ": " + std::to_string(num_trees) +
                             " trees, above the limit of " + std::to_string(limits.max_trees));
  }
  if (const DocValue* param = model.Find("gbtree_model_param"); param != nullptr) {
    const std::string param_path = std::string(path) + ".gbtree_model_param";
    KEEL_ASSIGN_OR_RETURN(int64_t declared,
                          ReadIntMember(*param, param_path, "num_trees", 0,
                                        std::numeric_limits<int64_t>::max(), std::nullopt));
    if (static_cast<size_t>(declared) != num_trees) {
      return FieldError(param_path + ".num_trees", std::to_string(declared) + " but trees has " +
                                                       std::to_string(num_trees) + " entries");
    }
  }
  KEEL_ASSIGN_OR_RETURN(const DocValue* info_value, Member(model, path, "tree_info"));
  const std::string info_path = std::string(path) + ".tree_info";
  KEEL_ASSIGN_OR_RETURN(const std::vector<double>* info, ReadNumbers(*info_value, info_path));
  if (info->size() != num_trees) {
    return FieldError(info_path, "has " + std::to_string(info->size()) + " entries but there are " +
                                     std::to_string(num_trees) + " trees");
  }
  if (weights != nullptr && weights->size() != num_trees) {
    return FieldError("learner.gradient_booster.weight_drop",
                      "has " + std::to_string(weights->size()) + " entries but there are " +
                          std::to_string(num_trees) + " trees");
  }
  for (size_t t = 0; t < num_trees; ++t) {
    if (!IntegerIn((*info)[t], 0, h.num_groups - 1)) {
      return FieldError(Index(info_path, t), "group " + Num((*info)[t]) + " out of range [0, " +
                                                 std::to_string(h.num_groups) + ")");
    }
    double weight = 1.0;
    if (weights != nullptr) {
      // Dart weights are float32 in XGBoost.
      weight = RoundToFloat((*weights)[t]);
      if (!std::isfinite(weight)) {
        return FieldError(Index("learner.gradient_booster.weight_drop", t), "not a finite number");
      }
    }
    KEEL_RETURN_IF_ERROR(
        AddTree(b, trees->items[t], t, static_cast<int32_t>((*info)[t]), weight, h, limits));
  }
  return OkStatus();
}

// gblinear.model.weights: (num_feature + 1) * num_groups float32 values,
// feature-major, with the biases as the last num_groups entries.
Status AddLinear(ModelBuilder& b, const DocValue& model, std::string_view path, const Header& h) {
  KEEL_ASSIGN_OR_RETURN(const DocValue* w_value, Member(model, path, "weights"));
  const std::string w_path = std::string(path) + ".weights";
  KEEL_ASSIGN_OR_RETURN(const std::vector<double>* w, ReadNumbers(*w_value, w_path));
  const size_t groups = static_cast<size_t>(h.num_groups);
  const size_t expected = (static_cast<size_t>(h.num_features) + 1) * groups;
  if (w->size() != expected) {
    return FieldError(w_path, "has " + std::to_string(w->size()) +
                                  " entries, expected (num_feature + 1) * num_groups = " +
                                  std::to_string(expected));
  }
  const size_t nw = static_cast<size_t>(h.num_features) * groups;
  std::vector<double> weights(nw);
  std::vector<double> bias(groups);
  for (size_t i = 0; i < nw; ++i) weights[i] = RoundToFloat((*w)[i]);
  for (size_t g = 0; g < groups; ++g) bias[g] = RoundToFloat((*w)[nw + g]);
  return b.SetLinear(std::move(weights), std::move(bias));
}

Result<Model> ImportDocument(const DocValue& root, std::string_view format,
                             const BuilderLimits& limits) {
  KEEL_ASSIGN_OR_RETURN(const DocValue* learner, Member(root, "document", "learner"));
  KEEL_ASSIGN_OR_RETURN(Header h, ReadHeader(*learner, limits));

  ModelBuilder b({.num_features = h.num_features,
                  .num_groups = h.num_groups,
                  .task = h.objective->task,
                  .transform = h.objective->transform,
                  .accumulator = Accumulator::kFloat,
                  .source_format = std::string(format),
                  .objective = std::string(h.objective->name)},
                 limits);
  KEEL_RETURN_IF_ERROR(b.SetBaseMargin({h.base_margin}));
  if (const DocValue* names = learner->Find("feature_names"); names != nullptr) {
    KEEL_ASSIGN_OR_RETURN(std::vector<std::string> v, ReadStrings(*names, "learner.feature_names"));
    if (!v.empty()) KEEL_RETURN_IF_ERROR(b.SetFeatureNames(std::move(v)));
  }
  if (const DocValue* types = learner->Find("feature_types"); types != nullptr) {
    KEEL_ASSIGN_OR_RETURN(std::vector<std::string> v, ReadStrings(*types, "learner.feature_types"));
    if (!v.empty()) KEEL_RETURN_IF_ERROR(b.SetFeatureTypes(std::move(v)));
  }

  constexpr std::string_view kBooster = "learner.gradient_booster";
  KEEL_ASSIGN_OR_RETURN(const DocValue* booster, Member(*learner, "learner", "gradient_booster"));
  KEEL_ASSIGN_OR_RETURN(const DocValue* name_value, Member(*booster, kBooster, "name"));
  KEEL_ASSIGN_OR_RETURN(std::string name, ReadString(*name_value, std::string(kBooster) + ".name"));
  if (name == "gbtree") {
    KEEL_ASSIGN_OR_RETURN(const DocValue* model, Member(*booster, kBooster, "model"));
    KEEL_RETURN_IF_ERROR(AddTrees(b, *model, std::string(kBooster) + ".model", h, nullptr, limits));
  } else if (name == "dart") {
    const std::string gbtree_path = std::string(kBooster) + ".gbtree";
    KEEL_ASSIGN_OR_RETURN(const DocValue* gbtree, Member(*booster, kBooster, "gbtree"));
    KEEL_ASSIGN_OR_RETURN(const DocValue* model, Member(*gbtree, gbtree_path, "model"));
    KEEL_ASSIGN_OR_RETURN(const DocValue* w_value, Member(*booster, kBooster, "weight_drop"));
    KEEL_ASSIGN_OR_RETURN(const std::vector<double>* weights,
                          ReadNumbers(*w_value, std::string(kBooster) + ".weight_drop"));
    KEEL_RETURN_IF_ERROR(AddTrees(b, *model, gbtree_path + ".model", h, weights, limits));
  } else if (name == "gblinear") {
    KEEL_ASSIGN_OR_RETURN(const DocValue* model, Member(*booster, kBooster, "model"));
    KEEL_RETURN_IF_ERROR(AddLinear(b, *model, std::string(kBooster) + ".model", h));
  } else {
    return FieldError(
        std::string(kBooster) + ".name",
        "unsupported booster '" + name.substr(0, 64) + "' (supported: gbtree, dart, gblinear)");
  }
  return std::move(b).Finish();
}

Result<Model> Import(Result<DocValue> doc, std::string_view format, const BuilderLimits& limits) {
  if (!doc.ok()) return doc.status().WithContext(format);
  Result<Model> m = ImportDocument(*doc, format, limits);
  if (!m.ok()) return m.status().WithContext(format);
  return m;
}

}  // namespace

Result<Model> ImportXgboostJson(std::string_view bytes, const BuilderLimits& limits) {
  return Import(internal::ParseXgboostJsonDoc(bytes), "xgboost-json", limits);
}

Result<Model> ImportXgboostUbjson(std::string_view bytes, const BuilderLimits& limits) {
  return Import(internal::ParseUbjsonDoc(bytes), "xgboost-ubj", limits);
}

}  // namespace keel::model
