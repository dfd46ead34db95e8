#include "keel/core/clock.h"

#include <chrono>
#include <cstdlib>
#include <fstream>

namespace keel {

int64_t SystemClock::NowMillis() const {
  using namespace std::chrono;
  const int64_t now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  return offset_file_.empty() ? now : now + Offset();
}

int64_t SystemClock::Offset() const {
  using namespace std::chrono;
  const int64_t steady =
      duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
  int64_t read_at = offset_read_at_.load(std::memory_order_relaxed);
  if (read_at != INT64_MIN && steady - read_at < 20) return offset_.load(std::memory_order_relaxed);
  int64_t offset = 0;
  std::ifstream in(offset_file_);
  if (!(in >> offset)) offset = 0;
  offset_.store(offset, std::memory_order_relaxed);
  offset_read_at_.store(steady, std::memory_order_relaxed);
  return offset;
}

SystemClock& SystemClock::Default() {
  static SystemClock clock = [] {
    const char* file = std::getenv("KEEL_CLOCK_OFFSET_FILE");
    return file != nullptr && *file != '\0' ? SystemClock(file) : SystemClock();
  }();
  return clock;
}

}  // namespace keel
