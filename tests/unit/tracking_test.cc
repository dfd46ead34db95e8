#include "keel/tracking/tracking.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "tests/unit/test_util.h"

namespace keel::tracking {
namespace {

using keel::testing::TempDir;

class TrackingTest : public ::testing::Test {
 protected:
  TrackingTest()
      : db_(keel::testing::OpenTestDb(dir_)), clock_(1'700'000'000'000), tracking_(*db_, clock_, {}) {}

  tracking::Run NewRun(const std::string& exp = "0") {
    CreateRunRequest req;
    req.experiment_id = exp;
    auto run = tracking_.CreateRun(req);
    EXPECT_TRUE(run.ok()) << run.status().ToString();
    clock_.Advance(10);
    return *run;
  }

  std::vector<std::string> Search(const std::string& exp, const std::string& filter,
                                  std::vector<std::string> order_by = {}) {
    SearchRunsRequest req;
    req.experiment_ids = {exp};
    req.filter = filter;
    req.order_by = std::move(order_by);
    auto page = tracking_.SearchRuns(req);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    std::vector<std::string> names;
    if (page.ok()) {
      for (const auto& r : page->runs) names.push_back(r.info.run_name);
    }
    return names;
  }

  TempDir dir_;
  std::unique_ptr<store::Database> db_;
  ManualClock clock_;
  TrackingService tracking_;
};

TEST_F(TrackingTest, ExperimentLifecycle) {
  auto id = tracking_.CreateExperiment("churn", "", {{"team", "ml"}});
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, "1");
  auto e = tracking_.GetExperiment(*id);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->artifact_location, "mlflow-artifacts:/1");
  EXPECT_EQ(e->tags.size(), 1u);
  EXPECT_EQ(tracking_.CreateExperiment("churn", "", {}).status().code(), StatusCode::kAlreadyExists);
  ASSERT_OK(tracking_.DeleteExperiment(*id));
  EXPECT_EQ(tracking_.GetExperiment(*id)->lifecycle_stage, "deleted");
  auto again = tracking_.CreateExperiment("churn", "", {});
  EXPECT_NE(again.status().message().find("deleted state"), std::string::npos);
  ASSERT_OK(tracking_.RestoreExperiment(*id));
  ASSERT_OK(tracking_.RenameExperiment(*id, "churn2"));
  EXPECT_TRUE(tracking_.GetExperimentByName("churn2").ok());
  EXPECT_EQ(tracking_.GetExperimentByName("churn").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(tracking_.DeleteExperiment("0").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(tracking_.GetExperiment("abc").status().code(), StatusCode::kNotFound);
}

TEST_F(TrackingTest, RunGetsNameTagAndArtifactUri) {
  tracking::Run run = NewRun();
  EXPECT_EQ(run.info.run_id.size(), 32u);
  EXPECT_EQ(run.info.status, "RUNNING");
  EXPECT_EQ(run.info.artifact_uri, "mlflow-artifacts:/0/" + run.info.run_id + "/artifacts");
  bool has_name_tag = false;
  for (const auto& t : run.tags) {
    if (t.key == "mlflow.runName" && t.value == run.info.run_name) has_name_tag = true;
  }
  EXPECT_TRUE(has_name_tag);
  EXPECT_EQ(tracking_.GetRun("nope").status().message(), "Run with id=nope not found");
}

TEST_F(TrackingTest, ParamsAreImmutable) {
  tracking::Run run = NewRun();
  ASSERT_OK(tracking_.LogParam(run.info.run_id, {"lr", "0.05"}));
  ASSERT_OK(tracking_.LogParam(run.info.run_id, {"lr", "0.05"}));  // same value is fine
  Status s = tracking_.LogParam(run.info.run_id, {"lr", "0.1"});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("Changing param values is not allowed"), std::string::npos);
  // A failing batch leaves nothing behind.
  s = tracking_.LogBatch(run.info.run_id, {{"m", 1.0, 1, 0}}, {{"lr", "0.2"}}, {});
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(tracking_.GetRun(run.info.run_id)->metrics.empty());
}

TEST_F(TrackingTest, LatestMetricIsMaxOfStepTimestampValue) {
  tracking::Run run = NewRun();
  const std::string& id = run.info.run_id;
  ASSERT_OK(tracking_.LogMetric(id, {"loss", 0.5, 100, 2}));
  ASSERT_OK(tracking_.LogMetric(id, {"loss", 0.9, 200, 1}));   // older step loses
  ASSERT_OK(tracking_.LogMetric(id, {"loss", 0.4, 100, 2}));   // same step/ts, lower value loses
  ASSERT_OK(tracking_.LogMetric(id, {"loss", std::nan(""), 100, 2}));  // NaN below numbers
  auto got = tracking_.GetRun(id);
  ASSERT_EQ(got->metrics.size(), 1u);
  EXPECT_DOUBLE_EQ(got->metrics[0].value, 0.5);
  auto hist = tracking_.GetMetricHistory(id, "loss", 0, "");
  ASSERT_TRUE(hist.ok());
  EXPECT_EQ(hist->metrics.size(), 4u);
  // Identical points are stored once.
  ASSERT_OK(tracking_.LogMetric(id, {"loss", 0.5, 100, 2}));
  EXPECT_EQ(tracking_.GetMetricHistory(id, "loss", 0, "")->metrics.size(), 4u);
  // History pages.
  auto page = tracking_.GetMetricHistory(id, "loss", 3, "");
  ASSERT_EQ(page->metrics.size(), 3u);
  ASSERT_FALSE(page->next_page_token.empty());
  auto rest = tracking_.GetMetricHistory(id, "loss", 3, page->next_page_token);
  EXPECT_EQ(rest->metrics.size(), 1u);
  EXPECT_TRUE(rest->next_page_token.empty());
}

TEST_F(TrackingTest, BatchLimitsMatchMlflow) {
  tracking::Run run = NewRun();
  std::vector<Metric> metrics(1001, Metric{"m", 1, 1, 0});
  EXPECT_NE(tracking_.LogBatch(run.info.run_id, metrics, {}, {}).message().find("at most 1000 metrics"),
            std::string::npos);
  std::vector<Param> params;
  for (int i = 0; i < 101; ++i) params.push_back({"p" + std::to_string(i), "v"});
  EXPECT_FALSE(tracking_.LogBatch(run.info.run_id, {}, params, {}).ok());
  EXPECT_FALSE(tracking_.LogParam(run.info.run_id, {std::string(251, 'k'), "v"}).ok());
  EXPECT_FALSE(tracking_.LogParam(run.info.run_id, {"k", std::string(6001, 'v')}).ok());
  EXPECT_TRUE(tracking_.LogParam(run.info.run_id, {"k", std::string(6000, 'v')}).ok());
  EXPECT_FALSE(tracking_.SetTag(run.info.run_id, {"t", std::string(8001, 'v')}).ok());
  // MLflow 2.x name rules: ':' allowed, paths must be normalized and relative.
  for (std::string bad : {"../evil", "a//b", "./a", "a/", "/a", "a/../b", "bad*char"}) {
    EXPECT_FALSE(tracking_.LogParam(run.info.run_id, {bad, "v"}).ok()) << bad;
  }
  for (std::string good : {"val:loss", "a..b", "dir/sub/name", "with space"}) {
    EXPECT_TRUE(tracking_.LogParam(run.info.run_id, {good, "v"}).ok()) << good;
  }
}

TEST_F(TrackingTest, DeletedRunsRejectWritesAndFollowViewType) {
  tracking::Run run = NewRun();
  ASSERT_OK(tracking_.DeleteRun(run.info.run_id));
  EXPECT_FALSE(tracking_.LogMetric(run.info.run_id, {"m", 1, 1, 0}).ok());
  EXPECT_TRUE(Search("0", "").empty());
  SearchRunsRequest req;
  req.experiment_ids = {"0"};
  req.view = ViewType::kDeletedOnly;
  EXPECT_EQ(tracking_.SearchRuns(req)->runs.size(), 1u);
  ASSERT_OK(tracking_.RestoreRun(run.info.run_id));
  EXPECT_EQ(Search("0", "").size(), 1u);
}

TEST_F(TrackingTest, SearchGrammarAndOrdering) {
  auto exp = *tracking_.CreateExperiment("search", "", {});
  for (int i = 0; i < 6; ++i) {
    CreateRunRequest req;
    req.experiment_id = exp;
    req.run_name = "run-" + std::to_string(i);
    auto run = *tracking_.CreateRun(req);
    clock_.Advance(10);
    std::vector<Metric> metrics{{"acc", i / 10.0, 1, 0}};
    if (i != 5) metrics.push_back({"auc", 1.0 - i / 10.0, 1, 0});  // run-5 lacks auc
    ASSERT_OK(tracking_.LogBatch(run.info.run_id, metrics,
                                 {{"model", i % 2 ? "rf" : "gbm"}, {"depth", std::to_string(i)}},
                                 {{"team", i < 3 ? "a" : "b"}}));
  }
  EXPECT_EQ(Search(exp, "metrics.acc > 0.25").size(), 3u);
  EXPECT_EQ(Search(exp, "metrics.acc >= 0.2 and params.model = 'gbm'"),
            (std::vector<std::string>{"run-4", "run-2"}));
  EXPECT_EQ(Search(exp, "tags.team != 'a'").size(), 3u);
  EXPECT_EQ(Search(exp, "params.model LIKE 'g%'").size(), 3u);
  EXPECT_EQ(Search(exp, "params.model LIKE 'G%'").size(), 0u);  // LIKE is case-sensitive
  EXPECT_EQ(Search(exp, "params.model ILIKE 'G%'").size(), 3u);
  EXPECT_EQ(Search(exp, "attributes.run_name IN ('run-1', 'run-3')").size(), 2u);
  EXPECT_EQ(Search(exp, "run_name NOT IN ('run-1')").size(), 5u);
  EXPECT_EQ(Search(exp, "params.depth = '0''; DROP TABLE runs; --'").size(), 0u);
  EXPECT_EQ(Search(exp, "").size(), 6u);  // the table is still there
  // Default order: newest first.
  EXPECT_EQ(Search(exp, "")[0], "run-5");
  // Metric order, runs without the metric last whatever the direction.
  auto asc = Search(exp, "", {"metrics.auc ASC"});
  EXPECT_EQ(asc.front(), "run-4");
  EXPECT_EQ(asc.back(), "run-5");
  auto desc = Search(exp, "", {"metrics.auc DESC"});
  EXPECT_EQ(desc.front(), "run-0");
  EXPECT_EQ(desc.back(), "run-5");
  EXPECT_EQ(Search(exp, "", {"params.depth DESC"}).front(), "run-5");
}

TEST_F(TrackingTest, SearchPagesVisitEveryRunOnce) {
  auto exp = *tracking_.CreateExperiment("paging", "", {});
  for (int i = 0; i < 25; ++i) NewRun(exp);
  SearchRunsRequest req;
  req.experiment_ids = {exp};
  req.max_results = 10;
  std::set<std::string> seen;
  int pages = 0;
  do {
    auto page = tracking_.SearchRuns(req);
    ASSERT_TRUE(page.ok());
    for (const auto& r : page->runs) EXPECT_TRUE(seen.insert(r.info.run_id).second);
    req.page_token = page->next_page_token;
    ++pages;
  } while (!req.page_token.empty() && pages < 10);
  EXPECT_EQ(seen.size(), 25u);
  EXPECT_EQ(pages, 3);
  req.page_token = "not-base64!";
  EXPECT_EQ(tracking_.SearchRuns(req).status().code(), StatusCode::kInvalidArgument);
  req.page_token.clear();
  req.max_results = 50001;
  EXPECT_FALSE(tracking_.SearchRuns(req).ok());
}

TEST_F(TrackingTest, LogModelAppendsHistoryAndInputsAreStored) {
  tracking::Run run = NewRun();
  std::string model = R"({"artifact_path": "model", "flavors": {}, "utc_time_created": "x", "run_id": ")" +
                      run.info.run_id + "\"}";
  ASSERT_OK(tracking_.LogModel(run.info.run_id, model));
  ASSERT_OK(tracking_.LogModel(run.info.run_id, model));
  EXPECT_FALSE(tracking_.LogModel(run.info.run_id, "{not json").ok());
  DatasetInput in;
  in.dataset = {"churn.csv", "abc123", "local", "/data/churn.csv", "", ""};
  in.tags = {{"mlflow.data.context", "training"}};
  ASSERT_OK(tracking_.LogInputs(run.info.run_id, {in}));
  auto got = *tracking_.GetRun(run.info.run_id);
  std::string history;
  for (const auto& t : got.tags) {
    if (t.key == "mlflow.log-model.history") history = t.value;
  }
  EXPECT_EQ(history, "[" + model + ", " + model + "]");
  ASSERT_EQ(got.inputs.size(), 1u);
  EXPECT_EQ(got.inputs[0].dataset.digest, "abc123");
  EXPECT_EQ(Search("0", "datasets.context = 'training'").size(), 1u);
  EXPECT_EQ(Search("0", "datasets.name = 'other'").size(), 0u);
}

}  // namespace
}  // namespace keel::tracking
