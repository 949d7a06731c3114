// kaizen/loop/steps.hpp - reasoning steps: where a completion's steps end, and a step-wise search
// problem whose next steps come from a Sampler (the policy) and whose values come from a process
// reward / value model, for search::Mcts and search::beam_search.
//
// Segmentation (StepSegmenter). A step ends after
//   - a delimiter token (e.g. the id of ';' or '\n'), the delimiter being the step's last token, or
//   - the first token at which a callable `ends(step_tokens_so_far) -> bool` says so, or
//   - an end token (end of the solution, e.g. EOS), which also ends the solution, or
//   - max_step_tokens tokens, when neither came: a step is never longer than that.
// A solution has at most max_steps steps: split_steps puts everything after step max_steps − 1 into
// the last step, and the search problem marks a node at depth max_steps terminal. So a policy that
// never produces the delimiter still gives bounded steps and a bounded tree depth (never a hang).
//
// StepSearchProblem. Node state = prompt + the tokens of the steps on the path. expand() asks the
// sampler, in ONE call for every request of the round, for count · oversample continuations of each
// leaf's prefix (the search keeps the first `count` distinct ones), sampled with stop tokens {delimiter} ∪ end_tokens and max_new_tokens = max_step_tokens
// (with only a callable, the sample is cut at its first step end and the rest is dropped; the
// dropped tokens still count as generated). Identical step token sequences proposed for one leaf are
// merged (the first kept). A child whose step ended with an end token, or that reaches max_steps, is
// terminal. evaluate() is the caller's evaluator (a value model or a ProcessReward adapter), called
// once per round. Every sampler call draws its seed from the problem's engine, so a search is
// reproducible from (seed, policy, evaluator).
//
// Reference: Zhang et al., "ReST-MCTS*" (2024, arXiv 2406.03816): MCTS* over reasoning steps, one
// step per node, step ends at a delimiter; Lightman et al. (2023, arXiv 2305.20050): step-level PRMs.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/search/problem.hpp>
#include <kaizen/search/tree.hpp>

namespace kaizen::loop {

/// Where steps end (see the file comment).
struct StepSegmenter {
  TokenId delimiter = -1;                ///< the token that ends a step; < 0 = none
  std::vector<TokenId> end_tokens;       ///< tokens that end the solution (EOS); part of the last step
  std::function<bool(std::span<const TokenId>)> ends{};  ///< optional: true when the step ends after its last token
  std::int64_t max_step_tokens = 16;     ///< a step is never longer, > 0
  std::int64_t max_steps = 8;            ///< a solution has at most this many steps, > 0

  /// Throws kaizen::Error unless the segmenter can end a step and its bounds are positive.
  void validate(const char* who = "StepSegmenter") const {
    KAIZEN_CHECK(max_step_tokens > 0, who, ": max_step_tokens must be > 0, got ", max_step_tokens);
    KAIZEN_CHECK(max_steps > 0, who, ": max_steps must be > 0, got ", max_steps);
    KAIZEN_CHECK(delimiter >= 0 || static_cast<bool>(ends) || !end_tokens.empty(), who,
                 ": expected a delimiter token, an `ends` callable or end tokens; got none");
  }

  [[nodiscard]] bool is_end(TokenId t) const noexcept {
    return std::find(end_tokens.begin(), end_tokens.end(), t) != end_tokens.end();
  }

  /// The length of the first step of `tokens` (0 only for empty input) and whether it ended the solution.
  [[nodiscard]] std::pair<std::size_t, bool> first_step(std::span<const TokenId> tokens) const {
    const std::size_t limit = std::min(tokens.size(), static_cast<std::size_t>(max_step_tokens));
    for (std::size_t i = 0; i < limit; ++i) {
      if (is_end(tokens[i])) return {i + 1, true};
      if (tokens[i] == delimiter) return {i + 1, false};
      if (ends && ends(tokens.subspan(0, i + 1))) return {i + 1, false};
    }
    return {limit, false};
  }
};

/// The step lengths of a whole completion (their sum is tokens.size(); at most max_steps steps, the
/// last one taking whatever remains). Empty input gives no step. Throws kaizen::Error on an invalid
/// segmenter.
[[nodiscard]] inline std::vector<std::size_t> split_steps(std::span<const TokenId> tokens, const StepSegmenter& seg) {
  seg.validate("split_steps");
  std::vector<std::size_t> out;
  std::size_t pos = 0;
  while (pos < tokens.size()) {
    if (static_cast<std::int64_t>(out.size()) + 1 == seg.max_steps) {
      out.push_back(tokens.size() - pos);
      break;
    }
    const auto [len, done] = seg.first_step(tokens.subspan(pos));
    out.push_back(len);
    pos += len;
    if (done) {
      if (pos < tokens.size()) out.back() += tokens.size() - pos;  // tokens after the end token: same step
      break;
    }
  }
  return out;
}

/// Per-node payload of a step search: whether the node's step ended the solution.
struct StepState {
  bool finished = false;
};

/// Options of StepSearchProblem.
struct StepSearchOptions {
  StepSegmenter segmenter{};
  SamplingParams sampling{};  ///< temperature etc.; stop tokens, max_new_tokens and seed are set per call
  std::uint32_t oversample = 1;  ///< samples drawn per requested child (> 0); the distinct ones are proposed
  std::uint64_t seed = 0;     ///< seeds the problem's engine (one sampler seed per expand call)
};

/// A step-wise search problem over a Sampler (see the file comment). `Evaluate` is
/// `void(const Tree<StepState>&, std::span<const NodeId>, std::span<double>)`; `Decode` (optional)
/// turns step tokens into the step text stored in the tree (what a text ProcessReward reads).
template <Sampler S, class Evaluate>
class StepSearchProblem {
 public:
  using State = StepState;
  using Decode = std::function<std::string(std::span<const TokenId>)>;

  /// Holds references to `sampler` and `evaluate` (both must outlive the problem). Throws kaizen::Error on
  /// an invalid segmenter or sampling params, or an empty prompt.
  StepSearchProblem(S& sampler, Evaluate& evaluate, Prompt prompt, StepSearchOptions options, Decode decode = {})
      : sampler_(sampler), evaluate_(evaluate), prompt_(std::move(prompt)), options_(std::move(options)),
        decode_(std::move(decode)), rng_(options_.seed) {
    options_.segmenter.validate("StepSearchProblem");
    KAIZEN_CHECK(options_.oversample > 0, "StepSearchProblem: oversample must be > 0, got 0");
    KAIZEN_CHECK(!prompt_.tokens.empty(), "StepSearchProblem: the prompt has no tokens");
    params_ = options_.sampling;
    params_.max_new_tokens = options_.segmenter.max_step_tokens;
    params_.stop_tokens = options_.segmenter.end_tokens;
    if (options_.segmenter.delimiter >= 0) params_.stop_tokens.push_back(options_.segmenter.delimiter);
    validate(params_);
  }

  /// The prompt tokens followed by the step tokens of every node from the root down to `id`.
  [[nodiscard]] std::vector<TokenId> prefix(const search::Tree<State>& tree, search::NodeId id) const {
    std::vector<TokenId> out = prompt_.tokens;
    for (search::NodeId n : tree.path(id)) {
      const auto t = tree.tokens(n);
      out.insert(out.end(), t.begin(), t.end());
    }
    return out;
  }

  void expand(const search::Tree<State>& tree, std::span<const search::ExpandRequest> requests,
              search::Expansion<State>& out) {
    std::vector<Prompt> prompts;
    std::vector<std::size_t> owner;
    for (std::size_t r = 0; r < requests.size(); ++r) {
      Prompt p = prompt_;
      p.tokens = prefix(tree, requests[r].leaf);
      for (std::uint32_t k = 0; k < requests[r].count * options_.oversample; ++k) {
        prompts.push_back(p);
        owner.push_back(r);
      }
    }
    if (prompts.empty()) return;
    params_.seed = rng_();
    const std::vector<Completion> samples = sampler_.sample(std::span<const Prompt>(prompts), params_);
    KAIZEN_CHECK(samples.size() == prompts.size(), "StepSearchProblem: the sampler returned ", samples.size(),
                 " completions for ", prompts.size(), " prompts");
    ++sampler_calls_;
    const StepSegmenter& seg = options_.segmenter;
    std::vector<std::vector<TokenId>> seen;  // steps proposed for the current request
    std::size_t current = requests.size();
    for (std::size_t i = 0; i < samples.size(); ++i) {
      const std::vector<TokenId>& t = samples[i].tokens;
      generated_tokens_ += t.size();
      if (owner[i] != current) {
        seen.clear();
        current = owner[i];
      }
      const auto [len, finished] = seg.first_step(t);
      if (len == 0) continue;  // an empty sample proposes nothing
      std::vector<TokenId> step(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(len));
      if (std::find(seen.begin(), seen.end(), step) != seen.end()) continue;
      seen.push_back(step);
      const std::uint32_t depth = tree[requests[owner[i]].leaf].depth + 1;
      const bool done = finished || depth >= static_cast<std::uint32_t>(seg.max_steps);
      const std::string text = decode_ ? decode_(step) : std::string();
      out.add(owner[i], State{done}, 1.0, text, step);
    }
  }

  void evaluate(const search::Tree<State>& tree, std::span<const search::NodeId> nodes, std::span<double> values) {
    evaluate_(tree, nodes, values);
  }

  [[nodiscard]] bool terminal(const search::Tree<State>& tree, search::NodeId id) const {
    return tree.state(id).finished || tree[id].depth >= static_cast<std::uint32_t>(options_.segmenter.max_steps);
  }

  [[nodiscard]] const Prompt& prompt() const noexcept { return prompt_; }
  [[nodiscard]] const StepSearchOptions& options() const noexcept { return options_; }
  /// Tokens the sampler generated so far (dropped tails and merged duplicates included).
  [[nodiscard]] std::uint64_t generated_tokens() const noexcept { return generated_tokens_; }
  [[nodiscard]] std::uint64_t sampler_calls() const noexcept { return sampler_calls_; }

 private:
  S& sampler_;
  Evaluate& evaluate_;
  Prompt prompt_;
  StepSearchOptions options_;
  Decode decode_;
  Rng rng_;
  SamplingParams params_;
  std::uint64_t generated_tokens_ = 0;
  std::uint64_t sampler_calls_ = 0;
};

}  // namespace kaizen::loop
