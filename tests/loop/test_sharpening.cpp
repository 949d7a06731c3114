// Sharpening (loop/sharpening.hpp) on a model whose answer distribution can be enumerated: a
// context-free categorical policy over K one-token answers. Oracles: algorithms.md section 10
// (p = (0.5, 0.3, 0.2), beta = 1 => pi* = (0.658, 0.237, 0.105)); the closed form
// pi* ∝ p^(1 + 1/beta) reached by (a) exact policy-gradient ascent with RlSharpeningReward and
// (b) the real GRPO loop sampling from the policy with RlSharpeningReward; SFT-sharpening picks the
// mode and raises its probability; SFT-sharpening stopped mid-SFT and resumed from its checkpoint (into a
// model with other weights) ends bit-equal, parameters and metrics, to the run that never stopped.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/rng.hpp>
#include <kaizen/loop/checkpoint.hpp>
#include <kaizen/loop/grpo.hpp>
#include <kaizen/loop/sharpening.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>

#include "loop_test_support.hpp"

using namespace kaizen;
using Catch::Contains;

namespace {

/// π(y) = softmax(theta)[y] whatever the context: logits [B, T, K] all equal to theta.
struct Categorical : torch::nn::Module {
  torch::Tensor theta;
  explicit Categorical(const std::vector<double>& probs) {
    std::vector<double> logs;
    for (double p : probs) logs.push_back(std::log(p));
    theta = register_parameter("theta", torch::tensor(logs, torch::kDouble));
  }
  torch::Tensor logits(const TokenBatch& batch) {
    return theta.view({1, 1, -1}).expand({batch.batch_size(), batch.length(), theta.size(0)});
  }
  std::vector<double> probs() {
    torch::NoGradGuard g;
    const torch::Tensor p = torch::softmax(theta, 0).contiguous();
    return {p.data_ptr<double>(), p.data_ptr<double>() + p.numel()};
  }
};

/// Samples one answer token per prompt from the policy (its log-prob attached), seeded by params.seed.
struct CategoricalSampler {
  Categorical* policy;
  std::vector<Completion> sample(std::span<const Prompt> prompts, const SamplingParams& params) {
    Rng rng(params.seed);
    const std::vector<double> p = policy->probs();
    std::vector<Completion> out;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      double u = uniform01(rng), c = 0.0;
      std::size_t y = 0;
      for (; y + 1 < p.size(); ++y) {
        c += p[y];
        if (u < c) break;
      }
      out.push_back(Completion{.tokens = {static_cast<TokenId>(y)}, .logprobs = {static_cast<float>(std::log(p[y]))}});
    }
    return out;
  }
};

const std::vector<double> kBase{0.5, 0.3, 0.2};

}  // namespace

TEST_CASE("power_sharpen: the section 10 oracle and its invariants", "[sharpening]") {
  const auto s = loop::power_sharpen(kBase, 1.0);
  CHECK(s[0] == Approx(0.25 / 0.38).epsilon(1e-12));
  CHECK(s[0] == Approx(0.658).margin(5e-4));
  CHECK(s[1] == Approx(0.237).margin(5e-4));
  CHECK(s[2] == Approx(0.105).margin(5e-4));
  for (double beta : {0.05, 0.5, 1.0, 3.0, 1e6}) {
    const auto q = loop::power_sharpen(kBase, beta);
    CHECK(std::accumulate(q.begin(), q.end(), 0.0) == Approx(1.0));
    CHECK((q[0] > q[1] && q[1] > q[2]));  // never changes the order, so never the argmax
    CHECK(q[0] >= kBase[0]);              // always sharper than the base
  }
  CHECK(loop::power_sharpen(kBase, 1e9)[0] == Approx(0.5).margin(1e-6));  // beta -> inf: the base
  CHECK(loop::power_sharpen(kBase, 0.01)[0] == Approx(1.0).margin(1e-6));  // beta -> 0: the mode
  const std::vector<double> unnormalised{5, 3, 2, 0};
  const auto u = loop::power_sharpen(unnormalised, 1.0);
  CHECK(u[0] == Approx(s[0]));
  CHECK(u[3] == 0.0);
  // the closed form is the maximiser of J: no nearby distribution scores higher
  for (double beta : {0.5, 1.0, 2.0}) {
    const auto star = loop::power_sharpen(kBase, beta);
    const double j_star = loop::sharpening_objective(star, kBase, beta);
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) {
        if (a == b) continue;
        std::vector<double> q = star;
        q[static_cast<std::size_t>(a)] += 0.01;
        q[static_cast<std::size_t>(b)] -= 0.01;
        CHECK(loop::sharpening_objective(q, kBase, beta) < j_star);
      }
    CHECK(loop::sharpening_objective(kBase, kBase, beta) < j_star);
  }
}

TEST_CASE("RL-sharpening by exact policy gradient with RlSharpeningReward converges to the closed form",
          "[sharpening]") {
  // Enumerate the three answers, score them with the library's reward, ascend
  // sum_y pi(y) (r(y) - mean) grad log pi(y) (the exact expectation of the sampled gradient).
  const std::vector<Prompt> prompts(3, Prompt{.tokens = {0}});
  const std::vector<Completion> answers{{.tokens = {0}}, {.tokens = {1}}, {.tokens = {2}}};
  for (double beta : {0.5, 1.0, 2.0}) {
    Categorical base(kBase), policy(kBase);
    loop::RlSharpeningReward<Categorical> reward{.policy = &policy, .base = &base, .beta = beta,
                                                 .collate = {.vocab_size = 3}};
    torch::optim::SGD sgd(policy.parameters(), torch::optim::SGDOptions(0.5));
    for (int step = 0; step < 3000; ++step) {
      const std::vector<double> r = reward(prompts, answers);
      const std::vector<double> pi = policy.probs();
      double mean = 0.0;
      for (std::size_t y = 0; y < 3; ++y) mean += pi[y] * r[y];
      const torch::Tensor logp = torch::log_softmax(policy.theta, 0);
      torch::Tensor loss = torch::zeros({}, torch::kDouble);
      for (std::int64_t y = 0; y < 3; ++y) loss = loss - pi[static_cast<std::size_t>(y)] * (r[static_cast<std::size_t>(y)] - mean) * logp[y];
      sgd.zero_grad();
      loss.backward();
      sgd.step();
    }
    const auto got = policy.probs();
    const auto want = loop::power_sharpen(kBase, beta);
    INFO("beta " << beta << ": got " << got[0] << " " << got[1] << " " << got[2] << ", want " << want[0] << " "
                 << want[1] << " " << want[2]);
    for (std::size_t y = 0; y < 3; ++y) CHECK(got[y] == Approx(want[y]).margin(1e-4));
    CHECK(base.probs()[0] == Approx(0.5));  // the base is never trained
  }
}

TEST_CASE("RL-sharpening through loop::grpo (sampled) lands near the closed form", "[sharpening]") {
  torch::manual_seed(0);
  const double beta = 1.0;
  Categorical base(kBase), policy(kBase);
  CategoricalSampler sampler{&policy};
  loop::RlSharpeningReward<Categorical> reward{.policy = &policy, .base = &base, .beta = beta,
                                               .collate = {.vocab_size = 3}};
  auto source = [](ArmId, Rng&) { return Prompt{.tokens = {0}}; };
  namespace pg = kaizen::policy_gradient;
  loop::GrpoConfig config{.steps = 400, .prompts_per_step = 8, .group_size = 16, .learning_rate = 0.02,
                          .max_grad_norm = 0.0, .seed = 7, .collate = {.vocab_size = 3}};
  config.advantages.scale = pg::AdvantageScale::none;  // centring only: an unbiased REINFORCE gradient
  std::vector<double> tail_mean(3, 0.0);
  int tail = 0;
  loop::grpo(policy, sampler, reward, source, pg::DrGrpoObjective{.aggregation = {.constant = 1.0}}, config,
             [&](const nlohmann::json& m) {
               if (m["step"].get<std::int64_t>() > 300) {
                 const auto p = policy.probs();
                 for (std::size_t y = 0; y < 3; ++y) tail_mean[y] += p[y];
                 ++tail;
               }
             });
  const auto want = loop::power_sharpen(kBase, beta);
  for (double& v : tail_mean) v /= tail;
  INFO("mean policy over the last 100 steps " << tail_mean[0] << " " << tail_mean[1] << " " << tail_mean[2]
                                              << ", closed form " << want[0] << " " << want[1] << " " << want[2]);
  for (std::size_t y = 0; y < 3; ++y) CHECK(tail_mean[y] == Approx(want[y]).margin(0.04));
  CHECK(tail_mean[0] > 0.6);  // clearly sharper than the base's 0.5
}

TEST_CASE("SFT-sharpening selects each prompt's most likely sample and sharpens the policy", "[sharpening]") {
  torch::manual_seed(0);
  Categorical policy(kBase);
  CategoricalSampler sampler{&policy};
  const std::vector<Prompt> prompts(20, Prompt{.tokens = {0}});
  loop::SftSharpeningConfig config{.samples_per_prompt = 16, .sampling = {.seed = 3},
                                   .sft = {.steps = 50, .batch_size = 8, .learning_rate = 0.05,
                                           .collate = {.vocab_size = 3}}};
  std::vector<nlohmann::json> events;
  const auto result = loop::sft_sharpening(policy, sampler, prompts, config,
                                           [&](const nlohmann::json& m) { events.push_back(m); });
  REQUIRE(result.selected.size() == 20);
  for (const Rollout& r : result.selected) {
    CHECK(r.completion.tokens == std::vector<TokenId>{0});  // 0.5^16: the mode is always among the 16
    CHECK(r.reward == Approx(std::log(0.5)));
  }
  CHECK(result.mean_selected_loglik == Approx(std::log(0.5)));
  CHECK(result.mean_sample_loglik < result.mean_selected_loglik);
  CHECK(policy.probs()[0] > 0.9);  // trained on the mode only
  REQUIRE(events.size() == 51);
  CHECK(events.front()["event"] == "sft_sharpening_select");

  // plain vs length-normalised selection pick differently: answer "1" (log 0.3) beats "0 0"
  // (2 log 0.5) by the sum, and loses to it by the per-token mean (log 0.5).
  Categorical two(kBase);
  const std::vector<Prompt> p2(2, Prompt{.tokens = {0}});
  const std::vector<Completion> c2{{.tokens = {1}}, {.tokens = {0, 0}}};
  const auto sum = loop::sequence_loglik(two, p2, c2, false, {.vocab_size = 3});
  const auto mean = loop::sequence_loglik(two, p2, c2, true, {.vocab_size = 3});
  CHECK(sum[0] == Approx(std::log(0.3)));
  CHECK(sum[1] == Approx(2 * std::log(0.5)));
  CHECK(mean[1] == Approx(std::log(0.5)));
  CHECK(loop::best_in_groups(sum, 2) == std::vector<std::size_t>{0});   // log 0.3 > 2 log 0.5
  CHECK(loop::best_in_groups(mean, 2) == std::vector<std::size_t>{1});  // log 0.5 > log 0.3
}

TEST_CASE("sharpening rejects bad input with the values", "[sharpening]") {
  CHECK_THROWS_WITH(loop::power_sharpen(kBase, 0.0), Contains("power_sharpen: beta must be finite and > 0, got 0"));
  CHECK_THROWS_WITH(loop::power_sharpen(kBase, -1.0), Contains("got -1"));
  CHECK_THROWS_WITH(loop::power_sharpen(std::vector<double>{}, 1.0), Contains("expected at least one probability"));
  CHECK_THROWS_WITH(loop::power_sharpen(std::vector<double>{0.5, -0.1}, 1.0), Contains("probability 1 is -0.1"));
  CHECK_THROWS_WITH(loop::power_sharpen(std::vector<double>{0.0, 0.0}, 1.0), Contains("sum to 0"));
  CHECK_THROWS_WITH(loop::sharpening_objective(kBase, std::vector<double>{1.0}, 1.0), Contains("3 policy and 1 base"));
  CHECK_THROWS_WITH(loop::sharpening_objective(std::vector<double>{0.5, 0.5}, std::vector<double>{1.0, 0.0}, 1.0),
                    Contains("answer 1 has policy probability 0.5 but base probability 0"));
  CHECK_THROWS_WITH(loop::rl_sharpening_reward(-1.0, -1.0, -0.5), Contains("beta must be finite and > 0, got -0.5"));
  CHECK_THROWS_WITH(loop::best_in_groups(std::vector<double>{1, 2, 3}, 2), Contains("3 scores is not a multiple of group_size 2"));
  CHECK_THROWS_WITH(loop::best_in_groups(std::vector<double>{1}, 0), Contains("group_size must be >= 1, got 0"));

  Categorical policy(kBase);
  CategoricalSampler sampler{&policy};
  const std::vector<Prompt> prompts(2, Prompt{.tokens = {0}});
  loop::SftSharpeningConfig config{.samples_per_prompt = 0, .sft = {.collate = {.vocab_size = 3}}};
  CHECK_THROWS_WITH(loop::sft_sharpening(policy, sampler, prompts, config),
                    Contains("samples_per_prompt (N) must be >= 1, got 0"));
  config.samples_per_prompt = 2;
  CHECK_THROWS_WITH(loop::sft_sharpening(policy, sampler, std::span<const Prompt>(), config),
                    Contains("expected at least one prompt, got none"));
  loop::RlSharpeningReward<Categorical> reward{.policy = &policy, .base = &policy, .beta = 0.0};
  const std::vector<Completion> c{{.tokens = {0}}, {.tokens = {1}}};
  CHECK_THROWS_WITH(reward(prompts, c), Contains("RlSharpeningReward: beta must be finite and > 0, got 0"));
  loop::RlSharpeningReward<Categorical> unset{};
  CHECK_THROWS_WITH(unset(prompts, c), Contains("the policy and the base must both be set"));
}

namespace {

/// A tiny Llama on 1-digit addition: samples differ from prompt to prompt, so the selected pairs and the
/// SFT batches drawn from them matter to the result.
struct TinySetup {
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
  [[nodiscard]] loop::SftSharpeningConfig config(const std::filesystem::path& dir) const {
    loop::SftSharpeningConfig c{.samples_per_prompt = 4,
                                .sft = {.steps = 9, .batch_size = 6, .learning_rate = 3e-3, .seed = 17,
                                        .collate = {.pad_id = tokenizer.pad_id(), .vocab_size = tokenizer.vocab_size(),
                                                    .max_length = 16}}};
    c.sampling.temperature = 1.0;
    c.sampling.max_new_tokens = 3;
    c.sampling.stop_tokens = {tokenizer.eos_id()};
    c.sampling.seed = 5;
    c.checkpoint_every = 2;
    c.checkpoint_dir = dir;
    return c;
  }
};

}  // namespace

TEST_CASE("SFT-sharpening resumed mid-SFT continues exactly like the uninterrupted run", "[sharpening][resume]") {
  REQUIRE(kaizen_test::kOneThread);
  const TinySetup s;
  Rng prompt_rng(3);
  std::vector<Prompt> prompts;
  for (int i = 0; i < 12; ++i) prompts.push_back(tasks::make_prompt(s.task.generate(-1, prompt_rng), s.tokenizer));

  kaizen_test::TempDir full_dir("sft_sharpening_full");
  lm::LlamaModel full = s.model(5);
  lm::LlamaSampler full_sampler(full, s.tokenizer.pad_id());
  std::vector<nlohmann::json> expected;
  const auto want = loop::sft_sharpening(full, full_sampler, std::span<const Prompt>(prompts), s.config(full_dir.path),
                                         [&](const nlohmann::json& m) { expected.push_back(m); });
  REQUIRE(want.sft_steps == 9);
  REQUIRE_FALSE(want.stopped);
  REQUIRE(expected.size() == 10);  // the selection, then 9 SFT steps
  // the selection is not trivial: the kept completions differ, so the batch draws matter
  std::size_t distinct = 0;
  for (std::size_t i = 1; i < want.selected.size(); ++i)
    distinct += want.selected[i].completion.tokens != want.selected[0].completion.tokens ? 1 : 0;
  REQUIRE(distinct > 0);

  for (std::int64_t stop : {1, 4, 7}) {  // 1 and 7 fall between checkpoints, 4 on one
    INFO("interrupted after SFT step " << stop);
    kaizen_test::TempDir dir("sft_sharpening_stop");
    lm::LlamaModel first = s.model(5);
    lm::LlamaSampler first_sampler(first, s.tokenizer.pad_id());
    auto c = s.config(dir.path);
    c.stop_after_sft_steps = stop;
    std::vector<nlohmann::json> events;
    const auto stopped = loop::sft_sharpening(first, first_sampler, std::span<const Prompt>(prompts), c,
                                              [&](const nlohmann::json& m) { events.push_back(m); });
    REQUIRE(stopped.stopped);
    CHECK(stopped.sft_steps == stop);
    lm::LlamaModel resumed = s.model(99);  // other weights: everything must come from the checkpoint
    CHECK_FALSE(kaizen_test::same_parameters(resumed, full));
    lm::LlamaSampler resumed_sampler(resumed, s.tokenizer.pad_id());
    auto r = s.config(dir.path);
    r.resume_from = dir.path;
    const std::size_t before_resume = events.size();
    const auto rest = loop::sft_sharpening(resumed, resumed_sampler, std::span<const Prompt>(prompts), r,
                                           [&](const nlohmann::json& m) { events.push_back(m); });
    CHECK_FALSE(rest.stopped);
    CHECK(rest.sft_steps == 9);
    CHECK(events.size() - before_resume == static_cast<std::size_t>(9 - stop));  // no new selection
    kaizen_test::check_same_parameters(full, resumed);
    REQUIRE(events.size() == expected.size());
    for (std::size_t i = 0; i < events.size(); ++i) CHECK(events[i] == expected[i]);
    CHECK(rest.final_loss == want.final_loss);
    CHECK(rest.mean_selected_loglik == want.mean_selected_loglik);
    CHECK(rest.mean_sample_loglik == want.mean_sample_loglik);
    REQUIRE(rest.selected.size() == want.selected.size());
    for (std::size_t i = 0; i < rest.selected.size(); ++i) {
      CHECK(rest.selected[i].prompt == want.selected[i].prompt);
      CHECK(rest.selected[i].completion.tokens == want.selected[i].completion.tokens);
    }
  }
}

TEST_CASE("SFT-sharpening rejects bad checkpoint settings and a checkpoint of another loop", "[sharpening][resume]") {
  Categorical policy(kBase);
  CategoricalSampler sampler{&policy};
  const std::vector<Prompt> prompts(2, Prompt{.tokens = {0}});
  loop::SftSharpeningConfig config{.samples_per_prompt = 2, .sft = {.steps = 2, .collate = {.vocab_size = 3}}};
  config.checkpoint_every = 1;
  CHECK_THROWS_WITH(loop::sft_sharpening(policy, sampler, prompts, config), Contains("checkpoint_every > 0 needs a checkpoint_dir"));
  config.checkpoint_every = 0;
  config.stop_after_sft_steps = 1;
  CHECK_THROWS_WITH(loop::sft_sharpening(policy, sampler, prompts, config),
                    Contains("stop_after_sft_steps > 0 needs checkpoint_every > 0"));
  config.stop_after_sft_steps = 0;
  config.checkpoint_every = -1;
  CHECK_THROWS_WITH(loop::sft_sharpening(policy, sampler, prompts, config), Contains("checkpoint_every must be >= 0, got -1"));
  config.checkpoint_every = 0;
  config.sft.batch_size = 0;
  CHECK_THROWS_WITH(loop::sft_sharpening(policy, sampler, prompts, config), Contains("sft.batch_size must be > 0, got 0"));
  config.sft.batch_size = 2;
  // a checkpoint written by another loop (no selected pairs in its state)
  kaizen_test::TempDir dir("sft_sharpening_foreign");
  torch::optim::AdamW adamw(policy.parameters(), torch::optim::AdamWOptions(0.1));
  loop::save_checkpoint(dir.path, policy, adamw, loop::LoopState{});
  config.resume_from = dir.path;
  CHECK_THROWS_WITH(loop::sft_sharpening(policy, sampler, prompts, config),
                    Contains("is not a checkpoint of this loop (state.json has no selected pairs)"));
  config.resume_from = dir.path / "missing";
  CHECK_THROWS_WITH(loop::sft_sharpening(policy, sampler, prompts, config), Contains("does not exist"));
}
