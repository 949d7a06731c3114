// kaizen/reward/length.hpp - group-relative length (efficiency) rewards: a term added to each
// sample's accuracy reward that pays short answers more than long ones *within the group* of
// samples drawn for one prompt.
//
// Given a group's lengths L_i (tokens) and correctness c_i in {0, 1}, the term t_i is
//   kimi    (Kimi k1.5, arXiv 2501.12599; open-r1's len_reward): L_min, L_max over the whole group,
//           lambda_i = 0.5 - (L_i - L_min) / (L_max - L_min);  t_i = lambda_i if correct,
//           min(0, lambda_i) if wrong;  all lengths equal => every t_i = 0.
//           Oracle: L = [100, 200, 300], c = [1, 1, 0] => t = [0.5, 0, -0.5].
//   zscore  (Arora & Zanette, "Training language models to reason efficiently", arXiv 2502.04463):
//           mean m and population std s of the lengths of the *correct* samples,
//           t_i = -alpha * sigmoid((L_i - m) / s) if correct, 0 if wrong; s = 0 (one correct
//           sample or all the same length) => z = 0, t_i = -alpha / 2. With accuracy 1 for a
//           correct sample the sum is their 1 - alpha * sigmoid(z).
//   minmax  t_i = alpha * (L_max_c - L_i) / (L_max_c - L_min_c) if correct (min/max over the correct
//           samples; 0 when they are all the same length), 0 if wrong: in [0, alpha].
// Accuracy gate: when the group's accuracy mean(c) < acc_gate every t_i = 0 (the length term is
// only switched on for prompts the policy already solves often enough). acc_gate = 0 disables it.
// `weight` multiplies the term. apply_length_reward adds weight * t_i to a Group's rewards, with
// correct = (reward > correct_threshold) and L_i = completion.tokens.size().
//
// GroupLengthReward<R> is the same term as a reward combinator for the GRPO loop: it wraps any
// OutcomeReward R (the accuracy reward), is itself a batched OutcomeReward, and scores a batch laid
// out as the loop lays it out, `group_size` consecutive completions per prompt
// (completions[p * G + i] answers prompts[p * G + i] == prompts[p * G]):
//   r_i = base(x, y_i) + weight * t_i(group of y_i)
// so `loop::grpo(policy, sampler, length_reward, ...)` trains with the efficiency reward unchanged.
//
// The seed paper (Self-Rewarded Efficiency RL, arXiv 2506.15647) does not publish its exact form;
// these are the verified forms of the same family (see reference/algorithms.md section 14).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen::reward {

enum class LengthMode { kimi, zscore, minmax };

struct LengthRewardOptions {
  LengthMode mode = LengthMode::kimi;
  double alpha = 1.0;      ///< scale of the zscore / minmax forms (>= 0)
  double acc_gate = 0.0;   ///< group accuracy below this => all terms 0; in [0, 1]
  double weight = 1.0;     ///< multiplies the term (apply_length_reward)
};

inline void validate(const LengthRewardOptions& o) {
  KAIZEN_CHECK(std::isfinite(o.alpha) && o.alpha >= 0.0, "LengthRewardOptions: alpha must be finite and >= 0, got ",
               o.alpha);
  KAIZEN_CHECK(o.acc_gate >= 0.0 && o.acc_gate <= 1.0, "LengthRewardOptions: acc_gate must be in [0, 1], got ",
               o.acc_gate);
  KAIZEN_CHECK(std::isfinite(o.weight), "LengthRewardOptions: weight must be finite, got ", o.weight);
}

/// The length term t_i of each sample of one group (see the header comment). weight is not applied.
[[nodiscard]] inline std::vector<double> length_terms(std::span<const double> lengths, std::span<const bool> correct,
                                                      const LengthRewardOptions& options = {}) {
  validate(options);
  KAIZEN_CHECK(lengths.size() == correct.size(), "length_terms: ", lengths.size(), " lengths but ", correct.size(),
               " correctness flags");
  for (std::size_t i = 0; i < lengths.size(); ++i)
    KAIZEN_CHECK(std::isfinite(lengths[i]) && lengths[i] >= 0.0, "length_terms: length ", i, " is ", lengths[i],
                 ", expected a finite value >= 0");
  const std::size_t n = lengths.size();
  std::vector<double> out(n, 0.0);
  if (n == 0) return out;
  std::size_t n_correct = 0;
  for (bool c : correct) n_correct += c ? 1 : 0;
  if (static_cast<double>(n_correct) < options.acc_gate * static_cast<double>(n)) return out;
  switch (options.mode) {
    case LengthMode::kimi: {
      const auto [lo, hi] = std::minmax_element(lengths.begin(), lengths.end());
      const double span = *hi - *lo;
      if (span == 0.0) return out;
      for (std::size_t i = 0; i < n; ++i) {
        const double lambda = 0.5 - (lengths[i] - *lo) / span;
        out[i] = correct[i] ? lambda : std::min(0.0, lambda);
      }
      return out;
    }
    case LengthMode::zscore: {
      if (n_correct == 0) return out;
      double mean = 0.0;
      for (std::size_t i = 0; i < n; ++i)
        if (correct[i]) mean += lengths[i];
      mean /= static_cast<double>(n_correct);
      double var = 0.0;
      for (std::size_t i = 0; i < n; ++i)
        if (correct[i]) var += (lengths[i] - mean) * (lengths[i] - mean);
      const double sd = std::sqrt(var / static_cast<double>(n_correct));
      for (std::size_t i = 0; i < n; ++i) {
        if (!correct[i]) continue;
        const double z = sd > 0.0 ? (lengths[i] - mean) / sd : 0.0;
        out[i] = -options.alpha / (1.0 + std::exp(-z));
      }
      return out;
    }
    case LengthMode::minmax: {
      double lo = 0.0, hi = 0.0;
      bool first = true;
      for (std::size_t i = 0; i < n; ++i) {
        if (!correct[i]) continue;
        lo = first ? lengths[i] : std::min(lo, lengths[i]);
        hi = first ? lengths[i] : std::max(hi, lengths[i]);
        first = false;
      }
      if (first || hi == lo) return out;
      for (std::size_t i = 0; i < n; ++i)
        if (correct[i]) out[i] = options.alpha * (hi - lengths[i]) / (hi - lo);
      return out;
    }
  }
  return out;
}

/// Adds weight * t_i to group.rewards (filled with accuracy rewards first); correct = reward >
/// correct_threshold, L_i = number of completion tokens.
inline void apply_length_reward(Group& group, const LengthRewardOptions& options = {},
                                double correct_threshold = 0.5) {
  KAIZEN_CHECK(group.rewards.size() == group.completions.size(), "apply_length_reward: ", group.completions.size(),
               " completions but ", group.rewards.size(), " rewards (score the group first)");
  const std::size_t n = group.completions.size();
  std::vector<double> lengths(n);
  const std::unique_ptr<bool[]> correct(new bool[n]);  // std::vector<bool> is not contiguous
  for (std::size_t i = 0; i < n; ++i) {
    lengths[i] = static_cast<double>(group.completions[i].tokens.size());
    correct[i] = group.rewards[i] > correct_threshold;
  }
  const std::vector<double> t = length_terms(lengths, std::span<const bool>(correct.get(), n), options);
  for (std::size_t i = 0; i < t.size(); ++i) group.rewards[i] += options.weight * t[i];
}

/// The group-relative length term as a reward combinator (see the header comment): wraps the accuracy
/// reward `base` (kept by pointer; it must outlive this object) and adds weight * t_i per group of
/// `group_size` consecutive samples. `correct` = base reward > correct_threshold.
/// After each call, last_accuracy_mean() / last_term_mean() report the batch's accuracy reward and
/// length-term means (for metrics).
/// Throws kaizen::Error on: group_size < 1; invalid options; a batch whose size is not a multiple of
/// group_size; a group whose prompts differ (the batch is not grouped as the loop groups it); and for
/// everything kaizen::score rejects (non-finite base rewards, a wrong count).
template <OutcomeReward R>
class GroupLengthReward {
 public:
  GroupLengthReward(R& base, std::int64_t group_size, LengthRewardOptions options = {},
                    double correct_threshold = 0.5)
      : base_(&base), group_size_(group_size), options_(options), threshold_(correct_threshold) {
    KAIZEN_CHECK(group_size_ >= 1, "GroupLengthReward: group_size must be >= 1, got ", group_size_);
    KAIZEN_CHECK(std::isfinite(threshold_), "GroupLengthReward: correct_threshold must be finite, got ", threshold_);
    validate(options_);
  }

  [[nodiscard]] std::vector<double> operator()(std::span<const Prompt> prompts, std::span<const Completion> completions) {
    const auto G = static_cast<std::size_t>(group_size_);
    KAIZEN_CHECK(prompts.size() == completions.size(), "GroupLengthReward: ", prompts.size(), " prompts but ",
                 completions.size(), " completions");
    KAIZEN_CHECK(completions.size() % G == 0, "GroupLengthReward: ", completions.size(),
                 " completions is not a multiple of group_size ", group_size_);
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      const Prompt& first = prompts[i - i % G];
      KAIZEN_CHECK(prompts[i].tokens == first.tokens && prompts[i].text == first.text, "GroupLengthReward: prompt ", i,
                   " differs from prompt ", i - i % G, " of its group (expected ", group_size_,
                   " consecutive samples of one prompt per group)");
    }
    std::vector<double> rewards = score(*base_, prompts, completions);
    double acc_sum = 0.0, term_sum = 0.0;
    std::vector<double> lengths(G);
    const std::unique_ptr<bool[]> correct(new bool[G]);  // std::vector<bool> is not contiguous
    for (std::size_t start = 0; start < rewards.size(); start += G) {
      for (std::size_t i = 0; i < G; ++i) {
        lengths[i] = static_cast<double>(completions[start + i].tokens.size());
        correct[i] = rewards[start + i] > threshold_;
        acc_sum += rewards[start + i];
      }
      const std::vector<double> t = length_terms(lengths, std::span<const bool>(correct.get(), G), options_);
      for (std::size_t i = 0; i < G; ++i) {
        rewards[start + i] += options_.weight * t[i];
        term_sum += options_.weight * t[i];
      }
    }
    const double n = rewards.empty() ? 1.0 : static_cast<double>(rewards.size());
    last_accuracy_mean_ = acc_sum / n;
    last_term_mean_ = term_sum / n;
    return rewards;
  }

  [[nodiscard]] std::int64_t group_size() const { return group_size_; }
  [[nodiscard]] const LengthRewardOptions& options() const { return options_; }
  [[nodiscard]] double last_accuracy_mean() const { return last_accuracy_mean_; }
  [[nodiscard]] double last_term_mean() const { return last_term_mean_; }

 private:
  R* base_;
  std::int64_t group_size_;
  LengthRewardOptions options_;
  double threshold_;
  double last_accuracy_mean_ = 0.0;
  double last_term_mean_ = 0.0;
};

}  // namespace kaizen::reward
