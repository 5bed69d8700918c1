#include "si/analysis/models.h"

#include <functional>
#include <memory>
#include <utility>

#include "si/analysis/op_cost.h"
#include "si/model/gguf.h"
#include "si/model/loader.h"

namespace si::analysis {
namespace {

// PaLM (Chowdhery et al. 2022, Table 1; Pope et al. Table D.1): multiquery, parallel block, SwiGLU
// with the full d_ff for both gate and up, RoPE, shared input/output embedding, no biases.
// Llama-like roles.
ModelConfig Palm(std::string name, int64_t e, int64_t layers, int64_t heads) {
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.name = std::move(name);
  c.vocab_size = 256128;
  c.model_dim = e;
  c.ffn_dim = 4 * e;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = 1;
  c.head_dim = 256;
  c.context_len = 2048;
  c.rope_dims = 256;
  c.ffn = FfnKind::kSwiGlu;
  c.block = BlockKind::kParallel;
  c.norm = NormKind::kLayerNorm;
  c.tied_output = true;
  return c;
}

// GPT-2-like roles (fused QKV, biases, learned positions, GELU, serial pre-norm block).
ModelConfig GptLike(std::string name, int64_t e, int64_t layers, int64_t heads, int64_t vocab,
                    int64_t ctx) {
  ModelConfig c;
  c.arch = Arch::kGpt2;
  c.name = std::move(name);
  c.vocab_size = vocab;
  c.model_dim = e;
  c.ffn_dim = 4 * e;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = heads;
  c.head_dim = e / heads;
  c.context_len = ctx;
  ApplyArchTraits(c);
  c.tied_output = false;
  return c;
}

ModelConfig Llama2(std::string name, int64_t e, int64_t f, int64_t layers, int64_t heads,
                   int64_t kv_heads) {
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.name = std::move(name);
  c.vocab_size = 32000;
  c.model_dim = e;
  c.ffn_dim = f;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = e / heads;
  c.context_len = 4096;
  ApplyArchTraits(c);
  return c;
}

ModelConfig Bert(std::string name, int64_t e, int64_t layers, int64_t heads) {
  ModelConfig c;
  c.arch = Arch::kBert;
  c.name = std::move(name);
  c.vocab_size = 30522;
  c.model_dim = e;
  c.ffn_dim = 4 * e;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = heads;
  c.head_dim = e / heads;
  c.context_len = 512;
  ApplyArchTraits(c);
  c.pooling = Pooling::kCls;
  return c;
}

struct Preset {
  const char* name;
  std::function<AnalysisModel()> make;
};

AnalysisModel Make(ModelConfig c, double nominal, int64_t unpadded_heads = 0) {
  AnalysisModel m;
  m.unpadded_heads = unpadded_heads ? unpadded_heads : c.num_heads;
  m.config = std::move(c);
  m.nominal_params = nominal;
  m.source = "preset";
  return m;
}

const std::vector<Preset>& Presets() {
  static const std::vector<Preset> presets = {
      {"palm-8b", [] { return Make(Palm("palm-8b", 4096, 32, 16), 8.63e9); }},
      {"palm-62b", [] { return Make(Palm("palm-62b", 8192, 64, 32), 62.50e9); }},
      // 48 heads padded to 64 for inference on 64+ chips (Pope et al. §4): +18B parameters
      // computed, MFU still counted on the nominal 540.35B.
      {"palm-540b", [] { return Make(Palm("palm-540b", 18432, 118, 64), 540.35e9, 48); }},
      {"mt-nlg-530b",
       [] {
         ModelConfig c = GptLike("mt-nlg-530b", 20480, 105, 128, 51200, 2048);
         return Make(c, 530e9);
       }},
      {"gpt3-175b", [] { return Make(GptLike("gpt3-175b", 12288, 96, 96, 50257, 2048), 175e9); }},
      {"llama2-7b", [] { return Make(Llama2("llama2-7b", 4096, 11008, 32, 32, 32), 6.74e9); }},
      {"llama2-70b", [] { return Make(Llama2("llama2-70b", 8192, 28672, 80, 64, 8), 68.98e9); }},
      {"bert-base", [] { return Make(Bert("bert-base", 768, 12, 12), 110e6); }},
      {"bert-large", [] { return Make(Bert("bert-large", 1024, 24, 16), 340e6); }},
      {"gpt2", [] { return Make(GptLike("gpt2", 768, 12, 12, 50257, 1024), 124e6); }},
  };
  return presets;
}

}  // namespace

std::vector<std::string> PresetNames() {
  std::vector<std::string> names;
  for (const auto& p : Presets()) names.emplace_back(p.name);
  return names;
}

Result<AnalysisModel> ModelPreset(std::string_view name) {
  for (const auto& p : Presets()) {
    if (name == p.name) {
      AnalysisModel m = p.make();
      SI_RETURN_IF_ERROR(m.config.Validate().WithContext(StrCat("preset ", name)));
      return m;
    }
  }
  std::string known;
  for (const auto& n : PresetNames()) known += (known.empty() ? "" : ", ") + n;
  return NotFoundError("unknown model '", name, "' (presets: ", known,
                       "; or a path to a .gguf file)");
}

Result<AnalysisModel> LoadAnalysisModel(std::string_view name_or_path) {
  const bool is_file =
      name_or_path.size() > 5 && name_or_path.substr(name_or_path.size() - 5) == ".gguf";
  if (!is_file) return ModelPreset(name_or_path);
  SI_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(std::string(name_or_path)));
  SI_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(*file));
  AnalysisModel m;
  m.config = std::move(config);
  m.nominal_params = static_cast<double>(TotalParams(m.config));
  m.unpadded_heads = m.config.num_heads;
  m.source = std::string(name_or_path);
  return m;
}

}  // namespace si::analysis
