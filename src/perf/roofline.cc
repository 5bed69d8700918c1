// Roofline probes. f32 FMA throughput and read bandwidth use Highway (compiled per target, the best
// one runs); int8 and bf16 dot-product throughput use the AVX512_VNNI / AVX512_BF16 instructions
// directly through target attributes, because Highway 1.0.3 has no int8 dot-product op and they are
// what the quantized kernels use. Each probe keeps its accumulators in registers (independent
// chains, enough to cover the FMA latency x issue width), so it measures the arithmetic units, not
// memory.
#include "si/perf/roofline.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "si/base/mmap_file.h"
#include "si/base/thread_pool.h"
#include "si/base/timer.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "perf/roofline.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace si {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// FLOPs done by `iters` rounds of 12 independent FMA chains of one vector each.
double FmaProbe(int64_t iters, float* sink) {
  const hn::ScalableTag<float> d;
  auto a0 = hn::Set(d, 1.0f), a1 = hn::Set(d, 1.1f), a2 = hn::Set(d, 1.2f), a3 = hn::Set(d, 1.3f);
  auto a4 = hn::Set(d, 1.4f), a5 = hn::Set(d, 1.5f), a6 = hn::Set(d, 1.6f), a7 = hn::Set(d, 1.7f);
  auto a8 = hn::Set(d, 1.8f), a9 = hn::Set(d, 1.9f), a10 = hn::Set(d, 2.0f), a11 = hn::Set(d, 2.1f);
  const auto m = hn::Set(d, 0.999999f), c = hn::Set(d, 1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
    a0 = hn::MulAdd(a0, m, c);
    a1 = hn::MulAdd(a1, m, c);
    a2 = hn::MulAdd(a2, m, c);
    a3 = hn::MulAdd(a3, m, c);
    a4 = hn::MulAdd(a4, m, c);
    a5 = hn::MulAdd(a5, m, c);
    a6 = hn::MulAdd(a6, m, c);
    a7 = hn::MulAdd(a7, m, c);
    a8 = hn::MulAdd(a8, m, c);
    a9 = hn::MulAdd(a9, m, c);
    a10 = hn::MulAdd(a10, m, c);
    a11 = hn::MulAdd(a11, m, c);
  }
  auto s =
      hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)), hn::Add(hn::Add(a4, a5), hn::Add(a6, a7)));
  s = hn::Add(s, hn::Add(hn::Add(a8, a9), hn::Add(a10, a11)));
  *sink += hn::GetLane(s);
  return 2.0 * 12 * static_cast<double>(hn::Lanes(d)) * static_cast<double>(iters);
}

// Streams p[0, n) once as kStreams interleaved sequential streams (one per 1 / kStreams of the
// slice), two vectors per stream per step. Which pattern reaches the most depends on the CPU, so
// the probe runs both and keeps the faster (ReadProbe). Zen 3 (2 threads): one stream per thread
// 15.3 GB/s while the GEMV, which reads 4 weight rows at once, pulled 22 GB/s (MBU 1.46): a single
// stream was limited by the memory-level parallelism its prefetcher reaches. Zen 4 (1 thread, 1
// GiB, /tmp microbenchmark, 3 runs): one stream 29.8-31.6 GB/s, four 16.0-17.1 (ymm) or 18.9-20.1
// (zmm): the probe with only four streams read 20.2 GB/s and the panel GEMVs then showed MBU 1.2.
template <int kStreams>
double ReadStreams(const float* p, int64_t n, float* sink) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t q = n / kStreams / (2 * N) * (2 * N);  // floats per stream
  const float* s[kStreams];
  for (int k = 0; k < kStreams; ++k) s[k] = p + k * q;
  decltype(hn::Zero(d)) a[kStreams], b[kStreams];
  for (int k = 0; k < kStreams; ++k) a[k] = b[k] = hn::Zero(d);
  for (int64_t i = 0; i < q; i += 2 * N) {
    for (int k = 0; k < kStreams; ++k) {
      a[k] = hn::Add(a[k], hn::LoadU(d, s[k] + i));
      b[k] = hn::Add(b[k], hn::LoadU(d, s[k] + i + N));
    }
  }
  auto sum = hn::Zero(d);
  for (int k = 0; k < kStreams; ++k) sum = hn::Add(sum, hn::Add(a[k], b[k]));
  *sink += hn::GetLane(sum);
  return static_cast<double>(kStreams * q) * sizeof(float);
}

// streams: 1 or 4.
double ReadProbe(const float* p, int64_t n, int streams, float* sink) {
  return streams == 1 ? ReadStreams<1>(p, n, sink) : ReadStreams<4>(p, n, sink);
}

}  // namespace HWY_NAMESPACE
}  // namespace si
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace si {
HWY_EXPORT(FmaProbe);
HWY_EXPORT(ReadProbe);

namespace {

#if defined(__x86_64__)
// int8 ops (multiply + add counted as 2) of `iters` rounds of 8 independent vpdpbusd chains.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) double VnniProbe(int64_t iters,
                                                                        float* sink) {
  __m512i acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = _mm512_set1_epi32(i);
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 8; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
  }
  __m512i s = acc[0];
  for (int j = 1; j < 8; ++j) s = _mm512_add_epi32(s, acc[j]);
  *sink += static_cast<float>(_mm512_reduce_add_epi32(s));
  return 2.0 * 64 * 8 * static_cast<double>(iters);
}

// The AVX2 int8 loops of Avx2Int8Probe (declared in roofline.h): 8 independent int32 chains, each
// with its own product per round (with one shared operand the compiler computes the product once
// and only the adds remain: an earlier probe measured 2.1x the true rate so). The weights are read
// from L1 every round, as the kernels' tiles read theirs, so that the loop fits the 16 ymm
// registers. Until 2026-12-03 both loops held 8 weights in registers (18 ymm): GCC kept the weights
// and two accumulators on the stack and the probe read 136 GOP/s on one thread while the int8 panel
// GEMM ran 172 (1.1B pp512), and the Q8_0 block loop converted and scaled every product (the
// kernels do it once per 8 products, per block of 32 k) and read below batched decode's rate.
//   plain (int8 rows): per product vpmaddubsw + vpmaddwd + vpaddd.
//   Q8_0 block: the panel tile's mix, 2 weight vectors x 4 activation rows per round: vpabsb per
//   weight, vpsignb + vpmaddubsw + vpmaddwd + vpaddd per product, and every 8 rounds (a block) one
//   convert + multiply of the scales + FMA per chain into an f32 accumulator.
template <bool kBlock>
__attribute__((target("avx2,fma"))) double Avx2Int8Loop(int64_t iters, float* sink) {
  alignas(32) int8_t wbuf[8][32];
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 32; ++j) wbuf[i][j] = static_cast<int8_t>((i + 1) * (j % 2 ? 1 : -1));
  const int8_t* wp = &wbuf[0][0];
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_si256();
  float s = 0.0f;
  if constexpr (!kBlock) {
    __m256i a = _mm256_set1_epi8(3);
    for (int64_t it = 0; it < iters; ++it) {
      for (int i = 0; i < 8; ++i) {
        const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp + i * 32));
        acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(_mm256_maddubs_epi16(a, w), ones));
      }
      // A new operand every round (the products stay in the loop), and the weights re-read.
      __asm__ volatile("" : "+x"(a), "+r"(wp));
    }
  } else {
    alignas(32) float facc[8][8] = {};
    alignas(32) const float ds[8] = {0.5f, 0.25f, 0.5f, 0.25f, 0.5f, 0.25f, 0.5f, 0.25f};
    __m256i a[4];
    for (int r = 0; r < 4; ++r) a[r] = _mm256_set1_epi8(static_cast<char>(3 + r));
    iters = (iters + 7) / 8 * 8;
    for (int64_t it = 0; it < iters; ++it) {
      for (int j = 0; j < 2; ++j) {
        const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp + j * 32));
        const __m256i wabs = _mm256_abs_epi8(w);
        for (int r = 0; r < 4; ++r) {
          acc[r * 2 + j] = _mm256_add_epi32(
              acc[r * 2 + j],
              _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(a[r], w)), ones));
        }
      }
      __asm__ volatile("" : "+x"(a[0]), "+x"(a[1]), "+x"(a[2]), "+x"(a[3]), "+r"(wp));
      if (it % 8 == 7) {  // end of a block: the scales, once per chain
        const __m256 d = _mm256_load_ps(ds);
        for (int i = 0; i < 8; ++i) {
          const __m256 sc = _mm256_mul_ps(d, _mm256_set1_ps(0.125f * static_cast<float>(i + 1)));
          _mm256_store_ps(facc[i],
                          _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i]), sc, _mm256_load_ps(facc[i])));
          acc[i] = _mm256_setzero_si256();
        }
      }
    }
    for (int i = 0; i < 8; ++i) s += facc[i][0];
  }
  for (int i = 0; i < 8; ++i) s += static_cast<float>(_mm256_extract_epi32(acc[i], 0));
  *sink += s;
  return 2.0 * 32 * 8 * static_cast<double>(iters);
}

__attribute__((target("avx512f,avx512bf16"))) double Bf16Probe(int64_t iters, float* sink) {
  __m512 acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3f00);
  for (int64_t i = 0; i < iters; ++i) {
    for (int j = 0; j < 8; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
  for (int j = 1; j < 8; ++j) s = _mm512_add_ps(s, acc[j]);
  *sink += _mm512_reduce_add_ps(s);
  return 2.0 * 32 * 8 * static_cast<double>(iters);
}
#endif

// Runs `probe(thread)` on `threads` threads at once, for about `seconds`, best of 3; returns
// units/s.
template <typename Probe>
double Throughput(ThreadPool& pool, int threads, double seconds, Probe probe) {
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<double> units(threads, 0.0);
    const double t0 = NowSeconds();
    pool.Run(threads, [&](int64_t task, int) {
      const double start = NowSeconds();
      while (NowSeconds() - start < seconds) units[task] += probe(static_cast<int>(task));
    });
    const double dt = NowSeconds() - t0;
    double total = 0;
    for (double u : units) total += u;
    best = std::max(best, total / dt);
  }
  return best;
}

int64_t ReadSysfsSize(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  if (!(in >> s) || s.empty()) return 0;
  int64_t v = std::atoll(s.c_str());
  if (s.back() == 'K') v *= 1024;
  if (s.back() == 'M') v *= 1024 * 1024;
  return v;
}

std::string CpuName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

}  // namespace

double Roofline::best_mem_bw() const {
  double b = 0;
  for (const auto& p : points) b = std::max(b, p.mem_bw);
  return b;
}

double Roofline::best_peak(const std::string& kind) const {
  double b = 0;
  for (const auto& p : points) {
    auto it = p.peak_flops.find(kind);
    if (it != p.peak_flops.end()) b = std::max(b, it->second);
  }
  return b;
}

const RooflinePoint* Roofline::AtThreads(int threads) const {
  for (const auto& p : points) {
    if (p.threads == threads) return &p;
  }
  return nullptr;
}

#if defined(__x86_64__)
double Avx2Int8Probe(int64_t iters, bool q8_0_block, float* sink) {
  return q8_0_block ? Avx2Int8Loop<true>(iters, sink) : Avx2Int8Loop<false>(iters, sink);
}
#endif

Roofline MeasureRoofline(int max_threads) {
  if (max_threads <= 0)
    max_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  Roofline r;
  r.cpu = CpuName();
  {
    char buf[32];
    std::time_t now = std::time(nullptr);
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    r.measured_at = buf;
  }
  r.mem_capacity_bytes = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  for (int idx = 0; idx < 5; ++idx) {
    const std::string base = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(idx) + "/";
    std::ifstream lv(base + "level"), ty(base + "type");
    int level = 0;
    std::string type;
    if (!(lv >> level) || !(ty >> type)) continue;
    if (type == "Instruction") continue;
    r.caches["l" + std::to_string(level) + (level == 1 ? "d" : "")] = ReadSysfsSize(base + "size");
  }
  // Bandwidth buffer: 8x the last-level cache, at least 512 MiB, so the read streams from DRAM.
  const int64_t llc = std::max<int64_t>(r.caches.count("l3") ? r.caches["l3"] : 0, 32 << 20);
  const int64_t n =
      std::max<int64_t>(8 * llc, int64_t{512} << 20) / static_cast<int64_t>(sizeof(float));
  std::vector<float> buf(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) buf[i] = static_cast<float>(i & 1023);
  float sink = 0;
  ThreadPool pool(max_threads);
  for (int t = 1; t <= max_threads; ++t) {
    RooflinePoint p;
    p.threads = t;
    std::vector<float> sinks(t, 0.0f);
    p.peak_flops["f32"] = Throughput(
        pool, t, 0.2, [&](int th) { return HWY_DYNAMIC_DISPATCH(FmaProbe)(1 << 16, &sinks[th]); });
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx512vnni")) {
      p.peak_flops["int8"] =
          Throughput(pool, t, 0.2, [&](int th) { return VnniProbe(1 << 16, &sinks[th]); });
    }
    if (__builtin_cpu_supports("avx2")) {
      p.peak_flops["int8_avx2"] = Throughput(
          pool, t, 0.2, [&](int th) { return Avx2Int8Loop<false>(1 << 16, &sinks[th]); });
    }
    if (__builtin_cpu_supports("avx512bf16")) {
      p.peak_flops["bf16"] =
          Throughput(pool, t, 0.2, [&](int th) { return Bf16Probe(1 << 16, &sinks[th]); });
    }
#endif
    // Each thread streams its own contiguous slice once per call, as one stream and as four; the
    // faster pattern is the machine's read bandwidth.
    for (int streams : {1, 4}) {
      p.mem_bw = std::max(p.mem_bw, Throughput(pool, t, 0.5, [&](int th) {
                            const int64_t begin = n * th / t, end = n * (th + 1) / t;
                            return HWY_DYNAMIC_DISPATCH(ReadProbe)(buf.data() + begin, end - begin,
                                                                   streams, &sinks[th]);
                          }));
    }
    for (float s : sinks) sink += s;
    r.points.push_back(p);
  }
  if (sink == 12345.0f) std::fprintf(stderr, " ");  // keeps the probes' results alive
  return r;
}

std::string RooflineToJson(const Roofline& r) {
  nlohmann::json j;
  j["version"] = r.probe_version;
  j["cpu"] = r.cpu;
  j["measured_at"] = r.measured_at;
  j["mem_capacity_bytes"] = r.mem_capacity_bytes;
  j["caches"] = r.caches;
  j["threads"] = nlohmann::json::array();
  for (const auto& p : r.points) {
    j["threads"].push_back(
        {{"threads", p.threads}, {"mem_bw", p.mem_bw}, {"peak_flops", p.peak_flops}});
  }
  // The best over thread counts, for readers that want one number per quantity.
  nlohmann::json best = {{"mem_bw", r.best_mem_bw()}};
  for (const char* k : {"f32", "bf16", "int8", "int8_avx2"}) {
    if (r.best_peak(k) > 0) best["peak_flops"][k] = r.best_peak(k);
  }
  j["best"] = best;
  // The fields the planner's `local` hardware spec reads (src/analysis/hardware.cc): one machine,
  // no network.
  j["name"] = "local";
  j["description"] = "measured by scaleinfer roofline on " + r.cpu;
  j["peak_flops"] = best["peak_flops"];
  j["mem_bw"] = r.best_mem_bw();
  j["mem_capacity"] = static_cast<double>(r.mem_capacity_bytes);
  j["topology"] = "switch";
  j["max_chips"] = 1;
  return j.dump(2) + "\n";
}

Result<Roofline> RooflineFromJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return CorruptError("roofline file is not valid JSON");
  try {
    Roofline r;
    r.probe_version = j.value("version", 0);
    r.cpu = j.value("cpu", "");
    r.measured_at = j.value("measured_at", "");
    r.mem_capacity_bytes = j.value("mem_capacity_bytes", int64_t{0});
    if (j.contains("caches")) r.caches = j["caches"].get<std::map<std::string, int64_t>>();
    for (const auto& p : j.at("threads")) {
      RooflinePoint pt;
      pt.threads = p.at("threads").get<int>();
      pt.mem_bw = p.at("mem_bw").get<double>();
      pt.peak_flops = p.at("peak_flops").get<std::map<std::string, double>>();
      r.points.push_back(pt);
    }
    if (r.points.empty()) return CorruptError("roofline file has no measurements");
    return r;
  } catch (const nlohmann::json::exception& e) {
    return CorruptError("roofline file: ", e.what());
  }
}

std::string RooflineCachePath() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  std::string dir = xdg && *xdg ? xdg : std::string(home && *home ? home : "/tmp") + "/.cache";
  return dir + "/scaleinfer/roofline.json";
}

Result<Roofline> LoadOrMeasureRoofline(int max_threads, bool refresh, bool* measured) {
  const std::string path = RooflineCachePath();
  if (measured) *measured = false;
  if (!refresh && std::filesystem::exists(path)) {
    auto text = ReadFileToString(path);
    if (!text.ok()) return text.status();
    auto r = RooflineFromJson(*text);
    if (!r.ok()) return r.status().WithContext(path + " (run 'scaleinfer roofline --refresh')");
    const int have = r->points.back().threads;
    // A cache from older probes is stale (their int8 peaks were wrong): measure again.
    if (r->probe_version == kRooflineProbeVersion && (max_threads <= 0 || have >= max_threads)) {
      return r;
    }
  }
  Roofline r = MeasureRoofline(max_threads);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  const std::string json = RooflineToJson(r);
  SI_RETURN_IF_ERROR(WriteFileAtomic(path, json.data(), json.size()));
  if (measured) *measured = true;
  return r;
}

}  // namespace si
#endif  // HWY_ONCE
