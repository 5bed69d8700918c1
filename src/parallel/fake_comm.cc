#include "si/parallel/fake_comm.h"

#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "si/base/check.h"

namespace si {
namespace {

// State shared by the ranks of one fake group.
struct FakeGroup {
  int size = 1;
  std::string name;  // "x group at (-, 0, 1)"
  std::chrono::milliseconds timeout{30000};
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  int64_t generation = 0;
  std::string broken;  // set once a rank timed out: every later call fails with it
  struct Slot {
    const void* send = nullptr;
    void* recv = nullptr;
    CollectiveKind kind = CollectiveKind::kBarrier;
    int64_t count = 0;
    ElemType type = ElemType::kU8;
    int root = 0;
  };
  std::vector<Slot> slots;

  // A reusable barrier with a timeout.
  Status Arrive(int rank) {
    std::unique_lock<std::mutex> lk(mu);
    if (!broken.empty()) return InternalError(broken);
    const int64_t gen = generation;
    if (++arrived == size) {
      arrived = 0;
      ++generation;
      cv.notify_all();
      return Status::Ok();
    }
    const bool done = cv.wait_for(lk, timeout, [&] { return generation != gen || !broken.empty(); });
    if (generation != gen) return Status::Ok();
    if (!done) {
      broken = StrCat("fake comm ", name, ": rank ", rank, " waited ", timeout.count(),
                      " ms for the other ranks of the group (a rank failed or skipped a collective)");
      cv.notify_all();
    }
    --arrived;
    return InternalError(broken);
  }
};

std::string SlotString(const FakeGroup::Slot& s) {
  return StrCat(CollectiveName(s.kind), "(count ", s.count, ", ", ElemTypeName(s.type),
                s.kind == CollectiveKind::kBroadcast ? StrCat(", root ", s.root) : "", ")");
}

class FakeComm : public Comm {
 public:
  FakeComm(std::shared_ptr<FakeGroup> g, int rank, AxisSet axes)
      : Comm(g->size, rank, axes), g_(std::move(g)) {}

 protected:
  Status DoAllGather(const void* send, void* recv, int64_t count, ElemType type) override {
    return Run({send, recv, CollectiveKind::kAllGather, count, type, 0}, [&] {
      const int64_t b = count * ElemBytes(type);
      for (int j = 0; j < size(); ++j) {
        if (b) std::memcpy(static_cast<uint8_t*>(recv) + j * b, g_->slots[j].send, b);
      }
    });
  }
  Status DoReduceScatter(const void* send, void* recv, int64_t count, ElemType type) override {
    return Run({send, recv, CollectiveKind::kReduceScatter, count, type, 0}, [&] {
      const int64_t b = count * ElemBytes(type);
      std::vector<const void*> parts(size());
      for (int j = 0; j < size(); ++j) {
        parts[j] = static_cast<const uint8_t*>(g_->slots[j].send) + rank() * b;
      }
      SerialSum(parts.data(), size(), count, type, recv);
    });
  }
  Status DoAllToAll(const void* send, void* recv, int64_t count, ElemType type) override {
    return Run({send, recv, CollectiveKind::kAllToAll, count, type, 0}, [&] {
      const int64_t b = count * ElemBytes(type);
      for (int j = 0; j < size(); ++j) {
        if (b) {
          std::memcpy(static_cast<uint8_t*>(recv) + j * b,
                      static_cast<const uint8_t*>(g_->slots[j].send) + rank() * b, b);
        }
      }
    });
  }
  Status DoBroadcast(void* buf, int64_t count, ElemType type, int root) override {
    return Run({buf, buf, CollectiveKind::kBroadcast, count, type, root}, [&] {
      if (rank() != root && count) {
        std::memcpy(buf, g_->slots[root].send, count * ElemBytes(type));
      }
    });
  }
  Status DoBarrier() override {
    return Run({nullptr, nullptr, CollectiveKind::kBarrier, 0, ElemType::kU8, 0}, [] {});
  }

 private:
  template <typename F>
  Status Run(FakeGroup::Slot slot, F&& work) {
    {
      std::lock_guard<std::mutex> lk(g_->mu);
      g_->slots[rank()] = slot;
    }
    SI_RETURN_IF_ERROR(g_->Arrive(rank()));
    // Every rank sees the same slots, so every rank takes the same branch here.
    for (int j = 0; j < size(); ++j) {
      const FakeGroup::Slot& o = g_->slots[j];
      const FakeGroup::Slot& r0 = g_->slots[0];
      if (o.kind != r0.kind || o.count != r0.count || o.type != r0.type || o.root != r0.root) {
        Status s = InternalError("fake comm ", g_->name, ": mismatched collectives: rank 0 called ",
                                 SlotString(r0), ", rank ", j, " called ", SlotString(o));
        // Keep the phases aligned so the group stays usable for the error path.
        (void)g_->Arrive(rank());
        return s;
      }
    }
    work();
    return g_->Arrive(rank());
  }

  std::shared_ptr<FakeGroup> g_;
};

}  // namespace

std::vector<std::unique_ptr<Mesh>> MakeFakeMeshes(const MeshShape& shape,
                                                  const FakeMeshOptions& options) {
  const int n = shape.num_ranks();
  SI_CHECK(n >= 1);
  // (axis set, coordinates outside the set) -> group.
  std::map<std::pair<int, std::array<int, 3>>, std::shared_ptr<FakeGroup>> groups;
  std::vector<std::unique_ptr<Mesh>> meshes;
  for (int r = 0; r < n; ++r) {
    const auto c = shape.Coords(r);
    std::array<std::unique_ptr<Comm>, 8> comms;
    for (int b = 0; b < 8; ++b) {
      const AxisSet s{static_cast<uint8_t>(b)};
      const int k = shape.GroupSize(s);
      if (k == 1) {
        comms[b] = MakeSelfComm(s);
        continue;
      }
      std::array<int, 3> key = c;
      for (int a = 0; a < 3; ++a) {
        if (s.has(a)) key[a] = -1;
      }
      auto& g = groups[{b, key}];
      if (!g) {
        g = std::make_shared<FakeGroup>();
        g->size = k;
        g->timeout = options.timeout;
        g->slots.resize(k);
        g->name = StrCat(s.Name(), " group at (", key[0] < 0 ? "-" : std::to_string(key[0]), ", ",
                         key[1] < 0 ? "-" : std::to_string(key[1]), ", ",
                         key[2] < 0 ? "-" : std::to_string(key[2]), ")");
      }
      comms[b] = std::make_unique<FakeComm>(g, shape.GroupRank(s, c), s);
    }
    meshes.push_back(std::make_unique<Mesh>(shape, r, std::move(comms)));
  }
  return meshes;
}

Status RunFakeMesh(const MeshShape& shape, const std::function<Status(Mesh&)>& fn,
                   const FakeMeshOptions& options) {
  auto meshes = MakeFakeMeshes(shape, options);
  std::vector<Status> status(meshes.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < meshes.size(); ++r) {
    threads.emplace_back([&, r] { status[r] = fn(*meshes[r]); });
  }
  for (auto& t : threads) t.join();
  for (size_t r = 0; r < status.size(); ++r) {
    if (!status[r].ok()) return status[r].WithContext(StrCat("rank ", r));
  }
  return Status::Ok();
}

}  // namespace si
