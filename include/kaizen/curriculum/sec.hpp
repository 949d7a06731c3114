// kaizen/curriculum/sec.hpp - Self-Evolving Curriculum (SEC): a Boltzmann bandit over problem
// categories whose reward is the learning signal (mean absolute advantage) the category produced.
//
//   value update, every step t, for each arm c:
//     r_t(c)     = mean of the gains of the rollouts of arm c in this step
//     Q_{t+1}(c) = (1 - alpha) Q_t(c) + alpha r_t(c)       if c was drawn in step t
//     Q_{t+1}(c) = (1 - alpha) Q_t(c)                       if not and decay_unsampled (r_t(c) = 0)
//     Q_{t+1}(c) = Q_t(c)                                   if not and !decay_unsampled
//   sampling:  p(c) = exp(Q(c) / tau) / sum_c' exp(Q(c') / tau),  Q_0 = 0 (uniform at first)
//
// The gain of a rollout is its mean |advantage| over response tokens (|A_i| for outcome-level
// advantages): all-correct and all-wrong groups have zero advantage and teach nothing, so the arm
// that keeps producing non-zero advantages is where the policy is learning. advantage_gains() below
// turns advantages and arm ids into per-arm gains.
//
// decay_unsampled = true follows the authors' released code (arms absent from a step are updated
// with reward 0); false follows the paper's text (only the drawn arms move). Defaults: alpha = 0.5,
// tau = 1 (the paper's runs: alpha = 0.5 with tau = 1 on Countdown/Zebra, 0.4 on MATH, 0.2 for a
// 2-D curriculum; the released code defaults to alpha = 0.1).
//
// References:
//   X. Chen, J. Lu, M. Kim, D. Zhang, J. Tang, A. Piché, N. Gontier, Y. Bengio, E. Kamalloo,
//   "Self-Evolving Curriculum for LLM Reasoning", 2025. https://arxiv.org/abs/2505.14970
//   R. S. Sutton and A. G. Barto, "Reinforcement Learning: An Introduction", 2nd ed., 2018, §2.5
//   (constant step-size value tracking for non-stationary bandits) and §2.8 (softmax preferences).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/curriculum/detail/common.hpp>

namespace kaizen::curriculum {

/// SEC's settings (designated initializers: {.alpha = 0.5, .tau = 0.4}).
struct SecOptions {
  double alpha = 0.5;           ///< TD(0) / EMA rate, in (0, 1]
  double tau = 1.0;             ///< Boltzmann temperature, > 0; small tau is greedy, large tau uniform
  bool decay_unsampled = true;  ///< true: absent arms decay toward 0 (released code); false: paper text
};

/// Self-Evolving Curriculum over `num_arms` arms. Models kaizen::Curriculum.
///
/// - sample(n, rng): n i.i.d. draws from probabilities(), one uniform01 per draw.
/// - update(arms, gains): gains[i] (finite, usually mean |advantage| of rollout i) was earned by
///   arms[i]; one call is one step of the value update above. An empty call is a step where no arm was
///   drawn (with decay on, every value decays).
/// - add_arm(): a new arm with value 0, for pools that grow during training.
/// Throws kaizen::Error on: num_arms = 0, alpha outside (0, 1], tau <= 0 or non-finite, arm ids
/// outside [0, num_arms()), non-finite gains, size mismatch, a state of another kind.
class SelfEvolvingCurriculum {
 public:
  explicit SelfEvolvingCurriculum(std::size_t num_arms, SecOptions options = {})
      : options_(options), values_(num_arms, 0.0) {
    detail::check_arm_count("SelfEvolvingCurriculum", num_arms);
    check_options(options_);
  }

  [[nodiscard]] std::vector<ArmId> sample(std::size_t n, Rng& rng) const {
    const std::vector<double> p = probabilities();
    return detail::sample_categorical(p, n, rng);
  }

  void update(std::span<const ArmId> arms, std::span<const double> gains) {
    detail::check_update("SelfEvolvingCurriculum::update", arms, gains, values_.size());
    const detail::StepTotals step = detail::step_totals(arms, gains, values_.size());
    for (std::size_t c = 0; c < values_.size(); ++c) {
      if (step.count[c] > 0.0) {
        values_[c] = (1.0 - options_.alpha) * values_[c] + options_.alpha * (step.sum[c] / step.count[c]);
      } else if (options_.decay_unsampled) {
        values_[c] = (1.0 - options_.alpha) * values_[c];
      }
    }
  }

  [[nodiscard]] std::vector<double> probabilities() const { return detail::softmax(values_, options_.tau); }

  /// The arm values Q(c).
  [[nodiscard]] const std::vector<double>& values() const noexcept { return values_; }
  [[nodiscard]] std::size_t num_arms() const noexcept { return values_.size(); }
  [[nodiscard]] const SecOptions& options() const noexcept { return options_; }

  /// Appends an arm with value 0 and returns its id.
  ArmId add_arm() {
    values_.push_back(0.0);
    return static_cast<ArmId>(values_.size() - 1);
  }

  [[nodiscard]] nlohmann::json state() const {
    return {{"kind", "sec"},
            {"alpha", options_.alpha},
            {"tau", options_.tau},
            {"decay_unsampled", options_.decay_unsampled},
            {"values", values_}};
  }

  /// Restores options and values from state(); the arm count follows the state.
  void restore(const nlohmann::json& state) {
    constexpr const char* fn = "SelfEvolvingCurriculum::restore";
    detail::check_kind(fn, state, "sec");
    KAIZEN_CHECK(state.contains("decay_unsampled") && state["decay_unsampled"].is_boolean(), fn,
                 ": the state lacks the boolean \"decay_unsampled\"");
    SecOptions options{detail::number_field(fn, state, "alpha"), detail::number_field(fn, state, "tau"),
                       state["decay_unsampled"].get<bool>()};
    check_options(options);
    std::vector<double> values = detail::vector_field(fn, state, "values");
    detail::check_arm_count(fn, values.size());
    options_ = options;
    values_ = std::move(values);
  }

 private:
  static void check_options(const SecOptions& o) {
    KAIZEN_CHECK(o.alpha > 0.0 && o.alpha <= 1.0, "SelfEvolvingCurriculum: expected alpha in (0, 1], got ",
                 o.alpha);
    KAIZEN_CHECK(o.tau > 0.0 && std::isfinite(o.tau),
                 "SelfEvolvingCurriculum: expected a temperature tau > 0, got ", o.tau);
  }

  SecOptions options_;
  std::vector<double> values_;
};

/// Per-arm gains, one entry per distinct arm, in order of first appearance.
struct ArmGains {
  std::vector<ArmId> arms;
  std::vector<double> gains;
};

/// SEC's arm reward from outcome-level advantages: the mean |advantages[i]| over the rollouts i of
/// each arm (arm_ids[i] is rollout i's arm). Feed the result to update(). Throws on a size mismatch,
/// a negative arm id or a non-finite advantage.
[[nodiscard]] inline ArmGains advantage_gains(std::span<const ArmId> arm_ids,
                                              std::span<const double> advantages) {
  KAIZEN_CHECK(arm_ids.size() == advantages.size(),
               "advantage_gains: expected one advantage per arm id, got ", arm_ids.size(), " arm ids and ",
               advantages.size(), " advantages");
  ArmGains out;
  std::vector<double> counts;
  std::unordered_map<ArmId, std::size_t> slots;
  for (std::size_t i = 0; i < arm_ids.size(); ++i) {
    KAIZEN_CHECK(arm_ids[i] >= 0, "advantage_gains: expected arm ids >= 0, got ", arm_ids[i], " at position ",
                 i);
    KAIZEN_CHECK(std::isfinite(advantages[i]), "advantage_gains: expected finite advantages, got ",
                 advantages[i], " at position ", i);
    const auto [it, inserted] = slots.try_emplace(arm_ids[i], out.arms.size());
    const std::size_t slot = it->second;
    if (inserted) {
      out.arms.push_back(arm_ids[i]);
      out.gains.push_back(0.0);
      counts.push_back(0.0);
    }
    out.gains[slot] += std::abs(advantages[i]);
    counts[slot] += 1.0;
  }
  for (std::size_t s = 0; s < out.arms.size(); ++s) out.gains[s] /= counts[s];
  return out;
}

/// Token-level form: token_advantages and mask are row-major [B, T] (B = arm_ids.size()); rollout i's
/// score is sum_t mask[i,t] |A[i,t]| / sum_t mask[i,t] (a rollout with an all-zero mask scores 0), and
/// each arm's gain is the mean score of its rollouts. Throws on sizes other than B*T, on negative or
/// non-finite mask values, on non-finite advantages under a non-zero mask, and on negative arm ids.
[[nodiscard]] inline ArmGains advantage_gains(std::span<const ArmId> arm_ids,
                                              std::span<const double> token_advantages,
                                              std::span<const double> mask, std::size_t tokens_per_row) {
  const std::size_t rows = arm_ids.size();
  KAIZEN_CHECK(tokens_per_row > 0 && token_advantages.size() == rows * tokens_per_row &&
                   mask.size() == token_advantages.size(),
               "advantage_gains: expected token advantages and mask of ", rows, " x ", tokens_per_row, " = ",
               rows * tokens_per_row, " values, got ", token_advantages.size(), " and ", mask.size());
  std::vector<double> scores(rows, 0.0);
  for (std::size_t i = 0; i < rows; ++i) {
    double total = 0.0, weight = 0.0;
    for (std::size_t t = 0; t < tokens_per_row; ++t) {
      const double m = mask[i * tokens_per_row + t];
      KAIZEN_CHECK(std::isfinite(m) && m >= 0.0, "advantage_gains: expected mask values >= 0, got ", m,
                   " at row ", i, ", token ", t);
      if (m == 0.0) continue;
      const double a = token_advantages[i * tokens_per_row + t];
      KAIZEN_CHECK(std::isfinite(a), "advantage_gains: expected finite advantages, got ", a, " at row ", i,
                   ", token ", t);
      total += m * std::abs(a);
      weight += m;
    }
    scores[i] = weight > 0.0 ? total / weight : 0.0;
  }
  return advantage_gains(arm_ids, scores);
}

}  // namespace kaizen::curriculum
