// Isotonic calibration and confidence-based performance estimation
// (keel/monitor/cbpe.h).
#include "keel/monitor/cbpe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace keel::monitor {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double Ratio(double a, double b) { return b > 0 ? a / b : kNaN; }

}  // namespace

Calibration Calibration::Fit(std::span<const float> scores, std::span<const float> labels) {
  Calibration c;
  // Rows with a non-finite score are left out (NaN has no place in an order).
  std::vector<size_t> order;
  for (size_t i = 0; i < std::min(scores.size(), labels.size()); ++i) {
    if (std::isfinite(scores[i])) order.push_back(i);
  }
  const size_t n = order.size();
  if (n == 0) return c;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Pool adjacent violators over runs of equal scores (ties share a block).
  struct Block {
    double lo, hi;  // score range
    double sum;     // labels
    double weight;  // rows
  };
  std::vector<Block> blocks;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    double sum = 0;
    while (j < n && scores[order[j]] == scores[order[i]]) sum += labels[order[j++]] > 0.5f ? 1 : 0;
    blocks.push_back({scores[order[i]], scores[order[i]], sum, static_cast<double>(j - i)});
    while (blocks.size() > 1) {
      Block& b = blocks.back();
      Block& a = blocks[blocks.size() - 2];
      if (a.sum / a.weight <= b.sum / b.weight) break;
      a.hi = b.hi;
      a.sum += b.sum;
      a.weight += b.weight;
      blocks.pop_back();
    }
    i = j;
  }
  for (const Block& b : blocks) {
    const double v = b.sum / b.weight;
    c.x.push_back(b.lo);
    c.y.push_back(v);
    if (b.hi > b.lo) {
      c.x.push_back(b.hi);
      c.y.push_back(v);
    }
  }
  return c;
}

double Calibration::Apply(double score) const {
  if (x.empty() || std::isnan(score)) return score;
  if (score <= x.front()) return y.front();
  if (score >= x.back()) return y.back();
  const size_t k = static_cast<size_t>(std::upper_bound(x.begin(), x.end(), score) - x.begin());
  const double x0 = x[k - 1], x1 = x[k];
  if (x1 <= x0) return y[k];
  return y[k - 1] + (y[k] - y[k - 1]) * (score - x0) / (x1 - x0);
}

std::vector<std::pair<std::string, double>> EstimateBinaryPerformance(
    std::span<const float> scores, const Calibration* calibration, double threshold) {
  std::vector<std::pair<double, double>> sc;  // (score, calibrated), finite scores only
  sc.reserve(scores.size());
  double tp = 0, fp = 0, fn = 0, tn = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i])) continue;
    double c = calibration != nullptr ? calibration->Apply(scores[i]) : scores[i];
    c = std::clamp(c, 0.0, 1.0);
    sc.emplace_back(scores[i], c);
    if (scores[i] >= threshold) {
      tp += c;
      fp += 1 - c;
    } else {
      fn += c;
      tn += 1 - c;
    }
  }
  const size_t n = sc.size();
  // The expected ROC curve: scores descending, ties in one step.
  std::sort(sc.begin(), sc.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  const double pos = tp + fn;
  const double neg = fp + tn;
  double auc = kNaN;
  if (pos > 0 && neg > 0) {
    double area = 0, cum_p = 0;
    for (size_t i = 0; i < n;) {
      size_t j = i;
      double dp = 0, dn = 0;
      while (j < n && sc[j].first == sc[i].first) {
        dp += sc[j].second;
        dn += 1 - sc[j].second;
        ++j;
      }
      // The trapezoid of this step: width dn / neg, mean height (cum_p + dp / 2) / pos.
      area += (dn / neg) * ((cum_p + dp / 2) / pos);
      cum_p += dp;
      i = j;
    }
    auc = area;
  }
  const double precision = Ratio(tp, tp + fp);
  const double recall = Ratio(tp, tp + fn);
  const double f1 = Ratio(2 * tp, 2 * tp + fp + fn);
  return {{"auc", auc},
          {"accuracy", Ratio(tp + tn, static_cast<double>(n))},
          {"precision", precision},
          {"recall", recall},
          {"f1", f1}};
}

}  // namespace keel::monitor
