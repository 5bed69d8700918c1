// Non-matmul kernels on every SIMD target vs the scalar reference, over sizes hitting every vector
// tail and misaligned pointers. Declared tolerances:
//   rms_norm: 1e-6 relative + 1e-7; layer_norm: 1e-6 relative + 1e-6; add: exact
//   silu_mul, softmax: 2e-6 relative (hwy Exp is ~1-2 ulp)
//   rope: 1e-6 absolute on O(1) data
//   gelu_tanh, gelu_erf: 2e-6 |ref| + 2e-7 |x| (the reference's own 1 + tanh/erf cancels for x < 0)
//   attention: 1e-5 of max |out| of the (token, head) row (online softmax sums in another order)
#include "si/kernels/ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "kernels/test_util.h"
#include "si/base/thread_pool.h"

namespace si {
namespace {

using test::RandomFloats;

const int64_t kSizes[] = {1,  2,  3,  7,  8,   15,  16,  17,   31,      32,
                          33, 63, 64, 65, 100, 255, 256, 1000, 4096 + 3};

void ExpectClose(const float* got, const float* want, int64_t n, double rel, double abs_floor,
                 const char* what) {
  for (int64_t i = 0; i < n; ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    ASSERT_LE(err, rel * std::fabs(want[i]) + abs_floor)
        << what << " at " << i << ": " << got[i] << " vs " << want[i];
  }
}

TEST(Ops, RmsNormAndLayerNorm) {
  for (const Kernels* k : AllKernelTargets()) {
    for (int64_t dim : kSizes) {
      for (bool with_bias : {false, true}) {
        SCOPED_TRACE(testing::Message() << k->name << " dim=" << dim);
        const int64_t rows = 3;
        std::vector<float> x = RandomFloats(rows * dim + 1, dim, -4.0f, 4.0f);
        for (int64_t i = 0; i < rows * dim; i += 5)
          x[i + 1] += 2.0f;  // non-zero mean for layer_norm
        std::vector<float> gain = RandomFloats(dim, 2, 0.5f, 1.5f), bias = RandomFloats(dim, 3);
        std::vector<float> ref(rows * dim), out(rows * dim + 1);
        ReferenceKernels().rms_norm(x.data() + 1, gain.data(), rows, dim, 1e-5f, ref.data());
        k->rms_norm(x.data() + 1, gain.data(), rows, dim, 1e-5f, out.data() + 1);
        ExpectClose(out.data() + 1, ref.data(), rows * dim, 1e-6, 1e-7, "rms_norm");
        ReferenceKernels().layer_norm(x.data() + 1, gain.data(), with_bias ? bias.data() : nullptr,
                                      rows, dim, 1e-5f, ref.data());
        k->layer_norm(x.data() + 1, gain.data(), with_bias ? bias.data() : nullptr, rows, dim,
                      1e-5f, out.data() + 1);
        ExpectClose(out.data() + 1, ref.data(), rows * dim, 1e-6, 1e-6, "layer_norm");
        // In place.
        std::vector<float> inplace(x.begin() + 1, x.end());
        k->rms_norm(inplace.data(), gain.data(), rows, dim, 1e-5f, inplace.data());
        ReferenceKernels().rms_norm(x.data() + 1, gain.data(), rows, dim, 1e-5f, ref.data());
        ExpectClose(inplace.data(), ref.data(), rows * dim, 1e-6, 1e-7, "rms_norm in place");
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(Ops, Elementwise) {
  for (const Kernels* k : AllKernelTargets()) {
    for (int64_t n : kSizes) {
      SCOPED_TRACE(testing::Message() << k->name << " n=" << n);
      std::vector<float> x = RandomFloats(n + 1, n, -8.0f, 8.0f);
      if (n > 4) {
        x[1] = 95.0f;  // large magnitudes: overflow paths of exp/tanh
        x[2] = -95.0f;
        x[3] = 0.0f;
      }
      std::vector<float> y = RandomFloats(n + 1, n + 1, -2.0f, 2.0f);
      for (int which = 0; which < 2; ++which) {
        std::vector<float> a(x.begin() + 1, x.end()), b(x.begin() + 1, x.end());
        if (which == 0) {
          ReferenceKernels().gelu_tanh(a.data(), n);
          k->gelu_tanh(b.data(), n);
        } else {
          ReferenceKernels().gelu_erf(a.data(), n);
          k->gelu_erf(b.data(), n);
        }
        for (int64_t i = 0; i < n; ++i) {
          const double err = std::fabs(static_cast<double>(b[i]) - a[i]);
          ASSERT_LE(err, 2e-6 * std::fabs(a[i]) + 2e-7 * std::fabs(x[i + 1]) + 1e-30)
              << (which ? "gelu_erf" : "gelu_tanh") << " x=" << x[i + 1] << ": " << b[i] << " vs "
              << a[i];
        }
      }
      std::vector<float> ref(n), out(n + 1);
      ReferenceKernels().silu_mul(x.data() + 1, y.data() + 1, n, ref.data());
      k->silu_mul(x.data() + 1, y.data() + 1, n, out.data() + 1);
      ExpectClose(out.data() + 1, ref.data(), n, 2e-6, 1e-30, "silu_mul");
      std::vector<float> s1(x.begin() + 1, x.end()), s2(x.begin() + 1, x.end());
      ReferenceKernels().add(s1.data(), y.data() + 1, n);
      k->add(s2.data(), y.data() + 1, n);
      ASSERT_EQ(0, std::memcmp(s1.data(), s2.data(), n * 4)) << "add";
      std::vector<float> m1(x.begin() + 1, x.end()), m2(x.begin() + 1, x.end());
      if (n > 8) m1[5] = m2[5] = -INFINITY;  // masked score
      ReferenceKernels().softmax(m1.data(), n);
      k->softmax(m2.data(), n);
      ExpectClose(m2.data(), m1.data(), n, 2e-6, 1e-37, "softmax");
      if (HasFatalFailure()) return;
    }
  }
}

TEST(Ops, GeluErfAccuracyVsDouble) {
  // Documents the polynomial's error against a double-precision GELU over [-10, 10].
  for (const Kernels* k : AllKernelTargets()) {
    const int64_t n = 200001;
    std::vector<float> x(n), y(n);
    for (int64_t i = 0; i < n; ++i) x[i] = y[i] = -10.0f + 20.0f * i / (n - 1);
    k->gelu_erf(y.data(), n);
    double max_rel = 0, max_abs = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double xd = x[i], want = 0.5 * xd * (1.0 + std::erf(xd / std::sqrt(2.0)));
      const double err = std::fabs(y[i] - want);
      max_abs = std::max(max_abs, err);
      if (xd > -5.0 && want != 0.0) max_rel = std::max(max_rel, err / std::fabs(want));
      if (xd > -5.0) {
        ASSERT_LE(err, 2e-6 * std::fabs(want) + 1e-9) << k->name << " x=" << xd;
      }
    }
    std::printf("%s gelu_erf: max abs err %.3g, max rel err %.3g on [-5, 10]\n", k->name, max_abs,
                max_rel);
  }
}

TEST(Ops, Rope) {
  for (const Kernels* k : AllKernelTargets()) {
    for (bool neox : {false, true}) {
      for (int64_t head_dim : {2, 6, 32, 64, 80, 128}) {
        for (int64_t rope_dims : {head_dim, head_dim / 2}) {
          if (rope_dims % 2 != 0 || rope_dims == 0) continue;
          SCOPED_TRACE(testing::Message() << k->name << " neox=" << neox << " head_dim=" << head_dim
                                          << " rope_dims=" << rope_dims);
          const int64_t tokens = 5, heads = 3, stride = heads * head_dim + 7;
          std::vector<float> x = RandomFloats(tokens * stride + 1, head_dim);
          std::vector<float> a(x), b(x);
          const int32_t pos[tokens] = {0, 1, 17, 1000, 4095};
          ReferenceKernels().rope(a.data() + 1, tokens, stride, heads, head_dim, rope_dims, pos,
                                  10000.0f, neox);
          k->rope(b.data() + 1, tokens, stride, heads, head_dim, rope_dims, pos, 10000.0f, neox);
          ExpectClose(b.data(), a.data(), static_cast<int64_t>(a.size()), 0.0, 1e-6, "rope");
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

struct AttnCase {
  int64_t num_tokens, kv_len, num_heads, num_kv_heads, head_dim;
  bool causal;
};

void RunAttention(const Kernels& k, const AttnCase& c, const std::vector<float>& q,
                  const std::vector<float>& kv, const std::vector<int32_t>& pos, int64_t kv_stride,
                  ThreadPool* pool, std::vector<float>* out, int64_t first_token = 0,
                  int64_t num_tokens = -1) {
  AttentionArgs a;
  if (num_tokens < 0) num_tokens = c.num_tokens;
  const int64_t qdim = c.num_heads * c.head_dim;
  a.q = q.data() + first_token * qdim;
  a.num_tokens = num_tokens;
  a.q_pos = pos.data() + first_token;
  a.k = kv.data();
  a.v = kv.data() + c.kv_len * kv_stride;
  a.kv_len = c.kv_len;
  a.kv_stride = kv_stride;
  a.num_heads = c.num_heads;
  a.num_kv_heads = c.num_kv_heads;
  a.head_dim = c.head_dim;
  a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  a.causal = c.causal;
  out->assign(num_tokens * qdim, NAN);
  a.out = out->data();
  k.attention(a, pool);
}

TEST(Ops, AttentionVsReferenceAndDeterministic) {
  const AttnCase cases[] = {
      {1, 1, 4, 4, 64, true},
      {1, 37, 8, 2, 64, true},
      {7, 7, 4, 1, 32, true},
      {9, 300, 6, 3, 80, true},
      {5, 130, 4, 4, 17, false},
      {33, 33, 2, 2, 128, true},
      {1, 1000, 32, 4, 64, true},
      {70, 200, 4, 2, 16, true},
      {3, 65, 2, 1, 100, false},
      // Prefill from position 0 (diagonal tiles whose queries see different key counts), MHA as
      // the 110M shape and GQA; 130 tokens: a partial last block.
      {130, 130, 2, 2, 64, true},
      {45, 45, 8, 2, 64, true},
  };
  std::vector<std::unique_ptr<ThreadPool>> pools;
  for (int t : {2, 3, 4}) pools.push_back(std::make_unique<ThreadPool>(t));
  for (const Kernels* k : AllKernelTargets()) {
    for (const AttnCase& c : cases) {
      SCOPED_TRACE(testing::Message()
                   << k->name << " tokens=" << c.num_tokens << " kv_len=" << c.kv_len
                   << " heads=" << c.num_heads << "/" << c.num_kv_heads
                   << " head_dim=" << c.head_dim << " causal=" << c.causal);
      const int64_t kv_stride = c.num_kv_heads * c.head_dim + 3;
      std::vector<float> q = RandomFloats(c.num_tokens * c.num_heads * c.head_dim, 11, -2.0f, 2.0f);
      std::vector<float> kv = RandomFloats(2 * c.kv_len * kv_stride, 12, -2.0f, 2.0f);
      std::vector<int32_t> pos(c.num_tokens);
      for (int64_t t = 0; t < c.num_tokens; ++t)
        pos[t] = static_cast<int32_t>(c.kv_len - c.num_tokens + t);
      std::vector<float> ref, out;
      RunAttention(ReferenceKernels(), c, q, kv, pos, kv_stride, nullptr, &ref);
      RunAttention(*k, c, q, kv, pos, kv_stride, nullptr, &out);
      const int64_t row = c.num_heads * c.head_dim;
      for (int64_t t = 0; t < c.num_tokens; ++t) {
        for (int64_t h = 0; h < c.num_heads; ++h) {
          float max_abs = 0;
          for (int64_t i = 0; i < c.head_dim; ++i)
            max_abs = std::max(max_abs, std::fabs(ref[t * row + h * c.head_dim + i]));
          for (int64_t i = 0; i < c.head_dim; ++i) {
            const int64_t idx = t * row + h * c.head_dim + i;
            ASSERT_LE(std::fabs(out[idx] - ref[idx]), 1e-5 * max_abs + 1e-7)
                << "t=" << t << " h=" << h << " i=" << i;
          }
        }
      }
      // Determinism: any thread count, and every token alone (as in decode) gives the same bits.
      for (auto& pool : pools) {
        std::vector<float> out2;
        RunAttention(*k, c, q, kv, pos, kv_stride, pool.get(), &out2);
        ASSERT_EQ(0, std::memcmp(out.data(), out2.data(), out.size() * 4))
            << "threads " << pool->num_threads();
      }
      for (int64_t t = 0; t < c.num_tokens; ++t) {
        std::vector<float> one;
        RunAttention(*k, c, q, kv, pos, kv_stride, pools[0].get(), &one, t, 1);
        ASSERT_EQ(0, std::memcmp(one.data(), out.data() + t * row, row * 4))
            << "token " << t << " alone";
      }
    }
  }
}

}  // namespace
}  // namespace si
