// kaizen/kernels/runtime.hpp - device queries and the error boundary of kaizen::kernels.
// Host-callable; no CUDA headers here, so code that includes it builds without the CUDA toolkit.
#pragma once

#include <cstdint>
#include <string>

namespace kaizen::kernels {

/// Element types the kernels accept.
enum class DType : std::uint8_t { f32, f16, bf16 };

/// Number of CUDA devices visible to this process (0 when there is no GPU or no driver; never throws).
[[nodiscard]] int device_count() noexcept;

/// Name and compute capability of device `index`, e.g. "NVIDIA H200 (sm_90)".
/// Throws kaizen::Error when the index is out of range or the runtime reports an error.
[[nodiscard]] std::string device_name(int index);

/// Throws kaizen::Error naming `what` if the last kernel launch on this thread failed.
void check_last_launch(const char* what);

}  // namespace kaizen::kernels
