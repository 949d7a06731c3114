"""kaizen.search: MCTS and beam search over Python problems with known answers, batched evaluator callbacks,
Python exceptions from callbacks, kaizen's messages on bad options."""
import os
import sys

import pytest

from kaizen import search

sys.path.insert(0, os.path.dirname(__file__))
from tictactoe import TicTacToe, cells, state_of  # noqa: E402


def best_move(result, root):
    child = result["best_path"][1]["state"]
    moved = (child[0] ^ root[0]) | (child[1] ^ root[1])
    return cells(moved)[0]


@pytest.mark.parametrize("leaves_per_round", [1, 8])
def test_mcts_takes_the_winning_move(leaves_per_round):
    # X (player 0) holds 0 and 1, O holds 3 and 4, X to move: cell 2 wins at once (cell 5 would lose the race)
    root = state_of([0, 1], [3, 4])
    problem = TicTacToe(seed=1)
    r = search.mcts(problem, root, simulations=400, c=1.5, branch=9, leaves_per_round=leaves_per_round, seed=3)
    assert best_move(r, root) == 2
    assert r["best_path"][1]["terminal"]
    assert r["stats"]["simulations"] >= 400
    visits = {cells((ch["state"][0] ^ root[0]))[0]: ch["visits"] for ch in r["root_children"]}
    assert max(visits, key=visits.get) == 2
    if leaves_per_round > 1:
        assert max(problem.batches) > 1  # the evaluator got batches


def test_mcts_blocks_the_opponent_lazy_uct():
    # X holds 0 and 4 (threatens 8), O holds 2, O to move: only 8 avoids the loss
    root = state_of([0, 4], [2])
    r = search.mcts(TicTacToe(seed=2), root, simulations=3000, selection="uct", c=1.0, branch=9,
                    evaluation="lazy", unvisited="infinite", seed=5)
    child = r["best_path"][1]["state"]
    assert cells(child[1] ^ root[1]) == [8]
    assert r["best_path"][1]["player"] == 1   # O moved into it


def test_mcts_empty_board_is_a_draw():
    # perfect play draws: the root's most visited child should score about 0.5 for X (not a loss or a win)
    r = search.mcts(TicTacToe(seed=4), state_of([], []), simulations=3000, c=1.5, branch=9, seed=1)
    top = max(r["root_children"], key=lambda ch: ch["visits"])
    assert 0.3 < top["value"] < 0.8


class Digits:
    """Single-agent: pick 3 digits in 0..4 (one per step); the score of a partial sum s after d digits is
    1 - |target - s - 2 (3 - d)| / 12 (on track when the remaining digits average 2); finished at 3 digits."""

    def __init__(self, target):
        self.target = target

    def expand(self, states, counts, existing):
        return [[(s + (d,), 0.2) for d in range(5)][have:have + c] for s, c, have in zip(states, counts, existing)]

    def evaluate(self, states):
        return [1 - abs(self.target - sum(s) - 2 * (3 - len(s))) / 12 for s in states]

    def is_terminal(self, s):
        return len(s) == 3


@pytest.mark.parametrize("aggregation", ["last", "min", "mean", "product"])
def test_beam_search_finds_the_target_sum(aggregation):
    r = search.beam_search(Digits(7), (), beam_width=3, expansions_per_beam=5, max_depth=3, aggregation=aggregation)
    best = r["finished"][0]
    assert sum(best["state"]) == 7 and len(best["state"]) == 3
    assert best["evaluation"] == pytest.approx(1.0)
    assert r["expand_calls"] == 3


def test_mcts_single_agent_finds_the_target_sum():
    r = search.mcts(Digits(12), (), simulations=600, branch=5, c=1.0, seed=0, output="max_value")
    assert sum(r["best_path"][-1]["state"]) == 12


class Exploding(Digits):
    def __init__(self, where):
        super().__init__(6)
        self.where = where

    def evaluate(self, states):
        if self.where == "evaluate" and any(len(s) == 2 for s in states):
            raise RuntimeError("boom from evaluate")
        return super().evaluate(states)

    def expand(self, states, counts, existing):
        if self.where == "expand":
            raise KeyError("boom from expand")
        if self.where == "wrong_count":
            return []
        return super().expand(states, counts, existing)

    def is_terminal(self, s):
        if self.where == "terminal" and len(s) == 1:
            raise ZeroDivisionError("boom from is_terminal")
        return super().is_terminal(s)


@pytest.mark.parametrize("where,error", [("evaluate", RuntimeError), ("expand", KeyError),
                                         ("terminal", ZeroDivisionError)])
def test_python_exceptions_propagate(where, error):
    with pytest.raises(error, match="boom"):
        search.mcts(Exploding(where), (), simulations=50, branch=5)
    with pytest.raises(error, match="boom"):
        search.beam_search(Exploding(where), (), beam_width=2, expansions_per_beam=5, max_depth=3)
    # the module is still usable afterwards
    assert search.mcts(Digits(6), (), simulations=20, branch=5)["stats"]["simulations"] >= 20


class Bare(Digits):
    def expand(self, states, counts, existing):
        return [[s + (1,)] for s in states]


@pytest.mark.parametrize("call,message", [
    (lambda: search.mcts(Exploding("wrong_count"), (), simulations=5), "problem.expand returned 0 lists"),
    (lambda: search.mcts(Bare(3), (), simulations=5), "expected each child as a (state, prior) tuple"),
    (lambda: search.mcts(Digits(3), (), selection="best"), "expected selection in 'puct', 'uct'"),
    (lambda: search.mcts(Digits(3), (), c=-1.0), "MctsOptions: expected a finite c >= 0"),
    (lambda: search.mcts(Digits(3), (), simulations=0), "search.mcts: expected simulations"),
    (lambda: search.beam_search(Digits(3), (), aggregation="max"), "expected aggregation in"),
    (lambda: search.beam_search(Digits(3), (), beam_width=0), "search.beam_search: expected beam_width"),
])
def test_bad_options_raise_kaizen_message(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value)


def test_non_finite_value_is_refused():
    class Nan(Digits):
        def evaluate(self, states):
            return [float("nan")] * len(states)

    with pytest.raises(ValueError, match="non-finite value"):
        search.mcts(Nan(3), (), simulations=5)
