// Distribution functions behind the drift tests' p-values, written for keel
// after the algorithms scipy 1.10 uses (references in distributions.cc), and
// numpy's summation order. Internal to src/monitor; unit-tested directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace keel::monitor::internal {

// Sum in numpy's order, so sums of the same array match np.sum bit for bit:
// blocks of 8192 (the reduction's buffer) added in order, each summed by
// pairwise_sum (numpy/core/src/umath/loops_utils.h: 8 accumulators per run of
// <= 128 elements, halves above).
double NumpySum(std::span<const double> values);

// NumpySum of a sequence produced one value at a time, in O(1) memory:
// Add() the values in order, then Total() == NumpySum(all of them).
class NumpySummer {
 public:
  void Add(double v) {
    buffer_[size_++] = v;
    if (size_ == kBuffer) Flush();
  }
  double Total() {
    if (size_ > 0) Flush();
    return total_;
  }

 private:
  static constexpr size_t kBuffer = 8192;  // np.add.reduce's buffer
  void Flush();
  double buffer_[kBuffer];
  size_t size_ = 0;
  double total_ = 0;
};

// Regularized incomplete gamma functions P(a, x) and Q(a, x) = 1 - P(a, x),
// a > 0, x >= 0 (NaN otherwise). Series for x < a + 1, Lentz's continued
// fraction for Q otherwise, with the prefactor x^a e^-x / Gamma(a) in long
// double; relative error about 1e-14 over the range the tests cover.
double RegularizedGammaP(double a, double x);
double RegularizedGammaQ(double a, double x);
// Chi-square survival function (scipy.stats.chi2.sf): Q(dof / 2, x / 2).
double ChiSquareSf(double x, double dof);

// scipy.special.smirnov(n, d): P(D+_n >= d) for the one-sided one-sample
// statistic (Birnbaum-Tingey sum, evaluated in long double logs).
double SmirnovSf(int64_t n, double d);
// scipy.stats.kstwo.sf(d, n): P(D_n >= d) for the two-sided one-sample
// statistic, with scipy's (Simard-L'Ecuyer) choice among Ruben-Gambino,
// Durbin-Marsaglia-Tsang-Wang, Pomeranz, Pelz-Good and 2 * smirnov.
double KolmogorovSf(int64_t n, double d);

// The exact two-sided two-sample p-value of ks_2samp for sizes n1, n2 and
// statistic d. `d` is replaced by h / lcm(n1, n2), h = round(d * lcm), as
// scipy does; ok is false where scipy's exact attempt fails (then scipy, and
// keel, use the asymptotic p-value with the rounded d).
struct ExactKs {
  bool ok = false;
  double d = 0;
  double p = 1;
};
ExactKs KsExactTwoSided(int64_t n1, int64_t n2, double d);
// ks_2samp's asymptotic p-value: kstwo.sf(d, round(n1 n2 / (n1 + n2))).
double KsAsymptoticTwoSided(int64_t n1, int64_t n2, double d);

}  // namespace keel::monitor::internal
