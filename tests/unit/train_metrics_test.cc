// keel's metrics against scikit-learn's values (tests/data/metrics/make_metrics.py).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "keel/train/metrics.h"

namespace keel::train {
namespace {

TEST(Metrics, MatchScikitLearn) {
  std::ifstream in(std::string(KEEL_SOURCE_DIR) + "/tests/data/metrics/metrics.json");
  ASSERT_TRUE(in.good());
  nlohmann::json doc = nlohmann::json::parse(in);
  int checked = 0;
  for (const auto& c : doc["cases"]) {
    std::vector<float> labels = c["labels"].get<std::vector<float>>();
    std::vector<float> scores = c["scores"].get<std::vector<float>>();
    std::vector<Metric> got;
    const std::string kind = c["kind"];
    if (kind == "binary") {
      got = BinaryMetrics(scores, labels);
    } else if (kind == "regression") {
      got = RegressionMetrics(scores, labels);
    } else {
      got = MulticlassMetrics(scores, c["classes"].get<int>(), labels);
    }
    for (const auto& [name, want] : c["expected"].items()) {
      const double value = FindMetric(got, name);
      EXPECT_NEAR(value, want.get<double>(), 1e-9 * std::max(1.0, std::fabs(want.get<double>())))
          << kind << " n=" << labels.size() << " " << name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * (6 + 3 + 3));
}

TEST(Metrics, DegenerateInputs) {
  std::vector<float> p = {0.2f, 0.8f}, y = {1.0f, 1.0f};
  EXPECT_TRUE(std::isnan(RocAuc(p, y)));
  EXPECT_TRUE(RegressionMetrics({}, {}).empty());
  // Perfect ranking and perfect inversion.
  std::vector<float> y2 = {0.0f, 1.0f};
  EXPECT_DOUBLE_EQ(RocAuc(p, y2), 1.0);
  std::vector<float> y3 = {1.0f, 0.0f};
  EXPECT_DOUBLE_EQ(RocAuc(p, y3), 0.0);
}

}  // namespace
}  // namespace keel::train
