// ThreadPool: every task runs exactly once per Run, thread ids are in range, and jobs issued back to back,
// after the workers went to sleep (> kSpinMicros idle) or with more threads than cores all complete.
#include "si/base/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace si {
namespace {

TEST(ThreadPool, EveryTaskOnceBackToBackAndAfterSleep) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(64);
    for (int job = 0; job < 400; ++job) {
      const int64_t tasks = 1 + job % 64;
      for (int64_t i = 0; i < tasks; ++i) hits[i] = 0;
      std::atomic<bool> bad_thread{false};
      pool.Run(tasks, [&](int64_t task, int thread) {
        if (thread < 0 || thread >= threads) bad_thread = true;
        hits[task].fetch_add(1);
      });
      ASSERT_FALSE(bad_thread);
      for (int64_t i = 0; i < tasks; ++i) ASSERT_EQ(hits[i].load(), 1) << "job " << job << " task " << i;
      // Now and then let the workers fall asleep so that the futex wake-up path runs too.
      if (job % 100 == 99) {
        std::this_thread::sleep_for(std::chrono::microseconds(3 * ThreadPool::kSpinMicros));
      }
    }
  }
}

TEST(ThreadPool, ParallelForCoversRangeOnce) {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 3, 10, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    ParallelFor(&pool, n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1);
  }
}

TEST(ThreadPool, DestroyWhileWorkersSleep) {
  for (int i = 0; i < 3; ++i) {
    ThreadPool pool(3);
    std::atomic<int> sum{0};
    pool.Run(6, [&](int64_t t, int) { sum += static_cast<int>(t); });
    EXPECT_EQ(sum.load(), 15);
    if (i == 1) std::this_thread::sleep_for(std::chrono::microseconds(3 * ThreadPool::kSpinMicros));
  }
}

}  // namespace
}  // namespace si
