// Iterative DPO on a tiny Llama model: a run killed mid-iteration resumes bit for bit from its checkpoint
// (pairs, reference, optimiser, engine), the first DPO step of an iteration has loss log 2 (π = π_ref),
// the reference is refreshed per iteration or kept, the judge's preference is learnt, and bad input
// (empty prompt set, N < 2, a judge returning the wrong count or non-finite scores) is an error with values.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/judge.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/iterative_dpo.hpp>
#include <kaizen/loop/judges.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>

#include "loop_test_support.hpp"
#include "preference_loop_support.hpp"

namespace {

namespace fs = std::filesystem;
using kaizen_test::check_same_parameters;
using kaizen_test::kOneThread;
using kaizen_test::same_parameters;
using kaizen_test::TempDir;
using kaizen::Completion;
using kaizen::Prompt;
using kaizen::lm::LlamaModel;

using kaizen_test::preference_loops::DigitFraction;
using kaizen_test::preference_loops::Setup;
using kaizen_test::preference_loops::Stop;

}  // namespace

namespace {

kaizen::loop::PreferenceLoopConfig base_config(const Setup& s) {
  kaizen::loop::PreferenceLoopConfig c;
  c.iterations = 2;
  c.prompts_per_iteration = 6;
  c.samples_per_prompt = 4;
  c.steps_per_iteration = 3;
  c.pairs_per_step = 3;
  c.optimizer = {.learning_rate = 3e-3, .weight_decay = 0.01};
  c.sampling = s.sampling();
  c.seed = 11;
  c.collate = s.collate();
  return c;
}

/// The mean judge score of `n` fresh samples per prompt (held-out measurement, its own seed).
double mean_reward(kaizen::lm::LlamaSampler& sampler, DigitFraction& reward, const std::vector<Prompt>& prompts,
                   const kaizen::SamplingParams& sampling) {
  std::vector<Prompt> repeated;
  for (const auto& p : prompts)
    for (int i = 0; i < 8; ++i) repeated.push_back(p);
  kaizen::SamplingParams params = sampling;
  params.seed = 4242;
  const auto cs = sampler.sample(std::span<const Prompt>(repeated), params);
  double sum = 0.0;
  for (std::size_t i = 0; i < cs.size(); ++i) sum += reward(repeated[i], cs[i]);
  return sum / static_cast<double>(cs.size());
}

}  // namespace

TEST_CASE("Iterative DPO killed mid-iteration resumes exactly like the uninterrupted run", "[loop][iterative_dpo]") {
  REQUIRE(kOneThread);
  const Setup s;
  const auto pool = s.prompts(10, 3);
  DigitFraction reward{&s.tokenizer};
  auto judge = kaizen::loop::reward_model_judge(reward);
  auto config = base_config(s);
  config.checkpoint_every = 2;  // steps 2 (mid iteration 1), 4 (mid iteration 2), 6

  TempDir full_dir("idpo_full"), part_dir("idpo_part"), resumed_dir("idpo_resumed");
  LlamaModel full = s.model(5), full_ref = s.model(6);
  kaizen::lm::LlamaSampler full_sampler(full, s.tokenizer.pad_id());
  auto full_config = config;
  full_config.checkpoint_dir = full_dir.path;
  const auto full_run = kaizen::loop::iterative_dpo(full, full_ref, full_sampler, judge, std::span<const Prompt>(pool), full_config);
  REQUIRE(full_run.iterations == 2);
  REQUIRE(full_run.steps == 6);

  // The same run, stopped by an exception after step 5 is reported: its last checkpoint is step 4.
  LlamaModel part = s.model(5), part_ref = s.model(6);
  kaizen::lm::LlamaSampler part_sampler(part, s.tokenizer.pad_id());
  auto part_config = config;
  part_config.checkpoint_dir = part_dir.path;
  CHECK_THROWS_AS(kaizen::loop::iterative_dpo(part, part_ref, part_sampler, judge, std::span<const Prompt>(pool), part_config,
                                              [](const nlohmann::json& m) {
                                                if (m["event"] == "dpo" && m["step"] == 5) throw Stop{};
                                              }),
                  Stop);

  // Other weights, another reference, another seed: everything must come from the checkpoint.
  LlamaModel resumed = s.model(99), resumed_ref = s.model(98);
  kaizen::lm::LlamaSampler resumed_sampler(resumed, s.tokenizer.pad_id());
  auto resumed_config = config;
  resumed_config.seed = 12345;
  resumed_config.checkpoint_dir = resumed_dir.path;
  resumed_config.resume_from = part_dir.path;
  const auto resumed_run =
      kaizen::loop::iterative_dpo(resumed, resumed_ref, resumed_sampler, judge, std::span<const Prompt>(pool), resumed_config);
  REQUIRE(resumed_run.steps == 6);
  // The full run's records after step 4: dpo 5, dpo 6, iteration_end 2.
  std::vector<nlohmann::json> tail;
  bool after = false;
  for (const auto& m : full_run.history) {
    if (after) tail.push_back(m);
    if (m["event"] == "dpo" && m["step"] == 4) after = true;
  }
  REQUIRE(tail.size() == 3);
  CHECK(resumed_run.history == tail);
  check_same_parameters(full, resumed);
  check_same_parameters(full_ref, resumed_ref);
  CHECK(tail[0]["loss"].get<double>() > 0.0);
  LlamaModel initial = s.model(5);
  CHECK_FALSE(same_parameters(full, initial));
}

TEST_CASE("Iterative DPO: the first step of an iteration sees pi = pi_ref, and the reference refreshes",
          "[loop][iterative_dpo]") {
  REQUIRE(kOneThread);
  const Setup s;
  const auto pool = s.prompts(10, 3);
  DigitFraction reward{&s.tokenizer};
  auto judge = kaizen::loop::reward_model_judge(reward);
  for (bool refresh : {true, false}) {
    INFO("refresh_reference " << refresh);
    auto config = base_config(s);
    config.refresh_reference = refresh;
    LlamaModel policy = s.model(5), reference = s.model(6), initial = s.model(5), after_first = s.model(7);
    kaizen::lm::LlamaSampler sampler(policy, s.tokenizer.pad_id());
    std::vector<double> first_losses;
    std::int64_t pairs_total = 0;
    const auto run = kaizen::loop::iterative_dpo(policy, reference, sampler, judge, std::span<const Prompt>(pool), config,
                                                 [&](const nlohmann::json& m) {
                                                   if (m["event"] == "iterative_dpo_pairs") {
                                                     pairs_total += m["pairs"].get<std::int64_t>();
                                                     CHECK(m["score_gap_mean"].get<double>() > 0.0);
                                                     CHECK(m["chosen_score_mean"].get<double>() >=
                                                           m["rejected_score_mean"].get<double>());
                                                   }
                                                   if (m["event"] == "dpo" && (m["step"] == 1 || m["step"] == 4))
                                                     first_losses.push_back(m["loss"].get<double>());
                                                   if (m["event"] == "iteration_end" && m["iteration"] == 1) {
                                                     torch::NoGradGuard g;
                                                     for (std::size_t i = 0; i < policy.parameters().size(); ++i)
                                                       after_first.parameters()[i].copy_(policy.parameters()[i]);
                                                   }
                                                 });
    REQUIRE(run.steps == 6);
    REQUIRE(pairs_total > 0);
    REQUIRE(first_losses.size() == 2);
    CHECK(first_losses[0] == Approx(std::log(2.0)).margin(1e-5));  // step 1: π = π_ref
    if (refresh) {
      CHECK(first_losses[1] == Approx(std::log(2.0)).margin(1e-5));  // step 4: π_ref refreshed to M_1
      CHECK(same_parameters(reference, after_first));
    } else {
      CHECK(first_losses[1] != Approx(std::log(2.0)).margin(1e-4));
      CHECK(same_parameters(reference, initial));
    }
  }
}

TEST_CASE("Iterative DPO and RPO with a reward-model judge raise the judged reward", "[loop][iterative_dpo]") {
  REQUIRE(kOneThread);
  const Setup s;
  const auto pool = s.prompts(32, 3);
  const auto held_out = s.prompts(16, 77);
  DigitFraction reward{&s.tokenizer};
  auto judge = kaizen::loop::reward_model_judge(reward);
  for (double nll_weight : {0.0, 1.0}) {  // DPO, and RPO (DPO + NLL of the chosen answer)
  INFO("nll_weight " << nll_weight);
  LlamaModel policy = s.model(5), reference = s.model(6);
  kaizen::lm::LlamaSampler sampler(policy, s.tokenizer.pad_id());
  auto config = base_config(s);
  config.nll_weight = nll_weight;
  config.iterations = 3;
  config.prompts_per_iteration = 16;
  config.steps_per_iteration = 8;
  config.pairs_per_step = 8;
  config.dpo.beta = 0.5;
  const double before = mean_reward(sampler, reward, held_out, config.sampling);
  (void)kaizen::loop::iterative_dpo(policy, reference, sampler, judge, std::span<const Prompt>(pool), config);
  const double after = mean_reward(sampler, reward, held_out, config.sampling);
  INFO("held-out digit fraction " << before << " -> " << after);
  CHECK(after > before + 0.05);
  }
}

TEST_CASE("Iterative DPO rejects bad input with the values", "[loop][iterative_dpo][errors]") {
  REQUIRE(kOneThread);
  const Setup s;
  const auto pool = s.prompts(4, 3);
  DigitFraction reward{&s.tokenizer};
  auto judge = kaizen::loop::reward_model_judge(reward);
  LlamaModel policy = s.model(5), reference = s.model(6);
  kaizen::lm::LlamaSampler sampler(policy, s.tokenizer.pad_id());
  auto config = base_config(s);
  config.prompts_per_iteration = 2;
  using kaizen::loop::iterative_dpo;
  CHECK_THROWS_WITH(iterative_dpo(policy, reference, sampler, judge, std::span<const Prompt>(), config),
                    Catch::Contains("iterative_dpo: expected a non-empty prompt set, got 0 prompts"));
  auto one = config;
  one.samples_per_prompt = 1;
  CHECK_THROWS_WITH(iterative_dpo(policy, reference, sampler, judge, std::span<const Prompt>(pool), one),
                    Catch::Contains("iterative_dpo: samples_per_prompt (N) must be >= 2 to form a pair, got 1"));
  auto many = config;
  many.prompts_per_iteration = 5;
  CHECK_THROWS_WITH(iterative_dpo(policy, reference, sampler, judge, std::span<const Prompt>(pool), many),
                    Catch::Contains("prompts_per_iteration must be in [0, 4] (0 = all), got 5"));
  auto no_steps = config;
  no_steps.steps_per_iteration = 0;
  CHECK_THROWS_WITH(iterative_dpo(policy, reference, sampler, judge, std::span<const Prompt>(pool), no_steps),
                    Catch::Contains("steps_per_iteration must be >= 1, got 0"));
  auto negative_nll = config;
  negative_nll.nll_weight = -1.0;
  CHECK_THROWS_WITH(iterative_dpo(policy, reference, sampler, judge, std::span<const Prompt>(pool), negative_nll),
                    Catch::Contains("iterative_dpo: nll_weight must be >= 0 and finite, got -1"));
  auto short_judge = [](const Prompt&, std::span<const Completion> c) { return std::vector<double>(c.size() - 1, 0.5); };
  CHECK_THROWS_WITH(iterative_dpo(policy, reference, sampler, short_judge, std::span<const Prompt>(pool), config),
                    Catch::Contains("judge_scores: the judge returned 3 scores for 4 candidates"));
  auto nan_judge = [](const Prompt&, std::span<const Completion> c) {
    std::vector<double> out(c.size(), 0.5);
    out[2] = std::numeric_limits<double>::quiet_NaN();
    return out;
  };
  CHECK_THROWS_WITH(iterative_dpo(policy, reference, sampler, nan_judge, std::span<const Prompt>(pool), config),
                    Catch::Contains("judge_scores: the judge's score nan for candidate 2 is not finite"));
  kaizen::Rng rng(1);
  CHECK_THROWS_WITH(kaizen::loop::draw_prompt_indices(0, 0, rng),
                    Catch::Contains("draw_prompt_indices: expected a non-empty prompt set, got 0 prompts"));
  auto resume_missing = config;
  resume_missing.resume_from = "/nonexistent/kaizen_checkpoint";
  CHECK_THROWS_WITH(iterative_dpo(policy, reference, sampler, judge, std::span<const Prompt>(pool), resume_missing),
                    Catch::Contains("does not exist"));
}
