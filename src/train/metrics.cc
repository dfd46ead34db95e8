#include "keel/train/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace keel::train {

double RocAuc(std::span<const float> scores, std::span<const float> labels) {
  const size_t n = std::min(scores.size(), labels.size());
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Rank-sum with average ranks for ties.
  double pos = 0, neg = 0, rank_sum = 0;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k) {
      if (labels[order[k]] > 0.5f) {
        pos += 1;
        rank_sum += avg_rank;
      } else {
        neg += 1;
      }
    }
    i = j;
  }
  if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
  return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg);
}

double LogLoss(std::span<const float> probs, std::span<const float> labels) {
  const size_t n = std::min(probs.size(), labels.size());
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const double p = std::clamp(static_cast<double>(probs[i]), 1e-15, 1 - 1e-15);
    sum -= labels[i] > 0.5f ? std::log(p) : std::log(1 - p);
  }
  return sum / static_cast<double>(n);
}

ClassRates RatesOf(double tp, double fp, double fn) {
  ClassRates r;
  r.precision = tp + fp > 0 ? tp / (tp + fp) : 0.0;
  r.recall = tp + fn > 0 ? tp / (tp + fn) : 0.0;
  r.f1 = r.precision + r.recall > 0 ? 2 * r.precision * r.recall / (r.precision + r.recall) : 0.0;
  return r;
}

std::vector<Metric> BinaryMetrics(std::span<const float> probs, std::span<const float> labels,
                                  double threshold) {
  const size_t n = std::min(probs.size(), labels.size());
  double tp = 0, fp = 0, tn = 0, fn = 0;
  for (size_t i = 0; i < n; ++i) {
    const bool predicted = probs[i] >= threshold;
    const bool actual = labels[i] > 0.5f;
    tp += predicted && actual;
    fp += predicted && !actual;
    tn += !predicted && !actual;
    fn += !predicted && actual;
  }
  const ClassRates r = RatesOf(tp, fp, fn);
  return {{"auc", RocAuc(probs, labels)},
          {"log_loss", LogLoss(probs, labels)},
          {"accuracy", n ? (tp + tn) / static_cast<double>(n) : 0.0},
          {"precision", r.precision},
          {"recall", r.recall},
          {"f1", r.f1}};
}

std::vector<Metric> RegressionMetrics(std::span<const float> preds, std::span<const float> labels) {
  const size_t n = std::min(preds.size(), labels.size());
  if (n == 0) return {};
  double mean = 0;
  for (size_t i = 0; i < n; ++i) mean += labels[i];
  mean /= static_cast<double>(n);
  double sse = 0, sae = 0, sst = 0;
  for (size_t i = 0; i < n; ++i) {
    const double e = static_cast<double>(preds[i]) - labels[i];
    sse += e * e;
    sae += std::fabs(e);
    sst += (labels[i] - mean) * (labels[i] - mean);
  }
  const double r2 = sst > 0 ? 1 - sse / sst : std::numeric_limits<double>::quiet_NaN();
  return {{"rmse", std::sqrt(sse / static_cast<double>(n))},
          {"mae", sae / static_cast<double>(n)},
          {"r2", r2}};
}

std::vector<Metric> MulticlassMetrics(std::span<const float> probs, int classes,
                                      std::span<const float> labels) {
  const size_t k = static_cast<size_t>(classes);
  const size_t n = k ? std::min(probs.size() / k, labels.size()) : 0;
  if (n == 0) return {};
  std::vector<double> tp(k), fp(k), fn(k);
  double correct = 0, loss = 0;
  for (size_t i = 0; i < n; ++i) {
    const float* p = probs.data() + i * k;
    const size_t pred = static_cast<size_t>(std::max_element(p, p + k) - p);
    const size_t actual = static_cast<size_t>(labels[i]);
    if (actual >= k) continue;
    if (pred == actual) {
      correct += 1;
      tp[pred] += 1;
    } else {
      fp[pred] += 1;
      fn[actual] += 1;
    }
    loss -= std::log(std::clamp(static_cast<double>(p[actual]), 1e-15, 1.0));
  }
  double f1_sum = 0;
  for (size_t c = 0; c < k; ++c) {
    f1_sum += RatesOf(tp[c], fp[c], fn[c]).f1;
  }
  return {{"accuracy", correct / static_cast<double>(n)},
          {"log_loss", loss / static_cast<double>(n)},
          {"f1_macro", f1_sum / static_cast<double>(k)}};
}

bool HigherIsBetter(std::string_view metric) {
  return metric != "log_loss" && metric != "rmse" && metric != "mae";
}

double FindMetric(const std::vector<Metric>& metrics, const std::string& name) {
  for (const auto& m : metrics) {
    if (m.name == name) return m.value;
  }
  return std::numeric_limits<double>::quiet_NaN();
}

}  // namespace keel::train
