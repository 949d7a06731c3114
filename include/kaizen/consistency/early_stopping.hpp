// kaizen/consistency/early_stopping.hpp - self-consistency that stops sampling once the vote is
// settled: early-stopping self-consistency (a window of samples agrees) and adaptive consistency
// (the leader is confidently ahead of the runner-up).
//
// Early-stopping self-consistency (ESC; Li et al., "Escape Sky-high Cost: Early-stopping
// Self-Consistency for Multi-step Reasoning", ICLR 2024, arXiv 2401.10480): draw samples in windows
// of w; stop as soon as every sample of the latest window gives the same answer (the window's answer
// entropy is zero); otherwise continue until max_samples. The answer is the majority vote over every
// sample drawn.
//
// Adaptive consistency (Aggarwal et al., "Let's Sample Step by Step: Adaptive-Consistency for
// Efficient Reasoning and Coding with LLMs", EMNLP 2023, arXiv 2305.11860), Beta stopping rule: with
// v1, v2 the vote counts of the leader and the runner-up, the posterior probability that the leader
// is the more likely answer under a uniform prior is
//     P(p1 > p2) = P(X > 1/2),  X ~ Beta(v1 + 1, v2 + 1)
//                = Σ_{j=0}^{v1} C(n, j) / 2^n,  n = v1 + v2 + 1
// (the Beta–binomial identity). Sampling stops once P ≥ threshold (default 0.95) or at max_samples.
// Example: unanimous samples give 0.75, 0.875, 0.9375, 0.96875 after 1..4 draws, so 4 draws suffice
// at 0.95.
//
// Both take a draw function `draw(n) -> range of answers` (T or std::optional<T>), called with the
// number of samples wanted next, so a sampler can serve a whole window in one batch.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <iterator>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

#include <kaizen/consistency/vote.hpp>
#include <kaizen/core/error.hpp>

namespace kaizen::consistency {

/// A source of sampled answers: `draw(std::size_t n)` returns a sized range of n answers,
/// each T or std::optional<T> (std::nullopt = the sample gave no answer).
template <class D>
concept AnswerSource = requires(D& draw, std::size_t n) {
  { draw(n) } -> std::ranges::sized_range;
};

/// A vote that stopped sampling early, and how many samples it used.
template <class T>
struct StoppedVote {
  std::optional<VoteResult<T>> vote;  ///< majority over every drawn sample; nullopt if all abstained
  std::size_t samples = 0;            ///< samples drawn
  bool stopped_early = false;         ///< true when the stopping rule fired before max_samples
  double leader_probability = 0.0;    ///< adaptive consistency: P(leader beats runner-up) at stop
};

namespace detail {
template <class D>
using drawn_value_t = std::remove_cvref_t<std::ranges::range_value_t<std::invoke_result_t<D&, std::size_t>>>;
template <class D>
using drawn_answer_t = typename AnswerTraits<drawn_value_t<D>>::type;

template <class D>
std::size_t append_draw(D& draw, std::size_t n, std::vector<drawn_value_t<D>>& all, const char* who) {
  auto batch = draw(n);
  const auto got = static_cast<std::size_t>(std::ranges::size(batch));
  KAIZEN_CHECK(got == n, who, ": the answer source returned ", got, " answers, expected ", n);
  for (auto&& answer : batch) all.push_back(std::forward<decltype(answer)>(answer));
  return got;
}
}  // namespace detail

/// Options of early_stopping_vote.
struct EarlyStoppingOptions {
  std::size_t window = 5;        ///< samples per window (> 0); stop when one window agrees
  std::size_t max_samples = 40;  ///< budget (>= window); the last window may be shorter
};

/// Early-stopping self-consistency (see the header comment). Throws kaizen::Error on a zero window,
/// max_samples < window, or an answer source that returns the wrong count.
template <AnswerSource D>
[[nodiscard]] StoppedVote<detail::drawn_answer_t<D>> early_stopping_vote(D&& draw,
                                                                        const EarlyStoppingOptions& options = {}) {
  KAIZEN_CHECK(options.window > 0, "early_stopping_vote: expected window > 0, got 0");
  KAIZEN_CHECK(options.max_samples >= options.window, "early_stopping_vote: expected max_samples >= window, got ",
               options.max_samples, " < ", options.window);
  using Value = detail::drawn_value_t<D>;
  using Traits = detail::AnswerTraits<Value>;
  std::vector<Value> all;
  all.reserve(options.max_samples);
  StoppedVote<detail::drawn_answer_t<D>> out;
  while (all.size() < options.max_samples) {
    const std::size_t start = all.size();
    const std::size_t n = std::min(options.window, options.max_samples - start);
    detail::append_draw(draw, n, all, "early_stopping_vote");
    bool agree = n == options.window;
    const auto* first = Traits::get(all[start]);
    for (std::size_t i = start; agree && i < all.size(); ++i) {
      const auto* answer = Traits::get(all[i]);
      agree = answer != nullptr && first != nullptr && *answer == *first;
    }
    if (agree) {
      out.stopped_early = all.size() < options.max_samples;
      break;
    }
  }
  out.samples = all.size();
  out.vote = majority_vote(all);
  return out;
}

/// P(p_leader > p_runner_up) = P(Beta(leader + 1, runner_up + 1) > 1/2), exactly (see the header
/// comment). Throws kaizen::Error when runner_up > leader.
[[nodiscard]] inline double leader_probability(std::size_t leader, std::size_t runner_up) {
  KAIZEN_CHECK(runner_up <= leader, "leader_probability: expected runner_up <= leader, got ", runner_up, " > ", leader);
  const std::size_t n = leader + runner_up + 1;
  // Σ_{j=0}^{leader} C(n, j) 2^-n, each term in log space (n can exceed what doubles hold as 2^n).
  const double log_half_n = -static_cast<double>(n) * std::log(2.0);
  const double lg_n1 = std::lgamma(static_cast<double>(n) + 1.0);
  double sum = 0.0;
  for (std::size_t j = 0; j <= leader; ++j) {
    const auto jj = static_cast<double>(j);
    sum += std::exp(lg_n1 - std::lgamma(jj + 1.0) - std::lgamma(static_cast<double>(n) - jj + 1.0) + log_half_n);
  }
  return std::min(sum, 1.0);
}

/// Options of adaptive_consistency_vote.
struct AdaptiveConsistencyOptions {
  double threshold = 0.95;       ///< stop when P(leader beats runner-up) >= threshold, in (0.5, 1)
  std::size_t batch = 1;         ///< samples drawn per step (> 0)
  std::size_t min_samples = 1;   ///< never stop before this many samples
  std::size_t max_samples = 40;  ///< budget (> 0)
};

/// Adaptive consistency with the Beta stopping rule (see the header comment); abstaining samples do
/// not count as votes. Throws kaizen::Error on a threshold outside (0.5, 1), a zero batch or budget,
/// min_samples > max_samples, or an answer source that returns the wrong count.
template <AnswerSource D>
[[nodiscard]] StoppedVote<detail::drawn_answer_t<D>> adaptive_consistency_vote(
    D&& draw, const AdaptiveConsistencyOptions& options = {}) {
  KAIZEN_CHECK(options.threshold > 0.5 && options.threshold < 1.0,
               "adaptive_consistency_vote: expected threshold in (0.5, 1), got ", options.threshold);
  KAIZEN_CHECK(options.batch > 0, "adaptive_consistency_vote: expected batch > 0, got 0");
  KAIZEN_CHECK(options.max_samples > 0, "adaptive_consistency_vote: expected max_samples > 0, got 0");
  KAIZEN_CHECK(options.min_samples <= options.max_samples, "adaptive_consistency_vote: expected min_samples <= ",
               "max_samples, got ", options.min_samples, " > ", options.max_samples);
  using Value = detail::drawn_value_t<D>;
  std::vector<Value> all;
  all.reserve(options.max_samples);
  StoppedVote<detail::drawn_answer_t<D>> out;
  while (all.size() < options.max_samples) {
    const std::size_t n = std::min(options.batch, options.max_samples - all.size());
    detail::append_draw(draw, n, all, "adaptive_consistency_vote");
    out.vote = majority_vote(all);
    out.leader_probability =
        out.vote ? leader_probability(static_cast<std::size_t>(out.vote->support),
                                      static_cast<std::size_t>(out.vote->runner_up))
                 : 0.0;
    if (all.size() >= options.min_samples && out.leader_probability >= options.threshold) {
      out.stopped_early = all.size() < options.max_samples;
      break;
    }
  }
  out.samples = all.size();
  return out;
}

}  // namespace kaizen::consistency
