// kernels/src/cuda_check.cuh - turns cudaError_t into kaizen::Error at the host boundary.
// Device code never throws; host launch functions call KAIZEN_CUDA_CHECK on every runtime call.
#pragma once

#include <cuda_runtime.h>

#include <kaizen/core/error.hpp>

#define KAIZEN_CUDA_CHECK(call)                                                                 \
  do {                                                                                          \
    const cudaError_t kaizen_cuda_status_ = (call);                                             \
    if (kaizen_cuda_status_ != cudaSuccess) [[unlikely]]                                        \
      ::kaizen::fail("CUDA error ", cudaGetErrorName(kaizen_cuda_status_), " (",                \
                     cudaGetErrorString(kaizen_cuda_status_), ") in `", #call, "` at ", __FILE__, \
                     ':', __LINE__);                                                            \
  } while (false)
