// kaizen/remote/openai_sampler.hpp - a kaizen::Sampler that draws completions from an inference server's
// OpenAI-compatible completions endpoint (POST <base_url>/v1/completions: vLLM, SGLang, llama.cpp's
// server, llama-cpp-python's server), with per-token log-probs, many requests in flight and retries
// (remote/http.hpp). Loops take it wherever they take a Sampler.
//
// Rules:
//   request    one request per prompt, all sent concurrently (HttpOptions::max_in_flight at once):
//                {"prompt": <ids or text>, "max_tokens": max_new_tokens, "temperature": t, "top_p": p,
//                 "top_k": k (top_k_off when 0), "min_p": m, "seed": s_i, "logprobs": 0, "n": 1,
//                 "stream": false} merged with OpenAIOptions::extra (extra wins), plus "model" when set.
//              s_i = splitmix64(params.seed + splitmix64(i)) mod 2^31 for prompt i, so repeats of one
//              prompt (a GRPO group) draw differently and the same seed draws the same again (when the
//              server's sampling is deterministic given its seed).
//   prompt     PromptFormat::token_ids sends Prompt::tokens (vLLM, SGLang); PromptFormat::text sends
//              Prompt::text (llama-cpp-python accepts only text): the server tokenises it, so the
//              tokens it conditions on are its own, not necessarily Prompt::tokens.
//   answer     choices[0].logprobs.tokens[t] (the token's text, or "token_id:<id>" from vLLM with
//              return_tokens_as_token_ids) and choices[0].logprobs.token_logprobs[t] give token t and its
//              log-prob; choices[0].finish_reason "stop" -> FinishReason::stop, "length" -> length,
//              anything else -> abort; choices[0].text -> Completion::text.
//   token ids  "token_id:<n>" is parsed; any other token text goes to the TokenResolver (PieceTable maps
//              each token's decoded text back to its id). No resolver, or a text it does not know, is a
//              kaizen::Error naming the token text.
//   stop       the server stops at its model's end-of-generation token, which OpenAI-style servers leave
//              out of `tokens` (finish "stop" without the stop token: no log-prob is returned for it).
//              SamplingParams::stop_tokens are applied here: the completion is cut after the first one
//              (kept, FinishReason::stop).
//   log-probs  OpenAI-style servers return log-probs of the model's raw distribution (llama.cpp; vLLM by
//              default). The Sampler contract wants them under the sampling transform, which is the same
//              only at temperature 1 without top-k / top-p / min-p. With ServerLogprobs::raw, any other
//              transform is refused (kaizen::Error) rather than returning log-probs that silently differ;
//              ServerLogprobs::processed declares the server returns transformed ones (vLLM
//              --logprobs-mode processed_logprobs).
//   errors     the server unreachable after the retries: kaizen::Error from HttpClient naming the URL and
//              the attempts. An HTTP status other than 200, a body that is not JSON, or a missing / mistyped
//              field: kaizen::Error naming the prompt index and the field path (e.g.
//              "choices[0].logprobs.token_logprobs").
//
// Usage:
//   auto tok = kaizen::tokenizers::tokenizer_from_gguf(file);
//   kaizen::remote::OpenAICompletionsSampler sampler(kaizen::remote::OpenAIOptions::llama_cpp("http://127.0.0.1:8080"),
//                                                    kaizen::remote::PieceTable::from(tok));
//   std::vector<kaizen::Completion> c = sampler.sample(prompts, {.temperature = 1.0, .max_new_tokens = 64});
//
// References: OpenAI's legacy Completions API (request fields, `logprobs` object with tokens /
// token_logprobs / top_logprobs / text_offset); vLLM's OpenAI-compatible server (return_tokens_as_token_ids,
// logprobs modes); llama-cpp-python's server (text prompts, top_k / min_p / repeat_penalty fields).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/remote/http.hpp>

namespace kaizen::remote {

/// What the request's "prompt" holds.
enum class PromptFormat : std::uint8_t {
  token_ids,  ///< Prompt::tokens as a list of ids (vLLM, SGLang, llama.cpp's C++ server)
  text,       ///< Prompt::text (llama-cpp-python's server accepts only strings)
};

/// Which distribution the server's log-probs describe.
enum class ServerLogprobs : std::uint8_t {
  raw,        ///< the model's softmax before temperature / top-k / top-p / min-p (llama.cpp, vLLM's default)
  processed,  ///< after the sampling transform (vLLM --logprobs-mode processed_logprobs)
};

/// Where and how to reach the server.
struct OpenAIOptions {
  std::string base_url = "http://127.0.0.1:8000";  ///< the endpoint is base_url + "/v1/completions"
  std::string model;                               ///< the request's "model" (omitted when empty)
  std::string api_key;                             ///< sent as "Authorization: Bearer <key>" when set
  PromptFormat prompt_format = PromptFormat::token_ids;
  ServerLogprobs server_logprobs = ServerLogprobs::raw;
  bool request_token_ids = false;  ///< adds "return_tokens_as_token_ids": true (vLLM)
  std::int64_t top_k_off = 0;      ///< the "top_k" sent when SamplingParams::top_k is 0 (off)
  nlohmann::json extra = nlohmann::json::object();  ///< merged into every request body (wins over the defaults)
  HttpOptions http;

  /// llama-cpp-python's server: text prompts, top_k 0 = off, repeat_penalty 1 (its default is 1.1).
  [[nodiscard]] static OpenAIOptions llama_cpp(std::string base_url) {
    OpenAIOptions o;
    o.base_url = std::move(base_url);
    o.prompt_format = PromptFormat::text;
    o.extra = {{"repeat_penalty", 1.0}};
    return o;
  }
  /// vLLM: token-id prompts, token ids in the answer, top_k -1 = off.
  [[nodiscard]] static OpenAIOptions vllm(std::string base_url, std::string model) {
    OpenAIOptions o;
    o.base_url = std::move(base_url);
    o.model = std::move(model);
    o.request_token_ids = true;
    o.top_k_off = -1;
    return o;
  }
};

/// Maps a token's text, as the server writes it, to its id; returns -1 when it does not know the text.
using TokenResolver = std::function<TokenId(std::string_view piece)>;

/// A TokenResolver from a tokenizer's vocabulary: the decoded text of every id. Texts shared by several
/// ids (or empty) cannot be told apart and resolve to -1 (an error in the sampler, naming the text).
class PieceTable {
 public:
  /// Decodes every id of `tok` (anything with decode(std::span<const TokenId>) and vocab_size()).
  template <class Tok>
  [[nodiscard]] static PieceTable from(const Tok& tok) {
    PieceTable t;
    const auto n = static_cast<TokenId>(tok.vocab_size());
    for (TokenId id = 0; id < n; ++id) {
      const TokenId one[1] = {id};
      std::string piece = std::string(tok.decode(std::span<const TokenId>(one, 1)));
      if (piece.empty()) continue;
      auto [it, inserted] = t.ids_.emplace(std::move(piece), id);
      if (!inserted) it->second = -1;  // ambiguous
    }
    return t;
  }
  [[nodiscard]] TokenId operator()(std::string_view piece) const {
    const auto it = ids_.find(std::string(piece));
    return it == ids_.end() ? -1 : it->second;
  }
  [[nodiscard]] std::size_t size() const noexcept { return ids_.size(); }

 private:
  std::unordered_map<std::string, TokenId> ids_;
};

namespace detail {

[[nodiscard]] constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30U)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27U)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31U);
}

}  // namespace detail

/// Samples through an OpenAI-compatible completions endpoint; models kaizen::Sampler.
class OpenAICompletionsSampler {
 public:
  explicit OpenAICompletionsSampler(OpenAIOptions options, TokenResolver resolve = {})
      : options_(std::move(options)), resolve_(std::move(resolve)), http_(options_.http) {
    KAIZEN_CHECK(!options_.base_url.empty(), "OpenAICompletionsSampler: base_url is empty");
    KAIZEN_CHECK(options_.extra.is_object(), "OpenAICompletionsSampler: extra must be a JSON object, got ",
                 options_.extra.dump());
    while (!options_.base_url.empty() && options_.base_url.back() == '/') options_.base_url.pop_back();
  }

  /// POST target: base_url + "/v1/completions".
  [[nodiscard]] std::string endpoint() const { return options_.base_url + "/v1/completions"; }
  [[nodiscard]] const OpenAIOptions& options() const noexcept { return options_; }

  /// The seed sent for prompt `index` under params.seed.
  [[nodiscard]] static std::int64_t request_seed(std::uint64_t seed, std::size_t index) noexcept {
    return static_cast<std::int64_t>(detail::splitmix64(seed + detail::splitmix64(index)) & 0x7fffffffULL);
  }

  /// The JSON body sent for prompts[index] (see the file comment).
  [[nodiscard]] nlohmann::json request_body(const Prompt& prompt, const SamplingParams& params, std::size_t index) const {
    nlohmann::json body;
    if (!options_.model.empty()) body["model"] = options_.model;
    if (options_.prompt_format == PromptFormat::token_ids) {
      KAIZEN_CHECK(!prompt.tokens.empty(), "OpenAICompletionsSampler: prompt ", index,
                   " has no tokens (prompt_format is token_ids)");
      body["prompt"] = prompt.tokens;
    } else {
      KAIZEN_CHECK(!prompt.text.empty(), "OpenAICompletionsSampler: prompt ", index,
                   " has no text (prompt_format is text: the server tokenises Prompt::text)");
      body["prompt"] = prompt.text;
    }
    body["max_tokens"] = params.max_new_tokens;
    body["temperature"] = params.temperature;
    body["top_p"] = params.top_p;
    body["top_k"] = params.top_k > 0 ? params.top_k : options_.top_k_off;
    body["min_p"] = params.min_p;
    body["seed"] = request_seed(params.seed, index);
    body["logprobs"] = 0;
    body["n"] = 1;
    body["stream"] = false;
    if (options_.request_token_ids) body["return_tokens_as_token_ids"] = true;
    for (const auto& [key, value] : options_.extra.items()) body[key] = value;
    return body;
  }

  /// The completion in a 200 answer's body to prompt `index` (see the file comment for the fields).
  [[nodiscard]] Completion parse_completion(std::string_view body, std::size_t index, const SamplingParams& params) const {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(body);
    } catch (const nlohmann::json::exception& e) {
      fail("OpenAICompletionsSampler: the answer to prompt ", index, " from ", endpoint(), " is not JSON (", e.what(),
           "): ", shorten(body));
    }
    const auto field = [&](const nlohmann::json& parent, const auto& key, std::string_view path) -> const nlohmann::json& {
      const nlohmann::json* found = nullptr;
      if constexpr (std::is_integral_v<std::decay_t<decltype(key)>>) {
        if (parent.is_array() && static_cast<std::size_t>(key) < parent.size()) found = &parent[static_cast<std::size_t>(key)];
      } else {
        if (parent.is_object() && parent.contains(key)) found = &parent[key];
      }
      if (found == nullptr || found->is_null()) {
        fail("OpenAICompletionsSampler: the answer to prompt ", index, " from ", endpoint(), " lacks the field ", path, ": ",
             shorten(body));
      }
      return *found;
    };
    const auto expect = [&](const nlohmann::json& v, bool ok, std::string_view path, std::string_view what) {
      if (!ok) {
        fail("OpenAICompletionsSampler: in the answer to prompt ", index, " from ", endpoint(), ", the field ", path,
             " is not ", what, " (it is ", v.dump().substr(0, 80), ")");
      }
    };
    const auto& choices = field(j, "choices", "choices");
    expect(choices, choices.is_array() && !choices.empty(), "choices", "a non-empty array");
    const auto& choice = field(choices, 0, "choices[0]");
    const auto& logprobs = field(choice, "logprobs", "choices[0].logprobs");
    const auto& tokens = field(logprobs, "tokens", "choices[0].logprobs.tokens");
    expect(tokens, tokens.is_array(), "choices[0].logprobs.tokens", "an array");
    const auto& values = field(logprobs, "token_logprobs", "choices[0].logprobs.token_logprobs");
    expect(values, values.is_array(), "choices[0].logprobs.token_logprobs", "an array");
    KAIZEN_CHECK(tokens.size() == values.size(), "OpenAICompletionsSampler: in the answer to prompt ", index, " from ",
                 endpoint(), ", choices[0].logprobs.tokens has ", tokens.size(), " entries but token_logprobs has ",
                 values.size());
    const auto& finish = field(choice, "finish_reason", "choices[0].finish_reason");
    expect(finish, finish.is_string(), "choices[0].finish_reason", "a string");

    Completion c;
    const std::string reason = finish.get<std::string>();
    c.finish = reason == "stop" ? FinishReason::stop : reason == "length" ? FinishReason::length : FinishReason::abort;
    std::string pieces;
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      const std::string path = "choices[0].logprobs.tokens[" + std::to_string(t) + "]";
      expect(tokens[t], tokens[t].is_string(), path, "a string");
      const std::string lp_path = "choices[0].logprobs.token_logprobs[" + std::to_string(t) + "]";
      expect(values[t], values[t].is_number(), lp_path, "a number");
      const std::string& piece = tokens[t].get_ref<const std::string&>();
      const TokenId id = token_id(piece, index, t);
      c.tokens.push_back(id);
      c.logprobs.push_back(values[t].get<float>());
      pieces += piece;
      const bool stop = std::find(params.stop_tokens.begin(), params.stop_tokens.end(), id) != params.stop_tokens.end();
      if (stop) {
        if (t + 1 < tokens.size()) c.text = pieces;  // cut here: the server's text runs further
        c.finish = FinishReason::stop;
        break;
      }
    }
    if (c.text.empty()) {
      const auto& text = field(choice, "text", "choices[0].text");
      expect(text, text.is_string(), "choices[0].text", "a string");
      c.text = text.get<std::string>();
    }
    KAIZEN_CHECK(static_cast<std::int64_t>(c.tokens.size()) <= params.max_new_tokens, "OpenAICompletionsSampler: the answer to prompt ",
                 index, " from ", endpoint(), " has ", c.tokens.size(), " tokens, more than max_tokens = ", params.max_new_tokens);
    return c;
  }

  /// One completion per prompt, in order (see the file comment). Throws kaizen::Error on invalid params,
  /// a transform the server's log-probs cannot describe, an unreachable server or a malformed answer.
  [[nodiscard]] std::vector<Completion> sample(std::span<const Prompt> prompts, const SamplingParams& params) {
    validate(params);
    if (options_.server_logprobs == ServerLogprobs::raw) {
      const bool identity = params.temperature == 1.0 && params.top_k == 0 && params.top_p == 1.0 && params.min_p == 0.0;
      KAIZEN_CHECK(identity, "OpenAICompletionsSampler: the server's log-probs are of the raw model distribution "
                   "(server_logprobs = raw), so they equal the sampling distribution's only at temperature 1 without "
                   "top-k / top-p / min-p; got temperature ", params.temperature, ", top_k ", params.top_k, ", top_p ",
                   params.top_p, ", min_p ", params.min_p, ". Use a server that returns processed log-probs (vLLM "
                   "--logprobs-mode processed_logprobs) and set server_logprobs = processed");
    }
    std::vector<HttpRequest> requests;
    requests.reserve(prompts.size());
    const std::string url = endpoint();
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      HttpRequest r{.url = url, .body = request_body(prompts[i], params, i).dump(), .headers = {}};
      if (!options_.api_key.empty()) r.headers.push_back("Authorization: Bearer " + options_.api_key);
      requests.push_back(std::move(r));
    }
    const std::vector<HttpResponse> answers = http_.post_all(requests);
    std::vector<Completion> out;
    out.reserve(prompts.size());
    for (std::size_t i = 0; i < answers.size(); ++i) {
      KAIZEN_CHECK(answers[i].status == 200, "OpenAICompletionsSampler: POST ", url, " answered HTTP ", answers[i].status,
                   " to prompt ", i, ": ", shorten(answers[i].body));
      out.push_back(parse_completion(answers[i].body, i, params));
    }
    return out;
  }

 private:
  [[nodiscard]] static std::string shorten(std::string_view s) {
    return s.size() <= 300 ? std::string(s) : std::string(s.substr(0, 300)) + "...";
  }

  [[nodiscard]] TokenId token_id(const std::string& piece, std::size_t index, std::size_t t) const {
    constexpr std::string_view prefix = "token_id:";
    if (piece.starts_with(prefix)) {
      TokenId id = 0;
      bool ok = piece.size() > prefix.size();
      for (std::size_t k = prefix.size(); k < piece.size() && ok; ++k) {
        ok = piece[k] >= '0' && piece[k] <= '9';
        if (ok) id = id * 10 + (piece[k] - '0');
      }
      KAIZEN_CHECK(ok, "OpenAICompletionsSampler: in the answer to prompt ", index, ", choices[0].logprobs.tokens[", t,
                   "] = '", piece, "' is not token_id:<digits>");
      return id;
    }
    KAIZEN_CHECK(static_cast<bool>(resolve_), "OpenAICompletionsSampler: the server wrote token ", t, " of prompt ", index,
                 " as the text '", piece, "' and no TokenResolver was given to map it to an id (give a PieceTable, or "
                 "use a server that returns token ids: request_token_ids with vLLM)");
    const TokenId id = resolve_(piece);
    KAIZEN_CHECK(id >= 0, "OpenAICompletionsSampler: cannot map token ", t, " of prompt ", index, ", the text '", piece,
                 "', to a single token id (unknown or ambiguous in the TokenResolver)");
    return id;
  }

  OpenAIOptions options_;
  TokenResolver resolve_;
  HttpClient http_;
};

}  // namespace kaizen::remote
