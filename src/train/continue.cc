// Continued training (keel/train/train.h, ContinueSpec).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "keel/core/json.h"
#include "keel/model/formats.h"
#include "keel/model/package.h"
#include "keel/model/predictor.h"
#include "keel/train/linear_trainer.h"
#include "keel/train/metrics.h"
#include "keel/train/train.h"
#include "keel/train/xgboost_trainer.h"
#include "src/train/record_internal.h"

namespace keel::train {
namespace {

// XGBoost: `rounds` new trees on top of the saved booster.
Status GrowXgboost(const ContinueSpec& spec, const model::LoadedModel& base,
                   const TrainProgress& progress, model::PackageContents& c) {
  const auto cols = static_cast<size_t>(base.pipeline.num_features());
  XgbMatrix train{spec.x, spec.rows, cols, spec.labels, base.pipeline.feature_names(), {}};
  const std::vector<std::string> types = base.pipeline.feature_types();
  if (std::find(types.begin(), types.end(), "c") != types.end()) train.feature_types = types;
  XgbOptions o;
  o.init_model = c.model_bytes;
  o.num_boost_round = spec.rounds;
  // keel train's booster defaults: a loaded booster does not keep its
  // training parameters, and XGBoost's own tree_method (exact) would split
  // native categorical features numerically.
  std::map<std::string, std::string> kv;
  for (const auto& [k, v] : spec.params) kv[k == "random_state" ? "seed" : k] = v;
  if (spec.learning_rate > 0) kv["eta"] = FormatDouble(spec.learning_rate);
  bool gblinear = false;
  if (c.info.format == "xgboost-json") {
    const nlohmann::json j = nlohmann::json::parse(c.model_bytes, nullptr, false);
    gblinear = !j.is_discarded() &&
               j.value("/learner/gradient_booster/name"_json_pointer, std::string()) == "gblinear";
  }
  if (!gblinear) kv.emplace("tree_method", "hist");
  kv.emplace("seed", "42");
  kv.emplace("nthread", std::to_string(std::max(1u, std::thread::hardware_concurrency())));
  kv.emplace("verbosity", "1");  // unknown parameters are reported, and refused
  kv.emplace("validate_parameters", "1");
  for (auto& [k, v] : kv) o.params.emplace_back(k, v);
  o.cancel = progress.cancel;
  if (progress.on_status) {
    o.progress = [&](int round, int total, const std::string&) {
      progress.on_status("continued training: round " + std::to_string(round) + "/" +
                         std::to_string(total));
    };
  }
  KEEL_ASSIGN_OR_RETURN(XgbResult r, TrainXgboost(train, nullptr, o));
  c.model_bytes = std::move(r.model_json);
  c.info.format = "xgboost-json";
  if (c.xgboost_version.empty()) c.xgboost_version = XgboostVersion();
  return OkStatus();
}

// keel-linear: `rounds` online passes.
Status GrowLinear(const ContinueSpec& spec, const model::LoadedModel& base,
                  const TrainProgress& progress, model::PackageContents& c) {
  if (!spec.params.empty()) {
    return InvalidArgument(
        "keel-linear updates take no parameters besides rounds and "
        "learning_rate (got " +
        spec.params.front().first + ")");
  }
  OnlineOptions o;
  o.passes = spec.rounds;
  o.cancel = progress.cancel;
  if (spec.learning_rate > 0) o.learning_rate = spec.learning_rate;
  KEEL_ASSIGN_OR_RETURN(c.model_bytes,
                        UpdateLinear(c.model_bytes, spec.x, spec.labels, spec.rows,
                                     static_cast<size_t>(base.pipeline.num_features()), o));
  return OkStatus();
}

// How each model format is updated: one row per format (docs/extending.md).
struct ContinueMethod {
  std::string_view format;
  Status (*grow)(const ContinueSpec&, const model::LoadedModel&, const TrainProgress&,
                 model::PackageContents&);
};
constexpr ContinueMethod kContinueMethods[] = {
    {"xgboost-json", &GrowXgboost},
    {"xgboost-ubj", &GrowXgboost},
    {"keel-linear", &GrowLinear},
};

Result<TrainedModel> ContinueUnchecked(const ContinueSpec& spec, const TrainProgress& progress) {
  if (spec.rows == 0 || spec.x == nullptr || spec.labels == nullptr) {
    return InvalidArgument("no rows to continue training on");
  }
  if (spec.rounds <= 0) return InvalidArgument("rounds must be positive");
  const auto start = std::chrono::steady_clock::now();
  KEEL_ASSIGN_OR_RETURN(model::PackageContents c, model::ReadModelPackage(spec.base_package));
  KEEL_ASSIGN_OR_RETURN(std::shared_ptr<const model::LoadedModel> base,
                        model::LoadModelPackage(spec.base_package));
  const auto cols = static_cast<size_t>(base->pipeline.num_features());
  const std::string format = c.info.format;  // before an update may change it
  TrainedModel m;
  m.params = {{"keel.continue.base",
               spec.base_label.empty() ? spec.base_package.string() : spec.base_label},
              {"keel.continue.format", format},
              {"keel.continue.rounds", std::to_string(spec.rounds)},
              {"keel.continue.rows", std::to_string(spec.rows)}};
  if (spec.learning_rate > 0) {
    m.params.emplace_back("keel.continue.learning_rate", FormatDouble(spec.learning_rate));
  }
  for (const auto& [k, v] : spec.params) m.params.emplace_back("keel.param." + k, v);
  const ContinueMethod* method = nullptr;
  for (const ContinueMethod& m : kContinueMethods) {
    if (m.format == format) method = &m;
  }
  if (method == nullptr) {
    std::string known;
    for (const ContinueMethod& m : kContinueMethods) {
      known += (known.empty() ? "" : ", ") + std::string(m.format);
    }
    return FailedPrecondition(
        "continued training takes " + known + " models; " +
        (spec.base_label.empty() ? spec.base_package.string() : spec.base_label) + " is " +
        (format.empty() ? std::string("of no keel format") : format));
  }
  KEEL_RETURN_IF_ERROR(method->grow(spec, *base, progress, c));
  // The updated model's metrics on the rows it was updated on.
  KEEL_ASSIGN_OR_RETURN(model::Model updated, model::ImportModel(c.model_bytes, c.info.format));
  KEEL_ASSIGN_OR_RETURN(model::Predictor p, model::Predictor::Compile(updated));
  std::vector<float> out(spec.rows * static_cast<size_t>(p.num_outputs()));
  p.PredictBatch(spec.x, spec.rows, out.data());
  const std::span<const float> y(spec.labels, spec.rows);
  std::vector<Metric> metrics = c.info.task == "regression" ? RegressionMetrics(out, y)
                                : c.info.task == "multiclass"
                                    ? MulticlassMetrics(out, p.num_outputs(), y)
                                    : BinaryMetrics(out, y);
  for (Metric& metric : metrics) {
    // Undefined values (AUC on one class) are not logged: not JSON numbers.
    if (std::isfinite(metric.value)) m.metrics.push_back({"train_" + metric.name, metric.value});
  }
  m.tags = {{"keel.task", c.info.task}, {"keel.continue.format", format}};
  DataVersion d;
  d.role = "train";
  d.path = spec.data_label;
  d.sha256 = spec.data_sha256;
  d.rows = spec.rows;
  d.columns = cols;
  m.data.push_back(d);
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.package = std::move(c);
  return m;
}

}  // namespace

Status CanContinue(const std::string& format) {
  for (const ContinueMethod& m : kContinueMethods) {
    if (m.format == format) return OkStatus();
  }
  std::string known;
  for (const ContinueMethod& m : kContinueMethods) {
    known += (known.empty() ? "" : ", ") + std::string(m.format);
  }
  return FailedPrecondition("continued training takes " + known + " models, not " +
                            (format.empty() ? std::string("this one") : format));
}

Result<TrainedModel> ContinueModel(const ContinueSpec& spec, const TrainProgress& progress) {
  // Third-party code (JSON, YAML, libxgboost wrappers) may throw: training
  // ends with a Status, never with an exception.
  try {
    return ContinueUnchecked(spec, progress);
  } catch (const std::exception& e) {
    return Internal(std::string("continued training failed: ") + e.what());
  }
}

Result<RecordResult> ContinueAndRecord(const ContinueSpec& spec, const TrainProgress& progress,
                                       RunRecorder& recorder, const RecordOptions& options) {
  RecordResult result;
  KEEL_ASSIGN_OR_RETURN(result.run_id,
                        internal::StartRecordedRun("keel continued training", recorder, options));
  auto fail = [&](const Status& s) {
    return internal::FailRun(s, result.run_id, progress, recorder);
  };
  Result<TrainedModel> trained = ContinueModel(spec, progress);
  if (!trained.ok()) return fail(trained.status());
  TrainedModel& m = *trained;
  m.package.info.run_id = result.run_id;
  if (Status s = internal::LogTrained(m, result.run_id, recorder); !s.ok()) return fail(s);
  return internal::PackageAndRegister(m, progress, recorder, options, result, fail);
}

}  // namespace keel::train
