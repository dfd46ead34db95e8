// ServingEngine: references, hot swap by alias, failed loads, on-demand
// loading, concurrent readers during swaps; on a real SQLite registry and
// real keel-linear packages in a temporary directory.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <thread>

#include "keel/registry/registry.h"
#include "keel/serve/engine.h"
#include "keel/serve/prediction_log.h"
#include "keel/serve/shadow.h"
#include "test_util.h"

namespace keel::serve {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

// A binary keel-linear model over one feature x: p = sigmoid(w * x).
model::PackageContents Linear(double w) {
  model::PackageContents c;
  c.model_bytes = R"({"keel_linear": 1, "task": "binary", "num_features": 1, "weights": [)" +
                  std::to_string(w) + R"(], "bias": [0], "feature_names": ["x"]})";
  c.info.format = "keel-linear";
  c.info.task = "binary";
  c.info.output_name = "p";
  c.input_example_json = R"({"columns": ["x"], "data": [[1.0]]})";
  return c;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = testing::OpenTestDb(dir_);
    ASSERT_NE(db_, nullptr);
    registry_ = std::make_unique<registry::RegistryService>(*db_, clock_);
    ASSERT_TRUE(registry_->CreateRegisteredModel("m", {}, "").ok());
  }

  // Registers a package as source "test:/pkgN" (the resolver maps it into
  // the temporary directory) and returns the version.
  std::string AddVersion(double w) {
    const std::string name = "pkg" + std::to_string(++packages_);
    fs::path dir = dir_.path() / name;
    EXPECT_TRUE(model::WriteModelPackage(dir, Linear(w)).ok());
    auto v = registry_->CreateModelVersion({.name = "m", .source = "test:/" + name});
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v->version;
  }
  // A version whose source directory holds a corrupt model file.
  std::string AddBrokenVersion() {
    const std::string name = "pkg" + std::to_string(++packages_);
    fs::path dir = dir_.path() / name;
    EXPECT_TRUE(model::WriteModelPackage(dir, Linear(1)).ok());
    auto v = registry_->CreateModelVersion({.name = "m", .source = "test:/" + name});
    for (const auto& f : fs::directory_iterator(dir)) {
      if (f.path().extension() == ".json" && f.path().filename() != "input_example.json") {
        std::ofstream(f.path()) << "{broken";
      }
    }
    return v->version;
  }
  void Alias(const std::string& version) {
    ASSERT_TRUE(registry_->SetAlias("m", "champion", version, {}).ok());
  }
  // One engine per metrics registry (names register once): later engines in
  // a test pass nullptr.
  std::unique_ptr<ServingEngine> Engine(EngineOptions options = {},
                                        metrics::Registry* metrics = nullptr,
                                        bool own_metrics = true) {
    if (own_metrics && metrics == nullptr) metrics = &metrics_;
    SourceResolver resolve = [this](const registry::ModelVersion& v) -> Result<fs::path> {
      return dir_.path() / v.source.substr(6);  // "test:/pkgN"
    };
    return std::make_unique<ServingEngine>(*registry_, resolve, clock_, metrics, options);
  }
  float Predict(ServingEngine& e, std::string_view ref, float x) {
    auto d = e.Get(ref);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    float out = 0;
    (*d)->model->predictor.PredictRow(&x, &out);
    return out;
  }

  TempDir dir_;
  ManualClock clock_{1700000000000};
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<registry::RegistryService> registry_;
  metrics::Registry metrics_;
  int packages_ = 0;
};

TEST(ModelRefTest, Parse) {
  auto r = ModelRef::Parse("churn@champion", "x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->ToString(), "churn@champion");
  r = ModelRef::Parse("churn/007", "x");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->version, "7");
  EXPECT_EQ(r->ToString(), "churn/7");
  r = ModelRef::Parse("churn", "champion");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->ToString(), "churn@champion");
  for (const char* bad : {"", "@a", "m@", "m/", "m/x", "m/-1", "m@a/1", "/3"}) {
    EXPECT_FALSE(ModelRef::Parse(bad, "champion").ok()) << bad;
  }
}

TEST_F(EngineTest, FollowsTheAliasAndSwaps) {
  const std::string v1 = AddVersion(1.0), v2 = AddVersion(-1.0);
  Alias(v1);
  auto e = Engine();
  ASSERT_OK(e->Add("m@champion"));
  EXPECT_GT(Predict(*e, "m", 2.0f), 0.5f);
  EXPECT_GT(Predict(*e, "m@champion", 2.0f), 0.5f);
  auto held = e->Get("m");  // a request in flight keeps its version
  Alias(v2);
  e->Refresh();
  EXPECT_LT(Predict(*e, "m", 2.0f), 0.5f);
  EXPECT_EQ((*e->Get("m"))->version, v2);
  EXPECT_EQ((*held)->version, v1);
  float out = 0, x = 2.0f;
  (*held)->model->predictor.PredictRow(&x, &out);
  EXPECT_GT(out, 0.5f);
  auto served = e->Served();
  ASSERT_EQ(served.size(), 1u);
  EXPECT_EQ(served[0].swaps, 1u);
  EXPECT_EQ(served[0].loads, 2u);
  // Not served, not loadable on demand.
  EXPECT_EQ(e->Get("m/1").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(e->Get("other").status().code(), StatusCode::kNotFound);
}

TEST_F(EngineTest, FollowsTheShadowAliasBesideTheServedOne) {
  const std::string v1 = AddVersion(1.0), v2 = AddVersion(-1.0), broken = AddBrokenVersion();
  Alias(v1);
  auto e = Engine();
  ASSERT_OK(e->Add("m@champion"));
  ASSERT_OK(e->Add("m/" + v1));  // pinned: never shadowed
  EXPECT_EQ(e->Shadow("m@champion"), nullptr);
  ASSERT_TRUE(registry_->SetAlias("m", kShadowAlias, v2, {}).ok());
  e->Refresh();
  std::shared_ptr<const Deployment> s = e->Shadow("m@champion");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->version, v2);
  EXPECT_EQ(s->ref, "m@champion");
  EXPECT_EQ(e->Shadow("m/" + v1), nullptr);
  EXPECT_EQ((*e->Get("m@champion"))->version, v1);  // the shadow never answers
  EXPECT_EQ(e->Served()[0].shadow_version, v2);
  // A shadow that cannot load is not followed, and the one before stops
  // scoring in its name; the served version is untouched.
  ASSERT_TRUE(registry_->SetAlias("m", kShadowAlias, broken, {}).ok());
  e->Refresh();
  EXPECT_EQ(e->Shadow("m@champion"), nullptr);
  EXPECT_EQ(e->Served()[0].shadow_failed_version, broken);
  EXPECT_EQ((*e->Get("m@champion"))->version, v1);
  e->Refresh(/*force=*/true);  // tried again, fails again
  EXPECT_EQ(e->Shadow("m@champion"), nullptr);
  // The shadow alias on the served version itself: nothing to compare.
  ASSERT_TRUE(registry_->SetAlias("m", kShadowAlias, v1, {}).ok());
  e->Refresh();
  EXPECT_EQ(e->Shadow("m@champion"), nullptr);
  ASSERT_TRUE(registry_->SetAlias("m", kShadowAlias, v2, {}).ok());
  e->Refresh();
  EXPECT_EQ(e->Shadow("m@champion")->version, v2);
  ASSERT_TRUE(registry_->DeleteAlias("m", kShadowAlias, {}).ok());
  e->Refresh();
  EXPECT_EQ(e->Shadow("m@champion"), nullptr);
  EXPECT_EQ(e->Served()[0].shadow_version, "");
}

TEST_F(EngineTest, ShadowScorerWritesBesideTheLoggedAnswers) {
  const std::string v1 = AddVersion(1.0), v2 = AddVersion(2.0);
  Alias(v1);
  ASSERT_TRUE(registry_->SetAlias("m", kShadowAlias, v2, {}).ok());
  auto e = Engine();
  ASSERT_OK(e->Add("m@champion"));
  std::shared_ptr<const Deployment> shadow = e->Shadow("m@champion");
  ASSERT_NE(shadow, nullptr);
  // The champion's answers, as the serving routes log them.
  ASSERT_OK(db_->Write([&](store::Connection& c) -> Status {
    for (const char* id : {"a", "b", "c"}) {
      KEEL_RETURN_IF_ERROR(c.Exec(
          "INSERT INTO predictions(request_id, time, model, version, endpoint, input, output, "
          "latency_us) VALUES (?, 100, 'm', ?, 'predict', '{}', '0.25', 10)",
          {store::Value(std::string(id)), store::Value(v1)}));
    }
    return OkStatus();
  }));
  std::vector<Label> labels = {{"a", "1"}};
  ASSERT_TRUE(RecordLabels(*db_, labels, 200).ok());
  metrics::Registry m;
  ShadowScorer scorer(*db_, &m, {});
  ASSERT_OK(scorer.Start());
  EXPECT_TRUE(scorer.Submit(shadow, {{"a", 100, R"({"x": 1})"},
                                     {"b", 101, R"({"x": "high"})"},
                                     {"z", 102, R"({"x": 0})"}}));  // z: no logged answer
  ASSERT_OK(scorer.Flush());
  EXPECT_EQ(scorer.scored(), 2u);
  EXPECT_EQ(scorer.errors(), 1u);
  ShadowQuery q;
  q.model = "m";
  q.shadow_version = v2;
  ASSERT_OK_AND_ASSIGN(std::vector<ShadowPair> pairs, ReadShadowPairs(*db_, q));
  ASSERT_EQ(pairs.size(), 2u);  // z has no champion answer to compare with
  EXPECT_EQ(pairs[0].request_id, "a");
  EXPECT_EQ(pairs[0].champion_version, v1);
  EXPECT_EQ(pairs[0].champion_output, "0.25");
  EXPECT_NEAR(std::stod(pairs[0].shadow_output), 1.0 / (1.0 + std::exp(-2.0)), 1e-6);
  EXPECT_TRUE(pairs[0].error.empty());
  ASSERT_TRUE(pairs[0].label_json.has_value());
  EXPECT_EQ(*pairs[0].label_json, "1");
  EXPECT_EQ(pairs[1].request_id, "b");
  EXPECT_EQ(pairs[1].shadow_output, "null");
  EXPECT_EQ(pairs[1].error, "field 'x': \"high\" is not a number");
  // Only requests a given champion version answered.
  q.champion_version = "99";
  ASSERT_OK_AND_ASSIGN(std::vector<ShadowPair> none, ReadShadowPairs(*db_, q));
  EXPECT_TRUE(none.empty());
  ASSERT_OK_AND_ASSIGN(uint64_t counted, CountShadowPairs(*db_, q));
  EXPECT_EQ(counted, 0u);
  q.champion_version = v1;
  ASSERT_OK_AND_ASSIGN(counted, CountShadowPairs(*db_, q));
  EXPECT_EQ(counted, 2u);
  EXPECT_FALSE(pairs[1].label_json.has_value());
  // A full queue drops (counted) instead of blocking the request path: a
  // scorer not started yet holds what fits and refuses the rest.
  ShadowOptions small;
  small.queue_rows = 3;
  ShadowScorer tiny(*db_, nullptr, small);
  EXPECT_EQ(tiny.Flush().code(), StatusCode::kFailedPrecondition);  // never waits forever
  EXPECT_TRUE(tiny.Submit(shadow, {{"c", 1, "{}"}, {"d", 1, "{}"}}));
  EXPECT_FALSE(tiny.Submit(shadow, {{"e", 1, "{}"}, {"f", 1, "{}"}}));
  EXPECT_TRUE(tiny.Submit(shadow, {{"g", 1, "{}"}}));
  EXPECT_EQ(tiny.dropped(), 2u);
  tiny.Stop();  // the queued rows were never scored: dropped too
  EXPECT_EQ(tiny.dropped(), 5u);
  scorer.Stop();
  EXPECT_FALSE(scorer.Submit(shadow, {{"c", 1, "{}"}}));
  const std::string text = m.Render();
  for (const char* line : {"keel_shadow_rows_total{model=\"m\",result=\"scored\"} 2",
                           "keel_shadow_rows_total{model=\"m\",result=\"error\"} 1",
                           "keel_shadow_rows_total{model=\"m\",result=\"dropped\"} 1"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
}

TEST_F(EngineTest, FailedVersionNeverReplacesAWorkingOne) {
  const std::string good = AddVersion(1.0), broken = AddBrokenVersion();
  Alias(good);
  auto e = Engine();
  ASSERT_OK(e->Add("m@champion"));
  Alias(broken);
  e->Refresh();
  EXPECT_EQ((*e->Get("m"))->version, good);
  auto served = e->Served();
  EXPECT_EQ(served[0].failed_version, broken);
  EXPECT_EQ(served[0].failures, 1u);
  EXPECT_EQ(served[0].last_error.find(dir_.path().string()), std::string::npos)
      << "server paths leak: " << served[0].last_error;
  EXPECT_TRUE(e->Ready());
  e->Refresh();  // not retried while the alias stays
  EXPECT_EQ(e->Served()[0].failures, 1u);
  // Away and back: the version is tried again.
  Alias(good);
  e->Refresh();
  EXPECT_TRUE(e->Served()[0].failed_version.empty());
  Alias(broken);
  e->Refresh();
  EXPECT_EQ(e->Served()[0].failures, 2u);
  const std::string text = metrics_.Render();
  EXPECT_NE(text.find("keel_model_load_failed{model=\"m\",ref=\"m@champion\"} 1"),
            std::string::npos)
      << text;
  // A first load that fails is an error; nothing is added.
  auto e2 = Engine({}, nullptr, false);
  EXPECT_FALSE(e2->Add("m@champion").ok());
  EXPECT_EQ(e2->size(), 0u);
}

TEST_F(EngineTest, OnDemandLoadingAndBareNames) {
  const std::string v1 = AddVersion(1.0), v2 = AddVersion(-1.0);
  Alias(v2);
  EngineOptions options;
  options.load_on_demand = true;
  auto e = Engine(options);
  // A pinned version first: a bare name still means name@champion.
  EXPECT_EQ((*e->Get("m/" + v1))->version, v1);
  EXPECT_EQ((*e->Get("m"))->version, v2);
  EXPECT_EQ(e->size(), 2u);
  EXPECT_EQ(e->Get("nosuch").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(e->Get("m@nosuch").status().code(), StatusCode::kNotFound);
  // Without on-demand loading, one served reference answers its bare name.
  auto replica = Engine({}, nullptr, false);
  ASSERT_OK(replica->Add("m/" + v1));
  EXPECT_EQ((*replica->Get("m"))->version, v1);
}

TEST_F(EngineTest, ReadersDuringSwapsAlwaysSeeAWholeModel) {
  const std::string v1 = AddVersion(1.0), v2 = AddVersion(-1.0);
  Alias(v1);
  auto e = Engine();
  ASSERT_OK(e->Add("m@champion"));
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!stop) {
        auto d = e->Get("m");
        if (!d.ok()) {
          ++bad;
          continue;
        }
        float x = 2.0f, out = 0;
        (*d)->model->predictor.PredictRow(&x, &out);
        const bool positive = out > 0.5f;
        if (positive != ((*d)->version == v1)) ++bad;
        ++reads;
      }
    });
  }
  for (int i = 0; i < 50; ++i) {
    Alias(i % 2 ? v1 : v2);
    e->Refresh();
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(e->Served()[0].swaps, 50u);
}

}  // namespace
}  // namespace keel::serve
