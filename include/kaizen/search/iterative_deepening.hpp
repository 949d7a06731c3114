// kaizen/search/iterative_deepening.hpp - budgets that grow geometrically: iterative deepening
// sampling (token budgets with self-reflection triggers) and sample budgets that grow until a vote
// is confident or a verifier accepts.
//
// Iterative deepening sampling (ID-Sampling): cumulative token budgets b_k = ⌊b_0·γ^k⌋, capped at B.
// Generate until the model stops or the generated length reaches b_k; if it has not stopped and
// b_k < B, append the trigger text (e.g. "Wait, let me double-check.") and continue to b_{k+1}.
// Triggers land at increasing intervals: early chances to self-correct, none paid on easy problems.
// Example: b_0 = 256, γ = 2, B = 2048 ⇒ boundaries 256, 512, 1024, 2048, at most 3 triggers; a
// response that ends before 256 tokens has none; generated tokens ≤ B (plus trigger tokens).
//
// Growing sample budgets: draw n_0 samples, then grow the total to ⌈n_0·γ^k⌉ (capped at max_samples)
// until the majority vote's confidence reaches a threshold, or a user predicate (a verifier on the
// leading answer, a margin rule) accepts the vote.
//
// Reference: Chen, Koenig, Dilkina, "Iterative Deepening Sampling for Large Language Models" (2025,
// arXiv 2502.05449).
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <kaizen/consistency/early_stopping.hpp>
#include <kaizen/consistency/vote.hpp>
#include <kaizen/core/error.hpp>

namespace kaizen::search {

/// What a generator returns for one continuation.
struct Continuation {
  std::string text;         ///< the new text
  std::size_t tokens = 0;   ///< tokens generated (<= the budget it was given)
  bool finished = false;    ///< the model produced its stop token
};

/// Continues a text: `g(prefix, max_new_tokens) -> Continuation` (prefix = prompt + text so far).
template <class G>
concept Continuer = requires(G& g, std::string_view prefix, std::size_t max_new_tokens) {
  { g(prefix, max_new_tokens) } -> std::convertible_to<Continuation>;
};

/// ID-Sampling options (the paper's exact defaults are unverified; γ = 2 is the natural choice).
struct IterativeDeepeningOptions {
  std::size_t initial_budget = 256;   ///< b_0 (> 0)
  double growth = 2.0;                ///< γ (> 1)
  std::size_t max_budget = 2048;      ///< B (>= b_0)
  std::string trigger = "\nWait, let me double-check.\n";
};

/// One ID-Sampling response.
struct DeepenedSample {
  std::string text;                          ///< the response, triggers included
  std::size_t tokens = 0;                    ///< generated tokens (triggers excluded)
  std::vector<std::size_t> trigger_offsets;  ///< byte offsets in `text` where each trigger starts
  std::vector<std::size_t> boundaries;       ///< the cumulative budgets reached, in order
  bool finished = false;                     ///< the model stopped before max_budget
};

/// The cumulative budgets b_0 < b_1 < ... < B (each at least one more than the last).
/// Throws kaizen::Error on b_0 = 0, γ <= 1 or B < b_0.
[[nodiscard]] inline std::vector<std::size_t> deepening_budgets(const IterativeDeepeningOptions& o) {
  KAIZEN_CHECK(o.initial_budget > 0, "iterative_deepening: expected initial_budget > 0, got 0");
  KAIZEN_CHECK(o.growth > 1.0 && std::isfinite(o.growth), "iterative_deepening: expected growth > 1, got ", o.growth);
  KAIZEN_CHECK(o.max_budget >= o.initial_budget, "iterative_deepening: expected max_budget >= initial_budget, got ",
               o.max_budget, " < ", o.initial_budget);
  std::vector<std::size_t> out{o.initial_budget};
  double next = static_cast<double>(o.initial_budget);
  while (out.back() < o.max_budget) {
    next *= o.growth;
    const double capped = std::min(std::floor(next), static_cast<double>(o.max_budget));
    out.push_back(std::max(out.back() + 1, static_cast<std::size_t>(capped)));
  }
  return out;
}

/// Generates one response with iterative deepening (see the header comment). Throws kaizen::Error on
/// bad options or a generator that exceeds the budget it was given.
template <Continuer G>
[[nodiscard]] DeepenedSample iterative_deepening_sample(G& generate, std::string_view prompt,
                                                        const IterativeDeepeningOptions& options = {}) {
  const std::vector<std::size_t> budgets = deepening_budgets(options);
  DeepenedSample out;
  std::string context(prompt);
  for (std::size_t k = 0; k < budgets.size(); ++k) {
    const std::size_t allowed = budgets[k] - out.tokens;
    Continuation next = generate(std::string_view(context), allowed);
    KAIZEN_CHECK(next.tokens <= allowed, "iterative_deepening_sample: the generator returned ", next.tokens,
                 " tokens for a budget of ", allowed);
    out.tokens += next.tokens;
    out.text += next.text;
    context += next.text;
    out.boundaries.push_back(budgets[k]);
    if (next.finished) {
      out.finished = true;
      break;
    }
    if (out.tokens < budgets[k]) continue;  // stopped short without finishing: give it the rest
    if (k + 1 == budgets.size()) break;
    out.trigger_offsets.push_back(out.text.size());
    out.text += options.trigger;
    context += options.trigger;
  }
  return out;
}

/// Options of grow_until_confident.
struct GrowingBudgetOptions {
  std::size_t initial = 4;         ///< n_0 (> 0)
  double growth = 2.0;             ///< γ (> 1)
  std::size_t max_samples = 64;    ///< cap (>= n_0)
  double confidence = 0.8;         ///< default stop: vote confidence >= this, in (0, 1]
};

/// Draws answers with geometrically growing totals until `accept(vote)` holds or max_samples is
/// reached; returns the final vote (consistency::StoppedVote). `draw(n)` returns n answers (T or
/// std::optional<T>). Throws kaizen::Error on bad options or a source returning the wrong count.
template <consistency::AnswerSource D, class Accept>
[[nodiscard]] auto grow_until(D&& draw, const GrowingBudgetOptions& options, Accept&& accept)
    -> consistency::StoppedVote<consistency::detail::drawn_answer_t<D>> {
  KAIZEN_CHECK(options.initial > 0, "grow_until: expected initial > 0, got 0");
  KAIZEN_CHECK(options.growth > 1.0 && std::isfinite(options.growth), "grow_until: expected growth > 1, got ",
               options.growth);
  KAIZEN_CHECK(options.max_samples >= options.initial, "grow_until: expected max_samples >= initial, got ",
               options.max_samples, " < ", options.initial);
  using Value = consistency::detail::drawn_value_t<D>;
  std::vector<Value> all;
  consistency::StoppedVote<consistency::detail::drawn_answer_t<D>> out;
  double target = static_cast<double>(options.initial);
  while (true) {
    const std::size_t goal =
        std::max(all.size() + 1, std::min(options.max_samples, static_cast<std::size_t>(std::ceil(target))));
    consistency::detail::append_draw(draw, goal - all.size(), all, "grow_until");
    out.vote = consistency::majority_vote(all);
    if (out.vote && accept(*out.vote)) {
      out.stopped_early = all.size() < options.max_samples;
      break;
    }
    if (all.size() >= options.max_samples) break;
    target *= options.growth;
  }
  out.samples = all.size();
  return out;
}

/// grow_until with the default rule: stop once the vote's confidence reaches options.confidence.
template <consistency::AnswerSource D>
[[nodiscard]] auto grow_until_confident(D&& draw, const GrowingBudgetOptions& options = {}) {
  KAIZEN_CHECK(options.confidence > 0.0 && options.confidence <= 1.0,
               "grow_until_confident: expected confidence in (0, 1], got ", options.confidence);
  return grow_until(std::forward<D>(draw), options,
                    [&](const auto& vote) { return vote.confidence >= options.confidence; });
}

}  // namespace kaizen::search
