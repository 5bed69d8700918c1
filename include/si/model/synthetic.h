// Random-weight models written as GGUF, for demos, tests and benchmarks without downloads. The file has
// everything llama.cpp needs to load it: hyperparameters and a synthetic vocabulary (SentencePiece-style for
// llama, byte-level BPE with merges for gpt2 and falcon).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "si/model/config.h"
#include "si/tensor/dtype.h"

namespace si {

struct SyntheticSpec {
  ModelConfig config;
  DType dtype = DType::kF32;  // every 2-D weight; norms, biases and position tables stay f32
  uint64_t seed = 0;
};

// Named shapes: llama-tiny, llama-110m, llama-1.1b, llama-7b, gpt2-tiny, gpt2-124m, falcon-tiny, falcon-1b,
// bert-tiny. Or a spec "layers=2,dim=64,heads=4,kv_heads=2,ff=160,vocab=32000,ctx=256" (missing keys take
// the arch's tiny defaults).
Result<ModelConfig> SyntheticConfig(Arch arch, const std::string& dims);
std::vector<std::string> SyntheticPresetNames();

// Builds the model and writes it atomically to `path`.
Status WriteSyntheticModel(const SyntheticSpec& spec, const std::string& path);

}  // namespace si
