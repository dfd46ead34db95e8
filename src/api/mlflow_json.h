// Internal: MLflow JSON shapes of keel's tracking and registry types.
#pragma once

#include "keel/core/json.h"
#include "keel/registry/registry.h"
#include "keel/tracking/tracking.h"

namespace keel::api::internal {

void WriteTags(JsonWriter& w, std::string_view field, const std::vector<tracking::Tag>& tags);
void WriteExperiment(JsonWriter& w, const tracking::Experiment& e);
void WriteRunInfo(JsonWriter& w, const tracking::RunInfo& info);
void WriteMetric(JsonWriter& w, const tracking::Metric& m);
void WriteRun(JsonWriter& w, const tracking::Run& run);
void WriteModelVersion(JsonWriter& w, const registry::ModelVersion& v, bool with_aliases);
void WriteRegisteredModel(JsonWriter& w, const registry::RegisteredModel& m);

// {"<field>": [...], "next_page_token": "..."} with MLflow's omissions: no list
// when empty, no token on the last page.
template <typename T, typename WriteFn>
std::string ListResponse(std::string_view field, const std::vector<T>& items,
                         const std::string& next_page_token, WriteFn write,
                         size_t bytes_per_item = 256) {
  JsonWriter w(items.size() * bytes_per_item + 64);
  w.BeginObject();
  if (!items.empty()) {
    w.Key(field);
    w.BeginArray();
    for (const auto& item : items) write(w, item);
    w.EndArray();
  }
  if (!next_page_token.empty()) {
    w.Key("next_page_token");
    w.String(next_page_token);
  }
  w.EndObject();
  return std::move(w).Take();
}

}  // namespace keel::api::internal
