// kaizen/torch/policy_logprobs.hpp - the trainer's per-token log-probs of a TokenBatch under a policy
// and the sampling transform, in the TokenBatch layout:
//   out[b, t] = log π̃(input_ids[b, t] | logits[b, t − 1])  on completion tokens (completion_mask),
//   out[b, t] = 0                                           elsewhere (column 0, prompt, padding),
// with π̃ the distribution of transformed_log_softmax (logit_transform.hpp); the scored token is
// always kept, so the value stays finite after updates move it out of the top-p set.
#pragma once

#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/torch/logit_transform.hpp>

namespace kaizen::lm {

/// [B, T] log-probs (float32; float64 when the policy's logits are float64) of the completion tokens
/// of `batch`, differentiable in the policy's parameters. Throws kaizen::Error when the logits are not
/// [B, T, V] for the batch's [B, T].
/// A TORCH_MODULE holder is not a Policy: pass the module it holds (`*net`).
template <TorchModuleHolder H, class... Rest>
torch::Tensor policy_logprobs(H&, Rest&&...) {
  static_assert(kaizen::detail::dependent_false<H>,
                "kaizen::lm::policy_logprobs: a TORCH_MODULE holder is not a kaizen::Policy; pass the module it "
                "holds: policy_logprobs(*net, batch)");
  return {};
}

template <Policy P>
[[nodiscard]] torch::Tensor policy_logprobs(P& policy, const TokenBatch& batch, const LogitTransform& transform = {}) {
  const torch::Tensor logits = policy.logits(batch);
  const std::int64_t B = batch.batch_size(), T = batch.length();
  KAIZEN_CHECK(logits.dim() == 3 && logits.size(0) == B && logits.size(1) == T,
               "policy_logprobs: expected logits [", B, ", ", T, ", V] for the batch, got ", logits.sizes());
  KAIZEN_CHECK(T >= 2, "policy_logprobs: the batch needs at least 2 columns, got ", T);
  const std::int64_t V = logits.size(2);
  const torch::Tensor targets = batch.input_ids.narrow(1, 1, T - 1).reshape({-1});
  const torch::Tensor logp =
      transformed_log_softmax(logits.narrow(1, 0, T - 1).reshape({-1, V}), transform, targets);
  const torch::Tensor picked = logp.gather(1, targets.unsqueeze(1)).view({B, T - 1});
  const torch::Tensor scored = torch::cat({torch::zeros({B, 1}, picked.options()), picked}, 1);
  return scored.masked_fill(batch.completion_mask.logical_not(), 0.0);
}

}  // namespace kaizen::lm
