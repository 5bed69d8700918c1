// scaleinfer plan: the Pope et al. analytical model and planner (docs/planner.md).
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "command.h"
#include "si/analysis/cost_model.h"
#include "si/analysis/hardware.h"
#include "si/analysis/models.h"
#include "si/analysis/sweep.h"

namespace si::cli {
namespace {

using namespace si::analysis;
using nlohmann::json;

struct PlanOptions {
  std::string model = "palm-540b";
  std::string hw = "tpu-v4";
  int chips = 64;
  int decode_chips = 0;
  int64_t batch = 1;
  int64_t input = 2048;
  int64_t gen = 64;
  std::string weights = "bf16";
  std::string layout = "auto";
  std::string attention = "auto";
  bool json = false;
  bool sweep = false;
  bool show_hw = false;
  std::string csv;
  std::string svg;
};

json BreakdownJson(const Breakdown& b) {
  return {{"compute_s", b.compute_s},
          {"weight_load_s", b.weight_load_s},
          {"kv_load_s", b.kv_load_s},
          {"comm_s", b.comm_s},
          {"comm_latency_s", b.comm_latency_s},
          {"overlapped_s", b.hidden_s},
          {"combine", "max(compute, weight_load + kv_load) + comm + comm_latency"}};
}

json MemoryJson(const MemoryUse& m) {
  return {{"weights", m.weights},
          {"kv_cache", m.kv_cache},
          {"activations", m.activations},
          {"total", m.total()}};
}

json PhaseJson(const PhaseCost& p, bool with_detail) {
  json j = {{"layout", LayoutName(p.layout)},
            {"attention", AttnName(p.attn)},
            {"mesh", {p.mesh.x, p.mesh.y, p.mesh.z}},
            {"chips", p.mesh.chips()},
            {"latency_s", p.latency_s},
            {"mfu", p.mfu},
            {"tokens", p.tokens},
            {"cost_chip_ms_per_token", 1e3 * p.cost_chip_s_per_token()},
            {"memory_per_chip_bytes", p.memory.total()},
            {"fits", p.fits}};
  if (with_detail) {
    j["breakdown"] = BreakdownJson(p.breakdown);
    j["memory"] = MemoryJson(p.memory);
    json colls = json::array();
    for (const CollectiveCost& c : p.collectives) {
      colls.push_back({{"kind", c.kind},
                       {"axes", c.axes},
                       {"what", c.what},
                       {"group", c.group},
                       {"count", c.count},
                       {"bytes_per_layer", c.bytes},
                       {"time_per_layer_s", c.time_s}});
    }
    j["collectives_per_layer"] = colls;
    json head = json::array();
    for (const CollectiveCost& c : p.head_collectives) {
      head.push_back({{"kind", c.kind},
                      {"axes", c.axes},
                      {"what", c.what},
                      {"group", c.group},
                      {"bytes_per_pass", c.bytes},
                      {"time_per_pass_s", c.time_s}});
    }
    j["lm_head_collectives_per_pass"] = head;
  }
  if (!p.note.empty()) j["note"] = p.note;
  return j;
}

void PrintPhase(const char* name, const PhaseCost& p, const std::vector<PhaseCost>& alts,
                int64_t gen) {
  const Breakdown& b = p.breakdown;
  std::printf("\n%s: layout %s, attention sharded over %s, mesh %dx%dx%d\n", name,
              std::string(LayoutName(p.layout)).c_str(), std::string(AttnName(p.attn)).c_str(),
              p.mesh.x, p.mesh.y, p.mesh.z);
  if (p.phase == Phase::kDecode) {
    std::printf(
        "  latency %.4g s for %ld steps (%.2f ms/step), MFU %.1f%%, cost %.3g chip-ms/token\n",
        p.latency_s, static_cast<long>(gen), 1e3 * p.latency_s / gen, 100 * p.mfu,
        1e3 * p.cost_chip_s_per_token());
  } else {
    std::printf("  latency %.4g s, MFU %.1f%%, cost %.3g chip-ms/token\n", p.latency_s, 100 * p.mfu,
                1e3 * p.cost_chip_s_per_token());
  }
  std::printf("  memory/chip %.2f GB (weights %.2f, KV cache %.2f, activations %.2f)\n",
              p.memory.total() / 1e9, p.memory.weights / 1e9, p.memory.kv_cache / 1e9,
              p.memory.activations / 1e9);
  std::printf(
      "  time: compute %.4g s | weight load %.4g s | KV load %.4g s | (overlapped %.4g s) | comm "
      "%.4g s | "
      "comm latency %.4g s\n",
      b.compute_s, b.weight_load_s, b.kv_load_s, b.hidden_s, b.comm_s, b.comm_latency_s);
  std::printf("  collectives per layer%s:\n", p.phase == Phase::kDecode ? " per step" : "");
  for (const CollectiveCost& c : p.collectives) {
    std::printf("    %-15s over %-3s (K=%3d) %-22s %10.3f MB  %9.3f us\n", c.kind.c_str(),
                c.axes.c_str(), c.group, c.what.c_str(), c.bytes / 1e6, c.time_s * 1e6);
  }
  if (!p.head_collectives.empty()) {
    std::printf("  LM head collectives per pass%s:\n",
                p.phase == Phase::kDecode ? " (per step)" : "");
    for (const CollectiveCost& c : p.head_collectives) {
      std::printf("    %-15s over %-3s (K=%3d) %-22s %10.3f MB  %9.3f us\n", c.kind.c_str(),
                  c.axes.c_str(), c.group, c.what.c_str(), c.bytes / 1e6, c.time_s * 1e6);
    }
  }
  std::printf("  alternatives (sorted by latency):\n    %-8s %-9s %12s %8s %14s %6s\n", "layout",
              "attention", "latency_s", "MFU", "mem/chip GB", "fits");
  for (const PhaseCost& a : alts) {
    std::printf("    %-8s %-9s %12.4g %7.1f%% %14.2f %6s%s\n",
                std::string(LayoutName(a.layout)).c_str(), std::string(AttnName(a.attn)).c_str(),
                a.latency_s, 100 * a.mfu, a.memory.total() / 1e9, a.fits ? "yes" : "no",
                a.layout == FfnLayout::k1dWs ? "  (separate weight layout)" : "");
  }
}

Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  if (!out) return IoError("cannot write ", path);
  out << text;
  return out ? Status::Ok() : IoError("write failed: ", path);
}

int RunPlan(const PlanOptions& o) {
  const std::string cmd = "plan";
  auto model = LoadAnalysisModel(o.model);
  if (!model.ok()) return PrintError(cmd, model.status());
  auto hw = LoadHardware(o.hw);
  if (!hw.ok()) return PrintError(cmd, hw.status());
  if (o.show_hw) {
    std::printf("%s\n", HardwareToJson(*hw).c_str());
    return 0;
  }
  PlanRequest req;
  req.chips = o.chips;
  req.decode_chips = o.decode_chips;
  req.batch = o.batch;
  req.input_len = o.input;
  req.gen_len = model->config.is_encoder() ? 0 : o.gen;
  if (o.weights == "int8") {
    req.weight_bytes = 1;
  } else if (o.weights != "bf16") {
    return PrintError(cmd, InvalidArgumentError("--weights must be int8 or bf16, got ", o.weights));
  }
  if (o.layout != "auto") {
    auto l = ParseLayout(o.layout);
    if (!l.ok()) return PrintError(cmd, l.status());
    req.layout = *l;
  }
  if (o.attention != "auto") {
    auto a = ParseAttn(o.attention);
    if (!a.ok()) return PrintError(cmd, a.status());
    req.attn = *a;
  }
  const json constants = {{"eff_matmul", hw->eff.matmul},
                          {"eff_network", hw->eff.network},
                          {"eff_memory", hw->eff.memory},
                          {"step_latency_s", hw->step_latency_s}};

  if (o.sweep) {
    const std::vector<SweepPoint> pts = SweepPareto(*model, *hw, req, SweepOptions{});
    const std::string title = model->config.name + " on " + hw->name + ": cost vs latency (input " +
                              std::to_string(o.input) + ", gen " + std::to_string(req.gen_len) +
                              ")";
    if (!o.csv.empty()) {
      Status s = WriteFile(o.csv, SweepCsv(pts));
      if (!s.ok()) return PrintError(cmd, s);
    }
    if (!o.svg.empty()) {
      Status s = WriteFile(o.svg, SweepSvg(pts, title));
      if (!s.ok()) return PrintError(cmd, s);
    }
    if (o.json) {
      json arr = json::array();
      for (const SweepPoint& p : pts) {
        arr.push_back({{"phase", PhaseName(p.phase)},
                       {"chips", p.chips},
                       {"batch", p.batch},
                       {"weights", p.weight_bytes == 1 ? "int8" : "bf16"},
                       {"layout", LayoutName(p.layout)},
                       {"attention", AttnName(p.attn)},
                       {"latency_s", p.latency_s},
                       {"cost_chip_ms_per_token", p.cost_chip_ms},
                       {"mfu", p.mfu},
                       {"pareto", p.pareto}});
      }
      std::printf("%s\n", json{{"model", model->config.name},
                               {"hardware", hw->name},
                               {"constants", constants},
                               {"points", arr}}
                              .dump(2)
                              .c_str());
      return 0;
    }
    std::printf(
        "%s\nPareto frontier (decode latency is per generated token; cost in chip-ms per token):\n",
        title.c_str());
    std::printf("%-8s %6s %6s %-5s %-7s %-6s %12s %12s %7s\n", "phase", "chips", "batch", "wts",
                "layout", "attn", "latency_ms", "chip_ms/tok", "MFU");
    for (const SweepPoint& p : pts) {
      if (!p.pareto) continue;
      std::printf("%-8s %6d %6ld %-5s %-7s %-6s %12.4g %12.4g %6.1f%%\n",
                  std::string(PhaseName(p.phase)).c_str(), p.chips, static_cast<long>(p.batch),
                  p.weight_bytes == 1 ? "int8" : "bf16", std::string(LayoutName(p.layout)).c_str(),
                  std::string(AttnName(p.attn)).c_str(), 1e3 * p.latency_s, p.cost_chip_ms,
                  100 * p.mfu);
    }
    std::printf("(%zu points evaluated%s%s)\n", pts.size(),
                o.csv.empty() ? "" : ("; CSV: " + o.csv).c_str(),
                o.svg.empty() ? "" : ("; SVG: " + o.svg).c_str());
    return 0;
  }

  auto plan = Plan(*model, *hw, req);
  if (!plan.ok()) return PrintError(cmd, plan.status());
  if (o.json) {
    json j = {{"model", model->config.name},
              {"hardware", hw->name},
              {"chips", o.chips},
              {"batch", o.batch},
              {"input_len", o.input},
              {"gen_len", req.gen_len},
              {"weights", o.weights},
              {"constants", constants},
              {"prefill", PhaseJson(plan->prefill, true)},
              {"total_latency_s", plan->total_latency_s},
              {"memory_per_chip_bytes", plan->memory_per_chip_bytes}};
    json alts = json::array();
    for (const PhaseCost& a : plan->prefill_alternatives) alts.push_back(PhaseJson(a, false));
    j["prefill"]["alternatives"] = alts;
    if (req.gen_len > 0) {
      j["decode"] = PhaseJson(plan->decode, true);
      json dalts = json::array();
      for (const PhaseCost& a : plan->decode_alternatives) dalts.push_back(PhaseJson(a, false));
      j["decode"]["alternatives"] = dalts;
    }
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("%s (%s) on %d x %s, batch %ld, input %ld, gen %ld, %s weights\n",
              model->config.name.c_str(), model->source.c_str(), o.chips, hw->name.c_str(),
              static_cast<long>(o.batch), static_cast<long>(o.input),
              static_cast<long>(req.gen_len), o.weights.c_str());
  std::printf(
      "constants (fitted once on Pope et al. Tables 2-3): eff.matmul %.2f, eff.network %.2f, "
      "eff.memory "
      "%.2f, collective step latency %.2f us\n",
      hw->eff.matmul, hw->eff.network, hw->eff.memory, hw->step_latency_s * 1e6);
  std::printf(
      "per layer: max(compute, weight load + KV load) + collectives (HBM overlaps compute; "
      "collectives "
      "exposed)\n");
  PrintPhase("prefill", plan->prefill, plan->prefill_alternatives, req.gen_len);
  if (req.gen_len > 0) PrintPhase("decode", plan->decode, plan->decode_alternatives, req.gen_len);
  std::printf("\ntotal latency %.4g s, memory per chip %.2f GB of %.2f GB\n", plan->total_latency_s,
              plan->memory_per_chip_bytes / 1e9, hw->mem_capacity / 1e9);
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(
    plan, "plan",
    "Plan partitioning and predict latency/MFU/memory per phase (Pope et al. analytical model)", 50,
    [](CLI::App& sub) -> CommandRunner {
      auto o = std::make_shared<PlanOptions>();
      sub.add_option("--model", o->model, "preset name or FILE.gguf")->capture_default_str();
      sub.add_option("--hw", o->hw, "tpu-v4, a100-80g, h100-sxm, local, or a JSON file")
          ->capture_default_str();
      sub.add_option("--chips", o->chips, "chips (prefill; decode too unless --decode-chips)")
          ->capture_default_str();
      sub.add_option("--decode-chips", o->decode_chips, "chips for decode if different");
      sub.add_option("--batch", o->batch, "sequences per batch (B)")->capture_default_str();
      sub.add_option("--input", o->input, "input tokens per sequence (L_input)")
          ->capture_default_str();
      sub.add_option("--gen", o->gen, "generated tokens per sequence (L_gen)")
          ->capture_default_str();
      sub.add_option("--weights", o->weights, "int8 or bf16")->capture_default_str();
      sub.add_option("--layout", o->layout, "auto, 1d-ws, 2d-ws, wg-x, wg-xy, wg-xyz")
          ->capture_default_str();
      sub.add_option("--attention", o->attention, "auto, heads, batch")->capture_default_str();
      sub.add_flag("--json", o->json, "JSON output");
      sub.add_flag("--show-hw", o->show_hw,
                   "print the hardware spec (JSON, incl. constants) and exit");
      sub.add_flag("--sweep", o->sweep, "latency vs cost Pareto frontier (Fig. 1)");
      sub.add_option("--csv", o->csv, "with --sweep: write all points as CSV");
      sub.add_option("--svg", o->svg, "with --sweep: write the Fig. 1-style plot");
      return [o] { return RunPlan(*o); };
    });

}  // namespace si::cli
