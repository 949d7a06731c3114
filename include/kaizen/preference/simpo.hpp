// kaizen/preference/simpo.hpp - Simple Preference Optimisation (reference-free, length-normalised).
//
//   L = −log σ( β·(log π_θ(y_w|x) / |y_w|) − β·(log π_θ(y_l|x) / |y_l|) − γ )
// The implicit reward is the average token log-prob scaled by β (r = β·log π_θ(y)/|y|), so no
// reference model is needed and longer responses gain nothing from length; γ is a target reward
// margin. Equal average log-probs give log(1 + e^γ) (0.9741 for γ = 0.5).
// Label smoothing ε (conservative, as cDPO): with z = β·(mean_w − mean_l) − γ,
//   L = −(1 − ε) log σ(z) − ε log σ(−z)
// Peers: TRL 1.16 CPOConfig loss_type "simpo" (trl.experimental.cpo; `label_smoothing`, `simpo_gamma`,
// with cpo_alpha = 0) and Liger-Kernel 0.8.5 LigerFusedLinearSimPOLoss (`label_smoothing`, `gamma`) use this form.
//
// Reference: Meng, Xia, Chen 2024, "SimPO: Simple Preference Optimization with a Reference-Free
// Reward" (arXiv 2405.14734). Defaults: β = 2.0 (paper range 2–2.5), γ = 0.5 (TRL's CPOConfig
// `simpo_gamma`); the paper tunes γ/β in 0.3–0.8. [memory]
#pragma once

#include <cmath>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Options of simpo_loss.
struct SimpoOptions {
  double beta = 2.0;   ///< > 0: scale of the length-normalised reward
  double gamma = 0.5;  ///< >= 0: target reward margin
  double label_smoothing = 0.0;  ///< ε ∈ [0, 0.5]
};

/// SimPO loss over N pairs. Uses chosen/rejected log-prob sums and lengths [N]; reference log-probs
/// are ignored. Throws kaizen::Error when chosen/rejected counts differ, a log-prob or length is
/// missing or non-finite, a length is <= 0, beta <= 0, or gamma is negative or non-finite.
[[nodiscard]] inline PreferenceLoss simpo_loss(const PairLogProbs& pairs, const SimpoOptions& options = {}) {
  detail::check_beta("simpo_loss", options.beta);
  KAIZEN_CHECK(options.gamma >= 0.0 && std::isfinite(options.gamma), "simpo_loss: expected gamma >= 0 and finite, got ",
               options.gamma);
  KAIZEN_CHECK(options.label_smoothing >= 0.0 && options.label_smoothing <= 0.5,
               "simpo_loss: expected label_smoothing in [0, 0.5], got ", options.label_smoothing);
  detail::check_pairs("simpo_loss", pairs, /*needs_reference=*/false, /*needs_lengths=*/true);
  const torch::Tensor chosen_rewards = options.beta * pairs.chosen / pairs.chosen_lengths.to(pairs.chosen.scalar_type());
  const torch::Tensor rejected_rewards =
      options.beta * pairs.rejected / pairs.rejected_lengths.to(pairs.rejected.scalar_type());
  const torch::Tensor z = chosen_rewards - rejected_rewards - options.gamma;
  torch::Tensor per_pair = -torch::log_sigmoid(z);
  if (options.label_smoothing > 0.0)
    per_pair = (1.0 - options.label_smoothing) * per_pair - options.label_smoothing * torch::log_sigmoid(-z);
  return detail::paired_result(per_pair, chosen_rewards, rejected_rewards);
}

}  // namespace kaizen::preference
