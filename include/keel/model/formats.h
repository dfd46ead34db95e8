// File: keel/model/formats.h
//
// Model file formats: an open table of importers. Each importer reads bytes
// and talks only to a ModelBuilder. Adding a format means one new file in
// src/model/ and one row in src/model/formats.cc (see docs/extending.md).
//
//   KEEL_ASSIGN_OR_RETURN(Model m, LoadModelFile("model.json"));         // sniffed
//   KEEL_ASSIGN_OR_RETURN(Model m, ImportModel(bytes, "lightgbm-text"));  // by name
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "keel/core/result.h"
#include "keel/core/status.h"
#include "keel/model/builder.h"
#include "keel/model/model.h"

namespace keel::model {

struct ModelFormat {
  std::string_view name;  // "xgboost-json", "xgboost-ubj", "lightgbm-text", "keel-linear"
  std::string_view description;
  // True when `head` (the first bytes of the file) and the file name look
  // like this format. Cheap; never parses the whole file.
  bool (*sniff)(std::string_view head, std::string_view filename);
  // Parses `bytes` completely and feeds `options` to a builder; returns the
  // model or a clear error naming what is wrong and where.
  Result<Model> (*import)(std::string_view bytes, const BuilderLimits& limits);
};

// All known formats, in sniffing order.
const std::vector<ModelFormat>& ModelFormats();
const ModelFormat* FindModelFormat(std::string_view name);

// Imports `bytes` with the named format, or the first format whose sniff
// accepts them when `format` is empty.
Result<Model> ImportModel(std::string_view bytes, std::string_view format = {},
                          std::string_view filename = {}, const BuilderLimits& limits = {});
// Reads a file (refusing files above max_bytes) and imports it.
Result<Model> LoadModelFile(const std::string& path, std::string_view format = {},
                            const BuilderLimits& limits = {}, size_t max_bytes = size_t{2} << 30);

// The importers (each in its own file under src/model/).
Result<Model> ImportXgboostJson(std::string_view bytes, const BuilderLimits& limits);
Result<Model> ImportXgboostUbjson(std::string_view bytes, const BuilderLimits& limits);
Result<Model> ImportLightgbmText(std::string_view bytes, const BuilderLimits& limits);
Result<Model> ImportKeelLinear(std::string_view bytes, const BuilderLimits& limits);

}  // namespace keel::model
