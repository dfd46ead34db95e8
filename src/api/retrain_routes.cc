// Retraining over REST (keel/retrain/retrain.h, keel/retrain/scheduler.h),
// for the dashboard and scripts:
//
//   GET  /api/2.0/keel/retrain/jobs?model=churn&limit=50      (read)
//        {"jobs": [RetrainJob::ToJson(), ...]}        newest first; every model
//                                                     when model is not given;
//        what `keel retrain history --json` prints, from the same store
//   POST /api/2.0/keel/retrain/jobs {"model": "churn"}       (write)
//        202 {"model": "churn", "trigger": "manual", "queued": true}: a job
//        queued on the server's scheduler (folded into the model's job if
//        one is queued or running), actor = the caller
//   POST /api/2.0/keel/retrain/jobs/cancel {"model": "churn"} (write)
//        {"model": "churn", "cancelled": "job" | "shadow", "queued": N,
//         "running": N}: the model's queued and running jobs are cancelled,
//        whichever replica holds them (CancelRetraining: N queued rows
//        ended, N running jobs asked to stop, which they do within about a
//        second); without one, its shadow phase ends (CancelShadow). 404
//        when there is neither. Any server on the store may take it.
//   GET  /api/2.0/keel/retrain/policies                     (read)
//        {"scheduler": bool, "leader": bool (this replica fires the schedules:
//         it holds the store's scheduler lease), "policies": [{"model", "schedule" (cron or null),
//         "timezone", "missed", "on_alerts": [...], "continuous_every_ms",
//         "gate": {"metric", "min_delta", "max_regression", "min_rows"},
//         "shadow_ms", "watch_ms", "promote", "source", "last_slot_ms",
//         "next_slot_ms", "next_continuous_ms" (-1: none), "state":
//         "idle" | "queued" | "running"}]}; without --retrain-policies
//        {"scheduler": false, "leader": false, "policies": []}
// Triggering needs a server started with --retrain-policies (otherwise 409
// INVALID_STATE naming the flag).
#include "keel/api/app.h"
#include "keel/retrain/retrain.h"
#include "keel/retrain/scheduler.h"
#include "src/api/handler_util.h"
#include "src/api/params.h"

namespace keel::api {
namespace {

using internal::Params;

constexpr int64_t kMaxJobs = 1000;

Result<std::string> ListJobs(App& app, const Request& request) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(request));
  KEEL_ASSIGN_OR_RETURN(std::optional<std::string> model, p.Str("model"));
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> limit, p.Int("limit"));
  const int64_t n = limit.value_or(50);
  if (n < 1 || n > kMaxJobs) {
    return InvalidArgument("limit must be between 1 and " + std::to_string(kMaxJobs));
  }
  KEEL_ASSIGN_OR_RETURN(
      std::vector<retrain::RetrainJob> jobs,
      retrain::RetrainHistory(app.db(), model.value_or(""), static_cast<size_t>(n)));
  std::string out = "{\"jobs\":[";
  for (size_t i = 0; i < jobs.size(); ++i) out += (i ? "," : "") + jobs[i].ToJson();
  return out + "]}";
}

Result<retrain::RetrainScheduler*> SchedulerOf(App& app) {
  retrain::RetrainScheduler* s = app.retrain_scheduler();
  if (s == nullptr) {
    return FailedPrecondition(
        "this server runs no retraining policies; start it with --retrain-policies FILE");
  }
  return s;
}

Response TriggerJob(App& app, const Request& request) {
  auto run = [&]() -> Result<std::string> {
    KEEL_ASSIGN_OR_RETURN(Params p, Params::From(request));
    KEEL_ASSIGN_OR_RETURN(std::string model, p.RequiredStr("model"));
    KEEL_ASSIGN_OR_RETURN(retrain::RetrainScheduler * s, SchedulerOf(app));
    KEEL_RETURN_IF_ERROR(s->Trigger(model, "manual", request.principal.name));
    JsonWriter w;
    w.BeginObject();
    w.Key("model");
    w.String(model);
    w.Key("trigger");
    w.String("manual");
    w.Key("queued");
    w.Bool(true);
    w.EndObject();
    return std::move(w).Take();
  };
  Result<std::string> body = run();
  if (!body.ok()) return Response::Error(body.status());
  Response r = Response::Json(std::move(*body));
  r.status = 202;
  return r;
}

Result<std::string> CancelJob(App& app, const Request& request) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(request));
  KEEL_ASSIGN_OR_RETURN(std::string model, p.RequiredStr("model"));
  const registry::ChangeContext context{request.principal.name, "cancelled over the API"};
  KEEL_ASSIGN_OR_RETURN(retrain::CancelOutcome done,
                        retrain::CancelRetraining(app.db(), app.registry(), app.clock(), model,
                                                  context, app.retrain_scheduler()));
  JsonWriter w;
  w.BeginObject();
  w.Key("model");
  w.String(model);
  w.Key("cancelled");
  w.String(done.what);
  w.Key("queued");
  w.Int(done.request.queued);
  w.Key("running");
  w.Int(done.request.running);
  w.EndObject();
  return std::move(w).Take();
}

Result<std::string> ListPolicies(App& app, const Request&) {
  retrain::RetrainScheduler* s = app.retrain_scheduler();
  JsonWriter w;
  w.BeginObject();
  w.Key("scheduler");
  w.Bool(s != nullptr);
  w.Key("leader");
  w.Bool(s != nullptr && s->leader());
  w.Key("policies");
  w.BeginArray();
  if (s != nullptr) {
    for (const retrain::RetrainScheduler::PolicyState& st : s->Snapshot()) {
      const retrain::RetrainPolicy& p = *st.policy;
      w.BeginObject();
      w.Key("model");
      w.String(p.model);
      w.Key("schedule");
      if (p.schedule) {
        w.String(p.schedule->expression());
      } else {
        w.Null();
      }
      w.Key("timezone");
      w.String(p.timezone);
      w.Key("missed");
      w.String(p.missed);
      w.Key("on_alerts");
      w.BeginArray();
      for (const std::string& rule : p.on_alerts) w.String(rule);
      w.EndArray();
      w.Key("continuous_every_ms");
      w.Int(p.continuous.every_ms);
      w.Key("gate");
      w.BeginObject();
      w.Key("metric");
      w.String(p.gate.metric);
      w.Key("min_delta");
      w.Double(p.gate.min_delta);
      w.Key("max_regression");
      w.Double(p.gate.max_regression);
      w.Key("min_rows");
      w.Int(static_cast<int64_t>(p.gate.min_rows));
      w.EndObject();
      w.Key("shadow_ms");
      w.Int(p.shadow.duration_ms);
      w.Key("watch_ms");
      w.Int(p.watch.duration_ms);
      w.Key("promote");
      w.String(p.promote);
      w.Key("source");
      w.String(p.source);
      w.Key("last_slot_ms");
      w.Int(st.last_slot_ms);
      w.Key("next_slot_ms");
      w.Int(st.next_slot_ms);
      w.Key("next_continuous_ms");
      w.Int(st.next_continuous_ms);
      w.Key("state");
      w.String(st.state);
      w.EndObject();
    }
  }
  w.EndArray();
  w.EndObject();
  return std::move(w).Take();
}

const std::array kRetrainRoutes = {
    Route{"GET", "/api/2.0/keel/retrain/policies", &internal::Wrap<&ListPolicies>, Access::kRead},
    Route{"GET", "/api/2.0/keel/retrain/jobs", &internal::Wrap<&ListJobs>, Access::kRead},
    Route{"POST", "/api/2.0/keel/retrain/jobs", &TriggerJob, Access::kWrite},
    Route{"POST", "/api/2.0/keel/retrain/jobs/cancel", &internal::Wrap<&CancelJob>, Access::kWrite},
};

}  // namespace

std::span<const Route> RetrainRoutes() { return kRetrainRoutes; }

}  // namespace keel::api
