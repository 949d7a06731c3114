// kaizen/policy_gradient/policy_loss.hpp - the one entry point for policy-gradient objectives.
//
// For an Objective<Ratio, Clip, Kl, Aggregate> and per-token inputs [B, T] aligned with a mask m:
//   r_t  = importance_ratio(Ratio)            token / sequence (GSPO) / geometric (GMPO)   ratio.hpp
//   w_t  = importance_weights(importance)     truncated IS vs the sampler's log-probs    importance.hpp
//   ℓ_t  = −w_t · surrogate(Clip; r_t, A_t)   PPO / clip-higher / dual / CISPO / SAPO      clip.hpp
//          + β · KL_t(Kl)                     k1 / k2 / k3 / k3_importance to π_ref         kl.hpp
//          − c_H · H_t                        entropy bonus on a caller-supplied entropy
//   L    = aggregate(ℓ, m; Aggregate, N)      token-mean / seq-mean-token-{mean,sum,sum-norm} aggregation.hpp
// returned with PolicyLossMetrics. Pass N = Σ loss_normaliser(objective.aggregation, mask) over all
// micro-batches of a step so that accumulation over micro-batches reproduces the full-batch gradient.
//
// Every published variant is a choice of options (docs/policy_gradient.md): GRPO = GrpoObjective,
// DAPO = DapoObjective, Dr. GRPO = DrGrpoObjective, GSPO = kGspo, GMPO = kGmpo, CISPO, SAPO, dual-clip
// PPO; vanilla REINFORCE is Objective<TokenRatio, NoClip> with old_logprobs = logprobs.detach().
#pragma once

#include <cmath>
#include <optional>
#include <string_view>

#include <ATen/core/grad_mode.h>
#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/aggregation.hpp>
#include <kaizen/policy_gradient/clip.hpp>
#include <kaizen/policy_gradient/detail/checks.hpp>
#include <kaizen/policy_gradient/importance.hpp>
#include <kaizen/policy_gradient/kl.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss_types.hpp>
#include <kaizen/policy_gradient/ratio.hpp>

namespace kaizen::policy_gradient {

namespace detail {

/// The checks policy_loss and the fused kaizen::ops::policy_objective share, with the same messages
/// under `fn`: shapes, dtypes and devices of the inputs, the inputs the options require, and the option
/// values (ε, c, τ, β). Returns the mask in the log-prob dtype. Rows without a valid token and
/// non-finite values are left to the caller, which finds them in its own pass over the data.
/// `reference_path`: true from policy_loss, which computes every option; the fused objective calls it
/// with the default false, and then the options only policy_loss computes are refused by name.
template <class Ratio, class Clip, class Kl, class Aggregate>
[[nodiscard]] torch::Tensor check_policy_inputs(std::string_view fn, const PolicyLossInputs& in,
                                                const Objective<Ratio, Clip, Kl, Aggregate>& objective,
                                                bool reference_path = false) {
  check_real(fn, "logprobs", in.logprobs);
  KAIZEN_CHECK(in.logprobs.dim() == 2, fn, ": expected [B, T] `logprobs`, got shape ", in.logprobs.sizes());
  check_like(fn, "old_logprobs", in.old_logprobs, in.logprobs, "logprobs");
  torch::Tensor m = mask_as(fn, in.mask, in.logprobs);
  check_real(fn, "advantages", in.advantages);
  if (in.advantages.dim() == 1) {
    KAIZEN_CHECK(in.advantages.size(0) == in.logprobs.size(0), fn, ": expected per-sequence `advantages` of shape [",
                 in.logprobs.size(0), "], got ", in.advantages.sizes());
    check_like(fn, "advantages", in.advantages.unsqueeze(1).expand_as(in.logprobs), in.logprobs, "logprobs");
  } else {
    check_like(fn, "advantages", in.advantages, in.logprobs, "logprobs");
  }
  if (!reference_path) {
    KAIZEN_CHECK(!in.policy_token_mask.defined(), fn,
                 ": `policy_token_mask` is computed by policy_loss only; call policy_loss for it");
    KAIZEN_CHECK(std::isinf(objective.ratio_cap) && objective.ratio_cap > 0, fn,
                 ": a finite ratio_cap is computed by policy_loss only; call policy_loss for it (got ",
                 objective.ratio_cap, ")");
    if constexpr (Clip::mode == ClipMode::cispo) {
      KAIZEN_CHECK(objective.clip.value == CispoLossValue::weight, fn,
                   ": CispoLossValue::log_prob is computed by policy_loss only; call policy_loss for it");
    }
  }
  KAIZEN_CHECK(objective.ratio_cap > 0, fn, ": expected ratio_cap > 0 (+inf: off), got ", objective.ratio_cap);
  if (!std::isinf(objective.ratio_cap)) {
    KAIZEN_CHECK(Ratio::level != RatioLevel::geometric && Clip::mode != ClipMode::cispo && Clip::mode != ClipMode::sapo,
                 fn, ": ratio_cap applies to the token and sequence ratios with NoClip, SymmetricClip, AsymmetricClip "
                 "or DualClip, not to GeometricRatio, CispoClip or SapoGate");
  }
  if (in.policy_token_mask.defined()) {
    const auto& pm = in.policy_token_mask;
    KAIZEN_CHECK(pm.device() == in.logprobs.device(), fn, ": expected `policy_token_mask` on ", in.logprobs.device(),
                 ", got ", pm.device());
    KAIZEN_CHECK((pm.dim() == 2 && pm.sizes() == in.logprobs.sizes()) ||
                     (pm.dim() == 1 && pm.size(0) == in.logprobs.size(0)),
                 fn, ": expected `policy_token_mask` of shape [B, T] = ", in.logprobs.sizes(), " or [B] = [",
                 in.logprobs.size(0), "], got ", pm.sizes());
    KAIZEN_CHECK(pm.scalar_type() == torch::kBool || pm.is_floating_point(), fn,
                 ": expected a bool or floating `policy_token_mask`, got ", pm.scalar_type());
  }
  if constexpr (Kl::estimator != KlEstimator::none) {
    KAIZEN_CHECK(objective.kl.clamp > 0, fn, ": expected a KL clamp > 0 (+inf: none), got ", objective.kl.clamp);
    KAIZEN_CHECK(objective.kl.coefficient >= 0, fn, ": expected a KL coefficient >= 0, got ", objective.kl.coefficient);
    KAIZEN_CHECK(in.ref_logprobs.defined(), fn, ": expected `ref_logprobs` for a KL term in the loss, got none");
    check_like(fn, "ref_logprobs", in.ref_logprobs, in.logprobs, "logprobs");
  }
  if constexpr (Clip::mode == ClipMode::symmetric) {
    KAIZEN_CHECK(objective.clip.epsilon >= 0, fn, ": expected clip epsilon >= 0, got ", objective.clip.epsilon);
  } else if constexpr (Clip::mode == ClipMode::asymmetric || Clip::mode == ClipMode::dual ||
                       Clip::mode == ClipMode::cispo) {
    KAIZEN_CHECK(objective.clip.epsilon_low >= 0 && objective.clip.epsilon_high >= 0, fn,
                 ": expected clip epsilons >= 0, got epsilon_low = ", objective.clip.epsilon_low,
                 ", epsilon_high = ", objective.clip.epsilon_high);
    if constexpr (Clip::mode == ClipMode::dual) {
      KAIZEN_CHECK(objective.clip.c > 1, fn, ": expected the dual-clip constant c > 1, got ", objective.clip.c);
    }
  } else if constexpr (Clip::mode == ClipMode::sapo) {
    KAIZEN_CHECK(objective.clip.tau_positive > 0 && objective.clip.tau_negative > 0, fn,
                 ": expected SAPO temperatures > 0, got tau_positive = ", objective.clip.tau_positive,
                 ", tau_negative = ", objective.clip.tau_negative);
  }
  if (objective.entropy_coefficient != 0) {
    KAIZEN_CHECK(in.entropy.defined(), fn, ": expected a per-token `entropy` for entropy_coefficient = ",
                 objective.entropy_coefficient, ", got none");
  }
  if (in.entropy.defined()) check_like(fn, "entropy", in.entropy, in.logprobs, "logprobs");
  if (objective.importance.action != ImportanceAction::none) {
    KAIZEN_CHECK(in.sampler_logprobs.defined(), fn,
                 ": expected `sampler_logprobs` for truncated importance sampling, got none");
  }
  return m;
}

}  // namespace detail

/// The policy-gradient loss for `objective` (options.hpp). `normaliser`: the global N of the
/// aggregation (see aggregation.hpp); defaults to this batch's own.
/// Throws kaizen::Error on: an undefined, non-float, mis-shaped, wrong-dtype or wrong-device input; a
/// row of `mask` with no valid token; non-finite log-probs, advantages, entropy or sampler log-probs on
/// valid tokens; a missing ref_logprobs / entropy / sampler_logprobs that the options require; an
/// invalid option value (ε < 0, c <= 1, τ <= 0, cap <= 0, L_c <= 0, β < 0).
template <class Ratio, class Clip, class Kl, class Aggregate>
[[nodiscard]] PolicyLossResult policy_loss(const PolicyLossInputs& in, const Objective<Ratio, Clip, Kl, Aggregate>& objective,
                                           std::optional<double> normaliser = std::nullopt) {
  constexpr std::string_view fn = "policy_loss";
  using Obj = Objective<Ratio, Clip, Kl, Aggregate>;
  // --- validation ---------------------------------------------------------------------------------
  const torch::Tensor m = detail::check_policy_inputs(fn, in, objective, /*reference_path=*/true);
  detail::check_rows_nonempty(fn, m);
  const torch::Tensor advantages =
      in.advantages.dim() == 1 ? in.advantages.unsqueeze(1).expand_as(in.logprobs) : in.advantages;
  const bool with_entropy = objective.entropy_coefficient != 0;
  const bool with_importance = objective.importance.action != ImportanceAction::none;

  // --- padding and finiteness -------------------------------------------------------------------
  // Padding may hold anything (even -inf): zero it before any arithmetic so nothing leaks into values
  // or gradients. Then one reduction over every valid input tells whether any is non-finite; only
  // then is the culprit located (a finite sum can only fail by overflow, which the detailed checks
  // let through).
  const auto valid = m != 0;
  const auto zero = torch::zeros_like(in.logprobs);
  const auto lp = torch::where(valid, in.logprobs, zero);
  const auto old = torch::where(valid, in.old_logprobs.detach(), zero);
  const auto adv = torch::where(valid, advantages.detach(), zero);
  const auto ref = Obj::kl_estimator != KlEstimator::none ? torch::where(valid, in.ref_logprobs.detach(), zero)
                                                          : torch::Tensor{};
  const auto entropy_input = in.entropy.defined() ? torch::where(valid, in.entropy, zero) : torch::Tensor{};
  {
    at::NoGradGuard no_grad;
    auto probe = lp.detach().sum() + old.sum() + adv.sum();
    if (ref.defined()) probe = probe + ref.sum();
    if (entropy_input.defined()) probe = probe + entropy_input.detach().sum();
    if (!std::isfinite(probe.item<double>())) {
      detail::check_finite(fn, "logprobs", in.logprobs, m);
      detail::check_finite(fn, "old_logprobs", in.old_logprobs, m);
      detail::check_finite(fn, "advantages", advantages, m);
      if (ref.defined()) detail::check_finite(fn, "ref_logprobs", in.ref_logprobs, m);
      if (entropy_input.defined()) detail::check_finite(fn, "entropy", in.entropy, m);
    }
  }

  // --- the loss -----------------------------------------------------------------------------------
  const torch::Tensor ratio = importance_ratio(objective.ratio, objective.clip, lp, old, adv, m);
  const torch::Tensor obj = Obj::ratio_level == RatioLevel::geometric
                                ? ratio * adv
                                : surrogate(objective.clip, ratio, adv, lp, objective.ratio_cap);
  const torch::Tensor weight =
      with_importance ? importance_weights(old, in.sampler_logprobs, m, objective.importance) : torch::Tensor{};
  torch::Tensor policy_term = with_importance ? -weight * obj : -obj;
  if (in.policy_token_mask.defined()) {
    auto pm = in.policy_token_mask.detach().to(lp.scalar_type());
    if (pm.dim() == 1) pm = pm.unsqueeze(1).expand_as(lp);
    policy_term = policy_term * torch::where(valid, pm, zero);
  }
  torch::Tensor per_token = policy_term;
  torch::Tensor kl;
  if constexpr (Obj::kl_estimator != KlEstimator::none) {
    kl = detail::kl_terms(Obj::kl_estimator, lp, ref, old, objective.kl.clamp);
    per_token = per_token + objective.kl.coefficient * kl;
  }
  if (with_entropy) per_token = per_token - objective.entropy_coefficient * entropy_input;
  const double n = detail::resolve_normaliser(fn, objective.aggregation, m, normaliser);
  torch::Tensor loss = detail::aggregate_unchecked(per_token, m, objective.aggregation, n);

  // --- metrics (one device-to-host copy) ---------------------------------------------------------
  at::NoGradGuard no_grad;
  const auto tokens = m.sum();
  const auto scalar_zero = torch::zeros({}, m.options());
  const auto mean = [&](const torch::Tensor& x) { return (x * m).sum() / tokens; };
  const auto fraction = [&](const torch::Tensor& event) {
    return event.defined() ? torch::where(event, m, zero).sum() / tokens : scalar_zero;
  };
  const torch::Tensor log_ratio =
      Obj::ratio_level == RatioLevel::geometric ? (lp - old).clamp(-kMaxLogRatio, kMaxLogRatio) : torch::Tensor{};
  const ClipEvents events = clip_events<Ratio>(objective.clip, ratio, adv, log_ratio);
  const bool policy_only = Obj::kl_estimator == KlEstimator::none && !with_entropy;
  const torch::Tensor stats =
      torch::stack({loss.detach(),
                    policy_only ? loss.detach()
                                : detail::aggregate_unchecked(policy_term.detach(), m, objective.aggregation, n),
                    kl.defined() ? mean(kl) : scalar_zero,
                    entropy_input.defined() ? mean(entropy_input) : -mean(lp),
                    fraction(events.low), fraction(events.high), fraction(events.dual), mean(ratio),
                    torch::where(valid, ratio, torch::full_like(ratio, -INFINITY)).max(),
                    with_importance ? mean(weight) : torch::ones({}, m.options()), tokens})
          .to(torch::kCPU, torch::kFloat64);
  const auto* s = stats.data_ptr<double>();
  PolicyLossMetrics metrics{.loss = s[0], .policy_loss = s[1], .kl = s[2], .entropy = s[3],
                            .clip_fraction_low = s[4], .clip_fraction_high = s[5], .clip_fraction_dual = s[6],
                            .ratio_mean = s[7], .ratio_max = s[8], .importance_weight_mean = s[9], .tokens = s[10],
                            .sequences = static_cast<double>(m.size(0))};
  return {loss, metrics};
}

/// Positional form: policy_loss(logprobs, old_logprobs, ref_logprobs, advantages, mask, objective[, N]).
template <class Ratio, class Clip, class Kl, class Aggregate>
[[nodiscard]] PolicyLossResult policy_loss(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                                           const torch::Tensor& ref_logprobs, const torch::Tensor& advantages,
                                           const torch::Tensor& mask,
                                           const Objective<Ratio, Clip, Kl, Aggregate>& objective,
                                           std::optional<double> normaliser = std::nullopt) {
  return policy_loss(PolicyLossInputs{.logprobs = logprobs, .old_logprobs = old_logprobs, .ref_logprobs = ref_logprobs,
                                      .advantages = advantages, .mask = mask},
                     objective, normaliser);
}

}  // namespace kaizen::policy_gradient
