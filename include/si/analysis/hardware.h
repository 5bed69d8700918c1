// Hardware specs as data: built-ins (tpu-v4, a100-80g, h100-sxm), user JSON files, and `local` (the
// measured roofline cache written by `scaleinfer roofline`).
//
// The efficiency constants are few and physical, fitted once on Pope et al. Tables 2-3 (see
// docs/planner.md and FitEfficiencies in cost_model.h); the GPU specs carry the TPU fit over,
// unfitted.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "si/base/status.h"

namespace si::analysis {

enum class Topology {
  kTorus3d,  // x*y*z torus; ring collectives per axis; wraparound links only on slices >=
             // wrap_min_chips
  kSwitch,   // all chips of a node behind a switch (NVSwitch); nodes joined by a slower network
};

struct Efficiencies {
  // Achieved / peak FLOP/s of the large matmuls (per-chip matmuls of the 2D and weight-gathered
  // layouts).
  double matmul = 0.82;
  // Achieved / peak bandwidth of a link during a collective.
  double network = 0.70;
  // Achieved / peak HBM bandwidth when streaming weights and the KV cache. Held at 1 (not fitted).
  double memory = 1.0;
};

struct HardwareSpec {
  std::string name;
  std::string description;
  std::map<std::string, double> peak_flops;  // FLOP/s per matmul dtype: "bf16", "int8", "f32"
  double mem_bw = 0;                         // HBM/DRAM bytes/s per chip
  double mem_capacity = 0;                   // bytes per chip
  Topology topology = Topology::kTorus3d;
  double link_bw = 0;               // bytes/s per link per direction
  int links_per_chip = 0;           // torus: 6 (x+, x-, y+, y-, z+, z-)
  int wrap_min_chips = 64;          // torus: slices of >= this many chips have wraparound links
  int node_size = 0;                // switch: chips per node
  double inter_node_bw = 0;         // switch: bytes/s per chip across nodes
  double step_latency_s = 4.25e-6;  // latency of one step of a ring collective (sync + hop)
  int max_chips = 1;
  Efficiencies eff;

  // Peak FLOP/s of the matmul dtype (bf16 if the dtype is not listed). int8 weights still run bf16
  // matmuls on TPU v4 (Pope et al. §3.6), so the planner asks for "bf16".
  double PeakFlops(std::string_view dtype = "bf16") const;
};

std::vector<std::string> BuiltinHardwareNames();
// A built-in name, "local", or a path to a JSON file (fields as in ToJson / docs/planner.md).
Result<HardwareSpec> LoadHardware(std::string_view name_or_path);
Result<HardwareSpec> HardwareFromJson(std::string_view json_text, std::string_view origin);
std::string HardwareToJson(const HardwareSpec& spec);
// The `local` roofline cache: ${XDG_CACHE_HOME:-~/.cache}/scaleinfer/roofline.json.
std::string LocalRooflinePath();

}  // namespace si::analysis
