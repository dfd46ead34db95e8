// File: keel/retrain/policy.h
//
// Retraining policies: per registered model, what to train on, when, and
// what a challenger must show before it replaces the champion. Read from
// YAML (one policy per document, or a list under `policies:`).
//
//   KEEL_ASSIGN_OR_RETURN(std::vector<keel::retrain::RetrainPolicy> policies,
//                         keel::retrain::LoadPolicies("retrain.yaml"));
//
//   model: churn
//   train: { data: data/churn.csv, target: churn, model: xgboost,
//            params: { n_estimators: 400, learning_rate: 0.05 } }
//   # or   train: { command: "python train.py --out {output_dir}" }
//   schedule: "0 3 * * 1"        # cron (keel/retrain/cron.h), in `timezone`
//   timezone: UTC                # or +01:00, or a zone such as Europe/Paris
//   missed: run_once             # run_once | skip: schedules missed while down
//   on_alerts: [data_drift, performance_decay]
//   window: { recent: 30d, include_labeled_predictions: true }
//   gate: { metric: auc, min_delta: 0.0, max_regression: 0.005, min_rows: 500,
//           holdout: recent, holdout_fraction: 0.3 }
//   shadow: { duration: 1h, min_requests: 1000 }
//   promote: champion
//   watch: { duration: 24h, rollback_if: { metric: auc, drop_more_than: 0.02 } }
//   continuous: { every: 1h, min_rows: 2000, rounds: 20, learning_rate: 0.1 }
//   job: { timeout: 2h, retries: 2, retry_backoff: 5m }
//
// Every field but `model` and `train` has the default shown in the structs
// below. Durations as alert rules take them (monitor::ParseDuration: 90s,
// 30m, 24h, 30d, 2w). Unknown keys are errors (a typo must not silently drop
// a setting); errors name the source, the policy's model and the key:
// "retrain.yaml: policy 'churn': gate.min_rows: expected a non-negative
// integer, got 'many'".
//
// Threads: policies are plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "keel/core/result.h"
#include "keel/retrain/cron.h"

namespace keel::retrain {

struct TrainConfig {
  // keel trains: a CSV file, its target column, the model kind and its
  // parameters (as `keel train` takes them).
  std::string data;
  std::string target;
  std::string model = "xgboost";
  std::vector<std::pair<std::string, std::string>> params;
  // Or the team's own trainer: a shell command that writes a model keel can
  // load into {output_dir} ({data} is a CSV keel wrote of the window's
  // labeled predictions, {target} the target column; the command reads its
  // own sources besides). Exactly one of `data` and `command` is set.
  std::string command;
};

struct WindowConfig {
  int64_t recent_ms = 30LL * 86'400'000;  // how far back logged predictions count
  // Add the recent labeled predictions (minus the holdout) to the training data.
  bool include_labeled_predictions = true;
};

struct GateConfig {
  // The deciding metric; empty: auc (binary), accuracy (multiclass), rmse
  // (regression). Lower-is-better metrics (log_loss, rmse, mae) are handled.
  std::string metric;
  // The challenger must beat the champion by at least this much on `metric`.
  double min_delta = 0.0;
  // No other metric of the task may be worse than the champion's by more.
  double max_regression = 0.005;
  // Holdout rows needed before any decision; fewer rejects the challenger.
  uint64_t min_rows = 500;
  // recent: the newest labeled predictions in the window, never trained on.
  std::string holdout = "recent";
  double holdout_fraction = 0.3;  // of the window's labeled predictions
};

// The most requests a shadow phase compares (and so the largest min_requests).
inline constexpr uint64_t kMaxShadowRequests = 1'000'000;

struct ShadowConfig {
  int64_t duration_ms = 0;    // 0: no shadow phase
  uint64_t min_requests = 0;  // at most kMaxShadowRequests
};

struct WatchConfig {
  int64_t duration_ms = 0;  // 0: no watch after promotion
  std::string metric;       // empty: the gate's metric
  double drop_more_than = 0.02;
};

// Continuous mode: at this cadence, a job (trigger `continuous`) updates the
// champion on the labeled predictions it has not seen instead of training
// from scratch (keel/train/train.h, ContinueSpec): XGBoost models get
// `rounds` new trees, keel-linear models `rounds` online passes. The update
// goes through the same gate (and shadow, and watch) as any challenger.
struct ContinuousConfig {
  int64_t every_ms = 0;  // 0: no continuous mode
  // New labeled rows needed for an update (else no job); their newest
  // gate.holdout_fraction must reach gate.min_rows (checked on read).
  uint64_t min_rows = 200;
  int rounds = 20;
  double learning_rate = 0;  // 0: the model kind's default (XGBoost eta 0.3; linear 0.05)
};

struct JobConfig {
  int64_t timeout_ms = 2LL * 3'600'000;
  int retries = 0;
  int64_t retry_backoff_ms = 5LL * 60'000;
};

struct RetrainPolicy {
  std::string model;
  TrainConfig train;
  std::optional<CronSchedule> schedule;
  std::string timezone = "UTC";
  std::string missed = "run_once";  // run_once | skip
  std::vector<std::string> on_alerts;
  WindowConfig window;
  GateConfig gate;
  ShadowConfig shadow;
  std::string promote = "champion";  // the alias the challenger takes when it passes
  WatchConfig watch;
  ContinuousConfig continuous;
  JobConfig job;
  std::string source;  // file the policy came from (for messages)
};

// One or more policies from YAML text; `source` names it in errors.
Result<std::vector<RetrainPolicy>> ParsePolicies(const std::string& yaml,
                                                 const std::string& source);
// The same from a file (relative `train.data` paths are taken relative to the
// file's folder).
Result<std::vector<RetrainPolicy>> LoadPolicies(const std::string& path);

}  // namespace keel::retrain
