#include "si/model/loader.h"

#include <algorithm>
#include <cmath>

#include "si/base/check.h"

namespace si {
namespace {

Result<int64_t> RequireInt(const GgufFile& f, const std::string& key) {
  SI_ASSIGN_OR_RETURN(int64_t v, f.GetInt(key));
  if (v <= 0) return InvalidArgumentError("metadata '", key, "' = ", v, " must be positive");
  return v;
}

}  // namespace

Result<ModelConfig> LoadModelConfig(const GgufFile& f) {
  ModelConfig c;
  SI_ASSIGN_OR_RETURN(std::string arch_name, f.GetString("general.architecture"));
  SI_ASSIGN_OR_RETURN(c.arch, ParseArch(arch_name));
  SI_ASSIGN_OR_RETURN(c.name, f.GetStringOr("general.name", arch_name));
  const std::string p = arch_name + ".";
  SI_ASSIGN_OR_RETURN(c.model_dim, RequireInt(f, p + "embedding_length"));
  SI_ASSIGN_OR_RETURN(c.num_layers, RequireInt(f, p + "block_count"));
  if (c.num_layers > static_cast<int64_t>(f.tensors().size())) {
    return CorruptError("metadata '", p, "block_count' = ", c.num_layers, " but the file has only ",
                        f.tensors().size(), " tensors");
  }
  SI_ASSIGN_OR_RETURN(c.ffn_dim, RequireInt(f, p + "feed_forward_length"));
  SI_ASSIGN_OR_RETURN(c.num_heads, RequireInt(f, p + "attention.head_count"));
  SI_ASSIGN_OR_RETURN(c.num_kv_heads, f.GetIntOr(p + "attention.head_count_kv", c.num_heads));
  SI_ASSIGN_OR_RETURN(c.context_len, RequireInt(f, p + "context_length"));
  if (c.model_dim % c.num_heads != 0 && !f.Has(p + "attention.key_length")) {
    return InvalidArgumentError("embedding_length ", c.model_dim, " is not a multiple of head_count ",
                                c.num_heads);
  }
  SI_ASSIGN_OR_RETURN(c.head_dim, f.GetIntOr(p + "attention.key_length", c.model_dim / c.num_heads));
  SI_ASSIGN_OR_RETURN(int64_t value_length, f.GetIntOr(p + "attention.value_length", c.head_dim));
  if (value_length != c.head_dim) {
    return UnsupportedError("attention.value_length ", value_length, " != key_length ", c.head_dim);
  }
  SI_ASSIGN_OR_RETURN(double rope_base, f.GetFloatOr(p + "rope.freq_base", 10000.0));
  c.rope_base = static_cast<float>(rope_base);
  SI_ASSIGN_OR_RETURN(c.rope_dims, f.GetIntOr(p + "rope.dimension_count", c.head_dim));

  // Vocabulary size: explicit key, else the tokenizer's token list, else the embedding table.
  if (f.Has(p + "vocab_size")) {
    SI_ASSIGN_OR_RETURN(c.vocab_size, RequireInt(f, p + "vocab_size"));
  } else if (const GgufValue* toks = f.Find("tokenizer.ggml.tokens");
             toks && toks->type == GgufType::kArray) {
    c.vocab_size = static_cast<int64_t>(std::get<GgufArray>(toks->v).items.size());
  } else if (const GgufTensorInfo* emb = f.FindTensor("token_embd.weight"); emb && emb->n_dims == 2) {
    c.vocab_size = emb->ne[1];
  }

  // What the architecture fixes, then what the metadata may override.
  const int64_t rope_dims = c.rope_dims;
  ApplyArchTraits(c);
  if (c.position != PositionKind::kLearned) c.rope_dims = rope_dims;
  const std::string eps_key = p + (c.norm == NormKind::kRmsNorm ? "attention.layer_norm_rms_epsilon"
                                                                 : "attention.layer_norm_epsilon");
  SI_ASSIGN_OR_RETURN(double eps, f.GetFloat(eps_key));
  c.norm_eps = static_cast<float>(eps);
  // gpt2 always has its own output matrix (llama.cpp requires it); the others tie when it is absent.
  c.tied_output = c.arch != Arch::kGpt2 && f.FindTensor("output.weight") == nullptr;
  if (c.arch == Arch::kFalcon && f.FindTensor("blk.0.attn_norm_2.weight") != nullptr) {
    return UnsupportedError("falcon with two layernorms per block (falcon-40b style) is not supported");
  }
  if (c.arch == Arch::kBert) {
    SI_ASSIGN_OR_RETURN(c.causal, f.GetBoolOr(p + "attention.causal", false));
    SI_ASSIGN_OR_RETURN(c.num_token_types, f.GetIntOr(p + "token_type_count", 2));
    SI_ASSIGN_OR_RETURN(int64_t pooling, f.GetIntOr(p + "pooling_type", 1));
    // llama.cpp's enum: 0 none, 1 mean, 2 cls, 3 last.
    switch (pooling) {
      case 0: c.pooling = Pooling::kNone; break;
      case 1: c.pooling = Pooling::kMean; break;
      case 2: c.pooling = Pooling::kCls; break;
      case 3: c.pooling = Pooling::kLast; break;
      default: return UnsupportedError("bert.pooling_type ", pooling, " is not supported");
    }
  }
  SI_RETURN_IF_ERROR(c.Validate().WithContext("model config"));
  return c;
}

Result<std::unique_ptr<Model>> Model::Load(const std::string& path) {
  SI_ASSIGN_OR_RETURN(auto file, GgufFile::Open(path));
  return FromGguf(std::move(file));
}

Result<std::unique_ptr<Model>> Model::FromGguf(std::unique_ptr<GgufFile> file) {
  std::unique_ptr<Model> m(new Model());
  const std::string path = file->path();
  m->file_ = std::move(file);
  auto cfg = LoadModelConfig(*m->file_);
  if (!cfg.ok()) return cfg.status().WithContext(path);
  m->config_ = *cfg;
  const ModelConfig& c = m->config_;
  m->layers_.resize(c.num_layers);

  auto int8_rows = m->file_->GetBoolOr(kInt8PerChannelKey, false);
  if (!int8_rows.ok()) return int8_rows.status().WithContext(path);
  std::vector<std::pair<DType, int64_t>>& by_type = m->bytes_by_type_;
  auto bind = [&](Role role, Need need, int64_t layer, WeightRef* out) -> Status {
    const RoleInfo& info = GetRoleInfo(role);
    const std::string name = TensorName(role, layer);
    const GgufTensorInfo* t = m->file_->FindTensor(name);
    if (t == nullptr) {
      if (need == Need::kOptional) return Status::Ok();
      return NotFoundError("tensor '", name, "' is missing (required by ", ArchName(c.arch), ")");
    }
    if (!IsSupportedDType(t->type)) {
      return UnsupportedError("tensor '", name, "' has type ", DTypeName(t->type),
                              ", which is not supported (supported: f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K)");
    }
    const int64_t rows = AxisSize(c, info.rows), cols = AxisSize(c, info.cols);
    const bool is_matrix = info.rows != Axis::kNone;
    const bool shape_ok = is_matrix ? (t->n_dims == 2 && t->ne[0] == cols && t->ne[1] == rows)
                                    : (t->n_dims == 1 && t->ne[0] == cols);
    if (!shape_ok) {
      return CorruptError("tensor '", name, "' has shape ", t->ShapeString(), " but the metadata implies ",
                          is_matrix ? StrCat("[", cols, ", ", rows, "]") : StrCat("[", cols, "]"), " (",
                          AxisName(info.cols), is_matrix ? StrCat(" x ", AxisName(info.rows)) : "", ")");
    }
    if (!is_matrix && t->type != DType::kF32) {
      return UnsupportedError("tensor '", name, "' is ", DTypeName(t->type), "; norms and biases must be f32");
    }
    if (info.op == OpKind::kMatMul && cols % DTypeBlockSize(t->type) != 0) {
      return CorruptError("tensor '", name, "': ", cols, " columns is not a multiple of the block size");
    }
    out->info = t;
    out->mat = MatRef{t->type, t->data, is_matrix ? rows : 1, cols};
    // The matrices `quantize --type int8` writes: matmul weights and the token embedding (the output
    // matrix when tied).
    const bool int8_role = info.op == OpKind::kMatMul || role == Role::kTokenEmbd;
    if (*int8_rows && int8_role && is_matrix && t->type == DType::kQ8_0) {
      int64_t bad = 0;
      if (!Q8_0RowsShareScale(out->mat, &bad)) {
        return CorruptError("tensor '", name, "': row ", bad, " has blocks with different scales, but the file is ",
                            "marked per-channel int8 (", kInt8PerChannelKey, " = true)");
      }
      out->mat.int8_rows = true;
    }
    m->num_params_ += t->num_elements();
    auto it = std::find_if(by_type.begin(), by_type.end(), [&](auto& p) { return p.first == t->type; });
    if (it == by_type.end()) {
      by_type.emplace_back(t->type, static_cast<int64_t>(t->size));
    } else {
      it->second += static_cast<int64_t>(t->size);
    }
    return Status::Ok();
  };

  for (const ArchRole& ar : ArchRoles(c.arch)) {
    const RoleInfo& info = GetRoleInfo(ar.role);
    if (info.per_layer) {
      for (int64_t l = 0; l < c.num_layers; ++l) {
        SI_RETURN_IF_ERROR(bind(ar.role, ar.need, l, &m->layers_[l][static_cast<int>(ar.role)]).WithContext(path));
      }
    } else {
      SI_RETURN_IF_ERROR(bind(ar.role, ar.need, 0, &m->global_[static_cast<int>(ar.role)]).WithContext(path));
    }
  }
  return m;
}

const WeightRef& Model::W(Role role, int64_t layer) const {
  const RoleInfo& info = GetRoleInfo(role);
  if (!info.per_layer) return global_[static_cast<int>(role)];
  SI_CHECK(layer >= 0 && layer < config_.num_layers) << layer;
  return layers_[layer][static_cast<int>(role)];
}

const WeightRef& Model::OutputMatrix() const {
  const WeightRef& out = W(Role::kOutput);
  return out.present() ? out : W(Role::kTokenEmbd);
}

int64_t Model::matmul_weight_bytes() const {
  int64_t total = 0;
  for (const ArchRole& ar : ArchRoles(config_.arch)) {
    const RoleInfo& info = GetRoleInfo(ar.role);
    if (info.op != OpKind::kMatMul) continue;
    for (int64_t l = 0; l < (info.per_layer ? config_.num_layers : 1); ++l) {
      const WeightRef& w = W(ar.role, l);
      if (w.present()) total += static_cast<int64_t>(w.info->size);
    }
  }
  if (!W(Role::kOutput).present() && config_.causal) total += static_cast<int64_t>(W(Role::kTokenEmbd).info->size);
  return total;
}

}  // namespace si
