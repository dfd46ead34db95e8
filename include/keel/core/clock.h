// File: keel/core/clock.h
//
// The time seam. Everything that reads the time takes a Clock& so tests can
// compress time with ManualClock instead of sleeping.
//
//   keel::SystemClock clock;
//   int64_t now = clock.NowMillis();
#pragma once

#include <atomic>
#include <cstdint>

namespace keel {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (UTC). Thread-safe.
  virtual int64_t NowMillis() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMillis() const override;
  // A process-wide instance.
  static SystemClock& Default();
};

// A clock that only moves when told. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms) : now_(start_ms) {}
  int64_t NowMillis() const override { return now_.load(); }
  void Advance(int64_t ms) { now_ += ms; }
  void Set(int64_t ms) { now_ = ms; }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace keel
