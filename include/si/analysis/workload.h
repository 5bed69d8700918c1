// Workload analysis of Kim et al. (survey) §2.2: per op and per op group, FLOPs, memory bytes
// (MOPs) and arithmetic intensity for a whole forward pass of an encoder over `seq_len` tokens, or,
// for a decoder, the whole generation of `seq_len` tokens one at a time with a KV cache (no
// prompt), as the survey counts.
//
// Two counting conventions:
//   kSurvey  (the survey's, reconstructed; see docs/analyze.md): 1 byte per parameter or
//   activation, a MAC
//            is 2 FLOPs, projections 2*m*n*k (bias included), act-to-act matmuls (2k-1) per output,
//            each operand read once and each result written once; non-linear ops: Softmax 4 FLOPs /
//            2 bytes per score, GELU 10 FLOPs / 2 bytes per FFN hidden element, each Add &
//            LayerNorm 9 FLOPs / 4.5 bytes per element (the survey gives only the per-layer sum, 58
//            FLOPs and 17 bytes per token-channel).
//   kNative  (ours): bf16 activations and weights (2 bytes), 2 FLOPs per MAC everywhere, per-op
//   non-linear
//            counts written out in workload.cc.
// Embeddings and the LM head are excluded in both (the survey's totals are the sum of the block
// ops).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "si/model/config.h"

namespace si::analysis {

enum class Convention { kSurvey, kNative };

struct Cost {
  double flops = 0;
  double bytes = 0;
  double intensity() const { return bytes > 0 ? flops / bytes : 0; }
  Cost& operator+=(const Cost& o) {
    flops += o.flops;
    bytes += o.bytes;
    return *this;
  }
};

inline constexpr const char* kGroupNames[] = {"mha_proj", "act_to_act", "ffn", "nonlinear"};
inline constexpr int kNumGroups = 4;

struct OpCostRow {
  std::string name;  // attn_q.weight, q*k^T, softmax, ...
  int group = 0;     // index into kGroupNames
  Cost cost;         // whole model (all layers, whole generation for decoders)
};

struct WorkloadResult {
  int64_t seq_len = 0;
  bool decoder = false;
  std::vector<OpCostRow> ops;
  Cost groups[kNumGroups];
  Cost total;
};

WorkloadResult AnalyzeWorkload(const ModelConfig& config, int64_t seq_len, Convention convention);

}  // namespace si::analysis
