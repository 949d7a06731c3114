// kaizen/preference/dpo.hpp - Direct Preference Optimisation and its label-noise variants.
//
//   h = [log π_θ(y_w|x) − log π_ref(y_w|x)] − [log π_θ(y_l|x) − log π_ref(y_l|x)]
//   DPO         L = −log σ(β h)
//   cDPO        L = −(1 − ε) log σ(β h) − ε log σ(−β h)          (conservative: labels flipped w.p. ε)
//   robust DPO  L = [−(1 − ε) log σ(β h) + ε log σ(−β h)] / (1 − 2ε) (unbiased under label noise ε)
// Implicit rewards r_w = β(log π_θ(y_w) − log π_ref(y_w)), r_l likewise. β → 0 leaves the loss at log 2
// with gradient −(β/2)·∂h; π_θ = π_ref gives h = 0 and L = log 2 for every β.
//
// References: Rafailov et al. 2023, "Direct Preference Optimization" (arXiv 2305.18290);
// Mitchell 2023, "A note on DPO with noisy preferences" (cDPO); Chowdhury et al. 2024, "Provably Robust
// DPO" (arXiv 2403.00409). Defaults follow TRL's DPOConfig (β = 0.1, ε = 0).
#pragma once

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Options of dpo_loss (DPO; cDPO when label_smoothing > 0).
struct DpoOptions {
  double beta = 0.1;             ///< > 0: inverse temperature of the implicit reward
  double label_smoothing = 0.0;  ///< ε ∈ [0, 0.5]: assumed probability that a label is flipped (cDPO)
};

/// Options of robust_dpo_loss.
struct RobustDpoOptions {
  double beta = 0.1;             ///< > 0
  double label_smoothing = 0.0;  ///< ε ∈ [0, 0.5): label-flip rate the loss corrects for
};

namespace detail {

/// h = (π_w − ref_w) − (π_l − ref_l), with the reference detached; returns {h, chosen log-ratio, rejected log-ratio}.
struct LogRatios {
  torch::Tensor h, chosen, rejected;
};
[[nodiscard]] inline LogRatios log_ratios(const PairLogProbs& p) {
  LogRatios out;
  out.chosen = p.chosen - p.reference_chosen.detach();
  out.rejected = p.rejected - p.reference_rejected.detach();
  out.h = out.chosen - out.rejected;
  return out;
}

}  // namespace detail

/// DPO / cDPO loss over N pairs (see the header formula). Needs policy and reference log-probs [N].
/// Throws kaizen::Error when chosen/rejected counts differ, a log-prob is missing or non-finite,
/// beta <= 0, or label_smoothing is outside [0, 0.5].
[[nodiscard]] inline PreferenceLoss dpo_loss(const PairLogProbs& pairs, const DpoOptions& options = {}) {
  detail::check_beta("dpo_loss", options.beta);
  const double eps = options.label_smoothing;
  KAIZEN_CHECK(eps >= 0.0 && eps <= 0.5, "dpo_loss: expected label_smoothing in [0, 0.5], got ", eps);
  detail::check_pairs("dpo_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/false);
  const auto r = detail::log_ratios(pairs);
  const torch::Tensor z = options.beta * r.h;
  torch::Tensor per_pair = -torch::log_sigmoid(z);
  if (eps > 0.0) per_pair = (1.0 - eps) * per_pair - eps * torch::log_sigmoid(-z);
  return detail::paired_result(per_pair, options.beta * r.chosen, options.beta * r.rejected);
}

/// Robust DPO loss over N pairs (see the header formula); ε = 0 equals DPO.
/// Throws like dpo_loss, and unless label_smoothing is in [0, 0.5).
[[nodiscard]] inline PreferenceLoss robust_dpo_loss(const PairLogProbs& pairs, const RobustDpoOptions& options = {}) {
  detail::check_beta("robust_dpo_loss", options.beta);
  const double eps = options.label_smoothing;
  KAIZEN_CHECK(eps >= 0.0 && eps < 0.5, "robust_dpo_loss: expected label_smoothing in [0, 0.5), got ", eps);
  detail::check_pairs("robust_dpo_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/false);
  const auto r = detail::log_ratios(pairs);
  const torch::Tensor z = options.beta * r.h;
  const torch::Tensor per_pair =
      (-(1.0 - eps) * torch::log_sigmoid(z) + eps * torch::log_sigmoid(-z)) / (1.0 - 2.0 * eps);
  return detail::paired_result(per_pair, options.beta * r.chosen, options.beta * r.rejected);
}

}  // namespace kaizen::preference
