#include <array>

#include "src/store/backend.h"

namespace keel::store::internal {

// Adding a backend: one line here plus its folder (see docs/extending.md).
std::span<const Backend> Backends() {
  static const std::array<Backend, 3> kBackends = {{
      {"sqlite", &OpenSqlite},
      {"postgresql", &OpenPostgres},
      {"postgres", &OpenPostgres},
  }};
  return kBackends;
}

}  // namespace keel::store::internal
