// kaizen/loop/batch.hpp - the collate-side stage every loop shares: row selection of a TokenBatch
// (mini-batches), the loops' token log-probs (fused linear + log-prob path for a HiddenStatePolicy),
// and frozen log-probs (log π_old of the policy that sampled, log π_ref of a reference policy) computed
// without gradient under the sampling transform.
//
// policy_logprobs(policy, batch, transform): [B, T] log π̃(input_ids[b, t] | ...) on completion tokens,
// 0 elsewhere, exactly the layout and values of lm::policy_logprobs. When the policy models
// HiddenStatePolicy and the transform is temperature only (no top-k / top-p / min-p filter), the
// log-probs come from ops::fused_linear_logprobs(hidden, output_embedding, targets): only the completion
// positions are scored, chunked so the [N, V] logits never exist in full (forward and backward). With a
// filter, or for a plain Policy, the [B, T, V] logits path of lm::policy_logprobs is taken. LogitsOnly<P>
// wraps a policy to force the logits path (tests, benchmarks, peers that need the logits).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include <kaizen/config.hpp>
#include <kaizen/core/collate.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/torch/logit_transform.hpp>
#include <kaizen/torch/ops.hpp>
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

/// A plain Policy view of `P` (logits and parameters only), so the loops take the logits path.
template <Policy P>
struct LogitsOnly {
  P* policy;
  [[nodiscard]] torch::Tensor logits(const TokenBatch& batch) { return policy->logits(batch); }
  [[nodiscard]] std::vector<torch::Tensor> parameters() { return policy->parameters(); }
};

/// Token log-probs of the completion tokens of `batch` from the hidden states of a HiddenStatePolicy,
/// through the fused linear + log-prob op (temperature `temperature`). Same layout as lm::policy_logprobs.
/// Throws kaizen::Error when the hidden states are not [B, T, H] or the output embedding is not [V, H].
template <HiddenStatePolicy P>
[[nodiscard]] torch::Tensor fused_policy_logprobs(P& policy, const TokenBatch& batch, double temperature = 1.0) {
  constexpr std::string_view fn = "fused_policy_logprobs";
  const std::int64_t B = batch.batch_size(), T = batch.length();
  KAIZEN_CHECK(T >= 2, fn, ": the batch needs at least 2 columns, got ", T);
  const torch::Tensor hidden = policy.hidden_states(batch);
  const torch::Tensor weight = policy.output_embedding();
  KAIZEN_CHECK(hidden.dim() == 3 && hidden.size(0) == B && hidden.size(1) == T, fn, ": expected hidden states [", B,
               ", ", T, ", H] for the batch, got ", hidden.sizes());
  KAIZEN_CHECK(weight.dim() == 2 && weight.size(1) == hidden.size(2), fn, ": expected the output embedding [V, ",
               hidden.size(2), "], got ", weight.sizes());
  const std::int64_t H = hidden.size(2);
  // Position t >= 1 is scored from the hidden state at t − 1; only completion positions are computed.
  const torch::Tensor scored = batch.completion_mask.narrow(1, 1, T - 1).reshape({-1}).to(hidden.device());
  const torch::Tensor rows = scored.nonzero().reshape({-1});
  const torch::Tensor h = hidden.narrow(1, 0, T - 1).reshape({-1, H}).index_select(0, rows);
  const torch::Tensor y = batch.input_ids.narrow(1, 1, T - 1).reshape({-1}).to(hidden.device()).index_select(0, rows);
  torch::Tensor lp;
  if (hidden.is_cuda() && !kWithCudaKernels) {  // no kernels for CUDA tensors: the same values from logits
    lp = torch::log_softmax(torch::matmul(h, weight.t()).to(torch::kFloat) / temperature, -1)
             .gather(1, y.unsqueeze(1))
             .squeeze(1);
  } else {
    lp = ops::fused_linear_logprobs(h, weight, y, {.temperature = temperature}).logprobs;
  }
  const torch::Tensor flat = torch::zeros({B * (T - 1)}, lp.options()).scatter(0, rows, lp);
  return torch::cat({torch::zeros({B, 1}, lp.options()), flat.view({B, T - 1})}, 1);
}

/// [B, T] log-probs of the completion tokens of `batch` under `policy` and `transform`, differentiable:
/// the fused path for a HiddenStatePolicy under a temperature-only transform, the logits path otherwise.
template <Policy P>
[[nodiscard]] torch::Tensor policy_logprobs(P& policy, const TokenBatch& batch, const lm::LogitTransform& transform = {}) {
  if constexpr (HiddenStatePolicy<P>) {
    if (!transform.filters()) return loop::fused_policy_logprobs(policy, batch, transform.temperature);
  }
  return lm::policy_logprobs(policy, batch, transform);
}

/// log π(y_t | ...) [B, T] of `policy` on `batch` under `transform`, without gradient (old or reference
/// log-probs); the fused path as policy_logprobs.
template <Policy P>
[[nodiscard]] torch::Tensor frozen_logprobs(P& policy, const TokenBatch& batch, const lm::LogitTransform& transform = {}) {
  torch::NoGradGuard no_grad;
  return loop::policy_logprobs(policy, batch, transform);
}

}  // namespace kaizen::loop
