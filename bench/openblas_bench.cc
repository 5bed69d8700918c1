// OpenBLAS's sgemm vs ScaleInfer's f32 matmul, side by side, on the llama-1.1B layer shapes:
// prefill (M = 512) and decode (M = 1), 1 and 2 threads. Counter GFLOP/s = 2 M N K / time.
//
//   openblas_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Variants per shape:
//   ours       C = A W^T with W [N, K] row-major as stored in GGUF (no prepacking).
//   openblas   cblas_sgemm(RowMajor, NoTrans, Trans) on the same W: OpenBLAS packs both operands
//   per
//              call (its normal use), with the kernel of the core it detects (label: e.g. "Zen").
// Why a second peer beside oneDNN: on Zen 3 without AVX-512, oneDNN's f32 matmul ran at about our
// speed, while OpenBLAS's hand-written 6 x 16 broadcast kernel is the fastest f32 GEMM we found on
// this machine, so it is the honest ceiling to compare with (docs/kernels.md). Threads: OpenBLAS's
// own pthread pool, sized per benchmark with openblas_set_num_threads. Built only when CMake finds
// OpenBLAS (libopenblas-dev); nothing else depends on it.
#include <cblas.h>

#include <string>
#include <vector>

#include "peer_bench_util.h"

namespace si {
namespace {

using bench::Random;
using bench::Shape;

void BM_OpenBlas(benchmark::State& state, Shape s, int64_t m, int threads) {
  openblas_set_num_threads(threads);
  const std::vector<float> w = Random(s.n * s.k, 1), a = Random(m * s.k, 2);
  std::vector<float> c(m * s.n);
  const int mi = static_cast<int>(m), n = static_cast<int>(s.n), k = static_cast<int>(s.k);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mi, n, k, 1.0f, a.data(), k, w.data(), k,
                0.0f, c.data(), n);
    benchmark::ClobberMemory();
  }
  bench::SetCounters(state, m, s);
  state.SetLabel(std::string("OpenBLAS ") + openblas_get_corename());
}

const int kRegistered = [] {
  using Fn = void (*)(benchmark::State&, Shape, int64_t, int);
  bench::RegisterWithOurs<Fn>({{"openblas", BM_OpenBlas}});
  return 0;
}();

}  // namespace
}  // namespace si
