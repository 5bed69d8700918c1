// Target selection. Placeholder until the Highway kernels land: the reference is the only target.
#include "si/kernels/ops.h"

namespace si {

const Kernels& BestKernels() { return ReferenceKernels(); }
std::vector<const Kernels*> AllKernelTargets() { return {&ReferenceKernels()}; }

}  // namespace si
