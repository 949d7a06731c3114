// python/csrc/policy_loss_reference.cpp - policy_gradient::policy_loss (the LibTorch composition under
// autograd) for a runtime-chosen Objective. Its own translation unit: ~260 instantiations of policy_loss.
#include "bindings.hpp"

#include <kaizen/policy_gradient/policy_loss.hpp>

#include "objective_spec.hpp"

namespace kaizen::python {

PolicyLossOut policy_loss_reference(const at::Tensor& logprobs, const at::Tensor& old_logprobs,
                                    const std::optional<at::Tensor>& ref_logprobs, const at::Tensor& advantages,
                                    const at::Tensor& mask, const std::optional<at::Tensor>& entropy,
                                    const std::optional<at::Tensor>& sampler_logprobs,
                                    const std::optional<at::Tensor>& policy_token_mask,
                                    const std::vector<std::int64_t>& modes, const std::vector<double>& params,
                                    std::optional<double> normaliser) {
  const policy_gradient::PolicyLossInputs in{.logprobs = logprobs,
                                             .old_logprobs = old_logprobs,
                                             .ref_logprobs = ref_logprobs.value_or(at::Tensor()),
                                             .advantages = advantages,
                                             .mask = mask,
                                             .entropy = entropy.value_or(at::Tensor()),
                                             .sampler_logprobs = sampler_logprobs.value_or(at::Tensor()),
                                             .policy_token_mask = policy_token_mask.value_or(at::Tensor())};
  return with_objective("policy_loss", modes, params, [&](const auto& objective) {
    const auto r = policy_gradient::policy_loss(in, objective, normaliser);
    const auto& s = r.metrics;
    return PolicyLossOut{r.loss,
                         {s.loss, s.policy_loss, s.kl, s.entropy, s.clip_fraction_low, s.clip_fraction_high,
                          s.clip_fraction_dual, s.ratio_mean, s.ratio_max, s.importance_weight_mean, s.tokens,
                          s.sequences}};
  });
}

}  // namespace kaizen::python
