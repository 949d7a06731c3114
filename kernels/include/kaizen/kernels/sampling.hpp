// kaizen/kernels/sampling.hpp - temperature + top-k + top-p + min-p sampling from logits, no sort.
//
// Per row (one CTA), with u_j = x_j / T and e_j = exp(u_j − max u) ∈ (0, 1]:
//   min-p:  keep e_j ≥ min_p
//   top-k:  keep u_j ≥ the k-th largest u (ties at that value kept); k = 0 or k ≥ V: off
//   top-p:  among those, keep j iff Σ_{kept i: e_i > e_j} e_i < top_p · Σ_{kept} e_i; top_p = 1: off
//   draw:   the first j (vocabulary order) whose running kept mass exceeds uniform · Σ_kept e
// Thresholds are found by bisection on the order-preserving bit pattern of u (32 CTA passes each over
// the row, which stays in L2 for the decode batch sizes this serves), so the result is exact for the
// definition above and matches kaizen::ops::sample_tokens on the CPU.
#pragma once

#include <cstdint>

#include <kaizen/kernels/runtime.hpp>

namespace kaizen::kernels {

/// logits: device [rows, v] dense; uniforms: device float [rows] in [0, 1); outputs device [rows]:
/// ids (int64), logprobs = log softmax(u)[id], filtered_logprobs = log of id's renormalised kept mass.
/// Throws kaizen::Error on rows < 0, v < 1, inv_temperature ≤ 0, top_k < 0, top_p ∉ (0, 1],
/// min_p ∉ [0, 1), or a failed launch.
void sample_tokens(const void* logits, DType dtype, std::int64_t rows, std::int64_t v, float inv_temperature,
                   std::int64_t top_k, float top_p, float min_p, const float* uniforms, std::int64_t* ids,
                   float* logprobs, float* filtered_logprobs, void* stream);

}  // namespace kaizen::kernels
