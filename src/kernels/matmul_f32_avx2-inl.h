// f32 / f16 / bf16 weights in 16-output panels (MatRef::panels16) on AVX2 and AVX3 (the GEMV on
// 256-bit vectors on both; the packed GEMM's tile in zmm on AVX3): the OUTPUTS are in the lanes. A
// textual fragment included by simd_matmul.cc after LoadW / ForEachRow. The AVX2 and AVX3 tables
// repack these matrices once (Kernels::to_panels, called by the engine at start-up); row-major
// matrices keep the lanes-along-K tiles of simd_matmul.cc, and the SSE4 table never repacks. On Zen
// 4 these panels beat AVX3's row-major 4 x 4 zmm tile, 110M f32, 2 rounds (scaleinfer bench -p 512
// -n 64 -t 1,2, SI_KERNEL_TARGET=AVX2 against the AVX3 table before it repacked): pp512 509 / 827
// vs 446 / 880 t/s, tg64 58 / 98 vs 31 / 56 t/s.
//
// Numerics of a panel matrix (one f32 chain per output, in K order):
//   acc = 0; for k = 0 .. K-1: acc = FMA(a[m, k], w[n, k], acc);  C[m, n] = acc (+ bias[n])
// The GEMV (M <= 4) and the packed GEMM (M >= 5) perform exactly these operations per output (the
// GEMM parks its accumulators between K chunks, which is exact), so decode, prefill, any M, N
// chunking and thread count give the same bits (tests/kernels/matmul_test.cc).
//
// Why (docs/kernels.md, "f32 on AVX2: outputs in the lanes"): the lanes-along-K 4 x 3 tile loads 4
// activation vectors and 3 weight vectors per 12 FMAs (224 bytes from L1 / L2 per 6 cycles at peak)
// and measured 0.60-0.75 of the FMA peak on Zen 3, while a 6 x 16 broadcast tile (2 vector loads +
// 6 scalar broadcasts per 12 FMAs, 88 bytes; the shape of OpenBLAS's Zen kernel) runs at 0.80-0.86.
// With the outputs in the lanes, a GEMV over row-major weights would need an 8 x 8 transpose per 64
// weights (measured: decode 20-35% slower, compute-bound); over panels it is one sequential stream
// per 16 outputs with 2 loads and 2 FMAs per k.

namespace f32avx2 {

#if HWY_TARGET <= HWY_AVX2
// The GEMV and the conversions run on 256-bit vectors on every table (decode is bandwidth bound);
// the packed GEMM's tile (DT below) is 512-bit on AVX3.
using DF = hn::Full256<float>;
using VF = hn::Vec<DF>;
constexpr int64_t kNr = kPanelOutputs;  // outputs per panel: 2 vectors of 8
constexpr int kMr = 6;                  // A rows per packed block (broadcast operand)
constexpr int64_t kMinPackedRows = 5;   // M below this runs the GEMV (one pass over W for M <= 4)
constexpr int64_t kGroupRows =
    43 * kMr;                           // bounds the parked accumulators (258: M = 512 is 2 groups)
constexpr int kGemvRows = 4;            // A rows per GEMV pass
constexpr int64_t kMaxSlabPanels = 64;  // 256 KiB of kc 64 (kc is >= 64 unless K is smaller)

template <WKind kW>
constexpr size_t ElemBytes() {
  return kW == WKind::kF32 ? 4 : 2;
}

// ---- Repacking (once per matrix, at start-up).
int64_t PanelBytes(const MatRef& w) {
  const bool float_type = w.type == DType::kF32 || w.type == DType::kF16 || w.type == DType::kBF16;
  if (!float_type || w.panels16 || w.rows <= 0 || w.cols <= 0) return 0;
  return (w.rows + kNr - 1) / kNr * kNr * w.row_bytes();  // a panel holds 16 rows' bytes
}

// Panel t of a panel matrix (16 rows' bytes each).
HWY_INLINE const uint8_t* Panel(const MatRef& w, int64_t t) {
  return static_cast<const uint8_t*>(w.data) + static_cast<size_t>(t * kNr * w.row_bytes());
}

// Tile t of w (rows t * 16 .. + 15, zero past w.rows) -> dst [cols][16] elements of w's type, in
// blocks of 64 columns so that the 16 source rows are read as short sequential runs.
template <typename T>
void PanelTile(const MatRef& w, int64_t t, T* dst) {
  const size_t k = static_cast<size_t>(w.cols);
  const T* src[kNr];
  int valid = 0;
  for (int l = 0; l < kNr; ++l) {
    const int64_t row = t * kNr + l;
    if (row < w.rows) {
      src[l] = reinterpret_cast<const T*>(w.row(row));
      valid = l + 1;
    }
  }
  constexpr size_t kBlock = 64;
  for (size_t k0 = 0; k0 < k; k0 += kBlock) {
    const size_t k1 = std::min(k, k0 + kBlock);
    for (int l = 0; l < kNr; ++l) {
      T* out = dst + k0 * kNr + l;
      if (l >= valid) {
        for (size_t kk = k0; kk < k1; ++kk, out += kNr) *out = T{};
        continue;
      }
      for (size_t kk = k0; kk < k1; ++kk, out += kNr) *out = src[l][kk];
    }
  }
}

MatRef ToPanels(const MatRef& w, void* dst, ThreadPool* pool) {
  SI_CHECK(PanelBytes(w) > 0) << "to_panels: not a row-major f32/f16/bf16 matrix";
  return RepackPanels(w, dst, kNr * w.row_bytes(), pool, [&](int64_t t, uint8_t* panel) {
    if (w.type == DType::kF32) {
      PanelTile(w, t, reinterpret_cast<uint32_t*>(panel));
    } else {
      PanelTile(w, t, reinterpret_cast<uint16_t*>(panel));
    }
  });
}

// Outputs 8 j .. 8 j + 7 at column kk of a panel, as f32.
template <WKind kW>
HWY_INLINE VF LoadPanel(const uint8_t* panel, size_t kk, int j) {
  const DF df;
  if constexpr (kW == WKind::kF32) {
    return hn::Load(df, reinterpret_cast<const float*>(panel) + kk * kNr + j * 8);
  } else {
    return LoadW<kW>(df, panel, kk * kNr + j * 8);
  }
}

// Writes the first cnt lanes of acc (+ bias[0 .. cnt)) to c.
HWY_INLINE void StoreOutputs(VF acc, const float* bias, size_t cnt, float* c) {
  const DF df;
  HWY_ALIGN float buf[8];
  if (bias != nullptr) {
    if (cnt == 8) {
      acc = hn::Add(acc, hn::LoadU(df, bias));
    } else {
      std::memcpy(buf, bias, cnt * sizeof(float));
      std::fill(buf + cnt, buf + 8, 0.0f);
      acc = hn::Add(acc, hn::Load(df, buf));
    }
  }
  if (cnt == 8) return hn::StoreU(acc, df, c);
  hn::Store(acc, df, buf);
  std::memcpy(c, buf, cnt * sizeof(float));
}

// Stores the 16 outputs of panel t (two vectors) for one row, clipped to [.., n1).
HWY_INLINE void StorePanel(const VF* acc, int64_t t, int64_t n1, const float* bias, float* c_row) {
  for (int j = 0; j < 2; ++j) {
    const int64_t n = t * kNr + j * 8;
    if (n >= n1) return;
    StoreOutputs(acc[j], bias ? bias + n : nullptr,
                 static_cast<size_t>(std::min<int64_t>(8, n1 - n)), c_row + n);
  }
}

// ---- GEMV: R activation rows (a_stride floats apart) x T panels from t0 (T streams, 2 T R
// independent FMA chains), all of K. Prefetches each panel 256 bytes ahead of its reads.
template <WKind kW, int R, int T>
HWY_INLINE void GemvPanels(const float* a, size_t a_stride, const MatRef& w, const float* bias,
                           float* c, size_t c_stride, int64_t t0, int64_t n1) {
  const DF df;
  constexpr size_t kElem = ElemBytes<kW>();
  const size_t k = static_cast<size_t>(w.cols);
  const uint8_t* p[T];
  for (int t = 0; t < T; ++t) p[t] = Panel(w, t0 + t);
  VF acc[T][R][2];
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) acc[t][r][0] = acc[t][r][1] = hn::Zero(df);
  for (size_t kk = 0; kk < k; ++kk) {
    VF av[R];
    for (int r = 0; r < R; ++r) av[r] = hn::Set(df, a[r * a_stride + kk]);
    for (int t = 0; t < T; ++t) {
      if ((kk * kNr * kElem) % 64 == 0) hwy::Prefetch(p[t] + kk * kNr * kElem + 256);
      const VF w0 = LoadPanel<kW>(p[t], kk, 0), w1 = LoadPanel<kW>(p[t], kk, 1);
      for (int r = 0; r < R; ++r) {
        acc[t][r][0] = hn::MulAdd(av[r], w0, acc[t][r][0]);
        acc[t][r][1] = hn::MulAdd(av[r], w1, acc[t][r][1]);
      }
    }
  }
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) StorePanel(acc[t][r], t0 + t, n1, bias, c + r * c_stride);
}

// Outputs [n0, n1) (n0 a multiple of 16) for R rows: T panels at a time, then one.
template <WKind kW, int R>
void GemvRows(const float* a, size_t a_stride, const MatRef& w, const float* bias, float* c,
              size_t c_stride, int64_t n0, int64_t n1) {
  constexpr int kT = R == 1 ? 4 : R == 2 ? 2 : 1;  // <= 8 accumulators
  const int64_t t1 = (n1 + kNr - 1) / kNr;
  int64_t t = n0 / kNr;
  for (; t + kT <= t1 && !(R == 1 && DecodeStreams() == 1); t += kT)
    GemvPanels<kW, R, kT>(a, a_stride, w, bias, c, c_stride, t, n1);
  for (; t < t1; ++t) GemvPanels<kW, R, 1>(a, a_stride, w, bias, c, c_stride, t, n1);
}

template <WKind kW>
void Gemv(const float* a, size_t a_stride, int64_t m, const MatRef& w, const float* bias, float* c,
          int64_t n0, int64_t n1) {
  const size_t n = static_cast<size_t>(w.rows);
  for (int64_t i = 0; i < m; i += kGemvRows) {
    const float* ai = a + i * a_stride;
    float* ci = c + i * n;
    switch (std::min<int64_t>(kGemvRows, m - i)) {
      case 1:
        GemvRows<kW, 1>(ai, a_stride, w, bias, ci, n, n0, n1);
        break;
      case 2:
        GemvRows<kW, 2>(ai, a_stride, w, bias, ci, n, n0, n1);
        break;
      case 3:
        GemvRows<kW, 3>(ai, a_stride, w, bias, ci, n, n0, n1);
        break;
      default:
        GemvRows<kW, 4>(ai, a_stride, w, bias, ci, n, n0, n1);
        break;
    }
  }
}

// ---- Packed GEMM.
// A [m, a_stride] -> [ceil(m / 6) blocks][k][6] (rows past m zero): the 6 broadcasts of a step are
// adjacent. Once per call (every slab of every thread reads it), in parallel for large m.
const float* PackA(const float* a, size_t a_stride, int64_t m, size_t k, ThreadPool* pool) {
  const int64_t blocks = (m + kMr - 1) / kMr;
  thread_local AlignedScratch buf;
  float* ap = buf.Get(static_cast<size_t>(blocks) * kMr * k);
  ForEachRow(blocks, pool, [&](int64_t ib) {
    float* dst = ap + ib * k * kMr;
    for (int r = 0; r < kMr; ++r) {
      const int64_t row = ib * kMr + r;
      const float* src = a + row * a_stride;
      for (size_t kk = 0; kk < k; ++kk) dst[kk * kMr + r] = row < m ? src[kk] : 0.0f;
    }
  });
  return ap;
}

// The packed GEMM's tile vectors: on AVX3 one zmm holds a panel's 16 outputs and a tile covers 4
// panels (6 x 64: 24 accumulators, 4 weight loads + 6 broadcasts per 24 FMAs), since the 256-bit
// 6 x 16 tile can issue at most half of a 512-bit FMA datapath's peak (Zen 5 / Sapphire Rapids:
// docs/kernels.md). AVX2: two ymm per panel, one panel per tile (6 x 16, 12 accumulators).
#if HWY_TARGET <= HWY_AVX3
using DT = hn::Full512<float>;
constexpr int kTileVecs = 1;    // vectors per panel
constexpr int kTilePanels = 4;  // panels per full tile
#else
using DT = DF;
constexpr int kTileVecs = 2;
constexpr int kTilePanels = 1;
#endif
using VT = hn::Vec<DT>;
constexpr int kTileLanes = static_cast<int>(kNr) / kTileVecs;
constexpr size_t kTileAcc = kMr * kNr;  // floats parked per (block, panel): [6][16]

// Stores row r's 16 outputs of panel t (acc: kTileVecs vectors), clipped to [.., n1), + bias.
HWY_INLINE void StoreTilePanel(const VT* acc, int64_t t, int64_t n1, const float* bias,
                               float* c_row) {
  const DT dt;
  for (int j = 0; j < kTileVecs; ++j) {
    const int64_t n = t * kNr + j * kTileLanes;
    if (n >= n1) return;
    const int64_t cnt = std::min<int64_t>(kTileLanes, n1 - n);
    VT v = acc[j];
    if (cnt == kTileLanes) {
      if (bias != nullptr) v = hn::Add(v, hn::LoadU(dt, bias + n));
      hn::StoreU(v, dt, c_row + n);
      continue;
    }
    HWY_ALIGN float buf[kTileLanes];
    hn::Store(v, dt, buf);
    // The same single f32 add per output as the vector path and the GEMV.
    for (int64_t l = 0; l < cnt; ++l) c_row[n + l] = bias ? buf[l] + bias[n + l] : buf[l];
  }
}

// 6 A rows (ap: [steps][6]) x P panel chunks (wp[p]: [steps][16] f32) over `steps` values of K.
// Accumulators start at zero (first) or come from acc_buf (panel p's at acc_buf + p kTileAcc); at
// the end (last) C = acc (+ bias) for the first `rows` rows of panels t .. t + P - 1, else they are
// parked in acc_buf.
template <int P>
HWY_INLINE void Tile(const float* HWY_RESTRICT ap, const float* const* wp, size_t steps, bool first,
                     bool last, float* HWY_RESTRICT acc_buf, int rows, int64_t t, int64_t n1,
                     const float* bias, float* HWY_RESTRICT c, size_t c_stride) {
  const DT dt;
  constexpr int V = kTileVecs, L = kTileLanes;
  VT acc[kMr][P][V];
  for (int r = 0; r < kMr; ++r) {
    for (int p = 0; p < P; ++p) {
      for (int j = 0; j < V; ++j) {
        acc[r][p][j] =
            first ? hn::Zero(dt) : hn::Load(dt, acc_buf + p * kTileAcc + r * kNr + j * L);
      }
    }
  }
  const float* HWY_RESTRICT w[P];
  for (int p = 0; p < P; ++p) w[p] = wp[p];
  for (size_t v = 0; v < steps; ++v) {
    VT wv[P][V];
    for (int p = 0; p < P; ++p)
      for (int j = 0; j < V; ++j) wv[p][j] = hn::Load(dt, w[p] + v * kNr + j * L);
    for (int r = 0; r < kMr; ++r) {
      const VT av = hn::Set(dt, ap[v * kMr + r]);
      for (int p = 0; p < P; ++p)
        for (int j = 0; j < V; ++j) acc[r][p][j] = hn::MulAdd(av, wv[p][j], acc[r][p][j]);
    }
  }
  if (!last) {
    for (int r = 0; r < kMr; ++r)
      for (int p = 0; p < P; ++p)
        for (int j = 0; j < V; ++j)
          hn::Store(acc[r][p][j], dt, acc_buf + p * kTileAcc + r * kNr + j * L);
    return;
  }
  for (int r = 0; r < rows; ++r)
    for (int p = 0; p < P; ++p) StoreTilePanel(acc[r][p], t + p, n1, bias, c + r * c_stride);
}

// Rows [0, m) x outputs [n0, n1) (n0 a multiple of 16) from A packed by PackA. Loop nest (every
// level keeps each output's FMA chain in K order):
//   group of up to kGroupRows A rows (bounds the parked accumulators)
//     slab of panels (slab_bytes of their kc-long chunks as f32: 8 panels of kc 512 in 256 KiB, L2)
//       K chunk of kc: f32 panels are read in place; f16 / bf16 chunks are converted once into a
//       per-thread f32 slab
//         block of 6 A rows: [kc][6] (6 x kc x 4 = 12 KiB, L1)
//           every 6 x 16 tile of the slab; accumulators parked per (block, panel) between chunks.
template <WKind kW>
void PackedRange(const float* ap, int64_t m, const MatRef& w, const float* bias, float* c,
                 int64_t n0, int64_t n1, size_t kc, size_t slab_bytes) {
  const DF df;
  constexpr size_t kElem = ElemBytes<kW>();
  const size_t k = static_cast<size_t>(w.cols);
  const size_t n = static_cast<size_t>(w.rows);
  kc = std::min(kc, k);
  if (slab_bytes == 0) slab_bytes = 256 * 1024;
  int64_t max_tiles =
      std::clamp<int64_t>(static_cast<int64_t>(slab_bytes / (kc * 4 * kNr)), 1, kMaxSlabPanels);
  if (max_tiles > kTilePanels) max_tiles -= max_tiles % kTilePanels;  // whole tiles per slab
  thread_local AlignedScratch wconv, accs;
  float* wf = kW == WKind::kF32 ? nullptr : wconv.Get(static_cast<size_t>(max_tiles) * kc * kNr);
  // Groups of equal size (a multiple of 6): each group streams all of the chunk's weights once, so
  // a short last group (M = 512 in groups of 252 would leave 8 rows) pays a full pass for few rows.
  const int64_t groups = (m + kGroupRows - 1) / kGroupRows;
  const int64_t group =
      std::min<int64_t>(kGroupRows, ((m + groups - 1) / groups + kMr - 1) / kMr * kMr);
  const int64_t group_blocks = (group + kMr - 1) / kMr;
  // [group block][panel of the slab][6][2][8]: only touched when K has more than one chunk.
  float* acc_buf =
      kc < k ? accs.Get(static_cast<size_t>(group_blocks * max_tiles) * kTileAcc) : nullptr;
  const int64_t t_begin = n0 / kNr, t_end = (n1 + kNr - 1) / kNr;
  for (int64_t g0 = 0; g0 < m; g0 += group) {
    const int64_t g1 = std::min(m, g0 + group);
    for (int64_t s0 = t_begin; s0 < t_end; s0 += max_tiles) {
      const int64_t tiles = std::min(t_end, s0 + max_tiles) - s0;
      for (size_t k0 = 0; k0 < k; k0 += kc) {
        const size_t k1 = std::min(k, k0 + kc);
        const size_t steps = k1 - k0;
        const bool first = k0 == 0, last = k1 >= k;
        const float* wp[kMaxSlabPanels];
        for (int64_t t = 0; t < tiles; ++t) {
          const uint8_t* panel = Panel(w, s0 + t) + k0 * kNr * kElem;
          if constexpr (kW == WKind::kF32) {
            wp[t] = reinterpret_cast<const float*>(panel);
          } else {
            float* dst = wf + t * kc * kNr;
            for (size_t i = 0; i < steps * kNr; i += 8) {
              hn::Store(LoadW<kW>(df, panel, i), df, dst + i);
            }
            wp[t] = dst;
          }
        }
        for (int64_t i = g0; i < g1; i += kMr) {
          const int rows = static_cast<int>(std::min<int64_t>(kMr, m - i));
          const float* apk = ap + (i / kMr) * k * kMr + k0 * kMr;
          float* acc_i =
              acc_buf == nullptr ? nullptr : acc_buf + (i - g0) / kMr * max_tiles * kTileAcc;
          int64_t t = 0;
          for (; t + kTilePanels <= tiles; t += kTilePanels) {
            Tile<kTilePanels>(apk, wp + t, steps, first, last,
                              acc_i == nullptr ? nullptr : acc_i + t * kTileAcc, rows, s0 + t, n1,
                              bias, c + i * n, n);
          }
          for (; t < tiles; ++t) {
            Tile<1>(apk, wp + t, steps, first, last,
                    acc_i == nullptr ? nullptr : acc_i + t * kTileAcc, rows, s0 + t, n1, bias,
                    c + i * n, n);
          }
        }
      }
    }
  }
}

// Rows [0, m) x outputs [n0, n1) of a panel matrix; packed: A from PackA when m >= kMinPackedRows.
template <WKind kW>
void Range(const float* a, size_t a_stride, const float* packed, int64_t m, const MatRef& w,
           const float* bias, float* c, int64_t n0, int64_t n1, size_t kc, size_t slab_bytes) {
  if (packed != nullptr) return PackedRange<kW>(packed, m, w, bias, c, n0, n1, kc, slab_bytes);
  Gemv<kW>(a, a_stride, m, w, bias, c, n0, n1);
}
#endif  // HWY_TARGET <= HWY_AVX2

}  // namespace f32avx2
