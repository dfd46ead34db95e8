// MLflow REST 2.0 tracking endpoints: JSON <-> TrackingService calls.
#include <algorithm>
#include <array>

#include "keel/api/app.h"
#include "src/api/handler_util.h"
#include "src/api/mlflow_json.h"
#include "src/api/params.h"

namespace keel::api {
namespace {

using internal::kEmptyJson;
using internal::Params;
using internal::Wrap;
using tracking::Metric;

Result<std::string> RunIdOf(const Params& p) {
  KEEL_ASSIGN_OR_RETURN(auto id, p.Str("run_id"));
  if (!id || id->empty()) {
    KEEL_ASSIGN_OR_RETURN(id, p.Str("run_uuid"));
  }
  if (!id || id->empty()) return internal::MissingParameter("run_id");
  return *id;
}

Result<std::string> CreateExperiment(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(auto location, p.Str("artifact_location"));
  KEEL_ASSIGN_OR_RETURN(auto tags, p.Tags("tags"));
  KEEL_ASSIGN_OR_RETURN(std::string id,
                        app.tracking().CreateExperiment(name, location.value_or(""), tags));
  JsonWriter w;
  w.BeginObject();
  w.Key("experiment_id");
  w.String(id);
  w.EndObject();
  return std::move(w).Take();
}

Result<std::string> ExperimentResponse(const Result<tracking::Experiment>& e) {
  if (!e.ok()) return e.status();
  JsonWriter w;
  w.BeginObject();
  w.Key("experiment");
  internal::WriteExperiment(w, *e);
  w.EndObject();
  return std::move(w).Take();
}

Result<std::string> GetExperiment(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, p.RequiredStr("experiment_id"));
  return ExperimentResponse(app.tracking().GetExperiment(id));
}

Result<std::string> GetExperimentByName(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("experiment_name"));
  return ExperimentResponse(app.tracking().GetExperimentByName(name));
}

Result<std::string> SearchExperiments(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  tracking::SearchExperimentsRequest s;
  KEEL_ASSIGN_OR_RETURN(auto max_results, p.Int("max_results"));
  KEEL_ASSIGN_OR_RETURN(auto filter, p.Str("filter"));
  KEEL_ASSIGN_OR_RETURN(auto token, p.Str("page_token"));
  KEEL_ASSIGN_OR_RETURN(auto view, p.Str("view_type"));
  KEEL_ASSIGN_OR_RETURN(s.order_by, p.StrList("order_by"));
  KEEL_ASSIGN_OR_RETURN(s.view, tracking::ParseViewType(view.value_or("")));
  s.max_results = max_results.value_or(1000);
  s.filter = filter.value_or("");
  s.page_token = token.value_or("");
  KEEL_ASSIGN_OR_RETURN(auto page, app.tracking().SearchExperiments(s));
  return internal::ListResponse("experiments", page.experiments, page.next_page_token,
                                internal::WriteExperiment);
}

Result<std::string> UpdateExperiment(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, p.RequiredStr("experiment_id"));
  KEEL_ASSIGN_OR_RETURN(auto new_name, p.Str("new_name"));
  if (new_name) KEEL_RETURN_IF_ERROR(app.tracking().RenameExperiment(id, *new_name));
  return std::string(kEmptyJson);
}

Result<std::string> DeleteExperiment(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, p.RequiredStr("experiment_id"));
  KEEL_RETURN_IF_ERROR(app.tracking().DeleteExperiment(id));
  return std::string(kEmptyJson);
}

Result<std::string> RestoreExperiment(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, p.RequiredStr("experiment_id"));
  KEEL_RETURN_IF_ERROR(app.tracking().RestoreExperiment(id));
  return std::string(kEmptyJson);
}

Result<std::string> SetExperimentTag(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, p.RequiredStr("experiment_id"));
  KEEL_ASSIGN_OR_RETURN(std::string key, p.RequiredStr("key"));
  KEEL_ASSIGN_OR_RETURN(auto value, p.Str("value"));
  KEEL_RETURN_IF_ERROR(app.tracking().SetExperimentTag(id, {key, value.value_or("")}));
  return std::string(kEmptyJson);
}

Result<std::string> RunResponse(const tracking::Run& run) {
  JsonWriter w;
  w.BeginObject();
  w.Key("run");
  internal::WriteRun(w, run);
  w.EndObject();
  return std::move(w).Take();
}

Result<std::string> CreateRun(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  tracking::CreateRunRequest c;
  KEEL_ASSIGN_OR_RETURN(auto exp, p.Str("experiment_id"));
  KEEL_ASSIGN_OR_RETURN(auto user, p.Str("user_id"));
  KEEL_ASSIGN_OR_RETURN(auto name, p.Str("run_name"));
  KEEL_ASSIGN_OR_RETURN(c.start_time, p.Int("start_time"));
  KEEL_ASSIGN_OR_RETURN(c.tags, p.Tags("tags"));
  c.experiment_id = exp && !exp->empty() ? *exp : "0";
  c.user_id = user.value_or("");
  c.run_name = name.value_or("");
  if (c.user_id.empty()) {
    for (const auto& t : c.tags) {
      if (t.key == "mlflow.user") c.user_id = t.value;
    }
  }
  KEEL_ASSIGN_OR_RETURN(tracking::Run run, app.tracking().CreateRun(c));
  return RunResponse(run);
}

Result<std::string> GetRun(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, RunIdOf(p));
  KEEL_ASSIGN_OR_RETURN(tracking::Run run, app.tracking().GetRun(id));
  return RunResponse(run);
}

Result<std::string> UpdateRun(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  tracking::UpdateRunRequest u;
  KEEL_ASSIGN_OR_RETURN(u.run_id, RunIdOf(p));
  KEEL_ASSIGN_OR_RETURN(u.status, p.Str("status"));
  KEEL_ASSIGN_OR_RETURN(u.end_time, p.Int("end_time"));
  KEEL_ASSIGN_OR_RETURN(u.run_name, p.Str("run_name"));
  KEEL_ASSIGN_OR_RETURN(tracking::RunInfo info, app.tracking().UpdateRun(u));
  JsonWriter w;
  w.BeginObject();
  w.Key("run_info");
  internal::WriteRunInfo(w, info);
  w.EndObject();
  return std::move(w).Take();
}

Result<std::string> DeleteRun(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, RunIdOf(p));
  KEEL_RETURN_IF_ERROR(app.tracking().DeleteRun(id));
  return std::string(kEmptyJson);
}

Result<std::string> RestoreRun(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, RunIdOf(p));
  KEEL_RETURN_IF_ERROR(app.tracking().RestoreRun(id));
  return std::string(kEmptyJson);
}

Result<Metric> ReadMetric(simdjson::dom::element obj, const std::string& field) {
  Metric m;
  KEEL_ASSIGN_OR_RETURN(auto key, JsonString(obj, "key"));
  KEEL_ASSIGN_OR_RETURN(auto value, JsonDouble(obj, "value"));
  KEEL_ASSIGN_OR_RETURN(auto ts, JsonInt64(obj, "timestamp"));
  KEEL_ASSIGN_OR_RETURN(auto step, JsonInt64(obj, "step"));
  if (!key) return internal::MissingParameter(field + "key");
  if (!value) return internal::MissingParameter(field + "value");
  if (!ts) return internal::MissingParameter(field + "timestamp");
  m.key = std::move(*key);
  m.value = *value;
  m.timestamp = *ts;
  m.step = step.value_or(0);
  return m;
}

Result<std::string> LogMetric(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, RunIdOf(p));
  Metric m;
  KEEL_ASSIGN_OR_RETURN(m.key, p.RequiredStr("key"));
  KEEL_ASSIGN_OR_RETURN(auto value, p.Double("value"));
  KEEL_ASSIGN_OR_RETURN(auto ts, p.Int("timestamp"));
  KEEL_ASSIGN_OR_RETURN(auto step, p.Int("step"));
  if (!value) return internal::MissingParameter("value");
  if (!ts) return internal::MissingParameter("timestamp");
  m.value = *value;
  m.timestamp = *ts;
  m.step = step.value_or(0);
  KEEL_RETURN_IF_ERROR(app.tracking().LogMetric(id, m));
  return std::string(kEmptyJson);
}

Result<std::string> LogParam(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, RunIdOf(p));
  KEEL_ASSIGN_OR_RETURN(std::string key, p.RequiredStr("key"));
  KEEL_ASSIGN_OR_RETURN(auto value, p.Str("value"));
  if (!value) return internal::MissingParameter("value");
  KEEL_RETURN_IF_ERROR(app.tracking().LogParam(id, {key, *value}));
  return std::string(kEmptyJson);
}

Result<std::string> SetTag(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, RunIdOf(p));
  KEEL_ASSIGN_OR_RETURN(std::string key, p.RequiredStr("key"));
  KEEL_ASSIGN_OR_RETURN(auto value, p.Str("value"));
  if (!value) return internal::MissingParameter("value");
  KEEL_RETURN_IF_ERROR(app.tracking().SetTag(id, {key, *value}));
  return std::string(kEmptyJson);
}

Result<std::string> DeleteTag(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, RunIdOf(p));
  KEEL_ASSIGN_OR_RETURN(std::string key, p.RequiredStr("key"));
  KEEL_RETURN_IF_ERROR(app.tracking().DeleteTag(id, key));
  return std::string(kEmptyJson);
}

Result<std::string> LogBatch(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, RunIdOf(p));
  KEEL_ASSIGN_OR_RETURN(auto metric_objs, p.Objects("metrics"));
  std::vector<Metric> metrics;
  metrics.reserve(metric_objs.size());
  for (size_t i = 0; i < metric_objs.size(); ++i) {
    KEEL_ASSIGN_OR_RETURN(Metric m,
                          ReadMetric(metric_objs[i], "metrics[" + std::to_string(i) + "]."));
    metrics.push_back(std::move(m));
  }
  KEEL_ASSIGN_OR_RETURN(auto params, p.Tags("params"));
  KEEL_ASSIGN_OR_RETURN(auto tags, p.Tags("tags"));
  KEEL_RETURN_IF_ERROR(app.tracking().LogBatch(id, metrics, params, tags));
  return std::string(kEmptyJson);
}

Result<std::string> LogModel(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, RunIdOf(p));
  KEEL_ASSIGN_OR_RETURN(std::string model_json, p.RequiredStr("model_json"));
  KEEL_RETURN_IF_ERROR(app.tracking().LogModel(id, model_json));
  return std::string(kEmptyJson);
}

Result<std::string> LogInputs(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, RunIdOf(p));
  KEEL_ASSIGN_OR_RETURN(auto objs, p.Objects("datasets"));
  std::vector<tracking::DatasetInput> inputs;
  for (auto obj : objs) {
    tracking::DatasetInput in;
    simdjson::dom::element ds;
    if (obj["dataset"].get(ds) || !ds.is_object()) {
      return internal::MissingParameter("datasets[].dataset");
    }
    auto field = [&](const char* key, std::string& out) -> Status {
      KEEL_ASSIGN_OR_RETURN(auto v, JsonString(ds, key));
      out = v.value_or("");
      return OkStatus();
    };
    KEEL_RETURN_IF_ERROR(field("name", in.dataset.name));
    KEEL_RETURN_IF_ERROR(field("digest", in.dataset.digest));
    KEEL_RETURN_IF_ERROR(field("source_type", in.dataset.source_type));
    KEEL_RETURN_IF_ERROR(field("source", in.dataset.source));
    KEEL_RETURN_IF_ERROR(field("schema", in.dataset.schema));
    KEEL_RETURN_IF_ERROR(field("profile", in.dataset.profile));
    simdjson::dom::element tags;
    if (!obj["tags"].get(tags) && tags.is_array()) {
      for (auto t : tags.get_array()) {
        KEEL_ASSIGN_OR_RETURN(auto k, JsonString(t, "key"));
        KEEL_ASSIGN_OR_RETURN(auto v, JsonString(t, "value"));
        if (!k) return internal::MissingParameter("datasets[].tags[].key");
        in.tags.push_back({*k, v.value_or("")});
      }
    }
    inputs.push_back(std::move(in));
  }
  KEEL_RETURN_IF_ERROR(app.tracking().LogInputs(id, inputs));
  return std::string(kEmptyJson);
}

Result<std::string> SearchRuns(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  tracking::SearchRunsRequest s;
  KEEL_ASSIGN_OR_RETURN(s.experiment_ids, p.StrList("experiment_ids"));
  KEEL_ASSIGN_OR_RETURN(auto filter, p.Str("filter"));
  KEEL_ASSIGN_OR_RETURN(auto view, p.Str("run_view_type"));
  KEEL_ASSIGN_OR_RETURN(auto max_results, p.Int("max_results"));
  KEEL_ASSIGN_OR_RETURN(s.order_by, p.StrList("order_by"));
  KEEL_ASSIGN_OR_RETURN(auto token, p.Str("page_token"));
  KEEL_ASSIGN_OR_RETURN(s.view, tracking::ParseViewType(view.value_or("")));
  s.filter = filter.value_or("");
  s.max_results = max_results.value_or(1000);
  s.page_token = token.value_or("");
  KEEL_ASSIGN_OR_RETURN(auto page, app.tracking().SearchRuns(s));
  return internal::ListResponse("runs", page.runs, page.next_page_token, internal::WriteRun, 1024);
}

Result<std::string> GetMetricHistory(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string id, RunIdOf(p));
  KEEL_ASSIGN_OR_RETURN(std::string key, p.RequiredStr("metric_key"));
  KEEL_ASSIGN_OR_RETURN(auto max_results, p.Int("max_results"));
  KEEL_ASSIGN_OR_RETURN(auto token, p.Str("page_token"));
  KEEL_ASSIGN_OR_RETURN(auto page, app.tracking().GetMetricHistory(id, key, max_results.value_or(0),
                                                                   token.value_or("")));
  return internal::ListResponse("metrics", page.metrics, page.next_page_token,
                                internal::WriteMetric, 96);
}

// Points of one metric for several runs within [start_step, end_step], at most
// max_results per run, evenly sampled (first and last point always kept).
Result<std::string> GetHistoryBulkInterval(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(auto run_ids, p.StrList("run_ids"));
  KEEL_ASSIGN_OR_RETURN(std::string key, p.RequiredStr("metric_key"));
  KEEL_ASSIGN_OR_RETURN(auto start_step, p.Int("start_step"));
  KEEL_ASSIGN_OR_RETURN(auto end_step, p.Int("end_step"));
  KEEL_ASSIGN_OR_RETURN(auto max_results, p.Int("max_results"));
  if (run_ids.empty()) return internal::MissingParameter("run_ids");
  if (run_ids.size() > 100) return InvalidArgument("GetMetricHistoryBulkInterval request must specify at most 100 run_ids.");
  int64_t limit = max_results.value_or(320);
  if (limit <= 0 || limit > 2500) return InvalidArgument("max_results must be between 1 and 2500");
  JsonWriter w;
  w.BeginObject();
  w.Key("metrics");
  w.BeginArray();
  for (const auto& id : run_ids) {
    KEEL_ASSIGN_OR_RETURN(auto page, app.tracking().GetMetricHistory(id, key, 1000000, ""));
    std::vector<Metric> in_range;
    for (auto& m : page.metrics) {
      if (start_step && m.step < *start_step) continue;
      if (end_step && m.step > *end_step) continue;
      in_range.push_back(std::move(m));
    }
    size_t n = in_range.size();
    size_t take = std::min<size_t>(n, static_cast<size_t>(limit));
    for (size_t i = 0; i < take; ++i) {
      size_t idx = take <= 1 ? 0 : i * (n - 1) / (take - 1);
      w.BeginObject();
      w.Key("key");
      w.String(in_range[idx].key);
      w.Key("value");
      w.Double(in_range[idx].value);
      w.Key("timestamp");
      w.Int(in_range[idx].timestamp);
      w.Key("step");
      w.Int(in_range[idx].step);
      w.Key("run_id");
      w.String(id);
      w.EndObject();
    }
  }
  w.EndArray();
  w.EndObject();
  return std::move(w).Take();
}

#define KEEL_MLFLOW(path) "/api/2.0/mlflow/" path
const std::array kRoutes = {
    Route{"POST", KEEL_MLFLOW("experiments/create"), &Wrap<CreateExperiment>, Access::kWrite},
    Route{"GET", KEEL_MLFLOW("experiments/get"), &Wrap<GetExperiment>, Access::kRead},
    Route{"GET", KEEL_MLFLOW("experiments/get-by-name"), &Wrap<GetExperimentByName>, Access::kRead},
    Route{"POST", KEEL_MLFLOW("experiments/search"), &Wrap<SearchExperiments>, Access::kRead},
    Route{"GET", KEEL_MLFLOW("experiments/search"), &Wrap<SearchExperiments>, Access::kRead},
    Route{"POST", KEEL_MLFLOW("experiments/update"), &Wrap<UpdateExperiment>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("experiments/delete"), &Wrap<DeleteExperiment>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("experiments/restore"), &Wrap<RestoreExperiment>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("experiments/set-experiment-tag"), &Wrap<SetExperimentTag>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("runs/create"), &Wrap<CreateRun>, Access::kWrite},
    Route{"GET", KEEL_MLFLOW("runs/get"), &Wrap<GetRun>, Access::kRead},
    Route{"POST", KEEL_MLFLOW("runs/update"), &Wrap<UpdateRun>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("runs/delete"), &Wrap<DeleteRun>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("runs/restore"), &Wrap<RestoreRun>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("runs/log-metric"), &Wrap<LogMetric>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("runs/log-parameter"), &Wrap<LogParam>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("runs/set-tag"), &Wrap<SetTag>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("runs/delete-tag"), &Wrap<DeleteTag>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("runs/log-batch"), &Wrap<LogBatch>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("runs/log-model"), &Wrap<LogModel>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("runs/log-inputs"), &Wrap<LogInputs>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("runs/search"), &Wrap<SearchRuns>, Access::kRead},
    Route{"GET", KEEL_MLFLOW("metrics/get-history"), &Wrap<GetMetricHistory>, Access::kRead},
    Route{"GET", KEEL_MLFLOW("metrics/get-history-bulk-interval"), &Wrap<GetHistoryBulkInterval>,
          Access::kRead},
};
#undef KEEL_MLFLOW

}  // namespace

std::span<const Route> TrackingRoutes() { return kRoutes; }

}  // namespace keel::api
