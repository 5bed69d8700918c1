// k-quants: formats, quantizers, scalar dot products and the reference matmul. See kquants.h.
#include "si/kernels/kquants.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "si/base/check.h"

namespace si {
namespace {

constexpr int kSubQ4 = 32;  // Q4_K / Q5_K sub-block
constexpr int kSubQ6 = 16;  // Q6_K sub-block

// Round half to even without a libm call (the quantizers call this ~60 times per weight): adding 1.5 * 2^23
// leaves the rounded integer in the low mantissa bits. Valid for |x| < 2^22, far beyond any quant level.
inline int RoundInt(float x) {
  float f = x + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &f, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// Least-squares fit of x ~ scale * q + offset with q = clamp(round((x - lo) * iscale), 0, qmax), over a grid
// of 21 candidate steps around (hi - lo) / qmax; offset <= 0 because the format stores -offset as a
// non-negative min. Returns the scale (>= 0) and -offset in *neg_offset.
float FitAsymmetric(const float* x, int n, int qmax, float* neg_offset) {
  float lo = *std::min_element(x, x + n), hi = *std::max_element(x, x + n);
  lo = std::min(lo, 0.0f);
  if (!(hi > lo)) {
    *neg_offset = -lo;
    return 0.0f;
  }
  float best_scale = (hi - lo) / qmax, best_offset = lo;
  auto error = [&](float s, float o, float is) {
    float e = 0;
    for (int i = 0; i < n; ++i) {
      const int q = std::clamp(RoundInt((x[i] - lo) * is), 0, qmax);
      const float d = s * q + o - x[i];
      e += d * d;
    }
    return e;
  };
  float best_err = error(best_scale, best_offset, qmax / (hi - lo));
  int q[kQK_K];  // n <= 32
  for (int step = -10; step <= 10; ++step) {
    const float iscale = (qmax + 0.1f * step) / (hi - lo);
    float sq = 0, sqq = 0, sx = 0, sqx = 0;  // exact enough: n <= 32, q <= 31
    for (int i = 0; i < n; ++i) {
      q[i] = std::clamp(RoundInt((x[i] - lo) * iscale), 0, qmax);
      sq += q[i];
      sqq += static_cast<float>(q[i] * q[i]);
      sx += x[i];
      sqx += q[i] * x[i];
    }
    const float det = n * sqq - sq * sq;
    if (det <= 0) continue;
    float s = (n * sqx - sq * sx) / det;
    float o = (sx - s * sq) / n;
    if (o > 0) {  // the format cannot add a positive offset
      o = 0;
      s = sqq > 0 ? sqx / sqq : 0;
    }
    if (s <= 0) continue;
    float e = 0;  // error of the refit: the q chosen with `iscale`, reconstructed with s, o
    for (int i = 0; i < n; ++i) {
      const float d = s * q[i] + o - x[i];
      e += d * d;
    }
    if (e < best_err) {
      best_err = e;
      best_scale = s;
      best_offset = o;
    }
  }
  *neg_offset = -best_offset;
  return best_scale;
}

// Symmetric fit x ~ scale * q, q in [-32, 31] (Q6_K): the value of largest magnitude maps to -32 (the larger
// side of the range), then a grid of candidate steps each refit by least squares.
float FitSymmetric6(const float* x, int n) {
  float amax = 0, mx = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      mx = x[i];
    }
  }
  if (amax == 0) return 0.0f;
  float best_scale = -mx / 32, best_err = std::numeric_limits<float>::infinity();
  int q[kQK_K];  // n <= 16
  for (int step = -9; step <= 9; ++step) {
    const float iscale = (-32 + 0.1f * step) / mx;
    float sqq = 0, sqx = 0;
    for (int i = 0; i < n; ++i) {
      q[i] = std::clamp(RoundInt(x[i] * iscale), -32, 31);
      sqq += static_cast<float>(q[i] * q[i]);
      sqx += q[i] * x[i];
    }
    if (sqq <= 0) continue;
    const float s = sqx / sqq;
    float e = 0;
    for (int i = 0; i < n; ++i) {
      const float d = s * q[i] - x[i];
      e += d * d;
    }
    if (e < best_err) {
      best_err = e;
      best_scale = s;
    }
  }
  return best_scale;
}

// Q4_K / Q5_K super-block: fits the eight sub-blocks, stores the 6-bit scales and mins, and returns the final
// quants L[256] in [0, qmax] against the scales actually stored.
void QuantizeSuperBlockAsym(const float* x, int qmax, uint16_t* d_out, uint16_t* dmin_out, uint8_t* scales,
                            uint8_t* L) {
  float sub_scale[8], sub_min[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    sub_scale[j] = FitAsymmetric(x + kSubQ4 * j, kSubQ4, qmax, &sub_min[j]);
    max_scale = std::max(max_scale, sub_scale[j]);
    max_min = std::max(max_min, sub_min[j]);
  }
  *d_out = F32ToF16(max_scale / 63);
  *dmin_out = F32ToF16(max_min / 63);
  const float d = F16ToF32(*d_out), dmin = F16ToF32(*dmin_out);
  uint8_t sc[8], mn[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = d > 0 ? static_cast<uint8_t>(std::clamp(RoundInt(sub_scale[j] / d), 0, 63)) : 0;
    mn[j] = dmin > 0 ? static_cast<uint8_t>(std::clamp(RoundInt(sub_min[j] / dmin), 0, 63)) : 0;
  }
  PackKScaleMin(sc, mn, scales);
  for (int j = 0; j < 8; ++j) {
    const float ds = d * sc[j], dm = dmin * mn[j];
    for (int l = 0; l < kSubQ4; ++l) {
      const int i = kSubQ4 * j + l;
      L[i] = ds > 0 ? static_cast<uint8_t>(std::clamp(RoundInt((x[i] + dm) / ds), 0, qmax)) : 0;
    }
  }
}

}  // namespace

void UnpackKScaleMin(const uint8_t* s, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

void PackKScaleMin(const uint8_t sc[8], const uint8_t m[8], uint8_t* s) {
  std::memset(s, 0, kKScaleBytes);
  for (int j = 0; j < 8; ++j) {
    SI_DCHECK(sc[j] < 64 && m[j] < 64);
    if (j < 4) {
      s[j] |= sc[j];
      s[j + 4] |= m[j];
    } else {
      s[j + 4] = static_cast<uint8_t>((sc[j] & 0x0f) | ((m[j] & 0x0f) << 4));
      s[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      s[j] |= static_cast<uint8_t>((m[j] >> 4) << 6);
    }
  }
}

namespace {
// Q4_K (kFive = false) and Q5_K: the same fit; Q5_K also stores each value's fifth bit in qh.
template <bool kFive, typename Block>
void QuantizeAsym(const float* x, int64_t n, Block* out) {
  SI_CHECK(n % kQK_K == 0) << n;
  uint8_t L[kQK_K];
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    Block& y = out[b];
    QuantizeSuperBlockAsym(x, kFive ? 31 : 15, &y.d, &y.dmin, y.scales, L);
    if constexpr (kFive) std::memset(y.qh, 0, sizeof(y.qh));
    for (int p = 0; p < 4; ++p) {  // pair p: sub-blocks 2p (low nibbles) and 2p + 1 (high nibbles)
      for (int l = 0; l < 32; ++l) {
        const int lo = L[64 * p + l], hi = L[64 * p + 32 + l];
        y.qs[32 * p + l] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
        if constexpr (kFive) {
          y.qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * p)) | ((hi >> 4) << (2 * p + 1)));
        }
      }
    }
  }
}
}  // namespace

void QuantizeRowQ4_K(const float* x, int64_t n, BlockQ4_K* out) { QuantizeAsym<false>(x, n, out); }
void QuantizeRowQ5_K(const float* x, int64_t n, BlockQ5_K* out) { QuantizeAsym<true>(x, n, out); }

void QuantizeRowQ6_K(const float* x, int64_t n, BlockQ6_K* out) {
  SI_CHECK(n % kQK_K == 0) << n;
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    BlockQ6_K& y = out[b];
    std::memset(&y, 0, sizeof(y));
    float sub[kQK_K / kSubQ6];
    float max_scale = 0, amax = 0;
    for (int s = 0; s < kQK_K / kSubQ6; ++s) {
      sub[s] = FitSymmetric6(x + kSubQ6 * s, kSubQ6);
      if (std::fabs(sub[s]) > amax) {
        amax = std::fabs(sub[s]);
        max_scale = sub[s];
      }
    }
    uint8_t L[kQK_K];
    std::fill(L, L + kQK_K, 32);  // q = 0
    if (amax > 0) {
      // Sub-block scales as int8 relative to d; the largest maps to -128 (the larger side of int8).
      const float iscale = -128.0f / max_scale;
      y.d = F32ToF16(1.0f / iscale);
      const float d = F16ToF32(y.d);
      for (int s = 0; s < kQK_K / kSubQ6; ++s) {
        y.scales[s] = static_cast<int8_t>(std::clamp(RoundInt(iscale * sub[s]), -128, 127));
        const float ds = d * y.scales[s];
        if (ds == 0) continue;
        for (int l = 0; l < kSubQ6; ++l) {
          const int i = kSubQ6 * s + l;
          L[i] = static_cast<uint8_t>(std::clamp(RoundInt(x[i] / ds), -32, 31) + 32);
        }
      }
    }
    for (int h = 0; h < 2; ++h) {  // halves of 128
      const uint8_t* Lh = L + 128 * h;
      uint8_t* ql = y.ql + 64 * h;
      uint8_t* qh = y.qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((Lh[l] & 15) | ((Lh[l + 64] & 15) << 4));
        ql[l + 32] = static_cast<uint8_t>((Lh[l + 32] & 15) | ((Lh[l + 96] & 15) << 4));
        qh[l] = static_cast<uint8_t>((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                     ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

void QuantizeRowQ8_K(const float* x, int64_t n, BlockQ8_K* out) {
  SI_CHECK(n % kQK_K == 0) << n;
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    BlockQ8_K& y = out[b];
    // As ggml does, so that logits match llama.cpp's to the last bit: the value of largest magnitude maps to
    // -127 (d is negative when it is positive); rounding half to even.
    float amax = 0, max = 0;
    for (int i = 0; i < kQK_K; ++i) {
      if (std::fabs(x[i]) > amax) {
        amax = std::fabs(x[i]);
        max = x[i];
      }
    }
    if (amax == 0) {
      std::memset(&y, 0, sizeof(y));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int i = 0; i < kQK_K; ++i) y.qs[i] = static_cast<int8_t>(std::min(127, RoundInt(iscale * x[i])));
    for (int s = 0; s < kQK_K / 16; ++s) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y.qs[16 * s + l];
      y.bsums[s] = static_cast<int16_t>(sum);
    }
    y.d = 1 / iscale;
  }
}

namespace {
// Q4_K (kFive = false) and Q5_K share everything but the fifth bit.
template <bool kFive, typename Block>
void DequantizeAsym(const Block* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQK_K; ++i, out += kQK_K) {
    const float d = F16ToF32(b[i].d), dmin = F16ToF32(b[i].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      UnpackKScaleMin(b[i].scales, j, &sc, &m);
      const float ds = d * sc, dm = dmin * m;
      const uint8_t* q = b[i].qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) {
        int v = (q[l] >> shift) & 15;
        if constexpr (kFive) v |= ((b[i].qh[l] >> j) & 1) << 4;
        out[32 * j + l] = ds * v - dm;
      }
    }
  }
}
}  // namespace

void DequantizeRowQ4_K(const BlockQ4_K* b, int64_t n, float* out) { DequantizeAsym<false>(b, n, out); }
void DequantizeRowQ5_K(const BlockQ5_K* b, int64_t n, float* out) { DequantizeAsym<true>(b, n, out); }

void DequantizeRowQ6_K(const BlockQ6_K* b, int64_t n, float* out) {
  for (int64_t i = 0; i < n / kQK_K; ++i, out += kQK_K) {
    const float d = F16ToF32(b[i].d);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b[i].ql + 64 * h;
      const uint8_t* qh = b[i].qh + 32 * h;
      const int8_t* sc = b[i].scales + 8 * h;
      float* o = out + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int q0 = ((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q1 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        o[l] = d * sc[l / 16] * q0;
        o[l + 32] = d * sc[2 + l / 16] * q1;
        o[l + 64] = d * sc[4 + l / 16] * q2;
        o[l + 96] = d * sc[6 + l / 16] * q3;
      }
    }
  }
}

bool QuantizeRowKQuant(DType t, const float* x, int64_t n, void* out) {
  switch (t) {
    case DType::kQ4_K: QuantizeRowQ4_K(x, n, static_cast<BlockQ4_K*>(out)); return true;
    case DType::kQ5_K: QuantizeRowQ5_K(x, n, static_cast<BlockQ5_K*>(out)); return true;
    case DType::kQ6_K: QuantizeRowQ6_K(x, n, static_cast<BlockQ6_K*>(out)); return true;
    default: return false;
  }
}

bool DequantizeRowKQuant(DType t, const void* row, int64_t n, float* out) {
  switch (t) {
    case DType::kQ4_K: DequantizeRowQ4_K(static_cast<const BlockQ4_K*>(row), n, out); return true;
    case DType::kQ5_K: DequantizeRowQ5_K(static_cast<const BlockQ5_K*>(row), n, out); return true;
    case DType::kQ6_K: DequantizeRowQ6_K(static_cast<const BlockQ6_K*>(row), n, out); return true;
    default: return false;
  }
}

// The float part of every k-quant dot product: one function, compiled once, so that the SIMD kernels (which
// compute the same integer sums) produce the same bits as this reference.
float KQuantCombine(const uint16_t* d, const uint16_t* dmin, int64_t stride, const BlockQ8_K* a,
                    const int32_t* sumi, const int32_t* summ, int64_t blocks) {
  float sum = 0.0f;
  auto half = [](const uint16_t* p) {  // rows need not be 2-byte aligned
    uint16_t h;
    std::memcpy(&h, p, 2);
    return F16ToF32(h);
  };
  for (int64_t b = 0; b < blocks; ++b) {
    const float da = a[b].d;
    const float dd = half(d + b * stride) * da;
    float term = dd * static_cast<float>(sumi[b]);
    if (dmin != nullptr) {
      const float dm = half(dmin + b * stride) * da;
      const float mins = dm * static_cast<float>(summ[b]);
      term = term - mins;
    }
    sum += term;
  }
  return sum;
}

namespace {

// Integer sums of one Q4_K/Q5_K super-block against Q8_K: sumi = sum_j sc_j * dot_j, summ = sum_j m_j * asum_j.
template <bool kFive, typename Block>
void SumsAsym(const Block& w, const BlockQ8_K& a, int32_t* sumi, int32_t* summ) {
  int32_t si = 0, sm = 0;
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    UnpackKScaleMin(w.scales, j, &sc, &m);
    const uint8_t* q = w.qs + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    int32_t dot = 0;
    for (int l = 0; l < 32; ++l) {
      int v = (q[l] >> shift) & 15;
      if constexpr (kFive) v |= ((w.qh[l] >> j) & 1) << 4;
      dot += v * a.qs[32 * j + l];
    }
    si += sc * dot;
    sm += m * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
  }
  *sumi = si;
  *summ = sm;
}

int32_t SumsQ6(const BlockQ6_K& w, const BlockQ8_K& a) {
  int32_t si = 0;
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = w.ql + 64 * h;
    const uint8_t* qh = w.qh + 32 * h;
    const int8_t* sc = w.scales + 8 * h;
    const int8_t* aq = a.qs + 128 * h;
    int32_t dot[8] = {};
    for (int l = 0; l < 32; ++l) {
      const int q0 = ((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q1 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      dot[l / 16] += q0 * aq[l];
      dot[2 + l / 16] += q1 * aq[l + 32];
      dot[4 + l / 16] += q2 * aq[l + 64];
      dot[6 + l / 16] += q3 * aq[l + 96];
    }
    for (int s = 0; s < 8; ++s) si += sc[s] * dot[s];
  }
  return si;
}

}  // namespace

float DotQ4_K(const BlockQ4_K* w, const BlockQ8_K* a, int64_t blocks) {
  std::vector<int32_t> sumi(blocks), summ(blocks);
  for (int64_t b = 0; b < blocks; ++b) SumsAsym<false>(w[b], a[b], &sumi[b], &summ[b]);
  return KQuantCombine(&w->d, &w->dmin, sizeof(BlockQ4_K) / 2, a, sumi.data(), summ.data(), blocks);
}

float DotQ5_K(const BlockQ5_K* w, const BlockQ8_K* a, int64_t blocks) {
  std::vector<int32_t> sumi(blocks), summ(blocks);
  for (int64_t b = 0; b < blocks; ++b) SumsAsym<true>(w[b], a[b], &sumi[b], &summ[b]);
  return KQuantCombine(&w->d, &w->dmin, sizeof(BlockQ5_K) / 2, a, sumi.data(), summ.data(), blocks);
}

float DotQ6_K(const BlockQ6_K* w, const BlockQ8_K* a, int64_t blocks) {
  std::vector<int32_t> sumi(blocks);
  for (int64_t b = 0; b < blocks; ++b) sumi[b] = SumsQ6(w[b], a[b]);
  return KQuantCombine(&w->d, nullptr, sizeof(BlockQ6_K) / 2, a, sumi.data(), nullptr, blocks);
}

void RefMatMulKQuant(const float* a, int64_t m, const MatRef& w, const float* bias, float* c, ThreadPool*) {
  SI_CHECK(IsKQuant(w.type) && w.cols % kQK_K == 0) << DTypeName(w.type) << " " << w.cols;
  const int64_t k = w.cols, n = w.rows, blocks = k / kQK_K;
  std::vector<BlockQ8_K> aq(blocks);
  for (int64_t i = 0; i < m; ++i) {
    QuantizeRowQ8_K(a + i * k, k, aq.data());
    for (int64_t j = 0; j < n; ++j) {
      float sum;
      switch (w.type) {
        case DType::kQ4_K: sum = DotQ4_K(reinterpret_cast<const BlockQ4_K*>(w.row(j)), aq.data(), blocks); break;
        case DType::kQ5_K: sum = DotQ5_K(reinterpret_cast<const BlockQ5_K*>(w.row(j)), aq.data(), blocks); break;
        default: sum = DotQ6_K(reinterpret_cast<const BlockQ6_K*>(w.row(j)), aq.data(), blocks); break;
      }
      c[i * n + j] = sum + (bias ? bias[j] : 0.0f);
    }
  }
}

}  // namespace si
