// The web dashboard (docs/dashboard.md): its files, embedded at build time,
// and the one endpoint it needs beyond the JSON API the CLI uses:
//
//   GET /                        the dashboard's index.html
//   GET /ui/{file}               its other files (app.js, app.css, ...)
//   GET /api/2.0/keel/whoami     {"auth": bool, "name": str|null,
//                                 "role": "read"|"write"|null}
//
// The files are open (they hold no data; every call they make is
// authorised as the CLI's are). whoami is open too: it answers who the
// request's credentials name, so the dashboard can ask for a token before
// its first call, and hide what the role may not do.
#include <array>

#include "keel/api/app.h"
#include "keel/core/json.h"
#include "src/api/dashboard_assets.h"

namespace keel::api {
namespace {

using internal::DashboardAsset;
using internal::DashboardAssets;

std::string_view ContentType(std::string_view name) {
  struct Type {
    std::string_view suffix;
    std::string_view type;
  };
  static constexpr std::array kTypes = {
      Type{".html", "text/html; charset=utf-8"},
      Type{".js", "text/javascript; charset=utf-8"},
      Type{".css", "text/css; charset=utf-8"},
      Type{".svg", "image/svg+xml"},
      Type{".png", "image/png"},
      Type{".json", "application/json"},
      Type{".map", "application/json"},
  };
  for (const Type& t : kTypes) {
    if (name.ends_with(t.suffix)) return t.type;
  }
  return "application/octet-stream";
}

Response Asset(std::string_view name) {
  for (const DashboardAsset& a : DashboardAssets()) {
    if (a.name != name) continue;
    Response r;
    r.content_type = std::string(ContentType(name));
    r.body.assign(reinterpret_cast<const char*>(a.data), a.size);
    // The files change with the binary: revalidate rather than cache.
    r.headers.emplace_back("Cache-Control", "no-cache");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    return r;
  }
  if (DashboardAssets().empty()) {
    return Response::Error(
        NotFound("this keel was built without its dashboard (KEEL_DASHBOARD=OFF)"));
  }
  return Response::Error(NotFound("no dashboard file '" + std::string(name) + "'"));
}

Response Index(App&, const Request&) { return Asset("index.html"); }

Response UiFile(App&, const Request& request) { return Asset(request.tail); }

Response WhoAmI(App& app, const Request& request) {
  JsonWriter w;
  w.BeginObject();
  w.Key("auth");
  w.Bool(app.options().auth.enabled);
  static constexpr Route kProbe{"GET", "", nullptr, Access::kRead};
  Request probe;
  probe.authorization = request.authorization;
  if (app.Authorize(kProbe, probe).ok()) {
    w.Key("name");
    w.String(probe.principal.name);
    w.Key("role");
    w.String(probe.principal.role == Role::kWrite ? "write" : "read");
  } else {
    w.Key("name");
    w.Null();
    w.Key("role");
    w.Null();
  }
  w.EndObject();
  return Response::Json(std::move(w).Take());
}

const std::array kDashboardRoutes = {
    Route{"GET", "/", &Index, Access::kOpen},
    Route{"GET", "/ui/{path}", &UiFile, Access::kOpen},
    Route{"GET", "/api/2.0/keel/whoami", &WhoAmI, Access::kOpen},
};

}  // namespace

std::span<const Route> DashboardRoutes() { return kDashboardRoutes; }

}  // namespace keel::api
