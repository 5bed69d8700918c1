// Per-channel int8 weights (MatRef::int8_rows): every target must give the reference's bits (the
// dot product is one exact integer and the float part is the same two roundings), for any M, N, K,
// misalignment, bias, thread count and fused group; the reference itself is checked against an
// int64 dot product written here, and its error against the f32 product is bounded by the 7-bit
// activation step.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "kernels/test_util.h"
#include "si/base/thread_pool.h"
#include "si/kernels/ops.h"

namespace si {
namespace {

using test::RandomFloats;

// [rows, cols] per-channel int8 in Q8_0 blocks (the row's fp16 scale in every block), stored
// `offset` bytes into the buffer. Every 7th row gets the extreme values -128 and 127 (a file may
// hold -128 even though our quantizer writes [-127, 127]); row 3 is all zero.
struct Int8Matrix {
  std::vector<uint8_t> storage;
  MatRef ref;
};
Int8Matrix MakeInt8(int64_t rows, int64_t cols, uint32_t seed, size_t offset) {
  Int8Matrix m;
  const int64_t row_bytes = DTypeRowBytes(DType::kQ8_0, cols);
  m.storage.assign(offset + rows * row_bytes + 64, 0xCD);
  const std::vector<float> src = RandomFloats(rows * cols, seed);
  for (int64_t r = 0; r < rows; ++r) {
    auto* b = reinterpret_cast<BlockQ8_0*>(m.storage.data() + offset + r * row_bytes);
    const uint16_t d = F32ToF16(0.01f + 0.001f * static_cast<float>(r % 5));
    for (int64_t l = 0; l < cols; ++l) {
      int v = static_cast<int>(std::lround(src[r * cols + l] * 127.0f));
      if (r % 7 == 6) v = l % 3 == 0 ? -128 : 127;
      if (r == 3) v = 0;
      b[l / kQK8_0].d = d;
      b[l / kQK8_0].qs[l % kQK8_0] = static_cast<int8_t>(v);
    }
  }
  m.ref.type = DType::kQ8_0;
  m.ref.data = m.storage.data() + offset;
  m.ref.rows = rows;
  m.ref.cols = cols;
  m.ref.int8_rows = true;
  return m;
}

// Activations with one large entry per row (the 7-bit step is set by it) and one all-zero row.
std::vector<float> MakeActs(int64_t m, int64_t k, uint32_t seed) {
  std::vector<float> a = RandomFloats(m * k + 1, seed, -2.0f, 2.0f);
  for (int64_t i = 0; i < m; ++i) a[1 + i * k + (i * 13) % k] = 7.5f * (i % 2 ? -1 : 1);
  if (m > 2) std::fill(a.begin() + 1 + 2 * k, a.begin() + 1 + 3 * k, 0.0f);
  return a;
}

void CheckExact(const Kernels& kern, int64_t m, int64_t n, int64_t k, bool with_bias,
                ThreadPool* pool, uint32_t seed) {
  SCOPED_TRACE(testing::Message() << kern.name << " m=" << m << " n=" << n << " k=" << k
                                  << " bias=" << with_bias);
  const Int8Matrix w = MakeInt8(n, k, seed, 6);  // misaligned weights
  const std::vector<float> a_buf = MakeActs(m, k, seed + 1);
  const float* a = a_buf.data() + 1;  // misaligned activations
  const std::vector<float> bias = RandomFloats(n, seed + 2);
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> ref(m * n), out(m * n + 1, NAN);
  ReferenceKernels().matmul(a, m, w.ref, b, ref.data(), nullptr);
  kern.matmul(a, m, w.ref, b, out.data() + 1, pool);
  for (int64_t i = 0; i < m * n; ++i) {
    ASSERT_EQ(0, std::memcmp(&ref[i], &out[1 + i], 4))
        << "at (" << i / n << ", " << i % n << "): " << out[1 + i] << " vs " << ref[i];
  }
  // The same matrix repacked into the table's panels (AVX2): the same bits.
  if (kern.panel_bytes == nullptr || kern.panel_bytes(w.ref) == 0) return;
  const test::PanelMatrix p = test::MakePanels(kern, w.ref, pool);
  std::fill(out.begin(), out.end(), NAN);
  kern.matmul(a, m, p.ref, b, out.data() + 1, pool);
  for (int64_t i = 0; i < m * n; ++i) {
    ASSERT_EQ(0, std::memcmp(&ref[i], &out[1 + i], 4))
        << "panels, at (" << i / n << ", " << i % n << "): " << out[1 + i] << " vs " << ref[i];
  }
}

TEST(Int8Rows, ReferenceIsTheIntegerDotProduct) {
  constexpr int64_t kM = 5, kN = 9, kK = 96;
  const Int8Matrix w = MakeInt8(kN, kK, 1, 0);
  const std::vector<float> a_buf = MakeActs(kM, kK, 2);
  const float* a = a_buf.data() + 1;
  const std::vector<float> bias = RandomFloats(kN, 3);
  std::vector<float> c(kM * kN);
  ReferenceKernels().matmul(a, kM, w.ref, bias.data(), c.data(), nullptr);
  for (int64_t i = 0; i < kM; ++i) {
    float amax = 0;
    for (int64_t l = 0; l < kK; ++l) amax = std::max(amax, std::fabs(a[i * kK + l]));
    for (int64_t j = 0; j < kN; ++j) {
      const auto* blk = reinterpret_cast<const BlockQ8_0*>(w.ref.row(j));
      int64_t isum = 0;
      for (int64_t l = 0; l < kK; ++l) {
        const int64_t q = amax > 0 ? std::llrint(a[i * kK + l] * (63.0f / amax)) : 0;
        ASSERT_LE(std::abs(q), 63);
        isum += q * blk[l / kQK8_0].qs[l % kQK8_0];
      }
      const float scale = (amax / 63.0f) * F16ToF32(blk[0].d);
      const float y = scale * static_cast<float>(isum);
      EXPECT_EQ(c[i * kN + j], y + bias[j]) << i << " " << j;
    }
  }
}

TEST(Int8Rows, ErrorWithinTheActivationStep) {
  // |C - A * W_deq^T| <= (s_a / 2) * sum_k |w_deq| + f32 rounding: the only approximation is the
  // activation's rounding (the weights are exact by construction).
  constexpr int64_t kM = 6, kN = 40, kK = 2048;
  const Int8Matrix w = MakeInt8(kN, kK, 4, 0);
  const std::vector<float> a_buf = MakeActs(kM, kK, 5);
  const float* a = a_buf.data() + 1;
  std::vector<float> c(kM * kN);
  BestKernels().matmul(a, kM, w.ref, nullptr, c.data(), nullptr);
  std::vector<float> wd(kK);
  for (int64_t i = 0; i < kM; ++i) {
    float amax = 0;
    for (int64_t l = 0; l < kK; ++l) amax = std::max(amax, std::fabs(a[i * kK + l]));
    for (int64_t j = 0; j < kN; ++j) {
      DequantizeRow(DType::kQ8_0, w.ref.row(j), kK, wd.data());
      double exact = 0, wabs = 0, mag = 0;
      for (int64_t l = 0; l < kK; ++l) {
        exact += static_cast<double>(a[i * kK + l]) * wd[l];
        wabs += std::fabs(wd[l]);
        mag += std::fabs(a[i * kK + l] * wd[l]);
      }
      EXPECT_LE(std::fabs(c[i * kN + j] - exact), 0.5 * (amax / 63.0) * wabs + 1e-6 * mag)
          << i << " " << j;
    }
  }
}

TEST(Int8Rows, AllTargetsExactSmallShapes) {
  for (const Kernels* k : AllKernelTargets()) {
    for (int64_t kdim : {32, 96}) {
      for (int64_t n = 1; n <= 75; n += (n < 30 ? 1 : 5)) {
        for (int64_t m = 1; m <= 9; ++m) {
          CheckExact(*k, m, n, kdim, (n + m) % 2 == 0, nullptr, static_cast<uint32_t>(n * 31 + m));
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(Int8Rows, AllTargetsExactLongRowsSlabsAndThreads) {
  // K = 4096 + 32: a 256 KiB slab holds 48 rows, so n = 200 spans several slabs and a partial one.
  ThreadPool pool2(2), pool3(3);
  for (const Kernels* k : AllKernelTargets()) {
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool2, &pool3}) {
      for (int64_t kdim : {4096 + 32, 2048 + 96}) {
        for (int64_t n : {1, 23, 200}) {
          for (int64_t m : {1, 2, 3, 4, 7, 16, 33}) {
            CheckExact(*k, m, n, kdim, true, p, static_cast<uint32_t>(kdim + n + m));
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

TEST(Int8Rows, FusedEqualsSeparateAndMixedGroupsStaySeparate) {
  ThreadPool pool(2);
  constexpr int64_t kK = 256;
  const Int8Matrix w0 = MakeInt8(67, kK, 10, 0), w1 = MakeInt8(16, kK, 11, 0);
  const test::TestMatrix q8 = test::MakeMatrix(DType::kQ8_0, 33, kK, 12);  // plain Q8_0
  const std::vector<float> bias = RandomFloats(67, 13);
  for (const Kernels* k : AllKernelTargets()) {
    for (bool mixed : {false, true}) {
      const MatRef mats[3] = {w0.ref, w1.ref, mixed ? q8.ref : w0.ref};
      const float* biases[3] = {bias.data(), nullptr, bias.data()};
      for (int64_t m : {1, 6}) {
        SCOPED_TRACE(testing::Message() << k->name << " mixed=" << mixed << " m=" << m);
        const std::vector<float> a = RandomFloats(m * kK, 14 + m);
        EXPECT_EQ(test::MultiVsSeparate(*k, a.data(), m, 3, mats, biases, &pool), "");
      }
      if (k->panel_bytes == nullptr || mixed) continue;
      // Panel matrices fused (Q/K/V, gate/up of a repacked model) == separate calls.
      const test::PanelMatrix p0 = test::MakePanels(*k, w0.ref), p1 = test::MakePanels(*k, w1.ref);
      const MatRef pmats[3] = {p0.ref, p1.ref, p0.ref};
      for (int64_t m : {1, 2, 6}) {
        SCOPED_TRACE(testing::Message() << k->name << " panels m=" << m);
        const std::vector<float> a = RandomFloats(m * kK, 24 + m);
        EXPECT_EQ(test::MultiVsSeparate(*k, a.data(), m, 3, pmats, biases, &pool), "");
      }
    }
  }
}

TEST(Int8Rows, RowsShareScaleDetectsAMismatch) {
  Int8Matrix w = MakeInt8(10, 96, 20, 0);
  int64_t bad = -1;
  EXPECT_TRUE(Q8_0RowsShareScale(w.ref, &bad));
  auto* b = reinterpret_cast<BlockQ8_0*>(const_cast<uint8_t*>(w.ref.row(7)));
  b[2].d = static_cast<uint16_t>(b[2].d + 1);
  EXPECT_FALSE(Q8_0RowsShareScale(w.ref, &bad));
  EXPECT_EQ(bad, 7);
}

}  // namespace
}  // namespace si
