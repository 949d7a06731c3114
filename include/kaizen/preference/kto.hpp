// kaizen/preference/kto.hpp - Kahneman-Tversky Optimisation (unpaired desirable / undesirable examples).
//
//   r(x,y) = log π_θ(y|x) − log π_ref(y|x)
//   z0     = max(0, mean over mismatched (x, y') of [log π_θ(y'|x) − log π_ref(y'|x)])   (no gradient)
//   v(x,y) = λ_D σ(β (r − z0))   if y is desirable,   λ_U σ(β (z0 − r))   if undesirable
//   L      = mean over examples of (λ_y − v(x,y))
// z0 is a batch estimate of KL(π_θ ‖ π_ref): pair each prompt with another example's completion
// (TRL shifts completions by one within the batch), score them under both models, and pass the two
// log-prob vectors to kto_kl_baseline. Implicit rewards β·r; accuracy counts desirable examples with
// r > z0 and undesirable ones with r < z0.
//
// Variant apo_zero_unpaired (KtoOptions::loss = KtoVariant::apo_zero_unpaired): no KL baseline, and
//   L = λ_D (1 − σ(β r)) if desirable,   λ_U σ(β r) if undesirable
// (the unpaired form of APO-zero, D'Oosterlinck et al. 2024, arXiv 2408.06266; TRL 1.16 KTOConfig loss_type
// "apo_zero_unpaired", which skips the KL pass). Call kto_loss without a baseline for it.
//
// Reference: Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization"
// (arXiv 2402.01306). Defaults β = 0.1, λ_D = λ_U = 1; the paper keeps λ_D·n_D / (λ_U·n_U) in [1, 4/3].
#pragma once

#include <cmath>
#include <cstdint>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Which KTO loss: the paper's (with the KL baseline) or APO-zero on unpaired data.
enum class KtoVariant : std::uint8_t { kto, apo_zero_unpaired };

/// Options of kto_loss.
struct KtoOptions {
  double beta = 0.1;               ///< > 0
  double desirable_weight = 1.0;   ///< λ_D > 0
  double undesirable_weight = 1.0; ///< λ_U > 0
  KtoVariant loss = KtoVariant::kto;
};

/// z0 = max(0, mean(policy − reference)) over K mismatched (prompt, completion) pairs, detached: a 0-dim
/// tensor. Throws kaizen::Error when the shapes differ, K = 0, or a log-prob is non-finite.
[[nodiscard]] inline torch::Tensor kto_kl_baseline(const torch::Tensor& policy_mismatched,
                                                   const torch::Tensor& reference_mismatched) {
  KAIZEN_CHECK(policy_mismatched.defined() && policy_mismatched.dim() == 1 && policy_mismatched.size(0) > 0,
               "kto_kl_baseline: expected mismatched policy log-probs of shape [K] with K > 0, got ",
               detail::sizes_or_empty(policy_mismatched));
  const std::int64_t k = policy_mismatched.size(0);
  detail::check_vector("kto_kl_baseline", "policy", policy_mismatched, k, policy_mismatched.device());
  detail::check_vector("kto_kl_baseline", "reference", reference_mismatched, k, policy_mismatched.device());
  return (policy_mismatched.detach() - reference_mismatched.detach()).mean().clamp_min(0.0);
}

/// KTO loss over M unpaired examples (see the header formula), with the KL baseline z0 (a 0-dim or
/// one-element tensor or a number; detached). Throws kaizen::Error when shapes or labels are wrong, a
/// log-prob is non-finite, beta <= 0, a weight is not > 0, or z0 is negative or non-finite.
[[nodiscard]] inline PreferenceLoss kto_loss(const UnpairedLogProbs& batch, const torch::Tensor& kl_baseline,
                                             const KtoOptions& options = {}) {
  detail::check_beta("kto_loss", options.beta);
  KAIZEN_CHECK(options.desirable_weight > 0.0 && std::isfinite(options.desirable_weight) &&
                   options.undesirable_weight > 0.0 && std::isfinite(options.undesirable_weight),
               "kto_loss: expected desirable_weight and undesirable_weight > 0, got ", options.desirable_weight,
               " and ", options.undesirable_weight);
  detail::check_unpaired("kto_loss", batch);
  KAIZEN_CHECK(kl_baseline.defined() && kl_baseline.numel() == 1, "kto_loss: expected a single KL baseline value, got shape ",
               detail::sizes_or_empty(kl_baseline));
  const double z0_value = kl_baseline.item<double>();
  KAIZEN_CHECK(z0_value >= 0.0 && std::isfinite(z0_value), "kto_loss: expected a KL baseline >= 0 and finite, got ",
               z0_value);
  KAIZEN_CHECK(options.loss == KtoVariant::kto || z0_value == 0.0,
               "kto_loss: apo_zero_unpaired has no KL baseline; expected 0 (or the overload without one), got ", z0_value);
  const torch::Tensor z0 = kl_baseline.detach().reshape({}).to(batch.policy.options());
  const torch::Tensor r = batch.policy - batch.reference.detach();
  const bool apo = options.loss == KtoVariant::apo_zero_unpaired;
  const torch::Tensor desirable_loss = options.desirable_weight * (1.0 - torch::sigmoid(options.beta * (r - z0)));
  const torch::Tensor undesirable_loss =
      options.undesirable_weight * (apo ? torch::sigmoid(options.beta * r) : 1.0 - torch::sigmoid(options.beta * (z0 - r)));
  const torch::Tensor per_example = torch::where(batch.desirable, desirable_loss, undesirable_loss);
  return detail::unpaired_result(per_example, options.beta * r, batch.desirable, z0);
}

/// kto_loss with z0 given as a number.
[[nodiscard]] inline PreferenceLoss kto_loss(const UnpairedLogProbs& batch, double kl_baseline,
                                             const KtoOptions& options = {}) {
  return kto_loss(batch, torch::tensor(kl_baseline, torch::kFloat64), options);
}

/// kto_loss without a KL baseline: for KtoVariant::apo_zero_unpaired only (throws for the KL form,
/// which needs z0 from kto_kl_baseline).
[[nodiscard]] inline PreferenceLoss kto_loss(const UnpairedLogProbs& batch, const KtoOptions& options) {
  KAIZEN_CHECK(options.loss == KtoVariant::apo_zero_unpaired,
               "kto_loss: expected a KL baseline z0 for the kto variant (kto_kl_baseline), got none");
  return kto_loss(batch, 0.0, options);
}

}  // namespace kaizen::preference
