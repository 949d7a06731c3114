// kaizen/preference/preference_loss.hpp - what every preference loss takes and returns.
//
// Input: PairLogProbs, the sequence log-probs of N (chosen y_w, rejected y_l) pairs under the policy
// (differentiable) and, for reference-based losses, under the reference model (always detached).
// Output: PreferenceLoss, the scalar loss (= mean of the per-example losses, so a chunked evaluation
// that sums per-example losses and divides by the global count reproduces it exactly), the per-example
// losses, the implicit rewards and their summary metrics:
//   margin   = mean(r_w − r_l),  accuracy = mean(1[r_w > r_l]),
//   chosen   = mean(r_w),        rejected = mean(r_l),
// where r is each loss's implicit reward (β·log π_θ/π_ref for DPO, β·mean log π_θ for SimPO, ...).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/preference_loss_types.hpp>

namespace kaizen::preference {

namespace detail {

inline void check_beta(const char* fn, double beta) {
  KAIZEN_CHECK(beta > 0.0 && std::isfinite(beta), fn, ": expected beta > 0 and finite, got ", beta);
}

inline c10::IntArrayRef sizes_or_empty(const torch::Tensor& t) { return t.defined() ? t.sizes() : c10::IntArrayRef{}; }

/// Checks that `t` is a defined, floating [n] tensor on `device` (no device synchronisation).
inline void check_vector_shape(const char* fn, const char* name, const torch::Tensor& t, std::int64_t n,
                               const torch::Device& device) {
  KAIZEN_CHECK(t.defined(), fn, ": expected ", name, " log-probs of shape [", n, "], got an undefined tensor");
  KAIZEN_CHECK(t.dim() == 1 && t.size(0) == n, fn, ": expected ", name, " of shape [", n, "] (one per example), got ",
               t.sizes());
  KAIZEN_CHECK(t.is_floating_point(), fn, ": expected floating-point ", name, ", got ", t.scalar_type());
  KAIZEN_CHECK(t.device() == device, fn, ": expected ", name, " on ", device, ", got ", t.device());
}

/// One named tensor whose values are checked: non-finite values, and values <= 0 where `positive`.
struct ValueCheck {
  const char* name;
  const torch::Tensor* tensor;
  bool positive = false;
};

/// Checks every tensor with one fused reduction and one device-to-host copy (a loss called every step
/// should not synchronise once per input); only when something is wrong are the tensors inspected one
/// by one to name the first offender.
inline void check_values(const char* fn, std::initializer_list<ValueCheck> checks) {
  std::vector<torch::Tensor> all, positive;
  for (const ValueCheck& c : checks) {
    all.push_back(c.tensor->detach());
    if (c.positive) positive.push_back(c.tensor->detach());
  }
  torch::Tensor ok = torch::isfinite(torch::cat(all)).all();
  if (!positive.empty()) ok = ok.logical_and(torch::cat(positive).gt(0).all());
  if (ok.item<bool>()) [[likely]]
    return;
  for (const ValueCheck& c : checks) {
    const torch::Tensor t = c.tensor->detach();
    const auto non_finite = torch::logical_not(torch::isfinite(t)).sum().item<std::int64_t>();
    KAIZEN_CHECK(non_finite == 0, fn, ": expected finite ", c.name, ", got ", non_finite, " non-finite value(s)");
    if (c.positive) {
      const auto non_positive = t.le(0).sum().item<std::int64_t>();
      KAIZEN_CHECK(non_positive == 0, fn, ": expected ", c.name, " > 0, got ", non_positive, " value(s) <= 0");
    }
  }
}

/// Checks that `t` is a defined, finite, floating [n] tensor on `device`.
inline void check_vector(const char* fn, const char* name, const torch::Tensor& t, std::int64_t n,
                         const torch::Device& device) {
  check_vector_shape(fn, name, t, n, device);
  check_values(fn, {{name, &t}});
}

/// Validates the policy log-probs (and reference / lengths when asked) of a pair batch; returns N.
inline std::int64_t check_pairs(const char* fn, const PairLogProbs& p, bool needs_reference, bool needs_lengths) {
  KAIZEN_CHECK(p.chosen.defined() && p.chosen.dim() == 1 && p.chosen.size(0) > 0, fn,
               ": expected chosen log-probs of shape [N] with N > 0, got ", sizes_or_empty(p.chosen));
  const std::int64_t n = p.chosen.size(0);
  KAIZEN_CHECK(p.rejected.defined() && p.rejected.dim() == 1 && p.rejected.size(0) == n, fn,
               ": expected as many rejected as chosen log-probs (", n, "), got shape ", sizes_or_empty(p.rejected));
  const torch::Device device = p.chosen.device();
  check_vector_shape(fn, "chosen", p.chosen, n, device);
  check_vector_shape(fn, "rejected", p.rejected, n, device);
  if (needs_reference) {
    check_vector_shape(fn, "reference_chosen", p.reference_chosen, n, device);
    check_vector_shape(fn, "reference_rejected", p.reference_rejected, n, device);
  }
  if (needs_lengths) {
    check_vector_shape(fn, "chosen_lengths", p.chosen_lengths, n, device);
    check_vector_shape(fn, "rejected_lengths", p.rejected_lengths, n, device);
  }
  const ValueCheck chosen{"chosen", &p.chosen}, rejected{"rejected", &p.rejected};
  const ValueCheck ref_chosen{"reference_chosen", &p.reference_chosen};
  const ValueCheck ref_rejected{"reference_rejected", &p.reference_rejected};
  const ValueCheck len_chosen{"chosen_lengths", &p.chosen_lengths, true};
  const ValueCheck len_rejected{"rejected_lengths", &p.rejected_lengths, true};
  if (needs_reference && needs_lengths) {
    check_values(fn, {chosen, rejected, ref_chosen, ref_rejected, len_chosen, len_rejected});
  } else if (needs_reference) {
    check_values(fn, {chosen, rejected, ref_chosen, ref_rejected});
  } else if (needs_lengths) {
    check_values(fn, {chosen, rejected, len_chosen, len_rejected});
  } else {
    check_values(fn, {chosen, rejected});
  }
  return n;
}

/// Validates an unpaired batch; returns M.
inline std::int64_t check_unpaired(const char* fn, const UnpairedLogProbs& u) {
  KAIZEN_CHECK(u.policy.defined() && u.policy.dim() == 1 && u.policy.size(0) > 0, fn,
               ": expected policy log-probs of shape [M] with M > 0, got ", sizes_or_empty(u.policy));
  const std::int64_t m = u.policy.size(0);
  const torch::Device device = u.policy.device();
  check_vector_shape(fn, "policy", u.policy, m, device);
  check_vector_shape(fn, "reference", u.reference, m, device);
  KAIZEN_CHECK(u.desirable.defined() && u.desirable.dim() == 1 && u.desirable.size(0) == m, fn,
               ": expected one desirable flag per example (", m, "), got shape ", sizes_or_empty(u.desirable));
  KAIZEN_CHECK(u.desirable.scalar_type() == torch::kBool, fn, ": expected bool desirable flags, got ",
               u.desirable.scalar_type());
  check_values(fn, {{"policy", &u.policy}, {"reference", &u.reference}});
  return m;
}

/// Unpaired result: per-example losses [M], rewards [M] (detached), labels, the baseline they are
/// compared with; accuracy counts desirable rewards above and undesirable ones below the baseline.
[[nodiscard]] inline PreferenceLoss unpaired_result(const torch::Tensor& per_example, const torch::Tensor& rewards,
                                                    const torch::Tensor& desirable, const torch::Tensor& baseline) {
  PreferenceLoss out;
  out.per_example = per_example;
  out.loss = per_example.mean();
  const torch::Tensor r = rewards.detach();
  out.chosen_rewards = r.masked_select(desirable);
  out.rejected_rewards = r.masked_select(desirable.logical_not());
  // An empty class contributes a mean of 0 rather than NaN.
  const auto mean_or_zero = [](const torch::Tensor& t) {
    return t.sum() / std::max<std::int64_t>(t.numel(), 1);
  };
  out.metrics.chosen_reward = mean_or_zero(out.chosen_rewards);
  out.metrics.rejected_reward = mean_or_zero(out.rejected_rewards);
  out.metrics.margin = out.metrics.chosen_reward - out.metrics.rejected_reward;
  const torch::Tensor right_side = torch::where(desirable, r.gt(baseline), r.lt(baseline));
  out.metrics.accuracy = right_side.to(r.scalar_type()).mean();
  out.metrics.baseline = baseline.detach().to(r.scalar_type());
  return out;
}

/// Paired metrics from detached rewards [N].
[[nodiscard]] inline PreferenceMetrics paired_metrics(const torch::Tensor& chosen_rewards,
                                                      const torch::Tensor& rejected_rewards) {
  PreferenceMetrics m;
  m.chosen_reward = chosen_rewards.mean();
  m.rejected_reward = rejected_rewards.mean();
  m.margin = (chosen_rewards - rejected_rewards).mean();
  m.accuracy = chosen_rewards.gt(rejected_rewards).to(chosen_rewards.scalar_type()).mean();
  return m;
}

/// Assembles a paired PreferenceLoss from per-pair losses and (not yet detached) rewards.
[[nodiscard]] inline PreferenceLoss paired_result(const torch::Tensor& per_pair, const torch::Tensor& chosen_rewards,
                                                  const torch::Tensor& rejected_rewards) {
  PreferenceLoss out;
  out.per_example = per_pair;
  out.loss = per_pair.mean();
  out.chosen_rewards = chosen_rewards.detach();
  out.rejected_rewards = rejected_rewards.detach();
  out.metrics = paired_metrics(out.chosen_rewards, out.rejected_rewards);
  return out;
}

/// Length-normalised NLL of the chosen responses, per pair: −log π_θ(y_w|x) / |y_w|.
[[nodiscard]] inline torch::Tensor chosen_nll(const PairLogProbs& p) {
  return -p.chosen / p.chosen_lengths.to(p.chosen.scalar_type());
}

/// The per-pair NLL term for `options` from chosen log-prob sums `logps` [N] and token counts `lengths`
/// [N] (validated by the caller): per_sequence −logps/lengths; batch_tokens −logps·N/Σ lengths.
[[nodiscard]] inline torch::Tensor nll_term(const char* fn, const torch::Tensor& logps, const torch::Tensor& lengths,
                                            const NllOptions& options) {
  const torch::Tensor len = lengths.to(logps.scalar_type());
  if (options.normalisation == NllNormalisation::per_sequence) return -logps / len;
  KAIZEN_CHECK(options.nll_tokens >= 0.0 && std::isfinite(options.nll_tokens), fn,
               ": expected nll_tokens >= 0 (0: this batch's own count), got ", options.nll_tokens);
  const torch::Tensor tokens = options.nll_tokens > 0.0 ? torch::full({}, options.nll_tokens, len.options())
                                                        : len.sum();
  return -logps * static_cast<double>(logps.size(0)) / tokens;
}

}  // namespace detail

/// The same pairs with the reference log-probs set to zero: a reference-based loss then becomes its
/// reference-free form (h = log π_θ(y_w) − log π_θ(y_l)). Used by ReferenceFree (reference_strategy.hpp).
[[nodiscard]] inline PairLogProbs without_reference(PairLogProbs pairs) {
  KAIZEN_CHECK(pairs.chosen.defined() && pairs.rejected.defined(),
               "without_reference: expected defined chosen and rejected log-probs");
  pairs.reference_chosen = torch::zeros_like(pairs.chosen).detach();
  pairs.reference_rejected = torch::zeros_like(pairs.rejected).detach();
  return pairs;
}

}  // namespace kaizen::preference
