// The precompiled policy-gradient objectives with pg::GeometricRatio (every clip, KL estimator and aggregation it admits).
#include "policy_dispatch.hpp"

namespace kaizen::objectives::detail {

pg::PolicyLossResult policy_loss_geometric(const PolicyObjectivePlan& p, const pg::PolicyLossInputs& in,
                                 std::optional<double> n) {
  return with_clip<pg::GeometricRatio>(p, in, n);
}

}  // namespace kaizen::objectives::detail
