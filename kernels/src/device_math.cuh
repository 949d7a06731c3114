// kernels/src/device_math.cuh - element conversions, 16-byte vectors and the online (max, sum, tilt)
// statistics shared by the row kernels. Device code only; never throws.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include <kaizen/core/error.hpp>
#include <kaizen/kernels/runtime.hpp>

namespace kaizen::kernels::detail {

inline constexpr float kLog2e = 1.4426950408889634f;
inline constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }

/// 16 bytes of T: 4 fp32 or 8 bf16/fp16 values, loaded and stored as one vector.
template <class T>
struct alignas(16) Vec {
  static constexpr int size = 16 / static_cast<int>(sizeof(T));
  T v[size];
};

/// Online softmax statistics in base 2: m = running max of u = x·inv_t·log2e, s = Σ 2^(u − m),
/// t = Σ 2^(u − m)·(u − m). Merge rescales by 2^(m_old − m_new) (Milakov & Gimelshein 2018).
struct Online {
  float m = -INFINITY;
  float s = 0.0f;
  float t = 0.0f;

  __device__ __forceinline__ void rescale_to(float m_new) {
    if (m_new == m) return;
    const float c = (m == -INFINITY) ? 0.0f : exp2f(m - m_new);
    const float shift = (m == -INFINITY) ? 0.0f : (m - m_new);
    t = c * (t + s * shift);
    s = c * s;
    m = m_new;
  }
  __device__ __forceinline__ void merge(const Online& o) {
    if (o.m == -INFINITY && o.s == o.s) return;  // empty or all masked; a NaN s (all-NaN share) must flow
    const float m_new = fmaxf(m, o.m);
    rescale_to(m_new);
    const float c = exp2f(o.m - m_new);
    const float shift = o.m - m_new;
    s += c * o.s;
    t += c * (o.t + o.s * shift);
  }
};

/// Block-wide merge of Online states; the result is valid in every thread. blockDim.x ≤ 1024.
__device__ __forceinline__ Online block_merge(Online st) {
  __shared__ Online warp_states[32];
  for (int offset = 16; offset > 0; offset >>= 1) {
    Online other;
    other.m = __shfl_xor_sync(0xffffffffu, st.m, offset);
    other.s = __shfl_xor_sync(0xffffffffu, st.s, offset);
    other.t = __shfl_xor_sync(0xffffffffu, st.t, offset);
    st.merge(other);
  }
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int warps = (blockDim.x + 31) / 32;
  if (lane == 0) warp_states[warp] = st;
  __syncthreads();
  Online total;
  for (int w = 0; w < warps; ++w) total.merge(warp_states[w]);
  __syncthreads();  // warp_states may be reused by the caller's next reduction
  return total;
}

/// Block-wide sum of a float; valid in every thread.
__device__ __forceinline__ float block_sum(float x) {
  __shared__ float partial[32];
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int warps = (blockDim.x + 31) / 32;
  if (lane == 0) partial[warp] = x;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < warps; ++w) total += partial[w];
  __syncthreads();
  return total;
}

/// Elements before the first 16-byte boundary of `row` (0 when it is aligned), capped at v.
template <class T>
__device__ __forceinline__ std::int64_t head_elements(const T* row, std::int64_t v) {
  const auto misalign = reinterpret_cast<std::uintptr_t>(row) % 16;
  const std::int64_t head = misalign == 0 ? 0 : static_cast<std::int64_t>((16 - misalign) / sizeof(T));
  return head < v ? head : v;
}

/// Calls f(dtype-tag) with T = float / __nv_bfloat16 / __half.
template <class F>
void dispatch_dtype(DType dtype, const char* fn, F&& f) {
  switch (dtype) {
    case DType::f32: f(float{}); return;
    case DType::bf16: f(__nv_bfloat16{}); return;
    case DType::f16: f(__half{}); return;
  }
  fail(fn, ": unknown dtype tag ", static_cast<int>(dtype));
}

}  // namespace kaizen::kernels::detail
