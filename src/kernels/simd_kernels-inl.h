// Per-target declarations of the Highway kernels. Included (via foreach_target) by every
// translation unit that defines or collects them: simd_matmul.cc, simd_ops.cc and dispatch.cc. Each
// compiled target T gets its own copy in namespace si::N_T (e.g. si::N_AVX3::MatMul), so the tables
// in dispatch.cc can take the address of every target's function without any runtime dispatch
// inside a kernel.
//
// Compiled targets: every x86 target Highway 1.0.3 attains except SSSE3 (disabled in CMake: it
// would only add build time) and AVX3_DL. AVX3_DL is NOT requested (no HWY_WANT_AVX3_DL) because
// Highway 1.0.3 builds it with -mavxvnni (VEX-encoded VNNI), which Zen 4 does not have; GCC then
// emits `{vex} vpdpbusd` and the AVX3_DL code dies with SIGILL on this very machine. Instead the
// AVX3 target compiles the quantized matmul a second time with `#pragma GCC target("avx512vnni")`
// (EVEX encoding, MatMulVnni) and dispatch.cc offers it as the "AVX3_VNNI" table when CPUID reports
// AVX512_VNNI.

// Normal include guard for the non-SIMD part.
#ifndef SI_KERNELS_SIMD_KERNELS_INL_H_ONCE
#define SI_KERNELS_SIMD_KERNELS_INL_H_ONCE
#include <cstdint>

#include "si/kernels/ops.h"
#endif

// Per-target include guard, toggled by foreach_target.
#if defined(SI_KERNELS_SIMD_KERNELS_INL_H_TARGET) == defined(HWY_TARGET_TOGGLE)
#ifdef SI_KERNELS_SIMD_KERNELS_INL_H_TARGET
#undef SI_KERNELS_SIMD_KERNELS_INL_H_TARGET
#else
#define SI_KERNELS_SIMD_KERNELS_INL_H_TARGET
#endif

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace si {
namespace HWY_NAMESPACE {

// The scalar Highway target (SCALAR) is compiled by foreach_target but gets no kernels: the
// reference kernels already cover CPUs without SSE4.
#if HWY_TARGET != HWY_SCALAR
void MatMul(const float* a, int64_t m, const MatRef& w, const float* bias, float* c,
            ThreadPool* pool);
// Same numerics as MatMul; only different on AVX3, where Q8_0/Q4_0 use AVX512-VNNI dot products.
void MatMulVnni(const float* a, int64_t m, const MatRef& w, const float* bias, float* c,
                ThreadPool* pool);
// Several matmuls of one input (Kernels::matmul_multi).
void MatMulMulti(const float* a, int64_t m, int count, const MatRef* w, const float* const* bias,
                 float* const* c, ThreadPool* pool);
void MatMulMultiVnni(const float* a, int64_t m, int count, const MatRef* w, const float* const* bias,
                     float* const* c, ThreadPool* pool);
void GetRows(const MatRef& w, const int32_t* ids, int64_t n, float* out);
#if HWY_TARGET <= HWY_AVX2
// Kernels::panel_bytes / to_panels: f32 / f16 / bf16 matrices in 16-output panels.
int64_t PanelBytes(const MatRef& w);
MatRef ToPanels(const MatRef& w, void* dst, ThreadPool* pool);
#endif
// Q4_K / Q5_K / Q6_K weights (simd_kquant.cc); MatMul and MatMulVnni route them here.
void KQuantMatMul(const float* a, int64_t m, const MatRef& w, const float* bias, float* c, ThreadPool* pool);
void RmsNorm(const float* x, const float* gain, int64_t rows, int64_t dim, float eps, float* out);
void LayerNorm(const float* x, const float* gain, const float* bias, int64_t rows, int64_t dim,
               float eps, float* out);
void GeluTanh(float* x, int64_t n);
void GeluErf(float* x, int64_t n);
void SiluMul(const float* gate, const float* up, int64_t n, float* out);
void Add(float* x, const float* y, int64_t n);
void Softmax(float* x, int64_t n);
void Rope(float* x, int64_t num_tokens, int64_t row_stride, int64_t num_heads, int64_t head_dim,
          int64_t rope_dims, const int32_t* pos, float base, bool neox);
void Attention(const AttentionArgs& args, ThreadPool* pool);
#endif

}  // namespace HWY_NAMESPACE
}  // namespace si
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
