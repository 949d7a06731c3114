// kaizen/search/tree.hpp - the arena search tree shared by MCTS, beam search and trace export.
//
// Nodes live in one contiguous std::vector and refer to each other by 32-bit index (NodeId), never
// by pointer, so the tree can grow without invalidating references and can be copied, saved or
// walked with plain loops. Children form a singly linked sibling list (first_child / next_sibling)
// so progressive widening can add a child at any time. Step text and step tokens are appended to
// two shared pools and a node keeps (offset, length) into them, so a node owns no heap memory:
// after reserve(), adding nodes performs no allocation at all, which `reallocations()` counts
// (every growth of the node array or a pool increments it).
//
// Per node: visit count, in-flight (virtual-loss) count, value sum, the backed-up value estimate,
// the prior, the evaluation (value model / process reward score when the node was created), the
// player who moved into it (games; 0 in single-agent search), the step text and tokens, depth, and
// terminal / exhausted flags, plus a user `State` payload stored in a parallel array (use an empty
// struct when the path text is the whole state).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen::search {

/// Index of a node in its Tree.
using NodeId = std::uint32_t;
/// "No node": the root's parent, a leaf's first child, the last sibling's next sibling.
inline constexpr NodeId kNoNode = std::numeric_limits<NodeId>::max();
/// "Nobody moved here": Node::player of a game's root (every player counts it as the other side's).
inline constexpr std::int32_t kNobody = -1;

/// One node of the arena. Plain data; the Tree keeps the links consistent.
struct Node {
  NodeId parent = kNoNode;        ///< kNoNode for the root
  NodeId first_child = kNoNode;   ///< first child in insertion order
  NodeId last_child = kNoNode;    ///< last child (appends are O(1))
  NodeId next_sibling = kNoNode;  ///< next child of the same parent
  std::uint32_t num_children = 0;
  std::uint32_t depth = 0;          ///< root = 0
  std::uint32_t visits = 0;         ///< N: completed simulations through this node
  std::uint32_t in_flight = 0;      ///< selections of the current round not yet backed up (virtual loss)
  double value_sum = 0.0;           ///< W: sum of backed-up returns (mean backup)
  double value = 0.0;               ///< the value estimate selection uses (W/N, or the ReST-MCTS* V)
  double evaluation = std::numeric_limits<double>::quiet_NaN();  ///< value model / PRM score at creation
  double prior = 1.0;               ///< P(step | parent), for PUCT
  std::int32_t player = 0;          ///< who moved into this node: value and evaluation are from their view
  std::uint32_t text_offset = 0, text_length = 0;    ///< the step text in the tree's text pool
  std::uint32_t token_offset = 0, token_length = 0;  ///< the step tokens in the tree's token pool
  bool terminal = false;   ///< a finished solution (no expansion)
  bool exhausted = false;  ///< the problem offers no further children
};

/// The arena. `State` is a per-node user payload (copyable).
template <class State>
class Tree {
 public:
  /// A tree holding only the root, with its state.
  explicit Tree(State root_state = State{}) { reset(std::move(root_state)); }

  /// Drops every node but a fresh root; keeps the capacity (no allocation).
  void reset(State root_state = State{}) {
    nodes_.clear();
    states_.clear();
    text_.clear();
    tokens_.clear();
    push(Node{}, std::move(root_state));
  }

  /// Reserves room for `nodes` nodes, `text_bytes` of step text and `tokens` step tokens.
  void reserve(std::size_t nodes, std::size_t text_bytes = 0, std::size_t tokens = 0) {
    nodes_.reserve(nodes);
    states_.reserve(nodes);
    text_.reserve(text_bytes);
    tokens_.reserve(tokens);
  }

  /// Appends a child of `parent` with the given state, prior, step text and tokens; returns its id.
  /// Throws kaizen::Error on an unknown parent, a non-finite or negative prior, or when the tree
  /// would exceed 2^32 − 1 nodes.
  NodeId add_child(NodeId parent, State state, double prior = 1.0, std::string_view text = {},
                   std::span<const TokenId> tokens = {}) {
    KAIZEN_CHECK(parent < nodes_.size(), "Tree::add_child: expected a parent id < ", nodes_.size(), ", got ", parent);
    KAIZEN_CHECK(std::isfinite(prior) && prior >= 0.0, "Tree::add_child: expected a finite prior >= 0, got ", prior);
    KAIZEN_CHECK(nodes_.size() < kNoNode - 1, "Tree::add_child: the tree is full (", nodes_.size(), " nodes)");
    Node node;
    node.parent = parent;
    node.depth = nodes_[parent].depth + 1;
    node.prior = prior;
    node.text_offset = static_cast<std::uint32_t>(text_.size());
    node.text_length = static_cast<std::uint32_t>(text.size());
    node.token_offset = static_cast<std::uint32_t>(tokens_.size());
    node.token_length = static_cast<std::uint32_t>(tokens.size());
    grow_tracked(text_, text.size());
    text_.append(text);
    grow_tracked(tokens_, tokens.size());
    tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
    const NodeId id = push(node, std::move(state));
    Node& p = nodes_[parent];
    if (p.last_child == kNoNode) p.first_child = id;
    else nodes_[p.last_child].next_sibling = id;
    p.last_child = id;
    ++p.num_children;
    return id;
  }

  [[nodiscard]] static constexpr NodeId root() noexcept { return 0; }
  [[nodiscard]] std::size_t size() const noexcept { return nodes_.size(); }
  [[nodiscard]] const Node& operator[](NodeId id) const noexcept { return nodes_[id]; }
  [[nodiscard]] Node& operator[](NodeId id) noexcept { return nodes_[id]; }
  [[nodiscard]] const State& state(NodeId id) const noexcept { return states_[id]; }
  [[nodiscard]] State& state(NodeId id) noexcept { return states_[id]; }
  [[nodiscard]] std::string_view text(NodeId id) const noexcept {
    return std::string_view(text_).substr(nodes_[id].text_offset, nodes_[id].text_length);
  }
  [[nodiscard]] std::span<const TokenId> tokens(NodeId id) const noexcept {
    return std::span<const TokenId>(tokens_).subspan(nodes_[id].token_offset, nodes_[id].token_length);
  }
  [[nodiscard]] std::span<const Node> nodes() const noexcept { return nodes_; }

  /// Number of times the node array or a pool had to grow its storage (0 after a sufficient reserve).
  [[nodiscard]] std::size_t reallocations() const noexcept { return reallocations_; }

  /// Calls f(child) for each child of `id`, in insertion order.
  template <class F>
  void for_each_child(NodeId id, F&& f) const {
    for (NodeId c = nodes_[id].first_child; c != kNoNode; c = nodes_[c].next_sibling) f(c);
  }

  /// The node ids from the root to `id`, root first.
  [[nodiscard]] std::vector<NodeId> path(NodeId id) const {
    std::vector<NodeId> out(nodes_[id].depth + 1);
    for (std::size_t i = out.size(); i-- > 0; id = nodes_[id].parent) out[i] = id;
    return out;
  }

  /// The step texts from the root's first child to `id`, joined by `separator`.
  [[nodiscard]] std::string path_text(NodeId id, std::string_view separator = "\n") const {
    std::string out;
    for (NodeId n : path(id)) {
      if (n == root()) continue;
      if (!out.empty()) out.append(separator);
      out.append(text(n));
    }
    return out;
  }

 private:
  template <class Vec>
  void grow_tracked(Vec& v, std::size_t extra) {
    if (v.size() + extra > v.capacity()) ++reallocations_;
  }

  NodeId push(const Node& node, State state) {
    grow_tracked(nodes_, 1);
    grow_tracked(states_, 1);
    nodes_.push_back(node);
    states_.push_back(std::move(state));
    return static_cast<NodeId>(nodes_.size() - 1);
  }

  std::vector<Node> nodes_;
  std::vector<State> states_;
  std::string text_;
  std::vector<TokenId> tokens_;
  std::size_t reallocations_ = 0;
};

}  // namespace kaizen::search
