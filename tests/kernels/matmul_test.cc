// matmul and get_rows on every SIMD target vs the scalar reference, plus determinism (batch
// composition, row position, thread count). Tolerances are relative to the sum of |a_k * w_k| of
// the output (the scale of any summation-order difference): 1e-5 for f32/f16/bf16 weights (f32 sums
// in another order), 1e-6 for Q8_0/Q4_0 (the integer block dot products are exact; only the f32 sum
// of per-block terms is reordered).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>

#include "kernels/test_util.h"
#include "si/base/thread_pool.h"
#include "si/kernels/ops.h"

namespace si {
namespace {

using test::MakeMatrix;
using test::RandomFloats;

constexpr DType kAllTypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0};

TEST(KernelTargets, ListedBestFirst) {
  const auto all = AllKernelTargets();
  ASSERT_FALSE(all.empty()) << "no SIMD target supported on this CPU?";
  EXPECT_EQ(&BestKernels(), all.front());
  for (const Kernels* k : all) {
    std::printf("target: %s\n", k->name);
    EXPECT_NE(k->matmul, nullptr);
    EXPECT_NE(k->attention, nullptr);
  }
}

// Runs one matmul case on `k` and on the reference and compares.
// panels: the kernel runs w repacked by its to_panels (the reference runs the rows as stored).
void CheckMatMul(const Kernels& k, DType t, int64_t m, int64_t n, int64_t kdim, bool with_bias,
                 ThreadPool* pool, uint32_t seed, bool panels = false) {
  SCOPED_TRACE(testing::Message() << k.name << " " << DTypeName(t) << " m=" << m << " n=" << n
                                  << " k=" << kdim << " bias=" << with_bias
                                  << (panels ? " panels" : ""));
  // Misaligned weights (by 4 bytes: f32 rows stay float-aligned) and activations (by one float).
  const test::TestMatrix w = MakeMatrix(t, n, kdim, seed, 4);
  std::vector<float> a_buf = RandomFloats(m * kdim + 1, seed + 1);
  const float* a = a_buf.data() + 1;
  std::vector<float> bias = RandomFloats(n, seed + 2);
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> c_ref(m * n), c_buf(m * n + 1, NAN);
  float* c = c_buf.data() + 1;
  ReferenceKernels().matmul(a, m, w.ref, b, c_ref.data(), nullptr);
  if (panels) {
    const test::PanelMatrix p = test::MakePanels(k, w.ref, pool);
    k.matmul(a, m, p.ref, b, c, pool);
  } else {
    k.matmul(a, m, w.ref, b, c, pool);
  }
  const double tol = test::IsQuantized(t) ? 1e-6 : 1e-5;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double abs_sum = b ? std::fabs(b[j]) : 0.0;
      for (int64_t l = 0; l < kdim; ++l)
        abs_sum += std::fabs(a[i * kdim + l] * w.dequant[j * kdim + l]);
      const double err = std::fabs(static_cast<double>(c[i * n + j]) - c_ref[i * n + j]);
      ASSERT_LE(err, tol * abs_sum + 1e-30)
          << "at (" << i << ", " << j << "): " << c[i * n + j] << " vs " << c_ref[i * n + j];
    }
  }
}

TEST(MatMul, AllTargetsAllTypesSmallShapes) {
  for (const Kernels* k : AllKernelTargets()) {
    for (DType t : kAllTypes) {
      for (int64_t kdim : {32, 64, 96}) {
        for (int64_t n = 1; n <= 67; n += (kdim == 32 || n < 20 ? 1 : 7)) {  // every N for K = 32
          for (int64_t m = 1; m <= 9; ++m) {
            CheckMatMul(*k, t, m, n, kdim, (n + m) % 2 == 0, nullptr,
                        static_cast<uint32_t>(n * 131 + m));
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

TEST(MatMul, AllTargetsLongRows) {
  for (const Kernels* k : AllKernelTargets()) {
    for (DType t : kAllTypes) {
      for (int64_t kdim : {4096 + 32, 2048 + 96}) {
        for (int64_t n : {1, 5, 16, 67}) {
          for (int64_t m : {1, 4, 6}) {
            CheckMatMul(*k, t, m, n, kdim, true, nullptr, static_cast<uint32_t>(kdim + n + m));
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

// f32/f16/bf16 weights accept any K: exercises the partial last vector.
TEST(MatMul, AllTargetsOddK) {
  for (const Kernels* k : AllKernelTargets()) {
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
      for (int64_t kdim : {1, 3, 7, 15, 17, 31, 33, 100}) {
        for (int64_t n : {1, 3, 17}) {
          for (int64_t m : {1, 2, 5}) {
            CheckMatMul(*k, t, m, n, kdim, true, nullptr, static_cast<uint32_t>(kdim * 7 + n + m));
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

TEST(MatMul, AllTargetsThreaded) {
  for (int threads : {2, 3, 4}) {
    ThreadPool pool(threads);
    for (const Kernels* k : AllKernelTargets()) {
      for (DType t : kAllTypes) {
        // m = 1: the decode tiles, with chunk sizes that leave a rest after the 4 row streams of
        // each chunk (1003 rows at 2 threads: chunks of 128 and a last one of 107).
        for (int64_t m : {1, 5}) {
          for (int64_t n : {17, 67, 200, 1003}) {
            CheckMatMul(*k, t, m, n, 256, true, &pool, static_cast<uint32_t>(n + threads + m));
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

// C[m, n] must be bit-identical whatever the batch it is computed in, its position in that batch
// and the number of threads.
TEST(MatMul, DeterministicAcrossBatchPositionAndThreads) {
  constexpr int64_t kM = 7, kN = 67 + 64, kK = 4096 + 32;
  std::vector<std::unique_ptr<ThreadPool>> pools;
  for (int t : {1, 2, 3, 4}) pools.push_back(std::make_unique<ThreadPool>(t));
  for (const Kernels* k : AllKernelTargets()) {
    for (DType t : kAllTypes) {
      SCOPED_TRACE(testing::Message() << k->name << " " << DTypeName(t));
      const test::TestMatrix w = MakeMatrix(t, kN, kK, 7);
      const std::vector<float> a = RandomFloats(kM * kK, 8, -3.0f, 3.0f);
      const std::vector<float> bias = RandomFloats(kN, 9);
      // Baseline: every row alone, no pool.
      std::vector<float> alone(kM * kN);
      for (int64_t i = 0; i < kM; ++i)
        k->matmul(a.data() + i * kK, 1, w.ref, bias.data(), alone.data() + i * kN, nullptr);
      for (auto& pool : pools) {
        // Whole batch.
        std::vector<float> c(kM * kN);
        k->matmul(a.data(), kM, w.ref, bias.data(), c.data(), pool.get());
        ASSERT_EQ(0, std::memcmp(c.data(), alone.data(), c.size() * 4))
            << "batch vs alone, threads " << pool->num_threads();
        // Rows reversed: row i at position kM - 1 - i; and sub-batches of every size m at offset 1.
        std::vector<float> rev_a(kM * kK), rev_c(kM * kN);
        for (int64_t i = 0; i < kM; ++i) std::memcpy(&rev_a[i * kK], &a[(kM - 1 - i) * kK], kK * 4);
        k->matmul(rev_a.data(), kM, w.ref, bias.data(), rev_c.data(), pool.get());
        for (int64_t i = 0; i < kM; ++i) {
          ASSERT_EQ(0, std::memcmp(&rev_c[i * kN], &alone[(kM - 1 - i) * kN], kN * 4))
              << "reversed row " << i;
        }
        for (int64_t m = 1; m + 1 <= kM; ++m) {
          std::vector<float> sub(m * kN);
          k->matmul(a.data() + kK, m, w.ref, bias.data(), sub.data(), pool.get());
          ASSERT_EQ(0, std::memcmp(sub.data(), alone.data() + kN, sub.size() * 4))
              << "sub-batch m=" << m;
        }
      }
    }
  }
}

// The packed prefill path (m >= 4) must give the same bits as decode (m = 1) for K that is not a
// multiple of the vector length or of the K chunk (512), with slabs and tiles cut at every
// remainder.
TEST(MatMul, PackedPrefillMatchesDecodeOddK) {
  ThreadPool pool(2);
  for (const Kernels* k : AllKernelTargets()) {
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
      for (int64_t kdim : {9, 517, 1100}) {
        constexpr int64_t kM = 9, kN = 41;
        SCOPED_TRACE(testing::Message() << k->name << " " << DTypeName(t) << " k=" << kdim);
        const test::TestMatrix w = MakeMatrix(t, kN, kdim, 11, 4);
        const std::vector<float> a = RandomFloats(kM * kdim, 12);
        std::vector<float> alone(kM * kN), c(kM * kN);
        for (int64_t i = 0; i < kM; ++i)
          k->matmul(a.data() + i * kdim, 1, w.ref, nullptr, alone.data() + i * kN, nullptr);
        for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
          k->matmul(a.data(), kM, w.ref, nullptr, c.data(), p);
          ASSERT_EQ(0, std::memcmp(c.data(), alone.data(), c.size() * 4));
        }
        CheckMatMul(*k, t, kM, kN, kdim, true, &pool, 13);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// Large prefill: more rows than one packed row group (256), more outputs than one slab (126 rows of
// a 512-float K chunk on AVX2), several K chunks with a partial last one: still decode's bits.
TEST(MatMul, PackedPrefillMatchesDecodeAcrossGroupsAndSlabs) {
  ThreadPool pool(2);
  for (const Kernels* k : AllKernelTargets()) {
    constexpr int64_t kM = 261, kN = 263, kK = 1100;
    SCOPED_TRACE(k->name);
    const test::TestMatrix w = MakeMatrix(DType::kF32, kN, kK, 21, 4);
    const std::vector<float> a = RandomFloats(kM * kK, 22);
    const std::vector<float> bias = RandomFloats(kN, 23);
    std::vector<float> alone(kM * kN), c(kM * kN);
    for (int64_t i = 0; i < kM; ++i)
      k->matmul(a.data() + i * kK, 1, w.ref, bias.data(), alone.data() + i * kN, nullptr);
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
      k->matmul(a.data(), kM, w.ref, bias.data(), c.data(), p);
      ASSERT_EQ(0, std::memcmp(c.data(), alone.data(), c.size() * 4));
    }
  }
}

// matmul_multi == separate matmul calls, bit for bit: fused groups (same dtype), mixed dtypes
// (fallback), decode and prefill, with and without a pool.
TEST(MatMulMulti, EqualsSeparateCalls) {
  ThreadPool pool(2);
  constexpr int64_t kK = 256;
  const DType combos[][3] = {{DType::kQ8_0, DType::kQ8_0, DType::kQ8_0},
                             {DType::kQ4_0, DType::kQ8_0, DType::kQ4_0},
                             {DType::kF32, DType::kF32, DType::kF32},
                             {DType::kF16, DType::kF16, DType::kF16},
                             {DType::kF32, DType::kQ8_0, DType::kBF16}};
  std::vector<const Kernels*> tables = AllKernelTargets();
  tables.push_back(&ReferenceKernels());
  for (const Kernels* k : tables) {
    for (const auto& types : combos) {
      const int64_t n[3] = {67, 16, 33};
      std::vector<test::TestMatrix> ws;
      for (int i = 0; i < 3; ++i) ws.push_back(MakeMatrix(types[i], n[i], kK, 20 + i));
      const MatRef mats[3] = {ws[0].ref, ws[1].ref, ws[2].ref};
      const std::vector<float> bias = RandomFloats(67, 30);
      const float* biases[3] = {bias.data(), nullptr, bias.data()};
      for (int64_t m : {1, 6}) {
        const std::vector<float> a = RandomFloats(m * kK, 31 + m);
        for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
          SCOPED_TRACE(testing::Message() << k->name << " " << DTypeName(types[0]) << " m=" << m);
          EXPECT_EQ(test::MultiVsSeparate(*k, a.data(), m, 3, mats, biases, p), "");
        }
      }
    }
  }
}

// Panel matrices (tables with to_panels: AVX2): against the reference over every tail of N (16
// outputs per panel), odd K, the GEMV (m <= 4) and the packed GEMM (m >= 5), K chunks of 512.
TEST(MatMulPanels, MatchReference) {
  ThreadPool pool(2);
  for (const Kernels* k : test::PanelTargets()) {
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
      for (int64_t kdim : {1, 7, 33, 100, 517, 1100}) {
        for (int64_t n : {1, 15, 16, 17, 67}) {
          for (int64_t m = 1; m <= 13; m += (m < 7 ? 1 : 6)) {
            CheckMatMul(*k, t, m, n, kdim, (n + m) % 2 == 0, m % 2 ? &pool : nullptr,
                        static_cast<uint32_t>(kdim * 31 + n * 7 + m), true);
            if (HasFatalFailure()) return;
          }
        }
      }
    }
    for (int64_t kdim : {32, 96, 1120}) {
      for (int64_t n : {1, 15, 16, 17, 67}) {
        for (int64_t m = 1; m <= 13; m += (m < 7 ? 1 : 6)) {
          CheckMatMul(*k, DType::kQ8_0, m, n, kdim, (n + m) % 2 == 0, m % 2 ? &pool : nullptr,
                      static_cast<uint32_t>(kdim * 31 + n * 7 + m), true);
          if (HasFatalFailure()) return;
        }
      }
    }
    const test::TestMatrix q4 = MakeMatrix(DType::kQ4_0, 16, 64, 1);
    EXPECT_EQ(k->panel_bytes(q4.ref), 0) << "Q4_0 runs as stored";
    test::TestMatrix rows = MakeMatrix(DType::kQ8_0, 17, 64, 1);
    rows.ref.int8_rows = true;  // int8_rows panels: 128 header bytes + 16 K per 16 outputs
    EXPECT_EQ(k->panel_bytes(rows.ref), 2 * (128 + 16 * 64)) << "per-channel int8 panels";
  }
}

// Q8_0 panels change the layout, not the arithmetic: the same bits as the stored rows on the same
// table, for decode (M <= 4), batched decode and prefill (M > 4, several slabs), any thread count,
// an N tail, and matmul_multi.
TEST(MatMulPanels, Q8_0SameBitsAsStoredRows) {
  std::vector<std::unique_ptr<ThreadPool>> pools;
  for (int t : {1, 2, 3}) pools.push_back(std::make_unique<ThreadPool>(t));
  constexpr int64_t kN = 263, kK = 2048;  // 263 * 16 * 68 bytes: more panels than one slab
  for (const Kernels* k : test::PanelTargets()) {
    SCOPED_TRACE(k->name);
    const test::TestMatrix w = MakeMatrix(DType::kQ8_0, kN, kK, 51, 2);
    const test::PanelMatrix p = test::MakePanels(*k, w.ref, pools[1].get());
    const std::vector<float> a = RandomFloats(37 * kK, 52, -3.0f, 3.0f);
    const std::vector<float> bias = RandomFloats(kN, 53);
    for (auto& pool : pools) {
      for (int64_t m : {1, 2, 3, 4, 5, 16, 37}) {
        std::vector<float> stored(m * kN), panels(m * kN, NAN);
        k->matmul(a.data(), m, w.ref, m % 2 ? bias.data() : nullptr, stored.data(), pool.get());
        k->matmul(a.data(), m, p.ref, m % 2 ? bias.data() : nullptr, panels.data(), pool.get());
        ASSERT_EQ(0, std::memcmp(stored.data(), panels.data(), stored.size() * 4))
            << "m=" << m << " threads " << pool->num_threads();
      }
    }
    const test::TestMatrix w2 = MakeMatrix(DType::kQ8_0, 40, kK, 54);
    const test::PanelMatrix p2 = test::MakePanels(*k, w2.ref);
    const MatRef mats[2] = {p.ref, p2.ref};
    const float* biases[2] = {bias.data(), nullptr};
    for (int64_t m : {1, 7}) {
      EXPECT_EQ(test::MultiVsSeparate(*k, a.data(), m, 2, mats, biases, pools[1].get()), "")
          << "m=" << m;
    }
  }
}

// Every row of a panel matrix gives decode's bits whatever the batch (GEMV and packed GEMM, more
// rows than one row group (258), more panels than one slab, several K chunks with a partial last
// one) and the thread count; matmul_multi of panel matrices equals separate calls.
TEST(MatMulPanels, DeterministicAcrossBatchAndThreads) {
  std::vector<std::unique_ptr<ThreadPool>> pools;
  for (int t : {1, 2, 3}) pools.push_back(std::make_unique<ThreadPool>(t));
  for (const Kernels* k : test::PanelTargets()) {
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16}) {
      constexpr int64_t kM = 261, kN = 263, kK = 1100;
      SCOPED_TRACE(testing::Message() << k->name << " " << DTypeName(t));
      const test::TestMatrix w = MakeMatrix(t, kN, kK, 41, 4);
      const test::PanelMatrix p = test::MakePanels(*k, w.ref);
      const std::vector<float> a = RandomFloats(kM * kK, 42, -3.0f, 3.0f);
      const std::vector<float> bias = RandomFloats(kN, 43);
      std::vector<float> alone(kM * kN);
      for (int64_t i = 0; i < kM; ++i)
        k->matmul(a.data() + i * kK, 1, p.ref, bias.data(), alone.data() + i * kN, nullptr);
      for (auto& pool : pools) {
        for (int64_t m : {int64_t{2}, int64_t{4}, int64_t{5}, int64_t{9}, kM}) {
          std::vector<float> c(m * kN);
          k->matmul(a.data(), m, p.ref, bias.data(), c.data(), pool.get());
          ASSERT_EQ(0, std::memcmp(c.data(), alone.data(), c.size() * 4))
              << "m=" << m << " threads " << pool->num_threads();
        }
      }
      // matmul_multi: three panel matrices of one input (one fused dispatch) == separate calls.
      const test::TestMatrix w2 = MakeMatrix(t, 40, kK, 44), w3 = MakeMatrix(t, 16, kK, 45);
      const test::PanelMatrix p2 = test::MakePanels(*k, w2.ref), p3 = test::MakePanels(*k, w3.ref);
      const MatRef mats[3] = {p.ref, p2.ref, p3.ref};
      const float* biases[3] = {bias.data(), nullptr, bias.data()};
      for (int64_t m : {1, 7}) {
        EXPECT_EQ(test::MultiVsSeparate(*k, a.data(), m, 3, mats, biases, pools[1].get()), "")
            << "m=" << m;
      }
    }
  }
}

TEST(GetRows, AllTargetsExact) {
  for (const Kernels* k : AllKernelTargets()) {
    for (DType t : kAllTypes) {
      for (int64_t cols : {32, 96, 4096 + 32}) {
        SCOPED_TRACE(testing::Message() << k->name << " " << DTypeName(t) << " cols=" << cols);
        const test::TestMatrix w = MakeMatrix(t, 13, cols, 3, 2);
        const std::vector<int32_t> ids = {0, 12, 5, 5, 7, 1};
        const int64_t n = static_cast<int64_t>(ids.size());
        std::vector<float> ref(n * cols), out(n * cols + 1);
        ReferenceKernels().get_rows(w.ref, ids.data(), n, ref.data());
        k->get_rows(w.ref, ids.data(), n, out.data() + 1);  // misaligned output
        ASSERT_EQ(0, std::memcmp(ref.data(), out.data() + 1, ref.size() * 4));
      }
    }
  }
}

}  // namespace
}  // namespace si
