// kaizen/search/trace.hpp - training data from a finished search tree: per-step value targets for a
// process reward model (ReST-MCTS* quality values), per-step advantages for policy-gradient losses,
// and (chosen, rejected) step pairs for preference losses.
//
// Quality values (ReST-MCTS*, "weighted reward"): along a path, with v_0 = 0,
//     w_k = (1 − v_{k−1}) / (m_k + 1) · (1 − 2 r_k),     v_k = max(v_{k−1} + w_k, 0)
// where m_k is the number of steps from step k to a correct answer and r_k = 0 when step k can still
// reach a correct answer, 1 otherwise. On a tree: m(node) = 0 for a correct terminal node, else
// 1 + min over children (a node with no correct descendant takes m from its nearest ancestor that
// has one, and 0 when there is none). Values stay in [0, 1]; a correct path ends at 1.
// Example: a correct 3-step trace (m = 2, 1, 0) gives v = 1/3, 2/3, 1; from v = 0.5 an incorrect
// step with m + 1 = 2 gives max(0.5 − 0.25, 0) = 0.25.
//
// Step advantage of a node: A = value(node) − value(parent), for any per-node value (the search's
// Q, or the quality targets above) - the progress a step makes, as in process-advantage methods.
// Step pairs: at each node with at least two children visited min_visits times, the child with the
// highest value (chosen) against the one with the lowest (rejected), kept when the gap > min_margin.
//
// Reference: Zhang et al., "ReST-MCTS*: LLM Self-Training via Process Reward Guided Tree Search"
// (2024, arXiv 2406.03816); code THUDM/ReST-MCTS MCTS/base.py.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/search/tree.hpp>

namespace kaizen::search {

/// One quality-value step: max(v_prev + (1 − v_prev)/(m + 1)·(1 − 2r), 0) with r = !reaches_correct.
/// Throws kaizen::Error unless v_prev is in [0, 1].
[[nodiscard]] inline double quality_value_step(double v_prev, std::size_t remaining_steps, bool reaches_correct) {
  KAIZEN_CHECK(v_prev >= 0.0 && v_prev <= 1.0, "quality_value_step: expected v_prev in [0, 1], got ", v_prev);
  const double r = reaches_correct ? 0.0 : 1.0;
  const double w = (1.0 - v_prev) / (static_cast<double>(remaining_steps) + 1.0) * (1.0 - 2.0 * r);
  return std::max(v_prev + w, 0.0);
}

/// Quality values of one path: v_1..v_K from m_1..m_K and the reach flags (v_0 = 0).
/// Throws kaizen::Error when the spans differ in length.
[[nodiscard]] inline std::vector<double> quality_values(std::span<const std::size_t> remaining_steps,
                                                        const std::vector<bool>& reaches_correct) {
  KAIZEN_CHECK(remaining_steps.size() == reaches_correct.size(), "quality_values: expected one reach flag per step, got ",
               remaining_steps.size(), " steps and ", reaches_correct.size(), " flags");
  std::vector<double> out;
  out.reserve(remaining_steps.size());
  double v = 0.0;
  for (std::size_t k = 0; k < remaining_steps.size(); ++k) out.push_back(v = quality_value_step(v, remaining_steps[k], reaches_correct[k]));
  return out;
}

/// Per-node quality-value targets of a tree (indexed by NodeId; the root's is 0).
struct QualityTargets {
  std::vector<double> value;               ///< v(node)
  std::vector<bool> reaches_correct;       ///< a correct terminal node is in the node's subtree
  std::vector<std::size_t> steps_to_correct;  ///< m(node) as used in the formula
};

/// Quality-value targets over the tree; `correct(tree, id) -> bool` judges terminal nodes (e.g. the
/// final answer matches the reference). Relies on the arena order: a child's id exceeds its parent's.
template <class State, class Correct>
[[nodiscard]] QualityTargets quality_value_targets(const Tree<State>& tree, Correct&& correct) {
  constexpr std::size_t kUnreached = std::numeric_limits<std::size_t>::max();
  const std::size_t n = tree.size();
  std::vector<std::size_t> down(n, kUnreached);
  for (std::size_t i = n; i-- > 0;) {
    const auto id = static_cast<NodeId>(i);
    if (tree[id].terminal && static_cast<bool>(correct(tree, id))) down[i] = 0;
    if (down[i] != kUnreached && tree[id].parent != kNoNode)
      down[tree[id].parent] = std::min(down[tree[id].parent], down[i] + 1);
  }
  QualityTargets out;
  out.value.assign(n, 0.0);
  out.reaches_correct.assign(n, false);
  out.steps_to_correct.assign(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const Node& node = tree[static_cast<NodeId>(i)];
    out.reaches_correct[i] = down[i] != kUnreached;
    out.steps_to_correct[i] = out.reaches_correct[i] ? down[i] : (node.parent == kNoNode ? 0 : out.steps_to_correct[node.parent]);
    if (node.parent != kNoNode)
      out.value[i] = quality_value_step(out.value[node.parent], out.steps_to_correct[i], out.reaches_correct[i]);
  }
  return out;
}

/// Each node's backed-up value estimate (Node::value), indexed by NodeId.
template <class State>
[[nodiscard]] std::vector<double> node_values(const Tree<State>& tree) {
  std::vector<double> out;
  out.reserve(tree.size());
  for (const Node& n : tree.nodes()) out.push_back(n.value);
  return out;
}

/// A(node) = values[node] − values[parent] (0 for the root). Throws kaizen::Error unless there is one
/// value per node.
template <class State>
[[nodiscard]] std::vector<double> step_advantages(const Tree<State>& tree, std::span<const double> values) {
  KAIZEN_CHECK(values.size() == tree.size(), "step_advantages: expected one value per node (", tree.size(), "), got ",
               values.size());
  std::vector<double> out(tree.size(), 0.0);
  for (std::size_t i = 1; i < tree.size(); ++i) out[i] = values[i] - values[tree[static_cast<NodeId>(i)].parent];
  return out;
}

/// A preference pair between two sibling steps.
struct StepPair {
  NodeId parent = kNoNode;
  NodeId chosen = kNoNode;    ///< the sibling with the highest value
  NodeId rejected = kNoNode;  ///< the sibling with the lowest value
  double margin = 0.0;        ///< value(chosen) − value(rejected) > 0
};

/// Options of step_pairs.
struct StepPairOptions {
  std::uint32_t min_visits = 1;  ///< siblings with fewer visits are ignored (0 = all)
  double min_margin = 0.0;       ///< keep a pair only when its margin exceeds this
};

/// (chosen, rejected) sibling pairs, one per eligible node, in node order (ties: the earliest child).
/// Throws kaizen::Error unless there is one finite value per node.
template <class State>
[[nodiscard]] std::vector<StepPair> step_pairs(const Tree<State>& tree, std::span<const double> values,
                                               const StepPairOptions& options = {}) {
  KAIZEN_CHECK(values.size() == tree.size(), "step_pairs: expected one value per node (", tree.size(), "), got ",
               values.size());
  for (std::size_t i = 0; i < values.size(); ++i)
    KAIZEN_CHECK(std::isfinite(values[i]), "step_pairs: expected finite values, got ", values[i], " for node ", i);
  std::vector<StepPair> out;
  for (NodeId p = 0; p < tree.size(); ++p) {
    StepPair pair{.parent = p};
    std::size_t eligible = 0;
    tree.for_each_child(p, [&](NodeId c) {
      if (tree[c].visits < options.min_visits) return;
      ++eligible;
      if (pair.chosen == kNoNode || values[c] > values[pair.chosen]) pair.chosen = c;
      if (pair.rejected == kNoNode || values[c] < values[pair.rejected]) pair.rejected = c;
    });
    if (eligible < 2) continue;
    pair.margin = values[pair.chosen] - values[pair.rejected];
    if (pair.margin > options.min_margin) out.push_back(pair);
  }
  return out;
}

}  // namespace kaizen::search
