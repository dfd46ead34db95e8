// The mlflow export format: an MLflow model directory as mlflow.xgboost's
// save_model writes it, so the stock client loads it with
// mlflow.xgboost.load_model or mlflow.pyfunc.load_model:
//
//   MLmodel            flavors python_function (loader_module mlflow.xgboost)
//                      and xgboost (data, model_class xgboost.core.Booster,
//                      model_format json|ubj, xgb_version), signature
//   model.json|ubj     the XGBoost model file, byte for byte as keel loaded it
//   conda.yaml, python_env.yaml, requirements.txt
//
// The signature's inputs are the model's encoded features (what a Booster
// takes), not keel's raw columns: MLflow runs no keel pipeline.
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "keel/core/json.h"
#include "keel/core/util.h"
#include "keel/model/codegen.h"
#include "keel/model/package.h"
#include "src/model/xgboost_doc.h"

namespace keel::model {
namespace fs = std::filesystem;
namespace {

// What the files name: MLflow 2.17.2 on CPython 3.11.2 (the versions of the
// stock client in ../shared/contracts), pip and build tools of that release.
constexpr const char* kMlflowVersion = "2.17.2";
constexpr const char* kPythonVersion = "3.11.2";

Result<std::string> ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path.string() + ": cannot open the model file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in.good() && !in.eof()) return DataLoss(path.string() + ": read failed");
  return std::move(ss).str();
}

// "1.7.4" from the document's "version": [1, 7, 4]; empty when absent.
std::string XgboostVersion(std::string_view bytes, bool ubj) {
  auto doc = ubj ? internal::ParseUbjsonDoc(bytes) : internal::ParseXgboostJsonDoc(bytes);
  if (!doc.ok()) return "";
  const internal::DocValue* v = doc->Find("version");
  if (v == nullptr || v->kind != internal::DocValue::Kind::kNumbers || v->numbers.size() != 3) {
    return "";
  }
  std::string out;
  for (double n : v->numbers) {
    if (n < 0 || n > 1000 || n != static_cast<int>(n)) return "";
    out += (out.empty() ? "" : ".") + std::to_string(static_cast<int>(n));
  }
  return out;
}

std::string SignatureInputs(const data::FeaturePipeline& p) {
  JsonWriter w;
  w.BeginArray();
  for (const std::string& name : p.feature_names()) {
    w.BeginObject();
    w.Key("type");
    w.String("double");
    w.Key("name");
    w.String(name);
    w.Key("required");
    w.Bool(true);
    w.EndObject();
  }
  w.EndArray();
  return std::move(w).Take();
}

std::string SignatureOutputs(const Model& m) {
  JsonWriter w;
  w.BeginArray();
  w.BeginObject();
  w.Key("type");
  w.String("tensor");
  w.Key("tensor-spec");
  w.BeginObject();
  w.Key("dtype");
  w.String("float32");
  w.Key("shape");
  w.BeginArray();
  w.Int(-1);
  if (m.num_outputs() > 1) w.Int(m.num_outputs());
  w.EndArray();
  w.EndObject();
  w.EndObject();
  w.EndArray();
  return std::move(w).Take();
}

}  // namespace

Result<std::vector<ExportedFile>> GenerateMlflow(const LoadedModel& model,
                                                 const ExportOptions& options) {
  const std::string& format = model.info.format;
  if (format != "xgboost-json" && format != "xgboost-ubj") {
    return InvalidArgument("the mlflow format exports XGBoost models; this model is " +
                           (format.empty() ? std::string("of an unknown format") : format) +
                           " (export it with --format c or cpp-header)");
  }
  const bool ubj = format == "xgboost-ubj";
  const fs::path file =
      model.info.flavor == "file" ? model.path : model.path / model.info.model_file;
  KEEL_ASSIGN_OR_RETURN(std::string bytes, ReadAll(file));
  const std::string data_file = ubj ? "model.ubj" : "model.json";
  const std::string xgb_version = XgboostVersion(bytes, ubj);
  const std::string xgb_req = xgb_version.empty() ? "xgboost" : "xgboost==" + xgb_version;

  YAML::Emitter y;
  y << YAML::BeginMap;
  y << YAML::Key << "flavors" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "python_function" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "data" << YAML::Value << data_file;
  y << YAML::Key << "env" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "conda" << YAML::Value << "conda.yaml";
  y << YAML::Key << "virtualenv" << YAML::Value << "python_env.yaml";
  y << YAML::EndMap;
  y << YAML::Key << "loader_module" << YAML::Value << "mlflow.xgboost";
  y << YAML::Key << "python_version" << YAML::Value << kPythonVersion;
  y << YAML::EndMap;
  y << YAML::Key << "xgboost" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "code" << YAML::Value << YAML::Null;
  y << YAML::Key << "data" << YAML::Value << data_file;
  y << YAML::Key << "model_class" << YAML::Value << "xgboost.core.Booster";
  y << YAML::Key << "model_format" << YAML::Value << (ubj ? "ubj" : "json");
  if (!xgb_version.empty()) y << YAML::Key << "xgb_version" << YAML::Value << xgb_version;
  y << YAML::EndMap;
  y << YAML::EndMap;
  y << YAML::Key << "mlflow_version" << YAML::Value << kMlflowVersion;
  y << YAML::Key << "model_size_bytes" << YAML::Value << bytes.size();
  y << YAML::Key << "model_uuid" << YAML::Value << RandomHex(16);
  if (!model.info.run_id.empty()) y << YAML::Key << "run_id" << YAML::Value << model.info.run_id;
  y << YAML::Key << "signature" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "inputs" << YAML::Value << YAML::SingleQuoted
    << SignatureInputs(model.pipeline);
  y << YAML::Key << "outputs" << YAML::Value << YAML::SingleQuoted << SignatureOutputs(model.model);
  y << YAML::Key << "params" << YAML::Value << YAML::Null;
  y << YAML::EndMap;
  y << YAML::Key << "utc_time_created" << YAML::Value << YAML::SingleQuoted << MlflowUtcNow();
  y << YAML::EndMap;
  if (!y.good()) return Internal(std::string("MLmodel: ") + y.GetLastError());

  std::vector<ExportedFile> files;
  files.push_back({"MLmodel", std::string(y.c_str()) + "\n"});
  files.push_back({data_file, std::move(bytes)});
  files.push_back({"conda.yaml", std::string("channels:\n- conda-forge\ndependencies:\n- python=") +
                                     kPythonVersion + "\n- pip<=23.0.1\n- pip:\n  - mlflow==" +
                                     kMlflowVersion + "\n  - " + xgb_req + "\nname: mlflow-env\n"});
  files.push_back({"python_env.yaml", std::string("python: ") + kPythonVersion +
                                          "\nbuild_dependencies:\n- pip==23.0.1\n- "
                                          "setuptools==66.1.1\n- wheel==0.38.4\ndependencies:\n- "
                                          "-r requirements.txt\n"});
  files.push_back(
      {"requirements.txt", std::string("mlflow==") + kMlflowVersion + "\n" + xgb_req + "\n"});
  (void)options;
  return files;
}

}  // namespace keel::model
