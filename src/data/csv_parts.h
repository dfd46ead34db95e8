// ReadCsvTable's read of a large file in parts on all cores. Internal to
// src/data; declared here so tests can tell the two ways of reading apart.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "keel/data/csv.h"

namespace keel::data::internal {

// Files at least twice this size are read in parts of about this size.
inline constexpr uint64_t kCsvPartBytes = uint64_t{8} << 20;

// ReadCsvTable(path, options) on ThreadPool::Default(), the file cut at line
// ends into parts of about `part_bytes` read at once. The result equals the
// one-thread read's. nullopt whenever that cannot be promised or the read
// fails: read_in_parts off, a pool of one thread, a file under
// 2 * part_bytes, a quote anywhere after the header (a cut found by looking
// for a line end could then fall inside a quoted field), a byte-order mark at
// a cut, or any error; the caller then reads serially, which words any error
// with its line.
std::optional<Table> ReadInParts(const std::string& path, const CsvOptions& options,
                                 uint64_t part_bytes = kCsvPartBytes);

}  // namespace keel::data::internal
