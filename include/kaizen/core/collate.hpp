// kaizen/core/collate.hpp - rollouts -> TokenBatch (padded tensors and masks), with the input checks
// that keep ragged or out-of-range data from turning into a silently wrong loss.
//
// Information masking (SSRL, Fan et al. 2025, arXiv 2508.10874): CollateOptions::masked_spans lists
// tag pairs given as token-id sequences (e.g. the tokens of "<information>" and "</information>").
// In every completion, each block `open ... close` (searched left to right, non-overlapping, the
// first `close` after its `open`) is taken out of completion_mask, so the policy-gradient loss never
// trains the model to write those tokens (in SSRL, the text the policy "retrieves" for itself) while
// they still condition the tokens after them. Rules, per completion:
//   - include_tags = true (default): the open and close tags' tokens are masked too; false: only the
//     tokens strictly between them.
//   - an `open` with no `close` after it masks to the end of the completion.
//   - tags are matched on the completion's tokens only (never across the prompt boundary).
//   - several TagSpans: each is applied on its own; the masks are combined (a token is masked when
//     any pair covers it).
// A block of k tokens between the tags (include_tags = false) therefore removes exactly k tokens.
// prompt_mask, attention_mask, old_logprobs and completion_lengths are unchanged. Text-level spans
// (byte offsets) are in reward/format.hpp (tag_spans, span_token_mask).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen {

/// A pair of tags as token-id sequences; the tokens of each block between them leave the completion
/// mask (information masking, see the file comment).
struct TagSpan {
  std::vector<TokenId> open;   ///< non-empty
  std::vector<TokenId> close;  ///< non-empty
  bool include_tags = true;    ///< mask the tags' own tokens too
};

struct CollateOptions {
  TokenId pad_id = 0;               ///< written where attention_mask is false
  std::int64_t vocab_size = 0;      ///< > 0: every token id must lie in [0, vocab_size); 0: only >= 0
  Padding padding = Padding::right;
  std::int64_t max_length = 0;      ///< > 0: a longer prompt + completion is an error; 0: no limit
  torch::Device device = torch::kCPU;
  std::vector<TagSpan> masked_spans{};  ///< information masking: blocks excluded from completion_mask
};

/// For one completion: keep[t] = false when token t lies in a block of one of `spans` (rules in the
/// file comment), true otherwise. Throws kaizen::Error when a TagSpan has an empty open or close tag.
[[nodiscard]] inline std::vector<bool> information_mask(std::span<const TokenId> tokens,
                                                        std::span<const TagSpan> spans) {
  std::vector<bool> keep(tokens.size(), true);
  auto find = [&](const std::vector<TokenId>& needle, std::size_t from) {
    if (needle.size() > tokens.size()) return tokens.size();
    for (std::size_t at = from; at + needle.size() <= tokens.size(); ++at)
      if (std::equal(needle.begin(), needle.end(), tokens.begin() + static_cast<std::ptrdiff_t>(at))) return at;
    return tokens.size();
  };
  for (std::size_t k = 0; k < spans.size(); ++k) {
    const TagSpan& s = spans[k];
    KAIZEN_CHECK(!s.open.empty() && !s.close.empty(), "collate: masked_spans[", k, "] has an empty ",
                 s.open.empty() ? "open" : "close", " tag (", s.open.size(), " open tokens, ", s.close.size(),
                 " close tokens); both must be non-empty token sequences");
    std::size_t pos = 0;
    while (pos < tokens.size()) {
      const std::size_t at = find(s.open, pos);
      if (at >= tokens.size()) break;
      const std::size_t body = at + s.open.size();
      const std::size_t close = find(s.close, body);
      const std::size_t begin = s.include_tags ? at : body;
      const std::size_t end = close >= tokens.size() ? tokens.size() : (s.include_tags ? close + s.close.size() : close);
      for (std::size_t t = begin; t < end; ++t) keep[t] = false;
      if (close >= tokens.size()) break;
      pos = close + s.close.size();
    }
  }
  return keep;
}

/// Pads `rollouts` into a TokenBatch (see token_batch.hpp for the layout).
/// Throws kaizen::Error, naming the rollout and the values, for: no rollouts; an empty prompt or
/// completion; log-probs whose count differs from the completion's tokens, or present on some
/// rollouts and absent on others (ragged); a token id outside [0, vocab_size); a non-finite
/// log-prob or reward; a sequence longer than max_length; pad_id outside the vocabulary; a
/// masked_spans entry with an empty tag.
[[nodiscard]] inline TokenBatch collate(std::span<const Rollout> rollouts, const CollateOptions& options = {}) {
  KAIZEN_CHECK(!rollouts.empty(), "collate: expected at least one rollout, got an empty batch");
  KAIZEN_CHECK(options.vocab_size >= 0, "collate: vocab_size must be >= 0 (0 = unchecked), got ",
               options.vocab_size);
  KAIZEN_CHECK(options.pad_id >= 0 && (options.vocab_size == 0 || options.pad_id < options.vocab_size),
               "collate: pad_id ", options.pad_id, " is outside the vocabulary [0, ", options.vocab_size, ")");
  for (std::size_t k = 0; k < options.masked_spans.size(); ++k)
    KAIZEN_CHECK(!options.masked_spans[k].open.empty() && !options.masked_spans[k].close.empty(), "collate: masked_spans[",
                 k, "] has an empty ", options.masked_spans[k].open.empty() ? "open" : "close", " tag (",
                 options.masked_spans[k].open.size(), " open tokens, ", options.masked_spans[k].close.size(),
                 " close tokens); both must be non-empty token sequences");
  const auto batch = static_cast<std::int64_t>(rollouts.size());
  const bool with_logprobs = !rollouts.front().completion.logprobs.empty();

  auto check_ids = [&](std::span<const TokenId> ids, std::size_t row, const char* what) {
    for (std::size_t t = 0; t < ids.size(); ++t) {
      const TokenId id = ids[t];
      KAIZEN_CHECK(id >= 0 && (options.vocab_size == 0 || id < options.vocab_size), "collate: rollout ", row,
                   " has token id ", id, " at ", what, " position ", t, ", outside the vocabulary [0, ",
                   options.vocab_size == 0 ? std::string("inf") : std::to_string(options.vocab_size), ")");
    }
  };

  std::int64_t length = 0;
  for (std::size_t i = 0; i < rollouts.size(); ++i) {
    const Rollout& r = rollouts[i];
    const Completion& c = r.completion;
    KAIZEN_CHECK(!r.prompt.empty(), "collate: rollout ", i, " has an empty prompt (the first completion token "
                 "needs at least one prompt token to be predicted from)");
    KAIZEN_CHECK(!c.tokens.empty(), "collate: rollout ", i, " has an empty completion");
    KAIZEN_CHECK(with_logprobs == !c.logprobs.empty(), "collate: ragged batch: rollout 0 ",
                 with_logprobs ? "has" : "has no", " sampling log-probs but rollout ", i,
                 with_logprobs ? " has none" : " has some");
    KAIZEN_CHECK(!with_logprobs || c.logprobs.size() == c.tokens.size(), "collate: ragged rollout ", i, ": ",
                 c.tokens.size(), " completion tokens but ", c.logprobs.size(), " log-probs");
    check_ids(r.prompt, i, "prompt");
    check_ids(c.tokens, i, "completion");
    for (std::size_t t = 0; t < c.logprobs.size(); ++t) {
      KAIZEN_CHECK(std::isfinite(c.logprobs[t]), "collate: rollout ", i, " has a non-finite log-prob ",
                   c.logprobs[t], " at completion position ", t);
    }
    KAIZEN_CHECK(std::isfinite(r.reward), "collate: rollout ", i, " has a non-finite reward ", r.reward);
    const auto n = static_cast<std::int64_t>(r.prompt.size() + c.tokens.size());
    KAIZEN_CHECK(options.max_length == 0 || n <= options.max_length, "collate: rollout ", i, " has ", n,
                 " tokens (prompt ", r.prompt.size(), " + completion ", c.tokens.size(),
                 "), more than max_length ", options.max_length);
    length = std::max(length, n);
  }

  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  const auto b8 = torch::TensorOptions().dtype(torch::kBool);
  TokenBatch out;
  out.padding = options.padding;
  out.input_ids = torch::full({batch, length}, options.pad_id, i64);
  out.attention_mask = torch::zeros({batch, length}, b8);
  out.prompt_mask = torch::zeros({batch, length}, b8);
  out.completion_mask = torch::zeros({batch, length}, b8);
  out.position_ids = torch::zeros({batch, length}, i64);
  if (with_logprobs) out.old_logprobs = torch::zeros({batch, length}, f32);
  out.rewards = torch::empty({batch}, f32);
  out.group_ids = torch::empty({batch}, i64);
  out.prompt_lengths = torch::empty({batch}, i64);
  out.completion_lengths = torch::empty({batch}, i64);
  out.truncated = torch::empty({batch}, b8);

  auto ids = out.input_ids.accessor<std::int64_t, 2>();
  auto attention = out.attention_mask.accessor<bool, 2>();
  auto prompt_mask = out.prompt_mask.accessor<bool, 2>();
  auto completion_mask = out.completion_mask.accessor<bool, 2>();
  auto positions = out.position_ids.accessor<std::int64_t, 2>();
  auto rewards = out.rewards.accessor<float, 1>();
  auto group_ids = out.group_ids.accessor<std::int64_t, 1>();
  auto prompt_lengths = out.prompt_lengths.accessor<std::int64_t, 1>();
  auto completion_lengths = out.completion_lengths.accessor<std::int64_t, 1>();
  auto truncated = out.truncated.accessor<bool, 1>();
  for (std::int64_t b = 0; b < batch; ++b) {
    const Rollout& r = rollouts[static_cast<std::size_t>(b)];
    const auto np = static_cast<std::int64_t>(r.prompt.size());
    const auto nc = static_cast<std::int64_t>(r.completion.tokens.size());
    const std::int64_t start = options.padding == Padding::left ? length - np - nc : 0;
    const std::vector<bool> keep = options.masked_spans.empty()
                                       ? std::vector<bool>()
                                       : information_mask(r.completion.tokens, options.masked_spans);
    for (std::int64_t t = 0; t < np + nc; ++t) {
      const std::int64_t col = start + t;
      const bool in_prompt = t < np;
      ids[b][col] = in_prompt ? r.prompt[static_cast<std::size_t>(t)]
                              : r.completion.tokens[static_cast<std::size_t>(t - np)];
      attention[b][col] = true;
      prompt_mask[b][col] = in_prompt;
      completion_mask[b][col] = !in_prompt && (keep.empty() || keep[static_cast<std::size_t>(t - np)]);
      positions[b][col] = t;
    }
    if (with_logprobs) {
      auto lp = out.old_logprobs.accessor<float, 2>();
      for (std::int64_t t = 0; t < nc; ++t) lp[b][start + np + t] = r.completion.logprobs[static_cast<std::size_t>(t)];
    }
    rewards[b] = static_cast<float>(r.reward);
    group_ids[b] = r.group;
    prompt_lengths[b] = np;
    completion_lengths[b] = nc;
    truncated[b] = r.completion.finish == FinishReason::length;
  }
  return options.device == torch::Device(torch::kCPU) ? out : out.to(options.device);
}

/// Collates groups (group id = index in `groups`); throws when a group's rewards and completions differ
/// in count, and for everything the rollout overload rejects.
[[nodiscard]] inline TokenBatch collate(std::span<const Group> groups, const CollateOptions& options = {}) {
  KAIZEN_CHECK(!groups.empty(), "collate: expected at least one group, got an empty batch");
  const std::vector<Rollout> rollouts = to_rollouts(groups);
  return collate(std::span<const Rollout>(rollouts), options);
}

/// Collates the usual sampler output: `completions` holds `group_size` completions per prompt, in
/// prompt order (completions[p * group_size + i] answers prompts[p]); `rewards` has one per completion.
/// Throws when the sizes do not match.
[[nodiscard]] inline TokenBatch collate(std::span<const Prompt> prompts, std::span<const Completion> completions,
                                        std::span<const double> rewards, std::int64_t group_size,
                                        const CollateOptions& options = {}) {
  KAIZEN_CHECK(group_size > 0, "collate: group_size must be > 0, got ", group_size);
  KAIZEN_CHECK(!prompts.empty(), "collate: expected at least one prompt, got an empty batch");
  KAIZEN_CHECK(completions.size() == prompts.size() * static_cast<std::size_t>(group_size), "collate: ",
               prompts.size(), " prompts x group_size ", group_size, " needs ",
               prompts.size() * static_cast<std::size_t>(group_size), " completions, got ", completions.size());
  KAIZEN_CHECK(rewards.size() == completions.size(), "collate: ", completions.size(), " completions but ",
               rewards.size(), " rewards");
  std::vector<Rollout> rollouts;
  rollouts.reserve(completions.size());
  for (std::size_t i = 0; i < completions.size(); ++i) {
    const std::size_t p = i / static_cast<std::size_t>(group_size);
    rollouts.push_back(Rollout{prompts[p].tokens, completions[i], rewards[i], static_cast<std::int64_t>(p)});
  }
  return collate(std::span<const Rollout>(rollouts), options);
}

}  // namespace kaizen
