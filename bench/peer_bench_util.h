// Shared by the peer benchmarks (dnnl_bench, openblas_bench): the llama-1.1B layer shapes, inputs,
// and ScaleInfer's own f32 matmul on them, so that every peer row has an `ours/` row in the same
// run. Counter GFLOP/s = 2 M N K / time.
#ifndef SI_BENCH_PEER_BENCH_UTIL_H_
#define SI_BENCH_PEER_BENCH_UTIL_H_

#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "si/base/thread_pool.h"
#include "si/kernels/ops.h"

namespace si::bench {

struct Shape {
  const char* name;
  int64_t n, k;  // W [N, K]
};
inline constexpr Shape kShapes[] = {
    {"attn_q", 2048, 2048}, {"ffn_up", 5632, 2048}, {"ffn_down", 2048, 5632}};

inline std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline ThreadPool* Pool(int threads) {
  static std::unique_ptr<ThreadPool> pools[3];
  if (!pools[threads]) pools[threads] = std::make_unique<ThreadPool>(threads);
  return pools[threads].get();
}

inline void SetCounters(benchmark::State& state, int64_t m, const Shape& s) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * m * s.n * s.k * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// C = A W^T with W [N, K] as the engine runs it with the best SIMD table: in that table's panel
// layout when it has one (AVX2: repacked once, outside the timed loop, as the engine does at
// start-up), else row-major as stored in GGUF.
inline void BM_Ours(benchmark::State& state, Shape s, int64_t m, int threads) {
  const std::vector<float> w = Random(s.n * s.k, 1), a = Random(m * s.k, 2);
  std::vector<float> c(m * s.n);
  MatRef wr{DType::kF32, w.data(), s.n, s.k};
  const Kernels& k = BestKernels();
  ThreadPool* pool = Pool(threads);
  std::vector<float> panels;  // floats: 4-byte aligned; to_panels wants 64: over-allocate
  if (k.panel_bytes != nullptr && k.panel_bytes(wr) > 0) {
    panels.resize(static_cast<size_t>(k.panel_bytes(wr)) / 4 + 16);
    float* base = panels.data() + (64 - reinterpret_cast<uintptr_t>(panels.data()) % 64) % 64 / 4;
    wr = k.to_panels(wr, base, pool);
  }
  for (auto _ : state) {
    k.matmul(a.data(), m, wr, nullptr, c.data(), pool);
    benchmark::ClobberMemory();
  }
  SetCounters(state, m, s);
  state.SetLabel(std::string(k.name) + (wr.panels16 ? " panels" : ""));
}

// Registers, for M = 512 (prefill) and 1 (decode), every shape and 1 / 2 threads: `ours/<suffix>`
// and then each peer `<name>/<suffix>` (suffix "prefill/attn_q/threads:1"), peers called as
// fn(state, shape, m, threads).
template <class Peer>
void RegisterWithOurs(const std::vector<std::pair<std::string, Peer>>& peers) {
  for (int64_t m : {512, 1}) {
    for (const Shape& s : kShapes) {
      for (int threads : {1, 2}) {
        const std::string suffix = std::string(m == 1 ? "decode/" : "prefill/") + s.name +
                                   "/threads:" + std::to_string(threads);
        const double min_time = m == 1 ? 0.2 : 0.5;
        benchmark::RegisterBenchmark(("ours/" + suffix).c_str(), BM_Ours, s, m, threads)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(min_time);
        for (const auto& [name, fn] : peers) {
          benchmark::RegisterBenchmark((name + "/" + suffix).c_str(), fn, s, m, threads)
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime()
              ->MinTime(min_time);
        }
      }
    }
  }
}

}  // namespace si::bench

#endif  // SI_BENCH_PEER_BENCH_UTIL_H_
