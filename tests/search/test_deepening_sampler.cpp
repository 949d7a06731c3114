// Tests of search/deepening_sampler.hpp: budgets and trigger placement against hand-computed oracles,
// batching (stopped sequences drop out), seeds, use inside best-of-N and a loop's rollout stage, errors.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/core/rng.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/prompts.hpp>
#include <kaizen/loop/rollout.hpp>
#include <kaizen/search/best_of_n.hpp>
#include <kaizen/search/deepening_sampler.hpp>

using namespace kaizen;
using namespace kaizen::search;

namespace {

constexpr TokenId kGen = 7, kEos = 9, kT1 = 5, kT2 = 6;

/// A scripted sampler: prompt.id = the total number of tokens the response generates before it stops
/// (its last one is EOS), or -1 = never stops. It counts what it generated earlier from the prompt's
/// tokens (kGen), so it continues a response across rounds. `context` > 0 caps prompt + completion.
/// Log-prob -0.5 per token, text "a" per token.
struct ScriptedSampler {
  std::int64_t context = 0;
  std::vector<std::size_t> batch_sizes;
  std::vector<std::int64_t> max_new;
  std::vector<std::uint64_t> seeds;
  int wrong_count = 0;  // test hook: return this many extra completions
  int overshoot = 0;    // test hook: return this many tokens beyond the budget

  std::vector<Completion> sample(std::span<const Prompt> prompts, const SamplingParams& params) {
    batch_sizes.push_back(prompts.size());
    max_new.push_back(params.max_new_tokens);
    seeds.push_back(params.seed);
    std::vector<Completion> out;
    for (const Prompt& p : prompts) {
      std::int64_t done = 0;
      for (TokenId t : p.tokens) done += t == kGen ? 1 : 0;
      std::int64_t n = params.max_new_tokens + overshoot;
      bool stop = false;
      if (p.id >= 0 && p.id - done <= n) n = p.id - done, stop = true;
      if (context > 0 && static_cast<std::int64_t>(p.tokens.size()) + n > context) {
        n = context - static_cast<std::int64_t>(p.tokens.size());
        stop = false;
      }
      Completion c;
      c.tokens.assign(static_cast<std::size_t>(n), kGen);
      if (stop) c.tokens.back() = kEos;
      c.logprobs.assign(c.tokens.size(), -0.5F);
      c.text.assign(c.tokens.size(), 'a');
      c.finish = stop ? FinishReason::stop : FinishReason::length;
      out.push_back(std::move(c));
    }
    for (int i = 0; i < wrong_count; ++i) out.push_back(Completion{});
    return out;
  }
};

static_assert(Sampler<ScriptedSampler>);
static_assert(Sampler<DeepeningSampler<ScriptedSampler>>);

Prompt make(std::int64_t length) {
  Prompt p;
  p.tokens = {1, 2, 3};
  p.id = length;
  return p;
}

DeepeningOptions paper_options() {
  return {.initial_budget = 256, .growth = 2.0, .max_budget = 2048, .trigger = {kT1, kT2}, .trigger_text = "<T>"};
}

std::size_t count(const std::vector<TokenId>& tokens, TokenId id) {
  std::size_t n = 0;
  for (TokenId t : tokens) n += t == id ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("deepening sampler: budgets 256, 512, 1024, 2048 and trigger placement", "[search][deepening]") {
  ScriptedSampler inner;
  DeepeningSampler sampler(inner, paper_options());
  CHECK(sampler.budgets(2048) == std::vector<std::size_t>{256, 512, 1024, 2048});
  // Ends before b_0; ends exactly at b_0 (stopped: no trigger); ends in round 1; never ends.
  const std::vector<Prompt> prompts{make(100), make(256), make(300), make(-1)};
  SamplingParams params;
  params.max_new_tokens = 99999;  // ignored: max_budget is set
  params.seed = 42;
  const std::vector<Completion> c = sampler.sample(std::span<const Prompt>(prompts), params);
  REQUIRE(c.size() == 4);
  // Stopped sequences drop out: 4 rows, then 2, 1, 1; each round asks for b_k - b_{k-1} new tokens.
  CHECK(inner.batch_sizes == std::vector<std::size_t>{4, 2, 1, 1});
  CHECK(inner.max_new == std::vector<std::int64_t>{256, 256, 512, 1024});
  const auto& trig = sampler.trigger_positions();
  // 1. Ends at 100: no trigger.
  CHECK(c[0].tokens.size() == 100);
  CHECK(c[0].finish == FinishReason::stop);
  CHECK(trig[0].empty());
  // 2. Ends with its 256th token: stopped, so no trigger.
  CHECK(c[1].tokens.size() == 256);
  CHECK(c[1].finish == FinishReason::stop);
  CHECK(trig[1].empty());
  // 3. Ends at 300: one trigger after 256 generated tokens, then 44 more.
  CHECK(c[2].tokens.size() == 302);
  CHECK(trig[2] == std::vector<std::size_t>{256});
  CHECK(c[2].tokens[256] == kT1);
  CHECK(c[2].tokens[257] == kT2);
  CHECK(c[2].finish == FinishReason::stop);
  CHECK(c[2].text == std::string(256, 'a') + "<T>" + std::string(44, 'a'));
  // 4. Never ends: 2048 generated tokens, 3 triggers after 256, 512 and 1024 of them.
  CHECK(c[3].tokens.size() == 2048 + 3 * 2);
  CHECK(count(c[3].tokens, kGen) == 2048);
  CHECK(trig[3] == std::vector<std::size_t>{256, 512 + 2, 1024 + 4});
  for (std::size_t at : trig[3]) {
    CHECK(c[3].tokens[at] == kT1);
    CHECK(c[3].tokens[at + 1] == kT2);
  }
  CHECK(c[3].finish == FinishReason::length);
  // Log-probs: the inner sampler's for generated tokens, 0 for trigger tokens.
  for (std::size_t i = 0; i < c.size(); ++i) {
    REQUIRE(c[i].logprobs.size() == c[i].tokens.size());
    for (std::size_t t = 0; t < c[i].tokens.size(); ++t) {
      const bool trigger = c[i].tokens[t] == kT1 || c[i].tokens[t] == kT2;
      CHECK(c[i].logprobs[t] == (trigger ? 0.0F : -0.5F));
    }
  }
  CHECK(sampler.stats().rounds == 4);
  CHECK(sampler.stats().generated_tokens == 100 + 256 + 300 + 2048);
  CHECK(sampler.stats().triggers == 4);
}

TEST_CASE("deepening sampler: B from params, uneven growth, context limits, seeds", "[search][deepening]") {
  ScriptedSampler inner;
  DeepeningSampler sampler(inner, {.initial_budget = 3, .growth = 1.5, .max_budget = 0, .trigger = {kT1}, .trigger_text = ""});
  // b_k = floor(3 * 1.5^k): 3, 4, 6, 10 (10.125 capped at B = 10).
  CHECK(sampler.budgets(10) == std::vector<std::size_t>{3, 4, 6, 10});
  CHECK(sampler.budgets(10) == deepening_budgets({.initial_budget = 3, .growth = 1.5, .max_budget = 10, .trigger = {}}));
  SamplingParams params;
  params.max_new_tokens = 10;
  params.seed = 7;
  const std::vector<Prompt> prompts{make(-1)};
  const std::vector<Completion> a = sampler.sample(std::span<const Prompt>(prompts), params);
  CHECK(inner.max_new == std::vector<std::int64_t>{3, 1, 2, 4});
  CHECK(sampler.trigger_positions()[0] == std::vector<std::size_t>{3, 5, 8});
  CHECK(a[0].tokens.size() == 13);
  // Same seed, same inner seeds; the rounds get distinct seeds.
  const std::vector<std::uint64_t> first = inner.seeds;
  inner.seeds.clear();
  (void)sampler.sample(std::span<const Prompt>(prompts), params);
  CHECK(inner.seeds == first);
  CHECK(first[0] != first[1]);
  params.seed = 8;
  inner.seeds.clear();
  (void)sampler.sample(std::span<const Prompt>(prompts), params);
  CHECK(inner.seeds != first);
  // The inner sampler's context fills up in round 1 (3 prompt + 3 + 1 trigger + 1 < 3 asked): done, no trigger.
  ScriptedSampler tight{.context = 8};
  DeepeningSampler limited(tight, {.initial_budget = 3, .growth = 2.0, .max_budget = 12, .trigger = {kT1}, .trigger_text = ""});
  const std::vector<Completion> b = limited.sample(std::span<const Prompt>(prompts), params);
  CHECK(b[0].tokens.size() == 3 + 1 + 1);
  CHECK(b[0].finish == FinishReason::length);
  CHECK(limited.trigger_positions()[0] == std::vector<std::size_t>{3});
  CHECK(tight.batch_sizes.size() == 2);
}

TEST_CASE("deepening sampler inside best-of-N", "[search][deepening][best_of_n]") {
  ScriptedSampler inner;
  DeepeningSampler sampler(inner, {.initial_budget = 4, .growth = 2.0, .max_budget = 16, .trigger = {kT1, kT2}, .trigger_text = "!"});
  // Four candidates of one question with different lengths: 3 (no trigger), 6 (one), 12 (two), never (three).
  const std::vector<Prompt> candidates{make(3), make(6), make(12), make(-1)};
  SamplingParams params;
  params.max_new_tokens = 16;
  const std::vector<Completion> c = sampler.sample(std::span<const Prompt>(candidates), params);
  // Reward: a response that reflected (had a trigger) and then stopped scores 1 + triggers, else 0.
  auto reflected = [](const Prompt&, const Completion& x) {
    if (x.finish != FinishReason::stop) return 0.0;
    return static_cast<double>(count(x.tokens, kT1));
  };
  const BestOfN best = best_of_n(candidates[0], std::span<const Completion>(c), reflected);
  CHECK(best.scores == std::vector<double>{0.0, 1.0, 2.0, 0.0});
  CHECK(best.index == 2);
  CHECK(c[2].tokens.size() == 12 + 2 * 2);
}

TEST_CASE("deepening sampler inside a loop's rollout stage", "[search][deepening][loop]") {
  ScriptedSampler inner;
  DeepeningSampler sampler(inner, {.initial_budget = 4, .growth = 2.0, .max_budget = 16, .trigger = {kT1, kT2}, .trigger_text = ""});
  const std::vector<Prompt> pool{make(3), make(9)};
  auto reward = [](const Prompt&, const Completion& x) { return x.finish == FinishReason::stop ? 1.0 : 0.0; };
  SamplingParams params;
  params.max_new_tokens = 16;
  Rng rng(3);
  const std::vector<Group> groups =
      loop::rollout_groups(sampler, reward, std::span<const Prompt>(pool), 3, params, rng, "deepening_rollout");
  REQUIRE(groups.size() == 2);
  // One sampler call of 6 rows through the adapter: round 0 has 6 rows, rounds 1-2 the 3 of length 9.
  CHECK(inner.batch_sizes == std::vector<std::size_t>{6, 3, 3});
  for (const Completion& x : groups[0].completions) CHECK(x.tokens.size() == 3);
  for (const Completion& x : groups[1].completions) CHECK(x.tokens.size() == 9 + 2 * 2);  // triggers at 4 and 8
  CHECK(groups[1].rewards == std::vector<double>{1.0, 1.0, 1.0});
  loop::PoolSource source(pool);
  const loop::StepRollouts step =
      loop::rollout_step(sampler, reward, source, {.prompts = 4, .group_size = 2}, params, rng);
  CHECK(step.completions.size() == 8);
  std::int64_t tokens = 0;
  for (const Completion& x : step.completions) tokens += static_cast<std::int64_t>(x.tokens.size());
  CHECK(step.sampled_tokens == tokens);
}

TEST_CASE("deepening sampler: bad input is an error", "[search][deepening][errors]") {
  ScriptedSampler inner;
  auto make_options = [](std::size_t b0, double growth, std::size_t cap) {
    return DeepeningOptions{.initial_budget = b0, .growth = growth, .max_budget = cap, .trigger = {kT1}, .trigger_text = ""};
  };
  CHECK_THROWS_WITH(DeepeningSampler(inner, make_options(256, 1.0, 2048)),
                    Catch::Contains("expected growth > 1, got 1"));
  CHECK_THROWS_WITH(DeepeningSampler(inner, make_options(256, 0.5, 0)), Catch::Contains("expected growth > 1, got 0.5"));
  CHECK_THROWS_WITH(DeepeningSampler(inner, make_options(0, 2.0, 2048)),
                    Catch::Contains("expected initial_budget > 0, got 0"));
  CHECK_THROWS_WITH(DeepeningSampler(inner, make_options(4096, 2.0, 2048)),
                    Catch::Contains("DeepeningSampler: expected initial_budget <= max_budget, got 4096 > 2048"));
  CHECK_THROWS_WITH(DeepeningSampler(inner, DeepeningOptions{.initial_budget = 4, .growth = 2.0, .max_budget = 8,
                                                             .trigger = {}, .trigger_text = ""}),
                    Catch::Contains("DeepeningSampler: expected a non-empty trigger"));
  // B from params: b_0 > params.max_new_tokens is caught at the call.
  DeepeningSampler from_params(inner, make_options(64, 2.0, 0));
  SamplingParams params;
  params.max_new_tokens = 32;
  const std::vector<Prompt> prompts{make(-1)};
  CHECK_THROWS_WITH(from_params.sample(std::span<const Prompt>(prompts), params),
                    Catch::Contains("expected initial_budget <= max_budget, got 64 > 32"));
  params.max_new_tokens = 0;
  CHECK_THROWS_WITH(from_params.sample(std::span<const Prompt>(prompts), params),
                    Catch::Contains("max_new_tokens must be > 0, got 0"));
  // A misbehaving inner sampler.
  params.max_new_tokens = 128;
  ScriptedSampler extra{.wrong_count = 1};
  DeepeningSampler a(extra, make_options(4, 2.0, 0));
  CHECK_THROWS_WITH(a.sample(std::span<const Prompt>(prompts), params),
                    Catch::Contains("DeepeningSampler: the inner sampler returned 2 completions for 1 prompts"));
  ScriptedSampler over{.overshoot = 1};
  DeepeningSampler b(over, make_options(4, 2.0, 0));
  CHECK_THROWS_WITH(b.sample(std::span<const Prompt>(prompts), params),
                    Catch::Contains("DeepeningSampler: the inner sampler returned 5 tokens for a budget of 4"));
}
