// kaizen/policy_gradient/policy_loss_types.hpp - what policy_loss takes and returns: PolicyLossInputs,
// PolicyLossMetrics, PolicyLossResult.
//
// Kept apart from policy_loss.hpp so that code which only passes these values around (the precompiled runtime
// entry kaizen/objectives/runtime.hpp, a trainer's interfaces) includes the tensor type alone
// (<ATen/core/Tensor.h>) instead of every LibTorch operator and kaizen's objective templates. torch::Tensor
// and at::Tensor are the same type.
#pragma once

#include <ATen/core/Tensor.h>

namespace kaizen::policy_gradient {

/// Per-token inputs of policy_loss. All [B, T] float32 or float64 of one dtype and device, aligned
/// with `mask` (the TokenBatch layout: column t holds the log-prob of token t).
struct PolicyLossInputs {
  at::Tensor logprobs;          ///< log π_θ(y_t), carries the gradient
  at::Tensor old_logprobs;      ///< log π_old(y_t) (the trainer's, at sampling time); constant
  at::Tensor ref_logprobs;      ///< log π_ref(y_t); may be undefined when the KL option is none
  at::Tensor advantages;        ///< [B, T] per token or [B] per sequence; constant
  at::Tensor mask;              ///< bool or float weights; every row needs a valid token
  at::Tensor entropy = {};      ///< H_t, needed when entropy_coefficient != 0 (may carry a gradient)
  at::Tensor sampler_logprobs = {};  ///< the sampler's log-probs, needed when importance.action != none
  /// Optional multiplier of the policy term −w·obj only, [B, T] or [B] (one per sequence), bool or float,
  /// constant: the off-policy sequence mask and the high-entropy token mask (token_masks.hpp). The KL and
  /// entropy terms and the aggregation's normaliser N are unchanged, as in TRL 1.16's GRPOTrainer.
  /// policy_loss only (the fused objective rejects it).
  at::Tensor policy_token_mask = {};
};

/// Scalars describing one policy_loss call (this batch only; averages over its valid tokens).
struct PolicyLossMetrics {
  double loss = 0;                ///< the returned loss
  double policy_loss = 0;         ///< the aggregated −w·obj part
  double kl = 0;                  ///< mean KL_t of the chosen estimator (0 when none)
  double entropy = 0;             ///< mean H_t if given, else mean −log π_θ (a one-sample estimate)
  double clip_fraction_low = 0;   ///< fraction of tokens the lower bound caught (clip.hpp)
  double clip_fraction_high = 0;  ///< fraction the upper bound caught
  double clip_fraction_dual = 0;  ///< fraction the dual-clip bound caught
  double ratio_mean = 0;          ///< mean r_t
  double ratio_max = 0;           ///< max r_t
  double importance_weight_mean = 1;  ///< mean truncated-IS weight (1 when off)
  double tokens = 0;              ///< Σ m (valid tokens, or total weight for a float mask)
  double sequences = 0;           ///< B
};

/// A scalar loss (to minimise) and its metrics.
struct PolicyLossResult {
  at::Tensor loss;
  PolicyLossMetrics metrics;
};

}  // namespace kaizen::policy_gradient
