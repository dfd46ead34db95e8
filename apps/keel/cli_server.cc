// keel server (tracking, registry, artifacts and serving) and keel serve (a
// serving-only replica): one App behind the HTTP transport, differing in the
// routes they expose and the models they load at start.
#include <csignal>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "apps/keel/cli.h"
#include "keel/http/client.h"
#include "keel/http/server.h"
#include "keel/monitor/alerts.h"
#include "keel/retrain/scheduler.h"

namespace keel::cli {
namespace {

struct ServerFlags {
  std::string host = "127.0.0.1";
  int port = 5000;
  int workers = 2;
  std::string auth_tokens;
  std::string sync = "normal";
  size_t max_body_mb = 64;
  std::vector<std::string> models;
  std::string default_alias = "champion";
  int poll_ms = 500;
  bool no_log = false;
  bool lenient_inputs = false;
  std::string log_durability = "interval";
  double log_sample_rate = 1.0;
  int log_flush_ms = 200;
  int counts_flush_ms = 5000;
  size_t log_queue = 200000;
  std::string log_when_full = "drop";
  // keel server only: monitoring passes and alerts.
  std::string monitor_interval = "5m";
  std::string alert_rules;
  std::string alert_webhook;
  std::string alert_webhook_secret;
  // keel server only: retraining.
  std::string retrain_policies;
  int retrain_concurrency = 1;
  std::string retrain_watch_interval = "30s";
  std::string lease_ttl = "30s";
};

// Monitoring flags (keel server only).
void AddMonitorFlags(CLI::App* cmd, ServerFlags& f) {
  cmd->add_option("--monitor-interval", f.monitor_interval,
                  "how often served models are monitored (drift, performance, latency) and "
                  "alert rules evaluated, e.g. 30s, 5m; 'off' disables")
      ->capture_default_str();
  cmd->add_option("--alert-rules", f.alert_rules,
                  "alert rules file (YAML, docs/monitoring.md); default: keel alerts rules' "
                  "defaults for every model");
  cmd->add_option("--alert-webhook", f.alert_webhook,
                  "POST each new alert as JSON to this http:// URL (signed, retried)");
  cmd->add_option(
      "--alert-webhook-secret", f.alert_webhook_secret,
      "HMAC-SHA256 key for the X-Keel-Signature header [env KEEL_ALERT_WEBHOOK_SECRET]");
  cmd->add_option("--retrain-policies", f.retrain_policies,
                  "retraining policies file (YAML, docs/retraining.md): their schedules and "
                  "alert triggers run in this server");
  cmd->add_option("--retrain-watch-interval", f.retrain_watch_interval,
                  "how often promotions under watch are checked against the version before")
      ->capture_default_str();
  cmd->add_option("--lease-ttl", f.lease_ttl,
                  "replicas on one store: how long the retraining scheduler's lease outlives "
                  "its holder's last renewal (renewed every second), i.e. how soon another "
                  "replica takes the schedules over")
      ->capture_default_str();
  cmd->add_option("--retrain-concurrency", f.retrain_concurrency,
                  "retraining jobs running at once (one per model at most)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
}

// Posts a webhook body through the CLI's HTTP client (10 s per attempt).
Result<int> PostWebhook(const std::string& url, const std::string& body,
                        const std::vector<std::pair<std::string, std::string>>& headers) {
  KEEL_ASSIGN_OR_RETURN(http::Client client, http::Client::FromUri(url));
  api::Request request;
  request.method = "POST";
  request.content_type = "application/json";
  request.body = body;
  KEEL_ASSIGN_OR_RETURN(api::Response response,
                        client.Send(request, std::chrono::seconds(10), headers));
  return response.status;
}

void AddCommonFlags(CLI::App* cmd, ServerFlags& f, int default_port) {
  f.port = default_port;
  cmd->add_option("--host", f.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", f.port, "port (0 = any free port)")->capture_default_str();
  cmd->add_option("--workers", f.workers, "I/O worker threads")->capture_default_str();
  cmd->add_option("--auth-tokens", f.auth_tokens,
                  "enable auth with this credentials file (lines: name read|write secret)");
  cmd->add_option("--sync", f.sync,
                  "store durability: normal (survives a process crash) or full (also power loss)")
      ->check(CLI::IsMember({"normal", "full"}))
      ->capture_default_str();
  cmd->add_option("--max-body-mb", f.max_body_mb, "largest JSON request body")
      ->capture_default_str();
  cmd->add_option("--default-alias", f.default_alias,
                  "alias a bare model name means (churn = churn@<alias>)")
      ->capture_default_str();
  cmd->add_option("--poll-ms", f.poll_ms, "how often served aliases are re-read")
      ->check(CLI::Range(10, 3600000))
      ->capture_default_str();
  cmd->add_flag("--lenient-inputs", f.lenient_inputs,
                "accept records with absent input fields (as missing values) and extra fields "
                "(ignored); by default both are 400 naming the field");
  cmd->add_flag("--no-prediction-log", f.no_log, "do not log predictions");
  cmd->add_option("--log-durability", f.log_durability,
                  "interval: a crash loses at most the last flush interval of predictions; "
                  "strict: a prediction is answered only once its log record is committed")
      ->check(CLI::IsMember({"interval", "strict"}))
      ->capture_default_str();
  cmd->add_option("--log-sample-rate", f.log_sample_rate, "share of requests logged, 0..1")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--log-flush-ms", f.log_flush_ms, "prediction log flush interval")
      ->check(CLI::Range(1, 60000))
      ->capture_default_str();
  cmd->add_option("--counts-flush-ms", f.counts_flush_ms,
                  "how often request outcome counts (the error rate over time) are written")
      ->check(CLI::Range(1, 600000))
      ->capture_default_str();
  cmd->add_option("--log-queue", f.log_queue, "prediction log queue capacity (records)")
      ->check(CLI::Range(size_t{1}, size_t{100000000}))
      ->capture_default_str();
  cmd->add_option("--log-when-full", f.log_when_full,
                  "when the log queue is full: drop (and count) or block the request")
      ->check(CLI::IsMember({"drop", "block"}))
      ->capture_default_str();
}

Status RunServer(const GlobalOptions& global, const ServerFlags& f, bool serving_only) {
  // Block the stop signals in every thread; RunUntilSignal waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  api::AppOptions app_options;
  app_options.store_uri = global.store_uri;
  app_options.artifact_root = global.artifact_root;
  app_options.sync = f.sync == "full" ? store::SyncMode::kFull : store::SyncMode::kNormal;
  app_options.read_connections = std::max(2, f.workers);
  if (!f.auth_tokens.empty()) {
    app_options.auth.enabled = true;
    app_options.auth.tokens_file = f.auth_tokens;
  }
  api::ServingOptions& serving = app_options.serving;
  serving.models = f.models;
  serving.serving_only = serving_only;
  serving.engine.default_alias = f.default_alias;
  serving.engine.poll_interval = std::chrono::milliseconds(f.poll_ms);
  serving.engine.load_on_demand = !serving_only;
  serving.log_predictions = !f.no_log;
  serving.lenient_inputs = f.lenient_inputs;
  serving.log.durability =
      f.log_durability == "strict" ? serve::Durability::kStrict : serve::Durability::kInterval;
  serving.log.sample_rate = f.log_sample_rate;
  serving.log.flush_interval = std::chrono::milliseconds(f.log_flush_ms);
  serving.counts.flush_interval = std::chrono::milliseconds(f.counts_flush_ms);
  serving.log.queue_capacity = f.log_queue;
  serving.log.when_full =
      f.log_when_full == "block" ? serve::WhenFull::kBlock : serve::WhenFull::kDrop;

  // Monitoring options are checked before anything starts.
  std::optional<std::chrono::milliseconds> monitor_every;
  std::vector<monitor::AlertRule> rules;
  if (!serving_only && f.monitor_interval != "off") {
    KEEL_ASSIGN_OR_RETURN(int64_t ms, monitor::ParseDuration(f.monitor_interval));
    if (ms < 100) return InvalidArgument("--monitor-interval must be at least 100ms");
    monitor_every = std::chrono::milliseconds(ms);
    if (!f.alert_rules.empty()) {
      std::ifstream in(f.alert_rules);
      if (!in) return InvalidArgument(f.alert_rules + ": cannot read the alert rules");
      std::stringstream text;
      text << in.rdbuf();
      KEEL_ASSIGN_OR_RETURN(rules, monitor::ParseAlertRules(text.str(), f.alert_rules));
    }
  }
  std::string secret = f.alert_webhook_secret;
  if (const char* env = std::getenv("KEEL_ALERT_WEBHOOK_SECRET"); secret.empty() && env)
    secret = env;
  if (!f.alert_webhook.empty()) {
    KEEL_RETURN_IF_ERROR(http::Client::FromUri(f.alert_webhook).status());
    if (secret.empty()) {
      return InvalidArgument(
          "--alert-webhook needs a signing secret: --alert-webhook-secret or "
          "KEEL_ALERT_WEBHOOK_SECRET");
    }
  }

  std::vector<retrain::RetrainPolicy> policies;
  int64_t watch_interval_ms = 0;
  int64_t lease_ttl_ms = 0;
  if (!serving_only && !f.retrain_policies.empty()) {
    KEEL_ASSIGN_OR_RETURN(policies, retrain::LoadPolicies(f.retrain_policies));
    KEEL_ASSIGN_OR_RETURN(watch_interval_ms, monitor::ParseDuration(f.retrain_watch_interval));
    KEEL_ASSIGN_OR_RETURN(lease_ttl_ms, monitor::ParseDuration(f.lease_ttl));
    if (lease_ttl_ms < 2'000) return InvalidArgument("--lease-ttl must be at least 2s");
  }

  KEEL_ASSIGN_OR_RETURN(auto app, api::App::Open(app_options));
  http::ServerOptions server_options;
  server_options.host = f.host;
  server_options.port = static_cast<uint16_t>(f.port);
  server_options.threads = f.workers;
  server_options.max_body_bytes = f.max_body_mb << 20;
  http::Server server(*app, server_options);
  KEEL_RETURN_IF_ERROR(server.Start());
  std::string base = "http://" + f.host + ":" + std::to_string(server.port());
  std::cout << (serving_only ? "keel serve" : "keel server") << " listening on " << base << "\n"
            << "  store:      " << store::RedactUri(global.store_uri) << "\n"
            << "  artifacts:  " << app->artifacts().root().string() << "\n";
  if (!serving_only) {
    std::cout << "  MLflow API: " << base << "/api/2.0/mlflow/  (MLFLOW_TRACKING_URI=" << base
              << ")\n";
  }
  for (const auto& st : app->engine().Served()) {
    std::string name = st.ref.substr(0, st.ref.find_first_of("@/"));
    std::cout << "  serving:    " << st.ref << " (version " << st.version << ")  POST " << base
              << "/predict/" << name << "\n";
  }
  if (!serving_only) {
    std::cout << "  predict:    POST " << base
              << "/predict/<model>[@alias|/version]  (registered models load on first use)\n";
  }
  std::cout << "  metrics:    " << base << "/metrics\n"
            << "  health:     " << base << "/health\n"
            << "  predictions log: "
            << (f.no_log ? std::string("off")
                         : f.log_durability + ", sample rate " + FormatDouble(f.log_sample_rate))
            << "\n"
            << "  auth:       " << (app_options.auth.enabled ? "on" : "off") << std::endl;
  // New alerts are published here: to the webhook, and to in-process
  // subscribers (retraining triggers).
  monitor::AlertBus alerts;
  // Replicas on one store: the monitoring passes and the retraining
  // schedules run in whichever process holds their lease.
  const std::string holder = store::Lease::ProcessHolder();
  std::unique_ptr<monitor::WebhookNotifier> webhook;
  std::unique_ptr<monitor::MonitorService> monitoring;
  // The webhook takes every alert published here: monitoring's, and the
  // retraining watch's rollbacks (also with monitoring off).
  if (!serving_only && !f.alert_webhook.empty()) {
    monitor::WebhookNotifier::Options wo;
    wo.url = f.alert_webhook;
    wo.secret = secret;
    webhook = std::make_unique<monitor::WebhookNotifier>(wo, PostWebhook);
    alerts.Subscribe([&webhook](const monitor::Alert& a) { webhook->Enqueue(a); });
  }
  if (monitor_every) {
    monitor::MonitorService::Options mo;
    mo.interval = *monitor_every;
    mo.rules = rules;
    mo.metrics = &app->metrics();
    mo.lease_holder = holder;
    api::App* a = app.get();
    monitoring = std::make_unique<monitor::MonitorService>(
        app->db(), SystemClock::Default(),
        // The version's package, loaded here (not added to the serving engine).
        [a](const std::string& model,
            const std::string& version) -> Result<std::shared_ptr<const model::LoadedModel>> {
          KEEL_ASSIGN_OR_RETURN(std::filesystem::path path, a->ModelVersionPath(model, version));
          return model::LoadModelPackage(path);
        },
        alerts, mo);
    monitoring->Start();
    std::cout << "  monitoring: every " << f.monitor_interval << ", rules "
              << (f.alert_rules.empty() ? std::string("default") : f.alert_rules) << ", webhook "
              << (f.alert_webhook.empty() ? std::string("none") : f.alert_webhook) << std::endl;
  }
  // Retraining: jobs run on the scheduler's threads against this App (runs
  // recorded through its own API, models read from its artifact root).
  std::unique_ptr<Transport> retrain_transport;
  std::unique_ptr<train::RunRecorder> retrain_recorder;
  std::unique_ptr<retrain::RetrainScheduler> scheduler;
  if (!policies.empty()) {
    KEEL_ASSIGN_OR_RETURN(int interrupted, retrain::MarkInterruptedJobs(
                                               app->db(), SystemClock::Default().NowMillis()));
    retrain_transport = MakeEmbeddedTransport(*app);
    retrain_recorder = MakeApiRecorder(*retrain_transport);
    retrain::RetrainEnv env = RetrainEnvOf(*app, *retrain_recorder);
    env.stale_after_ms = lease_ttl_ms;
    env.on_status = [](const std::string& line) {
      std::cout << "  retrain: " << line << std::endl;
    };
    retrain::SchedulerOptions so;
    so.max_concurrent = f.retrain_concurrency;
    so.watch_interval_ms = watch_interval_ms;
    so.lease_holder = holder;
    so.lease_ttl_ms = lease_ttl_ms;
    // The watch after promotions: a rollback is stored and published as an
    // alert like monitoring's own.
    store::Database* db = &app->db();
    monitor::AlertBus* bus = &alerts;
    so.watch = [env, db, bus](const retrain::RetrainPolicy& p) -> Status {
      Result<std::optional<retrain::WatchOutcome>> watched = retrain::WatchPromotion(p, env);
      if (!watched.ok()) {
        std::cout << "  retrain: watch of " << p.model << ": " << watched.status().message()
                  << std::endl;
        return watched.status();
      }
      if (!*watched) return OkStatus();
      const retrain::WatchOutcome& w = **watched;
      std::cout << "  retrain: watch job " << w.job.id << " " << w.job.status << ": "
                << w.job.message << std::endl;
      if (!w.rolled_back) return OkStatus();
      KEEL_ASSIGN_OR_RETURN(monitor::RecordedAlert stored, monitor::RecordAlert(*db, w.alert, 1));
      if (stored.is_new) bus->Publish(stored.alert);
      return OkStatus();
    };
    // The shadow phases: decided once due; a promotion is published by the
    // alias observer like any other alias change.
    so.shadow = [env](const retrain::RetrainPolicy& p) -> Status {
      Result<std::optional<retrain::RetrainJob>> done = retrain::FinishShadow(p, env);
      if (!done.ok()) {
        std::cout << "  retrain: shadow of " << p.model << ": " << done.status().message()
                  << std::endl;
        return done.status();
      }
      if (*done) {
        std::cout << "  retrain: job " << (*done)->id << " " << (*done)->status << ": "
                  << (*done)->message << std::endl;
      }
      return OkStatus();
    };
    scheduler = std::make_unique<retrain::RetrainScheduler>(
        policies, app->db(), SystemClock::Default(),
        [env](const retrain::RetrainPolicy& p, const retrain::RetrainRequest& r) {
          return retrain::RunRetrainJob(p, env, r);
        },
        so);
    retrain::RetrainScheduler* sch = scheduler.get();
    alerts.Subscribe([sch](const monitor::Alert& a) { sch->OnAlert(a); });
    if (Status s = scheduler->Start(); !s.ok()) {
      if (monitoring) monitoring->Stop();  // no more alerts to a scheduler about to go
      return s;
    }
    app->set_retrain_scheduler(scheduler.get());
    std::string models;
    for (const retrain::RetrainPolicy& p : policies)
      models += (models.empty() ? "" : ", ") + p.model;
    std::cout << "  retraining: " << models << " (" << f.retrain_policies << ")"
              << (interrupted > 0
                      ? ", " + std::to_string(interrupted) + " interrupted job(s) marked failed"
                      : "")
              << (monitor_every ? "" : "; alert triggers need monitoring (--monitor-interval)")
              << std::endl;
  }
  server.RunUntilSignal();
  app->set_retrain_scheduler(nullptr);
  if (scheduler) scheduler->Stop();
  if (monitoring) monitoring->Stop();
  if (webhook) webhook->Drain(std::chrono::seconds(5));
  app->Shutdown();  // flushes the prediction log
  std::cout << (serving_only ? "keel serve" : "keel server") << " stopped" << std::endl;
  return OkStatus();
}

}  // namespace

void AddServerCommand(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* cmd = app.add_subcommand(
      "server", "Run the MLflow-compatible tracking and registry server, which also serves models");
  auto flags = std::make_shared<ServerFlags>();
  AddCommonFlags(cmd, *flags, 5000);
  AddMonitorFlags(cmd, *flags);
  cmd->add_option("--serve", flags->models,
                  "models to load at start (name@alias, name/version or name); others load on "
                  "first request");
  cmd->callback([&run, &global, flags] {
    run = [&global, flags]() -> Status { return RunServer(global, *flags, false); };
  });

  auto* serve = app.add_subcommand("serve", "Serve registered models (a serving-only replica)");
  auto serve_flags = std::make_shared<ServerFlags>();
  serve
      ->add_option("models", serve_flags->models,
                   "models to serve: name@alias (follows the alias), name/version or name "
                   "(its default alias)")
      ->required();
  AddCommonFlags(serve, *serve_flags, 8080);
  serve->callback([&run, &global, serve_flags] {
    run = [&global, serve_flags]() -> Status { return RunServer(global, *serve_flags, true); };
  });
}

}  // namespace keel::cli
