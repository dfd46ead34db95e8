// File: keel/core/big_buffer.h
//
// Page advice for large numeric arrays about to be filled (a column of a
// million doubles): their pages faulted in ahead, in one system call. On
// virtual machines, where a page fault is expensive, that is much of the
// cost of filling a fresh array. The CSV reader's bulk reads use it.
//
//   std::vector<double> values;
//   values.reserve(1'000'000);
//   keel::PrefaultPages(values.data(), 65536 * sizeof(double));  // the next rows
//
// May be called from any thread.
#pragma once

#include <cstddef>

namespace keel {

// Faults in, for writing, the whole pages inside [p, p + bytes) in one
// system call (MADV_POPULATE_WRITE) instead of one fault per page as they are
// first written; contents are unchanged. Only for memory about to be filled:
// the pages are backed at once. Advice only: without kernel support (before
// Linux 5.14) nothing happens.
void PrefaultPages(void* p, size_t bytes);

}  // namespace keel
