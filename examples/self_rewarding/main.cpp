// self_rewarding - Self-Rewarding vs Temporal Self-Rewarding on 2-digit addition: the policy is its own
// judge, and the temporal variant keeps a larger chosen-rejected judge-score gap over the iterations.
//
//   1. the grpo_demo's tiny Llama, warm-started on two skills at once: answering ("27+58=" -> "85") and
//      judging ("27+58=85>" -> "1", "27+58=84>" -> "0"), until a probe of training problems reaches
//      --warm-start-target pass@1
//   2. Self-Rewarding: per iteration the policy samples N answers per prompt, judges each one --judgements
//      times through the template "{prompt}{response}>" (score = mean of the parsed 0/1 verdicts, an
//      unparsable verdict counts 0), DPO on best-vs-worst pairs
//   3. Temporal Self-Rewarding from the same warm start, same prompts, N and DPO steps: rejected answers from
//      the frozen warm start (anchored rejection), chosen upgraded by a provisional next model (future-guided)
//   4. per iteration: the mean judge-score gap of the pairs trained on, and held-out pass@1 (true verifier,
//      never seen by training); JSON lines and an SVG plot of the gap against the iteration
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <common/svg_plot.hpp>
#include <kaizen/consistency/extract.hpp>
#include <kaizen/loop/evaluate.hpp>
#include <kaizen/loop/judges.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/self_rewarding.hpp>
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
  std::string out_dir = "out/self_rewarding";
  int hidden_size = 64;
  int layers = 2;
  int sft_steps = 6000;
  double warm_start_target = 0.2;
  double sft_lr = 3e-3;
  int iterations = 4;
  int prompts = 48;
  int samples = 4;
  int judgements = 3;
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
  lm::LlamaModel model(config), reference(config), anchor(config);
  lm::LlamaSampler sampler(model, tokenizer), anchor_sampler(anchor, tokenizer);
  tasks::TaskVerifier<tasks::Arithmetic, tasks::CharTokenizer> verifier{&task, &tokenizer};

  SamplingParams sampling;
  sampling.max_new_tokens = 12;
  sampling.stop_tokens = {tokenizer.eos_id()};
  SamplingParams judge_sampling = sampling;
  judge_sampling.max_new_tokens = 3;
  const CollateOptions collate{.pad_id = tokenizer.pad_id(), .vocab_size = config.vocab_size, .max_length = 32};
  std::ofstream metrics_file(std::filesystem::path(o.out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(metrics_file);
  auto extract = [&](const Prompt&, const Completion& c) -> std::optional<std::string> {
    const std::string text = tokenizer.decode(c.tokens);
    if (text.empty()) return std::nullopt;
    return consistency::normalize_answer(text);
  };
  auto evaluate = [&](const std::string& run_name, std::int64_t iteration) {
    SamplingParams params = sampling;
    params.seed = o.seed * 7919 + static_cast<std::uint64_t>(iteration);
    const loop::EvalResult r = loop::evaluate(sampler, verifier, std::span<const Prompt>(held_out), o.eval_k, params, extract);
    nlohmann::json record = r.to_json();
    record["event"] = "eval";
    record["run"] = run_name;
    record["iteration"] = iteration;
    jsonl(record);
    return r.pass_at_1;
  };

  // 1. Warm start on answering and judging. A judged answer is right or off by 1-9 in one digit, half each.
  auto examples = [&](Rng& rng) {
    const tasks::Problem p = split.train(-1, rng);
    Rollout r;
    if (uniform01(rng) < 0.5) {
      r.prompt = tokenizer.encode(p.prompt);
      r.completion.tokens = tasks::answer_tokens(p, tokenizer);
      return r;
    }
    std::string answer = p.answer;
    const bool right = uniform01(rng) < 0.5;
    if (!right) {
      const std::size_t at = uniform_index(rng, answer.size());
      answer[at] = static_cast<char>('0' + (answer[at] - '0' + 1 + static_cast<int>(uniform_index(rng, 9))) % 10);
    }
    r.prompt = tokenizer.encode(p.prompt + answer + ">");
    r.completion.tokens = tokenizer.encode(right ? "1" : "0");
    r.completion.tokens.push_back(tokenizer.eos_id());
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
  loop::restore_snapshot(anchor, warm);
  const double before = evaluate("warm_start", 0);

  auto make_judge = [&] {
    return loop::PolicyJudge<lm::LlamaSampler>(
        sampler, [&](std::string_view t) { return tokenizer.encode(t); },
        [&](std::span<const TokenId> ids) { return tokenizer.decode(std::vector<TokenId>(ids.begin(), ids.end())); },
        {.prompt_template = "{prompt}{response}>", .sampling = judge_sampling, .judgements = o.judgements,
         .score = {.max_score = 1.0}, .seed = o.seed + 5});
  };
  // How often the warm start's verdicts agree with the verifier, on its own samples of the probe set.
  {
    auto judge = make_judge();
    SamplingParams params = sampling;
    params.seed = o.seed + 6000;
    double agree = 0.0, n = 0.0;
    for (std::size_t i = 0; i < 64; ++i) {
      std::vector<Prompt> four(4, probe[i]);
      const auto cs = sampler.sample(std::span<const Prompt>(four), params);
      const auto scores = judge(probe[i], cs);
      for (std::size_t k = 0; k < cs.size(); ++k, n += 1.0) agree += ((scores[k] >= 0.5) == verifier(probe[i], cs[k])) ? 1.0 : 0.0;
    }
    std::fprintf(stderr, "warm start: %lld SFT steps; held-out pass@1 %.3f; self-judge agrees with the verifier on %.1f %% of its samples\n",
                 static_cast<long long>(sft_done), before, 100.0 * agree / n);
    jsonl({{"event", "judge_agreement"}, {"agreement", agree / n}, {"samples", n}});
  }

  loop::PreferenceLoopConfig c;
  c.iterations = o.iterations;
  c.prompts_per_iteration = o.prompts;
  c.samples_per_prompt = o.samples;
  c.steps_per_iteration = o.steps;
  c.pairs_per_step = o.pairs_per_step;
  c.dpo.beta = o.beta;
  c.nll_weight = o.nll_weight;
  c.optimizer = {.learning_rate = o.lr};
  c.sampling = sampling;
  c.seed = o.seed + 1;
  c.collate = collate;
  struct Curves {
    std::vector<double> it, gap, pass;
  };
  auto record = [&](const std::string& name, Curves& curves) {
    return [&, name](const nlohmann::json& m) {
      nlohmann::json r = m;
      r["run"] = name;
      jsonl(r);
      // The pairs DPO trains M_{t+1} on: plain SR's only pairs, temporal SR's future-guided pairs.
      if (m["event"] == "iterative_dpo_pairs" || (m["event"] == "temporal_pairs" && m["stage"] == "future_guided")) {
        curves.gap.push_back(m["score_gap_mean"].get<double>());
        std::fprintf(stderr, "%s iteration %d: %d pairs, chosen %.3f rejected %.3f gap %.3f\n", name.c_str(),
                     m["iteration"].get<int>(), m["pairs"].get<int>(), m["chosen_score_mean"].get<double>(),
                     m["rejected_score_mean"].get<double>(), m["score_gap_mean"].get<double>());
      }
      if (m["event"] == "iteration_end") {
        const auto it = m["iteration"].get<std::int64_t>();
        curves.it.push_back(static_cast<double>(it));
        curves.pass.push_back(evaluate(name, it));
        std::fprintf(stderr, "%s after iteration %lld: held-out pass@1 %.3f\n", name.c_str(), static_cast<long long>(it),
                     curves.pass.back());
      }
    };
  };
  Curves plain, temporal;
  {
    auto judge = make_judge();
    const auto t0 = std::chrono::steady_clock::now();
    (void)loop::self_rewarding(model, reference, sampler, judge, std::span<const Prompt>(pool), c, record("self_rewarding", plain));
    std::fprintf(stderr, "self-rewarding: %.1f s, %lld unparsable verdicts\n",
                 tiny::seconds_since(t0),
                 static_cast<long long>(judge.unparsable()));
  }
  loop::restore_snapshot(model, warm);
  {
    auto judge = make_judge();
    const auto t0 = std::chrono::steady_clock::now();
    (void)loop::temporal_self_rewarding(model, reference, sampler, anchor_sampler, judge, std::span<const Prompt>(pool), c,
                                        {}, record("temporal", temporal));
    std::fprintf(stderr, "temporal self-rewarding: %.1f s, %lld unparsable verdicts\n",
                 tiny::seconds_since(t0),
                 static_cast<long long>(judge.unparsable()));
  }

  plot::LinePlot chart({.title = "Chosen - rejected self-judge score gap of the DPO pairs, 2-digit addition",
                        .x_label = "iteration", .y_label = "mean judge-score gap", .width = 960, .y_min = 0.0, .y_max = 1.0});
  chart.add_series("Self-Rewarding (best vs worst of M_t)", plain.it, plain.gap);
  chart.add_series("Temporal SR (anchored rejection + future-guided chosen)", temporal.it, temporal.gap);
  const std::string plot_path = (std::filesystem::path(o.out_dir) / "gap.svg").string();
  chart.write(plot_path);
  const double seconds = tiny::seconds_since(t_start);
  std::printf("iteration | gap: self-rewarding  temporal | held-out pass@1: self-rewarding  temporal   (warm start %.3f)\n", before);
  for (std::size_t i = 0; i < plain.it.size() && i < temporal.it.size(); ++i)
    std::printf("%9d | %19.3f %9.3f | %32.3f %9.3f\n", static_cast<int>(plain.it[i]), plain.gap[i], temporal.gap[i],
                plain.pass[i], temporal.pass[i]);
  jsonl({{"event", "summary"}, {"pass_at_1_before", before}, {"gap_self_rewarding", plain.gap},
         {"gap_temporal", temporal.gap}, {"pass_at_1_self_rewarding", plain.pass}, {"pass_at_1_temporal", temporal.pass},
         {"seconds", seconds}});
  tiny::print_outputs(seconds, o.out_dir, plot_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"kaizen self-rewarding: the policy judges its own answers; plain vs temporal self-rewarding"};
  app.add_option("--out", o.out_dir, "output folder (metrics.jsonl, gap.svg)");
  app.add_option("--hidden-size", o.hidden_size, "model width");
  app.add_option("--layers", o.layers, "decoder layers");
  app.add_option("--sft-steps", o.sft_steps, "most supervised warm-start steps");
  app.add_option("--warm-start-target", o.warm_start_target, "stop the warm start once a probe reaches this pass@1");
  app.add_option("--sft-lr", o.sft_lr, "warm-start learning rate");
  app.add_option("--iterations", o.iterations, "self-rewarding iterations");
  app.add_option("--prompts", o.prompts, "prompts per iteration");
  app.add_option("--samples", o.samples, "answers per prompt (N >= 2)");
  app.add_option("--judgements", o.judgements, "verdicts per answer, averaged");
  app.add_option("--steps", o.steps, "DPO steps per iteration (and per provisional phase)");
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
    std::cerr << "self_rewarding: " << e.what() << "\n";
    return 1;
  }
}
