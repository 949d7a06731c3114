// MCTS simulations per second (select + batched expand + evaluate + backup) on a synthetic problem
// whose evaluator is free (a hash of the node id), at 10k and 1M nodes, with 1 and 16 leaves per
// round. The same run measures the bare arena: adding the same number of nodes with Tree::add_child
// and nothing else; `x_arena` = (time per created node in MCTS) / (time per bare insertion), i.e. what
// the search logic costs on top of storing the nodes.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <span>

#include <kaizen/search/mcts.hpp>

namespace {

using namespace kaizen::search;

// Branching factor 4, depth 64 (never terminal in these runs), values in [0, 1) from a hash.
struct FreeProblem {
  struct State {};
  void expand(const Tree<State>&, std::span<const ExpandRequest> requests, Expansion<State>& out) {
    for (std::size_t i = 0; i < requests.size(); ++i)
      for (std::uint32_t c = 0; c < requests[i].count; ++c) out.add(i, State{}, 0.25);
  }
  void evaluate(const Tree<State>&, std::span<const NodeId> nodes, std::span<double> values) {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      std::uint64_t h = (nodes[i] + 1) * 0x9E3779B97F4A7C15ULL;
      h ^= h >> 31;
      values[i] = static_cast<double>(h >> 11) * 0x1.0p-53;
    }
  }
  bool terminal(const Tree<State>& tree, NodeId id) { return tree[id].depth >= 64; }
};

double bare_insert_seconds(std::size_t nodes) {
  Tree<FreeProblem::State> tree;
  tree.reserve(nodes);
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 1; i < nodes; ++i) tree.add_child(static_cast<NodeId>((i - 1) / 4), {}, 0.25);
  benchmark::DoNotOptimize(tree.size());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void BM_mcts(benchmark::State& state) {
  const auto nodes = static_cast<std::size_t>(state.range(0));
  const auto leaves = static_cast<std::size_t>(state.range(1));
  std::size_t simulations = 0, created = 0;
  double search_seconds = 0.0;
  for (auto _ : state) {
    FreeProblem problem;
    Mcts mcts(problem, {.selection = Selection::puct, .c = 1.0, .simulations = 1U << 30U, .leaves_per_round = leaves,
                        .branch = 4, .max_nodes = nodes});
    mcts.reserve(nodes + leaves * 4);
    const auto start = std::chrono::steady_clock::now();
    const SearchStats stats = mcts.search();
    search_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    simulations += stats.simulations;
    created += mcts.tree().size();
    benchmark::DoNotOptimize(mcts.tree()[0].value);
  }
  const double bare = bare_insert_seconds(nodes) / static_cast<double>(nodes);
  state.counters["sims/s"] = benchmark::Counter(static_cast<double>(simulations), benchmark::Counter::kIsRate);
  state.counters["nodes"] = static_cast<double>(created) / static_cast<double>(state.iterations());
  state.counters["x_arena"] = (search_seconds / static_cast<double>(created)) / bare;
}

}  // namespace

BENCHMARK(BM_mcts)->Args({10000, 1})->Args({10000, 16})->Args({1000000, 1})->Args({1000000, 16})->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
