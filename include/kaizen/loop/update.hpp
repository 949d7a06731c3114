// kaizen/loop/update.hpp - the update stages loops compose (the DPO step lives in loop/iterative_dpo.hpp):
//
//   sft_loss:  L(θ) = − Σ_b Σ_t m_bt log π_θ(y_bt | x_b, y_b,<t) / Σ_b Σ_t m_bt   (token mean, m = completion mask)
// Token log-probs come from loop::policy_logprobs (loop/batch.hpp): the fused linear + log-prob path for a
// HiddenStatePolicy, so the [B, T, V] logits are never materialised there.
//   sft_step:  collate a list of rollouts (prompt → target completion), one AdamW update on sft_loss
//   policy_gradient_update: for each epoch, the groups in an order shuffled by the loop's engine, cut into
//              mini-batches of `minibatch_groups` groups (0 = all); per mini-batch the policy_gradient
//              loss on log π_θ, log π_old, log π_ref, A and the completion mask; one update per mini-batch.
//              Returns the mean of the per-update metrics.
//              Gradient accumulation (micro_batch_groups > 0): each mini-batch is cut into micro-batches of
//              that many groups, run forward and backward one at a time, gradients summed, then one clip
//              and one step. Every micro-batch's loss divides by the mini-batch's normaliser
//              N = Σ_micro loss_normaliser(aggregation, mask) (tokens for token-mean, rows otherwise), so
//              Σ_micro L_micro = L_minibatch under every aggregation mode and the gradients are the
//              mini-batch's (policy_gradient/aggregation.hpp). Reported metrics: loss = Σ_micro L_micro;
//              kl, entropy, clip fraction = token-weighted means over the micro-batches.
//              Precision::bf16: each forward runs through Bf16Compute (loop/precision.hpp): bf16 autocast
//              compute, fp32 master weights, fp32 gradients and AdamW state, no loss scaling.
//
// References: Shao et al. 2024, "DeepSeekMath" (GRPO, arXiv 2402.03300); Schulman et al. 2017, "Proximal
// Policy Optimization" (epochs over mini-batches of one rollout batch, arXiv 1707.06347).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/precision.hpp>
#include <kaizen/policy_gradient/aggregation.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/torch/logit_transform.hpp>
#include <kaizen/torch/policy_logprobs.hpp>

namespace kaizen::loop {

/// Token-mean negative log-likelihood of the completions of `batch` under `policy` (with gradient).
template <Policy P>
[[nodiscard]] torch::Tensor sft_loss(P& policy, const TokenBatch& batch) {
  const torch::Tensor logprobs = loop::policy_logprobs(policy, batch);
  const torch::Tensor mask = batch.completion_mask.to(logprobs.scalar_type());
  return -(logprobs * mask).sum() / mask.sum();
}

/// What one SFT update did.
struct SftStepResult {
  double loss = 0.0;    ///< sft_loss before the update
  double tokens = 0.0;  ///< target tokens in the batch
  double grad_norm = 0.0;
};

/// One SFT update on `examples` (prompt tokens → completion tokens; rewards and log-probs ignored).
/// Throws kaizen::Error on an empty example list and for everything collate rejects.
template <Policy P>
SftStepResult sft_step(P& policy, torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& params,
                       std::vector<Rollout> examples, const CollateOptions& collate_options, double max_grad_norm) {
  KAIZEN_CHECK(!examples.empty(), "sft_step: expected at least one example");
  for (std::size_t i = 0; i < examples.size(); ++i) {
    examples[i].completion.logprobs.clear();
    examples[i].reward = 0.0;
    examples[i].group = static_cast<std::int64_t>(i);
  }
  const TokenBatch tb = collate(std::span<const Rollout>(examples), collate_options);
  const torch::Tensor loss = sft_loss(policy, tb);
  SftStepResult out;
  out.loss = loss.item<double>();
  out.tokens = tb.completion_mask.sum().item<double>();
  out.grad_norm = apply_update(optimizer, params, loss, max_grad_norm);
  return out;
}

/// Means over the updates of one policy_gradient_update call.
struct PolicyGradientStats {
  double loss = 0.0, kl = 0.0, clip_fraction = 0.0, entropy = 0.0, grad_norm = 0.0;
  std::int64_t updates = 0;

  /// Writes loss, kl, clip_fraction, entropy, grad_norm, updates into `metrics`.
  void write_to(nlohmann::json& metrics) const {
    metrics["loss"] = loss;
    metrics["kl"] = kl;
    metrics["clip_fraction"] = clip_fraction;
    metrics["entropy"] = entropy;
    metrics["grad_norm"] = grad_norm;
    metrics["updates"] = updates;
  }
};

struct PolicyGradientUpdateOptions {
  std::int64_t group_size = 8;        ///< rows per group; the batch holds groups prompt-major, >= 1
  std::int64_t epochs = 1;            ///< > 0
  std::int64_t minibatch_groups = 0;  ///< groups per update, 0 = all
  double max_grad_norm = 1.0;         ///< <= 0 = no clip
  std::int64_t micro_batch_groups = 0;  ///< groups per forward/backward inside one update (gradient
                                        ///< accumulation), >= 0; 0 = the whole mini-batch at once
  Precision precision = Precision::fp32;  ///< compute precision of the forward/backward (masters stay fp32)
};

/// Epochs of shuffled group mini-batches of the policy-gradient loss (see the top of the file).
/// `old_logprobs`, `ref_logprobs` (undefined = no KL term) and `advantages` are per row of `batch`.
/// Engine draws: one Fisher-Yates shuffle of the groups per epoch.
template <Policy P, class Ratio, class Clip, class Kl, class Aggregate>
PolicyGradientStats policy_gradient_update(P& policy, torch::optim::Optimizer& optimizer,
                                           const std::vector<torch::Tensor>& params, const TokenBatch& batch,
                                           const torch::Tensor& old_logprobs, const torch::Tensor& ref_logprobs,
                                           const torch::Tensor& advantages, const lm::LogitTransform& transform,
                                           const policy_gradient::Objective<Ratio, Clip, Kl, Aggregate>& objective,
                                           const PolicyGradientUpdateOptions& options, Rng& rng) {
  KAIZEN_CHECK(options.group_size >= 1, "policy_gradient_update: group_size must be >= 1, got ", options.group_size);
  KAIZEN_CHECK(options.epochs > 0, "policy_gradient_update: epochs must be > 0, got ", options.epochs);
  KAIZEN_CHECK(options.minibatch_groups >= 0, "policy_gradient_update: minibatch_groups must be >= 0 (0 = all), got ",
               options.minibatch_groups);
  KAIZEN_CHECK(options.micro_batch_groups >= 0,
               "policy_gradient_update: micro_batch_groups must be >= 0 (0 = the whole mini-batch), got ",
               options.micro_batch_groups);
  KAIZEN_CHECK(batch.batch_size() % options.group_size == 0, "policy_gradient_update: the batch has ",
               batch.batch_size(), " rows, not a multiple of group_size ", options.group_size);
  const std::int64_t groups = batch.batch_size() / options.group_size;
  const std::int64_t per_batch = options.minibatch_groups > 0 ? std::min(options.minibatch_groups, groups) : groups;
  Bf16Compute<P> bf16{&policy};
  auto logprobs_of = [&](const TokenBatch& b) {
    return options.precision == Precision::bf16 ? loop::policy_logprobs(bf16, b, transform)
                                                : loop::policy_logprobs(policy, b, transform);
  };
  PolicyGradientStats stats;
  for (std::int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(groups));
    for (std::int64_t g = 0; g < groups; ++g) order[static_cast<std::size_t>(g)] = g;
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[uniform_index(rng, i)]);
    for (std::int64_t start = 0; start < groups; start += per_batch) {
      std::vector<std::int64_t> rows;
      for (std::int64_t g = start; g < std::min(groups, start + per_batch); ++g)
        for (std::int64_t i = 0; i < options.group_size; ++i)
          rows.push_back(order[static_cast<std::size_t>(g)] * options.group_size + i);
      const torch::Tensor index = torch::tensor(rows, torch::kLong);
      const std::int64_t mb_groups = static_cast<std::int64_t>(rows.size()) / options.group_size;
      const std::int64_t per_micro =
          options.micro_batch_groups > 0 ? std::min(options.micro_batch_groups, mb_groups) : mb_groups;
      auto micro_loss = [&](const torch::Tensor& micro_index, std::optional<double> normaliser) {
        const TokenBatch mb = select_rows(batch, micro_index);
        const torch::Tensor idx = micro_index.to(old_logprobs.device());
        return policy_gradient::policy_loss(
            logprobs_of(mb), old_logprobs.index_select(0, idx),
            ref_logprobs.defined() ? ref_logprobs.index_select(0, idx) : torch::Tensor(),
            advantages.index_select(0, idx), mb.completion_mask, objective, normaliser);
      };
      if (per_micro == mb_groups) {  // one forward/backward for the mini-batch
        const auto out = micro_loss(index, std::nullopt);
        stats.grad_norm += apply_update(optimizer, params, out.loss, options.max_grad_norm);
        stats.loss += out.metrics.loss;
        stats.kl += out.metrics.kl;
        stats.clip_fraction += out.metrics.clip_fraction_low + out.metrics.clip_fraction_high;
        stats.entropy += out.metrics.entropy;
      } else {  // gradient accumulation over micro-batches, divided by the mini-batch's normaliser
        const double normaliser =
            policy_gradient::loss_normaliser(objective.aggregation, select_rows(batch, index).completion_mask);
        optimizer.zero_grad();
        double loss = 0.0, kl = 0.0, clip = 0.0, entropy = 0.0, tokens = 0.0;
        for (std::int64_t g = 0; g < mb_groups; g += per_micro) {
          const std::int64_t n = std::min(per_micro, mb_groups - g) * options.group_size;
          const auto out = micro_loss(index.narrow(0, g * options.group_size, n), normaliser);
          out.loss.backward();
          const double w = out.metrics.tokens;
          loss += out.metrics.loss;
          kl += w * out.metrics.kl;
          clip += w * (out.metrics.clip_fraction_low + out.metrics.clip_fraction_high);
          entropy += w * out.metrics.entropy;
          tokens += w;
        }
        double grad_norm = 0.0;
        if (options.max_grad_norm > 0.0) grad_norm = torch::nn::utils::clip_grad_norm_(params, options.max_grad_norm);
        optimizer.step();
        stats.grad_norm += grad_norm;
        stats.loss += loss;
        stats.kl += kl / tokens;
        stats.clip_fraction += clip / tokens;
        stats.entropy += entropy / tokens;
      }
      ++stats.updates;
    }
  }
  if (stats.updates > 0) {
    const auto n = static_cast<double>(stats.updates);
    stats.loss /= n;
    stats.kl /= n;
    stats.clip_fraction /= n;
    stats.entropy /= n;
    stats.grad_norm /= n;
  }
  return stats;
}

}  // namespace kaizen::loop
