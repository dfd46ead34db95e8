// File: keel/train/linear_trainer.h
//
// keel's own linear models: ridge least squares and L2-regularised logistic
// regression, fitted on standardised features (Cholesky for least squares,
// Newton's method for logistic) and saved in the keel-linear format with the
// standardisation folded into the weights.
//
//   KEEL_ASSIGN_OR_RETURN(std::string json,
//       keel::train::TrainLinear(x, y, rows, cols, names, {.logistic = true}));
//
// Missing inputs (NaN) count as 0, as the evaluator skips them.
#pragma once

#include <atomic>
#include <cstddef>
#include <string>
#include <vector>

#include "keel/core/result.h"

namespace keel::train {

struct LinearOptions {
  bool logistic = false;
  double l2 = 1e-3;    // penalty per row on standardised weights (not the intercept)
  int max_iter = 100;  // Newton iterations (logistic)
  double tolerance = 1e-9;
};

Result<std::string> TrainLinear(const float* x, const float* y, size_t rows, size_t cols,
                                const std::vector<std::string>& feature_names,
                                const LinearOptions& options);

// Online update of a saved keel-linear binary or regression model: `passes`
// passes over the rows in order, one gradient step per row (log loss for
// binary, squared error for regression) with AdaGrad step sizes per
// coefficient (learning_rate / sqrt(sum of its squared gradients)). The
// steps are taken on the coefficients of standardised inputs z = (x - mean)
// / sd (mean and sd of the rows; NaN inputs count as 0, as the evaluator
// has them) and, for regression, a standardised target, then mapped back to
// raw weights: the model's predictions are unchanged by the mapping, and
// raw feature scales do not change the size of a step. `l2` applies to the
// standardised weights. Returns the updated model JSON. InvalidArgument for
// multiclass models or a feature count that differs from the model's;
// Unavailable when `cancel` is set (checked between passes).
struct OnlineOptions {
  double learning_rate = 0.05;
  int passes = 1;
  double l2 = 0;
  const std::atomic<bool>* cancel = nullptr;
};
Result<std::string> UpdateLinear(const std::string& model_json, const float* x, const float* y,
                                 size_t rows, size_t cols, const OnlineOptions& options);

}  // namespace keel::train
