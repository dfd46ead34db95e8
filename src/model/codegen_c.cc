// The C99 and C++17 code generators (`keel export --format c|cpp-header`).
//
// Both emit the same program: constant tables laid out like the engine's
// (predictor.cc) and a small kernel that evaluates them with the engine's
// arithmetic, so the generated outputs equal Predictor::PredictRow bit for
// bit (see the contract in include/keel/model/codegen.h):
//
//   - Trees are laid out breadth-first with the two children of a split in
//     adjacent slots (right = left + 1).
//   - Models whose splits are all numerical with "NaN follows the default"
//     (XGBoost without categorical splits) use the fast layout: leaves point
//     to themselves and never move, so a tree is `depth` branch-free steps,
//     and eight trees advance together; an 8-byte node holds the threshold,
//     the left child and the feature index whose top bit says "NaN goes
//     right". With float sums a leaf keeps its value in the threshold field
//     and reads an extra input that is always NaN (the kernel copies x and
//     appends it), so there is no leaf table; with double sums leaves have a
//     NaN threshold and a per-node double table.
//   - Other models (categorical splits, LightGBM's zero/NaN rules) use the
//     general layout: each tree is walked to a leaf flag, the split rule is
//     the engine's GoRightGeneral, a leaf's `left` is its index in a dense
//     leaf table.
//   - Margins start at base_margin and add leaf value * tree weight in tree
//     order, in the model's accumulator type (float or double); the linear
//     part follows (NaN inputs skipped); the transform runs on float margins
//     with expf.
//   - The pipeline becomes an encode function: numbers and booleans pass
//     through as (float)value, categories are found by binary search in their
//     sorted table (bytewise, as the pipeline sorts them; one byte array of
//     NUL-terminated texts plus offsets, so no pointers and no relocations);
//     categories that are missing markers are read as missing, as the
//     pipeline tests markers before categories.
//   - Model texts reach the source only through CString (escaped literals)
//     or CommentText (comments), never raw.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "keel/model/codegen.h"

namespace keel::model {
namespace {

enum class Dialect { kC, kCpp };

constexpr int kTreesPerStep = 8;  // trees advanced together (fast layout)

// General-layout flags; the kernel's literals below use the same values.
enum GFlags : uint8_t {
  kDefaultLeft = 1,
  kLeaf = 2,
  kCategorical = 4,
  kNanAsZero = 8,
  kZeroMissing = 16,
  kCatGoLeft = 32,
  kCatInvalidDefault = 64,
};

struct GNode {
  float threshold = 0.0f;
  uint32_t left = 0;
  uint32_t feature = 0;  // fast layout: bit 15 or 31 = NaN goes right
  uint8_t flags = 0;     // general layout only
  uint32_t cat = 0;      // general layout, categorical splits: index into cats
};

struct CatSet {
  uint32_t offset = 0;  // into cat_bits
  uint32_t words = 0;
};

struct Layout {
  bool general = false;
  std::vector<GNode> nodes;
  std::vector<double> leaves;  // leaf value * tree weight; fast: per node, general: dense
  std::vector<uint32_t> roots;
  std::vector<uint32_t> groups;       // per tree
  std::vector<uint32_t> chunk_depth;  // fast: per kTreesPerStep trees
  std::vector<CatSet> cats;
  std::vector<uint32_t> cat_bits;
  uint32_t max_depth = 0;
  uint32_t feature_flag_bit = 15;  // fast layout
  // Fast layout with float sums: a leaf keeps its value in `threshold` and
  // reads feature num_features, a NaN the kernel appends to its copy of x,
  // so it never moves and there is no separate leaf table.
  bool leaf_in_node = false;
};

bool NeedsGeneral(const Model& m) {
  for (const Tree& t : m.trees) {
    for (const Node& n : t.nodes) {
      if (n.kind == Node::Kind::kCategorical) return true;
      if (n.kind == Node::Kind::kNumerical && n.missing != MissingRule::kNanToDefault) return true;
    }
  }
  return false;
}

Result<Layout> BuildLayout(const Model& m) {
  Layout L;
  L.general = NeedsGeneral(m);
  L.leaf_in_node = !L.general && m.accumulator == Accumulator::kFloat;
  L.feature_flag_bit = m.num_features < (1 << 15) ? 15 : 31;
  for (size_t ti = 0; ti < m.trees.size(); ++ti) {
    const Tree& t = m.trees[ti];
    if (t.nodes.empty() || t.group < 0 || t.group >= m.num_groups) {
      return InvalidArgument("tree " + std::to_string(ti) + " is malformed");
    }
    const uint32_t root = static_cast<uint32_t>(L.nodes.size());
    std::vector<std::pair<int32_t, uint32_t>> queue = {{0, root}};  // (IR node, slot)
    std::vector<uint32_t> depth(t.nodes.size(), 0);
    L.nodes.emplace_back();
    if (!L.general && !L.leaf_in_node) L.leaves.push_back(0.0);
    uint32_t tree_depth = 0;
    for (size_t q = 0; q < queue.size(); ++q) {
      const auto [ir, slot] = queue[q];
      if (ir < 0 || static_cast<size_t>(ir) >= t.nodes.size() || queue.size() > t.nodes.size()) {
        return InvalidArgument("tree " + std::to_string(ti) + " is not a tree");
      }
      const Node& n = t.nodes[static_cast<size_t>(ir)];
      tree_depth = std::max(tree_depth, depth[static_cast<size_t>(ir)]);
      const double value = n.leaf_value * t.weight;
      if (n.kind == Node::Kind::kLeaf) {
        GNode& g = L.nodes[slot];
        if (L.general) {
          g.flags = kLeaf | kDefaultLeft;
          g.left = static_cast<uint32_t>(L.leaves.size());
          L.leaves.push_back(value);
        } else if (L.leaf_in_node) {
          g.threshold = static_cast<float>(value);
          g.left = slot;
          g.feature = static_cast<uint32_t>(m.num_features);  // the appended NaN: stays
        } else {
          g.threshold = std::numeric_limits<float>::quiet_NaN();
          g.left = slot;
          g.feature = 0;  // a NaN threshold: never moves
          L.leaves[slot] = value;
        }
        continue;
      }
      if (n.feature >= static_cast<uint32_t>(m.num_features)) {
        return InvalidArgument("tree " + std::to_string(ti) + ": feature out of range");
      }
      const uint32_t left = static_cast<uint32_t>(L.nodes.size());
      L.nodes.emplace_back();
      L.nodes.emplace_back();
      if (!L.general && !L.leaf_in_node) {
        L.leaves.push_back(0.0);
        L.leaves.push_back(0.0);
      }
      GNode& g = L.nodes[slot];
      g.threshold = n.threshold;
      g.left = left;
      if (L.general) {
        g.feature = n.feature;
        g.flags = n.default_left ? kDefaultLeft : 0;
        if (n.kind == Node::Kind::kCategorical) {
          g.flags |= kCategorical;
          if (n.categories_go_left) g.flags |= kCatGoLeft;
          if (n.invalid == InvalidCategory::kDefault) g.flags |= kCatInvalidDefault;
          CatSet cs;
          cs.offset = static_cast<uint32_t>(L.cat_bits.size());
          cs.words = n.categories.empty() ? 0 : n.categories.back() / 32u + 1u;
          L.cat_bits.resize(L.cat_bits.size() + cs.words, 0u);
          for (uint32_t c : n.categories) L.cat_bits[cs.offset + c / 32u] |= 1u << (c % 32u);
          g.cat = static_cast<uint32_t>(L.cats.size());
          L.cats.push_back(cs);
          g.threshold = 0.0f;  // unused by categorical splits
        } else if (n.missing == MissingRule::kNanAsZero) {
          g.flags |= kNanAsZero;
        } else if (n.missing == MissingRule::kZeroAndNanDefault) {
          g.flags |= kZeroMissing;
        }
      } else {
        g.feature = n.feature | (n.default_left ? 0u : (1u << L.feature_flag_bit));
      }
      for (int32_t child : {n.left, n.right}) {
        if (child < 0 || static_cast<size_t>(child) >= t.nodes.size()) {
          return InvalidArgument("tree " + std::to_string(ti) + ": child out of range");
        }
        depth[static_cast<size_t>(child)] = depth[static_cast<size_t>(ir)] + 1;
      }
      queue.push_back({n.left, left});
      queue.push_back({n.right, left + 1});
    }
    L.roots.push_back(root);
    L.groups.push_back(static_cast<uint32_t>(t.group));
    L.max_depth = std::max(L.max_depth, tree_depth);
    if (ti % kTreesPerStep == 0) {
      L.chunk_depth.push_back(tree_depth);
    } else {
      L.chunk_depth.back() = std::max(L.chunk_depth.back(), tree_depth);
    }
  }
  return L;
}

// Bytes of the smallest unsigned type holding `max_value`.
int WidthOf(uint64_t max_value) {
  if (max_value <= 0xFF) return 1;
  if (max_value <= 0xFFFF) return 2;
  return 4;
}

std::string HexDouble(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

// A C/C++ string literal for arbitrary bytes: printable ASCII as is (with
// '"', '\\' and '?' escaped, the last against trigraphs), everything else as
// a three-digit octal escape.
std::string CString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\' || c == '?') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\%03o", c);
      out += b;
    }
  }
  return out + "\"";
}

// Text safe inside a comment of either dialect: no "*/", "/*", trigraphs,
// line splices or non-ASCII bytes.
std::string CommentText(std::string_view s, size_t max = 120) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    if (c < 0x20 || c >= 0x7f || c == '*' || c == '\\' || c == '?') {
      out += '_';
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Strips ASCII spaces and tabs from both ends, as data::internal::TrimSpaces
// (which the pipeline's missing-marker test applies to texts and markers).
std::string_view TrimBlanks(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

// True when the pipeline reads `text` as missing (data::internal::
// MissingMatcher: trimmed text equal to a trimmed marker, case-sensitive).
bool IsMissingMarker(std::string_view text, const std::vector<std::string>& markers) {
  const std::string_view t = TrimBlanks(text);
  return std::any_of(markers.begin(), markers.end(),
                     [&](const std::string& m) { return TrimBlanks(m) == t; });
}

std::string WithCommas(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string Upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

struct SizeRow {
  std::string table;
  uint64_t entries;
  uint64_t bytes;
};

struct InputField {
  std::string field;  // member name
  const data::InputColumn* column;
};

class Generator {
 public:
  Generator(const LoadedModel& m, const ExportOptions& o, Dialect d, Layout layout)
      : m_(m), model_(m.model), o_(o), d_(d), L_(std::move(layout)) {
    upper_ = Upper(o.name);
    use_double_ = model_.accumulator == Accumulator::kDouble;
    acc_ = use_double_ ? "double" : "float";
  }

  Status Prepare();
  std::string CHeader();
  std::string CSource();
  std::string CppHeader();
  std::string Readme(const std::vector<std::string>& files);

 private:
  // Names of internal symbols: C gets a prefix and a trailing '_', C++ puts
  // them in namespace <name>::detail.
  std::string I(std::string_view base) const {
    return d_ == Dialect::kC ? o_.name + "_" + std::string(base) + "_" : std::string(base) + "_";
  }
  std::string U(int bytes) const {
    const char* t = bytes == 1 ? "uint8_t" : bytes == 2 ? "uint16_t" : "uint32_t";
    return d_ == Dialect::kC ? t : std::string("std::") + t;
  }
  std::string TableDecl(const std::string& type, const std::string& name, size_t n) const {
    return (d_ == Dialect::kC ? "static const " : "inline constexpr ") + type + " " + name + "[" +
           std::to_string(n) + "]";
  }
  std::string Fn() const { return d_ == Dialect::kC ? "static " : "inline "; }
  std::string Nan() const { return d_ == Dialect::kC ? "NAN" : "nan_f"; }
  std::string Float(float v) const {
    if (std::isnan(v)) return Nan();
    if (std::isinf(v)) {
      return std::string(v < 0 ? "-" : "") + (d_ == Dialect::kC ? "INFINITY" : "inf_f");
    }
    return HexDouble(static_cast<double>(v)) + "f";
  }
  std::string Double(double v) const {
    if (std::isnan(v)) return "(double)" + Nan();
    if (std::isinf(v)) {
      return std::string(v < 0 ? "-" : "") + "(double)" +
             (d_ == Dialect::kC ? "INFINITY" : "inf_f");
    }
    return HexDouble(v);
  }
  std::string AccLiteral(double v) const {
    return use_double_ ? Double(v) : Float(static_cast<float>(v));
  }
  std::string In() const { return d_ == Dialect::kC ? "in->" : "in."; }
  std::string Exp() const { return d_ == Dialect::kC ? "expf" : "std::exp"; }

  int IdxWidth() const;
  int FeatureWidth() const;
  // The node struct: fields sorted by size, so the layout has no padding
  // inside; returns (type, name) pairs in declaration order.
  std::vector<std::pair<int, std::string>> NodeFields() const;
  size_t NodeBytes() const;
  std::string NodeInit(const GNode& n,
                       const std::vector<std::pair<int, std::string>>& fields) const;

  std::string Tables();
  std::string Kernels();
  std::string EncodeBody();
  std::string PredictBody();
  std::string XMacro();
  std::string InputDoc(const InputField& f) const;
  std::string ModelSummary() const;
  std::string OutputDoc() const;
  // The README's code-size estimate (x86-64 GCC 12, -Os) and the kernel shape
  // it depends on; see kCodeBytes.
  uint64_t CodeBytes() const;
  std::string KernelShape() const;
  bool NeedsExp() const {
    return model_.transform == Transform::kSigmoid || model_.transform == Transform::kSoftmax ||
           model_.transform == Transform::kExp;
  }

  const LoadedModel& m_;
  const Model& model_;
  const ExportOptions& o_;
  Dialect d_;
  Layout L_;
  std::string upper_;
  bool use_double_ = false;
  std::string acc_;
  std::vector<InputField> inputs_;
  std::vector<std::string> cat_text_;  // every category of every column, in column order
  std::vector<size_t> cat_offset_;     // per input column: first entry in cat_text_
  // Per input column: the indexes of its categories that are also missing
  // markers (after trimming blanks, as keel compares them). keel reads such a
  // text as missing before any category lookup, so the generated encoder
  // must too.
  std::vector<std::vector<size_t>> marker_cats_;
  std::vector<SizeRow> sizes_;
};

Status Generator::Prepare() {
  const data::FeaturePipeline& p = m_.pipeline;
  if (static_cast<int32_t>(p.num_features()) != model_.num_features) {
    return InvalidArgument("the pipeline makes " + std::to_string(p.num_features()) +
                           " features but the model takes " + std::to_string(model_.num_features));
  }
  if (model_.num_groups <= 0 ||
      model_.base_margin.size() != static_cast<size_t>(model_.num_groups)) {
    return InvalidArgument("model header is inconsistent (groups or base margin)");
  }
  if (model_.linear.size() > 1) return InvalidArgument("more than one linear part");
  if (!model_.linear.empty()) {
    const Linear& lin = model_.linear.front();
    if (lin.weights.size() != static_cast<size_t>(model_.num_features) * model_.num_groups ||
        lin.bias.size() != static_cast<size_t>(model_.num_groups)) {
      return InvalidArgument("linear part has the wrong shape");
    }
  }
  std::set<std::string> used;
  for (const data::InputColumn& col : p.input_columns()) {
    std::string base = SanitizeIdentifier(col.name);
    std::string field = base;
    for (int k = 2; used.count(field); ++k) field = base + "_" + std::to_string(k);
    used.insert(field);
    inputs_.push_back({field, &col});
    cat_offset_.push_back(cat_text_.size());
    marker_cats_.emplace_back();
    for (const std::string& cat : col.categories) {
      if (cat.find('\0') != std::string::npos) {
        return InvalidArgument("column '" + CommentText(col.name) +
                               "': a category holds a NUL byte, which a C string cannot match");
      }
      if (IsMissingMarker(cat, p.missing_markers())) {
        marker_cats_.back().push_back(cat_text_.size() - cat_offset_.back());
      }
      cat_text_.push_back(cat);
    }
  }
  return OkStatus();
}

int Generator::IdxWidth() const {
  uint64_t max = L_.nodes.empty() ? 0 : L_.nodes.size() - 1;
  if (L_.general) max = std::max<uint64_t>(max, L_.leaves.empty() ? 0 : L_.leaves.size() - 1);
  return std::max(2, WidthOf(max));
}

int Generator::FeatureWidth() const {
  if (!L_.general) return L_.feature_flag_bit == 15 ? 2 : 4;
  return std::max(2, WidthOf(static_cast<uint64_t>(model_.num_features - 1)));
}

std::vector<std::pair<int, std::string>> Generator::NodeFields() const {
  std::vector<std::pair<int, std::string>> f = {
      {4, "threshold"}, {IdxWidth(), "left"}, {FeatureWidth(), "feature"}};
  if (L_.general) {
    f.push_back({1, "flags"});
    if (!L_.cats.empty()) f.push_back({WidthOf(L_.cats.size() - 1), "cat"});
  }
  std::stable_sort(f.begin(), f.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  return f;
}

size_t Generator::NodeBytes() const {
  size_t sum = 0;
  for (const auto& [w, name] : NodeFields()) sum += static_cast<size_t>(w);
  return (sum + 3) / 4 * 4;  // the float aligns the struct to 4
}

std::string Generator::NodeInit(const GNode& n,
                                const std::vector<std::pair<int, std::string>>& fields) const {
  std::string s = "{";
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) s += ", ";
    const std::string& name = fields[i].second;
    if (name == "threshold") {
      s += Float(n.threshold);
    } else if (name == "left") {
      s += std::to_string(n.left);
    } else if (name == "feature") {
      s += std::to_string(n.feature) + (n.feature > 0x7FFFFFFFu ? "u" : "");
    } else if (name == "flags") {
      s += std::to_string(n.flags);
    } else {
      s += std::to_string(n.cat);
    }
  }
  return s + "}";
}

// Emits `values` (already formatted) as the body of an array initializer.
std::string ArrayBody(const std::vector<std::string>& values, size_t per_line = 8) {
  std::string s;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i % per_line == 0) s += "    ";
    s += values[i];
    s += ',';
    s += (i % per_line == per_line - 1 || i + 1 == values.size()) ? '\n' : ' ';
  }
  return s;
}

std::string Generator::Tables() {
  std::string s;
  sizes_.clear();
  const size_t groups = static_cast<size_t>(model_.num_groups);
  const size_t features = static_cast<size_t>(model_.num_features);
  const int acc_bytes = use_double_ ? 8 : 4;
  const std::string idx = U(IdxWidth());

  // Base margins.
  {
    std::vector<std::string> v;
    for (double b : model_.base_margin) v.push_back(AccLiteral(b));
    s += "/* Base margin per output group. */\n";
    s += TableDecl(acc_, I("base"), groups) + " = {\n" + ArrayBody(v) + "};\n\n";
    sizes_.push_back({"base margins (" + acc_ + ")", groups, groups * acc_bytes});
  }
  if (!L_.nodes.empty()) {
    const auto fields = NodeFields();
    s +=
        L_.general
            ? "/* Tree nodes, breadth-first, the children of a split adjacent (right = left + 1).\n"
              " * flags: 1 NaN goes left, 2 leaf (left = its index in leaves), 4 categorical,\n"
              " * 8 NaN is compared as 0, 16 |x| <= 1e-35 and NaN follow the default, 32 in-set\n"
              " * categories go left, 64 XGBoost category rules (else LightGBM's). */\n"
        : L_.leaf_in_node
            ? "/* Tree nodes, breadth-first, the children of a split adjacent (right = left + 1).\n"
              " * feature: the input index; its top bit set means NaN goes right. Leaves point\n"
              " * to themselves, hold leaf * tree weight in threshold and read input\n"
              " * NUM_FEATURES, a NaN the kernel appends: they never move, so every tree\n"
              " * takes a fixed number of steps. */\n"
            : "/* Tree nodes, breadth-first, the children of a split adjacent (right = left + 1).\n"
              " * feature: the input index; its top bit set means NaN goes right. Leaves point\n"
              " * to themselves with a NaN threshold, so every tree takes a fixed number of\n"
              " * steps. */\n";
    s += d_ == Dialect::kC ? "typedef struct {\n" : "struct node_ {\n";
    for (const auto& [w, name] : fields) {
      s += "  " + (name == "threshold" ? std::string("float") : U(w)) + " " + name + ";\n";
    }
    s += d_ == Dialect::kC ? "} " + I("node") + ";\n" : "};\n";
    s += TableDecl(I("node"), I("nodes"), L_.nodes.size()) + " = {\n";
    std::vector<std::string> v;
    v.reserve(L_.nodes.size());
    for (const GNode& n : L_.nodes) v.push_back(NodeInit(n, fields));
    s += ArrayBody(v, 4) + "};\n\n";
    sizes_.push_back({"tree nodes (" + std::to_string(NodeBytes()) + "-byte struct)",
                      L_.nodes.size(), L_.nodes.size() * NodeBytes()});

    if (!L_.leaf_in_node) {
      v.clear();
      for (double leaf : L_.leaves) v.push_back(AccLiteral(leaf));
      s += L_.general ? "/* Leaf values (leaf * tree weight), indexed by a leaf's left. */\n"
                      : "/* Leaf values (leaf * tree weight) by node; 0 for splits. */\n";
      s += TableDecl(acc_, I("leaves"), L_.leaves.size()) + " = {\n" + ArrayBody(v, 6) + "};\n\n";
      sizes_.push_back(
          {"leaf values (" + acc_ + ")", L_.leaves.size(), L_.leaves.size() * acc_bytes});
    }

    v.clear();
    for (uint32_t r : L_.roots) v.push_back(std::to_string(r));
    s += "/* Root node of each tree. */\n";
    s += TableDecl(idx, I("roots"), L_.roots.size()) + " = {\n" + ArrayBody(v, 12) + "};\n\n";
    sizes_.push_back({"tree roots", L_.roots.size(), L_.roots.size() * IdxWidth()});

    if (groups > 1) {
      const int w = WidthOf(groups - 1);
      v.clear();
      for (uint32_t g : L_.groups) v.push_back(std::to_string(g));
      s += "/* Output group (class) of each tree. */\n";
      s += TableDecl(U(w), I("groups"), L_.groups.size()) + " = {\n" + ArrayBody(v, 16) + "};\n\n";
      sizes_.push_back({"tree groups", L_.groups.size(), L_.groups.size() * w});
    }
    if (!L_.general) {
      uint32_t max = 0;
      for (uint32_t d : L_.chunk_depth) max = std::max(max, d);
      const int w = WidthOf(max);
      v.clear();
      for (uint32_t d : L_.chunk_depth) v.push_back(std::to_string(d));
      s += "/* Steps per block of " + std::to_string(kTreesPerStep) +
           " trees: the deepest tree's depth. */\n";
      s += TableDecl(U(w), I("steps"), L_.chunk_depth.size()) + " = {\n" + ArrayBody(v, 16) +
           "};\n\n";
      sizes_.push_back({"steps per 8 trees", L_.chunk_depth.size(), L_.chunk_depth.size() * w});
    }
    if (!L_.cats.empty()) {
      uint64_t max = L_.cat_bits.size();
      for (const CatSet& c : L_.cats) max = std::max<uint64_t>(max, c.words);
      const int w = WidthOf(max);
      s += "/* Categorical splits: a bitset of cat_bits[offset, offset + words). */\n";
      s += d_ == Dialect::kC ? "typedef struct {\n" : "struct cat_set_ {\n";
      s += "  " + U(w) + " offset;\n  " + U(w) + " words;\n";
      s += d_ == Dialect::kC ? "} " + I("cat_set") + ";\n" : "};\n";
      v.clear();
      for (const CatSet& c : L_.cats) {
        v.push_back("{" + std::to_string(c.offset) + ", " + std::to_string(c.words) + "}");
      }
      s += TableDecl(I("cat_set"), I("cat_sets"), L_.cats.size()) + " = {\n" + ArrayBody(v, 6) +
           "};\n";
      sizes_.push_back({"categorical split sets", L_.cats.size(), L_.cats.size() * 2 * w});
      v.clear();
      char buf[16];
      for (uint32_t b : L_.cat_bits) {
        std::snprintf(buf, sizeof buf, "0x%08xu", b);
        v.push_back(buf);
      }
      if (v.empty()) v.push_back("0x00000000u");  // no empty arrays in C
      s += TableDecl(U(4), I("cat_bits"), v.size()) + " = {\n" + ArrayBody(v, 6) + "};\n\n";
      sizes_.push_back({"categorical split bitsets", v.size(), v.size() * 4});
    }
  }
  if (!model_.linear.empty()) {
    const Linear& lin = model_.linear.front();
    std::vector<std::string> v;
    for (double b : lin.bias) v.push_back(AccLiteral(b));
    s += "/* Linear part: bias per group and weights[feature * groups + group]. */\n";
    s += TableDecl(acc_, I("bias"), groups) + " = {\n" + ArrayBody(v) + "};\n";
    sizes_.push_back({"linear bias (" + acc_ + ")", groups, groups * acc_bytes});
    v.clear();
    for (double w : lin.weights) v.push_back(AccLiteral(w));
    s += TableDecl(acc_, I("weights"), features * groups) + " = {\n" + ArrayBody(v, 4) + "};\n\n";
    sizes_.push_back(
        {"linear weights (" + acc_ + ")", features * groups, features * groups * acc_bytes});
  }
  if (!cat_text_.empty()) {
    // One byte array of NUL-terminated texts and an offset per category: no
    // pointers, so no relocations and the same size on every target.
    std::string text;
    std::vector<std::string> offsets;
    std::string body;
    for (const std::string& c : cat_text_) {
      offsets.push_back(std::to_string(text.size()));
      std::string line = "    ";
      for (unsigned char ch : c) line += std::to_string(ch) + ", ";
      body += line + "0, /* " + CommentText(c, 60) + " */\n";
      text += c;
      text += '\0';
    }
    const int w = WidthOf(text.size() - cat_text_.back().size() - 1);  // the last offset
    s += "/* Category texts of the categorical input columns, each column's sorted bytewise,\n"
         " * NUL-terminated, and where each starts. */\n";
    s += TableDecl("unsigned char", I("cat_text"), text.size()) + " = {\n" + body + "};\n";
    s += TableDecl(U(w), I("cat_offsets"), offsets.size()) + " = {\n" + ArrayBody(offsets, 12) +
         "};\n\n";
    sizes_.push_back({"category texts (with NULs)", cat_text_.size(), text.size()});
    sizes_.push_back({"category offsets", offsets.size(), offsets.size() * static_cast<size_t>(w)});
  }
  return s;
}

// Expands a kernel template: ${KEY} from `vars`, @name to the internal
// symbol (C: NAME_name_; C++: name_ inside NAME::detail, or detail::name_
// from outside it).
std::string Subst(std::string_view tmpl, const std::map<std::string, std::string>& vars, Dialect d,
                  const std::string& prefix, bool outside_detail = false) {
  std::string out;
  out.reserve(tmpl.size() + tmpl.size() / 4);
  for (size_t i = 0; i < tmpl.size();) {
    if (tmpl[i] == '$' && i + 1 < tmpl.size() && tmpl[i + 1] == '{') {
      const size_t end = tmpl.find('}', i);
      const std::string key(tmpl.substr(i + 2, end - i - 2));
      auto it = vars.find(key);
      out += it == vars.end() ? "<" + key + "?>" : it->second;
      i = end + 1;
    } else if (tmpl[i] == '@') {
      size_t j = i + 1;
      while (j < tmpl.size() &&
             (std::isalnum(static_cast<unsigned char>(tmpl[j])) || tmpl[j] == '_')) {
        ++j;
      }
      const std::string base(tmpl.substr(i + 1, j - i - 1));
      if (d == Dialect::kC) {
        out += prefix + "_" + base + "_";
      } else {
        out += (outside_detail ? "detail::" : "") + base + "_";
      }
      i = j;
    } else {
      out += tmpl[i++];
    }
  }
  return out;
}

// One step of tree k: right = (v >= threshold), or when v is NaN the node's
// NaN direction (leaves hold NaN thresholds and stay put either way).
constexpr std::string_view kFastStepNan = R"({
          const @node* nd = &@nodes[idx[k]];
          const float v = ${XV}[nd->feature & ${FMASK}];
          idx[k] = (${IDX})(nd->left + ((v >= nd->threshold) |
                                        ((${ISNAN}(v) != 0) & (int)(nd->feature >> ${FBIT}))));
        }
)";

// The same step for rows without NaN: `v >= threshold` is the whole decision.
constexpr std::string_view kFastStep = R"({
          const @node* nd = &@nodes[idx[k]];
          idx[k] = (${IDX})(nd->left + (${XV}[nd->feature & ${FMASK}] >= nd->threshold));
        }
)";

constexpr std::string_view kFastTrees =
    R"(/* Adds every tree's leaf to acc[group], in tree order. Eight trees advance
 * together (independent chains the CPU overlaps) by branch-free steps; rows
 * without NaN take the shorter step. */
${FN}void @trees(const float* x, ${ACC}* acc) {
  int t0, f;
  int any_nan = 0;
${COPY}  for (t0 = 0; t0 < ${TREES}; t0 += 8) {
    const int n = ${TREES} - t0 < 8 ? ${TREES} - t0 : 8;
    const int steps = @steps[t0 / 8];
    ${IDX} idx[8] = {0};
    int k, d;
    for (k = 0; k < n; ++k) idx[k] = @roots[t0 + k];
    if (any_nan) {
      for (d = 0; d < steps; ++d) {
        for (k = 0; k < n; ++k) ${STEP_NAN}      }
    } else if (n == 8) {
      for (d = 0; d < steps; ++d) {
        for (k = 0; k < 8; ++k) ${STEP}      }
    } else {
      for (d = 0; d < steps; ++d) {
        for (k = 0; k < n; ++k) ${STEP}      }
    }
    for (k = 0; k < n; ++k) acc[${GROUP}] += ${LEAF};
  }
}

)";

constexpr std::string_view kGoRight =
    R"(/* The engine's split rule (GoRightGeneral): 1 when v goes to the right child. */
${FN}int @go_right(const @node* n, float v) {
  const int default_right = !(n->flags & 1);
${CAT}  if (${ISNAN}(v)) {
    if (!(n->flags & 8)) return default_right;
    v = 0.0f;
  }
  if ((n->flags & 16) && v >= -${ZERO} && v <= ${ZERO}) return default_right;
  return !(v < n->threshold);
}

)";

constexpr std::string_view kCatRule = R"(  if (n->flags & 4) {
    const @cat_set* c = &@cat_sets[n->cat];
    int in_set = 0;
    if (${ISNAN}(v)) return default_right;
    if (n->flags & 64) {
      /* XGBoost: negative values, values >= 2^24 and categories beyond the
       * bitset are not in the set. */
      if (v >= 0.0f && v < 16777216.0f) {
        const ${U32} k = (${U32})v;
        in_set = k < (${U32})c->words * 32u &&
                 ((@cat_bits[c->offset + k / 32u] >> (k % 32u)) & 1u);
      }
    } else if (v > -1.0f && v < 2147483648.0f) {
      /* LightGBM: the value truncated to int; negative: not in the set. */
      const ${U32} k = (${U32})(${I32})v;
      in_set = k < (${U32})c->words * 32u &&
               ((@cat_bits[c->offset + k / 32u] >> (k % 32u)) & 1u);
    }
    return (n->flags & 32) ? !in_set : in_set;
  }
)";

constexpr std::string_view kGeneralTrees =
    R"(/* Adds every tree's leaf to acc[group], in tree order. */
${FN}void @trees(const float* x, ${ACC}* acc) {
  int t;
  for (t = 0; t < ${TREES}; ++t) {
    ${IDX} i = @roots[t];
    while (!(@nodes[i].flags & 2)) {
      const @node* n = &@nodes[i];
      i = (${IDX})(n->left + @go_right(n, x[n->feature]));
    }
    acc[${GROUP_T}] += @leaves[@nodes[i].left];
  }
}

)";

constexpr std::string_view kLinear =
    R"(/* acc[g] += bias[g] + sum of x[f] * weights[f][g] over non-NaN x[f]. */
${FN}void @linear(const float* x, ${ACC}* acc) {
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
  int g, f;
  for (g = 0; g < ${GROUPS}; ++g) {
    ${ACC} s = acc[g] + @bias[g];
    for (f = 0; f < ${FEATURES}; ++f) {
      const float v = x[f];
      if (${ISNAN}(v)) continue;
      s += ${PRODUCT};
    }
    acc[g] = s;
  }
}

)";

constexpr std::string_view kFind =
    R"(/* Index of text s among the n sorted categories from category first, or -1
 * (NULL and unknown texts). Bytewise comparison. */
${FN}int @find(const char* s, int first, int n) {
  int lo = 0, hi = n;
  if (s == ${NULL}) return -1;
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    const unsigned char* a = (const unsigned char*)s;
    const unsigned char* b = &@cat_text[@cat_offsets[first + mid]];
    while (*a != 0 && *a == *b) {
      ++a;
      ++b;
    }
    if (*a == *b) return mid;
    if (*a < *b) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return -1;
}

)";

std::string Generator::Kernels() {
  const bool cpp = d_ == Dialect::kCpp;
  std::map<std::string, std::string> v = {
      {"FN", Fn()},
      {"ACC", acc_},
      {"TREES", std::to_string(L_.roots.size())},
      {"IDX", U(IdxWidth())},
      {"FMASK", L_.feature_flag_bit == 15 ? "0x7FFF" : "0x7FFFFFFFu"},
      {"FBIT", std::to_string(L_.feature_flag_bit)},
      {"GROUP", model_.num_groups > 1 ? Subst("@groups[t0 + k]", {}, d_, o_.name) : "0"},
      {"GROUP_T", model_.num_groups > 1 ? Subst("@groups[t]", {}, d_, o_.name) : "0"},
      {"U32", U(4)},
      {"I32", cpp ? "std::int32_t" : "int32_t"},
      {"ZERO", Float(1e-35f)},
      {"GROUPS", std::to_string(model_.num_groups)},
      {"FEATURES", std::to_string(model_.num_features)},
      {"NULL", cpp ? "nullptr" : "0"},
      {"ISNAN", cpp ? "std::isnan" : "isnan"},
  };
  v["PRODUCT"] = Subst(
      use_double_ ? "(double)v * @weights[f * ${GROUPS} + g]" : "v * @weights[f * ${GROUPS} + g]",
      v, d_, o_.name);
  if (L_.leaf_in_node) {
    v["XV"] = "xe";
    v["LEAF"] = Subst("@nodes[idx[k]].threshold", {}, d_, o_.name);
    v["COPY"] = Subst(
        "  float xe[${FEATURES} + 1]; /* x, then the NaN that leaves read */\n"
        "  for (f = 0; f < ${FEATURES}; ++f) {\n"
        "    xe[f] = x[f];\n"
        "    any_nan |= ${ISNAN}(x[f]) != 0;\n"
        "  }\n"
        "  xe[${FEATURES}] = " +
            Nan() + ";\n",
        v, d_, o_.name);
  } else {
    v["XV"] = "x";
    v["LEAF"] = Subst("@leaves[idx[k]]", {}, d_, o_.name);
    v["COPY"] = Subst("  for (f = 0; f < ${FEATURES}; ++f) any_nan |= ${ISNAN}(x[f]) != 0;\n", v,
                      d_, o_.name);
  }
  v["STEP"] = Subst(kFastStep, v, d_, o_.name);
  v["STEP_NAN"] = Subst(kFastStepNan, v, d_, o_.name);
  v["CAT"] = L_.cats.empty() ? "" : Subst(kCatRule, v, d_, o_.name);
  std::string s;
  if (!cat_text_.empty()) s += Subst(kFind, v, d_, o_.name);
  if (!L_.roots.empty()) {
    if (L_.general) {
      s += Subst(kGoRight, v, d_, o_.name);
      s += Subst(kGeneralTrees, v, d_, o_.name);
    } else {
      s += Subst(kFastTrees, v, d_, o_.name);
    }
  }
  if (!model_.linear.empty()) s += Subst(kLinear, v, d_, o_.name);
  return s;
}

std::string Generator::EncodeBody() {
  std::string body;
  bool uses_i = false, uses_k = false;
  const std::string in = In();
  for (size_t c = 0; c < inputs_.size(); ++c) {
    const InputField& f = inputs_[c];
    const data::InputColumn& col = *f.column;
    const size_t first = col.first_feature;
    const std::string xf = "x[" + std::to_string(first) + "]";
    body += "  /* " + CommentText(col.name) + " */\n";
    if (col.type != data::ColumnType::kCategorical) {
      body += "  " + xf + " = (float)" + in + f.field + ";\n";
      continue;
    }
    const size_t n = col.categories.size();
    const std::string find = Subst("@find", {}, d_, o_.name, d_ == Dialect::kCpp) + "(" + in +
                             f.field + ", " + std::to_string(cat_offset_[c]) + ", " +
                             std::to_string(n) + ")";
    // Categories that are missing markers: keel reads them as missing.
    std::string unmark;
    if (!marker_cats_[c].empty()) {
      std::string cond, names;
      for (size_t k : marker_cats_[c]) {
        cond += (cond.empty() ? "k == " : " || k == ") + std::to_string(k);
        names += (names.empty() ? "\"" : ", \"") + CommentText(col.categories[k], 30) + "\"";
      }
      unmark = "  if (" + cond + ") k = -1; /* " + names +
               ": missing markers, which keel reads as missing */\n";
    }
    if (m_.pipeline.encoding() == data::CategoricalEncoding::kOneHot) {
      if (n == 0) {
        body += "  (void)" + in + f.field + "; /* no categories: no features */\n";
        continue;
      }
      uses_i = uses_k = true;
      body += "  k = " + find + ";\n" + unmark;
      body += "  for (i = 0; i < " + std::to_string(n) + "; ++i) x[" + std::to_string(first) +
              " + i] = 0.0f;\n";
      body += "  if (k >= 0) x[" + std::to_string(first) + " + k] = 1.0f;\n";
    } else {
      const std::string nan = d_ == Dialect::kC ? "NAN" : "detail::nan_f";
      if (n == 0) {
        body += "  (void)" + in + f.field + ";\n  " + xf + " = " + nan + ";\n";
        continue;
      }
      uses_k = true;
      body += "  k = " + find + ";\n" + unmark;
      body += "  " + xf + " = k >= 0 ? (float)k : " + nan + ";\n";
    }
  }
  std::string decl;
  if (uses_i) decl += "  int i;\n";
  if (uses_k) decl += "  int k;\n";
  return decl + body;
}

std::string Generator::PredictBody() {
  const bool outside = d_ == Dialect::kCpp;
  auto S = [&](std::string_view t) { return Subst(t, {}, d_, o_.name, outside); };
  const std::string G = std::to_string(model_.num_groups);
  std::string s;
  s += "  " + acc_ + " acc[" + G + "];\n";
  const Transform tr = model_.transform;
  if (tr == Transform::kSoftmax || tr == Transform::kSoftmaxArgmax) {
    s += "  float m[" + G + "];\n";
  }
  if (tr == Transform::kSoftmax) s += "  float mx;\n  double sum = 0.0;\n";
  if (tr == Transform::kSoftmaxArgmax) s += "  int best = 0;\n";
  s += "  int g;\n";
  s += "  for (g = 0; g < " + G + "; ++g) acc[g] = " + S("@base") + "[g];\n";
  if (!L_.roots.empty()) s += "  " + S("@trees") + "(x, acc);\n";
  if (!model_.linear.empty()) s += "  " + S("@linear") + "(x, acc);\n";
  const std::string exp = Exp();
  switch (tr) {
    case Transform::kIdentity:
      s += "  for (g = 0; g < " + G + "; ++g) out[g] = (float)acc[g];\n";
      break;
    case Transform::kSigmoid:
      s += "  for (g = 0; g < " + G + "; ++g) out[g] = 1.0f / (1.0f + " + exp +
           "(-(float)acc[g]));\n";
      break;
    case Transform::kExp:
      s += "  for (g = 0; g < " + G + "; ++g) out[g] = " + exp + "((float)acc[g]);\n";
      break;
    case Transform::kHinge:
      s += "  for (g = 0; g < " + G + "; ++g) out[g] = (float)acc[g] > 0.0f ? 1.0f : 0.0f;\n";
      break;
    case Transform::kSoftmax:
      s += "  for (g = 0; g < " + G + "; ++g) m[g] = (float)acc[g];\n";
      s += "  mx = m[0];\n";
      s += "  for (g = 1; g < " + G + "; ++g) {\n    if (mx < m[g]) mx = m[g];\n  }\n";
      s += "  for (g = 0; g < " + G + "; ++g) {\n    out[g] = " + exp +
           "(m[g] - mx);\n    sum += out[g];\n  }\n";
      s += "  for (g = 0; g < " + G + "; ++g) out[g] /= (float)sum;\n";
      break;
    case Transform::kSoftmaxArgmax:
      s += "  for (g = 0; g < " + G + "; ++g) m[g] = (float)acc[g];\n";
      s += "  for (g = 1; g < " + G + "; ++g) {\n    if (m[g] > m[best]) best = g;\n  }\n";
      s += "  out[0] = (float)best;\n";
      break;
  }
  return s;
}

std::string Generator::XMacro() {
  std::string s = "#define " + upper_ + "_INPUTS(X)";
  for (const InputField& f : inputs_) {
    const char* kind = f.column->type == data::ColumnType::kCategorical ? "TEXT"
                       : f.column->type == data::ColumnType::kBoolean   ? "BOOLEAN"
                                                                        : "NUMBER";
    s += " \\\n  X(" + f.field + ", " + CString(f.column->name) + ", " + kind + ")";
  }
  return s + "\n";
}

std::string Generator::InputDoc(const InputField& f) const {
  const data::InputColumn& col = *f.column;
  const std::string name = "\"" + CommentText(col.name, 60) + "\"";
  const size_t first = col.first_feature;
  if (col.type == data::ColumnType::kNumeric) {
    return name + ": number -> x[" + std::to_string(first) + "]; NaN: missing";
  }
  if (col.type == data::ColumnType::kBoolean) {
    return name + ": boolean 0 or 1 -> x[" + std::to_string(first) + "]; NaN: missing";
  }
  const size_t n = col.categories.size();
  if (m_.pipeline.encoding() == data::CategoricalEncoding::kOneHot) {
    return name + ": text, " + std::to_string(n) + " categories -> one-hot x[" +
           std::to_string(first) + ".." + std::to_string(first + n - (n > 0)) +
           "]; NULL, missing or unknown: all 0";
  }
  return name + ": text, " + std::to_string(n) + " categories -> index in x[" +
         std::to_string(first) + "]; NULL, missing or unknown: NaN";
}

std::string Generator::ModelSummary() const {
  // The format comes from the package's MLmodel: comment text only.
  std::string s =
      CommentText(model_.source_format.empty() ? m_.info.format : model_.source_format, 40);
  s += ", " + std::string(TaskName(model_.task)) + " (" + TransformName(model_.transform) + ")";
  if (!model_.trees.empty()) s += ", " + std::to_string(model_.trees.size()) + " trees";
  if (!model_.linear.empty()) s += ", linear";
  s += ", " + std::to_string(model_.num_features) + " features from " +
       std::to_string(inputs_.size()) + " input columns";
  s += ", " + std::string(use_double_ ? "double" : "float") + " sums";
  return s;
}

// Bytes of x86-64 code GCC 12 makes at -Os from the parts of the generated
// C: a least-squares fit (weighted for relative error) to the `size -A`
// .text of generated objects for 190 kernel shapes, whose worst estimate is
// 7% off (tests/unit/model_codegen_test.cc: DISABLED_CodeSizeCalibration
// prints the data; the ExportC tests check every estimate they make is within
// the README's 25%). The code depends on the kernel shape, not on the number
// of trees or nodes, except that the fast layout's eight-tree step is only
// compiled when there are at least 8 trees and its partial step only when the
// count is not a multiple of 8.
struct CodeBytesModel {
  double fixed;               // encode, predict, predict_encoded; sigmoid, one group
  double fast_float;          // fast tree kernel, leaves in nodes (float sums)
  double fast_double;         // fast tree kernel, per-node double leaves
  double fast_full_steps;     // fast: the 8-tree step (at least 8 trees)
  double fast_partial_steps;  // fast: the partial step (trees % 8 != 0)
  double general;             // general tree kernel and split rule
  double general_cats;        // + the categorical split rule
  double groups;              // trees add to acc[group[t]] (several groups)
  double linear_float;        // linear part, float sums
  double linear_double;       // linear part, double sums
  double linear_groups;       // linear part over several groups
  double transform[6];        // by Transform, one group (relative to sigmoid)
  double transform_multi[6];  // by Transform, several groups (relative to sigmoid)
  double find;                // the category lookup (any categorical column)
  double per_number;          // encode: one numeric or boolean column
  double per_onehot;          // encode: one categorical column, one-hot
  double per_native;          // encode: one categorical column, native
  double per_marker;          // encode: a category that is a missing marker
};
constexpr CodeBytesModel kCodeBytes = {
    .fixed = 41,
    .fast_float = 202,
    .fast_double = 198,
    .fast_full_steps = 161,
    .fast_partial_steps = 80,
    .general = 167,
    .general_cats = 158,
    .groups = 84,
    .linear_float = 49,
    .linear_double = 54,
    .linear_groups = 36,
    .transform = {-27, 6, 0, 0, -15, -7},
    .transform_multi = {-31, 8, 105, 6, -15, 11},
    .find = 106,
    .per_number = 15,
    .per_onehot = 59,
    .per_native = 39,
    .per_marker = 10,
};

uint64_t Generator::CodeBytes() const {
  const CodeBytesModel& k = kCodeBytes;
  double b = k.fixed;
  const size_t trees = L_.roots.size();
  if (trees > 0) {
    if (L_.general) {
      b += k.general + (L_.cats.empty() ? 0 : k.general_cats);
    } else {
      b += L_.leaf_in_node ? k.fast_float : k.fast_double;
      if (trees >= static_cast<size_t>(kTreesPerStep)) b += k.fast_full_steps;
      if (trees % kTreesPerStep != 0) b += k.fast_partial_steps;
    }
    if (model_.num_groups > 1) b += k.groups;
  }
  if (!model_.linear.empty()) {
    b += use_double_ ? k.linear_double : k.linear_float;
    if (model_.num_groups > 1) b += k.linear_groups;
  }
  const int t = static_cast<int>(model_.transform);
  b += model_.num_groups > 1 ? k.transform_multi[t] : k.transform[t];
  if (!cat_text_.empty()) b += k.find;
  const bool onehot = m_.pipeline.encoding() == data::CategoricalEncoding::kOneHot;
  for (size_t c = 0; c < inputs_.size(); ++c) {
    if (inputs_[c].column->type != data::ColumnType::kCategorical) {
      b += k.per_number;
    } else {
      b += onehot ? k.per_onehot : k.per_native;
      b += k.per_marker * static_cast<double>(marker_cats_[c].size());
    }
  }
  return static_cast<uint64_t>(std::max(b, 0.0) + 0.5);
}

std::string Generator::KernelShape() const {
  std::string s = L_.roots.empty()                 ? std::string("no trees")
                  : !L_.general && L_.leaf_in_node ? std::string("fast tree layout, float sums")
                  : !L_.general                    ? std::string("fast tree layout, double sums")
                  : L_.cats.empty()
                      ? "general tree layout, " + acc_ + " sums"
                      : "general tree layout with categorical splits, " + acc_ + " sums";
  if (!model_.linear.empty()) s += ", a linear part";
  s += ", " + std::to_string(model_.num_groups) + " output group" +
       (model_.num_groups > 1 ? "s" : "") + ", " + TransformName(model_.transform);
  size_t numbers = 0, cats = 0;
  for (const InputField& f : inputs_) {
    (f.column->type == data::ColumnType::kCategorical ? cats : numbers) += 1;
  }
  s += ", " + std::to_string(numbers) + " numeric/boolean";
  if (cats > 0) {
    s += " and " + std::to_string(cats) + " " +
         (m_.pipeline.encoding() == data::CategoricalEncoding::kOneHot ? "one-hot" : "native") +
         " categorical";
  }
  s += " input columns";
  return s;
}

std::string Generator::OutputDoc() const {
  // From the package's MLmodel, unchecked: comment text only (no "*/",
  // newline, trigraph or trailing backslash can reach the generated source).
  const std::string name = CommentText(m_.info.output_name, 60);
  const auto& classes = m_.info.classes;
  if (model_.transform == Transform::kSoftmaxArgmax) {
    return "out[0] = " + name + ": the index of the most likely class";
  }
  if (model_.num_outputs() == 1) {
    std::string s = "out[0] = " + name;
    if (model_.task == Task::kBinary && classes.size() == 2) {
      s += " (class \"" + CommentText(classes[1], 40) + "\" vs \"" + CommentText(classes[0], 40) +
           "\")";
    }
    return s;
  }
  std::string s = "out[j] = " + name + " for class j:";
  for (size_t j = 0; j < static_cast<size_t>(model_.num_outputs()) && j < 32; ++j) {
    s += " " + std::to_string(j) + "=" +
         (j < classes.size() ? "\"" + CommentText(classes[j], 30) + "\"" : std::to_string(j));
  }
  if (model_.num_outputs() > 32) s += " ...";
  return s;
}

std::string Generator::CHeader() {
  const std::string& P = o_.name;
  std::string s;
  s += "/* " + P + ".h: generated by keel " KEEL_VERSION " (`keel export --format c`) from " +
       CommentText(o_.source) + ".\n * Do not edit; export again instead. See README.md.\n *\n";
  s += " * Model: " + ModelSummary() + ".\n";
  s += " * Outputs: " + OutputDoc() + ".\n *\n";
  s += " * Usage (C99, no allocation, no global state; thread-safe):\n";
  s += " *\n *   #include <math.h>            (NAN for missing numbers)\n";
  s += " *   #include \"" + P + ".h\"\n *\n";
  s += " *   " + P + "_input in;\n";
  for (size_t i = 0; i < inputs_.size() && i < 3; ++i) {
    const bool text = inputs_[i].column->type == data::ColumnType::kCategorical;
    std::string example =
        text ? (inputs_[i].column->categories.empty() ? std::string("NULL")
                                                      : CString(inputs_[i].column->categories[0]))
             : std::string("1.0");
    s += " *   in." + inputs_[i].field + " = " + CommentText(example, 40) + ";\n";
  }
  s += " *   ...                          (every field; NAN or NULL when missing)\n";
  s += " *   float out[" + upper_ + "_NUM_OUTPUTS];\n";
  s += " *   " + P + "_predict(&in, out);\n *\n";
  s += " * The outputs equal keel's (Predictor::PredictRow on the pipeline's encoding)\n"
       " * bit for bit when compiled with FLT_EVAL_METHOD 0, without -ffast-math (or any\n"
       " * flag it implies) and with -ffp-contract=off (GCC implies it only in ISO C\n"
       " * modes such as -std=c99; clang contracts by default), and linked with the same\n"
       " * expf as keel (glibc's). README.md, Exactness, has the details. */\n";
  s += "#ifndef " + upper_ + "_H_\n#define " + upper_ + "_H_\n\n";
  s += "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n";
  s += "/* Raw input columns, encoded features, outputs per prediction. */\n";
  s += "#define " + upper_ + "_NUM_INPUTS " + std::to_string(inputs_.size()) + "\n";
  s += "#define " + upper_ + "_NUM_FEATURES " + std::to_string(model_.num_features) + "\n";
  s += "#define " + upper_ + "_NUM_OUTPUTS " + std::to_string(model_.num_outputs()) + "\n\n";
  s += "/* The input columns in order, for generic code: X(field, \"column name\", KIND)\n"
       " * with KIND NUMBER (double; NaN: missing), BOOLEAN (double 0 or 1; NaN:\n"
       " * missing) or TEXT (const char*; NULL: missing). */\n";
  s += XMacro() + "\n";
  s += "/* One raw record. Text fields are matched exactly (bytewise) against the\n"
       " * categories seen in training; anything else counts as missing. */\n";
  s += "typedef struct " + P + "_input {\n";
  for (const InputField& f : inputs_) {
    const bool text = f.column->type == data::ColumnType::kCategorical;
    s += "  " + std::string(text ? "const char* " : "double ") + f.field + "; /* " + InputDoc(f) +
         " */\n";
  }
  s += "} " + P + "_input;\n\n";
  s += "/* Encodes a raw record into the model's feature vector, as keel's pipeline does. */\n";
  s +=
      "void " + P + "_encode(const " + P + "_input* in, float x[" + upper_ + "_NUM_FEATURES]);\n\n";
  s += "/* Predicts from an encoded feature vector (NaN: missing) into out. */\n";
  s += "void " + P + "_predict_encoded(const float x[" + upper_ + "_NUM_FEATURES], float out[" +
       upper_ + "_NUM_OUTPUTS]);\n\n";
  s += "/* " + P + "_encode, then " + P + "_predict_encoded. */\n";
  s += "void " + P + "_predict(const " + P + "_input* in, float out[" + upper_ +
       "_NUM_OUTPUTS]);\n\n";
  s += "#ifdef __cplusplus\n}  /* extern \"C\" */\n#endif\n\n#endif /* " + upper_ + "_H_ */\n";
  return s;
}

std::string Generator::CSource() {
  const std::string& P = o_.name;
  std::string s;
  s += "/* " + P + ".c: generated by keel " KEEL_VERSION " (`keel export --format c`) from " +
       CommentText(o_.source) + ".\n * Do not edit; export again instead. See " + P +
       ".h and README.md. */\n";
  s += "#include \"" + P + ".h\"\n\n#include <math.h>\n#include <stdint.h>\n\n";
  s += Tables();
  s += Kernels();
  s += "void " + P + "_encode(const " + P + "_input* in, float x[" + upper_ +
       "_NUM_FEATURES]) {\n" + EncodeBody() + "}\n\n";
  s += "void " + P + "_predict_encoded(const float x[" + upper_ + "_NUM_FEATURES], float out[" +
       upper_ + "_NUM_OUTPUTS]) {\n" + PredictBody() + "}\n\n";
  s += "void " + P + "_predict(const " + P + "_input* in, float out[" + upper_ +
       "_NUM_OUTPUTS]) {\n  float x[" + upper_ + "_NUM_FEATURES];\n  " + P + "_encode(in, x);\n  " +
       P + "_predict_encoded(x, out);\n}\n";
  return s;
}

std::string Generator::CppHeader() {
  const std::string& P = o_.name;
  std::string s;
  s += "// " + P + ".hpp: generated by keel " KEEL_VERSION " (`keel export --format cpp-header`)\n";
  s += "// from " + CommentText(o_.source) +
       ". Do not edit; export again instead. See README.md.\n//\n";
  s += "// Model: " + ModelSummary() + ".\n";
  s += "// Outputs: " + OutputDoc() + ".\n//\n";
  s += "// Usage (C++17, header only, no allocation, no global state; thread-safe):\n//\n";
  s += "//   #include \"" + P + ".hpp\"\n//\n";
  s += "//   " + P + "::Input in;  // every field starts missing (NaN / nullptr)\n";
  for (size_t i = 0; i < inputs_.size() && i < 3; ++i) {
    const bool text = inputs_[i].column->type == data::ColumnType::kCategorical;
    std::string example =
        text ? (inputs_[i].column->categories.empty() ? std::string("nullptr")
                                                      : CString(inputs_[i].column->categories[0]))
             : std::string("1.0");
    s += "//   in." + inputs_[i].field + " = " + CommentText(example, 40) + ";\n";
  }
  s += "//   float out[" + P + "::kNumOutputs];\n";
  s += "//   " + P + "::Predict(in, out);\n//\n";
  s += "// The outputs equal keel's (Predictor::PredictRow on the pipeline's encoding)\n"
       "// bit for bit when compiled with FLT_EVAL_METHOD 0, without -ffast-math (or any\n"
       "// flag it implies) and with -ffp-contract=off (GCC contracts by default in every\n"
       "// C++ mode, clang within expressions), and linked with the same expf as keel\n"
       "// (glibc's). README.md, Exactness, has the details.\n";
  s += "#ifndef " + upper_ + "_HPP_\n#define " + upper_ + "_HPP_\n\n";
  s += "#include <cmath>\n#include <cstdint>\n#include <limits>\n\n";
  s += "// The input columns in order, for generic code: X(field, \"column name\", KIND)\n"
       "// with KIND NUMBER (double; NaN: missing), BOOLEAN (double 0 or 1; NaN: missing)\n"
       "// or TEXT (const char*; nullptr: missing).\n";
  s += XMacro() + "\n";
  s += "namespace " + P + " {\n\n";
  s += "inline constexpr int kNumInputs = " + std::to_string(inputs_.size()) + ";\n";
  s += "inline constexpr int kNumFeatures = " + std::to_string(model_.num_features) + ";\n";
  s += "inline constexpr int kNumOutputs = " + std::to_string(model_.num_outputs()) + ";\n\n";
  s += "// One raw record. Text fields are matched exactly (bytewise) against the\n"
       "// categories seen in training; anything else counts as missing.\n";
  s += "struct Input {\n";
  for (const InputField& f : inputs_) {
    const bool text = f.column->type == data::ColumnType::kCategorical;
    s += "  " +
         std::string(text ? "const char* " + f.field + " = nullptr;"
                          : "double " + f.field + " = std::numeric_limits<double>::quiet_NaN();") +
         "  // " + InputDoc(f) + "\n";
  }
  s += "};\n\nnamespace detail {\n\n";
  s += "inline constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();\n";
  s += "inline constexpr float inf_f = std::numeric_limits<float>::infinity();\n\n";
  s += Tables();
  s += Kernels();
  s += "}  // namespace detail\n\n";
  s += "// Encodes a raw record into x[kNumFeatures], as keel's pipeline does.\n";
  s += "inline void Encode(const Input& in, float* x) {\n" + EncodeBody() + "}\n\n";
  s += "// Predicts from an encoded feature vector x[kNumFeatures] (NaN: missing) into\n"
       "// out[kNumOutputs].\n";
  s += "inline void PredictEncoded(const float* x, float* out) {\n" + PredictBody() + "}\n\n";
  s += "// Encode, then PredictEncoded.\n";
  s += "inline void Predict(const Input& in, float* out) {\n  float x[kNumFeatures];\n"
       "  Encode(in, x);\n  PredictEncoded(x, out);\n}\n\n";
  s += "}  // namespace " + P + "\n\n#endif  // " + upper_ + "_HPP_\n";
  return s;
}

std::string Generator::Readme(const std::vector<std::string>& files) {
  const std::string& P = o_.name;
  const bool c = d_ == Dialect::kC;
  uint64_t total = 0;
  for (const SizeRow& r : sizes_) total += r.bytes;
  const uint64_t stack =
      (L_.leaf_in_node ? 8ull : 4ull) * static_cast<uint64_t>(model_.num_features) +
      12ull * static_cast<uint64_t>(model_.num_groups) + 192;
  std::string s;
  s += "# " + P + "\n\n";
  s += "Generated by keel " KEEL_VERSION " (`keel export --format " +
       std::string(c ? "c" : "cpp-header") + "`) from " + CommentText(o_.source, 200) +
       ". Do not edit; export again instead.\n\n";
  s += "- Model: " + ModelSummary() + ".\n";
  s += "- Outputs: " + OutputDoc() + ".\n";
  s += "- Files: ";
  for (size_t i = 0; i < files.size(); ++i) s += (i ? ", `" : "`") + files[i] + "`";
  s += ".\n\n## Build\n\n```sh\n";
  if (c) {
    s += "cc -std=c99 -O2 -ffp-contract=off -c " + P + ".c   # any C99 compiler; see Exactness\n";
    s += "cc -std=c99 -O2 app.c " + P + ".o -lm   # -lm only for expf";
    s += NeedsExp() ? " (this model uses it)\n" : " (this model does not call it)\n";
  } else {
    s += "c++ -std=c++17 -O2 -ffp-contract=off app.cc   # header only; see Exactness\n";
  }
  s += "```\n\n";
  s += "No allocation, no global state (every table is constant data), no\n"
       "dependencies beyond " +
       std::string(NeedsExp() ? "`expf` from libm" : "the compiler") +
       ". Every function is re-entrant and thread-safe.\n\n";
  s += "## API\n\n```" + std::string(c ? "c" : "cpp") + "\n";
  if (c) {
    s +=
        "void " + P + "_encode(const " + P + "_input* in, float x[" + upper_ + "_NUM_FEATURES]);\n";
    s += "void " + P + "_predict_encoded(const float x[" + upper_ + "_NUM_FEATURES], float out[" +
         upper_ + "_NUM_OUTPUTS]);\n";
    s += "void " + P + "_predict(const " + P + "_input* in, float out[" + upper_ +
         "_NUM_OUTPUTS]);\n";
  } else {
    s += "void " + P + "::Encode(const " + P + "::Input& in, float* x);  // x[kNumFeatures]\n";
    s += "void " + P + "::PredictEncoded(const float* x, float* out);  // out[kNumOutputs]\n";
    s += "void " + P + "::Predict(const " + P + "::Input& in, float* out);\n";
  }
  s += "```\n\n";
  s += "`" + std::string(c ? P + "_input" : P + "::Input") +
       "` holds one raw record: numbers as `double` (NaN when missing), categories as\n"
       "`const char*` (NULL when missing). A text is looked up exactly (bytewise) among the\n"
       "categories seen in training; NULL, a missing marker (\"NA\", \"\", ...) and an\n"
       "unknown category all encode as keel encodes them (one-hot: all zeros; native: NaN).\n"
       "Numbers must be parsed by the caller (`strtod` gives the same double as keel).\n"
       "The `" +
       upper_ + "_INPUTS(X)` macro lists the columns for generic code.\n\n";
  s += "### Inputs\n\n| # | field | column | encoding |\n|---|---|---|---|\n";
  for (size_t i = 0; i < inputs_.size(); ++i) {
    std::string doc = InputDoc(inputs_[i]);
    for (char& ch : doc) {
      if (ch == '|') ch = '/';
    }
    const size_t colon = doc.find("\": ", 1) + 1;
    s += "| " + std::to_string(i) + " | `" + inputs_[i].field + "` | " + doc.substr(0, colon) +
         " | " + doc.substr(colon + 2) + " |\n";
  }
  s +=
      "\n## Sizes\n\nConstant data, computed by the generator. It is the same on every target (no\n"
      "pointers, so no relocations) and goes to `.rodata`, where compilers add alignment\n"
      "padding between tables (GCC on x86-64 aligns arrays of 32 bytes or more to 32) and\n"
      "may fold a tiny table into the code:\n\n"
      "| table | entries | bytes |\n|---|---:|---:|\n";
  for (const SizeRow& r : sizes_) {
    s += "| " + r.table + " | " + WithCommas(r.entries) + " | " + WithCommas(r.bytes) + " |\n";
  }
  s += "| **total** | | **" + WithCommas(total) + "** |\n\n";
  s += "Code: about " + WithCommas(CodeBytes()) +
       " bytes of machine code (`.text`) as x86-64 GCC 12 compiles " +
       (c ? "`" + P + ".c`" : "`" + P + "::Predict` and what it calls") +
       " at `-Os`: keel's estimate for this model's kernel shape (" + KernelShape() +
       ") from measurements of each part on that compiler, within 25% of what `size` reports "
       "there. The code does not grow with the number of trees; other targets, compilers and "
       "options differ. Measure yours:\n\n```sh\n";
  if (c) {
    s += "arm-none-eabi-gcc -std=c99 -Os -ffp-contract=off -mcpu=cortex-m4 -mfloat-abi=hard -c " +
         P + ".c\narm-none-eabi-size -A " + P + ".o      # .text: code, .rodata: the tables\n" +
         "cc -std=c99 -Os -ffp-contract=off -c " + P + ".c && size -A " + P + ".o   # host\n";
  } else {
    s += "printf '#include \"" + P + ".hpp\"\\nvoid f(const " + P + "::Input& i, float* o) { " + P +
         "::Predict(i, o); }\\n' > use.cc\n"
         "c++ -std=c++17 -Os -ffp-contract=off -c use.cc && size -A use.o   # .text*, .rodata*\n";
  }
  s += "```\n\n";
  s += "Stack: about " + WithCommas(stack) + " bytes per `" + (c ? P + "_predict" : "Predict") +
       "` call: " + (L_.leaf_in_node ? "8" : "4") + " x " + std::to_string(model_.num_features) +
       " features (the encoded vector" +
       (L_.leaf_in_node ? " and the tree kernel's copy of it with one more slot" : "") +
       ") + 12 x " + std::to_string(model_.num_groups) +
       " output groups (sums and softmax inputs) + 192 (frames, saved registers, tree\n"
       "indexes); an upper bound of what GCC 12 uses at `-O2` on x86-64.\n\n";
  s += "## Exactness\n\n"
       "The outputs are bit for bit keel's (`Predictor::PredictRow` on the vector keel's\n"
       "pipeline encodes from the same raw values): margins start at the base margin and\n"
       "add leaf values in tree order in the model's accumulator type (" +
       acc_ +
       "), the linear\npart adds `x * w` products over non-missing inputs, and the transform uses\n"
       "the same formula on float margins. This holds when the code is\n\n"
       "- compiled for IEEE-754 binary32/binary64 arithmetic with `FLT_EVAL_METHOD == 0`\n"
       "  (not x87; a soft-float library must round correctly);\n"
       "- compiled without `-ffast-math` and without any flag it implies\n"
       "  (`-ffinite-math-only`, `-fassociative-math`, `-freciprocal-math`,\n"
       "  `-funsafe-math-optimizations`, ...): NaN tests must work and sums must not be\n"
       "  reordered;\n";
  if (c) {
    s += "- compiled with `-ffp-contract=off` (no fused multiply-add): GCC implies it for C\n"
         "  only in an ISO mode (`-std=c99`, `-std=c11`, ...), not in its default GNU modes\n"
         "  (`-std=gnu11`, `-std=gnu17`); clang contracts by default (the linear kernel also\n"
         "  carries `#pragma STDC FP_CONTRACT OFF` for clang). Other compilers: disable\n"
         "  contraction by their own option;\n";
  } else {
    s += "- compiled with `-ffp-contract=off` (no fused multiply-add): GCC contracts by\n"
         "  default in every C++ mode and clang contracts within expressions (the linear\n"
         "  kernel carries `#pragma STDC FP_CONTRACT OFF` for clang only). Other compilers:\n"
         "  disable contraction by their own option;\n";
  }
  s += std::string(
           "- linked with the same `expf` as keel (glibc's) when the output uses it (sigmoid,\n"
           "  softmax, exp; this model: ") +
       (NeedsExp() ? "yes" : "no, so this condition does not apply") +
       "). Another libm's `expf` may differ in the last bit.\n\n"
       "keel's tests check this bit for bit on x86-64 Linux with glibc 2.36 and " +
       std::string(c ? "GCC 12 and clang 14" : "GCC 12 (g++)") +
       ";\nother targets and compilers meeting these conditions are expected to match but are\n"
       "not tested.\n";
  return s;
}

}  // namespace

Result<std::vector<ExportedFile>> GenerateC(const LoadedModel& model,
                                            const ExportOptions& options) {
  KEEL_ASSIGN_OR_RETURN(Layout layout, BuildLayout(model.model));
  Generator g(model, options, Dialect::kC, std::move(layout));
  KEEL_RETURN_IF_ERROR(g.Prepare());
  std::vector<ExportedFile> files;
  files.push_back({options.name + ".h", g.CHeader()});
  files.push_back({options.name + ".c", g.CSource()});
  files.push_back({"README.md", g.Readme({options.name + ".h", options.name + ".c"})});
  return files;
}

Result<std::vector<ExportedFile>> GenerateCppHeader(const LoadedModel& model,
                                                    const ExportOptions& options) {
  KEEL_ASSIGN_OR_RETURN(Layout layout, BuildLayout(model.model));
  Generator g(model, options, Dialect::kCpp, std::move(layout));
  KEEL_RETURN_IF_ERROR(g.Prepare());
  std::vector<ExportedFile> files;
  files.push_back({options.name + ".hpp", g.CppHeader()});
  files.push_back({"README.md", g.Readme({options.name + ".hpp"})});
  return files;
}

}  // namespace keel::model
