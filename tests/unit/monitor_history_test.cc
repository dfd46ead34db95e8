// HistoryHtml (keel/monitor/history.h) on synthetic stored window reports.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "keel/monitor/history.h"

namespace keel::monitor {
namespace {

// A stored report shaped as WindowReport::ToJson writes it, reduced to the
// fields the history reads.
StoredWindow Window(int64_t id, int64_t to_ms, double share, double x_score, double auc) {
  StoredWindow w;
  w.id = id;
  w.model = "churn";
  w.version = "1";
  w.from_ms = to_ms - 3'600'000;
  w.to_ms = to_ms;
  w.computed_ms = to_ms;
  w.report_json =
      "{\"keel_monitor_report\":1,\"rows\":100,\"operational\":{\"predictions\":100,"
      "\"latency_us\":{\"p99\":" + std::to_string(100 + id) + "}},"
      "\"performance\":{\"labelled\":50,\"live\":{\"auc\":" + std::to_string(auc) +
      "},\"reference\":{\"auc\":0.9},\"estimated\":{\"auc\":0.88}},"
      "\"drift\":{\"dataset\":{\"share\":" + std::to_string(share) + "},\"columns\":["
      "{\"name\":\"x\",\"test\":\"psi\",\"direction\":\"distance\",\"score\":" +
      std::to_string(x_score) + ",\"threshold\":0.2},"
      "{\"name\":\"quiet\",\"test\":\"psi\",\"direction\":\"distance\",\"score\":0.01,"
      "\"threshold\":0.2},"
      "{\"name\":\"p <col>\",\"test\":\"ks\",\"direction\":\"p_value\",\"score\":0.5,"
      "\"threshold\":0.05}]}}";
  return w;
}

TEST(MonitorHistoryTest, ChartsTheSeriesAndTheWorstColumnsFirst) {
  std::vector<StoredWindow> windows;
  // Newest first, as ListStoredWindows returns them.
  for (int i = 5; i >= 0; --i) {
    windows.push_back(Window(i, 1'700'000'000'000LL + i * 3'600'000LL, i * 0.1, 0.05 * i, 0.9 - 0.02 * i));
  }
  auto html = HistoryHtml(windows, 2);
  ASSERT_TRUE(html.ok()) << html.status().ToString();
  EXPECT_NE(html->find("Over time (6 stored windows)"), std::string::npos);
  EXPECT_NE(html->find("Share of drifted features"), std::string::npos);
  EXPECT_NE(html->find("Performance: auc (validation 0.9 dashed)"), std::string::npos);
  EXPECT_NE(html->find("realised auc"), std::string::npos);
  EXPECT_NE(html->find("estimated auc"), std::string::npos);
  // x went past its threshold (0.25 / 0.2), "p <col>" stayed at 0.1 of it,
  // quiet at 0.05: with two columns shown, x and "p <col>".
  const size_t x = html->find("Drift score: x");
  const size_t p = html->find("Drift score: p &lt;col&gt;");
  ASSERT_NE(x, std::string::npos);
  ASSERT_NE(p, std::string::npos);
  EXPECT_LT(x, p);
  EXPECT_EQ(html->find("Drift score: quiet"), std::string::npos);
  EXPECT_NE(html->find("1 more columns"), std::string::npos);
  EXPECT_EQ(html->find("<script"), std::string::npos);
  EXPECT_EQ(html->find("<col>"), std::string::npos);  // escaped
}

TEST(MonitorHistoryTest, EmptyAndBadInput) {
  auto empty = HistoryHtml({}, 12);
  ASSERT_TRUE(empty.ok());
  EXPECT_NE(empty->find("No stored windows yet"), std::string::npos);
  // A report without drift or performance still charts what it has.
  StoredWindow partial;
  partial.to_ms = 1'700'000'000'000LL;
  partial.report_json = "{\"keel_monitor_report\":1,\"operational\":{\"predictions\":3}}";
  std::vector<StoredWindow> some = {partial};
  auto drawn = HistoryHtml(some, 12);
  ASSERT_TRUE(drawn.ok()) << drawn.status().ToString();
  EXPECT_NE(drawn->find("Predictions per window"), std::string::npos);
  StoredWindow bad = partial;
  bad.to_ms += 1000;
  bad.report_json = "not json";
  std::vector<StoredWindow> windows = {partial, bad};
  auto with_gap = HistoryHtml(windows, 12);
  ASSERT_TRUE(with_gap.ok());
  EXPECT_NE(with_gap->find("1 stored reports could not be read"), std::string::npos);
  // A lone point is drawn as a dot (a path of one point shows nothing).
  EXPECT_NE(drawn->find("<circle"), std::string::npos);
}

}  // namespace
}  // namespace keel::monitor
