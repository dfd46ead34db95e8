// MonitorWindow (keel/monitor/live.h) on a real SQLite prediction log:
// reading inputs by the reference's kinds (numbers, numeric strings,
// booleans, categories given as numbers, unreadable fields), the prediction
// of binary and multiclass models, labels to performance (checked against
// the metrics computed directly), latency percentiles, windows and the
// truncation flag.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "keel/core/clock.h"
#include "keel/monitor/live.h"
#include "keel/serve/prediction_log.h"
#include "keel/train/metrics.h"
#include "tests/unit/test_util.h"

namespace keel::monitor {
namespace {

using keel::testing::OpenTestDb;
using keel::testing::TempDir;

// A reference of 200 rows: x numeric 0..99 twice, city Oslo/Rome, vip
// boolean, code categorical "415"/"510", and a binary model's predictions.
ReferenceProfile MakeReference() {
  data::Table t;
  std::vector<double> x, vip;
  std::vector<std::string> city, code;
  for (int i = 0; i < 200; ++i) {
    x.push_back(i % 100);
    vip.push_back(i % 2);
    city.push_back(i % 2 ? "Oslo" : "Rome");
    code.push_back(i % 3 ? "415" : "510");
  }
  EXPECT_TRUE(t.AddColumn(data::Column::Numeric("x", x)).ok());
  EXPECT_TRUE(t.AddColumn(data::Column::CategoricalFromText("city", city)).ok());
  auto b = data::Column::Boolean("vip", vip);
  EXPECT_TRUE(b.ok());
  EXPECT_TRUE(t.AddColumn(std::move(b).value()).ok());
  EXPECT_TRUE(t.AddColumn(data::Column::CategoricalFromText("code", code)).ok());
  EXPECT_TRUE(t.AddColumn(data::Column::CategoricalFromText("label", city)).ok());
  auto ref = BuildReference(t);
  EXPECT_TRUE(ref.ok());
  ReferenceProfile p = std::move(ref).value();
  ReferenceColumn pred;
  pred.name = "p";
  std::vector<double> probs;
  for (int i = 0; i < 100; ++i) probs.push_back(i / 100.0);
  pred.numeric = NumericSample::FromValues(probs);
  pred.bins = FitQuantileBins(pred.numeric.sorted).value();
  p.columns.push_back(pred);
  p.prediction_column = "p";
  p.target_column = "label";
  p.performance = {{"auc", 0.9}, {"accuracy", 0.8}};
  return p;
}

serve::PredictionRecord Rec(int i, int64_t time_ms, std::string input, std::string output,
                            std::string endpoint = "predict") {
  serve::PredictionRecord r;
  r.request_id = "r" + std::to_string(i);
  r.time_ms = time_ms;
  r.model = "m";
  r.version = "1";
  r.endpoint = std::move(endpoint);
  r.input_json = std::move(input);
  r.output_json = std::move(output);
  r.latency_us = i;
  return r;
}

void Log(store::Database& db, std::vector<serve::PredictionRecord> records) {
  serve::PredictionLog log(db, SystemClock::Default(), {});
  ASSERT_TRUE(log.Start().ok());
  ASSERT_TRUE(log.Append(std::move(records)).ok());
  ASSERT_TRUE(log.Flush().ok());
  log.Stop();
}

model::PackageInfo Binary() {
  model::PackageInfo info;
  info.task = "binary";
  info.classes = {"no", "yes"};
  info.output_name = "p";
  return info;
}

const ColumnReport& Col(const WindowReport& w, std::string_view name) {
  for (const ColumnReport& c : w.drift.columns) {
    if (c.name == name) return c;
  }
  ADD_FAILURE() << "no column " << name;
  return w.drift.columns.front();
}

TEST(MonitorLiveTest, InputsPredictionsLabelsAndLatency) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  std::vector<serve::PredictionRecord> recs;
  std::vector<serve::Label> labels;
  std::vector<float> probs, ys;
  for (int i = 0; i < 100; ++i) {
    // x shifted by +50; code sent as a JSON number; vip as "yes"/"no" text on odd rows.
    std::string input = "{\"x\":" + std::to_string(i + 50) + ",\"city\":\"" +
                        (i % 2 ? "Oslo" : "Rome") + "\",\"vip\":" +
                        (i % 2 ? "\"yes\"" : "false") + ",\"code\":" + (i % 3 ? "415" : "510") + "}";
    const float p = static_cast<float>(i) / 100.0f;
    recs.push_back(Rec(i, 1000 + i, input, std::to_string(p), i < 60 ? "predict" : "batch"));
    const bool y = (i % 7) < 4;
    labels.push_back({"r" + std::to_string(i), y ? "\"yes\"" : "\"no\""});
    probs.push_back(p);
    ys.push_back(y ? 1.0f : 0.0f);
  }
  recs.push_back(Rec(100, 1100, R"({"x":"12.5","city":7,"vip":null})", "0.5"));
  recs.push_back(Rec(101, 1101, R"({"x":"twelve","city":"Lima"})", "\"oops\""));
  recs.push_back(Rec(102, 1102, "not json", "0.25"));
  Log(*db, recs);
  ASSERT_TRUE(serve::RecordLabels(*db, labels, 5000).ok());

  WindowQuery q{.model = "m", .version = "1", .from_ms = 500, .to_ms = 10'500};
  auto w = MonitorWindow(*db, MakeReference(), Binary(), q, {});
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->rows, 103u);
  EXPECT_FALSE(w->truncated);
  // x "twelve", the output "oops", and the input that is not JSON (counted
  // once; its columns are then missing, not counted again).
  EXPECT_EQ(w->unreadable, 3u);
  EXPECT_TRUE(Col(*w, "x").drift.drift);
  EXPECT_FALSE(Col(*w, "code").drift.drift);  // 415/510 given as numbers read as the categories
  EXPECT_TRUE(Col(*w, "code").drift.unseen.names.empty());
  EXPECT_EQ(Col(*w, "city").drift.unseen.names, (std::vector<std::string>{"7", "Lima"}));
  EXPECT_EQ(Col(*w, "vip").kind, ColumnKind::kCategorical);
  EXPECT_EQ(Col(*w, "p").role, ColumnRole::kPrediction);
  for (const ColumnReport& c : w->drift.columns) EXPECT_NE(c.name, "label");

  ASSERT_EQ(w->performance.labelled, 100u);
  const std::vector<train::Metric> want = train::BinaryMetrics(probs, ys);
  EXPECT_DOUBLE_EQ(w->performance.Live("auc"), train::FindMetric(want, "auc"));
  EXPECT_DOUBLE_EQ(w->performance.Live("f1"), train::FindMetric(want, "f1"));
  EXPECT_DOUBLE_EQ(w->performance.Change("auc"), train::FindMetric(want, "auc") - 0.9);
  EXPECT_TRUE(std::isnan(w->performance.Change("rmse")));

  const OperationalSummary& ops = w->operational;
  EXPECT_EQ(ops.predictions, 103u);
  EXPECT_DOUBLE_EQ(ops.seconds, 10.0);
  EXPECT_DOUBLE_EQ(ops.latency_p50_us, 51.0);  // latencies 0..102
  EXPECT_DOUBLE_EQ(ops.latency_max_us, 102.0);
  EXPECT_EQ(ops.endpoints, (std::vector<std::pair<std::string, uint64_t>>{{"batch", 40}, {"predict", 63}}));

  // An open window (from 0, as --window all) spans the logged times: 1000 .. 1102 ms.
  q.from_ms = 0;
  auto open = MonitorWindow(*db, MakeReference(), Binary(), q, {});
  ASSERT_TRUE(open.ok());
  EXPECT_DOUBLE_EQ(open->operational.seconds, 0.102);

  const std::string json = w->ToJson();
  EXPECT_NE(json.find("\"keel_monitor_report\":1"), std::string::npos);
  EXPECT_NE(w->ToText().find("performance (live vs validation at training)"), std::string::npos);
}

TEST(MonitorLiveTest, WindowsVersionsTruncationAndEmpty) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  std::vector<serve::PredictionRecord> recs;
  for (int i = 0; i < 30; ++i) recs.push_back(Rec(i, 1000 * i, R"({"x":1})", "0.1"));
  recs.back().version = "2";
  Log(*db, recs);
  const ReferenceProfile ref = MakeReference();

  WindowQuery q{.model = "m", .version = "1", .from_ms = 10'000, .to_ms = 20'000};
  auto w = MonitorWindow(*db, ref, Binary(), q, {});
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->rows, 10u);  // times 10000 .. 19000
  q.from_ms = 0;
  q.to_ms = 100'000;
  q.max_rows = 5;
  w = MonitorWindow(*db, ref, Binary(), q, {});
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->rows, 5u);
  EXPECT_TRUE(w->truncated);
  q.max_rows = 1000;
  q.version = "";
  w = MonitorWindow(*db, ref, Binary(), q, {});
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->rows, 30u);

  q.from_ms = 500'000;
  q.to_ms = 600'000;
  EXPECT_EQ(MonitorWindow(*db, ref, Binary(), q, {}).status().code(), StatusCode::kNotFound);
  q.to_ms = q.from_ms;
  EXPECT_EQ(MonitorWindow(*db, ref, Binary(), q, {}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(MonitorLiveTest, MulticlassPredictionIsTheTopClass) {
  TempDir dir;
  auto db = OpenTestDb(dir);
  ReferenceProfile ref = MakeReference();
  ReferenceColumn& pred = ref.columns.back();
  pred.kind = ColumnKind::kCategorical;
  pred.numeric = {};
  pred.bins = {};
  pred.categorical.Add("a", 50);
  pred.categorical.Add("b", 50);
  model::PackageInfo info;
  info.task = "multiclass";
  info.classes = {"a", "b", "c"};
  std::vector<serve::PredictionRecord> recs;
  std::vector<serve::Label> labels;
  for (int i = 0; i < 60; ++i) {
    recs.push_back(Rec(i, 100, R"({"x":3})", i % 2 ? "[0.1,0.2,0.7]" : "[0.6,0.3,0.1]"));
    labels.push_back({"r" + std::to_string(i), i % 2 ? "\"c\"" : "\"zzz\""});
  }
  Log(*db, recs);
  ASSERT_TRUE(serve::RecordLabels(*db, labels, 5000).ok());
  WindowQuery q{.model = "m", .version = "1"};
  auto w = MonitorWindow(*db, ref, info, q, {});
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(Col(*w, "p").drift.unseen.names, std::vector<std::string>{"c"});
  EXPECT_EQ(w->performance.labelled, 60u);
  EXPECT_EQ(w->performance.unmatched_labels, 30u);  // "zzz" is no class
  EXPECT_DOUBLE_EQ(w->performance.Live("accuracy"), 1.0);
}

}  // namespace
}  // namespace keel::monitor
