// (a) of consumer_compile_time.sh: a consumer's TU computing one GRPO policy loss and one DPO loss the
// header-only way (the objective's templates are instantiated here).
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/preference/dpo.hpp>

namespace pg = kaizen::policy_gradient;
namespace pref = kaizen::preference;

double consumer_losses(const pg::PolicyLossInputs& in, const pref::PairLogProbs& pairs) {
  const auto policy = pg::policy_loss(in, pg::GrpoObjective{.kl = {.coefficient = 0.04}});
  const auto preference = pref::dpo_loss(pairs, {.beta = 0.1});
  return policy.metrics.loss + preference.loss.item<double>();
}
