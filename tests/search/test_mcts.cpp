#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/search/mcts.hpp>
#include <kaizen/search/merge.hpp>
#include <kaizen/search/problem.hpp>
#include <kaizen/search/tree.hpp>

// Heap allocations so far (alloc_counter.cpp replaces the global operator new to count them).
std::size_t heap_allocations() noexcept;

using namespace kaizen;
using namespace kaizen::search;
using Catch::Matchers::Equals;

namespace {

// A hidden bit string of length `depth`; a terminal state scores the fraction of bits it matches,
// every other state scores `prior_value` (an uninformative evaluator), so only search finds the
// target. Children: bit 0 then bit 1, in the order the search asks for them (widening-friendly).
struct BitString {
  struct State {
    std::uint32_t bits = 0;
    std::uint32_t depth = 0;
  };
  std::uint32_t depth = 6;
  std::uint32_t target = 0b101101;
  double prior_value = 0.5;
  std::vector<std::vector<NodeId>> expand_batches;  // leaves of each expand call (when recording)
  bool record = false;

  void expand(const Tree<State>& tree, std::span<const ExpandRequest> requests, Expansion<State>& out) {
    if (record) {
      expand_batches.emplace_back();
      for (const auto& r : requests) expand_batches.back().push_back(r.leaf);
    }
    for (std::size_t i = 0; i < requests.size(); ++i) {
      const State& s = tree.state(requests[i].leaf);
      const std::uint32_t have = tree[requests[i].leaf].num_children;
      for (std::uint32_t bit = have; bit < 2 && bit < have + requests[i].count; ++bit)
        out.add(i, State{(s.bits << 1U) | bit, s.depth + 1}, 0.5);
    }
  }
  void evaluate(const Tree<State>& tree, std::span<const NodeId> nodes, std::span<double> values) {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const State& s = tree.state(nodes[i]);
      if (s.depth < depth) {
        values[i] = prior_value;
        continue;
      }
      const auto matching = depth - static_cast<std::uint32_t>(__builtin_popcount(s.bits ^ target));
      values[i] = static_cast<double>(matching) / static_cast<double>(depth);
    }
  }
  bool terminal(const Tree<State>& tree, NodeId id) { return tree.state(id).depth >= depth; }
};

// The least a type must provide to be a SearchProblem, and a near miss (evaluate is not batched).
struct SearchProblemArchetype {
  struct State {};
  void expand(const Tree<State>&, std::span<const ExpandRequest>, Expansion<State>&) {}
  void evaluate(const Tree<State>&, std::span<const NodeId>, std::span<double>) {}
  bool terminal(const Tree<State>&, NodeId) { return true; }
};
struct SearchProblemNearMiss {
  struct State {};
  void expand(const Tree<State>&, std::span<const ExpandRequest>, Expansion<State>&) {}
  double evaluate(const Tree<State>&, NodeId) { return 0.0; }
  bool terminal(const Tree<State>&, NodeId) { return true; }
};

std::uint32_t path_bits(const Tree<BitString::State>& tree, const std::vector<NodeId>& path) {
  return tree.state(path.back()).bits;
}

}  // namespace

TEST_CASE("SearchProblem accepts its archetype and rejects a near miss", "[search][concepts]") {
  STATIC_REQUIRE(SearchProblem<SearchProblemArchetype>);
  STATIC_REQUIRE(SearchProblem<BitString>);
  STATIC_REQUIRE_FALSE(SearchProblem<SearchProblemNearMiss>);
  STATIC_REQUIRE_FALSE(SearchProblem<int>);
}

TEST_CASE("the arena tree links children by index and pools step text and tokens", "[search][tree]") {
  Tree<int> tree(7);
  const NodeId a = tree.add_child(Tree<int>::root(), 1, 0.25, "step a", std::vector<TokenId>{1, 2});
  const NodeId b = tree.add_child(Tree<int>::root(), 2, 0.75, "step b");
  const NodeId c = tree.add_child(a, 3, 1.0, "step c", std::vector<TokenId>{3});
  CHECK(tree.size() == 4);
  CHECK(tree[Tree<int>::root()].num_children == 2);
  CHECK(tree[c].depth == 2);
  CHECK(tree[c].parent == a);
  CHECK(tree.text(b) == "step b");
  CHECK(std::vector<TokenId>(tree.tokens(a).begin(), tree.tokens(a).end()) == std::vector<TokenId>{1, 2});
  CHECK(tree.tokens(b).empty());
  CHECK(tree.state(c) == 3);
  CHECK(tree.path(c) == std::vector<NodeId>{0, a, c});
  CHECK(tree.path_text(c) == "step a\nstep c");
  std::vector<NodeId> children;
  tree.for_each_child(Tree<int>::root(), [&](NodeId id) { children.push_back(id); });
  CHECK(children == std::vector<NodeId>{a, b});

  tree.reset(0);
  tree.reserve(1000, 10000, 1000);
  const std::size_t before = tree.reallocations();
  for (int i = 0; i < 999; ++i) tree.add_child(static_cast<NodeId>(i / 4), i, 1.0, "abcdefghij", std::vector<TokenId>{1});
  CHECK(tree.reallocations() == before);  // reserved: no growth
  tree.add_child(0, 0, 1.0, "x");
  CHECK(tree.reallocations() > before);  // the 1001st node grows the arena

  CHECK_THROWS_WITH(tree.add_child(5000, 0), Catch::StartsWith("Tree::add_child: expected a parent id < 1001, got 5000"));
  CHECK_THROWS_WITH(tree.add_child(0, 0, std::numeric_limits<double>::quiet_NaN()),
                    Catch::StartsWith("Tree::add_child: expected a finite prior >= 0, got nan"));
}

TEST_CASE("ReST-MCTS* selection and backup oracles", "[search][mcts][rest_mcts]") {
  CHECK(uct_score(0.5, 4.0, 1.0, 0.4, 0.8) == Approx(1.1660).epsilon(1e-4));
  CHECK(uct_score(0.3, 4.0, 0.0, 0.4, 0.8) == Approx(1.1));  // unvisited: V + INF
  const std::vector<std::pair<double, double>> children{{1.0, 1.0}, {0.0, 3.0}};
  CHECK(visit_weighted_mean(children) == Approx(0.25));
  const std::vector<std::pair<double, double>> unvisited{{1.0, 0.0}};
  CHECK(visit_weighted_mean(unvisited) == std::nullopt);
  CHECK(puct_score(0.5, 0.25, 16.0, 1.0, 2.0) == Approx(0.5 + 2.0 * 0.25 * 4.0 / 2.0));
}

TEST_CASE("MCTS finds the hidden optimum with PUCT and mean backup", "[search][mcts]") {
  BitString problem;
  Mcts mcts(problem, {.selection = Selection::puct, .c = 1.0, .simulations = 1500, .leaves_per_round = 8, .branch = 2,
                      .seed = 1});
  const SearchStats stats = mcts.search();
  CHECK(stats.simulations == 1500);
  CHECK(stats.expand_calls <= stats.rounds);
  CHECK(stats.evaluate_calls <= stats.rounds + 1);
  const auto& tree = mcts.tree();
  CHECK(tree[Tree<BitString::State>::root()].visits == 1500);
  Rng rng(0);
  const auto path = best_path(tree, OutputStrategy::most_visited, rng);
  REQUIRE(path.size() == 7);
  CHECK(path_bits(tree, path) == problem.target);
  const auto best = best_terminal(tree);
  REQUIRE(best);
  CHECK(tree.state(*best).bits == problem.target);
  CHECK(tree[*best].value == 1.0);
  // Mean backup invariant: Q = W / N on every visited node; no selection left in flight.
  for (const Node& n : tree.nodes()) {
    CHECK(n.in_flight == 0);
    if (n.visits > 0) CHECK(n.value == Approx(n.value_sum / n.visits));
  }
}

TEST_CASE("MCTS with ReST-MCTS* rules reaches the end gate and keeps the weighted-mean invariant", "[search][mcts][rest_mcts]") {
  BitString problem;
  problem.prior_value = 0.3;
  Mcts mcts(problem, {.selection = Selection::uct, .c = 0.4, .unvisited_bonus = 0.8, .backup = Backup::rest_mcts,
                      .rollout_alpha = 0.5, .simulations = 3000, .leaves_per_round = 4, .branch = 2,
                      .end_gate = 0.9, .seed = 2});
  const SearchStats stats = mcts.search();
  REQUIRE(stats.solution);
  CHECK(stats.simulations < 3000);
  const auto& tree = mcts.tree();
  CHECK(tree.state(*stats.solution).bits == problem.target);
  for (NodeId id = 0; id < tree.size(); ++id) {
    std::vector<std::pair<double, double>> children;
    tree.for_each_child(id, [&](NodeId c) { children.emplace_back(tree[c].value, tree[c].visits); });
    if (const auto mean = visit_weighted_mean(children)) CHECK(tree[id].value == Approx(*mean));
    CHECK(tree[id].value >= 0.0);
    CHECK(tree[id].value <= 1.0);
  }
}

TEST_CASE("MCTS with progressive widening and max-value output finds the optimum", "[search][mcts][widening]") {
  BitString problem;
  Mcts mcts(problem, {.selection = Selection::uct, .c = 0.7, .simulations = 2000, .leaves_per_round = 2,
                      .widening_k = 1.0, .widening_alpha = 0.5, .seed = 3});
  mcts.search();
  const auto& tree = mcts.tree();
  for (const Node& n : tree.nodes()) {
    // Children added only while fewer than ceil(k (N+1)^alpha) existed at the time.
    CHECK(n.num_children <= std::max(1.0, std::ceil(std::sqrt(static_cast<double>(n.visits) + 1.0))));
  }
  Rng rng(0);
  CHECK(path_bits(tree, best_path(tree, OutputStrategy::max_value, rng)) == problem.target);
}

TEST_CASE("virtual loss spreads one round's selections over distinct leaves", "[search][mcts][virtual_loss]") {
  // A root with 8 children (depth-1 problem of 3 bits: branch 8 via a wide problem).
  struct Wide {
    struct State {
      int id = 0;
    };
    std::vector<std::vector<NodeId>> batches;
    void expand(const Tree<State>& tree, std::span<const ExpandRequest> requests, Expansion<State>& out) {
      batches.emplace_back();
      for (std::size_t i = 0; i < requests.size(); ++i) {
        batches.back().push_back(requests[i].leaf);
        for (std::uint32_t c = 0; c < requests[i].count; ++c) out.add(i, State{tree.state(requests[i].leaf).id * 10 + 1}, 0.125);
      }
    }
    void evaluate(const Tree<State>&, std::span<const NodeId>, std::span<double> values) {
      for (double& v : values) v = 0.5;
    }
    bool terminal(const Tree<State>&, NodeId) { return false; }
  };
  Wide problem;
  Mcts mcts(problem, {.simulations = 9, .leaves_per_round = 8, .branch = 8});
  mcts.search();
  REQUIRE(problem.batches.size() == 2);
  CHECK(problem.batches[0] == std::vector<NodeId>{0});  // round 1: only the root exists
  const std::set<NodeId> distinct(problem.batches[1].begin(), problem.batches[1].end());
  CHECK(problem.batches[1].size() == 8);                 // round 2: 8 leaves in one expand call
  CHECK(distinct.size() == 8);
}

TEST_CASE("the search loop allocates nothing after reserve", "[search][mcts][allocation]") {
  BitString problem;
  problem.depth = 16;
  problem.target = 0xBEEF;
  Mcts mcts(problem, {.simulations = 64, .leaves_per_round = 8, .branch = 2});
  mcts.reserve(200000);
  mcts.search();  // warm-up: the round buffers reach their steady size
  const std::size_t reallocations = mcts.tree().reallocations();
  const std::size_t nodes_before = mcts.tree().size();
  const std::size_t before = heap_allocations();
  for (int i = 0; i < 20; ++i) mcts.search();
  const std::size_t allocations = heap_allocations() - before;
  CHECK(mcts.tree().size() > nodes_before + 1000);  // thousands of nodes were added ...
  CHECK(allocations == 0);                           // ... without one heap allocation
  CHECK(mcts.tree().reallocations() == reallocations);
  // The counter does count: building a long path text allocates.
  const std::size_t probe_before = heap_allocations();
  const std::string text = std::string(64, 'x') + mcts.tree().path_text(static_cast<NodeId>(mcts.tree().size() - 1));
  CHECK(heap_allocations() > probe_before);
  CHECK(text.size() >= 64);
}

TEST_CASE("Dirichlet root noise perturbs root priors reproducibly", "[search][mcts][noise]") {
  auto root_priors = [](std::uint64_t seed, double alpha) {
    BitString problem;
    Mcts mcts(problem, {.simulations = 1, .branch = 2, .dirichlet_alpha = alpha, .dirichlet_epsilon = 0.5, .seed = seed});
    mcts.search();
    std::vector<double> priors;
    mcts.tree().for_each_child(0, [&](NodeId c) { priors.push_back(mcts.tree()[c].prior); });
    return priors;
  };
  const auto plain = root_priors(1, 0.0);
  CHECK(plain == std::vector<double>{0.5, 0.5});
  const auto a = root_priors(1, 0.3);
  const auto b = root_priors(1, 0.3);
  const auto c = root_priors(2, 0.3);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a != plain);
  CHECK(a[0] + a[1] == Approx(1.0));  // (1-eps) * 1 + eps * 1
  CHECK(a[0] >= 0.25);                // (1-eps) * 0.5 lower bound
}

TEST_CASE("state merging keeps distinct steps and pools the priors of equivalent ones", "[search][mcts][merge]") {
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("", "abc") == 3);
  CHECK(edit_distance("same", "same") == 0);
  // AlphaLLM oracle: never keep a step identical to a sibling when a different candidate exists.
  const std::vector<std::string_view> candidates{"x = 1", "x = 1", "y = 2"};
  const std::vector<std::string_view> siblings{"x = 1"};
  const DiverseChoice one = diverse_subset(candidates, siblings, 1, 0);
  CHECK(one.kept == std::vector<std::size_t>{2});
  CHECK(one.dropped == std::vector<std::size_t>{0, 1});
  CHECK(one.merged_sibling == std::vector<std::size_t>{0, 0});
  CHECK(one.distance == std::vector<std::size_t>{0, 0});
  const DiverseChoice none = diverse_subset(std::vector<std::string_view>{"a", "a"}, siblings, 2, 0);
  CHECK(none.kept == std::vector<std::size_t>{0});  // the second "a" is equivalent to the first
  CHECK(none.merged_candidate == std::vector<std::size_t>{0});
  // Importance-based width oracle: Q = {0, 0.5, 1}, spread 0.5.
  const std::vector<double> q{0.0, 0.5, 1.0};
  CHECK(importance_width(q, 3, 2.0) == 3);
  CHECK(importance_width(q, 3, 10.0) == 5);
  CHECK(importance_width(q, 3, 100.0) == 10);
  CHECK_THROWS_WITH(importance_width(q, 3, -1.0), Catch::StartsWith("importance_width: expected a finite width_factor >= 0"));

  struct Paraphrases {
    struct State {};
    void expand(const Tree<State>&, std::span<const ExpandRequest> requests, Expansion<State>& out) {
      for (std::size_t i = 0; i < requests.size(); ++i) {
        out.add(i, {}, 0.4, "add 2 to both sides");
        out.add(i, {}, 0.3, "add 2 to both sides.");
        out.add(i, {}, 0.2, "divide by 3");
        out.add(i, {}, 0.1, "divide by 3 ");
      }
    }
    void evaluate(const Tree<State>&, std::span<const NodeId>, std::span<double> values) {
      for (double& v : values) v = 0.5;
    }
    bool terminal(const Tree<State>&, NodeId id) { return id != 0; }
  };
  Paraphrases problem;
  Mcts mcts(problem, {.simulations = 1, .branch = 4, .merge = {.enabled = true, .max_edit_distance = 2}});
  const SearchStats stats = mcts.search();
  const auto& tree = mcts.tree();
  CHECK(stats.merged == 2);
  REQUIRE(tree[0].num_children == 2);
  std::vector<std::string> texts;
  std::vector<double> priors;
  tree.for_each_child(0, [&](NodeId c) {
    texts.emplace_back(tree.text(c));
    priors.push_back(tree[c].prior);
  });
  CHECK(texts == std::vector<std::string>{"add 2 to both sides", "divide by 3"});
  CHECK(priors[0] == Approx(0.7));
  CHECK(priors[1] == Approx(0.3));
}

TEST_CASE("best_path output strategies on a hand-built tree", "[search][mcts][output]") {
  Tree<int> tree;
  const NodeId a = tree.add_child(0, 1), b = tree.add_child(0, 2), c = tree.add_child(0, 3);
  tree[a].visits = 10, tree[a].value = 0.2;
  tree[b].visits = 30, tree[b].value = 0.4;
  tree[c].visits = 0, tree[c].value = 0.9;  // unvisited: ignored by max_value while others are visited
  const NodeId b1 = tree.add_child(b, 4);
  tree[b1].visits = 5, tree[b1].value = 0.6;
  Rng rng(5);
  CHECK(best_path(tree, OutputStrategy::most_visited, rng) == std::vector<NodeId>{0, b, b1});
  CHECK(best_path(tree, OutputStrategy::max_value, rng) == std::vector<NodeId>{0, b, b1});
  tree[a].value = 0.5;
  CHECK(best_path(tree, OutputStrategy::max_value, rng) == std::vector<NodeId>{0, a});
  int picked_a = 0;
  for (int i = 0; i < 4000; ++i) picked_a += best_path(tree, OutputStrategy::sampled, rng)[1] == a ? 1 : 0;
  CHECK(picked_a / 4000.0 == Approx(0.25).margin(0.03));  // 10 / (10 + 30)
  int picked_a_cold = 0;
  for (int i = 0; i < 4000; ++i) picked_a_cold += best_path(tree, OutputStrategy::sampled, rng, 0.5)[1] == a ? 1 : 0;
  CHECK(picked_a_cold / 4000.0 == Approx(0.1).margin(0.03));  // 100 / (100 + 900)
  CHECK_THROWS_WITH(best_path(tree, OutputStrategy::sampled, rng, 0.0),
                    Catch::StartsWith("best_path: expected a positive finite temperature, got 0"));
  CHECK(best_terminal(tree) == std::nullopt);
  tree[c].terminal = true;
  CHECK(best_terminal(tree) == c);
}

TEST_CASE("MCTS rejects zero budgets, bad options and NaN evaluations", "[search][mcts][errors]") {
  BitString problem;
  CHECK_THROWS_WITH(Mcts(problem, {.simulations = 0}), Catch::StartsWith("MctsOptions: expected simulations > 0, got 0"));
  CHECK_THROWS_WITH(Mcts(problem, {.leaves_per_round = 0}),
                    Catch::StartsWith("MctsOptions: expected leaves_per_round > 0, got 0"));
  CHECK_THROWS_WITH(Mcts(problem, {.branch = 0}), Catch::StartsWith("MctsOptions: expected branch > 0, got 0"));
  CHECK_THROWS_WITH(Mcts(problem, {.c = std::numeric_limits<double>::quiet_NaN()}),
                    Catch::StartsWith("MctsOptions: expected a finite c >= 0, got nan"));
  CHECK_THROWS_WITH(Mcts(problem, {.rollout_alpha = 1.5}), Catch::StartsWith("MctsOptions: expected rollout_alpha in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(Mcts(problem, {.widening_alpha = 0.0}),
                    Catch::StartsWith("MctsOptions: expected widening_alpha in (0, 1], got 0"));
  CHECK_THROWS_WITH(Mcts(problem, {.dirichlet_epsilon = 2.0}),
                    Catch::StartsWith("MctsOptions: expected dirichlet_epsilon in [0, 1], got 2"));
  CHECK_THROWS_WITH(Mcts(problem, {.end_gate = std::numeric_limits<double>::infinity()}),
                    Catch::StartsWith("MctsOptions: expected a finite end_gate, got inf"));
  problem.prior_value = std::numeric_limits<double>::quiet_NaN();
  Mcts nan_search(problem, {});
  CHECK_THROWS_WITH(nan_search.search(), Catch::StartsWith("Mcts: the problem evaluated node 0 to nan, expected a finite value"));
  struct Stray {
    struct State {};
    void expand(const Tree<State>&, std::span<const ExpandRequest>, Expansion<State>& out) { out.add(3, {}); }
    void evaluate(const Tree<State>&, std::span<const NodeId>, std::span<double> values) {
      for (double& v : values) v = 0.0;
    }
    bool terminal(const Tree<State>&, NodeId) { return false; }
  };
  Stray stray;
  Mcts stray_search(stray, {});
  CHECK_THROWS_WITH(stray_search.search(), Catch::StartsWith("Mcts: the problem proposed a child for request 3 but only 1 were made"));
}

TEST_CASE("MCTS stops at max_nodes and marks dead ends exhausted", "[search][mcts]") {
  BitString problem;
  problem.depth = 20;
  Mcts mcts(problem, {.simulations = 100000, .leaves_per_round = 4, .branch = 2, .max_nodes = 500});
  const SearchStats stats = mcts.search();
  CHECK(stats.hit_max_nodes);
  CHECK(mcts.tree().size() >= 500);
  CHECK(mcts.tree().size() < 500 + 4 * 2);

  struct DeadEnd {  // the root has one child, which has none
    struct State {
      int depth = 0;
    };
    void expand(const Tree<State>& tree, std::span<const ExpandRequest> requests, Expansion<State>& out) {
      for (std::size_t i = 0; i < requests.size(); ++i)
        if (tree.state(requests[i].leaf).depth == 0) out.add(i, State{1});
    }
    void evaluate(const Tree<State>&, std::span<const NodeId>, std::span<double> values) {
      for (double& v : values) v = 0.25;
    }
    bool terminal(const Tree<State>&, NodeId) { return false; }
  };
  DeadEnd dead;
  Mcts small(dead, {.simulations = 10});
  const SearchStats s = small.search();
  CHECK(s.simulations == 10);
  CHECK(small.tree().size() == 2);
  CHECK(small.tree()[1].exhausted);
  CHECK(small.tree()[0].value == Approx(0.25));
}
