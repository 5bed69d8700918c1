// Highway matmul for k-quant weights (Q4_K, Q5_K, Q6_K), compiled once per SIMD target and reached through
// that target's MatMul (simd_matmul.cc), so there is no dispatch inside the loops.
//
// Per call: every activation row is quantized to Q8_K once; then the output rows N are split over the
// threads in contiguous chunks (ParallelFor, no shared cache lines except at chunk edges). For each weight
// row and activation row the exact integer sums of each super-block are computed with 16-bit multiplies and
// pairwise 32-bit adds (vpmaddwd): the weight quants are widened to int16 and pre-multiplied by their 6-bit or
// int8 sub-block scale (|q * sc| <= 4096 fits int16; the pair sums of |q * sc * a| <= 1.1e6 fit int32). The
// float combination is KQuantCombine, shared with the scalar reference, so results are bit-identical to it.
// Prefill reuses each slab of kRowTile weight rows (a few KiB) from L1/L2 across all activation rows.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "si/base/check.h"
#include "si/kernels/kquants.h"
#include "si/kernels/ops.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_kquant.cc"
// clang-format off
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/simd_kernels-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace si {
namespace HWY_NAMESPACE {
#if HWY_TARGET != HWY_SCALAR
namespace hn = hwy::HWY_NAMESPACE;
namespace {

using D16 = hn::ScalableTag<int16_t>;   // one sub-block of 32 is 1, 2 or 4 vectors (AVX-512, AVX2, SSE4)
using D32 = hn::Repartition<int32_t, D16>;
using DU8 = hn::Rebind<uint8_t, D16>;   // half-width loads, widened
using DI8 = hn::Rebind<int8_t, D16>;
using D16h = hn::CappedTag<int16_t, 16>;  // Q6_K: its sub-blocks have 16 values
using D32h = hn::Repartition<int32_t, D16h>;
using DU8h = hn::Rebind<uint8_t, D16h>;
using DI8h = hn::Rebind<int8_t, D16h>;

// Q4_K (kFive = false) / Q5_K super-block: returns sum_j sc_j * dot_j; *summ = sum_j m_j * (sum of a in j).
template <bool kFive, typename Block>
HWY_INLINE int32_t SumsAsym(const Block& w, const BlockQ8_K& a, int32_t* summ) {
  const D16 d16;
  const D32 d32;
  const DU8 du8;
  const DI8 di8;
  const size_t n = hn::Lanes(d16);
  const auto mask = hn::Set(d16, 15);
  auto acc = hn::Zero(d32);
  int32_t sm = 0;
  for (int p = 0; p < 4; ++p) {  // sub-blocks 2p (low nibbles) and 2p + 1 (high nibbles) share 32 bytes
    uint8_t sc0, m0, sc1, m1;
    UnpackKScaleMin(w.scales, 2 * p, &sc0, &m0);
    UnpackKScaleMin(w.scales, 2 * p + 1, &sc1, &m1);
    sm += m0 * (a.bsums[4 * p] + a.bsums[4 * p + 1]) + m1 * (a.bsums[4 * p + 2] + a.bsums[4 * p + 3]);
    const auto vs0 = hn::Set(d16, sc0), vs1 = hn::Set(d16, sc1);
    const uint8_t* q = w.qs + 32 * p;
    const int8_t* a0 = a.qs + 64 * p;
    for (size_t off = 0; off < 32; off += n) {
      const auto packed = hn::BitCast(d16, hn::PromoteTo(hn::RebindToUnsigned<D16>(), hn::LoadU(du8, q + off)));
      auto lo = hn::And(packed, mask);
      auto hi = hn::ShiftRight<4>(packed);
      if constexpr (kFive) {
        const auto h = hn::BitCast(d16, hn::PromoteTo(hn::RebindToUnsigned<D16>(), hn::LoadU(du8, w.qh + off)));
        const auto one = hn::Set(d16, 1);
        lo = hn::Or(lo, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * p), one)));
        hi = hn::Or(hi, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * p + 1), one)));
      }
      const auto x0 = hn::PromoteTo(d16, hn::LoadU(di8, a0 + off));
      const auto x1 = hn::PromoteTo(d16, hn::LoadU(di8, a0 + 32 + off));
      auto unused = hn::Zero(d32);
      acc = hn::ReorderWidenMulAccumulate(d32, hn::Mul(lo, vs0), x0, acc, unused);
      acc = hn::ReorderWidenMulAccumulate(d32, hn::Mul(hi, vs1), x1, acc, unused);
    }
  }
  *summ = sm;
  return hn::GetLane(hn::SumOfLanes(d32, acc));
}

HWY_INLINE int32_t SumsQ6(const BlockQ6_K& w, const BlockQ8_K& a) {
  const D16h d16;
  const D32h d32;
  const DU8h du8;
  const DI8h di8;
  const size_t n = hn::Lanes(d16);
  const auto mask = hn::Set(d16, 15), three = hn::Set(d16, 3), bias = hn::Set(d16, 32);
  auto acc = hn::Zero(d32);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = w.ql + 64 * h;
    const uint8_t* qh = w.qh + 32 * h;
    const int8_t* sc = w.scales + 8 * h;
    const int8_t* aq = a.qs + 128 * h;
    for (size_t off = 0; off < 32; off += n) {
      const int s = static_cast<int>(off / 16);  // sub-block within each quarter
      const auto l0 = hn::BitCast(d16, hn::PromoteTo(hn::RebindToUnsigned<D16h>(), hn::LoadU(du8, ql + off)));
      const auto l1 = hn::BitCast(d16, hn::PromoteTo(hn::RebindToUnsigned<D16h>(), hn::LoadU(du8, ql + 32 + off)));
      const auto hb = hn::BitCast(d16, hn::PromoteTo(hn::RebindToUnsigned<D16h>(), hn::LoadU(du8, qh + off)));
      const auto q0 = hn::Sub(hn::Or(hn::And(l0, mask), hn::ShiftLeft<4>(hn::And(hb, three))), bias);
      const auto q1 = hn::Sub(hn::Or(hn::And(l1, mask), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<2>(hb), three))), bias);
      const auto q2 = hn::Sub(hn::Or(hn::ShiftRight<4>(l0), hn::ShiftLeft<4>(hn::And(hn::ShiftRight<4>(hb), three))), bias);
      const auto q3 = hn::Sub(hn::Or(hn::ShiftRight<4>(l1), hn::ShiftLeft<4>(hn::ShiftRight<6>(hb))), bias);
      auto unused = hn::Zero(d32);
      acc = hn::ReorderWidenMulAccumulate(d32, hn::Mul(q0, hn::Set(d16, sc[s])),
                                          hn::PromoteTo(d16, hn::LoadU(di8, aq + off)), acc, unused);
      acc = hn::ReorderWidenMulAccumulate(d32, hn::Mul(q1, hn::Set(d16, sc[2 + s])),
                                          hn::PromoteTo(d16, hn::LoadU(di8, aq + 32 + off)), acc, unused);
      acc = hn::ReorderWidenMulAccumulate(d32, hn::Mul(q2, hn::Set(d16, sc[4 + s])),
                                          hn::PromoteTo(d16, hn::LoadU(di8, aq + 64 + off)), acc, unused);
      acc = hn::ReorderWidenMulAccumulate(d32, hn::Mul(q3, hn::Set(d16, sc[6 + s])),
                                          hn::PromoteTo(d16, hn::LoadU(di8, aq + 96 + off)), acc, unused);
    }
  }
  return hn::GetLane(hn::SumOfLanes(d32, acc));
}

// One output: weight row `wrow` (blocks super-blocks) against one Q8_K activation row.
float DotRow(DType t, const uint8_t* wrow, const BlockQ8_K* a, int64_t blocks, int32_t* sumi, int32_t* summ) {
  switch (t) {
    case DType::kQ4_K: {
      const auto* w = reinterpret_cast<const BlockQ4_K*>(wrow);
      for (int64_t b = 0; b < blocks; ++b) sumi[b] = SumsAsym<false>(w[b], a[b], &summ[b]);
      return KQuantCombine(&w->d, &w->dmin, sizeof(BlockQ4_K) / 2, a, sumi, summ, blocks);
    }
    case DType::kQ5_K: {
      const auto* w = reinterpret_cast<const BlockQ5_K*>(wrow);
      for (int64_t b = 0; b < blocks; ++b) sumi[b] = SumsAsym<true>(w[b], a[b], &summ[b]);
      return KQuantCombine(&w->d, &w->dmin, sizeof(BlockQ5_K) / 2, a, sumi, summ, blocks);
    }
    default: {
      const auto* w = reinterpret_cast<const BlockQ6_K*>(wrow);
      for (int64_t b = 0; b < blocks; ++b) sumi[b] = SumsQ6(w[b], a[b]);
      return KQuantCombine(&w->d, nullptr, sizeof(BlockQ6_K) / 2, a, sumi, nullptr, blocks);
    }
  }
}

constexpr int64_t kRowTile = 8;  // weight rows reused across all activation rows in prefill

}  // namespace

void KQuantMatMul(const float* a, int64_t m, const MatRef& w, const float* bias, float* c, ThreadPool* pool) {
  SI_CHECK(w.cols % kQK_K == 0) << DTypeName(w.type) << " matmul needs cols % 256 == 0, got " << w.cols;
  const int64_t k = w.cols, n = w.rows, blocks = k / kQK_K;
  thread_local std::vector<BlockQ8_K> aq_buf;
  if (static_cast<int64_t>(aq_buf.size()) < m * blocks) aq_buf.resize(m * blocks);
  BlockQ8_K* aq = aq_buf.data();  // [m, blocks]
  ParallelFor(m > 1 ? pool : nullptr, m, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) QuantizeRowQ8_K(a + i * k, k, aq + i * blocks);
  });
  ParallelFor(pool, n, [&](int64_t begin, int64_t end) {
    thread_local std::vector<int32_t> sumi, summ;  // per-super-block integer sums; no allocation per call
    if (static_cast<int64_t>(sumi.size()) < blocks) {
      sumi.resize(blocks);
      summ.resize(blocks);
    }
    for (int64_t j0 = begin; j0 < end; j0 += kRowTile) {
      const int64_t j1 = std::min(end, j0 + kRowTile);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = j0; j < j1; ++j) {
          const float s = DotRow(w.type, w.row(j), aq + i * blocks, blocks, sumi.data(), summ.data());
          c[i * n + j] = s + (bias ? bias[j] : 0.0f);
        }
      }
    }
  });
}

#endif  // HWY_TARGET != HWY_SCALAR
}  // namespace HWY_NAMESPACE
}  // namespace si
HWY_AFTER_NAMESPACE();
