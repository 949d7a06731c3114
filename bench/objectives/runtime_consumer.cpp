// (b) of consumer_compile_time.sh: the same two losses as compile_time_consumer.cpp through the light runtime
// header (the instantiations live in the kaizen::objectives library).
#include <kaizen/objectives/runtime.hpp>

namespace obj = kaizen::objectives;

double consumer_losses(const kaizen::policy_gradient::PolicyLossInputs& in, const kaizen::preference::PairLogProbs& pairs) {
  const auto policy = obj::policy_loss(obj::PolicyLossConfig{.loss_type = "grpo", .beta = 0.04}, in);
  const auto preference = obj::preference_loss(obj::PreferenceLossConfig{.loss_type = "sigmoid", .beta = 0.1}, pairs);
  return policy.metrics.loss + preference.loss.item<double>();
}
