// scaleinfer bench: llama-bench-style prefill (ppN) and decode (tgN) throughput, plus what llama-bench does not
// print: MFU for prefill and MBU for decode against this machine's measured roofline (scaleinfer roofline),
// the roofline bound for batched decode, and a per-op time breakdown. Warm-up, then repeats; median and spread.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "args.h"
#include "command.h"
#include "si/base/timer.h"
#include "si/perf/roofline.h"
#include "dist_session.h"
#include "si/runtime/engine.h"
#include "si/runtime/sampler.h"

namespace si::cli {
namespace {

struct Options {
  std::string model, threads = "0";
  int prompt = 512, gen = 128, batch = 1, reps = 5;
  bool json = false;
  DistFlags dist;
};

struct Stats {
  double median = 0, min = 0, max = 0;
};
Stats Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v.front(), v.back()};
}

struct TestResult {
  std::string test;
  int threads = 0, batch = 0;
  Stats tps{};             // tokens/s
  double mfu = 0, mbu = 0; // fractions, at the median
  double peak = 0, bw = 0;
  std::string peak_kind{};
  double bytes_per_step = 0, bw_bound = 0, compute_bound = 0;  // tg only, tokens/s
  OpTimes times{};                                             // summed over the timed repeats
  double sampling = 0;
};

// Matmul parameters of the transformer layers, and of the output projection.
std::pair<int64_t, int64_t> MatmulParams(const Model& m) {
  int64_t layers = 0;
  const ModelConfig& c = m.config();
  for (const ArchRole& ar : ArchRoles(c.arch)) {
    const RoleInfo& info = GetRoleInfo(ar.role);
    if (info.op != OpKind::kMatMul || !info.per_layer) continue;
    for (int64_t l = 0; l < c.num_layers; ++l) {
      const WeightRef& w = m.W(ar.role, l);
      if (w.present()) layers += w.mat.rows * w.mat.cols;
    }
  }
  const MatRef& out = m.OutputMatrix().mat;
  return {layers, out.rows * out.cols};
}

// Under MPI (or with --mesh/--layout): prefill and decode tokens/s of the distributed engine, the
// measured share of time in collectives (wall time inside comm calls, rank 0) and the bytes per rank per
// layer; rank 0 prints. One thread count (the first of -t).
int RunDist(const Options& o) {
  auto threads = ParseIds(o.threads);
  if (!threads.ok() || threads->empty()) return PrintError("bench", InvalidArgumentError("--threads: expected a number"));
  auto session = Session::Open(o.model, o.dist, {.num_threads = (*threads)[0]},
                               {.batch = o.batch, .prompt = o.prompt, .gen = o.gen});
  if (!session.ok()) {
    return OpenError("bench", session.status());
  }
  Session& s = **session;
  DistEngine& e = *s.dist();
  const ModelConfig& c = s.config();
  if (o.prompt + 1 + o.gen > s.context_len()) {
    return s.Error("bench", InvalidArgumentError("-p ", o.prompt, " / -n ", o.gen, " exceed the context length"));
  }
  if (s.root() && o.dist.verbose && !s.choice_note().empty()) std::fputs(s.choice_note().c_str(), stderr);
  std::vector<int32_t> prompt(std::max(o.prompt, 1));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 13) % c.vocab_size);
  struct Row {
    std::string test;
    bool overlap = true;
    std::vector<double> tps, comm_share;
    int64_t bytes_per_layer = 0;
  };
  // --overlap both: off and on alternate within every repetition, so both see the same machine
  // state.
  std::vector<bool> modes;
  if (o.dist.overlap == "both") {
    modes = {false, true};
  } else {
    modes = {o.dist.overlap != "off"};
  }
  std::vector<Row> rows;
  for (int test = 0; test < 2; ++test) {
    if ((test == 0 && o.prompt == 0) || (test == 1 && o.gen == 0)) continue;
    std::vector<Row> mrows;
    for (bool mode : modes) {
      Row r;
      r.test = test == 0 ? "pp" + std::to_string(o.prompt) : "tg" + std::to_string(o.gen);
      r.overlap = mode;
      mrows.push_back(r);
    }
    for (int rep = -1; rep < o.reps; ++rep) {
      for (Row& r : mrows) {
        e.set_overlap(r.overlap);
        std::vector<int> seqs;
        std::vector<SeqTokens> batch;
        std::vector<int32_t> next(o.batch, 1);
        for (int b = 0; b < o.batch; ++b) seqs.push_back(e.NewSequence());
        std::vector<float> logits;
        if (test == 1) {  // decode starts after one position
          for (int b = 0; b < o.batch; ++b) batch.push_back({seqs[b], {&next[b], 1}, false});
          if (Status st = e.Forward(batch, &logits); !st.ok()) return s.Error("bench", st);
        } else {
          for (int b = 0; b < o.batch; ++b) batch.push_back({seqs[b], prompt, false});
        }
        e.ResetStats();
        const int steps = test == 0 ? 1 : o.gen;
        const double t0 = NowSeconds();
        for (int step = 0; step < steps; ++step) {
          if (Status st = e.Forward(batch, &logits); !st.ok()) return s.Error("bench", st);
          if (test == 1) {
            for (int b = 0; b < o.batch; ++b) {
              next[b] =
                  Argmax({logits.data() + b * c.vocab_size, static_cast<size_t>(c.vocab_size)});
            }
          }
        }
        const double dt = NowSeconds() - t0;
        for (int q : seqs) e.FreeSequence(q);
        if (rep < 0) continue;
        r.tps.push_back(static_cast<double>(o.batch) * (test == 0 ? o.prompt : o.gen) / dt);
        r.comm_share.push_back((e.layer_stats().seconds + e.lm_head_stats().seconds) / dt);
        r.bytes_per_layer = e.layer_stats().total_bytes() / steps / c.num_layers;
      }
    }
    rows.insert(rows.end(), mrows.begin(), mrows.end());
  }
  if (!s.root()) return 0;
  std::printf("model %s: %s; %s, %d threads/rank, %s kernels\n", o.model.c_str(),
              std::string(ArchName(c.arch)).c_str(), s.description().c_str(), s.num_threads(),
              s.kernels_name());
  std::printf(
      "memory per rank: weights %.2f MiB (max over ranks; unsharded matmul weights %.2f MiB), KV "
      "cache "
      "%.2f MiB (rank 0, last test)\n\n",
      s.max_weight_bytes_per_rank() / 1048576.0, s.model().matmul_weight_bytes() / 1048576.0,
      e.kv_cache_bytes() / 1048576.0);
  std::printf("| %5s | %7s | %7s | %22s | %16s | %s\n", "batch", "test", "overlap",
              "t/s (median [min-max])", "comm share (med)", "bytes/rank/layer");
  std::printf(
      "|-------|---------|---------|------------------------|------------------|-----------------"
      "\n");
  for (const Row& r : rows) {
    const Stats t = Summarize(r.tps), cs = Summarize(r.comm_share);
    char range[64];
    std::snprintf(range, sizeof(range), "%.1f [%.1f-%.1f]", t.median, t.min, t.max);
    std::printf("| %5d | %7s | %7s | %22s | %15.1f%% | %lld\n", o.batch, r.test.c_str(),
                r.overlap ? "on" : "off", range, 100 * cs.median,
                static_cast<long long>(r.bytes_per_layer));
  }
  return 0;
}

int Run(const Options& o) {
  if (o.dist.Requested()) return RunDist(o);
  auto threads = ParseIds(o.threads);
  if (!threads.ok()) return PrintError("bench", InvalidArgumentError("--threads: expected a list such as 1,2"));
  if (o.prompt < 0 || o.gen < 0 || o.batch < 1 || o.reps < 1) {
    return PrintError("bench", InvalidArgumentError("-p and -n must be >= 0, -b and -r >= 1"));
  }
  auto loaded = Model::Load(o.model);
  if (!loaded.ok()) return PrintError("bench", loaded.status());
  std::shared_ptr<const Model> model = std::move(*loaded);
  const ModelConfig& c = model->config();
  if (c.is_encoder()) return PrintError("bench", InvalidArgumentError("bench runs decoder models"));
  int max_threads = 0;
  for (int32_t t : *threads) max_threads = std::max(max_threads, t == 0 ? static_cast<int>(std::thread::hardware_concurrency()) : t);
  auto roof = LoadOrMeasureRoofline(max_threads, false);
  if (!roof.ok()) return PrintError("bench", roof.status());
  const auto [layer_params, out_params] = MatmulParams(*model);
  const DType wtype = model->W(Role::kWdown, 0).mat.type;
  int64_t model_bytes = 0;
  for (const auto& [t, b] : model->bytes_by_type()) model_bytes += b;

  std::vector<TestResult> results;
  for (int32_t t_req : *threads) {
    auto engine_or = Engine::Create(model, {.num_threads = t_req});
    if (!engine_or.ok()) return PrintError("bench", engine_or.status());
    Engine& e = **engine_or;
    const int nt = e.num_threads();
    const RooflinePoint* rp = roof->AtThreads(nt);
    if (rp == nullptr) return PrintError("bench", InvalidArgumentError("no roofline for ", nt, " threads"));
    // The peak of the arithmetic the kernels use: quantized weights go through exact int8 dot products
    // (VNNI vpdpbusd in the AVX3_VNNI table, vpmaddubsw + vpmaddwd in the others), float weights through f32
    // FMA. Falls back to f32 when the roofline file has no int8 probe (older file, or no AVX2).
    const bool quantized = wtype == DType::kQ8_0 || wtype == DType::kQ4_0 || wtype == DType::kQ4_K ||
                           wtype == DType::kQ5_K || wtype == DType::kQ6_K;
    const bool vnni = std::string(e.kernels().name).find("VNNI") != std::string::npos;
    std::string peak_kind = "f32";
    if (quantized && vnni && rp->peak_flops.count("int8")) peak_kind = "int8";
    if (quantized && !vnni && rp->peak_flops.count("int8_avx2")) peak_kind = "int8_avx2";
    const double peak = rp->peak_flops.at(peak_kind);
    if (o.prompt + (o.gen > 0 ? 1 : 0) + o.gen > e.context_len()) {
      return PrintError("bench", InvalidArgumentError("-p ", o.prompt, " / -n ", o.gen, " exceed the context length ",
                                                      e.context_len()));
    }
    std::vector<int32_t> prompt(o.prompt);
    for (int i = 0; i < o.prompt; ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 13) % c.vocab_size);

    if (o.prompt > 0) {
      TestResult r{.test = "pp" + std::to_string(o.prompt), .threads = nt, .batch = o.batch};
      std::vector<double> tps;
      for (int rep = -1; rep < o.reps; ++rep) {  // rep -1: warm-up
        std::vector<int> seqs;
        std::vector<SeqTokens> batch;
        for (int b = 0; b < o.batch; ++b) seqs.push_back(e.NewSequence());
        for (int b = 0; b < o.batch; ++b) batch.push_back({seqs[b], prompt, false});
        std::vector<float> logits;
        e.op_times().Clear();
        e.set_profile(rep >= 0);
        const double t0 = NowSeconds();
        Status st = e.Forward(batch, &logits);
        const double dt = NowSeconds() - t0;
        if (!st.ok()) return PrintError("bench", st);
        for (int s : seqs) e.FreeSequence(s);
        if (rep < 0) continue;
        tps.push_back(o.batch * o.prompt / dt);
        const OpTimes& ot = e.op_times();
        r.times.matmul += ot.matmul, r.times.attention += ot.attention, r.times.norm += ot.norm;
        r.times.activation += ot.activation, r.times.other += ot.other;
      }
      r.tps = Summarize(tps);
      // FLOPs actually done by the matmuls: every token through the layers, one logits row per sequence.
      const double flops_per_token = 2.0 * layer_params + 2.0 * out_params / o.prompt;
      r.mfu = flops_per_token * r.tps.median / peak;
      r.peak = peak, r.peak_kind = peak_kind, r.bw = rp->mem_bw;
      results.push_back(r);
    }
    if (o.gen > 0) {
      TestResult r{.test = "tg" + std::to_string(o.gen), .threads = nt, .batch = o.batch};
      std::vector<double> tps;
      for (int rep = -1; rep < o.reps; ++rep) {
        std::vector<int> seqs;
        std::vector<int32_t> next(o.batch, 1);
        std::vector<SeqTokens> batch(o.batch);
        for (int b = 0; b < o.batch; ++b) seqs.push_back(e.NewSequence());
        std::vector<float> logits;
        for (int b = 0; b < o.batch; ++b) batch[b] = {seqs[b], {&next[b], 1}, false};
        if (Status st = e.Forward(batch, &logits); !st.ok()) return PrintError("bench", st);  // position 0
        e.op_times().Clear();
        e.set_profile(rep >= 0);
        double sampling = 0;
        const double t0 = NowSeconds();
        for (int step = 0; step < o.gen; ++step) {
          const double s0 = NowSeconds();
          for (int b = 0; b < o.batch; ++b) {
            next[b] = Argmax({logits.data() + b * c.vocab_size, static_cast<size_t>(c.vocab_size)});
          }
          sampling += NowSeconds() - s0;
          if (Status st = e.Forward(batch, &logits); !st.ok()) return PrintError("bench", st);
        }
        const double dt = NowSeconds() - t0;
        for (int s : seqs) e.FreeSequence(s);
        if (rep < 0) continue;
        tps.push_back(o.batch * o.gen / dt);
        const OpTimes& ot = e.op_times();
        r.times.matmul += ot.matmul, r.times.attention += ot.attention, r.times.norm += ot.norm;
        r.times.activation += ot.activation, r.times.other += ot.other;
        r.sampling += sampling;
      }
      r.tps = Summarize(tps);
      // Bytes read per step: every matmul weight once as the engine holds it
      // (Engine::matmul_bytes), plus the K and V cache of each sequence (average context over the
      // run: 1 + gen/2 positions), f32.
      const double kv = 2.0 * c.num_layers * c.kv_dim() * 4.0 * (1.0 + o.gen / 2.0) * o.batch;
      r.bytes_per_step = static_cast<double>(e.matmul_bytes()) + kv;
      const double steps_per_s = r.tps.median / o.batch;
      r.mbu = r.bytes_per_step * steps_per_s / rp->mem_bw;
      r.mfu = 2.0 * (layer_params + out_params) * r.tps.median / peak;
      r.peak = peak, r.peak_kind = peak_kind, r.bw = rp->mem_bw;
      r.bw_bound = o.batch * rp->mem_bw / r.bytes_per_step;
      r.compute_bound = peak / (2.0 * (layer_params + out_params));
      results.push_back(r);
    }
  }

  auto breakdown = [](const TestResult& r) {
    const double total = r.times.matmul + r.times.attention + r.times.norm + r.times.activation + r.times.other + r.sampling;
    return std::vector<std::pair<const char*, double>>{
        {"matmul", r.times.matmul / total},         {"attention", r.times.attention / total},
        {"norm", r.times.norm / total},             {"activation", r.times.activation / total},
        {"other", r.times.other / total},           {"sampling", r.sampling / total}};
  };
  if (o.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const TestResult& r : results) {
      nlohmann::json j = {{"model", o.model}, {"model_bytes", model_bytes}, {"model_params", model->num_params()},
                          {"matmul_params", layer_params + out_params}, {"weight_type", DTypeName(wtype)},
                          {"test", r.test}, {"threads", r.threads}, {"batch", r.batch},
                          {"tokens_per_s", r.tps.median}, {"tokens_per_s_min", r.tps.min},
                          {"tokens_per_s_max", r.tps.max}, {"repeats", o.reps}, {"mfu", r.mfu},
                          {"mbu", r.mbu}, {"peak_flops", r.peak}, {"peak_kind", r.peak_kind}, {"mem_bw", r.bw}};
      if (r.test[0] == 't') {
        j["bytes_per_step"] = r.bytes_per_step;
        j["roofline_bw_bound_tokens_per_s"] = r.bw_bound;
        j["roofline_compute_bound_tokens_per_s"] = r.compute_bound;
      }
      for (const auto& [k, v] : breakdown(r)) j["breakdown"][k] = v;
      out.push_back(j);
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("model %s: %s, %.2f M params (%.2f M in matmuls), %.1f MiB, %s weights\n", o.model.c_str(),
              std::string(ArchName(c.arch)).c_str(), model->num_params() / 1e6, (layer_params + out_params) / 1e6,
              model_bytes / 1048576.0, std::string(DTypeName(wtype)).c_str());
  std::printf("roofline: %s (scaleinfer roofline)\n\n", RooflineCachePath().c_str());
  std::printf("| %7s | %5s | %7s | %22s | %6s | %6s | %s\n", "threads", "batch", "test", "t/s (median [min-max])",
              "MFU", "MBU", "roofline");
  std::printf("|---------|-------|---------|------------------------|--------|--------|---------\n");
  for (const TestResult& r : results) {
    char range[64];
    std::snprintf(range, sizeof(range), "%.1f [%.1f-%.1f]", r.tps.median, r.tps.min, r.tps.max);
    std::printf("| %7d | %5d | %7s | %22s | %5.1f%% | %5.1f%% | ", r.threads, r.batch, r.test.c_str(), range,
                100 * r.mfu, 100 * r.mbu);
    if (r.test[0] == 'p') {
      std::printf("peak %s %.1f GFLOP/s\n", r.peak_kind.c_str(), r.peak / 1e9);
    } else {
      std::printf("bound %.1f t/s = min(%.1f bw: %.1f GB/s / %.1f MB/step x%d, %.1f %s compute)\n",
                  std::min(r.bw_bound, r.compute_bound), r.bw_bound, r.bw / 1e9, r.bytes_per_step / 1e6, r.batch,
                  r.compute_bound, r.peak_kind.c_str());
    }
  }
  std::printf("\nper-op time share:\n");
  for (const TestResult& r : results) {
    std::printf("  %d thr %-6s", r.threads, r.test.c_str());
    for (const auto& [k, v] : breakdown(r)) std::printf("  %s %.1f%%", k, 100 * v);
    std::printf("\n");
  }
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(bench, "bench", "Benchmark prefill and decode: tokens/s, MFU, MBU, per-op breakdown", 65,
                    [](CLI::App& sub) -> CommandRunner {
                      auto o = std::make_shared<Options>();
                      sub.add_option("-m,--model", o->model, "GGUF model file")->required();
                      sub.add_option("-p,--n-prompt", o->prompt, "prompt tokens for the ppN test (0: skip)")->capture_default_str();
                      sub.add_option("-n,--n-gen", o->gen, "generated tokens for the tgN test (0: skip)")->capture_default_str();
                      sub.add_option("-b,--batch", o->batch, "sequences per batch")->capture_default_str();
                      sub.add_option("-t,--threads", o->threads, "thread counts, e.g. 1,2 (0: all cores)")->capture_default_str();
                      sub.add_option("-r,--repetitions", o->reps, "timed repeats after one warm-up")->capture_default_str();
                      sub.add_flag("--json", o->json, "one JSON object per test");
                      o->dist.Add(sub);
                      return [o] { return Run(*o); };
                    });

}  // namespace si::cli
