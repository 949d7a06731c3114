// kaizen/consistency/vote.hpp - majority and weighted votes over sampled answers (self-consistency).
//
//   majority:  â = argmax_a Σ_i 1[ans_i = a]
//   weighted:  â = argmax_a Σ_i w_i · 1[ans_i = a]      (w_i ≥ 0: a verifier / PRM score, a reward,
//                                                        or a sequence probability, see
//                                                        weights_from_logprobs)
// Tie rule: among answers with equal support the one that occurs FIRST in the input wins, so a vote
// is a deterministic function of the ordered samples. Samples without an answer (std::nullopt)
// abstain: they count in `abstained` but not in the support or the total.
//
// Reported with the winner: its support, the runner-up's support, the total over answered samples,
// confidence = support / total and margin = (support − runner_up) / total, both in [0, 1].
//
// Answers are any equality-comparable, std::hash-able type (normalised strings from
// extract_answer, integers, ...); a range element may be T or std::optional<T>.
//
// References: Wang et al., "Self-Consistency Improves Chain of Thought Reasoning in Language Models"
// (2022, arXiv 2203.11171); weighted votes as in Li et al., "Making Large Language Models Better
// Reasoners with Step-Aware Verifier" (2022, arXiv 2206.02336).
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <ranges>
#include <span>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>

namespace kaizen::consistency {

/// The winner of a vote and how clearly it won.
template <class T>
struct VoteResult {
  T answer{};                  ///< the winning answer
  double support = 0.0;        ///< its vote count (majority) or summed weight (weighted)
  double runner_up = 0.0;      ///< the support of the best other answer (0 when there is none)
  double total = 0.0;          ///< support summed over every answered sample
  double confidence = 0.0;     ///< support / total
  double margin = 0.0;         ///< (support − runner_up) / total
  std::size_t first_index = 0; ///< index of the first sample that gave `answer`
  std::size_t answered = 0;    ///< samples with an answer
  std::size_t abstained = 0;   ///< samples without one (std::nullopt)
  std::size_t distinct = 0;    ///< distinct answers among the answered samples
};

namespace detail {

template <class V>
struct AnswerTraits {
  using type = V;
  static const V* get(const V& v) noexcept { return &v; }
};
template <class V>
struct AnswerTraits<std::optional<V>> {
  using type = V;
  static const V* get(const std::optional<V>& v) noexcept { return v ? &*v : nullptr; }
};

template <class R>
using answer_t = typename AnswerTraits<std::remove_cvref_t<std::ranges::range_value_t<R>>>::type;

/// Tallies weights per answer in first-occurrence order, then picks the winner.
template <class T, class Range, class WeightAt>
std::optional<VoteResult<T>> tally(const Range& answers, WeightAt&& weight_at) {
  using Traits = AnswerTraits<std::remove_cvref_t<std::ranges::range_value_t<Range>>>;
  std::unordered_map<T, std::size_t> slot_of;
  std::vector<std::pair<double, std::size_t>> slots;  // (support, first index), in first-occurrence order
  std::vector<const T*> keys;
  VoteResult<T> out;
  std::size_t i = 0;
  for (const auto& element : answers) {
    const T* answer = Traits::get(element);
    if (answer == nullptr) {
      ++out.abstained;
    } else {
      const double w = weight_at(i);
      auto [it, inserted] = slot_of.try_emplace(*answer, slots.size());
      if (inserted) {
        slots.emplace_back(0.0, i);
        keys.push_back(&it->first);
      }
      slots[it->second].first += w;
      out.total += w;
      ++out.answered;
    }
    ++i;
  }
  if (out.answered == 0) return std::nullopt;
  std::size_t best = 0;
  for (std::size_t s = 1; s < slots.size(); ++s)
    if (slots[s].first > slots[best].first) best = s;  // strict: earlier first occurrence wins ties
  for (std::size_t s = 0; s < slots.size(); ++s)
    if (s != best && slots[s].first > out.runner_up) out.runner_up = slots[s].first;
  out.answer = *keys[best];
  out.support = slots[best].first;
  out.first_index = slots[best].second;
  out.distinct = slots.size();
  out.confidence = out.total > 0.0 ? out.support / out.total : 0.0;
  out.margin = out.total > 0.0 ? (out.support - out.runner_up) / out.total : 0.0;
  return out;
}

}  // namespace detail

/// Majority vote (self-consistency) over `answers`, elements T or std::optional<T>.
/// Returns std::nullopt when every sample abstained. Throws kaizen::Error when `answers` is empty.
/// Ties go to the answer that occurs first.
template <std::ranges::forward_range R>
[[nodiscard]] std::optional<VoteResult<detail::answer_t<R>>> majority_vote(R&& answers) {
  KAIZEN_CHECK(!std::ranges::empty(answers), "majority_vote: expected at least one answer, got none");
  return detail::tally<detail::answer_t<R>>(answers, [](std::size_t) { return 1.0; });
}

/// Weighted vote: the answer with the largest summed weight; weights[i] belongs to answers[i].
/// Returns std::nullopt when every sample abstained. Throws kaizen::Error when `answers` is empty,
/// when the sizes differ, when a weight is negative or not finite, or when the answered samples'
/// weights sum to zero. Ties go to the answer that occurs first.
template <std::ranges::forward_range R, std::ranges::forward_range W>
  requires std::convertible_to<std::ranges::range_value_t<W>, double>
[[nodiscard]] std::optional<VoteResult<detail::answer_t<R>>> weighted_vote(R&& answers, W&& weights) {
  const auto n = static_cast<std::size_t>(std::ranges::distance(answers));
  const auto n_weights = static_cast<std::size_t>(std::ranges::distance(weights));
  KAIZEN_CHECK(n > 0, "weighted_vote: expected at least one answer, got none");
  KAIZEN_CHECK(n == n_weights, "weighted_vote: expected one weight per answer, got ", n, " answers and ", n_weights,
               " weights");
  std::vector<double> w;
  w.reserve(n);
  for (const auto& x : weights) {
    const double v = static_cast<double>(x);
    KAIZEN_CHECK(std::isfinite(v) && v >= 0.0, "weighted_vote: expected finite non-negative weights, got ", v,
                 " at index ", w.size());
    w.push_back(v);
  }
  auto result = detail::tally<detail::answer_t<R>>(answers, [&](std::size_t i) { return w[i]; });
  if (result)
    KAIZEN_CHECK(result->total > 0.0, "weighted_vote: expected a positive total weight over the ", result->answered,
                 " answered samples, got 0");
  return result;
}

/// Vote weights from sequence log-probabilities: w_i = exp((lp_i − max_j lp_j) / temperature), so the
/// most likely sample weighs 1 (a softmax up to normalisation; votes are scale-invariant).
/// Throws kaizen::Error on an empty input, a non-finite log-prob or temperature <= 0.
[[nodiscard]] inline std::vector<double> weights_from_logprobs(std::span<const double> logprobs,
                                                               double temperature = 1.0) {
  KAIZEN_CHECK(!logprobs.empty(), "weights_from_logprobs: expected at least one log-prob, got none");
  KAIZEN_CHECK(temperature > 0.0 && std::isfinite(temperature),
               "weights_from_logprobs: expected a positive finite temperature, got ", temperature);
  double top = -std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < logprobs.size(); ++i) {
    KAIZEN_CHECK(std::isfinite(logprobs[i]), "weights_from_logprobs: expected finite log-probs, got ", logprobs[i],
                 " at index ", i);
    top = std::max(top, logprobs[i]);
  }
  std::vector<double> out;
  out.reserve(logprobs.size());
  for (double lp : logprobs) out.push_back(std::exp((lp - top) / temperature));
  return out;
}

}  // namespace kaizen::consistency
