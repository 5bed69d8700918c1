// Target selection: one Kernels table per compiled Highway target, picked once.
//
// Design (Highway 1.0.3): every SIMD source (simd_matmul.cc, simd_ops.cc and this file) is compiled
// once per target through hwy/foreach_target.h, so each target T has its functions in namespace
// si::N_T. Instead of HWY_EXPORT/HWY_DYNAMIC_DISPATCH (which dispatches per call and only to the
// single best target), this file defines per target MakeTable() filling a plain `Kernels` struct
// with that target's function pointers, and the HWY_ONCE part lists the tables of the targets that
// were compiled (HWY_TARGETS) AND that the CPU supports (hwy::SupportedTargets()), best first.
// BestKernels() is the first one, chosen on first use; the engine then calls through the table, so
// there is no dispatch inside any loop.
//
// The AVX3 target yields two tables: "AVX3_VNNI" (Q8_0/Q4_0 dot products with EVEX vpdpbusd, only
// when CPUID reports AVX512_VNNI) and "AVX3". See simd_kernels-inl.h for why AVX3_DL is not
// compiled.
//
// SI_KERNEL_TARGET=<name> (e.g. AVX2, reference) makes BestKernels() return that table instead, for
// benchmarking and for bisecting a numerical difference.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "si/kernels/ops.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/dispatch.cc"
// foreach_target.h must come first, then highway.h, then the per-target headers.
// clang-format off
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/simd_kernels-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace si {
namespace HWY_NAMESPACE {
#if HWY_TARGET != HWY_SCALAR
Kernels MakeTable(const char* name, bool vnni) {
  Kernels k = ReferenceKernels();
  k.name = name;
  k.matmul = vnni ? &MatMulVnni : &MatMul;
  k.matmul_multi = vnni ? &MatMulMultiVnni : &MatMulMulti;
  k.get_rows = &GetRows;
  k.rms_norm = &RmsNorm;
  k.layer_norm = &LayerNorm;
  k.gelu_tanh = &GeluTanh;
  k.gelu_erf = &GeluErf;
  k.silu_mul = &SiluMul;
  k.add = &Add;
  k.softmax = &Softmax;
  k.rope = &Rope;
  k.attention = &Attention;
#if HWY_TARGET <= HWY_AVX2
  k.panel_bytes = &PanelBytes;
  k.to_panels = &ToPanels;
#endif
  return k;
}
#endif
}  // namespace HWY_NAMESPACE
}  // namespace si
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace si {
namespace {

const std::vector<Kernels>& Tables() {
  static const std::vector<Kernels> tables = [] {
    std::vector<Kernels> t;
    const int64_t supported = hwy::SupportedTargets();
    (void)supported;
#if HWY_TARGETS & HWY_AVX3
    if (supported & HWY_AVX3) {
      if (__builtin_cpu_supports("avx512vnni")) t.push_back(N_AVX3::MakeTable("AVX3_VNNI", true));
      t.push_back(N_AVX3::MakeTable("AVX3", false));
    }
#endif
#if HWY_TARGETS & HWY_AVX2
    if (supported & HWY_AVX2) t.push_back(N_AVX2::MakeTable("AVX2", false));
#endif
#if HWY_TARGETS & HWY_SSE4
    if (supported & HWY_SSE4) t.push_back(N_SSE4::MakeTable("SSE4", false));
#endif
    return t;
  }();
  return tables;
}

}  // namespace

const Kernels& BestKernels() {
  static const Kernels* best = [] {
    const std::vector<Kernels>& t = Tables();
    if (const char* want = std::getenv("SI_KERNEL_TARGET")) {
      for (const Kernels& k : t) {
        if (std::strcmp(k.name, want) == 0) return &k;
      }
      if (std::strcmp(want, "reference") == 0) return &ReferenceKernels();
    }
    return t.empty() ? &ReferenceKernels() : &t.front();
  }();
  return *best;
}

std::vector<const Kernels*> AllKernelTargets() {
  std::vector<const Kernels*> out;
  for (const Kernels& k : Tables()) out.push_back(&k);
  return out;
}

}  // namespace si
#endif  // HWY_ONCE
