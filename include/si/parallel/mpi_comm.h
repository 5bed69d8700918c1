// MpiComm: the collectives over MPI (OpenMPI), and the mesh built with MPI_Cart_create + MPI_Cart_sub.
// mpi.h is not exposed: callers see Comm and Mesh only.
//
// Mapping (comm.h gives the semantics and the byte accounting):
//   AllGather      MPI_Allgather / MPI_Iallgather
//   ReduceScatter  MPI_Alltoall of the rank blocks, then SerialSum in group-rank order (deterministic;
//                  MPI_Reduce_scatter's summation order is unspecified). Same volume as a ring.
//   AllReduce      ReduceScatter + AllGather (Comm::AllReduce)
//   AllToAll       MPI_Alltoall / MPI_Ialltoall
//   Broadcast      MPI_Bcast;  Barrier  MPI_Barrier
// Errors: every communicator uses MPI_ERRORS_RETURN, so a failing call returns a Status naming the op, the
// axis group and MPI's error string instead of aborting inside MPI. Element counts above INT_MAX per call
// are rejected with a clear error (split the call).
//
// Failure policy (no hangs): a rank that hits an error it cannot share with the others (cannot open the
// file, bad shard) must call MpiAbortAll, which prints the error and MPI_Aborts the job, so every rank exits
// within seconds. A rank that dies makes mpirun terminate the others. Errors every rank detects the same
// way (bad --mesh, dims not divisible) are returned as Status on every rank and need no abort.
#pragma once

#include <memory>

#include "si/base/status.h"
#include "si/parallel/mesh.h"

namespace si {

// MPI_Init_thread (MPI_THREAD_FUNNELED) on construction when MPI is not initialised yet, MPI_Finalize on
// destruction (only if this object initialised it).
class MpiSession {
 public:
  static Result<std::unique_ptr<MpiSession>> Init(int* argc, char*** argv);
  ~MpiSession();
  int world_size() const { return size_; }
  int world_rank() const { return rank_; }

 private:
  MpiSession() = default;
  bool owns_ = false;
  int size_ = 1, rank_ = 0;
};

// True when MPI_Init has been called and MPI_Finalize has not.
bool MpiInitialized();

// The mesh of this process. The world size must equal shape.num_ranks() (else an error on every rank:
// "--mesh 2x2x1 needs 4 ranks, mpirun started 2 (try --mesh 2x1x1)").
Result<std::unique_ptr<Mesh>> MakeMpiMesh(const MeshShape& shape);

// Prints "rank R: <message>" to stderr and aborts every rank of the job (MPI_Abort with `code`). For the
// application's top level only; the library never calls it itself.
[[noreturn]] void MpiAbortAll(const Status& status, int code = 1);

}  // namespace si
