// rest_mcts - ReST-MCTS* against ReST-EM on step-wise Countdown with a tiny Llama model.
//
//   task:   "3,5,7>22:" -> "3*5=15;15+7=22<eos>": each step "x op y=z" uses two available numbers
//           (given or earlier results), ';' ends a step, EOS ends the solution, the last result must be
//           the target (tasks::Countdown draws the problems; its left-to-right answer gives the steps)
//   1. warm start: SFT on the steps of generated solutions until a probe of training problems reaches
//      --warm-start-target pass@1 (both loops start from this one model)
//   2. ReST-MCTS*: per iteration MCTS* over steps on --train-prompts problems (the policy proposes
//      --branch distinct steps per expansion from --oversample x as many samples, the value model scores
//      each), quality-value targets (all iterations so far) -> value model (MSE), verified value-filtered
//      traces -> SFT of the warm start (as ReST-EM, so the two differ only in how the data is found)
//   3. ReST-EM: per iteration N samples per training problem, verified ones (cap) -> SFT of the warm
//      start; N is set so that its generated tokens per iteration match ReST-MCTS*'s first iteration
//   4. held-out pass@1 after every iteration for both; the value model's AUC on held-out steps
//      (correct = the step is valid and the target is still reachable, checked by brute force) of a
//      fixed set of warm-start solutions, before training and after every iteration
//   Outputs: metrics.jsonl, pass_at_1.svg, auc.svg in --out.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <common/countdown_steps.hpp>
#include <common/svg_plot.hpp>
#include <common/tiny_setup.hpp>
#include <kaizen/loop.hpp>
#include <kaizen/loop/rest_mcts.hpp>
#include <kaizen/loop/steps.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/models/value_head.hpp>
#include <kaizen/tasks.hpp>

namespace {

using kaizen::TokenId;

struct Options {
  std::string out_dir = "out/rest_mcts";
  int max_value = 6;
  int hidden_size = 64;
  int layers = 2;
  double warm_start_target = 0.15;
  int warm_start_steps = 3000;
  double warm_start_lr = 3e-3;
  int train_prompts = 128;
  int iterations = 3;
  int simulations = 16;
  int branch = 3;
  int oversample = 2;
  int leaves_per_round = 4;
  double min_trace_value = 0.2;
  int cap = 4;
  int prm_steps = 200;
  int prm_batch = 64;
  double prm_lr = 1e-3;
  double sft_epochs = 4.0;
  int sft_batch = 16;
  double sft_lr = 1e-3;
  int eval_prompts = 150;
  int eval_k = 4;
  int auc_k = 4;
  int threads = 1;
  std::uint64_t seed = 1;
};

using namespace countdown_steps;

/// Counts the tokens a sampler generates.
struct CountingSampler {
  kaizen::lm::LlamaSampler* inner;
  std::int64_t tokens = 0;
  std::vector<kaizen::Completion> sample(std::span<const kaizen::Prompt> prompts, const kaizen::SamplingParams& params) {
    std::vector<kaizen::Completion> out = inner->sample(prompts, params);
    for (const auto& c : out) tokens += static_cast<std::int64_t>(c.tokens.size());
    return out;
  }
};

int run(const Options& o) {
  using namespace kaizen;
  using Clock = std::chrono::steady_clock;
  const auto t_start = tiny::begin_run(o.out_dir, o.threads, o.seed);
  std::ofstream metrics_file(std::filesystem::path(o.out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(metrics_file);

  const tasks::Countdown task({.min_numbers = 3, .max_numbers = 3, .max_value = o.max_value});
  const tasks::CharTokenizer tokenizer("0123456789+-*/()=>,: ;");
  const TokenId delimiter = tokenizer.encode(";").front();
  const tasks::HeldOutSplit<tasks::Countdown> split(task, static_cast<std::size_t>(o.eval_prompts), o.seed + 1000);
  const std::vector<Prompt> held_out = tiny::held_out_prompts(split, tokenizer);
  std::vector<Prompt> train;
  Rng data_rng(o.seed + 4000);
  for (int i = 0; i < o.train_prompts; ++i) train.push_back(tasks::make_prompt(split.train(-1, data_rng), tokenizer));

  tiny::ModelOptions mo{.hidden_size = o.hidden_size, .layers = o.layers, .context = 48};
  const lm::LlamaConfig config = tiny::llama_config(tokenizer, mo);
  lm::LlamaModel model(config);
  lm::LlamaSampler sampler(model, tokenizer);
  StepVerifier verifier{&tokenizer};
  SamplingParams sampling;
  sampling.temperature = 1.0;
  sampling.max_new_tokens = 30;
  sampling.stop_tokens = {tokenizer.eos_id()};
  const CollateOptions collate{.pad_id = tokenizer.pad_id(), .vocab_size = config.vocab_size, .padding = Padding::right,
                               .max_length = config.max_position_embeddings};

  // 1. Warm start.
  const std::int64_t warm_steps = tiny::warm_start(
      model, sampler, verifier, split, tokenizer, sampling, collate, o.warm_start_target, o.warm_start_steps,
      o.warm_start_lr, o.seed,
      [&](const tasks::Problem& p, Rng&) {
        std::vector<TokenId> ids = tokenizer.encode(answer_steps(p));
        ids.push_back(tokenizer.eos_id());
        return ids;
      },
      jsonl);
  const loop::ParameterSnapshot warm = loop::take_snapshot(model);
  auto evaluate = [&](std::int64_t iteration) {
    SamplingParams p = sampling;
    p.seed = o.seed * 7919 + static_cast<std::uint64_t>(iteration);
    return tiny::measure(sampler, verifier, std::span<const Prompt>(held_out), o.eval_k, p).pass_at_1;
  };
  const double before = evaluate(0);
  std::fprintf(stderr, "kaizen rest_mcts: Countdown (3 numbers in [1, %d]) in steps, Llama %d x %d; warm start %lld steps, "
               "held-out pass@1 %.3f\n", o.max_value, o.layers, o.hidden_size, static_cast<long long>(warm_steps), before);
  jsonl({{"event", "warm_start"}, {"sft_steps", warm_steps}, {"pass_at_1", before}});

  // Held-out steps for the value model's AUC: warm-start solutions of the held-out problems, split at ';'.
  std::vector<std::vector<TokenId>> auc_seq;
  std::vector<std::vector<std::int64_t>> auc_ends;
  std::vector<bool> auc_label;
  {
    std::vector<Prompt> rep;
    for (const Prompt& p : held_out)
      for (int k = 0; k < o.auc_k; ++k) rep.push_back(p);
    SamplingParams p = sampling;
    p.seed = o.seed + 555;
    const std::vector<Completion> c = sampler.sample(std::span<const Prompt>(rep), p);
    const loop::StepSegmenter seg{.delimiter = delimiter, .end_tokens = {tokenizer.eos_id()}, .max_step_tokens = 10, .max_steps = 3};
    for (std::size_t i = 0; i < c.size(); ++i)
      label_steps(rep[i], c[i], seg, tokenizer, auc_seq, auc_ends, auc_label);
  }
  const auto positives = std::count(auc_label.begin(), auc_label.end(), true);
  lm::ValueModel value(config);
  value.init_trunk_from(model);
  auto value_auc = [&] {
    const std::vector<double> v = lm::score_paths(value, auc_seq, auc_ends, 256, tokenizer.pad_id());
    return auc(v, auc_label);
  };
  std::vector<double> auc_curve{value_auc()};
  std::fprintf(stderr, "held-out steps for the AUC: %zu (%lld correct); value model AUC before training %.3f\n",
               auc_label.size(), static_cast<long long>(positives), auc_curve[0]);

  // 2. ReST-MCTS*.
  std::vector<double> mcts_curve{before}, em_curve{before};
  std::vector<std::int64_t> mcts_tokens, em_tokens;
  loop::RestMctsConfig rc;
  rc.iterations = o.iterations;
  rc.search.simulations = static_cast<std::size_t>(o.simulations);
  rc.search.branch = static_cast<std::uint32_t>(o.branch);
  rc.search.leaves_per_round = static_cast<std::size_t>(o.leaves_per_round);
  rc.steps.segmenter = {.delimiter = delimiter, .end_tokens = {tokenizer.eos_id()}, .max_step_tokens = 10, .max_steps = 3};
  rc.steps.sampling = sampling;
  rc.steps.oversample = static_cast<std::uint32_t>(o.oversample);
  rc.accumulate_prm_data = true;
  rc.restart_from_base = true;  // as ReST-EM: both loops fine-tune the warm start on their own data
  rc.min_trace_value = o.min_trace_value;
  rc.cap = o.cap;
  rc.prm_steps = o.prm_steps;
  rc.prm_batch = o.prm_batch;
  rc.prm_optimizer.learning_rate = o.prm_lr;
  rc.sft_epochs = o.sft_epochs;
  rc.sft_batch = o.sft_batch;
  rc.sft_optimizer.learning_rate = o.sft_lr;
  rc.collate = collate;
  rc.pad_id = tokenizer.pad_id();
  rc.seed = o.seed + 5;
  loop::RestMctsHooks hooks;
  hooks.after_iteration = [&](std::int64_t iteration, nlohmann::json& m) {
    const double p = evaluate(iteration);
    const double a = value_auc();
    m["held_out_pass_at_1"] = p;
    m["held_out_step_auc"] = a;
    mcts_curve.push_back(p);
    auc_curve.push_back(a);
    mcts_tokens.push_back(m["generated_tokens"].get<std::int64_t>());
    std::fprintf(stderr,
                 "ReST-MCTS* iteration %lld: %lld tokens, solved %lld/%lld prompts, correct terminals %lld/%lld, kept %lld, "
                 "PRM loss %.4f, SFT loss %.4f, held-out pass@1 %.3f, step AUC %.3f\n",
                 static_cast<long long>(iteration), static_cast<long long>(m["generated_tokens"].get<std::int64_t>()),
                 static_cast<long long>(m["prompts_solved"].get<std::int64_t>()),
                 static_cast<long long>(m["searched"].get<std::int64_t>()),
                 static_cast<long long>(m["correct_terminals"].get<std::int64_t>()),
                 static_cast<long long>(m["terminals"].get<std::int64_t>()), static_cast<long long>(m["kept"].get<std::int64_t>()),
                 m.value("prm_final_loss", 0.0), m.value("sft_final_loss", 0.0), p, a);
  };
  auto decode = [&](std::span<const TokenId> t) { return tokenizer.decode(t); };
  const auto t_mcts = Clock::now();
  loop::rest_mcts(model, sampler, value, verifier, std::span<const Prompt>(train), rc,
                  [&](const nlohmann::json& m) {
                    if (m["event"] == "rest_mcts_iteration") jsonl(m);
                  },
                  hooks, decode);
  const double mcts_seconds = tiny::seconds_since(t_mcts);

  // 3. ReST-EM from the same warm start, N chosen for the same generated tokens per iteration.
  loop::restore_snapshot(model, warm);
  double mean_len = 0.0;
  {
    SamplingParams p = sampling;
    p.seed = o.seed + 777;
    const std::vector<Completion> c = sampler.sample(std::span<const Prompt>(train), p);
    for (const auto& x : c) mean_len += static_cast<double>(x.tokens.size()) / static_cast<double>(c.size());
  }
  const auto n = std::max<std::int64_t>(
      1, std::llround(static_cast<double>(mcts_tokens.front()) / (mean_len * static_cast<double>(train.size()))));
  CountingSampler counting{&sampler};
  loop::RestEmConfig ec;
  ec.iterations = o.iterations;
  ec.samples_per_prompt = n;
  ec.cap = o.cap;
  ec.engine.sft_epochs = o.sft_epochs;
  ec.engine.batch_size = o.sft_batch;
  ec.engine.optimizer.learning_rate = o.sft_lr;
  ec.engine.sampling = sampling;
  ec.engine.collate = collate;
  ec.engine.seed = o.seed + 5;
  ec.engine.prompts_per_sampler_call = 128;
  loop::SelfTrainingHooks eh;
  std::int64_t counted = 0;
  eh.after_iteration = [&](std::int64_t iteration, nlohmann::json& m) {
    const std::int64_t grown = counting.tokens - counted;
    const double p = evaluate(iteration);
    counted = counting.tokens;
    m["generated_tokens"] = grown;
    m["held_out_pass_at_1"] = p;
    em_curve.push_back(p);
    em_tokens.push_back(grown);
    std::fprintf(stderr, "ReST-EM    iteration %lld: %lld tokens (N = %lld), kept %lld, held-out pass@1 %.3f\n",
                 static_cast<long long>(iteration), static_cast<long long>(grown), static_cast<long long>(n),
                 static_cast<long long>(m["kept"].get<std::int64_t>()), p);
  };
  const auto t_em = Clock::now();
  // The evaluation inside after_iteration samples through `sampler`, not `counting`: only grow tokens are counted.
  loop::rest_em(model, counting, verifier, std::span<const Prompt>(train), ec,
                [&](const nlohmann::json& m) {
                  if (m["event"] == "rest_em_iteration") jsonl(m);
                },
                eh);
  const double em_seconds = tiny::seconds_since(t_em);

  // 4. Summary and plots.
  std::int64_t mcts_total = 0, em_total = 0;
  for (auto t : mcts_tokens) mcts_total += t;
  for (auto t : em_tokens) em_total += t;
  std::printf("held-out pass@1 (%d problems x %d samples), warm start %.3f:\n", o.eval_prompts, o.eval_k, before);
  std::printf("  ReST-MCTS*  %.3f -> %.3f  (%lld generated tokens, %.0f s)\n", before, mcts_curve.back(),
              static_cast<long long>(mcts_total), mcts_seconds);
  std::printf("  ReST-EM     %.3f -> %.3f  (%lld generated tokens, N = %lld, %.0f s)\n", before, em_curve.back(),
              static_cast<long long>(em_total), static_cast<long long>(n), em_seconds);
  std::printf("value-model AUC on %zu held-out steps (%lld correct):", auc_label.size(), static_cast<long long>(positives));
  for (double a : auc_curve) std::printf(" %.3f", a);
  std::printf("\n");
  std::printf("total %.0f s\n", tiny::seconds_since(t_start));
  jsonl({{"event", "summary"}, {"before", before}, {"rest_mcts", mcts_curve}, {"rest_em", em_curve},
         {"rest_mcts_tokens", mcts_tokens}, {"rest_em_tokens", em_tokens}, {"rest_em_n", n}, {"auc", auc_curve}});
  std::vector<double> xs;
  for (std::size_t i = 0; i < mcts_curve.size(); ++i) xs.push_back(static_cast<double>(i));
  plot::LinePlot pass_plot({.title = "Held-out pass@1", .x_label = "iteration", .y_label = "pass@1"});
  pass_plot.add_series("ReST-MCTS*", xs, mcts_curve);
  pass_plot.add_series("ReST-EM (equal tokens)", std::span<const double>(xs).first(em_curve.size()), em_curve);
  pass_plot.write((std::filesystem::path(o.out_dir) / "pass_at_1.svg").string());
  plot::LinePlot auc_plot({.title = "Value model AUC on held-out steps", .x_label = "iteration", .y_label = "AUC"});
  auc_plot.add_series("ReST-MCTS* value model", std::span<const double>(xs).first(auc_curve.size()), auc_curve);
  auc_plot.write((std::filesystem::path(o.out_dir) / "auc.svg").string());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"kaizen ReST-MCTS* vs ReST-EM on step-wise Countdown"};
  app.add_option("--out", o.out_dir, "output folder (metrics.jsonl, pass_at_1.svg, auc.svg)");
  app.add_option("--max-value", o.max_value, "numbers lie in [1, max-value]");
  app.add_option("--hidden-size", o.hidden_size, "model width");
  app.add_option("--layers", o.layers, "decoder layers");
  app.add_option("--warm-start-target", o.warm_start_target, "warm start stops at this probe pass@1");
  app.add_option("--warm-start-steps", o.warm_start_steps, "most warm-start steps");
  app.add_option("--train-prompts", o.train_prompts, "training problems");
  app.add_option("--iterations", o.iterations, "iterations of each loop");
  app.add_option("--simulations", o.simulations, "MCTS simulations per problem");
  app.add_option("--branch", o.branch, "steps proposed per expansion");
  app.add_option("--leaves-per-round", o.leaves_per_round, "leaves expanded per batched MCTS round");
  app.add_option("--min-trace-value", o.min_trace_value, "value-model filter of kept traces");
  app.add_option("--cap", o.cap, "kept traces per problem");
  app.add_option("--prm-steps", o.prm_steps, "value-model steps per iteration");
  app.add_option("--prm-lr", o.prm_lr, "value-model learning rate");
  app.add_option("--oversample", o.oversample, "ReST-MCTS*: samples per requested child (distinct ones kept)");
  app.add_option("--sft-epochs", o.sft_epochs, "policy SFT epochs over the kept traces per iteration (both loops)");
  app.add_option("--sft-lr", o.sft_lr, "policy SFT learning rate (both loops)");
  app.add_option("--eval-prompts", o.eval_prompts, "held-out problems");
  app.add_option("--eval-k", o.eval_k, "samples per held-out problem");
  app.add_option("--auc-k", o.auc_k, "warm-start solutions per held-out problem for the step AUC");
  app.add_option("--threads", o.threads, "LibTorch threads");
  app.add_option("--seed", o.seed, "seed");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rest_mcts: %s\n", e.what());
    return 1;
  }
}
