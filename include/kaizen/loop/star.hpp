// kaizen/loop/star.hpp - STaR, the Self-Taught Reasoner, with rationalisation.
//
//   M_0 = the base model
//   for t = 1..T:
//     for each problem x: sample rationale + answer ŷ ~ M_{t-1}(·|x)           (N samples, the paper uses 1)
//     keep the samples whose answer is correct (at most `cap` per problem)
//     rationalise: for each problem with no correct sample, sample from M_{t-1}(·|hint(x)) where hint(x)
//                  gives the correct answer; keep those that reach it, stored as (x, rationale) WITHOUT the hint
//     M_t = fine-tune the ORIGINAL base M_0 on the kept set
//
// `hint(prompt) -> Prompt` builds the hinted prompt (e.g. appends "answer: <reference>" tokens); the verifier
// scores hinted samples against the original prompt. Without a hint, STaR is rejection-sampling fine-tuning
// from the base, like ReST-EM with N = samples_per_prompt.
//
// Reference: Zelikman, Wu, Mu & Goodman 2022, "STaR: Bootstrapping Reasoning With Reasoning" (arXiv 2203.14465).
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/self_training.hpp>

namespace kaizen::loop {

struct StarConfig {
  std::int64_t iterations = 3;              ///< T
  std::int64_t samples_per_prompt = 1;      ///< N, >= 1
  std::int64_t cap = 1;                     ///< kept per problem, > 0
  std::int64_t rationalisation_samples = 1; ///< N_r, >= 1
  bool rationalise = true;                  ///< run the hint pass for failed problems
  SelfTrainingConfig engine{};              ///< SFT, sampling, checkpoint settings (iterations, N, selection overwritten)
};

/// Runs STaR (see the top of the file). Metrics: "star_iteration" ({..., kept_from_samples, rationalised,
/// rationalised_prompts}) and "star_sft". Throws kaizen::Error on an empty prompt set, N < 1, cap <= 0,
/// N_r < 1, rationalise without a hint, and everything self_train rejects.
template <Policy P, Sampler S, OutcomeReward V>
SelfTrainingResult star(P& policy, S& sampler, V& verifier, std::span<const Prompt> prompts, const StarConfig& config,
                        std::function<Prompt(const Prompt&)> hint, const MetricsCallback& on_metrics = {},
                        SelfTrainingHooks hooks = {}) {
  KAIZEN_CHECK(!config.rationalise || hint, "star: rationalise is on but no hint function was given");
  KAIZEN_CHECK(config.rationalisation_samples >= 1, "star: rationalisation_samples must be >= 1, got ",
               config.rationalisation_samples);
  SelfTrainingConfig c = config.engine;
  c.iterations = config.iterations;
  c.samples_per_prompt = config.samples_per_prompt;
  c.selection = {.threshold = 1.0, .strict = false, .cap = config.cap, .distinct = true};
  c.restart_from_base = true;
  hooks.hint = config.rationalise ? std::move(hint) : std::function<Prompt(const Prompt&)>{};
  hooks.rationalisation_samples = config.rationalisation_samples;
  hooks.tune = {};
  return self_train(policy, sampler, verifier, prompts, c, on_metrics, hooks, "star");
}

}  // namespace kaizen::loop
