// kaizen/loop/rejection_sampling.hpp - the "filter" stage of rejection-sampling fine-tuning (STaR, ReST-EM,
// B-STaR): from the G scored samples of each prompt, keep those whose score clears a threshold, best
// score first, at most `cap` per prompt, optionally without duplicates.
//
//   kept(p) = the first min(cap, |S_p|) of S_p = { y_pi : r_pi >= threshold } (or > threshold when
//             `strict`), ordered by score descending, ties by sample index; with `distinct`, a sample
//             whose tokens equal an already kept one of the same prompt is skipped
//
// ReST-EM keeps r = 1 samples with a per-problem cap (Singh et al. 2023, arXiv 2312.06585); B-STaR keeps
// score > τ in score order up to a per-query cap (Zeng et al. 2024, arXiv 2412.17256); STaR keeps the
// samples whose answer is correct (Zelikman et al. 2022, arXiv 2203.14465).
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <span>
#include <string_view>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen::loop {

struct SelectionRule {
  double threshold = 1.0;      ///< keep score >= threshold (> with strict)
  bool strict = false;
  std::int64_t cap = 1;        ///< at most this many per prompt, > 0
  bool distinct = true;        ///< skip a sample equal (token for token) to one already kept for its prompt
};

/// Throws kaizen::Error when the cap is not positive (`who` names the caller).
inline void validate(const SelectionRule& rule, std::string_view who = "select") {
  KAIZEN_CHECK(rule.cap > 0, who, ": the per-prompt cap must be > 0, got ", rule.cap);
}

/// Indices into group.completions of the samples `rule` keeps, in keeping order.
/// Throws kaizen::Error when the cap is not positive or rewards and completions differ in count.
[[nodiscard]] inline std::vector<std::size_t> select_indices(const Group& group, const SelectionRule& rule) {
  validate(rule, "select_indices");
  KAIZEN_CHECK(group.rewards.size() == group.completions.size(), "select_indices: ", group.completions.size(),
               " completions but ", group.rewards.size(), " rewards");
  std::vector<std::size_t> order(group.rewards.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return group.rewards[a] > group.rewards[b]; });
  std::vector<std::size_t> kept;
  for (std::size_t i : order) {
    if (static_cast<std::int64_t>(kept.size()) >= rule.cap) break;
    const double r = group.rewards[i];
    if (rule.strict ? !(r > rule.threshold) : !(r >= rule.threshold)) continue;
    if (rule.distinct &&
        std::any_of(kept.begin(), kept.end(), [&](std::size_t k) { return group.completions[k].tokens == group.completions[i].tokens; }))
      continue;
    kept.push_back(i);
  }
  return kept;
}

/// The kept samples of every group as SFT examples (prompt tokens → completion; reward = its score,
/// group = the index of its group in `groups`).
[[nodiscard]] inline std::vector<Rollout> select_examples(std::span<const Group> groups, const SelectionRule& rule) {
  validate(rule, "select_examples");
  std::vector<Rollout> out;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (std::size_t i : select_indices(groups[g], rule)) {
      out.push_back(Rollout{groups[g].prompt.tokens, groups[g].completions[i], groups[g].rewards[i],
                            static_cast<std::int64_t>(g)});
    }
  }
  return out;
}

}  // namespace kaizen::loop
