// kaizen/policy_gradient/dapo.hpp - the data-side pieces of DAPO (Yu et al. 2025, arXiv 2503.14476).
//
// Dynamic sampling: a group whose rewards are all equal has zero advantage and contributes no
//   gradient, so DAPO drops it and samples more prompts until the batch holds the wanted number of
//   informative groups. dynamic_sampling_filter returns the rows to keep and how many groups to refill.
// Soft overlong punishment (L_max the generation limit, L_c the cache/soft zone, |y| the length):
//   R_len(y) = 0                              if |y| ≤ L_max − L_c
//            = ((L_max − L_c) − |y|) / L_c    if L_max − L_c < |y| ≤ L_max
//            = −1                             if |y| > L_max
//   added to the task reward. DAPO: L_max = 20480, L_c = 4096.
// Truncated-completion masking ("overlong filtering"): completions cut off at the length limit carry
//   no verdict on their answer; untruncated_rows returns the rows to keep so they leave the loss.
// Both filters return row indices (index_select every [B] / [B, T] tensor with them) rather than
// zeroing mask rows: policy_loss rejects rows with no valid token, and a dropped row must also leave
// the normaliser of the seq-mean aggregations.
#pragma once

#include <cstdint>
#include <string_view>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/detail/checks.hpp>

namespace kaizen::policy_gradient {

/// What dynamic_sampling_filter kept.
struct DynamicSamplingResult {
  torch::Tensor keep;              ///< [K] int64 indices of the rows in informative groups, ascending
  std::int64_t kept_groups = 0;    ///< groups whose rewards are not all equal
  std::int64_t dropped_groups = 0; ///< groups with identical rewards (zero advantage)
  std::int64_t groups_to_refill = 0;  ///< max(0, target_groups − kept_groups): prompts to sample again
};

/// Drops groups whose rewards are all equal. `rewards` [B] float, `group_ids` [B] integer;
/// `target_groups` is the number of informative groups the batch should hold (default: the number
/// of groups given). Throws on mismatched inputs, non-finite rewards, or target_groups < -1.
[[nodiscard]] inline DynamicSamplingResult dynamic_sampling_filter(const torch::Tensor& rewards,
                                                                   const torch::Tensor& group_ids,
                                                                   std::int64_t target_groups = -1) {
  constexpr std::string_view fn = "dynamic_sampling_filter";
  KAIZEN_CHECK(target_groups >= -1, fn, ": expected target_groups >= 0 (or -1 for all groups given), got ",
               target_groups);
  const auto g = detail::make_groups(fn, rewards, group_ids);
  const auto constant = detail::constant_group_rows(g, rewards);
  const auto constant_groups =
      torch::zeros({g.size}, torch::TensorOptions().dtype(torch::kInt64).device(rewards.device()))
          .index_put_({g.index}, constant.to(torch::kInt64));
  DynamicSamplingResult out;
  out.keep = constant.logical_not().nonzero().reshape({-1});
  out.dropped_groups = constant_groups.sum().item<std::int64_t>();
  out.kept_groups = g.size - out.dropped_groups;
  const std::int64_t target = target_groups < 0 ? g.size : target_groups;
  out.groups_to_refill = std::max<std::int64_t>(0, target - out.kept_groups);
  return out;
}

/// DAPO soft overlong punishment for one length (see the header comment). Throws unless
/// 0 < cache_length <= max_length and length >= 0.
[[nodiscard]] inline double overlong_penalty(std::int64_t length, std::int64_t max_length, std::int64_t cache_length) {
  constexpr std::string_view fn = "overlong_penalty";
  KAIZEN_CHECK(cache_length > 0 && cache_length <= max_length, fn,
               ": expected 0 < cache_length <= max_length, got cache_length = ", cache_length,
               ", max_length = ", max_length);
  KAIZEN_CHECK(length >= 0, fn, ": expected a length >= 0, got ", length);
  const std::int64_t soft = max_length - cache_length;
  if (length <= soft) return 0.0;
  if (length <= max_length) return static_cast<double>(soft - length) / static_cast<double>(cache_length);
  return -1.0;
}

/// The penalty for every length in `lengths` [B] (integer), as float32 [B] on the same device.
[[nodiscard]] inline torch::Tensor overlong_penalty(const torch::Tensor& lengths, std::int64_t max_length,
                                                    std::int64_t cache_length) {
  constexpr std::string_view fn = "overlong_penalty";
  KAIZEN_CHECK(lengths.defined() && lengths.dim() == 1 && !torch::isFloatingType(lengths.scalar_type()) &&
                   lengths.scalar_type() != torch::kBool,
               fn, ": expected 1-D integer `lengths`, got ",
               lengths.defined() ? lengths.toString() : std::string("an undefined tensor"));
  (void)overlong_penalty(0, max_length, cache_length);  // validates the limits
  KAIZEN_CHECK(lengths.numel() == 0 || lengths.min().item<std::int64_t>() >= 0, fn,
               ": expected lengths >= 0, got ", lengths.min().item<std::int64_t>());
  const auto l = lengths.to(torch::kFloat64);
  const double soft = static_cast<double>(max_length - cache_length);
  const auto ramp = (soft - l) / static_cast<double>(cache_length);
  const auto out = torch::where(l <= soft, torch::zeros_like(l),
                                torch::where(l <= static_cast<double>(max_length), ramp, -torch::ones_like(l)));
  return out.to(torch::kFloat32);
}

/// Rows whose completion was not truncated at the length limit: indices [K] int64 of
/// `truncated` [B] (bool, e.g. TokenBatch::truncated) that are false.
[[nodiscard]] inline torch::Tensor untruncated_rows(const torch::Tensor& truncated) {
  KAIZEN_CHECK(truncated.defined() && truncated.dim() == 1 && truncated.scalar_type() == torch::kBool,
               "untruncated_rows: expected a 1-D bool `truncated` [B], got ",
               truncated.defined() ? truncated.toString() + " of shape " + c10::str(truncated.sizes())
                                   : std::string("an undefined tensor"));
  return truncated.logical_not().nonzero().reshape({-1});
}

}  // namespace kaizen::policy_gradient
