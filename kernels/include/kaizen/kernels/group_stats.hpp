// kaizen/kernels/group_stats.hpp - segmented mean / standard deviation and group-normalised advantages.
//
// Groups are contiguous segments [offsets[g], offsets[g+1]) of `values` (GRPO: the G completions of one
// prompt). With n_g members, μ_g = Σ x / n_g, σ_g = sqrt(Σ (x − μ_g)² / (n_g − 1)) (unbiased) or / n_g;
// advantage_i = (x_i − μ_g) / (σ_g + ε) when `scale`, else x_i − μ_g (Dr. GRPO). Two passes over each
// group in float64 (one warp per group), so the result does not depend on the group's order of summation
// beyond float64 rounding. A group whose unbiased σ is undefined (n_g = 1) gets σ = NaN; callers check.
// Reference: Shao et al. 2024 (GRPO, arXiv 2402.03300) §4.1.2; Liu et al. 2025 (Dr. GRPO, arXiv 2503.20783).
#pragma once

#include <cstdint>

namespace kaizen::kernels {

/// values: device float [offsets[groups]]; offsets: device int64 [groups + 1], non-decreasing, offsets[0] = 0
/// (not checked on the device: ops.hpp checks); mean, std: device float [groups]; advantages: device float
/// like values, or nullptr. Throws kaizen::Error on groups < 0, epsilon < 0 or a failed launch.
void group_stats(const float* values, const std::int64_t* offsets, std::int64_t groups, bool unbiased, float epsilon,
                 bool scale, float* mean, float* std, float* advantages, void* stream);

}  // namespace kaizen::kernels
