#include "keel/api/app.h"
#include "src/api/model_checks.h"

#include <array>
#include <charconv>
#include <chrono>
#include <iostream>
#include <unordered_map>

#include "keel/core/json.h"
#include "keel/core/util.h"

namespace keel::api {

Response Response::Json(std::string body, int status) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::Error(const Status& status) {
  JsonWriter w;
  w.BeginObject();
  w.Key("error_code");
  w.String(MlflowErrorCodeOf(status));
  w.Key("message");
  w.String(status.message());
  w.EndObject();
  Response r = Json(std::move(w).Take(), HttpStatusOf(status));
  if (status.code() == StatusCode::kUnauthenticated) {
    r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"keel\", Bearer");
  }
  return r;
}

Response Response::ErrorFor(std::string_view path, const Status& status) {
  Response r = Error(status);
  if (path == "/v2" || path.starts_with("/v2/")) {
    r.body = V2Error(r.status, status.message()).body;
  }
  return r;
}

Response Response::V2Error(int status, std::string_view message) {
  JsonWriter w;
  w.BeginObject();
  w.Key("error");
  w.String(message);
  w.EndObject();
  return Json(std::move(w).Take(), status);
}

namespace {

Response Version(App&, const Request&) {
  Response r;
  r.content_type = "text/plain";
  r.body = "keel " KEEL_VERSION;
  return r;
}

const std::array kServiceRoutes = {
    Route{"GET", "/version", &Version, Access::kOpen},
};

struct RouteTable {
  std::span<const Route> (*routes)();
  bool serving_only;  // also served by a serving-only App (keel serve)
};

// All route tables, in match order. A new family of endpoints is one line here.
const std::array<RouteTable, 8> kRouteTables = {{{&ServiceRoutes, true},
                                                 {&ServingRoutes, true},
                                                 {&TrackingRoutes, false},
                                                 {&RegistryRoutes, false},
                                                 {&ArtifactRoutes, false},
                                                 {&MonitoringRoutes, false},
                                                 {&RetrainRoutes, false},
                                                 {&DashboardRoutes, false}}};

struct RouteIndex {
  std::unordered_map<std::string, const Route*> exact;  // "METHOD path"
  std::unordered_map<std::string, bool> known_paths;    // path -> exists for some method
  std::vector<const Route*> prefixed;                   // patterns ending in {path}
  std::unordered_map<const Route*, bool> in_serving_only;

  RouteIndex() {
    for (const RouteTable& table : kRouteTables) {
      for (const Route& r : table.routes()) {
        in_serving_only[&r] = table.serving_only;
        std::string_view pattern = r.pattern;
        if (pattern.ends_with("{path}")) {
          prefixed.push_back(&r);
          known_paths[std::string(pattern.substr(0, pattern.size() - 6))] |= table.serving_only;
        } else {
          exact.emplace(std::string(r.method) + " " + std::string(pattern), &r);
          known_paths[std::string(pattern)] |= table.serving_only;
        }
      }
    }
  }
};

const RouteIndex& Index() {
  static const RouteIndex kIndex;
  return kIndex;
}

}  // namespace

std::span<const Route> ServiceRoutes() { return kServiceRoutes; }

Result<std::unique_ptr<App>> App::Open(const AppOptions& options) {
  std::unique_ptr<App> app(new App());
  app->options_ = options;
  app->clock_ = options.clock ? options.clock : &SystemClock::Default();
  store::OpenOptions store_options;
  store_options.sync = options.sync;
  store_options.read_connections = options.read_connections;
  KEEL_ASSIGN_OR_RETURN(app->db_, store::OpenDatabase(options.store_uri, store_options));
  app->artifacts_ = std::make_unique<artifacts::LocalArtifactStore>(options.artifact_root);
  app->spool_dir_ = app->artifacts_->root() / ".keel-spool";
  std::error_code ec;
  std::filesystem::create_directories(app->spool_dir_, ec);
  if (ec) {
    return Unavailable("cannot create upload spool " + app->spool_dir_.string() + ": " +
                       ec.message());
  }
  tracking::TrackingOptions tracking_options;
  tracking_options.default_artifact_root = "mlflow-artifacts:";
  app->tracking_ =
      std::make_unique<tracking::TrackingService>(*app->db_, *app->clock_, tracking_options);
  app->registry_ = std::make_unique<registry::RegistryService>(*app->db_, *app->clock_);
  app->registry_->SetVersionValidator(MakeModelValidator(*app));
  if (options.auth.enabled) KEEL_RETURN_IF_ERROR(LoadCredentials(*app));

  // Metrics and serving.
  app->metrics_ = std::make_unique<metrics::Registry>();
  metrics::Registry& m = *app->metrics_;
  app->requests_total_ = &m.AddCounter("keel_http_requests_total",
                                       "HTTP requests answered, by endpoint (route pattern), "
                                       "model, model version and status code.",
                                       {"endpoint", "model", "version", "code"});
  app->request_seconds_ = &m.AddHistogram(
      "keel_http_request_duration_seconds",
      "Time from a request's body being read to its response being ready, in seconds.",
      {"endpoint", "model"}, metrics::LatencyBuckets());
  app->in_flight_ = &m.AddGauge("keel_http_requests_in_flight", "Requests being handled now.")
                         .WithLabels(std::vector<std::string>{});
  app->request_id_prefix_ = RandomHex(6) + "-";
  serve::EngineOptions engine_options = options.serving.engine;
  // Shadow versions score only logged requests: without the log, none.
  if (!options.serving.log_predictions) engine_options.follow_shadow = false;
  app->engine_ = std::make_unique<serve::ServingEngine>(
      *app->registry_, MakeSourceResolver(*app), *app->clock_, app->metrics_.get(), engine_options);
  for (const std::string& ref : options.serving.models) {
    KEEL_RETURN_IF_ERROR(app->engine_->Add(ref));
  }
  serve::ServingEngine* engine = app->engine_.get();
  // An alias moved through this server is published before the call answers.
  app->registry_->SetAliasObserver([engine](const std::string& name, const std::string&) {
    try {
      engine->Refresh(false, name);
    } catch (const std::exception& e) {
      // The alias change has committed; the follower's next poll publishes it.
      std::cerr << "keel serve: refresh after alias change failed: " << e.what() << std::endl;
    }
  });
  KEEL_RETURN_IF_ERROR(app->engine_->Start());
  // Alias moves by other processes on the store wake the follower at once
  // (PostgreSQL's LISTEN/NOTIFY); it polls every poll_interval regardless.
  if (auto listener =
          app->db_->Listen(store::kAliasChannel, [engine](std::string_view) { engine->Notify(); });
      listener.ok()) {
    app->alias_listener_ = std::move(*listener);
  } else if (listener.status().code() != StatusCode::kUnimplemented) {
    std::cerr << "keel: alias changes are followed by polling only: " << listener.status().message()
              << std::endl;
  }
  app->request_counts_ =
      std::make_unique<serve::RequestCounts>(*app->db_, *app->clock_, options.serving.counts);
  KEEL_RETURN_IF_ERROR(app->request_counts_->Start());
  if (options.serving.log_predictions) {
    app->log_ =
        std::make_unique<serve::PredictionLog>(*app->db_, *app->clock_, options.serving.log);
    KEEL_RETURN_IF_ERROR(app->log_->Start());
    serve::PredictionLog* log = app->log_.get();
    m.AddGaugeCallback("keel_prediction_log_queue_depth",
                       "Prediction records waiting to be written.",
                       [log] { return static_cast<double>(log->queued()); });
    m.AddCounterCallback("keel_prediction_log_written_total",
                         "Prediction records committed to the store.",
                         [log] { return static_cast<double>(log->written()); });
    m.AddCounterCallback("keel_prediction_log_dropped_total",
                         "Prediction records dropped because the queue was full.",
                         [log] { return static_cast<double>(log->dropped()); });
    m.AddCounterCallback("keel_prediction_log_failed_total",
                         "Prediction records lost to failed store writes.",
                         [log] { return static_cast<double>(log->failed()); });
    m.AddCounterCallback("keel_prediction_log_sampled_out_total",
                         "Predictions not logged because of the sampling rate.",
                         [log] { return static_cast<double>(log->sampled_out()); });
    // Shadow phases compare with the logged answers, so they need the log.
    app->shadow_ = std::make_unique<serve::ShadowScorer>(*app->db_, app->metrics_.get(),
                                                         serve::ShadowOptions{});
    KEEL_RETURN_IF_ERROR(app->shadow_->Start());
  }
  m.AddGaugeCallback("keel_models_served", "References the serving engine follows.",
                     [engine] { return static_cast<double>(engine->size()); });
  return app;
}

App::~App() { Shutdown(); }

void App::Shutdown() {
  alias_listener_.reset();
  if (engine_) engine_->Stop();
  if (log_) log_->Stop();
  if (shadow_) shadow_->Stop();
  if (request_counts_) request_counts_->Stop();
}

std::string App::NewRequestId() {
  uint64_t n = request_counter_.fetch_add(1, std::memory_order_relaxed) + 1;
  // Fixed width, so ids of one process sort in the order they were made
  // (the prediction log's primary key then grows at its end).
  char buf[10];
  for (int i = 9; i >= 0; --i, n >>= 4) buf[i] = "0123456789abcdef"[n & 15];
  std::string id;
  id.reserve(request_id_prefix_.size() + sizeof(buf));
  id.append(request_id_prefix_).append(buf, sizeof(buf));
  return id;
}

void App::Observe(std::string_view endpoint, const Response& response, double seconds) {
  char code[8];
  auto [end, ec] = std::to_chars(code, code + sizeof(code), response.status);
  (void)ec;
  const std::string_view model = response.model;
  const std::string_view version = response.model_version;
  requests_total_
      ->WithLabels(
          {endpoint, model, version, std::string_view(code, static_cast<size_t>(end - code))})
      .Inc();
  request_seconds_->WithLabels({endpoint, model}).Observe(seconds);
  // Requests that name a model also go to its counts over time.
  if (!model.empty() && request_counts_ != nullptr) {
    request_counts_->Record(model, version,
                            response.status >= 500   ? serve::Outcome::kServerError
                            : response.status >= 400 ? serve::Outcome::kClientError
                                                     : serve::Outcome::kOk);
  }
}

void App::CountRejected(std::string_view endpoint, int http_status) {
  Response r;
  r.status = http_status;
  Observe(endpoint, r, 0.0);
}

RouteMatch App::Match(std::string_view method, std::string_view path) const {
  RouteMatch m;
  std::string p(path);
  constexpr std::string_view kAjax = "/ajax-api/2.0/";
  if (p.starts_with(kAjax)) p = "/api/2.0/" + p.substr(kAjax.size());
  const RouteIndex& index = Index();
  const bool serving_only = options_.serving.serving_only;
  auto enabled = [&](const Route* r) { return !serving_only || index.in_serving_only.at(r); };
  std::string key;
  key.reserve(method.size() + 1 + p.size());
  key.append(method).append(" ").append(p);
  if (auto it = index.exact.find(key); it != index.exact.end() && enabled(it->second)) {
    m.route = it->second;
    return m;
  }
  if (auto known = index.known_paths.find(p); known != index.known_paths.end()) {
    m.path_known = !serving_only || known->second;
  }
  for (const Route* r : index.prefixed) {
    std::string_view prefix = r->pattern.substr(0, r->pattern.size() - 6);
    if (enabled(r) && p.size() > prefix.size() && std::string_view(p).starts_with(prefix)) {
      m.path_known = true;
      if (r->method == method) {
        m.route = r;
        m.tail = p.substr(prefix.size());
        return m;
      }
    }
  }
  return m;
}

Response App::Run(const RouteMatch& match, Request& request) {
  request.tail = match.tail;
  const auto start = std::chrono::steady_clock::now();
  in_flight_->Inc();
  Response response;
  try {
    response = match.route->handler(*this, request);
  } catch (const std::exception& e) {
    response = Response::Error(Internal(std::string("unexpected error: ") + e.what()));
  } catch (...) {
    response = Response::Error(Internal("unexpected error"));
  }
  in_flight_->Dec();
  Observe(match.route->pattern, response,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return response;
}

Result<std::filesystem::path> App::ModelVersionPath(const std::string& name,
                                                    const std::string& version) {
  KEEL_ASSIGN_OR_RETURN(registry::ModelVersion v, registry_->GetModelVersion(name, version));
  return MakeSourceResolver(*this)(v);
}

Response App::Dispatch(Request request) {
  RouteMatch match = Match(request.method, request.path);
  if (match.route == nullptr) {
    std::string message = "No API endpoint at " + request.method + " " + request.path;
    if (match.path_known) {
      Response r = Response::ErrorFor(
          request.path,
          InvalidArgument(message + " (method not allowed)").WithMlflowCode("ENDPOINT_NOT_FOUND"));
      r.status = 405;
      return r;
    }
    return Response::ErrorFor(request.path, NotFound(message).WithMlflowCode("ENDPOINT_NOT_FOUND"));
  }
  Status auth = Authorize(*match.route, request);
  if (!auth.ok()) return Response::ErrorFor(request.path, auth);
  if (match.route->precheck) {
    request.tail = match.tail;
    Status pre = match.route->precheck(*this, request);
    if (!pre.ok()) return Response::ErrorFor(request.path, pre);
  }
  return Run(match, request);
}

}  // namespace keel::api
