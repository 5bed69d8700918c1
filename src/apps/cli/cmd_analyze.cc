// scaleinfer analyze: the survey's workload analysis (Kim et al. §2.2): FLOPs, memory bytes and
// arithmetic intensity per op and per op group, optionally against a hardware roofline
// (docs/analyze.md).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "command.h"
#include "si/analysis/hardware.h"
#include "si/analysis/models.h"
#include "si/analysis/svg_plot.h"
#include "si/analysis/workload.h"

namespace si::cli {
namespace {

using namespace si::analysis;
using nlohmann::json;

struct AnalyzeOptions {
  std::string model = "bert-base";
  std::string seq = "128,512,4096";
  std::string convention = "survey";
  bool json = false;
  std::string roofline;
  std::string svg;
};

Result<std::vector<int64_t>> ParseSeq(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t pos = 0;
      const long long v = std::stoll(item, &pos);
      if (pos != item.size() || v < 1) throw std::invalid_argument("bad");
      out.push_back(v);
    } catch (const std::exception&) {
      return InvalidArgumentError("--seq wants positive integers separated by commas, got '", item,
                                  "'");
    }
  }
  if (out.empty()) return InvalidArgumentError("--seq is empty");
  return out;
}

json CostJson(const Cost& c) {
  return {{"flops", c.flops}, {"bytes", c.bytes}, {"intensity", c.intensity()}};
}

// Attainable FLOP/s of an op on the roofline: min(peak, bandwidth * intensity).
double Attainable(const HardwareSpec& hw, double peak, double ai) {
  return std::min(peak, hw.mem_bw * ai);
}

int RunAnalyze(const AnalyzeOptions& o) {
  const std::string cmd = "analyze";
  auto model = LoadAnalysisModel(o.model);
  if (!model.ok()) return PrintError(cmd, model.status());
  auto seqs = ParseSeq(o.seq);
  if (!seqs.ok()) return PrintError(cmd, seqs.status());
  Convention conv;
  if (o.convention == "survey") {
    conv = Convention::kSurvey;
  } else if (o.convention == "native") {
    conv = Convention::kNative;
  } else {
    return PrintError(
        cmd, InvalidArgumentError("--convention must be survey or native, got ", o.convention));
  }
  std::optional<HardwareSpec> hw;
  if (!o.roofline.empty()) {
    auto h = LoadHardware(o.roofline);
    if (!h.ok()) return PrintError(cmd, h.status());
    hw = *h;
  }
  if (!o.svg.empty() && !hw)
    return PrintError(cmd, InvalidArgumentError("--svg needs --roofline HW"));
  // Survey convention counts 8-bit values, so the int8 peak is the matching roof.
  const double peak = hw ? hw->PeakFlops(conv == Convention::kSurvey ? "int8" : "bf16") : 0;

  std::vector<WorkloadResult> results;
  for (int64_t l : *seqs) results.push_back(AnalyzeWorkload(model->config, l, conv));

  if (o.json) {
    json arr = json::array();
    for (const WorkloadResult& r : results) {
      json groups, ops = json::array();
      for (int g = 0; g < kNumGroups; ++g) groups[kGroupNames[g]] = CostJson(r.groups[g]);
      for (const OpCostRow& op : r.ops) {
        json jo = CostJson(op.cost);
        jo["name"] = op.name;
        jo["group"] = kGroupNames[op.group];
        if (hw) jo["roofline_flops_per_s"] = Attainable(*hw, peak, op.cost.intensity());
        ops.push_back(jo);
      }
      arr.push_back(
          {{"seq_len", r.seq_len}, {"groups", groups}, {"ops", ops}, {"total", CostJson(r.total)}});
    }
    json j = {{"model", model->config.name},
              {"convention", o.convention},
              {"decoder_whole_generation", !model->config.is_encoder()},
              {"results", arr}};
    if (hw) j["roofline"] = {{"hardware", hw->name}, {"peak_flops", peak}, {"mem_bw", hw->mem_bw}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s, %s convention%s\n", model->config.name.c_str(), o.convention.c_str(),
                model->config.is_encoder()
                    ? ""
                    : "; decoder: totals for generating all seq_len tokens with a KV cache");
    for (const WorkloadResult& r : results) {
      std::printf("\nseq_len %ld\n  %-24s %-11s %12s %6s %12s %6s %10s%s\n",
                  static_cast<long>(r.seq_len), "op", "group", "GFLOPs", "%F", "GMOPs", "%M",
                  "FLOP/B", hw ? "  roofline TFLOP/s" : "");
      auto line = [&](const std::string& name, const std::string& group, const Cost& c) {
        std::printf("  %-24s %-11s %12.6g %5.1f%% %12.6g %5.1f%% %10.2f", name.c_str(),
                    group.c_str(), c.flops / 1e9, 100 * c.flops / r.total.flops, c.bytes / 1e9,
                    100 * c.bytes / r.total.bytes, c.intensity());
        if (hw) std::printf("  %8.2f", Attainable(*hw, peak, c.intensity()) / 1e12);
        std::printf("\n");
      };
      for (const OpCostRow& op : r.ops) line(op.name, kGroupNames[op.group], op.cost);
      std::printf("  ----\n");
      for (int g = 0; g < kNumGroups; ++g) line(kGroupNames[g], "(group)", r.groups[g]);
      line("total", "", r.total);
    }
  }
  if (!o.svg.empty()) {
    PlotPanel panel;
    panel.title = model->config.name + " ops on the " + hw->name + " roofline";
    panel.x_label = "arithmetic intensity (FLOP/byte)";
    panel.y_label = "attainable FLOP/s";
    const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"};
    double lo = 1e30, hi = 0;
    for (int g = 0; g < kNumGroups; ++g) {
      PlotSeries s{kGroupNames[g], colors[g], {}, false, true, {}};
      for (const WorkloadResult& r : results) {
        for (const OpCostRow& op : r.ops) {
          if (op.group != g) continue;
          const double ai = op.cost.intensity();
          lo = std::min(lo, ai), hi = std::max(hi, ai);
          s.points.emplace_back(ai, Attainable(*hw, peak, ai));
          s.labels.push_back(op.name + "@" + std::to_string(r.seq_len));
        }
      }
      panel.series.push_back(std::move(s));
    }
    PlotSeries roof{"roofline", "#000000", {}, true, false, {}};
    const double ridge = peak / hw->mem_bw;
    for (double ai : {std::min(lo, ridge) / 2, ridge, std::max(hi, ridge) * 2}) {
      roof.points.emplace_back(ai, Attainable(*hw, peak, ai));
    }
    panel.series.insert(panel.series.begin(), roof);
    std::ofstream out(o.svg);
    out << RenderLogLogSvg({panel}, "scaleinfer analyze --roofline " + hw->name);
    if (!out) return PrintError(cmd, IoError("cannot write ", o.svg));
    if (!o.json)
      std::printf("\nroofline plot: %s (peak %.3g FLOP/s, %.3g B/s)\n", o.svg.c_str(), peak,
                  hw->mem_bw);
  }
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(
    analyze, "analyze",
    "Per-op FLOPs, bytes and arithmetic intensity of a model (the survey's workload analysis)", 51,
    [](CLI::App& sub) -> CommandRunner {
      auto o = std::make_shared<AnalyzeOptions>();
      sub.add_option("--model", o->model, "preset name or FILE.gguf")->capture_default_str();
      sub.add_option("--seq", o->seq, "sequence lengths, comma separated")->capture_default_str();
      sub.add_option("--convention", o->convention,
                     "survey (8-bit, the survey's counting) or native")
          ->capture_default_str();
      sub.add_flag("--json", o->json, "JSON output");
      sub.add_option("--roofline", o->roofline, "hardware to place each op on its roofline");
      sub.add_option("--svg", o->svg, "with --roofline: write the roofline plot");
      return [o] { return RunAnalyze(*o); };
    });

}  // namespace si::cli
