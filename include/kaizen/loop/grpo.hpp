// kaizen/loop/grpo.hpp - the online group-relative policy-gradient loop (GRPO and its variants): the
// general online policy-gradient loop (loop/policy_gradient.hpp) with the Grpo advantage estimator.
//
// One step, for prompts x_1..x_P drawn from the prompt source (arms from the curriculum if any):
//   1. sample G completions y_p1..y_pG per prompt from the sampler (seed drawn from the loop's engine)
//   2. r_pi = reward(x_p, y_pi);  optionally drop groups whose rewards are all equal (DAPO dynamic
//      sampling) and sample fresh prompts to refill, up to `max_refill_rounds` times
//   3. collate; log π_old = the trainer's log-probs of the sampled tokens under the sampling transform
//      (no gradient); log π_ref likewise from the reference policy (any Policy type) when the objective
//      has a KL term
//   4. A_pi = group_advantages(r, groups, config.advantages)            (kaizen::policy_gradient)
//   5. for each epoch, for each mini-batch of groups (shuffled): loss = policy_loss(log π_θ, log π_old,
//      log π_ref, A, completion mask, objective); backward; clip the global gradient norm; AdamW step
//   6. curriculum.update(arms, mean |A| of each arm's group); report metrics; checkpoint
// The stages are shared with the other loops: draw_prompts / rollout_step (loop/prompts.hpp,
// loop/rollout.hpp), frozen_logprobs and policy_logprobs (loop/batch.hpp; the fused linear + log-prob
// path for a HiddenStatePolicy), policy_gradient_update (loop/update.hpp), make_adamw /
// warmup_learning_rate (loop/optimizer.hpp), save/load_checkpoint (loop/checkpoint.hpp).
// Resuming from a checkpoint (policy, optimiser, engine, curriculum, step) continues exactly as the run
// that never stopped, because every random draw comes from the saved engine. Other advantage
// estimators (RLOO, REINFORCE++, ReMax, OPO, pass@k, the user's own): loop::policy_gradient_loop.
//
// References: Shao et al. 2024, "DeepSeekMath" (GRPO, arXiv 2402.03300); Yu et al. 2025, "DAPO"
// (dynamic sampling, arXiv 2503.14476); Loshchilov & Hutter 2019, "Decoupled Weight Decay
// Regularization" (AdamW, arXiv 1711.05101); Chen et al. 2025, "Self-Evolving Curriculum" (absolute
// advantage as the curriculum's reward, arXiv 2505.14970).
#pragma once

#include <cstdint>
#include <filesystem>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/policy_gradient.hpp>
#include <kaizen/loop/precision.hpp>
#include <kaizen/loop/prompts.hpp>
#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/dapo.hpp>
#include <kaizen/policy_gradient/estimators.hpp>
#include <kaizen/policy_gradient/options.hpp>

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
  std::int64_t micro_batch_groups = 0;   ///< gradient accumulation: groups per forward/backward (0 = off)
  Precision precision = Precision::fp32; ///< bf16 = autocast compute, fp32 weights and optimiser state
  SamplingParams sampling{};             ///< how rollouts are drawn (its seed is replaced every step)
  policy_gradient::GroupAdvantageOptions advantages{};
  bool dynamic_sampling = false;         ///< drop groups whose rewards are all equal (DAPO)
  std::int64_t max_refill_rounds = 0;    ///< extra sampling rounds to refill dropped groups (dynamic sampling)
  std::uint64_t seed = 0;                ///< seeds the loop's engine (prompts, sampler seeds, shuffles)
  CollateOptions collate{};              ///< pad id, vocabulary size, context (max_length), device
  std::int64_t checkpoint_every = 0;     ///< > 0: save to checkpoint_dir every so many steps and at the end
  std::filesystem::path checkpoint_dir;  ///< where checkpoints go
  std::filesystem::path resume_from;     ///< non-empty: continue from this checkpoint
  distributed::Communicator* communicator = nullptr;  ///< non-null: data-parallel over its ranks (docs/distributed.md)
};

/// What a finished run hands back.
using GrpoResult = PolicyGradientResult;

namespace detail {

inline void check_config(const GrpoConfig& c) {
  KAIZEN_CHECK(c.group_size >= 2, "grpo: group_size must be >= 2 (a group-relative advantage needs at least two "
               "samples per prompt), got ", c.group_size);
  KAIZEN_CHECK(c.prompts_per_step > 0, "grpo: prompts_per_step must be > 0, got ", c.prompts_per_step);
  KAIZEN_CHECK(c.epochs > 0, "grpo: epochs must be > 0, got ", c.epochs);
  KAIZEN_CHECK(c.minibatch_groups >= 0, "grpo: minibatch_groups must be >= 0 (0 = all), got ", c.minibatch_groups);
  KAIZEN_CHECK(c.micro_batch_groups >= 0, "grpo: micro_batch_groups must be >= 0 (0 = the whole mini-batch), got ",
               c.micro_batch_groups);
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

/// The general loop's configuration for a GRPO config (name "grpo"; the advantages come from the Grpo
/// estimator with `config.advantages`).
[[nodiscard]] inline PolicyGradientConfig to_policy_gradient_config(const GrpoConfig& c) {
  PolicyGradientConfig out{.steps = c.steps, .prompts_per_step = c.prompts_per_step, .group_size = c.group_size,
                           .epochs = c.epochs, .minibatch_groups = c.minibatch_groups,
                           .learning_rate = c.learning_rate, .warmup_steps = c.warmup_steps,
                           .weight_decay = c.weight_decay, .beta1 = c.beta1, .beta2 = c.beta2,
                           .max_grad_norm = c.max_grad_norm, .sampling = c.sampling};
  out.estimator_options.group = c.advantages;
  out.dynamic_sampling = c.dynamic_sampling;
  out.max_refill_rounds = c.max_refill_rounds;
  out.seed = c.seed;
  out.micro_batch_groups = c.micro_batch_groups;
  out.precision = c.precision;
  out.collate = c.collate;
  out.checkpoint_every = c.checkpoint_every;
  out.checkpoint_dir = c.checkpoint_dir;
  out.resume_from = c.resume_from;
  out.communicator = c.communicator;
  out.name = "grpo";
  return out;
}

/// Runs GRPO from the current policy (or from `config.resume_from`) until `config.steps` steps are done.
///
/// `policy`: trained in place. `sampler`: must sample from the policy itself (e.g. lm::LlamaSampler over
/// the same model) so that log π_old is on-policy. `reward`: any OutcomeReward. `source(arm, rng)`:
/// prompts. `objective`: a policy_gradient::Objective (kGrpo, kDapo, ...). `reference`: the frozen
/// reference policy for the objective's KL term, of any Policy type (required when the objective's KL
/// estimator is not none; ignored otherwise). `curriculum`: a kaizen::Curriculum whose arms are passed to `source`, or
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
          Policy Ref = P, class C = NoCurriculum>
GrpoResult grpo(P& policy, S& sampler, R& reward, Src& source,
                const policy_gradient::Objective<Ratio, Clip, Kl, Aggregate>& objective, const GrpoConfig& config,
                const MetricsCallback& on_metrics = {}, Ref* reference = nullptr, C* curriculum = nullptr) {
  detail::check_config(config);
  return policy_gradient_loop(policy, sampler, reward, source, policy_gradient::Grpo{config.advantages}, objective,
                              to_policy_gradient_config(config), on_metrics, reference, curriculum);
}

}  // namespace kaizen::loop
