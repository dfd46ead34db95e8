#include "src/api/model_checks.h"

#include <optional>

#include "keel/api/app.h"
#include "keel/model/package.h"

namespace keel::api {
namespace {

constexpr std::string_view kArtifactScheme = "mlflow-artifacts:";
constexpr std::string_view kRunsScheme = "runs:/";

// The local path of a source inside the artifact root, or nullopt for
// sources elsewhere.
Result<std::optional<std::filesystem::path>> LocalPath(App& app, const std::string& source,
                                                       int depth = 0) {
  if (source.rfind(kArtifactScheme, 0) == 0) {
    std::string rel = source.substr(kArtifactScheme.size());
    while (!rel.empty() && rel.front() == '/') rel.erase(0, 1);
    if (rel.empty()) return std::optional<std::filesystem::path>();
    KEEL_ASSIGN_OR_RETURN(std::filesystem::path p, app.artifacts().Resolve(rel));
    return std::optional<std::filesystem::path>(p);
  }
  if (source.rfind(kRunsScheme, 0) == 0 && depth == 0) {
    const std::string rest = source.substr(kRunsScheme.size());
    const size_t slash = rest.find('/');
    const std::string run_id = rest.substr(0, slash);
    auto run = app.tracking().GetRun(run_id);
    if (!run.ok()) return std::optional<std::filesystem::path>();
    std::string uri = run->info.artifact_uri;
    if (slash != std::string::npos) uri += rest.substr(slash);
    return LocalPath(app, uri, depth + 1);
  }
  return std::optional<std::filesystem::path>();
}

// Messages name files relative to the artifact root, never the server's paths.
Status WithoutRoot(const Status& s, const std::filesystem::path& root) {
  if (s.ok()) return s;
  std::string message = s.message();
  for (std::string prefix :
       {std::filesystem::absolute(root).lexically_normal().string(), root.string()}) {
    if (prefix.empty()) continue;
    if (prefix.back() != '/') prefix += '/';
    for (size_t at; (at = message.find(prefix)) != std::string::npos;) {
      message.erase(at, prefix.size());
    }
  }
  return Status(s.code(), message);
}

}  // namespace

serve::SourceResolver MakeSourceResolver(App& app) {
  return [&app](const registry::ModelVersion& v) -> Result<std::filesystem::path> {
    auto path = LocalPath(app, v.source);
    if (!path.ok()) {
      return WithoutRoot(path.status().WithContext("source " + v.source), app.artifacts().root());
    }
    if (!path->has_value()) {
      return FailedPrecondition("source " + v.source +
                                " is not in this server's artifact store; keel serves models "
                                "logged to its own artifact root");
    }
    if (!model::IsKeelLoadable(**path)) {
      return FailedPrecondition("source " + v.source +
                                " is not a model keel can load (keel, xgboost or lightgbm "
                                "flavor, or a model file)");
    }
    return **path;
  };
}

registry::VersionValidator MakeModelValidator(App& app) {
  return [&app](const registry::ModelVersion& v) -> Status {
    auto path = LocalPath(app, v.source);
    if (!path.ok()) return path.status().WithContext("source " + v.source);
    if (!path->has_value() || !model::IsKeelLoadable(**path)) return OkStatus();
    auto loaded = model::LoadModelPackage(**path);
    Status s = loaded.ok() ? model::CheckLoadedModel(**loaded) : loaded.status();
    return WithoutRoot(s, app.artifacts().root());
  };
}

}  // namespace keel::api
