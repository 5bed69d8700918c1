// Scalar reference kernels: the readable specification of every op and the oracle the SIMD versions are
// tested against. Plain loops, f32 accumulation in index order, no threads (the pool argument is ignored).
#include <algorithm>
#include <cmath>
#include <vector>

#include "si/base/check.h"
#include "si/kernels/kquants.h"
#include "si/kernels/ops.h"

namespace si {
namespace {

// Rounds the activation row the way ggml does before a matmul with weights of type t.
void RoundActivation(DType t, const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = t == DType::kF16 ? F16ToF32(F32ToF16(x[i])) : t == DType::kBF16 ? BF16ToF32(F32ToBF16(x[i])) : x[i];
  }
}

float DotQ8_0(const BlockQ8_0* w, const BlockQ8_0* a, int64_t blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < blocks; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQK8_0; ++j) isum += static_cast<int32_t>(w[b].qs[j]) * a[b].qs[j];
    sum += static_cast<float>(isum) * (F16ToF32(w[b].d) * F16ToF32(a[b].d));
  }
  return sum;
}

float DotQ4_0(const BlockQ4_0* w, const BlockQ8_0* a, int64_t blocks) {
  float sum = 0.0f;
  for (int64_t b = 0; b < blocks; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      isum += ((w[b].qs[j] & 0x0f) - 8) * a[b].qs[j];
      isum += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + kQK4_0 / 2];
    }
    sum += static_cast<float>(isum) * (F16ToF32(w[b].d) * F16ToF32(a[b].d));
  }
  return sum;
}

// Per-channel int8 weights (w.int8_rows): one 7-bit scale per activation row, one exact integer dot per
// output, then (s_a * d_w) * isum + bias in two roundings (the volatile keeps a compiler from fusing them
// into one FMA, which the SIMD kernels do not do either).
void RefMatMulInt8Rows(const float* a, int64_t m, const MatRef& w, const float* bias, float* c) {
  const int64_t k = w.cols, n = w.rows;
  std::vector<int8_t> q(k);
  for (int64_t i = 0; i < m; ++i) {
    float sa;
    QuantizeRowInt8Act(a + i * k, k, q.data(), &sa);
    for (int64_t j = 0; j < n; ++j) {
      const auto* b = reinterpret_cast<const BlockQ8_0*>(w.row(j));
      int32_t isum = 0;
      for (int64_t l = 0; l < k; ++l) isum += static_cast<int32_t>(q[l]) * b[l / kQK8_0].qs[l % kQK8_0];
      volatile float y = (sa * F16ToF32(b[0].d)) * static_cast<float>(isum);
      c[i * n + j] = bias ? y + bias[j] : y;
    }
  }
}

void RefMatMul(const float* a, int64_t m, const MatRef& w, const float* bias, float* c, ThreadPool* pool) {
  SI_CHECK(!w.panels16) << "matmul: panel matrices are made by and for the AVX2 table";
  if (IsKQuant(w.type)) return RefMatMulKQuant(a, m, w, bias, c, pool);
  if (w.type == DType::kQ8_0 && w.int8_rows) return RefMatMulInt8Rows(a, m, w, bias, c);
  const int64_t k = w.cols, n = w.rows;
  std::vector<float> arow(k), wrow(k);
  std::vector<BlockQ8_0> aq(k / kQK8_0 + 1);
  for (int64_t i = 0; i < m; ++i) {
    const float* ai = a + i * k;
    const bool quantized = w.type == DType::kQ8_0 || w.type == DType::kQ4_0;
    if (quantized) {
      QuantizeRowQ8_0(ai, k, aq.data());
    } else {
      RoundActivation(w.type, ai, k, arow.data());
    }
    for (int64_t j = 0; j < n; ++j) {
      float sum;
      if (w.type == DType::kQ8_0) {
        sum = DotQ8_0(reinterpret_cast<const BlockQ8_0*>(w.row(j)), aq.data(), k / kQK8_0);
      } else if (w.type == DType::kQ4_0) {
        sum = DotQ4_0(reinterpret_cast<const BlockQ4_0*>(w.row(j)), aq.data(), k / kQK4_0);
      } else {
        DequantizeRow(w.type, w.row(j), k, wrow.data());
        sum = 0.0f;
        for (int64_t l = 0; l < k; ++l) sum += arow[l] * wrow[l];
      }
      c[i * n + j] = sum + (bias ? bias[j] : 0.0f);
    }
  }
}

void RefMatMulMulti(const float* a, int64_t m, int count, const MatRef* w, const float* const* bias,
                    float* const* c, ThreadPool* pool) {
  for (int i = 0; i < count; ++i) RefMatMul(a, m, w[i], bias[i], c[i], pool);
}

void RefGetRows(const MatRef& w, const int32_t* ids, int64_t n, float* out) {
  SI_CHECK(!w.panels16) << "get_rows: panel matrices hold no rows";
  for (int64_t i = 0; i < n; ++i) DequantizeRow(w.type, w.row(ids[i]), w.cols, out + i * w.cols);
}

void RefRmsNorm(const float* x, const float* gain, int64_t rows, int64_t dim, float eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    double sum = 0.0;  // ggml sums squares in double (ggml_float)
    for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const float scale = 1.0f / std::sqrt(static_cast<float>(sum / dim) + eps);
    for (int64_t i = 0; i < dim; ++i) o[i] = xr[i] * scale * gain[i];
  }
}

void RefLayerNorm(const float* x, const float* gain, const float* bias, int64_t rows, int64_t dim, float eps,
                  float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    double sum = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum += xr[i];
    const float mean = static_cast<float>(sum / dim);
    double var = 0.0;
    for (int64_t i = 0; i < dim; ++i) var += static_cast<double>(xr[i] - mean) * (xr[i] - mean);
    const float scale = 1.0f / std::sqrt(static_cast<float>(var / dim) + eps);
    for (int64_t i = 0; i < dim; ++i) o[i] = (xr[i] - mean) * scale * gain[i] + (bias ? bias[i] : 0.0f);
  }
}

void RefGeluTanh(float* x, int64_t n) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * v * (1.0f + 0.044715f * v * v)));
  }
}

void RefGeluErf(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

void RefSiluMul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void RefAdd(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void RefSoftmax(float* x, int64_t n) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; ++i) max = std::max(max, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void RefRope(float* x, int64_t num_tokens, int64_t row_stride, int64_t num_heads, int64_t head_dim,
             int64_t rope_dims, const int32_t* pos, float base, bool neox) {
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t h = 0; h < num_heads; ++h) {
      float* v = x + t * row_stride + h * head_dim;
      for (int64_t i = 0; i < rope_dims / 2; ++i) {
        // theta = pos * base^(-2i / rope_dims), computed as ggml does: repeated multiplication by
        // theta_scale = base^(-2 / rope_dims) in f32.
        const float theta_scale = std::pow(base, -2.0f / static_cast<float>(rope_dims));
        float theta = static_cast<float>(pos[t]);
        for (int64_t s = 0; s < i; ++s) theta *= theta_scale;
        const float c = std::cos(theta), s = std::sin(theta);
        const int64_t i0 = neox ? i : 2 * i;
        const int64_t i1 = neox ? i + rope_dims / 2 : 2 * i + 1;
        const float x0 = v[i0], x1 = v[i1];
        v[i0] = x0 * c - x1 * s;
        v[i1] = x0 * s + x1 * c;
      }
    }
  }
}

void RefAttention(const AttentionArgs& a, ThreadPool*) {
  const int64_t group = a.num_heads / a.num_kv_heads;
  std::vector<float> scores(a.kv_len);
  for (int64_t t = 0; t < a.num_tokens; ++t) {
    const int64_t limit = a.causal ? std::min<int64_t>(a.kv_len, a.q_pos[t] + 1) : a.kv_len;
    for (int64_t h = 0; h < a.num_heads; ++h) {
      const float* q = a.q + (t * a.num_heads + h) * a.head_dim;
      const int64_t kvh = h / group;
      for (int64_t j = 0; j < limit; ++j) {
        const float* k = a.k + j * a.kv_stride + kvh * a.head_dim;
        float dot = 0.0f;
        for (int64_t d = 0; d < a.head_dim; ++d) dot += q[d] * k[d];
        scores[j] = dot * a.scale;
      }
      RefSoftmax(scores.data(), limit);
      float* o = a.out + (t * a.num_heads + h) * a.head_dim;
      for (int64_t d = 0; d < a.head_dim; ++d) o[d] = 0.0f;
      for (int64_t j = 0; j < limit; ++j) {
        const float* v = a.v + j * a.kv_stride + kvh * a.head_dim;
        for (int64_t d = 0; d < a.head_dim; ++d) o[d] += scores[j] * v[d];
      }
    }
  }
}

}  // namespace

const Kernels& ReferenceKernels() {
  static const Kernels k = {
      "reference", RefMatMul, RefMatMulMulti, RefGetRows, RefRmsNorm, RefLayerNorm, RefGeluTanh, RefGeluErf,
      RefSiluMul,  RefAdd,    RefSoftmax, RefRope,    RefAttention,
      nullptr,     nullptr,  // panel_bytes, to_panels: the oracle runs every matrix as stored
  };
  return k;
}

}  // namespace si
