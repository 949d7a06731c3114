// kaizen/preference/aot.hpp - AOT: distributional preference alignment by optimal transport.
//
// AOT asks the chosen rewards to dominate the rejected ones in distribution (first-order stochastic
// dominance) rather than pair by pair. In one dimension the optimal-transport coupling of two samples is
// the sorted order, so the batch's values are sorted (ascending) and compared rank by rank, each with
// the (label-smoothed) logistic loss:
//   paired     d_k = sort(h^θ)_k − sort(h^ref)_k,  h^θ = log π_θ(y_w) − log π_θ(y_l), h^ref likewise
//   unpaired   d_k = sort(u_w)_k − sort(u_l)_k,    u = log π_θ(y) − log π_ref(y)
//   L_k = −(1 − ε) log σ(β d_k) − ε log σ(−β d_k),   L = mean_k L_k
// `per_example` holds L_k in rank order (not the input order); gradients flow through the sort
// (each rank's value back to the example that holds it). Implicit rewards β·u per input pair. With
// N = 1 both forms equal (c)DPO.
// Peers: TRL 1.16 DPOConfig loss_type "aot" (paired) and "aot_unpaired", ε = `label_smoothing`; Liger-Kernel
// 0.8.5 has neither.
//
// Reference: Melnyk et al. 2024, "Distributional Preference Alignment of LLMs via Optimal Transport"
// (arXiv 2406.05882).
#pragma once

#include <cstdint>
#include <tuple>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Which AOT variant: ranks of the margins (paired) or of the chosen vs rejected log-ratios (unpaired).
enum class AotVariant : std::uint8_t { paired, unpaired };

/// Options of aot_loss.
struct AotOptions {
  double beta = 0.1;             ///< > 0
  double label_smoothing = 0.0;  ///< ε ∈ [0, 0.5]
  AotVariant variant = AotVariant::paired;
};

/// AOT loss over N pairs (see the header formula). Needs policy and reference log-probs [N]. Throws
/// kaizen::Error on bad pairs (as dpo_loss), beta <= 0, or label_smoothing outside [0, 0.5].
[[nodiscard]] inline PreferenceLoss aot_loss(const PairLogProbs& pairs, const AotOptions& options = {}) {
  detail::check_beta("aot_loss", options.beta);
  const double eps = options.label_smoothing;
  KAIZEN_CHECK(eps >= 0.0 && eps <= 0.5, "aot_loss: expected label_smoothing in [0, 0.5], got ", eps);
  detail::check_pairs("aot_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/false);
  const auto r = detail::log_ratios(pairs);
  torch::Tensor d;
  if (options.variant == AotVariant::paired) {
    const auto policy = std::get<0>(torch::sort(pairs.chosen - pairs.rejected, /*dim=*/0));
    const auto reference =
        std::get<0>(torch::sort(pairs.reference_chosen.detach() - pairs.reference_rejected.detach(), /*dim=*/0));
    d = policy - reference;
  } else {
    d = std::get<0>(torch::sort(r.chosen, /*dim=*/0)) - std::get<0>(torch::sort(r.rejected, /*dim=*/0));
  }
  const torch::Tensor z = options.beta * d;
  torch::Tensor per_rank = -torch::log_sigmoid(z);
  if (eps > 0.0) per_rank = (1.0 - eps) * per_rank - eps * torch::log_sigmoid(-z);
  return detail::paired_result(per_rank, options.beta * r.chosen, options.beta * r.rejected);
}

}  // namespace kaizen::preference
