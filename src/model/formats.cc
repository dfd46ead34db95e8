#include "keel/model/formats.h"

#include <sys/stat.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace keel::model {
namespace {

std::string_view TrimLeft(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
  return s.substr(i);
}

bool SniffXgboostJson(std::string_view head, std::string_view filename) {
  head = TrimLeft(head);
  return !head.empty() && head[0] == '{' && head.find("\"learner\"") != std::string_view::npos;
}
bool SniffXgboostUbjson(std::string_view head, std::string_view filename) {
  // UBJSON object start, then the "learner" key with a length prefix.
  return head.size() > 2 && head[0] == '{' && head.find("learner") != std::string_view::npos &&
         head.find("\"learner\"") == std::string_view::npos;
}
bool SniffLightgbmText(std::string_view head, std::string_view filename) {
  head = TrimLeft(head);
  return head.rfind("tree\n", 0) == 0 || head.rfind("tree\r\n", 0) == 0;
}
bool SniffKeelLinear(std::string_view head, std::string_view filename) {
  head = TrimLeft(head);
  return !head.empty() && head[0] == '{' && head.find("\"keel_linear\"") != std::string_view::npos;
}

}  // namespace

const std::vector<ModelFormat>& ModelFormats() {
  static const std::vector<ModelFormat> formats = {
      {"xgboost-json", "XGBoost JSON model (xgboost >= 1.0 save_model *.json)", SniffXgboostJson,
       ImportXgboostJson},
      {"xgboost-ubj", "XGBoost UBJSON model (xgboost >= 1.6 save_model *.ubj)", SniffXgboostUbjson,
       ImportXgboostUbjson},
      {"lightgbm-text", "LightGBM text model (save_model *.txt)", SniffLightgbmText,
       ImportLightgbmText},
      {"keel-linear", "keel linear/logistic model (JSON)", SniffKeelLinear, ImportKeelLinear},
  };
  return formats;
}

const ModelFormat* FindModelFormat(std::string_view name) {
  for (const auto& f : ModelFormats()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

Result<Model> ImportModel(std::string_view bytes, std::string_view format,
                          std::string_view filename, const BuilderLimits& limits) {
  if (!format.empty()) {
    const ModelFormat* f = FindModelFormat(format);
    if (f == nullptr) {
      std::string known;
      for (const auto& g : ModelFormats())
        known += (known.empty() ? "" : ", ") + std::string(g.name);
      return InvalidArgument("unknown model format '" + std::string(format) + "' (known: " + known +
                             ")");
    }
    return f->import(bytes, limits);
  }
  std::string_view head = bytes.substr(0, 4096);
  for (const auto& f : ModelFormats()) {
    if (f.sniff(head, filename)) return f.import(bytes, limits);
  }
  return InvalidArgument(
      "not a model file keel can read (expected XGBoost JSON/UBJSON, LightGBM text or "
      "keel-linear)");
}

Result<Model> LoadModelFile(const std::string& path, std::string_view format,
                            const BuilderLimits& limits, size_t max_bytes) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return NotFound(path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + ": not a regular file");
  if (static_cast<size_t>(st.st_size) > max_bytes) {
    return ResourceExhausted(path + ": model file is " + std::to_string(st.st_size) +
                             " bytes, above the limit of " + std::to_string(max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot open");
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (in.gcount() != static_cast<std::streamsize>(bytes.size())) {
    return DataLoss(path + ": short read");
  }
  auto m = ImportModel(bytes, format, path, limits);
  if (!m.ok()) return m.status().WithContext(path);
  return m;
}

}  // namespace keel::model
