// The data-parallel loop stages (distributed/data_parallel_stages.hpp) on one rank against the serial stages and
// hand-built oracles: rollout_step consumes the loop's engine exactly as loop::rollout_step does and samples each
// group with its own seed group_seed(s, g); frozen_logprobs and policy_gradient_update give the serial stages'
// values (one rank: the same normaliser, the same gradients, the same shuffles).
#include <catch2/catch.hpp>

#include <cstdint>
#include <span>
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/distributed/data_parallel_stages.hpp>
#include <kaizen/distributed/single_process.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/rollout.hpp>
#include <kaizen/loop/update.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/options.hpp>

#include "loop/preference_loop_support.hpp"

namespace {

namespace kd = kaizen::distributed;
namespace pg = kaizen::policy_gradient;
using kaizen::lm::LlamaModel;
using kaizen_test::preference_loops::DigitFraction;
using kaizen_test::preference_loops::Setup;

}  // namespace

TEST_CASE("Data-parallel stages on one rank: per-group seeds, the serial engine draws, the serial update", "[distributed]") {
  torch::set_num_threads(1);
  const Setup s;
  DigitFraction reward{&s.tokenizer};
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) {
    return kaizen::tasks::make_prompt(s.task.generate(arm, rng), s.tokenizer);
  };
  LlamaModel model = s.model(4);
  kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
  kd::SingleProcess one;
  const kaizen::loop::RolloutOptions options{.prompts = 3, .group_size = 4};
  const kaizen::SamplingParams params = s.sampling();

  kaizen::Rng rng(5), serial_rng(5), oracle_rng(5);
  const kaizen::loop::StepRollouts r = kd::rollout_step(&one, sampler, reward, source, options, params, rng);
  (void)kaizen::loop::rollout_step(sampler, reward, source, options, params, serial_rng);
  CHECK(rng == serial_rng);  // the same draws as the serial stage: prompts, then one seed
  // Oracle: the same prompts, then group g sampled alone with seed group_seed(s, g).
  const kaizen::loop::DrawnPrompts drawn = kaizen::loop::draw_prompts(source, 3, oracle_rng);
  const std::uint64_t round_seed = oracle_rng();
  REQUIRE(r.prompts.size() == 3);
  REQUIRE(r.completions.size() == 12);
  bool groups_differ = false;
  for (std::size_t g = 0; g < 3; ++g) {
    CHECK(r.prompts[g].tokens == drawn.prompts[g].tokens);
    kaizen::SamplingParams p = params;
    p.seed = kd::group_seed(round_seed, g);
    const std::vector<kaizen::Prompt> repeated = kaizen::loop::repeat_prompts(std::span(&drawn.prompts[g], 1), 4);
    const std::vector<kaizen::Completion> expected = sampler.sample(std::span<const kaizen::Prompt>(repeated), p);
    for (std::size_t i = 0; i < 4; ++i) {
      CHECK(r.completions[g * 4 + i].tokens == expected[i].tokens);
      CHECK(r.completions[g * 4 + i].logprobs == expected[i].logprobs);
      CHECK(r.rewards[g * 4 + i] == reward(drawn.prompts[g], expected[i]));
    }
    groups_differ = groups_differ || r.completions[g * 4].tokens != r.completions[0].tokens;
  }
  CHECK(groups_differ);
  CHECK(kd::group_seed(7, 0) != kd::group_seed(7, 1));
  CHECK(kd::group_seed(7, 0) != kd::group_seed(8, 0));

  // frozen_logprobs: the serial values.
  const kaizen::TokenBatch batch =
      kaizen::collate(std::span<const kaizen::Prompt>(r.prompts), std::span<const kaizen::Completion>(r.completions),
                      std::span<const double>(r.rewards), 4, s.collate());
  const auto transform = kaizen::lm::LogitTransform::from(params);
  const torch::Tensor old = kaizen::loop::frozen_logprobs(model, batch, transform);
  CHECK(torch::equal(kd::frozen_logprobs(&one, model, batch, transform), old));
  const torch::Tensor advantages = pg::group_advantages(batch.rewards.to(old.dtype()), batch.group_ids);

  // policy_gradient_update: two epochs of single-group mini-batches, from the same weights and engine.
  LlamaModel a = s.model(9), b = s.model(9);
  const std::vector<torch::Tensor> pa = a.parameters(), pb = b.parameters();
  auto oa = kaizen::loop::make_adamw(pa, {.learning_rate = 1e-2});
  auto ob = kaizen::loop::make_adamw(pb, {.learning_rate = 1e-2});
  const kaizen::loop::PolicyGradientUpdateOptions u{.group_size = 4, .epochs = 2, .minibatch_groups = 1};
  kaizen::Rng ra(3), rb(3);
  const pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::NoKl, pg::TokenMean> objective{};
  const auto serial = kaizen::loop::policy_gradient_update(a, oa, pa, batch, old, {}, advantages, transform, objective, u, ra);
  const auto parallel = kd::policy_gradient_update(&one, b, ob, pb, batch, old, {}, advantages, transform, objective, u, rb, 256);
  CHECK(ra == rb);
  CHECK(serial.updates == 6);
  CHECK(parallel.updates == 6);
  CHECK(parallel.loss == Approx(serial.loss).epsilon(1e-6));
  CHECK(parallel.grad_norm == Approx(serial.grad_norm).epsilon(1e-6));
  CHECK(parallel.entropy == Approx(serial.entropy).epsilon(1e-6));
  double worst = 0.0;
  for (std::size_t i = 0; i < pa.size(); ++i) worst = std::max(worst, (pa[i] - pb[i]).abs().max().item<double>());
  CHECK(worst == 0.0);  // one rank: the same operations in the same order
  LlamaModel initial = s.model(9);
  CHECK_FALSE(torch::equal(a.parameters()[0], initial.parameters()[0]));

  // What the data-parallel update does not do yet is refused, never silently ignored.
  kaizen::loop::PolicyGradientUpdateOptions accumulate = u, bf16 = u;
  accumulate.micro_batch_groups = 1;
  bf16.precision = kaizen::loop::Precision::bf16;
  REQUIRE_THROWS_WITH(kd::policy_gradient_update(&one, b, ob, pb, batch, old, {}, advantages, transform, objective,
                                                 accumulate, rb),
                      Catch::Contains("gradient accumulation (micro_batch_groups = 1) is not data-parallel yet"));
  REQUIRE_THROWS_WITH(kd::policy_gradient_update(&one, b, ob, pb, batch, old, {}, advantages, transform, objective, bf16,
                                                 rb),
                      Catch::Contains("precision bf16 is not data-parallel yet"));
}
