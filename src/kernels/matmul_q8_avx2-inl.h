// Q8_0 weights x Q8_0 activations on AVX2 and AVX3 (256-bit vectors; the AVX3_VNNI GEMM, m > 4,
// in zmm: PanelTileZ). The weights are in 16-output panels (the engine repacks them once,
// Kernels::to_panels; a row-major matrix with M > 4 is packed a slab at a time per call) and one
// tile reads them with the outputs in the vector lanes for every M; a row-major matrix with M <= 4
// (decode of an unrepacked model) streams its rows through a tile of its own with the same
// arithmetic. A textual fragment included by simd_matmul.cc after matmul_int8-inl.h (it uses
// i8rows::StoreBlockSteps16 / StoreN / kSlabBytes / PlanSlabPrefetch). The AVX2 and AVX3 tables run
// it (AVX3_VNNI: the q8vnni instance below); Q4_0 keeps matmul_quant-inl.h's tiles. On Zen 4
// (AVX-512 VNNI) the AVX3_VNNI table with these panels against matmul_quant-inl.h's lanes-along-K
// qvnni tile, 110M Q8_0, 2 rounds (scaleinfer bench -p 512 -n 64 -t 1,2): pp512 1210 / 2071 vs 550
// / 925 t/s, tg64 208 / 263 vs 62 / 111 t/s.
//
// Numerics of this table (ops.h's Q8_0 contract; one f32 accumulator per output):
//   acc = 0; for each block b in order: acc = FMA(f32(isum_b), d_w[n, b] * d_a[m, b], acc)
//   C[m, n] = acc (+ bias[n])
// isum_b is the exact int32 dot of the block (vpmaddubsw on |w| x sign(a, w), exact: |128 * 127 *
// 2| < 32767). Both tiles do exactly these operations per output, so decode, prefill, any M, N
// chunking, thread count and layout give the same bits (tests/kernels/matmul_test.cc).
//
// Why (docs/kernels.md, "Q8_0 on AVX2"): the lanes-along-K tile of matmul_quant-inl.h pays, per
// block, output and row, a convert + FMA into a vector accumulator and a horizontal sum at the
// end; here one 32-byte weight load holds 4 k of 8 outputs and one broadcast 4 k of one activation
// row, so a block costs per (row, 8 outputs) 8 x (vpsignb + vpmaddubsw + vpmaddwd + vpaddd) and one
// convert + multiply + FMA.

// Included twice on AVX3: as q8avx2 (SI_Q8_VNNI 0: vpmaddubsw + vpmaddwd) and, under
// `#pragma GCC target("avx512vnni")`, as q8vnni (SI_Q8_VNNI 1: EVEX vpdpbusd on 256-bit vectors).
// Both compute the same exact int32 block sums, so the two instances give the same bits; only
// q8avx2 defines the panel layout functions (PanelBytes, PackPanel, ToPanels).
#ifndef SI_Q8_NS
#define SI_Q8_NS q8avx2
#define SI_Q8_VNNI 0
#endif

namespace SI_Q8_NS {

#if HWY_TARGET <= HWY_AVX2
constexpr int kR = 4, kGroup = 8;  // tile: 4 rows x 16 outputs (8 int32 sums, 2 weights, 2 |w|)

// Activations: row i's Q8_0 values at q + i * k, its block scales at d + i * nblocks. u: q + 128
// as uint8 (q ^ 0x80), the unsigned operand of the VNNI panel tile (null elsewhere).
struct Acts {
  const int8_t* q;
  const float* d;
  const uint8_t* u = nullptr;
};

// acc + the 8 int32 sums of 4 adjacent u8 x s8 products: matmul_int8-inl.h's (exact here too: a
// vpmaddubsw pair is at most 2 * 127 * 127 with |w| and |sign(a, w)| <= 127).
#if SI_Q8_VNNI
using i8vnni::Dot4;
#else
using i8rows::Dot4;
#endif

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
        v[j] = Dot4(_mm256_setzero_si256(), wabs[j], _mm256_sign_epi8(av, wv[j]));
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

// ---- Panels (Kernels::to_panels, MatRef::panels16 on a Q8_0 matrix). The engine repacks the
// weights once at start-up into the layout the tiles read, so that no call packs (packing per call,
// as Range still does for a row-major matrix with M > 4, transposes every weight byte of every
// call: batched decode paid it on every step).
// 16 outputs per panel, panel t's blocks in order, block b at (t * nblocks + b) * 544 bytes:
//   16 fp16 scales (rows t * 16 + 0..15), then 8 steps of 4 k, each [rows 0..7][4 bytes] and
//   [rows 8..15][4 bytes].
// 34 bytes per row and block, as stored, and one sequential stream per panel (decode reads each
// byte once). The arithmetic per output is the row-major paths' (the same bits).
constexpr int64_t kPanelRows = 16;
constexpr size_t kPanelBlock = kPanelRows * sizeof(BlockQ8_0);  // 544 bytes
constexpr size_t kPanelScales = kPanelRows * sizeof(uint16_t);  // the quants start after 32 bytes

#if !SI_Q8_VNNI
int64_t PanelBytes(const MatRef& w) {
  if (w.type != DType::kQ8_0 || w.int8_rows || w.panels16 || w.rows <= 0 || w.cols <= 0) return 0;
  return (w.rows + kPanelRows - 1) / kPanelRows * kPanelRows * w.row_bytes();
}

// Rows [row0, row0 + nrows) of row-major w (nrows <= 16; zeros past them) -> one panel at out.
void PackPanel(const MatRef& w, int64_t row0, int64_t nrows, uint8_t* out) {
  const size_t nblocks = static_cast<size_t>(w.cols) / kQK8_0;
  for (size_t b = 0; b < nblocks; ++b, out += kPanelBlock) {
    __m256i v[kPanelRows];
    uint16_t scales[kPanelRows];
    for (int l = 0; l < kPanelRows; ++l) {
      if (l >= nrows) {
        v[l] = _mm256_setzero_si256();
        scales[l] = 0;
        continue;
      }
      const uint8_t* blk = w.row(row0 + l) + b * sizeof(BlockQ8_0);
      // 16 row streams from memory when a call packs (batched decode of an unrepacked model):
      // prefetched as the decode streams.
      if (b % 2 == 0) hwy::Prefetch(blk + kStreamPrefetch);
      v[l] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
      std::memcpy(&scales[l], blk, 2);
    }
    std::memcpy(out, scales, kPanelScales);
    i8rows::StoreBlockSteps16(v, out + kPanelScales);
  }
}

MatRef ToPanels(const MatRef& w, void* dst, ThreadPool* pool) {
  SI_CHECK(PanelBytes(w) > 0) << "to_panels: not a row-major Q8_0 matrix";
  return RepackPanels(w, dst, kPanelRows * w.row_bytes(), pool, [&](int64_t t, uint8_t* panel) {
    const int64_t row0 = t * kPanelRows;
    PackPanel(w, row0, std::min(kPanelRows, w.rows - row0), panel);
  });
}
#endif  // !SI_Q8_VNNI

// R activation rows (from row i0) x S panels of w, panel s holding outputs [o[s], o[s] + 16) (o[s]
// a multiple of 16; past w.rows: none); output (i, j) goes to c[i * c_stride + j]. Decode runs S =
// 4 panels far apart: four streams through memory, as the row-major decode tile's four rows, and no
// software prefetch (1.1B Q8_0 tg16, 4 alternating rounds, 1 / 2 threads: one stream with every
// line prefetched 4 blocks ahead 14-16 / 21-25 t/s, four streams prefetched so 14-19 / 22-25, four
// streams without 17-20 / 24-27, stored rows 15-19 / 23-28). The int32 sums live one block (8 steps
// of 4 k), then one convert + multiply + FMA per 8 outputs folds them into the f32 accumulators.
// GCC spills 2-3 of the 8 sums of the 4-row tile in the k loop; keeping the f32 accumulators in
// memory instead (an asm barrier) did not spill less and was not faster (kernel_bench prefill/q8_0,
// 3 rounds).
// Decode (R == 1) prefetches each panel 4 blocks (4 x 544 bytes) ahead: the hardware prefetchers
// of Emerald Rapids kept too few misses in flight on the 4 streams (1.1B Q8_0 tg32, 1 thread,
// alternating: MBU 0.75 / 0.74 without, 0.94 / 0.94 with 4 ahead, 0.90 / 0.91 with 8); on Zen 5 (1
// stream) it is neutral (MBU 0.85-0.99 either way, 4 alternating rounds). Prefetches past the end
// of the weights are harmless (no fault).
constexpr size_t kDecodePrefetchBlocks = 4;
template <int R, int S>
HWY_INLINE void PanelTile(const Acts& a, int64_t i0, const MatRef& w, const int64_t* o,
                          const float* bias, float* HWY_RESTRICT c, size_t c_stride) {
  const size_t k = static_cast<size_t>(w.cols);
  const size_t nblocks = k / kQK8_0;
  const int64_t n = w.rows;
  const uint8_t* panel[S];
  for (int s = 0; s < S; ++s) panel[s] = static_cast<const uint8_t*>(w.data) + o[s] * w.row_bytes();
  __m256 facc[S][R][2];
  for (int s = 0; s < S; ++s)
    for (int r = 0; r < R; ++r) facc[s][r][0] = facc[s][r][1] = _mm256_setzero_ps();
  [[maybe_unused]] const int8_t* aq = a.q + i0 * k;  // the AVX2 form's operand
  const float* ad = a.d + i0 * nblocks;
  for (size_t blk = 0; blk < nblocks; ++blk) {
    for (int s = 0; s < S; ++s) {
      const uint8_t* pb = panel[s] + blk * kPanelBlock;
      if (R == 1) {
        const uint8_t* ahead = pb + kDecodePrefetchBlocks * kPanelBlock;
        for (size_t off = 0; off < kPanelBlock; off += 64) hwy::Prefetch(ahead + off);
      }
      __m256i acc[R][2];
      for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
#if SI_Q8_VNNI
      // vpdpbusd takes u8 x s8 without saturation: sum (q + 128) * w - 128 * sum w = sum q * w,
      // exact, with one instruction per product vector and no sign fix-up (the AVX2 form needs
      // vpsignb + vpmaddubsw + vpmaddwd + vpaddd); the weight sums cost one vpdpbusd per weight
      // vector, shared by the R rows.
      const __m256i ones8 = _mm256_set1_epi8(1);
      __m256i wsum[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
      const uint8_t* au = a.u + i0 * k;
      for (int q = 0; q < 8; ++q) {
        const uint8_t* step = pb + kPanelScales + q * 64;
        const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(step));
        const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(step + 32));
        wsum[0] = _mm256_dpbusd_epi32(wsum[0], ones8, w0);
        wsum[1] = _mm256_dpbusd_epi32(wsum[1], ones8, w1);
        for (int r = 0; r < R; ++r) {
          int32_t u4;
          std::memcpy(&u4, au + r * k + blk * kQK8_0 + q * 4, 4);
          const __m256i uv = _mm256_set1_epi32(u4);
          acc[r][0] = _mm256_dpbusd_epi32(acc[r][0], uv, w0);
          acc[r][1] = _mm256_dpbusd_epi32(acc[r][1], uv, w1);
        }
      }
      wsum[0] = _mm256_slli_epi32(wsum[0], 7);
      wsum[1] = _mm256_slli_epi32(wsum[1], 7);
      for (int r = 0; r < R; ++r) {
        acc[r][0] = _mm256_sub_epi32(acc[r][0], wsum[0]);
        acc[r][1] = _mm256_sub_epi32(acc[r][1], wsum[1]);
      }
#else
      for (int q = 0; q < 8; ++q) {
        const uint8_t* step = pb + kPanelScales + q * 64;
        const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(step));
        const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(step + 32));
        const __m256i a0 = _mm256_abs_epi8(w0), a1 = _mm256_abs_epi8(w1);
        for (int r = 0; r < R; ++r) {
          int32_t a4;
          std::memcpy(&a4, aq + r * k + blk * kQK8_0 + q * 4, 4);
          const __m256i av = _mm256_set1_epi32(a4);
          acc[r][0] = Dot4(acc[r][0], a0, _mm256_sign_epi8(av, w0));
          acc[r][1] = Dot4(acc[r][1], a1, _mm256_sign_epi8(av, w1));
        }
      }
#endif
      const __m256 dw[2] = {
          _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(pb))),
          _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(pb + 16)))};
      for (int r = 0; r < R; ++r) {
        const __m256 da = _mm256_set1_ps(ad[r * nblocks + blk]);
        for (int j = 0; j < 2; ++j) {
          const __m256 sc = _mm256_mul_ps(dw[j], da);
          facc[s][r][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][j]), sc, facc[s][r][j]);
        }
      }
    }
  }
  for (int s = 0; s < S; ++s) {
    for (int j = 0; j < 2; ++j) {
      const int64_t out = o[s] + j * kGroup;
      const int cnt = static_cast<int>(std::min<int64_t>(kGroup, n - out));
      if (cnt <= 0) break;
      HWY_ALIGN float bb[8] = {};
      if (bias) std::memcpy(bb, bias + out, cnt * sizeof(float));
      for (int r = 0; r < R; ++r) {
        const __m256 f = facc[s][r][j];
        const __m256 y = bias ? _mm256_add_ps(f, _mm256_load_ps(bb)) : f;
        i8rows::StoreN(y, c + (i0 + r) * c_stride + out, cnt);
      }
    }
  }
}

template <int S>
HWY_INLINE void PanelTileRows(int rows, const Acts& a, int64_t i0, const MatRef& w,
                              const int64_t* o, const float* bias, float* c, size_t c_stride) {
  switch (rows) {
    case 1:
      return PanelTile<1, S>(a, i0, w, o, bias, c, c_stride);
    case 2:
      return PanelTile<2, S>(a, i0, w, o, bias, c, c_stride);
    case 3:
      return PanelTile<3, S>(a, i0, w, o, bias, c, c_stride);
    default:
      return PanelTile<4, S>(a, i0, w, o, bias, c, c_stride);
  }
}

#if SI_Q8_VNNI && HWY_TARGET <= HWY_AVX3
// ---- The GEMM's zmm tile (AVX3_VNNI, m > 4): a step's 64 bytes are 4 k of all 16 outputs of a
// panel, so a panel is one zmm and a tile is R <= 6 rows x S <= 2 panels (R S int32 block sums +
// R S f32 accumulators + S weights <= 26 zmm). The vpdpbusd sums of u = q + 128 start from
// -128 x the block's weight sums (nws: [S panels][nblocks][16], made once per slab by
// SlabWeightSums instead of once per tile), so they end as the exact block sums. Per output the
// same operations as PanelTile (exact int32 block sum, then one convert + multiply + FMA per
// block), so the same bits.
// pf / pf_lines: the tile prefetches pf_lines cache lines per block from pf (into L2) for the next
// slab (i8rows::SlabPrefetch; here SlabWeightSums streams a slab before its tiles compute, and
// kernel_bench batch16_dram/q8_0/ffn_up at 1 thread went 392 -> 421-484 GOP/s with the prefetch).
constexpr int kRz = 6, kSz = 2;

template <int R, int S>
HWY_INLINE void PanelTileZ(const Acts& a, int64_t i0, const MatRef& w, int64_t o0,
                           const int32_t* HWY_RESTRICT nws, const float* bias,
                           float* HWY_RESTRICT c, size_t c_stride, const uint8_t* pf,
                           size_t pf_lines) {
  const size_t k = static_cast<size_t>(w.cols);
  const size_t nblocks = k / kQK8_0;
  const int64_t n = w.rows;
  const uint8_t* panel[S];
  for (int s = 0; s < S; ++s) {
    panel[s] = static_cast<const uint8_t*>(w.data) + (o0 + s * kPanelRows) * w.row_bytes();
  }
  __m512 facc[S][R];
  for (int s = 0; s < S; ++s)
    for (int r = 0; r < R; ++r) facc[s][r] = _mm512_setzero_ps();
  const uint8_t* au = a.u + i0 * k;
  const float* ad = a.d + i0 * nblocks;
  for (size_t blk = 0; blk < nblocks; ++blk) {
    for (size_t l = 0; l < pf_lines; ++l) _mm_prefetch(pf + (blk * pf_lines + l) * 64, _MM_HINT_T1);
    __m512i acc[S][R];
    for (int s = 0; s < S; ++s) {
      const __m512i init = _mm512_load_si512(nws + (s * nblocks + blk) * kPanelRows);
      for (int r = 0; r < R; ++r) acc[s][r] = init;
    }
    for (int q = 0; q < 8; ++q) {
      __m512i wv[S];
      for (int s = 0; s < S; ++s) {
        wv[s] = _mm512_loadu_si512(panel[s] + blk * kPanelBlock + kPanelScales + q * 64);
      }
      for (int r = 0; r < R; ++r) {
        int32_t u4;
        std::memcpy(&u4, au + r * k + blk * kQK8_0 + q * 4, 4);
        const __m512i uv = _mm512_set1_epi32(u4);
        for (int s = 0; s < S; ++s) acc[s][r] = _mm512_dpbusd_epi32(acc[s][r], uv, wv[s]);
      }
    }
    __m512 dw[S];
    for (int s = 0; s < S; ++s) {
      dw[s] = _mm512_cvtph_ps(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(panel[s] + blk * kPanelBlock)));
    }
    for (int r = 0; r < R; ++r) {
      const __m512 da = _mm512_set1_ps(ad[r * nblocks + blk]);
      for (int s = 0; s < S; ++s) {
        const __m512 sc = _mm512_mul_ps(dw[s], da);
        facc[s][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[s][r]), sc, facc[s][r]);
      }
    }
  }
  for (int s = 0; s < S; ++s) {
    for (int j = 0; j < 2; ++j) {
      const int64_t out = o0 + s * kPanelRows + j * kGroup;
      const int cnt = static_cast<int>(std::min<int64_t>(kGroup, n - out));
      if (cnt <= 0) break;
      HWY_ALIGN float bb[8] = {};
      if (bias) std::memcpy(bb, bias + out, cnt * sizeof(float));
      for (int r = 0; r < R; ++r) {
        const __m256 f =
            j == 0 ? _mm512_castps512_ps256(facc[s][r]) : _mm512_extractf32x8_ps(facc[s][r], 1);
        const __m256 y = bias ? _mm256_add_ps(f, _mm256_load_ps(bb)) : f;
        i8rows::StoreN(y, c + (i0 + r) * c_stride + out, cnt);
      }
    }
  }
}

// nws [panels][nblocks][16] = -128 x the sum of each block's 32 weights per output, for `panels`
// panels from output o0 (exact: |128 x 32 x 128| < 2^31).
void SlabWeightSums(const MatRef& w, int64_t o0, int64_t panels, int32_t* HWY_RESTRICT nws) {
  const size_t nblocks = static_cast<size_t>(w.cols) / kQK8_0;
  const __m512i ones8 = _mm512_set1_epi8(1);
  for (int64_t p = 0; p < panels; ++p) {
    const uint8_t* panel =
        static_cast<const uint8_t*>(w.data) + (o0 + p * kPanelRows) * w.row_bytes();
    for (size_t blk = 0; blk < nblocks; ++blk) {
      __m512i sum = _mm512_setzero_si512();
      for (int q = 0; q < 8; ++q) {
        sum = _mm512_dpbusd_epi32(
            sum, ones8, _mm512_loadu_si512(panel + blk * kPanelBlock + kPanelScales + q * 64));
      }
      _mm512_store_si512(nws + (p * nblocks + blk) * kPanelRows,
                         _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sum, 7)));
    }
  }
}

template <int R>
HWY_INLINE void TileZPanels(int64_t panels, const Acts& a, int64_t i0, const MatRef& w, int64_t o0,
                            const int32_t* nws, const float* bias, float* c, size_t c_stride,
                            const uint8_t* pf, size_t pf_lines) {
  if (panels >= 2) return PanelTileZ<R, 2>(a, i0, w, o0, nws, bias, c, c_stride, pf, pf_lines);
  PanelTileZ<R, 1>(a, i0, w, o0, nws, bias, c, c_stride, pf, pf_lines);
}

// `rows` (1..6) rows from i0 x `panels` (1..2) panels from output o0.
void TileZ(int64_t rows, int64_t panels, const Acts& a, int64_t i0, const MatRef& w, int64_t o0,
           const int32_t* nws, const float* bias, float* c, size_t c_stride, const uint8_t* pf,
           size_t pf_lines) {
  switch (rows) {
    case 1:
      return TileZPanels<1>(panels, a, i0, w, o0, nws, bias, c, c_stride, pf, pf_lines);
    case 2:
      return TileZPanels<2>(panels, a, i0, w, o0, nws, bias, c, c_stride, pf, pf_lines);
    case 3:
      return TileZPanels<3>(panels, a, i0, w, o0, nws, bias, c, c_stride, pf, pf_lines);
    case 4:
      return TileZPanels<4>(panels, a, i0, w, o0, nws, bias, c, c_stride, pf, pf_lines);
    case 5:
      return TileZPanels<5>(panels, a, i0, w, o0, nws, bias, c, c_stride, pf, pf_lines);
    default:
      return TileZPanels<6>(panels, a, i0, w, o0, nws, bias, c, c_stride, pf, pf_lines);
  }
}
#endif  // SI_Q8_VNNI && HWY_TARGET <= HWY_AVX3

// Rows [0, m) x outputs [n0, n1) of panel matrix w (n0 a multiple of 16), m > 4: slabs of panels
// (half of L2) read from memory once, then from L2 by every block of 4 activation rows.
void PanelGemm(const Acts& a, int64_t m, const MatRef& w, const float* bias, float* c,
               size_t c_stride, int64_t n0, int64_t n1) {
  const int64_t panels = (n1 - n0 + kPanelRows - 1) / kPanelRows;
  const int64_t slab =
      std::max<int64_t>(1, static_cast<int64_t>(i8rows::kSlabBytes) / (kPanelRows * w.row_bytes()));
  for (int64_t s0 = 0; s0 < panels; s0 += slab) {
    const int64_t s1 = std::min(panels, s0 + slab);
#if SI_Q8_VNNI && HWY_TARGET <= HWY_AVX3
    const size_t nblocks = static_cast<size_t>(w.cols) / kQK8_0;
    thread_local AlignedScratch nws_buf;  // [slab panels][nblocks][16] int32
    int32_t* nws = reinterpret_cast<int32_t*>(
        nws_buf.Get(static_cast<size_t>(s1 - s0) * nblocks * kPanelRows));
    SlabWeightSums(w, n0 + s0 * kPanelRows, s1 - s0, nws);
    const i8rows::SlabPrefetch pf = i8rows::PlanSlabPrefetch((m + kRz - 1) / kRz, s1 < panels,
                                                             kSz * nblocks * kPanelBlock, nblocks);
    for (int64_t i = 0; i < m; i += kRz) {
      for (int64_t p = s0; p < s1; p += kSz) {
        TileZ(std::min<int64_t>(kRz, m - i), std::min<int64_t>(kSz, s1 - p), a, i, w,
              n0 + p * kPanelRows, nws + (p - s0) * nblocks * kPanelRows, bias, c, c_stride,
              pf.At(w.data, (n0 + (p + (s1 - s0)) * kPanelRows) * w.row_bytes(), i / kRz),
              pf.lines);
      }
    }
#else
    for (int64_t i = 0; i < m; i += kR) {
      const int rows = static_cast<int>(std::min<int64_t>(kR, m - i));
      for (int64_t p = s0; p < s1; ++p) {
        const int64_t o = n0 + p * kPanelRows;
        PanelTileRows<1>(rows, a, i, w, &o, bias, c, c_stride);
      }
    }
#endif
  }
}

// Rows [0, m) x outputs [n0, n1) (n0 a multiple of 16) of one Q8_0 matmul, C [m, w.rows].
//   Panel matrix, m <= 4 (decode): every panel once for all rows, 4 streams.
//   Panel matrix, m > 4: PanelGemm.
//   Row-major, m <= 4: the rows stream once through the decode tile (memory bound: packing them
//   per call costs more than it saves; 1.1B Q8_0 tg, 2 threads, 2x slower packed).
//   Row-major, m > 4: each slab of rows packed into panels per call, then PanelGemm.
void Range(const Acts& a, int64_t m, const MatRef& w, const float* bias, float* c, int64_t n0,
           int64_t n1) {
  SI_CHECK(n0 % kPanelRows == 0) << n0;
  const size_t n = static_cast<size_t>(w.rows);
  if (w.panels16 && m <= kR) {
    const int rows = static_cast<int>(m);
    const int64_t panels = (n1 - n0 + kPanelRows - 1) / kPanelRows;
    constexpr int kS = 4;
    const int64_t tiles =
        DecodeStreams() == 1 ? 0 : panels / kS;  // stream s: panels [s * tiles, (s + 1) * tiles)
    for (int64_t t = 0; t < tiles; ++t) {
      int64_t o[kS];
      for (int s = 0; s < kS; ++s) o[s] = n0 + (t + s * tiles) * kPanelRows;
      PanelTileRows<kS>(rows, a, 0, w, o, bias, c, n);
    }
    for (int64_t p = kS * tiles; p < panels; ++p) {
      const int64_t o = n0 + p * kPanelRows;
      PanelTileRows<1>(rows, a, 0, w, &o, bias, c, n);
    }
    return;
  }
  if (w.panels16) return PanelGemm(a, m, w, bias, c, n, n0, n1);
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
  const int64_t slab = std::max<int64_t>(1, static_cast<int64_t>(i8rows::kSlabBytes) /
                                                (kPanelRows * w.row_bytes())) *
                       kPanelRows;
  thread_local AlignedScratch buf;  // [slab / 16] panels
  uint8_t* packed = reinterpret_cast<uint8_t*>(
      buf.Get(static_cast<size_t>(slab * w.row_bytes() + sizeof(float) - 1) / sizeof(float)));
  for (int64_t s0 = n0; s0 < n1; s0 += slab) {
    const int64_t nr = std::min(slab, n1 - s0);
    for (int64_t r = 0; r < nr; r += kPanelRows) {
      q8avx2::PackPanel(w, s0 + r, std::min(kPanelRows, nr - r), packed + r * w.row_bytes());
    }
    MatRef view = w;  // the slab as a panel matrix of nr outputs
    view.data = packed;
    view.rows = nr;
    view.panels16 = true;
    PanelGemm(a, m, view, bias ? bias + s0 : nullptr, c + s0, n, 0, nr);
  }
}
#endif  // HWY_TARGET <= HWY_AVX2

}  // namespace SI_Q8_NS

#undef SI_Q8_NS
#undef SI_Q8_VNNI
