// kernels/src/token_logprobs.cu - one CTA per row: online (max, sum, tilt) over 16-byte vector loads,
// then one fp32 (logp, lse, entropy) per row; the backward streams the row once more and writes the
// gradient in the logits dtype. Formulas: kaizen/kernels/token_logprobs.hpp.
#include <kaizen/kernels/token_logprobs.hpp>

#include "cuda_check.cuh"
#include "device_math.cuh"
#include "row_kernels.cuh"

namespace kaizen::kernels {

namespace {

constexpr int kThreads = 256;

/// Rows as a (outer, inner) grid: row r starts at (r / inner_rows)·outer_stride + (r % inner_rows)·row_stride
/// elements, so a [B, T, V] slice such as logits[:, :-1, :] is read in place.
struct RowLayout {
  std::int64_t row_stride;
  std::int64_t inner_rows;
  std::int64_t outer_stride;
  __device__ __forceinline__ std::int64_t offset(std::int64_t row) const {
    return (row / inner_rows) * outer_stride + (row % inner_rows) * row_stride;
  }
};

template <class T, bool kEntropy>
__global__ void __launch_bounds__(kThreads) forward_kernel(const T* __restrict__ logits,
                                                           const std::int64_t* __restrict__ targets, int v,
                                                           RowLayout layout, float inv_t,
                                                           float* __restrict__ logprobs, float* __restrict__ lse,
                                                           float* __restrict__ entropy) {
  const std::int64_t row = blockIdx.x;
  const T* x = logits + layout.offset(row);
  const float scale = inv_t * detail::kLog2e;
  // Thread 0 fetches the target logit first, so its two dependent loads overlap the row pass.
  float u_y = 0.0f;
  bool target_ok = true;
  if (threadIdx.x == 0) {
    const std::int64_t y = targets[row];
    target_ok = y >= 0 && y < v;
    u_y = target_ok ? detail::to_float(x[y]) * scale : NAN;
  }
  const detail::Online st = detail::block_merge(detail::row_online<kEntropy>(x, v, scale));
  if (threadIdx.x == 0) {
    const float log2_s = log2f(st.s);
    const float lse2 = st.m + log2_s;  // base-2 log-sum-exp of u = x·inv_t·log2e
    logprobs[row] = (u_y - lse2) * detail::kLn2;  // NaN for an out-of-range target (ops checks them)
    lse[row] = lse2 * detail::kLn2;
    if constexpr (kEntropy) entropy[row] = (log2_s - st.t / st.s) * detail::kLn2;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) backward_kernel(const T* logits, const std::int64_t* __restrict__ targets,
                                                            int v, RowLayout layout, float inv_t,
                                                            const float* __restrict__ lse,
                                                            const float* __restrict__ entropy,
                                                            const float* __restrict__ grad_logprobs,
                                                            const float* __restrict__ grad_entropy, T* grad) {
  const std::int64_t row = blockIdx.x;
  detail::RowGrad g;
  g.inv_t = inv_t;
  g.lse = lse[row];
  g.entropy = entropy != nullptr ? entropy[row] : 0.0f;
  g.g_lp = grad_logprobs != nullptr ? grad_logprobs[row] : 0.0f;
  g.g_h = grad_entropy != nullptr ? grad_entropy[row] : 0.0f;
  const std::int64_t y = targets[row];
  g.target = y >= 0 && y < v ? static_cast<int>(y) : -1;
  detail::row_backward(logits + layout.offset(row), grad + row * static_cast<std::int64_t>(v), v, g);
}

void check_sizes(const char* fn, std::int64_t n, std::int64_t v, std::int64_t row_stride, std::int64_t inner_rows,
                 std::int64_t outer_stride) {
  KAIZEN_CHECK(n >= 0 && n <= 0x7fffffffLL, fn, ": expected 0 <= n < 2^31 rows, got ", n);
  KAIZEN_CHECK(v >= 1 && v <= 0x7fffffffLL, fn, ": expected a vocabulary of 1 to 2^31 - 1, got ", v);
  KAIZEN_CHECK(row_stride >= v, fn, ": expected a row stride >= v = ", v, ", got ", row_stride);
  KAIZEN_CHECK(inner_rows >= 1, fn, ": expected inner_rows >= 1, got ", inner_rows);
  KAIZEN_CHECK(n <= inner_rows || outer_stride >= inner_rows * row_stride, fn,
               ": expected an outer stride >= inner_rows * row_stride = ", inner_rows * row_stride, ", got ",
               outer_stride);
}

}  // namespace

void token_logprobs_forward(const void* logits, DType dtype, const std::int64_t* targets, std::int64_t n,
                            std::int64_t v, std::int64_t row_stride, std::int64_t inner_rows,
                            std::int64_t outer_stride, float inv_temperature, float* logprobs, float* lse,
                            float* entropy, void* stream) {
  constexpr const char* fn = "kernels::token_logprobs_forward";
  check_sizes(fn, n, v, row_stride, inner_rows, outer_stride);
  if (n == 0) return;
  const RowLayout layout{row_stride, inner_rows, outer_stride};
  detail::dispatch_dtype(dtype, fn, [&](auto tag) {
    using T = decltype(tag);
    const auto grid = static_cast<unsigned>(n);
    const auto s = static_cast<cudaStream_t>(stream);
    if (entropy != nullptr)
      forward_kernel<T, true><<<grid, kThreads, 0, s>>>(static_cast<const T*>(logits), targets, static_cast<int>(v),
                                                        layout, inv_temperature, logprobs, lse, entropy);
    else
      forward_kernel<T, false><<<grid, kThreads, 0, s>>>(static_cast<const T*>(logits), targets, static_cast<int>(v),
                                                         layout, inv_temperature, logprobs, lse, nullptr);
  });
  check_last_launch(fn);
}

void token_logprobs_backward(const void* logits, DType dtype, const std::int64_t* targets, std::int64_t n,
                             std::int64_t v, std::int64_t row_stride, std::int64_t inner_rows,
                             std::int64_t outer_stride, float inv_temperature, const float* lse,
                             const float* entropy, const float* grad_logprobs, const float* grad_entropy,
                             void* grad_logits, void* stream) {
  constexpr const char* fn = "kernels::token_logprobs_backward";
  check_sizes(fn, n, v, row_stride, inner_rows, outer_stride);
  KAIZEN_CHECK(grad_entropy == nullptr || entropy != nullptr, fn,
               ": expected the saved entropy when an entropy gradient is given, got entropy = nullptr");
  KAIZEN_CHECK(grad_logits != logits || n <= 1 || (row_stride == v && (n <= inner_rows || outer_stride == inner_rows * v)),
               fn, ": an in-place backward needs dense rows (row_stride == v = ", v, "), got row_stride ", row_stride);
  if (n == 0) return;
  const RowLayout layout{row_stride, inner_rows, outer_stride};
  detail::dispatch_dtype(dtype, fn, [&](auto tag) {
    using T = decltype(tag);
    backward_kernel<T><<<static_cast<unsigned>(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(logits), targets, static_cast<int>(v), layout, inv_temperature, lse, entropy,
        grad_logprobs, grad_entropy, static_cast<T*>(grad_logits));
  });
  check_last_launch(fn);
}

}  // namespace kaizen::kernels
