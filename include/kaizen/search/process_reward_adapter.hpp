// kaizen/search/process_reward_adapter.hpp - a kaizen::ProcessReward (core/reward.hpp) as the
// evaluate() of a step-wise search problem, so MCTS and beam search are guided by a process reward
// model (PRM) directly.
//
// A node's steps are the step texts on its path: tree.text(n) for every node n from the root's
// child down to the node (the root holds the question, in the Prompt). For every node to evaluate,
// the adapter calls reward(prompt, steps) once, which must return one finite score per step, and
// writes the node's value:
//   StepValue::last     s_d (the PRM's score of the node's own step; ReST-MCTS*'s value model)
//   StepValue::min      min_k s_k          StepValue::mean   (1/d) Σ_k s_k
//   StepValue::product  Π_k s_k            (the aggregation modes of PRM-guided search)
// The root (no step) gets `root_value`. A reward returning the wrong count or a non-finite score is
// a kaizen::Error naming the node, the counts and the value.
//
// ProcessRewardEvaluator<R> is the evaluate() alone; ProcessRewardProblem<Steps, R> is a whole
// SearchProblem: expand and terminal (and to_move, when Steps has it) from `Steps`, evaluate from
// the process reward. Use with Evaluation::eager (each proposed step is scored when created, as in
// ReST-MCTS*) or with beam_search (beam.hpp, which then aggregates Node::evaluation itself: keep
// StepValue::last there).
//
// References: Lightman et al., "Let's Verify Step by Step" (2023, arXiv 2305.20050) - PRMs and the
// min / product aggregation; Zhang et al., "ReST-MCTS*" (2024, arXiv 2406.03816) - a PRM as the value
// of MCTS* nodes; Snell et al. (2024, arXiv 2408.03314) - "last" aggregation for search.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/search/problem.hpp>
#include <kaizen/search/tree.hpp>

namespace kaizen::search {

/// How a node's value is made from the per-step scores of its path.
enum class StepValue : std::uint8_t { last, min, mean, product };

/// Options of the adapter.
struct ProcessRewardOptions {
  StepValue value = StepValue::last;  ///< see the file comment
  double root_value = 0.0;            ///< the value of the root (no step yet); finite
};

/// A ProcessReward as a search problem's evaluate(): values[i] = aggregated step scores of nodes[i].
template <ProcessReward R>
class ProcessRewardEvaluator {
 public:
  /// Keeps a reference to `reward` (it must outlive the evaluator) and a copy of `prompt`.
  /// Throws kaizen::Error on a non-finite root_value.
  ProcessRewardEvaluator(R& reward, Prompt prompt, ProcessRewardOptions options = {})
      : reward_(reward), prompt_(std::move(prompt)), options_(options) {
    KAIZEN_CHECK(std::isfinite(options_.root_value), "ProcessRewardEvaluator: expected a finite root_value, got ",
                 options_.root_value);
  }

  template <class State>
  void operator()(const Tree<State>& tree, std::span<const NodeId> nodes, std::span<double> values) {
    KAIZEN_CHECK(nodes.size() == values.size(), "ProcessRewardEvaluator: ", nodes.size(), " nodes but ", values.size(),
                 " value slots");
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const NodeId id = nodes[i];
      KAIZEN_CHECK(id < tree.size(), "ProcessRewardEvaluator: expected a node id < ", tree.size(), ", got ", id);
      const std::size_t depth = tree[id].depth;
      if (depth == 0) {
        values[i] = options_.root_value;
        continue;
      }
      steps_.resize(depth);
      for (NodeId n = id; n != Tree<State>::root(); n = tree[n].parent) steps_[tree[n].depth - 1].assign(tree.text(n));
      const std::vector<double> scores = reward_(prompt_, std::span<const std::string>(steps_));
      KAIZEN_CHECK(scores.size() == depth, "ProcessRewardEvaluator: the process reward returned ", scores.size(),
                   " scores for the ", depth, " steps of node ", id);
      double value = options_.value == StepValue::product ? 1.0 : 0.0;
      for (std::size_t k = 0; k < depth; ++k) {
        const double s = scores[k];
        KAIZEN_CHECK(std::isfinite(s), "ProcessRewardEvaluator: the process reward scored step ", k, " of node ", id,
                     " as ", s, ", expected a finite score");
        switch (options_.value) {
          case StepValue::last: value = s; break;
          case StepValue::min: value = k == 0 ? s : std::min(value, s); break;
          case StepValue::mean: value += s / static_cast<double>(depth); break;
          case StepValue::product: value *= s; break;
        }
      }
      values[i] = value;
    }
  }

  [[nodiscard]] const Prompt& prompt() const noexcept { return prompt_; }
  [[nodiscard]] const ProcessRewardOptions& options() const noexcept { return options_; }

 private:
  R& reward_;
  Prompt prompt_;
  ProcessRewardOptions options_;
  std::vector<std::string> steps_;  // reused across nodes
};

/// A SearchProblem whose expand and terminal (and to_move, if present) come from `Steps` (a type
/// with the SearchProblem members but evaluate) and whose evaluate is a ProcessRewardEvaluator.
template <class Steps, ProcessReward R>
class ProcessRewardProblem {
 public:
  using State = typename Steps::State;

  /// Keeps references to `steps` and `reward` (both must outlive the problem).
  ProcessRewardProblem(Steps& steps, R& reward, Prompt prompt, ProcessRewardOptions options = {})
      : steps_(steps), evaluator_(reward, std::move(prompt), options) {}

  void expand(const Tree<State>& tree, std::span<const ExpandRequest> requests, Expansion<State>& out) {
    steps_.expand(tree, requests, out);
  }
  void evaluate(const Tree<State>& tree, std::span<const NodeId> nodes, std::span<double> values) {
    evaluator_(tree, nodes, values);
  }
  [[nodiscard]] bool terminal(const Tree<State>& tree, NodeId id) { return static_cast<bool>(steps_.terminal(tree, id)); }
  [[nodiscard]] std::int32_t to_move(const Tree<State>& tree, NodeId id)
    requires requires(Steps& s) { { s.to_move(tree, id) } -> std::convertible_to<std::int32_t>; }
  {
    return static_cast<std::int32_t>(steps_.to_move(tree, id));
  }

  [[nodiscard]] ProcessRewardEvaluator<R>& evaluator() noexcept { return evaluator_; }

 private:
  Steps& steps_;
  ProcessRewardEvaluator<R> evaluator_;
};

}  // namespace kaizen::search
