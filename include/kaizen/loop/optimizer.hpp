// kaizen/loop/optimizer.hpp - the optimiser stage every loop shares: AdamW over the policy's parameters,
// a linear learning-rate warm-up, and one update = zero_grad, backward, global-norm clip, step.
//
//   warmup lr at step s (1-based):  lr · min(1, s / warmup_steps)   (warmup_steps = 0: lr)
//   clip: g ← g · min(1, c / ||g||_2) over all parameters together (c <= 0: no clip)
//
// References: Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization" (AdamW, arXiv 1711.05101).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/error.hpp>

namespace kaizen::loop {

struct AdamWConfig {
  double learning_rate = 1e-4;  ///< > 0
  double weight_decay = 0.0;    ///< >= 0, decoupled
  double beta1 = 0.9;
  double beta2 = 0.99;
};

/// AdamW over `params` (which it keeps referencing). Throws kaizen::Error on lr <= 0 or weight_decay < 0.
[[nodiscard]] inline torch::optim::AdamW make_adamw(const std::vector<torch::Tensor>& params, const AdamWConfig& c) {
  KAIZEN_CHECK(c.learning_rate > 0.0, "make_adamw: learning_rate must be > 0, got ", c.learning_rate);
  KAIZEN_CHECK(c.weight_decay >= 0.0, "make_adamw: weight_decay must be >= 0, got ", c.weight_decay);
  return torch::optim::AdamW(params, torch::optim::AdamWOptions(c.learning_rate)
                                         .weight_decay(c.weight_decay)
                                         .betas({c.beta1, c.beta2}));
}

/// The learning rate of 1-based step `step` under a linear warm-up over `warmup_steps` steps.
[[nodiscard]] inline double warmup_learning_rate(double learning_rate, std::int64_t warmup_steps, std::int64_t step) {
  if (warmup_steps <= 0) return learning_rate;
  return learning_rate * std::min(1.0, static_cast<double>(step) / static_cast<double>(warmup_steps));
}

/// Sets the learning rate of every parameter group of an AdamW optimiser.
inline void set_learning_rate(torch::optim::AdamW& optimizer, double learning_rate) {
  for (auto& group : optimizer.param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(learning_rate);
}

/// One update: zero the gradients, backpropagate `loss`, clip the global gradient norm of `params` to
/// `max_grad_norm` (<= 0: no clip), step. Returns the gradient norm before clipping (0 when not clipped).
inline double apply_update(torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& params,
                           const torch::Tensor& loss, double max_grad_norm) {
  optimizer.zero_grad();
  loss.backward();
  double grad_norm = 0.0;
  if (max_grad_norm > 0.0) grad_norm = torch::nn::utils::clip_grad_norm_(params, max_grad_norm);
  optimizer.step();
  return grad_norm;
}

}  // namespace kaizen::loop
