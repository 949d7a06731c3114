// kaizen/curriculum/prompt_pool.hpp - turns a curriculum's arm draws into problems.
//
// Each arm owns a list of prompts and a queue over them: a shuffled order walked front to back, then
// reshuffled when exhausted (every prompt of an arm is used once per pass, in a fresh random order
// each pass). The pool owns its engine, seeded at construction, so the prompts are a function of the
// seed and the sequence of arm draws; state()/restore() continue a run exactly. Arms can be added
// while training (add_arm), and prompts appended to an arm (add_prompts) join its current pass.
//
// SEC builds a batch exactly this way: draw B arms i.i.d. from the curriculum, pop one unused problem
// from each drawn arm (Chen et al. 2025, https://arxiv.org/abs/2505.14970, §3).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/curriculum/detail/common.hpp>

namespace kaizen::curriculum {

/// Per-arm shuffled prompt queues.
///
/// - add_arm(prompts) -> ArmId: a new arm (ids 0, 1, 2, ... in order of addition); prompts non-empty.
/// - draw(arms) -> one Prompt per arm id, each the next of its arm's queue, with category = arm id
///   (the Prompt's other fields, id included, are as given to add_arm).
/// - state() / restore(state): the engine and every queue position (not the prompts: restore into a
///   pool holding the same arms and prompt counts).
/// Throws kaizen::Error on: an empty prompt list, unknown arm ids, a state that does not match.
class PromptPool {
 public:
  explicit PromptPool(std::uint64_t seed = 0) : rng_(seed) {}

  ArmId add_arm(std::vector<Prompt> prompts) {
    KAIZEN_CHECK(!prompts.empty(), "PromptPool::add_arm: expected at least one prompt, got none");
    arms_.push_back(Queue{std::move(prompts), {}, 0});
    return static_cast<ArmId>(arms_.size() - 1);
  }

  /// Appends prompts to an existing arm; they are served after the rest of the current pass.
  void add_prompts(ArmId arm, std::vector<Prompt> prompts) {
    Queue& q = queue("PromptPool::add_prompts", arm);
    const std::size_t first = q.prompts.size();
    for (auto& p : prompts) q.prompts.push_back(std::move(p));
    if (!q.order.empty())
      for (std::size_t i = first; i < q.prompts.size(); ++i) q.order.push_back(i);
  }

  /// The next prompt of each drawn arm, in order.
  [[nodiscard]] std::vector<Prompt> draw(std::span<const ArmId> arms) {
    for (std::size_t i = 0; i < arms.size(); ++i) {
      KAIZEN_CHECK(arms[i] >= 0 && static_cast<std::size_t>(arms[i]) < arms_.size(),
                   "PromptPool::draw: expected arm ids in [0, ", arms_.size(), "), got ", arms[i],
                   " at position ", i);
    }
    std::vector<Prompt> out;
    out.reserve(arms.size());
    for (ArmId arm : arms) out.push_back(next(arm));
    return out;
  }

  /// The next prompt of one arm.
  [[nodiscard]] Prompt next(ArmId arm) {
    Queue& q = queue("PromptPool::next", arm);
    if (q.position >= q.order.size()) refill(q);
    Prompt p = q.prompts[q.order[q.position++]];
    p.category = arm;
    return p;
  }

  [[nodiscard]] std::size_t num_arms() const noexcept { return arms_.size(); }
  /// Prompts held by an arm.
  [[nodiscard]] std::size_t size(ArmId arm) const {
    KAIZEN_CHECK(arm >= 0 && static_cast<std::size_t>(arm) < arms_.size(),
                 "PromptPool::size: expected an arm id in [0, ", arms_.size(), "), got ", arm);
    return arms_[static_cast<std::size_t>(arm)].prompts.size();
  }

  [[nodiscard]] nlohmann::json state() const {
    nlohmann::json arms = nlohmann::json::array();
    for (const Queue& q : arms_)
      arms.push_back({{"size", q.prompts.size()}, {"order", q.order}, {"position", q.position}});
    return {{"kind", "prompt_pool"}, {"rng", save_rng(rng_)}, {"arms", arms}};
  }

  /// Restores the engine and queues saved by state(); the pool must hold the same number of arms with
  /// the same prompt counts.
  void restore(const nlohmann::json& state) {
    constexpr const char* fn = "PromptPool::restore";
    detail::check_kind(fn, state, "prompt_pool");
    KAIZEN_CHECK(state.contains("rng") && state["rng"].is_string() && state.contains("arms") &&
                     state["arms"].is_array(),
                 fn, ": expected \"rng\" text and an \"arms\" array");
    const auto& arms = state["arms"];
    KAIZEN_CHECK(arms.size() == arms_.size(), fn, ": the state has ", arms.size(), " arms, the pool ",
                 arms_.size());
    std::vector<std::pair<std::vector<std::size_t>, std::size_t>> queues;
    for (std::size_t a = 0; a < arms.size(); ++a) {
      const auto& s = arms[a];
      const std::size_t size = static_cast<std::size_t>(detail::number_field(fn, s, "size"));
      KAIZEN_CHECK(size == arms_[a].prompts.size(), fn, ": arm ", a, " had ", size,
                   " prompts when saved, the pool has ", arms_[a].prompts.size());
      std::vector<std::size_t> order;
      for (double v : detail::vector_field(fn, s, "order")) {
        KAIZEN_CHECK(v >= 0.0 && v < static_cast<double>(size), fn, ": arm ", a, " has prompt index ", v,
                     " outside [0, ", size, ")");
        order.push_back(static_cast<std::size_t>(v));
      }
      const auto position = static_cast<std::size_t>(detail::number_field(fn, s, "position"));
      KAIZEN_CHECK(position <= order.size(), fn, ": arm ", a, " is at position ", position, " of ",
                   order.size());
      queues.emplace_back(std::move(order), position);
    }
    restore_rng(rng_, state["rng"].get<std::string>());
    for (std::size_t a = 0; a < arms_.size(); ++a) {
      arms_[a].order = std::move(queues[a].first);
      arms_[a].position = queues[a].second;
    }
  }

 private:
  struct Queue {
    std::vector<Prompt> prompts;
    std::vector<std::size_t> order;  // a permutation of prompt indices (plus any appended since)
    std::size_t position = 0;        // next entry of `order` to serve
  };

  Queue& queue(const char* fn, ArmId arm) {
    KAIZEN_CHECK(arm >= 0 && static_cast<std::size_t>(arm) < arms_.size(), fn, ": expected an arm id in [0, ",
                 arms_.size(), "), got ", arm);
    return arms_[static_cast<std::size_t>(arm)];
  }

  // A fresh pass: Fisher-Yates shuffle of all the arm's prompt indices.
  void refill(Queue& q) {
    q.order.resize(q.prompts.size());
    for (std::size_t i = 0; i < q.order.size(); ++i) q.order[i] = i;
    for (std::size_t i = q.order.size(); i > 1; --i)
      std::swap(q.order[i - 1], q.order[uniform_index(rng_, i)]);
    q.position = 0;
  }

  Rng rng_;
  std::vector<Queue> arms_;
};

}  // namespace kaizen::curriculum
