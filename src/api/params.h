// Internal: reading MLflow request messages from a GET query or a JSON body.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "keel/api/app.h"
#include "keel/core/json.h"

namespace keel::api::internal {

class Params {
 public:
  // GET (and bodiless DELETE): the query string; otherwise a JSON object body
  // (an empty body reads as {}).
  static Result<Params> From(const Request& request);

  Result<std::optional<std::string>> Str(std::string_view key) const;
  // Missing or empty -> INVALID_PARAMETER_VALUE "Missing value for required parameter 'key'".
  Result<std::string> RequiredStr(std::string_view key) const;
  Result<std::optional<int64_t>> Int(std::string_view key) const;
  Result<std::optional<double>> Double(std::string_view key) const;
  Result<std::optional<bool>> Bool(std::string_view key) const;
  // A JSON array of strings, or repeated query keys.
  Result<std::vector<std::string>> StrList(std::string_view key) const;
  // A JSON array of {key, value} objects.
  Result<std::vector<tracking::Tag>> Tags(std::string_view key) const;
  // A JSON array of objects (empty when absent).
  Result<std::vector<simdjson::dom::element>> Objects(std::string_view key) const;

 private:
  const Request* request_ = nullptr;
  std::optional<JsonDoc> doc_;
};

Status MissingParameter(std::string_view key);

}  // namespace keel::api::internal
