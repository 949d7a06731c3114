// kaizen/curriculum/detail/common.hpp - private helpers shared by the curricula: input checks,
// categorical draws, softmax, batched optimistic (UCB-style) selection and JSON state fields.
// Not part of the public API; include the curriculum headers instead.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>

namespace kaizen::curriculum::detail {

/// Throws unless arms and gains pair up, every arm is in [0, num_arms) and every gain is finite.
inline void check_update(std::string_view fn, std::span<const ArmId> arms, std::span<const double> gains,
                         std::size_t num_arms) {
  KAIZEN_CHECK(arms.size() == gains.size(), fn, ": expected one gain per arm id, got ", arms.size(),
               " arm ids and ", gains.size(), " gains");
  for (std::size_t i = 0; i < arms.size(); ++i) {
    KAIZEN_CHECK(arms[i] >= 0 && static_cast<std::size_t>(arms[i]) < num_arms, fn,
                 ": expected arm ids in [0, ", num_arms, "), got ", arms[i], " at position ", i);
    KAIZEN_CHECK(std::isfinite(gains[i]), fn, ": expected finite gains, got ", gains[i], " for arm ", arms[i],
                 " at position ", i);
  }
}

/// Throws unless every gain lies in [0, 1] (for bandits whose analysis needs bounded rewards).
inline void check_unit_gains(std::string_view fn, std::span<const double> gains) {
  for (std::size_t i = 0; i < gains.size(); ++i)
    KAIZEN_CHECK(gains[i] >= 0.0 && gains[i] <= 1.0, fn, ": expected gains in [0, 1], got ", gains[i],
                 " at position ", i);
}

inline void check_arm_count(std::string_view fn, std::size_t num_arms) {
  KAIZEN_CHECK(num_arms > 0, fn, ": expected at least one arm, got an empty arm set");
}

/// Per-arm sum and count of the gains in one update call (arms already checked).
struct StepTotals {
  std::vector<double> sum;
  std::vector<double> count;
};
[[nodiscard]] inline StepTotals step_totals(std::span<const ArmId> arms, std::span<const double> gains,
                                            std::size_t num_arms) {
  StepTotals t{std::vector<double>(num_arms, 0.0), std::vector<double>(num_arms, 0.0)};
  for (std::size_t i = 0; i < arms.size(); ++i) {
    t.sum[static_cast<std::size_t>(arms[i])] += gains[i];
    t.count[static_cast<std::size_t>(arms[i])] += 1.0;
  }
  return t;
}

/// n i.i.d. draws from the distribution proportional to `weights` (non-negative, positive total):
/// one cumulative sum, then a binary search per draw, one uniform01 per draw.
[[nodiscard]] inline std::vector<ArmId> sample_categorical(std::span<const double> weights, std::size_t n,
                                                           Rng& rng) {
  std::vector<double> cumulative(weights.size());
  double total = 0.0;
  for (std::size_t i = 0; i < weights.size(); ++i) cumulative[i] = total += weights[i];
  KAIZEN_ASSERT(total > 0.0 && std::isfinite(total), "sample_categorical: weights total ", total);
  std::vector<ArmId> out(n);
  for (std::size_t k = 0; k < n; ++k) {
    const double u = uniform01(rng) * total;
    auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
    // u < total always, but rounding can leave the last cumulative value a hair below it.
    if (it == cumulative.end()) --it;
    // Skip zero-weight arms that share the cumulative value of the arm before them.
    while (weights[static_cast<std::size_t>(it - cumulative.begin())] <= 0.0 && it != cumulative.begin())
      --it;
    out[k] = static_cast<ArmId>(it - cumulative.begin());
  }
  return out;
}

/// Boltzmann distribution exp(v / tau) / sum exp(v' / tau), computed with the maximum subtracted.
[[nodiscard]] inline std::vector<double> softmax(std::span<const double> values, double tau) {
  std::vector<double> p(values.size());
  const double vmax = *std::max_element(values.begin(), values.end());
  double total = 0.0;
  for (std::size_t i = 0; i < values.size(); ++i) total += p[i] = std::exp((values[i] - vmax) / tau);
  for (double& x : p) x /= total;
  return p;
}

/// One-hot on the maximum of `scores`, split evenly among exact ties.
[[nodiscard]] inline std::vector<double> argmax_distribution(std::span<const double> scores) {
  const double best = *std::max_element(scores.begin(), scores.end());
  std::vector<double> p(scores.size(), 0.0);
  double ties = 0.0;
  for (std::size_t i = 0; i < scores.size(); ++i) ties += scores[i] == best ? 1.0 : 0.0;
  for (std::size_t i = 0; i < scores.size(); ++i) p[i] = scores[i] == best ? 1.0 / ties : 0.0;
  return p;
}

/// Draws n arms greedily by an optimistic index that only decreases as an arm is drawn again within the
/// batch ("virtual pulls": index(a, v) for v draws of a so far in this batch). A max-heap keyed by the
/// current index gives O(K + n log K); ties go to the lower arm id. `index(a, v)` must be
/// non-increasing in v.
template <class Index>
[[nodiscard]] std::vector<ArmId> optimistic_batch(std::size_t num_arms, std::size_t n, Index&& index) {
  using Entry = std::pair<double, std::size_t>;
  auto lower = [](const Entry& a, const Entry& b) {
    return a.first < b.first || (a.first == b.first && a.second > b.second);
  };
  std::vector<Entry> entries(num_arms);
  for (std::size_t a = 0; a < num_arms; ++a) entries[a] = {index(a, 0.0), a};
  std::priority_queue<Entry, std::vector<Entry>, decltype(lower)> heap(lower, std::move(entries));
  std::vector<double> virtual_pulls(num_arms, 0.0);
  std::vector<ArmId> out(n);
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t a = heap.top().second;
    heap.pop();
    out[k] = static_cast<ArmId>(a);
    virtual_pulls[a] += 1.0;
    heap.push({index(a, virtual_pulls[a]), a});
  }
  return out;
}

// --- JSON state fields ----------------------------------------------------------------------------

/// Throws unless `state` is an object whose "kind" is `kind`.
inline void check_kind(std::string_view fn, const nlohmann::json& state, std::string_view kind) {
  KAIZEN_CHECK(state.is_object() && state.contains("kind") && state["kind"].is_string(), fn,
               ": expected a state object with a \"kind\" field, got ", state.dump().substr(0, 80));
  const auto& got = state["kind"].get_ref<const std::string&>();
  KAIZEN_CHECK(got == kind, fn, ": expected a state of kind \"", kind, "\", got \"", got, "\"");
}

/// state[key] as a double; throws when missing or not a number.
[[nodiscard]] inline double number_field(std::string_view fn, const nlohmann::json& state, const char* key) {
  KAIZEN_CHECK(state.contains(key) && state[key].is_number(), fn, ": the state lacks the number \"", key,
               "\"");
  return state[key].get<double>();
}

/// state[key] as a vector<double>; throws when missing, not an array of numbers, or (when
/// expected_size >= 0) of another length.
[[nodiscard]] inline std::vector<double> vector_field(std::string_view fn, const nlohmann::json& state,
                                                      const char* key, std::int64_t expected_size = -1) {
  KAIZEN_CHECK(state.contains(key) && state[key].is_array(), fn, ": the state lacks the array \"", key, "\"");
  const auto& array = state[key];
  KAIZEN_CHECK(expected_size < 0 || static_cast<std::int64_t>(array.size()) == expected_size, fn,
               ": expected \"", key, "\" to hold ", expected_size, " values, got ", array.size());
  std::vector<double> out;
  out.reserve(array.size());
  for (const auto& v : array) {
    KAIZEN_CHECK(v.is_number(), fn, ": expected numbers in \"", key, "\", got ", v.dump());
    out.push_back(v.get<double>());
  }
  return out;
}

}  // namespace kaizen::curriculum::detail
