// File: keel/train/xgboost_trainer.h
//
// Trains XGBoost boosters through the libxgboost C API and returns the model
// as XGBoost JSON (which keel's importer then reads like any other file).
//
//   keel::train::XgbMatrix train{x.data(), rows, cols, labels.data()};
//   keel::train::XgbOptions opt;
//   opt.params = {{"objective", "binary:logistic"}, {"max_depth", "6"}};
//   opt.num_boost_round = 400;
//   KEEL_ASSIGN_OR_RETURN(auto result, keel::train::TrainXgboost(train, &valid, opt));
//
// Every libxgboost error becomes a Status naming the call and XGBoost's message.
// Threads: one call trains one booster; libxgboost uses `nthread` threads.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "keel/core/result.h"

namespace keel::train {

// A dense row-major float32 matrix (NaN = missing) with labels.
struct XgbMatrix {
  const float* x = nullptr;
  size_t rows = 0;
  size_t cols = 0;
  const float* labels = nullptr;
  std::vector<std::string> feature_names;  // optional
  std::vector<std::string> feature_types;  // optional: "q", "c", "i"; "c" = native categorical
};

struct XgbOptions {
  // Booster parameters as XGBoost names them (objective, eta, max_depth, ...).
  std::vector<std::pair<std::string, std::string>> params;
  int num_boost_round = 100;
  // Stop when the last validation metric has not improved for this many
  // rounds (0 = never); the returned model keeps the best rounds only.
  int early_stopping_rounds = 0;
  // Whether the validation metric improves upward (auc) or downward (loss);
  // decided from the metric name when unset.
  int maximize = -1;
  // Called after each round with (round, total rounds, the evaluation line).
  std::function<void(int, int, const std::string&)> progress;
  // When set and true, training stops with kUnavailable ("cancelled").
  const std::atomic<bool>* cancel = nullptr;
  // Continued training: a saved booster (XGBoost JSON or UBJSON) that the
  // num_boost_round new rounds are added to; its objective and base score
  // come with it. Not with early stopping. The returned model holds the old
  // trees and the new ones; XgbResult::rounds counts the new ones.
  std::string init_model;
};

struct XgbResult {
  std::string model_json;                       // XGBoost JSON
  int rounds = 0;                               // rounds in the returned model
  int best_round = -1;                          // with early stopping: the best round (0-based)
  double best_score = 0.0;                      // the validation metric at best_round
  std::string eval_metric;                      // its name
  std::vector<std::pair<int, double>> history;  // validation metric per round
};

Result<XgbResult> TrainXgboost(const XgbMatrix& train, const XgbMatrix* valid,
                               const XgbOptions& options);

// libxgboost's own prediction for rows of `model_json` (the reference for
// parity checks and benchmarks). `margin` skips the objective's transform.
Result<std::vector<float>> XgboostPredict(const std::string& model_json, const float* x,
                                          size_t rows, size_t cols, bool margin = false,
                                          int nthread = 1);

// libxgboost's version, "1.7.4".
std::string XgboostVersion();

}  // namespace keel::train
