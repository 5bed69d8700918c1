// ModelConfig: the one description of a decoder/encoder transformer that the engine, the analytical model
// and the partitioner all read. Filled from GGUF metadata (gguf_loader) or from a named preset (analysis).
//
// Glossary (used everywhere; paper letters in comments only):
//   batch (B), num_tokens, model_dim (E), ffn_dim (F), num_heads (H), num_kv_heads, head_dim,
//   vocab_size (V), seq_len, pos.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "si/base/status.h"

namespace si {

enum class Arch { kLlama, kGpt2, kFalcon, kBert };
enum class NormKind { kRmsNorm, kLayerNorm };
// kSwiGlu: down(silu(gate(x)) * up(x)), three matrices. kGelu: down(gelu(up(x))), two matrices.
enum class FfnKind { kSwiGlu, kGelu };
// kRopeNormal rotates adjacent pairs (x[2i], x[2i+1]); kRopeNeox rotates (x[i], x[i + rope_dims/2]).
enum class PositionKind { kRopeNormal, kRopeNeox, kLearned };
// kSerial:   x += attn(norm1(x)); x += ffn(norm2(x))          (llama, gpt2)
// kParallel: x += attn(norm(x)) + ffn(norm(x)), one norm    (falcon; PaLM's block in Pope et al.)
// kPostNorm: x = norm1(x + attn(x)); x = norm2(x + ffn(x))   (bert)
enum class BlockKind { kSerial, kParallel, kPostNorm };
enum class Pooling { kNone, kMean, kCls, kLast };

std::string_view ArchName(Arch a);
struct ModelConfig;
// Sets what an architecture fixes (norm, FFN kind, positions, block kind, fused QKV, biases, causality,
// pooling) from c.arch; with head_dim set, also rope_dims = head_dim for RoPE archs. The one place these
// traits are written: the GGUF loader, make-model and the analysis presets all start from it.
void ApplyArchTraits(ModelConfig& c);
Result<Arch> ParseArch(std::string_view name);
std::string_view PoolingName(Pooling p);

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string name;
  int64_t vocab_size = 0;
  int64_t model_dim = 0;
  int64_t ffn_dim = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // == num_heads: multi-head; 1: multiquery; otherwise grouped-query
  int64_t head_dim = 0;
  int64_t context_len = 0;   // maximum positions (n_ctx_train)
  float norm_eps = 1e-5f;
  float rope_base = 10000.0f;
  int64_t rope_dims = 0;     // rotated dimensions per head (<= head_dim)
  NormKind norm = NormKind::kRmsNorm;
  FfnKind ffn = FfnKind::kSwiGlu;
  PositionKind position = PositionKind::kRopeNormal;
  BlockKind block = BlockKind::kSerial;
  bool causal = true;
  bool tied_output = false;  // no output matrix: logits use token_embd
  bool fused_qkv = false;    // one [q_dim + 2 kv_dim, model_dim] matrix, rows Q, K, V
  bool has_bias = false;     // matrices carry biases
  int64_t num_token_types = 0;
  Pooling pooling = Pooling::kNone;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  int64_t qkv_dim() const { return q_dim() + 2 * kv_dim(); }
  bool is_encoder() const { return !causal; }
  // Checks the dimensions are positive and consistent (heads divide, rope_dims even and <= head_dim).
  Status Validate() const;
};

}  // namespace si
