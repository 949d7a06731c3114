// kaizen/preference/nca.hpp - NCA (noise-contrastive alignment), pairwise form.
//
// With r = β·(log π_θ(y|x) − log π_ref(y|x)) for y = y_w, y_l:
//   L = −log σ(r_w) − ½ log σ(−r_w) − ½ log σ(−r_l)
// Unlike DPO, which only moves the margin r_w − r_l, NCA optimises each response's absolute reward:
// the chosen one is pulled towards r_w = log 2 (where −log σ(r) − ½ log σ(−r) is minimal: σ(r) = 2/3)
// and the rejected one pushed down, which keeps the chosen likelihood from falling. π_θ = π_ref gives L = 2 log 2.
// Peers: TRL 1.16 DPOConfig loss_type "nca_pair" and Liger-Kernel 0.8.5 DPO "nca_pair", same formula.
//
// Reference: Chen et al. 2024, "Noise Contrastive Alignment of Language Models with Explicit Rewards"
// (arXiv 2402.05369). Default β = 0.1.
#pragma once

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Options of nca_loss.
struct NcaOptions {
  double beta = 0.1;  ///< > 0
};

/// NCA (pair) loss over N pairs. Needs policy and reference log-probs [N]. Throws kaizen::Error on bad
/// pairs (as dpo_loss) or beta <= 0.
[[nodiscard]] inline PreferenceLoss nca_loss(const PairLogProbs& pairs, const NcaOptions& options = {}) {
  detail::check_beta("nca_loss", options.beta);
  detail::check_pairs("nca_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/false);
  const auto r = detail::log_ratios(pairs);
  const torch::Tensor rw = options.beta * r.chosen, rl = options.beta * r.rejected;
  const torch::Tensor per_pair =
      -torch::log_sigmoid(rw) - 0.5 * torch::log_sigmoid(-rw) - 0.5 * torch::log_sigmoid(-rl);
  return detail::paired_result(per_pair, rw, rl);
}

}  // namespace kaizen::preference
