// kaizen/loop/multi_turn.hpp - two-attempt (self-correction) rollouts, the rollout stage of SCoRe
// (loop/score.hpp), and the self-correction metrics.
//
// For a prompt x, with a fixed correction instruction p (token ids) and the stop tokens S of the sampling
// parameters:
//   turn 1:  x₁ = x,                 y₁ ~ π(·|x₁)       G first attempts per prompt, one sampler call
//   turn 2:  x₂ = x ⊕ strip_S(y₁) ⊕ p, y₂ ~ π(·|x₂)     one second attempt per first attempt, one sampler call
// where strip_S(y₁) is y₁ without its trailing stop token (a truncated y₁ is kept whole). Both attempts are
// scored against the ORIGINAL prompt: r_k = reward(x, y_k) (x₂ keeps x's text, reference, id and category,
// so a verifier reading them checks the same problem).
//
// Metrics over n attempt pairs with c_k = [r_k ≥ threshold] (the paper's, Kumar et al. 2024, Table 2):
//   Accuracy@t1 = mean c₁            Accuracy@t2 = mean c₂            Δ(t1,t2) = Accuracy@t2 − Accuracy@t1
//   Δ^{i→c}     = mean [¬c₁ ∧ c₂]   (problems fixed by the second attempt)
//   Δ^{c→i}     = mean [c₁ ∧ ¬c₂]   (problems broken by it);         Δ(t1,t2) = Δ^{i→c} − Δ^{c→i}
//
// Reference: A. Kumar et al., "Training Language Models to Self-Correct via Reinforcement Learning",
// arXiv 2409.12917 (2024).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/error.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/rollout.hpp>

namespace kaizen::loop {

/// x₂ = x ⊕ y₁ (without a trailing stop token from `stop_tokens`) ⊕ `instruction`; text, reference, id and
/// category are x's.
[[nodiscard]] inline Prompt correction_prompt(const Prompt& x, const Completion& first,
                                              std::span<const TokenId> instruction,
                                              std::span<const TokenId> stop_tokens = {}) {
  Prompt out = x;
  std::span<const TokenId> y(first.tokens);
  if (!y.empty() && std::find(stop_tokens.begin(), stop_tokens.end(), y.back()) != stop_tokens.end())
    y = y.first(y.size() - 1);
  out.tokens.insert(out.tokens.end(), y.begin(), y.end());
  out.tokens.insert(out.tokens.end(), instruction.begin(), instruction.end());
  return out;
}

/// The two attempts of a batch, flattened prompt-major: entry p·G + i is the i-th first attempt at prompt p
/// and the second attempt that followed it.
struct TwoTurnRollouts {
  std::vector<Prompt> prompts;         ///< x, once per attempt pair
  std::vector<Prompt> second_prompts;  ///< x₂ of each pair
  std::vector<Completion> first;       ///< y₁
  std::vector<Completion> second;      ///< y₂
  std::vector<double> first_rewards;   ///< reward(x, y₁)
  std::vector<double> second_rewards;  ///< reward(x, y₂)
};

/// Rolls out G first attempts per prompt, then one second attempt per first attempt (see the top of the
/// file), and scores both against the original prompt. Engine draws: the turn-1 sampler seed, then the
/// turn-2 sampler seed. Throws kaizen::Error on an empty prompt set, group_size < 1, a sampler returning
/// the wrong count and everything kaizen::score rejects (`who` names the caller).
template <Sampler S, OutcomeReward R>
[[nodiscard]] TwoTurnRollouts two_turn_rollout(S& sampler, R& reward, std::span<const Prompt> prompts,
                                               std::int64_t group_size, const SamplingParams& params,
                                               std::span<const TokenId> instruction, Rng& rng,
                                               std::string_view who = "two_turn_rollout") {
  KAIZEN_CHECK(!prompts.empty(), who, ": expected at least one prompt, got none");
  TwoTurnRollouts out;
  out.first = sample_groups(sampler, prompts, group_size, params, rng, who);
  out.prompts = repeat_prompts(prompts, group_size);
  out.second_prompts.reserve(out.prompts.size());
  for (std::size_t i = 0; i < out.prompts.size(); ++i)
    out.second_prompts.push_back(correction_prompt(out.prompts[i], out.first[i], instruction, params.stop_tokens));
  out.second = sample_groups(sampler, std::span<const Prompt>(out.second_prompts), 1, params, rng, who);
  out.first_rewards = kaizen::score(reward, std::span<const Prompt>(out.prompts), std::span<const Completion>(out.first));
  out.second_rewards = kaizen::score(reward, std::span<const Prompt>(out.prompts), std::span<const Completion>(out.second));
  return out;
}

/// Accuracy@t1, Accuracy@t2, Δ(t1,t2), Δ^{i→c}, Δ^{c→i} (see the top of the file).
struct SelfCorrectionMetrics {
  double accuracy_t1 = 0.0;
  double accuracy_t2 = 0.0;
  double delta = 0.0;          ///< Accuracy@t2 − Accuracy@t1
  double delta_i_to_c = 0.0;   ///< fraction wrong at t1 and right at t2
  double delta_c_to_i = 0.0;   ///< fraction right at t1 and wrong at t2
  std::int64_t pairs = 0;      ///< n

  [[nodiscard]] nlohmann::json to_json() const {
    return {{"accuracy_t1", accuracy_t1}, {"accuracy_t2", accuracy_t2}, {"delta", delta},
            {"delta_i_to_c", delta_i_to_c}, {"delta_c_to_i", delta_c_to_i}, {"pairs", pairs}};
  }
};

/// The metrics of n attempt pairs from their rewards; an attempt is correct when its reward is >= threshold.
/// Throws kaizen::Error on sizes that differ, no pairs, or a non-finite reward or threshold.
[[nodiscard]] inline SelfCorrectionMetrics self_correction_metrics(std::span<const double> first_rewards,
                                                                   std::span<const double> second_rewards,
                                                                   double threshold = 1.0) {
  KAIZEN_CHECK(first_rewards.size() == second_rewards.size(), "self_correction_metrics: ", first_rewards.size(),
               " first-attempt rewards but ", second_rewards.size(), " second-attempt rewards");
  KAIZEN_CHECK(!first_rewards.empty(), "self_correction_metrics: expected at least one attempt pair, got none");
  KAIZEN_CHECK(std::isfinite(threshold), "self_correction_metrics: threshold must be finite, got ", threshold);
  SelfCorrectionMetrics m;
  m.pairs = static_cast<std::int64_t>(first_rewards.size());
  std::int64_t c1 = 0, c2 = 0, fixed = 0, broken = 0;
  for (std::size_t i = 0; i < first_rewards.size(); ++i) {
    KAIZEN_CHECK(std::isfinite(first_rewards[i]) && std::isfinite(second_rewards[i]), "self_correction_metrics: pair ",
                 i, " has rewards ", first_rewards[i], " and ", second_rewards[i], ", expected finite values");
    const bool a = first_rewards[i] >= threshold, b = second_rewards[i] >= threshold;
    c1 += a ? 1 : 0;
    c2 += b ? 1 : 0;
    fixed += (!a && b) ? 1 : 0;
    broken += (a && !b) ? 1 : 0;
  }
  const auto n = static_cast<double>(m.pairs);
  m.accuracy_t1 = static_cast<double>(c1) / n;
  m.accuracy_t2 = static_cast<double>(c2) / n;
  m.delta = static_cast<double>(c2 - c1) / n;  // exact: = (fixed − broken) / n
  m.delta_i_to_c = static_cast<double>(fixed) / n;
  m.delta_c_to_i = static_cast<double>(broken) / n;
  return m;
}

/// Held-out self-correction: `samples` attempt pairs per prompt with `params` (its seed replaced by draws
/// from an engine seeded with `seed`), scored by `reward`, summarised by self_correction_metrics.
template <Sampler S, OutcomeReward R>
[[nodiscard]] SelfCorrectionMetrics evaluate_self_correction(S& sampler, R& reward, std::span<const Prompt> prompts,
                                                             std::int64_t samples, const SamplingParams& params,
                                                             std::span<const TokenId> instruction, std::uint64_t seed,
                                                             double threshold = 1.0) {
  Rng rng(seed);
  const TwoTurnRollouts r =
      two_turn_rollout(sampler, reward, prompts, samples, params, instruction, rng, "evaluate_self_correction");
  return self_correction_metrics(r.first_rewards, r.second_rewards, threshold);
}

}  // namespace kaizen::loop
