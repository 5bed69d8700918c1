// Token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty. Seeded, so a run with the
// same seed, model and prompt is reproducible (the engine's logits are deterministic).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "si/base/status.h"

namespace si {

struct SamplerOptions {
  float temperature = 0.0f;   // <= 0: greedy (argmax, ties to the lowest id)
  int top_k = 0;              // 0: off
  float top_p = 1.0f;         // 1: off
  float min_p = 0.0f;         // 0: off
  float repeat_penalty = 1.0f;  // 1: off; applied to the last repeat_last_n tokens (llama.cpp's rule)
  int repeat_last_n = 64;
  uint64_t seed = 0;
  Status Validate() const;
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions options);
  // Picks the next token from one row of logits, given the tokens so far (for the repetition penalty).
  int32_t Sample(std::span<const float> logits, std::span<const int32_t> history);
  const SamplerOptions& options() const { return opts_; }

 private:
  double Uniform();  // [0, 1), platform-independent
  SamplerOptions opts_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // (logit, id) scratch
};

// Argmax with ties broken to the lowest id (llama.cpp's greedy).
int32_t Argmax(std::span<const float> logits);

}  // namespace si
