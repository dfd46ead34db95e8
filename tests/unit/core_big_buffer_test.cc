// keel/core/big_buffer.h: prefaulting never changes contents; PrefaultPages backs a fresh mapping
// at once where the kernel has MADV_POPULATE_WRITE.
#include "keel/core/big_buffer.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace keel {
namespace {

TEST(BigBufferTest, AdviceKeepsContents) {
  std::vector<unsigned char> bytes(3 * 4096 + 100);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 7);
  const std::vector<unsigned char> before = bytes;
  // Unaligned ranges, empty ranges and null are all accepted.
  PrefaultPages(bytes.data() + 1, bytes.size() - 1);
  PrefaultPages(bytes.data(), 0);
  PrefaultPages(nullptr, 4096);
  EXPECT_EQ(bytes, before);
}

TEST(BigBufferTest, PrefaultBacksAFreshMappingAtOnce) {
#ifndef MADV_POPULATE_WRITE
  GTEST_SKIP() << "headers without MADV_POPULATE_WRITE";
#else
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t pages = 64;
  void* map =
      mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(map, MAP_FAILED);
  auto resident = [&]() {
    std::vector<unsigned char> in_core(pages);
    EXPECT_EQ(mincore(map, pages * page, in_core.data()), 0);
    size_t n = 0;
    for (unsigned char c : in_core) n += c & 1;
    return n;
  };
  EXPECT_EQ(resident(), 0u) << "a fresh anonymous mapping has no pages yet";
  if (madvise(map, page, MADV_POPULATE_WRITE) != 0) {
    munmap(map, pages * page);
    GTEST_SKIP() << "this kernel has no MADV_POPULATE_WRITE (Linux 5.14+)";
  }
  // Half a page in: the first whole page starts at page 1.
  PrefaultPages(static_cast<char*>(map) + page / 2, (pages - 1) * page);
  EXPECT_EQ(resident(), pages - 1) << "page 0 (advised above) and pages 1..62 are backed";
  const auto* bytes = static_cast<const unsigned char*>(map);
  for (size_t i = 0; i < pages * page; i += page / 2) EXPECT_EQ(bytes[i], 0) << "at " << i;
  munmap(map, pages * page);
#endif
}

}  // namespace
}  // namespace keel
