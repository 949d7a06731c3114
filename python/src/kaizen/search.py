"""kaizen.search: MCTS (search/mcts.hpp) and beam search (search/beam.hpp) over a Python problem.

The problem is any object with the protocol of search/problem.hpp, batched (states are any Python objects):

    class Problem:
        def expand(self, states, counts, existing):   # one list per state of (child, prior) tuples
            ...                                      # (counts[i] wanted; existing[i] children it already has;
                                                     #  fewer than asked marks the leaf exhausted)
        def evaluate(self, states):                  # one finite float per state, e.g. a value model's batch
            ...
        def is_terminal(self, state):                # a finished solution / game over
            ...
        def to_move(self, state):                    # optional: a turn-based (two-player) problem; evaluate then
            ...                                      # scores a state for the player who moved into it

    result = kaizen.search.mcts(problem, root_state, simulations=200, leaves_per_round=8)
    result["best_path"]       # list of node dicts (state, visits, value, evaluation, prior, depth, terminal, ...)
    result["root_children"]   # the root's children (visit counts: the policy target)

A Python exception raised in a callback propagates out of the search unchanged. Bad options raise ValueError
with kaizen's message.
"""
from . import _search

__all__ = ["mcts", "beam_search"]


def mcts(problem, root, simulations=100, selection="puct", c=1.0, branch=3, leaves_per_round=1, evaluation="eager",
         unvisited="estimate", unvisited_bonus=0.8, zero_sum_total=1.0, end_gate=None, max_nodes=0,
         output="most_visited", seed=0):
    """Runs kaizen's MCTS from `root` (options as in MctsOptions: selection "puct"/"uct", evaluation "eager"
    (every new child) / "lazy" (selected leaves), unvisited "estimate"/"infinite", leaves_per_round leaves per
    batched expand/evaluate round, ...). Returns a dict: stats, best_path (by `output`: "most_visited" or
    "max_value"), root_children, solution (the terminal node that passed end_gate, or None), nodes."""
    return _search.mcts(problem, root, int(simulations), str(selection), float(c), int(branch), int(leaves_per_round),
                        str(evaluation), str(unvisited), float(unvisited_bonus), float(zero_sum_total),
                        None if end_gate is None else float(end_gate), int(max_nodes), str(output), int(seed))


def beam_search(problem, root, beam_width=4, expansions_per_beam=4, max_depth=10, aggregation="last"):
    """kaizen's beam search from `root`: keeps the beam_width best nodes per depth by path score (aggregation of
    the step scores evaluate gives: "last", "min", "mean", "product"). Returns a dict: finished and unfinished
    (node dicts sorted best first; a node's path score is its "value"), expand_calls, evaluate_calls, nodes."""
    return _search.beam_search(problem, root, int(beam_width), int(expansions_per_beam), int(max_depth),
                               str(aggregation))


def tictactoe_cpp(simulations=1000, leaves_per_round=1, seed=0):
    """The C++ peer of python/bench/bench_mcts.py: MCTS over search::games::TicTacToe; (simulations, seconds)."""
    return _search.tictactoe_cpp(int(simulations), int(leaves_per_round), int(seed))
