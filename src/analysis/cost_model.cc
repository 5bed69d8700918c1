#include "si/analysis/cost_model.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "si/analysis/op_cost.h"
#include "si/base/check.h"

namespace si::analysis {

std::string_view LayoutName(FfnLayout l) {
  switch (l) {
    case FfnLayout::k1dWs:
      return "1d-ws";
    case FfnLayout::k2dWs:
      return "2d-ws";
    case FfnLayout::kWgX:
      return "wg-x";
    case FfnLayout::kWgXy:
      return "wg-xy";
    case FfnLayout::kWgXyz:
      return "wg-xyz";
  }
  return "?";
}

Result<FfnLayout> ParseLayout(std::string_view name) {
  for (FfnLayout l : kAllLayouts) {
    if (name == LayoutName(l)) return l;
  }
  return InvalidArgumentError("unknown layout '", name,
                              "' (1d-ws, 2d-ws, wg-x, wg-xy, wg-xyz, auto)");
}

std::string_view AttnName(AttnSharding a) { return a == AttnSharding::kHeads ? "heads" : "batch"; }

Result<AttnSharding> ParseAttn(std::string_view name) {
  if (name == "heads") return AttnSharding::kHeads;
  if (name == "batch") return AttnSharding::kBatch;
  return InvalidArgumentError("unknown attention sharding '", name, "' (heads, batch, auto)");
}

std::string_view PhaseName(Phase p) { return p == Phase::kPrefill ? "prefill" : "decode"; }

namespace {

bool IsPow2(int n) { return n > 0 && (n & (n - 1)) == 0; }

// Balanced power-of-two mesh with x nearest 0.5 * sqrt(n) (Pope et al. §3.2.2 optimum for F = 4E).
Mesh BalancedMesh(int n) {
  Mesh m;
  if (!IsPow2(n)) {
    m.y = n;
    return m;
  }
  int x = 1;
  const double target = 0.5 * std::sqrt(static_cast<double>(n));
  while (x * 2 <= n && std::abs(std::log2(x * 2.0) - std::log2(target)) <
                           std::abs(std::log2(x * 1.0) - std::log2(target))) {
    x *= 2;
  }
  m.x = x;
  int rest = n / x;
  int z = 1;
  while (z * z < rest) z *= 2;
  m.z = z;
  m.y = rest / z;
  return m;
}

}  // namespace

Result<Mesh> MeshFor(const HardwareSpec& hw, int chips) {
  if (chips < 1) return InvalidArgumentError("--chips must be >= 1, got ", chips);
  if (chips > hw.max_chips) {
    return InvalidArgumentError(hw.name, " has at most ", hw.max_chips,
                                " chips in this model, got ", chips);
  }
  if (hw.topology == Topology::kTorus3d) {
    switch (chips) {
      case 1:
        return Mesh{1, 1, 1};
      case 2:
        return Mesh{1, 1, 2};
      case 4:
        return Mesh{1, 2, 2};
      case 8:
        return Mesh{2, 2, 2};
      case 16:
        return Mesh{2, 4, 2};
      case 32:
        return Mesh{4, 2, 4};
      case 64:
        return Mesh{4, 4, 4};
      case 128:
        return Mesh{8, 4, 4};
      case 256:
        return Mesh{4, 8, 8};
      default:
        return InvalidArgumentError("tpu-v4 slices here are 1, 2, 4, 8, ..., 256 chips, got ",
                                    chips);
    }
  }
  return BalancedMesh(chips);
}

namespace {

struct AxisSet {
  bool x = false, y = false, z = false;
  std::string name() const { return StrCat(x ? "x" : "", y ? "y" : "", z ? "z" : ""); }
};
constexpr AxisSet kX{true, false, false};
constexpr AxisSet kZ{false, false, true};
constexpr AxisSet kYZ{false, true, true};
constexpr AxisSet kXY{true, true, false};
constexpr AxisSet kXYZ{true, true, true};

int GroupSize(const Mesh& m, AxisSet a) {
  return (a.x ? m.x : 1) * (a.y ? m.y : 1) * (a.z ? m.z : 1);
}

// Bandwidth (bytes/s) a chip gets in a collective over axes `a`, and the number of sequential ring
// steps.
void CollectiveParams(const HardwareSpec& hw, const Mesh& m, AxisSet a, double* bw, int* steps) {
  const int sizes[3] = {a.x ? m.x : 1, a.y ? m.y : 1, a.z ? m.z : 1};
  if (hw.topology == Topology::kTorus3d) {
    // Ring per axis; a torus axis of size > 2 with wraparound gives a bidirectional ring (2 links),
    // an axis without wraparound (slices below wrap_min_chips) or of size 2 gives one link's worth.
    const bool wrap = m.chips() >= hw.wrap_min_chips;
    int links = 0;
    *steps = 0;
    for (int k : sizes) {
      if (k <= 1) continue;
      links += (wrap && k > 2) ? 2 : 1;
      *steps += k - 1;
    }
    *bw = links * hw.link_bw;
    return;
  }
  // Switch: one ring over the group; intra-node if the group's span fits in a node (layout
  // x-major).
  const int k = sizes[0] * sizes[1] * sizes[2];
  *steps = k - 1;
  int span = 1;
  if (a.x) {
    span = m.x * m.y * m.z;
  } else if (a.y) {
    span = m.y * m.z;
  } else if (a.z) {
    span = m.z;
  }
  *bw = (hw.node_size > 0 && span > hw.node_size) ? hw.inter_node_bw : hw.link_bw;
}

struct Ctx {
  const AnalysisModel& model;
  const HardwareSpec& hw;
  const Mesh& mesh;
  std::vector<CollectiveCost>* out;
};

void AddCollective(const Ctx& c, std::string kind, AxisSet axes, std::string what, double bytes,
                   int count) {
  const int k = GroupSize(c.mesh, axes);
  if (k <= 1 || bytes <= 0) return;
  double bw = 0;
  int steps = 0;
  CollectiveParams(c.hw, c.mesh, axes, &bw, &steps);
  CollectiveCost cc;
  cc.kind = std::move(kind);
  cc.axes = axes.name();
  cc.what = std::move(what);
  cc.group = k;
  cc.count = count;
  cc.bytes = bytes;
  // A ring all-reduce is a reduce-scatter then an all-gather: twice the steps.
  const int rounds = cc.kind == "all-reduce" ? 2 : 1;
  cc.latency_s = count * rounds * steps * c.hw.step_latency_s;
  cc.time_s = bytes * (k - 1) / k / (bw * c.hw.eff.network) + cc.latency_s;
  c.out->push_back(std::move(cc));
}

// Sizes of one layer, from the tensor-role table.
struct LayerShape {
  double e = 0;  // model_dim
  double in_rows =
      0;  // sum of rows of the matrices reading the residual stream (Q, K, V, gate, up)
  double out_cols = 0;    // sum of cols of the matrices writing it (O, down)
  double params = 0;      // matmul parameters per layer
  double max_matrix = 0;  // largest matrix (gathered one at a time by the weight-gathered layouts)
  int blocks = 1;         // residual-stream collectives per layer: 1 parallel block, 2 serial
  int in_groups = 1;      // separate input-side einsums (serial: attention and FFN)
};

LayerShape ShapeOf(const ModelConfig& c) {
  LayerShape s;
  s.e = static_cast<double>(c.model_dim);
  for (const WeightMatrix& w : LayerMatrices(c)) {
    if (w.reads_model()) s.in_rows += w.rows;
    if (w.writes_model()) s.out_cols += w.cols;
    s.params += w.params();
    s.max_matrix = std::max(s.max_matrix, static_cast<double>(w.params()));
  }
  s.blocks = c.block == BlockKind::kParallel ? 1 : 2;
  s.in_groups = s.blocks;
  return s;
}

// Chips the attention work (and the KV cache) is divided over.
double AttentionShards(const ModelConfig& c, const Mesh& m, FfnLayout layout, AttnSharding attn,
                       int64_t batch, bool kv) {
  const double n = m.chips();
  const double heads = static_cast<double>(kv ? c.num_kv_heads : c.num_heads);
  if (layout == FfnLayout::kWgX || layout == FfnLayout::kWgXy || layout == FfnLayout::kWgXyz) {
    const double g = layout == FfnLayout::kWgX ? m.x : layout == FfnLayout::kWgXy ? m.x * m.y : n;
    return std::min<double>(g, static_cast<double>(batch)) * std::min(n / g, heads);
  }
  if (attn == AttnSharding::kBatch) return std::min<double>(n, static_cast<double>(batch));
  return std::min(n, heads);
}

// Shards the attention heads are split over where attention runs (DeriveLayerProgram's check): all
// chips for weight-stationary heads sharding (F/heads over yz, then x by the reduce-scatter), y*z
// for WG-X and WG-XY (heads over yz / Yz, tokens over the gathered axes), 1 when attention is
// batch-split.
int HeadShards(const Mesh& m, FfnLayout layout, AttnSharding attn) {
  switch (layout) {
    case FfnLayout::kWgX:
    case FfnLayout::kWgXy:
      return m.y * m.z;
    case FfnLayout::kWgXyz:
      return 1;
    default:
      return attn == AttnSharding::kHeads ? m.chips() : 1;
  }
}

// The all-reduce of a [rows, stats] buffer per norm: bytes such that bytes * (K-1)/K is what comm.h
// counts (2 (K-1) ceil(n/K) elements sent).
double AllReduceBytes(double elements, int k, double elem_bytes) {
  return 2 * std::ceil(elements / k) * k * elem_bytes;
}

}  // namespace

PhaseCost EvaluatePhase(const AnalysisModel& model, const HardwareSpec& hw, const Mesh& mesh,
                        Phase phase, FfnLayout layout, AttnSharding attn, const PlanRequest& req) {
  const ModelConfig& c = model.config;
  PhaseCost pc;
  pc.phase = phase;
  pc.layout = layout;
  pc.mesh = mesh;
  const bool wg =
      layout == FfnLayout::kWgX || layout == FfnLayout::kWgXy || layout == FfnLayout::kWgXyz;
  // Weight-gathered layouts keep activations sharded over batch: attention follows them (no
  // all-to-all).
  pc.attn = wg ? AttnSharding::kBatch : attn;
  const double n = mesh.chips();
  const double a = req.act_bytes;  // activation bytes (bf16 unless the request says otherwise)
  const double wb = req.weight_bytes;
  const double kv_elem = 2;  // KV cache in bf16
  const LayerShape s = ShapeOf(c);
  const double layers = static_cast<double>(c.num_layers);
  const double batch = static_cast<double>(req.batch);
  const double t_pass =
      phase == Phase::kPrefill ? batch * req.input_len : batch;  // tokens per pass
  const int steps = phase == Phase::kPrefill ? 1 : static_cast<int>(req.gen_len);
  pc.tokens = t_pass * steps;

  if (!wg && attn == AttnSharding::kBatch && req.batch < 2) {
    pc.valid = false;
    pc.note = "batch sharding needs batch >= 2";
  }
  {
    // Whole heads per shard (the K/V heads of its query heads too), else replicated KV heads if
    // allowed.
    const int hs = HeadShards(mesh, layout, attn);
    auto splits = [&](int64_t heads) {
      return heads % hs == 0 || (req.replicate_kv_heads && hs % heads == 0);
    };
    if (hs > 1 && (!splits(c.num_heads) || !splits(c.num_kv_heads))) {
      pc.valid = false;
      pc.note = StrCat("attention split over heads on ", hs, " shards: num_heads ", c.num_heads,
                       " and num_kv_heads ", c.num_kv_heads, " must both be divisible by ", hs,
                       req.replicate_kv_heads ? " (or divide it: replicated KV heads)" : "");
    }
  }
  const double x = mesh.x, y = mesh.y, z = mesh.z, yz = y * z;
  const double g = layout == FfnLayout::kWgX    ? x
                   : layout == FfnLayout::kWgXy ? x * y
                                                : n;  // WG group

  // ---- Collectives per layer (per pass) ----
  std::vector<CollectiveCost> colls;
  Ctx cx{model, hw, mesh, &colls};
  const double T = t_pass;
  switch (layout) {
    case FfnLayout::k2dWs:
      // BLE_xyz -all-gather(yz)-> BLE_x; einsum -> BLF_yz partialsum-x -reduce-scatter(x)-> ...
      AddCollective(cx, "all-gather", kYZ, "activations E", s.blocks * T * s.e / x * a, s.blocks);
      AddCollective(cx, "reduce-scatter", kX, "q/k/v + ffn hidden", T * s.in_rows / yz * a,
                    s.in_groups);
      AddCollective(cx, "all-gather", kX, "attn out + ffn hidden", T * s.out_cols / yz * a,
                    s.in_groups);
      AddCollective(cx, "reduce-scatter", kYZ, "activations E", s.blocks * T * s.e / x * a,
                    s.blocks);
      break;
    case FfnLayout::k1dWs:
      AddCollective(cx, "all-gather", kXYZ, "activations E", s.blocks * T * s.e * a, s.blocks);
      AddCollective(cx, "reduce-scatter", kXYZ, "activations E", s.blocks * T * s.e * a, s.blocks);
      break;
    case FfnLayout::kWgX:
      AddCollective(cx, "all-gather", kX, "weights", s.params * wb / yz, 1);
      AddCollective(cx, "all-gather", kYZ, "activations E", s.blocks * T / x * s.e * a, s.blocks);
      AddCollective(cx, "reduce-scatter", kYZ, "activations E", s.blocks * T / x * s.e * a,
                    s.blocks);
      break;
    case FfnLayout::kWgXy:
      AddCollective(cx, "all-gather", kXY, "weights", s.params * wb / z, 1);
      AddCollective(cx, "all-gather", kZ, "activations E", s.blocks * T / (x * y) * s.e * a,
                    s.blocks);
      AddCollective(cx, "reduce-scatter", kZ, "activations E", s.blocks * T / (x * y) * s.e * a,
                    s.blocks);
      break;
    case FfnLayout::kWgXyz:
      AddCollective(cx, "all-gather", kXYZ, "weights", s.params * wb, 1);
      break;
  }
  if (req.count_norm_stats) {
    // Norm statistics when E is split at a norm (1 float per token for RMSNorm, 2 for LayerNorm).
    const double stats = c.norm == NormKind::kLayerNorm ? 2 : 1;
    if (c.block == BlockKind::kPostNorm) {
      // Two norms on the residual stream per layer: tokens over the WG axes, E over the others.
      const AxisSet e_axes = layout == FfnLayout::kWgX     ? kYZ
                             : layout == FfnLayout::kWgXy  ? kZ
                             : layout == FfnLayout::kWgXyz ? AxisSet{}
                                                           : kXYZ;
      const double local_tokens = wg ? T / g : T;
      AddCollective(cx, "all-reduce", e_axes, "norm statistics",
                    2 * AllReduceBytes(local_tokens * stats, GroupSize(mesh, e_axes), a), 2);
    } else if (layout == FfnLayout::k2dWs) {
      // Pre-norm: the norm's input is BLE_x (after the all-gather over yz): one norm per block.
      AddCollective(cx, "all-reduce", kX, "norm statistics",
                    s.blocks * AllReduceBytes(T * stats, mesh.x, a), s.blocks);
    }
  }
  if (!wg && pc.attn == AttnSharding::kBatch) {
    // Multiquery batch sharding (Fig. 5b): heads-sharded Q/K/V -> batch-sharded, and the output
    // back.
    AddCollective(cx, "all-to-all", kXYZ, "attention q/k/v",
                  T * (c.q_dim() + 2.0 * c.kv_dim()) / n * a, 1);
    AddCollective(cx, "all-to-all", kXYZ, "attention out", T * c.q_dim() / n * a, 1);
  }
  double comm_bw_layer = 0, comm_lat_layer = 0;
  for (const CollectiveCost& cc : colls) {
    comm_lat_layer += cc.latency_s;
    comm_bw_layer += cc.time_s - cc.latency_s;
  }

  // ---- Compute, HBM and memory ----
  const double peak = hw.PeakFlops("bf16") * hw.eff.matmul;
  const double hbm = hw.mem_bw * hw.eff.memory;
  const double attn_shards = AttentionShards(c, mesh, layout, pc.attn, req.batch, /*kv=*/false);
  const double kv_shards = AttentionShards(c, mesh, layout, pc.attn, req.batch, /*kv=*/true);
  const double kv_tok_layer = KvBytesPerTokenPerLayer(c, kv_elem);
  const WeightMatrix head = LmHeadMatrix(c);
  const bool has_head = c.arch != Arch::kBert;
  // Weight bytes each chip reads from HBM per pass: its shard, or the gathered copy for WG layouts.
  const double w_read_layer = s.params * wb / n * (wg ? g : 1.0);
  // Logits only for the last position (prefill, unless all_logits) / each new token.
  const double head_tokens = phase == Phase::kPrefill && req.all_logits ? T : batch;
  const double head_flops = has_head ? 2.0 * head.params() * head_tokens / n : 0;
  const double head_bytes = has_head ? head.params() * wb / n : 0;

  // ---- LM head collectives (once per pass), as the distributed engine runs them ----
  // The rows that need logits (prefill: the last position of each sequence, or every position with
  // all_logits; decode: every new token) are gathered whole on every chip: features over the
  // residual's E axes, then rows over its token axes; the vocabulary is split over all chips in
  // blocks of ceil(V / chips) and one all-gather assembles the logits (activation dtype). The
  // embedding lookup needs none (replicated table).
  std::vector<CollectiveCost> head_colls;
  if (has_head) {
    Ctx hx{model, hw, mesh, &head_colls};
    const double rows = phase == Phase::kPrefill && req.all_logits ? T : batch;
    const AxisSet tok_axes = layout == FfnLayout::kWgX     ? kX
                             : layout == FfnLayout::kWgXy  ? kXY
                             : layout == FfnLayout::kWgXyz ? kXYZ
                                                           : AxisSet{};
    const AxisSet e_axes = layout == FfnLayout::kWgX     ? kYZ
                           : layout == FfnLayout::kWgXy  ? kZ
                           : layout == FfnLayout::kWgXyz ? AxisSet{}
                                                         : kXYZ;
    const double kt = GroupSize(mesh, tok_axes);
    const double vb = std::ceil(static_cast<double>(c.vocab_size) / n);
    AddCollective(hx, "all-gather", e_axes, "final hidden E", rows / kt * s.e * a, 1);
    AddCollective(hx, "all-gather", tok_axes, "final hidden rows", rows * s.e * a, 1);
    AddCollective(hx, "all-gather", kXYZ, "logits (vocab split)", rows * vb * n * a, 1);
  }
  double head_comm_bw = 0, head_comm_lat = 0;
  for (const CollectiveCost& cc : head_colls) {
    head_comm_lat += cc.latency_s;
    head_comm_bw += cc.time_s - cc.latency_s;
  }

  Breakdown& bd = pc.breakdown;
  double total = 0;
  for (int i = 0; i < steps; ++i) {
    double ctx_len;
    double kv_bytes_layer;
    if (phase == Phase::kPrefill) {
      ctx_len = static_cast<double>(req.input_len);  // dense masked attention over the prompt
      kv_bytes_layer = batch * req.input_len * kv_tok_layer / kv_shards;  // written once
    } else {
      ctx_len = static_cast<double>(req.input_len + i + 1);
      kv_bytes_layer = batch * ctx_len * kv_tok_layer / kv_shards;  // read every step
    }
    const double flops_layer =
        T * 2.0 * s.params / n + T * AttentionFlopsPerToken(c, ctx_len) / attn_shards;
    const double tc = flops_layer / peak;
    const double tw = w_read_layer / hbm;
    const double tk = kv_bytes_layer / hbm;
    const double head_c = head_flops / peak, head_m = head_bytes / hbm;
    const double step = layers * (std::max(tc, tw + tk) + comm_bw_layer + comm_lat_layer) +
                        std::max(head_c, head_m) + head_comm_bw + head_comm_lat;
    bd.compute_s += layers * tc + head_c;
    bd.weight_load_s += layers * tw + head_m;
    bd.kv_load_s += layers * tk;
    bd.comm_s += layers * comm_bw_layer + head_comm_bw;
    bd.comm_latency_s += layers * comm_lat_layer + head_comm_lat;
    bd.hidden_s += layers * std::min(tc, tw + tk) + std::min(head_c, head_m);
    total += step;
  }
  pc.latency_s = total;
  pc.collectives = std::move(colls);
  pc.head_collectives = std::move(head_colls);
  pc.mfu = 2.0 * model.nominal_params * pc.tokens / (n * hw.PeakFlops("bf16") * pc.latency_s);

  // ---- Memory per chip ----
  MemoryUse& mem = pc.memory;
  mem.weights = (s.params * layers + (has_head ? head.params() : 0)) * wb / n;
  const double final_ctx =
      static_cast<double>(req.input_len + (phase == Phase::kDecode ? req.gen_len : 0));
  mem.kv_cache = batch * final_ctx * kv_tok_layer * layers / kv_shards;
  // Peak activations: residual shard + gathered layer input + the hidden (Q/K/V, gate, up) shard.
  double tok_local, e_local, hidden_local;
  switch (layout) {
    case FfnLayout::k2dWs:
      tok_local = T;
      e_local = s.e / x;
      hidden_local = s.in_rows / yz;
      break;
    case FfnLayout::k1dWs:
      tok_local = T;
      e_local = s.e;
      hidden_local = s.in_rows / n;
      break;
    case FfnLayout::kWgX:
      tok_local = T / x;
      e_local = s.e;
      hidden_local = s.in_rows / yz;
      break;
    case FfnLayout::kWgXy:
      tok_local = T / (x * y);
      e_local = s.e;
      hidden_local = s.in_rows / z;
      break;
    default:
      tok_local = T / n;
      e_local = s.e;
      hidden_local = s.in_rows;
      break;
  }
  mem.activations = a * (T * s.e / n + tok_local * (e_local + hidden_local));
  if (phase == Phase::kPrefill) {
    // Attention scores of one sequence's local heads (computed a sequence at a time).
    const double local_heads =
        std::max(1.0, c.num_heads / std::min<double>(attn_shards, c.num_heads));
    mem.activations += a * local_heads * static_cast<double>(req.input_len) * req.input_len;
  }
  if (wg)
    mem.activations += s.max_matrix * wb * g / n;  // one gathered matrix at a time (looped einsum)
  pc.fits = mem.total() <= hw.mem_capacity;
  if (!pc.fits && pc.note.empty()) {
    pc.note = StrCat("needs ", mem.total() / 1e9, " GB per chip, has ", hw.mem_capacity / 1e9);
  }
  return pc;
}

namespace {

bool SharedWeightLayout(FfnLayout l) { return l != FfnLayout::k1dWs; }

Result<PhaseCost> ChoosePhase(const AnalysisModel& model, const HardwareSpec& hw, const Mesh& mesh,
                              Phase phase, const PlanRequest& req,
                              std::vector<PhaseCost>* alternatives) {
  for (FfnLayout l : kAllLayouts) {
    for (AttnSharding at : {AttnSharding::kHeads, AttnSharding::kBatch}) {
      const bool wg = l == FfnLayout::kWgX || l == FfnLayout::kWgXy || l == FfnLayout::kWgXyz;
      if (wg && at == AttnSharding::kHeads) continue;  // WG layouts shard attention over batch
      PhaseCost pc = EvaluatePhase(model, hw, mesh, phase, l, at, req);
      if (pc.valid) alternatives->push_back(std::move(pc));
    }
  }
  std::sort(alternatives->begin(), alternatives->end(),
            [](const PhaseCost& p, const PhaseCost& q) { return p.latency_s < q.latency_s; });
  const PhaseCost* best = nullptr;
  const PhaseCost* smallest = nullptr;
  for (const PhaseCost& pc : *alternatives) {
    if (req.layout && pc.layout != *req.layout) continue;
    const bool wg = pc.layout == FfnLayout::kWgX || pc.layout == FfnLayout::kWgXy ||
                    pc.layout == FfnLayout::kWgXyz;
    if (req.attn && !wg && pc.attn != *req.attn) continue;
    if (!req.layout && !SharedWeightLayout(pc.layout)) continue;
    if (!smallest || pc.memory.total() < smallest->memory.total()) smallest = &pc;
    if (!pc.fits) continue;
    if (!best) best = &pc;
  }
  if (!best) {
    if (!smallest) {
      return InvalidArgumentError(PhaseName(phase), ": no applicable layout for these options");
    }
    return ResourceExhaustedError(
        PhaseName(phase), ": does not fit in memory: ", LayoutName(smallest->layout), "/",
        AttnName(smallest->attn), " needs ", smallest->memory.total() / 1e9,
        " GB per chip (weights ", smallest->memory.weights / 1e9, ", KV cache ",
        smallest->memory.kv_cache / 1e9, ", activations ", smallest->memory.activations / 1e9,
        "), ", hw.name, " has ", hw.mem_capacity / 1e9,
        " GB; use more chips, int8 weights or a smaller batch");
  }
  return *best;
}

}  // namespace

Result<PhaseCost> PlanPhase(const AnalysisModel& model, const HardwareSpec& hw, int chips,
                            Phase phase, const PlanRequest& req,
                            std::vector<PhaseCost>* alternatives) {
  SI_ASSIGN_OR_RETURN(Mesh mesh, MeshFor(hw, chips));
  PlanRequest r = req;
  r.chips = chips;
  return ChoosePhase(model, hw, mesh, phase, r, alternatives);
}

Result<PlanResult> Plan(const AnalysisModel& model, const HardwareSpec& hw,
                        const PlanRequest& req) {
  if (req.batch < 1) return InvalidArgumentError("--batch must be >= 1");
  if (req.input_len < 1) return InvalidArgumentError("--input must be >= 1");
  if (req.gen_len < 0) return InvalidArgumentError("--gen must be >= 0");
  if (req.weight_bytes != 1 && req.weight_bytes != 2)
    return InvalidArgumentError("weights must be int8 or bf16");
  PlanResult r;
  SI_ASSIGN_OR_RETURN(
      r.prefill, PlanPhase(model, hw, req.chips, Phase::kPrefill, req, &r.prefill_alternatives));
  r.total_latency_s = r.prefill.latency_s;
  r.memory_per_chip_bytes = r.prefill.memory.total();
  if (req.gen_len > 0) {
    if (model.config.is_encoder())
      return InvalidArgumentError(model.config.name, " is an encoder: use --gen 0");
    const int decode_chips = req.decode_chips > 0 ? req.decode_chips : req.chips;
    SI_ASSIGN_OR_RETURN(
        r.decode, PlanPhase(model, hw, decode_chips, Phase::kDecode, req, &r.decode_alternatives));
    r.total_latency_s += r.decode.latency_s;
    r.memory_per_chip_bytes = std::max(r.memory_per_chip_bytes, r.decode.memory.total());
  }
  return r;
}

double KvCacheBytes(const ModelConfig& c, int64_t batch, int64_t ctx, double bytes_per_elem) {
  return KvBytesPerTokenPerLayer(c, bytes_per_elem) * static_cast<double>(c.num_layers) * batch *
         ctx;
}

int64_t MaxContextLength(const ModelConfig& c, const HardwareSpec& hw, int chips, int64_t batch,
                         double kv_fraction, AttnSharding attn) {
  const double shards = attn == AttnSharding::kBatch ? std::min<double>(chips, batch)
                                                     : std::min<double>(chips, c.num_kv_heads);
  const double per_token = KvBytesPerTokenPerLayer(c, 2) * c.num_layers * batch / shards;
  return static_cast<int64_t>(kv_fraction * hw.mem_capacity / per_token);
}

LinearVolume PaperFfnCommVolume(FfnLayout layout, int64_t model_dim, int64_t ffn_dim, const Mesh& m,
                                double b) {
  const double e = model_dim, f = ffn_dim, n = m.chips();
  LinearVolume v;
  switch (layout) {
    case FfnLayout::k1dWs:
      v.per_token_bytes = 2 * e * b;
      break;
    case FfnLayout::k2dWs:
      v.per_token_bytes = 2 * (e / m.x + f / (m.y * m.z)) * b;
      break;
    case FfnLayout::kWgX:
      v.fixed_bytes = 2 * e * f * b * m.x / n;
      v.per_token_bytes = 2 * e / m.x * b;
      break;
    case FfnLayout::kWgXy:
      v.fixed_bytes = 2 * e * f * b * (m.x * m.y) / n;
      v.per_token_bytes = 2 * e / (m.x * m.y) * b;
      break;
    case FfnLayout::kWgXyz:
      v.fixed_bytes = 2 * e * f * b;
      break;
  }
  return v;
}

double CommCrossoverTokens(const LinearVolume& a, const LinearVolume& b) {
  const double slope = a.per_token_bytes - b.per_token_bytes;
  if (slope <= 0) return std::numeric_limits<double>::infinity();
  return (b.fixed_bytes - a.fixed_bytes) / slope;
}

std::vector<PaperRow> PopeTables23() {
  using enum FfnLayout;
  using enum AttnSharding;
  using enum Phase;
  return {
      {"540B low-latency prefill", "palm-540b", kPrefill, 64, 1, 1, k2dWs, kHeads, 0.29, 0.43},
      {"540B low-latency decode", "palm-540b", kDecode, 64, 64, 1, k2dWs, kBatch, 1.82, 0.14},
      {"540B high-throughput prefill", "palm-540b", kPrefill, 64, 512, 2, kWgXyz, kBatch, 85.2,
       0.76},
      {"540B high-throughput decode", "palm-540b", kDecode, 64, 512, 2, k2dWs, kBatch, 6.0, 0.33},
      {"62B low-latency prefill", "palm-62b", kPrefill, 16, 1, 1, k2dWs, kHeads, 0.16, 0.36},
      {"62B low-latency decode", "palm-62b", kDecode, 16, 32, 1, k2dWs, kBatch, 0.73, 0.08},
      {"62B high-throughput prefill", "palm-62b", kPrefill, 32, 512, 2, kWgXyz, kBatch, 20.2, 0.73},
      {"62B high-throughput decode", "palm-62b", kDecode, 8, 512, 2, k2dWs, kBatch, 5.1, 0.37},
  };
}

FitResult FitEfficiencies(const HardwareSpec& base, const std::vector<PaperRow>& rows) {
  struct Prepared {
    AnalysisModel model;
    Mesh mesh;
    PlanRequest req;
    const PaperRow* row;
  };
  std::vector<Prepared> prep;
  for (const PaperRow& r : rows) {
    auto m = ModelPreset(r.model);
    SI_CHECK(m.ok()) << m.status().message();
    auto mesh = MeshFor(base, r.chips);
    SI_CHECK(mesh.ok()) << mesh.status().message();
    PlanRequest req;
    req.chips = r.chips;
    req.batch = r.batch;
    req.input_len = 2048;
    req.gen_len = 64;
    req.weight_bytes = r.weight_bytes;
    prep.push_back({*m, *mesh, req, &r});
  }
  FitResult best;
  double best_err = std::numeric_limits<double>::infinity();
  HardwareSpec hw = base;
  hw.eff.memory = 1.0;
  for (int im = 50; im <= 100; ++im) {
    for (int in = 4; in <= 20; ++in) {
      for (int il = 0; il <= 80; ++il) {
        hw.eff.matmul = im / 100.0;
        hw.eff.network = in / 20.0;
        hw.step_latency_s = il * 0.25e-6;
        double err = 0, worst = 0;
        for (const Prepared& p : prep) {
          PhaseCost pc =
              EvaluatePhase(p.model, hw, p.mesh, p.row->phase, p.row->layout, p.row->attn, p.req);
          const double e = std::log(pc.latency_s / p.row->latency_s);
          err += e * e;
          worst = std::max(worst, std::abs(pc.latency_s / p.row->latency_s - 1));
        }
        if (err < best_err - 1e-12) {
          best_err = err;
          best.eff = hw.eff;
          best.step_latency_s = hw.step_latency_s;
          best.rms_log_error = std::sqrt(err / prep.size());
          best.max_abs_rel_error = worst;
        }
      }
    }
  }
  return best;
}

}  // namespace si::analysis
