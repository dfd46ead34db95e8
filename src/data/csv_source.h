// CsvReader::Source: where a CsvReader's bytes come from. Internal to
// src/data (the public header only names the class).
#pragma once

#include <cstddef>
#include <cstdint>

#include "keel/core/result.h"
#include "keel/data/csv.h"

namespace keel::data {

class CsvReader::Source {
 public:
  virtual ~Source() = default;
  // Reads up to `n` bytes into `dst`; 0 at the end.
  virtual Result<size_t> Read(char* dst, size_t n) = 0;
  // Size in bytes, 0 when unknown.
  virtual uint64_t Size() const = 0;
};

}  // namespace keel::data
