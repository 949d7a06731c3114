"""MCTS simulations per second: kaizen.search over a Python tic-tac-toe (python/tests/tictactoe.py: Python
expand / evaluate with one random play-out per evaluation) vs the same search over the C++ game
(search::games::TicTacToe + GameProblem, run from C++ in the same process). Same options: PUCT c = 1.5,
branch 9, eager evaluation, from the empty board.

    python/build/venv/bin/python python/bench/bench_mcts.py [simulations] [repeats]
"""
import os
import sys
import time

from kaizen import search

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from tictactoe import TicTacToe  # noqa: E402


def main():
    sims = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(f"MCTS over tic-tac-toe from the empty board, {sims} simulations, best of {repeats}")
    print(f"{'leaves/round':>12} {'python sims/s':>14} {'c++ sims/s':>12} {'c++/python':>11}")
    for leaves in (1, 16):
        best_py = best_cpp = 0.0
        for rep in range(repeats):
            t = time.perf_counter()
            r = search.mcts(TicTacToe(seed=rep), (0, 0), simulations=sims, c=1.5, branch=9, leaves_per_round=leaves,
                            seed=rep)
            best_py = max(best_py, r["stats"]["simulations"] / (time.perf_counter() - t))
            n, seconds = search.tictactoe_cpp(sims, leaves, rep)
            best_cpp = max(best_cpp, n / seconds)
        print(f"{leaves:>12} {best_py:>14.0f} {best_cpp:>12.0f} {best_cpp / best_py:>11.1f}")


if __name__ == "__main__":
    main()
