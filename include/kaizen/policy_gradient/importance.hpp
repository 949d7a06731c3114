// kaizen/policy_gradient/importance.hpp - truncated importance sampling for sampler/trainer mismatch.
//
// The sampler (an inference engine) and the trainer compute slightly different log-probs for the same
// tokens (kernels, precision, batch shape; landscape.md §3.4-5). With u_t = log π_old − log π_sampler
// on valid tokens:
//   token level:    w_t = exp(u_t)
//   sequence level: w_t = exp(Σ_{t'∈y_i} u_t') for every token of row i
//   truncate (TIS): w ← min(w, C)        mask (MIS): w ← w · [w ≤ C]
// The weight is a constant that multiplies the policy-gradient term of each token (policy_loss).
// Computed in log space (min(u, log C) before exp), so huge mismatches do not overflow.
// Reference: Yao et al. 2025, "Your efficient RL framework secretly brings you off-policy RL
// training" (TIS, C = 2), verl rollout-correction (token/sequence, truncate/mask).
#pragma once

#include <cmath>
#include <string_view>

#include <ATen/core/grad_mode.h>
#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/detail/checks.hpp>
#include <kaizen/policy_gradient/options.hpp>

namespace kaizen::policy_gradient {

/// Importance weights [B, T] (no gradient; 0 outside the mask, not multiplied by a float mask's weights). `old_logprobs` (trainer) and
/// `sampler_logprobs` are [B, T] of one dtype/device. With action none, returns 1 on valid tokens.
/// Throws on mismatched inputs, cap <= 0, or non-finite log-probs on valid tokens.
[[nodiscard]] inline torch::Tensor importance_weights(const torch::Tensor& old_logprobs,
                                                      const torch::Tensor& sampler_logprobs, const torch::Tensor& mask,
                                                      const TruncatedImportanceSampling& options) {
  constexpr std::string_view fn = "importance_weights";
  detail::check_real(fn, "old_logprobs", old_logprobs);
  KAIZEN_CHECK(old_logprobs.dim() == 2, fn, ": expected [B, T] `old_logprobs`, got shape ", old_logprobs.sizes());
  const auto m = detail::mask_as(fn, mask, old_logprobs);
  if (options.action == ImportanceAction::none) return (m != 0).to(m.scalar_type());
  KAIZEN_CHECK(options.cap > 0, fn, ": expected cap > 0, got ", options.cap);
  detail::check_like(fn, "sampler_logprobs", sampler_logprobs, old_logprobs, "old_logprobs");
  detail::check_finite(fn, "old_logprobs", old_logprobs, m);
  detail::check_finite(fn, "sampler_logprobs", sampler_logprobs, m);
  at::NoGradGuard no_grad;
  const auto valid = m != 0;
  auto u = torch::where(valid, old_logprobs - sampler_logprobs, torch::zeros_like(old_logprobs));
  if (options.level == ImportanceLevel::sequence) u = u.sum(1, /*keepdim=*/true).expand_as(m);
  const double log_cap = std::log(options.cap);
  const auto w = options.action == ImportanceAction::truncate
                     ? u.clamp_max(log_cap).exp()
                     : torch::where(u <= log_cap, u.exp(), torch::zeros_like(u));
  return torch::where(valid, w, torch::zeros_like(w));
}

}  // namespace kaizen::policy_gradient
