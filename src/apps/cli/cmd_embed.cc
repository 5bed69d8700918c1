// scaleinfer embed -m FILE --text STR [--json]: sentence embeddings from an encoder model, printed as
// llama.cpp's llama-embedding prints them with default settings (one prompt per line of text, model pooling,
// euclidean normalization).
#include <cstdio>

#include "args.h"
#include "command.h"
#include "si/model/tokenizer.h"
#include "si/runtime/embedding.h"
#include "si/runtime/engine.h"

namespace si::cli {
namespace {

struct Options {
  std::string model, text, pooling = "model";
  int normalize = 2, threads = 0;
  bool json = false;
};

int Run(const Options& o) {
  auto model = Model::Load(o.model);
  if (!model.ok()) return PrintError("embed", model.status());
  const ModelConfig cfg = (*model)->config();
  if (!cfg.is_encoder()) {
    return PrintError("embed", InvalidArgumentError(o.model, " is a decoder (", ArchName(cfg.arch),
                                                    "); embed needs an encoder such as bert"));
  }
  Pooling pooling = cfg.pooling;
  if (o.pooling != "model") {
    bool found = false;
    for (Pooling p : {Pooling::kNone, Pooling::kMean, Pooling::kCls, Pooling::kLast}) {
      if (PoolingName(p) == o.pooling) pooling = p, found = true;
    }
    if (!found) return PrintError("embed", InvalidArgumentError("--pooling must be model, none, mean, cls or last"));
  }
  auto tok = Tokenizer::FromGguf((*model)->gguf());
  if (!tok.ok()) return PrintError("embed", tok.status().WithContext(o.model));
  auto engine = Engine::Create(std::shared_ptr<const Model>(std::move(*model)), {.num_threads = o.threads});
  if (!engine.ok()) return PrintError("embed", engine.status());
  // One prompt per line, as llama-embedding's default --embd-separator "\n".
  std::vector<std::string> prompts;
  size_t start = 0;
  while (start <= o.text.size()) {
    size_t nl = o.text.find('\n', start);
    if (nl == std::string::npos) nl = o.text.size();
    prompts.push_back(o.text.substr(start, nl - start));
    start = nl + 1;
  }
  const int64_t E = cfg.model_dim;
  std::vector<std::vector<float>> embeddings;
  for (const std::string& p : prompts) {
    const std::vector<int32_t> ids = (*tok)->Encode(p, true, true);
    std::vector<float> hidden;
    Status st = (*engine)->Encode(ids, &hidden);
    if (!st.ok()) return PrintError("embed", st);
    std::vector<float> v = Pool(hidden, static_cast<int64_t>(ids.size()), E, pooling);
    NormalizeRows(v, E, o.normalize);
    for (size_t r = 0; r < v.size(); r += E) embeddings.emplace_back(v.begin() + r, v.begin() + r + E);
  }
  if (o.json) {
    std::printf("{\n  \"object\": \"list\",\n  \"data\": [\n");
    for (size_t j = 0; j < embeddings.size(); ++j) {
      std::printf("    {\n      \"object\": \"embedding\",\n      \"index\": %zu,\n      \"embedding\": [", j);
      for (int64_t i = 0; i < E; ++i) std::printf("%s%1.7f", i ? "," : "", embeddings[j][i]);
      std::printf("]\n    }%s\n", j + 1 < embeddings.size() ? "," : "");
    }
    std::printf("  ]\n}\n");
    return 0;
  }
  const bool per_token = pooling == Pooling::kNone;
  for (size_t j = 0; j < embeddings.size(); ++j) {
    std::printf("embedding %zu: ", j);
    const auto& v = embeddings[j];
    auto print = [&](int64_t i) { o.normalize == 0 ? std::printf("%6.0f ", v[i]) : std::printf("%9.6f ", v[i]); };
    if (per_token) {
      for (int64_t i = 0; i < std::min<int64_t>(3, E); ++i) print(i);
      std::printf(" ... ");
      for (int64_t i = std::max<int64_t>(0, E - 3); i < E; ++i) print(i);
    } else {
      const int64_t shown = embeddings.size() > 1 ? std::min<int64_t>(16, E) : E;
      for (int64_t i = 0; i < shown; ++i) print(i);
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(embed, "embed", "Sentence embeddings from an encoder model (as llama-embedding)", 45,
                    [](CLI::App& sub) -> CommandRunner {
                      auto o = std::make_shared<Options>();
                      sub.add_option("-m,--model", o->model, "GGUF encoder model (bert)")->required();
                      sub.add_option("--text,-p", o->text, "text; one prompt per line")->required();
                      sub.add_flag("--json", o->json, "print llama-embedding's JSON format");
                      sub.add_option("--pooling", o->pooling, "model, none, mean, cls or last")->capture_default_str();
                      sub.add_option("--normalize", o->normalize,
                                     "-1 none, 0 max-abs int16, 1 taxicab, 2 euclidean, >2 p-norm")
                          ->capture_default_str();
                      sub.add_option("-t,--threads", o->threads, "threads (0: all cores)");
                      return [o] { return Run(*o); };
                    });

}  // namespace si::cli
