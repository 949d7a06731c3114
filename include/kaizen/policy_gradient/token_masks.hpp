// kaizen/policy_gradient/token_masks.hpp - which tokens the policy term learns from: the off-policy sequence
// mask (DeepSeek-V3.2) and the high-entropy minority-token mask (80/20 rule).
//
// Off-policy sequence mask. With the sampler's log-probs log π_s (the rollout engine's, or π_old) and
// n_i = Σ_t m_it, the mean per-token KL estimate of row i is
//   D_i = Σ_t m_it (log π_s(y_t) − log π_θ(y_t)) / n_i
// and the row is kept unless it has a negative advantage and drifted too far:
//   M_i = 1[A_i ≥ 0  or  D_i ≤ δ]
// Negative samples far off policy are the ones whose gradient destabilises training; positive ones are
// always kept. Reference: DeepSeek-AI 2025, "DeepSeek-V3.2" (arXiv 2512.02556), Eq. 9.
// Peer: TRL 1.16 GRPOConfig `off_policy_mask_threshold` = δ (e.g. 0.5), fed with the sampler's log-probs
// (or the old ones without vLLM); a non-finite sampler log-prob there counts as 0 KL, here it is an error.
//
// High-entropy mask. With the per-token entropies H on valid tokens and a kept fraction ρ ∈ (0, 1]:
//   τ = quantile_{1−ρ}(H over every valid token of the batch)   (linear interpolation, as torch.quantile)
//   M_t = 1[H_t ≥ τ] on valid tokens, 0 on padding
// Only the "forking" tokens (about the top 20% by entropy) carry the policy gradient. Reference: Wang et al.
// 2025, "Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive Effective Reinforcement Learning for LLM
// Reasoning" (arXiv 2506.01939), ρ = 0.2. Peer: TRL 1.16 GRPOConfig `top_entropy_quantile` = ρ.
//
// Both masks multiply the policy term only, with the normaliser and the KL term unchanged: pass them as
// PolicyLossInputs::policy_token_mask (multiply the two when both are used), as TRL does.
#pragma once

#include <string_view>

#include <ATen/core/grad_mode.h>
#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/detail/checks.hpp>

namespace kaizen::policy_gradient {

/// M_i of the header formula: [B] float (1 keep, 0 drop) in the log-probs' dtype. `advantages` [B] per
/// sequence (or [B, T], read at each row's first valid token), `logprobs` / `sampler_logprobs` [B, T] aligned
/// with `mask`; `delta` ≥ 0. Throws kaizen::Error on shape/dtype/device mismatch, a row without a valid
/// token, non-finite values on valid tokens, or delta < 0.
[[nodiscard]] inline torch::Tensor off_policy_sequence_mask(const torch::Tensor& advantages, const torch::Tensor& logprobs,
                                                            const torch::Tensor& sampler_logprobs,
                                                            const torch::Tensor& mask, double delta) {
  constexpr std::string_view fn = "off_policy_sequence_mask";
  KAIZEN_CHECK(delta >= 0, fn, ": expected delta >= 0, got ", delta);
  detail::check_real(fn, "logprobs", logprobs);
  KAIZEN_CHECK(logprobs.dim() == 2, fn, ": expected [B, T] `logprobs`, got shape ", logprobs.sizes());
  detail::check_like(fn, "sampler_logprobs", sampler_logprobs, logprobs, "logprobs");
  const auto m = detail::mask_as(fn, mask, logprobs);
  detail::check_rows_nonempty(fn, m);
  detail::check_real(fn, "advantages", advantages);
  KAIZEN_CHECK(advantages.size(0) == logprobs.size(0) && (advantages.dim() == 1 || advantages.sizes() == logprobs.sizes()),
               fn, ": expected `advantages` of shape [", logprobs.size(0), "] or ", logprobs.sizes(), ", got ",
               advantages.sizes());
  detail::check_finite(fn, "logprobs", logprobs, m);
  detail::check_finite(fn, "sampler_logprobs", sampler_logprobs, m);
  at::NoGradGuard no_grad;
  const auto valid = m != 0;
  const auto zero = torch::zeros_like(logprobs);
  const auto kl = torch::where(valid, sampler_logprobs - logprobs, zero);
  const auto mean_kl = (kl * m).sum(1) / m.sum(1);
  torch::Tensor adv = advantages.detach().to(logprobs.scalar_type());
  if (adv.dim() == 2) {
    const auto first = valid.to(torch::kInt64).argmax(1, /*keepdim=*/true);
    adv = adv.gather(1, first).squeeze(1);
  }
  detail::check_finite(fn, "advantages", adv);
  return ((adv >= 0) | (mean_kl <= delta)).to(logprobs.scalar_type());
}

/// M_t of the header formula: [B, T] bool, false on padding. `entropy` [B, T] (finite on valid tokens),
/// `keep_fraction` ρ ∈ (0, 1] (1 keeps every valid token). Throws kaizen::Error on shape/dtype/device
/// mismatch, non-finite entropies on valid tokens, or ρ outside (0, 1].
[[nodiscard]] inline torch::Tensor high_entropy_mask(const torch::Tensor& entropy, const torch::Tensor& mask,
                                                     double keep_fraction) {
  constexpr std::string_view fn = "high_entropy_mask";
  KAIZEN_CHECK(keep_fraction > 0 && keep_fraction <= 1, fn, ": expected keep_fraction in (0, 1], got ", keep_fraction);
  detail::check_real(fn, "entropy", entropy);
  KAIZEN_CHECK(entropy.dim() == 2, fn, ": expected [B, T] `entropy`, got shape ", entropy.sizes());
  const auto m = detail::mask_as(fn, mask, entropy);
  detail::check_finite(fn, "entropy", entropy, m);
  at::NoGradGuard no_grad;
  const auto valid = m != 0;
  const auto values = entropy.detach().masked_select(valid);
  if (values.numel() == 0) return torch::zeros_like(valid);
  const auto threshold = torch::quantile(values, 1.0 - keep_fraction);
  return valid & (entropy.detach() >= threshold);
}

}  // namespace kaizen::policy_gradient
