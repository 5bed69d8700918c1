#include "si/parallel/sharded_matmul.h"

#include <algorithm>
#include <cstring>

#include "si/base/check.h"

namespace si {

Status AllGatherFeatures(Comm& g, const float* in, int64_t rows, int64_t local_cols, float* out) {
  const int k = g.size();
  std::vector<float> blocks(rows * local_cols * k);  // [k][rows][local_cols]
  SI_RETURN_IF_ERROR(g.AllGather(in, blocks.data(), rows * local_cols, ElemType::kF32));
  for (int j = 0; j < k; ++j) {
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(out + r * local_cols * k + j * local_cols, &blocks[(j * rows + r) * local_cols],
                  local_cols * sizeof(float));
    }
  }
  return Status::Ok();
}

Status ReduceScatterFeatures(Comm& g, const float* in, int64_t rows, int64_t cols, float* out) {
  const int k = g.size();
  SI_CHECK(cols % k == 0);
  const int64_t lc = cols / k;
  std::vector<float> blocks(rows * cols);  // [k][rows][lc]
  for (int j = 0; j < k; ++j) {
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(&blocks[(j * rows + r) * lc], in + r * cols + j * lc, lc * sizeof(float));
    }
  }
  return g.ReduceScatter(blocks.data(), out, rows * lc, ElemType::kF32);
}

Status ResolvePartialSums(Mesh& mesh, ShardedAct& a) {
  if (a.spec.partial.empty()) return Status::Ok();
  Comm& g = mesh.group(a.spec.partial);
  const int64_t cols = a.local_cols(mesh.shape());
  std::vector<float> out(a.rows * cols / g.size());
  SI_RETURN_IF_ERROR(ReduceScatterFeatures(g, a.data.data(), a.rows, cols, out.data()));
  a.data = std::move(out);
  a.spec.cols = a.spec.cols.Appended(a.spec.partial);
  a.spec.partial = {};
  return Status::Ok();
}

namespace {

// Index of a member's block among the blocks of a stored dim spec that are gathered over `g`
// (row-major over those axes, in the spec's order: the used spec is the stored one with g's letters
// upper-case).
int64_t GatheredIndex(const DimSharding& stored, AxisSet g, const MeshShape& m,
                      const std::array<int, 3>& coords) {
  int64_t idx = 0;
  for (char c : stored.str()) {
    const int a = c - 'x';
    if (g.has(a)) idx = idx * m.size(a) + coords[a];
  }
  return idx;
}

// Rows [row0, row0 + n) of W as a matrix of their own (whole rows: any dtype).
MatRef SubRows(const MatRef& w, int64_t row0, int64_t n) {
  MatRef r = w;
  r.data = w.row(row0);
  r.rows = n;
  return r;
}

// Chunk i of n over [0, total): [i * total / n, (i + 1) * total / n).
int64_t ChunkBegin(int64_t total, int i, int n) { return total * i / n; }

template <typename T>
void Grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
}

}  // namespace

struct MatMulWorkspace::Impl {
  // One half of the double buffer of gathered weights.
  struct Slot {
    const WeightShard* w = nullptr;  // the weight gathered (or being gathered) here
    TensorSpec used;
    std::unique_ptr<PendingOp> op;  // in flight (prefetch)
    bool consumed = true;           // false: a prefetch no call has used yet
    std::vector<uint8_t> raw;       // all-gather receive buffer [k][shard bytes]
    std::vector<uint8_t> mat;       // the used matrix, when the gathered blocks interleave
  };
  Slot slots[2];
  const WeightShard* next_w = nullptr;
  TensorSpec next_used;
  std::vector<float> gathered;  // input with all features [rows, K * lc]
  std::vector<float> ag_raw;    // input all-gather receive [chunk][K][chunk rows][lc]
  std::vector<std::vector<float>> send,
      recv;                // per weight: reduce-scatter blocks / column-chunk results
  std::vector<float> tmp;  // one kernel call's output before repacking

  int64_t bytes() const {
    int64_t b = 0;
    for (const Slot& s : slots) b += s.raw.capacity() + s.mat.capacity();
    b += (gathered.capacity() + ag_raw.capacity() + tmp.capacity()) * 4;
    for (const auto& v : send) b += v.capacity() * 4;
    for (const auto& v : recv) b += v.capacity() * 4;
    return b;
  }
};

MatMulWorkspace::MatMulWorkspace(OverlapOptions o) : options(o), impl_(std::make_unique<Impl>()) {}
MatMulWorkspace::~MatMulWorkspace() { (void)Drain(); }

void MatMulWorkspace::SetNextWeight(const WeightShard* w, const TensorSpec& used) {
  impl_->next_w = w;
  impl_->next_used = used;
}

Status MatMulWorkspace::Drain() {
  Status first;
  for (Impl::Slot& s : impl_->slots) {
    if (s.op) {
      Status st = s.op->Wait();
      if (first.ok() && !st.ok()) first = st;
      s.op.reset();
    }
    s.consumed = true;
    s.w = nullptr;
  }
  impl_->next_w = nullptr;
  return first;
}

int64_t MatMulWorkspace::buffer_bytes() const { return impl_->bytes(); }

namespace {

bool SameSpec(const TensorSpec& a, const TensorSpec& b) {
  return a.rows == b.rows && a.cols == b.cols && a.partial == b.partial;
}

// The collectives of one ShardedMatMul call and the loops that interleave them with the kernel
// calls.
class MatMulCall {
 public:
  MatMulCall(Mesh& mesh, const Kernels& k, ThreadPool* pool, MatMulWorkspace::Impl& ws,
             bool overlap)
      : mesh_(mesh), k_(k), pool_(pool), ws_(ws), overlap_(overlap) {}

  // Lets MPI move every op in flight (Open MPI progresses non-blocking collectives inside MPI
  // calls).
  void Progress() {
    if (!overlap_) return;
    for (auto& op : ag_ops_) {
      if (op) op->Test();
    }
    for (auto& op : rs_ops_) op->Test();
    for (auto& s : ws_.slots) {
      if (s.op) s.op->Test();
    }
  }

  bool InFlight() const {
    if (!overlap_) return false;
    for (const auto& op : ag_ops_) {
      if (op) return true;
    }
    return !rs_ops_.empty() || ws_.slots[0].op || ws_.slots[1].op;
  }

  // The used matrix of a weight: the shard itself, or its gather over the used spec's gathered axes
  // (prefetched by an earlier step, or gathered now).
  Result<MatRef> Acquire(const WeightShard& w, const TensorSpec& used) {
    if (used.rows == w.spec.rows && used.cols == w.spec.cols) return w.mat;
    int s = -1;
    for (int i = 0; i < 2; ++i) {
      if (!ws_.slots[i].consumed && ws_.slots[i].w == &w && SameSpec(ws_.slots[i].used, used))
        s = i;
    }
    if (s < 0) {
      // Not prefetched: a stale prefetch (a wrong hint; every rank has the same) is completed and
      // dropped.
      for (auto& sl : ws_.slots) {
        if (!sl.consumed && sl.op) SI_RETURN_IF_ERROR(sl.op->Wait());
        sl.op.reset();
        sl.consumed = true;
      }
      s = 0;
      SI_RETURN_IF_ERROR(StartGather(ws_.slots[s], w, used, /*blocking=*/!overlap_));
    }
    MatMulWorkspace::Impl::Slot& slot = ws_.slots[s];
    if (slot.op) {
      SI_RETURN_IF_ERROR(slot.op->Wait());
      slot.op.reset();
    }
    slot.consumed = true;
    cur_slot_ = s;
    return Assemble(slot);
  }

  // Starts the gather of the weight used after the current one into the other slot (overlap only).
  Status Prefetch(const WeightShard* w, const TensorSpec& used) {
    if (!overlap_ || w == nullptr) return Status::Ok();
    if (used.rows == w->spec.rows && used.cols == w->spec.cols) return Status::Ok();
    MatMulWorkspace::Impl::Slot& slot = ws_.slots[1 - cur_slot_];
    if (slot.op) SI_RETURN_IF_ERROR(slot.op->Wait());
    slot.op.reset();
    SI_RETURN_IF_ERROR(StartGather(slot, *w, used, /*blocking=*/false));
    slot.consumed = false;
    return Status::Ok();
  }

  Status StartGather(MatMulWorkspace::Impl::Slot& slot, const WeightShard& w,
                     const TensorSpec& used, bool blocking) {
    const AxisSet g =
        (w.spec.rows.split() | w.spec.cols.split()).minus(used.rows.split() | used.cols.split());
    Comm& comm = mesh_.group(g);
    slot.w = &w;
    slot.used = used;
    Grow(slot.raw, w.bytes() * comm.size());
    if (blocking) return comm.AllGather(w.mat.data, slot.raw.data(), w.bytes(), ElemType::kU8);
    SI_ASSIGN_OR_RETURN(slot.op,
                        comm.StartAllGather(w.mat.data, slot.raw.data(), w.bytes(), ElemType::kU8));
    return Status::Ok();
  }

  // The gathered shards -> the used matrix. Row blocks stack; column blocks (E over x) interleave
  // per row on quantization-block boundaries. When member j's block is block j of the rows and the
  // columns are whole, the all-gather's output already is the matrix (no copy).
  MatRef Assemble(MatMulWorkspace::Impl::Slot& slot) {
    const WeightShard& w = *slot.w;
    const MeshShape& m = mesh_.shape();
    const AxisSet g = (w.spec.rows.split() | w.spec.cols.split())
                          .minus(slot.used.rows.split() | slot.used.cols.split());
    const int k = mesh_.group(g).size();
    const int64_t shard_bytes = w.bytes();
    const int64_t row_blocks = m.GroupSize(w.spec.rows.split() & g);
    const int64_t col_blocks = m.GroupSize(w.spec.cols.split() & g);
    MatRef out;
    out.type = w.mat.type;
    out.rows = w.mat.rows * row_blocks;
    out.cols = w.mat.cols * col_blocks;
    bool identity = col_blocks == 1;
    for (int j = 0; j < k && identity; ++j) {
      identity = GatheredIndex(w.spec.rows, g, m, mesh_.MemberCoords(g, j)) == j;
    }
    if (identity) {
      out.data = slot.raw.data();
      return out;
    }
    const int64_t row_bytes = out.row_bytes(), shard_row_bytes = w.mat.row_bytes();
    Grow(slot.mat, out.rows * row_bytes);
    for (int j = 0; j < k; ++j) {
      const std::array<int, 3> c = mesh_.MemberCoords(g, j);
      const int64_t r0 = GatheredIndex(w.spec.rows, g, m, c) * w.mat.rows;
      const int64_t c0 =
          DTypeRowBytes(w.mat.type, GatheredIndex(w.spec.cols, g, m, c) * w.mat.cols);
      const uint8_t* src = slot.raw.data() + j * shard_bytes;
      for (int64_t r = 0; r < w.mat.rows; ++r) {
        std::memcpy(slot.mat.data() + (r0 + r) * row_bytes + c0, src + r * shard_row_bytes,
                    shard_row_bytes);
      }
    }
    out.data = slot.mat.data();
    return out;
  }

  Mesh& mesh_;
  const Kernels& k_;
  ThreadPool* pool_;
  MatMulWorkspace::Impl& ws_;
  bool overlap_;
  int cur_slot_ = 0;
  std::vector<std::unique_ptr<PendingOp>> ag_ops_;  // per row chunk (null once waited)
  std::vector<std::unique_ptr<PendingOp>> rs_ops_;  // every reduce-scatter chunk of this call
};

}  // namespace

Result<std::vector<ShardedAct>> ShardedMatMul(Mesh& mesh, const Kernels& k, const ShardedAct& a,
                                              const std::vector<const WeightShard*>& ws,
                                              const std::vector<TensorSpec>& useds,
                                              bool resolve_partial, ThreadPool* pool,
                                              MatMulWorkspace* work) {
  SI_CHECK(!ws.empty() && ws.size() == useds.size());
  for (size_t i = 0; i < ws.size(); ++i) {
    if (!(useds[i].cols == useds[0].cols)) {
      return InternalError("ShardedMatMul: ", TensorName(ws[i]->role, ws[i]->layer),
                           " needs input features ", useds[i].cols.ToString(),
                           ", the first weight ", useds[0].cols.ToString());
    }
  }
  if (!a.spec.partial.empty()) return InternalError("ShardedMatMul: input still a partial sum");
  std::unique_ptr<MatMulWorkspace> local;
  if (work == nullptr) {
    local = std::make_unique<MatMulWorkspace>(OverlapOptions{.enabled = false});
    work = local.get();
  }
  MatMulWorkspace::Impl& W = work->impl();
  const OverlapOptions& opt = work->options;
  const bool overlap = opt.enabled;
  MatMulCall call(mesh, k, pool, W, overlap);
  const MeshShape& m = mesh.shape();
  const TensorSpec& used0 = useds[0];
  const int64_t rows = a.rows;
  const int n = static_cast<int>(ws.size());

  // The input all-gather (features the weights' columns need), its group and block positions.
  AxisSet suffix;
  if (!(a.spec.cols == used0.cols) && !a.spec.cols.MinorSuffixOver(used0.cols, &suffix)) {
    return InternalError("ShardedMatMul: input features ", a.spec.cols.ToString(),
                         " cannot become ", used0.cols.ToString(), " by an all-gather");
  }
  Comm& ag = mesh.group(suffix);
  const int ka = ag.size();
  const int64_t lc_in = a.local_cols(m), k_in = lc_in * ka;
  std::vector<int64_t> ag_pos(ka, 0);  // member j's block among the gathered ones (spec order)
  {
    const std::string suf = a.spec.cols.str().substr(used0.cols.str().size());
    for (int j = 0; j < ka; ++j) {
      const auto cj = mesh.MemberCoords(suffix, j);
      for (char ch : suf) ag_pos[j] = ag_pos[j] * m.size(ch - 'x') + cj[ch - 'x'];
    }
  }
  // The reduce-scatter group (the weights' split col axes; the same for all of them).
  const AxisSet partial_axes = used0.cols.split();
  Comm& rs = mesh.group(partial_axes);
  const int kr = rs.size();
  const bool do_rs = resolve_partial && kr > 1;
  // The next call's first weight, if it is gathered (a weight used as stored needs no prefetch).
  const WeightShard* next_hint = W.next_w;
  const TensorSpec next_hint_used = W.next_used;
  W.next_w = nullptr;
  if (next_hint != nullptr && next_hint_used.rows == next_hint->spec.rows &&
      next_hint_used.cols == next_hint->spec.cols) {
    next_hint = nullptr;
  }

  // Chunking (module comment in sharded_matmul.h). Off: one chunk, blocking collectives. Row chunks
  // only to pipeline an input all-gather (they re-stream the weight per chunk); otherwise column
  // chunks.
  const bool row_mode = !overlap || (ka > 1 && rows >= 2 * opt.min_chunk_rows);
  int row_chunks = 1;
  // Pieces of `units` (>= min_units each) for a collective of `bytes` per rank (>= min_chunk_bytes
  // each: below that the per-collective latency outweighs what the split can hide).
  const auto num_chunks = [&](int64_t units, int64_t min_units, int64_t bytes) {
    int64_t c = std::clamp<int64_t>(units / std::max<int64_t>(min_units, 1), 1, opt.max_chunks);
    if (opt.min_chunk_bytes > 0) c = std::min(c, std::max<int64_t>(bytes / opt.min_chunk_bytes, 1));
    return static_cast<int>(c);
  };
  if (overlap && row_mode) {
    row_chunks = num_chunks(rows, opt.min_chunk_rows, rows * lc_in * ka * 4);
  }

  // 1. Input features. Row chunk c's all-gather: [rows_c, lc] -> [K][rows_c][lc] at
  // ag_raw + K * r0 * lc.
  const float* in = a.data.data();
  if (ka > 1) {
    Grow(W.ag_raw, rows * k_in);
    Grow(W.gathered, rows * k_in);
    in = W.gathered.data();
    call.ag_ops_.resize(row_chunks);  // column mode: one chunk of every row
    for (int c = 0; c < row_chunks; ++c) {
      const int64_t r0 = ChunkBegin(rows, c, row_chunks),
                    nr = ChunkBegin(rows, c + 1, row_chunks) - r0;
      const float* send = a.data.data() + r0 * lc_in;
      float* recv = W.ag_raw.data() + r0 * k_in;
      if (overlap) {
        SI_ASSIGN_OR_RETURN(call.ag_ops_[c],
                            ag.StartAllGather(send, recv, nr * lc_in, ElemType::kF32));
      } else {
        SI_RETURN_IF_ERROR(ag.AllGather(send, recv, nr * lc_in, ElemType::kF32));
      }
    }
  }
  // Makes the rows of chunk c available in `in`: waits for and unpacks their all-gather.
  std::vector<bool> ag_ready(row_chunks, ka == 1);
  auto need_rows = [&](int c) -> Status {
    if (ag_ready[c]) return Status::Ok();
    if (call.ag_ops_[c]) {
      SI_RETURN_IF_ERROR(call.ag_ops_[c]->Wait());
      call.ag_ops_[c].reset();
    }
    const int64_t r0 = ChunkBegin(rows, c, row_chunks),
                  nr = ChunkBegin(rows, c + 1, row_chunks) - r0;
    const float* blocks = W.ag_raw.data() + r0 * k_in;  // [K][nr][lc]
    for (int j = 0; j < ka; ++j) {
      for (int64_t r = 0; r < nr; ++r) {
        std::memcpy(W.gathered.data() + (r0 + r) * k_in + ag_pos[j] * lc_in,
                    blocks + (j * nr + r) * lc_in, lc_in * sizeof(float));
      }
    }
    ag_ready[c] = true;
    return Status::Ok();
  };

  // 2. + 3. Per weight: the (gathered) matrix, the chunks of its matmul, the reduce-scatter of each
  // chunk.
  std::vector<ShardedAct> outs(n);
  if (static_cast<int>(W.send.size()) < n) W.send.resize(n);
  if (static_cast<int>(W.recv.size()) < n) W.recv.resize(n);
  struct ColScatter {
    int weight;
    int64_t c0, cw, lc;
  };
  std::vector<ColScatter>
      scatters;  // column chunks received into W.recv, copied into the output at the end
  for (int i = 0; i < n; ++i) {
    const WeightShard& w = *ws[i];
    SI_ASSIGN_OR_RETURN(MatRef wm, call.Acquire(w, useds[i]));
    if (i + 1 < n) {
      SI_RETURN_IF_ERROR(call.Prefetch(ws[i + 1], useds[i + 1]));
    } else {
      SI_RETURN_IF_ERROR(call.Prefetch(next_hint, next_hint_used));
    }
    const int64_t nl = wm.rows;  // local output features (partial sums before the reduce-scatter)
    ShardedAct& out = outs[i];
    out.rows = rows;
    out.dim = nl * m.GroupSize(useds[i].rows.split());
    out.spec.rows = a.spec.rows;
    out.spec.cols = useds[i].rows;
    out.spec.partial = useds[i].cols.split();
    SI_CHECK(!do_rs || nl % kr == 0) << nl << " % " << kr;
    const int64_t lc = do_rs ? nl / kr : nl;  // output features per rank after the reduce-scatter
    out.data.resize(rows * lc);
    std::vector<float>& send = W.send[i];
    if (do_rs) Grow(send, rows * nl);
    // Column chunks of the reduce-scatter (column mode); one chunk takes the row path below.
    const int col_chunks =
        row_mode || !do_rs ? 1 : num_chunks(lc, opt.min_chunk_cols, rows * nl * 4);
    if (row_mode || (do_rs && col_chunks == 1)) {
      for (int c = 0; c < row_chunks; ++c) {  // column mode: row_chunks == 1
        const int64_t r0 = ChunkBegin(rows, c, row_chunks),
                      nr = ChunkBegin(rows, c + 1, row_chunks) - r0;
        SI_RETURN_IF_ERROR(need_rows(c));
        if (!do_rs) {
          k.matmul(in + r0 * k_in, nr, wm, nullptr, out.data.data() + r0 * nl, pool);
          call.Progress();
          continue;
        }
        // Partial sums [nr, nl] -> blocks [K][nr][lc] -> reduce-scatter into rows r0.. of the
        // output.
        Grow(W.tmp, nr * nl);
        k.matmul(in + r0 * k_in, nr, wm, nullptr, W.tmp.data(), pool);
        float* blocks = send.data() + r0 * nl;
        for (int j = 0; j < kr; ++j) {
          for (int64_t r = 0; r < nr; ++r) {
            std::memcpy(blocks + (j * nr + r) * lc, W.tmp.data() + r * nl + j * lc,
                        lc * sizeof(float));
          }
        }
        if (overlap) {
          SI_ASSIGN_OR_RETURN(auto op, rs.StartReduceScatter(blocks, out.data.data() + r0 * lc,
                                                             nr * lc, ElemType::kF32));
          call.rs_ops_.push_back(std::move(op));
        } else {
          SI_RETURN_IF_ERROR(
              rs.ReduceScatter(blocks, out.data.data() + r0 * lc, nr * lc, ElemType::kF32));
        }
        call.Progress();
      }
      continue;
    }
    // Column mode (few rows, overlap on): input gathered whole.
    SI_RETURN_IF_ERROR(need_rows(0));
    if (!do_rs) {
      // Chunked only to progress a weight gather or earlier reduce-scatters in flight.
      const int chunks =
          call.InFlight()
              ? static_cast<int>(std::clamp<int64_t>(nl / opt.min_chunk_cols, 1, opt.max_chunks))
              : 1;
      for (int s = 0; s < chunks; ++s) {
        const int64_t c0 = ChunkBegin(nl, s, chunks), cw = ChunkBegin(nl, s + 1, chunks) - c0;
        if (chunks == 1 || rows == 1) {
          k.matmul(in, rows, SubRows(wm, c0, cw), nullptr, out.data.data() + c0 * rows, pool);
        } else {
          Grow(W.tmp, rows * cw);
          k.matmul(in, rows, SubRows(wm, c0, cw), nullptr, W.tmp.data(), pool);
          for (int64_t r = 0; r < rows; ++r) {
            std::memcpy(out.data.data() + r * nl + c0, W.tmp.data() + r * cw, cw * sizeof(float));
          }
        }
        call.Progress();
      }
      continue;
    }
    // Chunk s: columns [c0, c0 + cw) of every destination block j -> send [K][rows][cw] at
    // send + K * rows * c0 -> reduce-scatter into [rows][cw] at recv + rows * c0.
    const int chunks = col_chunks;
    std::vector<float>& recv = W.recv[i];
    if (chunks > 1) Grow(recv, rows * lc);
    for (int s = 0; s < chunks; ++s) {
      const int64_t c0 = ChunkBegin(lc, s, chunks), cw = ChunkBegin(lc, s + 1, chunks) - c0;
      float* blocks = send.data() + kr * rows * c0;
      for (int j = 0; j < kr; ++j) {
        k.matmul(in, rows, SubRows(wm, j * lc + c0, cw), nullptr, blocks + j * rows * cw, pool);
        call.Progress();
      }
      float* dst = chunks == 1 ? out.data.data() : recv.data() + rows * c0;
      SI_ASSIGN_OR_RETURN(auto op, rs.StartReduceScatter(blocks, dst, rows * cw, ElemType::kF32));
      call.rs_ops_.push_back(std::move(op));
      if (chunks > 1) scatters.push_back({i, c0, cw, lc});
      call.Progress();
    }
  }
  for (auto& op : call.rs_ops_) SI_RETURN_IF_ERROR(op->Wait());
  for (const ColScatter& sc : scatters) {
    const float* src = W.recv[sc.weight].data() + rows * sc.c0;
    float* dst = outs[sc.weight].data.data();
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(dst + r * sc.lc + sc.c0, src + r * sc.cw, sc.cw * sizeof(float));
    }
  }
  if (resolve_partial) {
    for (ShardedAct& out : outs) {
      out.spec.cols = out.spec.cols.Appended(out.spec.partial);
      out.spec.partial = {};
    }
  }
  return outs;
}

}  // namespace si
