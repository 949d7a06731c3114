// kaizen/preference/rpo.hpp - Reasoning Preference Optimisation: DPO plus an NLL term on the chosen response.
//
//   L = −log σ(β h) + α·NLL(y_w),   NLL(y_w) = −log π_θ(y_w|x) / |y_w|
//   h = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)]
// The NLL term keeps the chosen likelihood from falling while the margin grows (a known DPO failure
// on reasoning data). Implicit rewards as DPO.
//
// NLL normalisation (RpoOptions::nll, preference_loss.hpp): per_sequence (the paper, default) or
// batch_tokens. TRL 1.16 has no `rpo_alpha` any more: RPO there is DPOConfig loss_type = ["sigmoid", "sft"]
// with loss_weights = [1, α], whose "sft" term is the batch token mean: set nll.normalisation = batch_tokens
// to reproduce it.
//
// Reference: Pang et al. 2024, "Iterative Reasoning Preference Optimization" (arXiv 2404.19733), which
// uses α = 1 and a length-normalised NLL. Default β = 0.1.
#pragma once

#include <cmath>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Options of rpo_loss.
struct RpoOptions {
  double beta = 0.1;   ///< > 0
  double alpha = 1.0;  ///< >= 0: weight of the chosen NLL term (0 gives DPO)
  NllOptions nll{};    ///< per-sequence (paper) or batch token mean (TRL)
};

/// RPO loss over N pairs. Needs policy and reference log-prob sums and the lengths [N]. Throws
/// kaizen::Error when chosen/rejected counts differ, a log-prob or length is missing or non-finite,
/// a length is <= 0, beta <= 0, or alpha is negative or non-finite.
[[nodiscard]] inline PreferenceLoss rpo_loss(const PairLogProbs& pairs, const RpoOptions& options = {}) {
  detail::check_beta("rpo_loss", options.beta);
  KAIZEN_CHECK(options.alpha >= 0.0 && std::isfinite(options.alpha), "rpo_loss: expected alpha >= 0 and finite, got ",
               options.alpha);
  detail::check_pairs("rpo_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/true);
  const auto r = detail::log_ratios(pairs);
  const torch::Tensor nll = detail::nll_term("rpo_loss", pairs.chosen, pairs.chosen_lengths, options.nll);
  const torch::Tensor per_pair = -torch::log_sigmoid(options.beta * r.h) + options.alpha * nll;
  PreferenceLoss out = detail::paired_result(per_pair, options.beta * r.chosen, options.beta * r.rejected);
  out.metrics.nll = nll.detach().mean();
  return out;
}

}  // namespace kaizen::preference
