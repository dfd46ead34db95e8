#include "keel/train/linear_trainer.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace keel::train {
namespace {

// Solves A x = b for symmetric positive definite A (n x n, row-major) in place.
Status CholeskySolve(std::vector<double>& a, std::vector<double>& b, size_t n) {
  for (size_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (size_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) return InvalidArgument("the normal equations are singular; increase l2");
    d = std::sqrt(d);
    a[j * n + j] = d;
    for (size_t i = j + 1; i < n; ++i) {
      double s = a[i * n + j];
      for (size_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / d;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    double s = b[i];
    for (size_t k = 0; k < i; ++k) s -= a[i * n + k] * b[k];
    b[i] = s / a[i * n + i];
  }
  for (size_t i = n; i-- > 0;) {
    double s = b[i];
    for (size_t k = i + 1; k < n; ++k) s -= a[k * n + i] * b[k];
    b[i] = s / a[i * n + i];
  }
  return OkStatus();
}

}  // namespace

Result<std::string> TrainLinear(const float* x, const float* y, size_t rows, size_t cols,
                                const std::vector<std::string>& feature_names,
                                const LinearOptions& o) {
  if (rows < 2 || cols == 0) return InvalidArgument("need at least 2 rows and 1 feature");
  if (cols > 4096) return InvalidArgument("keel linear models take at most 4096 features");
  if (!(o.l2 >= 0) || o.max_iter <= 0) return InvalidArgument("l2 must be >= 0, max_iter > 0");
  // Standardise (NaN counts as 0).
  std::vector<double> mean(cols, 0.0), sd(cols, 0.0);
  auto at = [&](size_t r, size_t c) {
    const float v = x[r * cols + c];
    return std::isnan(v) ? 0.0 : static_cast<double>(v);
  };
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) mean[c] += at(r, c);
  }
  for (double& m : mean) m /= static_cast<double>(rows);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) sd[c] += (at(r, c) - mean[c]) * (at(r, c) - mean[c]);
  }
  for (double& s : sd) s = std::sqrt(s / static_cast<double>(rows));
  const size_t n = cols + 1;  // last coefficient: intercept
  std::vector<double> z(n);
  auto row_z = [&](size_t r) {
    for (size_t c = 0; c < cols; ++c) z[c] = sd[c] > 0 ? (at(r, c) - mean[c]) / sd[c] : 0.0;
    z[cols] = 1.0;
  };
  const double penalty = o.l2 * static_cast<double>(rows);
  std::vector<double> w(n, 0.0);
  if (!o.logistic) {
    std::vector<double> a(n * n, 0.0), b(n, 0.0);
    for (size_t r = 0; r < rows; ++r) {
      row_z(r);
      for (size_t i = 0; i < n; ++i) {
        b[i] += z[i] * y[r];
        for (size_t j = 0; j <= i; ++j) a[i * n + j] += z[i] * z[j];
      }
    }
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < i; ++j) a[j * n + i] = a[i * n + j];
      if (i < cols) a[i * n + i] += penalty + (sd[i] > 0 ? 0.0 : 1.0);
    }
    KEEL_RETURN_IF_ERROR(CholeskySolve(a, b, n));
    w = b;
  } else {
    for (size_t r = 0; r < rows; ++r) {
      if (y[r] != 0.0f && y[r] != 1.0f) return InvalidArgument("logistic labels must be 0 or 1");
    }
    for (int it = 0; it < o.max_iter; ++it) {
      std::vector<double> h(n * n, 0.0), g(n, 0.0);
      for (size_t r = 0; r < rows; ++r) {
        row_z(r);
        double m = 0;
        for (size_t i = 0; i < n; ++i) m += w[i] * z[i];
        const double p = 1.0 / (1.0 + std::exp(-m));
        const double wt = std::max(p * (1 - p), 1e-12);
        for (size_t i = 0; i < n; ++i) {
          g[i] += (p - y[r]) * z[i];
          for (size_t j = 0; j <= i; ++j) h[i * n + j] += wt * z[i] * z[j];
        }
      }
      for (size_t i = 0; i < n; ++i) {
        for (size_t j = 0; j < i; ++j) h[j * n + i] = h[i * n + j];
        if (i < cols) {
          h[i * n + i] += penalty + (sd[i] > 0 ? 0.0 : 1.0);
          g[i] += penalty * w[i];
        }
      }
      KEEL_RETURN_IF_ERROR(CholeskySolve(h, g, n));
      double step = 0;
      for (size_t i = 0; i < n; ++i) {
        w[i] -= g[i];
        step = std::max(step, std::fabs(g[i]));
      }
      if (step < o.tolerance) break;
    }
  }
  // Fold the standardisation into raw-feature weights.
  std::vector<double> weights(cols, 0.0);
  double bias = w[cols];
  for (size_t c = 0; c < cols; ++c) {
    if (sd[c] > 0) {
      weights[c] = w[c] / sd[c];
      bias -= w[c] * mean[c] / sd[c];
    }
  }
  nlohmann::json doc = {{"keel_linear", 1},
                        {"task", o.logistic ? "binary" : "regression"},
                        {"num_features", cols},
                        {"weights", weights},
                        {"bias", {bias}}};
  if (feature_names.size() == cols) doc["feature_names"] = feature_names;
  return doc.dump();
}

Result<std::string> UpdateLinear(const std::string& model_json, const float* x, const float* y,
                                 size_t rows, size_t cols, const OnlineOptions& o) {
  if (!(o.learning_rate > 0) || o.passes <= 0 || !(o.l2 >= 0)) {
    return InvalidArgument("learning_rate must be > 0, passes > 0, l2 >= 0");
  }
  nlohmann::json doc = nlohmann::json::parse(model_json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return InvalidArgument("keel-linear: not JSON");
  try {
    const std::string task = doc.value("task", "");
    if (task != "binary" && task != "regression") {
      return InvalidArgument("online updates take binary and regression keel-linear models, not " +
                             (task.empty() ? std::string("this one") : task));
    }
    const auto n = doc.at("num_features").get<size_t>();
    if (n != cols) {
      return InvalidArgument("the rows have " + std::to_string(cols) +
                             " features; the model reads " + std::to_string(n));
    }
    std::vector<double> w = doc.at("weights").get<std::vector<double>>();
    std::vector<double> b = doc.at("bias").get<std::vector<double>>();
    if (w.size() != n || b.size() != 1) return InvalidArgument("keel-linear: bad weights");
    const bool logistic = task == "binary";
    // Steps are taken on coefficients of standardised inputs (and, for
    // regression, a standardised target), so raw scales do not matter:
    // z = (x - mean) / sd with NaN as 0, then mapped back at the end.
    auto at = [&](size_t r, size_t c) {
      const float v = x[r * cols + c];
      return std::isnan(v) ? 0.0 : static_cast<double>(v);
    };
    std::vector<double> mean(n, 0.0), sd(n, 0.0);
    double my = 0, sy = 1;
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < n; ++c) mean[c] += at(r, c);
    }
    for (double& m : mean) m /= static_cast<double>(rows);
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < n; ++c) sd[c] += (at(r, c) - mean[c]) * (at(r, c) - mean[c]);
    }
    for (double& v : sd) v = v > 0 ? std::sqrt(v / static_cast<double>(rows)) : 1.0;
    if (!logistic) {
      double m2 = 0;
      for (size_t r = 0; r < rows; ++r) my += y[r];
      my /= static_cast<double>(rows);
      for (size_t r = 0; r < rows; ++r) m2 += (y[r] - my) * (y[r] - my);
      sy = m2 > 0 ? std::sqrt(m2 / static_cast<double>(rows)) : 1.0;
    }
    std::vector<double> ws(n);
    double bs = b[0] - my;
    for (size_t c = 0; c < n; ++c) {
      ws[c] = w[c] * sd[c] / sy;
      bs += w[c] * mean[c];
    }
    bs /= sy;
    std::vector<double> g2(n + 1, 0.0);  // AdaGrad accumulators; last: the bias
    std::vector<double> z(n);
    constexpr double kEps = 1e-8;
    for (int pass = 0; pass < o.passes; ++pass) {
      if (o.cancel != nullptr && o.cancel->load()) {
        return Unavailable("online update cancelled at pass " + std::to_string(pass));
      }
      for (size_t r = 0; r < rows; ++r) {
        double s = bs;
        for (size_t c = 0; c < n; ++c) {
          z[c] = (at(r, c) - mean[c]) / sd[c];
          s += ws[c] * z[c];
        }
        const double pred = logistic ? 1.0 / (1.0 + std::exp(-s)) : s;
        const double err = pred - (static_cast<double>(y[r]) - my) / sy;
        for (size_t c = 0; c < n; ++c) {
          const double grad = err * z[c] + o.l2 * ws[c];
          if (grad == 0) continue;
          g2[c] += grad * grad;
          ws[c] -= o.learning_rate * grad / (std::sqrt(g2[c]) + kEps);
        }
        g2[n] += err * err;
        bs -= o.learning_rate * err / (std::sqrt(g2[n]) + kEps);
      }
    }
    double bias = bs * sy + my;
    for (size_t c = 0; c < n; ++c) {
      w[c] = ws[c] * sy / sd[c];
      bias -= w[c] * mean[c];
    }
    b[0] = bias;
    for (double v : w) {
      if (!std::isfinite(v)) return InvalidArgument("the online update diverged");
    }
    if (!std::isfinite(b[0])) return InvalidArgument("the online update diverged");
    doc["weights"] = w;
    doc["bias"] = b;
    return doc.dump();
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(std::string("keel-linear: ") + e.what());
  }
}

}  // namespace keel::train
