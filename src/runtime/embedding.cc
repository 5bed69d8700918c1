#include "si/runtime/embedding.h"

#include <algorithm>
#include <cmath>

#include "si/base/check.h"

namespace si {

std::vector<float> Pool(std::span<const float> hidden, int64_t T, int64_t E, Pooling pooling) {
  SI_CHECK_EQ(static_cast<int64_t>(hidden.size()), T * E);
  switch (pooling) {
    case Pooling::kNone:
      return {hidden.begin(), hidden.end()};
    case Pooling::kCls:
      return {hidden.begin(), hidden.begin() + E};
    case Pooling::kLast:
      return {hidden.end() - E, hidden.end()};
    case Pooling::kMean: {
      std::vector<float> out(E, 0.0f);
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t i = 0; i < E; ++i) out[i] += hidden[t * E + i];
      }
      for (float& v : out) v /= static_cast<float>(T);
      return out;
    }
  }
  return {};
}

void NormalizeRows(std::span<float> rows, int64_t dim, int norm) {
  if (norm < 0) return;
  for (size_t r = 0; r + dim <= rows.size(); r += dim) {
    float* x = rows.data() + r;
    double sum = 0;
    switch (norm) {
      case 0: {  // max absolute value, scaled to int16 range (llama.cpp's common_embd_normalize)
        for (int64_t i = 0; i < dim; ++i) sum = std::max(sum, static_cast<double>(std::fabs(x[i])));
        sum /= 32760.0;
        break;
      }
      case 2: {
        for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(x[i]) * x[i];
        sum = std::sqrt(sum);
        break;
      }
      default: {
        for (int64_t i = 0; i < dim; ++i) sum += std::pow(std::fabs(static_cast<double>(x[i])), norm);
        sum = std::pow(sum, 1.0 / norm);
        break;
      }
    }
    const float scale = sum > 0.0 ? static_cast<float>(1.0 / sum) : 0.0f;
    for (int64_t i = 0; i < dim; ++i) x[i] *= scale;
  }
}

}  // namespace si
