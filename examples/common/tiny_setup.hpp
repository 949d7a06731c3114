// tiny_setup.hpp - what the examples on the embedded tasks share: the start and the closing lines of a run,
// the character tokenizer's held-out prompts, the tiny Llama, the supervised warm start that stops once a probe
// of training problems reaches a pass@1 target (several runs start from one warm start through
// loop::take_snapshot / restore_snapshot), and held-out measurements (pass@1, length of the correct answers).
#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/consistency/extract.hpp>
#include <kaizen/loop.hpp>
#include <kaizen/tasks.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>

namespace tiny {

/// Starts an example's run: LibTorch's thread count and seed, the output folder. Returns the start time.
inline std::chrono::steady_clock::time_point begin_run(const std::string& out_dir, int threads, std::uint64_t seed) {
  torch::set_num_threads(threads);
  torch::manual_seed(seed);
  std::filesystem::create_directories(out_dir);
  return std::chrono::steady_clock::now();
}

[[nodiscard]] inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// The lines every example ends with: its run time and where its metrics and plot are.
inline void print_outputs(double seconds, const std::string& out_dir, const std::string& plot_path) {
  std::printf("run time %.1f s\nmetrics: %s\nplot:    %s\n", seconds,
              (std::filesystem::path(out_dir) / "metrics.jsonl").string().c_str(), plot_path.c_str());
}

/// The split's held-out problems as prompts.
template <class Task>
[[nodiscard]] std::vector<kaizen::Prompt> held_out_prompts(const kaizen::tasks::HeldOutSplit<Task>& split,
                                                           const kaizen::tasks::CharTokenizer& tokenizer) {
  std::vector<kaizen::Prompt> out;
  for (const auto& p : split.held_out()) out.push_back(kaizen::tasks::make_prompt(p, tokenizer));
  return out;
}

struct ModelOptions {
  int hidden_size = 64;
  int layers = 2;
  int heads = 4;
  int kv_heads = 2;
  int context = 32;
};

[[nodiscard]] inline kaizen::lm::LlamaConfig llama_config(const kaizen::tasks::CharTokenizer& tokenizer,
                                                         const ModelOptions& o) {
  kaizen::lm::LlamaConfig config;
  config.vocab_size = tokenizer.vocab_size();
  config.hidden_size = o.hidden_size;
  config.intermediate_size = (o.hidden_size * 8 / 3 + 15) / 16 * 16;
  config.num_hidden_layers = o.layers;
  config.num_attention_heads = o.heads;
  config.num_key_value_heads = o.kv_heads;
  config.max_position_embeddings = o.context;
  return config;
}

/// Supervised warm start on `target(problem)` completions until a probe of 128 training problems
/// reaches `target_pass` (checked every 100 steps) or `max_steps`. Returns the steps run.
template <class Task, class Verifier>
std::int64_t warm_start(kaizen::lm::LlamaModel& model, kaizen::lm::LlamaSampler& sampler, Verifier& verifier,
                        const kaizen::tasks::HeldOutSplit<Task>& split, const kaizen::tasks::CharTokenizer& tokenizer,
                        const kaizen::SamplingParams& sampling, const kaizen::CollateOptions& collate,
                        double target_pass, std::int64_t max_steps, double lr, std::uint64_t seed,
                        const std::function<std::vector<kaizen::TokenId>(const kaizen::tasks::Problem&, kaizen::Rng&)>& target,
                        const kaizen::loop::MetricsCallback& log) {
  using namespace kaizen;
  Rng probe_rng(seed + 2000);
  std::vector<Prompt> probe;
  for (int i = 0; i < 128; ++i) probe.push_back(tasks::make_prompt(split.train(-1, probe_rng), tokenizer));
  auto examples = [&](Rng& rng) {
    const tasks::Problem p = split.train(-1, rng);
    Rollout r;
    r.prompt = tokenizer.encode(p.prompt);
    r.completion.tokens = target(p, rng);
    return r;
  };
  loop::SftConfig sft{.steps = max_steps, .batch_size = 32, .learning_rate = lr, .seed = seed, .collate = collate};
  sft.stop_check_every = 100;
  sft.stop_when = [&](std::int64_t) {
    SamplingParams params = sampling;
    params.seed = seed + 3000;
    const std::vector<Completion> c = sampler.sample(std::span<const Prompt>(probe), params);
    double pass = 0.0;
    for (std::size_t i = 0; i < c.size(); ++i) pass += verifier(probe[i], c[i]) ? 1.0 : 0.0;
    pass /= static_cast<double>(c.size());
    if (log) log({{"event", "warm_start_probe"}, {"pass_at_1", pass}});
    return pass >= target_pass;
  };
  std::int64_t done = 0;
  loop::supervised_finetune(model, examples, sft, [&](const nlohmann::json& m) { done = m["step"].get<std::int64_t>(); });
  return done;
}

/// Held-out measurement over k samples per prompt: pass@1, mean completion length (tokens) of all
/// samples and of the correct ones.
struct HeldOut {
  double pass_at_1 = 0.0;
  double mean_length = 0.0;
  double mean_correct_length = 0.0;
  std::int64_t correct = 0;
  [[nodiscard]] nlohmann::json to_json() const {
    return {{"pass_at_1", pass_at_1}, {"mean_length", mean_length}, {"mean_correct_length", mean_correct_length},
            {"correct", correct}};
  }
};

template <class Verifier>
[[nodiscard]] HeldOut measure(kaizen::lm::LlamaSampler& sampler, Verifier& verifier,
                              std::span<const kaizen::Prompt> prompts, int k, kaizen::SamplingParams params) {
  using namespace kaizen;
  std::vector<Prompt> repeated;
  for (const Prompt& p : prompts)
    for (int i = 0; i < k; ++i) repeated.push_back(p);
  const std::vector<Completion> c = sampler.sample(std::span<const Prompt>(repeated), params);
  HeldOut out;
  double len = 0.0, correct_len = 0.0;
  for (std::size_t i = 0; i < c.size(); ++i) {
    const auto n = static_cast<double>(c[i].tokens.size());
    len += n;
    if (verifier(repeated[i], c[i])) {
      ++out.correct;
      correct_len += n;
    }
  }
  out.pass_at_1 = static_cast<double>(out.correct) / static_cast<double>(c.size());
  out.mean_length = len / static_cast<double>(c.size());
  out.mean_correct_length = out.correct > 0 ? correct_len / static_cast<double>(out.correct) : 0.0;
  return out;
}

/// Mean and sample standard deviation.
[[nodiscard]] inline std::pair<double, double> mean_sd(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m += x / static_cast<double>(v.size());
  double s = 0.0;
  for (double x : v) s += (x - m) * (x - m);
  return {m, v.size() > 1 ? std::sqrt(s / static_cast<double>(v.size() - 1)) : 0.0};
}

}  // namespace tiny
