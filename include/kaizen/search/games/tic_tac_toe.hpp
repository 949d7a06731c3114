// kaizen/search/games/tic_tac_toe.hpp - tic-tac-toe as a Game (game_problem.hpp): a small test
// problem for two-player search. Player 0 (X) moves first; cells are numbered 0..8 row by row; a
// player wins with three marks in a row, column or diagonal; a full board without a line is a draw.
// Each player's marks are a 9-bit mask, so a move and a win test are a few bit operations.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include <kaizen/core/error.hpp>
#include <kaizen/search/games/game_problem.hpp>
#include <kaizen/search/tree.hpp>

namespace kaizen::search::games {

struct TicTacToe {
  using Move = std::int32_t;
  static constexpr std::size_t max_moves = 9;

  struct State {
    std::array<std::uint16_t, 2> marks{};  ///< marks[p]: bit i set = player p holds cell i
    std::int32_t last_move = -1;           ///< the cell of the move that led here (-1: none)
  };

  /// The 8 winning lines as cell masks.
  static constexpr std::array<std::uint16_t, 8> lines{0007, 0070, 0700, 0111, 0222, 0444, 0421, 0124};

  [[nodiscard]] static constexpr std::uint16_t occupied(const State& s) noexcept {
    return static_cast<std::uint16_t>(s.marks[0] | s.marks[1]);
  }
  [[nodiscard]] static constexpr std::int32_t to_move(const State& s) noexcept {
    return __builtin_popcount(occupied(s)) % 2;
  }
  [[nodiscard]] static std::size_t legal_moves(const State& s, std::array<Move, max_moves>& moves) noexcept {
    if (outcome(s).over) return 0;
    std::size_t n = 0;
    for (Move cell = 0; cell < 9; ++cell)
      if (!(occupied(s) >> cell & 1U)) moves[n++] = cell;
    return n;
  }
  /// The position after the player to move marks `cell`. Throws kaizen::Error on an occupied or
  /// out-of-range cell, or when the game is over.
  [[nodiscard]] static State play(const State& s, Move cell) {
    KAIZEN_CHECK(cell >= 0 && cell < 9, "TicTacToe::play: expected a cell in [0, 8], got ", cell);
    KAIZEN_CHECK(!(occupied(s) >> cell & 1U), "TicTacToe::play: cell ", cell, " is already taken");
    KAIZEN_CHECK(!outcome(s).over, "TicTacToe::play: the game is over");
    State next = s;
    next.marks[static_cast<std::size_t>(to_move(s))] |= static_cast<std::uint16_t>(1U << cell);
    next.last_move = cell;
    return next;
  }
  [[nodiscard]] static constexpr Outcome outcome(const State& s) noexcept {
    for (std::int32_t p = 0; p < 2; ++p)
      for (const std::uint16_t line : lines)
        if ((s.marks[static_cast<std::size_t>(p)] & line) == line) return {true, p};
    return {occupied(s) == 0777, kNobody};
  }
};

static_assert(Game<TicTacToe>);

}  // namespace kaizen::search::games
