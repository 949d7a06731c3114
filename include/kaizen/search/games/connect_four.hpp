// kaizen/search/games/connect_four.hpp - connect-four (7 columns x 6 rows) as a Game
// (game_problem.hpp): a mid-sized test problem for two-player search. Player 0 moves first; a move
// drops a disc into a column that is not full; four in a row horizontally, vertically or
// diagonally wins; a full board without one is a draw.
//
// Bitboards: bit 7·col + row (row 0 at the bottom; bit 6 of each column stays empty as a guard), one
// mask per player. A line of four in direction d (1 vertical, 7 horizontal, 6 and 8 diagonals) exists
// when m = b & (b >> d) has m & (m >> 2d) != 0 (Tromp's test).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include <kaizen/core/error.hpp>
#include <kaizen/search/games/game_problem.hpp>
#include <kaizen/search/tree.hpp>

namespace kaizen::search::games {

struct ConnectFour {
  using Move = std::int32_t;
  static constexpr std::size_t max_moves = 7;
  static constexpr std::int32_t columns = 7, rows = 6;

  struct State {
    std::array<std::uint64_t, 2> discs{};  ///< discs[p]: player p's discs
    std::array<std::uint8_t, 7> height{};  ///< discs in each column
    std::int32_t last_move = -1;           ///< the column of the move that led here (-1: none)
  };

  [[nodiscard]] static constexpr std::int32_t to_move(const State& s) noexcept {
    return __builtin_popcountll(s.discs[0] | s.discs[1]) % 2;
  }
  [[nodiscard]] static constexpr bool four(std::uint64_t b) noexcept {
    for (const int d : {1, 7, 6, 8}) {
      const std::uint64_t m = b & (b >> d);
      if (m & (m >> (2 * d))) return true;
    }
    return false;
  }
  [[nodiscard]] static constexpr Outcome outcome(const State& s) noexcept {
    for (std::int32_t p = 0; p < 2; ++p)
      if (four(s.discs[static_cast<std::size_t>(p)])) return {true, p};
    return {__builtin_popcountll(s.discs[0] | s.discs[1]) == columns * rows, kNobody};
  }
  [[nodiscard]] static std::size_t legal_moves(const State& s, std::array<Move, max_moves>& moves) noexcept {
    if (outcome(s).over) return 0;
    std::size_t n = 0;
    for (Move col = 0; col < columns; ++col)
      if (s.height[static_cast<std::size_t>(col)] < rows) moves[n++] = col;
    return n;
  }
  /// The position after the player to move drops a disc into `col`. Throws kaizen::Error on a full
  /// or out-of-range column, or when the game is over.
  [[nodiscard]] static State play(const State& s, Move col) {
    KAIZEN_CHECK(col >= 0 && col < columns, "ConnectFour::play: expected a column in [0, 6], got ", col);
    KAIZEN_CHECK(s.height[static_cast<std::size_t>(col)] < rows, "ConnectFour::play: column ", col, " is full");
    KAIZEN_CHECK(!outcome(s).over, "ConnectFour::play: the game is over");
    State next = s;
    const auto c = static_cast<std::size_t>(col);
    next.discs[static_cast<std::size_t>(to_move(s))] |= std::uint64_t{1} << (7 * col + next.height[c]);
    ++next.height[c];
    next.last_move = col;
    return next;
  }
};

static_assert(Game<ConnectFour>);

}  // namespace kaizen::search::games
