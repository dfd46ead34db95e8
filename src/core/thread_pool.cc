#include "keel/core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <latch>

namespace keel {
namespace {
// True on a pool's worker threads: a ParallelFor from inside a range runs
// inline instead of waiting on workers that may all be busy waiting too.
thread_local bool tl_pool_worker = false;
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::WorkerLoop() {
  tl_pool_worker = true;
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();
  }
}

void ThreadPool::ParallelFor(size_t n, const std::function<void(size_t, size_t)>& fn,
                             size_t grain) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  const size_t parts = std::min<size_t>(static_cast<size_t>(size()), (n + grain - 1) / grain);
  if (parts <= 1 || tl_pool_worker) {
    fn(0, n);
    return;
  }
  // Ranges are claimed dynamically so a slow thread does not hold up the rest.
  const size_t chunks = std::min(n / grain, parts * 4);
  const size_t chunk = (n + chunks - 1) / chunks;
  std::atomic<size_t> next{0};
  std::mutex error_mu;
  std::exception_ptr error;  // the first exception a range threw; guarded by error_mu
  auto run = [&] {
    try {
      for (;;) {
        size_t begin = next.fetch_add(chunk);
        if (begin >= n) return;
        fn(begin, std::min(n, begin + chunk));
      }
    } catch (...) {
      next.store(n);  // stop handing out ranges
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = std::current_exception();
    }
  };
  std::latch done(static_cast<std::ptrdiff_t>(parts - 1));
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i + 1 < parts; ++i) {
      queue_.emplace_back([&] {
        run();
        done.count_down();
      });
    }
  }
  cv_.notify_all();
  run();
  done.wait();  // every queued job has finished with run, next and done
  if (error) std::rethrow_exception(error);
}

ThreadPool& ThreadPool::Default() {
  static ThreadPool pool(0);
  return pool;
}

}  // namespace keel
