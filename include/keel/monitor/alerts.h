// File: keel/monitor/alerts.h
//
// Alerts on monitoring windows: rules (from a YAML file, or defaults for a
// model), their evaluation on a WindowReport, alerts stored and folded within
// a cooldown, in-process subscribers, and webhook delivery that never blocks
// monitoring.
//
//   KEEL_ASSIGN_OR_RETURN(auto rules, keel::monitor::ParseAlertRules(yaml, "rules.yaml"));
//   for (const keel::monitor::Alert& a : keel::monitor::EvaluateRules(window, rules, now)) {
//     KEEL_ASSIGN_OR_RETURN(keel::monitor::RecordedAlert r,
//                           keel::monitor::RecordAlert(db, a, cooldown_ms));
//     if (r.is_new) bus.Publish(r.alert);    // subscribers, webhook
//   }
//
// Rules file:
//   rules:
//     - name: data_drift            # unique per file
//       model: churn                # a model name, or "*" (default) for every model
//       metric: drift.dataset       # what to watch (below)
//       op: ">="                    # >, >=, <, <= (default >)
//       threshold: 1
//       window: 1h                  # 90s, 30m, 1h, 7d (default 1h)
//       min_samples: 100            # predictions (labelled ones for performance.*)
//       severity: warning           # info, warning, critical (default warning)
//       cooldown: 6h                # a firing within this of the last is folded into it
//
// Metrics (WindowMetric): drift.dataset (1 when the dataset drifts, else 0),
// drift.share (share of drifted features), drift.drifted_columns,
// drift.prediction (1 when the prediction drifts), drift.column.<name> (1 when
// that column drifts), performance.<m> (the live value of auc, log_loss,
// accuracy, precision, recall, f1, f1_macro, rmse, mae, r2),
// performance.<m>.drop (how much worse than at validation: validation - live
// for metrics where higher is better, live - validation for log_loss, rmse,
// mae), operational.latency_p50_us / _p95_us / _p99_us / _max_us,
// operational.rate_per_s, operational.predictions, operational.unreadable_share.
// A metric the window lacks (no labels yet, an unknown column) does not fire.
//
// Folding: a firing for the same model, version and rule within the rule's
// cooldown of the open alert's first firing is folded into it (last time,
// count, value) instead of stored anew, and is not published again. A
// condition that persists is therefore notified once per cooldown.
//
// Threads: the free functions are thread-safe. AlertBus and WebhookNotifier
// may be used from any thread; their members say what guards what.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "keel/core/clock.h"
#include "keel/core/metrics.h"
#include "keel/core/result.h"
#include "keel/model/package.h"
#include "keel/monitor/live.h"
#include "keel/monitor/reference.h"
#include "keel/monitor/window_profile.h"
#include "keel/store/lease.h"
#include "keel/store/store.h"

namespace keel::monitor {

struct AlertRule {
  std::string name;
  std::string model = "*";
  std::string metric;
  std::string op = ">";
  double threshold = 0;
  int64_t window_ms = 3'600'000;
  uint64_t min_samples = 100;
  std::string severity = "warning";
  int64_t cooldown_ms = 6 * 3'600'000;

  bool AppliesTo(std::string_view model_name) const { return model == "*" || model == model_name; }
};

// "500ms", "90s", "30m", "1h", "7d", "2w" -> milliseconds, between 1 ms and
// 10 years. InvalidArgument otherwise.
[[nodiscard]] Result<int64_t> ParseDuration(std::string_view text);
std::string FormatDuration(int64_t ms);

// InvalidArgument naming `source`, the rule and the field for a bad file:
// unknown keys, a missing name/metric/threshold, a bad op, duration or
// severity, a repeated name, an unknown metric family.
[[nodiscard]] Result<std::vector<AlertRule>> ParseAlertRules(std::string_view yaml,
                                                             std::string_view source);
std::string AlertRulesToYaml(std::span<const AlertRule> rules);
// Defaults for a model of `task` (binary, multiclass, regression): data and
// prediction drift over 1 hour, performance decay over 1 day once 200 labels
// arrived (auc for binary, accuracy for multiclass, rmse for regression), and
// p99 latency above 100 ms over 5 minutes.
std::vector<AlertRule> DefaultAlertRules(std::string_view model, std::string_view task);

// The value of `metric` in a window and the samples it rests on; NotFound when
// the window has no such value.
[[nodiscard]] Result<double> WindowMetric(const WindowReport& window, std::string_view metric,
                                          uint64_t* samples);

struct Alert {
  int64_t id = 0;  // set once stored
  std::string model;
  std::string version;
  std::string rule;
  std::string severity;
  std::string metric;
  std::string op;
  double value = 0;
  double threshold = 0;
  int64_t window_ms = 0;
  int64_t first_ms = 0;  // first firing
  int64_t last_ms = 0;   // latest firing folded into this alert
  uint64_t count = 1;    // firings folded into this alert
  std::string summary;   // one line for people

  std::string ToJson() const;
};

// The rules applying to window.query.model whose metric crosses its threshold
// with at least min_samples samples. Not stored.
std::vector<Alert> EvaluateRules(const WindowReport& window, std::span<const AlertRule> rules,
                                 int64_t now_ms);

struct RecordedAlert {
  Alert alert;          // as stored (id, first_ms, count)
  bool is_new = false;  // false: folded into an alert within the cooldown
};
[[nodiscard]] Result<RecordedAlert> RecordAlert(store::Database& db, const Alert& alert,
                                                int64_t cooldown_ms);

struct AlertQuery {
  std::string model;     // empty: all
  int64_t since_ms = 0;  // last firing at or after
  size_t limit = 100;
};
// Newest first (by last firing).
[[nodiscard]] Result<std::vector<Alert>> ListAlerts(store::Database& db, const AlertQuery& query);

// In-process subscribers (e.g. retraining triggers). Publish calls every
// subscriber on the caller's thread, in subscription order; a subscriber must
// not block. mu_ guards the subscriber list; it is not held while calling, so
// a subscriber may still be running when Unsubscribe returns: whatever it
// captures must outlive the bus's publishers (stop the MonitorService first).
// Subscribers may not call Subscribe/Unsubscribe.
class AlertBus {
 public:
  using Subscriber = std::function<void(const Alert&)>;
  int Subscribe(Subscriber subscriber);
  void Unsubscribe(int id);
  void Publish(const Alert& alert);

 private:
  std::mutex mu_;
  int next_id_ = 1;                        // guarded by mu_
  std::map<int, Subscriber> subscribers_;  // guarded by mu_
};

// Posts alerts to a webhook on its own thread: a JSON body (Alert::ToJson),
// signed with HMAC-SHA256 of the body under `secret` in the header
// "X-Keel-Signature: sha256=<hex>", retried with exponential backoff
// (initial_backoff, doubling, at most 60 s, up to max_attempts >= 1) on
// transport errors and 5xx/429 answers; other answers than 2xx are failures
// without retry, and so is an alert whose retries a shutdown cut short. Enqueue never blocks: when
// `queue_capacity` alerts are waiting the new one is dropped and counted. The sender is injected
// (the library knows nothing of HTTP); it returns the HTTP status or an error.
class WebhookNotifier {
 public:
  using Sender =
      std::function<Result<int>(const std::string& url, const std::string& body,
                                const std::vector<std::pair<std::string, std::string>>& headers)>;
  struct Options {
    std::string url;
    std::string secret;
    int max_attempts = 5;
    std::chrono::milliseconds initial_backoff{500};
    size_t queue_capacity = 1000;
  };
  WebhookNotifier(Options options, Sender sender);
  ~WebhookNotifier();  // stops after the alert being sent; queued ones are dropped
  WebhookNotifier(const WebhookNotifier&) = delete;
  WebhookNotifier& operator=(const WebhookNotifier&) = delete;

  void Enqueue(const Alert& alert);
  // Waits until the queue is empty and nothing is being sent, or `timeout`.
  bool Drain(std::chrono::milliseconds timeout);

  uint64_t delivered() const;
  uint64_t failed() const;   // gave up after max_attempts (or a 4xx answer)
  uint64_t dropped() const;  // queue full
  uint64_t attempts() const;

 private:
  void Run();

  Options options_;
  Sender sender_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;  // bodies; guarded by mu_
  bool busy_ = false;              // a body is being sent; guarded by mu_
  bool stop_ = false;              // guarded by mu_
  uint64_t delivered_ = 0;         // guarded by mu_
  uint64_t failed_ = 0;            // guarded by mu_
  uint64_t dropped_ = 0;           // guarded by mu_
  uint64_t attempts_ = 0;          // guarded by mu_
  std::thread thread_;             // started last, joined by the destructor
};

// The window reports MonitorService stored (monitor_windows), newest first.
struct StoredWindow {
  int64_t id = 0;
  std::string model;
  std::string version;
  int64_t from_ms = 0;
  int64_t to_ms = 0;
  int64_t computed_ms = 0;
  std::string report_json;  // WindowReport::ToJson()
};
struct WindowHistoryQuery {
  std::string model;     // required
  std::string version;   // empty: all
  int64_t since_ms = 0;  // computed at or after
  int64_t until_ms = 0;  // computed before (0: no bound)
  // Pages back: the windows after this one in the order below (0: from the newest).
  int64_t before_id = 0;
  int64_t window_ms = 0;  // windows of this length only (0: every length)
  int64_t id = 0;         // that one window only (0: any)
  size_t limit = 100;
};
[[nodiscard]] Result<std::vector<StoredWindow>> ListStoredWindows(store::Database& db,
                                                                  const WindowHistoryQuery& query);

// Which versions and window lengths a model has stored windows of, however
// many there are: per (version, length) the count and the newest window's
// end, ordered by version and length.
struct WindowKind {
  std::string version;
  int64_t window_ms = 0;
  int64_t windows = 0;
  int64_t newest_to_ms = 0;
};
[[nodiscard]] Result<std::vector<WindowKind>> ListWindowKinds(store::Database& db,
                                                              const std::string& model);

// Monitoring inside the server: every `interval`, for each model and version
// with predictions logged within the longest rule window, each distinct rule
// window is computed against the version's reference profile, its report
// stored in monitor_windows (one per window length per min(length, 1 hour)),
// the rules evaluated, alerts recorded (folded within cooldowns) and new ones
// published on the bus. Versions without a stored reference profile are
// skipped (counted).
//
// Windows and the log: per version the pass keeps pieces, gridded window
// profiles (keel/monitor/window_profile.h) of fixed buckets of the log (1
// minute to 1 hour, 1/24 of the longest window or less), each built once its
// bucket ended `settle` ago and rebuilt when one of its rows gets a label. A
// window whose complete buckets hold at most `exact_rows` predictions is read
// from the log and evaluated exactly (MonitorWindow, at most max_rows newest
// rows); a larger one is merged from its pieces (newest first, up to
// max_rows rows) plus the log of its partial first bucket and unsettled tail,
// so a pass reads each prediction about once however many windows contain
// it, within the error window_profile.h states. A row logged more than
// `settle` after its time is left out of the pieces (not of exact windows).
// Pieces live in memory: a restarted server rebuilds them from the log on
// its first pass.
//
// Threads: Start() runs passes on one owned thread until Stop(); RunOnce()
// may also be called directly (tests, with a ManualClock) but not while the
// thread runs. mu_ guards stop_; cache_ is used by the pass thread only.
namespace internal {
class PieceCache;
}  // namespace internal

class MonitorService {
 public:
  // The loaded package of a registered model version (the serving engine's loader).
  using Resolver = std::function<Result<std::shared_ptr<const model::LoadedModel>>(
      const std::string& model, const std::string& version)>;
  struct Options {
    std::chrono::milliseconds interval{300'000};
    // Rules from a file; models no explicit rule applies to get DefaultAlertRules.
    std::vector<AlertRule> rules;
    size_t max_rows = 200'000;  // per window
    DriftOptions drift;
    // Windows with at most this many predictions in complete buckets are
    // read from the log exactly; larger ones merge pieces.
    uint64_t exact_rows = 10'000;
    int64_t settle_ms = 60'000;  // a bucket's piece is built this long after it ends
    // When set, the passes are counted there (the server's GET /metrics):
    //   keel_monitor_passes_total, keel_monitor_pass_errors_total (error lines),
    //   keel_monitor_windows_total{source="log"|"pieces"}, keel_monitor_alerts_total
    //   (alerts stored anew), keel_monitor_last_pass_timestamp_seconds (the
    //   clock's time when the last pass ended), keel_monitor_pass_duration_seconds.
    // The names are registered by the constructor (once per registry).
    // keel_monitor_leader is 1 while this process runs the passes.
    metrics::Registry* metrics = nullptr;
    // Replicas: when set, the thread runs passes only while this process
    // holds the store's "monitor" lease (keel/store/lease.h) under this
    // holder name, renewed before each pass; so windows and alerts are
    // computed once however many servers share the store. A standby takes
    // over within 3 intervals (at least 3 s) of the holder's last pass.
    std::string lease_holder;
  };
  struct PassSummary {
    uint64_t windows = 0;              // windows computed
    uint64_t windows_stored = 0;       // of those, stored in monitor_windows
    uint64_t alerts_new = 0;           // alerts stored anew (and published)
    uint64_t alerts_folded = 0;        // firings folded into open alerts
    uint64_t skipped_versions = 0;     // no reference profile, or not loadable
    uint64_t windows_from_pieces = 0;  // windows merged from pieces (the rest read the log)
    std::vector<std::string> errors;   // one line per version that failed
  };

  MonitorService(store::Database& db, const Clock& clock, Resolver resolve, AlertBus& bus,
                 Options options);
  ~MonitorService();  // Stop()
  MonitorService(const MonitorService&) = delete;
  MonitorService& operator=(const MonitorService&) = delete;

  void Start();
  // Stops after the version being monitored (not the whole pass).
  void Stop();
  // One pass. An error of one version (its package, profile or window) is in
  // the summary and the pass goes on; only a failing store read of the
  // version list ends the pass early.
  Result<PassSummary> RunOnce();
  // Passes the thread ran, and the last one's summary (errors included; the
  // thread also prints each error line to stderr).
  uint64_t passes() const;
  PassSummary last_summary() const;

 private:
  struct Cached {
    std::shared_ptr<const model::LoadedModel> model;
    std::shared_ptr<const ReferenceProfile> reference;  // null: none stored
    std::unique_ptr<ProfileLayout> layout;              // of reference and model->info
    std::unique_ptr<internal::PieceCache> pieces;       // null until the first window
  };
  void Loop();
  bool Stopping() const;

  store::Database& db_;
  const Clock& clock_;
  Resolver resolve_;
  AlertBus& bus_;
  Options options_;
  // "model/version" -> its package and profile; pass thread only. Failures
  // are not cached (retried next pass); at most kMaxCached entries (the
  // oldest inserted is evicted).
  static constexpr size_t kMaxCached = 16;
  std::map<std::string, Cached> cache_;
  std::deque<std::string> cache_order_;
  // "model/version/window_ms" -> when its report was last stored; pass thread only.
  std::map<std::string, int64_t> stored_;
  // When the stored pieces older than every window were last deleted; pass thread only.
  int64_t stale_pieces_dropped_ms_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;    // guarded by mu_
  uint64_t passes_ = 0;  // guarded by mu_
  PassSummary last_;     // guarded by mu_
  // In options_.metrics (null without it); updated by the pass thread.
  struct Meters {
    metrics::Counter* passes;
    metrics::Counter* errors;
    metrics::Counter* windows_log;
    metrics::Counter* windows_pieces;
    metrics::Counter* alerts;
    metrics::Gauge* last_pass;
    metrics::Histogram* duration;
    metrics::Gauge* leader;
  };
  std::optional<Meters> meters_;
  std::unique_ptr<store::Lease> lease_;  // with options_.lease_holder; pass thread only
  std::thread thread_;
};

}  // namespace keel::monitor
