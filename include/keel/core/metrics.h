// File: keel/core/metrics.h
//
// Prometheus metrics: counters, gauges and histograms with labels, rendered
// in the Prometheus text exposition format (version 0.0.4) for GET /metrics.
//
//   keel::metrics::Registry registry;
//   auto& requests = registry.AddCounter("keel_requests_total", "Requests answered.",
//                                        {"model", "endpoint", "code"});
//   auto& latency = registry.AddHistogram("keel_request_duration_seconds",
//                                         "Time from request to response.", {"endpoint"},
//                                         keel::metrics::LatencyBuckets());
//   requests.WithLabels({"churn", "predict", "200"}).Inc();   // cache the reference on hot paths
//   latency.WithLabels({"predict"}).Observe(0.000120);
//   registry.AddGaugeCallback("keel_prediction_log_queue_depth", "Records waiting.",
//                             [&] { return double(log.queued()); });
//   std::string text = registry.Render();
//
// Names must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*
// and must not start with "__"; counters should end in "_total". A bad name,
// a name registered twice, or a label-value count that differs from the
// family's label names is a programming error: Add* and WithLabels throw
// std::invalid_argument (callers register fixed names at start-up).
//
// Threads: everything is thread-safe. A metric reference returned by
// WithLabels stays valid for the registry's lifetime; updating it is
// lock-free (relaxed atomics). WithLabels takes the family's mutex (a hash
// lookup); Render takes each family's mutex in turn and runs the gauge
// callbacks on the calling thread (they must not call into the registry).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace keel::metrics {

class Counter {
 public:
  // `v` must be >= 0 (negative values are ignored).
  void Inc(double v = 1.0);
  double Value() const;

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double v);
  void Inc(double v = 1.0);
  void Dec(double v = 1.0);
  double Value() const;

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  // `bounds`: strictly increasing finite upper bounds; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  uint64_t Count() const;
  double Sum() const;
  // Cumulative counts per bound, then the +Inf bucket (= Count()).
  std::vector<uint64_t> CumulativeCounts() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0.0};
};

// Default request-latency buckets in seconds: 50 us .. 10 s.
std::vector<double> LatencyBuckets();

template <typename Metric>
class Family;

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  CounterFamily& AddCounter(std::string name, std::string help,
                            std::vector<std::string> label_names = {});
  GaugeFamily& AddGauge(std::string name, std::string help,
                        std::vector<std::string> label_names = {});
  HistogramFamily& AddHistogram(std::string name, std::string help,
                                std::vector<std::string> label_names, std::vector<double> bounds);
  // A label-less gauge read at Render time.
  void AddGaugeCallback(std::string name, std::string help, std::function<double()> read);
  // A label-less counter read at Render time: `read` must never decrease
  // (e.g. a count kept by another component).
  void AddCounterCallback(std::string name, std::string help, std::function<double()> read);

  // Families in registration order; within a family, series in order of
  // first use. Label values are escaped (\\, \", \n); values print as
  // Prometheus floats (+Inf, -Inf, NaN; integers without exponent).
  std::string Render() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A named metric with label names; one series per distinct label values.
template <typename Metric>
class Family {
 public:
  // The series for these label values (created on first use).
  Metric& WithLabels(std::initializer_list<std::string_view> values);
  Metric& WithLabels(const std::vector<std::string>& values);
  // Removes a series (e.g. of an unloaded model version); references to it
  // stay valid but are no longer rendered.
  void Remove(const std::vector<std::string>& values);

  struct Impl;
  explicit Family(std::unique_ptr<Impl> impl);
  ~Family();

 private:
  friend class Registry;
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::metrics
