// kaizen/search/deepening_sampler.hpp - iterative deepening sampling as a Sampler adapter: any
// kaizen::Sampler (the Llama KV-cache sampler in practice) generates with growing cumulative token
// budgets and a self-reflection trigger appended at each budget a sequence reaches unfinished.
//
// Budgets (search/iterative_deepening.hpp, deepening_budgets): b_k = ⌊b_0·γ^k⌋ capped at B, strictly
// increasing. Round k asks the inner sampler, in ONE call for every sequence still running, for at
// most b_k − g tokens (g = tokens the sequence has generated so far; trigger tokens are not counted)
// of prompt + completion-so-far. Then, per sequence:
//   - it stopped (FinishReason::stop) or was aborted: it is done and drops out of later rounds;
//   - it returned fewer tokens than asked without stopping (the inner sampler's context is full): it is
//     done with FinishReason::length (a later round could not fit either);
//   - it reached b_k = B: done with FinishReason::length;
//   - it reached b_k < B: the trigger tokens are appended to its completion, and it runs in round k + 1.
// So a sequence that ends before b_0 has no trigger, and generated tokens never exceed B; the completion
// holds the generated tokens plus |trigger| per trigger. Example: b_0 = 256, γ = 2, B = 2048 ⇒ rounds with
// budgets 256, 512, 1024, 2048 (inner calls of at most 256, 256, 512, 1024 new tokens), at most 3 triggers,
// placed after 256, 512 and 1024 generated tokens.
//
// Completion contract (core/sampler.hpp): one completion per prompt, in order; Completion::tokens are the
// generated tokens with the triggers in place; Completion::logprobs[t] is the inner sampler's log-prob for
// a generated token and 0 for a trigger token (the sampling policy put it there with probability 1: a
// trainer that recomputes log-probs must mask them out - trigger_positions() gives where they are);
// Completion::text is the concatenation of the inner texts with trigger_text at each trigger (empty when
// the inner sampler does not decode). B is DeepeningOptions::max_budget, or params.max_new_tokens when
// that is 0. Round k's inner seed is the k-th draw of a kaizen::Rng seeded with params.seed, so the same
// params.seed gives the same completions. Options of the inner sampler (temperature, top-k, stop tokens)
// pass through unchanged.
//
// Errors (kaizen::Error): γ ≤ 1 or non-finite, b_0 = 0, b_0 > B, an empty trigger, an inner sampler
// returning the wrong number of completions, more tokens than asked, or log-probs that do not match
// its tokens.
//
// Reference: Chen, Koenig, Dilkina, "Iterative Deepening Sampling for Large Language Models" (2025,
// arXiv 2502.05449).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/search/iterative_deepening.hpp>

namespace kaizen::search {

/// Options of DeepeningSampler.
struct DeepeningOptions {
  std::size_t initial_budget = 256;   ///< b_0 (> 0)
  double growth = 2.0;                ///< γ (> 1)
  std::size_t max_budget = 0;         ///< B (>= b_0); 0 = params.max_new_tokens of each call
  std::vector<TokenId> trigger;       ///< the trigger's token ids (non-empty), e.g. "\nWait, let me check.\n"
  std::string trigger_text;           ///< its text, spliced into Completion::text (optional)
};

/// What the last sample() call did, summed over its sequences.
struct DeepeningStats {
  std::size_t rounds = 0;            ///< inner sampler calls
  std::size_t generated_tokens = 0;  ///< tokens the inner sampler produced (triggers excluded)
  std::size_t triggers = 0;          ///< triggers appended
  std::vector<std::size_t> batch_sizes;  ///< sequences per inner call, in order (dropping as they stop)
};

/// Iterative deepening sampling over an inner Sampler (see the file comment); models kaizen::Sampler.
template <Sampler S>
class DeepeningSampler {
 public:
  /// Holds a reference to `inner` (it must outlive the adapter). Throws kaizen::Error on bad options
  /// (b_0 > B is checked here when max_budget is set, else at each call).
  DeepeningSampler(S& inner, DeepeningOptions options) : inner_(&inner), options_(std::move(options)) {
    KAIZEN_CHECK(!options_.trigger.empty(), "DeepeningSampler: expected a non-empty trigger (token ids), got none");
    if (options_.max_budget > 0) (void)budgets(options_.max_budget);
    else (void)budgets(options_.initial_budget);  // checks b_0 and γ
  }

  /// The cumulative budgets b_0 < b_1 < ... < B for a call whose B is `max_budget`.
  [[nodiscard]] std::vector<std::size_t> budgets(std::size_t max_budget) const {
    KAIZEN_CHECK(options_.initial_budget <= max_budget, "DeepeningSampler: expected initial_budget <= max_budget, got ",
                 options_.initial_budget, " > ", max_budget);
    return deepening_budgets(IterativeDeepeningOptions{.initial_budget = options_.initial_budget,
                                                       .growth = options_.growth,
                                                       .max_budget = max_budget,
                                                       .trigger = {}});
  }

  /// One completion per prompt, in order (see the file comment).
  [[nodiscard]] std::vector<Completion> sample(std::span<const Prompt> prompts, const SamplingParams& params) {
    validate(params);
    const std::size_t cap = options_.max_budget > 0 ? options_.max_budget : static_cast<std::size_t>(params.max_new_tokens);
    const std::vector<std::size_t> b = budgets(cap);
    stats_ = DeepeningStats{};
    std::vector<Completion> out(prompts.size());
    triggers_.assign(prompts.size(), {});
    std::vector<std::size_t> active(prompts.size());
    for (std::size_t i = 0; i < active.size(); ++i) active[i] = i;
    Rng seeds(params.seed);
    std::vector<Prompt> batch;
    for (std::size_t k = 0; k < b.size() && !active.empty(); ++k) {
      batch.clear();
      for (std::size_t i : active) {
        Prompt p = prompts[i];
        p.tokens.insert(p.tokens.end(), out[i].tokens.begin(), out[i].tokens.end());
        batch.push_back(std::move(p));
      }
      // Every active sequence has generated exactly b_{k-1} tokens (0 before round 0).
      const std::size_t allowed = b[k] - (k == 0 ? 0 : b[k - 1]);
      SamplingParams round = params;
      round.max_new_tokens = static_cast<std::int64_t>(allowed);
      round.seed = seeds();
      const std::vector<Completion> part = inner_->sample(std::span<const Prompt>(batch), round);
      KAIZEN_CHECK(part.size() == batch.size(), "DeepeningSampler: the inner sampler returned ", part.size(),
                   " completions for ", batch.size(), " prompts");
      ++stats_.rounds;
      stats_.batch_sizes.push_back(batch.size());
      std::vector<std::size_t> next;
      for (std::size_t j = 0; j < part.size(); ++j) {
        const std::size_t i = active[j];
        const Completion& c = part[j];
        KAIZEN_CHECK(c.tokens.size() <= allowed, "DeepeningSampler: the inner sampler returned ", c.tokens.size(),
                     " tokens for a budget of ", allowed);
        KAIZEN_CHECK(c.logprobs.size() == c.tokens.size(), "DeepeningSampler: the inner sampler returned ",
                     c.logprobs.size(), " log-probs for ", c.tokens.size(), " tokens");
        Completion& o = out[i];
        o.tokens.insert(o.tokens.end(), c.tokens.begin(), c.tokens.end());
        o.logprobs.insert(o.logprobs.end(), c.logprobs.begin(), c.logprobs.end());
        o.text += c.text;
        o.finish = c.finish;
        stats_.generated_tokens += c.tokens.size();
        if (c.finish != FinishReason::length) continue;   // stopped or aborted: done
        if (c.tokens.size() < allowed) continue;          // the inner sampler could go no further
        if (k + 1 == b.size()) continue;                  // B reached
        triggers_[i].push_back(o.tokens.size());
        o.tokens.insert(o.tokens.end(), options_.trigger.begin(), options_.trigger.end());
        o.logprobs.insert(o.logprobs.end(), options_.trigger.size(), 0.0F);
        o.text += options_.trigger_text;
        ++stats_.triggers;
        next.push_back(i);
      }
      active = std::move(next);
    }
    return out;
  }

  /// For each completion of the last call, the token offsets where each trigger starts.
  [[nodiscard]] const std::vector<std::vector<std::size_t>>& trigger_positions() const noexcept { return triggers_; }
  /// What the last call did.
  [[nodiscard]] const DeepeningStats& stats() const noexcept { return stats_; }
  [[nodiscard]] const DeepeningOptions& options() const noexcept { return options_; }

 private:
  S* inner_;
  DeepeningOptions options_;
  std::vector<std::vector<std::size_t>> triggers_;
  DeepeningStats stats_;
};

}  // namespace kaizen::search
