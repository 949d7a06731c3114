// tests/support/objective_combinations.hpp - every policy_gradient::Objective<Ratio, Clip, Kl, Aggregate>
// the library accepts, visited at compile time, for tests that must hold for all of them.
#pragma once

#include <kaizen/policy_gradient/options.hpp>

namespace kaizen::test {

template <class... T>
struct TypeList {};

namespace objectives {
namespace pg = kaizen::policy_gradient;
using Ratios = TypeList<pg::TokenRatio, pg::SequenceRatio, pg::GeometricRatio>;
using Clips = TypeList<pg::NoClip, pg::SymmetricClip, pg::AsymmetricClip, pg::DualClip, pg::CispoClip, pg::SapoGate>;
using Kls = TypeList<pg::KlLoss<pg::KlEstimator::none>, pg::KlLoss<pg::KlEstimator::k1>, pg::KlLoss<pg::KlEstimator::k2>,
                     pg::KlLoss<pg::KlEstimator::k3>, pg::KlLoss<pg::KlEstimator::k3_importance>>;
using Aggregations = TypeList<pg::TokenMean, pg::SeqMeanTokenMean, pg::SeqMeanTokenSum, pg::SeqMeanTokenSumNorm>;

template <class R, class C, class K, class V, class... A>
void over_aggregations(V& visit, TypeList<A...>) {
  (visit.template operator()<R, C, K, A>(), ...);
}
template <class R, class C, class V, class... K>
void over_kls(V& visit, TypeList<K...>) {
  (over_aggregations<R, C, K>(visit, Aggregations{}), ...);
}
template <class R, class C, class V>
void over_kls_if_supported(V& visit) {
  // Objective static_asserts on the unsupported pairs (geometric with dual/CISPO/SAPO, sequence with CISPO/SAPO).
  if constexpr (pg::detail::supported_combination(R::level, C::mode)) over_kls<R, C>(visit, Kls{});
}
template <class R, class V, class... C>
void over_clips(V& visit, TypeList<C...>) {
  (over_kls_if_supported<R, C>(visit), ...);
}
template <class V, class... R>
void over_ratios(V& visit, TypeList<R...>) {
  (over_clips<R>(visit, Clips{}), ...);
}
}  // namespace objectives

/// Calls visit.template operator()<Ratio, Clip, Kl, Aggregate>() for each of the 260 supported
/// combinations (3 ratio levels x 6 clips x 5 KL estimators x 4 aggregations, less the unsupported
/// ratio/clip pairs), in a fixed order.
template <class V>
void for_each_objective(V&& visit) {
  objectives::over_ratios(visit, objectives::Ratios{});
}

}  // namespace kaizen::test
