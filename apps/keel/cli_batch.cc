// keel batch: score a CSV file (or stdin) with a registered model (or a local
// package) into a CSV file (or stdout), in chunks, in input order.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "apps/keel/cli.h"
#include "keel/batch/batch.h"

namespace keel::cli {
namespace {

struct BatchFlags {
  std::string model;
  std::string format = "auto";
  batch::BatchOptions options;
};

// The model: a local package directory or model file, or a registered
// reference (name@alias, name/version, name) in the embedded store.
Result<std::shared_ptr<const model::LoadedModel>> LoadModel(const GlobalOptions& global,
                                                            const std::string& ref,
                                                            std::string* version) {
  std::error_code ec;
  if (std::filesystem::exists(ref, ec)) return model::LoadModelPackage(ref);
  if (!global.tracking_uri.empty()) {
    return InvalidArgument(
        "keel batch reads registered models from the store and artifact root "
        "(--store-uri, --artifact-root), not from a remote server; or give a local model path");
  }
  api::AppOptions app_options;
  app_options.store_uri = global.store_uri;
  app_options.artifact_root = global.artifact_root;
  app_options.read_connections = 1;
  app_options.serving.log_predictions = false;
  KEEL_ASSIGN_OR_RETURN(auto app, api::App::Open(app_options));
  KEEL_RETURN_IF_ERROR(app->engine().Add(ref));
  KEEL_ASSIGN_OR_RETURN(auto deployment, app->engine().Get(ref));
  *version = deployment->version;
  return deployment->model;
}

Status RunBatch(const GlobalOptions& global, BatchFlags& f) {
  f.options.format = f.format == "csv"     ? batch::InputFormat::kCsv
                     : f.format == "jsonl" ? batch::InputFormat::kJsonLines
                                           : batch::InputFormat::kByExtension;
  std::string version;
  KEEL_ASSIGN_OR_RETURN(auto model, LoadModel(global, f.model, &version));
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  const auto start = std::chrono::steady_clock::now();
  if (tty) {
    f.options.progress = [start](const batch::BatchProgress& p) {
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      double rate = s > 0 ? static_cast<double>(p.rows) / s : 0;
      std::fprintf(stderr, "\r%llu rows  %.0f rows/s  %llu rejected",
                   static_cast<unsigned long long>(p.rows), rate,
                   static_cast<unsigned long long>(p.rejected));
      if (p.total_bytes > 0 && p.bytes_read > 0) {
        double done = static_cast<double>(p.bytes_read) / static_cast<double>(p.total_bytes);
        std::fprintf(stderr, "  %3.0f%%  ETA %.0f s", 100 * done, s * (1 - done) / done);
      }
      std::fflush(stderr);
    };
  }
  KEEL_ASSIGN_OR_RETURN(batch::BatchSummary s, batch::ScoreFile(*model, f.options));
  if (tty) std::fprintf(stderr, "\n");
  std::cerr << "batch: " << s.rows_in << " rows in, " << s.rows_out << " scored, " << s.rejected
            << " rejected" << (s.reject_file.empty() ? "" : " (" + s.reject_file + ")") << ", "
            << FormatDouble(s.seconds) << " s"
            << (version.empty() ? "" : ", " + f.model + " version " + version) << std::endl;
  return OkStatus();
}

}  // namespace

void AddBatchCommand(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* cmd = app.add_subcommand("batch", "Score a CSV file with a model, in input order");
  auto f = std::make_shared<BatchFlags>();
  cmd->add_option("model", f->model,
                  "name@alias, name/version or name (registered), or a local model path")
      ->required();
  cmd->add_option("--input", f->options.input,
                  "CSV with a header row, or JSON Lines (.jsonl); .gz/.zst decompressed; - for "
                  "stdin")
      ->required();
  cmd->add_option("--output", f->options.output, "CSV to write (.gz/.zst compressed); - for stdout")
      ->required();
  cmd->add_option("--format", f->format, "input format: auto (by extension), csv or jsonl")
      ->check(CLI::IsMember({"auto", "csv", "jsonl"}))
      ->capture_default_str();
  cmd->add_option("--id-column", f->options.id_column, "column copied first into the output");
  cmd->add_option("--keep-columns", f->options.keep_columns, "columns copied into the output")
      ->delimiter(',');
  cmd->add_option("--reject-file", f->options.reject_file,
                  "where rejected rows go (default <output>.rejects.csv)");
  cmd->add_option("--max-rejects", f->options.max_rejects,
                  "fail when more rows than this are rejected")
      ->capture_default_str();
  cmd->add_option("--chunk-rows", f->options.chunk_rows, "rows scored together")
      ->check(CLI::Range(size_t{1}, size_t{1} << 24))
      ->capture_default_str();
  cmd->callback(
      [&run, &global, f] { run = [&global, f]() -> Status { return RunBatch(global, *f); }; });
}

}  // namespace keel::cli
