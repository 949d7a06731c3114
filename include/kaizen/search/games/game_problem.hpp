// kaizen/search/games/game_problem.hpp - a two-player board game as a TurnBasedProblem, evaluated
// by random play-outs: the Game concept (the rules) and GameProblem<G> (the search problem).
//
// Game (static members, State a small value type):
//   G::max_moves                       most legal moves a position can have
//   G::legal_moves(s, moves) -> n      writes the n legal moves of s into moves[0..n)
//   G::play(s, move) -> State          the position after `move` (the player to move moves)
//   G::to_move(s) -> 0 or 1            the player to move in s
//   G::outcome(s) -> Outcome           over or not; the winner (kNobody for a draw)
//
// GameProblem<G>:
//   expand:   the legal moves of the leaf in G's order (those it has not proposed yet), uniform
//             prior 1/n each, no text;
//   evaluate: a node's value from the view of the player who moved into it (Node::player; for the
//             root, the player not to move): a finished game scores win 1, draw 0.5, loss 0; an
//             unfinished one the mean of that score over `rollouts` uniform random play-outs, drawn
//             with the problem's own seeded engine (so a search is reproducible);
//   terminal: the game is over; to_move: G::to_move.
// Values lie in [0, 1] with a draw at 0.5, so MctsOptions::zero_sum_total = 1 (the default).
//
// Reference: Kocsis & Szepesvári, "Bandit based Monte-Carlo Planning" (ECML 2006) - UCT with random
// play-outs; Browne et al., "A Survey of Monte Carlo Tree Search Methods" (2012).
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/search/problem.hpp>
#include <kaizen/search/tree.hpp>

namespace kaizen::search::games {

/// Whether a game is over and who won (kNobody: a draw, or nobody yet).
struct Outcome {
  bool over = false;
  std::int32_t winner = kNobody;
};

/// The rules of a two-player, perfect-information, deterministic board game (see the file comment).
template <class G>
concept Game = requires { typename G::State; typename G::Move; G::max_moves; } &&
    requires(const typename G::State& s, typename G::Move m, std::array<typename G::Move, G::max_moves>& moves) {
      { G::legal_moves(s, moves) } -> std::convertible_to<std::size_t>;
      { G::play(s, m) } -> std::same_as<typename G::State>;
      { G::to_move(s) } -> std::convertible_to<std::int32_t>;
      { G::outcome(s) } -> std::same_as<Outcome>;
    };

/// Score of a finished game for `player`: win 1, draw 0.5, loss 0.
[[nodiscard]] constexpr double score_for(const Outcome& o, std::int32_t player) noexcept {
  return o.winner == kNobody ? 0.5 : (o.winner == player ? 1.0 : 0.0);
}

/// Plays uniform random moves from `s` to the end; returns the final outcome.
template <Game G>
[[nodiscard]] Outcome random_playout(typename G::State s, Rng& rng) {
  std::array<typename G::Move, G::max_moves> moves{};
  for (Outcome o = G::outcome(s);; o = G::outcome(s)) {
    if (o.over) return o;
    const std::size_t n = G::legal_moves(s, moves);
    KAIZEN_CHECK(n > 0, "random_playout: a position that is not over has no legal move");
    s = G::play(s, moves[uniform_index(rng, n)]);
  }
}

/// A uniformly random legal move of an unfinished position.
template <Game G>
[[nodiscard]] typename G::Move random_move(const typename G::State& s, Rng& rng) {
  std::array<typename G::Move, G::max_moves> moves{};
  const std::size_t n = G::legal_moves(s, moves);
  KAIZEN_CHECK(n > 0, "random_move: the position has no legal move (the game is over)");
  return moves[uniform_index(rng, n)];
}

/// A Game as a TurnBasedProblem evaluated by random play-outs (see the file comment).
template <Game G>
class GameProblem {
 public:
  using State = typename G::State;

  /// `rollouts` random play-outs per evaluated unfinished position (> 0), drawn from Rng(seed).
  explicit GameProblem(std::uint64_t seed = 0, std::uint32_t rollouts = 1) : rng_(seed), rollouts_(rollouts) {
    KAIZEN_CHECK(rollouts > 0, "GameProblem: expected rollouts > 0, got 0");
  }

  void expand(const Tree<State>& tree, std::span<const ExpandRequest> requests, Expansion<State>& out) {
    std::array<typename G::Move, G::max_moves> moves{};
    for (std::size_t i = 0; i < requests.size(); ++i) {
      const State& s = tree.state(requests[i].leaf);
      const std::size_t n = G::legal_moves(s, moves);
      const std::size_t have = tree[requests[i].leaf].num_children;
      for (std::size_t k = have; k < n && k < have + requests[i].count; ++k)
        out.add(i, G::play(s, moves[k]), 1.0 / static_cast<double>(n));
    }
  }

  void evaluate(const Tree<State>& tree, std::span<const NodeId> nodes, std::span<double> values) {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const State& s = tree.state(nodes[i]);
      std::int32_t mover = tree[nodes[i]].player;
      if (mover == kNobody) mover = 1 - static_cast<std::int32_t>(G::to_move(s));  // the root
      const Outcome o = G::outcome(s);
      if (o.over) {
        values[i] = score_for(o, mover);
        continue;
      }
      double total = 0.0;
      for (std::uint32_t r = 0; r < rollouts_; ++r) total += score_for(random_playout<G>(s, rng_), mover);
      values[i] = total / static_cast<double>(rollouts_);
    }
  }

  [[nodiscard]] bool terminal(const Tree<State>& tree, NodeId id) const { return G::outcome(tree.state(id)).over; }
  [[nodiscard]] std::int32_t to_move(const Tree<State>& tree, NodeId id) const {
    return static_cast<std::int32_t>(G::to_move(tree.state(id)));
  }

  [[nodiscard]] Rng& rng() noexcept { return rng_; }

 private:
  Rng rng_;
  std::uint32_t rollouts_;
};

}  // namespace kaizen::search::games
