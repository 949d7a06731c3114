// kaizen/search/self_prm.hpp - self-PRM reranking: best-of-N in which the policy itself, prompted as a
// step judge (same weights as the generator), scores every step of its own candidates.
//
// For a question x and candidates y_1..y_N, each split into steps s_i1..s_iK_i:
//   judge prompt   J(x, s_i1..s_ik)          (the caller's template: question, steps 1..k, "is step k correct?")
//   step score     p_ik = judge(J) ∈ [0, 1]   (e.g. lm::YesNoJudge: p(yes) / (p(yes) + p(no)) of the policy)
//   candidate      S_i = agg_k p_ik,  agg ∈ {min (default), product, mean, last}   (StepValue of
//                  process_reward_adapter.hpp); a candidate with no step scores 0
//   choice         î = argmax_i S_i
// Tie rule (documented, deterministic): equal S_i are ordered by the higher mean step score, then by the
// higher sequence log-likelihood Σ_t log π(y_t) when every tied candidate has log-probs (the policy's own
// preference), then by the lower index.
// All judge prompts of a call (Σ_i K_i of them) go to the judge in ONE batched call.
// SelfPrm is the same judge as a kaizen::ProcessReward (prompt, steps) -> p_1..p_K, so MCTS and beam
// search (process_reward_adapter.hpp) can be guided by the policy's self-judgement too.
// Errors: a judge returning another count than prompts, or a score outside [0, 1] or non-finite, is a
// kaizen::Error naming the candidate, the step and the value; so is an empty candidate set.
//
// References: Lightman et al., "Let's Verify Step by Step" (2023, arXiv 2305.20050) - min / product
// aggregation of step scores for best-of-N; Zheng et al., "Judging LLM-as-a-Judge" (2023,
// arXiv 2306.05685) and Yuan et al., "Self-Rewarding Language Models" (2024, arXiv 2401.10020) - the
// policy as its own judge; p(yes)/(p(yes)+p(no)) as the judge score as in AlphaLLM's LM critics
// (Tian et al., 2024, arXiv 2404.12253).
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/search/process_reward_adapter.hpp>

namespace kaizen::search {

/// A batched step judge: judge(prompts) -> one probability in [0, 1] per judge prompt.
template <class J>
concept StepJudge = requires(J& j, std::span<const Prompt> prompts) {
  { j(prompts) } -> std::convertible_to<std::vector<double>>;
};

/// Builds the judge prompt for steps 1..k of a solution: make(question, steps) with steps.size() == k.
template <class M>
concept JudgePromptBuilder = requires(M& m, const Prompt& question, std::span<const std::string> steps) {
  { m(question, steps) } -> std::convertible_to<Prompt>;
};

/// Options of self-PRM reranking.
struct SelfPrmOptions {
  StepValue aggregation = StepValue::min;  ///< how step scores make a candidate's score
};

/// The choice and every score.
struct SelfPrmRanking {
  std::size_t index = 0;                       ///< the chosen candidate
  double score = 0.0;                          ///< its aggregated score
  std::vector<double> scores;                  ///< S_i per candidate
  std::vector<std::vector<double>> step_scores;  ///< p_ik per candidate and step
  std::size_t judge_prompts = 0;               ///< prompts sent to the judge
};

/// Aggregates step scores (a candidate with none scores 0).
[[nodiscard]] inline double aggregate_steps(std::span<const double> p, StepValue rule) {
  if (p.empty()) return 0.0;
  double v = rule == StepValue::product ? 1.0 : 0.0;
  for (std::size_t k = 0; k < p.size(); ++k) {
    switch (rule) {
      case StepValue::last: v = p[k]; break;
      case StepValue::min: v = k == 0 ? p[k] : std::min(v, p[k]); break;
      case StepValue::mean: v += p[k] / static_cast<double>(p.size()); break;
      case StepValue::product: v *= p[k]; break;
    }
  }
  return v;
}

namespace detail {

/// Calls the judge and checks count and range; `owner(i)` describes judge prompt i in errors.
template <StepJudge J, class Owner>
[[nodiscard]] std::vector<double> judge_checked(J& judge, std::span<const Prompt> prompts, Owner&& owner) {
  std::vector<double> p = judge(prompts);
  KAIZEN_CHECK(p.size() == prompts.size(), "self-PRM: the judge returned ", p.size(), " scores for ", prompts.size(),
               " judge prompts");
  for (std::size_t i = 0; i < p.size(); ++i)
    KAIZEN_CHECK(std::isfinite(p[i]) && p[i] >= 0.0 && p[i] <= 1.0, "self-PRM: the judge scored ", owner(i), " as ",
                 p[i], ", expected a probability in [0, 1]");
  return p;
}

}  // namespace detail

/// Reranks `candidates` of `question` (see the file comment). `steps_of(candidate) -> std::vector<std::string>`
/// splits a candidate into its step texts. Throws kaizen::Error on an empty candidate set and on judge
/// scores of the wrong count or outside [0, 1].
template <StepJudge J, JudgePromptBuilder M, class Split>
  requires requires(Split& s, const Completion& c) { { s(c) } -> std::convertible_to<std::vector<std::string>>; }
[[nodiscard]] SelfPrmRanking self_prm_rerank(const Prompt& question, std::span<const Completion> candidates,
                                             Split&& steps_of, M&& make_prompt, J& judge, const SelfPrmOptions& options = {}) {
  KAIZEN_CHECK(!candidates.empty(), "self_prm_rerank: expected at least one candidate, got none");
  std::vector<Prompt> prompts;
  std::vector<std::pair<std::size_t, std::size_t>> owner;  // (candidate, step)
  std::vector<std::size_t> counts(candidates.size(), 0);
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const std::vector<std::string> steps = steps_of(candidates[i]);
    counts[i] = steps.size();
    for (std::size_t k = 1; k <= steps.size(); ++k) {
      prompts.push_back(make_prompt(question, std::span<const std::string>(steps.data(), k)));
      owner.emplace_back(i, k - 1);
    }
  }
  SelfPrmRanking out;
  out.judge_prompts = prompts.size();
  std::vector<double> p;
  if (!prompts.empty())
    p = detail::judge_checked(judge, std::span<const Prompt>(prompts), [&](std::size_t j) {
      return "step " + std::to_string(owner[j].second) + " of candidate " + std::to_string(owner[j].first);
    });
  out.step_scores.resize(candidates.size());
  std::size_t at = 0;
  std::vector<double> means(candidates.size(), 0.0);
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    out.step_scores[i].assign(p.begin() + static_cast<std::ptrdiff_t>(at), p.begin() + static_cast<std::ptrdiff_t>(at + counts[i]));
    at += counts[i];
    out.scores.push_back(aggregate_steps(out.step_scores[i], options.aggregation));
    means[i] = aggregate_steps(out.step_scores[i], StepValue::mean);
  }
  // Ties: higher mean step score, then higher log-likelihood (when both have log-probs), then lower index.
  auto loglik = [&](std::size_t i) {
    double s = 0.0;
    for (float lp : candidates[i].logprobs) s += static_cast<double>(lp);
    return s;
  };
  for (std::size_t i = 1; i < candidates.size(); ++i) {
    const std::size_t b = out.index;
    bool better = out.scores[i] > out.scores[b];
    if (out.scores[i] == out.scores[b]) {
      if (means[i] != means[b]) better = means[i] > means[b];
      else if (!candidates[i].logprobs.empty() && !candidates[b].logprobs.empty()) better = loglik(i) > loglik(b);
    }
    if (better) out.index = i;
  }
  out.score = out.scores[out.index];
  return out;
}

/// The step judge as a kaizen::ProcessReward: (question, steps) -> p_1..p_K, one judge call per call.
/// Holds references to the judge and the prompt builder.
template <StepJudge J, JudgePromptBuilder M>
class SelfPrm {
 public:
  SelfPrm(J& judge, M& make_prompt) : judge_(judge), make_prompt_(make_prompt) {}

  [[nodiscard]] std::vector<double> operator()(const Prompt& question, std::span<const std::string> steps) {
    std::vector<Prompt> prompts;
    for (std::size_t k = 1; k <= steps.size(); ++k) prompts.push_back(make_prompt_(question, steps.first(k)));
    if (prompts.empty()) return {};
    return detail::judge_checked(judge_, std::span<const Prompt>(prompts),
                                 [](std::size_t k) { return "step " + std::to_string(k); });
  }

 private:
  J& judge_;
  M& make_prompt_;
};

}  // namespace kaizen::search
