// Internal: turning Result<json body> functions into route handlers.
#pragma once

#include <string>

#include "keel/api/app.h"

namespace keel::api::internal {

using JsonHandler = Result<std::string> (*)(App& app, const Request& request);

template <JsonHandler F>
Response Wrap(App& app, const Request& request) {
  Result<std::string> body = F(app, request);
  if (!body.ok()) return Response::Error(body.status());
  return Response::Json(std::move(*body));
}

inline constexpr const char* kEmptyJson = "{}";

}  // namespace keel::api::internal
