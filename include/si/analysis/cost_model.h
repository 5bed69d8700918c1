// The analytical cost model of Pope et al. (§3, App. A): per phase, compute, weight-load, KV-load
// and collective time for each FFN layout and attention sharding, memory per chip, and the planner
// that picks the layout per phase.
//
// Combination rule (one per chip, per layer): t = max(t_compute, t_hbm) + t_collectives, where
//   t_compute = FLOPs / (peak * eff.matmul)          (matmuls + attention act-to-act)
//   t_hbm     = (weight bytes + KV bytes) / (mem_bw * eff.memory)
//   t_coll    = sum over collectives of  bytes * (K-1)/K / (links * link_bw * eff.network)
//                                        + steps * step_latency_s   (all-reduce: 2 * steps)
// i.e. HBM streaming overlaps with compute (roofline), collectives are exposed. Once per pass (not
// per layer) come the LM head's collectives (head_collectives: the final hidden rows gathered, the
// logits all-gathered over every chip with the vocabulary split in blocks of ceil(V / chips), as
// the distributed engine does) and its matmul; the embedding is a replicated table lookup (no
// collective). Fitting Tables 2-3 with collectives overlapped gave errors of 20-30% on the
// low-batch rows; see docs/planner.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "si/analysis/hardware.h"
#include "si/analysis/models.h"
#include "si/base/status.h"

namespace si::analysis {

enum class FfnLayout { k1dWs, k2dWs, kWgX, kWgXy, kWgXyz };
enum class AttnSharding { kHeads, kBatch };
enum class Phase { kPrefill, kDecode };

std::string_view LayoutName(FfnLayout layout);  // 1d-ws, 2d-ws, wg-x, wg-xy, wg-xyz
Result<FfnLayout> ParseLayout(std::string_view name);
std::string_view AttnName(AttnSharding attn);  // heads, batch
Result<AttnSharding> ParseAttn(std::string_view name);
std::string_view PhaseName(Phase phase);
inline constexpr FfnLayout kAllLayouts[] = {FfnLayout::k1dWs, FfnLayout::k2dWs, FfnLayout::kWgX,
                                            FfnLayout::kWgXy, FfnLayout::kWgXyz};

// Chips as an x*y*z mesh. 2D weight-stationary shards E over x and F (and heads) over y*z.
struct Mesh {
  int x = 1, y = 1, z = 1;
  int chips() const { return x * y * z; }
};
// TPU v4: the slice shapes of Pope et al.'s code (8: 2x2x2, 16: 2x4x2, 32: 4x2x4, 64: 4x4x4, 128:
// 8x4x4, 256: 4x8x8), so X ~ 0.5*sqrt(n) as §3.2.2 derives. Other chip counts and switch
// topologies: a power-of-two X nearest 0.5*sqrt(n), the rest split over y and z.
Result<Mesh> MeshFor(const HardwareSpec& hw, int chips);

struct CollectiveCost {
  std::string kind;  // all-gather, reduce-scatter, all-to-all
  std::string axes;  // x, yz, xyz, ...
  std::string what;  // "activations", "weights", "attention q/k/v", ...
  int group = 1;     // K chips
  int count = 1;     // how many per layer
  double bytes =
      0;  // per-chip volume per layer (all `count` together); bytes * (K-1)/K = bytes sent
          // (all-reduce: 2x the buffer, padded to a multiple of K elements, as comm.h)
  double time_s = 0;     // per layer, bandwidth + latency
  double latency_s = 0;  // the step-latency part of time_s
};

struct MemoryUse {
  double weights = 0;   // resident weight shard
  double kv_cache = 0;  // at the end of the phase
  double activations =
      0;  // peak transient activations (+ the gathered-weight buffer for WG layouts)
  double total() const { return weights + kv_cache + activations; }
};

struct Breakdown {
  double compute_s = 0;       // matmul + attention FLOPs at peak * eff.matmul
  double weight_load_s = 0;   // HBM time of the weights
  double kv_load_s = 0;       // HBM time of the KV cache (read in decode, written in prefill)
  double comm_s = 0;          // collective bandwidth time
  double comm_latency_s = 0;  // collective step latencies
  double hidden_s = 0;  // the smaller of compute and HBM time, overlapped (not in the latency)
};

struct PhaseCost {
  Phase phase = Phase::kPrefill;
  FfnLayout layout = FfnLayout::k2dWs;
  AttnSharding attn = AttnSharding::kHeads;
  Mesh mesh;
  double latency_s = 0;  // prefill: one pass; decode: all gen_len steps
  double mfu =
      0;  // 2 * nominal_params * tokens / (chips * peak * latency): Pope et al.'s definition
  double tokens = 0;  // tokens processed (prefill B*L_in; decode B*L_gen)
  Breakdown breakdown;
  std::vector<CollectiveCost> collectives;       // per layer (prefill pass / one decode step)
  std::vector<CollectiveCost> head_collectives;  // LM head, once per pass (not per layer)
  MemoryUse memory;
  bool fits = true;
  bool valid = true;  // false when the layout cannot apply (batch sharding with batch 1, heads that
                      // do not split over the head shards); `note` says why
  std::string note;
  // Cost in chip-seconds per token (Pope et al. §2.2): chips * latency / tokens.
  double cost_chip_s_per_token() const {
    return tokens > 0 ? mesh.chips() * latency_s / tokens : 0;
  }
};

struct PlanRequest {
  int chips = 64;
  int64_t batch = 1;
  int64_t input_len = 2048;
  int64_t gen_len = 64;
  double weight_bytes = 2;  // 2: bf16, 1: int8 (weight-only; matmuls stay bf16)
  double act_bytes = 2;     // activation bytes in collectives (bf16; 4 for the f32 CPU engine)
  std::optional<FfnLayout> layout;   // forced for both phases (else auto)
  std::optional<AttnSharding> attn;  // forced for both phases (else auto)
  int decode_chips = 0;  // chips for decode when it differs (Pope et al. Table 3); 0: chips
  // Prefill computes logits for every position (`logits --all`), not only the last one per
  // sequence.
  bool all_logits = false;
  // The layernorm/RMSNorm statistics all-reduce of 2D weight-stationary (E split over x at the
  // norm: 1 (RMS) or 2 (mean, square) floats per token, all-reduced over x per norm). Pope et al.'s
  // formulas leave it out (false keeps Tables 2-3 as fitted); the distributed engine does it
  // (--layout auto sets true).
  bool count_norm_stats = false;
  // Head-sharded attention when the head shards do not divide the heads: with true, a shard count
  // that is a multiple of num_kv_heads (multiquery: 1) replicates each KV head on the shards whose
  // query heads use it (Pope et al. §3.3's multiquery baseline; likewise num_heads); with false
  // (the distributed engine, DeriveLayerProgram) num_heads and num_kv_heads must both be divisible
  // by the shards. Otherwise invalid.
  bool replicate_kv_heads = true;
};

// Evaluates one phase under one layout and attention sharding. Never fails: an inapplicable
// combination has valid = false, one that does not fit has fits = false.
PhaseCost EvaluatePhase(const AnalysisModel& model, const HardwareSpec& hw, const Mesh& mesh,
                        Phase phase, FfnLayout layout, AttnSharding attn, const PlanRequest& req);

struct PlanResult {
  PhaseCost prefill;
  PhaseCost decode;
  std::vector<PhaseCost>
      prefill_alternatives;  // every valid (layout, attention), sorted by latency
  std::vector<PhaseCost> decode_alternatives;
  double total_latency_s = 0;
  double memory_per_chip_bytes = 0;  // max over the two phases
};

// The planner. Auto policy, as Pope et al. §3.2.3/§4.1: the weights are stored once in the E_x F_yz
// layout shared by 2D weight-stationary and the weight-gathered layouts, so both phases choose
// among {2d-ws, wg-x, wg-xy, wg-xyz} (and heads/batch attention) by modeled latency, among the
// combinations that fit in memory. 1D weight-stationary (a different weight layout) is evaluated
// and listed, and chosen only when forced. Errors: batch/lengths out of range; ResourceExhausted
// when nothing (or the forced layout) fits.
Result<PlanResult> Plan(const AnalysisModel& model, const HardwareSpec& hw, const PlanRequest& req);
// One phase of Plan on `chips` chips; `alternatives` receives every valid combination, sorted by
// latency.
Result<PhaseCost> PlanPhase(const AnalysisModel& model, const HardwareSpec& hw, int chips,
                            Phase phase, const PlanRequest& req,
                            std::vector<PhaseCost>* alternatives);

// ---- Closed forms used by the paper's tables and figures ----

// Total KV-cache bytes (all layers, K and V) for batch x ctx tokens.
double KvCacheBytes(const ModelConfig& config, int64_t batch, int64_t ctx,
                    double bytes_per_elem = 2);
// Pope et al. Table 1: the longest context whose KV cache fits in `kv_fraction` of each chip's
// memory, with the cache sharded over heads (multiquery: replicated) or over batch.
int64_t MaxContextLength(const ModelConfig& config, const HardwareSpec& hw, int chips,
                         int64_t batch, double kv_fraction, AttnSharding attn);

// Pope et al. Fig. 3 / App. A.2: per-chip communication volume of one FFN block (two matrices E x
// F, (K-1)/K taken as 1, bf16) as fixed + per_token * tokens.
struct LinearVolume {
  double fixed_bytes = 0;
  double per_token_bytes = 0;
  double at(double tokens) const { return fixed_bytes + per_token_bytes * tokens; }
};
LinearVolume PaperFfnCommVolume(FfnLayout layout, int64_t model_dim, int64_t ffn_dim,
                                const Mesh& mesh, double bytes_per_elem = 2);
// Tokens per batch where layout b becomes cheaper than layout a (a has the smaller fixed cost).
double CommCrossoverTokens(const LinearVolume& a, const LinearVolume& b);

// ---- Pope et al. Tables 2-3 and the fit of the efficiency constants ----

struct PaperRow {
  std::string label;  // "540B low-latency prefill"
  std::string model;  // preset name
  Phase phase;
  int chips;
  int64_t batch;
  double weight_bytes;
  FfnLayout layout;
  AttnSharding attn;
  double latency_s;  // paper
  double mfu;        // paper (fraction)
};
// The eight columns of Tables 2 and 3 (context 2048: input 2048, 64 generated tokens).
std::vector<PaperRow> PopeTables23();

struct FitResult {
  Efficiencies eff;
  double step_latency_s = 0;
  double rms_log_error = 0;
  double max_abs_rel_error = 0;
};
// Grid search minimising sum of squared log-latency errors over the rows (layouts forced to the
// paper's): eff.matmul in [0.50, 1.00] step 0.01, eff.network in [0.20, 1.00] step 0.05, step
// latency in [0, 20] us step 0.25 us; eff.memory held at 1.
FitResult FitEfficiencies(const HardwareSpec& hw, const std::vector<PaperRow>& rows);

}  // namespace si::analysis
