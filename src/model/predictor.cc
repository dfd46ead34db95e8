// The tree evaluator.
//
// Layout: all trees' nodes live in one array of 16-byte CNodes. The two
// children of a split are adjacent (right = left + 1), so a step is
// `i = node.left + go_right`. Leaves point to themselves and carry a NaN
// threshold with the default-left flag, so `go_right` is always false at a
// leaf: a tree is evaluated by exactly `depth` branch-free steps, which lets
// the batch kernel advance a block of rows level by level (independent work
// the CPU overlaps) and the single-row kernel advance several trees at once.
//
// Models with categorical splits or LightGBM's zero/NaN rules use the general
// kernel, which walks each tree until it reaches a leaf.
#include "keel/model/predictor.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#include "keel/core/thread_pool.h"


namespace keel::model {
namespace {

enum NodeFlags : uint32_t {
  kDefaultLeft = 1u << 0,
  kLeafFlag = 1u << 1,
  kCategoricalFlag = 1u << 2,
  kNanAsZero = 1u << 3,
  kZeroMissing = 1u << 4,
  kCatGoLeft = 1u << 5,
  kCatInvalidDefault = 1u << 6,
};

struct CNode {
  float threshold;
  uint32_t feature;
  int32_t left;  // right child is left + 1; a leaf points to itself
  uint32_t flags;
};
static_assert(sizeof(CNode) == 16);

constexpr int kTreesPerStep = 8;  // trees advanced together on the single-row path
constexpr size_t kRowBlock = 64;  // rows advanced together on the batch path
constexpr float kZeroThreshold = 1e-35f;

}  // namespace

struct Predictor::Compiled {
  int32_t num_features = 0;
  int32_t num_groups = 1;
  int32_t num_outputs = 1;
  Task task = Task::kRegression;
  Transform transform = Transform::kIdentity;
  bool use_double = false;
  bool general = false;  // needs the general kernel

  std::vector<double> base;  // per group
  std::vector<CNode> nodes;
  std::vector<double> leaf;  // per node; leaf value * tree weight
  std::vector<float> leaf_f;
  std::vector<int32_t> root;  // per tree
  std::vector<int32_t> depth;
  std::vector<int32_t> group;
  std::vector<int32_t> chunk_depth;  // per kTreesPerStep trees: max depth
  // Categorical splits (general kernel only): bitset words per node.
  std::vector<uint32_t> cat_offset;  // per node
  std::vector<uint32_t> cat_words;   // per node
  std::vector<uint32_t> cat_bits;

  bool has_linear = false;
  std::vector<double> lin_w;  // [f * groups + g]
  std::vector<float> lin_w_f;
  std::vector<double> lin_b;

  template <bool kGeneral>
  int32_t Leaf(int32_t i, const float* x, int32_t steps) const;
  bool GoRightGeneral(int32_t i, const CNode& n, float x) const;

  template <typename Acc>
  void MarginRow(const float* x, Acc* acc) const;
  template <typename Acc, bool kMayHaveNan, typename Leaves>
  void TreesRow(const float* x, Acc* acc, const Leaves& lv) const;
  template <typename Acc, bool kGeneral>
  void MarginBlock(const float* x, size_t rows, Acc* acc) const;
  template <typename Acc>
  void MarginRange(const float* x, size_t begin, size_t end, float* out, bool transform) const;
  void ApplyTransform(const float* margin, float* out) const;
};

namespace {

// kMayHaveNan = false is for inputs known to hold no NaN: then `x >= t` is
// the whole decision (a leaf's NaN threshold keeps it in place).
template <bool kMayHaveNan>
inline bool GoRightFast(const CNode& n, float x) {
  const bool ge = x >= n.threshold;
  if constexpr (!kMayHaveNan) {
    return ge;
  } else {
    // NaN compares false both ways: with default-left, `x >= t` sends NaN
    // left; otherwise `!(x < t)` sends it right.
    const bool nlt = !(x < n.threshold);
    return (n.flags & kDefaultLeft) ? ge : nlt;
  }
}

bool AnyNan(const float* x, size_t n) {
  bool nan = false;
  for (size_t i = 0; i < n; ++i) nan |= x[i] != x[i];  // vectorizes; no early exit
  return nan;
}

// Leaf slots for `rows` rows (row r at x + r * nf) of one numeric-only tree:
// `steps` level-synchronous steps from `root`.
template <bool kMayHaveNan>
void Leaves(const CNode* nodes, const float* x, size_t nf, int32_t root, int32_t steps,
            size_t rows, int32_t* idx) {
  for (size_t r = 0; r < rows; ++r) idx[r] = root;
  for (int32_t d = 0; d < steps; ++d) {
    for (size_t r = 0; r < rows; ++r) {
      const CNode& nd = nodes[idx[r]];
      idx[r] = nd.left + static_cast<int32_t>(GoRightFast<kMayHaveNan>(nd, x[r * nf + nd.feature]));
    }
  }
}

}  // namespace

bool Predictor::Compiled::GoRightGeneral(int32_t i, const CNode& n, float x) const {
  const bool default_right = !(n.flags & kDefaultLeft);
  if (n.flags & kCategoricalFlag) {
    if (std::isnan(x)) return default_right;
    bool in_set = false;
    const uint32_t words = cat_words[static_cast<size_t>(i)];
    if (n.flags & kCatInvalidDefault) {
      // XGBoost: negative values, values >= 2^24 and categories beyond the
      // node's bitset are not in the set.
      if (x >= 0.0f && x < 16777216.0f) {
        const uint32_t cat = static_cast<uint32_t>(x);
        in_set = cat < words * 32u &&
                 ((cat_bits[cat_offset[static_cast<size_t>(i)] + cat / 32u] >> (cat % 32u)) & 1u);
      }
    } else {
      // LightGBM: the value truncated to int; negative -> not in the set.
      if (x <= -1.0f || x >= 2147483648.0f) {
        in_set = false;
      } else {
        const uint32_t cat = static_cast<uint32_t>(static_cast<int32_t>(x));
        in_set = cat < words * 32u &&
                 ((cat_bits[cat_offset[static_cast<size_t>(i)] + cat / 32u] >> (cat % 32u)) & 1u);
      }
    }
    const bool go_left = (n.flags & kCatGoLeft) ? in_set : !in_set;
    return !go_left;
  }
  if (std::isnan(x)) {
    if (n.flags & kNanAsZero) {
      x = 0.0f;
    } else {
      return default_right;
    }
  }
  if ((n.flags & kZeroMissing) && std::fabs(x) <= kZeroThreshold) return default_right;
  return !(x < n.threshold);
}

template <bool kGeneral>
inline int32_t Predictor::Compiled::Leaf(int32_t i, const float* x, int32_t steps) const {
  if constexpr (kGeneral) {
    for (;;) {
      const CNode& n = nodes[static_cast<size_t>(i)];
      if (n.flags & kLeafFlag) return i;
      i = n.left + static_cast<int32_t>(GoRightGeneral(i, n, x[n.feature]));
    }
  } else {
    for (int32_t d = 0; d < steps; ++d) {
      const CNode& n = nodes[static_cast<size_t>(i)];
      i = n.left + static_cast<int32_t>(GoRightFast<true>(n, x[n.feature]));
    }
    return i;
  }
}

template <typename Acc, bool kMayHaveNan, typename Leaves>
void Predictor::Compiled::TreesRow(const float* x, Acc* acc, const Leaves& lv) const {
  // Advance kTreesPerStep trees together: independent chains overlap.
  const int32_t trees = static_cast<int32_t>(root.size());
  int32_t idx[kTreesPerStep];
  for (int32_t t0 = 0; t0 < trees; t0 += kTreesPerStep) {
    const int32_t n = std::min(kTreesPerStep, trees - t0);
    for (int32_t k = 0; k < n; ++k) idx[k] = root[static_cast<size_t>(t0 + k)];
    const int32_t steps = chunk_depth[static_cast<size_t>(t0 / kTreesPerStep)];
    if (n == kTreesPerStep) {
      for (int32_t d = 0; d < steps; ++d) {
        for (int32_t k = 0; k < kTreesPerStep; ++k) {
          const CNode& nd = nodes[static_cast<size_t>(idx[k])];
          idx[k] = nd.left + static_cast<int32_t>(GoRightFast<kMayHaveNan>(nd, x[nd.feature]));
        }
      }
    } else {
      for (int32_t d = 0; d < steps; ++d) {
        for (int32_t k = 0; k < n; ++k) {
          const CNode& nd = nodes[static_cast<size_t>(idx[k])];
          idx[k] = nd.left + static_cast<int32_t>(GoRightFast<kMayHaveNan>(nd, x[nd.feature]));
        }
      }
    }
    // Sum in tree order, as the reference implementations do.
    for (int32_t k = 0; k < n; ++k) {
      acc[group[static_cast<size_t>(t0 + k)]] += lv[static_cast<size_t>(idx[k])];
    }
  }
}

template <typename Acc>
void Predictor::Compiled::MarginRow(const float* x, Acc* acc) const {
  for (int32_t g = 0; g < num_groups; ++g) acc[g] = static_cast<Acc>(base[static_cast<size_t>(g)]);
  const int32_t trees = static_cast<int32_t>(root.size());
  const auto& lv = [&]() -> const auto& {
    if constexpr (std::is_same_v<Acc, float>)
      return leaf_f;
    else
      return leaf;
  }
  ();
  if (general) {
    for (int32_t t = 0; t < trees; ++t) {
      acc[group[static_cast<size_t>(t)]] +=
          lv[static_cast<size_t>(Leaf<true>(root[static_cast<size_t>(t)], x, 0))];
    }
  } else {
    if (AnyNan(x, static_cast<size_t>(num_features))) {
      TreesRow<Acc, true>(x, acc, lv);
    } else {
      TreesRow<Acc, false>(x, acc, lv);
    }
  }
  if (has_linear) {
    const size_t groups = static_cast<size_t>(num_groups);
    for (size_t g = 0; g < groups; ++g) {
      Acc s = acc[g] + static_cast<Acc>(lin_b[g]);
      for (int32_t f = 0; f < num_features; ++f) {
        const float v = x[f];
        if (std::isnan(v)) continue;
        if constexpr (std::is_same_v<Acc, float>) {
          s += v * lin_w_f[static_cast<size_t>(f) * groups + g];
        } else {
          s += static_cast<double>(v) * lin_w[static_cast<size_t>(f) * groups + g];
        }
      }
      acc[g] = s;
    }
  }
}

template <typename Acc, bool kGeneral>
void Predictor::Compiled::MarginBlock(const float* x, size_t rows, Acc* acc) const {
  const size_t groups = static_cast<size_t>(num_groups);
  const size_t nf = static_cast<size_t>(num_features);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t g = 0; g < groups; ++g) acc[r * groups + g] = static_cast<Acc>(base[g]);
  }
  const auto& lv = [&]() -> const auto& {
    if constexpr (std::is_same_v<Acc, float>)
      return leaf_f;
    else
      return leaf;
  }
  ();
  int32_t idx[kRowBlock];
  const bool block_has_nan = !kGeneral && AnyNan(x, rows * nf);
  const size_t trees = root.size();
  for (size_t t = 0; t < trees; ++t) {
    const size_t g = static_cast<size_t>(group[t]);
    if constexpr (kGeneral) {
      for (size_t r = 0; r < rows; ++r) {
        acc[r * groups + g] += lv[static_cast<size_t>(Leaf<true>(root[t], x + r * nf, 0))];
      }
    } else {
      // Level by level over the block: each row's step is independent.
      if (block_has_nan) {
        Leaves<true>(nodes.data(), x, nf, root[t], depth[t], rows, idx);
      } else {
        Leaves<false>(nodes.data(), x, nf, root[t], depth[t], rows, idx);
      }
      for (size_t r = 0; r < rows; ++r) acc[r * groups + g] += lv[static_cast<size_t>(idx[r])];
    }
  }
  if (has_linear) {
    for (size_t r = 0; r < rows; ++r) {
      const float* row = x + r * nf;
      for (size_t gg = 0; gg < groups; ++gg) {
        Acc s = acc[r * groups + gg] + static_cast<Acc>(lin_b[gg]);
        for (size_t f = 0; f < nf; ++f) {
          const float v = row[f];
          if (std::isnan(v)) continue;
          if constexpr (std::is_same_v<Acc, float>) {
            s += v * lin_w_f[f * groups + gg];
          } else {
            s += static_cast<double>(v) * lin_w[f * groups + gg];
          }
        }
        acc[r * groups + gg] = s;
      }
    }
  }
}

template <typename Acc>
void Predictor::Compiled::MarginRange(const float* x, size_t begin, size_t end, float* out,
                                      bool transform) const {
  const size_t groups = static_cast<size_t>(num_groups);
  const size_t nf = static_cast<size_t>(num_features);
  const size_t outs = transform ? static_cast<size_t>(num_outputs) : groups;
  Acc acc[kRowBlock * 8];
  std::vector<Acc> big;  // for models with more than 8 groups
  Acc* a = acc;
  if (groups > 8) {
    big.resize(kRowBlock * groups);
    a = big.data();
  }
  std::vector<float> margin(groups);
  for (size_t b = begin; b < end; b += kRowBlock) {
    const size_t rows = std::min(kRowBlock, end - b);
    if (general) {
      MarginBlock<Acc, true>(x + b * nf, rows, a);
    } else {
      MarginBlock<Acc, false>(x + b * nf, rows, a);
    }
    for (size_t r = 0; r < rows; ++r) {
      float* o = out + (b + r) * outs;
      if (!transform) {
        for (size_t g = 0; g < groups; ++g) o[g] = static_cast<float>(a[r * groups + g]);
      } else {
        for (size_t g = 0; g < groups; ++g) margin[g] = static_cast<float>(a[r * groups + g]);
        ApplyTransform(margin.data(), o);
      }
    }
  }
}

void Predictor::Compiled::ApplyTransform(const float* m, float* out) const {
  const int32_t groups = num_groups;
  switch (transform) {
    case Transform::kIdentity:
      for (int32_t g = 0; g < groups; ++g) out[g] = m[g];
      break;
    case Transform::kSigmoid:
      for (int32_t g = 0; g < groups; ++g) out[g] = 1.0f / (1.0f + std::exp(-m[g]));
      break;
    case Transform::kExp:
      for (int32_t g = 0; g < groups; ++g) out[g] = std::exp(m[g]);
      break;
    case Transform::kHinge:
      for (int32_t g = 0; g < groups; ++g) out[g] = m[g] > 0.0f ? 1.0f : 0.0f;
      break;
    case Transform::kSoftmax: {
      float mx = m[0];
      for (int32_t g = 1; g < groups; ++g) mx = std::max(mx, m[g]);
      double sum = 0.0;
      for (int32_t g = 0; g < groups; ++g) {
        out[g] = std::exp(m[g] - mx);
        sum += out[g];
      }
      for (int32_t g = 0; g < groups; ++g) out[g] /= static_cast<float>(sum);
      break;
    }
    case Transform::kSoftmaxArgmax: {
      int32_t best = 0;
      for (int32_t g = 1; g < groups; ++g) {
        if (m[g] > m[best]) best = g;
      }
      out[0] = static_cast<float>(best);
      break;
    }
  }
}

Result<Predictor> Predictor::Compile(const Model& model) {
  auto c = std::make_shared<Compiled>();
  c->num_features = model.num_features;
  c->num_groups = model.num_groups;
  c->num_outputs = model.num_outputs();
  c->task = model.task;
  c->transform = model.transform;
  c->use_double = model.accumulator == Accumulator::kDouble;
  if (model.num_features <= 0 || model.num_groups <= 0 ||
      model.base_margin.size() != static_cast<size_t>(model.num_groups)) {
    return InvalidArgument("model header is inconsistent (features, groups or base margin)");
  }
  c->base = model.base_margin;

  size_t total = 0;
  for (const Tree& t : model.trees) total += t.nodes.size();
  c->nodes.reserve(total + model.trees.size());
  c->leaf.reserve(total + model.trees.size());
  for (size_t ti = 0; ti < model.trees.size(); ++ti) {
    const Tree& t = model.trees[ti];
    if (t.nodes.empty() || t.group < 0 || t.group >= model.num_groups) {
      return InvalidArgument("tree " + std::to_string(ti) + " is malformed");
    }
    // Breadth-first placement; children of a split take two adjacent slots.
    const int32_t base = static_cast<int32_t>(c->nodes.size());
    std::vector<std::pair<int32_t, int32_t>> queue;  // (ir node, compiled slot)
    queue.reserve(t.nodes.size());
    queue.push_back({0, base});
    c->nodes.emplace_back();
    c->leaf.push_back(0.0);
    int32_t max_depth = 0;
    std::vector<int32_t> node_depth(t.nodes.size(), 0);
    for (size_t q = 0; q < queue.size(); ++q) {
      auto [ir, slot] = queue[q];
      if (ir < 0 || static_cast<size_t>(ir) >= t.nodes.size() || queue.size() > t.nodes.size()) {
        return InvalidArgument("tree " + std::to_string(ti) + " is not a tree");
      }
      const Node& n = t.nodes[static_cast<size_t>(ir)];
      CNode& cn = c->nodes[static_cast<size_t>(slot)];
      max_depth = std::max(max_depth, node_depth[static_cast<size_t>(ir)]);
      if (n.kind == Node::Kind::kLeaf) {
        cn = CNode{std::numeric_limits<float>::quiet_NaN(), 0, slot, kDefaultLeft | kLeafFlag};
        c->leaf[static_cast<size_t>(slot)] = n.leaf_value * t.weight;
        continue;
      }
      if (n.feature >= static_cast<uint32_t>(model.num_features)) {
        return InvalidArgument("tree " + std::to_string(ti) + ": feature out of range");
      }
      const int32_t left = static_cast<int32_t>(c->nodes.size());
      c->nodes.emplace_back();
      c->nodes.emplace_back();
      c->leaf.push_back(0.0);
      c->leaf.push_back(0.0);
      CNode& cur = c->nodes[static_cast<size_t>(slot)];  // re-fetch after growth
      cur.feature = n.feature;
      cur.left = left;
      cur.flags = n.default_left ? kDefaultLeft : 0u;
      cur.threshold = n.threshold;
      if (n.kind == Node::Kind::kCategorical) {
        cur.flags |= kCategoricalFlag;
        if (n.categories_go_left) cur.flags |= kCatGoLeft;
        if (n.invalid == InvalidCategory::kDefault) cur.flags |= kCatInvalidDefault;
        c->general = true;
      } else if (n.missing == MissingRule::kNanAsZero) {
        cur.flags |= kNanAsZero;
        c->general = true;
      } else if (n.missing == MissingRule::kZeroAndNanDefault) {
        cur.flags |= kZeroMissing;
        c->general = true;
      }
      for (int32_t child : {n.left, n.right}) {
        if (child < 0 || static_cast<size_t>(child) >= t.nodes.size()) {
          return InvalidArgument("tree " + std::to_string(ti) + ": child out of range");
        }
        node_depth[static_cast<size_t>(child)] = node_depth[static_cast<size_t>(ir)] + 1;
      }
      queue.push_back({n.left, left});
      queue.push_back({n.right, left + 1});
    }
    c->root.push_back(base);
    c->depth.push_back(max_depth);
    c->group.push_back(t.group);
  }
  if (c->general) {
    c->cat_offset.assign(c->nodes.size(), 0);
    c->cat_words.assign(c->nodes.size(), 0);
    // Walk IR and compiled trees in the same breadth-first order to attach bitsets.
    for (size_t ti = 0; ti < model.trees.size(); ++ti) {
      const Tree& t = model.trees[ti];
      std::vector<std::pair<int32_t, int32_t>> queue = {{0, c->root[ti]}};
      for (size_t q = 0; q < queue.size(); ++q) {
        auto [ir, slot] = queue[q];
        const Node& n = t.nodes[static_cast<size_t>(ir)];
        if (n.kind == Node::Kind::kLeaf) continue;
        const int32_t left = c->nodes[static_cast<size_t>(slot)].left;
        if (n.kind == Node::Kind::kCategorical) {
          const uint32_t max_cat = n.categories.empty() ? 0 : n.categories.back();
          const uint32_t words = n.categories.empty() ? 0 : max_cat / 32u + 1u;
          c->cat_offset[static_cast<size_t>(slot)] = static_cast<uint32_t>(c->cat_bits.size());
          c->cat_words[static_cast<size_t>(slot)] = words;
          c->cat_bits.resize(c->cat_bits.size() + words, 0u);
          uint32_t* bits = c->cat_bits.data() + c->cat_offset[static_cast<size_t>(slot)];
          for (uint32_t cat : n.categories) bits[cat / 32u] |= 1u << (cat % 32u);
        }
        queue.push_back({n.left, left});
        queue.push_back({n.right, left + 1});
      }
    }
  }
  c->leaf_f.resize(c->leaf.size());
  for (size_t i = 0; i < c->leaf.size(); ++i) c->leaf_f[i] = static_cast<float>(c->leaf[i]);
  for (size_t t0 = 0; t0 < c->root.size(); t0 += kTreesPerStep) {
    int32_t d = 0;
    for (size_t k = t0; k < std::min(c->root.size(), t0 + kTreesPerStep); ++k) {
      d = std::max(d, c->depth[k]);
    }
    c->chunk_depth.push_back(d);
  }
  if (!model.linear.empty()) {
    const Linear& lin = model.linear.front();
    if (lin.weights.size() != static_cast<size_t>(model.num_features) * model.num_groups ||
        lin.bias.size() != static_cast<size_t>(model.num_groups)) {
      return InvalidArgument("linear part has the wrong shape");
    }
    c->has_linear = true;
    c->lin_w = lin.weights;
    c->lin_b = lin.bias;
    c->lin_w_f.assign(lin.weights.begin(), lin.weights.end());
  }
  return Predictor(std::move(c));
}

int32_t Predictor::num_features() const { return c_->num_features; }
int32_t Predictor::num_groups() const { return c_->num_groups; }
int32_t Predictor::num_outputs() const { return c_->num_outputs; }
Task Predictor::task() const { return c_->task; }
Transform Predictor::transform() const { return c_->transform; }

void Predictor::PredictRowMargin(const float* x, float* out) const {
  const int32_t groups = c_->num_groups;
  if (c_->use_double) {
    double small[16];
    std::vector<double> big;
    double* acc = small;
    if (groups > 16) {
      big.resize(static_cast<size_t>(groups));
      acc = big.data();
    }
    c_->MarginRow<double>(x, acc);
    for (int32_t g = 0; g < groups; ++g) out[g] = static_cast<float>(acc[g]);
  } else if (groups <= 16) {
    float acc[16];
    c_->MarginRow<float>(x, acc);
    std::memcpy(out, acc, sizeof(float) * static_cast<size_t>(groups));
  } else {
    std::vector<float> acc(static_cast<size_t>(groups));
    c_->MarginRow<float>(x, acc.data());
    std::memcpy(out, acc.data(), sizeof(float) * static_cast<size_t>(groups));
  }
}

void Predictor::PredictRow(const float* x, float* out) const {
  const int32_t groups = c_->num_groups;
  if (groups <= 16) {
    float margin[16];
    PredictRowMargin(x, margin);
    c_->ApplyTransform(margin, out);
  } else {
    std::vector<float> margin(static_cast<size_t>(groups));
    PredictRowMargin(x, margin.data());
    c_->ApplyTransform(margin.data(), out);
  }
}

namespace {
template <typename Fn>
void RunRanges(size_t rows, ThreadPool* pool, Fn&& fn) {
  if (pool == nullptr || pool->size() <= 1 || rows < 2 * kRowBlock) {
    fn(0, rows);
    return;
  }
  pool->ParallelFor(rows, fn, 4 * kRowBlock);
}
}  // namespace

void Predictor::PredictBatch(const float* x, size_t rows, float* out, ThreadPool* pool) const {
  RunRanges(rows, pool, [&](size_t b, size_t e) {
    if (c_->use_double) {
      c_->MarginRange<double>(x, b, e, out, true);
    } else {
      c_->MarginRange<float>(x, b, e, out, true);
    }
  });
}

void Predictor::PredictBatchMargin(const float* x, size_t rows, float* out,
                                   ThreadPool* pool) const {
  RunRanges(rows, pool, [&](size_t b, size_t e) {
    if (c_->use_double) {
      c_->MarginRange<double>(x, b, e, out, false);
    } else {
      c_->MarginRange<float>(x, b, e, out, false);
    }
  });
}

void Predictor::ApplyTransform(float* margins, size_t rows) const {
  const size_t groups = static_cast<size_t>(c_->num_groups);
  const size_t outs = static_cast<size_t>(c_->num_outputs);
  std::vector<float> tmp(groups);
  for (size_t r = 0; r < rows; ++r) {
    std::memcpy(tmp.data(), margins + r * groups, sizeof(float) * groups);
    c_->ApplyTransform(tmp.data(), margins + r * outs);
  }
}

}  // namespace keel::model
