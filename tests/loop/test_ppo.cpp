// Tests of loop/ppo.hpp (PPO with a critic) and ValueModel::token_values (models/value_head.hpp):
//   - the clipped value loss, its clip fraction and its gradient against a hand oracle on 4 tokens;
//   - token rewards (outcome reward on the last completion token, k1 KL penalty) and GAE against a hand
//     oracle on a 4-token and a 2-token completion; explained variance at its two anchors;
//   - token_values: column t is the head at the hidden state of column t − 1 (the step scorer's logits);
//   - the loop raises the probability of the token its reward prefers, its critic learns (value loss
//     falls, explained variance rises), critic warm-up leaves the policy untouched;
//   - resuming from a checkpoint (policy, critic, both optimisers, engine, step) is bit-equal;
//   - bad input: a critic of the wrong shape or with non-finite values, γ or λ outside [0, 1], a missing
//     reference, mismatched value-loss shapes.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/ppo.hpp>
#include <kaizen/loop/snapshot.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/models/value_head.hpp>
#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/tasks/problem.hpp>

#include "loop_test_support.hpp"
#include "preference_loop_support.hpp"

namespace {

namespace pg = kaizen::policy_gradient;
namespace loop = kaizen::loop;
using Catch::Contains;
using kaizen::Completion;
using kaizen::Prompt;
using kaizen::TokenBatch;
using kaizen::lm::LlamaModel;
using kaizen::lm::ValueModel;
using kaizen_test::kOneThread;
using kaizen_test::TempDir;
using kaizen_test::preference_loops::DigitFraction;
using kaizen_test::preference_loops::Setup;

torch::Tensor row(std::vector<float> v) { return torch::tensor(v, torch::kFloat).unsqueeze(0); }

ValueModel critic_for(const Setup& s, std::uint64_t seed) {
  torch::manual_seed(seed);
  return ValueModel(s.model_config());
}

/// A critic that hands back what a function makes of ValueModel's values (bad shapes, NaN).
template <class F>
struct BrokenCritic {
  ValueModel* inner;
  F edit;
  torch::Tensor token_values(const TokenBatch& b) { return edit(inner->token_values(b)); }
  std::vector<torch::Tensor> parameters() { return inner->parameters(); }
};

nlohmann::json without_timing(nlohmann::json m) {
  m.erase("sample_seconds");
  m.erase("train_seconds");
  return m;
}

void check_same_parameters(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("parameter " << i);
    CHECK(torch::equal(a[i], b[i]));
  }
}

}  // namespace

static_assert(loop::Critic<ValueModel>);
static_assert(!loop::Critic<LlamaModel>);

TEST_CASE("PPO value loss: clipped and unclipped squared errors on 4 tokens against a hand oracle", "[ppo][oracle]") {
  // Token:       1      2      3      4     (5 = padding, garbage values that must not count)
  // V           1.0    0.5   -0.5    2.0    100
  // V_old       0.9    0.9    0.0    1.0    0
  // R           1.5    0.0    0.3    1.2    -100
  // V−V_old     0.1   -0.4   -0.5    1.0           clip ±0.2 →  V_clip = 1.0, 0.7, -0.2, 1.2
  // (V−R)²      0.25   0.25   0.64   0.64
  // (Vc−R)²     0.25   0.49   0.25   0.00          max = 0.25, 0.49, 0.64, 0.64 → Σ = 2.02
  // L = c · ½ · 2.02 / 4 with c = 0.5 → 0.12625; clipped branch strictly larger on token 2 only → 1/4.
  // dL/dV = c · (V − R) / 4 where the unclipped branch rules (or V_clip = V), 0 on token 2 (clamped):
  //         -0.0625, 0, -0.1, 0.1, 0.
  torch::Tensor values = row({1.0F, 0.5F, -0.5F, 2.0F, 100.0F}).requires_grad_(true);
  const torch::Tensor old_values = row({0.9F, 0.9F, 0.0F, 1.0F, 0.0F});
  const torch::Tensor returns = row({1.5F, 0.0F, 0.3F, 1.2F, -100.0F});
  const torch::Tensor mask = torch::tensor({true, true, true, true, false}).unsqueeze(0);
  const loop::ValueLossResult clipped = loop::ppo_value_loss(values, old_values, returns, mask, 0.2, 0.5);
  CHECK(clipped.loss.item<double>() == Approx(0.12625).margin(1e-7));
  CHECK(clipped.clip_fraction == Approx(0.25));
  clipped.loss.backward();
  const std::vector<double> expected_grad{-0.0625, 0.0, -0.1, 0.1, 0.0};
  for (std::int64_t t = 0; t < 5; ++t) {
    INFO("token " << t);
    CHECK(values.grad()[0][t].item<double>() == Approx(expected_grad[static_cast<std::size_t>(t)]).margin(1e-7));
  }
  // Without clipping: c · ½ · (0.25 + 0.25 + 0.64 + 0.64) / 4 = 0.11125.
  const loop::ValueLossResult plain = loop::ppo_value_loss(values, old_values, returns, mask, 0.0, 0.5);
  CHECK(plain.loss.item<double>() == Approx(0.11125).margin(1e-7));
  CHECK(plain.clip_fraction == 0.0);
}

TEST_CASE("PPO token rewards and GAE on a 4-token and a 2-token completion against a hand oracle", "[ppo][oracle]") {
  // Row 0: 2 prompt tokens, 4 completion tokens, 1 pad. r = 1, β = 0.1, log π_old − log π_ref = 0.2, -0.1, 0, 0.3
  //   token rewards −β·d + [last]·r = -0.02, 0.01, 0, 0.97;  V = 0.5, 0.6, 0.7, 0.8;  γ = 0.9, λ = 0.8 (γλ = 0.72)
  //   δ4 = 0.97 − 0.8 = 0.17                 A4 = 0.17
  //   δ3 = 0 + 0.9·0.8 − 0.7 = 0.02          A3 = 0.02 + 0.72·0.17 = 0.1424
  //   δ2 = 0.01 + 0.9·0.7 − 0.6 = 0.04       A2 = 0.04 + 0.72·0.1424 = 0.142528
  //   δ1 = -0.02 + 0.9·0.6 − 0.5 = 0.02      A1 = 0.02 + 0.72·0.142528 = 0.12262016
  //   returns A + V = 0.62262016, 0.742528, 0.8424, 0.97
  // Row 1: 2 prompt tokens, 2 completion tokens, 3 pads. r = 0.5, no KL difference; V = 0.3, 0.1
  //   δ2 = 0.5 − 0.1 = 0.4  A2 = 0.4;   δ1 = 0.9·0.1 − 0.3 = -0.21  A1 = -0.21 + 0.72·0.4 = 0.078
  const torch::Tensor mask = torch::tensor({{false, false, true, true, true, true, false},
                                            {false, false, true, true, false, false, false}});
  const torch::Tensor old_lp = torch::tensor({{0.0F, 0.0F, -1.0F, -2.0F, -0.5F, -0.7F, 0.0F},
                                              {0.0F, 0.0F, -0.3F, -0.4F, 0.0F, 0.0F, 0.0F}});
  const torch::Tensor ref_lp = torch::tensor({{0.0F, 0.0F, -1.2F, -1.9F, -0.5F, -1.0F, 0.0F},
                                              {0.0F, 0.0F, -0.3F, -0.4F, 0.0F, 0.0F, 0.0F}});
  const torch::Tensor values = torch::tensor({{0.0F, 0.0F, 0.5F, 0.6F, 0.7F, 0.8F, 9.0F},
                                              {0.0F, 0.0F, 0.3F, 0.1F, 9.0F, 9.0F, 9.0F}});
  const torch::Tensor rewards = torch::tensor({1.0F, 0.5F});
  const torch::Tensor r = loop::ppo_token_rewards(rewards, mask, old_lp, ref_lp, 0.1);
  const torch::Tensor expected_r = torch::tensor({{0.0F, 0.0F, -0.02F, 0.01F, 0.0F, 0.97F, 0.0F},
                                                  {0.0F, 0.0F, 0.0F, 0.5F, 0.0F, 0.0F, 0.0F}});
  CHECK((r - expected_r).abs().max().item<double>() < 1e-6);
  const pg::GaeResult g = pg::gae(r, values, mask, 0.9, 0.8);
  const torch::Tensor expected_a = torch::tensor({{0.0, 0.0, 0.12262016, 0.142528, 0.1424, 0.17, 0.0},
                                                  {0.0, 0.0, 0.078, 0.4, 0.0, 0.0, 0.0}}, torch::kDouble);
  const torch::Tensor expected_ret = torch::tensor({{0.0, 0.0, 0.62262016, 0.742528, 0.8424, 0.97, 0.0},
                                                    {0.0, 0.0, 0.378, 0.5, 0.0, 0.0, 0.0}}, torch::kDouble);
  CHECK((g.advantages.to(torch::kDouble) - expected_a).abs().max().item<double>() < 1e-6);
  CHECK((g.returns.to(torch::kDouble) - expected_ret).abs().max().item<double>() < 1e-6);
  // Without the penalty the outcome reward alone sits on each row's last completion token.
  const torch::Tensor plain = loop::ppo_token_rewards(rewards, mask, old_lp, ref_lp, 0.0);
  CHECK(plain.sum().item<double>() == Approx(1.5));
  CHECK(plain[0][5].item<double>() == 1.0);
  CHECK(plain[1][3].item<double>() == 0.5);

  // Explained variance: 1 when V = R, 0 when V is R's mean, NaN when R is constant.
  const torch::Tensor ret = g.returns;
  CHECK(loop::explained_variance(ret, ret, mask) == Approx(1.0));
  const double mean = (ret * mask).sum().item<double>() / mask.sum().item<double>();
  CHECK(loop::explained_variance(torch::full_like(ret, mean), ret, mask) == Approx(0.0).margin(1e-6));
  CHECK(std::isnan(loop::explained_variance(ret, torch::ones_like(ret), mask)));
}

TEST_CASE("ValueModel::token_values: column t is the head at the hidden state of column t - 1", "[ppo][value_model]") {
  REQUIRE(kOneThread);
  const Setup s;
  ValueModel critic = critic_for(s, 3);
  {
    torch::NoGradGuard no_grad;
    critic.head->weight.normal_(0.0, 0.5);  // a non-zero head (it starts at zero)
    critic.head->bias.fill_(0.1);
  }
  const std::vector<Prompt> prompts = s.prompts(2, 7);
  std::vector<Completion> completions(2);
  completions[0].tokens = s.tokenizer.encode("12");
  completions[1].tokens = s.tokenizer.encode("345");
  const std::vector<double> rewards{0.0, 0.0};
  const TokenBatch batch = kaizen::collate(std::span<const Prompt>(prompts), std::span<const Completion>(completions),
                                           std::span<const double>(rewards), 1, s.collate());
  torch::NoGradGuard no_grad;
  const torch::Tensor v = critic.token_values(batch);
  REQUIRE(v.sizes() == batch.input_ids.sizes());
  CHECK(v.scalar_type() == torch::kFloat);
  CHECK((v.select(1, 0) == 0).all().item<bool>());
  // The step scorer's logits at every real column c score token c + 1's state.
  std::vector<std::vector<kaizen::TokenId>> seqs;
  std::vector<std::vector<std::int64_t>> ends;
  for (std::int64_t b = 0; b < 2; ++b) {
    const std::int64_t n = batch.attention_mask[b].sum().item<std::int64_t>();
    std::vector<kaizen::TokenId> seq;
    std::vector<std::int64_t> e;
    for (std::int64_t t = 0; t < n; ++t) {
      seq.push_back(batch.input_ids[b][t].item<std::int64_t>());
      e.push_back(t + 1);
    }
    seqs.push_back(seq);
    ends.push_back(e);
  }
  const auto step_batch = kaizen::lm::make_step_batch(std::span<const std::vector<kaizen::TokenId>>(seqs),
                                                      std::span<const std::vector<std::int64_t>>(ends));
  const torch::Tensor z = critic.step_logits(step_batch);
  std::int64_t k = 0;
  double largest = 0.0;
  for (std::int64_t b = 0; b < 2; ++b)
    for (std::size_t t = 0; t < seqs[static_cast<std::size_t>(b)].size(); ++t, ++k) {
      if (static_cast<std::int64_t>(t) + 1 >= v.size(1)) continue;
      CHECK(std::abs(v[b][static_cast<std::int64_t>(t) + 1].item<double>() - z[k].item<double>()) < 1e-5);
      largest = std::max(largest, std::abs(z[k].item<double>()));
    }
  CHECK(largest > 1e-2);
}

TEST_CASE("PPO raises the probability of the token its reward prefers and its critic learns", "[ppo][loop]") {
  REQUIRE(kOneThread);
  const Setup s;
  const kaizen::TokenId target = s.tokenizer.encode("7").front();
  auto reward = [&](const Prompt&, const Completion& c) { return c.tokens.front() == target ? 1.0 : 0.0; };
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) {
    return kaizen::tasks::make_prompt(s.task.generate(arm, rng), s.tokenizer);
  };
  LlamaModel model = s.model(8);
  ValueModel critic = critic_for(s, 9);
  kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
  const std::vector<Prompt> probe = s.prompts(32, 2024);
  auto target_probability = [&] {
    torch::NoGradGuard no_grad;
    double sum = 0.0;
    for (const Prompt& p : probe) {
      const auto n = static_cast<std::int64_t>(p.tokens.size());
      const torch::Tensor ids = torch::tensor(p.tokens, torch::kLong).unsqueeze(0);
      const torch::Tensor hidden =
          model.forward(ids, torch::arange(n, torch::kLong).unsqueeze(0), torch::ones({1, n}, torch::kBool));
      sum += torch::softmax(model.project(hidden.select(1, n - 1)), -1)[0][target].item<double>();
    }
    return sum / static_cast<double>(probe.size());
  };
  const double before = target_probability();
  CHECK(before < 0.2);

  // Two critic-only steps first: the policy must not move during them.
  const std::vector<torch::Tensor> initial = loop::take_snapshot(model).tensors;
  std::vector<torch::Tensor> after_warmup;
  loop::PpoConfig config{.steps = 20, .prompts_per_step = 8, .group_size = 4, .epochs = 2, .critic_epochs = 2,
                         .minibatch_groups = 4, .learning_rate = 1e-2, .critic_learning_rate = 3e-3,
                         .critic_warmup_steps = 2, .sampling = s.sampling(1), .seed = 4, .collate = s.collate()};
  const auto run = loop::ppo(model, critic, sampler, reward, source, config, [&](const nlohmann::json& m) {
    if (m["step"] == 2) after_warmup = loop::take_snapshot(model).tensors;
  });
  REQUIRE(run.steps == 20);
  REQUIRE(run.history.size() == 20);
  check_same_parameters(initial, after_warmup);
  CHECK_FALSE(run.history[1]["actor_updated"].get<bool>());
  CHECK_FALSE(run.history[1].contains("approx_kl"));
  CHECK(run.history[1]["critic_updates"] == 4);  // 2 epochs x 2 mini-batches of 4 groups
  CHECK(run.history[2]["actor_updated"].get<bool>());
  for (const char* key : {"loss", "clip_fraction", "approx_kl", "grad_norm", "value_loss", "value_clip_fraction",
                          "critic_grad_norm", "learning_rate", "advantage_mean", "value_mean", "return_mean"}) {
    INFO(key);
    CHECK(run.history[5].contains(key));
  }
  CHECK(run.history[5]["approx_kl"].get<double>() >= 0.0);
  const double after = target_probability();
  INFO("p(target) before " << before << ", after " << after);
  CHECK(after > 0.8);
  // The critic learns: mean value loss of the last 5 steps below the first 5's.
  double first = 0.0, last = 0.0;
  for (int i = 0; i < 5; ++i) {
    first += run.history[static_cast<std::size_t>(i)]["value_loss"].get<double>();
    last += run.history[static_cast<std::size_t>(15 + i)]["value_loss"].get<double>();
  }
  INFO("value loss, first 5 steps " << first / 5 << ", last 5 " << last / 5);
  CHECK(last < first);
  CHECK(run.history.back()["reward_mean"].get<double>() > run.history.front()["reward_mean"].get<double>());
}

/// A user's own critic: a linear head on the policy's own (detached) hidden states; only the head trains.
struct PolicyHeadCritic {
  LlamaModel* policy;
  torch::nn::Linear head;
  torch::Tensor token_values(const TokenBatch& b) {
    const torch::Tensor z = head(policy->hidden_states(b).detach()).squeeze(-1);
    return torch::cat({torch::zeros({z.size(0), 1}), z.narrow(1, 0, z.size(1) - 1)}, 1);
  }
  std::vector<torch::Tensor> parameters() { return head->parameters(); }
};
static_assert(loop::Critic<PolicyHeadCritic>);

TEST_CASE("PPO trains a user's own critic: a head on the policy's hidden states", "[ppo][loop]") {
  REQUIRE(kOneThread);
  const Setup s;
  DigitFraction reward{&s.tokenizer};
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) {
    return kaizen::tasks::make_prompt(s.task.generate(arm, rng), s.tokenizer);
  };
  LlamaModel model = s.model(5);
  kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
  PolicyHeadCritic critic{&model, torch::nn::Linear(s.model_config().hidden_size, 1)};
  const torch::Tensor head_before = critic.head->weight.detach().clone();
  const std::vector<torch::Tensor> policy_before = loop::take_snapshot(model).tensors;
  // Critic-only steps: the head moves, the policy (whose hidden states the head reads) does not.
  const loop::PpoConfig config{.steps = 3, .prompts_per_step = 4, .group_size = 2, .critic_epochs = 3,
                               .critic_learning_rate = 1e-2, .critic_warmup_steps = 3, .sampling = s.sampling(),
                               .seed = 2, .collate = s.collate()};
  const auto run = loop::ppo(model, critic, sampler, reward, source, config);
  REQUIRE(run.history.size() == 3);
  check_same_parameters(policy_before, model.parameters());
  CHECK_FALSE(torch::equal(head_before, critic.head->weight));
  CHECK(run.history.back()["value_loss"].get<double>() < run.history.front()["value_loss"].get<double>());
}

TEST_CASE("PPO resumed from a checkpoint continues exactly like the uninterrupted run", "[ppo][loop]") {
  REQUIRE(kOneThread);
  const Setup s;
  DigitFraction reward{&s.tokenizer};
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) {
    return kaizen::tasks::make_prompt(s.task.generate(arm, rng), s.tokenizer);
  };
  // Mini-batches and epochs on both sides (shuffles draw from the engine), a KL reward penalty to a
  // reference, learning-rate warm-up, critic warm-up: every piece of state the checkpoint carries is used.
  loop::PpoConfig base{.steps = 4, .prompts_per_step = 3, .group_size = 2, .epochs = 2, .critic_epochs = 2,
                       .minibatch_groups = 1, .learning_rate = 3e-3, .warmup_steps = 2, .critic_learning_rate = 3e-3,
                       .weight_decay = 0.01, .critic_warmup_steps = 1, .kl_reward_coefficient = 0.05,
                       .sampling = s.sampling(), .seed = 11, .collate = s.collate()};
  base.checkpoint_every = 2;
  TempDir full_dir("ppo_full"), part_dir("ppo_part"), resumed_dir("ppo_resumed");
  LlamaModel reference = s.model(5);

  LlamaModel full = s.model(5);
  ValueModel full_critic = critic_for(s, 6);
  kaizen::lm::LlamaSampler full_sampler(full, s.tokenizer.pad_id());
  loop::PpoConfig full_config = base;
  full_config.checkpoint_dir = full_dir.path;
  const auto full_run = loop::ppo(full, full_critic, full_sampler, reward, source, loop::kPpoObjective, full_config,
                                  {}, &reference);
  REQUIRE(full_run.history.size() == 4);

  LlamaModel part = s.model(5);
  ValueModel part_critic = critic_for(s, 6);
  kaizen::lm::LlamaSampler part_sampler(part, s.tokenizer.pad_id());
  loop::PpoConfig part_config = base;
  part_config.steps = 2;
  part_config.checkpoint_dir = part_dir.path;
  const auto part_run = loop::ppo(part, part_critic, part_sampler, reward, source, loop::kPpoObjective, part_config,
                                  {}, &reference);
  REQUIRE(part_run.steps == 2);

  // Other weights and another seed: everything must come from the checkpoint.
  LlamaModel resumed = s.model(99);
  ValueModel resumed_critic = critic_for(s, 98);
  kaizen::lm::LlamaSampler resumed_sampler(resumed, s.tokenizer.pad_id());
  loop::PpoConfig resumed_config = base;
  resumed_config.seed = 12345;
  resumed_config.checkpoint_dir = resumed_dir.path;
  resumed_config.resume_from = part_dir.path;
  const auto resumed_run = loop::ppo(resumed, resumed_critic, resumed_sampler, reward, source, loop::kPpoObjective,
                                     resumed_config, {}, &reference);
  REQUIRE(resumed_run.steps == 4);
  REQUIRE(resumed_run.history.size() == 2);
  CHECK(resumed_run.history[0]["step"] == 3);
  for (std::size_t i = 0; i < 2; ++i) {
    INFO("step " << i + 1);
    CHECK(without_timing(full_run.history[i]) == without_timing(part_run.history[i]));
    INFO("step " << i + 3);
    CHECK(without_timing(full_run.history[i + 2]) == without_timing(resumed_run.history[i]));
  }
  for (const char* key : {"kl_reward", "value_loss", "approx_kl", "loss", "explained_variance"}) {
    INFO(key);
    CHECK(resumed_run.history[1].contains(key));
  }
  check_same_parameters(full.parameters(), resumed.parameters());
  check_same_parameters(full_critic.parameters(), resumed_critic.parameters());
  // The weights did move (the comparison is not between untouched initialisations).
  LlamaModel initial = s.model(5);
  ValueModel initial_critic = critic_for(s, 6);
  CHECK_FALSE(torch::equal(full.parameters()[0], initial.parameters()[0]));
  CHECK_FALSE(torch::equal(full_critic.head->weight, initial_critic.head->weight));
  CHECK(std::filesystem::exists(resumed_dir.path / "critic_optimizer.pt"));
}

TEST_CASE("PPO rejects bad critics and configs with messages that name them", "[ppo][errors]") {
  REQUIRE(kOneThread);
  const Setup s;
  DigitFraction reward{&s.tokenizer};
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) {
    return kaizen::tasks::make_prompt(s.task.generate(arm, rng), s.tokenizer);
  };
  LlamaModel model = s.model(5);
  ValueModel critic = critic_for(s, 6);
  kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
  const loop::PpoConfig config{.steps = 1, .prompts_per_step = 2, .group_size = 2, .sampling = s.sampling(),
                               .seed = 1, .collate = s.collate()};

  SECTION("a critic of the wrong shape") {
    auto drop_column = [](torch::Tensor v) { return v.narrow(1, 0, v.size(1) - 1); };
    BrokenCritic<decltype(drop_column)> bad{&critic, drop_column};
    REQUIRE_THROWS_WITH(loop::ppo(model, bad, sampler, reward, source, config),
                        Contains("ppo: the critic returned shape") && Contains("(one value per token)"));
    auto per_row = [](torch::Tensor v) { return v.sum(1); };
    BrokenCritic<decltype(per_row)> rows{&critic, per_row};
    REQUIRE_THROWS_WITH(loop::ppo(model, rows, sampler, reward, source, config),
                        Contains("ppo: the critic returned shape [4]; expected [4, "));
  }
  SECTION("a critic with a non-finite value on a completion token") {
    auto nan_last = [](torch::Tensor v) { return torch::full_like(v, std::numeric_limits<float>::quiet_NaN()); };
    BrokenCritic<decltype(nan_last)> bad{&critic, nan_last};
    REQUIRE_THROWS_WITH(loop::ppo(model, bad, sampler, reward, source, config),
                        Contains("ppo: the critic returned a non-finite value (nan) at row 0, column"));
  }
  SECTION("gamma or lambda outside [0, 1]") {
    loop::PpoConfig c = config;
    c.gamma = 1.5;
    REQUIRE_THROWS_WITH(loop::ppo(model, critic, sampler, reward, source, c),
                        Contains("ppo: gamma must be in [0, 1], got 1.5"));
    c.gamma = 1.0;
    c.lambda = -0.1;
    REQUIRE_THROWS_WITH(loop::ppo(model, critic, sampler, reward, source, c),
                        Contains("ppo: lambda must be in [0, 1], got -0.1"));
  }
  SECTION("other config errors") {
    loop::PpoConfig c = config;
    c.value_coefficient = 0.0;
    REQUIRE_THROWS_WITH(loop::ppo(model, critic, sampler, reward, source, c),
                        Contains("ppo: value_coefficient must be > 0, got 0"));
    c = config;
    c.critic_epochs = 0;
    REQUIRE_THROWS_WITH(loop::ppo(model, critic, sampler, reward, source, c),
                        Contains("ppo: critic_epochs must be > 0, got 0"));
    c = config;
    c.kl_reward_coefficient = 0.1;
    REQUIRE_THROWS_WITH(loop::ppo(model, critic, sampler, reward, source, c),
                        Contains("ppo: kl_reward_coefficient > 0, so a reference policy is required"));
    c = config;
    const pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::KlLoss<pg::KlEstimator::k3>, pg::TokenMean> with_kl{};
    REQUIRE_THROWS_WITH(loop::ppo(model, critic, sampler, reward, source, with_kl, c, {}, static_cast<LlamaModel*>(nullptr)),
                        Contains("ppo: the objective has a KL term, so a reference policy is required"));
    c.resume_from = std::filesystem::temp_directory_path() / "kaizen_test_ppo_no_such_checkpoint";
    REQUIRE_THROWS_WITH(loop::ppo(model, critic, sampler, reward, source, c),
                        Contains("load_checkpoint:") && Contains("does not exist"));
  }
  SECTION("value loss shapes and coefficient") {
    const torch::Tensor v = torch::zeros({2, 3});
    const torch::Tensor m = torch::ones({2, 3}, torch::kBool);
    REQUIRE_THROWS_WITH(loop::ppo_value_loss(v, torch::zeros({2, 2}), v, m, 0.2, 0.5),
                        Contains("ppo_value_loss: expected old_values, returns and mask of shape [2, 3]"));
    REQUIRE_THROWS_WITH(loop::ppo_value_loss(v, v, v, torch::zeros({2, 3}, torch::kBool), 0.2, 0.5),
                        Contains("ppo_value_loss: the mask selects no token"));
    REQUIRE_THROWS_WITH(loop::ppo_value_loss(v, v, v, m, 0.2, -1.0),
                        Contains("ppo_value_loss: the coefficient must be > 0, got -1"));
  }
}
