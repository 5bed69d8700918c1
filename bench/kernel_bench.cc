// Matmul throughput per weight dtype at the shapes of one llama-1.1B layer (model_dim 2048, ffn_dim
// 5632, kv dim 256): decode (m = 1, GEMV: should run at memory bandwidth) and prefill (m = 512:
// compute bound). Counters: GFLOP/s = 2 m n k / time; GB/s = (weight bytes + activation bytes
// in/out) / time.
//   kernel_bench --benchmark_filter=decode      SI_KERNEL_TARGET=AVX2 kernel_bench
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "si/base/thread_pool.h"
#include "si/kernels/ops.h"

namespace si {
namespace {

struct Shape {
  const char* name;
  int64_t n, k;
};
constexpr Shape kShapes[] = {{"attn_kv", 256, 2048},
                             {"attn_q", 2048, 2048},
                             {"ffn_up", 5632, 2048},
                             {"ffn_down", 2048, 5632}};
constexpr DType kTypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0};

ThreadPool* Pool(int threads) {
  static std::unique_ptr<ThreadPool> pools[3];
  if (!pools[threads]) pools[threads] = std::make_unique<ThreadPool>(threads);
  return pools[threads].get();
}

void BM_MatMul(benchmark::State& state, DType t, Shape s, int64_t m, int threads) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> src(s.k);
  const int64_t row_bytes = DTypeRowBytes(t, s.k);
  std::vector<uint8_t> w_data(s.n * row_bytes);
  for (int64_t r = 0; r < s.n; ++r) {
    for (auto& x : src) x = dist(rng);
    QuantizeRow(t, src.data(), s.k, w_data.data() + r * row_bytes);
  }
  MatRef w{t, w_data.data(), s.n, s.k};
  std::vector<float> a(m * s.k), c(m * s.n);
  for (auto& x : a) x = dist(rng);
  const Kernels& k = BestKernels();
  ThreadPool* pool = Pool(threads);
  for (auto _ : state) {
    k.matmul(a.data(), m, w, nullptr, c.data(), pool);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * m * s.n * s.k;
  const double bytes = static_cast<double>(w_data.size()) + 4.0 * m * (s.k + s.n);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(k.name);
}

int Register() {
  for (int64_t m : {1, 512}) {
    for (DType t : kTypes) {
      for (const Shape& s : kShapes) {
        if (m == 512 && s.n == 256) continue;  // kv projection: prefill adds nothing new
        for (int threads : {1, 2}) {
          const std::string name = std::string(m == 1 ? "decode/" : "prefill/") +
                                   std::string(DTypeName(t)) + "/" + s.name +
                                   "/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(), BM_MatMul, t, s, m, threads)
              ->Unit(benchmark::kMicrosecond)
              ->UseRealTime()
              ->MinTime(m == 1 ? 0.3 : 0.5);
        }
      }
    }
  }
  return 0;
}
const int kRegistered = Register();

}  // namespace
}  // namespace si
