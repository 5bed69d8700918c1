// scaleinfer make-model: a random-weight GGUF that ScaleInfer and llama.cpp both load.
#include <cstdio>

#include "command.h"
#include "si/base/timer.h"
#include "si/model/synthetic.h"

namespace si::cli {
namespace {

struct Options {
  std::string arch = "llama", dims, dtype = "f32", out;
  uint64_t seed = 0;
};

int Run(const Options& o) {
  auto arch = ParseArch(o.arch);
  if (!arch.ok()) return PrintError("make-model", arch.status());
  auto config = SyntheticConfig(*arch, o.dims.empty() ? std::string(ArchName(*arch)) + "-tiny" : o.dims);
  if (!config.ok()) return PrintError("make-model", config.status());
  auto dtype = ParseDType(o.dtype);
  if (!dtype.ok()) return PrintError("make-model", dtype.status());
  const double t0 = NowSeconds();
  Status st = WriteSyntheticModel({*config, *dtype, o.seed}, o.out);
  if (!st.ok()) return PrintError("make-model", st);
  const ModelConfig& c = *config;
  std::printf("wrote %s: %s, %lld layers, dim %lld, %lld/%lld heads, ff %lld, vocab %lld, ctx %lld, %s, seed %llu "
              "(%.1f s)\n",
              o.out.c_str(), std::string(ArchName(c.arch)).c_str(), static_cast<long long>(c.num_layers),
              static_cast<long long>(c.model_dim), static_cast<long long>(c.num_heads),
              static_cast<long long>(c.num_kv_heads), static_cast<long long>(c.ffn_dim),
              static_cast<long long>(c.vocab_size), static_cast<long long>(c.context_len), o.dtype.c_str(),
              static_cast<unsigned long long>(o.seed), NowSeconds() - t0);
  return 0;
}

}  // namespace

SI_REGISTER_COMMAND(make_model, "make-model", "Write a random-weight GGUF model (llama, gpt2, falcon, bert)", 60,
                    [](CLI::App& sub) -> CommandRunner {
                      auto o = std::make_shared<Options>();
                      std::string presets;
                      for (const auto& p : SyntheticPresetNames()) presets += (presets.empty() ? "" : ", ") + p;
                      sub.add_option("--arch", o->arch, "llama, gpt2, falcon or bert")->capture_default_str();
                      sub.add_option("--dims", o->dims,
                                     "preset (" + presets + ") or layers=,dim=,heads=,kv_heads=,ff=,vocab=,ctx=");
                      sub.add_option("--dtype", o->dtype, "f32, f16, bf16, q8_0, q4_0, q4_k, q5_k or q6_k (k-quants need dims divisible by 256)")
                          ->capture_default_str();
                      sub.add_option("--seed", o->seed, "random seed")->capture_default_str();
                      sub.add_option("--out", o->out, "output GGUF file")->required();
                      return [o] { return Run(*o); };
                    });

}  // namespace si::cli
