// keel's tree evaluator against libxgboost's C API on the same model and rows,
// in the same process: single-row latency and multi-row throughput.
//
//   keel_model_bench MODEL.json X.f32 [n_features=73] [single_seconds=3] [rows=all]
//
// MODEL.json is an XGBoost JSON model (bench/model_bench.sh trains the
// 400-tree depth-6 churn model with ../shared/peers/serving/train.py), X.f32
// row-major float32 rows (batch.py's 1M-row matrix). Every keel output is
// checked against libxgboost's before anything is timed.
//
// Single row: one call per row, cycling over the first 10,000 rows, each call
// timed with steady_clock; libxgboost via XGBoosterPredictFromDense on a
// persistent proxy DMatrix (the fastest single-row route, as in the peer's
// xgb_capi_bench.cpp), nthread=1. Batch: the whole matrix in memory, median
// of 5 runs, 2 threads and 1.
#include <xgboost/c_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "keel/core/thread_pool.h"
#include "keel/model/formats.h"
#include "keel/model/predictor.h"

namespace {

using Clock = std::chrono::steady_clock;

#define XGB_CHECK(call)                                                  \
  do {                                                                   \
    if ((call) != 0) {                                                   \
      std::fprintf(stderr, "%s failed: %s\n", #call, XGBGetLastError()); \
      std::exit(1);                                                      \
    }                                                                    \
  } while (0)

std::vector<float> ReadF32(const char* path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) {
    std::fprintf(stderr, "cannot open %s\n", path);
    std::exit(1);
  }
  const std::streamsize n = f.tellg();
  f.seekg(0);
  std::vector<float> v(static_cast<size_t>(n) / sizeof(float));
  f.read(reinterpret_cast<char*>(v.data()), n);
  return v;
}

struct Latency {
  double median_us, p99_us, mean_us;
};

template <typename Fn>
Latency TimeSingle(double seconds, size_t cycle, Fn&& fn) {
  for (size_t i = 0; i < 2000; ++i) fn(i % cycle);  // warm-up
  std::vector<double> ns;
  ns.reserve(4000000);
  const auto start = Clock::now();
  for (size_t i = 0;; ++i) {
    const auto a = Clock::now();
    fn(i % cycle);
    const auto b = Clock::now();
    ns.push_back(std::chrono::duration<double, std::nano>(b - a).count());
    if ((i & 1023) == 0 && std::chrono::duration<double>(b - start).count() > seconds) break;
  }
  std::sort(ns.begin(), ns.end());
  double sum = 0;
  for (double x : ns) sum += x;
  return {ns[ns.size() / 2] / 1e3, ns[ns.size() * 99 / 100] / 1e3, sum / ns.size() / 1e3};
}

template <typename Fn>
double MedianSeconds(int repeats, Fn&& fn) {
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const auto a = Clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(Clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

const char* kPredictConfig =
    "{\"type\": 0, \"training\": false, \"iteration_begin\": 0, \"iteration_end\": 0, "
    "\"strict_shape\": false, \"missing\": NaN, \"cache_id\": 0}";

std::string ArrayInterface(const float* p, size_t rows, size_t cols) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"data\": [%zu, true], \"shape\": [%zu, %zu], \"typestr\": \"<f4\", "
                "\"version\": 3}",
                reinterpret_cast<size_t>(p), rows, cols);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.json X.f32 [n_features] [single_seconds] [rows]\n",
                 argv[0]);
    return 2;
  }
  const size_t nf = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 73;
  const double single_s = argc > 4 ? std::atof(argv[4]) : 3.0;
  std::vector<float> x = ReadF32(argv[2]);
  size_t n = x.size() / nf;
  if (argc > 5) n = std::min(n, static_cast<size_t>(std::strtoul(argv[5], nullptr, 10)));
  x.resize(n * nf);

  auto model = keel::model::LoadModelFile(argv[1]);
  if (!model.ok()) {
    std::fprintf(stderr, "keel: %s\n", model.status().ToString().c_str());
    return 1;
  }
  auto predictor = keel::model::Predictor::Compile(*model);
  if (!predictor.ok()) {
    std::fprintf(stderr, "keel: %s\n", predictor.status().ToString().c_str());
    return 1;
  }
  const keel::model::Predictor& p = *predictor;

  BoosterHandle bst;
  XGB_CHECK(XGBoosterCreate(nullptr, 0, &bst));
  XGB_CHECK(XGBoosterLoadModel(bst, argv[1]));
  DMatrixHandle proxy;
  XGB_CHECK(XGProxyDMatrixCreate(&proxy));
  bst_ulong const* shape;
  bst_ulong dim;
  float const* out;

  // Parity on every row before timing.
  XGB_CHECK(XGBoosterSetParam(bst, "nthread", "2"));
  std::vector<float> ref(n), mine(n), mine_row(n);
  {
    const std::string iface = ArrayInterface(x.data(), n, nf);
    XGB_CHECK(
        XGBoosterPredictFromDense(bst, iface.c_str(), kPredictConfig, proxy, &shape, &dim, &out));
    std::copy(out, out + n, ref.begin());
  }
  keel::ThreadPool pool2(2);
  p.PredictBatch(x.data(), n, mine.data(), &pool2);
  double max_err = 0;
  for (size_t i = 0; i < n; ++i) {
    p.PredictRow(x.data() + i * nf, &mine_row[i]);
    max_err = std::max({max_err, std::fabs(static_cast<double>(mine[i]) - ref[i]),
                        std::fabs(static_cast<double>(mine_row[i]) - ref[i])});
  }
  std::printf("model %s: %zu trees, %zu rows x %zu features; max |keel - xgboost| = %.3g\n",
              argv[1], model->trees.size(), n, nf, max_err);
  if (max_err > 1e-6) {
    std::fprintf(stderr, "prediction mismatch\n");
    return 1;
  }

  const size_t cycle = std::min<size_t>(n, 10000);
  XGB_CHECK(XGBoosterSetParam(bst, "nthread", "1"));
  volatile float sink = 0;
  Latency xgb_single = TimeSingle(single_s, cycle, [&](size_t i) {
    const std::string iface = ArrayInterface(x.data() + i * nf, 1, nf);
    XGB_CHECK(
        XGBoosterPredictFromDense(bst, iface.c_str(), kPredictConfig, proxy, &shape, &dim, &out));
    sink = out[0];
  });
  Latency keel_single = TimeSingle(single_s, cycle, [&](size_t i) {
    float o;
    p.PredictRow(x.data() + i * nf, &o);
    sink = o;
  });
  std::printf(
      "single row  libxgboost PredictFromDense: median %.2f us  p99 %.2f us  mean %.2f us\n",
      xgb_single.median_us, xgb_single.p99_us, xgb_single.mean_us);
  std::printf(
      "single row  keel PredictRow:             median %.2f us  p99 %.2f us  mean %.2f us\n",
      keel_single.median_us, keel_single.p99_us, keel_single.mean_us);
  std::printf("single row  ratio (xgboost / keel, median): %.1fx\n",
              xgb_single.median_us / keel_single.median_us);

  std::string json = "{\"rows\": " + std::to_string(n) + ", \"single_median_us\": {\"xgboost\": " +
                     std::to_string(xgb_single.median_us) +
                     ", \"keel\": " + std::to_string(keel_single.median_us) + "}";
  keel::ThreadPool pool1(1);
  for (int threads : {2, 1}) {
    XGB_CHECK(XGBoosterSetParam(bst, "nthread", std::to_string(threads).c_str()));
    const std::string iface = ArrayInterface(x.data(), n, nf);
    const double t_xgb = MedianSeconds(5, [&] {
      XGB_CHECK(
          XGBoosterPredictFromDense(bst, iface.c_str(), kPredictConfig, proxy, &shape, &dim, &out));
    });
    keel::ThreadPool& pool = threads == 2 ? pool2 : pool1;
    const double t_keel =
        MedianSeconds(5, [&] { p.PredictBatch(x.data(), n, mine.data(), &pool); });
    std::printf(
        "batch %d thread(s)  libxgboost: %.3f s = %.0f rows/s   keel: %.3f s = %.0f rows/s"
        "   ratio %.2fx\n",
        threads, t_xgb, n / t_xgb, t_keel, n / t_keel, t_xgb / t_keel);
    json += ", \"batch_rows_per_s_" + std::to_string(threads) +
            "t\": {\"xgboost\": " + std::to_string(n / t_xgb) +
            ", \"keel\": " + std::to_string(n / t_keel) + "}";
  }
  std::printf("MODEL_BENCH_JSON %s}\n", json.c_str());
  XGDMatrixFree(proxy);
  XGBoosterFree(bst);
  return 0;
}
