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
