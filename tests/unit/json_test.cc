#include "keel/core/json.h"

#include <gtest/gtest.h>

#include <cmath>

#include "keel/core/util.h"

namespace keel {
namespace {

TEST(JsonWriterTest, EscapesAndNests) {
  JsonWriter w;
  w.BeginObject();
  w.Key("s");
  w.String("a\"b\\c\n\x01");
  w.Key("list");
  w.BeginArray();
  w.Int(-5);
  w.Bool(true);
  w.Null();
  w.EndArray();
  w.EndObject();
  EXPECT_EQ(w.str(), R"({"s":"a\"b\\c\n\u0001","list":[-5,true,null]})");
}

TEST(JsonWriterTest, DoublesFollowMlflowConventions) {
  JsonWriter w;
  w.BeginArray();
  w.Double(0.1);
  w.Double(2.0);
  w.Double(std::nan(""));
  w.Double(HUGE_VAL);
  w.Double(-HUGE_VAL);
  w.Double(0.925326846425619);
  w.EndArray();
  EXPECT_EQ(w.str(), R"([0.1,2.0,"NaN","Infinity","-Infinity",0.925326846425619])");
}

TEST(JsonReaderTest, Int64AcceptsNumberOrString) {
  auto doc = ParseJsonObject(R"({"a": 1795705763125, "b": "1795705763125", "c": "x", "d": 1.5})");
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(**JsonInt64(doc->root(), "a"), 1795705763125);
  EXPECT_EQ(**JsonInt64(doc->root(), "b"), 1795705763125);
  EXPECT_FALSE(JsonInt64(doc->root(), "c").ok());
  EXPECT_FALSE(JsonInt64(doc->root(), "d").ok());
  EXPECT_FALSE(JsonInt64(doc->root(), "missing")->has_value());
}

TEST(JsonReaderTest, DoubleAcceptsSpecialStrings) {
  auto doc = ParseJsonObject(R"({"n": "NaN", "i": "Infinity", "m": "-Infinity", "v": 3, "s": "abc"})");
  ASSERT_TRUE(doc.ok());
  EXPECT_TRUE(std::isnan(**JsonDouble(doc->root(), "n")));
  EXPECT_EQ(**JsonDouble(doc->root(), "i"), HUGE_VAL);
  EXPECT_EQ(**JsonDouble(doc->root(), "m"), -HUGE_VAL);
  EXPECT_EQ(**JsonDouble(doc->root(), "v"), 3.0);
  auto bad = JsonDouble(doc->root(), "s");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'s'"), std::string::npos);
}

TEST(JsonReaderTest, RejectsMalformedAndNonObjects) {
  EXPECT_FALSE(ParseJsonObject("{").ok());
  EXPECT_FALSE(ParseJsonObject("[1,2]").ok());
  EXPECT_EQ(ParseJsonObject("[1]").status().code(), StatusCode::kInvalidArgument);
}

TEST(UtilTest, Base64RoundTripAndMlflowToken) {
  EXPECT_EQ(Base64Encode("{\"offset\": 2}"), "eyJvZmZzZXQiOiAyfQ==");
  EXPECT_EQ(*Base64Decode("eyJvZmZzZXQiOiAyfQ=="), "{\"offset\": 2}");
  for (std::string s : {"", "a", "ab", "abc", "abcd"}) EXPECT_EQ(*Base64Decode(Base64Encode(s)), s);
  EXPECT_FALSE(Base64Decode("a*b").has_value());
}

TEST(UtilTest, UrlDecode) {
  EXPECT_EQ(*UrlDecode("a%2Fb+c", false), "a/b+c");
  EXPECT_EQ(*UrlDecode("a%2Fb+c", true), "a/b c");
  EXPECT_FALSE(UrlDecode("%2", false).has_value());
  EXPECT_FALSE(UrlDecode("%zz", false).has_value());
  EXPECT_EQ(UrlDecode("%00", false)->size(), 1u);
}

TEST(UtilTest, RandomHexIsHexOfRightLength) {
  std::string a = RandomHex(16), b = RandomHex(16);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
}

}  // namespace
}  // namespace keel

namespace keel {
namespace {

TEST(IsJsonNumberTest, FollowsTheJsonGrammar) {
  for (const char* ok : {"0", "-0", "7", "128", "-3.25", "1e5", "1E-5", "2.5e+10", "0.0"}) {
    EXPECT_TRUE(IsJsonNumber(ok)) << ok;
  }
  for (const char* bad : {"", "-", "007", "01", "1.", ".5", "+1", "1e", "1e+", "NaN",
                          "Infinity", "0x10", "1 ", " 1", "1,5"}) {
    EXPECT_FALSE(IsJsonNumber(bad)) << bad;
  }
}

}  // namespace
}  // namespace keel
