// CompareTables and its renderings (keel/monitor/drift.h) on small tables:
// column selection and roles, kinds, errors, unseen categories, the dataset
// verdict, JSON/text/HTML. The statistics themselves are checked against
// numpy/scipy in monitor_stats_test.cc (including CompareTables on the peer's
// streams).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "keel/data/table.h"
#include "keel/monitor/drift.h"
#include "keel/monitor/reference.h"
#include "test_util.h"

namespace keel::monitor {
namespace {

using data::Column;
using data::Table;

std::vector<double> Ramp(size_t n, double offset) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<double>(i % 100) + offset;
  return v;
}

std::vector<std::string> Cycle(size_t n, const std::vector<std::string>& values) {
  std::vector<std::string> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = values[i % values.size()];
  return v;
}

// Reference and current tables: "same" does not move, "shifted" moves by 30,
// "city" gains an unseen category, "flag" is boolean, "score" is the
// prediction, "label" the target.
void MakeTables(Table& ref, Table& cur, size_t n = 2000) {
  ASSERT_OK(ref.AddColumn(Column::Numeric("same", Ramp(n, 0))));
  ASSERT_OK(cur.AddColumn(Column::Numeric("same", Ramp(n, 0))));
  ASSERT_OK(ref.AddColumn(Column::Numeric("shifted", Ramp(n, 0))));
  ASSERT_OK(cur.AddColumn(Column::Numeric("shifted", Ramp(n, 30))));
  ASSERT_OK(ref.AddColumn(Column::CategoricalFromText("city", Cycle(n, {"Oslo", "Rome"}))));
  ASSERT_OK(cur.AddColumn(
      Column::CategoricalFromText("city", Cycle(n, {"Oslo", "Rome", "Lima <x>", "Oslo"}))));
  std::vector<double> flags(n);
  for (size_t i = 0; i < n; ++i) flags[i] = static_cast<double>(i % 2);
  ASSERT_OK_AND_ASSIGN(Column ref_flag, Column::Boolean("flag", flags));
  ASSERT_OK_AND_ASSIGN(Column cur_flag, Column::Boolean("flag", flags));
  ASSERT_OK(ref.AddColumn(std::move(ref_flag)));
  ASSERT_OK(cur.AddColumn(std::move(cur_flag)));
  ASSERT_OK(ref.AddColumn(Column::Numeric("score", Ramp(n, 0))));
  ASSERT_OK(cur.AddColumn(Column::Numeric("score", Ramp(n, 50))));
  ASSERT_OK(ref.AddColumn(Column::Numeric("label", Ramp(n, 0))));
  ASSERT_OK(cur.AddColumn(Column::Numeric("label", Ramp(n, 70))));
}

void ExpectInvalid(const Result<DriftReport>& r, std::string_view needle) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

const ColumnReport& Find(const DriftReport& r, std::string_view name) {
  for (const ColumnReport& c : r.columns) {
    if (c.name == name) return c;
  }
  ADD_FAILURE() << "no column " << name;
  return r.columns.front();
}

TEST(MonitorDriftTest, VerdictsRolesAndDatasetShare) {
  Table ref, cur;
  MakeTables(ref, cur);
  DriftOptions options;
  options.prediction = "score";
  options.target = "label";
  ASSERT_OK_AND_ASSIGN(DriftReport r, CompareTables(ref, cur, options));
  ASSERT_EQ(r.columns.size(), 6u);
  EXPECT_EQ(r.columns[0].name, "same");  // reference order
  EXPECT_FALSE(Find(r, "same").drift.drift);
  EXPECT_TRUE(Find(r, "shifted").drift.drift);
  EXPECT_TRUE(Find(r, "city").drift.drift);
  EXPECT_FALSE(Find(r, "flag").drift.drift);
  EXPECT_EQ(Find(r, "flag").kind, ColumnKind::kCategorical);
  EXPECT_EQ(Find(r, "score").role, ColumnRole::kPrediction);
  EXPECT_EQ(Find(r, "label").role, ColumnRole::kTarget);
  // Features only: same, shifted, city, flag; 2 of 4 drifted; keel's share is 0.5.
  EXPECT_EQ(r.dataset.columns, 4u);
  EXPECT_EQ(r.dataset.drifted, 2u);
  EXPECT_DOUBLE_EQ(r.dataset.share, 0.5);
  EXPECT_TRUE(r.dataset.drift);
  ASSERT_GE(r.prediction_index, 0);
  EXPECT_EQ(r.columns[static_cast<size_t>(r.prediction_index)].name, "score");
  EXPECT_TRUE(r.columns[static_cast<size_t>(r.prediction_index)].drift.drift);
}

TEST(MonitorDriftTest, UnseenCategoryIsNamed) {
  Table ref, cur;
  MakeTables(ref, cur);
  ASSERT_OK_AND_ASSIGN(DriftReport r, CompareTables(ref, cur));
  const ColumnReport& city = Find(r, "city");
  ASSERT_EQ(city.drift.unseen.names, std::vector<std::string>{"Lima <x>"});
  EXPECT_EQ(city.drift.unseen.rows, 500u);
  EXPECT_DOUBLE_EQ(city.drift.unseen.share, 0.25);
  EXPECT_TRUE(std::isfinite(city.drift.value.score));
}

TEST(MonitorDriftTest, ForcedTestAppliesWhereItFitsAndExtrasAreReported) {
  Table ref, cur;
  MakeTables(ref, cur);
  DriftOptions options;
  options.tests = {{"ks"}};
  options.extra = {"psi", "chisquare", "psi"};  // repeated names count once
  ASSERT_OK_AND_ASSIGN(DriftReport r, CompareTables(ref, cur, options));
  EXPECT_EQ(Find(r, "same").drift.statistic, "ks");
  EXPECT_EQ(Find(r, "same").direction, Direction::kPValue);
  EXPECT_EQ(Find(r, "city").drift.statistic, "psi");  // KS takes numeric columns only
  ASSERT_EQ(Find(r, "same").extra.size(), 2u);
  EXPECT_EQ(Find(r, "same").extra[0].name, "psi");
  EXPECT_TRUE(Find(r, "same").extra[0].error.empty());
  EXPECT_NEAR(Find(r, "same").extra[0].value.score, 0.0, 1e-12);
  EXPECT_TRUE(Find(r, "shifted").extra[0].drift);

  options.tests = {{"psi", 100}};  // nothing is that far apart
  ASSERT_OK_AND_ASSIGN(DriftReport lenient, CompareTables(ref, cur, options));
  EXPECT_FALSE(Find(lenient, "shifted").drift.drift);
  EXPECT_DOUBLE_EQ(Find(lenient, "shifted").drift.threshold, 100);
}

TEST(MonitorDriftTest, ColumnsExcludeAndMissingSides) {
  Table ref, cur;
  ASSERT_OK(ref.AddColumn(Column::Numeric("a", Ramp(300, 0))));
  ASSERT_OK(cur.AddColumn(Column::Numeric("a", std::vector<double>(300, NAN))));
  ASSERT_OK(ref.AddColumn(Column::Numeric("b", Ramp(300, 0))));
  std::vector<double> b = Ramp(300, 0);
  for (size_t i = 0; i < 30; ++i) b[i] = NAN;
  ASSERT_OK(cur.AddColumn(Column::Numeric("b", b)));
  ASSERT_OK(ref.AddColumn(Column::Numeric("c", Ramp(300, 0))));
  ASSERT_OK(cur.AddColumn(Column::Numeric("c", Ramp(300, 0))));
  DriftOptions options;
  options.exclude = {"c"};
  ASSERT_OK_AND_ASSIGN(DriftReport r, CompareTables(ref, cur, options));
  ASSERT_EQ(r.columns.size(), 2u);
  // "a" is all missing in the current data: reported, not tested, not counted.
  EXPECT_FALSE(Find(r, "a").error.empty());
  EXPECT_DOUBLE_EQ(Find(r, "a").drift.missing.cur_share, 1.0);
  EXPECT_DOUBLE_EQ(Find(r, "b").drift.missing.change, 0.1);
  EXPECT_EQ(r.dataset.columns, 1u);

  options.exclude.clear();
  options.columns = {"c"};
  ASSERT_OK_AND_ASSIGN(DriftReport only, CompareTables(ref, cur, options));
  ASSERT_EQ(only.columns.size(), 1u);
  EXPECT_EQ(only.columns[0].name, "c");
}

TEST(MonitorDriftTest, BadRequestsNameTheProblem) {
  Table ref, cur;
  MakeTables(ref, cur);
  DriftOptions options;
  options.preset = "nope";
  ExpectInvalid(CompareTables(ref, cur, options), "nope");
  options = {};
  options.tests = {{"ks"}, {"nope"}};
  ExpectInvalid(CompareTables(ref, cur, options), "nope");
  options = {};
  options.columns = {"ghost"};
  ExpectInvalid(CompareTables(ref, cur, options), "ghost");

  Table fewer;
  ASSERT_OK(fewer.AddColumn(Column::Numeric("same", Ramp(10, 0))));
  ExpectInvalid(CompareTables(ref, fewer), "shifted");

  Table kinds;
  ASSERT_OK(kinds.AddColumn(Column::CategoricalFromText("same", Cycle(10, {"x"}))));
  Table one;
  ASSERT_OK(one.AddColumn(Column::Numeric("same", Ramp(10, 0))));
  ExpectInvalid(CompareTables(one, kinds),
                "'same' is numeric in the reference data but categorical");
}

TEST(MonitorDriftTest, RenderingsCarryTheVerdicts) {
  Table ref, cur;
  MakeTables(ref, cur);
  DriftOptions options;
  options.prediction = "score";
  options.target = "label";
  options.extra = {"wasserstein"};
  ASSERT_OK_AND_ASSIGN(DriftReport r, CompareTables(ref, cur, options));
  r.reference_name = "train.csv";
  r.current_name = "week <2>.csv";

  const nlohmann::json j = nlohmann::json::parse(r.ToJson());
  EXPECT_EQ(j["keel_drift_report"], 1);
  EXPECT_EQ(j["reference"]["name"], "train.csv");
  EXPECT_EQ(j["current"]["rows"], 2000);
  EXPECT_EQ(j["dataset"]["drifted"], 2);
  EXPECT_EQ(j["dataset"]["drift"], true);
  EXPECT_EQ(j["prediction_drift"], true);
  ASSERT_EQ(j["columns"].size(), 6u);
  const nlohmann::json& shifted = j["columns"][1];
  EXPECT_EQ(shifted["name"], "shifted");
  EXPECT_EQ(shifted["test"], "psi");
  EXPECT_EQ(shifted["drift"], true);
  EXPECT_EQ(shifted["score"].get<double>(), Find(r, "shifted").drift.value.score);
  EXPECT_TRUE(shifted["extra"]["wasserstein"]["score"].is_number());
  EXPECT_EQ(shifted["histogram"]["edges"].size(), shifted["histogram"]["reference"].size() + 1);
  EXPECT_EQ(j["columns"][2]["unseen"]["categories"][0], "Lima <x>");

  const std::string text = r.ToText();
  EXPECT_NE(text.find("shifted"), std::string::npos);
  EXPECT_NE(text.find("DRIFT"), std::string::npos);
  EXPECT_NE(text.find("dataset drift: YES (2 of 4 features drifted"), std::string::npos) << text;
  EXPECT_NE(text.find("prediction drift: YES"), std::string::npos) << text;
  EXPECT_NE(text.find("1 unseen (Lima <x>; 25.0% of rows)"), std::string::npos) << text;

  const std::string html = r.ToHtml();
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos);  // nothing loaded from a network
  EXPECT_NE(html.find("week &lt;2&gt;.csv"), std::string::npos);
  EXPECT_NE(html.find("Lima &lt;x&gt;"), std::string::npos);
  EXPECT_EQ(html.find("Lima <x>"), std::string::npos);
}

TEST(MonitorDriftTest, ReportSizeDoesNotGrowWithRows) {
  Table small_ref, small_cur, big_ref, big_cur;
  MakeTables(small_ref, small_cur, 2000);
  MakeTables(big_ref, big_cur, 200000);
  ASSERT_OK_AND_ASSIGN(DriftReport small, CompareTables(small_ref, small_cur));
  ASSERT_OK_AND_ASSIGN(DriftReport big, CompareTables(big_ref, big_cur));
  // Only the row counts' digits differ.
  EXPECT_LE(big.ToHtml().size(), small.ToHtml().size() + 200);
  EXPECT_LE(big.ToJson().size(), small.ToJson().size() + 400);
}

TEST(MonitorDriftTest, CategoricalHistogramKeepsTopCategoriesAndOther) {
  Table ref, cur;
  std::vector<std::string> many;
  for (int i = 0; i < 30; ++i) many.push_back("k" + std::to_string(i));
  ASSERT_OK(ref.AddColumn(Column::CategoricalFromText("k", Cycle(3000, many))));
  ASSERT_OK(cur.AddColumn(Column::CategoricalFromText("k", Cycle(3000, many))));
  DriftOptions options;
  options.top_categories = 5;
  ASSERT_OK_AND_ASSIGN(DriftReport r, CompareTables(ref, cur, options));
  const Histogram& h = r.columns[0].histogram;
  ASSERT_EQ(h.labels.size(), 6u);
  EXPECT_EQ(h.labels.back(), "(other)");
  EXPECT_EQ(std::accumulate(h.ref.begin(), h.ref.end(), uint64_t{0}), 3000u);
  EXPECT_EQ(h.ref.back(), 2500u);
}

// Statistical sanity: on samples from one distribution each p-value test
// rejects at about its nominal rate (alpha 0.05); on a planted shift it
// rejects nearly always. 400 seeded repetitions: the binomial standard error
// of a 5% rate is 1.1%, so [2%, 8.5%] is about +-3 standard errors.
TEST(MonitorDriftSanityTest, PValueTestsRejectAtTheirNominalRate) {
  std::mt19937_64 rng(20261206);
  std::normal_distribution<double> normal;
  std::discrete_distribution<int> cats({30, 25, 20, 15, 10});
  constexpr int kReps = 400;
  int ks_null = 0, ks_shift = 0, chi_null = 0, chi_shift = 0, z_null = 0;
  const DriftStatistic* ks = FindDriftStatistic("ks");
  const DriftStatistic* chi = FindDriftStatistic("chisquare");
  const DriftStatistic* z = FindDriftStatistic("ztest");
  ASSERT_NE(ks, nullptr);
  ASSERT_NE(chi, nullptr);
  ASSERT_NE(z, nullptr);
  for (int rep = 0; rep < kReps; ++rep) {
    std::vector<double> a(200), b(200), c(200);
    for (double& v : a) v = normal(rng);
    for (double& v : b) v = normal(rng);
    for (double& v : c) v = normal(rng) + 0.5;  // half a standard deviation
    const NumericSample ra = NumericSample::FromValues(a);
    const NumericSample rb = NumericSample::FromValues(b);
    const NumericSample rc = NumericSample::FromValues(c);
    auto ks_p = [&](const NumericSample& x, const NumericSample& y) {
      auto v = ks->compute(NumericColumn(x, y), {});
      EXPECT_TRUE(v.ok());
      return v.ok() ? v->score : 1.0;
    };
    ks_null += ks_p(ra, rb) < 0.05;
    ks_shift += ks_p(ra, rc) < 0.05;

    CategoricalSample ca, cb, cc, za, zb;
    for (int i = 0; i < 300; ++i) {
      ca.Add("k" + std::to_string(cats(rng)));
      cb.Add("k" + std::to_string(cats(rng)));
      const int k = cats(rng);
      cc.Add("k" + std::to_string(k == 4 ? 0 : k));  // the rarest category moves to the first
      za.Add(normal(rng) > 0.3 ? "yes" : "no");
      zb.Add(normal(rng) > 0.3 ? "yes" : "no");
    }
    auto p_of = [](const DriftStatistic* stat, const CategoricalSample& x,
                   const CategoricalSample& y) {
      auto v = stat->compute(CategoricalColumn(x, y), {});
      EXPECT_TRUE(v.ok());
      return v.ok() ? v->score : 1.0;
    };
    chi_null += p_of(chi, ca, cb) < 0.05;
    chi_shift += p_of(chi, ca, cc) < 0.05;
    z_null += p_of(z, za, zb) < 0.05;
  }
  auto rate = [](int n) { return static_cast<double>(n) / kReps; };
  // KS's p-value is exact here (n <= 10000) and conservative with the lattice
  // rounding, so its rate may sit a little under 5%.
  EXPECT_GE(rate(ks_null), 0.015);
  EXPECT_LE(rate(ks_null), 0.085);
  EXPECT_GE(rate(chi_null), 0.02);
  EXPECT_LE(rate(chi_null), 0.085);
  EXPECT_GE(rate(z_null), 0.02);
  EXPECT_LE(rate(z_null), 0.085);
  EXPECT_GE(rate(ks_shift), 0.9);
  EXPECT_GE(rate(chi_shift), 0.9);
  std::printf(
      "[ nominal 0.05 ] ks %.4f  chisquare %.4f  ztest %.4f;  power ks %.3f chisquare %.3f\n",
      rate(ks_null), rate(chi_null), rate(z_null), rate(ks_shift), rate(chi_shift));
}

// Degenerate inputs give defined answers through the whole comparison: a
// verdict with a finite score, or an error saying why a column was not
// tested; never a NaN verdict or a crash.
TEST(MonitorDriftSanityTest, DegenerateInputsGiveDefinedAnswers) {
  Table ref, cur;
  ASSERT_OK(ref.AddColumn(Column::Numeric("constant", std::vector<double>(50, 3.0))));
  ASSERT_OK(cur.AddColumn(Column::Numeric("constant", std::vector<double>(1, 3.0))));
  ASSERT_OK(ref.AddColumn(Column::Numeric("moved_constant", std::vector<double>(50, 3.0))));
  ASSERT_OK(cur.AddColumn(Column::Numeric("moved_constant", std::vector<double>(1, 4.0))));
  ASSERT_OK(ref.AddColumn(Column::Numeric("all_missing", std::vector<double>(50, NAN))));
  ASSERT_OK(cur.AddColumn(Column::Numeric("all_missing", std::vector<double>(1, NAN))));
  ASSERT_OK(ref.AddColumn(Column::Numeric("one_row", Ramp(50, 0))));
  ASSERT_OK(cur.AddColumn(Column::Numeric("one_row", Ramp(1, 7))));
  ASSERT_OK(ref.AddColumn(Column::CategoricalFromText("new_category", Cycle(50, {"a", "b"}))));
  ASSERT_OK(cur.AddColumn(Column::CategoricalFromText("new_category", Cycle(1, {"z"}))));
  ASSERT_OK(ref.AddColumn(Column::CategoricalFromText("one_category", Cycle(50, {"a"}))));
  ASSERT_OK(cur.AddColumn(Column::CategoricalFromText("one_category", Cycle(1, {"a"}))));
  for (const char* preset : {"keel", "evidently"}) {
    for (const std::vector<DriftOptions::Test>& tests :
         {std::vector<DriftOptions::Test>{}, std::vector<DriftOptions::Test>{{"ks"}, {"chisquare"}},
          std::vector<DriftOptions::Test>{{"wasserstein_norm"}, {"jensenshannon"}},
          std::vector<DriftOptions::Test>{{"hellinger"}, {"psi"}}}) {
      DriftOptions options;
      options.preset = preset;
      options.tests = tests;
      options.extra = {"ks",        "psi",       "wasserstein", "wasserstein_norm", "jensenshannon",
                       "hellinger", "chisquare", "ztest"};
      ASSERT_OK_AND_ASSIGN(DriftReport r, CompareTables(ref, cur, options));
      for (const ColumnReport& c : r.columns) {
        SCOPED_TRACE(std::string(preset) + " " + c.name + " " + std::string(c.drift.statistic));
        if (c.name == "all_missing") {
          EXPECT_FALSE(c.error.empty());
          continue;
        }
        ASSERT_TRUE(c.error.empty()) << c.error;
        EXPECT_TRUE(std::isfinite(c.drift.value.score));
        for (const ExtraStatistic& e : c.extra) {
          if (e.error.empty()) {
            EXPECT_TRUE(std::isfinite(e.value.score)) << e.name;
          }
        }
      }
      EXPECT_FALSE(Find(r, "constant").drift.drift);
      EXPECT_EQ(Find(r, "new_category").drift.unseen.names, std::vector<std::string>{"z"});
      EXPECT_TRUE(std::isfinite(r.dataset.share));
      EXPECT_FALSE(r.ToJson().empty());
      EXPECT_FALSE(r.ToHtml().empty());
    }
  }
}

TEST(MonitorReferenceTest, StoredProfileGivesTheSameReport) {
  Table ref, cur;
  MakeTables(ref, cur);
  DriftOptions options;
  options.prediction = "score";
  options.target = "label";
  options.extra = {"ks", "wasserstein", "jensenshannon", "chisquare"};
  ASSERT_OK_AND_ASSIGN(DriftReport direct, CompareTables(ref, cur, options));
  ASSERT_OK_AND_ASSIGN(ReferenceProfile profile, BuildReference(ref));
  const std::string bytes = profile.Serialize();
  ASSERT_TRUE(LooksLikeReference(bytes));
  ASSERT_OK_AND_ASSIGN(ReferenceProfile loaded, ReferenceProfile::Parse(bytes, "mem"));
  EXPECT_EQ(loaded.rows, 2000u);
  ASSERT_EQ(loaded.columns.size(), 6u);
  EXPECT_TRUE(loaded.Find("flag")->boolean);
  EXPECT_EQ(loaded.Find("shifted")->numeric.sorted, profile.Find("shifted")->numeric.sorted);
  ASSERT_OK_AND_ASSIGN(DriftReport stored, CompareToReference(loaded, cur, options));
  EXPECT_EQ(stored.ToJson(), direct.ToJson());

  // Other bins than the profile's are refitted from the stored values.
  options.bins = 4;
  ASSERT_OK_AND_ASSIGN(DriftReport direct4, CompareTables(ref, cur, options));
  ASSERT_OK_AND_ASSIGN(DriftReport stored4, CompareToReference(loaded, cur, options));
  EXPECT_EQ(stored4.ToJson(), direct4.ToJson());
  EXPECT_NE(stored4.ToJson(), stored.ToJson());
}

TEST(MonitorReferenceTest, ConsumingTheTablesGivesTheSameReport) {
  // Missing values among the numbers, a column listed twice (read, not
  // consumed), an excluded one, and the stored-profile path.
  auto make = [](Table& ref, Table& cur) {
    MakeTables(ref, cur);
    std::vector<double> gaps = Ramp(2000, 5);
    for (size_t i = 0; i < gaps.size(); i += 7) gaps[i] = i % 2 == 0 ? NAN : INFINITY;
    ASSERT_OK(ref.AddColumn(Column::Numeric("gaps", Ramp(2000, 0))));
    ASSERT_OK(cur.AddColumn(Column::Numeric("gaps", gaps)));
  };
  DriftOptions options;
  options.prediction = "score";
  options.extra = {"ks", "wasserstein", "psi", "chisquare"};
  for (const std::vector<std::string>& columns :
       {std::vector<std::string>{}, std::vector<std::string>{"gaps", "shifted", "gaps", "city"}}) {
    options.columns = columns;
    options.exclude =
        columns.empty() ? std::vector<std::string>{"label"} : std::vector<std::string>{};
    Table ref, cur;
    make(ref, cur);
    ASSERT_OK_AND_ASSIGN(DriftReport kept, CompareTables(ref, cur, options));
    ASSERT_OK_AND_ASSIGN(ReferenceProfile profile, BuildReference(ref));
    ASSERT_OK_AND_ASSIGN(DriftReport stored, CompareToReference(profile, cur, options));
    ASSERT_OK_AND_ASSIGN(DriftReport consumed,
                         CompareTables(std::move(ref), std::move(cur), options));
    EXPECT_EQ(consumed.ToJson(), kept.ToJson());
    EXPECT_EQ(ref.num_columns(), 0u);  // NOLINT(bugprone-use-after-move): left empty, as documented
    EXPECT_EQ(cur.num_columns(), 0u);  // NOLINT(bugprone-use-after-move)
    EXPECT_NE(consumed.ToJson().find("\"gaps\""), std::string::npos);

    Table ref2, cur2;
    make(ref2, cur2);
    ASSERT_OK_AND_ASSIGN(ReferenceProfile consumed_profile, BuildReference(std::move(ref2)));
    EXPECT_EQ(consumed_profile.Serialize(), profile.Serialize());
    ASSERT_OK_AND_ASSIGN(DriftReport stored_consumed,
                         CompareToReference(profile, std::move(cur2), options));
    EXPECT_EQ(stored_consumed.ToJson(), stored.ToJson());
  }
}

TEST(MonitorReferenceTest, ConsumingLargeTablesAndErrorsMatchTheCopies) {
  // Above 4,096 values the radix sort runs on the tables' own storage.
  auto make = [](Table& ref, Table& cur, bool with_extra) {
    std::vector<double> a(20000), b(20000);
    for (size_t i = 0; i < a.size(); ++i) {
      a[i] = std::sin(static_cast<double>(i)) * 100.0;
      b[i] = i % 11 == 0 ? NAN : std::cos(static_cast<double>(i) * 0.7) * 90.0 + 5.0;
    }
    ASSERT_OK(ref.AddColumn(Column::Numeric("wave", a)));
    ASSERT_OK(cur.AddColumn(Column::Numeric("wave", b)));
    if (with_extra) ASSERT_OK(ref.AddColumn(Column::Numeric("only_in_ref", a)));
  };
  DriftOptions options;
  options.extra = {"ks", "wasserstein", "psi"};
  {
    Table ref, cur;
    make(ref, cur, false);
    ASSERT_OK_AND_ASSIGN(DriftReport kept, CompareTables(ref, cur, options));
    ASSERT_OK_AND_ASSIGN(DriftReport consumed,
                         CompareTables(std::move(ref), std::move(cur), options));
    EXPECT_EQ(consumed.ToJson(), kept.ToJson());
    EXPECT_EQ(kept.columns.at(0).cur_rows, 20000u);
  }
  {
    // A reference column the current table lacks: the same error, and both
    // tables are left empty.
    Table ref, cur;
    make(ref, cur, true);
    const Result<DriftReport> kept = CompareTables(ref, cur, options);
    const Result<DriftReport> consumed = CompareTables(std::move(ref), std::move(cur), options);
    ASSERT_FALSE(kept.ok());
    ASSERT_FALSE(consumed.ok());
    EXPECT_EQ(consumed.status().ToString(), kept.status().ToString());
    EXPECT_NE(kept.status().message().find("only_in_ref"), std::string::npos);
    EXPECT_EQ(ref.num_columns(), 0u);  // NOLINT(bugprone-use-after-move): documented
    EXPECT_EQ(cur.num_columns(), 0u);  // NOLINT(bugprone-use-after-move)
  }
  {
    // One table as both sides is only read: no drift, every row compared.
    Table ref, cur;
    make(ref, cur, false);
    ASSERT_OK_AND_ASSIGN(DriftReport self, CompareTables(std::move(ref), std::move(ref), options));
    ASSERT_EQ(self.columns.size(), 1u);
    EXPECT_EQ(self.columns[0].cur_rows, 20000u);
    EXPECT_FALSE(self.columns[0].drift.drift);
  }
}

TEST(MonitorReferenceTest, FileRoundTripAndDamage) {
  Table ref, cur;
  MakeTables(ref, cur);
  ASSERT_OK_AND_ASSIGN(ReferenceProfile profile, BuildReference(ref));
  keel::testing::TempDir dir;
  const std::filesystem::path path = dir.path() / "ref.keelref";
  ASSERT_OK(WriteReferenceFile(path, profile));
  ASSERT_OK_AND_ASSIGN(ReferenceProfile back, ReadReferenceFile(path));
  EXPECT_EQ(back.Serialize(), profile.Serialize());

  Result<ReferenceProfile> missing = ReadReferenceFile(dir.path() / "nope.keelref");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);

  const std::string bytes = profile.Serialize();
  // Every truncation and a flipped byte anywhere are DataLoss, never a crash.
  for (size_t cut = 0; cut < bytes.size(); cut += std::max<size_t>(1, bytes.size() / 97)) {
    Result<ReferenceProfile> r = ReferenceProfile::Parse(bytes.substr(0, cut), "cut");
    ASSERT_FALSE(r.ok()) << cut;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << cut;
  }
  for (size_t at = 16; at < bytes.size(); at += std::max<size_t>(1, bytes.size() / 61)) {
    std::string bad = bytes;
    bad[at] = static_cast<char>(bad[at] ^ 0x5a);
    Result<ReferenceProfile> r = ReferenceProfile::Parse(bad, "flip");
    ASSERT_FALSE(r.ok()) << at;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << at;
    EXPECT_NE(r.status().message().find("flip: damaged reference profile"), std::string::npos);
  }
  // The reserved header bytes (20..23) must be zero (found by keel_fuzz_monitor_inputs).
  std::string reserved = bytes;
  reserved[21] = 1;
  EXPECT_EQ(ReferenceProfile::Parse(reserved, "r").status().code(), StatusCode::kDataLoss);
  Result<ReferenceProfile> csv = ReferenceProfile::Parse("a,b\n1,2\n", "x.csv");
  EXPECT_EQ(csv.status().code(), StatusCode::kDataLoss);
}

TEST(MonitorReferenceTest, ProfileChecksColumnsAndKinds) {
  Table ref, cur;
  MakeTables(ref, cur);
  ReferenceOptions options;
  options.columns = {"city", "same"};
  ASSERT_OK_AND_ASSIGN(ReferenceProfile profile, BuildReference(ref, options));
  ASSERT_EQ(profile.columns.size(), 2u);
  EXPECT_EQ(profile.columns[0].name, "city");
  ASSERT_OK_AND_ASSIGN(DriftReport r, CompareToReference(profile, cur));
  EXPECT_EQ(r.columns.size(), 2u);
  options.columns = {"ghost"};
  EXPECT_EQ(BuildReference(ref, options).status().code(), StatusCode::kInvalidArgument);

  Table wrong;
  ASSERT_OK(wrong.AddColumn(Column::Numeric("city", Ramp(10, 0))));
  ASSERT_OK(wrong.AddColumn(Column::Numeric("same", Ramp(10, 0))));
  ExpectInvalid(CompareToReference(profile, wrong),
                "'city' is categorical in the reference data but numeric");
}

}  // namespace
}  // namespace keel::monitor
