// Internal to the kaizen::objectives library: a PolicyObjectivePlan → the Objective<Ratio, Clip, Kl, Aggregate>
// it names → policy_gradient::policy_loss. Each ratio level is instantiated in its own translation unit
// (policy_token.cpp, policy_sequence.cpp, policy_geometric.cpp) so the library builds in parallel.
#pragma once

#include <optional>

#include <kaizen/core/error.hpp>
#include <kaizen/objectives/config.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>

namespace kaizen::objectives::detail {

namespace pg = kaizen::policy_gradient;

template <class Clip>
Clip make_clip(const PolicyObjectivePlan& p) {
  if constexpr (Clip::mode == pg::ClipMode::symmetric) {
    return Clip{.epsilon = p.epsilon_low};
  } else if constexpr (Clip::mode == pg::ClipMode::asymmetric) {
    return Clip{.epsilon_low = p.epsilon_low, .epsilon_high = p.epsilon_high};
  } else if constexpr (Clip::mode == pg::ClipMode::dual) {
    return Clip{.epsilon_low = p.epsilon_low, .epsilon_high = p.epsilon_high, .c = p.dual_clip_c};
  } else if constexpr (Clip::mode == pg::ClipMode::cispo) {
    return Clip{.epsilon_low = p.epsilon_low, .epsilon_high = p.epsilon_high, .value = p.cispo_value};
  } else if constexpr (Clip::mode == pg::ClipMode::sapo) {
    return Clip{.tau_positive = p.tau_positive, .tau_negative = p.tau_negative};
  } else {
    return Clip{};
  }
}

template <class Aggregate>
Aggregate make_aggregation(const PolicyObjectivePlan& p) {
  if constexpr (Aggregate::mode == pg::AggregationMode::seq_mean_token_sum_norm) {
    return Aggregate{.constant = p.aggregation_constant};
  } else {
    return Aggregate{};
  }
}

/// The one call every runtime policy loss ends in.
template <class Ratio, class Clip, class Kl, class Aggregate>
pg::PolicyLossResult run(const PolicyObjectivePlan& p, const pg::PolicyLossInputs& in, std::optional<double> n) {
  pg::Objective<Ratio, Clip, Kl, Aggregate> objective{.ratio = {},
                                                      .clip = make_clip<Clip>(p),
                                                      .kl = {},
                                                      .aggregation = make_aggregation<Aggregate>(p),
                                                      .entropy_coefficient = p.entropy_coefficient,
                                                      .importance = p.importance,
                                                      .ratio_cap = p.ratio_cap};
  if constexpr (Kl::estimator != pg::KlEstimator::none) {
    objective.kl.coefficient = p.kl_coefficient;
    objective.kl.clamp = p.kl_clamp;
  }
  return pg::policy_loss(in, objective, n);
}

template <class Ratio, class Clip, class Kl>
pg::PolicyLossResult with_aggregation(const PolicyObjectivePlan& p, const pg::PolicyLossInputs& in,
                                      std::optional<double> n) {
  switch (p.aggregation) {
    case pg::AggregationMode::token_mean: return run<Ratio, Clip, Kl, pg::TokenMean>(p, in, n);
    case pg::AggregationMode::seq_mean_token_mean: return run<Ratio, Clip, Kl, pg::SeqMeanTokenMean>(p, in, n);
    case pg::AggregationMode::seq_mean_token_sum: return run<Ratio, Clip, Kl, pg::SeqMeanTokenSum>(p, in, n);
    case pg::AggregationMode::seq_mean_token_sum_norm: return run<Ratio, Clip, Kl, pg::SeqMeanTokenSumNorm>(p, in, n);
  }
  fail("objectives::policy_loss: unknown aggregation mode ", static_cast<int>(p.aggregation));
}

template <class Ratio, class Clip>
pg::PolicyLossResult with_kl(const PolicyObjectivePlan& p, const pg::PolicyLossInputs& in, std::optional<double> n) {
  using pg::KlEstimator, pg::KlLoss;
  switch (p.kl) {
    case KlEstimator::none: return with_aggregation<Ratio, Clip, pg::NoKl>(p, in, n);
    case KlEstimator::k1: return with_aggregation<Ratio, Clip, KlLoss<KlEstimator::k1>>(p, in, n);
    case KlEstimator::k2: return with_aggregation<Ratio, Clip, KlLoss<KlEstimator::k2>>(p, in, n);
    case KlEstimator::k3: return with_aggregation<Ratio, Clip, KlLoss<KlEstimator::k3>>(p, in, n);
    case KlEstimator::k3_importance: return with_aggregation<Ratio, Clip, KlLoss<KlEstimator::k3_importance>>(p, in, n);
  }
  fail("objectives::policy_loss: unknown KL estimator ", static_cast<int>(p.kl));
}

/// Every clip the ratio level admits (options.hpp's static_asserts); the others are refused by resolve().
template <class Ratio>
pg::PolicyLossResult with_clip(const PolicyObjectivePlan& p, const pg::PolicyLossInputs& in, std::optional<double> n) {
  constexpr bool geometric = Ratio::level == pg::RatioLevel::geometric;
  constexpr bool token = Ratio::level == pg::RatioLevel::token;
  switch (p.clip) {
    case pg::ClipMode::symmetric: return with_kl<Ratio, pg::SymmetricClip>(p, in, n);
    case pg::ClipMode::asymmetric: return with_kl<Ratio, pg::AsymmetricClip>(p, in, n);
    case pg::ClipMode::dual:
      if constexpr (!geometric) return with_kl<Ratio, pg::DualClip>(p, in, n);
      break;
    case pg::ClipMode::cispo:
      if constexpr (token) return with_kl<Ratio, pg::CispoClip>(p, in, n);
      break;
    case pg::ClipMode::sapo:
      if constexpr (token) return with_kl<Ratio, pg::SapoGate>(p, in, n);
      break;
    case pg::ClipMode::none: break;
  }
  fail("objectives::policy_loss: clip mode ", static_cast<int>(p.clip), " is not precompiled for ratio level ",
       static_cast<int>(Ratio::level));
}

pg::PolicyLossResult policy_loss_token(const PolicyObjectivePlan& p, const pg::PolicyLossInputs& in,
                                       std::optional<double> n);
pg::PolicyLossResult policy_loss_sequence(const PolicyObjectivePlan& p, const pg::PolicyLossInputs& in,
                                          std::optional<double> n);
pg::PolicyLossResult policy_loss_geometric(const PolicyObjectivePlan& p, const pg::PolicyLossInputs& in,
                                           std::optional<double> n);

}  // namespace kaizen::objectives::detail
