// sharpening - SFT-sharpening (loop::sft_sharpening): the model fine-tuned on its own most likely
// answer out of N samples. Does the greedy answer's self-likelihood go up without accuracy going down?
//
//   1. the grpo_demo warm start (tiny Llama, 2-digit addition, stops at a probe pass@1 target)
//   2. before: on held-out prompts, the greedy answer (top_k = 1), its accuracy and its sequence
//      log-likelihood under the model itself (temperature 1); sampled pass@1 at temperature 1
//   3. SFT-sharpening: N samples per training prompt from the warm-started (base) model, keep the one
//      with the highest base log-likelihood (plain or --length-normalise), SFT on those pairs
//   4. the same measurements during and after; baseline in the same run: the same SFT budget on one
//      random sample per prompt (N = 1: plain self-distillation, no selection)
//   5. JSON lines and an SVG plot of greedy accuracy and greedy sequence probability vs SFT step
//
// Reference: Huang et al., "Self-Improvement in Language Models: The Sharpening Mechanism", ICLR 2025,
// arXiv 2412.01951.
#include <chrono>
#include <cmath>
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
#include <kaizen/loop/sharpening.hpp>
#include <kaizen/tasks.hpp>
#include <common/tiny_setup.hpp>

namespace {

struct Options {
  std::string out_dir = "out/sharpening";
  int samples = 8;
  bool length_normalise = false;
  int train_prompts = 1024;
  int sft_steps = 100;     // longer or faster SFT on self-selected samples over-fits (see docs/sharpening.md)
  int sft_batch = 32;
  double sft_lr = 3e-4;
  int eval_every = 25;
  double warm_start_target = 0.3;
  int warm_start_steps = 4000;
  int eval_prompts = 200;
  int eval_k = 4;
  int threads = 1;
  std::uint64_t seed = 1;
};

struct Stage {
  double greedy_accuracy = 0.0;
  double greedy_self_loglik = 0.0;  ///< mean log π(ŷ|x) of the greedy answer under the model itself
  double greedy_base_loglik = 0.0;  ///< ... under the base (warm-started) model
  double sampled_pass_at_1 = 0.0;
  [[nodiscard]] nlohmann::json to_json() const {
    return {{"greedy_accuracy", greedy_accuracy}, {"greedy_self_loglik", greedy_self_loglik},
            {"greedy_base_loglik", greedy_base_loglik}, {"sampled_pass_at_1", sampled_pass_at_1}};
  }
};

int run(const Options& o) {
  using namespace kaizen;
  const auto t0 = tiny::begin_run(o.out_dir, o.threads, o.seed);
  const tasks::Arithmetic task({.min_digits = 2, .max_digits = 2, .operators = "+"});
  const tasks::CharTokenizer tokenizer;
  const tasks::HeldOutSplit<tasks::Arithmetic> split(task, static_cast<std::size_t>(o.eval_prompts), o.seed + 1000);
  const std::vector<Prompt> held_out = tiny::held_out_prompts(split, tokenizer);
  const lm::LlamaConfig config = tiny::llama_config(tokenizer, {});
  lm::LlamaModel model(config), base(config);
  lm::LlamaSampler sampler(model, tokenizer);
  tasks::TaskVerifier<tasks::Arithmetic, tasks::CharTokenizer> verifier{&task, &tokenizer};
  SamplingParams sampling;
  sampling.max_new_tokens = 12;
  sampling.stop_tokens = {tokenizer.eos_id()};
  const CollateOptions collate{.pad_id = tokenizer.pad_id(), .vocab_size = config.vocab_size,
                               .max_length = config.max_position_embeddings};
  std::ofstream file(std::filesystem::path(o.out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(file);

  const std::int64_t warm_steps = tiny::warm_start(
      model, sampler, verifier, split, tokenizer, sampling, collate, o.warm_start_target, o.warm_start_steps, 3e-3,
      o.seed, [&](const tasks::Problem& p, Rng&) { return tasks::answer_tokens(p, tokenizer); }, jsonl);
  const kaizen::loop::ParameterSnapshot warm = kaizen::loop::take_snapshot(model);
  kaizen::loop::restore_snapshot(base, warm);

  auto measure = [&]() {
    Stage s;
    SamplingParams greedy = sampling;
    greedy.top_k = 1;
    greedy.seed = 1;
    const std::vector<Completion> g = sampler.sample(std::span<const Prompt>(held_out), greedy);
    for (std::size_t i = 0; i < g.size(); ++i) s.greedy_accuracy += verifier(held_out[i], g[i]) ? 1.0 : 0.0;
    s.greedy_accuracy /= static_cast<double>(g.size());
    const auto self = loop::sequence_loglik(model, std::span<const Prompt>(held_out), std::span<const Completion>(g),
                                            false, collate);
    const auto under_base = loop::sequence_loglik(base, std::span<const Prompt>(held_out),
                                                  std::span<const Completion>(g), false, collate);
    for (std::size_t i = 0; i < g.size(); ++i) {
      s.greedy_self_loglik += self[i] / static_cast<double>(g.size());
      s.greedy_base_loglik += under_base[i] / static_cast<double>(g.size());
    }
    SamplingParams params = sampling;
    params.seed = o.seed * 7919;
    s.sampled_pass_at_1 = tiny::measure(sampler, verifier, std::span<const Prompt>(held_out), o.eval_k, params).pass_at_1;
    return s;
  };
  const Stage before = measure();
  jsonl({{"event", "warm_start"}, {"sft_steps", warm_steps}, {"held_out", before.to_json()}});
  std::fprintf(stderr, "warm start: %lld SFT steps; greedy accuracy %.3f, greedy self-log-likelihood %.3f\n",
               static_cast<long long>(warm_steps), before.greedy_accuracy, before.greedy_self_loglik);

  Rng prompt_rng(o.seed + 5000);
  std::vector<Prompt> train;
  for (int i = 0; i < o.train_prompts; ++i) train.push_back(tasks::make_prompt(split.train(-1, prompt_rng), tokenizer));

  struct Curve {
    std::vector<double> x, accuracy, probability;
  };
  Curve sharpen_curve, control_curve;
  Stage after_sharpen, after_control;
  loop::SftSharpeningResult sharpen_result, control_result;
  for (const bool sharpen : {true, false}) {
    kaizen::loop::restore_snapshot(model, warm);
    torch::manual_seed(o.seed + 7);
    Curve& curve = sharpen ? sharpen_curve : control_curve;
    curve.x.push_back(0.0);
    curve.accuracy.push_back(before.greedy_accuracy);
    curve.probability.push_back(std::exp(before.greedy_self_loglik));
    const char* name = sharpen ? "sft_sharpening" : "self_distillation";
    loop::SftSharpeningConfig cfg{.samples_per_prompt = sharpen ? o.samples : 1,
                                  .length_normalise = o.length_normalise,
                                  .sampling = sampling,
                                  .sft = {.steps = o.sft_steps, .batch_size = o.sft_batch, .learning_rate = o.sft_lr,
                                          .seed = o.seed + 11, .collate = collate}};
    cfg.sampling.seed = o.seed + 13;
    cfg.sft.stop_check_every = o.eval_every;
    cfg.sft.stop_when = [&](std::int64_t done) {
      const Stage s = measure();
      curve.x.push_back(static_cast<double>(done));
      curve.accuracy.push_back(s.greedy_accuracy);
      curve.probability.push_back(std::exp(s.greedy_self_loglik));
      jsonl({{"event", "eval"}, {"run", name}, {"sft_step", done}, {"held_out", s.to_json()}});
      return false;
    };
    auto log = [&](const nlohmann::json& m) {
      nlohmann::json r = m;
      r["run"] = name;
      jsonl(r);
    };
    (sharpen ? sharpen_result : control_result) = loop::sft_sharpening(model, sampler, std::span<const Prompt>(train), cfg, log);
    (sharpen ? after_sharpen : after_control) = measure();
  }
  const double seconds = tiny::seconds_since(t0);
  jsonl({{"event", "summary"}, {"before", before.to_json()}, {"sft_sharpening", after_sharpen.to_json()},
         {"self_distillation", after_control.to_json()},
         {"selected_loglik", sharpen_result.mean_selected_loglik}, {"sample_loglik", sharpen_result.mean_sample_loglik},
         {"seconds", seconds}});

  plot::LinePlot chart({.title = "SFT-sharpening (best of " + std::to_string(o.samples) +
                                     " by self-likelihood) vs self-distillation (1 sample)",
                        .x_label = "SFT step", .y_label = "held-out, greedy answer", .width = 960, .y_min = 0.0,
                        .y_max = 1.0});
  chart.add_series("sharpening: accuracy", sharpen_curve.x, sharpen_curve.accuracy);
  chart.add_series("sharpening: sequence probability", sharpen_curve.x, sharpen_curve.probability);
  chart.add_series("self-distillation: accuracy", control_curve.x, control_curve.accuracy);
  chart.add_series("self-distillation: sequence probability", control_curve.x, control_curve.probability);
  const std::string plot_path = (std::filesystem::path(o.out_dir) / "sharpening.svg").string();
  chart.write(plot_path);

  std::printf("selection: mean base log-likelihood of the kept sample %.3f vs %.3f over all %d samples\n",
              sharpen_result.mean_selected_loglik, sharpen_result.mean_sample_loglik, o.samples);
  std::printf("%-20s %16s %18s %18s %16s\n", "held-out", "greedy accuracy", "greedy self-loglik", "greedy base-loglik",
              "sampled pass@1");
  auto row = [](const char* name, const Stage& s) {
    std::printf("%-20s %16.3f %18.3f %18.3f %16.3f\n", name, s.greedy_accuracy, s.greedy_self_loglik,
                s.greedy_base_loglik, s.sampled_pass_at_1);
  };
  row("warm start (base)", before);
  row("SFT-sharpening", after_sharpen);
  row("self-distillation", after_control);
  std::printf("sharpening: greedy self-log-likelihood %+.3f, greedy accuracy %+.1f points (self-distillation: %+.3f, %+.1f)\n",
              after_sharpen.greedy_self_loglik - before.greedy_self_loglik,
              100.0 * (after_sharpen.greedy_accuracy - before.greedy_accuracy),
              after_control.greedy_self_loglik - before.greedy_self_loglik,
              100.0 * (after_control.greedy_accuracy - before.greedy_accuracy));
  tiny::print_outputs(seconds, o.out_dir, plot_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"kaizen SFT-sharpening: fine-tune on the model's own most likely of N samples"};
  app.add_option("--out", o.out_dir, "output folder");
  app.add_option("--samples", o.samples, "N, samples per prompt");
  app.add_flag("--length-normalise", o.length_normalise, "select by mean token log-likelihood instead of the sum");
  app.add_option("--train-prompts", o.train_prompts, "training prompts");
  app.add_option("--sft-steps", o.sft_steps, "SFT steps on the selected samples");
  app.add_option("--sft-batch", o.sft_batch, "SFT batch size");
  app.add_option("--sft-lr", o.sft_lr, "SFT learning rate");
  app.add_option("--eval-every", o.eval_every, "evaluate every so many SFT steps");
  app.add_option("--warm-start-target", o.warm_start_target, "probe pass@1 that ends the warm start");
  app.add_option("--warm-start-steps", o.warm_start_steps, "most warm-start steps");
  app.add_option("--eval-prompts", o.eval_prompts, "held-out prompts");
  app.add_option("--eval-k", o.eval_k, "samples per held-out prompt (sampled pass@1)");
  app.add_option("--threads", o.threads, "CPU threads for LibTorch");
  app.add_option("--seed", o.seed, "seed");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::cerr << "sharpening: " << e.what() << "\n";
    return 1;
  }
}
