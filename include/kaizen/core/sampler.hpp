// kaizen/core/sampler.hpp - the Sampler concept: what generates completions for prompts.
#pragma once

#include <concepts>
#include <span>
#include <vector>

#include <kaizen/core/types.hpp>

namespace kaizen {

/// Generates one completion per prompt (repeat a prompt G times for a group of G).
///
/// Required expression (s: S&, prompts: std::span<const Prompt>, params: const SamplingParams&):
/// @code
///   s.sample(prompts, params) -> std::vector<Completion>   // completions[i] answers prompts[i]
/// @endcode
/// Contract the compiler cannot check: one completion per prompt, in order; each completion's
/// `logprobs` are computed under the same temperature / top-k / top-p / min-p transform as `params`
/// (the trainer recomputes them under that transform and the two must agree); the same params.seed
/// gives the same completions.
template <class S>
concept Sampler = requires(S& s, std::span<const Prompt> prompts, const SamplingParams& params) {
  { s.sample(prompts, params) } -> std::convertible_to<std::vector<Completion>>;
};

}  // namespace kaizen
