// BERT embeddings vs llama.cpp's llama-embedding on ../shared/golden (pooled and per-token, normalized and
// raw). Tolerances from the golden README: normalized within 1e-3 absolute, raw within 2e-3 * max|row|.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "golden_util.h"
#include "si/runtime/embedding.h"
#include "si/runtime/engine.h"

namespace si {
namespace {

using json = nlohmann::json;

double MaxAbsDiff(std::span<const float> a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
  return d;
}

TEST(GoldenBert, EmbeddingsMatchLlamaCpp) {
  SI_REQUIRE_GOLDEN(dir);
  json manifest = json::parse(std::ifstream(dir + "/manifest.json"));
  int checked_models = 0;
  for (const auto& ref_entry : manifest["refs"]) {
    const std::string model_file = dir + "/" + ref_entry["model"].get<std::string>();
    json ref = json::parse(std::ifstream(dir + "/" + ref_entry["json"].get<std::string>()));
    auto model = Model::Load(model_file);
    ASSERT_TRUE(model.ok()) << model.status().message();
    if (!(*model)->config().is_encoder()) continue;
    ++checked_models;
    const Pooling model_pooling = (*model)->config().pooling;
    auto engine = Engine::Create(std::shared_ptr<const Model>(std::move(*model)), {.num_threads = 2});
    ASSERT_TRUE(engine.ok());
    const int64_t E = (*engine)->config().model_dim;
    for (const auto& [name, p] : ref["prompts"].items()) {
      SCOPED_TRACE(model_file + " prompt " + name);
      const auto ids = p["token_ids"].get<std::vector<int32_t>>();
      const int64_t T = static_cast<int64_t>(ids.size());
      std::vector<float> hidden;
      ASSERT_TRUE((*engine)->Encode(ids, &hidden).ok());
      ASSERT_EQ(static_cast<int64_t>(hidden.size()), T * E);

      struct Mode {
        const char* key;
        Pooling pooling;
      };
      for (Mode mode : {Mode{"pooling_model-default", model_pooling}, Mode{"pooling_mean", Pooling::kMean},
                        Mode{"pooling_cls", Pooling::kCls}}) {
        std::vector<float> v = Pool(hidden, T, E, mode.pooling);
        NormalizeRows(v, E, 2);
        EXPECT_LE(MaxAbsDiff(v, p[mode.key].get<std::vector<float>>()), 1e-3) << mode.key;
      }
      std::vector<float> none = hidden;
      NormalizeRows(none, E, 2);
      const auto raw_ref = p["pooling_none-raw"].get<std::vector<std::vector<float>>>();
      const auto none_ref = p["pooling_none"].get<std::vector<std::vector<float>>>();
      ASSERT_EQ(static_cast<int64_t>(raw_ref.size()), T);
      for (int64_t t = 0; t < T; ++t) {
        std::span<const float> row(&hidden[t * E], E), nrow(&none[t * E], E);
        double max_ref = 0;
        for (float x : raw_ref[t]) max_ref = std::max(max_ref, static_cast<double>(std::fabs(x)));
        EXPECT_LE(MaxAbsDiff(row, raw_ref[t]), 2e-3 * max_ref) << "raw token " << t;
        EXPECT_LE(MaxAbsDiff(nrow, none_ref[t]), 1e-3) << "normalized token " << t;
      }
    }
  }
  EXPECT_GT(checked_models, 0) << "no encoder model in the golden manifest";
}

}  // namespace
}  // namespace si
