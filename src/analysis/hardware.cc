#include "si/analysis/hardware.h"

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace si::analysis {
namespace {

using nlohmann::json;

constexpr double kGB = 1e9;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

HardwareSpec TpuV4() {
  HardwareSpec h;
  h.name = "tpu-v4";
  h.description =
      "Google TPU v4 as in Pope et al. §4: 275 TFLOP/s bf16, 32 GiB HBM at 1200 GB/s, 3D torus, "
      "270 GB/s "
      "interconnect per chip (6 ICI links of 45 GB/s)";
  h.peak_flops = {{"bf16", 275e12}, {"int8", 275e12}, {"f32", 275e12 / 4}};
  h.mem_bw = 1200 * kGB;
  h.mem_capacity = 32 * kGiB;
  h.topology = Topology::kTorus3d;
  h.links_per_chip = 6;
  h.link_bw = 270 * kGB / 6;
  h.wrap_min_chips = 64;
  h.max_chips = 256;
  return h;
}

HardwareSpec A100() {
  HardwareSpec h;
  h.name = "a100-80g";
  h.description =
      "NVIDIA A100 SXM 80GB: 312 TFLOP/s bf16 (dense), 624 TOP/s int8, 2039 GB/s HBM2e, NVLink3 "
      "via NVSwitch "
      "(300 GB/s per direction per GPU), 8 GPUs per node, 25 GB/s per GPU across nodes (HDR 200 "
      "Gb/s)";
  h.peak_flops = {{"bf16", 312e12}, {"int8", 624e12}, {"f32", 19.5e12}};
  h.mem_bw = 2039 * kGB;
  h.mem_capacity = 80 * kGiB;
  h.topology = Topology::kSwitch;
  h.link_bw = 300 * kGB;
  h.node_size = 8;
  h.inter_node_bw = 25 * kGB;
  h.max_chips = 256;
  return h;
}

HardwareSpec H100() {
  HardwareSpec h;
  h.name = "h100-sxm";
  h.description =
      "NVIDIA H100 SXM5 80GB: 989 TFLOP/s bf16 (dense), 1979 TOP/s int8, 3350 GB/s HBM3, NVLink4 "
      "via NVSwitch "
      "(450 GB/s per direction per GPU), 8 GPUs per node, 50 GB/s per GPU across nodes (NDR 400 "
      "Gb/s)";
  h.peak_flops = {{"bf16", 989e12}, {"int8", 1979e12}, {"f32", 67e12}};
  h.mem_bw = 3350 * kGB;
  h.mem_capacity = 80 * kGiB;
  h.topology = Topology::kSwitch;
  h.link_bw = 450 * kGB;
  h.node_size = 8;
  h.inter_node_bw = 50 * kGB;
  h.max_chips = 256;
  return h;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot open ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

double HardwareSpec::PeakFlops(std::string_view dtype) const {
  auto it = peak_flops.find(std::string(dtype));
  if (it != peak_flops.end()) return it->second;
  it = peak_flops.find("bf16");
  if (it != peak_flops.end()) return it->second;
  return peak_flops.empty() ? 0.0 : peak_flops.begin()->second;
}

std::vector<std::string> BuiltinHardwareNames() {
  return {"tpu-v4", "a100-80g", "h100-sxm", "local"};
}

std::string LocalRooflinePath() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  std::string base;
  if (xdg && *xdg) {
    base = xdg;
  } else {
    const char* home = std::getenv("HOME");
    base = StrCat(home ? home : ".", "/.cache");
  }
  return base + "/scaleinfer/roofline.json";
}

Result<HardwareSpec> HardwareFromJson(std::string_view text, std::string_view origin) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return CorruptError(origin, ": not a JSON object");
  HardwareSpec h;
  h.name = j.value("name", std::string(origin));
  h.description = j.value("description", std::string());
  if (!j.contains("peak_flops") || !j["peak_flops"].is_object() || j["peak_flops"].empty()) {
    return InvalidArgumentError(origin, ": needs \"peak_flops\": {\"bf16\": FLOP/s, ...}");
  }
  for (auto& [k, v] : j["peak_flops"].items()) {
    if (!v.is_number() || v.get<double>() <= 0)
      return InvalidArgumentError(origin, ": peak_flops.", k, " must be > 0");
    h.peak_flops[k] = v.get<double>();
  }
  h.mem_bw = j.value("mem_bw", 0.0);
  h.mem_capacity = j.value("mem_capacity", 0.0);
  if (h.mem_bw <= 0) return InvalidArgumentError(origin, ": needs \"mem_bw\" (bytes/s) > 0");
  if (h.mem_capacity <= 0)
    return InvalidArgumentError(origin, ": needs \"mem_capacity\" (bytes) > 0");
  const std::string topo = j.value("topology", std::string("switch"));
  if (topo == "torus3d") {
    h.topology = Topology::kTorus3d;
  } else if (topo == "switch") {
    h.topology = Topology::kSwitch;
  } else {
    return InvalidArgumentError(origin, ": topology must be torus3d or switch, not ", topo);
  }
  h.link_bw = j.value("link_bw", 0.0);
  h.links_per_chip = j.value("links_per_chip", h.topology == Topology::kTorus3d ? 6 : 1);
  h.wrap_min_chips = j.value("wrap_min_chips", 64);
  h.node_size = j.value("node_size", 1);
  h.inter_node_bw = j.value("inter_node_bw", h.link_bw);
  h.step_latency_s = j.value("step_latency_s", h.step_latency_s);
  h.max_chips = j.value("max_chips", h.link_bw > 0 ? 256 : 1);
  if (j.contains("efficiency")) {
    const json& e = j["efficiency"];
    h.eff.matmul = e.value("matmul", h.eff.matmul);
    h.eff.network = e.value("network", h.eff.network);
    h.eff.memory = e.value("memory", h.eff.memory);
  }
  return h;
}

std::string HardwareToJson(const HardwareSpec& h) {
  json j;
  j["name"] = h.name;
  j["description"] = h.description;
  j["peak_flops"] = h.peak_flops;
  j["mem_bw"] = h.mem_bw;
  j["mem_capacity"] = h.mem_capacity;
  j["topology"] = h.topology == Topology::kTorus3d ? "torus3d" : "switch";
  j["link_bw"] = h.link_bw;
  j["links_per_chip"] = h.links_per_chip;
  j["wrap_min_chips"] = h.wrap_min_chips;
  j["node_size"] = h.node_size;
  j["inter_node_bw"] = h.inter_node_bw;
  j["step_latency_s"] = h.step_latency_s;
  j["max_chips"] = h.max_chips;
  j["efficiency"] = {
      {"matmul", h.eff.matmul}, {"network", h.eff.network}, {"memory", h.eff.memory}};
  return j.dump(2);
}

Result<HardwareSpec> LoadHardware(std::string_view name) {
  if (name == "tpu-v4") return TpuV4();
  if (name == "a100-80g" || name == "a100") return A100();
  if (name == "h100-sxm" || name == "h100") return H100();
  if (name == "local") {
    const std::string path = LocalRooflinePath();
    auto text = ReadFile(path);
    if (!text.ok()) {
      return NotFoundError("no measured roofline at ", path, ": run `scaleinfer roofline` first");
    }
    SI_ASSIGN_OR_RETURN(HardwareSpec h, HardwareFromJson(*text, path));
    h.name = "local";
    return h;
  }
  auto text = ReadFile(std::string(name));
  if (!text.ok()) {
    return NotFoundError("unknown hardware '", name,
                         "' (built-in: tpu-v4, a100-80g, h100-sxm, local; or a JSON file)");
  }
  return HardwareFromJson(*text, name);
}

}  // namespace si::analysis
