#!/usr/bin/python3
"""Hand-made LightGBM text models and the expected predictions for them.

Run from anywhere with Debian's Python (standard library only):

    /usr/bin/python3 tests/data/lightgbm/make_expected.py

What it does:
  1. writes the hand-made models defined below (HAND_MODELS) as <name>.txt in
     LightGBM's text format: the layout of GBDT::SaveModelToString and
     Tree::ToString (header, tree_sizes, "Tree=N" blocks, "end of trees",
     feature importances, parameters);
  2. reads every model back with its own small reader (independent of keel)
     and evaluates it with LightGBM's decision rules, restated below;
  3. checks that evaluator against real LightGBM predictions shipped in this
     directory (see README.md): it must reproduce them before it is trusted
     with the hand-made models;
  4. writes <name>.csv for each hand-made model and for
     treelite_model_with_constant_tree.txt: one row per input, columns
     x0..x{F-1} (float32 values, "nan" for missing), y0..y{G-1} (LightGBM's
     output) and m0..m{G-1} (the score the objective's transform is applied
     to, i.e. after average_output).

LightGBM's rules (include/LightGBM/tree.h NumericalDecision and
CategoricalDecision, src/boosting/gbdt_prediction.cpp, src/objective/*.hpp):
  numerical split; the missing type is decision_type bits 2-3, default_left
  is bit 1:
    None (0): NaN becomes 0.0, then x <= threshold goes left
    Zero (1): NaN becomes 0.0; |x| <= kZeroThreshold (the float 1e-35f)
              follows default_left; otherwise x <= threshold goes left
    NaN  (2): NaN follows default_left; otherwise x <= threshold goes left
  categorical split (bit 0 set): NaN goes right; c = int(x) (truncation);
    c < 0 goes right; c goes left when bit c % 32 of word c / 32 of the
    split's cat_threshold words is set (words beyond the set: right).
    default_left and the missing type are not consulted.
  a tree's value is the leaf_value reached (shrinkage is already applied);
  tree i adds to class i % num_tree_per_iteration; sums are in double;
  average_output divides each class's sum by the number of iterations; then
  the objective's ConvertOutput: binary and multiclassova 1/(1+exp(-k*s))
  with k from "sigmoid:k", multiclass softmax, cross_entropy 1/(1+exp(-s)),
  poisson/gamma/tweedie exp(s), regression and ranking objectives identity.
Inputs are float32 (keel's input type) widened to double, as LightGBM's C API
does for float32 matrices; the CSV files hold exactly those float32 values.

Not covered: x >= 2^31 on a categorical split (LightGBM's static_cast<int>
is undefined there), linear trees and objectives keel cannot express.
"""

import math
import os
import random
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
NAN = float("nan")


def f32(x):
    """x rounded to float32 (as a Python float)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


K_ZERO = f32(1e-35)  # kZeroThreshold: `const double kZeroThreshold = 1e-35f;`


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def f32_from_bits(b):
    return struct.unpack("<f", struct.pack("<I", b))[0]


def f32_next_up(x):
    if x == 0.0:
        return f32_from_bits(1)
    b = f32_bits(x)
    return f32_from_bits(b + 1 if x > 0 else b - 1)


def f32_next_down(x):
    return -f32_next_up(-x)


def f32_around(t):
    """float32 values just below, at (when exact) and just above threshold t."""
    if abs(t) > 3e38:
        return []
    r = f32(t)
    out = set()
    if r == t:
        out |= {f32_next_down(r), r, f32_next_up(r)}
    elif r < t:
        out |= {r, f32_next_up(r)}
    else:
        out |= {f32_next_down(r), r}
    return sorted(out)


# ---------------------------------------------------------------------------
# The hand-made models, written as LightGBM stores them: per tree the split
# arrays (split i is node i; a negative child c is leaf ~c), leaf values and,
# for categorical splits, cat_boundaries / cat_threshold bitset words.
# decision_type: 1 categorical | 2 default_left | missing type << 2
# (None 0, Zero 4, NaN 8).


def tree(leaf_value, split_feature=(), threshold=(), decision_type=(), left_child=(),
         right_child=(), cat_boundaries=None, cat_threshold=None, shrinkage=0.1):
    return dict(leaf_value=list(leaf_value), split_feature=list(split_feature),
                threshold=list(threshold), decision_type=list(decision_type),
                left_child=list(left_child), right_child=list(right_child),
                cat_boundaries=cat_boundaries, cat_threshold=cat_threshold,
                shrinkage=shrinkage)


HAND_MODELS = [
    dict(
        name="lgb_binary_numerical",
        doc="binary sigmoid:1; every missing type with both default directions, "
            "thresholds at 0, at kZeroThreshold, not representable in float32, "
            "a 1-leaf tree, splits numbered out of preorder",
        objective="binary sigmoid:1", num_class=1, features=["num"] * 4,
        trees=[
            tree(leaf_value=[-0.61, 0.35, -0.15, 0.82, -1.13, 0.47, 0.21],
                 split_feature=[0, 1, 2, 3, 3, 1],
                 threshold=[0.5, -0.25, 1.5, 2.0, 0.30000000000000004, 0.0],
                 decision_type=[0, 6, 10, 4, 8, 0],
                 left_child=[1, -1, 4, -2, -5, -6],
                 right_child=[2, 3, -4, -3, 5, -7]),
            tree(leaf_value=[0.125]),
            tree(leaf_value=[0.3, -0.2, 0.05],
                 split_feature=[1, 3], threshold=[0.0, K_ZERO], decision_type=[4, 2],
                 left_child=[-1, -2], right_child=[1, -3]),
            tree(leaf_value=[-0.4, 0.15], split_feature=[0], threshold=[-2.5],
                 decision_type=[10], left_child=[-1], right_child=[-2]),
            tree(leaf_value=[0.09, -0.07], split_feature=[2], threshold=[-0.75],
                 decision_type=[6], left_child=[-1], right_child=[-2]),
        ]),
    dict(
        name="lgb_binary_categorical",
        doc="binary sigmoid:0.7; categorical splits with one- and three-word "
            "bitsets (categories 31, 32, 33, 64, 95), a categorical split with "
            "the default_left bit set (LightGBM ignores it), an empty category set",
        objective="binary sigmoid:0.7", num_class=1, features=["cat", "num", "cat"],
        unreachable={(3, 0)},  # the empty set sends everything right
        trees=[
            tree(leaf_value=[0.55, -0.25, 0.9, -0.8],
                 split_feature=[0, 1, 2], threshold=[0, 10.5, 1], decision_type=[1, 8, 9],
                 left_child=[1, -1, -3], right_child=[2, -2, -4],
                 cat_boundaries=[0, 1, 4], cat_threshold=[41, 2, 2, 2147483649]),
            tree(leaf_value=[-0.33, 0.61, -0.12],
                 split_feature=[1, 0], threshold=[-3.0, 0], decision_type=[6, 3],
                 left_child=[-1, -2], right_child=[1, -3],
                 cat_boundaries=[0, 2], cat_threshold=[2147483654, 1]),
            tree(leaf_value=[-0.05]),
            tree(leaf_value=[5.0, 0.04], split_feature=[2], threshold=[0],
                 decision_type=[1], left_child=[-1], right_child=[-2],
                 cat_boundaries=[0, 1], cat_threshold=[0]),
        ]),
    dict(
        name="lgb_multiclass_softmax",
        doc="multiclass num_class:3, two iterations (trees interleaved by class), "
            "a 1-leaf tree, categorical splits",
        objective="multiclass num_class:3", num_class=3, features=["num", "num", "cat"],
        trees=[
            tree(leaf_value=[0.4, -0.1, -0.3], split_feature=[0, 1], threshold=[1.0, -0.5],
                 decision_type=[8, 0], left_child=[1, -1], right_child=[-3, -2]),
            tree(leaf_value=[0.7, -0.2, 0.1], split_feature=[2, 0], threshold=[0, 0.25],
                 decision_type=[1, 2], left_child=[-1, -2], right_child=[1, -3],
                 cat_boundaries=[0, 1], cat_threshold=[6]),
            tree(leaf_value=[0.05]),
            tree(leaf_value=[0.12, -0.22], split_feature=[1], threshold=[2.0],
                 decision_type=[6], left_child=[-1], right_child=[-2]),
            tree(leaf_value=[-0.15, 0.08], split_feature=[0], threshold=[0.0],
                 decision_type=[4], left_child=[-1], right_child=[-2]),
            tree(leaf_value=[0.3, -0.05, 0.2, -0.35], split_feature=[1, 2, 0],
                 threshold=[0.5, 0, -1.5], decision_type=[10, 1, 0],
                 left_child=[1, -1, -3], right_child=[2, -2, -4],
                 cat_boundaries=[0, 2], cat_threshold=[0, 1]),
        ]),
    dict(
        name="lgb_regression_v4",
        doc="regression, version=v4 with is_linear=0, a depth-5 tree numbered out "
            "of preorder, thresholds 1e-300 and 1e30",
        objective="regression", num_class=1, features=["num"] * 5, version="v4",
        trees=[
            tree(leaf_value=[10.5, -3.25, 7.75, 0.125, -12.0, 4.5, 2.0, -6.5, 30.25],
                 split_feature=[0, 1, 2, 3, 4, 0, 1, 2],
                 threshold=[0.0, 100.5, -1.25, 7.0, 1e-300, 3.5, -7.5, 1e30],
                 decision_type=[8, 0, 4, 8, 0, 10, 6, 0],
                 left_child=[2, 3, -1, 5, -2, -5, -3, -7],
                 right_child=[1, -9, 4, -6, 6, 7, -4, -8]),
            tree(leaf_value=[1.5]),
            tree(leaf_value=[-0.75, 0.6, 0.05], split_feature=[4, 3], threshold=[-0.5, 0.0],
                 decision_type=[2, 4], left_child=[1, -1], right_child=[-3, -2]),
        ]),
    dict(
        name="lgb_poisson_average",
        doc="poisson with average_output (random forest mode): exp of the mean",
        objective="poisson", num_class=1, features=["num"] * 2, average_output=True,
        trees=[
            tree(leaf_value=[0.2, 0.9], split_feature=[0], threshold=[1.0],
                 decision_type=[8], left_child=[-1], right_child=[-2]),
            tree(leaf_value=[-0.1, 0.3, 1.2], split_feature=[1, 0], threshold=[0.5, -1.0],
                 decision_type=[2, 10], left_child=[1, -1], right_child=[-3, -2]),
            tree(leaf_value=[0.45]),
            tree(leaf_value=[1.5, 0.1], split_feature=[1], threshold=[-2.0],
                 decision_type=[4], left_child=[-1], right_child=[-2]),
        ]),
    dict(
        name="lgb_multiclassova",
        doc="multiclassova num_class:3 sigmoid:1.5: a sigmoid per class",
        objective="multiclassova num_class:3 sigmoid:1.5", num_class=3,
        features=["num"] * 2,
        trees=[
            tree(leaf_value=[0.5, -0.4], split_feature=[0], threshold=[0.0],
                 decision_type=[10], left_child=[-1], right_child=[-2]),
            tree(leaf_value=[-0.2, 0.3], split_feature=[1], threshold=[1.0],
                 decision_type=[0], left_child=[-1], right_child=[-2]),
            tree(leaf_value=[0.1, 0.6], split_feature=[0], threshold=[2.0],
                 decision_type=[4], left_child=[-1], right_child=[-2]),
            tree(leaf_value=[0.05]),
            tree(leaf_value=[0.25, -0.15], split_feature=[0], threshold=[-1.0],
                 decision_type=[6], left_child=[-1], right_child=[-2]),
            tree(leaf_value=[-0.3, 0.2], split_feature=[1], threshold=[0.0],
                 decision_type=[8], left_child=[-1], right_child=[-2]),
        ]),
    dict(
        name="lgb_cross_entropy",
        doc="cross_entropy (xentropy): sigmoid without a coefficient",
        objective="cross_entropy", num_class=1, features=["num"] * 2,
        trees=[
            tree(leaf_value=[-1.2, 0.8], split_feature=[0], threshold=[0.5],
                 decision_type=[2], left_child=[-1], right_child=[-2]),
            tree(leaf_value=[0.3, -0.45, 0.15], split_feature=[1, 0], threshold=[0.0, 2.0],
                 decision_type=[4, 8], left_child=[-1, -2], right_child=[1, -3]),
        ]),
]


# ---------------------------------------------------------------------------
# Writing LightGBM's text format.


def fmt(v):
    return repr(float(v)) if isinstance(v, float) else str(v)


def join(values):
    return " ".join(fmt(v) for v in values)


def tree_to_string(t, is_linear_field):
    n = len(t["leaf_value"])
    s = n - 1
    num_cat = 0 if t["cat_boundaries"] is None else len(t["cat_boundaries"]) - 1
    lines = [
        "num_leaves=%d" % n,
        "num_cat=%d" % num_cat,
        "split_feature=" + join(t["split_feature"]),
        "split_gain=" + join([float(10 * (s - i)) for i in range(s)]),
        "threshold=" + join(t["threshold"]),
        "decision_type=" + join(t["decision_type"]),
        "left_child=" + join(t["left_child"]),
        "right_child=" + join(t["right_child"]),
        "leaf_value=" + join(t["leaf_value"]),
        "leaf_weight=" + join([float(10 + i) for i in range(n)] if n > 1 else []),
        "leaf_count=" + join([10 + i for i in range(n)] if n > 1 else []),
        "internal_value=" + join([0.0] * s),
        "internal_weight=" + join([float(100)] * s),
        "internal_count=" + join([100] * s),
    ]
    if num_cat > 0:
        lines.append("cat_boundaries=" + join(t["cat_boundaries"]))
        lines.append("cat_threshold=" + join(t["cat_threshold"]))
    if is_linear_field:
        lines.append("is_linear=0")
    lines.append("shrinkage=" + fmt(t["shrinkage"]))
    return "\n".join(lines) + "\n\n"


def model_to_string(m):
    nf = len(m["features"])
    ntpi = m["num_class"]
    blocks = []
    for i, t in enumerate(m["trees"]):
        blocks.append("Tree=%d\n" % i + tree_to_string(t, m.get("version") == "v4") + "\n")
    infos = []
    for f, kind in enumerate(m["features"]):
        infos.append("0:1:2:3:5:31:32:33:64:95" if kind == "cat" else "[-10:20]")
    out = ["tree", "version=" + m.get("version", "v3"), "num_class=%d" % m["num_class"],
           "num_tree_per_iteration=%d" % ntpi, "label_index=0",
           "max_feature_idx=%d" % (nf - 1), "objective=" + m["objective"]]
    if m.get("average_output"):
        out.append("average_output")
    out.append("feature_names=" + " ".join("f%d" % i for i in range(nf)))
    out.append("feature_infos=" + " ".join(infos))
    out.append("tree_sizes=" + " ".join(str(len(b)) for b in blocks))
    text = "\n".join(out) + "\n\n" + "".join(blocks) + "end of trees\n"
    text += "\nfeature_importances:\n" + "".join("f%d=1\n" % i for i in range(nf))
    text += "\nparameters:\n[boosting: gbdt]\n[objective: %s]\n[num_class: %d]\n\n" % (
        m["objective"].split()[0], m["num_class"])
    text += "end of parameters\n\npandas_categorical:null\n"
    return text


# ---------------------------------------------------------------------------
# Reading LightGBM's text format (just enough to evaluate; independent of keel).


def nums(s, conv):
    return [conv(x) for x in s.split()]


def parse_model(text):
    lines = text.split("\n")
    assert lines[0].rstrip("\r") == "tree", "not a LightGBM text model"
    header, i = {}, 1
    while i < len(lines) and not lines[i].startswith("Tree="):
        key, _, value = lines[i].rstrip("\r").partition("=")
        if key:
            header[key] = value
        i += 1
    trees = []
    while i < len(lines) and lines[i].startswith("Tree="):
        assert int(lines[i][5:]) == len(trees)
        i += 1
        kv = {}
        while lines[i].rstrip("\r"):
            key, _, value = lines[i].rstrip("\r").partition("=")
            kv[key] = value
            i += 1
        while i < len(lines) and not lines[i].rstrip("\r"):
            i += 1
        n = int(kv["num_leaves"])
        t = dict(num_leaves=n, leaf_value=nums(kv["leaf_value"], float))
        if n > 1:
            t["split_feature"] = nums(kv["split_feature"], int)
            t["threshold"] = nums(kv["threshold"], float)
            t["decision_type"] = nums(kv.get("decision_type", "0 " * (n - 1)), int)
            t["left_child"] = nums(kv["left_child"], int)
            t["right_child"] = nums(kv["right_child"], int)
            if int(kv["num_cat"]) > 0:
                t["cat_boundaries"] = nums(kv["cat_boundaries"], int)
                t["cat_threshold"] = nums(kv["cat_threshold"], int)
        trees.append(t)
    assert trees, "no trees"
    return header, trees


class Coverage:
    def __init__(self):
        self.events = set()

    def add(self, *event):
        self.events.add(event)


def numerical_goes_left(x, threshold, dt, cov, key):
    missing = (dt >> 2) & 3
    default_left = bool(dt & 2)
    if math.isnan(x) and missing != 2:
        cov.add(*key, "nan_as_zero")
        x = 0.0
    if missing == 1 and -K_ZERO <= x <= K_ZERO:
        cov.add(*key, "zero_default")
        return default_left
    if missing == 2 and math.isnan(x):
        cov.add(*key, "nan_default")
        return default_left
    left = x <= threshold
    cov.add(*key, "le" if left else "gt")
    return left


def categorical_goes_left(x, words, cov, key):
    if math.isnan(x):
        cov.add(*key, "nan_right")
        return False
    c = int(x)  # truncates toward zero, like static_cast<int>
    assert c < 2 ** 31, "undefined in LightGBM"
    if c < 0:
        cov.add(*key, "negative_right")
        return False
    if c // 32 >= len(words):
        cov.add(*key, "beyond_bitset_right")
        return False
    left = bool((words[c // 32] >> (c % 32)) & 1)
    cov.add(*key, "in_set" if left else "not_in_set")
    return left


def tree_value(ti, t, row, cov, path=None):
    if t["num_leaves"] == 1:
        cov.add(ti, "leaf", 0)
        return t["leaf_value"][0]
    node = 0
    while node >= 0:
        if path is not None:
            path.append(node)
        f = t["split_feature"][node]
        dt = t["decision_type"][node]
        key = (ti, node)
        if dt & 1:
            idx = int(t["threshold"][node])
            b = t["cat_boundaries"]
            left = categorical_goes_left(row[f], t["cat_threshold"][b[idx]:b[idx + 1]], cov, key)
        else:
            left = numerical_goes_left(row[f], t["threshold"][node], dt, cov, key)
        node = t["left_child"][node] if left else t["right_child"][node]
    cov.add(ti, "leaf", ~node)
    return t["leaf_value"][~node]


def objective_params(objective):
    tokens = objective.split()
    params = dict(tok.split(":", 1) for tok in tokens[1:] if ":" in tok)
    return tokens[0], params


def predict(header, trees, row, cov):
    """LightGBM's GBDT::Predict for one row: (outputs, pre-transform scores)."""
    ntpi = int(header.get("num_tree_per_iteration", header["num_class"]))
    score = [0.0] * ntpi
    for i, t in enumerate(trees):
        score[i % ntpi] += tree_value(i, t, row, cov)
    if "average_output" in header:
        iterations = len(trees) // ntpi
        score = [s / iterations for s in score]
    name, params = objective_params(header.get("objective", "custom"))
    if name in ("binary", "multiclassova"):
        k = float(params["sigmoid"])
        out = [1.0 / (1.0 + math.exp(-k * s)) for s in score]
    elif name == "cross_entropy":
        out = [1.0 / (1.0 + math.exp(-s)) for s in score]
    elif name == "multiclass":
        mx = max(score)
        e = [math.exp(s - mx) for s in score]
        out = [v / sum(e) for v in e]
    elif name in ("poisson", "gamma", "tweedie"):
        out = [math.exp(s) for s in score]
    elif name in ("regression", "regression_l1", "huber", "fair", "quantile", "mape",
                  "lambdarank", "rank_xendcg", "custom"):
        assert "sqrt" not in header.get("objective", ""), "reg_sqrt is not covered"
        out = list(score)
    else:
        raise ValueError("objective not covered: " + name)
    return out, score


# ---------------------------------------------------------------------------
# Input rows.

GENERIC_NUMERIC = [NAN, 0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, 2e-35, -2e-35, 1e-30,
                   1.0, -1.0, 1e6, -1e6, 3.0e38, -3.0e38, float("inf"), float("-inf")]
CATEGORIES = [NAN, -1.0, -0.5, -2.5, 0.0, -0.0, 0.9, 1.0, 2.0, 3.0, 3.7, 5.0, 6.0, 31.0,
              32.0, 33.0, 34.0, 63.0, 64.0, 95.0, 96.0, 127.0, 1000.0, 2147483520.0,
              -2147483520.0, 1e-36]


def specials(model_trees, feature, kind):
    if kind == "cat":
        return [f32(v) for v in CATEGORIES]
    values = set(f32(v) for v in GENERIC_NUMERIC if not math.isnan(v))
    for t in model_trees:
        for i, f in enumerate(t.get("split_feature", [])):
            if f == feature and not t["decision_type"][i] & 1:
                values.update(f32_around(t["threshold"][i]))
    return [NAN] + sorted(values)


def make_rows(trees, kinds, seed, n_random=100, pools=None, vary=None):
    """For every split: a random row that reaches it, repeated with each special
    value of the split's feature; then random rows."""
    rng = random.Random(seed)
    if pools is None:
        pools = [specials(trees, f, k) for f, k in enumerate(kinds)]

    def random_row():
        return [rng.choice(p) if rng.random() < 0.8 else f32(rng.uniform(-4, 4)) for p in pools]

    rows = []
    for ti, t in enumerate(trees):
        for node in range(t["num_leaves"] - 1):
            for _ in range(100000):
                base, path = random_row(), []
                tree_value(ti, t, base, Coverage(), path)
                if node in path:
                    break
            else:
                raise AssertionError("no row reaches tree %d split %d" % (ti, node))
            f = t["split_feature"][node]
            for v in (vary or pools)[f]:
                row = list(base)
                row[f] = v
                rows.append(row)
    rows += [random_row() for _ in range(n_random)]
    unique, seen = [], set()
    for r in rows:
        key = tuple(repr(v) for v in r)
        if key not in seen:
            seen.add(key)
            unique.append(r)
    return unique


def required_events(trees, unreachable):
    need = set()
    for ti, t in enumerate(trees):
        for leaf in range(t["num_leaves"]):
            if (ti, leaf) not in unreachable:
                need.add((ti, "leaf", leaf))
        for node in range(t["num_leaves"] - 1):
            dt = t["decision_type"][node]
            if dt & 1:
                for e in ("nan_right", "negative_right", "beyond_bitset_right"):
                    need.add((ti, node, e))
                idx = int(t["threshold"][node])
                if any(t["cat_threshold"][t["cat_boundaries"][idx]:t["cat_boundaries"][idx + 1]]):
                    need.add((ti, node, "in_set"))
                continue
            missing = (dt >> 2) & 3
            need |= {(ti, node, "le"), (ti, node, "gt")}
            need.add((ti, node, ("nan_as_zero", "nan_as_zero", "nan_default")[missing]))
            if missing == 1:
                need.add((ti, node, "zero_default"))
    return need


def fmt_input(v):
    return "nan" if math.isnan(v) else repr(v)


def write_csv(path, rows, results, num_groups):
    nf = len(rows[0])
    cols = (["x%d" % i for i in range(nf)] + ["y%d" % g for g in range(num_groups)] +
            ["m%d" % g for g in range(num_groups)])
    with open(path, "w") as out:
        out.write(",".join(cols) + "\n")
        for row, (y, m) in zip(rows, results):
            out.write(",".join([fmt_input(v) for v in row] + [repr(v) for v in y] +
                               [repr(v) for v in m]) + "\n")


def evaluate(text, rows):
    header, trees = parse_model(text)
    cov = Coverage()
    results = [predict(header, trees, row, cov) for row in rows]
    return header, trees, results, cov


# ---------------------------------------------------------------------------
# The evaluator against real LightGBM predictions.


def read_libsvm(path, num_features):
    rows = []
    with open(path) as f:
        for line in f:
            row = [0.0] * num_features  # LightGBM reads absent entries as 0
            for item in line.split()[1:]:
                k, v = item.split(":")
                row[int(k)] = f32(float(v))
            rows.append(row)
    return rows


def read_column(path):
    with open(path) as f:
        return [float(line) for line in f if line.strip()]


def check_against_lightgbm():
    # dmitryikh/leaves lg_rf_iris: binary random forest; the LightGBM that
    # made it returned the averaged score without the sigmoid (see README).
    with open(os.path.join(HERE, "leaves_lg_rf_iris.model")) as f:
        text = f.read()
    rows = read_libsvm(os.path.join(HERE, "leaves_iris_test.libsvm"), 4)
    _, _, results, _ = evaluate(text, rows)
    truth = read_column(os.path.join(HERE, "leaves_lg_rf_iris_true_predictions.txt"))
    assert len(truth) == len(rows) == 30
    for (y, m), t in zip(results, truth):
        assert abs(m[0] - t) < 1e-12, (m, t)
    # dmlc/treelite toy_categorical: regression on two categorical features.
    with open(os.path.join(HERE, "treelite_toy_categorical_model.txt")) as f:
        text = f.read()
    rows = read_libsvm(os.path.join(HERE, "treelite_toy_categorical.test"), 2)
    _, _, results, _ = evaluate(text, rows)
    truth = read_column(os.path.join(HERE, "treelite_toy_categorical.test.pred"))
    assert len(truth) == len(rows) == 180
    for (y, m), t in zip(results, truth):
        assert abs(y[0] - t) < 1e-9, (y, t)
    print("evaluator reproduces LightGBM on leaves_lg_rf_iris (30 rows) and "
          "treelite_toy_categorical (180 rows)")


def main():
    check_against_lightgbm()
    for m in HAND_MODELS:
        text = model_to_string(m)
        with open(os.path.join(HERE, m["name"] + ".txt"), "w") as f:
            f.write(text)
        header, trees = parse_model(text)
        rows = make_rows(trees, m["features"], seed=sum(m["name"].encode()))
        header, trees, results, cov = evaluate(text, rows)
        missing = required_events(trees, m.get("unreachable", set())) - cov.events
        assert not missing, (m["name"], sorted(missing, key=str))
        write_csv(os.path.join(HERE, m["name"] + ".csv"), rows, results, m["num_class"])
        print("%-28s %4d rows, %d trees" % (m["name"], len(rows), len(trees)))
    # A real LightGBM model without reference predictions: 126 features in
    # [0, 1], 15-leaf tree with missing type None and threshold kZeroThreshold,
    # a 1-leaf tree.
    name = "treelite_model_with_constant_tree"
    with open(os.path.join(HERE, name + ".txt")) as f:
        text = f.read()
    short = [NAN, 0.0, 1.0, 0.5]
    pool = [f32(v) for v in (NAN, 0.0, -0.0, 1.0, 0.5, 1e-36, -1e-36, 1e-35, 2e-35, -1.0)]
    rows = make_rows(parse_model(text)[1], None, seed=7, n_random=10, pools=[short] * 126,
                     vary=[pool] * 126)
    _, trees, results, cov = evaluate(text, rows)
    missing = required_events(trees, set()) - cov.events
    assert not missing, (name, sorted(missing, key=str))
    write_csv(os.path.join(HERE, name + ".csv"), rows, results, 1)
    print("%-28s %4d rows, %d trees" % (name, len(rows), len(trees)))


if __name__ == "__main__":
    main()
