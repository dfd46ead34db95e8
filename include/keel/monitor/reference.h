// File: keel/monitor/reference.h
//
// A reference profile: what drift detection needs of a reference data set
// (the training data), computed once and stored, e.g. with a model version
// (keel/reference.keelref in its package), so later comparisons neither
// re-read nor re-sort the reference.
//
//   KEEL_ASSIGN_OR_RETURN(keel::monitor::ReferenceProfile ref,
//                         keel::monitor::BuildReference(train_table));
//   KEEL_RETURN_IF_ERROR(keel::monitor::WriteReferenceFile("train.keelref", ref));
//   ...
//   KEEL_ASSIGN_OR_RETURN(ref, keel::monitor::ReadReferenceFile("train.keelref"));
//   KEEL_ASSIGN_OR_RETURN(keel::monitor::DriftReport r,
//                         keel::monitor::CompareToReference(ref, last_week, options));
//
// Per column it holds: numeric columns, the non-missing values sorted
// (exact: every statistic gives what it gives on the raw reference) and the
// quantile bins fitted on them (ReferenceOptions::bins) with the reference
// shares; categorical and boolean columns, the category counts; both, the
// missing count. A model's profile adds its predictions on held-out rows and
// its validation metrics. A comparison with a profile therefore equals the comparison
// with the table it was built from (CompareTables), bit for bit, when the
// same bins are asked for.
//
// File format (.keelref): the 8 bytes "KEELREF1", the body's size as a
// little-endian uint64, the body's CRC-32 (zlib's) as a uint32, four zero
// bytes, then the body: little-endian fixed-width integers, IEEE doubles and
// length-prefixed strings (src/monitor/reference.cc writes the layout). The
// body is not compressed (sorted doubles hardly compress) so a profile loads
// at memory speed. Reading checks the checksum and every length: a damaged
// file is DataLoss naming what is wrong, never a crash.
//
// Size: 8 bytes per non-missing numeric value; for a 1M-row, 20-column
// numeric reference about 160 MB. Categorical columns cost their distinct
// categories only.
//
// Threads: plain values; BuildReference runs columns on options.pool.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keel/core/result.h"
#include "keel/core/thread_pool.h"
#include "keel/data/table.h"
#include "keel/monitor/cbpe.h"
#include "keel/monitor/stats.h"

namespace keel::monitor {

struct ReferenceColumn {
  std::string name;
  ColumnKind kind = ColumnKind::kNumeric;
  bool boolean = false;           // a boolean column, tested as the categories false/true
  NumericSample numeric;          // numeric columns
  QuantileBins bins;              // numeric columns with at least one value
  CategoricalSample categorical;  // categorical and boolean columns
  uint64_t rows() const {
    return kind == ColumnKind::kNumeric ? numeric.rows() : categorical.rows();
  }
};

struct ReferenceProfile {
  uint64_t rows = 0;  // rows of the reference table
  int bins = 10;
  std::vector<ReferenceColumn> columns;  // the table's order, then the prediction column
  // Set for a model's profile (keel train): the name of the column holding the
  // model's predictions on its validation rows (the training rows when there
  // are none): numeric for binary (the positive class's probability) and
  // regression models, categorical (the predicted class) for multiclass
  // ones. Its rows are those predictions, not `rows`. Empty: none.
  std::string prediction_column;
  // Set for a model's profile: the label column of its training data (a
  // column of the profile; not a model input).
  std::string target_column;
  // The validation metrics recorded at training (auc, log_loss, ... / rmse,
  // mae, ...), which live performance is compared with.
  std::vector<std::pair<std::string, double>> performance;
  // Binary classifiers: the isotonic calibration of the validation scores
  // (keel/monitor/cbpe.h), for the label-free performance estimate. Empty
  // otherwise.
  Calibration calibration;

  const ReferenceColumn* Find(std::string_view name) const;
  std::string Serialize() const;
  static Result<ReferenceProfile> Parse(std::string_view bytes, std::string_view source);
};

struct ReferenceOptions {
  int bins = 10;                     // quantile bins (PSI, Jensen-Shannon, Hellinger)
  std::vector<std::string> columns;  // empty: every column
  ThreadPool* pool = nullptr;        // null: ThreadPool::Default()
};

// InvalidArgument for bins outside 1 .. 2^20 or a listed column the table lacks.
[[nodiscard]] Result<ReferenceProfile> BuildReference(const data::Table& table,
                                                      const ReferenceOptions& options = {});
// The same, consuming `table`: its numeric columns are sorted in place and
// become the profile's samples (no copy; the table is left empty).
[[nodiscard]] Result<ReferenceProfile> BuildReference(data::Table&& table,
                                                      const ReferenceOptions& options = {});

// Written to a temporary sibling and renamed into place.
[[nodiscard]] Status WriteReferenceFile(const std::filesystem::path& path,
                                        const ReferenceProfile& profile);
// NotFound when missing, DataLoss when damaged or not a reference file.
[[nodiscard]] Result<ReferenceProfile> ReadReferenceFile(const std::filesystem::path& path);
// True when `bytes` start with the reference file magic (8 bytes suffice).
bool LooksLikeReference(std::string_view bytes);

}  // namespace keel::monitor
