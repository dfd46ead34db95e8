// LightGBM text model importer: the format written by LightGBM's
// GBDT::SaveModelToString (Booster.save_model, model_to_string), versions v2
// to v4. Talks only to a ModelBuilder.
//
// Layout read here:
//   tree                                   first line
//   key=value header lines                 num_class, num_tree_per_iteration,
//                                          max_feature_idx, objective,
//                                          average_output (a bare key),
//                                          feature_names, feature_infos,
//                                          tree_sizes; others are ignored
//   Tree=0 ... Tree=N-1 blocks             key=value lines ending at an empty
//                                          line: num_leaves, num_cat,
//                                          split_feature, threshold,
//                                          decision_type, left_child,
//                                          right_child, leaf_value,
//                                          cat_boundaries, cat_threshold,
//                                          is_linear; others are ignored
//   end of trees, feature importances,     ignored: the tree section ends at
//   parameters, pandas_categorical         the first line after a block that
//                                          is not "Tree="
//
// Prediction semantics kept (LightGBM include/LightGBM/tree.h):
//   - Split i is node i; a negative child c is leaf ~c, which becomes node
//     (num_leaves - 1) + ~c. The root is split 0, or leaf 0 in a 1-leaf tree.
//   - Numerical: x <= threshold goes left (double threshold). decision_type
//     bit 1 is default_left; bits 2-3 the missing type: None (NaN is compared
//     as 0.0), Zero (NaN and |x| <= 1e-35f follow default_left), NaN (NaN
//     follows default_left).
//   - Categorical (bit 0): threshold indexes cat_boundaries; the words
//     cat_threshold[cat_boundaries[i] .. cat_boundaries[i+1]) are a bitset of
//     the categories that go left. NaN, negative values and categories beyond
//     the bitset go right whatever default_left and the missing type say.
//   - Leaf values already include the shrinkage; the init score is in the
//     first trees' leaves, so the base margin is 0. Tree i adds to group
//     i % num_tree_per_iteration. Sums are in double.
//   - average_output (random forest): the score is divided by the number of
//     iterations before the objective's transform, expressed here as a tree
//     weight of 1 / iterations.
//   - The IR's sigmoid has no coefficient: for "binary sigmoid:k" and
//     "multiclassova ... sigmoid:k" every tree weight is multiplied by k, so
//     the margin is k times LightGBM's score and sigmoid(margin) is
//     LightGBM's output.
// Not supported (Unimplemented): linear trees, reg_sqrt ("regression sqrt"),
// cross_entropy_lambda.
//
// Malformed input gives InvalidArgument naming the line, or "Tree=N" and the
// field. Memory is bounded by the input: every array is counted in the text
// before it is allocated and its count must match the field that sizes it.
// A truncated file is refused: every tree block must end with an empty line,
// and when the header has tree_sizes (LightGBM always writes it) the file
// must hold exactly that many trees, each but the last of exactly its listed
// size (LightGBM locates trees by these sizes and never checks the last one).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "keel/model/builder.h"
#include "keel/model/formats.h"

namespace keel::model {
namespace {

constexpr size_t kMaxShown = 40;

// `s` for an error message: at most kMaxShown characters, non-printable
// bytes as '?'.
std::string Shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, kMaxShown)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (s.size() > kMaxShown) out += "...";
  return out;
}

std::string Str(int64_t v) { return std::to_string(v); }

// "[i]", for array elements in messages.
std::string Index(size_t i) { return "[" + std::to_string(i) + "]"; }

std::string Num(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

// ---------------------------------------------------------------------------
// Lines.

struct Line {
  std::string_view text;    // without the '\n' and a trailing '\r'
  size_t offset = 0;        // byte offset of the line's first character
  size_t number = 0;        // 1-based
  bool terminated = false;  // ended by '\n' (not by the end of the input)
};

class LineReader {
 public:
  explicit LineReader(std::string_view bytes) : bytes_(bytes) {}

  // The next line; false at the end of the input.
  bool Next(Line* line) {
    if (pos_ >= bytes_.size()) return false;
    const size_t end = bytes_.find('\n', pos_);
    line->offset = pos_;
    line->number = ++number_;
    if (end == std::string_view::npos) {
      line->text = bytes_.substr(pos_);
      line->terminated = false;
      pos_ = bytes_.size();
    } else {
      line->text = bytes_.substr(pos_, end - pos_);
      line->terminated = true;
      pos_ = end + 1;
    }
    if (!line->text.empty() && line->text.back() == '\r') line->text.remove_suffix(1);
    return true;
  }

  struct Mark {
    size_t pos;
    size_t number;
  };
  Mark Save() const { return {pos_, number_}; }
  void Restore(Mark m) {
    pos_ = m.pos;
    number_ = m.number;
  }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
  size_t number_ = 0;
};

Status LineError(const Line& line, const std::string& what) {
  return InvalidArgument("line " + Str(static_cast<int64_t>(line.number)) + ": " + what);
}

// ---------------------------------------------------------------------------
// Numbers and arrays.

bool ParseInt(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool ParseDouble(std::string_view s, double* out) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out, std::chars_format::general);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

// Calls fn(token) for each space-separated token of `s`; stops early when fn
// returns false.
template <typename Fn>
void ForEachToken(std::string_view s, Fn fn) {
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && IsSpace(s[i])) ++i;
    if (i == s.size()) break;
    size_t j = i;
    while (j < s.size() && !IsSpace(s[j])) ++j;
    if (!fn(s.substr(i, j - i))) return;
    i = j;
  }
}

size_t CountTokens(std::string_view s) {
  size_t n = 0;
  ForEachToken(s, [&](std::string_view) {
    ++n;
    return true;
  });
  return n;
}

std::vector<std::string> SplitTokens(std::string_view s) {
  std::vector<std::string> out;
  out.reserve(CountTokens(s));
  ForEachToken(s, [&](std::string_view t) {
    out.emplace_back(t);
    return true;
  });
  return out;
}

// ---------------------------------------------------------------------------
// The header.

struct HeaderField {
  std::string_view value;
  size_t line = 0;  // 0: absent
  bool present() const { return line != 0; }
};

struct Header {
  HeaderField num_class, num_tree_per_iteration, max_feature_idx, objective, average_output,
      feature_names, feature_infos, tree_sizes;
  size_t first_line = 0;  // the "tree" line
};

HeaderField* HeaderSlot(Header& h, std::string_view key) {
  if (key == "num_class") return &h.num_class;
  if (key == "num_tree_per_iteration") return &h.num_tree_per_iteration;
  if (key == "max_feature_idx") return &h.max_feature_idx;
  if (key == "objective") return &h.objective;
  if (key == "average_output") return &h.average_output;
  if (key == "feature_names") return &h.feature_names;
  if (key == "feature_infos") return &h.feature_infos;
  if (key == "tree_sizes") return &h.tree_sizes;
  return nullptr;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Reads from the "tree" line up to the first "Tree=" line, and leaves the
// reader just before that line.
Status ReadHeader(LineReader& r, Header* h) {
  Line line;
  bool seen_tree = false;
  for (;;) {
    const LineReader::Mark mark = r.Save();
    if (!r.Next(&line)) {
      if (!seen_tree) return InvalidArgument("empty input: not a LightGBM text model");
      return InvalidArgument("the model has no trees (no \"Tree=0\" line after the header)");
    }
    if (!seen_tree) {
      if (line.text.empty()) continue;
      if (line.text != "tree") {
        return LineError(line,
                         "expected \"tree\" (the first line of a LightGBM text model), found \"" +
                             Shown(line.text) + "\"");
      }
      seen_tree = true;
      h->first_line = line.number;
      continue;
    }
    if (StartsWith(line.text, "Tree=")) {
      r.Restore(mark);
      return OkStatus();
    }
    if (line.text.empty()) continue;
    const size_t eq = line.text.find('=');
    const std::string_view key = line.text.substr(0, eq);
    HeaderField* slot = HeaderSlot(*h, key);
    if (slot == nullptr) continue;
    if (slot->present()) {
      return LineError(line, "\"" + std::string(key) + "\" appears twice (first on line " +
                                 Str(static_cast<int64_t>(slot->line)) + ")");
    }
    slot->value = eq == std::string_view::npos ? std::string_view() : line.text.substr(eq + 1);
    slot->line = line.number;
  }
}

Result<int64_t> HeaderInt(const HeaderField& f, std::string_view name, int64_t lo, int64_t hi) {
  int64_t v = 0;
  if (!ParseInt(f.value, &v)) {
    return InvalidArgument("line " + Str(static_cast<int64_t>(f.line)) + ": " + std::string(name) +
                           " \"" + Shown(f.value) + "\" is not an integer");
  }
  if (v < lo || v > hi) {
    return InvalidArgument("line " + Str(static_cast<int64_t>(f.line)) + ": " + std::string(name) +
                           " " + Str(v) + " out of range [" + Str(lo) + ", " + Str(hi) + "]");
  }
  return v;
}

// ---------------------------------------------------------------------------
// Objectives.

struct ObjectiveInfo {
  Task task = Task::kRegression;
  Transform transform = Transform::kIdentity;
  double sigmoid = 1.0;    // multiplies every tree weight (see the file comment)
  bool per_class = false;  // one tree per class per iteration
  bool custom = false;     // no objective: raw scores, any number of outputs
};

Result<ObjectiveInfo> MapObjective(const HeaderField& f, int64_t num_class) {
  const std::string where =
      "line " + Str(static_cast<int64_t>(f.line)) + ": objective \"" + Shown(f.value) + "\"";
  std::vector<std::string> tokens = SplitTokens(f.value);
  ObjectiveInfo info;
  if (!f.present() || tokens.empty() || tokens[0] == "custom") {
    // No objective (trained with a custom one): raw scores.
    info.task = num_class > 1 ? Task::kMulticlass : Task::kRegression;
    info.custom = true;
    return info;
  }
  const std::string& name = tokens[0];
  bool sqrt = false;
  double sigmoid = std::numeric_limits<double>::quiet_NaN();
  int64_t param_classes = -1;
  for (size_t i = 1; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (t == "sqrt") {
      sqrt = true;
    } else if (StartsWith(t, "sigmoid:")) {
      if (!ParseDouble(std::string_view(t).substr(8), &sigmoid)) {
        return InvalidArgument(where + ": \"" + Shown(t) + "\" is not a number");
      }
    } else if (StartsWith(t, "num_class:")) {
      if (!ParseInt(std::string_view(t).substr(10), &param_classes)) {
        return InvalidArgument(where + ": \"" + Shown(t) + "\" is not an integer");
      }
    }
  }
  auto need_sigmoid = [&]() -> Status {
    if (!(sigmoid > 0.0) || !std::isfinite(sigmoid)) {
      return InvalidArgument(where + ": needs sigmoid:<k> with k > 0");
    }
    info.sigmoid = sigmoid;
    return OkStatus();
  };
  auto need_classes = [&]() -> Status {
    if (param_classes != num_class || num_class < 2) {
      return InvalidArgument(where + ": num_class:" + Str(param_classes) +
                             " does not match num_class=" + Str(num_class) +
                             " (at least 2 classes)");
    }
    return OkStatus();
  };
  if (name == "regression" || name == "regression_l1" || name == "quantile" || name == "fair" ||
      name == "mape") {
    if (sqrt) {
      return Unimplemented(where +
                           ": reg_sqrt squares the output with its sign, which keel "
                           "cannot express");
    }
  } else if (name == "huber") {
    // LightGBM's huber ignores reg_sqrt.
  } else if (name == "poisson" || name == "gamma" || name == "tweedie") {
    info.transform = Transform::kExp;  // these ignore reg_sqrt in ConvertOutput
  } else if (name == "binary") {
    KEEL_RETURN_IF_ERROR(need_sigmoid());
    info.task = Task::kBinary;
    info.transform = Transform::kSigmoid;
  } else if (name == "cross_entropy") {
    info.transform = Transform::kSigmoid;
  } else if (name == "cross_entropy_lambda") {
    return Unimplemented(where + ": the output log(1 + exp(score)) cannot be expressed in keel");
  } else if (name == "multiclass") {
    KEEL_RETURN_IF_ERROR(need_classes());
    info.task = Task::kMulticlass;
    info.transform = Transform::kSoftmax;
    info.per_class = true;
  } else if (name == "multiclassova") {
    KEEL_RETURN_IF_ERROR(need_classes());
    KEEL_RETURN_IF_ERROR(need_sigmoid());
    info.task = Task::kMulticlass;
    info.transform = Transform::kSigmoid;
    info.per_class = true;
  } else if (name == "lambdarank" || name == "rank_xendcg") {
    info.task = Task::kRanking;
  } else {
    return InvalidArgument(where + ": unknown objective");
  }
  return info;
}

// ---------------------------------------------------------------------------
// Tree blocks.

enum TreeKey : int {
  kNumLeaves,
  kNumCat,
  kSplitFeature,
  kThreshold,
  kDecisionType,
  kLeftChild,
  kRightChild,
  kLeafValue,
  kCatBoundaries,
  kCatThreshold,
  kIsLinear,
  kNumTreeKeys,
};

constexpr std::string_view kTreeKeyNames[kNumTreeKeys] = {
    "num_leaves",  "num_cat",    "split_feature",  "threshold",     "decision_type", "left_child",
    "right_child", "leaf_value", "cat_boundaries", "cat_threshold", "is_linear"};

struct TreeBlock {
  int64_t index = 0;
  size_t offset = 0;  // of the "Tree=" line
  size_t line = 0;    // of the "Tree=" line
  std::string_view value[kNumTreeKeys];
  size_t value_line[kNumTreeKeys] = {};  // 0: absent
};

// Skips empty lines; false at the end of the input or when the next line is
// not a "Tree=" line (the reader is left before that line).
bool AtTree(LineReader& r) {
  Line line;
  for (;;) {
    const LineReader::Mark mark = r.Save();
    if (!r.Next(&line)) return false;
    if (line.text.empty()) continue;
    r.Restore(mark);
    return StartsWith(line.text, "Tree=");
  }
}

// Reads the block "Tree=<index>" and its key=value lines up to the empty line
// that ends it.
Status ReadBlock(LineReader& r, int64_t index, TreeBlock* b) {
  *b = TreeBlock();
  Line line;
  if (!r.Next(&line)) return InvalidArgument("expected \"Tree=" + Str(index) + "\"");
  int64_t found = -1;
  if (!ParseInt(line.text.substr(5), &found) || found != index) {
    return LineError(line,
                     "expected \"Tree=" + Str(index) + "\", found \"" + Shown(line.text) + "\"");
  }
  b->index = index;
  b->offset = line.offset;
  b->line = line.number;
  auto tree = [index] { return "Tree=" + Str(index); };
  for (;;) {
    if (!r.Next(&line) || (!line.terminated && line.text.empty())) {
      return InvalidArgument(tree() + ": the file ends inside the tree (line " +
                             Str(static_cast<int64_t>(b->line)) + " starts it): truncated file?");
    }
    if (line.text.empty()) return OkStatus();
    if (!line.terminated) {
      return InvalidArgument(tree() + ": the file ends inside line " +
                             Str(static_cast<int64_t>(line.number)) + " \"" + Shown(line.text) +
                             "\": truncated file?");
    }
    const size_t eq = line.text.find('=');
    if (eq == std::string_view::npos || StartsWith(line.text, "Tree=")) {
      return LineError(line, tree() +
                                 ": expected key=value or an empty line ending the tree, found \"" +
                                 Shown(line.text) + "\"");
    }
    const std::string_view key = line.text.substr(0, eq);
    for (int k = 0; k < kNumTreeKeys; ++k) {
      if (key != kTreeKeyNames[k]) continue;
      if (b->value_line[k] != 0) {
        return LineError(line, tree() + ": \"" + std::string(key) + "\" appears twice");
      }
      b->value[k] = line.text.substr(eq + 1);
      b->value_line[k] = line.number;
    }
  }
}

// Parses the tree arrays of one block and feeds the tree to the builder.
class TreeReader {
 public:
  TreeReader(const TreeBlock& b, int64_t num_features, const BuilderLimits& limits)
      : b_(b), num_features_(num_features), limits_(limits), name_("Tree=" + Str(b.index)) {}

  Status Build(ModelBuilder& builder, int32_t group, double weight);

 private:
  Status Error(const std::string& what) const { return InvalidArgument(name_ + ": " + what); }
  Status FieldError(TreeKey k, const std::string& what) const {
    return InvalidArgument(name_ + ": " + std::string(kTreeKeyNames[k]) + what + " (line " +
                           Str(static_cast<int64_t>(b_.value_line[k])) + ")");
  }
  Status Require(TreeKey k) const {
    if (b_.value_line[k] == 0) {
      return Error("missing \"" + std::string(kTreeKeyNames[k]) + "\" (the tree starts on line " +
                   Str(static_cast<int64_t>(b_.line)) + ")");
    }
    return OkStatus();
  }
  Result<int64_t> Scalar(TreeKey k, int64_t lo, int64_t hi) const;
  Status Count(TreeKey k, size_t expected) const;
  Status Ints(TreeKey k, size_t expected, int64_t lo, int64_t hi, std::vector<int64_t>* out) const;
  Status Doubles(TreeKey k, size_t expected, std::vector<double>* out) const;

  const TreeBlock& b_;
  int64_t num_features_;
  const BuilderLimits& limits_;
  std::string name_;
};

Result<int64_t> TreeReader::Scalar(TreeKey k, int64_t lo, int64_t hi) const {
  KEEL_RETURN_IF_ERROR(Require(k));
  int64_t v = 0;
  if (!ParseInt(b_.value[k], &v)) {
    return FieldError(k, " \"" + Shown(b_.value[k]) + "\" is not an integer");
  }
  if (v < lo || v > hi) {
    return FieldError(k, " " + Str(v) + " out of range [" + Str(lo) + ", " + Str(hi) + "]");
  }
  return v;
}

Status TreeReader::Count(TreeKey k, size_t expected) const {
  KEEL_RETURN_IF_ERROR(Require(k));
  const size_t n = CountTokens(b_.value[k]);
  if (n != expected) {
    return FieldError(k, " has " + Str(static_cast<int64_t>(n)) + " values, expected " +
                             Str(static_cast<int64_t>(expected)));
  }
  return OkStatus();
}

Status TreeReader::Ints(TreeKey k, size_t expected, int64_t lo, int64_t hi,
                        std::vector<int64_t>* out) const {
  KEEL_RETURN_IF_ERROR(Count(k, expected));
  out->clear();
  out->reserve(expected);
  Status st;
  ForEachToken(b_.value[k], [&](std::string_view t) {
    int64_t v = 0;
    if (!ParseInt(t, &v)) {
      st = FieldError(k, Index(out->size()) + " \"" + Shown(t) + "\" is not an integer");
      return false;
    }
    if (v < lo || v > hi) {
      st = FieldError(k, Index(out->size()) + " = " + Str(v) + " out of range [" + Str(lo) + ", " +
                             Str(hi) + "]");
      return false;
    }
    out->push_back(v);
    return true;
  });
  return st;
}

Status TreeReader::Doubles(TreeKey k, size_t expected, std::vector<double>* out) const {
  KEEL_RETURN_IF_ERROR(Count(k, expected));
  out->clear();
  out->reserve(expected);
  Status st;
  ForEachToken(b_.value[k], [&](std::string_view t) {
    double v = 0.0;
    if (!ParseDouble(t, &v)) {
      st = FieldError(k, Index(out->size()) + " \"" + Shown(t) + "\" is not a number");
      return false;
    }
    out->push_back(v);
    return true;
  });
  return st;
}

Status TreeReader::Build(ModelBuilder& builder, int32_t group, double weight) {
  // 2 * num_leaves - 1 nodes must fit the per-tree limit; checked before any
  // array is read.
  const int64_t max_leaves =
      std::min<int64_t>((limits_.max_nodes_per_tree + 1) / 2, std::numeric_limits<int32_t>::max());
  KEEL_ASSIGN_OR_RETURN(const int64_t num_leaves, Scalar(kNumLeaves, 1, max_leaves));
  KEEL_ASSIGN_OR_RETURN(const int64_t num_cat,
                        Scalar(kNumCat, 0, std::numeric_limits<int32_t>::max()));
  if (b_.value_line[kIsLinear] != 0) {
    KEEL_ASSIGN_OR_RETURN(const int64_t is_linear, Scalar(kIsLinear, 0, 1));
    if (is_linear != 0) {
      return Unimplemented(name_ +
                           ": linear trees (is_linear=1, linear_tree=true) are not "
                           "supported");
    }
  }
  const size_t leaves = static_cast<size_t>(num_leaves);
  std::vector<double> leaf_value;
  KEEL_RETURN_IF_ERROR(Doubles(kLeafValue, leaves, &leaf_value));
  for (size_t i = 0; i < leaves; ++i) {
    if (!std::isfinite(leaf_value[i])) {
      return FieldError(kLeafValue, Index(i) + " is not finite");
    }
  }
  if (num_leaves == 1) {
    // LightGBM reads nothing else of a 1-leaf tree.
    KEEL_RETURN_IF_ERROR(builder.BeginTree(group, weight));
    KEEL_RETURN_IF_ERROR(builder.AddLeaf(0, leaf_value[0]));
    return builder.EndTree();
  }

  const size_t splits = leaves - 1;
  if (num_cat > static_cast<int64_t>(splits)) {
    return FieldError(kNumCat, " " + Str(num_cat) + " out of range [0, " +
                                   Str(static_cast<int64_t>(splits)) + "]");
  }
  std::vector<int64_t> feature, decision, left, right;
  std::vector<double> threshold;
  const int64_t leaves64 = num_leaves;
  KEEL_RETURN_IF_ERROR(Ints(kSplitFeature, splits, 0, num_features_ - 1, &feature));
  KEEL_RETURN_IF_ERROR(Doubles(kThreshold, splits, &threshold));
  if (b_.value_line[kDecisionType] != 0) {
    KEEL_RETURN_IF_ERROR(Ints(kDecisionType, splits, 0, 15, &decision));
  } else {
    decision.assign(splits, 0);  // LightGBM's default
  }
  KEEL_RETURN_IF_ERROR(Ints(kLeftChild, splits, -leaves64, leaves64 - 2, &left));
  KEEL_RETURN_IF_ERROR(Ints(kRightChild, splits, -leaves64, leaves64 - 2, &right));

  // Categorical bitsets.
  std::vector<int64_t> cat_boundaries, cat_words;
  if (num_cat > 0) {
    KEEL_RETURN_IF_ERROR(Ints(kCatBoundaries, static_cast<size_t>(num_cat) + 1, 0,
                              std::numeric_limits<int32_t>::max(), &cat_boundaries));
    if (cat_boundaries[0] != 0) return FieldError(kCatBoundaries, "[0] is not 0");
    for (size_t i = 1; i < cat_boundaries.size(); ++i) {
      if (cat_boundaries[i] < cat_boundaries[i - 1]) {
        return FieldError(kCatBoundaries, "[" + Str(static_cast<int64_t>(i)) +
                                              "] = " + Str(cat_boundaries[i]) +
                                              " is below the previous value");
      }
    }
    KEEL_RETURN_IF_ERROR(Ints(kCatThreshold, static_cast<size_t>(cat_boundaries.back()), 0,
                              std::numeric_limits<uint32_t>::max(), &cat_words));
  }

  // Node ids: split s -> s, leaf k -> splits + k. Every node but the root has
  // exactly one parent and all are reachable from the root: a tree.
  const size_t nodes = 2 * leaves - 1;
  auto node_of = [&](int64_t child) -> size_t {
    return child >= 0 ? static_cast<size_t>(child) : splits + static_cast<size_t>(~child);
  };
  auto node_name = [&](size_t id) -> std::string {
    return id < splits ? "split " + Str(static_cast<int64_t>(id))
                       : "leaf " + Str(static_cast<int64_t>(id - splits));
  };
  std::vector<int32_t> parent(nodes, -1);
  for (size_t s = 0; s < splits; ++s) {
    for (int64_t child : {left[s], right[s]}) {
      const size_t id = node_of(child);
      if (id == 0) {
        return Error("split " + Str(static_cast<int64_t>(s)) +
                     " has the root (split 0) as a child: a cycle");
      }
      if (parent[id] >= 0) {
        return Error(node_name(id) + " is a child of both split " + Str(parent[id]) +
                     " and split " + Str(static_cast<int64_t>(s)));
      }
      parent[id] = static_cast<int32_t>(s);
    }
  }
  {
    std::vector<uint8_t> seen(nodes, 0);
    std::vector<size_t> stack = {0};
    size_t reached = 0;
    while (!stack.empty()) {
      const size_t id = stack.back();
      stack.pop_back();
      if (seen[id]) continue;
      seen[id] = 1;
      ++reached;
      if (id < splits) {
        stack.push_back(node_of(left[id]));
        stack.push_back(node_of(right[id]));
      }
    }
    if (reached != nodes) {
      size_t first = 0;
      while (seen[first]) ++first;
      return Error(node_name(first) +
                   " cannot be reached from the root (the splits form a "
                   "cycle)");
    }
  }

  KEEL_RETURN_IF_ERROR(builder.BeginTree(group, weight));
  for (size_t s = 0; s < splits; ++s) {
    const int64_t dt = decision[s];
    const int32_t l = static_cast<int32_t>(node_of(left[s]));
    const int32_t rc = static_cast<int32_t>(node_of(right[s]));
    const uint32_t f = static_cast<uint32_t>(feature[s]);
    if (dt & 1) {
      // threshold is the index of the split's bitset.
      const double t = threshold[s];
      if (!(t >= 0.0 && t < static_cast<double>(num_cat)) || t != std::floor(t)) {
        return FieldError(kThreshold, Index(s) + " = " + Num(t) +
                                          " of a categorical split is not a bitset index in [0, " +
                                          Str(num_cat) + ")");
      }
      const size_t c = static_cast<size_t>(t);
      CategoricalSplit split;
      split.feature = f;
      split.categories_go_left = true;
      split.default_left = false;  // NaN goes right whatever the flags say
      split.invalid = InvalidCategory::kNotInSet;
      split.left = l;
      split.right = rc;
      for (int64_t w = cat_boundaries[c]; w < cat_boundaries[c + 1]; ++w) {
        const uint32_t bits = static_cast<uint32_t>(cat_words[static_cast<size_t>(w)]);
        for (uint32_t bit = 0; bit < 32; ++bit) {
          if (!((bits >> bit) & 1u)) continue;
          const int64_t category = 32 * (w - cat_boundaries[c]) + bit;
          if (category > limits_.max_category) {
            return FieldError(kCatThreshold, ": split " + Str(static_cast<int64_t>(s)) +
                                                 " has category " + Str(category) +
                                                 " above the limit " + Str(limits_.max_category));
          }
          split.categories.push_back(static_cast<uint32_t>(category));
        }
      }
      KEEL_RETURN_IF_ERROR(builder.AddCategoricalSplit(static_cast<int32_t>(s), std::move(split)));
      continue;
    }
    if (std::isnan(threshold[s])) return FieldError(kThreshold, Index(s) + " is NaN");
    NumericalSplit split;
    split.feature = f;
    split.threshold = threshold[s];
    split.cmp = Comparison::kLessEqual;
    split.default_left = (dt & 2) != 0;
    switch ((dt >> 2) & 3) {
      case 0:
        split.missing = MissingRule::kNanAsZero;
        break;
      case 1:
        split.missing = MissingRule::kZeroAndNanDefault;
        break;
      case 2:
        split.missing = MissingRule::kNanToDefault;
        break;
      default:
        return FieldError(kDecisionType,
                          Index(s) + " = " + Str(dt) + " has missing type 3 (unknown)");
    }
    split.left = l;
    split.right = rc;
    KEEL_RETURN_IF_ERROR(builder.AddNumericalSplit(static_cast<int32_t>(s), split));
  }
  for (size_t k = 0; k < leaves; ++k) {
    KEEL_RETURN_IF_ERROR(builder.AddLeaf(static_cast<int32_t>(splits + k), leaf_value[k]));
  }
  return builder.EndTree();
}

// Walks the tree section once without building: counts the blocks and checks
// them against tree_sizes, which LightGBM uses to locate each tree: every
// block but the last must have exactly its listed size (LightGBM never checks
// the last one).
Status ScanTrees(LineReader r, const Header& h, const BuilderLimits& limits, int64_t* count) {
  std::vector<uint64_t> sizes;
  if (h.tree_sizes.present()) {
    const size_t n = CountTokens(h.tree_sizes.value);
    sizes.reserve(n);
    Status st;
    ForEachToken(h.tree_sizes.value, [&](std::string_view t) {
      int64_t v = 0;
      if (!ParseInt(t, &v) || v <= 0) {
        st = InvalidArgument("line " + Str(static_cast<int64_t>(h.tree_sizes.line)) +
                             ": tree_sizes[" + Str(static_cast<int64_t>(sizes.size())) + "] \"" +
                             Shown(t) + "\" is not a positive integer");
        return false;
      }
      sizes.push_back(static_cast<uint64_t>(v));
      return true;
    });
    KEEL_RETURN_IF_ERROR(st);
  }
  int64_t n = 0;
  TreeBlock block;
  size_t previous_offset = 0;
  while (AtTree(r)) {
    if (n >= limits.max_trees) {
      return ResourceExhausted("more than " + Str(limits.max_trees) +
                               " trees: above the limit of the model builder");
    }
    KEEL_RETURN_IF_ERROR(ReadBlock(r, n, &block));
    if (n > 0 && static_cast<size_t>(n) <= sizes.size()) {
      const uint64_t actual = block.offset - previous_offset;
      if (actual != sizes[static_cast<size_t>(n - 1)]) {
        return InvalidArgument("Tree=" + Str(n - 1) + ": the tree takes " +
                               Str(static_cast<int64_t>(actual)) + " bytes but tree_sizes (line " +
                               Str(static_cast<int64_t>(h.tree_sizes.line)) + ") gives " +
                               Str(static_cast<int64_t>(sizes[static_cast<size_t>(n - 1)])) +
                               ": the file was edited or damaged");
      }
    }
    previous_offset = block.offset;
    ++n;
  }
  if (n == 0) return InvalidArgument("the model has no trees");
  if (h.tree_sizes.present() && sizes.size() != static_cast<size_t>(n)) {
    return InvalidArgument("line " + Str(static_cast<int64_t>(h.tree_sizes.line)) +
                           ": tree_sizes lists " + Str(static_cast<int64_t>(sizes.size())) +
                           " trees but the file has " + Str(n) + ": truncated file?");
  }
  *count = n;
  return OkStatus();
}

Result<Model> Import(std::string_view bytes, const BuilderLimits& limits) {
  LineReader reader(bytes);
  Header h;
  KEEL_RETURN_IF_ERROR(ReadHeader(reader, &h));

  const std::string first = "line " + Str(static_cast<int64_t>(h.first_line)) + ": ";
  if (!h.num_class.present()) return InvalidArgument(first + "the header has no num_class");
  if (!h.max_feature_idx.present()) {
    return InvalidArgument(first + "the header has no max_feature_idx");
  }
  KEEL_ASSIGN_OR_RETURN(const int64_t num_class,
                        HeaderInt(h.num_class, "num_class", 1, limits.max_groups));
  int64_t per_iteration = num_class;  // LightGBM's default
  if (h.num_tree_per_iteration.present()) {
    KEEL_ASSIGN_OR_RETURN(per_iteration, HeaderInt(h.num_tree_per_iteration,
                                                   "num_tree_per_iteration", 1, limits.max_groups));
  }
  KEEL_ASSIGN_OR_RETURN(
      const int64_t max_feature_idx,
      HeaderInt(h.max_feature_idx, "max_feature_idx", 0, limits.max_features - 1));
  const int64_t num_features = max_feature_idx + 1;

  KEEL_ASSIGN_OR_RETURN(const ObjectiveInfo objective, MapObjective(h.objective, num_class));
  if (!objective.custom) {
    const int64_t expected = objective.per_class ? num_class : 1;
    if (per_iteration != expected || (!objective.per_class && num_class != 1)) {
      return InvalidArgument("line " + Str(static_cast<int64_t>(h.objective.line)) +
                             ": objective \"" + Shown(h.objective.value) +
                             "\" needs num_class=" + Str(objective.per_class ? num_class : 1) +
                             " and num_tree_per_iteration=" + Str(expected) + ", the header has " +
                             Str(num_class) + " and " + Str(per_iteration));
    }
  }

  std::vector<std::string> names, types;
  if (h.feature_names.present()) {
    if (CountTokens(h.feature_names.value) != static_cast<size_t>(num_features)) {
      return InvalidArgument("line " + Str(static_cast<int64_t>(h.feature_names.line)) +
                             ": feature_names has " +
                             Str(static_cast<int64_t>(CountTokens(h.feature_names.value))) +
                             " names, expected max_feature_idx + 1 = " + Str(num_features));
    }
    names = SplitTokens(h.feature_names.value);
  }
  if (h.feature_infos.present()) {
    const size_t n = CountTokens(h.feature_infos.value);
    if (n != static_cast<size_t>(num_features)) {
      return InvalidArgument("line " + Str(static_cast<int64_t>(h.feature_infos.line)) +
                             ": feature_infos has " + Str(static_cast<int64_t>(n)) +
                             " entries, expected max_feature_idx + 1 = " + Str(num_features));
    }
    types.reserve(n);
    // "[min:max]" numerical, "none" unused, "a:b:c" the categories seen.
    ForEachToken(h.feature_infos.value, [&](std::string_view t) {
      types.push_back(t[0] == '[' || t == "none" ? "q" : "c");
      return true;
    });
  }

  int64_t num_trees = 0;
  KEEL_RETURN_IF_ERROR(ScanTrees(reader, h, limits, &num_trees));
  if (num_trees % per_iteration != 0) {
    return InvalidArgument(
        "the model has " + Str(num_trees) +
        " trees, not a multiple of num_tree_per_iteration=" + Str(per_iteration));
  }
  const int64_t iterations = num_trees / per_iteration;
  double weight = objective.sigmoid;
  if (h.average_output.present()) weight /= static_cast<double>(iterations);

  ModelHeader mh;
  mh.num_features = static_cast<int32_t>(num_features);
  mh.num_groups = static_cast<int32_t>(per_iteration);
  mh.task = objective.task;
  mh.transform = objective.transform;
  mh.accumulator = Accumulator::kDouble;
  mh.source_format = "lightgbm-text";
  mh.objective = std::string(h.objective.value);
  ModelBuilder builder(std::move(mh), limits);
  KEEL_RETURN_IF_ERROR(builder.SetFeatureNames(std::move(names)));
  KEEL_RETURN_IF_ERROR(builder.SetFeatureTypes(std::move(types)));

  TreeBlock block;
  for (int64_t i = 0; i < num_trees; ++i) {
    if (!AtTree(reader)) return Internal("LightGBM import: tree " + Str(i) + " vanished");
    KEEL_RETURN_IF_ERROR(ReadBlock(reader, i, &block));
    TreeReader tree(block, num_features, limits);
    KEEL_RETURN_IF_ERROR(tree.Build(builder, static_cast<int32_t>(i % per_iteration), weight));
  }
  return std::move(builder).Finish();
}

}  // namespace

Result<Model> ImportLightgbmText(std::string_view bytes, const BuilderLimits& limits) {
  return Import(bytes, limits);
}

}  // namespace keel::model
