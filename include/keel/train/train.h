// File: keel/train/train.h
//
// Training from CSV: read and type the data, split train/validation, fit the
// feature pipeline, train (XGBoost through libxgboost, or keel's own
// linear/logistic model), evaluate natively, and produce a model package with
// everything a run records: params, metrics, data version, code version,
// feature schema and the reference profile.
//
//   keel::train::TrainSpec spec;
//   spec.data_path = "churn.csv";
//   spec.target = "churn";
//   spec.params = {{"n_estimators", "400"}, {"learning_rate", "0.05"}};
//   KEEL_ASSIGN_OR_RETURN(keel::train::TrainedModel m, keel::train::TrainModel(spec, {}));
//   // then RecordTraining(m, recorder, ...) logs it as a run and registers it.
//
// Training knows nothing of where runs are recorded: RunRecorder is the seam
// (the CLI implements it over the REST API, embedded or remote).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "keel/core/result.h"
#include "keel/model/package.h"
#include "keel/train/metrics.h"

namespace keel::train {

using KeyValues = std::vector<std::pair<std::string, std::string>>;

struct TrainSpec {
  std::string data_path;
  std::string target;
  // xgboost (gbtree), xgboost-linear (gblinear), linear (keel least squares),
  // logistic (keel logistic regression).
  std::string model = "xgboost";
  // Model parameters. XGBoost names, plus n_estimators / num_boost_round
  // (rounds) and learning_rate (eta); keel linear/logistic: l2, max_iter.
  KeyValues params;
  std::string validation_path;  // empty: split data_path
  double validation_fraction = 0.2;
  uint64_t seed = 42;
  std::string task = "auto";           // auto | binary | multiclass | regression
  std::string positive_class;          // binary: the target value that is 1
  std::string categorical = "onehot";  // onehot | native (XGBoost categorical splits)
  KeyValues column_types;              // column -> numeric | categorical | boolean
  std::vector<std::string> drop_columns;
  int early_stopping_rounds = 0;
  std::string output_name;  // default: <target>_probability or <target>
  // Store a content-addressed copy of the data files as artifacts
  // (datasets/sha256/<hash>/<file name>, shared and de-duplicated across runs)
  // so the run can be reproduced exactly.
  bool snapshot_data = false;
  // What the run records as the data's path (default: data_path); set when
  // data_path is a downloaded snapshot.
  std::string data_label;
  std::string validation_label;
};

struct DataVersion {
  std::string role;  // train | validation
  std::string path;
  std::string sha256;  // of the file's bytes
  uint64_t bytes = 0;
  uint64_t rows = 0;
  uint64_t columns = 0;
};

struct TrainedModel {
  model::PackageContents package;
  KeyValues params;             // everything that defines the run (logged as params)
  std::vector<Metric> metrics;  // "train_auc", "valid_auc", ...
  KeyValues tags;               // data and code version, keel version, task
  std::vector<DataVersion> data;
  std::string schema_json;  // the input columns and their types
  double seconds = 0;
};

struct TrainProgress {
  // Called with a short status line ("round 120/400 valid-auc 0.9213").
  std::function<void(const std::string&)> on_status;
  const std::atomic<bool>* cancel = nullptr;
};

Result<TrainedModel> TrainModel(const TrainSpec& spec, const TrainProgress& progress);

// The inverse of TrainedModel::params: rebuilds a spec from a run's params
// (for `keel train --rerun`).
Result<TrainSpec> SpecFromParams(const KeyValues& params);

// Where a training job records its run.
class RunRecorder {
 public:
  virtual ~RunRecorder() = default;
  // Returns the run id.
  // `experiment_id` wins over `experiment` (a name, created when missing).
  virtual Result<std::string> StartRun(const std::string& experiment,
                                       const std::string& experiment_id,
                                       const std::string& run_name, const KeyValues& tags) = 0;
  virtual Status LogParams(const std::string& run_id, const KeyValues& params) = 0;
  virtual Status LogMetrics(const std::string& run_id, const std::vector<Metric>& metrics) = 0;
  virtual Status SetTags(const std::string& run_id, const KeyValues& tags) = 0;
  virtual Status LogDatasets(const std::string& run_id, const std::vector<DataVersion>& data,
                             const std::string& schema_json) = 0;
  // Uploads a local directory under the run's artifact path; returns the
  // artifact URI of the uploaded directory.
  virtual Result<std::string> UploadDirectory(const std::string& run_id,
                                              const std::filesystem::path& dir,
                                              const std::string& artifact_path) = 0;
  // status: FINISHED | FAILED | KILLED
  virtual Status EndRun(const std::string& run_id, const std::string& status) = 0;
  struct RunInfo {
    std::string experiment_id;
    KeyValues params;
    KeyValues tags;
  };
  virtual Result<RunInfo> GetRun(const std::string& run_id) = 0;
  // Stores a file at `relative` under the artifact root unless a file is
  // already there; returns its artifact URI.
  virtual Result<std::string> PutSharedFile(const std::string& relative,
                                            const std::filesystem::path& file) = 0;
  // Downloads an artifact URI to a local file.
  virtual Status DownloadFile(const std::string& uri, const std::filesystem::path& dest) = 0;
  // Registers `source` as a new version of `name` (creating the model when
  // needed); returns the version number and its status.
  virtual Result<std::pair<std::string, std::string>> RegisterModel(const std::string& name,
                                                                    const std::string& source,
                                                                    const std::string& run_id) = 0;
};

struct RecordOptions {
  std::string experiment = "Default";
  std::string experiment_id;  // wins over experiment when set
  KeyValues extra_tags;
  std::string run_name;
  std::string register_name;          // empty: do not register
  std::filesystem::path scratch_dir;  // where the package is staged (default: temp dir)
  // Called with the run's id as soon as the run exists, before training (a
  // retraining job records it, so a crash leaves no run it cannot name).
  std::function<void(const std::string& run_id)> on_run_started;
};

struct RecordResult {
  std::string run_id;
  std::string model_uri;  // artifact URI of the model directory
  std::string version;    // registered version, if any
  std::string version_status;
};

// Runs `train` inside a run: starts the run first (so a failure or Ctrl-C
// leaves it FAILED or KILLED), logs params, metrics, tags and datasets, uploads
// the model package, ends the run FINISHED and registers the model.
Result<RecordResult> TrainAndRecord(const TrainSpec& spec, const TrainProgress& progress,
                                    RunRecorder& recorder, const RecordOptions& options);

// Continued training (retraining's continuous mode): a model keel trained,
// updated on new rows instead of trained from scratch. XGBoost models
// (xgboost-json, xgboost-ubj) get `rounds` new trees fitted on the rows on
// top of theirs (their objective and base score kept; `params` are booster
// parameters such as max_depth, with keel train's defaults (tree_method
// hist, seed 42, unknown names refused); `learning_rate` sets eta, default
// 0.3 as XGBoost's). keel-linear binary and regression models take `rounds`
// passes of online gradient steps over the rows in order (UpdateLinear: log
// loss or squared error, AdaGrad on standardised features; `learning_rate`
// default 0.05; no other parameters). The rows are the base
// package's model inputs (encoded with its pipeline), labels as the base
// model's outputs index them (class index, or the value for regression).
// The new package keeps the base's pipeline, profiles, input example and
// signature; its metrics are the updated model's on the rows (train_*).
struct ContinueSpec {
  std::filesystem::path base_package;  // a package keel wrote (keel flavor)
  std::string base_label;              // names the base in params ("churn version 3")
  const float* x = nullptr;            // rows x num_features of the base's pipeline
  const float* labels = nullptr;
  size_t rows = 0;
  int rounds = 20;
  double learning_rate = 0;  // 0: the default of the model kind
  KeyValues params;          // XGBoost booster parameters
  std::string data_label;    // where the rows came from (recorded as the train dataset)
  std::string data_sha256;   // their version
};

Result<TrainedModel> ContinueModel(const ContinueSpec& spec, const TrainProgress& progress);
// OK when models of `format` (model::PackageInfo::format) can be continued.
Status CanContinue(const std::string& format);
// ContinueModel inside a run, recorded and registered as TrainAndRecord does.
Result<RecordResult> ContinueAndRecord(const ContinueSpec& spec, const TrainProgress& progress,
                                       RunRecorder& recorder, const RecordOptions& options);

// Trains again from the spec a run recorded, into a new run of the same
// experiment tagged keel.rerun_of. The data is the run's snapshot when it has
// one; otherwise the file at the recorded path, which must still have the
// recorded SHA-256 (FailedPrecondition when it changed).
Result<RecordResult> Rerun(const std::string& run_id, const TrainProgress& progress,
                           RunRecorder& recorder, RecordOptions options);

}  // namespace keel::train
