// Partition specs, declaratively (conventions habit 5; the JAX/MaxText logical-axis rules; Pope et al.'s
// GSPMD notation). Three tables and one derivation:
//
//   1. Weight tables (logical axis -> mesh axes): how every matmul weight is STORED. The 2D weight-
//      stationary and the three weight-gathered layouts share one table, E_x F_yz (Pope §3.2.3: prefill and
//      decode use one copy of the weights); 1D weight-stationary has its own (E unsplit, F/heads over xyz).
//   2. Layout table: per FFN layout, its weight table and the axes the weights are all-gathered over
//      (none for weight-stationary; x, xy, xyz for WG). The residual stream follows: tokens (batch) split
//      over the gathered axes, E over the others (2D: BLE_xyz; WG-X: B_x L E_yz; WG-XYZ: B_xyz L E).
//   3. Attention: heads (Q/K/V split like F) or batch (all-to-all to B_xyz, Pope Fig. 5b).
//   4. DeriveLayerProgram: walks one layer (the block kind's dataflow from the config) with a spec per
//      activation and, per matmul, emits exactly the collectives that turn the input's spec into what the
//      weight needs (all-gather), and the output's partial sums into a sharded dimension (reduce-scatter
//      into the hidden dim, Pope §3.5). Nothing is listed per layout by hand.
//
// Dimension sharding (DimSharding): an ordered list of mesh axes, major first, as a string: "yz" means the
// dim is cut into Y*Z blocks indexed by (y, z), y major. A reduce-scatter over "x" into a dim "yz" appends
// x as the most minor axis: "yzx". An all-gather removes minor axes: "yzx" -> "yz". Gathering a non-minor
// axis (the WG-XY weights E_x F_yz gathered over xy) leaves an upper-case letter: "Yz" = the y blocks are
// all local, each cut by z (a strided but well-defined set of rows). Two dims are compatible iff their
// strings are equal; trailing upper-case letters are dropped ("zY" == "z").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "si/analysis/cost_model.h"
#include "si/base/status.h"
#include "si/model/config.h"
#include "si/model/tensor_roles.h"
#include "si/parallel/comm.h"
#include "si/parallel/mesh.h"

namespace si {

using analysis::AttnSharding;
using analysis::FfnLayout;

class DimSharding {
 public:
  DimSharding() = default;
  explicit DimSharding(std::string axes);  // "", "x", "yz", "Yz", ... (SI_CHECKed)
  static DimSharding Of(AxisSet s);        // the axes of s in x, y, z order
  const std::string& str() const { return s_; }
  AxisSet split() const;   // lower-case axes: the dim is cut over them
  AxisSet all() const;     // every axis mentioned
  int Shards(const MeshShape& m) const { return m.GroupSize(split()); }
  bool replicated() const { return split().empty(); }
  // The axes of g (that are split here) become gathered.
  DimSharding Gathered(AxisSet g) const;
  // Append g (x, y, z order) as the most minor split axes (reduce-scatter into this dim).
  DimSharding Appended(AxisSet g) const;
  // If *this == prefix + s with s all lower-case, the axes of s; else nullopt-like: ok == false.
  bool MinorSuffixOver(const DimSharding& prefix, AxisSet* suffix) const;
  // This rank's block [begin, begin + size) of a dim of `dim` elements. Only for specs without gathered
  // axes (the stored weights); dim must be divisible.
  void Block(const MeshShape& m, const std::array<int, 3>& coords, int64_t dim, int64_t* begin,
             int64_t* size) const;
  bool operator==(const DimSharding& o) const { return s_ == o.s_; }
  std::string ToString() const { return s_.empty() ? "-" : s_; }

 private:
  std::string s_;
};

// A 2-D tensor's spec: [rows, cols] (weights: [N = out, K = in]; activations: [tokens, features]) plus the
// axes it is still a partial sum over.
struct TensorSpec {
  DimSharding rows, cols;
  AxisSet partial;
  std::string ToString() const;  // "[yz, x]" or "[-, x] partialsum-yz"
};

// ---- 1. Weight tables ----
enum class WeightTable { kEXFyz, k1d };
std::string_view WeightTableName(WeightTable t);  // "E_x F_yz", "1d"
// The mesh axes a logical axis is stored over (kModel, kFfn, kQ, kKv, kQkv, kVocab; kNone and the rest
// are replicated).
DimSharding StoredAxis(WeightTable t, Axis axis);
// The stored spec of a role's weight (rows, cols from the tensor-role table). 1-D tensors (norms,
// biases): rows replicated, cols as the table says.
TensorSpec StoredSpec(WeightTable t, Role role);

// ---- 2. Layout table ----
struct LayoutRule {
  FfnLayout layout;
  WeightTable weights;
  AxisSet gathered;  // weights all-gathered over these axes per use; tokens split over them
};
const LayoutRule& GetLayoutRule(FfnLayout layout);
// The residual stream [tokens, E] between layers.
TensorSpec ResidualSpec(FfnLayout layout);
// The spec a role's weight has when multiplied (stored, with the layout's gathered axes gathered).
TensorSpec UsedSpec(FfnLayout layout, Role role);

// ---- 4. Derived collectives ----
enum class Payload { kActivation, kWeight };
struct CollectiveStep {
  CollectiveKind kind = CollectiveKind::kAllGather;
  AxisSet axes;
  std::string what;  // "attn_q.weight", "activations E -> attention", ...
  Payload payload = Payload::kActivation;
  // Elements per rank (all-gather: output; reduce-scatter: input; all-to-all: buffer; all-reduce: buffer)
  // = fixed + tokens / token_shards * per_local_token.
  int64_t fixed = 0;
  int token_shards = 1;
  int64_t per_local_token = 0;
  // False for what Pope et al.'s formulas (and cost_model.cc) leave out: the norm statistics all-reduce
  // when E stays split at a norm (2D weight-stationary).
  bool in_paper_model = true;
  int64_t Elements(int64_t tokens) const { return fixed + tokens / token_shards * per_local_token; }
  // Bytes this rank sends, by comm.h's definitions.
  int64_t BytesSent(const MeshShape& m, int64_t tokens, int64_t act_bytes, int64_t weight_bytes) const;
  std::string ToString(const MeshShape& m, int64_t tokens) const;
};

struct LayerProgram {
  FfnLayout layout;
  AttnSharding attn;  // as run (weight-gathered layouts are batch-sharded already: kBatch)
  MeshShape mesh;
  TensorSpec residual;
  std::vector<CollectiveStep> steps;  // in execution order, one layer
  std::vector<std::string> trace;     // the spec of every activation, for docs and debugging
  int64_t BytesSent(int64_t tokens, int64_t act_bytes, int64_t weight_bytes,
                    bool paper_model_only = false) const;
};

// Checks that `mesh` divides every dimension the layout splits (weights: rows and cols; Q/KV heads for
// head-sharded attention; the batch for token-split layouts and batch attention) and derives one layer's
// collectives. Errors name the dimension and suggest a mesh. `batch` is the number of sequences per pass.
Result<LayerProgram> DeriveLayerProgram(const ModelConfig& config, const MeshShape& mesh,
                                        FfnLayout layout, AttnSharding attn, int64_t batch);

}  // namespace si
