// scaleinfer roofline [--threads N] [--json] [--refresh]: this machine's memory read bandwidth and peak
// arithmetic throughput per thread count, cached for bench and the planner's `local` hardware.
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
  for (const auto& [k, v] : r->caches) std::printf(", %s %lld KiB", k.c_str(), static_cast<long long>(v / 1024));
  std::printf("\n%s %s (%s)\n\n", measured ? "measured" : "cached  ", r->measured_at.c_str(),
              RooflineCachePath().c_str());
  std::printf("%8s %14s %16s %16s %16s %14s\n", "threads", "read GB/s", "f32 FMA GFLOP/s", "bf16 GFLOP/s",
              "int8 GOP/s", "f32 ridge F/B");
  for (const auto& p : r->points) {
    auto get = [&](const char* k) { auto it = p.peak_flops.find(k); return it == p.peak_flops.end() ? 0.0 : it->second; };
    std::printf("%8d %14.2f %16.1f %16.1f %16.1f %14.1f\n", p.threads, p.mem_bw / 1e9, get("f32") / 1e9,
                get("bf16") / 1e9, get("int8") / 1e9, get("f32") / p.mem_bw);
  }
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(roofline, "roofline", "Measure memory bandwidth and peak FLOP/s of this machine (cached)", 70,
                    [](CLI::App& sub) -> CommandRunner {
                      auto o = std::make_shared<Options>();
                      sub.add_option("-t,--threads", o->threads, "measure 1..N threads (0: all cores)");
                      sub.add_flag("--json", o->json, "print the cached JSON");
                      sub.add_flag("--refresh", o->refresh, "measure again even if cached");
                      return [o] { return Run(*o); };
                    });

}  // namespace si::cli
