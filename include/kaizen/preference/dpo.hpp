// kaizen/preference/dpo.hpp - Direct Preference Optimisation and its label-noise variants.
//
//   h = [log π_θ(y_w|x) − log π_ref(y_w|x)] − [log π_θ(y_l|x) − log π_ref(y_l|x)]
//   DPO         L = −log σ(β h)
//   cDPO        L = −(1 − ε) log σ(β h) − ε log σ(−β h)          (conservative: labels flipped w.p. ε)
//   robust DPO  L = [−(1 − ε) log σ(β h) + ε log σ(−β h)] / (1 − 2ε) (unbiased under label noise ε)
//   sigmoid-norm  L = −log σ(β h̄),  h̄ = u_w/|y_w| − u_l/|y_l|   (dpo_norm_loss; TRL loss_type "sigmoid_norm")
// with u = log π_θ − log π_ref. With DpoOptions::divergence ≠ reverse KL, each u becomes its f-divergence
// score first (f_divergence.hpp): h = score(u_w) − score(u_l) (TRL's `f_divergence_type`).
// Peers: neither TRL 1.16's DPOTrainer nor Liger-Kernel 0.8.5's DPO "sigmoid" smooths labels (their
// `label_smoothing` feeds only "robust", "exo_pair" and, in TRL, the AOT losses); cDPO here is the form of
// Mitchell's note and of TRL <= 0.2x. TRL's sigmoid_norm divides by the completion token counts.
// Implicit rewards r_w = β(log π_θ(y_w) − log π_ref(y_w)), r_l likewise. β → 0 leaves the loss at log 2
// with gradient −(β/2)·∂h; π_θ = π_ref gives h = 0 and L = log 2 for every β.
//
// References: Rafailov et al. 2023, "Direct Preference Optimization" (arXiv 2305.18290);
// Mitchell 2023, "A note on DPO with noisy preferences" (cDPO); Chowdhury et al. 2024, "Provably Robust
// DPO" (arXiv 2403.00409). Defaults follow TRL's DPOConfig (β = 0.1, ε = 0).
#pragma once

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/f_divergence.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Options of dpo_loss (DPO; cDPO when label_smoothing > 0).
struct DpoOptions {
  double beta = 0.1;             ///< > 0: inverse temperature of the implicit reward
  double label_smoothing = 0.0;  ///< ε ∈ [0, 0.5]: assumed probability that a label is flipped (cDPO)
  FDivergenceOptions divergence{};  ///< reverse KL (DPO) by default; see f_divergence.hpp
};

/// Options of dpo_norm_loss (TRL's "sigmoid_norm").
struct DpoNormOptions {
  double beta = 0.1;                ///< > 0
  FDivergenceOptions divergence{};  ///< applied to u before the length normalisation, as TRL
};

/// Options of robust_dpo_loss.
struct RobustDpoOptions {
  double beta = 0.1;             ///< > 0
  double label_smoothing = 0.0;  ///< ε ∈ [0, 0.5): label-flip rate the loss corrects for
};

namespace detail {

/// h = (π_w − ref_w) − (π_l − ref_l), with the reference detached; returns {h, chosen log-ratio, rejected log-ratio}.
struct LogRatios {
  torch::Tensor h, chosen, rejected;
};
[[nodiscard]] inline LogRatios log_ratios(const PairLogProbs& p) {
  LogRatios out;
  out.chosen = p.chosen - p.reference_chosen.detach();
  out.rejected = p.rejected - p.reference_rejected.detach();
  out.h = out.chosen - out.rejected;
  return out;
}

/// h = score(u_w) − score(u_l) for `divergence`; throws when a score is not finite (e^(−u) overflowed).
[[nodiscard]] inline torch::Tensor divergence_scores_checked(const char* fn, const torch::Tensor& u,
                                                            const FDivergenceOptions& divergence) {
  torch::Tensor s = f_divergence_score(u, divergence);
  if (divergence.kind != FDivergence::reverse_kl && !torch::isfinite(s.detach()).all().item<bool>()) {
    fail(fn, ": the f-divergence score of a log-ratio is not finite (", s.detach().abs().max().item<double>(),
         "); the log-ratios are too large for this divergence");
  }
  return s;
}
[[nodiscard]] inline torch::Tensor divergence_margin(const char* fn, const LogRatios& r,
                                                     const FDivergenceOptions& divergence) {
  if (divergence.kind == FDivergence::reverse_kl) return r.h;
  return divergence_scores_checked(fn, r.chosen, divergence) - divergence_scores_checked(fn, r.rejected, divergence);
}

}  // namespace detail

/// DPO / cDPO loss over N pairs (see the header formula). Needs policy and reference log-probs [N].
/// Throws kaizen::Error when chosen/rejected counts differ, a log-prob is missing or non-finite,
/// beta <= 0, or label_smoothing is outside [0, 0.5].
[[nodiscard]] inline PreferenceLoss dpo_loss(const PairLogProbs& pairs, const DpoOptions& options = {}) {
  detail::check_beta("dpo_loss", options.beta);
  const double eps = options.label_smoothing;
  KAIZEN_CHECK(eps >= 0.0 && eps <= 0.5, "dpo_loss: expected label_smoothing in [0, 0.5], got ", eps);
  detail::check_pairs("dpo_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/false);
  detail::check_divergence("dpo_loss", options.divergence);
  const auto r = detail::log_ratios(pairs);
  const torch::Tensor h = detail::divergence_margin("dpo_loss", r, options.divergence);
  const torch::Tensor z = options.beta * h;
  torch::Tensor per_pair = -torch::log_sigmoid(z);
  if (eps > 0.0) per_pair = (1.0 - eps) * per_pair - eps * torch::log_sigmoid(-z);
  return detail::paired_result(per_pair, options.beta * r.chosen, options.beta * r.rejected);
}

/// Sigmoid-norm DPO over N pairs: −log σ(β (score(u_w)/|y_w| − score(u_l)/|y_l|)). Needs policy and
/// reference log-probs and the lengths [N]. Implicit rewards β·u. Throws like dpo_loss, and when a
/// length is missing or <= 0.
[[nodiscard]] inline PreferenceLoss dpo_norm_loss(const PairLogProbs& pairs, const DpoNormOptions& options = {}) {
  detail::check_beta("dpo_norm_loss", options.beta);
  detail::check_divergence("dpo_norm_loss", options.divergence);
  detail::check_pairs("dpo_norm_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/true);
  const auto r = detail::log_ratios(pairs);
  const torch::Tensor sw = detail::divergence_scores_checked("dpo_norm_loss", r.chosen, options.divergence);
  const torch::Tensor sl = detail::divergence_scores_checked("dpo_norm_loss", r.rejected, options.divergence);
  const torch::Tensor h = sw / pairs.chosen_lengths.to(sw.scalar_type()) - sl / pairs.rejected_lengths.to(sl.scalar_type());
  const torch::Tensor per_pair = -torch::log_sigmoid(options.beta * h);
  return detail::paired_result(per_pair, options.beta * r.chosen, options.beta * r.rejected);
}

/// Robust DPO loss over N pairs (see the header formula); ε = 0 equals DPO.
/// Throws like dpo_loss, and unless label_smoothing is in [0, 0.5).
[[nodiscard]] inline PreferenceLoss robust_dpo_loss(const PairLogProbs& pairs, const RobustDpoOptions& options = {}) {
  detail::check_beta("robust_dpo_loss", options.beta);
  const double eps = options.label_smoothing;
  KAIZEN_CHECK(eps >= 0.0 && eps < 0.5, "robust_dpo_loss: expected label_smoothing in [0, 0.5), got ", eps);
  detail::check_pairs("robust_dpo_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/false);
  const auto r = detail::log_ratios(pairs);
  const torch::Tensor z = options.beta * r.h;
  const torch::Tensor per_pair =
      (-(1.0 - eps) * torch::log_sigmoid(z) + eps * torch::log_sigmoid(-z)) / (1.0 - 2.0 * eps);
  return detail::paired_result(per_pair, options.beta * r.chosen, options.beta * r.rejected);
}

}  // namespace kaizen::preference
