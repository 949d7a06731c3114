"""Tic-tac-toe as a kaizen.search problem (Python), mirroring search/games/tic_tac_toe.hpp and GameProblem:
a state is (x_mask, o_mask); expand proposes the legal moves in cell order with prior 1/n; evaluate scores a
state for the player who moved into it (win 1, draw 0.5, loss 0; unfinished: one seeded random play-out)."""
import random

LINES = [0o007, 0o070, 0o700, 0o111, 0o222, 0o444, 0o421, 0o124]


def winner(s):
    for p in (0, 1):
        if any(s[p] & line == line for line in LINES):
            return p
    return None


def occupied(s):
    return s[0] | s[1]


def to_move(s):
    return bin(occupied(s)).count("1") % 2


def over(s):
    return winner(s) is not None or occupied(s) == 0o777


def legal(s):
    return [] if over(s) else [c for c in range(9) if not occupied(s) >> c & 1]


def play(s, cell):
    p = to_move(s)
    return (s[0] | 1 << cell, s[1]) if p == 0 else (s[0], s[1] | 1 << cell)


def score(s, mover):
    w = winner(s)
    return 0.5 if w is None else (1.0 if w == mover else 0.0)


class TicTacToe:
    def __init__(self, seed=0):
        self.rng = random.Random(seed)
        self.batches = []

    def expand(self, states, counts, existing):
        out = []
        for s, count, have in zip(states, counts, existing):
            moves = legal(s)
            out.append([(play(s, m), 1.0 / len(moves)) for m in moves[have:have + count]])
        return out

    def evaluate(self, states):
        self.batches.append(len(states))
        values = []
        for s in states:
            mover = 1 - to_move(s)
            t = s
            while not over(t):
                t = play(t, self.rng.choice(legal(t)))
            values.append(score(t, mover))
        return values

    def is_terminal(self, s):
        return over(s)

    def to_move(self, s):
        return to_move(s)


def cells(mask):
    return [c for c in range(9) if mask >> c & 1]


def state_of(x_cells, o_cells):
    return (sum(1 << c for c in x_cells), sum(1 << c for c in o_cells))
