// The inference engine: a forward pass over a batch of sequences (prefill and decode are the same call),
// with a per-sequence KV cache. Straight-line code per block kind, over preallocated activations.
//
// Determinism: a sequence's logits are bit-identical whether it runs alone or batched with others, and
// whatever the thread count: every kernel computes each output row from its own inputs in a fixed order
// (see kernels/ops.h), and attention runs per sequence.
#pragma once

#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <vector>

#include "si/base/thread_pool.h"
#include "si/kernels/ops.h"
#include "si/model/loader.h"

namespace si {

struct EngineOptions {
  int num_threads = 0;                // 0: all hardware threads
  const Kernels* kernels = nullptr;   // null: BestKernels()
  int64_t context_len = 0;            // 0: the model's context length; larger is an error
  // Repack f32 / f16 / bf16 matmul weights into the kernel table's panel layout when it has one
  // (AVX2: ~1.15-1.3x prefill and decode, one copy of those weights in memory). false: run the
  // model's matrices as stored, with the numerics of the distributed engine (which does not
  // repack).
  bool repack_weights = true;
};

// Per-op time accumulated over forward passes (for bench's breakdown). Seconds.
struct OpTimes {
  double matmul = 0, attention = 0, norm = 0, activation = 0, other = 0;
  void Clear() { *this = OpTimes(); }
};

// Tokens to append to one sequence in a batched forward pass.
struct SeqTokens {
  int seq = 0;                        // from NewSequence()
  std::span<const int32_t> tokens;    // appended at positions SeqLen(seq) ...
  bool all_logits = false;            // logits for every token, else only the last
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> Create(std::shared_ptr<const Model> model, EngineOptions options = {});

  const ModelConfig& config() const { return model_->config(); }
  const Model& model() const { return *model_; }
  int64_t context_len() const { return context_len_; }
  int num_threads() const { return pool_->num_threads(); }
  const Kernels& kernels() const { return *k_; }

  // Sequences own a slot in the KV cache.
  int NewSequence();
  void FreeSequence(int seq);
  int64_t SeqLen(int seq) const;
  // Forgets everything after the first `len` positions (e.g. to re-run a prompt).
  void TruncateSequence(int seq, int64_t len);

  // One batched forward pass (decoder models). Appends each entry's tokens to its sequence and writes the
  // logits rows in batch order to `logits`: [rows, vocab_size], rows = sum over entries of (all_logits ?
  // tokens : 1). Errors: unknown sequence, token id out of range, context exceeded; on error no sequence
  // is changed.
  Status Forward(std::span<const SeqTokens> batch, std::vector<float>* logits);

  // Encoder models (bert): final hidden states [num_tokens, model_dim] for one sequence of tokens.
  Status Encode(std::span<const int32_t> tokens, std::vector<float>* hidden);

  // Bytes of the matmul weights as this engine reads them, each once per decode step: the stored
  // rows, or their panel copies (int8 rows: 6% fewer bytes than stored; f32 / Q8_0: the same, plus
  // zero rows up to a multiple of 16 outputs).
  int64_t matmul_bytes() const { return matmul_bytes_; }

  OpTimes& op_times() { return times_; }
  void set_profile(bool on) { profile_ = on; }

 private:
  Engine() = default;
  struct Sequence {
    bool used = false;
    int64_t len = 0;
    std::vector<std::vector<float>> k, v;  // per layer: [capacity, kv_dim]
  };
  Status CheckBatch(std::span<const SeqTokens> batch) const;
  void EnsureCapacity(Sequence& s, int64_t len);
  // The transformer body over `num_tokens` rows in x_ ([num_tokens, model_dim]), writing K/V to the cache.
  void RunLayers(std::span<const SeqTokens> batch, int64_t num_tokens);
  void Attention(int64_t layer, std::span<const SeqTokens> batch, const float* q, float* out);
  void ResizeActivations(int64_t num_tokens);
  void Embed(const int32_t* ids, const int32_t* pos, int64_t n);
  // Binds every matmul weight, repacked into the kernel table's panel layout when it has one and
  // `repack`. Errors: out of memory for the copy.
  Status PrepareWeights(bool repack);
  const MatRef& Mat(Role role, int64_t layer) const { return mats_[layer][static_cast<int>(role)]; }

  std::shared_ptr<const Model> model_;
  const Kernels* k_ = nullptr;
  std::unique_ptr<ThreadPool> pool_;
  int64_t context_len_ = 0;
  std::vector<Sequence> seqs_;
  OpTimes times_;
  bool profile_ = false;

  // The matmul weights as the kernels run them: the model's matrices, or their copies in the
  // table's panel layout (Kernels::to_panels; f32 / f16 / bf16, Q8_0 and int8 rows on AVX2),
  // which live in panel_storage_.
  std::vector<std::array<MatRef, kNumRoles>> mats_;  // [layer][role]
  MatRef output_;                                    // the output projection
  struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, FreeDeleter> panel_storage_;
  int64_t matmul_bytes_ = 0;

  // Activations, resized per batch (capacity is kept). Shapes in rows of the batch's num_tokens.
  std::vector<int32_t> ids_, pos_;       // [num_tokens]
  std::vector<float> x_;                 // [num_tokens, model_dim] residual stream
  std::vector<float> h_;                 // [num_tokens, model_dim] normed input
  std::vector<float> qkv_;               // [num_tokens, qkv_dim]
  std::vector<float> q_;                 // [num_tokens, q_dim]
  std::vector<float> attn_;              // [num_tokens, q_dim]
  std::vector<float> proj_;              // [num_tokens, model_dim]
  std::vector<float> gate_, up_;         // [num_tokens, ffn_dim]
  std::vector<float> ffn_out_;           // [num_tokens, model_dim]
};

}  // namespace si
