// keel experiments ... / keel runs ...
#include <algorithm>
#include <iostream>
#include <set>

#include "apps/keel/cli.h"

namespace keel::cli {
namespace {

std::string JsonStr(std::string_view s) {
  std::string out = "\"";
  AppendJsonEscaped(out, s);
  return out + "\"";
}

// An id when one exists with that number, else a name.
Result<std::string> ExperimentId(Transport& t, const std::string& name_or_id) {
  if (!name_or_id.empty() && std::all_of(name_or_id.begin(), name_or_id.end(), ::isdigit)) {
    auto by_id = t.Call("GET", "/api/2.0/mlflow/experiments/get", {{"experiment_id", name_or_id}}, "");
    if (by_id.ok() || by_id.status().code() != StatusCode::kNotFound) {
      KEEL_RETURN_IF_ERROR(by_id.status());
      return name_or_id;
    }
  }
  KEEL_ASSIGN_OR_RETURN(auto doc, t.Call("GET", "/api/2.0/mlflow/experiments/get-by-name",
                                         {{"experiment_name", name_or_id}}, ""));
  return Str(doc.root()["experiment"], "experiment_id");
}

Status ListExperiments(const GlobalOptions& g, bool all) {
  KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(g));
  std::vector<std::vector<std::string>> rows;
  std::string token;
  do {
    std::string body = std::string("{\"max_results\": 1000, \"view_type\": \"") +
                       (all ? "ALL" : "ACTIVE_ONLY") + "\"" +
                       (token.empty() ? "" : ", \"page_token\": " + JsonStr(token)) + "}";
    KEEL_ASSIGN_OR_RETURN(auto doc, t->Call("POST", "/api/2.0/mlflow/experiments/search", {}, body));
    simdjson::dom::array exps;
    if (!doc.root()["experiments"].get(exps)) {
      for (auto e : exps) {
        int64_t created = IntField(e, "creation_time");
        rows.push_back({Str(e, "experiment_id"), Str(e, "name"), Str(e, "lifecycle_stage"),
                        Str(e, "artifact_location"), FormatTime(created)});
      }
    }
    token = Str(doc.root(), "next_page_token");
  } while (!token.empty());
  PrintTable({"ID", "NAME", "STAGE", "ARTIFACTS", "CREATED"}, rows);
  return OkStatus();
}

void PrintRunDetails(simdjson::dom::element run) {
  auto info = run["info"];
  std::cout << "run:        " << Str(info, "run_id") << "\n"
            << "name:       " << Str(info, "run_name") << "\n"
            << "experiment: " << Str(info, "experiment_id") << "\n"
            << "status:     " << Str(info, "status") << "\n"
            << "user:       " << Str(info, "user_id") << "\n";
  int64_t start = IntField(info, "start_time"), end = IntField(info, "end_time");
  std::cout << "started:    " << FormatTime(start) << "\n"
            << "ended:      " << FormatTime(end) << "\n"
            << "artifacts:  " << Str(info, "artifact_uri") << "\n";
  auto section = [&](const char* title, const char* field) {
    simdjson::dom::array items;
    if (run["data"][field].get(items)) return;
    std::vector<std::vector<std::string>> rows;
    for (auto item : items) {
      std::vector<std::string> row{Str(item, "key"), Str(item, "value")};
      if (std::string_view(field) == "metrics") row.push_back(Str(item, "step"));
      rows.push_back(std::move(row));
    }
    std::sort(rows.begin(), rows.end());
    std::cout << "\n" << title << ":\n";
    if (std::string_view(field) == "metrics") {
      PrintTable({"KEY", "VALUE", "STEP"}, rows);
    } else {
      PrintTable({"KEY", "VALUE"}, rows);
    }
  };
  section("params", "params");
  section("metrics", "metrics");
  section("tags", "tags");
}

struct RunListOptions {
  std::string experiment = "0";
  std::string filter;
  std::vector<std::string> order_by;
  int max_results = 100;
  bool all = false;
};

Status ListRuns(const GlobalOptions& g, const RunListOptions& o) {
  KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(g));
  KEEL_ASSIGN_OR_RETURN(std::string exp, ExperimentId(*t, o.experiment));
  std::string order = "[";
  for (size_t i = 0; i < o.order_by.size(); ++i) order += (i ? "," : "") + JsonStr(o.order_by[i]);
  order += "]";
  std::string body = "{\"experiment_ids\": [" + JsonStr(exp) + "], \"filter\": " +
                     JsonStr(o.filter) + ", \"max_results\": " + std::to_string(o.max_results) +
                     ", \"order_by\": " + order + ", \"run_view_type\": \"" +
                     (o.all ? "ALL" : "ACTIVE_ONLY") + "\"}";
  KEEL_ASSIGN_OR_RETURN(auto doc, t->Call("POST", "/api/2.0/mlflow/runs/search", {}, body));
  simdjson::dom::array runs;
  std::vector<std::vector<std::string>> rows;
  std::set<std::string> metric_keys;
  if (!doc.root()["runs"].get(runs)) {
    for (auto r : runs) {
      simdjson::dom::array metrics;
      if (!r["data"]["metrics"].get(metrics)) {
        for (auto m : metrics) metric_keys.insert(Str(m, "key"));
      }
    }
    for (auto r : runs) {
      auto info = r["info"];
      int64_t start = IntField(info, "start_time");
      std::vector<std::string> row{Str(info, "run_id"), Str(info, "run_name"), Str(info, "status"),
                                   FormatTime(start)};
      for (const auto& key : metric_keys) {
        std::string value;
        simdjson::dom::array metrics;
        if (!r["data"]["metrics"].get(metrics)) {
          for (auto m : metrics) {
            if (Str(m, "key") == key) value = Str(m, "value");
          }
        }
        row.push_back(value);
      }
      rows.push_back(std::move(row));
    }
  }
  std::vector<std::string> header{"RUN", "NAME", "STATUS", "STARTED"};
  for (const auto& k : metric_keys) header.push_back(k);
  PrintTable(header, rows);
  if (!Str(doc.root(), "next_page_token").empty()) {
    std::cout << "(more runs: raise --max)\n";
  }
  return OkStatus();
}

// Params and metrics of several runs side by side; differing params marked '*'.
Status CompareRuns(const GlobalOptions& g, const std::vector<std::string>& ids) {
  if (ids.size() < 2) return InvalidArgument("compare needs at least two run ids");
  KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(g));
  std::vector<JsonDoc> docs;
  for (const auto& id : ids) {
    KEEL_ASSIGN_OR_RETURN(auto doc, t->Call("GET", "/api/2.0/mlflow/runs/get",
                                            {{"run_id", id}}, ""));
    docs.push_back(std::move(doc));
  }
  auto values = [&](const char* field) {
    std::map<std::string, std::vector<std::string>> out;
    for (size_t i = 0; i < docs.size(); ++i) {
      simdjson::dom::array items;
      if (docs[i].root()["run"]["data"][field].get(items)) continue;
      for (auto item : items) {
        auto& cells = out[Str(item, "key")];
        cells.resize(docs.size());
        cells[i] = Str(item, "value");
      }
    }
    for (auto& [k, cells] : out) cells.resize(docs.size());
    return out;
  };
  std::vector<std::string> header{"", "KEY"};
  for (size_t i = 0; i < docs.size(); ++i) {
    std::string name = Str(docs[i].root()["run"]["info"], "run_name");
    header.push_back(name.empty() ? ids[i].substr(0, 8) : name);
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [kind, field] : {std::pair{"param", "params"}, std::pair{"metric", "metrics"}}) {
    for (const auto& [key, cells] : values(field)) {
      bool differ = std::adjacent_find(cells.begin(), cells.end(), std::not_equal_to<>()) !=
                    cells.end();
      std::vector<std::string> row{differ ? std::string("*") + kind : std::string(" ") + kind, key};
      row.insert(row.end(), cells.begin(), cells.end());
      rows.push_back(std::move(row));
    }
  }
  PrintTable(header, rows);
  return OkStatus();
}

}  // namespace

void AddExperimentCommands(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* exp = app.add_subcommand("experiments", "List, create and manage experiments");
  exp->require_subcommand(1);

  auto* list = exp->add_subcommand("list", "List experiments");
  auto all = std::make_shared<bool>(false);
  list->add_flag("--all", *all, "include deleted experiments");
  list->callback([&run, &global, all] { run = [&global, all] { return ListExperiments(global, *all); }; });

  auto* create = exp->add_subcommand("create", "Create an experiment");
  auto name = std::make_shared<std::string>();
  create->add_option("name", *name, "experiment name")->required();
  create->callback([&run, &global, name] {
    run = [&global, name]() -> Status {
      KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(global));
      KEEL_ASSIGN_OR_RETURN(auto doc, t->Call("POST", "/api/2.0/mlflow/experiments/create", {},
                                              "{\"name\": " + JsonStr(*name) + "}"));
      std::cout << Str(doc.root(), "experiment_id") << "\n";
      return OkStatus();
    };
  });

  auto* show = exp->add_subcommand("show", "Show an experiment (by id or name)");
  auto ref = std::make_shared<std::string>();
  show->add_option("experiment", *ref, "id or name")->required();
  show->callback([&run, &global, ref] {
    run = [&global, ref]() -> Status {
      KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(global));
      KEEL_ASSIGN_OR_RETURN(std::string id, ExperimentId(*t, *ref));
      KEEL_ASSIGN_OR_RETURN(auto doc, t->Call("GET", "/api/2.0/mlflow/experiments/get",
                                              {{"experiment_id", id}}, ""));
      auto e = doc.root()["experiment"];
      int64_t created = IntField(e, "creation_time");
      std::cout << "id:        " << Str(e, "experiment_id") << "\n"
                << "name:      " << Str(e, "name") << "\n"
                << "stage:     " << Str(e, "lifecycle_stage") << "\n"
                << "artifacts: " << Str(e, "artifact_location") << "\n"
                << "created:   " << FormatTime(created) << "\n";
      return OkStatus();
    };
  });

  for (const char* verb : {"delete", "restore"}) {
    auto* sub = exp->add_subcommand(verb, std::string(verb) + " an experiment (by id or name)");
    auto target = std::make_shared<std::string>();
    sub->add_option("experiment", *target, "id or name")->required();
    std::string path = std::string("/api/2.0/mlflow/experiments/") + verb;
    sub->callback([&run, &global, target, path] {
      run = [&global, target, path]() -> Status {
        KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(global));
        KEEL_ASSIGN_OR_RETURN(std::string id, ExperimentId(*t, *target));
        return t->Call("POST", path, {}, "{\"experiment_id\": " + JsonStr(id) + "}").status();
      };
    });
  }

  auto* rename = exp->add_subcommand("rename", "Rename an experiment");
  auto from = std::make_shared<std::string>();
  auto to = std::make_shared<std::string>();
  rename->add_option("experiment", *from, "id or name")->required();
  rename->add_option("new_name", *to, "new name")->required();
  rename->callback([&run, &global, from, to] {
    run = [&global, from, to]() -> Status {
      KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(global));
      KEEL_ASSIGN_OR_RETURN(std::string id, ExperimentId(*t, *from));
      return t->Call("POST", "/api/2.0/mlflow/experiments/update", {},
                     "{\"experiment_id\": " + JsonStr(id) + ", \"new_name\": " + JsonStr(*to) + "}")
          .status();
    };
  });
}

void AddRunCommands(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* runs = app.add_subcommand("runs", "Search, show and compare runs");
  runs->require_subcommand(1);

  auto* list = runs->add_subcommand("list", "List runs of an experiment (MLflow filter grammar)");
  auto o = std::make_shared<RunListOptions>();
  list->add_option("-e,--experiment", o->experiment, "experiment id or name")->capture_default_str();
  list->add_option("-f,--filter", o->filter, "e.g. \"metrics.auc > 0.9 and params.lr = '0.05'\"");
  list->add_option("-o,--order-by", o->order_by, "e.g. \"metrics.auc DESC\" (repeatable)");
  list->add_option("-n,--max", o->max_results, "at most this many runs")->capture_default_str();
  list->add_flag("--all", o->all, "include deleted runs");
  list->callback([&run, &global, o] { run = [&global, o] { return ListRuns(global, *o); }; });

  auto* show = runs->add_subcommand("show", "Show one run: info, params, metrics, tags");
  auto id = std::make_shared<std::string>();
  show->add_option("run_id", *id, "run id")->required();
  show->callback([&run, &global, id] {
    run = [&global, id]() -> Status {
      KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(global));
      KEEL_ASSIGN_OR_RETURN(auto doc, t->Call("GET", "/api/2.0/mlflow/runs/get",
                                              {{"run_id", *id}}, ""));
      PrintRunDetails(doc.root()["run"]);
      return OkStatus();
    };
  });

  auto* compare = runs->add_subcommand("compare", "Compare runs side by side");
  auto ids = std::make_shared<std::vector<std::string>>();
  compare->add_option("run_ids", *ids, "two or more run ids")->required();
  compare->callback([&run, &global, ids] { run = [&global, ids] { return CompareRuns(global, *ids); }; });

  for (const char* verb : {"delete", "restore"}) {
    auto* sub = runs->add_subcommand(verb, std::string(verb) + " a run");
    auto rid = std::make_shared<std::string>();
    sub->add_option("run_id", *rid, "run id")->required();
    std::string path = std::string("/api/2.0/mlflow/runs/") + verb;
    sub->callback([&run, &global, rid, path] {
      run = [&global, rid, path]() -> Status {
        KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(global));
        return t->Call("POST", path, {}, "{\"run_id\": " + JsonStr(*rid) + "}").status();
      };
    });
  }
}

}  // namespace keel::cli
