// Engine vs llama.cpp on ../shared/golden: logits of the batched prefill (full rows and 256 columns at every
// position), teacher-forced greedy decode through the KV cache, and prefill vs decode agreement. Every
// dimension and shape is read from the files. Tolerances are the golden README's, per dtype and arch.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "golden_util.h"
#include "si/runtime/engine.h"
#include "si/runtime/sampler.h"

namespace si {
namespace {

using json = nlohmann::json;

json LoadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);
}

std::vector<float> LoadF32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

// max|a - b| / max|b| over one row.
double RelErr(const float* test, const float* ref, int64_t n) {
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(test[i]) - ref[i]));
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(ref[i])));
  }
  return max_diff / max_ref;
}

double LogSumExp(const float* x, int64_t n) {
  double m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(x[i]));
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(x[i] - m);
  return m + std::log(s);
}

// KL(softmax(ref) || softmax(test)).
double Kl(const float* ref, const float* test, int64_t n) {
  const double lr = LogSumExp(ref, n), lt = LogSumExp(test, n);
  double kl = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double pr = std::exp(ref[i] - lr);
    kl += pr * ((ref[i] - lr) - (test[i] - lt));
  }
  return kl;
}

std::vector<int32_t> TopK(const float* x, int64_t n, int k) {
  std::vector<int32_t> idx(n);
  for (int64_t i = 0; i < n; ++i) idx[i] = static_cast<int32_t>(i);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
  idx.resize(k);
  return idx;
}

int Overlap(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  int n = 0;
  for (int32_t x : a) n += std::count(b.begin(), b.end(), x) ? 1 : 0;
  return n;
}

struct Tolerance {
  double rel;          // per-row max rel error
  double margin;       // argmax must agree where llama.cpp's margin_rel exceeds this
  int min_top5;        // top-5 overlap on full rows
  double max_kl;       // per full row
  double mean_kl;      // per prompt (full rows)
  bool check_lse;
};

Tolerance ToleranceFor(const std::string& arch, const std::string& dtype) {
  if (dtype == "f32") {
    if (arch == "llama") return {1e-4, 1e-3, 5, 1e-6, 1e-6, true};
    return {2e-3, 1e-2, 5, 1e-3, 1e-3, false};  // GELU archs: exact tanh-GELU vs llama.cpp's fp16 table
  }
  if (dtype == "f16") return {1e-2, 1e-2, 4, 1e-2, 1e-2, false};
  return {1e30, 5e-2, 3, 0.5, 5e-3, false};  // q8_0 / q4_0: ggml-style activation quantization
}

struct GoldenCase {
  std::string model_file, ref_json, arch, dtype, vocab;
};

std::vector<GoldenCase> Cases() {
  std::vector<GoldenCase> cases;
  const std::string dir = testing::GoldenDirOrEmpty();
  if (dir.empty()) return cases;
  json m = LoadJson(dir + "/manifest.json");
  for (const auto& ref : m["refs"]) {
    for (const auto& model : m["models"]) {
      if (model["file"] != ref["model"] || model["arch"] == "bert") continue;
      cases.push_back({dir + "/" + model["file"].get<std::string>(), dir + "/" + ref["json"].get<std::string>(),
                       model["arch"], model["dtype"], model["vocab"]});
    }
  }
  return cases;
}

class GoldenLogits : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenLogits, PrefillAndGreedyMatchLlamaCpp) {
  SI_REQUIRE_GOLDEN(dir);
  const GoldenCase& gc = GetParam();
  const Tolerance tol = ToleranceFor(gc.arch, gc.dtype);
  auto model = Model::Load(gc.model_file);
  ASSERT_TRUE(model.ok()) << model.status().message();
  std::shared_ptr<const Model> shared = std::move(*model);
  auto engine_or = Engine::Create(shared, {.num_threads = 2});
  ASSERT_TRUE(engine_or.ok()) << engine_or.status().message();
  Engine& engine = **engine_or;
  const int64_t V = engine.config().vocab_size;

  json manifest = LoadJson(dir + "/manifest.json");
  const std::vector<int32_t> columns = manifest["columns"][gc.vocab].get<std::vector<int32_t>>();
  json ref = LoadJson(gc.ref_json);
  ASSERT_EQ(ref["n_vocab"].get<int64_t>(), V);

  for (const auto& [prompt_name, p] : ref["prompts"].items()) {
    SCOPED_TRACE(gc.model_file + " prompt " + prompt_name);
    const std::vector<int32_t> ids = p["token_ids"].get<std::vector<int32_t>>();
    const int64_t n = static_cast<int64_t>(ids.size());

    // Batched prefill, all positions.
    const int seq = engine.NewSequence();
    std::vector<float> logits;
    SeqTokens st{seq, ids, true};
    ASSERT_TRUE(engine.Forward({&st, 1}, &logits).ok());
    ASSERT_EQ(static_cast<int64_t>(logits.size()), n * V);

    // 256 columns at every position.
    const std::vector<float> cols = LoadF32(dir + "/" + p["cols_file"].get<std::string>());
    const int64_t ncols = p["cols_shape"][1];
    ASSERT_EQ(static_cast<int64_t>(cols.size()), n * ncols);
    double worst_cols = 0;
    for (int64_t t = 0; t < n; ++t) {
      std::vector<float> mine(ncols);
      for (int64_t j = 0; j < ncols; ++j) mine[j] = logits[t * V + columns[j]];
      worst_cols = std::max(worst_cols, RelErr(mine.data(), &cols[t * ncols], ncols));
    }
    if (tol.rel < 1e29) {
      EXPECT_LE(worst_cols, tol.rel) << "cols rel error";
    }

    // Full rows at the stored positions.
    const std::vector<float> full = LoadF32(dir + "/" + p["logits_file"].get<std::string>());
    const auto positions = p["logits_positions"].get<std::vector<int64_t>>();
    double worst_full = 0, sum_kl = 0;
    for (size_t r = 0; r < positions.size(); ++r) {
      const float* mine = &logits[positions[r] * V];
      const float* theirs = &full[r * V];
      worst_full = std::max(worst_full, RelErr(mine, theirs, V));
      const double kl = Kl(theirs, mine, V);
      sum_kl += kl;
      EXPECT_LE(kl, tol.max_kl) << "KL at position " << positions[r];
      EXPECT_GE(Overlap(TopK(mine, V, 5), TopK(theirs, V, 5)), tol.min_top5) << "top-5 at " << positions[r];
    }
    if (tol.rel < 1e29) {
      EXPECT_LE(worst_full, tol.rel) << "full-row rel error";
    }
    EXPECT_LE(sum_kl / positions.size(), tol.mean_kl) << "mean KL";

    // Argmax, top-k logits and logsumexp at every position.
    const auto& pre = p["prefill"];
    int agree = 0, checked = 0;
    for (int64_t t = 0; t < n; ++t) {
      const float* row = &logits[t * V];
      if (pre["margin_rel"][t].get<double>() > tol.margin) {
        ++checked;
        agree += Argmax({row, static_cast<size_t>(V)}) == pre["argmax"][t].get<int32_t>();
      }
      if (tol.check_lse) {
        const double lse = pre["logsumexp"][t];
        EXPECT_NEAR(LogSumExp(row, V), lse, 1e-4 * std::fabs(lse)) << "logsumexp at " << t;
      }
    }
    EXPECT_EQ(agree, checked) << "argmax agreement on rows with margin_rel > " << tol.margin;

    // Greedy, teacher-forced through the KV cache: token g >= 1 is decoded alone at position n + g - 1.
    const auto& greedy = p["greedy"];
    const std::vector<int32_t> gtoks = greedy["tokens"].get<std::vector<int32_t>>();
    std::vector<float> step_logits(logits.end() - V, logits.end());
    std::vector<int32_t> all = ids;
    int gagree = 0, gchecked = 0;
    for (size_t g = 0; g < gtoks.size(); ++g) {
      if (g > 0) {
        SeqTokens d{seq, {&gtoks[g - 1], 1}, false};
        ASSERT_TRUE(engine.Forward({&d, 1}, &step_logits).ok());
        all.push_back(gtoks[g - 1]);
      }
      if (greedy["margin_rel"][g].get<double>() > tol.margin) {
        ++gchecked;
        gagree += Argmax(step_logits) == gtoks[g];
      }
      if (tol.rel < 1e29) {
        const auto tk = greedy["topk_ids"][g].get<std::vector<int32_t>>();
        const auto tl = greedy["topk_logits"][g].get<std::vector<float>>();
        std::vector<float> mine(tk.size());
        for (size_t j = 0; j < tk.size(); ++j) mine[j] = step_logits[tk[j]];
        EXPECT_LE(RelErr(mine.data(), tl.data(), static_cast<int64_t>(tk.size())), tol.rel) << "greedy step " << g;
      }
    }
    EXPECT_EQ(gagree, gchecked) << "greedy agreement";

    // Prefill of prompt + greedy tokens in one batch vs the step-wise decode above: same rows.
    const int seq2 = engine.NewSequence();
    std::vector<float> batch_logits;
    SeqTokens all_st{seq2, all, true};
    ASSERT_TRUE(engine.Forward({&all_st, 1}, &batch_logits).ok());
    const float* last = &batch_logits[(all.size() - 1) * V];
    EXPECT_LE(RelErr(step_logits.data(), last, V), 1e-5) << "decode vs batched prefill";
    engine.FreeSequence(seq);
    engine.FreeSequence(seq2);
    std::printf("[golden] %s %s: cols rel %.2e, full rel %.2e, mean KL %.2e, argmax %d/%d, greedy %d/%d\n",
                gc.model_file.substr(gc.model_file.rfind('/') + 1).c_str(), prompt_name.c_str(), worst_cols,
                worst_full, sum_kl / positions.size(), agree, checked, gagree, gchecked);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenLogits, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<GoldenCase>& info) {
                           std::string name = info.param.model_file.substr(info.param.model_file.rfind('/') + 1);
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenLogits);

}  // namespace
}  // namespace si
