#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "keel/core/json.h"
#include "keel/core/util.h"
#include "keel/data/pipeline.h"
#include "keel/serve/requests.h"
#include "test_util.h"

namespace keel::serve {
namespace {

using data::EncodeStats;
using data::FeaturePipeline;

// state (one-hot KS, NY, OH), account_length (numeric), international_plan
// (one-hot no, yes): 6 features.
constexpr const char* kChurnPipeline =
    R"({"keel_pipeline":1,"encoding":"one_hot",)"
    R"("missing_markers":["","NA","N/A","NaN","nan","null","NULL","None"],)"
    R"("columns":[{"name":"state","type":"categorical","categories":["KS","NY","OH"]},)"
    R"({"name":"account_length","type":"numeric"},)"
    R"({"name":"international_plan","type":"categorical","categories":["no","yes"]}]})";

FeaturePipeline Churn(bool native = false) {
  std::string json = kChurnPipeline;
  if (native) json.replace(json.find("one_hot"), 7, "native");
  auto p = FeaturePipeline::FromJson(json);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return std::move(p).value();
}

// Equal as bits, so NaN == NaN.
bool SameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The rows EncodeJsonObject gives for these records, concatenated.
struct Expected {
  std::vector<float> features;
  EncodeStats stats;
};
Expected Encode(const FeaturePipeline& p, const std::vector<std::string>& records) {
  Expected e;
  e.features.assign(records.size() * p.num_features(), -7.0f);
  for (size_t r = 0; r < records.size(); ++r) {
    Status s = p.EncodeJsonObject(records[r], e.features.data() + r * p.num_features(), &e.stats);
    EXPECT_TRUE(s.ok()) << records[r] << ": " << s.ToString();
  }
  return e;
}

void ExpectBatch(const DecodedBatch& b, const Expected& e, size_t rows, const std::string& what) {
  EXPECT_EQ(b.rows, rows) << what;
  EXPECT_EQ(b.num_features, 6u) << what;
  EXPECT_TRUE(SameFloats(b.features, e.features)) << what;
  EXPECT_EQ(b.stats.missing, e.stats.missing) << what;
  EXPECT_EQ(b.stats.unknown, e.stats.unknown) << what;
}

const std::vector<std::string> kRecords = {
    R"({"state":"KS","account_length":128,"international_plan":"no"})",
    R"({"state":"OH","account_length":107.5,"international_plan":"yes"})",
    R"({"state":"ZZ","account_length":null,"international_plan":"NA"})"};

Status Invocations(std::string_view body, const FeaturePipeline& p, DecodedBatch* out,
                   DecodeOptions options = {}) {
  return DecodeInvocations(InvocationsFormat::kJson, body, p, options, out);
}

// ---- /predict ---------------------------------------------------------------------

TEST(PredictBodyTest, OneRecordAndList) {
  FeaturePipeline p = Churn();
  DecodedBatch b;
  ASSERT_OK(DecodePredictBody(kRecords[0], p, {}, &b));
  ExpectBatch(b, Encode(p, {kRecords[0]}), 1, "record");
  EXPECT_TRUE(b.single_record);
  EXPECT_TRUE(b.raw_rows.empty());

  const std::string list = "[" + kRecords[0] + "," + kRecords[1] + "," + kRecords[2] + "]";
  ASSERT_OK(DecodePredictBody(list, p, {}, &b));
  ExpectBatch(b, Encode(p, kRecords), 3, "list");
  EXPECT_FALSE(b.single_record);
  EXPECT_EQ(b.stats.unknown, 1u);  // ZZ
  EXPECT_EQ(b.stats.missing, 2u);  // null, "NA"

  ASSERT_OK(DecodePredictBody("[]", p, {}, &b));
  EXPECT_EQ(b.rows, 0u);
  EXPECT_TRUE(b.features.empty());
}

TEST(PredictBodyTest, NativeEncodingAndAbsentFields) {
  FeaturePipeline p = Churn(true);
  const std::vector<std::string> records = {R"({"account_length":"12.5","extra":[1,{"a":2}]})",
                                            R"({"international_plan":"yes","state":"NY"})"};
  DecodedBatch b;
  ASSERT_OK(DecodePredictBody("[" + records[0] + "," + records[1] + "]", p, {}, &b));
  Expected e = Encode(p, records);
  EXPECT_EQ(b.num_features, 3u);
  EXPECT_TRUE(SameFloats(b.features, e.features));
  EXPECT_EQ(b.stats.missing, e.stats.missing);
  EXPECT_EQ(b.ignored_columns, 1u);
}

TEST(PredictBodyTest, DuplicateKeysLastWins) {
  FeaturePipeline p = Churn();
  const std::string record = R"({"state":"KS","state":null,"account_length":1,"account_length":2})";
  DecodedBatch b;
  ASSERT_OK(DecodePredictBody(record, p, {}, &b));
  ExpectBatch(b, Encode(p, {record}), 1, record);
}

TEST(PredictBodyTest, RawRowsKeepFieldsAsGiven) {
  FeaturePipeline p = Churn();
  DecodeOptions o;
  o.want_raw = true;
  DecodedBatch b;
  const std::string body =
      R"([{"state":"K\"S\n\u00e9","account_length":1e2,"x":{"y":[true,null,-3]}},)"
      R"({"international_plan":"no","account_length":-0.5}])";
  ASSERT_OK(DecodePredictBody(body, p, o, &b));
  ASSERT_EQ(b.raw_rows.size(), 2u);
  EXPECT_EQ(b.raw_rows[0],
            "{\"state\":\"K\\\"S\\n\xC3\xA9\",\"account_length\":100.0,"
            "\"x\":{\"y\":[true,null,-3]}}");
  EXPECT_EQ(b.raw_rows[1], R"({"international_plan":"no","account_length":-0.5})");
  // Every raw row is valid JSON.
  for (const std::string& raw : b.raw_rows) EXPECT_TRUE(ParseJsonObject(raw).ok()) << raw;
  // Not asked: none.
  ASSERT_OK(DecodePredictBody(body, p, {}, &b));
  EXPECT_TRUE(b.raw_rows.empty());
}

TEST(PredictBodyTest, ErrorsNameRowAndField) {
  FeaturePipeline p = Churn();
  DecodedBatch b;
  const std::string bad = "[" + kRecords[0] + R"(,{"state":"KS","account_length":"abc"}])";
  Status s = DecodePredictBody(bad, p, {}, &b);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "row 1, field \"account_length\": \"abc\" is not a number");
  EXPECT_EQ(DecodePredictBody(R"({"account_length":true})", p, {}, &b).message(),
            "row 0, field \"account_length\": expected a number, got a boolean");
  EXPECT_EQ(DecodePredictBody(R"({"state":["KS"]})", p, {}, &b).message(),
            "row 0, field \"state\": expected a number, string, boolean or null");
  EXPECT_EQ(DecodePredictBody("[{}, 3]", p, {}, &b).message(),
            "row 1: expected a JSON object (a record), got a number");
  EXPECT_EQ(DecodePredictBody("\"KS\"", p, {}, &b).message(),
            "expected a JSON object (a record) or a list of records, got a string");
  // Beyond float range: refused for numeric inputs.
  EXPECT_EQ(DecodePredictBody(R"({"account_length":1e39})", p, {}, &b).message(),
            "row 0, field \"account_length\": 1e+39 is out of the float range");
  EXPECT_EQ(DecodePredictBody(R"({"account_length":"-1e300"})", p, {}, &b).message(),
            "row 0, field \"account_length\": \"-1e300\" is out of the float range");

  // Long values are cut in messages, never inside a UTF-8 sequence.
  std::string long_value;
  for (int i = 0; i < 40; ++i) long_value += "\xC3\xA9";
  s = DecodePredictBody(R"({"account_length":")" + long_value + R"("})", p, {}, &b);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(IsValidUtf8(s.message())) << s.message();
  s = DecodePredictBody(R"({")" + long_value + R"(":1})", p, DecodeOptions{false, true}, &b);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(IsValidUtf8(s.message())) << s.message();
  EXPECT_NE(s.message().find("...\""), std::string::npos) << s.message();

  // Not JSON.
  for (const char* body :
       {"", "{", R"({"account_length":NaN})", R"({"account_length":Infinity})",
        R"({"account_length":1e400})", "{\"state\":\"\xff\"}", "[1,]", R"({"a":1} {"b":2})"}) {
    Status st = DecodePredictBody(body, p, {}, &b);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << body;
  }
  EXPECT_EQ(DecodePredictBody("{", p, {}, &b).message().rfind("malformed JSON: ", 0), 0u);
  // Deep nesting.
  std::string deep = R"({"x":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_EQ(DecodePredictBody(deep, p, {}, &b).code(), StatusCode::kInvalidArgument);
  std::string ok_deep = R"({"x":)" + std::string(900, '[') + std::string(900, ']') + "}";
  DecodeOptions raw;
  raw.want_raw = true;
  ASSERT_OK(DecodePredictBody(ok_deep, p, raw, &b));
  EXPECT_EQ(b.raw_rows[0].size(), ok_deep.size());
}

TEST(PredictBodyTest, UnknownColumnsCountedOrRejected) {
  FeaturePipeline p = Churn();
  DecodedBatch b;
  const std::string body = R"([{"state":"KS","foo":1,"bar":2},{"foo":3}])";
  ASSERT_OK(DecodePredictBody(body, p, {}, &b));
  EXPECT_EQ(b.ignored_columns, 3u);
  DecodeOptions strict;
  strict.reject_unknown_columns = true;
  Status s = DecodePredictBody(body, p, strict, &b);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "row 0, field \"foo\": not an input of the model (inputs: state, account_length, "
            "international_plan)");
}

TEST(PredictBodyTest, MaxRows) {
  FeaturePipeline p = Churn();
  DecodeOptions o;
  o.max_rows = 2;
  DecodedBatch b;
  ASSERT_OK(DecodePredictBody("[{},{}]", p, o, &b));
  Status s = DecodePredictBody("[{},{},{}]", p, o, &b);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "the request has 3 rows; at most 2 are accepted");
  EXPECT_EQ(
      Invocations(R"({"dataframe_split":{"data":[[1,2,3],[1,2,3],[1,2,3]]}})", p, &b, o).code(),
      StatusCode::kResourceExhausted);
  EXPECT_EQ(Invocations(R"({"inputs":{"state":[1,2,3]}})", p, &b, o).code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(DecodeInvocations(InvocationsFormat::kCsv, "state\nKS\nOH\nNY\n", p, o, &b).code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(DecodeV2Infer(R"({"inputs":[{"name":"state","shape":[3],"datatype":"BYTES",)"
                          R"("data":["KS","OH","NY"]}]})",
                          p, 6, o, &b, nullptr)
                .code(),
            StatusCode::kResourceExhausted);
}

TEST(PredictBodyTest, OutputBuffersAreReused) {
  FeaturePipeline p = Churn();
  DecodedBatch b;
  const std::string list = "[" + kRecords[0] + "," + kRecords[1] + "]";
  ASSERT_OK(DecodePredictBody(list, p, {}, &b));
  const float* data = b.features.data();
  ASSERT_OK(DecodePredictBody(kRecords[1], p, {}, &b));
  EXPECT_EQ(b.features.size(), 6u);
  EXPECT_EQ(b.features.data(), data);
  ASSERT_OK(DecodePredictBody(list, p, {}, &b));
  EXPECT_EQ(b.features.data(), data);
}

// ---- MLflow /invocations --------------------------------------------------------

TEST(InvocationsTest, EveryJsonFormatEncodesLikeTheRecords) {
  FeaturePipeline p = Churn();
  const Expected e = Encode(p, kRecords);
  const std::vector<std::string> bodies = {
      // dataframe_split, in pipeline order, another order with an unknown column, positional.
      R"({"dataframe_split":{"columns":["state","account_length","international_plan"],)"
      R"("data":[["KS",128,"no"],["OH",107.5,"yes"],["ZZ",null,"NA"]]}})",
      R"({"dataframe_split":{"index":[7,8,9],"columns":["international_plan","junk","state",)"
      R"("account_length"],"data":[["no",[1],"KS",128],["yes",{},"OH",107.5],)"
      R"(["NA",null,"ZZ",null]]},"params":{"a":1}})",
      R"({"dataframe_split":{"data":[["KS",128,"no"],["OH",107.5,"yes"],["ZZ",null,"NA"]]}})",
      R"({"dataframe_records":)"
      "[" +
          kRecords[0] + "," + kRecords[1] + "," + kRecords[2] + "]}",
      R"({"instances":)"
      "[" +
          kRecords[0] + "," + kRecords[1] + "," + kRecords[2] + "]}",
      R"({"instances":[["KS",128,"no"],["OH",107.5,"yes"],["ZZ",null,"NA"]]})",
      R"({"inputs":[["KS",128,"no"],["OH",107.5,"yes"],["ZZ",null,"NA"]]})",
      R"({"inputs":{"state":["KS","OH","ZZ"],"international_plan":["no","yes","NA"],)"
      R"("account_length":[128,107.5,null]}})",
  };
  for (const std::string& body : bodies) {
    DecodedBatch b;
    ASSERT_OK(Invocations(body, p, &b));
    ExpectBatch(b, e, 3, body);
    EXPECT_FALSE(b.single_record);
  }
  // Absent columns are missing.
  DecodedBatch b;
  ASSERT_OK(
      Invocations(R"({"dataframe_split":{"columns":["state"],"data":[["KS"],["OH"]]}})", p, &b));
  ExpectBatch(b, Encode(p, {R"({"state":"KS"})", R"({"state":"OH"})"}), 2, "split, one column");
  ASSERT_OK(Invocations(R"({"inputs":{"account_length":[1,2]}})", p, &b));
  ExpectBatch(b, Encode(p, {R"({"account_length":1})", R"({"account_length":2})"}), 2,
              "columnar, one column");
  ASSERT_OK(Invocations(R"({"instances":[]})", p, &b));
  EXPECT_EQ(b.rows, 0u);
}

TEST(InvocationsTest, ScalarInstancesNeedOneInputColumn) {
  auto one = FeaturePipeline::FromJson(
      R"({"keel_pipeline":1,"encoding":"one_hot","missing_markers":["NA"],)"
      R"("columns":[{"name":"international_plan","type":"categorical","categories":["no","yes"]}]})");
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  DecodeOptions o;
  o.want_raw = true;
  DecodedBatch b;
  ASSERT_OK(Invocations(R"({"instances":["yes","no","NA"]})", *one, &b, o));
  EXPECT_EQ(b.rows, 3u);
  EXPECT_EQ(b.features, (std::vector<float>{0, 1, 1, 0, 0, 0}));
  EXPECT_EQ(b.stats.missing, 1u);
  EXPECT_EQ(b.raw_rows[0], R"({"international_plan":"yes"})");

  FeaturePipeline p = Churn();
  Status s = Invocations(R"({"instances":["KS","OH"]})", p, &b);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("need a model with one input column; this one has 3"),
            std::string::npos)
      << s.message();
}

TEST(InvocationsTest, RawRowsUseTheRequestNames) {
  FeaturePipeline p = Churn();
  DecodeOptions o;
  o.want_raw = true;
  DecodedBatch b;
  ASSERT_OK(Invocations(
      R"({"dataframe_split":{"columns":["state","note"],"data":[["KS","a\tb"],["OH",null]]}})", p,
      &b, o));
  EXPECT_EQ(b.ignored_columns, 1u);
  ASSERT_EQ(b.raw_rows.size(), 2u);
  EXPECT_EQ(b.raw_rows[0], R"({"state":"KS","note":"a\tb"})");
  EXPECT_EQ(b.raw_rows[1], R"({"state":"OH","note":null})");

  ASSERT_OK(Invocations(R"({"instances":[["KS",128,"no"]]})", p, &b, o));
  EXPECT_EQ(b.raw_rows[0], R"({"state":"KS","account_length":128,"international_plan":"no"})");

  ASSERT_OK(Invocations(R"({"inputs":{"account_length":[1,2.5],"state":["KS","OH"]}})", p, &b, o));
  EXPECT_EQ(b.raw_rows[0], R"({"account_length":1,"state":"KS"})");
  EXPECT_EQ(b.raw_rows[1], R"({"account_length":2.5,"state":"OH"})");
}

TEST(InvocationsTest, MlflowErrors) {
  FeaturePipeline p = Churn();
  DecodedBatch b;
  const std::string required =
      "The input must be a JSON dictionary with exactly one of the input fields "
      "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}. ";

  Status s = Invocations("[" + kRecords[0] + "]", p, &b);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().rfind(required + "Received a list. IMPORTANT: The MLflow Model scoring "
                                         "protocol has changed in MLflow version 2.0.",
                              0),
            0u)
      << s.message();

  s = Invocations(R"({"columns":["state"],"data":[["KS"]]})", p, &b);
  EXPECT_EQ(
      s.message().rfind(
          required + "Received dictionary with input fields: ['columns', 'data']. IMPORTANT", 0),
      0u)
      << s.message();
  s = Invocations("{}", p, &b);
  EXPECT_EQ(s.message().rfind(required + "Received dictionary with input fields: []. ", 0), 0u)
      << s.message();
  s = Invocations(R"({"instances":[{}],"inputs":[{}],"params":{}})", p, &b);
  EXPECT_EQ(s.message().rfind(required + "Received dictionary with input fields: ['instances', "
                                         "'inputs', 'params']. ",
                              0),
            0u)
      << s.message();

  s = Invocations(R"({"signature_name":"serving_default","instances":[{}]})", p, &b);
  EXPECT_EQ(s.message(),
            "Failed to parse data as TF serving input. \"signature_name\" is currently not "
            "supported.");
  s = Invocations("3", p, &b);
  EXPECT_EQ(s.message(), required + "Received unexpected input type '<class 'int'>'.");
  s = Invocations("{", p, &b);
  EXPECT_EQ(s.message().rfind("Failed to parse input from JSON. Ensure that input is a valid JSON "
                              "formatted string. Error: ",
                              0),
            0u)
      << s.message();

  s = Invocations(R"({"inputs":{"state":["KS","OH"],"account_length":[1]}})", p, &b);
  EXPECT_NE(s.message().find("The length of values for each input/column name are not the same"),
            std::string::npos)
      << s.message();
  s = Invocations(R"({"instances":[["KS",128]]})", p, &b);
  EXPECT_EQ(s.message(),
            "row 0: 2 values, expected 3 (one per input column: state, account_length, "
            "international_plan)");
  s = Invocations(R"({"dataframe_split":{"columns":["state","account_length"],)"
                  R"("data":[["KS",1],["OH"]]}})",
                  p, &b);
  EXPECT_EQ(s.message(), "row 1: 1 values, but 2 columns");
  s = Invocations(R"({"dataframe_split":{"columns":["state","state"],"data":[]}})", p, &b);
  EXPECT_EQ(s.message(), "dataframe_split: column \"state\" is named twice");
  s = Invocations(R"({"dataframe_split":{"colums":["state"],"data":[]}})", p, &b);
  EXPECT_EQ(s.message(),
            "dataframe_split: unexpected key \"colums\" (expected columns, data and index)");
  s = Invocations(R"({"dataframe_split":{"columns":["state"],"data":[["KS"],["OH"],[7.5]]}})", p,
                  &b);
  EXPECT_EQ(s.code(), StatusCode::kOk);  // a number matches no category: unknown
  EXPECT_EQ(b.stats.unknown, 1u);
  s = Invocations(R"({"dataframe_split":{"columns":["account_length"],"data":[[1],["x"]]}})", p,
                  &b);
  EXPECT_EQ(s.message(), "row 1, field \"account_length\": \"x\" is not a number");
  s = Invocations(R"({"dataframe_records":[{"state":"KS"},[1]]})", p, &b);
  EXPECT_EQ(s.message(), "row 1: expected a JSON object (a record), got an array");
  s = Invocations(R"({"dataframe_records":{"state":"KS"}})", p, &b);
  EXPECT_EQ(s.message(), "dataframe_records: expected a list of records, got an object");
  s = Invocations(R"({"instances":[{"state":"KS"},["KS",1,"no"]]})", p, &b);
  EXPECT_EQ(s.message(), "row 1: expected a JSON object like row 0, got an array");
  s = Invocations(R"({"instances":"KS"})", p, &b);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = Invocations(R"({"inputs":{"state":"KS"}})", p, &b);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = Invocations(R"({"inputs":{"state":["KS"],"state":["OH"]}})", p, &b);
  EXPECT_EQ(s.message(), "inputs: column \"state\" is given twice");

  DecodeOptions strict;
  strict.reject_unknown_columns = true;
  s = Invocations(R"({"dataframe_split":{"columns":["state","zip"],"data":[]}})", p, &b, strict);
  EXPECT_EQ(s.message(),
            "field \"zip\": not an input of the model (inputs: state, account_length, "
            "international_plan)");
}

TEST(InvocationsTest, ContentTypes) {
  auto fmt = [](std::string_view ct) { return InvocationsFormatOf(ct); };
  for (const char* json : {"", "  ", "application/json", "APPLICATION/JSON",
                           "application/json; charset=utf-8", "application/json;charset=UTF-8",
                           "application/json; CharSet=\"utf-8\"", "application/json;"}) {
    auto f = fmt(json);
    ASSERT_TRUE(f.ok()) << json << ": " << f.status().ToString();
    EXPECT_EQ(*f, InvocationsFormat::kJson) << json;
  }
  for (const char* csv : {"text/csv", "application/csv", "Text/CSV; charset=utf-8"}) {
    auto f = fmt(csv);
    ASSERT_TRUE(f.ok()) << csv << ": " << f.status().ToString();
    EXPECT_EQ(*f, InvocationsFormat::kCsv) << csv;
  }
  auto latin = fmt("application/json; charset=latin-1");
  ASSERT_FALSE(latin.ok());
  EXPECT_EQ(latin.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(latin.status().message(), "The scoring server only supports UTF-8");
  auto split = fmt("application/json; format=pandas-split");
  ASSERT_FALSE(split.ok());
  EXPECT_EQ(split.status().message().rfind(
                "Unrecognized content type parameters: format. IMPORTANT: The MLflow Model "
                "scoring protocol has changed in MLflow version 2.0.",
                0),
            0u)
      << split.status().message();
  auto text = fmt("text/plain");
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().message(),
            "This predictor only supports the following content types: Types: ['text/csv', "
            "'application/csv', 'application/json']. Got 'text/plain'.");
  EXPECT_FALSE(fmt("application/jsonx").ok());
  EXPECT_FALSE(fmt("multipart/form-data; boundary=x").ok());
}

TEST(InvocationsTest, Csv) {
  FeaturePipeline p = Churn();
  DecodeOptions o;
  o.want_raw = true;
  DecodedBatch b;
  const std::string csv =
      "\xEF\xBB\xBFinternational_plan,state,zip,account_length\r\n"
      "no,KS,\"66,044\",128\r\n"
      "yes,OH,,107.5\r\n"
      "NA,\"Z\"\"Z\",1e3,\r\n";
  ASSERT_OK(DecodeInvocations(InvocationsFormat::kCsv, csv, p, o, &b));
  Expected e = Encode(p, {kRecords[0], kRecords[1],
                          R"({"state":"Z\"Z","account_length":null,"international_plan":"NA"})"});
  ExpectBatch(b, e, 3, "csv");
  EXPECT_EQ(b.ignored_columns, 1u);
  ASSERT_EQ(b.raw_rows.size(), 3u);
  EXPECT_EQ(b.raw_rows[0],
            R"({"international_plan":"no","state":"KS","zip":"66,044","account_length":128})");
  EXPECT_EQ(b.raw_rows[2],
            R"({"international_plan":"NA","state":"Z\"Z","zip":1e3,"account_length":""})");

  // Absent columns are missing; header only is zero rows.
  ASSERT_OK(DecodeInvocations(InvocationsFormat::kCsv, "state\nKS\n", p, {}, &b));
  ExpectBatch(b, Encode(p, {R"({"state":"KS"})"}), 1, "one column");
  ASSERT_OK(DecodeInvocations(InvocationsFormat::kCsv, "state,account_length\n", p, {}, &b));
  EXPECT_EQ(b.rows, 0u);

  Status s = DecodeInvocations(InvocationsFormat::kCsv, "", p, {}, &b);
  EXPECT_EQ(s.message(), "the CSV body has no header row");
  s = DecodeInvocations(InvocationsFormat::kCsv, "state,account_length\nKS,12x\n", p, {}, &b);
  EXPECT_EQ(s.message(), "row 0, field \"account_length\": \"12x\" is not a number");
  s = DecodeInvocations(InvocationsFormat::kCsv, "state,account_length\nKS,1\nOH\n", p, {}, &b);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().rfind("row 1: ", 0), 0u) << s.message();
  s = DecodeInvocations(InvocationsFormat::kCsv, "state,state\nKS,OH\n", p, {}, &b);
  EXPECT_EQ(s.message(), "CSV header names column \"state\" twice");
  s = DecodeInvocations(InvocationsFormat::kCsv, "state\n\xC3\x28\n", p, {}, &b);
  EXPECT_EQ(s.message(), "the CSV body is not valid UTF-8 text");
  s = DecodeInvocations(InvocationsFormat::kCsv, "state\n\"KS\n", p, {}, &b);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

// ---- Open Inference Protocol V2 ---------------------------------------------------

TEST(V2InferTest, OneTensorPerColumn) {
  FeaturePipeline p = Churn();
  const Expected e = Encode(p, kRecords);
  const std::vector<std::string> bodies = {
      R"({"id":"42","inputs":[)"
      R"({"name":"state","shape":[3],"datatype":"BYTES","data":["KS","OH","ZZ"]},)"
      R"({"name":"account_length","shape":[3],"datatype":"FP64","data":[128,107.5,null]},)"
      R"({"name":"international_plan","shape":[3],"datatype":"BYTES","data":["no","yes","NA"]}],)"
      R"("outputs":[{"name":"predict"},{"name":"proba","parameters":{}}]})",
      // [n, 1] shapes, nested data, another order.
      R"({"inputs":[)"
      R"({"name":"international_plan","shape":[3,1],"datatype":"BYTES",)"
      R"("data":[["no"],["yes"],["NA"]]},)"
      R"({"name":"state","shape":[3,1],"datatype":"BYTES","data":["KS","OH","ZZ"]},)"
      R"({"name":"account_length","shape":[3,1],"datatype":"FP32","data":[[128],[107.5],[null]],)"
      R"("parameters":{"content_type":"np"}}],"parameters":{}})",
  };
  for (size_t i = 0; i < bodies.size(); ++i) {
    DecodedBatch b;
    V2Request req;
    ASSERT_OK(DecodeV2Infer(bodies[i], p, 6, {}, &b, &req));
    ExpectBatch(b, e, 3, bodies[i]);
    if (i == 0) {
      EXPECT_EQ(req.id, "42");
      EXPECT_EQ(req.requested_outputs, (std::vector<std::string>{"predict", "proba"}));
    } else {
      EXPECT_EQ(req.id, "");
      EXPECT_TRUE(req.requested_outputs.empty());
    }
  }
  // Integer and boolean datatypes; absent columns are missing.
  DecodedBatch b;
  DecodeOptions o;
  o.want_raw = true;
  ASSERT_OK(DecodeV2Infer(R"({"inputs":[{"name":"account_length","shape":[2],)"
                          R"("datatype":"INT32","data":[7,-8]}]})",
                          p, 6, o, &b, nullptr));
  ExpectBatch(b, Encode(p, {R"({"account_length":7})", R"({"account_length":-8})"}), 2, "INT32");
  EXPECT_EQ(b.raw_rows[1], R"({"account_length":-8})");
}

TEST(V2InferTest, OneMatrixTensor) {
  FeaturePipeline p = Churn();
  DecodeOptions o;
  o.want_raw = true;
  DecodedBatch b;
  V2Request req;
  ASSERT_OK(DecodeV2Infer(R"({"inputs":[{"name":"input__0","shape":[2,6],"datatype":"FP32",)"
                          R"("data":[1,0,0,128,1,0,0,0,1,107.5,0,1]}]})",
                          p, 6, o, &b, &req));
  EXPECT_EQ(b.rows, 2u);
  EXPECT_EQ(b.num_features, 6u);
  EXPECT_EQ(b.features, (std::vector<float>{1, 0, 0, 128, 1, 0, 0, 0, 1, 107.5f, 0, 1}));
  EXPECT_EQ(b.raw_rows[0], R"({"state=KS":1,"state=NY":0,"state=OH":0,"account_length":128,)"
                           R"("international_plan=no":1,"international_plan=yes":0})");
  ASSERT_OK(DecodeV2Infer(R"({"inputs":[{"name":"x","shape":[2,6],"datatype":"INT64",)"
                          R"("data":[[1,0,0,128,1,0],[0,0,1,107,0,1]]}]})",
                          p, 6, {}, &b, &req));
  EXPECT_EQ(b.features, (std::vector<float>{1, 0, 0, 128, 1, 0, 0, 0, 1, 107, 0, 1}));
  ASSERT_OK(DecodeV2Infer(R"({"inputs":[{"name":"x","shape":[6],"datatype":"FP64",)"
                          R"("data":[1,0,0,128,1,null]}]})",
                          p, 6, {}, &b, &req));
  EXPECT_EQ(b.rows, 1u);
  EXPECT_TRUE(std::isnan(b.features[5]));
  Status s = DecodeV2Infer(R"({"inputs":[{"name":"x","shape":[2,5],"datatype":"FP32",)"
                           R"("data":[1,2,3,4,5,6,7,8,9,10]}]})",
                           p, 6, {}, &b, &req);
  EXPECT_NE(s.message().find("does not hold the model's 6 features (expected [n, 6] or [6])"),
            std::string::npos)
      << s.message();
  s = DecodeV2Infer(R"({"inputs":[{"name":"x","shape":[6],"datatype":"FP64",)"
                    R"("data":[1,0,0,1e300,1,0]}]})",
                    p, 6, {}, &b, &req);
  EXPECT_EQ(s.message(), "input \"x\", row 0, feature 3: 1e+300 is out of the float range");
  s = DecodeV2Infer(R"({"inputs":[{"name":"x","shape":[6],"datatype":"BYTES",)"
                    R"("data":["1","0","0","1","1","0"]}]})",
                    p, 6, {}, &b, &req);
  EXPECT_NE(s.message().find("input \"x\": not an input column of the model"), std::string::npos)
      << s.message();
}

TEST(V2InferTest, Errors) {
  FeaturePipeline p = Churn();
  DecodedBatch b;
  V2Request req;
  auto decode = [&](const std::string& inputs) {
    return DecodeV2Infer(R"({"inputs":)" + inputs + "}", p, 6, {}, &b, &req);
  };
  EXPECT_EQ(decode(R"([{"name":"state","shape":[2],"datatype":"BYTES","data":["KS","OH","NY"]}])")
                .message(),
            "input \"state\": shape [2] does not match 3 data elements");
  // Only the element count is checked against the shape, not the nesting.
  ASSERT_OK(decode(R"([{"name":"state","shape":[2],"datatype":"BYTES","data":[["KS"],"OH",[]]}])"));
  EXPECT_EQ(b.rows, 2u);
  EXPECT_EQ(
      decode(R"([{"name":"account_length","shape":[1],"datatype":"FP16","data":[1]}])").message(),
      "input \"account_length\": datatype FP16 is not supported in JSON requests; send "
      "FP32 (or FP64) data");
  EXPECT_NE(decode(R"([{"name":"account_length","shape":[1],"datatype":"BF16","data":[1]}])")
                .message()
                .find("unknown datatype \"BF16\""),
            std::string::npos);
  EXPECT_EQ(decode(R"([{"name":"account_length","shape":[2],"datatype":"INT8","data":[1,300]}])")
                .message(),
            "input \"account_length\", row 1: expected INT8 data, got 300");
  EXPECT_EQ(
      decode(R"([{"name":"account_length","shape":[1],"datatype":"UINT8","data":[-1]}])").message(),
      "input \"account_length\", row 0: expected UINT8 data, got -1");
  EXPECT_EQ(decode(R"([{"name":"account_length","shape":[1],"datatype":"INT64","data":[1.5]}])")
                .message(),
            "input \"account_length\", row 0: expected INT64 data, got 1.5");
  EXPECT_EQ(decode(R"([{"name":"state","shape":[1],"datatype":"BYTES","data":[1]}])").message(),
            "input \"state\", row 0: expected BYTES data, got 1");
  EXPECT_EQ(decode(R"([{"name":"account_length","shape":[1],"datatype":"BOOL","data":[true]}])")
                .message(),
            "input \"account_length\", row 0: expected a number, got a boolean");
  EXPECT_EQ(decode(R"([{"name":"account_length","shape":[1],"datatype":"BYTES","data":["x"]}])")
                .message(),
            "input \"account_length\", row 0: \"x\" is not a number");
  // Shapes.
  EXPECT_EQ(decode(R"([{"name":"state","shape":[4294967296,4294967296],"datatype":"BYTES",)"
                   R"("data":[]}])")
                .message(),
            "input \"state\": shape [4294967296, 4294967296] has more elements than can be "
            "counted");
  EXPECT_EQ(decode(R"([{"name":"state","shape":[-1],"datatype":"BYTES","data":[]}])").message(),
            "input \"state\": shape dimensions must be non-negative integers, got -1");
  EXPECT_EQ(
      decode(R"([{"name":"state","shape":[1,2],"datatype":"BYTES","data":["a","b"]}])").message(),
      "input \"state\": shape [1, 2] is not [n] or [n, 1] (one value per row)");
  EXPECT_EQ(decode(R"([{"name":"state","shape":[1],"datatype":"BYTES","data":["KS"]},)"
                   R"({"name":"account_length","shape":[2],"datatype":"FP32","data":[1,2]}])")
                .message(),
            "input \"account_length\": 2 rows, but input \"state\" has 1");
  // Names.
  EXPECT_EQ(decode(R"([{"name":"state","shape":[1],"datatype":"BYTES","data":["KS"]},)"
                   R"({"name":"zip","shape":[1],"datatype":"FP32","data":[1]}])")
                .message(),
            "input \"zip\": not an input column of the model (inputs: state, account_length, "
            "international_plan)");
  EXPECT_EQ(decode(R"([{"name":"state","shape":[1],"datatype":"BYTES","data":["KS"]},)"
                   R"({"name":"state","shape":[1],"datatype":"BYTES","data":["KS"]}])")
                .message(),
            "input \"state\": given twice");
  EXPECT_EQ(decode(R"([{"shape":[1],"datatype":"BYTES","data":["KS"]}])").message(),
            "inputs[0]: \"name\" is missing");
  EXPECT_EQ(decode(R"([{"name":"state","shape":[1],"datatype":"BYTES"}])").message(),
            "input \"state\": \"data\" is missing (the binary tensor data extension is not "
            "supported)");
  EXPECT_EQ(decode("[]").message(), "\"inputs\" is empty");
  EXPECT_EQ(decode("{}").message(), "\"inputs\" must be a list of tensors, got an object");
  EXPECT_EQ(DecodeV2Infer(R"({"id":7,"inputs":[]})", p, 6, {}, &b, &req).message(),
            "\"id\" must be a string, got a number");
  EXPECT_EQ(DecodeV2Infer(R"({"outputs":[{"nom":"x"}],"inputs":[]})", p, 6, {}, &b, &req).message(),
            "outputs[0]: expected an object with a string \"name\"");
  EXPECT_EQ(DecodeV2Infer("[]", p, 6, {}, &b, &req).message(),
            "expected a JSON object (an inference request), got an array");
  EXPECT_EQ(DecodeV2Infer("{}", p, 6, {}, &b, &req).message(), "\"inputs\" is missing");
  EXPECT_EQ(DecodeV2Infer("{\"inputs\":[", p, 6, {}, &b, &req).message().rfind("malformed JSON", 0),
            0u);
}

}  // namespace
}  // namespace keel::serve
