// Shard loading: this rank's block of every matmul weight, by the stored spec of the layout's weight table
// (partition.h: E_x F_yz for 2d-ws and the weight-gathered layouts, the 1d table for 1d-ws).
//
// The GGUF file is memory-mapped (Model keeps it mapped; nothing is read until touched):
//   - a shard that is a contiguous range of whole rows (rows split, cols not) is a VIEW into the mapping:
//     only its pages are ever faulted in;
//   - a shard with split columns (E over x in E_x F_yz) is COPIED row by row from the mapping: only the
//     slice's bytes are read (plus the partial pages at its edges). Quantized types (q8_0, q4_0) have
//     32-element blocks along the columns, so a column slice must start and end on a block boundary;
//     otherwise Load fails naming the tensor, the block size and a mesh that works.
//   - the fused QKV matrix (falcon, gpt2) is split per segment (Q, K and V rows each take their block) and
//     copied, so every rank holds whole heads of each.
// resident_bytes() is the sum of the shard bytes (views + copies): the weight memory of this rank. Norms,
// biases and embedding tables are not sharded here (small, or looked up by row); the engine keeps using
// the Model's views for them.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "si/base/status.h"
#include "si/kernels/ops.h"
#include "si/model/loader.h"
#include "si/parallel/mesh.h"
#include "si/parallel/partition.h"

namespace si {

struct WeightShard {
  Role role = Role::kWq;
  int64_t layer = 0;
  TensorSpec spec;                        // stored spec
  int64_t row_begin = 0, col_begin = 0;   // of the full matrix (fused QKV: of each segment)
  MatRef mat;                             // this rank's [rows, cols]
  std::vector<uint8_t> owned;             // backing store when copied (empty for views)
  bool is_view() const { return owned.empty(); }
  int64_t bytes() const { return mat.rows * mat.row_bytes(); }
};

class ShardedWeights {
 public:
  // `coords`: this rank's mesh coordinates (Mesh::coords()). Errors: a dimension not divisible by its mesh
  // axes, or a column split that breaks a quantization block. `include_output` false leaves the LM head
  // (output.weight) out: the distributed engine shards it by vocabulary rows itself (dist_engine.h).
  static Result<std::unique_ptr<ShardedWeights>> Load(const Model& model, const MeshShape& shape,
                                                      const std::array<int, 3>& coords, WeightTable table,
                                                      bool include_output = true);

  // The shard of a per-layer role (layer ignored for kOutput). SI_CHECKs that it was loaded.
  const WeightShard& Get(Role role, int64_t layer = 0) const;
  bool Has(Role role, int64_t layer = 0) const;
  const std::vector<std::unique_ptr<WeightShard>>& shards() const { return shards_; }
  // Bytes of this rank's shards (views + copies), and of the same matrices unsharded.
  int64_t resident_bytes() const { return resident_; }
  int64_t full_bytes() const { return full_; }
  int64_t copied_bytes() const { return copied_; }

 private:
  ShardedWeights() = default;
  std::vector<std::unique_ptr<WeightShard>> shards_;
  std::map<std::pair<int, int64_t>, size_t> index_;
  int64_t resident_ = 0, full_ = 0, copied_ = 0;
};

// Resident (touched) bytes of the mapping that contains `addr`, from /proc/self/smaps (Rss of that VMA);
// -1 when unavailable. Measures what a rank actually faulted in from the mmapped file.
int64_t MappingRssBytes(const void* addr);

}  // namespace si
