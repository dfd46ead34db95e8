// keel export's generators (codegen.h): names, the format table, the atomic
// writer, the mlflow directory, and -- when a C compiler is installed -- the
// generated C and C++ compiled with -Wall -Wextra -pedantic -Werror and run on
// random rows (NaN, zeros, +-1e-36, values on thresholds, odd categories),
// compared bit for bit with Predictor::PredictRow and, for the raw path, with
// FeaturePipeline's encoding. End-to-end tests on trained models are in
// tests/e2e/test_export.py.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <regex>
#include <sstream>

#include "keel/model/builder.h"
#include "keel/model/codegen.h"
#include "keel/model/formats.h"
#include "keel/model/package.h"
#include "test_util.h"

namespace keel::model {
namespace {

namespace fs = std::filesystem;
using keel::testing::TempDir;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

std::string ReadText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteText(const fs::path& p, std::string_view text) {
  std::ofstream out(p, std::ios::binary);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

bool HaveCompiler(const char* cc) {
  return std::system((std::string(cc) + " --version > /dev/null 2>&1").c_str()) == 0;
}

// Runs a shell command; on failure (any non-zero exit) returns its output
// for the assertion message.
std::string Shell(const std::string& cmd, const fs::path& log) {
  const int rc = std::system((cmd + " > " + log.string() + " 2>&1").c_str());
  return rc == 0 ? ""
                 : "`" + cmd + "` failed (status " + std::to_string(rc) + "):\n" + ReadText(log);
}

// The standard output of a shell command ("" when it cannot run).
std::string Capture(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
  }
  return out;
}

// The README's code-size estimate is for x86-64 GCC 12 at -Os: checked only there.
bool CcIsX86Gcc12() {
  static const bool yes = [] {
    return Capture("cc -dumpfullversion 2>/dev/null").rfind("12.", 0) == 0 &&
           Capture("cc -dumpmachine 2>/dev/null").rfind("x86_64", 0) == 0 &&
           Capture("cc --version 2>/dev/null").find("clang") == std::string::npos;
  }();
  return yes;
}

// Sum of the sizes `size -A` reports for sections whose name starts with
// `prefix` (".text" also counts ".text.*"), minus those starting with `except`.
uint64_t SectionBytes(const fs::path& obj, std::string_view prefix, std::string_view except = "") {
  std::istringstream lines(Capture("size -A " + obj.string()));
  std::string line;
  uint64_t total = 0;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::string name;
    uint64_t size = 0;
    if (!(f >> name >> size)) continue;
    if (name.rfind(prefix, 0) == 0 && (except.empty() || name.rfind(except, 0) != 0)) total += size;
  }
  return total;
}

// "Code: about 1,234 bytes" of a generated README, as a number (0 if absent).
uint64_t ReadmeNumber(const std::string& readme, const std::string& before) {
  const size_t at = readme.find(before);
  if (at == std::string::npos) return 0;
  uint64_t n = 0;
  for (size_t i = at + before.size(); i < readme.size(); ++i) {
    if (readme[i] == ',') continue;
    if (readme[i] < '0' || readme[i] > '9') break;
    n = n * 10 + static_cast<uint64_t>(readme[i] - '0');
  }
  return n;
}

// Compiles the export in `dir` at -Os (C: NAME.c; C++: a use.cc calling
// NAME::Predict) and checks the README's data and code sizes against
// `size -A`: data the tables up to alignment padding, code within the stated
// 25% (x86-64 GCC 12 only). Returns the .text bytes.
uint64_t ExpectReadmeSizesHold(const fs::path& dir, const std::string& name,
                               const std::string& readme, bool cpp = false) {
  if (!HaveCompiler(cpp ? "c++" : "cc") || !HaveCompiler("size")) return 0;
  const fs::path obj = dir / (name + (cpp ? "_cpp_Os.o" : "_Os.o"));
  std::string cmd;
  if (cpp) {
    WriteText(dir / "use_os.cc", "#include \"" + name + ".hpp\"\nvoid f(const " + name +
                                     "::Input& i, float* o) { " + name + "::Predict(i, o); }\n");
    cmd = "c++ -std=c++17 -Os -ffp-contract=off -c -o " + obj.string() + " " +
          (dir / "use_os.cc").string();
  } else {
    cmd = "cc -std=c99 -Os -ffp-contract=off -c -o " + obj.string() + " " +
          (dir / (name + ".c")).string();
  }
  std::string err = Shell(cmd, dir / "os.log");
  EXPECT_TRUE(err.empty()) << err;
  if (!err.empty()) return 0;
  const uint64_t data = ReadmeNumber(readme, "| **total** | | **");
  const uint64_t rodata = SectionBytes(obj, ".rodata", ".rodata.cst");
  // The compiler pads tables (GCC aligns arrays of 32 bytes or more to 32 on
  // x86-64: at most 31 bytes each) and may fold a tiny one (a single base
  // margin) into the code.
  const size_t first_row = readme.find("|---|---:|---:|\n");
  const size_t total_row = readme.find("| **total** |");
  EXPECT_LT(first_row, total_row);
  if (first_row >= total_row) return 0;
  const uint64_t tables = static_cast<uint64_t>(
      std::count(readme.begin() + static_cast<std::ptrdiff_t>(first_row),
                 readme.begin() + static_cast<std::ptrdiff_t>(total_row), '\n') -
      1);
  EXPECT_GT(data, 0u);
  EXPECT_LE(data, rodata + 64) << name << ": the README counts more data than there is";
  EXPECT_LE(rodata, data + 31 * tables) << name << ": more constant data than the README's tables";
  // Stack: the README's figure bounds the deepest call chain at -O2 (GCC 12).
  if (CcIsX86Gcc12()) {
    const fs::path su_obj = dir / (name + (cpp ? "_cpp_O2.o" : "_O2.o"));
    const std::string o2 = std::regex_replace(cmd, std::regex(" -Os "), " -O2 -fstack-usage ");
    err = Shell(std::regex_replace(o2, std::regex(" -o [^ ]+ "), " -o " + su_obj.string() + " "),
                dir / "su.log");
    EXPECT_TRUE(err.empty()) << err;
    std::map<std::string, uint64_t> frames;
    std::istringstream su(ReadText(fs::path(su_obj).replace_extension(".su")));
    std::string line;
    uint64_t all = 0;
    while (std::getline(su, line)) {
      const size_t tab = line.find('\t');
      const size_t colon = line.rfind(':', tab);
      if (tab == std::string::npos) continue;
      EXPECT_NE(line.find("static"), std::string::npos) << "no dynamic stack: " << line;
      const uint64_t bytes = std::stoull(line.substr(tab + 1));
      std::string fn = line.substr(colon + 1, tab - colon - 1);
      if (fn.rfind(name + "_", 0) == 0) fn = fn.substr(name.size() + 1);  // C prefix
      frames[fn] = bytes;
      all += bytes;
    }
    auto F = [&](const char* fn) { return frames.count(fn) ? frames[fn] : 0; };
    // C: predict -> encode -> find, predict -> predict_encoded -> trees ->
    // go_right, predict_encoded -> linear; C++: everything (an upper bound).
    const uint64_t chain =
        cpp ? all
            : F("predict") + std::max(F("encode") + F("find_"),
                                      F("predict_encoded") +
                                          std::max(F("trees_") + F("go_right_"), F("linear_")));
    const uint64_t stack = ReadmeNumber(readme, "Stack: about ");
    EXPECT_GT(chain, 0u);
    EXPECT_GE(stack, chain) << name << (cpp ? " C++" : " C") << ": the README's stack";
    EXPECT_LE(stack, 2 * chain + 256) << name << (cpp ? " C++" : " C") << ": the README's stack";
  }
  const uint64_t code = ReadmeNumber(readme, "Code: about ");
  const uint64_t text = SectionBytes(obj, ".text");
  EXPECT_GT(code, 0u) << readme;
  if (CcIsX86Gcc12()) {
    EXPECT_GE(code * 4, text * 3) << name << (cpp ? " C++" : " C") << ": README says " << code
                                  << ", .text is " << text;
    EXPECT_LE(code * 4, text * 5) << name << (cpp ? " C++" : " C") << ": README says " << code
                                  << ", .text is " << text;
  }
  return text;
}

LoadedModel Wrap(Model m, const std::string& pipeline_json = "") {
  auto predictor = Predictor::Compile(m);
  EXPECT_TRUE(predictor.ok()) << predictor.status().ToString();
  Result<data::FeaturePipeline> pipeline = InvalidArgument("unset");
  if (pipeline_json.empty()) {
    std::vector<std::string> names;
    for (int32_t i = 0; i < m.num_features; ++i) names.push_back("f" + std::to_string(i));
    pipeline = data::FeaturePipeline::Identity(names);
  } else {
    pipeline = data::FeaturePipeline::FromJson(pipeline_json);
  }
  EXPECT_TRUE(pipeline.ok()) << pipeline.status().ToString();
  PackageInfo info;
  info.flavor = "file";
  info.format = m.source_format.empty() ? "keel-test" : m.source_format;
  info.output_name = "prediction";
  return LoadedModel{std::move(m), std::move(predictor).value(), std::move(pipeline).value(),
                     std::move(info), "test-model"};
}

// --- random models -------------------------------------------------------------

constexpr double kSplitPoints[] = {-1.0, -0.5, 0.0, 0.25, 1.0, 1e-36, -1e-36, 2.5, 3.0};

struct ModelSpec {
  int32_t features = 6;
  int32_t groups = 1;
  Transform transform = Transform::kIdentity;
  Accumulator acc = Accumulator::kFloat;
  int trees = 11;
  int max_depth = 5;
  bool dart = false;
  bool linear = false;
  bool lightgbm_rules = false;   // kLessEqual, NaN-as-zero and zero-missing splits
  int categorical_features = 0;  // the last N features are categorical
  InvalidCategory invalid = InvalidCategory::kDefault;
  // Half the splits use one of the last 64 features (wide models: indexes
  // above 32,767 must occur).
  bool favor_last_features = false;
};

// A random tree of depth <= max_depth; node ids are dense, children after parents.
Status AddRandomTree(ModelBuilder& b, std::mt19937& rng, int32_t features, int32_t group,
                     double weight, int max_depth, const ModelSpec& kind) {
  KEEL_RETURN_IF_ERROR(b.BeginTree(group, weight));
  int32_t next = 1;
  std::function<Status(int32_t, int)> grow = [&](int32_t id, int depth) -> Status {
    std::uniform_real_distribution<double> u(0, 1);
    if (depth == max_depth || (depth > 0 && u(rng) < 0.2)) {
      return b.AddLeaf(id, std::uniform_real_distribution<double>(-1, 1)(rng));
    }
    const int32_t left = next++, right = next++;
    uint32_t f = static_cast<uint32_t>(rng() % static_cast<uint32_t>(features));
    if (kind.favor_last_features && (rng() & 1) != 0) {
      f = static_cast<uint32_t>(features - 1) - static_cast<uint32_t>(rng() % 64);
    }
    if (static_cast<int32_t>(f) >= features - kind.categorical_features) {
      CategoricalSplit s;
      s.feature = f;
      const int n = static_cast<int>(rng() % 5);
      for (int i = 0; i < n; ++i) s.categories.push_back(rng() % (u(rng) < 0.3 ? 100 : 8));
      s.categories_go_left = (rng() & 1) != 0;
      s.default_left = (rng() & 1) != 0;
      s.invalid = kind.invalid;
      s.left = left;
      s.right = right;
      KEEL_RETURN_IF_ERROR(b.AddCategoricalSplit(id, std::move(s)));
    } else {
      NumericalSplit s;
      s.feature = f;
      s.threshold = kSplitPoints[rng() % std::size(kSplitPoints)];
      s.default_left = (rng() & 1) != 0;
      if (kind.lightgbm_rules) {
        s.cmp = Comparison::kLessEqual;
        const uint32_t r = rng() % 3;
        s.missing = r == 0   ? MissingRule::kNanToDefault
                    : r == 1 ? MissingRule::kNanAsZero
                             : MissingRule::kZeroAndNanDefault;
      }
      s.left = left;
      s.right = right;
      KEEL_RETURN_IF_ERROR(b.AddNumericalSplit(id, s));
    }
    KEEL_RETURN_IF_ERROR(grow(left, depth + 1));
    return grow(right, depth + 1);
  };
  KEEL_RETURN_IF_ERROR(grow(0, 0));
  return b.EndTree();
}

Result<Model> RandomModel(const ModelSpec& spec, uint32_t seed) {
  std::mt19937 rng(seed);
  ModelHeader h;
  h.num_features = spec.features;
  h.num_groups = spec.groups;
  h.transform = spec.transform;
  h.accumulator = spec.acc;
  h.task = spec.groups > 1 ? Task::kMulticlass : Task::kRegression;
  h.source_format = "keel-test";
  ModelBuilder b(h);
  std::vector<double> base;
  for (int32_t g = 0; g < spec.groups; ++g) base.push_back(0.1 * (g + 1) + 1e-9);
  KEEL_RETURN_IF_ERROR(b.SetBaseMargin(base));
  for (int t = 0; t < spec.trees; ++t) {
    const double w = spec.dart ? 0.3 + 0.1 * (t % 5) : 1.0;
    KEEL_RETURN_IF_ERROR(
        AddRandomTree(b, rng, spec.features, t % spec.groups, w, spec.max_depth, spec));
  }
  if (spec.linear) {
    std::uniform_real_distribution<double> u(-2, 2);
    std::vector<double> w(static_cast<size_t>(spec.features * spec.groups)),
        bias(static_cast<size_t>(spec.groups));
    for (double& v : w) v = u(rng);
    for (double& v : bias) v = u(rng);
    KEEL_RETURN_IF_ERROR(b.SetLinear(std::move(w), std::move(bias)));
  }
  return std::move(b).Finish();
}

std::vector<float> RandomRows(int32_t features, size_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  const float specials[] = {kNan,  0.0f,  -0.0f, 1e-36f, -1e-36f,     1e-35f, -1.0f,
                            -0.5f, 0.25f, 1.0f,  2.5f,   3.0f,        31.0f,  32.0f,
                            33.0f, 64.0f, 99.0f, 1e9f,   16777216.0f, 3.7f,   -1.5f};
  std::uniform_real_distribution<float> u(-3, 4);
  std::vector<float> x(rows * static_cast<size_t>(features));
  for (float& v : x) {
    v = (rng() % 3 == 0) ? u(rng) : specials[rng() % std::size(specials)];
  }
  return x;
}

bool SameBits(float a, float b) {
  if (std::isnan(a) && std::isnan(b)) return true;
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// Exports `m` as C (and as a C++ header), compiles both against a driver
// that maps binary rows to binary outputs, and compares every output with
// PredictRow.
void ExpectGeneratedMatchesEngine(const LoadedModel& m, const std::string& name, size_t rows,
                                  const char* opt = "-O2", bool also_cpp = true) {
  if (!HaveCompiler("cc")) GTEST_SKIP() << "no C compiler";
  TempDir dir;
  ExportOptions o;
  o.name = name;
  ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> c_files, GenerateExport(m, "c", o));
  ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> cpp_files, GenerateExport(m, "cpp-header", o));
  for (const auto& f : c_files) WriteText(dir.path() / f.path, f.contents);
  for (const auto& f : cpp_files) {
    if (f.path != "README.md") WriteText(dir.path() / f.path, f.contents);  // keep the C one
  }
  ExpectReadmeSizesHold(dir.path(), name, c_files.back().contents);
  if (also_cpp) ExpectReadmeSizesHold(dir.path(), name, cpp_files.back().contents, true);
  const std::string U = [&] {
    std::string s = name;
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
  }();
  WriteText(dir.path() / "driver.c",
            "#include <stdio.h>\n#include \"" + name +
                ".h\"\n"
                "int main(int argc, char** argv) {\n"
                "  FILE* in = fopen(argv[1], \"rb\");\n  FILE* out = fopen(argv[2], \"wb\");\n"
                "  float x[" +
                U + "_NUM_FEATURES], y[" + U +
                "_NUM_OUTPUTS];\n"
                "  if (!in || !out || argc < 3) return 2;\n"
                "  while (fread(x, sizeof x, 1, in) == 1) {\n    " +
                name +
                "_predict_encoded(x, y);\n    fwrite(y, sizeof y, 1, out);\n  }\n"
                "  fclose(in);\n  return fclose(out) != 0;\n}\n");
  WriteText(dir.path() / "driver.cc",
            "#include <cstdio>\n#include \"" + name +
                ".hpp\"\n"
                "int main(int argc, char** argv) {\n"
                "  std::FILE* in = std::fopen(argv[1], \"rb\");\n"
                "  std::FILE* out = std::fopen(argv[2], \"wb\");\n"
                "  float x[" +
                name + "::kNumFeatures], y[" + name +
                "::kNumOutputs];\n"
                "  if (!in || !out || argc < 3) return 2;\n"
                "  while (std::fread(x, sizeof x, 1, in) == 1) {\n    " +
                name +
                "::PredictEncoded(x, y);\n    std::fwrite(y, sizeof y, 1, out);\n  }\n"
                "  std::fclose(in);\n  return std::fclose(out) != 0;\n}\n");
  const std::string d = dir.path().string();
  const std::string warn = " -Wall -Wextra -pedantic -Werror ";
  std::string err = Shell("cc -std=c99" + warn + opt + " -o " + d + "/c_bin " + d + "/driver.c " +
                              d + "/" + name + ".c -lm",
                          dir.path() / "cc.log");
  ASSERT_TRUE(err.empty()) << err;
  const bool cpp = also_cpp && HaveCompiler("c++");
  if (cpp) {
    err = Shell("c++ -std=c++17" + warn + opt + " -o " + d + "/cpp_bin " + d + "/driver.cc",
                dir.path() / "cxx.log");
    ASSERT_TRUE(err.empty()) << err;
  }

  const int32_t nf = m.predictor.num_features();
  const int32_t no = m.predictor.num_outputs();
  const std::vector<float> x = RandomRows(nf, rows, 7);
  WriteText(dir.path() / "x.f32",
            std::string_view(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float)));
  std::vector<float> want(rows * static_cast<size_t>(no));
  for (size_t r = 0; r < rows; ++r) {
    m.predictor.PredictRow(x.data() + r * nf, want.data() + r * no);
  }
  for (const char* bin : {"c_bin", "cpp_bin"}) {
    if (std::string(bin) == "cpp_bin" && !cpp) continue;
    err = Shell(d + "/" + bin + " " + d + "/x.f32 " + d + "/y.f32", dir.path() / "run.log");
    ASSERT_TRUE(err.empty()) << err;
    const std::string y = ReadText(dir.path() / "y.f32");
    ASSERT_EQ(y.size(), want.size() * sizeof(float)) << bin;
    size_t mismatches = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      float got;
      std::memcpy(&got, y.data() + i * sizeof(float), sizeof got);
      if (!SameBits(got, want[i]) && mismatches++ < 5) {
        ADD_FAILURE() << name << " " << bin << " row " << i / no << " output " << i % no << ": "
                      << got << " != engine " << want[i];
      }
    }
    EXPECT_EQ(mismatches, 0u) << name << " " << bin;
  }
}

// --- names and the table ----------------------------------------------------------

TEST(ExportNames, SanitizeAndDefaults) {
  EXPECT_EQ(SanitizeIdentifier("churn"), "churn");
  EXPECT_EQ(SanitizeIdentifier("Churn Model-v2"), "churn_model_v2");
  EXPECT_EQ(SanitizeIdentifier("3d"), "m_3d");
  EXPECT_EQ(SanitizeIdentifier("__x__"), "x");
  EXPECT_EQ(SanitizeIdentifier("état=KS"), "tat_ks");
  EXPECT_EQ(SanitizeIdentifier("==="), "x");
  EXPECT_EQ(SanitizeIdentifier("int"), "int_");
  EXPECT_EQ(SanitizeIdentifier("class"), "class_");
  EXPECT_EQ(DefaultExportName("churn"), "churn_model");
  EXPECT_EQ(DefaultExportName("fraud-model"), "fraud_model");
  EXPECT_EQ(DefaultExportName(""), "model");
  EXPECT_EQ(DefaultExportName("model"), "model");
  EXPECT_TRUE(CheckExportName("churn_model").ok());
  EXPECT_TRUE(CheckExportName("M2").ok());
  for (const char* bad : {"", "9x", "_x", "a-b", "int", "namespace", "a b", "é"}) {
    EXPECT_FALSE(CheckExportName(bad).ok()) << bad;
  }
  EXPECT_FALSE(CheckExportName(std::string(65, 'a')).ok());
}

TEST(ExportFormats, OpenTable) {
  std::vector<std::string> names;
  for (const ExportFormat& f : ExportFormats()) names.push_back(std::string(f.name));
  EXPECT_EQ(names, (std::vector<std::string>{"c", "cpp-header", "mlflow"}));
  EXPECT_NE(FindExportFormat("cpp-header"), nullptr);
  EXPECT_EQ(FindExportFormat("rust"), nullptr);
  EXPECT_EQ(ExportFormatNames(), "c, cpp-header, mlflow");
  ASSERT_OK_AND_ASSIGN(Model model, RandomModel({}, 1));
  LoadedModel m = Wrap(std::move(model));
  auto r = GenerateExport(m, "rust", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("known: c, cpp-header, mlflow"), std::string::npos);
  ExportOptions bad;
  bad.name = "9lives";
  EXPECT_FALSE(GenerateExport(m, "c", bad).ok());
}

TEST(ExportC, FilesNamesReadmeAndDeterminism) {
  ASSERT_OK_AND_ASSIGN(Model model, RandomModel({.trees = 20}, 2));
  LoadedModel m = Wrap(std::move(model));
  ExportOptions o;
  o.model_name = "Churn";
  o.source = "churn version 3 (churn@champion)";
  ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> a, GenerateExport(m, "c", o));
  ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> b, GenerateExport(m, "c", o));
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0].path, "churn_model.h");
  EXPECT_EQ(a[1].path, "churn_model.c");
  EXPECT_EQ(a[2].path, "README.md");
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].contents, b[i].contents) << a[i].path;
  const std::string& h = a[0].contents;
  EXPECT_NE(h.find("void churn_model_predict(const churn_model_input* in, float "
                   "out[CHURN_MODEL_NUM_OUTPUTS]);"),
            std::string::npos);
  EXPECT_NE(h.find("#define CHURN_MODEL_NUM_FEATURES 6"), std::string::npos);
  EXPECT_NE(h.find("X(f0, \"f0\", NUMBER)"), std::string::npos);
  EXPECT_NE(h.find("churn version 3"), std::string::npos);
  EXPECT_EQ(a[1].contents.find("malloc"), std::string::npos);
  const std::string& readme = a[2].contents;
  EXPECT_NE(readme.find("| **total** |"), std::string::npos);
  EXPECT_NE(readme.find("size -A churn_model.o"), std::string::npos);
  EXPECT_NE(readme.find("-ffp-contract=off"), std::string::npos);
  ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> cpp, GenerateExport(m, "cpp-header", o));
  ASSERT_EQ(cpp.size(), 2u);
  EXPECT_EQ(cpp[0].path, "churn_model.hpp");
  EXPECT_NE(cpp[0].contents.find("namespace churn_model {"), std::string::npos);
  EXPECT_NE(cpp[0].contents.find("inline constexpr"), std::string::npos);
}

TEST(ExportC, HostileNamesStayInsideLiteralsAndComments) {
  // Column names and categories with quotes, trigraphs, comment closers,
  // backslashes at line ends and non-ASCII bytes; repeated sanitised names.
  const std::string pipeline = R"({"keel_pipeline":1,"encoding":"one_hot","missing_markers":[""],
    "columns":[{"name":"a*/b?\u003f/","type":"categorical","categories":["*/","?\u003f=","\\","\u00e9\""]},
               {"name":"A*/B?\u003f/","type":"numeric"},{"name":"int","type":"boolean"}]})";
  ModelHeader h;
  h.num_features = 6;
  ModelBuilder b(h);
  ASSERT_OK(b.SetLinear({1, 2, 4, 8, 16, 32}, {0.5}));
  ASSERT_OK_AND_ASSIGN(Model model, std::move(b).Finish());
  LoadedModel m = Wrap(std::move(model), pipeline);
  ExportOptions o;
  o.name = "hostile";
  ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> files, GenerateExport(m, "c", o));
  const std::string& hdr = files[0].contents;
  EXPECT_NE(hdr.find("const char* a_b;"), std::string::npos) << hdr;
  EXPECT_NE(hdr.find("double a_b_2;"), std::string::npos);
  EXPECT_NE(hdr.find("double int_;"), std::string::npos);
  // The category texts are byte values, each line's comment sanitised.
  EXPECT_NE(files[1].contents.find("    42, 47, 0, /* _/ */\n    63, 63, 61, 0, /* __= */\n"
                                   "    92, 0, /* _ */\n    195, 169, 34, 0, /* __\" */\n"),
            std::string::npos)
      << files[1].contents;
  if (!HaveCompiler("cc")) GTEST_SKIP() << "no C compiler";
  TempDir dir;
  for (const auto& f : files) WriteText(dir.path() / f.path, f.contents);
  // Raw records through the generated encoder, against the pipeline's.
  WriteText(dir.path() / "driver.c", R"(#include <math.h>
#include <stdio.h>
#include "hostile.h"
int main(void) {
  static const char* texts[] = {"*/", "?\?=", "\\", "\303\251\"", "", "x", NULL};
  const double nums[] = {1.5, NAN, -0.0, 1e300};
  int t, n;
  for (t = 0; t < 7; ++t) {
    for (n = 0; n < 4; ++n) {
      hostile_input in;
      float x[HOSTILE_NUM_FEATURES], y[1];
      int i;
      in.a_b = texts[t];
      in.a_b_2 = nums[n];
      in.int_ = n % 2;
      hostile_encode(&in, x);
      hostile_predict(&in, y);
      for (i = 0; i < HOSTILE_NUM_FEATURES; ++i) printf("%a ", (double)x[i]);
      printf("%a\n", (double)y[0]);
    }
  }
  return 0;
}
)");
  const std::string d = dir.path().string();
  std::string err = Shell("cc -std=c99 -Wall -Wextra -pedantic -Werror -O2 -o " + d + "/bin " + d +
                              "/driver.c " + d + "/hostile.c -lm",
                          dir.path() / "cc.log");
  ASSERT_TRUE(err.empty()) << err;
  err = Shell(d + "/bin", dir.path() / "out.txt");  // the driver's exit status is checked
  ASSERT_TRUE(err.empty()) << err;
  std::istringstream lines(ReadText(dir.path() / "out.txt"));
  const char* texts[] = {"*/", "?\?=", "\\", "\xc3\xa9\"", "", "x", nullptr};
  const double nums[] = {1.5, std::nan(""), -0.0, 1e300};
  for (int t = 0; t < 7; ++t) {
    for (int n = 0; n < 4; ++n) {
      std::vector<float> want(6);
      std::vector<float> x(6);
      ASSERT_OK(m.pipeline.EncodeTextValue(0, texts[t] ? texts[t] : "", want.data()));
      want[4] = static_cast<float>(nums[n]);
      want[5] = static_cast<float>(n % 2);
      float y_want;
      m.predictor.PredictRow(want.data(), &y_want);
      std::string line;
      ASSERT_TRUE(std::getline(lines, line)) << "row " << t << "," << n;
      std::istringstream fields(line);
      for (int i = 0; i <= 6; ++i) {
        std::string hex;
        fields >> hex;
        const float got = static_cast<float>(std::strtod(hex.c_str(), nullptr));
        EXPECT_TRUE(SameBits(got, i < 6 ? want[i] : y_want))
            << "text " << t << " number " << n << " field " << i << ": " << hex;
      }
    }
  }
}

// --- generated code against the engine ---------------------------------------------

TEST(ExportC, FastLayoutMatchesEngine) {
  ASSERT_OK_AND_ASSIGN(
      Model m,
      RandomModel({.transform = Transform::kSigmoid, .trees = 21, .max_depth = 6, .dart = true},
                  3));
  ExpectGeneratedMatchesEngine(Wrap(std::move(m)), "fast_binary", 3000);
}

TEST(ExportC, TransformsMatchEngine) {
  struct Case {
    const char* name;
    int32_t groups;
    Transform t;
  } cases[] = {{"softmax3", 3, Transform::kSoftmax},
               {"argmax4", 4, Transform::kSoftmaxArgmax},
               {"hinge", 1, Transform::kHinge},
               {"expo", 1, Transform::kExp},
               {"ident2", 2, Transform::kIdentity}};
  uint32_t seed = 10;
  for (const Case& c : cases) {
    ASSERT_OK_AND_ASSIGN(Model m, RandomModel({.features = 4,
                                               .groups = c.groups,
                                               .transform = c.t,
                                               .trees = 6 * c.groups,
                                               .max_depth = 4},
                                              seed++));
    // The C++ header shares the kernels; compile it for one of them.
    ExpectGeneratedMatchesEngine(Wrap(std::move(m)), c.name, 1500, "-O2",
                                 c.t == Transform::kSoftmax);
  }
}

TEST(ExportC, LightgbmRulesAndDoubleSumsMatchEngine) {
  ASSERT_OK_AND_ASSIGN(Model m, RandomModel({.features = 5,
                                             .groups = 1,
                                             .transform = Transform::kSigmoid,
                                             .acc = Accumulator::kDouble,
                                             .trees = 30,
                                             .max_depth = 6,
                                             .lightgbm_rules = true,
                                             .categorical_features = 2,
                                             .invalid = InvalidCategory::kNotInSet},
                                            20));
  ExpectGeneratedMatchesEngine(Wrap(std::move(m)), "lgb_like", 3000);
  ASSERT_OK_AND_ASSIGN(Model multi, RandomModel({.features = 5,
                                                 .groups = 3,
                                                 .transform = Transform::kSoftmax,
                                                 .acc = Accumulator::kDouble,
                                                 .trees = 15,
                                                 .max_depth = 4,
                                                 .lightgbm_rules = true,
                                                 .categorical_features = 1,
                                                 .invalid = InvalidCategory::kNotInSet},
                                                21));
  ExpectGeneratedMatchesEngine(Wrap(std::move(multi)), "lgb_multi", 1500);
}

TEST(ExportC, XgboostCategoricalMatchesEngine) {
  ASSERT_OK_AND_ASSIGN(Model m, RandomModel({.features = 4,
                                             .transform = Transform::kSigmoid,
                                             .trees = 25,
                                             .max_depth = 5,
                                             .categorical_features = 2},
                                            30));
  ExpectGeneratedMatchesEngine(Wrap(std::move(m)), "xgb_cat", 3000);
}

TEST(ExportC, LinearMatchesEngine) {
  ASSERT_OK_AND_ASSIGN(
      Model f,
      RandomModel({.features = 7, .transform = Transform::kSigmoid, .trees = 0, .linear = true},
                  40));
  ExpectGeneratedMatchesEngine(Wrap(std::move(f)), "lin_float", 2000);
  ASSERT_OK_AND_ASSIGN(Model d, RandomModel({.features = 7,
                                             .groups = 3,
                                             .transform = Transform::kSoftmax,
                                             .acc = Accumulator::kDouble,
                                             .trees = 0,
                                             .linear = true},
                                            41));
  ExpectGeneratedMatchesEngine(Wrap(std::move(d)), "lin_double", 2000);
  ASSERT_OK_AND_ASSIGN(Model both, RandomModel({.features = 5, .trees = 9, .linear = true}, 42));
  ExpectGeneratedMatchesEngine(Wrap(std::move(both)), "trees_and_linear", 2000);
}

TEST(ExportC, WideIndicesMatchEngine) {
  // More than 65,536 nodes: 32-bit child indices in the node table.
  ASSERT_OK_AND_ASSIGN(Model m, RandomModel({.features = 6, .trees = 400, .max_depth = 10}, 50));
  size_t nodes = 0;
  for (const Tree& t : m.trees) nodes += t.nodes.size();
  ASSERT_GT(nodes, 65536u);
  ExpectGeneratedMatchesEngine(Wrap(std::move(m)), "wide", 500, "-O0", false);
}

TEST(ExportC, FastLayoutDoubleSumsMatchEngine) {
  // Numerical NaN-to-default splits only, so the fast layout, but double
  // sums: leaves are nodes with a NaN threshold and a per-node double leaf
  // table. Dart weights and several groups too.
  ASSERT_OK_AND_ASSIGN(Model m, RandomModel({.transform = Transform::kSigmoid,
                                             .acc = Accumulator::kDouble,
                                             .trees = 19,
                                             .max_depth = 6,
                                             .dart = true},
                                            60));
  ExportOptions o;
  o.name = "fast_double";
  LoadedModel lm = Wrap(std::move(m));
  ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> files, GenerateExport(lm, "c", o));
  // The layout this test is about: per-node double leaves, NaN thresholds.
  EXPECT_NE(files[1].contents.find("static const double fast_double_leaves_["), std::string::npos);
  EXPECT_NE(files[1].contents.find("{NAN, "), std::string::npos);
  EXPECT_EQ(files[1].contents.find("flags"), std::string::npos);
  ExpectGeneratedMatchesEngine(lm, "fast_double", 3000);
  ASSERT_OK_AND_ASSIGN(Model multi, RandomModel({.features = 5,
                                                 .groups = 3,
                                                 .transform = Transform::kSoftmax,
                                                 .acc = Accumulator::kDouble,
                                                 .trees = 12,
                                                 .max_depth = 4},
                                                61));
  ExpectGeneratedMatchesEngine(Wrap(std::move(multi)), "fast_double_multi", 1500);
}

// Defined below.
std::string PipelineJson(int numbers, int cat_cols, int cats, bool onehot,
                         const std::vector<std::string>& extra = {});
int32_t PipelineFeatures(const std::string& json);

TEST(ExportC, WideFeaturesMatchEngine) {
  // At least 32,768 features: the fast layout's NaN flag moves to bit 31 and
  // node feature fields widen to 32 bits; the general layout's too. The
  // features come from one one-hot column (a short encoder); few trees and
  // rows, -O0 and no C++ header, to stay fast.
  const std::string json = PipelineJson(1, 1, 32999, true);
  const int32_t wide = PipelineFeatures(json);
  ASSERT_EQ(wide, 33000);
  ASSERT_OK_AND_ASSIGN(Model fast, RandomModel({.features = wide,
                                                .transform = Transform::kSigmoid,
                                                .trees = 9,
                                                .max_depth = 5,
                                                .favor_last_features = true},
                                               70));
  uint32_t high = 0;
  for (const Tree& t : fast.trees) {
    for (const Node& n : t.nodes) high += n.kind != Node::Kind::kLeaf && n.feature >= 32768;
  }
  ASSERT_GT(high, 3u);
  LoadedModel lm = Wrap(std::move(fast), json);
  ExportOptions o;
  o.name = "wide_fast";
  ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> files, GenerateExport(lm, "c", o));
  EXPECT_NE(files[1].contents.find("uint32_t feature;"), std::string::npos);
  EXPECT_NE(files[1].contents.find("0x7FFFFFFFu"), std::string::npos);
  ExpectGeneratedMatchesEngine(lm, "wide_fast", 40, "-O0", false);
  ASSERT_OK_AND_ASSIGN(Model general, RandomModel({.features = wide,
                                                   .acc = Accumulator::kDouble,
                                                   .trees = 6,
                                                   .max_depth = 5,
                                                   .lightgbm_rules = true,
                                                   .favor_last_features = true},
                                                  71));
  ExpectGeneratedMatchesEngine(Wrap(std::move(general), json), "wide_general", 40, "-O0", false);
}

// A pipeline of `numbers` numeric columns and `cat_cols` categorical ones
// with `cats` categories each ("c0".."c<cats-1>", plus `extra` sorted in).
std::string PipelineJson(int numbers, int cat_cols, int cats, bool onehot,
                         const std::vector<std::string>& extra) {
  std::string s = R"({"keel_pipeline":1,"encoding":")" +
                  std::string(onehot ? "one_hot" : "native") +
                  R"(","missing_markers":["", "NA", "N/A", "null"],"columns":[)";
  for (int i = 0; i < numbers; ++i) {
    s += (i ? "," : "") + std::string(R"({"name":"n)") + std::to_string(i) + R"(","type":")" +
         (i % 3 == 2 ? "boolean" : "numeric") + R"("})";
  }
  for (int j = 0; j < cat_cols; ++j) {
    std::vector<std::string> names = extra;
    for (int k = 0; k < cats; ++k) names.push_back("c" + std::to_string(k));
    std::sort(names.begin(), names.end());
    s += (numbers + j ? "," : "") + std::string(R"({"name":"k)") + std::to_string(j) +
         R"(","type":"categorical","categories":[)";
    for (size_t k = 0; k < names.size(); ++k) s += (k ? ",\"" : "\"") + names[k] + "\"";
    s += "]}";
  }
  return s + "]}";
}

int32_t PipelineFeatures(const std::string& json) {
  auto p = data::FeaturePipeline::FromJson(json);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? static_cast<int32_t>(p->num_features()) : 0;
}

TEST(ExportC, CategoriesThatAreMissingMarkersEncodeAsMissing) {
  // keel reads a text that is a missing marker after trimming blanks as
  // missing before it looks up categories; a category spelled like a marker
  // ("NA", " NA", "null ") can therefore never be set from text. The
  // generated encoder must agree, for one-hot and native encodings.
  for (bool onehot : {true, false}) {
    SCOPED_TRACE(onehot ? "one_hot" : "native");
    const std::string json = PipelineJson(1, 1, 2, onehot, {"NA", " NA", "null ", "N/Ax", ""});
    const int32_t nf = PipelineFeatures(json);
    ASSERT_OK_AND_ASSIGN(Model model, RandomModel({.features = nf, .trees = 4}, 80));
    LoadedModel m = Wrap(std::move(model), json);
    ExportOptions o;
    o.name = "markers";
    ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> files, GenerateExport(m, "c", o));
    // Sorted: "", " NA", "N/Ax", "NA", "c0", "c1", "null ": 0, 1, 3 and 6 are markers.
    EXPECT_NE(files[1].contents.find("if (k == 0 || k == 1 || k == 3 || k == 6) k = -1;"),
              std::string::npos)
        << files[1].contents;
    if (!HaveCompiler("cc")) GTEST_SKIP() << "no C compiler";
    TempDir dir;
    for (const auto& f : files) WriteText(dir.path() / f.path, f.contents);
    WriteText(dir.path() / "driver.c", R"(#include <stdio.h>
#include "markers.h"
int main(void) {
  static const char* texts[] = {"NA", " NA", "NA ", "\tNA\t", "null", "null ", " null", "N/A",
                                "N/Ax", "", "  ", "c0", " c0", "c1", "zz", NULL};
  int t, i;
  for (t = 0; t < 16; ++t) {
    markers_input in;
    float x[MARKERS_NUM_FEATURES];
    in.n0 = 1.0;
    in.k0 = texts[t];
    markers_encode(&in, x);
    for (i = 0; i < MARKERS_NUM_FEATURES; ++i) printf("%a ", (double)x[i]);
    printf("\n");
  }
  return 0;
}
)");
    const std::string d = dir.path().string();
    std::string err = Shell("cc -std=c99 -Wall -Wextra -pedantic -Werror -O2 -o " + d + "/bin " +
                                d + "/driver.c " + d + "/markers.c -lm",
                            dir.path() / "cc.log");
    ASSERT_TRUE(err.empty()) << err;
    err = Shell(d + "/bin", dir.path() / "out.txt");
    ASSERT_TRUE(err.empty()) << err;
    if (HaveCompiler("c++")) {  // the same lines in the C++ header
      ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> hpp, GenerateExport(m, "cpp-header", o));
      WriteText(dir.path() / "markers.hpp", hpp[0].contents);
      WriteText(dir.path() / "use.cc", "#include \"markers.hpp\"\n");
      err = Shell("c++ -std=c++17 -Wall -Wextra -pedantic -Werror -fsyntax-only " + d + "/use.cc",
                  dir.path() / "cxx.log");
      EXPECT_TRUE(err.empty()) << err;
      EXPECT_NE(hpp[0].contents.find("if (k == 0 || k == 1 || k == 3 || k == 6) k = -1;"),
                std::string::npos);
    }
    std::istringstream lines(ReadText(dir.path() / "out.txt"));
    const char* texts[] = {"NA",   " NA", "NA ", "\tNA\t", "null", "null ", " null", "N/A",
                           "N/Ax", "",    "  ",  "c0",     " c0",  "c1",    "zz",    nullptr};
    for (const char* text : texts) {
      std::vector<float> want(static_cast<size_t>(nf));
      want[0] = 1.0f;
      if (text == nullptr) {
        m.pipeline.InitRow(want.data());
        want[0] = 1.0f;
      } else {
        ASSERT_OK(m.pipeline.EncodeTextValue(1, text, want.data()));
      }
      std::string line;
      ASSERT_TRUE(std::getline(lines, line));
      std::istringstream fields(line);
      for (int32_t i = 0; i < nf; ++i) {
        std::string hex;
        fields >> hex;
        EXPECT_TRUE(SameBits(static_cast<float>(std::strtod(hex.c_str(), nullptr)), want[i]))
            << "text '" << (text ? text : "NULL") << "' feature " << i << ": " << hex;
      }
    }
  }
}

TEST(ExportC, HostileModelTextsCannotInjectCode) {
  // Every text of the package that reaches generated source, hostile: comment
  // closers and openers, newlines, CR, trigraphs (??/ is a backslash, so a
  // line splice), a backslash at the end (which continues a // comment), a
  // marker identifier that must never reach the code.
  const std::string evil =
      "x */ KEEL_INJECTED_1 /* ?\?/\n KEEL_INJECTED_2 \r\n// \\\nKEEL_INJECTED_3 \\";
  const std::string pipeline = R"({"keel_pipeline":1,"encoding":"one_hot","missing_markers":[""],
    "columns":[{"name":"col */ KEEL_INJECTED_4 /* ??/\n\\","type":"categorical",
                "categories":["a */ KEEL_INJECTED_5 ??/","b\\"]},
               {"name":"n\\","type":"numeric"}]})";
  for (int groups : {1, 3}) {
    ASSERT_OK_AND_ASSIGN(Model model, RandomModel({.features = 3,
                                                   .groups = groups,
                                                   .transform = groups > 1 ? Transform::kSoftmax
                                                                           : Transform::kSigmoid,
                                                   .trees = 3 * groups},
                                                  90));
    if (groups == 1) model.task = Task::kBinary;
    LoadedModel m = Wrap(std::move(model), pipeline);
    m.info.output_name = evil;
    m.info.format = evil;
    m.model.source_format = "";
    m.info.classes = groups == 1 ? std::vector<std::string>{evil, evil + "2"}
                                 : std::vector<std::string>{evil, "b", evil + "\\"};
    ExportOptions o;
    o.name = "evil";
    o.source = evil;
    o.model_name = evil;
    ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> c_files, GenerateExport(m, "c", o));
    ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> cpp_files, GenerateExport(m, "cpp-header", o));
    for (const auto* files : {&c_files, &cpp_files}) {
      for (const ExportedFile& f : *files) {
        if (f.path == "README.md") continue;
        // No line of generated source ends in a backslash inside a comment,
        // and no raw comment closer or trigraph comes from the model.
        EXPECT_EQ(f.contents.find("KEEL_INJECTED_1 /*"), std::string::npos) << f.path;
        EXPECT_EQ(f.contents.find("?\?/"), std::string::npos) << f.path;
        EXPECT_EQ(f.contents.find("\r"), std::string::npos) << f.path;
      }
    }
    if (!HaveCompiler("cc")) GTEST_SKIP() << "no C compiler";
    TempDir dir;
    for (const auto& f : c_files) WriteText(dir.path() / f.path, f.contents);
    for (const auto& f : cpp_files) {
      if (f.path != "README.md") WriteText(dir.path() / f.path, f.contents);
    }
    WriteText(dir.path() / "use.cc",
              "#include \"evil.hpp\"\nvoid f(const evil::Input& i, float* o) "
              "{ evil::Predict(i, o); }\n");
    const std::string d = dir.path().string();
    // Comments gone, the markers must be gone too: they were only ever text.
    const std::string strict = " -Wall -Wextra -pedantic -Werror -trigraphs ";
    for (const std::string& cmd :
         {"cc -std=c99" + strict + "-E " + d + "/evil.c -o " + d + "/evil.i",
          "c++ -std=c++17" + strict + "-E " + d + "/use.cc -o " + d + "/use.i"}) {
      if (cmd[0] == 'c' && cmd[1] == '+' && !HaveCompiler("c++")) continue;
      const std::string err = Shell(cmd, dir.path() / "pp.log");
      ASSERT_TRUE(err.empty()) << err;
    }
    for (const char* i : {"/evil.i", "/use.i"}) {
      if (!fs::exists(d + i)) continue;
      const std::string pre = ReadText(d + i);
      EXPECT_EQ(pre.find("KEEL_INJECTED"), std::string::npos) << i << ":\n" << pre;
    }
    std::string err = Shell("cc -std=c99" + strict + "-O1 -c -o " + d + "/evil.o " + d + "/evil.c",
                            dir.path() / "cc.log");
    EXPECT_TRUE(err.empty()) << err;
    if (HaveCompiler("c++")) {
      err = Shell("c++ -std=c++17" + strict + "-O1 -c -o " + d + "/use.o " + d + "/use.cc",
                  dir.path() / "cxx.log");
      EXPECT_TRUE(err.empty()) << err;
    }
  }
}

TEST(ExportNames, StandardLibraryNamesAreRefused) {
  // cpp-header makes the export name a global namespace: names the C/C++
  // library declares at global scope would not compile.
  for (const char* bad :
       {"exp",       "expf",    "nan",         "nanf",   "floor",  "floorl", "lgammaf_r", "int32_t",
        "size_t",    "my_t",    "printf",      "memcpy", "FILE",   "NULL",   "EOF",       "M_PI",
        "INT32_MAX", "UINT8_C", "FLT_EPSILON", "EACCES", "SIGINT", "PRId32", "isnan",     "signgam",
        "main",      "assert",  "tm",          "time",   "abs"}) {
    Status st = CheckExportName(bad);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find(bad), std::string::npos) << st.ToString();
  }
  for (const char* good : {"expo", "exp_model", "nan_model", "floor_plan", "int32", "total", "Edge",
                           "EDGE_model", "churn_model", "M2", "sigma"}) {
    EXPECT_TRUE(CheckExportName(good).ok()) << good << ": " << CheckExportName(good).ToString();
  }
  // The default name of a model named like a library function is fine.
  EXPECT_EQ(DefaultExportName("exp"), "exp_model");
  ASSERT_OK_AND_ASSIGN(Model model, RandomModel({.trees = 2}, 3));
  LoadedModel m = Wrap(std::move(model));
  ExportOptions o;
  o.name = "floor";
  EXPECT_FALSE(GenerateExport(m, "cpp-header", o).ok());
  EXPECT_FALSE(GenerateExport(m, "c", o).ok());
  // A name that passes compiles as a namespace next to <cmath> and <cstdio>.
  if (!HaveCompiler("c++")) return;
  o.name = "expo";
  ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> files, GenerateExport(m, "cpp-header", o));
  TempDir dir;
  WriteText(dir.path() / "expo.hpp", files[0].contents);
  WriteText(dir.path() / "use.cc",
            "#include <cstdio>\n#include <cstdlib>\n#include <cstring>\n"
            "#include \"expo.hpp\"\nint main() { float o[1]; "
            "expo::Predict(expo::Input{}, o); return o[0] != o[0]; }\n");
  const std::string d = dir.path().string();
  const std::string err =
      Shell("c++ -std=c++17 -Wall -Wextra -pedantic -Werror -c -o " + d + "/use.o " + d + "/use.cc",
            dir.path() / "cxx.log");
  EXPECT_TRUE(err.empty()) << err;
}

// Prints, for a grid of kernel shapes, the generated C's .text at -Os next to
// the README's estimate: the data kCodeBytes in codegen_c.cc was fitted to.
// Run with --gtest_also_run_disabled_tests --gtest_filter='*Calibration*'.
TEST(ExportC, DISABLED_CodeSizeCalibration) {
  struct Shape {
    ModelSpec spec;
    int numbers, cat_cols, cats;
    bool onehot;
    std::vector<std::string> extra;
  };
  std::vector<Shape> shapes;
  const Transform transforms[] = {Transform::kIdentity, Transform::kSigmoid,
                                  Transform::kSoftmax,  Transform::kSoftmaxArgmax,
                                  Transform::kExp,      Transform::kHinge};
  for (int kind = 0; kind < 5; ++kind) {  // fast float, fast double, general, categorical, none
    for (Transform t : transforms) {
      for (int groups : {1, 3}) {
        if ((t == Transform::kSoftmax || t == Transform::kSoftmaxArgmax) && groups == 1) continue;
        for (int linear = 0; linear < 2; ++linear) {
          for (int trees : {6, 16, 21}) {
            if ((groups > 1 && trees != 21) || (kind == 4 && (trees != 6 || linear == 0))) continue;
            ModelSpec spec;
            spec.groups = groups;
            spec.transform = t;
            spec.trees = kind == 4 ? 0 : trees * groups;
            spec.acc = kind == 1 || kind == 2 || (kind == 4 && t == Transform::kSigmoid)
                           ? Accumulator::kDouble
                           : Accumulator::kFloat;
            spec.lightgbm_rules = kind == 2;
            spec.categorical_features = kind == 3 ? 1 : 0;
            spec.linear = linear == 1;
            shapes.push_back({spec, 4, 0, 0, true, {}});
          }
        }
      }
    }
  }
  for (int numbers : {1, 8, 30, 120}) {
    for (int cat_cols : {0, 1, 4, 12}) {
      for (bool onehot : {true, false}) {
        ModelSpec spec;
        spec.transform = Transform::kSigmoid;
        spec.trees = 21;
        shapes.push_back({spec, numbers, cat_cols, 5, onehot, {}});
        if (cat_cols == 4) shapes.push_back({spec, numbers, cat_cols, 5, onehot, {"NA", "null"}});
      }
    }
  }
  ModelSpec linear_only;
  linear_only.trees = 0;
  linear_only.linear = true;
  shapes.push_back({linear_only, 6, 0, 0, true, {}});
  linear_only.acc = Accumulator::kDouble;
  shapes.push_back({linear_only, 6, 2, 3, true, {}});
  TempDir dir;
  uint32_t seed = 100;
  for (const Shape& sh : shapes) {
    const std::string json = PipelineJson(sh.numbers, sh.cat_cols, sh.cats, sh.onehot, sh.extra);
    ModelSpec spec = sh.spec;
    spec.features = PipelineFeatures(json);
    spec.categorical_features = std::min(spec.categorical_features, spec.features);
    ASSERT_OK_AND_ASSIGN(Model model, RandomModel(spec, seed++));
    LoadedModel m = Wrap(std::move(model), json);
    ExportOptions o;
    o.name = "cal";
    ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> files, GenerateExport(m, "c", o));
    for (const auto& f : files) WriteText(dir.path() / f.path, f.contents);
    const std::string readme = ReadText(dir.path() / "README.md");
    const uint64_t text = ExpectReadmeSizesHold(dir.path(), "cal", readme);
    const int layout = spec.trees == 0                    ? 0
                       : spec.categorical_features        ? 4
                       : spec.lightgbm_rules              ? 3
                       : spec.acc == Accumulator::kDouble ? 2
                                                          : 1;
    // text estimate | layout trees groups linear double transform numbers
    // cat_cols onehot markers
    std::printf("CAL %llu %llu | %d %d %d %d %d %d %d %d %d %zu\n",
                static_cast<unsigned long long>(text),
                static_cast<unsigned long long>(ReadmeNumber(readme, "Code: about ")), layout,
                spec.trees, spec.groups, spec.linear ? 1 : 0,
                spec.acc == Accumulator::kDouble ? 1 : 0, static_cast<int>(spec.transform),
                sh.numbers, sh.cat_cols, sh.onehot ? 1 : 0, sh.extra.size() * sh.cat_cols);
  }
}

// --- mlflow ------------------------------------------------------------------------

TEST(ExportMlflow, XgboostDirectory) {
  const fs::path src = fs::path(KEEL_SOURCE_DIR) / "tests/data/xgboost/small_cat.json";
  ASSERT_OK_AND_ASSIGN(auto m, LoadModelPackage(src));
  ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> files, GenerateExport(*m, "mlflow", {}));
  std::map<std::string, std::string> by_name;
  for (const auto& f : files) by_name[f.path] = f.contents;
  ASSERT_EQ(by_name.size(), 5u);
  EXPECT_EQ(by_name["model.json"], ReadText(src));
  const YAML::Node y = YAML::Load(by_name["MLmodel"]);
  EXPECT_EQ(y["flavors"]["python_function"]["loader_module"].as<std::string>(), "mlflow.xgboost");
  EXPECT_EQ(y["flavors"]["python_function"]["data"].as<std::string>(), "model.json");
  EXPECT_EQ(y["flavors"]["python_function"]["env"]["virtualenv"].as<std::string>(),
            "python_env.yaml");
  EXPECT_EQ(y["flavors"]["xgboost"]["model_class"].as<std::string>(), "xgboost.core.Booster");
  EXPECT_EQ(y["flavors"]["xgboost"]["model_format"].as<std::string>(), "json");
  EXPECT_EQ(y["flavors"]["xgboost"]["xgb_version"].as<std::string>(), "1.7.4");
  EXPECT_EQ(y["model_size_bytes"].as<size_t>(), by_name["model.json"].size());
  const std::string inputs = y["signature"]["inputs"].as<std::string>();
  EXPECT_NE(inputs.find(R"("name":"cat_c")"), std::string::npos) << inputs;
  EXPECT_NE(by_name["requirements.txt"].find("xgboost==1.7.4\n"), std::string::npos);
  EXPECT_NE(by_name["conda.yaml"].find("xgboost==1.7.4"), std::string::npos);

  // The UBJSON file keeps its format.
  ASSERT_OK_AND_ASSIGN(auto u, LoadModelPackage(src.parent_path() / "small_cat.ubj"));
  ASSERT_OK_AND_ASSIGN(std::vector<ExportedFile> ufiles, GenerateExport(*u, "mlflow", {}));
  bool found = false;
  for (const auto& f : ufiles) found |= f.path == "model.ubj";
  EXPECT_TRUE(found);

  // Other formats are refused, saying why.
  ASSERT_OK_AND_ASSIGN(auto lgb,
                       LoadModelPackage(fs::path(KEEL_SOURCE_DIR) /
                                        "tests/data/lightgbm/lgb_binary_categorical.txt"));
  auto r = GenerateExport(*lgb, "mlflow", {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("XGBoost"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("lightgbm-text"), std::string::npos);
}

// --- the writer ------------------------------------------------------------------------

size_t Leftovers(const fs::path& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    n += name.rfind(".tmp-", 0) == 0 || name.rfind(".old-", 0) == 0;
  }
  return n;
}

TEST(WriteExport, AtomicCreateRefuseReplace) {
  TempDir tmp;
  const fs::path out = tmp.path() / "a" / "b" / "exported";
  ASSERT_OK(WriteExport({{"x.h", "one"}, {"sub/y.c", "two"}}, out.string() + "/", false));
  EXPECT_EQ(ReadText(out / "x.h"), "one");
  EXPECT_EQ(ReadText(out / "sub/y.c"), "two");
  Status s = WriteExport({{"x.h", "three"}}, out, false);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_EQ(ReadText(out / "x.h"), "one");
  ASSERT_OK(WriteExport({{"x.h", "three"}}, out, true));
  EXPECT_EQ(ReadText(out / "x.h"), "three");
  EXPECT_FALSE(fs::exists(out / "sub"));
  EXPECT_EQ(Leftovers(out.parent_path()), 0u);

  const fs::path empty = tmp.path() / "empty";
  fs::create_directories(empty);
  ASSERT_OK(WriteExport({{"x.h", "four"}}, empty, false));
  EXPECT_EQ(ReadText(empty / "x.h"), "four");

  // Under a regular file: an error naming the path, nothing left behind.
  WriteText(tmp.path() / "file", "x");
  s = WriteExport({{"x.h", "five"}}, tmp.path() / "file" / "out", false);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("file"), std::string::npos) << s.ToString();
  EXPECT_EQ(s.message().find('\n'), std::string::npos);
  s = WriteExport({{"x.h", "six"}}, tmp.path() / "file", true);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_EQ(Leftovers(tmp.path()), 0u);
  EXPECT_FALSE(WriteExport({{"../escape", "x"}}, tmp.path() / "bad", false).ok());
  EXPECT_FALSE(fs::exists(tmp.path() / "escape"));
}

// Replaces WriteExport's file-system primitives for one test.
class FsHooks {
 public:
  FsHooks() : saved_(internal::ExportFsHooksForTest()) {}
  ~FsHooks() { internal::ExportFsHooksForTest() = saved_; }
  internal::ExportFsHooks& operator*() { return internal::ExportFsHooksForTest(); }
  internal::ExportFsHooks* operator->() { return &internal::ExportFsHooksForTest(); }

 private:
  internal::ExportFsHooks saved_;
};

int g_renames = 0;     // renames so far
int g_fail_from = 99;  // the first rename that fails (0-based)

int CountingRename(const char* from, const char* to) {
  if (g_renames++ >= g_fail_from) return EXDEV;
  return std::rename(from, to) == 0 ? 0 : errno;
}
int NoExchange(const char*, const char*) { return EINVAL; }
uintmax_t FailingRemoveAll(const fs::path&, std::error_code& ec) {
  ec = std::make_error_code(std::errc::device_or_resource_busy);
  return 0;
}

TEST(WriteExport, ReplaceSwapsInOneStepOrFallsBack) {
  TempDir tmp;
  const fs::path out = tmp.path() / "out";
  ASSERT_OK(WriteExport({{"a.h", "old"}, {"sub/b.h", "old"}}, out, false));
  // renameat2(RENAME_EXCHANGE) where available (here: Linux), else the fallback.
  std::string warning = "stale";
  ASSERT_OK(WriteExport({{"a.h", "new1"}}, out, true, &warning));
  EXPECT_EQ(warning, "");
  EXPECT_EQ(ReadText(out / "a.h"), "new1");
  EXPECT_FALSE(fs::exists(out / "sub"));
  EXPECT_EQ(Leftovers(tmp.path()), 0u);

  FsHooks hooks;
  hooks->exchange = &NoExchange;  // e.g. a file system without RENAME_EXCHANGE
  hooks->rename = &CountingRename;
  g_renames = 0;
  g_fail_from = 99;
  ASSERT_OK(WriteExport({{"a.h", "new2"}}, out, true, &warning));
  EXPECT_EQ(g_renames, 2);  // old aside, new in
  EXPECT_EQ(ReadText(out / "a.h"), "new2");
  EXPECT_EQ(Leftovers(tmp.path()), 0u);

  // The new one cannot move in: the previous export is moved back.
  hooks->rename = [](const char* from, const char* to) -> int {
    return g_renames++ == 1 ? EXDEV : (std::rename(from, to) == 0 ? 0 : errno);
  };
  g_renames = 0;
  Status s = WriteExport({{"a.h", "new3"}}, out, true, &warning);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("previous export is unchanged"), std::string::npos) << s.ToString();
  EXPECT_EQ(ReadText(out / "a.h"), "new2");
  EXPECT_EQ(Leftovers(tmp.path()), 0u);

  // ... and when moving back fails too, the error says where it is.
  g_renames = 0;
  g_fail_from = 1;
  hooks->rename = &CountingRename;
  s = WriteExport({{"a.h", "new4"}}, out, true, &warning);
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(fs::exists(out));
  const size_t at = s.message().find("it is in ");
  ASSERT_NE(at, std::string::npos) << s.ToString();
  const fs::path old(s.message().substr(at + 9));
  EXPECT_EQ(old.parent_path(), tmp.path());
  EXPECT_EQ(old.filename().string().rfind(".old-out-", 0), 0u) << old;
  EXPECT_EQ(ReadText(old / "a.h"), "new2");
  EXPECT_EQ(Leftovers(tmp.path()), 1u);  // the .old- directory, no .tmp-
  fs::rename(old, out);
}

TEST(WriteExport, RemovalFailuresAreReported) {
  TempDir tmp;
  const fs::path out = tmp.path() / "out";
  ASSERT_OK(WriteExport({{"a.h", "old"}}, out, false));
  FsHooks hooks;
  hooks->remove_all = &FailingRemoveAll;
  // The new export is complete and in place; the old one's removal failed.
  std::string warning;
  ASSERT_OK(WriteExport({{"a.h", "new"}}, out, true, &warning));
  EXPECT_EQ(ReadText(out / "a.h"), "new");
  EXPECT_NE(warning.find("could not be removed"), std::string::npos) << warning;
  EXPECT_NE(warning.find(tmp.path().string()), std::string::npos) << warning;
  EXPECT_EQ(warning.find('\n'), std::string::npos);
  // A failed export whose temporary directory cannot be removed says so.
  WriteText(tmp.path() / "file", "x");
  Status s = WriteExport({{"a.h", "x"}, {"a.h/b", "y"}}, tmp.path() / "out2", false);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("temporary directory"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("could not be removed"), std::string::npos) << s.ToString();
}

TEST(WriteExport, ErrorsMapErrno) {
  TempDir tmp;
  WriteText(tmp.path() / "file", "x");
  // Under a regular file: ENOTDIR or EEXIST, never "permission denied".
  Status s = WriteExport({{"x.h", "1"}}, tmp.path() / "file" / "sub" / "out", false);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.code(), StatusCode::kPermissionDenied) << s.ToString();
  EXPECT_TRUE(s.code() == StatusCode::kFailedPrecondition || s.code() == StatusCode::kAlreadyExists)
      << s.ToString();
  EXPECT_NE(s.message().find("file"), std::string::npos) << s.ToString();
  EXPECT_EQ(Leftovers(tmp.path()), 0u);
}

}  // namespace
}  // namespace keel::model
