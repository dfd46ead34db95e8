// keel monitor: a window of a registered model's prediction log against its
// reference profile: data and prediction drift, performance once labels
// arrived, operational figures (docs/monitoring.md):
//
//   keel monitor churn@champion --window 1h [--json out.json] [--report r.html]
//                [--fail-on drift|column|prediction|performance --max-drop auc:0.02]
//
// The library call is monitor::MonitorWindow; this file resolves the model in
// the embedded store, parses flags and prints. Exit codes as keel drift: 3
// when the --fail-on gate fails.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>

#include "apps/keel/cli.h"
#include "keel/monitor/alerts.h"
#include "keel/monitor/history.h"
#include "keel/monitor/live.h"

namespace keel::cli {
namespace {

struct MonitorFlags {
  std::string model;
  std::string window = "1h";
  std::string until;
  bool all_versions = false;
  size_t max_rows = 1'000'000;
  std::string preset = "keel";
  std::vector<std::string> tests;
  std::vector<std::string> stats;
  std::string json;
  std::string report;
  std::string fail_on = "none";
  std::string max_drop;
  std::string history;
  bool quiet = false;
};

// A duration (monitor::ParseDuration) -> milliseconds; "all" -> -1.
Result<int64_t> ParseWindow(const std::string& text) {
  if (text == "all") return int64_t{-1};
  Result<int64_t> ms = monitor::ParseDuration(text);
  if (!ms.ok()) return InvalidArgument("--window " + ms.status().message());
  return ms;
}

Status RunMonitor(const GlobalOptions& global, const MonitorFlags& f, int& exit_code) {
  KEEL_ASSIGN_OR_RETURN(int64_t window_ms, ParseWindow(f.window));
  int64_t until_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  if (!f.until.empty() && f.until != "now") {
    char* end = nullptr;
    const long long v = std::strtoll(f.until.c_str(), &end, 10);
    if (end != f.until.c_str() + f.until.size() || v <= 0) {
      return InvalidArgument("--until " + f.until + ": expected 'now' or Unix milliseconds");
    }
    until_ms = v;
  }
  std::string drop_metric;
  double drop_amount = 0;
  if (f.fail_on == "performance") {
    const size_t colon = f.max_drop.find(':');
    char* end = nullptr;
    if (colon != std::string::npos) {
      drop_metric = f.max_drop.substr(0, colon);
      drop_amount = std::strtod(f.max_drop.c_str() + colon + 1, &end);
    }
    if (colon == std::string::npos || drop_metric.empty() || end != f.max_drop.c_str() + f.max_drop.size() ||
        !(drop_amount >= 0)) {
      return InvalidArgument("--fail-on performance needs --max-drop METRIC:AMOUNT (e.g. auc:0.02)");
    }
  } else if (f.fail_on != "none" && f.fail_on != "drift" && f.fail_on != "dataset" &&
             f.fail_on != "column" && f.fail_on != "prediction") {
    return InvalidArgument("--fail-on " + f.fail_on +
                           ": expected none, drift (= dataset), column, prediction or performance");
  }

  KEEL_ASSIGN_OR_RETURN(CliModel loaded, LoadModelForCli(global, f.model));
  if (loaded.name.empty() || loaded.app == nullptr) {
    return InvalidArgument("keel monitor needs a registered model (name@alias, name/version or "
                           "name), not a local path: the prediction log is kept per registered model");
  }
  const std::filesystem::path ref_path = loaded.model->path / "keel" / "reference.keelref";
  std::error_code ec;
  if (!std::filesystem::exists(ref_path, ec)) {
    return NotFound(loaded.name + " version " + loaded.version +
                    " has no stored reference profile (registered from an outside file?); "
                    "compare windows with keel drift --reference DATA.csv instead");
  }
  KEEL_ASSIGN_OR_RETURN(monitor::ReferenceProfile reference, monitor::ReadReferenceFile(ref_path));

  monitor::WindowQuery query;
  query.model = loaded.name;
  query.version = f.all_versions ? "" : loaded.version;
  query.to_ms = until_ms;
  query.from_ms = window_ms < 0 ? 0 : until_ms - window_ms;
  query.max_rows = f.max_rows;
  KEEL_ASSIGN_OR_RETURN(monitor::DriftOptions options,
                        DriftOptionsFromFlags(f.preset, f.tests, f.stats));
  KEEL_ASSIGN_OR_RETURN(monitor::WindowReport report,
                        monitor::MonitorWindow(loaded.app->db(), reference, loaded.model->info,
                                               query, options));
  report.drift.reference_name = loaded.name + " version " + loaded.version + " (training data)";
  report.drift.current_name = "predictions " + FormatTime(query.from_ms) + " .. " + FormatTime(query.to_ms);

  std::string history_html;
  if (!f.history.empty()) {
    // The windows keel server stored for this model, of the same length as
    // --window, ending within (until - history, until].
    if (window_ms < 0) return InvalidArgument("--history needs a --window length, not 'all'");
    Result<int64_t> parsed = monitor::ParseDuration(f.history);
    if (!parsed.ok()) return InvalidArgument("--history " + parsed.status().message());
    const int64_t span = *parsed;
    monitor::WindowHistoryQuery hq;
    hq.model = query.model;
    hq.version = query.version;
    hq.since_ms = until_ms - span;
    hq.limit = 5000;  // the newest 5000 windows (a stored report is ~13 KB)
    KEEL_ASSIGN_OR_RETURN(std::vector<monitor::StoredWindow> stored,
                          monitor::ListStoredWindows(loaded.app->db(), hq));
    std::vector<monitor::StoredWindow> same;
    for (monitor::StoredWindow& w : stored) {
      if (w.to_ms - w.from_ms == window_ms && w.to_ms <= until_ms && w.to_ms > until_ms - span) {
        same.push_back(std::move(w));
      }
    }
    KEEL_ASSIGN_OR_RETURN(history_html, monitor::HistoryHtml(same));
    if (!f.quiet && f.json != "-") {
      std::cout << "history: " << same.size() << " stored " << f.window << " windows in the last "
                << f.history << (f.report.empty() ? " (charts need --report)" : "") << "\n";
    }
  }
  if (!f.report.empty()) KEEL_RETURN_IF_ERROR(WriteTextOutput(f.report, report.ToHtml(history_html)));
  if (!f.json.empty()) KEEL_RETURN_IF_ERROR(WriteTextOutput(f.json, report.ToJson()));
  if (f.json != "-" && !f.quiet) std::cout << report.ToText() << std::flush;

  std::string gate = DriftGate(report.drift, f.fail_on);
  if (f.fail_on == "performance") {
    // The same "how much worse than at validation" the alert rules read.
    uint64_t samples = 0;
    Result<double> worse =
        monitor::WindowMetric(report, "performance." + drop_metric + ".drop", &samples);
    const double drop = worse.ok() ? *worse : std::nan("");
    if (std::isnan(drop)) {
      if (report.performance.live.empty()) {
        std::cerr << "keel: no labelled predictions in the window: the performance gate is not "
                     "checked\n";
      } else {
        return InvalidArgument("--max-drop " + f.max_drop + ": no metric '" + drop_metric +
                               "' in both the window and the validation results");
      }
    } else if (drop > drop_amount) {
      gate = drop_metric + " " + FormatDouble(report.performance.Live(drop_metric)) +
             " is worse than at validation by " + FormatDouble(drop) + " (allowed " +
             FormatDouble(drop_amount) + ")";
    }
  }
  if (!gate.empty()) {
    std::cerr << "keel: monitor gate failed (--fail-on " << f.fail_on << "): " << gate << "\n";
    exit_code = kDriftGateExitCode;
  }
  return OkStatus();
}

}  // namespace

void AddMonitorCommand(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* cmd = app.add_subcommand(
      "monitor", "A window of a registered model's prediction log against its training data: "
                 "data and prediction drift, performance once labels arrived, latency and volume");
  auto f = std::make_shared<MonitorFlags>();
  cmd->add_option("model", f->model, "name@alias, name/version or name")->required();
  cmd->add_option("--window", f->window, "how far back from --until: 90s, 30m, 1h, 7d, 2w, all")
      ->capture_default_str();
  cmd->add_option("--until", f->until, "end of the window: now (default) or Unix milliseconds");
  cmd->add_flag("--all-versions", f->all_versions,
                "every version's predictions, not only the resolved version's");
  cmd->add_option("--max-rows", f->max_rows, "read at most this many predictions (the newest)")
      ->capture_default_str();
  cmd->add_option("--preset", f->preset, "drift preset: keel or evidently")->capture_default_str();
  cmd->add_option("--test", f->tests, "deciding statistic NAME[:THRESHOLD], repeatable");
  cmd->add_option("--stats", f->stats, "more statistics per column (comma-separated)")
      ->delimiter(',');
  cmd->add_option("--json", f->json, "write the report as JSON ('-': stdout only)");
  cmd->add_option("--report", f->report, "write a self-contained HTML report");
  cmd->add_option("--fail-on", f->fail_on,
                  "exit 3 on: none, drift (dataset), column, prediction, performance")
      ->capture_default_str();
  cmd->add_option("--max-drop", f->max_drop,
                  "with --fail-on performance: METRIC:AMOUNT, the largest allowed loss against "
                  "the validation value (auc:0.02; for log_loss, rmse, mae a rise)");
  cmd->add_option("--history", f->history,
                  "with --report: chart the windows of the same length that keel server stored "
                  "over this span (e.g. 7d): drift, performance, latency, volume over time");
  cmd->add_flag("--quiet", f->quiet, "no report on stdout");
  cmd->callback([&run, &global, f] {
    run = [&global, f]() -> Status { return RunMonitor(global, *f, CommandExitCode()); };
  });
}

}  // namespace keel::cli
