// SCoRe (loop/score.hpp) and its two-attempt rollout stage (loop/multi_turn.hpp): the shaping oracle of
// algorithms.md section 8 (alpha = 10: 11 / -10 / 1 / 0), the self-correction metrics on hand-counted pairs,
// the second prompt built from the first attempt, the stage-I KL that is zero while the policy equals the
// reference, stage I raising the second attempt's reward on a tiny Llama, exact resume mid-stage (policy,
// reference and metrics bit-equal to the run that never stopped), and bad input with its values.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/multi_turn.hpp>
#include <kaizen/loop/score.hpp>
#include <kaizen/loop/snapshot.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>

#include "loop_test_support.hpp"

using namespace kaizen;
using Catch::Contains;

namespace {

struct Setup {
  tasks::CharTokenizer tokenizer;
  tasks::Arithmetic task{{.min_digits = 1, .max_digits = 1, .operators = "+"}};

  [[nodiscard]] lm::LlamaModel model(std::uint64_t seed) const {
    lm::LlamaConfig c;
    c.vocab_size = tokenizer.vocab_size();
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 16;
    torch::manual_seed(seed);
    return lm::LlamaModel(c);
  }
  [[nodiscard]] std::vector<Prompt> prompts(std::size_t n, std::uint64_t seed) const {
    Rng rng(seed);
    std::vector<Prompt> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(tasks::make_prompt(task.generate(-1, rng), tokenizer));
    return out;
  }
  [[nodiscard]] loop::ScoreConfig config() const {
    loop::ScoreConfig c;
    c.stage1_steps = 3;
    c.stage2_steps = 3;
    c.prompts_per_step = 4;
    c.group_size = 3;
    c.instruction = tokenizer.encode(">");
    c.optimizer.learning_rate = 3e-3;
    c.sampling.temperature = 1.0;
    c.sampling.max_new_tokens = 2;
    c.sampling.stop_tokens = {tokenizer.eos_id()};
    c.collate = {.pad_id = tokenizer.pad_id(), .vocab_size = tokenizer.vocab_size(), .max_length = 16};
    c.seed = 21;
    return c;
  }
};

/// 1 when the completion's first token is a digit (an untrained model earns it about 10/vocab of the time).
struct FirstIsDigit {
  const tasks::CharTokenizer* tokenizer;
  double operator()(const Prompt&, const Completion& c) const {
    if (c.tokens.empty()) return 0.0;
    const std::string text = tokenizer->decode(std::span<const TokenId>(c.tokens).first(1));
    return text.size() == 1 && text[0] >= '0' && text[0] <= '9' ? 1.0 : 0.0;
  }
};

/// Returns [prompt length, 1] for every prompt: the second prompt's length shows what it contains.
struct EchoLengthSampler {
  std::vector<std::uint64_t> seeds;
  std::vector<Completion> sample(std::span<const Prompt> prompts, const SamplingParams& params) {
    seeds.push_back(params.seed);
    std::vector<Completion> out;
    for (const Prompt& p : prompts)
      out.push_back(Completion{.tokens = {static_cast<TokenId>(p.tokens.size()), 1}, .finish = FinishReason::stop});
    return out;
  }
};

nlohmann::json without_timing(nlohmann::json m) {
  m.erase("sample_seconds");
  m.erase("train_seconds");
  return m;
}

}  // namespace

TEST_CASE("SCoRe shaping: the section 8 oracle (alpha = 10) and stage I's rewards", "[score]") {
  using loop::ScoreStage;
  const auto two = [](double r1, double r2) { return loop::score_turn_rewards(r1, r2, 10.0, ScoreStage::two); };
  CHECK(two(0, 1).second == 11.0);
  CHECK(two(1, 0).second == -10.0);
  CHECK(two(1, 1).second == 1.0);
  CHECK(two(0, 0).second == 0.0);
  CHECK(two(1, 0).first == 1.0);  // stage II credits the first attempt with its own reward
  CHECK(two(0, 1).first == 0.0);
  for (double r1 : {0.0, 1.0})
    for (double r2 : {0.0, 1.0}) {
      const auto one = loop::score_turn_rewards(r1, r2, 10.0, ScoreStage::one);
      CHECK(one.first == 0.0);  // stage I: only the KL pin acts on the first attempt
      CHECK(one.second == r2);
      CHECK(loop::score_turn_rewards(r1, r2, 0.0, ScoreStage::two).second == r2);  // alpha = 0: no bonus
    }
}

TEST_CASE("self-correction metrics: hand-counted pairs and delta = fixed - broken", "[score]") {
  // pairs: (1,1) (1,0) (0,1) (0,0) (0,1)
  const std::vector<double> r1{1, 1, 0, 0, 0}, r2{1, 0, 1, 0, 1};
  const auto m = loop::self_correction_metrics(r1, r2);
  CHECK(m.pairs == 5);
  CHECK(m.accuracy_t1 == Approx(0.4));
  CHECK(m.accuracy_t2 == Approx(0.6));
  CHECK(m.delta == Approx(0.2));
  CHECK(m.delta_i_to_c == Approx(0.4));
  CHECK(m.delta_c_to_i == Approx(0.2));
  // the threshold decides what counts as correct
  const auto t = loop::self_correction_metrics(std::vector<double>{0.5, 0.9}, std::vector<double>{0.9, 0.5}, 0.8);
  CHECK(t.delta_i_to_c == 0.5);
  CHECK(t.delta_c_to_i == 0.5);
  CHECK(t.delta == 0.0);
  Rng rng(4);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<double> a, b;
    for (int i = 0; i < 17; ++i) {
      a.push_back(uniform01(rng) < 0.4 ? 1.0 : 0.0);
      b.push_back(uniform01(rng) < 0.6 ? 1.0 : 0.0);
    }
    const auto x = loop::self_correction_metrics(a, b);
    CHECK(x.delta == Approx(x.delta_i_to_c - x.delta_c_to_i).margin(1e-12));
    CHECK(x.delta == Approx(x.accuracy_t2 - x.accuracy_t1).margin(1e-12));
  }
}

TEST_CASE("two-attempt rollouts: x2 = x + first attempt (stop token dropped) + instruction, scored on x", "[score]") {
  const Prompt x{.tokens = {5, 6, 7}, .text = "1+2=", .reference = "3"};
  const std::vector<TokenId> instruction{9, 9};
  const std::vector<TokenId> stops{1};
  const Completion stopped{.tokens = {4, 1}, .finish = FinishReason::stop};
  const Completion truncated{.tokens = {4, 4}, .finish = FinishReason::length};
  const Prompt a = loop::correction_prompt(x, stopped, instruction, stops);
  CHECK(a.tokens == std::vector<TokenId>{5, 6, 7, 4, 9, 9});
  CHECK(a.text == x.text);
  CHECK(a.reference == x.reference);
  CHECK(loop::correction_prompt(x, truncated, instruction, stops).tokens == std::vector<TokenId>{5, 6, 7, 4, 4, 9, 9});

  EchoLengthSampler sampler;
  std::vector<Prompt> seen;
  auto reward = [&](const Prompt& p, const Completion& c) {
    seen.push_back(p);
    return static_cast<double>(c.tokens.front());
  };
  const std::vector<Prompt> prompts{x, Prompt{.tokens = {5}}};
  SamplingParams params;
  params.stop_tokens = stops;
  Rng rng(8), copy(8);
  const auto r = loop::two_turn_rollout(sampler, reward, prompts, 2, params, instruction, rng);
  REQUIRE(r.first.size() == 4);
  REQUIRE(r.second.size() == 4);
  // first attempt = [3, 1] for x: x2 = 5 6 7 | 3 | 9 9 (7 tokens); [1, 1] for {5}: x2 = 5 | 1 | 9 9 (4 tokens)
  CHECK(r.second_prompts[0].tokens == std::vector<TokenId>{5, 6, 7, 3, 9, 9});
  CHECK(r.second_prompts[3].tokens == std::vector<TokenId>{5, 1, 9, 9});
  CHECK(r.first_rewards == std::vector<double>{3, 3, 1, 1});
  CHECK(r.second_rewards == std::vector<double>{6, 6, 4, 4});
  for (const Prompt& p : seen) CHECK((p.tokens == x.tokens || p.tokens == std::vector<TokenId>{5}));  // scored on x
  REQUIRE(sampler.seeds.size() == 2);  // one call per turn, seeds from the loop's engine in order
  CHECK(sampler.seeds[0] == copy());
  CHECK(sampler.seeds[1] == copy());
}

TEST_CASE("SCoRe stage I: the KL is zero while the policy is the reference, and the second attempt improves",
          "[score]") {
  REQUIRE(kaizen_test::kOneThread);
  const Setup s;
  const std::vector<Prompt> prompts = s.prompts(16, 3);
  FirstIsDigit reward{&s.tokenizer};
  lm::LlamaModel policy = s.model(5), reference = s.model(5);
  lm::LlamaSampler sampler(policy, s.tokenizer.pad_id());
  auto c = s.config();
  c.stage1_steps = 40;
  c.stage2_steps = 0;
  c.prompts_per_step = 8;
  c.group_size = 4;
  c.beta2 = 1.0;  // a strong pin of the first attempt
  c.optimizer.learning_rate = 1e-2;
  const auto before = loop::evaluate_self_correction(sampler, reward, std::span<const Prompt>(prompts), 16,
                                                     c.sampling, c.instruction, 99);
  const auto result = loop::score(policy, reference, sampler, reward, std::span<const Prompt>(prompts), c);
  const auto after = loop::evaluate_self_correction(sampler, reward, std::span<const Prompt>(prompts), 16,
                                                    c.sampling, c.instruction, 99);
  REQUIRE(result.history.size() == 40);
  const nlohmann::json& first = result.history.front();
  CHECK(first["stage"] == 1);
  CHECK(first["kl_t1"].get<double>() == 0.0);  // policy == reference before the first update
  CHECK(first["kl_t2"].get<double>() == 0.0);
  CHECK(result.history.back()["kl_t1"].get<double>() > 0.0);
  INFO("before: t1 " << before.accuracy_t1 << " t2 " << before.accuracy_t2 << "; after: t1 " << after.accuracy_t1
                     << " t2 " << after.accuracy_t2);
  CHECK(after.accuracy_t2 > before.accuracy_t2 + 0.2);  // the second attempt learns the reward
  CHECK(after.accuracy_t2 - after.accuracy_t1 > before.accuracy_t2 - before.accuracy_t1);
  lm::LlamaModel untouched = s.model(5);
  CHECK(kaizen_test::same_parameters(reference, untouched));  // the reference is never trained
}

TEST_CASE("SCoRe resumed mid-stage continues exactly like the uninterrupted run", "[score][resume]") {
  REQUIRE(kaizen_test::kOneThread);
  const Setup s;
  const std::vector<Prompt> prompts = s.prompts(10, 7);
  FirstIsDigit reward{&s.tokenizer};
  kaizen_test::TempDir full_dir("score_full");
  lm::LlamaModel full = s.model(5), full_reference = s.model(5);
  lm::LlamaSampler full_sampler(full, s.tokenizer.pad_id());
  auto c = s.config();
  c.checkpoint_every = 2;
  c.checkpoint_dir = full_dir.path;
  const auto expected = loop::score(full, full_reference, full_sampler, reward, std::span<const Prompt>(prompts), c);
  REQUIRE(expected.steps == 6);
  REQUIRE(expected.history.size() == 6);
  CHECK(expected.history[2]["stage"] == 1);
  CHECK(expected.history[3]["stage"] == 2);
  for (std::int64_t stop : {1, 3, 4}) {  // inside stage I, at the stage boundary, inside stage II (on a checkpoint)
    INFO("interrupted after step " << stop);
    kaizen_test::TempDir dir("score_stop");
    lm::LlamaModel first = s.model(5), first_reference = s.model(5);
    lm::LlamaSampler first_sampler(first, s.tokenizer.pad_id());
    auto a = c;
    a.checkpoint_dir = dir.path;
    a.stop_after_steps = stop;
    const auto stopped = loop::score(first, first_reference, first_sampler, reward, std::span<const Prompt>(prompts), a);
    REQUIRE(stopped.stopped);
    CHECK(stopped.steps == stop);
    // other weights for both models: the policy, the reference, the optimiser and the engine come from the checkpoint
    lm::LlamaModel resumed = s.model(99), resumed_reference = s.model(98);
    lm::LlamaSampler resumed_sampler(resumed, s.tokenizer.pad_id());
    auto b = c;
    b.checkpoint_dir = dir.path;
    b.resume_from = dir.path;
    const auto rest = loop::score(resumed, resumed_reference, resumed_sampler, reward, std::span<const Prompt>(prompts), b);
    CHECK_FALSE(rest.stopped);
    CHECK(rest.steps == 6);
    kaizen_test::check_same_parameters(full, resumed);
    kaizen_test::check_same_parameters(full_reference, resumed_reference);
    std::vector<nlohmann::json> all = stopped.history;
    all.insert(all.end(), rest.history.begin(), rest.history.end());
    REQUIRE(all.size() == expected.history.size());
    for (std::size_t i = 0; i < all.size(); ++i) CHECK(without_timing(all[i]) == without_timing(expected.history[i]));
  }
}

TEST_CASE("SCoRe rejects bad input with messages that name it", "[score][errors]") {
  const Setup s;
  const std::vector<Prompt> prompts = s.prompts(4, 1);
  FirstIsDigit reward{&s.tokenizer};
  lm::LlamaModel policy = s.model(1), reference = s.model(1);
  lm::LlamaSampler sampler(policy, s.tokenizer.pad_id());
  auto run = [&](const loop::ScoreConfig& c, std::span<const Prompt> p) {
    return loop::score(policy, reference, sampler, reward, p, c);
  };
  const std::span<const Prompt> all(prompts);
  CHECK_THROWS_WITH(run(s.config(), std::span<const Prompt>()), Contains("score: the prompt set is empty"));
  auto c = s.config();
  c.alpha = -1.0;
  CHECK_THROWS_WITH(run(c, all), Contains("alpha must be finite and >= 0, got -1"));
  c = s.config();
  c.group_size = 1;
  CHECK_THROWS_WITH(run(c, all), Contains("group_size must be >= 2 (the advantage baseline is the group mean), got 1"));
  c = s.config();
  c.beta2 = -0.5;
  CHECK_THROWS_WITH(run(c, all), Contains("beta2 must be finite and >= 0, got -0.5"));
  c = s.config();
  c.beta1 = std::nan("");
  CHECK_THROWS_WITH(run(c, all), Contains("beta1 must be finite and >= 0, got nan"));
  c = s.config();
  c.prompts_per_step = 0;
  CHECK_THROWS_WITH(run(c, all), Contains("prompts_per_step must be > 0, got 0"));
  c = s.config();
  c.stage1_steps = -2;
  CHECK_THROWS_WITH(run(c, all), Contains("stage1_steps and stage2_steps must be >= 0, got -2 and 3"));
  c = s.config();
  c.kl_estimator = policy_gradient::KlEstimator::k3_importance;
  CHECK_THROWS_WITH(run(c, all), Contains("kl_estimator must be k1, k2 or k3"));
  c = s.config();
  c.stop_after_steps = 2;
  CHECK_THROWS_WITH(run(c, all), Contains("stop_after_steps > 0 needs checkpoint_every > 0"));
  c = s.config();
  c.checkpoint_every = 1;
  CHECK_THROWS_WITH(run(c, all), Contains("checkpoint_every > 0 needs a checkpoint_dir"));
  // a checkpoint without the reference (another loop's)
  kaizen_test::TempDir dir("score_foreign");
  torch::optim::AdamW adamw(policy.parameters(), torch::optim::AdamWOptions(0.1));
  loop::save_checkpoint(dir.path, policy, adamw, loop::LoopState{});
  c = s.config();
  c.resume_from = dir.path;
  CHECK_THROWS_WITH(run(c, all), Contains("reference.pt does not exist (not a checkpoint of this loop"));
  // the pieces
  CHECK_THROWS_WITH(loop::score_turn_rewards(0, 1, -0.1, loop::ScoreStage::two),
                    Contains("score_turn_rewards: alpha must be finite and >= 0, got -0.1"));
  CHECK_THROWS_WITH(loop::score_turn_rewards(std::nan(""), 1, 10, loop::ScoreStage::two),
                    Contains("rewards must be finite, got nan and 1"));
  CHECK_THROWS_WITH(loop::self_correction_metrics(std::vector<double>{1, 0}, std::vector<double>{1}),
                    Contains("2 first-attempt rewards but 1 second-attempt rewards"));
  CHECK_THROWS_WITH(loop::self_correction_metrics(std::vector<double>{}, std::vector<double>{}),
                    Contains("expected at least one attempt pair, got none"));
  CHECK_THROWS_WITH(loop::self_correction_metrics(std::vector<double>{1, INFINITY}, std::vector<double>{1, 0}),
                    Contains("pair 1 has rewards inf and 0"));
  EchoLengthSampler echo;
  auto r = [](const Prompt&, const Completion&) { return 0.0; };
  Rng rng(1);
  CHECK_THROWS_WITH(loop::two_turn_rollout(echo, r, std::span<const Prompt>(), 2, SamplingParams{}, {}, rng),
                    Contains("two_turn_rollout: expected at least one prompt, got none"));
}
