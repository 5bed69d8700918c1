// Row quantization and dequantization for the block formats (layouts in si/tensor/dtype.h).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "si/base/check.h"
#include "si/kernels/kquants.h"
#include "si/kernels/ops.h"

namespace si {

void QuantizeRowQ8_0(const float* x, int64_t n, BlockQ8_0* out) {
  SI_CHECK(n % kQK8_0 == 0) << n;
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const float* xb = x + b * kQK8_0;
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(xb[j]));
    // ggml's x86 path: id = 127 / amax and round-to-nearest-even (_mm256_round_ps), not roundf.
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    out[b].d = F32ToF16(d);
    for (int j = 0; j < kQK8_0; ++j) out[b].qs[j] = static_cast<int8_t>(std::nearbyint(xb[j] * id));
  }
}

void QuantizeRowInt8PerChannel(const float* x, int64_t n, BlockQ8_0* out) {
  SI_CHECK(n % kQK8_0 == 0) << n;
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const uint16_t dh = F32ToF16(amax / 127.0f);
  const float d = F16ToF32(dh);
  const float id = d > 0 ? 1.0f / d : 0.0f;
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    out[b].d = dh;
    for (int j = 0; j < kQK8_0; ++j) {
      const float v = std::nearbyint(x[b * kQK8_0 + j] * id);
      out[b].qs[j] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
  }
}

void QuantizeRowInt8Act(const float* x, int64_t n, int8_t* q, float* scale) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  // Same formula as the Q8_0 activation (id = 63 / amax, round to nearest even), 63 instead of 127.
  const float id = amax != 0.0f ? 63.0f / amax : 0.0f;
  *scale = amax / 63.0f;
  for (int64_t i = 0; i < n; ++i) q[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
}

bool Q8_0RowsShareScale(const MatRef& w, int64_t* bad_row) {
  SI_CHECK(w.type == DType::kQ8_0) << DTypeName(w.type);
  const int64_t blocks = w.cols / kQK8_0;
  for (int64_t r = 0; r < w.rows; ++r) {
    const auto* b = reinterpret_cast<const BlockQ8_0*>(w.row(r));
    for (int64_t j = 1; j < blocks; ++j) {
      if (b[j].d != b[0].d) {
        *bad_row = r;
        return false;
      }
    }
  }
  return true;
}

// Weight quantization as llama-quantize does it (quantize_row_q8_0_ref: roundf(x / d)).
static void QuantizeWeightRowQ8_0(const float* x, int64_t n, BlockQ8_0* out) {
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const float* xb = x + b * kQK8_0;
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = F32ToF16(d);
    for (int j = 0; j < kQK8_0; ++j) out[b].qs[j] = static_cast<int8_t>(std::roundf(xb[j] * id));
  }
}

void QuantizeRowQ4_0(const float* x, int64_t n, BlockQ4_0* out) {
  SI_CHECK(n % kQK4_0 == 0) << n;
  for (int64_t b = 0; b < n / kQK4_0; ++b) {
    const float* xb = x + b * kQK4_0;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK4_0; ++j) {
      if (amax < std::fabs(xb[j])) {
        amax = std::fabs(xb[j]);
        max = xb[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    out[b].d = F32ToF16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const uint8_t q0 = std::min<int8_t>(15, static_cast<int8_t>(xb[j] * id + 8.5f));
      const uint8_t q1 = std::min<int8_t>(15, static_cast<int8_t>(xb[j + kQK4_0 / 2] * id + 8.5f));
      out[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void QuantizeRow(DType t, const float* x, int64_t n, void* out) {
  switch (t) {
    case DType::kF32:
      std::memcpy(out, x, n * sizeof(float));
      return;
    case DType::kF16: {
      auto* o = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) o[i] = F32ToF16(x[i]);
      return;
    }
    case DType::kBF16: {
      auto* o = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) o[i] = F32ToBF16(x[i]);
      return;
    }
    case DType::kQ8_0:
      QuantizeWeightRowQ8_0(x, n, static_cast<BlockQ8_0*>(out));
      return;
    case DType::kQ4_0:
      QuantizeRowQ4_0(x, n, static_cast<BlockQ4_0*>(out));
      return;
    default:
      SI_CHECK(QuantizeRowKQuant(t, x, n, out)) << "QuantizeRow: unsupported dtype " << DTypeName(t);
  }
}

void DequantizeRow(DType t, const void* row, int64_t n, float* out) {
  switch (t) {
    case DType::kF32:
      std::memcpy(out, row, n * sizeof(float));
      return;
    case DType::kF16: {
      const auto* r = static_cast<const uint16_t*>(row);
      for (int64_t i = 0; i < n; ++i) out[i] = F16ToF32(r[i]);
      return;
    }
    case DType::kBF16: {
      const auto* r = static_cast<const uint16_t*>(row);
      for (int64_t i = 0; i < n; ++i) out[i] = BF16ToF32(r[i]);
      return;
    }
    case DType::kQ8_0: {
      const auto* b = static_cast<const BlockQ8_0*>(row);
      for (int64_t i = 0; i < n / kQK8_0; ++i) {
        const float d = F16ToF32(b[i].d);
        for (int j = 0; j < kQK8_0; ++j) out[i * kQK8_0 + j] = d * b[i].qs[j];
      }
      return;
    }
    case DType::kQ4_0: {
      const auto* b = static_cast<const BlockQ4_0*>(row);
      for (int64_t i = 0; i < n / kQK4_0; ++i) {
        const float d = F16ToF32(b[i].d);
        for (int j = 0; j < kQK4_0 / 2; ++j) {
          out[i * kQK4_0 + j] = d * ((b[i].qs[j] & 0x0f) - 8);
          out[i * kQK4_0 + j + kQK4_0 / 2] = d * ((b[i].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    default:
      SI_CHECK(DequantizeRowKQuant(t, row, n, out)) << "DequantizeRow: unsupported dtype " << DTypeName(t);
  }
}

}  // namespace si
