// Matmul throughput per weight dtype at the shapes of one llama-1.1B layer (model_dim 2048, ffn_dim
// 5632, kv dim 256): decode (m = 1, GEMV: should run at memory bandwidth) and prefill (m = 512:
// compute bound). Counters: GFLOP/s = 2 m n k / time; GB/s = (weight bytes + activation bytes
// in/out) / time.
// The same binary measures the machine side by side with the kernels, so that ratios come from one
// run on a noisy, shared machine: peak/f32_fma (register-only FMA loop, GFLOP/s), peak/int8_avx2
// and peak/q8_0_block_avx2 (the int8 dot and the Q8_0 block dot, register-only, GOP/s),
// peak/read_bw (streaming read of 512 MiB, GB/s) and pool/run (ThreadPool::Run round trip with
// empty tasks: the fixed cost per parallel region in decode). attention/prefill512/*: causal
// attention of a 512-token prompt (GFLOP/s of q.k and p.v).
//   kernel_bench --benchmark_filter=decode      SI_KERNEL_TARGET=AVX2 kernel_bench
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "si/base/thread_pool.h"
#include "si/kernels/ops.h"
#include "si/perf/roofline.h"

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
// The 110M shape's matrices (dim 768, ff 2048): prefill only. Its pp512 MFU is lower than the 1.1B
// shape's, and these show how much of that is the GEMM (K = 768 is one and a half kc chunks).
constexpr Shape kShapes110m[] = {
    {"110m_attn_q", 768, 768}, {"110m_ffn_up", 2048, 768}, {"110m_ffn_down", 768, 2048}};
// A weight format as benchmarked: a dtype, or Q8_0 holding per-channel int8 (MatRef::int8_rows).
struct WType {
  DType t;
  bool int8_rows;
  const char* name;
};
constexpr WType kTypes[] = {{DType::kF32, false, "f32"},   {DType::kF16, false, "f16"},
                            {DType::kBF16, false, "bf16"}, {DType::kQ8_0, false, "q8_0"},
                            {DType::kQ4_0, false, "q4_0"}, {DType::kQ8_0, true, "int8"}};

ThreadPool* Pool(int threads) {
  static std::unique_ptr<ThreadPool> pools[3];
  if (!pools[threads]) pools[threads] = std::make_unique<ThreadPool>(threads);
  return pools[threads].get();
}

// copies > 1: that many copies of the weight, used in turn, so that decode reads from DRAM as the
// engine does (one 1.1B layer's matrices fit in a 32 MiB L3; `decode_dram/` uses >= 256 MiB).
void BM_MatMul(benchmark::State& state, WType wt, Shape s, int64_t m, int threads, int copies) {
  const DType t = wt.t;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> src(s.k);
  const int64_t row_bytes = DTypeRowBytes(t, s.k);
  const int64_t w_bytes = s.n * row_bytes;
  std::vector<uint8_t> w_data(w_bytes * copies);
  for (int64_t r = 0; r < s.n; ++r) {
    for (auto& x : src) x = dist(rng);
    uint8_t* row = w_data.data() + r * row_bytes;
    if (wt.int8_rows) {
      QuantizeRowInt8PerChannel(src.data(), s.k, reinterpret_cast<BlockQ8_0*>(row));
    } else {
      QuantizeRow(t, src.data(), s.k, row);
    }
  }
  for (int i = 1; i < copies; ++i) std::memcpy(w_data.data() + i * w_bytes, w_data.data(), w_bytes);
  std::vector<float> a(m * s.k), c(m * s.n);
  for (auto& x : a) x = dist(rng);
  const Kernels& k = BestKernels();
  ThreadPool* pool = Pool(threads);
  // The engine runs f32 / f16 / bf16 weights in the table's panel layout when it has one (repacked
  // once at start-up): so does the benchmark, outside the timed loop.
  std::vector<MatRef> mats;
  for (int i = 0; i < copies; ++i)
    mats.push_back(MatRef{t, w_data.data() + i * w_bytes, s.n, s.k, wt.int8_rows});
  const int64_t panel_bytes = k.panel_bytes ? k.panel_bytes(mats[0]) : 0;
  std::vector<uint8_t> panels;
  if (panel_bytes > 0) {
    panels.resize(static_cast<size_t>(panel_bytes) * copies + 64);
    uint8_t* base = panels.data() + (64 - reinterpret_cast<uintptr_t>(panels.data()) % 64) % 64;
    for (int i = 0; i < copies; ++i) mats[i] = k.to_panels(mats[i], base + i * panel_bytes, pool);
    w_data.clear();
    w_data.shrink_to_fit();
  }
  int next = 0;
  for (auto _ : state) {
    const MatRef& w = mats[next];
    next = (next + 1) % copies;
    k.matmul(a.data(), m, w, nullptr, c.data(), pool);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * m * s.n * s.k;
  const double bytes = static_cast<double>(w_bytes) + 4.0 * m * (s.k + s.n);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(k.name) + (panel_bytes > 0 ? " panels" : ""));
}

// Causal prefill attention of one sequence of `tokens` tokens (every query sees keys 0..t), the KV
// cache laid out as the engine's ([pos, kv_heads * head_dim]). GFLOP/s counts q.k and p.v: 4 *
// head_dim per (query head, visible key).
struct AttnShape {
  const char* name;
  int64_t heads, kv_heads, head_dim;
};
constexpr AttnShape kAttnShapes[] = {{"llama110m", 12, 12, 64}, {"llama1b", 32, 4, 64}};

void BM_Attention(benchmark::State& state, AttnShape s, int64_t tokens, int threads) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const int64_t kv_dim = s.kv_heads * s.head_dim;
  std::vector<float> q(tokens * s.heads * s.head_dim), k(tokens * kv_dim), v(tokens * kv_dim),
      out(q.size());
  for (auto* buf : {&q, &k, &v})
    for (auto& x : *buf) x = dist(rng);
  std::vector<int32_t> pos(tokens);
  for (int64_t t = 0; t < tokens; ++t) pos[t] = static_cast<int32_t>(t);
  AttentionArgs a;
  a.q = q.data();
  a.num_tokens = tokens;
  a.q_pos = pos.data();
  a.k = k.data();
  a.v = v.data();
  a.kv_len = tokens;
  a.kv_stride = kv_dim;
  a.num_heads = s.heads;
  a.num_kv_heads = s.kv_heads;
  a.head_dim = s.head_dim;
  a.scale = 0.125f;
  a.out = out.data();
  const Kernels& kern = BestKernels();
  ThreadPool* pool = Pool(threads);
  for (auto _ : state) {
    kern.attention(a, pool);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double pairs = 0.5 * static_cast<double>(tokens) * (tokens + 1) * s.heads;
  state.counters["GFLOP/s"] = benchmark::Counter(4.0 * pairs * s.head_dim * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(kern.name);
}

// 12 independent FMA chains (covers 4-cycle latency x 2-3 pipes) over full vectors.
__attribute__((target("avx512f"))) float FmaLoop512(int64_t iters) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(1.0f + i * 1e-3f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  }
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  float out[16];  // not _mm512_reduce_add_ps: GCC 12's header warns -Wuninitialized inside it
  _mm512_storeu_ps(out, s);
  return out[0];
}
__attribute__((target("avx2,fma"))) float FmaLoop256(int64_t iters) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(1.0f + i * 1e-3f);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  }
  __m256 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

void BM_PeakFma(benchmark::State& state, int threads) {
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const int lanes = avx512 ? 16 : 8;
  constexpr int64_t kIters = 1 << 16;
  ThreadPool* pool = Pool(threads);
  std::atomic<float> sink{0.0f};
  for (auto _ : state) {
    pool->Run(threads, [&](int64_t, int) {
      sink = sink + (avx512 ? FmaLoop512(kIters) : FmaLoop256(kIters));
    });
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * 12 * lanes * kIters * threads * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(avx512 ? "avx512" : "avx2");
}

// The two int8 ceilings of the AVX2 quantized kernels, register-only (si::Avx2Int8Probe, the loop
// the roofline measures): the int8 dot, and the Q8_0 block dot, which cannot accumulate across
// blocks in int32 because every block has its own scales. GOP/s: 2 per multiply-add.
template <bool kBlock>
void BM_PeakInt8(benchmark::State& state, int threads) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    state.SkipWithError("no AVX2/FMA");
    return;
  }
  constexpr int64_t kIters = 1 << 16;
  ThreadPool* pool = Pool(threads);
  std::vector<float> sinks(threads, 0.0f);
  std::vector<double> ops(threads, 0.0);  // per round, as the probe counts them
  for (auto _ : state) {
    pool->Run(threads, [&](int64_t t, int) { ops[t] = Avx2Int8Probe(kIters, kBlock, &sinks[t]); });
    benchmark::DoNotOptimize(sinks.data());
  }
  double total = 0;
  for (double o : ops) total += o;
  state.counters["GOP/s"] =
      benchmark::Counter(total * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Integer sum: vectorizes without -ffast-math, so the loop is bound by memory, not by add latency.
__attribute__((target("avx2"))) uint64_t SumWords(const uint64_t* p, int64_t n) {
  uint64_t s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[i];
  return s;
}

void BM_ReadBandwidth(benchmark::State& state, int threads) {
  static std::vector<uint64_t> buf;
  if (buf.empty()) buf.assign((512 << 20) / sizeof(uint64_t), 1);
  ThreadPool* pool = Pool(threads);
  const int64_t n = static_cast<int64_t>(buf.size());
  std::atomic<uint64_t> sink{0};
  for (auto _ : state) {
    pool->Run(threads, [&](int64_t t, int) {
      const int64_t b = n * t / threads, e = n * (t + 1) / threads;
      sink.fetch_add(SumWords(buf.data() + b, e - b));
    });
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(n) * sizeof(uint64_t) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

void BM_PoolRun(benchmark::State& state, int threads) {
  ThreadPool* pool = Pool(threads);
  std::atomic<int64_t> sink{0};
  for (auto _ : state) {
    pool->Run(threads * 4, [&](int64_t t, int) { sink.fetch_add(t, std::memory_order_relaxed); });
  }
}

int Register() {
  for (int threads : {1, 2}) {
    const std::string t = "/threads:" + std::to_string(threads);
    benchmark::RegisterBenchmark(("peak/int8_avx2" + t).c_str(), BM_PeakInt8<false>, threads)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime()
        ->MinTime(0.2);
    benchmark::RegisterBenchmark(("peak/q8_0_block_avx2" + t).c_str(), BM_PeakInt8<true>, threads)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime()
        ->MinTime(0.2);
    benchmark::RegisterBenchmark(("peak/f32_fma" + t).c_str(), BM_PeakFma, threads)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime()
        ->MinTime(0.3);
    benchmark::RegisterBenchmark(("peak/read_bw" + t).c_str(), BM_ReadBandwidth, threads)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(0.5);
    benchmark::RegisterBenchmark(("pool/run" + t).c_str(), BM_PoolRun, threads)
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime()
        ->MinTime(0.3);
  }
  for (const AttnShape& s : kAttnShapes) {
    for (int threads : {1, 2}) {
      const std::string name =
          std::string("attention/prefill512/") + s.name + "/threads:" + std::to_string(threads);
      benchmark::RegisterBenchmark(name.c_str(), BM_Attention, s, 512, threads)
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime()
          ->MinTime(0.3);
    }
  }
  // batch16: one step of batched decode (bench -b 16), the weights read once for 16 rows.
  for (int64_t m : {1, 16, 512}) {
    for (const WType& t : kTypes) {
      for (const Shape& s : kShapes) {
        if (m > 1 && s.n == 256) continue;  // kv projection: adds nothing new beyond decode
        for (int threads : {1, 2}) {
          const char* kind = m == 1 ? "decode/" : m == 16 ? "batch16/" : "prefill/";
          const std::string name = std::string(kind) + std::string(t.name) + "/" + s.name +
                                   "/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(), BM_MatMul, t, s, m, threads, 1)
              ->Unit(benchmark::kMicrosecond)
              ->UseRealTime()
              ->MinTime(m == 1 ? 0.3 : 0.5);
        }
      }
    }
  }
  for (const WType& t : kTypes) {
    for (const Shape& s : kShapes110m) {
      for (int threads : {1, 2}) {
        const std::string name =
            "prefill/" + std::string(t.name) + "/" + s.name + "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), BM_MatMul, t, s, int64_t{512}, threads, 1)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime()
            ->MinTime(0.5);
      }
    }
  }
  // Decode and batch-16 decode from DRAM: ffn_up cycled over copies totalling >= 256 MiB (the
  // model's case: its weights are far larger than the L3, which the L3-resident shapes above hide).
  for (int64_t m : {1, 16}) {
    for (const WType& t : kTypes) {
      const Shape s = kShapes[2];
      const int64_t bytes = s.n * DTypeRowBytes(t.t, s.k);
      const int copies = static_cast<int>((int64_t{256} << 20) / bytes + 1);
      for (int threads : {1, 2}) {
        const std::string name = std::string(m == 1 ? "decode_dram/" : "batch16_dram/") +
                                 std::string(t.name) + "/" + s.name +
                                 "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), BM_MatMul, t, s, m, threads, copies)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime()
            ->MinTime(0.5);
      }
    }
  }
  return 0;
}
const int kRegistered = Register();

}  // namespace
}  // namespace si
