#include "si/analysis/sweep.h"

#include <algorithm>
#include <sstream>

#include "si/analysis/svg_plot.h"

namespace si::analysis {

std::vector<SweepPoint> SweepPareto(const AnalysisModel& model, const HardwareSpec& hw,
                                    const PlanRequest& base, const SweepOptions& options) {
  std::vector<SweepPoint> points;
  for (int chips : options.chips) {
    if (chips > hw.max_chips || !MeshFor(hw, chips).ok()) continue;
    for (int64_t batch : options.batches) {
      for (double wb : options.weight_bytes) {
        PlanRequest req = base;
        req.chips = chips;
        req.batch = batch;
        req.weight_bytes = wb;
        for (Phase phase : {Phase::kPrefill, Phase::kDecode}) {
          if (phase == Phase::kDecode && (req.gen_len == 0 || model.config.is_encoder())) continue;
          std::vector<PhaseCost> alts;
          auto pc = PlanPhase(model, hw, chips, phase, req, &alts);
          if (!pc.ok()) continue;
          SweepPoint p;
          p.phase = phase;
          p.chips = chips;
          p.batch = batch;
          p.weight_bytes = wb;
          p.layout = pc->layout;
          p.attn = pc->attn;
          const double steps = phase == Phase::kDecode ? static_cast<double>(req.gen_len) : 1.0;
          p.latency_s = pc->latency_s / steps;
          p.cost_chip_ms = 1e3 * pc->cost_chip_s_per_token();
          p.mfu = pc->mfu;
          points.push_back(p);
        }
      }
    }
  }
  for (SweepPoint& p : points) {
    p.pareto = true;
    for (const SweepPoint& q : points) {
      if (q.phase != p.phase || &q == &p) continue;
      if (q.latency_s <= p.latency_s && q.cost_chip_ms <= p.cost_chip_ms &&
          (q.latency_s < p.latency_s || q.cost_chip_ms < p.cost_chip_ms)) {
        p.pareto = false;
        break;
      }
    }
  }
  std::stable_sort(points.begin(), points.end(), [](const SweepPoint& a, const SweepPoint& b) {
    if (a.phase != b.phase) return a.phase < b.phase;
    return a.latency_s < b.latency_s;
  });
  return points;
}

std::string SweepCsv(const std::vector<SweepPoint>& points) {
  std::ostringstream os;
  os << "phase,chips,batch,weights,layout,attention,latency_s,cost_chip_ms_per_token,mfu,pareto\n";
  for (const SweepPoint& p : points) {
    os << PhaseName(p.phase) << "," << p.chips << "," << p.batch << ","
       << (p.weight_bytes == 1 ? "int8" : "bf16") << "," << LayoutName(p.layout) << ","
       << AttnName(p.attn) << "," << p.latency_s << "," << p.cost_chip_ms << "," << p.mfu << ","
       << (p.pareto ? 1 : 0) << "\n";
  }
  return os.str();
}

std::string SweepSvg(const std::vector<SweepPoint>& points, const std::string& title) {
  std::vector<PlotPanel> panels;
  for (Phase phase : {Phase::kDecode, Phase::kPrefill}) {
    PlotPanel panel;
    panel.title = phase == Phase::kDecode ? "Decode" : "Prefill";
    panel.x_label =
        phase == Phase::kDecode ? "latency per generated token (ms)" : "prefill latency (s)";
    panel.y_label = "cost (chip-ms per token)";
    PlotSeries all{"all points", "#bbbbbb", {}, false, true, {}};
    PlotSeries bf16{"Pareto, bf16 weights", "#1f77b4", {}, true, true, {}};
    PlotSeries int8{"Pareto, int8 weights", "#d62728", {}, true, true, {}};
    for (const SweepPoint& p : points) {
      if (p.phase != phase) continue;
      const double x = phase == Phase::kDecode ? p.latency_s * 1e3 : p.latency_s;
      all.points.emplace_back(x, p.cost_chip_ms);
      if (!p.pareto) continue;
      PlotSeries& s = p.weight_bytes == 1 ? int8 : bf16;
      s.points.emplace_back(x, p.cost_chip_ms);
      s.labels.push_back("C:" + std::to_string(p.chips) + " B:" + std::to_string(p.batch));
    }
    // Frontier across weight types drawn per type, as Fig. 1 draws one curve per model/weight type.
    panel.series = {all, bf16, int8};
    panels.push_back(std::move(panel));
  }
  return RenderLogLogSvg(panels, title);
}

}  // namespace si::analysis
