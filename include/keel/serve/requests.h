// File: keel/serve/requests.h
//
// Request body decoders for the serving protocols: keel's /predict, MLflow's
// /invocations (dataframe_split, dataframe_records, instances, inputs, CSV)
// and the Open Inference Protocol V2 infer request. Each turns a body into a
// DecodedBatch: the rows encoded by the model's FeaturePipeline into the
// model's dense float input, plus (on request) each row's raw input as a
// JSON object for the prediction log. No sockets, no model: the server's
// routes call these, then the Predictor.
//
//   keel::serve::DecodeOptions opts;
//   opts.want_raw = log.Sample();
//   keel::serve::DecodedBatch batch;
//   KEEL_RETURN_IF_ERROR(keel::serve::DecodePredictBody(body, pipeline, opts, &batch));
//   predictor.PredictBatch(batch.features.data(), batch.rows, out.data());
//
// Column matching (all formats that name columns): by exact name against
// pipeline.input_columns(); unknown names are ignored (counted in
// DecodedBatch::ignored_columns) unless DecodeOptions::reject_unknown_columns;
// absent columns are missing values (data::EncodeStats::missing) unless
// DecodeOptions::require_all_columns. Positional
// rows (JSON arrays without column names, CSV without ...) must have exactly
// one value per input column, in input_columns() order. Value rules are the
// pipeline's (pipeline.h): NaN/Infinity are not JSON and are refused as
// malformed JSON; numbers out of float range become +-inf and are refused
// for numeric inputs.
//
// Errors are InvalidArgument whose message names the row (0-based) and the
// field, e.g. "row 3, field \"account_length\": expected a number, got \"abc\"",
// and ResourceExhausted for more than max_rows rows. A failed decode leaves
// *out in an unspecified state.
//
// Threads: the functions are reentrant; each keeps per-thread simdjson parsers.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "keel/core/result.h"
#include "keel/data/pipeline.h"

namespace keel::serve {

struct DecodeOptions {
  bool want_raw = false;                // fill DecodedBatch::raw_rows
  bool reject_unknown_columns = false;  // unknown column names are InvalidArgument
  // Every input column must be given (an absent field or column is
  // InvalidArgument naming it; JSON null still means a missing value).
  bool require_all_columns = false;
  size_t max_rows = 1u << 20;
};

struct DecodedBatch {
  size_t rows = 0;
  size_t num_features = 0;      // the pipeline's
  std::vector<float> features;  // rows * num_features, row-major
  // One compact JSON object per row ({"column": value, ...}) when want_raw.
  std::vector<std::string> raw_rows;
  data::EncodeStats stats;
  size_t ignored_columns = 0;
  // /predict only: the body was one JSON object (answer with one object).
  bool single_record = false;
};

// keel /predict: one JSON object (a record) or a JSON array of objects.
Status DecodePredictBody(std::string_view body, const data::FeaturePipeline& pipeline,
                         const DecodeOptions& options, DecodedBatch* out);

// MLflow /invocations body kinds, from the Content-Type header.
enum class InvocationsFormat { kJson, kCsv };

// MLflow's content-type rules: application/json -> kJson; text/csv and
// application/csv -> kCsv; a charset other than utf-8 (any case), any other
// parameter, or any other media type is an error whose message is MLflow's,
// and which the server answers with HTTP 415 (UNSUPPORTED_MEDIA_TYPE).
// Media types and parameter names are case-insensitive; an empty header is
// application/json.
Result<InvocationsFormat> InvocationsFormatOf(std::string_view content_type);

// MLflow /invocations. JSON: an object with exactly one of dataframe_split,
// dataframe_records, instances, inputs (plus optional "params", ignored);
// a top-level array, signature_name, zero or several of the keys are
// InvalidArgument with MLflow's wording. CSV: a header row, then records
// (data/csv.h quoting rules, the pipeline's missing markers).
//   dataframe_split: {"columns": [...], "data": [[...], ...], "index": [...]?};
//                    without "columns" rows are positional.
//   dataframe_records: [{...}, ...]
//   instances: [{...}, ...] (records), [[...], ...] (positional rows), or
//              [v, ...] (scalars, for a model with one input column)
//   inputs: {"col": [v, ...], ...} (columnar, equal lengths) or a list as
//           for instances
Status DecodeInvocations(InvocationsFormat format, std::string_view body,
                         const data::FeaturePipeline& pipeline, const DecodeOptions& options,
                         DecodedBatch* out);

// Open Inference Protocol V2 infer request.
struct V2Request {
  std::string id;                              // echoed in the response when given
  std::vector<std::string> requested_outputs;  // "outputs": [{"name": ...}], may be empty
};

// Accepts either
//  - one numeric tensor (any numeric datatype, e.g. FP32/FP64/INT64) of shape
//    [n, num_model_features] or [num_model_features] (one row): the model's
//    input vectors as they are, bypassing the pipeline (Triton FIL style); or
//  - one tensor per input column, each of shape [n] (or [n, 1]) with the
//    column's name: BYTES (strings) for categorical columns, numeric or BOOL
//    types otherwise, encoded through the pipeline.
// "data" may be flat or nested (row-major); its element count must equal the
// product of "shape". Errors name the tensor: "input \"state\": shape [2]
// does not match 3 data elements". Unknown tensor names (in the per-column
// form) are InvalidArgument.
Status DecodeV2Infer(std::string_view body, const data::FeaturePipeline& pipeline,
                     size_t num_model_features, const DecodeOptions& options, DecodedBatch* out,
                     V2Request* request);

}  // namespace keel::serve
