// k-quants: the block formats checked byte by byte against hand-built blocks (no golden file contains
// k-quants, so the expected values are worked out from the format's definition, not from our dequantizer),
// the quantizers' error against the format's resolution, the dot products against float arithmetic on the
// dequantized values, and every SIMD target's matmul bit-identical to the scalar reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/test_util.h"
#include "si/base/thread_pool.h"
#include "si/kernels/kquants.h"
#include "si/kernels/ops.h"

namespace si {
namespace {

using test::RandomFloats;

constexpr uint16_t kHalfOne = 0x3C00;   // 1.0
constexpr uint16_t kHalfHalf = 0x3800;  // 0.5
constexpr uint16_t kHalfQuarter = 0x3400;  // 0.25

TEST(KQuantFormat, BlockSizes) {
  EXPECT_EQ(DTypeRowBytes(DType::kQ4_K, 512), 2 * 144);
  EXPECT_EQ(DTypeRowBytes(DType::kQ5_K, 256), 176);
  EXPECT_EQ(DTypeRowBytes(DType::kQ6_K, 768), 3 * 210);
  EXPECT_TRUE(IsSupportedDType(DType::kQ4_K));
  EXPECT_EQ(ParseDType("q4_k").value(), DType::kQ4_K);
  EXPECT_EQ(ParseDType("Q6_K").value(), DType::kQ6_K);
}

TEST(KQuantFormat, ScaleMinPackingRoundTrips) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 200; ++trial) {
    uint8_t sc[8], m[8], packed[kKScaleBytes];
    for (int j = 0; j < 8; ++j) {
      sc[j] = rng() % 64;
      m[j] = rng() % 64;
    }
    PackKScaleMin(sc, m, packed);
    for (int j = 0; j < 8; ++j) {
      uint8_t s2, m2;
      UnpackKScaleMin(packed, j, &s2, &m2);
      EXPECT_EQ(s2, sc[j]);
      EXPECT_EQ(m2, m[j]);
    }
  }
}

// Scale bytes of a Q4_K block set literally: sub-block 0 reads the low 6 bits of bytes 0 (scale) and 4 (min);
// sub-block 4 reads byte 8's nibbles with the top two bits of bytes 0 and 4.
TEST(KQuantFormat, Q4_KHandBuiltBlock) {
  BlockQ4_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = kHalfOne;
  b.dmin = kHalfHalf;
  b.scales[0] = 0x40 | 3;  // scale0 = 3, top bits 01 -> scale4 bit 4
  b.scales[4] = 0x80 | 5;  // min0 = 5, top bits 10 -> min4 bits 5
  b.scales[8] = 0x72;      // scale4 low nibble 2, min4 low nibble 7
  // Element 0 (sub-block 0) = low nibble of qs[0]; element 32 (sub-block 1) = its high nibble;
  // element 128 + 5 (sub-block 4) = low nibble of qs[64 + 5].
  b.qs[0] = 0x9A;  // elem0 q = 10, elem32 q = 9
  b.qs[69] = 0x0F;  // elem133 q = 15
  float out[kQK_K];
  DequantizeRowQ4_K(&b, kQK_K, out);
  // scale4 = 2 | (1 << 4) = 18; min4 = 7 | (2 << 4) = 39. Sub-block 1 has scale 0 and min 0.
  EXPECT_EQ(out[0], 1.0f * 3 * 10 - 0.5f * 5);
  EXPECT_EQ(out[1], -0.5f * 5);
  EXPECT_EQ(out[32], 0.0f);
  EXPECT_EQ(out[133], 1.0f * 18 * 15 - 0.5f * 39);
  EXPECT_EQ(out[134], -0.5f * 39);
}

TEST(KQuantFormat, Q5_KHandBuiltBlock) {
  BlockQ5_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = kHalfHalf;
  b.dmin = kHalfOne;
  b.scales[1] = 4;  // sub-block 1 scale
  b.scales[5] = 1;  // sub-block 1 min
  b.scales[3] = 2;  // sub-block 3 scale (min 0)
  b.qs[7] = 0x30;   // element 32 + 7 (sub-block 1, high nibble of pair 0) = 3
  b.qh[7] = 0x02;   // ... plus 16 from bit 1 (sub-block 1)
  b.qs[32 + 4] = 0x50;  // element 64 + 32 + 4 (sub-block 3, high nibble of pair 1) = 5, no high bit
  b.qh[4] = 0x08;   // but bit 3 of qh[4] belongs to sub-block 3, element 96 + 4: +16
  float out[kQK_K];
  DequantizeRowQ5_K(&b, kQK_K, out);
  EXPECT_EQ(out[39], 0.5f * 4 * 19 - 1.0f);
  EXPECT_EQ(out[32], -1.0f);
  EXPECT_EQ(out[100], 0.5f * 2 * 21);
  EXPECT_EQ(out[7], 0.0f);
}

TEST(KQuantFormat, Q6_KHandBuiltBlock) {
  BlockQ6_K b;
  std::memset(&b, 0, sizeof(b));
  b.d = kHalfQuarter;
  for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<int8_t>(s - 8);
  // Element 0: low nibble of ql[0], bits 0-1 of qh[0]. Element 64 + 17: high nibble of ql[17], bits 4-5 of
  // qh[17]. Element 128 + 32 + 3 (second half): low nibble of ql[64 + 32 + 3], bits 2-3 of qh[32 + 3].
  b.ql[0] = 0x0F;         // q(0) low = 15
  b.qh[0] = 0x02;         // q(0) high = 2 -> q = 47 - 32 = 15
  b.ql[17] = 0x40;        // q(81) low = 4
  b.qh[17] = 0x30;        // q(81) high = 3 -> q = 52 - 32 = 20
  b.ql[99] = 0x01;        // q(163) low = 1, high 0 -> q = 1 - 32 = -31
  float out[kQK_K];
  DequantizeRowQ6_K(&b, kQK_K, out);
  // Sub-block of element e is e / 16: 0 -> scale -8; 81 -> 5 -> -3; 163 -> 10 -> 2.
  EXPECT_EQ(out[0], 0.25f * -8 * 15);
  EXPECT_EQ(out[1], 0.25f * -8 * -32);  // all-zero bits mean q = -32
  EXPECT_EQ(out[81], 0.25f * -3 * 20);
  EXPECT_EQ(out[163], 0.25f * 2 * -31);
}

// Quantization error of random Gaussian rows, relative to their RMS. The bound is what each format's step
// allows: about (range / levels) / sqrt(12) per element, with the 6-bit sub-block scales adding a little.
struct ErrCase {
  DType type;
  float max_rel_rms;
};
class KQuantRoundTrip : public testing::TestWithParam<ErrCase> {};

TEST_P(KQuantRoundTrip, ErrorWithinResolution) {
  const ErrCase c = GetParam();
  const int64_t n = 4096;
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.0f, 0.02f);
  std::vector<float> x(n), y(n);
  for (auto& v : x) v = g(rng);
  std::vector<uint8_t> q(DTypeRowBytes(c.type, n));
  QuantizeRow(c.type, x.data(), n, q.data());
  DequantizeRow(c.type, q.data(), n, y.data());
  double err = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    err += (x[i] - y[i]) * (x[i] - y[i]);
    ref += x[i] * x[i];
  }
  const double rel = std::sqrt(err / ref);
  std::printf("%s relative rms error %.4f\n", std::string(DTypeName(c.type)).c_str(), rel);
  EXPECT_LT(rel, c.max_rel_rms);
  // Coarser formats must not beat finer ones by accident of the bound: at least some error exists.
  EXPECT_GT(rel, 0.001);
}

INSTANTIATE_TEST_SUITE_P(All, KQuantRoundTrip,
                         testing::Values(ErrCase{DType::kQ4_K, 0.10f}, ErrCase{DType::kQ5_K, 0.05f},
                                         ErrCase{DType::kQ6_K, 0.025f}));

TEST(KQuantRoundTrip, ZerosAndConstantsAreExact) {
  for (DType t : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    std::vector<float> x(512, 0.0f), y(512, 1.0f);
    std::vector<uint8_t> q(DTypeRowBytes(t, 512));
    QuantizeRow(t, x.data(), 512, q.data());
    DequantizeRow(t, q.data(), 512, y.data());
    for (float v : y) ASSERT_EQ(v, 0.0f) << DTypeName(t);
  }
}

TEST(KQuantQ8_K, ValuesAndBlockSums) {
  auto x = RandomFloats(512, 3, -2.0f, 2.0f);
  std::vector<BlockQ8_K> q(2);
  QuantizeRowQ8_K(x.data(), 512, q.data());
  for (int b = 0; b < 2; ++b) {
    const float step = std::fabs(q[b].d);
    for (int i = 0; i < kQK_K; ++i) EXPECT_NEAR(q[b].d * q[b].qs[i], x[b * kQK_K + i], step * 0.5f + 1e-7f);
    for (int s = 0; s < 16; ++s) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += q[b].qs[16 * s + l];
      EXPECT_EQ(q[b].bsums[s], sum);
    }
  }
}

// The integer dot products equal float arithmetic on the dequantized values (up to f32 rounding).
TEST(KQuantDot, MatchesDequantizedFloatDot) {
  const int64_t k = 1024, blocks = k / kQK_K;
  auto w = RandomFloats(k, 11);
  auto a = RandomFloats(k, 12);
  std::vector<BlockQ8_K> aq(blocks);
  QuantizeRowQ8_K(a.data(), k, aq.data());
  std::vector<float> adq(k);
  for (int64_t i = 0; i < k; ++i) adq[i] = aq[i / kQK_K].d * aq[i / kQK_K].qs[i % kQK_K];
  for (DType t : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    std::vector<uint8_t> wq(DTypeRowBytes(t, k));
    QuantizeRow(t, w.data(), k, wq.data());
    std::vector<float> wdq(k);
    DequantizeRow(t, wq.data(), k, wdq.data());
    double expect = 0, mag = 0;
    for (int64_t i = 0; i < k; ++i) {
      expect += static_cast<double>(wdq[i]) * adq[i];
      mag += std::fabs(static_cast<double>(wdq[i]) * adq[i]);
    }
    float got = t == DType::kQ4_K   ? DotQ4_K(reinterpret_cast<BlockQ4_K*>(wq.data()), aq.data(), blocks)
                : t == DType::kQ5_K ? DotQ5_K(reinterpret_cast<BlockQ5_K*>(wq.data()), aq.data(), blocks)
                                    : DotQ6_K(reinterpret_cast<BlockQ6_K*>(wq.data()), aq.data(), blocks);
    EXPECT_NEAR(got, expect, 1e-5 * mag) << DTypeName(t);
  }
}

// Every SIMD target's matmul is bit-identical to the reference for k-quant weights, for any M, thread count
// and weight alignment (even offsets: GGUF data is 32-byte aligned and k-quant rows have even sizes).
TEST(KQuantMatMul, EveryTargetEqualsReference) {
  ThreadPool pool(2);
  for (DType t : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    for (int64_t kdim : {256, 768}) {
      for (int64_t n : {1, 7, 33}) {
        auto w = test::MakeMatrix(t, n, kdim, 21 + static_cast<uint32_t>(n), /*offset=*/2);
        auto bias = RandomFloats(n, 5);
        for (int64_t m : {1, 3, 17}) {
          auto a = RandomFloats(m * kdim, 31 + static_cast<uint32_t>(m), -3.0f, 3.0f);
          std::vector<float> ref(m * n), got(m * n);
          ReferenceKernels().matmul(a.data(), m, w.ref, bias.data(), ref.data(), nullptr);
          for (const Kernels* k : AllKernelTargets()) {
            for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
              std::fill(got.begin(), got.end(), -1.0f);
              k->matmul(a.data(), m, w.ref, bias.data(), got.data(), p);
              ASSERT_EQ(std::memcmp(got.data(), ref.data(), got.size() * sizeof(float)), 0)
                  << k->name << " " << DTypeName(t) << " m=" << m << " n=" << n << " k=" << kdim;
            }
          }
          // And the matmul is close to float arithmetic on the dequantized weights.
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < n; ++j) {
              double s = bias[j], mag = std::fabs(bias[j]);
              for (int64_t l = 0; l < kdim; ++l) {
                s += static_cast<double>(a[i * kdim + l]) * w.dequant[j * kdim + l];
                mag += std::fabs(static_cast<double>(a[i * kdim + l]) * w.dequant[j * kdim + l]);
              }
              EXPECT_NEAR(ref[i * n + j], s, 0.02 * mag) << "activation quantization error too large";
            }
          }
        }
      }
    }
  }
}

TEST(KQuantGetRows, EveryTargetDequantizesExactly) {
  for (DType t : {DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    auto w = test::MakeMatrix(t, 9, 512, 77);
    const int32_t ids[] = {8, 0, 3};
    for (const Kernels* k : AllKernelTargets()) {
      std::vector<float> out(3 * 512);
      k->get_rows(w.ref, ids, 3, out.data());
      for (int r = 0; r < 3; ++r) {
        ASSERT_EQ(std::memcmp(out.data() + r * 512, w.dequant.data() + ids[r] * 512, 512 * sizeof(float)), 0)
            << k->name << " " << DTypeName(t);
      }
    }
  }
}

}  // namespace
}  // namespace si
