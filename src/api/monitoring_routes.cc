// Read endpoints for monitoring (keel/monitor/alerts.h), for the dashboard and
// scripts:
//
//   GET /api/2.0/keel/monitor/window-kinds?model=churn
//       {"kinds": [{"version", "window_ms", "windows", "newest_to_ms"}, ...]}
//       which versions and window lengths have stored windows (all of them)
//   GET /api/2.0/keel/serving/requests?model=churn[&version=3]&from_ms=&to_ms=[&step_ms=60000]
//       {"model", "version", "step_ms", "points": [{"time_ms", "requests",
//        "client_errors", "server_errors"}, ...]}           steps with requests, in time order
//       (keel/serve/request_counts.h; to_ms defaults to now, from_ms to a day before it)
//
//   GET /api/2.0/keel/alerts?model=churn&since_ms=0&limit=100
//       {"alerts": [Alert::ToJson(), ...]}                        newest first
//   GET /api/2.0/keel/monitor/windows?model=churn[&version=3][&since_ms=][&until_ms=]
//       [&before_id=][&window_ms=3600000][&id=][&limit=][&full=true][&fields=operational,performance]
//       {"windows": [{"id", "model", "version", "from_ms", "to_ms", "computed_ms",
//                     "rows", "dataset": {...}, "prediction_drift",
//                     "performance": {...}, "operational": {...},
//                     "columns": [{"name", "role", "test", "score", "threshold", "drift"}]
//                     [, "report": the whole WindowReport JSON with full=true]}],
//        "unreadable": stored reports that are not JSON objects (left out)}
//
// The summary keeps a month of hourly windows small (no histograms); full=true
// returns the stored reports as they are. window_ms keeps one window length;
// until_ms bounds computed_ms (exclusive); before_id pages back: pass the
// last id of a page to get the page after it; id fetches one window; fields
// keeps only those parts of each summary (rows, performance, operational,
// drift; default all).
#include <algorithm>

#include "keel/api/app.h"
#include "keel/core/json.h"
#include "keel/monitor/alerts.h"
#include "keel/serve/request_counts.h"
#include "src/api/handler_util.h"
#include "src/api/params.h"

namespace keel::api {
namespace {

using internal::Params;

constexpr int64_t kMaxLimit = 1000;

Result<size_t> Limit(const Params& p, int64_t fallback) {
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> limit, p.Int("limit"));
  const int64_t n = limit.value_or(fallback);
  if (n < 1 || n > kMaxLimit) {
    return InvalidArgument("limit must be between 1 and " + std::to_string(kMaxLimit));
  }
  return static_cast<size_t>(n);
}

Result<std::string> ListAlerts(App& app, const Request& request) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(request));
  monitor::AlertQuery q;
  KEEL_ASSIGN_OR_RETURN(std::optional<std::string> model, p.Str("model"));
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> since, p.Int("since_ms"));
  KEEL_ASSIGN_OR_RETURN(q.limit, Limit(p, 100));
  q.model = model.value_or("");
  q.since_ms = since.value_or(0);
  KEEL_ASSIGN_OR_RETURN(std::vector<monitor::Alert> alerts, monitor::ListAlerts(app.db(), q));
  std::string out = "{\"alerts\":[";
  for (size_t i = 0; i < alerts.size(); ++i) out += (i ? "," : "") + alerts[i].ToJson();
  return out + "]}";
}

Result<std::string> ListWindowKinds(App& app, const Request& request) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(request));
  KEEL_ASSIGN_OR_RETURN(std::string model, p.RequiredStr("model"));
  KEEL_ASSIGN_OR_RETURN(std::vector<monitor::WindowKind> kinds,
                        monitor::ListWindowKinds(app.db(), model));
  JsonWriter w(64 + kinds.size() * 96);
  w.BeginObject();
  w.Key("kinds");
  w.BeginArray();
  for (const monitor::WindowKind& k : kinds) {
    w.BeginObject();
    w.Key("version");
    w.String(k.version);
    w.Key("window_ms");
    w.Int(k.window_ms);
    w.Key("windows");
    w.Int(k.windows);
    w.Key("newest_to_ms");
    w.Int(k.newest_to_ms);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::move(w).Take();
}

Result<std::string> ListRequestCounts(App& app, const Request& request) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(request));
  serve::RequestCountsQuery q;
  KEEL_ASSIGN_OR_RETURN(q.model, p.RequiredStr("model"));
  KEEL_ASSIGN_OR_RETURN(std::optional<std::string> version, p.Str("version"));
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> from, p.Int("from_ms"));
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> to, p.Int("to_ms"));
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> step, p.Int("step_ms"));
  q.version = version.value_or("");
  q.to_ms = to.value_or(app.clock().NowMillis() + 1);
  q.from_ms = from.value_or(q.to_ms - 86'400'000);
  q.step_ms = step.value_or(60'000);
  KEEL_ASSIGN_OR_RETURN(std::vector<serve::RequestPoint> points,
                        serve::ReadRequestCounts(app.db(), q));
  JsonWriter w(256 + points.size() * 96);
  w.BeginObject();
  w.Key("model");
  w.String(q.model);
  w.Key("version");
  w.String(q.version);
  w.Key("step_ms");
  w.Int(q.step_ms);
  w.Key("points");
  w.BeginArray();
  for (const serve::RequestPoint& pt : points) {
    w.BeginObject();
    w.Key("time_ms");
    w.Int(pt.time_ms);
    w.Key("requests");
    w.Int(static_cast<int64_t>(pt.requests));
    w.Key("client_errors");
    w.Int(static_cast<int64_t>(pt.client_errors));
    w.Key("server_errors");
    w.Int(static_cast<int64_t>(pt.server_errors));
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::move(w).Take();
}

// Copies `key` of `obj` (raw JSON) into the writer, or null.
void CopyField(JsonWriter& w, simdjson::dom::element obj, std::string_view key) {
  simdjson::dom::element v;
  w.Key(key);
  if (obj[key].get(v)) {
    w.Null();
  } else {
    w.Raw(simdjson::minify(v));
  }
}

Result<std::string> ListWindows(App& app, const Request& request) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(request));
  monitor::WindowHistoryQuery q;
  KEEL_ASSIGN_OR_RETURN(q.model, p.RequiredStr("model"));
  KEEL_ASSIGN_OR_RETURN(std::optional<std::string> version, p.Str("version"));
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> since, p.Int("since_ms"));
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> until, p.Int("until_ms"));
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> before_id, p.Int("before_id"));
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> window_ms, p.Int("window_ms"));
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> id, p.Int("id"));
  KEEL_ASSIGN_OR_RETURN(std::optional<bool> full, p.Bool("full"));
  KEEL_ASSIGN_OR_RETURN(std::optional<std::string> fields, p.Str("fields"));
  KEEL_ASSIGN_OR_RETURN(q.limit, Limit(p, 100));
  q.version = version.value_or("");
  q.since_ms = since.value_or(0);
  q.until_ms = until.value_or(0);
  q.window_ms = window_ms.value_or(0);
  q.before_id = before_id.value_or(0);
  q.id = id.value_or(0);
  if (q.until_ms < 0 || q.window_ms < 0 || q.id < 0 || q.before_id < 0) {
    return InvalidArgument("until_ms, before_id, window_ms and id must not be negative");
  }
  // Which parts of each summary: all by default.
  bool want_rows = true, want_performance = true, want_operational = true, want_drift = true;
  if (fields) {
    want_rows = want_performance = want_operational = want_drift = false;
    size_t start = 0;
    while (start <= fields->size()) {
      size_t comma = fields->find(',', start);
      if (comma == std::string::npos) comma = fields->size();
      const std::string f = fields->substr(start, comma - start);
      if (f == "rows") {
        want_rows = true;
      } else if (f == "performance") {
        want_performance = true;
      } else if (f == "operational") {
        want_operational = true;
      } else if (f == "drift") {
        want_drift = true;
      } else {
        return InvalidArgument("fields: unknown part '" + f +
                               "' (known: rows, performance, operational, drift)");
      }
      start = comma + 1;
    }
  }
  KEEL_ASSIGN_OR_RETURN(std::vector<monitor::StoredWindow> windows,
                        monitor::ListStoredWindows(app.db(), q));
  JsonWriter w(1024 + windows.size() * 2048);
  w.BeginObject();
  w.Key("windows");
  w.BeginArray();
  simdjson::dom::parser parser;
  int64_t unreadable = 0;
  for (const monitor::StoredWindow& s : windows) {
    simdjson::dom::element report;
    if (parser.parse(s.report_json).get(report) || !report.is_object()) {
      ++unreadable;
      continue;
    }
    w.BeginObject();
    w.Key("id");
    w.Int(s.id);
    w.Key("model");
    w.String(s.model);
    w.Key("version");
    w.String(s.version);
    w.Key("from_ms");
    w.Int(s.from_ms);
    w.Key("to_ms");
    w.Int(s.to_ms);
    w.Key("computed_ms");
    w.Int(s.computed_ms);
    if (want_rows) CopyField(w, report, "rows");
    if (want_performance) CopyField(w, report, "performance");
    if (want_operational) CopyField(w, report, "operational");
    simdjson::dom::element drift;
    if (want_drift && !report["drift"].get(drift)) {
      CopyField(w, drift, "dataset");
      CopyField(w, drift, "prediction_drift");
      w.Key("columns");
      w.BeginArray();
      simdjson::dom::array columns;
      if (!drift["columns"].get_array().get(columns)) {
        for (simdjson::dom::element c : columns) {
          w.BeginObject();
          CopyField(w, c, "name");
          CopyField(w, c, "role");
          CopyField(w, c, "test");
          CopyField(w, c, "score");
          CopyField(w, c, "threshold");
          CopyField(w, c, "drift");
          w.EndObject();
        }
      }
      w.EndArray();
    }
    if (full.value_or(false)) {
      w.Key("report");
      w.Raw(s.report_json);
    }
    w.EndObject();
  }
  w.EndArray();
  w.Key("unreadable");
  w.Int(unreadable);
  w.EndObject();
  return std::move(w).Take();
}

const std::array kMonitoringRoutes = {
    Route{"GET", "/api/2.0/keel/alerts", &internal::Wrap<&ListAlerts>, Access::kRead},
    Route{"GET", "/api/2.0/keel/monitor/windows", &internal::Wrap<&ListWindows>, Access::kRead},
    Route{"GET", "/api/2.0/keel/monitor/window-kinds", &internal::Wrap<&ListWindowKinds>,
          Access::kRead},
    Route{"GET", "/api/2.0/keel/serving/requests", &internal::Wrap<&ListRequestCounts>,
          Access::kRead},
};

}  // namespace

std::span<const Route> MonitoringRoutes() { return kMonitoringRoutes; }

}  // namespace keel::api
