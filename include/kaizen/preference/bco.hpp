// kaizen/preference/bco.hpp - Binary Classifier Optimisation (unpaired desirable / undesirable examples).
//
//   r(x,y) = β·(log π_θ(y|x) − log π_ref(y|x))
//   δ      = running mean of the batch-mean rewards seen so far (this batch included; no gradient)
//   L      = mean over examples of  −log σ(r − δ) if desirable,  −log σ(−(r − δ)) if undesirable
// The implicit reward is trained as the logit of a binary classifier (desirable vs undesirable); the
// shift δ centres it. δ lives in a BcoRewardShift the caller keeps across steps (and checkpoints).
// Accuracy counts desirable rewards above δ and undesirable ones below.
//
// Reference: Jung et al. 2024, "Binary Classifier Optimization for Large Language Model Alignment"
// (arXiv 2404.04656). Default β = 0.1 (TRL's BCOConfig). The running mean updates before the loss, as in
// TRL [memory]. The paper's optional density-ratio weighting of prompts (an extra classifier over
// prompt embeddings) is not part of this loss.
//
// Paired form (bco_pair_loss), for (y_w, y_l) pairs with r = β·(log π_θ − log π_ref):
//   L = −log σ(r_w − δ) − log σ(−(r_l − δ)),   δ = `shift` (default 0)
// Peers: TRL 1.16 DPOConfig loss_type "bco_pair" and Liger-Kernel 0.8.5 DPO "bco_pair" use δ = 0 (older TRL
// kept a running mean of the batch's rewards as δ; pass it as `shift` to reproduce that).
// π_θ = π_ref with δ = 0 gives 2 log 2.
#pragma once

#include <cmath>
#include <cstdint>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// The reward shift δ: a running mean of batch-mean rewards (each batch has weight 1).
struct BcoRewardShift {
  double mean = 0.0;       ///< δ
  std::int64_t count = 0;  ///< batches seen
  /// Folds one batch-mean reward into δ. Throws kaizen::Error if it is not finite.
  void update(double batch_mean) {
    KAIZEN_CHECK(std::isfinite(batch_mean), "BcoRewardShift::update: expected a finite batch-mean reward, got ",
                 batch_mean);
    ++count;
    mean += (batch_mean - mean) / static_cast<double>(count);
  }
};

/// Options of bco_loss.
struct BcoOptions {
  double beta = 0.1;  ///< > 0
};

/// BCO loss over M unpaired examples (see the header formula). Updates `shift` with this batch's mean
/// reward, then uses δ = shift.mean. Throws kaizen::Error when shapes or labels are wrong, a log-prob is
/// non-finite, or beta <= 0 (and then leaves `shift` unchanged).
[[nodiscard]] inline PreferenceLoss bco_loss(const UnpairedLogProbs& batch, BcoRewardShift& shift,
                                             const BcoOptions& options = {}) {
  detail::check_beta("bco_loss", options.beta);
  detail::check_unpaired("bco_loss", batch);
  const torch::Tensor rewards = options.beta * (batch.policy - batch.reference.detach());
  shift.update(rewards.detach().mean().item<double>());
  const torch::Tensor delta = torch::tensor(shift.mean, batch.policy.options());
  const torch::Tensor centred = rewards - delta;
  const torch::Tensor per_example =
      torch::where(batch.desirable, -torch::log_sigmoid(centred), -torch::log_sigmoid(-centred));
  return detail::unpaired_result(per_example, rewards, batch.desirable, delta);
}

/// Options of bco_pair_loss.
struct BcoPairOptions {
  double beta = 0.1;   ///< > 0
  double shift = 0.0;  ///< δ, finite (0 in TRL 1.16 and Liger 0.8.5)
};

/// BCO loss over N preference pairs (see the header formula). Needs policy and reference log-probs [N].
/// Throws kaizen::Error on bad pairs (as dpo_loss), beta <= 0 or a non-finite shift.
[[nodiscard]] inline PreferenceLoss bco_pair_loss(const PairLogProbs& pairs, const BcoPairOptions& options = {}) {
  detail::check_beta("bco_pair_loss", options.beta);
  KAIZEN_CHECK(std::isfinite(options.shift), "bco_pair_loss: expected a finite shift, got ", options.shift);
  detail::check_pairs("bco_pair_loss", pairs, /*needs_reference=*/true, /*needs_lengths=*/false);
  const torch::Tensor rw = options.beta * (pairs.chosen - pairs.reference_chosen.detach());
  const torch::Tensor rl = options.beta * (pairs.rejected - pairs.reference_rejected.detach());
  const torch::Tensor per_pair = -torch::log_sigmoid(rw - options.shift) - torch::log_sigmoid(-(rl - options.shift));
  return detail::paired_result(per_pair, rw, rl);
}

}  // namespace kaizen::preference
