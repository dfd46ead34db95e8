// keel stream: score records from a NATS JetStream durable pull consumer with
// a registered model (following its alias) and publish the predictions, with
// /metrics and /health on an HTTP port. See docs/streaming.md.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <ctime>
#include <iostream>
#include <thread>

#include "apps/keel/cli.h"
#include "keel/http/server.h"
#include "keel/stream/stream.h"

namespace keel::cli {
namespace {

struct StreamFlags {
  std::string model;
  std::string nats_url = "nats://127.0.0.1:4222";
  std::string stream;
  std::string subject;
  std::string output_subject;
  std::string dead_letter_subject;
  std::string durable;
  std::string output_stream;
  bool create_stream = false;
  std::string ordered_by;
  int64_t max_in_flight = 256;
  int workers = 2;
  int64_t max_deliver = 5;
  int64_t max_ack_pending = 0;
  int64_t ack_wait_ms = 30000;
  int64_t publish_timeout_ms = 5000;
  int64_t drain_timeout_ms = 30000;
  bool lenient_inputs = false;
  std::string host = "127.0.0.1";
  int port = 8090;
  std::string default_alias = "champion";
  int poll_ms = 500;
  bool no_log = false;
  double log_sample_rate = 1.0;
  int log_flush_ms = 200;
};

// "keel-<model name>", with characters a consumer name cannot hold replaced.
std::string DefaultDurable(const std::string& model_ref) {
  std::string name = model_ref.substr(0, model_ref.find_first_of("@/"));
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  }
  return "keel-" + name;
}

Status CheckFlags(const GlobalOptions& global, const StreamFlags& f) {
  if (!global.tracking_uri.empty()) {
    return InvalidArgument(
        "keel stream reads the registry from the store and artifact root (--store-uri, "
        "--artifact-root), not from a remote server");
  }
  // Like every keel command that takes a model (LoadModelForCli), a
  // reference naming an existing file or directory is a model path; keel
  // stream scores registered models only, so it refuses paths.
  std::error_code ec;
  if (std::filesystem::exists(f.model, ec)) {
    return InvalidArgument("\"" + f.model +
                           "\" is a file or directory, which keel commands read as a model "
                           "package path; keel stream scores registered models only (name@alias, "
                           "name/version or name): register it first (keel models register), or "
                           "run from a directory where the name is not a path");
  }
  if (f.stream.empty()) return InvalidArgument("--stream is required (the input JetStream stream)");
  if (f.subject.empty()) return InvalidArgument("--subject is required (the input subject)");
  if (f.output_subject.empty()) {
    return InvalidArgument("--output-subject is required (where predictions are published)");
  }
  if (f.port < 0 || f.port > 65535) return InvalidArgument("--port must be between 0 and 65535");
  if (f.poll_ms < 10) return InvalidArgument("--poll-ms must be at least 10");
  if (f.log_sample_rate < 0 || f.log_sample_rate > 1) {
    return InvalidArgument("--log-sample-rate must be between 0 and 1");
  }
  if (f.log_flush_ms < 1) return InvalidArgument("--log-flush-ms must be at least 1");
  if (f.max_in_flight < 1) return InvalidArgument("--max-in-flight must be at least 1");
  if (f.drain_timeout_ms < 0) return InvalidArgument("--drain-timeout-ms must not be negative");
  if (f.ack_wait_ms < 100) return InvalidArgument("--ack-wait-ms must be at least 100");
  if (f.publish_timeout_ms < 1) return InvalidArgument("--publish-timeout-ms must be positive");
  return OkStatus();
}

Status ServeStream(const GlobalOptions& global, const StreamFlags& f) {
  // Block the stop signals in every thread (those App::Open and libnats
  // start inherit the mask); this thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  api::AppOptions app_options;
  app_options.store_uri = global.store_uri;
  app_options.artifact_root = global.artifact_root;
  app_options.read_connections = 2;
  api::ServingOptions& serving = app_options.serving;
  serving.models = {f.model};
  serving.serving_only = true;
  serving.engine.default_alias = f.default_alias;
  serving.engine.poll_interval = std::chrono::milliseconds(f.poll_ms);
  serving.engine.load_on_demand = false;
  serving.log_predictions = !f.no_log;
  serving.log.sample_rate = f.log_sample_rate;
  serving.log.flush_interval = std::chrono::milliseconds(f.log_flush_ms);
  KEEL_ASSIGN_OR_RETURN(auto app, api::App::Open(app_options));

  stream::StreamOptions o;
  o.nats_url = f.nats_url;
  o.stream = f.stream;
  o.subject = f.subject;
  o.durable = f.durable.empty() ? DefaultDurable(f.model) : f.durable;
  o.output_subject = f.output_subject;
  o.dead_letter_subject = f.dead_letter_subject;
  o.create_streams = f.create_stream;
  o.output_stream = f.output_stream;
  o.model_ref = f.model;
  o.max_in_flight = static_cast<size_t>(f.max_in_flight);
  o.workers = f.workers;
  o.ordered_by = f.ordered_by;
  o.max_deliver = f.max_deliver;
  o.max_ack_pending = f.max_ack_pending;
  o.ack_wait = std::chrono::milliseconds(f.ack_wait_ms);
  o.publish_timeout = std::chrono::milliseconds(f.publish_timeout_ms);
  o.lenient_inputs = f.lenient_inputs;
  o.client_name = "keel stream " + f.model;
  stream::StreamScorer scorer(app->engine(), app->prediction_log(), &app->metrics(), app->clock(),
                              o);
  if (Status st = scorer.Start(); !st.ok()) {
    app->Shutdown();
    return st;
  }
  http::ServerOptions server_options;
  server_options.host = f.host;
  server_options.port = static_cast<uint16_t>(f.port);
  server_options.threads = 1;
  http::Server server(*app, server_options);
  if (Status st = server.Start(); !st.ok()) {
    scorer.Abort();
    scorer.Stop(std::chrono::milliseconds(0)).IgnoreError();
    app->Shutdown();
    return st;
  }
  const stream::StreamOptions& eff = scorer.options();
  const std::string base = "http://" + f.host + ":" + std::to_string(server.port());
  std::string version;
  for (const auto& st : app->engine().Served()) version = st.version;
  std::cout << "keel stream: " << f.model << " (version " << version << ")\n"
            << "  nats:         " << eff.nats_url << "\n"
            << "  input:        stream " << eff.stream << ", subject " << eff.subject
            << ", durable " << eff.durable << "\n"
            << "  output:       " << eff.output_subject << " (stream " << scorer.output_stream()
            << ")\n"
            << "  dead letters: " << eff.dead_letter_subject << "\n"
            << "  ordering:     "
            << (eff.ordered_by.empty()
                    ? std::string("none")
                    : "by " + eff.ordered_by + " (" + std::to_string(eff.workers) + " lanes)")
            << "\n"
            << "  in flight:    " << eff.max_in_flight << " messages, " << eff.workers
            << " workers\n";
  if (!scorer.created_streams().empty()) {
    std::cout << "  created:      " << scorer.created_streams() << "\n";
  }
  std::cout << "  metrics:      " << base << "/metrics\n"
            << "  health:       " << base << "/health\n"
            << "  predictions log: " << (f.no_log ? "off" : "on") << std::endl;

  // Until a stop signal or a fatal error.
  const timespec tick{0, 200 * 1000 * 1000};
  Status failure;
  while (true) {
    siginfo_t info;
    if (sigtimedwait(&signals, &info, &tick) > 0) break;
    failure = scorer.failure();
    if (!failure.ok()) break;
  }
  if (failure.ok()) {
    std::cerr << "keel stream: stopping: finishing the messages in flight" << std::endl;
  }
  // Stop on a helper thread so that a second signal can cut the drain short.
  Status stopped;
  std::atomic<bool> done{false};
  std::thread stopper([&] {
    stopped = scorer.Stop(failure.ok() ? std::chrono::milliseconds(f.drain_timeout_ms)
                                       : std::chrono::milliseconds(0));
    done.store(true);
  });
  while (!done.load()) {
    siginfo_t info;
    if (sigtimedwait(&signals, &info, &tick) > 0) scorer.Abort();
  }
  stopper.join();
  server.Stop();
  app->Shutdown();  // flushes the prediction log
  const stream::StreamStats s = scorer.stats();
  std::cout << "keel stream stopped: " << s.consumed << " consumed, " << s.published
            << " predictions and " << s.dead_lettered << " dead letters published, " << s.duplicates
            << " duplicates" << std::endl;
  if (!failure.ok()) return failure;
  return stopped;
}

Status RunStream(const GlobalOptions& global, const StreamFlags& f) {
  KEEL_RETURN_IF_ERROR(CheckFlags(global, f));
  Status st = ServeStream(global, f);
  stream::ReleaseNatsLibrary();  // the scorer and its connection are gone
  return st;
}

}  // namespace

void AddStreamCommand(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* cmd = app.add_subcommand(
      "stream", "Score records from a NATS JetStream consumer and publish the predictions");
  auto f = std::make_shared<StreamFlags>();
  cmd->add_option("model", f->model,
                  "registered model: name@alias (follows the alias), name/version or name")
      ->required();
  cmd->add_option("--nats", f->nats_url, "NATS server URL(s), comma-separated")
      ->capture_default_str();
  cmd->add_option("--stream", f->stream, "input JetStream stream (required)");
  cmd->add_option("--subject", f->subject, "input subject: the consumer's filter (required)");
  cmd->add_option("--output-subject", f->output_subject,
                  "subject predictions are published to with JetStream (required)");
  cmd->add_option("--dead-letter-subject", f->dead_letter_subject,
                  "subject for messages that cannot be scored (default <output-subject>.dead)");
  cmd->add_option("--durable", f->durable,
                  "durable pull consumer, shared by every process given the same name "
                  "(default keel-<model name>)");
  cmd->add_flag("--create-stream", f->create_stream,
                "create the input stream if missing, and a stream for the output and "
                "dead-letter subjects when none captures them");
  cmd->add_option("--output-stream", f->output_stream,
                  "name of the output stream --create-stream creates (default <stream>_SCORES)");
  cmd->add_option("--ordered-by", f->ordered_by,
                  "record field: outputs of one value are published in input order within this "
                  "process");
  cmd->add_option("--max-in-flight", f->max_in_flight,
                  "messages held at once (fetched, not yet acknowledged)")
      ->capture_default_str();
  cmd->add_option("--workers", f->workers, "scoring threads (lanes when ordered)")
      ->capture_default_str();
  cmd->add_option("--max-deliver", f->max_deliver,
                  "a message delivered more often than this goes to the dead-letter subject")
      ->capture_default_str();
  cmd->add_option("--ack-wait-ms", f->ack_wait_ms,
                  "JetStream redelivers a message not acknowledged within this")
      ->capture_default_str();
  cmd->add_option("--max-ack-pending", f->max_ack_pending,
                  "the durable's limit over all processes (default 16 x --max-in-flight)");
  cmd->add_option("--publish-timeout-ms", f->publish_timeout_ms,
                  "wait this long for a publish acknowledgement before retrying (at most half "
                  "of --ack-wait-ms)")
      ->capture_default_str();
  cmd->add_option("--drain-timeout-ms", f->drain_timeout_ms,
                  "on SIGTERM/SIGINT, time to finish in-flight messages before handing them back")
      ->capture_default_str();
  cmd->add_flag("--lenient-inputs", f->lenient_inputs,
                "accept records with absent input fields (as missing values); by default they "
                "go to the dead-letter subject");
  cmd->add_option("--host", f->host, "address for /metrics and /health")->capture_default_str();
  cmd->add_option("--port", f->port, "port for /metrics and /health (0 = any free port)")
      ->capture_default_str();
  cmd->add_option("--default-alias", f->default_alias,
                  "alias a bare model name means (churn = churn@<alias>)")
      ->capture_default_str();
  cmd->add_option("--poll-ms", f->poll_ms, "how often the model's alias is re-read")
      ->capture_default_str();
  cmd->add_flag("--no-prediction-log", f->no_log, "do not log predictions");
  cmd->add_option("--log-sample-rate", f->log_sample_rate, "share of messages logged, 0..1")
      ->capture_default_str();
  cmd->add_option("--log-flush-ms", f->log_flush_ms, "prediction log flush interval")
      ->capture_default_str();
  cmd->callback(
      [&run, &global, f] { run = [&global, f]() -> Status { return RunStream(global, *f); }; });
}

}  // namespace keel::cli
