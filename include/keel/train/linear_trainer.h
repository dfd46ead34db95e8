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

}  // namespace keel::train
