// keel server: the tracking, registry and artifact server.
#include <csignal>
#include <iostream>

#include "apps/keel/cli.h"
#include "keel/http/server.h"

namespace keel::cli {

void AddServerCommand(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* cmd = app.add_subcommand("server", "Run the MLflow-compatible tracking and registry server");
  struct Options {
    std::string host = "127.0.0.1";
    int port = 5000;
    int workers = 4;
    std::string auth_tokens;
    std::string sync = "normal";
    size_t max_body_mb = 64;
  };
  auto opts = std::make_shared<Options>();
  cmd->add_option("--host", opts->host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", opts->port, "port (0 = any free port)")->capture_default_str();
  cmd->add_option("--workers", opts->workers, "I/O worker threads")->capture_default_str();
  cmd->add_option("--auth-tokens", opts->auth_tokens,
                  "enable auth with this credentials file (lines: name read|write secret)");
  cmd->add_option("--sync", opts->sync,
                  "durability: normal (survives a process crash) or full (also power loss)")
      ->check(CLI::IsMember({"normal", "full"}))
      ->capture_default_str();
  cmd->add_option("--max-body-mb", opts->max_body_mb, "largest JSON request body")
      ->capture_default_str();
  cmd->callback([&run, &global, opts] {
    run = [&global, opts]() -> Status {
      // Block the stop signals in every thread; RunUntilSignal waits for them.
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGINT);
      sigaddset(&set, SIGTERM);
      pthread_sigmask(SIG_BLOCK, &set, nullptr);

      api::AppOptions app_options;
      app_options.store_uri = global.store_uri;
      app_options.artifact_root = global.artifact_root;
      app_options.sync = opts->sync == "full" ? store::SyncMode::kFull : store::SyncMode::kNormal;
      app_options.read_connections = std::max(2, opts->workers);
      if (!opts->auth_tokens.empty()) {
        app_options.auth.enabled = true;
        app_options.auth.tokens_file = opts->auth_tokens;
      }
      KEEL_ASSIGN_OR_RETURN(auto app, api::App::Open(app_options));
      http::ServerOptions server_options;
      server_options.host = opts->host;
      server_options.port = static_cast<uint16_t>(opts->port);
      server_options.threads = opts->workers;
      server_options.max_body_bytes = opts->max_body_mb << 20;
      http::Server server(*app, server_options);
      KEEL_RETURN_IF_ERROR(server.Start());
      std::string base = "http://" + opts->host + ":" + std::to_string(server.port());
      std::cout << "keel server listening on " << base << "\n"
                << "  store:      " << global.store_uri << "\n"
                << "  artifacts:  " << app->artifacts().root().string() << "\n"
                << "  MLflow API: " << base << "/api/2.0/mlflow/  (MLFLOW_TRACKING_URI=" << base
                << ")\n"
                << "  health:     " << base << "/health\n"
                << "  auth:       " << (app_options.auth.enabled ? "on" : "off") << std::endl;
      server.RunUntilSignal();
      std::cout << "keel server stopped" << std::endl;
      return OkStatus();
    };
  });
}

}  // namespace keel::cli
