// kaizen/policy_gradient/vespo.hpp - VESPO: a smooth Gamma-shaped weight on the sequence importance ratio
// in place of hard clipping.
//
// With Δ_t = clamp(log π_θ(y_t) − log π_old(y_t), −20, 20), the sequence ratio (a product, not a mean) is
//   log w_i = clamp(Σ_t m_it Δ_t [+ Σ_t log ρ_it], log 1e-8, 20),   w_i = exp(log w_i)
// (ρ: optional per-token sampler-correction ratios π_old/π_sampler, folded in), and the weight is the
// Gamma-kernel φ normalised to φ(1) = 1:
//   φ(w) = exp(λ + k log w − λ w),   (k, λ) = (k₊, λ₊) if A_i ≥ 0 else (k₋, λ₋),  λ ≥ 1e-4
// a constant (no gradient). The per-token loss is a weighted REINFORCE term:
//   ℓ_t = −φ(w_i) · A_i · log π_θ(y_t)
// so ∇ℓ_t = −φ A ∇log π_θ: φ peaks at w = k/λ and decays smoothly on both sides instead of cutting the
// gradient at 1 ± ε. Non-finite φ (overflow) counts as 0. ℓ is aggregated by `Aggregate` (TRL / Liger use
// the token mean, TokenMean).
// Defaults k₊ = 2, λ₊ = 3, k₋ = 3, λ₋ = 2 (TRL 1.16 GRPOConfig vespo_* and Liger-Kernel 0.8.5).
//
// Reference: "VESPO: Variational Sequence-Level Soft Policy Optimization" (arXiv 2602.10693). Peers: TRL 1.16
// loss_type "vespo" (GRPOTrainer.get_gamma_weights), Liger-Kernel 0.8.5 grpo_loss "vespo"; same formula.
#pragma once

#include <cmath>
#include <optional>
#include <string_view>

#include <ATen/core/grad_mode.h>
#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/aggregation.hpp>
#include <kaizen/policy_gradient/detail/checks.hpp>
#include <kaizen/policy_gradient/options.hpp>

namespace kaizen::policy_gradient {

/// VESPO's Gamma-kernel parameters.
struct VespoOptions {
  double k_positive = 2.0;       ///< k₊ (A ≥ 0), finite
  double lambda_positive = 3.0;  ///< λ₊ (A ≥ 0), > 0
  double k_negative = 3.0;       ///< k₋ (A < 0), finite
  double lambda_negative = 2.0;  ///< λ₋ (A < 0), > 0
};

/// φ(w_i) [B] (constant) from the header formula. `logprobs`, `old_logprobs` [B, T]; `advantages` [B];
/// `mask` [B, T]; `correction` optional [B, T] per-token sampler ratios ρ > 0 on valid tokens.
[[nodiscard]] inline torch::Tensor vespo_weights(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                                                 const torch::Tensor& advantages, const torch::Tensor& mask,
                                                 const VespoOptions& options = {},
                                                 const torch::Tensor& correction = {}) {
  constexpr std::string_view fn = "vespo_weights";
  KAIZEN_CHECK(options.lambda_positive > 0 && options.lambda_negative > 0 && std::isfinite(options.k_positive) &&
                   std::isfinite(options.k_negative) && std::isfinite(options.lambda_positive) &&
                   std::isfinite(options.lambda_negative),
               fn, ": expected finite k and lambda > 0, got k_positive = ", options.k_positive, ", lambda_positive = ",
               options.lambda_positive, ", k_negative = ", options.k_negative, ", lambda_negative = ",
               options.lambda_negative);
  detail::check_real(fn, "logprobs", logprobs);
  KAIZEN_CHECK(logprobs.dim() == 2, fn, ": expected [B, T] `logprobs`, got shape ", logprobs.sizes());
  detail::check_like(fn, "old_logprobs", old_logprobs, logprobs, "logprobs");
  detail::check_real(fn, "advantages", advantages);
  KAIZEN_CHECK(advantages.dim() == 1 && advantages.size(0) == logprobs.size(0), fn,
               ": expected per-sequence `advantages` of shape [", logprobs.size(0), "], got ", advantages.sizes());
  const auto m = detail::mask_as(fn, mask, logprobs);
  detail::check_rows_nonempty(fn, m);
  detail::check_finite(fn, "logprobs", logprobs, m);
  detail::check_finite(fn, "old_logprobs", old_logprobs, m);
  detail::check_finite(fn, "advantages", advantages);
  at::NoGradGuard no_grad;
  const auto valid = m != 0;
  const auto zero = torch::zeros_like(logprobs);
  const auto delta = torch::where(valid, logprobs.detach() - old_logprobs.detach(), zero).clamp(-20.0, 20.0);
  auto log_w = (delta * m).sum(1);
  const double floor = std::log(1e-8);
  if (correction.defined()) {
    detail::check_like(fn, "correction", correction, logprobs, "logprobs");
    const auto c = torch::where(valid, correction.detach(), torch::ones_like(logprobs));
    KAIZEN_CHECK((c > 0).all().item<bool>(), fn, ": expected sampler correction ratios > 0 on valid tokens");
    log_w = log_w + torch::where(valid, c.log().clamp(floor, 20.0), zero).sum(1);
  }
  log_w = log_w.clamp(floor, 20.0);
  const auto positive = advantages.detach().to(logprobs.scalar_type()) >= 0;
  const auto k = torch::where(positive, torch::full_like(log_w, options.k_positive),
                              torch::full_like(log_w, options.k_negative));
  const auto lambda = torch::where(positive, torch::full_like(log_w, options.lambda_positive),
                                   torch::full_like(log_w, options.lambda_negative))
                          .clamp_min(1e-4);
  return torch::nan_to_num(torch::exp(lambda + k * log_w - lambda * log_w.exp()), 0.0, 0.0, 0.0);
}

/// The VESPO loss, aggregated by `aggregation` (TokenMean in TRL / Liger) with the optional global
/// normaliser. Inputs as vespo_weights; padding may hold anything. Throws as vespo_weights and aggregate.
template <class Aggregate = TokenMean>
[[nodiscard]] torch::Tensor vespo_loss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                                       const torch::Tensor& advantages, const torch::Tensor& mask,
                                       const VespoOptions& options = {}, const Aggregate& aggregation = {},
                                       std::optional<double> normaliser = std::nullopt,
                                       const torch::Tensor& correction = {}) {
  const auto phi = vespo_weights(logprobs, old_logprobs, advantages, mask, options, correction);
  const auto m = detail::mask_as("vespo_loss", mask, logprobs);
  const auto lp = torch::where(m != 0, logprobs, torch::zeros_like(logprobs));
  const auto per_token = -(phi * advantages.detach().to(lp.scalar_type())).unsqueeze(1) * lp;
  return aggregate(per_token, m, aggregation, normaliser);
}

}  // namespace kaizen::policy_gradient
