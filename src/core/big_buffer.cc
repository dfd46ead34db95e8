#include "keel/core/big_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace keel {

void PrefaultPages(void* p, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  static const auto kPage = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = (start + kPage - 1) & ~(kPage - 1);
  const uintptr_t last = (start + bytes) & ~(kPage - 1);
  if (p != nullptr && last > first) {
    (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_POPULATE_WRITE);
  }
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace keel
