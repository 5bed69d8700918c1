#include "si/dist/dist_engine.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>

#include "si/base/check.h"
#include "si/base/timer.h"
#include "si/parallel/comm.h"
#include "si/parallel/sharded_matmul.h"

namespace si {
namespace {

constexpr int64_t kKvGrowth = 256;

int AxisOf(char c) { return std::tolower(static_cast<unsigned char>(c)) - 'x'; }

// Index of `coords` among the blocks of a dim spec: row-major over its split (lower-case) letters in the
// spec's order.
int64_t BlockIndex(const DimSharding& d, const MeshShape& m, const std::array<int, 3>& c) {
  int64_t idx = 0;
  for (char ch : d.str()) {
    if (std::islower(static_cast<unsigned char>(ch))) idx = idx * m.size(AxisOf(ch)) + c[AxisOf(ch)];
  }
  return idx;
}

// The global feature ranges [begin, begin + len) a rank holds of a dim of `dim` elements with spec `d`, in
// local order (upper-case letters: every block of that axis is local, e.g. "Yz").
std::vector<std::pair<int64_t, int64_t>> LocalRanges(const DimSharding& d, const MeshShape& m,
                                                     const std::array<int, 3>& c, int64_t dim) {
  const std::string& s = d.str();
  int64_t total = 1;
  for (char ch : s) total *= m.size(AxisOf(ch));
  SI_CHECK(dim % total == 0) << dim << " % " << total;
  const int64_t blk = dim / total;
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t idx = 0; idx < total; ++idx) {
    int64_t rem = idx;
    bool mine = true;
    for (int i = static_cast<int>(s.size()) - 1; i >= 0; --i) {
      const int a = AxisOf(s[i]);
      const int digit = static_cast<int>(rem % m.size(a));
      rem /= m.size(a);
      if (std::islower(static_cast<unsigned char>(s[i])) && digit != c[a]) mine = false;
    }
    if (!mine) continue;
    if (!out.empty() && out.back().first + out.back().second == idx * blk) {
      out.back().second += blk;
    } else {
      out.push_back({idx * blk, blk});
    }
  }
  return out;
}

CommStats SumStats(const Mesh& m) {
  CommStats s;
  for (uint8_t bits = 0; bits < 8; ++bits) s.Add(m.group(AxisSet{bits}).stats());
  return s;
}

CommStats Diff(const CommStats& after, const CommStats& before) {
  CommStats d;
  for (int i = 0; i < kNumCollectiveKinds; ++i) {
    d.bytes_sent[i] = after.bytes_sent[i] - before.bytes_sent[i];
    d.calls[i] = after.calls[i] - before.calls[i];
  }
  d.seconds = after.seconds - before.seconds;
  return d;
}

}  // namespace

std::string PhaseLayout::ToString() const {
  return StrCat(analysis::LayoutName(layout), "/", analysis::AttnName(attn));
}

TensorSpec AttentionSpec(const PhaseLayout& p) {
  const LayoutRule& r = GetLayoutRule(p.layout);
  const TensorSpec used = UsedSpec(p.layout, Role::kWq);
  TensorSpec s;
  s.rows = DimSharding::Of(r.gathered);
  s.cols = used.rows.Appended(used.cols.split());  // after the reduce-scatter into the heads
  if (p.attn == AttnSharding::kBatch && s.rows.replicated() && !s.cols.replicated()) {
    s.rows = DimSharding::Of(s.cols.split());  // Pope Fig. 5b: all-to-all to batch-split
    s.cols = DimSharding();
  }
  return s;
}

// ---- Per forward pass: the batch in owner order and the rows each spec puts on this rank ----

struct DistEngine::Plan {
  PhaseLayout phase;
  std::vector<int> order;         // ordered entry -> index in the caller's batch
  std::vector<SeqTokens> entries;  // ordered
  std::vector<int64_t> row_off;   // ordered entry -> first row of the whole batch (size B + 1)
  std::vector<int32_t> pos;       // [T] positions in ordered row order
  std::vector<int32_t> ids;       // [T]
  int64_t B = 0, T = 0;
};

struct RowSet {
  int64_t e0 = 0, e1 = 0;  // ordered entries [e0, e1)
  int64_t r0 = 0, n = 0;   // rows [r0, r0 + n) of the whole batch
};

// The straight-line layer code and its spec-driven ops. One per Forward.
class DistEngine::Runner {
 public:
  Runner(DistEngine& e, const Plan& p) : e_(e), p_(p), m_(*e.mesh_), k_(*e.k_), c_(e.config()) {}

  RowSet Rows(const DimSharding& rows, const std::array<int, 3>& coords) const {
    const int64_t g = rows.Shards(m_.shape());
    const int64_t b = BlockIndex(rows, m_.shape(), coords);
    RowSet r;
    r.e0 = b * p_.B / g;
    r.e1 = (b + 1) * p_.B / g;
    r.r0 = p_.row_off[r.e0];
    r.n = p_.row_off[r.e1] - r.r0;
    return r;
  }
  RowSet Rows(const DimSharding& rows) const { return Rows(rows, m_.coords()); }

  // The residual stream of this rank's rows: embedding lookup (replicated table) sliced to its E block.
  ShardedAct Embed() {
    ShardedAct x;
    x.spec = ResidualSpec(p_.phase.layout);
    x.dim = c_.model_dim;
    const RowSet rs = Rows(x.spec.rows);
    const int64_t E = c_.model_dim;
    std::vector<float> full(rs.n * E), tmp(rs.n * E);
    const Model& m = *e_.model_;
    k_.get_rows(m.W(Role::kTokenEmbd).mat, p_.ids.data() + rs.r0, rs.n, full.data());
    if (c_.position == PositionKind::kLearned) {
      k_.get_rows(m.W(Role::kPosEmbd).mat, p_.pos.data() + rs.r0, rs.n, tmp.data());
      k_.add(full.data(), tmp.data(), rs.n * E);
    }
    if (m.W(Role::kTokenTypes).present()) {
      for (int64_t t = 0; t < rs.n; ++t) k_.add(full.data() + t * E, m.W(Role::kTokenTypes).f32(), E);
    }
    if (m.W(Role::kEmbdNorm).present()) {
      k_.layer_norm(full.data(), m.W(Role::kEmbdNorm).f32(), m.W(Role::kEmbdNormBias).f32(), rs.n, E,
                    c_.norm_eps, full.data());
    }
    x.rows = rs.n;
    x.data = SliceCols(full.data(), rs.n, E, x.spec.cols);
    return x;
  }

  // One layer: the block kind's dataflow over sharded activations. No layout appears here.
  Status Layer(int64_t l, ShardedAct& x) {
    const DimSharding in_cols = UsedSpec(p_.phase.layout, c_.fused_qkv ? Role::kWqkv : Role::kWq).cols;
    switch (c_.block) {
      case BlockKind::kSerial: {
        ShardedAct h = x;
        SI_RETURN_IF_ERROR(Gather(h, in_cols));
        SI_RETURN_IF_ERROR(Norm(h, Role::kAttnNorm, Role::kAttnNormBias, l));
        SI_ASSIGN_OR_RETURN(ShardedAct o, AttentionBlock(l, h, /*resolve=*/true));
        k_.add(x.data.data(), o.data.data(), static_cast<int64_t>(x.data.size()));
        h = x;
        SI_RETURN_IF_ERROR(Gather(h, in_cols));
        SI_RETURN_IF_ERROR(Norm(h, Role::kFfnNorm, Role::kFfnNormBias, l));
        SI_ASSIGN_OR_RETURN(ShardedAct f, FfnBlock(l, h, /*resolve=*/true));
        k_.add(x.data.data(), f.data.data(), static_cast<int64_t>(x.data.size()));
        return Status::Ok();
      }
      case BlockKind::kParallel: {
        // x += attn(norm(x)) + ffn(norm(x)): one gather, one norm, one reduce-scatter (Pope §3.4), summed
        // as (ffn + attn) + x like the single-process engine.
        ShardedAct h = x;
        SI_RETURN_IF_ERROR(Gather(h, in_cols));
        SI_RETURN_IF_ERROR(Norm(h, Role::kAttnNorm, Role::kAttnNormBias, l));
        SI_ASSIGN_OR_RETURN(ShardedAct o, AttentionBlock(l, h, /*resolve=*/false));
        SI_ASSIGN_OR_RETURN(ShardedAct f, FfnBlock(l, h, /*resolve=*/false));
        k_.add(f.data.data(), o.data.data(), static_cast<int64_t>(f.data.size()));
        SI_RETURN_IF_ERROR(Resolve(f));
        AddBias(f, Role::kBdown, l, 0);
        AddBias(f, Role::kBo, l, 0);
        k_.add(f.data.data(), x.data.data(), static_cast<int64_t>(f.data.size()));
        std::swap(x.data, f.data);
        return Status::Ok();
      }
      case BlockKind::kPostNorm:
        return UnsupportedError("post-norm (encoder) blocks are not supported by the distributed engine");
    }
    return Status::Ok();
  }

  // Final hidden rows that need logits -> logits [rows, V] on every rank, in ordered-batch order.
  Status Logits(const ShardedAct& x, std::vector<float>* out) {
    const MeshShape& ms = m_.shape();
    const int64_t E = c_.model_dim, V = c_.vocab_size;
    // 1. This rank's rows that need logits.
    auto need = [&](const RowSet& rs, std::vector<int64_t>* rows) {
      for (int64_t e = rs.e0; e < rs.e1; ++e) {
        const int64_t n = static_cast<int64_t>(p_.entries[e].tokens.size());
        for (int64_t i = p_.entries[e].all_logits ? 0 : n - 1; i < n; ++i) rows->push_back(p_.row_off[e] + i);
      }
    };
    const RowSet mine = Rows(x.spec.rows);
    std::vector<int64_t> my_rows;
    need(mine, &my_rows);
    const int64_t lc = x.local_cols(ms);
    ShardedAct sel;
    sel.spec = x.spec;
    sel.dim = E;
    sel.rows = static_cast<int64_t>(my_rows.size());
    sel.data.resize(sel.rows * lc);
    for (int64_t i = 0; i < sel.rows; ++i) {
      std::memcpy(&sel.data[i * lc], &x.data[(my_rows[i] - mine.r0) * lc], lc * sizeof(float));
    }
    // 2. All-gather the features, then the rows (padded to the largest block).
    SI_RETURN_IF_ERROR(Gather(sel, DimSharding()));
    const AxisSet row_axes = x.spec.rows.split();
    Comm& rg = m_.group(row_axes);
    std::vector<std::vector<int64_t>> member_rows(rg.size());
    int64_t max_rows = 0, total = 0;
    for (int j = 0; j < rg.size(); ++j) {
      need(Rows(x.spec.rows, m_.MemberCoords(row_axes, j)), &member_rows[j]);
      max_rows = std::max<int64_t>(max_rows, member_rows[j].size());
      total += static_cast<int64_t>(member_rows[j].size());
    }
    std::vector<float> send(max_rows * E, 0.0f), recv(rg.size() * max_rows * E);
    std::copy(sel.data.begin(), sel.data.end(), send.begin());
    SI_RETURN_IF_ERROR(rg.AllGather(send.data(), recv.data(), max_rows * E, ElemType::kF32));
    std::vector<float> h(total * E);
    int64_t r = 0;
    for (int j = 0; j < rg.size(); ++j) {
      const int64_t n = static_cast<int64_t>(member_rows[j].size());
      std::memcpy(&h[r * E], &recv[j * max_rows * E], n * E * sizeof(float));
      r += n;
    }
    // 3. Final norm, replicated (the same kernel call as the single-process engine).
    const Model& m = *e_.model_;
    if (c_.norm == NormKind::kRmsNorm) {
      k_.rms_norm(h.data(), m.W(Role::kOutputNorm).f32(), total, E, c_.norm_eps, h.data());
    } else {
      const WeightRef& b = m.W(Role::kOutputNormBias);
      k_.layer_norm(h.data(), m.W(Role::kOutputNorm).f32(), b.present() ? b.f32() : nullptr, total, E,
                    c_.norm_eps, h.data());
    }
    // 4. This rank's vocabulary block, then one all-gather over every rank.
    const int64_t vb = e_.vocab_block_;
    std::vector<float> part(total * vb, 0.0f);
    if (e_.lm_head_.rows > 0) {
      std::vector<float> tmp(total * e_.lm_head_.rows);
      k_.matmul(h.data(), total, e_.lm_head_, nullptr, tmp.data(), e_.pool_.get());
      for (int64_t t = 0; t < total; ++t) {
        std::memcpy(&part[t * vb], &tmp[t * e_.lm_head_.rows], e_.lm_head_.rows * sizeof(float));
      }
    }
    Comm& w = m_.world();
    std::vector<float> all(static_cast<size_t>(w.size()) * total * vb);
    SI_RETURN_IF_ERROR(w.AllGather(part.data(), all.data(), total * vb, ElemType::kF32));
    out->assign(total * V, 0.0f);
    for (int j = 0; j < w.size(); ++j) {
      const int64_t v0 = j * vb, n = std::max<int64_t>(0, std::min(V, v0 + vb) - v0);
      for (int64_t t = 0; t < total; ++t) {
        std::memcpy(&(*out)[t * V + v0], &all[(j * total + t) * vb], n * sizeof(float));
      }
    }
    return Status::Ok();
  }

 private:
  // Columns `cols` (spec) of a full [rows, dim] matrix, as this rank's local block.
  std::vector<float> SliceCols(const float* full, int64_t rows, int64_t dim, const DimSharding& cols) const {
    const auto ranges = LocalRanges(cols, m_.shape(), m_.coords(), dim);
    int64_t lc = 0;
    for (auto [b, n] : ranges) lc += n;
    std::vector<float> out(rows * lc);
    for (int64_t r = 0; r < rows; ++r) {
      int64_t o = 0;
      for (auto [b, n] : ranges) {
        std::memcpy(&out[r * lc + o], full + r * dim + b, n * sizeof(float));
        o += n;
      }
    }
    return out;
  }

  // All-gather the minor feature axes of `a` until its features are `want` (Pope: all-gather(yz)).
  Status Gather(ShardedAct& a, const DimSharding& want) {
    if (a.spec.cols == want) return Status::Ok();
    AxisSet suffix;
    if (!a.spec.cols.MinorSuffixOver(want, &suffix)) {
      return InternalError("cannot all-gather features ", a.spec.cols.ToString(), " into ", want.ToString());
    }
    const std::string suf = a.spec.cols.str().substr(want.str().size());
    Comm& g = m_.group(suffix);
    const int64_t lc = a.local_cols(m_.shape()), K = g.size();
    std::vector<float> blocks(K * a.rows * lc), out(a.rows * lc * K);
    SI_RETURN_IF_ERROR(g.AllGather(a.data.data(), blocks.data(), a.rows * lc, ElemType::kF32));
    for (int j = 0; j < K; ++j) {
      // Member j's block position among the gathered ones: its coords over the suffix, in spec order.
      const auto cj = m_.MemberCoords(suffix, j);
      int64_t pos = 0;
      for (char ch : suf) pos = pos * m_.shape().size(AxisOf(ch)) + cj[AxisOf(ch)];
      for (int64_t r = 0; r < a.rows; ++r) {
        std::memcpy(&out[r * lc * K + pos * lc], &blocks[(j * a.rows + r) * lc], lc * sizeof(float));
      }
    }
    a.data = std::move(out);
    a.spec.cols = want;
    return Status::Ok();
  }

  // Reduce-scatter partial sums into the features (Pope §3.5).
  Status Resolve(ShardedAct& a) { return ResolvePartialSums(m_, a); }

  // Norm over the features: statistics all-reduced over the feature axes when E is split.
  Status Norm(ShardedAct& a, Role gain_role, Role bias_role, int64_t l) {
    const Model& m = *e_.model_;
    const float* gain = m.W(gain_role, l).f32();
    const float* bias = m.W(bias_role, l).present() ? m.W(bias_role, l).f32() : nullptr;
    const int64_t dim = a.dim, rows = a.rows;
    if (a.spec.cols.Shards(m_.shape()) == 1) {  // whole rows here: the single-process kernel
      if (c_.norm == NormKind::kRmsNorm) {
        k_.rms_norm(a.data.data(), gain, rows, dim, c_.norm_eps, a.data.data());
      } else {
        k_.layer_norm(a.data.data(), gain, bias, rows, dim, c_.norm_eps, a.data.data());
      }
      return Status::Ok();
    }
    const auto ranges = LocalRanges(a.spec.cols, m_.shape(), m_.coords(), dim);
    const int64_t lc = a.local_cols(m_.shape());
    const bool ln = c_.norm == NormKind::kLayerNorm;
    const int ns = ln ? 2 : 1;
    std::vector<float> st(rows * ns), sum(rows * ns);
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0, sq = 0;
      for (int64_t i = 0; i < lc; ++i) {
        const double v = a.data[r * lc + i];
        s += v;
        sq += v * v;
      }
      if (ln) {
        st[r * 2] = static_cast<float>(s);
        st[r * 2 + 1] = static_cast<float>(sq);
      } else {
        st[r] = static_cast<float>(sq);
      }
    }
    SI_RETURN_IF_ERROR(m_.group(a.spec.cols.split()).AllReduce(st.data(), sum.data(), rows * ns, ElemType::kF32));
    for (int64_t r = 0; r < rows; ++r) {
      float mean = 0, scale;
      if (ln) {
        mean = sum[r * 2] / static_cast<float>(dim);
        const float var = std::max(0.0f, sum[r * 2 + 1] / static_cast<float>(dim) - mean * mean);
        scale = 1.0f / std::sqrt(var + c_.norm_eps);
      } else {
        scale = 1.0f / std::sqrt(sum[r] / static_cast<float>(dim) + c_.norm_eps);
      }
      float* x = &a.data[r * lc];
      int64_t o = 0;
      for (auto [b, n] : ranges) {
        for (int64_t i = 0; i < n; ++i, ++o) {
          x[o] = (x[o] - mean) * scale * gain[b + i] + (bias ? bias[b + i] : 0.0f);
        }
      }
    }
    return Status::Ok();
  }

  // bias[seg_begin + global feature] added to every row of a resolved activation.
  void AddBias(ShardedAct& a, Role role, int64_t l, int64_t seg_begin) {
    const WeightRef& w = e_.model_->W(role, l);
    if (!w.present()) return;
    SI_CHECK(a.spec.partial.empty());
    const auto ranges = LocalRanges(a.spec.cols, m_.shape(), m_.coords(), a.dim);
    const int64_t lc = a.local_cols(m_.shape());
    for (int64_t r = 0; r < a.rows; ++r) {
      int64_t o = 0;
      for (auto [b, n] : ranges) {
        k_.add(&a.data[r * lc + o], w.f32() + seg_begin + b, n);
        o += n;
      }
    }
  }

  Result<std::vector<ShardedAct>> MatMul(const ShardedAct& a, std::initializer_list<Role> roles, int64_t l,
                                         bool resolve) {
    std::vector<const WeightShard*> ws;
    std::vector<TensorSpec> used;
    for (Role r : roles) {
      ws.push_back(&e_.weights_->Get(r, l));
      used.push_back(UsedSpec(p_.phase.layout, r));
    }
    // Weight-gathered layouts: name the weight the next call uses first, so its gather overlaps
    // this one.
    const auto next = NextWeight(l, *(roles.end() - 1));
    if (next.first >= 0) {
      e_.matmul_ws_->SetNextWeight(&e_.weights_->Get(next.second, next.first),
                                   UsedSpec(p_.phase.layout, next.second));
    } else {
      e_.matmul_ws_->SetNextWeight(nullptr, {});
    }
    return ShardedMatMul(m_, k_, a, ws, used, resolve, e_.pool_.get(), e_.matmul_ws_.get());
  }

  // The matmul that follows `role` of layer l in the forward pass (the order of Layer's calls: Q K
  // V | QKV, O, gate up | up, down, next layer), or layer -1 after the last one.
  std::pair<int64_t, Role> NextWeight(int64_t l, Role role) const {
    std::vector<Role> order;
    if (c_.fused_qkv) {
      order.push_back(Role::kWqkv);
    } else {
      order.insert(order.end(), {Role::kWq, Role::kWk, Role::kWv});
    }
    order.push_back(Role::kWo);
    if (c_.ffn == FfnKind::kSwiGlu) order.push_back(Role::kWgate);
    order.insert(order.end(), {Role::kWup, Role::kWdown});
    const auto it = std::find(order.begin(), order.end(), role);
    SI_CHECK(it != order.end());
    if (it + 1 != order.end()) return {l, *(it + 1)};
    if (l + 1 < c_.num_layers) return {l + 1, order[0]};
    return {-1, Role::kWq};
  }

  // Q, K, V (each resolved into its heads, biases added), from separate or fused matrices.
  Status Qkv(int64_t l, const ShardedAct& h, ShardedAct* q, ShardedAct* k, ShardedAct* v) {
    const int64_t QD = c_.q_dim(), KVD = c_.kv_dim();
    if (c_.fused_qkv) {
      SI_ASSIGN_OR_RETURN(auto outs, MatMul(h, {Role::kWqkv}, l, /*resolve=*/false));
      // The local rows are nb stacked stored blocks, each [Q | K | V] (shard_loader splits every segment;
      // a weight gathered over a row axis stacks several): split them into Q, K and V.
      const ShardedAct& f = outs[0];
      const MeshShape& ms = m_.shape();
      const int64_t st = StoredSpec(GetLayoutRule(p_.phase.layout).weights, Role::kWqkv).rows.Shards(ms);
      const int64_t nb = st / ms.GroupSize(f.spec.cols.split());
      const int64_t bq = QD / st, bkv = KVD / st, stride = bq + 2 * bkv, lc = nb * stride;
      SI_CHECK(f.local_cols(ms) == lc) << f.local_cols(ms) << " vs " << lc;
      ShardedAct* dst[3] = {q, k, v};
      const int64_t dims[3] = {QD, KVD, KVD}, offs[3] = {0, bq, bq + bkv}, lens[3] = {bq, bkv, bkv};
      for (int i = 0; i < 3; ++i) {
        ShardedAct& d = *dst[i];
        d.rows = f.rows;
        d.dim = dims[i];
        d.spec = f.spec;
        const int64_t dl = nb * lens[i];
        d.data.resize(f.rows * dl);
        for (int64_t r = 0; r < f.rows; ++r) {
          for (int64_t b = 0; b < nb; ++b) {
            std::memcpy(&d.data[r * dl + b * lens[i]], &f.data[r * lc + b * stride + offs[i]],
                        lens[i] * sizeof(float));
          }
        }
        SI_RETURN_IF_ERROR(Resolve(d));
      }
      AddBias(*q, Role::kBqkv, l, 0);
      AddBias(*k, Role::kBqkv, l, QD);
      AddBias(*v, Role::kBqkv, l, QD + KVD);
    } else {
      SI_ASSIGN_OR_RETURN(auto outs, MatMul(h, {Role::kWq, Role::kWk, Role::kWv}, l, /*resolve=*/true));
      *q = std::move(outs[0]);
      *k = std::move(outs[1]);
      *v = std::move(outs[2]);
      AddBias(*q, Role::kBq, l, 0);
      AddBias(*k, Role::kBk, l, 0);
      AddBias(*v, Role::kBv, l, 0);
    }
    return Status::Ok();
  }

  // Pope Fig. 5b: feature-split [all rows, dim / K] -> batch-split [my rows, dim] over the feature axes.
  Status ToBatch(ShardedAct& a) {
    const AxisSet g_axes = a.spec.cols.split();
    const DimSharding batch = DimSharding::Of(g_axes);
    Comm& g = m_.group(g_axes);
    const int K = g.size();
    const int64_t lc = a.local_cols(m_.shape());
    std::vector<RowSet> rs(K);
    int64_t maxn = 0;
    for (int j = 0; j < K; ++j) {
      rs[j] = Rows(batch, m_.MemberCoords(g_axes, j));
      maxn = std::max(maxn, rs[j].n);
    }
    std::vector<float> send(K * maxn * lc, 0.0f), recv(K * maxn * lc);
    for (int j = 0; j < K; ++j) {
      std::memcpy(&send[j * maxn * lc], &a.data[rs[j].r0 * lc], rs[j].n * lc * sizeof(float));
    }
    SI_RETURN_IF_ERROR(g.AllToAll(send.data(), recv.data(), maxn * lc, ElemType::kF32));
    const RowSet me = rs[g.rank()];
    std::vector<float> out(me.n * a.dim);
    for (int j = 0; j < K; ++j) {
      const int64_t fb = BlockIndex(a.spec.cols, m_.shape(), m_.MemberCoords(g_axes, j));
      for (int64_t r = 0; r < me.n; ++r) {
        std::memcpy(&out[r * a.dim + fb * lc], &recv[(j * maxn + r) * lc], lc * sizeof(float));
      }
    }
    a.data = std::move(out);
    a.rows = me.n;
    a.spec.rows = batch;
    a.spec.cols = DimSharding();
    return Status::Ok();
  }

  // The inverse: batch-split [my rows, dim] -> features `feat` [all rows, dim / K].
  Status FromBatch(ShardedAct& a, const DimSharding& feat) {
    const AxisSet g_axes = feat.split();
    Comm& g = m_.group(g_axes);
    const int K = g.size();
    const int64_t lc = a.dim / K;
    std::vector<RowSet> rs(K);
    int64_t maxn = 0;
    for (int j = 0; j < K; ++j) {
      rs[j] = Rows(a.spec.rows, m_.MemberCoords(g_axes, j));
      maxn = std::max(maxn, rs[j].n);
    }
    std::vector<float> send(K * maxn * lc, 0.0f), recv(K * maxn * lc);
    for (int j = 0; j < K; ++j) {
      const int64_t fb = BlockIndex(feat, m_.shape(), m_.MemberCoords(g_axes, j));
      for (int64_t r = 0; r < a.rows; ++r) {
        std::memcpy(&send[(j * maxn + r) * lc], &a.data[r * a.dim + fb * lc], lc * sizeof(float));
      }
    }
    SI_RETURN_IF_ERROR(g.AllToAll(send.data(), recv.data(), maxn * lc, ElemType::kF32));
    std::vector<float> out(p_.T * lc);
    for (int j = 0; j < K; ++j) {
      std::memcpy(&out[rs[j].r0 * lc], &recv[j * maxn * lc], rs[j].n * lc * sizeof(float));
    }
    a.data = std::move(out);
    a.rows = p_.T;
    a.spec.rows = DimSharding();
    a.spec.cols = feat;
    return Status::Ok();
  }

  // Attention on whatever the specs put on this rank: whole heads of some sequences. Writes the KV cache.
  Result<ShardedAct> Attention(int64_t l, ShardedAct& q, ShardedAct& k, ShardedAct& v) {
    const DimSharding feat = q.spec.cols;
    const bool a2a = p_.phase.attn == AttnSharding::kBatch && q.spec.rows.replicated() && !feat.replicated();
    if (a2a) {
      SI_RETURN_IF_ERROR(ToBatch(q));
      SI_RETURN_IF_ERROR(ToBatch(k));
      SI_RETURN_IF_ERROR(ToBatch(v));
    }
    const MeshShape& ms = m_.shape();
    const int64_t hd = c_.head_dim;
    const int64_t lq = q.local_cols(ms), lkv = k.local_cols(ms);
    const int64_t nh = lq / hd, nkv = lkv / hd;
    const RowSet rs = Rows(q.spec.rows);
    SI_CHECK(rs.n == q.rows) << rs.n << " vs " << q.rows;
    const int32_t* pos = p_.pos.data() + rs.r0;
    if (c_.position != PositionKind::kLearned) {
      const bool neox = c_.position == PositionKind::kRopeNeox;
      k_.rope(q.data.data(), q.rows, lq, nh, hd, c_.rope_dims, pos, c_.rope_base, neox);
      k_.rope(k.data.data(), k.rows, lkv, nkv, hd, c_.rope_dims, pos, c_.rope_base, neox);
    }
    ShardedAct o;
    o.rows = q.rows;
    o.dim = c_.q_dim();
    o.spec = q.spec;
    o.data.resize(q.rows * lq);
    int64_t off = 0;
    for (int64_t e = rs.e0; e < rs.e1; ++e) {
      Sequence& s = e_.seqs_[p_.entries[e].seq];
      const int64_t n = static_cast<int64_t>(p_.entries[e].tokens.size());
      std::memcpy(&s.k[l][s.len * lkv], &k.data[off * lkv], n * lkv * sizeof(float));
      std::memcpy(&s.v[l][s.len * lkv], &v.data[off * lkv], n * lkv * sizeof(float));
      AttentionArgs a;
      a.q = q.data.data() + off * lq;
      a.num_tokens = n;
      a.q_pos = pos + off;
      a.k = s.k[l].data();
      a.v = s.v[l].data();
      a.kv_len = s.len + n;
      a.kv_stride = lkv;
      a.num_heads = nh;
      a.num_kv_heads = nkv;
      a.head_dim = hd;
      a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
      a.causal = c_.causal;
      a.out = o.data.data() + off * lq;
      k_.attention(a, e_.pool_.get());
      off += n;
    }
    if (a2a) SI_RETURN_IF_ERROR(FromBatch(o, feat));
    return o;
  }

  Result<ShardedAct> AttentionBlock(int64_t l, const ShardedAct& h, bool resolve) {
    ShardedAct q, k, v;
    SI_RETURN_IF_ERROR(Qkv(l, h, &q, &k, &v));
    SI_ASSIGN_OR_RETURN(ShardedAct o, Attention(l, q, k, v));
    SI_ASSIGN_OR_RETURN(auto outs, MatMul(o, {Role::kWo}, l, resolve));
    if (resolve) AddBias(outs[0], Role::kBo, l, 0);
    return std::move(outs[0]);
  }

  Result<ShardedAct> FfnBlock(int64_t l, const ShardedAct& h, bool resolve) {
    ShardedAct hidden;
    if (c_.ffn == FfnKind::kSwiGlu) {
      SI_ASSIGN_OR_RETURN(auto gu, MatMul(h, {Role::kWgate, Role::kWup}, l, /*resolve=*/true));
      k_.silu_mul(gu[0].data.data(), gu[1].data.data(), static_cast<int64_t>(gu[0].data.size()),
                  gu[0].data.data());
      hidden = std::move(gu[0]);
    } else {
      SI_ASSIGN_OR_RETURN(auto u, MatMul(h, {Role::kWup}, l, /*resolve=*/true));
      AddBias(u[0], Role::kBup, l, 0);
      k_.gelu_tanh(u[0].data.data(), static_cast<int64_t>(u[0].data.size()));
      hidden = std::move(u[0]);
    }
    SI_ASSIGN_OR_RETURN(auto d, MatMul(hidden, {Role::kWdown}, l, resolve));
    if (resolve) AddBias(d[0], Role::kBdown, l, 0);
    return std::move(d[0]);
  }

  DistEngine& e_;
  const Plan& p_;
  Mesh& m_;
  const Kernels& k_;
  const ModelConfig& c_;
};

// ---- DistEngine ----

Result<std::unique_ptr<DistEngine>> DistEngine::Create(std::shared_ptr<const Model> model, Mesh* mesh,
                                                       DistEngineOptions options) {
  std::unique_ptr<DistEngine> e(new DistEngine());
  e->model_ = std::move(model);
  e->mesh_ = mesh;
  e->opt_ = options;
  e->k_ = options.kernels ? options.kernels : &BestKernels();
  const ModelConfig& c = e->config();
  if (c.is_encoder()) return UnsupportedError("the distributed engine runs decoder models; ", ArchName(c.arch),
                                              " is an encoder");
  if (options.num_threads < 0) return InvalidArgumentError("threads must be >= 0, got ", options.num_threads);
  if (options.context_len > c.context_len) {
    return InvalidArgumentError("context length ", options.context_len, " exceeds the model's ", c.context_len);
  }
  e->context_len_ = options.context_len > 0 ? options.context_len : c.context_len;
  const MeshShape& shape = mesh->shape();
  // Dimension checks of both phases (the batch is checked per forward pass).
  for (const PhaseLayout* p : {&options.prefill, &options.decode}) {
    auto prog = DeriveLayerProgram(c, shape, p->layout, p->attn, shape.num_ranks());
    if (!prog.ok()) return prog.status();
  }
  const WeightTable table = GetLayoutRule(options.prefill.layout).weights;
  if (table != GetLayoutRule(options.decode.layout).weights) {
    return InvalidArgumentError("prefill layout ", options.prefill.ToString(), " and decode layout ",
                                options.decode.ToString(), " store the weights differently (",
                                WeightTableName(table), " vs ",
                                WeightTableName(GetLayoutRule(options.decode.layout).weights),
                                "); 1d-ws can only be combined with itself");
  }
  const TensorSpec kv_p = AttentionSpec(options.prefill), kv_d = AttentionSpec(options.decode);
  if (!(kv_p.rows == kv_d.rows) || !(kv_p.cols == kv_d.cols)) {
    return InvalidArgumentError("prefill layout ", options.prefill.ToString(), " keeps the KV cache as ",
                                kv_p.ToString(), " but decode layout ", options.decode.ToString(), " as ",
                                kv_d.ToString(), " (rows: sequences, cols: heads); choose layouts whose "
                                "attention specs match, e.g. prefill wg-xyz with decode 2d-ws/batch");
  }
  e->kv_spec_ = kv_p;
  SI_ASSIGN_OR_RETURN(e->weights_, ShardedWeights::Load(*e->model_, shape, mesh->coords(), table,
                                                         /*include_output=*/false));
  // LM head: vocabulary rows split over all ranks in blocks of ceil(V / N) (views of whole rows).
  const int64_t V = c.vocab_size, N = shape.num_ranks();
  e->vocab_block_ = (V + N - 1) / N;
  e->vocab_begin_ = std::min(V, mesh->rank() * e->vocab_block_);
  const MatRef& out = e->model_->OutputMatrix().mat;
  e->lm_head_ = out;
  e->lm_head_.rows = std::min(V, e->vocab_begin_ + e->vocab_block_) - e->vocab_begin_;
  e->lm_head_.data = out.row(e->vocab_begin_);
  e->pool_ = std::make_unique<ThreadPool>(options.num_threads);
  e->matmul_ws_ = std::make_unique<MatMulWorkspace>(options.overlap);
  return e;
}

int DistEngine::NewSequence() {
  for (size_t i = 0; i < seqs_.size(); ++i) {
    if (!seqs_[i].used) {
      seqs_[i].used = true;
      seqs_[i].len = 0;
      seqs_[i].owner = -1;
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

void DistEngine::FreeSequence(int seq) {
  SI_CHECK(seq >= 0 && seq < static_cast<int>(seqs_.size()) && seqs_[seq].used) << seq;
  seqs_[seq].used = false;
  seqs_[seq].len = 0;
  seqs_[seq].owner = -1;
}

int64_t DistEngine::SeqLen(int seq) const {
  SI_CHECK(seq >= 0 && seq < static_cast<int>(seqs_.size()) && seqs_[seq].used) << seq;
  return seqs_[seq].len;
}

void DistEngine::TruncateSequence(int seq, int64_t len) {
  SI_CHECK(seq >= 0 && seq < static_cast<int>(seqs_.size()) && seqs_[seq].used) << seq;
  SI_CHECK(len >= 0 && len <= seqs_[seq].len) << len;
  seqs_[seq].len = len;
}

void DistEngine::set_overlap(bool on) {
  opt_.overlap.enabled = on;
  matmul_ws_->options.enabled = on;
}

void DistEngine::ResetStats() {
  layer_stats_ = {};
  lm_stats_ = {};
}

int64_t DistEngine::weight_bytes() const { return weights_->resident_bytes() + lm_head_.rows * lm_head_.row_bytes(); }

int64_t DistEngine::kv_cache_bytes() const {
  int64_t b = 0;
  for (const Sequence& s : seqs_) {
    for (size_t l = 0; l < s.k.size(); ++l) b += static_cast<int64_t>((s.k[l].size() + s.v[l].size()) * 4);
  }
  return b;
}

Status DistEngine::CheckPhase(bool prefill, int64_t batch) const {
  const PhaseLayout& p = prefill ? opt_.prefill : opt_.decode;
  auto prog = DeriveLayerProgram(config(), mesh_->shape(), p.layout, p.attn, batch);
  if (!prog.ok()) return prog.status().WithContext(prefill ? "prefill" : "decode");
  return Status::Ok();
}

Status DistEngine::Forward(std::span<const SeqTokens> batch, std::vector<float>* logits) {
  const ModelConfig& c = config();
  if (batch.empty()) return InvalidArgumentError("empty batch");
  std::vector<bool> seen(seqs_.size(), false);
  bool prefill = false;
  for (const SeqTokens& e : batch) {
    if (e.seq < 0 || e.seq >= static_cast<int>(seqs_.size()) || !seqs_[e.seq].used) {
      return InvalidArgumentError("unknown sequence ", e.seq);
    }
    if (seen[e.seq]) return InvalidArgumentError("sequence ", e.seq, " appears twice in one batch");
    seen[e.seq] = true;
    if (e.tokens.empty()) return InvalidArgumentError("sequence ", e.seq, ": no tokens");
    for (int32_t id : e.tokens) {
      if (id < 0 || id >= c.vocab_size) {
        return InvalidArgumentError("token id ", id, " is out of range [0, ", c.vocab_size, ")");
      }
    }
    const int64_t len = seqs_[e.seq].len + static_cast<int64_t>(e.tokens.size());
    if (len > context_len_) {
      return OutOfRangeError(e.tokens.size(), " tokens exceed the context length of ", context_len_);
    }
    prefill = prefill || e.tokens.size() > 1;
  }
  const int64_t B = static_cast<int64_t>(batch.size());
  SI_RETURN_IF_ERROR(CheckPhase(prefill, B));
  Plan p;
  p.phase = prefill ? opt_.prefill : opt_.decode;
  p.B = B;
  // Order the batch so each sequence lands in the block of the rank that holds its KV cache.
  const MeshShape& ms = mesh_->shape();
  const int64_t G = kv_spec_.rows.Shards(ms), per = B / G;  // B % G checked by CheckPhase
  std::vector<int> owner(B, 0);
  if (G > 1) {
    std::vector<int64_t> fill(G, 0);
    for (int64_t i = 0; i < B; ++i) {
      const int o = seqs_[batch[i].seq].owner;
      if (o < 0) continue;
      if (fill[o] == per) {
        return InvalidArgumentError("sequence ", batch[i].seq, " has its KV cache on rank block ", o,
                                    ", which already holds ", per, " sequences of this batch of ", B,
                                    " (the batch is split over ", G, " blocks); batch sequences evenly");
      }
      owner[i] = o;
      ++fill[o];
    }
    int next = 0;
    for (int64_t i = 0; i < B; ++i) {
      if (seqs_[batch[i].seq].owner >= 0) continue;
      while (fill[next] == per) ++next;
      owner[i] = next;
      ++fill[next];
    }
  }
  for (int b = 0; b < G; ++b) {
    for (int64_t i = 0; i < B; ++i) {
      if (owner[i] == b) p.order.push_back(static_cast<int>(i));
    }
  }
  p.row_off.push_back(0);
  for (int i : p.order) {
    const SeqTokens& e = batch[i];
    p.entries.push_back(e);
    const int64_t n = static_cast<int64_t>(e.tokens.size());
    for (int64_t t = 0; t < n; ++t) {
      p.ids.push_back(e.tokens[t]);
      p.pos.push_back(static_cast<int32_t>(seqs_[e.seq].len + t));
    }
    p.row_off.push_back(p.row_off.back() + n);
  }
  p.T = p.row_off.back();
  // KV capacity for the sequences whose cache lives here.
  const int64_t my_block = BlockIndex(kv_spec_.rows, ms, mesh_->coords());
  const int64_t lkv = c.kv_dim() / ms.GroupSize(kv_spec_.cols.split());
  for (int64_t i = 0; i < B; ++i) {
    if (G > 1 && owner[i] != my_block) continue;
    Sequence& s = seqs_[batch[i].seq];
    const int64_t need = s.len + static_cast<int64_t>(batch[i].tokens.size());
    if (static_cast<int64_t>(s.k[0].size()) >= need * lkv) continue;
    const int64_t cap = std::min(context_len_, (need + kKvGrowth - 1) / kKvGrowth * kKvGrowth);
    for (int64_t l = 0; l < c.num_layers; ++l) {
      s.k[l].resize(cap * lkv);
      s.v[l].resize(cap * lkv);
    }
  }

  Runner run(*this, p);
  const CommStats s0 = SumStats(*mesh_);
  ShardedAct x = run.Embed();
  SI_RETURN_IF_ERROR(matmul_ws_->Drain());  // a prefetch left by a failed pass
  for (int64_t l = 0; l < c.num_layers; ++l) SI_RETURN_IF_ERROR(run.Layer(l, x));
  SI_RETURN_IF_ERROR(matmul_ws_->Drain());
  const CommStats s1 = SumStats(*mesh_);
  std::vector<float> ordered;
  SI_RETURN_IF_ERROR(run.Logits(x, &ordered));
  layer_stats_.Add(Diff(s1, s0));
  lm_stats_.Add(Diff(SumStats(*mesh_), s1));

  // Logit rows back in the caller's order.
  const int64_t V = c.vocab_size;
  std::vector<int64_t> first_row(B + 1, 0);  // caller entry -> first logits row
  for (int64_t i = 0; i < B; ++i) {
    first_row[i + 1] = first_row[i] + (batch[i].all_logits ? static_cast<int64_t>(batch[i].tokens.size()) : 1);
  }
  logits->resize(first_row[B] * V);
  int64_t r = 0;
  for (int i : p.order) {
    const int64_t n = first_row[i + 1] - first_row[i];
    std::memcpy(logits->data() + first_row[i] * V, &ordered[r * V], n * V * sizeof(float));
    r += n;
  }
  for (int64_t i = 0; i < B; ++i) {
    Sequence& s = seqs_[batch[i].seq];
    s.len += static_cast<int64_t>(batch[i].tokens.size());
    if (G > 1) s.owner = owner[i];
  }
  return Status::Ok();
}

}  // namespace si
