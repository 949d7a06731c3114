// python/csrc/objective_spec.hpp - runtime choice of a policy-gradient Objective for the Python package.
//
// kaizen's objectives are types (Objective<Ratio, Clip, Kl, Aggregate>, policy_gradient/options.hpp). Python
// passes the choice as integers and doubles (the custom op's schema holds `int[] modes, float[] params`);
// with_objective() turns them into the one Objective type, every valid combination instantiated once, and
// calls f(objective). A combination the C++ API refuses at compile time (GeometricRatio with DualClip /
// CispoClip / SapoGate; SequenceRatio with CispoClip / SapoGate) is refused here with the same wording.
//
//   modes  = [ratio, clip, kl, aggregation, importance_action, importance_level, cispo_value]
//   params = [epsilon, epsilon_low, epsilon_high, dual_c, tau_positive, tau_negative, kl_coefficient,
//             kl_clamp, aggregation_constant, entropy_coefficient, importance_cap, ratio_cap]
// Enum values are the C++ enumerators' values (RatioLevel, ClipMode, KlEstimator, AggregationMode,
// ImportanceAction, ImportanceLevel, CispoLossValue); python/src/kaizen/losses.py holds the same tables.
#pragma once

#include <cstdint>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/options.hpp>

namespace kaizen::python {

namespace pg = kaizen::policy_gradient;

inline constexpr std::size_t kModeCount = 7;
inline constexpr std::size_t kParamCount = 12;

namespace detail {

template <class R, class C>
inline constexpr bool valid_pair = !(R::level == pg::RatioLevel::geometric &&
                                     !(C::mode == pg::ClipMode::none || C::mode == pg::ClipMode::symmetric ||
                                       C::mode == pg::ClipMode::asymmetric)) &&
                                   !(R::level != pg::RatioLevel::token &&
                                     (C::mode == pg::ClipMode::cispo || C::mode == pg::ClipMode::sapo));

template <class Res, class R, class C, class K, class A, class F>
Res build(std::string_view fn, const std::vector<std::int64_t>& modes, const std::vector<double>& p,
                     F&& f) {
  pg::Objective<R, C, K, A> o{};
  if constexpr (C::mode == pg::ClipMode::symmetric) {
    o.clip.epsilon = p[0];
  } else if constexpr (C::mode == pg::ClipMode::asymmetric) {
    o.clip.epsilon_low = p[1];
    o.clip.epsilon_high = p[2];
  } else if constexpr (C::mode == pg::ClipMode::dual) {
    o.clip.epsilon_low = p[1];
    o.clip.epsilon_high = p[2];
    o.clip.c = p[3];
  } else if constexpr (C::mode == pg::ClipMode::cispo) {
    o.clip.epsilon_low = p[1];
    o.clip.epsilon_high = p[2];
    KAIZEN_CHECK(modes[6] == 0 || modes[6] == 1, fn, ": expected cispo_value 'weight' or 'log_prob', got code ",
                 modes[6]);
    o.clip.value = static_cast<pg::CispoLossValue>(modes[6]);
  } else if constexpr (C::mode == pg::ClipMode::sapo) {
    o.clip.tau_positive = p[4];
    o.clip.tau_negative = p[5];
  }
  o.kl.coefficient = p[6];
  o.kl.clamp = p[7];
  if constexpr (A::mode == pg::AggregationMode::seq_mean_token_sum_norm) o.aggregation.constant = p[8];
  o.entropy_coefficient = p[9];
  KAIZEN_CHECK(modes[4] >= 0 && modes[4] <= 2 && modes[5] >= 0 && modes[5] <= 1, fn,
               ": expected importance action in {none, truncate, mask} and level in {token, sequence}, got codes ",
               modes[4], " and ", modes[5]);
  o.importance.action = static_cast<pg::ImportanceAction>(modes[4]);
  o.importance.level = static_cast<pg::ImportanceLevel>(modes[5]);
  o.importance.cap = p[10];
  o.ratio_cap = p[11];
  return std::forward<F>(f)(o);
}

template <class Res, class R, class C, class K, class F>
Res by_aggregation(std::string_view fn, const std::vector<std::int64_t>& m, const std::vector<double>& p,
                              F&& f) {
  switch (m[3]) {
    case 0: return build<Res, R, C, K, pg::TokenMean>(fn, m, p, std::forward<F>(f));
    case 1: return build<Res, R, C, K, pg::SeqMeanTokenMean>(fn, m, p, std::forward<F>(f));
    case 2: return build<Res, R, C, K, pg::SeqMeanTokenSum>(fn, m, p, std::forward<F>(f));
    case 3: return build<Res, R, C, K, pg::SeqMeanTokenSumNorm>(fn, m, p, std::forward<F>(f));
    default: fail(fn, ": expected an aggregation code in [0, 3], got ", m[3]);
  }
}

template <class Res, class R, class C, class F>
Res by_kl(std::string_view fn, const std::vector<std::int64_t>& m, const std::vector<double>& p, F&& f) {
  using E = pg::KlEstimator;
  switch (m[2]) {
    case 0: return by_aggregation<Res, R, C, pg::KlLoss<E::none>>(fn, m, p, std::forward<F>(f));
    case 1: return by_aggregation<Res, R, C, pg::KlLoss<E::k1>>(fn, m, p, std::forward<F>(f));
    case 2: return by_aggregation<Res, R, C, pg::KlLoss<E::k2>>(fn, m, p, std::forward<F>(f));
    case 3: return by_aggregation<Res, R, C, pg::KlLoss<E::k3>>(fn, m, p, std::forward<F>(f));
    case 4: return by_aggregation<Res, R, C, pg::KlLoss<E::k3_importance>>(fn, m, p, std::forward<F>(f));
    default: fail(fn, ": expected a KL estimator code in [0, 4], got ", m[2]);
  }
}

template <class Res, class R, class C, class F>
Res checked_pair(std::string_view fn, const std::vector<std::int64_t>& m, const std::vector<double>& p,
                            F&& f) {
  if constexpr (valid_pair<R, C>) {
    return by_kl<Res, R, C>(fn, m, p, std::forward<F>(f));
  } else if constexpr (R::level == pg::RatioLevel::geometric) {
    fail(fn, ": GeometricRatio clips each token's log-ratio itself; combine it with clip 'none', 'symmetric' or "
             "'asymmetric', not 'dual', 'cispo' or 'sapo'");
  } else {
    fail(fn, ": clip 'cispo' and 'sapo' weight each token by its own ratio; use them with ratio 'token'");
  }
}

template <class Res, class R, class F>
Res by_clip(std::string_view fn, const std::vector<std::int64_t>& m, const std::vector<double>& p, F&& f) {
  switch (m[1]) {
    case 0: return checked_pair<Res, R, pg::NoClip>(fn, m, p, std::forward<F>(f));
    case 1: return checked_pair<Res, R, pg::SymmetricClip>(fn, m, p, std::forward<F>(f));
    case 2: return checked_pair<Res, R, pg::AsymmetricClip>(fn, m, p, std::forward<F>(f));
    case 3: return checked_pair<Res, R, pg::DualClip>(fn, m, p, std::forward<F>(f));
    case 4: return checked_pair<Res, R, pg::CispoClip>(fn, m, p, std::forward<F>(f));
    case 5: return checked_pair<Res, R, pg::SapoGate>(fn, m, p, std::forward<F>(f));
    default: fail(fn, ": expected a clip code in [0, 5], got ", m[1]);
  }
}

}  // namespace detail

/// Calls f(Objective<...>{...}) for the objective `modes` / `params` describe; f must return the same type
/// for every objective. Throws kaizen::Error on malformed lists, unknown codes or an invalid combination.
template <class F, class Res = std::invoke_result_t<F, const pg::Objective<>&>>
Res with_objective(std::string_view fn, const std::vector<std::int64_t>& modes, const std::vector<double>& params,
                   F&& f) {
  KAIZEN_CHECK(modes.size() == kModeCount && params.size() == kParamCount, fn, ": expected ", kModeCount,
               " mode codes and ", kParamCount, " parameters, got ", modes.size(), " and ", params.size());
  switch (modes[0]) {
    case 0: return detail::by_clip<Res, pg::TokenRatio>(fn, modes, params, std::forward<F>(f));
    case 1: return detail::by_clip<Res, pg::SequenceRatio>(fn, modes, params, std::forward<F>(f));
    case 2: return detail::by_clip<Res, pg::GeometricRatio>(fn, modes, params, std::forward<F>(f));
    default: fail(fn, ": expected a ratio code in [0, 2], got ", modes[0]);
  }
}

}  // namespace kaizen::python
