// File: keel/core/big_buffer.h
//
// Page advice for large numeric arrays about to be filled (a column of a
// million doubles): huge pages, and faulting pages in ahead in one system
// call. On virtual machines, where a page fault is expensive, that is much of
// the cost of filling a fresh array. The CSV reader's bulk reads use both.
//
//   std::vector<double> values;
//   values.reserve(1'000'000);
//   keel::AdviseHugePages(values.data(), values.capacity() * sizeof(double));
//   keel::PrefaultPages(values.data(), 65536 * sizeof(double));  // the next rows
//
// The kernel decides whether huge pages are used (THP "madvise" or "always");
// the advice stays with the address range after the memory is freed, so it
// suits short-lived processes. Both may be called from any thread.
#pragma once

#include <cstddef>

namespace keel {

inline constexpr size_t kBigBufferBytes = size_t{4} << 20;

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

}  // namespace keel
