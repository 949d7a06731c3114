// kaizen/kernels/token_logprobs.hpp - token log-prob (+ entropy, + temperature) from logits, one pass.
//
// For each row i of logits x [N, V] (row stride `row_stride` elements) and target y_i, with z = x / T:
//   lse_i  = log Σ_j exp(z_ij)                 (online max-rescaled sum, fp32)
//   logp_i = z_{i,y_i} − lse_i
//   H_i    = lse_i − Σ_j softmax(z_i)_j z_ij    (only when `entropy` is non-null)
// Backward, for upstream gradients g_lp (and g_h), p = softmax(z):
//   ∂L/∂x_ij = (g_lp,i (δ_{j,y_i} − p_ij) − g_h,i p_ij (z_ij − (lse_i − H_i))) / T
// One CTA streams one row with 16-byte vector loads (8 bf16/fp16 or 4 fp32 per thread per load) and
// keeps per-thread (max, sum, tilt) online statistics merged by a warp/CTA reduction, so logits are
// read exactly once in the forward and once in the backward (which writes grad_logits once, in place
// when grad_logits == logits). All offsets are 64-bit (N·V > 2³¹ is supported).
// References: Milakov & Gimelshein 2018 "Online normalizer calculation for softmax" (arXiv 1805.02867).
#pragma once

#include <cstdint>

#include <kaizen/kernels/runtime.hpp>

namespace kaizen::kernels {

/// Forward. logits: device [n, v] rows of `dtype` with row stride `row_stride` (≥ v; the start of
/// each row must be 16-byte aligned for the vector path, otherwise a scalar path is taken);
/// targets: device int64 [n] in [0, v) (not checked here: ops.hpp checks); logprobs, lse: device
/// float [n]; entropy: device float [n] or nullptr. `stream` is a cudaStream_t (nullptr = default).
/// Throws kaizen::Error when n < 0, v < 1 or the launch fails.
void token_logprobs_forward(const void* logits, DType dtype, const std::int64_t* targets, std::int64_t n,
                            std::int64_t v, std::int64_t row_stride, float inv_temperature, float* logprobs,
                            float* lse, float* entropy, void* stream);

/// Backward. grad_logprobs / grad_entropy: device float [n] or nullptr (nullptr = zero); entropy must be
/// non-null when grad_entropy is. grad_logits: device [n, v] of `dtype`, dense rows (stride v), may be
/// the logits buffer itself (then row_stride must be v). Throws kaizen::Error on bad sizes or launch failure.
void token_logprobs_backward(const void* logits, DType dtype, const std::int64_t* targets, std::int64_t n,
                             std::int64_t v, std::int64_t row_stride, float inv_temperature, const float* lse,
                             const float* entropy, const float* grad_logprobs, const float* grad_entropy,
                             void* grad_logits, void* stream);

}  // namespace kaizen::kernels
