// kaizen/preference/exo.hpp - EXO (efficient exact optimisation), pairwise form.
//
// With h = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)] and z = β h, EXO minimises
// the reverse KL between the policy's softmax over the pair, q = (σ(z), σ(−z)), and the label
// distribution p = (1 − ε, ε):
//   L = KL(q ‖ p) = σ(z)·(log σ(z) − log(1 − ε)) + σ(−z)·(log σ(−z) − log ε)
// so L ≥ 0, with its minimum 0 at σ(z) = 1 − ε (z = log((1 − ε)/ε)); ε must be in (0, 1) (ε = 0 would
// put log 0 in the loss). h = 0 gives L = −log 2 − ½ log(ε(1 − ε)).
// Implicit rewards β·(log π_θ − log π_ref).
// Peers: TRL 1.16 DPOConfig loss_type "exo_pair" (ε = `label_smoothing`, refused when 0) and Liger-Kernel
// 0.8.5 DPO loss_type "exo_pair", same formula; both recommend ε = 1e-3, our default.
//
// Reference: Ji et al. 2024, "Towards Efficient Exact Optimization of Language Model Alignment"
// (arXiv 2402.00856), Eq. 16 with K = 2.
#pragma once

#include <cmath>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Options of exo_loss.
struct ExoOptions {
  double beta = 0.1;       ///< > 0
  double epsilon = 1e-3;   ///< ε ∈ (0, 1): the label distribution's weight on the rejected response
};

/// EXO (pair) loss over N pairs. Needs policy and reference log-probs [N]. Throws kaizen::Error on bad
/// pairs (as dpo_loss), beta <= 0, or epsilon outside (0, 1).
[[nodiscard]] inline PreferenceLoss exo_loss(const PairLogProbs& pairs, const ExoOptions& options = {}) {
  detail::check_beta("exo_loss", options.beta);
  const double eps = options.epsilon;
  KAIZEN_CHECK(eps > 0.0 && eps < 1.0, "exo_loss: expected epsilon in (0, 1), got ", eps);
  detail::check_pairs("exo_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/false);
  const auto r = detail::log_ratios(pairs);
  const torch::Tensor z = options.beta * r.h;
  const torch::Tensor per_pair = torch::sigmoid(z) * (torch::log_sigmoid(z) - std::log1p(-eps)) +
                                 torch::sigmoid(-z) * (torch::log_sigmoid(-z) - std::log(eps));
  return detail::paired_result(per_pair, options.beta * r.chosen, options.beta * r.rejected);
}

}  // namespace kaizen::preference
