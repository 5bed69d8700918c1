#include "si/parallel/shard_loader.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>
#include <string>

#include "si/base/check.h"

namespace si {
namespace {

// Roles sharded here: the layer matmuls and the LM head.
bool Sharded(const RoleInfo& info) { return info.op == OpKind::kMatMul; }

Status CheckColumnBlocks(const std::string& name, const MatRef& full, int64_t col_begin, int64_t cols,
                         const DimSharding& d, const MeshShape& shape) {
  const int64_t block = DTypeBlockSize(full.type);
  if (col_begin % block == 0 && cols % block == 0) return Status::Ok();
  // Largest split of the columns that keeps whole blocks.
  const int64_t blocks = full.cols / block;
  return InvalidArgumentError("cannot split the ", full.cols, " columns of ", name, " (", DTypeName(full.type),
                              ", ", block, "-element blocks) over mesh axes ", d.split().Name(), " (",
                              d.Shards(shape), " parts of ", cols,
                              " columns): each part must be a multiple of ", block, "; use a mesh whose ",
                              d.split().Name(), " size divides ", blocks, ", or an unquantized (f32/f16) model");
}

// Copies rows [r0, r0 + n) x cols [c0, c0 + nc) of `full` into dst (row-major, contiguous).
void CopyBlock(const MatRef& full, int64_t r0, int64_t n, int64_t c0, int64_t nc, uint8_t* dst) {
  const int64_t off = DTypeRowBytes(full.type, c0);
  const int64_t len = DTypeRowBytes(full.type, nc);
  for (int64_t r = 0; r < n; ++r) std::memcpy(dst + r * len, full.row(r0 + r) + off, len);
}

}  // namespace

Result<std::unique_ptr<ShardedWeights>> ShardedWeights::Load(const Model& model, const MeshShape& shape,
                                                             const std::array<int, 3>& coords, WeightTable table,
                                                             bool include_output) {
  std::unique_ptr<ShardedWeights> sw(new ShardedWeights());
  const ModelConfig& c = model.config();
  std::vector<std::pair<Role, int64_t>> todo;
  for (const ArchRole& ar : ArchRoles(c.arch)) {
    const RoleInfo& info = GetRoleInfo(ar.role);
    if (!Sharded(info)) continue;
    if (!include_output && ar.role == Role::kOutput) continue;
    if (info.per_layer) {
      for (int64_t l = 0; l < c.num_layers; ++l) todo.push_back({ar.role, l});
    } else {
      todo.push_back({ar.role, 0});
    }
  }
  for (auto [role, layer] : todo) {
    const WeightRef& w = model.W(role, layer);
    if (!w.present()) continue;  // optional (e.g. output.weight when tied)
    const RoleInfo& info = GetRoleInfo(role);
    const std::string name = TensorName(role, layer);
    const MatRef& full = w.mat;
    auto shard = std::make_unique<WeightShard>();
    shard->role = role;
    shard->layer = layer;
    shard->spec = StoredSpec(table, role);
    const DimSharding& rs = shard->spec.rows;
    const DimSharding& cs = shard->spec.cols;
    for (const auto& [d, n, what] : {std::tuple{rs, full.rows, "rows"}, std::tuple{cs, full.cols, "cols"}}) {
      if (n % d.Shards(shape) != 0) {
        return InvalidArgumentError(name, ": ", n, " ", what, " are not divisible by the ", d.Shards(shape),
                                    " ranks of mesh axes ", d.split().Name(), " (--mesh ", shape.ToString(),
                                    "); ", MeshHint(shape.num_ranks(), c));
      }
    }
    int64_t c0 = 0, nc = full.cols;
    cs.Block(shape, coords, full.cols, &c0, &nc);
    SI_RETURN_IF_ERROR(CheckColumnBlocks(name, full, c0, nc, cs, shape));
    shard->col_begin = c0;
    shard->mat.type = full.type;
    shard->mat.cols = nc;
    // Row segments: fused QKV splits Q, K and V separately; everything else is one segment.
    std::vector<int64_t> segments = {full.rows};
    if (info.rows == Axis::kQkv) segments = {c.q_dim(), c.kv_dim(), c.kv_dim()};
    std::vector<std::pair<int64_t, int64_t>> ranges;  // (first row, rows) per segment
    int64_t base = 0, rows = 0;
    for (int64_t seg : segments) {
      if (seg % rs.Shards(shape) != 0) {
        return InvalidArgumentError(name, ": a segment of ", seg, " rows is not divisible by the ",
                                    rs.Shards(shape), " ranks of mesh axes ", rs.split().Name(), "; ",
                                    MeshHint(shape.num_ranks(), c));
      }
      int64_t r0 = 0, n = seg;
      rs.Block(shape, coords, seg, &r0, &n);
      ranges.push_back({base + r0, n});
      rows += n;
      base += seg;
    }
    shard->row_begin = ranges[0].first;
    shard->mat.rows = rows;
    if (ranges.size() == 1 && nc == full.cols) {
      shard->mat.data = full.row(ranges[0].first);  // a view: whole rows are contiguous
    } else {
      shard->owned.resize(rows * shard->mat.row_bytes());
      uint8_t* dst = shard->owned.data();
      for (auto [r0, n] : ranges) {
        CopyBlock(full, r0, n, c0, nc, dst);
        dst += n * shard->mat.row_bytes();
      }
      shard->mat.data = shard->owned.data();
      sw->copied_ += shard->bytes();
    }
    sw->resident_ += shard->bytes();
    sw->full_ += full.rows * full.row_bytes();
    sw->index_[{static_cast<int>(role), info.per_layer ? layer : 0}] = sw->shards_.size();
    sw->shards_.push_back(std::move(shard));
  }
  return sw;
}

bool ShardedWeights::Has(Role role, int64_t layer) const {
  const bool per_layer = GetRoleInfo(role).per_layer;
  return index_.count({static_cast<int>(role), per_layer ? layer : 0}) != 0;
}

const WeightShard& ShardedWeights::Get(Role role, int64_t layer) const {
  const bool per_layer = GetRoleInfo(role).per_layer;
  auto it = index_.find({static_cast<int>(role), per_layer ? layer : 0});
  SI_CHECK(it != index_.end()) << "no shard of " << TensorName(role, layer);
  return *shards_[it->second];
}

int64_t MappingRssBytes(const void* addr) {
  std::ifstream f("/proc/self/smaps");
  if (!f) return -1;
  const auto a = reinterpret_cast<uintptr_t>(addr);
  std::string line;
  bool in = false;
  while (std::getline(f, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(' ') > line.find('-')) {
      in = a >= lo && a < hi;
      continue;
    }
    if (in && line.rfind("Rss:", 0) == 0) {
      long kb = 0;
      std::sscanf(line.c_str() + 4, "%ld", &kb);
      return static_cast<int64_t>(kb) * 1024;
    }
  }
  return -1;
}

}  // namespace si
