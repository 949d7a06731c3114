// python/csrc/search.cpp - the module kaizen._search behind kaizen.search: MCTS (search/mcts.hpp) and beam search
// (search/beam.hpp) over a Python object implementing the problem protocol of search/problem.hpp, with batched
// callbacks (pybind11, no LibTorch in this translation unit).
//
// Python protocol (states are any Python objects):
//   problem.expand(states, counts, existing) -> one list per state of (child state, prior) tuples
//       (SearchProblem::expand: states[i] is the leaf of request i, counts[i] the children wanted,
//        existing[i] how many it already has; fewer children than asked marks the leaf exhausted)
//   problem.evaluate(states) -> one finite float per state (SearchProblem::evaluate, batched)
//   problem.is_terminal(state) -> bool (SearchProblem::terminal)
//   problem.to_move(state) -> int, optional: a turn-based problem (TurnBasedProblem); evaluate then scores
//       each state from the view of the player who moved into it.
// A Python exception raised in a callback propagates out of the search as that exception (pybind11's
// error_already_set); the GIL is held throughout (the callbacks are Python).
#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/search/beam.hpp>
#include <kaizen/search/games/game_problem.hpp>
#include <kaizen/search/games/tic_tac_toe.hpp>
#include <kaizen/search/mcts.hpp>
#include <kaizen/search/problem.hpp>
#include <kaizen/search/tree.hpp>

namespace py = pybind11;

namespace kaizen::python {
namespace {

namespace ks = kaizen::search;
using PyState = py::object;

struct PyProblem {
  using State = PyState;
  py::object obj;

  void expand(const ks::Tree<State>& tree, std::span<const ks::ExpandRequest> requests, ks::Expansion<State>& out) {
    py::list states, counts, existing;
    for (const auto& r : requests) {
      states.append(tree.state(r.leaf));
      counts.append(r.count);
      existing.append(tree[r.leaf].num_children);
    }
    const py::object result = obj.attr("expand")(states, counts, existing);
    const py::list lists = py::list(result);
    KAIZEN_CHECK(lists.size() == requests.size(), "search: problem.expand returned ", lists.size(),
                 " lists of children for ", requests.size(), " states");
    for (std::size_t i = 0; i < requests.size(); ++i) {
      for (const py::handle child : lists[i]) {
        KAIZEN_CHECK(py::isinstance<py::tuple>(child) && py::len(child) == 2,
                     "search: problem.expand: expected each child as a (state, prior) tuple, got ",
                     std::string(py::str(child)), " for state ", i);
        const auto pair = py::reinterpret_borrow<py::tuple>(child);
        const auto prior = pair[1].cast<double>();
        KAIZEN_CHECK(std::isfinite(prior) && prior >= 0.0, "search: problem.expand gave a prior of ", prior,
                     " (expected finite and >= 0)");
        out.add(i, py::reinterpret_borrow<py::object>(pair[0]), prior);
      }
    }
  }

  void evaluate(const ks::Tree<State>& tree, std::span<const ks::NodeId> nodes, std::span<double> values) {
    py::list states;
    for (const ks::NodeId id : nodes) states.append(tree.state(id));
    const py::list result = py::list(obj.attr("evaluate")(states));
    KAIZEN_CHECK(result.size() == nodes.size(), "search: problem.evaluate returned ", result.size(),
                 " values for ", nodes.size(), " states");
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      values[i] = result[i].cast<double>();
      KAIZEN_CHECK(std::isfinite(values[i]), "search: problem.evaluate returned a non-finite value ", values[i],
                   " for state ", i);
    }
  }

  [[nodiscard]] bool terminal(const ks::Tree<State>& tree, ks::NodeId id) const {
    return obj.attr("is_terminal")(tree.state(id)).cast<bool>();
  }
};

struct PyTurnProblem : PyProblem {
  [[nodiscard]] std::int32_t to_move(const ks::Tree<State>& tree, ks::NodeId id) const {
    const auto p = obj.attr("to_move")(tree.state(id)).cast<std::int32_t>();
    KAIZEN_CHECK(p >= 0, "search: problem.to_move returned player ", p, " (expected >= 0)");
    return p;
  }
};

template <class E>
E enum_of(const std::string& what, const std::string& name, std::initializer_list<std::pair<const char*, E>> values) {
  std::string known;
  for (const auto& [n, v] : values) {
    if (name == n) return v;
    known += known.empty() ? std::string("'") + n + "'" : std::string(", '") + n + "'";
  }
  fail("search: expected ", what, " in ", known, ", got '", name, "'");
}

py::dict node_dict(const ks::Tree<PyState>& tree, ks::NodeId id) {
  const ks::Node& n = tree[id];
  py::dict d;
  d["id"] = id;
  d["state"] = tree.state(id);
  d["visits"] = n.visits;
  d["value"] = n.value;
  d["evaluation"] = n.evaluation;
  d["prior"] = n.prior;
  d["depth"] = n.depth;
  d["terminal"] = n.terminal;
  d["player"] = n.player;
  return d;
}

template <class P>
py::dict run_mcts(py::object problem, py::object root, const ks::MctsOptions& options, ks::OutputStrategy output) {
  P p{{problem}};
  ks::Mcts<P> mcts(p, options, root);
  const ks::SearchStats s = mcts.search();
  const auto& tree = mcts.tree();
  py::dict out;
  py::dict stats;
  stats["simulations"] = s.simulations;
  stats["rounds"] = s.rounds;
  stats["expand_calls"] = s.expand_calls;
  stats["evaluate_calls"] = s.evaluate_calls;
  stats["nodes_created"] = s.nodes_created;
  stats["hit_max_nodes"] = s.hit_max_nodes;
  out["stats"] = stats;
  out["solution"] = s.solution ? py::object(node_dict(tree, *s.solution)) : py::object(py::none());
  Rng rng(options.seed);
  py::list path;
  for (const ks::NodeId id : ks::best_path(tree, output, rng)) path.append(node_dict(tree, id));
  out["best_path"] = path;
  py::list children;
  for (ks::NodeId c = tree[ks::Tree<PyState>::root()].first_child; c != ks::kNoNode; c = tree[c].next_sibling)
    children.append(node_dict(tree, c));
  out["root_children"] = children;
  out["nodes"] = tree.size();
  return out;
}

py::dict mcts(py::object problem, py::object root, std::int64_t simulations, const std::string& selection, double c,
              std::int64_t branch, std::int64_t leaves_per_round, const std::string& evaluation,
              const std::string& unvisited, double unvisited_bonus, double zero_sum_total,
              std::optional<double> end_gate, std::int64_t max_nodes, const std::string& output, std::uint64_t seed) {
  KAIZEN_CHECK(simulations > 0 && branch > 0 && leaves_per_round > 0 && max_nodes >= 0,
               "search.mcts: expected simulations, branch and leaves_per_round > 0 and max_nodes >= 0, got ",
               simulations, ", ", branch, ", ", leaves_per_round, " and ", max_nodes);
  ks::MctsOptions o;
  o.selection = enum_of<ks::Selection>("selection", selection, {{"puct", ks::Selection::puct}, {"uct", ks::Selection::uct}});
  o.c = c;
  o.unvisited_bonus = unvisited_bonus;
  o.unvisited = enum_of<ks::Unvisited>("unvisited", unvisited,
                                       {{"estimate", ks::Unvisited::estimate}, {"infinite", ks::Unvisited::infinite}});
  o.evaluation = enum_of<ks::Evaluation>("evaluation", evaluation,
                                         {{"eager", ks::Evaluation::eager}, {"lazy", ks::Evaluation::lazy}});
  o.zero_sum_total = zero_sum_total;
  o.simulations = static_cast<std::size_t>(simulations);
  o.leaves_per_round = static_cast<std::size_t>(leaves_per_round);
  o.branch = static_cast<std::uint32_t>(branch);
  o.end_gate = end_gate;
  o.max_nodes = static_cast<std::size_t>(max_nodes);
  o.seed = seed;
  const auto out = enum_of<ks::OutputStrategy>(
      "output", output, {{"most_visited", ks::OutputStrategy::most_visited}, {"max_value", ks::OutputStrategy::max_value}});
  if (py::hasattr(problem, "to_move")) return run_mcts<PyTurnProblem>(problem, root, o, out);
  return run_mcts<PyProblem>(problem, root, o, out);
}

py::dict beam(py::object problem, py::object root, std::int64_t beam_width, std::int64_t expansions_per_beam,
              std::int64_t max_depth, const std::string& aggregation) {
  KAIZEN_CHECK(beam_width > 0 && expansions_per_beam > 0 && max_depth > 0,
               "search.beam_search: expected beam_width, expansions_per_beam and max_depth > 0, got ", beam_width,
               ", ", expansions_per_beam, " and ", max_depth);
  ks::BeamOptions o;
  o.beam_width = static_cast<std::size_t>(beam_width);
  o.expansions_per_beam = static_cast<std::uint32_t>(expansions_per_beam);
  o.max_depth = static_cast<std::size_t>(max_depth);
  o.aggregation = enum_of<ks::ScoreAggregation>(
      "aggregation", aggregation,
      {{"last", ks::ScoreAggregation::last}, {"min", ks::ScoreAggregation::min}, {"mean", ks::ScoreAggregation::mean},
       {"product", ks::ScoreAggregation::product}});
  PyProblem p{problem};
  ks::Tree<PyState> tree(root);
  const ks::BeamResult r = ks::beam_search(p, tree, o);
  py::dict out;
  py::list finished, unfinished;
  for (const ks::NodeId id : r.finished) finished.append(node_dict(tree, id));
  for (const ks::NodeId id : r.unfinished) unfinished.append(node_dict(tree, id));
  out["finished"] = finished;
  out["unfinished"] = unfinished;
  out["expand_calls"] = r.expand_calls;
  out["evaluate_calls"] = r.evaluate_calls;
  out["nodes"] = tree.size();
  return out;
}

/// The C++ peer of the benchmark: MCTS over search::games::TicTacToe (GameProblem, one random play-out per
/// evaluation) with the options the Python benchmark uses; returns (simulations, seconds).
py::tuple tictactoe_cpp(std::int64_t simulations, std::int64_t leaves_per_round, std::uint64_t seed) {
  ks::games::GameProblem<ks::games::TicTacToe> problem(seed);
  ks::MctsOptions o{.selection = ks::Selection::puct, .c = 1.5,
                    .simulations = static_cast<std::size_t>(simulations),
                    .leaves_per_round = static_cast<std::size_t>(leaves_per_round), .branch = 9, .seed = seed};
  const auto start = std::chrono::steady_clock::now();
  ks::Mcts mcts(problem, o);
  const auto s = mcts.search();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return py::make_tuple(s.simulations, seconds);
}

}  // namespace
}  // namespace kaizen::python

PYBIND11_MODULE(_search, m) {
  using namespace kaizen::python;
  m.doc() = "kaizen::search bound for Python (see the kaizen.search module for the documented API)";
  m.def("mcts", &mcts);
  m.def("beam_search", &beam);
  m.def("tictactoe_cpp", &tictactoe_cpp);
}
