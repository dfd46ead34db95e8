// keel models ...: the registry, alias history and rollback.
#include <iostream>

#include "apps/keel/cli.h"

namespace keel::cli {
namespace {

std::string J(std::string_view s) {
  std::string out = "\"";
  AppendJsonEscaped(out, s);
  return out + "\"";
}

// 'value' with embedded quotes doubled, as the filter grammar expects.
std::string QuoteFilterString(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

Result<std::pair<std::string, std::string>> SplitAlias(const std::string& ref) {
  size_t at = ref.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == ref.size()) {
    return InvalidArgument("expected NAME@ALIAS, got '" + ref + "'");
  }
  return std::make_pair(ref.substr(0, at), ref.substr(at + 1));
}

Status ListModels(const GlobalOptions& g) {
  KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(g));
  std::vector<std::vector<std::string>> rows;
  std::string token;
  do {
    std::multimap<std::string, std::string> q{{"max_results", "1000"}};
    if (!token.empty()) q.emplace("page_token", token);
    KEEL_ASSIGN_OR_RETURN(auto doc, t->Call("GET", "/api/2.0/mlflow/registered-models/search", q, ""));
    simdjson::dom::array models;
    if (!doc.root()["registered_models"].get(models)) {
      for (auto m : models) {
        std::string latest, aliases;
        simdjson::dom::array versions;
        if (!m["latest_versions"].get(versions)) {
          int64_t best = 0;
          for (auto v : versions) best = std::max<int64_t>(best, std::stoll(Str(v, "version")));
          latest = best ? std::to_string(best) : "";
        }
        simdjson::dom::array al;
        if (!m["aliases"].get(al)) {
          for (auto a : al) {
            aliases += (aliases.empty() ? "" : " ") + Str(a, "alias") + "->" + Str(a, "version");
          }
        }
        int64_t updated = IntField(m, "last_updated_timestamp");
        rows.push_back({Str(m, "name"), latest, aliases, FormatTime(updated)});
      }
    }
    token = Str(doc.root(), "next_page_token");
  } while (!token.empty());
  PrintTable({"NAME", "LATEST", "ALIASES", "UPDATED"}, rows);
  return OkStatus();
}

Status ShowModel(const GlobalOptions& g, const std::string& name) {
  KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(g));
  KEEL_ASSIGN_OR_RETURN(auto model, t->Call("GET", "/api/2.0/mlflow/registered-models/get",
                                            {{"name", name}}, ""));
  auto m = model.root()["registered_model"];
  std::cout << "model: " << Str(m, "name") << "\n";
  std::string description = Str(m, "description");
  if (!description.empty()) std::cout << "description: " << description << "\n";
  simdjson::dom::array al;
  if (!m["aliases"].get(al)) {
    for (auto a : al) std::cout << "alias: " << Str(a, "alias") << " -> " << Str(a, "version") << "\n";
  }
  KEEL_ASSIGN_OR_RETURN(auto versions,
                        t->Call("GET", "/api/2.0/mlflow/model-versions/search",
                                {{"filter", "name = " + QuoteFilterString(name)},
                                 {"max_results", "1000"}},
                                ""));
  std::vector<std::vector<std::string>> rows;
  simdjson::dom::array vs;
  if (!versions.root()["model_versions"].get(vs)) {
    for (auto v : vs) {
      std::string aliases;
      simdjson::dom::array va;
      if (!v["aliases"].get(va)) {
        for (auto a : va) {
          std::string_view s;
          if (!a.get_string().get(s)) aliases += (aliases.empty() ? "" : ",") + std::string(s);
        }
      }
      int64_t created = IntField(v, "creation_timestamp");
      rows.push_back({Str(v, "version"), Str(v, "current_stage"), Str(v, "status"), aliases,
                      Str(v, "run_id"), FormatTime(created), Str(v, "source")});
    }
  }
  std::cout << "\n";
  PrintTable({"VERSION", "STAGE", "STATUS", "ALIASES", "RUN", "CREATED", "SOURCE"}, rows);
  return OkStatus();
}

struct RegisterOptions {
  std::string name;
  std::string local_path;
  std::string output_name;
  std::string source;
  std::string run_id;
  std::string path = "model";
  std::string description;
};

Status Register(const GlobalOptions& g, const RegisterOptions& o) {
  KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(g));
  if (!o.local_path.empty()) {
    if (!o.source.empty() || !o.run_id.empty()) {
      return InvalidArgument("give a local PATH, --source URI or --run RUN_ID, not several");
    }
    return RegisterLocalModel(*t, o.name, o.local_path, o.description, o.output_name);
  }
  std::string source = o.source;
  if (source.empty()) {
    if (o.run_id.empty()) return InvalidArgument("give a local PATH, --source URI or --run RUN_ID");
    KEEL_ASSIGN_OR_RETURN(auto run, t->Call("GET", "/api/2.0/mlflow/runs/get",
                                            {{"run_id", o.run_id}}, ""));
    source = Str(run.root()["run"]["info"], "artifact_uri") + "/" + o.path;
  }
  auto created = t->Call("POST", "/api/2.0/mlflow/registered-models/create", {},
                         "{\"name\": " + J(o.name) + "}");
  if (!created.ok() && created.status().message().find("already exists") == std::string::npos) {
    return created.status();
  }
  std::string body = "{\"name\": " + J(o.name) + ", \"source\": " + J(source) +
                     ", \"run_id\": " + J(o.run_id) + ", \"description\": " + J(o.description) + "}";
  KEEL_ASSIGN_OR_RETURN(auto v, t->Call("POST", "/api/2.0/mlflow/model-versions/create", {}, body));
  auto mv = v.root()["model_version"];
  std::cout << "registered " << o.name << " version " << Str(mv, "version") << " ("
            << Str(mv, "status") << ", " << source << ")\n";
  if (Str(mv, "status") == "FAILED_REGISTRATION") {
    return FailedPrecondition("registration failed: " + Str(mv, "status_message"));
  }
  return OkStatus();
}

Status PrintHistory(const GlobalOptions& g, const std::string& ref) {
  std::string name = ref, alias;
  if (size_t at = ref.rfind('@'); at != std::string::npos) {
    name = ref.substr(0, at);
    alias = ref.substr(at + 1);
  }
  KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(g));
  std::multimap<std::string, std::string> q{{"name", name}};
  if (!alias.empty()) q.emplace("alias", alias);
  KEEL_ASSIGN_OR_RETURN(auto doc, t->Call("GET", "/api/2.0/keel/registered-models/alias-history", q, ""));
  std::vector<std::vector<std::string>> rows;
  simdjson::dom::array changes;
  if (!doc.root()["changes"].get(changes)) {
    for (auto c : changes) {
      int64_t time = IntField(c, "time");
      std::string from = Str(c, "from_version"), to = Str(c, "to_version");
      rows.push_back({FormatTime(time), Str(c, "alias"), from.empty() ? "-" : from,
                      to.empty() ? "(deleted)" : to, Str(c, "actor"), Str(c, "reason")});
    }
  }
  PrintTable({"TIME", "ALIAS", "FROM", "TO", "BY", "REASON"}, rows);
  return OkStatus();
}

}  // namespace

void AddModelCommands(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* models = app.add_subcommand("models", "The model registry: versions, aliases, history, rollback");
  models->require_subcommand(1);

  auto* list = models->add_subcommand("list", "List registered models");
  list->callback([&run, &global] { run = [&global] { return ListModels(global); }; });

  auto* show = models->add_subcommand("show", "Show a model's versions and aliases");
  auto name = std::make_shared<std::string>();
  show->add_option("name", *name, "registered model")->required();
  show->callback([&run, &global, name] { run = [&global, name] { return ShowModel(global, *name); }; });

  auto* reg = models->add_subcommand("register", "Register a new version of a model");
  auto ro = std::make_shared<RegisterOptions>();
  reg->add_option("name", ro->name, "registered model name")->required();
  reg->add_option("path", ro->local_path,
                  "local MLflow model directory or model file (XGBoost .json/.ubj, LightGBM .txt)");
  reg->add_option("--output-name", ro->output_name, "prediction field name for a bare model file");
  reg->add_option("--source", ro->source, "model URI, e.g. mlflow-artifacts:/1/<run>/artifacts/model");
  reg->add_option("--run", ro->run_id, "run whose artifacts hold the model");
  reg->add_option("--path", ro->path, "model folder inside the run's artifacts")->capture_default_str();
  reg->add_option("--description", ro->description, "version description");
  reg->callback([&run, &global, ro] { run = [&global, ro] { return Register(global, *ro); }; });

  auto* alias = models->add_subcommand("alias", "Point NAME@ALIAS at a version (recorded in the history)");
  auto ref = std::make_shared<std::string>();
  auto version = std::make_shared<std::string>();
  auto reason = std::make_shared<std::string>();
  alias->add_option("ref", *ref, "NAME@ALIAS")->required();
  alias->add_option("version", *version, "version number")->required();
  alias->add_option("--reason", *reason, "why (kept in the history)");
  alias->callback([&run, &global, ref, version, reason] {
    run = [&global, ref, version, reason]() -> Status {
      KEEL_ASSIGN_OR_RETURN(auto na, SplitAlias(*ref));
      KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(global));
      KEEL_RETURN_IF_ERROR(t->Call("POST", "/api/2.0/mlflow/registered-models/alias", {},
                                   "{\"name\": " + J(na.first) + ", \"alias\": " + J(na.second) +
                                       ", \"version\": " + J(*version) + ", \"reason\": " +
                                       J(*reason) + "}")
                               .status());
      std::cout << na.first << "@" << na.second << " -> version " << *version << "\n";
      return OkStatus();
    };
  });

  auto* unalias = models->add_subcommand("delete-alias", "Remove NAME@ALIAS");
  auto uref = std::make_shared<std::string>();
  unalias->add_option("ref", *uref, "NAME@ALIAS")->required();
  unalias->callback([&run, &global, uref] {
    run = [&global, uref]() -> Status {
      KEEL_ASSIGN_OR_RETURN(auto na, SplitAlias(*uref));
      KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(global));
      return t->Call("DELETE", "/api/2.0/mlflow/registered-models/alias", {},
                     "{\"name\": " + J(na.first) + ", \"alias\": " + J(na.second) + "}")
          .status();
    };
  });

  auto* history = models->add_subcommand("history", "Every alias change of a model: who, when, from, to, why");
  auto href = std::make_shared<std::string>();
  history->add_option("ref", *href, "NAME or NAME@ALIAS")->required();
  history->callback([&run, &global, href] { run = [&global, href] { return PrintHistory(global, *href); }; });

  auto* rollback = models->add_subcommand("rollback", "Point NAME@ALIAS back to its previous version");
  auto rref = std::make_shared<std::string>();
  auto rreason = std::make_shared<std::string>();
  rollback->add_option("ref", *rref, "NAME@ALIAS")->required();
  rollback->add_option("--reason", *rreason, "why (kept in the history)");
  rollback->callback([&run, &global, rref, rreason] {
    run = [&global, rref, rreason]() -> Status {
      KEEL_ASSIGN_OR_RETURN(auto na, SplitAlias(*rref));
      KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(global));
      KEEL_ASSIGN_OR_RETURN(auto doc, t->Call("POST", "/api/2.0/keel/registered-models/rollback", {},
                                              "{\"name\": " + J(na.first) + ", \"alias\": " +
                                                  J(na.second) + ", \"reason\": " + J(*rreason) + "}"));
      auto c = doc.root()["change"];
      std::string from = Str(c, "from_version");
      std::cout << na.first << "@" << na.second << ": " << (from.empty() ? "-" : from) << " -> "
                << Str(c, "to_version") << "\n";
      return OkStatus();
    };
  });
}

}  // namespace keel::cli
