// kaizen/preference/hinge.hpp - the hinge (SLiC-style) preference loss on the DPO log-ratio gap.
//
//   L = max(0, 1 − β h),   h = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)]
// Zero (and zero gradient) once the scaled gap exceeds the unit margin. Implicit rewards as DPO.
//
// References: Zhao et al. 2023, "SLiC-HF: Sequence Likelihood Calibration with Human Feedback"
// (arXiv 2305.10425); TRL's `loss_type="hinge"` (β = 0.1; 1/β is the margin in log-ratio units).
#pragma once

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Options of hinge_loss.
struct HingeOptions {
  double beta = 0.1;  ///< > 0: the loss vanishes for h >= 1/β
};

/// Hinge loss over N pairs (see the header formula). Throws kaizen::Error when chosen/rejected counts
/// differ, a log-prob is missing or non-finite, or beta <= 0.
[[nodiscard]] inline PreferenceLoss hinge_loss(const PairLogProbs& pairs, const HingeOptions& options = {}) {
  detail::check_beta("hinge_loss", options.beta);
  detail::check_pairs("hinge_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/false);
  const auto r = detail::log_ratios(pairs);
  const torch::Tensor per_pair = torch::relu(1.0 - options.beta * r.h);
  return detail::paired_result(per_pair, options.beta * r.chosen, options.beta * r.rejected);
}

}  // namespace kaizen::preference
