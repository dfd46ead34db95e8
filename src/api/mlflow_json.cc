#include "src/api/mlflow_json.h"

namespace keel::api::internal {

void WriteTags(JsonWriter& w, std::string_view field, const std::vector<tracking::Tag>& tags) {
  if (tags.empty()) return;
  w.Key(field);
  w.BeginArray();
  for (const auto& t : tags) {
    w.BeginObject();
    w.Key("key");
    w.String(t.key);
    w.Key("value");
    w.String(t.value);
    w.EndObject();
  }
  w.EndArray();
}

void WriteExperiment(JsonWriter& w, const tracking::Experiment& e) {
  w.BeginObject();
  w.Key("experiment_id");
  w.String(e.experiment_id);
  w.Key("name");
  w.String(e.name);
  w.Key("artifact_location");
  w.String(e.artifact_location);
  w.Key("lifecycle_stage");
  w.String(e.lifecycle_stage);
  w.Key("last_update_time");
  w.Int(e.last_update_time);
  w.Key("creation_time");
  w.Int(e.creation_time);
  WriteTags(w, "tags", e.tags);
  w.EndObject();
}

void WriteRunInfo(JsonWriter& w, const tracking::RunInfo& info) {
  w.BeginObject();
  w.Key("run_uuid");
  w.String(info.run_id);
  w.Key("experiment_id");
  w.String(info.experiment_id);
  w.Key("run_name");
  w.String(info.run_name);
  w.Key("user_id");
  w.String(info.user_id);
  w.Key("status");
  w.String(info.status);
  if (info.start_time) {
    w.Key("start_time");
    w.Int(*info.start_time);
  }
  if (info.end_time) {
    w.Key("end_time");
    w.Int(*info.end_time);
  }
  w.Key("artifact_uri");
  w.String(info.artifact_uri);
  w.Key("lifecycle_stage");
  w.String(info.lifecycle_stage);
  w.Key("run_id");
  w.String(info.run_id);
  w.EndObject();
}

void WriteMetric(JsonWriter& w, const tracking::Metric& m) {
  w.BeginObject();
  w.Key("key");
  w.String(m.key);
  w.Key("value");
  w.Double(m.value);
  w.Key("timestamp");
  w.Int(m.timestamp);
  w.Key("step");
  w.Int(m.step);
  w.EndObject();
}

void WriteRun(JsonWriter& w, const tracking::Run& run) {
  w.BeginObject();
  w.Key("info");
  WriteRunInfo(w, run.info);
  w.Key("data");
  w.BeginObject();
  if (!run.metrics.empty()) {
    w.Key("metrics");
    w.BeginArray();
    for (const auto& m : run.metrics) WriteMetric(w, m);
    w.EndArray();
  }
  WriteTags(w, "params", run.params);
  WriteTags(w, "tags", run.tags);
  w.EndObject();
  w.Key("inputs");
  w.BeginObject();
  if (!run.inputs.empty()) {
    w.Key("dataset_inputs");
    w.BeginArray();
    for (const auto& in : run.inputs) {
      w.BeginObject();
      WriteTags(w, "tags", in.tags);
      w.Key("dataset");
      w.BeginObject();
      w.Key("name");
      w.String(in.dataset.name);
      w.Key("digest");
      w.String(in.dataset.digest);
      w.Key("source_type");
      w.String(in.dataset.source_type);
      w.Key("source");
      w.String(in.dataset.source);
      if (!in.dataset.schema.empty()) {
        w.Key("schema");
        w.String(in.dataset.schema);
      }
      if (!in.dataset.profile.empty()) {
        w.Key("profile");
        w.String(in.dataset.profile);
      }
      w.EndObject();
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
  w.EndObject();
}

void WriteModelVersion(JsonWriter& w, const registry::ModelVersion& v, bool with_aliases) {
  w.BeginObject();
  w.Key("name");
  w.String(v.name);
  w.Key("version");
  w.String(v.version);
  w.Key("creation_timestamp");
  w.Int(v.creation_timestamp);
  w.Key("last_updated_timestamp");
  w.Int(v.last_updated_timestamp);
  if (!v.user_id.empty()) {
    w.Key("user_id");
    w.String(v.user_id);
  }
  w.Key("current_stage");
  w.String(v.current_stage);
  w.Key("description");
  w.String(v.description);
  w.Key("source");
  w.String(v.source);
  w.Key("run_id");
  w.String(v.run_id);
  w.Key("status");
  w.String(v.status);
  if (!v.status_message.empty()) {
    w.Key("status_message");
    w.String(v.status_message);
  }
  WriteTags(w, "tags", v.tags);
  w.Key("run_link");
  w.String(v.run_link);
  if (with_aliases && !v.aliases.empty()) {
    w.Key("aliases");
    w.BeginArray();
    for (const auto& a : v.aliases) w.String(a);
    w.EndArray();
  }
  w.EndObject();
}

void WriteRegisteredModel(JsonWriter& w, const registry::RegisteredModel& m) {
  w.BeginObject();
  w.Key("name");
  w.String(m.name);
  w.Key("creation_timestamp");
  w.Int(m.creation_timestamp);
  w.Key("last_updated_timestamp");
  w.Int(m.last_updated_timestamp);
  if (!m.description.empty()) {
    w.Key("description");
    w.String(m.description);
  }
  if (!m.latest_versions.empty()) {
    w.Key("latest_versions");
    w.BeginArray();
    for (const auto& v : m.latest_versions) WriteModelVersion(w, v, false);
    w.EndArray();
  }
  WriteTags(w, "tags", m.tags);
  if (!m.aliases.empty()) {
    w.Key("aliases");
    w.BeginArray();
    for (const auto& a : m.aliases) {
      w.BeginObject();
      w.Key("alias");
      w.String(a.alias);
      w.Key("version");
      w.String(a.version);
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
}

}  // namespace keel::api::internal
