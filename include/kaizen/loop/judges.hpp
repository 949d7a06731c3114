// kaizen/loop/judges.hpp - Judge adapters (core/judge.hpp): what ranks a policy's samples in iterated
// preference optimisation.
//
//   OutcomeJudge   any OutcomeReward scores each candidate alone: a Verifier (true = 1, false = 0) or a
//                  reward model (per-sample or batched form; one batched call per prompt).
//                  verifier_judge(v) and reward_model_judge(rm) build it.
//   PolicyJudge    the policy as its own judge (LLM-as-a-judge, Self-Rewarding): for each candidate y of
//                  prompt x the judge prompt is the template with every "{prompt}" replaced by x's text and
//                  every "{response}" by y's text; the sampler (over the policy) writes `judgements`
//                  judgements per candidate, each parsed by the score parser (default
//                  reward::parse_judge_score: <score>X</score>, \boxed{X}, "score: X", or a bare X on
//                  [0, max_score]); the candidate's score is the mean over its judgements of
//                  parsed / max_score, where an unparsable judgement counts 0. All judgements of one call
//                  are drawn in one sampler call with seed = mix(options.seed, call index), so the judge's
//                  only state is its call counter (state() / restore(), saved by the loops' checkpoints).
//
// References: Yuan et al. 2024, "Self-Rewarding Language Models" (arXiv 2401.10020: an additive 5-point
// judge prompt, the mean of 3 sampled judgements); Zheng et al. 2023, "Judging LLM-as-a-Judge"
// (arXiv 2306.05685). LibTorch-free.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/judge.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/reward/self_judge.hpp>

namespace kaizen::loop {

/// An OutcomeReward as a Judge: scores[i] = reward(prompt, candidates[i]). Holds a pointer to the reward.
template <OutcomeReward R>
struct OutcomeJudge {
  R* reward = nullptr;

  /// Throws kaizen::Error when no reward was given, and for everything kaizen::score rejects (wrong count
  /// from a batched reward, a non-finite score).
  [[nodiscard]] std::vector<double> operator()(const Prompt& prompt, std::span<const Completion> candidates) {
    KAIZEN_CHECK(reward != nullptr, "OutcomeJudge: no reward was given");
    const std::vector<Prompt> prompts(candidates.size(), prompt);
    return score(*reward, std::span<const Prompt>(prompts), candidates);
  }
};

/// A verifier as a judge: a correct candidate scores 1, a wrong one 0.
template <Verifier V>
[[nodiscard]] OutcomeJudge<V> verifier_judge(V& verifier) {
  return {&verifier};
}

/// A reward model (any OutcomeReward; the batched form is called once per prompt) as a judge.
template <OutcomeReward R>
[[nodiscard]] OutcomeJudge<R> reward_model_judge(R& reward_model) {
  return {&reward_model};
}

/// How the policy judges.
struct PolicyJudgeOptions {
  /// The judge prompt; "{prompt}" and "{response}" are replaced by the texts (both placeholders required).
  std::string prompt_template = "{prompt}{response}";
  SamplingParams sampling{};                    ///< how a judgement is drawn (its seed is replaced per call)
  std::int64_t judgements = 1;                  ///< judgements per candidate, averaged; >= 1
  reward::JudgeScoreOptions score{};            ///< the judge's scale [0, max_score]
  std::uint64_t seed = 0;                       ///< with the call index, seeds each call's sampling
};

/// The policy as a judge (see the header). `encode(text) -> token ids` and `decode(ids) -> text` are the
/// policy's tokenizer; `parse(judgement) -> optional score on [0, max_score]` defaults to
/// reward::parse_judge_score.
template <Sampler S>
class PolicyJudge {
 public:
  using Encode = std::function<std::vector<TokenId>(std::string_view)>;
  using Decode = std::function<std::string(std::span<const TokenId>)>;
  using Parse = std::function<std::optional<double>(std::string_view)>;

  /// Throws kaizen::Error when encode or decode is empty, judgements < 1, the template lacks a
  /// placeholder, or the sampling parameters are invalid.
  PolicyJudge(S& sampler, Encode encode, Decode decode, PolicyJudgeOptions options = {}, Parse parse = {})
      : sampler_(&sampler), encode_(std::move(encode)), decode_(std::move(decode)), options_(std::move(options)),
        parse_(std::move(parse)) {
    KAIZEN_CHECK(static_cast<bool>(encode_) && static_cast<bool>(decode_), "PolicyJudge: encode and decode are required");
    KAIZEN_CHECK(options_.judgements >= 1, "PolicyJudge: judgements must be >= 1, got ", options_.judgements);
    KAIZEN_CHECK(options_.prompt_template.find("{prompt}") != std::string::npos &&
                     options_.prompt_template.find("{response}") != std::string::npos,
                 "PolicyJudge: the prompt template must contain {prompt} and {response}, got \"",
                 options_.prompt_template, "\"");
    validate(options_.sampling);
    if (!parse_) {
      const reward::JudgeScoreOptions scale = options_.score;
      parse_ = [scale](std::string_view text) { return reward::parse_judge_score(text, scale); };
    }
  }

  /// One score in [0, 1] per candidate (see the header). Throws kaizen::Error when the sampler returns the
  /// wrong number of judgements, or the parser returns a value outside [0, max_score] or non-finite.
  [[nodiscard]] std::vector<double> operator()(const Prompt& prompt, std::span<const Completion> candidates) {
    const std::string prompt_text = prompt.text.empty() ? decode_(prompt.tokens) : prompt.text;
    const auto K = static_cast<std::size_t>(options_.judgements);
    std::vector<Prompt> judge_prompts;
    judge_prompts.reserve(candidates.size() * K);
    for (const Completion& c : candidates) {
      Prompt p;
      p.text = judge_prompt(prompt_text, c.text.empty() ? decode_(c.tokens) : c.text);
      p.tokens = encode_(p.text);
      p.id = prompt.id;
      p.category = prompt.category;
      for (std::size_t k = 0; k < K; ++k) judge_prompts.push_back(p);
    }
    SamplingParams params = options_.sampling;
    params.seed = options_.seed * 0x9E3779B97F4A7C15ULL + calls_ * 0xBF58476D1CE4E5B9ULL + 1;
    ++calls_;
    std::vector<double> out(candidates.size(), 0.0);
    if (judge_prompts.empty()) return out;
    const std::vector<Completion> judged = sampler_->sample(std::span<const Prompt>(judge_prompts), params);
    KAIZEN_CHECK(judged.size() == judge_prompts.size(), "PolicyJudge: the sampler returned ", judged.size(),
                 " judgements for ", judge_prompts.size(), " judge prompts");
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      for (std::size_t k = 0; k < K; ++k) {
        const Completion& j = judged[i * K + k];
        const std::optional<double> v = parse_(j.text.empty() ? decode_(j.tokens) : j.text);
        if (!v) {
          ++unparsable_;
          continue;
        }
        KAIZEN_CHECK(std::isfinite(*v) && *v >= 0.0 && *v <= options_.score.max_score, "PolicyJudge: the parser returned ",
                     *v, ", outside [0, ", options_.score.max_score, "]");
        out[i] += *v / options_.score.max_score;
      }
      out[i] /= static_cast<double>(K);
    }
    return out;
  }

  /// The judge prompt text for one prompt and one response.
  [[nodiscard]] std::string judge_prompt(std::string_view prompt_text, std::string_view response_text) const {
    std::string out;
    const std::string& t = options_.prompt_template;
    for (std::size_t i = 0; i < t.size();) {
      if (t.compare(i, 8, "{prompt}") == 0) {
        out += prompt_text;
        i += 8;
      } else if (t.compare(i, 10, "{response}") == 0) {
        out += response_text;
        i += 10;
      } else {
        out += t[i++];
      }
    }
    return out;
  }

  /// Calls so far: the judge's only state (the next call's seed depends on it).
  [[nodiscard]] std::uint64_t state() const noexcept { return calls_; }
  void restore(std::uint64_t calls) noexcept { calls_ = calls; }
  /// Judgements that could not be parsed (scored 0), since construction.
  [[nodiscard]] std::int64_t unparsable() const noexcept { return unparsable_; }

 private:
  S* sampler_;
  Encode encode_;
  Decode decode_;
  PolicyJudgeOptions options_;
  Parse parse_;
  std::uint64_t calls_ = 0;
  std::int64_t unparsable_ = 0;
};

}  // namespace kaizen::loop
