// OpenAICompletionsSampler and HttpClient against tests/remote/fake_openai_server.py (standard-library Python):
// request fields, answers parsed into completions, concurrency, retries, a killed server, malformed answers.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/sampler.hpp>
#include <kaizen/remote/openai_sampler.hpp>

#include "server_process.hpp"

namespace remote = kaizen::remote;
using kaizen::Completion;
using kaizen::Prompt;
using kaizen::SamplingParams;
using kaizen::TokenId;

static_assert(kaizen::Sampler<remote::OpenAICompletionsSampler>);

namespace {

// A fake server in `mode`, or nullopt after KAIZEN_SKIP when Python is missing.
struct FakeServer {
  std::unique_ptr<remote_test::ServerProcess> process;
  int port = 0;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

std::optional<FakeServer> start_fake(const std::string& mode) {
  const std::string python = KAIZEN_REMOTE_PYTHON;
  if (python.empty() || !std::filesystem::exists(python)) {
    std::cout << "KAIZEN_SKIP: no Python interpreter (KAIZEN_PYTHON) for the fake server\n";
    return std::nullopt;
  }
  const auto dir = std::filesystem::temp_directory_path();
  const std::string port_file = (dir / ("kaizen_fake_" + mode + "_" + std::to_string(::getpid()) + ".port")).string();
  std::filesystem::remove(port_file);
  FakeServer s;
  s.process = std::make_unique<remote_test::ServerProcess>(
      std::vector<std::string>{python, KAIZEN_REMOTE_FAKE_SERVER, mode, port_file}, port_file + ".log");
  REQUIRE(s.process->wait_until([&] { return remote_test::read_port(port_file).has_value(); }, std::chrono::seconds(30)));
  s.port = *remote_test::read_port(port_file);
  REQUIRE(s.process->wait_until([&] { return remote_test::listening(s.port); }, std::chrono::seconds(30)));
  std::filesystem::remove(port_file);
  return s;
}

std::vector<Prompt> id_prompts(int n) {
  std::vector<Prompt> out;
  for (int i = 0; i < n; ++i) out.push_back(Prompt{.tokens = {TokenId(i + 1), TokenId(2 * i + 3)}});
  return out;
}

remote::OpenAIOptions fast_options(const std::string& url) {
  remote::OpenAIOptions o;
  o.base_url = url;
  o.http = {.max_in_flight = 4, .connect_timeout_s = 2, .request_timeout_s = 20, .max_attempts = 3,
            .backoff_initial_s = 0.05, .backoff_max_s = 0.2, .retry_budget_s = 5};
  return o;
}

// The fake server's rule for token t of a prompt summing to `base` under `seed`.
TokenId fake_token(std::int64_t base, std::int64_t seed, int t) { return (base + seed + t) % 97; }

}  // namespace

TEST_CASE("remote: request body carries the sampling parameters", "[remote]") {
  remote::OpenAIOptions o;
  o.model = "m";
  o.extra = {{"repeat_penalty", 1.0}, {"n", 1}};
  const remote::OpenAICompletionsSampler s(o);
  const Prompt p{.tokens = {5, 6, 7}, .text = "hi"};
  const auto b = s.request_body(p, {.temperature = 0.5, .top_k = 0, .top_p = 0.9, .min_p = 0.1, .max_new_tokens = 12, .seed = 3}, 4);
  CHECK(b.at("prompt") == nlohmann::json({5, 6, 7}));
  CHECK(b.at("model") == "m");
  CHECK(b.at("max_tokens") == 12);
  CHECK(b.at("temperature") == 0.5);
  CHECK(b.at("top_p") == 0.9);
  CHECK(b.at("top_k") == 0);
  CHECK(b.at("min_p") == 0.1);
  CHECK(b.at("logprobs") == 0);
  CHECK(b.at("repeat_penalty") == 1.0);
  CHECK(b.at("seed") == remote::OpenAICompletionsSampler::request_seed(3, 4));
  CHECK(remote::OpenAICompletionsSampler::request_seed(3, 4) != remote::OpenAICompletionsSampler::request_seed(3, 5));
  CHECK(remote::OpenAICompletionsSampler::request_seed(3, 4) != remote::OpenAICompletionsSampler::request_seed(4, 4));
  CHECK(s.endpoint() == "http://127.0.0.1:8000/v1/completions");

  const remote::OpenAICompletionsSampler v(remote::OpenAIOptions::vllm("http://h:1/", "x"));
  const auto bv = v.request_body(p, {.top_k = 0}, 0);
  CHECK(bv.at("top_k") == -1);
  CHECK(bv.at("return_tokens_as_token_ids") == true);
  CHECK(v.endpoint() == "http://h:1/v1/completions");
  const remote::OpenAICompletionsSampler l(remote::OpenAIOptions::llama_cpp("http://h:2"));
  CHECK(l.request_body(p, {}, 0).at("prompt") == "hi");
  CHECK(l.request_body(p, {}, 0).at("repeat_penalty") == 1.0);
  REQUIRE_THROWS_WITH(l.request_body(Prompt{.tokens = {1}}, {}, 2), Catch::Contains("prompt 2 has no text"));
  REQUIRE_THROWS_WITH(s.request_body(Prompt{.text = "x"}, {}, 1), Catch::Contains("prompt 1 has no tokens"));
}

TEST_CASE("remote: bad options and a transform raw log-probs cannot describe are refused", "[remote]") {
  REQUIRE_THROWS_WITH(remote::HttpClient({.max_in_flight = 0}), Catch::Contains("max_in_flight must be >= 1, got 0"));
  REQUIRE_THROWS_WITH(remote::HttpClient({.max_attempts = 0}), Catch::Contains("max_attempts must be >= 1"));
  REQUIRE_THROWS_WITH(remote::HttpClient({.backoff_initial_s = 2, .backoff_max_s = 1}),
                      Catch::Contains("backoff_max_s (1) must be >= backoff_initial_s (2)"));
  remote::OpenAIOptions bad;
  bad.extra = nlohmann::json::array();
  REQUIRE_THROWS_WITH(remote::OpenAICompletionsSampler(bad), Catch::Contains("extra must be a JSON object"));
  remote::OpenAICompletionsSampler s(fast_options("http://127.0.0.1:9"));
  const auto prompts = id_prompts(1);
  REQUIRE_THROWS_WITH(s.sample(prompts, {.temperature = 0.7}),
                      Catch::Contains("raw model distribution") && Catch::Contains("temperature 0.7"));
  REQUIRE_THROWS_WITH(s.sample(prompts, {.top_k = 5}), Catch::Contains("top_k 5"));
  REQUIRE_THROWS_WITH(s.sample(prompts, {.max_new_tokens = 0}), Catch::Contains("max_new_tokens must be > 0"));
}

TEST_CASE("remote: answers become completions with token ids and log-probs", "[remote]") {
  auto server = start_fake("ok");
  if (!server) return;
  remote::OpenAICompletionsSampler s(fast_options(server->url()));
  const auto prompts = id_prompts(6);
  const SamplingParams params{.max_new_tokens = 5, .seed = 11};
  const std::vector<Completion> got = s.sample(prompts, params);
  REQUIRE(got.size() == 6);
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("prompt " << i);
    const std::int64_t base = prompts[i].tokens[0] + prompts[i].tokens[1];
    const std::int64_t seed = remote::OpenAICompletionsSampler::request_seed(11, i);
    REQUIRE(got[i].tokens.size() == 5);
    REQUIRE(got[i].logprobs.size() == 5);
    for (int t = 0; t < 5; ++t) {
      CHECK(got[i].tokens[t] == fake_token(base, seed, t));
      CHECK(got[i].logprobs[t] == Approx(-0.125 * (t + 1)));
    }
    CHECK(got[i].finish == kaizen::FinishReason::length);
    std::string first_piece = "<";  // built by append: GCC 12's -Wrestrict misfires on "lit" + std::string&& at -O3
    first_piece.append(std::to_string(fake_token(base, seed, 0))).append(">");
    CHECK(got[i].text.starts_with(first_piece));
  }
  // Same seed, same completions; a stop token cuts the completion after it.
  CHECK(s.sample(prompts, params)[3].tokens == got[3].tokens);
  SamplingParams stop = params;
  stop.stop_tokens = {got[0].tokens[2]};
  const auto cut = s.sample(std::span(prompts).first(1), stop);
  CHECK(cut[0].tokens == std::vector<TokenId>(got[0].tokens.begin(), got[0].tokens.begin() + 3));
  CHECK(cut[0].logprobs.size() == 3);
  CHECK(cut[0].finish == kaizen::FinishReason::stop);
}

TEST_CASE("remote: requests are in flight together, up to max_in_flight", "[remote]") {
  auto server = start_fake("ok");
  if (!server) return;
  std::vector<remote::HttpRequest> requests(8, remote::HttpRequest{.url = server->url() + "/v1/completions",
                                                                   .body = R"({"prompt": [1], "max_tokens": 1})"});
  const auto max_open = [&](int in_flight) {
    remote::HttpClient http({.max_in_flight = in_flight});
    int most = 0;
    for (const auto& r : http.post_all(requests)) {
      REQUIRE(r.status == 200);
      most = std::max(most, nlohmann::json::parse(r.body).at("kaizen_max_open").get<int>());
    }
    return most;
  };
  CHECK(max_open(1) == 1);
  // The server holds each request 0.2 s; 8 requests with 8 in flight overlap (the count is cumulative).
  CHECK(max_open(8) >= 4);
}

TEST_CASE("remote: 503 answers are retried with backoff", "[remote]") {
  auto server = start_fake("flaky");
  if (!server) return;
  remote::HttpClient http({.max_attempts = 4, .backoff_initial_s = 0.05});
  const auto r = http.post({.url = server->url() + "/v1/completions", .body = R"({"prompt": [1], "max_tokens": 2})"});
  CHECK(r.status == 200);
  CHECK(r.attempts == 3);
}

TEST_CASE("remote: a killed server gives an error naming the URL and the attempts, never a hang", "[remote]") {
  auto server = start_fake("ok");
  if (!server) return;
  remote::OpenAICompletionsSampler s(fast_options(server->url()));
  const auto prompts = id_prompts(3);
  REQUIRE(s.sample(prompts, {.max_new_tokens = 2}).size() == 3);
  server->process->stop();
  const auto start = std::chrono::steady_clock::now();
  REQUIRE_THROWS_WITH(s.sample(prompts, {.max_new_tokens = 2}),
                      Catch::Contains("POST " + server->url() + "/v1/completions failed after 3 attempts") &&
                          Catch::Contains("max_attempts reached") && Catch::Contains("Couldn't connect"));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO("took " << took << " s");
  CHECK(took < 30.0);  // backoff 0.05 + 0.1 s; a hang would hit ctest's timeout instead

  // The retry budget ends the call before max_attempts.
  auto o = fast_options(server->url());
  o.http.max_attempts = 1000;
  o.http.retry_budget_s = 0.5;
  remote::OpenAICompletionsSampler budget(o);
  REQUIRE_THROWS_WITH(budget.sample(prompts, {.max_new_tokens = 2}), Catch::Contains("retry budget of 0.5"));
}

TEST_CASE("remote: malformed answers are errors naming the field", "[remote]") {
  const auto prompts = id_prompts(2);
  SECTION("not JSON") {
    auto server = start_fake("malformed");
    if (!server) return;
    remote::OpenAICompletionsSampler s(fast_options(server->url()));
    REQUIRE_THROWS_WITH(s.sample(prompts, {.max_new_tokens = 2}),
                        Catch::Contains("the answer to prompt 0 from " + server->url() + "/v1/completions is not JSON"));
  }
  SECTION("a missing field") {
    auto server = start_fake("missing");
    if (!server) return;
    remote::OpenAICompletionsSampler s(fast_options(server->url()));
    REQUIRE_THROWS_WITH(s.sample(prompts, {.max_new_tokens = 2}),
                        Catch::Contains("lacks the field choices[0].logprobs.token_logprobs"));
  }
}

TEST_CASE("remote: parse_completion checks every field", "[remote]") {
  const remote::OpenAICompletionsSampler s(remote::OpenAIOptions{});
  const SamplingParams p{.max_new_tokens = 4};
  const auto parse = [&](const std::string& body) { return s.parse_completion(body, 7, p); };
  REQUIRE_THROWS_WITH(parse(R"({"object": "error"})"), Catch::Contains("prompt 7") && Catch::Contains("lacks the field choices"));
  REQUIRE_THROWS_WITH(parse(R"({"choices": []})"), Catch::Contains("the field choices is not a non-empty array"));
  REQUIRE_THROWS_WITH(parse(R"({"choices": [{"text": "a", "finish_reason": "stop"}]})"),
                      Catch::Contains("lacks the field choices[0].logprobs"));
  REQUIRE_THROWS_WITH(parse(R"({"choices": [{"logprobs": {"tokens": ["token_id:1"], "token_logprobs": [-1]}}]})"),
                      Catch::Contains("lacks the field choices[0].finish_reason"));
  REQUIRE_THROWS_WITH(
      parse(R"({"choices": [{"text": "", "finish_reason": "stop", "logprobs": {"tokens": ["token_id:1"], "token_logprobs": ["x"]}}]})"),
      Catch::Contains("choices[0].logprobs.token_logprobs[0] is not a number"));
  REQUIRE_THROWS_WITH(
      parse(R"({"choices": [{"text": "", "finish_reason": "stop", "logprobs": {"tokens": ["token_id:1", "token_id:2"], "token_logprobs": [-1]}}]})"),
      Catch::Contains("tokens has 2 entries but token_logprobs has 1"));
  REQUIRE_THROWS_WITH(
      parse(R"({"choices": [{"text": "", "finish_reason": "stop", "logprobs": {"tokens": ["token_id:x1"], "token_logprobs": [-1]}}]})"),
      Catch::Contains("'token_id:x1' is not token_id:<digits>"));
  REQUIRE_THROWS_WITH(
      parse(R"({"choices": [{"text": "ab", "finish_reason": "stop", "logprobs": {"tokens": ["ab"], "token_logprobs": [-1]}}]})"),
      Catch::Contains("as the text 'ab' and no TokenResolver was given"));
  const auto ok = parse(
      R"({"choices": [{"text": "xy", "finish_reason": "stop", "logprobs": {"tokens": ["token_id:4", "token_id:9"], "token_logprobs": [-1.5, -0.25]}}]})");
  CHECK(ok.tokens == std::vector<TokenId>{4, 9});
  CHECK(ok.logprobs == std::vector<float>{-1.5F, -0.25F});
  CHECK(ok.finish == kaizen::FinishReason::stop);
  CHECK(ok.text == "xy");
}

TEST_CASE("remote: PieceTable maps token texts back to ids, refusing ambiguous ones", "[remote]") {
  struct Toy {
    std::vector<std::string> pieces{"a", "b", "ab", "", "b", " c"};
    std::string decode(std::span<const TokenId> ids) const {
      std::string s;
      for (TokenId id : ids) s += pieces[static_cast<std::size_t>(id)];
      return s;
    }
    std::int64_t vocab_size() const { return static_cast<std::int64_t>(pieces.size()); }
  };
  const auto table = remote::PieceTable::from(Toy{});
  CHECK(table("a") == 0);
  CHECK(table("ab") == 2);
  CHECK(table(" c") == 5);
  CHECK(table("b") == -1);  // ids 1 and 4
  CHECK(table("zz") == -1);
  const remote::OpenAICompletionsSampler s(remote::OpenAIOptions{}, table);
  const auto c = s.parse_completion(
      R"({"choices": [{"text": "ab c", "finish_reason": "length", "logprobs": {"tokens": ["ab", " c"], "token_logprobs": [-1, -2]}}]})", 0,
      {.max_new_tokens = 2});
  CHECK(c.tokens == std::vector<TokenId>{2, 5});
  CHECK(c.finish == kaizen::FinishReason::length);
  REQUIRE_THROWS_WITH(
      s.parse_completion(R"({"choices": [{"text": "b", "finish_reason": "stop", "logprobs": {"tokens": ["b"], "token_logprobs": [-1]}}]})", 0,
                         {.max_new_tokens = 2}),
      Catch::Contains("the text 'b', to a single token id (unknown or ambiguous"));
}
