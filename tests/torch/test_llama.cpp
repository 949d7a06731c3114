// Tests of kaizen/torch/: the Llama model (KV cache, padding, gradients), the sampler's log-probs
// against the trainer's, and the errors on bad input (including GRPO's group size check).
#include <catch2/catch.hpp>

#include <cstdint>
#include <span>
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/grpo.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/tasks/tokenizer.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/torch/logit_transform.hpp>
#include <kaizen/torch/policy_logprobs.hpp>

namespace {

using kaizen::lm::LlamaConfig;
using kaizen::lm::LlamaModel;

LlamaConfig tiny_config() {
  LlamaConfig c;
  c.vocab_size = 13;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 24;
  return c;
}

/// Weights larger than the N(0, 0.02) default, so outputs and distributions are far from uniform.
void spread_weights(LlamaModel& model, double std) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.named_parameters()) {
    if (p.value().dim() > 1) p.value().normal_(0.0, std);
    else p.value().uniform_(0.5, 1.5);
  }
}

torch::Tensor positions_from_zero(std::int64_t B, std::int64_t T) {
  return torch::arange(T, torch::kLong).unsqueeze(0).expand({B, T}).contiguous();
}

}  // namespace

TEST_CASE("LlamaModel forward with and without the KV cache agree", "[torch][llama]") {
  torch::manual_seed(1);
  LlamaModel model(tiny_config());
  spread_weights(model, 0.3);
  torch::NoGradGuard no_grad;
  const std::int64_t B = 2, T = 9, prefix = 5;
  const torch::Tensor ids = torch::randint(2, 13, {B, T}, torch::kLong);
  const torch::Tensor pos = positions_from_zero(B, T);
  const torch::Tensor mask = torch::ones({B, T}, torch::kBool);
  const torch::Tensor full = model.forward(ids, pos, mask);

  kaizen::lm::KvCache cache;
  std::vector<torch::Tensor> parts{model.forward(ids.narrow(1, 0, prefix), pos.narrow(1, 0, prefix),
                                                 mask.narrow(1, 0, prefix), &cache)};
  for (std::int64_t t = prefix; t < T; ++t) {
    parts.push_back(model.forward(ids.narrow(1, t, 1), pos.narrow(1, t, 1), mask.narrow(1, t, 1), &cache));
  }
  CHECK(cache.length() == T);
  const torch::Tensor cached = torch::cat(parts, 1);
  CHECK((full - cached).abs().max().item<double>() < 1e-5);
}

TEST_CASE("LlamaModel left and right padding give the same logits on real tokens", "[torch][llama]") {
  torch::manual_seed(2);
  LlamaModel model(tiny_config());
  spread_weights(model, 0.3);
  torch::NoGradGuard no_grad;
  const std::vector<std::int64_t> lengths{4, 7, 2};
  const std::int64_t B = 3, W = 7;
  const torch::Tensor tokens = torch::randint(2, 13, {B, W}, torch::kLong);
  torch::Tensor right_ids = torch::zeros({B, W}, torch::kLong), left_ids = torch::zeros({B, W}, torch::kLong);
  torch::Tensor right_pos = torch::zeros({B, W}, torch::kLong), left_pos = torch::zeros({B, W}, torch::kLong);
  torch::Tensor right_mask = torch::zeros({B, W}, torch::kBool), left_mask = torch::zeros({B, W}, torch::kBool);
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t n = lengths[static_cast<std::size_t>(b)];
    for (std::int64_t t = 0; t < n; ++t) {
      right_ids[b][t] = tokens[b][t];
      right_pos[b][t] = t;
      right_mask[b][t] = true;
      left_ids[b][W - n + t] = tokens[b][t];
      left_pos[b][W - n + t] = t;
      left_mask[b][W - n + t] = true;
    }
  }
  kaizen::TokenBatch right, left;
  right.input_ids = right_ids;
  right.position_ids = right_pos;
  right.attention_mask = right_mask;
  left.input_ids = left_ids;
  left.position_ids = left_pos;
  left.attention_mask = left_mask;
  const torch::Tensor r = model.logits(right), l = model.logits(left);
  REQUIRE(r.sizes() == torch::IntArrayRef({B, W, 13}));
  CHECK(torch::isfinite(r).all().item<bool>());
  CHECK(torch::isfinite(l).all().item<bool>());
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t n = lengths[static_cast<std::size_t>(b)];
    const torch::Tensor alone = model.forward(tokens[b].narrow(0, 0, n).unsqueeze(0), positions_from_zero(1, n),
                                              torch::ones({1, n}, torch::kBool));
    const torch::Tensor alone_logits = model.project(alone)[0];
    CHECK((r[b].narrow(0, 0, n) - l[b].narrow(0, W - n, n)).abs().max().item<double>() < 1e-5);
    CHECK((r[b].narrow(0, 0, n) - alone_logits).abs().max().item<double>() < 1e-5);
  }
}

TEST_CASE("LlamaModel gradients match float64 finite differences", "[torch][llama]") {
  torch::manual_seed(3);
  LlamaConfig config = tiny_config();
  config.hidden_size = 8;
  config.intermediate_size = 12;
  config.num_attention_heads = 2;
  config.num_key_value_heads = 1;
  config.tie_word_embeddings = GENERATE(true, false);
  config.attention_bias = true;
  LlamaModel model(config);
  spread_weights(model, 0.4);
  model.to(torch::kDouble);
  kaizen::TokenBatch batch;
  batch.input_ids = torch::randint(0, 13, {2, 5}, torch::kLong);
  batch.position_ids = positions_from_zero(2, 5);
  batch.attention_mask = torch::ones({2, 5}, torch::kBool);
  batch.attention_mask[1][4] = false;
  const torch::Tensor weights = torch::randn({2, 5, 13}, torch::kDouble);
  auto loss = [&] { return (model.logits(batch) * weights).sum(); };

  model.zero_grad();
  loss().backward();
  const double eps = 1e-6;
  for (auto& p : model.named_parameters()) {
    torch::Tensor value = p.value();
    const torch::Tensor flat = value.view({-1});
    const torch::Tensor grad = value.grad().view({-1});
    for (std::int64_t i : {std::int64_t{0}, flat.size(0) / 2, flat.size(0) - 1}) {
      double up = 0.0, down = 0.0;
      {
        torch::NoGradGuard no_grad;
        const double x = flat[i].item<double>();
        flat[i] = x + eps;
        up = loss().item<double>();
        flat[i] = x - eps;
        down = loss().item<double>();
        flat[i] = x;
      }
      const double numeric = (up - down) / (2.0 * eps);
      const double analytic = grad[i].item<double>();
      INFO(p.key() << " index " << i);
      CHECK(analytic == Approx(numeric).epsilon(1e-5).margin(1e-7));
    }
  }
}

TEST_CASE("LlamaSampler log-probs equal the trainer's recomputed log-probs", "[torch][sampler]") {
  torch::manual_seed(4);
  torch::set_num_threads(1);
  LlamaModel model(tiny_config());
  spread_weights(model, 0.5);
  kaizen::lm::LlamaSampler sampler(model, /*pad_id=*/0);
  std::vector<kaizen::Prompt> prompts(6);
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    for (std::size_t t = 0; t < 2 + i % 4; ++t) prompts[i].tokens.push_back(static_cast<kaizen::TokenId>(2 + (3 * i + 5 * t) % 11));
  }
  kaizen::SamplingParams params;
  params.temperature = 0.7;
  params.top_p = 0.9;
  params.max_new_tokens = 8;
  params.stop_tokens = {1};
  params.seed = 11;
  const std::vector<kaizen::Completion> completions = sampler.sample(std::span<const kaizen::Prompt>(prompts), params);
  REQUIRE(completions.size() == prompts.size());
  for (const auto& c : completions) {
    REQUIRE(!c.tokens.empty());
    REQUIRE(c.logprobs.size() == c.tokens.size());
  }
  // Same seed, same completions.
  const auto again = sampler.sample(std::span<const kaizen::Prompt>(prompts), params);
  for (std::size_t i = 0; i < completions.size(); ++i) CHECK(again[i].tokens == completions[i].tokens);

  const std::vector<double> rewards(prompts.size(), 0.0);
  const kaizen::TokenBatch batch =
      kaizen::collate(std::span<const kaizen::Prompt>(prompts), std::span<const kaizen::Completion>(completions),
                      std::span<const double>(rewards), /*group_size=*/1,
                      kaizen::CollateOptions{.pad_id = 0, .vocab_size = 13, .max_length = 24});
  REQUIRE(batch.old_logprobs.defined());
  torch::NoGradGuard no_grad;
  const torch::Tensor trainer =
      kaizen::lm::policy_logprobs(model, batch, kaizen::lm::LogitTransform::from(params));
  const torch::Tensor mask = batch.completion_mask;
  CHECK(mask.sum().item<std::int64_t>() > static_cast<std::int64_t>(prompts.size()));
  const torch::Tensor diff = (trainer - batch.old_logprobs.to(trainer.dtype())).abs().masked_select(mask);
  CHECK(diff.max().item<double>() < 1e-5);
  // The transform matters: without it the trainer's log-probs differ.
  const torch::Tensor plain = kaizen::lm::policy_logprobs(model, batch);
  CHECK((plain - trainer).abs().masked_select(mask).max().item<double>() > 1e-2);
}

TEST_CASE("LlamaSampler built with a tokenizer fills Completion::text, and only then", "[torch][sampler]") {
  torch::manual_seed(6);
  torch::set_num_threads(1);
  const kaizen::tasks::CharTokenizer tokenizer("0123456789+-*/()=>,: ");   // 2 + 21 = 23 ids
  LlamaConfig config = tiny_config();
  config.vocab_size = tokenizer.vocab_size();
  LlamaModel model(config);
  spread_weights(model, 0.5);
  kaizen::lm::LlamaSampler with_text(model, tokenizer);
  kaizen::lm::LlamaSampler without_text(model, tokenizer.pad_id());
  CHECK(with_text.decodes_text());
  CHECK_FALSE(without_text.decodes_text());
  const std::vector<kaizen::Prompt> prompts{kaizen::Prompt{.tokens = tokenizer.encode("12+3=")},
                                            kaizen::Prompt{.tokens = tokenizer.encode("7*8=")}};
  kaizen::SamplingParams params;
  params.max_new_tokens = 6;
  params.stop_tokens = {tokenizer.eos_id()};
  params.seed = 3;
  const auto texts = with_text.sample(std::span<const kaizen::Prompt>(prompts), params);
  const auto plain = without_text.sample(std::span<const kaizen::Prompt>(prompts), params);
  REQUIRE(texts.size() == 2);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    CHECK(texts[i].tokens == plain[i].tokens);                    // decoding changes nothing else
    CHECK(texts[i].text == tokenizer.decode(texts[i].tokens));
    CHECK(plain[i].text.empty());
  }
  CHECK((texts[0].text.size() + texts[1].text.size()) > 0);
  // A tokenizer with more ids than the model's vocabulary is refused.
  LlamaModel small(tiny_config());   // 13 ids
  CHECK_THROWS_WITH(kaizen::lm::LlamaSampler(small, tokenizer),
                    Catch::StartsWith("LlamaSampler: the tokenizer has 23 tokens but the model's vocabulary is 13"));
}

TEST_CASE("bad input gives kaizen errors", "[torch][errors]") {
  torch::manual_seed(5);
  LlamaModel model(tiny_config());
  kaizen::lm::LlamaSampler sampler(model, 0);
  kaizen::SamplingParams params;
  params.max_new_tokens = 4;

  SECTION("unknown token id") {
    const std::vector<kaizen::Prompt> prompts{kaizen::Prompt{.tokens = {2, 13, 4}}};
    CHECK_THROWS_WITH(sampler.sample(std::span<const kaizen::Prompt>(prompts), params),
                      Catch::StartsWith("LlamaSampler::sample: prompt 0 has the unknown token id 13"));
    kaizen::TokenBatch batch;
    batch.input_ids = torch::tensor({{2, 13}}, torch::kLong);
    batch.position_ids = positions_from_zero(1, 2);
    batch.attention_mask = torch::ones({1, 2}, torch::kBool);
    CHECK_THROWS_WITH(model.logits(batch), Catch::StartsWith("LlamaModel: token ids must lie in [0, 13)"));
  }
  SECTION("prompt longer than the context") {
    const std::vector<kaizen::Prompt> prompts{kaizen::Prompt{.tokens = std::vector<kaizen::TokenId>(24, 2)}};
    CHECK_THROWS_WITH(sampler.sample(std::span<const kaizen::Prompt>(prompts), params),
                      Catch::StartsWith("LlamaSampler::sample: prompt 0 has 24 tokens but the context"));
    kaizen::TokenBatch batch;
    batch.input_ids = torch::full({1, 25}, 2, torch::kLong);
    batch.position_ids = positions_from_zero(1, 25);
    batch.attention_mask = torch::ones({1, 25}, torch::kBool);
    CHECK_THROWS_WITH(model.logits(batch), Catch::StartsWith("LlamaModel: position ids must lie in [0, 24)"));
  }
  SECTION("GRPO group size below 2") {
    auto reward = [](const kaizen::Prompt&, const kaizen::Completion&) { return 1.0; };
    auto source = [](kaizen::ArmId, kaizen::Rng&) { return kaizen::Prompt{.tokens = {2, 3}}; };
    kaizen::loop::GrpoConfig config;
    config.group_size = 1;
    config.steps = 1;
    CHECK_THROWS_WITH(kaizen::loop::grpo(model, sampler, reward, source, kaizen::policy_gradient::kGrpo, config),
                      Catch::StartsWith("grpo: group_size must be >= 2"));
  }
  SECTION("invalid config") {
    LlamaConfig bad = tiny_config();
    bad.num_key_value_heads = 3;
    CHECK_THROWS_WITH(LlamaModel(bad), Catch::StartsWith("LlamaConfig: num_key_value_heads must be > 0 and divide"));
    CHECK_THROWS_WITH(LlamaConfig::from_json(nlohmann::json::array()),
                      Catch::StartsWith("LlamaConfig::from_json: expected a JSON object"));
  }
}

TEST_CASE("LlamaConfig reads Hugging Face config.json names", "[torch][llama]") {
  const auto j = nlohmann::json::parse(R"({"vocab_size": 50, "hidden_size": 32, "intermediate_size": 64,
      "num_hidden_layers": 3, "num_attention_heads": 4, "rope_theta": 500000.0, "tie_word_embeddings": false})");
  const LlamaConfig c = LlamaConfig::from_json(j);
  CHECK(c.vocab_size == 50);
  CHECK(c.num_hidden_layers == 3);
  CHECK(c.num_key_value_heads == 4);
  CHECK(c.rope_theta == 500000.0);
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK(LlamaConfig::from_json(c.to_json()).to_json() == c.to_json());
}
