// kaizen/curriculum/sliding_window_ucb.hpp - Sliding-window UCB (SW-UCB): UCB over the last W
// observed gains only, so an arm whose payoff changes is re-learned within about W observations.
//
//   N_W(a), S_W(a): count and sum of arm a's gains among the last W observations (all arms together)
//   index(a) = S_W(a) / N_W(a) + c * sqrt(ln min(t, W) / N_W(a)),   N_W(a) = 0 -> +inf
//   t: all gains observed so far.
//
// Defaults W = 1000 observations, c = sqrt(2) (the paper's B sqrt(xi) with B = 1, xi = 2). Batches
// pick arms by the index with virtual draws, as in ucb1.hpp (min(t, W) is taken after adding the
// batch size). Draws are deterministic; `rng` is unused.
//
// Reference: A. Garivier, E. Moulines, "On Upper-Confidence Bound Policies for Switching Bandit
// Problems", ALT 2011 (arXiv 0805.3415). https://arxiv.org/abs/0805.3415
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/curriculum.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/curriculum/detail/common.hpp>

namespace kaizen::curriculum {

/// SW-UCB's settings.
struct SlidingWindowUcbOptions {
  std::size_t window = 1000;                ///< W > 0 observations
  double exploration = 1.4142135623730951;  ///< c >= 0
};

/// Sliding-window UCB over `num_arms` arms. Models kaizen::Curriculum. probabilities() is one-hot on
/// the highest index (split among exact ties). Memory O(K + W). Throws kaizen::Error on: num_arms = 0,
/// W = 0, c < 0, unknown arm ids, non-finite gains, size mismatch, a state of another kind.
class SlidingWindowUcb {
 public:
  explicit SlidingWindowUcb(std::size_t num_arms, SlidingWindowUcbOptions options = {})
      : options_(options), counts_(num_arms, 0.0), sums_(num_arms, 0.0) {
    detail::check_arm_count("SlidingWindowUcb", num_arms);
    check_options(options_);
  }

  [[nodiscard]] std::vector<ArmId> sample(std::size_t n, Rng& /*rng*/) const {
    const double log_t = log_horizon(static_cast<double>(n));
    return detail::optimistic_batch(counts_.size(), n,
                                    [&](std::size_t a, double v) { return index(a, v, log_t); });
  }

  void update(std::span<const ArmId> arms, std::span<const double> gains) {
    detail::check_update("SlidingWindowUcb::update", arms, gains, counts_.size());
    for (std::size_t i = 0; i < arms.size(); ++i) {
      window_.emplace_back(arms[i], gains[i]);
      counts_[static_cast<std::size_t>(arms[i])] += 1.0;
      sums_[static_cast<std::size_t>(arms[i])] += gains[i];
      if (window_.size() > options_.window) {
        const auto old = static_cast<std::size_t>(window_.front().first);
        const double old_gain = window_.front().second;
        window_.pop_front();
        counts_[old] -= 1.0;
        // An arm that left the window is forgotten exactly (no rounding residue in its sum).
        sums_[old] = counts_[old] == 0.0 ? 0.0 : sums_[old] - old_gain;
      }
    }
    total_ += static_cast<double>(arms.size());
  }

  [[nodiscard]] std::vector<double> probabilities() const {
    const double log_t = log_horizon(1.0);
    std::vector<double> scores(counts_.size());
    for (std::size_t a = 0; a < scores.size(); ++a) scores[a] = index(a, 0.0, log_t);
    return detail::argmax_distribution(scores);
  }

  /// N_W(a): each arm's gains inside the window.
  [[nodiscard]] const std::vector<double>& counts() const noexcept { return counts_; }
  [[nodiscard]] std::size_t num_arms() const noexcept { return counts_.size(); }

  /// Appends an arm that has never been drawn (it is drawn first) and returns its id.
  ArmId add_arm() {
    counts_.push_back(0.0);
    sums_.push_back(0.0);
    return static_cast<ArmId>(counts_.size() - 1);
  }

  [[nodiscard]] nlohmann::json state() const {
    nlohmann::json arms = nlohmann::json::array(), gains = nlohmann::json::array();
    for (const auto& [a, g] : window_) arms.push_back(a), gains.push_back(g);
    return {{"kind", "sliding_window_ucb"},
            {"window", options_.window},
            {"exploration", options_.exploration},
            {"total", total_},
            {"counts", counts_},
            {"sums", sums_},
            {"window_arms", arms},
            {"window_gains", gains}};
  }

  void restore(const nlohmann::json& state) {
    constexpr const char* fn = "SlidingWindowUcb::restore";
    detail::check_kind(fn, state, "sliding_window_ucb");
    const double window = detail::number_field(fn, state, "window");
    KAIZEN_CHECK(window >= 1.0 && window == std::floor(window), fn,
                 ": expected a positive integer window, got ", window);
    SlidingWindowUcbOptions options{static_cast<std::size_t>(window),
                                    detail::number_field(fn, state, "exploration")};
    check_options(options);
    std::vector<double> counts = detail::vector_field(fn, state, "counts");
    detail::check_arm_count(fn, counts.size());
    const auto k = static_cast<std::int64_t>(counts.size());
    std::vector<double> sums = detail::vector_field(fn, state, "sums", k);
    const std::vector<double> arms = detail::vector_field(fn, state, "window_arms");
    const std::vector<double> gains =
        detail::vector_field(fn, state, "window_gains", static_cast<std::int64_t>(arms.size()));
    KAIZEN_CHECK(arms.size() <= options.window, fn, ": expected at most ", options.window,
                 " observations in the window, got ", arms.size());
    std::deque<std::pair<ArmId, double>> entries;
    for (std::size_t i = 0; i < arms.size(); ++i) {
      KAIZEN_CHECK(arms[i] >= 0.0 && arms[i] < static_cast<double>(k) && arms[i] == std::floor(arms[i]), fn,
                   ": expected window arm ids in [0, ", k, "), got ", arms[i]);
      entries.emplace_back(static_cast<ArmId>(arms[i]), gains[i]);
    }
    total_ = detail::number_field(fn, state, "total");
    options_ = options;
    counts_ = std::move(counts);
    sums_ = std::move(sums);
    window_ = std::move(entries);
  }

 private:
  static void check_options(const SlidingWindowUcbOptions& o) {
    KAIZEN_CHECK(o.window > 0, "SlidingWindowUcb: expected a window of at least one observation, got ",
                 o.window);
    KAIZEN_CHECK(o.exploration >= 0.0 && std::isfinite(o.exploration),
                 "SlidingWindowUcb: expected an exploration constant >= 0, got ", o.exploration);
  }

  [[nodiscard]] double log_horizon(double extra) const {
    return std::log(std::min(total_ + extra, static_cast<double>(options_.window)));
  }

  [[nodiscard]] double index(std::size_t a, double virtual_pulls, double log_t) const {
    const double n = counts_[a] + virtual_pulls;
    if (n == 0.0) return std::numeric_limits<double>::infinity();
    const double mean = counts_[a] > 0.0 ? sums_[a] / counts_[a] : 0.0;
    return mean + options_.exploration * std::sqrt(std::max(log_t, 0.0) / n);
  }

  SlidingWindowUcbOptions options_;
  std::vector<double> counts_;
  std::vector<double> sums_;
  std::deque<std::pair<ArmId, double>> window_;
  double total_ = 0.0;
};

}  // namespace kaizen::curriculum
