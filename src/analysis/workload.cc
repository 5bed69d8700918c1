#include "si/analysis/workload.h"

#include "si/analysis/op_cost.h"

namespace si::analysis {
namespace {

enum Group { kMhaProj = 0, kActToAct = 1, kFfn = 2, kNonlinear = 3 };

struct Counts {
  double elem_bytes;
  bool survey;
};

}  // namespace

WorkloadResult AnalyzeWorkload(const ModelConfig& c, int64_t seq_len, Convention convention) {
  WorkloadResult r;
  r.seq_len = seq_len;
  r.decoder = !c.is_encoder();
  const bool survey = convention == Convention::kSurvey;
  const double b = survey ? 1.0 : 2.0;  // bytes per element
  const double l = static_cast<double>(seq_len);
  const double layers = static_cast<double>(c.num_layers);
  const double d = static_cast<double>(c.model_dim);
  const double h = static_cast<double>(c.num_heads);
  const double dh = static_cast<double>(c.head_dim);
  const double qd = static_cast<double>(c.q_dim());
  const double kvd = static_cast<double>(c.kv_dim());
  const double f = static_cast<double>(c.ffn_dim);
  // Encoder: one pass over l tokens. Decoder: l steps of one token; step t attends over t
  // positions. sum_t 1 = l, sum_t t = l(l+1)/2: per-token costs scale with `tokens`, per-position
  // costs with `pairs`.
  const double tokens = l;
  const double pairs = r.decoder ? l * (l + 1) / 2 : l * l;
  const double weight_loads = r.decoder ? l : 1;  // weights reloaded for every generated token

  auto add = [&](std::string name, int group, double flops_per_layer, double bytes_per_layer) {
    OpCostRow row{std::move(name), group, {flops_per_layer * layers, bytes_per_layer * layers}};
    r.groups[group] += row.cost;
    r.total += row.cost;
    r.ops.push_back(std::move(row));
  };

  // Projections, from the tensor-role table.
  for (const WeightMatrix& w : LayerMatrices(c)) {
    const double n = static_cast<double>(w.rows), k = static_cast<double>(w.cols);
    const double flops = 2.0 * n * k * tokens;
    const double bytes = (n * k * weight_loads + k * tokens + n * tokens) * b;
    add(std::string(w.name), w.is_attention() ? kMhaProj : kFfn, flops, bytes);
  }
  // Act-to-act matmuls, per head: scores = Q K^T, out = P V.
  const double qk_flops = survey ? h * pairs * (2 * dh - 1) : 2 * h * pairs * dh;
  const double pv_flops = survey ? h * dh * (2 * pairs - tokens) : 2 * h * pairs * dh;
  const double kv_reads = r.decoder ? pairs : tokens;  // decoder re-reads the cache each step
  add("q*k^T", kActToAct, qk_flops, (qd * tokens + kvd * kv_reads + h * pairs) * b);
  add("p*v", kActToAct, pv_flops, (h * pairs + kvd * kv_reads + qd * tokens) * b);

  // Non-linear ops.
  const double hidden = c.ffn == FfnKind::kSwiGlu ? f : f;  // elements through the activation
  if (survey) {
    add("softmax", kNonlinear, 4 * h * pairs, 2 * h * pairs * b);
    add("gelu", kNonlinear, 10 * hidden * tokens, 2 * hidden * tokens * b);
    if (c.ffn == FfnKind::kSwiGlu)
      add("swiglu gate multiply", kNonlinear, hidden * tokens, 3 * hidden * tokens * b);
    // Plus each LayerNorm's gain and bias (2d parameters), loaded like weights.
    add("add & layernorm (x2)", kNonlinear, 2 * 9 * d * tokens,
        2 * (4.5 * d * tokens + 2 * d * weight_loads) * b);
  } else {
    // Softmax: max, subtract, exp, sum, divide (5 FLOPs); read scores, write probabilities.
    add("softmax", kNonlinear, 5 * h * pairs, 2 * h * pairs * b);
    if (c.ffn == FfnKind::kSwiGlu) {
      // silu(g) * u: x / (1 + exp(-x)) (4) + multiply (1); read g and u, write the product.
      add("swiglu", kNonlinear, 5 * f * tokens, 3 * f * tokens * b);
    } else {
      // tanh GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): 8 FLOPs + tanh.
      add("gelu", kNonlinear, 9 * f * tokens, 2 * f * tokens * b);
    }
    const double norm_flops =
        c.norm == NormKind::kRmsNorm ? 4 : 7;  // square, sum, scale, gain (+ mean, sub, bias)
    const double norms = c.block == BlockKind::kParallel ? 1 : 2;
    const double norm_params = c.norm == NormKind::kRmsNorm ? 1 : 2;
    add(c.norm == NormKind::kRmsNorm ? "rmsnorm" : "layernorm", kNonlinear,
        norms * norm_flops * d * tokens,
        norms * (2 * d * tokens + norm_params * d * weight_loads) * b);
    add("residual add", kNonlinear, 2 * d * tokens, 2 * 3 * d * tokens * b);
  }
  return r;
}

}  // namespace si::analysis
