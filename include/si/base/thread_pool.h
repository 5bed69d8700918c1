// A persistent thread pool for many small parallel regions (decode issues ~10 per layer per token, each
// a few microseconds to a few hundred). The calling thread participates as thread 0.
//
// Cost model (why it is built this way; measurements in docs/kernels.md):
//   - Workers spin on an epoch counter for kSpinMicros after their last job before they sleep on a futex,
//     so back-to-back Run() calls inside a token never pay a futex wake (~5-50 us on a loaded machine).
//   - Tasks are claimed with one fetch_add on a word that packs (num_tasks, next_task); there is no lock
//     and no per-job handshake. The caller waits only for tasks that were CLAIMED by a worker, never for a
//     worker to wake up: a sleeping or descheduled worker simply gets nothing and the caller (and the
//     awake workers) run its share. This is what made 2-thread decode slower than 1 thread before.
//   - A late worker can never run a stale job: it only runs a task it claimed from the live word, and it
//     reads the job's function after the claim (release/acquire through the word).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
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
  // out dynamically (thread is in [0, num_threads()), 0 = the caller); a kernel that needs a deterministic
  // result must make each task's output independent of which thread runs it (it always is when tasks write
  // disjoint outputs). Not reentrant: fn must not call Run on the same pool. num_tasks < 2^31.
  void Run(int64_t num_tasks, const std::function<void(int64_t task, int thread)>& fn);

  // How long an idle worker spins before it sleeps.
  static constexpr int kSpinMicros = 2000;

 private:
  void WorkerLoop(int thread);
  // Claims and runs tasks of the current job until none is left; returns how many it ran.
  int64_t Work(int thread);

  int num_threads_;
  std::vector<std::thread> workers_;

  // Job word: high 32 bits num_tasks, low 32 bits next task to claim. next >= num_tasks: no job.
  alignas(64) std::atomic<uint64_t> job_{0};
  const std::function<void(int64_t, int)>* fn_ = nullptr;  // valid while a task is claimed and unfinished
  alignas(64) std::atomic<int64_t> finished_{0};           // tasks of the current job run to completion
  alignas(64) std::atomic<uint32_t> epoch_{0};             // bumped per job; idle workers wait on it
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

// Runs fn on [0, n) split into `pool->num_threads()` contiguous chunks (or inline when pool is null).
void ParallelFor(ThreadPool* pool, int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

}  // namespace si
