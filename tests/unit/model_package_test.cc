// Model packages: write, read back, flavors, path safety and the
// registration check, on real files in a temporary directory.
#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>
#include <fstream>

#include "keel/model/package.h"
#include "test_util.h"

namespace keel::model {
namespace {
namespace fs = std::filesystem;

const char* kLinear =
    R"({"keel_linear": 1, "task": "binary", "num_features": 2, "weights": [1.5, -2.0],
        "bias": [0.25], "feature_names": ["age", "calls"]})";

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

PackageContents LinearPackage() {
  PackageContents c;
  c.model_bytes = kLinear;
  c.info.format = "keel-linear";
  c.info.task = "binary";
  c.info.output_name = "churn_probability";
  c.info.classes = {"no", "yes"};
  c.input_example_json = R"({"columns": ["age", "calls"], "data": [[31, 4]]})";
  return c;
}

TEST(ModelPackage, WriteLoadAndCheck) {
  testing::TempDir dir;
  const fs::path pkg = dir.path() / "model";
  ASSERT_OK(WriteModelPackage(pkg, LinearPackage()));
  EXPECT_TRUE(IsKeelLoadable(pkg));
  YAML::Node ml = YAML::LoadFile((pkg / "MLmodel").string());
  EXPECT_EQ(ml["flavors"]["keel"]["format"].as<std::string>(), "keel-linear");
  EXPECT_EQ(ml["flavors"]["keel"]["classes"][1].as<std::string>(), "yes");
  EXPECT_FALSE(ml["flavors"]["xgboost"]);
  EXPECT_EQ(ml["saved_input_example_info"]["artifact_path"].as<std::string>(),
            "input_example.json");
  ASSERT_OK_AND_ASSIGN(auto loaded, LoadModelPackage(pkg));
  EXPECT_EQ(loaded->info.flavor, "keel");
  EXPECT_EQ(loaded->info.output_name, "churn_probability");
  EXPECT_EQ(loaded->pipeline.feature_names(), (std::vector<std::string>{"age", "calls"}));
  ASSERT_OK(CheckLoadedModel(*loaded));
  std::vector<float> x(2);
  ASSERT_OK(loaded->pipeline.EncodeJsonObject(R"({"age": 2, "calls": 1})", x.data()));
  float p = 0;
  loaded->predictor.PredictRow(x.data(), &p);
  EXPECT_NEAR(p, 1.0 / (1.0 + std::exp(-(1.5 * 2 - 2.0 + 0.25))), 1e-6);
  // A package is never written over an existing one.
  EXPECT_FALSE(WriteModelPackage(pkg, LinearPackage()).ok());
  // No temporary directories are left beside it.
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) entries += e.path() != pkg;
  EXPECT_EQ(entries, 0u);
}

TEST(ModelPackage, ExampleThatDoesNotScoreFailsTheCheck) {
  testing::TempDir dir;
  PackageContents c = LinearPackage();
  c.input_example_json = R"({"columns": ["age", "calls"], "data": [["old", 4]]})";
  ASSERT_OK(WriteModelPackage(dir.path() / "model", c));
  ASSERT_OK_AND_ASSIGN(auto loaded, LoadModelPackage(dir.path() / "model"));
  Status s = CheckLoadedModel(*loaded);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("age"), std::string::npos) << s.ToString();
}

TEST(ModelPackage, ForeignFlavorsAndBrokenPackages) {
  testing::TempDir dir;
  // An sklearn model: not keel's to load.
  Write(dir.path() / "sk/MLmodel", "flavors:\n  sklearn: {pickled_model: model.pkl}\n");
  EXPECT_FALSE(IsKeelLoadable(dir.path() / "sk"));
  EXPECT_FALSE(LoadModelPackage(dir.path() / "sk").ok());
  EXPECT_FALSE(IsKeelLoadable(dir.path() / "missing"));
  // An mlflow.lightgbm directory: loaded through its flavor, identity pipeline.
  const std::string lgb =
      Read(std::string(KEEL_SOURCE_DIR) + "/tests/data/lightgbm/lgb_binary_numerical.txt");
  ASSERT_FALSE(lgb.empty());
  Write(dir.path() / "lgb/MLmodel", "flavors:\n  lightgbm: {data: model.lgb}\n");
  Write(dir.path() / "lgb/model.lgb", lgb);
  ASSERT_TRUE(IsKeelLoadable(dir.path() / "lgb"));
  ASSERT_OK_AND_ASSIGN(auto loaded, LoadModelPackage(dir.path() / "lgb"));
  EXPECT_EQ(loaded->info.flavor, "lightgbm");
  EXPECT_EQ(loaded->info.format, "lightgbm-text");
  EXPECT_EQ(loaded->pipeline.num_features(), static_cast<size_t>(loaded->model.num_features));
  // Writing a LightGBM package adds the lightgbm flavor.
  PackageContents c;
  c.model_bytes = lgb;
  c.info.format = "lightgbm-text";
  c.info.task = "binary";
  ASSERT_OK(WriteModelPackage(dir.path() / "lgb2", c));
  YAML::Node ml = YAML::LoadFile((dir.path() / "lgb2/MLmodel").string());
  EXPECT_EQ(ml["flavors"]["lightgbm"]["data"].as<std::string>(), "model.txt");
  // A model path that leaves the package is refused.
  Write(dir.path() / "evil/MLmodel", "flavors:\n  xgboost: {data: ../lgb/model.lgb}\n");
  auto evil = LoadModelPackage(dir.path() / "evil");
  ASSERT_FALSE(evil.ok());
  EXPECT_NE(evil.status().message().find("leaves the model directory"), std::string::npos);
  // Broken YAML and a truncated model give errors, not crashes.
  Write(dir.path() / "bad/MLmodel", "flavors: [unclosed\n");
  EXPECT_FALSE(LoadModelPackage(dir.path() / "bad").ok());
  Write(dir.path() / "cut/MLmodel", "flavors:\n  keel: {format: keel-linear, model: m.json}\n");
  Write(dir.path() / "cut/m.json", std::string(kLinear).substr(0, 40));
  EXPECT_FALSE(LoadModelPackage(dir.path() / "cut").ok());
}

TEST(ModelPackage, HostileExamplesAndLinks) {
  testing::TempDir dir;
  // An input example nested 200,000 deep is refused, not recursed into.
  PackageContents deep = LinearPackage();
  deep.input_example_json =
      "[{\"age\": " + std::string(200000, '[') + std::string(200000, ']') + "}]";
  ASSERT_OK(WriteModelPackage(dir.path() / "deep", deep));
  ASSERT_OK_AND_ASSIGN(auto d, LoadModelPackage(dir.path() / "deep"));
  Status s = CheckLoadedModel(*d);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("nests deeper"), std::string::npos) << s.ToString();
  // Column names that are not strings are an error, not an exception.
  PackageContents cols = LinearPackage();
  cols.input_example_json = R"({"columns": [1, 2], "data": [[1, 2]]})";
  ASSERT_OK(WriteModelPackage(dir.path() / "cols", cols));
  ASSERT_OK_AND_ASSIGN(auto c, LoadModelPackage(dir.path() / "cols"));
  EXPECT_FALSE(CheckLoadedModel(*c).ok());
  // A symlink inside the package that leads outside it is not followed.
  Write(dir.path() / "outside/model.json", kLinear);
  Write(dir.path() / "link/MLmodel", "flavors:\n  keel: {format: keel-linear, model: m.json}\n");
  fs::create_symlink(dir.path() / "outside/model.json", dir.path() / "link/m.json");
  auto linked = LoadModelPackage(dir.path() / "link");
  ASSERT_FALSE(linked.ok());
  EXPECT_NE(linked.status().message().find("outside the model directory"), std::string::npos)
      << linked.status().ToString();
  // A bare file no format recognises is not keel's to check.
  Write(dir.path() / "model.pkl", std::string("\x80\x04\x95", 3) + "pickle bytes");
  EXPECT_FALSE(IsKeelLoadable(dir.path() / "model.pkl"));
  Write(dir.path() / "bare.json", kLinear);
  EXPECT_TRUE(IsKeelLoadable(dir.path() / "bare.json"));
}

}  // namespace
}  // namespace keel::model
