// kaizen/policy_gradient/ratio.hpp - importance ratios π_θ/π_old at token, sequence and geometric level.
//
// Δ_t = log π_θ(y_t) − log π_old(y_t), clamped to [−20, 20] (as verl) so exp never overflows;
// n_i = Σ_t m_it. All three are per-token tensors [B, T] so one surrogate and one aggregation serve all:
//   token      r_t = exp(Δ_t)                                              (PPO, GRPO, DAPO)
//   sequence   s_i = exp(Σ_t m_it Δ_t / n_i),  r_t = sg(s_i) · exp(log π_θ − sg(log π_θ))   (GSPO-token)
//   geometric  Δ̃_t = pessimistic log-space clip of Δ_t (see GeometricRatio),
//              g_i = exp(Σ_t m_it Δ̃_t / n_i),  r_t = sg(g_i) · exp(Δ̃_t − sg(Δ̃_t))        (GMPO)
// The value of r_t is the token, sequence or geometric-mean ratio; its gradient is that ratio times
// ∇log π_θ(y_t) (times 1[not clipped] for geometric).
// References: GSPO (Zheng et al. 2025, arXiv 2507.18071), GMPO (Zhao et al. 2025, arXiv 2507.20673).
#pragma once

#include <torch/types.h>

#include <kaizen/policy_gradient/options.hpp>

namespace kaizen::policy_gradient {

inline constexpr double kMaxLogRatio = 20.0;

/// The per-token ratio [B, T] selected by `Ratio`. Inputs are [B, T] of one dtype with masked-out
/// positions already set to 0 (policy_loss validates and prepares them): `logprobs` carries the
/// gradient, `old_logprobs` and `advantages` are constants, `mask` is float. `clip` supplies the
/// log-space bounds of the geometric level and is unused otherwise.
template <class Ratio, class Clip>
[[nodiscard]] torch::Tensor importance_ratio(const Ratio& ratio_option, const Clip& clip, const torch::Tensor& logprobs,
                                             const torch::Tensor& old_logprobs, const torch::Tensor& advantages,
                                             const torch::Tensor& mask) {
  (void)ratio_option;
  const auto delta = (logprobs - old_logprobs).clamp(-kMaxLogRatio, kMaxLogRatio);
  if constexpr (Ratio::level == RatioLevel::token) {
    (void)clip, (void)advantages, (void)mask;
    return delta.exp();
  } else if constexpr (Ratio::level == RatioLevel::sequence) {
    (void)clip, (void)advantages;
    const auto mean = ((delta * mask).sum(1, /*keepdim=*/true) / mask.sum(1, /*keepdim=*/true));
    return mean.detach().exp() * (logprobs - logprobs.detach()).exp();
  } else {
    torch::Tensor clipped = delta;
    if constexpr (Clip::mode == ClipMode::symmetric || Clip::mode == ClipMode::asymmetric) {
      double low = 0, high = 0;
      if constexpr (Clip::mode == ClipMode::symmetric) {
        low = clip.epsilon, high = clip.epsilon;
      } else {
        low = clip.epsilon_low, high = clip.epsilon_high;
      }
      const auto bounded = delta.clamp(-low, high);
      clipped = torch::where(advantages >= 0, torch::minimum(delta, bounded), torch::maximum(delta, bounded));
    }
    const auto mean = ((clipped * mask).sum(1, /*keepdim=*/true) / mask.sum(1, /*keepdim=*/true));
    return mean.detach().exp() * (clipped - clipped.detach()).exp();
  }
}

}  // namespace kaizen::policy_gradient
