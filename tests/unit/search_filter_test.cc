#include "src/tracking/search_filter.h"

#include <gtest/gtest.h>

namespace keel::tracking::internal {
namespace {

TEST(SearchFilterTest, ParsesEveryEntityAndOperator) {
  auto r = ParseRunFilter(
      "metrics.acc > 0.5 and params.model = 'gbm' AND tags.`mlflow.runName` LIKE 'melodic%' "
      "and attributes.status IN ('FINISHED', 'FAILED') and run_name ILIKE '%Fish%' and "
      "metrics.\"my loss\" <= -1e-3 and attribute.created >= 1700000000000 and "
      "datasets.name NOT IN ('a') and params.lr != \"0.1\"");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 9u);
  EXPECT_EQ((*r)[0].entity, Entity::kMetric);
  EXPECT_EQ((*r)[0].op, Op::kGt);
  EXPECT_EQ(std::get<double>((*r)[0].value), 0.5);
  EXPECT_EQ((*r)[1].entity, Entity::kParam);
  EXPECT_EQ(std::get<std::string>((*r)[1].value), "gbm");
  EXPECT_EQ((*r)[2].key, "mlflow.runName");
  EXPECT_EQ((*r)[2].op, Op::kLike);
  EXPECT_EQ((*r)[3].op, Op::kIn);
  EXPECT_EQ(std::get<std::vector<std::string>>((*r)[3].value),
            (std::vector<std::string>{"FINISHED", "FAILED"}));
  EXPECT_EQ((*r)[4].entity, Entity::kAttribute);
  EXPECT_EQ((*r)[4].key, "run_name");
  EXPECT_EQ((*r)[4].op, Op::kILike);
  EXPECT_EQ((*r)[5].key, "my loss");
  EXPECT_EQ(std::get<double>((*r)[5].value), -1e-3);
  EXPECT_EQ((*r)[6].key, "start_time");  // "created" is an alias
  EXPECT_EQ((*r)[7].entity, Entity::kDataset);
  EXPECT_EQ((*r)[7].op, Op::kNotIn);
  EXPECT_EQ((*r)[8].op, Op::kNe);
}

TEST(SearchFilterTest, EmptyFilterMatchesEverything) {
  auto r = ParseRunFilter("   ");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
}

TEST(SearchFilterTest, SqlLookingValuesStayValues) {
  auto r = ParseRunFilter("params.x = 'a''; DROP TABLE runs; --'");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(std::get<std::string>((*r)[0].value), "a'; DROP TABLE runs; --");
}

struct BadFilter {
  const char* filter;
  const char* fragment;  // expected in the message
};

class BadFilterTest : public ::testing::TestWithParam<BadFilter> {};

TEST_P(BadFilterTest, ErrorNamesThePosition) {
  auto r = ParseRunFilter(GetParam().filter);
  ASSERT_FALSE(r.ok()) << GetParam().filter;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(GetParam().fragment), std::string::npos)
      << r.status().message();
}

INSTANTIATE_TEST_SUITE_P(
    Grammar, BadFilterTest,
    ::testing::Values(BadFilter{"metrics.acc >", "at position 13"},
                      BadFilter{"metrics.acc > 'x'", "expected a number"},
                      BadFilter{"params.model > 'x'", "at position 13"},
                      BadFilter{"params.model = 5", "expected a quoted string"},
                      BadFilter{"foo.bar = 'x'", "invalid entity type 'foo'"},
                      BadFilter{"attributes.nope = 'x'", "invalid attribute key 'nope'"},
                      BadFilter{"metrics.a > 1 or metrics.b > 2", "'OR' is not supported"},
                      BadFilter{"params.a = 'x", "unterminated quote"},
                      BadFilter{"metrics.a > 1 metrics.b > 2", "at position 14"},
                      BadFilter{"params.a IN ('x')", "operator 'IN' is not valid"},
                      BadFilter{"status IN 'x'", "expected '('"},
                      BadFilter{"metrics.a ~ 1", "unexpected character '~' at position 10"}));

TEST(OrderByTest, ParsesDirectionAndEntity) {
  auto ob = ParseRunOrderBy("metrics.auc DESC");
  ASSERT_TRUE(ob.ok());
  EXPECT_EQ(ob->entity, Entity::kMetric);
  EXPECT_EQ(ob->key, "auc");
  EXPECT_FALSE(ob->ascending);
  ob = ParseRunOrderBy("start_time");
  ASSERT_TRUE(ob.ok());
  EXPECT_EQ(ob->entity, Entity::kAttribute);
  EXPECT_TRUE(ob->ascending);
  EXPECT_FALSE(ParseRunOrderBy("metrics.auc SIDEWAYS").ok());
  EXPECT_FALSE(ParseRunOrderBy("datasets.name").ok());
}

TEST(FilterSchemaTest, ExperimentsAllowOnlyNameTagsAndTimes) {
  EXPECT_TRUE(ParseFilter("name LIKE 'churn%' and tags.team = 'x'", ExperimentFilterSchema()).ok());
  EXPECT_TRUE(ParseFilter("creation_time > 5", ExperimentFilterSchema()).ok());
  EXPECT_FALSE(ParseFilter("metrics.a > 1", ExperimentFilterSchema()).ok());
  EXPECT_FALSE(ParseFilter("status = 'x'", ExperimentFilterSchema()).ok());
}

}  // namespace
}  // namespace keel::tracking::internal
