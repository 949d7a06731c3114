// score - SCoRe (loop::score): a tiny Llama learns to correct its own first answer in a second attempt,
// by on-policy two-attempt RL on its own samples, against a naive two-turn SFT baseline in the same run.
//
//   1. warm start (supervised): 2-digit addition in two formats — turn 1 "27+58=" -> "85", and turn 2
//      "27+58=" + a + ">" -> b, where the shown first answer a is right or off by 1..10 (half each) and b is
//      a copied (half the time) or the right answer: a base that sometimes keeps and sometimes redoes its
//      answer, without knowing when each is right. Stops once a probe's turn-1 pass@1 reaches a target.
//   2. before: held-out Accuracy@t1, Accuracy@t2, Δ(t1,t2), Δ^{i→c}, Δ^{c→i} over sampled attempt pairs
//   3. SCoRe from the warm start (reference = the warm start): stage I (second attempt's reward, first
//      attempt pinned by β₂), then stage II (both rewards, second shaped by α (r₂ − r₁))
//   4. naive two-turn SFT from the same warm start: attempt pairs sampled from the warm start on training
//      prompts (as many pairs as SCoRe sampled), SFT on (x ⊕ y₁ ⊕ ">" → y₂) for the pairs whose y₂ is right
//   5. the same held-out measurements during and after both; JSON lines and an SVG plot
//
// Reference: Kumar et al., "Training Language Models to Self-Correct via Reinforcement Learning",
// arXiv 2409.12917 (2024).
#include <algorithm>
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
#include <common/tiny_setup.hpp>
#include <kaizen/loop.hpp>
#include <kaizen/loop/multi_turn.hpp>
#include <kaizen/loop/score.hpp>
#include <kaizen/tasks.hpp>

namespace {

struct Options {
  std::string out_dir = "out/score";
  std::string instruction = ">";
  int train_prompts = 2048;
  int stage1_steps = 30;
  int stage2_steps = 60;
  int prompts_per_step = 32;
  int group_size = 4;
  double lr = 3e-4;
  double alpha = 10.0;
  double beta1 = 0.01;
  double beta2 = 0.1;
  int naive_steps = 90;
  int naive_batch = 32;
  double naive_lr = 3e-4;
  double copy_fraction = 0.5;
  double warm_start_target = 0.3;
  int warm_start_steps = 4000;
  int eval_prompts = 200;
  int eval_k = 4;
  int eval_every = 15;
  int threads = 1;
  std::uint64_t seed = 1;
};

using kaizen::loop::SelfCorrectionMetrics;

struct Curve {
  std::vector<double> x, t1, t2;
  void add(double step, const SelfCorrectionMetrics& m) {
    x.push_back(step);
    t1.push_back(m.accuracy_t1);
    t2.push_back(m.accuracy_t2);
  }
};

int run(const Options& o) {
  using namespace kaizen;
  const auto t0 = tiny::begin_run(o.out_dir, o.threads, o.seed);
  const tasks::Arithmetic task({.min_digits = 2, .max_digits = 2, .operators = "+"});
  const tasks::CharTokenizer tokenizer;
  const tasks::HeldOutSplit<tasks::Arithmetic> split(task, static_cast<std::size_t>(o.eval_prompts), o.seed + 1000);
  const std::vector<Prompt> held_out = tiny::held_out_prompts(split, tokenizer);
  Rng prompt_rng(o.seed + 5000);
  std::vector<Prompt> train;
  for (int i = 0; i < o.train_prompts; ++i) train.push_back(tasks::make_prompt(split.train(-1, prompt_rng), tokenizer));
  const std::vector<TokenId> instruction = tokenizer.encode(o.instruction);

  const lm::LlamaConfig config = tiny::llama_config(tokenizer, {});
  lm::LlamaModel model(config), reference(config);
  lm::LlamaSampler sampler(model, tokenizer);
  tasks::TaskVerifier<tasks::Arithmetic, tasks::CharTokenizer> verifier{&task, &tokenizer};
  auto reward = [&](const Prompt& p, const Completion& c) { return verifier(p, c) ? 1.0 : 0.0; };
  SamplingParams sampling;
  sampling.max_new_tokens = 5;
  sampling.stop_tokens = {tokenizer.eos_id()};
  const CollateOptions collate{.pad_id = tokenizer.pad_id(), .vocab_size = config.vocab_size,
                               .max_length = config.max_position_embeddings};
  std::ofstream file(std::filesystem::path(o.out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(file);

  // 1. Warm start on both formats, until the turn-1 probe reaches the target.
  auto shown_answer = [](const tasks::Problem& p, Rng& rng) {
    if (uniform01(rng) < 0.5) return p.answer;
    const long right = std::stol(p.answer);
    long wrong = right;
    while (wrong == right || wrong < 0) wrong = right + (uniform01(rng) < 0.5 ? -1 : 1) * static_cast<long>(1 + uniform_index(rng, 10));
    return std::to_string(wrong);
  };
  auto examples = [&](Rng& rng) {
    const tasks::Problem p = split.train(-1, rng);
    Rollout r;
    if (uniform01(rng) < 0.5) {
      r.prompt = tokenizer.encode(p.prompt);
      r.completion.tokens = tasks::answer_tokens(p, tokenizer);
    } else {
      const std::string a = shown_answer(p, rng);
      r.prompt = tokenizer.encode(p.prompt + a + o.instruction);
      r.completion.tokens = tokenizer.encode(uniform01(rng) < o.copy_fraction ? a : p.answer);
      r.completion.tokens.push_back(tokenizer.eos_id());
    }
    return r;
  };
  Rng probe_rng(o.seed + 2000);
  std::vector<Prompt> probe;
  for (int i = 0; i < 128; ++i) probe.push_back(tasks::make_prompt(split.train(-1, probe_rng), tokenizer));
  loop::SftConfig warm{.steps = o.warm_start_steps, .batch_size = 32, .learning_rate = 3e-3, .seed = o.seed,
                       .collate = collate};
  warm.stop_when = [&](std::int64_t) {
    SamplingParams params = sampling;
    params.seed = o.seed + 3000;
    const double pass = tiny::measure(sampler, verifier, std::span<const Prompt>(probe), 1, params).pass_at_1;
    jsonl({{"event", "warm_start_probe"}, {"pass_at_1", pass}});
    return pass >= o.warm_start_target;
  };
  std::int64_t warm_steps = 0;
  loop::supervised_finetune(model, examples, warm, [&](const nlohmann::json& m) { warm_steps = m["step"].get<std::int64_t>(); });
  const loop::ParameterSnapshot base = loop::take_snapshot(model);

  auto measure = [&] {
    return loop::evaluate_self_correction(sampler, reward, std::span<const Prompt>(held_out), o.eval_k, sampling,
                                          instruction, o.seed * 7919);
  };
  const SelfCorrectionMetrics before = measure();
  jsonl({{"event", "warm_start"}, {"sft_steps", warm_steps}, {"held_out", before.to_json()}});
  std::fprintf(stderr, "warm start: %lld SFT steps; held-out Acc@t1 %.3f, Acc@t2 %.3f\n",
               static_cast<long long>(warm_steps), before.accuracy_t1, before.accuracy_t2);

  // 3. SCoRe.
  loop::restore_snapshot(reference, base);
  Curve score_curve;
  score_curve.add(0, before);
  loop::ScoreConfig sc;
  sc.stage1_steps = o.stage1_steps;
  sc.stage2_steps = o.stage2_steps;
  sc.prompts_per_step = o.prompts_per_step;
  sc.group_size = o.group_size;
  sc.alpha = o.alpha;
  sc.beta1 = o.beta1;
  sc.beta2 = o.beta2;
  sc.instruction = instruction;
  sc.optimizer.learning_rate = o.lr;
  sc.sampling = sampling;
  sc.seed = o.seed + 1;
  sc.collate = collate;
  const auto t_score = std::chrono::steady_clock::now();
  loop::score(model, reference, sampler, reward, std::span<const Prompt>(train), sc, [&](const nlohmann::json& m) {
    nlohmann::json r = m;
    const auto step = m["step"].get<std::int64_t>();
    if (step % o.eval_every == 0 || step == sc.stage1_steps + sc.stage2_steps) {
      const SelfCorrectionMetrics e = measure();
      score_curve.add(static_cast<double>(step), e);
      r["held_out"] = e.to_json();
    }
    jsonl(r);
  });
  const double score_seconds = tiny::seconds_since(t_score);
  const SelfCorrectionMetrics after_score = measure();

  // 4. Naive two-turn SFT from the same warm start, on as many base attempt pairs as SCoRe sampled.
  loop::restore_snapshot(model, base);
  const auto t_naive = std::chrono::steady_clock::now();
  const std::int64_t pairs_wanted =
      static_cast<std::int64_t>(o.stage1_steps + o.stage2_steps) * o.prompts_per_step * o.group_size;
  std::vector<Rollout> pairs;
  std::int64_t sampled = 0;
  Rng naive_rng(o.seed + 17);
  while (sampled < pairs_wanted) {
    std::vector<Prompt> chosen;
    for (int i = 0; i < o.prompts_per_step; ++i) chosen.push_back(train[uniform_index(naive_rng, train.size())]);
    const loop::TwoTurnRollouts r = loop::two_turn_rollout(sampler, reward, std::span<const Prompt>(chosen),
                                                           o.group_size, sampling, instruction, naive_rng, "naive_sft");
    for (std::size_t i = 0; i < r.second.size(); ++i)
      if (r.second_rewards[i] >= 1.0) pairs.push_back(Rollout{r.second_prompts[i].tokens, r.second[i], 1.0, 0});
    sampled += static_cast<std::int64_t>(r.second.size());
  }
  Curve naive_curve;
  naive_curve.add(0, before);
  loop::SftConfig naive{.steps = o.naive_steps, .batch_size = o.naive_batch, .learning_rate = o.naive_lr,
                        .seed = o.seed + 19, .collate = collate};
  naive.stop_check_every = o.eval_every;
  naive.stop_when = [&](std::int64_t done) {
    const SelfCorrectionMetrics e = measure();
    naive_curve.add(static_cast<double>(done), e);
    jsonl({{"event", "naive_sft_eval"}, {"sft_step", done}, {"held_out", e.to_json()}});
    return false;
  };
  auto naive_examples = [&](Rng& rng) { return pairs[uniform_index(rng, pairs.size())]; };
  if (!pairs.empty())
    loop::supervised_finetune(model, naive_examples, naive, [&](const nlohmann::json& m) {
      nlohmann::json r = m;
      r["run"] = "naive_sft";
      jsonl(r);
    });
  const double naive_seconds = tiny::seconds_since(t_naive);
  const SelfCorrectionMetrics after_naive = measure();
  if (naive_curve.x.back() != static_cast<double>(o.naive_steps)) naive_curve.add(o.naive_steps, after_naive);

  const double seconds = tiny::seconds_since(t0);
  jsonl({{"event", "summary"}, {"before", before.to_json()}, {"score", after_score.to_json()},
         {"naive_sft", after_naive.to_json()}, {"naive_pairs_sampled", sampled},
         {"naive_pairs_kept", static_cast<std::int64_t>(pairs.size())}, {"score_seconds", score_seconds},
         {"naive_seconds", naive_seconds}, {"seconds", seconds}});

  plot::LinePlot chart({.title = "SCoRe (stage I " + std::to_string(o.stage1_steps) + " + stage II " +
                                     std::to_string(o.stage2_steps) + " steps) vs naive two-turn SFT, held-out",
                        .x_label = "training step (SCoRe RL step / SFT step)", .y_label = "accuracy",
                        .width = 960, .y_min = 0.0, .y_max = 1.0});
  chart.add_series("SCoRe: Accuracy@t1", score_curve.x, score_curve.t1);
  chart.add_series("SCoRe: Accuracy@t2", score_curve.x, score_curve.t2);
  chart.add_series("naive SFT: Accuracy@t1", naive_curve.x, naive_curve.t1);
  chart.add_series("naive SFT: Accuracy@t2", naive_curve.x, naive_curve.t2);
  const std::string plot_path = (std::filesystem::path(o.out_dir) / "score.svg").string();
  chart.write(plot_path);

  std::printf("held-out: %d prompts x %d attempt pairs; naive SFT kept %zu of %lld sampled pairs (y2 right)\n",
              o.eval_prompts, o.eval_k, pairs.size(), static_cast<long long>(sampled));
  std::printf("%-22s %9s %9s %10s %10s %10s\n", "", "Acc@t1", "Acc@t2", "D(t1,t2)", "D^{i->c}", "D^{c->i}");
  auto row = [](const char* name, const SelfCorrectionMetrics& m) {
    std::printf("%-22s %9.3f %9.3f %+10.3f %10.3f %10.3f\n", name, m.accuracy_t1, m.accuracy_t2, m.delta,
                m.delta_i_to_c, m.delta_c_to_i);
  };
  row("warm start (base)", before);
  row("SCoRe", after_score);
  row("naive two-turn SFT", after_naive);
  std::printf("SCoRe: D(t1,t2) %+.3f -> %+.3f, Acc@t2 %+.1f points; naive SFT: D(t1,t2) %+.3f, Acc@t2 %+.1f points\n",
              before.delta, after_score.delta, 100.0 * (after_score.accuracy_t2 - before.accuracy_t2), after_naive.delta,
              100.0 * (after_naive.accuracy_t2 - before.accuracy_t2));
  std::printf("SCoRe D(t1,t2) > 0 where naive SFT D(t1,t2) <= 0: %s\n",
              after_score.delta > 0.0 && after_naive.delta <= 0.0 ? "holds" : "does not hold");
  std::printf("run time %.1f s (SCoRe %.1f s, naive SFT %.1f s)\nmetrics: %s\nplot:    %s\n", seconds, score_seconds,
              naive_seconds, (std::filesystem::path(o.out_dir) / "metrics.jsonl").string().c_str(), plot_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"kaizen SCoRe: two-attempt self-correction RL vs naive two-turn SFT on 2-digit addition"};
  app.add_option("--out", o.out_dir, "output folder");
  app.add_option("--instruction", o.instruction, "the correction instruction (characters of the task alphabet)");
  app.add_option("--train-prompts", o.train_prompts, "training prompts");
  app.add_option("--stage1-steps", o.stage1_steps, "SCoRe stage I steps");
  app.add_option("--stage2-steps", o.stage2_steps, "SCoRe stage II steps");
  app.add_option("--prompts-per-step", o.prompts_per_step, "prompts per SCoRe step");
  app.add_option("--group-size", o.group_size, "first attempts per prompt (one second attempt each)");
  app.add_option("--lr", o.lr, "SCoRe learning rate");
  app.add_option("--alpha", o.alpha, "stage II shaping");
  app.add_option("--beta1", o.beta1, "KL to the reference");
  app.add_option("--beta2", o.beta2, "stage I KL pin of the first attempt");
  app.add_option("--naive-steps", o.naive_steps, "naive two-turn SFT steps");
  app.add_option("--naive-batch", o.naive_batch, "naive SFT batch size");
  app.add_option("--naive-lr", o.naive_lr, "naive SFT learning rate");
  app.add_option("--copy-fraction", o.copy_fraction, "warm start: fraction of turn-2 targets that copy the shown answer");
  app.add_option("--warm-start-target", o.warm_start_target, "probe pass@1 that ends the warm start");
  app.add_option("--warm-start-steps", o.warm_start_steps, "most warm-start steps");
  app.add_option("--eval-prompts", o.eval_prompts, "held-out prompts");
  app.add_option("--eval-k", o.eval_k, "attempt pairs per held-out prompt");
  app.add_option("--eval-every", o.eval_every, "evaluate every so many steps");
  app.add_option("--threads", o.threads, "CPU threads for LibTorch");
  app.add_option("--seed", o.seed, "seed");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "score: " << e.what() << "\n";
    return 1;
  }
}
