// The analytical model's terms beyond Pope et al.'s per-layer formulas, which the distributed
// engine runs: the LM head's collectives (once per pass), the 2D weight-stationary norm-statistics
// all-reduce (count_norm_stats) and the validity of head-sharded attention (replicate_kv_heads).
// The byte-exact comparison with the engine's CommStats is dist_engine_test; these run without
// model files.
#include "si/analysis/cost_model.h"

#include <gtest/gtest.h>

#include <cmath>

#include "si/analysis/hardware.h"

namespace si::analysis {
namespace {

AnalysisModel Llama(int64_t heads, int64_t kv_heads, int64_t vocab = 1001) {
  AnalysisModel m;
  ModelConfig& c = m.config;
  c.arch = Arch::kLlama;
  c.model_dim = 64;
  c.ffn_dim = 192;
  c.num_layers = 2;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = 8;
  c.vocab_size = vocab;
  ApplyArchTraits(c);
  m.nominal_params = 1e6;
  m.unpadded_heads = heads;
  return m;
}

PlanRequest Req(int64_t batch, int64_t len) {
  PlanRequest r;
  r.batch = batch;
  r.input_len = len;
  r.gen_len = 1;
  return r;
}

double Sent(const std::vector<CollectiveCost>& v) {
  double t = 0;
  for (const auto& c : v) t += c.bytes * (c.group - 1) / c.group;
  return t;
}

TEST(CostModel, HeadShardsMustHoldWholeHeads) {
  const HardwareSpec hw = *LoadHardware("tpu-v4");
  PlanRequest engine = Req(4, 8), paper = Req(4, 8);
  engine.replicate_kv_heads = false;
  // 4 query heads, 2 KV heads over 4 head shards: the engine cannot split them; Pope's model
  // replicates each KV head on the 2 shards that use it.
  const AnalysisModel gqa = Llama(4, 2);
  PhaseCost pc = EvaluatePhase(gqa, hw, {1, 2, 2}, Phase::kPrefill, FfnLayout::k2dWs,
                               AttnSharding::kHeads, engine);
  EXPECT_FALSE(pc.valid);
  EXPECT_NE(pc.note.find("num_heads 4 and num_kv_heads 2 must both be divisible by 4"),
            std::string::npos)
      << pc.note;
  EXPECT_TRUE(EvaluatePhase(gqa, hw, {1, 2, 2}, Phase::kPrefill, FfnLayout::k2dWs,
                            AttnSharding::kHeads, paper)
                  .valid);
  // Divisible, batch attention (no head split), and WG-XYZ (none) are valid in both modes.
  EXPECT_TRUE(EvaluatePhase(gqa, hw, {2, 1, 1}, Phase::kPrefill, FfnLayout::k2dWs,
                            AttnSharding::kHeads, engine)
                  .valid);
  EXPECT_TRUE(EvaluatePhase(gqa, hw, {1, 2, 2}, Phase::kPrefill, FfnLayout::k2dWs,
                            AttnSharding::kBatch, engine)
                  .valid);
  EXPECT_TRUE(EvaluatePhase(gqa, hw, {1, 2, 2}, Phase::kPrefill, FfnLayout::kWgXyz,
                            AttnSharding::kBatch, engine)
                  .valid);
  // WG-X splits the heads over y*z.
  EXPECT_FALSE(EvaluatePhase(gqa, hw, {1, 2, 2}, Phase::kPrefill, FfnLayout::kWgX,
                             AttnSharding::kBatch, engine)
                   .valid);
  EXPECT_TRUE(EvaluatePhase(gqa, hw, {4, 1, 1}, Phase::kPrefill, FfnLayout::kWgX,
                            AttnSharding::kBatch, engine)
                  .valid);
  // Multiquery over heads: the engine rejects it, the paper's model replicates the KV head (Table
  // 2's 2d-ws/heads prefill rows are multiquery).
  const AnalysisModel mq = Llama(4, 1);
  EXPECT_FALSE(EvaluatePhase(mq, hw, {1, 2, 1}, Phase::kPrefill, FfnLayout::k2dWs,
                             AttnSharding::kHeads, engine)
                   .valid);
  EXPECT_TRUE(EvaluatePhase(mq, hw, {1, 2, 1}, Phase::kPrefill, FfnLayout::k2dWs,
                            AttnSharding::kHeads, paper)
                  .valid);
  // 6 heads, 3 KV heads over 4 shards: neither divides, invalid in both modes.
  const AnalysisModel odd = Llama(6, 3);
  pc = EvaluatePhase(odd, hw, {1, 2, 2}, Phase::kPrefill, FfnLayout::k2dWs, AttnSharding::kHeads,
                     paper);
  EXPECT_FALSE(pc.valid);
  EXPECT_NE(pc.note.find("replicated KV heads"), std::string::npos) << pc.note;
}

TEST(CostModel, NormStatisticsAllReduceOnlyWhenEIsSplitAtTheNorm) {
  const HardwareSpec hw = *LoadHardware("tpu-v4");
  const AnalysisModel m = Llama(4, 4);
  PlanRequest off = Req(3, 5), on = Req(3, 5);
  on.count_norm_stats = true;
  for (FfnLayout l : kAllLayouts) {
    for (Mesh mesh : {Mesh{2, 1, 1}, Mesh{4, 1, 1}, Mesh{1, 2, 2}, Mesh{2, 2, 1}}) {
      const PhaseCost a = EvaluatePhase(m, hw, mesh, Phase::kPrefill, l, AttnSharding::kHeads, off);
      const PhaseCost b = EvaluatePhase(m, hw, mesh, Phase::kPrefill, l, AttnSharding::kHeads, on);
      double expect = 0;
      if (l == FfnLayout::k2dWs && mesh.x > 1) {
        // Serial block: 2 RMSNorms per layer, 15 tokens x 1 float, padded to a multiple of x, bf16.
        const double n = std::ceil(15.0 / mesh.x);
        expect = 2 * 2 * (mesh.x - 1) * n * 2;
      }
      EXPECT_EQ(Sent(b.collectives) - Sent(a.collectives), expect)
          << LayoutName(l) << " x=" << mesh.x;
      if (expect > 0) {
        EXPECT_GT(b.latency_s, a.latency_s);
        EXPECT_EQ(b.collectives.back().kind, "all-reduce");
        // Ring all-reduce: 2 (x-1) steps per norm, 2 norms.
        EXPECT_NEAR(b.collectives.back().latency_s, 2 * 2 * (mesh.x - 1) * hw.step_latency_s,
                    1e-15);
      } else {
        EXPECT_EQ(b.latency_s, a.latency_s);
      }
    }
  }
}

TEST(CostModel, LmHeadCollectivesOncePerPass) {
  const HardwareSpec hw = *LoadHardware("tpu-v4");
  const AnalysisModel m = Llama(4, 4, /*vocab=*/1001);
  const double E = 64, a = 2;
  // 2d-ws on 4 chips, decode batch 4: rows 4; E gathered over xyz (4), then the logits in blocks of
  // ceil(1001/4) = 251.
  PlanRequest r = Req(4, 8);
  PhaseCost pc =
      EvaluatePhase(m, hw, {2, 2, 1}, Phase::kDecode, FfnLayout::k2dWs, AttnSharding::kHeads, r);
  ASSERT_EQ(pc.head_collectives.size(), 2u);
  EXPECT_EQ(Sent(pc.head_collectives), 3.0 / 4 * 4 * E * a + 3 * 4 * 251 * a);
  // Prefill: one row per sequence, or every position with all_logits.
  pc = EvaluatePhase(m, hw, {2, 2, 1}, Phase::kPrefill, FfnLayout::k2dWs, AttnSharding::kHeads, r);
  EXPECT_EQ(Sent(pc.head_collectives), 3.0 / 4 * 4 * E * a + 3 * 4 * 251 * a);
  r.all_logits = true;
  pc = EvaluatePhase(m, hw, {2, 2, 1}, Phase::kPrefill, FfnLayout::k2dWs, AttnSharding::kHeads, r);
  EXPECT_EQ(Sent(pc.head_collectives), 3.0 / 4 * 32 * E * a + 3 * 32 * 251 * a);
  // WG-X on 2x2x1: rows split over x (2), E over yz (2): E gather of 16 rows, row gather, logits.
  pc = EvaluatePhase(m, hw, {2, 2, 1}, Phase::kPrefill, FfnLayout::kWgX, AttnSharding::kBatch, r);
  ASSERT_EQ(pc.head_collectives.size(), 3u);
  EXPECT_EQ(Sent(pc.head_collectives), 0.5 * 16 * E * a + 0.5 * 32 * E * a + 3 * 32 * 251 * a);
  // The head's time is in the latency once per step, not per layer, and 1 chip has none.
  pc = EvaluatePhase(m, hw, {1, 1, 1}, Phase::kDecode, FfnLayout::k2dWs, AttnSharding::kHeads, r);
  EXPECT_TRUE(pc.head_collectives.empty());
}

}  // namespace
}  // namespace si::analysis
