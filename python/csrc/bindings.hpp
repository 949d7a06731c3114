// python/csrc/bindings.hpp - declarations shared by the translation units of kaizen._C.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <ATen/core/Tensor.h>

namespace kaizen::python {

/// policy_loss's scalar loss (under autograd) and its metrics in PolicyLossMetrics' member order.
struct PolicyLossOut {
  at::Tensor loss;
  std::vector<double> metrics;
};

/// policy_gradient::policy_loss for the Objective `modes` / `params` describe (objective_spec.hpp).
PolicyLossOut policy_loss_reference(const at::Tensor& logprobs, const at::Tensor& old_logprobs,
                                    const std::optional<at::Tensor>& ref_logprobs, const at::Tensor& advantages,
                                    const at::Tensor& mask, const std::optional<at::Tensor>& entropy,
                                    const std::optional<at::Tensor>& sampler_logprobs,
                                    const std::optional<at::Tensor>& policy_token_mask,
                                    const std::vector<std::int64_t>& modes, const std::vector<double>& params,
                                    std::optional<double> normaliser);

}  // namespace kaizen::python
