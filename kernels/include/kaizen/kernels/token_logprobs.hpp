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

/// Forward. logits: device rows of `dtype`, row r starting at (r / inner_rows)·outer_stride +
/// (r % inner_rows)·row_stride elements (row_stride ≥ v; a [B, T, V] tensor sliced on T, e.g.
/// logits[:, :-1, :], is read in place with inner_rows = T − 1, outer_stride = its stride(0); plain
/// [n, v] rows: inner_rows = n); a row not 16-byte aligned takes a scalar head;
/// targets: device int64 [n] in [0, v) (not checked here: ops.hpp checks; an out-of-range id gives a
/// NaN log-prob and no out-of-bounds read); logprobs, lse: device
/// float [n]; entropy: device float [n] or nullptr. `stream` is a cudaStream_t (nullptr = default).
/// NaN logits propagate: a row holding one gives NaN log-prob, lse and entropy (as on the CPU); a row of
/// −inf only gives NaN log-prob and entropy. Without entropy the kernel skips the tilt sum (a separate
/// instantiation). Throws kaizen::Error when n ∉ [0, 2^31), v ∉ [1, 2^31), row_stride < v, inner_rows < 1,
/// an outer stride that overlaps rows, or a failed launch.
void token_logprobs_forward(const void* logits, DType dtype, const std::int64_t* targets, std::int64_t n,
                            std::int64_t v, std::int64_t row_stride, std::int64_t inner_rows,
                            std::int64_t outer_stride, float inv_temperature, float* logprobs, float* lse,
                            float* entropy, void* stream);

/// Backward. grad_logprobs / grad_entropy: device float [n] or nullptr (nullptr = zero); entropy must be
/// non-null when grad_entropy is. grad_logits: device [n, v] of `dtype`, dense rows (stride v), may be
/// the logits buffer itself (then the rows must be dense: row_stride == v, or n ≤ 1). Logits are read
/// with the forward's layout. Throws kaizen::Error on bad sizes or launch failure.
void token_logprobs_backward(const void* logits, DType dtype, const std::int64_t* targets, std::int64_t n,
                             std::int64_t v, std::int64_t row_stride, std::int64_t inner_rows,
                             std::int64_t outer_stride, float inv_temperature, const float* lse,
                             const float* entropy, const float* grad_logprobs, const float* grad_entropy,
                             void* grad_logits, void* stream);

}  // namespace kaizen::kernels
