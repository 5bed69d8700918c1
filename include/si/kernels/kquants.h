// k-quants (Q4_K, Q5_K, Q6_K): the formats most downloaded GGUF files use (Q4_K_M mixes Q4_K and Q6_K).
// Block layouts are in si/tensor/dtype.h; they are ggml's, so files written here load in llama.cpp and files
// from llama.cpp load here.
//
// Numerics of the matmul follow ggml's: each activation row is quantized to Q8_K (one f32 scale per 256
// values, symmetric int8), every sub-block dot product is an exact integer sum, and a super-block contributes
//   Q4_K/Q5_K: (d_w * d_a) * sum_j sc_j * dot_j  -  (dmin_w * d_a) * sum_j m_j * sum(a_q over sub-block j)
//   Q6_K:      (d_w * d_a) * sum_s sc_s * dot_s       (with q - 32 in the dot)
// added to the row's f32 sum in super-block order. So the result depends only on the two rows (determinism).
//
// The quantizers are ours (not ggml's search): for every sub-block a scale/offset least-squares fit over a
// small grid of candidate steps, then the sub-block scales are themselves quantized to 6 bits (Q4_K/Q5_K)
// or int8 (Q6_K) and the values re-quantized against the scales actually stored. Their error is checked in
// tests against the format's resolution.
#pragma once

#include <cstdint>

#include "si/base/thread_pool.h"
#include "si/kernels/ops.h"
#include "si/tensor/dtype.h"

namespace si {

inline bool IsKQuant(DType t) { return t == DType::kQ4_K || t == DType::kQ5_K || t == DType::kQ6_K; }

// Sub-block j (0..7) scale and min of a Q4_K/Q5_K block's packed 12-byte `scales`: j < 4 in the low 6 bits of
// bytes j and j + 4; j >= 4 in the nibbles of byte j + 4 with their top 2 bits in the top bits of bytes j - 4
// (scale) and j (min).
void UnpackKScaleMin(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m);
void PackKScaleMin(const uint8_t sc[8], const uint8_t m[8], uint8_t* scales);

// Rows of n elements, n % 256 == 0.
void QuantizeRowQ4_K(const float* x, int64_t n, BlockQ4_K* out);
void QuantizeRowQ5_K(const float* x, int64_t n, BlockQ5_K* out);
void QuantizeRowQ6_K(const float* x, int64_t n, BlockQ6_K* out);
void QuantizeRowQ8_K(const float* x, int64_t n, BlockQ8_K* out);
void DequantizeRowQ4_K(const BlockQ4_K* b, int64_t n, float* out);
void DequantizeRowQ5_K(const BlockQ5_K* b, int64_t n, float* out);
void DequantizeRowQ6_K(const BlockQ6_K* b, int64_t n, float* out);
// For a k-quant type t: true and the row converted; false for other types.
bool QuantizeRowKQuant(DType t, const float* x, int64_t n, void* out);
bool DequantizeRowKQuant(DType t, const void* row, int64_t n, float* out);

// Scalar dot products of one weight row with one Q8_K activation row of `blocks` super-blocks (the oracle).
float DotQ4_K(const BlockQ4_K* w, const BlockQ8_K* a, int64_t blocks);
float DotQ5_K(const BlockQ5_K* w, const BlockQ8_K* a, int64_t blocks);
float DotQ6_K(const BlockQ6_K* w, const BlockQ8_K* a, int64_t blocks);

// The float part of a row's dot product, shared by the scalar and SIMD kernels (one compiled copy, so both
// round alike): sum over super-blocks b of d[b]*a[b].d*sumi[b] - dmin[b]*a[b].d*summ[b], in block order.
// d and dmin point at the first block's fp16 fields, `stride` uint16s apart; dmin/summ null for Q6_K.
float KQuantCombine(const uint16_t* d, const uint16_t* dmin, int64_t stride, const BlockQ8_K* a,
                    const int32_t* sumi, const int32_t* summ, int64_t blocks);

// The scalar reference matmul for k-quant weights: C[m, N] = A[m, K] * W^T + bias, single-threaded.
void RefMatMulKQuant(const float* a, int64_t m, const MatRef& w, const float* bias, float* c, ThreadPool* pool);
// The SIMD versions (src/kernels/simd_kquant.cc, one per target, reached through each target's matmul) are
// bit-identical to it: the integer sums are exact and the float combination is done in the same order.

}  // namespace si
