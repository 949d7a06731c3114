// kaizen/core/token_batch.hpp - a padded batch of prompt+completion sequences as tensors.
//
// Layout: row b holds prompt_b followed by completion_b, padded to T columns on the left or the
// right. Every per-token tensor is [B, T] and aligned with input_ids: column t describes token
// input_ids[b, t], which the model predicts from the logits at column t - 1. So
//   token log-probs [B, T] = 0 at column 0, and logprob(logits[:, t-1], input_ids[:, t]) at t >= 1.
#pragma once

#include <cstdint>

#include <torch/types.h>

#include <kaizen/core/error.hpp>

namespace kaizen {

/// Which side of each row the padding goes on.
enum class Padding : std::uint8_t {
  right,  ///< tokens start at column 0 (training layout)
  left,   ///< tokens end at column T-1 (generation layout: every row's next token is at column T)
};

/// A padded batch. Masks are bool; per-token floats are float32.
struct TokenBatch {
  torch::Tensor input_ids;          ///< [B, T] int64, pad_id where attention_mask is false
  torch::Tensor attention_mask;     ///< [B, T] bool, true on real (prompt or completion) tokens
  torch::Tensor prompt_mask;        ///< [B, T] bool, true on prompt tokens
  torch::Tensor completion_mask;    ///< [B, T] bool, true on completion tokens (what the loss trains)
  torch::Tensor position_ids;       ///< [B, T] int64, 0.. over real tokens, 0 on padding
  torch::Tensor old_logprobs;       ///< [B, T] float32 sampler log-probs on completion tokens, else 0;
                                    ///< undefined when the rollouts carried no log-probs
  torch::Tensor rewards;            ///< [B] float32
  torch::Tensor group_ids;          ///< [B] int64
  torch::Tensor prompt_lengths;     ///< [B] int64
  torch::Tensor completion_lengths; ///< [B] int64
  torch::Tensor truncated;          ///< [B] bool, completion hit max_new_tokens (FinishReason::length)
  Padding padding = Padding::right;

  [[nodiscard]] std::int64_t batch_size() const { return input_ids.size(0); }
  [[nodiscard]] std::int64_t length() const { return input_ids.size(1); }
  /// Moves every tensor to `device` (non-blocking where possible).
  [[nodiscard]] TokenBatch to(const torch::Device& device) const {
    TokenBatch out = *this;
    for (torch::Tensor* t : {&out.input_ids, &out.attention_mask, &out.prompt_mask, &out.completion_mask,
                             &out.position_ids, &out.old_logprobs, &out.rewards, &out.group_ids,
                             &out.prompt_lengths, &out.completion_lengths, &out.truncated}) {
      if (t->defined()) *t = t->to(device, /*non_blocking=*/true);
    }
    return out;
  }
};

}  // namespace kaizen
