// Element types, numbered as ggml numbers them (the GGUF tensor type field), with their block layouts.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "si/base/status.h"

namespace si {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

// Block layouts exactly as in ggml-common.h. `d` is an IEEE half.
inline constexpr int kQK8_0 = 32;
struct BlockQ8_0 {
  uint16_t d;           // fp16 scale
  int8_t qs[kQK8_0];    // x[j] = d * qs[j]
};
static_assert(sizeof(BlockQ8_0) == 34);

inline constexpr int kQK4_0 = 32;
struct BlockQ4_0 {
  uint16_t d;                // fp16 scale
  uint8_t qs[kQK4_0 / 2];    // x[j] = d * ((qs[j] & 15) - 8), x[j + 16] = d * ((qs[j] >> 4) - 8)
};
static_assert(sizeof(BlockQ4_0) == 18);

// k-quants: super-blocks of 256 elements (kQK_K) split into sub-blocks with their own scales, quantized
// relative to one or two fp16 super-block scales. Layouts as in ggml-common.h (QK_K = 256).
inline constexpr int kQK_K = 256;
inline constexpr int kKScaleBytes = 12;  // eight 6-bit scales + eight 6-bit mins, packed (see kquants.h)

// 4.5 bits/weight. Sub-block j of 32: x = d * sc_j * q - dmin * m_j, q in [0, 15].
// qs[32 * (j / 2) + l] holds element 64 * (j / 2) + l in its low nibble and element 64 * (j / 2) + 32 + l in
// its high nibble.
struct BlockQ4_K {
  uint16_t d;                    // fp16 super-block scale for the sub-block scales
  uint16_t dmin;                 // fp16 super-block scale for the sub-block mins
  uint8_t scales[kKScaleBytes];  // 6-bit sc_j and m_j, j = 0..7
  uint8_t qs[kQK_K / 2];         // 4-bit quants
};
static_assert(sizeof(BlockQ4_K) == 144);

// 5.5 bits/weight. As Q4_K with a fifth bit per element: q = nibble + 16 * bit, bit j of qh[l] belongs to
// sub-block j (element 32 * j + l).
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQK_K / 8];         // high bits
  uint8_t qs[kQK_K / 2];         // low 4 bits, packed as in Q4_K
};
static_assert(sizeof(BlockQ5_K) == 176);

// 6.5625 bits/weight. Sub-block s of 16: x = d * scales[s] * (q - 32), q in [0, 63]. Per half of 128
// elements: ql[0..63] hold low nibbles (elements l and l + 64 in ql[l], l + 32 and l + 96 in ql[l + 32]),
// qh[0..31] the 2 high bits of elements l, l + 32, l + 64, l + 96 at bit offsets 0, 2, 4, 6.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// Activations for the k-quant dot products (never stored in files): x = d * qs, plus the sums of each 16
// quants so that a sub-block's min term costs one multiply.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// Name as ggml prints it ("f32", "q8_0", ...) or "type<N>" for unknown numbers.
std::string_view DTypeName(DType t);
Result<DType> ParseDType(std::string_view name);
// True for the types this engine can load and compute with.
bool IsSupportedDType(DType t);
// Elements per block (1 for plain types) and bytes per block. Only valid for supported types.
int64_t DTypeBlockSize(DType t);
int64_t DTypeBlockBytes(DType t);
// Bytes of a row of `n` elements; n must be a multiple of the block size.
int64_t DTypeRowBytes(DType t, int64_t n);

// IEEE half and bfloat16 conversions (round to nearest even, as ggml's GGML_FP32_TO_FP16/BF16 do).
float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);
inline float BF16ToF32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t F32ToBF16(float f);

}  // namespace si
