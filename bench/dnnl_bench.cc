// oneDNN's f32 matmul (dnnl::matmul) vs ScaleInfer's matmul, side by side, on the llama-1.1B layer shapes:
// prefill (M = 512) and decode (M = 1), 1 and 2 threads. Counter GFLOP/s = 2 M N K / time.
//
//   dnnl_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Variants per shape:
//   ours        C = A W^T with W [N, K] row-major as stored in GGUF (no prepacking).
//   dnnl_nk     oneDNN with the same weight layout (weights md [K, N], format_tag::ba: W's memory as is).
//   dnnl_any    oneDNN with format_tag::any weights, reordered once outside the timed loop (its best case:
//               a prepacked weight layout chosen by the library).
// oneDNN in Debian is built with the OpenMP runtime; its thread count is set with omp_set_num_threads.
// Built only when CMake finds dnnl (libdnnl-dev); nothing else depends on it.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "si/base/thread_pool.h"
#include "si/kernels/ops.h"

namespace si {
namespace {

struct Shape {
  const char* name;
  int64_t n, k;
};
constexpr Shape kShapes[] = {{"attn_q", 2048, 2048}, {"ffn_up", 5632, 2048}, {"ffn_down", 2048, 5632}};

std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

ThreadPool* Pool(int threads) {
  static std::unique_ptr<ThreadPool> pools[3];
  if (!pools[threads]) pools[threads] = std::make_unique<ThreadPool>(threads);
  return pools[threads].get();
}

void SetCounters(benchmark::State& state, int64_t m, const Shape& s) {
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * m * s.n * s.k * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Ours(benchmark::State& state, Shape s, int64_t m, int threads) {
  const std::vector<float> w = Random(s.n * s.k, 1), a = Random(m * s.k, 2);
  std::vector<float> c(m * s.n);
  const MatRef wr{DType::kF32, w.data(), s.n, s.k};
  const Kernels& k = BestKernels();
  ThreadPool* pool = Pool(threads);
  for (auto _ : state) {
    k.matmul(a.data(), m, wr, nullptr, c.data(), pool);
    benchmark::ClobberMemory();
  }
  SetCounters(state, m, s);
  state.SetLabel(k.name);
}

void BM_Dnnl(benchmark::State& state, Shape s, int64_t m, int threads, bool any_layout) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  omp_set_num_threads(threads);
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const std::vector<float> w = Random(s.n * s.k, 1), a = Random(m * s.k, 2);
  std::vector<float> c(m * s.n);
  const dnnl::memory::desc a_md({m, s.k}, dt::f32, tag::ab);
  const dnnl::memory::desc w_user_md({s.k, s.n}, dt::f32, tag::ba);  // W [N, K] row-major = W^T [K, N]
  const dnnl::memory::desc w_md = any_layout ? dnnl::memory::desc({s.k, s.n}, dt::f32, tag::any) : w_user_md;
  const dnnl::memory::desc c_md({m, s.n}, dt::f32, tag::ab);
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, w_md, c_md), eng);
  dnnl::memory a_mem(a_md, eng, const_cast<float*>(a.data()));
  dnnl::memory w_user(w_user_md, eng, const_cast<float*>(w.data()));
  dnnl::memory c_mem(c_md, eng, c.data());
  dnnl::memory w_mem = w_user;
  if (pd.weights_desc() != w_user_md) {
    w_mem = dnnl::memory(pd.weights_desc(), eng);
    dnnl::reorder(w_user, w_mem).execute(strm, w_user, w_mem);
    strm.wait();
  }
  dnnl::matmul prim(pd);
  for (auto _ : state) {
    prim.execute(strm, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, w_mem}, {DNNL_ARG_DST, c_mem}});
    strm.wait();
    benchmark::ClobberMemory();
  }
  SetCounters(state, m, s);
  state.SetLabel(std::string("oneDNN ") + pd.impl_info_str());
}

int Register() {
  for (int64_t m : {512, 1}) {
    for (const Shape& s : kShapes) {
      for (int threads : {1, 2}) {
        const std::string suffix = std::string(m == 1 ? "decode/" : "prefill/") + s.name +
                                   "/threads:" + std::to_string(threads);
        const double min_time = m == 1 ? 0.2 : 0.5;
        benchmark::RegisterBenchmark(("ours/" + suffix).c_str(), BM_Ours, s, m, threads)
            ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(min_time);
        benchmark::RegisterBenchmark(("dnnl_nk/" + suffix).c_str(), BM_Dnnl, s, m, threads, false)
            ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(min_time);
        benchmark::RegisterBenchmark(("dnnl_any/" + suffix).c_str(), BM_Dnnl, s, m, threads, true)
            ->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(min_time);
      }
    }
  }
  return 0;
}
const int kRegistered = Register();

}  // namespace
}  // namespace si
