// MLflow REST 2.0 model-registry endpoints, plus keel's alias history and
// rollback (under /api/2.0/keel/).
#include <array>

#include "keel/api/app.h"
#include "src/api/handler_util.h"
#include "src/api/mlflow_json.h"
#include "src/api/params.h"

namespace keel::api {
namespace {

using internal::kEmptyJson;
using internal::Params;
using internal::Wrap;
using registry::ModelVersion;
using registry::RegisteredModel;

std::string ModelResponse(const RegisteredModel& m) {
  JsonWriter w;
  w.BeginObject();
  w.Key("registered_model");
  internal::WriteRegisteredModel(w, m);
  w.EndObject();
  return std::move(w).Take();
}

std::string VersionResponse(const ModelVersion& v) {
  JsonWriter w;
  w.BeginObject();
  w.Key("model_version");
  internal::WriteModelVersion(w, v, true);
  w.EndObject();
  return std::move(w).Take();
}

registry::ChangeContext ContextOf(const Request& req, const Params& p) {
  registry::ChangeContext ctx;
  ctx.actor = req.principal.name;
  auto reason = p.Str("reason");
  if (reason.ok() && reason->has_value()) ctx.reason = **reason;
  return ctx;
}

Result<std::string> CreateModel(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(auto tags, p.Tags("tags"));
  KEEL_ASSIGN_OR_RETURN(auto description, p.Str("description"));
  KEEL_ASSIGN_OR_RETURN(auto m, app.registry().CreateRegisteredModel(name, tags,
                                                                     description.value_or("")));
  return ModelResponse(m);
}

Result<std::string> GetModel(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(auto m, app.registry().GetRegisteredModel(name));
  return ModelResponse(m);
}

Result<registry::SearchRequest> ReadSearch(const Params& p, int64_t default_max) {
  registry::SearchRequest s;
  KEEL_ASSIGN_OR_RETURN(auto filter, p.Str("filter"));
  KEEL_ASSIGN_OR_RETURN(auto max_results, p.Int("max_results"));
  KEEL_ASSIGN_OR_RETURN(auto token, p.Str("page_token"));
  KEEL_ASSIGN_OR_RETURN(s.order_by, p.StrList("order_by"));
  s.filter = filter.value_or("");
  s.max_results = max_results.value_or(default_max);
  s.page_token = token.value_or("");
  return s;
}

Result<std::string> SearchModels(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(auto s, ReadSearch(p, 100));
  KEEL_ASSIGN_OR_RETURN(auto page, app.registry().SearchRegisteredModels(s));
  return internal::ListResponse("registered_models", page.models, page.next_page_token,
                                internal::WriteRegisteredModel);
}

Result<std::string> UpdateModel(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(auto description, p.Str("description"));
  KEEL_ASSIGN_OR_RETURN(auto m, app.registry().UpdateRegisteredModel(name, description.value_or("")));
  return ModelResponse(m);
}

Result<std::string> RenameModel(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(std::string new_name, p.RequiredStr("new_name"));
  KEEL_ASSIGN_OR_RETURN(auto m, app.registry().RenameRegisteredModel(name, new_name));
  return ModelResponse(m);
}

Result<std::string> DeleteModel(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_RETURN_IF_ERROR(app.registry().DeleteRegisteredModel(name));
  return std::string(kEmptyJson);
}

Result<std::string> SetModelTag(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(std::string key, p.RequiredStr("key"));
  KEEL_ASSIGN_OR_RETURN(auto value, p.Str("value"));
  KEEL_RETURN_IF_ERROR(app.registry().SetRegisteredModelTag(name, {key, value.value_or("")}));
  return std::string(kEmptyJson);
}

Result<std::string> DeleteModelTag(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(std::string key, p.RequiredStr("key"));
  KEEL_RETURN_IF_ERROR(app.registry().DeleteRegisteredModelTag(name, key));
  return std::string(kEmptyJson);
}

Result<std::string> GetLatestVersions(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(auto stages, p.StrList("stages"));
  KEEL_ASSIGN_OR_RETURN(auto versions, app.registry().GetLatestVersions(name, stages));
  return internal::ListResponse("model_versions", versions, "",
                                [](JsonWriter& w, const ModelVersion& v) {
                                  internal::WriteModelVersion(w, v, false);
                                });
}

Result<std::string> CreateVersion(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  registry::CreateVersionRequest c;
  KEEL_ASSIGN_OR_RETURN(c.name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(c.source, p.RequiredStr("source"));
  KEEL_ASSIGN_OR_RETURN(auto run_id, p.Str("run_id"));
  KEEL_ASSIGN_OR_RETURN(auto run_link, p.Str("run_link"));
  KEEL_ASSIGN_OR_RETURN(auto description, p.Str("description"));
  KEEL_ASSIGN_OR_RETURN(c.tags, p.Tags("tags"));
  c.run_id = run_id.value_or("");
  c.run_link = run_link.value_or("");
  c.description = description.value_or("");
  c.user_id = req.principal.name;
  KEEL_ASSIGN_OR_RETURN(auto v, app.registry().CreateModelVersion(c));
  return VersionResponse(v);
}

Result<std::pair<std::string, std::string>> NameVersion(const Params& p) {
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(std::string version, p.RequiredStr("version"));
  return std::make_pair(std::move(name), std::move(version));
}

Result<std::string> GetVersion(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(auto nv, NameVersion(p));
  KEEL_ASSIGN_OR_RETURN(auto v, app.registry().GetModelVersion(nv.first, nv.second));
  return VersionResponse(v);
}

Result<std::string> UpdateVersion(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(auto nv, NameVersion(p));
  KEEL_ASSIGN_OR_RETURN(auto description, p.Str("description"));
  KEEL_ASSIGN_OR_RETURN(auto v, app.registry().UpdateModelVersion(nv.first, nv.second,
                                                                  description.value_or("")));
  return VersionResponse(v);
}

Result<std::string> DeleteVersion(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(auto nv, NameVersion(p));
  KEEL_RETURN_IF_ERROR(app.registry().DeleteModelVersion(nv.first, nv.second));
  return std::string(kEmptyJson);
}

Result<std::string> SetVersionTag(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(auto nv, NameVersion(p));
  KEEL_ASSIGN_OR_RETURN(std::string key, p.RequiredStr("key"));
  KEEL_ASSIGN_OR_RETURN(auto value, p.Str("value"));
  KEEL_RETURN_IF_ERROR(
      app.registry().SetModelVersionTag(nv.first, nv.second, {key, value.value_or("")}));
  return std::string(kEmptyJson);
}

Result<std::string> DeleteVersionTag(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(auto nv, NameVersion(p));
  KEEL_ASSIGN_OR_RETURN(std::string key, p.RequiredStr("key"));
  KEEL_RETURN_IF_ERROR(app.registry().DeleteModelVersionTag(nv.first, nv.second, key));
  return std::string(kEmptyJson);
}

Result<std::string> SearchVersions(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(auto s, ReadSearch(p, 10000));
  KEEL_ASSIGN_OR_RETURN(auto page, app.registry().SearchModelVersions(s));
  return internal::ListResponse("model_versions", page.versions, page.next_page_token,
                                [](JsonWriter& w, const ModelVersion& v) {
                                  internal::WriteModelVersion(w, v, true);
                                });
}

Result<std::string> GetDownloadUri(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(auto nv, NameVersion(p));
  KEEL_ASSIGN_OR_RETURN(std::string uri, app.registry().GetDownloadUri(nv.first, nv.second));
  JsonWriter w;
  w.BeginObject();
  w.Key("artifact_uri");
  w.String(uri);
  w.EndObject();
  return std::move(w).Take();
}

Result<std::string> TransitionStage(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(auto nv, NameVersion(p));
  KEEL_ASSIGN_OR_RETURN(std::string stage, p.RequiredStr("stage"));
  KEEL_ASSIGN_OR_RETURN(auto archive, p.Bool("archive_existing_versions"));
  KEEL_ASSIGN_OR_RETURN(auto v, app.registry().TransitionStage(nv.first, nv.second, stage,
                                                               archive.value_or(false)));
  return VersionResponse(v);
}

Result<std::string> SetAlias(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(std::string alias, p.RequiredStr("alias"));
  KEEL_ASSIGN_OR_RETURN(std::string version, p.RequiredStr("version"));
  KEEL_RETURN_IF_ERROR(app.registry().SetAlias(name, alias, version, ContextOf(req, p)));
  return std::string(kEmptyJson);
}

Result<std::string> DeleteAlias(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(std::string alias, p.RequiredStr("alias"));
  KEEL_RETURN_IF_ERROR(app.registry().DeleteAlias(name, alias, ContextOf(req, p)));
  return std::string(kEmptyJson);
}

Result<std::string> GetByAlias(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(std::string alias, p.RequiredStr("alias"));
  KEEL_ASSIGN_OR_RETURN(auto v, app.registry().GetVersionByAlias(name, alias));
  return VersionResponse(v);
}

void WriteChange(JsonWriter& w, const registry::AliasChange& c) {
  w.BeginObject();
  w.Key("id");
  w.Int(c.id);
  w.Key("name");
  w.String(c.name);
  w.Key("alias");
  w.String(c.alias);
  if (c.from_version) {
    w.Key("from_version");
    w.String(*c.from_version);
  }
  if (c.to_version) {
    w.Key("to_version");
    w.String(*c.to_version);
  }
  w.Key("actor");
  w.String(c.actor);
  w.Key("reason");
  w.String(c.reason);
  w.Key("time");
  w.Int(c.time);
  w.EndObject();
}

Result<std::string> AliasHistory(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(auto alias, p.Str("alias"));
  KEEL_RETURN_IF_ERROR(app.registry().GetRegisteredModel(name).status());
  KEEL_ASSIGN_OR_RETURN(auto changes, app.registry().AliasHistory(name, alias.value_or("")));
  JsonWriter w;
  w.BeginObject();
  w.Key("changes");
  w.BeginArray();
  for (const auto& c : changes) WriteChange(w, c);
  w.EndArray();
  w.EndObject();
  return std::move(w).Take();
}

Result<std::string> RollbackAlias(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(std::string name, p.RequiredStr("name"));
  KEEL_ASSIGN_OR_RETURN(std::string alias, p.RequiredStr("alias"));
  KEEL_ASSIGN_OR_RETURN(auto change, app.registry().Rollback(name, alias, ContextOf(req, p)));
  JsonWriter w;
  w.BeginObject();
  w.Key("change");
  WriteChange(w, change);
  w.EndObject();
  return std::move(w).Take();
}

#define KEEL_MLFLOW(path) "/api/2.0/mlflow/" path
const std::array kRoutes = {
    Route{"POST", KEEL_MLFLOW("registered-models/create"), &Wrap<CreateModel>, Access::kWrite},
    Route{"GET", KEEL_MLFLOW("registered-models/get"), &Wrap<GetModel>, Access::kRead},
    Route{"GET", KEEL_MLFLOW("registered-models/search"), &Wrap<SearchModels>, Access::kRead},
    Route{"POST", KEEL_MLFLOW("registered-models/search"), &Wrap<SearchModels>, Access::kRead},
    Route{"PATCH", KEEL_MLFLOW("registered-models/update"), &Wrap<UpdateModel>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("registered-models/rename"), &Wrap<RenameModel>, Access::kWrite},
    Route{"DELETE", KEEL_MLFLOW("registered-models/delete"), &Wrap<DeleteModel>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("registered-models/set-tag"), &Wrap<SetModelTag>, Access::kWrite},
    Route{"DELETE", KEEL_MLFLOW("registered-models/delete-tag"), &Wrap<DeleteModelTag>,
          Access::kWrite},
    Route{"POST", KEEL_MLFLOW("registered-models/get-latest-versions"), &Wrap<GetLatestVersions>,
          Access::kRead},
    Route{"GET", KEEL_MLFLOW("registered-models/get-latest-versions"), &Wrap<GetLatestVersions>,
          Access::kRead},
    Route{"POST", KEEL_MLFLOW("registered-models/alias"), &Wrap<SetAlias>, Access::kWrite},
    Route{"DELETE", KEEL_MLFLOW("registered-models/alias"), &Wrap<DeleteAlias>, Access::kWrite},
    Route{"GET", KEEL_MLFLOW("registered-models/alias"), &Wrap<GetByAlias>, Access::kRead},
    Route{"POST", KEEL_MLFLOW("model-versions/create"), &Wrap<CreateVersion>, Access::kWrite},
    Route{"GET", KEEL_MLFLOW("model-versions/get"), &Wrap<GetVersion>, Access::kRead},
    Route{"PATCH", KEEL_MLFLOW("model-versions/update"), &Wrap<UpdateVersion>, Access::kWrite},
    Route{"DELETE", KEEL_MLFLOW("model-versions/delete"), &Wrap<DeleteVersion>, Access::kWrite},
    Route{"POST", KEEL_MLFLOW("model-versions/set-tag"), &Wrap<SetVersionTag>, Access::kWrite},
    Route{"DELETE", KEEL_MLFLOW("model-versions/delete-tag"), &Wrap<DeleteVersionTag>,
          Access::kWrite},
    Route{"GET", KEEL_MLFLOW("model-versions/search"), &Wrap<SearchVersions>, Access::kRead},
    Route{"POST", KEEL_MLFLOW("model-versions/search"), &Wrap<SearchVersions>, Access::kRead},
    Route{"GET", KEEL_MLFLOW("model-versions/get-download-uri"), &Wrap<GetDownloadUri>,
          Access::kRead},
    Route{"POST", KEEL_MLFLOW("model-versions/transition-stage"), &Wrap<TransitionStage>,
          Access::kWrite},
    Route{"GET", "/api/2.0/keel/registered-models/alias-history", &Wrap<AliasHistory>,
          Access::kRead},
    Route{"POST", "/api/2.0/keel/registered-models/rollback", &Wrap<RollbackAlias>,
          Access::kWrite},
};
#undef KEEL_MLFLOW

}  // namespace

std::span<const Route> RegistryRoutes() { return kRoutes; }

}  // namespace keel::api
