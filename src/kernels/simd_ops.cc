// Highway versions of the element-wise, normalization, softmax, rope and attention kernels,
// compiled once per SIMD target (foreach_target). Every op is deterministic per row: the result for
// a row (or a (token, head) pair in attention) depends only on that row's inputs, never on the
// batch or thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "si/base/check.h"
#include "si/kernels/ops.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/simd_ops.cc"
// foreach_target.h must come first, then highway.h, then the per-target headers.
// clang-format off
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "kernels/simd_kernels-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace si {
namespace HWY_NAMESPACE {
#if HWY_TARGET != HWY_SCALAR
namespace hn = hwy::HWY_NAMESPACE;
namespace {

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
using DD = hn::Repartition<double, DF>;  // half as many f64 lanes
using VD = hn::Vec<DD>;

// acc += widen(v)^2 or widen(v), in f64 (the reference and ggml sum norms in double).
HWY_INLINE void AccumulateF64(VF v, VD& lo, VD& hi, bool square) {
  const DD dd;
  const hn::Half<DF> dh;
  const VD a = hn::PromoteTo(dd, hn::LowerHalf(dh, v));
  const VD b = hn::PromoteTo(dd, hn::UpperHalf(dh, v));
  if (square) {
    lo = hn::MulAdd(a, a, lo);
    hi = hn::MulAdd(b, b, hi);
  } else {
    lo = hn::Add(lo, a);
    hi = hn::Add(hi, b);
  }
}

HWY_INLINE double ReduceF64(VD lo, VD hi) {
  const DD dd;
  return hn::GetLane(hn::SumOfLanes(dd, hn::Add(lo, hi)));
}

// ---------------------------------------------------------------------------------------------------------
// Erf-based GELU. erfc(z) for z >= 0 by the Chebyshev fit of Numerical Recipes (erfcc, fractional
// error < 1.2e-7 in exact arithmetic; in f32 the error of the exp argument adds ~6e-8 * z^2
// relative, i.e. < 6e-7 for |x| < 4.5, where GELU is not yet 0 or x to f32 precision). Measured max
// error vs a double-precision GELU: kernels_ops_test (Ops.GeluErfAccuracyVsDouble) prints it;
// 3.8e-7 absolute on [-10, 10], 1.8e-6 relative on [-5, 10] (2.2e-6 on SSE4, which has no FMA).
//   gelu(x) = 0.5 x (1 + erf(x / sqrt2))
//           = x (1 - 0.5 erfc(z))  for x >= 0,   0.5 x erfc(z)  for x < 0,   z = |x| / sqrt2.
HWY_INLINE VF GeluErfVec(DF df, VF x) {
  const VF z = hn::Mul(hn::Abs(x), hn::Set(df, 0.70710678118654752f));
  const VF t = hn::Div(hn::Set(df, 1.0f), hn::MulAdd(hn::Set(df, 0.5f), z, hn::Set(df, 1.0f)));
  VF p = hn::Set(df, 0.17087277f);
  p = hn::MulAdd(p, t, hn::Set(df, -0.82215223f));
  p = hn::MulAdd(p, t, hn::Set(df, 1.48851587f));
  p = hn::MulAdd(p, t, hn::Set(df, -1.13520398f));
  p = hn::MulAdd(p, t, hn::Set(df, 0.27886807f));
  p = hn::MulAdd(p, t, hn::Set(df, -0.18628806f));
  p = hn::MulAdd(p, t, hn::Set(df, 0.09678418f));
  p = hn::MulAdd(p, t, hn::Set(df, 0.37409196f));
  p = hn::MulAdd(p, t, hn::Set(df, 1.00002368f));
  p = hn::MulAdd(p, t, hn::Set(df, -1.26551223f));
  const VF arg = hn::Sub(p, hn::Mul(z, z));
  const VF erfc = hn::Mul(t, hn::Exp(df, arg));
  const VF half = hn::Set(df, 0.5f);
  const VF pos = hn::Mul(x, hn::NegMulAdd(half, erfc, hn::Set(df, 1.0f)));
  const VF neg = hn::Mul(hn::Mul(half, x), erfc);
  return hn::IfThenElse(hn::Lt(x, hn::Zero(df)), neg, pos);
}

HWY_INLINE VF GeluTanhVec(DF df, VF v) {
  const VF inner = hn::Mul(hn::Mul(hn::Set(df, 0.79788456080286535587989211986876f), v),
                           hn::MulAdd(hn::Mul(hn::Set(df, 0.044715f), v), v, hn::Set(df, 1.0f)));
  return hn::Mul(hn::Mul(hn::Set(df, 0.5f), v), hn::Add(hn::Set(df, 1.0f), hn::Tanh(df, inner)));
}

// silu(g) * u. exp(-g) overflows for g < -88: the result is then -0 * u as in the reference.
HWY_INLINE VF SiluMulVec(DF df, VF g, VF u) {
  const VF e = hn::Exp(df, hn::Min(hn::Neg(g), hn::Set(df, 88.0f)));
  const VF s = hn::Div(g, hn::Add(hn::Set(df, 1.0f), e));
  return hn::IfThenElse(hn::Lt(g, hn::Set(df, -88.0f)), hn::Mul(hn::Set(df, -0.0f), u),
                        hn::Mul(s, u));
}

// Applies f to x[0, n) in place or into out, the last partial vector through a padded buffer.
template <class F>
HWY_INLINE void Map1(const float* x, int64_t n, float* out, const F& f) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  const size_t un = static_cast<size_t>(n);
  for (; i + lanes <= un; i += lanes) hn::StoreU(f(df, hn::LoadU(df, x + i)), df, out + i);
  if (i < un) {
    HWY_ALIGN float buf[hn::MaxLanes(DF())] = {};
    std::memcpy(buf, x + i, (un - i) * sizeof(float));
    hn::Store(f(df, hn::Load(df, buf)), df, buf);
    std::memcpy(out + i, buf, (un - i) * sizeof(float));
  }
}

template <class F>
HWY_INLINE void Map2(const float* x, const float* y, int64_t n, float* out, const F& f) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  const size_t un = static_cast<size_t>(n);
  for (; i + lanes <= un; i += lanes) {
    hn::StoreU(f(df, hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, out + i);
  }
  if (i < un) {
    HWY_ALIGN float bx[hn::MaxLanes(DF())] = {};
    HWY_ALIGN float by[hn::MaxLanes(DF())] = {};
    std::memcpy(bx, x + i, (un - i) * sizeof(float));
    std::memcpy(by, y + i, (un - i) * sizeof(float));
    hn::Store(f(df, hn::Load(df, bx), hn::Load(df, by)), df, bx);
    std::memcpy(out + i, bx, (un - i) * sizeof(float));
  }
}

}  // namespace

void RmsNorm(const float* x, const float* gain, int64_t rows, int64_t dim, float eps, float* out) {
  const DF df;
  const DD dd;
  const size_t lanes = hn::Lanes(df);
  const size_t n = static_cast<size_t>(dim);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    VD lo = hn::Zero(dd), hi = hn::Zero(dd);
    size_t i = 0;
    for (; i + lanes <= n; i += lanes) AccumulateF64(hn::LoadU(df, xr + i), lo, hi, true);
    double sum = ReduceF64(lo, hi);
    for (; i < n; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const float scale = 1.0f / std::sqrt(static_cast<float>(sum / dim) + eps);
    const VF vs = hn::Set(df, scale);
    Map2(xr, gain, dim, o, [&](DF, VF xv, VF g) { return hn::Mul(hn::Mul(xv, vs), g); });
  }
}

void LayerNorm(const float* x, const float* gain, const float* bias, int64_t rows, int64_t dim,
               float eps, float* out) {
  const DF df;
  const DD dd;
  const size_t lanes = hn::Lanes(df);
  const size_t n = static_cast<size_t>(dim);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    VD lo = hn::Zero(dd), hi = hn::Zero(dd);
    size_t i = 0;
    for (; i + lanes <= n; i += lanes) AccumulateF64(hn::LoadU(df, xr + i), lo, hi, false);
    double sum = ReduceF64(lo, hi);
    for (; i < n; ++i) sum += xr[i];
    const float mean = static_cast<float>(sum / dim);
    const VF vmean = hn::Set(df, mean);
    lo = hn::Zero(dd);
    hi = hn::Zero(dd);
    for (i = 0; i + lanes <= n; i += lanes)
      AccumulateF64(hn::Sub(hn::LoadU(df, xr + i), vmean), lo, hi, true);
    double var = ReduceF64(lo, hi);
    for (; i < n; ++i) var += static_cast<double>(xr[i] - mean) * (xr[i] - mean);
    const float scale = 1.0f / std::sqrt(static_cast<float>(var / dim) + eps);
    const VF vs = hn::Set(df, scale);
    if (bias) {
      // out = (x - mean) * scale * gain + bias; gain and bias streamed through Map2 in two passes
      // would alias `out`, so do it in one loop with a scalar tail.
      for (i = 0; i + lanes <= n; i += lanes) {
        const VF v =
            hn::Mul(hn::Mul(hn::Sub(hn::LoadU(df, xr + i), vmean), vs), hn::LoadU(df, gain + i));
        hn::StoreU(hn::Add(v, hn::LoadU(df, bias + i)), df, o + i);
      }
      for (; i < n; ++i) o[i] = (xr[i] - mean) * scale * gain[i] + bias[i];
    } else {
      Map2(xr, gain, dim, o,
           [&](DF, VF xv, VF g) { return hn::Mul(hn::Mul(hn::Sub(xv, vmean), vs), g); });
    }
  }
}

void GeluTanh(float* x, int64_t n) {
  Map1(x, n, x, [](DF df, VF v) { return GeluTanhVec(df, v); });
}

void GeluErf(float* x, int64_t n) {
  Map1(x, n, x, [](DF df, VF v) { return GeluErfVec(df, v); });
}

void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  Map2(gate, up, n, out, [](DF df, VF g, VF u) { return SiluMulVec(df, g, u); });
}

void Add(float* x, const float* y, int64_t n) {
  Map2(x, y, n, x, [](DF, VF a, VF b) { return hn::Add(a, b); });
}

void Softmax(float* x, int64_t n) {
  if (n <= 0) return;
  const DF df;
  const DD dd;
  const size_t lanes = hn::Lanes(df);
  const size_t un = static_cast<size_t>(n);
  VF vmax = hn::Set(df, -INFINITY);
  size_t i = 0;
  for (; i + lanes <= un; i += lanes) vmax = hn::Max(vmax, hn::LoadU(df, x + i));
  float max = hn::GetLane(hn::MaxOfLanes(df, vmax));
  for (; i < un; ++i) max = std::max(max, x[i]);
  const VF vm = hn::Set(df, max);
  // exp(x - max) (hwy Exp returns 0 below -104, so -inf scores give 0), summed in f64.
  VD lo = hn::Zero(dd), hi = hn::Zero(dd);
  for (i = 0; i + lanes <= un; i += lanes) {
    const VF e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vm));
    hn::StoreU(e, df, x + i);
    AccumulateF64(e, lo, hi, false);
  }
  double sum = ReduceF64(lo, hi);
  if (i < un) {
    HWY_ALIGN float buf[hn::MaxLanes(DF())];
    for (size_t j = 0; j < lanes; ++j) buf[j] = -INFINITY;
    std::memcpy(buf, x + i, (un - i) * sizeof(float));
    hn::Store(hn::Exp(df, hn::Sub(hn::Load(df, buf), vm)), df, buf);
    for (size_t j = 0; i + j < un; ++j) {
      x[i + j] = buf[j];
      sum += buf[j];
    }
  }
  const float inv = static_cast<float>(1.0 / sum);
  Map1(x, n, x, [&](DF d, VF v) { return hn::Mul(v, hn::Set(d, inv)); });
}

void Rope(float* x, int64_t num_tokens, int64_t row_stride, int64_t num_heads, int64_t head_dim,
          int64_t rope_dims, const int32_t* pos, float base, bool neox) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const int64_t half = rope_dims / 2;
  // Per token: cos/sin of theta_i = pos * theta_scale^i, computed exactly as the reference does
  // (repeated f32 multiplication, then cosf/sinf), then shared by all heads. Interleaved (normal)
  // mode uses lane-expanded tables: cs[2i] = cs[2i+1] = cos, sn[2i] = -sin, sn[2i+1] = +sin, so
  // that out = x * cs + swap_pairs(x) * sn.
  thread_local std::vector<float> cs, sn;
  cs.resize(rope_dims + lanes);
  sn.resize(rope_dims + lanes);
  const float theta_scale = std::pow(base, -2.0f / static_cast<float>(rope_dims));
  for (int64_t t = 0; t < num_tokens; ++t) {
    float theta = static_cast<float>(pos[t]);
    for (int64_t i = 0; i < half; ++i) {
      if (i > 0) theta *= theta_scale;
      const float c = std::cos(theta), s = std::sin(theta);
      if (neox) {
        cs[i] = c;
        sn[i] = s;
      } else {
        cs[2 * i] = cs[2 * i + 1] = c;
        sn[2 * i] = -s;
        sn[2 * i + 1] = s;
      }
    }
    for (int64_t h = 0; h < num_heads; ++h) {
      float* v = x + t * row_stride + h * head_dim;
      size_t i = 0;
      if (neox) {
        float* v1 = v + half;
        for (; i + lanes <= static_cast<size_t>(half); i += lanes) {
          const VF x0 = hn::LoadU(df, v + i), x1 = hn::LoadU(df, v1 + i);
          const VF c = hn::LoadU(df, cs.data() + i), s = hn::LoadU(df, sn.data() + i);
          hn::StoreU(hn::Sub(hn::Mul(x0, c), hn::Mul(x1, s)), df, v + i);
          hn::StoreU(hn::Add(hn::Mul(x0, s), hn::Mul(x1, c)), df, v1 + i);
        }
        for (; i < static_cast<size_t>(half); ++i) {
          const float x0 = v[i], x1 = v1[i];
          v[i] = x0 * cs[i] - x1 * sn[i];
          v1[i] = x0 * sn[i] + x1 * cs[i];
        }
      } else {
        for (; i + lanes <= static_cast<size_t>(2 * half); i += lanes) {
          const VF xv = hn::LoadU(df, v + i);
          const VF sw = hn::Shuffle2301(xv);  // (x1, x0, x3, x2, ...)
          hn::StoreU(hn::Add(hn::Mul(xv, hn::LoadU(df, cs.data() + i)),
                             hn::Mul(sw, hn::LoadU(df, sn.data() + i))),
                     df, v + i);
        }
        for (; i < static_cast<size_t>(2 * half); i += 2) {
          const float x0 = v[i], x1 = v[i + 1];
          v[i] = x0 * cs[i] + x1 * sn[i];
          v[i + 1] = x1 * cs[i + 1] + x0 * sn[i + 1];
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Attention: online-softmax (flash-attention style) over key tiles of kKeyTile positions, so no
// more than one tile of scores per query is ever materialised. A task is (block of TokenBlock()
// query tokens, kv head, group of query heads sharing that kv head): each K/V row of a tile is
// loaded once from memory and reused from L1 by all queries of the task. Determinism: each (token,
// head) output is computed by one task, over tiles at absolute positions [j0, j0 + kKeyTile), keys
// ascending, with the same ops - whatever the task shape, the batch or the thread.
//   per tile:  s_j = (q . k_j) * scale,  m' = max(m, max_j s_j),  c = exp(m - m'),
//              l = l * c + sum_j exp(s_j - m'),  o = o * c + sum_j exp(s_j - m') v_j,  m = m'
//   at the end: out = o / l.

// kt[i * kt_stride + j] = k[j * k_stride + i] for keys j < keys, 0 for keys <= j < padded; i < d.
// The K tile is transposed once per (task, tile) so that scores need no horizontal reductions; on
// AVX2 in 8 x 8 register blocks (scalar, it cost ~20-30% of prefill attention time on the 110M
// shape).
HWY_INLINE void TransposeKeys(const float* HWY_RESTRICT k, int64_t k_stride, int64_t keys,
                              int64_t padded, size_t d, float* HWY_RESTRICT kt, size_t kt_stride) {
  int64_t j = 0;
  size_t i_vec = 0;
#if HWY_TARGET <= HWY_AVX2  // AVX3 too: 256-bit blocks, since its padded tiles are 16 lanes wide
  i_vec = d / 8 * 8;
  for (; j + 8 <= keys; j += 8) {
    for (size_t i = 0; i < i_vec; i += 8) {
      __m256 r[8];
      for (int u = 0; u < 8; ++u) r[u] = _mm256_loadu_ps(k + (j + u) * k_stride + i);
      const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
      const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
      const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
      const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
      const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
      const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
      const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
      const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
      const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
      const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
      const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
      const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
      float* o = kt + i * kt_stride + j;
      _mm256_storeu_ps(o + 0 * kt_stride, _mm256_permute2f128_ps(s0, s4, 0x20));
      _mm256_storeu_ps(o + 1 * kt_stride, _mm256_permute2f128_ps(s1, s5, 0x20));
      _mm256_storeu_ps(o + 2 * kt_stride, _mm256_permute2f128_ps(s2, s6, 0x20));
      _mm256_storeu_ps(o + 3 * kt_stride, _mm256_permute2f128_ps(s3, s7, 0x20));
      _mm256_storeu_ps(o + 4 * kt_stride, _mm256_permute2f128_ps(s0, s4, 0x31));
      _mm256_storeu_ps(o + 5 * kt_stride, _mm256_permute2f128_ps(s1, s5, 0x31));
      _mm256_storeu_ps(o + 6 * kt_stride, _mm256_permute2f128_ps(s2, s6, 0x31));
      _mm256_storeu_ps(o + 7 * kt_stride, _mm256_permute2f128_ps(s3, s7, 0x31));
    }
    for (size_t i = i_vec; i < d; ++i) {
      for (int u = 0; u < 8; ++u) kt[i * kt_stride + j + u] = k[(j + u) * k_stride + i];
    }
  }
#endif
  (void)i_vec;
  for (; j < padded; ++j) {
    const float* kr = k + j * k_stride;
    if (j < keys) {
      for (size_t i = 0; i < d; ++i) kt[i * kt_stride + j] = kr[i];
    } else {
      for (size_t i = 0; i < d; ++i) kt[i * kt_stride + j] = 0.0f;
    }
  }
}

// Scores and p.v of kQ queries that see the same keys of a tile (kQ = 1: one query alone).
// ScoreQueries: query r's scores against kG groups of lanes keys of a transposed K tile,
//   out[r * out_stride + j] = sum_i q[r][i] * kt[i * stride + j],
// one FMA chain per (query, key) over the head dimension in order (no horizontal reduction), so a
// score depends only on that query and key.
// PvQueries: o[r][0, kU * lanes) = o[r] * corr[r] + sum_j p[r * p_stride + j] * v[j * stride + .],
// keys ascending: kQ x kU independent FMA chains instead of one chain of nk dependent FMAs per
// vector (latency-bound: 64 keys x 4 cycles).
// Register tiles of kQ queries x kG key groups / kU output vectors: each K or V vector loaded feeds
// kQ FMAs (with kQ = 1, one load per FMA held prefill attention at ~0.25 of the FMA peak). Every
// element goes through the same MulAdd sequence whatever kQ, kG, kU, so a query gives the same bits
// grouped or alone.
template <int kQ, int kG>
HWY_INLINE void ScoreQueries(const float* const* q, size_t d, const float* HWY_RESTRICT kt,
                             size_t stride, float* HWY_RESTRICT out, size_t out_stride) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  VF acc[kQ][kG];
  for (int r = 0; r < kQ; ++r)
    for (int g = 0; g < kG; ++g) acc[r][g] = hn::Zero(df);
  for (size_t i = 0; i < d; ++i) {
    const float* row = kt + i * stride;
    VF kv[kG];
    for (int g = 0; g < kG; ++g) kv[g] = hn::Load(df, row + g * lanes);
    for (int r = 0; r < kQ; ++r) {
      const VF qi = hn::Set(df, q[r][i]);
      for (int g = 0; g < kG; ++g) acc[r][g] = hn::MulAdd(qi, kv[g], acc[r][g]);
    }
  }
  for (int r = 0; r < kQ; ++r)
    for (int g = 0; g < kG; ++g) hn::Store(acc[r][g], df, out + r * out_stride + g * lanes);
}

// nk[r]: the keys query r sees (a diagonal tile's queries see different counts); keys below the
// smallest count run unmasked, the rest only for the queries that see them.
template <int kQ, int kU>
HWY_INLINE void PvQueries(float* const* o, const float* corr, const float* HWY_RESTRICT p,
                          size_t p_stride, const int64_t* nk, const float* HWY_RESTRICT v,
                          int64_t stride) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  VF acc[kQ][kU];
  int64_t nk_min = nk[0], nk_max = nk[0];
  for (int r = 0; r < kQ; ++r) {
    nk_min = std::min(nk_min, nk[r]);
    nk_max = std::max(nk_max, nk[r]);
    for (int u = 0; u < kU; ++u)
      acc[r][u] = hn::Mul(hn::LoadU(df, o[r] + u * lanes), hn::Set(df, corr[r]));
  }
  for (int64_t j = 0; j < nk_min; ++j) {
    const float* vj = v + j * stride;
    VF vv[kU];
    for (int u = 0; u < kU; ++u) vv[u] = hn::LoadU(df, vj + u * lanes);
    for (int r = 0; r < kQ; ++r) {
      const VF pj = hn::Set(df, p[r * p_stride + j]);
      for (int u = 0; u < kU; ++u) acc[r][u] = hn::MulAdd(pj, vv[u], acc[r][u]);
    }
  }
  for (int64_t j = nk_min; j < nk_max; ++j) {
    const float* vj = v + j * stride;
    VF vv[kU];
    for (int u = 0; u < kU; ++u) vv[u] = hn::LoadU(df, vj + u * lanes);
    for (int r = 0; r < kQ; ++r) {
      if (j >= nk[r]) continue;
      const VF pj = hn::Set(df, p[r * p_stride + j]);
      for (int u = 0; u < kU; ++u) acc[r][u] = hn::MulAdd(pj, vv[u], acc[r][u]);
    }
  }
  for (int r = 0; r < kQ; ++r)
    for (int u = 0; u < kU; ++u) hn::StoreU(acc[r][u], df, o[r] + u * lanes);
}

// 4 queries x 3 vectors: 12 accumulators + 3 loaded vectors + 1 broadcast = 16 registers (AVX2).
// AVX3 (32 registers): 4 x 4, so that a 64-key tile of scores and a 64-wide head are one register
// tile each instead of a 4 x 3 tile and a latency-bound 4 x 1 tail.
#if HWY_TARGET <= HWY_AVX3
constexpr int kQueryGroup = 4, kQueryTile = 4;
#else
constexpr int kQueryGroup = 4, kQueryTile = 3;
#endif

constexpr int64_t kKeyTile = 64;
// Query tokens per task: 64 when a task holds few query heads (MHA, small GQA groups), 32 for
// larger groups, so that a task's queries (tokens x heads, each a head_dim accumulator) stay within
// about 256. Each task transposes every K tile it sees, so longer blocks transpose less: 110M shape
// (MHA), kernel_bench attention/prefill512, 5 alternating rounds, median GFLOP/s 41.5 -> 46.4 (1
// thread), 79.9 -> 88.5 (2), with this rule 40.7 -> 45.6 and 80.1 -> 91.7; the 1.1B shape (8 query
// heads per kv head) was mixed with 64 (50.1 -> 45.0, 84.6 -> 91.3) and keeps 32.
HWY_INLINE int64_t TokenBlock(int64_t group) { return group > 4 ? 32 : 64; }

struct QueryState {
  float m, l;
};

struct TileQuery {
  int64_t qi;      // index in the task's query state
  const float* q;  // [head_dim]
  int64_t nk;      // keys of the tile it sees
};

// One query's scores p[0, nk) of a tile (groups vectors, padding lanes past nk) -> p_j = exp(s_j -
// m'), with s_j = p_j * scale; updates the running max and sum, returns exp(m - m').
HWY_INLINE float SoftmaxTile(DF df, float scale, float* HWY_RESTRICT p, int64_t nk, int64_t groups,
                             QueryState* st) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const VF vscale = hn::Set(df, scale);
  VF vmax = hn::Set(df, -INFINITY);
  for (int64_t j = 0; j < groups * lanes; j += lanes) {
    VF sj = hn::Mul(hn::Load(df, p + j), vscale);
    if (j + lanes > nk) {
      const auto valid = hn::FirstN(df, static_cast<size_t>(nk - j));
      sj = hn::IfThenElse(valid, sj, hn::Set(df, -INFINITY));
    }
    hn::Store(sj, df, p + j);
    vmax = hn::Max(vmax, sj);
  }
  const float tile_max = hn::GetLane(hn::MaxOfLanes(df, vmax));
  const float m_new = std::max(st->m, tile_max);
  const float corr = std::exp(st->m - m_new);  // exp(-inf) = 0 on the first tile
  // p_j = exp(s_j - m_new), vectorised over the tile (padding lanes are -inf -> 0). Sum of the
  // tile's p_j: lane-wise over the groups, then the lanes (padding lanes add exp(-inf) = 0).
  const VF vm = hn::Set(df, m_new);
  VF vsum = hn::Zero(df);
  for (int64_t j = 0; j < nk; j += lanes) {
    const VF pj = hn::Exp(df, hn::Sub(hn::Load(df, p + j), vm));
    hn::Store(pj, df, p + j);
    vsum = hn::Add(vsum, pj);
  }
  const float psum = hn::GetLane(hn::SumOfLanes(df, vsum));
  st->l = st->l * corr + psum;
  st->m = m_new;
  return corr;
}

void Attention(const AttentionArgs& a, ThreadPool* pool) {
  SI_CHECK(a.num_kv_heads > 0 && a.num_heads % a.num_kv_heads == 0)
      << a.num_heads << " " << a.num_kv_heads;
  const int64_t group = a.num_heads / a.num_kv_heads;
  const size_t d = static_cast<size_t>(a.head_dim);
  const int64_t token_block = TokenBlock(group);
  const int64_t token_blocks = (a.num_tokens + token_block - 1) / token_block;
  const int threads = pool ? pool->num_threads() : 1;
  // Split a kv head's query heads over tasks only when there are too few tasks to feed the threads
  // (MQA decode); this costs re-reading K/V per task, never changes results.
  const int64_t heads_per_task = token_blocks * a.num_kv_heads >= 2 * threads ? group : 1;
  const int64_t head_chunks = group / heads_per_task;
  const int64_t num_tasks = token_blocks * a.num_kv_heads * head_chunks;

  auto run_task = [&](int64_t task) {
    const DF df;
    const size_t lanes = hn::Lanes(df);
    const int64_t hc = task % head_chunks;
    const int64_t kvh = (task / head_chunks) % a.num_kv_heads;
    // Last token block first: causal tasks grow with the block, and the pool hands tasks out in
    // order, so the long ones start early instead of being the tail one thread runs alone.
    const int64_t tb = token_blocks - 1 - task / (head_chunks * a.num_kv_heads);
    const int64_t t0 = tb * token_block, t1 = std::min(a.num_tokens, t0 + token_block);
    const int64_t h0 = kvh * group + hc * heads_per_task;
    const int64_t nq = (t1 - t0) * heads_per_task;
    thread_local std::vector<float> o_buf;
    thread_local std::vector<QueryState> st_buf;
    if (o_buf.size() < static_cast<size_t>(nq) * d) o_buf.resize(nq * d);
    if (st_buf.size() < static_cast<size_t>(nq)) st_buf.resize(nq);
    float* o_all = o_buf.data();
    QueryState* st = st_buf.data();
    std::fill(o_all, o_all + nq * d, 0.0f);
    for (int64_t q = 0; q < nq; ++q) st[q] = {-INFINITY, 0.0f};
    auto limit_of = [&](int64_t t) {
      return a.causal ? std::min<int64_t>(a.kv_len, static_cast<int64_t>(a.q_pos[t]) + 1)
                      : a.kv_len;
    };
    int64_t max_limit = 0;
    for (int64_t t = t0; t < t1; ++t) max_limit = std::max(max_limit, limit_of(t));
    HWY_ALIGN float p[kQueryGroup * kKeyTile];  // [queries of a group, keys of the tile]
    thread_local std::vector<TileQuery> list;
    // The tile's keys of this kv head, transposed: kt[i * kt_stride + j] = k_{j0 + j}[i], zero past
    // the last key. Built once per (task, tile) and read by every query of the task.
    constexpr size_t kt_stride = kKeyTile;
    thread_local hwy::AlignedFreeUniquePtr<float[]> kt_buf;
    thread_local size_t kt_size = 0;
    if (kt_size < d * kt_stride) {
      kt_buf = hwy::AllocateAligned<float>(d * kt_stride);
      kt_size = d * kt_stride;
    }
    float* kt = kt_buf.get();
    for (int64_t j0 = 0; j0 < max_limit; j0 += kKeyTile) {
      const int64_t tile_keys = std::min(kKeyTile, max_limit - j0);
      const int64_t padded = (tile_keys + static_cast<int64_t>(lanes) - 1) /
                             static_cast<int64_t>(lanes) * static_cast<int64_t>(lanes);
      TransposeKeys(a.k + j0 * a.kv_stride + kvh * a.head_dim, a.kv_stride, tile_keys, padded, d,
                    kt, kt_stride);
      // The task's queries that see keys of this tile, in (token, head) order, with their key
      // count: kQueryGroup at a time through the grouped kernels, the last few one by one.
      list.clear();
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t j1 = std::min(j0 + kKeyTile, limit_of(t));
        if (j1 <= j0) continue;
        for (int64_t hh = 0; hh < heads_per_task; ++hh) {
          const int64_t qi = (t - t0) * heads_per_task + hh;
          list.push_back({qi, a.q + (t * a.num_heads + h0 + hh) * a.head_dim, j1 - j0});
        }
      }
      const float* v0 = a.v + j0 * a.kv_stride + kvh * a.head_dim;
      for (size_t x = 0; x < list.size();) {
        // kQueryGroup queries at a time whatever their key counts: below the causal diagonal
        // they are equal; in the diagonal tile each token sees one key more than the one before,
        // and the group's scores run to the largest count (the extra scores are never read: the
        // softmax masks them, PvQueries skips them), which costs a few keys instead of running
        // that tile one query at a time (~a quarter of 110M prefill attention before).
        const bool grouped = d % lanes == 0 && x + kQueryGroup <= list.size();
        const int nq_here = grouped ? kQueryGroup : 1;
        int64_t nk[kQueryGroup];
        int64_t nk_max = 0;
        for (int r = 0; r < nq_here; ++r) {
          nk[r] = list[x + r].nk;
          nk_max = std::max(nk_max, nk[r]);
        }
        auto groups_of = [&](int64_t keys) {
          return (keys + static_cast<int64_t>(lanes) - 1) / static_cast<int64_t>(lanes);
        };
        // s_j = (q . k_j) for the tile's keys, lanes keys per vector.
        const int64_t groups = groups_of(nk_max);
        int64_t g = 0;
        if (grouped) {
          const float* qs[kQueryGroup];
          for (int r = 0; r < kQueryGroup; ++r) qs[r] = list[x + r].q;
          for (; g + kQueryTile <= groups; g += kQueryTile) {
            ScoreQueries<kQueryGroup, kQueryTile>(qs, d, kt + g * lanes, kt_stride, p + g * lanes,
                                                  kKeyTile);
          }
          if (g + 2 <= groups) {
            ScoreQueries<kQueryGroup, 2>(qs, d, kt + g * lanes, kt_stride, p + g * lanes, kKeyTile);
            g += 2;
          }
          for (; g < groups; ++g)
            ScoreQueries<kQueryGroup, 1>(qs, d, kt + g * lanes, kt_stride, p + g * lanes, kKeyTile);
        } else {
          const float* qv[1] = {list[x].q};
          for (; g + 8 <= groups; g += 8)
            ScoreQueries<1, 8>(qv, d, kt + g * lanes, kt_stride, p + g * lanes, kKeyTile);
          for (; g + 4 <= groups; g += 4)
            ScoreQueries<1, 4>(qv, d, kt + g * lanes, kt_stride, p + g * lanes, kKeyTile);
          for (; g < groups; ++g)
            ScoreQueries<1, 1>(qv, d, kt + g * lanes, kt_stride, p + g * lanes, kKeyTile);
        }
        float corr[kQueryGroup];
        float* o[kQueryGroup];
        for (int r = 0; r < nq_here; ++r) {
          corr[r] = SoftmaxTile(df, a.scale, p + r * kKeyTile, nk[r], groups_of(nk[r]),
                                &st[list[x + r].qi]);
          o[r] = o_all + list[x + r].qi * d;
        }
        // o = o * corr + sum_j p_j v_j, one output vector at a time, keys ascending.
        size_t i = 0;
        if (grouped) {
          for (; i + kQueryTile * lanes <= d; i += kQueryTile * lanes) {
            float* oi[kQueryGroup];
            for (int r = 0; r < kQueryGroup; ++r) oi[r] = o[r] + i;
            PvQueries<kQueryGroup, kQueryTile>(oi, corr, p, kKeyTile, nk, v0 + i, a.kv_stride);
          }
          if (i + 2 * lanes <= d) {
            float* oi[kQueryGroup];
            for (int r = 0; r < kQueryGroup; ++r) oi[r] = o[r] + i;
            PvQueries<kQueryGroup, 2>(oi, corr, p, kKeyTile, nk, v0 + i, a.kv_stride);
            i += 2 * lanes;
          }
          for (; i < d; i += lanes) {  // d % lanes == 0 here
            float* oi[kQueryGroup];
            for (int r = 0; r < kQueryGroup; ++r) oi[r] = o[r] + i;
            PvQueries<kQueryGroup, 1>(oi, corr, p, kKeyTile, nk, v0 + i, a.kv_stride);
          }
        } else {
          for (; i + 8 * lanes <= d; i += 8 * lanes) {
            float* oi[1] = {o[0] + i};
            PvQueries<1, 8>(oi, corr, p, kKeyTile, nk, v0 + i, a.kv_stride);
          }
          for (; i + 4 * lanes <= d; i += 4 * lanes) {
            float* oi[1] = {o[0] + i};
            PvQueries<1, 4>(oi, corr, p, kKeyTile, nk, v0 + i, a.kv_stride);
          }
          for (; i + lanes <= d; i += lanes) {
            float* oi[1] = {o[0] + i};
            PvQueries<1, 1>(oi, corr, p, kKeyTile, nk, v0 + i, a.kv_stride);
          }
          for (; i < d; ++i) {
            float acc = o[0][i] * corr[0];
            for (int64_t j = 0; j < nk[0]; ++j) acc += p[j] * v0[j * a.kv_stride + i];
            o[0][i] = acc;
          }
        }
        x += nq_here;
      }
    }
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t hh = 0; hh < heads_per_task; ++hh) {
        const int64_t qi = (t - t0) * heads_per_task + hh;
        float* out = a.out + (t * a.num_heads + h0 + hh) * a.head_dim;
        const float inv = st[qi].l > 0.0f ? 1.0f / st[qi].l : 0.0f;  // no visible key: zeros
        const float* o = o_all + qi * d;
        for (size_t i = 0; i < d; ++i) out[i] = o[i] * inv;
      }
    }
  };
  if (pool == nullptr || threads <= 1 || num_tasks <= 1) {
    for (int64_t task = 0; task < num_tasks; ++task) run_task(task);
  } else {
    pool->Run(num_tasks, [&](int64_t task, int) { run_task(task); });
  }
}

#endif  // HWY_TARGET != HWY_SCALAR
}  // namespace HWY_NAMESPACE
}  // namespace si
HWY_AFTER_NAMESPACE();
