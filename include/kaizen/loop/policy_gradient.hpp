// kaizen/loop/policy_gradient.hpp - the online policy-gradient loop, generic over the advantage
// estimator (GRPO, Dr. GRPO, RLOO, REINFORCE++, ReMax, OPO, pass@k or the user's own) and the objective.
//
// One step, for prompts x_1..x_P drawn from the prompt source (arms from the curriculum if any):
//   1. sample G completions y_p1..y_pG per prompt from the sampler (seed drawn from the loop's engine)
//   2. r_pi = reward(x_p, y_pi); optionally drop groups whose rewards are all equal (DAPO dynamic
//      sampling) and sample fresh prompts to refill, up to `max_refill_rounds` times
//   3. estimators that need a greedy baseline (ReMax): one more sampler call, one completion per kept
//      prompt with top_k = 1 (greedy under the sampling temperature; seed drawn from the engine), scored
//   4. collate; log π_old = the trainer's log-probs of the sampled tokens under the sampling transform
//      (no gradient); log π_ref likewise from the reference policy (any Policy type) when the objective
//      has a KL term or the estimator needs it
//   5. A = estimator(AdvantageInputs{rewards, groups, mask, lengths, log π_old, log π_ref, baseline}),
//      [B] per sequence or [B, T] per token (policy_gradient/estimators.hpp)
//   6. for each epoch, for each mini-batch of groups (shuffled): loss = policy_loss(log π_θ, log π_old,
//      log π_ref, A, completion mask, objective); backward; clip the global gradient norm; AdamW step
//   7. curriculum.update(arms, mean |A| of each arm's group, per-token A averaged over the row's
//      completion tokens first); report metrics; checkpoint
// Log-probs come from loop::policy_logprobs: the fused linear + log-prob op for a HiddenStatePolicy.
// Resuming from a checkpoint (policy, optimiser, engine, curriculum, step) continues exactly as the run
// that never stopped, because every random draw comes from the saved engine. loop::grpo (grpo.hpp) is
// this loop with the Grpo estimator.
//
// References: Shao et al. 2024, "DeepSeekMath" (GRPO, arXiv 2402.03300); Li et al. 2023, "ReMax" (greedy
// baseline, arXiv 2310.10505); Hu 2025, "REINFORCE++" (arXiv 2501.03262); Ahmadian et al. 2024, "Back to
// Basics" (RLOO, arXiv 2402.14740); Yu et al. 2025, "DAPO" (dynamic sampling, arXiv 2503.14476).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
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
#include <kaizen/core/types.hpp>
#include <kaizen/distributed/communicator.hpp>
#include <kaizen/distributed/data_parallel.hpp>
#include <kaizen/distributed/data_parallel_stages.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/checkpoint.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/precision.hpp>
#include <kaizen/loop/prompts.hpp>
#include <kaizen/loop/rollout.hpp>
#include <kaizen/loop/update.hpp>
#include <kaizen/policy_gradient/estimators.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/torch/logit_transform.hpp>

namespace kaizen::loop {

struct PolicyGradientConfig {
  std::int64_t steps = 100;              ///< the run ends after this many steps (counting resumed ones)
  std::int64_t prompts_per_step = 16;    ///< P, > 0
  std::int64_t group_size = 8;           ///< G, >= 1 and >= the estimator's min_group_size()
  std::int64_t epochs = 1;               ///< optimisation passes over each step's rollouts, > 0
  std::int64_t minibatch_groups = 0;     ///< groups per optimiser step; 0 = all kept groups at once
  double learning_rate = 1e-4;           ///< AdamW, > 0
  std::int64_t warmup_steps = 0;         ///< linear learning-rate warm-up (lr · min(1, s / warmup_steps)), >= 0
  double weight_decay = 0.0;             ///< AdamW decoupled weight decay, >= 0
  double beta1 = 0.9;                    ///< AdamW
  double beta2 = 0.99;                   ///< AdamW
  double max_grad_norm = 1.0;            ///< global gradient-norm clip; <= 0 = off
  std::int64_t micro_batch_groups = 0;   ///< gradient accumulation: groups per forward/backward, >= 0 (0 = the
                                         ///< whole mini-batch); the loss equals the full mini-batch's (update.hpp)
  Precision precision = Precision::fp32; ///< bf16 = autocast compute, fp32 weights and optimiser state (precision.hpp)
  SamplingParams sampling{};             ///< how rollouts are drawn (its seed is replaced every step)
  std::string advantage_estimator = "grpo";  ///< the built-in estimator, by name, when the loop is called
                                             ///< without one (policy_gradient::kAdvantageEstimatorNames)
  policy_gradient::AdvantageEstimatorOptions estimator_options{};  ///< its knobs
  bool dynamic_sampling = false;         ///< drop groups whose rewards are all equal (DAPO)
  std::int64_t max_refill_rounds = 0;    ///< extra sampling rounds to refill dropped groups (dynamic sampling)
  std::uint64_t seed = 0;                ///< seeds the loop's engine (prompts, sampler seeds, shuffles)
  CollateOptions collate{};              ///< pad id, vocabulary size, context (max_length), device
  std::int64_t checkpoint_every = 0;     ///< > 0: save to checkpoint_dir every so many steps and at the end
  std::filesystem::path checkpoint_dir;  ///< where checkpoints go
  std::filesystem::path resume_from;     ///< non-empty: continue from this checkpoint
  std::string name = "policy_gradient";  ///< the metrics' "event" and the prefix of error messages
  /// Non-null: run data-parallel over its ranks (every rank calls the loop with the same config and weights; see
  /// distributed/data_parallel_stages.hpp); null: one process, the serial stages.
  distributed::Communicator* communicator = nullptr;
};

/// What a finished run hands back.
struct PolicyGradientResult {
  std::int64_t steps = 0;               ///< steps completed (including resumed ones)
  std::vector<nlohmann::json> history;  ///< the metrics of the steps this call ran
};

namespace detail {

inline void check_config(const PolicyGradientConfig& c, std::int64_t min_group_size, const std::string& estimator) {
  const std::string& n = c.name;
  KAIZEN_CHECK(c.group_size >= std::max<std::int64_t>(1, min_group_size), n, ": group_size must be >= ",
               std::max<std::int64_t>(1, min_group_size), " for the advantage estimator '", estimator, "', got ",
               c.group_size);
  KAIZEN_CHECK(c.prompts_per_step > 0, n, ": prompts_per_step must be > 0, got ", c.prompts_per_step);
  KAIZEN_CHECK(c.epochs > 0, n, ": epochs must be > 0, got ", c.epochs);
  KAIZEN_CHECK(c.minibatch_groups >= 0, n, ": minibatch_groups must be >= 0 (0 = all), got ", c.minibatch_groups);
  KAIZEN_CHECK(c.micro_batch_groups >= 0, n, ": micro_batch_groups must be >= 0 (0 = the whole mini-batch), got ",
               c.micro_batch_groups);
  KAIZEN_CHECK(c.learning_rate > 0.0, n, ": learning_rate must be > 0, got ", c.learning_rate);
  KAIZEN_CHECK(c.weight_decay >= 0.0, n, ": weight_decay must be >= 0, got ", c.weight_decay);
  KAIZEN_CHECK(c.warmup_steps >= 0, n, ": warmup_steps must be >= 0, got ", c.warmup_steps);
  KAIZEN_CHECK(c.steps >= 0, n, ": steps must be >= 0, got ", c.steps);
  KAIZEN_CHECK(c.max_refill_rounds >= 0, n, ": max_refill_rounds must be >= 0, got ", c.max_refill_rounds);
  KAIZEN_CHECK(c.checkpoint_every >= 0, n, ": checkpoint_every must be >= 0, got ", c.checkpoint_every);
  KAIZEN_CHECK(c.checkpoint_every == 0 || !c.checkpoint_dir.empty(), n, ": checkpoint_every > 0 needs a checkpoint_dir");
  validate(c.sampling);
}

/// Checks what an estimator returned: defined, floating, [B] or [B, T], finite.
inline void check_advantages(const std::string& who, const std::string& estimator, const torch::Tensor& a,
                             const TokenBatch& batch) {
  const std::int64_t B = batch.batch_size(), T = batch.length();
  KAIZEN_CHECK(a.defined() && a.is_floating_point(), who, ": the advantage estimator '", estimator,
               "' returned ", a.defined() ? "a non-floating tensor" : "an undefined tensor",
               "; expected floating advantages [", B, "] or [", B, ", ", T, "]");
  KAIZEN_CHECK((a.dim() == 1 && a.size(0) == B) || (a.dim() == 2 && a.size(0) == B && a.size(1) == T), who,
               ": the advantage estimator '", estimator, "' returned shape ", a.sizes(), "; expected [", B, "] or [",
               B, ", ", T, "]");
  KAIZEN_CHECK(torch::isfinite(a).all().item<bool>(), who, ": the advantage estimator '", estimator,
               "' returned a non-finite advantage");
}

/// Mean |A| of each group of `group_size` consecutive rows (per-token A: the row's mean over its
/// completion tokens first).
[[nodiscard]] inline std::vector<double> group_gains(const torch::Tensor& advantages, const torch::Tensor& mask,
                                                     std::size_t groups, std::int64_t group_size) {
  torch::Tensor per_row = advantages.abs();
  if (per_row.dim() == 2) {
    const torch::Tensor m = mask.to(per_row.device(), per_row.scalar_type());
    per_row = (per_row * m).sum(1) / m.sum(1).clamp_min(1.0);
  }
  const torch::Tensor abs_adv = per_row.cpu().to(torch::kDouble).contiguous();
  const auto a = abs_adv.accessor<double, 1>();
  const auto G = static_cast<std::size_t>(group_size);
  std::vector<double> gains(groups, 0.0);
  for (std::size_t p = 0; p < groups; ++p)
    for (std::size_t i = 0; i < G; ++i) gains[p] += a[static_cast<std::int64_t>(p * G + i)] / static_cast<double>(G);
  return gains;
}

}  // namespace detail

/// Runs the online policy-gradient loop from the current policy (or from `config.resume_from`) until
/// `config.steps` steps are done, with advantages from `estimator` (a policy_gradient::AdvantageEstimator;
/// the overload without it builds config.advantage_estimator by name).
///
/// `policy`: trained in place. `sampler`: must sample from the policy itself so that log π_old is
/// on-policy. `reward`: any OutcomeReward. `source(arm, rng)`: prompts. `objective`: a
/// policy_gradient::Objective. `reference`: a frozen reference policy of any Policy type, required when
/// the objective has a KL term or the estimator needs_reference(). `curriculum`: a kaizen::Curriculum
/// whose arms are passed to `source`, or nullptr. `on_metrics` receives {"event": config.name, "step",
/// ...} after every step.
/// Throws kaizen::Error on an invalid config (group_size below the estimator's minimum, ...), a missing
/// reference, advantages of the wrong shape or non-finite, and for everything the sampler, reward,
/// collate, estimator or policy_loss reject.
template <TorchModuleHolder H, class... Rest>
PolicyGradientResult policy_gradient_loop(H&, Rest&&...) {
  static_assert(kaizen::detail::dependent_false<H>,
                "kaizen::loop::policy_gradient_loop: a TORCH_MODULE holder is not a kaizen::Policy; pass the module "
                "it holds: policy_gradient_loop(*net, sampler, reward, ...)");
  return {};
}

template <Policy P, Sampler S, OutcomeReward R, PromptSource Src, class E, class Ratio, class Clip, class Kl,
          class Aggregate, Policy Ref = P, class C = NoCurriculum>
  requires policy_gradient::AdvantageEstimator<std::remove_cvref_t<E>>
PolicyGradientResult policy_gradient_loop(P& policy, S& sampler, R& reward, Src& source, E&& estimator,
                                          const policy_gradient::Objective<Ratio, Clip, Kl, Aggregate>& objective,
                                          const PolicyGradientConfig& config, const MetricsCallback& on_metrics = {},
                                          Ref* reference = nullptr, C* curriculum = nullptr) {
  using Clock = std::chrono::steady_clock;
  constexpr bool kWithCurriculum = Curriculum<C>;
  constexpr bool kWithKl = Kl::estimator != policy_gradient::KlEstimator::none;
  const std::string& who = config.name;
  const std::string estimator_name = policy_gradient::estimator_name(estimator);
  const bool with_greedy = policy_gradient::estimator_needs_greedy_baseline(estimator);
  const bool estimator_needs_ref = policy_gradient::estimator_needs_reference(estimator);
  detail::check_config(config, policy_gradient::estimator_min_group_size(estimator), estimator_name);
  if constexpr (kWithKl) {
    KAIZEN_CHECK(reference != nullptr, who, ": the objective has a KL term, so a reference policy is required");
  }
  KAIZEN_CHECK(!estimator_needs_ref || reference != nullptr, who, ": the advantage estimator '", estimator_name,
               "' needs reference log-probs, so a reference policy is required");
  const bool with_ref = kWithKl || (estimator_needs_ref && reference != nullptr);
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
      KAIZEN_CHECK(curriculum != nullptr && !state.extra.is_null(), who,
                   ": resuming with a curriculum needs the curriculum state in the checkpoint");
      curriculum->restore(state.extra);
    }
  }
  distributed::Communicator* const comm = config.communicator;
  if (comm != nullptr) distributed::check_same_parameters(*comm, params, who);  // same start on every rank
  auto save = [&] {
    if constexpr (kWithCurriculum) {
      if (curriculum != nullptr) state.extra = curriculum->state();
    }
    if (comm == nullptr || comm->rank() == 0) save_checkpoint(config.checkpoint_dir, policy, optimizer, state);
    if (comm != nullptr) comm->barrier();  // the checkpoint is complete when any rank goes on
  };
  const RolloutOptions rollout_options{.prompts = config.prompts_per_step, .group_size = config.group_size,
                                       .dynamic_sampling = config.dynamic_sampling,
                                       .max_refill_rounds = config.max_refill_rounds, .who = who};

  PolicyGradientResult result;
  while (state.step < config.steps) {
    const auto t0 = Clock::now();
    // 1-2. Prompts (from the curriculum's arms), G rollouts each, rewards; dynamic sampling keeps only
    //      informative groups.
    const StepRollouts r = distributed::rollout_step(comm, sampler, reward, source, rollout_options, config.sampling,
                                                     state.rng, curriculum);
    const auto sampled = static_cast<double>(r.sampled_groups * config.group_size);
    nlohmann::json metrics = {{"event", who},
                              {"step", state.step + 1},
                              {"advantage_estimator", estimator_name},
                              {"reward_mean", r.reward_sum / sampled},
                              {"sampled_groups", r.sampled_groups},
                              {"dropped_groups", r.dropped_groups},
                              {"kept_groups", static_cast<std::int64_t>(r.prompts.size())},
                              {"completion_length_mean", static_cast<double>(r.sampled_tokens) / sampled}};
    // 3. The greedy baseline rollout (ReMax): one greedy completion per kept prompt.
    std::vector<double> greedy_rewards;
    if (with_greedy && !r.prompts.empty()) {
      SamplingParams greedy = config.sampling;
      greedy.top_k = 1;
      const std::vector<Completion> best =
          sample_groups(sampler, std::span<const Prompt>(r.prompts), 1, greedy, state.rng, who);
      greedy_rewards = score(reward, std::span<const Prompt>(r.prompts), std::span<const Completion>(best));
      double sum = 0.0;
      for (double g : greedy_rewards) sum += g;
      metrics["greedy_reward_mean"] = sum / static_cast<double>(greedy_rewards.size());
    }
    const auto t1 = Clock::now();
    std::vector<double> gains(r.prompts.size(), 0.0);
    if (!r.prompts.empty()) {
      // 4. Collate; old / reference log-probs.
      const TokenBatch batch = collate(std::span<const Prompt>(r.prompts), std::span<const Completion>(r.completions),
                                       std::span<const double>(r.rewards), config.group_size, config.collate);
      const torch::Tensor old_logprobs = distributed::frozen_logprobs(comm, policy, batch, transform);
      torch::Tensor ref_logprobs;
      if (with_ref) ref_logprobs = distributed::frozen_logprobs(comm, *reference, batch, transform);
      if (batch.old_logprobs.defined()) {
        const torch::Tensor diff = (old_logprobs - batch.old_logprobs.to(old_logprobs.dtype())).abs();
        metrics["sampler_trainer_logprob_max_abs_diff"] = diff.max().item<double>();
      }
      // 5. Advantages; the curriculum's gain of a group is its mean |A|.
      policy_gradient::AdvantageInputs inputs{.rewards = batch.rewards.to(old_logprobs.dtype()),
                                              .group_ids = batch.group_ids,
                                              .mask = batch.completion_mask,
                                              .lengths = batch.completion_lengths,
                                              .old_logprobs = old_logprobs,
                                              .ref_logprobs = ref_logprobs,
                                              .group_size = config.group_size};
      if (with_greedy) {
        std::vector<double> per_row;
        per_row.reserve(r.completions.size());
        for (double g : greedy_rewards)
          for (std::int64_t i = 0; i < config.group_size; ++i) per_row.push_back(g);
        inputs.baseline_rewards =
            torch::tensor(per_row, torch::kDouble).to(inputs.rewards.device(), inputs.rewards.scalar_type());
      }
      const torch::Tensor advantages = estimator(inputs);
      detail::check_advantages(who, estimator_name, advantages, batch);
      gains = detail::group_gains(advantages, batch.completion_mask, r.prompts.size(), config.group_size);
      // 6. Epochs over shuffled mini-batches of groups, at this step's learning rate.
      const double lr = warmup_learning_rate(config.learning_rate, config.warmup_steps, state.step + 1);
      set_learning_rate(optimizer, lr);
      metrics["learning_rate"] = lr;
      distributed::policy_gradient_update(comm, policy, optimizer, params, batch, old_logprobs, ref_logprobs,
                                          advantages.to(old_logprobs.device(), old_logprobs.scalar_type()), transform,
                                          objective,
                                          {.group_size = config.group_size, .epochs = config.epochs,
                                           .minibatch_groups = config.minibatch_groups,
                                           .max_grad_norm = config.max_grad_norm,
                                           .micro_batch_groups = config.micro_batch_groups,
                                           .precision = config.precision},
                                          state.rng)
          .write_to(metrics);
    }
    // 7. Curriculum, bookkeeping, metrics, checkpoint.
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

/// The same loop with the built-in estimator named by `config.advantage_estimator` (and
/// `config.estimator_options`). Throws kaizen::Error listing the accepted names for an unknown one.
template <Policy P, Sampler S, OutcomeReward R, PromptSource Src, class Ratio, class Clip, class Kl, class Aggregate,
          Policy Ref = P, class C = NoCurriculum>
PolicyGradientResult policy_gradient_loop(P& policy, S& sampler, R& reward, Src& source,
                                          const policy_gradient::Objective<Ratio, Clip, Kl, Aggregate>& objective,
                                          const PolicyGradientConfig& config, const MetricsCallback& on_metrics = {},
                                          Ref* reference = nullptr, C* curriculum = nullptr) {
  return policy_gradient_loop(
      policy, sampler, reward, source,
      policy_gradient::make_advantage_estimator(config.advantage_estimator, config.estimator_options), objective, config,
      on_metrics, reference, curriculum);
}

}  // namespace kaizen::loop
