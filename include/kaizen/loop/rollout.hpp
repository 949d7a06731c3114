// kaizen/loop/rollout.hpp - stages 2-4 of every loop: roll out G samples per prompt, score them, and
// keep the groups worth training on.
//
//   sample_groups:  each prompt repeated G times (prompt-major: row p·G + i is sample i of prompt p),
//                   one sampler call whose seed is the next draw of the loop's engine
//   rollout_groups: sample_groups + kaizen::score -> one kaizen::Group per prompt
//   is_constant:    a group whose rewards are all equal carries no group-relative signal (DAPO drops it)
//   rollout_step:   draw prompts (curriculum or not), roll out, score and, with dynamic sampling, drop
//                   constant groups and draw fresh prompts to refill, up to max_refill_rounds extra rounds;
//                   the GRPO step's rollout stage, usable by any loop
//
// References: Yu et al. 2025, "DAPO" (dynamic sampling, arXiv 2503.14476).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/prompts.hpp>

namespace kaizen::loop {

/// Each prompt `group_size` times in a row.
[[nodiscard]] inline std::vector<Prompt> repeat_prompts(std::span<const Prompt> prompts, std::int64_t group_size) {
  KAIZEN_CHECK(group_size >= 1, "repeat_prompts: group_size must be >= 1, got ", group_size);
  std::vector<Prompt> out;
  out.reserve(prompts.size() * static_cast<std::size_t>(group_size));
  for (const Prompt& p : prompts)
    for (std::int64_t i = 0; i < group_size; ++i) out.push_back(p);
  return out;
}

/// Samples `group_size` completions per prompt in one sampler call with `params` whose seed is replaced
/// by `rng()`. Returns them prompt-major. Throws kaizen::Error when group_size < 1 or the sampler
/// returns the wrong count (`who` names the caller in the message).
template <Sampler S>
[[nodiscard]] std::vector<Completion> sample_groups(S& sampler, std::span<const Prompt> prompts, std::int64_t group_size,
                                                    SamplingParams params, Rng& rng, std::string_view who = "sample_groups") {
  KAIZEN_CHECK(group_size >= 1, who, ": samples per prompt must be >= 1, got ", group_size);
  const std::vector<Prompt> repeated = repeat_prompts(prompts, group_size);
  params.seed = rng();
  std::vector<Completion> out = sampler.sample(std::span<const Prompt>(repeated), params);
  KAIZEN_CHECK(out.size() == repeated.size(), who, ": the sampler returned ", out.size(), " completions for ",
               repeated.size(), " prompts");
  return out;
}

/// Samples `group_size` completions per prompt and scores them: one Group per prompt, in order.
template <Sampler S, OutcomeReward R>
[[nodiscard]] std::vector<Group> rollout_groups(S& sampler, R& reward, std::span<const Prompt> prompts,
                                                std::int64_t group_size, const SamplingParams& params, Rng& rng,
                                                std::string_view who = "rollout_groups") {
  std::vector<Completion> completions = sample_groups(sampler, prompts, group_size, params, rng, who);
  const std::vector<Prompt> repeated = repeat_prompts(prompts, group_size);
  const std::vector<double> rewards =
      score(reward, std::span<const Prompt>(repeated), std::span<const Completion>(completions));
  std::vector<Group> out(prompts.size());
  const auto G = static_cast<std::size_t>(group_size);
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    out[p].prompt = prompts[p];
    for (std::size_t i = 0; i < G; ++i) {
      out[p].completions.push_back(std::move(completions[p * G + i]));
      out[p].rewards.push_back(rewards[p * G + i]);
    }
  }
  return out;
}

/// True when every reward equals the first (an empty span is constant).
[[nodiscard]] inline bool is_constant(std::span<const double> rewards) noexcept {
  for (double r : rewards)
    if (r != rewards.front()) return false;
  return true;
}

/// The kept groups of one step, flattened prompt-major, and what it cost to get them.
struct StepRollouts {
  std::vector<Prompt> prompts;          ///< kept prompts
  std::vector<ArmId> arms;              ///< the arm of each kept prompt
  std::vector<Completion> completions;  ///< G per kept prompt, prompt-major
  std::vector<double> rewards;          ///< one per completion
  std::int64_t sampled_groups = 0;      ///< groups sampled, kept or not
  std::int64_t dropped_groups = 0;      ///< groups dropped by dynamic sampling
  std::int64_t sampled_tokens = 0;      ///< completion tokens sampled, kept or not
  double reward_sum = 0.0;              ///< over every sampled completion
};

struct RolloutOptions {
  std::int64_t prompts = 16;            ///< groups wanted, > 0
  std::int64_t group_size = 8;          ///< G, >= 1
  bool dynamic_sampling = false;        ///< drop groups whose rewards are all equal
  std::int64_t max_refill_rounds = 0;   ///< extra rounds to refill dropped groups, >= 0
  std::string_view who = "rollout_step";  ///< names the caller in error messages
};

/// Draws prompts (see draw_prompts), rolls out and scores G samples per prompt, and with dynamic sampling
/// keeps only non-constant groups, refilling with fresh prompts for up to `max_refill_rounds` more rounds.
/// Engine draws per round, in order: curriculum/source draws, then one sampler seed.
template <Sampler S, OutcomeReward R, PromptSource Src, class C = NoCurriculum>
[[nodiscard]] StepRollouts rollout_step(S& sampler, R& reward, Src& source, const RolloutOptions& options,
                                        const SamplingParams& params, Rng& rng, C* curriculum = nullptr) {
  KAIZEN_CHECK(options.prompts > 0, "rollout_step: prompts must be > 0, got ", options.prompts);
  KAIZEN_CHECK(options.group_size >= 1, "rollout_step: group_size must be >= 1, got ", options.group_size);
  KAIZEN_CHECK(options.max_refill_rounds >= 0, "rollout_step: max_refill_rounds must be >= 0, got ",
               options.max_refill_rounds);
  StepRollouts out;
  const auto G = static_cast<std::size_t>(options.group_size);
  std::int64_t needed = options.prompts;
  const std::int64_t rounds = options.dynamic_sampling ? options.max_refill_rounds : 0;
  for (std::int64_t round = 0; round <= rounds && needed > 0; ++round) {
    DrawnPrompts drawn = draw_prompts(source, needed, rng, curriculum);
    std::vector<Completion> completions =
        sample_groups(sampler, std::span<const Prompt>(drawn.prompts), options.group_size, params, rng, options.who);
    const std::vector<Prompt> repeated = repeat_prompts(std::span<const Prompt>(drawn.prompts), options.group_size);
    const std::vector<double> rewards =
        score(reward, std::span<const Prompt>(repeated), std::span<const Completion>(completions));
    out.sampled_groups += needed;
    for (std::size_t p = 0; p < drawn.prompts.size(); ++p) {
      for (std::size_t i = 0; i < G; ++i) {
        out.reward_sum += rewards[p * G + i];
        out.sampled_tokens += static_cast<std::int64_t>(completions[p * G + i].tokens.size());
      }
      if (options.dynamic_sampling && is_constant(std::span<const double>(rewards).subspan(p * G, G))) {
        ++out.dropped_groups;
        continue;
      }
      out.prompts.push_back(std::move(drawn.prompts[p]));
      out.arms.push_back(drawn.arms[p]);
      for (std::size_t i = 0; i < G; ++i) {
        out.completions.push_back(std::move(completions[p * G + i]));
        out.rewards.push_back(rewards[p * G + i]);
      }
      --needed;
      if (needed == 0) break;
    }
  }
  return out;
}

}  // namespace kaizen::loop
