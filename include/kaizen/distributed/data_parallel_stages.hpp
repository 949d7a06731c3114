// kaizen/distributed/data_parallel_stages.hpp - the loop stages (loop/rollout.hpp, loop/batch.hpp,
// loop/update.hpp) in data-parallel form, over a Communicator; each takes `Communicator* comm` first and, when it
// is null, is exactly the single-process stage.
//
// Every rank runs the same loop with the same engine (same seed, same draws), so the ranks agree on every
// prompt, shuffle and mini-batch without sending them. What is split and what is sent:
//   rollout_step     the round's groups g = 0..n-1 are split into contiguous blocks by rank (shard_range); a
//                    rank samples and scores only its groups, each group in its own sampler call seeded with
//                    group_seed(s, g) where s = rng() is the round's one draw (as the serial stage draws it);
//                    then every rank all-gathers every group's completions and rewards (CBOR), and all apply
//                    the same dynamic-sampling filter. Because a group's completions depend only on (s, g) and
//                    the policy, the rollouts do not depend on the number of ranks: group advantages and
//                    curriculum gains equal the one-rank values exactly.
//   frozen_logprobs  rows split by rank, each rank scores its rows, all-gathered (log π_old, log π_ref)
//   policy_gradient_update  the serial stage's epochs and shuffled mini-batches; each mini-batch's groups are
//                    split by rank; the loss normaliser N of the whole mini-batch is all-reduced
//                    (policy_gradient::loss_normaliser summed over ranks), each rank's loss uses it, and the
//                    gradients are summed over ranks in buckets (GradientBuckets, each bucket's all-reduce started
//                    by a hook as soon as backward has filled it) before the global-norm clip
//                    and the step, so each update equals the one-process update up to floating-point summation
//                    order. Metrics: the loss is summed over ranks (each part is already divided by the global
//                    N); kl, entropy and clip fraction are token-weighted means over ranks. In debug builds
//                    (KAIZEN_DEBUG or !NDEBUG) every update ends with check_same_parameters.
// With one rank (SingleProcess) these stages still seed each group on its own, so a one-process run with a
// communicator is the reference an N-rank run reproduces; without a communicator the loops keep their serial
// stages (one sampler call for the whole step) and their results do not change.
//
// Parameters without a gradient on a rank contribute zeros and, after the sum, receive a (possibly zero)
// gradient; the serial stage leaves such a gradient undefined, which AdamW skips.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/distributed/communicator.hpp>
#include <kaizen/distributed/data_parallel.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/prompts.hpp>
#include <kaizen/loop/rollout.hpp>
#include <kaizen/loop/update.hpp>
#include <kaizen/policy_gradient/aggregation.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/torch/logit_transform.hpp>
#include <kaizen/torch/policy_logprobs.hpp>

namespace kaizen::distributed {

/// The sampler seed of group `group` in a round whose engine draw was `round_seed` (SplitMix64 of the pair).
[[nodiscard]] constexpr std::uint64_t group_seed(std::uint64_t round_seed, std::uint64_t group) noexcept {
  std::uint64_t z = round_seed + 0x9E3779B97F4A7C15ULL * (group + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// loop::rollout_step over the ranks (see the top of the file); `comm` null: loop::rollout_step itself.
template <Sampler S, OutcomeReward R, loop::PromptSource Src, class C = loop::NoCurriculum>
[[nodiscard]] loop::StepRollouts rollout_step(Communicator* comm, S& sampler, R& reward, Src& source,
                                              const loop::RolloutOptions& options, const SamplingParams& params,
                                              Rng& rng, C* curriculum = nullptr) {
  if (comm == nullptr) return loop::rollout_step(sampler, reward, source, options, params, rng, curriculum);
  KAIZEN_CHECK(options.prompts > 0, "distributed::rollout_step: prompts must be > 0, got ", options.prompts);
  KAIZEN_CHECK(options.group_size >= 1, "distributed::rollout_step: group_size must be >= 1, got ", options.group_size);
  KAIZEN_CHECK(options.max_refill_rounds >= 0, "distributed::rollout_step: max_refill_rounds must be >= 0, got ",
               options.max_refill_rounds);
  loop::StepRollouts out;
  const auto G = static_cast<std::size_t>(options.group_size);
  std::int64_t needed = options.prompts;
  const std::int64_t rounds = options.dynamic_sampling ? options.max_refill_rounds : 0;
  for (std::int64_t round = 0; round <= rounds && needed > 0; ++round) {
    loop::DrawnPrompts drawn = loop::draw_prompts(source, needed, rng, curriculum);
    const std::uint64_t round_seed = rng();
    const ShardRange mine = shard_range(needed, comm->rank(), comm->world_size());
    nlohmann::json local = nlohmann::json::array();
    for (std::int64_t g = mine.begin; g < mine.end; ++g) {
      SamplingParams p = params;
      p.seed = group_seed(round_seed, static_cast<std::uint64_t>(g));
      const std::vector<Prompt> repeated =
          loop::repeat_prompts(std::span<const Prompt>(&drawn.prompts[static_cast<std::size_t>(g)], 1), options.group_size);
      const std::vector<Completion> completions = sampler.sample(std::span<const Prompt>(repeated), p);
      KAIZEN_CHECK(completions.size() == G, options.who, ": the sampler returned ", completions.size(),
                   " completions for ", G, " prompts");
      const std::vector<double> rewards =
          score(reward, std::span<const Prompt>(repeated), std::span<const Completion>(completions));
      nlohmann::json group = {{"c", nlohmann::json::array()}, {"r", rewards}};
      for (const Completion& c : completions) group["c"].push_back(to_json(c));
      local.push_back(std::move(group));
    }
    std::vector<std::vector<Completion>> completions;
    std::vector<std::vector<double>> rewards;
    for (const nlohmann::json& part : all_gather_json(*comm, local)) {
      for (const nlohmann::json& group : part) {
        std::vector<Completion> cs;
        for (const nlohmann::json& c : group.at("c")) cs.push_back(completion_from_json(c));
        completions.push_back(std::move(cs));
        rewards.push_back(group.at("r").get<std::vector<double>>());
      }
    }
    KAIZEN_CHECK(static_cast<std::int64_t>(completions.size()) == needed, options.who, ": gathered ",
                 completions.size(), " groups from ", comm->world_size(), " ranks, expected ", needed);
    out.sampled_groups += needed;
    for (std::size_t p = 0; p < drawn.prompts.size(); ++p) {
      for (std::size_t i = 0; i < G; ++i) {
        out.reward_sum += rewards[p][i];
        out.sampled_tokens += static_cast<std::int64_t>(completions[p][i].tokens.size());
      }
      if (options.dynamic_sampling && loop::is_constant(std::span<const double>(rewards[p]))) {
        ++out.dropped_groups;
        continue;
      }
      out.prompts.push_back(std::move(drawn.prompts[p]));
      out.arms.push_back(drawn.arms[p]);
      for (std::size_t i = 0; i < G; ++i) {
        out.completions.push_back(std::move(completions[p][i]));
        out.rewards.push_back(rewards[p][i]);
      }
      --needed;
      if (needed == 0) break;
    }
  }
  return out;
}

/// loop::frozen_logprobs with the rows split over the ranks and gathered; `comm` null: the serial stage.
template <Policy P>
[[nodiscard]] torch::Tensor frozen_logprobs(Communicator* comm, P& policy, const TokenBatch& batch,
                                            const lm::LogitTransform& transform = {}) {
  if (comm == nullptr) return loop::frozen_logprobs(policy, batch, transform);
  const ShardRange mine = shard_range(batch.batch_size(), comm->rank(), comm->world_size());
  torch::Tensor part;
  if (mine.size() > 0) {
    part = loop::frozen_logprobs(policy, loop::select_rows(batch, torch::arange(mine.begin, mine.end, torch::kLong)),
                                 transform);
  } else {
    const auto dtype = torch::promote_types(std::vector<torch::Tensor>(policy.parameters()).front().scalar_type(),
                                            torch::kFloat);
    part = torch::empty({0, batch.input_ids.size(1)}, torch::TensorOptions().dtype(dtype).device(batch.input_ids.device()));
  }
  return concat_gathered(*comm, part);
}

/// loop::policy_gradient_update over the ranks (see the top of the file); `comm` null: the serial stage.
template <Policy P, class Ratio, class Clip, class Kl, class Aggregate>
loop::PolicyGradientStats policy_gradient_update(Communicator* comm, P& policy, torch::optim::Optimizer& optimizer,
                                                 const std::vector<torch::Tensor>& params, const TokenBatch& batch,
                                                 const torch::Tensor& old_logprobs, const torch::Tensor& ref_logprobs,
                                                 const torch::Tensor& advantages, const lm::LogitTransform& transform,
                                                 const policy_gradient::Objective<Ratio, Clip, Kl, Aggregate>& objective,
                                                 const loop::PolicyGradientUpdateOptions& options, Rng& rng,
                                                 std::int64_t bucket_bytes = GradientBuckets::kDefaultBucketBytes) {
  if (comm == nullptr)
    return loop::policy_gradient_update(policy, optimizer, params, batch, old_logprobs, ref_logprobs, advantages,
                                        transform, objective, options, rng);
  const char* fn = "distributed::policy_gradient_update";
  KAIZEN_CHECK(options.group_size >= 1, fn, ": group_size must be >= 1, got ", options.group_size);
  KAIZEN_CHECK(options.epochs > 0, fn, ": epochs must be > 0, got ", options.epochs);
  KAIZEN_CHECK(options.minibatch_groups >= 0, fn, ": minibatch_groups must be >= 0 (0 = all), got ",
               options.minibatch_groups);
  KAIZEN_CHECK(batch.batch_size() % options.group_size == 0, fn, ": the batch has ", batch.batch_size(),
               " rows, not a multiple of group_size ", options.group_size);
  const std::int64_t groups = batch.batch_size() / options.group_size;
  const std::int64_t per_batch = options.minibatch_groups > 0 ? std::min(options.minibatch_groups, groups) : groups;
  GradientBuckets buckets(*comm, params, bucket_bytes);
  loop::PolicyGradientStats stats;
  for (std::int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    // The serial stage's shuffle, drawn identically on every rank.
    std::vector<std::int64_t> order(static_cast<std::size_t>(groups));
    for (std::int64_t g = 0; g < groups; ++g) order[static_cast<std::size_t>(g)] = g;
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[uniform_index(rng, i)]);
    for (std::int64_t start = 0; start < groups; start += per_batch) {
      const std::int64_t count = std::min(groups, start + per_batch) - start;
      const ShardRange mine = shard_range(count, comm->rank(), comm->world_size());
      std::vector<std::int64_t> rows;
      for (std::int64_t g = start + mine.begin; g < start + mine.end; ++g)
        for (std::int64_t i = 0; i < options.group_size; ++i)
          rows.push_back(order[static_cast<std::size_t>(g)] * options.group_size + i);
      TokenBatch mb;
      torch::Tensor idx;
      double n_local = 0.0;
      if (!rows.empty()) {
        const torch::Tensor index = torch::tensor(rows, torch::kLong);
        mb = loop::select_rows(batch, index);
        idx = index.to(old_logprobs.device());
        n_local = policy_gradient::loss_normaliser(objective.aggregation, mb.completion_mask);
      }
      const double n = comm->all_reduce(n_local, ReduceOp::sum);
      optimizer.zero_grad();
      buckets.arm(ReduceOp::sum);  // the gradients are summed in buckets while backward runs
      policy_gradient::PolicyLossMetrics m{};
      if (!rows.empty()) {
        const torch::Tensor logprobs = loop::policy_logprobs(policy, mb, transform);
        const auto out = policy_gradient::policy_loss(
            logprobs, old_logprobs.index_select(0, idx),
            ref_logprobs.defined() ? ref_logprobs.index_select(0, idx) : torch::Tensor(),
            advantages.index_select(0, idx), mb.completion_mask, objective, n);
        out.loss.backward();
        m = out.metrics;
      }
      buckets.finish();
      double grad_norm = 0.0;
      if (options.max_grad_norm > 0.0) grad_norm = torch::nn::utils::clip_grad_norm_(params, options.max_grad_norm);
      optimizer.step();
#if defined(KAIZEN_DEBUG) || !defined(NDEBUG)
      check_same_parameters(*comm, params, fn);
#endif
      // Loss parts add up (each is divided by the global N); the rest are token-weighted means.
      torch::Tensor sums = torch::tensor({m.loss, m.kl * m.tokens, m.entropy * m.tokens,
                                          (m.clip_fraction_low + m.clip_fraction_high) * m.tokens, m.tokens},
                                         torch::kDouble);
      comm->all_reduce(sums, ReduceOp::sum);
      const auto s = sums.accessor<double, 1>();
      const double tokens = s[4] > 0 ? s[4] : 1.0;
      stats.loss += s[0];
      stats.kl += s[1] / tokens;
      stats.entropy += s[2] / tokens;
      stats.clip_fraction += s[3] / tokens;
      stats.grad_norm += grad_norm;
      ++stats.updates;
    }
  }
  if (stats.updates > 0) {
    const auto k = static_cast<double>(stats.updates);
    stats.loss /= k;
    stats.kl /= k;
    stats.clip_fraction /= k;
    stats.entropy /= k;
    stats.grad_norm /= k;
  }
  return stats;
}

}  // namespace kaizen::distributed
