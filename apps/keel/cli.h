// The keel CLI: shared plumbing for the subcommands. Every command talks the
// MLflow REST API either in-process (embedded store) or over HTTP
// (--tracking-uri / KEEL_TRACKING_URI), so both paths run the same handlers.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <memory>
#include <string>

#include "keel/api/app.h"
#include "keel/core/json.h"

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

 protected:
  virtual Result<api::Response> Send(api::Request request) = 0;
};

// Registers the subcommands; each sets `run` to its action when chosen.
using Action = std::function<Status()>;
void AddServerCommand(CLI::App& app, GlobalOptions& global, Action& run);
void AddExperimentCommands(CLI::App& app, GlobalOptions& global, Action& run);
void AddRunCommands(CLI::App& app, GlobalOptions& global, Action& run);
void AddModelCommands(CLI::App& app, GlobalOptions& global, Action& run);

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

}  // namespace keel::cli
