// kaizen/loop/sft.hpp - supervised fine-tuning (the warm start before RL): maximise the log-likelihood
// of reference completions given their prompts,
//   L(θ) = − Σ_b Σ_t m_bt log π_θ(y_bt | x_b, y_b,<t) / Σ_b Σ_t m_bt     (token mean over the batch),
// with AdamW and global gradient-norm clipping (the sft_loss and apply_update stages of loop/update.hpp and
// loop/optimizer.hpp). With `config.communicator` set the run is data-parallel: every rank draws the same
// examples, back-propagates its block of each batch, and the gradients are summed over the ranks
// (distributed::sft_update), so N ranks train the one-process model up to floating-point summation order.
// A short warm start gives the policy a non-zero success
// rate, which group-relative RL needs: a group whose samples all fail has zero advantage.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/distributed/communicator.hpp>
#include <kaizen/distributed/data_parallel.hpp>
#include <kaizen/distributed/data_parallel_stages.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/update.hpp>
#include <kaizen/torch/policy_logprobs.hpp>

namespace kaizen::loop {

struct SftConfig {
  std::int64_t steps = 100;          ///< optimiser steps, >= 0
  std::int64_t batch_size = 32;      ///< examples per step, > 0
  double learning_rate = 1e-3;       ///< > 0
  double weight_decay = 0.0;         ///< AdamW decoupled weight decay, >= 0
  double max_grad_norm = 1.0;        ///< global norm clip; <= 0 = off
  std::uint64_t seed = 0;            ///< seeds the example draws
  CollateOptions collate{};          ///< pad id, vocabulary, context, device
  /// Early stop: called with the number of steps done after every `stop_check_every` steps; returning
  /// true ends the run there (e.g. "the policy now solves 20 % of a probe set": enough reward for RL).
  std::function<bool(std::int64_t steps_done)> stop_when = {};
  std::int64_t stop_check_every = 100;  ///< > 0 when stop_when is set
  /// Data parallel: the collectives of this rank's job (same config and initial weights on every rank; stop_when
  /// must answer the same on every rank). Null: one process, unchanged.
  distributed::Communicator* communicator = nullptr;
};

/// Runs `config.steps` steps of SFT on `policy`. `examples(rng)` returns one Rollout whose `prompt`
/// and `completion.tokens` are the input and the target (rewards and log-probs are ignored).
/// Reports {"event":"sft","step","loss","tokens"} to `on_metrics` every step. Stops early when
/// `config.stop_when` says so. Returns the last loss.
/// Throws kaizen::Error on invalid config values and for everything collate rejects.
/// A TORCH_MODULE holder is not a Policy: pass the module it holds (`*net`).
template <TorchModuleHolder H, class... Rest>
double supervised_finetune(H&, Rest&&...) {
  static_assert(kaizen::detail::dependent_false<H>,
                "kaizen::loop::supervised_finetune: a TORCH_MODULE holder is not a kaizen::Policy; pass the module "
                "it holds: supervised_finetune(*net, examples, config)");
  return 0.0;
}

template <Policy P, class Examples>
  requires requires(Examples& e, Rng& rng) { { e(rng) } -> std::convertible_to<Rollout>; }
double supervised_finetune(P& policy, Examples& examples, const SftConfig& config, const MetricsCallback& on_metrics = {}) {
  KAIZEN_CHECK(config.steps >= 0, "supervised_finetune: steps must be >= 0, got ", config.steps);
  KAIZEN_CHECK(config.batch_size > 0, "supervised_finetune: batch_size must be > 0, got ", config.batch_size);
  KAIZEN_CHECK(config.learning_rate > 0.0, "supervised_finetune: learning_rate must be > 0, got ", config.learning_rate);
  KAIZEN_CHECK(config.weight_decay >= 0.0, "supervised_finetune: weight_decay must be >= 0, got ", config.weight_decay);
  KAIZEN_CHECK(!config.stop_when || config.stop_check_every > 0,
               "supervised_finetune: stop_check_every must be > 0 when stop_when is set, got ", config.stop_check_every);
  std::vector<torch::Tensor> params = policy.parameters();
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(config.learning_rate).weight_decay(config.weight_decay));
  Rng rng(config.seed);
  distributed::Communicator* const comm = config.communicator;
  std::unique_ptr<distributed::GradientBuckets> buckets;
  if (comm != nullptr) {
    distributed::check_same_parameters(*comm, params, "supervised_finetune");  // same start on every rank
    buckets = std::make_unique<distributed::GradientBuckets>(*comm, params);
  }
  double last = 0.0;
  for (std::int64_t step = 0; step < config.steps; ++step) {
    std::vector<Rollout> batch;
    batch.reserve(static_cast<std::size_t>(config.batch_size));
    for (std::int64_t i = 0; i < config.batch_size; ++i) {
      Rollout r = examples(rng);
      r.completion.logprobs.clear();
      r.reward = 0.0;
      r.group = i;
      batch.push_back(std::move(r));
    }
    const TokenBatch tb = collate(std::span<const Rollout>(batch), config.collate);
    const SftStepResult s =
        distributed::sft_update(comm, policy, optimizer, params, tb, config.max_grad_norm, buckets.get());
    last = s.loss;
    if (on_metrics) on_metrics({{"event", "sft"}, {"step", step + 1}, {"loss", last}, {"tokens", s.tokens}});
    if (config.stop_when && (step + 1) % config.stop_check_every == 0 && config.stop_when(step + 1)) break;
  }
  return last;
}

}  // namespace kaizen::loop
