// keel: one binary for the life of a model. Thin main: parse flags, call the library.
#include <pwd.h>
#include <unistd.h>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/keel/cli.h"
#include "keel/core/util.h"
#include "keel/http/client.h"
#include "keel/model/package.h"
#include "keel/serve/engine.h"

namespace keel::cli {

namespace {

class EmbeddedTransport final : public Transport {
 public:
  explicit EmbeddedTransport(std::unique_ptr<api::App> app)
      : owned_(std::move(app)), app_(owned_.get()) {}
  explicit EmbeddedTransport(api::App& app) : app_(&app) {}

 protected:
  Result<api::Response> Send(api::Request request) override {
    return app_->Dispatch(std::move(request));
  }
  Result<api::Response> SendFile(api::Request request, const std::filesystem::path& file) override {
    // The upload route adopts a spooled file, as the server's does.
    const std::filesystem::path spooled = app_->spool_dir() / ("cli-" + RandomHex(8));
    std::error_code ec;
    std::filesystem::copy_file(file, spooled, ec);
    if (ec) return Internal("cannot spool " + file.string() + ": " + ec.message());
    request.body_file = spooled;
    api::Response resp = app_->Dispatch(std::move(request));
    std::filesystem::remove(spooled, ec);
    return resp;
  }

 private:
  std::unique_ptr<api::App> owned_;  // null when borrowed
  api::App* app_;
};

class RemoteTransport final : public Transport {
 public:
  explicit RemoteTransport(http::Client client) : client_(std::move(client)) {
    if (const char* token = std::getenv("KEEL_TRACKING_TOKEN")) {
      authorization_ = std::string("Bearer ") + token;
    } else if (const char* token2 = std::getenv("MLFLOW_TRACKING_TOKEN")) {
      authorization_ = std::string("Bearer ") + token2;
    } else if (const char* user = std::getenv("MLFLOW_TRACKING_USERNAME")) {
      const char* pass = std::getenv("MLFLOW_TRACKING_PASSWORD");
      authorization_ = "Basic " + Base64Encode(std::string(user) + ":" + (pass ? pass : ""));
    }
  }

 protected:
  Result<api::Response> Send(api::Request request) override {
    request.authorization = authorization_;
    return client_.Send(request);
  }
  Result<api::Response> SendFile(api::Request request, const std::filesystem::path& file) override {
    std::ifstream in(file, std::ios::binary);
    if (!in) return NotFound(file.string() + ": cannot open");
    std::ostringstream buf;
    buf << in.rdbuf();
    request.body = buf.str();
    return Send(std::move(request));
  }

 private:
  http::Client client_;
  std::string authorization_;
};

}  // namespace

Result<std::unique_ptr<Transport>> Transport::Make(const GlobalOptions& options) {
  if (!options.tracking_uri.empty()) {
    KEEL_ASSIGN_OR_RETURN(http::Client client, http::Client::FromUri(options.tracking_uri));
    return std::unique_ptr<Transport>(std::make_unique<RemoteTransport>(std::move(client)));
  }
  api::AppOptions app_options;
  app_options.store_uri = options.store_uri;
  app_options.artifact_root = options.artifact_root;
  app_options.read_connections = 1;
  app_options.anonymous_name = CurrentUser();
  app_options.serving.log_predictions = false;  // the CLI answers no predictions
  KEEL_ASSIGN_OR_RETURN(auto app, api::App::Open(app_options));
  return std::unique_ptr<Transport>(std::make_unique<EmbeddedTransport>(std::move(app)));
}

std::unique_ptr<Transport> MakeEmbeddedTransport(api::App& app) {
  return std::make_unique<EmbeddedTransport>(app);
}

Result<JsonDoc> Transport::Call(const std::string& method, const std::string& path,
                                const std::multimap<std::string, std::string>& query,
                                const std::string& body) {
  api::Request req;
  req.method = method;
  req.path = path;
  req.query = query;
  req.body = body;
  req.content_type = "application/json";
  KEEL_ASSIGN_OR_RETURN(api::Response resp, Send(std::move(req)));
  KEEL_RETURN_IF_ERROR(StatusOfResponse(resp));
  auto doc = ParseJson(resp.body.empty() ? std::string("{}") : resp.body);
  if (!doc.ok()) return Internal("server answered with non-JSON body: " + resp.body.substr(0, 200));
  return doc;
}

Result<CliModel> LoadModelForCli(const GlobalOptions& global, const std::string& ref,
                                 const serve::PredictionLogOptions* log) {
  CliModel out;
  std::error_code ec;
  if (std::filesystem::exists(ref, ec)) {
    KEEL_ASSIGN_OR_RETURN(out.model, model::LoadModelPackage(ref));
    return out;
  }
  if (!global.tracking_uri.empty()) {
    return InvalidArgument(
        "registered models are read from the store and artifact root (--store-uri, "
        "--artifact-root), not from a remote server; or give a local model path");
  }
  api::AppOptions app_options;
  app_options.store_uri = global.store_uri;
  app_options.artifact_root = global.artifact_root;
  app_options.read_connections = 1;
  app_options.serving.log_predictions = log != nullptr;
  if (log != nullptr) app_options.serving.log = *log;
  KEEL_ASSIGN_OR_RETURN(out.app, api::App::Open(app_options));
  KEEL_RETURN_IF_ERROR(out.app->engine().Add(ref));
  KEEL_ASSIGN_OR_RETURN(auto deployment, out.app->engine().Get(ref));
  out.model = deployment->model;
  out.name = deployment->name;
  out.version = deployment->version;
  return out;
}

Status StatusOfResponse(const api::Response& resp) {
  if (resp.status / 100 == 2) return OkStatus();
  std::string message = resp.body;
  std::string error_code;
  auto doc = ParseJson(resp.body.empty() ? std::string("{}") : resp.body);
  if (doc.ok()) {
    auto m = JsonString(doc->root(), "message");
    if (m.ok() && m->has_value()) message = **m;
    auto e = JsonString(doc->root(), "error_code");
    if (e.ok() && e->has_value()) error_code = **e;
  }
  const StatusCode code = StatusCodeOf(error_code, resp.status);
  return Status(code, message);
}

Result<JsonDoc> Transport::Upload(const std::string& path, const std::filesystem::path& file) {
  api::Request req;
  req.method = "PUT";
  req.path = path;
  req.content_type = "application/octet-stream";
  KEEL_ASSIGN_OR_RETURN(api::Response resp, SendFile(std::move(req), file));
  KEEL_RETURN_IF_ERROR(StatusOfResponse(resp));
  return ParseJson(resp.body.empty() ? std::string("{}") : resp.body);
}

Status Transport::Download(const std::string& path, const std::filesystem::path& dest) {
  api::Request req;
  req.method = "GET";
  req.path = path;
  KEEL_ASSIGN_OR_RETURN(api::Response resp, Send(std::move(req)));
  KEEL_RETURN_IF_ERROR(StatusOfResponse(resp));
  std::error_code ec;
  if (!resp.file.empty()) {
    std::filesystem::copy_file(resp.file, dest, std::filesystem::copy_options::overwrite_existing,
                               ec);
    if (ec) return Internal(dest.string() + ": " + ec.message());
    return OkStatus();
  }
  std::ofstream out(dest, std::ios::binary | std::ios::trunc);
  out.write(resp.body.data(), static_cast<std::streamsize>(resp.body.size()));
  if (!out) return Internal(dest.string() + ": write failed");
  return OkStatus();
}

std::string JsonQuote(std::string_view s) {
  JsonWriter w;
  w.String(s);
  return std::move(w).Take();
}

std::string FormatTime(int64_t millis) {
  if (millis <= 0) return "-";
  std::time_t secs = static_cast<std::time_t>(millis / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return std::string(buf) + "Z";
}

void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size());
  for (size_t i = 0; i < header.size(); ++i) widths[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < widths.size(); ++i) {
      std::string cell = i < row.size() ? row[i] : "";
      line += cell;
      if (i + 1 < widths.size()) line += std::string(widths[i] - cell.size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  };
  print_row(header);
  std::vector<std::string> rule;
  for (size_t w : widths) rule.push_back(std::string(w, '-'));
  print_row(rule);
  for (const auto& row : rows) print_row(row);
}

std::string Str(simdjson::dom::element e, std::string_view key) {
  simdjson::dom::element v;
  if (e[key].get(v)) return "";
  std::string_view sv;
  if (!v.get_string().get(sv)) return std::string(sv);
  int64_t i;
  if (!v.get_int64().get(i)) return std::to_string(i);
  double d;
  if (!v.get_double().get(d)) return FormatDouble(d);
  return "";
}

int& CommandExitCode() {
  static int code = 0;
  return code;
}

std::string CurrentUser() {
  if (const char* user = std::getenv("USER"); user && *user) return user;
  if (passwd* pw = getpwuid(getuid()); pw && pw->pw_name) return pw->pw_name;
  return "unknown";
}

}  // namespace keel::cli

int main(int argc, char** argv) {
  using namespace keel::cli;
  CLI::App app{"keel: track, register, serve, monitor and retrain models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "keel " KEEL_VERSION);
  GlobalOptions global;
  if (const char* uri = std::getenv("KEEL_TRACKING_URI")) global.tracking_uri = uri;
  if (const char* uri = std::getenv("KEEL_STORE_URI")) global.store_uri = uri;
  if (const char* root = std::getenv("KEEL_ARTIFACT_ROOT")) global.artifact_root = root;
  app.fallthrough(true);
  app.add_option("--tracking-uri", global.tracking_uri,
                 "remote keel server (http://host:port); default: the embedded store "
                 "[env KEEL_TRACKING_URI]");
  app.add_option("--store-uri", global.store_uri,
                 "embedded store, e.g. sqlite:///abs/keel.db [env KEEL_STORE_URI]");
  app.add_option("--artifact-root", global.artifact_root,
                 "embedded artifact folder [env KEEL_ARTIFACT_ROOT]");
  Action run;
  AddServerCommand(app, global, run);
  AddExperimentCommands(app, global, run);
  AddRunCommands(app, global, run);
  AddModelCommands(app, global, run);
  AddTrainCommand(app, global, run);
  AddLabelCommands(app, global, run);
  AddBatchCommand(app, global, run);
  AddWorkerCommand(app, global, run);
  AddExportCommand(app, global, run);
  AddStreamCommand(app, global, run);
  AddDriftCommand(app, global, run);
  AddMonitorCommand(app, global, run);
  AddAlertCommands(app, global, run);
  AddRetrainCommand(app, global, run);
  AddMigrateCommand(app, global, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  keel::Status status = run ? run() : keel::OkStatus();
  if (!status.ok()) {
    std::cerr << "keel: error: " << status.message() << "\n";
    return status.code() == keel::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return CommandExitCode();
}
