// DeepeningSampler over the Llama KV-cache sampler (a tiny random model): with one prompt, the adapter's
// output is exactly the concatenation of direct inner calls (round k: prompt + completion so far, at most
// b_k - b_{k-1} new tokens, seed = k-th draw of Rng(params.seed)) with the trigger between; in a batch the
// budgets, trigger places, log-probs and seeds hold for every row.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/search/deepening_sampler.hpp>

using namespace kaizen;

namespace {

lm::LlamaConfig tiny() {
  lm::LlamaConfig c;
  c.vocab_size = 16;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.max_position_embeddings = 64;
  return c;
}

}  // namespace

TEST_CASE("deepening sampler over LlamaSampler equals direct inner calls", "[search][deepening][llama]") {
  torch::manual_seed(3);
  lm::LlamaModel model(tiny());
  lm::LlamaSampler inner(model, 0);
  const std::vector<TokenId> trigger{14, 15};
  search::DeepeningSampler sampler(inner, {.initial_budget = 4, .growth = 2.0, .max_budget = 16, .trigger = trigger,
                                           .trigger_text = ""});
  SamplingParams params;
  params.temperature = 1.0;
  params.seed = 11;
  const std::vector<Prompt> one{Prompt{.tokens = {1, 2, 3}}};  // no stop token: runs to B = 16
  const std::vector<Completion> got = sampler.sample(std::span<const Prompt>(one), params);
  REQUIRE(got.size() == 1);
  // The oracle: direct calls with budgets 4, 4, 8.
  Rng seeds(params.seed);
  std::vector<TokenId> expected;
  std::vector<float> expected_lp;
  const std::vector<std::int64_t> allowed{4, 4, 8};
  for (std::size_t k = 0; k < allowed.size(); ++k) {
    Prompt p = one[0];
    p.tokens.insert(p.tokens.end(), expected.begin(), expected.end());
    SamplingParams round = params;
    round.max_new_tokens = allowed[k];
    round.seed = seeds();
    const Completion c = inner.sample(std::span<const Prompt>(&p, 1), round).front();
    REQUIRE(c.tokens.size() == static_cast<std::size_t>(allowed[k]));
    expected.insert(expected.end(), c.tokens.begin(), c.tokens.end());
    expected_lp.insert(expected_lp.end(), c.logprobs.begin(), c.logprobs.end());
    if (k + 1 < allowed.size()) {
      expected.insert(expected.end(), trigger.begin(), trigger.end());
      expected_lp.insert(expected_lp.end(), trigger.size(), 0.0F);
    }
  }
  CHECK(got[0].tokens == expected);
  CHECK(got[0].logprobs == expected_lp);
  CHECK(got[0].finish == FinishReason::length);
  CHECK(sampler.trigger_positions()[0] == std::vector<std::size_t>{4, 10});

  // A batch of 6 with a stop token: every row keeps the budget rules.
  params.stop_tokens = {13};
  const std::vector<Prompt> many(6, Prompt{.tokens = {1, 2, 3}});
  const std::vector<Completion> c = sampler.sample(std::span<const Prompt>(many), params);
  REQUIRE(c.size() == 6);
  const std::vector<std::size_t> boundaries{4, 8};
  for (std::size_t i = 0; i < c.size(); ++i) {
    const auto& at = sampler.trigger_positions()[i];
    const std::size_t generated = c[i].tokens.size() - trigger.size() * at.size();
    CHECK(generated <= 16);
    REQUIRE(at.size() <= 2);
    for (std::size_t k = 0; k < at.size(); ++k) {
      CHECK(at[k] == boundaries[k] + k * trigger.size());  // after b_k generated tokens
      CHECK(c[i].tokens[at[k]] == 14);
      CHECK(c[i].logprobs[at[k]] == 0.0F);
    }
    for (std::size_t t = 0; t < c[i].tokens.size(); ++t) CHECK(c[i].logprobs[t] <= 0.0F);
    CHECK((c[i].finish == FinishReason::stop) == (c[i].tokens.back() == 13));
    if (c[i].finish == FinishReason::length) CHECK(generated == 16);
  }
  const std::vector<Completion> again = sampler.sample(std::span<const Prompt>(many), params);
  for (std::size_t i = 0; i < c.size(); ++i) CHECK(again[i].tokens == c[i].tokens);
}
