// Measures this machine's roofline: memory read bandwidth and peak arithmetic throughput for 1..N threads,
// cached as JSON so benchmarks and the planner's `local` hardware read the same numbers.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "si/base/status.h"

namespace si {

struct RooflinePoint {
  int threads = 1;
  double mem_bw = 0;                         // bytes/s, streaming read of a buffer >> last-level cache
  std::map<std::string, double> peak_flops;  // "f32" (FMA), "bf16" (AVX512_BF16 dot), "int8" (VNNI dot),
                                              // "int8_avx2" (vpmaddubsw + vpmaddwd): ops/s
};

struct Roofline {
  std::string cpu;
  std::string measured_at;                   // ISO 8601 UTC
  int64_t mem_capacity_bytes = 0;
  std::map<std::string, int64_t> caches;     // "l1d", "l2", "l3" bytes (per instance, from sysfs)
  std::vector<RooflinePoint> points;         // threads = 1..N
  // The best point for each quantity (over thread counts).
  double best_mem_bw() const;
  double best_peak(const std::string& kind) const;
  const RooflinePoint* AtThreads(int threads) const;
};

// Runs the measurements (a few seconds per thread count).
Roofline MeasureRoofline(int max_threads);

std::string RooflineToJson(const Roofline& r);
Result<Roofline> RooflineFromJson(const std::string& json);
// ${XDG_CACHE_HOME:-$HOME/.cache}/scaleinfer/roofline.json
std::string RooflineCachePath();
// Reads the cache, or measures and writes it when absent (or when refresh is set).
Result<Roofline> LoadOrMeasureRoofline(int max_threads, bool refresh, bool* measured = nullptr);

}  // namespace si
