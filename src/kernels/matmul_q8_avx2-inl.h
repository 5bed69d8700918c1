// Q8_0 weights x Q8_0 activations on AVX2: a packed GEMM with the outputs in the vector lanes for
// M > 4 (prefill, batched decode), and for M <= 4 a tile that streams each weight row once for all
// M rows (decode), with the same arithmetic. A textual fragment included by
// simd_matmul.cc after matmul_int8-inl.h (it uses i8rows::TransposeWords8x8); AVX2 table only (the
// AVX3 tables keep matmul_quant-inl.h's tiles).
//
// Numerics of this table (ops.h's Q8_0 contract; one f32 accumulator per output):
//   acc = 0; for each block b in order: acc = FMA(f32(isum_b), d_w[n, b] * d_a[m, b], acc)
//   C[m, n] = acc (+ bias[n])
// isum_b is the exact int32 dot of the block (vpmaddubsw on |w| x sign(a, w), exact: |128 * 127 *
// 2| < 32767). Both paths below do exactly these operations per output, so decode, prefill, any
// M, N chunking and thread count give the same bits (tests/kernels/matmul_test.cc).
//
// Why (docs/kernels.md, "Q8_0 on AVX2: packed, outputs in the lanes"): the lanes-along-K tile of
// matmul_quant-inl.h pays, per block, output and row, a convert + FMA into a vector accumulator and
// a horizontal sum at the end; here one 32-byte weight load holds 4 k of 8 outputs and one
// broadcast 4 k of one activation row, so a block costs per (row, 8 outputs) 8 x (vpsignb +
// vpmaddubsw + vpmaddwd + vpaddd) and one convert + multiply + FMA.

namespace q8avx2 {

#if HWY_TARGET == HWY_AVX2
constexpr int kR = 4, kC = 2, kGroup = 8;  // 4 rows x 16 outputs: 8 int32 + 2 weights + 2 |w| + ...
constexpr size_t kPackPrefetch = 256;

// Activations: row i's Q8_0 values at q + i * k, its block scales at d + i * nblocks.
struct Acts {
  const int8_t* q;
  const float* d;
};

// Rows [r0, r0 + nr) of w: quants as i8rows::PackSlab lays them out (group g at packed + g * 8 *
// k, [k / 4][8][4]), block scales at scales + (g * nblocks + b) * 8 + row (f32, 0 past nr).
void PackSlab(const MatRef& w, int64_t r0, int64_t nr, size_t k, int8_t* packed, float* scales) {
  const int64_t groups = (nr + kGroup - 1) / kGroup;
  const size_t nblocks = k / kQK8_0;
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* src[kGroup];
    for (int l = 0; l < kGroup; ++l) {
      const int64_t j = g * kGroup + l;
      src[l] = j < nr ? w.row(r0 + j) : nullptr;
    }
    int8_t* dst = packed + g * kGroup * k;
    float* sc = scales + g * nblocks * kGroup;
    for (size_t b = 0; b < nblocks; ++b) {
      __m256i v[kGroup];
      for (int l = 0; l < kGroup; ++l) {
        const uint8_t* blk = src[l] ? src[l] + b * sizeof(BlockQ8_0) : nullptr;
        // 8 row streams from memory when M is small (batched decode): prefetched like the decode
        // streams (1.1B Q8_0 -b 4, 2 threads: 23.5-24.1 t/s without, see docs/kernels.md).
        if (blk && b % 2 == 0) hwy::Prefetch(blk + kPackPrefetch);
        v[l] = blk ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2))
                   : _mm256_setzero_si256();
        uint16_t bits = 0;
        if (blk) std::memcpy(&bits, blk, 2);
        sc[b * kGroup + l] = blk ? HalfToFloat(bits) : 0.0f;
      }
      i8rows::TransposeWords8x8(v, reinterpret_cast<__m256i*>(dst + b * kQK8_0 * kGroup));
    }
  }
}

// R activation rows (from row i0) x C packed groups; writes outputs [0, cnt) of each row.
template <int R, int C>
HWY_INLINE void Tile(const Acts& a, int64_t i0, size_t k, const int8_t* HWY_RESTRICT b,
                     const float* HWY_RESTRICT sc, const float* bias, int cnt,
                     float* HWY_RESTRICT c, size_t c_stride) {
  const size_t nblocks = k / kQK8_0;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 facc[R][C];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) facc[r][j] = _mm256_setzero_ps();
  const int8_t* aq = a.q + i0 * k;
  const float* ad = a.d + i0 * nblocks;
  for (size_t blk = 0; blk < nblocks; ++blk) {
    __m256i acc[R][C];
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < C; ++j) acc[r][j] = _mm256_setzero_si256();
    for (size_t kk = blk * kQK8_0; kk < (blk + 1) * kQK8_0; kk += 4) {
      __m256i wv[C], wabs[C];
      for (int j = 0; j < C; ++j) {
        wv[j] =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + j * kGroup * k + kk * kGroup));
        wabs[j] = _mm256_abs_epi8(wv[j]);
      }
      for (int r = 0; r < R; ++r) {
        int32_t a4;
        std::memcpy(&a4, aq + r * k + kk, 4);
        const __m256i av = _mm256_set1_epi32(a4);
        for (int j = 0; j < C; ++j) {
          acc[r][j] = _mm256_add_epi32(
              acc[r][j],
              _mm256_madd_epi16(_mm256_maddubs_epi16(wabs[j], _mm256_sign_epi8(av, wv[j])), ones));
        }
      }
    }
    for (int j = 0; j < C; ++j) {
      const __m256 dw = _mm256_loadu_ps(sc + (j * nblocks + blk) * kGroup);
      for (int r = 0; r < R; ++r) {
        const __m256 s = _mm256_mul_ps(dw, _mm256_set1_ps(ad[r * nblocks + blk]));
        facc[r][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][j]), s, facc[r][j]);
      }
    }
  }
  for (int j = 0; j < C; ++j) {
    const int n = std::min(kGroup, cnt - j * kGroup);
    if (n <= 0) break;
    HWY_ALIGN float bb[8] = {};
    if (bias) std::memcpy(bb, bias + j * kGroup, n * sizeof(float));
    for (int r = 0; r < R; ++r) {
      const __m256 y = bias ? _mm256_add_ps(facc[r][j], _mm256_load_ps(bb)) : facc[r][j];
      i8rows::StoreN(y, c + r * c_stride + j * kGroup, n);
    }
  }
}

template <int R, int C>
HWY_INLINE void TileRows(int rows, const Acts& a, int64_t i0, size_t k, const int8_t* b,
                         const float* sc, const float* bias, int cnt, float* c, size_t c_stride) {
  if constexpr (R > 1) {
    if (rows < R) return TileRows<R - 1, C>(rows, a, i0, k, b, sc, bias, cnt, c, c_stride);
  }
  if constexpr (C > 1) {
    if (cnt <= (C - 1) * kGroup) {
      return TileRows<R, C - 1>(rows, a, i0, k, b, sc, bias, cnt, c, c_stride);
    }
  }
  Tile<R, C>(a, i0, k, b, sc, bias, cnt, c, c_stride);
}

// ---- Decode (M <= 4): 4 row streams (as matmul_quant-inl.h's decode tile), the 4 block sums
// reduced to one 128-bit vector so that the scale and the FMA run once per block for the 4 outputs.
constexpr int kStreams = 4;
constexpr size_t kStreamPrefetch = 256;

// Lane j = sum of the 8 lanes of v[j].
HWY_INLINE __m128i Sum4(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
  const __m256i s01 =
      _mm256_add_epi32(_mm256_unpacklo_epi32(v0, v1), _mm256_unpackhi_epi32(v0, v1));
  const __m256i s23 =
      _mm256_add_epi32(_mm256_unpacklo_epi32(v2, v3), _mm256_unpackhi_epi32(v2, v3));
  const __m256i t =
      _mm256_add_epi32(_mm256_unpacklo_epi64(s01, s23), _mm256_unpackhi_epi64(s01, s23));
  return _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
}

// R activation rows (a.q / a.d from row 0, k apart) x C weight rows w[0..C) (C = 4, or 1 for the
// rest): acc[r] lane j = output (r, row j); lanes past C stay zero.
template <int R, int C>
HWY_INLINE void DecodeTile(const Acts& a, size_t k, const uint8_t* const* w, __m128* acc) {
  const size_t nblocks = k / kQK8_0;
  const __m256i ones = _mm256_set1_epi16(1);
  for (int r = 0; r < R; ++r) acc[r] = _mm_setzero_ps();
  for (size_t b = 0; b < nblocks; ++b) {
    __m256i wv[4], wabs[4];
    __m128i dh =
        _mm_setzero_si128();  // the C rows' fp16 block scales, lane j (vpinsrw from memory)
    for (int j = 0; j < C; ++j) {
      const uint8_t* blk = w[j] + b * sizeof(BlockQ8_0);
      if (b % 2 == 0) hwy::Prefetch(blk + kStreamPrefetch);
      wv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
      wabs[j] = _mm256_abs_epi8(wv[j]);
      uint16_t bits;
      std::memcpy(&bits, blk, 2);
      switch (j) {  // the lane index of vpinsrw must be an immediate
        case 0:
          dh = _mm_insert_epi16(dh, bits, 0);
          break;
        case 1:
          dh = _mm_insert_epi16(dh, bits, 1);
          break;
        case 2:
          dh = _mm_insert_epi16(dh, bits, 2);
          break;
        default:
          dh = _mm_insert_epi16(dh, bits, 3);
          break;
      }
    }
    const __m128 dw = _mm_cvtph_ps(dh);
    for (int r = 0; r < R; ++r) {
      const __m256i av =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q + r * k + b * kQK8_0));
      __m256i v[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
      for (int j = 0; j < C; ++j) {
        v[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs[j], _mm256_sign_epi8(av, wv[j])), ones);
      }
      const __m128 s = _mm_mul_ps(dw, _mm_set1_ps(a.d[r * nblocks + b]));
      acc[r] = _mm_fmadd_ps(_mm_cvtepi32_ps(Sum4(v[0], v[1], v[2], v[3])), s, acc[r]);
    }
  }
}

// R activation rows x outputs [n0, n1), weights read once: kStreams row streams of `tiles` rows
// each, then the rest one row at a time.
template <int R>
void DecodeRange(const Acts& a, const MatRef& w, const float* bias, float* c, int64_t n0,
                 int64_t n1) {
  const size_t k = static_cast<size_t>(w.cols);
  const int64_t n = w.rows;
  const int64_t tiles = (n1 - n0) / kStreams;
  const uint8_t* rows[kStreams];
  __m128 acc[R];
  HWY_ALIGN float y[4];
  auto store = [&](int cnt, const int64_t* idx) {
    for (int r = 0; r < R; ++r) {
      _mm_store_ps(y, acc[r]);
      for (int j = 0; j < cnt; ++j) {
        c[r * n + idx[j]] = bias ? y[j] + bias[idx[j]] : y[j];
      }
    }
  };
  int64_t idx[kStreams];
  for (int64_t t = 0; t < tiles; ++t) {
    for (int j = 0; j < kStreams; ++j) {
      idx[j] = n0 + t + j * tiles;  // stream j: rows [n0 + j * tiles, n0 + (j + 1) * tiles)
      rows[j] = w.row(idx[j]);
    }
    DecodeTile<R, kStreams>(a, k, rows, acc);
    store(kStreams, idx);
  }
  for (int64_t r0 = n0 + kStreams * tiles; r0 < n1; ++r0) {
    idx[0] = r0;
    rows[0] = w.row(r0);
    DecodeTile<R, 1>(a, k, rows, acc);
    store(1, idx);
  }
}

// Rows [0, m) x outputs [n0, n1) of one Q8_0 matmul. m <= 4 streams the weights (DecodeRange);
// m > 4 packs a slab of weight rows per call (read once from memory, then from L2 by every block
// of 4 activation rows).
void Range(const Acts& a, int64_t m, const MatRef& w, const float* bias, float* c, int64_t n0,
           int64_t n1) {
  const size_t k = static_cast<size_t>(w.cols);
  const size_t nblocks = k / kQK8_0;
  const size_t n = static_cast<size_t>(w.rows);
  // M <= 4: the weights stream once through the decode tile for all rows (memory bound:
  // packing them costs more than it saves; 1.1B Q8_0 -b 4, 2 threads, 23.5-26.0 t/s packed).
  switch (m) {
    case 1:
      return DecodeRange<1>(a, w, bias, c, n0, n1);
    case 2:
      return DecodeRange<2>(a, w, bias, c, n0, n1);
    case 3:
      return DecodeRange<3>(a, w, bias, c, n0, n1);
    case 4:
      return DecodeRange<4>(a, w, bias, c, n0, n1);
    default:
      break;
  }
  constexpr int64_t kTileN = kC * kGroup;
  const int64_t slab = i8rows::SlabRows(k, kTileN);
  thread_local std::vector<int8_t> packed_buf;
  thread_local std::vector<float> scale_buf;
  int8_t* packed = Scratch(packed_buf, slab * k);
  float* scales = Scratch(scale_buf, slab * nblocks);
  for (int64_t s0 = n0; s0 < n1; s0 += slab) {
    const int64_t nr = std::min(slab, n1 - s0);
    PackSlab(w, s0, nr, k, packed, scales);
    for (int64_t i = 0; i < m; i += kR) {
      const int rows = static_cast<int>(std::min<int64_t>(kR, m - i));
      for (int64_t j = 0; j < nr; j += kTileN) {
        const int cnt = static_cast<int>(std::min(kTileN, nr - j));
        TileRows<kR, kC>(rows, a, i, k, packed + j * k, scales + j * nblocks,
                         bias ? bias + s0 + j : nullptr, cnt, c + i * n + s0 + j, n);
      }
    }
  }
}
#endif  // HWY_TARGET == HWY_AVX2

}  // namespace q8avx2
