// kaizen/models/llama_sampler.hpp - batched generation from a LlamaModel with its KV cache; models
// kaizen::Sampler.
//
// Prompts are left-padded into one batch and run through the model once, filling the KV cache; then
// each step feeds one new token per row. Every step draws the next token of each unfinished row from
// π̃ = transformed_log_softmax(logits of its last token) (temperature, top-k, top-p, min-p: the same
// function the trainer scores with), by inverse-CDF sampling on uniform01 draws of one kaizen::Rng
// seeded with params.seed, and records log π̃(token). A row stops when it draws a stop token
// (FinishReason::stop, the token included), after max_new_tokens tokens, or when its next token would
// not fit in the context (FinishReason::length). Finished rows feed padding that no real token attends to.
//
// Completion::text: a sampler built with a tokenizer (any kaizen::tasks::Tokenizer) decodes each completion's
// tokens into it, so text-level rewards (`c.text == p.reference`) see the answer. Built without one, the
// sampler leaves `text` empty and says so: `decodes_text()` is false.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/tasks/tokenizer.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/torch/logit_transform.hpp>

namespace kaizen::lm {

class LlamaSampler {
 public:
  /// Samples from `model` (held by reference; it must outlive the sampler) on `device`, feeding
  /// `pad_id` as padding. `max_batch` bounds the rows generated together (0 = all at once).
  explicit LlamaSampler(LlamaModel& model, TokenId pad_id = 0, std::int64_t max_batch = 0)
      : model_(&model), pad_id_(pad_id), max_batch_(max_batch) {
    KAIZEN_CHECK(pad_id >= 0 && pad_id < model.config().vocab_size, "LlamaSampler: pad_id must lie in [0, ",
                 model.config().vocab_size, "), got ", pad_id);
    KAIZEN_CHECK(max_batch >= 0, "LlamaSampler: max_batch must be >= 0 (0 = no limit), got ", max_batch);
  }

  /// As above, padding with the tokenizer's pad id and decoding every completion into Completion::text with
  /// it. The sampler refers to the tokenizer, as to the model (tokenizers such as BpeTokenizer are not
  /// copyable): both must outlive it; a temporary tokenizer does not compile. Throws kaizen::Error when the
  /// tokenizer's vocabulary is larger than the model's.
  template <tasks::Tokenizer Tok>
  LlamaSampler(LlamaModel& model, const Tok& tokenizer, std::int64_t max_batch = 0)
      : LlamaSampler(model, tokenizer.pad_id(), max_batch) {
    KAIZEN_CHECK(tokenizer.vocab_size() <= model.config().vocab_size, "LlamaSampler: the tokenizer has ",
                 tokenizer.vocab_size(), " tokens but the model's vocabulary is ", model.config().vocab_size);
    decode_ = [&tokenizer](std::span<const TokenId> ids) { return std::string(tokenizer.decode(ids)); };
  }
  template <tasks::Tokenizer Tok>
  LlamaSampler(LlamaModel& model, const Tok&& tokenizer, std::int64_t max_batch = 0) = delete;

  /// Whether sample() fills Completion::text (a tokenizer was given).
  [[nodiscard]] bool decodes_text() const noexcept { return static_cast<bool>(decode_); }

  /// One completion per prompt, in order. Throws kaizen::Error on invalid params, an empty prompt, a
  /// token id outside the vocabulary, or a prompt that leaves no room in the context
  /// (max_position_embeddings) for a completion token.
  [[nodiscard]] std::vector<Completion> sample(std::span<const Prompt> prompts, const SamplingParams& params) {
    const LogitTransform transform = LogitTransform::from(params);
    const LlamaConfig& config = model_->config();
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      const auto n = static_cast<std::int64_t>(prompts[i].tokens.size());
      KAIZEN_CHECK(n > 0, "LlamaSampler::sample: prompt ", i, " is empty");
      KAIZEN_CHECK(n < config.max_position_embeddings, "LlamaSampler::sample: prompt ", i, " has ", n,
                   " tokens but the context (max_position_embeddings) is ", config.max_position_embeddings,
                   ", which leaves no room for a completion");
      for (std::size_t t = 0; t < prompts[i].tokens.size(); ++t) {
        const TokenId id = prompts[i].tokens[t];
        KAIZEN_CHECK(id >= 0 && id < config.vocab_size, "LlamaSampler::sample: prompt ", i, " has the unknown token id ",
                     id, " at position ", t, " (vocabulary [0, ", config.vocab_size, "))");
      }
    }
    Rng rng(params.seed);
    std::vector<Completion> out;
    out.reserve(prompts.size());
    const std::size_t chunk = max_batch_ > 0 ? static_cast<std::size_t>(max_batch_) : std::max<std::size_t>(prompts.size(), 1);
    for (std::size_t begin = 0; begin < prompts.size(); begin += chunk) {
      const std::size_t end = std::min(prompts.size(), begin + chunk);
      std::vector<Completion> part = generate(prompts.subspan(begin, end - begin), params, transform, rng);
      for (auto& c : part) out.push_back(std::move(c));
    }
    if (decode_) {
      for (Completion& c : out) c.text = decode_(c.tokens);
    }
    return out;
  }

 private:
  std::vector<Completion> generate(std::span<const Prompt> prompts, const SamplingParams& params,
                                   const LogitTransform& transform, Rng& rng) {
    torch::NoGradGuard no_grad;
    const LlamaConfig& config = model_->config();
    const auto device = model_->output_embedding().device();
    const auto B = static_cast<std::int64_t>(prompts.size());
    std::int64_t width = 0;
    for (const Prompt& p : prompts) width = std::max<std::int64_t>(width, static_cast<std::int64_t>(p.tokens.size()));

    torch::Tensor ids = torch::full({B, width}, pad_id_, torch::kLong);
    torch::Tensor pos = torch::zeros({B, width}, torch::kLong);
    torch::Tensor mask = torch::zeros({B, width}, torch::kBool);
    std::vector<std::int64_t> prompt_len(prompts.size());
    {
      auto a_ids = ids.accessor<std::int64_t, 2>();
      auto a_pos = pos.accessor<std::int64_t, 2>();
      auto a_mask = mask.accessor<bool, 2>();
      for (std::int64_t b = 0; b < B; ++b) {
        const auto& tokens = prompts[static_cast<std::size_t>(b)].tokens;
        const auto n = static_cast<std::int64_t>(tokens.size());
        prompt_len[static_cast<std::size_t>(b)] = n;
        for (std::int64_t t = 0; t < n; ++t) {
          a_ids[b][width - n + t] = tokens[static_cast<std::size_t>(t)];
          a_pos[b][width - n + t] = t;
          a_mask[b][width - n + t] = true;
        }
      }
    }
    KvCache cache;
    cache.reserve = std::min(width + params.max_new_tokens, config.max_position_embeddings);
    torch::Tensor hidden = model_->forward(ids.to(device), pos.to(device), mask.to(device), &cache);
    torch::Tensor last = model_->project(hidden.select(1, width - 1));  // [B, V]

    std::vector<Completion> out(prompts.size());
    std::vector<bool> active(prompts.size(), true);
    std::int64_t remaining = B;
    for (std::int64_t step = 0; remaining > 0; ++step) {
      // float32 log-probs (float64 for a float64 model); exp in one vectorised pass, sums in double.
      const torch::Tensor logp = transformed_log_softmax(last, transform).to(torch::kCPU).to(torch::kDouble).contiguous();
      const torch::Tensor probs = logp.exp();
      const auto a_logp = logp.accessor<double, 2>();
      const auto a_probs = probs.accessor<double, 2>();
      const std::int64_t V = logp.size(1);
      torch::Tensor next_ids = torch::full({B, 1}, pad_id_, torch::kLong);
      torch::Tensor next_pos = torch::zeros({B, 1}, torch::kLong);
      torch::Tensor next_mask = torch::zeros({B, 1}, torch::kBool);
      auto a_next_ids = next_ids.accessor<std::int64_t, 2>();
      auto a_next_pos = next_pos.accessor<std::int64_t, 2>();
      auto a_next_mask = next_mask.accessor<bool, 2>();
      for (std::int64_t b = 0; b < B; ++b) {
        const auto bi = static_cast<std::size_t>(b);
        if (!active[bi]) continue;
        double total = 0.0;
        for (std::int64_t v = 0; v < V; ++v) total += a_probs[b][v];
        const double u = uniform01(rng) * total;
        double cumulative = 0.0;
        TokenId token = -1;
        for (std::int64_t v = 0; v < V; ++v) {
          const double p = a_probs[b][v];
          cumulative += p;
          if (p > 0.0) token = v;  // the last kept token, should rounding leave u above the total
          if (cumulative > u && p > 0.0) break;
        }
        Completion& c = out[bi];
        c.tokens.push_back(token);
        c.logprobs.push_back(static_cast<float>(a_logp[b][token]));
        const auto length = static_cast<std::int64_t>(c.tokens.size());
        const bool stop = std::find(params.stop_tokens.begin(), params.stop_tokens.end(), token) != params.stop_tokens.end();
        if (stop || length >= params.max_new_tokens || prompt_len[bi] + length >= config.max_position_embeddings) {
          c.finish = stop ? FinishReason::stop : FinishReason::length;
          active[bi] = false;
          --remaining;
          continue;
        }
        a_next_ids[b][0] = token;
        a_next_pos[b][0] = prompt_len[bi] + length - 1;
        a_next_mask[b][0] = true;
      }
      if (remaining == 0) break;
      hidden = model_->forward(next_ids.to(device), next_pos.to(device), next_mask.to(device), &cache);
      last = model_->project(hidden.select(1, 0));
    }
    return out;
  }

  LlamaModel* model_;
  TokenId pad_id_;
  std::int64_t max_batch_;
  std::function<std::string(std::span<const TokenId>)> decode_;
};

}  // namespace kaizen::lm
