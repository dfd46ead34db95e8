// The keel CLI: shared plumbing for the subcommands. Every command talks the
// MLflow REST API either in-process (embedded store) or over HTTP
// (--tracking-uri / KEEL_TRACKING_URI), so both paths run the same handlers.
#pragma once

#include <CLI/CLI.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "keel/api/app.h"
#include "keel/core/clock.h"
#include "keel/core/json.h"
#include "keel/monitor/drift.h"
#include "keel/retrain/retrain.h"
#include "keel/train/train.h"

namespace keel::cli {

struct GlobalOptions {
  std::string tracking_uri;  // http://... = remote server; empty = embedded store
  std::string store_uri = "sqlite://keel-data/keel.db";
  std::string artifact_root = "keel-data/artifacts";
};

// Either an embedded App or a remote server.
class Transport {
 public:
  static Result<std::unique_ptr<Transport>> Make(const GlobalOptions& options);
  virtual ~Transport() = default;
  // Sends one API call; a non-2xx answer becomes a Status carrying the server's message.
  Result<JsonDoc> Call(const std::string& method, const std::string& path,
                       const std::multimap<std::string, std::string>& query,
                       const std::string& body);
  // PUTs a local file's bytes to `path` (an mlflow-artifacts upload).
  Result<JsonDoc> Upload(const std::string& path, const std::filesystem::path& file);
  // GETs `path` into a local file; NotFound on 404.
  Status Download(const std::string& path, const std::filesystem::path& dest);

 protected:
  virtual Result<api::Response> Send(api::Request request) = 0;
  // Sends a request whose body is the file (embedded: spooled; remote: read).
  virtual Result<api::Response> SendFile(api::Request request,
                                         const std::filesystem::path& file) = 0;
};

// A transport that dispatches to `app` in this process (which must outlive it).
std::unique_ptr<Transport> MakeEmbeddedTransport(api::App& app);

// Turns a non-2xx answer into a Status carrying the server's message.
Status StatusOfResponse(const api::Response& resp);

// Registers the subcommands; each sets `run` to its action when chosen.
using Action = std::function<Status()>;
void AddServerCommand(CLI::App& app, GlobalOptions& global, Action& run);
void AddExperimentCommands(CLI::App& app, GlobalOptions& global, Action& run);
void AddRunCommands(CLI::App& app, GlobalOptions& global, Action& run);
void AddModelCommands(CLI::App& app, GlobalOptions& global, Action& run);
void AddTrainCommand(CLI::App& app, GlobalOptions& global, Action& run);
void AddLabelCommands(CLI::App& app, GlobalOptions& global, Action& run);
void AddBatchCommand(CLI::App& app, GlobalOptions& global, Action& run);
void AddWorkerCommand(CLI::App& app, GlobalOptions& global, Action& run);
void AddExportCommand(CLI::App& app, GlobalOptions& global, Action& run);
void AddStreamCommand(CLI::App& app, GlobalOptions& global, Action& run);
void AddDriftCommand(CLI::App& app, GlobalOptions& global, Action& run);
void AddMonitorCommand(CLI::App& app, GlobalOptions& global, Action& run);
void AddAlertCommands(CLI::App& app, GlobalOptions& global, Action& run);
void AddRetrainCommand(CLI::App& app, GlobalOptions& global, Action& run);
void AddMigrateCommand(CLI::App& app, GlobalOptions& global, Action& run);

// Shared by keel drift and keel monitor (apps/keel/cli_drift.cc).
// Writes `text` to `path` (WriteFileAtomically); "-" writes to stdout.
Status WriteTextOutput(const std::string& path, const std::string& text);
// "ks" or "psi:0.2" -> the statistic and its threshold (NaN: the default).
Result<monitor::DriftOptions::Test> ParseTestSpec(const std::string& spec);
// --preset, --test (ParseTestSpec each) and --stats as DriftOptions.
Result<monitor::DriftOptions> DriftOptionsFromFlags(const std::string& preset,
                                                    const std::vector<std::string>& tests,
                                                    const std::vector<std::string>& stats);
// Why a drift report fails the --fail-on gate (drift|dataset, column,
// prediction), or "" when it passes.
std::string DriftGate(const monitor::DriftReport& report, const std::string& fail_on);

// What main exits with once the chosen action returned OK: 0 unless a gate
// the action checks failed (keel drift/monitor --fail-on set kDriftGateExitCode).
int& CommandExitCode();
inline constexpr int kDriftGateExitCode = 3;

// JSON string literal for `s`.
std::string JsonQuote(std::string_view s);
// Registers a local model directory or bare model file: validates it, uploads
// it under registered-models/<name>/<id>/model and creates the version.
Status RegisterLocalModel(Transport& t, const std::string& name, const std::filesystem::path& path,
                          const std::string& description, const std::string& output_name);

// The retraining job's host seam over an App in this process: its store,
// registry and artifact root, runs recorded by `recorder`, the system clock
// (apps/keel/cli_retrain.cc; keel retrain and keel server share it).
retrain::RetrainEnv RetrainEnvOf(api::App& app, train::RunRecorder& recorder);

// Records runs through the REST API the transport talks to.
std::unique_ptr<train::RunRecorder> MakeApiRecorder(Transport& t);
// Uploads the files under `dir` to mlflow-artifacts path `rel`/<relative path>.
Status UploadTree(Transport& t, const std::filesystem::path& dir, const std::string& rel);

// A model for offline use (keel batch, keel export): a local package
// directory or model file, or a registered reference (name@alias,
// name/version, name) resolved in the embedded store. Registered references
// need the embedded store: with --tracking-uri, InvalidArgument.
struct CliModel {
  std::shared_ptr<const model::LoadedModel> model;
  std::string name;     // registered model name; empty for a local path
  std::string version;  // registered version; empty for a local path
  // The embedded App that resolved a registered reference (null for a local
  // path). Its prediction log runs when LoadModelForCli was given `log`.
  std::unique_ptr<api::App> app;
};
Result<CliModel> LoadModelForCli(const GlobalOptions& global, const std::string& ref,
                                 const serve::PredictionLogOptions* log = nullptr);

// Output helpers.
std::string FormatTime(int64_t millis);
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);
using JsonValue = simdjson::simdjson_result<simdjson::dom::element>;
// A field as text ("" when absent); numbers are formatted.
std::string Str(simdjson::dom::element e, std::string_view key);
inline std::string Str(JsonValue e, std::string_view key) {
  simdjson::dom::element el;
  return e.get(el) ? std::string() : Str(el, key);
}
// An integer field (0 when absent).
inline int64_t IntField(JsonValue e, std::string_view key) {
  int64_t v = 0;
  return e[key].get(v) ? 0 : v;
}
inline int64_t IntField(simdjson::dom::element e, std::string_view key) {
  int64_t v = 0;
  return e[key].get(v) ? 0 : v;
}
std::string CurrentUser();
// The time now (Unix ms) on the process clock (SystemClock::Default()).
inline int64_t NowMillis() { return SystemClock::Default().NowMillis(); }

}  // namespace keel::cli
