// kaizen/reward/composite.hpp - a weighted sum of outcome rewards:
//   r(prompt, completion) = sum_k w_k * r_k(prompt, completion)   (optionally divided by sum_k w_k)
// Components are any kaizen::OutcomeReward (per-sample or batched). The composite is itself an
// OutcomeReward in batched form (each component is scored over the whole batch with kaizen::score,
// so a batched component still sees one call), and in per-sample form when every component is
// per-sample. `components(prompts, completions)` returns the per-component scores for logging.
//
// Examples: SSRL's `0.9 * EM + 0.1 * format` is composite({0.9, 0.1}, em, FormatReward{...});
// Reasoning-SQL's sum of partial rewards is reward/sql.hpp's ReasoningSqlReward (same rule, with
// execution-specific logic).
#pragma once

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen::reward {

/// sum_k weights[k] * component_k, or the weighted mean when `normalize`.
template <OutcomeReward... Rs>
class Composite {
 public:
  static_assert(sizeof...(Rs) > 0, "Composite needs at least one component");

  Composite(std::vector<double> weights, Rs... rewards, bool normalize = false)
      : weights_(std::move(weights)), rewards_(std::move(rewards)...), normalize_(normalize) {
    KAIZEN_CHECK(weights_.size() == sizeof...(Rs), "Composite: ", weights_.size(), " weights for ", sizeof...(Rs),
                 " components");
    double total = 0.0;
    for (std::size_t k = 0; k < weights_.size(); ++k) {
      KAIZEN_CHECK(std::isfinite(weights_[k]), "Composite: weight ", k, " is ", weights_[k], ", expected finite");
      total += weights_[k];
    }
    KAIZEN_CHECK(!normalize_ || total > 0.0, "Composite: normalize needs a positive weight sum, got ", total);
  }

  [[nodiscard]] const std::vector<double>& weights() const noexcept { return weights_; }

  /// components(...)[k][i]: component k's score of completion i.
  [[nodiscard]] std::vector<std::vector<double>> components(std::span<const Prompt> prompts,
                                                            std::span<const Completion> completions) {
    std::vector<std::vector<double>> out;
    out.reserve(sizeof...(Rs));
    std::apply([&](auto&... r) { (out.push_back(kaizen::score(r, prompts, completions)), ...); }, rewards_);
    return out;
  }

  /// Batched form.
  [[nodiscard]] std::vector<double> operator()(std::span<const Prompt> prompts,
                                               std::span<const Completion> completions) {
    const std::vector<std::vector<double>> parts = components(prompts, completions);
    std::vector<double> out(completions.size(), 0.0);
    for (std::size_t k = 0; k < parts.size(); ++k)
      for (std::size_t i = 0; i < out.size(); ++i) out[i] += weights_[k] * parts[k][i];
    if (normalize_) {
      double total = 0.0;
      for (double w : weights_) total += w;
      for (double& v : out) v /= total;
    }
    return out;
  }

  /// Per-sample form (only when every component is per-sample).
  [[nodiscard]] double operator()(const Prompt& prompt, const Completion& completion)
    requires(PerSampleReward<Rs> && ...)
  {
    double sum = 0.0;
    double total = 0.0;
    std::size_t k = 0;
    std::apply(
        [&](auto&... r) {
          ((sum += weights_[k] * static_cast<double>(r(prompt, completion)), total += weights_[k], ++k), ...);
        },
        rewards_);
    KAIZEN_CHECK(std::isfinite(sum), "Composite: the weighted sum is not finite (", sum, ")");
    return normalize_ ? sum / total : sum;
  }

 private:
  std::vector<double> weights_;
  std::tuple<Rs...> rewards_;
  bool normalize_;
};

/// composite({w1, w2, ...}, r1, r2, ...): the weighted sum; throws when the counts differ.
template <OutcomeReward... Rs>
[[nodiscard]] Composite<Rs...> composite(std::vector<double> weights, Rs... rewards) {
  return Composite<Rs...>(std::move(weights), std::move(rewards)...);
}

/// composite_mean({w...}, r...): the weighted mean sum_k w_k r_k / sum_k w_k.
template <OutcomeReward... Rs>
[[nodiscard]] Composite<Rs...> composite_mean(std::vector<double> weights, Rs... rewards) {
  return Composite<Rs...>(std::move(weights), std::move(rewards)..., true);
}

}  // namespace kaizen::reward
