#include "si/runtime/engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "si/base/check.h"
#include "si/base/mmap_file.h"
#include "si/base/timer.h"

namespace si {
namespace {

// Accumulates the wall time of a scope into `slot` when profiling is on.
class ScopedTime {
 public:
  ScopedTime(bool on, double& slot) : on_(on), slot_(slot), start_(on ? NowSeconds() : 0.0) {}
  ~ScopedTime() {
    if (on_) slot_ += NowSeconds() - start_;
  }

 private:
  bool on_;
  double& slot_;
  double start_;
};

// KV cache capacity grows in steps of this many positions (amortizes the copy on growth).
constexpr int64_t kKvGrowth = 256;

}  // namespace

Result<std::unique_ptr<Engine>> Engine::Create(std::shared_ptr<const Model> model, EngineOptions options) {
  std::unique_ptr<Engine> e(new Engine());
  e->model_ = std::move(model);
  e->k_ = options.kernels ? options.kernels : &BestKernels();
  if (options.num_threads < 0) return InvalidArgumentError("threads must be >= 0, got ", options.num_threads);
  e->pool_ = std::make_unique<ThreadPool>(options.num_threads);
  const int64_t model_ctx = e->model_->config().context_len;
  if (options.context_len > model_ctx) {
    return InvalidArgumentError("context length ", options.context_len, " exceeds the model's ", model_ctx);
  }
  e->context_len_ = options.context_len > 0 ? options.context_len : model_ctx;
  SI_RETURN_IF_ERROR(e->PrepareWeights(options.repack_weights));
  return e;
}

// Costs one copy of the f32 / f16 / bf16 matmul weights (the model's mapping stays as it is) and
// one pass over them at start-up; repays it in every matmul (docs/kernels.md, "f32 on AVX2: outputs
// in the lanes").
Status Engine::PrepareWeights(bool repack) {
  const int64_t layers = config().num_layers;
  mats_.assign(layers, {});
  std::vector<MatRef*> all;
  for (int64_t l = 0; l < layers; ++l) {
    for (int r = 0; r < kNumRoles; ++r) {
      const Role role = static_cast<Role>(r);
      const RoleInfo& info = GetRoleInfo(role);
      if (!info.per_layer || info.op != OpKind::kMatMul || !model_->W(role, l).present()) continue;
      mats_[l][r] = model_->W(role, l).mat;
      all.push_back(&mats_[l][r]);
    }
  }
  output_ = model_->OutputMatrix().mat;
  if (!config().is_encoder() && model_->OutputMatrix().present()) all.push_back(&output_);
  matmul_bytes_ = 0;
  for (const MatRef* w : all) matmul_bytes_ += w->rows * w->row_bytes();
  if (!repack || k_->panel_bytes == nullptr) return Status::Ok();
  auto rounded = [](int64_t bytes) { return (bytes + 63) / 64 * 64; };
  int64_t total = 0;
  for (const MatRef* w : all) total += rounded(k_->panel_bytes(*w));
  if (total == 0) return Status::Ok();
  panel_storage_.reset(static_cast<uint8_t*>(AllocateHuge(static_cast<size_t>(total))));
  if (panel_storage_ == nullptr) {
    return ResourceExhaustedError("out of memory for ", total,
                                  " bytes of repacked weights (EngineOptions::repack_weights = "
                                  "false runs them as stored)");
  }
  uint8_t* p = panel_storage_.get();
  for (MatRef* w : all) {
    const int64_t bytes = k_->panel_bytes(*w);
    if (bytes == 0) continue;
    const MatRef stored = *w;
    *w = k_->to_panels(stored, p, pool_.get());
    matmul_bytes_ += bytes - stored.rows * stored.row_bytes();
    p += rounded(bytes);
    // The stored rows are not read again by this engine (the token embedding, which get_rows reads,
    // is never repacked): give their pages back so that resident memory stays about one copy.
    // Only for a file mapping: on an in-memory image MADV_DONTNEED would zero the caller's bytes.
    if (model_->gguf().is_mapped() && stored.data != model_->W(Role::kTokenEmbd).mat.data) {
      ReleasePages(stored.data, static_cast<size_t>(stored.rows * stored.row_bytes()));
    }
  }
  return Status::Ok();
}

int Engine::NewSequence() {
  for (size_t i = 0; i < seqs_.size(); ++i) {
    if (!seqs_[i].used) {
      seqs_[i].used = true;
      seqs_[i].len = 0;
      return static_cast<int>(i);
    }
  }
  Sequence s;
  s.used = true;
  s.k.resize(config().num_layers);
  s.v.resize(config().num_layers);
  seqs_.push_back(std::move(s));
  return static_cast<int>(seqs_.size() - 1);
}

void Engine::FreeSequence(int seq) {
  SI_CHECK(seq >= 0 && seq < static_cast<int>(seqs_.size()) && seqs_[seq].used) << seq;
  seqs_[seq].used = false;
  seqs_[seq].len = 0;
}

int64_t Engine::SeqLen(int seq) const {
  SI_CHECK(seq >= 0 && seq < static_cast<int>(seqs_.size()) && seqs_[seq].used) << seq;
  return seqs_[seq].len;
}

void Engine::TruncateSequence(int seq, int64_t len) {
  SI_CHECK(seq >= 0 && seq < static_cast<int>(seqs_.size()) && seqs_[seq].used) << seq;
  SI_CHECK(len >= 0 && len <= seqs_[seq].len) << len;
  seqs_[seq].len = len;
}

void Engine::EnsureCapacity(Sequence& s, int64_t len) {
  const int64_t kv_dim = config().kv_dim();
  const size_t need = static_cast<size_t>(len * kv_dim);
  if (!s.k.empty() && s.k[0].size() >= need) return;
  const int64_t cap = std::min(context_len_, (len + kKvGrowth - 1) / kKvGrowth * kKvGrowth);
  for (int64_t l = 0; l < config().num_layers; ++l) {
    s.k[l].resize(static_cast<size_t>(cap * kv_dim));
    s.v[l].resize(static_cast<size_t>(cap * kv_dim));
  }
}

Status Engine::CheckBatch(std::span<const SeqTokens> batch) const {
  if (batch.empty()) return InvalidArgumentError("empty batch");
  std::vector<bool> seen(seqs_.size(), false);
  for (const SeqTokens& e : batch) {
    if (e.seq < 0 || e.seq >= static_cast<int>(seqs_.size()) || !seqs_[e.seq].used) {
      return InvalidArgumentError("unknown sequence ", e.seq);
    }
    if (seen[e.seq]) return InvalidArgumentError("sequence ", e.seq, " appears twice in one batch");
    seen[e.seq] = true;
    if (e.tokens.empty()) return InvalidArgumentError("sequence ", e.seq, ": no tokens");
    for (int32_t id : e.tokens) {
      if (id < 0 || id >= config().vocab_size) {
        return InvalidArgumentError("token id ", id, " is out of range [0, ", config().vocab_size, ")");
      }
    }
    const int64_t len = seqs_[e.seq].len + static_cast<int64_t>(e.tokens.size());
    if (len > context_len_) {
      return OutOfRangeError(seqs_[e.seq].len > 0 ? StrCat(seqs_[e.seq].len, " cached + ") : "",
                             e.tokens.size(), " tokens exceed the context length of ", context_len_);
    }
  }
  return Status::Ok();
}

void Engine::ResizeActivations(int64_t T) {
  const ModelConfig& c = config();
  const auto E = static_cast<size_t>(T * c.model_dim);
  x_.resize(E);
  h_.resize(E);
  proj_.resize(E);
  ffn_out_.resize(E);
  q_.resize(static_cast<size_t>(T * c.q_dim()));
  attn_.resize(static_cast<size_t>(T * c.q_dim()));
  qkv_.resize(static_cast<size_t>(T * c.qkv_dim()));
  gate_.resize(static_cast<size_t>(T * c.ffn_dim));
  up_.resize(static_cast<size_t>(T * c.ffn_dim));
}

void Engine::Embed(const int32_t* ids, const int32_t* pos, int64_t n) {
  const ModelConfig& c = config();
  const int64_t E = c.model_dim;
  k_->get_rows(model_->W(Role::kTokenEmbd).mat, ids, n, x_.data());
  if (c.position == PositionKind::kLearned) {
    k_->get_rows(model_->W(Role::kPosEmbd).mat, pos, n, h_.data());
    k_->add(x_.data(), h_.data(), n * E);
  }
  if (model_->W(Role::kTokenTypes).present()) {
    // Every token has type 0 (single-segment input, as llama-embedding does).
    const float* type0 = model_->W(Role::kTokenTypes).f32();
    for (int64_t t = 0; t < n; ++t) k_->add(x_.data() + t * E, type0, E);
  }
  if (model_->W(Role::kEmbdNorm).present()) {
    k_->layer_norm(x_.data(), model_->W(Role::kEmbdNorm).f32(), model_->W(Role::kEmbdNormBias).f32(), n, E,
                   c.norm_eps, x_.data());
  }
}

void Engine::Attention(int64_t layer, std::span<const SeqTokens> batch, const float* q, float* out) {
  const ModelConfig& c = config();
  int64_t off = 0;
  for (const SeqTokens& e : batch) {
    Sequence& s = seqs_[e.seq];
    const int64_t n = static_cast<int64_t>(e.tokens.size());
    AttentionArgs a;
    a.q = q + off * c.q_dim();
    a.num_tokens = n;
    a.q_pos = pos_.data() + off;
    a.k = s.k[layer].data();
    a.v = s.v[layer].data();
    a.kv_len = s.len + n;
    a.kv_stride = c.kv_dim();
    a.num_heads = c.num_heads;
    a.num_kv_heads = c.num_kv_heads;
    a.head_dim = c.head_dim;
    a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    a.causal = c.causal;
    a.out = out + off * c.q_dim();
    k_->attention(a, pool_.get());
    off += n;
  }
}

void Engine::RunLayers(std::span<const SeqTokens> batch, int64_t T) {
  const ModelConfig& c = config();
  const Model& m = *model_;
  const Kernels& k = *k_;
  ThreadPool* pool = pool_.get();
  const int64_t E = c.model_dim, F = c.ffn_dim, QD = c.q_dim(), KVD = c.kv_dim();
  const bool rope = c.position != PositionKind::kLearned;
  const bool neox = c.position == PositionKind::kRopeNeox;

  auto norm = [&](const float* in, Role gain, Role bias, int64_t l, float* out) {
    ScopedTime st(profile_, times_.norm);
    if (c.norm == NormKind::kRmsNorm) {
      k.rms_norm(in, m.W(gain, l).f32(), T, E, c.norm_eps, out);
    } else {
      k.layer_norm(in, m.W(gain, l).f32(), m.W(bias, l).present() ? m.W(bias, l).f32() : nullptr, T, E,
                   c.norm_eps, out);
    }
  };
  // b == Role::kNumRoles: no bias.
  auto matmul = [&](const float* in, Role w, Role b, int64_t l, float* out) {
    ScopedTime st(profile_, times_.matmul);
    const float* bias = b != Role::kNumRoles && m.W(b, l).present() ? m.W(b, l).f32() : nullptr;
    k.matmul(in, T, Mat(w, l), bias, out, pool);
  };
  // Up to 3 matmuls of the same input (Q/K/V, gate/up): k.matmul_multi quantizes the input once and, in
  // decode, runs them as one parallel region. Same bits as separate matmul calls.
  auto matmuls = [&](const float* in, int count, const Role* w, const Role* b, int64_t l, float* const* out) {
    ScopedTime st(profile_, times_.matmul);
    MatRef mats[3];
    const float* biases[3];
    for (int i = 0; i < count; ++i) {
      mats[i] = Mat(w[i], l);
      biases[i] = b[i] != Role::kNumRoles && m.W(b[i], l).present() ? m.W(b[i], l).f32() : nullptr;
    }
    k.matmul_multi(in, T, count, mats, biases, out, pool);
  };

  // Attention sub-block: in [T, E] -> out [T, E]. Writes this layer's K/V for the batch into the cache.
  auto attention_block = [&](int64_t l, const float* in, float* out) {
    const float *kp, *vp;
    int64_t kv_row;  // stride between token rows of k and v
    if (c.fused_qkv) {
      matmul(in, Role::kWqkv, Role::kBqkv, l, qkv_.data());
      {
        ScopedTime st(profile_, times_.other);
        for (int64_t t = 0; t < T; ++t) std::memcpy(&q_[t * QD], &qkv_[t * c.qkv_dim()], QD * sizeof(float));
      }
      kp = qkv_.data() + QD;
      vp = qkv_.data() + QD + KVD;
      kv_row = c.qkv_dim();
    } else {
      const Role w[3] = {Role::kWq, Role::kWk, Role::kWv}, b[3] = {Role::kBq, Role::kBk, Role::kBv};
      float* const outs[3] = {q_.data(), qkv_.data(), qkv_.data() + T * KVD};
      matmuls(in, 3, w, b, l, outs);
      kp = qkv_.data();
      vp = qkv_.data() + T * KVD;
      kv_row = KVD;
    }
    {
    ScopedTime st(profile_, times_.attention);
    if (rope) {
      k.rope(q_.data(), T, QD, c.num_heads, c.head_dim, c.rope_dims, pos_.data(), c.rope_base, neox);
      k.rope(const_cast<float*>(kp), T, kv_row, c.num_kv_heads, c.head_dim, c.rope_dims, pos_.data(),
             c.rope_base, neox);
    }
    int64_t off = 0;
    for (const SeqTokens& e : batch) {
      Sequence& s = seqs_[e.seq];
      for (int64_t i = 0; i < static_cast<int64_t>(e.tokens.size()); ++i) {
        std::memcpy(&s.k[l][(s.len + i) * KVD], kp + (off + i) * kv_row, KVD * sizeof(float));
        std::memcpy(&s.v[l][(s.len + i) * KVD], vp + (off + i) * kv_row, KVD * sizeof(float));
      }
      off += static_cast<int64_t>(e.tokens.size());
    }
    Attention(l, batch, q_.data(), attn_.data());
    }
    matmul(attn_.data(), Role::kWo, Role::kBo, l, out);
  };

  // FFN sub-block: in [T, E] -> out [T, E].
  auto ffn_block = [&](int64_t l, const float* in, float* out) {
    if (c.ffn == FfnKind::kSwiGlu) {
      const Role w[2] = {Role::kWgate, Role::kWup}, b[2] = {Role::kNumRoles, Role::kNumRoles};
      float* const outs[2] = {gate_.data(), up_.data()};
      matmuls(in, 2, w, b, l, outs);
      ScopedTime st(profile_, times_.activation);
      k.silu_mul(gate_.data(), up_.data(), T * F, gate_.data());
    } else {
      matmul(in, Role::kWup, Role::kBup, l, gate_.data());
      ScopedTime st(profile_, times_.activation);
      k.gelu_tanh(gate_.data(), T * F);
    }
    matmul(gate_.data(), Role::kWdown, Role::kBdown, l, out);
  };

  for (int64_t l = 0; l < c.num_layers; ++l) {
    switch (c.block) {
      case BlockKind::kSerial:
        norm(x_.data(), Role::kAttnNorm, Role::kAttnNormBias, l, h_.data());
        attention_block(l, h_.data(), proj_.data());
        k.add(x_.data(), proj_.data(), T * E);
        norm(x_.data(), Role::kFfnNorm, Role::kFfnNormBias, l, h_.data());
        ffn_block(l, h_.data(), ffn_out_.data());
        k.add(x_.data(), ffn_out_.data(), T * E);
        break;
      case BlockKind::kParallel:
        // x += attn(ln(x)) + ffn(ln(x)); summed as (ffn + attn) + x, the order llama.cpp uses.
        norm(x_.data(), Role::kAttnNorm, Role::kAttnNormBias, l, h_.data());
        attention_block(l, h_.data(), proj_.data());
        ffn_block(l, h_.data(), ffn_out_.data());
        k.add(ffn_out_.data(), proj_.data(), T * E);
        k.add(ffn_out_.data(), x_.data(), T * E);
        std::swap(x_, ffn_out_);
        break;
      case BlockKind::kPostNorm:
        attention_block(l, x_.data(), proj_.data());
        k.add(proj_.data(), x_.data(), T * E);
        norm(proj_.data(), Role::kAttnOutNorm, Role::kAttnOutNormBias, l, x_.data());
        ffn_block(l, x_.data(), ffn_out_.data());
        k.add(ffn_out_.data(), x_.data(), T * E);
        norm(ffn_out_.data(), Role::kLayerOutNorm, Role::kLayerOutNormBias, l, x_.data());
        break;
    }
  }
}

Status Engine::Forward(std::span<const SeqTokens> batch, std::vector<float>* logits) {
  SI_RETURN_IF_ERROR(CheckBatch(batch));
  if (config().is_encoder()) return InvalidArgumentError("encoder models have no logits; use embed");
  const ModelConfig& c = config();
  int64_t T = 0, rows = 0;
  for (const SeqTokens& e : batch) {
    T += static_cast<int64_t>(e.tokens.size());
    rows += e.all_logits ? static_cast<int64_t>(e.tokens.size()) : 1;
  }
  ids_.resize(T);
  pos_.resize(T);
  {
    int64_t off = 0;
    for (const SeqTokens& e : batch) {
      EnsureCapacity(seqs_[e.seq], seqs_[e.seq].len + static_cast<int64_t>(e.tokens.size()));
      for (size_t i = 0; i < e.tokens.size(); ++i) {
        ids_[off] = e.tokens[i];
        pos_[off] = static_cast<int32_t>(seqs_[e.seq].len + static_cast<int64_t>(i));
        ++off;
      }
    }
  }
  const int64_t E = c.model_dim;
  ResizeActivations(T);

  {
    ScopedTime st(profile_, times_.other);
    Embed(ids_.data(), pos_.data(), T);
  }
  RunLayers(batch, T);

  // Gather the rows that need logits into h_ ([rows, E]), then final norm and output projection.
  {
    ScopedTime st(profile_, times_.other);
    int64_t off = 0, r = 0;
    for (const SeqTokens& e : batch) {
      const int64_t n = static_cast<int64_t>(e.tokens.size());
      const int64_t first = e.all_logits ? 0 : n - 1;
      for (int64_t i = first; i < n; ++i, ++r) std::memcpy(&h_[r * E], &x_[(off + i) * E], E * sizeof(float));
      off += n;
    }
  }
  {
    ScopedTime st(profile_, times_.norm);
    const Model& m = *model_;
    if (c.norm == NormKind::kRmsNorm) {
      k_->rms_norm(h_.data(), m.W(Role::kOutputNorm).f32(), rows, E, c.norm_eps, h_.data());
    } else {
      const WeightRef& b = m.W(Role::kOutputNormBias);
      k_->layer_norm(h_.data(), m.W(Role::kOutputNorm).f32(), b.present() ? b.f32() : nullptr, rows, E,
                     c.norm_eps, h_.data());
    }
  }
  logits->resize(static_cast<size_t>(rows * c.vocab_size));
  {
    ScopedTime st(profile_, times_.matmul);
    k_->matmul(h_.data(), rows, output_, nullptr, logits->data(), pool_.get());
  }
  for (const SeqTokens& e : batch) seqs_[e.seq].len += static_cast<int64_t>(e.tokens.size());
  return Status::Ok();
}

Status Engine::Encode(std::span<const int32_t> tokens, std::vector<float>* hidden) {
  if (!config().is_encoder()) return InvalidArgumentError("Encode needs an encoder model (bert)");
  const int seq = NewSequence();
  SeqTokens e{seq, tokens, true};
  std::span<const SeqTokens> batch(&e, 1);
  Status st = CheckBatch(batch);
  if (!st.ok()) {
    FreeSequence(seq);
    return st;
  }
  const ModelConfig& c = config();
  const int64_t T = static_cast<int64_t>(tokens.size()), E = c.model_dim;
  ids_.assign(tokens.begin(), tokens.end());
  pos_.resize(T);
  for (int64_t i = 0; i < T; ++i) pos_[i] = static_cast<int32_t>(i);
  EnsureCapacity(seqs_[seq], T);
  ResizeActivations(T);
  Embed(ids_.data(), pos_.data(), T);
  RunLayers(batch, T);
  hidden->assign(x_.begin(), x_.begin() + T * E);
  FreeSequence(seq);
  return Status::Ok();
}

}  // namespace si
