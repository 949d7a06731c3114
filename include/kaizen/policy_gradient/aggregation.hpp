// kaizen/policy_gradient/aggregation.hpp - per-token loss [B, T] → scalar, correct under accumulation.
//
// With mask m (bool or float weights), row length n_i = Σ_t m_it and a normaliser N:
//   TokenMean            L = Σ_i Σ_t m_it ℓ_it / N           N = Σ_i n_i   (valid tokens)
//   SeqMeanTokenMean     L = Σ_i (Σ_t m_it ℓ_it / n_i) / N   N = rows
//   SeqMeanTokenSum      L = Σ_i Σ_t m_it ℓ_it / N           N = rows
//   SeqMeanTokenSumNorm  L = Σ_i Σ_t m_it ℓ_it / (N · L_c)   N = rows, L_c = the option's constant
// N defaults to this batch's value. Under gradient accumulation, data parallelism or packing, pass the
// global N: loss_normaliser(aggregation, mask) summed over every micro-batch / rank of the step. Then
// Σ_micro-batches L equals the full-batch L, and so do the gradients (landscape.md §3.1: verl #5625).
#pragma once

#include <cmath>
#include <optional>
#include <string_view>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/detail/checks.hpp>
#include <kaizen/policy_gradient/options.hpp>

namespace kaizen::policy_gradient {

/// This micro-batch's share of the normaliser N for `aggregation` (valid tokens, or rows). Sum it
/// over all micro-batches / ranks of one optimiser step and pass the total to aggregate/policy_loss.
template <class Aggregate>
[[nodiscard]] double loss_normaliser(const Aggregate& aggregation, const torch::Tensor& mask) {
  (void)aggregation;
  static_assert(detail::is_aggregation_option_v<Aggregate>,
                "loss_normaliser: expected an aggregation option (TokenMean, SeqMeanTokenMean, ...)");
  KAIZEN_CHECK(mask.defined() && mask.dim() == 2, "loss_normaliser: expected a [B, T] mask, got ",
               mask.defined() ? mask.sizes() : torch::IntArrayRef{});
  if constexpr (Aggregate::mode == AggregationMode::token_mean) {
    return mask.to(torch::kFloat64).sum().item<double>();
  } else {
    return static_cast<double>(mask.size(0));
  }
}

namespace detail {
/// aggregate() without the input checks: `m` is `loss`'s dtype, every row non-empty, n > 0, and
/// `loss` is finite where m = 0 (policy_loss guarantees it by zeroing padded inputs).
template <class Aggregate>
[[nodiscard]] torch::Tensor aggregate_unchecked(const torch::Tensor& loss, const torch::Tensor& m,
                                                const Aggregate& aggregation, double n) {
  (void)aggregation;
  const auto masked = loss * m;
  if constexpr (Aggregate::mode == AggregationMode::seq_mean_token_mean) {
    return (masked.sum(1) / m.sum(1)).sum() / n;
  } else if constexpr (Aggregate::mode == AggregationMode::seq_mean_token_sum_norm) {
    return masked.sum() / (n * aggregation.constant);
  } else {
    return masked.sum() / n;
  }
}

/// The normaliser to use: the caller's, or this batch's; validated.
template <class Aggregate>
[[nodiscard]] double resolve_normaliser(std::string_view fn, const Aggregate& aggregation, const torch::Tensor& m,
                                        std::optional<double> normaliser) {
  const double n = normaliser.has_value() ? *normaliser : loss_normaliser(aggregation, m);
  KAIZEN_CHECK(n > 0 && std::isfinite(n), fn, ": expected a positive finite normaliser, got ", n);
  if constexpr (Aggregate::mode == AggregationMode::seq_mean_token_sum_norm) {
    KAIZEN_CHECK(aggregation.constant > 0, fn, ": expected SeqMeanTokenSumNorm::constant > 0, got ",
                 aggregation.constant);
  }
  return n;
}
}  // namespace detail

/// Aggregates a per-token loss `loss` [B, T] under `mask` [B, T] (bool or float, every row with a
/// valid token) into a scalar, dividing by `normaliser` (> 0) or by this batch's own value.
/// Differentiable in `loss`. Throws on shape/device mismatch, an empty row, or normaliser <= 0.
template <class Aggregate>
[[nodiscard]] torch::Tensor aggregate(const torch::Tensor& loss, const torch::Tensor& mask, const Aggregate& aggregation,
                                      std::optional<double> normaliser = std::nullopt) {
  static_assert(detail::is_aggregation_option_v<Aggregate>,
                "aggregate: expected an aggregation option (TokenMean, SeqMeanTokenMean, ...)");
  constexpr std::string_view fn = "aggregate";
  detail::check_real(fn, "loss", loss);
  KAIZEN_CHECK(loss.dim() == 2, fn, ": expected a [B, T] `loss`, got shape ", loss.sizes());
  const auto m = detail::mask_as(fn, mask, loss);
  detail::check_rows_nonempty(fn, m);
  return detail::aggregate_unchecked(torch::where(m != 0, loss, torch::zeros_like(loss)), m, aggregation,
                                     detail::resolve_normaliser(fn, aggregation, m, normaliser));
}

}  // namespace kaizen::policy_gradient
