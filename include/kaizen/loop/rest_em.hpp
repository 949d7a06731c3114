// kaizen/loop/rest_em.hpp - ReST-EM: expectation-maximisation self-training with a binary reward.
//
//   π_0 = the base policy
//   for t = 1..T:
//     E-step (grow):    for each training problem x, sample N solutions y ~ π_{t-1}(·|x); score r(x, y) ∈ {0, 1}
//     filter:           D_t = solutions with r = 1, at most `cap` per problem (distinct)
//     M-step (improve): π_t = SFT of the BASE π_0 on D_t (not of π_{t-1}: avoids drift and overfitting)
//
// Defaults follow the paper's description: 2-3 iterations typical, a per-problem cap (10 in the paper on
// MATH; here `cap`, > 0), kept samples thresholded at reward 1.
//
// Reference: Singh et al. 2023, "Beyond Human Data: Scaling Self-Training for Problem-Solving with
// Language Models" (arXiv 2312.06585).
#pragma once

#include <cstdint>
#include <span>

#include <kaizen/core/policy.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/rejection_sampling.hpp>
#include <kaizen/loop/self_training.hpp>

namespace kaizen::loop {

struct RestEmConfig {
  std::int64_t iterations = 3;       ///< T
  std::int64_t samples_per_prompt = 8;  ///< N, >= 1
  std::int64_t cap = 4;              ///< kept solutions per problem, > 0
  double threshold = 1.0;            ///< keep r >= threshold (1 for a 0/1 verifier)
  SelfTrainingConfig engine{};       ///< SFT, sampling, checkpoint settings (its iterations, N, selection are
                                     ///< overwritten from the fields above)
};

/// Runs ReST-EM (see the top of the file) on `prompts` with the 0/1 `verifier` as the reward.
/// Metrics: "rest_em_iteration" per iteration ({iteration, sampled, reward_mean, kept, prompts_with_kept,
/// sft_steps, final_sft_loss, ...}) and "rest_em_sft" per SFT step. Throws kaizen::Error on an empty
/// prompt set, N < 1, cap <= 0, and everything self_train rejects.
template <Policy P, Sampler S, OutcomeReward V>
SelfTrainingResult rest_em(P& policy, S& sampler, V& verifier, std::span<const Prompt> prompts, const RestEmConfig& config,
                           const MetricsCallback& on_metrics = {}, SelfTrainingHooks hooks = {}) {
  SelfTrainingConfig c = config.engine;
  c.iterations = config.iterations;
  c.samples_per_prompt = config.samples_per_prompt;
  c.selection = {.threshold = config.threshold, .strict = false, .cap = config.cap, .distinct = true};
  c.restart_from_base = true;
  hooks.hint = {};
  hooks.tune = {};
  return self_train(policy, sampler, verifier, prompts, c, on_metrics, hooks, "rest_em");
}

}  // namespace kaizen::loop
