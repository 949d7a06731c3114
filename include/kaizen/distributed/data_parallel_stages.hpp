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
//   sample_groups / rollout_groups  (the grow phase of rejection-sampling loops) one engine draw s, the prompts
//                    split by rank, each prompt sampled in its own call seeded with group_seed(s, p), completions
//                    (and rewards) all-gathered in prompt order: independent of the number of ranks
//   frozen_logprobs  rows split by rank, each rank scores its rows, all-gathered (log π_old, log π_ref)
//   sft_update       one SFT step: the batch's rows split by rank, each row's NLL divided by the whole batch's
//                    target-token count, gradients summed in buckets (the token-mean gradient of the whole
//                    batch), loss summed over ranks
//   sharded_mean_update  one update of a loss that is a mean of per-example terms (the preference losses): the
//                    batch's examples split by rank, each rank's part divided by the global count, gradients
//                    summed in buckets, reported sums added over the ranks
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
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
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
#include <kaizen/loop/precision.hpp>
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

namespace detail {

struct NoReward {};

/// Samples (and, unless R is NoReward, scores) this rank's block of `prompts`, each prompt in its own sampler call seeded
/// with group_seed(round_seed, p), and all-gathers every prompt's completions and rewards, in prompt order.
template <Sampler S, class R>
void sharded_groups(Communicator& comm, S& sampler, R* reward, std::span<const Prompt> prompts, std::int64_t group_size,
                    const SamplingParams& params, std::uint64_t round_seed, std::string_view who,
                    std::vector<std::vector<Completion>>& completions, std::vector<std::vector<double>>& rewards) {
  (void)reward;  // unused when R is NoReward
  const auto G = static_cast<std::size_t>(group_size);
  const ShardRange mine = shard_range(static_cast<std::int64_t>(prompts.size()), comm.rank(), comm.world_size());
  nlohmann::json local = nlohmann::json::array();
  for (std::int64_t g = mine.begin; g < mine.end; ++g) {
    SamplingParams p = params;
    p.seed = group_seed(round_seed, static_cast<std::uint64_t>(g));
    const std::vector<Prompt> repeated = loop::repeat_prompts(prompts.subspan(static_cast<std::size_t>(g), 1), group_size);
    const std::vector<Completion> cs = sampler.sample(std::span<const Prompt>(repeated), p);
    KAIZEN_CHECK(cs.size() == G, who, ": the sampler returned ", cs.size(), " completions for ", G, " prompts");
    nlohmann::json group = {{"c", nlohmann::json::array()}};
    if constexpr (!std::is_same_v<R, NoReward>)
      group["r"] = score(*reward, std::span<const Prompt>(repeated), std::span<const Completion>(cs));
    for (const Completion& c : cs) group["c"].push_back(to_json(c));
    local.push_back(std::move(group));
  }
  completions.clear();
  rewards.clear();
  for (const nlohmann::json& part : all_gather_json(comm, local)) {
    for (const nlohmann::json& group : part) {
      std::vector<Completion> cs;
      for (const nlohmann::json& c : group.at("c")) cs.push_back(completion_from_json(c));
      completions.push_back(std::move(cs));
      if constexpr (!std::is_same_v<R, NoReward>) rewards.push_back(group.at("r").get<std::vector<double>>());
    }
  }
  KAIZEN_CHECK(completions.size() == prompts.size(), who, ": gathered ", completions.size(), " groups from ",
               comm.world_size(), " ranks, expected ", prompts.size());
}

}  // namespace detail

/// loop::sample_groups over the ranks: one engine draw s (as the serial stage), the prompts split by rank, each
/// prompt sampled in its own call seeded with group_seed(s, p), the completions all-gathered (prompt-major, as the
/// serial stage returns them), so the result does not depend on the number of ranks. `comm` null: the serial stage.
template <Sampler S>
[[nodiscard]] std::vector<Completion> sample_groups(Communicator* comm, S& sampler, std::span<const Prompt> prompts,
                                                    std::int64_t group_size, const SamplingParams& params, Rng& rng,
                                                    std::string_view who = "sample_groups") {
  if (comm == nullptr) return loop::sample_groups(sampler, prompts, group_size, params, rng, who);
  KAIZEN_CHECK(group_size >= 1, who, ": samples per prompt must be >= 1, got ", group_size);
  const std::uint64_t round_seed = rng();
  std::vector<std::vector<Completion>> groups;
  std::vector<std::vector<double>> unused;
  detail::sharded_groups<S, detail::NoReward>(*comm, sampler, nullptr, prompts, group_size, params, round_seed, who, groups, unused);
  std::vector<Completion> out;
  for (auto& g : groups)
    for (Completion& c : g) out.push_back(std::move(c));
  return out;
}

/// loop::rollout_groups over the ranks: as sample_groups above, each rank also scoring its own prompts' samples;
/// one Group per prompt, in order, on every rank. `comm` null: the serial stage.
template <Sampler S, OutcomeReward R>
[[nodiscard]] std::vector<Group> rollout_groups(Communicator* comm, S& sampler, R& reward, std::span<const Prompt> prompts,
                                                std::int64_t group_size, const SamplingParams& params, Rng& rng,
                                                std::string_view who = "rollout_groups") {
  if (comm == nullptr) return loop::rollout_groups(sampler, reward, prompts, group_size, params, rng, who);
  KAIZEN_CHECK(group_size >= 1, who, ": samples per prompt must be >= 1, got ", group_size);
  const std::uint64_t round_seed = rng();
  std::vector<std::vector<Completion>> completions;
  std::vector<std::vector<double>> rewards;
  detail::sharded_groups(*comm, sampler, &reward, prompts, group_size, params, round_seed, who, completions, rewards);
  std::vector<Group> out(prompts.size());
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    out[p].prompt = prompts[p];
    out[p].completions = std::move(completions[p]);
    out[p].rewards = std::move(rewards[p]);
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

/// One SFT update (loop::sft_loss, then clip and step) over the ranks. Every rank holds the whole collated `batch`
/// (the ranks draw the same examples); each back-propagates its contiguous block of rows (shard_range), every
/// row's negative log-likelihood divided by the WHOLE batch's target-token count, so the gradients summed over the
/// ranks (in `buckets`, overlapped with backward; a temporary set when null) are the one-process gradient of the
/// token mean. Returns the whole batch's loss, target tokens and grad norm, equal on every rank. `comm` null: the
/// serial update (loop::sft_loss and loop::apply_update), unchanged. Throws kaizen::Error on a batch without a
/// target token.
template <Policy P>
loop::SftStepResult sft_update(Communicator* comm, P& policy, torch::optim::Optimizer& optimizer,
                               const std::vector<torch::Tensor>& params, const TokenBatch& batch, double max_grad_norm,
                               GradientBuckets* buckets = nullptr) {
  loop::SftStepResult out;
  if (comm == nullptr) {
    const torch::Tensor loss = loop::sft_loss(policy, batch);
    out.loss = loss.item<double>();
    out.tokens = batch.completion_mask.sum().item<double>();
    out.grad_norm = loop::apply_update(optimizer, params, loss, max_grad_norm);
    return out;
  }
  out.tokens = batch.completion_mask.sum().item<double>();
  KAIZEN_CHECK(out.tokens > 0.0, "distributed::sft_update: the batch of ", batch.batch_size(),
               " rows has no target token (completion mask all zero)");
  std::unique_ptr<GradientBuckets> own;
  if (buckets == nullptr) {
    own = std::make_unique<GradientBuckets>(*comm, params);
    buckets = own.get();
  }
  const ShardRange mine = shard_range(batch.batch_size(), comm->rank(), comm->world_size());
  optimizer.zero_grad();
  buckets->arm(ReduceOp::sum);
  double local = 0.0;
  if (mine.size() > 0) {
    const TokenBatch part = loop::select_rows(batch, torch::arange(mine.begin, mine.end, torch::kLong));
    const torch::Tensor logprobs = loop::policy_logprobs(policy, part);
    const torch::Tensor mask = part.completion_mask.to(logprobs.scalar_type());
    const torch::Tensor loss = -(logprobs * mask).sum() / out.tokens;
    loss.backward();
    local = loss.item<double>();
  }
  buckets->finish();
  if (max_grad_norm > 0.0) out.grad_norm = torch::nn::utils::clip_grad_norm_(params, max_grad_norm);
  optimizer.step();
#if defined(KAIZEN_DEBUG) || !defined(NDEBUG)
  check_same_parameters(*comm, params, "distributed::sft_update");
#endif
  out.loss = comm->all_reduce(local, ReduceOp::sum);
  return out;
}

/// loop::sft_step over the ranks: the examples prepared and collated as the serial stage does (every rank holds
/// them all), then sft_update. `comm` null: loop::sft_step itself. Throws kaizen::Error on an empty example list.
template <Policy P>
loop::SftStepResult sft_step(Communicator* comm, P& policy, torch::optim::Optimizer& optimizer,
                             const std::vector<torch::Tensor>& params, std::vector<Rollout> examples,
                             const CollateOptions& collate_options, double max_grad_norm,
                             GradientBuckets* buckets = nullptr) {
  if (comm == nullptr) return loop::sft_step(policy, optimizer, params, std::move(examples), collate_options, max_grad_norm);
  KAIZEN_CHECK(!examples.empty(), "distributed::sft_step: expected at least one example");
  for (std::size_t i = 0; i < examples.size(); ++i) {
    examples[i].completion.logprobs.clear();
    examples[i].reward = 0.0;
    examples[i].group = static_cast<std::int64_t>(i);
  }
  const TokenBatch batch = collate(std::span<const Rollout>(examples), collate_options);
  return sft_update(comm, policy, optimizer, params, batch, max_grad_norm, buckets);
}

/// What sharded_mean_update returns: the grad norm and the sums the shards reported, added over the ranks.
struct ShardedUpdate {
  double grad_norm = 0.0;
  std::vector<double> sums;
};

/// One update of a loss that is the MEAN over a batch of `count` examples of per-example terms (DPO, IPO, SimPO,
/// CPO, ORPO with per-sequence NLL: preference/preference_loss.hpp), with the examples split over the ranks in
/// contiguous blocks (shard_range). `shard(begin, end)` computes examples [begin, end) of the batch (every rank
/// knows the whole batch) and returns their per-example losses [end - begin] (differentiable) and the sums to
/// report (e.g. metric × example count; the same length on every rank); it is not called for an empty block.
/// Each rank back-propagates sum(per-example) / count, the gradients are summed in `buckets` (overlapped with
/// backward), then the clip and the step: the one-process update of the mean, up to summation order.
template <class Shard>
ShardedUpdate sharded_mean_update(Communicator& comm, torch::optim::Optimizer& optimizer,
                                  const std::vector<torch::Tensor>& params, std::int64_t count, std::size_t sums,
                                  Shard&& shard, double max_grad_norm, GradientBuckets& buckets) {
  KAIZEN_CHECK(count > 0, "distributed::sharded_mean_update: the batch must have examples, got ", count);
  const ShardRange mine = shard_range(count, comm.rank(), comm.world_size());
  optimizer.zero_grad();
  buckets.arm(ReduceOp::sum);
  torch::Tensor totals = torch::zeros({static_cast<std::int64_t>(sums)}, torch::kDouble);
  if (mine.size() > 0) {
    const std::pair<torch::Tensor, std::vector<double>> part = shard(mine.begin, mine.end);
    KAIZEN_CHECK(part.first.dim() == 1 && part.first.size(0) == mine.size(), "distributed::sharded_mean_update: "
                 "expected ", mine.size(), " per-example losses for examples [", mine.begin, ", ", mine.end, "), got "
                 "shape ", part.first.sizes());
    KAIZEN_CHECK(part.second.size() == sums, "distributed::sharded_mean_update: expected ", sums, " sums, got ",
                 part.second.size());
    (part.first.sum() / static_cast<double>(count)).backward();
    for (std::size_t i = 0; i < sums; ++i) totals[static_cast<std::int64_t>(i)] = part.second[i];
  }
  buckets.finish();
  ShardedUpdate out;
  if (max_grad_norm > 0.0) out.grad_norm = torch::nn::utils::clip_grad_norm_(params, max_grad_norm);
  optimizer.step();
#if defined(KAIZEN_DEBUG) || !defined(NDEBUG)
  check_same_parameters(comm, params, "distributed::sharded_mean_update");
#endif
  comm.all_reduce(totals, ReduceOp::sum);
  out.sums.assign(totals.data_ptr<double>(), totals.data_ptr<double>() + sums);
  return out;
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
  KAIZEN_CHECK(options.micro_batch_groups == 0, fn, ": gradient accumulation (micro_batch_groups = ",
               options.micro_batch_groups, ") is not data-parallel yet; use 0 (each rank's share is one micro-batch)");
  KAIZEN_CHECK(options.precision == loop::Precision::fp32, fn, ": precision ", loop::precision_name(options.precision),
               " is not data-parallel yet; use fp32");
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
