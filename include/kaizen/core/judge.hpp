// kaizen/core/judge.hpp - the Judge concept: scores a set of candidate completions of one prompt,
//   judge(prompt, candidates) -> std::vector<double>,  one finite score per candidate, higher is better,
// and judge_scores(), which calls a judge and checks what it returned.
//
// A judge sees the candidates of one prompt together, so it may compare them (a pairwise or listwise
// LLM judge) or score each alone (a verifier, a reward model: loop/judges.hpp adapts those). Iterated
// preference optimisation (loop/iterative_dpo.hpp, loop/self_rewarding.hpp) ranks a policy's own samples
// with a judge and trains on the best-vs-worst pairs.
//
// References: Yuan et al. 2024, "Self-Rewarding Language Models" (arXiv 2401.10020: the policy as its own
// LLM-as-a-judge); Zheng et al. 2023, "Judging LLM-as-a-Judge" (arXiv 2306.05685).
#pragma once

#include <cmath>
#include <concepts>
#include <span>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen {

/// Scores the candidate completions of one prompt.
///
/// Required expression (j: J&, prompt: const Prompt&, candidates: std::span<const Completion>):
/// @code
///   j(prompt, candidates) -> std::vector<double>   // scores[i] judges candidates[i]
/// @endcode
/// Contract the compiler cannot check: exactly candidates.size() scores, all finite (judge_scores checks
/// both and throws kaizen::Error otherwise); a judge that samples draws from its own seeded state, so equal
/// states give equal scores.
template <class J>
concept Judge = requires(J& j, const Prompt& prompt, std::span<const Completion> candidates) {
  { j(prompt, candidates) } -> std::convertible_to<std::vector<double>>;
};

/// Calls `judge` on the candidates of one prompt and checks the result. Throws kaizen::Error when the
/// judge returns another number of scores than candidates, or a non-finite score (with its index).
template <Judge J>
[[nodiscard]] std::vector<double> judge_scores(J& judge, const Prompt& prompt, std::span<const Completion> candidates) {
  std::vector<double> scores = judge(prompt, candidates);
  KAIZEN_CHECK(scores.size() == candidates.size(), "judge_scores: the judge returned ", scores.size(), " scores for ",
               candidates.size(), " candidates");
  for (std::size_t i = 0; i < scores.size(); ++i)
    KAIZEN_CHECK(std::isfinite(scores[i]), "judge_scores: the judge's score ", scores[i], " for candidate ", i,
                 " is not finite");
  return scores;
}

}  // namespace kaizen
