// length_reward - GRPO with a group-relative length reward (reward::GroupLengthReward) against plain
// GRPO, from the same warm start, in the same run: does the length term shorten correct answers at
// equal accuracy?
//
//   1. a verbose warm start: each supervised target is, with probability --verbose-fraction, the
//      problem restated before the answer ("27+58=85") and otherwise the bare answer ("85"); both are
//      correct (the verifier reads the last number), so correct answers come in two lengths
//   2. GRPO with the verifier's 0/1 reward (baseline) and GRPO with verifier + length term (Kimi form,
//      weight --weight, optional accuracy gate), same seed, steps, prompts, G
//   3. held-out pass@1 and the mean length (tokens) of the correct answers before and after each run;
//      JSON lines and an SVG plot of the training-time length of both runs
//
// References: Self-Rewarded Efficiency RL (arXiv 2506.15647); the Kimi k1.5 length reward
// (arXiv 2501.12599); reward/length.hpp for the exact forms.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <common/svg_plot.hpp>
#include <kaizen/loop.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/reward/length.hpp>
#include <kaizen/tasks.hpp>
#include <common/tiny_setup.hpp>

namespace {

struct Options {
  std::string out_dir = "out/length_reward";
  std::string mode = "kimi";
  double weight = 0.5;
  double acc_gate = 0.0;
  double verbose_fraction = 0.5;
  int steps = 60;
  int prompts = 32;
  int group_size = 8;
  double lr = 1e-3;
  int warmup = 10;
  double warm_start_target = 0.3;
  int sft_steps = 4000;
  int eval_prompts = 200;
  int eval_k = 4;
  int threads = 1;
  std::uint64_t seed = 1;
};

int run(const Options& o) {
  using namespace kaizen;
  const auto t0 = tiny::begin_run(o.out_dir, o.threads, o.seed);
  const tasks::Arithmetic task({.min_digits = 2, .max_digits = 2, .operators = "+"});
  const tasks::CharTokenizer tokenizer;
  const tasks::HeldOutSplit<tasks::Arithmetic> split(task, static_cast<std::size_t>(o.eval_prompts), o.seed + 1000);
  const std::vector<Prompt> held_out = tiny::held_out_prompts(split, tokenizer);
  const lm::LlamaConfig config = tiny::llama_config(tokenizer, {});
  lm::LlamaModel model(config);
  lm::LlamaSampler sampler(model, tokenizer);
  tasks::TaskVerifier<tasks::Arithmetic, tasks::CharTokenizer> verifier{&task, &tokenizer};
  SamplingParams sampling;
  sampling.max_new_tokens = 14;
  sampling.stop_tokens = {tokenizer.eos_id()};
  const CollateOptions collate{.pad_id = tokenizer.pad_id(), .vocab_size = config.vocab_size,
                               .max_length = config.max_position_embeddings};
  std::ofstream file(std::filesystem::path(o.out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(file);

  // 1. Verbose warm start: "a+b=c" or "c".
  auto target = [&](const tasks::Problem& p, Rng& rng) {
    std::vector<TokenId> ids = tokenizer.encode(uniform01(rng) < o.verbose_fraction ? p.prompt + p.answer : p.answer);
    ids.push_back(tokenizer.eos_id());
    return ids;
  };
  const std::int64_t sft_steps = tiny::warm_start(model, sampler, verifier, split, tokenizer, sampling, collate,
                                                  o.warm_start_target, o.sft_steps, 3e-3, o.seed, target, jsonl);
  const kaizen::loop::ParameterSnapshot warm = kaizen::loop::take_snapshot(model);
  auto measure = [&](std::uint64_t seed) {
    SamplingParams params = sampling;
    params.seed = seed;
    return tiny::measure(sampler, verifier, std::span<const Prompt>(held_out), o.eval_k, params);
  };
  const tiny::HeldOut before = measure(o.seed * 7919);
  jsonl({{"event", "warm_start"}, {"sft_steps", sft_steps}, {"held_out", before.to_json()}});
  std::fprintf(stderr, "warm start: %lld SFT steps; held-out pass@1 %.3f, correct answers %.2f tokens long\n",
               static_cast<long long>(sft_steps), before.pass_at_1, before.mean_correct_length);

  // 2. GRPO without and with the length term, same seed.
  auto source = [&](ArmId arm, Rng& rng) { return tasks::make_prompt(split.train(arm, rng), tokenizer); };
  namespace pg = kaizen::policy_gradient;
  const pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::NoKl, pg::SeqMeanTokenMean> objective{};
  const loop::GrpoConfig grpo{.steps = o.steps, .prompts_per_step = o.prompts, .group_size = o.group_size, .epochs = 2,
                              .learning_rate = o.lr, .warmup_steps = o.warmup, .sampling = sampling, .seed = o.seed + 1,
                              .collate = collate};
  const reward::LengthRewardOptions length_options{
      .mode = o.mode == "zscore" ? reward::LengthMode::zscore
              : o.mode == "minmax" ? reward::LengthMode::minmax : reward::LengthMode::kimi,
      .alpha = 1.0, .acc_gate = o.acc_gate, .weight = o.weight};
  std::vector<double> steps_x;
  std::vector<double> length_plain, length_with;
  tiny::HeldOut after_plain, after_with;
  for (const bool with_length : {false, true}) {
    kaizen::loop::restore_snapshot(model, warm);
    torch::manual_seed(o.seed + 1);
    const char* name = with_length ? "grpo+length" : "grpo";
    std::vector<double>& lengths = with_length ? length_with : length_plain;
    auto log = [&](const nlohmann::json& m) {
      nlohmann::json r = m;
      r["run"] = name;
      jsonl(r);
      lengths.push_back(m["completion_length_mean"].get<double>());
      if (!with_length) steps_x.push_back(m["step"].get<double>());
    };
    if (with_length) {
      reward::GroupLengthReward<decltype(verifier)> shaped(verifier, o.group_size, length_options);
      loop::grpo(model, sampler, shaped, source, objective, grpo, log);
    } else {
      loop::grpo(model, sampler, verifier, source, objective, grpo, log);
    }
    const tiny::HeldOut after = measure(o.seed * 7919 + 1);
    (with_length ? after_with : after_plain) = after;
    jsonl({{"event", "run"}, {"run", name}, {"held_out", after.to_json()}});
  }
  const double seconds = tiny::seconds_since(t0);
  jsonl({{"event", "summary"}, {"before", before.to_json()}, {"grpo", after_plain.to_json()},
         {"grpo_length", after_with.to_json()}, {"seconds", seconds}});

  plot::LinePlot chart({.title = "GRPO with and without the length reward (" + o.mode + ", weight " +
                                     std::to_string(o.weight).substr(0, 4) + ")",
                        .x_label = "GRPO step", .y_label = "mean completion length (tokens)", .width = 960,
                        .y_min = 0.0, .y_max = 12.0});
  chart.add_series("GRPO", steps_x, length_plain);
  chart.add_series("GRPO + length reward", steps_x, length_with);
  const std::string plot_path = (std::filesystem::path(o.out_dir) / "length.svg").string();
  chart.write(plot_path);
  std::printf("%-22s %10s %28s\n", "", "pass@1", "correct-answer length (tokens)");
  std::printf("%-22s %10.3f %28.2f\n", "warm start", before.pass_at_1, before.mean_correct_length);
  std::printf("%-22s %10.3f %28.2f\n", "GRPO", after_plain.pass_at_1, after_plain.mean_correct_length);
  std::printf("%-22s %10.3f %28.2f\n", "GRPO + length reward", after_with.pass_at_1, after_with.mean_correct_length);
  std::printf("length reward vs GRPO: pass@1 %+.1f points, correct answers %+.2f tokens\n",
              100.0 * (after_with.pass_at_1 - after_plain.pass_at_1),
              after_with.mean_correct_length - after_plain.mean_correct_length);
  tiny::print_outputs(seconds, o.out_dir, plot_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"kaizen length reward: GRPO with and without a group-relative length term, same warm start"};
  app.add_option("--out", o.out_dir, "output folder");
  app.add_option("--mode", o.mode, "length term: kimi, zscore or minmax")->check(CLI::IsMember({"kimi", "zscore", "minmax"}));
  app.add_option("--weight", o.weight, "weight of the length term");
  app.add_option("--acc-gate", o.acc_gate, "group accuracy below which the length term is 0");
  app.add_option("--verbose-fraction", o.verbose_fraction, "share of warm-start targets that restate the problem");
  app.add_option("--steps", o.steps, "GRPO steps per run");
  app.add_option("--prompts", o.prompts, "prompts per GRPO step");
  app.add_option("--group-size", o.group_size, "samples per prompt (G)");
  app.add_option("--lr", o.lr, "GRPO learning rate");
  app.add_option("--warmup", o.warmup, "GRPO learning-rate warm-up steps");
  app.add_option("--warm-start-target", o.warm_start_target, "probe pass@1 that ends the warm start");
  app.add_option("--sft-steps", o.sft_steps, "most warm-start steps");
  app.add_option("--eval-prompts", o.eval_prompts, "held-out prompts");
  app.add_option("--eval-k", o.eval_k, "samples per held-out prompt");
  app.add_option("--threads", o.threads, "CPU threads for LibTorch");
  app.add_option("--seed", o.seed, "seed");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "length_reward: " << e.what() << "\n";
    return 1;
  }
}
