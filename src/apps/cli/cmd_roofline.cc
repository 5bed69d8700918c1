// scaleinfer roofline [--threads N] [--json] [--refresh]: this machine's memory read bandwidth and
// peak arithmetic throughput per thread count, cached for bench and the planner's `local` hardware.
#include <cstdio>

#include "command.h"
#include "si/perf/roofline.h"

namespace si::cli {
namespace {

struct Options {
  int threads = 0;
  bool json = false, refresh = false;
};

int Run(const Options& o) {
  if (o.threads < 0) return PrintError("roofline", InvalidArgumentError("--threads must be >= 0"));
  bool measured = false;
  auto r = LoadOrMeasureRoofline(o.threads, o.refresh, &measured);
  if (!r.ok()) return PrintError("roofline", r.status());
  if (o.json) {
    std::fputs(RooflineToJson(*r).c_str(), stdout);
    return 0;
  }
  std::printf("cpu        %s\n", r->cpu.c_str());
  std::printf("memory     %.1f GiB", r->mem_capacity_bytes / 1073741824.0);
  for (const auto& [k, v] : r->caches)
    std::printf(", %s %lld KiB", k.c_str(), static_cast<long long>(v / 1024));
  std::printf("\n%s %s (%s)\n\n", measured ? "measured" : "cached  ", r->measured_at.c_str(),
              RooflineCachePath().c_str());
  // "-" where the CPU lacks the instructions (bf16: AVX512_BF16; int8 VNNI: AVX512_VNNI; int8 AVX2:
  // AVX2).
  std::printf("%8s %12s %14s %14s %16s %16s %10s\n", "threads", "read GB/s", "f32 FMA GF/s",
              "bf16 GF/s", "int8 VNNI GOP/s", "int8 AVX2 GOP/s", "ridge F/B");
  for (const auto& p : r->points) {
    auto col = [&](const char* k, int width) {
      auto it = p.peak_flops.find(k);
      if (it == p.peak_flops.end()) return std::string(width - 1, ' ') + "-";
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%*.1f", width, it->second / 1e9);
      return std::string(buf);
    };
    std::printf("%8d %12.2f %s %s %s %s %10.1f\n", p.threads, p.mem_bw / 1e9,
                col("f32", 14).c_str(), col("bf16", 14).c_str(), col("int8", 16).c_str(),
                col("int8_avx2", 16).c_str(),
                p.peak_flops.count("f32") ? p.peak_flops.at("f32") / p.mem_bw : 0.0);
  }
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(roofline, "roofline",
                    "Measure memory bandwidth and peak FLOP/s of this machine (cached)", 70,
                    [](CLI::App& sub) -> CommandRunner {
                      auto o = std::make_shared<Options>();
                      sub.add_option("-t,--threads", o->threads,
                                     "measure 1..N threads (0: all cores)");
                      sub.add_flag("--json", o->json, "print the cached JSON");
                      sub.add_flag("--refresh", o->refresh, "measure again even if cached");
                      return [o] { return Run(*o); };
                    });

}  // namespace si::cli
