// MCTS on two-player games (search/games/): simulations per second on tic-tac-toe and connect-four
// from the empty board, 1000 simulations per search, with lazy evaluation (classic UCT: one random
// play-out of the selected leaf) and eager evaluation (PUCT: a play-out for every new child), and the
// cost of one simulation split between the tree and the game.
//
// Each iteration runs the same seeded search twice: plain, timed by the thread's CPU clock (sims/s
// and ns/sim come from it), and with every problem callback (expand, evaluate, terminal, to_move)
// timed by a wrapper with the wall clock, which gives the game's share of a simulation: (time in the
// callbacks − calls × the timer's cost inside an interval) / (whole timed search − calls × the
// timer's whole cost), both timer costs measured in the same run on an empty callback. Counters:
//   sims/s      simulations per CPU second of the plain search
//   ns/sim      its CPU time per simulation
//   game_ns     ns/sim × the game's share: time in the rules (move generation, play-outs, outcome)
//   tree_ns     ns/sim − game_ns: selection, expansion bookkeeping, backup, the arena
//   tree_share  tree_ns / ns/sim
//   x_flat      ns/sim ÷ the CPU time of one random play-out from the empty board with no tree (flat
//               Monte Carlo, measured in the same run): the kaizen/baseline ratio of a simulation.
//               Below 1 is possible: the search's play-outs start deeper, so they are shorter.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <span>

#include <kaizen/core/rng.hpp>
#include <kaizen/search/games/connect_four.hpp>
#include <kaizen/search/games/game_problem.hpp>
#include <kaizen/search/games/tic_tac_toe.hpp>
#include <kaizen/search/mcts.hpp>

namespace {

using namespace kaizen::search;
using namespace kaizen::search::games;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Times every callback of the wrapped problem.
template <class P>
struct Timed {
  using State = typename P::State;
  P& problem;
  double seconds = 0.0;
  std::size_t calls = 0;

  template <class F>
  decltype(auto) timed(F&& f) {
    const auto start = Clock::now();
    struct Stop {
      Timed& t;
      Clock::time_point start;
      ~Stop() {
        t.seconds += seconds_since(start);
        ++t.calls;
      }
    } stop{*this, start};
    return f();
  }
  void expand(const Tree<State>& tree, std::span<const ExpandRequest> requests, Expansion<State>& out) {
    timed([&] { problem.expand(tree, requests, out); });
  }
  void evaluate(const Tree<State>& tree, std::span<const NodeId> nodes, std::span<double> values) {
    timed([&] { problem.evaluate(tree, nodes, values); });
  }
  bool terminal(const Tree<State>& tree, NodeId id) {
    return timed([&] { return problem.terminal(tree, id); });
  }
  std::int32_t to_move(const Tree<State>& tree, NodeId id) {
    return timed([&] { return problem.to_move(tree, id); });
  }
};

// The timer's cost per timed call: inside the measured interval, and in all (clock reads, bookkeeping).
struct TimerCost {
  double inside = 0.0, total = 0.0;
};
TimerCost timer_cost() {
  struct Empty {
    using State = int;
    void expand(const Tree<State>&, std::span<const ExpandRequest>, Expansion<State>&) {}
    void evaluate(const Tree<State>&, std::span<const NodeId>, std::span<double>) {}
    bool terminal(const Tree<State>&, NodeId) { return false; }
  };
  Empty empty;
  Timed<Empty> timed{empty};
  const Tree<int> tree;
  constexpr int n = 200000;
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) benchmark::DoNotOptimize(timed.terminal(tree, 0));
  return {timed.seconds / n, seconds_since(start) / n};
}

template <Game G>
double flat_playout_seconds() {
  kaizen::Rng rng(1);
  constexpr int n = 20000;
  const double start = thread_cpu_seconds();
  for (int i = 0; i < n; ++i) benchmark::DoNotOptimize(random_playout<G>(typename G::State{}, rng).winner);
  return (thread_cpu_seconds() - start) / n;
}

MctsOptions options_for(bool lazy, std::uint32_t branch) {
  if (lazy)
    return {.selection = Selection::uct, .c = 1.0, .unvisited = Unvisited::infinite, .evaluation = Evaluation::lazy,
            .simulations = 1000, .branch = branch};
  return {.selection = Selection::puct, .c = 1.5, .simulations = 1000, .branch = branch};
}

template <Game G>
void BM_game(benchmark::State& state) {
  const bool lazy = state.range(0) != 0;
  const MctsOptions options = options_for(lazy, static_cast<std::uint32_t>(G::max_moves));
  std::size_t simulations = 0, timed_calls = 0;
  double plain_seconds = 0.0, game_seconds = 0.0, timed_seconds = 0.0;
  std::uint64_t seed = 0;
  for (auto _ : state) {
    ++seed;
    {
      GameProblem<G> problem(seed);
      Mcts mcts(problem, options);
      mcts.reserve(4096);
      const double start = thread_cpu_seconds();
      simulations += mcts.search().simulations;
      plain_seconds += thread_cpu_seconds() - start;
      benchmark::DoNotOptimize(mcts.tree()[0].value);
    }
    {
      GameProblem<G> problem(seed);
      Timed<GameProblem<G>> timed{problem};
      Mcts mcts(timed, options);
      mcts.reserve(4096);
      const auto start = Clock::now();
      mcts.search();
      timed_seconds += seconds_since(start);
      game_seconds += timed.seconds;
      timed_calls += timed.calls;
    }
  }
  const double sims = static_cast<double>(simulations);
  const double per_sim = plain_seconds / sims;
  const TimerCost cost = timer_cost();
  const double calls = static_cast<double>(timed_calls);
  const double share = std::clamp((game_seconds - calls * cost.inside) / (timed_seconds - calls * cost.total), 0.0, 1.0);
  const double game = share * per_sim;
  state.counters["sims/s"] = sims / plain_seconds;
  state.counters["ns/sim"] = per_sim * 1e9;
  state.counters["game_ns"] = game * 1e9;
  state.counters["tree_ns"] = (per_sim - game) * 1e9;
  state.counters["tree_share"] = (per_sim - game) / per_sim;
  state.counters["x_flat"] = per_sim / flat_playout_seconds<G>();
}

}  // namespace

BENCHMARK_TEMPLATE(BM_game, TicTacToe)->ArgName("lazy")->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_game, ConnectFour)->ArgName("lazy")->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
