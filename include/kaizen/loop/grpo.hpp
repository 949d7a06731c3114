// kaizen/loop/grpo.hpp - the online group-relative policy-gradient loop (GRPO and its variants).
//
// One step, for prompts x_1..x_P drawn from the prompt source (arms from the curriculum if any):
//   1. sample G completions y_p1..y_pG per prompt from the sampler (seed drawn from the loop's engine)
//   2. r_pi = reward(x_p, y_pi);  optionally drop groups whose rewards are all equal (DAPO dynamic
//      sampling) and sample fresh prompts to refill, up to `max_refill_rounds` times
//   3. collate; log π_old = the trainer's log-probs of the sampled tokens under the sampling transform
//      (no gradient); log π_ref likewise from the reference policy when the objective has a KL term
//   4. A_pi = group_advantages(r, groups)            (kaizen::policy_gradient)
//   5. for each epoch, for each mini-batch of groups (shuffled): loss = policy_loss(log π_θ, log π_old,
//      log π_ref, A, completion mask, objective); backward; clip the global gradient norm; AdamW step
//   6. curriculum.update(arms, mean |A| of each arm's group); report metrics; checkpoint
// The stages are shared with the other loops: draw_prompts / rollout_step (loop/prompts.hpp,
// loop/rollout.hpp), frozen_logprobs (loop/batch.hpp), policy_gradient_update (loop/update.hpp),
// make_adamw / warmup_learning_rate (loop/optimizer.hpp), save/load_checkpoint (loop/checkpoint.hpp).
// Resuming from a checkpoint (policy, optimiser, engine, curriculum, step) continues exactly as the run
// that never stopped, because every random draw comes from the saved engine.
//
// References: Shao et al. 2024, "DeepSeekMath" (GRPO, arXiv 2402.03300); Yu et al. 2025, "DAPO"
// (dynamic sampling, arXiv 2503.14476); Loshchilov & Hutter 2019, "Decoupled Weight Decay
// Regularization" (AdamW, arXiv 1711.05101); Chen et al. 2025, "Self-Evolving Curriculum" (absolute
// advantage as the curriculum's reward, arXiv 2505.14970).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
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
#include <kaizen/core/types.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/checkpoint.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/prompts.hpp>
#include <kaizen/loop/rollout.hpp>
#include <kaizen/loop/update.hpp>
#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/dapo.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/torch/logit_transform.hpp>
#include <kaizen/torch/policy_logprobs.hpp>

namespace kaizen::loop {

struct GrpoConfig {
  std::int64_t steps = 100;              ///< the run ends after this many steps (counting resumed ones)
  std::int64_t prompts_per_step = 16;    ///< P, > 0
  std::int64_t group_size = 8;           ///< G, >= 2
  std::int64_t epochs = 1;               ///< optimisation passes over each step's rollouts, > 0
  std::int64_t minibatch_groups = 0;     ///< groups per optimiser step; 0 = all kept groups at once
  double learning_rate = 1e-4;           ///< AdamW, > 0
  std::int64_t warmup_steps = 0;         ///< linear learning-rate warm-up over the first steps (step s uses
                                         ///< lr · min(1, s / warmup_steps)), >= 0; tames Adam's first
                                         ///< sign-like updates on a freshly warmed-up policy
  double weight_decay = 0.0;             ///< AdamW decoupled weight decay, >= 0
  double beta1 = 0.9;                    ///< AdamW
  double beta2 = 0.99;                   ///< AdamW
  double max_grad_norm = 1.0;            ///< global gradient-norm clip; <= 0 = off
  SamplingParams sampling{};             ///< how rollouts are drawn (its seed is replaced every step)
  policy_gradient::GroupAdvantageOptions advantages{};
  bool dynamic_sampling = false;         ///< drop groups whose rewards are all equal (DAPO)
  std::int64_t max_refill_rounds = 0;    ///< extra sampling rounds to refill dropped groups (dynamic sampling)
  std::uint64_t seed = 0;                ///< seeds the loop's engine (prompts, sampler seeds, shuffles)
  CollateOptions collate{};              ///< pad id, vocabulary size, context (max_length), device
  std::int64_t checkpoint_every = 0;     ///< > 0: save to checkpoint_dir every so many steps and at the end
  std::filesystem::path checkpoint_dir;  ///< where checkpoints go
  std::filesystem::path resume_from;     ///< non-empty: continue from this checkpoint
};

/// What a finished run hands back.
struct GrpoResult {
  std::int64_t steps = 0;             ///< steps completed (including resumed ones)
  std::vector<nlohmann::json> history;  ///< the "grpo" metrics of the steps this call ran
};

namespace detail {

inline void check_config(const GrpoConfig& c) {
  KAIZEN_CHECK(c.group_size >= 2, "grpo: group_size must be >= 2 (a group-relative advantage needs at least two "
               "samples per prompt), got ", c.group_size);
  KAIZEN_CHECK(c.prompts_per_step > 0, "grpo: prompts_per_step must be > 0, got ", c.prompts_per_step);
  KAIZEN_CHECK(c.epochs > 0, "grpo: epochs must be > 0, got ", c.epochs);
  KAIZEN_CHECK(c.minibatch_groups >= 0, "grpo: minibatch_groups must be >= 0 (0 = all), got ", c.minibatch_groups);
  KAIZEN_CHECK(c.learning_rate > 0.0, "grpo: learning_rate must be > 0, got ", c.learning_rate);
  KAIZEN_CHECK(c.weight_decay >= 0.0, "grpo: weight_decay must be >= 0, got ", c.weight_decay);
  KAIZEN_CHECK(c.warmup_steps >= 0, "grpo: warmup_steps must be >= 0, got ", c.warmup_steps);
  KAIZEN_CHECK(c.steps >= 0, "grpo: steps must be >= 0, got ", c.steps);
  KAIZEN_CHECK(c.max_refill_rounds >= 0, "grpo: max_refill_rounds must be >= 0, got ", c.max_refill_rounds);
  KAIZEN_CHECK(c.checkpoint_every >= 0, "grpo: checkpoint_every must be >= 0, got ", c.checkpoint_every);
  KAIZEN_CHECK(c.checkpoint_every == 0 || !c.checkpoint_dir.empty(),
               "grpo: checkpoint_every > 0 needs a checkpoint_dir");
  validate(c.sampling);
}

}  // namespace detail

/// Runs GRPO from the current policy (or from `config.resume_from`) until `config.steps` steps are done.
///
/// `policy`: trained in place. `sampler`: must sample from the policy itself (e.g. lm::LlamaSampler over
/// the same model) so that log π_old is on-policy. `reward`: any OutcomeReward. `source(arm, rng)`:
/// prompts. `objective`: a policy_gradient::Objective (kGrpo, kDapo, ...). `reference`: the frozen
/// reference policy for the objective's KL term (required when the objective's KL estimator is not
/// none; ignored otherwise). `curriculum`: a kaizen::Curriculum whose arms are passed to `source`, or
/// nullptr. `on_metrics` receives {"event":"grpo","step",...} after every step.
/// Throws kaizen::Error on an invalid config (group_size < 2, ...), a missing reference for a KL
/// objective, and for everything the sampler, reward, collate or policy_loss reject.
/// A TORCH_MODULE holder is not a Policy: pass the module it holds (`*net`).
template <TorchModuleHolder H, class... Rest>
GrpoResult grpo(H&, Rest&&...) {
  static_assert(kaizen::detail::dependent_false<H>,
                "kaizen::loop::grpo: a TORCH_MODULE holder is not a kaizen::Policy; pass the module it holds: "
                "grpo(*net, sampler, reward, ...)");
  return {};
}

template <Policy P, Sampler S, OutcomeReward R, PromptSource Src, class Ratio, class Clip, class Kl, class Aggregate,
          class C = NoCurriculum>
GrpoResult grpo(P& policy, S& sampler, R& reward, Src& source,
                const policy_gradient::Objective<Ratio, Clip, Kl, Aggregate>& objective, const GrpoConfig& config,
                const MetricsCallback& on_metrics = {}, P* reference = nullptr, C* curriculum = nullptr) {
  using Clock = std::chrono::steady_clock;
  constexpr bool kWithCurriculum = Curriculum<C>;
  constexpr bool kWithKl = Kl::estimator != policy_gradient::KlEstimator::none;
  detail::check_config(config);
  if constexpr (kWithKl) {
    KAIZEN_CHECK(reference != nullptr, "grpo: the objective has a KL term, so a reference policy is required");
  }
  const lm::LogitTransform transform = lm::LogitTransform::from(config.sampling);
  const std::vector<torch::Tensor> params = policy.parameters();
  torch::optim::AdamW optimizer = make_adamw(
      params, {.learning_rate = config.learning_rate, .weight_decay = config.weight_decay, .beta1 = config.beta1,
               .beta2 = config.beta2});
  LoopState state;
  state.rng.seed(config.seed);
  if (!config.resume_from.empty()) {
    state = load_checkpoint(config.resume_from, policy, optimizer);
    if constexpr (kWithCurriculum) {
      KAIZEN_CHECK(curriculum != nullptr && !state.extra.is_null(),
                   "grpo: resuming with a curriculum needs the curriculum state in the checkpoint");
      curriculum->restore(state.extra);
    }
  }
  auto save = [&] {
    if constexpr (kWithCurriculum) {
      if (curriculum != nullptr) state.extra = curriculum->state();
    }
    save_checkpoint(config.checkpoint_dir, policy, optimizer, state);
  };
  const RolloutOptions rollout_options{.prompts = config.prompts_per_step, .group_size = config.group_size,
                                       .dynamic_sampling = config.dynamic_sampling,
                                       .max_refill_rounds = config.max_refill_rounds, .who = "grpo"};

  GrpoResult result;
  while (state.step < config.steps) {
    const auto t0 = Clock::now();
    // 1-2. Prompts (from the curriculum's arms), G rollouts each, rewards; dynamic sampling keeps only
    //      informative groups.
    const StepRollouts r = rollout_step(sampler, reward, source, rollout_options, config.sampling, state.rng, curriculum);
    const auto t1 = Clock::now();
    const auto sampled = static_cast<double>(r.sampled_groups * config.group_size);
    nlohmann::json metrics = {{"event", "grpo"},
                              {"step", state.step + 1},
                              {"reward_mean", r.reward_sum / sampled},
                              {"sampled_groups", r.sampled_groups},
                              {"dropped_groups", r.dropped_groups},
                              {"kept_groups", static_cast<std::int64_t>(r.prompts.size())},
                              {"completion_length_mean", static_cast<double>(r.sampled_tokens) / sampled}};
    std::vector<double> gains(r.prompts.size(), 0.0);
    if (!r.prompts.empty()) {
      // 3. Collate; old / reference log-probs.
      const TokenBatch batch = collate(std::span<const Prompt>(r.prompts), std::span<const Completion>(r.completions),
                                       std::span<const double>(r.rewards), config.group_size, config.collate);
      const torch::Tensor old_logprobs = frozen_logprobs(policy, batch, transform);
      torch::Tensor ref_logprobs;
      if constexpr (kWithKl) ref_logprobs = frozen_logprobs(*reference, batch, transform);
      if (batch.old_logprobs.defined()) {
        const torch::Tensor diff = (old_logprobs - batch.old_logprobs.to(old_logprobs.dtype())).abs();
        metrics["sampler_trainer_logprob_max_abs_diff"] = diff.max().item<double>();
      }
      // 4. Group-relative advantages; the curriculum's gain of a group is its mean |A|.
      const torch::Tensor advantages =
          policy_gradient::group_advantages(batch.rewards.to(old_logprobs.dtype()), batch.group_ids, config.advantages);
      {
        const torch::Tensor abs_adv = advantages.abs().cpu().to(torch::kDouble).contiguous();
        const auto a = abs_adv.accessor<double, 1>();
        const auto G = static_cast<std::size_t>(config.group_size);
        for (std::size_t p = 0; p < r.prompts.size(); ++p)
          for (std::size_t i = 0; i < G; ++i) gains[p] += a[static_cast<std::int64_t>(p * G + i)] / static_cast<double>(G);
      }
      // 5. Epochs over shuffled mini-batches of groups, at this step's learning rate.
      const double lr = warmup_learning_rate(config.learning_rate, config.warmup_steps, state.step + 1);
      set_learning_rate(optimizer, lr);
      metrics["learning_rate"] = lr;
      policy_gradient_update(policy, optimizer, params, batch, old_logprobs, ref_logprobs, advantages, transform,
                             objective,
                             {.group_size = config.group_size, .epochs = config.epochs,
                              .minibatch_groups = config.minibatch_groups, .max_grad_norm = config.max_grad_norm},
                             state.rng)
          .write_to(metrics);
    }
    // 6. Curriculum, bookkeeping, metrics, checkpoint.
    if constexpr (kWithCurriculum) {
      if (curriculum != nullptr && !r.arms.empty()) {
        curriculum->update(std::span<const ArmId>(r.arms), std::span<const double>(gains));
        metrics["curriculum_probabilities"] = curriculum->probabilities();
      }
    }
    ++state.step;
    const auto t2 = Clock::now();
    metrics["sample_seconds"] = std::chrono::duration<double>(t1 - t0).count();
    metrics["train_seconds"] = std::chrono::duration<double>(t2 - t1).count();
    metrics["sampled_tokens"] = r.sampled_tokens;
    if (on_metrics) on_metrics(metrics);
    result.history.push_back(std::move(metrics));
    if (config.checkpoint_every > 0 && (state.step % config.checkpoint_every == 0 || state.step == config.steps)) save();
  }
  result.steps = state.step;
  return result;
}

}  // namespace kaizen::loop
