// kaizen/curriculum/thompson.hpp - Thompson sampling: draw each arm's mean from its posterior, play
// the arm whose draw is largest. Two conjugate models:
//
//   Beta-Bernoulli (gains in [0, 1], e.g. pass rates):
//     prior Beta(a0, b0);  a gain g adds g to a(arm) and 1 - g to b(arm)  (fractional Bernoulli update)
//     draw theta(arm) ~ Beta(a, b)
//   Gaussian (any finite gains, known noise variance s^2):
//     prior N(m0, v0);  after n gains with sum S:  precision = 1/v0 + n/s^2,
//     mean = (m0/v0 + S/s^2) / precision;  draw theta(arm) ~ N(mean, 1/precision)
//
// sample(n) makes n independent posterior draws over all K arms (O(n K) random numbers: the exact
// batch form, each draw explores on its own). probabilities() is P(arm has the largest draw),
// estimated by Monte Carlo with a fixed internal seed so it is a pure function of the state; it costs
// probability_trials x K posterior draws, so call it for logging, not every step with many arms.
// Defaults: Beta(1, 1); N(0, 1) prior with noise variance 0.25 (a Bernoulli gain's largest variance).
//
// References: W. R. Thompson, "On the likelihood that one unknown probability exceeds another in view
// of the evidence of two samples", Biometrika 25, 1933. S. Agrawal, N. Goyal, "Analysis of Thompson
// Sampling for the Multi-armed Bandit Problem", COLT 2012 (arXiv 1111.1797); "Further Optimal Regret
// Bounds for Thompson Sampling", AISTATS 2013 (arXiv 1209.3353, the Gaussian version).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/curriculum/detail/common.hpp>

namespace kaizen::curriculum {

namespace detail {

/// Monte Carlo estimate of P(arm a has the largest draw); `draw(a, rng)` samples arm a's posterior.
template <class Draw>
[[nodiscard]] std::vector<double> argmax_frequencies(std::size_t num_arms, std::size_t trials, Draw&& draw) {
  Rng rng(0x7468'6f6d'7073'6f6eULL);  // fixed seed: probabilities() is a function of the state alone
  std::vector<double> p(num_arms, 0.0);
  for (std::size_t t = 0; t < trials; ++t) {
    std::size_t best = 0;
    double best_value = draw(0, rng);
    for (std::size_t a = 1; a < num_arms; ++a) {
      const double v = draw(a, rng);
      if (v > best_value) best = a, best_value = v;
    }
    p[best] += 1.0 / static_cast<double>(trials);
  }
  return p;
}

/// n draws: each is the argmax of one fresh posterior sample of every arm.
template <class Draw>
[[nodiscard]] std::vector<ArmId> thompson_draws(std::size_t num_arms, std::size_t n, Rng& rng, Draw&& draw) {
  std::vector<ArmId> out(n);
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t best = 0;
    double best_value = draw(0, rng);
    for (std::size_t a = 1; a < num_arms; ++a) {
      const double v = draw(a, rng);
      if (v > best_value) best = a, best_value = v;
    }
    out[k] = static_cast<ArmId>(best);
  }
  return out;
}

}  // namespace detail

/// Beta-Bernoulli Thompson settings: the Beta(prior_alpha, prior_beta) prior of every arm.
struct BetaThompsonOptions {
  double prior_alpha = 1.0;               ///< > 0
  double prior_beta = 1.0;                ///< > 0
  std::size_t probability_trials = 2000;  ///< Monte Carlo draws behind probabilities(), > 0
};

/// Thompson sampling with Beta posteriors over `num_arms` arms. Models kaizen::Curriculum.
/// Throws kaizen::Error on: num_arms = 0, non-positive priors, unknown arm ids, non-finite gains or
/// gains outside [0, 1], size mismatch, a state of another kind.
class BetaThompson {
 public:
  explicit BetaThompson(std::size_t num_arms, BetaThompsonOptions options = {})
      : options_(options), successes_(num_arms, 0.0), failures_(num_arms, 0.0) {
    detail::check_arm_count("BetaThompson", num_arms);
    check_options(options_);
  }

  [[nodiscard]] std::vector<ArmId> sample(std::size_t n, Rng& rng) const {
    return detail::thompson_draws(successes_.size(), n, rng,
                                  [this](std::size_t a, Rng& r) { return draw(a, r); });
  }

  void update(std::span<const ArmId> arms, std::span<const double> gains) {
    detail::check_update("BetaThompson::update", arms, gains, successes_.size());
    detail::check_unit_gains("BetaThompson::update", gains);
    for (std::size_t i = 0; i < arms.size(); ++i) {
      successes_[static_cast<std::size_t>(arms[i])] += gains[i];
      failures_[static_cast<std::size_t>(arms[i])] += 1.0 - gains[i];
    }
  }

  [[nodiscard]] std::vector<double> probabilities() const {
    return detail::argmax_frequencies(successes_.size(), options_.probability_trials,
                                      [this](std::size_t a, Rng& r) { return draw(a, r); });
  }

  /// Posterior mean of each arm, (a0 + successes) / (a0 + b0 + observations).
  [[nodiscard]] std::vector<double> posterior_means() const {
    std::vector<double> m(successes_.size());
    for (std::size_t a = 0; a < m.size(); ++a)
      m[a] = (options_.prior_alpha + successes_[a]) /
             (options_.prior_alpha + options_.prior_beta + successes_[a] + failures_[a]);
    return m;
  }
  [[nodiscard]] std::size_t num_arms() const noexcept { return successes_.size(); }

  /// Appends an arm at the prior and returns its id.
  ArmId add_arm() {
    successes_.push_back(0.0);
    failures_.push_back(0.0);
    return static_cast<ArmId>(successes_.size() - 1);
  }

  [[nodiscard]] nlohmann::json state() const {
    return {{"kind", "beta_thompson"},           {"prior_alpha", options_.prior_alpha},
            {"prior_beta", options_.prior_beta}, {"probability_trials", options_.probability_trials},
            {"successes", successes_},           {"failures", failures_}};
  }

  void restore(const nlohmann::json& state) {
    constexpr const char* fn = "BetaThompson::restore";
    detail::check_kind(fn, state, "beta_thompson");
    BetaThompsonOptions options{
        detail::number_field(fn, state, "prior_alpha"), detail::number_field(fn, state, "prior_beta"),
        static_cast<std::size_t>(detail::number_field(fn, state, "probability_trials"))};
    check_options(options);
    std::vector<double> successes = detail::vector_field(fn, state, "successes");
    detail::check_arm_count(fn, successes.size());
    std::vector<double> failures =
        detail::vector_field(fn, state, "failures", static_cast<std::int64_t>(successes.size()));
    options_ = options;
    successes_ = std::move(successes);
    failures_ = std::move(failures);
  }

 private:
  static void check_options(const BetaThompsonOptions& o) {
    KAIZEN_CHECK(o.prior_alpha > 0.0 && o.prior_beta > 0.0 && std::isfinite(o.prior_alpha) &&
                     std::isfinite(o.prior_beta),
                 "BetaThompson: expected a Beta prior with positive parameters, got Beta(", o.prior_alpha,
                 ", ", o.prior_beta, ")");
    KAIZEN_CHECK(o.probability_trials > 0, "BetaThompson: expected probability_trials > 0, got ",
                 o.probability_trials);
  }

  [[nodiscard]] double draw(std::size_t a, Rng& rng) const {
    return beta_draw(rng, options_.prior_alpha + successes_[a], options_.prior_beta + failures_[a]);
  }

  BetaThompsonOptions options_;
  std::vector<double> successes_;
  std::vector<double> failures_;
};

/// Gaussian Thompson settings: prior N(prior_mean, prior_variance), gain noise variance.
struct GaussianThompsonOptions {
  double prior_mean = 0.0;
  double prior_variance = 1.0;            ///< > 0
  double noise_variance = 0.25;           ///< > 0
  std::size_t probability_trials = 2000;  ///< Monte Carlo draws behind probabilities(), > 0
};

/// Thompson sampling with Gaussian posteriors (known noise variance) over `num_arms` arms. Models
/// kaizen::Curriculum. Throws kaizen::Error on: num_arms = 0, non-positive variances, unknown arm ids,
/// non-finite gains, size mismatch, a state of another kind.
class GaussianThompson {
 public:
  explicit GaussianThompson(std::size_t num_arms, GaussianThompsonOptions options = {})
      : options_(options), counts_(num_arms, 0.0), sums_(num_arms, 0.0) {
    detail::check_arm_count("GaussianThompson", num_arms);
    check_options(options_);
  }

  [[nodiscard]] std::vector<ArmId> sample(std::size_t n, Rng& rng) const {
    return detail::thompson_draws(counts_.size(), n, rng,
                                  [this](std::size_t a, Rng& r) { return draw(a, r); });
  }

  void update(std::span<const ArmId> arms, std::span<const double> gains) {
    detail::check_update("GaussianThompson::update", arms, gains, counts_.size());
    for (std::size_t i = 0; i < arms.size(); ++i) {
      counts_[static_cast<std::size_t>(arms[i])] += 1.0;
      sums_[static_cast<std::size_t>(arms[i])] += gains[i];
    }
  }

  [[nodiscard]] std::vector<double> probabilities() const {
    return detail::argmax_frequencies(counts_.size(), options_.probability_trials,
                                      [this](std::size_t a, Rng& r) { return draw(a, r); });
  }

  /// Posterior means and variances of the arms' mean gains.
  [[nodiscard]] std::vector<double> posterior_means() const {
    std::vector<double> m(counts_.size());
    for (std::size_t a = 0; a < m.size(); ++a) m[a] = posterior(a).first;
    return m;
  }
  [[nodiscard]] std::vector<double> posterior_variances() const {
    std::vector<double> v(counts_.size());
    for (std::size_t a = 0; a < v.size(); ++a) v[a] = posterior(a).second;
    return v;
  }
  [[nodiscard]] std::size_t num_arms() const noexcept { return counts_.size(); }

  /// Appends an arm at the prior and returns its id.
  ArmId add_arm() {
    counts_.push_back(0.0);
    sums_.push_back(0.0);
    return static_cast<ArmId>(counts_.size() - 1);
  }

  [[nodiscard]] nlohmann::json state() const {
    return {{"kind", "gaussian_thompson"},
            {"prior_mean", options_.prior_mean},
            {"prior_variance", options_.prior_variance},
            {"noise_variance", options_.noise_variance},
            {"probability_trials", options_.probability_trials},
            {"counts", counts_},
            {"sums", sums_}};
  }

  void restore(const nlohmann::json& state) {
    constexpr const char* fn = "GaussianThompson::restore";
    detail::check_kind(fn, state, "gaussian_thompson");
    GaussianThompsonOptions options{
        detail::number_field(fn, state, "prior_mean"), detail::number_field(fn, state, "prior_variance"),
        detail::number_field(fn, state, "noise_variance"),
        static_cast<std::size_t>(detail::number_field(fn, state, "probability_trials"))};
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
  static void check_options(const GaussianThompsonOptions& o) {
    KAIZEN_CHECK(std::isfinite(o.prior_mean) && o.prior_variance > 0.0 && o.noise_variance > 0.0 &&
                     std::isfinite(o.prior_variance) && std::isfinite(o.noise_variance),
                 "GaussianThompson: expected a finite prior mean and positive variances, got prior N(",
                 o.prior_mean, ", ", o.prior_variance, ") and noise variance ", o.noise_variance);
    KAIZEN_CHECK(o.probability_trials > 0, "GaussianThompson: expected probability_trials > 0, got ",
                 o.probability_trials);
  }

  [[nodiscard]] std::pair<double, double> posterior(std::size_t a) const {
    const double precision = 1.0 / options_.prior_variance + counts_[a] / options_.noise_variance;
    const double mean =
        (options_.prior_mean / options_.prior_variance + sums_[a] / options_.noise_variance) / precision;
    return {mean, 1.0 / precision};
  }

  [[nodiscard]] double draw(std::size_t a, Rng& rng) const {
    const auto [mean, variance] = posterior(a);
    return mean + std::sqrt(variance) * normal01(rng);
  }

  GaussianThompsonOptions options_;
  std::vector<double> counts_;
  std::vector<double> sums_;
};

}  // namespace kaizen::curriculum
