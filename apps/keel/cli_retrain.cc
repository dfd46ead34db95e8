// keel retrain: one retraining job now, from a policy file, against the
// embedded store; and the audit trail of past jobs (docs/retraining.md).
//
//   keel retrain churn --policy retrain.yaml [--json]
//   keel retrain history [churn] [--limit 20] [--json]
//   keel retrain cancel churn
//   keel --tracking-uri http://server:5000 retrain churn   # queued on the server
// history and cancel go through the REST API, on the embedded store or on a
// server (--tracking-uri).
#include <atomic>
#include <csignal>
#include <iostream>

#include "apps/keel/cli.h"
#include "keel/core/json.h"
#include "keel/retrain/retrain.h"

namespace keel::cli {
namespace {

std::atomic<bool> g_cancel{false};

extern "C" void OnStopSignal(int) {
  g_cancel.store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
}

struct RetrainFlags {
  std::string model;
  std::string policy_file;
  bool json = false;
  bool continuous = false;
};

std::string Metric(double v) { return std::isfinite(v) ? FormatDouble(v) : "-"; }

void PrintJob(const retrain::RetrainJob& job) {
  if (job.status == "skipped") {  // not run, not recorded
    std::cout << "no update of " << job.model << ": " << job.message << "\n";
    return;
  }
  std::cout << "retrain job " << job.id << " of " << job.model << " (" << job.trigger
            << "): " << job.status << "\n";
  std::cout << "  champion   "
            << (job.champion_version.empty() ? "(none)" : "version " + job.champion_version)
            << "\n";
  if (!job.challenger_version.empty()) {
    std::cout << "  challenger version " << job.challenger_version << " (run " << job.run_id
              << ")\n";
  }
  for (const retrain::DataSource& d : job.data) {
    std::cout << "  " << d.role << std::string(d.role.size() < 10 ? 10 - d.role.size() : 1, ' ')
              << " " << d.rows << " rows, " << d.path;
    if (!d.sha256.empty()) std::cout << " (sha256 " << d.sha256.substr(0, 12) << ")";
    if (d.to_ms > 0) std::cout << ", " << FormatTime(d.from_ms) << " .. " << FormatTime(d.to_ms);
    std::cout << "\n";
  }
  if (job.gate) {
    const retrain::GateDecision& g = *job.gate;
    std::cout << "  gate       " << (g.passed ? "passed" : "not passed") << ": " << g.reason
              << "\n";
    std::vector<std::vector<std::string>> rows;
    for (const retrain::GateMetric& m : g.metrics) {
      rows.push_back({"  " + m.name, Metric(m.champion), Metric(m.challenger)});
    }
    if (!rows.empty()) PrintTable({"  metric", "champion", "challenger"}, rows);
  }
  if (job.shadow) {
    const retrain::ShadowReport& r = *job.shadow;
    if (job.status == "shadow") {
      std::cout << "  shadow     from " << FormatTime(r.started_ms) << ", decided by keel server "
                << "(--retrain-policies) from " << FormatTime(r.ends_ms) << "\n";
    } else if (r.requests > 0 || !r.reason.empty()) {
      std::cout << "  shadow     " << (r.passed ? "passed" : "not passed") << ": " << r.reason
                << "\n";
      std::cout << "             " << r.requests << " requests, " << r.errors << " errors, "
                << r.non_finite << " non-finite, agreement " << Metric(r.agreement)
                << ", mean |difference| " << Metric(r.mean_abs_diff) << ", p50 "
                << Metric(r.latency_p50_us) << " us/row\n";
    }
  }
  if (!job.message.empty() && job.status != "promoted" && job.status != "rejected") {
    std::cout << "  message    " << job.message << "\n";
  }
}

Status RetrainCommand(const GlobalOptions& global, const RetrainFlags& f) {
  KEEL_ASSIGN_OR_RETURN(std::vector<retrain::RetrainPolicy> policies,
                        retrain::LoadPolicies(f.policy_file));
  const retrain::RetrainPolicy* policy = nullptr;
  for (const retrain::RetrainPolicy& p : policies) {
    if (p.model == f.model) policy = &p;
  }
  if (policy == nullptr) {
    return NotFound(f.policy_file + " has no policy for model '" + f.model + "'");
  }
  if (f.continuous && !policy->train.command.empty()) {
    return InvalidArgument("the policy for '" + f.model +
                           "' trains with a command; continuous updates take keel-trained models");
  }
  api::AppOptions app_options;
  app_options.store_uri = global.store_uri;
  app_options.artifact_root = global.artifact_root;
  app_options.read_connections = 1;
  app_options.anonymous_name = CurrentUser();
  app_options.serving.log_predictions = false;
  KEEL_ASSIGN_OR_RETURN(std::unique_ptr<api::App> app, api::App::Open(app_options));
  std::unique_ptr<Transport> transport = MakeEmbeddedTransport(*app);
  std::unique_ptr<train::RunRecorder> recorder = MakeApiRecorder(*transport);
  retrain::RetrainEnv env = RetrainEnvOf(*app, *recorder);
  if (!f.json) env.on_status = [](const std::string& line) { std::cerr << line << "\n"; };
  KEEL_ASSIGN_OR_RETURN(
      int interrupted, retrain::MarkInterruptedJobs(app->db(), SystemClock::Default().NowMillis()));
  if (interrupted > 0 && !f.json) {
    std::cerr << "marked " << interrupted << " retraining job(s) of stopped processes as failed\n";
  }
  retrain::RetrainRequest request;
  request.trigger = f.continuous ? "manual (continuous)" : "manual";
  request.continuous = f.continuous;
  request.actor = CurrentUser();
  request.cancel = &g_cancel;
  // Ctrl-C or SIGTERM cancel the job: the trainer is stopped and the job
  // recorded as cancelled, the champion untouched.
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
  Result<retrain::RetrainJob> ran = retrain::RunRetrainJob(*policy, env, request);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  KEEL_ASSIGN_OR_RETURN(retrain::RetrainJob job, std::move(ran));
  if (f.json) {
    std::cout << job.ToJson() << "\n";
  } else {
    PrintJob(job);
  }
  if (job.status == "failed" || job.status == "cancelled") {
    return FailedPrecondition("retrain job " + std::to_string(job.id) + " " + job.status + ": " +
                              job.message);
  }
  return OkStatus();
}

struct HistoryFlags {
  std::string model;
  size_t limit = 20;
  bool json = false;
};

// GET /api/2.0/keel/retrain/jobs, on the store or on a server (--tracking-uri).
Status HistoryCommand(const GlobalOptions& global, const HistoryFlags& f) {
  KEEL_ASSIGN_OR_RETURN(std::unique_ptr<Transport> t, Transport::Make(global));
  std::multimap<std::string, std::string> query{{"limit", std::to_string(f.limit)}};
  if (!f.model.empty()) query.emplace("model", f.model);
  KEEL_ASSIGN_OR_RETURN(JsonDoc doc, t->Call("GET", "/api/2.0/keel/retrain/jobs", query, ""));
  if (f.json) {
    std::cout << simdjson::minify(doc.root()) << "\n";
    return OkStatus();
  }
  std::vector<retrain::RetrainJob> jobs;
  simdjson::dom::array listed;
  if (doc.root()["jobs"].get(listed) != simdjson::SUCCESS) {
    return Internal("the server's job list has no \"jobs\" array");
  }
  for (simdjson::dom::element e : listed) {
    KEEL_ASSIGN_OR_RETURN(retrain::RetrainJob j,
                          retrain::RetrainJob::FromJson(simdjson::minify(e)));
    jobs.push_back(std::move(j));
  }
  if (jobs.empty()) {
    std::cout << "no retraining jobs" << (f.model.empty() ? "" : " for " + f.model) << "\n";
    return OkStatus();
  }
  std::vector<std::vector<std::string>> rows;
  for (const retrain::RetrainJob& j : jobs) {
    std::string gate = "-";
    if (j.gate) {
      gate = j.gate->metric + " " + Metric(j.gate->champion) + " -> " + Metric(j.gate->challenger) +
             " (" + std::to_string(j.gate->holdout_rows) + " rows)";
    }
    rows.push_back({std::to_string(j.id), FormatTime(j.started_ms), j.model, j.trigger, j.actor,
                    j.status, j.champion_version.empty() ? "-" : j.champion_version,
                    j.challenger_version.empty() ? "-" : j.challenger_version, gate,
                    j.message.substr(0, 100)});
  }
  PrintTable({"id", "started", "model", "trigger", "by", "status", "champion", "challenger", "gate",
              "outcome"},
             rows);
  return OkStatus();
}

// POSTs {"model": model} to `path`, on the store or on a server (--tracking-uri).
Result<JsonDoc> PostModel(const GlobalOptions& global, const std::string& path,
                          const std::string& model) {
  KEEL_ASSIGN_OR_RETURN(std::unique_ptr<Transport> t, Transport::Make(global));
  JsonWriter body;
  body.BeginObject();
  body.Key("model");
  body.String(model);
  body.EndObject();
  return t->Call("POST", path, {}, std::move(body).Take());
}

// POST /api/2.0/keel/retrain/jobs/cancel, on the store (every process's
// jobs of the model: a server's or another `keel retrain`'s) or on a server
// (--tracking-uri): the model's queued and running jobs, else its shadow
// phase.
Status CancelCommand(const GlobalOptions& global, const std::string& model) {
  KEEL_ASSIGN_OR_RETURN(JsonDoc doc, PostModel(global, "/api/2.0/keel/retrain/jobs/cancel", model));
  KEEL_ASSIGN_OR_RETURN(std::optional<std::string> what, JsonString(doc.root(), "cancelled"));
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> queued, JsonInt64(doc.root(), "queued"));
  KEEL_ASSIGN_OR_RETURN(std::optional<int64_t> running, JsonInt64(doc.root(), "running"));
  if (what.value_or("") == "shadow") {
    std::cout << "ended the shadow phase of " << model << "; the champion is untouched\n";
  } else {
    std::cout << "cancelled " << queued.value_or(0) << " queued job(s) of " << model << "; asked "
              << running.value_or(0)
              << " running job(s) to stop (they stop within about a second)\n";
  }
  return OkStatus();
}

// POST /api/2.0/keel/retrain/jobs on a server (--tracking-uri): a manual job
// queued on the server's scheduler, which runs the server's policy.
Status TriggerOnServer(const GlobalOptions& global, const std::string& model) {
  KEEL_RETURN_IF_ERROR(PostModel(global, "/api/2.0/keel/retrain/jobs", model).status());
  std::cout << "queued a retrain of " << model << " on " << global.tracking_uri
            << " (keel --tracking-uri " << global.tracking_uri << " retrain history " << model
            << " shows it)\n";
  return OkStatus();
}

}  // namespace

retrain::RetrainEnv RetrainEnvOf(api::App& app, train::RunRecorder& recorder) {
  retrain::RetrainEnv env;
  env.db = &app.db();
  env.registry = &app.registry();
  env.recorder = &recorder;
  env.clock = &SystemClock::Default();
  api::App* a = &app;
  env.model_path = [a](const std::string& name, const std::string& version) {
    return a->ModelVersionPath(name, version);
  };
  return env;
}

void AddRetrainCommand(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* cmd = app.add_subcommand(
      "retrain",
      "Retrain a model now from its policy (champion/challenger gate), or show past jobs");
  auto f = std::make_shared<RetrainFlags>();
  cmd->add_option("model", f->model, "registered model name");
  cmd->add_option("--policy", f->policy_file, "retraining policy file (YAML)");
  cmd->add_flag("--json", f->json, "print the job as JSON");
  cmd->add_flag("--continuous", f->continuous,
                "update the champion on the labeled predictions it has not learnt from "
                "(the policy's continuous mode) instead of training from scratch");
  auto* history = cmd->add_subcommand("history", "Past retraining jobs, newest first");
  auto h = std::make_shared<HistoryFlags>();
  history->add_option("model", h->model, "only this model");
  history->add_option("--limit", h->limit, "at most this many")->capture_default_str();
  history->add_flag("--json", h->json, "as JSON");
  history->callback([&run, &global, h] {
    run = [&global, h]() -> Status { return HistoryCommand(global, *h); };
  });
  auto* cancel = cmd->add_subcommand(
      "cancel",
      "Cancel a model's queued and running retraining jobs (any process's), else its shadow "
      "phase");
  auto c = std::make_shared<std::string>();
  cancel->add_option("model", *c, "registered model name")->required();
  cancel->callback(
      [&run, &global, c] { run = [&global, c]() -> Status { return CancelCommand(global, *c); }; });
  cmd->callback([&run, &global, f, cmd] {
    if (cmd->got_subcommand("history") || cmd->got_subcommand("cancel")) return;
    run = [&global, f]() -> Status {
      if (f->model.empty())
        return InvalidArgument("keel retrain: name the model (keel retrain MODEL --policy FILE)");
      if (!global.tracking_uri.empty()) {
        if (!f->policy_file.empty() || f->continuous || f->json) {
          return InvalidArgument(
              "keel retrain against a server (--tracking-uri) queues a job of the server's own "
              "policy: leave out --policy, --continuous and --json");
        }
        return TriggerOnServer(global, f->model);
      }
      if (f->policy_file.empty())
        return InvalidArgument("keel retrain " + f->model +
                               ": --policy FILE is required (or --tracking-uri URL of a server "
                               "running the policies)");
      return RetrainCommand(global, *f);
    };
  });
}

}  // namespace keel::cli
