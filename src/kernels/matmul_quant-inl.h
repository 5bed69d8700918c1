// Quantized (Q8_0 / Q4_0 weights x Q8_0 activations) matmul tiles. A textual fragment, not a normal header:
// simd_matmul.cc includes it inside its per-target namespace, once with SI_Q_VNNI 0 (namespace qbase) and,
// on AVX3 only, a second time with SI_Q_VNNI 1 under `#pragma GCC target("avx512vnni")` (namespace qvnni).
// GCC gives a function the target options in force where it is defined, so the VNNI copy must be a
// separate text; everything it calls is always-inline Highway/intrinsic code, which inlines fine into a
// caller with a superset of the ISA flags.
//
// Numerics (identical in both copies, and the same for every tile shape, which makes C[m, n] independent
// of M, of the row blocking and of the thread count):
//   for each block b (in order):  isum = exact int32 dot of 32 int8 pairs, kept as kQLanes partial sums
//                                   (lane i holds the sum of 32/kQLanes consecutive products);
//                                 acc = MulAdd(f32(isum), d_w * d_a, acc)      [acc: kQLanes f32 lanes]
//   C[m, n] = ReduceSum(acc) + bias[n].
// The integer part is exact; the float part differs from the scalar reference only by summation order.
//
// Requires: SI_Q_NS (namespace name) and SI_Q_VNNI (0/1) defined by the includer.

namespace SI_Q_NS {

#if HWY_TARGET == HWY_SSE4
// 128-bit vectors: one 32-byte block is two halves.
struct I8x32 {
  __m128i lo, hi;
};
using DQ = hn::Full128<float>;
HWY_INLINE I8x32 LoadI8x32(const int8_t* p) {
  return {_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16))};
}
// Q4_0: byte j holds element j (low nibble) and element j + 16 (high nibble); value = nibble - 8.
HWY_INLINE I8x32 UnpackQ4(const uint8_t* qs) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
  return {_mm_sub_epi8(_mm_and_si128(x, m), eight), _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(x, 4), m), eight)};
}
HWY_INLINE I8x32 AbsI8(I8x32 v) { return {_mm_abs_epi8(v.lo), _mm_abs_epi8(v.hi)}; }
// a * sign(w) (0 where w == 0), so that |w| (unsigned) x sign-adjusted a (signed) = w * a.
HWY_INLINE I8x32 SignI8(I8x32 a, I8x32 w) { return {_mm_sign_epi8(a.lo, w.lo), _mm_sign_epi8(a.hi, w.hi)}; }
HWY_INLINE hn::Vec<DQ> DotI8(I8x32 wabs, I8x32 as) {
  // maddubs: u8 x s8 pairs summed to i16 (|127*128*2| < 32767: exact), madd with 1: pairs to i32.
  const __m128i ones = _mm_set1_epi16(1);
  const __m128i lo = _mm_madd_epi16(_mm_maddubs_epi16(wabs.lo, as.lo), ones);
  const __m128i hi = _mm_madd_epi16(_mm_maddubs_epi16(wabs.hi, as.hi), ones);
  return hn::Vec<DQ>{_mm_cvtepi32_ps(_mm_add_epi32(lo, hi))};
}
#else
// AVX2 / AVX3: one block per 256-bit vector (on Zen 4, 512-bit integer ops are double-pumped anyway).
using I8x32 = __m256i;
using DQ = hn::Full256<float>;
HWY_INLINE I8x32 LoadI8x32(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
HWY_INLINE I8x32 UnpackQ4(const uint8_t* qs) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i v = _mm256_set_m128i(_mm_srli_epi16(x, 4), x);
  return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
}
HWY_INLINE I8x32 AbsI8(I8x32 v) { return _mm256_abs_epi8(v); }
HWY_INLINE I8x32 SignI8(I8x32 a, I8x32 w) { return _mm256_sign_epi8(a, w); }
HWY_INLINE hn::Vec<DQ> DotI8(I8x32 wabs, I8x32 as) {
#if SI_Q_VNNI
  // EVEX vpdpbusd: the same four-product int32 lane sums as maddubs+madd below, in one instruction.
  const __m256i isum = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wabs, as);
#else
  const __m256i isum = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, as), _mm256_set1_epi16(1));
#endif
  return hn::Vec<DQ>{_mm256_cvtepi32_ps(isum)};
}
#endif

// R rows of activations x C rows of weights. aq: int8 activations, row stride k; ad: activation block
// scales (f32 of the fp16 d), row stride k / 32. w0: first weight row, rows w_stride bytes apart.
template <bool kQ4, int R, int C>
HWY_INLINE void QuantTile(const int8_t* HWY_RESTRICT aq, const float* HWY_RESTRICT ad, size_t k,
                          const uint8_t* HWY_RESTRICT w0, size_t w_stride, const float* bias,
                          float* HWY_RESTRICT c, size_t c_stride) {
  const DQ dq;
  using VQ = hn::Vec<DQ>;
  constexpr size_t kBlockBytes = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  const size_t nblocks = k / kQK8_0;
  VQ acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) acc[r][j] = hn::Zero(dq);
  for (size_t b = 0; b < nblocks; ++b) {
    I8x32 wv[C], wabs[C];
    VQ dw[C];
    for (int j = 0; j < C; ++j) {
      const uint8_t* blk = w0 + j * w_stride + b * kBlockBytes;
      uint16_t dbits;
      std::memcpy(&dbits, blk, 2);
      dw[j] = hn::Set(dq, HalfToFloat(dbits));
      wv[j] = kQ4 ? UnpackQ4(blk + 2) : LoadI8x32(reinterpret_cast<const int8_t*>(blk + 2));
      wabs[j] = AbsI8(wv[j]);
    }
    for (int r = 0; r < R; ++r) {
      const I8x32 av = LoadI8x32(aq + r * k + b * kQK8_0);
      const VQ da = hn::Set(dq, ad[r * nblocks + b]);
      for (int j = 0; j < C; ++j) {
        acc[r][j] = hn::MulAdd(DotI8(wabs[j], SignI8(av, wv[j])), hn::Mul(dw[j], da), acc[r][j]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < C; ++j) {
      const float sum = hn::GetLane(hn::SumOfLanes(dq, acc[r][j]));
      c[r * c_stride + j] = sum + (bias ? bias[j] : 0.0f);
    }
  }
}

// Rows [0, m) x outputs [n0, n1) of C, blocked for L2: a slab of weight rows (~256 KiB) is reused by all
// row blocks of A before moving on.
template <bool kQ4>
void QuantRange(const int8_t* aq, const float* ad, int64_t m, const MatRef& w, const float* bias, float* c,
                int64_t n0, int64_t n1) {
  constexpr int kR = 4;
  constexpr int kC = HWY_TARGET <= HWY_AVX3 ? 4 : 2;
  const size_t k = static_cast<size_t>(w.cols);
  const size_t w_stride = static_cast<size_t>(w.row_bytes());
  const size_t n = static_cast<size_t>(w.rows);
  const size_t nblocks = k / kQK8_0;
  const int64_t slab = std::max<int64_t>(kC, (256 * 1024 / w_stride) / kC * kC);
  for (int64_t s0 = n0; s0 < n1; s0 += slab) {
    const int64_t s1 = std::min(n1, s0 + slab);
    for (int64_t i = 0; i < m; i += kR) {
      const int rows = static_cast<int>(std::min<int64_t>(kR, m - i));
      const int8_t* a_i = aq + i * k;
      const float* d_i = ad + i * nblocks;
      float* c_i = c + i * n;
      int64_t j = s0;
      for (; j + kC <= s1; j += kC) {
        const uint8_t* wj = w.row(j);
        const float* bj = bias ? bias + j : nullptr;
        switch (rows) {
          case 4: QuantTile<kQ4, 4, kC>(a_i, d_i, k, wj, w_stride, bj, c_i + j, n); break;
          case 3: QuantTile<kQ4, 3, kC>(a_i, d_i, k, wj, w_stride, bj, c_i + j, n); break;
          case 2: QuantTile<kQ4, 2, kC>(a_i, d_i, k, wj, w_stride, bj, c_i + j, n); break;
          default: QuantTile<kQ4, 1, kC>(a_i, d_i, k, wj, w_stride, bj, c_i + j, n); break;
        }
      }
      for (; j < s1; ++j) {
        const uint8_t* wj = w.row(j);
        const float* bj = bias ? bias + j : nullptr;
        switch (rows) {
          case 4: QuantTile<kQ4, 4, 1>(a_i, d_i, k, wj, w_stride, bj, c_i + j, n); break;
          case 3: QuantTile<kQ4, 3, 1>(a_i, d_i, k, wj, w_stride, bj, c_i + j, n); break;
          case 2: QuantTile<kQ4, 2, 1>(a_i, d_i, k, wj, w_stride, bj, c_i + j, n); break;
          default: QuantTile<kQ4, 1, 1>(a_i, d_i, k, wj, w_stride, bj, c_i + j, n); break;
        }
      }
    }
  }
}

void QuantMatMul(const int8_t* aq, const float* ad, int64_t m, const MatRef& w, const float* bias, float* c,
                 ThreadPool* pool) {
  RunOverOutputs(w.rows, m, pool, [&](int64_t n0, int64_t n1) {
    if (w.type == DType::kQ4_0) {
      QuantRange<true>(aq, ad, m, w, bias, c, n0, n1);
    } else {
      QuantRange<false>(aq, ad, m, w, bias, c, n0, n1);
    }
  });
}

}  // namespace SI_Q_NS
