// The distributed (tensor-parallel) engine: the forward pass of runtime/engine.h over a device mesh
// (parallel/mesh.h), with the partition layouts of Pope et al. ("Efficiently Scaling Transformer
// Inference"): FFN 1d-ws, 2d-ws, wg-x, wg-xy, wg-xyz; attention over heads or over batch (Fig. 5b).
//
// Same interface as Engine (NewSequence / Forward / SeqLen ...), so the CLI runs either. Every rank calls
// the same methods with the same arguments (SPMD); every rank returns the full logits.
//
// How a layer stays free of tensor-parallel branches: activations are ShardedAct (data + TensorSpec) and
// the layer is straight-line code over four spec-driven ops (ShardedMatMul, Gather, Norm, Attention).
// Each op reads the specs and runs exactly the collectives the specs require (partition.h's rules, the
// same ones DeriveLayerProgram applies symbolically); nothing in the layer names a layout. A 1x1x1 mesh
// makes every spec replicated and every collective a no-op.
//
// Embedding: the table is replicated (the Model's mmapped view; only looked-up rows are touched); each
// rank looks up its rows and keeps its slice of E per the residual spec: no communication.
// LM head: sharded by vocabulary rows over all ranks (blocks of ceil(V / N) rows, the last one shorter, so
// any V works; whole-row views of the file, no copy); the final hidden rows are all-gathered (features
// over the residual's E axes, then rows over its token axes), the final norm runs replicated, each rank
// computes its vocabulary block, and one all-gather over xyz assembles the logits on every rank. Its
// bytes are counted separately (lm_head_stats()).
// KV cache: per sequence and layer, [capacity, local kv features] where "local" is the attention-time
// spec of K/V: heads split (this rank's KV heads of every sequence) or batch split (every head of the
// sequences this rank owns). A sequence's owner is fixed at its first forward pass (its block of the
// batch); later batches are reordered internally so it lands on the same rank again.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "si/base/thread_pool.h"
#include "si/kernels/ops.h"
#include "si/model/loader.h"
#include "si/parallel/mesh.h"
#include "si/parallel/partition.h"
#include "si/parallel/shard_loader.h"
#include "si/parallel/sharded_matmul.h"
#include "si/runtime/engine.h"

namespace si {

struct PhaseLayout {
  FfnLayout layout = FfnLayout::k2dWs;
  AttnSharding attn = AttnSharding::kHeads;
  std::string ToString() const;  // "2d-ws/heads"
};

struct DistEngineOptions {
  // Prefill: any batch entry has more than one token. Decode: every entry has exactly one. The two must
  // share the weight table and the KV-cache layout (e.g. prefill wg-xyz + decode 2d-ws/batch, Pope §3.2.3).
  PhaseLayout prefill, decode;
  int num_threads = 1;
  const Kernels* kernels = nullptr;  // null: BestKernels()
  int64_t context_len = 0;           // 0: the model's
  // Looped collective matmul (sharded_matmul.h): the matmuls' all-gathers / reduce-scatters / weight
  // gathers overlap the local matmul. Bit-identical results and the same bytes either way.
  OverlapOptions overlap;
};

// The spec of Q/K/V where attention runs (rows: sequences, cols: heads), for a layout.
TensorSpec AttentionSpec(const PhaseLayout& p);

class DistEngine {
 public:
  // `mesh` must outlive the engine. Errors (identical on every rank): dims not divisible, incompatible
  // phase layouts, quantization blocks split.
  static Result<std::unique_ptr<DistEngine>> Create(std::shared_ptr<const Model> model, Mesh* mesh,
                                                    DistEngineOptions options);

  const ModelConfig& config() const { return model_->config(); }
  const Model& model() const { return *model_; }
  Mesh& mesh() const { return *mesh_; }
  int64_t context_len() const { return context_len_; }
  const DistEngineOptions& options() const { return opt_; }
  // Switches the overlap between forward passes (every rank alike), e.g. to measure it in one run.
  void set_overlap(bool on);
  int num_threads() const { return pool_->num_threads(); }

  int NewSequence();
  void FreeSequence(int seq);
  int64_t SeqLen(int seq) const;
  void TruncateSequence(int seq, int64_t len);

  // As Engine::Forward; logits (every rank) [rows, vocab_size] in batch order.
  Status Forward(std::span<const SeqTokens> batch, std::vector<float>* logits);

  // Checks that a batch of `batch` sequences can run in `phase` (divisibility of the batch for token-split
  // layouts and batch attention), with the derived program's error otherwise.
  Status CheckPhase(bool prefill, int64_t batch) const;

  // Bytes this rank sent in the transformer layers (all layers) / the embedding + LM head, since the last
  // ResetStats().
  const CommStats& layer_stats() const { return layer_stats_; }
  const CommStats& lm_head_stats() const { return lm_stats_; }
  void ResetStats();
  // Seconds spent in collectives (wall time inside comm calls) in the layers, since ResetStats().
  double comm_seconds() const { return comm_s_; }

  // Per-rank memory: sharded matmul weights + LM head block, and the KV cache currently allocated.
  int64_t weight_bytes() const;
  int64_t kv_cache_bytes() const;

 private:
  DistEngine() = default;
  struct Sequence {
    bool used = false;
    int64_t len = 0;
    int owner = -1;  // block of the KV rows spec that holds its cache (-1: not yet / replicated)
    std::vector<std::vector<float>> k, v;  // per layer: [capacity, local kv features]
  };
  struct Plan;  // per Forward: ordered batch, row sets
  class Runner;

  std::shared_ptr<const Model> model_;
  Mesh* mesh_ = nullptr;
  DistEngineOptions opt_;
  const Kernels* k_ = nullptr;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ShardedWeights> weights_;
  std::unique_ptr<MatMulWorkspace> matmul_ws_;  // reused buffers + the weight prefetch of ShardedMatMul
  MatRef lm_head_;            // this rank's vocabulary rows of the output matrix (view)
  int64_t vocab_block_ = 0;   // ceil(V / N)
  int64_t vocab_begin_ = 0;
  int64_t context_len_ = 0;
  TensorSpec kv_spec_;        // attention-time spec (same for both phases)
  std::vector<Sequence> seqs_;
  CommStats layer_stats_, lm_stats_;
  double comm_s_ = 0;
};

}  // namespace si
