// Single-row latency of the C code `keel export --format c` generates, against
// keel's engine (Predictor::PredictRow) and libxgboost (PredictFromDense), on
// the same model and rows, in one process.
//
//   keel_export_bench MODEL.json X.f32 N_FEATURES SECONDS GENERATED.so NAME
//
// bench/export_bench.sh exports MODEL.json, compiles the generated NAME.c with
// -O2 into GENERATED.so (dlopen'ed here; NAME_predict_encoded is the function
// timed) and runs this. Before timing, every row is checked: the generated
// code must equal PredictRow bit for bit (exit 1 otherwise); the difference to
// libxgboost is printed. Timing follows model_bench.cc: one call per row,
// cycling over the rows, each call timed with steady_clock, libxgboost with
// nthread=1 on a persistent proxy DMatrix; here the three contenders take
// turns in 30 rounds (SECONDS each in total), so a shared machine's drifting
// load hits them alike.
#include <dlfcn.h>
#include <xgboost/c_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

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

Latency Summarize(std::vector<double>& ns) {
  std::sort(ns.begin(), ns.end());
  double sum = 0;
  for (double x : ns) sum += x;
  return {ns[ns.size() / 2] / 1e3, ns[ns.size() * 99 / 100] / 1e3, sum / ns.size() / 1e3};
}

// Times one-row calls of each contender, interleaved: `rounds` rounds in
// which every contender runs for seconds / rounds (a drifting load on a
// shared machine then hits all of them alike). Each call is timed alone.
template <typename... Fns>
std::vector<Latency> TimeInterleaved(double seconds, int rounds, size_t cycle, Fns&&... fns) {
  constexpr size_t kN = sizeof...(Fns);
  std::vector<std::vector<double>> ns(kN);
  size_t next[kN] = {};
  size_t which = 0;
  auto run = [&](auto& fn, double slice) {
    std::vector<double>& out = ns[which];
    size_t& i = next[which];
    const auto start = Clock::now();
    for (size_t k = 0;; ++k, ++i) {
      const auto a = Clock::now();
      fn(i % cycle);
      const auto b = Clock::now();
      out.push_back(std::chrono::duration<double, std::nano>(b - a).count());
      if ((k & 255) == 0 && std::chrono::duration<double>(b - start).count() > slice) break;
    }
    ++which;
  };
  for (size_t i = 0; i < 2000; ++i) (fns(i % cycle), ...);  // warm-up
  for (int r = 0; r < rounds; ++r) {
    which = 0;
    (run(fns, seconds / rounds), ...);
  }
  std::vector<Latency> out;
  for (auto& v : ns) out.push_back(Summarize(v));
  return out;
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

using PredictFn = void (*)(const float*, float*);

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: %s MODEL.json X.f32 N_FEATURES SECONDS GENERATED.so NAME\n",
                 argv[0]);
    return 2;
  }
  const size_t nf = std::strtoul(argv[3], nullptr, 10);
  const double seconds = std::atof(argv[4]);
  std::vector<float> x = ReadF32(argv[2]);
  const size_t n = x.size() / nf;

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
  if (p.num_outputs() != 1 || static_cast<size_t>(p.num_features()) != nf) {
    std::fprintf(stderr, "the bench takes a single-output model with %zu features\n", nf);
    return 1;
  }

  void* so = dlopen(argv[5], RTLD_NOW | RTLD_LOCAL);
  if (so == nullptr) {
    std::fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  const std::string symbol = std::string(argv[6]) + "_predict_encoded";
  auto generated = reinterpret_cast<PredictFn>(dlsym(so, symbol.c_str()));
  if (generated == nullptr) {
    std::fprintf(stderr, "dlsym %s: %s\n", symbol.c_str(), dlerror());
    return 1;
  }

  BoosterHandle bst;
  XGB_CHECK(XGBoosterCreate(nullptr, 0, &bst));
  XGB_CHECK(XGBoosterLoadModel(bst, argv[1]));
  XGB_CHECK(XGBoosterSetParam(bst, "nthread", "1"));
  DMatrixHandle proxy;
  XGB_CHECK(XGProxyDMatrixCreate(&proxy));
  bst_ulong const* shape;
  bst_ulong dim;
  float const* out;

  // Parity on every row before timing.
  size_t differ = 0;
  double max_xgb = 0;
  for (size_t i = 0; i < n; ++i) {
    float a, b;
    p.PredictRow(x.data() + i * nf, &a);
    generated(x.data() + i * nf, &b);
    differ += std::memcmp(&a, &b, sizeof a) != 0;
    const std::string iface = ArrayInterface(x.data() + i * nf, 1, nf);
    XGB_CHECK(
        XGBoosterPredictFromDense(bst, iface.c_str(), kPredictConfig, proxy, &shape, &dim, &out));
    max_xgb = std::max(max_xgb, std::fabs(static_cast<double>(out[0]) - a));
  }
  std::printf("model %s: %zu trees, %zu rows x %zu features\n", argv[1], model->trees.size(), n,
              nf);
  std::printf(
      "parity: generated C vs keel PredictRow: %zu of %zu rows differ (bit for bit); "
      "max |keel - libxgboost| = %.3g\n",
      differ, n, max_xgb);
  if (differ != 0) return 1;

  const size_t cycle = std::min<size_t>(n, 10000);
  volatile float sink = 0;
  const std::vector<Latency> lat = TimeInterleaved(
      seconds, 30, cycle,
      [&](size_t i) {
        const std::string iface = ArrayInterface(x.data() + i * nf, 1, nf);
        XGB_CHECK(XGBoosterPredictFromDense(bst, iface.c_str(), kPredictConfig, proxy, &shape, &dim,
                                            &out));
        sink = out[0];
      },
      [&](size_t i) {
        float o;
        p.PredictRow(x.data() + i * nf, &o);
        sink = o;
      },
      [&](size_t i) {
        float o;
        generated(x.data() + i * nf, &o);
        sink = o;
      });
  (void)sink;
  const Latency& xgb = lat[0];
  const Latency& engine = lat[1];
  const Latency& gen = lat[2];
  auto line = [](const char* what, const Latency& l) {
    std::printf("single row  %-34s median %7.3f us  p99 %7.3f us  mean %7.3f us\n", what,
                l.median_us, l.p99_us, l.mean_us);
  };
  line("libxgboost PredictFromDense:", xgb);
  line("keel engine PredictRow:", engine);
  line("generated C (keel export, -O2):", gen);
  std::printf(
      "ratios (median): engine / generated %.2fx, libxgboost / generated %.1fx, "
      "libxgboost / engine %.1fx\n",
      engine.median_us / gen.median_us, xgb.median_us / gen.median_us,
      xgb.median_us / engine.median_us);
  std::printf(
      "EXPORT_BENCH_JSON {\"rows\": %zu, \"single_median_us\": {\"xgboost\": %.4f, \"engine\": "
      "%.4f, \"generated_c\": %.4f}, \"single_p99_us\": {\"xgboost\": %.4f, \"engine\": %.4f, "
      "\"generated_c\": %.4f}}\n",
      n, xgb.median_us, engine.median_us, gen.median_us, xgb.p99_us, engine.p99_us, gen.p99_us);
  XGDMatrixFree(proxy);
  XGBoosterFree(bst);
  dlclose(so);
  return 0;
}
