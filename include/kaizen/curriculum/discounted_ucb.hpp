// kaizen/curriculum/discounted_ucb.hpp - Discounted UCB (D-UCB): UCB over exponentially discounted
// statistics, so an arm whose payoff changes is re-learned (non-stationary, "abruptly changing" arms).
//
//   every update call (one step), before adding its gains:  N(a) <- gamma N(a),  S(a) <- gamma S(a)
//   then for each observed (a, g):                           N(a) += 1,          S(a) += g
//   index(a) = S(a) / N(a) + c * sqrt(ln n / N(a)),          n = sum_a N(a);     N(a) = 0 -> +inf
//
// gamma in (0, 1) sets the memory, about 1 / (1 - gamma) steps; c = 2 B sqrt(xi) in the paper's
// notation (gains bounded by B, xi > 1/2). Defaults gamma = 0.99, c = sqrt(2). Batches pick arms by
// the index with virtual draws, as in ucb1.hpp (n is taken as sum N + batch size). `rng` is unused.
//
// Reference: A. Garivier, E. Moulines, "On Upper-Confidence Bound Policies for Switching Bandit
// Problems", ALT 2011 (arXiv 0805.3415). https://arxiv.org/abs/0805.3415
#pragma once

#include <algorithm>
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

/// D-UCB's settings.
struct DiscountedUcbOptions {
  double gamma = 0.99;                      ///< discount per step, in (0, 1]; 1 is UCB1 with t = sum N
  double exploration = 1.4142135623730951;  ///< c >= 0
};

/// Discounted UCB over `num_arms` arms. Models kaizen::Curriculum. probabilities() is one-hot on the
/// highest index (split among exact ties). Throws kaizen::Error on: num_arms = 0, gamma outside
/// (0, 1], c < 0, unknown arm ids, non-finite gains, size mismatch, a state of another kind.
class DiscountedUcb {
 public:
  explicit DiscountedUcb(std::size_t num_arms, DiscountedUcbOptions options = {})
      : options_(options), counts_(num_arms, 0.0), sums_(num_arms, 0.0) {
    detail::check_arm_count("DiscountedUcb", num_arms);
    check_options(options_);
  }

  [[nodiscard]] std::vector<ArmId> sample(std::size_t n, Rng& /*rng*/) const {
    const double log_n = std::log(total() + static_cast<double>(n));
    return detail::optimistic_batch(counts_.size(), n,
                                    [&](std::size_t a, double v) { return index(a, v, log_n); });
  }

  void update(std::span<const ArmId> arms, std::span<const double> gains) {
    detail::check_update("DiscountedUcb::update", arms, gains, counts_.size());
    for (std::size_t a = 0; a < counts_.size(); ++a) {
      counts_[a] *= options_.gamma;
      sums_[a] *= options_.gamma;
    }
    for (std::size_t i = 0; i < arms.size(); ++i) {
      counts_[static_cast<std::size_t>(arms[i])] += 1.0;
      sums_[static_cast<std::size_t>(arms[i])] += gains[i];
    }
  }

  [[nodiscard]] std::vector<double> probabilities() const {
    const double log_n = std::log(total() + 1.0);
    std::vector<double> scores(counts_.size());
    for (std::size_t a = 0; a < scores.size(); ++a) scores[a] = index(a, 0.0, log_n);
    return detail::argmax_distribution(scores);
  }

  /// Discounted counts N(a).
  [[nodiscard]] const std::vector<double>& counts() const noexcept { return counts_; }
  [[nodiscard]] std::size_t num_arms() const noexcept { return counts_.size(); }

  /// Appends an arm that has never been drawn (it is drawn first) and returns its id.
  ArmId add_arm() {
    counts_.push_back(0.0);
    sums_.push_back(0.0);
    return static_cast<ArmId>(counts_.size() - 1);
  }

  [[nodiscard]] nlohmann::json state() const {
    return {{"kind", "discounted_ucb"},
            {"gamma", options_.gamma},
            {"exploration", options_.exploration},
            {"counts", counts_},
            {"sums", sums_}};
  }

  void restore(const nlohmann::json& state) {
    constexpr const char* fn = "DiscountedUcb::restore";
    detail::check_kind(fn, state, "discounted_ucb");
    DiscountedUcbOptions options{detail::number_field(fn, state, "gamma"),
                                 detail::number_field(fn, state, "exploration")};
    check_options(options);
    std::vector<double> counts = detail::vector_field(fn, state, "counts");
    detail::check_arm_count(fn, counts.size());
    std::vector<double> sums =
        detail::vector_field(fn, state, "sums", static_cast<std::int64_t>(counts.size()));
    options_ = options;
    counts_ = std::move(counts);
    sums_ = std::move(sums);
  }

 private:
  static void check_options(const DiscountedUcbOptions& o) {
    KAIZEN_CHECK(o.gamma > 0.0 && o.gamma <= 1.0, "DiscountedUcb: expected a discount gamma in (0, 1], got ",
                 o.gamma);
    KAIZEN_CHECK(o.exploration >= 0.0 && std::isfinite(o.exploration),
                 "DiscountedUcb: expected an exploration constant >= 0, got ", o.exploration);
  }

  [[nodiscard]] double total() const {
    double t = 0.0;
    for (double c : counts_) t += c;
    return t;
  }

  [[nodiscard]] double index(std::size_t a, double virtual_pulls, double log_n) const {
    const double n = counts_[a] + virtual_pulls;
    if (n == 0.0) return std::numeric_limits<double>::infinity();
    const double mean = counts_[a] > 0.0 ? sums_[a] / counts_[a] : 0.0;
    return mean + options_.exploration * std::sqrt(std::max(log_n, 0.0) / n);
  }

  DiscountedUcbOptions options_;
  std::vector<double> counts_;
  std::vector<double> sums_;
};

}  // namespace kaizen::curriculum
