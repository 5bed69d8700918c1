// FakeComm collectives against a serial oracle, determinism, byte counts, mesh groups and --mesh parsing.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <vector>

#include "si/parallel/comm.h"
#include "si/parallel/fake_comm.h"
#include "si/parallel/mesh.h"
#include "si/tensor/dtype.h"

namespace si {
namespace {

// Deterministic per-(rank, tag) data with a wide dynamic range, so summation order matters in f32.
std::vector<float> Data(int rank, int tag, int64_t n) {
  std::mt19937 rng(1000 * tag + rank);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng) * std::ldexp(1.0f, static_cast<int>(rng() % 24) - 12);
  return v;
}

const MeshShape kShapes[] = {{1, 1, 1}, {2, 1, 1}, {1, 3, 1}, {2, 2, 1}, {2, 1, 2}, {2, 2, 2}, {1, 2, 3}};

TEST(Mesh, ParseMesh) {
  EXPECT_EQ(*ParseMesh("2x1x1"), (MeshShape{2, 1, 1}));
  EXPECT_EQ(*ParseMesh("4"), (MeshShape{4, 1, 1}));
  EXPECT_EQ(*ParseMesh("2x2"), (MeshShape{2, 2, 1}));
  for (const char* bad : {"", "x", "2x", "0x2", "2x2x2x2", "a", "2x-1", "2,2", "2x 2"}) {
    auto r = ParseMesh(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--mesh"), std::string::npos) << r.status().message();
  }
}

TEST(Mesh, AxisSets) {
  EXPECT_EQ(ParseAxisSet("yz")->bits, 6);
  EXPECT_EQ(ParseAxisSet("zx")->Name(), "xz");
  EXPECT_FALSE(ParseAxisSet("xx").ok());
  EXPECT_FALSE(ParseAxisSet("w").ok());
}

TEST(Mesh, CoordsAndGroupsMatchCartesianOrder) {
  const MeshShape s{2, 3, 2};
  for (int r = 0; r < s.num_ranks(); ++r) {
    auto c = s.Coords(r);
    EXPECT_EQ(s.RankOf(c), r);
    EXPECT_EQ(s.GroupRank(AxisSet::XYZ(), c), r);  // the world group keeps the world order
    EXPECT_EQ(s.GroupRank(AxisSet::Y(), c), c[1]);
    EXPECT_EQ(s.GroupRank(AxisSet{6}, c), c[1] * 2 + c[2]);
  }
  // Each rank's groups: members share the other coordinates. Check by all-gathering world ranks.
  ASSERT_TRUE(RunFakeMesh(s, [&](Mesh& m) -> Status {
                for (AxisSet a : kAllAxisSets) {
                  Comm& g = m.group(a);
                  EXPECT_EQ(g.size(), s.GroupSize(a));
                  EXPECT_EQ(g.rank(), m.GroupRank(a));
                  std::vector<float> all(g.size());
                  float me = static_cast<float>(m.rank());
                  SI_RETURN_IF_ERROR(g.AllGather(&me, all.data(), 1, ElemType::kF32));
                  for (int j = 0; j < g.size(); ++j) {
                    auto c = m.coords();
                    // Member j: same coordinates outside `a`, row-major index j over `a`.
                    int rem = j;
                    for (int axis = 2; axis >= 0; --axis) {
                      if (a.has(axis)) {
                        c[axis] = rem % s.size(axis);
                        rem /= s.size(axis);
                      }
                    }
                    EXPECT_EQ(all[j], static_cast<float>(s.RankOf(c))) << a.Name() << " j=" << j;
                  }
                }
                return Status::Ok();
              }).ok());
}

TEST(Mesh, Suggest) {
  ModelConfig c;
  c.model_dim = 64;
  c.ffn_dim = 160;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  auto m = SuggestMesh(2, c);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->num_ranks(), 2);
  // 4 does not divide num_kv_heads = 2, but the q and kv widths (64, 32) split 4 ways: attention over the
  // batch (Pope et al. Sec. 3.3) makes the mesh usable.
  auto fits = SuggestMeshes(4, c);
  ASSERT_FALSE(fits.empty());
  EXPECT_TRUE(fits[0].ws2d) << fits[0].reason;
  EXPECT_TRUE(fits[0].batch_attention);
  EXPECT_TRUE(SuggestMesh(4, c).ok());
  // Neither heads (4, kv 2) nor the kv width (2 x 6 = 12) split 8 ways: no mesh, and the reason says why.
  ModelConfig odd = c;
  odd.head_dim = 6;
  fits = SuggestMeshes(8, odd);
  ASSERT_FALSE(fits.empty());
  EXPECT_FALSE(fits[0].ws2d);
  EXPECT_NE(fits[0].reason.find("num_heads"), std::string::npos) << fits[0].reason;
  EXPECT_FALSE(SuggestMesh(8, odd).ok());
  EXPECT_NE(MeshHint(2, c).find("--mesh"), std::string::npos);
  // PaLM-like dims on 64 ranks: x = 4 (0.5 sqrt(64)).
  c.model_dim = 1024;
  c.ffn_dim = 4096;
  c.num_heads = 64;
  c.num_kv_heads = 64;
  auto m64 = SuggestMesh(64, c);
  ASSERT_TRUE(m64.ok());
  EXPECT_EQ(m64->x, 4);
}

// Every collective on every mesh shape and axis set against a serial oracle; bytes by the documented rule.
TEST(FakeComm, CollectivesMatchSerialOracle) {
  const int64_t n = 6;  // elements per block
  for (const MeshShape& s : kShapes) {
    Status st = RunFakeMesh(s, [&](Mesh& m) -> Status {
      for (AxisSet a : kAllAxisSets) {
        Comm& g = m.group(a);
        const int k = g.size();
        // The world ranks of the group members, in group order (via an all-gather).
        std::vector<float> members(k);
        float me = static_cast<float>(m.rank());
        SI_RETURN_IF_ERROR(g.AllGather(&me, members.data(), 1, ElemType::kF32));
        g.ResetStats();
        // all-gather
        auto send = Data(m.rank(), 1, n);
        std::vector<float> recv(k * n);
        SI_RETURN_IF_ERROR(g.AllGather(send.data(), recv.data(), n, ElemType::kF32));
        for (int j = 0; j < k; ++j) {
          auto want = Data(static_cast<int>(members[j]), 1, n);
          EXPECT_EQ(0, std::memcmp(&recv[j * n], want.data(), n * 4)) << s.ToString() << a.Name();
        }
        // reduce-scatter: sum in rank order, bit-exact
        auto big = Data(m.rank(), 2, k * n);
        std::vector<float> out(n);
        SI_RETURN_IF_ERROR(g.ReduceScatter(big.data(), out.data(), n, ElemType::kF32));
        for (int64_t i = 0; i < n; ++i) {
          float acc = Data(static_cast<int>(members[0]), 2, k * n)[g.rank() * n + i];
          for (int j = 1; j < k; ++j) acc += Data(static_cast<int>(members[j]), 2, k * n)[g.rank() * n + i];
          EXPECT_EQ(out[i], acc) << s.ToString() << a.Name();
        }
        // all-reduce (count not a multiple of k: padded)
        const int64_t ar_n = 7;
        auto part = Data(m.rank(), 3, ar_n);
        std::vector<float> red(ar_n);
        SI_RETURN_IF_ERROR(g.AllReduce(part.data(), red.data(), ar_n, ElemType::kF32));
        for (int64_t i = 0; i < ar_n; ++i) {
          float acc = Data(static_cast<int>(members[0]), 3, ar_n)[i];
          for (int j = 1; j < k; ++j) acc += Data(static_cast<int>(members[j]), 3, ar_n)[i];
          EXPECT_EQ(red[i], acc);
        }
        // all-to-all
        auto a2a_in = Data(m.rank(), 4, k * n);
        std::vector<float> a2a_out(k * n);
        SI_RETURN_IF_ERROR(g.AllToAll(a2a_in.data(), a2a_out.data(), n, ElemType::kF32));
        for (int j = 0; j < k; ++j) {
          auto theirs = Data(static_cast<int>(members[j]), 4, k * n);
          EXPECT_EQ(0, std::memcmp(&a2a_out[j * n], &theirs[g.rank() * n], n * 4));
        }
        // broadcast from the last group rank
        std::vector<float> bc = Data(m.rank(), 5, n);
        SI_RETURN_IF_ERROR(g.Broadcast(bc.data(), n, ElemType::kF32, k - 1));
        auto root = Data(static_cast<int>(members[k - 1]), 5, n);
        EXPECT_EQ(0, std::memcmp(bc.data(), root.data(), n * 4));
        SI_RETURN_IF_ERROR(g.Barrier());
        // bytes: (k-1)*count*4 for AG, RS, A2A; 2*(k-1)*ceil(7/k)*4 for AR; broadcast at the root only
        const CommStats& cs = g.stats();
        EXPECT_EQ(cs.bytes(CollectiveKind::kAllGather), (k - 1) * n * 4);
        EXPECT_EQ(cs.bytes(CollectiveKind::kReduceScatter), (k - 1) * n * 4);
        EXPECT_EQ(cs.bytes(CollectiveKind::kAllToAll), (k - 1) * n * 4);
        EXPECT_EQ(cs.bytes(CollectiveKind::kAllReduce), 2 * (k - 1) * ((ar_n + k - 1) / k) * 4);
        EXPECT_EQ(cs.bytes(CollectiveKind::kBroadcast), g.rank() == k - 1 ? (k - 1) * n * 4 : 0);
        EXPECT_EQ(cs.bytes(CollectiveKind::kBarrier), 0);
      }
      return Status::Ok();
    });
    EXPECT_TRUE(st.ok()) << s.ToString() << ": " << st.message();
  }
}

TEST(FakeComm, Bf16ReduceScatterSumsInF32ThenRounds) {
  const MeshShape s{4, 1, 1};
  const int64_t n = 5;
  ASSERT_TRUE(RunFakeMesh(s, [&](Mesh& m) -> Status {
                auto f = Data(m.rank(), 7, 4 * n);
                std::vector<uint16_t> in(4 * n), out(n);
                for (size_t i = 0; i < in.size(); ++i) in[i] = F32ToBF16(f[i]);
                SI_RETURN_IF_ERROR(m.world().ReduceScatter(in.data(), out.data(), n, ElemType::kBF16));
                for (int64_t i = 0; i < n; ++i) {
                  float acc = 0;
                  for (int j = 0; j < 4; ++j) {
                    float v = BF16ToF32(F32ToBF16(Data(j, 7, 4 * n)[m.rank() * n + i]));
                    acc = j == 0 ? v : acc + v;
                  }
                  EXPECT_EQ(out[i], F32ToBF16(acc));
                }
                EXPECT_EQ(m.world().stats().bytes(CollectiveKind::kReduceScatter), 3 * n * 2);
                return Status::Ok();
              }).ok());
}

TEST(FakeComm, DeterministicAcrossRuns) {
  const MeshShape s{2, 2, 2};
  const int64_t n = 1000;
  std::vector<std::vector<float>> first(8);
  for (int run = 0; run < 5; ++run) {
    ASSERT_TRUE(RunFakeMesh(s, [&](Mesh& m) -> Status {
                  auto in = Data(m.rank(), 9, 8 * n);
                  std::vector<float> out(n);
                  SI_RETURN_IF_ERROR(m.world().ReduceScatter(in.data(), out.data(), n, ElemType::kF32));
                  std::vector<float> ar(n);
                  SI_RETURN_IF_ERROR(m.group(AxisSet{6}).AllReduce(out.data(), ar.data(), n, ElemType::kF32));
                  if (run == 0) {
                    first[m.rank()] = ar;
                  } else {
                    EXPECT_EQ(0, std::memcmp(first[m.rank()].data(), ar.data(), n * 4));
                  }
                  return Status::Ok();
                }).ok());
  }
}

TEST(FakeComm, NonBlockingVariants) {
  const MeshShape s{1, 2, 2};
  ASSERT_TRUE(RunFakeMesh(s, [&](Mesh& m) -> Status {
                Comm& g = m.world();
                float me = static_cast<float>(m.rank());
                std::vector<float> all(4);
                SI_ASSIGN_OR_RETURN(auto op, g.StartAllGather(&me, all.data(), 1, ElemType::kF32));
                SI_RETURN_IF_ERROR(op->Wait());
                for (int j = 0; j < 4; ++j) EXPECT_EQ(all[j], j);
                std::vector<float> ones(4, 1.0f);
                float sum = 0;
                SI_ASSIGN_OR_RETURN(auto rs, g.StartReduceScatter(ones.data(), &sum, 1, ElemType::kF32));
                SI_RETURN_IF_ERROR(rs->Wait());
                EXPECT_EQ(sum, 4.0f);
                std::vector<float> a2a(4);
                SI_ASSIGN_OR_RETURN(auto aa, g.StartAllToAll(all.data(), a2a.data(), 1, ElemType::kF32));
                SI_RETURN_IF_ERROR(aa->Wait());
                for (int j = 0; j < 4; ++j) EXPECT_EQ(a2a[j], m.rank());
                EXPECT_EQ(g.stats().bytes(CollectiveKind::kAllGather), 3 * 4);
                return Status::Ok();
              }).ok());
}

TEST(FakeComm, MismatchedCallsFailOnEveryRank) {
  std::atomic<int> failures{0};
  Status st = RunFakeMesh({2, 1, 1}, [&](Mesh& m) -> Status {
    std::vector<float> buf(8), out(16);
    Status s = m.world().AllGather(buf.data(), out.data(), m.rank() == 0 ? 4 : 8, ElemType::kF32);
    if (!s.ok()) ++failures;
    return s;
  });
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(failures.load(), 2);
  EXPECT_NE(st.message().find("mismatched"), std::string::npos) << st.message();
}

TEST(FakeComm, MissingRankTimesOutInsteadOfHanging) {
  FakeMeshOptions opt;
  opt.timeout = std::chrono::milliseconds(200);
  Status st = RunFakeMesh(
      {3, 1, 1},
      [&](Mesh& m) -> Status {
        if (m.rank() == 2) return InternalError("rank 2 failed to open the model");
        return m.world().Barrier();
      },
      opt);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("waited"), std::string::npos) << st.message();
}

TEST(FakeComm, ReductionsRejectBytes) {
  ASSERT_TRUE(RunFakeMesh({1, 1, 1}, [&](Mesh& m) -> Status {
                uint8_t a[2] = {1, 2}, b[2];
                EXPECT_FALSE(m.world().AllReduce(a, b, 2, ElemType::kU8).ok());
                return Status::Ok();
              }).ok());
}

}  // namespace
}  // namespace si
