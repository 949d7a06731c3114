// kaizen/search/mcts.hpp - Monte Carlo tree search over reasoning steps, generic over a
// SearchProblem, with batched leaf selection.
//
// Each round selects up to N leaves (virtual loss keeps the N paths apart), asks the problem to
// expand all of them in ONE call, evaluates in ONE call, and backs up N returns. What is evaluated:
//   Evaluation::eager (ReST-MCTS*): every new child when it is created (a PRM scores each step);
//   Evaluation::lazy  (AlphaZero, classic rollout MCTS): only a selected leaf, the first time it is
//                     reached; it is then expanded in the same round and its children wait,
//                     unevaluated, until selection reaches them.
//
// Players. For a TurnBasedProblem (problem.hpp) a node's value and evaluation are from the view of
// the player who moved into it (Node::player = to_move(parent); kNobody for the root), so selection
// at every node maximises the value of the player choosing there. A return G from player a's view
// counts for player b as G when a == b, else as zero_sum_total − G (two-player zero-sum; 1 for
// values in [0, 1] where a draw is 0.5, 0 for values in [−1, 1]). Single-agent problems have every
// player 0 and nothing is converted.
//
// Selection, from the root while the node is fully expanded, child maximising
//   PUCT (AlphaZero / AlphaLLM):  Q(c) + c_puct · P(c) · sqrt(N(s)) / (1 + N(c))
//   UCT  (ReST-MCTS*):            Q(c) + c · sqrt(2 ln N(s) / N(c));  unvisited: Q(c) + unvisited_bonus
// where Q(c) is the child's value estimate: once visited its backed-up value; unvisited, its
// evaluation (eager) or `first_play_value` (lazy; unset: the parent's value from the chooser's
// view). With Unvisited::infinite an unvisited child scores +∞ instead (ties: higher prior). Other
// ties go to the earliest child. (AlphaLLM's UCT, Q + c'·sqrt(ln N / n), is UCT with c = c'/√2.)
// Virtual loss: a child with v selections in flight counts as N(c)+v visits whose v pending returns
// are `virtual_loss_value`, i.e. Q_eff = (Q·N + v·virtual_loss_value)/(N + v), and its parent as
// N(s)+v_s, so later selections of the same round spread over other leaves.
// Expansion: a node is expanded when it has no children yet (`branch` are requested) or, with
// progressive widening, while it has fewer than ⌈k·(N+1)^α⌉ children (one more is requested per
// selection). A request answered with no child marks the node exhausted. Equivalent new steps can
// be merged (merge.hpp). Root noise: the priors of new root children become
// (1−ε)·P + ε·η, η ~ Dirichlet(α) drawn with kaizen::gamma_draw.
// Simulation return of a leaf L: G = (1−α_r)·v(L) + α_r·max_c v(c) over L's children when L was
// just expanded (ReST-MCTS*'s roll-out blend, eager only; α_r = 0 gives G = v(L); the max is taken
// from the view of the player to move at L, then converted to L's mover); a terminal L returns v(L).
// Backup along the path, every node N += 1 and (G converted to each node's player)
//   mean (AlphaZero / AlphaLLM):  W += G, Q = W / N
//   rest_mcts (ReST-MCTS*):       L: Q = G the first time (the blend), ancestors and re-visited
//                                 nodes: Q = Σ_c Q_c·N_c / Σ_c N_c over visited children (each Q_c
//                                 converted to the node's player).
// Stops after `simulations` returns, when a round starts with ≥ max_nodes nodes, or when a new
// terminal node's evaluation reaches `end_gate`.
// Output: best_path (most-visited, max-value or visit-sampled descent) and best_terminal.
//
// Scope: single-agent search or two-player zero-sum games (more players reduce to "me against the
// rest"), deterministic transitions (each step text is a state), no chance nodes.
//
// References:
//   Silver et al., "Mastering the game of Go without human knowledge" (2017) - PUCT, Dirichlet noise.
//   Couëtoux et al., "Continuous Upper Confidence Trees" (2011) - progressive widening.
//   Chaslot, Winands, van den Herik, "Parallel Monte-Carlo Tree Search" (2008) - virtual loss.
//   Zhang et al., "ReST-MCTS*" (2024, arXiv 2406.03816), github.com/THUDM/ReST-MCTS - UCT with
//     INF bonus, roll-out blend, visit-weighted backup, end gate.
//   Tian et al., "AlphaLLM" (2024, arXiv 2404.12253) - option-level MCTS, state merging.
//   OpenSpiel algorithms/mcts.h - the shape of this header.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/search/merge.hpp>
#include <kaizen/search/problem.hpp>
#include <kaizen/search/tree.hpp>

namespace kaizen::search {

/// The child-selection rule.
enum class Selection : std::uint8_t { puct, uct };
/// The value-backup rule.
enum class Backup : std::uint8_t { mean, rest_mcts };
/// Which nodes the problem's evaluate is called on.
enum class Evaluation : std::uint8_t {
  eager,  ///< every new child, when it is created (ReST-MCTS*: the PRM scores each proposed step)
  lazy,   ///< only a selected leaf, when first reached (AlphaZero; rollout evaluators)
};
/// How selection scores a child that has no visit yet.
enum class Unvisited : std::uint8_t {
  estimate,  ///< Q = its evaluation (eager) or first_play_value (lazy), + unvisited_bonus under UCT
  infinite,  ///< +∞: every child is tried once before any is revisited (ties: higher prior, earlier)
};
/// How best_path descends a finished tree.
enum class OutputStrategy : std::uint8_t {
  most_visited,  ///< the child with most visits (ties: higher value, then earlier)
  max_value,     ///< the visited child with the highest value (all children if none is visited)
  sampled,       ///< a child drawn with probability ∝ visits^(1/temperature)
};

/// MCTS options; designated initializers, e.g. {.selection = Selection::uct, .c = 0.4}. Every member
/// has a default member initializer, so any subset can be given without -Wmissing-field-initializers.
struct MctsOptions {
  Selection selection = Selection::puct;
  double c = 1.0;                     ///< c_puct, or the UCT constant (ReST-MCTS* uses 0.4)
  double unvisited_bonus = 0.8;       ///< UCT: score of an unvisited child = Q + this (ReST-MCTS* INF)
  Unvisited unvisited = Unvisited::estimate;  ///< or +∞ for unvisited children
  std::optional<double> first_play_value{};   ///< lazy: Q of an unevaluated child; unset = parent's Q
  Backup backup = Backup::mean;
  Evaluation evaluation = Evaluation::eager;  ///< evaluate every new child, or only selected leaves
  double rollout_alpha = 0.0;         ///< ReST-MCTS* blend α in [0, 1] (0.5 in the paper); eager only
  double zero_sum_total = 1.0;        ///< turn-based problems: the other player's value is this − value
  std::size_t simulations = 100;      ///< returns backed up per search() call (> 0)
  std::size_t leaves_per_round = 1;   ///< N leaves selected and expanded per batched round (> 0)
  double virtual_loss_value = 0.0;    ///< assumed return of an in-flight selection
  std::uint32_t branch = 3;           ///< children requested per expansion without widening (> 0)
  double widening_k = 0.0;            ///< progressive widening: ⌈k·(N+1)^α⌉ children; 0 = off
  double widening_alpha = 0.5;        ///< in (0, 1]
  double dirichlet_alpha = 0.0;       ///< root noise concentration; 0 = off
  double dirichlet_epsilon = 0.25;    ///< root noise weight in [0, 1]
  std::optional<double> end_gate{};   ///< stop when a new terminal node evaluates >= this
  std::size_t max_nodes = 0;          ///< stop when a round starts with >= this many nodes; 0 = off
  MergeOptions merge{};               ///< state merging of equivalent steps
  std::uint64_t seed = 0;             ///< seeds the engine (root noise)
};

/// Throws kaizen::Error unless the options are usable.
inline void validate(const MctsOptions& o) {
  KAIZEN_CHECK(std::isfinite(o.c) && o.c >= 0.0, "MctsOptions: expected a finite c >= 0, got ", o.c);
  KAIZEN_CHECK(std::isfinite(o.unvisited_bonus), "MctsOptions: expected a finite unvisited_bonus, got ", o.unvisited_bonus);
  KAIZEN_CHECK(o.rollout_alpha >= 0.0 && o.rollout_alpha <= 1.0, "MctsOptions: expected rollout_alpha in [0, 1], got ",
               o.rollout_alpha);
  KAIZEN_CHECK(o.rollout_alpha == 0.0 || o.evaluation == Evaluation::eager,
               "MctsOptions: rollout_alpha = ", o.rollout_alpha,
               " needs Evaluation::eager (lazy evaluation leaves the new children unevaluated)");
  KAIZEN_CHECK(!o.first_play_value || std::isfinite(*o.first_play_value),
               "MctsOptions: expected a finite first_play_value, got ", o.first_play_value.value_or(0.0));
  KAIZEN_CHECK(std::isfinite(o.zero_sum_total), "MctsOptions: expected a finite zero_sum_total, got ", o.zero_sum_total);
  KAIZEN_CHECK(o.simulations > 0, "MctsOptions: expected simulations > 0, got 0");
  KAIZEN_CHECK(o.leaves_per_round > 0, "MctsOptions: expected leaves_per_round > 0, got 0");
  KAIZEN_CHECK(std::isfinite(o.virtual_loss_value), "MctsOptions: expected a finite virtual_loss_value, got ",
               o.virtual_loss_value);
  KAIZEN_CHECK(o.branch > 0, "MctsOptions: expected branch > 0, got 0");
  KAIZEN_CHECK(std::isfinite(o.widening_k) && o.widening_k >= 0.0, "MctsOptions: expected widening_k >= 0, got ",
               o.widening_k);
  KAIZEN_CHECK(o.widening_alpha > 0.0 && o.widening_alpha <= 1.0, "MctsOptions: expected widening_alpha in (0, 1], got ",
               o.widening_alpha);
  KAIZEN_CHECK(std::isfinite(o.dirichlet_alpha) && o.dirichlet_alpha >= 0.0,
               "MctsOptions: expected dirichlet_alpha >= 0, got ", o.dirichlet_alpha);
  KAIZEN_CHECK(o.dirichlet_epsilon >= 0.0 && o.dirichlet_epsilon <= 1.0,
               "MctsOptions: expected dirichlet_epsilon in [0, 1], got ", o.dirichlet_epsilon);
  KAIZEN_CHECK(!o.end_gate || std::isfinite(*o.end_gate), "MctsOptions: expected a finite end_gate, got ",
               o.end_gate.value_or(0.0));
}

/// ReST-MCTS* UCT score of a child: Q + c·sqrt(2 ln N_parent / n), or Q + unvisited_bonus when n = 0.
[[nodiscard]] inline double uct_score(double q, double parent_visits, double visits, double c, double unvisited_bonus) {
  if (visits <= 0.0) return q + unvisited_bonus;
  return q + c * std::sqrt(2.0 * std::log(std::max(parent_visits, 1.0)) / visits);
}

/// PUCT score of a child: Q + c·P·sqrt(N_parent) / (1 + n).
[[nodiscard]] inline double puct_score(double q, double prior, double parent_visits, double visits, double c) {
  return q + c * prior * std::sqrt(parent_visits) / (1.0 + visits);
}

/// ReST-MCTS* backup: Σ_c V_c·N_c / Σ_c N_c over (value, visits) pairs; std::nullopt when Σ N_c = 0.
[[nodiscard]] inline std::optional<double> visit_weighted_mean(std::span<const std::pair<double, double>> children) {
  double num = 0.0, den = 0.0;
  for (const auto& [value, visits] : children) {
    num += value * visits;
    den += visits;
  }
  if (den <= 0.0) return std::nullopt;
  return num / den;
}

/// What one search() call did.
struct SearchStats {
  std::size_t simulations = 0;          ///< returns backed up
  std::size_t rounds = 0;               ///< batched rounds (one expand + one evaluate call each at most)
  std::size_t expand_calls = 0;         ///< problem.expand calls
  std::size_t evaluate_calls = 0;       ///< problem.evaluate calls
  std::size_t nodes_created = 0;
  std::size_t merged = 0;               ///< proposed children merged into an equivalent sibling
  std::optional<NodeId> solution;       ///< the terminal node that passed end_gate, if any
  bool hit_max_nodes = false;
};

/// MCTS over a SearchProblem. Holds the tree and reusable scratch buffers: after reserve(), the
/// search loop allocates nothing (unless state merging is on, which compares texts).
template <SearchProblem P>
class Mcts {
 public:
  using State = typename P::State;

  /// Validates `options` (kaizen::Error on bad values) and creates the root with `root_state`.
  Mcts(P& problem, MctsOptions options, State root_state = State{})
      : problem_(problem), options_(options), tree_(std::move(root_state)), rng_(options.seed) {
    validate(options_);
    if constexpr (TurnBasedProblem<P>) tree_[Tree<State>::root()].player = kNobody;
  }

  /// True for a TurnBasedProblem: values are per player (see the header comment).
  static constexpr bool turn_based = TurnBasedProblem<P>;

  /// Reserves the tree for `nodes` nodes (plus step text and tokens) and the round buffers for
  /// `proposals_per_round` proposed children per round (default: leaves_per_round · branch).
  void reserve(std::size_t nodes, std::size_t text_bytes = 0, std::size_t tokens = 0, std::size_t proposals_per_round = 0) {
    tree_.reserve(nodes, text_bytes, tokens);
    const std::size_t n = options_.leaves_per_round;
    const std::size_t per_round = proposals_per_round > 0 ? proposals_per_round : n * options_.branch;
    selected_.reserve(n);
    expanded_.reserve(n);
    requests_.reserve(n);
    offsets_.reserve(n + 1);
    cursor_.reserve(n + 1);
    order_.reserve(per_round);
    expansion_.reserve(per_round);
    new_nodes_.reserve(per_round);
    values_.reserve(per_round);
    noise_.reserve(per_round);
  }

  /// Runs options.simulations simulations (or until a stop rule fires) and returns what it did.
  SearchStats search() {
    SearchStats stats;
    if (std::isnan(tree_[Tree<State>::root()].evaluation)) {
      new_nodes_.assign(1, Tree<State>::root());
      evaluate_new(stats);
    }
    while (stats.simulations < options_.simulations && !stats.solution) {
      if (options_.max_nodes > 0 && tree_.size() >= options_.max_nodes) {
        stats.hit_max_nodes = true;
        break;
      }
      run_round(stats);
    }
    return stats;
  }

  [[nodiscard]] const Tree<State>& tree() const noexcept { return tree_; }
  [[nodiscard]] Tree<State>& tree() noexcept { return tree_; }
  [[nodiscard]] const MctsOptions& options() const noexcept { return options_; }
  [[nodiscard]] Rng& rng() noexcept { return rng_; }

 private:
  [[nodiscard]] std::uint32_t child_limit(const Node& n) const {
    if (options_.widening_k <= 0.0) return n.num_children == 0 ? options_.branch : n.num_children;
    const double limit = std::ceil(options_.widening_k * std::pow(static_cast<double>(n.visits) + 1.0, options_.widening_alpha));
    return static_cast<std::uint32_t>(std::max(1.0, std::min(limit, 4294967295.0)));
  }

  [[nodiscard]] bool expandable(const Node& n) const { return !n.terminal && !n.exhausted && n.num_children < child_limit(n); }

  /// A value from player `from`'s view, seen by player `to` (identity in single-agent search).
  [[nodiscard]] double for_player(double value, [[maybe_unused]] std::int32_t from,
                                  [[maybe_unused]] std::int32_t to) const noexcept {
    if constexpr (TurnBasedProblem<P>) return from == to ? value : options_.zero_sum_total - value;
    else return value;
  }

  [[nodiscard]] NodeId best_child(NodeId parent) const {
    const Node& p = tree_[parent];
    const double parent_visits = static_cast<double>(p.visits) + static_cast<double>(p.in_flight);
    const bool infinite = options_.unvisited == Unvisited::infinite;
    const bool puct = options_.selection == Selection::puct;
    // The parent's factor of puct_score / uct_score, computed once per selection.
    const double explore = puct ? options_.c * std::sqrt(parent_visits)
                                : options_.c * std::sqrt(2.0 * std::log(std::max(parent_visits, 1.0)));
    NodeId best = kNoNode;
    double best_score = -std::numeric_limits<double>::infinity();
    bool best_unvisited = false;  // with Unvisited::infinite: the best so far is an unvisited child
    for (NodeId c = p.first_child; c != kNoNode; c = tree_[c].next_sibling) {
      const Node& child = tree_[c];
      const double n = static_cast<double>(child.visits);
      const double v = static_cast<double>(child.in_flight);
      if (infinite && n + v == 0.0) {  // +∞; among unvisited children the higher prior, then the earlier
        if (!best_unvisited || child.prior > best_score) best = c, best_score = child.prior, best_unvisited = true;
        continue;
      }
      if (best_unvisited) continue;
      double q = child.value;
      if (n == 0.0 && std::isnan(child.evaluation))  // lazy: never evaluated yet (first-play value)
        q = options_.first_play_value ? *options_.first_play_value : for_player(p.value, p.player, child.player);
      if (v > 0.0) q = (q * n + options_.virtual_loss_value * v) / (n + v);
      const double score = puct ? q + explore * child.prior / (1.0 + n + v)
                                : (n + v > 0.0 ? q + explore / std::sqrt(n + v) : q + options_.unvisited_bonus);
      if (best == kNoNode || score > best_score) best = c, best_score = score;
    }
    return best;
  }

  /// Descends to a leaf and marks the path in flight; kNoNode when the leaf is already waiting for
  /// its expansion in this round (the round is then full).
  NodeId select_leaf() {
    NodeId node = Tree<State>::root();
    while (true) {
      const Node& n = tree_[node];
      if (n.terminal || expandable(n) || n.num_children == 0) break;
      node = best_child(node);
    }
    if (expandable(tree_[node]) && tree_[node].in_flight > 0) return kNoNode;
    for (NodeId a = node; a != kNoNode; a = tree_[a].parent) ++tree_[a].in_flight;
    return node;
  }

  void run_round(SearchStats& stats) {
    ++stats.rounds;
    selected_.clear();
    requests_.clear();
    expanded_.clear();
    const std::size_t budget = std::min(options_.leaves_per_round, options_.simulations - stats.simulations);
    const bool lazy = options_.evaluation == Evaluation::lazy;
    new_nodes_.clear();
    for (std::size_t i = 0; i < budget; ++i) {
      const NodeId leaf = select_leaf();
      if (leaf == kNoNode) break;
      selected_.push_back(leaf);
      if (lazy && std::isnan(tree_[leaf].evaluation)) new_nodes_.push_back(leaf);
    }
    // Lazy: the selected leaves reached for the first time are evaluated (one call) before the
    // expansion, which then skips those that turned out terminal.
    if (!new_nodes_.empty()) evaluate_new(stats);
    for (const NodeId leaf : selected_) {
      const Node& n = tree_[leaf];
      const bool expand = expandable(n);
      expanded_.push_back(expand);
      if (expand) requests_.push_back(ExpandRequest{leaf, child_limit(n) - n.num_children});
    }
    new_nodes_.clear();
    if (!requests_.empty()) {
      expansion_.clear();
      problem_.expand(static_cast<const Tree<State>&>(tree_), std::span<const ExpandRequest>(requests_), expansion_);
      ++stats.expand_calls;
      add_children(stats);
      if (!lazy && !new_nodes_.empty()) evaluate_new(stats);
    }
    for (std::size_t i = 0; i < selected_.size(); ++i) backup(selected_[i], expanded_[i]);
    stats.simulations += selected_.size();
  }

  void add_children(SearchStats& stats) {
    auto proposed = expansion_.children();
    // Bucket the proposals by request (a counting sort into reused buffers: no allocation).
    offsets_.assign(requests_.size() + 1, 0);
    for (const auto& child : proposed) {
      KAIZEN_CHECK(child.request < requests_.size(), "Mcts: the problem proposed a child for request ", child.request,
                   " but only ", requests_.size(), " were made");
      ++offsets_[child.request + 1];
    }
    for (std::size_t r = 0; r < requests_.size(); ++r) offsets_[r + 1] += offsets_[r];
    order_.resize(proposed.size());
    cursor_.assign(offsets_.begin(), offsets_.end() - 1);
    for (std::size_t i = 0; i < proposed.size(); ++i) order_[cursor_[proposed[i].request]++] = i;
    for (std::size_t r = 0; r < requests_.size(); ++r) {
      const NodeId leaf = requests_[r].leaf;
      const std::size_t first_new = new_nodes_.size();
      std::int32_t mover = 0;
      if constexpr (TurnBasedProblem<P>) {
        mover = static_cast<std::int32_t>(problem_.to_move(static_cast<const Tree<State>&>(tree_), leaf));
        KAIZEN_CHECK(mover >= 0, "Mcts: the problem's to_move returned ", mover, " for node ", leaf,
                     ", expected a player >= 0");
      }
      const std::span<const std::size_t> mine(order_.data() + offsets_[r], offsets_[r + 1] - offsets_[r]);
      if (options_.merge.enabled) add_merged(leaf, mine, requests_[r].count, stats);
      else
        for (std::size_t i = 0; i < mine.size() && i < requests_[r].count; ++i) add_one(leaf, proposed[mine[i]]);
      if (new_nodes_.size() == first_new) tree_[leaf].exhausted = true;
      for (std::size_t i = first_new; i < new_nodes_.size(); ++i) tree_[new_nodes_[i]].player = mover;
      if (leaf == Tree<State>::root() && options_.dirichlet_alpha > 0.0 && new_nodes_.size() - first_new > 1)
        add_root_noise(first_new);
    }
    stats.nodes_created += new_nodes_.size();
  }

  void add_one(NodeId leaf, typename Expansion<State>::Child& child) {
    new_nodes_.push_back(tree_.add_child(leaf, std::move(child.state), child.prior, expansion_.text(child),
                                         expansion_.tokens(child)));
  }

  void add_merged(NodeId leaf, std::span<const std::size_t> mine, std::uint32_t count, SearchStats& stats) {
    auto proposed = expansion_.children();
    std::vector<std::string_view> candidates, siblings;
    std::vector<NodeId> sibling_ids;
    for (std::size_t i : mine) candidates.push_back(expansion_.text(proposed[i]));
    tree_.for_each_child(leaf, [&](NodeId c) {
      siblings.push_back(tree_.text(c));
      sibling_ids.push_back(c);
    });
    const DiverseChoice choice = diverse_subset(candidates, siblings, count, options_.merge.max_edit_distance);
    std::vector<NodeId> kept_ids(mine.size(), kNoNode);
    for (std::size_t k : choice.kept) {
      add_one(leaf, proposed[mine[k]]);
      kept_ids[k] = new_nodes_.back();
    }
    for (std::size_t d = 0; d < choice.dropped.size(); ++d) {
      if (choice.distance[d] > options_.merge.max_edit_distance) continue;  // distinct, only over budget
      const NodeId target = choice.merged_candidate[d] != DiverseChoice::kNone ? kept_ids[choice.merged_candidate[d]]
                                                                               : sibling_ids[choice.merged_sibling[d]];
      tree_[target].prior += proposed[mine[choice.dropped[d]]].prior;
      ++stats.merged;
    }
  }

  void add_root_noise(std::size_t first_new) {
    noise_.clear();
    double total = 0.0;
    for (std::size_t i = first_new; i < new_nodes_.size(); ++i) {
      noise_.push_back(gamma_draw(rng_, options_.dirichlet_alpha));
      total += noise_.back();
    }
    for (std::size_t i = first_new; i < new_nodes_.size(); ++i) {
      Node& n = tree_[new_nodes_[i]];
      const double eta = total > 0.0 ? noise_[i - first_new] / total : 1.0 / static_cast<double>(noise_.size());
      n.prior = (1.0 - options_.dirichlet_epsilon) * n.prior + options_.dirichlet_epsilon * eta;
    }
  }

  void evaluate_new(SearchStats& stats) {
    values_.assign(new_nodes_.size(), std::numeric_limits<double>::quiet_NaN());
    problem_.evaluate(static_cast<const Tree<State>&>(tree_), std::span<const NodeId>(new_nodes_), std::span<double>(values_));
    ++stats.evaluate_calls;
    for (std::size_t i = 0; i < new_nodes_.size(); ++i) {
      KAIZEN_CHECK(std::isfinite(values_[i]), "Mcts: the problem evaluated node ", new_nodes_[i], " to ", values_[i],
                   ", expected a finite value");
      Node& n = tree_[new_nodes_[i]];
      n.evaluation = values_[i];
      n.value = values_[i];
      n.terminal = static_cast<bool>(problem_.terminal(static_cast<const Tree<State>&>(tree_), new_nodes_[i]));
      if (n.terminal && options_.end_gate && n.evaluation >= *options_.end_gate && !stats.solution)
        stats.solution = new_nodes_[i];
    }
  }

  void backup(NodeId leaf, bool just_expanded) {
    Node& l = tree_[leaf];
    const std::int32_t player = l.player;
    double g = l.evaluation;
    if (just_expanded && options_.rollout_alpha > 0.0 && l.num_children > 0) {
      // The best child for the player to move at L, seen by L's mover.
      double best = -std::numeric_limits<double>::infinity();
      std::int32_t chooser = player;
      tree_.for_each_child(leaf, [&](NodeId c) {
        best = std::max(best, tree_[c].evaluation);
        chooser = tree_[c].player;
      });
      g = (1.0 - options_.rollout_alpha) * g + options_.rollout_alpha * for_player(best, chooser, player);
    }
    for (NodeId a = leaf; a != kNoNode; a = tree_[a].parent) {
      Node& n = tree_[a];
      const double ga = for_player(g, player, n.player);
      ++n.visits;
      --n.in_flight;
      n.value_sum += ga;
      if (options_.backup == Backup::mean) {
        n.value = n.value_sum / static_cast<double>(n.visits);
      } else {
        double num = 0.0, den = 0.0;
        tree_.for_each_child(a, [&](NodeId c) {
          num += for_player(tree_[c].value, tree_[c].player, n.player) * static_cast<double>(tree_[c].visits);
          den += static_cast<double>(tree_[c].visits);
        });
        n.value = den > 0.0 ? num / den : (a == leaf && n.visits == 1 ? ga : n.value);
      }
    }
  }

  P& problem_;
  MctsOptions options_;
  Tree<State> tree_;
  Rng rng_;
  std::vector<NodeId> selected_;
  std::vector<bool> expanded_;
  std::vector<ExpandRequest> requests_;
  Expansion<State> expansion_;
  std::vector<NodeId> new_nodes_;
  std::vector<double> values_;
  std::vector<double> noise_;
  std::vector<std::size_t> offsets_, cursor_, order_;
};

/// The path from the root chosen by `strategy` (see OutputStrategy); descent stops at a node without
/// children, or (most_visited, sampled) whose children are all unvisited. `rng` is used only by
/// `sampled`. Throws kaizen::Error on temperature <= 0 for `sampled`.
template <class State>
[[nodiscard]] std::vector<NodeId> best_path(const Tree<State>& tree, OutputStrategy strategy, Rng& rng,
                                            double temperature = 1.0) {
  KAIZEN_CHECK(strategy != OutputStrategy::sampled || (temperature > 0.0 && std::isfinite(temperature)),
               "best_path: expected a positive finite temperature, got ", temperature);
  std::vector<NodeId> path{Tree<State>::root()};
  while (true) {
    const NodeId node = path.back();
    NodeId chosen = kNoNode;
    if (strategy == OutputStrategy::most_visited) {
      tree.for_each_child(node, [&](NodeId c) {
        const Node& n = tree[c];
        if (n.visits == 0) return;
        if (chosen == kNoNode || n.visits > tree[chosen].visits ||
            (n.visits == tree[chosen].visits && n.value > tree[chosen].value))
          chosen = c;
      });
    } else if (strategy == OutputStrategy::max_value) {
      bool any_visited = false;
      tree.for_each_child(node, [&](NodeId c) { any_visited = any_visited || tree[c].visits > 0; });
      tree.for_each_child(node, [&](NodeId c) {
        if (any_visited && tree[c].visits == 0) return;
        if (chosen == kNoNode || tree[c].value > tree[chosen].value) chosen = c;
      });
    } else {
      double total = 0.0;
      auto weight = [&](NodeId c) { return std::pow(static_cast<double>(tree[c].visits), 1.0 / temperature); };
      tree.for_each_child(node, [&](NodeId c) { total += weight(c); });
      if (total > 0.0) {
        const double u = uniform01(rng) * total;
        double cumulative = 0.0;
        tree.for_each_child(node, [&](NodeId c) {
          const double w = weight(c);
          cumulative += w;
          // Inverse CDF: the last positive-weight child whose interval starts at or below u.
          if (w > 0.0 && cumulative - w <= u) chosen = c;
        });
      }
    }
    if (chosen == kNoNode) break;
    path.push_back(chosen);
  }
  return path;
}

/// The terminal node with the highest value (ties: the earliest), or std::nullopt when the tree has
/// no terminal node (ReST-MCTS*'s answer when no node passed the end gate).
template <class State>
[[nodiscard]] std::optional<NodeId> best_terminal(const Tree<State>& tree) {
  std::optional<NodeId> best;
  for (NodeId i = 0; i < tree.size(); ++i)
    if (tree[i].terminal && (!best || tree[i].value > tree[*best].value)) best = i;
  return best;
}

}  // namespace kaizen::search
