// kaizen/loop/batch.hpp - the collate-side stage every loop shares: row selection of a TokenBatch
// (mini-batches), and frozen log-probs (log π_old of the policy that sampled, log π_ref of a reference
// policy) computed without gradient under the sampling transform.
#pragma once

#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/torch/logit_transform.hpp>
#include <kaizen/torch/policy_logprobs.hpp>

namespace kaizen::loop {

/// The rows `index` [K] int64 of every per-row tensor of `batch` (undefined tensors stay undefined).
[[nodiscard]] inline TokenBatch select_rows(const TokenBatch& batch, const torch::Tensor& index) {
  TokenBatch out = batch;
  for (torch::Tensor* t : {&out.input_ids, &out.attention_mask, &out.prompt_mask, &out.completion_mask,
                           &out.position_ids, &out.old_logprobs, &out.rewards, &out.group_ids, &out.prompt_lengths,
                           &out.completion_lengths, &out.truncated}) {
    if (t->defined()) *t = t->index_select(0, index.to(t->device()));
  }
  return out;
}

/// log π(y_t | ...) [B, T] of `policy` on `batch` under `transform`, without gradient (old or reference
/// log-probs).
template <Policy P>
[[nodiscard]] torch::Tensor frozen_logprobs(P& policy, const TokenBatch& batch, const lm::LogitTransform& transform = {}) {
  torch::NoGradGuard no_grad;
  return lm::policy_logprobs(policy, batch, transform);
}

}  // namespace kaizen::loop
