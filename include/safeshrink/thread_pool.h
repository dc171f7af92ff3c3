// A fixed-size pool of worker threads for data-parallel loops. One process-wide default pool whose
// size is set once by the CLI (--threads, default = cores). parallel_for splits [0, n) into
// contiguous chunks, one per thread; the calling thread takes a chunk too and waits for the rest.
// Not a task scheduler: no futures, no nesting (a parallel_for inside a worker runs serially).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ss {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // fn(begin, end, thread_index) over chunks of [0, n); chunks are multiples of `grain` except the last.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1);

 private:
  void worker(int index);
  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

int hardware_threads();
// The process-wide pool. set_default_threads() replaces it (call before work starts).
ThreadPool& default_pool();
void set_default_threads(int n);

}  // namespace ss
