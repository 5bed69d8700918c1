// Partition specs: the tables, the derived collectives per layout, and the byte accounting against the
// analytical model (cost_model.cc) run through FakeComm.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "si/analysis/cost_model.h"
#include "si/analysis/hardware.h"
#include "si/parallel/fake_comm.h"
#include "si/parallel/partition.h"

namespace si {
namespace {

using analysis::kAllLayouts;
using analysis::LayoutName;

ModelConfig Config(Arch arch, int64_t e, int64_t f, int64_t h, int64_t kv, int64_t hd) {
  ModelConfig c;
  c.arch = arch;
  ApplyArchTraits(c);
  c.name = StrCat(ArchName(arch), "-e", e, "-h", h, "-kv", kv);
  c.vocab_size = 256;
  c.model_dim = e;
  c.ffn_dim = f;
  c.num_layers = 2;
  c.num_heads = h;
  c.num_kv_heads = kv;
  c.head_dim = hd;
  c.rope_dims = hd;
  c.context_len = 64;
  return c;
}

std::vector<ModelConfig> Configs() {
  return {
      Config(Arch::kLlama, 64, 128, 8, 8, 8),   // MHA, SwiGLU, serial
      Config(Arch::kLlama, 64, 128, 8, 4, 8),   // GQA
      Config(Arch::kGpt2, 64, 256, 8, 8, 8),    // fused QKV, GELU, serial
      Config(Arch::kFalcon, 64, 256, 8, 1, 8),  // multiquery, fused QKV, parallel block
      Config(Arch::kFalcon, 64, 256, 8, 8, 8),  // parallel block, MHA
  };
}

const MeshShape kMeshes[] = {{2, 1, 1}, {1, 2, 1}, {1, 1, 2}, {2, 2, 1},
                             {1, 2, 2}, {2, 1, 2}, {2, 2, 2}, {4, 1, 1}};

TEST(Specs, TablesAsInThePaper) {
  // E_x F_yz, shared by 2D weight-stationary and weight-gathered (Pope §3.2.3).
  EXPECT_EQ(StoredSpec(WeightTable::kEXFyz, Role::kWup).ToString(), "[yz, x]");
  EXPECT_EQ(StoredSpec(WeightTable::kEXFyz, Role::kWdown).ToString(), "[x, yz]");
  EXPECT_EQ(StoredSpec(WeightTable::kEXFyz, Role::kWq).ToString(), "[yz, x]");
  EXPECT_EQ(StoredSpec(WeightTable::kEXFyz, Role::kWo).ToString(), "[x, yz]");
  EXPECT_EQ(StoredSpec(WeightTable::k1d, Role::kWup).ToString(), "[xyz, -]");
  EXPECT_EQ(StoredSpec(WeightTable::k1d, Role::kWdown).ToString(), "[-, xyz]");
  EXPECT_EQ(ResidualSpec(FfnLayout::k2dWs).ToString(), "[-, xyz]");    // BLE_xyz
  EXPECT_EQ(ResidualSpec(FfnLayout::kWgX).ToString(), "[x, yz]");      // B_x L E_yz
  EXPECT_EQ(ResidualSpec(FfnLayout::kWgXy).ToString(), "[xy, z]");     // B_xy L E_z
  EXPECT_EQ(ResidualSpec(FfnLayout::kWgXyz).ToString(), "[xyz, -]");   // B_xyz L E
  EXPECT_EQ(UsedSpec(FfnLayout::kWgXy, Role::kWup).ToString(), "[Yz, -]");  // EF_z after gathering xy
  EXPECT_EQ(UsedSpec(FfnLayout::kWgXyz, Role::kWdown).ToString(), "[-, -]");
}

TEST(Specs, DimShardingAlgebra) {
  DimSharding f("yz");
  EXPECT_EQ(f.Appended(AxisSet::X()).str(), "yzx");
  AxisSet s;
  EXPECT_TRUE(DimSharding("yzx").MinorSuffixOver(f, &s));
  EXPECT_EQ(s, AxisSet::X());
  EXPECT_FALSE(DimSharding("xyz").MinorSuffixOver(f, &s));
  EXPECT_EQ(DimSharding("zY").str(), "z");
  EXPECT_EQ(f.Gathered(AxisSet::Y()).str(), "Yz");
  const MeshShape m{2, 3, 2};
  int64_t b, n;
  DimSharding("yz").Block(m, {1, 2, 1}, 60, &b, &n);
  EXPECT_EQ(n, 10);
  EXPECT_EQ(b, (2 * 2 + 1) * 10);
}

TEST(Specs, EveryRoleOfEveryArchIsCovered) {
  for (Arch arch : {Arch::kLlama, Arch::kGpt2, Arch::kFalcon, Arch::kBert}) {
    for (const ArchRole& ar : ArchRoles(arch)) {
      const RoleInfo& info = GetRoleInfo(ar.role);
      for (WeightTable t : {WeightTable::kEXFyz, WeightTable::k1d}) {
        TensorSpec s = StoredSpec(t, ar.role);
        if (info.op == OpKind::kMatMul) {
          // Every matmul weight is split on at least one dim (no full replication of matrices).
          EXPECT_FALSE(s.rows.replicated() && s.cols.replicated()) << info.gguf_name;
          // Rows and cols never share a mesh axis.
          EXPECT_TRUE((s.rows.all() & s.cols.all()).empty()) << info.gguf_name;
          // Every mesh axis splits the weight somewhere: memory per rank ~ 1/N.
          EXPECT_EQ((s.rows.all() | s.cols.all()), AxisSet::XYZ()) << info.gguf_name;
        }
      }
    }
  }
}

TEST(Specs, TwoDimWeightStationaryTrace) {
  ModelConfig c = Config(Arch::kLlama, 64, 128, 8, 8, 8);
  auto p = DeriveLayerProgram(c, {2, 2, 1}, FfnLayout::k2dWs, AttnSharding::kHeads, 4);
  ASSERT_TRUE(p.ok()) << p.status().message();
  std::string trace;
  for (const auto& t : p->trace) trace += t + "\n";
  // Pope Fig. 2b: all-gather(yz) -> BLE_x; einsum -> BLF_yz partialsum-x; reduce-scatter(x) -> BLF_yzx;
  // all-gather(x) -> BLF_yz; einsum -> BLE_x partialsum-yz; reduce-scatter(yz) -> BLE_xyz.
  EXPECT_NE(trace.find("ffn_up.weight out [-, yz] partialsum-x"), std::string::npos) << trace;
  EXPECT_NE(trace.find("ffn_up.weight out [-, yzx]"), std::string::npos) << trace;
  EXPECT_NE(trace.find("ffn_down.weight out [-, x] partialsum-yz"), std::string::npos) << trace;
}

TEST(Specs, ClearErrors) {
  ModelConfig mq = Config(Arch::kFalcon, 64, 256, 8, 1, 8);
  auto r = DeriveLayerProgram(mq, {2, 2, 1}, FfnLayout::k2dWs, AttnSharding::kHeads, 4);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("num_kv_heads 1"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("--attention batch"), std::string::npos) << r.status().message();
  ModelConfig c = Config(Arch::kLlama, 64, 96, 6, 6, 8);
  auto r2 = DeriveLayerProgram(c, {1, 2, 2}, FfnLayout::k2dWs, AttnSharding::kHeads, 4);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.status().message().find("divisible by 4"), std::string::npos) << r2.status().message();
  EXPECT_NE(r2.status().message().find("--mesh"), std::string::npos) << r2.status().message();
  auto r3 = DeriveLayerProgram(Config(Arch::kLlama, 64, 128, 8, 8, 8), {2, 2, 1}, FfnLayout::kWgXy,
                               AttnSharding::kBatch, 2);
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.status().message().find("batch 2"), std::string::npos) << r3.status().message();
}

// Runs every step of `p` on the fake mesh (bf16 payloads) and returns rank 0's counted bytes.
int64_t RunProgram(const LayerProgram& p, int64_t tokens) {
  std::vector<int64_t> bytes(p.mesh.num_ranks());
  Status st = RunFakeMesh(p.mesh, [&](Mesh& m) -> Status {
    for (const CollectiveStep& s : p.steps) {
      Comm& g = m.group(s.axes);
      const int k = g.size();
      const int64_t n = s.Elements(tokens);
      std::vector<uint16_t> a(n, 0), b(n, 0);
      switch (s.kind) {
        case CollectiveKind::kAllGather:
          SI_RETURN_IF_ERROR(g.AllGather(a.data(), b.data(), n / k, ElemType::kBF16));
          break;
        case CollectiveKind::kReduceScatter:
          SI_RETURN_IF_ERROR(g.ReduceScatter(a.data(), b.data(), n / k, ElemType::kBF16));
          break;
        case CollectiveKind::kAllToAll:
          SI_RETURN_IF_ERROR(g.AllToAll(a.data(), b.data(), n / k, ElemType::kBF16));
          break;
        case CollectiveKind::kAllReduce:
          SI_RETURN_IF_ERROR(g.AllReduce(a.data(), b.data(), n, ElemType::kBF16));
          break;
        default:
          return InternalError("unexpected step");
      }
    }
    bytes[m.rank()] = m.TotalBytesSent();
    return Status::Ok();
  });
  EXPECT_TRUE(st.ok()) << st.message();
  for (int64_t b : bytes) EXPECT_EQ(b, bytes[0]) << "ranks send different volumes";
  return bytes[0];
}

// The acceptance test of the issue: bytes counted by the comm layer per rank per layer == the analytical
// model's prediction, for every layout, attention sharding, block kind and mesh.
TEST(ByteAccounting, MatchesAnalyticalModelExactly) {
  auto hw = analysis::LoadHardware("tpu-v4");
  ASSERT_TRUE(hw.ok());
  const int64_t batch = 8, len = 4, tokens = batch * len;
  int compared = 0, rejected = 0;
  std::map<std::string, std::string> reasons;
  for (const ModelConfig& c : Configs()) {
    analysis::AnalysisModel am;
    am.config = c;
    am.nominal_params = 1;
    am.unpadded_heads = c.num_heads;
    for (const MeshShape& mesh : kMeshes) {
      for (FfnLayout layout : kAllLayouts) {
        for (AttnSharding attn : {AttnSharding::kHeads, AttnSharding::kBatch}) {
          auto p = DeriveLayerProgram(c, mesh, layout, attn, batch);
          if (!p.ok()) {
            ++rejected;  // e.g. multiquery split over heads: see Specs.ClearErrors
            // One line per (config, layout, attention); the first mesh's message.
            const std::string key = StrCat(c.name, " ", LayoutName(layout), "/", analysis::AttnName(attn));
            if (!reasons.count(key)) reasons[key] = p.status().message();
            continue;
          }
          analysis::PlanRequest req;
          req.chips = mesh.num_ranks();
          req.batch = batch;
          req.input_len = len;
          req.gen_len = 0;
          req.weight_bytes = 2;
          const analysis::PhaseCost pc = analysis::EvaluatePhase(
              am, *hw, analysis::Mesh{mesh.x, mesh.y, mesh.z}, analysis::Phase::kPrefill, layout, attn, req);
          // Per (kind, axes): the model's bytes * (K-1)/K vs the derived steps.
          std::map<std::string, double> model, derived;
          double model_total = 0;
          for (const auto& cc : pc.collectives) {
            const double b = cc.bytes * (cc.group - 1) / cc.group;
            model[cc.kind + "(" + cc.axes + ")"] += b;
            model_total += b;
          }
          for (const CollectiveStep& s : p->steps) {
            if (!s.in_paper_model) continue;
            derived[StrCat(CollectiveName(s.kind), "(", s.axes.Name(), ")")] +=
                static_cast<double>(s.BytesSent(mesh, tokens, 2, 2));
          }
          const std::string where =
              StrCat(c.name, " mesh ", mesh.ToString(), " ", LayoutName(layout), "/", analysis::AttnName(attn));
          EXPECT_EQ(model, derived) << where;
          // And the comm layer counts exactly what the derivation predicts (all steps, incl. norm stats).
          const int64_t counted = RunProgram(*p, tokens);
          EXPECT_EQ(counted, p->BytesSent(tokens, 2, 2)) << where;
          EXPECT_EQ(static_cast<double>(p->BytesSent(tokens, 2, 2, /*paper_model_only=*/true)), model_total)
              << where;
          ++compared;
        }
      }
    }
  }
  EXPECT_GT(compared, 200);
  std::printf("compared %d (config, mesh, layout, attention) combinations; %d rejected by the specs:\n",
              compared, rejected);
  for (const auto& [key, msg] : reasons) std::printf("  %s: %s\n", key.c_str(), msg.c_str());
}

// Prints the derived program of every layout for a llama-like config (documentation aid; always passes).
TEST(ByteAccounting, PrintPrograms) {
  ModelConfig c = Config(Arch::kLlama, 64, 128, 8, 8, 8);
  for (FfnLayout layout : kAllLayouts) {
    for (AttnSharding attn : {AttnSharding::kHeads, AttnSharding::kBatch}) {
      auto p = DeriveLayerProgram(c, {2, 2, 2}, layout, attn, 8);
      ASSERT_TRUE(p.ok()) << p.status().message();
      std::printf("== %s / %s on 2x2x2, 32 tokens: %lld bytes/rank/layer (bf16)\n", LayoutName(layout).data(),
                  analysis::AttnName(p->attn).data(), static_cast<long long>(p->BytesSent(32, 2, 2)));
      for (const auto& s : p->steps) std::printf("   %s\n", s.ToString(p->mesh, 32).c_str());
    }
  }
}

}  // namespace
}  // namespace si
