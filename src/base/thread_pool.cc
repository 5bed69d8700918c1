#include "si/base/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "si/base/check.h"

namespace si {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

constexpr uint64_t kLowMask = 0xffffffffull;

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  num_threads_ = num_threads;
  for (int t = 1; t < num_threads_; ++t) workers_.emplace_back([this, t] { WorkerLoop(t); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  epoch_.fetch_add(1, std::memory_order_seq_cst);
  epoch_.notify_all();
  for (auto& w : workers_) w.join();
}

int64_t ThreadPool::Work(int thread) {
  int64_t count = 0;
  for (;;) {
    // One RMW per task: it both claims the task and (acquire) makes the job's fn_ visible.
    const uint64_t word = job_.fetch_add(1, std::memory_order_acq_rel);
    const uint64_t next = word & kLowMask, num_tasks = word >> 32;
    if (next >= num_tasks) break;
    (*fn_)(static_cast<int64_t>(next), thread);
    ++count;
  }
  return count;
}

void ThreadPool::WorkerLoop(int thread) {
  // Not the current epoch_: a worker that starts late (after a Run or even after ~ThreadPool bumped it)
  // must still see the change, or the destructor's join would wait forever.
  uint32_t seen = 0;
  for (;;) {
    uint32_t e = epoch_.load(std::memory_order_acquire);
    if (e == seen) {
      // Spin (pause) for up to kSpinMicros, reading the clock only every 64 pauses.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
      for (int i = 1;; ++i) {
        CpuRelax();
        e = epoch_.load(std::memory_order_acquire);
        if (e != seen) break;
        if ((i & 63) == 0 && std::chrono::steady_clock::now() >= deadline) break;
      }
      if (e == seen) {
        // Sleep. Dekker pairing with Run(): we announce ourselves in sleepers_ and then re-check epoch_;
        // Run() bumps epoch_ and then reads sleepers_ (all seq_cst), so one of us sees the other.
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        if (epoch_.load(std::memory_order_seq_cst) == seen) epoch_.wait(seen, std::memory_order_seq_cst);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
        continue;
      }
    }
    seen = e;
    if (stop_.load(std::memory_order_acquire)) return;
    const int64_t done = Work(thread);
    if (done > 0) finished_.fetch_add(done, std::memory_order_acq_rel);
  }
}

void ThreadPool::Run(int64_t num_tasks, const std::function<void(int64_t, int)>& fn) {
  if (num_tasks <= 0) return;
  if (num_threads_ == 1 || num_tasks == 1) {
    for (int64_t t = 0; t < num_tasks; ++t) fn(t, 0);
    return;
  }
  SI_CHECK(num_tasks < (int64_t{1} << 31)) << num_tasks;
  fn_ = &fn;
  finished_.store(0, std::memory_order_relaxed);
  job_.store(static_cast<uint64_t>(num_tasks) << 32, std::memory_order_release);
  epoch_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) epoch_.notify_all();
  const int64_t mine = Work(0);
  // Every task is claimed now; wait only for the ones workers claimed and still run. Spin first (they are
  // short), then yield in case a worker we wait for shares our core (oversubscribed machine).
  const int64_t theirs = num_tasks - mine;
  for (int spin = 0; finished_.load(std::memory_order_acquire) != theirs; ++spin) {
    if (spin < 20000) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
}

void ParallelFor(ThreadPool* pool, int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  int threads = pool ? pool->num_threads() : 1;
  if (threads <= 1 || n == 1) {
    fn(0, n);
    return;
  }
  int64_t chunks = std::min<int64_t>(threads, n);
  pool->Run(chunks, [&](int64_t c, int) {
    int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
    if (begin < end) fn(begin, end);
  });
}

}  // namespace si
