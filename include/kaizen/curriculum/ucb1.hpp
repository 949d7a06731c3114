// kaizen/curriculum/ucb1.hpp - UCB1: optimism in the face of uncertainty for stationary arms.
//
//   index(a) = mean(a) + c * sqrt(ln t / n(a)),   arms never drawn first (index +inf)
//   n(a): gains observed for arm a;  mean(a): their average;  t: all gains observed so far.
//
// With c = sqrt(2) and gains in [0, 1] the expected regret after T draws is O(sum_a ln T / Delta_a).
// Batches: sample(n) picks arms one at a time by the index, counting each pick as a "virtual" draw
// of that arm (its n(a) grows by one, its mean stays), so one batch spreads over the arms with the
// highest upper bounds instead of repeating the single best one; t is taken as (observed + n).
// Draws are deterministic (ties go to the lower arm id); `rng` is accepted and left untouched.
//
// Reference: P. Auer, N. Cesa-Bianchi, P. Fischer, "Finite-time Analysis of the Multiarmed Bandit
// Problem", Machine Learning 47, 2002. https://doi.org/10.1023/A:1013689704352
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/curriculum/detail/common.hpp>

namespace kaizen::curriculum {

/// UCB1's setting: the exploration constant c (sqrt(2) is the textbook value for gains in [0, 1]).
struct Ucb1Options {
  double exploration = 1.4142135623730951;  ///< c >= 0
};

/// UCB1 over `num_arms` arms. Models kaizen::Curriculum. probabilities() is the distribution of the
/// next single draw: one-hot on the highest index (split among exact ties).
/// Throws kaizen::Error on: num_arms = 0, c < 0 or non-finite, unknown arm ids, non-finite gains,
/// size mismatch, a state of another kind.
class Ucb1 {
 public:
  explicit Ucb1(std::size_t num_arms, Ucb1Options options = {})
      : options_(options), counts_(num_arms, 0.0), sums_(num_arms, 0.0) {
    detail::check_arm_count("Ucb1", num_arms);
    check_options(options_);
  }

  [[nodiscard]] std::vector<ArmId> sample(std::size_t n, Rng& /*rng*/) const {
    const double log_t = std::log(total_ + static_cast<double>(n));
    return detail::optimistic_batch(counts_.size(), n,
                                    [&](std::size_t a, double v) { return index(a, v, log_t); });
  }

  void update(std::span<const ArmId> arms, std::span<const double> gains) {
    detail::check_update("Ucb1::update", arms, gains, counts_.size());
    for (std::size_t i = 0; i < arms.size(); ++i) {
      counts_[static_cast<std::size_t>(arms[i])] += 1.0;
      sums_[static_cast<std::size_t>(arms[i])] += gains[i];
    }
    total_ += static_cast<double>(arms.size());
  }

  [[nodiscard]] std::vector<double> probabilities() const {
    const double log_t = std::log(total_ + 1.0);
    std::vector<double> scores(counts_.size());
    for (std::size_t a = 0; a < scores.size(); ++a) scores[a] = index(a, 0.0, log_t);
    return detail::argmax_distribution(scores);
  }

  /// Gains observed per arm, and their averages (0 for arms never observed).
  [[nodiscard]] const std::vector<double>& counts() const noexcept { return counts_; }
  [[nodiscard]] std::vector<double> means() const {
    std::vector<double> m(counts_.size(), 0.0);
    for (std::size_t a = 0; a < m.size(); ++a) m[a] = counts_[a] > 0.0 ? sums_[a] / counts_[a] : 0.0;
    return m;
  }
  [[nodiscard]] std::size_t num_arms() const noexcept { return counts_.size(); }

  /// Appends an arm that has never been drawn (it is drawn first) and returns its id.
  ArmId add_arm() {
    counts_.push_back(0.0);
    sums_.push_back(0.0);
    return static_cast<ArmId>(counts_.size() - 1);
  }

  [[nodiscard]] nlohmann::json state() const {
    return {{"kind", "ucb1"},
            {"exploration", options_.exploration},
            {"total", total_},
            {"counts", counts_},
            {"sums", sums_}};
  }

  void restore(const nlohmann::json& state) {
    constexpr const char* fn = "Ucb1::restore";
    detail::check_kind(fn, state, "ucb1");
    Ucb1Options options{detail::number_field(fn, state, "exploration")};
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
  static void check_options(const Ucb1Options& o) {
    KAIZEN_CHECK(o.exploration >= 0.0 && std::isfinite(o.exploration),
                 "Ucb1: expected an exploration constant >= 0, got ", o.exploration);
  }

  [[nodiscard]] double index(std::size_t a, double virtual_pulls, double log_t) const {
    const double n = counts_[a] + virtual_pulls;
    if (n == 0.0) return std::numeric_limits<double>::infinity();
    const double mean = counts_[a] > 0.0 ? sums_[a] / counts_[a] : 0.0;
    return mean + options_.exploration * std::sqrt(std::max(log_t, 0.0) / n);
  }

  Ucb1Options options_;
  std::vector<double> counts_;
  std::vector<double> sums_;
  double total_ = 0.0;
};

}  // namespace kaizen::curriculum
