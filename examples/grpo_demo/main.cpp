// grpo_demo - a tiny Llama-style model learns a verifiable task with GRPO, on a laptop CPU, in minutes.
//
//   1. a character-level tokenizer and a task (2-digit addition by default, or countdown)
//   2. a supervised warm start that stops as soon as the model solves 20 % of a probe of training
//      problems: GRPO needs some right answers to learn from, and everything after that is left to RL
//   3. held-out evaluation: pass@1 and maj@k over sampled answers at the training temperature
//      (addition's answers are checked by kaizen::reward::MathVerifier when kaizen::reward is built:
//      --verifier math, the default then; --verifier task uses the task's light exact check)
//   4. GRPO: G samples per prompt, verifier reward, group advantages, clipped policy loss, AdamW with
//      a short learning-rate warm-up (no labels from here on: only the verifier's 0/1 reward)
//   5. held-out evaluation again; metrics as JSON lines and an SVG plot of reward / accuracy vs step
//
// Run it through ./scripts/demo.sh (configure + build + run) or directly: grpo_demo --help.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
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
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#ifndef KAIZEN_DEMO_MATH_VERIFIER  // set to 1 by CMakeLists.txt when kaizen::reward (GiNaC) is built
#define KAIZEN_DEMO_MATH_VERIFIER 0
#endif
#if KAIZEN_DEMO_MATH_VERIFIER
#include <kaizen/reward/math_verifier.hpp>
#endif

namespace {

struct Options {
  std::string device = "cpu";
  std::string task = "addition";
  std::string verifier = KAIZEN_DEMO_MATH_VERIFIER ? "math" : "task";
  std::string loss = "grpo";
  std::string curriculum = "none";
  std::string out_dir = "out/grpo_demo";
  int min_digits = 2;
  int max_digits = 2;
  int hidden_size = 64;
  int layers = 2;
  int heads = 4;
  int kv_heads = 2;
  int sft_steps = 4000;
  double warm_start_target = 0.2;
  int sft_batch = 32;
  double sft_lr = 3e-3;
  int steps = 200;
  int prompts_per_step = 64;
  int group_size = 8;
  int epochs = 2;
  double lr = 1e-3;
  int warmup = 20;
  int minibatch = 0;
  double temperature = 1.0;
  int eval_prompts = 200;
  int eval_k = 4;
  int eval_every = 20;
  int threads = 1;
  std::uint64_t seed = 1;
};

/// On a terminal, "[#####.....]  step 12/60  ..." redrawn on one line. Into a file or a pipe (a CI log),
/// a plain line every `kLogEvery` steps and at the last one, never carriage-return frames.
void progress(int step, int total, const std::string& tail) {
  static const bool terminal = ::isatty(::fileno(stderr)) != 0;
  if (!terminal) {
    constexpr int kLogEvery = 20;
    if (step % kLogEvery == 0 || step == total) std::fprintf(stderr, "step %d/%d  %s\n", step, total, tail.c_str());
    return;
  }
  constexpr int kWidth = 30;
  const int filled = total > 0 ? std::min(step, total) * kWidth / total : kWidth;
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::fprintf(stderr, "\r[%s] step %3d/%d  %s   ", bar.c_str(), step, total, tail.c_str());
  std::fflush(stderr);
}

/// Ends the progress line on a terminal (a log's lines already end).
void end_progress() {
  if (::isatty(::fileno(stderr)) != 0) std::fputc('\n', stderr);
}

/// The rest of the program, for one task type.
template <class Task>
int run(const Options& o, const Task& task) {
  using namespace kaizen;
  torch::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  const torch::Device device(o.device == "cuda" ? torch::kCUDA : torch::kCPU);
  if (device.is_cuda() && !torch::cuda::is_available()) {
    std::cerr << "--device cuda: no CUDA device is available\n";
    return 2;
  }
  std::filesystem::create_directories(o.out_dir);
  const auto t_start = std::chrono::steady_clock::now();

  const tasks::CharTokenizer tokenizer;
  const tasks::HeldOutSplit<Task> split(task, static_cast<std::size_t>(o.eval_prompts), o.seed + 1000);
  std::vector<Prompt> held_out;
  for (const auto& p : split.held_out()) held_out.push_back(tasks::make_prompt(p, tokenizer));

  lm::LlamaConfig config;
  config.vocab_size = tokenizer.vocab_size();
  config.hidden_size = o.hidden_size;
  config.intermediate_size = (o.hidden_size * 8 / 3 + 15) / 16 * 16;
  config.num_hidden_layers = o.layers;
  config.num_attention_heads = o.heads;
  config.num_key_value_heads = o.kv_heads;
  config.max_position_embeddings = 32;
  lm::LlamaModel model(config);
  model.to(device);
  lm::LlamaSampler sampler(model, tokenizer);   // decodes Completion::text too
  tasks::TaskVerifier<Task, tasks::CharTokenizer> verifier{&task, &tokenizer};

  SamplingParams sampling;
  sampling.temperature = o.temperature;
  sampling.max_new_tokens = 12;
  sampling.stop_tokens = {tokenizer.eos_id()};
  CollateOptions collate_options{.pad_id = tokenizer.pad_id(), .vocab_size = config.vocab_size,
                                 .padding = Padding::right, .max_length = config.max_position_embeddings,
                                 .device = device};

  std::ofstream metrics_file(std::filesystem::path(o.out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(metrics_file);
  auto extract = [&](const Prompt&, const Completion& c) -> std::optional<std::string> {
    const std::string text = tokenizer.decode(c.tokens);
    if (text.empty()) return std::nullopt;
    return consistency::normalize_answer(text);
  };
  std::uint64_t eval_seed = o.seed * 7919;
  auto evaluate = [&](std::int64_t step) {
    SamplingParams params = sampling;
    params.seed = eval_seed++;
    const loop::EvalResult r = loop::evaluate(sampler, verifier, std::span<const Prompt>(held_out), o.eval_k, params, extract);
    nlohmann::json record = r.to_json();
    record["event"] = "eval";
    record["step"] = step;
    jsonl(record);
    return r;
  };

  // 1. Supervised warm start.
  std::cerr << "kaizen grpo_demo: " << o.task << ", Llama " << o.layers << " layers x " << o.hidden_size
            << " hidden (" << o.heads << " heads, " << o.kv_heads << " KV heads), device " << o.device << "\n";
  auto examples = [&](Rng& rng) {
    const tasks::Problem p = split.train(-1, rng);
    Rollout r;
    r.prompt = tokenizer.encode(p.prompt);
    r.completion.tokens = tasks::answer_tokens(p, tokenizer);
    return r;
  };
  // The warm start stops as soon as the policy solves `warm_start_target` of a probe set of training
  // problems: enough reward for GRPO to learn from, and the rest is left to RL. (Where a tiny model
  // "gets" addition varies with the machine's floating point; a target, not a step count, is portable.)
  Rng probe_rng(o.seed + 2000);
  std::vector<Prompt> probe;
  for (int i = 0; i < 128; ++i) probe.push_back(tasks::make_prompt(split.train(-1, probe_rng), tokenizer));
  double probe_pass = 0.0;
  loop::SftConfig sft{.steps = o.sft_steps, .batch_size = o.sft_batch, .learning_rate = o.sft_lr,
                      .seed = o.seed, .collate = collate_options};
  if (o.warm_start_target > 0.0) {
    sft.stop_check_every = 100;
    sft.stop_when = [&](std::int64_t) {
      SamplingParams params = sampling;
      params.seed = o.seed + 3000;
      probe_pass = loop::evaluate(sampler, verifier, std::span<const Prompt>(probe), 2, params, extract).pass_at_1;
      jsonl({{"event", "warm_start_probe"}, {"pass_at_1", probe_pass}});
      return probe_pass >= o.warm_start_target;
    };
  }
  std::int64_t sft_done = 0;
  loop::supervised_finetune(model, examples, sft, [&](const nlohmann::json& m) {
    jsonl(m);
    sft_done = m["step"].get<std::int64_t>();
    char tail[128];
    std::snprintf(tail, sizeof tail, "SFT warm start, loss %.3f, probe pass@1 %.2f (stops at %.2f)",
                  m["loss"].get<double>(), probe_pass, o.warm_start_target);
    progress(static_cast<int>(sft_done), o.sft_steps, tail);
  });
  end_progress();
  std::cerr << "warm start: " << sft_done << " SFT steps\n";
  const loop::EvalResult before = evaluate(0);
  std::fprintf(stderr, "held-out after the warm start: pass@1 %.3f  maj@%d %.3f  mean length %.2f\n",
               before.pass_at_1, o.eval_k, before.maj_at_k, before.mean_length);

  // 2. GRPO.
  std::vector<double> steps_x, reward_y, eval_x{0.0}, eval_y{before.pass_at_1};
  double last_eval = before.pass_at_1;
  auto source = [&](ArmId arm, Rng& rng) { return tasks::make_prompt(split.train(arm, rng), tokenizer); };
  loop::GrpoConfig grpo{.steps = o.steps, .prompts_per_step = o.prompts_per_step, .group_size = o.group_size,
                        .epochs = o.epochs, .minibatch_groups = o.minibatch,
                        .learning_rate = o.lr, .warmup_steps = o.warmup, .sampling = sampling, .seed = o.seed + 1,
                        .collate = collate_options};
  if (o.loss == "dapo") {  // DAPO's dynamic sampling: drop all-equal groups, refill from fresh prompts
    grpo.dynamic_sampling = true;
    grpo.max_refill_rounds = 2;
  }
  grpo.checkpoint_every = o.steps;
  grpo.checkpoint_dir = std::filesystem::path(o.out_dir) / "checkpoint";
  auto on_step = [&](const nlohmann::json& m) {
    jsonl(m);
    const auto step = m["step"].get<std::int64_t>();
    steps_x.push_back(static_cast<double>(step));
    reward_y.push_back(m["reward_mean"].get<double>());
    if (o.eval_every > 0 && step % o.eval_every == 0 && step < o.steps) {
      last_eval = evaluate(step).pass_at_1;
      eval_x.push_back(static_cast<double>(step));
      eval_y.push_back(last_eval);
    }
    char tail[128];
    std::snprintf(tail, sizeof tail, "reward %.2f  held-out pass@1 %.2f", reward_y.back(), last_eval);
    progress(static_cast<int>(step), o.steps, tail);
  };
  auto train = [&](auto objective) {
    if (o.curriculum == "sec") {
      curriculum::SelfEvolvingCurriculum sec(static_cast<std::size_t>(task.num_categories()), {.alpha = 0.5, .tau = 0.3});
      loop::grpo(model, sampler, verifier, source, objective, grpo, on_step, static_cast<lm::LlamaModel*>(nullptr), &sec);
    } else {
      loop::grpo(model, sampler, verifier, source, objective, grpo, on_step);
    }
  };
  namespace pg = kaizen::policy_gradient;
  if (o.loss == "grpo") train(pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::NoKl, pg::SeqMeanTokenMean>{});
  else if (o.loss == "dapo") train(pg::kDapo);
  else if (o.loss == "dr_grpo") train(pg::DrGrpoObjective{.aggregation = {.constant = 12.0}});
  else if (o.loss == "gspo") train(pg::kGspo);
  else train(pg::CispoObjective{});
  end_progress();

  const loop::EvalResult after = evaluate(o.steps);
  eval_x.push_back(static_cast<double>(o.steps));
  eval_y.push_back(after.pass_at_1);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();

  plot::LinePlot chart({.title = "GRPO on " + o.task + " (" + o.loss + ", G = " + std::to_string(o.group_size) + ")",
                        .x_label = "GRPO step", .y_label = "accuracy", .width = 960, .y_min = 0.0, .y_max = 1.0});
  chart.add_series("training reward (mean over samples)", steps_x, reward_y);
  chart.add_series("held-out pass@1", eval_x, eval_y);
  const std::string plot_path = (std::filesystem::path(o.out_dir) / "curve.svg").string();
  chart.write(plot_path);
  jsonl({{"event", "summary"}, {"step", o.steps}, {"pass_at_1_before", before.pass_at_1},
         {"pass_at_1_after", after.pass_at_1}, {"maj_at_k_before", before.maj_at_k}, {"maj_at_k_after", after.maj_at_k},
         {"seconds", seconds}});

  std::printf("held-out pass@1: %.3f -> %.3f (%+.1f points)   maj@%d: %.3f -> %.3f   mean length %.2f -> %.2f\n",
              before.pass_at_1, after.pass_at_1, 100.0 * (after.pass_at_1 - before.pass_at_1), o.eval_k,
              before.maj_at_k, after.maj_at_k, before.mean_length, after.mean_length);
  std::printf("run time %.1f s (SFT + evaluation + GRPO)\nmetrics: %s\nplot:    %s\n", seconds,
              (std::filesystem::path(o.out_dir) / "metrics.jsonl").string().c_str(), plot_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"kaizen GRPO demo: a tiny Llama-style model learns a verifiable task"};
  app.add_option("--device", o.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--task", o.task, "addition (operand widths --min-digits..--max-digits) or countdown")->check(CLI::IsMember({"addition", "countdown"}));
  app.add_option("--verifier", o.verifier, "addition: math (reward::MathVerifier) or task (the task's own exact check)")
      ->check(CLI::IsMember({"math", "task"}));
  app.add_option("--loss", o.loss, "policy-gradient objective")
      ->check(CLI::IsMember({"grpo", "dapo", "dr_grpo", "gspo", "cispo"}));
  app.add_option("--curriculum", o.curriculum, "none or sec (Self-Evolving Curriculum over the task's categories)")
      ->check(CLI::IsMember({"none", "sec"}));
  app.add_option("--min-digits", o.min_digits, "addition: narrowest operands (category 0)");
  app.add_option("--max-digits", o.max_digits, "addition: widest operands");
  app.add_option("--out", o.out_dir, "output folder (metrics.jsonl, curve.svg, checkpoint/)");
  app.add_option("--hidden-size", o.hidden_size, "model width");
  app.add_option("--layers", o.layers, "decoder layers");
  app.add_option("--heads", o.heads, "attention heads");
  app.add_option("--kv-heads", o.kv_heads, "key/value heads (grouped-query attention)");
  app.add_option("--sft-steps", o.sft_steps, "most supervised warm-start steps");
  app.add_option("--warm-start-target", o.warm_start_target,
                 "stop the warm start once a probe of training problems reaches this pass@1 (0 = run all SFT steps)");
  app.add_option("--sft-lr", o.sft_lr, "warm-start learning rate");
  app.add_option("--steps", o.steps, "GRPO steps");
  app.add_option("--prompts", o.prompts_per_step, "prompts per GRPO step");
  app.add_option("--group-size", o.group_size, "samples per prompt (G)");
  app.add_option("--epochs", o.epochs, "optimisation epochs per GRPO step");
  app.add_option("--lr", o.lr, "GRPO learning rate");
  app.add_option("--warmup", o.warmup, "GRPO steps of linear learning-rate warm-up");
  app.add_option("--minibatch", o.minibatch, "groups per optimiser step (0 = all groups of a step)");
  app.add_option("--temperature", o.temperature, "sampling temperature (training and evaluation)");
  app.add_option("--eval-prompts", o.eval_prompts, "held-out prompts");
  app.add_option("--eval-k", o.eval_k, "samples per held-out prompt (pass@1 average, maj@k vote)");
  app.add_option("--eval-every", o.eval_every, "evaluate every so many GRPO steps (0 = only before and after)");
  app.add_option("--threads", o.threads, "CPU threads for LibTorch");
  app.add_option("--seed", o.seed, "seed of everything");
  CLI11_PARSE(app, argc, argv);
  try {
    if (o.task == "countdown") return run(o, kaizen::tasks::Countdown({.min_numbers = 2, .max_numbers = 3, .max_value = 9}));
    const kaizen::tasks::Arithmetic addition({.min_digits = o.min_digits, .max_digits = o.max_digits, .operators = "+"});
#if KAIZEN_DEMO_MATH_VERIFIER
    if (o.verifier == "math")
      return run(o, kaizen::tasks::CheckedTask<kaizen::tasks::Arithmetic, kaizen::reward::MathVerifier>(addition, {}));
#else
    if (o.verifier == "math") {
      std::cerr << "grpo_demo: --verifier math needs kaizen::reward (GiNaC); use --verifier task\n";
      return 2;
    }
#endif
    return run(o, addition);
  } catch (const std::exception& e) {
    std::cerr << "\ngrpo_demo: " << e.what() << "\n";
    return 1;
  }
}
