// The distributed engine against the single-process engine, on in-process fake meshes (FakeComm, N
// ranks as threads): for every golden decoder model, every layout and attention sharding its
// dimensions allow, on meshes of 1, 2 and 4 ranks:
//   - logits (prefill, all rows, and 3 greedy decode steps) equal the single-process engine's
//   within 1e-5
//     relative (f32 weights; max |diff| / max |ref| per row), bit-identical on 1 rank;
//   - greedy tokens identical;
//   - bytes sent per rank per layer (CommStats) equal the derived layer program and the analytical
//   model
//     (cost_model.cc) with the engine's extras (norm statistics all-reduce), and without them Pope
//     et al.'s formulas; the LM head's bytes (lm_head_stats) equal the model's head_collectives;
//   - the analytical model reports invalid (with the reason) exactly the head splits the specs
//   reject.
// Combinations the specs reject must fail with a clear error naming the dimension.
// Every dimension is read from the model files.
#include "si/dist/dist_engine.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "golden_util.h"
#include "si/analysis/cost_model.h"
#include "si/analysis/hardware.h"
#include "si/parallel/fake_comm.h"

namespace si {
namespace {

const std::vector<MeshShape> kMeshes = {{1, 1, 1}, {2, 1, 1}, {1, 2, 1}, {1, 1, 2}, {2, 2, 1},
                                        {1, 2, 2}, {2, 1, 2}, {4, 1, 1}, {1, 4, 1}};
constexpr int64_t kBatch = 4, kPrompt = 5, kSteps = 3;

double RowRelErr(const float* test, const float* ref, int64_t n) {
  double md = 0, mr = 0;
  for (int64_t i = 0; i < n; ++i) {
    md = std::max(md, std::fabs(static_cast<double>(test[i]) - ref[i]));
    mr = std::max(mr, std::fabs(static_cast<double>(ref[i])));
  }
  return md / mr;
}

int32_t Argmax(const float* x, int64_t n) {
  int32_t b = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (x[i] > x[b]) b = static_cast<int32_t>(i);
  }
  return b;
}

// The token sequences every run uses: kBatch prompts of kPrompt ids, then kSteps teacher-forced
// tokens per sequence (the single-process engine's greedy choices).
struct Script {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> steps;  // [step][seq]
  std::vector<std::vector<float>> logits;   // [forward pass] reference logits
};

Script Reference(std::shared_ptr<const Model> model) {
  Script s;
  const int64_t V = model->config().vocab_size;
  for (int64_t b = 0; b < kBatch; ++b) {
    std::vector<int32_t> p;
    for (int64_t t = 0; t < kPrompt; ++t)
      p.push_back(static_cast<int32_t>((b * 7919 + t * 104729 + 13) % V));
    s.prompts.push_back(p);
  }
  // Weights as stored: the distributed engine does not repack them into panels (EngineOptions), so
  // this is the engine whose bits 1 rank must reproduce exactly.
  auto eng = Engine::Create(model, {.num_threads = 1, .repack_weights = false});
  EXPECT_TRUE(eng.ok());
  std::vector<int> seqs;
  std::vector<SeqTokens> batch;
  for (int64_t b = 0; b < kBatch; ++b) {
    seqs.push_back((*eng)->NewSequence());
    batch.push_back({seqs[b], s.prompts[b], true});
  }
  std::vector<float> logits;
  EXPECT_TRUE((*eng)->Forward(batch, &logits).ok());
  s.logits.push_back(logits);
  std::vector<int32_t> next(kBatch);
  for (int64_t step = 0; step < kSteps; ++step) {
    for (int64_t b = 0; b < kBatch; ++b) {
      const int64_t last = step == 0 ? (b + 1) * kPrompt - 1 : b;
      next[b] = Argmax(&s.logits.back()[last * V], V);
    }
    s.steps.push_back(next);
    batch.clear();
    for (int64_t b = 0; b < kBatch; ++b)
      batch.push_back({seqs[b], std::span<const int32_t>(&s.steps[step][b], 1), false});
    EXPECT_TRUE((*eng)->Forward(batch, &logits).ok());
    s.logits.push_back(logits);
  }
  return s;
}

struct RunResult {
  Status status;
  std::vector<std::vector<float>> logits;  // rank 0's, per forward pass
  std::vector<int64_t> layer_bytes;        // rank 0's per forward pass (all layers)
  std::vector<int64_t> head_bytes;         // rank 0's per forward pass (embedding + LM head)
  bool ranks_agree = true;                 // every rank got the same logits and per-layer bytes
};

RunResult RunDist(std::shared_ptr<const Model> model, const MeshShape& shape, PhaseLayout p,
                  const Script& s) {
  RunResult res;
  std::mutex mu;
  std::vector<std::vector<std::vector<float>>> all(shape.num_ranks());
  std::vector<std::vector<int64_t>> bytes(shape.num_ranks()), head_bytes(shape.num_ranks());
  res.status = RunFakeMesh(shape, [&](Mesh& mesh) -> Status {
    DistEngineOptions o;
    o.prefill = o.decode = p;
    o.num_threads = 1;
    SI_ASSIGN_OR_RETURN(auto eng, DistEngine::Create(model, &mesh, o));
    std::vector<int> seqs;
    std::vector<SeqTokens> batch;
    // Sequences enter the batch in reverse order in decode: the engine must route them to their
    // owners.
    for (int64_t b = 0; b < kBatch; ++b) {
      seqs.push_back(eng->NewSequence());
      batch.push_back({seqs[b], s.prompts[b], true});
    }
    std::vector<std::vector<float>> mine;
    std::vector<int64_t> mybytes, myhead;
    std::vector<float> logits;
    eng->ResetStats();
    SI_RETURN_IF_ERROR(eng->Forward(batch, &logits));
    mine.push_back(logits);
    mybytes.push_back(eng->layer_stats().total_bytes());
    myhead.push_back(eng->lm_head_stats().total_bytes());
    for (int64_t step = 0; step < kSteps; ++step) {
      batch.clear();
      for (int64_t b = kBatch - 1; b >= 0; --b) {
        batch.push_back({seqs[b], std::span<const int32_t>(&s.steps[step][b], 1), false});
      }
      eng->ResetStats();
      SI_RETURN_IF_ERROR(eng->Forward(batch, &logits));
      // Back to sequence order for the comparison.
      const int64_t V = model->config().vocab_size;
      std::vector<float> ordered(logits.size());
      for (int64_t b = 0; b < kBatch; ++b) {
        std::copy(logits.begin() + (kBatch - 1 - b) * V, logits.begin() + (kBatch - b) * V,
                  ordered.begin() + b * V);
      }
      mine.push_back(ordered);
      mybytes.push_back(eng->layer_stats().total_bytes());
      myhead.push_back(eng->lm_head_stats().total_bytes());
    }
    std::lock_guard<std::mutex> lock(mu);
    all[mesh.rank()] = std::move(mine);
    bytes[mesh.rank()] = std::move(mybytes);
    head_bytes[mesh.rank()] = std::move(myhead);
    return Status::Ok();
  });
  if (!res.status.ok()) return res;
  res.logits = all[0];
  res.layer_bytes = bytes[0];
  res.head_bytes = head_bytes[0];
  for (int r = 1; r < shape.num_ranks(); ++r) {
    if (all[r] != all[0] || bytes[r] != bytes[0]) res.ranks_agree = false;
  }
  return res;
}

std::vector<std::string> GoldenDecoderModels(const std::string& dir) {
  std::ifstream in(dir + "/manifest.json");
  auto m = nlohmann::json::parse(in);
  std::vector<std::string> files;
  for (const auto& x : m["models"]) {
    if (x["arch"] == "bert") continue;
    files.push_back(dir + "/" + x["file"].get<std::string>());
  }
  return files;
}

bool IsF32(const Model& m) {
  for (const auto& [t, b] : m.bytes_by_type()) {
    if (t != DType::kF32) return false;
  }
  return true;
}

// The analytical model for one pass (bf16 activations and weights). `engine`: as the distributed
// engine runs (norm statistics all-reduce, whole KV heads per shard), else Pope et al.'s formulas.
// Prefill computes logits at every position, as the test's prefill does.
analysis::PhaseCost ModelCost(const ModelConfig& c, const MeshShape& shape, PhaseLayout p,
                              int64_t batch, int64_t len, bool prefill, bool engine) {
  static const auto hw = analysis::LoadHardware("tpu-v4");
  analysis::AnalysisModel am;
  am.config = c;
  am.nominal_params = 1;
  am.unpadded_heads = c.num_heads;
  analysis::PlanRequest req;
  req.chips = shape.num_ranks();
  req.batch = batch;
  req.input_len = len;
  req.gen_len = 1;
  req.weight_bytes = 2;
  req.all_logits = true;
  req.count_norm_stats = engine;
  req.replicate_kv_heads = !engine;
  return analysis::EvaluatePhase(am, *hw, analysis::Mesh{shape.x, shape.y, shape.z},
                                 prefill ? analysis::Phase::kPrefill : analysis::Phase::kDecode,
                                 p.layout, p.attn, req);
}

// Bytes sent per rank: sum of bytes x (K-1)/K (comm.h's definitions).
double SentBytes(const std::vector<analysis::CollectiveCost>& colls) {
  double total = 0;
  for (const auto& cc : colls) total += cc.bytes * (cc.group - 1) / cc.group;
  return total;
}

TEST(DistEngine, EqualsSingleProcessOnEveryLayoutAndMesh) {
  SI_REQUIRE_GOLDEN(golden_dir);
  int ran = 0, rejected = 0, bit_identical = 0;
  double worst_f32 = 0;
  for (const std::string& file : GoldenDecoderModels(golden_dir)) {
    auto loaded = Model::Load(file);
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    std::shared_ptr<const Model> model = std::move(*loaded);
    const ModelConfig& c = model->config();
    const bool f32 = IsF32(*model);
    // f32: the 1e-5. Quantized/f16 weights quantize (round) their activations per row; a
    // 1e-7 change of an activation can flip one rounding, so they get the golden tests' tolerance.
    const double tol = f32 ? 1e-5 : 2e-3;
    const Script ref = Reference(model);
    const int64_t V = c.vocab_size;
    double worst_model = 0;
    for (const MeshShape& shape : kMeshes) {
      for (FfnLayout layout : analysis::kAllLayouts) {
        for (AttnSharding attn : {AttnSharding::kHeads, AttnSharding::kBatch}) {
          const PhaseLayout p{layout, attn};
          const std::string where = StrCat(file.substr(file.rfind('/') + 1), " --mesh ",
                                           shape.ToString(), " --layout ", p.ToString());
          auto prog = DeriveLayerProgram(c, shape, layout, attn, kBatch);
          // The analytical model rejects the same head splits as the specs (and costs the rest).
          const analysis::PhaseCost engine_cost =
              ModelCost(c, shape, p, kBatch, kPrompt, true, /*engine=*/true);
          if (prog.ok()) {
            EXPECT_TRUE(engine_cost.valid) << where << ": " << engine_cost.note;
          } else if (prog.status().message().find("split over heads") != std::string::npos) {
            EXPECT_FALSE(engine_cost.valid) << where;
            EXPECT_NE(engine_cost.note.find("num_kv_heads " + std::to_string(c.num_kv_heads)),
                      std::string::npos)
                << where << ": " << engine_cost.note;
          }
          RunResult r = RunDist(model, shape, p, ref);
          if (!prog.ok()) {
            // Rejected by the specs: the engine must fail the same way, with a clear message.
            EXPECT_FALSE(r.status.ok()) << where;
            const std::string msg = r.status.message();
            EXPECT_TRUE(msg.find("divisible") != std::string::npos ||
                        msg.find("split") != std::string::npos)
                << where << ": " << msg;
            EXPECT_TRUE(msg.find("--mesh") != std::string::npos ||
                        msg.find("--attention") != std::string::npos)
                << where << ": " << msg;
            ++rejected;
            continue;
          }
          if (!r.status.ok()) {
            // Quantized column splits that break a 32-element block are rejected by the shard
            // loader.
            const std::string msg = r.status.message();
            EXPECT_TRUE(!f32 && msg.find("blocks") != std::string::npos) << where << ": " << msg;
            ++rejected;
            continue;
          }
          ++ran;
          EXPECT_TRUE(r.ranks_agree) << where;
          ASSERT_EQ(r.logits.size(), ref.logits.size()) << where;
          double worst = 0;
          bool identical = true;
          for (size_t pass = 0; pass < ref.logits.size(); ++pass) {
            ASSERT_EQ(r.logits[pass].size(), ref.logits[pass].size()) << where;
            identical = identical && r.logits[pass] == ref.logits[pass];
            const int64_t rows = static_cast<int64_t>(ref.logits[pass].size()) / V;
            for (int64_t row = 0; row < rows; ++row) {
              worst = std::max(worst,
                               RowRelErr(&r.logits[pass][row * V], &ref.logits[pass][row * V], V));
              if (pass > 0 || row % kPrompt == kPrompt - 1) {
                EXPECT_EQ(Argmax(&r.logits[pass][row * V], V),
                          Argmax(&ref.logits[pass][row * V], V))
                    << where << " pass " << pass << " row " << row;
              }
            }
          }
          EXPECT_LE(worst, tol) << where;
          if (shape.num_ranks() == 1)
            EXPECT_TRUE(identical) << where << ": 1 rank must be bit-identical; rel " << worst;
          bit_identical += identical ? 1 : 0;
          worst_model = std::max(worst_model, worst);
          if (f32) worst_f32 = std::max(worst_f32, worst);
          // Bytes per rank per layer: the derived program exactly (f32: 4-byte activations and
          // weights) ...
          if (f32) {
            for (size_t pass = 0; pass < r.layer_bytes.size(); ++pass) {
              const bool prefill = pass == 0;
              const int64_t T = prefill ? kBatch * kPrompt : kBatch;
              auto pr = DeriveLayerProgram(c, shape, layout, attn, kBatch);
              ASSERT_TRUE(pr.ok());
              EXPECT_EQ(r.layer_bytes[pass], c.num_layers * pr->BytesSent(T, 4, 4))
                  << where << " pass " << pass;
              // ... and the analytical model (it counts bf16: half of f32): with the engine's
              // extras exactly what the comm layer counted, without them the paper's formulas.
              const int64_t len = prefill ? kPrompt : 1;
              const analysis::PhaseCost eng =
                  ModelCost(c, shape, p, kBatch, len, prefill, /*engine=*/true);
              const analysis::PhaseCost paper =
                  ModelCost(c, shape, p, kBatch, len, prefill, /*engine=*/false);
              EXPECT_EQ(static_cast<double>(r.layer_bytes[pass]),
                        2 * c.num_layers * SentBytes(eng.collectives))
                  << where << " pass " << pass;
              EXPECT_EQ(static_cast<double>(pr->BytesSent(T, 4, 4, /*paper_model_only=*/true)),
                        2 * SentBytes(paper.collectives))
                  << where << " pass " << pass;
              // The LM head (all rows of the prefill, one per sequence in decode), once per pass.
              EXPECT_EQ(static_cast<double>(r.head_bytes[pass]),
                        2 * SentBytes(eng.head_collectives))
                  << where << " pass " << pass;
              EXPECT_EQ(SentBytes(eng.head_collectives), SentBytes(paper.head_collectives))
                  << where;
            }
          }
        }
      }
    }
    std::printf("%s: max rel error %.3g over all layouts/meshes\n", file.c_str(), worst_model);
  }
  std::printf("ran %d combinations (%d bit-identical), %d rejected; worst f32 rel error %.3g\n",
              ran, bit_identical, rejected, worst_f32);
  EXPECT_GT(ran, 100);
}

TEST(DistEngine, PerPhaseLayoutsShareTheKvCache) {
  SI_REQUIRE_GOLDEN(golden_dir);
  auto loaded = Model::Load(golden_dir + "/models/falcon-mqa-f32.gguf");
  ASSERT_TRUE(loaded.ok());
  std::shared_ptr<const Model> model = std::move(*loaded);
  const Script ref = Reference(model);
  const int64_t V = model->config().vocab_size;
  // Pope §3.2.3 / Table 3: prefill weight-gathered, decode 2D weight-stationary, multiquery over
  // batch.
  std::mutex mu;
  std::vector<std::vector<float>> got;
  Status st = RunFakeMesh({1, 2, 1}, [&](Mesh& mesh) -> Status {
    DistEngineOptions o;
    o.prefill = {FfnLayout::kWgXyz, AttnSharding::kBatch};
    o.decode = {FfnLayout::k2dWs, AttnSharding::kBatch};
    SI_ASSIGN_OR_RETURN(auto eng, DistEngine::Create(model, &mesh, o));
    std::vector<int> seqs;
    std::vector<SeqTokens> batch;
    for (int64_t b = 0; b < kBatch; ++b) {
      seqs.push_back(eng->NewSequence());
      batch.push_back({seqs[b], ref.prompts[b], true});
    }
    std::vector<std::vector<float>> mine(1);
    SI_RETURN_IF_ERROR(eng->Forward(batch, &mine[0]));
    for (int64_t step = 0; step < kSteps; ++step) {
      batch.clear();
      for (int64_t b = 0; b < kBatch; ++b)
        batch.push_back({seqs[b], std::span<const int32_t>(&ref.steps[step][b], 1), false});
      mine.emplace_back();
      SI_RETURN_IF_ERROR(eng->Forward(batch, &mine.back()));
    }
    std::lock_guard<std::mutex> lock(mu);
    if (mesh.rank() == 0) got = mine;
    return Status::Ok();
  });
  ASSERT_TRUE(st.ok()) << st.message();
  for (size_t pass = 0; pass < ref.logits.size(); ++pass) {
    const int64_t rows = static_cast<int64_t>(ref.logits[pass].size()) / V;
    for (int64_t row = 0; row < rows; ++row) {
      EXPECT_LE(RowRelErr(&got[pass][row * V], &ref.logits[pass][row * V], V), 1e-5)
          << pass << " " << row;
    }
  }
}

TEST(DistEngine, ClearErrors) {
  SI_REQUIRE_GOLDEN(golden_dir);
  auto loaded = Model::Load(golden_dir + "/models/falcon-mqa-f32.gguf");
  ASSERT_TRUE(loaded.ok());
  std::shared_ptr<const Model> model = std::move(*loaded);
  // Incompatible KV layouts between phases.
  Status st = RunFakeMesh({2, 1, 1}, [&](Mesh& mesh) -> Status {
    DistEngineOptions o;
    o.prefill = {FfnLayout::kWgX, AttnSharding::kBatch};
    o.decode = {FfnLayout::k2dWs, AttnSharding::kBatch};
    return DistEngine::Create(model, &mesh, o).status();
  });
  EXPECT_NE(st.message().find("KV cache"), std::string::npos) << st.message();
  // Multiquery over heads on 2 head shards.
  st = RunFakeMesh({1, 2, 1}, [&](Mesh& mesh) -> Status {
    DistEngineOptions o;
    o.prefill = o.decode = {FfnLayout::k2dWs, AttnSharding::kHeads};
    return DistEngine::Create(model, &mesh, o).status();
  });
  EXPECT_NE(st.message().find("num_kv_heads 1"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("--attention batch"), std::string::npos) << st.message();
  // Batch attention with a batch not divisible by the ranks: error at Forward, naming the batch.
  st = RunFakeMesh({2, 1, 1}, [&](Mesh& mesh) -> Status {
    DistEngineOptions o;
    o.prefill = o.decode = {FfnLayout::k2dWs, AttnSharding::kBatch};
    SI_ASSIGN_OR_RETURN(auto eng, DistEngine::Create(model, &mesh, o));
    const int seq = eng->NewSequence();
    const std::vector<int32_t> ids = {1, 2, 3};
    std::vector<SeqTokens> batch = {{seq, ids, false}};
    std::vector<float> logits;
    return eng->Forward(batch, &logits);
  });
  EXPECT_NE(st.message().find("batch 1 is not divisible"), std::string::npos) << st.message();
}

// The looped collective matmul (DistEngineOptions::overlap) against the blocking collectives:
// logits of a prefill and 3 decode steps bit-identical and the same bytes per rank, for every
// layout x attention x mesh the specs accept, on a serial (llama), a fused-QKV GELU (gpt2) and a
// parallel-block multiquery (falcon) model. Chunks are shrunk (>= 2 rows, >= 8 columns, <= 3 per
// collective) so that the small golden models take both the row-chunk (prefill) and the
// column-chunk (decode) paths and the weight prefetch.
struct OverlapRun {
  Status status;
  std::vector<std::vector<float>> logits;  // rank 0's, per pass
  std::vector<int64_t> bytes;              // rank 0's layer bytes per pass
  std::vector<int64_t> calls;              // rank 0's collectives started per pass
};

OverlapRun RunOverlap(std::shared_ptr<const Model> model, const MeshShape& shape, PhaseLayout p,
                      const Script& s, bool overlap) {
  OverlapRun res;
  std::mutex mu;
  res.status = RunFakeMesh(shape, [&](Mesh& mesh) -> Status {
    DistEngineOptions o;
    o.prefill = o.decode = p;
    o.overlap = {.enabled = overlap, .max_chunks = 3, .min_chunk_rows = 2, .min_chunk_cols = 8, .min_chunk_bytes = 0};
    SI_ASSIGN_OR_RETURN(auto eng, DistEngine::Create(model, &mesh, o));
    std::vector<int> seqs;
    std::vector<SeqTokens> batch;
    for (int64_t b = 0; b < kBatch; ++b) {
      seqs.push_back(eng->NewSequence());
      batch.push_back({seqs[b], s.prompts[b], true});
    }
    OverlapRun mine;
    for (int64_t step = -1; step < kSteps; ++step) {
      if (step >= 0) {
        batch.clear();
        for (int64_t b = 0; b < kBatch; ++b)
          batch.push_back({seqs[b], std::span<const int32_t>(&s.steps[step][b], 1), false});
      }
      eng->ResetStats();
      std::vector<float> logits;
      SI_RETURN_IF_ERROR(eng->Forward(batch, &logits));
      mine.logits.push_back(std::move(logits));
      mine.bytes.push_back(eng->layer_stats().total_bytes());
      int64_t calls = 0;
      for (int64_t c : eng->layer_stats().calls) calls += c;
      mine.calls.push_back(calls);
    }
    std::lock_guard<std::mutex> lock(mu);
    if (mesh.rank() == 0) {
      res.logits = std::move(mine.logits);
      res.bytes = std::move(mine.bytes);
      res.calls = std::move(mine.calls);
    }
    return Status::Ok();
  });
  return res;
}

TEST(DistEngine, OverlapIsBitIdenticalToBlocking) {
  SI_REQUIRE_GOLDEN(golden_dir);
  int ran = 0, chunked = 0;
  for (const char* name : {"llama-gqa-f32", "gpt2-f32", "falcon-mqa-f32"}) {
    auto loaded = Model::Load(golden_dir + "/models/" + name + ".gguf");
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    std::shared_ptr<const Model> model = std::move(*loaded);
    const Script ref = Reference(model);
    for (const MeshShape& shape : kMeshes) {
      if (shape.num_ranks() == 1) continue;
      for (FfnLayout layout : analysis::kAllLayouts) {
        for (AttnSharding attn : {AttnSharding::kHeads, AttnSharding::kBatch}) {
          const PhaseLayout p{layout, attn};
          if (!DeriveLayerProgram(model->config(), shape, layout, attn, kBatch).ok()) continue;
          const std::string where =
              StrCat(name, " --mesh ", shape.ToString(), " --layout ", p.ToString());
          const OverlapRun off = RunOverlap(model, shape, p, ref, false);
          const OverlapRun on = RunOverlap(model, shape, p, ref, true);
          ASSERT_TRUE(off.status.ok() && on.status.ok())
              << where << ": " << off.status.message() << " / " << on.status.message();
          EXPECT_TRUE(on.logits == off.logits) << where << ": overlap changed the logits";
          EXPECT_EQ(on.bytes, off.bytes) << where;
          ++ran;
          chunked += on.calls > off.calls ? 1 : 0;
        }
      }
    }
  }
  std::printf("overlap on == off bit-identical in %d combinations (%d with split collectives)\n",
              ran, chunked);
  EXPECT_GT(ran, 30);
  // Layouts whose only collective is the weight gather (wg-xyz, wg-x on 2x1x1 ...) overlap it by
  // the prefetch, which starts the same collectives earlier instead of splitting them.
  EXPECT_GT(chunked, ran / 3);
}

}  // namespace
}  // namespace si
