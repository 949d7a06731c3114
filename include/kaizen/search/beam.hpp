// kaizen/search/beam.hpp - step-level beam search guided by a process reward.
//
// Keeps the `beam_width` best partial solutions. Each depth, every beam node asks for
// `expansions_per_beam` next steps (ONE batched expand call for the whole beam), every new step is
// scored by the problem's evaluate (ONE call: the process reward of the step), each candidate's path
// score is aggregated from its step scores, and the `beam_width` best candidates survive; terminal
// ones leave the beam as finished solutions. Stops when the beam is empty or at max_depth.
//
// Path score from step scores s_1..s_d (process-reward aggregation modes as in AlphaLLM / PRM
// best-of-N practice): last = s_d, min = min_k s_k, mean = (1/d) Σ s_k, product = Π s_k.
// Ties keep the earlier-created node.
//
// References: Lightman et al., "Let's Verify Step by Step" (2023, arXiv 2305.20050) - PRM scoring of
// steps; Snell et al., "Scaling LLM Test-Time Compute Optimally" (2024, arXiv 2408.03314) - beam
// search against a PRM.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/search/problem.hpp>
#include <kaizen/search/tree.hpp>

namespace kaizen::search {

/// How a path score is aggregated from its step scores.
enum class ScoreAggregation : std::uint8_t { last, min, mean, product };

/// Beam-search options.
struct BeamOptions {
  std::size_t beam_width = 4;              ///< > 0
  std::uint32_t expansions_per_beam = 4;   ///< next steps requested per beam node (> 0)
  std::size_t max_depth = 10;              ///< > 0
  ScoreAggregation aggregation = ScoreAggregation::last;
};

/// What beam_search found: finished (terminal) nodes and the beam left at max_depth, each sorted by
/// path score, best first; a node's path score is also in Node::value and its step score in
/// Node::evaluation.
struct BeamResult {
  std::vector<NodeId> finished;
  std::vector<NodeId> unfinished;
  std::size_t expand_calls = 0;
  std::size_t evaluate_calls = 0;
};

/// Aggregated path score of a child from its parent's path score, its step score and its depth.
[[nodiscard]] inline double aggregate_step(ScoreAggregation rule, double parent_score, double step_score,
                                           std::uint32_t depth) {
  if (depth <= 1) return step_score;
  switch (rule) {
    case ScoreAggregation::last: return step_score;
    case ScoreAggregation::min: return std::min(parent_score, step_score);
    case ScoreAggregation::mean: return parent_score + (step_score - parent_score) / static_cast<double>(depth);
    case ScoreAggregation::product: return parent_score * step_score;
  }
  return step_score;
}

/// Beam search over `problem` from the root of `tree` (see the header comment). Throws kaizen::Error
/// on zero widths or depth and on a non-finite step score.
template <SearchProblem P>
BeamResult beam_search(P& problem, Tree<typename P::State>& tree, const BeamOptions& options = {}) {
  using State = typename P::State;
  KAIZEN_CHECK(options.beam_width > 0, "beam_search: expected beam_width > 0, got 0");
  KAIZEN_CHECK(options.expansions_per_beam > 0, "beam_search: expected expansions_per_beam > 0, got 0");
  KAIZEN_CHECK(options.max_depth > 0, "beam_search: expected max_depth > 0, got 0");
  BeamResult out;
  std::vector<NodeId> beam{Tree<State>::root()}, candidates;
  std::vector<ExpandRequest> requests;
  std::vector<double> scores;
  Expansion<State> expansion;
  const auto& view = static_cast<const Tree<State>&>(tree);
  for (std::size_t depth = 0; depth < options.max_depth && !beam.empty(); ++depth) {
    requests.clear();
    for (NodeId b : beam) requests.push_back(ExpandRequest{b, options.expansions_per_beam});
    expansion.clear();
    problem.expand(view, std::span<const ExpandRequest>(requests), expansion);
    ++out.expand_calls;
    candidates.clear();
    std::vector<std::uint32_t> taken(requests.size(), 0);
    for (auto& child : expansion.children()) {
      KAIZEN_CHECK(child.request < requests.size(), "beam_search: the problem proposed a child for request ",
                   child.request, " but only ", requests.size(), " were made");
      if (taken[child.request]++ >= options.expansions_per_beam) continue;
      candidates.push_back(tree.add_child(requests[child.request].leaf, std::move(child.state), child.prior,
                                          expansion.text(child), expansion.tokens(child)));
    }
    if (candidates.empty()) break;
    scores.assign(candidates.size(), 0.0);
    problem.evaluate(view, std::span<const NodeId>(candidates), std::span<double>(scores));
    ++out.evaluate_calls;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      KAIZEN_CHECK(std::isfinite(scores[i]), "beam_search: the problem scored node ", candidates[i], " as ", scores[i],
                   ", expected a finite value");
      Node& n = tree[candidates[i]];
      n.evaluation = scores[i];
      n.value = aggregate_step(options.aggregation, tree[n.parent].value, scores[i], n.depth);
      n.visits = 1;
      n.terminal = static_cast<bool>(problem.terminal(view, candidates[i]));
    }
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&](NodeId a, NodeId b) { return tree[a].value > tree[b].value; });
    if (candidates.size() > options.beam_width) candidates.resize(options.beam_width);
    beam.clear();
    for (NodeId c : candidates) (tree[c].terminal ? out.finished : beam).push_back(c);
  }
  out.unfinished = beam;
  auto by_score = [&](NodeId a, NodeId b) { return tree[a].value > tree[b].value; };
  std::stable_sort(out.finished.begin(), out.finished.end(), by_score);
  std::stable_sort(out.unfinished.begin(), out.unfinished.end(), by_score);
  return out;
}

}  // namespace kaizen::search
