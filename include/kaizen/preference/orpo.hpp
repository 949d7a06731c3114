// kaizen/preference/orpo.hpp - Odds Ratio Preference Optimisation (reference-free, SFT + preference in one).
//
//   p(y) = exp( log π_θ(y|x) / |y| )            (geometric-mean token probability)
//   log odds(y) = log p(y) − log(1 − p(y))
//   L = NLL(y_w) − λ·log σ( log odds(y_w) − log odds(y_l) ),   NLL(y_w) = −log π_θ(y_w|x) / |y_w|
// log(1 − p) is computed as log1mexp(mean log-prob) (stable near p → 0 and p → 1). Implicit rewards
// r = λ·log π_θ(y)/|y| (TRL's logging convention).
//
// NLL term: per-pair length-normalised over the response (default), or (OrpoOptions::nll) the batch token
// mean, and over prompt + response when `nll_chosen` / `nll_chosen_lengths` give those sums and counts.
// TRL 1.16 (trl.experimental.orpo) takes the cross-entropy over prompt + response tokens of the whole batch
// (batch_tokens with the prompt included); Liger-Kernel 0.8.5's fused ORPO over the response tokens of the
// batch (batch_tokens).
//
// Reference: Hong, Lee, Thorne 2024, "ORPO: Monolithic Preference Optimization without Reference Model"
// (arXiv 2403.07691). Default λ = 0.1 (TRL's ORPOConfig `beta`).
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Options of orpo_loss.
struct OrpoOptions {
  double lambda = 0.1;  ///< > 0: weight of the odds-ratio term
  NllOptions nll{};     ///< per-sequence (default) or batch token mean (TRL, Liger)
  /// Optional [N]: log π_θ summed over the tokens the NLL covers (e.g. prompt + response, as TRL), and their
  /// counts; both undefined: the NLL uses `chosen` and `chosen_lengths`.
  torch::Tensor nll_chosen = {};
  torch::Tensor nll_chosen_lengths = {};
};

namespace detail {
/// log(1 − e^x) for x < 0, accurate on both sides of −log 2 (Mächler 2012).
[[nodiscard]] inline torch::Tensor log1mexp(const torch::Tensor& x) {
  return torch::where(x.gt(-std::numbers::ln2), torch::log(-torch::expm1(x)), torch::log1p(-torch::exp(x)));
}
}  // namespace detail

/// ORPO loss over N pairs. Uses chosen/rejected log-prob sums and lengths [N]; reference log-probs are
/// ignored. Throws kaizen::Error when chosen/rejected counts differ, a log-prob or length is missing or
/// non-finite, a length is <= 0, lambda <= 0, or a mean log-prob is not < 0 (p = 1 has infinite odds).
[[nodiscard]] inline PreferenceLoss orpo_loss(const PairLogProbs& pairs, const OrpoOptions& options = {}) {
  KAIZEN_CHECK(options.lambda > 0.0 && std::isfinite(options.lambda), "orpo_loss: expected lambda > 0 and finite, got ",
               options.lambda);
  detail::check_pairs("orpo_loss", pairs, /*needs_reference=*/false, /*needs_lengths=*/true);
  const torch::Tensor mean_w = pairs.chosen / pairs.chosen_lengths.to(pairs.chosen.scalar_type());
  const torch::Tensor mean_l = pairs.rejected / pairs.rejected_lengths.to(pairs.rejected.scalar_type());
  const auto non_negative = (mean_w.detach().ge(0).sum() + mean_l.detach().ge(0).sum()).item<std::int64_t>();
  KAIZEN_CHECK(non_negative == 0, "orpo_loss: expected mean log-probs < 0 (probability < 1), got ", non_negative,
               " value(s) >= 0");
  const torch::Tensor log_odds = (mean_w - mean_l) - (detail::log1mexp(mean_w) - detail::log1mexp(mean_l));
  KAIZEN_CHECK(options.nll_chosen.defined() == options.nll_chosen_lengths.defined(),
               "orpo_loss: expected both nll_chosen and nll_chosen_lengths, or neither");
  if (options.nll_chosen.defined()) {
    detail::check_vector_shape("orpo_loss", "nll_chosen", options.nll_chosen, pairs.chosen.size(0), pairs.chosen.device());
    detail::check_vector_shape("orpo_loss", "nll_chosen_lengths", options.nll_chosen_lengths, pairs.chosen.size(0),
                               pairs.chosen.device());
    detail::check_values("orpo_loss", {{"nll_chosen", &options.nll_chosen},
                                       {"nll_chosen_lengths", &options.nll_chosen_lengths, true}});
  }
  const torch::Tensor nll =
      options.nll_chosen.defined()
          ? detail::nll_term("orpo_loss", options.nll_chosen, options.nll_chosen_lengths, options.nll)
          : detail::nll_term("orpo_loss", pairs.chosen, pairs.chosen_lengths, options.nll);
  const torch::Tensor per_pair = nll - options.lambda * torch::log_sigmoid(log_odds);
  PreferenceLoss out = detail::paired_result(per_pair, options.lambda * mean_w, options.lambda * mean_l);
  out.metrics.nll = nll.detach().mean();
  out.metrics.log_odds_ratio = log_odds.detach().mean();
  return out;
}

}  // namespace kaizen::preference
