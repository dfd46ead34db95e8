#include "keel/model/package.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "keel/core/util.h"
#include "keel/model/formats.h"

namespace keel::model {
namespace fs = std::filesystem;
namespace {

constexpr size_t kMaxMlmodel = size_t{1} << 20;    // MLmodel
constexpr size_t kMaxExample = size_t{1} << 20;    // input example
constexpr size_t kMaxSideFile = size_t{64} << 20;  // pipeline, profile
constexpr int kMaxExampleDepth = 16;               // JSON nesting in an input example

Result<std::string> ReadFile(const fs::path& path, size_t max_bytes) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return NotFound(path.string() + ": " + ec.message());
  if (size > max_bytes) {
    return ResourceExhausted(path.string() + ": " + std::to_string(size) +
                             " bytes, above the limit of " + std::to_string(max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path.string() + ": cannot open");
  std::string bytes(size, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (static_cast<size_t>(in.gcount()) != size) return DataLoss(path.string() + ": short read");
  return bytes;
}

Status WriteFile(const fs::path& path, std::string_view bytes) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) return Internal(path.parent_path().string() + ": " + ec.message());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.flush();
  if (!out) return Internal(path.string() + ": write failed");
  return OkStatus();
}

// A relative path inside the package: no absolute paths, no "..", and no
// symlink that resolves outside the package directory.
Result<fs::path> InsidePackage(const fs::path& dir, const std::string& relative,
                               const std::string& field) {
  fs::path rel(relative);
  if (relative.empty() || rel.is_absolute()) {
    return InvalidArgument("MLmodel: " + field + " must be a relative path, got '" + relative +
                           "'");
  }
  for (const auto& part : rel) {
    if (part == "..") {
      return InvalidArgument("MLmodel: " + field + " leaves the model directory: '" + relative +
                             "'");
    }
  }
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(dir, ec);
  const fs::path full = fs::weakly_canonical(dir / rel, ec);
  if (ec || full.string().rfind(root.string() + "/", 0) != 0) {
    return InvalidArgument("MLmodel: " + field + " resolves outside the model directory: '" +
                           relative + "'");
  }
  return dir / rel;
}

// Deepest nesting of [ and { outside strings.
int JsonDepth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

std::string YamlString(const YAML::Node& node, const char* key, const std::string& fallback = "") {
  const YAML::Node v = node[key];
  if (!v || !v.IsScalar()) return fallback;
  return v.as<std::string>();
}

const char* TaskFromModel(Task t) { return TaskName(t); }

Result<std::string> FormatFromFlavor(const std::string& bytes, const std::string& filename) {
  // The xgboost flavor stores JSON, UBJSON or the legacy binary format, by
  // model_format / extension; keel reads the first two.
  std::string_view head(bytes.data(), std::min<size_t>(bytes.size(), 4096));
  for (const auto& f : ModelFormats()) {
    if (f.sniff(head, filename)) return std::string(f.name);
  }
  return InvalidArgument(filename +
                         ": not an XGBoost JSON/UBJSON or LightGBM text model (the legacy binary "
                         "XGBoost format is not supported: save the model as .json or .ubj)");
}

Result<std::vector<std::string>> ExampleRecordsUnchecked(const std::string& text);

// The rows of an input example ("split" or "records" orient) as JSON objects.
Result<std::vector<std::string>> ExampleRecords(const std::string& text) {
  if (JsonDepth(text) > kMaxExampleDepth) {
    return InvalidArgument("input example nests deeper than " + std::to_string(kMaxExampleDepth));
  }
  try {
    return ExampleRecordsUnchecked(text);
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(std::string("input example: ") + e.what());
  }
}

Result<std::vector<std::string>> ExampleRecordsUnchecked(const std::string& text) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) return InvalidArgument("input example is not valid JSON");
  std::vector<std::string> rows;
  if (doc.is_object() && doc.contains("dataframe_split")) doc = doc["dataframe_split"];
  if (doc.is_object() && doc.contains("columns") && doc.contains("data")) {
    const auto& cols = doc["columns"];
    if (!cols.is_array() || !doc["data"].is_array()) {
      return InvalidArgument("input example: columns and data must be arrays");
    }
    for (const auto& c : cols) {
      if (!c.is_string()) return InvalidArgument("input example: column names must be strings");
    }
    for (const auto& row : doc["data"]) {
      if (!row.is_array() || row.size() != cols.size()) {
        return InvalidArgument("input example: a row has " + std::to_string(row.size()) +
                               " values for " + std::to_string(cols.size()) + " columns");
      }
      nlohmann::json obj = nlohmann::json::object();
      for (size_t i = 0; i < cols.size(); ++i) obj[cols[i].get<std::string>()] = row[i];
      rows.push_back(obj.dump());
    }
  } else if (doc.is_array()) {
    for (const auto& r : doc) {
      if (!r.is_object()) return InvalidArgument("input example: records must be objects");
      rows.push_back(r.dump());
    }
  } else if (doc.is_object()) {
    rows.push_back(doc.dump());
  } else {
    return InvalidArgument("input example: expected split orient, records or one object");
  }
  return rows;
}

Result<data::FeaturePipeline> IdentityPipeline(const Model& m) {
  std::vector<std::string> names = m.feature_names;
  if (names.empty()) {
    for (int32_t i = 0; i < m.num_features; ++i) names.push_back("f" + std::to_string(i));
  }
  return data::FeaturePipeline::Identity(names);
}

}  // namespace

bool IsKeelLoadable(const fs::path& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    // A bare file is keel's when one of its formats recognises the head.
    std::ifstream in(path, std::ios::binary);
    std::string head(4096, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<size_t>(in.gcount()));
    for (const auto& f : ModelFormats()) {
      if (f.sniff(head, path.filename().string())) return true;
    }
    return false;
  }
  if (!fs::is_regular_file(path / "MLmodel", ec)) return false;
  auto text = ReadFile(path / "MLmodel", kMaxMlmodel);
  if (!text.ok()) return false;
  try {
    YAML::Node root = YAML::Load(*text);
    const YAML::Node flavors = root["flavors"];
    if (!flavors || !flavors.IsMap()) return false;
    return flavors["keel"] || flavors["xgboost"] || flavors["lightgbm"];
  } catch (const YAML::Exception&) {
    return true;  // broken MLmodel: loading reports the error
  }
}

namespace {

// The keel flavor's fields of an MLmodel (may throw YAML::Exception).
void ReadKeelFlavor(const YAML::Node& k, PackageInfo& info) {
  info.flavor = "keel";
  info.format = YamlString(k, "format");
  info.model_file = YamlString(k, "model");
  info.pipeline_file = YamlString(k, "pipeline");
  info.profile_file = YamlString(k, "profile");
  info.output_name = YamlString(k, "output_name", "prediction");
  info.task = YamlString(k, "task");
  info.keel_version = YamlString(k, "keel_version");
  if (const YAML::Node c = k["classes"]; c && c.IsSequence()) {
    for (const auto& v : c) info.classes.push_back(v.as<std::string>());
  }
}

}  // namespace

Result<std::shared_ptr<const LoadedModel>> LoadModelPackage(const fs::path& path) {
  std::error_code ec;
  PackageInfo info;
  fs::path model_path;
  std::string pipeline_path_rel;
  if (fs::is_regular_file(path, ec)) {
    info.flavor = "file";
    model_path = path;
  } else if (fs::is_directory(path, ec)) {
    const fs::path mlmodel_path = path / "MLmodel";
    if (!fs::is_regular_file(mlmodel_path, ec)) {
      return InvalidArgument(path.string() + ": a model directory needs an MLmodel file");
    }
    KEEL_ASSIGN_OR_RETURN(std::string mlmodel_text, ReadFile(mlmodel_path, kMaxMlmodel));
    YAML::Node root;
    try {
      root = YAML::Load(mlmodel_text);
    } catch (const YAML::Exception& e) {
      return InvalidArgument(mlmodel_path.string() + ": line " + std::to_string(e.mark.line + 1) +
                             ": " + e.msg);
    }
    if (!root.IsMap() || !root["flavors"] || !root["flavors"].IsMap()) {
      return InvalidArgument(mlmodel_path.string() + ": no flavors section");
    }
    const YAML::Node flavors = root["flavors"];
    info.run_id = YamlString(root, "run_id");
    try {
      if (const YAML::Node k = flavors["keel"]; k && k.IsMap()) {
        ReadKeelFlavor(k, info);
      } else if (const YAML::Node x = flavors["xgboost"]; x && x.IsMap()) {
        info.flavor = "xgboost";
        info.model_file = YamlString(x, "data", "model.xgb");
      } else if (const YAML::Node l = flavors["lightgbm"]; l && l.IsMap()) {
        info.flavor = "lightgbm";
        info.model_file = YamlString(l, "data", "model.lgb");
      } else {
        std::string names;
        for (const auto& f : flavors)
          names += (names.empty() ? "" : ", ") + f.first.as<std::string>();
        return InvalidArgument(mlmodel_path.string() + ": flavors [" + names +
                               "]; keel loads the keel, xgboost and lightgbm flavors");
      }
      if (const YAML::Node ex = root["saved_input_example_info"]; ex && ex.IsMap()) {
        info.input_example_file = YamlString(ex, "artifact_path");
      }
    } catch (const YAML::Exception& e) {
      return InvalidArgument(mlmodel_path.string() + ": " + e.msg);
    }
    KEEL_ASSIGN_OR_RETURN(model_path, InsidePackage(path, info.model_file, "model file"));
  } else {
    return NotFound(path.string() + ": no such model file or directory");
  }

  KEEL_ASSIGN_OR_RETURN(std::string bytes, ReadFile(model_path, size_t{2} << 30));
  if (info.format.empty()) {
    KEEL_ASSIGN_OR_RETURN(info.format, FormatFromFlavor(bytes, model_path.filename().string()));
  }
  auto model = ImportModel(bytes, info.format, model_path.string());
  if (!model.ok()) return model.status().WithContext(model_path.string());
  KEEL_ASSIGN_OR_RETURN(Predictor predictor, Predictor::Compile(*model));
  if (info.task.empty()) info.task = TaskFromModel(model->task);
  if (info.model_file.empty()) info.model_file = model_path.filename().string();

  Result<data::FeaturePipeline> pipeline = InvalidArgument("no pipeline");
  if (!info.pipeline_file.empty()) {
    KEEL_ASSIGN_OR_RETURN(fs::path p, InsidePackage(path, info.pipeline_file, "pipeline"));
    KEEL_ASSIGN_OR_RETURN(std::string text, ReadFile(p, kMaxSideFile));
    pipeline = data::FeaturePipeline::FromJson(text);
    if (!pipeline.ok()) return pipeline.status().WithContext(p.string());
  } else {
    pipeline = IdentityPipeline(*model);
    if (!pipeline.ok()) return pipeline.status();
  }
  if (static_cast<int32_t>(pipeline->num_features()) != model->num_features) {
    return InvalidArgument(path.string() + ": the feature pipeline makes " +
                           std::to_string(pipeline->num_features()) +
                           " features but the model takes " + std::to_string(model->num_features));
  }
  return std::make_shared<const LoadedModel>(
      LoadedModel{std::move(model).value(), std::move(predictor), std::move(pipeline).value(),
                  std::move(info), path});
}

Status CheckLoadedModel(const LoadedModel& m) {
  if (m.info.input_example_file.empty()) return OkStatus();
  KEEL_ASSIGN_OR_RETURN(fs::path p,
                        InsidePackage(m.path, m.info.input_example_file, "input example"));
  KEEL_ASSIGN_OR_RETURN(std::string text, ReadFile(p, kMaxExample));
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> rows, ExampleRecords(text));
  std::vector<float> x(static_cast<size_t>(m.pipeline.num_features()));
  std::vector<float> out(static_cast<size_t>(m.predictor.num_outputs()));
  for (size_t i = 0; i < rows.size(); ++i) {
    Status s = m.pipeline.EncodeJsonObject(rows[i], x.data());
    if (!s.ok()) return s.WithContext("input example row " + std::to_string(i));
    m.predictor.PredictRow(x.data(), out.data());
    for (float v : out) {
      if (!std::isfinite(v)) {
        return InvalidArgument("input example row " + std::to_string(i) +
                               ": the model's output is not finite");
      }
    }
  }
  return OkStatus();
}

Result<PackageContents> ReadModelPackage(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return FailedPrecondition(dir.string() + ": not a model package directory");
  }
  const fs::path mlmodel_path = dir / "MLmodel";
  if (!fs::is_regular_file(mlmodel_path, ec)) {
    return FailedPrecondition(dir.string() + ": no MLmodel file (not a model package)");
  }
  KEEL_ASSIGN_OR_RETURN(std::string text, ReadFile(mlmodel_path, kMaxMlmodel));
  PackageContents c;
  try {
    const YAML::Node root = YAML::Load(text);
    const YAML::Node flavors = root.IsMap() ? root["flavors"] : YAML::Node();
    const YAML::Node k = flavors && flavors.IsMap() ? flavors["keel"] : YAML::Node();
    if (!k || !k.IsMap()) {
      return FailedPrecondition(mlmodel_path.string() + ": no keel flavor");
    }
    PackageInfo& info = c.info;
    ReadKeelFlavor(k, info);
    info.run_id = YamlString(root, "run_id");
    const std::string reference = YamlString(k, "reference");
    if (const YAML::Node x = flavors["xgboost"]; x && x.IsMap()) {
      c.xgboost_version = YamlString(x, "xgb_version");
    }
    if (const YAML::Node sig = root["signature"]; sig && sig.IsMap()) {
      c.signature_inputs = YamlString(sig, "inputs");
      c.signature_outputs = YamlString(sig, "outputs");
    }
    std::string example;
    if (const YAML::Node ex = root["saved_input_example_info"]; ex && ex.IsMap()) {
      example = YamlString(ex, "artifact_path");
    }
    auto side = [&](const std::string& rel, const char* what, size_t max,
                    std::string* out) -> Status {
      if (rel.empty()) return OkStatus();
      KEEL_ASSIGN_OR_RETURN(fs::path p, InsidePackage(dir, rel, what));
      KEEL_ASSIGN_OR_RETURN(*out, ReadFile(p, max));
      return OkStatus();
    };
    KEEL_RETURN_IF_ERROR(side(info.model_file, "model file", size_t{2} << 30, &c.model_bytes));
    KEEL_RETURN_IF_ERROR(side(info.pipeline_file, "pipeline", kMaxSideFile, &c.pipeline_json));
    KEEL_RETURN_IF_ERROR(side(info.profile_file, "profile", kMaxSideFile, &c.profile_json));
    KEEL_RETURN_IF_ERROR(side(reference, "reference", size_t{1} << 30, &c.reference_bytes));
    KEEL_RETURN_IF_ERROR(side(example, "input example", kMaxSideFile, &c.input_example_json));
    info.input_example_file = example;
  } catch (const YAML::Exception& e) {
    return InvalidArgument(mlmodel_path.string() + ": " + e.msg);
  }
  return c;
}

Status WriteModelPackage(const fs::path& dir, const PackageContents& c) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
    return AlreadyExists(dir.string() + ": exists and is not empty");
  }
  const PackageInfo& info = c.info;
  if (info.format.empty() || FindModelFormat(info.format) == nullptr) {
    return InvalidArgument("unknown model format '" + info.format + "'");
  }
  const std::string model_file = info.format == "lightgbm-text" ? "model.txt"
                                 : info.format == "xgboost-ubj" ? "model.ubj"
                                                                : "model.json";
  fs::path tmp = dir.parent_path() / (".tmp-" + dir.filename().string() + "-" + RandomHex(6));
  fs::create_directories(tmp, ec);
  if (ec) return Internal(tmp.string() + ": " + ec.message());
  auto cleanup = [&] { fs::remove_all(tmp, ec); };

  YAML::Emitter y;
  y << YAML::BeginMap;
  y << YAML::Key << "artifact_path" << YAML::Value << dir.filename().string();
  y << YAML::Key << "flavors" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "keel" << YAML::Value << YAML::BeginMap;
  if (!info.classes.empty()) {
    y << YAML::Key << "classes" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& cl : info.classes) y << YAML::DoubleQuoted << cl;
    y << YAML::EndSeq;
  }
  y << YAML::Key << "format" << YAML::Value << info.format;
  y << YAML::Key << "keel_version" << YAML::Value << KEEL_VERSION;
  y << YAML::Key << "model" << YAML::Value << model_file;
  y << YAML::Key << "output_name" << YAML::Value << info.output_name;
  if (!c.pipeline_json.empty()) {
    y << YAML::Key << "pipeline" << YAML::Value << "keel/pipeline.json";
  }
  if (!c.profile_json.empty()) y << YAML::Key << "profile" << YAML::Value << "keel/profile.json";
  if (!c.reference_bytes.empty()) {
    y << YAML::Key << "reference" << YAML::Value << "keel/reference.keelref";
  }
  y << YAML::Key << "task" << YAML::Value << info.task;
  y << YAML::EndMap;
  if (!c.xgboost_version.empty() && info.format.rfind("xgboost", 0) == 0) {
    y << YAML::Key << "xgboost" << YAML::Value << YAML::BeginMap;
    y << YAML::Key << "code" << YAML::Value << YAML::Null;
    y << YAML::Key << "data" << YAML::Value << model_file;
    y << YAML::Key << "model_class" << YAML::Value << "xgboost.core.Booster";
    y << YAML::Key << "model_format" << YAML::Value
      << (info.format == "xgboost-ubj" ? "ubj" : "json");
    y << YAML::Key << "xgb_version" << YAML::Value << c.xgboost_version;
    y << YAML::EndMap;
  }
  if (info.format == "lightgbm-text") {
    // What mlflow.lightgbm.load_model reads: lightgbm.Booster(model_file=data).
    y << YAML::Key << "lightgbm" << YAML::Value << YAML::BeginMap;
    y << YAML::Key << "code" << YAML::Value << YAML::Null;
    y << YAML::Key << "data" << YAML::Value << model_file;
    y << YAML::Key << "model_class" << YAML::Value << "lightgbm.basic.Booster";
    y << YAML::EndMap;
  }
  y << YAML::EndMap;
  y << YAML::Key << "model_uuid" << YAML::Value << RandomHex(16);
  if (!info.run_id.empty()) y << YAML::Key << "run_id" << YAML::Value << info.run_id;
  if (!c.input_example_json.empty()) {
    y << YAML::Key << "saved_input_example_info" << YAML::Value << YAML::BeginMap;
    y << YAML::Key << "artifact_path" << YAML::Value << "input_example.json";
    y << YAML::Key << "pandas_orient" << YAML::Value << "split";
    y << YAML::Key << "type" << YAML::Value << "dataframe";
    y << YAML::EndMap;
  }
  if (!c.signature_inputs.empty()) {
    y << YAML::Key << "signature" << YAML::Value << YAML::BeginMap;
    y << YAML::Key << "inputs" << YAML::Value << YAML::SingleQuoted << c.signature_inputs;
    y << YAML::Key << "outputs" << YAML::Value << YAML::SingleQuoted << c.signature_outputs;
    y << YAML::Key << "params" << YAML::Value << YAML::Null;
    y << YAML::EndMap;
  }
  y << YAML::Key << "utc_time_created" << YAML::Value << YAML::SingleQuoted << MlflowUtcNow();
  y << YAML::EndMap;
  if (!y.good()) {
    cleanup();
    return Internal(std::string("MLmodel: ") + y.GetLastError());
  }

  Status s = WriteFile(tmp / "MLmodel", std::string(y.c_str()) + "\n");
  if (s.ok()) s = WriteFile(tmp / model_file, c.model_bytes);
  if (s.ok() && !c.pipeline_json.empty())
    s = WriteFile(tmp / "keel/pipeline.json", c.pipeline_json);
  if (s.ok() && !c.profile_json.empty()) s = WriteFile(tmp / "keel/profile.json", c.profile_json);
  if (s.ok() && !c.reference_bytes.empty()) {
    s = WriteFile(tmp / "keel/reference.keelref", c.reference_bytes);
  }
  if (s.ok() && !c.input_example_json.empty()) {
    s = WriteFile(tmp / "input_example.json", c.input_example_json);
  }
  if (s.ok()) {
    fs::remove(dir, ec);  // an empty directory may be there
    fs::rename(tmp, dir, ec);
    if (ec) s = Internal(dir.string() + ": " + ec.message());
  }
  if (!s.ok()) cleanup();
  return s;
}

std::string MlflowUtcNow() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
      1000000;
  char out[64];
  std::snprintf(out, sizeof out, "%s.%06lld", buf, static_cast<long long>(micros));
  return out;
}

}  // namespace keel::model
