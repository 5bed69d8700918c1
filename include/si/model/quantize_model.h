// Re-quantizes a GGUF model file (scaleinfer quantize). The tensor-role table decides which tensors change:
// matmul weights and the token embedding; norms, biases and position/type tables are copied as they are.
//
// Schemes:
//   q8_0, q4_0       every matmul weight and the token embedding in that type.
//   q4_k, q5_k, q6_k every matmul weight in that k-quant, output.weight in q6_K (as llama.cpp's k-quant mixes
//                    do: the output projection is the most sensitive matrix).
//   q4_k_m           llama.cpp's Q4_K_M mix: q4_K, but q6_K for output.weight and for attn_v / ffn_down in the
//                    first and last eighth of the layers and every third layer between.
//   int8             Pope et al.'s int8 weights: symmetric, one scale per output channel (row). Stored as Q8_0
//                    with the row's scale repeated in every block of 32, so llama.cpp loads it and the Q8_0
//                    kernels run it; the cost is the 2-byte scale per 32 values (6% more bytes than a
//                    dedicated per-channel type).
// A tensor whose column count the type's block does not divide falls back to q8_0, then f16 (reported).
// general.file_type is set to llama.cpp's enum for the scheme.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "si/base/status.h"
#include "si/base/thread_pool.h"
#include "si/tensor/dtype.h"

namespace si {

enum class QuantScheme { kQ8_0, kQ4_0, kQ4_K, kQ5_K, kQ6_K, kQ4_K_M, kInt8 };
Result<QuantScheme> ParseQuantScheme(const std::string& name);
const char* QuantSchemeName(QuantScheme s);

struct QuantizeReport {
  int64_t tensors = 0, quantized = 0, fallbacks = 0, requantized = 0;  // requantized: source already quantized
  int64_t bytes_in = 0, bytes_out = 0;                                  // tensor data only
  std::vector<std::pair<DType, int64_t>> tensors_by_type;              // output types
  double rel_rms_error = 0;  // sqrt(sum (w - q(w))^2 / sum w^2) over all quantized tensors, vs the source values
  std::vector<std::string> notes;                                       // fallbacks, requantization warnings
};

// Reads `in` (any model the loader accepts), writes `out` atomically. `out` may not be `in`.
Status QuantizeModelFile(const std::string& in, const std::string& out, QuantScheme scheme, ThreadPool* pool,
                         QuantizeReport* report);

}  // namespace si
