// Quantization helpers and f16/bf16 conversions: round trips, ggml rules, and exhaustive agreement
// of the software conversions with the hardware ones (F16C, AVX512-BF16) where the CPU has them.
#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/test_util.h"
#include "si/kernels/ops.h"

namespace si {
namespace {

__attribute__((target("f16c"))) float HwF16ToF32(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) uint16_t HwF32ToF16(float f) {
  return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

float Bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(F16, AllHalvesMatchF16C) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "no F16C";
  for (uint32_t h = 0; h < 65536; ++h) {
    const float sw = F16ToF32(static_cast<uint16_t>(h)), hw = HwF16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(hw)) {
      ASSERT_TRUE(std::isnan(sw)) << h;
    } else {
      ASSERT_EQ(Bits(sw), Bits(hw)) << h;
    }
    // Every half round-trips exactly.
    if (!std::isnan(sw)) {
      ASSERT_EQ(F32ToF16(sw), h) << h;
    }
  }
}

TEST(F16, FloatsToHalfMatchF16C) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "no F16C";
  // Every 61st f32 bit pattern (~70 M values, all exponents, both signs) plus the rounding
  // boundaries.
  for (uint64_t u = 0; u <= 0xffffffffull; u += 61) {
    const float f = Bits(static_cast<uint32_t>(u));
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToF16(f), HwF32ToF16(f)) << std::hex << u;
  }
  for (uint32_t h = 0; h < 0x7c00; ++h) {  // midpoints between consecutive halves
    const float lo = F16ToF32(h), hi = F16ToF32(h + 1);
    const float mid = lo + (hi - lo) / 2;
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f), -mid}) {
      ASSERT_EQ(F32ToF16(f), HwF32ToF16(f)) << f;
    }
  }
}

__attribute__((target("avx512bf16,avx512vl"))) uint16_t HwF32ToBF16(float f) {
  __m128 v = _mm_set1_ps(f);
  __m128bh r = _mm_cvtneps_pbh(v);
  uint16_t out[8];
  std::memcpy(out, &r, 8);
  return out[0];
}

TEST(BF16, MatchesAvx512Bf16) {
  if (!__builtin_cpu_supports("avx512bf16")) GTEST_SKIP() << "no AVX512-BF16";
  for (uint64_t u = 0; u <= 0xffffffffull; u += 61) {
    const float f = Bits(static_cast<uint32_t>(u));
    if (std::isnan(f)) continue;
    // vcvtneps2bf16 flushes f32 denormals to zero (DAZ-like); ggml's software rule does not.
    if (std::fpclassify(f) == FP_SUBNORMAL) continue;
    ASSERT_EQ(F32ToBF16(f), HwF32ToBF16(f)) << std::hex << u;
  }
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = BF16ToF32(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(F32ToBF16(f), h);
    }
  }
}

TEST(Quantize, Q8_0ActivationRules) {
  std::vector<float> x = test::RandomFloats(96, 1, -5.0f, 5.0f);
  x[0] = 0.0f;
  for (int j = 32; j < 64; ++j) x[j] = 0.0f;  // an all-zero block: d = 0, q = 0
  std::vector<BlockQ8_0> q(3);
  QuantizeRowQ8_0(x.data(), 96, q.data());
  EXPECT_EQ(q[1].d, 0);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(q[1].qs[j], 0);
  for (int b : {0, 2}) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    EXPECT_EQ(q[b].d, F32ToF16(amax / 127.0f));
    for (int j = 0; j < 32; ++j) {
      EXPECT_EQ(q[b].qs[j], static_cast<int8_t>(std::nearbyint(x[b * 32 + j] * (127.0f / amax))));
    }
  }
}

TEST(Quantize, RoundTripErrorBounds) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    SCOPED_TRACE(DTypeName(t));
    const int64_t n = 4096 + 32;
    std::vector<float> x = test::RandomFloats(n, 5, -2.0f, 2.0f);
    std::vector<uint8_t> buf(DTypeRowBytes(t, n));
    std::vector<float> y(n), z(n);
    QuantizeRow(t, x.data(), n, buf.data());
    DequantizeRow(t, buf.data(), n, y.data());
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
      for (int j = 0; j < 32; ++j) {
        const float xv = x[b * 32 + j], yv = y[b * 32 + j];
        float bound;
        switch (t) {
          case DType::kF32:
            bound = 0;
            break;
          case DType::kF16:
            bound = std::fabs(xv) * 0x1p-11f + 0x1p-25f;
            break;
          case DType::kBF16:
            bound = std::fabs(xv) * 0x1p-8f;
            break;
          case DType::kQ8_0:
            bound = amax / 127.0f * 0.5f * 1.002f + amax * 1e-3f;
            break;  // half step + fp16 d
          default:
            bound = amax / 8.0f * 1.002f + amax * 1e-3f;
            break;  // Q4_0: one step (-amax clamps to -7/8)
        }
        ASSERT_LE(std::fabs(xv - yv), bound) << b << " " << j;
      }
    }
    // Dequantized values are fixed points: quantizing them again gives the same row
    // (f32/f16/bf16/q8_0).
    if (t != DType::kQ4_0) {
      std::vector<uint8_t> buf2(buf.size());
      QuantizeRow(t, y.data(), n, buf2.data());
      DequantizeRow(t, buf2.data(), n, z.data());
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], z[i], std::fabs(y[i]) * 1e-2f) << i;
    }
  }
}

}  // namespace
}  // namespace si
