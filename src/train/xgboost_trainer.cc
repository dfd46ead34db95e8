#include "keel/train/xgboost_trainer.h"

#include <xgboost/c_api.h>

#include <cmath>
#include <cstdio>
#include <memory>

namespace keel::train {
namespace {

Status XgbError(const char* call) {
  return Internal(std::string("libxgboost ") + call + ": " + XGBGetLastError());
}

#define KEEL_XGB(call)                       \
  do {                                       \
    if ((call) != 0) return XgbError(#call); \
  } while (0)

// libxgboost's log lines, per thread: parameter validation logs from the
// thread that calls XGBoosterUpdateOneIter.
thread_local std::string* g_log_sink = nullptr;

void OnXgboostLog(const char* message) {
  if (g_log_sink != nullptr) g_log_sink->append(message).append("\n");
}

// libxgboost keeps the callback per thread: install it on each training thread.
void InstallLogCallback() {
  thread_local const int installed = XGBRegisterLogCallback(&OnXgboostLog);
  (void)installed;
}

// "Parameters: { "max_dept" } are not used." -> "\"max_dept\"".
std::string UnusedParameters(const std::string& log) {
  const size_t start = log.find("Parameters: {");
  if (start == std::string::npos) return "";
  const size_t end = log.find('}', start);
  if (end == std::string::npos || log.find("are not used", end) == std::string::npos) return "";
  std::string names = log.substr(start + 13, end - start - 13);
  while (!names.empty() && names.front() == ' ') names.erase(0, 1);
  while (!names.empty() && names.back() == ' ') names.pop_back();
  return names;
}

struct DMatrixDeleter {
  void operator()(void* h) const { XGDMatrixFree(h); }
};
struct BoosterDeleter {
  void operator()(void* h) const { XGBoosterFree(h); }
};
using DMatrix = std::unique_ptr<void, DMatrixDeleter>;
using Booster = std::unique_ptr<void, BoosterDeleter>;

Result<DMatrix> MakeDMatrix(const XgbMatrix& m) {
  if (m.rows == 0 || m.cols == 0 || m.x == nullptr) return InvalidArgument("empty training matrix");
  DMatrixHandle h = nullptr;
  KEEL_XGB(XGDMatrixCreateFromMat(m.x, m.rows, m.cols, std::nanf(""), &h));
  DMatrix d(h);
  if (m.labels != nullptr) {
    KEEL_XGB(XGDMatrixSetFloatInfo(h, "label", m.labels, m.rows));
  }
  auto set_strings = [&](const char* field, const std::vector<std::string>& v) -> Status {
    if (v.empty()) return OkStatus();
    if (v.size() != m.cols) {
      return InvalidArgument(std::string(field) + " has " + std::to_string(v.size()) +
                             " entries for " + std::to_string(m.cols) + " columns");
    }
    std::vector<const char*> ptrs;
    for (const auto& s : v) ptrs.push_back(s.c_str());
    KEEL_XGB(XGDMatrixSetStrFeatureInfo(h, field, ptrs.data(), ptrs.size()));
    return OkStatus();
  };
  KEEL_RETURN_IF_ERROR(set_strings("feature_name", m.feature_names));
  KEEL_RETURN_IF_ERROR(set_strings("feature_type", m.feature_types));
  return d;
}

// "[3]\tvalid-auc:0.91234" -> ("auc", 0.91234): the last metric on the line.
bool ParseEval(const std::string& line, std::string* name, double* value) {
  const size_t colon = line.rfind(':');
  const size_t dash = line.rfind('-', colon);
  if (colon == std::string::npos || dash == std::string::npos) return false;
  *name = line.substr(dash + 1, colon - dash - 1);
  try {
    *value = std::stod(line.substr(colon + 1));
  } catch (...) {
    return false;
  }
  return true;
}

bool MetricMaximizes(const std::string& name) {
  return name.rfind("auc", 0) == 0 || name.rfind("aucpr", 0) == 0 || name.rfind("map", 0) == 0 ||
         name.rfind("ndcg", 0) == 0 || name.rfind("pre", 0) == 0;
}

Result<std::string> SaveJson(BoosterHandle b) {
  bst_ulong len = 0;
  const char* buf = nullptr;
  KEEL_XGB(XGBoosterSaveModelToBuffer(b, "{\"format\": \"json\"}", &len, &buf));
  return std::string(buf, len);
}

}  // namespace

Result<XgbResult> TrainXgboost(const XgbMatrix& train, const XgbMatrix* valid,
                               const XgbOptions& options) {
  if (options.num_boost_round <= 0) return InvalidArgument("num_boost_round must be positive");
  if (!options.init_model.empty() && options.early_stopping_rounds > 0) {
    return InvalidArgument("continued training does not take early stopping");
  }
  InstallLogCallback();
  std::string log;
  g_log_sink = &log;
  struct ResetSink {
    ~ResetSink() { g_log_sink = nullptr; }
  } reset_sink;
  KEEL_ASSIGN_OR_RETURN(DMatrix dtrain, MakeDMatrix(train));
  DMatrix dvalid;
  if (valid != nullptr) {
    KEEL_ASSIGN_OR_RETURN(dvalid, MakeDMatrix(*valid));
  }
  std::vector<DMatrixHandle> cache = {dtrain.get()};
  if (dvalid) cache.push_back(dvalid.get());
  BoosterHandle raw = nullptr;
  KEEL_XGB(XGBoosterCreate(cache.data(), cache.size(), &raw));
  Booster booster(raw);
  int base_rounds = 0;
  if (!options.init_model.empty()) {
    if (XGBoosterLoadModelFromBuffer(raw, options.init_model.data(), options.init_model.size()) !=
        0) {
      return InvalidArgument(std::string("the model to continue from does not load: ") +
                             XGBGetLastError());
    }
    KEEL_XGB(XGBoosterBoostedRounds(raw, &base_rounds));
  }
  for (const auto& [k, v] : options.params) {
    if (XGBoosterSetParam(raw, k.c_str(), v.c_str()) != 0) {
      return InvalidArgument("xgboost parameter " + k + "=" + v + ": " + XGBGetLastError());
    }
  }
  XgbResult result;
  int maximize = options.maximize;
  int since_best = 0;
  int round = 0;
  for (; round < options.num_boost_round; ++round) {
    if (options.cancel != nullptr && options.cancel->load()) {
      return Unavailable("training cancelled at round " + std::to_string(round));
    }
    if (XGBoosterUpdateOneIter(raw, base_rounds + round, dtrain.get()) != 0) {
      return InvalidArgument(std::string("xgboost training failed: ") + XGBGetLastError());
    }
    if (round == 0) {
      const std::string unused = UnusedParameters(log);
      if (!unused.empty()) {
        return InvalidArgument("xgboost does not know the parameter(s) " + unused);
      }
    }
    std::string line;
    if (dvalid) {
      const char* names[] = {"valid"};
      DMatrixHandle sets[] = {dvalid.get()};
      const char* out = nullptr;
      KEEL_XGB(XGBoosterEvalOneIter(raw, round, sets, names, 1, &out));
      line = out;
      double value = 0;
      std::string name;
      // A metric that is not finite (AUC on one class) never counts as best.
      if (ParseEval(line, &name, &value) && std::isfinite(value)) {
        result.history.emplace_back(round, value);
        result.eval_metric = name;
        if (maximize < 0) maximize = MetricMaximizes(name) ? 1 : 0;
        const bool better = result.best_round < 0 ||
                            (maximize ? value > result.best_score : value < result.best_score);
        if (better) {
          result.best_round = round;
          result.best_score = value;
          since_best = 0;
        } else {
          ++since_best;
        }
      }
    }
    if (options.progress) options.progress(round + 1, options.num_boost_round, line);
    if (options.early_stopping_rounds > 0 && since_best >= options.early_stopping_rounds) {
      ++round;
      break;
    }
  }
  result.rounds = round;
  if (options.early_stopping_rounds > 0 && result.best_round >= 0 &&
      result.best_round + 1 < round) {
    // Keep the rounds up to the best one.
    BoosterHandle sliced = nullptr;
    KEEL_XGB(XGBoosterSlice(raw, 0, result.best_round + 1, 1, &sliced));
    Booster keep(sliced);
    KEEL_ASSIGN_OR_RETURN(result.model_json, SaveJson(sliced));
    result.rounds = result.best_round + 1;
    return result;
  }
  KEEL_ASSIGN_OR_RETURN(result.model_json, SaveJson(raw));
  return result;
}

Result<std::vector<float>> XgboostPredict(const std::string& model_json, const float* x,
                                          size_t rows, size_t cols, bool margin, int nthread) {
  BoosterHandle raw = nullptr;
  KEEL_XGB(XGBoosterCreate(nullptr, 0, &raw));
  Booster booster(raw);
  KEEL_XGB(XGBoosterLoadModelFromBuffer(raw, model_json.data(), model_json.size()));
  KEEL_XGB(XGBoosterSetParam(raw, "nthread", std::to_string(nthread).c_str()));
  XgbMatrix m{x, rows, cols, nullptr, {}, {}};
  KEEL_ASSIGN_OR_RETURN(DMatrix d, MakeDMatrix(m));
  const std::string config = std::string("{\"type\": ") + (margin ? "1" : "0") +
                             ", \"training\": false, \"iteration_begin\": 0, "
                             "\"iteration_end\": 0, \"strict_shape\": false}";
  const bst_ulong* shape = nullptr;
  bst_ulong dim = 0;
  const float* out = nullptr;
  KEEL_XGB(XGBoosterPredictFromDMatrix(raw, d.get(), config.c_str(), &shape, &dim, &out));
  size_t n = 1;
  for (bst_ulong i = 0; i < dim; ++i) n *= shape[i];
  return std::vector<float>(out, out + n);
}

std::string XgboostVersion() {
  int major = 0, minor = 0, patch = 0;
  XGBoostVersion(&major, &minor, &patch);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace keel::train
