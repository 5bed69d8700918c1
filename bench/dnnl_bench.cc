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

#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <vector>

#include "peer_bench_util.h"

namespace si {
namespace {

using bench::Random;
using bench::SetCounters;
using bench::Shape;

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
  using Fn = void (*)(benchmark::State&, Shape, int64_t, int);
  bench::RegisterWithOurs<Fn>({{"dnnl_nk", [](benchmark::State& st, Shape s, int64_t m,
                                              int t) { BM_Dnnl(st, s, m, t, false); }},
                               {"dnnl_any", [](benchmark::State& st, Shape s, int64_t m, int t) {
                                  BM_Dnnl(st, s, m, t, true);
                                }}});
  return 0;
}
const int kRegistered = Register();

}  // namespace
}  // namespace si
