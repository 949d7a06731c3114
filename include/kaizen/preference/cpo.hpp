// kaizen/preference/cpo.hpp - Contrastive Preference Optimisation (reference-free).
//
//   L = −log σ( β·log π_θ(y_w|x) − β·log π_θ(y_l|x) ) + α·NLL(y_w),   NLL(y_w) = −log π_θ(y_w|x) / |y_w|
// DPO with a uniform reference (the reference terms cancel) plus a behaviour-cloning term on the
// preferred response. Implicit rewards r = β·log π_θ(y).
//
// Reference: Xu et al. 2024, "Contrastive Preference Optimization" (arXiv 2401.08417). Defaults β = 0.1,
// α = 1 (TRL's CPOConfig `cpo_alpha`). The NLL is length-normalised per pair and averaged over pairs by
// default; TRL 1.16 (trl.experimental.cpo) and Liger-Kernel 0.8.5 average over all chosen tokens of the batch:
// CpoOptions::nll.normalisation = batch_tokens (preference_loss.hpp).
#pragma once

#include <cmath>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Options of cpo_loss.
struct CpoOptions {
  double beta = 0.1;   ///< > 0
  double alpha = 1.0;  ///< >= 0: weight of the chosen NLL term
  NllOptions nll{};    ///< per-sequence (default) or batch token mean (TRL, Liger)
};

/// CPO loss over N pairs. Uses chosen/rejected log-prob sums and lengths [N]; reference log-probs are
/// ignored. Throws kaizen::Error when chosen/rejected counts differ, a log-prob or length is missing
/// or non-finite, a length is <= 0, beta <= 0, or alpha is negative or non-finite.
[[nodiscard]] inline PreferenceLoss cpo_loss(const PairLogProbs& pairs, const CpoOptions& options = {}) {
  detail::check_beta("cpo_loss", options.beta);
  KAIZEN_CHECK(options.alpha >= 0.0 && std::isfinite(options.alpha), "cpo_loss: expected alpha >= 0 and finite, got ",
               options.alpha);
  detail::check_pairs("cpo_loss", pairs, /*needs_reference=*/false, /*needs_lengths=*/true);
  const torch::Tensor chosen_rewards = options.beta * pairs.chosen;
  const torch::Tensor rejected_rewards = options.beta * pairs.rejected;
  const torch::Tensor nll = detail::nll_term("cpo_loss", pairs.chosen, pairs.chosen_lengths, options.nll);
  const torch::Tensor per_pair = -torch::log_sigmoid(chosen_rewards - rejected_rewards) + options.alpha * nll;
  PreferenceLoss out = detail::paired_result(per_pair, chosen_rewards, rejected_rewards);
  out.metrics.nll = nll.detach().mean();
  return out;
}

}  // namespace kaizen::preference
