// The XGBoost JSON and UBJSON importers on real fixtures (made by
// tests/data/xgboost/make_fixtures.py) and on malformed input: truncations at
// every byte, corrupted bytes, wrong types, missing fields, bad indices,
// cycles, hostile UBJSON sizes and deep nesting. Every bad input must give a
// non-OK status with a message naming the field, and never crash.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "keel/model/formats.h"
#include "keel/model/predictor.h"
#include "src/model/xgboost_doc.h"
#include "tests/unit/test_util.h"

namespace keel::model {
namespace {

using internal::DocValue;
using json = nlohmann::json;

const std::string kDataDir = KEEL_SOURCE_DIR "/tests/data/xgboost/";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The JSON fixture as nlohmann::json; XGBoost's NaN literals become null,
// which the importer reads as NaN too.
json FixtureJson() {
  std::string text = ReadFile(kDataDir + "small_cat.json");
  for (size_t p = text.find("NaN"); p != std::string::npos; p = text.find("NaN", p)) {
    text.replace(p, 3, "null");
  }
  return json::parse(text);
}

std::string ToUbjson(const json& j) {
  std::vector<uint8_t> v = json::to_ubjson(j, /*use_size=*/true, /*use_type=*/true);
  return std::string(v.begin(), v.end());
}

// Rows and XGBoost's predictions from small_cat_expected.csv.
struct Expected {
  std::vector<float> x;
  std::vector<float> y;
};

Expected ReadExpected() {
  Expected e;
  std::ifstream in(kDataDir + "small_cat_expected.csv");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) cells.push_back(cell);
    if (line.back() == ',') cells.push_back("");
    EXPECT_EQ(cells.size(), 4u) << line;
    for (size_t i = 0; i < 3; ++i) {
      e.x.push_back(cells[i].empty() ? std::numeric_limits<float>::quiet_NaN()
                                     : std::stof(cells[i]));
    }
    e.y.push_back(std::stof(cells[3]));
  }
  return e;
}

void ExpectMatchesFixture(const Model& m) {
  ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(m));
  const Expected e = ReadExpected();
  ASSERT_EQ(e.y.size(), 18u);
  for (size_t r = 0; r < e.y.size(); ++r) {
    float out = 0.0f;
    p.PredictRow(&e.x[r * 3], &out);
    EXPECT_NEAR(out, e.y[r], 1e-6) << "row " << r;
  }
}

// The import must fail with InvalidArgument (or `code`) and a message
// containing every one of `parts`.
void ExpectError(const Result<Model>& r, const std::vector<std::string>& parts,
                 StatusCode code = StatusCode::kInvalidArgument) {
  ASSERT_FALSE(r.ok()) << "import succeeded; expected an error containing '" << parts[0] << "'";
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  for (const auto& part : parts) {
    EXPECT_NE(r.status().message().find(part), std::string::npos)
        << "message '" << r.status().message() << "' lacks '" << part << "'";
  }
}

// ---------------------------------------------------------------------------
// Real models.

TEST(XgboostImportTest, FixturesMatchXgboostPredictions) {
  for (const char* file : {"small_cat.json", "small_cat.ubj"}) {
    SCOPED_TRACE(file);
    ASSERT_OK_AND_ASSIGN(Model m, LoadModelFile(kDataDir + file));
    EXPECT_EQ(m.source_format,
              std::string(file).ends_with(".json") ? "xgboost-json" : "xgboost-ubj");
    EXPECT_EQ(m.num_features, 3);
    EXPECT_EQ(m.num_groups, 1);
    EXPECT_EQ(m.task, Task::kBinary);
    EXPECT_EQ(m.transform, Transform::kSigmoid);
    EXPECT_EQ(m.objective, "binary:logistic");
    EXPECT_EQ(m.trees.size(), 4u);
    ASSERT_EQ(m.base_margin.size(), 1u);
    EXPECT_NEAR(m.base_margin[0], std::log(0.4 / 0.6), 1e-6);
    EXPECT_EQ(m.feature_names, (std::vector<std::string>{"num_a", "num_b", "cat_c"}));
    EXPECT_EQ(m.feature_types, (std::vector<std::string>{"q", "q", "c"}));
    EXPECT_TRUE(m.has_categorical());
    // Tree 0's root: category set {1, 3, 5} goes right; missing goes left.
    const Node& root = m.trees[0].nodes[0];
    EXPECT_EQ(root.kind, Node::Kind::kCategorical);
    EXPECT_EQ(root.categories, (std::vector<uint32_t>{1, 3, 5}));
    EXPECT_FALSE(root.categories_go_left);
    EXPECT_TRUE(root.default_left);
    EXPECT_EQ(root.invalid, InvalidCategory::kDefault);
    ExpectMatchesFixture(m);
  }
}

TEST(XgboostImportTest, OtherUbjsonEncodingsOfTheSameModel) {
  // nlohmann writes smaller integer markers, float64 'D' numbers and, per
  // option, unsized, sized or typed containers.
  const json j = FixtureJson();
  for (auto [size, type] : {std::pair{false, false}, {true, false}, {true, true}}) {
    SCOPED_TRACE(std::to_string(size) + std::to_string(type));
    std::vector<uint8_t> v = json::to_ubjson(j, size, type);
    ASSERT_OK_AND_ASSIGN(Model m, ImportXgboostUbjson(std::string(v.begin(), v.end()), {}));
    ExpectMatchesFixture(m);
  }
  // nlohmann's JSON (pretty-printed, null for NaN) reads the same too.
  ASSERT_OK_AND_ASSIGN(Model m, ImportXgboostJson(j.dump(2), {}));
  ExpectMatchesFixture(m);
}

TEST(XgboostImportTest, JsonAndUbjsonGiveIdenticalModels) {
  ASSERT_OK_AND_ASSIGN(Model a, ImportXgboostJson(ReadFile(kDataDir + "small_cat.json"), {}));
  ASSERT_OK_AND_ASSIGN(Model b, ImportXgboostUbjson(ReadFile(kDataDir + "small_cat.ubj"), {}));
  ASSERT_EQ(a.trees.size(), b.trees.size());
  for (size_t t = 0; t < a.trees.size(); ++t) {
    ASSERT_EQ(a.trees[t].nodes.size(), b.trees[t].nodes.size());
    for (size_t i = 0; i < a.trees[t].nodes.size(); ++i) {
      const Node& x = a.trees[t].nodes[i];
      const Node& y = b.trees[t].nodes[i];
      EXPECT_EQ(x.kind, y.kind);
      EXPECT_EQ(x.feature, y.feature);
      EXPECT_EQ(x.threshold, y.threshold) << "tree " << t << " node " << i;
      EXPECT_EQ(x.leaf_value, y.leaf_value) << "tree " << t << " node " << i;
      EXPECT_EQ(x.default_left, y.default_left);
      EXPECT_EQ(x.categories, y.categories);
    }
  }
  EXPECT_EQ(a.base_margin, b.base_margin);
}

TEST(XgboostImportTest, LimitsApply) {
  const std::string bytes = ReadFile(kDataDir + "small_cat.ubj");
  ExpectError(ImportXgboostUbjson(bytes, {.max_trees = 2}), {"trees", "limit"},
              StatusCode::kResourceExhausted);
  ExpectError(ImportXgboostUbjson(bytes, {.max_features = 2}),
              {"learner.learner_model_param.num_feature", "out of range"});
  ExpectError(ImportXgboostUbjson(bytes, {.max_nodes_per_tree = 8}),
              {"trees[0].left_children: 15 nodes, above the limit of 8"},
              StatusCode::kResourceExhausted);
  ExpectError(ImportXgboostUbjson(bytes, {.max_category = 4}),
              {"trees[0].categories[2]", "category 5 out of range [0, 4]"});
}

// ---------------------------------------------------------------------------
// Truncation and corruption.

TEST(XgboostImportTest, TruncatedJsonFailsAtEveryCut) {
  const std::string bytes = ReadFile(kDataDir + "small_cat.json");
  ASSERT_GT(bytes.size(), 1000u);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    Result<Model> r = ImportXgboostJson(std::string_view(bytes).substr(0, cut), {});
    ASSERT_FALSE(r.ok()) << "cut at " << cut;
    ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
    ASSERT_NE(r.status().message().find("xgboost-json: line 1, column "), std::string::npos)
        << r.status().message();
  }
}

TEST(XgboostImportTest, TruncatedUbjsonFailsAtEveryCut) {
  const std::string bytes = ReadFile(kDataDir + "small_cat.ubj");
  ASSERT_GT(bytes.size(), 1000u);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    Result<Model> r = ImportXgboostUbjson(std::string_view(bytes).substr(0, cut), {});
    ASSERT_FALSE(r.ok()) << "cut at " << cut;
    ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
    ASSERT_NE(r.status().message().find("xgboost-ubj: byte "), std::string::npos)
        << r.status().message();
  }
}

// Random byte edits: any outcome but a crash (ASan/UBSan builds check the
// rest); a model that does import must compile and predict.
TEST(XgboostImportTest, CorruptedBytesNeverCrash) {
  std::mt19937_64 rng(5);
  const float row[3] = {0.5f, std::numeric_limits<float>::quiet_NaN(), 3.0f};
  const std::string json_bytes = ReadFile(kDataDir + "small_cat.json");
  const std::string ubj_bytes = ReadFile(kDataDir + "small_cat.ubj");
  const char interesting[] = {'\0', '\x7f', '\xff', '[', ']', '{', '}', '$', '#', 'L',
                              'd',  '-',    '9',    '"', ',', ':', 'N', 'Z', 'S', 'i'};
  int imported = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    const bool use_json = iter % 2 == 0;
    std::string bytes = use_json ? json_bytes : ubj_bytes;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % bytes.size();
      bytes[pos] = rng() % 2 ? static_cast<char>(rng()) : interesting[rng() % sizeof interesting];
    }
    Result<Model> r = use_json ? ImportXgboostJson(bytes, {}) : ImportXgboostUbjson(bytes, {});
    if (!r.ok()) {
      EXPECT_FALSE(r.status().message().empty());
      continue;
    }
    ++imported;
    ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(*r));
    std::vector<float> out(static_cast<size_t>(p.num_outputs()));
    if (p.num_features() == 3) p.PredictRow(row, out.data());
  }
  // Edits inside numbers or names often leave a valid model.
  EXPECT_GT(imported, 0);
}

// ---------------------------------------------------------------------------
// Malformed documents, each checked through both encodings.

json& Learner(json& j) { return j["learner"]; }
json& Trees(json& j) { return j["learner"]["gradient_booster"]["model"]["trees"]; }
json& Tree0(json& j) { return Trees(j)[0]; }

struct Mutation {
  const char* name;
  std::function<void(json&)> mutate;
  std::vector<std::string> message;
  StatusCode code = StatusCode::kInvalidArgument;
};

std::vector<Mutation> Mutations() {
  return {
      // Wrong types.
      {"learner not an object",
       [](json& j) { j["learner"] = json::array(); },
       {"learner: expected an object, found an array"}},
      {"trees not an array",
       [](json& j) { Trees(j) = json::object(); },
       {"learner.gradient_booster.model.trees: expected an array, found an object"}},
      {"trees of numbers",
       [](json& j) {
         Trees(j) = json::array({1, 2});
       },
       {"trees[0]: expected an object, found a number"}},
      {"tree not an object",
       [](json& j) { Tree0(j) = "tree"; },
       {"trees[0]: expected an object, found a string"}},
      {"left_children a string",
       [](json& j) { Tree0(j)["left_children"] = "1,3,5"; },
       {"trees[0].left_children: expected an array of numbers, found a string"}},
      {"split_conditions with a string",
       [](json& j) { Tree0(j)["split_conditions"][4] = "x"; },
       {"trees[0].split_conditions[4]: expected a number, found a string"}},
      {"num_feature not a number",
       [](json& j) { Learner(j)["learner_model_param"]["num_feature"] = "three"; },
       {"learner.learner_model_param.num_feature: expected an integer, found \"three\""}},
      {"num_feature an object",
       [](json& j) { Learner(j)["learner_model_param"]["num_feature"] = json::object(); },
       {"learner.learner_model_param.num_feature: expected an integer, found an object"}},
      {"tree_info with a string",
       [](json& j) { j["learner"]["gradient_booster"]["model"]["tree_info"][1] = "a"; },
       {"learner.gradient_booster.model.tree_info[1]: expected a number, found a string"}},
      {"feature_names of numbers",
       [](json& j) {
         Learner(j)["feature_names"] = json::array({1, 2, 3});
       },
       {"learner.feature_names[0]: expected a string"}},
      {"objective name a number",
       [](json& j) { Learner(j)["objective"]["name"] = 7; },
       {"learner.objective.name: expected a string, found a number"}},
      {"base_score garbage",
       [](json& j) { Learner(j)["learner_model_param"]["base_score"] = "4E-1x"; },
       {"learner.learner_model_param.base_score: expected a number"}},
      {"default_left not 0/1",
       [](json& j) { Tree0(j)["default_left"][1] = 2; },
       {"trees[0].default_left[1]: expected 0 or 1, found 2"}},
      {"split_type not 0/1",
       [](json& j) { Tree0(j)["split_type"][1] = 3; },
       {"trees[0].split_type[1]: expected 0 (numerical) or 1 (categorical), found 3"}},

      // Missing fields.
      {"no learner", [](json& j) { j.erase("learner"); }, {"document.learner: missing"}},
      {"no learner_model_param",
       [](json& j) { Learner(j).erase("learner_model_param"); },
       {"learner.learner_model_param: missing"}},
      {"no num_feature",
       [](json& j) { Learner(j)["learner_model_param"].erase("num_feature"); },
       {"learner.learner_model_param.num_feature: missing"}},
      {"no objective",
       [](json& j) { Learner(j).erase("objective"); },
       {"learner.objective: missing"}},
      {"no objective name",
       [](json& j) { Learner(j)["objective"].erase("name"); },
       {"learner.objective.name: missing"}},
      {"no gradient_booster",
       [](json& j) { Learner(j).erase("gradient_booster"); },
       {"learner.gradient_booster: missing"}},
      {"no booster name",
       [](json& j) { Learner(j)["gradient_booster"].erase("name"); },
       {"learner.gradient_booster.name: missing"}},
      {"no model",
       [](json& j) { Learner(j)["gradient_booster"].erase("model"); },
       {"learner.gradient_booster.model: missing"}},
      {"no trees",
       [](json& j) { Learner(j)["gradient_booster"]["model"].erase("trees"); },
       {"learner.gradient_booster.model.trees: missing"}},
      {"no tree_info",
       [](json& j) { Learner(j)["gradient_booster"]["model"].erase("tree_info"); },
       {"learner.gradient_booster.model.tree_info: missing"}},
      {"no left_children",
       [](json& j) { Tree0(j).erase("left_children"); },
       {"trees[0].left_children: missing"}},
      {"no right_children",
       [](json& j) { Tree0(j).erase("right_children"); },
       {"trees[0].right_children: missing"}},
      {"no split_indices",
       [](json& j) { Tree0(j).erase("split_indices"); },
       {"trees[0].split_indices: missing"}},
      {"no split_conditions",
       [](json& j) { Trees(j)[2].erase("split_conditions"); },
       {"trees[2].split_conditions: missing"}},
      {"no default_left",
       [](json& j) { Tree0(j).erase("default_left"); },
       {"trees[0].default_left: missing"}},
      {"no categories_sizes",
       [](json& j) { Tree0(j).erase("categories_sizes"); },
       {"trees[0].categories_sizes: missing"}},
      {"no categories at all",
       [](json& j) {
         for (const char* k :
              {"categories", "categories_nodes", "categories_segments", "categories_sizes"}) {
           Tree0(j).erase(k);
         }
       },
       {"trees[0].split_type[0]: categorical split (split_type 1) without categories"}},

      // Sizes that disagree.
      {"short right_children",
       [](json& j) { Tree0(j)["right_children"].erase(3); },
       {"trees[0].right_children: has 14 entries, expected num_nodes = 15"}},
      {"num_nodes disagrees",
       [](json& j) { Tree0(j)["tree_param"]["num_nodes"] = "16"; },
       {"trees[0].tree_param.num_nodes: 16 but left_children has 15 entries"}},
      {"num_trees disagrees",
       [](json& j) {
         Learner(j)["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"] = "5";
       },
       {"gbtree_model_param.num_trees: 5 but trees has 4 entries"}},
      {"tree_info too short",
       [](json& j) { Learner(j)["gradient_booster"]["model"]["tree_info"].erase(0); },
       {"tree_info: has 3 entries but there are 4 trees"}},
      {"empty tree",
       [](json& j) {
         for (const char* k : {"left_children", "right_children", "split_indices",
                               "split_conditions", "default_left", "split_type"}) {
           Trees(j)[1][k] = json::array();
         }
         Trees(j)[1].erase("tree_param");
         for (const char* k :
              {"categories", "categories_nodes", "categories_segments", "categories_sizes"}) {
           Trees(j)[1][k] = json::array();
         }
       },
       {"trees[1].left_children: the tree has no nodes"}},

      // Bad indices and shapes.
      {"child out of range",
       [](json& j) { Tree0(j)["left_children"][1] = 15; },
       {"trees[0].left_children[1]: child 15 out of range [0, 15)"}},
      {"child far out of range",
       [](json& j) { Tree0(j)["right_children"][2] = int64_t{1} << 40; },
       {"trees[0].right_children[2]: child 1099511627776 out of range [0, 15)"}},
      {"negative child",
       [](json& j) { Tree0(j)["left_children"][2] = -2; },
       {"trees[0].left_children[2]: child -2 out of range"}},
      {"fractional child",
       [](json& j) { Tree0(j)["left_children"][2] = 5.5; },
       {"trees[0].left_children[2]: child 5.5 out of range"}},
      {"split without right child",
       [](json& j) { Tree0(j)["right_children"][1] = -1; },
       {"trees[0].right_children[1]: child -1 out of range"}},
      {"self loop",
       [](json& j) { Tree0(j)["left_children"][4] = 4; },
       {"trees[0].left_children[4]: node 4 is its own child"}},
      {"same child twice",
       [](json& j) { Tree0(j)["right_children"][1] = 3; },
       {"trees[0].right_children[1]: both children are node 3"}},
      {"cycle through the root",
       [](json& j) { Tree0(j)["left_children"][3] = 0; },
       {"tree 0", "cycle"}},
      {"shared child (cycle-free but not a tree)",
       [](json& j) { Tree0(j)["left_children"][4] = 1; },
       {"tree 0 node 1", "two parents"}},
      {"leaf becomes a split into an ancestor",
       [](json& j) {
         // Node 7 (a leaf under node 3) points back up to nodes 1 and 3.
         Tree0(j)["left_children"][7] = 1;
         Tree0(j)["right_children"][7] = 3;
       },
       {"tree 0", "two parents"}},
      {"split feature out of range",
       [](json& j) { Tree0(j)["split_indices"][1] = 3; },
       {"trees[0].split_indices[1]: feature 3 out of range [0, 3)"}},
      {"negative split feature",
       [](json& j) { Tree0(j)["split_indices"][2] = -1; },
       {"trees[0].split_indices[2]: feature -1 out of range [0, 3)"}},
      {"NaN threshold",
       [](json& j) { Tree0(j)["split_conditions"][1] = nullptr; },
       {"trees[0].split_conditions[1]: split threshold is NaN"}},
      {"infinite leaf",
       [](json& j) { Tree0(j)["split_conditions"][9] = 1e300; },
       {"tree 0 node 9", "not finite"}},
      {"tree group out of range",
       [](json& j) { Learner(j)["gradient_booster"]["model"]["tree_info"][2] = 1; },
       {"tree_info[2]: group 1 out of range [0, 1)"}},

      // Categorical splits.
      {"category node out of range",
       [](json& j) { Tree0(j)["categories_nodes"][1] = 20; },
       {"trees[0].categories_nodes[1]: node 20 out of range [0, 15)"}},
      {"category node twice",
       [](json& j) { Tree0(j)["categories_nodes"][1] = 0; },
       {"trees[0].categories_nodes[1]: node 0 listed twice"}},
      {"category segment past the end",
       [](json& j) { Tree0(j)["categories_segments"][2] = 11; },
       {"trees[0].categories_sizes[2]: segment [11, 12) runs past the 11 categories"}},
      {"category size too big",
       [](json& j) { Tree0(j)["categories_sizes"][1] = 99; },
       {"trees[0].categories_sizes[1]: size 99 out of range [1, 11]"}},
      {"empty category set",
       [](json& j) { Tree0(j)["categories_sizes"][1] = 0; },
       {"trees[0].categories_sizes[1]: size 0 out of range"}},
      {"negative category",
       [](json& j) { Tree0(j)["categories"][4] = -3; },
       {"trees[0].categories[4]: category -3 out of range [0, 16777215]"}},
      {"huge category",
       [](json& j) { Tree0(j)["categories"][4] = 1 << 24; },
       {"trees[0].categories[4]: category 16777216 out of range"}},
      {"categories on a numerical node",
       [](json& j) { Tree0(j)["split_type"][3] = 0; },
       {"trees[0].split_type[3]: node has categories but split_type 0 (numerical)"}},

      // Header semantics.
      {"unknown objective",
       [](json& j) { Learner(j)["objective"]["name"] = "reg:fancy"; },
       {"learner.objective.name: unsupported objective 'reg:fancy'", "binary:logistic"}},
      {"unknown booster",
       [](json& j) { Learner(j)["gradient_booster"]["name"] = "gbforest"; },
       {"learner.gradient_booster.name: unsupported booster 'gbforest'"}},
      {"multi-output",
       [](json& j) { Learner(j)["learner_model_param"]["num_target"] = "3"; },
       {"num_target", "multi-output models (num_target=3) are not supported"}},
      {"num_class for a binary objective",
       [](json& j) { Learner(j)["learner_model_param"]["num_class"] = "3"; },
       {"learner.learner_model_param.num_class", "not a multiclass objective"}},
      {"multiclass without classes",
       [](json& j) { Learner(j)["objective"]["name"] = "multi:softprob"; },
       {"multi:softprob needs num_class >= 2"}},
      {"base_score outside (0, 1) for logistic",
       [](json& j) { Learner(j)["learner_model_param"]["base_score"] = "1.5E0"; },
       {"base_score: 1.5 must be in (0, 1) for binary:logistic"}},
      {"base_score not positive for poisson",
       [](json& j) {
         Learner(j)["objective"]["name"] = "count:poisson";
         Learner(j)["learner_model_param"]["base_score"] = "0";
       },
       {"base_score: 0 must be > 0 for count:poisson"}},
      {"num_feature zero",
       [](json& j) { Learner(j)["learner_model_param"]["num_feature"] = "0"; },
       {"num_feature: 0 out of range [1, 16777216]"}},
      {"vector leaves",
       [](json& j) { Tree0(j)["tree_param"]["size_leaf_vector"] = "3"; },
       {"trees[0].tree_param.size_leaf_vector", "vector leaves"}},
      {"feature_names of the wrong length",
       [](json& j) {
         Learner(j)["feature_names"] = json::array({"a", "b"});
       },
       {"feature_names has 2 entries, the model has 3 features"}},
      {"no trees at all",
       [](json& j) {
         Trees(j) = json::array();
         Learner(j)["gradient_booster"]["model"]["tree_info"] = json::array();
         Learner(j)["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"] = "0";
       },
       {"no trees and no linear part"}},
      {"dart without weights",
       [](json& j) {
         json gb = Learner(j)["gradient_booster"];
         Learner(j)["gradient_booster"] = {{"name", "dart"}, {"gbtree", gb}};
       },
       {"learner.gradient_booster.weight_drop: missing"}},
      {"dart with too few weights",
       [](json& j) {
         json gb = Learner(j)["gradient_booster"];
         Learner(j)["gradient_booster"] = {
             {"name", "dart"}, {"gbtree", gb}, {"weight_drop", {1.0, 0.5}}};
       },
       {"learner.gradient_booster.weight_drop: has 2 entries but there are 4 trees"}},
      {"gblinear with the wrong number of weights",
       [](json& j) {
         Learner(j)["gradient_booster"] = {{"name", "gblinear"},
                                           {"model", {{"weights", {0.1, 0.2, 0.3}}}}};
       },
       {"learner.gradient_booster.model.weights: has 3 entries, expected (num_feature + 1) * "
        "num_groups = 4"}},
  };
}

TEST(XgboostImportTest, MalformedDocumentsNameTheField) {
  const json base = FixtureJson();
  for (const Mutation& m : Mutations()) {
    SCOPED_TRACE(m.name);
    json j = base;
    m.mutate(j);
    {
      SCOPED_TRACE("json");
      Result<Model> r = ImportXgboostJson(j.dump(), {});
      ExpectError(r, m.message, m.code);
      if (!r.ok()) {
        EXPECT_EQ(r.status().message().rfind("xgboost-json: ", 0), 0u) << r.status().message();
      }
    }
    {
      SCOPED_TRACE("ubj");
      Result<Model> r = ImportXgboostUbjson(ToUbjson(j), {});
      ExpectError(r, m.message, m.code);
      if (!r.ok()) {
        EXPECT_EQ(r.status().message().rfind("xgboost-ubj: ", 0), 0u) << r.status().message();
      }
    }
  }
}

TEST(XgboostImportTest, ValidVariantsImport) {
  const json base = FixtureJson();
  {
    // Dart with weights: leaf contributions are scaled.
    json j = base;
    json gb = Learner(j)["gradient_booster"];
    Learner(j)["gradient_booster"] = {
        {"name", "dart"}, {"gbtree", gb}, {"weight_drop", {1.0, 0.5, 0.25, 2.0}}};
    ASSERT_OK_AND_ASSIGN(Model m, ImportXgboostJson(j.dump(), {}));
    ASSERT_EQ(m.trees.size(), 4u);
    EXPECT_EQ(m.trees[1].weight, 0.5);
    EXPECT_EQ(m.trees[3].weight, 2.0);
  }
  {
    // gblinear: weights feature-major, the bias last.
    json j = base;
    Learner(j)["gradient_booster"] = {{"name", "gblinear"},
                                      {"model", {{"weights", {0.5, -1.0, 2.0, 0.25}}}}};
    ASSERT_OK_AND_ASSIGN(Model m, ImportXgboostUbjson(ToUbjson(j), {}));
    ASSERT_EQ(m.linear.size(), 1u);
    EXPECT_EQ(m.linear[0].weights, (std::vector<double>{0.5, -1.0, 2.0}));
    EXPECT_EQ(m.linear[0].bias, (std::vector<double>{0.25}));
  }
  {
    // Without split_type (older files) categorical nodes come from categories_nodes;
    // without feature names/types and tree_param the model still imports.
    json j = base;
    for (json& t : Trees(j)) {
      t.erase("split_type");
      t.erase("tree_param");
    }
    Learner(j).erase("feature_names");
    Learner(j).erase("feature_types");
    ASSERT_OK_AND_ASSIGN(Model m, ImportXgboostJson(j.dump(), {}));
    EXPECT_TRUE(m.feature_names.empty());
    ExpectMatchesFixture(m);
  }
  {
    // XGBoost 2.x writes base_score as "[4E-1]"; a plain number works too.
    json j = base;
    Learner(j)["learner_model_param"]["base_score"] = "[4E-1]";
    ASSERT_OK_AND_ASSIGN(Model m, ImportXgboostJson(j.dump(), {}));
    ExpectMatchesFixture(m);
    Learner(j)["learner_model_param"]["base_score"] = 0.4;
    ASSERT_OK_AND_ASSIGN(Model n, ImportXgboostUbjson(ToUbjson(j), {}));
    ExpectMatchesFixture(n);
  }
  {
    // A cycle among nodes the root cannot reach is dropped with them: node 1
    // becomes a leaf and its former subtree loops 3 -> 7 -> 3.
    json j = base;
    Tree0(j)["left_children"][1] = -1;
    Tree0(j)["right_children"][1] = -1;
    Tree0(j)["split_conditions"][1] = 0.25;
    Tree0(j)["left_children"][7] = 3;
    Tree0(j)["right_children"][7] = 4;
    ASSERT_OK_AND_ASSIGN(Model m, ImportXgboostJson(j.dump(), {}));
    EXPECT_EQ(m.trees[0].nodes.size(), 9u);  // 15 - {3, 4, 7, 8, 9, 10}
    ASSERT_OK_AND_ASSIGN(Predictor p, Predictor::Compile(m));
    const float x[3] = {0.0f, 0.0f, 1.0f};
    float out = 0.0f;
    p.PredictRow(x, &out);
    EXPECT_TRUE(std::isfinite(out));
  }
  {
    // Booleans for default_left (as some writers emit) read as 0/1.
    json j = base;
    for (json& t : Trees(j)) {
      for (json& d : t["default_left"]) d = d.get<int>() == 1;
    }
    ASSERT_OK_AND_ASSIGN(Model m, ImportXgboostJson(j.dump(), {}));
    ExpectMatchesFixture(m);
  }
}

// ---------------------------------------------------------------------------
// Hostile UBJSON sizes and deep nesting.

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

TEST(XgboostImportTest, HugeDeclaredUbjsonCountsAreRejectedBeforeAllocating) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      // [$d#L 2^62: 4-byte floats, far more than remain.
      {Bytes({'[', '$', 'd', '#', 'L', 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}), "declares"},
      // [#L 2^63-1 untyped elements.
      {Bytes({'[', '#', 'L', 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'Z'}), "declares"},
      // {#l 2^31-1 members.
      {Bytes({'{', '#', 'l', 0x7f, 0xff, 0xff, 0xff, 'i', 1, 'a', 'Z'}), "declares"},
      // A string claiming 2^40 bytes.
      {Bytes({'S', 'L', 0, 0, 1, 0, 0, 0, 0, 0, 'a', 'b'}), "string of 1099511627776 bytes"},
      // A key claiming 2^31-1 bytes.
      {Bytes({'{', 'l', 0x7f, 0xff, 0xff, 0xff, 'a', 'Z', '}'}), "string of 2147483647 bytes"},
      // Negative counts and lengths.
      {Bytes({'[', '#', 'i', 0xff, 'Z'}), "negative length -1"},
      {Bytes({'S', 'L', 0x80, 0, 0, 0, 0, 0, 0, 0}), "negative length"},
      // Payload-free element types still need a byte of input each.
      {Bytes({'[', '$', 'Z', '#', 'l', 0x7f, 0xff, 0xff, 0xff}),
       "declares 2147483647 elements but only 0 bytes remain"},
      {Bytes({'[', '$', 'T', '#', 'i', 5, 0, 0}), "declares 5 elements but only 2 bytes remain"},
      {Bytes({'[', '$', 'N', '#', 'i', 1, 'Z'}), "unsupported element type 'N'"},
      // Typed container without a count; a count that is not an integer.
      {Bytes({'[', '$', 'd', 'Z'}), "typed container without a count"},
      {Bytes({'[', '#', 'd', 0, 0, 0, 0}), "expected an integer length"},
      // 16 typed int32 elements declared, 8 bytes present.
      {Bytes({'[', '$', 'l', '#', 'i', 16, 0, 0, 0, 1, 0, 0, 0, 2}), "declares 16 elements"},
      // Unsupported markers.
      {Bytes({'H', 'i', 1, '1'}), "unsupported or invalid type marker 0x48"},
      {Bytes({'N'}), "unsupported or invalid type marker 0x4e"},
      {Bytes({'{', 'i', 1, 'a', 0x01, '}'}), "unsupported or invalid type marker 0x01"},
      // Trailing bytes and an empty input.
      {Bytes({'Z', 'Z'}), "unexpected data after the end of the document"},
      {"", "unexpected end of input"},
  };
  for (const auto& [bytes, message] : cases) {
    SCOPED_TRACE(message);
    ExpectError(ImportXgboostUbjson(bytes, {}), {"xgboost-ubj: byte ", message});
  }

  // The first typed array count of a real model, patched to 2^40.
  std::string real = ReadFile(kDataDir + "small_cat.ubj");
  const size_t at = real.find("[$d#L");
  ASSERT_NE(at, std::string::npos);
  const std::string huge = Bytes({0, 0, 1, 0, 0, 0, 0, 0});
  real.replace(at + 5, 8, huge);
  ExpectError(ImportXgboostUbjson(real, {}), {"declares 1099511627776 elements"});
}

TEST(XgboostImportTest, DeepNestingIsRefused) {
  for (size_t depth : {65u, 1000u, 1000000u}) {
    SCOPED_TRACE(depth);
    ExpectError(ImportXgboostJson(std::string(depth, '['), {}),
                {"xgboost-json: line 1, column 65: nesting deeper than 64 levels"});
    ExpectError(ImportXgboostUbjson(std::string(depth, '['), {}),
                {"xgboost-ubj: byte 64: nesting deeper than 64 levels"});
    std::string objects;
    for (size_t i = 0; i < depth; ++i) objects += "{\"a\":";
    ExpectError(ImportXgboostJson(objects, {}), {"nesting deeper than 64 levels"});
    std::string ubj_objects;
    for (size_t i = 0; i < depth; ++i) ubj_objects += Bytes({'{', 'i', 1, 'a'});
    ExpectError(ImportXgboostUbjson(ubj_objects, {}), {"nesting deeper than 64 levels"});
  }
  // 64 levels are fine for the parser (the walker then finds no learner).
  ExpectError(ImportXgboostJson(std::string(64, '[') + std::string(64, ']'), {}),
              {"document: expected an object, found an array"});
  ExpectError(ImportXgboostUbjson(std::string(64, '[') + std::string(64, ']'), {}),
              {"document: expected an object, found an array"});
}

TEST(XgboostImportTest, JsonSyntaxErrorsNameTheLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "line 1, column 1: unexpected end of input"},
      {"{\"learner\":\n  {\"a\": tru}}", "line 2, column 9: unexpected character 't'"},
      {"{\"learner\" 1}", "expected ':' after an object key"},
      {"{\"a\": 1,}", "expected a string key"},
      {"[1, 2", "unexpected end of input inside an array"},
      {"[1 2]", "expected ',' or ']' in an array"},
      {"{\"a\": 1 \"b\": 2}", "expected ',' or '}' in an object"},
      {"\"abc", "unexpected end of input inside a string"},
      {"\"a\x01\"", "control character inside a string"},
      {"\"\\q\"", "invalid escape '\\q'"},
      {"\"\\u12G4\"", "invalid \\u escape"},
      {"\"\\ud800x\"", "unpaired high surrogate"},
      {"\"\\udc00\"", "unpaired low surrogate"},
      {"01", "unexpected data after the end of the document"},
      {"-", "invalid number"},
      {"1.", "no digits after '.'"},
      {"1e+", "no digits in the exponent"},
      {"1e999999", "number out of range"},
      {"{} x", "unexpected data after the end of the document"},
      {"nul", "unexpected character 'n'"},
  };
  for (const auto& [text, message] : cases) {
    SCOPED_TRACE(text);
    ExpectError(ImportXgboostJson(text, {}), {"xgboost-json: line ", message});
  }
}

// ---------------------------------------------------------------------------
// The document parsers themselves.

TEST(XgboostDocTest, JsonDialect) {
  ASSERT_OK_AND_ASSIGN(
      DocValue v,
      internal::ParseXgboostJsonDoc(
          " {\"a\": [1, -2, 0.1, 5E-1, NaN, Infinity, -Infinity, true, null],"
          " \"s\": \"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\", \"o\": {}, \"e\": [],"
          " \"m\": [1, \"two\"], \"i\": 12345678901234, \"big\": 99999999999999999999} "));
  ASSERT_EQ(v.kind, DocValue::Kind::kObject);
  const DocValue* a = v.Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->kind, DocValue::Kind::kNumbers);
  ASSERT_EQ(a->numbers.size(), 9u);
  EXPECT_EQ(a->numbers[0], 1.0);
  EXPECT_EQ(a->numbers[1], -2.0);
  // Fractions are float32, as XGBoost reads them.
  EXPECT_EQ(a->numbers[2], static_cast<double>(0.1f));
  EXPECT_EQ(a->numbers[3], 0.5);
  EXPECT_TRUE(std::isnan(a->numbers[4]));
  EXPECT_EQ(a->numbers[5], std::numeric_limits<double>::infinity());
  EXPECT_EQ(a->numbers[6], -std::numeric_limits<double>::infinity());
  EXPECT_EQ(a->numbers[7], 1.0);
  EXPECT_TRUE(std::isnan(a->numbers[8]));
  EXPECT_EQ(v.Find("s")->string, "x\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(v.Find("o")->kind, DocValue::Kind::kObject);
  EXPECT_EQ(v.Find("e")->kind, DocValue::Kind::kArray);
  const DocValue* m = v.Find("m");
  ASSERT_EQ(m->kind, DocValue::Kind::kArray);
  ASSERT_EQ(m->items.size(), 2u);
  EXPECT_EQ(m->items[0].number, 1.0);
  EXPECT_EQ(m->items[1].string, "two");
  EXPECT_EQ(v.Find("i")->number, 12345678901234.0);
  EXPECT_EQ(v.Find("big")->number, static_cast<double>(99999999999999999999.0f));
  EXPECT_EQ(v.Find("nope"), nullptr);
}

TEST(XgboostDocTest, UbjsonMarkers) {
  // {"a": [$d#i2 1.5 -2], "b": [i-3 U200 I-300 l70000 L2^40 D0.1 T F Z C'x' S"yz"], "c": {#i1 "k":
  // i7}}
  std::string b =
      Bytes({'{', 'i', 1, 'a', '[', '$', 'd', '#', 'i', 2, 0x3f, 0xc0, 0, 0, 0xc0, 0, 0, 0});
  b += Bytes({'i',  1,    'b',  '[',  'i', 0xfd, 'U', 200, 'I', 0xfe, 0xd4, 'l',  0,    1,    0x11,
              0x70, 'L',  0,    0,    1,   0,    0,   0,   0,   0,    'D',  0x3f, 0xb9, 0x99, 0x99,
              0x99, 0x99, 0x99, 0x9a, 'T', 'F',  'Z', 'C', 'x', 'S',  'i',  2,    'y',  'z',  ']'});
  b += Bytes({'i', 1, 'c', '{', '#', 'i', 1, 'i', 1, 'k', 'i', 7, '}'});
  ASSERT_OK_AND_ASSIGN(DocValue v, internal::ParseUbjsonDoc(b));
  const DocValue* a = v.Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->kind, DocValue::Kind::kNumbers);
  EXPECT_EQ(a->numbers, (std::vector<double>{1.5, -2.0}));
  const DocValue* items = v.Find("b");
  ASSERT_NE(items, nullptr);
  ASSERT_EQ(items->kind, DocValue::Kind::kArray);  // mixed: numbers and strings
  ASSERT_EQ(items->items.size(), 11u);
  const double want[] = {-3, 200, -300, 70000, 1099511627776.0, 0.1, 1, 0, NAN};
  for (size_t i = 0; i < 9; ++i) {
    if (std::isnan(want[i])) {
      EXPECT_EQ(items->items[i].kind, DocValue::Kind::kNull);
    } else if (i == 6 || i == 7) {
      EXPECT_EQ(items->items[i].kind, DocValue::Kind::kBool);
      EXPECT_EQ(items->items[i].boolean, i == 6);
    } else {
      EXPECT_EQ(items->items[i].number, want[i]) << i;
    }
  }
  EXPECT_EQ(items->items[9].string, "x");
  EXPECT_EQ(items->items[10].string, "yz");
  const DocValue* c = v.Find("c");
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->members.size(), 1u);
  EXPECT_EQ(c->members[0].first, "k");
  EXPECT_EQ(c->members[0].second.number, 7.0);
}

}  // namespace
}  // namespace keel::model
