// The drift statistics as pure functions (keel/monitor/stats.h). Where numpy
// or scipy define the value, the arithmetic follows them operation for
// operation (same divisions, numpy's summation order) so results agree to the
// last bits where the inputs allow it; docs/monitoring.md lists what is exact.
#include "keel/monitor/stats.h"

#include <boost/sort/pdqsort/pdqsort.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include "src/monitor/distributions.h"

namespace keel::monitor {
namespace {

using internal::NumpySum;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Status CheckSorted(std::span<const double> values, std::string_view what) {
  if (values.empty()) return InvalidArgument(std::string(what) + " has no non-missing values");
  double prev = -std::numeric_limits<double>::infinity();
  for (double v : values) {
    if (!std::isfinite(v)) {
      return InvalidArgument(std::string(what) + " holds a non-finite value (NaN/inf are missing)");
    }
    if (v < prev) return InvalidArgument(std::string(what) + " is not sorted ascending");
    prev = v;
  }
  return OkStatus();
}

Status CheckShares(std::span<const double> p, std::span<const double> q) {
  if (p.size() != q.size()) {
    return InvalidArgument("histograms differ in size: " + std::to_string(p.size()) + " vs " +
                           std::to_string(q.size()));
  }
  if (p.empty()) return InvalidArgument("empty histograms");
  double sp = 0, sq = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (!(p[i] >= 0) || !(q[i] >= 0) || std::isinf(p[i]) || std::isinf(q[i])) {
      return InvalidArgument("histogram shares must be finite and non-negative");
    }
    sp += p[i];
    sq += q[i];
  }
  if (sp <= 0) return InvalidArgument("reference histogram has no mass");
  if (sq <= 0) return InvalidArgument("current histogram has no mass");
  return OkStatus();
}

std::string NumberLabel(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

// x / sum(x) as scipy's jensenshannon normalises (numpy division by np.sum).
std::vector<double> Normalized(std::span<const double> x) {
  const double s = NumpySum(x);
  std::vector<double> out(x.begin(), x.end());
  for (double& v : out) v = v / s;
  return out;
}

// scipy.special.rel_entr.
double RelEntr(double x, double y) {
  if (std::isnan(x) || std::isnan(y)) return kNaN;
  if (x > 0 && y > 0) return x * std::log(x / y);
  if (x == 0 && y >= 0) return 0;
  return std::numeric_limits<double>::infinity();
}

// Counts of the sorted `values` on the cumulative rule of numpy.histogram:
// bin k is [e_k, e_k+1), the last bin also holds e_last; values outside are
// not counted.
std::vector<uint64_t> NumpyHistogram(std::span<const double> sorted,
                                     std::span<const double> edges) {
  std::vector<uint64_t> cum(edges.size());
  for (size_t k = 0; k < edges.size(); ++k) {
    auto it = k + 1 < edges.size() ? std::lower_bound(sorted.begin(), sorted.end(), edges[k])
                                   : std::upper_bound(sorted.begin(), sorted.end(), edges[k]);
    cum[k] = static_cast<uint64_t>(it - sorted.begin());
  }
  std::vector<uint64_t> out(edges.size() - 1);
  for (size_t k = 0; k + 1 < edges.size(); ++k) out[k] = cum[k + 1] - cum[k];
  return out;
}

// Ascending sort of finite doubles (NaN excluded by the caller), as unsigned
// keys: the IEEE-754 bits mapped to unsigned order (negative: every bit
// flipped; otherwise: the sign bit set). -0.0 sorts before +0.0, which
// compare equal anyway. Large inputs take a radix sort in two stages:
//  1. one most-significant pass on the keys' top 16 bits (sign, exponent and
//     4 mantissa bits) scatters them into buckets;
//  2. each bucket is sorted on its other 48 bits by a least-significant
//     radix sort (four 12-bit digits; a digit every key of the bucket shares
//     is skipped), or by pdqsort under 256 keys. Buckets of typical data fit
//     in the cache, so these passes run from it.
// About 17.5 ms per million normal doubles, 13-25% less than six 11-bit
// LSD passes over the whole array (docs/benchmarks.md). Small inputs, and
// inputs too long for 32-bit counters, take pdqsort.
void SortFinite(std::span<double> values) {
  const size_t n = values.size();
  if (n < 4096 || n > std::numeric_limits<uint32_t>::max()) {
    boost::sort::pdqsort(values.begin(), values.end());
    return;
  }
  constexpr uint64_t kSign = uint64_t{1} << 63;
  constexpr int kTopBits = 16;
  constexpr int kDigitBits = 12;
  constexpr int kDigits = (64 - kTopBits) / kDigitBits;
  constexpr size_t kDigitValues = size_t{1} << kDigitBits;
  constexpr size_t kSmallBucket = 256;
  auto to_key = [](double v) {
    const auto u = std::bit_cast<uint64_t>(v);
    return (u & kSign) != 0 ? ~u : (u | kSign);
  };
  auto from_key = [](uint64_t k) {
    return std::bit_cast<double>((k & kSign) != 0 ? (k & ~kSign) : ~k);
  };
  // Keys live in `values`' own storage as bit patterns, and in a scratch
  // buffer left uninitialised. Both are only touched through memcpy on bytes
  // (no object of another type is read through a pointer).
  static_assert(sizeof(double) == sizeof(uint64_t));
  auto* own = reinterpret_cast<unsigned char*>(values.data());
  const std::unique_ptr<unsigned char[]> spare(new unsigned char[n * sizeof(uint64_t)]);
  unsigned char* const scratch = spare.get();
  auto load = [](const unsigned char* base, size_t k) {
    uint64_t x;
    std::memcpy(&x, base + k * sizeof x, sizeof x);
    return x;
  };
  auto store = [](unsigned char* base, size_t k, uint64_t x) {
    std::memcpy(base + k * sizeof x, &x, sizeof x);
  };

  // Stage 1: keys into `own`, counted by their top bits, scattered into
  // `scratch` bucket by bucket.
  std::vector<uint32_t> next(size_t{1} << kTopBits, 0);
  for (size_t k = 0; k < n; ++k) {
    const uint64_t key = to_key(values[k]);
    store(own, k, key);
    ++next[key >> (64 - kTopBits)];
  }
  std::vector<std::pair<uint32_t, uint32_t>> buckets;  // (start, size), ascending
  uint32_t offset = 0;
  for (size_t t = 0; t < next.size(); ++t) {
    const uint32_t size = next[t];
    if (size > 0) buckets.emplace_back(offset, size);
    next[t] = offset;
    offset += size;
  }
  for (size_t k = 0; k < n; ++k) {
    const uint64_t key = load(own, k);
    store(scratch, next[key >> (64 - kTopBits)]++, key);
  }

  // Stage 2: each bucket sorted on its low bits, the result in `own`.
  std::array<std::array<uint32_t, kDigitValues>, kDigits> counts;
  for (const auto& [start, size] : buckets) {
    unsigned char* src = scratch + size_t{start} * sizeof(uint64_t);
    unsigned char* dst = own + size_t{start} * sizeof(uint64_t);
    if (size < kSmallBucket) {
      std::array<uint64_t, kSmallBucket> keys;
      std::memcpy(keys.data(), src, size * sizeof(uint64_t));
      boost::sort::pdqsort(keys.begin(), keys.begin() + size);
      std::memcpy(dst, keys.data(), size * sizeof(uint64_t));
      continue;
    }
    for (auto& c : counts) c.fill(0);
    for (size_t k = 0; k < size; ++k) {
      const uint64_t key = load(src, k);
      for (int d = 0; d < kDigits; ++d) {
        ++counts[d][(key >> (kDigitBits * d)) & (kDigitValues - 1)];
      }
    }
    for (int d = 0; d < kDigits; ++d) {
      std::array<uint32_t, kDigitValues>& c = counts[d];
      const int shift = kDigitBits * d;
      if (c[(load(src, 0) >> shift) & (kDigitValues - 1)] == size) continue;  // order kept
      uint32_t at = 0;
      for (uint32_t& x : c) {
        const uint32_t here = x;
        x = at;
        at += here;
      }
      for (size_t k = 0; k < size; ++k) {
        const uint64_t key = load(src, k);
        store(dst, c[(key >> shift) & (kDigitValues - 1)]++, key);
      }
      std::swap(src, dst);
    }
    if (src != own + size_t{start} * sizeof(uint64_t)) {
      std::memcpy(own + size_t{start} * sizeof(uint64_t), src, size * sizeof(uint64_t));
    }
  }
  for (size_t k = 0; k < n; ++k) {
    const double v = from_key(load(own, k));
    std::memcpy(own + k * sizeof v, &v, sizeof v);
  }
}

}  // namespace

std::string_view ColumnKindName(ColumnKind kind) {
  return kind == ColumnKind::kNumeric ? "numeric" : "categorical";
}

// ---------------------------------------------------------------- samples

NumericSample NumericSample::FromValues(std::span<const double> values) {
  NumericSample s;
  s.sorted.reserve(values.size());
  for (double v : values) {
    if (std::isfinite(v)) {
      s.sorted.push_back(v);
    } else {
      ++s.missing;
    }
  }
  SortFinite(std::span<double>(s.sorted.data(), s.sorted.size()));
  return s;
}

NumericSample NumericSample::FromValues(std::vector<double>&& values) {
  NumericSample s;
  const auto kept =
      std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); });
  s.missing = static_cast<uint64_t>(values.end() - kept);
  values.erase(kept, values.end());
  SortFinite(std::span<double>(values.data(), values.size()));
  s.sorted = std::move(values);
  return s;
}

void NumericSample::Merge(const NumericSample& other) {
  const size_t mid = sorted.size();
  sorted.insert(sorted.end(), other.sorted.begin(), other.sorted.end());
  std::inplace_merge(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(mid),
                     sorted.end());
  missing += other.missing;
}

void CategoricalSample::Add(std::string_view category, uint64_t n) {
  auto it = counts.find(category);
  if (it == counts.end()) {
    counts.emplace(std::string(category), n);
  } else {
    it->second += n;
  }
}

void CategoricalSample::Merge(const CategoricalSample& other) {
  for (const auto& [name, n] : other.counts) Add(name, n);
  missing += other.missing;
}

uint64_t CategoricalSample::non_missing() const {
  uint64_t n = 0;
  for (const auto& [name, c] : counts) n += c;
  return n;
}

// ---------------------------------------------------------------- histograms

Result<QuantileBins> FitQuantileBins(std::span<const double> ref_sorted, int bins) {
  if (bins < 1) return InvalidArgument("bins must be at least 1");
  KEEL_RETURN_IF_ERROR(CheckSorted(ref_sorted, "reference"));
  const uint64_t n = ref_sorted.size();
  QuantileBins out;
  out.ref_count = n;
  for (uint64_t k = 1; k < static_cast<uint64_t>(bins); ++k) {
    const double e = ref_sorted[(k * n) / static_cast<uint64_t>(bins)];
    if (out.edges.empty() || e != out.edges.back()) out.edges.push_back(e);
  }
  const std::vector<uint64_t> counts = CountSortedInBins(out.edges, ref_sorted);
  out.ref_shares.reserve(counts.size());
  for (uint64_t c : counts)
    out.ref_shares.push_back(static_cast<double>(c) / static_cast<double>(n));
  return out;
}

std::vector<uint64_t> CountInBins(std::span<const double> edges, std::span<const double> values) {
  std::vector<uint64_t> counts(edges.size() + 1, 0);
  for (double v : values) {
    ++counts[static_cast<size_t>(std::upper_bound(edges.begin(), edges.end(), v) - edges.begin())];
  }
  return counts;
}

std::vector<uint64_t> CountSortedInBins(std::span<const double> edges,
                                        std::span<const double> sorted) {
  std::vector<uint64_t> counts(edges.size() + 1, 0);
  size_t below = 0;  // values already counted in bins before i
  for (size_t i = 0; i < edges.size(); ++i) {
    // bin(x) = number of edges <= x, so bin i holds edges[i-1] <= x < edges[i].
    const size_t upto =
        static_cast<size_t>(std::lower_bound(sorted.begin() + static_cast<std::ptrdiff_t>(below),
                                             sorted.end(), edges[i]) -
                            sorted.begin());
    counts[i] = upto - below;
    below = upto;
  }
  counts[edges.size()] = sorted.size() - below;
  return counts;
}

AlignedCounts AlignCategories(const CategoryCounts& ref, const CategoryCounts& cur) {
  AlignedCounts out;
  auto r = ref.begin();
  auto c = cur.begin();
  while (r != ref.end() || c != cur.end()) {
    const bool take_r = c == cur.end() || (r != ref.end() && r->first <= c->first);
    const bool take_c = r == ref.end() || (c != cur.end() && c->first <= r->first);
    const std::string& name = take_r ? r->first : c->first;
    const uint64_t rc = take_r ? r->second : 0;
    const uint64_t cc = take_c ? c->second : 0;
    if (rc + cc > 0) {
      out.labels.push_back(name);
      out.ref.push_back(rc);
      out.cur.push_back(cc);
    }
    if (take_r) ++r;
    if (take_c) ++c;
  }
  return out;
}

AlignedCounts DistinctValueCounts(std::span<const double> ref_sorted,
                                  std::span<const double> cur_sorted) {
  AlignedCounts out;
  size_t i = 0, j = 0;
  while (i < ref_sorted.size() || j < cur_sorted.size()) {
    double v;
    if (j >= cur_sorted.size() || (i < ref_sorted.size() && ref_sorted[i] <= cur_sorted[j])) {
      v = ref_sorted[i];
    } else {
      v = cur_sorted[j];
    }
    size_t i2 = i, j2 = j;
    while (i2 < ref_sorted.size() && ref_sorted[i2] == v) ++i2;
    while (j2 < cur_sorted.size() && cur_sorted[j2] == v) ++j2;
    out.labels.push_back(NumberLabel(v));
    out.ref.push_back(i2 - i);
    out.cur.push_back(j2 - j);
    i = i2;
    j = j2;
  }
  return out;
}

Result<AlignedCounts> EvidentlyBins(std::span<const double> ref_sorted,
                                    std::span<const double> cur_sorted) {
  KEEL_RETURN_IF_ERROR(CheckSorted(ref_sorted, "reference"));
  KEEL_RETURN_IF_ERROR(CheckSorted(cur_sorted, "current"));
  size_t distinct = 1;
  for (size_t i = 1; i < ref_sorted.size() && distinct <= 20; ++i) {
    if (ref_sorted[i] != ref_sorted[i - 1]) ++distinct;
  }
  if (distinct <= 20) return DistinctValueCounts(ref_sorted, cur_sorted);

  // numpy.histogram_bin_edges(ref ++ cur, bins="sturges").
  double first = std::min(ref_sorted.front(), cur_sorted.front());
  double last = std::max(ref_sorted.back(), cur_sorted.back());
  const double ptp = last - first;
  if (first == last) {
    first = first - 0.5;
    last = last + 0.5;
  }
  const double total = static_cast<double>(ref_sorted.size() + cur_sorted.size());
  const double width = ptp / (std::log2(total) + 1.0);
  int64_t n_bins = 1;
  if (width != 0) n_bins = static_cast<int64_t>(std::ceil((last - first) / width));
  // numpy.linspace(first, last, n_bins + 1): i * step + first, the last edge = last.
  std::vector<double> edges(static_cast<size_t>(n_bins) + 1);
  const double delta = last - first;
  const double div = static_cast<double>(n_bins);
  const double step = delta / div;
  for (int64_t i = 0; i <= n_bins; ++i) {
    double y = static_cast<double>(i);
    if (step == 0) {
      y = y / div;
      y = y * delta;
    } else {
      y = y * step;
    }
    edges[static_cast<size_t>(i)] = y + first;
  }
  edges.back() = last;
  AlignedCounts out;
  out.ref = NumpyHistogram(ref_sorted, edges);
  out.cur = NumpyHistogram(cur_sorted, edges);
  for (size_t k = 0; k + 1 < edges.size(); ++k) {
    out.labels.push_back("[" + NumberLabel(edges[k]) + ", " + NumberLabel(edges[k + 1]) +
                         (k + 2 == edges.size() ? "]" : ")"));
  }
  return out;
}

std::vector<double> Shares(std::span<const uint64_t> counts) {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  if (total == 0) return {};
  std::vector<double> out;
  out.reserve(counts.size());
  for (uint64_t c : counts) out.push_back(static_cast<double>(c) / static_cast<double>(total));
  return out;
}

std::vector<double> FillEmptyShares(std::span<const double> shares) {
  std::vector<double> out(shares.begin(), shares.end());
  double m = std::numeric_limits<double>::infinity();
  for (double s : out) {
    if (s != 0) m = std::min(m, s);
  }
  if (std::isinf(m)) return out;  // no mass: nothing to fill
  const double eps = m <= 0.0001 ? m / 1000000.0 : 0.0001;
  for (double& s : out) {
    if (s == 0) s = eps;
  }
  return out;
}

// ---------------------------------------------------------------- numeric tests

namespace {

// The one merge of two sorted samples behind KS and Wasserstein.
//
// Walks the merged order a_0 <= ... <= a_N-1 element by element, without a
// branch on which side an element comes from. After element p, i and j count
// the reference and current values consumed; at the last element of a run of
// equal values they are F_ref and F_cur (times n) at that value.
//  - KS: the ECDF difference at every distinct value (run ends); extremes are
//    tracked apart for runs holding reference values and runs holding current
//    values, as scipy reports the first extreme in the order "reference
//    values, then current values".
//  - Wasserstein (scipy's _cdf_distance(1, u, v)): the N-1 terms
//    |F_ref(a_p) - F_cur(a_p)| * (a_p+1 - a_p) in merged order, summed in
//    numpy's order. Inside a run the gap is that of a partial count, but its
//    factor a_p+1 - a_p is +0.0, so the term is +0.0 as scipy's is.
template <bool kWithDistance>
void MergeSorted(std::span<const double> ref_sorted, std::span<const double> cur_sorted,
                 KsResult* ks, double* distance) {
  const size_t n1 = ref_sorted.size(), n2 = cur_sorted.size();
  const double d1 = static_cast<double>(n1), d2 = static_cast<double>(n2);
  const double* const a = ref_sorted.data();
  const double* const b = cur_sorted.data();
  constexpr double kNone = -std::numeric_limits<double>::infinity();
  struct Extreme {
    double value = kNone;  // kNone: not set (differences are finite)
    double at = 0;
  };
  Extreme max_ref, max_cur, min_ref, min_cur;  // min tracked as max of -diff
  auto end_run = [&](double diff, double at, bool has_ref, bool has_cur) {
    // Selects rather than branches: which side a run holds is a coin flip.
    const double r = has_ref ? diff : kNone;
    const double nr = has_ref ? -diff : kNone;
    const double c = has_cur ? diff : kNone;
    const double nc = has_cur ? -diff : kNone;
    if (r > max_ref.value) max_ref = {r, at};
    if (nr > min_ref.value) min_ref = {nr, at};
    if (c > max_cur.value) max_cur = {c, at};
    if (nc > min_cur.value) min_cur = {nc, at};
  };
  std::unique_ptr<internal::NumpySummer> terms;
  if constexpr (kWithDistance) terms = std::make_unique<internal::NumpySummer>();

  size_t i = 0, j = 0;
  double prev = 0, prev_diff = 0;
  bool run_ref = false, run_cur = false;
  auto take = [&](double w, bool from_ref) {
    if constexpr (kWithDistance) terms->Add(std::fabs(prev_diff) * (w - prev));
    if (w != prev) {
      end_run(prev_diff, prev, run_ref, run_cur);
      run_ref = false;
      run_cur = false;
    }
    i += from_ref ? 1 : 0;
    j += from_ref ? 0 : 1;
    run_ref |= from_ref;
    run_cur |= !from_ref;
    prev = w;
    prev_diff = static_cast<double>(i) / d1 - static_cast<double>(j) / d2;
  };
  {  // the first element starts the first run
    const bool t = a[0] <= b[0];
    prev = t ? a[0] : b[0];
    i = t ? 1 : 0;
    j = t ? 0 : 1;
    run_ref = t;
    run_cur = !t;
    prev_diff = static_cast<double>(i) / d1 - static_cast<double>(j) / d2;
  }
  while (i < n1 && j < n2) {
    const double x = a[i], y = b[j];
    const bool t = x <= y;
    take(t ? x : y, t);
  }
  while (i < n1) take(a[i], true);
  while (j < n2) take(b[j], false);
  end_run(prev_diff, prev, run_ref, run_cur);

  auto pick = [](const Extreme& x, const Extreme& y) {
    return (x.value != kNone && (y.value == kNone || x.value >= y.value)) ? x : y;
  };
  const Extreme mx = pick(max_ref, max_cur);
  const Extreme mn = pick(min_ref, min_cur);
  const double max_s = mx.value;
  const double min_s = std::clamp(mn.value, 0.0, 1.0);
  KsResult out;
  if (min_s > max_s) {
    out.statistic = min_s;
    out.location = mn.at;
    out.sign = -1;
  } else {
    out.statistic = max_s;
    out.location = mx.at;
    out.sign = 1;
  }
  const int64_t m1 = static_cast<int64_t>(n1), m2 = static_cast<int64_t>(n2);
  double p;
  if (std::max(n1, n2) <= 10000) {
    const internal::ExactKs e = internal::KsExactTwoSided(m1, m2, out.statistic);
    out.statistic = e.d;
    if (e.ok) {
      p = e.p;
      out.exact = true;
    } else {
      p = internal::KsAsymptoticTwoSided(m1, m2, out.statistic);
    }
  } else {
    p = internal::KsAsymptoticTwoSided(m1, m2, out.statistic);
  }
  out.p_value = std::isnan(p) ? p : std::clamp(p, 0.0, 1.0);
  *ks = out;
  if constexpr (kWithDistance) *distance = terms->Total();
}

}  // namespace

Result<KsResult> KolmogorovSmirnov(std::span<const double> ref_sorted,
                                   std::span<const double> cur_sorted) {
  KEEL_RETURN_IF_ERROR(CheckSorted(ref_sorted, "reference"));
  KEEL_RETURN_IF_ERROR(CheckSorted(cur_sorted, "current"));
  KsResult ks;
  MergeSorted<false>(ref_sorted, cur_sorted, &ks, nullptr);
  return ks;
}

Result<double> WassersteinDistance(std::span<const double> ref_sorted,
                                   std::span<const double> cur_sorted) {
  KEEL_ASSIGN_OR_RETURN(SortedComparison c, CompareSorted(ref_sorted, cur_sorted));
  return c.wasserstein;
}

Result<SortedComparison> CompareSorted(std::span<const double> ref_sorted,
                                       std::span<const double> cur_sorted) {
  KEEL_RETURN_IF_ERROR(CheckSorted(ref_sorted, "reference"));
  KEEL_RETURN_IF_ERROR(CheckSorted(cur_sorted, "current"));
  SortedComparison out;
  MergeSorted<true>(ref_sorted, cur_sorted, &out.ks, &out.wasserstein);
  return out;
}

double PopulationStd(std::span<const double> values) {
  if (values.empty()) return kNaN;
  const double n = static_cast<double>(values.size());
  const double mean = NumpySum(values) / n;
  std::vector<double> sq(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const double x = values[i] - mean;
    sq[i] = x * x;
  }
  return std::sqrt(NumpySum(sq) / n);
}

Result<double> WassersteinNormalized(std::span<const double> ref_sorted,
                                     std::span<const double> cur_sorted) {
  KEEL_ASSIGN_OR_RETURN(double wd, WassersteinDistance(ref_sorted, cur_sorted));
  return wd / std::max(PopulationStd(ref_sorted), 0.001);
}

// ---------------------------------------------------------------- histogram distances

Result<double> Psi(std::span<const double> ref_shares, std::span<const double> cur_shares) {
  KEEL_RETURN_IF_ERROR(CheckShares(ref_shares, cur_shares));
  const std::vector<double> r = FillEmptyShares(ref_shares);
  const std::vector<double> c = FillEmptyShares(cur_shares);
  std::vector<double> terms(r.size());
  for (size_t i = 0; i < r.size(); ++i) terms[i] = (r[i] - c[i]) * std::log(r[i] / c[i]);
  return NumpySum(terms);
}

Result<double> JensenShannonDistance(std::span<const double> p_in, std::span<const double> q_in) {
  KEEL_RETURN_IF_ERROR(CheckShares(p_in, q_in));
  const std::vector<double> p = Normalized(p_in);
  const std::vector<double> q = Normalized(q_in);
  std::vector<double> left(p.size()), right(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const double m = (p[i] + q[i]) / 2.0;
    left[i] = RelEntr(p[i], m);
    right[i] = RelEntr(q[i], m);
  }
  const double js = NumpySum(left) + NumpySum(right);
  return std::sqrt(js / 2.0);
}

Result<double> HellingerDistance(std::span<const double> p_in, std::span<const double> q_in) {
  KEEL_RETURN_IF_ERROR(CheckShares(p_in, q_in));
  const std::vector<double> p = Normalized(p_in);
  const std::vector<double> q = Normalized(q_in);
  std::vector<double> terms(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const double d = std::sqrt(p[i]) - std::sqrt(q[i]);
    terms[i] = d * d;
  }
  return std::sqrt(NumpySum(terms)) / std::sqrt(2.0);
}

// ---------------------------------------------------------------- categorical tests

Result<ChiSquareResult> ChiSquareContingency(std::span<const uint64_t> ref_counts,
                                             std::span<const uint64_t> cur_counts) {
  if (ref_counts.size() != cur_counts.size()) {
    return InvalidArgument("reference and current counts differ in length");
  }
  std::vector<double> obs_ref, obs_cur;
  uint64_t ref_total = 0, cur_total = 0;
  for (size_t i = 0; i < ref_counts.size(); ++i) {
    if (ref_counts[i] + cur_counts[i] == 0) continue;  // empty on both sides: dropped
    obs_ref.push_back(static_cast<double>(ref_counts[i]));
    obs_cur.push_back(static_cast<double>(cur_counts[i]));
    ref_total += ref_counts[i];
    cur_total += cur_counts[i];
  }
  if (ref_total == 0) return InvalidArgument("reference has no non-missing values");
  if (cur_total == 0) return InvalidArgument("current has no non-missing values");
  const size_t k = obs_ref.size();
  ChiSquareResult out;
  out.dof = static_cast<int64_t>(k) - 1;
  if (out.dof == 0) {
    out.statistic = 0.0;
    out.p_value = 1.0;
    return out;
  }
  // scipy.stats.contingency.expected_freq: row_sum * col_sum / total.
  const double total = static_cast<double>(ref_total + cur_total);
  const double row[2] = {static_cast<double>(ref_total), static_cast<double>(cur_total)};
  std::vector<double> terms;
  terms.reserve(2 * k);
  for (int r = 0; r < 2; ++r) {
    const std::vector<double>& obs = r == 0 ? obs_ref : obs_cur;
    for (size_t c = 0; c < k; ++c) {
      const double col = obs_ref[c] + obs_cur[c];
      const double expected = row[r] * col / total;
      double o = obs[c];
      if (out.dof == 1) {  // Yates' continuity correction
        const double diff = expected - o;
        const double direction = diff > 0 ? 1.0 : (diff < 0 ? -1.0 : 0.0);
        o = o + std::min(0.5, std::fabs(diff)) * direction;
      }
      const double dev = o - expected;
      terms.push_back(dev * dev / expected);
    }
  }
  out.statistic = NumpySum(terms);
  out.p_value = internal::ChiSquareSf(out.statistic, static_cast<double>(out.dof));
  return out;
}

Result<ChiSquareResult> ChiSquareContingency(const CategoryCounts& ref, const CategoryCounts& cur) {
  const AlignedCounts a = AlignCategories(ref, cur);
  return ChiSquareContingency(a.ref, a.cur);
}

Result<ZTestResult> TwoProportionZTest(uint64_t ref_hits, uint64_t ref_n, uint64_t cur_hits,
                                       uint64_t cur_n) {
  if (ref_n == 0) return InvalidArgument("reference has no non-missing values");
  if (cur_n == 0) return InvalidArgument("current has no non-missing values");
  if (ref_hits > ref_n || cur_hits > cur_n) return InvalidArgument("more hits than rows");
  const double n1 = static_cast<double>(ref_n), n2 = static_cast<double>(cur_n);
  const double p1 = static_cast<double>(ref_hits) / n1;
  const double p2 = static_cast<double>(cur_hits) / n2;
  const double pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
  const double var = pooled * (1 - pooled) * (1. / n1 + 1. / n2);
  ZTestResult out;
  if (!(var > 0)) return out;  // both samples one and the same value
  out.statistic = (p1 - p2) / std::sqrt(var);
  out.p_value = std::erfc(std::fabs(out.statistic) / std::numbers::sqrt2);
  return out;
}

Result<ZTestResult> TwoProportionZTest(const CategoryCounts& ref, const CategoryCounts& cur) {
  const AlignedCounts a = AlignCategories(ref, cur);
  if (a.labels.size() > 2) {
    return InvalidArgument("the z-test compares two categories; found " +
                           std::to_string(a.labels.size()));
  }
  uint64_t ref_n = 0, cur_n = 0;
  for (size_t i = 0; i < a.labels.size(); ++i) {
    ref_n += a.ref[i];
    cur_n += a.cur[i];
  }
  if (ref_n == 0) return InvalidArgument("reference has no non-missing values");
  if (cur_n == 0) return InvalidArgument("current has no non-missing values");
  KEEL_ASSIGN_OR_RETURN(ZTestResult out, TwoProportionZTest(a.ref[0], ref_n, a.cur[0], cur_n));
  out.category = a.labels[0];
  return out;
}

MissingShift MissingShareChange(uint64_t ref_missing, uint64_t ref_rows, uint64_t cur_missing,
                                uint64_t cur_rows) {
  MissingShift out;
  out.ref_share =
      ref_rows == 0 ? kNaN : static_cast<double>(ref_missing) / static_cast<double>(ref_rows);
  out.cur_share =
      cur_rows == 0 ? kNaN : static_cast<double>(cur_missing) / static_cast<double>(cur_rows);
  out.change = out.cur_share - out.ref_share;
  return out;
}

UnseenCategories FindUnseenCategories(const CategoryCounts& ref, const CategoryCounts& cur) {
  UnseenCategories out;
  uint64_t total = 0;
  for (const auto& [name, n] : cur) {
    total += n;
    if (n == 0) continue;
    auto it = ref.find(name);
    if (it == ref.end() || it->second == 0) {
      out.names.push_back(name);
      out.rows += n;
    }
  }
  out.share = total == 0 ? 0.0 : static_cast<double>(out.rows) / static_cast<double>(total);
  return out;
}

}  // namespace keel::monitor
