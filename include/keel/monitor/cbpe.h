// File: keel/monitor/cbpe.h
//
// Label-free performance estimation for binary classifiers, after NannyML's
// confidence-based performance estimation (CBPE): if the model's
// probabilities are calibrated, each prediction's probability is the chance
// that its label is positive, so the expected confusion matrix and ROC curve
// of a window follow from the probabilities alone, before any label arrives.
//
//   // At training, on held-out rows:
//   keel::monitor::Calibration cal = keel::monitor::Calibration::Fit(valid_probs, valid_labels);
//   // On a window of logged probabilities:
//   for (const auto& [metric, value] :
//        keel::monitor::EstimateBinaryPerformance(window_probs, &cal)) { ... }
//
// Calibration: isotonic regression (pool adjacent violators) of the labels on
// the scores; Apply() interpolates linearly between the fitted blocks' end
// points and clips outside them (scikit-learn's IsotonicRegression with
// out_of_bounds="clip"). The estimate is only as good as the calibration and
// assumes the relation between probability and outcome did not change (no
// concept drift): it tracks covariate shift, not concept shift; realised
// performance, once labels arrive, is the ground truth.
//
// Estimates at `threshold` on the raw score (the model's decision rule):
//   expected TP = sum of c_i over predicted positives (c_i the calibrated
//   probability), FP = sum of (1 - c_i) over them, FN = sum of c_i over
//   predicted negatives, TN = sum of (1 - c_i) over them; accuracy,
//   precision, recall, F1 from those; AUC = the area under the expected ROC
//   curve (scores descending, TPR = cumulative c / sum c, FPR = cumulative
//   (1 - c) / sum (1 - c), ties in one step, trapezoids).
//
// Threads: pure functions and plain values.
#pragma once

#include <span>
#include <string>
#include <utility>
#include <vector>

namespace keel::monitor {

struct Calibration {
  std::vector<double> x;  // ascending scores
  std::vector<double> y;  // calibrated probabilities at x (non-decreasing)

  // Isotonic fit of labels (0/1) on scores. Empty when there are no rows.
  static Calibration Fit(std::span<const float> scores, std::span<const float> labels);
  // The calibrated probability of `score`; the score itself when empty.
  double Apply(double score) const;
  bool empty() const { return x.empty(); }
};

// auc, accuracy, precision, recall, f1 (each NaN when undefined, e.g. no
// expected positives). `calibration` may be null (scores used as they are).
// Non-finite scores are left out (Fit leaves those rows out too; Apply(NaN)
// is NaN).
std::vector<std::pair<std::string, double>> EstimateBinaryPerformance(
    std::span<const float> scores, const Calibration* calibration, double threshold = 0.5);

}  // namespace keel::monitor
