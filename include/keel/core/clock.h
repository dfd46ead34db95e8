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
#include <string>

namespace keel {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (UTC). Thread-safe.
  virtual int64_t NowMillis() const = 0;
};

// The system's wall clock. Default() is the process-wide instance every
// command uses; when the environment names KEEL_CLOCK_OFFSET_FILE (a test
// hook: end-to-end tests move a real server's time forward without
// waiting), Default() adds the whole milliseconds that file holds to the
// system time (re-read at most every 20 ms; a missing, empty or unreadable
// file adds 0). The offset is the tests' to keep monotonic.
class SystemClock final : public Clock {
 public:
  SystemClock() = default;
  explicit SystemClock(std::string offset_file) : offset_file_(std::move(offset_file)) {}
  int64_t NowMillis() const override;
  static SystemClock& Default();

 private:
  int64_t Offset() const;
  std::string offset_file_;
  mutable std::atomic<int64_t> offset_{0};
  mutable std::atomic<int64_t> offset_read_at_{INT64_MIN};  // steady ms of the last read
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
