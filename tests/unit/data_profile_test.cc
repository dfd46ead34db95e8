#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "keel/data/csv.h"
#include "keel/data/profile.h"
#include "test_util.h"

namespace keel::data {
namespace {

const std::string kChurnCsv = KEEL_SOURCE_DIR "/../shared/data/mlc_churn.csv";

// numpy.quantile's default rule, written out independently of profile.cc.
double Type7Quantile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  double pos = p * static_cast<double>(v.size() - 1);
  size_t i = static_cast<size_t>(pos);
  if (i + 1 >= v.size()) return v.back();
  return v[i] + (pos - static_cast<double>(i)) * (v[i + 1] - v[i]);
}

bool SameDouble(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

TEST(ProfileTest, SmallNumericByHand) {
  Table t;
  ASSERT_OK(t.AddColumn(Column::Numeric("x", {4, NAN, 1, 3, 2})));
  ProfileOptions options;
  options.quantile_intervals = 4;
  options.histogram_bins = 2;
  ASSERT_OK_AND_ASSIGN(TableProfile p, ProfileTable(t, options));
  EXPECT_EQ(p.num_rows, 5u);
  EXPECT_EQ(p.quantile_probs, (std::vector<double>{0, 0.25, 0.5, 0.75, 1}));
  const ColumnProfile& x = p.columns[0];
  EXPECT_EQ(x.count, 4u);
  EXPECT_EQ(x.missing, 1u);
  EXPECT_EQ(x.min, 1.0);
  EXPECT_EQ(x.max, 4.0);
  EXPECT_EQ(x.mean, 2.5);
  EXPECT_DOUBLE_EQ(x.std, std::sqrt(1.25));  // population: (2.25+0.25+0.25+2.25)/4
  EXPECT_EQ(x.quantiles, (std::vector<double>{1, 1.75, 2.5, 3.25, 4}));
  EXPECT_EQ(x.histogram_edges, (std::vector<double>{1, 2.5, 4}));
  EXPECT_EQ(x.histogram_counts, (std::vector<uint64_t>{2, 2}));
}

TEST(ProfileTest, InfinitiesConstantsAndEmptyColumns) {
  Table t;
  ASSERT_OK(t.AddColumn(Column::Numeric("inf", {-HUGE_VAL, 0, 10, HUGE_VAL, 5})));
  ASSERT_OK(t.AddColumn(Column::Numeric("same", {7, 7, NAN, 7, 7})));
  ASSERT_OK(t.AddColumn(Column::Numeric("none", {NAN, NAN, NAN, NAN, NAN})));
  ProfileOptions options;
  options.quantile_intervals = 2;
  options.histogram_bins = 5;
  ASSERT_OK_AND_ASSIGN(TableProfile p, ProfileTable(t, options));

  const ColumnProfile& inf = *p.Find("inf");
  EXPECT_EQ(inf.min, -HUGE_VAL);
  EXPECT_EQ(inf.max, HUGE_VAL);
  EXPECT_EQ(inf.mean, 5.0);  // finite values 0, 10, 5
  EXPECT_EQ(inf.quantiles, (std::vector<double>{-HUGE_VAL, 5, HUGE_VAL}));
  EXPECT_EQ(inf.histogram_edges, (std::vector<double>{0, 2, 4, 6, 8, 10}));
  // -inf and 0 in bin 0, 5 in bin 2, 10 and +inf in bin 4.
  EXPECT_EQ(inf.histogram_counts, (std::vector<uint64_t>{2, 0, 1, 0, 2}));

  const ColumnProfile& same = *p.Find("same");
  EXPECT_EQ(same.std, 0.0);
  EXPECT_EQ(same.histogram_edges, std::vector<double>(6, 7.0));
  EXPECT_EQ(same.histogram_counts, (std::vector<uint64_t>{4, 0, 0, 0, 0}));

  const ColumnProfile& none = *p.Find("none");
  EXPECT_EQ(none.count, 0u);
  EXPECT_EQ(none.missing, 5u);
  EXPECT_TRUE(std::isnan(none.mean));
  EXPECT_TRUE(none.quantiles.empty());
  EXPECT_TRUE(none.histogram_counts.empty());
  EXPECT_EQ(p.Find("absent"), nullptr);
}

TEST(ProfileTest, ChurnMatchesIndependentComputation) {
  ASSERT_OK_AND_ASSIGN(Table t, ReadCsvTable(kChurnCsv));
  ASSERT_OK_AND_ASSIGN(TableProfile p, ProfileTable(t));
  ASSERT_EQ(p.columns.size(), 20u);
  ASSERT_EQ(p.quantile_probs.size(), 21u);
  EXPECT_EQ(p.quantile_probs[1], 0.05);
  EXPECT_EQ(p.quantile_probs[10], 0.5);

  for (const Column& col : t.columns()) {
    const ColumnProfile& cp = *p.Find(col.name());
    ASSERT_EQ(cp.type, col.type());
    EXPECT_EQ(cp.count + cp.missing, 5000u);
    if (col.type() == ColumnType::kNumeric) {
      const std::vector<double>& v = col.values();
      double sum = 0;
      for (double x : v) sum += x;
      const double mean = sum / static_cast<double>(v.size());
      double ss = 0;
      for (double x : v) ss += (x - mean) * (x - mean);
      EXPECT_NEAR(cp.mean, mean, 1e-9 * std::max(1.0, std::fabs(mean))) << col.name();
      EXPECT_NEAR(cp.std, std::sqrt(ss / static_cast<double>(v.size())), 1e-9) << col.name();
      EXPECT_EQ(cp.min, *std::min_element(v.begin(), v.end()));
      EXPECT_EQ(cp.max, *std::max_element(v.begin(), v.end()));
      ASSERT_EQ(cp.quantiles.size(), 21u);
      for (size_t i = 0; i < 21; ++i) {
        EXPECT_NEAR(cp.quantiles[i], Type7Quantile(v, static_cast<double>(i) / 20.0), 1e-9)
            << col.name() << " q" << i;
      }
      // Histogram: 20 equal-width bins between min and max, last bin closed.
      ASSERT_EQ(cp.histogram_edges.size(), 21u);
      ASSERT_EQ(cp.histogram_counts.size(), 20u);
      EXPECT_EQ(cp.histogram_edges.front(), cp.min);
      EXPECT_EQ(cp.histogram_edges.back(), cp.max);
      std::vector<uint64_t> counts(20, 0);
      for (double x : v) {
        auto it = std::upper_bound(cp.histogram_edges.begin(), cp.histogram_edges.end(), x);
        size_t bin = static_cast<size_t>(it - cp.histogram_edges.begin()) - 1;
        counts[std::min<size_t>(bin, 19)]++;
      }
      EXPECT_EQ(cp.histogram_counts, counts) << col.name();
      for (size_t i = 0; i < 20; ++i) {
        EXPECT_NEAR(cp.histogram_edges[i + 1] - cp.histogram_edges[i], (cp.max - cp.min) / 20.0,
                    1e-9);
      }
    } else {
      std::map<std::string, uint64_t> counts;
      for (size_t r = 0; r < t.num_rows(); ++r) counts[col.ValueText(r)]++;
      std::vector<std::string> cats;
      std::vector<uint64_t> n;
      for (const auto& [k, c] : counts) {
        cats.push_back(k);
        n.push_back(c);
      }
      EXPECT_EQ(cp.categories, cats) << col.name();
      EXPECT_EQ(cp.category_counts, n) << col.name();
    }
  }
  // Cross-checked with Python's statistics module on the CSV file.
  const ColumnProfile& day = *p.Find("total_day_minutes");
  EXPECT_NEAR(day.mean, 180.2889, 1e-9);
  EXPECT_NEAR(day.std, 53.88930942951487, 1e-9);
  EXPECT_NEAR(day.quantiles[1], 91.7, 1e-9);
  EXPECT_NEAR(day.quantiles[10], 180.1, 1e-9);
  EXPECT_NEAR(day.quantiles[19], 271.105, 1e-9);
  const ColumnProfile& churn = *p.Find("churn");
  EXPECT_EQ(churn.categories, (std::vector<std::string>{"no", "yes"}));
  EXPECT_EQ(churn.category_counts, (std::vector<uint64_t>{4293, 707}));
}

TEST(ProfileTest, BooleanAndCategoricalWithMissing) {
  Table t;
  ASSERT_OK_AND_ASSIGN(Column b, Column::Boolean("b", {1, 0, NAN, 1}));
  ASSERT_OK(t.AddColumn(std::move(b)));
  ASSERT_OK(t.AddColumn(Column::CategoricalFromText("c", {"z", "a", "", "z"})));
  ASSERT_OK_AND_ASSIGN(TableProfile p, ProfileTable(t));
  EXPECT_EQ(p.columns[0].categories, (std::vector<std::string>{"false", "true"}));
  EXPECT_EQ(p.columns[0].category_counts, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(p.columns[0].missing, 1u);
  EXPECT_EQ(p.columns[1].categories, (std::vector<std::string>{"a", "z"}));
  EXPECT_EQ(p.columns[1].category_counts, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(p.columns[1].missing, 1u);
  EXPECT_EQ(p.columns[1].count, 3u);

  ProfileOptions only;
  only.columns = {"c"};
  ASSERT_OK_AND_ASSIGN(TableProfile q, ProfileTable(t, only));
  ASSERT_EQ(q.columns.size(), 1u);
  EXPECT_EQ(q.columns[0].name, "c");
  only.columns = {"nope"};
  EXPECT_FALSE(ProfileTable(t, only).ok());
  ProfileOptions bad;
  bad.histogram_bins = 0;
  EXPECT_FALSE(ProfileTable(t, bad).ok());
}

TEST(ProfileTest, JsonRoundTripIsExact) {
  ASSERT_OK_AND_ASSIGN(Table t, ReadCsvTable(kChurnCsv));
  ASSERT_OK(t.AddColumn(Column::Numeric("odd", std::vector<double>(5000, NAN))));
  std::vector<double> mixed(5000, 0.1);
  mixed[0] = HUGE_VAL;
  mixed[1] = 1e-310;  // denormal
  mixed[2] = NAN;
  ASSERT_OK(t.AddColumn(Column::Numeric("mixed", mixed)));
  ASSERT_OK_AND_ASSIGN(TableProfile p, ProfileTable(t));
  std::string json = p.ToJson();
  ASSERT_OK_AND_ASSIGN(TableProfile q, TableProfile::FromJson(json));
  EXPECT_EQ(q.ToJson(), json);
  ASSERT_EQ(q.columns.size(), p.columns.size());
  EXPECT_EQ(q.num_rows, p.num_rows);
  EXPECT_EQ(q.quantile_probs, p.quantile_probs);
  for (size_t i = 0; i < p.columns.size(); ++i) {
    const ColumnProfile& a = p.columns[i];
    const ColumnProfile& b = q.columns[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.type, b.type);
    EXPECT_EQ(a.count, b.count);
    EXPECT_EQ(a.missing, b.missing);
    EXPECT_TRUE(SameDouble(a.min, b.min) && SameDouble(a.max, b.max) &&
                SameDouble(a.mean, b.mean) && SameDouble(a.std, b.std))
        << a.name;
    EXPECT_EQ(a.quantiles, b.quantiles) << a.name;
    EXPECT_EQ(a.histogram_edges, b.histogram_edges) << a.name;
    EXPECT_EQ(a.histogram_counts, b.histogram_counts) << a.name;
    EXPECT_EQ(a.categories, b.categories) << a.name;
    EXPECT_EQ(a.category_counts, b.category_counts) << a.name;
  }
  EXPECT_EQ(q.Find("mixed")->max, HUGE_VAL);

  EXPECT_FALSE(TableProfile::FromJson(R"({"keel_profile":2})").ok());
  std::string broken = json;
  broken.replace(broken.find("\"num_rows\":5000"), 15, "\"num_rows\":4999");
  EXPECT_NE(TableProfile::FromJson(broken).status().message().find("num_rows"), std::string::npos);
}

}  // namespace
}  // namespace keel::data
