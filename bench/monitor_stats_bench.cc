// Drift statistics at the drift peer's scale (../shared/peers/drift: 1M vs 1M
// rows, 20 numeric + 2 categorical columns, inputs from its integer recipe),
// single thread, seconds per feature, so the figures sit beside the peer's
// numpy/scipy timings (README there: ks_2samp 0.255; PSI fit+score 0.099,
// score only 0.017; Wasserstein 0.402; Jensen-Shannon 0.146; chi-square 0.002).
//
//   cmake -S . -B build -DKEEL_BUILD_BENCH=ON
//   cmake --build build -j2 --target keel_monitor_stats_bench
//   build/bench/keel_monitor_stats_bench [ROWS=1000000] [FEATURES=20]
//
// Times per numeric feature (best of 3): sort = NumericSample::FromValues on
// both sides (numpy's ks_2samp/wasserstein sort inside their timings);
// ks = KolmogorovSmirnov on the sorted sides incl. p-value; psi_fit_score =
// FitQuantileBins + CountInBins + Psi; psi_score = CountInBins + Psi with the
// bins fitted; wasserstein = WassersteinDistance on sorted sides; js_evidently
// = EvidentlyBins + JensenShannonDistance on sorted sides. Categorical: counts
// of 50 categories + ChiSquareContingency.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "keel/monitor/stats.h"

namespace {

using keel::monitor::NumericSample;

uint64_t SplitMix(uint64_t seed, uint64_t k) {
  uint64_t z = seed + (k + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct Feature {
  const char* kind;
  double mu[2], sigma[2];
};
// drift_bench.py FEATURES: (kind, ref mu/sigma, cur mu/sigma).
const Feature kFeatures[20] = {
    {"normal", {0, 0}, {1, 1}},         {"normal", {0, 0}, {1, 1}},
    {"normal", {0, 0}, {1, 1}},         {"normal", {0, 0}, {1, 1}},
    {"normal", {0, 0}, {1, 1}},         {"normal", {0, 0.05}, {1, 1}},
    {"normal", {0, 0.25}, {1, 1}},      {"normal", {0, 0}, {1, 1.25}},
    {"normal", {0, 1}, {1, 1}},         {"square", {0, 0}, {1, 1}},
    {"square", {0, 0}, {1, 1}},         {"square", {0, 0}, {1, 1.1}},
    {"uniform", {0, 0}, {1, 1}},        {"uniform", {0, 0.1}, {1, 1}},
    {"uniform", {0, 0}, {1, 1}},        {"ties", {0, 0}, {1, 1}},
    {"ties", {0, 1}, {1, 1}},           {"normal", {100, 100}, {15, 15}},
    {"normal", {100, 100.5}, {15, 15}}, {"normal", {100, 100}, {15, 15}},
};

std::vector<double> Numeric(int dataset, int j, size_t n) {
  const Feature& f = kFeatures[j];
  const uint64_t seed = 20260101ull + 65536ull * dataset + j;
  const std::string kind = f.kind;
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t a = SplitMix(seed, 2 * i), b = SplitMix(seed, 2 * i + 1);
    double base;
    if (kind == "uniform") {
      base = static_cast<double>(a >> 32) * 0x1p-32;
    } else {
      const uint64_t s = (a >> 32) + (a & 0xFFFFFFFFull) + (b >> 32) + (b & 0xFFFFFFFFull);
      const double z = (static_cast<double>(s) * 0x1p-32 - 2.0) * 1.7320508075688772;
      base = kind == "normal" ? z : kind == "square" ? z * z : std::floor(z * 4.0);
    }
    const double t = base * f.sigma[dataset];
    out[i] = t + f.mu[dataset];
  }
  return out;
}

std::vector<int> Categorical(int dataset, int c, size_t n) {
  std::vector<uint64_t> w;
  for (int k = 0; k < 50; ++k) w.push_back(50 - k);
  if (dataset == 1 && c == 1) {
    w[0] = 40;
    w[1] = 59;
    w[48] = 1;
    w[49] = 2;
  }
  std::vector<uint64_t> cum;
  uint64_t total = 0;
  for (uint64_t x : w) cum.push_back(total += x);
  const uint64_t seed = 20260101ull + 65536ull * dataset + 100 + c;
  std::vector<int> out(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t r = ((SplitMix(seed, i) >> 32) * total) >> 32;
    out[i] = static_cast<int>(std::upper_bound(cum.begin(), cum.end(), r) - cum.begin());
  }
  return out;
}

double BestOf3(const std::function<void()>& fn) {
  double best = 1e300;
  for (int r = 0; r < 3; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return best;
}

volatile double g_sink;

}  // namespace

int main(int argc, char** argv) {
  const size_t rows = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1000000;
  const int features = argc > 2 ? std::atoi(argv[2]) : 20;
  const char* names[] = {"sort", "ks", "psi_fit_score", "psi_score", "wasserstein", "js_evidently"};
  std::vector<std::vector<double>> t(6);
  for (int j = 0; j < features; ++j) {
    const std::vector<double> ref = Numeric(0, j, rows), cur = Numeric(1, j, rows);
    NumericSample r, c;
    t[0].push_back(BestOf3([&] {
      r = NumericSample::FromValues(ref);
      c = NumericSample::FromValues(cur);
    }));
    t[1].push_back(
        BestOf3([&] { g_sink = keel::monitor::KolmogorovSmirnov(r.sorted, c.sorted)->p_value; }));
    t[2].push_back(BestOf3([&] {
      auto bins = keel::monitor::FitQuantileBins(r.sorted);
      g_sink = *keel::monitor::Psi(
          bins->ref_shares, keel::monitor::Shares(keel::monitor::CountInBins(bins->edges, cur)));
    }));
    const auto bins = *keel::monitor::FitQuantileBins(r.sorted);
    t[3].push_back(BestOf3([&] {
      g_sink = *keel::monitor::Psi(
          bins.ref_shares, keel::monitor::Shares(keel::monitor::CountInBins(bins.edges, cur)));
    }));
    t[4].push_back(
        BestOf3([&] { g_sink = *keel::monitor::WassersteinDistance(r.sorted, c.sorted); }));
    t[5].push_back(BestOf3([&] {
      auto a = keel::monitor::EvidentlyBins(r.sorted, c.sorted);
      g_sink = *keel::monitor::JensenShannonDistance(keel::monitor::Shares(a->ref),
                                                     keel::monitor::Shares(a->cur));
    }));
    std::printf(
        "f%02d sort %.4f ks %.4f psi_fit_score %.4f psi_score %.4f wasserstein %.4f "
        "js_evidently %.4f\n",
        j, t[0].back(), t[1].back(), t[2].back(), t[3].back(), t[4].back(), t[5].back());
  }
  double chi = 0;
  for (int cidx = 0; cidx < 2; ++cidx) {
    const std::vector<int> a = Categorical(0, cidx, rows), b = Categorical(1, cidx, rows);
    chi += BestOf3([&] {
      std::vector<uint64_t> ra(50, 0), rb(50, 0);
      for (int v : a) ++ra[v];
      for (int v : b) ++rb[v];
      g_sink = keel::monitor::ChiSquareContingency(ra, rb)->p_value;
    });
  }
  std::printf("\n# %zu vs %zu rows, %d features, seconds per feature (mean; best of 3 each)\n",
              rows, rows, features);
  for (int k = 0; k < 6; ++k) {
    double sum = 0, mx = 0;
    for (double v : t[k]) {
      sum += v;
      mx = std::max(mx, v);
    }
    std::printf("%-16s mean %.4f  max %.4f\n", names[k], sum / features, mx);
  }
  std::printf("%-16s mean %.4f  (counts of 50 categories + test)\n", "chi2_contingency", chi / 2);
  return 0;
}
