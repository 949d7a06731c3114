// kaizen/policy_gradient/drift.hpp - mirror-learning drift objectives: LPO and temporally-aware LPO.
//
// Learned Policy Optimisation (Lu et al. 2022, "Discovered Policy Optimisation", arXiv 2210.05639)
// writes PPO-like objectives as J = E[ρ A − f(ρ, A)] with a drift f ≥ 0, f(1, A) = 0 and
// ∂f/∂ρ(1, A) = 0. TA-LPO (Jackson, Lu et al. 2024, arXiv 2402.05828) also feeds training progress
// p = n/N ∈ [0, 1] to f. Here the drift is any callable f(ρ, A, p) → [B, T]; shipped drifts:
//   PpoClipDrift        f = ReLU((ρ − clamp(ρ, 1−ε_low, 1+ε_high)) A)     (gives PPO-clip exactly)
//   ScheduledPpoDrift   PPO drift with ε(p) = ε_start + (ε_end − ε_start) p  (hand-written temporal)
//   DiscoveredDrift     f = ReLU((ρ−1)A − α tanh((ρ−1)A/α))     if A ≥ 0
//                       f = ReLU(log(ρ) A − β tanh(log(ρ) A/β))  if A < 0,   α = 2, β = 0.6
//   MlpDrift            x = [ρ−1, (ρ−1)², log ρ, (log ρ)²], input [x, A x] (8) or, temporal,
//                       [x, A x, p x, p A x] (16), each clipped to [−2, 2]; f = ReLU(W₂ tanh(W₁ in) − 10⁻⁴)
//                       (no biases, so f and its slope vanish at ρ = 1 for every p)
// Loss: drift_loss = aggregate(−(ρ A − f(ρ, A, p))) with ρ = exp(log π_θ − log π_old). LPO normalises
// advantages per batch (masked_whiten in advantages.hpp) before calling it. There is no published
// closed form of a TA-LPO drift; MlpDrift with temporal = true loads one.
// Sources: keraJLi/rejax examples/dpo.py (closed form), the LPO "drift learning" code (network form).
#pragma once

#include <concepts>
#include <optional>
#include <string_view>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/aggregation.hpp>
#include <kaizen/policy_gradient/detail/checks.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/ratio.hpp>

namespace kaizen::policy_gradient {

/// A drift: f(ratio [B, T], advantages [B, T], progress ∈ [0, 1]) → [B, T], differentiable in ratio,
/// with f ≥ 0, f(1, A) = 0 and ∂f/∂ρ(1, A) = 0.
template <class D>
concept DriftFunction = requires(const D& drift, const torch::Tensor& ratio, const torch::Tensor& advantages,
                                 double progress) {
  { drift(ratio, advantages, progress) } -> std::convertible_to<torch::Tensor>;
};

struct PpoClipDrift {
  double epsilon_low = 0.2;
  double epsilon_high = 0.2;
  [[nodiscard]] torch::Tensor operator()(const torch::Tensor& ratio, const torch::Tensor& advantages,
                                         double /*progress*/) const {
    return torch::relu((ratio - ratio.clamp(1 - epsilon_low, 1 + epsilon_high)) * advantages);
  }
};

struct ScheduledPpoDrift {
  double epsilon_start = 0.3;
  double epsilon_end = 0.1;
  [[nodiscard]] double epsilon(double progress) const {
    return epsilon_start + (epsilon_end - epsilon_start) * progress;
  }
  [[nodiscard]] torch::Tensor operator()(const torch::Tensor& ratio, const torch::Tensor& advantages,
                                         double progress) const {
    const double e = epsilon(progress);
    return PpoClipDrift{e, e}(ratio, advantages, progress);
  }
};

struct DiscoveredDrift {
  double alpha = 2.0;
  double beta = 0.6;
  [[nodiscard]] torch::Tensor operator()(const torch::Tensor& ratio, const torch::Tensor& advantages,
                                         double /*progress*/) const {
    const auto up = (ratio - 1) * advantages;
    const auto down = ratio.log() * advantages;
    return torch::where(advantages >= 0, torch::relu(up - alpha * torch::tanh(up / alpha)),
                        torch::relu(down - beta * torch::tanh(down / beta)));
  }
};

struct MlpDrift {
  torch::Tensor w1;            ///< [H, 8] or, temporal, [H, 16]
  torch::Tensor w2;            ///< [1, H]
  bool temporal = false;       ///< append p·features (TA-LPO)
  double input_clip = 2.0;     ///< inputs clipped to [−c, c]; 0 disables
  double offset = 1e-4;        ///< f = ReLU(out − offset)

  [[nodiscard]] torch::Tensor operator()(const torch::Tensor& ratio, const torch::Tensor& advantages,
                                         double progress) const {
    constexpr std::string_view fn = "MlpDrift";
    const std::int64_t inputs = temporal ? 16 : 8;
    KAIZEN_CHECK(w1.defined() && w1.dim() == 2 && w1.size(1) == inputs, fn, ": expected w1 of shape [H, ", inputs,
                 "], got ", w1.defined() ? w1.sizes() : torch::IntArrayRef{});
    KAIZEN_CHECK(w2.defined() && w2.dim() == 2 && w2.size(0) == 1 && w2.size(1) == w1.size(0), fn,
                 ": expected w2 of shape [1, ", w1.size(0), "], got ", w2.defined() ? w2.sizes() : torch::IntArrayRef{});
    const auto d = ratio - 1;
    const auto l = ratio.log();
    auto x = torch::stack({d, d.square(), l, l.square()}, -1);
    x = torch::cat({x, advantages.unsqueeze(-1) * x}, -1);
    if (temporal) x = torch::cat({x, progress * x}, -1);
    if (input_clip > 0) x = x.clamp(-input_clip, input_clip);
    const auto hidden = torch::tanh(torch::matmul(x, w1.to(x.scalar_type()).t()));
    return torch::relu(torch::matmul(hidden, w2.to(x.scalar_type()).t()).squeeze(-1) - offset);
  }
};

/// The drift objective's loss aggregate(−(ρ A − f(ρ, A, p)), m). `logprobs` (gradient), `old_logprobs`,
/// `advantages` [B, T] (or [B]) float of one dtype/device; `progress` = step / total steps in [0, 1].
/// Throws on mismatched inputs, an empty row, non-finite values, or progress outside [0, 1].
template <DriftFunction Drift, class Aggregate = TokenMean>
[[nodiscard]] torch::Tensor drift_loss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                                       const torch::Tensor& advantages, const torch::Tensor& mask, const Drift& drift,
                                       double progress, const Aggregate& aggregation = {},
                                       std::optional<double> normaliser = std::nullopt) {
  constexpr std::string_view fn = "drift_loss";
  detail::check_real(fn, "logprobs", logprobs);
  KAIZEN_CHECK(logprobs.dim() == 2, fn, ": expected [B, T] `logprobs`, got shape ", logprobs.sizes());
  detail::check_like(fn, "old_logprobs", old_logprobs, logprobs, "logprobs");
  const auto a = advantages.defined() && advantages.dim() == 1 && advantages.size(0) == logprobs.size(0)
                     ? advantages.unsqueeze(1).expand_as(logprobs)
                     : advantages;
  detail::check_like(fn, "advantages", a, logprobs, "logprobs");
  KAIZEN_CHECK(progress >= 0 && progress <= 1, fn, ": expected progress in [0, 1], got ", progress);
  const auto m = detail::mask_as(fn, mask, logprobs);
  detail::check_rows_nonempty(fn, m);
  detail::check_finite(fn, "logprobs", logprobs, m);
  detail::check_finite(fn, "old_logprobs", old_logprobs, m);
  detail::check_finite(fn, "advantages", a, m);
  const auto valid = m != 0;
  const auto zero = torch::zeros_like(logprobs);
  const auto ratio = (torch::where(valid, logprobs, zero) - torch::where(valid, old_logprobs.detach(), zero))
                         .clamp(-kMaxLogRatio, kMaxLogRatio)
                         .exp();
  const auto adv = torch::where(valid, a.detach(), zero);
  const torch::Tensor f = drift(ratio, adv, progress);
  return aggregate(-(ratio * adv - f), m, aggregation, normaliser);
}

}  // namespace kaizen::policy_gradient
