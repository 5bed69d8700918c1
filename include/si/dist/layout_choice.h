// --layout auto: the analytical model (analysis/cost_model.h) picks the layout and attention sharding per
// phase for this mesh and workload, among the combinations the partition specs accept, subject to the two
// phases sharing the weight table and the KV-cache layout (DistEngineOptions).
#pragma once

#include <optional>
#include <string>

#include "si/analysis/hardware.h"
#include "si/dist/dist_engine.h"

namespace si {

struct LayoutChoice {
  PhaseLayout prefill, decode;
  double prefill_s = 0, decode_s = 0;  // predicted (prefill pass; all decode steps)
  std::string note;                    // which and why, one line per phase
};

// `forced_layout` / `forced_attn` restrict the search. Errors: nothing valid (names the first reason).
Result<LayoutChoice> ChooseLayouts(const ModelConfig& config, const MeshShape& mesh,
                                   const analysis::HardwareSpec& hw, int64_t batch, int64_t prompt,
                                   int64_t gen, double weight_bytes,
                                   std::optional<FfnLayout> forced_layout,
                                   std::optional<AttnSharding> forced_attn);

// The `local` hardware spec with the measured network (netbench) when available; `note` says what was used.
Result<analysis::HardwareSpec> LocalHardwareWithNetwork(std::string* note);
// ${XDG_CACHE_HOME:-~/.cache}/scaleinfer/network.json (written by `scaleinfer netbench`).
std::string NetworkCachePath();

}  // namespace si
