// keel's own linear/logistic model format (JSON):
//   {"keel_linear": 1, "task": "binary" | "regression" | "multiclass",
//    "num_features": N, "num_classes": K (multiclass only),
//    "weights": [w(f=0,g=0), w(0,1), ..., w(N-1,K-1)], "bias": [b(0), ...],
//    "feature_names": [...] (optional)}
// binary -> sigmoid, multiclass -> softmax, regression -> identity.
#include <nlohmann/json.hpp>

#include "keel/model/formats.h"

namespace keel::model {

Result<Model> ImportKeelLinear(std::string_view bytes, const BuilderLimits& limits) {
  nlohmann::json doc = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return InvalidArgument("keel-linear: not a JSON object");
  }
  try {
    if (!doc.contains("keel_linear") || doc["keel_linear"] != 1) {
      return InvalidArgument("keel-linear: field keel_linear must be 1");
    }
    const std::string task = doc.value("task", "");
    ModelHeader h;
    h.source_format = "keel-linear";
    h.objective = task;
    h.accumulator = Accumulator::kDouble;
    h.num_features = doc.at("num_features").get<int32_t>();
    if (task == "binary") {
      h.task = Task::kBinary;
      h.transform = Transform::kSigmoid;
    } else if (task == "regression") {
      h.task = Task::kRegression;
    } else if (task == "multiclass") {
      h.task = Task::kMulticlass;
      h.transform = Transform::kSoftmax;
      h.num_groups = doc.at("num_classes").get<int32_t>();
    } else {
      return InvalidArgument("keel-linear: task must be binary, regression or multiclass, not '" +
                             task + "'");
    }
    ModelBuilder b(h, limits);
    if (doc.contains("feature_names")) {
      KEEL_RETURN_IF_ERROR(b.SetFeatureNames(doc["feature_names"].get<std::vector<std::string>>()));
    }
    KEEL_RETURN_IF_ERROR(b.SetLinear(doc.at("weights").get<std::vector<double>>(),
                                     doc.at("bias").get<std::vector<double>>()));
    return std::move(b).Finish();
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(std::string("keel-linear: ") + e.what());
  }
}

}  // namespace keel::model
