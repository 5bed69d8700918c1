// A persistent thread pool: workers spin briefly then sleep, so that per-token dispatch in decode costs
// microseconds, not a thread creation. The calling thread participates as thread 0.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace si {

class ThreadPool {
 public:
  // num_threads counts the caller; 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Runs fn(task, thread) for every task in [0, num_tasks) and returns when all are done. Tasks are handed
  // out dynamically; a kernel that needs a deterministic result must make each task's output independent of
  // which thread runs it (it always is when tasks write disjoint outputs).
  void Run(int64_t num_tasks, const std::function<void(int64_t task, int thread)>& fn);

 private:
  void WorkerLoop(int thread);
  void Work(int thread);

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void(int64_t, int)>* fn_ = nullptr;
  int64_t num_tasks_ = 0;
  std::atomic<int64_t> next_task_{0};
  std::atomic<int> pending_workers_{0};
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
};

// Runs fn on [0, n) split into `pool->num_threads()` contiguous chunks (or inline when pool is null).
void ParallelFor(ThreadPool* pool, int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

}  // namespace si
