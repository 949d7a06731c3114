// self_play - one tiny Llama plays challenger and solver (loop::self_play with loop::ChallengerGame) on integer
// addition, against a solver trained on uniformly sampled problems, from the same warm start, in the same run.
//
//   1. warm start (supervised), two formats: the solver's "27+58=" -> "85" and the challenger's ":" -> "27+58"
//      (a uniformly drawn problem, written without '='), until a probe of training problems reaches a pass@1
//      target
//   2. before: held-out pass@1 (a fixed set of uniformly drawn problems never trained on)
//   3. self-play: per step, P seeds ":" -> Q proposals each; loop::ArithmeticChecker validates a proposal
//      (well-formed, operand widths and operator of the task) and computes its answer; R solver replies per valid
//      problem; rewards from the challenger table (solved: solver 1; failed: challenger 1; invalid: challenger -1);
//      both roles' rows in one REINFORCE++ batch. A proposal equal to a held-out problem counts as invalid (the
//      metrics' "held_out_proposals"): neither solver ever trains on a held-out problem
//   4. uniform baseline: the same policy-gradient update (REINFORCE++, same objective, learning rate, steps, seed)
//      on uniformly drawn training problems, P·Q prompts x R replies per step: at least as many solver rows per
//      step as self-play, whose solver only plays the valid proposals
//   5. held-out pass@1 during and after both; JSON lines, an SVG plot
//
// References: Absolute Zero (Zhao et al. 2025, arXiv 2505.03335) and Agent0 (Xia et al. 2025, arXiv 2511.16043):
// a proposer paid for problems its own solver fails; REINFORCE++ (Hu 2025, arXiv 2501.03262).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unordered_set>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <common/svg_plot.hpp>
#include <common/tiny_setup.hpp>
#include <kaizen/loop.hpp>
#include <kaizen/loop/self_play.hpp>
#include <kaizen/tasks.hpp>

namespace {

struct Options {
  std::string out_dir = "out/self_play";
  int min_digits = 1;
  int max_digits = 2;
  int steps = 150;
  int seeds_per_step = 8;
  int proposals_per_seed = 4;
  int replies_per_proposal = 2;
  double lr = 3e-4;
  double invalid_penalty = -1.0;
  double warm_start_target = 0.4;
  int warm_start_steps = 4000;
  int eval_prompts = 200;
  int eval_k = 4;
  int eval_every = 25;
  int threads = 1;
  std::uint64_t seed = 1;
};

struct Curve {
  std::vector<double> x, y;
};

int run(const Options& o) {
  using namespace kaizen;
  const auto t0 = tiny::begin_run(o.out_dir, o.threads, o.seed);
  const tasks::ArithmeticOptions task_options{.min_digits = o.min_digits, .max_digits = o.max_digits, .operators = "+"};
  const tasks::Arithmetic task(task_options);
  const tasks::CharTokenizer tokenizer;
  const tasks::HeldOutSplit<tasks::Arithmetic> split(task, static_cast<std::size_t>(o.eval_prompts), o.seed + 1000);
  const std::vector<Prompt> held_out = tiny::held_out_prompts(split, tokenizer);
  std::unordered_set<std::string> held_out_text;
  for (const Prompt& p : held_out) held_out_text.insert(p.text);

  const lm::LlamaConfig config = tiny::llama_config(tokenizer, {});
  lm::LlamaModel model(config);
  lm::LlamaSampler sampler(model, tokenizer);
  tasks::TaskVerifier<tasks::Arithmetic, tasks::CharTokenizer> verifier{&task, &tokenizer};
  SamplingParams sampling;
  sampling.max_new_tokens = 6;
  sampling.stop_tokens = {tokenizer.eos_id()};
  const CollateOptions collate{.pad_id = tokenizer.pad_id(), .vocab_size = config.vocab_size,
                               .max_length = config.max_position_embeddings};
  std::ofstream file(std::filesystem::path(o.out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(file);
  const Prompt seed{.tokens = tokenizer.encode(":"), .text = ":"};

  // 1. Warm start: solver and challenger formats, half each.
  auto examples = [&](Rng& rng) {
    const tasks::Problem p = split.train(-1, rng);
    Rollout r;
    if (uniform01(rng) < 0.5) {
      r.prompt = tokenizer.encode(p.prompt);
      r.completion.tokens = tasks::answer_tokens(p, tokenizer);
    } else {
      r.prompt = seed.tokens;
      r.completion.tokens = tokenizer.encode(p.prompt.substr(0, p.prompt.size() - 1));
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
    SamplingParams params = sampling;
    params.seed = o.seed * 7919;
    return tiny::measure(sampler, verifier, std::span<const Prompt>(held_out), o.eval_k, params).pass_at_1;
  };
  const double before = measure();
  jsonl({{"event", "warm_start"}, {"sft_steps", warm_steps}, {"held_out_pass_at_1", before}});
  std::fprintf(stderr, "warm start: %lld SFT steps; held-out pass@1 %.3f\n", static_cast<long long>(warm_steps), before);

  // 3. Self-play: challenger and solver in one batch.
  const loop::ArithmeticChecker checker(task_options);
  loop::ChallengerGame game(checker, task, tokenizer, {.table = loop::challenger_reward_table(o.invalid_penalty)});
  auto source = [&](ArmId, Rng&) { return seed; };
  loop::SelfPlayConfig sc;
  sc.steps = o.steps;
  sc.seeds_per_step = o.seeds_per_step;
  sc.proposals_per_seed = o.proposals_per_seed;
  sc.replies_per_proposal = o.replies_per_proposal;
  sc.optimizer.learning_rate = o.lr;
  sc.sampling = sampling;
  sc.seed = o.seed + 1;
  sc.collate = collate;
  Curve self_curve{{0.0}, {before}}, uniform_curve{{0.0}, {before}};
  std::int64_t held_out_proposals = 0, valid_proposals = 0, two_digit = 0, carries = 0;
  std::vector<double> valid_curve;
  // What the challenger proposes (valid problems, 2-digit operands, carries, held-out repeats), counted by a game
  // that forwards to the real one: a TwoRoleGame is any type with the three members.
  struct CountingGame {
    decltype(game)* inner;
    const std::unordered_set<std::string>* held_out;
    std::int64_t *valid, *held, *wide, *carry;
    Prompt proposer_prompt(const Prompt& s) const { return inner->proposer_prompt(s); }
    std::optional<Prompt> responder_prompt(const Prompt& s, const Completion& c) const {
      std::optional<Prompt> p = inner->responder_prompt(s, c);
      if (p && held_out->count(p->text) > 0) {  // a held-out problem is not a valid proposal (never trained on)
        ++*held;
        return std::nullopt;
      }
      if (p) {
        ++*valid;
        const std::string text = p->text.substr(0, p->text.size() - 1);
        const std::size_t plus = text.find('+');
        const std::string a = text.substr(0, plus), b = text.substr(plus + 1);
        *wide += (a.size() > 1 || b.size() > 1) ? 1 : 0;
        *carry += (a.back() - '0') + (b.back() - '0') >= 10 ? 1 : 0;
      }
      return p;
    }
    loop::GameResult judge(const Prompt& s, const Completion& c, const Prompt* p, std::span<const Completion> r) const {
      return inner->judge(s, c, p, r);
    }
  } counting{&game, &held_out_text, &valid_proposals, &held_out_proposals, &two_digit, &carries};
  const auto t_self = std::chrono::steady_clock::now();
  loop::self_play(model, sampler, counting, source, sc, [&](const nlohmann::json& m) {
    nlohmann::json r = m;
    const auto step = m["step"].get<std::int64_t>();
    r["challenger_valid_total"] = valid_proposals;
    r["challenger_two_digit_total"] = two_digit;
    r["challenger_carry_total"] = carries;
    r["held_out_proposals"] = held_out_proposals;
    if (step % o.eval_every == 0 || step == o.steps) {
      const double e = measure();
      self_curve.x.push_back(static_cast<double>(step));
      self_curve.y.push_back(e);
      r["held_out_pass_at_1"] = e;
    }
    valid_curve.push_back(m["valid_fraction"].get<double>());
    jsonl(r);
  });
  const double self_seconds = tiny::seconds_since(t_self);
  const double after_self = self_curve.y.back();

  // 4. Uniform baseline from the same warm start: REINFORCE++ on uniformly drawn training problems.
  loop::restore_snapshot(model, base);
  loop::PolicyGradientConfig pc;
  pc.steps = o.steps;
  pc.prompts_per_step = o.seeds_per_step * o.proposals_per_seed;
  pc.group_size = o.replies_per_proposal;
  pc.learning_rate = o.lr;
  pc.beta1 = sc.optimizer.beta1;
  pc.beta2 = sc.optimizer.beta2;
  pc.max_grad_norm = sc.max_grad_norm;
  pc.sampling = sampling;
  pc.advantage_estimator = "reinforce_pp";
  pc.seed = o.seed + 1;
  pc.collate = collate;
  pc.name = "uniform";
  auto uniform_source = [&](ArmId, Rng& rng) { return tasks::make_prompt(split.train(-1, rng), tokenizer); };
  auto reward = [&](const Prompt& p, const Completion& c) { return verifier(p, c) ? 1.0 : 0.0; };
  const auto t_uniform = std::chrono::steady_clock::now();
  loop::policy_gradient_loop(model, sampler, reward, uniform_source, loop::SelfPlayObjective{}, pc,
                             [&](const nlohmann::json& m) {
                               nlohmann::json r = m;
                               const auto step = m["step"].get<std::int64_t>();
                               if (step % o.eval_every == 0 || step == o.steps) {
                                 const double e = measure();
                                 uniform_curve.x.push_back(static_cast<double>(step));
                                 uniform_curve.y.push_back(e);
                                 r["held_out_pass_at_1"] = e;
                               }
                               jsonl(r);
                             });
  const double uniform_seconds = tiny::seconds_since(t_uniform);
  const double after_uniform = uniform_curve.y.back();

  const double seconds = tiny::seconds_since(t0);
  const double valid_first = valid_curve.empty() ? 0.0 : valid_curve.front();
  const double valid_last = valid_curve.empty() ? 0.0 : valid_curve.back();
  jsonl({{"event", "summary"}, {"before", before}, {"self_play", after_self}, {"uniform", after_uniform},
         {"challenger_valid_total", valid_proposals}, {"challenger_two_digit_total", two_digit},
         {"challenger_carry_total", carries}, {"held_out_proposals", held_out_proposals},
         {"self_play_seconds", self_seconds}, {"uniform_seconds", uniform_seconds}, {"seconds", seconds}});

  plot::LinePlot chart({.title = "solver vs challenger (self-play) and solver on uniform problems, held-out pass@1",
                        .x_label = "training step", .y_label = "held-out pass@1", .width = 960, .y_min = 0.0,
                        .y_max = 1.0});
  chart.add_series("self-play solver", self_curve.x, self_curve.y);
  chart.add_series("uniform-problem solver", uniform_curve.x, uniform_curve.y);
  const std::string plot_path = (std::filesystem::path(o.out_dir) / "self_play.svg").string();
  chart.write(plot_path);

  std::printf("held-out: %d problems x %d samples, pass@1 (temperature %.1f)\n", o.eval_prompts, o.eval_k,
              sampling.temperature);
  std::printf("%-32s %.3f -> %.3f (%+.1f points)\n", "self-play (solver vs challenger)", before, after_self,
              100.0 * (after_self - before));
  std::printf("%-32s %.3f -> %.3f (%+.1f points)\n", "uniform problems", before, after_uniform,
              100.0 * (after_uniform - before));
  std::printf("challenger: valid fraction %.3f -> %.3f; %lld valid problems, %.1f %% with a 2-digit operand, %.1f %% "
              "with a carry, %lld held-out problems rejected\n",
              valid_first, valid_last, static_cast<long long>(valid_proposals),
              valid_proposals > 0 ? 100.0 * static_cast<double>(two_digit) / static_cast<double>(valid_proposals) : 0.0,
              valid_proposals > 0 ? 100.0 * static_cast<double>(carries) / static_cast<double>(valid_proposals) : 0.0,
              static_cast<long long>(held_out_proposals));
  std::printf("self-play solver beats the uniform-problem solver: %s\n", after_self > after_uniform ? "holds" : "does not hold");
  std::printf("run time %.1f s (self-play %.1f s, uniform %.1f s)\nmetrics: %s\nplot:    %s\n", seconds, self_seconds,
              uniform_seconds, (std::filesystem::path(o.out_dir) / "metrics.jsonl").string().c_str(), plot_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Solver/challenger self-play vs a solver trained on uniformly sampled problems (tiny Llama, CPU)"};
  app.add_option("--out", o.out_dir, "output folder");
  app.add_option("--min-digits", o.min_digits, "narrowest operands");
  app.add_option("--max-digits", o.max_digits, "widest operands");
  app.add_option("--steps", o.steps, "training steps of each run");
  app.add_option("--seeds-per-step", o.seeds_per_step, "challenger prompts per step (P)");
  app.add_option("--proposals", o.proposals_per_seed, "problems proposed per challenger prompt (Q)");
  app.add_option("--replies", o.replies_per_proposal, "solver replies per valid problem (R)");
  app.add_option("--lr", o.lr, "AdamW learning rate of both runs");
  app.add_option("--invalid-penalty", o.invalid_penalty, "the challenger's reward for an invalid problem");
  app.add_option("--warm-start-target", o.warm_start_target, "probe pass@1 that ends the warm start");
  app.add_option("--warm-start-steps", o.warm_start_steps, "most warm-start SFT steps");
  app.add_option("--eval-prompts", o.eval_prompts, "held-out problems");
  app.add_option("--eval-k", o.eval_k, "samples per held-out problem");
  app.add_option("--eval-every", o.eval_every, "steps between held-out measurements");
  app.add_option("--threads", o.threads, "LibTorch threads");
  app.add_option("--seed", o.seed, "seed of everything");
  CLI11_PARSE(app, argc, argv);
  return run(o);
}
