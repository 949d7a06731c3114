// kaizen/preference/apo.hpp - Anchored Preference Optimisation (APO-zero, APO-down).
//
// With r = β·(log π_θ(y|x) − log π_ref(y|x)) for y = y_w, y_l, APO anchors each response's reward
// instead of only their margin:
//   APO-zero  L = (1 − σ(r_w)) + σ(r_l)              push r_w up and r_l down (chosen better than the model)
//   APO-down  L = σ(r_w) + (1 − σ(r_w − r_l))        push both down, r_l more (chosen worse than the model)
// π_θ = π_ref gives 1 for both. Each term is in (0, 1), so L ∈ (0, 2).
// Unpaired APO-zero (KTO's apo_zero_unpaired) is in kto.hpp.
// Peers: TRL 1.16 DPOConfig loss_type "apo_zero" / "apo_down" and Liger-Kernel 0.8.5 DPO, same formulas.
//
// Reference: D'Oosterlinck et al. 2024, "Anchored Preference Optimization and Contrastive Revisions"
// (arXiv 2408.06266), Eqs. 7 and 8.
#pragma once

#include <cstdint>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Which anchor: zero (chosen above the model's own outputs) or down (below them).
enum class ApoAnchor : std::uint8_t { zero, down };

/// Options of apo_loss.
struct ApoOptions {
  double beta = 0.1;  ///< > 0
  ApoAnchor anchor = ApoAnchor::zero;
};

/// APO loss over N pairs (see the header formula). Needs policy and reference log-probs [N]. Throws
/// kaizen::Error on bad pairs (as dpo_loss) or beta <= 0.
[[nodiscard]] inline PreferenceLoss apo_loss(const PairLogProbs& pairs, const ApoOptions& options = {}) {
  detail::check_beta("apo_loss", options.beta);
  detail::check_pairs("apo_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/false);
  const auto r = detail::log_ratios(pairs);
  const torch::Tensor rw = options.beta * r.chosen, rl = options.beta * r.rejected;
  const torch::Tensor per_pair = options.anchor == ApoAnchor::zero
                                     ? (1.0 - torch::sigmoid(rw)) + torch::sigmoid(rl)
                                     : torch::sigmoid(rw) + (1.0 - torch::sigmoid(rw - rl));
  return detail::paired_result(per_pair, rw, rl);
}

}  // namespace kaizen::preference
