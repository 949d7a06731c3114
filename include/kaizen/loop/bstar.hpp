// kaizen/loop/bstar.hpp - B-STaR: self-training that re-balances exploration and exploitation every iteration.
//
//   for t = 1..T:
//     tune:    on a held-out subset Q of training queries, for each temperature t_k of the grid sample K
//              responses per query from π_{t-1}; score them (selection score) and label them (verifier);
//              for each threshold τ of the grid compute the mean balance score (loop/balance.hpp);
//              take the (t, τ) with the highest score
//     grow:    sample N responses per training query at temperature t
//     filter:  keep responses with score > τ, best first, at most `cap` per query, distinct
//     improve: SFT on the kept set (from π_{t-1} by default: online rejection-sampling fine-tuning;
//              restart_from_base = true trains the base instead, as ReST-EM)
//     monitor: pass@K, pass@K-S, distinct correct, kept precision and balance score of the grown samples
//              at the chosen τ ("train_monitors"), and of Q at the chosen (t, τ) ("tuning")
//
// `scorer` is the selection reward (a reward model, or the verifier itself); `verifier` (0/1) labels
// correctness for the monitors and the balance score; the training queries need references for it.
//
// Reference: Zeng et al. 2024, "B-STaR: Monitoring and Balancing Exploration and Exploitation in
// Self-Taught Reasoners" (arXiv 2412.17256).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/balance.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/rejection_sampling.hpp>
#include <kaizen/loop/rollout.hpp>
#include <kaizen/loop/self_training.hpp>

namespace kaizen::loop {

struct BStarConfig {
  std::int64_t iterations = 3;           ///< T
  std::int64_t samples_per_prompt = 8;   ///< N on the training queries, >= 1
  std::int64_t tuning_samples = 8;       ///< K per held-out query at each grid temperature, >= 1
  std::vector<double> temperatures;      ///< the temperature grid, non-empty, each > 0
  std::vector<double> thresholds;        ///< the score-threshold grid, non-empty
  BalanceOptions balance{};              ///< n*, cap (also the training cap), S, distinct, skip_empty
  bool restart_from_base = false;        ///< false: improve π_{t-1} (online); true: improve the base
  SelfTrainingConfig engine{};           ///< SFT, sampling (temperature replaced), checkpoint settings
};

/// Labels `groups` (scores in rewards) with the verifier's 0/1 correctness.
template <OutcomeReward V>
[[nodiscard]] std::vector<LabelledGroup> label_groups(V& verifier, std::span<const Group> groups) {
  std::vector<LabelledGroup> out;
  out.reserve(groups.size());
  for (const Group& g : groups) {
    const std::vector<Prompt> repeated(g.completions.size(), g.prompt);
    std::vector<double> correct =
        score(verifier, std::span<const Prompt>(repeated), std::span<const Completion>(g.completions));
    for (double& c : correct) c = c > 0.5 ? 1.0 : 0.0;
    out.push_back(LabelledGroup{g, std::move(correct)});
  }
  return out;
}

/// Runs B-STaR (see the top of the file). Metrics: "bstar_iteration" with "tuning" {temperature, threshold,
/// monitors, table} and "train_monitors", and "bstar_sft". Throws kaizen::Error on an empty training or
/// tuning prompt set, an empty temperature or threshold grid, a temperature <= 0, N or K < 1, cap <= 0,
/// and everything self_train rejects.
template <Policy P, Sampler S, OutcomeReward Scorer, OutcomeReward V>
SelfTrainingResult bstar(P& policy, S& sampler, Scorer& scorer, V& verifier, std::span<const Prompt> prompts,
                         std::span<const Prompt> tuning_prompts, const BStarConfig& config,
                         const MetricsCallback& on_metrics = {}, SelfTrainingHooks hooks = {}) {
  KAIZEN_CHECK(!config.temperatures.empty(), "bstar: the temperature grid is empty; give at least one temperature");
  KAIZEN_CHECK(!config.thresholds.empty(), "bstar: the reward-threshold grid is empty; give at least one threshold");
  for (double t : config.temperatures)
    KAIZEN_CHECK(t > 0.0, "bstar: every grid temperature must be > 0, got ", t);
  KAIZEN_CHECK(!tuning_prompts.empty(), "bstar: the tuning (held-out query) set is empty");
  KAIZEN_CHECK(config.tuning_samples >= 1, "bstar: tuning_samples (K) must be >= 1, got ", config.tuning_samples);
  KAIZEN_CHECK(config.balance.cap > 0, "bstar: the per-query cap must be > 0, got ", config.balance.cap);
  SelfTrainingConfig c = config.engine;
  c.iterations = config.iterations;
  c.samples_per_prompt = config.samples_per_prompt;
  c.selection = {.threshold = config.thresholds.front(), .strict = true, .cap = config.balance.cap,
                 .distinct = config.balance.distinct};
  c.restart_from_base = config.restart_from_base;
  hooks.hint = {};
  hooks.tune = [&](std::int64_t, Rng& rng, SamplingParams& sampling, SelectionRule& rule, nlohmann::json& metrics) {
    auto sample_at = [&](double temperature) {
      SamplingParams p = sampling;
      p.temperature = temperature;
      const std::vector<Group> groups =
          rollout_groups(sampler, scorer, tuning_prompts, config.tuning_samples, p, rng, "bstar");
      return label_groups(verifier, std::span<const Group>(groups));
    };
    const TuneResult best = tune_balance(std::span<const double>(config.temperatures),
                                         std::span<const double>(config.thresholds), sample_at, config.balance);
    sampling.temperature = best.temperature;
    rule.threshold = best.threshold;
    metrics["tuning"] = {{"temperature", best.temperature}, {"threshold", best.threshold},
                         {"monitors", best.monitors.to_json()}, {"table", best.table}};
  };
  auto user_on_grown = std::move(hooks.on_grown);
  hooks.on_grown = [&, user_on_grown](std::span<const Group> groups, const SelectionRule& rule, nlohmann::json& metrics) {
    const std::vector<LabelledGroup> labelled = label_groups(verifier, groups);
    metrics["train_monitors"] = monitor(std::span<const LabelledGroup>(labelled), rule.threshold, config.balance).to_json();
    if (user_on_grown) user_on_grown(groups, rule, metrics);
  };
  return self_train(policy, sampler, scorer, prompts, c, on_metrics, hooks, "bstar");
}

}  // namespace kaizen::loop
