// The sharded matmul op (prototype of the API the engine should call; docs/parallel.md): a layer
// calls ShardedMatMul the same way for every layout; the collectives come from the specs, never
// from a tensor-parallel branch in the layer.
//
// Activations are row-major [rows = local tokens, features]; a features dim split over a group's
// axes is cut into contiguous blocks in group-rank order (mesh.h), which is what DimSharding's
// order means.
#pragma once

#include <memory>
#include <vector>

#include "si/kernels/ops.h"
#include "si/parallel/comm.h"
#include "si/parallel/partition.h"
#include "si/parallel/shard_loader.h"

namespace si {

// [rows, local_cols] on each rank -> [rows, size * local_cols]: the feature blocks of the group
// side by side.
Status AllGatherFeatures(Comm& g, const float* in, int64_t rows, int64_t local_cols, float* out);
// [rows, cols] partial sums -> [rows, cols / size]: this rank's feature block, summed in rank
// order.
Status ReduceScatterFeatures(Comm& g, const float* in, int64_t rows, int64_t cols, float* out);

// An activation shard and its spec.
struct ShardedAct {
  std::vector<float> data;  // [rows, local features]
  int64_t rows = 0;         // local tokens
  int64_t dim = 0;          // global features
  TensorSpec spec;
  int64_t local_cols(const MeshShape& m) const { return dim / m.GroupSize(spec.cols.split()); }
};

// How ShardedMatMul overlaps its collectives with the local matmul: the looped collective matmul of
// Pope et al. §3.5 (Wang et al. 2023), with chunks chosen so the arithmetic is exactly that of the
// blocking path (C[m, n] depends only on A row m and W row n, kernels/ops.h), i.e. bit-identical
// results:
//   - an input all-gather and many rows (prefill, >= 2 * min_chunk_rows): row chunks. The
//   all-gather of
//     every chunk is started at once; chunk c's matmul waits only for its own rows, and the
//     reduce-scatter of chunk c (if any) starts as soon as its partial sums exist, while chunk c +
//     1 computes. (Row chunks re-stream the weight per chunk, so they are used only where they buy
//     the all-gather overlap.)
//   - otherwise (decode, or no input all-gather): column chunks. Chunk s computes columns [c0, c1)
//   of every
//     destination block of the reduce-scatter (one kernel call per block) and starts its
//     reduce-scatter while chunk s + 1 computes. A (small, decode) input all-gather stays blocking
//     here: splitting it would split the contraction dim and change the summation order.
//   The reduce-scatters of a call are waited for at its end, so weight i's overlap weight i + 1's
//   compute.
//   - weight-gathered layouts: the gather of the next weight (the next in the call, or the one
//   named by
//     MatMulWorkspace::SetNextWeight for the next call) runs while this weight's chunks compute,
//     into the other half of a double buffer that is reused across calls.
// Between kernel calls every op in flight is Test()ed so that MPI progresses it (comm.h).
struct OverlapOptions {
  // Off by default: on one 2-core machine with Open MPI over shared memory it was measured slower
  // (docs/parallel.md, "Overlap"); `--overlap on` / DistEngine::set_overlap switch it on.
  bool enabled = false;
  int max_chunks = 4;           // pieces each collective is split into (at most)
  int64_t min_chunk_rows = 16;  // row chunks: at least this many tokens per kernel call
  int64_t min_chunk_cols = 32;  // column chunks: at least this many weight rows per kernel call
  int64_t min_chunk_bytes = 64 << 10;  // no chunk of a collective below this (per-call latency)
};

// Reusable buffers (gathered input, reduce-scatter blocks, the double-buffered gathered weights)
// and the in-flight weight prefetch of ShardedMatMul. One per engine, used by one thread; it must
// not outlive the Mesh whose collectives it started (Drain() first).
class MatMulWorkspace {
 public:
  explicit MatMulWorkspace(OverlapOptions options = {});
  ~MatMulWorkspace();
  MatMulWorkspace(const MatMulWorkspace&) = delete;
  MatMulWorkspace& operator=(const MatMulWorkspace&) = delete;

  OverlapOptions options;
  // The weight the next ShardedMatMul call will use first, so that its gather can start while this
  // call computes (only weight-gathered uses start one; null: none). Every rank must give the same
  // hints.
  void SetNextWeight(const WeightShard* w, const TensorSpec& used);
  // Completes a prefetch that no call consumed (end of a forward pass, error paths).
  Status Drain();
  // Bytes held by the buffers (the two gathered-weight slots dominate for weight-gathered layouts).
  int64_t buffer_bytes() const;

  struct Impl;  // sharded_matmul.cc
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// out = a * W^T for W's shard `w` used with spec `used` (= UsedSpec(layout, role)):
//   1. all-gather the minor feature axes of `a` that the weight's cols do not have (Pope:
//   all-gather(yz));
//   2. local matmul with the shard;
//   3. if `resolve_partial`, reduce-scatter the partial sums over the weight's col axes into the
//   output
//      features (Pope §3.5); otherwise return them as `partial` (the parallel block adds two
//      first).
// Weight-gathered layouts (used != stored): the weight shard is all-gathered over the gathered axes
// first, into the workspace's buffers. Several weights reading the same input (Q, K, V; gate and
// up; the parallel block's attention + FFN in-projections) share one all-gather: pass them
// together. Each weight's `used` spec comes from UsedSpec(layout, role); all must have the same
// cols spec. `work` null: blocking collectives and temporary buffers. With a workspace whose
// options.enabled is set, the collectives overlap the matmul (above); the results and the bytes
// sent are the same either way.
Result<std::vector<ShardedAct>> ShardedMatMul(Mesh& mesh, const Kernels& k, const ShardedAct& a,
                                              const std::vector<const WeightShard*>& w,
                                              const std::vector<TensorSpec>& used,
                                              bool resolve_partial, ThreadPool* pool = nullptr,
                                              MatMulWorkspace* work = nullptr);
inline Result<ShardedAct> ShardedMatMul(Mesh& mesh, const Kernels& k, const ShardedAct& a,
                                        const WeightShard& w, const TensorSpec& used,
                                        bool resolve_partial, ThreadPool* pool = nullptr,
                                        MatMulWorkspace* work = nullptr) {
  auto r = ShardedMatMul(mesh, k, a, std::vector<const WeightShard*>{&w},
                         std::vector<TensorSpec>{used}, resolve_partial, pool, work);
  if (!r.ok()) return r.status();
  return std::move((*r)[0]);
}
// Reduce-scatter an activation's partial sums into its features (spec updated).
Status ResolvePartialSums(Mesh& mesh, ShardedAct& a);

}  // namespace si
