// kaizen/preference/sppo.hpp - SPPO with hard win probabilities (self-play preference optimisation).
//
// With u = log π_θ(y|x) − log π_ref(y|x) for y = y_w, y_l (π_ref the previous iterate):
//   L = (u_w − 1/(2β))² + (u_l + 1/(2β))²
// SPPO regresses each response's log-ratio on β⁻¹·(P(y ≻ π) − ½); with the hard estimate P = 1 for
// the winner and 0 for the loser the targets are +1/(2β) and −1/(2β). π_θ = π_ref gives 1/(2β²)
// (50 at β = 0.1). Implicit rewards β·u.
// Peers: TRL 1.16 DPOConfig loss_type "sppo_hard" and Liger-Kernel 0.8.5 DPO "sppo_hard", same formula
// (β is their `beta`). The paper's soft P from a preference model (PairRM) is computed outside the loss.
//
// Reference: Wu et al. 2024, "Self-Play Preference Optimization for Language Model Alignment"
// (arXiv 2405.00675), Eq. 4.7 of Algorithm 1.
#pragma once

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Options of sppo_hard_loss.
struct SppoOptions {
  double beta = 0.1;  ///< > 0: the targets are ±1/(2β)
};

/// SPPO-hard loss over N pairs. Needs policy and reference log-probs [N]. Throws kaizen::Error on bad
/// pairs (as dpo_loss) or beta <= 0.
[[nodiscard]] inline PreferenceLoss sppo_hard_loss(const PairLogProbs& pairs, const SppoOptions& options = {}) {
  detail::check_beta("sppo_hard_loss", options.beta);
  detail::check_pairs("sppo_hard_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/false);
  const auto r = detail::log_ratios(pairs);
  const double target = 0.5 / options.beta;
  const torch::Tensor per_pair = (r.chosen - target).square() + (r.rejected + target).square();
  return detail::paired_result(per_pair, options.beta * r.chosen, options.beta * r.rejected);
}

}  // namespace kaizen::preference
