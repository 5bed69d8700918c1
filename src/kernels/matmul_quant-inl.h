// Quantized (Q8_0 / Q4_0 weights x Q8_0 activations) matmul tiles. A textual fragment, not a normal
// header: simd_matmul.cc includes it inside its per-target namespace, once with SI_Q_VNNI 0
// (namespace qbase) and, on AVX3 only, a second time with SI_Q_VNNI 1 under `#pragma GCC
// target("avx512vnni")` (namespace qvnni). GCC gives a function the target options in force where
// it is defined, so the VNNI copy must be a separate text; everything it calls is always-inline
// Highway/intrinsic code, which inlines fine into a caller with a superset of the ISA flags.
//
// Numerics (the same for every tile shape of a table, which makes C[m, n] independent of M, of the
// row blocking and of the thread count):
//   for each block b, in order:
//     isum = exact int32 dot of 32 int8 pairs, kept as int32 lane partial sums
//     acc = MulAdd(f32(isum), d_w * d_a, acc)      [acc: f32 lanes]
//   C[m, n] = SumOfLanes(acc) + bias[n].
// The AVX2 table runs Q8_0 in matmul_q8_avx2-inl.h instead (one f32 accumulator per output, a
// packed GEMM); here on AVX2 only Q4_0. Base tile (SSE4/AVX2/AVX3): one block per vector (8 lanes;
// 4 on SSE4). VNNI tile: two blocks per 512-bit vector (lanes 0-7 even blocks, 8-15 odd blocks), so
// "AVX3" and "AVX3_VNNI" may differ in the last bits. The integer part is exact; the float part
// differs from the scalar reference only by summation order.
//
// Requires: SI_Q_NS (namespace name) and SI_Q_VNNI (0/1) defined by the includer.
// Needs from the includer: HalfToFloat, RunOverOutputs, Scratch.

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
  return {_mm_sub_epi8(_mm_and_si128(x, m), eight),
          _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(x, 4), m), eight)};
}
HWY_INLINE I8x32 AbsI8(I8x32 v) { return {_mm_abs_epi8(v.lo), _mm_abs_epi8(v.hi)}; }
// a * sign(w) (0 where w == 0), so that |w| (unsigned) x sign-adjusted a (signed) = w * a.
HWY_INLINE I8x32 SignI8(I8x32 a, I8x32 w) {
  return {_mm_sign_epi8(a.lo, w.lo), _mm_sign_epi8(a.hi, w.hi)};
}
HWY_INLINE hn::Vec<DQ> DotI8(I8x32 wabs, I8x32 as) {
  // maddubs: u8 x s8 pairs summed to i16 (|127*128*2| < 32767: exact), madd with 1: pairs to i32.
  const __m128i ones = _mm_set1_epi16(1);
  const __m128i lo = _mm_madd_epi16(_mm_maddubs_epi16(wabs.lo, as.lo), ones);
  const __m128i hi = _mm_madd_epi16(_mm_maddubs_epi16(wabs.hi, as.hi), ones);
  return hn::Vec<DQ>{_mm_cvtepi32_ps(_mm_add_epi32(lo, hi))};
}
#else
// AVX2 / AVX3: one block per 256-bit vector (on Zen 4, 512-bit integer ops are double-pumped
// anyway).
using I8x32 = __m256i;
using DQ = hn::Full256<float>;
HWY_INLINE I8x32 LoadI8x32(const int8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
HWY_INLINE I8x32 UnpackQ4(const uint8_t* qs) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i v = _mm256_set_m128i(_mm_srli_epi16(x, 4), x);
  return _mm256_sub_epi8(_mm256_and_si256(v, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
}
HWY_INLINE I8x32 AbsI8(I8x32 v) { return _mm256_abs_epi8(v); }
HWY_INLINE I8x32 SignI8(I8x32 a, I8x32 w) { return _mm256_sign_epi8(a, w); }
HWY_INLINE hn::Vec<DQ> DotI8(I8x32 wabs, I8x32 as) {
  // maddubs: u8 x s8 pairs summed to i16 (|128 * 127 * 2| < 32767: exact), madd with 1: pairs to
  // i32.
  const __m256i isum = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, as), _mm256_set1_epi16(1));
  return hn::Vec<DQ>{_mm256_cvtepi32_ps(isum)};
}
#endif

// Quantized activations as a tile sees them: row r at q + r * q_stride (int8), its block scales at
// d + r * d_stride (f32 of the fp16 d; for the VNNI tile padded with a zero to an even count per
// row, so that a block pair's two scales are one 64-bit load).
struct QA {
  const int8_t* q;
  const float* d;
  size_t q_stride, d_stride;
};

// R rows of activations x C rows of weights (w0: first weight row, rows w_stride bytes apart).
// Blocks go in groups of kScaleGroup: the group's scale products dw * da (one f32 multiply each,
// exactly the value the per-block formula uses) are computed first into a small table, so that the
// per-(row, output, block) work is sign + maddubs + madd + cvt + one FMA with a broadcast load,
// instead of also a scalar fp16 convert, a multiply and a register broadcast (8 vs 5 vector ALU
// ops; measured in docs/kernels.md). Same numbers as before, in the same order.
constexpr size_t kScaleGroup = 8;

// Where a tile of C adjacent weight rows starts its software prefetch (the streaming prefill /
// batched-decode tile and the Q4_0 decode tile): the weight rows `ahead` tiles on, `ahead` being
// the fewest whole tiles (C rows of w_stride bytes, contiguous) that make ~8 KiB. The tile
// prefetches from there in address order, C blocks' bytes per block step, so the prefetches form
// one sequential stream ~8 KiB ahead of the reads (docs/kernels.md, "decode prefetch"; the Q8_0
// decode tile used it too before "decode streams"). Past the last row it is a harmless hint.
constexpr size_t kPrefetchAheadBytes = 8192;
HWY_INLINE const uint8_t* PrefetchStart(const uint8_t* w0, size_t tile_bytes) {
  return w0 + tile_bytes * std::max<size_t>(1, (kPrefetchAheadBytes + tile_bytes - 1) / tile_bytes);
}
HWY_INLINE void PrefetchLines(const uint8_t* p, size_t bytes) {
  for (size_t l = 0; l < bytes; l += 64) hwy::Prefetch(p + l);
}

template <bool kQ4, int R, int C>
HWY_INLINE void QuantTile(const QA& a, size_t k, const uint8_t* HWY_RESTRICT w0, size_t w_stride,
                          const float* bias, float* HWY_RESTRICT c, size_t c_stride, bool stream) {
  const DQ dq;
  using VQ = hn::Vec<DQ>;
  constexpr size_t kBlockBytes = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  const size_t nblocks = k / kQK8_0;
  VQ acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) acc[r][j] = hn::Zero(dq);
  HWY_ALIGN float scale[R][C][kScaleGroup];
  // stream: this tile's weights come from memory (the first row block of a slab; later ones find
  // the slab in L2). Then it prefetches from PrefetchStart, a block group at a time: batched
  // decode 1.1B Q8_0, 2 threads, b4 25-27 -> 38-45 t/s, b16 34-38 -> 35-51 t/s (alternating pairs),
  // while prefetching in every row block cost prefill 0-10% (docs/kernels.md).
  const uint8_t* pf = stream ? PrefetchStart(w0, C * w_stride) : nullptr;
  for (size_t b0 = 0; b0 < nblocks; b0 += kScaleGroup) {
    const size_t nb = std::min(kScaleGroup, nblocks - b0);
    if (stream) PrefetchLines(pf + b0 * C * kBlockBytes, C * kBlockBytes * kScaleGroup);
    float dw[C][kScaleGroup];
    for (int j = 0; j < C; ++j) {
      const uint8_t* blk = w0 + j * w_stride + b0 * kBlockBytes;
      for (size_t u = 0; u < nb; ++u) {
        uint16_t dbits;
        std::memcpy(&dbits, blk + u * kBlockBytes, 2);
        dw[j][u] = HalfToFloat(dbits);
      }
    }
    for (int r = 0; r < R; ++r) {
      const float* da = a.d + r * a.d_stride + b0;
      if (nb == kScaleGroup) {  // vector multiplies: the same f32 products as the scalar loop
        for (size_t u = 0; u < kScaleGroup; u += hn::Lanes(dq)) {
          const VQ dav = hn::LoadU(dq, da + u);
          for (int j = 0; j < C; ++j)
            hn::Store(hn::Mul(hn::LoadU(dq, &dw[j][u]), dav), dq, &scale[r][j][u]);
        }
      } else {
        for (int j = 0; j < C; ++j)
          for (size_t u = 0; u < nb; ++u) scale[r][j][u] = dw[j][u] * da[u];
      }
    }
    for (size_t u = 0; u < nb; ++u) {
      const size_t b = b0 + u;
      I8x32 wv[C], wabs[C];
      for (int j = 0; j < C; ++j) {
        const uint8_t* blk = w0 + j * w_stride + b * kBlockBytes;
        wv[j] = kQ4 ? UnpackQ4(blk + 2) : LoadI8x32(reinterpret_cast<const int8_t*>(blk + 2));
        wabs[j] = AbsI8(wv[j]);
      }
      for (int r = 0; r < R; ++r) {
        const I8x32 av = LoadI8x32(a.q + r * a.q_stride + b * kQK8_0);
        for (int j = 0; j < C; ++j) {
          acc[r][j] =
              hn::MulAdd(DotI8(wabs[j], SignI8(av, wv[j])), hn::Set(dq, scale[r][j][u]), acc[r][j]);
        }
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

// Decode tile: one activation row x C weight rows (w[j]: row pointer, c[j]: its output, bias[j]:
// its bias or none).
//   Q8_0: the C = kDecodeStreams rows come from kDecodeStreams different places of the chunk and
//   successive tiles take the next row of each place, so each place is one long sequential stream,
//   prefetched kStreamPrefetchQ8 bytes ahead. A 34-byte-block GEMV has ~15 instructions per block:
//   the core's out-of-order window covers only a few lines of each stream, so the memory-level
//   parallelism must come from prefetching, and four long streams are what the hardware prefetcher
//   and a short software distance serve best. Standalone (265 MB of Q8_0, chunks of 704 / 384 rows
//   as the engine makes, median ratio to a 4-stream read in the same round, 5 rounds): 2 adjacent
//   rows + 8 KiB linear prefetch (the previous tile) 0.75 / 0.85 / 0.82 at 1 / 2 / 2 threads, 4
//   streams + 1 KiB 0.89 / 0.95 / 0.97; 3, 6 or 8 streams and no software prefetch were worse. In
//   the engine 256 B beat 1 KiB in 7 of 8 two-thread pairs (docs/kernels.md, "decode streams").
//   Q4_0: kDecodeC adjacent rows with the linear prefetch (PrefetchStart) ~8 KiB ahead: the stream
//   form measured slower for Q4_0 (1.1B tg32, 1 thread, 11.1-11.9 vs 12.8-14.0 t/s), which at 18
//   bytes per block is bound by its unpacking more than by memory.
constexpr int kDecodeStreams = 4, kDecodeC = 2;
constexpr size_t kStreamPrefetchQ8 = 256;
template <bool kQ4, int C>
HWY_INLINE void QuantTileDecode(const QA& a, size_t k, const uint8_t* const* HWY_RESTRICT w,
                                const float* const* bias, float* const* c) {
  const DQ dq;
  using VQ = hn::Vec<DQ>;
  constexpr size_t kBlockBytes = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  const size_t nblocks = k / kQK8_0;
  // Q4_0: rows adjacent, w[j] = w[0] + j * row bytes.
  const uint8_t* pf = kQ4 ? PrefetchStart(w[0], C * (nblocks * kBlockBytes)) : nullptr;
  VQ acc[C];
  for (int j = 0; j < C; ++j) acc[j] = hn::Zero(dq);
  for (size_t b = 0; b < nblocks; ++b) {
    if constexpr (kQ4) PrefetchLines(pf + b * C * kBlockBytes, C * kBlockBytes);
    const I8x32 av = LoadI8x32(a.q + b * kQK8_0);
    const VQ da = hn::Set(dq, a.d[b]);
    for (int j = 0; j < C; ++j) {
      const uint8_t* blk = w[j] + b * kBlockBytes;
      // One prefetch per 68 bytes of each stream.
      if (!kQ4 && b % 2 == 0) hwy::Prefetch(blk + kStreamPrefetchQ8);
      uint16_t dbits;
      std::memcpy(&dbits, blk, 2);
      const I8x32 wv =
          kQ4 ? UnpackQ4(blk + 2) : LoadI8x32(reinterpret_cast<const int8_t*>(blk + 2));
      acc[j] = hn::MulAdd(DotI8(AbsI8(wv), SignI8(av, wv)),
                          hn::Mul(hn::Set(dq, HalfToFloat(dbits)), da), acc[j]);
    }
  }
  for (int j = 0; j < C; ++j) {
    const float sum = hn::GetLane(hn::SumOfLanes(dq, acc[j]));
    *c[j] = sum + (bias[j] ? *bias[j] : 0.0f);
  }
}

// Decode (one activation row) over outputs [n0, n1). Q8_0: kDecodeStreams streams of s rows each;
// Q4_0: tiles of kDecodeC adjacent rows; then the rest one row at a time.
template <bool kQ4>
void QuantDecodeRange(const QA& a, const MatRef& w, const float* bias, float* c, int64_t n0,
                      int64_t n1) {
  constexpr int kC = kQ4 ? kDecodeC : kDecodeStreams;
  const size_t k = static_cast<size_t>(w.cols);
  const int64_t tiles = (n1 - n0) / kC;
  // Row j of tile t: Q8_0 n0 + t + j * tiles (stream j), Q4_0 n0 + t * kC + j (adjacent).
  const int64_t tile_step = kQ4 ? kC : 1, row_step = kQ4 ? 1 : tiles;
  const uint8_t* rows[kC];
  const float* b[kC];
  float* out[kC];
  for (int64_t t = 0; t < tiles; ++t) {
    for (int j = 0; j < kC; ++j) {
      const int64_t n = n0 + t * tile_step + j * row_step;
      rows[j] = w.row(n);
      b[j] = bias ? bias + n : nullptr;
      out[j] = c + n;
    }
    QuantTileDecode<kQ4, kC>(a, k, rows, b, out);
  }
  for (int64_t n = n0 + kC * tiles; n < n1; ++n) {
    rows[0] = w.row(n);
    b[0] = bias ? bias + n : nullptr;
    out[0] = c + n;
    QuantTileDecode<kQ4, 1>(a, k, rows, b, out);
  }
}

struct BaseTile {
  template <bool kQ4, int R, int C>
  static HWY_INLINE void Run(const QA& a, size_t k, const uint8_t* w0, size_t w_stride,
                             const float* bias, float* c, size_t c_stride, bool stream) {
    QuantTile<kQ4, R, C>(a, k, w0, w_stride, bias, c, c_stride, stream);
  }
  static constexpr bool kStreamDecode = true;  // m = 1 runs QuantDecodeRange
  static constexpr int kR = 4;
  static constexpr int kC =
      HWY_TARGET <= HWY_AVX3 ? 4 : 2;  // 256-bit vectors: 16 (AVX3) / 8 accumulators
};

#if SI_Q_VNNI
// AVX512-VNNI tile: two blocks per 512-bit vector and ONE vpdpbusd (u8 x s8, non-saturating, exact)
// per block pair and output. The weights are made unsigned and the offset is removed by an exact
// integer correction computed once per activation block pair and fed in as the vpdpbusd's
// accumulator:
//     Q8_0: sum a*w       = sum (w ^ 0x80) * a - 128 * sum a      (w ^ 0x80 = w + 128 as uint8)
//     Q4_0: sum a*(nib-8) = sum nib * a        -   8 * sum a
// (128 * sum a and 8 * sum a are one vpdpbusd of a constant with a.) Per (row, output, block pair):
// dpbusd + cvt + mul + fma; weight-side work (load/unpack, scales) is amortised over R = 8 rows and
// the activation-side work (correction, scales) over C. Q8_0: lanes 0-7 accumulate even blocks,
// lanes 8-15 odd blocks. Q4_0: lanes 0-3 and 8-11 even blocks, 4-7 and 12-15 odd blocks (the
// cheapest nibble unpack; the activations are permuted to match, once per call). An odd last block
// has zero activations in its half. Same order for every tile shape, so the result does not depend
// on R, C or M.
template <bool kQ4, int R, int C>
HWY_INLINE void QuantTileVnni(const QA& a, size_t k, const uint8_t* HWY_RESTRICT w0,
                              size_t w_stride, const float* bias, float* HWY_RESTRICT c,
                              size_t c_stride) {
  const hn::Full512<float> d16;
  constexpr size_t kBlockBytes = kQ4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  const size_t nblocks = k / kQK8_0;
  const __m512i koff = _mm512_set1_epi8(kQ4 ? 8 : static_cast<char>(0x80));
  const __m512i k0f = _mm512_set1_epi8(0x0f);
  const __m512i zero = _mm512_setzero_si512();
  // Lane -> block of the pair: Q8_0 [b x 8, b+1 x 8]; Q4_0 [b x 4, b+1 x 4, b x 4, b+1 x 4] (see
  // the Q4_0 unpack below).
  const __m512i kPairIdx = kQ4 ? _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0)
                               : _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  __m512 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) acc[r][j] = _mm512_setzero_ps();
  for (size_t b = 0; b < nblocks; b += 2) {
    const bool two = b + 1 < nblocks;
    __m512i wv[C];
    __m512 dw[C];
    for (int j = 0; j < C; ++j) {
      const uint8_t* blk0 = w0 + j * w_stride + b * kBlockBytes;
      const uint8_t* blk1 = blk0 + kBlockBytes;
      uint16_t h0, h1 = 0;
      std::memcpy(&h0, blk0, 2);
      if (two) std::memcpy(&h1, blk1, 2);
      // Both fp16 scales in one xmm -> f32 -> [d0 x 8, d1 x 8].
      const __m128 d01 =
          _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(h0 | (static_cast<uint32_t>(h1) << 16))));
      dw[j] = _mm512_permutexvar_ps(kPairIdx, _mm512_castps128_ps512(d01));
      if constexpr (kQ4) {
        // [x0 | x1] -> [lo(x0), lo(x1), hi(x0), hi(x1)] in 16-byte quarters: elements 0-15 of both
        // blocks, then 16-31 of both. The activations were permuted to match in QuantMatMul.
        const __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk0 + 2));
        const __m128i x1 =
            two ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk1 + 2)) : _mm_setzero_si128();
        const __m256i xx = _mm256_inserti128_si256(_mm256_castsi128_si256(x0), x1, 1);
        const __m512i z =
            _mm512_inserti64x4(_mm512_castsi256_si512(xx), _mm256_srli_epi16(xx, 4), 1);
        wv[j] = _mm512_and_si512(z, k0f);  // nibbles, unsigned
      } else {
        const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk0 + 2));
        const __m256i x1 = two ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk1 + 2))
                               : _mm256_setzero_si256();
        wv[j] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(x0), x1, 1),
                                 koff);  // w + 128
      }
    }
    for (int r = 0; r < R; ++r) {
      const int8_t* ab = a.q + r * a.q_stride + b * kQK8_0;
      const __m512i av =
          (kQ4 || two)  // Q4_0 activations are a zero-padded, permuted copy: always 64 bytes
              ? _mm512_loadu_si512(ab)
              : _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab)));
      const __m512i corr = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, koff, av));
      // [d_b x 8, d_b+1 x 8] from the two adjacent f32 scales (zero-padded): 64-bit broadcast +
      // permute.
      double dd;
      std::memcpy(&dd, a.d + r * a.d_stride + b, 8);
      const __m512 da = _mm512_permutexvar_ps(kPairIdx, _mm512_castpd_ps(_mm512_set1_pd(dd)));
      for (int j = 0; j < C; ++j) {
        const __m512i isum = _mm512_dpbusd_epi32(corr, wv[j], av);
        acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw[j], da), acc[r][j]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < C; ++j) {
      const float sum = hn::GetLane(hn::SumOfLanes(d16, hn::Vec512<float>{acc[r][j]}));
      c[r * c_stride + j] = sum + (bias ? bias[j] : 0.0f);
    }
  }
}

struct VnniTile {
  template <bool kQ4, int R, int C>
  static HWY_INLINE void Run(const QA& a, size_t k, const uint8_t* w0, size_t w_stride,
                             const float* bias, float* c, size_t c_stride, bool /*stream*/) {
    QuantTileVnni<kQ4, R, C>(a, k, w0, w_stride, bias, c, c_stride);
  }
  static constexpr bool kStreamDecode = false;  // m = 1 runs 1 x kC tiles
  static constexpr int kR = 8;  // 16 zmm accumulators + 2 zmm per weight row (values, scales)
  static constexpr int kC = 2;
};
#endif

// Calls Tile::Run<kQ4, rows, C> for a runtime rows in [1, R].
template <class Tile, bool kQ4, int R, int C>
HWY_INLINE void TileRows(int rows, const QA& a, size_t k, const uint8_t* w0, size_t w_stride,
                         const float* bias, float* c, size_t c_stride, bool stream) {
  if constexpr (R > 1) {
    if (rows < R) {
      return TileRows<Tile, kQ4, R - 1, C>(rows, a, k, w0, w_stride, bias, c, c_stride, stream);
    }
  }
  Tile::template Run<kQ4, R, C>(a, k, w0, w_stride, bias, c, c_stride, stream);
}

// Rows [0, m) x outputs [n0, n1) of C, blocked for L2: a slab of weight rows (~256 KiB) is reused
// by all row blocks of A before moving on.
template <class Tile, bool kQ4>
void QuantRange(const QA& a, int64_t m, const MatRef& w, const float* bias, float* c, int64_t n0,
                int64_t n1) {
  constexpr int kR = Tile::kR, kC = Tile::kC;
  if constexpr (Tile::kStreamDecode) {
    if (m == 1) return QuantDecodeRange<kQ4>(a, w, bias, c, n0, n1);
  }
  const size_t k = static_cast<size_t>(w.cols);
  const size_t w_stride = static_cast<size_t>(w.row_bytes());
  const size_t n = static_cast<size_t>(w.rows);
  const int64_t slab = std::max<int64_t>(kC, (256 * 1024 / w_stride) / kC * kC);
  for (int64_t s0 = n0; s0 < n1; s0 += slab) {
    const int64_t s1 = std::min(n1, s0 + slab);
    for (int64_t i = 0; i < m; i += kR) {
      const int rows = static_cast<int>(std::min<int64_t>(kR, m - i));
      const QA a_i{a.q + i * a.q_stride, a.d + i * a.d_stride, a.q_stride, a.d_stride};
      float* c_i = c + i * n;
      const bool stream = i == 0;  // the first row block reads the slab from memory
      int64_t j = s0;
      for (; j + kC <= s1; j += kC) {
        TileRows<Tile, kQ4, kR, kC>(rows, a_i, k, w.row(j), w_stride, bias ? bias + j : nullptr,
                                    c_i + j, n, stream);
      }
      for (; j < s1; ++j) {
        TileRows<Tile, kQ4, kR, 1>(rows, a_i, k, w.row(j), w_stride, bias ? bias + j : nullptr,
                                   c_i + j, n, stream);
      }
    }
  }
}

// Activations as this table's tiles read them, prepared once per call (and shared by every matmul
// of the same input, see MatMulMulti). Buffers are thread_local to the calling thread; workers only
// read.
struct QuantPrepared {
  QA q8;  // for Q8_0 weights
  QA q4;  // for Q4_0 weights (VNNI: permuted copy; base: same as q8)
};

// aq: [m, k] int8 activations, ad: [m, k / 32] f32 block scales (both from QuantizeActivationRow).
// need_q4: also build the Q4_0 layout (VNNI only; the base tile reads the same layout for both).
QuantPrepared QuantPrepare(const int8_t* aq, const float* ad, int64_t m, size_t k, bool need_q4) {
  const size_t nblocks = k / kQK8_0;
#if SI_Q_VNNI
  // The VNNI tile reads a block pair's two scales as one 64-bit load: pad each row to an even
  // count.
  const size_t nb2 = (nblocks + 1) / 2 * 2;
  thread_local std::vector<float> d_buf;
  float* d2 = Scratch(d_buf, m * nb2);
  for (int64_t i = 0; i < m; ++i) {
    for (size_t b = 0; b < nb2; ++b) d2[i * nb2 + b] = b < nblocks ? ad[i * nblocks + b] : 0.0f;
  }
  QuantPrepared p;
  p.q8 = QA{aq, d2, k, nb2};
  p.q4 = p.q8;
  if (need_q4) {
    // Per block pair p: [a_2p[0:16], a_2p+1[0:16], a_2p[16:32], a_2p+1[16:32]] (zeros for a missing
    // second block), the order in which the tile unpacks two Q4_0 blocks' nibbles.
    thread_local std::vector<int8_t> ap_buf;
    int8_t* ap = Scratch(ap_buf, m * nb2 * kQK8_0);
    for (int64_t i = 0; i < m; ++i) {
      for (size_t pp = 0; pp < nb2 / 2; ++pp) {
        const int8_t* src0 = aq + i * k + 2 * pp * kQK8_0;
        int8_t* dst = ap + i * nb2 * kQK8_0 + 2 * pp * kQK8_0;
        const bool has1 = 2 * pp + 1 < nblocks;
        std::memcpy(dst, src0, 16);
        std::memcpy(dst + 32, src0 + 16, 16);
        if (has1) {
          std::memcpy(dst + 16, src0 + kQK8_0, 16);
          std::memcpy(dst + 48, src0 + kQK8_0 + 16, 16);
        } else {
          std::memset(dst + 16, 0, 16);
          std::memset(dst + 48, 0, 16);
        }
      }
    }
    p.q4 = QA{ap, d2, nb2 * kQK8_0, nb2};
  }
  return p;
#else
  (void)need_q4;
  const QA a{aq, ad, k, nblocks};
  return QuantPrepared{a, a};
#endif
}

// Rows [0, m) x outputs [n0, n1) of one Q8_0 / Q4_0 matmul from prepared activations.
void QuantRangeOf(const QuantPrepared& p, int64_t m, const MatRef& w, const float* bias, float* c,
                  int64_t n0, int64_t n1) {
#if SI_Q_VNNI
  using Tile = VnniTile;
#else
  using Tile = BaseTile;
#endif
  if (w.type == DType::kQ4_0) {
    QuantRange<Tile, true>(p.q4, m, w, bias, c, n0, n1);
  } else {
    QuantRange<Tile, false>(p.q8, m, w, bias, c, n0, n1);
  }
}

}  // namespace SI_Q_NS
