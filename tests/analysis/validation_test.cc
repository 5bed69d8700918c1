// Held-back validation (not used by the fit): Pope et al. Fig. 1 readings, the bf16 vs int8
// per-token decode latency, the serial-block ablation and the Fig. 7 prefill layout switch. Printed
// for docs/planner.md; the assertions are deliberately loose (these are read off plots by eye,
// +-5%, or are claims in the text) and record which way the model errs.
#include <gtest/gtest.h>

#include <cstdio>

#include "si/analysis/cost_model.h"
#include "si/analysis/hardware.h"
#include "si/analysis/models.h"

namespace si::analysis {
namespace {

HardwareSpec Tpu() { return *LoadHardware("tpu-v4"); }

PhaseCost Decode(const std::string& model, int chips, int64_t batch, double wb) {
  const HardwareSpec hw = Tpu();
  PlanRequest req;
  req.chips = chips;
  req.batch = batch;
  req.weight_bytes = wb;
  std::vector<PhaseCost> alts;
  auto pc = PlanPhase(*ModelPreset(model), hw, chips, Phase::kDecode, req, &alts);
  EXPECT_TRUE(pc.ok()) << model << " " << chips << " " << batch << ": " << pc.status().message();
  return pc.ok() ? *pc : PhaseCost{};
}

TEST(Validation, Figure1DecodeReadings) {
  struct R {
    const char* model;
    int chips;
    int64_t batch;
    double wb;
    double ms;       // paper, ms per token (read off Fig. 1)
    double chip_ms;  // paper, chip-ms per token (0: not read)
  } rows[] = {
      {"palm-540b", 128, 64, 2, 33, 64},  {"palm-540b", 64, 1024, 2, 180, 11},
      {"palm-540b", 64, 64, 1, 28, 28},   {"palm-62b", 32, 32, 2, 11, 0},
      {"palm-62b", 8, 1024, 2, 150, 1.2}, {"palm-8b", 16, 32, 2, 4, 0},
      {"palm-8b", 8, 1024, 2, 37, 0.3},
  };
  for (const R& r : rows) {
    const PhaseCost pc = Decode(r.model, r.chips, r.batch, r.wb);
    const double ms = 1e3 * pc.latency_s / 64, chip_ms = 1e3 * pc.cost_chip_s_per_token();
    std::printf(
        "Fig.1 %-9s C%-3d B%-4ld %s: %6.1f ms/token (paper ~%g, %+4.0f%%), %6.2f chip-ms/token "
        "(paper ~%g)\n",
        r.model, r.chips, static_cast<long>(r.batch), r.wb == 1 ? "int8" : "bf16", ms, r.ms,
        100 * (ms / r.ms - 1), chip_ms, r.chip_ms);
    EXPECT_NEAR(ms / r.ms, 1.0, 0.5) << r.model << " C" << r.chips << " B" << r.batch;
  }
}

TEST(Validation, Bf16VsInt8PerTokenDecode) {
  // §4.4: 28.5 ms/token int8, 36.9 ms/token bf16, PaLM 540B, 64 chips, batch 64 (int8 was in the
  // fit).
  const double int8 = 1e3 * Decode("palm-540b", 64, 64, 1).latency_s / 64;
  const double bf16 = 1e3 * Decode("palm-540b", 64, 64, 2).latency_s / 64;
  std::printf(
      "540B B=64 decode: int8 %.1f ms/token (paper 28.5), bf16 %.1f (paper 36.9), ratio %.2f "
      "(paper 1.29)\n",
      int8, bf16, bf16 / int8);
  EXPECT_GT(bf16, int8);
  EXPECT_NEAR(bf16 / 36.9, 1.0, 0.15);
}

TEST(Validation, PrefillLayoutSwitch) {
  // Fig. 7: the measured WS-2D -> WG switch lies between 131K and 262K tokens per batch (540B, 64
  // chips, bf16).
  const HardwareSpec hw = Tpu();
  int64_t first_wg = 0;
  for (int64_t batch = 1; batch <= 512; batch *= 2) {
    PlanRequest req;
    req.chips = 64;
    req.batch = batch;
    req.gen_len = 0;
    std::vector<PhaseCost> alts;
    auto pc = PlanPhase(*ModelPreset("palm-540b"), hw, 64, Phase::kPrefill, req, &alts);
    ASSERT_TRUE(pc.ok());
    std::printf("prefill B=%-4ld (%7ld tokens): %s, MFU %.1f%%\n", static_cast<long>(batch),
                static_cast<long>(batch * 2048), std::string(LayoutName(pc->layout)).c_str(),
                100 * pc->mfu);
    if (!first_wg && pc->layout != FfnLayout::k2dWs) first_wg = batch * 2048;
  }
  std::printf(
      "predicted first weight-gathered prefill at %ld tokens (paper: between 131072 and 262144)\n",
      static_cast<long>(first_wg));
  EXPECT_GT(first_wg, 0);
}

TEST(Validation, SerialBlockAblation) {
  // §4.3: the serial block has 14% higher decode latency per step (2D WS, 64 chips, batch 512).
  const HardwareSpec hw = Tpu();
  AnalysisModel par = *ModelPreset("palm-540b");
  AnalysisModel ser = par;
  ser.config.block = BlockKind::kSerial;
  PlanRequest req;
  req.chips = 64;
  req.batch = 512;
  const Mesh mesh = *MeshFor(hw, 64);
  const double p =
      EvaluatePhase(par, hw, mesh, Phase::kDecode, FfnLayout::k2dWs, AttnSharding::kBatch, req)
          .latency_s;
  const double s =
      EvaluatePhase(ser, hw, mesh, Phase::kDecode, FfnLayout::k2dWs, AttnSharding::kBatch, req)
          .latency_s;
  std::printf("serial / parallel decode step: %.3f (paper 1.14)\n", s / p);
  EXPECT_NEAR(s / p, 1.14, 0.10);
}

}  // namespace
}  // namespace si::analysis

namespace si::analysis {
namespace {

TEST(Validation, Figure8AttentionLayouts) {
  // Fig. 8 (read by eye): decode ms/step of an 8-layer 540B, 64 chips, batch 256, vs context
  // length.
  const HardwareSpec hw = Tpu();
  AnalysisModel mq = *ModelPreset("palm-540b");
  mq.config.num_layers = 8;
  AnalysisModel mh = mq;
  mh.config.num_kv_heads = 64;
  mh.config.head_dim = 128;
  const Mesh mesh = *MeshFor(hw, 64);
  const int64_t ctxs[] = {128, 512, 2048, 8192};
  const double paper[3][4] = {{3.7, 4, 4, 4.2}, {3.7, 4.5, 7.8, 20}, {3.8, 6, 16.5, 55}};
  const char* names[] = {"optimized MQ (batch)", "baseline MQ (heads)", "multihead (heads)"};
  for (int v = 0; v < 3; ++v) {
    std::printf("Fig.8 %-21s", names[v]);
    double prev = 0;
    for (int i = 0; i < 4; ++i) {
      PlanRequest req;
      req.chips = 64;
      req.batch = 256;
      req.input_len = ctxs[i] - 1;
      req.gen_len = 1;
      const AnalysisModel& m = v == 2 ? mh : mq;
      const PhaseCost pc = EvaluatePhase(m, hw, mesh, Phase::kDecode, FfnLayout::k2dWs,
                                         v == 0 ? AttnSharding::kBatch : AttnSharding::kHeads, req);
      std::printf("  %5ld: %5.1f ms (paper ~%g)", static_cast<long>(ctxs[i]), 1e3 * pc.latency_s,
                  paper[v][i]);
      EXPECT_GE(pc.latency_s, prev);
      prev = pc.latency_s;
    }
    std::printf("\n");
  }
}

}  // namespace
}  // namespace si::analysis
