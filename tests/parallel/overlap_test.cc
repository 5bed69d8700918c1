// The looped collective matmul (ShardedMatMul with a MatMulWorkspace, overlap on) against the
// blocking path: the SwiGLU FFN of a synthetic llama under every layout on several fake meshes,
// with row chunks (prefill), column chunks (decode) and the cross-call weight prefetch, must give
// bit-identical outputs and send exactly the same bytes (the chunks split the collectives, never
// the contraction dim). Chunk sizes are shrunk so that the small model still gets several (uneven)
// chunks per collective.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <mutex>

#include "si/model/loader.h"
#include "si/model/synthetic.h"
#include "si/parallel/fake_comm.h"
#include "si/parallel/sharded_matmul.h"

namespace si {
namespace {

struct FfnRun {
  std::vector<std::vector<float>>
      out;                     // per rank: gate, up (resolved) and down outputs, concatenated
  std::vector<int64_t> bytes;  // per rank
  int64_t calls = 0;           // collectives started, all ranks (chunking splits them)
};

// Runs gate/up + down on every rank; `mode` 0: no workspace (blocking), 1: workspace with overlap
// off, 2: overlap on (with the hint that the down projection follows the gate/up call).
FfnRun RunFfn(const Model& model, const MeshShape& shape, FfnLayout layout, int64_t T, int mode,
              const OverlapOptions& opt, const Kernels& k, Status* status) {
  const ModelConfig& c = model.config();
  const int64_t E = c.model_dim;
  std::vector<float> x(T * E);
  for (int64_t i = 0; i < T * E; ++i) x[i] = std::sin(0.37f * i) * 0.5f + 0.01f * (i % 7);
  FfnRun run;
  run.out.resize(shape.num_ranks());
  run.bytes.resize(shape.num_ranks());
  std::mutex mu;
  const WeightTable table = GetLayoutRule(layout).weights;
  *status = RunFakeMesh(shape, [&](Mesh& mesh) -> Status {
    SI_ASSIGN_OR_RETURN(auto w, ShardedWeights::Load(model, shape, mesh.coords(), table));
    ShardedAct a;
    a.dim = E;
    a.spec = ResidualSpec(layout);
    int64_t t0, tn, e0, en;
    a.spec.rows.Block(shape, mesh.coords(), T, &t0, &tn);
    a.spec.cols.Block(shape, mesh.coords(), E, &e0, &en);
    a.rows = tn;
    for (int64_t t = t0; t < t0 + tn; ++t)
      a.data.insert(a.data.end(), &x[t * E + e0], &x[t * E + e0 + en]);
    const auto used = [&](Role r) { return UsedSpec(layout, r); };
    OverlapOptions o = opt;
    o.enabled = mode == 2;
    MatMulWorkspace ws(o);
    MatMulWorkspace* work = mode == 0 ? nullptr : &ws;
    std::vector<float> all;
    for (int pass = 0; pass < 2; ++pass) {  // twice: the second reuses the workspace's buffers
      if (work) ws.SetNextWeight(&w->Get(Role::kWdown), used(Role::kWdown));
      SI_ASSIGN_OR_RETURN(
          auto gu, ShardedMatMul(mesh, k, a, {&w->Get(Role::kWgate), &w->Get(Role::kWup)},
                                 {used(Role::kWgate), used(Role::kWup)}, true, nullptr, work));
      ShardedAct hid = gu[1];
      k.silu_mul(gu[0].data.data(), gu[1].data.data(), static_cast<int64_t>(hid.data.size()),
                 hid.data.data());
      // The down projection twice: resolved, and as partial sums (the parallel block's path).
      SI_ASSIGN_OR_RETURN(ShardedAct down, ShardedMatMul(mesh, k, hid, w->Get(Role::kWdown),
                                                         used(Role::kWdown), true, nullptr, work));
      SI_ASSIGN_OR_RETURN(ShardedAct part, ShardedMatMul(mesh, k, hid, w->Get(Role::kWdown),
                                                         used(Role::kWdown), false, nullptr, work));
      if (work) SI_RETURN_IF_ERROR(ws.Drain());
      if (down.spec.ToString() != a.spec.ToString()) {
        return InternalError("output spec ", down.spec.ToString(), " != ", a.spec.ToString());
      }
      for (const ShardedAct* s : {&gu[0], &gu[1], &down, &part})
        all.insert(all.end(), s->data.begin(), s->data.end());
    }
    std::lock_guard<std::mutex> lk(mu);
    run.out[mesh.rank()] = std::move(all);
    run.bytes[mesh.rank()] = mesh.TotalBytesSent();
    for (AxisSet g : kAllAxisSets) {
      for (int64_t c : mesh.group(g).stats().calls) run.calls += c;
    }
    return Status::Ok();
  });
  return run;
}

void CheckOverlap(DType dtype, const std::vector<MeshShape>& meshes,
                  const std::vector<int64_t>& tokens) {
  auto cfg =
      SyntheticConfig(Arch::kLlama, "layers=1,dim=128,heads=8,kv_heads=4,ff=256,vocab=512,ctx=64");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  SyntheticSpec spec;
  spec.config = *cfg;
  spec.seed = 5;
  spec.dtype = dtype;
  const std::string path = (std::filesystem::temp_directory_path() /
                            StrCat("si_overlap_", DTypeName(dtype), "_", getpid(), ".gguf"))
                               .string();
  ASSERT_TRUE(WriteSyntheticModel(spec, path).ok());
  auto model = Model::Load(path);
  ASSERT_TRUE(model.ok()) << model.status().message();
  // Small chunks so the 128/256-wide matrices still split: uneven row chunks of >= 3 tokens, column
  // chunks of >= 8 weight rows, at most 3 per collective.
  const OverlapOptions opt{.enabled = true,
                           .max_chunks = 3,
                           .min_chunk_rows = 3,
                           .min_chunk_cols = 8,
                           .min_chunk_bytes = 0};
  int combos = 0, chunked = 0;
  for (const Kernels* k : {&ReferenceKernels(), &BestKernels()}) {
    for (FfnLayout layout : analysis::kAllLayouts) {
      for (const MeshShape& shape : meshes) {
        for (int64_t T : tokens) {
          if (T % shape.num_ranks() != 0) continue;  // token-split layouts split T over every rank
          const std::string where =
              StrCat(DTypeName(dtype), " ", k->name, " ", analysis::LayoutName(layout), " on ",
                     shape.ToString(), ", ", T, " tokens");
          Status s0, s1, s2;
          const FfnRun blocking = RunFfn(**model, shape, layout, T, 0, opt, *k, &s0);
          const FfnRun off = RunFfn(**model, shape, layout, T, 1, opt, *k, &s1);
          const FfnRun on = RunFfn(**model, shape, layout, T, 2, opt, *k, &s2);
          ASSERT_TRUE(s0.ok() && s1.ok() && s2.ok())
              << where << ": " << s0.message() << " / " << s1.message() << " / " << s2.message();
          for (int r = 0; r < shape.num_ranks(); ++r) {
            EXPECT_FALSE(blocking.out[r].empty()) << where;
            EXPECT_TRUE(off.out[r] == blocking.out[r])
                << where << " rank " << r << ": workspace, overlap off";
            EXPECT_TRUE(on.out[r] == blocking.out[r])
                << where << " rank " << r << ": overlap on not bit-identical";
            EXPECT_EQ(off.bytes[r], blocking.bytes[r]) << where << " rank " << r;
            EXPECT_EQ(on.bytes[r], blocking.bytes[r]) << where << " rank " << r;
          }
          ++combos;
          chunked += on.calls > blocking.calls ? 1 : 0;
        }
      }
    }
  }
  std::printf(
      "%s: %d combinations bit-identical with overlap on / off / no workspace (%d with split "
      "collectives)\n",
      DTypeName(dtype).data(), combos, chunked);
  EXPECT_GT(chunked, combos / 2) << "the overlap path should split most collectives into chunks";
  std::filesystem::remove(path);
}

// Rows per rank below 2 * min_chunk_rows (6) take column chunks (decode), others row chunks: 4
// tokens (1 to 4 rows per rank), 8 (row chunks on replicated layouts, columns on token-split ones),
// 56 (uneven row chunks everywhere: 56 = 18 + 19 + 19, 7 = 3 + 4 on 8 token shards).
TEST(Overlap, BitIdenticalToBlockingF32) {
  CheckOverlap(
      DType::kF32,
      {{2, 1, 1}, {1, 2, 1}, {1, 1, 2}, {2, 2, 1}, {1, 2, 2}, {2, 1, 2}, {4, 1, 1}, {2, 2, 2}},
      {4, 8, 56});
}

TEST(Overlap, BitIdenticalToBlockingQ8) {
  CheckOverlap(DType::kQ8_0, {{2, 2, 1}, {1, 2, 2}, {2, 1, 1}}, {4, 56});
}

// Test() after completion and Wait() after Test(): FakeComm completes at start, the op reports
// done.
TEST(Overlap, PendingOpTest) {
  Status st = RunFakeMesh({2, 1, 1}, [](Mesh& mesh) -> Status {
    Comm& g = mesh.group(AxisSet::X());
    const float send[2] = {1.0f + g.rank(), 2.0f};
    float recv[1] = {0};
    SI_ASSIGN_OR_RETURN(auto op, g.StartReduceScatter(send, recv, 1, ElemType::kF32));
    if (!op->Test()) return InternalError("not done");
    SI_RETURN_IF_ERROR(op->Wait());
    const float want = g.rank() == 0 ? 3.0f : 4.0f;
    if (recv[0] != want) return InternalError("got ", recv[0]);
    return Status::Ok();
  });
  EXPECT_TRUE(st.ok()) << st.message();
}

}  // namespace
}  // namespace si
