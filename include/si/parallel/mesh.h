// The logical 3-D device mesh of Pope et al. (axes x, y, z) and the communicators of its axis
// groups.
//
// Ranks are numbered row-major over (x, y, z), exactly as MPI_Cart_create numbers them with reorder
// = 0:
//   rank = (cx * y + cy) * z + cz.
// The group of an axis set S (e.g. "yz") holds the ranks that share this rank's coordinates on the
// axes not in S; inside the group ranks are ordered row-major over the axes of S (x major), as
// MPI_Cart_sub orders them. So the residual stream E_xyz (x major) and a reduce-scatter into E over
// "yz" after one over "x" give the same element order, which the partition specs rely on
// (partition.h).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "si/base/status.h"
#include "si/model/config.h"

namespace si {

class Comm;

// A set of mesh axes as a bitmask: bit 0 x, bit 1 y, bit 2 z.
struct AxisSet {
  uint8_t bits = 0;
  static constexpr AxisSet None() { return {0}; }
  static constexpr AxisSet X() { return {1}; }
  static constexpr AxisSet Y() { return {2}; }
  static constexpr AxisSet Z() { return {4}; }
  static constexpr AxisSet XYZ() { return {7}; }
  bool has(int axis) const { return bits & (1u << axis); }
  bool empty() const { return bits == 0; }
  AxisSet operator|(AxisSet o) const { return {static_cast<uint8_t>(bits | o.bits)}; }
  AxisSet operator&(AxisSet o) const { return {static_cast<uint8_t>(bits & o.bits)}; }
  AxisSet minus(AxisSet o) const { return {static_cast<uint8_t>(bits & ~o.bits)}; }
  bool operator==(const AxisSet&) const = default;
  std::string Name() const;  // "x", "yz", "xyz", "-" for none
};
// "x", "y", "z", "xy", "yz", "xz", "xyz" (any order of the letters), "-" or "" for none.
Result<AxisSet> ParseAxisSet(std::string_view s);
// The 7 non-empty axis sets, in the order x, y, z, xy, xz, yz, xyz.
inline constexpr AxisSet kAllAxisSets[] = {{1}, {2}, {4}, {3}, {5}, {6}, {7}};

struct MeshShape {
  int x = 1, y = 1, z = 1;
  int size(int axis) const { return axis == 0 ? x : axis == 1 ? y : z; }
  int num_ranks() const { return x * y * z; }
  int GroupSize(AxisSet s) const {
    return (s.has(0) ? x : 1) * (s.has(1) ? y : 1) * (s.has(2) ? z : 1);
  }
  std::array<int, 3> Coords(int rank) const { return {rank / (y * z), (rank / z) % y, rank % z}; }
  int RankOf(const std::array<int, 3>& c) const { return (c[0] * y + c[1]) * z + c[2]; }
  // Index of `coords` inside the group of `s` (row-major over the axes of s).
  int GroupRank(AxisSet s, const std::array<int, 3>& c) const;
  std::string ToString() const;  // "2x1x2"
  bool operator==(const MeshShape&) const = default;
};

// Parses --mesh: "XxYxZ", "XxY" (z = 1) or "X" (y = z = 1); each size a positive integer.
Result<MeshShape> ParseMesh(std::string_view text);

// Which of the model's dimensions a mesh divides, for the layouts of partition.h.
struct MeshFit {
  MeshShape shape;
  bool ws2d = false;  // E % x, E % (x*y*z), F, Q and KV dims % (y*z), heads and kv heads % (y*z*x)
  bool ws1d = false;  // F, heads, kv heads % n, E % n
  bool batch_attention = false;  // q_dim and kv_dim % n: the all-to-all of Pope Fig. 5b applies
  double score = 0;    // higher is better (2D fit, then x nearest 0.5 sqrt(n): Pope §3.2.2)
  std::string reason;  // first dimension that does not divide, empty when ws2d
};
// Every factorisation x*y*z = num_ranks, best first. SuggestMesh returns the first that fits 2D
// weight-stationary (or the first 1D one, or an error listing why each failed).
std::vector<MeshFit> SuggestMeshes(int num_ranks, const ModelConfig& config);
Result<MeshShape> SuggestMesh(int num_ranks, const ModelConfig& config);
// A one-line hint for error messages: "try --mesh 1x2x2 (or 2x2x1)".
std::string MeshHint(int num_ranks, const ModelConfig& config);

// One rank's view of the mesh: its coordinates and one communicator per axis set. Created by
// Mesh::FromMpi (mpi_comm.h) or RunFakeMesh (fake_comm.h). Not thread-safe: one rank, one thread.
class Mesh {
 public:
  Mesh(MeshShape shape, int rank, std::array<std::unique_ptr<Comm>, 8> groups);
  ~Mesh();
  Mesh(const Mesh&) = delete;
  Mesh& operator=(const Mesh&) = delete;

  const MeshShape& shape() const { return shape_; }
  int rank() const { return rank_; }
  int num_ranks() const { return shape_.num_ranks(); }
  const std::array<int, 3>& coords() const { return coords_; }
  int coord(int axis) const { return coords_[axis]; }
  // This rank's index within the group of `axes` (0 for the empty set).
  int GroupRank(AxisSet axes) const { return shape_.GroupRank(axes, coords_); }
  // Coordinates of member j of this rank's group over `axes` (group order: row-major over the axes,
  // x major): this rank's coordinates with the group's axes decoded from j.
  std::array<int, 3> MemberCoords(AxisSet axes, int j) const;
  // The communicator over `axes`; the empty set gives a 1-rank communicator (all ops are copies).
  Comm& group(AxisSet axes) const { return *groups_[axes.bits]; }
  Comm& world() const { return group(AxisSet::XYZ()); }
  // Bytes sent by this rank over all groups, per op kind (sum of every group's CommStats).
  int64_t TotalBytesSent() const;
  void ResetStats();

 private:
  MeshShape shape_;
  int rank_;
  std::array<int, 3> coords_;
  std::array<std::unique_ptr<Comm>, 8> groups_;  // indexed by AxisSet::bits
};

}  // namespace si
