// File: keel/api/app.h
//
// The MLflow-compatible REST API as plain function calls: a Request in, a
// Response out, no sockets. The HTTP server (src/http) feeds it from Beast;
// the CLI's embedded mode calls Dispatch directly, so both run the same code.
//
//   keel::api::AppOptions opts;
//   opts.store_uri = "sqlite:///tmp/keel/keel.db";
//   opts.artifact_root = "/tmp/keel/artifacts";
//   KEEL_ASSIGN_OR_RETURN(auto app, keel::api::App::Open(opts));
//   keel::api::Request req;
//   req.method = "POST";
//   req.path = "/api/2.0/mlflow/experiments/create";
//   req.body = R"({"name": "churn"})";
//   keel::api::Response resp = app->Dispatch(req);   // resp.status == 200
//
// Threads: Dispatch is thread-safe; the App owns the services and the store.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "keel/artifacts/artifacts.h"
#include "keel/core/clock.h"
#include "keel/core/metrics.h"
#include "keel/core/result.h"
#include "keel/registry/registry.h"
#include "keel/serve/engine.h"
#include "keel/serve/prediction_log.h"
#include "keel/serve/request_counts.h"
#include "keel/serve/shadow.h"
#include "keel/store/store.h"
#include "keel/tracking/tracking.h"

namespace keel::retrain {
class RetrainScheduler;
}

namespace keel::api {

enum class Role { kNone, kRead, kWrite };

struct Principal {
  std::string name = "anonymous";
  Role role = Role::kWrite;  // without --auth everyone may write
};

struct Request {
  std::string method;                             // upper case
  std::string path;                               // percent-decoded, without the query
  std::multimap<std::string, std::string> query;  // decoded
  std::string content_type;
  std::string authorization;  // raw Authorization header
  std::string body;
  // For streamed uploads: the spooled body file (Route::body_mode kToFile).
  std::filesystem::path body_file;
  // The {path} tail of a prefix route, percent-decoded (set by App::Run).
  std::string tail;
  Principal principal;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // When set, the body is this file, streamed by the transport.
  std::filesystem::path file;
  std::vector<std::pair<std::string, std::string>> headers;
  // The model and version that answered (serving routes), for /metrics labels.
  std::string model;
  std::string model_version;

  static Response Json(std::string body, int status = 200);
  // {"error_code": ..., "message": ...} with the status from the one code table.
  static Response Error(const Status& status);
  // The error for a request to `path`: under /v2/ the Open Inference
  // Protocol's {"error": "..."}, elsewhere Error(status). Same HTTP status.
  static Response ErrorFor(std::string_view path, const Status& status);
  // The Open Inference Protocol's error: {"error": message} with `status`.
  static Response V2Error(int status, std::string_view message);
};

struct AuthOptions {
  bool enabled = false;
  // Credentials file: one "name role secret" per line (role: read | write);
  // '#' starts a comment. Bearer tokens and Basic passwords are both checked
  // against secret (Basic also against name).
  std::filesystem::path tokens_file;
};

// Real-time serving (src/api/serving_routes.cc over serve::ServingEngine).
struct ServingOptions {
  // References served from the start ("churn@champion", "churn/3", "churn");
  // App::Open fails when one cannot be loaded.
  std::vector<std::string> models;
  serve::EngineOptions engine;  // default alias, poll interval, load_on_demand
  // Only the serving, health and metrics routes (keel serve); otherwise the
  // MLflow tracking, registry and artifact APIs too (keel server).
  bool serving_only = false;
  // Accept records with absent input fields (encoded as missing) and extra
  // fields (ignored). Off: such requests are 400 naming the field.
  bool lenient_inputs = false;
  bool log_predictions = true;
  serve::PredictionLogOptions log;
  // Request outcomes per model version and minute, for the error rate over
  // time (GET /api/2.0/keel/serving/requests).
  serve::RequestCountsOptions counts;
};

struct AppOptions {
  std::string store_uri = "sqlite://keel-data/keel.db";
  std::filesystem::path artifact_root = "keel-data/artifacts";
  store::SyncMode sync = store::SyncMode::kNormal;
  int read_connections = 4;
  AuthOptions auth;
  // The principal's name when auth is off (recorded as the actor of alias changes).
  std::string anonymous_name = "anonymous";
  const Clock* clock = nullptr;  // defaults to the system clock
  ServingOptions serving;
};

class App;

// How a route takes its body.
enum class BodyMode { kBuffered, kToFile };
enum class Access { kOpen, kRead, kWrite };

using Handler = Response (*)(App& app, const Request& request);

struct Route {
  std::string_view method;
  // Exact path, or a prefix ending in "/{path}" whose remainder is the tail.
  std::string_view pattern;
  Handler handler;
  Access access;
  BodyMode body_mode = BodyMode::kBuffered;
  // Optional check run on the headers (and tail) before any body is read.
  Status (*precheck)(App& app, const Request& request) = nullptr;
};

struct RouteMatch {
  const Route* route = nullptr;
  std::string tail;         // the {path} part, percent-decoded
  bool path_known = false;  // the path exists for some other method
};

class App {
 public:
  static Result<std::unique_ptr<App>> Open(const AppOptions& options);

  // Authenticates, authorises and runs the handler. Never throws.
  Response Dispatch(Request request);
  // Finds the route for a request (the transport asks before reading a body).
  RouteMatch Match(std::string_view method, std::string_view path) const;
  // Checks credentials and role for a matched route; fills request.principal.
  Status Authorize(const Route& route, Request& request) const;
  // Runs a matched, authorised route (sets request.tail).
  Response Run(const RouteMatch& match, Request& request);

  tracking::TrackingService& tracking() { return *tracking_; }
  registry::RegistryService& registry() { return *registry_; }
  artifacts::LocalArtifactStore& artifacts() { return *artifacts_; }
  store::Database& db() { return *db_; }
  const Clock& clock() const { return *clock_; }
  // Where streamed uploads are spooled (same filesystem as the artifacts).
  const std::filesystem::path& spool_dir() const { return spool_dir_; }
  const AppOptions& options() const { return options_; }
  serve::ServingEngine& engine() { return *engine_; }
  // The local package directory (or model file) of a registered version,
  // without loading it into the serving engine. NotFound for an unknown
  // version; FailedPrecondition when its source is not in this artifact store.
  Result<std::filesystem::path> ModelVersionPath(const std::string& name,
                                                 const std::string& version);
  // Null when prediction logging is off.
  serve::PredictionLog* prediction_log() { return log_.get(); }
  // Scores logged requests with a model's shadow version; null when
  // prediction logging is off.
  serve::ShadowScorer* shadow_scorer() { return shadow_.get(); }
  metrics::Registry& metrics() { return *metrics_; }
  // The retraining scheduler the REST routes trigger and cancel jobs on;
  // null (the default) when the server runs no policies. Set by keel server
  // once the scheduler has started, cleared before it stops.
  void set_retrain_scheduler(retrain::RetrainScheduler* scheduler) { scheduler_ = scheduler; }
  retrain::RetrainScheduler* retrain_scheduler() const { return scheduler_.load(); }
  // A new request id: unique in this process, unlikely to repeat across processes.
  std::string NewRequestId();
  // Counts a request answered outside Run (rejected by the transport before
  // routing: bad URL, auth, body too large); `endpoint` is the route pattern
  // or "unmatched".
  void CountRejected(std::string_view endpoint, int http_status);
  // Stops the serving engine's follower and flushes the prediction log
  // (graceful shutdown; also done by the destructor).
  void Shutdown();
  ~App();

 private:
  App() = default;
  void Observe(std::string_view endpoint, const Response& response, double seconds);
  AppOptions options_;
  const Clock* clock_ = nullptr;
  std::unique_ptr<store::Database> db_;
  std::unique_ptr<tracking::TrackingService> tracking_;
  std::unique_ptr<registry::RegistryService> registry_;
  std::unique_ptr<artifacts::LocalArtifactStore> artifacts_;
  std::filesystem::path spool_dir_;
  struct Credential {
    std::string name;
    Role role;
    std::string secret;
  };
  std::vector<Credential> credentials_;  // immutable after Open
  friend Status LoadCredentials(App& app);

  std::unique_ptr<metrics::Registry> metrics_;
  metrics::CounterFamily* requests_total_ = nullptr;     // {endpoint, model, version, code}
  metrics::HistogramFamily* request_seconds_ = nullptr;  // {endpoint, model}
  metrics::Gauge* in_flight_ = nullptr;
  std::unique_ptr<serve::PredictionLog> log_;    // stopped before engine_ and db_ go
  std::unique_ptr<serve::ShadowScorer> shadow_;  // stopped after log_
  std::unique_ptr<serve::ServingEngine> engine_;
  // Stopped (and flushed) by Shutdown, before db_ goes.
  std::unique_ptr<serve::RequestCounts> request_counts_;
  // Wakes engine_ when another process moves an alias (PostgreSQL stores);
  // reset first by Shutdown, destroyed before engine_ and db_.
  std::unique_ptr<store::ChangeListener> alias_listener_;
  std::string request_id_prefix_;
  std::atomic<retrain::RetrainScheduler*> scheduler_{nullptr};
  std::atomic<uint64_t> request_counter_{0};
};

// The route tables, one per API family (src/api/mlflow_*.cc); App matches
// them in order. Adding an endpoint is one row in one of these tables.
std::span<const Route> TrackingRoutes();
std::span<const Route> RegistryRoutes();
std::span<const Route> ArtifactRoutes();
std::span<const Route> ServiceRoutes();
// /predict, /invocations, /ping, /v2/..., /metrics, /labels.
std::span<const Route> ServingRoutes();
// /api/2.0/keel/alerts, /api/2.0/keel/monitor/windows (src/api/monitoring_routes.cc).
std::span<const Route> MonitoringRoutes();
// /api/2.0/keel/retrain/jobs, .../jobs/cancel (src/api/retrain_routes.cc).
std::span<const Route> RetrainRoutes();
// The web dashboard's files at / and /ui/, and /api/2.0/keel/whoami
// (src/api/dashboard_routes.cc).
std::span<const Route> DashboardRoutes();

}  // namespace keel::api
