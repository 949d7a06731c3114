// kaizen/policy_gradient/nft.hpp - NFT, negative-aware fine-tuning (Chen et al. 2025, arXiv 2505.18116).
//
// Correct answers are trained by likelihood on π_θ; incorrect ones by likelihood on the implicit
// negative policy π⁻ = (π_old − r̂ π_θ) / (1 − r̂), r̂ the prompt's correct rate, which pushes π_θ's
// probability of wrong answers down. Per token, with R_t = exp(min(log π_θ − log π_old, 10)):
//   ℓ⁺_t = −log max_v(R_t, ε⁺)                            (correct sample, ε⁺ = 0)
//   ℓ⁻_t = −log max_v((1 − r̂ R_t) / (1 − r̂), ε⁻)          (incorrect sample, ε⁻ = 1)
// where max_v clamps the value only and passes the gradient straight through
// (x + sg(max(x, ε) − x)), so ∇ℓ = −∇x / max(x, ε).
//   L = Σ_i Σ_t m_it ω_i [c_i ℓ⁺_it + (1 − c_i) λ_neg ℓ⁻_it] / Z
// with c_i ∈ {0, 1} correctness, ω_i = 1 − r̂ (default) or sqrt((1 − r̂)/r̂), λ_neg = 1 and the constant
// Z = 1000 of the released code. r̂ is clamped to [0.02, 0.98]. λ_neg = 0 is rejection-sampling
// fine-tuning. On-policy (R = 1), ω = 1 − r̂ gives GRPO's gradient without std scaling and
// ω = sqrt((1 − r̂)/r̂) GRPO's std-normalised one (algorithms.md §6).
// Source: NVlabs/NFT dp_actor.py and ray_nft_trainer.py (facts only).
#pragma once

#include <string_view>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/detail/checks.hpp>

namespace kaizen::policy_gradient {

/// ω(r̂): the per-sample weight.
enum class NftWeighting : std::uint8_t {
  one_minus_rate,  ///< ω = 1 − r̂ (the code's normalize = 1, default)
  sqrt_odds,       ///< ω = sqrt((1 − r̂) / r̂) (normalize = 2)
};

struct NftOptions {
  double negative_weight = 1.0;    ///< λ_neg (0: RFT)
  double epsilon_positive = 0.0;   ///< ε⁺ ≥ 0
  double epsilon_negative = 1.0;   ///< ε⁻ > 0
  NftWeighting weighting = NftWeighting::one_minus_rate;
  double rate_min = 0.02;          ///< r̂ is clamped to [rate_min, rate_max] ⊂ (0, 1)
  double rate_max = 0.98;
  double max_log_ratio = 10.0;     ///< log R_t is clamped above at this value
  double normaliser = 1000.0;      ///< Z > 0, a constant (so micro-batches add up to the batch)
};

/// The per-group correct rate r̂ of each row: the mean of `correct` [B] (0/1 float) over its group.
[[nodiscard]] inline torch::Tensor nft_correct_rate(const torch::Tensor& correct, const torch::Tensor& group_ids) {
  const auto g = detail::make_groups("nft_correct_rate", correct, group_ids);
  return detail::group_mean(g, correct).index_select(0, g.index);
}

/// x with its value clamped below at `floor` and its gradient passed straight through.
[[nodiscard]] inline torch::Tensor straight_through_clamp_min(const torch::Tensor& x, double floor) {
  return x + (x.clamp_min(floor) - x).detach();
}

/// The NFT loss. `logprobs` (gradient), `old_logprobs` [B, T] float of one dtype/device, `mask`
/// [B, T] bool/float, `correct` [B] with values 0 or 1, `correct_rate` [B] r̂ per row (e.g.
/// nft_correct_rate). Throws on mismatched shapes/dtypes/devices, an empty row, non-finite inputs,
/// non-binary correctness, a rate outside [0, 1], or invalid options.
[[nodiscard]] inline torch::Tensor nft_loss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                                            const torch::Tensor& mask, const torch::Tensor& correct,
                                            const torch::Tensor& correct_rate, const NftOptions& options = {}) {
  constexpr std::string_view fn = "nft_loss";
  detail::check_real(fn, "logprobs", logprobs);
  KAIZEN_CHECK(logprobs.dim() == 2, fn, ": expected [B, T] `logprobs`, got shape ", logprobs.sizes());
  detail::check_like(fn, "old_logprobs", old_logprobs, logprobs, "logprobs");
  const auto m = detail::mask_as(fn, mask, logprobs);
  detail::check_rows_nonempty(fn, m);
  detail::check_finite(fn, "logprobs", logprobs, m);
  detail::check_finite(fn, "old_logprobs", old_logprobs, m);
  const auto rows = logprobs.select(1, 0);
  detail::check_like(fn, "correct", correct, rows, "logprobs[:, 0]");
  detail::check_like(fn, "correct_rate", correct_rate, rows, "logprobs[:, 0]");
  KAIZEN_CHECK(((correct == 0) | (correct == 1)).all().item<bool>(), fn,
               ": expected `correct` to hold 0 or 1, got min ", correct.min().item<double>(), ", max ",
               correct.max().item<double>());
  KAIZEN_CHECK(((correct_rate >= 0) & (correct_rate <= 1)).all().item<bool>(), fn,
               ": expected `correct_rate` in [0, 1], got min ", correct_rate.min().item<double>(), ", max ",
               correct_rate.max().item<double>());
  KAIZEN_CHECK(options.rate_min > 0 && options.rate_min <= options.rate_max && options.rate_max < 1, fn,
               ": expected 0 < rate_min <= rate_max < 1, got ", options.rate_min, ", ", options.rate_max);
  KAIZEN_CHECK(options.epsilon_positive >= 0 && options.epsilon_negative > 0, fn,
               ": expected epsilon_positive >= 0 and epsilon_negative > 0, got ", options.epsilon_positive, ", ",
               options.epsilon_negative);
  KAIZEN_CHECK(options.normaliser > 0, fn, ": expected normaliser > 0, got ", options.normaliser);
  KAIZEN_CHECK(options.negative_weight >= 0, fn, ": expected negative_weight >= 0, got ", options.negative_weight);

  const auto valid = m != 0;
  const auto zero = torch::zeros_like(logprobs);
  const auto log_ratio = (torch::where(valid, logprobs, zero) - torch::where(valid, old_logprobs.detach(), zero))
                             .clamp_max(options.max_log_ratio);
  const auto ratio = log_ratio.exp();
  const auto rate = correct_rate.clamp(options.rate_min, options.rate_max).unsqueeze(1);
  const auto positive = -straight_through_clamp_min(ratio, options.epsilon_positive).log();
  const auto negative = -straight_through_clamp_min((1 - rate * ratio) / (1 - rate), options.epsilon_negative).log();
  const auto weight = options.weighting == NftWeighting::one_minus_rate ? 1 - rate : ((1 - rate) / rate).sqrt();
  const auto c = correct.unsqueeze(1);
  // A correct row never evaluates ℓ⁻ into its value (and vice versa): select, do not multiply, so an
  // unused branch's inf cannot turn into NaN.
  const auto per_token = weight * torch::where(c > 0.5, positive, options.negative_weight * negative);
  return (torch::where(valid, per_token, zero) * m).sum() / options.normaliser;
}

}  // namespace kaizen::policy_gradient
