// Run under mpirun (CTest: parallel_mpi_np2, parallel_mpi_np4):
//   mpirun --oversubscribe --allow-run-as-root -np N parallel_mpi_test --mesh XxYxZ
// Checks on every rank, reports on rank 0, exit code 0 only if every rank passed:
//   - the mesh groups (MPI_Cart_sub) have the sizes and orders of mesh.h;
//   - every collective over every axis group equals FakeComm's result BIT-FOR-BIT (each rank runs the
//     same collectives on an in-process fake mesh of the same shape and compares its own outputs), and the
//     non-blocking variants equal the blocking ones;
//   - bytes counted by MpiComm for one layer of every layout equal the analytical model's prediction;
//   - a --mesh that does not match the rank count fails on every rank with a clear error (no hang).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "si/analysis/cost_model.h"
#include "si/analysis/hardware.h"
#include "si/parallel/comm.h"
#include "si/parallel/fake_comm.h"
#include "si/parallel/mpi_comm.h"
#include "si/parallel/partition.h"
#include "si/tensor/dtype.h"

namespace si {
namespace {

int g_failures = 0;
int g_rank = 0;
#define EXPECT_TRUE_MPI(cond, ...)                                                          \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      ++g_failures;                                                                         \
      std::fprintf(stderr, "rank %d: %s:%d: FAILED %s %s\n", g_rank, __FILE__, __LINE__, #cond, \
                   StrCat(__VA_ARGS__).c_str());                                            \
    }                                                                                       \
  } while (0)

std::vector<float> Data(int rank, int tag, int64_t n) {
  std::mt19937 rng(1000 * tag + rank);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng) * std::ldexp(1.0f, static_cast<int>(rng() % 24) - 12);
  return v;
}

// The outputs of a fixed sequence of collectives on every axis group, as one byte string.
Result<std::vector<uint8_t>> Exercise(Mesh& m, bool nonblocking) {
  std::vector<uint8_t> out;
  auto append = [&](const void* p, size_t n) {
    out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  };
  const int64_t n = 33;
  for (AxisSet a : kAllAxisSets) {
    Comm& g = m.group(a);
    const int k = g.size();
    auto send = Data(m.rank(), 1 + a.bits, k * n);
    std::vector<float> ag(k * n), rs(n), aa(k * n), ar(n);
    if (nonblocking) {
      SI_ASSIGN_OR_RETURN(auto p1, g.StartAllGather(send.data(), ag.data(), n, ElemType::kF32));
      SI_ASSIGN_OR_RETURN(auto p2, g.StartReduceScatter(send.data(), rs.data(), n, ElemType::kF32));
      SI_ASSIGN_OR_RETURN(auto p3, g.StartAllToAll(send.data(), aa.data(), n, ElemType::kF32));
      SI_RETURN_IF_ERROR(p3->Wait());
      SI_RETURN_IF_ERROR(p1->Wait());
      SI_RETURN_IF_ERROR(p2->Wait());
    } else {
      SI_RETURN_IF_ERROR(g.AllGather(send.data(), ag.data(), n, ElemType::kF32));
      SI_RETURN_IF_ERROR(g.ReduceScatter(send.data(), rs.data(), n, ElemType::kF32));
      SI_RETURN_IF_ERROR(g.AllToAll(send.data(), aa.data(), n, ElemType::kF32));
    }
    SI_RETURN_IF_ERROR(g.AllReduce(send.data(), ar.data(), n, ElemType::kF32));
    std::vector<uint16_t> b16(k * n), b16_out(n);
    for (size_t i = 0; i < b16.size(); ++i) b16[i] = F32ToBF16(send[i]);
    SI_RETURN_IF_ERROR(g.ReduceScatter(b16.data(), b16_out.data(), n, ElemType::kBF16));
    std::vector<float> bc = send;
    SI_RETURN_IF_ERROR(g.Broadcast(bc.data(), n, ElemType::kF32, k - 1));
    SI_RETURN_IF_ERROR(g.Barrier());
    append(ag.data(), ag.size() * 4);
    append(rs.data(), rs.size() * 4);
    append(aa.data(), aa.size() * 4);
    append(ar.data(), ar.size() * 4);
    append(b16_out.data(), b16_out.size() * 2);
    append(bc.data(), n * 4);
    float me = static_cast<float>(m.GroupRank(a));
    std::vector<float> ranks(k);
    SI_RETURN_IF_ERROR(g.AllGather(&me, ranks.data(), 1, ElemType::kF32));
    for (int j = 0; j < k; ++j) EXPECT_TRUE_MPI(ranks[j] == j, "group ", a.Name(), " order");
  }
  return out;
}

ModelConfig LlamaConfig() {
  ModelConfig c;
  c.arch = Arch::kLlama;
  ApplyArchTraits(c);
  c.name = "llama-test";
  c.vocab_size = 256;
  c.model_dim = 64;
  c.ffn_dim = 128;
  c.num_layers = 2;
  c.num_heads = 8;
  c.num_kv_heads = 8;
  c.head_dim = 8;
  c.rope_dims = 8;
  c.context_len = 64;
  return c;
}

void ByteAccounting(Mesh& m) {
  auto hw = analysis::LoadHardware("tpu-v4");
  EXPECT_TRUE_MPI(hw.ok(), "hardware");
  if (!hw.ok()) return;
  const ModelConfig c = LlamaConfig();
  analysis::AnalysisModel am;
  am.config = c;
  am.nominal_params = 1;
  const int64_t batch = 8, len = 4, tokens = batch * len;
  for (FfnLayout layout : analysis::kAllLayouts) {
    for (AttnSharding attn : {AttnSharding::kHeads, AttnSharding::kBatch}) {
      auto p = DeriveLayerProgram(c, m.shape(), layout, attn, batch);
      EXPECT_TRUE_MPI(p.ok(), p.status().message());
      if (!p.ok()) continue;
      m.ResetStats();
      for (const CollectiveStep& s : p->steps) {
        Comm& g = m.group(s.axes);
        const int k = g.size();
        const int64_t n = s.Elements(tokens);
        std::vector<uint16_t> a(n, 0), b(n, 0);
        Status st;
        switch (s.kind) {
          case CollectiveKind::kAllGather: st = g.AllGather(a.data(), b.data(), n / k, ElemType::kBF16); break;
          case CollectiveKind::kReduceScatter:
            st = g.ReduceScatter(a.data(), b.data(), n / k, ElemType::kBF16);
            break;
          case CollectiveKind::kAllToAll: st = g.AllToAll(a.data(), b.data(), n / k, ElemType::kBF16); break;
          case CollectiveKind::kAllReduce: st = g.AllReduce(a.data(), b.data(), n, ElemType::kBF16); break;
          default: st = InternalError("unexpected");
        }
        EXPECT_TRUE_MPI(st.ok(), st.message());
      }
      analysis::PlanRequest req;
      req.chips = m.num_ranks();
      req.batch = batch;
      req.input_len = len;
      req.gen_len = 0;
      req.weight_bytes = 2;
      const auto pc = analysis::EvaluatePhase(am, *hw, analysis::Mesh{m.shape().x, m.shape().y, m.shape().z},
                                              analysis::Phase::kPrefill, layout, attn, req);
      double model = 0;
      for (const auto& cc : pc.collectives) model += cc.bytes * (cc.group - 1) / cc.group;
      const int64_t counted = m.TotalBytesSent();
      const int64_t norm_stats = p->BytesSent(tokens, 2, 2) - p->BytesSent(tokens, 2, 2, true);
      EXPECT_TRUE_MPI(static_cast<double>(counted - norm_stats) == model, analysis::LayoutName(layout), "/",
                      analysis::AttnName(attn), ": counted ", counted, " - norm stats ", norm_stats,
                      " != model ", model);
      if (m.rank() == 0) {
        std::printf("  %-7s %-6s counted %7lld bytes/rank/layer (norm stats %lld), model %9.0f\n",
                    analysis::LayoutName(layout).data(), analysis::AttnName(p->attn).data(),
                    static_cast<long long>(counted), static_cast<long long>(norm_stats), model);
      }
    }
  }
}

int Main(int argc, char** argv) {
  auto session = MpiSession::Init(&argc, &argv);
  if (!session.ok()) {
    std::fprintf(stderr, "%s\n", session.status().message().c_str());
    return 2;
  }
  g_rank = (*session)->world_rank();
  std::string mesh_text = StrCat((*session)->world_size(), "x1x1");
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--mesh") mesh_text = argv[i + 1];
  }
  auto shape = ParseMesh(mesh_text);
  if (!shape.ok()) MpiAbortAll(shape.status());
  // Failure drills (CTest checks that mpirun returns promptly): rank 1 fails while the others wait in a
  // collective. --fail-rank: it reports with MpiAbortAll (e.g. cannot open the file); --die-rank: it exits
  // without MPI_Finalize (a crash).
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg != "--fail-rank" && arg != "--die-rank") continue;
    auto mesh = MakeMpiMesh(*shape);
    if (!mesh.ok()) MpiAbortAll(mesh.status());
    if (g_rank == 1) {
      if (arg == "--fail-rank") MpiAbortAll(IoError("cannot open model.gguf: No such file (drill)"));
      std::fprintf(stderr, "rank 1: dying without MPI_Finalize (drill)\n");
      std::_Exit(3);
    }
    Status s = (*mesh)->world().Barrier();  // never completes: rank 1 is gone
    std::fprintf(stderr, "rank %d: barrier returned %s\n", g_rank, s.ToString().c_str());
    return 1;
  }
  {
    // A mesh that does not match the rank count: an error on every rank, no hang.
    MeshShape wrong = *shape;
    wrong.x += 1;
    auto bad = MakeMpiMesh(wrong);
    EXPECT_TRUE_MPI(!bad.ok() && bad.status().message().find("mpirun started") != std::string::npos,
                    bad.ok() ? "ok" : bad.status().message());
    if (g_rank == 0 && !bad.ok()) std::printf("expected error: %s\n", bad.status().message().c_str());
  }
  {
    auto mesh = MakeMpiMesh(*shape);
    if (!mesh.ok()) MpiAbortAll(mesh.status());
    Mesh& m = **mesh;
    if (g_rank == 0) std::printf("mesh %s on %d ranks\n", shape->ToString().c_str(), m.num_ranks());
    auto mpi_out = Exercise(m, false);
    if (!mpi_out.ok()) MpiAbortAll(mpi_out.status());
    auto mpi_nb = Exercise(m, true);
    if (!mpi_nb.ok()) MpiAbortAll(mpi_nb.status());
    EXPECT_TRUE_MPI(*mpi_out == *mpi_nb, "non-blocking differs from blocking");
    // The same on an in-process fake mesh; compare this rank's bytes.
    std::vector<uint8_t> fake_out;
    Status st = RunFakeMesh(*shape, [&](Mesh& fm) -> Status {
      auto r = Exercise(fm, false);
      if (!r.ok()) return r.status();
      if (fm.rank() == g_rank) fake_out = *r;
      return Status::Ok();
    });
    EXPECT_TRUE_MPI(st.ok(), st.message());
    EXPECT_TRUE_MPI(fake_out == *mpi_out, "MpiComm results differ from FakeComm (", fake_out.size(), " vs ",
                    mpi_out->size(), " bytes)");
    ByteAccounting(m);
    int total = 0;
    // Count failures across ranks with a float all-reduce (exact for small integers).
    float lf = static_cast<float>(g_failures), tf = 0;
    Status s2 = m.world().AllReduce(&lf, &tf, 1, ElemType::kF32);
    if (!s2.ok()) MpiAbortAll(s2);
    total = static_cast<int>(tf);
    if (g_rank == 0) std::printf("%s: %d failure(s) over %d ranks\n", total ? "FAIL" : "PASS", total, m.num_ranks());
    g_failures = total;
  }
  return g_failures ? 1 : 0;
}

}  // namespace
}  // namespace si

int main(int argc, char** argv) { return si::Main(argc, argv); }
