// Drift statistics (keel/monitor/stats.h) against numpy/scipy reference values:
//   tests/data/monitor/drift_expected.json  the drift peer's expected.json (verbatim
//                                           copy, see tests/data/monitor/README.md):
//                                           100k-row prefixes of 20 numeric and 2
//                                           categorical streams rebuilt here bit for bit
//   tests/data/monitor/golden.json          make_golden.py (scipy 1.10.1): exact and
//                                           asymptotic KS, kstwo/smirnov/chi2 grids,
//                                           chi2_contingency tables, Hellinger, z-test
// The largest relative error per group is printed at the end of the run.
// This file must be compiled with -ffp-contract=off (CMakeLists.txt sets it):
// the stream recipe's x = base * sigma + mu is two roundings, not one FMA.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "keel/data/table.h"
#include "keel/monitor/drift.h"
#include "keel/monitor/stats.h"
#include "src/monitor/distributions.h"
#include "test_util.h"

namespace keel::monitor {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------- fixtures

const json& Expected() {
  static const json doc = [] {
    std::ifstream in(KEEL_SOURCE_DIR "/tests/data/monitor/drift_expected.json");
    return json::parse(in);
  }();
  return doc;
}

const json& Golden() {
  static const json doc = [] {
    std::ifstream in(KEEL_SOURCE_DIR "/tests/data/monitor/golden.json");
    return json::parse(in);
  }();
  return doc;
}

std::vector<double> Doubles(const json& a) {
  std::vector<double> out;
  for (const auto& v : a) out.push_back(v.get<double>());
  return out;
}

std::vector<double> Sorted(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Largest relative error seen per group, printed when the run ends.
std::map<std::string, double>& MaxErrors() {
  static std::map<std::string, double> m;
  return m;
}

class ReportErrors : public ::testing::Environment {
 public:
  void TearDown() override {
    std::printf("[ max relative error per group ]\n");
    for (const auto& [group, err] : MaxErrors()) {
      std::printf("  %-34s %.3g\n", group.c_str(), err);
    }
  }
};
const auto* const kReport = ::testing::AddGlobalTestEnvironment(new ReportErrors);

// |actual - expected| <= tol * |expected|. Below 1e-300 (underflow to 0 or
// subnormal, where neither side keeps relative precision) both must be there.
void ExpectRel(double actual, double expected, double tol, const std::string& group,
               const std::string& what) {
  if (std::fabs(expected) < 1e-300) {
    EXPECT_LT(std::fabs(actual), 1e-300)
        << group << " " << what << ": actual " << actual << " expected " << expected;
    MaxErrors()[group] = std::max(MaxErrors()[group], 0.0);
    return;
  }
  const double rel = std::fabs(actual - expected) / std::fabs(expected);
  EXPECT_LE(rel, tol) << group << " " << what << ": actual " << actual << " expected " << expected;
  MaxErrors()[group] = std::max(MaxErrors()[group], rel);
}

// ---------------------------------------------------------------- the peer's streams

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;

uint64_t SplitMix(uint64_t seed, uint64_t k) {  // output k of the generator started at seed
  uint64_t z = seed + (k + 1) * kGamma;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t SeedOf(int dataset, int stream) {
  return 20260101ull + 65536ull * static_cast<uint64_t>(dataset) + static_cast<uint64_t>(stream);
}

std::vector<double> NumericFeature(int dataset, int j, size_t n) {
  const json& f = Expected()["recipe"]["features"][j];
  const std::string kind = f["kind"];
  const json& p = dataset == 0 ? f["ref_mu_sigma"] : f["cur_mu_sigma"];
  const double mu = p[0], sigma = p[1];
  const uint64_t seed = SeedOf(dataset, j);
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t a = SplitMix(seed, 2 * i), b = SplitMix(seed, 2 * i + 1);
    double base;
    if (kind == "uniform") {
      base = static_cast<double>(a >> 32) * 0x1p-32;
    } else {
      const uint64_t s = (a >> 32) + (a & 0xFFFFFFFFull) + (b >> 32) + (b & 0xFFFFFFFFull);
      const double scaled = static_cast<double>(s) * 0x1p-32;
      const double centred = scaled - 2.0;
      const double z = centred * 1.7320508075688772;
      if (kind == "normal") {
        base = z;
      } else if (kind == "square") {
        base = z * z;
      } else {
        base = std::floor(z * 4.0);
      }
    }
    const double t = base * sigma;
    out[i] = t + mu;
  }
  return out;
}

std::vector<int> CategoricalFeature(int dataset, int c, size_t n) {
  const json& w = dataset == 0 ? Expected()["recipe"]["categorical_weights_ref"]
                               : Expected()["recipe"]["categorical_weights_cur"][c];
  std::vector<uint64_t> cum;
  uint64_t total = 0;
  for (const auto& v : w) cum.push_back(total += v.get<uint64_t>());
  const uint64_t seed = SeedOf(dataset, 100 + c);
  std::vector<int> out(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t r = ((SplitMix(seed, i) >> 32) * total) >> 32;
    out[i] = static_cast<int>(std::upper_bound(cum.begin(), cum.end(), r) - cum.begin());
  }
  return out;
}

std::string CategoryName(int k) {  // zero-padded so bytewise order is numeric order
  char buf[8];
  std::snprintf(buf, sizeof(buf), "c%02d", k);
  return buf;
}

CategoricalSample CategoricalSampleOf(const std::vector<int>& values) {
  CategoricalSample s;
  for (int v : values) s.Add(CategoryName(v));
  return s;
}

// Exact sum of doubles (compensated in long double; enough to compare with math.fsum).
double AccurateSum(const std::vector<double>& v) {
  long double s = 0, c = 0;
  for (double x : v) {
    const long double t = s + x;
    c += std::fabs(s) >= std::fabs(static_cast<long double>(x)) ? (s - t) + x : (x - t) + s;
    s = t;
  }
  return static_cast<double>(s + c);
}

// ---------------------------------------------------------------- the peer's values

TEST(MonitorStreamsTest, GeneratorRebuildsThePeerInputsBitForBit) {
  const json& hex = Expected()["recipe"]["splitmix64_first3_seed_20260101_hex"];
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(SplitMix(20260101ull, k), std::stoull(hex[k].get<std::string>(), nullptr, 16));
  }
  const json& check = Expected()["prefix_check"];
  const size_t rows = check["rows"];
  for (int j = 0; j < 20; ++j) {
    for (int dataset = 0; dataset < 2; ++dataset) {
      const std::vector<double> x = NumericFeature(dataset, j, rows);
      const json& d = check["numeric"][j][dataset == 0 ? "ref" : "cur"];
      EXPECT_EQ(*std::min_element(x.begin(), x.end()), d["min"].get<double>()) << j;
      EXPECT_EQ(*std::max_element(x.begin(), x.end()), d["max"].get<double>()) << j;
      for (int i = 0; i < 3; ++i) EXPECT_EQ(x[i], d["first3"][i].get<double>()) << j;
      const double fsum = d["fsum"];
      EXPECT_NEAR(AccurateSum(x), fsum, 1e-9 * (1 + std::fabs(fsum))) << j;
    }
  }
  for (int c = 0; c < 2; ++c) {
    const json& cat = check["categorical"][c];
    for (int dataset = 0; dataset < 2; ++dataset) {
      std::vector<uint64_t> counts(50, 0);
      for (int v : CategoricalFeature(dataset, c, rows)) ++counts[v];
      const json& want = cat[dataset == 0 ? "ref_counts" : "cur_counts"];
      for (int k = 0; k < 50; ++k) EXPECT_EQ(counts[k], want[k].get<uint64_t>()) << c << " " << k;
    }
  }
}

// Every numeric statistic on one feature of a prefix (or full) check block.
void CheckNumericFeature(const json& want, const json* golden, const std::vector<double>& ref,
                         const std::vector<double>& cur, const std::string& scope) {
  const std::vector<double> rs = Sorted(ref), cs = Sorted(cur);
  ASSERT_OK_AND_ASSIGN(KsResult ks, KolmogorovSmirnov(rs, cs));
  EXPECT_FALSE(ks.exact);
  EXPECT_EQ(ks.statistic, want["ks_stat"].get<double>()) << scope;  // same arithmetic: exact
  ExpectRel(ks.p_value, want["ks_pvalue"], 1e-9, "ks p (asymptotic, peer)", scope);

  ASSERT_OK_AND_ASSIGN(QuantileBins bins, FitQuantileBins(rs, 10));
  EXPECT_EQ(bins.edges, Doubles(want["psi_q10_edges"])) << scope;
  const std::vector<double> cur_shares = Shares(CountInBins(bins.edges, cur));
  EXPECT_EQ(cur_shares, Doubles(want["psi_q10_cur_shares"])) << scope;
  ASSERT_OK_AND_ASSIGN(double psi, Psi(bins.ref_shares, cur_shares));
  ExpectRel(psi, want["psi_q10"], 1e-12, "psi q10 (peer)", scope);

  ASSERT_OK_AND_ASSIGN(AlignedCounts ev, EvidentlyBins(rs, cs));
  EXPECT_EQ(ev.ref.size(), want["psi_evidently_nbins"].get<size_t>()) << scope;
  ASSERT_OK_AND_ASSIGN(double psi_ev, Psi(Shares(ev.ref), Shares(ev.cur)));
  ExpectRel(psi_ev, want["psi_evidently"], 1e-12, "psi evidently bins (peer)", scope);
  ASSERT_OK_AND_ASSIGN(double js_ev, JensenShannonDistance(Shares(ev.ref), Shares(ev.cur)));
  ExpectRel(js_ev, want["js_evidently"], 1e-12, "jensenshannon evidently bins (peer)", scope);

  ASSERT_OK_AND_ASSIGN(double wd, WassersteinDistance(rs, cs));
  ExpectRel(wd, want["wasserstein"], 1e-12, "wasserstein (peer)", scope);
  ASSERT_OK_AND_ASSIGN(double wdn, WassersteinNormalized(rs, cs));
  ExpectRel(wdn, want["wasserstein_norm_evidently"], 1e-12, "wasserstein norm (peer)", scope);
  ExpectRel(PopulationStd(rs), want["ref_std_ddof0"], 1e-12, "std ddof0 (peer)", scope);

  if (golden != nullptr) {
    std::vector<double> ref_q10 = bins.ref_shares;
    ASSERT_OK_AND_ASSIGN(double h, HellingerDistance(ref_q10, cur_shares));
    ExpectRel(h, (*golden)["hellinger_q10"], 1e-12, "hellinger q10 (golden)", scope);
    ASSERT_OK_AND_ASSIGN(double js, JensenShannonDistance(ref_q10, cur_shares));
    ExpectRel(js, (*golden)["jensenshannon_q10"], 1e-12, "jensenshannon q10 (golden)", scope);
    ASSERT_OK_AND_ASSIGN(double hev, HellingerDistance(Shares(ev.ref), Shares(ev.cur)));
    ExpectRel(hev, (*golden)["hellinger_evidently"], 1e-12, "hellinger evidently bins (golden)",
              scope);
  }
}

void CheckCategoricalFeature(const json& want, const json* golden, const CategoricalSample& ref,
                             const CategoricalSample& cur, const std::string& scope) {
  ASSERT_OK_AND_ASSIGN(ChiSquareResult chi, ChiSquareContingency(ref.counts, cur.counts));
  ExpectRel(chi.statistic, want["chi2_contingency_stat"], 1e-12, "chi2 contingency stat (peer)",
            scope);
  ExpectRel(chi.p_value, want["chi2_contingency_p"], 1e-9, "chi2 contingency p (peer)", scope);
  EXPECT_EQ(chi.dof, want["chi2_contingency_dof"].get<int64_t>());
  const AlignedCounts a = AlignCategories(ref.counts, cur.counts);
  ASSERT_OK_AND_ASSIGN(double psi, Psi(Shares(a.ref), Shares(a.cur)));
  ExpectRel(psi, want["psi_evidently"], 1e-12, "psi categorical (peer)", scope);
  ASSERT_OK_AND_ASSIGN(double js, JensenShannonDistance(Shares(a.ref), Shares(a.cur)));
  ExpectRel(js, want["js_evidently"], 1e-12, "jensenshannon categorical (peer)", scope);
  if (golden != nullptr) {
    ASSERT_OK_AND_ASSIGN(double h, HellingerDistance(Shares(a.ref), Shares(a.cur)));
    ExpectRel(h, (*golden)["hellinger"], 1e-12, "hellinger categorical (golden)", scope);
    ASSERT_OK_AND_ASSIGN(ZTestResult z, TwoProportionZTest(a.ref[0], ref.non_missing(), a.cur[0],
                                                           cur.non_missing()));
    ExpectRel(z.statistic, (*golden)["ztest_first_category_z"], 1e-12, "ztest z (golden)", scope);
    ExpectRel(z.p_value, (*golden)["ztest_first_category_p"], 1e-9, "ztest p (golden)", scope);
  }
}

TEST(MonitorStatsPeerTest, PrefixNumericFeatures) {
  const json& check = Expected()["prefix_check"];
  const json& golden = Golden()["prefix_histograms"];
  const size_t rows = check["rows"];
  ASSERT_EQ(golden["rows"].get<size_t>(), rows);
  for (int j = 0; j < 20; ++j) {
    CheckNumericFeature(check["numeric"][j], &golden["numeric"][j], NumericFeature(0, j, rows),
                        NumericFeature(1, j, rows), "prefix f" + std::to_string(j));
  }
}

TEST(MonitorStatsPeerTest, PrefixCategoricalFeatures) {
  const json& check = Expected()["prefix_check"];
  const json& golden = Golden()["prefix_histograms"];
  const size_t rows = check["rows"];
  for (int c = 0; c < 2; ++c) {
    CheckCategoricalFeature(check["categorical"][c], &golden["categorical"][c],
                            CategoricalSampleOf(CategoricalFeature(0, c, rows)),
                            CategoricalSampleOf(CategoricalFeature(1, c, rows)),
                            "prefix cat" + std::to_string(c));
  }
}

// Evidently's preset on the peer's prefix: every column has > 1000 reference
// rows and > 5 values, so Wasserstein (normed) for numeric and Jensen-Shannon
// for categorical columns; the verdicts follow from the peer's values.
TEST(MonitorStatsPeerTest, EvidentlyPresetOnPrefix) {
  const json& check = Expected()["prefix_check"];
  const size_t rows = check["rows"];
  std::vector<ColumnDrift> drifts;
  for (int j = 0; j < 20; ++j) {
    const NumericSample ref = NumericSample::FromValues(NumericFeature(0, j, rows));
    const NumericSample cur = NumericSample::FromValues(NumericFeature(1, j, rows));
    const ColumnData data = NumericColumn(ref, cur);
    ASSERT_OK_AND_ASSIGN(TestChoice choice, ChooseTest("evidently", Summarize(data)));
    ASSERT_EQ(choice.statistic->name, "wasserstein_norm") << j;
    EXPECT_EQ(choice.threshold, 0.1);
    ASSERT_OK_AND_ASSIGN(ColumnDrift d, EvaluateColumn(data, choice));
    const double want = check["numeric"][j]["wasserstein_norm_evidently"];
    ExpectRel(d.value.score, want, 1e-12, "wasserstein norm (peer)",
              "preset f" + std::to_string(j));
    EXPECT_EQ(d.drift, want >= 0.1) << j;
    drifts.push_back(d);
  }
  for (int c = 0; c < 2; ++c) {
    const CategoricalSample ref = CategoricalSampleOf(CategoricalFeature(0, c, rows));
    const CategoricalSample cur = CategoricalSampleOf(CategoricalFeature(1, c, rows));
    const ColumnData data = CategoricalColumn(ref, cur);
    ASSERT_OK_AND_ASSIGN(TestChoice choice, ChooseTest("evidently", Summarize(data)));
    ASSERT_EQ(choice.statistic->name, "jensenshannon");
    ASSERT_OK_AND_ASSIGN(ColumnDrift d, EvaluateColumn(data, choice));
    const double want = check["categorical"][c]["js_evidently"];
    ExpectRel(d.value.score, want, 1e-12, "jensenshannon categorical (peer)", "preset");
    EXPECT_EQ(d.drift, want >= 0.1);
    EXPECT_TRUE(d.unseen.names.empty());
    drifts.push_back(d);
  }
  ASSERT_OK_AND_ASSIGN(DatasetDrift verdict, DatasetVerdict("evidently", drifts));
  uint64_t want_drifted = 0;
  for (int j = 0; j < 20; ++j) {
    want_drifted += check["numeric"][j]["wasserstein_norm_evidently"].get<double>() >= 0.1;
  }
  for (int c = 0; c < 2; ++c)
    want_drifted += check["categorical"][c]["js_evidently"].get<double>() >= 0.1;
  EXPECT_EQ(verdict.columns, 22u);
  EXPECT_EQ(verdict.drifted, want_drifted);
  EXPECT_EQ(verdict.drift, static_cast<double>(want_drifted) / 22 >= 0.5);
}

// keel's preset on the same columns: PSI >= 0.2 (and chi-square is not chosen:
// every reference has 100k rows); only the two large shifts drift.
TEST(MonitorStatsPeerTest, KeelPresetOnPrefix) {
  const json& check = Expected()["prefix_check"];
  const size_t rows = check["rows"];
  std::vector<ColumnDrift> drifts;
  std::vector<int> drifted;
  for (int j = 0; j < 20; ++j) {
    const NumericSample ref = NumericSample::FromValues(NumericFeature(0, j, rows));
    const NumericSample cur = NumericSample::FromValues(NumericFeature(1, j, rows));
    const ColumnData data = NumericColumn(ref, cur);
    ASSERT_OK_AND_ASSIGN(TestChoice choice, ChooseTest("keel", Summarize(data)));
    ASSERT_EQ(choice.statistic->name, "psi");
    ASSERT_OK_AND_ASSIGN(ColumnDrift d, EvaluateColumn(data, choice));
    ExpectRel(d.value.score, check["numeric"][j]["psi_q10"], 1e-12, "psi q10 (peer)", "preset");
    if (d.drift) drifted.push_back(j);
    drifts.push_back(d);
  }
  for (int c = 0; c < 2; ++c) {
    const CategoricalSample ref = CategoricalSampleOf(CategoricalFeature(0, c, rows));
    const CategoricalSample cur = CategoricalSampleOf(CategoricalFeature(1, c, rows));
    ASSERT_OK_AND_ASSIGN(TestChoice choice,
                         ChooseTest("keel", Summarize(CategoricalColumn(ref, cur))));
    ASSERT_EQ(choice.statistic->name, "psi");
    ASSERT_OK_AND_ASSIGN(ColumnDrift d, EvaluateColumn(CategoricalColumn(ref, cur), choice));
    ExpectRel(d.value.score, check["categorical"][c]["psi_evidently"], 1e-12,
              "psi categorical (peer)", "preset");
    EXPECT_FALSE(d.drift);
    drifts.push_back(d);
  }
  EXPECT_EQ(drifted, (std::vector<int>{8, 13}));  // mean +1 sd; uniform shifted past the range
  ASSERT_OK_AND_ASSIGN(DatasetDrift verdict, DatasetVerdict("keel", drifts));
  EXPECT_EQ(verdict.drifted, 2u);
  EXPECT_FALSE(verdict.drift);
}

// CompareTables (keel/monitor/drift.h) on tables of the peer's streams gives
// the peer's numbers: the deciding test (KS), the extra statistics, and the
// chi-square contingency test on the categoricals.
TEST(MonitorStatsPeerTest, CompareTablesOnPrefix) {
  const json& check = Expected()["prefix_check"];
  const size_t rows = check["rows"];
  data::Table tables[2];
  for (int dataset = 0; dataset < 2; ++dataset) {
    for (int j = 0; j < 20; ++j) {
      ASSERT_OK(tables[dataset].AddColumn(
          data::Column::Numeric("f" + std::to_string(j), NumericFeature(dataset, j, rows))));
    }
    for (int c = 0; c < 2; ++c) {
      std::vector<std::string> text;
      for (int v : CategoricalFeature(dataset, c, rows)) text.push_back(CategoryName(v));
      ASSERT_OK(tables[dataset].AddColumn(
          data::Column::CategoricalFromText("cat" + std::to_string(c), text)));
    }
  }
  DriftOptions options;
  options.tests = {{"ks"}, {"chisquare"}};
  options.extra = {"psi", "wasserstein", "wasserstein_norm"};
  ASSERT_OK_AND_ASSIGN(DriftReport report, CompareTables(tables[0], tables[1], options));
  ASSERT_EQ(report.columns.size(), 22u);
  auto extra = [](const ColumnReport& c, std::string_view name) -> const StatValue& {
    for (const ExtraStatistic& e : c.extra) {
      if (e.name == name) return e.value;
    }
    ADD_FAILURE() << c.name << " has no " << name;
    static const StatValue none;
    return none;
  };
  for (int j = 0; j < 20; ++j) {
    const ColumnReport& c = report.columns[static_cast<size_t>(j)];
    const json& want = check["numeric"][j];
    ASSERT_TRUE(c.error.empty()) << c.error;
    EXPECT_EQ(c.name, "f" + std::to_string(j));
    EXPECT_EQ(c.drift.statistic, "ks");
    ExpectRel(c.drift.value.statistic, want["ks_stat"], 0, "ks (compare)", c.name);
    ExpectRel(c.drift.value.score, want["ks_pvalue"], 1e-9, "ks p (compare)", c.name);
    EXPECT_EQ(c.drift.drift, want["ks_pvalue"].get<double>() < 0.05) << c.name;
    ExpectRel(extra(c, "psi").score, want["psi_q10"], 1e-12, "psi q10 (compare)", c.name);
    ExpectRel(extra(c, "wasserstein").score, want["wasserstein"], 1e-9, "wasserstein (compare)",
              c.name);
    ExpectRel(extra(c, "wasserstein_norm").score, want["wasserstein_norm_evidently"], 1e-9,
              "wasserstein norm (compare)", c.name);
    // The histogram holds every non-missing value once.
    EXPECT_EQ(std::accumulate(c.histogram.ref.begin(), c.histogram.ref.end(), uint64_t{0}), rows);
    EXPECT_EQ(std::accumulate(c.histogram.cur.begin(), c.histogram.cur.end(), uint64_t{0}), rows);
  }
  for (int k = 0; k < 2; ++k) {
    const ColumnReport& c = report.columns[static_cast<size_t>(20 + k)];
    const json& want = check["categorical"][k];
    EXPECT_EQ(c.kind, ColumnKind::kCategorical);
    // KS does not take categorical columns: chi-square decides there.
    EXPECT_EQ(c.drift.statistic, "chisquare");
    ExpectRel(c.drift.value.statistic, want["chi2_contingency_stat"], 1e-12,
              "chi2 contingency (compare)", c.name);
    ExpectRel(c.drift.value.score, want["chi2_contingency_p"], 1e-9, "chi2 contingency p (compare)",
              c.name);
    ExpectRel(extra(c, "psi").score, want["psi_evidently"], 1e-12, "psi categorical (compare)",
              c.name);
  }
  uint64_t drifted = 0;
  for (int j = 0; j < 20; ++j) drifted += check["numeric"][j]["ks_pvalue"].get<double>() < 0.05;
  for (int k = 0; k < 2; ++k) {
    const bool want = check["categorical"][k]["chi2_contingency_p"].get<double>() < 0.05;
    EXPECT_EQ(report.columns[static_cast<size_t>(20 + k)].drift.drift, want);
    drifted += want;
  }
  EXPECT_EQ(report.dataset.columns, 22u);
  EXPECT_EQ(report.dataset.drifted, drifted);
}

// The full 1M-row block (a few seconds per feature): run with
// --gtest_also_run_disabled_tests.
TEST(MonitorStatsPeerTest, DISABLED_FullMillionRows) {
  const json& full = Expected()["full"];
  const size_t rows = full["rows"];
  std::vector<bool> drift;
  for (int j = 0; j < 20; ++j) {
    const std::vector<double> ref = NumericFeature(0, j, rows), cur = NumericFeature(1, j, rows);
    CheckNumericFeature(full["numeric"][j], nullptr, ref, cur, "full f" + std::to_string(j));
    const NumericSample r = NumericSample::FromValues(ref), c = NumericSample::FromValues(cur);
    const ColumnData data = NumericColumn(r, c);
    ASSERT_OK_AND_ASSIGN(TestChoice choice, ChooseTest("evidently", Summarize(data)));
    EXPECT_EQ(choice.statistic->name, full["numeric"][j]["evidently_auto_test"] == "wasserstein"
                                          ? "wasserstein_norm"
                                          : "jensenshannon");
    ASSERT_OK_AND_ASSIGN(ColumnDrift d, EvaluateColumn(data, choice));
    EXPECT_EQ(d.drift, full["numeric"][j]["evidently_drift"].get<bool>()) << j;
    drift.push_back(d.drift);
  }
  for (int c = 0; c < 2; ++c) {
    const CategoricalSample r = CategoricalSampleOf(CategoricalFeature(0, c, rows));
    const CategoricalSample cu = CategoricalSampleOf(CategoricalFeature(1, c, rows));
    CheckCategoricalFeature(full["categorical"][c], nullptr, r, cu, "full cat" + std::to_string(c));
    ASSERT_OK_AND_ASSIGN(TestChoice choice,
                         ChooseTest("evidently", Summarize(CategoricalColumn(r, cu))));
    ASSERT_OK_AND_ASSIGN(ColumnDrift d, EvaluateColumn(CategoricalColumn(r, cu), choice));
    EXPECT_EQ(d.drift, full["categorical"][c]["evidently_drift"].get<bool>()) << c;
    drift.push_back(d.drift);
  }
  bool flags[22];
  std::copy(drift.begin(), drift.end(), flags);
  const DatasetDrift v = DatasetVerdict(0.5, flags);
  const json& want = full["evidently_dataset_drift"];
  EXPECT_EQ(v.drifted, want["drifted_columns"].get<uint64_t>());
  EXPECT_EQ(v.share, want["share"].get<double>());
  EXPECT_EQ(v.drift, want["dataset_drift"].get<bool>());
}

// ---------------------------------------------------------------- golden values

TEST(MonitorStatsGoldenTest, KsLiteralSmallSamples) {
  int exact = 0;
  for (const json& c : Golden()["ks_literal"]) {
    const std::string name = c["name"];
    ASSERT_OK_AND_ASSIGN(KsResult r,
                         KolmogorovSmirnov(Sorted(Doubles(c["ref"])), Sorted(Doubles(c["cur"]))));
    EXPECT_EQ(r.statistic, c["statistic"].get<double>()) << name;
    EXPECT_EQ(r.location, c["location"].get<double>()) << name;
    EXPECT_EQ(r.sign, c["sign"].get<int>()) << name;
    EXPECT_EQ(r.exact, c["method"] == "exact") << name;
    exact += r.exact;
    ExpectRel(r.p_value, c["pvalue"], 1e-12, "ks p (exact, literal)", name);
  }
  EXPECT_GE(exact, 40);
}

TEST(MonitorStatsGoldenTest, KsStreamPrefixes) {
  for (const json& c : Golden()["ks_streams"]) {
    const int j = c["feature"];
    const size_t n1 = c["n_ref"], n2 = c["n_cur"];
    const std::string name =
        "f" + std::to_string(j) + " " + std::to_string(n1) + "x" + std::to_string(n2);
    ASSERT_OK_AND_ASSIGN(KsResult r, KolmogorovSmirnov(Sorted(NumericFeature(0, j, n1)),
                                                       Sorted(NumericFeature(1, j, n2))));
    EXPECT_EQ(r.statistic, c["statistic"].get<double>()) << name;
    EXPECT_EQ(r.location, c["location"].get<double>()) << name;
    EXPECT_EQ(r.sign, c["sign"].get<int>()) << name;
    EXPECT_EQ(r.exact, c["method"] == "exact") << name;
    ExpectRel(r.p_value, c["pvalue"], 1e-9,
              r.exact ? "ks p (exact, streams)" : "ks p (asymptotic, streams)", name);
  }
}

TEST(MonitorStatsGoldenTest, KolmogorovDistributionGrid) {
  for (const json& c : Golden()["kstwo_sf"]) {
    const int64_t n = c["n"];
    const double d = c["d"];
    ExpectRel(internal::KolmogorovSf(n, d), c["sf"], 1e-9, "kstwo.sf grid",
              "n=" + std::to_string(n) + " d=" + std::to_string(d));
  }
  for (const json& c : Golden()["smirnov_sf"]) {
    const int64_t n = c["n"];
    const double d = c["d"];
    ExpectRel(internal::SmirnovSf(n, d), c["sf"], 1e-9, "smirnov grid",
              "n=" + std::to_string(n) + " d=" + std::to_string(d));
  }
}

// Where scipy's own error shows (~1e-12), keel is held to 50-digit mpmath values.
TEST(MonitorStatsGoldenTest, HighPrecisionReferences) {
  for (const json& c : Golden()["mpmath"]["kstwo_sf"]) {
    ExpectRel(internal::KolmogorovSf(c["n"], c["d"]), c["sf"], 1e-13, "kstwo.sf (mpmath)",
              c.dump());
  }
  for (const json& c : Golden()["mpmath"]["chi2_sf"]) {
    ExpectRel(internal::ChiSquareSf(c["x"], c["df"]), c["sf"], 1e-13, "chi2.sf (mpmath)", c.dump());
  }
}

TEST(MonitorStatsGoldenTest, IncompleteGammaIdentities) {
  // P(1, x) = 1 - e^-x, Q(1, x) = e^-x; P + Q = 1 on both sides of x = a + 1.
  for (double x : {0.01, 0.5, 1.0, 2.0, 5.0, 30.0}) {
    ExpectRel(internal::RegularizedGammaQ(1.0, x), std::exp(-x), 1e-14, "gamma identities", "Q");
    ExpectRel(internal::RegularizedGammaP(1.0, x), -std::expm1(-x), 1e-14, "gamma identities", "P");
  }
  for (double a : {0.5, 3.0, 40.0, 2500.0}) {
    for (double x : {0.5 * a, a, a + 0.5, a + 2, 2 * a}) {
      EXPECT_NEAR(internal::RegularizedGammaP(a, x) + internal::RegularizedGammaQ(a, x), 1.0,
                  1e-14);
    }
  }
  EXPECT_TRUE(std::isnan(internal::RegularizedGammaQ(-1.0, 1.0)));
  EXPECT_EQ(internal::ChiSquareSf(0.0, 3.0), 1.0);
}

TEST(MonitorStatsGoldenTest, ChiSquareSurvivalGrid) {
  for (const json& c : Golden()["chi2_sf"]) {
    const double df = c["df"], x = c["x"];
    ExpectRel(internal::ChiSquareSf(x, df), c["sf"], 1e-9, "chi2.sf grid",
              "df=" + std::to_string(df) + " x=" + std::to_string(x));
  }
}

TEST(MonitorStatsGoldenTest, ChiSquareContingencyTables) {
  for (const json& c : Golden()["chi2_contingency"]) {
    const std::string name = c["name"];
    std::vector<uint64_t> ref, cur;
    for (const auto& v : c["ref"]) ref.push_back(v);
    for (const auto& v : c["cur"]) cur.push_back(v);
    ASSERT_OK_AND_ASSIGN(ChiSquareResult r, ChiSquareContingency(ref, cur));
    EXPECT_EQ(r.dof, c["dof"].get<int64_t>()) << name;
    ExpectRel(r.statistic, c["statistic"], 1e-12, "chi2 contingency stat (golden)", name);
    ExpectRel(r.p_value, c["pvalue"], 1e-9, "chi2 contingency p (golden)", name);
  }
}

TEST(MonitorStatsGoldenTest, TwoProportionZTest) {
  for (const json& c : Golden()["ztest"]) {
    ASSERT_OK_AND_ASSIGN(ZTestResult r,
                         TwoProportionZTest(c["ref_hits"], c["ref_n"], c["cur_hits"], c["cur_n"]));
    ExpectRel(r.statistic, c["z"], 1e-12, "ztest z (golden)", c.dump());
    ExpectRel(r.p_value, c["pvalue"], 1e-9, "ztest p (golden)", c.dump());
  }
}

TEST(MonitorStatsGoldenTest, WassersteinSmallTiedSamples) {
  for (const json& c : Golden()["wasserstein"]) {
    const std::vector<double> r = Sorted(Doubles(c["ref"])), cu = Sorted(Doubles(c["cur"]));
    ASSERT_OK_AND_ASSIGN(double wd, WassersteinDistance(r, cu));
    ExpectRel(wd, c["wasserstein"], 1e-12, "wasserstein small (golden)", "");
    ASSERT_OK_AND_ASSIGN(double wdn, WassersteinNormalized(r, cu));
    ExpectRel(wdn, c["wasserstein_norm"], 1e-12, "wasserstein small (golden)", "norm");
  }
}

TEST(MonitorStatsGoldenTest, EvidentlyBinsLowCardinality) {
  for (const json& c : Golden()["evidently_low_cardinality"]) {
    const std::vector<double> r = Sorted(Doubles(c["ref"])), cu = Sorted(Doubles(c["cur"]));
    ASSERT_OK_AND_ASSIGN(AlignedCounts a, EvidentlyBins(r, cu));
    EXPECT_EQ(a.labels.size(), c["bins"].get<size_t>());
    ASSERT_OK_AND_ASSIGN(double psi, Psi(Shares(a.ref), Shares(a.cur)));
    ExpectRel(psi, c["psi"], 1e-12, "evidently low cardinality (golden)", "psi");
    ASSERT_OK_AND_ASSIGN(double js, JensenShannonDistance(Shares(a.ref), Shares(a.cur)));
    ExpectRel(js, c["jensenshannon"], 1e-12, "evidently low cardinality (golden)", "js");
    ASSERT_OK_AND_ASSIGN(double h, HellingerDistance(Shares(a.ref), Shares(a.cur)));
    ExpectRel(h, c["hellinger"], 1e-12, "evidently low cardinality (golden)", "hellinger");
  }
}

TEST(MonitorStatsGoldenTest, NumpySumOrder) {
  // np.sum of these 300 values is 1.0000000000000002 in numpy's pairwise order;
  // a left-to-right loop gives a different last bit. Shape: 1, then 299 * 2^-53.
  std::vector<double> v(300, 0x1p-53);
  v[0] = 1.0;
  double naive = 0;
  for (double x : v) naive += x;
  EXPECT_EQ(naive, 1.0);
  EXPECT_GT(internal::NumpySum(v), 1.0);
}

// ---------------------------------------------------------------- edge cases

TEST(MonitorStatsEdgeTest, EmptyInputsAreInvalidArgument) {
  const std::vector<double> some = {1, 2, 3};
  const std::vector<double> none;
  EXPECT_EQ(KolmogorovSmirnov(none, some).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(KolmogorovSmirnov(some, none).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WassersteinDistance(none, some).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WassersteinNormalized(some, none).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FitQuantileBins(none).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(EvidentlyBins(some, none).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Psi(none, none).status().code(), StatusCode::kInvalidArgument);
  const std::vector<double> zeros = {0, 0}, half = {0.5, 0.5};
  EXPECT_EQ(Psi(half, zeros).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(JensenShannonDistance(zeros, half).status().code(), StatusCode::kInvalidArgument);
  const std::vector<double> three = {0.5, 0.25, 0.25};
  EXPECT_EQ(HellingerDistance(half, three).status().code(), StatusCode::kInvalidArgument);
  CategoryCounts empty, one = {{"a", 3}};
  EXPECT_EQ(ChiSquareContingency(empty, one).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ChiSquareContingency(one, empty).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(TwoProportionZTest(one, empty).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(TwoProportionZTest(0, 0, 1, 2).status().code(), StatusCode::kInvalidArgument);

  // A window with only missing values: every statistic refuses, the missing share remains.
  const NumericSample ref = NumericSample::FromValues(some);
  const NumericSample cur = NumericSample::FromValues(std::vector<double>{NAN, NAN});
  for (const DriftStatistic& s : DriftStatistics()) {
    ASSERT_OK_AND_ASSIGN(TestChoice choice, MakeChoice(s.name, 0.5));
    auto r = EvaluateColumn(NumericColumn(ref, cur), choice);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << s.name;
  }
  const MissingShift m = MissingShareChange(ref.missing, ref.rows(), cur.missing, cur.rows());
  EXPECT_EQ(m.ref_share, 0.0);
  EXPECT_EQ(m.cur_share, 1.0);
  EXPECT_EQ(m.change, 1.0);
}

TEST(MonitorStatsEdgeTest, UnsortedOrNonFiniteSortedInputIsRefused) {
  const std::vector<double> ok = {1, 2, 3}, unsorted = {2, 1, 3}, with_nan = {1, NAN, 3};
  EXPECT_EQ(KolmogorovSmirnov(unsorted, ok).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(KolmogorovSmirnov(ok, with_nan).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WassersteinDistance(ok, unsorted).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FitQuantileBins(with_nan).status().code(), StatusCode::kInvalidArgument);
}

// NumericSample sorts with a radix sort above a few thousand values: the
// order must be the comparison sort's, on every sign, magnitude, subnormals,
// signed zeros and duplicates, with non-finite values counted as missing.
TEST(MonitorStatsEdgeTest, RadixSortedSampleEqualsComparisonSort) {
  std::vector<double> values;
  uint64_t state = 12345;
  auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 11;
  };
  for (int k = 0; k < 60000; ++k) {
    const uint64_t r = next();
    switch (r % 8) {
      case 0:
        values.push_back(static_cast<double>(r % 50) - 25.0);
        break;  // ties, both signs
      case 1:
        values.push_back(std::ldexp(static_cast<double>(r), -1100));
        break;  // subnormal
      case 2:
        values.push_back(-std::ldexp(static_cast<double>(r), -40));
        break;
      case 3:
        values.push_back(std::ldexp(static_cast<double>(r), 900));
        break;  // huge
      case 4:
        values.push_back(k % 2 == 0 ? 0.0 : -0.0);
        break;
      case 5:
        values.push_back(k % 3 == 0 ? NAN : (k % 3 == 1 ? INFINITY : -INFINITY));
        break;
      default:
        values.push_back((static_cast<double>(r) / 9007199254740992.0 - 0.5) * 1e3);
    }
  }
  const NumericSample s = NumericSample::FromValues(values);
  std::vector<double> expected;
  for (double v : values) {
    if (std::isfinite(v)) expected.push_back(v);
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(s.missing, values.size() - expected.size());
  ASSERT_EQ(s.sorted.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(s.sorted[i], expected[i]) << "at " << i;
    if (expected[i] != 0) {
      ASSERT_EQ(std::signbit(s.sorted[i]), std::signbit(expected[i]));
    }
  }
}

// The run-by-run loops CompareSorted replaced, kept as the reference the one
// merge must equal bit for bit (statistic, location, sign, Wasserstein).
struct ReferenceMerge {
  double d = 0, at = 0, wasserstein = 0;
  int sign = 1;
};
ReferenceMerge RunByRun(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n1 = a.size(), n2 = b.size();
  const double d1 = static_cast<double>(n1), d2 = static_cast<double>(n2);
  struct Extreme {
    double value = -INFINITY, at = 0;
    bool set = false;
    void Offer(double v, double x) {
      if (!set || v > value) {
        value = v;
        at = x;
        set = true;
      }
    }
  } max_ref, max_cur, min_ref, min_cur;
  internal::NumpySummer terms;
  size_t i = 0, j = 0;
  while (i < n1 || j < n2) {
    const double v = (j >= n2 || (i < n1 && a[i] <= b[j])) ? a[i] : b[j];
    size_t i2 = i, j2 = j;
    while (i2 < n1 && a[i2] == v) ++i2;
    while (j2 < n2 && b[j2] == v) ++j2;
    const double diff = static_cast<double>(i2) / d1 - static_cast<double>(j2) / d2;
    if (i2 > i) {
      max_ref.Offer(diff, v);
      min_ref.Offer(-diff, v);
    }
    if (j2 > j) {
      max_cur.Offer(diff, v);
      min_cur.Offer(-diff, v);
    }
    const double gap = std::fabs(diff);
    for (size_t r = 0; r + 1 < (i2 - i) + (j2 - j); ++r) terms.Add(gap * 0.0);
    if (i2 < n1 || j2 < n2) {
      const double next = (j2 >= n2 || (i2 < n1 && a[i2] <= b[j2])) ? a[i2] : b[j2];
      terms.Add(gap * (next - v));
    }
    i = i2;
    j = j2;
  }
  auto pick = [](const Extreme& x, const Extreme& y) {
    return (x.set && (!y.set || x.value >= y.value)) ? x : y;
  };
  const Extreme mx = pick(max_ref, max_cur), mn = pick(min_ref, min_cur);
  ReferenceMerge out;
  const double min_s = std::clamp(mn.value, 0.0, 1.0);
  if (min_s > mx.value) {
    out.d = min_s;
    out.at = mn.at;
    out.sign = -1;
  } else {
    out.d = mx.value;
    out.at = mx.at;
    out.sign = 1;
  }
  out.wasserstein = terms.Total();
  return out;
}

TEST(MonitorStatsEdgeTest, OneMergeEqualsTheRunByRunLoopsBitForBit) {
  uint64_t state = 99;
  auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  };
  for (int distinct : {1, 2, 3, 10, 1000, 0}) {  // 0: continuous
    for (auto [n1, n2] : {std::pair{1, 1}, {1, 7}, {9, 1}, {50, 80}, {20000, 15000}}) {
      std::vector<double> a, b;
      for (int k = 0; k < n1; ++k) {
        a.push_back(distinct ? static_cast<double>(next() % distinct) : next() / 1e6);
      }
      for (int k = 0; k < n2; ++k) {
        b.push_back(distinct ? static_cast<double>(next() % distinct) + (k % 3 == 0 ? 1 : 0)
                             : next() / 1e6 + 3.0);
      }
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      SCOPED_TRACE(std::to_string(distinct) + " distinct, " + std::to_string(n1) + " x " +
                   std::to_string(n2));
      const ReferenceMerge want = RunByRun(a, b);
      ASSERT_OK_AND_ASSIGN(SortedComparison got, CompareSorted(a, b));
      EXPECT_EQ(std::bit_cast<uint64_t>(got.wasserstein),
                std::bit_cast<uint64_t>(want.wasserstein));
      EXPECT_EQ(got.ks.location, want.at);
      EXPECT_EQ(got.ks.sign, want.sign);
      if (!got.ks.exact) {
        EXPECT_EQ(got.ks.statistic, want.d);  // the exact path rounds d to h / lcm
      }
    }
  }
}

// ks, wasserstein and wasserstein_norm of one column share one merge; the
// shared results equal the standalone functions.
TEST(MonitorStatsEdgeTest, OneMergeFeedsKsAndWasserstein) {
  const NumericSample ref = NumericSample::FromValues(NumericFeature(0, 3, 20000));
  std::vector<double> cur_values = NumericFeature(1, 3, 15000);
  for (size_t i = 0; i < cur_values.size(); i += 3) cur_values[i] = std::round(cur_values[i]);
  const NumericSample cur = NumericSample::FromValues(cur_values);
  ASSERT_OK_AND_ASSIGN(SortedComparison both, CompareSorted(ref.sorted, cur.sorted));
  ASSERT_OK_AND_ASSIGN(KsResult ks, KolmogorovSmirnov(ref.sorted, cur.sorted));
  ASSERT_OK_AND_ASSIGN(double wd, WassersteinDistance(ref.sorted, cur.sorted));
  EXPECT_EQ(both.ks.statistic, ks.statistic);
  EXPECT_EQ(both.ks.p_value, ks.p_value);
  EXPECT_EQ(both.ks.location, ks.location);
  EXPECT_EQ(both.ks.sign, ks.sign);
  EXPECT_EQ(both.wasserstein, wd);
  const ColumnData data = NumericColumn(ref, cur);
  for (const char* name : {"ks", "wasserstein", "wasserstein_norm"}) {
    const DriftStatistic* stat = FindDriftStatistic(name);
    ASSERT_NE(stat, nullptr) << name;
    ASSERT_OK_AND_ASSIGN(StatValue v, stat->compute(data, StatOptions{}));
    if (std::string(name) == "ks") {
      EXPECT_EQ(v.score, ks.p_value);
      EXPECT_EQ(v.statistic, ks.statistic);
    } else if (std::string(name) == "wasserstein") {
      EXPECT_EQ(v.score, wd);
    } else {
      ASSERT_OK_AND_ASSIGN(double norm, WassersteinNormalized(ref.sorted, cur.sorted));
      EXPECT_EQ(v.score, norm);
    }
  }
  EXPECT_TRUE(data.compared.has_value());
}

TEST(MonitorStatsEdgeTest, AllEqualValues) {
  const std::vector<double> a(40, 3.5), b(25, 3.5);
  ASSERT_OK_AND_ASSIGN(KsResult ks, KolmogorovSmirnov(a, b));
  EXPECT_EQ(ks.statistic, 0.0);
  EXPECT_EQ(ks.p_value, 1.0);
  EXPECT_TRUE(ks.exact);
  ASSERT_OK_AND_ASSIGN(double wd, WassersteinDistance(a, b));
  EXPECT_EQ(wd, 0.0);
  ASSERT_OK_AND_ASSIGN(double wdn, WassersteinNormalized(a, b));  // std 0 -> divides by 0.001
  EXPECT_EQ(wdn, 0.0);
  ASSERT_OK_AND_ASSIGN(QuantileBins bins, FitQuantileBins(a));
  EXPECT_EQ(bins.edges, std::vector<double>{3.5});              // nine equal quantiles, one edge
  EXPECT_EQ(bins.ref_shares, (std::vector<double>{0.0, 1.0}));  // below 3.5 / at or above
  ASSERT_OK_AND_ASSIGN(double psi, Psi(bins.ref_shares, Shares(CountInBins(bins.edges, b))));
  EXPECT_EQ(psi, 0.0);
  // A constant reference against a shifted constant: maximal KS, finite PSI.
  const std::vector<double> c(25, 4.0);
  ASSERT_OK_AND_ASSIGN(KsResult ks2, KolmogorovSmirnov(a, c));
  EXPECT_EQ(ks2.statistic, 1.0);
  EXPECT_LT(ks2.p_value, 1e-15);
  ASSERT_OK_AND_ASSIGN(double wd2, WassersteinDistance(a, c));
  EXPECT_DOUBLE_EQ(wd2, 0.5);
  ASSERT_OK_AND_ASSIGN(double wdn2, WassersteinNormalized(a, c));
  EXPECT_DOUBLE_EQ(wdn2, 500.0);
  ASSERT_OK_AND_ASSIGN(AlignedCounts ev, EvidentlyBins(a, c));  // <= 20 distinct: per value
  EXPECT_EQ(ev.labels, (std::vector<std::string>{"3.5", "4"}));
}

TEST(MonitorStatsEdgeTest, LargeSamplesSortAsStdSortDoes) {
  // Shapes that stress the radix sort's buckets: one bucket holding
  // everything, many small buckets, buckets just under and over the size
  // that takes pdqsort, repeated values, both signs, subnormals, extremes.
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<std::pair<std::string, std::vector<double>>> shapes;
  auto add = [&](std::string name, size_t n, auto make) {
    std::vector<double> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = make(i);
    shapes.emplace_back(std::move(name), std::move(v));
  };
  add("normal", 200000, [&](size_t) { return normal(rng); });
  add("narrow band", 100000, [&](size_t) { return 1000.0 + unit(rng) * 1e-9; });
  add("one value", 5000, [](size_t) { return 7.25; });
  add("integers", 100000, [&](size_t) { return static_cast<double>(rng() % 1000) - 500.0; });
  add("wide range", 100000, [&](size_t) {
    const double sign = rng() % 2 == 0 ? 1.0 : -1.0;
    return sign * std::ldexp(unit(rng), static_cast<int>(rng() % 2000) - 1000);
  });
  add("negatives", 4096, [&](size_t) { return -std::fabs(normal(rng)) * 1e6; });
  add("threshold", 4097, [&](size_t i) { return static_cast<double>(i % 3); });
  add("extremes", 20000, [&](size_t i) {
    switch (i % 6) {
      case 0:
        return std::numeric_limits<double>::max();
      case 1:
        return -std::numeric_limits<double>::max();
      case 2:
        return std::numeric_limits<double>::denorm_min() * static_cast<double>(rng() % 9);
      case 3:
        return -std::numeric_limits<double>::min();
      case 4:
        return -0.0;
      default:
        return normal(rng);
    }
  });
  // Bucket sizes 255 and 256 (top 16 bits shared: same sign, exponent and
  // first four mantissa bits) next to each other.
  add("bucket sizes", 511 + 4096, [&](size_t i) {
    if (i < 255) return 1.0 + unit(rng) / 32;     // [1, 1.03125): one bucket
    if (i < 511) return 1.0625 + unit(rng) / 32;  // another one
    return 10.0 + normal(rng);
  });
  for (const auto& [name, values] : shapes) {
    std::vector<double> want = values;
    std::sort(want.begin(), want.end());
    const NumericSample got = NumericSample::FromValues(std::vector<double>(values));
    ASSERT_EQ(got.sorted.size(), want.size()) << name;
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(got.sorted[i], want[i]) << name << " at " << i;
    }
    EXPECT_EQ(got.missing, 0u) << name;
  }
}

TEST(MonitorStatsEdgeTest, SortingInPlaceKeepsTheStorageAndMatchesTheCopy) {
  // Both sizes: pdqsort below 4096 values, the radix sort above.
  for (size_t n : {size_t{300}, size_t{50000}}) {
    std::mt19937_64 rng(n);
    std::normal_distribution<double> normal(0.0, 3.0);
    std::vector<double> values(n);
    for (size_t i = 0; i < n; ++i) {
      switch (rng() % 20) {
        case 0:
          values[i] = NAN;
          break;
        case 1:
          values[i] = INFINITY;
          break;
        case 2:
          values[i] = -INFINITY;
          break;
        case 3:
          values[i] = -0.0;
          break;
        case 4:
          values[i] = 0.0;
          break;
        default:
          values[i] = normal(rng);
      }
    }
    const NumericSample copied = NumericSample::FromValues(std::span<const double>(values));
    const double* storage = values.data();
    const NumericSample in_place = NumericSample::FromValues(std::move(values));
    EXPECT_EQ(in_place.sorted.data(), storage) << n;  // no second array
    EXPECT_EQ(in_place.missing, copied.missing) << n;
    EXPECT_GT(in_place.missing, n / 10) << n;
    ASSERT_EQ(in_place.sorted.size(), copied.sorted.size()) << n;
    EXPECT_TRUE(std::is_sorted(in_place.sorted.begin(), in_place.sorted.end())) << n;
    for (size_t i = 0; i < copied.sorted.size(); ++i) {
      ASSERT_EQ(std::bit_cast<uint64_t>(in_place.sorted[i]),
                std::bit_cast<uint64_t>(copied.sorted[i]))
          << n << " at " << i;
    }
  }
}

TEST(MonitorStatsEdgeTest, NaNsAreMissingExcludedAndCounted) {
  const std::vector<double> raw = {3, NAN, 1, INFINITY, 2, -INFINITY, NAN};
  const NumericSample s = NumericSample::FromValues(raw);
  EXPECT_EQ(s.sorted, (SortedValues{1, 2, 3}));
  EXPECT_EQ(s.missing, 4u);
  EXPECT_EQ(s.rows(), 7u);
  const NumericSample clean = NumericSample::FromValues(std::vector<double>{1, 2, 3, 4});
  ASSERT_OK_AND_ASSIGN(TestChoice ks, MakeChoice("ks"));
  ASSERT_OK_AND_ASSIGN(ColumnDrift d, EvaluateColumn(NumericColumn(clean, s), ks));
  ASSERT_OK_AND_ASSIGN(KsResult direct, KolmogorovSmirnov(clean.sorted, s.sorted));
  EXPECT_EQ(d.value.score, direct.p_value);  // NaNs did not take part
  EXPECT_EQ(d.missing.ref_share, 0.0);
  EXPECT_DOUBLE_EQ(d.missing.cur_share, 4.0 / 7.0);
  EXPECT_DOUBLE_EQ(d.missing.change, 4.0 / 7.0);

  CategoricalSample ref, cur;
  ref.Add("a", 8);
  ref.AddMissing(2);
  cur.Add("a", 5);
  cur.AddMissing(5);
  ASSERT_OK_AND_ASSIGN(TestChoice chi, MakeChoice("chisquare"));
  ASSERT_OK_AND_ASSIGN(ColumnDrift dc, EvaluateColumn(CategoricalColumn(ref, cur), chi));
  EXPECT_DOUBLE_EQ(dc.missing.ref_share, 0.2);
  EXPECT_DOUBLE_EQ(dc.missing.cur_share, 0.5);
  EXPECT_DOUBLE_EQ(dc.missing.change, 0.3);
}

TEST(MonitorStatsEdgeTest, OneCategory) {
  const CategoryCounts ref = {{"only", 10}}, cur = {{"only", 7}};
  ASSERT_OK_AND_ASSIGN(ChiSquareResult chi, ChiSquareContingency(ref, cur));
  EXPECT_EQ(chi.dof, 0);
  EXPECT_EQ(chi.statistic, 0.0);
  EXPECT_EQ(chi.p_value, 1.0);
  ASSERT_OK_AND_ASSIGN(ZTestResult z, TwoProportionZTest(ref, cur));
  EXPECT_EQ(z.p_value, 1.0);
  const AlignedCounts a = AlignCategories(ref, cur);
  ASSERT_OK_AND_ASSIGN(double psi, Psi(Shares(a.ref), Shares(a.cur)));
  EXPECT_EQ(psi, 0.0);
  ASSERT_OK_AND_ASSIGN(double js, JensenShannonDistance(Shares(a.ref), Shares(a.cur)));
  EXPECT_EQ(js, 0.0);
  ASSERT_OK_AND_ASSIGN(double h, HellingerDistance(Shares(a.ref), Shares(a.cur)));
  EXPECT_EQ(h, 0.0);
}

TEST(MonitorStatsEdgeTest, UnseenCategoriesAreReportedNotInfinite) {
  CategoricalSample ref, cur;
  ref.Add("red", 50);
  ref.Add("green", 50);
  cur.Add("red", 45);
  cur.Add("green", 45);
  cur.Add("purple", 6);
  cur.Add("amber", 4);
  const ColumnData data = CategoricalColumn(ref, cur);
  for (std::string_view name : {"psi", "jensenshannon", "hellinger", "chisquare"}) {
    ASSERT_OK_AND_ASSIGN(TestChoice choice, MakeChoice(name));
    ASSERT_OK_AND_ASSIGN(ColumnDrift d, EvaluateColumn(data, choice));
    EXPECT_TRUE(std::isfinite(d.value.score)) << name;
    EXPECT_EQ(d.unseen.names, (std::vector<std::string>{"amber", "purple"})) << name;
    EXPECT_EQ(d.unseen.rows, 10u);
    EXPECT_DOUBLE_EQ(d.unseen.share, 0.1);
  }
  // The empty-bin rule: the reference's zero shares become 1e-4 (its smallest
  // non-zero share 0.5 > 1e-4), so PSI stays finite.
  const AlignedCounts a = AlignCategories(ref.counts, cur.counts);
  ASSERT_EQ(a.labels, (std::vector<std::string>{"amber", "green", "purple", "red"}));
  EXPECT_EQ(FillEmptyShares(Shares(a.ref)), (std::vector<double>{1e-4, 0.5, 1e-4, 0.5}));
  EXPECT_EQ(FillEmptyShares(std::vector<double>{0, 5e-5, 1 - 5e-5}),
            (std::vector<double>{5e-11, 5e-5, 1 - 5e-5}));
  ASSERT_OK_AND_ASSIGN(ZTestResult z,
                       TwoProportionZTest(CategoryCounts{{"x", 5}}, CategoryCounts{{"y", 5}}));
  EXPECT_EQ(z.category, "x");  // two categories, each seen on one side only
  EXPECT_LT(z.p_value, 0.01);
  EXPECT_EQ(TwoProportionZTest(ref.counts, cur.counts).status().code(),
            StatusCode::kInvalidArgument);  // four categories
}

TEST(MonitorStatsEdgeTest, StoredProfilePathEqualsRawPath) {
  const std::vector<double> ref_raw = NumericFeature(0, 6, 5000);
  const std::vector<double> cur_a = NumericFeature(1, 6, 3000);
  std::vector<double> cur_b = NumericFeature(1, 6, 5000);
  cur_b.erase(cur_b.begin(), cur_b.begin() + 3000);
  const NumericSample ref = NumericSample::FromValues(ref_raw);
  // Two windows merged give the same sample as one window over both.
  NumericSample merged = NumericSample::FromValues(cur_a);
  merged.Merge(NumericSample::FromValues(cur_b));
  const NumericSample whole = NumericSample::FromValues(NumericFeature(1, 6, 5000));
  EXPECT_EQ(merged.sorted, whole.sorted);
  // Bins fitted once; window counts on them add up.
  ASSERT_OK_AND_ASSIGN(QuantileBins bins, FitQuantileBins(ref.sorted));
  std::vector<uint64_t> counts = CountInBins(bins.edges, cur_a);
  const std::vector<uint64_t> counts_b = CountInBins(bins.edges, cur_b);
  for (size_t i = 0; i < counts.size(); ++i) counts[i] += counts_b[i];
  ASSERT_OK_AND_ASSIGN(TestChoice psi, MakeChoice("psi"));
  ASSERT_OK_AND_ASSIGN(ColumnDrift raw, EvaluateColumn(NumericColumn(ref, whole), psi));
  const NumericSample no_values;  // the stored profile keeps no sorted current values
  ASSERT_OK_AND_ASSIGN(ColumnDrift stored,
                       EvaluateColumn(NumericColumn(ref, no_values, &bins, counts), psi));
  EXPECT_EQ(raw.value.score, stored.value.score);
  // Categorical windows merge by adding counts.
  CategoricalSample w1 = CategoricalSampleOf(CategoricalFeature(1, 1, 700));
  const std::vector<int> all = CategoricalFeature(1, 1, 1000);
  w1.Merge(CategoricalSampleOf(std::vector<int>(all.begin() + 700, all.end())));
  EXPECT_EQ(w1.counts, CategoricalSampleOf(all).counts);
}

TEST(MonitorStatsTableTest, RowsAndThresholds) {
  std::map<std::string, std::string> seen;
  for (const DriftStatistic& s : DriftStatistics()) {
    EXPECT_TRUE(seen.emplace(std::string(s.name), std::string(s.description)).second) << s.name;
    EXPECT_NE(s.compute, nullptr);
    EXPECT_EQ(FindDriftStatistic(s.name), &s);
  }
  EXPECT_EQ(seen.size(), 8u);
  EXPECT_EQ(FindDriftStatistic("nope"), nullptr);
  const DriftStatistic& ks = *FindDriftStatistic("ks");
  EXPECT_EQ(ks.direction, Direction::kPValue);
  EXPECT_TRUE(IsDrift(ks, 0.049, 0.05));
  EXPECT_FALSE(IsDrift(ks, 0.05, 0.05));
  const DriftStatistic& psi = *FindDriftStatistic("psi");
  EXPECT_EQ(psi.default_threshold, 0.2);
  EXPECT_TRUE(IsDrift(psi, 0.2, 0.2));
  EXPECT_FALSE(IsDrift(psi, NAN, 0.2));
  EXPECT_EQ(FindDriftStatistic("wasserstein_norm")->default_threshold, 0.1);
  EXPECT_EQ(FindDriftStatistic("jensenshannon")->default_threshold, 0.1);
  EXPECT_TRUE(std::isnan(FindDriftStatistic("wasserstein")->default_threshold));

  const NumericSample r = NumericSample::FromValues(std::vector<double>{1, 2, 3});
  CategoricalSample cr;
  cr.Add("a");
  // No default threshold: must be given.
  ASSERT_OK_AND_ASSIGN(TestChoice raw, MakeChoice("wasserstein"));
  EXPECT_EQ(EvaluateColumn(NumericColumn(r, r), raw).status().code(), StatusCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(TestChoice raw2, MakeChoice("wasserstein", 0.5));
  ASSERT_OK_AND_ASSIGN(ColumnDrift given, EvaluateColumn(NumericColumn(r, r), raw2));
  EXPECT_EQ(given.threshold, 0.5);
  EXPECT_EQ(given.value.score, 0.0);
  // Kind mismatch.
  ASSERT_OK_AND_ASSIGN(TestChoice ksc, MakeChoice("ks"));
  EXPECT_EQ(EvaluateColumn(CategoricalColumn(cr, cr), ksc).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeChoice("nope").status().code(), StatusCode::kNotFound);
}

TEST(MonitorStatsPresetTest, KeelDefaults) {
  auto pick = [](ColumnKind kind, uint64_t rows, uint64_t unique) {
    auto c = ChooseTest("keel", ColumnSummary{kind, rows, rows, unique});
    EXPECT_TRUE(c.ok());
    return std::make_pair(std::string(c->statistic->name), c->threshold);
  };
  EXPECT_EQ(pick(ColumnKind::kNumeric, 1000, 900), std::make_pair(std::string("ks"), 0.05));
  EXPECT_EQ(pick(ColumnKind::kNumeric, 1001, 900), std::make_pair(std::string("psi"), 0.2));
  EXPECT_EQ(pick(ColumnKind::kNumeric, 50000, 3), std::make_pair(std::string("psi"), 0.2));
  EXPECT_EQ(pick(ColumnKind::kCategorical, 1000, 2),
            std::make_pair(std::string("chisquare"), 0.05));
  EXPECT_EQ(pick(ColumnKind::kCategorical, 1001, 40), std::make_pair(std::string("psi"), 0.2));
  EXPECT_EQ(FindDriftPreset("keel")->drift_share, 0.5);
  EXPECT_EQ(ChooseTest("nope", ColumnSummary{}).status().code(), StatusCode::kNotFound);
}

TEST(MonitorStatsPresetTest, EvidentlyDefaults) {
  auto pick = [](ColumnKind kind, uint64_t rows, uint64_t unique) {
    auto c = ChooseTest("evidently", ColumnSummary{kind, rows, rows, unique});
    EXPECT_TRUE(c.ok());
    return std::make_tuple(std::string(c->statistic->name), c->threshold, c->options.binning);
  };
  using B = Binning;
  // Reference <= 1000 rows.
  EXPECT_EQ(pick(ColumnKind::kNumeric, 1000, 6),
            std::make_tuple(std::string("ks"), 0.05, B::kReferenceQuantiles));
  EXPECT_EQ(pick(ColumnKind::kNumeric, 1000, 5),
            std::make_tuple(std::string("chisquare"), 0.05, B::kReferenceQuantiles));
  EXPECT_EQ(pick(ColumnKind::kNumeric, 10, 2),
            std::make_tuple(std::string("ztest"), 0.05, B::kReferenceQuantiles));
  EXPECT_EQ(pick(ColumnKind::kCategorical, 1000, 3),
            std::make_tuple(std::string("chisquare"), 0.05, B::kReferenceQuantiles));
  EXPECT_EQ(pick(ColumnKind::kCategorical, 500, 2),
            std::make_tuple(std::string("ztest"), 0.05, B::kReferenceQuantiles));
  // Reference > 1000 rows.
  EXPECT_EQ(pick(ColumnKind::kNumeric, 1001, 6),
            std::make_tuple(std::string("wasserstein_norm"), 0.1, B::kReferenceQuantiles));
  EXPECT_EQ(pick(ColumnKind::kNumeric, 1001, 5),
            std::make_tuple(std::string("jensenshannon"), 0.1, B::kEvidently));
  EXPECT_EQ(pick(ColumnKind::kCategorical, 1001, 2),
            std::make_tuple(std::string("jensenshannon"), 0.1, B::kEvidently));
  ASSERT_OK_AND_ASSIGN(
      auto all, ChooseTests("evidently",
                            std::vector<ColumnSummary>{{ColumnKind::kNumeric, 10, 10, 7},
                                                       {ColumnKind::kCategorical, 5000, 5000, 9}}));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].statistic->name, "ks");
  EXPECT_EQ(all[1].statistic->name, "jensenshannon");
  // Dataset drift: share of drifted columns >= 0.5.
  const bool half[] = {true, false, true, false};
  EXPECT_TRUE(DatasetVerdict(0.5, half).drift);
  const bool less[] = {true, false, false};
  const DatasetDrift v = DatasetVerdict(0.5, less);
  EXPECT_FALSE(v.drift);
  EXPECT_EQ(v.drifted, 1u);
  EXPECT_DOUBLE_EQ(v.share, 1.0 / 3.0);
  EXPECT_FALSE(DatasetVerdict(0.5, std::span<const bool>()).drift);
}

TEST(MonitorStatsPresetTest, SmallNumericColumnUsesDistinctValuesForChiSquare) {
  // Evidently sends a numeric column with <= 5 values and <= 1000 rows to chi-square:
  // one category per value.
  const NumericSample ref = NumericSample::FromValues(std::vector<double>{0, 1, 1, 2, 2, 2, 3});
  const NumericSample cur = NumericSample::FromValues(std::vector<double>{0, 0, 1, 2, 3, 3, 3, 3});
  const ColumnData data = NumericColumn(ref, cur);
  const ColumnSummary s = Summarize(data);
  EXPECT_EQ(s.unique_values, 4u);
  EXPECT_EQ(s.reference_rows, 7u);
  ASSERT_OK_AND_ASSIGN(TestChoice choice, ChooseTest("evidently", s));
  ASSERT_EQ(choice.statistic->name, "chisquare");
  ASSERT_OK_AND_ASSIGN(ColumnDrift d, EvaluateColumn(data, choice));
  ASSERT_OK_AND_ASSIGN(
      ChiSquareResult direct,
      ChiSquareContingency(std::vector<uint64_t>{1, 2, 3, 1}, std::vector<uint64_t>{2, 1, 1, 4}));
  EXPECT_EQ(d.value.score, direct.p_value);
  EXPECT_EQ(d.value.dof, 3);
}

}  // namespace
}  // namespace keel::monitor
