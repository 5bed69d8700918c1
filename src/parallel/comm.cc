#include "si/parallel/comm.h"

#include <cstring>
#include <vector>

#include "si/base/check.h"
#include "si/base/timer.h"
#include "si/tensor/dtype.h"

namespace si {

std::string_view CollectiveName(CollectiveKind k) {
  switch (k) {
    case CollectiveKind::kAllGather: return "all-gather";
    case CollectiveKind::kReduceScatter: return "reduce-scatter";
    case CollectiveKind::kAllReduce: return "all-reduce";
    case CollectiveKind::kAllToAll: return "all-to-all";
    case CollectiveKind::kBroadcast: return "broadcast";
    case CollectiveKind::kBarrier: return "barrier";
  }
  return "?";
}

int64_t ElemBytes(ElemType t) {
  switch (t) {
    case ElemType::kF32: return 4;
    case ElemType::kBF16: return 2;
    case ElemType::kU8: return 1;
  }
  return 1;
}

std::string_view ElemTypeName(ElemType t) {
  switch (t) {
    case ElemType::kF32: return "f32";
    case ElemType::kBF16: return "bf16";
    case ElemType::kU8: return "u8";
  }
  return "?";
}

int64_t CommStats::total_bytes() const {
  int64_t t = 0;
  for (int64_t b : bytes_sent) t += b;
  return t;
}

void CommStats::Add(const CommStats& o) {
  for (int i = 0; i < kNumCollectiveKinds; ++i) {
    bytes_sent[i] += o.bytes_sent[i];
    calls[i] += o.calls[i];
  }
  seconds += o.seconds;
}

int64_t BytesSent(CollectiveKind kind, int k, int64_t count, ElemType type, bool is_root) {
  const int64_t e = ElemBytes(type);
  switch (kind) {
    case CollectiveKind::kAllGather:
    case CollectiveKind::kReduceScatter:
    case CollectiveKind::kAllToAll:
      return int64_t{k - 1} * count * e;
    case CollectiveKind::kAllReduce: {
      const int64_t padded = (count + k - 1) / k * k;
      return 2 * int64_t{k - 1} * (padded / k) * e;
    }
    case CollectiveKind::kBroadcast:
      return is_root ? int64_t{k - 1} * count * e : 0;
    case CollectiveKind::kBarrier:
      return 0;
  }
  return 0;
}

void SerialSum(const void* const* parts, int n, int64_t count, ElemType type, void* out) {
  SI_CHECK(n >= 1);
  if (type == ElemType::kF32) {
    float* o = static_cast<float*>(out);
    const float* p0 = static_cast<const float*>(parts[0]);
    for (int64_t i = 0; i < count; ++i) {
      float acc = p0[i];
      for (int j = 1; j < n; ++j) acc += static_cast<const float*>(parts[j])[i];
      o[i] = acc;
    }
    return;
  }
  SI_CHECK(type == ElemType::kBF16) << "reductions take f32 or bf16, got " << ElemTypeName(type);
  uint16_t* o = static_cast<uint16_t*>(out);
  for (int64_t i = 0; i < count; ++i) {
    float acc = BF16ToF32(static_cast<const uint16_t*>(parts[0])[i]);
    for (int j = 1; j < n; ++j) acc += BF16ToF32(static_cast<const uint16_t*>(parts[j])[i]);
    o[i] = F32ToBF16(acc);
  }
}

namespace {

class DonePending : public PendingOp {
 public:
  explicit DonePending(Status s) : s_(std::move(s)) {}
  Status Wait() override { return s_; }

 private:
  Status s_;
};

// Adds the wall time of Test() and Wait() to the owning Comm's stats (the exposed communication
// time).
class TimedPending : public PendingOp {
 public:
  TimedPending(std::unique_ptr<PendingOp> op, double* seconds)
      : op_(std::move(op)), seconds_(seconds) {}
  ~TimedPending() override {
    if (!waited_) (void)Wait();
  }
  Status Wait() override {
    waited_ = true;
    const double t0 = NowSeconds();
    Status s = op_->Wait();
    *seconds_ += NowSeconds() - t0;
    return s;
  }
  bool Test() override {
    const double t0 = NowSeconds();
    const bool done = op_->Test();
    *seconds_ += NowSeconds() - t0;
    return done;
  }

 private:
  std::unique_ptr<PendingOp> op_;
  double* seconds_;
  bool waited_ = false;
};

}  // namespace

Status Comm::CheckArgs(CollectiveKind kind, const void* send, const void* recv, int64_t count,
                       ElemType type) const {
  if (count < 0) {
    return InvalidArgumentError(CollectiveName(kind), " over ", axes_.Name(), ": negative count ",
                                count);
  }
  if ((kind == CollectiveKind::kReduceScatter || kind == CollectiveKind::kAllReduce) &&
      type == ElemType::kU8) {
    return InvalidArgumentError(CollectiveName(kind), " over ", axes_.Name(),
                                ": reductions need f32 or bf16 elements");
  }
  if (count > 0 && (send == nullptr || recv == nullptr)) {
    return InvalidArgumentError(CollectiveName(kind), " over ", axes_.Name(), ": null buffer");
  }
  return Status::Ok();
}

void Comm::Count(CollectiveKind kind, int64_t count, ElemType type, bool is_root) {
  stats_.bytes_sent[static_cast<int>(kind)] += BytesSent(kind, size_, count, type, is_root);
  stats_.calls[static_cast<int>(kind)] += 1;
}

Status Comm::AllGather(const void* send, void* recv, int64_t count, ElemType type) {
  SI_RETURN_IF_ERROR(CheckArgs(CollectiveKind::kAllGather, send, recv, count, type));
  Count(CollectiveKind::kAllGather, count, type);
  const double t0 = NowSeconds();
  Status st = DoAllGather(send, recv, count, type);
  stats_.seconds += NowSeconds() - t0;
  return st;
}

Status Comm::ReduceScatter(const void* send, void* recv, int64_t count, ElemType type) {
  SI_RETURN_IF_ERROR(CheckArgs(CollectiveKind::kReduceScatter, send, recv, count, type));
  Count(CollectiveKind::kReduceScatter, count, type);
  const double t0 = NowSeconds();
  Status st = DoReduceScatter(send, recv, count, type);
  stats_.seconds += NowSeconds() - t0;
  return st;
}

Status Comm::AllReduce(const void* send, void* recv, int64_t count, ElemType type) {
  SI_RETURN_IF_ERROR(CheckArgs(CollectiveKind::kAllReduce, send, recv, count, type));
  Count(CollectiveKind::kAllReduce, count, type);
  // Reduce-scatter + all-gather over a buffer padded to a multiple of the group size.
  const int k = size();
  const int64_t block = (count + k - 1) / k;
  const int64_t e = ElemBytes(type);
  const double t0 = NowSeconds();
  std::vector<uint8_t> padded(block * k * e, 0), mine(block * e);
  std::memcpy(padded.data(), send, count * e);
  SI_RETURN_IF_ERROR(DoReduceScatter(padded.data(), mine.data(), block, type));
  SI_RETURN_IF_ERROR(DoAllGather(mine.data(), padded.data(), block, type));
  std::memcpy(recv, padded.data(), count * e);
  stats_.seconds += NowSeconds() - t0;
  return Status::Ok();
}

Status Comm::AllToAll(const void* send, void* recv, int64_t count, ElemType type) {
  SI_RETURN_IF_ERROR(CheckArgs(CollectiveKind::kAllToAll, send, recv, count, type));
  Count(CollectiveKind::kAllToAll, count, type);
  const double t0 = NowSeconds();
  Status st = DoAllToAll(send, recv, count, type);
  stats_.seconds += NowSeconds() - t0;
  return st;
}

Status Comm::Broadcast(void* buf, int64_t count, ElemType type, int root) {
  SI_RETURN_IF_ERROR(CheckArgs(CollectiveKind::kBroadcast, buf, buf, count, type));
  if (root < 0 || root >= size_) {
    return InvalidArgumentError("broadcast over ", axes_.Name(), ": root ", root, " not in [0, ",
                                size_, ")");
  }
  Count(CollectiveKind::kBroadcast, count, type, root == rank_);
  return DoBroadcast(buf, count, type, root);
}

Status Comm::Barrier() {
  Count(CollectiveKind::kBarrier, 0, ElemType::kU8);
  return DoBarrier();
}

Result<std::unique_ptr<PendingOp>> Comm::DoStart(CollectiveKind kind, const void* send, void* recv,
                                                 int64_t count, ElemType type) {
  Status s;
  switch (kind) {
    case CollectiveKind::kAllGather:
      s = DoAllGather(send, recv, count, type);
      break;
    case CollectiveKind::kReduceScatter:
      s = DoReduceScatter(send, recv, count, type);
      break;
    case CollectiveKind::kAllToAll:
      s = DoAllToAll(send, recv, count, type);
      break;
    default:
      s = InternalError("no non-blocking ", CollectiveName(kind));
  }
  if (!s.ok()) return s;
  return std::unique_ptr<PendingOp>(new DonePending(Status::Ok()));
}

Result<std::unique_ptr<PendingOp>> Comm::TimedStart(CollectiveKind kind, const void* send,
                                                    void* recv, int64_t count, ElemType type) {
  const double t0 = NowSeconds();
  auto op = DoStart(kind, send, recv, count, type);
  stats_.seconds += NowSeconds() - t0;
  if (!op.ok()) return op.status();
  return std::unique_ptr<PendingOp>(new TimedPending(std::move(*op), &stats_.seconds));
}

Result<std::unique_ptr<PendingOp>> Comm::StartAllGather(const void* send, void* recv, int64_t count,
                                                        ElemType type) {
  SI_RETURN_IF_ERROR(CheckArgs(CollectiveKind::kAllGather, send, recv, count, type));
  Count(CollectiveKind::kAllGather, count, type);
  return TimedStart(CollectiveKind::kAllGather, send, recv, count, type);
}

Result<std::unique_ptr<PendingOp>> Comm::StartReduceScatter(const void* send, void* recv,
                                                            int64_t count, ElemType type) {
  SI_RETURN_IF_ERROR(CheckArgs(CollectiveKind::kReduceScatter, send, recv, count, type));
  Count(CollectiveKind::kReduceScatter, count, type);
  return TimedStart(CollectiveKind::kReduceScatter, send, recv, count, type);
}

Result<std::unique_ptr<PendingOp>> Comm::StartAllToAll(const void* send, void* recv, int64_t count,
                                                       ElemType type) {
  SI_RETURN_IF_ERROR(CheckArgs(CollectiveKind::kAllToAll, send, recv, count, type));
  Count(CollectiveKind::kAllToAll, count, type);
  return TimedStart(CollectiveKind::kAllToAll, send, recv, count, type);
}

namespace {

class SelfComm : public Comm {
 public:
  explicit SelfComm(AxisSet axes) : Comm(1, 0, axes) {}

 protected:
  Status DoAllGather(const void* send, void* recv, int64_t count, ElemType type) override {
    if (count) std::memcpy(recv, send, count * ElemBytes(type));
    return Status::Ok();
  }
  Status DoReduceScatter(const void* send, void* recv, int64_t count, ElemType type) override {
    if (count) std::memcpy(recv, send, count * ElemBytes(type));
    return Status::Ok();
  }
  Status DoAllToAll(const void* send, void* recv, int64_t count, ElemType type) override {
    if (count) std::memcpy(recv, send, count * ElemBytes(type));
    return Status::Ok();
  }
  Status DoBroadcast(void*, int64_t, ElemType, int) override { return Status::Ok(); }
  Status DoBarrier() override { return Status::Ok(); }
};

}  // namespace

std::unique_ptr<Comm> MakeSelfComm(AxisSet axes) { return std::make_unique<SelfComm>(axes); }

}  // namespace si
