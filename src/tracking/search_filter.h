// Internal: MLflow's run-search filter and order_by grammar.
//
//   filter   := comparison ( AND comparison )*
//   comparison := identifier op value
//   identifier := [entity "."] key        entity: metric(s) param(s) parameter(s) tag(s)
//                                          attribute(s) attr run dataset(s); none = attribute
//   key      := name | `quoted` | "quoted"
//   value    := number | 'string' | "string" | ( 'a', 'b', ... )
//
// Errors are InvalidArgument "Invalid filter '...': <what> at position N".
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "keel/core/result.h"

namespace keel::tracking::internal {

enum class Entity { kMetric, kParam, kTag, kAttribute, kDataset };

enum class Op { kEq, kNe, kLt, kLe, kGt, kGe, kLike, kILike, kIn, kNotIn };

struct Comparison {
  Entity entity;
  std::string key;  // attribute keys are canonical: "start_time" for "created"
  Op op;
  std::variant<double, std::string, std::vector<std::string>> value;
};

struct OrderBy {
  Entity entity;
  std::string key;
  bool ascending = true;
};

// What a filter may name: the attribute keys of the searched entity and
// whether the run-only entities (metrics, params, datasets) are allowed.
struct FilterSchema {
  std::vector<std::string_view> string_attributes;
  std::vector<std::string_view> numeric_attributes;
  bool run_entities = false;
  bool IsString(std::string_view key) const;
  bool IsNumeric(std::string_view key) const;
};

const FilterSchema& RunFilterSchema();         // run_id, run_name, status, ... start_time
const FilterSchema& ExperimentFilterSchema();  // name; creation_time, last_update_time
const FilterSchema& RegisteredModelFilterSchema();  // name
const FilterSchema& ModelVersionFilterSchema();     // name, run_id, source_path; version_number

Result<std::vector<Comparison>> ParseFilter(std::string_view filter, const FilterSchema& schema);
Result<std::vector<Comparison>> ParseRunFilter(std::string_view filter);
Result<OrderBy> ParseOrderBy(std::string_view clause, const FilterSchema& schema);
Result<OrderBy> ParseRunOrderBy(std::string_view clause);

std::string_view OpSql(Op op);

// Appends SQL comparing `column` with a string comparison (=, !=, LIKE, ILIKE,
// IN, NOT IN), binding its values into `params` (store::Value).
template <typename ValueVector>
void AppendStringPredicate(const std::string& column, const Comparison& c, ValueVector& params,
                           std::string& sql) {
  if (c.op == Op::kIn || c.op == Op::kNotIn) {
    const auto& list = std::get<std::vector<std::string>>(c.value);
    sql += column + (c.op == Op::kIn ? " IN (" : " NOT IN (");
    for (size_t i = 0; i < list.size(); ++i) {
      sql += i ? ",?" : "?";
      params.emplace_back(list[i]);
    }
    sql += ")";
  } else if (c.op == Op::kILike) {
    sql += "LOWER(" + column + ") LIKE LOWER(?)";
    params.emplace_back(std::get<std::string>(c.value));
  } else {
    sql += column + " " + std::string(OpSql(c.op)) + " ?";
    params.emplace_back(std::get<std::string>(c.value));
  }
}

// MLflow's page tokens: base64 of {"offset": N}.
Result<int64_t> DecodeOffsetToken(const std::string& token);
std::string EncodeOffsetToken(int64_t offset);

}  // namespace keel::tracking::internal
