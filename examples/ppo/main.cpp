// ppo - PPO with a critic (loop::ppo) learns 2-digit addition on a tiny Llama, against a GRPO baseline in the
// same run: same warm start, same seed, same rollout budget (steps x prompts x samples per prompt).
//
//   1. a character-level tokenizer, 2-digit addition, the grpo_demo's tiny Llama (64 hidden, 2 layers)
//   2. a supervised warm start that stops once a probe of training problems reaches a pass@1 target
//   3. held-out pass@1 of the warm start (k samples per held-out prompt at the training temperature)
//   4. PPO from the warm start: a lm::ValueModel critic whose trunk starts as a copy of the warm-started
//      policy's, critic-only warm-up steps, GAE (γ, λ) per token, whitened advantages, PPO's clipped
//      surrogate, clipped value loss, 0/1 verifier reward on the last token
//   5. GRPO from the same warm start with the same budget; held-out pass@1 during and after both
//   6. metrics as JSON lines (every step of both runs, evaluations, a summary) and an SVG plot
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
#include <common/tiny_setup.hpp>
#include <kaizen/loop.hpp>
#include <kaizen/loop/ppo.hpp>
#include <kaizen/loop/snapshot.hpp>
#include <kaizen/models/value_head.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/tasks.hpp>

namespace {

struct Options {
  std::string out_dir = "out/ppo";
  int steps = 150;
  int prompts_per_step = 64;
  int group_size = 8;
  int epochs = 2;
  int minibatch = 16;
  double lr = 1e-3;
  double critic_lr = 1e-3;
  int critic_warmup = 3;
  double gamma = 1.0;
  double lambda = 0.95;
  double value_clip = 0.2;
  double warm_start_target = 0.2;
  int warm_start_steps = 4000;
  int eval_prompts = 200;
  int eval_k = 4;
  int eval_every = 10;
  int threads = 1;
  std::uint64_t seed = 1;
};

int run(const Options& o) {
  using namespace kaizen;
  namespace pg = kaizen::policy_gradient;
  const auto t0 = tiny::begin_run(o.out_dir, o.threads, o.seed);
  const tasks::Arithmetic task({.min_digits = 2, .max_digits = 2, .operators = "+"});
  const tasks::CharTokenizer tokenizer;
  const tasks::HeldOutSplit<tasks::Arithmetic> split(task, static_cast<std::size_t>(o.eval_prompts), o.seed + 1000);
  const std::vector<Prompt> held_out = tiny::held_out_prompts(split, tokenizer);
  const lm::LlamaConfig config = tiny::llama_config(tokenizer, {});
  lm::LlamaModel model(config);
  lm::LlamaSampler sampler(model, tokenizer);
  tasks::TaskVerifier<tasks::Arithmetic, tasks::CharTokenizer> verifier{&task, &tokenizer};
  auto reward = [&](const Prompt& p, const Completion& c) { return verifier(p, c) ? 1.0 : 0.0; };
  SamplingParams sampling;
  sampling.max_new_tokens = 12;
  sampling.stop_tokens = {tokenizer.eos_id()};
  const CollateOptions collate{.pad_id = tokenizer.pad_id(), .vocab_size = config.vocab_size,
                               .max_length = config.max_position_embeddings};
  std::ofstream file(std::filesystem::path(o.out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(file);

  // 1. Warm start, then one snapshot both runs start from.
  const std::int64_t warm_steps = tiny::warm_start(
      model, sampler, verifier, split, tokenizer, sampling, collate, o.warm_start_target, o.warm_start_steps, 3e-3,
      o.seed, [&](const tasks::Problem& p, Rng&) { return tasks::answer_tokens(p, tokenizer); }, jsonl);
  const loop::ParameterSnapshot base = loop::take_snapshot(model);
  std::uint64_t eval_seed = o.seed * 7919;
  auto measure = [&](const std::string& method, std::int64_t step) {
    SamplingParams params = sampling;
    params.seed = eval_seed++;
    const tiny::HeldOut h = tiny::measure(sampler, verifier, std::span<const Prompt>(held_out), o.eval_k, params);
    nlohmann::json record = h.to_json();
    record["event"] = "eval";
    record["method"] = method;
    record["step"] = step;
    jsonl(record);
    return h.pass_at_1;
  };
  const double before = measure("warm_start", 0);
  std::fprintf(stderr, "warm start: %lld SFT steps, held-out pass@1 %.3f\n", static_cast<long long>(warm_steps), before);
  auto source = [&](ArmId arm, Rng& rng) { return tasks::make_prompt(split.train(arm, rng), tokenizer); };

  struct Curve {
    std::vector<double> x, reward, eval_x, eval_y;
  };
  auto logger = [&](Curve& curve, const std::string& method) {
    return [&, method](const nlohmann::json& m) {
      nlohmann::json record = m;
      record["method"] = method;
      jsonl(record);
      const auto step = m["step"].get<std::int64_t>();
      curve.x.push_back(static_cast<double>(step));
      curve.reward.push_back(m["reward_mean"].get<double>());
      if (o.eval_every > 0 && step % o.eval_every == 0 && step < o.steps) {
        curve.eval_x.push_back(static_cast<double>(step));
        curve.eval_y.push_back(measure(method, step));
        std::fprintf(stderr, "%s step %lld: reward %.3f, held-out pass@1 %.3f\n", method.c_str(),
                     static_cast<long long>(step), curve.reward.back(), curve.eval_y.back());
      }
    };
  };

  // 2. PPO with a critic initialised from the warm-started trunk.
  Curve ppo_curve{{}, {}, {0.0}, {before}};
  torch::manual_seed(o.seed + 7);
  lm::ValueModel critic(config);
  critic.init_trunk_from(model);
  loop::PpoConfig ppo{.steps = o.steps, .prompts_per_step = o.prompts_per_step, .group_size = o.group_size,
                      .epochs = o.epochs, .critic_epochs = o.epochs, .minibatch_groups = o.minibatch,
                      .learning_rate = o.lr, .critic_learning_rate = o.critic_lr, .gamma = o.gamma,
                      .lambda = o.lambda, .value_clip = o.value_clip, .critic_warmup_steps = o.critic_warmup,
                      .sampling = sampling, .seed = o.seed + 1, .collate = collate};
  const double ppo_start = tiny::seconds_since(t0);
  loop::ppo(model, critic, sampler, reward, source, loop::kPpoObjective, ppo, logger(ppo_curve, "ppo"),
            static_cast<lm::LlamaModel*>(nullptr));
  const double ppo_seconds = tiny::seconds_since(t0) - ppo_start;
  const double ppo_after = measure("ppo", o.steps);
  ppo_curve.eval_x.push_back(o.steps);
  ppo_curve.eval_y.push_back(ppo_after);

  // 3. GRPO from the same warm start, same seed and rollout budget.
  loop::restore_snapshot(model, base);
  Curve grpo_curve{{}, {}, {0.0}, {before}};
  const loop::GrpoConfig grpo{.steps = o.steps, .prompts_per_step = o.prompts_per_step, .group_size = o.group_size,
                              .epochs = o.epochs, .minibatch_groups = o.minibatch, .learning_rate = o.lr,
                              .sampling = sampling, .seed = o.seed + 1, .collate = collate};
  const double grpo_start = tiny::seconds_since(t0);
  loop::grpo(model, sampler, reward, source,
             pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::NoKl, pg::SeqMeanTokenMean>{}, grpo,
             logger(grpo_curve, "grpo"));
  const double grpo_seconds = tiny::seconds_since(t0) - grpo_start;
  const double grpo_after = measure("grpo", o.steps);
  grpo_curve.eval_x.push_back(o.steps);
  grpo_curve.eval_y.push_back(grpo_after);

  plot::LinePlot chart({.title = "PPO (critic) vs GRPO on 2-digit addition, same budget", .x_label = "step",
                        .y_label = "accuracy", .width = 960, .y_min = 0.0, .y_max = 1.0});
  chart.add_series("PPO held-out pass@1", ppo_curve.eval_x, ppo_curve.eval_y);
  chart.add_series("GRPO held-out pass@1", grpo_curve.eval_x, grpo_curve.eval_y);
  chart.add_series("PPO training reward", ppo_curve.x, ppo_curve.reward);
  chart.add_series("GRPO training reward", grpo_curve.x, grpo_curve.reward);
  const std::string plot_path = (std::filesystem::path(o.out_dir) / "curve.svg").string();
  chart.write(plot_path);
  const double seconds = tiny::seconds_since(t0);
  jsonl({{"event", "summary"}, {"steps", o.steps}, {"rollouts_per_step", o.prompts_per_step * o.group_size},
         {"pass_at_1_before", before}, {"ppo_pass_at_1_after", ppo_after}, {"grpo_pass_at_1_after", grpo_after},
         {"ppo_seconds", ppo_seconds}, {"grpo_seconds", grpo_seconds}, {"seconds", seconds}});
  std::printf("held-out pass@1 (%d prompts x %d samples), %d steps x %d rollouts each:\n", o.eval_prompts, o.eval_k,
              o.steps, o.prompts_per_step * o.group_size);
  std::printf("  PPO  (critic): %.3f -> %.3f (%+.1f points)  %.1f s\n", before, ppo_after, 100.0 * (ppo_after - before),
              ppo_seconds);
  std::printf("  GRPO baseline: %.3f -> %.3f (%+.1f points)  %.1f s\n", before, grpo_after,
              100.0 * (grpo_after - before), grpo_seconds);
  tiny::print_outputs(seconds, o.out_dir, plot_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"kaizen PPO demo: PPO with a critic against GRPO on 2-digit addition"};
  app.add_option("--out", o.out_dir, "output folder (metrics.jsonl, curve.svg)");
  app.add_option("--steps", o.steps, "steps of each method");
  app.add_option("--prompts", o.prompts_per_step, "prompts per step");
  app.add_option("--group-size", o.group_size, "samples per prompt");
  app.add_option("--epochs", o.epochs, "actor (and critic) epochs per step");
  app.add_option("--minibatch", o.minibatch, "prompts' groups per optimiser step (0 = all)");
  app.add_option("--lr", o.lr, "policy learning rate (both methods)");
  app.add_option("--critic-lr", o.critic_lr, "critic learning rate");
  app.add_option("--critic-warmup", o.critic_warmup, "PPO steps that train the critic only");
  app.add_option("--gamma", o.gamma, "GAE discount");
  app.add_option("--lambda", o.lambda, "GAE lambda");
  app.add_option("--value-clip", o.value_clip, "value clipping epsilon (<= 0: off)");
  app.add_option("--warm-start-target", o.warm_start_target, "stop the warm start at this probe pass@1");
  app.add_option("--eval-prompts", o.eval_prompts, "held-out prompts");
  app.add_option("--eval-k", o.eval_k, "samples per held-out prompt");
  app.add_option("--eval-every", o.eval_every, "evaluate every so many steps (0 = before and after only)");
  app.add_option("--threads", o.threads, "CPU threads for LibTorch");
  app.add_option("--seed", o.seed, "seed of everything");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "ppo: " << e.what() << "\n";
    return 1;
  }
}
