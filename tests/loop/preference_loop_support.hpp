// Fixtures shared by the preference-loop tests (iterative DPO, self-rewarding): the demo's pieces at test
// size and a dense reward an untrained model already earns in varied amounts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>

namespace kaizen_test::preference_loops {

using kaizen::Completion;
using kaizen::Prompt;
using kaizen::lm::LlamaModel;

/// The demo's pieces at test size: character tokenizer, 1- and 2-digit addition, a tiny Llama decoder.
struct Setup {
  kaizen::tasks::CharTokenizer tokenizer;
  kaizen::tasks::Arithmetic task{{.min_digits = 1, .max_digits = 2, .operators = "+"}};

  [[nodiscard]] kaizen::lm::LlamaConfig model_config() const {
    kaizen::lm::LlamaConfig c;
    c.vocab_size = tokenizer.vocab_size();
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 32;
    return c;
  }
  [[nodiscard]] LlamaModel model(std::uint64_t seed) const {
    torch::manual_seed(seed);
    return LlamaModel(model_config());
  }
  [[nodiscard]] kaizen::SamplingParams sampling(std::int64_t max_new_tokens = 4) const {
    kaizen::SamplingParams p;
    p.max_new_tokens = max_new_tokens;
    p.stop_tokens = {tokenizer.eos_id()};
    return p;
  }
  [[nodiscard]] kaizen::CollateOptions collate() const {
    return {.pad_id = tokenizer.pad_id(), .vocab_size = tokenizer.vocab_size(), .max_length = 32};
  }
  [[nodiscard]] std::vector<Prompt> prompts(std::size_t n, std::uint64_t seed) const {
    kaizen::Rng rng(seed);
    std::vector<Prompt> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(kaizen::tasks::make_prompt(task.generate(-1, rng), tokenizer));
    return out;
  }
};

/// A dense reward an untrained model already earns in varied amounts: the fraction of digit tokens.
struct DigitFraction {
  const kaizen::tasks::CharTokenizer* tokenizer;
  double operator()(const Prompt&, const Completion& c) const {
    const std::string text = tokenizer->decode(c.tokens);
    double digits = 0.0;
    for (char ch : text) digits += (ch >= '0' && ch <= '9') ? 1.0 : 0.0;
    return c.tokens.empty() ? 0.0 : digits / static_cast<double>(c.tokens.size());
  }
};

/// Thrown from a metrics callback to stop a run as a crash would.
struct Stop {};

}  // namespace kaizen_test::preference_loops
