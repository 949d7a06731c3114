// kaizen/preference/f_divergence.hpp - f-divergence DPO: the score each log-ratio becomes before the margin.
//
// DPO regularises with the reverse KL; Wang et al. generalise it to any f-divergence whose derivative
// f' is invertible. With u = log π_θ(y|x) − log π_ref(y|x) (t = e^u the likelihood ratio), the
// implicit reward is f'(t) and the pair's margin is h_f = f'(t_w) − f'(t_l):
//   reverse KL   f'(t) = log t + 1          score(u) = u                       (standard DPO)
//   forward KL   f'(t) = 1 − 1/t            score(u) = 1 − e^(−u)
//   JS           f'(t) = log(2t / (1 + t))  score(u) = log 2 + log σ(u)
//   α-divergence f'(t) = (t^(α−1) − 1)/(α − 1), score(u) = (e^((α−1)u) − 1)/(α − 1); α → 1 gives u
// (additive constants cancel in h_f). The scores replace u in the margin of dpo_loss and dpo_norm_loss
// (DpoOptions::divergence); the implicit rewards reported stay β·u as in TRL.
// Peers: TRL's DPOConfig `f_divergence_type` ∈ {reverse_kl, forward_kl, js_divergence, alpha_divergence} and
// `f_alpha_divergence_coef` (default 0.5) use these scores (TRL 1.16 dpo_trainer.py). TRL clamps (α−1)u at 80
// in float32 (11 in float16) before exp, and has no entry for float64 (its α path raises on float64
// inputs); kaizen computes the exact value in the input dtype and rejects a non-finite score.
//
// Reference: Wang et al. 2024, "Beyond Reverse KL: Generalizing Direct Preference Optimization with
// Diverse Divergence Constraints" (arXiv 2309.16240).
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

#include <torch/types.h>

#include <kaizen/core/error.hpp>

namespace kaizen::preference {

/// Which f-divergence regularises the policy (see the header formula).
enum class FDivergence : std::uint8_t { reverse_kl, forward_kl, js, alpha };

/// The divergence of a DPO-family loss; `alpha` is read for FDivergence::alpha only.
struct FDivergenceOptions {
  FDivergence kind = FDivergence::reverse_kl;
  double alpha = 0.5;  ///< α of the α-divergence (TRL's `f_alpha_divergence_coef` default 0.5); finite
};

namespace detail {

inline void check_divergence(const char* fn, const FDivergenceOptions& d) {
  KAIZEN_CHECK(d.kind != FDivergence::alpha || std::isfinite(d.alpha), fn,
               ": expected a finite alpha for the alpha-divergence, got ", d.alpha);
}

/// score(u) of the header formula, element-wise and differentiable.
[[nodiscard]] inline torch::Tensor f_divergence_score(const torch::Tensor& u, const FDivergenceOptions& d) {
  switch (d.kind) {
    case FDivergence::reverse_kl: return u;
    case FDivergence::forward_kl: return 1.0 - torch::exp(-u);
    case FDivergence::js: return std::numbers::ln2 + torch::log_sigmoid(u);
    case FDivergence::alpha:
      if (std::abs(d.alpha - 1.0) < 1e-6) return u;
      return torch::expm1((d.alpha - 1.0) * u) / (d.alpha - 1.0);
  }
  return u;
}

}  // namespace detail

}  // namespace kaizen::preference
