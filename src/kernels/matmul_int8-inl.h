// Per-channel int8 weights (MatRef::int8_rows) x per-row 7-bit activations. A textual fragment like
// matmul_quant-inl.h: simd_matmul.cc includes it once inside its per-target namespace.
//
// Numerics (ops.h): C[m, n] = (s_a[m] * d_w[n]) * f32(isum[m, n]) (+ bias[n]), isum the exact int32
// dot of the row's 7-bit activations with the row's int8 weights. The float part is two roundings
// of the same values in every path, so any tile, M, thread count and target give the reference's
// bits (tests assert equality, not a tolerance).
//
// Why this is fast on AVX2 (no int8 dot-product instruction): vpmaddubsw multiplies u8 x s8 pairs
// and adds each pair into a SATURATING i16. With activations shifted to u = q + 64 in [1, 127],
// |u * w + u' * w'| <= 2 * 127 * 128 = 32512 never saturates, so one vpmaddubsw + vpmaddwd (x 1) +
// vpaddd does 32 multiply-adds exactly, with no per-pair sign fix-up (the Q8_0 tile's vpsignb) and
// no per-block scale (cvt + FMA per 32 values): the shift is undone once per output,
//     sum q * w = sum u * w - 64 * sum w.
// Register tile (AVX2, 16 ymm): 4 activation rows x 24 weight rows: 12 int32 accumulators, 3
// weight vectors, 1 broadcast. The weights are packed per call into [group of 8 rows][k / 4][8][4]
// bytes (an 8 x 8 transpose of 32-bit words per Q8_0 block), so that one 32-byte load holds 4
// consecutive k of 8 outputs and one broadcast holds 4 k of one activation row. Measured in
// docs/kernels.md ("int8 rows").
//
// Requires from the includer: HalfToFloat, RunOverOutputs, Scratch, ForEachRow.

namespace i8rows {

#if HWY_TARGET <= HWY_AVX2
constexpr int kActShift = 64;  // u = q + 64
// isum magnitude <= 63 * 128 * k must stay below 2^31.
constexpr size_t kMaxK = size_t{1} << 18;

// Activations for one call: row i's unsigned values at u + i * k, signed at q + i * k, scale s[i].
struct Acts {
  const uint8_t* u;  // [m, k] q + 64 (tile operand)
  const int8_t* q;   // [m, k] q (decode operand)
  const float* s;    // [m]
};

// Bit-identical to si::QuantizeRowInt8Act (amax, id = 63 / amax, NearestInt(x * id)).
void QuantizeRow(const float* x, size_t k, int8_t* q, uint8_t* u, float* s) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const hn::Rebind<int8_t, DF> d8;
  auto vmax = hn::Zero(df);
  size_t i = 0;
  for (; i + lanes <= k; i += lanes) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, x + i)));
  float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
  for (size_t j = i; j < k; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float id = amax != 0.0f ? 63.0f / amax : 0.0f;
  *s = amax / 63.0f;
  const auto vid = hn::Set(df, id);
  for (i = 0; i + lanes <= k; i += lanes) {
    hn::StoreU(hn::DemoteTo(d8, hn::NearestInt(hn::Mul(hn::LoadU(df, x + i), vid))), d8, q + i);
  }
  for (; i < k; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
  for (i = 0; i < k; ++i) u[i] = static_cast<uint8_t>(q[i] + kActShift);
}

HWY_INLINE float RowScale(const MatRef& w, int64_t n) {
  uint16_t bits;
  std::memcpy(&bits, w.row(n), 2);
  return HalfToFloat(bits);
}

// cnt (<= 8) outputs y[j] = (sa * dw[j]) * f32(isum[j]) (+ bias[j]). The empty asm keeps the
// compiler from contracting the multiply and the add into one FMA (the reference rounds twice).
HWY_INLINE __m256 Finish8(__m256i isum, __m256 dw, float sa, const float* bias, int cnt) {
  __m256 y = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(sa), dw), _mm256_cvtepi32_ps(isum));
  if (bias != nullptr) {
    __asm__("" : "+x"(y));
    HWY_ALIGN float b[8] = {};
    std::memcpy(b, bias, cnt * sizeof(float));
    y = _mm256_add_ps(y, _mm256_load_ps(b));
  }
  return y;
}
HWY_INLINE void StoreN(__m256 y, float* out, int cnt) {
  if (cnt == 8) return _mm256_storeu_ps(out, y);
  HWY_ALIGN float t[8];
  _mm256_store_ps(t, y);
  std::memcpy(out, t, cnt * sizeof(float));
}

// ---- Prefill: packed weights, 4 x 24 register tile.
constexpr int kR = 4, kGroup = 8, kC = 3;
constexpr size_t kSlabBytes = 256 * 1024;  // packed slab: half the 512 KiB L2 (as the f32 path)

// Weight rows per packed slab of K-byte rows: a multiple of the tile's tile_n outputs, >= one tile.
HWY_INLINE int64_t SlabRows(size_t k, int64_t tile_n) {
  return std::max<int64_t>(tile_n, static_cast<int64_t>(kSlabBytes / k) / tile_n * tile_n);
}

// The 32-byte quants of one block of 8 weight rows (v[l]: row l) -> o[i] = 4-byte word i of rows
// 0..7 (an 8 x 8 transpose of 32-bit words), the packed layout [k / 4][8 rows][4 bytes].
HWY_INLINE void TransposeWords8x8(const __m256i* v, __m256i* o) {
  const __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
  const __m256i t4 = _mm256_unpacklo_epi32(v[4], v[5]), t5 = _mm256_unpackhi_epi32(v[4], v[5]);
  const __m256i t6 = _mm256_unpacklo_epi32(v[6], v[7]), t7 = _mm256_unpackhi_epi32(v[6], v[7]);
  const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
  const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
  const __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
  const __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
  _mm256_storeu_si256(o + 0, _mm256_permute2x128_si256(u0, u4, 0x20));
  _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(u1, u5, 0x20));
  _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(u2, u6, 0x20));
  _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(u3, u7, 0x20));
  _mm256_storeu_si256(o + 4, _mm256_permute2x128_si256(u0, u4, 0x31));
  _mm256_storeu_si256(o + 5, _mm256_permute2x128_si256(u1, u5, 0x31));
  _mm256_storeu_si256(o + 6, _mm256_permute2x128_si256(u2, u6, 0x31));
  _mm256_storeu_si256(o + 7, _mm256_permute2x128_si256(u3, u7, 0x31));
}

// Rows [r0, r0 + nr) of w packed as groups of 8 rows: group g at packed + g * 8 * k, laid out
// [k / 4][8 rows][4 bytes]; rows past nr are zero. colsum[j] = sum of row j's int8 values, dw[j]
// its scale (0 past nr).
void PackSlab(const MatRef& w, int64_t r0, int64_t nr, size_t k, int8_t* packed, int32_t* colsum,
              float* dw) {
  const int64_t groups = (nr + kGroup - 1) / kGroup;
  const size_t nblocks = k / kQK8_0;
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  for (int64_t g = 0; g < groups; ++g) {
    const uint8_t* src[kGroup];
    __m256i sums[kGroup];
    for (int l = 0; l < kGroup; ++l) {
      const int64_t j = g * kGroup + l;
      src[l] = j < nr ? w.row(r0 + j) + 2 : nullptr;
      sums[l] = _mm256_setzero_si256();
      dw[j] = j < nr ? RowScale(w, r0 + j) : 0.0f;
    }
    int8_t* dst = packed + g * kGroup * k;
    for (size_t b = 0; b < nblocks; ++b) {
      __m256i v[kGroup];
      for (int l = 0; l < kGroup; ++l) {
        v[l] = src[l] ? _mm256_loadu_si256(
                            reinterpret_cast<const __m256i*>(src[l] + b * sizeof(BlockQ8_0)))
                      : _mm256_setzero_si256();
        sums[l] =
            _mm256_add_epi32(sums[l], _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, v[l]), ones16));
      }
      TransposeWords8x8(v, reinterpret_cast<__m256i*>(dst + b * kQK8_0 * kGroup));
    }
    for (int l = 0; l < kGroup; ++l) {
      HWY_ALIGN int32_t s[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(s), sums[l]);
      colsum[g * kGroup + l] = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
    }
  }
}

// R activation rows (u, rows k bytes apart) x C packed groups (b: group 0, groups 8 * k apart)
// over all of K; writes outputs [0, cnt) of each row (cnt <= 8 * C) at c + r * c_stride.
template <int R, int C>
HWY_INLINE void Tile(const uint8_t* HWY_RESTRICT u, const float* sa, size_t k,
                     const int8_t* HWY_RESTRICT b, const int32_t* colsum, const float* dw,
                     const float* bias, int cnt, float* HWY_RESTRICT c, size_t c_stride) {
  __m256i acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) acc[r][j] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  for (size_t kk = 0; kk < k; kk += 4) {
    __m256i wv[C];
    for (int j = 0; j < C; ++j) {
      wv[j] =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + j * kGroup * k + kk * kGroup));
    }
    for (int r = 0; r < R; ++r) {
      int32_t a4;
      std::memcpy(&a4, u + r * k + kk, 4);
      const __m256i av = _mm256_set1_epi32(a4);
      for (int j = 0; j < C; ++j) {
        acc[r][j] =
            _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(_mm256_maddubs_epi16(av, wv[j]), ones));
      }
    }
  }
  for (int j = 0; j < C; ++j) {
    const int n = std::min(kGroup, cnt - j * kGroup);
    if (n <= 0) break;
    const __m256i shift = _mm256_slli_epi32(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(colsum + j * kGroup)), 6);
    const __m256 d = _mm256_loadu_ps(dw + j * kGroup);
    for (int r = 0; r < R; ++r) {
      const __m256i isum = _mm256_sub_epi32(acc[r][j], shift);
      StoreN(Finish8(isum, d, sa[r], bias ? bias + j * kGroup : nullptr, n),
             c + r * c_stride + j * kGroup, n);
    }
  }
}

template <int R, int C>
HWY_INLINE void TileRows(int rows, const uint8_t* u, const float* sa, size_t k, const int8_t* b,
                         const int32_t* colsum, const float* dw, const float* bias, int cnt,
                         float* c, size_t c_stride) {
  if constexpr (R > 1) {
    if (rows < R) return TileRows<R - 1, C>(rows, u, sa, k, b, colsum, dw, bias, cnt, c, c_stride);
  }
  if constexpr (C > 1) {
    if (cnt <= (C - 1) * kGroup) {
      return TileRows<R, C - 1>(rows, u, sa, k, b, colsum, dw, bias, cnt, c, c_stride);
    }
  }
  Tile<R, C>(u, sa, k, b, colsum, dw, bias, cnt, c, c_stride);
}

// ---- Decode: one activation row, weights read once in their file layout, 4 row streams (as the
// Q8_0 decode tile, matmul_quant-inl.h): per block vpsignb + vpabsb + vpmaddubsw + vpmaddwd + add.
constexpr int kStreams = 4;
constexpr size_t kStreamPrefetch = 256;

template <int C>
HWY_INLINE void DecodeTile(const int8_t* HWY_RESTRICT q, size_t k, const uint8_t* const* w,
                           int32_t* isum) {
  __m256i acc[C];
  for (int j = 0; j < C; ++j) acc[j] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  for (size_t b = 0; b < k / kQK8_0; ++b) {
    const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + b * kQK8_0));
    for (int j = 0; j < C; ++j) {
      const uint8_t* blk = w[j] + b * sizeof(BlockQ8_0);
      if (b % 2 == 0) hwy::Prefetch(blk + kStreamPrefetch);
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
      acc[j] = _mm256_add_epi32(
          acc[j], _mm256_madd_epi16(
                      _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(av, wv)), ones));
    }
  }
  for (int j = 0; j < C; ++j) {
    HWY_ALIGN int32_t s[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(s), acc[j]);
    isum[j] = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
  }
}

void DecodeRange(const int8_t* q, float sa, const MatRef& w, const float* bias, float* c,
                 int64_t n0, int64_t n1) {
  const size_t k = static_cast<size_t>(w.cols);
  const int64_t tiles = (n1 - n0) / kStreams;
  const uint8_t* rows[kStreams];
  int64_t idx[kStreams];
  HWY_ALIGN int32_t isum[8] = {};
  HWY_ALIGN float dw[8] = {}, bv[8] = {};
  auto finish = [&](int cnt) {
    for (int j = 0; j < cnt; ++j) {
      dw[j] = RowScale(w, idx[j]);
      if (bias) bv[j] = bias[idx[j]];
    }
    HWY_ALIGN float y[8];
    _mm256_store_ps(y, Finish8(_mm256_load_si256(reinterpret_cast<const __m256i*>(isum)),
                               _mm256_load_ps(dw), sa, bias ? bv : nullptr, cnt));
    for (int j = 0; j < cnt; ++j) c[idx[j]] = y[j];
  };
  for (int64_t t = 0; t < tiles; ++t) {
    for (int j = 0; j < kStreams; ++j) {
      idx[j] = n0 + t + j * tiles;  // stream j: rows [n0 + j * tiles, n0 + (j + 1) * tiles)
      rows[j] = w.row(idx[j]);
    }
    DecodeTile<kStreams>(q, k, rows, isum);
    finish(kStreams);
  }
  for (int64_t n = n0 + kStreams * tiles; n < n1; ++n) {
    idx[0] = n;
    rows[0] = w.row(n);
    DecodeTile<1>(q, k, rows, isum);
    finish(1);
  }
}

// Rows [0, m) x outputs [n0, n1). m < kR: one decode pass per row (reads the weights m times; the
// packing would cost about as much as the m-row product).
void Range(const Acts& a, int64_t m, const MatRef& w, const float* bias, float* c, int64_t n0,
           int64_t n1) {
  const size_t k = static_cast<size_t>(w.cols);
  const size_t n = static_cast<size_t>(w.rows);
  if (m < kR) {
    for (int64_t i = 0; i < m; ++i) DecodeRange(a.q + i * k, a.s[i], w, bias, c + i * n, n0, n1);
    return;
  }
  constexpr int64_t kTileN = kC * kGroup;
  const int64_t slab = SlabRows(k, kTileN);
  thread_local std::vector<int8_t> packed_buf;
  thread_local std::vector<int32_t> colsum_buf;
  thread_local std::vector<float> dw_buf;
  int8_t* packed = Scratch(packed_buf, slab * k);
  int32_t* colsum = Scratch(colsum_buf, slab);
  float* dw = Scratch(dw_buf, slab);
  for (int64_t s0 = n0; s0 < n1; s0 += slab) {
    const int64_t nr = std::min(slab, n1 - s0);
    PackSlab(w, s0, nr, k, packed, colsum, dw);
    for (int64_t i = 0; i < m; i += kR) {
      const int rows = static_cast<int>(std::min<int64_t>(kR, m - i));
      for (int64_t j = 0; j < nr; j += kTileN) {
        const int cnt = static_cast<int>(std::min(kTileN, nr - j));
        TileRows<kR, kC>(rows, a.u + i * k, a.s + i, k, packed + j * k, colsum + j, dw + j,
                         bias ? bias + s0 + j : nullptr, cnt, c + i * n + s0 + j, n);
      }
    }
  }
}

// `count` matmuls (all int8_rows, equal K) of one input: activations quantized once (in parallel
// for large m), then one dispatch over all outputs.
void MatMulMulti(const float* a, int64_t m, int count, const MatRef* w, const float* const* bias,
                 float* const* c, ThreadPool* pool) {
  const size_t k = static_cast<size_t>(w[0].cols);
  SI_CHECK(k % kQK8_0 == 0 && k <= kMaxK) << k;
  thread_local std::vector<int8_t> q_buf;
  thread_local std::vector<uint8_t> u_buf;
  thread_local std::vector<float> s_buf;
  int8_t* q = Scratch(q_buf, m * k);
  uint8_t* u = Scratch(u_buf, m * k);
  float* s = Scratch(s_buf, m);
  ForEachRow(m, pool, [&](int64_t i) { QuantizeRow(a + i * k, k, q + i * k, u + i * k, s + i); });
  const Acts acts{u, q, s};
  RunOverOutputs(count, w, m, pool, kQuantDecodeChunks, [&](int i, int64_t n0, int64_t n1) {
    Range(acts, m, w[i], bias[i], c[i], n0, n1);
  });
}
#else
// Targets without AVX2 (SSE4) run the scalar reference, which defines these numerics (same bits;
// one thread).
void MatMulMulti(const float* a, int64_t m, int count, const MatRef* w, const float* const* bias,
                 float* const* c, ThreadPool* pool) {
  for (int i = 0; i < count; ++i) ReferenceKernels().matmul(a, m, w[i], bias[i], c[i], pool);
}
#endif  // HWY_TARGET <= HWY_AVX2

}  // namespace i8rows
