// Internal: schema migrations embedded from src/store/migrations/NNNN_name.sql.
#pragma once

#include <span>
#include <string_view>

namespace keel::store::internal {

struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

// Ordered by version, 1..N without gaps (generated at build time).
std::span<const Migration> Migrations();

}  // namespace keel::store::internal
