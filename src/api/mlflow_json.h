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

}  // namespace keel::api::internal
