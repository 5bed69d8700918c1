// Shared helpers for the kernel tests: random data, weight matrices of any dtype, target naming.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "si/base/thread_pool.h"
#include "si/kernels/ops.h"

namespace si::test {

inline std::vector<float> RandomFloats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A weight matrix [rows, cols] quantized from random floats, stored `offset` bytes into its buffer
// (to test misaligned weight pointers).
struct TestMatrix {
  std::vector<uint8_t> storage;
  MatRef ref;
  std::vector<float> dequant;  // [rows, cols], the values the kernels must see
};

inline TestMatrix MakeMatrix(DType t, int64_t rows, int64_t cols, uint32_t seed,
                             size_t offset = 0) {
  TestMatrix m;
  const int64_t row_bytes = DTypeRowBytes(t, cols);
  m.storage.assign(offset + rows * row_bytes + 64, 0xCD);
  std::vector<float> src = RandomFloats(rows * cols, seed);
  for (int64_t r = 0; r < rows; ++r) {
    QuantizeRow(t, src.data() + r * cols, cols, m.storage.data() + offset + r * row_bytes);
  }
  m.ref.type = t;
  m.ref.data = m.storage.data() + offset;
  m.ref.rows = rows;
  m.ref.cols = cols;
  m.dequant.resize(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    DequantizeRow(t, m.ref.row(r), cols, m.dequant.data() + r * cols);
  return m;
}

// w repacked by k.to_panels (k must have it and want w: k.panel_bytes(w) > 0).
struct PanelMatrix {
  std::vector<uint8_t> storage;  // over-allocated by 64 for the alignment
  MatRef ref;
};
inline PanelMatrix MakePanels(const Kernels& k, const MatRef& w, ThreadPool* pool = nullptr) {
  PanelMatrix p;
  const int64_t bytes = k.panel_bytes(w);
  p.storage.assign(static_cast<size_t>(bytes) + 64, 0xCD);
  uint8_t* dst = p.storage.data() + (64 - reinterpret_cast<uintptr_t>(p.storage.data()) % 64) % 64;
  p.ref = k.to_panels(w, dst, pool);
  return p;
}

// The tables that repack f32 / f16 / bf16 weights into panels.
inline std::vector<const Kernels*> PanelTargets() {
  std::vector<const Kernels*> out;
  for (const Kernels* k : AllKernelTargets())
    if (k->to_panels != nullptr) out.push_back(k);
  return out;
}

// k.matmul_multi of `count` (<= 3) matrices of one input == k.matmul of each, bit for bit (an empty
// string), or which matrix differs.
inline std::string MultiVsSeparate(const Kernels& k, const float* a, int64_t m, int count,
                                   const MatRef* mats, const float* const* biases,
                                   ThreadPool* pool) {
  std::vector<float> sep[3], fused[3];
  float* outs[3];
  for (int i = 0; i < count; ++i) {
    sep[i].resize(m * mats[i].rows);
    fused[i].assign(m * mats[i].rows, NAN);
    outs[i] = fused[i].data();
    k.matmul(a, m, mats[i], biases[i], sep[i].data(), pool);
  }
  k.matmul_multi(a, m, count, mats, biases, outs, pool);
  for (int i = 0; i < count; ++i) {
    if (std::memcmp(sep[i].data(), fused[i].data(), sep[i].size() * 4) != 0) {
      return "matmul_multi differs from matmul for matrix " + std::to_string(i);
    }
  }
  return "";
}

inline bool IsQuantized(DType t) { return t == DType::kQ8_0 || t == DType::kQ4_0; }

inline std::string TargetName(const Kernels* k) { return k->name; }

}  // namespace si::test
