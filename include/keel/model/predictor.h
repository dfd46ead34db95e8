// File: keel/model/predictor.h
//
// Predictor: a Model compiled for evaluation. Immutable after Compile, so one
// Predictor is shared by any number of threads without locks.
//
//   KEEL_ASSIGN_OR_RETURN(Predictor p, Predictor::Compile(model));
//   std::vector<float> out(p.num_outputs());
//   p.PredictRow(x.data(), out.data());                     // latency path
//   p.PredictBatch(rows.data(), n, out_all.data(), &pool);  // throughput path
//
// Inputs are dense row-major float32 with NaN for missing values, exactly
// num_features() values per row. Outputs are num_outputs() floats per row,
// after the model's transform (PredictMargin* skip the transform and return
// num_groups() margins).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "keel/core/result.h"
#include "keel/model/model.h"

namespace keel {
class ThreadPool;
}

namespace keel::model {

class Predictor {
 public:
  static Result<Predictor> Compile(const Model& model);

  int32_t num_features() const;
  int32_t num_groups() const;
  int32_t num_outputs() const;
  Task task() const;
  Transform transform() const;

  // One row: x[num_features] -> out[num_outputs]. Lock-free, allocation-free.
  void PredictRow(const float* x, float* out) const;
  void PredictRowMargin(const float* x, float* out) const;

  // Many rows: x[rows * num_features] -> out[rows * num_outputs]. Uses `pool`
  // when given (nullptr: the calling thread only).
  void PredictBatch(const float* x, size_t rows, float* out, ThreadPool* pool = nullptr) const;
  void PredictBatchMargin(const float* x, size_t rows, float* out,
                          ThreadPool* pool = nullptr) const;

  // Applies the transform to margins in place (n rows of num_groups values,
  // compacted to num_outputs values per row).
  void ApplyTransform(float* margins, size_t rows) const;

  struct Compiled;  // implementation detail, defined in predictor.cc

 private:
  explicit Predictor(std::shared_ptr<const Compiled> c) : c_(std::move(c)) {}
  std::shared_ptr<const Compiled> c_;
};

}  // namespace keel::model
