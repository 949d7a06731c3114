// kaizen/search/merge.hpp - state merging for equivalent steps and importance-based widening
// (AlphaLLM).
//
// Two proposed steps are equivalent when their texts are within `max_edit_distance` (Levenshtein,
// in bytes) of each other. When a node gets new children, candidates are kept farthest-first: the
// candidate whose minimum edit distance to the siblings (existing and already kept) is largest is
// kept next, until `count` are kept or every remaining candidate is equivalent to a sibling. Each
// dropped candidate is merged into its nearest sibling: its prior is added to that sibling's, so
// the probability mass of equivalent phrasings lands on one node instead of splitting visits.
// This is AlphaLLM's diverse expansion (re-sample, keep the option farthest from its siblings,
// accept once the distance exceeds a threshold), run over a batch of candidates.
//
// Importance-based width (AlphaLLM code): a node may have
//     max(current, min(⌊width_factor · max_i |Q_i − mean Q|⌋, cap))
// children, where Q_i are its children's values (a node whose children disagree deserves more).
//
// Reference: Tian et al., "Toward Self-Improvement of LLMs via Imagination, Searching, and
// Criticizing" (2024, arXiv 2404.12253); code YeTianJHU/AlphaLLM search/mcts.py.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <string_view>
#include <vector>

#include <kaizen/core/error.hpp>

namespace kaizen::search {

/// Levenshtein distance between two byte strings (unit insert / delete / substitute), O(|a|·|b|)
/// time, O(|b|) memory in `scratch` (reused between calls).
[[nodiscard]] inline std::size_t edit_distance(std::string_view a, std::string_view b, std::vector<std::size_t>& scratch) {
  scratch.resize(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) scratch[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = scratch[0];
    scratch[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = scratch[j];
      scratch[j] = std::min({up + 1, scratch[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0U : 1U)});
      diagonal = up;
    }
  }
  return scratch[b.size()];
}

/// Levenshtein distance (allocating convenience form).
[[nodiscard]] inline std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> scratch;
  return edit_distance(a, b, scratch);
}

/// State-merging options (see the header comment).
struct MergeOptions {
  bool enabled = false;             ///< off: every proposed child is kept (up to the request)
  std::size_t max_edit_distance = 0;  ///< steps within this distance are equivalent (0 = identical text)
};

/// The outcome of diverse_subset: the candidates kept (in the order chosen) and, for each dropped
/// candidate, its nearest neighbour — a kept candidate or an existing sibling (the other is kNone;
/// both are kNone when there was nothing to compare with) — and the distance to it.
struct DiverseChoice {
  static constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> kept;
  std::vector<std::size_t> dropped;
  std::vector<std::size_t> merged_candidate;  ///< per dropped: nearest kept candidate, or kNone
  std::vector<std::size_t> merged_sibling;    ///< per dropped: nearest existing sibling, or kNone
  std::vector<std::size_t> distance;          ///< per dropped: edit distance to that neighbour
};

/// Chooses up to `count` candidates farthest-first from `siblings` and from each other, never one
/// within `max_edit_distance` of a sibling or of a kept candidate (see the header comment).
[[nodiscard]] inline DiverseChoice diverse_subset(std::span<const std::string_view> candidates,
                                                  std::span<const std::string_view> siblings, std::size_t count,
                                                  std::size_t max_edit_distance) {
  constexpr std::size_t kNone = DiverseChoice::kNone;
  constexpr std::size_t kFar = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> scratch;
  const std::size_t n = candidates.size();
  std::vector<std::size_t> nearest_distance(n, kFar), nearest_sibling(n, kNone), nearest_kept(n, kNone);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t s = 0; s < siblings.size(); ++s) {
      const std::size_t d = edit_distance(candidates[i], siblings[s], scratch);
      if (d < nearest_distance[i]) nearest_distance[i] = d, nearest_sibling[i] = s;
    }
  }
  std::vector<bool> taken(n, false);
  DiverseChoice out;
  while (out.kept.size() < count) {
    std::size_t best = kNone;
    for (std::size_t i = 0; i < n; ++i)
      if (!taken[i] && (best == kNone || nearest_distance[i] > nearest_distance[best])) best = i;
    if (best == kNone || (nearest_distance[best] != kFar && nearest_distance[best] <= max_edit_distance)) break;
    taken[best] = true;
    out.kept.push_back(best);
    for (std::size_t i = 0; i < n; ++i) {
      if (taken[i]) continue;
      const std::size_t d = edit_distance(candidates[i], candidates[best], scratch);
      if (d < nearest_distance[i]) nearest_distance[i] = d, nearest_kept[i] = best, nearest_sibling[i] = kNone;
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (taken[i]) continue;
    out.dropped.push_back(i);
    out.merged_candidate.push_back(nearest_kept[i]);
    out.merged_sibling.push_back(nearest_sibling[i]);
    out.distance.push_back(nearest_distance[i]);
  }
  return out;
}

/// AlphaLLM's importance-based width: max(current, min(⌊width_factor · max_i |Q_i − mean Q|⌋, cap)).
/// Throws kaizen::Error on a negative or non-finite width factor or a non-finite child value.
[[nodiscard]] inline std::size_t importance_width(std::span<const double> child_values, std::size_t current,
                                                  double width_factor, std::size_t cap = 10) {
  KAIZEN_CHECK(std::isfinite(width_factor) && width_factor >= 0.0,
               "importance_width: expected a finite width_factor >= 0, got ", width_factor);
  if (child_values.empty()) return current;
  double mean = 0.0;
  for (double q : child_values) {
    KAIZEN_CHECK(std::isfinite(q), "importance_width: expected finite child values, got ", q);
    mean += q;
  }
  mean /= static_cast<double>(child_values.size());
  double spread = 0.0;
  for (double q : child_values) spread = std::max(spread, std::abs(q - mean));
  const auto wanted = static_cast<std::size_t>(std::floor(width_factor * spread));
  return std::max(current, std::min(wanted, cap));
}

}  // namespace kaizen::search
