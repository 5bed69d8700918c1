// The latency vs cost sweep of Pope et al. Fig. 1: over chip counts, batch sizes, layouts (auto per
// point) and weight types, and its Pareto frontier per phase.
#pragma once

#include <string>
#include <vector>

#include "si/analysis/cost_model.h"

namespace si::analysis {

struct SweepPoint {
  Phase phase = Phase::kDecode;
  int chips = 0;
  int64_t batch = 0;
  double weight_bytes = 2;
  FfnLayout layout = FfnLayout::k2dWs;
  AttnSharding attn = AttnSharding::kBatch;
  double latency_s = 0;     // prefill: the pass; decode: per step (per generated token)
  double cost_chip_ms = 0;  // chip-milliseconds per token
  double mfu = 0;
  bool pareto = false;
};

struct SweepOptions {
  std::vector<int> chips = {8, 16, 32, 64, 128, 256};
  std::vector<int64_t> batches = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  std::vector<double> weight_bytes = {2, 1};
};

// Every (chips, batch, weights) that fits, each with the planner's auto layout; pareto marks the
// points on the per-phase frontier (no other point of the phase has both lower latency and lower
// cost).
std::vector<SweepPoint> SweepPareto(const AnalysisModel& model, const HardwareSpec& hw,
                                    const PlanRequest& base, const SweepOptions& options);

std::string SweepCsv(const std::vector<SweepPoint>& points);
std::string SweepSvg(const std::vector<SweepPoint>& points, const std::string& title);

}  // namespace si::analysis
