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
// coefficient (learning_rate / sqrt(sum of its squared gradients)), so raw
// feature scales need no standardising. NaN inputs count as 0. Returns the
// updated model JSON. InvalidArgument for multiclass models or a feature
// count that differs from the model's.
struct OnlineOptions {
  double learning_rate = 0.05;
  int passes = 1;
  double l2 = 0;  // per step, on the weights (not the bias)
};
Result<std::string> UpdateLinear(const std::string& model_json, const float* x, const float* y,
                                 size_t rows, size_t cols, const OnlineOptions& options);

}  // namespace keel::train
