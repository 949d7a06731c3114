// kaizen/preference/pair_builder.hpp - (chosen, rejected) pairs from scored samples, for DPO-style training.
//
//   best-vs-worst     per prompt: chosen = argmax score, rejected = argmin score (Self-Rewarding LMs)
//   margin pairs      per prompt: every (i, j) with s_i > s_j and s_i − s_j >= margin
//   self-rewarding    best-vs-worst over scores from a user judge (the model prompted as LLM-as-judge)
//   temporal          per prompt: rejected = worst sample of the anchor (past) model, chosen = best of
//                     the current model, replaced by the best of the future model when that is strictly
//                     better (Temporal Self-Rewarding: anchored rejection + future-guided chosen)
//   newer-beats-older per prompt: every sample of the newer model is chosen over every sample of the older
//                     model (weak-supervision self-reinforcement), optionally only when its score is not lower
//                     (consistency filter); pairs whose two completions are identical are dropped
//   self-correction   per two-attempt episode: the correct attempt beats the wrong one when the
//                     refinement changed correctness; same-correctness episodes give no pair (SCL)
// Except newer-beats-older (labelled by generation, not by score), every emitted pair satisfies score(chosen) > score(rejected) and score(chosen) − score(rejected) >= margin,
// so a sample is never paired with itself and prompts whose scores all tie give nothing. Ties for the best
// or worst place break deterministically: the earliest sample (TieBreak::first) or a uniform draw from an
// engine seeded with `seed` (TieBreak::random), consumed in prompt order, so equal seeds give equal pairs.
// Prompts are visited in order of first appearance. LibTorch-free.
//
// References: Yuan et al. 2024, "Self-Rewarding Language Models" (arXiv 2401.10020); Wang et al. 2025,
// "Temporal Self-Rewarding Language Models" (arXiv 2508.06026); He, Lin et al. 2024, "Self-Correction
// Learning" (SCL, ivy3h/SCL data construction); Tong et al. 2024, "Optimizing Language Model's Reasoning
// Abilities with Weak Supervision" (newer-beats-older).
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen::preference {

/// One scored sample.
struct ScoredSample {
  std::int64_t prompt = 0;  ///< which prompt it answers; samples of one prompt are paired together
  double score = 0.0;       ///< judge / reward score, finite; higher is better
  std::int64_t model = 0;   ///< which model (iteration) generated it; used by temporal_pairs
};

/// A preference pair; chosen and rejected index the input samples.
struct PreferencePair {
  std::int64_t prompt = 0;
  std::size_t chosen = 0;
  std::size_t rejected = 0;
  double chosen_score = 0.0;
  double rejected_score = 0.0;
};

/// How ties for the best or worst place are broken.
enum class TieBreak : std::uint8_t {
  first,   ///< the earliest sample in input order
  random,  ///< uniform among the tied samples, from Rng(seed)
};

/// Options of best_vs_worst_pairs and self_rewarding_pairs.
struct PairOptions {
  double margin = 0.0;               ///< >= 0: minimum score gap of an emitted pair
  TieBreak tie_break = TieBreak::first;
  std::uint64_t seed = 0;            ///< seeds TieBreak::random
};

/// Options of margin_pairs.
struct MarginPairOptions {
  double margin = 0.0;                   ///< >= 0: minimum score gap of an emitted pair
  std::size_t max_pairs_per_prompt = 0;  ///< 0: all; else a uniform subset of that size (from Rng(seed))
  std::uint64_t seed = 0;
};

/// Options of temporal_pairs.
struct TemporalOptions {
  std::int64_t anchor_model = 0;   ///< the past model whose worst sample is the rejected one
  std::int64_t current_model = 1;  ///< the model being trained (M_t)
  std::int64_t future_model = 2;   ///< the provisional next model (M'_{t+1}); may have no samples
  double margin = 0.0;
  TieBreak tie_break = TieBreak::first;
  std::uint64_t seed = 0;
};

namespace detail {

inline void check_samples(const char* fn, std::span<const ScoredSample> samples, double margin) {
  KAIZEN_CHECK(margin >= 0.0 && std::isfinite(margin), fn, ": expected margin >= 0 and finite, got ", margin);
  for (std::size_t i = 0; i < samples.size(); ++i)
    KAIZEN_CHECK(std::isfinite(samples[i].score), fn, ": expected finite scores, sample ", i, " has ", samples[i].score);
}

/// Sample indices grouped by prompt, prompts in order of first appearance, indices ascending.
[[nodiscard]] inline std::vector<std::vector<std::size_t>> group_by_prompt(std::span<const ScoredSample> samples) {
  std::unordered_map<std::int64_t, std::size_t> slot;
  std::vector<std::vector<std::size_t>> groups;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto [it, inserted] = slot.try_emplace(samples[i].prompt, groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  return groups;
}

/// Index (into samples) of the best (sign = +1) or worst (sign = −1) of `candidates`, ties broken per `tie`.
[[nodiscard]] inline std::size_t extreme(std::span<const ScoredSample> samples, const std::vector<std::size_t>& candidates,
                                         double sign, TieBreak tie, Rng& rng) {
  double best = -std::numeric_limits<double>::infinity();
  for (std::size_t i : candidates) best = std::max(best, sign * samples[i].score);
  std::vector<std::size_t> tied;
  for (std::size_t i : candidates)
    if (sign * samples[i].score == best) tied.push_back(i);
  if (tie == TieBreak::first || tied.size() == 1) return tied.front();
  return tied[uniform_index(rng, tied.size())];
}

[[nodiscard]] inline bool keeps(double chosen, double rejected, double margin) {
  return chosen > rejected && chosen - rejected >= margin;
}

}  // namespace detail

/// Per prompt, the best sample against the worst one (see the header). Throws kaizen::Error on a
/// non-finite score or a negative margin.
[[nodiscard]] inline std::vector<PreferencePair> best_vs_worst_pairs(std::span<const ScoredSample> samples,
                                                                     const PairOptions& options = {}) {
  detail::check_samples("best_vs_worst_pairs", samples, options.margin);
  Rng rng(options.seed);
  std::vector<PreferencePair> out;
  for (const auto& group : detail::group_by_prompt(samples)) {
    const std::size_t chosen = detail::extreme(samples, group, +1.0, options.tie_break, rng);
    const std::size_t rejected = detail::extreme(samples, group, -1.0, options.tie_break, rng);
    if (!detail::keeps(samples[chosen].score, samples[rejected].score, options.margin)) continue;
    out.push_back({samples[chosen].prompt, chosen, rejected, samples[chosen].score, samples[rejected].score});
  }
  return out;
}

/// Per prompt, every pair (i, j) with s_i > s_j and s_i − s_j >= margin, ordered by prompt, then i, then j;
/// with max_pairs_per_prompt > 0, a uniform subset of that many per prompt (order kept). Throws
/// kaizen::Error on a non-finite score or a negative margin.
[[nodiscard]] inline std::vector<PreferencePair> margin_pairs(std::span<const ScoredSample> samples,
                                                              const MarginPairOptions& options = {}) {
  detail::check_samples("margin_pairs", samples, options.margin);
  Rng rng(options.seed);
  std::vector<PreferencePair> out;
  for (const auto& group : detail::group_by_prompt(samples)) {
    std::vector<PreferencePair> candidates;
    for (std::size_t i : group)
      for (std::size_t j : group)
        if (detail::keeps(samples[i].score, samples[j].score, options.margin))
          candidates.push_back({samples[i].prompt, i, j, samples[i].score, samples[j].score});
    if (options.max_pairs_per_prompt > 0 && candidates.size() > options.max_pairs_per_prompt) {
      // Partial Fisher-Yates over positions, then restore input order among the kept ones.
      std::vector<std::size_t> position(candidates.size());
      for (std::size_t k = 0; k < position.size(); ++k) position[k] = k;
      for (std::size_t k = 0; k < options.max_pairs_per_prompt; ++k)
        std::swap(position[k], position[k + uniform_index(rng, position.size() - k)]);
      position.resize(options.max_pairs_per_prompt);
      std::sort(position.begin(), position.end());
      for (std::size_t k : position) out.push_back(candidates[k]);
    } else {
      out.insert(out.end(), candidates.begin(), candidates.end());
    }
  }
  return out;
}

/// Pairs and the judge scores they came from: samples[k] is completion k of the flattened groups
/// (prompt = group index), pairs index samples.
struct SelfRewardingPairs {
  std::vector<ScoredSample> samples;
  std::vector<PreferencePair> pairs;
};

/// Self-rewarding: scores every completion of every group with `judge` (any OutcomeReward, typically the
/// policy prompted as a judge), then best_vs_worst_pairs. Throws kaizen::Error when a group's rewards are
/// malformed, the judge returns a non-finite score (kaizen::score), or the margin is negative.
template <OutcomeReward Judge>
[[nodiscard]] SelfRewardingPairs self_rewarding_pairs(std::span<const Group> groups, Judge& judge,
                                                      const PairOptions& options = {}) {
  SelfRewardingPairs out;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const std::vector<Prompt> prompts(groups[g].completions.size(), groups[g].prompt);
    const std::vector<double> scores = score(judge, std::span<const Prompt>(prompts),
                                             std::span<const Completion>(groups[g].completions));
    for (double s : scores) out.samples.push_back({static_cast<std::int64_t>(g), s, 0});
  }
  out.pairs = best_vs_worst_pairs(out.samples, options);
  return out;
}

/// Temporal self-rewarding pairs (see the header): rejected from options.anchor_model, chosen from
/// options.current_model, upgraded to options.future_model's best when strictly better (or taken from it
/// when the current model has no sample for the prompt). Prompts without an anchor sample, or without
/// any current or future sample, give no pair. Throws kaizen::Error on a non-finite score, a negative
/// margin, or model ids that are not distinct.
[[nodiscard]] inline std::vector<PreferencePair> temporal_pairs(std::span<const ScoredSample> samples,
                                                                const TemporalOptions& options = {}) {
  detail::check_samples("temporal_pairs", samples, options.margin);
  KAIZEN_CHECK(options.anchor_model != options.current_model && options.anchor_model != options.future_model &&
                   options.current_model != options.future_model,
               "temporal_pairs: expected distinct anchor, current and future model ids, got ", options.anchor_model,
               ", ", options.current_model, ", ", options.future_model);
  Rng rng(options.seed);
  std::vector<PreferencePair> out;
  for (const auto& group : detail::group_by_prompt(samples)) {
    std::vector<std::size_t> anchor, current, future;
    for (std::size_t i : group) {
      if (samples[i].model == options.anchor_model) anchor.push_back(i);
      else if (samples[i].model == options.current_model) current.push_back(i);
      else if (samples[i].model == options.future_model) future.push_back(i);
    }
    if (anchor.empty() || (current.empty() && future.empty())) continue;
    const std::size_t rejected = detail::extreme(samples, anchor, -1.0, options.tie_break, rng);
    std::size_t chosen = 0;
    if (current.empty()) {
      chosen = detail::extreme(samples, future, +1.0, options.tie_break, rng);
    } else {
      chosen = detail::extreme(samples, current, +1.0, options.tie_break, rng);
      if (!future.empty()) {
        const std::size_t upgrade = detail::extreme(samples, future, +1.0, options.tie_break, rng);
        if (samples[upgrade].score > samples[chosen].score) chosen = upgrade;
      }
    }
    if (!detail::keeps(samples[chosen].score, samples[rejected].score, options.margin)) continue;
    out.push_back({samples[chosen].prompt, chosen, rejected, samples[chosen].score, samples[rejected].score});
  }
  return out;
}

/// Options of newer_beats_older_pairs.
struct NewerOlderOptions {
  std::int64_t newer_model = 1;          ///< the model whose samples are chosen
  std::int64_t older_model = 0;          ///< the model whose samples are rejected
  bool require_score_not_lower = false;  ///< keep a pair only when score(newer) >= score(older)
  std::size_t max_pairs_per_prompt = 0;  ///< 0: all; else a uniform subset of that size (from Rng(seed))
  std::uint64_t seed = 0;
};

/// Newer beats older (see the header): per prompt, every (newer i, older j) pair in input order (i, then
/// j), except pairs whose completions are equal (`same(i, j)` true), and with require_score_not_lower, pairs
/// whose newer score is lower. `same(i, j) -> bool` compares the completions of samples i and j (e.g. their
/// token ids). Throws kaizen::Error on a non-finite score or equal model ids.
template <class Same>
  requires requires(Same& same, std::size_t i, std::size_t j) { { same(i, j) } -> std::convertible_to<bool>; }
[[nodiscard]] std::vector<PreferencePair> newer_beats_older_pairs(std::span<const ScoredSample> samples, Same same,
                                                                  const NewerOlderOptions& options = {}) {
  detail::check_samples("newer_beats_older_pairs", samples, 0.0);
  KAIZEN_CHECK(options.newer_model != options.older_model,
               "newer_beats_older_pairs: expected distinct newer and older model ids, got ", options.newer_model, " and ",
               options.older_model);
  Rng rng(options.seed);
  std::vector<PreferencePair> out;
  for (const auto& group : detail::group_by_prompt(samples)) {
    std::vector<PreferencePair> candidates;
    for (std::size_t i : group) {
      if (samples[i].model != options.newer_model) continue;
      for (std::size_t j : group) {
        if (samples[j].model != options.older_model) continue;
        if (options.require_score_not_lower && samples[i].score < samples[j].score) continue;
        if (static_cast<bool>(same(i, j))) continue;
        candidates.push_back({samples[i].prompt, i, j, samples[i].score, samples[j].score});
      }
    }
    if (options.max_pairs_per_prompt > 0 && candidates.size() > options.max_pairs_per_prompt) {
      std::vector<std::size_t> position(candidates.size());
      for (std::size_t k = 0; k < position.size(); ++k) position[k] = k;
      for (std::size_t k = 0; k < options.max_pairs_per_prompt; ++k)
        std::swap(position[k], position[k + uniform_index(rng, position.size() - k)]);
      position.resize(options.max_pairs_per_prompt);
      std::sort(position.begin(), position.end());
      for (std::size_t k : position) out.push_back(candidates[k]);
    } else {
      out.insert(out.end(), candidates.begin(), candidates.end());
    }
  }
  return out;
}

/// Which attempt of a self-correction episode.
enum class Attempt : std::uint8_t { initial, refined };

/// A self-correction preference: in episode `episode`, attempt `chosen` beats attempt `rejected`.
struct CorrectionPair {
  std::size_t episode = 0;
  Attempt chosen = Attempt::refined;
  Attempt rejected = Attempt::initial;
};

/// SCL pairs from two-attempt episodes: attempt k of episode e is correct when its score >= threshold.
/// (wrong, correct) → refined beats initial; (correct, wrong) → initial beats refined; equal correctness
/// → no pair. Throws kaizen::Error when the spans differ in length or a score or the threshold is not finite.
[[nodiscard]] inline std::vector<CorrectionPair> self_correction_pairs(std::span<const double> initial_scores,
                                                                       std::span<const double> refined_scores,
                                                                       double threshold = 0.5) {
  KAIZEN_CHECK(initial_scores.size() == refined_scores.size(), "self_correction_pairs: expected one refined score per initial score, got ",
               initial_scores.size(), " initial and ", refined_scores.size(), " refined");
  KAIZEN_CHECK(std::isfinite(threshold), "self_correction_pairs: expected a finite threshold, got ", threshold);
  std::vector<CorrectionPair> out;
  for (std::size_t e = 0; e < initial_scores.size(); ++e) {
    KAIZEN_CHECK(std::isfinite(initial_scores[e]) && std::isfinite(refined_scores[e]),
                 "self_correction_pairs: expected finite scores, episode ", e, " has ", initial_scores[e], " and ",
                 refined_scores[e]);
    const bool first_ok = initial_scores[e] >= threshold;
    const bool second_ok = refined_scores[e] >= threshold;
    if (first_ok == second_ok) continue;
    out.push_back(second_ok ? CorrectionPair{e, Attempt::refined, Attempt::initial}
                            : CorrectionPair{e, Attempt::initial, Attempt::refined});
  }
  return out;
}

}  // namespace kaizen::preference
