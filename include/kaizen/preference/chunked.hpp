// kaizen/preference/chunked.hpp - evaluate a preference loss over a large batch in chunks of pairs.
//
// Every paired loss here is a mean of per-pair terms, L = (1/N) Σ_i ℓ_i, so the batch can be cut into
// chunks [b, e): compute the chunk's log-probs, its per-pair losses, and backpropagate Σ_{i∈chunk} ℓ_i / N
// at once. Gradients accumulate in the parameters exactly as for the whole batch, while only one chunk's
// activations (and [2·chunk, T, V] logits) are alive at a time. The returned PreferenceLoss holds the
// full-batch loss value, per-pair losses, rewards and the paired metrics (and nll / log_odds_ratio
// when the loss reports them), all detached.
//
// Losses whose terms couple examples through batch statistics (KTO's z0, BCO's running shift) can be
// chunked by computing that statistic first and passing it in (kto_loss takes z0 as an argument).
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <functional>
#include <type_traits>
#include <vector>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/preference/preference_loss.hpp>

namespace kaizen::preference {

/// Options of chunked_loss.
struct ChunkedOptions {
  std::int64_t chunk_size = 16;  ///< pairs per chunk, >= 1
  bool backward = true;          ///< backpropagate each chunk's share of the loss as it is computed
};

/// Evaluates `loss(pairs_for(begin, end))` over [0, num_pairs) in chunks. `pairs_for(b, e)` returns the
/// PairLogProbs of pairs b..e-1 (e − b of them); `loss(pairs)` returns a PreferenceLoss whose per_example
/// has e − b entries (any loss in this folder, bound to its options with a lambda). With
/// options.backward, calls backward() on each chunk's Σ per_example / num_pairs, so gradients equal those
/// of the whole-batch loss. Throws kaizen::Error when num_pairs < 1, chunk_size < 1, or a chunk returns
/// the wrong number of per-pair losses.
template <class PairsFn, class LossFn>
  requires std::invocable<PairsFn&, std::int64_t, std::int64_t> &&
           std::invocable<LossFn&, const std::invoke_result_t<PairsFn&, std::int64_t, std::int64_t>&>
[[nodiscard]] PreferenceLoss chunked_loss(std::int64_t num_pairs, PairsFn&& pairs_for, LossFn&& loss,
                                          const ChunkedOptions& options = {}) {
  KAIZEN_CHECK(num_pairs >= 1, "chunked_loss: expected num_pairs >= 1, got ", num_pairs);
  KAIZEN_CHECK(options.chunk_size >= 1, "chunked_loss: expected chunk_size >= 1, got ", options.chunk_size);
  std::vector<torch::Tensor> per_example, chosen, rejected;
  torch::Tensor total, nll_sum, log_odds_sum;  // nll and log-odds metrics, weighted by chunk size
  for (std::int64_t begin = 0; begin < num_pairs; begin += options.chunk_size) {
    const std::int64_t end = std::min(num_pairs, begin + options.chunk_size);
    const PreferenceLoss part = std::invoke(loss, std::invoke(pairs_for, begin, end));
    KAIZEN_CHECK(part.per_example.defined() && part.per_example.numel() == end - begin, "chunked_loss: chunk [",
                 begin, ", ", end, ") returned ", part.per_example.defined() ? part.per_example.numel() : 0,
                 " per-pair losses, expected ", end - begin);
    const torch::Tensor share = part.per_example.sum() / static_cast<double>(num_pairs);
    if (options.backward && share.requires_grad()) share.backward();
    total = total.defined() ? total + share.detach() : share.detach();
    const auto weighted = [&](torch::Tensor& sum, const torch::Tensor& chunk_mean) {
      if (!chunk_mean.defined()) return;
      const torch::Tensor w = chunk_mean.detach() * static_cast<double>(end - begin);
      sum = sum.defined() ? sum + w : w;
    };
    weighted(nll_sum, part.metrics.nll);
    weighted(log_odds_sum, part.metrics.log_odds_ratio);
    per_example.push_back(part.per_example.detach());
    chosen.push_back(part.chosen_rewards);
    rejected.push_back(part.rejected_rewards);
  }
  PreferenceLoss out;
  out.loss = total;
  out.per_example = torch::cat(per_example);
  out.chosen_rewards = torch::cat(chosen);
  out.rejected_rewards = torch::cat(rejected);
  out.metrics = detail::paired_metrics(out.chosen_rewards, out.rejected_rewards);
  if (nll_sum.defined()) out.metrics.nll = nll_sum / static_cast<double>(num_pairs);
  if (log_odds_sum.defined()) out.metrics.log_odds_ratio = log_odds_sum / static_cast<double>(num_pairs);
  return out;
}

}  // namespace kaizen::preference
