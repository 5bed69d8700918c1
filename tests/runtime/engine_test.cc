// Engine behaviour on synthetic models: determinism across batch composition and thread counts, prefill vs
// decode agreement, multi-sequence batches, and errors for bad input.
#include "si/runtime/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../model/test_models.h"
#include "si/base/mmap_file.h"
#include "si/model/gguf.h"
#include "si/runtime/sampler.h"

namespace si {
namespace {

struct Case {
  Arch arch;
  DType dtype;
  const char* dims;
};

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  return std::string(ArchName(info.param.arch)) + "_" + std::string(DTypeName(info.param.dtype));
}

std::shared_ptr<const Model> LoadCase(const Case& c) {
  auto m = Model::Load(testing::TinyModelPath(c.arch, c.dtype, c.dims));
  EXPECT_TRUE(m.ok()) << m.status().message();
  return std::shared_ptr<const Model>(std::move(*m));
}

std::vector<float> Prefill(Engine& e, const std::vector<int32_t>& ids, bool all = true) {
  const int seq = e.NewSequence();
  std::vector<float> logits;
  SeqTokens st{seq, ids, all};
  Status s = e.Forward({&st, 1}, &logits);
  EXPECT_TRUE(s.ok()) << s.message();
  e.FreeSequence(seq);
  return logits;
}

class EngineDeterminism : public ::testing::TestWithParam<Case> {};

TEST_P(EngineDeterminism, SameBitsAloneBatchedAndForAnyThreadCount) {
  auto model = LoadCase(GetParam());
  const std::vector<int32_t> a = {1, 17, 99, 250, 3, 42, 7, 128, 64, 5, 11};
  const std::vector<int32_t> b = {1, 200, 31};
  const std::vector<int32_t> c = {9, 8, 7, 6, 5, 4, 3, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
  auto e1 = Engine::Create(model, {.num_threads = 1});
  ASSERT_TRUE(e1.ok());
  const std::vector<float> alone = Prefill(**e1, a);
  for (int threads : {1, 2, 3, 4}) {
    SCOPED_TRACE(threads);
    auto e = Engine::Create(model, {.num_threads = threads});
    ASSERT_TRUE(e.ok());
    // Alone.
    EXPECT_EQ(Prefill(**e, a), alone);
    // Batched between two other sequences of different lengths.
    const int sb = (*e)->NewSequence(), sa = (*e)->NewSequence(), sc = (*e)->NewSequence();
    SeqTokens batch[] = {{sb, b, false}, {sa, a, true}, {sc, c, true}};
    std::vector<float> logits;
    ASSERT_TRUE((*e)->Forward(batch, &logits).ok());
    const int64_t V = model->config().vocab_size;
    ASSERT_EQ(logits.size(), (1 + a.size() + c.size()) * V);
    const std::vector<float> batched(logits.begin() + V, logits.begin() + V + a.size() * V);
    EXPECT_TRUE(batched == alone) << "sequence logits changed when batched";
    for (int s : {sb, sa, sc}) (*e)->FreeSequence(s);
  }
}

TEST_P(EngineDeterminism, DecodeMatchesPrefillAndBatchedDecodeMatchesAlone) {
  auto model = LoadCase(GetParam());
  const int64_t V = model->config().vocab_size;
  const std::vector<int32_t> prompt = {1, 17, 99, 250, 3};
  const std::vector<int32_t> cont = {42, 7, 128, 64};
  std::vector<int32_t> full = prompt;
  full.insert(full.end(), cont.begin(), cont.end());
  auto e = Engine::Create(model, {.num_threads = 2});
  ASSERT_TRUE(e.ok());
  const std::vector<float> ref = Prefill(**e, full);
  // Step-wise decode of `cont` after the prompt, with another sequence decoding alongside.
  const int s = (*e)->NewSequence(), other = (*e)->NewSequence();
  std::vector<float> logits;
  SeqTokens p[] = {{s, prompt, false}, {other, {&cont[0], 2}, false}};
  ASSERT_TRUE((*e)->Forward(p, &logits).ok());
  for (size_t i = 0; i < cont.size(); ++i) {
    const float* want = &ref[(prompt.size() - 1 + i) * V];
    const float* got = logits.data();
    double max_diff = 0, max_ref = 0;
    for (int64_t j = 0; j < V; ++j) {
      max_diff = std::max(max_diff, static_cast<double>(std::fabs(got[j] - want[j])));
      max_ref = std::max(max_ref, static_cast<double>(std::fabs(want[j])));
    }
    EXPECT_LE(max_diff / max_ref, 1e-5) << "step " << i;
    SeqTokens step[] = {{other, {&cont[i % 2], 1}, false}, {s, {&cont[i], 1}, false}};
    ASSERT_TRUE((*e)->Forward(step, &logits).ok());
    logits.erase(logits.begin(), logits.begin() + V);  // keep sequence s's row
  }
  EXPECT_EQ((*e)->SeqLen(s), static_cast<int64_t>(full.size()));
}

INSTANTIATE_TEST_SUITE_P(
    Models, EngineDeterminism,
    ::testing::Values(Case{Arch::kLlama, DType::kF32, "layers=2,dim=64,heads=4,kv_heads=2,ff=96,vocab=320,ctx=64"},
                      Case{Arch::kLlama, DType::kF16, "layers=2,dim=64,heads=4,kv_heads=2,ff=96,vocab=320,ctx=64"},
                      Case{Arch::kLlama, DType::kBF16, "layers=2,dim=64,heads=4,kv_heads=4,ff=96,vocab=320,ctx=64"},
                      Case{Arch::kLlama, DType::kQ8_0, "layers=2,dim=64,heads=4,kv_heads=1,ff=96,vocab=320,ctx=64"},
                      Case{Arch::kLlama, DType::kQ4_0, "layers=2,dim=64,heads=4,kv_heads=2,ff=96,vocab=320,ctx=64"},
                      Case{Arch::kLlama, DType::kQ4_K, "layers=2,dim=256,heads=4,kv_heads=2,ff=512,vocab=320,ctx=64"},
                      Case{Arch::kLlama, DType::kQ6_K, "layers=2,dim=256,heads=4,kv_heads=1,ff=256,vocab=320,ctx=64"},
                      Case{Arch::kGpt2, DType::kF32, "layers=2,dim=64,heads=2,ff=128,vocab=320,ctx=64"},
                      Case{Arch::kFalcon, DType::kQ8_0, "layers=2,dim=64,heads=4,kv_heads=1,ff=128,vocab=320,ctx=64"}),
    CaseName);

// Repacked weights (the table's panels, where it has them) against the weights as stored: the same
// model within f32 rounding (Q8_0: bit for bit), for a file-mapped model and for an in-memory
// image, whose bytes the engine must leave untouched (it gives the pages of repacked file-mapped
// rows back to the OS, which on anonymous memory would zero them). Two engines on one model, in
// either order.
TEST(EngineRepack, PanelsMatchStoredWeightsAndLeaveTheModelIntact) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0}) {
    SCOPED_TRACE(DTypeName(t));
    const std::string path = testing::TinyModelPath(
        Arch::kLlama, t, "layers=2,dim=64,heads=4,kv_heads=2,ff=96,vocab=320,ctx=64");
    auto bytes = ReadFileToString(path);
    ASSERT_TRUE(bytes.ok());
    const std::vector<uint8_t> image(bytes->begin(), bytes->end());
    const std::vector<uint8_t> pristine = image;
    auto parsed = GgufFile::Parse(image.data(), image.size(), "mem.gguf");
    ASSERT_TRUE(parsed.ok()) << parsed.status().message();
    auto mem_model = Model::FromGguf(std::move(*parsed));
    ASSERT_TRUE(mem_model.ok()) << mem_model.status().message();
    auto file_model = Model::Load(path);
    ASSERT_TRUE(file_model.ok());
    const std::shared_ptr<const Model> models[2] = {std::move(*file_model), std::move(*mem_model)};
    const std::vector<int32_t> ids = {1, 7, 42, 99, 3, 250, 17};
    for (const auto& model : models) {
      auto packed = Engine::Create(model, {.num_threads = 2});
      ASSERT_TRUE(packed.ok());
      const std::vector<float> a = Prefill(**packed, ids);
      auto stored = Engine::Create(model, {.num_threads = 2, .repack_weights = false});
      ASSERT_TRUE(stored.ok());
      const std::vector<float> b = Prefill(**stored, ids);
      const std::vector<float> a2 = Prefill(**packed, ids);  // after the second engine
      ASSERT_EQ(a.size(), b.size());
      double max_diff = 0, max_ref = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - b[i])));
        max_ref = std::max(max_ref, static_cast<double>(std::fabs(b[i])));
      }
      // f16 / bf16: the activations are rounded to the weight type before every matmul, so a
      // last-bit difference of the f32 sums can flip one rounding (an f16 ulp is 1e-3 relative,
      // bf16 8e-3).
      // Q8_0: the panels change the layout only, the same bits.
      const double tol = t == DType::kQ8_0 ? 0.0 : t == DType::kF32 ? 1e-4 : 1e-2;
      EXPECT_LE(max_diff, tol * max_ref) << "repacked vs stored";
      EXPECT_EQ(0, std::memcmp(a.data(), a2.data(), a.size() * sizeof(float)));
    }
    EXPECT_EQ(image, pristine) << "the engine changed an in-memory model's bytes";
  }
}

class EngineErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = LoadCase({Arch::kLlama, DType::kF32, "layers=1,dim=32,heads=2,ff=32,vocab=300,ctx=16"});
    auto e = Engine::Create(model_, {.num_threads = 2});
    ASSERT_TRUE(e.ok());
    engine_ = std::move(*e);
  }
  std::shared_ptr<const Model> model_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineErrors, ContextExceededIsAnErrorAndChangesNothing) {
  const int s = engine_->NewSequence();
  std::vector<int32_t> ids(10, 5);
  std::vector<float> logits;
  SeqTokens st{s, ids, false};
  ASSERT_TRUE(engine_->Forward({&st, 1}, &logits).ok());
  Status err = engine_->Forward({&st, 1}, &logits);
  EXPECT_EQ(err.code(), StatusCode::kOutOfRange);
  EXPECT_NE(err.message().find("context length of 16"), std::string::npos) << err.message();
  EXPECT_EQ(engine_->SeqLen(s), 10);
}

TEST_F(EngineErrors, BadTokenAndSequence) {
  const int s = engine_->NewSequence();
  std::vector<int32_t> ids = {1, 300};
  std::vector<float> logits;
  SeqTokens st{s, ids, false};
  Status err = engine_->Forward({&st, 1}, &logits);
  EXPECT_NE(err.message().find("token id 300 is out of range"), std::string::npos) << err.message();
  SeqTokens twice[] = {{s, {&ids[0], 1}, false}, {s, {&ids[0], 1}, false}};
  EXPECT_FALSE(engine_->Forward(twice, &logits).ok());
  SeqTokens unknown{77, {&ids[0], 1}, false};
  EXPECT_FALSE(engine_->Forward({&unknown, 1}, &logits).ok());
  EXPECT_EQ(engine_->SeqLen(s), 0);
  EXPECT_FALSE(Engine::Create(model_, {.context_len = 17}).ok());
}

TEST(Sampler, GreedyIsArgmaxWithLowestIdTies) {
  std::vector<float> l = {0.1f, 3.0f, -1.0f, 3.0f};
  Sampler s({});
  EXPECT_EQ(s.Sample(l, {}), 1);
  EXPECT_EQ(Argmax(l), 1);
}

TEST(Sampler, FiltersThatKeepOneTokenAreGreedy) {
  std::vector<float> l(100);
  for (int i = 0; i < 100; ++i) l[i] = std::sin(i * 1.7f) * 3.0f;
  const int32_t best = Argmax(l);
  for (SamplerOptions o : {SamplerOptions{.temperature = 1.5f, .top_k = 1}, SamplerOptions{.temperature = 1.5f, .top_p = 1e-6f},
                           SamplerOptions{.temperature = 1.5f, .min_p = 1.0f}}) {
    Sampler s(o);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(s.Sample(l, {}), best);
  }
}

TEST(Sampler, SeededRunsRepeatAndDifferentSeedsDiffer) {
  std::vector<float> l(50);
  for (int i = 0; i < 50; ++i) l[i] = std::cos(i * 0.3f);
  auto draw = [&](uint64_t seed) {
    Sampler s({.temperature = 1.0f, .seed = seed});
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.Sample(l, {}));
    return out;
  };
  EXPECT_EQ(draw(3), draw(3));
  EXPECT_NE(draw(3), draw(4));
  // Temperature sampling spreads over many tokens; top-k 5 stays within the 5 best.
  auto d = draw(5);
  std::sort(d.begin(), d.end());
  EXPECT_GT(std::unique(d.begin(), d.end()) - d.begin(), 10);
  Sampler k5({.temperature = 1.0f, .top_k = 5, .seed = 1});
  std::vector<int32_t> idx(50);
  for (int i = 0; i < 50; ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](int a, int b) { return l[a] > l[b]; });
  for (int i = 0; i < 100; ++i) {
    const int32_t t = k5.Sample(l, {});
    EXPECT_NE(std::find(idx.begin(), idx.begin() + 5, t), idx.begin() + 5);
  }
}

TEST(Sampler, RepetitionPenaltyDemotesRecentTokens) {
  std::vector<float> l = {1.0f, 2.0f, 1.9f};
  Sampler s({.repeat_penalty = 1.2f});
  const std::vector<int32_t> history = {1};
  EXPECT_EQ(s.Sample(l, history), 2);  // 2.0 / 1.2 < 1.9
  EXPECT_FALSE(SamplerOptions{.top_p = 0.0f}.Validate().ok());
  EXPECT_FALSE(SamplerOptions{.temperature = -1.0f}.Validate().ok());
}

TEST(SyntheticModels, EveryArchAndDtypeLoadsAndRuns) {
  for (Arch arch : {Arch::kLlama, Arch::kGpt2, Arch::kFalcon, Arch::kBert}) {
    for (DType dt : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
      SCOPED_TRACE(std::string(ArchName(arch)) + " " + std::string(DTypeName(dt)));
      auto m = Model::Load(testing::TinyModelPath(arch, dt, "layers=1,dim=64,heads=2,ff=64,vocab=400,ctx=32"));
      ASSERT_TRUE(m.ok()) << m.status().message();
      EXPECT_EQ((*m)->config().model_dim, 64);
      auto e = Engine::Create(std::shared_ptr<const Model>(std::move(*m)), {.num_threads = 2});
      ASSERT_TRUE(e.ok());
      std::vector<int32_t> ids = {1, 2, 3};
      std::vector<float> out;
      if ((*e)->config().is_encoder()) {
        ASSERT_TRUE((*e)->Encode(ids, &out).ok());
      } else {
        const int s = (*e)->NewSequence();
        SeqTokens st{s, ids, false};
        ASSERT_TRUE((*e)->Forward({&st, 1}, &out).ok());
      }
      for (float x : out) ASSERT_TRUE(std::isfinite(x));
    }
  }
  EXPECT_FALSE(SyntheticConfig(Arch::kLlama, "layers=2,dim=65,heads=4").ok());
  EXPECT_FALSE(SyntheticConfig(Arch::kLlama, "gpt2-124m").ok());
  EXPECT_FALSE(SyntheticConfig(Arch::kLlama, "layers=x").ok());
}

}  // namespace
}  // namespace si
