#include "si/analysis/op_cost.h"

#include "si/base/check.h"

namespace si::analysis {

bool WeightMatrix::is_attention() const {
  switch (role) {
    case Role::kWq:
    case Role::kWk:
    case Role::kWv:
    case Role::kWqkv:
    case Role::kWo:
      return true;
    default:
      return false;
  }
}

namespace {

// The bias role that goes with a matmul role (for has_bias / arch lists).
Role BiasOf(Role r) {
  switch (r) {
    case Role::kWqkv:
      return Role::kBqkv;
    case Role::kWq:
      return Role::kBq;
    case Role::kWk:
      return Role::kBk;
    case Role::kWv:
      return Role::kBv;
    case Role::kWo:
      return Role::kBo;
    case Role::kWup:
      return Role::kBup;
    case Role::kWdown:
      return Role::kBdown;
    default:
      return Role::kNumRoles;
  }
}

bool ArchHas(const ModelConfig& c, Role role) {
  for (const ArchRole& ar : ArchRoles(c.arch)) {
    if (ar.role == role) return true;
  }
  return false;
}

WeightMatrix MakeMatrix(const ModelConfig& c, Role role) {
  const RoleInfo& info = GetRoleInfo(role);
  WeightMatrix w;
  w.role = role;
  w.name = info.gguf_name;
  w.row_axis = info.rows;
  w.col_axis = info.cols;
  w.rows = AxisSize(c, info.rows);
  w.cols = AxisSize(c, info.cols);
  Role b = BiasOf(role);
  w.has_bias = b != Role::kNumRoles && ArchHas(c, b);
  return w;
}

}  // namespace

std::vector<WeightMatrix> LayerMatrices(const ModelConfig& c) {
  std::vector<WeightMatrix> out;
  for (const ArchRole& ar : ArchRoles(c.arch)) {
    const RoleInfo& info = GetRoleInfo(ar.role);
    if (info.op != OpKind::kMatMul || !info.per_layer) continue;
    // The table lists both gate and up for llama; a GELU FFN has no gate.
    if (ar.role == Role::kWgate && c.ffn != FfnKind::kSwiGlu) continue;
    out.push_back(MakeMatrix(c, ar.role));
  }
  return out;
}

WeightMatrix LmHeadMatrix(const ModelConfig& c) {
  WeightMatrix w = MakeMatrix(c, Role::kOutput);
  if (c.tied_output) w.name = GetRoleInfo(Role::kTokenEmbd).gguf_name;
  w.has_bias = false;
  return w;
}

int64_t LayerMatmulParams(const ModelConfig& c) {
  int64_t p = 0;
  for (const auto& w : LayerMatrices(c)) p += w.params();
  return p;
}

int64_t TotalParams(const ModelConfig& c) {
  int64_t total = 0;
  bool has_output = false;
  for (const ArchRole& ar : ArchRoles(c.arch)) {
    const RoleInfo& info = GetRoleInfo(ar.role);
    if (ar.role == Role::kWgate && c.ffn != FfnKind::kSwiGlu) continue;
    if (ar.role == Role::kOutput) {
      if (c.tied_output) continue;
      has_output = true;
    }
    int64_t n = AxisSize(c, info.rows) * AxisSize(c, info.cols);
    total += info.per_layer ? n * c.num_layers : n;
  }
  (void)has_output;
  return total;
}

int64_t ParamsReadPerToken(const ModelConfig& c) {
  int64_t p = LayerMatmulParams(c) * c.num_layers;
  if (c.arch != Arch::kBert) p += LmHeadMatrix(c).params();
  return p;
}

double LayerMatmulFlopsPerToken(const ModelConfig& c) {
  return 2.0 * static_cast<double>(LayerMatmulParams(c));
}

double AttentionFlopsPerToken(const ModelConfig& c, double ctx) {
  // QK^T: num_heads * ctx * head_dim MACs; PV: the same.
  return 2.0 * 2.0 * static_cast<double>(c.num_heads * c.head_dim) * ctx;
}

double KvBytesPerTokenPerLayer(const ModelConfig& c, double bytes_per_elem) {
  return 2.0 * static_cast<double>(c.kv_dim()) * bytes_per_elem;
}

}  // namespace si::analysis
