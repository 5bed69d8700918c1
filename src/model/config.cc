#include "si/model/config.h"

namespace si {

std::string_view ArchName(Arch a) {
  switch (a) {
    case Arch::kLlama: return "llama";
    case Arch::kGpt2: return "gpt2";
    case Arch::kFalcon: return "falcon";
    case Arch::kBert: return "bert";
  }
  return "?";
}

Result<Arch> ParseArch(std::string_view name) {
  for (Arch a : {Arch::kLlama, Arch::kGpt2, Arch::kFalcon, Arch::kBert}) {
    if (ArchName(a) == name) return a;
  }
  return UnsupportedError("unknown architecture '", name, "' (supported: llama, gpt2, falcon, bert)");
}

std::string_view PoolingName(Pooling p) {
  switch (p) {
    case Pooling::kNone: return "none";
    case Pooling::kMean: return "mean";
    case Pooling::kCls: return "cls";
    case Pooling::kLast: return "last";
  }
  return "?";
}

void ApplyArchTraits(ModelConfig& c) {
  c.fused_qkv = c.has_bias = false;
  c.causal = true;
  c.num_token_types = 0;
  c.pooling = Pooling::kNone;
  switch (c.arch) {
    case Arch::kLlama:
      c.norm = NormKind::kRmsNorm;
      c.ffn = FfnKind::kSwiGlu;
      c.position = PositionKind::kRopeNormal;
      c.block = BlockKind::kSerial;
      break;
    case Arch::kGpt2:
      c.norm = NormKind::kLayerNorm;
      c.ffn = FfnKind::kGelu;
      c.position = PositionKind::kLearned;
      c.block = BlockKind::kSerial;
      c.fused_qkv = c.has_bias = true;
      break;
    case Arch::kFalcon:
      c.norm = NormKind::kLayerNorm;
      c.ffn = FfnKind::kGelu;
      c.position = PositionKind::kRopeNeox;
      c.block = BlockKind::kParallel;
      c.fused_qkv = true;
      break;
    case Arch::kBert:
      c.norm = NormKind::kLayerNorm;
      c.ffn = FfnKind::kGelu;
      c.position = PositionKind::kLearned;
      c.block = BlockKind::kPostNorm;
      c.has_bias = true;
      c.causal = false;
      c.num_token_types = 2;
      c.pooling = Pooling::kMean;
      break;
  }
  c.rope_dims = c.position == PositionKind::kLearned ? 0 : c.head_dim;
}

Status ModelConfig::Validate() const {
  // Upper bound: far above any real model, low enough that products of two dims cannot overflow.
  constexpr int64_t kMaxDim = int64_t{1} << 28;
  auto positive = [](const char* what, int64_t v) -> Status {
    if (v <= 0) return InvalidArgumentError(what, " must be positive, got ", v);
    if (v > kMaxDim) return InvalidArgumentError(what, " = ", v, " is out of range");
    return Status::Ok();
  };
  SI_RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  SI_RETURN_IF_ERROR(positive("model_dim", model_dim));
  SI_RETURN_IF_ERROR(positive("ffn_dim", ffn_dim));
  SI_RETURN_IF_ERROR(positive("num_layers", num_layers));
  SI_RETURN_IF_ERROR(positive("num_heads", num_heads));
  SI_RETURN_IF_ERROR(positive("num_kv_heads", num_kv_heads));
  SI_RETURN_IF_ERROR(positive("head_dim", head_dim));
  SI_RETURN_IF_ERROR(positive("context_len", context_len));
  if (num_heads % num_kv_heads != 0) {
    return InvalidArgumentError("num_heads (", num_heads, ") is not a multiple of num_kv_heads (", num_kv_heads,
                                ")");
  }
  if (position != PositionKind::kLearned && (rope_dims <= 0 || rope_dims > head_dim || rope_dims % 2 != 0)) {
    return InvalidArgumentError("rope_dims must be even and in (0, head_dim=", head_dim, "], got ", rope_dims);
  }
  if (!(norm_eps > 0.0f) || norm_eps > 1.0f) return InvalidArgumentError("norm_eps out of range: ", norm_eps);
  return Status::Ok();
}

}  // namespace si
