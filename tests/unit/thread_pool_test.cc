// ThreadPool: every index runs exactly once, nested calls run inline instead
// of deadlocking, and a range's exception reaches the caller.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "keel/core/thread_pool.h"

namespace keel {
namespace {

TEST(ThreadPool, EveryIndexOnce) {
  ThreadPool pool(2);
  for (size_t n : {0u, 1u, 7u, 1000u, 100001u}) {
    std::vector<std::atomic<int>> seen(n);
    pool.ParallelFor(
        n,
        [&](size_t b, size_t e) {
          for (size_t i = b; i < e; ++i) seen[i].fetch_add(1);
        },
        16);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(seen[i].load(), 1) << "n=" << n << " i=" << i;
  }
}

TEST(ThreadPool, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::atomic<size_t> total{0};
  pool.ParallelFor(64, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      pool.ParallelFor(100, [&](size_t b2, size_t e2) { total.fetch_add(e2 - b2); });
    }
  });
  EXPECT_EQ(total.load(), 6400u);
}

TEST(ThreadPool, ExceptionsReachTheCaller) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.ParallelFor(10000,
                                [&](size_t b, size_t e) {
                                  if (b <= 5000 && 5000 < e)
                                    throw std::runtime_error("range failed");
                                }),
               std::runtime_error);
  // The pool still works afterwards.
  std::atomic<size_t> count{0};
  pool.ParallelFor(1000, [&](size_t b, size_t e) { count.fetch_add(e - b); });
  EXPECT_EQ(count.load(), 1000u);
}

}  // namespace
}  // namespace keel
