// Serving routes: keel's /predict, MLflow's scoring protocol (/invocations,
// /ping, /health), the Open Inference Protocol V2 REST API, Prometheus
// /metrics and /labels. Each handler gets the current deployment from the
// serving engine (holding it keeps that version alive until the answer is
// built), decodes the body with serve/requests.h, predicts, answers, and
// queues the prediction log records.
#include <charconv>
#include <chrono>
#include <cmath>

#include "keel/api/app.h"
#include "keel/core/json.h"
#include "keel/core/thread_pool.h"
#include "keel/serve/requests.h"

namespace keel::api {
namespace {

using serve::DecodedBatch;
using serve::Deployment;
using DeploymentPtr = std::shared_ptr<const Deployment>;
using Clock = std::chrono::steady_clock;

// Rows at or above this use the thread pool; smaller batches stay on the I/O thread.
constexpr size_t kParallelRows = 512;

Response WithModel(Response r, const Deployment* d) {
  if (d != nullptr) {
    r.model = d->name;
    r.model_version = d->version;
  }
  return r;
}

// The deployment for a request: `ref` from the path, or the only served
// model when the path names none.
Result<DeploymentPtr> ModelFor(App& app, std::string_view ref) {
  if (!ref.empty()) return app.engine().Get(ref);
  std::vector<std::string> refs = app.engine().Refs();
  if (refs.size() == 1) return app.engine().Get(refs.front());
  if (refs.empty()) {
    return NotFound("no model is served here; name one in the path, e.g. /predict/churn");
  }
  std::string names;
  for (const auto& r : refs) names += (names.empty() ? "" : ", ") + r;
  return InvalidArgument(std::to_string(refs.size()) + " models are served here (" + names +
                         "); name one in the path, e.g. /predict/" + refs.front());
}

// Runs the model over a decoded batch into `out` (rows * outputs_per_row).
void Score(const Deployment& d, const DecodedBatch& batch, std::vector<float>& out) {
  out.resize(batch.rows * d.outputs_per_row);
  if (batch.rows == 0) return;
  const model::Predictor& p = d.model->predictor;
  if (batch.rows == 1) {
    p.PredictRow(batch.features.data(), out.data());
  } else {
    p.PredictBatch(batch.features.data(), batch.rows, out.data(),
                   batch.rows >= kParallelRows ? &ThreadPool::Default() : nullptr);
  }
}

// Queues one log record per row (moving the raw rows out of `batch`). Returns the log's status
// (strict mode: an error means the records are not durable and the request must fail).
Status LogRows(App& app, const Deployment& d, std::string_view endpoint,
               const std::string& request_id, DecodedBatch& batch, const std::vector<float>& out,
               int64_t time_ms, Clock::time_point start) {
  serve::PredictionLog* log = app.prediction_log();
  if (log == nullptr || batch.raw_rows.size() != batch.rows) return OkStatus();
  const double latency_us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  // A version in its shadow phase scores the same rows off the request path.
  std::vector<serve::ShadowRow> shadow_rows;
  std::shared_ptr<const Deployment> shadow;
  if (app.shadow_scorer() != nullptr) shadow = app.engine().Shadow(d.ref);
  if (shadow) shadow_rows.resize(batch.rows);
  std::vector<serve::PredictionRecord> records(batch.rows);
  for (size_t i = 0; i < batch.rows; ++i) {
    serve::PredictionRecord& r = records[i];
    r.request_id = batch.single_record ? request_id : request_id + "-" + std::to_string(i);
    r.time_ms = time_ms;
    r.model = d.name;
    r.version = d.version;
    r.endpoint = std::string(endpoint);
    r.input_json = std::move(batch.raw_rows[i]);
    AppendJsonFloats(r.output_json, out.data() + i * d.outputs_per_row, d.outputs_per_row);
    r.latency_us = latency_us;
    if (shadow) shadow_rows[i] = serve::ShadowRow{r.request_id, time_ms, r.input_json};
  }
  Status logged = log->Append(std::move(records));
  if (shadow && logged.ok()) app.shadow_scorer()->Submit(std::move(shadow), std::move(shadow_rows));
  return logged;
}

bool WantRaw(App& app) {
  serve::PredictionLog* log = app.prediction_log();
  return log != nullptr && log->Sample();
}

// The decoded batch and outputs of the current request, reused per thread
// (steady-state requests allocate nothing for them). A request that grew them
// beyond kKeepBytes gives the memory back when it is done.
struct Scratch {
  DecodedBatch batch;
  std::vector<float> out;
};
constexpr size_t kKeepBytes = 16u << 20;

class ScratchLease {
 public:
  ScratchLease() : s_(ThreadScratch()) {}
  ~ScratchLease() {
    if ((s_.batch.features.capacity() + s_.out.capacity()) * sizeof(float) > kKeepBytes ||
        s_.batch.raw_rows.capacity() > (kKeepBytes >> 8)) {
      s_ = Scratch();
    }
  }
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  Scratch& get() { return s_; }

 private:
  static Scratch& ThreadScratch() {
    thread_local Scratch scratch;
    return scratch;
  }
  Scratch& s_;
};

// Decode options for a request. Strict inputs (the default): every input
// column must be given; /predict and V2 also refuse fields the model does
// not have (MLflow's /invocations ignores extra columns, as MLflow does).
serve::DecodeOptions OptionsFor(App& app, bool refuse_extra) {
  serve::DecodeOptions options;
  const bool strict = !app.options().serving.lenient_inputs;
  options.require_all_columns = strict;
  options.reject_unknown_columns = strict && refuse_extra;
  options.want_raw = WantRaw(app);
  return options;
}

// ---- keel /predict ----------------------------------------------------------

// `body` without JSON whitespace at either end.
std::string_view TrimJson(std::string_view body) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!body.empty() && space(body.front())) body.remove_prefix(1);
  while (!body.empty() && space(body.back())) body.remove_suffix(1);
  return body;
}

Response Predict(App& app, const Request& req) {
  const auto start = Clock::now();
  const int64_t now_ms = app.clock().NowMillis();
  auto d = ModelFor(app, req.tail);
  if (!d.ok()) return Response::Error(d.status());
  const Deployment& dep = **d;
  ScratchLease lease;
  Scratch& s = lease.get();
  serve::DecodeOptions options = OptionsFor(app, true);
  // One record: the logged input is the body itself (valid once decoded), not
  // a re-serialisation.
  const std::string_view trimmed = TrimJson(req.body);
  const bool log_body = options.want_raw && trimmed.starts_with('{');
  if (log_body) options.want_raw = false;
  if (Status st = serve::DecodePredictBody(req.body, dep.model->pipeline, options, &s.batch);
      !st.ok()) {
    return WithModel(Response::Error(st), &dep);
  }
  if (log_body) s.batch.raw_rows.assign(1, std::string(trimmed));
  Score(dep, s.batch, s.out);
  const std::string rid = app.NewRequestId();
  const std::string& output_name = dep.model->info.output_name;
  const size_t k = dep.outputs_per_row;
  std::string body;
  body.reserve(96 + s.batch.rows * (output_name.size() + 48));
  auto append_row = [&](size_t i) {
    body += '"';
    AppendJsonEscaped(body, output_name);
    body += "\":";
    AppendJsonFloats(body, s.out.data() + i * k, k);
  };
  if (s.batch.single_record) {
    body += '{';
    append_row(0);
  } else {
    body += "{\"predictions\":[";
    for (size_t i = 0; i < s.batch.rows; ++i) {
      if (i) body += ',';
      body += '{';
      append_row(i);
      body += ",\"request_id\":\"";
      body += rid;
      body += '-';
      body += std::to_string(i);
      body += "\"}";
    }
    body += ']';
  }
  body += ",\"model_version\":\"";
  body += dep.version;
  body += "\",\"request_id\":\"";
  body += rid;
  body += "\"}";
  if (Status st = LogRows(app, dep, "predict", rid, s.batch, s.out, now_ms, start); !st.ok()) {
    return WithModel(Response::Error(Unavailable("prediction not logged: " + st.message())), &dep);
  }
  Response r = WithModel(Response::Json(std::move(body)), &dep);
  r.headers.emplace_back("X-Request-Id", rid);
  return r;
}

// ---- MLflow scoring protocol ------------------------------------------------

Response MlflowError(const Status& s, int http_status, const Deployment* d) {
  Response r = Response::Error(s.WithMlflowCode("BAD_REQUEST"));
  if (http_status != 0) r.status = http_status;
  return WithModel(std::move(r), d);
}

Response Invocations(App& app, const Request& req) {
  const auto start = Clock::now();
  const int64_t now_ms = app.clock().NowMillis();
  auto format = serve::InvocationsFormatOf(req.content_type);
  if (!format.ok()) return MlflowError(format.status(), 415, nullptr);
  auto d = ModelFor(app, req.tail);
  if (!d.ok()) return Response::Error(d.status());
  const Deployment& dep = **d;
  ScratchLease lease;
  Scratch& s = lease.get();
  const serve::DecodeOptions options = OptionsFor(app, false);
  if (Status st =
          serve::DecodeInvocations(*format, req.body, dep.model->pipeline, options, &s.batch);
      !st.ok()) {
    return MlflowError(st, st.code() == StatusCode::kInvalidArgument ? 400 : 0, &dep);
  }
  Score(dep, s.batch, s.out);
  const std::string rid = app.NewRequestId();
  const size_t k = dep.outputs_per_row;
  std::string body;
  body.reserve(24 + s.batch.rows * 12 * k);
  body += "{\"predictions\":[";
  for (size_t i = 0; i < s.batch.rows; ++i) {
    if (i) body += ',';
    AppendJsonFloats(body, s.out.data() + i * k, k);
  }
  body += "]}";
  if (Status st = LogRows(app, dep, "invocations", rid, s.batch, s.out, now_ms, start); !st.ok()) {
    return WithModel(Response::Error(Unavailable("prediction not logged: " + st.message())), &dep);
  }
  Response r = WithModel(Response::Json(std::move(body)), &dep);
  r.headers.emplace_back("X-Request-Id", rid);
  return r;
}

// Failing references, for health answers.
std::string NotReadyMessage(App& app) {
  std::string message = "models not loaded:";
  for (const auto& st : app.engine().Served()) {
    if (st.version.empty()) message += " " + st.ref;
  }
  return message;
}

Response Ping(App& app, const Request&) {
  if (!app.engine().Ready()) return Response::Error(NotFound(NotReadyMessage(app)));
  return Response::Json("\n");
}

// 200 while every served reference answers; references whose alias points
// at a version that failed to load are listed (they answer with the
// previous version), so a probe reading the body sees the degradation.
Response Health(App& app, const Request&) {
  if (!app.engine().Ready()) return Response::Error(Unavailable(NotReadyMessage(app)));
  Response r;
  r.content_type = "text/plain";
  r.body = "OK";
  for (const auto& st : app.engine().Served()) {
    if (st.failed_version.empty()) continue;
    r.body += "\n" + st.ref + ": version " + st.failed_version + " failed to load (serving " +
              st.version + "): " + st.last_error;
  }
  return r;
}

// ---- Open Inference Protocol V2 -----------------------------------------------

Response V2Error(int status, std::string_view message, const Deployment* d = nullptr) {
  return WithModel(Response::V2Error(status, message), d);
}

Response V2ErrorOf(const Status& s, const Deployment* d = nullptr) {
  return V2Error(HttpStatusOf(s), s.message(), d);
}

Response V2Server(App&, const Request&) {
  return Response::Json(R"({"name":"keel","version":")" KEEL_VERSION R"(","extensions":[]})");
}

Response V2Live(App&, const Request&) { return Response::Json(R"({"live":true})"); }

Response V2Ready(App& app, const Request&) {
  if (!app.engine().Ready()) return Response::Json(R"({"ready":false})", 400);
  return Response::Json(R"({"ready":true})");
}

// "/v2/models/" tail: name[/versions/v][/ready|/infer].
struct V2Path {
  std::string name;
  std::string version;
  std::string action;  // "", "ready" or "infer"
};

Result<V2Path> ParseV2Path(std::string_view tail) {
  V2Path p;
  std::vector<std::string_view> parts;
  while (!tail.empty()) {
    size_t slash = tail.find('/');
    parts.push_back(tail.substr(0, slash));
    if (slash == std::string_view::npos) break;
    tail.remove_prefix(slash + 1);
  }
  size_t n = parts.size();
  if (n > 0 && (parts[n - 1] == "ready" || parts[n - 1] == "infer")) {
    p.action = std::string(parts[n - 1]);
    --n;
  }
  if (n == 3 && parts[1] == "versions" && !parts[2].empty()) {
    p.version = std::string(parts[2]);
  } else if (n != 1) {
    return NotFound(
        "no such V2 endpoint; expected /v2/models/{name}[/versions/{v}][/ready|/infer]");
  }
  if (parts[0].empty()) return NotFound("empty model name");
  p.name = std::string(parts[0]);
  return p;
}

// The deployment for a V2 path: the name's served reference, required to
// serve `version` when one is given (or, with on-demand loading, name/version).
Result<DeploymentPtr> V2Model(App& app, const V2Path& p) {
  auto d = app.engine().Get(p.name);
  if (p.version.empty()) return d;
  if (d.ok() && (*d)->version == p.version) return d;
  auto pinned = app.engine().Get(p.name + "/" + p.version);
  if (pinned.ok()) return pinned;
  return NotFound("model " + p.name + " version " + p.version + " is not served here" +
                  (d.ok() ? " (serving version " + (*d)->version + ")" : std::string()));
}

std::string V2Platform(const Deployment& d) {
  std::string format = d.model->info.format;
  for (char& c : format) {
    if (c == '-') c = '_';
  }
  return "keel_" + format;
}

Response V2ModelGet(App& app, const Request& req) {
  auto path = ParseV2Path(req.tail);
  if (!path.ok()) return V2ErrorOf(path.status());
  if (path->action == "infer") return V2Error(405, "infer takes POST");
  auto d = V2Model(app, *path);
  if (path->action == "ready") {
    JsonWriter w;
    w.BeginObject();
    w.Key("name");
    w.String(path->name);
    w.Key("ready");
    w.Bool(d.ok());
    w.EndObject();
    return Response::Json(std::move(w).Take(), d.ok() ? 200 : 400);
  }
  if (!d.ok()) return V2ErrorOf(d.status());
  const Deployment& dep = **d;
  JsonWriter w;
  w.BeginObject();
  w.Key("name");
  w.String(path->name);
  w.Key("versions");
  w.BeginArray();
  w.String(dep.version);
  w.EndArray();
  w.Key("platform");
  w.String(V2Platform(dep));
  w.Key("inputs");
  w.BeginArray();
  for (const auto& col : dep.model->pipeline.input_columns()) {
    w.BeginObject();
    w.Key("name");
    w.String(col.name);
    w.Key("datatype");
    w.String(col.type == data::ColumnType::kCategorical ? "BYTES" : "FP32");
    w.Key("shape");
    w.Raw("[-1]");
    w.EndObject();
  }
  w.EndArray();
  w.Key("outputs");
  w.BeginArray();
  w.BeginObject();
  w.Key("name");
  w.String(dep.model->info.output_name);
  w.Key("datatype");
  w.String("FP32");
  w.Key("shape");
  w.Raw(dep.outputs_per_row == 1 ? "[-1]" : "[-1," + std::to_string(dep.outputs_per_row) + "]");
  w.EndObject();
  w.EndArray();
  w.EndObject();
  return WithModel(Response::Json(std::move(w).Take()), &dep);
}

Response V2Infer(App& app, const Request& req) {
  const auto start = Clock::now();
  const int64_t now_ms = app.clock().NowMillis();
  auto path = ParseV2Path(req.tail);
  if (!path.ok()) return V2ErrorOf(path.status());
  if (path->action != "infer") return V2Error(405, "only .../infer takes POST");
  auto d = V2Model(app, *path);
  if (!d.ok()) return V2ErrorOf(d.status());
  const Deployment& dep = **d;
  ScratchLease lease;
  Scratch& s = lease.get();
  const serve::DecodeOptions options = OptionsFor(app, true);
  serve::V2Request meta;
  if (Status st = serve::DecodeV2Infer(req.body, dep.model->pipeline,
                                       static_cast<size_t>(dep.model->predictor.num_features()),
                                       options, &s.batch, &meta);
      !st.ok()) {
    return V2ErrorOf(st, &dep);
  }
  const std::string& output_name = dep.model->info.output_name;
  for (const std::string& want : meta.requested_outputs) {
    if (want != output_name) {
      return V2Error(400, "unknown output '" + want + "'; this model has '" + output_name + "'",
                     &dep);
    }
  }
  Score(dep, s.batch, s.out);
  const std::string rid = app.NewRequestId();
  const size_t k = dep.outputs_per_row;
  std::string body;
  body.reserve(160 + s.out.size() * 12);
  body += "{\"model_name\":\"";
  AppendJsonEscaped(body, path->name);
  body += "\",\"model_version\":\"";
  body += dep.version;
  body += "\",\"id\":\"";
  AppendJsonEscaped(body, meta.id.empty() ? rid : meta.id);
  body += "\",\"outputs\":[{\"name\":\"";
  AppendJsonEscaped(body, output_name);
  body += "\",\"datatype\":\"FP32\",\"shape\":[";
  body += std::to_string(s.batch.rows);
  if (k > 1) body += "," + std::to_string(k);
  body += "],\"data\":[";
  for (size_t i = 0; i < s.out.size(); ++i) {
    if (i) body += ',';
    AppendJsonFloat(body, s.out[i]);
  }
  body += "]}]}";
  if (Status st = LogRows(app, dep, "v2", rid, s.batch, s.out, now_ms, start); !st.ok()) {
    return V2Error(503, "prediction not logged: " + st.message(), &dep);
  }
  Response r = WithModel(Response::Json(std::move(body)), &dep);
  r.headers.emplace_back("X-Request-Id", rid);
  return r;
}

// ---- /metrics, /labels, serving status -----------------------------------------

Response Metrics(App& app, const Request&) {
  Response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = app.metrics().Render();
  return r;
}

// One {"request_id": ..., "label": ...} object.
Status ReadLabel(simdjson::dom::element e, size_t index, serve::Label* out) {
  simdjson::dom::object obj;
  if (e.get_object().get(obj) != simdjson::SUCCESS) {
    return InvalidArgument("labels[" + std::to_string(index) +
                           "]: expected an object {\"request_id\": ..., \"label\": ...}");
  }
  simdjson::dom::element id, label;
  std::string_view id_text;
  if (obj["request_id"].get(id) != simdjson::SUCCESS || id.get_string().get(id_text)) {
    return InvalidArgument("labels[" + std::to_string(index) +
                           "]: field \"request_id\" must be a string");
  }
  if (obj["label"].get(label) != simdjson::SUCCESS) {
    return InvalidArgument("labels[" + std::to_string(index) + "]: field \"label\" is missing");
  }
  out->request_id = std::string(id_text);
  out->label_json = simdjson::minify(label);
  return OkStatus();
}

Result<std::string> PostLabels(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(JsonDoc doc, ParseJson(req.body));
  simdjson::dom::element root = doc.root();
  simdjson::dom::element list = root;
  simdjson::dom::object obj;
  if (root.get_object().get(obj) == simdjson::SUCCESS) {
    simdjson::dom::element inner;
    if (obj["labels"].get(inner) == simdjson::SUCCESS) list = inner;
  }
  std::vector<serve::Label> labels;
  simdjson::dom::array arr;
  if (list.get_array().get(arr) == simdjson::SUCCESS) {
    size_t i = 0;
    for (simdjson::dom::element e : arr) {
      labels.emplace_back();
      KEEL_RETURN_IF_ERROR(ReadLabel(e, i++, &labels.back()));
    }
  } else {
    labels.emplace_back();
    KEEL_RETURN_IF_ERROR(ReadLabel(list, 0, &labels.back()));
  }
  if (labels.empty()) return InvalidArgument("no labels given");
  // Predictions answered a moment ago may still be queued: make them visible first.
  if (serve::PredictionLog* log = app.prediction_log()) KEEL_RETURN_IF_ERROR(log->Flush());
  KEEL_ASSIGN_OR_RETURN(serve::LabelResult result,
                        serve::RecordLabels(app.db(), labels, app.clock().NowMillis()));
  JsonWriter w;
  w.BeginObject();
  w.Key("matched");
  w.Int(static_cast<int64_t>(result.matched));
  w.Key("unknown_request_ids");
  w.BeginArray();
  for (const auto& id : result.unknown_ids) w.String(id);
  w.EndArray();
  w.EndObject();
  return std::move(w).Take();
}

Response Labels(App& app, const Request& req) {
  auto body = PostLabels(app, req);
  if (!body.ok()) return Response::Error(body.status());
  return Response::Json(std::move(*body));
}

Response ServingStatus(App& app, const Request&) {
  JsonWriter w;
  w.BeginObject();
  w.Key("ready");
  w.Bool(app.engine().Ready());
  w.Key("models");
  w.BeginArray();
  for (const auto& st : app.engine().Served()) {
    w.BeginObject();
    w.Key("ref");
    w.String(st.ref);
    w.Key("version");
    w.String(st.version);
    w.Key("loaded_at");
    w.Int(st.loaded_at_ms);
    w.Key("loads");
    w.Int(static_cast<int64_t>(st.loads));
    w.Key("failures");
    w.Int(static_cast<int64_t>(st.failures));
    w.Key("swaps");
    w.Int(static_cast<int64_t>(st.swaps));
    if (!st.shadow_version.empty()) {
      w.Key("shadow_version");
      w.String(st.shadow_version);
    }
    if (!st.shadow_failed_version.empty()) {
      w.Key("shadow_failed_version");
      w.String(st.shadow_failed_version);
    }
    if (!st.last_error.empty()) {
      w.Key("last_error");
      w.String(st.last_error);
      w.Key("failed_version");
      w.String(st.failed_version);
      w.Key("last_error_at");
      w.Int(st.last_error_ms);
    }
    w.EndObject();
  }
  w.EndArray();
  if (serve::PredictionLog* log = app.prediction_log()) {
    w.Key("prediction_log");
    w.BeginObject();
    w.Key("durability");
    w.String(log->options().durability == serve::Durability::kStrict ? "strict" : "interval");
    w.Key("sample_rate");
    w.Double(log->options().sample_rate);
    w.Key("queued");
    w.Int(static_cast<int64_t>(log->queued()));
    w.Key("written");
    w.Int(static_cast<int64_t>(log->written()));
    w.Key("dropped");
    w.Int(static_cast<int64_t>(log->dropped()));
    w.Key("failed");
    w.Int(static_cast<int64_t>(log->failed()));
    w.EndObject();
  }
  w.EndObject();
  return Response::Json(std::move(w).Take());
}

const std::array kServingRoutes = {
    Route{"POST", "/predict", &Predict, Access::kRead},
    Route{"POST", "/predict/{path}", &Predict, Access::kRead},
    Route{"POST", "/invocations", &Invocations, Access::kRead},
    Route{"POST", "/invocations/{path}", &Invocations, Access::kRead},
    Route{"GET", "/ping", &Ping, Access::kOpen},
    Route{"GET", "/health", &Health, Access::kOpen},
    Route{"GET", "/v2", &V2Server, Access::kOpen},
    Route{"GET", "/v2/health/live", &V2Live, Access::kOpen},
    Route{"GET", "/v2/health/ready", &V2Ready, Access::kOpen},
    Route{"GET", "/v2/models/{path}", &V2ModelGet, Access::kRead},
    Route{"POST", "/v2/models/{path}", &V2Infer, Access::kRead},
    Route{"GET", "/metrics", &Metrics, Access::kOpen},
    Route{"POST", "/labels", &Labels, Access::kWrite},
    Route{"GET", "/api/2.0/keel/serving", &ServingStatus, Access::kRead},
};

}  // namespace

std::span<const Route> ServingRoutes() { return kServingRoutes; }

}  // namespace keel::api
