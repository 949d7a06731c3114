// kaizen/policy_gradient/estimators.hpp - advantage estimators as values: the AdvantageEstimator concept
// that an online policy-gradient loop (loop/policy_gradient.hpp) is generic over, one struct per
// estimator of advantages.hpp, and a name-driven factory for configuration files.
//
// An estimator is a callable `e(const AdvantageInputs&) -> torch::Tensor` returning either per-sequence
// advantages [B] (broadcast over the completion tokens by the loss) or per-token advantages [B, T]
// (zero outside the completion mask). The inputs are everything the built-in estimators read from one
// step's rollouts: sequence rewards, group ids (prompt-major groups of `group_size` rows), the
// completion mask and lengths, log π_old, log π_ref (when the loop has a reference) and the reward of
// the greedy completion of each row's prompt (when the estimator asks for it). Optional members an
// estimator may declare, read through the traits below (defaults in brackets):
//   std::string name() const               what metrics call it                         ["custom"]
//   bool needs_greedy_baseline() const     the loop adds one greedy rollout per prompt   [false]
//   bool needs_reference() const           the loop must compute log π_ref               [false]
//   std::int64_t min_group_size() const    smallest G the estimator accepts              [1]
//
// Built-in estimators (formulas in advantages.hpp):
//   Grpo{options}        A_i = (r_i − μ_g) / (σ_g + ε)            group_advantages, scale group (or batch)
//   DrGrpo{}             A_i = r_i − μ_g                          group_advantages, scale none
//   Rloo{}               A_i = G/(G−1) · (r_i − μ_g)              rloo_advantages
//   ReinforcePP{γ, β}    token rewards −β·KL_t(old‖ref) + r_i on the last token, discounted returns
//                        whitened over the batch                  kl_penalized_rewards, reinforce_pp_advantages
//   ReinforcePPBaseline  (r_i − μ_g) on every token, whitened over the batch   reinforce_pp_baseline_advantages
//   ReMax{}              A_i = r_i − r(greedy completion of x_i)  remax_advantages
//   Opo{}                A_i = r_i − Σ_g l_j r_j / Σ_g l_j        opo_advantages
//   PassAtK{k}           analytic pass@k group advantages          pass_at_k_advantages
//   AnyAdvantageEstimator  a type-erased estimator; make_advantage_estimator(name, options) builds one
//                        from a name: grpo, dr_grpo, rloo, reinforce_pp, reinforce_pp_baseline, remax,
//                        opo, pass_at_k.
//
// References: as advantages.hpp (GRPO arXiv 2402.03300, Dr. GRPO arXiv 2503.20783, RLOO arXiv
// 2402.14740, REINFORCE++ arXiv 2501.03262, ReMax arXiv 2310.10505, OPO arXiv 2505.23585, pass@k
// training arXiv 2508.10751).
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/kl.hpp>
#include <kaizen/policy_gradient/options.hpp>

namespace kaizen::policy_gradient {

/// What an advantage estimator sees of one step's rollouts (B rows, T columns, prompt-major groups).
struct AdvantageInputs {
  torch::Tensor rewards;           ///< [B] sequence rewards, floating (the log-probs' dtype)
  torch::Tensor group_ids;         ///< [B] int64, equal id = same prompt
  torch::Tensor mask;              ///< [B, T] bool completion mask
  torch::Tensor lengths;           ///< [B] int64 completion lengths (tokens)
  torch::Tensor old_logprobs;      ///< [B, T] log π_old (no gradient), zero outside the mask
  torch::Tensor ref_logprobs;      ///< [B, T] log π_ref, or undefined when the loop has no reference
  torch::Tensor baseline_rewards;  ///< [B] reward of the greedy completion of each row's prompt, or
                                   ///< undefined unless the estimator needs_greedy_baseline()
  std::int64_t group_size = 1;     ///< G: rows per group
};

/// A callable mapping one step's AdvantageInputs to advantages [B] or [B, T] (see the top of the file).
template <class E>
concept AdvantageEstimator = requires(E& e, const AdvantageInputs& in) {
  { e(in) } -> std::convertible_to<torch::Tensor>;
};

// --- traits: the optional members, with their defaults -------------------------------------------------

template <class E>
[[nodiscard]] std::string estimator_name(const E& e) {
  if constexpr (requires { { e.name() } -> std::convertible_to<std::string>; }) return std::string(e.name());
  else return "custom";
}
template <class E>
[[nodiscard]] bool estimator_needs_greedy_baseline(const E& e) {
  if constexpr (requires { { e.needs_greedy_baseline() } -> std::convertible_to<bool>; }) return e.needs_greedy_baseline();
  else return false;
}
template <class E>
[[nodiscard]] bool estimator_needs_reference(const E& e) {
  if constexpr (requires { { e.needs_reference() } -> std::convertible_to<bool>; }) return e.needs_reference();
  else return false;
}
template <class E>
[[nodiscard]] std::int64_t estimator_min_group_size(const E& e) {
  if constexpr (requires { { e.min_group_size() } -> std::convertible_to<std::int64_t>; }) return e.min_group_size();
  else return 1;
}

// --- the built-in estimators ------------------------------------------------------------------------------

/// GRPO: group-normalised rewards (group_advantages with `options`; scale batch gives group mean / batch std).
struct Grpo {
  GroupAdvantageOptions options{};
  [[nodiscard]] torch::Tensor operator()(const AdvantageInputs& in) const {
    return group_advantages(in.rewards, in.group_ids, options);
  }
  [[nodiscard]] std::string name() const { return "grpo"; }
  [[nodiscard]] std::int64_t min_group_size() const { return 2; }
};

/// Dr. GRPO: group-centred rewards, no division by a standard deviation.
struct DrGrpo {
  [[nodiscard]] torch::Tensor operator()(const AdvantageInputs& in) const {
    return group_advantages(in.rewards, in.group_ids, {.scale = AdvantageScale::none});
  }
  [[nodiscard]] std::string name() const { return "dr_grpo"; }
  [[nodiscard]] std::int64_t min_group_size() const { return 2; }
};

/// RLOO: leave-one-out baseline within the group.
struct Rloo {
  [[nodiscard]] torch::Tensor operator()(const AdvantageInputs& in) const {
    return rloo_advantages(in.rewards, in.group_ids);
  }
  [[nodiscard]] std::string name() const { return "rloo"; }
  [[nodiscard]] std::int64_t min_group_size() const { return 2; }
};

/// REINFORCE++: per-token rewards (−β·KL_t(π_old‖π_ref) on every completion token when β > 0, plus the
/// sequence reward on the last one), discounted returns with γ, whitened over the batch's tokens.
/// β > 0 needs the loop's reference policy. Returns [B, T].
struct ReinforcePP {
  double gamma = 1.0;                       ///< discount in [0, 1]
  double kl_coef = 0.0;                     ///< β >= 0; 0 = no KL in the reward
  KlEstimator kl_estimator = KlEstimator::k1;  ///< k1, k2 or k3 (KL in the reward)
  [[nodiscard]] torch::Tensor operator()(const AdvantageInputs& in) const {
    KAIZEN_CHECK(kl_coef == 0.0 || in.ref_logprobs.defined(),
                 "ReinforcePP: kl_coef = ", kl_coef, " > 0 needs reference log-probs (pass a reference policy)");
    const torch::Tensor ref = kl_coef > 0.0 ? in.ref_logprobs : in.old_logprobs;
    const torch::Tensor token_rewards =
        kl_penalized_rewards(in.rewards, in.old_logprobs, ref, in.mask, kl_estimator, kl_coef);
    return reinforce_pp_advantages(token_rewards, in.mask, gamma);
  }
  [[nodiscard]] std::string name() const { return "reinforce_pp"; }
  [[nodiscard]] bool needs_reference() const { return kl_coef > 0.0; }
};

/// REINFORCE++ with a group baseline: (r_i − μ_g) on every completion token, whitened over the batch. [B, T].
struct ReinforcePPBaseline {
  [[nodiscard]] torch::Tensor operator()(const AdvantageInputs& in) const {
    return reinforce_pp_baseline_advantages(in.rewards, in.group_ids, in.mask);
  }
  [[nodiscard]] std::string name() const { return "reinforce_pp_baseline"; }
  [[nodiscard]] std::int64_t min_group_size() const { return 2; }
};

/// ReMax: the reward of the greedy completion of the same prompt as the baseline (one extra rollout per
/// prompt, drawn by the loop).
struct ReMax {
  [[nodiscard]] torch::Tensor operator()(const AdvantageInputs& in) const {
    KAIZEN_CHECK(in.baseline_rewards.defined(),
                 "ReMax: expected the greedy completions' rewards (AdvantageInputs::baseline_rewards), got none");
    return remax_advantages(in.rewards, in.baseline_rewards.to(in.rewards.options()));
  }
  [[nodiscard]] std::string name() const { return "remax"; }
  [[nodiscard]] bool needs_greedy_baseline() const { return true; }
};

/// OPO: length-weighted group baseline (the optimal baseline for sequence-level rewards).
struct Opo {
  [[nodiscard]] torch::Tensor operator()(const AdvantageInputs& in) const {
    return opo_advantages(in.rewards, in.lengths, in.group_ids);
  }
  [[nodiscard]] std::string name() const { return "opo"; }
  [[nodiscard]] std::int64_t min_group_size() const { return 2; }
};

/// Pass@k training: analytic group advantages for binary rewards (every group needs >= k rows).
struct PassAtK {
  std::int64_t k = 1;
  [[nodiscard]] torch::Tensor operator()(const AdvantageInputs& in) const {
    return pass_at_k_advantages(in.rewards, in.group_ids, k);
  }
  [[nodiscard]] std::string name() const { return "pass_at_k"; }
  [[nodiscard]] std::int64_t min_group_size() const { return k; }
};

/// A type-erased AdvantageEstimator (what make_advantage_estimator returns; any estimator converts).
class AnyAdvantageEstimator {
 public:
  template <class E>
    requires(AdvantageEstimator<std::remove_cvref_t<E>> && !std::same_as<std::remove_cvref_t<E>, AnyAdvantageEstimator>)
  AnyAdvantageEstimator(E&& estimator)  // NOLINT(google-explicit-constructor): any estimator converts
      : name_(estimator_name(estimator)),
        needs_greedy_baseline_(estimator_needs_greedy_baseline(estimator)),
        needs_reference_(estimator_needs_reference(estimator)),
        min_group_size_(estimator_min_group_size(estimator)),
        call_([e = std::forward<E>(estimator)](const AdvantageInputs& in) mutable -> torch::Tensor { return e(in); }) {}

  [[nodiscard]] torch::Tensor operator()(const AdvantageInputs& in) const { return call_(in); }
  [[nodiscard]] std::string name() const { return name_; }
  [[nodiscard]] bool needs_greedy_baseline() const { return needs_greedy_baseline_; }
  [[nodiscard]] bool needs_reference() const { return needs_reference_; }
  [[nodiscard]] std::int64_t min_group_size() const { return min_group_size_; }

 private:
  std::string name_;
  bool needs_greedy_baseline_ = false;
  bool needs_reference_ = false;
  std::int64_t min_group_size_ = 1;
  std::function<torch::Tensor(const AdvantageInputs&)> call_;
};

/// The knobs of the built-in estimators that make_advantage_estimator reads (each only by its estimator).
struct AdvantageEstimatorOptions {
  GroupAdvantageOptions group{};               ///< grpo
  double gamma = 1.0;                          ///< reinforce_pp
  double kl_coef = 0.0;                        ///< reinforce_pp: β of the KL in the reward
  KlEstimator kl_estimator = KlEstimator::k1;  ///< reinforce_pp
  std::int64_t k = 1;                          ///< pass_at_k
};

/// The names make_advantage_estimator accepts, comma-separated.
inline constexpr std::string_view kAdvantageEstimatorNames =
    "grpo, dr_grpo, rloo, reinforce_pp, reinforce_pp_baseline, remax, opo, pass_at_k";

/// The built-in estimator called `name` (see kAdvantageEstimatorNames) with `options`.
/// Throws kaizen::Error on an unknown name (listing the accepted ones), gamma outside [0, 1],
/// kl_coef < 0, or k < 1.
[[nodiscard]] inline AnyAdvantageEstimator make_advantage_estimator(std::string_view name,
                                                                    const AdvantageEstimatorOptions& options = {}) {
  constexpr std::string_view fn = "make_advantage_estimator";
  if (name == "grpo") return Grpo{options.group};
  if (name == "dr_grpo") return DrGrpo{};
  if (name == "rloo") return Rloo{};
  if (name == "reinforce_pp") {
    KAIZEN_CHECK(options.gamma >= 0.0 && options.gamma <= 1.0, fn, ": reinforce_pp needs gamma in [0, 1], got ",
                 options.gamma);
    KAIZEN_CHECK(options.kl_coef >= 0.0, fn, ": reinforce_pp needs kl_coef >= 0, got ", options.kl_coef);
    return ReinforcePP{.gamma = options.gamma, .kl_coef = options.kl_coef, .kl_estimator = options.kl_estimator};
  }
  if (name == "reinforce_pp_baseline") return ReinforcePPBaseline{};
  if (name == "remax") return ReMax{};
  if (name == "opo") return Opo{};
  if (name == "pass_at_k") {
    KAIZEN_CHECK(options.k >= 1, fn, ": pass_at_k needs k >= 1, got ", options.k);
    return PassAtK{options.k};
  }
  fail(fn, ": unknown advantage_estimator '", name, "'; accepted: ", kAdvantageEstimatorNames);
}

}  // namespace kaizen::policy_gradient
