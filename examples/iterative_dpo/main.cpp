// iterative_dpo - online iterative DPO with a verifier as the judge, on 2-digit addition, against offline
// DPO with the same budget, in one run on a laptop CPU.
//
//   1. the grpo_demo's tiny Llama and supervised warm start (stops once a probe of training problems
//      reaches --warm-start-target pass@1)
//   2. held-out pass@1 of the warm start ("before")
//   3. iterative DPO: --iterations rounds of {sample N answers for P prompts from the current policy, the
//      verifier judges them (1 right / 0 wrong), best-vs-worst pairs, --steps DPO steps, π_ref ← policy}
//   4. baseline, from the same warm start: offline DPO, one round with all iterations' prompts sampled from the
//      warm start and as many DPO steps in total (same samples, same steps; the pairs never see the newer policy)
//   5. held-out pass@1 after each round; metrics as JSON lines and an SVG plot of pass@1 against DPO steps
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
#include <kaizen/loop/evaluate.hpp>
#include <kaizen/loop/iterative_dpo.hpp>
#include <kaizen/loop/judges.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/sft.hpp>
#include <kaizen/loop/snapshot.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>

#include <common/tiny_setup.hpp>

namespace {

struct Options {
  std::string out_dir = "out/iterative_dpo";
  int hidden_size = 64;
  int layers = 2;
  int sft_steps = 4000;
  double warm_start_target = 0.2;
  double sft_lr = 3e-3;
  int iterations = 4;
  int prompts = 64;
  int samples = 8;
  int steps = 15;
  int pairs_per_step = 32;
  double beta = 0.1;
  double nll_weight = 1.0;
  double lr = 5e-4;
  int pool = 2000;
  int eval_prompts = 200;
  int eval_k = 4;
  int threads = 1;
  std::uint64_t seed = 1;
};

int run(const Options& o) {
  using namespace kaizen;
  const auto t_start = tiny::begin_run(o.out_dir, o.threads, o.seed);
  const tasks::CharTokenizer tokenizer;
  const tasks::Arithmetic task({.min_digits = 2, .max_digits = 2, .operators = "+"});
  const tasks::HeldOutSplit<tasks::Arithmetic> split(task, static_cast<std::size_t>(o.eval_prompts), o.seed + 1000);
  const std::vector<Prompt> held_out = tiny::held_out_prompts(split, tokenizer);
  std::vector<Prompt> pool;
  Rng pool_rng(o.seed + 4000);
  for (int i = 0; i < o.pool; ++i) pool.push_back(tasks::make_prompt(split.train(-1, pool_rng), tokenizer));

  const lm::LlamaConfig config = tiny::llama_config(tokenizer, {.hidden_size = o.hidden_size, .layers = o.layers});
  lm::LlamaModel model(config), reference(config);
  lm::LlamaSampler sampler(model, tokenizer);
  tasks::TaskVerifier<tasks::Arithmetic, tasks::CharTokenizer> verifier{&task, &tokenizer};
  auto judge = loop::verifier_judge(verifier);

  SamplingParams sampling;
  sampling.max_new_tokens = 12;
  sampling.stop_tokens = {tokenizer.eos_id()};
  const CollateOptions collate{.pad_id = tokenizer.pad_id(), .vocab_size = config.vocab_size, .max_length = 32};
  std::ofstream metrics_file(std::filesystem::path(o.out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(metrics_file);
  auto extract = [&](const Prompt&, const Completion& c) -> std::optional<std::string> {
    const std::string text = tokenizer.decode(c.tokens);
    if (text.empty()) return std::nullopt;
    return consistency::normalize_answer(text);
  };
  auto evaluate = [&](const std::string& run_name, std::int64_t step) {
    SamplingParams params = sampling;
    params.seed = o.seed * 7919 + static_cast<std::uint64_t>(step);  // the same draws for both runs at a step
    const loop::EvalResult r = loop::evaluate(sampler, verifier, std::span<const Prompt>(held_out), o.eval_k, params, extract);
    nlohmann::json record = r.to_json();
    record["event"] = "eval";
    record["run"] = run_name;
    record["step"] = step;
    jsonl(record);
    return r.pass_at_1;
  };

  // 1. Warm start (as grpo_demo).
  auto examples = [&](Rng& rng) {
    const tasks::Problem p = split.train(-1, rng);
    Rollout r;
    r.prompt = tokenizer.encode(p.prompt);
    r.completion.tokens = tasks::answer_tokens(p, tokenizer);
    return r;
  };
  Rng probe_rng(o.seed + 2000);
  std::vector<Prompt> probe;
  for (int i = 0; i < 128; ++i) probe.push_back(tasks::make_prompt(split.train(-1, probe_rng), tokenizer));
  loop::SftConfig sft{.steps = o.sft_steps, .batch_size = 32, .learning_rate = o.sft_lr, .seed = o.seed, .collate = collate};
  std::int64_t sft_done = 0;
  sft.stop_check_every = 100;
  sft.stop_when = [&](std::int64_t done) {
    SamplingParams params = sampling;
    params.seed = o.seed + 3000;
    sft_done = done;
    return loop::evaluate(sampler, verifier, std::span<const Prompt>(probe), 2, params, extract).pass_at_1 >= o.warm_start_target;
  };
  loop::supervised_finetune(model, examples, sft, [&](const nlohmann::json& m) { jsonl(m); });
  const loop::ParameterSnapshot warm = loop::take_snapshot(model);
  const double before = evaluate("warm_start", 0);
  std::fprintf(stderr, "warm start: %lld SFT steps; held-out pass@1 %.3f\n", static_cast<long long>(sft_done), before);

  // 2. Iterative DPO, then 3. offline DPO from the same warm start with the same budget.
  loop::PreferenceLoopConfig dpo;
  dpo.iterations = o.iterations;
  dpo.prompts_per_iteration = o.prompts;
  dpo.samples_per_prompt = o.samples;
  dpo.steps_per_iteration = o.steps;
  dpo.pairs_per_step = o.pairs_per_step;
  dpo.dpo.beta = o.beta;
  dpo.nll_weight = o.nll_weight;
  dpo.optimizer = {.learning_rate = o.lr};
  dpo.sampling = sampling;
  dpo.seed = o.seed + 1;
  dpo.collate = collate;
  struct Curve {
    std::vector<double> x, y;
  };
  auto train = [&](const std::string& name, loop::PreferenceLoopConfig c) {
    Curve curve{{0.0}, {before}};
    const auto t0 = std::chrono::steady_clock::now();
    (void)loop::iterative_dpo(model, reference, sampler, judge, std::span<const Prompt>(pool), c, [&](const nlohmann::json& m) {
      nlohmann::json r = m;
      r["run"] = name;
      jsonl(r);
      if (m["event"] == "iterative_dpo_pairs")
        std::fprintf(stderr, "%s iteration %d: %d pairs, judge score mean %.3f\n", name.c_str(), m["iteration"].get<int>(),
                     m["pairs"].get<int>(), m["judge_score_mean"].get<double>());
      if (m["event"] == "iteration_end") {
        const auto step = m["step"].get<std::int64_t>();
        curve.x.push_back(static_cast<double>(step));
        curve.y.push_back(evaluate(name, step));
        std::fprintf(stderr, "%s after %lld DPO steps: held-out pass@1 %.3f\n", name.c_str(), static_cast<long long>(step),
                     curve.y.back());
      }
    });
    std::fprintf(stderr, "%s: %.1f s\n", name.c_str(),
                 tiny::seconds_since(t0));
    return curve;
  };
  const Curve online = train("iterative", dpo);
  loop::restore_snapshot(model, warm);
  loop::PreferenceLoopConfig offline = dpo;
  offline.iterations = 1;
  offline.prompts_per_iteration = static_cast<std::int64_t>(o.iterations) * o.prompts;
  offline.steps_per_iteration = static_cast<std::int64_t>(o.iterations) * o.steps;
  const Curve baseline = train("offline", offline);

  plot::LinePlot chart({.title = "Iterative DPO (verifier judge) vs offline DPO, 2-digit addition",
                        .x_label = "DPO step", .y_label = "held-out pass@1", .width = 960, .y_min = 0.0, .y_max = 1.0});
  chart.add_series("iterative DPO (pairs re-sampled each round)", online.x, online.y);
  chart.add_series("offline DPO (pairs from the warm start only)", baseline.x, baseline.y);
  const std::string plot_path = (std::filesystem::path(o.out_dir) / "curve.svg").string();
  chart.write(plot_path);
  const double seconds = tiny::seconds_since(t_start);
  jsonl({{"event", "summary"}, {"pass_at_1_before", before}, {"pass_at_1_iterative", online.y.back()},
         {"pass_at_1_offline", baseline.y.back()}, {"seconds", seconds}});
  std::printf("held-out pass@1: warm start %.3f -> iterative DPO %.3f (%+.1f points); offline DPO baseline %.3f (%+.1f points)\n",
              before, online.y.back(), 100.0 * (online.y.back() - before), baseline.y.back(),
              100.0 * (baseline.y.back() - before));
  tiny::print_outputs(seconds, o.out_dir, plot_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"kaizen iterative DPO: a verifier judges the policy's own samples; DPO on best-vs-worst pairs"};
  app.add_option("--out", o.out_dir, "output folder (metrics.jsonl, curve.svg)");
  app.add_option("--hidden-size", o.hidden_size, "model width");
  app.add_option("--layers", o.layers, "decoder layers");
  app.add_option("--sft-steps", o.sft_steps, "most supervised warm-start steps");
  app.add_option("--warm-start-target", o.warm_start_target, "stop the warm start once a probe reaches this pass@1");
  app.add_option("--sft-lr", o.sft_lr, "warm-start learning rate");
  app.add_option("--iterations", o.iterations, "rounds of sample / judge / DPO");
  app.add_option("--prompts", o.prompts, "prompts per round");
  app.add_option("--samples", o.samples, "samples per prompt (N >= 2)");
  app.add_option("--steps", o.steps, "DPO steps per round");
  app.add_option("--pairs-per-step", o.pairs_per_step, "pairs per DPO step (0 = all)");
  app.add_option("--beta", o.beta, "DPO beta");
  app.add_option("--nll-weight", o.nll_weight, "weight of the chosen answer's NLL added to DPO (RPO; 0 = plain DPO)");
  app.add_option("--lr", o.lr, "DPO learning rate (AdamW)");
  app.add_option("--pool", o.pool, "training prompts in the pool");
  app.add_option("--eval-prompts", o.eval_prompts, "held-out prompts");
  app.add_option("--eval-k", o.eval_k, "samples per held-out prompt");
  app.add_option("--threads", o.threads, "CPU threads for LibTorch");
  app.add_option("--seed", o.seed, "seed of everything");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "iterative_dpo: " << e.what() << "\n";
    return 1;
  }
}
