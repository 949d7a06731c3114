// kaizen/core/reward.hpp - the reward concepts: OutcomeReward, Verifier, ProcessReward, and
// `score`, which calls either form of an outcome reward over a batch.
#pragma once

#include <cmath>
#include <concepts>
#include <span>
#include <string>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen {

/// A scalar reward for one completion: `r(prompt, completion) -> double`.
template <class R>
concept PerSampleReward = requires(R& r, const Prompt& prompt, const Completion& completion) {
  { r(prompt, completion) } -> std::convertible_to<double>;
};

/// The batched form: `r(prompts, completions) -> std::vector<double>`, prompts[i] paired with
/// completions[i]. Lets a reward model or a sandbox score many samples in one call.
template <class R>
concept BatchedReward = requires(R& r, std::span<const Prompt> prompts, std::span<const Completion> completions) {
  { r(prompts, completions) } -> std::convertible_to<std::vector<double>>;
};

/// An outcome reward: a scalar score for a whole completion, in either form above.
/// Contract: finite values (kaizen::score rejects non-finite ones with an error).
template <class R>
concept OutcomeReward = PerSampleReward<R> || BatchedReward<R>;

/// A verifier: `v(prompt, completion) -> bool`, true when the completion is correct.
/// Every Verifier is also an OutcomeReward (true = 1, false = 0).
template <class V>
concept Verifier = requires(V& v, const Prompt& prompt, const Completion& completion) {
  { v(prompt, completion) } -> std::same_as<bool>;
};

/// A process reward: one score per reasoning step,
/// `r(prompt, steps) -> std::vector<double>` with steps.size() scores (steps are the step texts).
template <class R>
concept ProcessReward = requires(R& r, const Prompt& prompt, std::span<const std::string> steps) {
  { r(prompt, steps) } -> std::convertible_to<std::vector<double>>;
};

/// Scores prompts[i] x completions[i] with either form of outcome reward. Throws kaizen::Error on
/// mismatched sizes, on a batched reward that returns the wrong count, and on a non-finite score.
template <OutcomeReward R>
[[nodiscard]] std::vector<double> score(R& reward, std::span<const Prompt> prompts,
                                        std::span<const Completion> completions) {
  KAIZEN_CHECK(prompts.size() == completions.size(), "score: ", prompts.size(), " prompts but ",
               completions.size(), " completions");
  std::vector<double> out;
  if constexpr (BatchedReward<R>) {
    out = reward(prompts, completions);
    KAIZEN_CHECK(out.size() == completions.size(), "score: the batched reward returned ", out.size(),
                 " scores for ", completions.size(), " completions");
  } else {
    out.reserve(completions.size());
    for (std::size_t i = 0; i < completions.size(); ++i)
      out.push_back(static_cast<double>(reward(prompts[i], completions[i])));
  }
  for (std::size_t i = 0; i < out.size(); ++i)
    KAIZEN_CHECK(std::isfinite(out[i]), "score: reward ", out[i], " for completion ", i, " is not finite");
  return out;
}

}  // namespace kaizen
