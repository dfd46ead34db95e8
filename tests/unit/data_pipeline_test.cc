#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "keel/core/json.h"
#include "keel/data/csv.h"
#include "keel/data/pipeline.h"
#include "test_util.h"

namespace keel::data {
namespace {

const std::string kChurn = KEEL_SOURCE_DIR "/../shared/data/mlc_churn.csv";

std::vector<std::string> ChurnFeatures(const Table& t) {
  std::vector<std::string> names;
  for (const Column& c : t.columns()) {
    if (c.name() != "churn") names.push_back(c.name());
  }
  return names;
}

// Equal as bits, so NaN == NaN and -0 != 0.
bool SameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

Table SmallTable() {
  Table t;
  EXPECT_TRUE(t.AddColumn(Column::Numeric("x", {1.5, NAN, 3})).ok());
  EXPECT_TRUE(t.AddColumn(Column::CategoricalFromText("color", {"red", "blue", "NA"})).ok());
  Result<Column> flag = Column::Boolean("flag", {1, 0, NAN});
  EXPECT_TRUE(flag.ok());
  EXPECT_TRUE(t.AddColumn(std::move(*flag)).ok());
  EXPECT_TRUE(t.AddColumn(Column::CategoricalFromText("code", {"415", "510", "1.0"})).ok());
  return t;
}

class ChurnPipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = ReadCsvTable(kChurn);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    table_ = new Table(std::move(*t));
  }
  static void TearDownTestSuite() {
    delete table_;
    table_ = nullptr;
  }
  static Table* table_;
};
Table* ChurnPipelineTest::table_ = nullptr;

TEST_F(ChurnPipelineTest, OneHotGives73FeaturesInPlace) {
  const Table& t = *table_;
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, ChurnFeatures(t)));
  ASSERT_EQ(p.num_features(), 73u);
  ASSERT_EQ(p.input_columns().size(), 19u);
  // state expands in place, categories sorted.
  EXPECT_EQ(p.feature_names()[0], "state=AK");
  EXPECT_EQ(p.feature_names()[50], "state=WY");
  EXPECT_EQ(p.feature_names()[51], "account_length");
  EXPECT_EQ(p.feature_names()[52], "area_code=area_code_408");
  EXPECT_EQ(p.feature_names()[55], "international_plan=no");
  EXPECT_EQ(p.feature_names()[56], "international_plan=yes");
  EXPECT_EQ(p.feature_names()[72], "number_customer_service_calls");
  EXPECT_EQ(p.feature_types()[0], "i");
  EXPECT_EQ(p.feature_types()[51], "q");

  std::vector<float> x(t.num_rows() * p.num_features());
  EncodeStats stats;
  ASSERT_OK(p.EncodeTable(t, x.data(), 0, t.num_rows(), &stats));
  EXPECT_EQ(stats.missing, 0u);
  EXPECT_EQ(stats.unknown, 0u);
  const size_t w = p.num_features();
  for (const InputColumn& in : p.input_columns()) {
    const Column& col = *t.FindColumn(in.name);
    for (size_t r = 0; r < t.num_rows(); ++r) {
      const float* row = x.data() + r * w + in.first_feature;
      if (in.type == ColumnType::kNumeric) {
        ASSERT_EQ(row[0], static_cast<float>(col.values()[r])) << in.name << " row " << r;
      } else {
        // Exactly one indicator, at the row's category.
        const std::string value = col.ValueText(r);
        for (size_t k = 0; k < in.num_features; ++k) {
          ASSERT_EQ(row[k], in.categories[k] == value ? 1.0f : 0.0f) << in.name << " row " << r;
        }
      }
    }
  }
}

TEST_F(ChurnPipelineTest, NativeEncodingUsesSortedIndex) {
  const Table& t = *table_;
  PipelineOptions options;
  options.encoding = CategoricalEncoding::kNative;
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, ChurnFeatures(t), options));
  ASSERT_EQ(p.num_features(), 19u);
  EXPECT_EQ(p.feature_types()[0], "c");
  EXPECT_EQ(p.feature_types()[1], "q");
  EXPECT_EQ(p.feature_names()[0], "state");
  std::vector<float> x(p.num_features());
  ASSERT_OK(p.EncodeTable(t, x.data(), 0, 1));
  // Row 0 is KS; AK AL AR AZ CA CO CT DC DE FL GA HI IA ID IL IN KS -> 16.
  EXPECT_EQ(x[0], 16.0f);
  EXPECT_EQ(x[1], 128.0f);
}

// Builds the JSON object of each CSV record from the raw file text (numbers
// unquoted as written, strings quoted) and checks it encodes exactly as the
// table row does, through every entry point.
TEST_F(ChurnPipelineTest, JsonAndCsvRecordsEncodeLikeTheTable) {
  const Table& t = *table_;
  for (CategoricalEncoding enc : {CategoricalEncoding::kOneHot, CategoricalEncoding::kNative}) {
    PipelineOptions options;
    options.encoding = enc;
    ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, ChurnFeatures(t), options));
    const size_t w = p.num_features();
    std::vector<float> from_table(t.num_rows() * w);
    ASSERT_OK(p.EncodeTable(t, from_table.data(), 0, t.num_rows()));

    ASSERT_OK_AND_ASSIGN(auto reader, CsvReader::Open(kChurn));
    ASSERT_OK_AND_ASSIGN(ColumnMap map, p.MapCsvHeader(reader->header()));
    simdjson::dom::parser dom;
    for (size_t r = 0; r < t.num_rows(); ++r) {
      ASSERT_OK_AND_ASSIGN(bool more, reader->Next());
      ASSERT_TRUE(more);
      const std::vector<std::string_view>& fields = reader->fields();
      std::string json = "{";
      for (size_t f = 0; f < fields.size(); ++f) {
        if (f > 0) json += ",";
        json += "\"" + reader->header()[f] + "\":";
        bool numeric = t.column(f).type() == ColumnType::kNumeric;
        json += numeric ? std::string(fields[f]) : "\"" + std::string(fields[f]) + "\"";
      }
      json += "}";
      std::vector<float> expected(from_table.begin() + static_cast<ptrdiff_t>(r * w),
                                  from_table.begin() + static_cast<ptrdiff_t>((r + 1) * w));
      std::vector<float> got(w, -7.0f);
      ASSERT_OK(p.EncodeJsonObject(json, got.data()));
      ASSERT_TRUE(SameFloats(got, expected)) << json;

      std::vector<float> dom_got(w, -7.0f);
      simdjson::dom::object obj = dom.parse(json).get_object().value();
      ASSERT_OK(p.EncodeJsonObject(obj, dom_got.data()));
      ASSERT_TRUE(SameFloats(dom_got, expected)) << json;

      std::vector<float> csv_got(w, -7.0f);
      ASSERT_OK(p.EncodeCsvFields(fields, map, csv_got.data()));
      ASSERT_TRUE(SameFloats(csv_got, expected)) << json;
    }
  }
}

TEST_F(ChurnPipelineTest, EncodeRowsFollowsSplit) {
  const Table& t = *table_;
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, ChurnFeatures(t)));
  const size_t w = p.num_features();
  std::vector<float> all(t.num_rows() * w);
  ASSERT_OK(p.EncodeTable(t, all.data(), 0, t.num_rows()));
  RowSplit split = SplitRows(t.num_rows(), 0.2, 11);
  std::vector<float> val(split.validation.size() * w);
  ASSERT_OK(p.EncodeRows(t, split.validation, val.data()));
  for (size_t i = 0; i < split.validation.size(); ++i) {
    ASSERT_EQ(std::memcmp(val.data() + i * w, all.data() + split.validation[i] * w, w * 4), 0);
  }
  // Middle range.
  std::vector<float> mid(10 * w);
  ASSERT_OK(p.EncodeTable(t, mid.data(), 100, 110));
  EXPECT_EQ(std::memcmp(mid.data(), all.data() + 100 * w, mid.size() * 4), 0);
  EXPECT_FALSE(p.EncodeTable(t, mid.data(), 100, 5001).ok());
}

TEST_F(ChurnPipelineTest, UnknownAndMissingCategories) {
  const Table& t = *table_;
  for (CategoricalEncoding enc : {CategoricalEncoding::kOneHot, CategoricalEncoding::kNative}) {
    PipelineOptions options;
    options.encoding = enc;
    ASSERT_OK_AND_ASSIGN(FeaturePipeline p,
                         FeaturePipeline::Fit(t, {"state", "account_length"}, options));
    const InputColumn& state = p.input_columns()[0];
    std::vector<float> x(p.num_features(), -7.0f);

    EncodeStats unknown;
    ASSERT_OK(p.EncodeJsonObject(R"({"state":"ZZ","account_length":3})", x.data(), &unknown));
    EXPECT_EQ(unknown.unknown, 1u);
    EXPECT_EQ(unknown.missing, 0u);
    if (enc == CategoricalEncoding::kOneHot) {
      for (size_t k = 0; k < state.num_features; ++k) EXPECT_EQ(x[k], 0.0f);
    } else {
      EXPECT_TRUE(std::isnan(x[0]));
    }
    EXPECT_EQ(x.back(), 3.0f);

    for (const char* json : {R"({"account_length":3})", R"({"state":null,"account_length":3})",
                             R"({"state":"NA","account_length":3})"}) {
      std::fill(x.begin(), x.end(), -7.0f);
      EncodeStats missing;
      ASSERT_OK(p.EncodeJsonObject(json, x.data(), &missing));
      EXPECT_EQ(missing.missing, 1u) << json;
      EXPECT_EQ(missing.unknown, 0u) << json;
      if (enc == CategoricalEncoding::kOneHot) {
        for (size_t k = 0; k < state.num_features; ++k) EXPECT_EQ(x[k], 0.0f) << json;
      } else {
        EXPECT_TRUE(std::isnan(x[0])) << json;
      }
    }
    // Numeric missing: NaN. Stats accumulate.
    EncodeStats acc;
    ASSERT_OK(p.EncodeJsonObject(R"({"state":"KS"})", x.data(), &acc));
    ASSERT_OK(p.EncodeJsonObject(R"({"state":"KS","account_length":"NA"})", x.data(), &acc));
    EXPECT_TRUE(std::isnan(x.back()));
    EXPECT_EQ(acc.missing, 2u);
  }
}

TEST_F(ChurnPipelineTest, BadNumericStringNamesFieldAndValue) {
  const Table& t = *table_;
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, ChurnFeatures(t)));
  std::vector<float> x(p.num_features());
  Status s = p.EncodeJsonObject(R"({"state":"KS","account_length":"12x"})", x.data());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "field 'account_length': \"12x\" is not a number");
  s = p.EncodeJsonObject(R"({"account_length":true})", x.data());
  EXPECT_EQ(s.message(), "field 'account_length': expected a number, got a boolean");
  s = p.EncodeJsonObject(R"({"account_length":[1]})", x.data());
  EXPECT_EQ(s.message(), "field 'account_length': expected a number, string, boolean or null");
  // A numeric string is a number.
  ASSERT_OK(p.EncodeJsonObject(R"({"account_length":" 128 "})", x.data()));
  EXPECT_EQ(x[p.input_columns()[1].first_feature], 128.0f);
}

TEST(PipelineTest, ExtraFieldsOrderAndDuplicates) {
  Table t = SmallTable();
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, {"x", "color", "flag"}));
  // x, color=blue, color=red, flag
  ASSERT_EQ(p.feature_names(), (std::vector<std::string>{"x", "color=blue", "color=red", "flag"}));
  std::vector<float> a(4), b(4);
  ASSERT_OK(p.EncodeJsonObject(R"({"x":2,"color":"red","flag":true})", a.data()));
  ASSERT_OK(p.EncodeJsonObject(
      R"({"zzz":{"deep":[1,2,{"x":9}]},"flag":"yes","color":"blue","extra":null,"x":2,"color":"red"})",
      b.data()));
  EXPECT_EQ(a, (std::vector<float>{2, 0, 1, 1}));
  EXPECT_EQ(b, a);
  // Escaped keys are unescaped before matching.
  ASSERT_OK(p.EncodeJsonObject(R"({"\u0078":5,"col\u006fr":"blue","flag":0})", b.data()));
  EXPECT_EQ(b, (std::vector<float>{5, 1, 0, 0}));
}

TEST(PipelineTest, ParsedObjectOverloads) {
  Table t = SmallTable();
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, {"x", "color", "flag", "code"}));
  const std::string body =
      R"({"instances":[{"x":1,"color":"red","flag":"no","code":510},)"
      R"({"color":"green","x":null,"junk":[1,{"a":2}]},{"x":"2.5","flag":true}]})";
  const std::vector<std::string> singles = {R"({"x":1,"color":"red","flag":"no","code":510})",
                                            R"({"color":"green","x":null,"junk":[1,{"a":2}]})",
                                            R"({"x":"2.5","flag":true})"};
  std::vector<std::vector<float>> expected;
  EncodeStats expected_stats;
  for (const std::string& s : singles) {
    std::vector<float> row(p.num_features());
    ASSERT_OK(p.EncodeJsonObject(s, row.data(), &expected_stats));
    expected.push_back(row);
  }
  EXPECT_EQ(expected_stats.unknown, 1u);  // green
  EXPECT_EQ(expected_stats.missing, 2u + 3u);

  simdjson::padded_string padded(body);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc = parser.iterate(padded);
  simdjson::ondemand::array instances = doc["instances"].get_array();
  size_t i = 0;
  EncodeStats stats;
  for (auto item : instances) {
    simdjson::ondemand::object obj = item.get_object();
    std::vector<float> row(p.num_features(), -7.0f);
    ASSERT_OK(p.EncodeJsonObject(obj, row.data(), &stats));
    ASSERT_LT(i, expected.size());
    EXPECT_TRUE(SameFloats(row, expected[i])) << i;
    ++i;
  }
  EXPECT_EQ(i, 3u);
  EXPECT_EQ(stats.unknown, expected_stats.unknown);
  EXPECT_EQ(stats.missing, expected_stats.missing);
}

TEST(PipelineTest, BooleanInputs) {
  Table t = SmallTable();
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, {"flag"}));
  EXPECT_EQ(p.feature_types(), (std::vector<std::string>{"i"}));
  float v = -1;
  const std::vector<std::pair<std::string, float>> ok = {
      {"true", 1},     {"false", 0},  {"1", 1},      {"0", 0},
      {"\"TRUE\"", 1}, {"\"no\"", 0}, {"\"Yes\"", 1}};
  for (const auto& [json, want] : ok) {
    ASSERT_OK(p.EncodeJsonObject("{\"flag\":" + json + "}", &v));
    EXPECT_EQ(v, want) << json;
  }
  EXPECT_EQ(p.EncodeJsonObject(R"({"flag":"maybe"})", &v).message(),
            "field 'flag': \"maybe\" is not a boolean");
  EXPECT_EQ(p.EncodeJsonObject(R"({"flag":2})", &v).message(),
            "field 'flag': 2.0 is not a boolean (0 or 1)");
}

TEST(PipelineTest, NumbersMatchCategoriesByValue) {
  Table t = SmallTable();
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, {"code"}));
  // Categories sorted: "1.0", "415", "510".
  ASSERT_EQ(p.input_columns()[0].categories, (std::vector<std::string>{"1.0", "415", "510"}));
  std::vector<float> x(3);
  for (const char* json :
       {R"({"code":415})", R"({"code":"415"})", R"({"code":415.0})", R"({"code":4.15e2})"}) {
    EncodeStats stats;
    ASSERT_OK(p.EncodeJsonObject(json, x.data(), &stats));
    EXPECT_EQ(x, (std::vector<float>{0, 1, 0})) << json;
    EXPECT_EQ(stats.unknown, 0u) << json;
  }
  ASSERT_OK(p.EncodeJsonObject(R"({"code":1})", x.data()));
  EXPECT_EQ(x, (std::vector<float>{1, 0, 0}));
  // Strings match by exact text only.
  EncodeStats stats;
  ASSERT_OK(p.EncodeJsonObject(R"({"code":"415.0"})", x.data(), &stats));
  EXPECT_EQ(x, (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(stats.unknown, 1u);

  // A numeric table column for a categorical input matches by value too.
  Table numeric;
  ASSERT_OK(numeric.AddColumn(Column::Numeric("code", {510, 1, 7, NAN})));
  std::vector<float> rows(4 * 3);
  EncodeStats table_stats;
  ASSERT_OK(p.EncodeTable(numeric, rows.data(), 0, 4, &table_stats));
  EXPECT_EQ(rows, (std::vector<float>{0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(table_stats.unknown, 1u);
  EXPECT_EQ(table_stats.missing, 1u);
}

TEST(PipelineTest, TableConversionsAndErrors) {
  Table t = SmallTable();
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, {"x", "flag"}));
  Table text;
  ASSERT_OK(text.AddColumn(Column::CategoricalFromText("x", {"1.25", "NA", "7"})));
  ASSERT_OK(text.AddColumn(Column::CategoricalFromText("flag", {"yes", "false", ""})));
  std::vector<float> out(6);
  ASSERT_OK(p.EncodeTable(text, out.data(), 0, 3));
  EXPECT_EQ(out[0], 1.25f);
  EXPECT_EQ(out[1], 1.0f);
  EXPECT_TRUE(std::isnan(out[2]));
  EXPECT_EQ(out[3], 0.0f);
  EXPECT_EQ(out[4], 7.0f);
  EXPECT_TRUE(std::isnan(out[5]));

  Table bad;
  ASSERT_OK(bad.AddColumn(Column::CategoricalFromText("x", {"1", "abc"})));
  ASSERT_OK(bad.AddColumn(Column::Numeric("flag", {1, 0})));
  EXPECT_EQ(p.EncodeTable(bad, out.data(), 0, 2).message(),
            "row 1, column 'x': \"abc\" is not a number");
  Table absent;
  ASSERT_OK(absent.AddColumn(Column::Numeric("x", {1})));
  EXPECT_EQ(p.EncodeTable(absent, out.data(), 0, 1).message(), "the table has no column 'flag'");
}

TEST(PipelineTest, MalformedJson) {
  Table t = SmallTable();
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, {"x"}));
  float v;
  EXPECT_EQ(p.EncodeJsonObject("[1,2]", &v).message(), "expected a JSON object");
  EXPECT_FALSE(p.EncodeJsonObject(R"({"x":1)", &v).ok());
  EXPECT_FALSE(p.EncodeJsonObject(R"({"x":})", &v).ok());
  EXPECT_FALSE(p.EncodeJsonObject(R"({"x":1} {"x":2})", &v).ok());
  EXPECT_FALSE(p.EncodeJsonObject("", &v).ok());
  ASSERT_OK(p.EncodeJsonObject(" {\"x\":1}\n", &v));
  EXPECT_EQ(v, 1.0f);
}

TEST(PipelineTest, CsvHeaderMapping) {
  Table t = SmallTable();
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, {"x", "color"}));
  auto strict = p.MapCsvHeader({"color", "other"});
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().message(), "CSV header lacks input column 'x'");
  ASSERT_OK_AND_ASSIGN(ColumnMap map, p.MapCsvHeader({"color", "other"}, true));
  std::vector<float> out(3, -7.0f);
  EncodeStats stats;
  ASSERT_OK(p.EncodeCsvFields({"red", "zzz"}, map, out.data(), &stats));
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_EQ(out[1], 0.0f);
  EXPECT_EQ(out[2], 1.0f);
  EXPECT_EQ(stats.missing, 1u);
  EXPECT_FALSE(p.EncodeCsvFields({"red"}, map, out.data()).ok());
  EXPECT_EQ(p.EncodeCsvFields({"red", "x"}, map, out.data()).ok(), true);
  ASSERT_OK_AND_ASSIGN(ColumnMap full, p.MapCsvHeader({"color", "x"}));
  EXPECT_EQ(p.EncodeCsvFields({"red", "x1"}, full, out.data()).message(),
            "field 'x': \"x1\" is not a number");
}

TEST(PipelineTest, JsonRoundTrip) {
  Table t = SmallTable();
  for (CategoricalEncoding enc : {CategoricalEncoding::kOneHot, CategoricalEncoding::kNative}) {
    PipelineOptions options;
    options.encoding = enc;
    options.missing_markers = {"", "?", "q\"uote"};
    ASSERT_OK_AND_ASSIGN(FeaturePipeline p,
                         FeaturePipeline::Fit(t, {"code", "x", "color", "flag"}, options));
    std::string json = p.ToJson();
    ASSERT_OK_AND_ASSIGN(FeaturePipeline q, FeaturePipeline::FromJson(json));
    EXPECT_TRUE(q == p);
    EXPECT_EQ(q.ToJson(), json);
    EXPECT_EQ(q.feature_names(), p.feature_names());
    EXPECT_EQ(q.feature_types(), p.feature_types());
    EXPECT_EQ(q.missing_markers(), options.missing_markers);
    std::vector<float> a(p.num_features()), b(q.num_features());
    const char* record = R"({"code":"510","x":"?","color":"blue","flag":false})";
    ASSERT_OK(p.EncodeJsonObject(record, a.data()));
    ASSERT_OK(q.EncodeJsonObject(record, b.data()));
    EXPECT_TRUE(SameFloats(a, b));
    EXPECT_TRUE(std::isnan(a[enc == CategoricalEncoding::kOneHot ? 3 : 1]));  // "?" is missing
  }
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, {"color"}));
  EXPECT_EQ(p.ToJson(),
            R"({"keel_pipeline":1,"encoding":"one_hot","missing_markers":["","NA","N/A","NaN",)"
            R"("nan","null","NULL","None"],"columns":[{"name":"color","type":"categorical",)"
            R"("categories":["blue","red"]}],"feature_names":["color=blue","color=red"],)"
            R"("feature_types":["i","i"]})");
}

TEST(PipelineTest, FromJsonValidates) {
  const std::string good = R"({"keel_pipeline":1,"encoding":"native","missing_markers":[""],)"
                           R"("columns":[{"name":"c","type":"categorical","categories":["a","b"]},)"
                           R"({"name":"n","type":"numeric"}]})";
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::FromJson(good));
  EXPECT_EQ(p.feature_names(), (std::vector<std::string>{"c", "n"}));
  EXPECT_EQ(p.feature_types(), (std::vector<std::string>{"c", "q"}));

  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    return FeaturePipeline::FromJson(s).status();
  };
  EXPECT_NE(replace(R"("keel_pipeline":1)", R"("keel_pipeline":2)").message().find("version 2"),
            std::string::npos);
  EXPECT_NE(replace(R"(["a","b"])", R"(["b","a"])").message().find("sorted and unique"),
            std::string::npos);
  EXPECT_NE(replace(R"(["a","b"])", R"(["a","a"])").message().find("sorted and unique"),
            std::string::npos);
  EXPECT_NE(replace(R"("name":"n")", R"("name":"c")").message().find("named twice"),
            std::string::npos);
  EXPECT_NE(replace(R"("type":"numeric")", R"("type":"float")").message().find("unknown type"),
            std::string::npos);
  EXPECT_NE(replace(R"("native")", R"("ordinal")").message().find("unknown encoding"),
            std::string::npos);
  EXPECT_NE(replace(R"("type":"numeric"})", R"("type":"numeric","categories":["x"]})")
                .message()
                .find("lists categories"),
            std::string::npos);
  EXPECT_NE(replace(R"("numeric"}]})", R"("numeric"}],"feature_names":["c","m"]})")
                .message()
                .find("feature_names"),
            std::string::npos);
  EXPECT_FALSE(FeaturePipeline::FromJson("{").ok());
  EXPECT_FALSE(FeaturePipeline::FromJson(R"({"keel_pipeline":1,"encoding":"native",)"
                                         R"("missing_markers":[],"columns":[]})")
                   .ok());
}

TEST(PipelineTest, IdentityAndFitErrors) {
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Identity({"f0", "f1", "f2"}));
  EXPECT_EQ(p.num_features(), 3u);
  EXPECT_EQ(p.feature_types(), (std::vector<std::string>{"q", "q", "q"}));
  std::vector<float> x(3);
  EncodeStats stats;
  ASSERT_OK(p.EncodeJsonObject(R"({"f2":3,"f0":"1.5"})", x.data(), &stats));
  EXPECT_EQ(x[0], 1.5f);
  EXPECT_TRUE(std::isnan(x[1]));
  EXPECT_EQ(x[2], 3.0f);
  EXPECT_EQ(stats.missing, 1u);
  ASSERT_OK_AND_ASSIGN(FeaturePipeline q, FeaturePipeline::FromJson(p.ToJson()));
  EXPECT_TRUE(q == p);
  EXPECT_FALSE(FeaturePipeline::Identity({"a", "a"}).ok());
  EXPECT_FALSE(FeaturePipeline::Identity({}).ok());

  Table t = SmallTable();
  EXPECT_EQ(FeaturePipeline::Fit(t, {"x", "nope"}).status().message(),
            "the table has no column 'nope'");
  EXPECT_FALSE(FeaturePipeline::Fit(t, {"x", "x"}).ok());
  EXPECT_FALSE(FeaturePipeline::Fit(t, {}).ok());
}

// InitRow + EncodeJsonValue per field gives exactly what EncodeJsonObject
// gives for the whole record; EncodeTextValue what EncodeCsvFields gives.
TEST(PipelineTest, PerValueEncodingMatchesRecordEncoding) {
  Table t = SmallTable();
  for (CategoricalEncoding enc : {CategoricalEncoding::kOneHot, CategoricalEncoding::kNative}) {
    PipelineOptions options;
    options.encoding = enc;
    ASSERT_OK_AND_ASSIGN(FeaturePipeline p,
                         FeaturePipeline::Fit(t, {"x", "color", "flag", "code"}, options));
    const size_t w = p.num_features();
    std::vector<float> missing(w, -7.0f), all_missing(w, -7.0f);
    p.InitRow(missing.data());
    ASSERT_OK(p.EncodeJsonObject("{}", all_missing.data()));
    EXPECT_TRUE(SameFloats(missing, all_missing));

    const std::vector<std::string> records = {
        R"({"x":1.5,"color":"red","flag":true,"code":415})",
        R"({"x":"2","color":"green","flag":"no","code":"510"})",
        R"({"x":null,"color":"NA","flag":null,"code":1})",
        R"({"x":" 1e3 ","color":null,"flag":0,"code":"NA"})", R"({"color":"blue"})"};
    simdjson::dom::parser dom;
    for (const std::string& json : records) {
      std::vector<float> expected(w, -7.0f);
      EncodeStats expected_stats;
      ASSERT_OK(p.EncodeJsonObject(json, expected.data(), &expected_stats));

      std::vector<float> got(w, -7.0f);
      p.InitRow(got.data());
      EncodeStats stats;
      simdjson::dom::object obj = dom.parse(json).get_object().value();
      size_t seen = 0;
      for (simdjson::dom::key_value_pair kv : obj) {
        const int c = p.InputColumnIndex(kv.key);
        ASSERT_GE(c, 0);
        ASSERT_OK(p.EncodeJsonValue(static_cast<size_t>(c), kv.value, got.data(), &stats));
        ++seen;
      }
      stats.missing += p.input_columns().size() - seen;  // absent columns
      EXPECT_TRUE(SameFloats(got, expected)) << json;
      EXPECT_EQ(stats.missing, expected_stats.missing) << json;
      EXPECT_EQ(stats.unknown, expected_stats.unknown) << json;
    }

    // Text values: as CSV fields.
    ASSERT_OK_AND_ASSIGN(ColumnMap map, p.MapCsvHeader({"x", "color", "flag", "code"}));
    const std::vector<std::vector<std::string_view>> rows = {
        {"1.5", "red", "TRUE", "415"}, {"", "zzz", "no", "1.0"}, {"NA", " red", "0", "415.0"}};
    for (const auto& fields : rows) {
      std::vector<float> expected(w, -7.0f), got(w, -7.0f);
      EncodeStats expected_stats, stats;
      ASSERT_OK(p.EncodeCsvFields(fields, map, expected.data(), &expected_stats));
      p.InitRow(got.data());
      for (size_t c = 0; c < fields.size(); ++c) {
        ASSERT_OK(p.EncodeTextValue(c, fields[c], got.data(), &stats));
      }
      EXPECT_TRUE(SameFloats(got, expected)) << fields[0];
      EXPECT_EQ(stats.missing, expected_stats.missing);
      EXPECT_EQ(stats.unknown, expected_stats.unknown);
    }
  }
}

TEST(PipelineTest, PerValueEncodingTouchesOnlyItsColumnAndNamesTheField) {
  Table t = SmallTable();
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(t, {"x", "color", "flag"}));
  // x, color=blue, color=red, flag
  std::vector<float> row(4, -7.0f);
  simdjson::dom::parser dom;
  simdjson::dom::element red = dom.parse(std::string(R"("red")")).value();
  EncodeStats stats;
  ASSERT_OK(p.EncodeJsonValue(1, red, row.data(), &stats));
  EXPECT_EQ(row, (std::vector<float>{-7, 0, 1, -7}));
  EXPECT_EQ(stats.missing, 0u);
  ASSERT_OK(p.EncodeTextValue(0, "NA", row.data(), &stats));
  EXPECT_TRUE(std::isnan(row[0]));
  EXPECT_EQ(stats.missing, 1u);
  ASSERT_OK(p.EncodeTextValue(1, "purple", row.data(), &stats));
  EXPECT_EQ(stats.unknown, 1u);
  EXPECT_EQ(row[1], 0.0f);
  EXPECT_EQ(row[2], 0.0f);

  simdjson::dom::parser dom2;
  simdjson::dom::element arr = dom2.parse(std::string("[1]")).value();
  EXPECT_EQ(p.EncodeJsonValue(0, arr, row.data()).message(),
            "field 'x': expected a number, string, boolean or null");
  simdjson::dom::parser dom3;
  simdjson::dom::element yes = dom3.parse(std::string("true")).value();
  EXPECT_EQ(p.EncodeJsonValue(0, yes, row.data()).message(),
            "field 'x': expected a number, got a boolean");
  EXPECT_EQ(p.EncodeTextValue(2, "maybe", row.data()).message(),
            "field 'flag': \"maybe\" is not a boolean");
  EXPECT_EQ(p.EncodeTextValue(0, "12x", row.data()).message(),
            "field 'x': \"12x\" is not a number");
  EXPECT_EQ(p.EncodeTextValue(3, "1", row.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p.EncodeJsonValue(99, yes, row.data()).code(), StatusCode::kInvalidArgument);
}

TEST(PipelineTest, FitUsesOnlyCategoriesPresentInRows) {
  Table t = SmallTable();
  std::vector<uint32_t> rows = {0};
  ASSERT_OK_AND_ASSIGN(Table first, t.Take(rows));
  ASSERT_OK_AND_ASSIGN(FeaturePipeline p, FeaturePipeline::Fit(first, {"color"}));
  EXPECT_EQ(p.input_columns()[0].categories, (std::vector<std::string>{"red"}));
}

}  // namespace
}  // namespace keel::data
