#include "keel/api/app.h"
#include "src/api/model_checks.h"

#include <array>
#include <unordered_map>

#include "keel/core/json.h"

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

namespace {

Response Health(App&, const Request&) {
  Response r;
  r.content_type = "text/plain";
  r.body = "OK";
  return r;
}

Response Version(App&, const Request&) {
  Response r;
  r.content_type = "text/plain";
  r.body = "keel " KEEL_VERSION;
  return r;
}

const std::array kServiceRoutes = {
    Route{"GET", "/health", &Health, Access::kOpen},
    Route{"GET", "/version", &Version, Access::kOpen},
};

// All route tables, in match order. A new family of endpoints is one line here.
const std::array<std::span<const Route> (*)(), 4> kRouteTables = {
    &ServiceRoutes, &TrackingRoutes, &RegistryRoutes, &ArtifactRoutes};

struct RouteIndex {
  std::unordered_map<std::string, const Route*> exact;  // "METHOD path"
  std::unordered_map<std::string, bool> known_paths;    // path -> exists for some method
  std::vector<const Route*> prefixed;                   // patterns ending in {path}

  RouteIndex() {
    for (auto table : kRouteTables) {
      for (const Route& r : table()) {
        std::string_view pattern = r.pattern;
        if (pattern.ends_with("{path}")) {
          prefixed.push_back(&r);
          known_paths[std::string(pattern.substr(0, pattern.size() - 6))] = true;
        } else {
          exact.emplace(std::string(r.method) + " " + std::string(pattern), &r);
          known_paths[std::string(pattern)] = true;
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
  return app;
}

RouteMatch App::Match(std::string_view method, std::string_view path) const {
  RouteMatch m;
  std::string p(path);
  constexpr std::string_view kAjax = "/ajax-api/2.0/";
  if (p.starts_with(kAjax)) p = "/api/2.0/" + p.substr(kAjax.size());
  const RouteIndex& index = Index();
  std::string key;
  key.reserve(method.size() + 1 + p.size());
  key.append(method).append(" ").append(p);
  if (auto it = index.exact.find(key); it != index.exact.end()) {
    m.route = it->second;
    return m;
  }
  m.path_known = index.known_paths.count(p) > 0;
  for (const Route* r : index.prefixed) {
    std::string_view prefix = r->pattern.substr(0, r->pattern.size() - 6);
    if (p.size() > prefix.size() && std::string_view(p).starts_with(prefix)) {
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
  try {
    return match.route->handler(*this, request);
  } catch (const std::exception& e) {
    return Response::Error(Internal(std::string("unexpected error: ") + e.what()));
  } catch (...) {
    return Response::Error(Internal("unexpected error"));
  }
}

Response App::Dispatch(Request request) {
  RouteMatch match = Match(request.method, request.path);
  if (match.route == nullptr) {
    std::string message = "No API endpoint at " + request.method + " " + request.path;
    if (match.path_known) {
      Response r = Response::Error(InvalidArgument(message + " (method not allowed)")
                                       .WithMlflowCode("ENDPOINT_NOT_FOUND"));
      r.status = 405;
      return r;
    }
    return Response::Error(NotFound(message).WithMlflowCode("ENDPOINT_NOT_FOUND"));
  }
  Status auth = Authorize(*match.route, request);
  if (!auth.ok()) return Response::Error(auth);
  if (match.route->precheck) {
    request.tail = match.tail;
    Status pre = match.route->precheck(*this, request);
    if (!pre.ok()) return Response::Error(pre);
  }
  return Run(match, request);
}

}  // namespace keel::api
