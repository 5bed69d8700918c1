// Collectives over one axis group of the mesh: the interface, its byte accounting and the deterministic
// reduction order shared by every implementation (FakeComm in-process, MpiComm over MPI).
//
// Buffers: `count` is in elements of `type`; send and recv never alias. Group ranks are 0..size()-1 in the
// mesh's group order (mesh.h).
//   AllGather(send[count]) -> recv[size * count], block r = rank r's send.
//   ReduceScatter(send[size * count]) -> recv[count] = sum over ranks j = 0..size-1 of send_j[rank block].
//   AllReduce(send[count]) -> recv[count] = sum over ranks of send_j (= ReduceScatter + AllGather).
//   AllToAll(send[size * count]) -> recv[size * count], recv block j = rank j's send block `rank`.
//   Broadcast(buf[count], root): buf on every rank = root's buf.
//
// Reduction order (bit-exact, identical in FakeComm and MpiComm): each output element is
//   acc = float(p_0); acc += float(p_1); ...; acc += float(p_{size-1});  out = round(acc)
// i.e. the partial sums of all ranks are added in group-rank order in f32 (bf16 inputs are widened, the
// sum is rounded to bf16 once). MPI_Reduce_scatter / MPI_Allreduce leave the order to the library, so
// MpiComm does not use them: it moves each rank's block to its owner with MPI_Alltoall and adds the
// received blocks in rank order (SerialSum below is the one implementation of that sum). A single-process
// run that sums the same partials in the same order gets bit-identical results.
//
// Byte accounting (CommStats): every call adds the bytes THIS rank sends over the network, defined as the
// volume of the bandwidth-optimal algorithm (ring, or direct exchange; both move the same volume):
//   AllGather      (size-1) * count * elem              = (K-1)/K of the per-rank output
//   ReduceScatter  (size-1) * count * elem              = (K-1)/K of the per-rank input
//   AllReduce      2 * (K-1)/K * count * elem           (reduce-scatter + all-gather; count % K == 0, else
//                                                        the padded count rounded up to a multiple of K)
//   AllToAll       (size-1) * count * elem              = (K-1)/K of the per-rank buffer
//   Broadcast      root: (size-1) * count * elem, others 0 (direct sends from the root)
//   Barrier        0
// These are what the analytical model's `bytes * (K-1)/K` stands for (cost_model.h), so the counted bytes
// can be compared with it exactly. They are the algorithmic volume, not what a particular MPI library
// happens to put on the wire (which may use a tree for small messages), and a 1-rank group counts 0.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>

#include "si/base/status.h"
#include "si/parallel/mesh.h"

namespace si {

enum class CollectiveKind { kAllGather, kReduceScatter, kAllReduce, kAllToAll, kBroadcast, kBarrier };
inline constexpr int kNumCollectiveKinds = 6;
std::string_view CollectiveName(CollectiveKind k);  // all-gather, reduce-scatter, ...

// Element types the collectives move. Reductions accept kF32 and kBF16 only.
enum class ElemType { kF32, kBF16, kU8 };
int64_t ElemBytes(ElemType t);
std::string_view ElemTypeName(ElemType t);

struct CommStats {
  std::array<int64_t, kNumCollectiveKinds> bytes_sent{};
  std::array<int64_t, kNumCollectiveKinds> calls{};
  double seconds = 0;  // wall time inside blocking calls, Start*, Test() and Wait() (the exposed time)
  int64_t bytes(CollectiveKind k) const { return bytes_sent[static_cast<int>(k)]; }
  int64_t total_bytes() const;
  void Add(const CommStats& o);
};
// The bytes one call sends, by the definitions above.
int64_t BytesSent(CollectiveKind kind, int group_size, int64_t count, ElemType type, bool is_root);

// out[i] = sum over j in 0..n-1 (in that order) of parts[j][i], accumulated in f32 (see above).
void SerialSum(const void* const* parts, int n, int64_t count, ElemType type, void* out);

// A started non-blocking collective. Wait() completes it (buffers must stay valid until then); the
// destructor of an unwaited op waits. Test() lets the library make progress without blocking and says
// whether the op has completed (a later Wait() is still needed and returns any error): Open MPI moves a
// non-blocking collective on shared memory mostly inside MPI calls, so a caller that computes between
// Start and Wait should call Test() between its compute chunks (sharded_matmul.cc does).
class PendingOp {
 public:
  virtual ~PendingOp() = default;
  virtual Status Wait() = 0;
  virtual bool Test() { return true; }
};

class Comm {
 public:
  virtual ~Comm() = default;
  int size() const { return size_; }
  int rank() const { return rank_; }
  AxisSet axes() const { return axes_; }

  Status AllGather(const void* send, void* recv, int64_t count, ElemType type);
  Status ReduceScatter(const void* send, void* recv, int64_t count, ElemType type);
  Status AllReduce(const void* send, void* recv, int64_t count, ElemType type);
  Status AllToAll(const void* send, void* recv, int64_t count, ElemType type);
  Status Broadcast(void* buf, int64_t count, ElemType type, int root);
  Status Barrier();

  // Non-blocking variants, for the looped collective matmul (compute on one chunk while the next moves).
  // Counted when started. FakeComm completes them at Start (all ranks of the group must start them in the
  // same order, as with MPI); MpiComm uses MPI_Iallgather / MPI_Ialltoall. The time spent in Start, Test()
  // and Wait() is added to stats().seconds (the op must not outlive this Comm).
  Result<std::unique_ptr<PendingOp>> StartAllGather(const void* send, void* recv, int64_t count,
                                                    ElemType type);
  Result<std::unique_ptr<PendingOp>> StartReduceScatter(const void* send, void* recv, int64_t count,
                                                        ElemType type);
  Result<std::unique_ptr<PendingOp>> StartAllToAll(const void* send, void* recv, int64_t count,
                                                   ElemType type);

  const CommStats& stats() const { return stats_; }
  void ResetStats() { stats_ = {}; }

 protected:
  Comm(int size, int rank, AxisSet axes) : size_(size), rank_(rank), axes_(axes) {}
  virtual Status DoAllGather(const void* send, void* recv, int64_t count, ElemType type) = 0;
  virtual Status DoReduceScatter(const void* send, void* recv, int64_t count, ElemType type) = 0;
  virtual Status DoAllToAll(const void* send, void* recv, int64_t count, ElemType type) = 0;
  virtual Status DoBroadcast(void* buf, int64_t count, ElemType type, int root) = 0;
  virtual Status DoBarrier() = 0;
  // Default: run the blocking op and return a completed handle.
  virtual Result<std::unique_ptr<PendingOp>> DoStart(CollectiveKind kind, const void* send, void* recv,
                                                     int64_t count, ElemType type);

 private:
  void Count(CollectiveKind kind, int64_t count, ElemType type, bool is_root = false);
  Result<std::unique_ptr<PendingOp>> TimedStart(CollectiveKind kind, const void* send, void* recv,
                                                int64_t count, ElemType type);
  Status CheckArgs(CollectiveKind kind, const void* send, const void* recv, int64_t count,
                   ElemType type) const;
  int size_;
  int rank_;
  AxisSet axes_;
  CommStats stats_;
};

// A 1-rank communicator (the group of the empty axis set, or any axis of size 1): copies, counts 0.
std::unique_ptr<Comm> MakeSelfComm(AxisSet axes);

}  // namespace si
