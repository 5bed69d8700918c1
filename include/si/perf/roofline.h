// Measures this machine's roofline: memory read bandwidth and peak arithmetic throughput for 1..N
// threads, cached as JSON so benchmarks and the planner's `local` hardware read the same numbers.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "si/base/status.h"

namespace si {

struct RooflinePoint {
  int threads = 1;
  double mem_bw = 0;  // bytes/s, streaming read of a buffer >> last-level cache
  std::map<std::string, double> peak_flops;  // "f32" (FMA), "bf16" (AVX512_BF16 dot), "int8" (VNNI
                                             // dot), "int8_avx2" (vpmaddubsw + vpmaddwd): ops/s
};

// The probes' revision, written to the cache: a cache written by other probes is measured again
// (2: the AVX2 int8 probes read their weights from L1; version 1 read int8 1.4x too low. 3: the
// read probe keeps the faster of one and four streams; version 2 ran four only, 0.65x on Zen 4).
inline constexpr int kRooflineProbeVersion = 3;

struct Roofline {
  int probe_version = kRooflineProbeVersion;  // of the probes that measured it
  std::string cpu;
  std::string measured_at;  // ISO 8601 UTC
  int64_t mem_capacity_bytes = 0;
  std::map<std::string, int64_t> caches;  // "l1d", "l2", "l3" bytes (per instance, from sysfs)
  std::vector<RooflinePoint> points;      // threads = 1..N
  // The best point for each quantity (over thread counts).
  double best_mem_bw() const;
  double best_peak(const std::string& kind) const;
  const RooflinePoint* AtThreads(int threads) const;
};

#if defined(__x86_64__)
// Register-only AVX2 int8 loop of `iters` rounds (the caller checks AVX2 and FMA); returns int8 ops
// done (2 per multiply-add). q8_0_block = false: vpmaddubsw + vpmaddwd + vpaddd per 32 pairs, the
// int8 dot of the non-VNNI kernels (the roofline's "int8_avx2"). true: plus the sign, the int32 ->
// f32 convert and the FMA with the block's scales, what matmul_quant-inl.h does per (row, output,
// block) of Q8_0 x Q8_0 (kernel_bench peak/q8_0_block_avx2).
double Avx2Int8Probe(int64_t iters, bool q8_0_block, float* sink);
#endif

// Runs the measurements (a few seconds per thread count).
Roofline MeasureRoofline(int max_threads);

std::string RooflineToJson(const Roofline& r);
Result<Roofline> RooflineFromJson(const std::string& json);
// ${XDG_CACHE_HOME:-$HOME/.cache}/scaleinfer/roofline.json
std::string RooflineCachePath();
// Reads the cache, or measures and writes it when absent (or when refresh is set).
Result<Roofline> LoadOrMeasureRoofline(int max_threads, bool refresh, bool* measured = nullptr);

}  // namespace si
