// Server-side cost of the tracking hot paths, without HTTP or a Python client:
// run search over 1000 runs (query + JSON), log-batch of 1000 metrics, one log-metric.
// The end-to-end comparison with MLflow is bench/tracking_bench.py.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>

#include "keel/api/app.h"
#include "keel/core/util.h"

namespace {

struct Fixture {
  std::filesystem::path dir;
  std::unique_ptr<keel::api::App> app;
  std::string exp_id;
  std::string run_id;

  Fixture() {
    dir = std::filesystem::temp_directory_path() / ("keel-mb-" + keel::RandomHex(6));
    keel::api::AppOptions o;
    o.store_uri = "sqlite://" + (dir / "keel.db").string();
    o.artifact_root = dir / "artifacts";
    app = std::move(*keel::api::App::Open(o));
    exp_id = *app->tracking().CreateExperiment("bench", "", {});
    std::mt19937 rng(0);
    std::uniform_real_distribution<double> u;
    for (int i = 0; i < 1000; ++i) {
      keel::tracking::CreateRunRequest req;
      req.experiment_id = exp_id;
      auto run = *app->tracking().CreateRun(req);
      (void)app->tracking().LogBatch(
          run.info.run_id,
          {{"acc", (i % 100) / 100.0, 1, 0}, {"auc", u(rng), 1, 0}, {"loss", u(rng), 1, 0}},
          {{"model", i % 2 ? "rf" : "gbm"}, {"n_estimators", std::to_string(100 + i % 5 * 100)},
           {"lr", std::to_string(0.01 * (1 + i % 10))}},
          {{"team", "bench"}, {"idx", std::to_string(i)}});
      run_id = run.info.run_id;
    }
  }
  ~Fixture() {
    app.reset();
    std::filesystem::remove_all(dir);
  }
};

Fixture& Shared() {
  static Fixture f;
  return f;
}

keel::api::Response Call(const std::string& method, const std::string& path, std::string body) {
  keel::api::Request req;
  req.method = method;
  req.path = path;
  req.body = std::move(body);
  return Shared().app->Dispatch(std::move(req));
}

void BM_SearchRuns1000(benchmark::State& state) {
  std::string body = R"({"experiment_ids": [")" + Shared().exp_id + R"("], "max_results": 1000})";
  size_t bytes = 0;
  for (auto _ : state) {
    auto r = Call("POST", "/api/2.0/mlflow/runs/search", body);
    bytes = r.body.size();
    benchmark::DoNotOptimize(r.body.data());
  }
  state.counters["response_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_SearchRuns1000)->Unit(benchmark::kMillisecond);

void BM_SearchRunsLibraryOnly(benchmark::State& state) {
  keel::tracking::SearchRunsRequest req;
  req.experiment_ids = {Shared().exp_id};
  req.max_results = 1000;
  for (auto _ : state) {
    auto page = Shared().app->tracking().SearchRuns(req);
    benchmark::DoNotOptimize(page);
  }
}
BENCHMARK(BM_SearchRunsLibraryOnly)->Unit(benchmark::kMillisecond);

void BM_LogBatch1000(benchmark::State& state) {
  std::string body = R"({"run_id": ")" + Shared().run_id + R"(", "metrics": [)";
  int64_t step = 0;
  std::vector<std::string> bodies;
  for (int b = 0; b < 64; ++b) {
    std::string s = body;
    for (int k = 0; k < 1000; ++k) {
      s += (k ? "," : "");
      s += R"({"key": "m)" + std::to_string(k % 10) + R"(", "value": 0.5, "timestamp": 1, "step": )" +
           std::to_string(step + k / 10) + "}";
    }
    step += 100;
    bodies.push_back(s + "]}");
  }
  size_t i = 0;
  for (auto _ : state) {
    auto r = Call("POST", "/api/2.0/mlflow/runs/log-batch", bodies[i++ % bodies.size()]);
    if (r.status != 200) state.SkipWithError(r.body.c_str());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_LogBatch1000)->Unit(benchmark::kMicrosecond);

void BM_LogMetric(benchmark::State& state) {
  int64_t step = 1000000;
  for (auto _ : state) {
    auto r = Call("POST", "/api/2.0/mlflow/runs/log-metric",
                  R"({"run_id": ")" + Shared().run_id +
                      R"(", "key": "loss", "value": 0.25, "timestamp": 1795705763125, "step": )" +
                      std::to_string(step++) + "}");
    if (r.status != 200) state.SkipWithError(r.body.c_str());
  }
}
BENCHMARK(BM_LogMetric)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
