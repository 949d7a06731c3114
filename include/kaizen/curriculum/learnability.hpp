// kaizen/curriculum/learnability.hpp - the learnability sampler: draw arms in proportion to
// p (1 - p), the variance of a Bernoulli success with the arm's current success rate p.
//
//   p(a) <- (1 - rate) p(a) + rate * (mean gain of arm a in this step)    (drawn arms only)
//   P(draw a) = (p(a) (1 - p(a)) + floor) / sum_b (p(b) (1 - p(b)) + floor)
//
// "Not too easy, not too hard": an arm the policy always solves (p = 1) or never solves (p = 0) gives
// groups of identical rewards, hence zero group-relative advantage and no gradient; p(1 - p) is largest
// at p = 1/2, where a group of G rollouts most often mixes successes and failures. The gains are the
// per-rollout successes (0/1) or pass rates in [0, 1]. The floor keeps every arm reachable, so an arm
// that becomes learnable again (drift, transfer from other arms) is noticed. Defaults: rate 0.1,
// prior p = 1/2 (unseen arms get the largest weight), floor 0.01.
//
// References: G. Tzannetos, B. G. Ribeiro, P. Kamalaruban, A. Singla, "Proximal Curriculum for
// Reinforcement Learning Agents", TMLR 2023 (the p(1 - p) "zone of proximal development" score).
// A. Rutherford et al., "No Regrets: Investigating and Improving Regret Approximations for
// Curriculum Discovery", NeurIPS 2024 ("learnability" p(1 - p)).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/curriculum/detail/common.hpp>

namespace kaizen::curriculum {

/// Learnability-sampler settings.
struct LearnabilityOptions {
  double rate = 0.1;    ///< EMA rate of the success-rate estimate, in (0, 1]
  double prior = 0.5;   ///< success rate assumed for arms never drawn, in [0, 1]
  double floor = 0.01;  ///< weight added to every arm, > 0
};

/// Samples arms by p (1 - p) of their estimated success rate. Models kaizen::Curriculum.
/// sample(n, rng): n i.i.d. draws from probabilities(). update(): gains in [0, 1] (successes or pass
/// rates). Throws kaizen::Error on: num_arms = 0, options outside their ranges, unknown arm ids,
/// non-finite gains or gains outside [0, 1], size mismatch, a state of another kind.
class LearnabilitySampler {
 public:
  explicit LearnabilitySampler(std::size_t num_arms, LearnabilityOptions options = {})
      : options_(options), success_(num_arms, options.prior) {
    detail::check_arm_count("LearnabilitySampler", num_arms);
    check_options(options_);
  }

  [[nodiscard]] std::vector<ArmId> sample(std::size_t n, Rng& rng) const {
    return detail::sample_categorical(weights(), n, rng);
  }

  void update(std::span<const ArmId> arms, std::span<const double> gains) {
    detail::check_update("LearnabilitySampler::update", arms, gains, success_.size());
    detail::check_unit_gains("LearnabilitySampler::update", gains);
    const detail::StepTotals step = detail::step_totals(arms, gains, success_.size());
    for (std::size_t a = 0; a < success_.size(); ++a) {
      if (step.count[a] > 0.0)
        success_[a] = (1.0 - options_.rate) * success_[a] + options_.rate * (step.sum[a] / step.count[a]);
    }
  }

  [[nodiscard]] std::vector<double> probabilities() const {
    std::vector<double> w = weights();
    double total = 0.0;
    for (double x : w) total += x;
    for (double& x : w) x /= total;
    return w;
  }

  /// The estimated success rate of each arm.
  [[nodiscard]] const std::vector<double>& success_rates() const noexcept { return success_; }
  [[nodiscard]] std::size_t num_arms() const noexcept { return success_.size(); }

  /// Appends an arm at the prior success rate and returns its id.
  ArmId add_arm() {
    success_.push_back(options_.prior);
    return static_cast<ArmId>(success_.size() - 1);
  }

  [[nodiscard]] nlohmann::json state() const {
    return {{"kind", "learnability"},
            {"rate", options_.rate},
            {"prior", options_.prior},
            {"floor", options_.floor},
            {"success_rates", success_}};
  }

  void restore(const nlohmann::json& state) {
    constexpr const char* fn = "LearnabilitySampler::restore";
    detail::check_kind(fn, state, "learnability");
    LearnabilityOptions options{detail::number_field(fn, state, "rate"),
                                detail::number_field(fn, state, "prior"),
                                detail::number_field(fn, state, "floor")};
    check_options(options);
    std::vector<double> success = detail::vector_field(fn, state, "success_rates");
    detail::check_arm_count(fn, success.size());
    options_ = options;
    success_ = std::move(success);
  }

 private:
  static void check_options(const LearnabilityOptions& o) {
    KAIZEN_CHECK(o.rate > 0.0 && o.rate <= 1.0, "LearnabilitySampler: expected rate in (0, 1], got ", o.rate);
    KAIZEN_CHECK(o.prior >= 0.0 && o.prior <= 1.0, "LearnabilitySampler: expected prior in [0, 1], got ",
                 o.prior);
    KAIZEN_CHECK(o.floor > 0.0 && std::isfinite(o.floor), "LearnabilitySampler: expected floor > 0, got ",
                 o.floor);
  }

  [[nodiscard]] std::vector<double> weights() const {
    std::vector<double> w(success_.size());
    for (std::size_t a = 0; a < w.size(); ++a) w[a] = success_[a] * (1.0 - success_[a]) + options_.floor;
    return w;
  }

  LearnabilityOptions options_;
  std::vector<double> success_;
};

}  // namespace kaizen::curriculum
