#include "si/dist/layout_choice.h"

#include <cstdlib>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "si/analysis/cost_model.h"
#include "si/dist/netbench.h"

namespace si {

std::string NetworkCachePath() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  const std::string base =
      xdg && *xdg ? std::string(xdg) : std::string(home ? home : "/tmp") + "/.cache";
  return base + "/scaleinfer/network.json";
}

Result<analysis::HardwareSpec> LocalHardwareWithNetwork(std::string* note) {
  SI_ASSIGN_OR_RETURN(analysis::HardwareSpec hw, analysis::LoadHardware("local"));
  const std::string path = NetworkCachePath();
  constexpr const char* kAssumed = "assuming 4 GB/s, 5 us per step";
  std::ifstream in(path, std::ios::binary);
  if (in) {
    std::ostringstream text;
    text << in.rdbuf();
    auto net = ParseNetworkJson(text.str(), path);
    if (net.ok()) {
      hw.link_bw = net->link_bw;
      hw.step_latency_s = net->step_latency_s;
      hw.links_per_chip = 1;
      hw.eff.network = 1.0;  // measured, not peak
      *note = StrCat("network measured by netbench",
                     net->ranks > 0 ? StrCat(" on ", net->ranks, " ranks") : "",
                     net->measured_at.empty() ? "" : StrCat(" at ", net->measured_at), ": ",
                     hw.link_bw / 1e9, " GB/s per rank, ", hw.step_latency_s * 1e6,
                     " us per step (", path, ")");
    } else {
      // A bad cache must not stop a run: fall back, and say why and how to fix it.
      hw.link_bw = 0;
      *note = StrCat("ignoring ", net.status().message(),
                     " (run `mpirun -np 2 scaleinfer netbench` again): ", kAssumed);
    }
  } else {
    hw.link_bw = 0;  // the roofline does not measure the network
    *note = StrCat("network not measured (run `mpirun -np 2 scaleinfer netbench`): ", kAssumed);
  }
  if (hw.link_bw <= 0) {
    // Shared-memory MPI on one machine: an assumption until netbench runs.
    hw.link_bw = 4e9;
    hw.step_latency_s = 5e-6;
    hw.links_per_chip = 1;
    hw.eff.network = 1.0;
  }
  hw.topology = analysis::Topology::kSwitch;
  hw.node_size = std::max(hw.node_size, 1 << 20);
  hw.inter_node_bw = hw.link_bw;
  hw.max_chips = std::max(hw.max_chips, 1 << 20);
  return hw;
}

namespace {

struct Candidate {
  PhaseLayout p;
  analysis::PhaseCost cost;
};

std::string Why(const analysis::PhaseCost& c) {
  const auto& b = c.breakdown;
  return StrCat("compute ", b.compute_s * 1e3, " ms, weights ", b.weight_load_s * 1e3, " ms, KV ",
                b.kv_load_s * 1e3, " ms, comm ", (b.comm_s + b.comm_latency_s) * 1e3, " ms");
}

}  // namespace

Result<LayoutChoice> ChooseLayouts(const ModelConfig& config, const MeshShape& mesh,
                                   const analysis::HardwareSpec& hw, int64_t batch, int64_t prompt,
                                   int64_t gen, double weight_bytes,
                                   std::optional<FfnLayout> forced_layout,
                                   std::optional<AttnSharding> forced_attn) {
  analysis::AnalysisModel am;
  am.config = config;
  am.nominal_params = 1;
  am.unpadded_heads = config.num_heads;
  analysis::PlanRequest req;
  req.chips = mesh.num_ranks();
  req.batch = batch;
  req.input_len = std::max<int64_t>(prompt, 1);
  req.gen_len = std::max<int64_t>(gen, 1);
  req.weight_bytes = weight_bytes;
  req.act_bytes = 4;  // the CPU engine moves f32 activations
  // As the distributed engine runs: norm statistics all-reduced when E is split, whole KV heads per
  // shard.
  req.count_norm_stats = true;
  req.replicate_kv_heads = false;
  const analysis::Mesh am_mesh{mesh.x, mesh.y, mesh.z};
  std::vector<Candidate> cands[2];
  std::string first_reason;
  for (int ph = 0; ph < 2; ++ph) {
    const auto phase = ph == 0 ? analysis::Phase::kPrefill : analysis::Phase::kDecode;
    for (FfnLayout l : analysis::kAllLayouts) {
      if (forced_layout && l != *forced_layout) continue;
      for (AttnSharding a : {AttnSharding::kHeads, AttnSharding::kBatch}) {
        if (forced_attn && a != *forced_attn) continue;
        auto prog = DeriveLayerProgram(config, mesh, l, a, batch);
        if (!prog.ok()) {
          if (first_reason.empty()) first_reason = prog.status().message();
          continue;
        }
        Candidate c{{l, a}, analysis::EvaluatePhase(am, hw, am_mesh, phase, l, a, req)};
        if (!c.cost.valid) continue;
        cands[ph].push_back(c);
      }
    }
  }
  if (cands[0].empty() || cands[1].empty()) {
    return InvalidArgumentError("no layout runs on --mesh ", mesh.ToString(), " with batch ", batch,
                                first_reason.empty() ? "" : ": ", first_reason);
  }
  // Best compatible pair: same weight table and the same KV-cache spec.
  double best = std::numeric_limits<double>::infinity();
  const Candidate *bp = nullptr, *bd = nullptr;
  for (const Candidate& p : cands[0]) {
    for (const Candidate& d : cands[1]) {
      if (GetLayoutRule(p.p.layout).weights != GetLayoutRule(d.p.layout).weights) continue;
      const TensorSpec kp = AttentionSpec(p.p), kd = AttentionSpec(d.p);
      if (!(kp.rows == kd.rows) || !(kp.cols == kd.cols)) continue;
      const double t = p.cost.latency_s + d.cost.latency_s;
      if (t < best) {
        best = t;
        bp = &p;
        bd = &d;
      }
    }
  }
  if (bp == nullptr)
    return InvalidArgumentError("no pair of phase layouts shares the KV-cache layout");
  LayoutChoice r;
  r.prefill = bp->p;
  r.decode = bd->p;
  r.prefill_s = bp->cost.latency_s;
  r.decode_s = bd->cost.latency_s;
  std::ostringstream os;
  for (int ph = 0; ph < 2; ++ph) {
    const Candidate& chosen = ph == 0 ? *bp : *bd;
    std::vector<const Candidate*> sorted;
    for (const Candidate& c : cands[ph]) sorted.push_back(&c);
    std::sort(sorted.begin(), sorted.end(), [](const Candidate* a, const Candidate* b) {
      return a->cost.latency_s < b->cost.latency_s;
    });
    os << (ph == 0 ? "prefill" : "decode") << ": " << chosen.p.ToString() << " predicted "
       << chosen.cost.latency_s * 1e3 << " ms (" << Why(chosen.cost) << ")";
    int shown = 0;
    for (const Candidate* c : sorted) {
      if (c->p.layout == chosen.p.layout && c->p.attn == chosen.p.attn) continue;
      os << (shown == 0 ? "; others: " : ", ") << c->p.ToString() << " " << c->cost.latency_s * 1e3
         << " ms";
      if (++shown == 3) break;
    }
    if (sorted[0] != &chosen)
      os << " [fastest alone is " << sorted[0]->p.ToString()
         << ", but its KV cache layout differs]";
    os << "\n";
  }
  r.note = os.str();
  return r;
}

}  // namespace si
