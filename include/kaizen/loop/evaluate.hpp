// kaizen/loop/evaluate.hpp - held-out evaluation of a sampler against an outcome reward:
//   pass@1  = mean over prompts of (1/k) Σ_i r(x, y_i)      (the unbiased pass@1 estimate from k
//             samples when r is 0/1; Chen et al. 2021, arXiv 2107.03374)
//   maj@k   = mean over prompts of r(x, y_j*), y_j* the first sample whose extracted answer won the
//             majority vote among the k samples (self-consistency; Wang et al. 2022, arXiv 2203.11171);
//             a prompt whose samples all abstain scores 0
//   mean length = mean completion length in tokens.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/consistency/vote.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen::loop {

struct EvalResult {
  double pass_at_1 = 0.0;
  double maj_at_k = 0.0;
  double mean_length = 0.0;
  std::int64_t prompts = 0;
  std::int64_t samples_per_prompt = 0;
  std::map<std::int64_t, double> pass_at_1_by_category;  ///< keyed by Prompt::category

  [[nodiscard]] nlohmann::json to_json() const {
    nlohmann::json by_category = nlohmann::json::object();
    for (const auto& [c, v] : pass_at_1_by_category) by_category[std::to_string(c)] = v;
    return {{"pass_at_1", pass_at_1}, {"maj_at_k", maj_at_k}, {"mean_length", mean_length}, {"prompts", prompts},
            {"k", samples_per_prompt}, {"pass_at_1_by_category", by_category}};
  }
};

/// Samples `k` completions per prompt (params as given; seed from params.seed) and scores them.
/// `answer(prompt, completion) -> std::optional<std::string>` extracts the answer that maj@k votes on.
/// Throws kaizen::Error when prompts is empty or k < 1, and for everything the sampler or
/// kaizen::score rejects.
template <Sampler S, OutcomeReward R, class Extract>
  requires requires(Extract& e, const Prompt& p, const Completion& c) {
    { e(p, c) } -> std::convertible_to<std::optional<std::string>>;
  }
[[nodiscard]] EvalResult evaluate(S& sampler, R& reward, std::span<const Prompt> prompts, std::int64_t k,
                                  const SamplingParams& params, Extract answer) {
  KAIZEN_CHECK(!prompts.empty(), "evaluate: expected at least one prompt");
  KAIZEN_CHECK(k >= 1, "evaluate: k (samples per prompt) must be >= 1, got ", k);
  const auto K = static_cast<std::size_t>(k);
  std::vector<Prompt> repeated;
  repeated.reserve(prompts.size() * K);
  for (const Prompt& p : prompts)
    for (std::size_t i = 0; i < K; ++i) repeated.push_back(p);
  const std::vector<Completion> completions = sampler.sample(std::span<const Prompt>(repeated), params);
  KAIZEN_CHECK(completions.size() == repeated.size(), "evaluate: the sampler returned ", completions.size(),
               " completions for ", repeated.size(), " prompts");
  const std::vector<double> rewards = score(reward, std::span<const Prompt>(repeated), std::span<const Completion>(completions));

  EvalResult out;
  out.prompts = static_cast<std::int64_t>(prompts.size());
  out.samples_per_prompt = k;
  std::map<std::int64_t, std::pair<double, double>> by_category;  // sum, count
  double length = 0.0;
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    double sum = 0.0;
    std::vector<std::optional<std::string>> answers;
    for (std::size_t i = 0; i < K; ++i) {
      const std::size_t j = p * K + i;
      sum += rewards[j];
      length += static_cast<double>(completions[j].tokens.size());
      answers.push_back(answer(prompts[p], completions[j]));
    }
    out.pass_at_1 += sum / static_cast<double>(K);
    auto& cat = by_category[prompts[p].category];
    cat.first += sum / static_cast<double>(K);
    cat.second += 1.0;
    if (const auto vote = consistency::majority_vote(answers)) out.maj_at_k += rewards[p * K + vote->first_index];
  }
  const auto n = static_cast<double>(prompts.size());
  out.pass_at_1 /= n;
  out.maj_at_k /= n;
  out.mean_length = length / static_cast<double>(completions.size());
  for (const auto& [c, v] : by_category) out.pass_at_1_by_category[c] = v.first / v.second;
  return out;
}

}  // namespace kaizen::loop
