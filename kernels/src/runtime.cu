// kernels/src/runtime.cu - device queries and launch-error checks.
#include <kaizen/kernels/runtime.hpp>

#include "cuda_check.cuh"

namespace kaizen::kernels {

int device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

std::string device_name(int index) {
  const int count = device_count();
  KAIZEN_CHECK(index >= 0 && index < count, "kernels::device_name: device ", index, " requested but ", count,
               " CUDA device(s) are visible");
  cudaDeviceProp prop{};
  KAIZEN_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major * 10 + prop.minor) + ")";
}

void check_last_launch(const char* what) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    fail(what, ": CUDA kernel launch failed: ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ")");
}

}  // namespace kaizen::kernels
