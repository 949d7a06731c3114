// kaizen/search/best_of_n.hpp - best-of-N selection with an outcome reward, a verifier, or the
// model's own likelihood (maximum-likelihood sharpening), and the closed form of RLHF-sharpening.
//
//   best-of-N:         î = argmax_i r(x, y_i)      (ties: the earliest sample)
//   self-likelihood:   r_self(x, y) = log π(y|x) = Σ_t log π(y_t | x, y_<t), or the per-token mean
//                      with length_normalize (Huang et al. leave open which one; both are offered)
//   RLHF-sharpening:   π*(y|x) ∝ π_base(y|x)^(1 + 1/β)      (power_sharpen with exponent 1 + 1/β)
// Example: p = (0.5, 0.3, 0.2), β = 1 ⇒ π* ∝ p² = (0.658, 0.237, 0.105); sharpening keeps the argmax.
//
// References: Huang et al., "Self-Improvement in Language Models: The Sharpening Mechanism" (ICLR
// 2025, arXiv 2412.01951); Cobbe et al., "Training Verifiers to Solve Math Word Problems" (2021,
// arXiv 2110.14168) - best-of-N with a verifier.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen::search {

/// The model's own log-likelihood of a completion, from Completion::logprobs (an OutcomeReward).
struct SelfLikelihood {
  bool length_normalize = false;  ///< mean per-token log-prob instead of the sum

  /// Throws kaizen::Error when the completion has no log-probs or a non-finite one.
  double operator()(const Prompt&, const Completion& completion) const {
    KAIZEN_CHECK(!completion.logprobs.empty(), "SelfLikelihood: expected per-token log-probs, got none");
    double sum = 0.0;
    for (float lp : completion.logprobs) {
      KAIZEN_CHECK(std::isfinite(lp), "SelfLikelihood: expected finite log-probs, got ", lp);
      sum += static_cast<double>(lp);
    }
    return length_normalize ? sum / static_cast<double>(completion.logprobs.size()) : sum;
  }
};

/// The selected sample and every score.
struct BestOfN {
  std::size_t index = 0;
  double score = 0.0;
  std::vector<double> scores;
};

/// Best-of-N over `completions` of one prompt with any OutcomeReward (a Verifier scores 1/0,
/// SelfLikelihood is sharpening's selector). Throws kaizen::Error on an empty candidate set and on
/// non-finite scores (through kaizen::score).
template <OutcomeReward R>
[[nodiscard]] BestOfN best_of_n(const Prompt& prompt, std::span<const Completion> completions, R& reward) {
  KAIZEN_CHECK(!completions.empty(), "best_of_n: expected at least one completion, got none");
  const std::vector<Prompt> prompts(completions.size(), prompt);
  BestOfN out;
  out.scores = score(reward, prompts, completions);
  for (std::size_t i = 1; i < out.scores.size(); ++i)
    if (out.scores[i] > out.scores[out.index]) out.index = i;
  out.score = out.scores[out.index];
  return out;
}

/// Normalised p^exponent (the RLHF-sharpening optimum with exponent 1 + 1/β). Throws kaizen::Error on
/// an empty input, negative or non-finite probabilities, a zero total, or exponent <= 0.
[[nodiscard]] inline std::vector<double> power_sharpen(std::span<const double> probabilities, double exponent) {
  KAIZEN_CHECK(!probabilities.empty(), "power_sharpen: expected at least one probability, got none");
  KAIZEN_CHECK(exponent > 0.0 && std::isfinite(exponent), "power_sharpen: expected a positive finite exponent, got ",
               exponent);
  std::vector<double> out;
  out.reserve(probabilities.size());
  double total = 0.0;
  for (double p : probabilities) {
    KAIZEN_CHECK(std::isfinite(p) && p >= 0.0, "power_sharpen: expected finite probabilities >= 0, got ", p);
    out.push_back(std::pow(p, exponent));
    total += out.back();
  }
  KAIZEN_CHECK(total > 0.0, "power_sharpen: expected a positive total probability, got 0");
  for (double& q : out) q /= total;
  return out;
}

}  // namespace kaizen::search
