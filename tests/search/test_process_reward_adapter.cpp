// ProcessRewardEvaluator / ProcessRewardProblem: a ProcessReward (core/reward.hpp) as the evaluate()
// of a step-wise search problem, used by MCTS and beam search. Oracles are hand-computed from a
// fixed table of step scores.
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/core/reward.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/search/beam.hpp>
#include <kaizen/search/games/game_problem.hpp>
#include <kaizen/search/games/tic_tac_toe.hpp>
#include <kaizen/search/mcts.hpp>
#include <kaizen/search/process_reward_adapter.hpp>

using namespace kaizen;
using namespace kaizen::search;

namespace {

// A process reward with a fixed score per (prefix, step): step "a" or "b" after the steps before it.
//   depth 1: a 0.9, b 0.6;  after a: a 0.2, b 0.3;  after b: a 0.9, b 0.8.
// Greedy by the last score picks a then b (product 0.27); the product-optimal path is b, a (0.54).
struct TablePrm {
  std::map<std::string, double> table{{"/a", 0.9}, {"/b", 0.6}, {"a/a", 0.2}, {"a/b", 0.3}, {"b/a", 0.9}, {"b/b", 0.8}};
  int calls = 0;
  std::string last_prompt;
  std::vector<std::string> last_steps;
  std::vector<double> operator()(const Prompt& prompt, std::span<const std::string> steps) {
    ++calls;
    last_prompt = prompt.text;
    last_steps.assign(steps.begin(), steps.end());
    std::vector<double> out;
    std::string prefix;
    for (const std::string& step : steps) {
      const auto it = table.find(prefix + "/" + step);
      out.push_back(it == table.end() ? 0.0 : it->second);
      prefix = step;  // the table depends on the previous step only
    }
    return out;
  }
};

// Proposes steps "a" and "b" under every node down to depth 2; depth-2 nodes are finished.
struct TwoSteps {
  struct State {};
  void expand(const Tree<State>& tree, std::span<const ExpandRequest> requests, Expansion<State>& out) {
    for (std::size_t i = 0; i < requests.size(); ++i) {
      if (tree[requests[i].leaf].depth >= 2) continue;
      const std::uint32_t have = tree[requests[i].leaf].num_children;
      if (have == 0 && requests[i].count >= 1) out.add(i, {}, 0.5, "a");
      if (have <= 1 && requests[i].count + have >= 2) out.add(i, {}, 0.5, "b");
    }
  }
  bool terminal(const Tree<State>& tree, NodeId id) { return tree[id].depth >= 2; }
};

struct WrongCount {
  std::vector<double> operator()(const Prompt&, std::span<const std::string> steps) {
    return std::vector<double>(steps.size() + 1, 0.5);
  }
};
struct NotFinite {
  std::vector<double> operator()(const Prompt&, std::span<const std::string> steps) {
    std::vector<double> out(steps.size(), 0.5);
    out.back() = std::numeric_limits<double>::quiet_NaN();
    return out;
  }
};

}  // namespace

TEST_CASE("ProcessRewardEvaluator aggregates the step scores of a node's path", "[search][process_reward]") {
  STATIC_REQUIRE(ProcessReward<TablePrm>);
  STATIC_REQUIRE(SearchProblem<ProcessRewardProblem<TwoSteps, TablePrm>>);
  STATIC_REQUIRE_FALSE(TurnBasedProblem<ProcessRewardProblem<TwoSteps, TablePrm>>);
  // Steps with turns keep them: a two-role search guided by a process reward.
  STATIC_REQUIRE(TurnBasedProblem<ProcessRewardProblem<games::GameProblem<games::TicTacToe>, TablePrm>>);
  Tree<TwoSteps::State> tree;
  const NodeId b = tree.add_child(0, {}, 0.5, "b");
  const NodeId ba = tree.add_child(b, {}, 0.5, "a");
  const std::vector<NodeId> nodes{0, b, ba};
  TablePrm prm;
  Prompt prompt;
  prompt.text = "question";
  auto values_for = [&](StepValue rule) {
    ProcessRewardEvaluator evaluator(prm, prompt, {.value = rule, .root_value = 0.25});
    std::vector<double> values(nodes.size(), -1.0);
    evaluator(tree, std::span<const NodeId>(nodes), std::span<double>(values));
    return values;
  };
  const auto last = values_for(StepValue::last);
  CHECK(last[0] == 0.25);  // the root: root_value, no call
  CHECK(last[1] == Approx(0.6));
  CHECK(last[2] == Approx(0.9));
  CHECK(prm.last_prompt == "question");
  CHECK(prm.last_steps == std::vector<std::string>{"b", "a"});
  CHECK(prm.calls == 2);
  CHECK(values_for(StepValue::min)[2] == Approx(0.6));
  CHECK(values_for(StepValue::mean)[2] == Approx(0.75));
  CHECK(values_for(StepValue::product)[2] == Approx(0.54));
}

TEST_CASE("beam search with a process reward through the adapter finds the product-optimal path", "[search][process_reward][beam]") {
  TwoSteps steps;
  TablePrm prm;
  auto path_of = [&](std::size_t width) {
    ProcessRewardProblem problem(steps, prm, Prompt{});
    Tree<TwoSteps::State> tree;
    const BeamResult result = beam_search(problem, tree, {.beam_width = width, .expansions_per_beam = 2,
                                                          .aggregation = ScoreAggregation::product});
    REQUIRE(!result.finished.empty());
    return std::pair{tree.path_text(result.finished[0], ""), tree[result.finished[0]].value};
  };
  const auto greedy = path_of(1);
  CHECK(greedy.first == "ab");
  CHECK(greedy.second == Approx(0.27));
  const auto wide = path_of(2);
  CHECK(wide.first == "ba");
  CHECK(wide.second == Approx(0.54));
}

TEST_CASE("MCTS guided by a process reward through the adapter", "[search][process_reward][mcts]") {
  TwoSteps steps;
  TablePrm prm;
  ProcessRewardProblem problem(steps, prm, Prompt{}, {.value = StepValue::product});
  Mcts mcts(problem, {.selection = Selection::uct, .c = 0.4, .backup = Backup::rest_mcts, .rollout_alpha = 0.5,
                      .simulations = 30, .branch = 2});
  mcts.search();
  const auto& tree = mcts.tree();
  CHECK(tree.size() == 7);  // the whole tree: root, 2 steps, 4 finished paths
  const auto best = best_terminal(tree);
  REQUIRE(best);
  CHECK(tree.path_text(*best, "") == "ba");
  CHECK(tree[*best].evaluation == Approx(0.54));
  for (const Node& n : tree.nodes()) {
    CHECK(n.value >= 0.0);
    CHECK(n.value <= 1.0);
  }
  Rng rng(0);
  const auto path = best_path(tree, OutputStrategy::max_value, rng);
  CHECK(tree.path_text(path.back(), "") == "ba");
}

TEST_CASE("the process-reward adapter rejects wrong counts, non-finite scores and a bad root value", "[search][process_reward][errors]") {
  Tree<TwoSteps::State> tree;
  const NodeId a = tree.add_child(0, {}, 0.5, "a");
  const NodeId aa = tree.add_child(a, {}, 0.5, "a");
  const std::vector<NodeId> nodes{aa};
  std::vector<double> values(1);
  WrongCount wrong;
  ProcessRewardEvaluator wrong_eval(wrong, Prompt{});
  CHECK_THROWS_WITH(wrong_eval(tree, std::span<const NodeId>(nodes), std::span<double>(values)),
                    Catch::StartsWith("ProcessRewardEvaluator: the process reward returned 3 scores for the 2 steps of node 2"));
  NotFinite nan;
  ProcessRewardEvaluator nan_eval(nan, Prompt{});
  CHECK_THROWS_WITH(nan_eval(tree, std::span<const NodeId>(nodes), std::span<double>(values)),
                    Catch::StartsWith("ProcessRewardEvaluator: the process reward scored step 1 of node 2 as nan, expected a finite score"));
  const std::vector<NodeId> stray{9};
  CHECK_THROWS_WITH(nan_eval(tree, std::span<const NodeId>(stray), std::span<double>(values)),
                    Catch::StartsWith("ProcessRewardEvaluator: expected a node id < 3, got 9"));
  CHECK_THROWS_WITH(ProcessRewardEvaluator(nan, Prompt{}, {.root_value = std::numeric_limits<double>::infinity()}),
                    Catch::StartsWith("ProcessRewardEvaluator: expected a finite root_value, got inf"));
  // Inside MCTS the error surfaces from search().
  TwoSteps steps;
  ProcessRewardProblem problem(steps, nan, Prompt{});
  Mcts mcts(problem, {.simulations = 4, .branch = 2});
  CHECK_THROWS_WITH(mcts.search(), Catch::StartsWith("ProcessRewardEvaluator: the process reward scored step 0 of node 1 as nan"));
}
