// The sharded matmul op (prototype of the API the engine should call; docs/parallel.md): a layer calls
// ShardedMatMul the same way for every layout; the collectives come from the specs, never from a
// tensor-parallel branch in the layer.
//
// Activations are row-major [rows = local tokens, features]; a features dim split over a group's axes is
// cut into contiguous blocks in group-rank order (mesh.h), which is what DimSharding's order means.
#pragma once

#include <vector>

#include "si/kernels/ops.h"
#include "si/parallel/comm.h"
#include "si/parallel/partition.h"
#include "si/parallel/shard_loader.h"

namespace si {

// [rows, local_cols] on each rank -> [rows, size * local_cols]: the feature blocks of the group side by side.
Status AllGatherFeatures(Comm& g, const float* in, int64_t rows, int64_t local_cols, float* out);
// [rows, cols] partial sums -> [rows, cols / size]: this rank's feature block, summed in rank order.
Status ReduceScatterFeatures(Comm& g, const float* in, int64_t rows, int64_t cols, float* out);

// An activation shard and its spec.
struct ShardedAct {
  std::vector<float> data;  // [rows, local features]
  int64_t rows = 0;         // local tokens
  int64_t dim = 0;          // global features
  TensorSpec spec;
  int64_t local_cols(const MeshShape& m) const { return dim / m.GroupSize(spec.cols.split()); }
};

// out = a * W^T for W's shard `w` used with spec `used` (= UsedSpec(layout, role)):
//   1. all-gather the minor feature axes of `a` that the weight's cols do not have (Pope: all-gather(yz));
//   2. local matmul with the shard;
//   3. if `resolve_partial`, reduce-scatter the partial sums over the weight's col axes into the output
//      features (Pope §3.5); otherwise return them as `partial` (the parallel block adds two first).
// Weight-gathered layouts (used != stored): the weight shard is all-gathered over the gathered axes into a
// temporary buffer first (one matrix at a time; not yet overlapped with the matmul).
// Several weights reading the same input (Q, K, V; gate and up; the parallel block's attention + FFN
// in-projections) share one all-gather: pass them together. Each weight's `used` spec comes from
// UsedSpec(layout, role); all must have the same cols spec.
Result<std::vector<ShardedAct>> ShardedMatMul(Mesh& mesh, const Kernels& k, const ShardedAct& a,
                                              const std::vector<const WeightShard*>& w,
                                              const std::vector<TensorSpec>& used, bool resolve_partial,
                                              ThreadPool* pool = nullptr);
inline Result<ShardedAct> ShardedMatMul(Mesh& mesh, const Kernels& k, const ShardedAct& a, const WeightShard& w,
                                        const TensorSpec& used, bool resolve_partial, ThreadPool* pool = nullptr) {
  auto r = ShardedMatMul(mesh, k, a, std::vector<const WeightShard*>{&w}, std::vector<TensorSpec>{used},
                         resolve_partial, pool);
  if (!r.ok()) return r.status();
  return std::move((*r)[0]);
}
// Reduce-scatter an activation's partial sums into its features (spec updated).
Status ResolvePartialSums(Mesh& mesh, ShardedAct& a);

}  // namespace si
