#include "si/runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace si {

Status SamplerOptions::Validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) {
    return InvalidArgumentError("--temp must be >= 0, got ", temperature);
  }
  if (top_k < 0) return InvalidArgumentError("--top-k must be >= 0, got ", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) return InvalidArgumentError("--top-p must be in (0, 1], got ", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return InvalidArgumentError("--min-p must be in [0, 1], got ", min_p);
  if (!(repeat_penalty > 0.0f) || !std::isfinite(repeat_penalty)) {
    return InvalidArgumentError("--repeat-penalty must be > 0, got ", repeat_penalty);
  }
  if (repeat_last_n < 0) return InvalidArgumentError("--repeat-last-n must be >= 0, got ", repeat_last_n);
  return Status::Ok();
}

int32_t Argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

Sampler::Sampler(SamplerOptions options) : opts_(options), rng_(options.seed) {}

double Sampler::Uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::Sample(std::span<const float> logits, std::span<const int32_t> history) {
  cand_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) cand_[i] = {logits[i], static_cast<int32_t>(i)};

  // Repetition penalty (CTRL / llama.cpp): positive logits divided, negative multiplied, once per token.
  if (opts_.repeat_penalty != 1.0f && opts_.repeat_last_n > 0 && !history.empty()) {
    const size_t n = std::min<size_t>(history.size(), static_cast<size_t>(opts_.repeat_last_n));
    std::unordered_set<int32_t> recent(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
    for (int32_t id : recent) {
      if (id < 0 || static_cast<size_t>(id) >= cand_.size()) continue;
      float& l = cand_[id].first;
      l = l > 0 ? l / opts_.repeat_penalty : l * opts_.repeat_penalty;
    }
  }
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  if (opts_.temperature <= 0.0f) {
    return std::min_element(cand_.begin(), cand_.end(), by_logit)->second;
  }
  // Top-k: keep the k largest (sorted descending from here on).
  size_t keep = cand_.size();
  if (opts_.top_k > 0 && static_cast<size_t>(opts_.top_k) < keep) keep = static_cast<size_t>(opts_.top_k);
  std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(keep), cand_.end(), by_logit);
  cand_.resize(keep);
  // Softmax at temperature 1 for the p filters (as llama.cpp applies top-p/min-p before temperature).
  const float max = cand_[0].first;
  std::vector<double> p(keep);
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += p[i] = std::exp(static_cast<double>(cand_[i].first - max));
  for (double& x : p) x /= sum;
  if (opts_.top_p < 1.0f) {
    double cum = 0;
    size_t n = 0;
    while (n < keep) {
      cum += p[n++];
      if (cum >= opts_.top_p) break;
    }
    keep = n;
  }
  if (opts_.min_p > 0.0f) {
    size_t n = 1;
    while (n < keep && p[n] >= opts_.min_p * p[0]) ++n;
    keep = n;
  }
  // Temperature, then sample from the survivors.
  std::vector<double> w(keep);
  double wsum = 0;
  for (size_t i = 0; i < keep; ++i) {
    wsum += w[i] = std::exp(static_cast<double>(cand_[i].first - max) / opts_.temperature);
  }
  double r = Uniform() * wsum;
  for (size_t i = 0; i < keep; ++i) {
    r -= w[i];
    if (r < 0) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

}  // namespace si
