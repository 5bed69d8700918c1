// Kernel API. One matmul convention everywhere: C[M, N] = A[M, K] * W[N, K]^T (+ bias[N]).
//
// Every op exists as a plain scalar reference (ReferenceKernels(): the readable spec and the test
// oracle) and as Highway SIMD versions, one per compiled target. The engine picks a table once, at
// start-up (BestKernels()), so there is no dispatch inside any loop.
//
// Numerics follow ggml where that changes results, so that logits match llama.cpp:
//   - F32 weights: f32 products, f32 accumulation.
//   - F16 / BF16 weights: each activation is first rounded to f16 / bf16, then f32 products and
//     sums.
//   - Q8_0 / Q4_0 weights: each activation row is quantized to Q8_0 in blocks of 32
//     (amax = max|x|, d = fp16(amax / 127), q = rint(x * 127 / amax)); per block an exact integer
//     dot product, scaled by d_w * d_a, summed in f32 (the order of that sum is the target's:
//     lane-wise then reduced, or block by block with FMA for Q8_0 on AVX2; the same in decode and
//     prefill).
//   - Per-channel int8 weights (MatRef::int8_rows: Q8_0 rows whose blocks all carry the row's
//     scale, as `quantize --type int8` writes them): each activation row is quantized with ONE
//     scale to 7 bits (s_a = amax / 63, q = rint(x * 63 / amax), |q| <= 63; QuantizeRowInt8Act),
//     the dot product over the whole row is one exact integer, and C = (s_a * d_w) * f32(isum)
//     (+ bias). No float sum, so every target and the reference give the same bits. Why 7 bits:
//     AVX2 has no int8 dot product; its vpmaddubsw (u8 x s8 pairs into a saturating i16) is exact
//     for q + 64 in [1, 127] against any int8 weight, which makes this path ~2x the f32 FMA rate
//     (docs/kernels.md, "int8 rows").
// Determinism: C[m, n] depends only on A row m and W row n, with a fixed reduction order: never on
// M, on the thread count, or on how rows are split over threads. The same holds for every other op
// (per row).
#pragma once

#include <cstdint>
#include <vector>

#include "si/base/thread_pool.h"
#include "si/tensor/dtype.h"

namespace si {

// A weight matrix W[rows, cols] of any supported dtype, rows contiguous, DTypeRowBytes(type, cols) apart.
struct MatRef {
  DType type = DType::kF32;
  const void* data = nullptr;
  int64_t rows = 0;  // N (output features)
  int64_t cols = 0;  // K (input features)
  // Q8_0 only: every row's blocks share one scale (per-channel int8 weights); the matmul uses the
  // per-row int8 numerics above. The bytes are valid Q8_0 either way, so code that ignores the flag
  // (the distributed engine's gathered shards) still computes the Q8_0 product of the same weights.
  bool int8_rows = false;
  // The weights are in 16-output panels, made by Kernels::to_panels of the table that runs them;
  // panel t holds rows 16 t .. 16 t + 15 (zero past `rows`), in 16 * row_bytes() bytes unless
  // said otherwise below.
  //   F32/F16/BF16: element (n, k) at ((n / 16) * cols + k) * 16 + n % 16.
  //   Q8_0 (AVX2): block b of panel t at (t * cols / 32 + b) * 544 bytes: the 16 fp16 scales, then
  //   8 steps of 4 k, [rows 0..7][4 bytes] and [rows 8..15][4 bytes] (matmul_q8_avx2-inl.h).
  //   Q8_0 with int8_rows (AVX2): panel t at t * (128 + 16 cols) bytes, NOT 16 row_bytes(): 16 f32
  //   row scales, 16 int32 row sums, then cols / 4 steps of [rows 0..7][4 bytes], [rows 8..15][4
  //   bytes] (matmul_int8-inl.h).
  // row() is meaningless then; only that table's matmul / matmul_multi accept such a matrix.
  bool panels16 = false;
  int64_t row_bytes() const { return DTypeRowBytes(type, cols); }
  const uint8_t* row(int64_t r) const { return static_cast<const uint8_t*>(data) + r * row_bytes(); }
};
inline constexpr int64_t kPanelOutputs = 16;

struct AttentionArgs {
  const float* q = nullptr;   // [num_tokens, num_heads * head_dim]
  int64_t num_tokens = 0;
  const int32_t* q_pos = nullptr;  // [num_tokens] absolute positions of the queries
  const float* k = nullptr;   // [kv_len, kv_stride]: key j (position j) at k + j * kv_stride
  const float* v = nullptr;   // [kv_len, kv_stride]
  int64_t kv_len = 0;
  int64_t kv_stride = 0;      // floats between consecutive positions (>= num_kv_heads * head_dim)
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;   // query head h reads kv head h / (num_heads / num_kv_heads)
  int64_t head_dim = 0;
  float scale = 1.0f;         // applied to q.k (usually 1/sqrt(head_dim))
  bool causal = true;         // query t sees keys 0..q_pos[t]; otherwise all kv_len keys
  float* out = nullptr;       // [num_tokens, num_heads * head_dim]
};

struct Kernels {
  const char* name;  // "reference", "AVX3", "AVX2", ...

  // C[m, N] = A[m, K] * W^T + bias (bias may be null). A: [m, w.cols], C: [m, w.rows].
  void (*matmul)(const float* a, int64_t m, const MatRef& w, const float* bias, float* c, ThreadPool* pool);
  // count matmuls of the same input: c[i] = A * w[i]^T + bias[i] (bias[i] may be null). Bit-identical to
  // count matmul calls, but the activation is prepared (rounded / quantized) once and, in decode, all of
  // them run as one parallel region: Q/K/V, gate/up.
  void (*matmul_multi)(const float* a, int64_t m, int count, const MatRef* w, const float* const* bias,
                       float* const* c, ThreadPool* pool);
  // out[i, :] = dequantized row ids[i] of W. out: [n, w.cols]. Ids must be in range (checked by
  // callers). Not for panel matrices.
  void (*get_rows)(const MatRef& w, const int32_t* ids, int64_t n, float* out);
  // out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * gain. x, out: [rows, dim]; out may alias x.
  void (*rms_norm)(const float* x, const float* gain, int64_t rows, int64_t dim, float eps, float* out);
  // out[r] = (x[r] - mean) / sqrt(var + eps) * gain + bias (bias may be null). out may alias x.
  void (*layer_norm)(const float* x, const float* gain, const float* bias, int64_t rows, int64_t dim,
                     float eps, float* out);
  // In place: x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), f32.
  void (*gelu_tanh)(float* x, int64_t n);
  // In place: x = 0.5 x (1 + erf(x / sqrt 2)).
  void (*gelu_erf)(float* x, int64_t n);
  // out = silu(gate) * up = gate / (1 + exp(-gate)) * up. out may alias gate or up.
  void (*silu_mul)(const float* gate, const float* up, int64_t n, float* out);
  // x += y.
  void (*add)(float* x, const float* y, int64_t n);
  // In place over one row: x = exp(x - max) / sum.
  void (*softmax)(float* x, int64_t n);
  // In place rotary embedding. x: [num_tokens, row_stride], heads at x + t*row_stride + h*head_dim.
  // Pair (i, i+1) (normal) or (i, i + rope_dims/2) (neox) rotated by pos[t] * base^(-2i/rope_dims).
  void (*rope)(float* x, int64_t num_tokens, int64_t row_stride, int64_t num_heads, int64_t head_dim,
               int64_t rope_dims, const int32_t* pos, float base, bool neox);
  // Scaled dot-product attention of one sequence.
  void (*attention)(const AttentionArgs& args, ThreadPool* pool);

  // Optional weight repacking (null on tables that run every matrix as stored). panel_bytes(w): the
  // bytes to_panels needs for w, 0 when this table runs w as it is. to_panels(w, dst, pool): writes
  // w in the panel layout (MatRef::panels16) to dst (64-byte aligned, panel_bytes(w) bytes) and
  // returns the matrix over dst. The product differs from w's only in the f32 summation order
  // (f32 / f16 / bf16), or not at all (Q8_0: the same arithmetic in another layout).
  int64_t (*panel_bytes)(const MatRef& w);
  MatRef (*to_panels)(const MatRef& w, void* dst, ThreadPool* pool);
};

// The scalar oracle.
const Kernels& ReferenceKernels();
// The best SIMD target this CPU supports; chosen on the first call.
const Kernels& BestKernels();
// Every compiled SIMD target this CPU supports (for tests and benchmarks), best first.
std::vector<const Kernels*> AllKernelTargets();

// Helpers shared by kernels and tests.
// Quantizes one activation row to Q8_0 blocks exactly as ggml does for its Q8_0/Q4_0 matmuls. n % 32 == 0.
void QuantizeRowQ8_0(const float* x, int64_t n, BlockQ8_0* out);
// One row of per-channel int8 weights in Q8_0 blocks (n % 32 == 0): d = fp16(max|x| / 127) in every block,
// q = rint(x / d) clamped to [-127, 127] (scaleinfer quantize --type int8).
void QuantizeRowInt8PerChannel(const float* x, int64_t n, BlockQ8_0* out);
// Quantizes one activation row for per-channel int8 weights: *scale = amax / 63, q[i] = rint(x[i] * 63 / amax)
// (round to nearest even), |q| <= 63; all zero (scale 0) when amax is 0. Any n.
void QuantizeRowInt8Act(const float* x, int64_t n, int8_t* q, float* scale);
// True when every row of the Q8_0 matrix w has one scale in all its blocks (the form of per-channel int8);
// otherwise false with *bad_row set to the first row that does not.
bool Q8_0RowsShareScale(const MatRef& w, int64_t* bad_row);
// Quantizes one row to Q4_0 as ggml's quantize_row_q4_0_ref (for make-model/quantize). n % 32 == 0.
void QuantizeRowQ4_0(const float* x, int64_t n, BlockQ4_0* out);
// Writes one row of x (f32) in dtype t. out must hold DTypeRowBytes(t, n) bytes.
void QuantizeRow(DType t, const float* x, int64_t n, void* out);
// Dequantizes one row of `n` elements of dtype t.
void DequantizeRow(DType t, const void* row, int64_t n, float* out);

}  // namespace si
