// File: keel/train/metrics.h
//
// Evaluation metrics, computed natively (no third-party code). Labels are
// 0/1 for binary, class indices for multiclass, values for regression.
//
//   auto m = keel::train::BinaryMetrics(probs, labels);   // auc, log_loss, ...
//   double auc = keel::train::RocAuc(probs, labels);
//
// Definitions follow scikit-learn: AUC is the area under the ROC curve with
// tied scores handled by the trapezoid rule (equal to the Mann-Whitney U
// statistic with ties counted half); log loss clips probabilities to
// [1e-15, 1 - 1e-15]; precision/recall/F1 are for the positive class at the
// given threshold, and 0 when undefined (no predicted / actual positives).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keel::train {

struct Metric {
  std::string name;
  double value = 0.0;
};

// NaN when only one class is present.
double RocAuc(std::span<const float> scores, std::span<const float> labels);
double LogLoss(std::span<const float> probs, std::span<const float> labels);

// Precision, recall and F1 of one class from its confusion counts, each 0
// when undefined (the rule above); what the classifier metrics share.
struct ClassRates {
  double precision = 0, recall = 0, f1 = 0;
};
ClassRates RatesOf(double tp, double fp, double fn);

// auc, log_loss, accuracy, precision, recall, f1.
std::vector<Metric> BinaryMetrics(std::span<const float> probs, std::span<const float> labels,
                                  double threshold = 0.5);
// rmse, mae, r2.
std::vector<Metric> RegressionMetrics(std::span<const float> preds, std::span<const float> labels);
// accuracy, log_loss, f1_macro; probs is rows x classes, row-major.
std::vector<Metric> MulticlassMetrics(std::span<const float> probs, int classes,
                                      std::span<const float> labels);

// False for the metrics where lower is better (log_loss, rmse, mae).
bool HigherIsBetter(std::string_view metric);
// The value of a named metric, or NaN.
double FindMetric(const std::vector<Metric>& metrics, const std::string& name);

}  // namespace keel::train
