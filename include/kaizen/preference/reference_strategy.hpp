// kaizen/preference/reference_strategy.hpp - how the reference model π_ref evolves during training.
//
//   frozen          π_ref = π_θ at the start, never updated (DPO)
//   soft update     every k optimiser steps: θ_ref ← (1 − α)·θ_ref + α·θ        (TR-DPO, soft)
//   hard sync       every k optimiser steps: θ_ref ← θ                          (TR-DPO, hard)
//   reference-free  no reference: log π_ref ≡ 0 (SimPO, ORPO, CPO need none; DPO becomes its ref-free form)
// Strategies act on any Policy through parameters(): both models must list tensors of the same shapes
// in the same order. Updates run under torch::NoGradGuard and modify the reference's tensors in place,
// so optimisers or views holding them stay valid. Call after_step(policy, reference) after each
// optimiser step; it returns whether the reference changed.
//
// Reference: Gorbatovski et al. 2024, "Learn Your Reference Model for Real Good Alignment" (TR-DPO,
// arXiv 2404.09656). Defaults α = 0.6 and k = 512 follow TRL's DPOConfig `ref_model_mixup_alpha` and
// `ref_model_sync_steps`.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/core/grad_mode.h>
#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// target ← (1 − alpha)·target + alpha·source, element-wise over matching tensors, in place, no grad.
/// alpha = 1 copies. Throws kaizen::Error unless alpha ∈ (0, 1] and the lists match in length and
/// in each tensor's shape.
inline void mix_parameters(const std::vector<torch::Tensor>& target, const std::vector<torch::Tensor>& source,
                           double alpha) {
  KAIZEN_CHECK(alpha > 0.0 && alpha <= 1.0, "mix_parameters: expected alpha in (0, 1], got ", alpha);
  KAIZEN_CHECK(target.size() == source.size(), "mix_parameters: expected as many reference as policy parameters, got ",
               target.size(), " and ", source.size());
  for (std::size_t i = 0; i < target.size(); ++i) {
    KAIZEN_CHECK(target[i].sizes() == source[i].sizes(), "mix_parameters: parameter ", i, " has shape ",
                 target[i].sizes(), " in the reference but ", source[i].sizes(), " in the policy");
  }
  at::NoGradGuard no_grad;
  for (std::size_t i = 0; i < target.size(); ++i) {
    const torch::Tensor src = source[i].detach().to(target[i].device(), target[i].scalar_type());
    if (alpha == 1.0) {
      target[i].copy_(src);
    } else {
      target[i].lerp_(src, alpha);
    }
  }
}

/// The reference never changes.
struct FrozenReference {
  static constexpr bool kUsesReference = true;
  template <Policy P, Policy R>
  bool after_step(P& /*policy*/, R& /*reference*/) {
    return false;
  }
};

/// TR-DPO soft update: every `every` steps, θ_ref ← (1 − alpha)·θ_ref + alpha·θ.
class SoftUpdateReference {
 public:
  static constexpr bool kUsesReference = true;
  /// Throws kaizen::Error unless alpha ∈ (0, 1] and every >= 1.
  explicit SoftUpdateReference(double alpha = 0.6, std::int64_t every = 512) : alpha_(alpha), every_(every) {
    KAIZEN_CHECK(alpha > 0.0 && alpha <= 1.0, "SoftUpdateReference: expected alpha in (0, 1], got ", alpha);
    KAIZEN_CHECK(every >= 1, "SoftUpdateReference: expected every >= 1 step, got ", every);
  }
  template <Policy P, Policy R>
  bool after_step(P& policy, R& reference) {
    if (++steps_ % every_ != 0) return false;
    mix_parameters(reference.parameters(), policy.parameters(), alpha_);
    return true;
  }
  [[nodiscard]] std::int64_t steps() const { return steps_; }

 private:
  double alpha_;
  std::int64_t every_;
  std::int64_t steps_ = 0;
};

/// TR-DPO hard update: every `every` steps, θ_ref ← θ.
class HardSyncReference {
 public:
  static constexpr bool kUsesReference = true;
  /// Throws kaizen::Error unless every >= 1.
  explicit HardSyncReference(std::int64_t every = 512) : every_(every) {
    KAIZEN_CHECK(every >= 1, "HardSyncReference: expected every >= 1 step, got ", every);
  }
  template <Policy P, Policy R>
  bool after_step(P& policy, R& reference) {
    if (++steps_ % every_ != 0) return false;
    mix_parameters(reference.parameters(), policy.parameters(), 1.0);
    return true;
  }
  [[nodiscard]] std::int64_t steps() const { return steps_; }

 private:
  std::int64_t every_;
  std::int64_t steps_ = 0;
};

/// No reference model: losses see log π_ref ≡ 0 (see without_reference). There is nothing to update,
/// so it has no after_step; loops branch on `if constexpr (S::kUsesReference)`.
struct ReferenceFree {
  static constexpr bool kUsesReference = false;
  /// The pairs with zero reference log-probs.
  [[nodiscard]] PairLogProbs apply(PairLogProbs pairs) const { return without_reference(std::move(pairs)); }
};

}  // namespace kaizen::preference
