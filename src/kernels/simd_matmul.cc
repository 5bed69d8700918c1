// Highway matmul and get_rows, compiled once per SIMD target (foreach_target).
// C[M, N] = A[M, K] * W[N, K]^T.
//
// Shape of the computation (per target):
//   1. Activations are prepared ONCE per call: rounded to f16/bf16 (F16/BF16 weights), copied
//      into a zero-padded buffer when K is not a multiple of the vector length, or quantized to
//      Q8_0 (Q8_0/Q4_0 weights; int8 values + f32 block scales). Large M is prepared in parallel.
//   2. N is cut into chunks (multiples of 16 outputs, so no two threads write the same cache line
//      of a C row unless N itself is unaligned) handed out by the pool; the caller participates.
//   3. Inside a chunk, a slab of weight rows stays in L2 while every block of A rows walks over it
//      with an R x C register tile (R A rows x C weight rows, one vector accumulator per output);
//      f32/f16/bf16 prefill also splits K into chunks of 1024 (see FloatRange). Decode (M = 1) is
//      the same code with R = 1: each weight byte is read exactly once.
//   The panel kernels put the OUTPUTS in the vector lanes instead, over weights in 16-output panels
//   (repacked once by Kernels::to_panels on AVX2 and AVX3, or a slab per call for row-major
//   matrices): per-channel int8 (matmul_int8-inl.h; SSE4 runs the reference), Q8_0
//   (matmul_q8_avx2-inl.h, with vpdpbusd on AVX3_VNNI), and f32 / f16 / bf16 (a 6 x 16 broadcast
//   GEMM and a panel GEMV, matmul_f32_avx2-inl.h), all on 256-bit vectors; their decode paths do
//   the same arithmetic per output.
// Determinism: every output C[m, n] is one accumulator (a vector reduced by the same SumOfLanes,
// or one lane) updated over K in the same order with the same ops, whatever R, C, the K or N
// chunking or the thread: the result depends only on (A row m, W row n, bias[n]) and the target.

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "si/base/check.h"
#include "si/kernels/kquants.h"
#include "si/kernels/ops.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_matmul.cc"
// foreach_target.h must come first, then highway.h, then the per-target headers.
// clang-format off
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/aligned_allocator.h"
#include "hwy/cache_control.h"
#include "kernels/simd_kernels-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace si {
namespace HWY_NAMESPACE {
#if HWY_TARGET != HWY_SCALAR
namespace hn = hwy::HWY_NAMESPACE;
namespace {

// Per-call scratch of the calling thread (worker threads only read it). Grows, never shrinks.
template <typename T>
T* Scratch(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// Per-thread aligned f32 scratch (packed operands, parked accumulators): grows, never shrinks.
class AlignedScratch {
 public:
  float* Get(size_t n) {
    if (size_ < n) {
      p_ = hwy::AllocateAligned<float>(n);
      size_ = n;
    }
    return p_.get();
  }

 private:
  hwy::AlignedFreeUniquePtr<float[]> p_;
  size_t size_ = 0;
};

HWY_INLINE float HalfToFloat(uint16_t h) {
#if HWY_TARGET <= HWY_AVX2
  return _cvtsh_ss(h);  // F16C: exact
#else
  return F16ToF32(h);
#endif
}

// Splits the outputs of `count` matmuls (w[i].rows each) into chunks of a multiple of 16 outputs
// and runs fn(i, n0, n1) for all of them in ONE pool dispatch (caller included): decode runs Q, K
// and V (or gate and up) as one parallel region. More chunks than threads for load balance: in
// decode (M = 1) `decode_chunks` per thread, 2 when each chunk re-reads all of A. Chunks never
// cross a matrix and are multiples of 16 outputs, so no two threads write the same cache line of a
// C row (unless N itself is unaligned).
// Decode chunks per thread: the last chunk to finish leaves the other threads idle for about half a
// chunk, so coarse chunks cost (1 / (2 * chunks)) of every GEMV; each chunk costs one atomic claim
// (~50 ns) and, for the quantized tile, cold starts of its prefetched streams. Measured on Zen 3, 2
// threads, alternating runs (docs/kernels.md, "decode chunks"): f32 16 beat 4 in 3 of 3 rounds
// (110M tg64 40-47 vs 38-42 t/s); Q8_0 4 vs 16 was within the noise (paired ratios 0.93-1.11 on
// 1.1B, median 1.0; 0.89-1.16 on 110M, median 1.04), and with the four-stream decode tile 2 / 4 / 8
// still are, so it keeps the coarser split (longer streams).
// SI_DECODE_CHUNKS overrides both (for measuring).
constexpr int64_t kFloatDecodeChunks = 16, kQuantDecodeChunks = 4;
int64_t DecodeChunksPerThread(int64_t def) {
  static const long env = [] {
    const char* e = std::getenv("SI_DECODE_CHUNKS");
    const long v = e ? std::atol(e) : 0;
    return v > 0 && v <= 256 ? v : 0L;
  }();
  return env > 0 ? static_cast<int64_t>(env) : def;
}

// Weight streams of the one-row panel GEMVs (f32, Q8_0, int8): 4 panels at once (4 sequential
// streams) or 1. SI_DECODE_STREAMS=1|4 overrides the default (for measuring). The same arithmetic
// per output either way (the same bits). The default follows the measurements (docs/kernels.md):
// 1 on AMD with AVX-512 (Zen 4: one sequential read stream reaches 30 GB/s there, four 16-20;
// 1.1B tg32, 3 alternating rounds, 1 / 2 threads, 4 vs 1 streams: Q8_0 21.8 / 26.7 vs 24.1 /
// 32.7, 18.9 / 30.0 vs 21.7 / 39.2, 22.4 / 26.2 vs 23.1 / 29.0 t/s), 4 elsewhere: Zen 3 (AVX2)
// and Intel (Emerald Rapids, whose cores need more misses in flight: 1.1B tg16, 1 thread,
// alternating, 1 vs 4 streams: Q8_0 11.2 / 11.2 vs 13.4 / 13.6 t/s, f32 2.8 / 3.3 vs 3.9 / 3.9).
bool IsAmdCpu() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return false;
  char vendor[13] = {};
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  return std::strcmp(vendor, "AuthenticAMD") == 0;
#else
  return false;
#endif
}

int DecodeStreams() {
  static const int streams = [] {
    const char* e = std::getenv("SI_DECODE_STREAMS");
    const int v = e ? std::atoi(e) : 0;
    if (v == 1 || v == 4) return v;
    return HWY_TARGET <= HWY_AVX3 && IsAmdCpu() ? 1 : 4;
  }();
  return streams;
}

template <class Fn>
void RunOverOutputs(int count, const MatRef* w, int64_t m, ThreadPool* pool, int64_t decode_chunks,
                    const Fn& fn) {
  const int threads = pool ? pool->num_threads() : 1;
  int64_t total = 0;
  for (int i = 0; i < count; ++i) total += w[i].rows;
  if (threads <= 1 || total <= 16) {
    for (int i = 0; i < count; ++i) fn(i, int64_t{0}, w[i].rows);
    return;
  }
  const int64_t per_thread = m == 1 ? DecodeChunksPerThread(decode_chunks) : 2;
  int64_t chunk = (total + threads * per_thread - 1) / (threads * per_thread);
  chunk = std::max<int64_t>(16, (chunk + 15) / 16 * 16);
  struct Task {
    int i;
    int64_t n0, n1;
  };
  thread_local std::vector<Task> tasks;
  tasks.clear();
  for (int i = 0; i < count; ++i) {
    for (int64_t n0 = 0; n0 < w[i].rows; n0 += chunk)
      tasks.push_back({i, n0, std::min(w[i].rows, n0 + chunk)});
  }
  const Task* t = tasks.data();
  pool->Run(static_cast<int64_t>(tasks.size()),
            [&](int64_t task, int) { fn(t[task].i, t[task].n0, t[task].n1); });
}

// Runs fn(row) for rows [0, m), in parallel when there are enough rows to be worth a pool dispatch.
template <class Fn>
void ForEachRow(int64_t m, ThreadPool* pool, const Fn& fn) {
  if (pool == nullptr || pool->num_threads() <= 1 || m < 8) {
    for (int64_t i = 0; i < m; ++i) fn(i);
    return;
  }
  pool->Run(m, [&](int64_t i, int) { fn(i); });
}

// The panel matrix over dst of row-major w (MatRef::panels16): panel t, rows 16 t .. 16 t + 15, at
// dst + t * stride (f32 / Q8_0: the 16 rows' bytes), written by pack(t, panel) for every t in
// parallel. Each layout inside a panel is its own (matmul_f32_avx2-inl.h, matmul_q8_avx2-inl.h,
// matmul_int8-inl.h).
template <class PackFn>
MatRef RepackPanels(const MatRef& w, void* dst, size_t stride, ThreadPool* pool,
                    const PackFn& pack) {
  MatRef p = w;
  p.data = dst;
  p.panels16 = true;
  ForEachRow((w.rows + kPanelOutputs - 1) / kPanelOutputs, pool,
             [&](int64_t t) { pack(t, static_cast<uint8_t*>(dst) + t * stride); });
  return p;
}

// ------------------------------------------------------------------------------------------------------
// F32 / F16 / BF16 weights.

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

enum class WKind { kF32, kF16, kBF16 };

// D: DF, or the 256-bit tag of the panel kernels (matmul_f32_avx2-inl.h) on AVX3.
template <WKind kW, class D>
HWY_INLINE hn::Vec<D> LoadW(D df, const uint8_t* row, size_t k) {
  if constexpr (kW == WKind::kF32) {
    return hn::LoadU(df, reinterpret_cast<const float*>(row) + k);
  } else if constexpr (kW == WKind::kF16) {
    const hn::Rebind<hwy::float16_t, D> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(row) + k));
  } else {
    const hn::Rebind<hwy::bfloat16_t, D> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::bfloat16_t*>(row) + k));
  }
}

// Last, partial vector of a weight row: copied to a zero-filled buffer so that we never read past
// the row (the last row may end at the end of a mapping) nor multiply garbage (NaN * 0 = NaN).
template <WKind kW>
HWY_INLINE VF LoadWTail(DF df, const uint8_t* row, size_t k, size_t count) {
  constexpr size_t kElemBytes = kW == WKind::kF32 ? 4 : 2;
  HWY_ALIGN uint8_t buf[hn::MaxLanes(DF()) * 4] = {};
  std::memcpy(buf, row + k * kElemBytes, count * kElemBytes);
  return LoadW<kW>(df, buf, 0);
}

#include "kernels/matmul_f32_avx2-inl.h"

// R A rows (stride a_stride floats, zero-padded to a multiple of the vector length) x C weight
// rows, over K range [k0, k1) (k0 a multiple of the vector length). The accumulators start at zero
// (kFirst) or are reloaded from acc_buf; at the end of K (kLast) they are reduced into C (after the
// partial last vector of K), else parked in acc_buf. Parking a vector is exact, so a K-chunked
// output goes through exactly the same MulAdd sequence as an unchunked one (decode does not chunk).
template <WKind kW, int R, int C, bool kFirst, bool kLast>
HWY_INLINE void FloatTile(const float* HWY_RESTRICT a, size_t a_stride, size_t k0, size_t k1,
                          size_t k, const uint8_t* w0, size_t w_stride, float* HWY_RESTRICT acc_buf,
                          const float* bias, float* HWY_RESTRICT c, size_t c_stride) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  VF acc[R][C];
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < C; ++j) {
      if constexpr (kFirst) {
        acc[r][j] = hn::Zero(df);
      } else {
        acc[r][j] = hn::LoadU(df, acc_buf + (r * C + j) * lanes);
      }
    }
  }
  size_t i = k0;
  for (; i + lanes <= k1; i += lanes) {
    VF wv[C];
    for (int j = 0; j < C; ++j) wv[j] = LoadW<kW>(df, w0 + j * w_stride, i);
    for (int r = 0; r < R; ++r) {
      const VF av = hn::LoadU(df, a + r * a_stride + i);
      for (int j = 0; j < C; ++j) acc[r][j] = hn::MulAdd(av, wv[j], acc[r][j]);
    }
  }
  if constexpr (!kLast) {
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < C; ++j) hn::StoreU(acc[r][j], df, acc_buf + (r * C + j) * lanes);
  } else {
    if (i < k) {
      VF wv[C];
      for (int j = 0; j < C; ++j) wv[j] = LoadWTail<kW>(df, w0 + j * w_stride, i, k - i);
      for (int r = 0; r < R; ++r) {
        const VF av = hn::LoadU(df, a + r * a_stride + i);  // zero-padded
        for (int j = 0; j < C; ++j) acc[r][j] = hn::MulAdd(av, wv[j], acc[r][j]);
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int j = 0; j < C; ++j) {
        const float sum = hn::GetLane(hn::SumOfLanes(df, acc[r][j]));
        c[r * c_stride + j] = sum + (bias ? bias[j] : 0.0f);
      }
    }
  }
}

// Calls FloatTile<kW, rows, C, first, last> for a runtime rows in [1, R] and runtime flags.
template <WKind kW, int R, int C>
HWY_INLINE void FloatTileRows(int rows, bool first, bool last, const float* a, size_t a_stride,
                              size_t k0, size_t k1, size_t k, const uint8_t* w0, size_t w_stride,
                              float* acc_buf, const float* bias, float* c, size_t c_stride) {
  if constexpr (R > 1) {
    if (rows < R) {
      return FloatTileRows<kW, R - 1, C>(rows, first, last, a, a_stride, k0, k1, k, w0, w_stride,
                                         acc_buf, bias, c, c_stride);
    }
  }
  if (first && last) {
    FloatTile<kW, R, C, true, true>(a, a_stride, k0, k1, k, w0, w_stride, acc_buf, bias, c,
                                    c_stride);
  } else if (first) {
    FloatTile<kW, R, C, true, false>(a, a_stride, k0, k1, k, w0, w_stride, acc_buf, bias, c,
                                     c_stride);
  } else if (last) {
    FloatTile<kW, R, C, false, true>(a, a_stride, k0, k1, k, w0, w_stride, acc_buf, bias, c,
                                     c_stride);
  } else {
    FloatTile<kW, R, C, false, false>(a, a_stride, k0, k1, k, w0, w_stride, acc_buf, bias, c,
                                      c_stride);
  }
}

// Blocking of the f32/f16/bf16 prefill loop nest. SI_GEMM_TUNE="kc,slab_kib" overrides the K chunk
// and the slab size (for measuring; the R x C pairs measured in docs/kernels.md were compiled only
// while tuning).
//   AVX2 (Zen 3, 16 ymm): 4 x 3 tile (12 accumulators + 3 weight vectors + 1 activation = 16
//   registers; 7
//     loads per 12 FMAs), K chunks of 512 (A block 8 KiB + weight tile 6 KiB per chunk stay in the
//     32 KiB L1), packed slabs of 256 KiB of K-chunk rows (126 rows of kc 512; half the 512 KiB L2,
//     the rest for the A stream and the parked accumulators). Measured in docs/kernels.md.
//   Unpacked path (m = 2, 3, or SI_GEMM_NOPACK): slabs of slab_bytes of FULL rows (0: 256 KiB of
//   K-chunk rows). AVX3: 4 x 4 tile, kc 1024, 256 KiB of K-chunk rows (kept from the AVX-512 Zen 4
//   measurements of an
//     earlier version; not re-measured: this machine has no AVX-512 now).
struct FloatBlocking {
  size_t kc = HWY_TARGET == HWY_AVX2 ? 512 : 1024;
  size_t slab_bytes =
      HWY_TARGET == HWY_AVX2 ? 256 * 1024 : 0;           // 0: 256 KiB of K-chunk rows (AVX3 rule)
  bool pack = std::getenv("SI_GEMM_NOPACK") == nullptr;  // packed prefill path (m >= 4)
  // The panel GEMM of matmul_f32_avx2-inl.h (AVX2 and AVX3 tables): K chunks of 512, slabs of 256
  // KiB of chunk panels.
  size_t panel_kc = 512;
  size_t panel_slab_bytes = 256 * 1024;
};

constexpr int kPackR = 4;  // rows per packed A block (the kR of every target's packed tile)

const FloatBlocking& Blocking() {
  static const FloatBlocking b = [] {
    FloatBlocking f;
    if (const char* e = std::getenv("SI_GEMM_TUNE")) {
      unsigned long kc, slab;
      if (std::sscanf(e, "%lu,%lu", &kc, &slab) == 2 && kc > 0 && kc % 64 == 0) {
        f.kc = f.panel_kc = kc;
        f.slab_bytes = f.panel_slab_bytes = slab * 1024;
      }
    }
    return f;
  }();
  return b;
}

// Rows [0, m) x outputs [n0, n1). Prefill loop nest (m > 1):
//   slab of weight rows (slab_bytes of their FULL rows, stays in L2)
//     block of kR A rows
//       K chunk (kR A rows x kc floats stay in L1 while every tile of the slab uses them)
//         kR x kC register tile; accumulators parked in a per-thread buffer between K chunks.
// Decode (m = 1) streams each weight row once, unchunked, 1 x 4 tiles.
template <WKind kW, int kR, int kC>
void FloatRangeT(const float* a, size_t a_stride, int64_t m, const MatRef& w, const float* bias,
                 float* c, int64_t n0, int64_t n1, size_t kc_want, size_t slab_bytes) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const size_t k = static_cast<size_t>(w.cols);
  const size_t w_stride = static_cast<size_t>(w.row_bytes());
  const size_t n = static_cast<size_t>(w.rows);
  const size_t kc = m == 1 ? std::max<size_t>(k, 1) : kc_want;  // a multiple of any vector length
  // Rows per slab: slab_bytes of full weight rows, or (slab_bytes == 0) 256 KiB of their K-chunk
  // parts.
  const size_t slab_row_bytes =
      slab_bytes != 0 ? w_stride
                      : std::max<size_t>(1, w_stride * std::min(kc, k) / std::max<size_t>(k, 1));
  const size_t slab_budget = slab_bytes != 0 ? slab_bytes : 256 * 1024;
  const int64_t slab = std::max<int64_t>(
      kC, static_cast<int64_t>(slab_budget / std::max<size_t>(slab_row_bytes, 1)) / kC * kC);
  thread_local std::vector<float> acc_vec;
  if (acc_vec.size() < static_cast<size_t>(slab) * kR * lanes) acc_vec.resize(slab * kR * lanes);
  float* acc_buf = acc_vec.data();
  for (int64_t s0 = n0; s0 < n1; s0 += slab) {
    const int64_t s1 = std::min(n1, s0 + slab);
    for (int64_t i = 0; i < m; i += kR) {
      const int rows = static_cast<int>(std::min<int64_t>(kR, m - i));
      const float* a_i = a + i * a_stride;
      float* c_i = c + i * n;
      for (size_t k0 = 0; k0 == 0 || k0 < k; k0 += kc) {
        const size_t k1 = std::min(k, k0 + kc);
        const bool first = k0 == 0, last = k1 >= k;
        int64_t j = s0;
        for (; j + kC <= s1; j += kC) {
          FloatTileRows<kW, kR, kC>(rows, first, last, a_i, a_stride, k0, k1, k, w.row(j), w_stride,
                                    acc_buf + (j - s0) * kR * lanes, bias ? bias + j : nullptr,
                                    c_i + j, n);
        }
        for (; j < s1; ++j) {
          FloatTileRows<kW, kR, 1>(rows, first, last, a_i, a_stride, k0, k1, k, w.row(j), w_stride,
                                   acc_buf + (j - s0) * kR * lanes, bias ? bias + j : nullptr,
                                   c_i + j, n);
        }
      }
    }
  }
}

// Packed prefill micro-kernel: kR A rows x kC weight rows over `steps` vectors of K. ap: the A
// block packed [step][kR][lanes]; wp: the weight tile packed [step][kC][lanes] (both contiguous:
// one stream each, no L1 set conflicts between rows that are a multiple of 4 KiB apart, which is
// what unpacked rows of K = 2048 f32 are). Same MulAdd sequence per output as FloatTile, so the
// same bits as decode.
template <int kR, int kC>
HWY_INLINE void PackedTile(const float* HWY_RESTRICT ap, const float* HWY_RESTRICT wp, size_t steps,
                           bool first, bool last, float* HWY_RESTRICT acc_buf, int rows, int cols,
                           const float* bias, float* HWY_RESTRICT c, size_t c_stride) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  VF acc[kR][kC];
  for (int r = 0; r < kR; ++r) {
    for (int j = 0; j < kC; ++j) {
      acc[r][j] = first ? hn::Zero(df) : hn::Load(df, acc_buf + (r * kC + j) * lanes);
    }
  }
  for (size_t v = 0; v < steps; ++v) {
    VF wv[kC];
    for (int j = 0; j < kC; ++j) wv[j] = hn::Load(df, wp + (v * kC + j) * lanes);
    for (int r = 0; r < kR; ++r) {
      const VF av = hn::Load(df, ap + (v * kR + r) * lanes);
      for (int j = 0; j < kC; ++j) acc[r][j] = hn::MulAdd(av, wv[j], acc[r][j]);
    }
  }
  if (!last) {
    for (int r = 0; r < kR; ++r)
      for (int j = 0; j < kC; ++j) hn::Store(acc[r][j], df, acc_buf + (r * kC + j) * lanes);
    return;
  }
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < cols; ++j) {
      const float sum = hn::GetLane(hn::SumOfLanes(df, acc[r][j]));
      c[r * c_stride + j] = sum + (bias ? bias[j] : 0.0f);
    }
  }
}

// Prefill (m >= 4) with packing. Loop nest (GotoBLAS-like; every level keeps the exact MulAdd
// order):
//   group of up to kGroupRows A rows (bounds the parked accumulators: kGroupRows x slab x lanes
//   floats)
//     slab of weight rows (slab_bytes of their kc-long chunks, i.e. slab_bytes / (kc * 4) rows)
//       K chunk of kc: pack the slab's chunk (converted to f32, zero-padded to a multiple of kC
//       rows and of the vector length) -> [tile][step][kC][lanes], slab_bytes, stays in L2
//         block of kR A rows: A chunk packed [step][kR][lanes] (kR * kc * 4 bytes, L1)
//           every kR x kC tile of the slab; accumulators parked per (A block, tile) between K
//           chunks.
// Why this order: a slab of FULL rows holds only 9 rows of K = 5632 in 256 KiB, so all of A was
// re-read from L3 per 9 outputs (ffn_down ran at 0.26-0.37 of peak). Chunking the slab along K lets
// ~126 rows share each pass over A; the price is parking 12 accumulator vectors per tile per K
// chunk (1 load + 1 store per 64 FMAs, from L2/L3), and re-packing each weight chunk once per row
// group. ap: A packed once per call by PackA: row block ib, step v, row r -> ap[((ib * nsteps + v)
// * kR + r) * lanes].
constexpr int64_t kGroupRows = 256;

constexpr int64_t kPackAhead = 2;  // rows

template <WKind kW, int kR, int kC>
void FloatRangePacked(const float* ap, int64_t m, const MatRef& w, const float* bias, float* c,
                      int64_t n0, int64_t n1, size_t kc, size_t slab_bytes) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const size_t k = static_cast<size_t>(w.cols);
  const size_t kp = (k + lanes - 1) / lanes * lanes;  // == a_stride or less
  const size_t nsteps = kp / lanes;
  const size_t n = static_cast<size_t>(w.rows);
  constexpr size_t kWBytes = kW == WKind::kF32 ? 4 : 2;
  kc = std::min(kc, kp);
  if (slab_bytes == 0) slab_bytes = 256 * 1024;
  const int64_t slab = std::max<int64_t>(kC, static_cast<int64_t>(slab_bytes / (kc * 4)) / kC * kC);
  const int64_t max_tiles = slab / kC;
  thread_local AlignedScratch wpack, accs;
  float* wp = wpack.Get(static_cast<size_t>(slab) * kc);
  const int64_t group = std::min<int64_t>(m, kGroupRows);
  const int64_t group_blocks = (group + kR - 1) / kR;
  // [group block][tile][kR][kC][lanes]: only touched when K has more than one chunk.
  float* acc_buf = kc < kp ? accs.Get(static_cast<size_t>(group_blocks * max_tiles) * kR * kC * lanes)
                           : nullptr;
  for (int64_t g0 = 0; g0 < m; g0 += group) {
    const int64_t g1 = std::min(m, g0 + group);
    for (int64_t s0 = n0; s0 < n1; s0 += slab) {
      const int64_t s1 = std::min(n1, s0 + slab);
      const int64_t tiles = (s1 - s0 + kC - 1) / kC;
      for (size_t k0 = 0; k0 < kp; k0 += kc) {
        const size_t k1 = std::min(kp, k0 + kc);
        const size_t steps = (k1 - k0) / lanes;
        const bool first = k0 == 0, last = k1 >= kp;
        // Pack this chunk of the slab: tile t, step v, row j -> wp[((t * steps + v) * kC + j) *
        // lanes].
        for (int64_t t = 0; t < tiles; ++t) {
          for (int j = 0; j < kC; ++j) {
            const int64_t row = s0 + t * kC + j;
            float* dst = wp + (t * steps * kC + j) * lanes;
            if (row >= s1) {
              for (size_t v = 0; v < steps; ++v) hn::Store(hn::Zero(df), df, dst + v * kC * lanes);
              continue;
            }
            const uint8_t* src = w.row(row);
            // Each row's chunk is a short stream (kc * 4 = 2 KiB for f32): the hardware prefetcher
            // restarts on every row and packing waited on DRAM (8.5% of attn_q prefill, perf).
            // Prefetch the same chunk of the row kPackAhead rows on while packing this one.
            const uint8_t* ahead = w.row(std::min<int64_t>(row + kPackAhead, w.rows - 1));
            for (size_t v = 0; v < steps; ++v) {
              const size_t kk = k0 + v * lanes;
              hwy::Prefetch(ahead + kk * kWBytes);
              const VF wv =
                  kk + lanes <= k ? LoadW<kW>(df, src, kk) : LoadWTail<kW>(df, src, kk, k - kk);
              hn::Store(wv, df, dst + v * kC * lanes);
            }
          }
        }
        for (int64_t i = g0; i < g1; i += kR) {
          const int rows = static_cast<int>(std::min<int64_t>(kR, m - i));
          const float* apk = ap + ((i / kR) * nsteps + k0 / lanes) * kR * lanes;
          float* acc_i =
              acc_buf == nullptr ? nullptr : acc_buf + (i - g0) / kR * max_tiles * kR * kC * lanes;
          for (int64_t t = 0; t < tiles; ++t) {
            const int64_t j = s0 + t * kC;
            PackedTile<kR, kC>(apk, wp + t * steps * kC * lanes, steps, first, last,
                               acc_i == nullptr ? nullptr : acc_i + t * kR * kC * lanes, rows,
                               static_cast<int>(std::min<int64_t>(kC, s1 - j)),
                               bias ? bias + j : nullptr, c + i * n + j, n);
          }
        }
      }
    }
  }
}

// Packed prefill path for m >= 4 (SI_GEMM_NOPACK=1 turns it off, for measuring).
bool UsePacked(int64_t m) { return m >= 4 && Blocking().pack; }

// packed: A from PackA when UsePacked(m), else null.
template <WKind kW>
void FloatRange(const float* a, size_t a_stride, const float* packed, int64_t m, const MatRef& w,
                const float* bias, float* c, int64_t n0, int64_t n1) {
  const FloatBlocking& b = Blocking();
  if (m == 1) return FloatRangeT<kW, 1, 4>(a, a_stride, m, w, bias, c, n0, n1, b.kc, b.slab_bytes);
  if (packed != nullptr) {
#if HWY_TARGET <= HWY_AVX3
    return FloatRangePacked<kW, kPackR, 4>(packed, m, w, bias, c, n0, n1, b.kc, b.slab_bytes);
#elif HWY_TARGET == HWY_AVX2
    return FloatRangePacked<kW, kPackR, 3>(packed, m, w, bias, c, n0, n1, b.kc, b.slab_bytes);
#else
    return FloatRangePacked<kW, kPackR, 2>(packed, m, w, bias, c, n0, n1, b.kc, b.slab_bytes);
#endif
  }
#if HWY_TARGET <= HWY_AVX3
  return FloatRangeT<kW, 4, 4>(a, a_stride, m, w, bias, c, n0, n1, b.kc, b.slab_bytes);
#elif HWY_TARGET == HWY_AVX2
  return FloatRangeT<kW, 4, 3>(a, a_stride, m, w, bias, c, n0, n1, b.kc, b.slab_bytes);
#else
  return FloatRangeT<kW, 4, 2>(a, a_stride, m, w, bias, c, n0, n1, b.kc, b.slab_bytes);
#endif
}

// Rounds x to the weight type's precision (ggml converts activations to the weight type): f16 with
// round-to-nearest-even (F16C where available), bf16 with RNE and quiet NaNs as si::F32ToBF16.
void RoundActivationRow(DType t, const float* x, size_t k, float* out) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  if (t == DType::kBF16) {
    const hn::RebindToUnsigned<DF> du;
    const auto kRound = hn::Set(du, 0x7fffu);
    const auto kOne = hn::Set(du, 1u);
    const auto kAbsMask = hn::Set(du, 0x7fffffffu);
    const auto kInf = hn::Set(du, 0x7f800000u);
    const auto kQuiet = hn::Set(du, 0x00400000u);  // bit 6 of the bf16 = bit 22 of the f32
    const auto kHigh = hn::Set(du, 0xffff0000u);
    for (; i + lanes <= k; i += lanes) {
      const auto u = hn::BitCast(du, hn::LoadU(df, x + i));
      const auto rounded =
          hn::And(hn::Add(u, hn::Add(kRound, hn::And(hn::ShiftRight<16>(u), kOne))), kHigh);
      const auto nan = hn::And(hn::Or(u, kQuiet), kHigh);
      const auto is_nan = hn::Gt(hn::BitCast(hn::RebindToSigned<DF>(), hn::And(u, kAbsMask)),
                                 hn::BitCast(hn::RebindToSigned<DF>(), kInf));
      const auto res = hn::IfThenElse(hn::RebindMask(du, is_nan), nan, rounded);
      hn::StoreU(hn::BitCast(df, res), df, out + i);
    }
    for (; i < k; ++i) out[i] = BF16ToF32(F32ToBF16(x[i]));
    return;
  }
  // F16.
#if HWY_TARGET <= HWY_AVX2
  const hn::Rebind<hwy::float16_t, DF> dh;
  for (; i + lanes <= k; i += lanes) {
    hn::StoreU(hn::PromoteTo(df, hn::DemoteTo(dh, hn::LoadU(df, x + i))), df, out + i);
  }
#endif
  for (; i < k; ++i) out[i] = F16ToF32(F32ToF16(x[i]));
}

// Activations as FloatRange reads them: rounded to the weight type (f16 / bf16) or, for f32
// weights, the caller's rows as they are unless K is not a multiple of the vector length (then a
// zero-padded copy).
template <WKind kW>
const float* FloatPrepare(const float* a, int64_t m, size_t k, ThreadPool* pool, size_t* a_stride) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  *a_stride = k;
  if (kW == WKind::kF32 && k % lanes == 0) return a;
  thread_local std::vector<float> buf;
  const size_t stride = (k + lanes - 1) / lanes * lanes;
  *a_stride = stride;
  float* p = Scratch(buf, static_cast<size_t>(m) * stride);
  ForEachRow(m, pool, [&](int64_t i) {
    float* dst = p + i * stride;
    if (kW == WKind::kF32) {
      std::memcpy(dst, a + i * k, k * sizeof(float));
    } else {
      RoundActivationRow(kW == WKind::kF16 ? DType::kF16 : DType::kBF16, a + i * k, k, dst);
    }
    std::fill(dst + k, dst + stride, 0.0f);
  });
  return p;
}

// Packs A [m, a_stride] (K zero-padded to kp) for FloatRangePacked: [m / kPackR blocks][kp /
// lanes][kPackR][lanes], rows past m zero. Once per call (every slab of every thread reads it), in
// parallel for large m.
const float* PackA(const float* a, size_t a_stride, int64_t m, size_t k, ThreadPool* pool) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const size_t kp = (k + lanes - 1) / lanes * lanes, nsteps = kp / lanes;
  const int64_t blocks = (m + kPackR - 1) / kPackR;
  thread_local AlignedScratch buf;
  float* ap = buf.Get(static_cast<size_t>(blocks) * kPackR * kp);
  ForEachRow(blocks, pool, [&](int64_t ib) {
    for (size_t v = 0; v < nsteps; ++v) {
      for (int r = 0; r < kPackR; ++r) {
        const int64_t row = ib * kPackR + r;
        const VF av = row < m ? hn::LoadU(df, a + row * a_stride + v * lanes) : hn::Zero(df);
        hn::Store(av, df, ap + ((ib * nsteps + v) * kPackR + r) * lanes);
      }
    }
  });
  return ap;
}

template <WKind kW>
void FloatMatMulMulti(const float* a, int64_t m, int count, const MatRef* w,
                      const float* const* bias, float* const* c, ThreadPool* pool) {
  size_t a_stride;
  const float* ap = FloatPrepare<kW>(a, m, static_cast<size_t>(w[0].cols), pool, &a_stride);
  if (w[0].panels16) {
#if HWY_TARGET <= HWY_AVX2
    const FloatBlocking& b = Blocking();
    const float* packed =
        m >= f32avx2::kMinPackedRows && b.pack
            ? f32avx2::PackA(ap, a_stride, m, static_cast<size_t>(w[0].cols), pool)
            : nullptr;
    return RunOverOutputs(count, w, m, pool, kFloatDecodeChunks,
                          [&](int i, int64_t n0, int64_t n1) {
                            f32avx2::Range<kW>(ap, a_stride, packed, m, w[i], bias[i], c[i], n0, n1,
                                               b.panel_kc, b.panel_slab_bytes);
                          });
#else
    SI_CHECK(false) << "matmul: panel matrices are made by and for the AVX2 / AVX3 tables";
#endif
  }
  const float* packed =
      UsePacked(m) ? PackA(ap, a_stride, m, static_cast<size_t>(w[0].cols), pool) : nullptr;
  RunOverOutputs(count, w, m, pool, kFloatDecodeChunks, [&](int i, int64_t n0, int64_t n1) {
    FloatRange<kW>(ap, a_stride, packed, m, w[i], bias[i], c[i], n0, n1);
  });
}

// ------------------------------------------------------------------------------------------------------
// Q8_0 activations, bit-identical to si::QuantizeRowQ8_0: amax, d = fp16(amax / 127), id = 127 /
// amax, q = round-to-nearest-even(x * id). Values go to qs (int8, row-contiguous), f32(d) to d_out.

void QuantizeActivationRow(const float* x, size_t k, int8_t* qs, float* d_out) {
  const hn::CappedTag<float, 32>
      df;  // a block is 32 floats: 2 (AVX3), 4 (AVX2) or 8 (SSE4) vectors
  const size_t lanes = hn::Lanes(df);
  const hn::Rebind<int8_t, decltype(df)> d8;
  for (size_t b = 0; b < k / kQK8_0; ++b) {
    const float* xb = x + b * kQK8_0;
    auto vmax = hn::Zero(df);
    for (size_t i = 0; i < kQK8_0; i += lanes) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, xb + i)));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const uint16_t dh = F32ToF16(d);
    d_out[b] = HalfToFloat(dh);
    const auto vid = hn::Set(df, id);
    for (size_t i = 0; i < kQK8_0; i += lanes) {
      const auto q =
          hn::NearestInt(hn::Mul(hn::LoadU(df, xb + i), vid));  // |q| <= 127: no saturation
      hn::StoreU(hn::DemoteTo(d8, q), d8, qs + b * kQK8_0 + i);
    }
  }
}

#define SI_Q_NS qbase
#define SI_Q_VNNI 0
#include "kernels/matmul_quant-inl.h"
#undef SI_Q_NS
#undef SI_Q_VNNI

#if HWY_TARGET == HWY_AVX3
#pragma GCC push_options
#pragma GCC target("avx512vnni")
#define SI_Q_NS qvnni
#define SI_Q_VNNI 1
#include "kernels/matmul_quant-inl.h"
#undef SI_Q_NS
#undef SI_Q_VNNI
#pragma GCC pop_options
#endif

#include "kernels/matmul_int8-inl.h"
#include "kernels/matmul_q8_avx2-inl.h"  // q8avx2
#if HWY_TARGET == HWY_AVX3
#pragma GCC push_options
#pragma GCC target("avx512vnni")
#define SI_I8_NS i8vnni
#define SI_I8_VNNI 1
#include "kernels/matmul_int8-inl.h"
#define SI_Q8_NS q8vnni
#define SI_Q8_VNNI 1
#include "kernels/matmul_q8_avx2-inl.h"
#pragma GCC pop_options
#endif

// Q8_0 / Q4_0 weights: the activation rows are quantized once (in parallel for large M), laid out
// for this table's tile once, then every matmul of the group runs over them in one dispatch.
template <bool kVnni>
void QuantMatMulMulti(const float* a, int64_t m, int count, const MatRef* w,
                      const float* const* bias, float* const* c, ThreadPool* pool) {
  const size_t k = static_cast<size_t>(w[0].cols);
  SI_CHECK(k % kQK8_0 == 0) << k;
  thread_local std::vector<int8_t> qbuf;
  thread_local std::vector<float> dbuf;
  int8_t* aq = Scratch(qbuf, m * k);
  float* ad = Scratch(dbuf, m * (k / kQK8_0));
  ForEachRow(m, pool, [&](int64_t i) {
    QuantizeActivationRow(a + i * k, k, aq + i * k, ad + i * (k / kQK8_0));
  });
  bool need_q4 = false;
  for (int i = 0; i < count; ++i) need_q4 |= w[i].type == DType::kQ4_0;
#if HWY_TARGET == HWY_AVX3
  if (kVnni) {
    // Q8_0 (stored rows or panels) through q8vnni: the bits of the AVX3 table's q8avx2 and of
    // every layout; Q4_0 through qvnni's lanes-along-K tile. The panel tile's unsigned operand is
    // q + 128 (q ^ 0x80), made once per call.
    thread_local std::vector<uint8_t> ubuf;
    uint8_t* au = Scratch(ubuf, m * k);
    ForEachRow(m, pool, [&](int64_t i) {
      const hn::ScalableTag<uint8_t> du8;
      const auto flip = hn::Set(du8, 0x80);
      const auto* q = reinterpret_cast<const uint8_t*>(aq + i * k);
      uint8_t* u = au + i * k;
      size_t j = 0;
      for (; j + hn::Lanes(du8) <= k; j += hn::Lanes(du8)) {
        hn::StoreU(hn::Xor(hn::LoadU(du8, q + j), flip), du8, u + j);
      }
      for (; j < k; ++j) u[j] = q[j] ^ 0x80;
    });
    const qvnni::QuantPrepared p = qvnni::QuantPrepare(aq, ad, m, k, need_q4);
    return RunOverOutputs(
        count, w, m, pool, kQuantDecodeChunks, [&](int i, int64_t n0, int64_t n1) {
          if (w[i].type == DType::kQ8_0) {
            return q8vnni::Range(q8vnni::Acts{aq, ad, au}, m, w[i], bias[i], c[i], n0, n1);
          }
          qvnni::QuantRangeOf(p, m, w[i], bias[i], c[i], n0, n1);
        });
  }
#endif
  const qbase::QuantPrepared p = qbase::QuantPrepare(aq, ad, m, k, need_q4);
  RunOverOutputs(count, w, m, pool, kQuantDecodeChunks, [&](int i, int64_t n0, int64_t n1) {
#if HWY_TARGET <= HWY_AVX2
    if (w[i].type == DType::kQ8_0) {
      return q8avx2::Range(q8avx2::Acts{aq, ad}, m, w[i], bias[i], c[i], n0, n1);
    }
#endif
    qbase::QuantRangeOf(p, m, w[i], bias[i], c[i], n0, n1);
  });
}

template <bool kVnni>
void Int8RowsMatMulMulti(const float* a, int64_t m, int count, const MatRef* w,
                         const float* const* bias, float* const* c, ThreadPool* pool) {
#if HWY_TARGET == HWY_AVX3
  if (kVnni) return i8vnni::MatMulMulti(a, m, count, w, bias, c, pool);
#endif
  i8rows::MatMulMulti(a, m, count, w, bias, c, pool);
}

enum class Group { kF32, kF16, kBF16, kQuant, kInt8Rows, kOther };

Group GroupOf(const MatRef& w) {
  if (w.type == DType::kQ8_0 && w.int8_rows) return Group::kInt8Rows;
  switch (w.type) {
    case DType::kF32:
      return Group::kF32;
    case DType::kF16:
      return Group::kF16;
    case DType::kBF16:
      return Group::kBF16;
    case DType::kQ8_0:
    case DType::kQ4_0:
      return Group::kQuant;
    default:
      return Group::kOther;
  }
}

template <bool kVnni>
void MatMulImpl(const float* a, int64_t m, const MatRef& w, const float* bias, float* c,
                ThreadPool* pool) {
  if (m <= 0 || w.rows <= 0) return;
  switch (w.type) {
    case DType::kF32:
      return FloatMatMulMulti<WKind::kF32>(a, m, 1, &w, &bias, &c, pool);
    case DType::kF16:
      return FloatMatMulMulti<WKind::kF16>(a, m, 1, &w, &bias, &c, pool);
    case DType::kBF16:
      return FloatMatMulMulti<WKind::kBF16>(a, m, 1, &w, &bias, &c, pool);
    case DType::kQ8_0:
      if (w.int8_rows) return Int8RowsMatMulMulti<kVnni>(a, m, 1, &w, &bias, &c, pool);
      return QuantMatMulMulti<kVnni>(a, m, 1, &w, &bias, &c, pool);
    case DType::kQ4_0:
      return QuantMatMulMulti<kVnni>(a, m, 1, &w, &bias, &c, pool);
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return KQuantMatMul(a, m, w, bias, c, pool);
    default:
      SI_CHECK(false) << "matmul: unsupported weight dtype " << DTypeName(w.type);
  }
}

// `count` matmuls of one input. Fused (one activation preparation, one dispatch) when all weights
// are in one group (f32 / f16 / bf16 / Q8_0+Q4_0 / int8 rows) with equal K; otherwise one
// MatMulImpl each. Bit-identical to separate calls either way: FloatRange / QuantRangeOf compute
// every output the same way.
template <bool kVnni>
void MatMulMultiImpl(const float* a, int64_t m, int count, const MatRef* w,
                     const float* const* bias, float* const* c, ThreadPool* pool) {
  if (m <= 0 || count <= 0) return;
  const Group g = GroupOf(w[0]);
  bool fused = g != Group::kOther;
  for (int i = 1; i < count; ++i) {
    fused &= GroupOf(w[i]) == g && w[i].cols == w[0].cols && w[i].panels16 == w[0].panels16;
  }
  if (!fused || count == 1) {
    for (int i = 0; i < count; ++i) MatMulImpl<kVnni>(a, m, w[i], bias[i], c[i], pool);
    return;
  }
  switch (g) {
    case Group::kF32:
      return FloatMatMulMulti<WKind::kF32>(a, m, count, w, bias, c, pool);
    case Group::kF16:
      return FloatMatMulMulti<WKind::kF16>(a, m, count, w, bias, c, pool);
    case Group::kBF16:
      return FloatMatMulMulti<WKind::kBF16>(a, m, count, w, bias, c, pool);
    case Group::kInt8Rows:
      return Int8RowsMatMulMulti<kVnni>(a, m, count, w, bias, c, pool);
    default:
      return QuantMatMulMulti<kVnni>(a, m, count, w, bias, c, pool);
  }
}

// ------------------------------------------------------------------------------------------------------
// get_rows: exact dequantization (the same single f32 multiply d * q as the reference).

void DequantRow(DType t, const uint8_t* row, size_t n, float* out) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  switch (t) {
    case DType::kF32:
      std::memcpy(out, row, n * sizeof(float));
      return;
    case DType::kF16:
    case DType::kBF16: {
      size_t i = 0;
      if (t == DType::kF16) {
        for (; i + lanes <= n; i += lanes) hn::StoreU(LoadW<WKind::kF16>(df, row, i), df, out + i);
      } else {
        for (; i + lanes <= n; i += lanes) hn::StoreU(LoadW<WKind::kBF16>(df, row, i), df, out + i);
      }
      const auto* h = reinterpret_cast<const uint16_t*>(row);
      for (; i < n; ++i) out[i] = t == DType::kF16 ? F16ToF32(h[i]) : BF16ToF32(h[i]);
      return;
    }
    case DType::kQ8_0:
    case DType::kQ4_0: {
      const hn::CappedTag<float, 16> d16;  // 16 outputs at a time
      const size_t l16 = hn::Lanes(d16);
      const hn::Rebind<int32_t, decltype(d16)> di;
      const hn::Rebind<int8_t, decltype(d16)> d8;
      const hn::Rebind<uint8_t, decltype(d16)> du8;
      const bool q4 = t == DType::kQ4_0;
      const size_t block_bytes = q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
      for (size_t b = 0; b < n / kQK8_0; ++b) {
        const uint8_t* blk = row + b * block_bytes;
        uint16_t dbits;
        std::memcpy(&dbits, blk, 2);
        const auto vd = hn::Set(d16, HalfToFloat(dbits));
        float* o = out + b * kQK8_0;
        if (!q4) {
          const auto* qs = reinterpret_cast<const int8_t*>(blk + 2);
          for (size_t i = 0; i < kQK8_0; i += l16) {
            hn::StoreU(hn::Mul(vd, hn::ConvertTo(d16, hn::PromoteTo(di, hn::LoadU(d8, qs + i)))),
                       d16, o + i);
          }
        } else {
          const uint8_t* qs = blk + 2;
          const auto eight = hn::Set(di, 8);
          const auto mask = hn::Set(di, 0x0f);
          for (size_t i = 0; i < kQK4_0 / 2; i += l16) {
            const auto v = hn::BitCast(
                di, hn::PromoteTo(hn::RebindToUnsigned<decltype(di)>(), hn::LoadU(du8, qs + i)));
            const auto lo = hn::Sub(hn::And(v, mask), eight);
            const auto hi = hn::Sub(hn::ShiftRight<4>(v), eight);
            hn::StoreU(hn::Mul(vd, hn::ConvertTo(d16, lo)), d16, o + i);
            hn::StoreU(hn::Mul(vd, hn::ConvertTo(d16, hi)), d16, o + i + kQK4_0 / 2);
          }
        }
      }
      return;
    }
    default:
      SI_CHECK(DequantizeRowKQuant(t, row, static_cast<int64_t>(n), out))
          << "get_rows: unsupported dtype " << DTypeName(t);
  }
}

}  // namespace

void MatMul(const float* a, int64_t m, const MatRef& w, const float* bias, float* c,
            ThreadPool* pool) {
  MatMulImpl<false>(a, m, w, bias, c, pool);
}

void MatMulVnni(const float* a, int64_t m, const MatRef& w, const float* bias, float* c,
                ThreadPool* pool) {
  MatMulImpl<true>(a, m, w, bias, c, pool);
}

void MatMulMulti(const float* a, int64_t m, int count, const MatRef* w, const float* const* bias,
                 float* const* c, ThreadPool* pool) {
  MatMulMultiImpl<false>(a, m, count, w, bias, c, pool);
}

void MatMulMultiVnni(const float* a, int64_t m, int count, const MatRef* w,
                     const float* const* bias, float* const* c, ThreadPool* pool) {
  MatMulMultiImpl<true>(a, m, count, w, bias, c, pool);
}

#if HWY_TARGET <= HWY_AVX2
int64_t PanelBytes(const MatRef& w) {
  if (w.type != DType::kQ8_0) return f32avx2::PanelBytes(w);
  return w.int8_rows ? i8rows::PanelBytes(w) : q8avx2::PanelBytes(w);
}
MatRef ToPanels(const MatRef& w, void* dst, ThreadPool* pool) {
  if (w.type != DType::kQ8_0) return f32avx2::ToPanels(w, dst, pool);
  return w.int8_rows ? i8rows::ToPanels(w, dst, pool) : q8avx2::ToPanels(w, dst, pool);
}
#endif

void GetRows(const MatRef& w, const int32_t* ids, int64_t n, float* out) {
  SI_CHECK(!w.panels16) << "get_rows: panel matrices hold no rows";
  for (int64_t i = 0; i < n; ++i) {
    DequantRow(w.type, w.row(ids[i]), static_cast<size_t>(w.cols), out + i * w.cols);
  }
}

#endif  // HWY_TARGET != HWY_SCALAR
}  // namespace HWY_NAMESPACE
}  // namespace si
HWY_AFTER_NAMESPACE();
