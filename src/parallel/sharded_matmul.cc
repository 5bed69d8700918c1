#include "si/parallel/sharded_matmul.h"

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

// Index of a member's block among the blocks of a stored dim spec that are gathered over `g` (row-major over
// those axes, in the spec's order: the used spec is the stored one with g's letters upper-case).
int64_t GatheredIndex(const DimSharding& stored, AxisSet g, const MeshShape& m, const std::array<int, 3>& coords) {
  int64_t idx = 0;
  for (char c : stored.str()) {
    const int a = c - 'x';
    if (g.has(a)) idx = idx * m.size(a) + coords[a];
  }
  return idx;
}

// Weight-gathered use: all-gather the stored shards over the gathered axes and assemble the used block.
// Rows blocks stack; column blocks (E over x) interleave per row, on quantization-block boundaries.
Status GatherWeight(Mesh& mesh, const WeightShard& w, const TensorSpec& used, std::vector<uint8_t>* buf,
                    MatRef* out) {
  const MeshShape& m = mesh.shape();
  const AxisSet g = (w.spec.rows.split() | w.spec.cols.split()).minus(used.rows.split() | used.cols.split());
  Comm& comm = mesh.group(g);
  const int k = comm.size();
  const int64_t shard_bytes = w.bytes();
  std::vector<uint8_t> all(shard_bytes * k);
  SI_RETURN_IF_ERROR(comm.AllGather(w.mat.data, all.data(), shard_bytes, ElemType::kU8));
  const int64_t row_blocks = m.GroupSize(w.spec.rows.split() & g);
  const int64_t col_blocks = m.GroupSize(w.spec.cols.split() & g);
  out->type = w.mat.type;
  out->rows = w.mat.rows * row_blocks;
  out->cols = w.mat.cols * col_blocks;
  const int64_t row_bytes = out->row_bytes(), shard_row_bytes = w.mat.row_bytes();
  buf->resize(out->rows * row_bytes);
  for (int j = 0; j < k; ++j) {
    // Member j's coordinates: mine, with the axes of g decoded row-major from j.
    std::array<int, 3> c = mesh.coords();
    int rem = j;
    for (int a = 2; a >= 0; --a) {
      if (g.has(a)) {
        c[a] = rem % m.size(a);
        rem /= m.size(a);
      }
    }
    const int64_t r0 = GatheredIndex(w.spec.rows, g, m, c) * w.mat.rows;
    const int64_t c0 = DTypeRowBytes(w.mat.type, GatheredIndex(w.spec.cols, g, m, c) * w.mat.cols);
    const uint8_t* src = all.data() + j * shard_bytes;
    for (int64_t r = 0; r < w.mat.rows; ++r) {
      std::memcpy(buf->data() + (r0 + r) * row_bytes + c0, src + r * shard_row_bytes, shard_row_bytes);
    }
  }
  out->data = buf->data();
  return Status::Ok();
}

}  // namespace

Result<std::vector<ShardedAct>> ShardedMatMul(Mesh& mesh, const Kernels& k, const ShardedAct& a,
                                              const std::vector<const WeightShard*>& ws,
                                              const std::vector<TensorSpec>& useds, bool resolve_partial,
                                              ThreadPool* pool) {
  SI_CHECK(!ws.empty() && ws.size() == useds.size());
  for (size_t i = 0; i < ws.size(); ++i) {
    if (!(useds[i].cols == useds[0].cols)) {
      return InternalError("ShardedMatMul: ", TensorName(ws[i]->role, ws[i]->layer), " needs input features ",
                           useds[i].cols.ToString(), ", the first weight ", useds[0].cols.ToString());
    }
  }
  if (!a.spec.partial.empty()) return InternalError("ShardedMatMul: input still a partial sum");
  const MeshShape& m = mesh.shape();
  const TensorSpec& used0 = useds[0];
  // 1. Gather the features the weights' columns need, once.
  const float* in = a.data.data();
  std::vector<float> gathered;
  AxisSet suffix;
  if (!(a.spec.cols == used0.cols)) {
    if (!a.spec.cols.MinorSuffixOver(used0.cols, &suffix)) {
      return InternalError("ShardedMatMul: input features ", a.spec.cols.ToString(), " cannot become ",
                           used0.cols.ToString(), " by an all-gather");
    }
    const int64_t lc = a.local_cols(m);
    gathered.resize(a.rows * lc * m.GroupSize(suffix));
    SI_RETURN_IF_ERROR(AllGatherFeatures(mesh.group(suffix), in, a.rows, lc, gathered.data()));
    in = gathered.data();
  }
  std::vector<ShardedAct> outs;
  for (size_t i = 0; i < ws.size(); ++i) {
    const WeightShard& w = *ws[i];
    // 2. Local matmul (weight-gathered layouts gather the weight first, one matrix at a time).
    MatRef wm = w.mat;
    std::vector<uint8_t> wbuf;
    if (!(useds[i].rows == w.spec.rows) || !(useds[i].cols == w.spec.cols)) {
      SI_RETURN_IF_ERROR(GatherWeight(mesh, w, useds[i], &wbuf, &wm));
    }
    ShardedAct out;
    out.rows = a.rows;
    out.dim = wm.rows * m.GroupSize(useds[i].rows.split());
    out.spec.rows = a.spec.rows;
    out.spec.cols = useds[i].rows;
    out.spec.partial = useds[i].cols.split();
    out.data.resize(out.rows * wm.rows);
    k.matmul(in, a.rows, wm, nullptr, out.data.data(), pool);
    // 3. Partial sums -> reduce-scatter into the output features.
    if (resolve_partial) SI_RETURN_IF_ERROR(ResolvePartialSums(mesh, out));
    outs.push_back(std::move(out));
  }
  return outs;
}

}  // namespace si
