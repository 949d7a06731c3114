// kaizen/config.hpp - the only reader of kaizen's build-time feature macros.
//
// KAIZEN_WITH_CUDA is defined to 1 by CMake for every consumer of kaizen::kaizen when the compiled
// kernel library kaizen::kernels was built (a CUDA compiler was found); it is 0 otherwise.
#pragma once

#ifndef KAIZEN_WITH_CUDA
#define KAIZEN_WITH_CUDA 0
#endif

namespace kaizen {
/// True when kaizen::kernels is linked in, so CUDA tensors take the kernel path.
inline constexpr bool kWithCudaKernels = KAIZEN_WITH_CUDA != 0;
}  // namespace kaizen
