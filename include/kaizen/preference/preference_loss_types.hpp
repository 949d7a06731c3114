// kaizen/preference/preference_loss_types.hpp - what the preference losses take and return: PairLogProbs,
// UnpairedLogProbs, the NLL options of RPO / CPO / ORPO, PreferenceMetrics and PreferenceLoss (the rules are in
// preference_loss.hpp).
//
// Kept apart from the losses so that code which only passes these values around (the precompiled runtime entry
// kaizen/objectives/runtime.hpp) includes the tensor type alone (<ATen/core/Tensor.h>) instead of every LibTorch
// operator. torch::Tensor and at::Tensor are the same type.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace kaizen::preference {

/// Sequence log-probs of N preference pairs. Every defined tensor is [N], floating point, on one device.
struct PairLogProbs {
  at::Tensor chosen;              ///< log π_θ(y_w|x), usually a sum over tokens; differentiable
  at::Tensor rejected;            ///< log π_θ(y_l|x)
  at::Tensor reference_chosen;    ///< log π_ref(y_w|x); undefined when there is no reference
  at::Tensor reference_rejected;  ///< log π_ref(y_l|x)
  at::Tensor chosen_lengths;      ///< |y_w| in tokens (> 0); needed by SimPO, ORPO, CPO, RPO, IPO(mean)
  at::Tensor rejected_lengths;    ///< |y_l| in tokens (> 0)
};

/// Sequence log-probs of M unpaired examples, each labelled desirable or undesirable (KTO, BCO).
struct UnpairedLogProbs {
  at::Tensor policy;     ///< [M] log π_θ(y|x), differentiable
  at::Tensor reference;  ///< [M] log π_ref(y|x) (detached by the losses)
  at::Tensor desirable;  ///< [M] bool: true for a desirable (thumbs-up) example
};

/// How the NLL term of RPO, CPO and ORPO averages the chosen responses' token log-probs.
///   per_sequence   NLL_i = −log π_θ(y_w,i) / |y_w,i|, L averages NLL_i over pairs (the papers' form)
///   batch_tokens   NLL = −Σ_i log π_θ(y_w,i) / Σ_i |y_w,i|: one mean over every chosen token of the batch
///                  (TRL 1.16: DPO "sft" term of RPO, CPO's and ORPO's cross-entropy; Liger-Kernel 0.8.5's
///                  fused CPO/ORPO/DPO NLL). Long responses weigh more. per_example then holds
///                  −log π_θ(y_w,i) · N / Σ_j |y_w,j|, whose mean is that NLL, so chunked sums stay exact only
///                  when every chunk sees the whole batch's token count (pass it in `nll_tokens`).
enum class NllNormalisation : std::uint8_t { per_sequence, batch_tokens };

/// The NLL term of RPO, CPO and ORPO.
struct NllOptions {
  NllNormalisation normalisation = NllNormalisation::per_sequence;
  /// batch_tokens only: Σ |y_w| over the whole batch (all chunks / ranks); 0 uses this call's own sum.
  double nll_tokens = 0.0;
};

/// Summary metrics; 0-dim detached tensors (call .item<double>() to log). Undefined when not applicable.
struct PreferenceMetrics {
  at::Tensor chosen_reward;    ///< mean implicit reward of the chosen (desirable) examples
  at::Tensor rejected_reward;  ///< mean implicit reward of the rejected (undesirable) examples
  at::Tensor margin;           ///< paired: mean(r_w − r_l); unpaired: chosen_reward − rejected_reward
  at::Tensor accuracy;         ///< paired: fraction with r_w > r_l; unpaired: fraction on the right side of the baseline
  at::Tensor nll;              ///< ORPO, CPO, RPO: mean length-normalised NLL of y_w
  at::Tensor log_odds_ratio;   ///< ORPO: mean log odds ratio
  at::Tensor baseline;         ///< KTO: the KL baseline z0; BCO: the reward shift δ
};

/// A preference loss and what it measured.
struct PreferenceLoss {
  at::Tensor loss;              ///< 0-dim, differentiable: per_example.mean()
  at::Tensor per_example;       ///< [N] per pair (KTO, BCO: [M] per example), differentiable
  at::Tensor chosen_rewards;    ///< [N] implicit rewards of y_w (KTO, BCO: of desirable examples), detached
  at::Tensor rejected_rewards;  ///< [N] implicit rewards of y_l (KTO, BCO: of undesirable examples), detached
  PreferenceMetrics metrics;
};

}  // namespace kaizen::preference
