// File: keel/model/codegen.h
//
// Edge export: turns a loaded model (feature pipeline + IR) into files that
// another toolchain builds or loads, with no keel at run time:
//
//   c           NAME.h + NAME.c + README.md: dependency-free C99 (no malloc,
//               no globals that need initialisation, libm's expf only for
//               sigmoid/softmax/exp outputs)
//   cpp-header  NAME.hpp + README.md: one C++17 header, constexpr tables, the
//               same functions in namespace NAME
//   mlflow      an MLflow model directory (MLmodel with the xgboost and
//               python_function flavors, the XGBoost model file, conda.yaml,
//               python_env.yaml, requirements.txt); XGBoost models only
//
//   KEEL_ASSIGN_OR_RETURN(auto m, keel::model::LoadModelPackage("pkg/model"));
//   keel::model::ExportOptions opt;
//   opt.name = "churn_model";                        // identifier and file prefix
//   KEEL_ASSIGN_OR_RETURN(std::vector<keel::model::ExportedFile> files,
//                         keel::model::GenerateExport(*m, "c", opt));
//   KEEL_RETURN_IF_ERROR(keel::model::WriteExport(files, "out/churn_model", false));
//
// The formats are an open table (ExportFormats(), src/model/codegen.cc): a
// new format is one generator function and one row there.
//
// Contract of the generated code (c, cpp-header): for every input, the
// outputs are bit for bit those of Predictor::PredictRow on the vector
// FeaturePipeline encodes from the same raw values (missing markers and
// unknown categories included), when the generated code is compiled for
// IEEE-754 binary32/64 with FLT_EVAL_METHOD 0, without -ffast-math (or any of
// the flags it implies), with floating-point contraction off
// (-ffp-contract=off; GCC implies it only for C in an ISO mode such as
// -std=c99, not for C++ nor for -std=gnu*; clang needs it for C too), and
// linked with the same expf as keel (glibc) when the output uses expf. keel's
// own model library is built with -ffp-contract=off (CMakeLists.txt) so the
// engine side never fuses either. Sums run in the model's accumulator type
// in tree order, as the engine does. Tested on x86-64 with GCC 12 and clang
// 14; docs/export.md states the API, the limits and how this is tested.
//
// Every text taken from the model (column and category names, class names,
// output name, format, source) reaches the generated source only as an
// escaped string literal or as comment text with every byte outside
// printable ASCII and every '*', '\\' and '?' replaced by '_', so no model
// can inject code through it.
//
// Generation is deterministic (the same model gives the same bytes) except
// for the mlflow format's model_uuid and utc_time_created, as MLflow's own.
//
// Threads: every function here is pure (reads the model, returns values);
// WriteExport touches only the output directory and its temporary siblings.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "keel/core/result.h"
#include "keel/core/status.h"
#include "keel/model/package.h"

namespace keel::model {

struct ExportOptions {
  // C identifier used as file prefix, symbol prefix (c) or namespace
  // (cpp-header). Empty: DefaultExportName(model_name).
  std::string name;
  // The model's registered name (or the local path's stem); used for the
  // default name and in comments.
  std::string model_name;
  // Where the model came from, for comments and READMEs ("churn version 3").
  std::string source;
};

// One generated file; `path` is relative to the output directory, '/'-separated.
struct ExportedFile {
  std::string path;
  std::string contents;
};

struct ExportFormat {
  std::string_view name;  // "c", "cpp-header", "mlflow"
  std::string_view description;
  // Generates every file of the format in memory. InvalidArgument when the
  // model cannot be exported in this format (the message says why).
  Result<std::vector<ExportedFile>> (*generate)(const LoadedModel& model,
                                                const ExportOptions& options);
};

// All export formats, in the order `keel export --help` lists them.
const std::vector<ExportFormat>& ExportFormats();
// nullptr for an unknown name.
const ExportFormat* FindExportFormat(std::string_view name);
// "c, cpp-header, mlflow": for messages.
std::string ExportFormatNames();

// `text` as a C identifier: every byte outside [A-Za-z0-9_] becomes '_',
// runs of '_' collapse, a leading digit gets an "m_" prefix, lower case; never
// empty, never a C or C++ keyword (a trailing '_' is added).
std::string SanitizeIdentifier(std::string_view text);
// The default export name for a model name: SanitizeIdentifier(model_name)
// plus "_model" unless it already ends with "model" ("churn" ->
// "churn_model"); "model" when model_name is empty.
std::string DefaultExportName(std::string_view model_name);
// OK when `name` can be used as ExportOptions::name in every format:
// [A-Za-z_][A-Za-z0-9_]*, at most 64 bytes, not starting with '_' (reserved),
// not a C/C++ keyword, and not a name the C or C++ standard library (or
// POSIX) declares or defines at global scope -- cpp-header makes NAME a global
// namespace, which clashes with ::exp, ::nan, ::floor, ::int32_t, size_t,
// EOF, INT32_MAX, M_PI, ... (so every name ending in "_t" is refused, as POSIX
// reserves them). InvalidArgument naming the reason otherwise.
Status CheckExportName(std::string_view name);

// Runs the named format's generator with options.name resolved.
// InvalidArgument for an unknown format (naming the known ones) or name.
Result<std::vector<ExportedFile>> GenerateExport(const LoadedModel& model, std::string_view format,
                                                 const ExportOptions& options);

// Writes `files` into `dir` so that `dir` never holds a partial export:
// every file goes into a temporary sibling directory (".tmp-<dir>-<random>"),
// is written, fsync'ed and closed (each checked), the temporary directory
// tree is fsync'ed, then renamed to `dir` and the parent directory fsync'ed,
// so after OK the export survives a crash. Missing parent directories are
// created (and synced into their parents). A directory that can be written
// but not opened (mode -wx) cannot be synced and is skipped.
//
// `dir` must not exist or be an empty directory (AlreadyExists otherwise)
// unless `replace`. With `replace`, a non-empty `dir` is swapped with the
// new one in one step (renameat2 RENAME_EXCHANGE, Linux 3.15+ with glibc
// 2.28+, on file systems that support it), so `dir` never disappears; where
// that is unavailable the old directory is renamed to ".old-<dir>-<random>"
// first, the new one renamed into place, and the old one moved back if that
// fails; if moving back fails too, the error names where the previous export
// was left. The previous export is then removed; if that removal fails the
// call still returns OK (the new export is complete and in place) and sets
// *warning to a one-line message naming what was left behind (otherwise
// *warning is cleared); a caller passing no `warning` is not told.
//
// Errors name the path and map the errno: ENOSPC/EDQUOT ResourceExhausted,
// EACCES/EPERM/EROFS PermissionDenied, ENOTDIR/ELOOP/ENAMETOOLONG
// FailedPrecondition, EEXIST/ENOTEMPTY AlreadyExists, ENOENT NotFound,
// others Internal.
// After an error no temporary directory is left (a failure to remove it is
// appended to the message).
Status WriteExport(const std::vector<ExportedFile>& files, const std::filesystem::path& dir,
                   bool replace, std::string* warning = nullptr);

namespace internal {
// WriteExport's file-system primitives, replaceable by tests to reach the
// paths a real file system rarely takes (no RENAME_EXCHANGE, a failed
// rename or removal). Each returns 0 or an errno; remove_all is
// std::filesystem::remove_all's signature. Not thread-safe to change.
struct ExportFsHooks {
  int (*rename)(const char* from, const char* to);
  int (*exchange)(const char* a, const char* b);  // renameat2(..., RENAME_EXCHANGE)
  uintmax_t (*remove_all)(const std::filesystem::path& p, std::error_code& ec);
};
ExportFsHooks& ExportFsHooksForTest();
}  // namespace internal

// The generators (src/model/codegen_c.cc, src/model/codegen_mlflow.cc).
// options.name must already be resolved and valid.
Result<std::vector<ExportedFile>> GenerateC(const LoadedModel& model, const ExportOptions& options);
Result<std::vector<ExportedFile>> GenerateCppHeader(const LoadedModel& model,
                                                    const ExportOptions& options);
Result<std::vector<ExportedFile>> GenerateMlflow(const LoadedModel& model,
                                                 const ExportOptions& options);

}  // namespace keel::model
