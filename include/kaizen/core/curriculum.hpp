// kaizen/core/curriculum.hpp - the Curriculum concept: a sampler over arms (problem categories) that
// learns from the training signal. The algorithms live in kaizen/curriculum/.
#pragma once

#include <concepts>
#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/rng.hpp>

namespace kaizen {

/// Index of an arm (a category of problems: a difficulty level, a task type, ...).
using ArmId = std::int64_t;

/// A curriculum over a set of arms.
///
/// Required expressions (c: C&, cc: const C&, n: std::size_t, rng: Rng&,
/// arms: std::span<const ArmId>, gains: std::span<const double>, state: const nlohmann::json&):
/// @code
///   c.sample(n, rng)          -> std::vector<ArmId>    // n draws (with replacement)
///   c.update(arms, gains)     -> void                  // gains[i] was earned by a rollout of arms[i]
///   cc.probabilities()        -> std::vector<double>   // the current sampling distribution, sums to 1
///   cc.state()                -> nlohmann::json        // everything needed to continue exactly
///   c.restore(state)          -> void                  // inverse of state()
/// @endcode
/// Contract: draws depend only on the state and `rng`, so save -> restore -> continue reproduces the
/// run that never stopped; `update` rejects unknown arms and non-finite gains with kaizen::Error.
template <class C>
concept Curriculum = requires(C& c, const C& cc, std::size_t n, Rng& rng, std::span<const ArmId> arms,
                              std::span<const double> gains, const nlohmann::json& state) {
  { c.sample(n, rng) } -> std::convertible_to<std::vector<ArmId>>;
  c.update(arms, gains);
  { cc.probabilities() } -> std::convertible_to<std::vector<double>>;
  { cc.state() } -> std::convertible_to<nlohmann::json>;
  c.restore(state);
};

}  // namespace kaizen
