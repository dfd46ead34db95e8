// File: keel/tracking/tracking.h
//
// Experiment tracking: experiments, runs, params, metrics, tags, dataset
// inputs, and run search with MLflow's filter grammar. The MLflow REST API
// (src/api) and the CLI are both clients of this class.
//
//   keel::tracking::TrackingService tracking(db, keel::SystemClock::Default(), {});
//   KEEL_ASSIGN_OR_RETURN(std::string exp, tracking.CreateExperiment("churn", "", {}));
//   keel::tracking::CreateRunRequest req;
//   req.experiment_id = exp;
//   KEEL_ASSIGN_OR_RETURN(keel::tracking::Run run, tracking.CreateRun(req));
//   KEEL_RETURN_IF_ERROR(tracking.LogMetric(run.info.run_id, {"auc", 0.93, now, 0}));
//
// Threads: all methods are thread-safe; the Database serialises writes.
// Errors: unknown ids are NotFound with MLflow's message; bad values are
// InvalidArgument naming the field; a duplicate experiment name is AlreadyExists.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "keel/core/clock.h"
#include "keel/core/result.h"
#include "keel/store/store.h"

namespace keel::tracking {

struct Tag {
  std::string key;
  std::string value;
};
using Param = Tag;

struct Metric {
  std::string key;
  double value = 0;
  int64_t timestamp = 0;
  int64_t step = 0;
};

struct Experiment {
  std::string experiment_id;
  std::string name;
  std::string artifact_location;
  std::string lifecycle_stage;  // "active" | "deleted"
  int64_t creation_time = 0;
  int64_t last_update_time = 0;
  std::vector<Tag> tags;
};

struct RunInfo {
  std::string run_id;
  std::string experiment_id;
  std::string run_name;
  std::string user_id;
  std::string status;  // RUNNING SCHEDULED FINISHED FAILED KILLED
  std::optional<int64_t> start_time;
  std::optional<int64_t> end_time;
  std::string artifact_uri;
  std::string lifecycle_stage;
};

struct Dataset {
  std::string name;
  std::string digest;
  std::string source_type;
  std::string source;
  std::string schema;   // may be empty
  std::string profile;  // may be empty
};

struct DatasetInput {
  std::vector<Tag> tags;
  Dataset dataset;
};

struct Run {
  RunInfo info;
  std::vector<Metric> metrics;  // latest value per key
  std::vector<Param> params;
  std::vector<Tag> tags;
  std::vector<DatasetInput> inputs;
};

enum class ViewType { kActiveOnly, kDeletedOnly, kAll };
// Parses "ACTIVE_ONLY" / "DELETED_ONLY" / "ALL" (empty -> ACTIVE_ONLY).
Result<ViewType> ParseViewType(std::string_view text);

struct CreateRunRequest {
  std::string experiment_id = "0";
  std::string user_id;
  std::optional<int64_t> start_time;
  std::string run_name;
  std::vector<Tag> tags;
};

struct UpdateRunRequest {
  std::string run_id;
  std::optional<std::string> status;
  std::optional<int64_t> end_time;
  std::optional<std::string> run_name;
};

struct SearchRunsRequest {
  std::vector<std::string> experiment_ids;
  std::string filter;
  ViewType view = ViewType::kActiveOnly;
  int64_t max_results = 1000;
  std::vector<std::string> order_by;
  std::string page_token;
};

struct SearchRunsPage {
  std::vector<Run> runs;
  std::string next_page_token;  // empty on the last page
};

struct SearchExperimentsRequest {
  std::string filter;  // name / tags.<key> comparisons joined by AND
  ViewType view = ViewType::kActiveOnly;
  int64_t max_results = 1000;
  std::vector<std::string> order_by;
  std::string page_token;
};

struct ExperimentsPage {
  std::vector<Experiment> experiments;
  std::string next_page_token;
};

struct MetricHistoryPage {
  std::vector<Metric> metrics;
  std::string next_page_token;
};

struct TrackingOptions {
  // Where new experiments put artifacts: "<root>/<experiment_id>".
  std::string default_artifact_root = "mlflow-artifacts:";
};

// MLflow's request limits.
inline constexpr int kMaxMetricsPerBatch = 1000;
inline constexpr int kMaxParamsPerBatch = 100;
inline constexpr int kMaxTagsPerBatch = 100;
inline constexpr int kMaxEntitiesPerBatch = 1000;
inline constexpr size_t kMaxKeyLength = 250;
inline constexpr size_t kMaxParamValueLength = 6000;
inline constexpr size_t kMaxTagValueLength = 8000;
inline constexpr int64_t kMaxSearchResults = 50000;

class TrackingService {
 public:
  TrackingService(store::Database& db, const Clock& clock, TrackingOptions options);

  // Experiments.
  Result<std::string> CreateExperiment(const std::string& name,
                                       const std::string& artifact_location,
                                       const std::vector<Tag>& tags);
  Result<Experiment> GetExperiment(const std::string& experiment_id);
  Result<Experiment> GetExperimentByName(const std::string& name);
  Result<ExperimentsPage> SearchExperiments(const SearchExperimentsRequest& request);
  Status RenameExperiment(const std::string& experiment_id, const std::string& new_name);
  Status DeleteExperiment(const std::string& experiment_id);
  Status RestoreExperiment(const std::string& experiment_id);
  Status SetExperimentTag(const std::string& experiment_id, const Tag& tag);

  // Runs.
  Result<Run> CreateRun(const CreateRunRequest& request);
  Result<Run> GetRun(const std::string& run_id);
  Result<RunInfo> UpdateRun(const UpdateRunRequest& request);
  Status DeleteRun(const std::string& run_id);
  Status RestoreRun(const std::string& run_id);

  Status LogMetric(const std::string& run_id, const Metric& metric);
  Status LogParam(const std::string& run_id, const Param& param);
  Status SetTag(const std::string& run_id, const Tag& tag);
  Status DeleteTag(const std::string& run_id, const std::string& key);
  Status LogBatch(const std::string& run_id, const std::vector<Metric>& metrics,
                  const std::vector<Param>& params, const std::vector<Tag>& tags);
  // Appends `model_json` (an MLmodel as JSON) to tag mlflow.log-model.history.
  Status LogModel(const std::string& run_id, const std::string& model_json);
  Status LogInputs(const std::string& run_id, const std::vector<DatasetInput>& inputs);

  Result<MetricHistoryPage> GetMetricHistory(const std::string& run_id, const std::string& key,
                                             int64_t max_results, const std::string& page_token);
  Result<SearchRunsPage> SearchRuns(const SearchRunsRequest& request);

  const Clock& clock() const { return clock_; }

 private:
  store::Database& db_;
  const Clock& clock_;
  TrackingOptions options_;
};

}  // namespace keel::tracking
