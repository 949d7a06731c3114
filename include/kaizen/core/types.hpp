// kaizen/core/types.hpp - the plain value types that travel through a training step:
// Prompt -> (sampler) -> Completion -> (reward) -> Rollout / Group -> (collate) -> TokenBatch.
// None of them depends on LibTorch, so CPU-side code (curricula, search, votes) stays light.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <kaizen/core/error.hpp>

namespace kaizen {

/// A token id of the model's vocabulary.
using TokenId = std::int64_t;

/// One problem put to the model.
struct Prompt {
  std::vector<TokenId> tokens;  ///< the prompt's token ids, as the model reads them
  std::string text;             ///< the prompt's text (optional; for rewards, logs and judges)
  std::string reference;        ///< the reference answer a verifier checks against (optional)
  std::int64_t id = -1;         ///< problem id in its pool (optional)
  std::int64_t category = -1;   ///< category / difficulty label, the curriculum's arm (optional)
};

/// Why a completion ended.
enum class FinishReason : std::uint8_t {
  stop,    ///< the sampler produced a stop token (the stop token is part of `tokens`)
  length,  ///< max_new_tokens reached: the completion is truncated
  abort,   ///< the caller or the engine cut it short for another reason
};

[[nodiscard]] constexpr std::string_view to_string(FinishReason reason) noexcept {
  switch (reason) {
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::abort: return "abort";
  }
  return "unknown";
}

/// One sampled continuation of a prompt.
struct Completion {
  std::vector<TokenId> tokens;  ///< generated token ids (the stop token included when finish == stop)
  /// log pi_sampler(tokens[t] | prompt, tokens[<t]) under the *same* temperature / top-k / top-p /
  /// min-p transform the trainer uses; one per token.
  std::vector<float> logprobs;
  FinishReason finish = FinishReason::stop;
  std::string text;  ///< decoded text (optional)
};

/// How a sampler draws. The trainer must compute log-probs under the same transform.
struct SamplingParams {
  double temperature = 1.0;             ///< > 0; logits are divided by it
  std::int64_t top_k = 0;               ///< keep the k largest logits; 0 = off
  double top_p = 1.0;                   ///< keep the smallest set with mass >= top_p; 1 = off
  double min_p = 0.0;                   ///< drop tokens with p < min_p * p_max; 0 = off
  std::int64_t max_new_tokens = 256;    ///< > 0
  std::vector<TokenId> stop_tokens;     ///< generation of any of these ends the completion
  std::uint64_t seed = 0;               ///< seeds the sampler's engine for this call
};

/// Throws kaizen::Error unless the parameters describe a valid transform.
inline void validate(const SamplingParams& p) {
  KAIZEN_CHECK(p.temperature > 0.0, "SamplingParams: temperature must be > 0, got ", p.temperature);
  KAIZEN_CHECK(p.top_k >= 0, "SamplingParams: top_k must be >= 0 (0 = off), got ", p.top_k);
  KAIZEN_CHECK(p.top_p > 0.0 && p.top_p <= 1.0, "SamplingParams: top_p must be in (0, 1], got ", p.top_p);
  KAIZEN_CHECK(p.min_p >= 0.0 && p.min_p < 1.0, "SamplingParams: min_p must be in [0, 1), got ", p.min_p);
  KAIZEN_CHECK(p.max_new_tokens > 0, "SamplingParams: max_new_tokens must be > 0, got ", p.max_new_tokens);
}

/// A prompt, one completion of it, its reward, and the group (prompt) it belongs to.
struct Rollout {
  std::vector<TokenId> prompt;  ///< prompt token ids
  Completion completion;
  double reward = 0.0;
  std::int64_t group = -1;  ///< rollouts with the same group id share a prompt (GRPO's group)
};

/// One prompt and the G completions sampled for it, with their rewards.
struct Group {
  Prompt prompt;
  std::vector<Completion> completions;
  std::vector<double> rewards;  ///< one per completion (filled by the reward step)
};

/// Flattens groups into rollouts, group id = index of the group in `groups`.
/// Throws kaizen::Error when a group's rewards do not match its completions.
[[nodiscard]] inline std::vector<Rollout> to_rollouts(std::span<const Group> groups) {
  std::vector<Rollout> out;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const Group& group = groups[g];
    KAIZEN_CHECK(group.rewards.size() == group.completions.size(), "to_rollouts: group ", g, " has ",
                 group.completions.size(), " completions but ", group.rewards.size(), " rewards");
    for (std::size_t i = 0; i < group.completions.size(); ++i) {
      out.push_back(Rollout{group.prompt.tokens, group.completions[i], group.rewards[i],
                            static_cast<std::int64_t>(g)});
    }
  }
  return out;
}

}  // namespace kaizen
