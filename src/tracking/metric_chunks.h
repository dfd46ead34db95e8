// Internal: the on-disk encoding of metric history chunks (see migration 0001):
// n records of 24 bytes, little-endian: step int64, timestamp int64, value float64.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "keel/tracking/tracking.h"

namespace keel::tracking::internal {

static_assert(std::endian::native == std::endian::little,
              "metric chunks are stored little-endian; add byte swapping for this platform");

inline constexpr size_t kPointBytes = 24;

struct Point {
  int64_t step;
  int64_t timestamp;
  double value;
};

inline void AppendPoint(std::string& out, const Metric& m) {
  char buf[kPointBytes];
  std::memcpy(buf, &m.step, 8);
  std::memcpy(buf + 8, &m.timestamp, 8);
  std::memcpy(buf + 16, &m.value, 8);
  out.append(buf, kPointBytes);
}

// Appends the points of one chunk; false when the blob is not a whole number of records.
inline bool DecodePoints(std::string_view blob, std::vector<Point>& out) {
  if (blob.size() % kPointBytes != 0) return false;
  size_t n = blob.size() / kPointBytes;
  size_t base = out.size();
  out.resize(base + n);
  std::memcpy(out.data() + base, blob.data(), blob.size());
  return true;
}

static_assert(sizeof(Point) == kPointBytes);

}  // namespace keel::tracking::internal
