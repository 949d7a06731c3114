// kaizen/kernels/sampling.hpp - temperature + top-k + top-p + min-p sampling from logits, no sort.
//
// Per row (one 1024-thread CTA), with u_j = x_j / T (NaN read as −inf), m = max u and e_j = exp(u_j − m)
// (0 for a −inf logit), the rules of kaizen/torch/ops/sampling_select.hpp, shared with the CPU path:
//   top-k:  keep e_j ≥ the k-th largest e (ties at that value kept); k = 0 or k ≥ V: off
//   top-p:  among those, keep j iff the fixed-point mass of strictly larger survivors is < top_p · theirs
//   min-p:  keep e_j ≥ min_p (in this order, as lm::LogitTransform)
//   draw:   the first kept j (vocabulary order) whose running fixed-point mass exceeds ⌊mass · w / 2^64⌋
// Thresholds by a radix select on the bit pattern of e (11/11/10-bit digits, shared-memory histograms,
// 16-byte loads): at most 1 + 3 + 3 + 2 passes over the row, no sort. Masses are uint64 fixed point
// (e · 2^40), so sums are exact in any order and a draw never leaves the kept set or hits a masked token.
// A row whose logits are all −inf or NaN gives id 0 and NaN log-probs.
#pragma once

#include <cstdint>

#include <kaizen/kernels/runtime.hpp>

namespace kaizen::kernels {

/// logits: device [rows, v] dense, v ≤ 2^23; uniforms: device uint64 [rows], uniform bits (w / 2^64 in
/// [0, 1), see sampling_select.hpp uniform_bits); outputs device [rows]:
/// ids (int64), logprobs = log softmax(u)[id], filtered_logprobs = log of id's renormalised kept mass.
/// Throws kaizen::Error on rows < 0, v < 1 or v > 2^23, inv_temperature ≤ 0, top_k < 0, top_p ∉ (0, 1],
/// min_p ∉ [0, 1), or a failed launch.
void sample_tokens(const void* logits, DType dtype, std::int64_t rows, std::int64_t v, float inv_temperature,
                   std::int64_t top_k, float top_p, float min_p, const std::uint64_t* uniforms, std::int64_t* ids,
                   float* logprobs, float* filtered_logprobs, void* stream);

}  // namespace kaizen::kernels
