// Model descriptions for the analysis library: the engine's ModelConfig plus the few analysis-only
// facts (nominal parameter count for MFU, heads before padding). Presets cover models without
// files; any GGUF file can be analysed through the same ModelConfig the engine reads.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "si/base/status.h"
#include "si/model/config.h"

namespace si::analysis {

struct AnalysisModel {
  ModelConfig config;  // as run: PaLM 540B has num_heads = 64 (padded from 48)
  double nominal_params =
      0;  // parameters as published; MFU uses 2 * nominal_params FLOPs per token
  int64_t unpadded_heads = 0;  // heads before padding (== config.num_heads when not padded)
  std::string source;          // "preset" or the GGUF path
};

// Preset names: palm-8b, palm-62b, palm-540b, mt-nlg-530b, gpt3-175b, llama2-7b, llama2-70b,
// bert-base, bert-large, gpt2.
std::vector<std::string> PresetNames();
Result<AnalysisModel> ModelPreset(std::string_view name);
// A preset name or a path ending in .gguf (read with LoadModelConfig; nominal params = counted
// params).
Result<AnalysisModel> LoadAnalysisModel(std::string_view name_or_path);

}  // namespace si::analysis
