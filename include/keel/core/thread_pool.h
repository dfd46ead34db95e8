// File: keel/core/thread_pool.h
//
// A fixed pool of worker threads with a blocking ParallelFor.
//
//   keel::ThreadPool pool(2);
//   pool.ParallelFor(num_blocks, [&](size_t begin, size_t end) { ... });
//
// Threads: the pool owns its workers; mu_ guards the job queue. ParallelFor
// may be called from several threads at once; each call blocks until all of
// its ranges ran. The calling thread runs ranges too, so a pool of size 1 has
// no worker threads at all. Called from inside a range (on a worker thread) it
// runs inline. An exception thrown by a range is rethrown by ParallelFor once
// every range has stopped.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace keel {

class ThreadPool {
 public:
  // threads <= 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Splits [0, n) into contiguous ranges of at least `grain` items and runs
  // fn(begin, end) on them in parallel; returns when all are done.
  void ParallelFor(size_t n, const std::function<void(size_t, size_t)>& fn, size_t grain = 1);

  // A process-wide pool sized to the machine, created on first use.
  static ThreadPool& Default();

 private:
  void WorkerLoop();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stop_ = false;                        // guarded by mu_
};

}  // namespace keel
