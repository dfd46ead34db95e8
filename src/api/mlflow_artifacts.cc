// The mlflow-artifacts proxy API over the local artifact store.
#include <array>
#include <filesystem>

#include "keel/api/app.h"
#include "src/api/handler_util.h"
#include "src/api/params.h"

namespace keel::api {
namespace {

using internal::Params;
using internal::Wrap;

std::string ContentTypeFor(const std::filesystem::path& path) {
  static const std::pair<std::string_view, std::string_view> kTypes[] = {
      {".json", "application/json"}, {".txt", "text/plain"},   {".yaml", "text/plain"},
      {".yml", "text/plain"},        {".html", "text/html"},   {".csv", "text/csv"},
      {".png", "image/png"},         {".svg", "image/svg+xml"}, {".md", "text/plain"},
      {".py", "text/plain"},         {".log", "text/plain"},
  };
  std::string ext = path.extension().string();
  if (path.filename() == "MLmodel") return "text/plain";
  for (const auto& [e, type] : kTypes) {
    if (ext == e) return std::string(type);
  }
  return "application/octet-stream";
}

Status CheckUploadPath(App& app, const Request& req) {
  if (req.tail.empty()) return InvalidArgument("Artifact path is empty");
  return app.artifacts().Resolve(req.tail).status();
}

Response Upload(App& app, const Request& req) {
  Status s = CheckUploadPath(app, req);
  if (s.ok()) s = app.artifacts().Adopt(req.tail, req.body_file);
  if (!s.ok()) return Response::Error(s);
  return Response::Json("{}");
}

Response Download(App& app, const Request& req) {
  auto path = app.artifacts().FileForRead(req.tail);
  if (!path.ok()) return Response::Error(path.status());
  Response r;
  r.content_type = ContentTypeFor(*path);
  r.file = *path;
  // Uploaded content is never run by a browser on keel's origin.
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Content-Security-Policy", "sandbox");
  return r;
}

Result<std::string> WriteListing(const std::vector<artifacts::FileInfo>& files,
                                 const std::string& prefix, const std::string& root_uri) {
  JsonWriter w;
  w.BeginObject();
  if (!root_uri.empty()) {
    w.Key("root_uri");
    w.String(root_uri);
  }
  if (!files.empty()) {
    w.Key("files");
    w.BeginArray();
    for (const auto& f : files) {
      w.BeginObject();
      w.Key("path");
      w.String(prefix.empty() ? f.path : prefix + "/" + f.path);
      w.Key("is_dir");
      w.Bool(f.is_dir);
      if (!f.is_dir) {
        w.Key("file_size");
        w.Int(f.file_size);
      }
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
  return std::move(w).Take();
}

Result<std::string> List(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(auto path, p.Str("path"));
  KEEL_ASSIGN_OR_RETURN(auto files, app.artifacts().List(path.value_or("")));
  return WriteListing(files, "", "");
}

Response Delete(App& app, const Request& req) {
  Status s = app.artifacts().Delete(req.tail);
  if (!s.ok()) return Response::Error(s);
  return Response::Json("{}");
}

// GET /api/2.0/mlflow/artifacts/list?run_id=&path= (paths relative to the run's root).
Result<std::string> ListRunArtifacts(App& app, const Request& req) {
  KEEL_ASSIGN_OR_RETURN(Params p, Params::From(req));
  KEEL_ASSIGN_OR_RETURN(auto run_id, p.Str("run_id"));
  if (!run_id || run_id->empty()) {
    KEEL_ASSIGN_OR_RETURN(run_id, p.Str("run_uuid"));
  }
  if (!run_id || run_id->empty()) return internal::MissingParameter("run_id");
  KEEL_ASSIGN_OR_RETURN(auto sub, p.Str("path"));
  KEEL_ASSIGN_OR_RETURN(auto run, app.tracking().GetRun(*run_id));
  KEEL_ASSIGN_OR_RETURN(std::string base, artifacts::ArtifactUriToPath(run.info.artifact_uri));
  std::string rel = sub.value_or("");
  KEEL_RETURN_IF_ERROR(artifacts::CheckRelativePath(rel));
  KEEL_ASSIGN_OR_RETURN(auto files, app.artifacts().List(rel.empty() ? base : base + "/" + rel));
  return WriteListing(files, rel, run.info.artifact_uri);
}

const std::array kRoutes = {
    Route{"PUT", "/api/2.0/mlflow-artifacts/artifacts/{path}", &Upload, Access::kWrite,
          BodyMode::kToFile, &CheckUploadPath},
    Route{"GET", "/api/2.0/mlflow-artifacts/artifacts/{path}", &Download, Access::kRead},
    Route{"DELETE", "/api/2.0/mlflow-artifacts/artifacts/{path}", &Delete, Access::kWrite},
    Route{"GET", "/api/2.0/mlflow-artifacts/artifacts", &Wrap<List>, Access::kRead},
    Route{"GET", "/api/2.0/mlflow/artifacts/list", &Wrap<ListRunArtifacts>, Access::kRead},
};

}  // namespace

std::span<const Route> ArtifactRoutes() { return kRoutes; }

}  // namespace keel::api
