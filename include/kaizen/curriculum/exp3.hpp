// kaizen/curriculum/exp3.hpp - EXP3 (exponential weights for exploration and exploitation) and
// EXP3.S (the same with weight sharing, which tracks a best arm that changes over time).
//
//   p(a)  = (1 - gamma) w(a) / sum_b w(b) + gamma / K
//   a step with observations (a_i, g_i), i = 1..n, g_i in [0, 1], drawn from p:
//     xhat(a) = sum_{i: a_i = a} g_i / (n p(a))                 (unbiased estimate of arm a's mean gain)
//   EXP3:    w(a) <- w(a) exp(gamma xhat(a) / K)
//   EXP3.S:  w(a) <- w(a) exp(gamma xhat(a) / K) + (e alpha / K) sum_b w(b)    (old weights on the right)
//
// Weights are kept as logarithms (shifted so the largest is 0), so long runs neither overflow nor
// underflow. update() must see the gains of draws made from the current probabilities() (sample, then
// update, as a training loop does); n = 1 per step is the textbook algorithm, larger n averages the
// importance-weighted estimate over the batch. Defaults gamma = 0.1, alpha = 0 (plain EXP3); the
// paper tunes EXP3.S's alpha to 1/T for horizon T. Keep alpha small: every step hands each arm a share
// (e alpha / K) of the total weight, so with a large alpha the arms that just lost keep a large floor.
//
// Reference: P. Auer, N. Cesa-Bianchi, Y. Freund, R. E. Schapire, "The Nonstochastic Multiarmed
// Bandit Problem", SIAM J. Computing 32(1), 2002. https://doi.org/10.1137/S0097539701398375
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/curriculum/detail/common.hpp>

namespace kaizen::curriculum {

/// EXP3 / EXP3.S settings. alpha = 0 gives EXP3; alpha > 0 gives EXP3.S.
struct Exp3Options {
  double gamma = 0.1;  ///< exploration mixture, in (0, 1]
  double alpha = 0.0;  ///< weight sharing, in [0, 1); 0 = plain EXP3
};

/// EXP3 (alpha = 0) or EXP3.S (alpha > 0) over `num_arms` arms. Models kaizen::Curriculum.
/// sample(n, rng): n i.i.d. draws from probabilities(). update(): gains must lie in [0, 1].
/// Throws kaizen::Error on: num_arms = 0, gamma outside (0, 1], alpha outside [0, 1), unknown arm
/// ids, non-finite gains or gains outside [0, 1], size mismatch, a state of another kind.
class Exp3 {
 public:
  explicit Exp3(std::size_t num_arms, Exp3Options options = {})
      : options_(options), log_weights_(num_arms, 0.0) {
    detail::check_arm_count("Exp3", num_arms);
    check_options(options_);
  }

  [[nodiscard]] std::vector<ArmId> sample(std::size_t n, Rng& rng) const {
    const std::vector<double> p = probabilities();
    return detail::sample_categorical(p, n, rng);
  }

  void update(std::span<const ArmId> arms, std::span<const double> gains) {
    detail::check_update("Exp3::update", arms, gains, log_weights_.size());
    detail::check_unit_gains("Exp3::update", gains);
    if (arms.empty()) return;
    const std::size_t k = log_weights_.size();
    const std::vector<double> p = probabilities();
    const double n = static_cast<double>(arms.size());
    std::vector<double> step(k, 0.0);
    for (std::size_t i = 0; i < arms.size(); ++i) {
      const auto a = static_cast<std::size_t>(arms[i]);
      step[a] += options_.gamma * gains[i] / (n * p[a] * static_cast<double>(k));
    }
    if (options_.alpha > 0.0) {
      // log of (e alpha / K) sum_b w(b), with the old weights.
      const double share = std::log(std::exp(1.0) * options_.alpha / static_cast<double>(k)) + log_sum_exp();
      for (std::size_t a = 0; a < k; ++a) {
        const double grown = log_weights_[a] + step[a];
        const double hi = std::max(grown, share), lo = std::min(grown, share);
        log_weights_[a] = hi + std::log1p(std::exp(lo - hi));
      }
    } else {
      for (std::size_t a = 0; a < k; ++a) log_weights_[a] += step[a];
    }
    const double top = *std::max_element(log_weights_.begin(), log_weights_.end());
    for (double& w : log_weights_) w -= top;
  }

  [[nodiscard]] std::vector<double> probabilities() const {
    std::vector<double> p = detail::softmax(log_weights_, 1.0);
    const double uniform = options_.gamma / static_cast<double>(p.size());
    for (double& x : p) x = (1.0 - options_.gamma) * x + uniform;
    return p;
  }

  /// log w(a), shifted so that the largest is 0.
  [[nodiscard]] const std::vector<double>& log_weights() const noexcept { return log_weights_; }
  [[nodiscard]] std::size_t num_arms() const noexcept { return log_weights_.size(); }

  [[nodiscard]] nlohmann::json state() const {
    return {{"kind", "exp3"},
            {"gamma", options_.gamma},
            {"alpha", options_.alpha},
            {"log_weights", log_weights_}};
  }

  void restore(const nlohmann::json& state) {
    constexpr const char* fn = "Exp3::restore";
    detail::check_kind(fn, state, "exp3");
    Exp3Options options{detail::number_field(fn, state, "gamma"), detail::number_field(fn, state, "alpha")};
    check_options(options);
    std::vector<double> log_weights = detail::vector_field(fn, state, "log_weights");
    detail::check_arm_count(fn, log_weights.size());
    options_ = options;
    log_weights_ = std::move(log_weights);
  }

 private:
  static void check_options(const Exp3Options& o) {
    KAIZEN_CHECK(o.gamma > 0.0 && o.gamma <= 1.0, "Exp3: expected gamma in (0, 1], got ", o.gamma);
    KAIZEN_CHECK(o.alpha >= 0.0 && o.alpha < 1.0, "Exp3: expected alpha in [0, 1), got ", o.alpha);
  }

  [[nodiscard]] double log_sum_exp() const {
    const double top = *std::max_element(log_weights_.begin(), log_weights_.end());
    double total = 0.0;
    for (double w : log_weights_) total += std::exp(w - top);
    return top + std::log(total);
  }

  Exp3Options options_;
  std::vector<double> log_weights_;
};

}  // namespace kaizen::curriculum
