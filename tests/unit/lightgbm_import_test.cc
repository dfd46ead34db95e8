// The LightGBM text importer on real LightGBM models with LightGBM's own
// predictions, on hand-made models whose expected outputs come from an
// independent evaluator (tests/data/lightgbm/make_expected.py), and on
// malformed input: truncations (every byte of the small models, every few
// bytes of the large ones), corrupted bytes, wrong counts, bad indices,
// cycles, hostile sizes. Every bad input must give a non-OK
// status naming the line, tree or field, and never crash, hang or allocate
// according to a count the input does not back.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "keel/core/thread_pool.h"
#include "keel/model/formats.h"
#include "keel/model/predictor.h"
#include "tests/unit/test_util.h"

namespace keel::model {
namespace {

const std::string kDataDir = KEEL_SOURCE_DIR "/tests/data/lightgbm/";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// |got - want| within 1e-6, relative for |want| > 1 (outputs are float32).
bool Near(double got, double want) {
  if (std::isnan(want)) return std::isnan(got);
  return std::fabs(got - want) <= 1e-6 * std::max(1.0, std::fabs(want));
}

// The import must fail with `code` and a message containing every one of
// `parts`.
void ExpectError(const Result<Model>& r, const std::vector<std::string>& parts,
                 StatusCode code = StatusCode::kInvalidArgument) {
  ASSERT_FALSE(r.ok()) << "import succeeded; expected an error containing '" << parts[0] << "'";
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  for (const auto& part : parts) {
    EXPECT_NE(r.status().message().find(part), std::string::npos)
        << "message '" << r.status().message() << "' lacks '" << part << "'";
  }
}

// Rows and expected values written by make_expected.py: columns x*, y*
// (outputs) and m* (LightGBM's score before the transform).
struct Expected {
  size_t features = 0;
  size_t groups = 0;
  std::vector<float> x;      // rows * features
  std::vector<double> y, m;  // rows * groups
  size_t rows() const { return features == 0 ? 0 : x.size() / features; }
};

Expected ReadCsv(const std::string& path) {
  Expected e;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  std::string line;
  std::getline(in, line);
  std::vector<char> kinds;
  {
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) kinds.push_back(cell[0]);
  }
  for (char k : kinds) {
    if (k == 'x') ++e.features;
    if (k == 'y') ++e.groups;
  }
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string cell;
    size_t i = 0;
    while (std::getline(ss, cell, ',')) {
      if (i >= kinds.size()) break;
      if (kinds[i] == 'x') e.x.push_back(std::strtof(cell.c_str(), nullptr));
      if (kinds[i] == 'y') e.y.push_back(std::strtod(cell.c_str(), nullptr));
      if (kinds[i] == 'm') e.m.push_back(std::strtod(cell.c_str(), nullptr));
      ++i;
    }
    EXPECT_EQ(i, kinds.size()) << line;
  }
  return e;
}

// Compares PredictRow, PredictRowMargin (times `margin_scale`: keel's margin
// is LightGBM's score times the sigmoid coefficient) and PredictBatch, with
// and without a pool, to the expected values on every row.
void ExpectPredictions(const Model& model, const Expected& e, double margin_scale) {
  ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(model));
  ASSERT_EQ(static_cast<size_t>(p.num_features()), e.features);
  ASSERT_EQ(static_cast<size_t>(p.num_outputs()), e.groups);
  ASSERT_GT(e.rows(), 0u);
  const size_t g = e.groups;
  std::vector<float> out(g), margin(g);
  size_t bad = 0;
  for (size_t r = 0; r < e.rows(); ++r) {
    p.PredictRow(&e.x[r * e.features], out.data());
    p.PredictRowMargin(&e.x[r * e.features], margin.data());
    for (size_t k = 0; k < g; ++k) {
      const double want = e.y[r * g + k];
      if (!Near(out[k], want) && ++bad <= 10) {
        ADD_FAILURE() << "PredictRow row " << r << " output " << k << ": got " << out[k]
                      << ", expected " << want;
      }
      if (!e.m.empty()) {
        const double want_m = e.m[r * g + k] * margin_scale;
        if (!Near(margin[k], want_m) && ++bad <= 10) {
          ADD_FAILURE() << "PredictRowMargin row " << r << " group " << k << ": got " << margin[k]
                        << ", expected " << want_m;
        }
      }
    }
  }
  ThreadPool pool(2);
  for (ThreadPool* tp : {static_cast<ThreadPool*>(nullptr), &pool}) {
    std::vector<float> batch(e.rows() * g);
    p.PredictBatch(e.x.data(), e.rows(), batch.data(), tp);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!Near(batch[i], e.y[i]) && ++bad <= 10) {
        ADD_FAILURE() << "PredictBatch (pool " << (tp != nullptr) << ") row " << i / g << " output "
                      << i % g << ": got " << batch[i] << ", expected " << e.y[i];
      }
    }
  }
  EXPECT_EQ(bad, 0u) << "mismatches";
}

// Rows of a LibSVM file (absent entries are 0, as LightGBM reads them).
std::vector<float> ReadLibsvm(const std::string& path, size_t features) {
  std::vector<float> x;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string item;
    ss >> item;  // label
    std::vector<float> row(features, 0.0f);
    while (ss >> item) {
      const size_t colon = item.find(':');
      row.at(std::stoul(item.substr(0, colon))) = std::strtof(item.c_str() + colon + 1, nullptr);
    }
    x.insert(x.end(), row.begin(), row.end());
  }
  return x;
}

std::vector<double> ReadColumn(const std::string& path) {
  std::vector<double> v;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) v.push_back(std::strtod(line.c_str(), nullptr));
  }
  return v;
}

// ---------------------------------------------------------------------------
// Real LightGBM models.

TEST(LightgbmImportTest, RandomForestMatchesLightgbm) {
  // dmitryikh/leaves lg_rf_iris: boosting=rf, binary, average_output. The
  // LightGBM that wrote the predictions returned the averaged score without
  // the sigmoid; LightGBM now applies the sigmoid after averaging. So the
  // file's values are keel's margin, and keel's output is their sigmoid.
  ASSERT_OK_AND_ASSIGN(Model m, LoadModelFile(kDataDir + "leaves_lg_rf_iris.model"));
  EXPECT_EQ(m.source_format, "lightgbm-text");
  EXPECT_EQ(m.objective, "binary sigmoid:1");
  EXPECT_EQ(m.task, Task::kBinary);
  EXPECT_EQ(m.transform, Transform::kSigmoid);
  EXPECT_EQ(m.accumulator, Accumulator::kDouble);
  EXPECT_EQ(m.num_features, 4);
  EXPECT_EQ(m.num_groups, 1);
  ASSERT_EQ(m.trees.size(), 30u);
  for (const Tree& t : m.trees) EXPECT_DOUBLE_EQ(t.weight, 1.0 / 30);
  EXPECT_EQ(m.feature_names,
            (std::vector<std::string>{"Column_0", "Column_1", "Column_2", "Column_3"}));
  EXPECT_EQ(m.feature_types, (std::vector<std::string>{"q", "q", "q", "q"}));

  Expected e;
  e.features = 4;
  e.groups = 1;
  e.x = ReadLibsvm(kDataDir + "leaves_iris_test.libsvm", 4);
  e.m = ReadColumn(kDataDir + "leaves_lg_rf_iris_true_predictions.txt");
  ASSERT_EQ(e.rows(), 30u);
  ASSERT_EQ(e.m.size(), 30u);
  for (double s : e.m) e.y.push_back(1.0 / (1.0 + std::exp(-s)));
  ExpectPredictions(m, e, 1.0);
}

TEST(LightgbmImportTest, CategoricalRegressionMatchesLightgbm) {
  // dmlc/treelite toy_categorical: regression on two categorical features,
  // a LightGBM file without "end of trees" nor leaf_weight lines.
  ASSERT_OK_AND_ASSIGN(Model m, LoadModelFile(kDataDir + "treelite_toy_categorical_model.txt"));
  EXPECT_EQ(m.task, Task::kRegression);
  EXPECT_EQ(m.transform, Transform::kIdentity);
  EXPECT_EQ(m.trees.size(), 30u);
  EXPECT_TRUE(m.has_categorical());
  EXPECT_EQ(m.feature_types, (std::vector<std::string>{"c", "c"}));
  Expected e;
  e.features = 2;
  e.groups = 1;
  e.x = ReadLibsvm(kDataDir + "treelite_toy_categorical.test", 2);
  e.y = ReadColumn(kDataDir + "treelite_toy_categorical.test.pred");
  e.m = e.y;
  ASSERT_EQ(e.rows(), 180u);
  ASSERT_EQ(e.y.size(), 180u);
  ExpectPredictions(m, e, 1.0);
}

TEST(LightgbmImportTest, ModelWithConstantTree) {
  // dmlc/treelite lightgbm_constant_tree: 126 features, a 1-leaf tree whose
  // other arrays are empty; expected values from make_expected.py.
  ASSERT_OK_AND_ASSIGN(Model m, LoadModelFile(kDataDir + "treelite_model_with_constant_tree.txt"));
  EXPECT_EQ(m.num_features, 126);
  ASSERT_EQ(m.trees.size(), 2u);
  ASSERT_EQ(m.trees[1].nodes.size(), 1u);
  EXPECT_EQ(m.trees[1].nodes[0].kind, Node::Kind::kLeaf);
  EXPECT_EQ(m.feature_types[1], "q");  // "none": an unused feature
  ExpectPredictions(m, ReadCsv(kDataDir + "treelite_model_with_constant_tree.csv"), 1.0);
}

// ---------------------------------------------------------------------------
// Hand-made models (make_expected.py).

struct HandModel {
  const char* name;
  Task task;
  Transform transform;
  int32_t groups;
  double sigmoid;  // keel's margin is LightGBM's score times this
};

const HandModel kHandModels[] = {
    {"lgb_binary_numerical", Task::kBinary, Transform::kSigmoid, 1, 1.0},
    {"lgb_binary_categorical", Task::kBinary, Transform::kSigmoid, 1, 0.7},
    {"lgb_multiclass_softmax", Task::kMulticlass, Transform::kSoftmax, 3, 1.0},
    {"lgb_regression_v4", Task::kRegression, Transform::kIdentity, 1, 1.0},
    {"lgb_poisson_average", Task::kRegression, Transform::kExp, 1, 1.0},
    {"lgb_multiclassova", Task::kMulticlass, Transform::kSigmoid, 3, 1.5},
    {"lgb_cross_entropy", Task::kRegression, Transform::kSigmoid, 1, 1.0},
};

TEST(LightgbmImportTest, HandMadeModelsMatchTheReferenceEvaluator) {
  for (const HandModel& h : kHandModels) {
    SCOPED_TRACE(h.name);
    ASSERT_OK_AND_ASSIGN(Model m, LoadModelFile(kDataDir + h.name + ".txt"));
    EXPECT_EQ(m.task, h.task);
    EXPECT_EQ(m.transform, h.transform);
    EXPECT_EQ(m.num_groups, h.groups);
    EXPECT_EQ(m.accumulator, Accumulator::kDouble);
    for (size_t t = 0; t < m.trees.size(); ++t) {
      EXPECT_EQ(m.trees[t].group, static_cast<int32_t>(t % h.groups)) << "tree " << t;
    }
    const Expected e = ReadCsv(kDataDir + h.name + ".csv");
    ASSERT_GT(e.rows(), 100u);
    ExpectPredictions(m, e, h.sigmoid);
  }
}

TEST(LightgbmImportTest, SplitsMapToTheIr) {
  ASSERT_OK_AND_ASSIGN(Model m, LoadModelFile(kDataDir + "lgb_binary_numerical.txt"));
  ASSERT_EQ(m.trees.size(), 5u);
  // Tree 0, split 0: feature 0, x <= 0.5, missing type None.
  const Node& root = m.trees[0].nodes[0];
  EXPECT_EQ(root.kind, Node::Kind::kNumerical);
  EXPECT_EQ(root.feature, 0u);
  EXPECT_EQ(root.missing, MissingRule::kNanAsZero);
  EXPECT_EQ(root.threshold, std::nextafter(0.5f, 1.0f));  // x <= 0.5 as x < next float
  // Tree 0, split 1 (decision_type 6: Zero, default_left).
  const Node& s1 = m.trees[0].nodes[static_cast<size_t>(root.left)];
  EXPECT_EQ(s1.missing, MissingRule::kZeroAndNanDefault);
  EXPECT_TRUE(s1.default_left);
  // Tree 0, split 2 (decision_type 10: NaN, default_left).
  const Node& s2 = m.trees[0].nodes[static_cast<size_t>(root.right)];
  EXPECT_EQ(s2.missing, MissingRule::kNanToDefault);
  EXPECT_TRUE(s2.default_left);
  // 7 leaves, 6 splits; the 1-leaf tree is a single leaf.
  EXPECT_EQ(m.trees[0].nodes.size(), 13u);
  ASSERT_EQ(m.trees[1].nodes.size(), 1u);
  EXPECT_DOUBLE_EQ(m.trees[1].nodes[0].leaf_value, 0.125);

  ASSERT_OK_AND_ASSIGN(Model c, LoadModelFile(kDataDir + "lgb_binary_categorical.txt"));
  const Node& cat = c.trees[0].nodes[0];
  EXPECT_EQ(cat.kind, Node::Kind::kCategorical);
  EXPECT_EQ(cat.categories, (std::vector<uint32_t>{0, 3, 5}));
  EXPECT_TRUE(cat.categories_go_left);
  EXPECT_FALSE(cat.default_left);
  EXPECT_EQ(cat.invalid, InvalidCategory::kNotInSet);
  const Node& wide = c.trees[0].nodes[static_cast<size_t>(cat.right)];
  EXPECT_EQ(wide.categories, (std::vector<uint32_t>{1, 33, 64, 95}));
  // decision_type 3 (categorical with the default_left bit): NaN still goes right.
  const Node& flagged = c.trees[1].nodes[static_cast<size_t>(c.trees[1].nodes[0].right)];
  EXPECT_EQ(flagged.categories, (std::vector<uint32_t>{1, 2, 31, 32}));
  EXPECT_FALSE(flagged.default_left);
  // The sigmoid coefficient 0.7 is a tree weight.
  for (const Tree& t : c.trees) EXPECT_DOUBLE_EQ(t.weight, 0.7);

  ASSERT_OK_AND_ASSIGN(Model p, LoadModelFile(kDataDir + "lgb_poisson_average.txt"));
  for (const Tree& t : p.trees) EXPECT_DOUBLE_EQ(t.weight, 0.25);
}

TEST(LightgbmImportTest, SniffedByImportModel) {
  const std::string bytes = ReadFile(kDataDir + "lgb_multiclass_softmax.txt");
  ASSERT_OK_AND_ASSIGN(Model m, ImportModel(bytes));
  EXPECT_EQ(m.source_format, "lightgbm-text");
  ASSERT_OK_AND_ASSIGN(Model n, ImportModel(bytes, "lightgbm-text"));
  EXPECT_EQ(n.trees.size(), 6u);
}

// ---------------------------------------------------------------------------
// A small model edited into malformed variants. Tree=0: split 0 on feature 0
// (x <= 0.5, None, default_left bit), split 1 on feature 1 (x <= 1.5, NaN
// type, default right). Tree=1: split 0 categorical on feature 2 (set {1, 2}),
// split 1 on feature 0 (x <= 0.25, None).

constexpr std::string_view kTemplate =
    "tree\n"
    "version=v3\n"
    "num_class=1\n"
    "num_tree_per_iteration=1\n"
    "label_index=0\n"
    "max_feature_idx=2\n"
    "objective=binary sigmoid:1\n"
    "feature_names=a b c\n"
    "feature_infos=[0:1] [0:1] 0:1:2\n"
    "\n"
    "Tree=0\n"
    "num_leaves=3\n"
    "num_cat=0\n"
    "split_feature=0 1\n"
    "split_gain=1 1\n"
    "threshold=0.5 1.5\n"
    "decision_type=2 8\n"
    "left_child=1 -1\n"
    "right_child=-3 -2\n"
    "leaf_value=0.1 0.2 0.3\n"
    "leaf_count=1 1 1\n"
    "internal_value=0 0\n"
    "internal_count=2 1\n"
    "shrinkage=1\n"
    "\n"
    "\n"
    "Tree=1\n"
    "num_leaves=3\n"
    "num_cat=1\n"
    "split_feature=2 0\n"
    "split_gain=1 1\n"
    "threshold=0 0.25\n"
    "decision_type=1 0\n"
    "left_child=-1 -2\n"
    "right_child=1 -3\n"
    "leaf_value=-0.1 0.4 0.05\n"
    "cat_boundaries=0 1\n"
    "cat_threshold=6\n"
    "shrinkage=1\n"
    "\n"
    "\n"
    "end of trees\n"
    "\n"
    "feature importances:\n"
    "a=2\n";

// kTemplate with the first occurrence of `from` replaced by `to`.
std::string Edited(std::string_view from, std::string_view to) {
  std::string s(kTemplate);
  const size_t p = s.find(from);
  if (p == std::string::npos) {
    ADD_FAILURE() << "the template has no '" << from << "'";
    return s;
  }
  s.replace(p, from.size(), to);
  return s;
}

float Sigmoid(double m) { return static_cast<float>(1.0 / (1.0 + std::exp(-m))); }

// Output of kTemplate (or an edit keeping its semantics) on three rows.
void ExpectTemplatePredictions(const Model& m, double scale = 1.0) {
  ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(m));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    float x[3];
    double score;
  };
  const Case cases[] = {
      {{0.2f, 1.0f, 1.0f}, 0.1 - 0.1},   // leaf 0 + category 1 in the set
      {{nan, nan, nan}, 0.2 + 0.4},      // NaN as 0 -> split 1; NaN right; NaN right -> 0 <= 0.25
      {{0.5f, 1.5f, 3.0f}, 0.1 + 0.05},  // at the thresholds: left; category 3: right, 0.5 > 0.25
  };
  for (const Case& c : cases) {
    float out = 0.0f;
    p.PredictRow(c.x, &out);
    EXPECT_NEAR(out, Sigmoid(scale * c.score), 1e-6) << c.x[0] << " " << c.x[1] << " " << c.x[2];
  }
}

TEST(LightgbmImportTest, TemplateImports) {
  ASSERT_OK_AND_ASSIGN(Model m, ImportLightgbmText(kTemplate, {}));
  EXPECT_EQ(m.feature_names, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(m.feature_types, (std::vector<std::string>{"q", "q", "c"}));
  ExpectTemplatePredictions(m);
}

TEST(LightgbmImportTest, AcceptedVariants) {
  // Unknown header and tree keys are ignored; so are the trailer sections.
  ASSERT_OK_AND_ASSIGN(Model a, ImportLightgbmText(Edited("label_index=0\n",
                                                          "label_index=0\nmonotone_constraints=0 0 "
                                                          "0\nsome_future_key=1\n"),
                                                   {}));
  ExpectTemplatePredictions(a);
  ASSERT_OK_AND_ASSIGN(Model b, ImportLightgbmText(Edited("shrinkage=1\n",
                                                          "new_field=1 2 3\n"
                                                          "shrinkage=1\n"),
                                                   {}));
  ExpectTemplatePredictions(b);
  // No feature names or infos.
  ASSERT_OK_AND_ASSIGN(Model c, ImportLightgbmText(Edited("feature_names=a b c\nfeature_infos="
                                                          "[0:1] [0:1] 0:1:2\n",
                                                          ""),
                                                   {}));
  EXPECT_TRUE(c.feature_names.empty());
  EXPECT_TRUE(c.feature_types.empty());
  ExpectTemplatePredictions(c);
  // sigmoid:2 doubles the margin.
  ASSERT_OK_AND_ASSIGN(Model d, ImportLightgbmText(Edited("sigmoid:1", "sigmoid:2"), {}));
  EXPECT_DOUBLE_EQ(d.trees[0].weight, 2.0);
  ExpectTemplatePredictions(d, 2.0);
  // A model without "end of trees" and without a trailer.
  std::string e(kTemplate);
  e.resize(e.find("end of trees"));
  ASSERT_OK_AND_ASSIGN(Model em, ImportLightgbmText(e, {}));
  ExpectTemplatePredictions(em);
  // CRLF line endings (without tree_sizes, which counts bytes).
  std::string crlf;
  for (char ch : kTemplate) {
    if (ch == '\n') crlf += '\r';
    crlf += ch;
  }
  ASSERT_OK_AND_ASSIGN(Model f, ImportLightgbmText(crlf, {}));
  ExpectTemplatePredictions(f);
  // Leading blank lines, as the sniffer allows.
  ASSERT_OK_AND_ASSIGN(Model g, ImportLightgbmText("\n\n" + std::string(kTemplate), {}));
  ExpectTemplatePredictions(g);
  // tree_sizes with the right sizes; the last size is not checked (LightGBM
  // does not check it either; treelite's constant-tree model has a wrong one).
  const std::string base(kTemplate);
  const size_t t0 = base.find("Tree=0");
  const size_t t1 = base.find("Tree=1");
  ASSERT_OK_AND_ASSIGN(Model h,
                       ImportLightgbmText(Edited("feature_infos=[0:1] [0:1] 0:1:2\n",
                                                 "feature_infos=[0:1] [0:1] 0:1:2\ntree_sizes=" +
                                                     std::to_string(t1 - t0) + " 12345\n"),
                                          {}));
  ExpectTemplatePredictions(h);
}

TEST(LightgbmImportTest, ObjectivesMapToTransforms) {
  struct Case {
    const char* objective;
    Task task;
    Transform transform;
  };
  const Case cases[] = {
      {"regression", Task::kRegression, Transform::kIdentity},
      {"regression_l1", Task::kRegression, Transform::kIdentity},
      {"huber", Task::kRegression, Transform::kIdentity},
      {"huber sqrt", Task::kRegression, Transform::kIdentity},  // LightGBM drops sqrt
      {"fair", Task::kRegression, Transform::kIdentity},
      {"quantile", Task::kRegression, Transform::kIdentity},
      {"mape", Task::kRegression, Transform::kIdentity},
      {"poisson", Task::kRegression, Transform::kExp},
      {"gamma", Task::kRegression, Transform::kExp},
      {"tweedie", Task::kRegression, Transform::kExp},
      {"binary sigmoid:1", Task::kBinary, Transform::kSigmoid},
      {"cross_entropy", Task::kRegression, Transform::kSigmoid},
      {"lambdarank", Task::kRanking, Transform::kIdentity},
      {"rank_xendcg", Task::kRanking, Transform::kIdentity},
      {"custom", Task::kRegression, Transform::kIdentity},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.objective);
    ASSERT_OK_AND_ASSIGN(
        Model m,
        ImportLightgbmText(
            Edited("objective=binary sigmoid:1", std::string("objective=") + c.objective), {}));
    EXPECT_EQ(m.task, c.task);
    EXPECT_EQ(m.transform, c.transform);
    EXPECT_EQ(m.objective, c.objective);
  }
  // No objective line at all: raw scores.
  ASSERT_OK_AND_ASSIGN(Model raw,
                       ImportLightgbmText(Edited("objective=binary sigmoid:1\n", ""), {}));
  EXPECT_EQ(raw.transform, Transform::kIdentity);
  // A custom objective with 2 outputs per iteration.
  ASSERT_OK_AND_ASSIGN(
      Model two, ImportLightgbmText(Edited("num_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n"
                                           "max_feature_idx=2\nobjective=binary sigmoid:1",
                                           "num_class=2\nnum_tree_per_iteration=2\nlabel_index=0\n"
                                           "max_feature_idx=2"),
                                    {}));
  EXPECT_EQ(two.num_groups, 2);
  EXPECT_EQ(two.trees[1].group, 1);

  ExpectError(ImportLightgbmText(Edited("binary sigmoid:1", "regression sqrt"), {}),
              {"line 7", "reg_sqrt"}, StatusCode::kUnimplemented);
  ExpectError(ImportLightgbmText(Edited("binary sigmoid:1", "cross_entropy_lambda"), {}),
              {"line 7", "cross_entropy_lambda"}, StatusCode::kUnimplemented);
  ExpectError(ImportLightgbmText(Edited("binary sigmoid:1", "binary"), {}),
              {"line 7", "sigmoid:<k>"});
  ExpectError(ImportLightgbmText(Edited("binary sigmoid:1", "binary sigmoid:-1"), {}),
              {"line 7", "sigmoid:<k>"});
  ExpectError(ImportLightgbmText(Edited("binary sigmoid:1", "binary sigmoid:abc"), {}),
              {"line 7", "not a number"});
  ExpectError(ImportLightgbmText(Edited("binary sigmoid:1", "multiclass num_class:3"), {}),
              {"line 7", "num_class:3 does not match num_class=1"});
  ExpectError(ImportLightgbmText(Edited("binary sigmoid:1", "softmax_of_the_future"), {}),
              {"line 7", "unknown objective"});
  ExpectError(
      ImportLightgbmText(Edited("num_tree_per_iteration=1", "num_tree_per_iteration=2"), {}),
      {"needs num_class=1 and num_tree_per_iteration=1"});
}

struct BadCase {
  std::string_view from, to;
  std::vector<std::string> parts;
  StatusCode code = StatusCode::kInvalidArgument;
};

TEST(LightgbmImportTest, MalformedInputIsRefusedWithAClearError) {
  const BadCase cases[] = {
      // Header.
      {"tree\n", "TREE\n", {"line 1", "expected \"tree\""}},
      {"num_class=1\n", "", {"no num_class"}},
      {"max_feature_idx=2\n", "", {"no max_feature_idx"}},
      {"num_class=1", "num_class=x", {"line 3: num_class \"x\" is not an integer"}},
      {"num_class=1", "num_class=99999999999", {"line 3: num_class 99999999999 out of range"}},
      {"num_class=1", "num_class=1\nnum_class=1", {"line 4", "\"num_class\" appears twice"}},
      {"max_feature_idx=2", "max_feature_idx=-1", {"line 6: max_feature_idx -1 out of range"}},
      {"max_feature_idx=2", "max_feature_idx=1", {"line 8", "feature_names has 3 names"}},
      {"feature_infos=[0:1] [0:1] 0:1:2",
       "feature_infos=[0:1] [0:1]",
       {"line 9", "feature_infos has 2 entries"}},
      {"num_tree_per_iteration=1",
       "num_tree_per_iteration=0",
       {"num_tree_per_iteration 0 out of range"}},
      // Tree blocks.
      {"Tree=1", "Tree=2", {"expected \"Tree=1\""}},
      {"Tree=0\nnum_leaves=3\n", "Tree=0\n", {"Tree=0: missing \"num_leaves\""}},
      {"num_leaves=3", "num_leaves=x", {"Tree=0: num_leaves \"x\" is not an integer (line 12)"}},
      {"num_leaves=3", "num_leaves=2000000000", {"Tree=0: num_leaves 2000000000 out of range"}},
      {"num_leaves=3", "num_leaves=0", {"Tree=0: num_leaves 0 out of range"}},
      {"num_leaves=3", "num_leaves=-3", {"Tree=0: num_leaves -3 out of range"}},
      {"num_leaves=3", "num_leaves=4", {"Tree=0: leaf_value has 3 values, expected 4"}},
      {"left_child=1 -1", "left_child=1 -1 -2", {"Tree=0: left_child has 3 values, expected 2"}},
      {"right_child=-3 -2", "right_child=-3", {"Tree=0: right_child has 1 values, expected 2"}},
      {"split_feature=0 1\n", "", {"Tree=0: missing \"split_feature\""}},
      {"leaf_value=0.1 0.2 0.3", "leaf_value=0.1 0.2", {"Tree=0: leaf_value has 2 values"}},
      {"threshold=0.5 1.5", "threshold=0.5 abc", {"Tree=0: threshold[1] \"abc\" is not a number"}},
      {"threshold=0.5 1.5", "threshold=0.5 nan", {"Tree=0: threshold[1] is NaN"}},
      {"leaf_value=0.1 0.2 0.3", "leaf_value=0.1 nan 0.3", {"Tree=0: leaf_value[1] is not finite"}},
      {"leaf_value=0.1 0.2 0.3", "leaf_value=0.1 0.2 -inf", {"leaf_value[2] is not finite"}},
      {"leaf_value=0.1 0.2 0.3", "leaf_value=0.1 0.2 0.3x", {"leaf_value[2] \"0.3x\""}},
      {"split_feature=0 1",
       "split_feature=0 3",
       {"Tree=0: split_feature[1] = 3 out of range [0, 2]"}},
      {"split_feature=0 1", "split_feature=-1 1", {"Tree=0: split_feature[0] = -1 out of range"}},
      {"split_feature=0 1", "split_feature=0 1.0", {"split_feature[1] \"1.0\" is not an integer"}},
      {"left_child=1 -1", "left_child=1 -4", {"Tree=0: left_child[1] = -4 out of range [-3, 1]"}},
      {"right_child=-3 -2", "right_child=2 -2", {"Tree=0: right_child[0] = 2 out of range"}},
      {"left_child=1 -1", "left_child=1 x", {"Tree=0: left_child[1] \"x\" is not an integer"}},
      // A cycle: split 1 is its own child, out of the root's reach.
      {"left_child=1 -1\nright_child=-3 -2",
       "left_child=-1 -3\nright_child=-2 1",
       {"Tree=0: split 1 cannot be reached from the root"}},
      {"right_child=-3 -2", "right_child=-3 0", {"Tree=0: split 1 has the root", "cycle"}},
      {"left_child=1 -1\nright_child=-3 -2",
       "left_child=1 -1\nright_child=-1 -2",
       {"Tree=0: leaf 0 is a child of both split 0 and split 1"}},
      {"decision_type=2 8",
       "decision_type=2 12",
       {"Tree=0: decision_type[1] = 12 has missing type 3"}},
      {"decision_type=2 8", "decision_type=2 16", {"Tree=0: decision_type[1] = 16 out of range"}},
      {"decision_type=2 8", "decision_type=2 8 8", {"Tree=0: decision_type has 3 values"}},
      {"decision_type=2 8",
       "decision_type=3 8",
       {"Tree=0: threshold[0] = 0.5 of a categorical split is not a bitset index in [0, 0)"}},
      {"threshold=0 0.25", "threshold=1 0.25", {"Tree=1: threshold[0] = 1", "[0, 1)"}},
      {"threshold=0 0.25", "threshold=0.5 0.25", {"Tree=1: threshold[0] = 0.5"}},
      {"threshold=0 0.25", "threshold=-1 0.25", {"Tree=1: threshold[0] = -1"}},
      {"cat_boundaries=0 1",
       "cat_boundaries=0 1 2",
       {"Tree=1: cat_boundaries has 3 values, expected 2"}},
      {"cat_boundaries=0 1",
       "cat_boundaries=0 2000000000",
       {"Tree=1: cat_threshold has 1 values, expected 2000000000"}},
      {"cat_boundaries=0 1", "cat_boundaries=1 1", {"Tree=1: cat_boundaries[0] is not 0"}},
      {"cat_boundaries=0 1",
       "cat_boundaries=0 -1",
       {"Tree=1: cat_boundaries[1] = -1 out of range"}},
      {"cat_threshold=6", "cat_threshold=6 7", {"Tree=1: cat_threshold has 2 values, expected 1"}},
      {"cat_threshold=6", "cat_threshold=4294967296", {"Tree=1: cat_threshold[0] = 4294967296"}},
      {"cat_boundaries=0 1\n", "", {"Tree=1: missing \"cat_boundaries\""}},
      {"num_cat=1", "num_cat=5", {"Tree=1: num_cat 5 out of range [0, 2]"}},
      {"num_cat=0", "num_cat=x", {"Tree=0: num_cat \"x\" is not an integer"}},
      {"shrinkage=1\n\n\nTree=1",
       "is_linear=1\nshrinkage=1\n\n\nTree=1",
       {"Tree=0: linear trees"},
       StatusCode::kUnimplemented},
      {"shrinkage=1\n\n\nTree=1",
       "is_linear=2\nshrinkage=1\n\n\nTree=1",
       {"Tree=0: is_linear 2 out of range"}},
      {"internal_value=0 0", "internal_value 0 0", {"line 22", "expected key=value"}},
      {"threshold=0.5 1.5",
       "threshold=0.5 1.5\nthreshold=0.5 1.5",
       {"line 17", "\"threshold\" appears twice"}},
      {"shrinkage=1\n\n\nTree=1", "shrinkage=1\nTree=1", {"line 25", "expected key=value"}},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(std::string(c.from) + " -> " + std::string(c.to));
    ExpectError(ImportLightgbmText(Edited(c.from, c.to), {}), c.parts, c.code);
  }
}

TEST(LightgbmImportTest, StructuralErrors) {
  ExpectError(ImportLightgbmText("", {}), {"empty input"});
  ExpectError(ImportLightgbmText("\n \n", {}), {"line 2", "expected \"tree\""});
  ExpectError(ImportLightgbmText("{\"learner\": 1}", {}), {"line 1", "expected \"tree\""});
  ExpectError(ImportLightgbmText(std::string("tree\n\0\xff", 7), {}), {"no trees"});
  // Only the header.
  std::string header(kTemplate);
  header.resize(header.find("Tree=0"));
  ExpectError(ImportLightgbmText(header, {}), {"no trees"});
  // Trees not a multiple of num_tree_per_iteration (custom objective).
  ExpectError(ImportLightgbmText(Edited("num_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n"
                                        "max_feature_idx=2\nobjective=binary sigmoid:1",
                                        "num_class=3\nnum_tree_per_iteration=3\nlabel_index=0\n"
                                        "max_feature_idx=2"),
                                 {}),
              {"2 trees, not a multiple of num_tree_per_iteration=3"});
  // tree_sizes: a wrong size for a tree that is not the last, or a count that
  // does not match the trees.
  const std::string base(kTemplate);
  const std::string size0 = std::to_string(base.find("Tree=1") - base.find("Tree=0"));
  auto with_sizes = [&](const std::string& sizes) {
    return Edited("feature_infos=[0:1] [0:1] 0:1:2\n",
                  "feature_infos=[0:1] [0:1] 0:1:2\ntree_sizes=" + sizes + "\n");
  };
  ExpectError(ImportLightgbmText(with_sizes("100 100"), {}),
              {"Tree=0: the tree takes " + size0 + " bytes but tree_sizes (line 10) gives 100"});
  ExpectError(ImportLightgbmText(with_sizes(size0), {}),
              {"line 10: tree_sizes lists 1 trees but the file has 2"});
  ExpectError(ImportLightgbmText(with_sizes(size0 + " 1 1"), {}),
              {"tree_sizes lists 3 trees but the file has 2"});
  ExpectError(ImportLightgbmText(with_sizes(size0 + " x"), {}),
              {"line 10: tree_sizes[1] \"x\" is not a positive integer"});
  // CRLF with tree_sizes: the sizes count LF files (LightGBM fails too).
  std::string crlf;
  for (char ch : with_sizes(size0 + " 100")) {
    if (ch == '\n') crlf += '\r';
    crlf += ch;
  }
  ExpectError(ImportLightgbmText(crlf, {}), {"Tree=0: the tree takes", "tree_sizes"});
}

TEST(LightgbmImportTest, LimitsApply) {
  const std::string bytes(kTemplate);
  ExpectError(ImportLightgbmText(bytes, {.max_trees = 1}), {"more than 1 trees", "limit"},
              StatusCode::kResourceExhausted);
  ExpectError(ImportLightgbmText(bytes, {.max_features = 2}),
              {"line 6: max_feature_idx 2 out of range [0, 1]"});
  ExpectError(ImportLightgbmText(bytes, {.max_nodes_per_tree = 4}),
              {"Tree=0: num_leaves 3 out of range [1, 2]"});
  ExpectError(ImportLightgbmText(bytes, {.max_category = 1}),
              {"Tree=1: cat_threshold: split 0 has category 2 above the limit 1"});
  ExpectError(ImportLightgbmText(Edited("num_class=1", "num_class=70000"), {}),
              {"line 3: num_class 70000 out of range [1, 65536]"});
  ExpectError(ImportLightgbmText(bytes, {.max_total_nodes = 6}), {"nodes"},
              StatusCode::kResourceExhausted);
}

// ---------------------------------------------------------------------------
// Truncation and corruption.

// Where a cut stops losing model content: just after the empty line that
// ends the last tree (the line after its last key=value line).
size_t CompleteFrom(const std::string& bytes) {
  const size_t last_tree = bytes.rfind("\nTree=");
  const size_t end = bytes.find("\n\n", last_tree + 1);
  return end + 2;
}

void ExpectTruncationsFail(const std::string& file, size_t stride) {
  SCOPED_TRACE(file);
  const std::string bytes = ReadFile(kDataDir + file);
  ASSERT_OK_AND_ASSIGN(Model full, ImportLightgbmText(bytes, {}));
  const size_t complete = CompleteFrom(bytes);
  ASSERT_LE(complete, bytes.size());
  size_t failures = 0;
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    // Every byte near the end of the last tree, every `stride`-th elsewhere.
    const bool near_end = cut + 600 >= complete && cut <= complete + 64;
    if (!near_end && cut % stride != 0 && cut != bytes.size()) continue;
    Result<Model> r = ImportLightgbmText(std::string_view(bytes).substr(0, cut), {});
    if (cut < complete) {
      if (r.ok()) {
        ADD_FAILURE() << "cut at " << cut << " of " << bytes.size() << " was accepted";
        if (++failures > 5) return;
      } else {
        ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument)
            << "cut at " << cut << ": " << r.status().ToString();
      }
    } else {
      ASSERT_TRUE(r.ok()) << "cut at " << cut << ": " << r.status().ToString();
      ASSERT_EQ(r->trees.size(), full.trees.size()) << "cut at " << cut;
    }
  }
}

TEST(LightgbmImportTest, TruncatedFilesAreRefused) {
  ExpectTruncationsFail("lgb_binary_categorical.txt", 1);
  ExpectTruncationsFail("lgb_multiclass_softmax.txt", 1);
  ExpectTruncationsFail("lgb_regression_v4.txt", 1);
  ExpectTruncationsFail("treelite_model_with_constant_tree.txt", 4);
  ExpectTruncationsFail("leaves_lg_rf_iris.model", 8);
  ExpectTruncationsFail("treelite_toy_categorical_model.txt", 8);
}

TEST(LightgbmImportTest, TruncationMessagesNameTheTree) {
  const std::string bytes = ReadFile(kDataDir + "lgb_multiclass_softmax.txt");
  const size_t t5 = bytes.find("Tree=5");
  // Inside a line of the last tree.
  ExpectError(ImportLightgbmText(bytes.substr(0, bytes.find("leaf_value", t5) + 14), {}),
              {"Tree=5: the file ends inside line"});
  // After a complete line, before the empty line ending the tree.
  ExpectError(ImportLightgbmText(bytes.substr(0, bytes.find("leaf_weight", t5)), {}),
              {"Tree=5: the file ends inside the tree"});
  // Between trees: tree_sizes lists more trees.
  ExpectError(ImportLightgbmText(bytes.substr(0, t5), {}),
              {"tree_sizes lists 6 trees but the file has 5"});
}

TEST(LightgbmImportTest, CorruptedBytesNeverCrash) {
  // Every byte of two small models up to "end of trees" replaced by characters
  // that change numbers, counts and structure. Accepted results must compile
  // and predict.
  for (const char* file : {"lgb_binary_categorical.txt", "lgb_multiclass_softmax.txt"}) {
    SCOPED_TRACE(file);
    const std::string bytes = ReadFile(kDataDir + file);
    const Expected e =
        ReadCsv(kDataDir + std::string(file).replace(std::string(file).size() - 4, 4, ".csv"));
    size_t accepted = 0;
    const size_t end = bytes.find("end of trees");
    ASSERT_NE(end, std::string::npos);
    for (size_t i = 0; i < end; ++i) {
      for (char c : {'9', '-', '\n', 'x'}) {
        if (bytes[i] == c) continue;
        std::string mutated = bytes;
        mutated[i] = c;
        Result<Model> r = ImportLightgbmText(mutated, {});
        if (!r.ok()) {
          ASSERT_NE(r.status().code(), StatusCode::kInternal) << r.status().ToString();
          continue;
        }
        ++accepted;
        Result<Predictor> p = Predictor::Compile(*r);
        ASSERT_TRUE(p.ok()) << "byte " << i << " -> " << int(c) << ": " << p.status().ToString();
        std::vector<float> out(static_cast<size_t>(p->num_outputs()));
        for (size_t row = 0; row < e.rows(); row += 50) {
          p->PredictRow(&e.x[row * e.features], out.data());
        }
      }
    }
    EXPECT_GT(accepted, 0u);  // edits in ignored fields (split_gain, leaf_count...)
  }
}

TEST(LightgbmImportTest, HugeCountsAreRefusedBeforeAllocating) {
  // Counts far beyond what the text backs fail fast (ASan would report a
  // multi-gigabyte allocation).
  for (const char* leaves : {"2147483647", "9223372036854775807", "1073741824"}) {
    ExpectError(ImportLightgbmText(Edited("num_leaves=3", std::string("num_leaves=") + leaves), {}),
                {"Tree=0: num_leaves", "out of range"});
  }
  ExpectError(ImportLightgbmText(Edited("num_leaves=3", "num_leaves=8000000"), {}),
              {"Tree=0: leaf_value has 3 values, expected 8000000"});
  ExpectError(ImportLightgbmText(Edited("max_feature_idx=2", "max_feature_idx=16777215"), {}),
              {"feature_names has 3 names, expected max_feature_idx + 1 = 16777216"});
  ExpectError(ImportLightgbmText(Edited("num_cat=1", "num_cat=2000000000"), {}),
              {"Tree=1: num_cat 2000000000 out of range [0, 2]"});
  ExpectError(ImportLightgbmText(
                  Edited("tree\n", "tree\ntree_sizes=" + std::string(100000, '7') + "\n"), {}),
              {"tree_sizes[0]", "is not a positive integer"});
}

}  // namespace
}  // namespace keel::model
