// kaizen/preference/sequence_logprobs.hpp - per-sequence log-probabilities from per-token ones, and
// the chosen/rejected split of a concatenated preference batch.
//
//   sum:  log π(y|x)        = Σ_t m_t · ℓ_t
//   mean: (1/|y|) log π(y|x) = Σ_t m_t · ℓ_t / Σ_t m_t          (length-normalised; SimPO, ORPO)
//
// ℓ [B, T] are token log-probs aligned with input_ids (core/token_batch.hpp), m [B, T] the completion
// mask. A concatenated batch holds the N chosen sequences in rows 0..N-1 and the N rejected ones in
// rows N..2N-1 (one forward pass over both halves, as TRL's `concatenated_forward` does).
#pragma once

#include <cstdint>
#include <utility>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// How token log-probs of one sequence are reduced to one number.
enum class SequenceReduction : std::uint8_t {
  sum,   ///< Σ_t ℓ_t: the sequence log-probability (DPO family, KTO, BCO, CPO)
  mean,  ///< Σ_t ℓ_t / |y|: the length-normalised log-probability (SimPO, ORPO)
};

/// Number of masked tokens per row: [B] in the dtype of `like` (float32 when undefined).
/// `mask` [B, T] is bool or 0/1 numbers.
[[nodiscard]] inline torch::Tensor token_counts(const torch::Tensor& mask, const torch::Tensor& like = {}) {
  KAIZEN_CHECK(mask.defined() && mask.dim() == 2, "token_counts: expected a mask of shape [B, T], got ",
               mask.defined() ? mask.sizes() : c10::IntArrayRef{});
  const auto dtype = like.defined() ? like.scalar_type() : torch::kFloat32;
  return mask.ne(0).sum(1).to(dtype);
}

namespace detail {

inline void check_token_inputs(const char* fn, const torch::Tensor& token_logprobs, const torch::Tensor& mask) {
  KAIZEN_CHECK(token_logprobs.defined() && token_logprobs.dim() == 2, fn,
               ": expected token log-probs of shape [B, T], got ",
               token_logprobs.defined() ? token_logprobs.sizes() : c10::IntArrayRef{});
  KAIZEN_CHECK(token_logprobs.is_floating_point(), fn, ": expected floating-point token log-probs, got ",
               token_logprobs.scalar_type());
  KAIZEN_CHECK(mask.defined() && mask.sizes() == token_logprobs.sizes(), fn, ": expected a mask of shape ",
               token_logprobs.sizes(), ", got ", mask.defined() ? mask.sizes() : c10::IntArrayRef{});
  KAIZEN_CHECK(mask.device() == token_logprobs.device(), fn, ": mask on ", mask.device(),
               " but token log-probs on ", token_logprobs.device());
}

/// Throws unless every row has a masked token and finite sums ([B] or [B, k]); one device-to-host copy
/// unless something is wrong.
inline void check_rows(const char* fn, const torch::Tensor& counts, const torch::Tensor& sums) {
  if (counts.numel() == 0) return;
  const torch::Tensor empty_rows = counts.eq(0);
  const torch::Tensor bad_rows = torch::isfinite(sums).logical_not();
  const torch::Tensor bad = sums.dim() == 2 ? bad_rows.any(1) : bad_rows;
  if (!torch::logical_or(empty_rows, bad).any().item<bool>()) [[likely]]
    return;
  const auto first_row = [](const torch::Tensor& rows) { return rows.nonzero()[0][0].item<std::int64_t>(); };
  KAIZEN_CHECK(!empty_rows.any().item<bool>(), fn, ": expected at least one masked token per row, row ",
               first_row(empty_rows), " has none");
  fail(fn, ": expected finite log-probs under the mask, row ", first_row(bad), " has a non-finite value");
}

/// Σ_t lp[b, t] over the mask. Fast path: a multiply by the 0/1 mask (vectorised, as a hand-written
/// LibTorch loss would do). A non-finite value in the padding turns its row into NaN there (inf · 0), so
/// such rows, found by the caller's [B] check, are recomputed with masked_fill, which ignores padding.
[[nodiscard]] inline torch::Tensor masked_row_sums(const torch::Tensor& lp, const torch::Tensor& keep,
                                                   const torch::Tensor& weights) {
  torch::Tensor sums = (lp * weights).sum(1);
  if (torch::isfinite(sums.detach()).all().item<bool>()) [[likely]]
    return sums;
  return lp.masked_fill(keep.logical_not(), 0.0).sum(1);
}

/// Masked row sums and token counts [B] (counts in at least float32), checked on the [B] sums: a non-finite
/// log-prob under the mask makes its row sum non-finite, so no second pass over [B, T] is needed.
struct MaskedSums {
  torch::Tensor sums, counts;
};
[[nodiscard]] inline MaskedSums masked_sums(const char* fn, const torch::Tensor& token_logprobs, const torch::Tensor& mask) {
  check_token_inputs(fn, token_logprobs, mask);
  const torch::Tensor keep = mask.scalar_type() == torch::kBool ? mask : mask.ne(0);
  const torch::Tensor weights = keep.to(token_logprobs.scalar_type());
  MaskedSums out;
  out.counts = weights.sum(1, false, torch::promote_types(token_logprobs.scalar_type(), torch::kFloat32));
  out.sums = masked_row_sums(token_logprobs, keep, weights);
  check_rows(fn, out.counts, out.sums.detach());
  return out;
}

}  // namespace detail

/// Reduces token log-probs [B, T] over the masked tokens of each row to [B] (see the header formula).
/// Differentiable in `token_logprobs`; values outside the mask are ignored (they may be ±inf or NaN).
/// Throws kaizen::Error on shape or device mismatch, a row with no masked token, or a non-finite
/// log-prob under the mask.
[[nodiscard]] inline torch::Tensor sequence_logprobs(const torch::Tensor& token_logprobs, const torch::Tensor& mask,
                                                     SequenceReduction reduction = SequenceReduction::sum) {
  const auto [sums, counts] = detail::masked_sums("sequence_logprobs", token_logprobs, mask);
  return reduction == SequenceReduction::sum ? sums : sums / counts;
}

/// Splits a concatenated batch (chosen rows first, then as many rejected rows) along dim 0.
/// Returns {chosen, rejected}, views of `concatenated`. Throws kaizen::Error unless dim 0 is even and > 0.
[[nodiscard]] inline std::pair<torch::Tensor, torch::Tensor> split_chosen_rejected(const torch::Tensor& concatenated) {
  KAIZEN_CHECK(concatenated.defined() && concatenated.dim() >= 1, "split_chosen_rejected: expected a tensor with a batch dimension, got ",
               concatenated.defined() ? concatenated.sizes() : c10::IntArrayRef{});
  const std::int64_t rows = concatenated.size(0);
  KAIZEN_CHECK(rows > 0 && rows % 2 == 0,
               "split_chosen_rejected: expected an even, non-zero number of rows (chosen then rejected), got ", rows);
  return {concatenated.narrow(0, 0, rows / 2), concatenated.narrow(0, rows / 2, rows / 2)};
}

/// Builds the PairLogProbs of a concatenated batch: sequence log-prob sums of the policy (and of the
/// reference when `reference_token_logprobs` is defined; it is detached) and completion lengths.
/// Shapes: token log-probs and mask [2N, T]. Throws like sequence_logprobs and split_chosen_rejected,
/// and when the reference's shape differs from the policy's.
[[nodiscard]] inline PairLogProbs pair_logprobs(const torch::Tensor& policy_token_logprobs, const torch::Tensor& mask,
                                                const torch::Tensor& reference_token_logprobs = {}) {
  const char* fn = "pair_logprobs";
  detail::check_token_inputs(fn, policy_token_logprobs, mask);
  const bool with_reference = reference_token_logprobs.defined();
  KAIZEN_CHECK(!with_reference || reference_token_logprobs.sizes() == policy_token_logprobs.sizes(), fn,
               ": expected reference token log-probs of shape ", policy_token_logprobs.sizes(), ", got ",
               reference_token_logprobs.sizes());
  // One mask pass and one check shared by the policy and the reference.
  const torch::Tensor keep = mask.scalar_type() == torch::kBool ? mask : mask.ne(0);
  const torch::Tensor weights = keep.to(policy_token_logprobs.scalar_type());
  // Counts in at least float32: bf16 / fp16 stop representing integers exactly above 256 / 2048.
  const torch::Tensor counts =
      weights.sum(1, false, torch::promote_types(policy_token_logprobs.scalar_type(), torch::kFloat32));
  const torch::Tensor policy = detail::masked_row_sums(policy_token_logprobs, keep, weights);
  const torch::Tensor reference =
      with_reference ? detail::masked_row_sums(reference_token_logprobs.detach(), keep,
                                               weights.to(reference_token_logprobs.scalar_type()))
                     : torch::Tensor();
  detail::check_rows(fn, counts, with_reference ? torch::stack({policy.detach(), reference.to(policy.scalar_type())}, 1)
                                                : policy.detach());
  PairLogProbs out;
  std::tie(out.chosen, out.rejected) = split_chosen_rejected(policy);
  std::tie(out.chosen_lengths, out.rejected_lengths) = split_chosen_rejected(counts);
  if (with_reference) std::tie(out.reference_chosen, out.reference_rejected) = split_chosen_rejected(reference);
  return out;
}

}  // namespace kaizen::preference
