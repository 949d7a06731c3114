// Throughput of the two halves of a GRPO step on CPU, for the demo's model (Llama, hidden 64, 2 layers,
// 4 heads, 2 KV heads, CharTokenizer vocabulary, context 32) and batch (16 two-digit additions x 8
// samples, 12 new tokens), each against a baseline measured in the same run:
//   sampler  LlamaSampler (KV cache, inverse-CDF draws of the transformed distribution, per-token
//            log-probs)  vs  the same generation re-running the whole sequence through the model at
//            every step, no cache, torch::multinomial draws. Ratio = the KV cache's speed-up.
//   trainer  lm::policy_logprobs + policy_gradient::policy_loss (the demo's objective: token ratio,
//            symmetric clip, seq-mean-token-mean) + backward + gradient clip + AdamW step  vs  a plain
//            cross-entropy step over the same tokens (logits + cross_entropy + backward + clip + AdamW).
// Tokens counted: generated tokens (sampler), completion tokens trained on (trainer). No stop token,
// so every row generates exactly 12 tokens and the work does not depend on the weights.
// Each at 1 and 2 LibTorch threads (real time). Figures: tokens/s of each side, the ratios
// sampler_kv_cache_speedup_threads<n> and trainer_policy_loss_over_cross_entropy_threads<n>, and each
// kaizen side's 2-thread / 1-thread scaling. Run with --benchmark_min_time=0.5 on shared machines,
// and with OMP_WAIT_POLICY=passive there: LibTorch's OpenMP threads otherwise spin while waiting, and
// when another process holds a core the 2-thread runs become 20-40x slower than the 1-thread ones.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/torch/logit_transform.hpp>
#include <kaizen/torch/policy_logprobs.hpp>

#include <support/figures.hpp>

namespace {

namespace pg = kaizen::policy_gradient;

constexpr std::int64_t kPrompts = 16;
constexpr std::int64_t kGroup = 8;
constexpr std::int64_t kNewTokens = 12;

/// Sets LibTorch's intra-op thread count for one benchmark and restores 1 afterwards.
struct Threads {
  explicit Threads(std::int64_t n) { torch::set_num_threads(static_cast<int>(n)); }
  ~Threads() { torch::set_num_threads(1); }
  Threads(const Threads&) = delete;
  Threads& operator=(const Threads&) = delete;
};

/// The demo's model, prompts and sampling settings.
struct Demo {
  kaizen::tasks::CharTokenizer tokenizer;
  kaizen::lm::LlamaModel model{config(tokenizer)};
  std::vector<kaizen::Prompt> prompts;  // kPrompts x kGroup rows, each prompt repeated kGroup times
  kaizen::SamplingParams params;

  Demo() {
    const kaizen::tasks::Arithmetic task({.min_digits = 2, .max_digits = 2, .operators = "+"});
    kaizen::Rng rng(1);
    for (std::int64_t p = 0; p < kPrompts; ++p) {
      const kaizen::Prompt prompt = kaizen::tasks::make_prompt(task.generate(-1, rng), tokenizer);
      for (std::int64_t i = 0; i < kGroup; ++i) prompts.push_back(prompt);
    }
    params.temperature = 1.0;
    params.max_new_tokens = kNewTokens;
    params.seed = 7;
  }

  static kaizen::lm::LlamaConfig config(const kaizen::tasks::CharTokenizer& tokenizer) {
    torch::manual_seed(0);
    kaizen::lm::LlamaConfig c;
    c.vocab_size = tokenizer.vocab_size();
    c.hidden_size = 64;
    c.intermediate_size = (64 * 8 / 3 + 15) / 16 * 16;  // as examples/grpo_demo
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 32;
    return c;
  }
};

void BM_sampler_kv_cache(benchmark::State& state) {
  const Threads threads(state.range(0));
  Demo demo;
  kaizen::lm::LlamaSampler sampler(demo.model, demo.tokenizer.pad_id());
  std::int64_t tokens = 0;
  for (auto _ : state) {
    const auto completions = sampler.sample(std::span<const kaizen::Prompt>(demo.prompts), demo.params);
    for (const auto& c : completions) tokens += static_cast<std::int64_t>(c.tokens.size());
    ++demo.params.seed;
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}

void BM_sampler_no_cache(benchmark::State& state) {
  const Threads threads(state.range(0));
  Demo demo;
  torch::NoGradGuard no_grad;
  // Every prompt of the 2-digit task has the same length, so the batch needs no padding.
  std::vector<std::int64_t> flat;
  for (const auto& p : demo.prompts) flat.insert(flat.end(), p.tokens.begin(), p.tokens.end());
  const auto B = static_cast<std::int64_t>(demo.prompts.size());
  const torch::Tensor prompt_ids = torch::tensor(flat, torch::kLong).view({B, -1});
  torch::manual_seed(7);
  std::int64_t tokens = 0;
  for (auto _ : state) {
    torch::Tensor ids = prompt_ids;
    for (std::int64_t t = 0; t < kNewTokens; ++t) {
      const std::int64_t T = ids.size(1);
      const torch::Tensor pos = torch::arange(T, torch::kLong).unsqueeze(0).expand({B, T});
      const torch::Tensor hidden = demo.model.forward(ids, pos, torch::ones({B, T}, torch::kBool));
      const torch::Tensor logits = demo.model.project(hidden.select(1, T - 1)) / demo.params.temperature;
      const torch::Tensor next = torch::multinomial(torch::softmax(logits, -1), 1);
      ids = torch::cat({ids, next}, 1);
    }
    benchmark::DoNotOptimize(ids.data_ptr());
    tokens += B * kNewTokens;
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}

/// One sampled batch, collated as the GRPO loop does, with old log-probs and advantages.
struct TrainBatch {
  Demo demo;
  kaizen::TokenBatch batch;
  torch::Tensor old_logprobs, advantages, targets;
  double completion_tokens = 0.0;

  TrainBatch() {
    kaizen::lm::LlamaSampler sampler(demo.model, demo.tokenizer.pad_id());
    const auto completions = sampler.sample(std::span<const kaizen::Prompt>(demo.prompts), demo.params);
    kaizen::Rng rng(3);
    std::vector<double> rewards;
    for (std::size_t i = 0; i < completions.size(); ++i) rewards.push_back(kaizen::uniform01(rng) < 0.3 ? 1.0 : 0.0);
    std::vector<kaizen::Prompt> unique;
    for (std::int64_t p = 0; p < kPrompts; ++p) unique.push_back(demo.prompts[static_cast<std::size_t>(p * kGroup)]);
    batch = kaizen::collate(std::span<const kaizen::Prompt>(unique), std::span<const kaizen::Completion>(completions),
                            std::span<const double>(rewards), kGroup,
                            {.pad_id = demo.tokenizer.pad_id(), .vocab_size = demo.tokenizer.vocab_size(),
                             .max_length = 32});
    {
      torch::NoGradGuard no_grad;
      old_logprobs = kaizen::lm::policy_logprobs(demo.model, batch);
    }
    advantages = pg::group_advantages(batch.rewards.to(torch::kFloat), batch.group_ids);
    // Cross-entropy targets: the next token where it is a completion token, ignored (-100) elsewhere.
    const std::int64_t T = batch.length();
    targets = batch.input_ids.narrow(1, 1, T - 1)
                  .masked_fill(batch.completion_mask.narrow(1, 1, T - 1).logical_not(), -100)
                  .reshape({-1});
    completion_tokens = batch.completion_mask.sum().item<double>();
  }
};

void BM_trainer_policy_loss(benchmark::State& state) {
  const Threads threads(state.range(0));
  TrainBatch tb;
  const pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::NoKl, pg::SeqMeanTokenMean> objective{};
  std::vector<torch::Tensor> params = tb.demo.model.parameters();
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-3));
  for (auto _ : state) {
    const torch::Tensor logprobs = kaizen::lm::policy_logprobs(tb.demo.model, tb.batch);
    const auto out = pg::policy_loss(logprobs, tb.old_logprobs, torch::Tensor(), tb.advantages,
                                     tb.batch.completion_mask, objective);
    optimizer.zero_grad();
    out.loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    optimizer.step();
  }
  state.counters["tokens/s"] = benchmark::Counter(tb.completion_tokens * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

void BM_trainer_cross_entropy(benchmark::State& state) {
  const Threads threads(state.range(0));
  TrainBatch tb;
  std::vector<torch::Tensor> params = tb.demo.model.parameters();
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-3));
  const std::int64_t T = tb.batch.length();
  for (auto _ : state) {
    const torch::Tensor logits = tb.demo.model.logits(tb.batch);
    const torch::Tensor loss = torch::nn::functional::cross_entropy(
        logits.narrow(1, 0, T - 1).reshape({-1, logits.size(2)}), tb.targets,
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    optimizer.step();
  }
  state.counters["tokens/s"] = benchmark::Counter(tb.completion_tokens * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

BENCHMARK(BM_sampler_kv_cache)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_sampler_no_cache)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_trainer_policy_loss)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_trainer_cross_entropy)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  using kaizen::bench::Figures;
  using kaizen::bench::Results;
  return kaizen::bench::run(argc, argv, [](const Results& r, Figures& f) {
    const auto rate = [&](const std::string& bench, const char* threads) {
      return r.counter(bench + "/" + threads + "/real_time", "tokens/s");
    };
    const auto report = [&](const std::string& half, const std::string& ours, const std::string& baseline,
                            const std::string& ratio_name, const std::string& meaning) {
      for (const char* threads : {"1", "2"}) {
        const std::string tag = std::string("_threads") + threads;
        f.figure(ours.substr(3) + "_tokens_per_s" + tag, rate(ours, threads), "tokens/s", half + ", kaizen");
        f.figure(baseline.substr(3) + "_tokens_per_s" + tag, rate(baseline, threads), "tokens/s", half + ", baseline");
        f.ratio(ratio_name + tag, rate(ours, threads) / rate(baseline, threads), meaning);
      }
      f.ratio(ours.substr(3) + "_2threads_over_1thread", rate(ours, "2") / rate(ours, "1"),
              half + ": tokens/s at 2 threads / at 1 thread");
    };
    report("sampler", "BM_sampler_kv_cache", "BM_sampler_no_cache", "sampler_kv_cache_speedup",
           "LlamaSampler with KV cache / full re-forward without cache, tokens/s (the cache's speed-up)");
    report("trainer", "BM_trainer_policy_loss", "BM_trainer_cross_entropy", "trainer_policy_loss_over_cross_entropy",
           "policy_logprobs + policy_loss step / plain cross-entropy step over the same tokens, tokens/s");
  });
}
