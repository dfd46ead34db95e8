// The RunRecorder of the CLI: records runs through the MLflow REST API
// (embedded or remote), so a remote server sees exactly what the stock
// mlflow client would send.
#include "apps/keel/cli.h"
#include "keel/core/clock.h"

namespace keel::cli {
namespace fs = std::filesystem;
namespace {

constexpr const char* kArtifactsApi = "/api/2.0/mlflow-artifacts/artifacts/";
constexpr std::string_view kArtifactScheme = "mlflow-artifacts:";

// The path below the artifact root of an mlflow-artifacts: URI.
Result<std::string> ArtifactRelative(const std::string& uri) {
  if (uri.rfind(kArtifactScheme, 0) != 0) {
    return InvalidArgument("artifact URI '" + uri + "' is not an mlflow-artifacts: URI");
  }
  std::string rel = uri.substr(kArtifactScheme.size());
  while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
  return rel;
}

std::string KeyValueArray(const train::KeyValues& kv) {
  std::string out = "[";
  for (size_t i = 0; i < kv.size(); ++i) {
    out += (i ? ", " : "");
    out += "{\"key\": " + JsonQuote(kv[i].first) + ", \"value\": " + JsonQuote(kv[i].second) + "}";
  }
  return out + "]";
}

}  // namespace

Status UploadTree(Transport& t, const fs::path& dir, const std::string& rel) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string sub = fs::relative(it->path(), dir).generic_string();
    KEEL_RETURN_IF_ERROR(t.Upload(kArtifactsApi + rel + "/" + sub, it->path()).status());
  }
  if (ec) return Internal(dir.string() + ": " + ec.message());
  return OkStatus();
}

namespace {

class ApiRecorder final : public train::RunRecorder {
 public:
  explicit ApiRecorder(Transport& t) : t_(t) {}

  Result<std::string> StartRun(const std::string& experiment, const std::string& experiment_id,
                               const std::string& run_name, const train::KeyValues& tags) override {
    std::string id = experiment_id;
    if (id.empty()) {
      auto got = t_.Call("GET", "/api/2.0/mlflow/experiments/get-by-name",
                         {{"experiment_name", experiment}}, "");
      if (got.ok()) {
        id = Str(got->root()["experiment"], "experiment_id");
      } else if (got.status().code() == StatusCode::kNotFound) {
        auto created = t_.Call("POST", "/api/2.0/mlflow/experiments/create", {},
                               "{\"name\": " + JsonQuote(experiment) + "}");
        if (created.ok()) {
          id = Str(created->root(), "experiment_id");
        } else if (created.status().code() == StatusCode::kAlreadyExists) {
          // Another job created it between our lookup and our create.
          KEEL_ASSIGN_OR_RETURN(auto again,
                                t_.Call("GET", "/api/2.0/mlflow/experiments/get-by-name",
                                        {{"experiment_name", experiment}}, ""));
          id = Str(again.root()["experiment"], "experiment_id");
        } else {
          return created.status();
        }
      } else {
        return got.status();
      }
    }
    train::KeyValues all = tags;
    all.emplace_back("mlflow.user", CurrentUser());
    std::string body = "{\"experiment_id\": " + JsonQuote(id) +
                       ", \"start_time\": " + std::to_string(NowMillis()) +
                       ", \"user_id\": " + JsonQuote(CurrentUser()) +
                       ", \"tags\": " + KeyValueArray(all);
    if (!run_name.empty()) body += ", \"run_name\": " + JsonQuote(run_name);
    KEEL_ASSIGN_OR_RETURN(auto run, t_.Call("POST", "/api/2.0/mlflow/runs/create", {}, body + "}"));
    return Str(run.root()["run"]["info"], "run_id");
  }

  Status LogParams(const std::string& run_id, const train::KeyValues& params) override {
    for (size_t i = 0; i < params.size(); i += 100) {
      train::KeyValues chunk(
          params.begin() + static_cast<std::ptrdiff_t>(i),
          params.begin() + static_cast<std::ptrdiff_t>(std::min(params.size(), i + 100)));
      KEEL_RETURN_IF_ERROR(t_.Call("POST", "/api/2.0/mlflow/runs/log-batch", {},
                                   "{\"run_id\": " + JsonQuote(run_id) +
                                       ", \"params\": " + KeyValueArray(chunk) + "}")
                               .status());
    }
    return OkStatus();
  }

  Status LogMetrics(const std::string& run_id, const std::vector<train::Metric>& metrics) override {
    const int64_t now = NowMillis();
    std::string list = "[";
    for (size_t i = 0; i < metrics.size(); ++i) {
      list += (i ? ", " : "");
      list += "{\"key\": " + JsonQuote(metrics[i].name) +
              ", \"value\": " + FormatDouble(metrics[i].value) +
              ", \"timestamp\": " + std::to_string(now) + ", \"step\": 0}";
    }
    list += "]";
    return t_
        .Call("POST", "/api/2.0/mlflow/runs/log-batch", {},
              "{\"run_id\": " + JsonQuote(run_id) + ", \"metrics\": " + list + "}")
        .status();
  }

  Status SetTags(const std::string& run_id, const train::KeyValues& tags) override {
    if (tags.empty()) return OkStatus();
    return t_
        .Call("POST", "/api/2.0/mlflow/runs/log-batch", {},
              "{\"run_id\": " + JsonQuote(run_id) + ", \"tags\": " + KeyValueArray(tags) + "}")
        .status();
  }

  Status LogDatasets(const std::string& run_id, const std::vector<train::DataVersion>& data,
                     const std::string& schema_json) override {
    std::string list = "[";
    for (size_t i = 0; i < data.size(); ++i) {
      const auto& d = data[i];
      const std::string source = "{\"uri\": " + JsonQuote(d.path) + "}";
      const std::string schema = "{\"mlflow_colspec\": " + schema_json + "}";
      const std::string profile = "{\"num_rows\": " + std::to_string(d.rows) +
                                  ", \"num_elements\": " + std::to_string(d.rows * d.columns) + "}";
      list += (i ? ", " : "");
      list += "{\"tags\": [{\"key\": \"mlflow.data.context\", \"value\": " + JsonQuote(d.role) +
              "}], \"dataset\": {\"name\": " + JsonQuote(fs::path(d.path).filename().string()) +
              ", \"digest\": " + JsonQuote(d.sha256.substr(0, 8)) +
              ", \"source_type\": \"local\", \"source\": " + JsonQuote(source) +
              ", \"schema\": " + JsonQuote(schema) + ", \"profile\": " + JsonQuote(profile) + "}}";
    }
    list += "]";
    return t_
        .Call("POST", "/api/2.0/mlflow/runs/log-inputs", {},
              "{\"run_id\": " + JsonQuote(run_id) + ", \"datasets\": " + list + "}")
        .status();
  }

  Result<std::string> UploadDirectory(const std::string& run_id, const fs::path& dir,
                                      const std::string& artifact_path) override {
    KEEL_ASSIGN_OR_RETURN(auto run,
                          t_.Call("GET", "/api/2.0/mlflow/runs/get", {{"run_id", run_id}}, ""));
    const std::string root = Str(run.root()["run"]["info"], "artifact_uri");
    KEEL_ASSIGN_OR_RETURN(std::string rel, ArtifactRelative(root));
    KEEL_RETURN_IF_ERROR(UploadTree(t_, dir, rel + "/" + artifact_path));
    return root + "/" + artifact_path;
  }

  Status EndRun(const std::string& run_id, const std::string& status) override {
    return t_
        .Call("POST", "/api/2.0/mlflow/runs/update", {},
              "{\"run_id\": " + JsonQuote(run_id) + ", \"status\": " + JsonQuote(status) +
                  ", \"end_time\": " + std::to_string(NowMillis()) + "}")
        .status();
  }

  Result<RunInfo> GetRun(const std::string& run_id) override {
    KEEL_ASSIGN_OR_RETURN(auto run,
                          t_.Call("GET", "/api/2.0/mlflow/runs/get", {{"run_id", run_id}}, ""));
    RunInfo info;
    info.experiment_id = Str(run.root()["run"]["info"], "experiment_id");
    auto read = [&](const char* field, train::KeyValues& out) {
      simdjson::dom::array items;
      if (run.root()["run"]["data"][field].get(items)) return;
      for (auto item : items) out.emplace_back(Str(item, "key"), Str(item, "value"));
    };
    read("params", info.params);
    read("tags", info.tags);
    return info;
  }

  Result<std::string> PutSharedFile(const std::string& relative, const fs::path& file) override {
    const size_t slash = relative.rfind('/');
    const std::string dir = slash == std::string::npos ? "" : relative.substr(0, slash);
    auto listed = t_.Call("GET", "/api/2.0/mlflow-artifacts/artifacts", {{"path", dir}}, "");
    bool present = false;
    if (listed.ok()) {
      simdjson::dom::array files;
      if (!listed->root()["files"].get(files)) {
        for (auto f : files) present = present || Str(f, "path") == relative.substr(slash + 1);
      }
    }
    if (!present) KEEL_RETURN_IF_ERROR(t_.Upload(kArtifactsApi + relative, file).status());
    return std::string(kArtifactScheme) + "/" + relative;
  }

  Status DownloadFile(const std::string& uri, const fs::path& dest) override {
    KEEL_ASSIGN_OR_RETURN(std::string rel, ArtifactRelative(uri));
    return t_.Download(kArtifactsApi + rel, dest);
  }

  Result<std::pair<std::string, std::string>> RegisterModel(const std::string& name,
                                                            const std::string& source,
                                                            const std::string& run_id) override {
    auto created = t_.Call("POST", "/api/2.0/mlflow/registered-models/create", {},
                           "{\"name\": " + JsonQuote(name) + "}");
    if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) {
      return created.status();
    }
    KEEL_ASSIGN_OR_RETURN(
        auto v, t_.Call("POST", "/api/2.0/mlflow/model-versions/create", {},
                        "{\"name\": " + JsonQuote(name) + ", \"source\": " + JsonQuote(source) +
                            ", \"run_id\": " + JsonQuote(run_id) + "}"));
    auto mv = v.root()["model_version"];
    if (Str(mv, "status") == "FAILED_REGISTRATION") {
      return FailedPrecondition("version " + Str(mv, "version") + " of " + name +
                                " failed registration: " + Str(mv, "status_message"));
    }
    return std::make_pair(Str(mv, "version"), Str(mv, "status"));
  }

 private:
  Transport& t_;
};

}  // namespace

std::unique_ptr<train::RunRecorder> MakeApiRecorder(Transport& t) {
  return std::make_unique<ApiRecorder>(t);
}

}  // namespace keel::cli
