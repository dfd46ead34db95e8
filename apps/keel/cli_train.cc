// keel train: train a model from CSV, record it as a run and register it.
// The run is recorded through the REST API (embedded or remote), so a
// remote server sees exactly what the stock mlflow client would send.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <iostream>

#include "apps/keel/cli.h"
#include "keel/core/clock.h"
#include "keel/core/util.h"
#include "keel/model/formats.h"
#include "keel/model/package.h"
#include "keel/train/train.h"
#include "keel/train/xgboost_trainer.h"

namespace keel::cli {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kArtifactScheme = "mlflow-artifacts:";

std::atomic<bool> g_train_cancel{false};

void OnTrainInterrupt(int) {
  g_train_cancel.store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
}

// Status lines: rewritten in place on a terminal, throttled otherwise.
class StatusPrinter {
 public:
  StatusPrinter() : tty_(::isatty(STDERR_FILENO) != 0) {}
  ~StatusPrinter() { Done(); }
  void operator()(const std::string& line) {
    const auto now = std::chrono::steady_clock::now();
    const bool same_kind = line.substr(0, 6) == last_.substr(0, 6);
    if (same_kind && now - last_time_ < std::chrono::milliseconds(tty_ ? 100 : 5000)) return;
    last_ = line;
    last_time_ = now;
    if (tty_) {
      std::cerr << "\r\033[K" << line << std::flush;
      open_ = true;
    } else {
      std::cerr << line << "\n";
    }
  }
  void Done() {
    if (open_) std::cerr << "\r\033[K" << std::flush;
    open_ = false;
  }

 private:
  bool tty_;
  bool open_ = false;
  std::string last_;
  std::chrono::steady_clock::time_point last_time_{};
};

struct TrainCliOptions {
  train::TrainSpec spec;
  std::vector<std::string> params;
  std::vector<std::string> column_types;
  std::string experiment = "Default";
  std::string run_name;
  std::string register_name;
  std::string rerun;
};

Result<train::KeyValues> ParseKeyValues(const std::vector<std::string>& items, const char* flag) {
  train::KeyValues out;
  for (const auto& item : items) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgument(std::string(flag) + " " + item + ": expected KEY=VALUE");
    }
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

Status RunTrain(const GlobalOptions& g, TrainCliOptions o) {
  KEEL_ASSIGN_OR_RETURN(o.spec.params, ParseKeyValues(o.params, "--param"));
  KEEL_ASSIGN_OR_RETURN(o.spec.column_types, ParseKeyValues(o.column_types, "--column-type"));
  KEEL_ASSIGN_OR_RETURN(auto t, Transport::Make(g));
  auto recorder_ptr = MakeApiRecorder(*t);
  train::RunRecorder& recorder = *recorder_ptr;
  StatusPrinter printer;
  train::TrainProgress progress;
  progress.on_status = [&](const std::string& line) { printer(line); };
  progress.cancel = &g_train_cancel;
  std::signal(SIGINT, OnTrainInterrupt);
  train::RecordOptions ro;
  ro.experiment = o.experiment;
  ro.run_name = o.run_name;
  ro.register_name = o.register_name;
  const auto t0 = std::chrono::steady_clock::now();
  auto result = o.rerun.empty() ? train::TrainAndRecord(o.spec, progress, recorder, ro)
                                : train::Rerun(o.rerun, progress, recorder, ro);
  std::signal(SIGINT, SIG_DFL);
  printer.Done();
  if (!result.ok()) {
    if (g_train_cancel.load()) return Unavailable("training interrupted; the run is marked KILLED");
    return result.status();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  KEEL_ASSIGN_OR_RETURN(
      auto run, t->Call("GET", "/api/2.0/mlflow/runs/get", {{"run_id", result->run_id}}, ""));
  std::cout << "run      " << result->run_id << " (experiment "
            << Str(run.root()["run"]["info"], "experiment_id") << ", " << FormatDouble(secs)
            << " s)\n";
  simdjson::dom::array metrics;
  if (!run.root()["run"]["data"]["metrics"].get(metrics)) {
    std::string line;
    for (auto m : metrics) {
      const std::string key = Str(m, "key");
      if (key.rfind("valid_", 0) != 0) continue;
      line += (line.empty() ? "" : "  ") + key + " " + Str(m, "value");
    }
    if (!line.empty()) std::cout << "metrics  " << line << "\n";
  }
  std::cout << "model    " << result->model_uri << "\n";
  if (!result->version.empty()) {
    std::cout << "version  " << o.register_name << " " << result->version << " ("
              << result->version_status << ")\n";
  }
  return OkStatus();
}

}  // namespace

Status RegisterLocalModel(Transport& t, const std::string& name, const fs::path& path,
                          const std::string& description, const std::string& output_name) {
  std::error_code ec;
  fs::path dir = path;
  fs::path staged;
  auto cleanup = [&] {
    if (!staged.empty()) fs::remove_all(staged, ec);
  };
  if (fs::is_regular_file(path, ec)) {
    // A bare model file becomes a package with the keel flavor.
    KEEL_ASSIGN_OR_RETURN(model::Model m, model::LoadModelFile(path.string()));
    model::PackageContents c;
    std::ifstream in(path, std::ios::binary);
    std::ostringstream buf;
    buf << in.rdbuf();
    c.model_bytes = buf.str();
    c.info.format = m.source_format;
    c.info.task = model::TaskName(m.task);
    c.info.output_name = output_name.empty() ? "prediction" : output_name;
    // The libxgboost keel checks XGBoost models against (adds the xgboost flavor).
    if (c.info.format.rfind("xgboost", 0) == 0) c.xgboost_version = train::XgboostVersion();
    staged = fs::temp_directory_path() / ("keel-register-" + RandomHex(8));
    dir = staged / "model";
    Status s = model::WriteModelPackage(dir, c);
    if (!s.ok()) {
      cleanup();
      return s;
    }
  }
  auto loaded = model::LoadModelPackage(dir);
  Status s = loaded.ok() ? model::CheckLoadedModel(**loaded) : loaded.status();
  if (s.ok()) {
    const std::string rel = "registered-models/" + name + "/" + RandomHex(8) + "/model";
    s = UploadTree(t, dir, rel);
    if (s.ok()) {
      auto created = t.Call("POST", "/api/2.0/mlflow/registered-models/create", {},
                            "{\"name\": " + JsonQuote(name) + "}");
      if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) {
        s = created.status();
      }
    }
    if (s.ok()) {
      const std::string source = std::string(kArtifactScheme) + "/" + rel;
      auto v = t.Call("POST", "/api/2.0/mlflow/model-versions/create", {},
                      "{\"name\": " + JsonQuote(name) + ", \"source\": " + JsonQuote(source) +
                          ", \"description\": " + JsonQuote(description) + "}");
      if (!v.ok()) {
        s = v.status();
      } else {
        auto mv = v->root()["model_version"];
        std::cout << "registered " << name << " version " << Str(mv, "version") << " ("
                  << Str(mv, "status") << ", " << loaded.value()->info.format << ", " << source
                  << ")\n";
        if (Str(mv, "status") == "FAILED_REGISTRATION") {
          s = FailedPrecondition("registration failed: " + Str(mv, "status_message"));
        }
      }
    }
  }
  cleanup();
  return s;
}

void AddTrainCommand(CLI::App& app, GlobalOptions& global, Action& run) {
  auto* cmd = app.add_subcommand("train",
                                 "Train a model from CSV, log it as a run, optionally register it");
  auto o = std::make_shared<TrainCliOptions>();
  train::TrainSpec& s = o->spec;
  cmd->add_option("--data", s.data_path, "training CSV (header row)");
  cmd->add_option("--target", s.target, "target column");
  cmd->add_option("--model", s.model, "xgboost | xgboost-linear | linear | logistic")
      ->capture_default_str();
  cmd->add_option("--param", o->params, "model parameter KEY=VALUE (repeatable)");
  cmd->add_option("--validation", s.validation_path, "validation CSV (default: split --data)");
  cmd->add_option("--validation-fraction", s.validation_fraction, "share held out")
      ->capture_default_str();
  cmd->add_option("--seed", s.seed, "split and training seed")->capture_default_str();
  cmd->add_option("--task", s.task, "auto | binary | multiclass | regression")
      ->capture_default_str();
  cmd->add_option("--positive-class", s.positive_class, "binary: the target value that is 1");
  cmd->add_option("--categorical", s.categorical, "onehot | native")->capture_default_str();
  cmd->add_option("--column-type", o->column_types,
                  "override inference COLUMN=numeric|categorical|boolean (repeatable)");
  cmd->add_option("--drop", s.drop_columns, "columns to leave out (repeatable)");
  cmd->add_option("--early-stopping-rounds", s.early_stopping_rounds,
                  "stop after N rounds without validation improvement");
  cmd->add_option("--output-name", s.output_name,
                  "prediction field name (default <target>_probability or <target>)");
  cmd->add_flag("--snapshot-data", s.snapshot_data,
                "store a content-addressed copy of the data with the run");
  cmd->add_option("--experiment", o->experiment, "experiment name")->capture_default_str();
  cmd->add_option("--run-name", o->run_name, "run name");
  cmd->add_option("--register", o->register_name, "register the model under this name");
  cmd->add_option("--rerun", o->rerun, "train again exactly as RUN_ID did");
  cmd->callback([&run, &global, o] {
    run = [&global, o]() -> Status {
      if (o->rerun.empty() && (o->spec.data_path.empty() || o->spec.target.empty())) {
        return InvalidArgument("train needs --data and --target (or --rerun RUN_ID)");
      }
      return RunTrain(global, *o);
    };
  });
}

}  // namespace keel::cli
