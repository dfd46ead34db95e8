// Internal: the table of store backends, keyed by URI scheme.
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "keel/store/store.h"

namespace keel::store::internal {

// Opens a backend-specific database from the part of the URI after "scheme:".
using BackendOpener = Result<std::unique_ptr<Database>> (*)(std::string_view uri,
                                                            const OpenOptions& options);

struct Backend {
  std::string_view scheme;  // "sqlite"
  BackendOpener open;
};

// The registered backends (src/store/backends.cc).
std::span<const Backend> Backends();

// Applies migrations (src/store/migrations/NNNN_*.sql) up to `target` (-1: all).
Status Migrate(Database& db, int target);

Result<std::unique_ptr<Database>> OpenSqlite(std::string_view uri, const OpenOptions& options);
// postgresql://user[:password]@host[:port]/db (also postgres://), through libpq.
Result<std::unique_ptr<Database>> OpenPostgres(std::string_view uri, const OpenOptions& options);

}  // namespace keel::store::internal
