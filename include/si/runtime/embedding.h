// Sentence embeddings from an encoder's hidden states, as llama.cpp's llama-embedding computes them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "si/model/config.h"

namespace si {

// Pools hidden [num_tokens, model_dim] into one vector (kMean, kCls = first token, kLast = last token).
// kNone returns all rows unchanged ([num_tokens * model_dim]).
std::vector<float> Pool(std::span<const float> hidden, int64_t num_tokens, int64_t model_dim, Pooling pooling);

// llama-embedding's --embd-normalize: -1 none, 0 max-abs (scaled to int16 range), 1 taxicab, 2 euclidean,
// p > 2 p-norm. Normalizes each row of `dim` values in place.
void NormalizeRows(std::span<float> rows, int64_t dim, int norm);

}  // namespace si
