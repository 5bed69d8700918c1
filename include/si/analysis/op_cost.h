// Op costs derived from the tensor-role table: the matmul weights of a layer, their FLOPs and
// bytes. The analytical model (cost_model.h), the workload analysis (workload.h) and the kernel
// benches all read these, so there is one op-cost source.
//
// Matmul convention (as everywhere): C[M, N] = A[M, K] * W[N, K]^T, W = [rows = N, cols = K]; FLOPs
// = 2*M*N*K.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "si/model/config.h"
#include "si/model/tensor_roles.h"

namespace si::analysis {

struct WeightMatrix {
  Role role;
  std::string_view name;  // GGUF base name, e.g. "attn_q.weight"
  int64_t rows = 0;       // output features (N)
  int64_t cols = 0;       // input features (K)
  Axis row_axis = Axis::kNone;
  Axis col_axis = Axis::kNone;
  bool has_bias = false;
  int64_t params() const { return rows * cols; }
  // Reads the residual stream (K = model_dim): Q/K/V, gate, up. Writes it (N = model_dim): O, down.
  bool reads_model() const { return col_axis == Axis::kModel; }
  bool writes_model() const { return row_axis == Axis::kModel; }
  bool is_attention() const;  // Q/K/V/QKV/O
};

// The matmul weights of one layer, in the arch's role order (from ArchRoles + GetRoleInfo +
// AxisSize).
std::vector<WeightMatrix> LayerMatrices(const ModelConfig& config);
// The logits matrix: `output.weight`, or the token embedding when tied / absent. rows = vocab, cols
// = E.
WeightMatrix LmHeadMatrix(const ModelConfig& config);

int64_t LayerMatmulParams(const ModelConfig& config);
// Every tensor of the arch (matmul weights, embeddings, norms, biases), all layers; the LM head
// counted once when tied.
int64_t TotalParams(const ModelConfig& config);
// Parameters read per decoded token: all layer matrices + the LM head (norms and biases are
// negligible and included).
int64_t ParamsReadPerToken(const ModelConfig& config);

// Matmul FLOPs of one layer per token (2 * sum(rows * cols)).
double LayerMatmulFlopsPerToken(const ModelConfig& config);
// Attention act-to-act FLOPs of one layer for one query token attending over `ctx` positions
// (Q*K^T and P*V, 2 FLOPs per MAC).
double AttentionFlopsPerToken(const ModelConfig& config, double ctx);
// KV-cache bytes per token per layer (K and V, all kv heads).
double KvBytesPerTokenPerLayer(const ModelConfig& config, double bytes_per_elem);

}  // namespace si::analysis
