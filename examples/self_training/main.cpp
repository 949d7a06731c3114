// self_training - rejection-sampling fine-tuning on 2-digit addition with a tiny Llama model:
// ReST-EM, STaR (with rationalisation) and B-STaR, each started from the same supervised warm start.
//
//   1. warm start: SFT until a probe of training problems reaches --warm-start-target pass@1; a quarter of
//      the warm-start examples show the answer as a hint ("85:27+58=" -> "85"), the few-shot rationalisation
//      exemplars STaR assumes, so every loop starts from the same model that can read a hint
//   2. held-out pass@1 of the warm start (the baseline, same run, same evaluation seeds)
//   3. ReST-EM  (N = --rest-n per prompt, verified samples, cap, SFT of the warm start every iteration)
//      STaR     (N = --star-n, cap, rationalisation with the answer hint for failed prompts, SFT of the warm start)
//      B-STaR   (N = --bstar-n, per-iteration temperature x threshold search on --tuning-prompts held-out training
//                queries by balance score, selection by a partial-credit score, SFT continuing from the last iterate)
//      ReST-EM and B-STaR draw the same number of samples per iteration (B-STaR's tuning samples included)
//   4. held-out pass@1 after every iteration; exploration (pass@K, distinct correct) and exploitation
//      (kept precision) monitors of the grown samples per iteration; metrics.jsonl, pass_at_1.svg, monitors.svg
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <common/svg_plot.hpp>
#include <kaizen/consistency/extract.hpp>
#include <kaizen/loop.hpp>
#include <kaizen/tasks.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>

namespace {

struct Options {
  std::string out_dir = "out/self_training";
  std::string loops = "rest_em,star,bstar";
  int digits = 2;
  int hidden_size = 64;
  int layers = 2;
  int heads = 4;
  int kv_heads = 2;
  int sft_steps = 4000;
  double warm_start_target = 0.2;
  int sft_batch = 32;
  double sft_lr = 3e-3;
  int train_prompts = 256;
  int iterations = 3;
  int rest_n = 12;
  int star_n = 8;
  int bstar_n = 8;
  int cap = 4;
  int improve_steps = 150;
  int improve_batch = 32;
  double improve_lr = 1e-3;
  int tuning_prompts = 32;
  int tuning_k = 8;
  std::string temperatures = "0.6,0.8,1.0,1.2";
  std::string thresholds = "0.0,0.5,0.8,0.95";
  int n_star = 4;
  bool bstar_from_base = false;
  bool count_empty = false;
  int eval_prompts = 200;
  int eval_k = 4;
  int threads = 1;
  std::uint64_t seed = 1;
};

std::vector<double> parse_list(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(std::stod(item));
  return out;
}

/// B-STaR's selection score without a trained reward model: 1 for a verified answer, else partial credit
/// 0.9·max(0, 1 − |answer − reference| / 10) for a number near the reference, 0 for no number.
struct PartialCredit {
  const kaizen::tasks::Arithmetic* task;
  const kaizen::tasks::CharTokenizer* tokenizer;
  double operator()(const kaizen::Prompt& p, const kaizen::Completion& c) const {
    if (c.finish != kaizen::FinishReason::stop) return 0.0;
    const std::string text = tokenizer->decode(c.tokens);
    if (task->verify(p.text, p.reference, text)) return 1.0;
    const auto got = kaizen::consistency::extract_last_number(text);
    if (!got) return 0.0;
    try {
      const double d = std::abs(std::stod(*got) - std::stod(p.reference));
      return 0.9 * std::max(0.0, 1.0 - d / 10.0);
    } catch (const std::exception&) {
      return 0.0;
    }
  }
};

int run(const Options& o) {
  using namespace kaizen;
  torch::set_num_threads(o.threads);
  torch::manual_seed(o.seed);
  std::filesystem::create_directories(o.out_dir);
  const auto t_start = std::chrono::steady_clock::now();
  const tasks::Arithmetic task({.min_digits = o.digits, .max_digits = o.digits, .operators = "+"});
  const tasks::CharTokenizer tokenizer;
  const tasks::HeldOutSplit<tasks::Arithmetic> split(task, static_cast<std::size_t>(o.eval_prompts), o.seed + 1000);
  std::vector<Prompt> held_out;
  for (const auto& p : split.held_out()) held_out.push_back(tasks::make_prompt(p, tokenizer));
  Rng data_rng(o.seed + 4000);
  std::vector<Prompt> train, tuning;
  for (int i = 0; i < o.train_prompts; ++i) train.push_back(tasks::make_prompt(split.train(-1, data_rng), tokenizer));
  for (int i = 0; i < o.tuning_prompts; ++i) tuning.push_back(tasks::make_prompt(split.train(-1, data_rng), tokenizer));

  lm::LlamaConfig config;
  config.vocab_size = tokenizer.vocab_size();
  config.hidden_size = o.hidden_size;
  config.intermediate_size = (o.hidden_size * 8 / 3 + 15) / 16 * 16;
  config.num_hidden_layers = o.layers;
  config.num_attention_heads = o.heads;
  config.num_key_value_heads = o.kv_heads;
  config.max_position_embeddings = 32;
  lm::LlamaModel model(config);
  lm::LlamaSampler sampler(model, tokenizer);
  tasks::TaskVerifier<tasks::Arithmetic, tasks::CharTokenizer> verifier{&task, &tokenizer};
  PartialCredit partial{&task, &tokenizer};
  SamplingParams sampling;
  sampling.temperature = 1.0;
  sampling.max_new_tokens = 8;
  sampling.stop_tokens = {tokenizer.eos_id()};
  const CollateOptions collate_options{.pad_id = tokenizer.pad_id(), .vocab_size = config.vocab_size,
                                       .padding = Padding::right, .max_length = config.max_position_embeddings};
  std::ofstream metrics_file(std::filesystem::path(o.out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(metrics_file);
  auto extract = [&](const Prompt&, const Completion& c) -> std::optional<std::string> {
    const std::string text = tokenizer.decode(c.tokens);
    if (text.empty()) return std::nullopt;
    return consistency::normalize_answer(text);
  };
  // Evaluation i of every loop uses the same seed, so loops are compared on the same draws of randomness.
  auto evaluate = [&](const std::string& loop_name, std::int64_t iteration) {
    SamplingParams params = sampling;
    params.seed = o.seed * 7919 + static_cast<std::uint64_t>(iteration);
    const loop::EvalResult r = loop::evaluate(sampler, verifier, std::span<const Prompt>(held_out), o.eval_k, params, extract);
    nlohmann::json record = r.to_json();
    record["event"] = "eval";
    record["loop"] = loop_name;
    record["iteration"] = iteration;
    jsonl(record);
    return r.pass_at_1;
  };
  auto hint = [&](const Prompt& p) {
    Prompt h = p;
    h.text = p.reference + ":" + p.text;
    h.tokens = tokenizer.encode(h.text);
    return h;
  };

  // 1. Warm start (a quarter of the examples with the answer as a hint).
  std::fprintf(stderr, "kaizen self_training: %d-digit addition, Llama %d layers x %d hidden, %d training prompts\n",
               o.digits, o.layers, o.hidden_size, o.train_prompts);
  auto examples = [&](Rng& rng) {
    const tasks::Problem p = split.train(-1, rng);
    Rollout r;
    const bool hinted = uniform_index(rng, 4) == 0;
    r.prompt = tokenizer.encode(hinted ? p.answer + ":" + p.prompt : p.prompt);
    r.completion.tokens = tasks::answer_tokens(p, tokenizer);
    return r;
  };
  Rng probe_rng(o.seed + 2000);
  std::vector<Prompt> probe;
  for (int i = 0; i < 128; ++i) probe.push_back(tasks::make_prompt(split.train(-1, probe_rng), tokenizer));
  loop::SftConfig sft{.steps = o.sft_steps, .batch_size = o.sft_batch, .learning_rate = o.sft_lr, .seed = o.seed,
                      .collate = collate_options};
  double probe_pass = 0.0;
  std::int64_t sft_done = 0;
  if (o.warm_start_target > 0.0) {
    sft.stop_check_every = 100;
    sft.stop_when = [&](std::int64_t steps) {
      SamplingParams params = sampling;
      params.seed = o.seed + 3000;
      probe_pass = loop::evaluate(sampler, verifier, std::span<const Prompt>(probe), 2, params, extract).pass_at_1;
      sft_done = steps;
      return probe_pass >= o.warm_start_target;
    };
  }
  loop::supervised_finetune(model, examples, sft, [&](const nlohmann::json& m) { sft_done = m["step"].get<std::int64_t>(); });
  const loop::ParameterSnapshot warm = loop::take_snapshot(model);
  const double before = evaluate("warm_start", 0);
  std::fprintf(stderr, "warm start: %lld SFT steps, probe pass@1 %.3f; held-out pass@1 %.3f\n",
               static_cast<long long>(sft_done), probe_pass, before);
  jsonl({{"event", "warm_start"}, {"sft_steps", sft_done}, {"probe_pass_at_1", probe_pass}, {"pass_at_1", before}});

  loop::SelfTrainingConfig engine;
  engine.sft_steps = o.improve_steps;
  engine.batch_size = o.improve_batch;
  engine.optimizer.learning_rate = o.improve_lr;
  engine.sampling = sampling;
  engine.collate = collate_options;
  engine.seed = o.seed + 5;
  engine.prompts_per_sampler_call = 128;

  const loop::BalanceOptions balance{.n_star = o.n_star, .cap = o.cap, .s = 4, .skip_empty = !o.count_empty};
  const std::vector<double> temperatures = parse_list(o.temperatures), thresholds = parse_list(o.thresholds);

  std::map<std::string, std::vector<double>> pass_at_1;                        // loop -> per iteration (0 = warm start)
  std::map<std::string, std::map<std::string, std::vector<double>>> monitor;  // loop -> monitor -> per iteration
  std::map<std::string, std::int64_t> samples;                                  // loop -> samples drawn for training
  std::map<std::string, double> seconds;
  auto run_loop = [&](const std::string& name) {
    loop::restore_snapshot(model, warm);
    std::vector<double>& curve = pass_at_1[name];
    curve = {before};
    loop::SelfTrainingHooks hooks;
    hooks.after_iteration = [&](std::int64_t iteration, nlohmann::json& m) {
      const double p = evaluate(name, iteration);
      m["held_out_pass_at_1"] = p;
      curve.push_back(p);
    };
    if (name != "bstar") {  // B-STaR records its own train_monitors; the others get them here (verified = kept)
      hooks.on_grown = [&](std::span<const Group> groups, const loop::SelectionRule&, nlohmann::json& m) {
        const auto labelled = loop::label_groups(verifier, groups);
        m["train_monitors"] = loop::monitor(std::span<const loop::LabelledGroup>(labelled), 0.5, balance).to_json();
      };
    }
    auto on_metrics = [&](const nlohmann::json& m) {
      nlohmann::json r = m;
      r["loop"] = name;
      const std::string event = m["event"].get<std::string>();
      if (event.ends_with("_sft") && m["step"].get<std::int64_t>() % 50 != 0) return;  // keep the file small
      jsonl(r);
      if (!event.ends_with("_iteration")) return;
      std::int64_t drawn = m["sampled"].get<std::int64_t>() + m.value("rationalisation_sampled", std::int64_t{0});
      if (name == "bstar")
        drawn += static_cast<std::int64_t>(tuning.size() * temperatures.size()) * o.tuning_k;
      samples[name] += drawn;
      const auto& tm = m["train_monitors"];
      monitor[name]["pass@K"].push_back(tm["pass_at_k"].get<double>());
      monitor[name]["kept precision"].push_back(tm["kept_precision"].get<double>());
      monitor[name]["balance score"].push_back(tm["balance_score"].get<double>());
      monitor[name]["distinct correct"].push_back(tm["distinct_correct"].get<double>());
      std::fprintf(stderr,
                   "%-8s iteration %lld: T %.2f  threshold %.2f  kept %lld (%lld prompts)  pass@K %.2f  kept precision "
                   "%.2f  distinct correct %.2f  held-out pass@1 %.3f\n",
                   name.c_str(), static_cast<long long>(m["iteration"].get<std::int64_t>()), m["temperature"].get<double>(),
                   m["threshold"].get<double>(), static_cast<long long>(m["kept"].get<std::int64_t>()),
                   static_cast<long long>(m["prompts_with_kept"].get<std::int64_t>()), tm["pass_at_k"].get<double>(),
                   tm["kept_precision"].get<double>(), tm["distinct_correct"].get<double>(),
                   m["held_out_pass_at_1"].get<double>());
    };
    const auto t0 = std::chrono::steady_clock::now();
    const std::span<const Prompt> prompts(train);
    if (name == "rest_em") {
      loop::rest_em(model, sampler, verifier, prompts,
                    {.iterations = o.iterations, .samples_per_prompt = o.rest_n, .cap = o.cap, .engine = engine},
                    on_metrics, hooks);
    } else if (name == "star") {
      loop::star(model, sampler, verifier, prompts,
                 {.iterations = o.iterations, .samples_per_prompt = o.star_n, .cap = o.cap,
                  .rationalisation_samples = o.star_n, .engine = engine},
                 hint, on_metrics, hooks);
    } else {
      loop::bstar(model, sampler, partial, verifier, prompts, std::span<const Prompt>(tuning),
                  {.iterations = o.iterations, .samples_per_prompt = o.bstar_n, .tuning_samples = o.tuning_k,
                   .temperatures = temperatures, .thresholds = thresholds, .balance = balance,
                   .restart_from_base = o.bstar_from_base, .engine = engine},
                  on_metrics, hooks);
    }
    seconds[name] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<std::string> names;
  {
    std::stringstream in(o.loops);
    std::string item;
    while (std::getline(in, item, ','))
      if (!item.empty()) names.push_back(item);
  }
  for (const std::string& name : names) {
    if (name != "rest_em" && name != "star" && name != "bstar") {
      std::fprintf(stderr, "--loops: unknown loop '%s' (rest_em, star, bstar)\n", name.c_str());
      return 2;
    }
    run_loop(name);
  }

  // Summary, plots.
  std::vector<double> xs;
  for (int i = 0; i <= o.iterations; ++i) xs.push_back(static_cast<double>(i));
  plot::LinePlot chart({.title = "Held-out pass@1 per iteration (" + std::to_string(o.digits) + "-digit addition)",
                        .x_label = "iteration (0 = warm start)", .y_label = "pass@1", .width = 900});
  plot::LinePlot monitors_chart({.title = "Exploration / exploitation of the grown samples per iteration",
                                 .x_label = "iteration", .y_label = "fraction", .width = 900, .y_min = 0.0, .y_max = 1.0});
  std::printf("held-out pass@1 (%d prompts x %d samples, T = %.1f), iteration 0 = the warm start (the baseline):\n",
              o.eval_prompts, o.eval_k, sampling.temperature);
  std::printf("%-8s %10s %8s   %s\n", "loop", "samples", "seconds", "pass@1 by iteration");
  nlohmann::json summary = {{"event", "summary"}, {"warm_start_pass_at_1", before}};
  for (const std::string& name : names) {
    const auto& curve = pass_at_1[name];
    std::printf("%-8s %10lld %8.1f  ", name.c_str(), static_cast<long long>(samples[name]), seconds[name]);
    for (double p : curve) std::printf(" %.3f", p);
    std::printf("   (%+.1f points)\n", 100.0 * (curve.back() - curve.front()));
    chart.add_series(name, std::span<const double>(xs).first(curve.size()), curve);
    std::vector<double> it(xs.begin() + 1, xs.begin() + 1 + static_cast<std::ptrdiff_t>(monitor[name]["pass@K"].size()));
    for (const char* key : {"pass@K", "kept precision", "balance score"})
      monitors_chart.add_series(name + " " + key, it, monitor[name][key]);
    summary[name] = {{"pass_at_1", curve}, {"samples", samples[name]}, {"seconds", seconds[name]},
                     {"monitors", monitor[name]}};
  }
  const auto out = std::filesystem::path(o.out_dir);
  chart.write((out / "pass_at_1.svg").string());
  monitors_chart.write((out / "monitors.svg").string());
  summary["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  jsonl(summary);
  std::printf("run time %.1f s\nmetrics: %s\nplots:   %s, %s\n", summary["seconds"].get<double>(),
              (out / "metrics.jsonl").string().c_str(), (out / "pass_at_1.svg").string().c_str(),
              (out / "monitors.svg").string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"kaizen self-training: ReST-EM, STaR and B-STaR from one warm start on addition"};
  app.add_option("--out", o.out_dir, "output folder (metrics.jsonl, pass_at_1.svg, monitors.svg)");
  app.add_option("--loops", o.loops, "comma-separated: rest_em, star, bstar");
  app.add_option("--digits", o.digits, "operand digits");
  app.add_option("--hidden-size", o.hidden_size, "model width");
  app.add_option("--layers", o.layers, "decoder layers");
  app.add_option("--sft-steps", o.sft_steps, "most warm-start steps");
  app.add_option("--warm-start-target", o.warm_start_target, "warm start stops at this probe pass@1 (0 = all steps)");
  app.add_option("--train-prompts", o.train_prompts, "training problems (fixed set, no labels used after the warm start)");
  app.add_option("--iterations", o.iterations, "grow/improve iterations per loop");
  app.add_option("--rest-n", o.rest_n, "ReST-EM samples per prompt");
  app.add_option("--star-n", o.star_n, "STaR samples per prompt (and per rationalisation)");
  app.add_option("--bstar-n", o.bstar_n, "B-STaR samples per prompt");
  app.add_option("--cap", o.cap, "kept samples per prompt");
  app.add_option("--improve-steps", o.improve_steps, "SFT steps per iteration");
  app.add_option("--improve-lr", o.improve_lr, "SFT learning rate per iteration");
  app.add_option("--tuning-prompts", o.tuning_prompts, "B-STaR held-out training queries for the search");
  app.add_option("--tuning-k", o.tuning_k, "B-STaR samples per tuning query and temperature");
  app.add_option("--temperatures", o.temperatures, "B-STaR temperature grid (comma-separated)");
  app.add_option("--thresholds", o.thresholds, "B-STaR score-threshold grid (comma-separated)");
  app.add_option("--n-star", o.n_star, "B-STaR n*: desired correct samples per query");
  app.add_flag("--bstar-from-base", o.bstar_from_base,
               "B-STaR improves the warm start every iteration (as ReST-EM) instead of the last iterate");
  app.add_flag("--count-empty", o.count_empty,
               "balance score: queries with nothing kept count 0 instead of being skipped (rewards coverage)");
  app.add_option("--eval-prompts", o.eval_prompts, "held-out prompts");
  app.add_option("--eval-k", o.eval_k, "samples per held-out prompt");
  app.add_option("--threads", o.threads, "CPU threads for LibTorch");
  app.add_option("--seed", o.seed, "seed of everything");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "\nself_training: " << e.what() << "\n";
    return 1;
  }
}
