// kaizen/preference/discopop.hpp - DiscoPOP (log-ratio modulated loss), found by LLM-driven search.
//
// With z = β h, h = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)], and a
// temperature τ:
//   m = σ(z / τ),   L = (1 − m)·(−log σ(z)) + m·e^(−z)
// a blend of the logistic (DPO) loss, weighted for negative margins, and the exponential loss, for
// positive ones. h = 0 gives ½ log 2 + ½. Implicit rewards β·(log π_θ − log π_ref).
// Peers: TRL 1.16 DPOConfig loss_type "discopop" (τ = `discopop_tau`, default 0.05) and Liger-Kernel 0.8.5
// DPO "discopop" (`discopop_tau` 0.05), same formula.
//
// Reference: Chris Lu et al. 2024, "Discovering Preference Optimization Algorithms with and for Large
// Language Models" (arXiv 2406.08414), Eq. 5 (τ = 0.05).
#pragma once

#include <cmath>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Options of discopop_loss.
struct DiscopopOptions {
  double beta = 0.1;   ///< > 0
  double tau = 0.05;   ///< > 0: temperature of the modulation σ(z/τ)
};

/// DiscoPOP loss over N pairs. Needs policy and reference log-probs [N]. Throws kaizen::Error on bad
/// pairs (as dpo_loss), beta <= 0 or tau <= 0.
[[nodiscard]] inline PreferenceLoss discopop_loss(const PairLogProbs& pairs, const DiscopopOptions& options = {}) {
  detail::check_beta("discopop_loss", options.beta);
  KAIZEN_CHECK(options.tau > 0.0 && std::isfinite(options.tau), "discopop_loss: expected tau > 0 and finite, got ",
               options.tau);
  detail::check_pairs("discopop_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/false);
  const auto r = detail::log_ratios(pairs);
  const torch::Tensor z = options.beta * r.h;
  const torch::Tensor m = torch::sigmoid(z / options.tau);
  const torch::Tensor per_pair = (1.0 - m) * -torch::log_sigmoid(z) + m * torch::exp(-z);
  return detail::paired_result(per_pair, options.beta * r.chosen, options.beta * r.rejected);
}

}  // namespace kaizen::preference
