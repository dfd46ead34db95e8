// File: keel/model/package.h
//
// Model packages: an MLflow model directory that keel can load, score and
// serve. keel writes
//
//   model/
//     MLmodel                 flavors: keel (+ xgboost where it applies, so the
//                             stock mlflow.xgboost.load_model reads it), signature,
//                             input example info
//     model.json | model.txt  the model file (XGBoost JSON, LightGBM text, keel-linear)
//     keel/pipeline.json      raw record -> model input vector (data::FeaturePipeline)
//     keel/profile.json       reference profile of the training data
//     input_example.json      one raw record, pandas "split" orient
//
// and reads these plus directories logged by mlflow.xgboost / mlflow.lightgbm
// (no keel flavor: the pipeline is the identity over the model's features),
// and bare model files.
//
//   KEEL_ASSIGN_OR_RETURN(auto m,
//   keel::model::LoadModelPackage("keel-data/artifacts/1/abc/artifacts/model")); std::vector<float>
//   x(m->pipeline.num_features()); KEEL_RETURN_IF_ERROR(m->pipeline.EncodeJsonObject(R"({"state":
//   "KS", ...})", x.data())); float p;  m->predictor.PredictRow(x.data(), &p);
//
// A LoadedModel is immutable once loaded; share it across threads freely.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "keel/core/result.h"
#include "keel/data/pipeline.h"
#include "keel/model/model.h"
#include "keel/model/predictor.h"

namespace keel::model {

// What the keel flavor records about a model.
struct PackageInfo {
  std::string flavor;         // the flavor the model was loaded from: keel, xgboost, lightgbm, file
  std::string format;         // keel model format name (formats.h)
  std::string model_file;     // relative to the package directory
  std::string pipeline_file;  // relative; empty: identity over the model's features
  std::string profile_file;   // relative; may be empty
  std::string input_example_file;          // relative; may be empty
  std::string output_name = "prediction";  // the answer's field name when serving
  std::string task;                        // binary, multiclass, regression, ranking
  std::vector<std::string> classes;        // class labels by model output index (classification)
  std::string keel_version;
  std::string run_id;
};

struct LoadedModel {
  Model model;
  Predictor predictor;
  data::FeaturePipeline pipeline;
  PackageInfo info;
  std::filesystem::path path;  // the package directory (or the bare file)
};

// True when `path` is a model keel can load: a regular file, or a directory
// whose MLmodel names the keel, xgboost or lightgbm flavor. False for other
// flavors (sklearn, pyfunc, ...) and for paths that do not exist.
bool IsKeelLoadable(const std::filesystem::path& path);

// Loads a package directory (with MLmodel) or a bare model file.
Result<std::shared_ptr<const LoadedModel>> LoadModelPackage(const std::filesystem::path& path);

// Scores the package's input example (when it has one) and checks the output
// is finite: what registration requires before a version becomes READY.
Status CheckLoadedModel(const LoadedModel& model);

struct PackageContents {
  std::string model_bytes;         // the model file's contents
  std::string pipeline_json;       // data::FeaturePipeline::ToJson(); empty: identity
  std::string profile_json;        // optional
  std::string reference_bytes;     // monitor::ReferenceProfile::Serialize(); optional
  std::string input_example_json;  // {"columns": [...], "data": [[...]]}; optional
  std::string signature_inputs;    // MLflow column-spec JSON; optional
  std::string signature_outputs;
  PackageInfo info;             // format, output_name, task, classes, run_id
  std::string xgboost_version;  // set to add the xgboost flavor (XGBoost JSON models)
};

// Writes a package into `dir`, which must not exist or be empty. Files are
// written to a sibling temporary directory and renamed into place, so a
// crash never leaves a half-written package under `dir`.
Status WriteModelPackage(const std::filesystem::path& dir, const PackageContents& contents);

// The contents of a package keel wrote (keel flavor), so that a derived
// model (e.g. one updated by continued training) can be written with the
// same pipeline, profiles, input example and signature. FailedPrecondition
// for directories without the keel flavor and for bare files.
Result<PackageContents> ReadModelPackage(const std::filesystem::path& dir);

// The current UTC time as MLflow writes an MLmodel's utc_time_created
// ("2024-07-01 12:00:00.000000").
std::string MlflowUtcNow();

}  // namespace keel::model
