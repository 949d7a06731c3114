// sec_curriculum - SEC (Self-Evolving Curriculum) against uniform category sampling, GRPO on a
// multi-category task, same budget, several seeds.
//
//   1. the task: tasks::Mixture - arithmetic by operand width and operator, countdown by size; one
//      curriculum arm per category
//   2. one supervised warm start (uniform over categories) that stops at a probe pass@1 target
//   3. for each seed: from that same warm start, GRPO with uniform categories, then GRPO with the SEC
//      curriculum (mean |advantage| per arm, Boltzmann sampling), the same steps / prompts / G / seed
//   4. held-out pass@1 (fixed held-out set, uniform over categories) after each run; per seed, the
//      mean and sample std over seeds, and the paired difference; JSON lines and an SVG plot
//
// Reference: Chen et al. 2025, "Self-Evolving Curriculum for LLM Reasoning", arXiv 2505.14970.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <common/svg_plot.hpp>
#include <kaizen/consistency/extract.hpp>
#include <kaizen/curriculum/sec.hpp>
#include <kaizen/loop.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/tasks.hpp>
#include <kaizen/tasks/mixture.hpp>
#include <common/tiny_setup.hpp>

namespace {

struct Options {
  std::string out_dir = "out/sec_curriculum";
  int seeds = 5;
  int steps = 40;
  int prompts = 32;
  int group_size = 8;
  double lr = 1e-3;
  int warmup = 10;
  double alpha = 0.5;
  double tau = 0.3;
  double warm_start_target = 0.3;
  int sft_steps = 4000;
  int eval_prompts = 240;
  int eval_k = 4;
  int threads = 1;
  std::uint64_t seed = 1;
};

int run(const Options& o) {
  using namespace kaizen;
  const auto t0 = tiny::begin_run(o.out_dir, o.threads, o.seed);
  const tasks::Mixture task({.min_digits = 1, .max_digits = 2, .operators = "+-", .min_numbers = 2, .max_numbers = 3});
  const tasks::CharTokenizer tokenizer;
  const tasks::HeldOutSplit<tasks::Mixture> split(task, static_cast<std::size_t>(o.eval_prompts), o.seed + 1000);
  const std::vector<Prompt> held_out = tiny::held_out_prompts(split, tokenizer);
  const lm::LlamaConfig config = tiny::llama_config(tokenizer, {});
  lm::LlamaModel model(config);
  lm::LlamaSampler sampler(model, tokenizer);
  tasks::TaskVerifier<tasks::Mixture, tasks::CharTokenizer> verifier{&task, &tokenizer};
  SamplingParams sampling;
  sampling.max_new_tokens = 12;
  sampling.stop_tokens = {tokenizer.eos_id()};
  const CollateOptions collate{.pad_id = tokenizer.pad_id(), .vocab_size = config.vocab_size,
                               .max_length = config.max_position_embeddings};
  std::ofstream file(std::filesystem::path(o.out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(file);

  const std::int64_t sft_steps = tiny::warm_start(
      model, sampler, verifier, split, tokenizer, sampling, collate, o.warm_start_target, o.sft_steps, 3e-3, o.seed,
      [&](const tasks::Problem& p, Rng&) { return tasks::answer_tokens(p, tokenizer); }, jsonl);
  const kaizen::loop::ParameterSnapshot warm = kaizen::loop::take_snapshot(model);
  auto eval = [&](std::uint64_t seed) {
    SamplingParams params = sampling;
    params.seed = seed;
    return loop::evaluate(sampler, verifier, std::span<const Prompt>(held_out), o.eval_k, params,
                          [&](const Prompt&, const Completion& c) -> std::optional<std::string> {
                            return consistency::normalize_answer(tokenizer.decode(c.tokens));
                          });
  };
  const loop::EvalResult before = eval(o.seed * 7919);
  jsonl({{"event", "warm_start"}, {"sft_steps", sft_steps}, {"held_out", before.to_json()}});
  std::fprintf(stderr, "warm start: %lld SFT steps, held-out pass@1 %.3f; by category:", static_cast<long long>(sft_steps),
               before.pass_at_1);
  for (const auto& [c, v] : before.pass_at_1_by_category) std::fprintf(stderr, " [%s] %.2f", task.category_name(c).c_str(), v);
  std::fprintf(stderr, "\n");

  auto source = [&](ArmId arm, Rng& rng) { return tasks::make_prompt(split.train(arm, rng), tokenizer); };
  namespace pg = kaizen::policy_gradient;
  const pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::NoKl, pg::SeqMeanTokenMean> objective{};
  std::vector<double> uniform_pass, sec_pass, xs;
  for (int s = 0; s < o.seeds; ++s) {
    const std::uint64_t seed = o.seed + 100 + static_cast<std::uint64_t>(s);
    loop::GrpoConfig grpo{.steps = o.steps, .prompts_per_step = o.prompts, .group_size = o.group_size, .epochs = 2,
                          .learning_rate = o.lr, .warmup_steps = o.warmup, .sampling = sampling, .seed = seed,
                          .collate = collate};
    for (const bool with_sec : {false, true}) {
      kaizen::loop::restore_snapshot(model, warm);
      torch::manual_seed(seed);
      const char* name = with_sec ? "sec" : "uniform";
      auto log = [&](const nlohmann::json& m) {
        nlohmann::json r = m;
        r["run"] = name;
        r["seed"] = seed;
        jsonl(r);
      };
      std::vector<double> final_probs;
      if (with_sec) {
        curriculum::SelfEvolvingCurriculum sec(static_cast<std::size_t>(task.num_categories()),
                                               {.alpha = o.alpha, .tau = o.tau});
        loop::grpo(model, sampler, verifier, source, objective, grpo, log, static_cast<lm::LlamaModel*>(nullptr), &sec);
        final_probs = sec.probabilities();
      } else {
        loop::grpo(model, sampler, verifier, source, objective, grpo, log);
      }
      const loop::EvalResult after = eval(o.seed * 7919 + 1);  // same held-out draws for every run
      (with_sec ? sec_pass : uniform_pass).push_back(after.pass_at_1);
      nlohmann::json rec = {{"event", "run"}, {"run", name}, {"seed", seed}, {"held_out", after.to_json()}};
      if (with_sec) rec["final_probabilities"] = final_probs;
      jsonl(rec);
      std::fprintf(stderr, "seed %llu %-7s held-out pass@1 %.3f;", static_cast<unsigned long long>(seed), name,
                   after.pass_at_1);
      for (const auto& [c, v] : after.pass_at_1_by_category) std::fprintf(stderr, " [%s] %.2f", task.category_name(c).c_str(), v);
      if (with_sec) {
        std::fprintf(stderr, "; final SEC p:");
        for (double p : final_probs) std::fprintf(stderr, " %.2f", p);
      }
      std::fprintf(stderr, "\n");
    }
    xs.push_back(static_cast<double>(seed));
  }
  const auto [um, us] = tiny::mean_sd(uniform_pass);
  const auto [sm, ss] = tiny::mean_sd(sec_pass);
  std::vector<double> diff;
  int wins = 0;
  for (std::size_t i = 0; i < sec_pass.size(); ++i) {
    diff.push_back(sec_pass[i] - uniform_pass[i]);
    wins += sec_pass[i] >= uniform_pass[i] ? 1 : 0;
  }
  const auto [dm, ds] = tiny::mean_sd(diff);
  const double seconds = tiny::seconds_since(t0);
  jsonl({{"event", "summary"}, {"seeds", o.seeds}, {"steps", o.steps}, {"prompts", o.prompts}, {"group_size", o.group_size},
         {"pass_at_1_before", before.pass_at_1}, {"uniform_mean", um}, {"uniform_sd", us}, {"sec_mean", sm},
         {"sec_sd", ss}, {"diff_mean", dm}, {"diff_sd", ds}, {"sec_ge_uniform", wins}, {"seconds", seconds}});

  plot::LinePlot chart({.title = "SEC vs uniform categories, GRPO " + std::to_string(o.steps) + " steps x " +
                                     std::to_string(o.prompts) + " prompts x G " + std::to_string(o.group_size),
                        .x_label = "seed", .y_label = "held-out pass@1", .width = 960, .y_min = 0.0, .y_max = 1.0});
  chart.add_series("uniform", xs, uniform_pass);
  chart.add_series("SEC", xs, sec_pass);
  chart.add_series("warm start", xs, std::vector<double>(xs.size(), before.pass_at_1));
  const std::string plot_path = (std::filesystem::path(o.out_dir) / "seeds.svg").string();
  chart.write(plot_path);
  std::printf("held-out pass@1 after the warm start: %.3f\n", before.pass_at_1);
  std::printf("uniform: %.3f +- %.3f   SEC: %.3f +- %.3f   (mean +- sample std over %d seeds)\n", um, us, sm, ss, o.seeds);
  std::printf("SEC - uniform (paired by seed): %+.3f +- %.3f; SEC >= uniform in %d of %d seeds\n", dm, ds, wins, o.seeds);
  tiny::print_outputs(seconds, o.out_dir, plot_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"kaizen SEC vs uniform: GRPO on a multi-category task with and without the Self-Evolving Curriculum"};
  app.add_option("--out", o.out_dir, "output folder");
  app.add_option("--seeds", o.seeds, "GRPO seeds (each runs uniform and SEC from the same warm start)");
  app.add_option("--steps", o.steps, "GRPO steps per run");
  app.add_option("--prompts", o.prompts, "prompts per GRPO step");
  app.add_option("--group-size", o.group_size, "samples per prompt (G)");
  app.add_option("--lr", o.lr, "GRPO learning rate");
  app.add_option("--warmup", o.warmup, "GRPO learning-rate warm-up steps");
  app.add_option("--alpha", o.alpha, "SEC value-update rate");
  app.add_option("--tau", o.tau, "SEC Boltzmann temperature");
  app.add_option("--warm-start-target", o.warm_start_target, "probe pass@1 that ends the warm start");
  app.add_option("--sft-steps", o.sft_steps, "most warm-start steps");
  app.add_option("--eval-prompts", o.eval_prompts, "held-out prompts");
  app.add_option("--eval-k", o.eval_k, "samples per held-out prompt");
  app.add_option("--threads", o.threads, "CPU threads for LibTorch");
  app.add_option("--seed", o.seed, "seed of the warm start and the held-out set");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "sec_curriculum: " << e.what() << "\n";
    return 1;
  }
}
