// kaizen/curriculum/tensor_gains.hpp - advantage_gains() for the advantages a loss computed as a tensor.
//
// The curricula are torch-free and take spans (kaizen/curriculum/sec.hpp). Policy-gradient code holds its
// advantages as a [B] tensor (pg::group_advantages returns one, on any device, in the rewards' dtype); this
// overload copies it to CPU doubles and applies the same rule: the mean |A| per arm. Include it where
// LibTorch is already in use; kaizen/curriculum.hpp stays LibTorch-free.
#pragma once

#include <span>
#include <vector>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/curriculum/sec.hpp>

namespace kaizen::curriculum {

/// advantage_gains(arm_ids, advantages) for a 1-D floating-point tensor of advantages (any device).
/// Throws kaizen::Error on a tensor that is not 1-D floating point, or (as the span form) on a length that
/// differs from arm_ids', negative arm ids or non-finite advantages.
[[nodiscard]] inline ArmGains advantage_gains(std::span<const ArmId> arm_ids, const torch::Tensor& advantages) {
  KAIZEN_CHECK(advantages.defined(), "advantage_gains: expected a defined advantages tensor");
  KAIZEN_CHECK(advantages.dim() == 1, "advantage_gains: expected advantages of shape [B], got ",
               advantages.sizes());
  KAIZEN_CHECK(advantages.is_floating_point(), "advantage_gains: expected floating-point advantages, got ",
               advantages.scalar_type());
  const torch::Tensor host = advantages.detach().to(torch::kCPU, torch::kDouble).contiguous();
  const std::span<const double> values(host.data_ptr<double>(), static_cast<std::size_t>(host.numel()));
  return advantage_gains(arm_ids, values);
}

}  // namespace kaizen::curriculum
