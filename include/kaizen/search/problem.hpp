// kaizen/search/problem.hpp - the SearchProblem concept: what MCTS and beam search need from a
// problem (a language model proposing reasoning steps, a value model or process reward scoring
// them), and Expansion, the buffer a problem writes proposed children into.
//
// The calls are batched: one `expand` serves every leaf selected in a round (so a sampler generates
// the next steps of many leaves in one batch) and one `evaluate` scores every node created in it.
// A problem with turns (a game, or a two-role search) also says whose turn it is (TurnBasedProblem);
// values are then per player: each node's value is from the view of the player who moved into it.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/search/tree.hpp>

namespace kaizen::search {

/// One leaf to expand and how many new children the search wants for it.
struct ExpandRequest {
  NodeId leaf = kNoNode;
  std::uint32_t count = 0;
};

/// Where `SearchProblem::expand` writes proposed children. Reused across rounds: clear() keeps the
/// capacity, so a steady-state search allocates nothing here.
template <class State>
class Expansion {
 public:
  /// A proposed child of requests[request].leaf.
  struct Child {
    std::size_t request = 0;
    State state{};
    double prior = 1.0;
    std::uint32_t text_offset = 0, text_length = 0, token_offset = 0, token_length = 0;
  };

  /// Proposes a child for requests[request] with its state, prior, step text and tokens.
  void add(std::size_t request, State state, double prior = 1.0, std::string_view text = {},
           std::span<const TokenId> tokens = {}) {
    children_.push_back(Child{request, std::move(state), prior, static_cast<std::uint32_t>(text_.size()),
                              static_cast<std::uint32_t>(text.size()), static_cast<std::uint32_t>(tokens_.size()),
                              static_cast<std::uint32_t>(tokens.size())});
    text_.append(text);
    tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  }
  /// Reserves room for `children` proposals with `text_bytes` of text and `tokens` tokens in total.
  void reserve(std::size_t children, std::size_t text_bytes = 0, std::size_t tokens = 0) {
    children_.reserve(children);
    text_.reserve(text_bytes);
    tokens_.reserve(tokens);
  }
  void clear() noexcept {
    children_.clear();
    text_.clear();
    tokens_.clear();
  }
  [[nodiscard]] std::span<const Child> children() const noexcept { return children_; }
  [[nodiscard]] std::span<Child> children() noexcept { return children_; }
  [[nodiscard]] std::string_view text(const Child& c) const noexcept {
    return std::string_view(text_).substr(c.text_offset, c.text_length);
  }
  [[nodiscard]] std::span<const TokenId> tokens(const Child& c) const noexcept {
    return std::span<const TokenId>(tokens_).subspan(c.token_offset, c.token_length);
  }

 private:
  std::vector<Child> children_;
  std::string text_;
  std::vector<TokenId> tokens_;
};

/// A search problem over states of type `P::State`.
///
/// Required expressions (p: P&, tree: const Tree<State>&, requests: std::span<const ExpandRequest>,
/// out: Expansion<State>&, nodes: std::span<const NodeId>, values: std::span<double>, id: NodeId):
/// @code
///   typename P::State                      // per-node payload (an empty struct is fine)
///   p.expand(tree, requests, out)          // propose children: out.add(i, state, prior, text, tokens)
///   p.evaluate(tree, nodes, values)        // values[i] = value of nodes[i] (value model / PRM / rollout)
///   p.terminal(tree, id) -> bool           // true when the node is a finished solution
/// @endcode
/// Contract the compiler cannot check: expand proposes at most what it can for each request (more
/// candidates than `count` are allowed: state merging then keeps the most distinct ones; fewer tells
/// the search the leaf is exhausted); evaluate writes one finite value per node (in [0, 1] when the
/// ReST-MCTS* rules are used) and scores terminal nodes with their outcome; results depend only on
/// the tree and the problem's own seeded state, so a search is reproducible.
template <class P>
concept SearchProblem = requires { typename P::State; } &&
    requires(P& p, const Tree<typename P::State>& tree, std::span<const ExpandRequest> requests,
             Expansion<typename P::State>& out, std::span<const NodeId> nodes, std::span<double> values, NodeId id) {
      p.expand(tree, requests, out);
      p.evaluate(tree, nodes, values);
      { p.terminal(tree, id) } -> std::convertible_to<bool>;
    };

/// A SearchProblem with turns: `p.to_move(tree, id) -> int`, the player (>= 0) to move at the
/// non-terminal node `id`. The search then stores in Node::player who moved into each node (the
/// player to move at its parent; kNobody for the root) and `evaluate` must score a node from THAT
/// player's view (a tic-tac-toe position just won by the mover scores 1). Problems without
/// `to_move` are single-agent: every node's player is 0 and values need no conversion.
template <class P>
concept TurnBasedProblem = SearchProblem<P> && requires(P& p, const Tree<typename P::State>& tree, NodeId id) {
  { p.to_move(tree, id) } -> std::convertible_to<std::int32_t>;
};

}  // namespace kaizen::search
