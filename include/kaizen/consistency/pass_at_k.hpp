// kaizen/consistency/pass_at_k.hpp - evaluation estimators over n sampled answers per problem:
// unbiased pass@k and maj@k.
//
// pass@k (Chen et al., "Evaluating Large Language Models Trained on Code", 2021, arXiv 2107.03374):
// with n samples of which c are correct, the unbiased estimate of P(at least one of k correct) is
//     pass@k = 1 − C(n−c, k) / C(n, k) = 1 − Π_{i=n−c+1}^{n} (1 − k/i)
// (the product form avoids huge binomials); it is 1 when n − c < k.
//
// maj@k: the probability that the majority vote (ties to the first occurrence, see vote.hpp) over k
// samples equals the reference. With k = n it is 0 or 1 for the one vote over all samples; with
// k < n it is estimated by voting over `resamples` random k-subsets drawn without replacement
// (order preserved, so the tie rule sees the samples in their original order).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <ranges>
#include <type_traits>
#include <vector>

#include <kaizen/consistency/vote.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>

namespace kaizen::consistency {

/// Unbiased pass@k from n samples with c correct. Throws kaizen::Error unless 1 <= k <= n and c <= n.
[[nodiscard]] inline double pass_at_k(std::size_t n, std::size_t c, std::size_t k) {
  KAIZEN_CHECK(n > 0, "pass_at_k: expected n > 0 samples, got 0");
  KAIZEN_CHECK(c <= n, "pass_at_k: expected c <= n, got c = ", c, " and n = ", n);
  KAIZEN_CHECK(k >= 1 && k <= n, "pass_at_k: expected 1 <= k <= n = ", n, ", got k = ", k);
  if (n - c < k) return 1.0;
  double miss = 1.0;
  for (std::size_t i = n - c + 1; i <= n; ++i) miss *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - miss;
}

/// True when the majority vote over `answers` equals `reference`; false when every sample abstained.
/// Throws kaizen::Error when `answers` is empty.
template <std::ranges::forward_range R>
[[nodiscard]] bool majority_correct(R&& answers, const detail::answer_t<R>& reference) {
  const auto vote = majority_vote(answers);
  return vote.has_value() && vote->answer == reference;
}

/// maj@k (see the header comment): exact for k = n, else the mean over `resamples` random k-subsets.
/// Throws kaizen::Error unless 1 <= k <= n, and when k < n and resamples == 0.
template <std::ranges::random_access_range R>
[[nodiscard]] double maj_at_k(R&& answers, const detail::answer_t<R>& reference, std::size_t k, Rng& rng,
                              std::size_t resamples = 1000) {
  const auto n = static_cast<std::size_t>(std::ranges::size(answers));
  KAIZEN_CHECK(k >= 1 && k <= n, "maj_at_k: expected 1 <= k <= n = ", n, ", got k = ", k);
  if (k == n) return majority_correct(answers, reference) ? 1.0 : 0.0;
  KAIZEN_CHECK(resamples > 0, "maj_at_k: expected resamples > 0 when k < n, got 0");
  using Value = std::remove_cvref_t<std::ranges::range_value_t<R>>;
  std::vector<Value> subset;
  subset.reserve(k);
  std::size_t hits = 0;
  for (std::size_t r = 0; r < resamples; ++r) {
    subset.clear();
    // Selection sampling (Knuth's Algorithm S): each index kept with probability needed / remaining.
    std::size_t needed = k;
    for (std::size_t i = 0; i < n && needed > 0; ++i) {
      if (uniform_index(rng, n - i) < needed) {
        subset.push_back(answers[static_cast<std::ranges::range_difference_t<R>>(i)]);
        --needed;
      }
    }
    if (majority_correct(subset, reference)) ++hits;
  }
  return static_cast<double>(hits) / static_cast<double>(resamples);
}

}  // namespace kaizen::consistency
