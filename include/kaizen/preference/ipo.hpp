// kaizen/preference/ipo.hpp - Identity Preference Optimisation.
//
//   L = (h − 1/(2τ))²,   h = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)]
// A squared loss that regresses the log-ratio gap to 1/(2τ) instead of pushing it to infinity, so it
// does not overfit deterministic preferences. Minimum 0 at h = 1/(2τ); π_θ = π_ref, τ = 0.1 gives 25.
// Implicit rewards r = τ·(log π_θ − log π_ref). With `length_normalize`, log-probs are divided by the
// response lengths first (TRL's IPO uses mean token log-probs; the paper's formula uses sums, our default).
//
// Reference: Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
// Preferences" (arXiv 2310.12036). τ is TRL's `beta` (default 0.1).
#pragma once

#include <cmath>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Options of ipo_loss.
struct IpoOptions {
  double tau = 0.1;               ///< > 0: the target gap is 1/(2τ)
  bool length_normalize = false;  ///< divide policy and reference log-probs by the lengths (needs lengths)
};

/// IPO loss over N pairs (see the header formula). Throws kaizen::Error when chosen/rejected counts
/// differ, a log-prob is missing or non-finite, tau <= 0, or lengths are needed and missing or <= 0.
[[nodiscard]] inline PreferenceLoss ipo_loss(const PairLogProbs& pairs, const IpoOptions& options = {}) {
  KAIZEN_CHECK(options.tau > 0.0 && std::isfinite(options.tau), "ipo_loss: expected tau > 0 and finite, got ",
               options.tau);
  detail::check_pairs("ipo_loss", pairs, /*needs_reference=*/true, options.length_normalize);
  PairLogProbs p = pairs;
  if (options.length_normalize) {
    const auto lw = pairs.chosen_lengths.to(pairs.chosen.scalar_type());
    const auto ll = pairs.rejected_lengths.to(pairs.rejected.scalar_type());
    p.chosen = pairs.chosen / lw;
    p.reference_chosen = pairs.reference_chosen / lw;
    p.rejected = pairs.rejected / ll;
    p.reference_rejected = pairs.reference_rejected / ll;
  }
  const auto r = detail::log_ratios(p);
  const torch::Tensor per_pair = (r.h - 1.0 / (2.0 * options.tau)).square();
  return detail::paired_result(per_pair, options.tau * r.chosen, options.tau * r.rejected);
}

}  // namespace kaizen::preference
