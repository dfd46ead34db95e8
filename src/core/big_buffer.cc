#include "keel/core/big_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace keel::internal {

constexpr size_t kHugePage = size_t{2} << 20;

namespace {

size_t RoundUp(size_t bytes) { return (bytes + kHugePage - 1) & ~(kHugePage - 1); }

}  // namespace

void* MapBigBuffer(size_t bytes) {
  // Map one huge page more than needed and trim both ends, so the block
  // starts on a 2 MiB boundary (THP only backs aligned 2 MiB ranges).
  const size_t size = RoundUp(bytes);
  void* raw =
      mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + size + kHugePage;
  if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
  void* p = reinterpret_cast<void*>(aligned);
  // Advice only: without THP the mapping works the same with 4 KiB pages.
  (void)madvise(p, size, MADV_HUGEPAGE);
  return p;
}

void UnmapBigBuffer(void* p, size_t bytes) { munmap(p, RoundUp(bytes)); }

}  // namespace keel::internal

namespace keel {

void AdviseHugePages(void* p, size_t bytes) {
  if (p == nullptr || bytes < kBigBufferBytes) return;
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = (start + internal::kHugePage - 1) & ~(uintptr_t{internal::kHugePage} - 1);
  const uintptr_t last = (start + bytes) & ~(uintptr_t{internal::kHugePage} - 1);
  if (last > first) (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

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
