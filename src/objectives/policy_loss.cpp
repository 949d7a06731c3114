// objectives::policy_loss: resolve the config, build the policy-term masks it asks for, dispatch to the precompiled
// objective (policy_{token,sequence,geometric}.cpp) or to vespo_loss.
#include <kaizen/objectives/runtime.hpp>

#include <torch/types.h>

#include <kaizen/policy_gradient/token_masks.hpp>
#include <kaizen/policy_gradient/vespo.hpp>

#include "policy_dispatch.hpp"

namespace kaizen::objectives {

namespace pg = kaizen::policy_gradient;

namespace {

template <class Aggregate>
pg::PolicyLossResult vespo(const PolicyObjectivePlan& p, const pg::PolicyLossInputs& in, std::optional<double> n) {
  KAIZEN_CHECK(in.logprobs.defined() && in.mask.defined(), "objectives::policy_loss: vespo needs `logprobs` and `mask`");
  const pg::VespoOptions options{.k_positive = p.vespo_k_positive, .lambda_positive = p.vespo_lambda_positive,
                                 .k_negative = p.vespo_k_negative, .lambda_negative = p.vespo_lambda_negative};
  const torch::Tensor loss = pg::vespo_loss(in.logprobs, in.old_logprobs, in.advantages, in.mask, options,
                                            detail::make_aggregation<Aggregate>(p), n);
  const double value = loss.detach().item<double>();
  return {loss, pg::PolicyLossMetrics{.loss = value, .policy_loss = value,
                                      .tokens = in.mask.to(torch::kFloat64).sum().item<double>(),
                                      .sequences = static_cast<double>(in.mask.size(0))}};
}

}  // namespace

pg::PolicyLossResult policy_loss(const PolicyLossConfig& config, const pg::PolicyLossInputs& inputs,
                                 std::optional<double> normaliser) {
  const PolicyObjectivePlan plan = resolve(config);
  if (plan.vespo) {
    KAIZEN_CHECK(!inputs.policy_token_mask.defined(), "objectives::policy_loss: vespo takes no `policy_token_mask`");
    switch (plan.aggregation) {
      case pg::AggregationMode::token_mean: return vespo<pg::TokenMean>(plan, inputs, normaliser);
      case pg::AggregationMode::seq_mean_token_mean: return vespo<pg::SeqMeanTokenMean>(plan, inputs, normaliser);
      case pg::AggregationMode::seq_mean_token_sum: return vespo<pg::SeqMeanTokenSum>(plan, inputs, normaliser);
      case pg::AggregationMode::seq_mean_token_sum_norm:
        return vespo<pg::SeqMeanTokenSumNorm>(plan, inputs, normaliser);
    }
  }
  pg::PolicyLossInputs in = inputs;
  const auto multiply = [&](const torch::Tensor& keep) {
    if (!in.policy_token_mask.defined()) {
      in.policy_token_mask = keep;
      return;
    }
    torch::Tensor prior = in.policy_token_mask.to(keep.scalar_type());
    in.policy_token_mask = (keep.dim() == 1 && prior.dim() == 2 ? keep.unsqueeze(1) : keep) *
                           (prior.dim() == 1 && keep.dim() == 2 ? prior.unsqueeze(1) : prior);
  };
  if (plan.top_entropy_quantile < 1) {
    KAIZEN_CHECK(inputs.entropy.defined(), "objectives::policy_loss: top_entropy_quantile = ",
                 plan.top_entropy_quantile, " needs the per-token `entropy`, got none");
    multiply(pg::high_entropy_mask(inputs.entropy.detach(), inputs.mask, plan.top_entropy_quantile));
  }
  if (plan.off_policy_mask_threshold) {
    const torch::Tensor& sampler = inputs.sampler_logprobs.defined() ? inputs.sampler_logprobs : inputs.old_logprobs;
    multiply(pg::off_policy_sequence_mask(inputs.advantages, inputs.logprobs.detach(), sampler, inputs.mask,
                                          *plan.off_policy_mask_threshold));
  }
  switch (plan.ratio) {
    case pg::RatioLevel::token: return detail::policy_loss_token(plan, in, normaliser);
    case pg::RatioLevel::sequence: return detail::policy_loss_sequence(plan, in, normaliser);
    case pg::RatioLevel::geometric: return detail::policy_loss_geometric(plan, in, normaliser);
  }
  fail("objectives::policy_loss: unknown ratio level ", static_cast<int>(plan.ratio));
}

}  // namespace kaizen::objectives
