// kaizen/curriculum/epsilon_greedy.hpp - epsilon-greedy: explore uniformly with probability
// epsilon_t, otherwise draw the arm with the best average gain.
//
//   epsilon_t = epsilon / (1 + decay * t),   t: gains observed so far
//   p(a) = epsilon_t / K + (1 - epsilon_t) [a is among the B arms with the best mean] / B
//
// Arms never observed have mean 0; ties among the best are broken uniformly at random. A constant
// epsilon (decay = 0, the default, epsilon = 0.1 as in SEC's released code) keeps exploring forever
// and has linear regret on a stationary problem; decay > 0 gives the epsilon_t ~ 1/t schedule whose
// regret grows logarithmically (Auer et al. 2002, "epsilon_n-greedy").
//
// Reference: R. S. Sutton, A. G. Barto, "Reinforcement Learning: An Introduction", 2nd ed., 2018, §2.2.
// P. Auer, N. Cesa-Bianchi, P. Fischer, "Finite-time Analysis of the Multiarmed Bandit Problem",
// Machine Learning 47, 2002, §3.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/curriculum/detail/common.hpp>

namespace kaizen::curriculum {

/// epsilon-greedy settings.
struct EpsilonGreedyOptions {
  double epsilon = 0.1;  ///< exploration probability at t = 0, in [0, 1]
  double decay = 0.0;    ///< >= 0; epsilon_t = epsilon / (1 + decay t)
};

/// epsilon-greedy over `num_arms` arms. Models kaizen::Curriculum. Each draw uses one uniform01 (explore
/// or not) and one uniform_index (which arm among all, or among the tied best).
/// Throws kaizen::Error on: num_arms = 0, epsilon outside [0, 1], decay < 0, unknown arm ids, non-finite
/// gains, size mismatch, a state of another kind.
class EpsilonGreedy {
 public:
  explicit EpsilonGreedy(std::size_t num_arms, EpsilonGreedyOptions options = {})
      : options_(options), counts_(num_arms, 0.0), sums_(num_arms, 0.0) {
    detail::check_arm_count("EpsilonGreedy", num_arms);
    check_options(options_);
  }

  [[nodiscard]] std::vector<ArmId> sample(std::size_t n, Rng& rng) const {
    const std::vector<std::size_t> best = best_arms();
    const double eps = epsilon_t();
    std::vector<ArmId> out(n);
    for (std::size_t k = 0; k < n; ++k) {
      if (uniform01(rng) < eps) {
        out[k] = static_cast<ArmId>(uniform_index(rng, counts_.size()));
      } else {
        out[k] = static_cast<ArmId>(best[uniform_index(rng, best.size())]);
      }
    }
    return out;
  }

  void update(std::span<const ArmId> arms, std::span<const double> gains) {
    detail::check_update("EpsilonGreedy::update", arms, gains, counts_.size());
    for (std::size_t i = 0; i < arms.size(); ++i) {
      counts_[static_cast<std::size_t>(arms[i])] += 1.0;
      sums_[static_cast<std::size_t>(arms[i])] += gains[i];
    }
    total_ += static_cast<double>(arms.size());
  }

  [[nodiscard]] std::vector<double> probabilities() const {
    const std::vector<std::size_t> best = best_arms();
    const double eps = epsilon_t();
    std::vector<double> p(counts_.size(), eps / static_cast<double>(counts_.size()));
    for (std::size_t a : best) p[a] += (1.0 - eps) / static_cast<double>(best.size());
    return p;
  }

  /// The current exploration probability epsilon_t.
  [[nodiscard]] double epsilon_t() const { return options_.epsilon / (1.0 + options_.decay * total_); }
  [[nodiscard]] std::size_t num_arms() const noexcept { return counts_.size(); }

  /// Appends an arm with no observations (mean 0) and returns its id.
  ArmId add_arm() {
    counts_.push_back(0.0);
    sums_.push_back(0.0);
    return static_cast<ArmId>(counts_.size() - 1);
  }

  [[nodiscard]] nlohmann::json state() const {
    return {{"kind", "epsilon_greedy"}, {"epsilon", options_.epsilon}, {"decay", options_.decay},
            {"total", total_},          {"counts", counts_},           {"sums", sums_}};
  }

  void restore(const nlohmann::json& state) {
    constexpr const char* fn = "EpsilonGreedy::restore";
    detail::check_kind(fn, state, "epsilon_greedy");
    EpsilonGreedyOptions options{detail::number_field(fn, state, "epsilon"),
                                 detail::number_field(fn, state, "decay")};
    check_options(options);
    std::vector<double> counts = detail::vector_field(fn, state, "counts");
    detail::check_arm_count(fn, counts.size());
    std::vector<double> sums =
        detail::vector_field(fn, state, "sums", static_cast<std::int64_t>(counts.size()));
    total_ = detail::number_field(fn, state, "total");
    options_ = options;
    counts_ = std::move(counts);
    sums_ = std::move(sums);
  }

 private:
  static void check_options(const EpsilonGreedyOptions& o) {
    KAIZEN_CHECK(o.epsilon >= 0.0 && o.epsilon <= 1.0, "EpsilonGreedy: expected epsilon in [0, 1], got ",
                 o.epsilon);
    KAIZEN_CHECK(o.decay >= 0.0 && std::isfinite(o.decay), "EpsilonGreedy: expected decay >= 0, got ",
                 o.decay);
  }

  [[nodiscard]] std::vector<std::size_t> best_arms() const {
    std::vector<std::size_t> best;
    double best_mean = -std::numeric_limits<double>::infinity();
    for (std::size_t a = 0; a < counts_.size(); ++a) {
      const double mean = counts_[a] > 0.0 ? sums_[a] / counts_[a] : 0.0;
      if (mean > best_mean)
        best.assign(1, a), best_mean = mean;
      else if (mean == best_mean)
        best.push_back(a);
    }
    return best;
  }

  EpsilonGreedyOptions options_;
  std::vector<double> counts_;
  std::vector<double> sums_;
  double total_ = 0.0;
};

}  // namespace kaizen::curriculum
