// Distribution functions for the drift tests. Sources of the algorithms
// (re-implemented here, checked against scipy 1.10.1 in
// tests/unit/monitor_stats_test.cc with golden values from
// tests/data/monitor/make_golden.py):
//   - two-sample exact KS: Hodges (1958); equal sizes by the alternating
//     binomial series in Horner form, unequal sizes by Viehmann's recursion
//     for 1 - p (arXiv:2102.08037), as scipy.stats._stats_py /
//     _stats_pythran do;
//   - kstwo (one-sample two-sided D_n): Simard & L'Ecuyer (2011)'s choice of
//     method as in scipy.stats._ksstats: Ruben-Gambino closed forms,
//     Durbin's matrix (Marsaglia-Tsang-Wang), Pomeranz's recursion,
//     Pelz-Good's expansion, and 2 * smirnov for the upper tail;
//   - smirnov (one-sided D+_n): the Birnbaum-Tingey sum (cephes/scipy
//     kolmogorov.c evaluates it in double-double; here in long double logs);
//   - regularized incomplete gamma: power series / Lentz continued fraction.
#include "src/monitor/distributions.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <numbers>
#include <numeric>
#include <vector>

namespace keel::monitor::internal {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double Clip01(double p) {
  if (std::isnan(p)) return p;
  return std::min(1.0, std::max(0.0, p));
}

double PairwiseSum(const double* a, size_t n) {
  if (n < 8) {
    double res = 0.;
    for (size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    }
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return PairwiseSum(a, n2) + PairwiseSum(a + n2, n - n2);
}

// ---------------------------------------------------------------- gamma

// log(x^a e^-x / Gamma(a)) in long double. lgammal_r, not lgamma: lgamma
// writes the global signgam, a data race between threads.
long double LogGammaPrefactor(long double a, long double x) {
  int sign = 0;
  return a * std::log(x) - x - ::lgammal_r(a, &sign);
}

// P(a, x) by its power series; for x < a + 1.
long double GammaPSeries(long double a, long double x) {
  long double term = 1.0L / a;
  long double sum = term;
  const int max_iter = 100000 + static_cast<int>(50 * std::sqrt(static_cast<double>(a)));
  for (int n = 1; n < max_iter; ++n) {
    term *= x / (a + n);
    sum += term;
    if (std::fabs(term) < std::fabs(sum) * LDBL_EPSILON) break;
  }
  return sum * std::exp(LogGammaPrefactor(a, x));
}

// Q(a, x) by Lentz's continued fraction; for x >= a + 1.
long double GammaQContinuedFraction(long double a, long double x) {
  constexpr long double kTiny = 1e-4000L;
  long double b = x + 1.0L - a;
  long double c = 1.0L / kTiny;
  long double d = 1.0L / b;
  long double h = d;
  const int max_iter = 100000 + static_cast<int>(50 * std::sqrt(static_cast<double>(a)));
  for (int i = 1; i < max_iter; ++i) {
    long double an = -static_cast<long double>(i) * (i - a);
    b += 2.0L;
    d = an * d + b;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0L / d;
    long double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1.0L) < LDBL_EPSILON) break;
  }
  return std::exp(LogGammaPrefactor(a, x)) * h;
}

// ---------------------------------------------------------------- kstwo

constexpr double kPi = std::numbers::pi;
const double kSqrt2Pi = std::sqrt(2 * kPi);
const double kLog2Pi = std::log(2 * kPi);
const double kSqrt3 = std::sqrt(3.0);
const double kPiSquared = std::pow(kPi, 2);
const double kPiFour = std::pow(kPi, 4);
const double kPiSix = std::pow(kPi, 6);
constexpr int kE128 = 128;
const long double kEp128 = std::ldexp(1.0L, kE128);
const long double kEm128 = std::ldexp(1.0L, -kE128);
const double kEp128d = std::ldexp(1.0, kE128);

// log(n! / n^n) by Stirling's series with n log n removed up front.
double LogNFactorialDivNPowN(int64_t n) {
  static constexpr double kStirling[] = {-2.955065359477124183e-2,  6.4102564102564102564e-3,
                                         -1.9175269175269175269e-3, 8.4175084175084175084e-4,
                                         -5.952380952380952381e-4,  7.9365079365079365079e-4,
                                         -2.7777777777777777778e-3, 8.3333333333333333333e-2};
  const double dn = static_cast<double>(n);
  const double rn = 1.0 / dn;
  const double y = rn / dn;
  double poly = 0;
  for (double c : kStirling) poly = poly * y + c;
  return std::log(dn) / 2 - dn + kLog2Pi / 2 + rn * poly;
}

using Matrix = std::vector<double>;  // row-major m x m

Matrix MatMul(const Matrix& a, const Matrix& b, int m) {
  Matrix c(static_cast<size_t>(m) * m, 0.0);
  for (int i = 0; i < m; ++i) {
    for (int k = 0; k < m; ++k) {
      const double aik = a[i * m + k];
      if (aik == 0) continue;
      for (int j = 0; j < m; ++j) c[i * m + j] += aik * b[k * m + j];
    }
  }
  return c;
}

// CDF P(D_n <= d) by Durbin's matrix method (Marsaglia, Tsang, Wang 2003).
// Matrices in double as scipy's; the final scaling in long double (scipy's
// too once it rescales). Used where the CDF is small, so 1 - cdf is benign.
long double KolmogornDmtwCdf(int64_t n, double d) {
  if (d >= 1.0) return 1.0;
  const double nd = static_cast<double>(n) * d;
  if (nd <= 0.5) return 0.0;
  const int k = static_cast<int>(std::ceil(nd));
  const double h = k - nd;
  const int m = 2 * k - 1;
  Matrix hm(static_cast<size_t>(m) * m, 0.0);
  std::vector<double> v(m), w(m);
  double fac = 1.0;
  for (int j = 1; j <= m; ++j) {
    v[j - 1] = 1.0 - std::pow(h, j);
    w[j - 1] = fac;
    fac /= j;
    v[j - 1] *= fac;
  }
  const double tt = std::pow(std::max(2 * h - 1.0, 0.0), m) - 2 * std::pow(h, m);
  v[m - 1] = (1.0 + tt) * fac;
  for (int i = 1; i < m; ++i) {
    for (int r = i - 1; r < m; ++r) hm[r * m + i] = w[r - (i - 1)];
  }
  for (int r = 0; r < m; ++r) hm[r * m + 0] = v[r];
  for (int c = 0; c < m; ++c) hm[(m - 1) * m + c] = v[m - 1 - c];

  Matrix pw(static_cast<size_t>(m) * m, 0.0);
  for (int i = 0; i < m; ++i) pw[i * m + i] = 1.0;
  int64_t nn = n;
  int expnt = 0, hexpnt = 0;
  while (nn > 0) {
    if (nn % 2) {
      pw = MatMul(pw, hm, m);
      expnt += hexpnt;
    }
    hm = MatMul(hm, hm, m);
    hexpnt *= 2;
    if (std::fabs(hm[(k - 1) * m + (k - 1)]) > kEp128d) {
      for (double& x : hm) x /= kEp128d;
      hexpnt += kE128;
    }
    nn /= 2;
  }
  long double p = pw[(k - 1) * m + (k - 1)];
  for (int64_t i = 1; i <= n; ++i) {
    p = static_cast<long double>(i) * p / static_cast<long double>(n);
    if (std::fabs(p) < kEm128) {
      p *= kEp128;
      expnt -= kE128;
    }
  }
  if (expnt != 0) p = std::ldexp(p, expnt);
  return std::clamp(p, 0.0L, 1.0L);
}

void PomeranzJ1J2(int64_t i, int64_t n, int64_t ll, int64_t ceilf, int64_t roundf, int64_t* j1,
                  int64_t* j2) {
  int64_t a, b;
  if (i == 0) {
    a = -ll - ceilf - 1;
    b = ll + ceilf - 1;
  } else {
    const int64_t ip1div2 = (i + 1) / 2, ip1mod2 = (i + 1) % 2;
    if (ip1mod2 == 0) {  // i is odd
      if (ip1div2 == n + 1) {
        a = n - ll - ceilf - 1;
        b = n + ll + ceilf - 1;
      } else {
        a = ip1div2 - 1 - ll - roundf - 1;
        b = ip1div2 + ll - 1 + ceilf - 1;
      }
    } else {
      a = ip1div2 - 1 - ll - 1;
      b = ip1div2 + ll + roundf - 1;
    }
  }
  *j1 = std::max<int64_t>(a + 2, 0);
  *j2 = std::min<int64_t>(b, n);
}

// CDF P(D_n <= d) by Pomeranz's recursion (1974). In long double (scipy:
// float64 rows), because here the CDF reaches 0.9994 and 1 - cdf would keep
// only ~12 digits: against an exact (mpmath) Durbin evaluation this is
// within 1e-15 where scipy is off by up to 8e-12.
long double KolmogornPomeranzCdf(int64_t n, double x) {
  const double t = static_cast<double>(n) * x;
  const int64_t ll = static_cast<int64_t>(std::floor(t));
  const double f = 1.0 * (t - static_cast<double>(ll));
  const double g = std::min(f, 1.0 - f);
  const int64_t ceilf = f > 0 ? 1 : 0;
  const int64_t roundf = f > 0.5 ? 1 : 0;
  const int64_t npwrs = 2 * (ll + 1);
  std::vector<long double> gpower(npwrs), twogpower(npwrs), onem2gpower(npwrs);
  gpower[0] = twogpower[0] = onem2gpower[0] = 1.0L;
  const long double dn = static_cast<long double>(n), gl = g;
  const long double g_over_n = gl / dn, two_g_over_n = 2 * gl / dn,
                    one_minus_two_g_over_n = (1 - 2 * gl) / dn;
  for (int64_t m = 1; m < npwrs; ++m) {
    gpower[m] = gpower[m - 1] * g_over_n / static_cast<long double>(m);
    twogpower[m] = twogpower[m - 1] * two_g_over_n / static_cast<long double>(m);
    onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / static_cast<long double>(m);
  }
  std::vector<long double> v0(npwrs, 0.0L), v1(npwrs, 0.0L), conv;
  v1[0] = 1;
  int64_t v0s = 0, v1s = 0;
  int expnt = 0;
  int64_t j1, j2;
  PomeranzJ1J2(0, n, ll, ceilf, roundf, &j1, &j2);
  for (int64_t i = 1; i < 2 * n + 2; ++i) {
    const int64_t k1 = j1;
    std::swap(v0, v1);
    std::swap(v0s, v1s);
    std::fill(v1.begin(), v1.end(), 0.0L);
    PomeranzJ1J2(i, n, ll, ceilf, roundf, &j1, &j2);
    const std::vector<long double>& pwrs =
        (i == 1 || i == 2 * n + 1) ? gpower : (i % 2 ? twogpower : onem2gpower);
    const int64_t ln2 = j2 - k1 + 1;
    if (ln2 > 0) {
      // np.convolve(V0[k1 - V0s : k1 - V0s + ln2], pwrs[:ln2]) (slices clipped to the arrays).
      const int64_t s0 = k1 - v0s;
      const int64_t la = std::max<int64_t>(0, std::min(s0 + ln2, npwrs) - s0);
      const int64_t lb = std::min(ln2, npwrs);
      conv.assign(la + lb > 0 ? la + lb - 1 : 0, 0.0L);
      for (int64_t a = 0; a < la; ++a) {
        const long double va = v0[s0 + a];
        for (int64_t b = 0; b < lb; ++b) conv[a + b] += va * pwrs[b];
      }
      const int64_t conv_start = j1 - k1;
      const int64_t conv_len = j2 - j1 + 1;
      for (int64_t c = 0; c < conv_len; ++c) {
        const int64_t src = conv_start + c;
        if (c < npwrs && src >= 0 && src < static_cast<int64_t>(conv.size())) v1[c] = conv[src];
      }
      const long double vmax = *std::max_element(v1.begin(), v1.end());
      if (0 < vmax && vmax < kEm128) {
        for (long double& x : v1) x *= kEp128;
        expnt -= kE128;
      }
      v1s = v0s + j1 - k1;
    }
  }
  const int64_t idx = n - v1s;
  long double ans = (idx >= 0 && idx < npwrs) ? v1[idx] : 0.0;
  for (int64_t m = 1; m <= n; ++m) {
    if (std::fabs(ans) > kEp128) {
      ans *= kEm128;
      expnt += kE128;
    }
    ans *= static_cast<long double>(m);
  }
  if (expnt != 0) ans = std::ldexp(ans, expnt);
  return std::clamp(ans, 0.0L, 1.0L);
}

// CDF P(D_n <= x) by the Pelz-Good approximation.
double KolmogornPelzGoodCdf(int64_t n, double x) {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  const double z = std::sqrt(static_cast<double>(n)) * x;
  const double zsquared = std::pow(z, 2), zthree = std::pow(z, 3), zfour = std::pow(z, 4),
               zsix = std::pow(z, 6);
  const double qlog = -kPiSquared / 8 / zsquared;
  if (qlog < -708) return 0.0;
  double q = std::exp(qlog);

  const double k1a = -zsquared;
  const double k1b = kPiSquared / 4;
  const double k2a = 6 * zsix + 2 * zfour;
  const double k2b = (2 * zfour - 5 * zsquared) * kPiSquared / 4;
  const double k2c = kPiFour * (1 - 2 * zsquared) / 16;
  const double k3d = kPiSix * (5 - 30 * zsquared) / 64;
  const double k3c = kPiFour * (-60 * zsquared + 212 * zfour) / 16;
  const double k3b = kPiSquared * (135 * zfour - 96 * zsix) / 4;
  const double k3a = -30 * zsix - 90 * std::pow(z, 8);

  double k0to3[4] = {0, 0, 0, 0};
  const int64_t maxk = static_cast<int64_t>(std::ceil(16 * z / kPi));
  for (int64_t k = maxk; k > 0; --k) {
    const int64_t m = 2 * k - 1;
    const double msquared = static_cast<double>(m * m), mfour = msquared * msquared,
                 msix = mfour * msquared;
    const double qpower = std::pow(q, static_cast<double>(8 * k));
    const double coeffs[4] = {1.0, k1a + k1b * msquared, k2a + k2b * msquared + k2c * mfour,
                              k3a + k3b * msquared + k3c * mfour + k3d * msix};
    for (int i = 0; i < 4; ++i) {
      k0to3[i] *= qpower;
      k0to3[i] += coeffs[i];
    }
  }
  const double div[4] = {z, 6 * zfour, 72 * std::pow(z, 7), 6480 * std::pow(z, 10)};
  for (int i = 0; i < 4; ++i) {
    k0to3[i] *= q;
    k0to3[i] *= kSqrt2Pi;
    k0to3[i] /= div[i];
  }

  q = std::exp(-kPiSquared / 2 / zsquared);
  const double sqrt3z = kSqrt3 * z;
  std::vector<double> t2, t3;
  t2.reserve(maxk);
  t3.reserve(maxk);
  for (int64_t k = maxk; k > 0; --k) {
    const double ksquared = static_cast<double>(k * k);
    const double qp = std::pow(q, ksquared);
    const double kspi = kPi * static_cast<double>(k);
    t2.push_back(ksquared * qp);
    t3.push_back((sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qp);
  }
  double k2extra = NumpySum(t2);
  k2extra *= kPiSquared * kSqrt2Pi / (-36 * zthree);
  k0to3[2] += k2extra;
  double k3extra = NumpySum(t3);
  k3extra *= kPiSquared * kSqrt2Pi / (216 * zsix);
  k0to3[3] += k3extra;
  double ksum = 0;
  for (int i = 0; i < 4; ++i) {
    k0to3[i] /= std::pow(static_cast<double>(n) * 1.0, i / 2.0);
    ksum += k0to3[i];
  }
  return ksum;
}

// floor(n * x) and the fractional part, exactly (the product's rounding error
// recovered with fma).
void SplitNX(int64_t n, double x, int64_t* floor_nx, double* alpha) {
  const double dn = static_cast<double>(n);
  const double p = dn * x;
  const double err = std::fma(dn, x, -p);
  double fl = std::floor(p);
  long double frac = static_cast<long double>(p - fl) + err;
  if (frac < 0) {
    fl -= 1;
    frac += 1;
  }
  if (frac >= 1) {
    fl += 1;
    frac -= 1;
  }
  *floor_nx = static_cast<int64_t>(fl);
  *alpha = static_cast<double>(frac);
}

}  // namespace

double NumpySum(std::span<const double> values) {
  // np.add.reduce hands the inner loop at most one buffer (8192 elements) at
  // a time and accumulates the blocks' pairwise sums in order.
  constexpr size_t kBuffer = 8192;
  double res = 0.;
  for (size_t i = 0; i < values.size(); i += kBuffer) {
    res += PairwiseSum(values.data() + i, std::min(kBuffer, values.size() - i));
  }
  return res;
}

void NumpySummer::Flush() {
  total_ += PairwiseSum(buffer_, size_);
  size_ = 0;
}

double RegularizedGammaP(double a, double x) {
  if (std::isnan(a) || std::isnan(x) || a <= 0 || x < 0) return kNaN;
  if (x == 0) return 0.0;
  if (std::isinf(x)) return 1.0;
  if (x < a + 1) return static_cast<double>(GammaPSeries(a, x));
  return static_cast<double>(1.0L - GammaQContinuedFraction(a, x));
}

double RegularizedGammaQ(double a, double x) {
  if (std::isnan(a) || std::isnan(x) || a <= 0 || x < 0) return kNaN;
  if (x == 0) return 1.0;
  if (std::isinf(x)) return 0.0;
  if (x < a + 1) return static_cast<double>(1.0L - GammaPSeries(a, x));
  return static_cast<double>(GammaQContinuedFraction(a, x));
}

double ChiSquareSf(double x, double dof) {
  if (std::isnan(x) || !(dof > 0)) return kNaN;
  if (x <= 0) return 1.0;
  return RegularizedGammaQ(dof / 2, x / 2);
}

double SmirnovSf(int64_t n, double x) {
  if (!(n > 0 && x >= 0.0 && x <= 1.0)) return kNaN;
  if (n == 1) return 1 - x;
  if (x == 0.0) return 1.0;
  if (x == 1.0) return 0.0;
  int64_t nxfl;
  double alpha;
  SplitNX(n, x, &nxfl, &alpha);
  const double dn = static_cast<double>(n);
  if (nxfl == 0 || (nxfl == 1 && alpha == 0)) {  // x <= 1/n
    const long double cdf = x * std::pow(1.0L + x, static_cast<long double>(n - 1));
    return Clip01(static_cast<double>(1.0L - cdf));
  }
  constexpr double kMinLog = -7.451332191019412076235E2;  // cephes MINLOG, log(2^-1075)
  if (-2 * dn * x * x < kMinLog) return 0.0;
  if (nxfl >= n - 1) {  // x >= 1 - 1/n
    return Clip01(static_cast<double>(std::pow(1.0L - x, static_cast<long double>(n))));
  }
  if (n > 1000000) {  // scipy's SMIRNOV_MAX_COMPUTE_N approximation
    const double logp = -std::pow(6.0 * dn * x + 1, 2) / 18.0 / dn;
    if (logp < -std::numbers::ln2) return std::exp(logp);
    return 1 - (-std::expm1(logp));
  }
  // sf = x * sum_{v=0}^{n - nxfl - 1} C(n, v) (x + v/n)^(v-1) (1 - x - v/n)^(n-v),
  // with n (x + v/n) = nxfl + v + alpha and n (1 - x - v/n) = n - nxfl - v - alpha
  // exact before the division. Each log is taken of whichever of u = up / n and
  // 1 - u = down / n is below 1/2 (log1p of minus the other otherwise), so no
  // log loses digits to cancellation before being multiplied by up to n.
  const int64_t last = n - nxfl - 1;
  const int64_t n_terms = last + 1;
  const long double ln = static_cast<long double>(n);
  // log C(n, v) grows to thousands while its increments are ~10: it is kept
  // as a compensated (Neumaier) sum, or rounding would drift by ~1e-14.
  long double log_binom = 0, log_binom_err = 0;
  long double sum = 0;
  for (int64_t v = 0; v <= last; ++v) {
    if (v > 0) {
      const long double inc =
          std::log(static_cast<long double>(n - v + 1) / static_cast<long double>(v));
      const long double t = log_binom + inc;
      log_binom_err +=
          std::fabs(log_binom) >= std::fabs(inc) ? (log_binom - t) + inc : (inc - t) + log_binom;
      log_binom = t;
    }
    const long double up = (static_cast<long double>(nxfl + v) + alpha) / ln;
    const long double down = (static_cast<long double>(n - nxfl - v) - alpha) / ln;
    long double term = 0;
    if (down > 0) {
      const long double log_up = up < 0.5L ? std::log(up) : std::log1p(-down);
      const long double log_down = down < 0.5L ? std::log(down) : std::log1p(-up);
      const long double log_term = (log_binom + static_cast<long double>(v - 1) * log_up +
                                    static_cast<long double>(n - v) * log_down) +
                                   log_binom_err;
      term = std::exp(log_term);
    }
    sum += term;
    if (term != 0) {
      if (4.0L * static_cast<long double>(n_terms - v) * term < DBL_EPSILON * sum &&
          v != n_terms - 1) {
        break;
      }
    } else if (v > n / 2) {
      break;
    }
  }
  return Clip01(static_cast<double>(x * sum));
}

double KolmogorovSf(int64_t n, double x) {
  if (n <= 0 || std::isnan(x)) return kNaN;
  if (x >= 1.0) return 0.0;
  if (x <= 0.0) return 1.0;
  const double dn = static_cast<double>(n);
  const double t = dn * x;
  if (t <= 1.0) {  // Ruben-Gambino: 1/2n <= x <= 1/n
    if (t <= 0.5) return 1.0;
    double prob;
    if (n <= 140) {
      prob = 1.0;
      for (int64_t i = 1; i <= n; ++i) prob *= static_cast<double>(i) * (1.0 / dn) * (2 * t - 1);
    } else {
      prob = std::exp(LogNFactorialDivNPowN(n) + dn * std::log(2 * t - 1));
    }
    return Clip01(1.0 - prob);
  }
  if (t >= dn - 1) return Clip01(2 * std::pow(1.0 - x, dn));  // Ruben-Gambino
  if (x >= 0.5) return Clip01(2 * SmirnovSf(n, x));           // exact: 2 * smirnov
  const double nxsquared = t * x;
  if (n <= 140) {
    if (nxsquared <= 0.754693) return Clip01(static_cast<double>(1.0L - KolmogornDmtwCdf(n, x)));
    if (nxsquared <= 4) return Clip01(static_cast<double>(1.0L - KolmogornPomeranzCdf(n, x)));
    return Clip01(2 * SmirnovSf(n, x));  // Miller's approximation
  }
  if (nxsquared >= 370.0) return 0.0;
  if (nxsquared >= 2.2) return Clip01(2 * SmirnovSf(n, x));
  long double cdf;
  if (n <= 100000 && dn * std::pow(x, 1.5) <= 1.4) {
    cdf = KolmogornDmtwCdf(n, x);
  } else {
    cdf = std::clamp(static_cast<long double>(KolmogornPelzGoodCdf(n, x)), 0.0L, 1.0L);
  }
  return Clip01(static_cast<double>(1.0L - cdf));
}

namespace {

// P(D_{n,n} >= h/n): 2 * (A0 (1 - A1 (1 - A2 (...)))), Hodges' alternating
// series of binomial ratios in Horner form.
double ProbOutsideSquare(int64_t n, int64_t h) {
  double p = 0.0;
  int64_t k = static_cast<int64_t>(std::floor(static_cast<double>(n) / static_cast<double>(h)));
  while (k >= 0) {
    double p1 = 1.0;
    for (int64_t j = 0; j < h; ++j) {
      p1 = static_cast<double>(n - k * h - j) * p1 / static_cast<double>(n + k * h + j + 1);
    }
    p = p1 * (1.0 - p);
    --k;
  }
  return 2 * p;
}

// 1 - (paths from (0,0) to (m,n) staying strictly inside |nx/g - my/g| < h) /
// binom(m+n, n), computed directly as a proportion (Viehmann's recursion).
double OuterProbInside(int64_t m, int64_t n, int64_t g, int64_t h) {
  if (m < n) std::swap(m, n);
  const int64_t mg = m / g, ng = n / g;
  const double dh = static_cast<double>(h), dmg = static_cast<double>(mg);
  int64_t minj = 0;
  int64_t maxj = std::min(static_cast<int64_t>(std::ceil(dh / dmg)), n + 1);
  int64_t curlen = maxj - minj;
  const int64_t len_a = std::min(2 * maxj + 2, n + 1);
  std::vector<double> a(len_a, 1.0);
  for (int64_t j = minj; j < maxj && j < len_a; ++j) a[j] = 0.0;
  for (int64_t i = 1; i <= m; ++i) {
    const int64_t lastminj = minj, lastlen = curlen;
    minj = std::max<int64_t>(
        static_cast<int64_t>(std::floor(static_cast<double>(ng * i - h) / dmg)) + 1, 0);
    minj = std::min(minj, n);
    maxj = std::min(static_cast<int64_t>(std::ceil(static_cast<double>(ng * i + h) / dmg)), n + 1);
    if (maxj <= minj) return 1.0;
    double val = minj == 0 ? 0.0 : 1.0;
    const double di = static_cast<double>(i);
    for (int64_t jj = 0; jj < maxj - minj; ++jj) {
      const int64_t j = jj + minj;
      val = (a[jj + minj - lastminj] * di + val * static_cast<double>(j)) /
            static_cast<double>(i + j);
      a[jj] = val;
    }
    curlen = maxj - minj;
    if (lastlen > curlen) {
      for (int64_t q = maxj - minj; q < maxj - minj + (lastlen - curlen) && q < len_a; ++q) {
        a[q] = 1;
      }
    }
  }
  return a[maxj - minj - 1];
}

}  // namespace

ExactKs KsExactTwoSided(int64_t n1, int64_t n2, double d) {
  ExactKs out;
  const int64_t g = std::gcd(n1, n2);
  const int64_t lcm = (n1 / g) * n2;
  const int64_t h = static_cast<int64_t>(std::nearbyint(d * static_cast<double>(lcm)));
  out.d = static_cast<double>(h) * 1.0 / static_cast<double>(lcm);
  if (h == 0) {
    out.ok = true;
    out.p = 1.0;
    return out;
  }
  const double prob = n1 == n2 ? ProbOutsideSquare(n1, h) : OuterProbInside(n1, n2, g, h);
  out.p = prob;
  out.ok = prob >= 0 && prob <= 1;
  return out;
}

double KsAsymptoticTwoSided(int64_t n1, int64_t n2, double d) {
  const double m = static_cast<double>(std::max(n1, n2));
  const double n = static_cast<double>(std::min(n1, n2));
  const double en = m * n / (m + n);
  return Clip01(KolmogorovSf(static_cast<int64_t>(std::nearbyint(en)), d));
}

}  // namespace keel::monitor::internal
