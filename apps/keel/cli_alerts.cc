// keel alerts: the alerts monitoring raised (stored by keel server's monitor
// passes), and the default alert rules for a model as a starting rules file
// (docs/monitoring.md):
//
//   keel alerts list [--model churn] [--since 1d] [--json]
//   keel alerts rules churn@champion > rules.yaml
#include <iostream>

#include "apps/keel/cli.h"
#include "keel/monitor/alerts.h"
#include "keel/store/store.h"

namespace keel::cli {
namespace {

struct ListFlags {
  std::string model;
  std::string since = "7d";
  size_t limit = 100;
  bool json = false;
};

Status ListAlertsCommand(const GlobalOptions& global, const ListFlags& f) {
  if (!global.tracking_uri.empty()) {
    return InvalidArgument("alerts are read from the store (--store-uri), not from a remote server");
  }
  int64_t since_ms = 0;
  if (f.since != "all") {
    KEEL_ASSIGN_OR_RETURN(int64_t window, monitor::ParseDuration(f.since));
    since_ms = SystemClock::Default().NowMillis() - window;
  }
  KEEL_ASSIGN_OR_RETURN(auto db, store::OpenDatabase(global.store_uri, {}));
  monitor::AlertQuery q;
  q.model = f.model;
  q.since_ms = since_ms;
  q.limit = f.limit;
  KEEL_ASSIGN_OR_RETURN(std::vector<monitor::Alert> alerts, monitor::ListAlerts(*db, q));
  if (f.json) {
    std::string out = "{\"alerts\":[";
    for (size_t i = 0; i < alerts.size(); ++i) out += (i ? "," : "") + alerts[i].ToJson();
    std::cout << out << "]}\n";
    return OkStatus();
  }
  if (alerts.empty()) {
    std::cout << "no alerts" << (f.model.empty() ? "" : " for " + f.model) << " in the last "
              << f.since << "\n";
    return OkStatus();
  }
  std::vector<std::vector<std::string>> rows;
  for (const monitor::Alert& a : alerts) {
    rows.push_back({std::to_string(a.id), FormatTime(a.last_ms), a.severity, a.model,
                    a.version, a.rule, a.metric + " = " + FormatDouble(a.value) + " " + a.op + " " +
                    FormatDouble(a.threshold),
                    std::to_string(a.count), FormatTime(a.first_ms)});
  }
  PrintTable({"id", "last", "severity", "model", "version", "rule", "value", "count", "first"},
             rows);
  return OkStatus();
}

Status PrintDefaultRules(const GlobalOptions& global, const std::string& ref,
                         const std::string& task) {
  std::string name = ref;
  std::string t = task;
  if (t.empty()) {
    KEEL_ASSIGN_OR_RETURN(CliModel loaded, LoadModelForCli(global, ref));
    if (!loaded.name.empty()) name = loaded.name;
    t = loaded.model->info.task;
  }
  std::cout << "# Default alert rules for " << name << " (" << t
            << "); edit and pass to keel server --alert-rules FILE.\n"
            << monitor::AlertRulesToYaml(monitor::DefaultAlertRules(name, t));
  return OkStatus();
}

}  // namespace

void AddAlertCommands(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* cmd = app.add_subcommand("alerts", "Alerts raised by monitoring, and alert rules");
  cmd->require_subcommand(1);
  auto* list = cmd->add_subcommand("list", "Alerts, newest first");
  auto f = std::make_shared<ListFlags>();
  list->add_option("--model", f->model, "only this model");
  list->add_option("--since", f->since, "how far back (e.g. 1h, 7d) or 'all'")->capture_default_str();
  list->add_option("--limit", f->limit, "at most this many")->capture_default_str();
  list->add_flag("--json", f->json, "as JSON");
  list->callback([&run, &global, f] {
    run = [&global, f]() -> Status { return ListAlertsCommand(global, *f); };
  });

  auto* rules = cmd->add_subcommand(
      "rules", "Print the default alert rules for a model (a starting --alert-rules file)");
  auto model = std::make_shared<std::string>();
  auto task = std::make_shared<std::string>();
  rules->add_option("model", *model, "name@alias, name/version, name, or a name with --task")
      ->required();
  rules->add_option("--task", *task, "binary, multiclass or regression (skips loading the model)");
  rules->callback([&run, &global, model, task] {
    run = [&global, model, task]() -> Status { return PrintDefaultRules(global, *model, *task); };
  });
}

}  // namespace keel::cli
