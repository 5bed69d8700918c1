#include "si/parallel/partition.h"

#include <algorithm>
#include <cctype>

#include "si/analysis/op_cost.h"
#include "si/base/check.h"

namespace si {

// ---- DimSharding ----

namespace {
int AxisIndex(char c) { return std::tolower(static_cast<unsigned char>(c)) - 'x'; }
}  // namespace

DimSharding::DimSharding(std::string axes) : s_(std::move(axes)) {
  AxisSet seen;
  for (char c : s_) {
    const int a = AxisIndex(c);
    SI_CHECK(a >= 0 && a < 3) << "bad dim sharding '" << s_ << "'";
    SI_CHECK(!seen.has(a)) << "axis repeated in dim sharding '" << s_ << "'";
    seen.bits |= static_cast<uint8_t>(1u << a);
  }
  while (!s_.empty() && std::isupper(static_cast<unsigned char>(s_.back()))) s_.pop_back();
}

DimSharding DimSharding::Of(AxisSet s) {
  std::string r;
  for (int a = 0; a < 3; ++a) {
    if (s.has(a)) r += static_cast<char>('x' + a);
  }
  return DimSharding(r);
}

AxisSet DimSharding::split() const {
  AxisSet r;
  for (char c : s_) {
    if (std::islower(static_cast<unsigned char>(c))) r.bits |= static_cast<uint8_t>(1u << AxisIndex(c));
  }
  return r;
}

AxisSet DimSharding::all() const {
  AxisSet r;
  for (char c : s_) r.bits |= static_cast<uint8_t>(1u << AxisIndex(c));
  return r;
}

DimSharding DimSharding::Gathered(AxisSet g) const {
  std::string r = s_;
  for (char& c : r) {
    if (g.has(AxisIndex(c))) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return DimSharding(r);
}

DimSharding DimSharding::Appended(AxisSet g) const {
  SI_CHECK((all() & g).empty()) << "appending " << g.Name() << " to " << ToString();
  return DimSharding(s_ + Of(g).str());
}

bool DimSharding::MinorSuffixOver(const DimSharding& prefix, AxisSet* suffix) const {
  if (s_.size() < prefix.s_.size() || s_.compare(0, prefix.s_.size(), prefix.s_) != 0) return false;
  AxisSet r;
  for (size_t i = prefix.s_.size(); i < s_.size(); ++i) {
    if (!std::islower(static_cast<unsigned char>(s_[i]))) return false;
    r.bits |= static_cast<uint8_t>(1u << AxisIndex(s_[i]));
  }
  *suffix = r;
  return true;
}

void DimSharding::Block(const MeshShape& m, const std::array<int, 3>& coords, int64_t dim,
                        int64_t* begin, int64_t* size) const {
  int64_t index = 0, shards = 1;
  for (char c : s_) {
    SI_CHECK(std::islower(static_cast<unsigned char>(c))) << "Block() of a gathered spec " << s_;
    const int a = AxisIndex(c);
    index = index * m.size(a) + coords[a];
    shards *= m.size(a);
  }
  SI_CHECK(dim % shards == 0) << "dim " << dim << " not divisible by " << shards;
  *size = dim / shards;
  *begin = index * *size;
}

std::string TensorSpec::ToString() const {
  std::string s = StrCat("[", rows.ToString(), ", ", cols.ToString(), "]");
  if (!partial.empty()) s += StrCat(" partialsum-", partial.Name());
  return s;
}

// ---- 1. Weight tables ----

std::string_view WeightTableName(WeightTable t) { return t == WeightTable::kEXFyz ? "E_x F_yz" : "1d"; }

DimSharding StoredAxis(WeightTable t, Axis axis) {
  // The rules table: logical axis -> mesh axes. Heads (Q, KV, fused QKV) are split like F (Pope §3.3:
  // "n_heads replacing d_ff"); the vocabulary of the LM head like F too.
  struct Rule {
    Axis axis;
    const char* exfyz;
    const char* one_d;
  };
  static constexpr Rule kRules[] = {
      {Axis::kModel, "x", ""},   {Axis::kFfn, "yz", "xyz"}, {Axis::kQ, "yz", "xyz"},
      {Axis::kKv, "yz", "xyz"},  {Axis::kQkv, "yz", "xyz"}, {Axis::kVocab, "yz", "xyz"},
  };
  for (const Rule& r : kRules) {
    if (r.axis == axis) return DimSharding(t == WeightTable::kEXFyz ? r.exfyz : r.one_d);
  }
  return DimSharding();  // kNone, kCtx, kTypes: replicated
}

TensorSpec StoredSpec(WeightTable t, Role role) {
  const RoleInfo& info = GetRoleInfo(role);
  TensorSpec s;
  if (info.op == OpKind::kEmbedding) {
    // Lookup tables: rows are looked up by token id; split the model dim like the residual (E over x for
    // E_x F_yz), so the lookup needs no communication before the first layer's all-gather.
    s.cols = StoredAxis(t, info.cols);
    return s;
  }
  s.rows = StoredAxis(t, info.rows);
  s.cols = StoredAxis(t, info.cols);
  return s;
}

// ---- 2. Layout table ----

const LayoutRule& GetLayoutRule(FfnLayout layout) {
  static constexpr LayoutRule kLayouts[] = {
      {FfnLayout::k1dWs, WeightTable::k1d, AxisSet{0}},
      {FfnLayout::k2dWs, WeightTable::kEXFyz, AxisSet{0}},
      {FfnLayout::kWgX, WeightTable::kEXFyz, AxisSet{1}},
      {FfnLayout::kWgXy, WeightTable::kEXFyz, AxisSet{3}},
      {FfnLayout::kWgXyz, WeightTable::kEXFyz, AxisSet{7}},
  };
  for (const LayoutRule& r : kLayouts) {
    if (r.layout == layout) return r;
  }
  SI_CHECK(false) << "no layout rule";
  return kLayouts[0];
}

TensorSpec ResidualSpec(FfnLayout layout) {
  const AxisSet g = GetLayoutRule(layout).gathered;
  TensorSpec s;
  s.rows = DimSharding::Of(g);
  s.cols = DimSharding::Of(AxisSet::XYZ().minus(g));
  return s;
}

TensorSpec UsedSpec(FfnLayout layout, Role role) {
  const LayoutRule& r = GetLayoutRule(layout);
  TensorSpec s = StoredSpec(r.weights, role);
  s.rows = s.rows.Gathered(r.gathered);
  s.cols = s.cols.Gathered(r.gathered);
  return s;
}

// ---- 4. Derivation ----

int64_t CollectiveStep::BytesSent(const MeshShape& m, int64_t tokens, int64_t act_bytes,
                                  int64_t weight_bytes) const {
  const int k = m.GroupSize(axes);
  const int64_t e = payload == Payload::kWeight ? weight_bytes : act_bytes;
  const int64_t n = Elements(tokens);
  switch (kind) {
    case CollectiveKind::kAllReduce: return 2 * (k - 1) * ((n + k - 1) / k) * e;
    default: return (k - 1) * (n / k) * e;  // AG output, RS input, A2A buffer: (K-1)/K of n
  }
}

std::string CollectiveStep::ToString(const MeshShape& m, int64_t tokens) const {
  return StrCat(CollectiveName(kind), "(", axes.Name(), ") ", what, ": ", Elements(tokens),
                " elements/rank, K=", m.GroupSize(axes), payload == Payload::kWeight ? " [weights]" : "",
                in_paper_model ? "" : " [not in Pope's model]");
}

int64_t LayerProgram::BytesSent(int64_t tokens, int64_t act_bytes, int64_t weight_bytes,
                                bool paper_model_only) const {
  int64_t total = 0;
  for (const CollectiveStep& s : steps) {
    if (paper_model_only && !s.in_paper_model) continue;
    total += s.BytesSent(mesh, tokens, act_bytes, weight_bytes);
  }
  return total;
}

namespace {

// One activation [tokens, features] with its spec.
struct Act {
  TensorSpec spec;
  int64_t dim = 0;  // features
  std::string name;
};

class Deriver {
 public:
  Deriver(const ModelConfig& c, const MeshShape& m, FfnLayout layout, AttnSharding attn, int64_t batch)
      : c_(c), m_(m), layout_(layout), attn_(attn), batch_(batch) {}

  Result<LayerProgram> Run();

 private:
  void Emit(CollectiveKind kind, AxisSet axes, std::string what, Payload p, int64_t fixed,
            const DimSharding& tokens, int64_t per_local_token, bool paper = true) {
    if (m_.GroupSize(axes) <= 1) return;
    CollectiveStep s;
    s.kind = kind;
    s.axes = axes;
    s.what = std::move(what);
    s.payload = p;
    s.fixed = fixed;
    s.token_shards = tokens.Shards(m_);
    s.per_local_token = per_local_token;
    s.in_paper_model = paper;
    prog_.steps.push_back(std::move(s));
  }
  void Trace(const Act& a) { prog_.trace.push_back(StrCat(a.name, " ", a.spec.ToString())); }
  Status CheckDivides(std::string_view what, int64_t dim, const DimSharding& d) {
    const int s = d.Shards(m_);
    if (dim % s != 0) {
      return InvalidArgumentError(what, " = ", dim, " is not divisible by the ", s, " shards of mesh axes ",
                                  d.split().Name(), " (--mesh ", m_.ToString(), ", --layout ",
                                  analysis::LayoutName(layout_), "); ", MeshHint(m_.num_ranks(), c_));
    }
    return Status::Ok();
  }
  // All-gather minor axes of a's features until they equal `want`.
  Status Reshard(Act& a, const DimSharding& want, std::string_view why) {
    SI_CHECK(a.spec.partial.empty());
    if (a.spec.cols == want) return Status::Ok();
    AxisSet suffix;
    if (!a.spec.cols.MinorSuffixOver(want, &suffix)) {
      return InternalError("cannot reshard ", a.name, " ", a.spec.ToString(), " to features ", want.ToString(),
                           " by all-gathering minor axes");
    }
    Emit(CollectiveKind::kAllGather, suffix, StrCat(a.name, " -> ", why), Payload::kActivation, 0,
         a.spec.rows, a.dim / want.Shards(m_));
    a.spec.cols = want;
    Trace(a);
    return Status::Ok();
  }
  // Reduce-scatter the partial sums into the feature dim (Pope §3.5: into the hidden dim, not B or L).
  Status ResolvePartial(Act& a) {
    if (a.spec.partial.empty()) return Status::Ok();
    const DimSharding after = a.spec.cols.Appended(a.spec.partial);
    SI_RETURN_IF_ERROR(CheckDivides(a.name + " features", a.dim, after));
    Emit(CollectiveKind::kReduceScatter, a.spec.partial, a.name, Payload::kActivation, 0, a.spec.rows,
         a.dim / a.spec.cols.Shards(m_));
    a.spec.cols = after;
    a.spec.partial = {};
    Trace(a);
    return Status::Ok();
  }
  // Norm over the features: statistics need an all-reduce when the features are split.
  void Norm(Act& a) {
    if (a.spec.cols.replicated()) return;
    const int stats = c_.norm == NormKind::kLayerNorm ? 2 : 1;
    Emit(CollectiveKind::kAllReduce, a.spec.cols.split(), StrCat("norm statistics of ", a.name),
         Payload::kActivation, 0, a.spec.rows, stats, /*paper=*/false);
  }
  Result<Act> MatMul(Act a, Role role) {
    const TensorSpec stored = StoredSpec(GetLayoutRule(layout_).weights, role);
    const TensorSpec used = UsedSpec(layout_, role);
    const RoleInfo& info = GetRoleInfo(role);
    const int64_t rows = AxisSize(c_, info.rows), cols = AxisSize(c_, info.cols);
    const std::string wname(info.gguf_name);
    SI_RETURN_IF_ERROR(CheckDivides(StrCat(wname, " rows (", AxisName(info.rows), ")"), rows, stored.rows));
    SI_RETURN_IF_ERROR(CheckDivides(StrCat(wname, " cols (", AxisName(info.cols), ")"), cols, stored.cols));
    if (role == Role::kWqkv) {  // the Q, K and V segments are split separately (shard_loader.h)
      SI_RETURN_IF_ERROR(CheckDivides("attn_qkv.weight Q rows", c_.q_dim(), stored.rows));
      SI_RETURN_IF_ERROR(CheckDivides("attn_qkv.weight K/V rows", c_.kv_dim(), stored.rows));
    }
    // Weight-gathered: all-gather the weight over the layout's axes (per-rank output: the used shard).
    const AxisSet wg = GetLayoutRule(layout_).gathered & (stored.rows.all() | stored.cols.all());
    Emit(CollectiveKind::kAllGather, wg, wname, Payload::kWeight,
         rows / used.rows.Shards(m_) * (cols / used.cols.Shards(m_)), DimSharding(), 0);
    SI_RETURN_IF_ERROR(Reshard(a, used.cols, wname));
    SI_CHECK((a.spec.rows.split() & used.rows.split()).empty())
        << "tokens and " << wname << " rows split over the same axes";
    Act out;
    out.name = StrCat(wname, " out");
    out.dim = rows;
    out.spec.rows = a.spec.rows;
    out.spec.cols = used.rows;
    out.spec.partial = used.cols.split();
    Trace(out);
    return out;
  }
  Result<Act> Attention(const Act& in);
  Result<Act> Ffn(const Act& in);

  const ModelConfig& c_;
  MeshShape m_;
  FfnLayout layout_;
  AttnSharding attn_;
  int64_t batch_;
  LayerProgram prog_;
};

Result<Act> Deriver::Attention(const Act& in) {
  std::vector<Act> qkv;
  if (c_.fused_qkv) {
    SI_ASSIGN_OR_RETURN(Act a, MatMul(in, Role::kWqkv));
    qkv.push_back(a);
  } else {
    for (Role r : {Role::kWq, Role::kWk, Role::kWv}) {
      SI_ASSIGN_OR_RETURN(Act a, MatMul(in, r));
      qkv.push_back(a);
    }
  }
  for (Act& a : qkv) SI_RETURN_IF_ERROR(ResolvePartial(a));
  const DimSharding feat = qkv[0].spec.cols;
  const bool a2a = attn_ == AttnSharding::kBatch && qkv[0].spec.rows.replicated() && !feat.replicated();
  if (a2a) {
    // Pope Fig. 5b: heads-split (or head_dim-split K/V) -> batch-split; attention runs locally per sequence.
    const DimSharding batch_axes = DimSharding::Of(feat.split());
    if (batch_ % batch_axes.Shards(m_) != 0) {
      return InvalidArgumentError("--attention batch: batch ", batch_, " is not divisible by the ",
                                  batch_axes.Shards(m_), " ranks of mesh axes ", feat.split().Name(),
                                  "; use a batch that is a multiple of it or --attention heads");
    }
    for (Act& a : qkv) {
      Emit(CollectiveKind::kAllToAll, feat.split(), StrCat(a.name, " -> batch-split"), Payload::kActivation,
           0, a.spec.rows, a.dim / feat.Shards(m_));
      a.spec.rows = batch_axes;
      a.spec.cols = DimSharding();
      Trace(a);
    }
  } else {
    // Heads-split attention: every rank needs whole heads, and the K/V heads of its Q heads. A dim gathered
    // over a major axis ("Yz": the y blocks of z block c) holds stripes of the stored blocks, so every
    // stored block (all the axes named) must hold whole heads.
    const int s = m_.GroupSize(feat.all());
    if (c_.num_heads % s != 0 || c_.num_kv_heads % s != 0) {
      return InvalidArgumentError(
          "attention split over heads on ", s, " shards (mesh axes ", feat.all().Name(), ", --mesh ",
          m_.ToString(), ", --layout ", analysis::LayoutName(layout_), "): num_heads ", c_.num_heads,
          " and num_kv_heads ", c_.num_kv_heads, " must both be divisible by ", s,
          c_.num_kv_heads < s ? "; for multiquery/few KV heads use --attention batch with --layout 1d-ws or "
                                "2d-ws, or a mesh with fewer ranks on the head axes"
                              : StrCat("; ", MeshHint(m_.num_ranks(), c_)));
    }
  }
  Act o;
  o.name = "attention out";
  o.dim = c_.q_dim();
  o.spec = qkv[0].spec;
  Trace(o);
  if (a2a) {
    Emit(CollectiveKind::kAllToAll, feat.split(), "attention out -> heads-split", Payload::kActivation, 0,
         o.spec.rows, o.dim);
    o.spec.rows = DimSharding();
    o.spec.cols = feat;
    Trace(o);
  }
  return MatMul(o, Role::kWo);
}

Result<Act> Deriver::Ffn(const Act& in) {
  std::vector<Act> hs;
  if (c_.ffn == FfnKind::kSwiGlu) {
    SI_ASSIGN_OR_RETURN(Act g, MatMul(in, Role::kWgate));
    hs.push_back(g);
  }
  SI_ASSIGN_OR_RETURN(Act u, MatMul(in, Role::kWup));
  hs.push_back(u);
  for (Act& a : hs) SI_RETURN_IF_ERROR(ResolvePartial(a));
  Act h = hs.back();
  h.name = "ffn hidden";
  if (hs.size() == 2) SI_CHECK(hs[0].spec.cols == hs[1].spec.cols);
  Trace(h);
  return MatMul(h, Role::kWdown);
}

Result<LayerProgram> Deriver::Run() {
  prog_.layout = layout_;
  prog_.mesh = m_;
  prog_.residual = ResidualSpec(layout_);
  const bool wg = !GetLayoutRule(layout_).gathered.empty();
  prog_.attn = wg ? AttnSharding::kBatch : attn_;
  Act x;
  x.name = "residual";
  x.dim = c_.model_dim;
  x.spec = prog_.residual;
  SI_RETURN_IF_ERROR(CheckDivides("model_dim (residual)", c_.model_dim, x.spec.cols));
  if (batch_ % x.spec.rows.Shards(m_) != 0) {
    return InvalidArgumentError("--layout ", analysis::LayoutName(layout_), " splits the batch over mesh axes ",
                                x.spec.rows.split().Name(), " (", x.spec.rows.Shards(m_), " ranks), batch ",
                                batch_, " is not divisible by it");
  }
  Trace(x);
  // The spec every in-projection needs: E as the weights' cols (same for Q/K/V, gate, up by the table).
  const Role in_role = c_.fused_qkv ? Role::kWqkv : Role::kWq;
  const DimSharding in_cols = UsedSpec(layout_, in_role).cols;
  auto finish = [&](Act out) -> Status {  // partial E -> residual spec
    SI_RETURN_IF_ERROR(ResolvePartial(out));
    if (!(out.spec.rows == x.spec.rows) || !(out.spec.cols == x.spec.cols)) {
      return InternalError("layer output ", out.spec.ToString(), " does not match the residual ",
                           x.spec.ToString());
    }
    return Status::Ok();
  };
  if (c_.block == BlockKind::kParallel) {
    // x += attn(norm(x)) + ffn(norm(x)): one gather, one norm, one reduce-scatter (Pope §3.4).
    Act in = x;
    in.name = "norm(x)";
    SI_RETURN_IF_ERROR(Reshard(in, in_cols, "attention + ffn"));
    Norm(in);
    SI_ASSIGN_OR_RETURN(Act a, Attention(in));
    SI_ASSIGN_OR_RETURN(Act f, Ffn(in));
    SI_CHECK(a.spec.cols == f.spec.cols && a.spec.partial == f.spec.partial);
    f.name = "attention + ffn out";
    SI_RETURN_IF_ERROR(finish(f));
  } else if (c_.block == BlockKind::kSerial) {
    Act in = x;
    in.name = "norm(x)";
    SI_RETURN_IF_ERROR(Reshard(in, in_cols, "attention"));
    Norm(in);
    SI_ASSIGN_OR_RETURN(Act a, Attention(in));
    SI_RETURN_IF_ERROR(finish(a));
    Act in2 = x;
    in2.name = "norm(x)";
    SI_RETURN_IF_ERROR(Reshard(in2, in_cols, "ffn"));
    Norm(in2);
    SI_ASSIGN_OR_RETURN(Act f, Ffn(in2));
    SI_RETURN_IF_ERROR(finish(f));
  } else {  // post-norm: x = norm(x + attn(x)); x = norm(x + ffn(x)); norms on the residual spec
    Act in = x;
    SI_RETURN_IF_ERROR(Reshard(in, in_cols, "attention"));
    SI_ASSIGN_OR_RETURN(Act a, Attention(in));
    SI_RETURN_IF_ERROR(finish(a));
    Norm(x);
    Act in2 = x;
    SI_RETURN_IF_ERROR(Reshard(in2, in_cols, "ffn"));
    SI_ASSIGN_OR_RETURN(Act f, Ffn(in2));
    SI_RETURN_IF_ERROR(finish(f));
    Norm(x);
  }
  return std::move(prog_);
}

}  // namespace

Result<LayerProgram> DeriveLayerProgram(const ModelConfig& config, const MeshShape& mesh, FfnLayout layout,
                                        AttnSharding attn, int64_t batch) {
  if (batch < 1) return InvalidArgumentError("batch must be >= 1, got ", batch);
  Deriver d(config, mesh, layout, attn, batch);
  return d.Run();
}

}  // namespace si
