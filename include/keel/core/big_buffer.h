// File: keel/core/big_buffer.h
//
// An allocator for large numeric arrays (a column of a million doubles):
// blocks of at least kBigBufferBytes are mapped directly and marked for
// transparent huge pages, so filling them takes one page fault per 2 MiB
// instead of one per 4 KiB. On virtual machines, where a fault is expensive,
// that is most of the cost of filling a fresh array. Smaller blocks come from
// operator new.
//
//   std::vector<double, keel::BigBufferAllocator<double>> values;
//   values.reserve(1'000'000);   // one mapping, huge pages when the kernel allows
//
// The kernel decides whether huge pages are used (THP "madvise" or "always");
// with THP off this behaves like any mapping. Stateless: all instances are
// equal and may be used from any thread.
#pragma once

#include <cstddef>
#include <new>

namespace keel {

inline constexpr size_t kBigBufferBytes = size_t{4} << 20;

namespace internal {
void* MapBigBuffer(size_t bytes);  // throws std::bad_alloc on failure
void UnmapBigBuffer(void* p, size_t bytes);
}  // namespace internal

// Marks the whole 2 MiB pages inside [p, p + bytes) of memory not yet touched
// (e.g. a std::vector's fresh capacity after reserve()) for transparent huge
// pages. Advice only; blocks under kBigBufferBytes are left alone.
void AdviseHugePages(void* p, size_t bytes);

// Faults in, for writing, the whole pages inside [p, p + bytes) in one
// system call (MADV_POPULATE_WRITE) instead of one fault per page as they are
// first written; contents are unchanged. Only for memory about to be filled:
// the pages are backed at once. Advice only: without kernel support (before
// Linux 5.14) nothing happens.
void PrefaultPages(void* p, size_t bytes);

template <typename T>
struct BigBufferAllocator {
  using value_type = T;
  BigBufferAllocator() = default;
  template <typename U>
  BigBufferAllocator(const BigBufferAllocator<U>&) {}  // NOLINT: rebinding is implicit

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes >= kBigBufferBytes) return static_cast<T*>(internal::MapBigBuffer(bytes));
    return static_cast<T*>(::operator new (bytes, std::align_val_t{alignof(T)}));
  }
  void deallocate(T* p, size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes >= kBigBufferBytes) {
      internal::UnmapBigBuffer(p, bytes);
    } else {
      ::operator delete (p, std::align_val_t{alignof(T)});
    }
  }
  template <typename U>
  bool operator==(const BigBufferAllocator<U>&) const {
    return true;
  }
};

}  // namespace keel
