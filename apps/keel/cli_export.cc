// keel export: turn a registered model (or a local package or model file)
// into code or a model directory for edge deployment (docs/export.md):
//
//   keel export churn@champion --format c --output churn_model/
//
// The formats come from model::ExportFormats(); output is written to a
// temporary sibling directory, synced and renamed into place when complete
// (model::WriteExport). A previous export that --force replaced but could not
// remove entirely is reported as "keel: warning: ..." on stderr (exit 0).
#include <filesystem>
#include <iostream>

#include "apps/keel/cli.h"
#include "keel/model/codegen.h"

namespace keel::cli {
namespace {

struct ExportFlags {
  std::string model;
  std::string format = "c";
  std::string output;
  std::string name;
  bool force = false;
};

// The stem of a local model path: "pkg/churn/" -> "churn", "m/lgb.txt" -> "lgb".
std::string LocalModelName(const std::string& ref) {
  std::filesystem::path p(ref);
  if (p.filename().empty()) p = p.parent_path();
  return p.stem().string();
}

Status RunExport(const GlobalOptions& global, const ExportFlags& f) {
  if (model::FindExportFormat(f.format) == nullptr) {
    return InvalidArgument("unknown export format '" + f.format +
                           "' (known: " + model::ExportFormatNames() + ")");
  }
  if (!f.name.empty()) KEEL_RETURN_IF_ERROR(model::CheckExportName(f.name));
  KEEL_ASSIGN_OR_RETURN(CliModel loaded, LoadModelForCli(global, f.model));
  model::ExportOptions options;
  options.name = f.name;
  if (loaded.name.empty()) {
    options.model_name = LocalModelName(f.model);
    options.source = f.model;
  } else {
    options.model_name = loaded.name;
    options.source = loaded.name + " version " + loaded.version + " (" + f.model + ")";
  }
  KEEL_ASSIGN_OR_RETURN(std::vector<model::ExportedFile> files,
                        model::GenerateExport(*loaded.model, f.format, options));
  std::string warning;
  KEEL_RETURN_IF_ERROR(model::WriteExport(files, f.output, f.force, &warning));
  // The export is complete and in place; only the previous one's removal failed.
  if (!warning.empty()) std::cerr << "keel: warning: " << warning << std::endl;
  std::string names;
  for (const model::ExportedFile& file : files) names += (names.empty() ? "" : ", ") + file.path;
  std::cout << "exported " << options.source << " as " << f.format << " to " << f.output << ": "
            << names << std::endl;
  return OkStatus();
}

}  // namespace

void AddExportCommand(CLI::App& app, GlobalOptions& global, Action& run) {
  std::string formats;
  for (const model::ExportFormat& f : model::ExportFormats()) {
    formats += "\n  " + std::string(f.name) + ": " + std::string(f.description);
  }
  auto* cmd = app.add_subcommand(
      "export", "Export a model as dependency-free C, a C++ header or an MLflow model directory");
  auto f = std::make_shared<ExportFlags>();
  cmd->add_option("model", f->model,
                  "name@alias, name/version or name (registered), or a local model path")
      ->required();
  cmd->add_option("--format", f->format, "what to write:" + formats)->capture_default_str();
  cmd->add_option("--output", f->output,
                  "directory to create (written as a temporary sibling, renamed when complete)")
      ->required();
  cmd->add_option("--name", f->name,
                  "C identifier used as file prefix, symbol prefix or namespace (default: the "
                  "model's name + _model)");
  cmd->add_flag("--force", f->force, "replace --output when it exists and is not empty");
  cmd->callback(
      [&run, &global, f] { run = [&global, f]() -> Status { return RunExport(global, *f); }; });
}

}  // namespace keel::cli
