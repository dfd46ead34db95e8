// keel drift: data drift between a reference and a current CSV file
// (docs/monitoring.md):
//
//   keel drift --reference train.csv --current last_week.csv
//              [--report report.html] [--json out.json] [--fail-on drift]
//
// Both files are read at once on two threads; the comparison itself is
// monitor::CompareTables. Exit codes: 0 done, 3 the --fail-on gate failed
// (one plain line on stderr says why), 1/2 errors as for every command.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "apps/keel/cli.h"
#include "keel/core/util.h"
#include "keel/data/csv.h"
#include "keel/monitor/drift.h"
#include "keel/monitor/reference.h"

namespace keel::cli {
namespace {

struct DriftFlags {
  std::string reference;
  std::string current;
  std::string preset = "keel";
  std::vector<std::string> tests;
  std::vector<std::string> stats;
  std::vector<std::string> columns;
  std::vector<std::string> exclude;
  std::vector<std::string> categorical;
  std::string target;
  std::string prediction;
  int bins = 10;
  std::string json;
  std::string report;
  std::string fail_on = "none";
  std::string save_reference;
  bool quiet = false;
};

// Progress of both reads on one terminal line (stderr, only on a terminal).
class ReadProgress {
 public:
  explicit ReadProgress(bool enabled) : enabled_(enabled) {}
  std::function<void(uint64_t, uint64_t)> For(int side) {
    if (!enabled_) return nullptr;
    return [this, side](uint64_t done, uint64_t total) {
      std::lock_guard<std::mutex> lock(mu_);
      done_[side] = done;
      total_[side] = total;
      const uint64_t all = total_[0] + total_[1];
      if (all == 0) return;
      const int percent = static_cast<int>(100.0 * static_cast<double>(done_[0] + done_[1]) /
                                           static_cast<double>(all));
      if (percent == last_) return;
      last_ = percent;
      std::cerr << "\rreading " << percent << "% (" << (done_[0] + done_[1]) / (1 << 20) << " of "
                << all / (1 << 20) << " MiB)" << std::flush;
    };
  }
  void Finish() {
    if (enabled_ && last_ >= 0) std::cerr << "\r\033[K" << std::flush;
  }

 private:
  bool enabled_;
  std::mutex mu_;
  uint64_t done_[2] = {0, 0};   // guarded by mu_
  uint64_t total_[2] = {0, 0};  // guarded by mu_
  int last_ = -1;               // guarded by mu_
};

// The reference: a CSV file, a stored profile (.keelref), or the profile
// stored with a model (a registered reference or a local package).
struct LoadedReference {
  std::optional<data::Table> table;
  std::optional<monitor::ReferenceProfile> profile;
  std::string description;
  std::map<std::string, data::ColumnType> types;  // column -> type, to read the current file
};

// A regular file that starts with a reference profile's magic.
bool IsProfileFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  char head[16] = {};
  in.read(head, sizeof head);
  return monitor::LooksLikeReference(std::string_view(head, static_cast<size_t>(in.gcount())));
}

Result<LoadedReference> LoadReference(const GlobalOptions& global, const std::string& ref,
                                      const std::function<Result<data::Table>()>& read_csv) {
  LoadedReference out;
  out.description = ref;
  std::error_code ec;
  const bool is_profile = IsProfileFile(ref);
  if (!is_profile && std::filesystem::is_regular_file(ref, ec)) {
    KEEL_ASSIGN_OR_RETURN(data::Table table, read_csv());
    for (const data::Column& c : table.columns()) out.types[c.name()] = c.type();
    out.table = std::move(table);
    return out;
  }
  std::filesystem::path file = ref;
  if (!is_profile) {
    // A missing data file is reported as such, not as an unknown model.
    const std::string ext = std::filesystem::path(ref).extension().string();
    for (const char* data_ext : {".csv", ".keelref", ".gz", ".zst", ".tsv", ".txt", ".jsonl"}) {
      if (ext == data_ext && !std::filesystem::exists(ref, ec)) {
        return NotFound(ref + ": no such file");
      }
    }
    KEEL_ASSIGN_OR_RETURN(CliModel model, LoadModelForCli(global, ref));
    file = model.model->path / "keel" / "reference.keelref";
    if (!std::filesystem::exists(file, ec)) {
      return NotFound("model " + ref + " has no stored reference profile (" + file.string() +
                      "); compare with the training data instead: --reference DATA.csv");
    }
    if (!model.name.empty())
      out.description = model.name + " version " + model.version + " (" + ref + ")";
  }
  KEEL_ASSIGN_OR_RETURN(monitor::ReferenceProfile profile, monitor::ReadReferenceFile(file));
  for (const monitor::ReferenceColumn& c : profile.columns) {
    out.types[c.name] = c.kind == monitor::ColumnKind::kNumeric ? data::ColumnType::kNumeric
                        : c.boolean                             ? data::ColumnType::kBoolean
                                                                : data::ColumnType::kCategorical;
  }
  out.profile = std::move(profile);
  return out;
}

Status RunDrift(const GlobalOptions& global, const DriftFlags& f, int& exit_code) {
  KEEL_ASSIGN_OR_RETURN(monitor::DriftOptions options,
                        DriftOptionsFromFlags(f.preset, f.tests, f.stats));
  options.columns = f.columns;
  options.exclude = f.exclude;
  options.target = f.target;
  options.prediction = f.prediction;
  options.bins = f.bins;
  if (f.fail_on != "none" && f.fail_on != "drift" && f.fail_on != "dataset" &&
      f.fail_on != "column" && f.fail_on != "prediction") {
    return InvalidArgument("--fail-on " + f.fail_on +
                           ": expected none, drift (= dataset), dataset, column or prediction");
  }
  if (f.fail_on == "prediction" && f.prediction.empty()) {
    return InvalidArgument("--fail-on prediction needs --prediction COLUMN");
  }

  data::CsvOptions csv;
  for (const std::string& name : f.categorical) csv.types[name] = data::ColumnType::kCategorical;
  csv.bulk_memory = true;  // a short-lived process filling large columns
  ReadProgress progress(!f.quiet && isatty(STDERR_FILENO) != 0);
  // Two CSV files are read at once, one thread each (cutting each into
  // parts as well only adds copying on 2 cores); one file is read in parts.
  std::error_code ec;
  const bool reference_is_csv =
      std::filesystem::is_regular_file(f.reference, ec) && !IsProfileFile(f.reference);
  auto read = [&](const std::string& path, int side) {
    data::CsvOptions o = csv;
    o.reader.progress = progress.For(side);
    o.read_in_parts = !(reference_is_csv && !f.current.empty());
    return data::ReadCsvTable(path, o);
  };
  std::future<Result<data::Table>> cur_future;
  if (!f.current.empty()) cur_future = std::async(std::launch::async, read, f.current, 1);
  Result<LoadedReference> ref =
      LoadReference(global, f.reference, [&] { return read(f.reference, 0); });
  Result<data::Table> cur =
      f.current.empty() ? Result<data::Table>(data::Table()) : cur_future.get();
  progress.Finish();
  KEEL_RETURN_IF_ERROR(ref.status());
  KEEL_RETURN_IF_ERROR(cur.status());

  if (!f.save_reference.empty()) {
    if (!ref->table) {
      return InvalidArgument("--save-reference needs a CSV --reference (" + f.reference +
                             " is already a profile)");
    }
    monitor::ReferenceOptions ref_options;
    ref_options.bins = f.bins;
    KEEL_ASSIGN_OR_RETURN(monitor::ReferenceProfile profile,
                          monitor::BuildReference(*ref->table, ref_options));
    KEEL_RETURN_IF_ERROR(monitor::WriteReferenceFile(f.save_reference, profile));
    if (!f.quiet) {
      std::cerr << "saved the reference profile of " << f.reference << " (" << profile.rows
                << " rows, " << profile.columns.size() << " columns) to " << f.save_reference
                << "\n";
    }
    if (f.current.empty()) return OkStatus();
  }
  if (f.current.empty()) return InvalidArgument("--current is required (unless --save-reference)");

  // The current file's columns are typed as the reference's: a column whose
  // inferred type differs is read again with the reference's type, so a
  // numeric column holding text is an error naming its line, and a
  // categorical column of digits stays categorical.
  data::CsvOptions typed = csv;
  for (const auto& [name, type] : ref->types) {
    const data::Column* other = cur->FindColumn(name);
    if (other == nullptr || other->type() == type || csv.types.count(name) > 0) continue;
    if (other->type() != data::ColumnType::kNumeric && type != data::ColumnType::kNumeric &&
        !(other->type() == data::ColumnType::kBoolean && type == data::ColumnType::kCategorical)) {
      continue;  // categorical vs boolean text both test as categories
    }
    typed.types[name] = type;
  }
  if (typed.types.size() > csv.types.size()) {
    KEEL_ASSIGN_OR_RETURN(cur, data::ReadCsvTable(f.current, typed));
  }

  // A model's profile knows its label and prediction columns: compared when
  // the current file has them (as target / prediction), skipped otherwise.
  if (ref->profile) {
    for (const auto& [column, role] :
         {std::pair{&ref->profile->target_column, &options.target},
          std::pair{&ref->profile->prediction_column, &options.prediction}}) {
      if (column->empty() || !role->empty() ||
          std::find(options.exclude.begin(), options.exclude.end(), *column) !=
              options.exclude.end()) {
        continue;
      }
      if (cur->FindColumn(*column) != nullptr) {
        *role = *column;
      } else if (options.columns.empty()) {
        options.exclude.push_back(*column);
      }
    }
  }
  monitor::DriftReport report;
  // The tables are not needed after the comparison: their columns are
  // sorted in place.
  if (ref->table) {
    KEEL_ASSIGN_OR_RETURN(report,
                          monitor::CompareTables(std::move(*ref->table), std::move(*cur), options));
  } else {
    KEEL_ASSIGN_OR_RETURN(report,
                          monitor::CompareToReference(*ref->profile, std::move(*cur), options));
  }
  report.reference_name = ref->description;
  report.current_name = f.current;
  if (!f.report.empty()) KEEL_RETURN_IF_ERROR(WriteTextOutput(f.report, report.ToHtml()));
  if (!f.json.empty()) KEEL_RETURN_IF_ERROR(WriteTextOutput(f.json, report.ToJson()));
  if (f.json != "-" && !f.quiet) std::cout << report.ToText() << std::flush;

  const std::string gate = DriftGate(report, f.fail_on);
  if (!gate.empty()) {
    std::cerr << "keel: drift gate failed (--fail-on " << f.fail_on << "): " << gate << "\n";
    exit_code = kDriftGateExitCode;
  }
  return OkStatus();
}

}  // namespace

Status WriteTextOutput(const std::string& path, const std::string& text) {
  if (path != "-") return WriteFileAtomically(path, text);
  std::cout << text << std::flush;
  return OkStatus();
}

Result<monitor::DriftOptions> DriftOptionsFromFlags(const std::string& preset,
                                                    const std::vector<std::string>& tests,
                                                    const std::vector<std::string>& stats) {
  monitor::DriftOptions options;
  options.preset = preset;
  for (const std::string& spec : tests) {
    KEEL_ASSIGN_OR_RETURN(monitor::DriftOptions::Test test, ParseTestSpec(spec));
    options.tests.push_back(std::move(test));
  }
  options.extra = stats;
  return options;
}

Result<monitor::DriftOptions::Test> ParseTestSpec(const std::string& spec) {
  monitor::DriftOptions::Test test;
  const size_t colon = spec.find(':');
  test.name = spec.substr(0, colon);
  if (colon == std::string::npos) return test;
  const std::string value = spec.substr(colon + 1);
  char* end = nullptr;
  test.threshold = std::strtod(value.c_str(), &end);
  if (value.empty() || end != value.c_str() + value.size() || !std::isfinite(test.threshold)) {
    return InvalidArgument("--test " + spec + ": threshold '" + value + "' is not a number");
  }
  return test;
}

std::string DriftGate(const monitor::DriftReport& report, const std::string& fail_on) {
  if ((fail_on == "drift" || fail_on == "dataset") && report.dataset.drift) {
    return "dataset drift: " + std::to_string(report.dataset.drifted) + " of " +
           std::to_string(report.dataset.columns) + " features drifted";
  }
  if (fail_on == "column" && report.dataset.drifted > 0) {
    std::string names;
    for (const monitor::ColumnReport& c : report.columns) {
      if (c.role == monitor::ColumnRole::kFeature && c.error.empty() && c.drift.drift) {
        names += (names.empty() ? "" : ", ") + c.name;
      }
    }
    return "drifted columns: " + names;
  }
  if (fail_on == "prediction" && report.prediction_index >= 0) {
    const monitor::ColumnReport& p = report.columns[static_cast<size_t>(report.prediction_index)];
    if (p.error.empty() && p.drift.drift) return "prediction drift in column '" + p.name + "'";
  }
  return "";
}

void AddDriftCommand(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* cmd = app.add_subcommand(
      "drift",
      "Compare a current data set with a reference: per-column drift, dataset drift, "
      "prediction drift");
  auto f = std::make_shared<DriftFlags>();
  cmd->add_option("--reference", f->reference,
                  "reference: a CSV file (e.g. the training data), a saved profile (.keelref), "
                  "or a model (name@alias, name/version, a package directory) whose stored "
                  "profile of its training data is used")
      ->required();
  cmd->add_option("--current", f->current, "current CSV (e.g. last week's inputs)");
  cmd->add_option("--save-reference", f->save_reference,
                  "also save the reference CSV's profile to this file (.keelref), to compare "
                  "against later without re-reading it");
  std::string presets;
  for (const monitor::DriftPreset& p : monitor::DriftPresets()) {
    presets += "\n  " + std::string(p.name) + ": " + std::string(p.description);
  }
  cmd->add_option("--preset", f->preset, "how each column's test is chosen:" + presets)
      ->capture_default_str();
  cmd->add_option("--test", f->tests,
                  "deciding statistic, NAME or NAME:THRESHOLD (e.g. psi:0.2); repeatable: a "
                  "column is decided by the first that takes its kind (--test ks --test "
                  "chisquare), else by the preset");
  cmd->add_option("--stats", f->stats, "more statistics to report per column (comma-separated)")
      ->delimiter(',');
  cmd->add_option("--columns", f->columns, "only these columns (comma-separated)")->delimiter(',');
  cmd->add_option("--exclude", f->exclude, "leave these columns out (comma-separated)")
      ->delimiter(',');
  cmd->add_option("--categorical", f->categorical,
                  "read these columns as categorical even when they look numeric")
      ->delimiter(',');
  cmd->add_option("--target", f->target, "the label column (reported, not counted as a feature)");
  cmd->add_option("--prediction", f->prediction,
                  "the prediction column: its drift is reported as prediction drift");
  cmd->add_option("--bins", f->bins, "reference quantile bins for PSI, Jensen-Shannon, Hellinger")
      ->capture_default_str();
  cmd->add_option("--json", f->json, "write the report as JSON to this file ('-': stdout only)");
  cmd->add_option("--report", f->report, "write a self-contained HTML report to this file");
  cmd->add_option("--fail-on", f->fail_on,
                  "exit 3 on: none, drift or dataset (dataset drift), column (any feature), "
                  "prediction")
      ->capture_default_str();
  cmd->add_flag("--quiet", f->quiet, "no table on stdout, no progress");
  cmd->callback([&run, &global, f] {
    run = [&global, f]() -> Status { return RunDrift(global, *f, CommandExitCode()); };
  });
}

}  // namespace keel::cli
