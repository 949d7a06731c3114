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

}  // namespace kaizen::preference
