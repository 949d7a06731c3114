#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/core/collate.hpp>

using namespace kaizen;

namespace {
std::vector<Rollout> two_rollouts() {
  return {
      {.prompt = {5, 6}, .completion = {.tokens = {7, 8, 9}, .logprobs = {-0.1F, -0.2F, -0.3F}}, .reward = 1.0, .group = 0},
      {.prompt = {4}, .completion = {.tokens = {3}, .logprobs = {-1.5F}, .finish = FinishReason::length}, .reward = 0.0, .group = 0},
  };
}
std::vector<std::int64_t> row(const torch::Tensor& t, std::int64_t b) {
  const torch::Tensor r = t[b].to(torch::kInt64).contiguous();
  return {r.data_ptr<std::int64_t>(), r.data_ptr<std::int64_t>() + r.numel()};
}
std::vector<std::int64_t> values(const torch::Tensor& t) {
  const torch::Tensor r = t.to(torch::kInt64).contiguous();
  return {r.data_ptr<std::int64_t>(), r.data_ptr<std::int64_t>() + r.numel()};
}
std::vector<float> frow(const torch::Tensor& t, std::int64_t b) {
  const torch::Tensor r = t[b].contiguous();
  return {r.data_ptr<float>(), r.data_ptr<float>() + r.numel()};
}
}  // namespace

TEST_CASE("collate pads on the right with aligned masks, positions and log-probs", "[core][collate]") {
  const auto rollouts = two_rollouts();
  const TokenBatch b = collate(rollouts, {.pad_id = 0, .vocab_size = 10});
  REQUIRE(b.input_ids.sizes() == torch::IntArrayRef({2, 5}));
  CHECK(row(b.input_ids, 0) == std::vector<std::int64_t>{5, 6, 7, 8, 9});
  CHECK(row(b.input_ids, 1) == std::vector<std::int64_t>{4, 3, 0, 0, 0});
  CHECK(row(b.attention_mask, 1) == std::vector<std::int64_t>{1, 1, 0, 0, 0});
  CHECK(row(b.prompt_mask, 0) == std::vector<std::int64_t>{1, 1, 0, 0, 0});
  CHECK(row(b.completion_mask, 0) == std::vector<std::int64_t>{0, 0, 1, 1, 1});
  CHECK(row(b.completion_mask, 1) == std::vector<std::int64_t>{0, 1, 0, 0, 0});
  CHECK(row(b.position_ids, 0) == std::vector<std::int64_t>{0, 1, 2, 3, 4});
  CHECK(row(b.position_ids, 1) == std::vector<std::int64_t>{0, 1, 0, 0, 0});
  CHECK(frow(b.old_logprobs, 0) == std::vector<float>{0.0F, 0.0F, -0.1F, -0.2F, -0.3F});
  CHECK(frow(b.old_logprobs, 1) == std::vector<float>{0.0F, -1.5F, 0.0F, 0.0F, 0.0F});
  CHECK(values(b.prompt_lengths) == std::vector<std::int64_t>{2, 1});
  CHECK(values(b.completion_lengths) == std::vector<std::int64_t>{3, 1});
  CHECK(values(b.truncated) == std::vector<std::int64_t>{0, 1});
  CHECK(b.rewards[0].item<float>() == 1.0F);
  CHECK(b.padding == Padding::right);
}

TEST_CASE("collate pads on the left so every row ends at the last column", "[core][collate]") {
  const auto rollouts = two_rollouts();
  const TokenBatch b = collate(rollouts, {.pad_id = 2, .vocab_size = 10, .padding = Padding::left});
  CHECK(row(b.input_ids, 0) == std::vector<std::int64_t>{5, 6, 7, 8, 9});
  CHECK(row(b.input_ids, 1) == std::vector<std::int64_t>{2, 2, 2, 4, 3});
  CHECK(row(b.attention_mask, 1) == std::vector<std::int64_t>{0, 0, 0, 1, 1});
  CHECK(row(b.completion_mask, 1) == std::vector<std::int64_t>{0, 0, 0, 0, 1});
  CHECK(row(b.position_ids, 1) == std::vector<std::int64_t>{0, 0, 0, 0, 1});
  CHECK(frow(b.old_logprobs, 1) == std::vector<float>{0.0F, 0.0F, 0.0F, 0.0F, -1.5F});
}

TEST_CASE("collate of prompts x group_size completions assigns group ids", "[core][collate]") {
  const std::vector<Prompt> prompts{{.tokens = {1}}, {.tokens = {2, 3}}};
  const std::vector<Completion> completions{{.tokens = {4}}, {.tokens = {5}}, {.tokens = {6}}, {.tokens = {7, 8}}};
  const std::vector<double> rewards{1, 0, 0, 1};
  const TokenBatch b = collate(prompts, completions, rewards, 2, {.vocab_size = 9});
  CHECK(values(b.group_ids) == std::vector<std::int64_t>{0, 0, 1, 1});
  CHECK(row(b.input_ids, 3) == std::vector<std::int64_t>{2, 3, 7, 8});
  CHECK_FALSE(b.old_logprobs.defined());  // no sampler log-probs were given
}

TEST_CASE("collate of groups checks rewards against completions", "[core][collate]") {
  std::vector<Group> groups{{.prompt = {.tokens = {1}}, .completions = {{.tokens = {2}}, {.tokens = {3}}}, .rewards = {1.0, 0.0}}};
  CHECK(collate(groups).batch_size() == 2);
  groups[0].rewards.pop_back();
  CHECK_THROWS_WITH(collate(groups), Catch::StartsWith("to_rollouts: group 0 has 2 completions but 1 rewards"));
}

TEST_CASE("collate rejects bad input with the offending values", "[core][collate][errors]") {
  SECTION("empty batch") {
    CHECK_THROWS_WITH(collate(std::vector<Rollout>{}), Catch::StartsWith("collate: expected at least one rollout, got an empty batch"));
    CHECK_THROWS_WITH(collate(std::vector<Group>{}), Catch::StartsWith("collate: expected at least one group"));
  }
  SECTION("empty prompt or completion") {
    auto r = two_rollouts();
    r[1].prompt.clear();
    CHECK_THROWS_WITH(collate(r), Catch::StartsWith("collate: rollout 1 has an empty prompt"));
    r = two_rollouts();
    r[0].completion.tokens.clear();
    r[0].completion.logprobs.clear();
    CHECK_THROWS_WITH(collate(r), Catch::StartsWith("collate: rollout 0 has an empty completion"));
  }
  SECTION("ragged log-probs") {
    auto r = two_rollouts();
    r[0].completion.logprobs.pop_back();
    CHECK_THROWS_WITH(collate(r), Catch::StartsWith("collate: ragged rollout 0: 3 completion tokens but 2 log-probs"));
    r = two_rollouts();
    r[1].completion.logprobs.clear();
    CHECK_THROWS_WITH(collate(r), Catch::StartsWith("collate: ragged batch: rollout 0 has sampling log-probs but rollout 1 has none"));
  }
  SECTION("token id out of range") {
    auto r = two_rollouts();
    r[1].completion.tokens[0] = 10;
    CHECK_THROWS_WITH(collate(r, {.vocab_size = 10}),
                      Catch::StartsWith("collate: rollout 1 has token id 10 at completion position 0, outside the vocabulary [0, 10)"));
    r = two_rollouts();
    r[0].prompt[1] = -3;
    CHECK_THROWS_WITH(collate(r), Catch::StartsWith("collate: rollout 0 has token id -3 at prompt position 1"));
    CHECK_THROWS_WITH(collate(two_rollouts(), {.pad_id = 12, .vocab_size = 10}),
                      Catch::StartsWith("collate: pad_id 12 is outside the vocabulary [0, 10)"));
  }
  SECTION("non-finite values") {
    auto r = two_rollouts();
    r[0].completion.logprobs[2] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH(collate(r), Catch::StartsWith("collate: rollout 0 has a non-finite log-prob nan at completion position 2"));
    r = two_rollouts();
    r[1].reward = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH(collate(r), Catch::StartsWith("collate: rollout 1 has a non-finite reward inf"));
  }
  SECTION("too long") {
    CHECK_THROWS_WITH(collate(two_rollouts(), {.max_length = 4}),
                      Catch::StartsWith("collate: rollout 0 has 5 tokens (prompt 2 + completion 3), more than max_length 4"));
  }
  SECTION("mismatched sizes") {
    const std::vector<Prompt> prompts{{.tokens = {1}}};
    const std::vector<Completion> completions{{.tokens = {4}}, {.tokens = {5}}, {.tokens = {6}}};
    const std::vector<double> three{1, 0, 0}, two{1, 0};
    CHECK_THROWS_WITH(collate(prompts, completions, three, 2),
                      Catch::StartsWith("collate: 1 prompts x group_size 2 needs 2 completions, got 3"));
    CHECK_THROWS_WITH(collate(prompts, std::span(completions).first(2), three, 2),
                      Catch::StartsWith("collate: 2 completions but 3 rewards"));
    CHECK_THROWS_WITH(collate(prompts, std::span(completions).first(2), two, 0),
                      Catch::StartsWith("collate: group_size must be > 0, got 0"));
  }
}

// Information masking (SSRL): tokens of each <information> ... </information> block leave completion_mask.
// Tags here: open = {20, 21}, close = {22, 23}; other ids are content.
TEST_CASE("collate information masking removes exactly the tagged blocks from the completion mask",
          "[core][collate]") {
  const std::vector<TokenId> open{20, 21}, close{22, 23};
  // completion: 5 | 20 21 | 7 8 9 | 22 23 | 6   (k = 3 tokens between the tags)
  std::vector<Rollout> r = {{.prompt = {2, 3}, .completion = {.tokens = {5, 20, 21, 7, 8, 9, 22, 23, 6}}, .reward = 1.0,
                             .group = 0}};
  SECTION("tags included: 3 + 4 tag tokens masked") {
    const TokenBatch b = collate(r, {.masked_spans = {TagSpan{.open = open, .close = close}}});
    CHECK(row(b.completion_mask, 0) == std::vector<std::int64_t>{0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1});
    CHECK(b.completion_mask.sum().item<std::int64_t>() == 9 - 7);
    CHECK(values(b.completion_lengths) == std::vector<std::int64_t>{9});  // lengths unchanged
    CHECK(row(b.attention_mask, 0) == std::vector<std::int64_t>(11, 1));
  }
  SECTION("tags excluded: exactly k = 3 tokens masked") {
    const TokenBatch b = collate(r, {.masked_spans = {TagSpan{.open = open, .close = close, .include_tags = false}}});
    CHECK(row(b.completion_mask, 0) == std::vector<std::int64_t>{0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1});
    CHECK(b.completion_mask.sum().item<std::int64_t>() == 9 - 3);
  }
  SECTION("no option: the whole completion is trained on") {
    CHECK(collate(r).completion_mask.sum().item<std::int64_t>() == 9);
  }
  SECTION("left padding shifts the mask with the tokens") {
    r.push_back({.prompt = {2}, .completion = {.tokens = {4}}, .reward = 0.0, .group = 0});
    const TokenBatch b = collate(r, {.padding = Padding::left,
                                     .masked_spans = {TagSpan{.open = open, .close = close, .include_tags = false}}});
    CHECK(row(b.completion_mask, 0) == std::vector<std::int64_t>{0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1});
    CHECK(row(b.completion_mask, 1) == std::vector<std::int64_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  }
}

TEST_CASE("information_mask: several blocks, unclosed block, tags in the prompt, several pairs", "[core][collate]") {
  const TagSpan info{.open = {20}, .close = {22}};
  const TagSpan inner{.open = {20}, .close = {22}, .include_tags = false};
  auto masked = [](const std::vector<bool>& keep) {
    std::vector<int> out;
    for (bool k : keep) out.push_back(k ? 1 : 0);
    return out;
  };
  const std::vector<TokenId> two_blocks{1, 20, 5, 22, 2, 20, 6, 7, 22, 3};
  CHECK(masked(information_mask(two_blocks, std::vector<TagSpan>{info})) == std::vector<int>{1, 0, 0, 0, 1, 0, 0, 0, 0, 1});
  CHECK(masked(information_mask(two_blocks, std::vector<TagSpan>{inner})) == std::vector<int>{1, 1, 0, 1, 1, 1, 0, 0, 1, 1});
  // an open tag with no close masks to the end
  const std::vector<TokenId> unclosed{1, 20, 5, 6};
  CHECK(masked(information_mask(unclosed, std::vector<TagSpan>{info})) == std::vector<int>{1, 0, 0, 0});
  CHECK(masked(information_mask(unclosed, std::vector<TagSpan>{inner})) == std::vector<int>{1, 1, 0, 0});
  // a close with no open before it masks nothing; a second open inside a block is content
  const std::vector<TokenId> stray{22, 1, 20, 20, 5, 22, 22};
  CHECK(masked(information_mask(stray, std::vector<TagSpan>{info})) == std::vector<int>{1, 1, 0, 0, 0, 0, 1});
  // two pairs combine
  const TagSpan other{.open = {30}, .close = {31}};
  const std::vector<TokenId> mixed{30, 4, 31, 20, 5, 22, 9};
  CHECK(masked(information_mask(mixed, std::vector<TagSpan>{info, other})) == std::vector<int>{0, 0, 0, 0, 0, 0, 1});
  // tags in the prompt do not open a block in the completion
  std::vector<Rollout> r = {{.prompt = {20, 3}, .completion = {.tokens = {5, 22, 6}}, .reward = 0.0, .group = 0}};
  CHECK(collate(r, {.masked_spans = {info}}).completion_mask.sum().item<std::int64_t>() == 3);
}

TEST_CASE("collate information masking rejects empty tags with the values", "[core][collate]") {
  const auto rollouts = two_rollouts();
  CHECK_THROWS_WITH(collate(rollouts, {.masked_spans = {TagSpan{.open = {}, .close = {22}}}}),
                    Catch::StartsWith("collate: masked_spans[0] has an empty open tag (0 open tokens, 1 close tokens)"));
  CHECK_THROWS_WITH(collate(rollouts, {.masked_spans = {TagSpan{.open = {1}, .close = {2}}, TagSpan{.open = {3}, .close = {}}}}),
                    Catch::StartsWith("collate: masked_spans[1] has an empty close tag (1 open tokens, 0 close tokens)"));
  const std::vector<TokenId> tokens{1, 2};
  CHECK_THROWS_WITH(information_mask(tokens, std::vector<TagSpan>{TagSpan{}}),
                    Catch::StartsWith("collate: masked_spans[0] has an empty open tag"));
}
