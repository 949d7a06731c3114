// The precompiled policy-gradient objectives with pg::TokenRatio (every clip, KL estimator and aggregation it admits).
#include "policy_dispatch.hpp"

namespace kaizen::objectives::detail {

pg::PolicyLossResult policy_loss_token(const PolicyObjectivePlan& p, const pg::PolicyLossInputs& in,
                                 std::optional<double> n) {
  return with_clip<pg::TokenRatio>(p, in, n);
}

}  // namespace kaizen::objectives::detail
