// kaizen/policy_gradient/clip.hpp - the per-token surrogate obj(r, A) for each clip option, and which
// tokens each bound caught.
//
//   NoClip          obj = r A
//   SymmetricClip   obj = min(r A, clamp(r, 1−ε, 1+ε) A)                         (PPO)
//   AsymmetricClip  obj = min(r A, clamp(r, 1−ε_low, 1+ε_high) A)                (DAPO clip-higher)
//   DualClip        as AsymmetricClip, then max(obj, c A) where A < 0            (Ye et al. 2020)
//   CispoClip       obj = sg(clamp(r, 1−ε_low, 1+ε_high)) · A · exp(log π_θ − sg(log π_θ))
//                   (value ŵA, gradient ŵ A ∇log π_θ: every token keeps its gradient; MiniMax-M1), or with
//                   CispoLossValue::log_prob obj = sg(ŵ) · A · log π_θ (same gradient; TRL / Liger's value)
// With a ratio cap δ (Objective::ratio_cap, finite), the unclipped term r A becomes min(r, δ) A in the
// NoClip / Symmetric / Asymmetric / Dual surrogates (TRL / Liger `delta`); the clipped term keeps r.
//   SapoGate        obj = (4/τ) σ(τ (r − 1)) A,  τ = τ_pos if A > 0 else τ_neg   (SAPO)
// Clip fractions (over valid tokens): low = the lower bound removed the gradient (A < 0, r < 1−ε_low),
// high = the upper bound did (A > 0, r > 1+ε_high), dual = the dual bound did (A < 0, obj = c A);
// for CISPO, low/high count weights clamped at either bound whatever the sign of A.
#pragma once

#include <cmath>
#include <limits>

#include <ATen/core/grad_mode.h>
#include <torch/types.h>

#include <kaizen/policy_gradient/options.hpp>

namespace kaizen::policy_gradient {

/// Boolean [B, T] tensors of the tokens each bound caught (policy_loss averages them over valid
/// tokens); undefined where the option has no such bound.
struct ClipEvents {
  torch::Tensor low;
  torch::Tensor high;
  torch::Tensor dual;
};

/// obj(r, A) [B, T] for `clip` (to be maximised). `ratio` carries the gradient; `advantages` is a
/// constant; `logprobs` (with gradient) is used by CispoClip only. Inputs prepared as for
/// importance_ratio.
template <class Clip>
[[nodiscard]] torch::Tensor surrogate(const Clip& clip, const torch::Tensor& ratio, const torch::Tensor& advantages,
                                      const torch::Tensor& logprobs,
                                      double ratio_cap = std::numeric_limits<double>::infinity()) {
  const auto capped = [&] { return std::isinf(ratio_cap) ? ratio : ratio.clamp_max(ratio_cap); };
  if constexpr (Clip::mode == ClipMode::none) {
    (void)clip, (void)logprobs;
    return capped() * advantages;
  } else if constexpr (Clip::mode == ClipMode::symmetric) {
    (void)logprobs;
    return torch::minimum(capped() * advantages, ratio.clamp(1 - clip.epsilon, 1 + clip.epsilon) * advantages);
  } else if constexpr (Clip::mode == ClipMode::asymmetric || Clip::mode == ClipMode::dual) {
    (void)logprobs;
    const auto obj =
        torch::minimum(capped() * advantages, ratio.clamp(1 - clip.epsilon_low, 1 + clip.epsilon_high) * advantages);
    if constexpr (Clip::mode == ClipMode::dual) {
      return torch::where(advantages < 0, torch::maximum(obj, clip.c * advantages), obj);
    } else {
      return obj;
    }
  } else if constexpr (Clip::mode == ClipMode::cispo) {
    const auto weight = ratio.detach().clamp(1 - clip.epsilon_low, 1 + clip.epsilon_high);
    if (clip.value == CispoLossValue::log_prob) return weight * advantages * logprobs;
    return weight * advantages * (logprobs - logprobs.detach()).exp();
  } else {
    (void)logprobs, (void)capped;
    const auto tau = torch::where(advantages > 0, torch::full_like(advantages, clip.tau_positive),
                                  torch::full_like(advantages, clip.tau_negative));
    return 4.0 / tau * torch::sigmoid(tau * (ratio - 1)) * advantages;
  }
}

/// Which tokens each bound caught, for the metrics (see the header comment). `ratio` values only.
/// For the geometric ratio level pass `log_ratio` (the unclipped Δ_t) and the bounds are read in log
/// space; otherwise it is unused.
template <class Ratio, class Clip>
[[nodiscard]] ClipEvents clip_events(const Clip& clip, const torch::Tensor& ratio, const torch::Tensor& advantages,
                                     const torch::Tensor& log_ratio) {
  at::NoGradGuard no_grad;
  const torch::Tensor none;
  if constexpr (Clip::mode == ClipMode::none || Clip::mode == ClipMode::sapo) {
    (void)clip, (void)advantages, (void)log_ratio;
    return {none, none, none};
  } else {
    double low = 0, high = 0;
    if constexpr (Clip::mode == ClipMode::symmetric) {
      low = clip.epsilon, high = clip.epsilon;
    } else {
      low = clip.epsilon_low, high = clip.epsilon_high;
    }
    if constexpr (Ratio::level == RatioLevel::geometric) {
      return {(advantages < 0) & (log_ratio < -low), (advantages >= 0) & (log_ratio > high), none};
    } else if constexpr (Clip::mode == ClipMode::cispo) {
      (void)log_ratio;
      return {ratio < 1 - low, ratio > 1 + high, none};
    } else {
      (void)log_ratio;
      const auto caught_low = (advantages < 0) & (ratio < 1 - low);
      const auto caught_high = (advantages > 0) & (ratio > 1 + high);
      if constexpr (Clip::mode == ClipMode::dual) {
        return {caught_low, caught_high, (advantages < 0) & (ratio.clamp_min(1 - low) > clip.c)};
      } else {
        return {caught_low, caught_high, none};
      }
    }
  }
}

}  // namespace kaizen::policy_gradient
