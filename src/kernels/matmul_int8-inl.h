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
// Weights in 16-output panels (layout at PanelStride below): the AVX2 and AVX3 tables repack them
// once (Kernels::to_panels, the engine at start-up); a row-major matrix with M >= 4 is packed into
// the same panels a slab per call (the AVX3 tables, the distributed engine's shards), and with M <
// 4 its rows stream through the row decode tile. One 32-byte load holds 4 k of 8 outputs, one
// broadcast 4 k of an activation row; the tile is R <= 4 rows x S panels with at most 8 int32
// accumulators (no spills). Measured in docs/kernels.md ("int8 rows", "int8 panels").
//
// Requires from the includer: HalfToFloat, RunOverOutputs, Scratch, ForEachRow.

// Included twice on AVX3: as i8rows (SI_I8_VNNI 0) and, under `#pragma GCC
// target("avx512vnni")`, as i8vnni (SI_I8_VNNI 1), whose panel tile does each product vector with
// one EVEX vpdpbusd instead of vpmaddubsw + vpmaddwd + vpaddd (the same exact int32 sums, so the
// same bits). i8vnni holds only the tile and its callers; the layout, the activation quantizer and
// the row decode come from i8rows (using-directive).
#ifndef SI_I8_NS
#define SI_I8_NS i8rows
#define SI_I8_VNNI 0
#endif

namespace SI_I8_NS {
#if SI_I8_VNNI
using namespace i8rows;
#endif

#if HWY_TARGET <= HWY_AVX2
#if !SI_I8_VNNI
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

// ---- Panels: 16 outputs per panel, one tile for every M.
// Layout (Kernels::to_panels on the AVX2 / AVX3 tables, MatRef::panels16 on an int8_rows matrix;
// also the per-call packing of a row-major matrix with M >= 4): panel t at t * PanelStride(K)
// bytes:
//   [16 f32 row scales][16 int32 row sums (sum of the row's int8 values)]  (kPanelHead bytes)
//   K / 4 steps of 64 bytes, step s = [rows 0..7][4 bytes k 4s..4s+3], [rows 8..15][4 bytes]
// so that one 32-byte load holds 4 k of 8 outputs and one broadcast 4 k of an activation row. 16 K
// + 128 bytes per 16 outputs, against 17 K stored (the repeated block scales are dropped): decode
// reads 6% fewer bytes. Rows past N are zero (scale 0).
constexpr int kR = 4, kGroup = 8;  // GEMM row block; outputs per weight vector
constexpr int64_t kPanelRows = 16;
constexpr size_t kPanelHead = 128;
constexpr size_t kSlabBytes = 256 * 1024;  // panels per L2 slab: half the 512 KiB L2 (as f32)

// Batched decode in the zmm GEMMs (i8vnni's PanelRange, q8vnni's PanelGemm): with at most
// kPrefetchRowTiles row tiles (m <= 96) a slab computes too little to hide its own fetch, which
// was serial with it (the slab streamed in, then the tiles computed). So row tile t of a slab
// prefetches part t of every panel group of the next slab (PREFETCHT1), `lines` cache lines per
// step of its k loop, and the fetch runs during the whole compute. Zen 5, 1.1B tg32, alternating
// rounds, 1 / 2 threads, t/s, without -> with: Q8_0 -b 16 186.7 / 323.0, 173.6 / 277.5, 184.9 /
// 324.9 -> 225.2 / 354.1, 222.4 / 378.2, 212.0 / 356.8; int8 -b 16 132.2 / 233.2, 119.3 / 239.8 ->
// 169.5 / 283.6, 173.6 / 305.7. Q8_0 with up to 4 vs up to 16 row tiles: -b 32 220.2 / 387.6,
// 221.6 / 388.1 vs 242.9 / 441.3, 248.0 / 403.8; -b 64 257.0 / 463.3, 251.0 / 450.5 vs 260.5 /
// 491.4, 263.0 / 459.3. Prefill (110M pp512) measured the same with it for every m, and PREFETCHT0
// the same as T1.
constexpr int64_t kPrefetchRowTiles = 16;

struct SlabPrefetch {
  size_t part = 0;   // bytes of a panel group per row tile
  size_t lines = 0;  // cache lines per k step; 0: no prefetch
  // Where row tile `tile` prefetches the next slab's panel group, at byte `next_group` of the
  // weights at `base` (null: no prefetch; the address is only formed when there is a next slab).
  const uint8_t* At(const void* base, size_t next_group, int64_t tile) const {
    return lines ? static_cast<const uint8_t*>(base) + next_group + static_cast<size_t>(tile) * part
                 : nullptr;
  }
};

// The prefetch of a slab with `row_tiles` row tiles whose k loop has `steps` steps, for panel
// groups of group_bytes; none when there is no next slab or the tiles compute enough to hide it.
HWY_INLINE SlabPrefetch PlanSlabPrefetch(int64_t row_tiles, bool has_next, size_t group_bytes,
                                         size_t steps) {
  if (!has_next || row_tiles > kPrefetchRowTiles) return {};
  const size_t part = (group_bytes + row_tiles - 1) / row_tiles;
  return {part, (part + steps * 64 - 1) / (steps * 64)};
}

HWY_INLINE size_t PanelStride(size_t k) { return kPanelHead + kPanelRows * k; }

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

// The 32-byte quants of one block of 16 weight rows (v[l]: row l) -> its 8 steps of 4 k at out,
// 64 bytes each: [rows 0..7][4 bytes], [rows 8..15][4 bytes]. The step layout of both panel
// formats (this file's and matmul_q8_avx2-inl.h's).
HWY_INLINE void StoreBlockSteps16(const __m256i* v, uint8_t* out) {
  __m256i lo[8], hi[8];
  TransposeWords8x8(v, lo);
  TransposeWords8x8(v + 8, hi);
  for (int q = 0; q < 8; ++q) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + q * 64), lo[q]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + q * 64 + 32), hi[q]);
  }
}

int64_t PanelBytes(const MatRef& w) {
  if (w.type != DType::kQ8_0 || !w.int8_rows || w.panels16 || w.rows <= 0 || w.cols <= 0 ||
      static_cast<size_t>(w.cols) > kMaxK) {
    return 0;
  }
  return (w.rows + kPanelRows - 1) / kPanelRows *
         static_cast<int64_t>(PanelStride(static_cast<size_t>(w.cols)));
}

// Rows [row0, row0 + nrows) of row-major w (nrows <= 16) -> one panel at out.
void PackPanel(const MatRef& w, int64_t row0, int64_t nrows, uint8_t* out) {
  const size_t k = static_cast<size_t>(w.cols);
  const size_t nblocks = k / kQK8_0;
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  const uint8_t* src[kPanelRows];
  __m256i sums[kPanelRows];
  HWY_ALIGN float dw[kPanelRows];
  HWY_ALIGN int32_t colsum[kPanelRows];
  for (int l = 0; l < kPanelRows; ++l) {
    src[l] = l < nrows ? w.row(row0 + l) + 2 : nullptr;
    sums[l] = _mm256_setzero_si256();
    dw[l] = l < nrows ? RowScale(w, row0 + l) : 0.0f;
  }
  uint8_t* steps = out + kPanelHead;
  for (size_t b = 0; b < nblocks; ++b) {
    __m256i v[kPanelRows];
    for (int l = 0; l < kPanelRows; ++l) {
      if (src[l] == nullptr) {
        v[l] = _mm256_setzero_si256();
        continue;
      }
      const uint8_t* blk = src[l] + b * sizeof(BlockQ8_0);
      // 16 row streams from memory when a call packs (batched decode of an unrepacked matrix).
      if (b % 2 == 0) hwy::Prefetch(blk + 256);
      v[l] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk));
      // sum of the row's values: vpmaddubsw with u8 ones (exact: |2 * 128| fits i16).
      sums[l] =
          _mm256_add_epi32(sums[l], _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, v[l]), ones16));
    }
    StoreBlockSteps16(v, steps + b * 8 * 64);
  }
  for (int l = 0; l < kPanelRows; ++l) {
    HWY_ALIGN int32_t t[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), sums[l]);
    colsum[l] = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
  }
  std::memcpy(out, dw, sizeof(dw));
  std::memcpy(out + sizeof(dw), colsum, sizeof(colsum));
}

#endif  // !SI_I8_VNNI

// acc + the 8 int32 sums of 4 adjacent u8 x s8 products, exact when no vpmaddubsw pair exceeds
// 32767 (here u <= 127: 2 * 127 * 128 = 32512). Also the Q8_0 panel tile's (matmul_q8_avx2-inl.h).
HWY_INLINE __m256i Dot4(__m256i acc, __m256i u, __m256i w) {
#if SI_I8_VNNI
  return _mm256_dpbusd_epi32(acc, u, w);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, w), _mm256_set1_epi16(1)));
#endif
}

#if !SI_I8_VNNI  // i8vnni uses i8rows
// Outputs o + 8 j .. + 7 of a panel for R rows from i0, from their raw u x w sums (sums[r]: the
// 8 int32 of row r): isum = sum - 64 colsum, then Finish8. False when the half is past n.
template <int R>
HWY_INLINE bool StoreHalf(const Acts& a, int64_t i0, const uint8_t* panel, int64_t o, int j,
                          const int32_t (*sums)[kGroup], int64_t n, const float* bias,
                          float* HWY_RESTRICT c, size_t c_stride) {
  const float* dw = reinterpret_cast<const float*>(panel);
  const int32_t* colsum = reinterpret_cast<const int32_t*>(panel + 64);
  const int64_t out = o + j * kGroup;
  const int cnt = static_cast<int>(std::min<int64_t>(kGroup, n - out));
  if (cnt <= 0) return false;
  const __m256i shift = _mm256_slli_epi32(
      _mm256_load_si256(reinterpret_cast<const __m256i*>(colsum + j * kGroup)), 6);
  const __m256 d = _mm256_load_ps(dw + j * kGroup);
  for (int r = 0; r < R; ++r) {
    const __m256i isum =
        _mm256_sub_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(sums[r])), shift);
    StoreN(Finish8(isum, d, a.s[i0 + r], bias ? bias + out : nullptr, cnt),
           c + (i0 + r) * c_stride + out, cnt);
  }
  return true;
}
#endif  // !SI_I8_VNNI

// R activation rows (from row i0) x S panels (panel[s] holding outputs [o[s], o[s] + 16), none
// past n) over all of K (int32 needs no K blocking); output (i, j) at c[i * c_stride + j]. Per
// step: 2 weight loads per panel, one broadcast per row, vpmaddubsw + vpmaddwd + vpaddd per (row,
// 8 outputs). S R 2 <= 8 int32 accumulators (no spills: 8 + 2 S weights + broadcast + ones).
template <int R, int S>
HWY_INLINE void PanelTile(const Acts& a, int64_t i0, size_t k, const uint8_t* const* panel,
                          const int64_t* o, int64_t n, const float* bias, float* HWY_RESTRICT c,
                          size_t c_stride) {
  __m256i acc[S][R][2];
  for (int s = 0; s < S; ++s)
    for (int r = 0; r < R; ++r) acc[s][r][0] = acc[s][r][1] = _mm256_setzero_si256();
  const uint8_t* u = a.u + i0 * k;
  for (size_t kk = 0; kk < k; kk += 4) {
    for (int s = 0; s < S; ++s) {
      const uint8_t* step = panel[s] + kPanelHead + kk * kPanelRows;
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(step));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(step + 32));
      for (int r = 0; r < R; ++r) {
        int32_t a4;
        std::memcpy(&a4, u + r * k + kk, 4);
        const __m256i av = _mm256_set1_epi32(a4);
        acc[s][r][0] = Dot4(acc[s][r][0], av, w0);
        acc[s][r][1] = Dot4(acc[s][r][1], av, w1);
      }
    }
  }
  for (int s = 0; s < S; ++s) {
    for (int j = 0; j < 2; ++j) {
      HWY_ALIGN int32_t sums[R][kGroup];
      for (int r = 0; r < R; ++r)
        _mm256_store_si256(reinterpret_cast<__m256i*>(sums[r]), acc[s][r][j]);
      if (!StoreHalf<R>(a, i0, panel[s], o[s], j, sums, n, bias, c, c_stride)) break;
    }
  }
}

// A panel matrix at base (panels stride bytes apart, n outputs) as the tiles read it.
struct PanelMat {
  const uint8_t* base;
  size_t k, stride;
  int64_t n;
  const float* bias;
  float* c;
  size_t c_stride;
};

// R rows from i0 x the S panels ps[0..S).
template <int R, int S>
HWY_INLINE void TileAt(const Acts& a, const PanelMat& w, int64_t i0, const int64_t* ps) {
  const uint8_t* panel[S];
  int64_t o[S];
  for (int s = 0; s < S; ++s) {
    panel[s] = w.base + static_cast<size_t>(ps[s]) * w.stride;
    o[s] = ps[s] * kPanelRows;
  }
  SI_I8_NS::PanelTile<R, S>(a, i0, w.k, panel, o, w.n, w.bias, w.c, w.c_stride);
}

// `rows` (1..4) rows from i0 x panel p.
HWY_INLINE void TileRows(int64_t rows, const Acts& a, const PanelMat& w, int64_t i0, int64_t p) {
  switch (rows) {
    case 1:
      return SI_I8_NS::TileAt<1, 1>(a, w, i0, &p);
    case 2:
      return SI_I8_NS::TileAt<2, 1>(a, w, i0, &p);
    case 3:
      return SI_I8_NS::TileAt<3, 1>(a, w, i0, &p);
    default:
      return SI_I8_NS::TileAt<4, 1>(a, w, i0, &p);
  }
}

#if SI_I8_VNNI && HWY_TARGET <= HWY_AVX3
// ---- The GEMM's zmm tile (m > 4). A step's 64 bytes are 4 k of all 16 outputs of a panel, so a
// panel is one zmm and a tile is R <= 6 rows x S <= 2 panels: R S <= 12 int32 accumulators, S
// loads + R broadcasts per R S vpdpbusd (the ymm tile above: 2 loads + 1 broadcast per 2, at most
// half of a 512-bit datapath). The same exact int32 sums, so the same bits. Emerald Rapids,
// kernel_bench prefill/int8/110m_{attn_q,ffn_up,ffn_down}, 1 thread, median of 3, GOP/s (VNNI
// peak 490): 6 x 4 274 / 286 / 329, 4 x 4 383 / 418 / 444, 6 x 3 422 / 478 / 437, 6 x 2 435 /
// 443 / 449 (6 x 4 leaves no register for the loaded weights and broadcasts).
constexpr int kRz = 6, kSz = 2;
constexpr size_t kPrefetchK = 64;  // k per step of the next-slab prefetch (i8rows::SlabPrefetch)

template <int R, int S>
HWY_INLINE void PanelTileZ(const Acts& a, int64_t i0, const PanelMat& w, int64_t p,
                           const uint8_t* pf, size_t pf_lines) {
  const size_t k = w.k;
  const uint8_t* panel[S];
  for (int s = 0; s < S; ++s) panel[s] = w.base + static_cast<size_t>(p + s) * w.stride;
  __m512i acc[S][R];
  for (int s = 0; s < S; ++s)
    for (int r = 0; r < R; ++r) acc[s][r] = _mm512_setzero_si512();
  const uint8_t* u = a.u + i0 * k;
  for (size_t kk = 0; kk < k; kk += 4) {
    if (kk % kPrefetchK == 0) {
      for (size_t l = 0; l < pf_lines; ++l)
        _mm_prefetch(pf + ((kk / kPrefetchK) * pf_lines + l) * 64, _MM_HINT_T1);
    }
    __m512i wv[S];
    for (int s = 0; s < S; ++s) wv[s] = _mm512_loadu_si512(panel[s] + kPanelHead + kk * kPanelRows);
    for (int r = 0; r < R; ++r) {
      int32_t a4;
      std::memcpy(&a4, u + r * k + kk, 4);
      const __m512i av = _mm512_set1_epi32(a4);
      for (int s = 0; s < S; ++s) acc[s][r] = _mm512_dpbusd_epi32(acc[s][r], av, wv[s]);
    }
  }
  for (int s = 0; s < S; ++s) {
    HWY_ALIGN int32_t lo[R][kGroup], hi[R][kGroup];
    for (int r = 0; r < R; ++r) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(lo[r]), _mm512_castsi512_si256(acc[s][r]));
      _mm256_store_si256(reinterpret_cast<__m256i*>(hi[r]),
                         _mm512_extracti64x4_epi64(acc[s][r], 1));
    }
    const int64_t o = (p + s) * kPanelRows;
    if (StoreHalf<R>(a, i0, panel[s], o, 0, lo, w.n, w.bias, w.c, w.c_stride))
      StoreHalf<R>(a, i0, panel[s], o, 1, hi, w.n, w.bias, w.c, w.c_stride);
  }
}

template <int R>
HWY_INLINE void TileZPanels(int64_t panels, const Acts& a, const PanelMat& w, int64_t i0, int64_t p,
                            const uint8_t* pf, size_t pf_lines) {
  if (panels >= 2) return PanelTileZ<R, 2>(a, i0, w, p, pf, pf_lines);
  PanelTileZ<R, 1>(a, i0, w, p, pf, pf_lines);
}

// `rows` (1..6) rows from i0 x `panels` (1..2) panels from p.
void TileZ(int64_t rows, int64_t panels, const Acts& a, const PanelMat& w, int64_t i0, int64_t p,
           const uint8_t* pf, size_t pf_lines) {
  switch (rows) {
    case 1:
      return TileZPanels<1>(panels, a, w, i0, p, pf, pf_lines);
    case 2:
      return TileZPanels<2>(panels, a, w, i0, p, pf, pf_lines);
    case 3:
      return TileZPanels<3>(panels, a, w, i0, p, pf, pf_lines);
    case 4:
      return TileZPanels<4>(panels, a, w, i0, p, pf, pf_lines);
    case 5:
      return TileZPanels<5>(panels, a, w, i0, p, pf, pf_lines);
    default:
      return TileZPanels<6>(panels, a, w, i0, p, pf, pf_lines);
  }
}
#endif  // SI_I8_VNNI && HWY_TARGET <= HWY_AVX3

// Rows [0, m) x the panels of outputs [n0, n1) (n0 a multiple of 16) of a panel matrix at base.
//   m <= 4: every panel once for all rows; 4 panels at a time (4 streams through memory, as the
//   Q8_0 panel decode) for one row, 2 for two, 1 for three or four (<= 8 accumulators).
//   m > 4: slabs of panels (half of L2) read from memory once, then from L2 by every block of
//   kR rows.
void PanelRange(const Acts& a, int64_t m, const uint8_t* base, size_t k, int64_t n,
                const float* bias, float* c, size_t c_stride, int64_t n0, int64_t n1) {
  const PanelMat w{base, k, PanelStride(k), n, bias, c, c_stride};
  const int64_t p0 = n0 / kPanelRows, p1 = (n1 + kPanelRows - 1) / kPanelRows;
  if (m <= 4) {
    const int64_t streams = m == 1 ? DecodeStreams() : m == 2 ? 2 : 1;
    const int64_t tiles = (p1 - p0) / streams;  // stream s: panels p0 + [s tiles, (s + 1) tiles)
    for (int64_t t = 0; t < tiles; ++t) {
      int64_t ps[4];
      for (int64_t s = 0; s < streams; ++s) ps[s] = p0 + t + s * tiles;
      if (m == 1 && streams == 4) {
        SI_I8_NS::TileAt<1, 4>(a, w, 0, ps);
      } else if (m == 2) {
        SI_I8_NS::TileAt<2, 2>(a, w, 0, ps);
      } else {
        SI_I8_NS::TileRows(m, a, w, 0, ps[0]);
      }
    }
    for (int64_t p = p0 + streams * tiles; p < p1; ++p) SI_I8_NS::TileRows(m, a, w, 0, p);
    return;
  }
  const int64_t slab = std::max<int64_t>(1, static_cast<int64_t>(kSlabBytes / w.stride));
  for (int64_t s0 = p0; s0 < p1; s0 += slab) {
    const int64_t s1 = std::min(p1, s0 + slab);
#if SI_I8_VNNI && HWY_TARGET <= HWY_AVX3
    const i8rows::SlabPrefetch pf = i8rows::PlanSlabPrefetch(
        (m + kRz - 1) / kRz, s1 < p1, kSz * w.stride, (k + kPrefetchK - 1) / kPrefetchK);
    for (int64_t i = 0; i < m; i += kRz) {
      for (int64_t p = s0; p < s1; p += kSz) {
        TileZ(std::min<int64_t>(kRz, m - i), std::min<int64_t>(kSz, s1 - p), a, w, i, p,
              pf.At(w.base, static_cast<size_t>(p + (s1 - s0)) * w.stride, i / kRz), pf.lines);
      }
    }
#else
    for (int64_t i = 0; i < m; i += kR) {
      for (int64_t p = s0; p < s1; ++p)
        SI_I8_NS::TileRows(std::min<int64_t>(kR, m - i), a, w, i, p);
    }
#endif
  }
}

#if !SI_I8_VNNI
MatRef ToPanels(const MatRef& w, void* dst, ThreadPool* pool) {
  SI_CHECK(PanelBytes(w) > 0) << "to_panels: not a row-major int8_rows matrix";
  const size_t stride = PanelStride(static_cast<size_t>(w.cols));
  return RepackPanels(w, dst, stride, pool, [&](int64_t t, uint8_t* panel) {
    const int64_t row0 = t * kPanelRows;
    PackPanel(w, row0, std::min(kPanelRows, w.rows - row0), panel);
  });
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

#endif  // !SI_I8_VNNI

// Rows [0, m) x outputs [n0, n1) (n0 a multiple of 16).
//   Panel matrix: PanelRange.
//   Row-major, m < 4: one decode pass per row over the stored rows (memory bound; packing would
//   cost about as much as the m-row product).
//   Row-major, m >= 4: each slab of rows packed into panels per call, then PanelRange.
void Range(const Acts& a, int64_t m, const MatRef& w, const float* bias, float* c, int64_t n0,
           int64_t n1) {
  const size_t k = static_cast<size_t>(w.cols);
  const size_t n = static_cast<size_t>(w.rows);
  if (w.panels16) {
    return SI_I8_NS::PanelRange(a, m, static_cast<const uint8_t*>(w.data), k, w.rows, bias, c, n,
                                n0, n1);
  }
  if (m < kR) {
    for (int64_t i = 0; i < m; ++i) DecodeRange(a.q + i * k, a.s[i], w, bias, c + i * n, n0, n1);
    return;
  }
  SI_CHECK(n0 % kPanelRows == 0) << n0;
  const size_t stride = PanelStride(k);
  const int64_t slab_panels = std::max<int64_t>(1, static_cast<int64_t>(kSlabBytes / stride));
  thread_local AlignedScratch buf;  // [slab_panels] panels
  uint8_t* packed = reinterpret_cast<uint8_t*>(
      buf.Get((slab_panels * stride + sizeof(float) - 1) / sizeof(float)));
  for (int64_t s0 = n0; s0 < n1; s0 += slab_panels * kPanelRows) {
    const int64_t nr = std::min(slab_panels * kPanelRows, n1 - s0);
    for (int64_t r = 0; r < nr; r += kPanelRows) {
      PackPanel(w, s0 + r, std::min(kPanelRows, nr - r), packed + r / kPanelRows * stride);
    }
    SI_I8_NS::PanelRange(a, m, packed, k, nr, bias ? bias + s0 : nullptr, c + s0, n, 0, nr);
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
    SI_I8_NS::Range(acts, m, w[i], bias[i], c[i], n0, n1);
  });
}
#elif !SI_I8_VNNI
// Targets without AVX2 (SSE4) run the scalar reference, which defines these numerics (same bits;
// one thread).
void MatMulMulti(const float* a, int64_t m, int count, const MatRef* w, const float* const* bias,
                 float* const* c, ThreadPool* pool) {
  for (int i = 0; i < count; ++i) ReferenceKernels().matmul(a, m, w[i], bias[i], c[i], pool);
}
#endif  // HWY_TARGET <= HWY_AVX2

}  // namespace SI_I8_NS

#undef SI_I8_NS
#undef SI_I8_VNNI
