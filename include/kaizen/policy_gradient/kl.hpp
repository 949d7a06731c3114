// kaizen/policy_gradient/kl.hpp - KL-to-reference estimators and their two placements.
//
// With d_t = log π_ref(y_t) − log π_θ(y_t) on tokens sampled from the policy (Schulman 2020,
// "Approximating KL divergence", http://joschu.net/blog/kl-approx.html):
//   k1 = −d_t                      unbiased for KL(π_θ‖π_ref), can be negative, high variance
//   k2 = d_t² / 2                  biased, low variance, ≥ 0
//   k3 = exp(d_t) − d_t − 1        unbiased, ≥ 0; plain by default (papers, TRL, Liger); `clamp` = kVerlKlClamp
//                                  gives verl's [−10, 10] clamp, which zeroes the gradient where k3 > 10
//   k3_importance = exp(log π_θ − log π_old) · k3   unbiased when tokens came from π_old ≠ π_θ
//                                  (DeepSeek-V3.2; requested in TRL #4637)
// Placement (DESIGN.md §4):
//   in the loss:   ℓ_t += β · KL_t with gradients through π_θ (Objective's Kl option, policy_loss)
//   in the reward: per-token reward r_t = −β · KL_t (no gradient; from the rollout's log-probs), plus
//                  the sequence score on its last valid token (kl_penalized_rewards; PPO/REINFORCE++)
#pragma once

#include <cmath>
#include <limits>
#include <string_view>

#include <ATen/core/grad_mode.h>
#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/detail/checks.hpp>
#include <kaizen/policy_gradient/options.hpp>

namespace kaizen::policy_gradient {

namespace detail {
/// The estimator on already-validated tensors (no checks); differentiable in `logprobs`.
[[nodiscard]] inline torch::Tensor kl_terms(KlEstimator estimator, const torch::Tensor& logprobs,
                                            const torch::Tensor& ref_logprobs, const torch::Tensor& old_logprobs,
                                            double clamp) {
  const auto d = ref_logprobs - logprobs;
  const auto k3 = [clamp](const torch::Tensor& x) {
    const auto plain = x.exp() - x - 1;
    return std::isinf(clamp) ? plain : plain.clamp(-clamp, clamp);
  };
  switch (estimator) {
    case KlEstimator::none: return torch::zeros_like(logprobs);
    case KlEstimator::k1: return -d;
    case KlEstimator::k2: return 0.5 * d.square();
    case KlEstimator::k3: return k3(d);
    case KlEstimator::k3_importance: return (logprobs - old_logprobs).clamp(-20.0, 20.0).exp() * k3(d);
  }
  return {};
}
}  // namespace detail

/// Per-token KL estimate [B, T] (zero outside `mask`). `logprobs`, `ref_logprobs` (and `old_logprobs`
/// for k3_importance) are [B, T] float of one dtype/device; differentiable in `logprobs`.
/// Throws on shape/dtype/device mismatch, a missing old_logprobs for k3_importance, or non-finite
/// values on valid tokens.
[[nodiscard]] inline torch::Tensor kl_estimate(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs,
                                               const torch::Tensor& mask, KlEstimator estimator,
                                               const torch::Tensor& old_logprobs = {},
                                               double clamp = std::numeric_limits<double>::infinity()) {
  KAIZEN_CHECK(clamp > 0, "kl_estimate: expected a clamp > 0 (+inf: none), got ", clamp);
  constexpr std::string_view fn = "kl_estimate";
  detail::check_real(fn, "logprobs", logprobs);
  KAIZEN_CHECK(logprobs.dim() == 2, fn, ": expected [B, T] `logprobs`, got shape ", logprobs.sizes());
  detail::check_like(fn, "ref_logprobs", ref_logprobs, logprobs, "logprobs");
  const auto m = detail::mask_as(fn, mask, logprobs);
  detail::check_finite(fn, "logprobs", logprobs, m);
  detail::check_finite(fn, "ref_logprobs", ref_logprobs, m);
  torch::Tensor old = torch::zeros_like(logprobs);
  if (estimator == KlEstimator::k3_importance) {
    KAIZEN_CHECK(old_logprobs.defined(), fn, ": expected `old_logprobs` for the k3_importance estimator, got none");
    detail::check_like(fn, "old_logprobs", old_logprobs, logprobs, "logprobs");
    detail::check_finite(fn, "old_logprobs", old_logprobs, m);
    old = old_logprobs.detach();
  }
  const auto valid = m != 0;
  const auto zero = torch::zeros_like(logprobs);
  return detail::kl_terms(estimator, torch::where(valid, logprobs, zero), torch::where(valid, ref_logprobs.detach(), zero),
                          torch::where(valid, old, zero), clamp) * m;
}

/// KL in the reward: r_t = −β · KL_t(old_logprobs, ref_logprobs) on valid tokens, plus `scores[b]` on
/// the last valid token of row b. Returns [B, T] (no gradient). `scores` [B]; log-probs [B, T].
/// Throws on mismatched shapes, β < 0, rows with no valid token, or non-finite values.
[[nodiscard]] inline torch::Tensor kl_penalized_rewards(const torch::Tensor& scores, const torch::Tensor& old_logprobs,
                                                        const torch::Tensor& ref_logprobs, const torch::Tensor& mask,
                                                        KlEstimator estimator, double beta) {
  constexpr std::string_view fn = "kl_penalized_rewards";
  KAIZEN_CHECK(beta >= 0, fn, ": expected beta >= 0, got ", beta);
  KAIZEN_CHECK(estimator != KlEstimator::k3_importance, fn,
               ": expected k1, k2 or k3 (the rollout policy is the sampling policy, so no importance ratio), "
               "got k3_importance");
  detail::check_real(fn, "scores", scores);
  KAIZEN_CHECK(old_logprobs.defined() && old_logprobs.dim() == 2, fn, ": expected [B, T] `old_logprobs`, got ",
               old_logprobs.defined() ? old_logprobs.sizes() : torch::IntArrayRef{});
  KAIZEN_CHECK(scores.dim() == 1 && scores.size(0) == old_logprobs.size(0), fn, ": expected `scores` of shape [",
               old_logprobs.size(0), "], got ", scores.sizes());
  KAIZEN_CHECK(scores.device() == old_logprobs.device(), fn, ": expected `scores` on ", old_logprobs.device(),
               ", got ", scores.device());
  detail::check_finite(fn, "scores", scores);
  const auto m = detail::mask_as(fn, mask, old_logprobs);
  detail::check_rows_nonempty(fn, m);
  at::NoGradGuard no_grad;
  auto rewards = -beta * kl_estimate(old_logprobs, ref_logprobs, m, estimator);
  // Last valid column per row: the largest column index with a non-zero mask.
  const auto columns = torch::arange(m.size(1), torch::TensorOptions().dtype(torch::kInt64).device(m.device()));
  const auto last = torch::where(m != 0, columns.expand_as(m), torch::full_like(columns, -1).expand_as(m)).amax(1);
  rewards.scatter_add_(1, last.unsqueeze(1), scores.to(rewards.scalar_type()).unsqueeze(1));
  return rewards;
}

}  // namespace kaizen::policy_gradient
