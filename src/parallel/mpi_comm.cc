#include "si/parallel/mpi_comm.h"

#include <mpi.h>

#include <climits>
#include <cstdio>
#include <vector>

#include "si/base/check.h"
#include "si/parallel/comm.h"

namespace si {
namespace {

std::string MpiErrorString(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, buf, &len);
  return std::string(buf, len);
}

MPI_Datatype MpiType(ElemType t) {
  switch (t) {
    case ElemType::kF32: return MPI_FLOAT;
    case ElemType::kBF16: return MPI_UINT16_T;
    case ElemType::kU8: return MPI_BYTE;
  }
  return MPI_BYTE;
}

class MpiComm : public Comm {
 public:
  MpiComm(MPI_Comm comm, int size, int rank, AxisSet axes) : Comm(size, rank, axes), comm_(comm) {}
  ~MpiComm() override {
    if (comm_ != MPI_COMM_NULL && MpiInitialized()) MPI_Comm_free(&comm_);
  }

 protected:
  Status DoAllGather(const void* send, void* recv, int64_t count, ElemType type) override {
    SI_RETURN_IF_ERROR(CheckCount("all-gather", count * size()));
    return Check("all-gather", MPI_Allgather(send, static_cast<int>(count), MpiType(type), recv,
                                             static_cast<int>(count), MpiType(type), comm_));
  }
  Status DoReduceScatter(const void* send, void* recv, int64_t count, ElemType type) override {
    SI_RETURN_IF_ERROR(CheckCount("reduce-scatter", count * size()));
    std::vector<uint8_t> blocks(count * size() * ElemBytes(type));
    SI_RETURN_IF_ERROR(Check("reduce-scatter", MPI_Alltoall(send, static_cast<int>(count), MpiType(type),
                                                            blocks.data(), static_cast<int>(count),
                                                            MpiType(type), comm_)));
    Sum(blocks.data(), count, type, recv);
    return Status::Ok();
  }
  Status DoAllToAll(const void* send, void* recv, int64_t count, ElemType type) override {
    SI_RETURN_IF_ERROR(CheckCount("all-to-all", count * size()));
    return Check("all-to-all", MPI_Alltoall(send, static_cast<int>(count), MpiType(type), recv,
                                            static_cast<int>(count), MpiType(type), comm_));
  }
  Status DoBroadcast(void* buf, int64_t count, ElemType type, int root) override {
    SI_RETURN_IF_ERROR(CheckCount("broadcast", count));
    return Check("broadcast", MPI_Bcast(buf, static_cast<int>(count), MpiType(type), root, comm_));
  }
  Status DoBarrier() override { return Check("barrier", MPI_Barrier(comm_)); }

  Result<std::unique_ptr<PendingOp>> DoStart(CollectiveKind kind, const void* send, void* recv,
                                             int64_t count, ElemType type) override;

 private:
  friend class MpiPending;
  Status Check(const char* op, int rc) const {
    if (rc == MPI_SUCCESS) return Status::Ok();
    return InternalError("MPI ", op, " over mesh axes ", axes().Name(), " (group rank ", rank(), " of ",
                         size(), "): ", MpiErrorString(rc));
  }
  Status CheckCount(const char* op, int64_t n) const {
    if (n > INT_MAX) {
      return InvalidArgumentError("MPI ", op, " over ", axes().Name(), ": ", n,
                                  " elements exceed INT_MAX per call; split it");
    }
    return Status::Ok();
  }
  void Sum(const uint8_t* blocks, int64_t count, ElemType type, void* recv) const {
    std::vector<const void*> parts(size());
    for (int j = 0; j < size(); ++j) parts[j] = blocks + j * count * ElemBytes(type);
    SerialSum(parts.data(), size(), count, type, recv);
  }
  MPI_Comm comm_;
};

class MpiPending : public PendingOp {
 public:
  MpiPending(const MpiComm* comm, const char* op) : comm_(comm), op_(op) {}
  ~MpiPending() override {
    if (!done_) (void)Wait();
  }
  Status Wait() override {
    if (done_) return Status::Ok();
    done_ = true;
    // After a successful MPI_Test the request is MPI_REQUEST_NULL and MPI_Wait returns at once.
    SI_RETURN_IF_ERROR(comm_->Check(op_, MPI_Wait(&req, MPI_STATUS_IGNORE)));
    if (!blocks.empty()) comm_->Sum(blocks.data(), count, type, recv);
    return Status::Ok();
  }
  // Drives Open MPI's progress engine (libnbc advances a schedule only inside MPI calls). Errors
  // are reported by the Wait() that follows.
  bool Test() override {
    if (done_ || req == MPI_REQUEST_NULL) return true;
    int flag = 0;
    if (MPI_Test(&req, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) return true;
    return flag != 0;
  }
  MPI_Request req = MPI_REQUEST_NULL;
  std::vector<uint8_t> blocks;  // reduce-scatter: the received blocks, summed at Wait
  int64_t count = 0;
  ElemType type = ElemType::kF32;
  void* recv = nullptr;

 private:
  const MpiComm* comm_;
  const char* op_;
  bool done_ = false;
};

Result<std::unique_ptr<PendingOp>> MpiComm::DoStart(CollectiveKind kind, const void* send, void* recv,
                                                    int64_t count, ElemType type) {
  SI_RETURN_IF_ERROR(CheckCount(CollectiveName(kind).data(), count * size()));
  const int n = static_cast<int>(count);
  const MPI_Datatype t = MpiType(type);
  switch (kind) {
    case CollectiveKind::kAllGather: {
      auto p = std::make_unique<MpiPending>(this, "all-gather");
      SI_RETURN_IF_ERROR(Check("all-gather", MPI_Iallgather(send, n, t, recv, n, t, comm_, &p->req)));
      return std::unique_ptr<PendingOp>(std::move(p));
    }
    case CollectiveKind::kAllToAll: {
      auto p = std::make_unique<MpiPending>(this, "all-to-all");
      SI_RETURN_IF_ERROR(Check("all-to-all", MPI_Ialltoall(send, n, t, recv, n, t, comm_, &p->req)));
      return std::unique_ptr<PendingOp>(std::move(p));
    }
    case CollectiveKind::kReduceScatter: {
      auto p = std::make_unique<MpiPending>(this, "reduce-scatter");
      p->blocks.resize(count * size() * ElemBytes(type));
      p->count = count;
      p->type = type;
      p->recv = recv;
      SI_RETURN_IF_ERROR(
          Check("reduce-scatter", MPI_Ialltoall(send, n, t, p->blocks.data(), n, t, comm_, &p->req)));
      return std::unique_ptr<PendingOp>(std::move(p));
    }
    default:
      return InternalError("no non-blocking ", CollectiveName(kind));
  }
}

}  // namespace

bool MpiInitialized() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

Result<std::unique_ptr<MpiSession>> MpiSession::Init(int* argc, char*** argv) {
  std::unique_ptr<MpiSession> s(new MpiSession());
  if (!MpiInitialized()) {
    int provided = 0;
    const int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return InternalError("MPI_Init_thread failed: ", MpiErrorString(rc));
    s->owns_ = true;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_size(MPI_COMM_WORLD, &s->size_);
  MPI_Comm_rank(MPI_COMM_WORLD, &s->rank_);
  return s;
}

MpiSession::~MpiSession() {
  if (owns_ && MpiInitialized()) MPI_Finalize();
}

Result<std::unique_ptr<Mesh>> MakeMpiMesh(const MeshShape& shape) {
  if (!MpiInitialized()) return InternalError("MakeMpiMesh: MPI is not initialised (create an MpiSession)");
  int world = 0, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (world != shape.num_ranks()) {
    return InvalidArgumentError("--mesh ", shape.ToString(), " needs ", shape.num_ranks(),
                                " ranks, but mpirun started ", world, " (use mpirun -np ", shape.num_ranks(),
                                ", or a mesh whose sizes multiply to ", world, ", e.g. --mesh ", world,
                                "x1x1)");
  }
  int dims[3] = {shape.x, shape.y, shape.z};
  int periods[3] = {0, 0, 0};
  MPI_Comm cart = MPI_COMM_NULL;
  int rc = MPI_Cart_create(MPI_COMM_WORLD, 3, dims, periods, /*reorder=*/0, &cart);
  if (rc != MPI_SUCCESS) return InternalError("MPI_Cart_create ", shape.ToString(), ": ", MpiErrorString(rc));
  MPI_Comm_set_errhandler(cart, MPI_ERRORS_RETURN);
  int coords[3];
  MPI_Cart_coords(cart, rank, 3, coords);
  const auto want = shape.Coords(rank);
  if (coords[0] != want[0] || coords[1] != want[1] || coords[2] != want[2]) {
    MPI_Comm_free(&cart);
    return InternalError("MPI_Cart_create numbered rank ", rank, " as (", coords[0], ",", coords[1], ",",
                         coords[2], "), expected row-major");
  }
  std::array<std::unique_ptr<Comm>, 8> groups;
  groups[0] = MakeSelfComm(AxisSet::None());
  Status error;
  for (int b = 1; b < 8; ++b) {
    const AxisSet s{static_cast<uint8_t>(b)};
    int remain[3] = {s.has(0), s.has(1), s.has(2)};
    MPI_Comm sub = MPI_COMM_NULL;
    rc = MPI_Cart_sub(cart, remain, &sub);
    if (rc != MPI_SUCCESS) {
      error = InternalError("MPI_Cart_sub(", s.Name(), "): ", MpiErrorString(rc));
      break;
    }
    MPI_Comm_set_errhandler(sub, MPI_ERRORS_RETURN);
    int gsize = 0, grank = 0;
    MPI_Comm_size(sub, &gsize);
    MPI_Comm_rank(sub, &grank);
    if (gsize != shape.GroupSize(s) || grank != shape.GroupRank(s, want)) {
      error = InternalError("MPI_Cart_sub(", s.Name(), ") gave rank ", grank, " of ", gsize, ", expected ",
                            shape.GroupRank(s, want), " of ", shape.GroupSize(s));
      MPI_Comm_free(&sub);
      break;
    }
    groups[b] = std::make_unique<MpiComm>(sub, gsize, grank, s);
  }
  MPI_Comm_free(&cart);
  SI_RETURN_IF_ERROR(error);
  return std::make_unique<Mesh>(shape, rank, std::move(groups));
}

void MpiAbortAll(const Status& status, int code) {
  int rank = -1;
  if (MpiInitialized()) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::fprintf(stderr, "rank %d: error: %s\n", rank, status.ToString().c_str());
  std::fflush(stderr);
  if (MpiInitialized()) MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();
}

}  // namespace si
