// The tensor-role table: one row per kind of weight, giving its GGUF name, its logical axes and the op that
// consumes it. Loading (which tensors, what shapes), sharding (logical axis -> mesh axes) and cost accounting
// (FLOPs and bytes per op) are all driven by this table; an architecture is a list of the roles it uses.
//
// Shapes are row-major [rows, cols]. A matmul weight is W[N, K] with C[M, N] = A[M, K] * W^T, so `rows` is
// the output axis and `cols` the input axis. In GGUF order (ne[0] innermost) that is ne = {cols, rows}.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "si/model/config.h"

namespace si {

enum class Role : int {
  kTokenEmbd,
  kPosEmbd,
  kTokenTypes,
  kEmbdNorm,
  kEmbdNormBias,
  kAttnNorm,
  kAttnNormBias,
  kWqkv,
  kBqkv,
  kWq,
  kBq,
  kWk,
  kBk,
  kWv,
  kBv,
  kWo,
  kBo,
  kAttnOutNorm,  // bert: LayerNorm after attention + residual
  kAttnOutNormBias,
  kFfnNorm,
  kFfnNormBias,
  kWgate,
  kWup,
  kBup,
  kWdown,
  kBdown,
  kLayerOutNorm,  // bert: LayerNorm after FFN + residual
  kLayerOutNormBias,
  kOutputNorm,
  kOutputNormBias,
  kOutput,
  kNumRoles
};
inline constexpr int kNumRoles = static_cast<int>(Role::kNumRoles);

// Logical axes. Their sizes come from the config (AxisSize); the partitioner maps them to mesh axes.
enum class Axis { kNone, kVocab, kModel, kFfn, kQ, kKv, kQkv, kCtx, kTypes };

enum class OpKind {
  kEmbedding,  // row lookup
  kMatMul,     // C = A * W^T
  kBias,       // added to a matmul output
  kNormGain,
  kNormBias,
};

struct RoleInfo {
  Role role;
  std::string_view gguf_name;  // "blk.%d." prefix is added when per_layer
  bool per_layer;
  OpKind op;
  Axis rows;  // kNone for 1-D tensors
  Axis cols;
};

enum class Need { kRequired, kOptional };
struct ArchRole {
  Role role;
  Need need;
};

const RoleInfo& GetRoleInfo(Role role);
// The roles an architecture uses, in load order.
std::span<const ArchRole> ArchRoles(Arch arch);
int64_t AxisSize(const ModelConfig& config, Axis axis);
std::string_view AxisName(Axis axis);
// Full GGUF tensor name, e.g. "blk.3.attn_q.weight" (layer ignored for global roles).
std::string TensorName(Role role, int64_t layer);

}  // namespace si
