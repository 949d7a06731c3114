// Tests of models/lora.hpp (LoRA on lm::LlamaModel, PEFT files):
//   - a fresh adapter leaves the model's logits bit-equal to the base (B = 0); only A and B require grad;
//   - SFT and GRPO steps through kaizen's loops change the adapters and leave every base tensor bit-equal,
//     and the SFT loss falls; the GRPO reference (adapters off) gives KL 0 at the first step, > 0 after;
//   - adapters off == the base forward (bit-equal); merged W == W0 + s·B·A (≤ 1e-6); unmerge restores W0
//     (≤ 1e-7); the merged model's logits == the adapted model's (≤ 1e-5);
//   - sampling (LlamaSampler, fused q/k/v and gate/up GEMMs) with adapters == sampling the merged model,
//     and its log-probs == the trainer's log-probs of the adapted model;
//   - dropout only in training mode with gradient;
//   - save / load round trip, the exact PEFT names, shapes and adapter_config.json;
//   - peft (Python, tests/models/lora_peft.py): PeftModel.from_pretrained on the transformers model written by
//     save_pretrained gives kaizen's logits (≤ 1e-4 fp32), and an adapter peft made loads into kaizen with
//     peft's logits;
//   - errors: rank 0, unknown targets, bad config values, a second LoraModel, merge states, wrong files.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/io/safetensors.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/grpo.hpp>
#include <kaizen/loop/sft.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/models/lora.hpp>
#include <kaizen/models/save_pretrained.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tokenizers/bpe.hpp>
#include <kaizen/tokenizers/pretokenize.hpp>

#include "../loop/loop_test_support.hpp"
#include "../loop/preference_loop_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace lm = kaizen::lm;
namespace loop = kaizen::loop;
using Catch::Contains;
using kaizen::TokenBatch;
using kaizen_test::kOneThread;
using kaizen_test::TempDir;

static_assert(kaizen::HiddenStatePolicy<lm::LoraModel>);
static_assert(kaizen::HiddenStatePolicy<lm::LoraReference>);

lm::LlamaConfig tiny_config(bool biases = false) {
  lm::LlamaConfig c;
  c.vocab_size = 40;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 32;
  if (biases) {
    c.attention_bias = c.o_bias = c.mlp_bias = true;
    c.tie_word_embeddings = false;
  }
  return c;
}

/// A model with every parameter perturbed (norm gains and biases too), in eval mode.
lm::LlamaModel tiny_model(const lm::LlamaConfig& c, std::uint64_t seed) {
  torch::manual_seed(seed);
  lm::LlamaModel m(c);
  torch::NoGradGuard g;
  for (auto& p : m.parameters()) p.add_(0.05 * torch::randn_like(p));
  m.eval();
  return m;
}

TokenBatch batch_of(const std::vector<std::vector<std::int64_t>>& rows) {
  std::vector<std::int64_t> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  const auto B = static_cast<std::int64_t>(rows.size());
  TokenBatch b;
  b.input_ids = torch::tensor(flat, torch::kLong).view({B, -1});
  const std::int64_t T = b.input_ids.size(1);
  b.position_ids = torch::arange(T, torch::kLong).unsqueeze(0).expand({B, T}).contiguous();
  b.attention_mask = torch::ones({B, T}, torch::kBool);
  b.completion_mask = torch::arange(T, torch::kLong).ge(2).unsqueeze(0).expand({B, T}).contiguous();  // 2 prompt tokens
  b.prompt_mask = b.completion_mask.logical_not();
  return b;
}

const std::vector<std::vector<std::int64_t>> kIds = {{1, 5, 9, 2, 33, 17, 4, 0, 11, 26, 3, 8},
                                                     {7, 7, 30, 12, 1, 19, 25, 6, 14, 2, 38, 21}};

torch::Tensor logits_no_grad(lm::LlamaModel& m, const TokenBatch& b) {
  torch::NoGradGuard g;
  return m.logits(b);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

std::map<std::string, torch::Tensor> snapshot(lm::LlamaModel& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

/// Every base parameter bit-equal to `before` (one CHECK per tensor, named on failure).
void check_base_unchanged(lm::LlamaModel& m, const std::map<std::string, torch::Tensor>& before) {
  const auto now = m.named_parameters();
  REQUIRE(now.size() == before.size());
  for (const auto& p : now) {
    INFO(p.key());
    CHECK(torch::equal(p.value(), before.at(p.key())));
  }
}

/// Gives every B a random value (so the adapters change the model).
void randomise_b(lm::LoraModel& lora, std::uint64_t seed, double sd = 0.2) {
  torch::manual_seed(seed);
  torch::NoGradGuard g;
  for (const auto& [name, t] : lora.named_parameters())
    if (name.find("lora_B") != std::string::npos) t.copy_(sd * torch::randn_like(t));
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("A fresh LoRA model is the base, with only the adapters trainable", "[lora]") {
  REQUIRE(kOneThread);
  const auto config = tiny_config(true);
  lm::LlamaModel base = tiny_model(config, 1);
  lm::LlamaModel plain = tiny_model(config, 1);
  const TokenBatch b = batch_of(kIds);
  lm::LoraModel lora(base, {.r = 4, .lora_alpha = 8, .target_modules = {"all-linear"}, .seed = 3});
  CHECK(lora.config().scale() == 2.0);
  CHECK(lora.targets().size() == 14);
  CHECK(lora.targets()[0] == "model.layers.0.self_attn.q_proj");
  CHECK(lora.targets()[13] == "model.layers.1.mlp.down_proj");
  const auto named = lora.named_parameters();
  REQUIRE(named.size() == 28);
  CHECK(named[0].first == "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  CHECK(named[0].second.sizes() == torch::IntArrayRef({4, 32}));
  CHECK(named[1].first == "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight");
  CHECK(named[1].second.sizes() == torch::IntArrayRef({32, 4}));
  CHECK(named[3].second.sizes() == torch::IntArrayRef({16, 4}));  // k_proj: 2 kv heads × 8
  CHECK(named[13].first == "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
  CHECK(named[12].second.sizes() == torch::IntArrayRef({4, 48}));
  for (const auto& [name, t] : named) {
    INFO(name);
    CHECK(t.requires_grad());
    if (name.find("lora_B") != std::string::npos) CHECK(t.abs().max().item<double>() == 0.0);
    if (name.find("lora_A") != std::string::npos) {  // Kaiming-uniform: |A| <= 1/sqrt(in), not all zero
      const double bound = 1.0 / std::sqrt(static_cast<double>(t.size(1)));
      CHECK(t.abs().max().item<double>() <= bound);
      CHECK(t.abs().max().item<double>() > 0.5 * bound);
    }
  }
  for (const auto& p : base.parameters()) CHECK_FALSE(p.requires_grad());
  CHECK(lora.parameters().size() == 28);

  // B = 0: the adapted logits are the base's, bit for bit, with and without gradient, through logits()
  // and through the fused hidden-state path.
  CHECK(torch::equal(logits_no_grad(base, b), logits_no_grad(plain, b)));
  CHECK(torch::equal(lora.logits(b).detach(), plain.logits(b).detach()));
  {
    torch::NoGradGuard g;
    CHECK(torch::equal(lora.hidden_states(b), plain.hidden_states(b)));
  }

  // The same seed gives the same A; destruction detaches and unfreezes.
  {
    lm::LlamaModel other = tiny_model(config, 1);
    lm::LoraModel again(other, {.r = 4, .lora_alpha = 8, .target_modules = {"all-linear"}, .seed = 3});
    CHECK(torch::equal(again.parameters()[0], lora.parameters()[0]));
  }
  lm::LlamaModel other = tiny_model(config, 1);
  { lm::LoraModel temp(other, {.r = 2, .target_modules = {"q_proj"}}); }
  for (const auto& p : other.parameters()) CHECK(p.requires_grad());
  lm::LoraModel after(other, {.r = 2, .target_modules = {"q_proj"}});  // the slots are free again
  CHECK(after.targets().size() == 2);
}

TEST_CASE("SFT with LoRA lowers the loss and changes only the adapters", "[lora][train]") {
  REQUIRE(kOneThread);
  const kaizen_test::preference_loops::Setup s;
  lm::LlamaModel base = s.model(5);
  const auto before = snapshot(base);
  lm::LoraModel lora(base, {.r = 8, .lora_alpha = 16, .target_modules = {"all-linear"}, .seed = 1});
  const auto adapters_before = lora.parameters();
  std::vector<torch::Tensor> start;
  for (const auto& t : adapters_before) start.push_back(t.detach().clone());

  // The same 16 examples every step (the loop draws batch_size = 16 per step): the loss on them must fall.
  std::vector<kaizen::Rollout> fixed;
  kaizen::Rng draw(4);
  for (int i = 0; i < 16; ++i) {
    const kaizen::tasks::Problem p = s.task.generate(-1, draw);
    kaizen::Rollout r;
    r.prompt = kaizen::tasks::make_prompt(p, s.tokenizer).tokens;
    r.completion.tokens = kaizen::tasks::answer_tokens(p, s.tokenizer);
    fixed.push_back(r);
  }
  std::size_t next = 0;
  auto examples = [&](kaizen::Rng&) { return fixed[next++ % fixed.size()]; };
  std::vector<double> losses;
  const loop::SftConfig config{.steps = 20, .batch_size = 16, .learning_rate = 1e-2, .seed = 4, .collate = s.collate()};
  loop::supervised_finetune(lora, examples, config, [&](const nlohmann::json& m) {
    if (m["event"] == "sft") losses.push_back(m["loss"].get<double>());
  });
  REQUIRE(losses.size() == 20);
  const double first = (losses[0] + losses[1] + losses[2]) / 3.0, last = (losses[17] + losses[18] + losses[19]) / 3.0;
  INFO("mean loss of steps 1-3 " << first << ", of steps 18-20 " << last);
  CHECK(last < first - 0.2);  // a fall of at least 0.2 nats per token
  check_base_unchanged(base, before);
  const auto now = lora.named_parameters();
  for (std::size_t i = 0; i < now.size(); ++i) {
    INFO(now[i].first);
    CHECK_FALSE(torch::equal(now[i].second, start[i]));
  }
}

TEST_CASE("GRPO with LoRA trains the adapters against the adapters-off reference", "[lora][train]") {
  REQUIRE(kOneThread);
  const kaizen_test::preference_loops::Setup s;
  lm::LlamaModel base = s.model(6);
  const auto before = snapshot(base);
  lm::LoraModel lora(base, {.r = 4, .lora_alpha = 8, .target_modules = {"q_proj", "v_proj", "down_proj"}, .seed = 2});
  std::vector<torch::Tensor> start;
  for (const auto& t : lora.parameters()) start.push_back(t.detach().clone());
  lm::LoraReference reference = lora.reference();
  lm::LlamaSampler sampler(base, s.tokenizer.pad_id());  // samples with the adapters
  kaizen_test::preference_loops::DigitFraction reward{&s.tokenizer};
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) {
    return kaizen::tasks::make_prompt(s.task.generate(arm, rng), s.tokenizer);
  };
  const loop::GrpoConfig config{.steps = 3, .prompts_per_step = 4, .group_size = 4, .learning_rate = 1e-2,
                                .sampling = s.sampling(), .seed = 13, .collate = s.collate()};
  const auto run = loop::grpo(lora, sampler, reward, source, kaizen::policy_gradient::kGrpo, config, {}, &reference);
  REQUIRE(run.history.size() == 3);
  // Step 1: the policy is the base (B = 0), so the KL to the adapters-off reference is zero; later it is not.
  CHECK(std::abs(run.history[0]["kl"].get<double>()) < 1e-7);
  CHECK(run.history[2]["kl"].get<double>() > 1e-7);
  for (const auto& h : run.history) CHECK(h["grad_norm"].get<double>() > 0.0);
  check_base_unchanged(base, before);
  const auto now = lora.parameters();
  std::int64_t changed = 0;
  for (std::size_t i = 0; i < now.size(); ++i) changed += torch::equal(now[i], start[i]) ? 0 : 1;
  CHECK(changed == static_cast<std::int64_t>(now.size()));
  // The reference is still the base: its log-probs equal a plain copy's.
  lm::LlamaModel plain = s.model(6);
  const TokenBatch b = batch_of({{1, 2, 3, 4, 5, 6}});
  CHECK(torch::equal(loop::frozen_logprobs(reference, b), loop::frozen_logprobs(plain, b)));
  CHECK_FALSE(torch::equal(loop::frozen_logprobs(lora, b), loop::frozen_logprobs(plain, b)));
}

TEST_CASE("Adapters off and merge and unmerge", "[lora][merge]") {
  REQUIRE(kOneThread);
  const auto config = tiny_config(true);
  lm::LlamaModel base = tiny_model(config, 2);
  lm::LlamaModel plain = tiny_model(config, 2);
  const auto w0 = snapshot(base);
  const TokenBatch b = batch_of(kIds);
  lm::LoraModel lora(base, {.r = 3, .lora_alpha = 5, .target_modules = {"all-linear"}, .seed = 9});
  randomise_b(lora, 10);
  const torch::Tensor base_logits = logits_no_grad(plain, b);
  const torch::Tensor adapted = logits_no_grad(base, b);
  CHECK(max_abs_diff(adapted, base_logits) > 1e-3);  // the adapters matter

  SECTION("adapters off is the base forward, bit for bit") {
    {
      const auto off = lora.disable_adapters();
      CHECK_FALSE(lora.adapters_enabled());
      CHECK(torch::equal(logits_no_grad(base, b), base_logits));
      CHECK(torch::equal(base.logits(b).detach(), plain.logits(b).detach()));  // with gradient too
    }
    CHECK(lora.adapters_enabled());
    CHECK(torch::equal(logits_no_grad(base, b), adapted));
    auto ref = lora.reference();
    CHECK(torch::equal(ref.logits(b).detach(), plain.logits(b).detach()));
    CHECK(torch::equal(loop::frozen_logprobs(ref, b), loop::frozen_logprobs(plain, b)));
    CHECK(lora.adapters_enabled());
  }

  SECTION("merge gives W0 + s·B·A and the adapted logits; unmerge restores W0") {
    const double s = lora.config().scale();
    CHECK(s == Approx(5.0 / 3.0));
    lora.merge();
    CHECK(lora.merged());
    double worst = 0.0;
    const auto named = lora.named_parameters();
    const auto params = base.named_parameters();
    for (std::size_t i = 0; i < lora.targets().size(); ++i) {
      const std::string w = lora.targets()[i] + ".weight";
      const torch::Tensor expect = w0.at(w).to(torch::kDouble) +
                                   s * named[2 * i + 1].second.to(torch::kDouble).matmul(named[2 * i].second.to(torch::kDouble));
      worst = std::max(worst, max_abs_diff(params[w], expect));
    }
    INFO("max |W_merged - (W0 + s B A)| = " << worst);
    CHECK(worst <= 1e-6);
    CHECK(max_abs_diff(logits_no_grad(base, b), adapted) <= 1e-5);
    // Merged: a forward with adapters off, or with gradient into A and B, is refused.
    {
      const auto off = lora.disable_adapters();
      CHECK_THROWS_WITH(logits_no_grad(base, b), Contains("the adapters are merged into the base weights, so the model "
                                                           "cannot run with adapters off; unmerge() first"));
    }
    CHECK_THROWS_WITH(lora.logits(b), Contains("a forward with gradient would not train them"));
    CHECK_THROWS_WITH(lora.merge(), Contains("LoraModel::merge: the adapters are already merged"));
    lora.unmerge();
    CHECK_FALSE(lora.merged());
    double back = 0.0;
    std::int64_t bit_equal = 0, total = 0;
    for (const auto& t : lora.targets()) {
      const std::string w = t + ".weight";
      back = std::max(back, max_abs_diff(base.named_parameters()[w], w0.at(w)));
      bit_equal += (base.named_parameters()[w] == w0.at(w)).sum().item<std::int64_t>();
      total += w0.at(w).numel();
    }
    INFO("max |W_unmerged - W0| = " << back << ", bit-equal elements " << bit_equal << " of " << total);
    CHECK(back <= 1e-7);
    CHECK_THROWS_WITH(lora.unmerge(), Contains("LoraModel::unmerge: the adapters are not merged"));
    CHECK(max_abs_diff(logits_no_grad(base, b), adapted) <= 1e-5);
  }
}

TEST_CASE("Sampling with adapters equals sampling the merged model", "[lora][sampler]") {
  REQUIRE(kOneThread);
  const auto config = tiny_config(false);
  lm::LlamaModel base = tiny_model(config, 3);
  lm::LlamaModel plain = tiny_model(config, 3);
  lm::LoraModel lora(base, {.r = 4, .lora_alpha = 4, .target_modules = {"all-linear"}, .seed = 5});
  randomise_b(lora, 11, 0.5);
  std::vector<kaizen::Prompt> prompts(6);
  for (std::size_t i = 0; i < prompts.size(); ++i) prompts[i].tokens = {static_cast<kaizen::TokenId>(1 + i), 7, 3};
  kaizen::SamplingParams params;
  params.max_new_tokens = 10;
  params.temperature = 1.0;
  params.seed = 21;
  lm::LlamaSampler sampler(base, 0);
  const auto with_adapters = sampler.sample(prompts, params);
  lora.merge();
  const auto merged = sampler.sample(prompts, params);
  lora.unmerge();
  lm::LlamaSampler plain_sampler(plain, 0);
  const auto without = plain_sampler.sample(prompts, params);
  std::int64_t differ_from_base = 0;
  double worst = 0.0;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    INFO("prompt " << i);
    REQUIRE(with_adapters[i].tokens == merged[i].tokens);
    for (std::size_t t = 0; t < merged[i].logprobs.size(); ++t)
      worst = std::max(worst, static_cast<double>(std::abs(with_adapters[i].logprobs[t] - merged[i].logprobs[t])));
    differ_from_base += with_adapters[i].tokens != without[i].tokens ? 1 : 0;
  }
  INFO("max |log-prob difference| " << worst);
  CHECK(worst <= 1e-5);
  CHECK(differ_from_base > 0);  // the adapters change what is sampled

  // The sampler's log-probs are the trainer's log-probs of the adapted model (the fused decode path adds
  // the adapters exactly as the training forward does).
  std::vector<kaizen::Rollout> rollouts;
  for (std::size_t i = 0; i < prompts.size(); ++i) rollouts.push_back({prompts[i].tokens, with_adapters[i], 0.0, 0});
  const TokenBatch tb = kaizen::collate(std::span<const kaizen::Rollout>(rollouts), {.pad_id = 0, .vocab_size = 40});
  const torch::Tensor trainer = loop::frozen_logprobs(lora, tb);
  const torch::Tensor sampled = tb.old_logprobs;
  const torch::Tensor m = tb.completion_mask;
  CHECK(max_abs_diff(trainer.masked_select(m), sampled.masked_select(m)) <= 1e-5);
}

TEST_CASE("LoRA dropout acts only in training mode with gradient", "[lora][dropout]") {
  REQUIRE(kOneThread);
  lm::LlamaModel base = tiny_model(tiny_config(), 4);
  lm::LoraModel lora(base, {.r = 4, .lora_alpha = 8, .lora_dropout = 0.5, .target_modules = {"q_proj", "up_proj"}});
  randomise_b(lora, 12);
  const TokenBatch b = batch_of(kIds);
  base.train();
  torch::manual_seed(1);
  const torch::Tensor a1 = lora.logits(b).detach();
  const torch::Tensor a2 = lora.logits(b).detach();
  CHECK_FALSE(torch::equal(a1, a2));  // two dropout masks
  const torch::Tensor n1 = logits_no_grad(base, b), n2 = logits_no_grad(base, b);
  CHECK(torch::equal(n1, n2));  // no gradient: deterministic
  CHECK(max_abs_diff(a1, n1) > 1e-3);
  base.eval();
  const torch::Tensor e1 = lora.logits(b).detach(), e2 = lora.logits(b).detach();
  CHECK(torch::equal(e1, e2));               // eval with gradient: no dropout either
  CHECK(max_abs_diff(e1, n1) <= 1e-5);       // (the gradient path's separate GEMMs round differently)
}

TEST_CASE("LoRA adapters save as PEFT files and load back", "[lora][io]") {
  REQUIRE(kOneThread);
  const TempDir tmp("lora_io");
  const auto config = tiny_config(false);
  lm::LlamaModel base = tiny_model(config, 5);
  lm::LoraModel lora(base, {.r = 2, .lora_alpha = 6, .lora_dropout = 0.1, .target_modules = {"q_proj", "o_proj", "gate_proj"},
                            .layers_to_transform = {1}, .base_model_name_or_path = "tiny/llama", .seed = 7});
  randomise_b(lora, 13);
  lora.save(tmp.path / "a");
  const auto j = nlohmann::json::parse(read_text(tmp.path / "a" / "adapter_config.json"));
  CHECK(j["peft_type"] == "LORA");
  CHECK(j["task_type"] == "CAUSAL_LM");
  CHECK(j["r"] == 2);
  CHECK(j["lora_alpha"] == 6);
  CHECK(j["lora_dropout"].get<double>() == 0.1);
  CHECK(j["target_modules"] == nlohmann::json({"q_proj", "o_proj", "gate_proj"}));
  CHECK(j["layers_to_transform"] == nlohmann::json({1}));
  CHECK(j["bias"] == "none");
  CHECK(j["fan_in_fan_out"] == false);
  CHECK(j["use_rslora"] == false);
  CHECK(j["base_model_name_or_path"] == "tiny/llama");
  const kaizen::io::SafetensorsFile f(tmp.path / "a" / "adapter_model.safetensors");
  REQUIRE(f.tensors().size() == 6);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.at("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight").shape == std::vector<std::int64_t>{2, 32});
  CHECK(f.at("base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight").shape == std::vector<std::int64_t>{32, 2});
  CHECK(f.at("base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight").shape == std::vector<std::int64_t>{48, 2});
  CHECK(f.find("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight") == nullptr);

  lm::LlamaModel other = tiny_model(config, 5);
  lm::LoraModel loaded = lm::LoraModel::load(other, tmp.path / "a");
  CHECK(loaded.config().r == 2);
  CHECK(loaded.config().lora_alpha == 6.0);
  CHECK(loaded.config().layers_to_transform == std::vector<std::int64_t>{1});
  CHECK(loaded.targets() == lora.targets());
  for (std::size_t i = 0; i < lora.parameters().size(); ++i) CHECK(torch::equal(loaded.parameters()[i], lora.parameters()[i]));
  const TokenBatch b = batch_of(kIds);
  CHECK(torch::equal(logits_no_grad(other, b), logits_no_grad(base, b)));

  // bfloat16 files load (rounded) too.
  lora.save(tmp.path / "bf16", torch::kBFloat16);
  lm::LlamaModel third = tiny_model(config, 5);
  lm::LoraModel from_bf16 = lm::LoraModel::load(third, tmp.path / "bf16");
  CHECK(kaizen::io::SafetensorsFile(tmp.path / "bf16" / "adapter_model.safetensors").tensors()[0].dtype == kaizen::io::DType::BF16);
  CHECK(torch::equal(from_bf16.parameters()[1], lora.parameters()[1].to(torch::kBFloat16).to(torch::kFloat)));
}

namespace {

kaizen::tokenizers::BpeTokenizer tiny_tokenizer() {
  kaizen::tokenizers::BpeConfig c;
  kaizen::TokenId id = 0;
  for (char ch = 'a'; ch <= 'z'; ++ch) c.vocab.emplace_back(std::string(1, ch), id++);
  c.added_tokens = {{"<|endoftext|>", id, true, false, false}};
  c.eos_id = id;
  c.pad_id = id;
  c.pre_tokenizer = kaizen::tokenizers::family_pretokenizer("llama3");
  c.source = "tiny";
  return kaizen::tokenizers::BpeTokenizer(std::move(c));
}

/// Runs lora_peft.py with `args`; returns its exit status (77: skip).
int run_python(const std::string& args) {
  const std::string python = KAIZEN_LORA_PYTHON;
  if (python.empty() || !fs::exists(python)) return 77;
  const std::string cmd = "'" + python + "' '" KAIZEN_LORA_SCRIPT "' " + args;
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

torch::Tensor read_logits(const fs::path& p, std::int64_t B, std::int64_t T, std::int64_t V) {
  const std::string bytes = read_text(p);
  REQUIRE(bytes.size() == static_cast<std::size_t>(B * T * V * 4));
  torch::Tensor t = torch::empty({B, T, V}, torch::kFloat);
  std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

void write_ids(const fs::path& p) {
  std::ofstream out(p);
  out << nlohmann::json(kIds).dump();
}

}  // namespace

TEST_CASE("peft loads kaizen's adapters and kaizen loads peft's with the same logits", "[lora][peft]") {
  REQUIRE(kOneThread);
  const fs::path dir = fs::path(KAIZEN_LORA_TEST_DIR);
  kaizen_test::remove_tree(dir);
  fs::create_directories(dir);
  const auto tok = tiny_tokenizer();
  const TokenBatch b = batch_of(kIds);
  struct Variant {
    std::string name;
    bool biases;
    lm::LoraConfig lora;
  };
  const std::vector<Variant> variants = {
      {"llama_all_linear", true, {.r = 4, .lora_alpha = 8, .target_modules = {"all-linear"}, .seed = 1}},
      {"qwen2_qv_rslora_layer1", false,
       {.r = 3, .lora_alpha = 5, .target_modules = {"q_proj", "v_proj"}, .layers_to_transform = {1}, .use_rslora = true,
        .seed = 2}},
  };
  for (const auto& v : variants) {
    INFO(v.name);
    lm::LlamaConfig config = tiny_config(v.biases);
    if (!v.biases) config.attention_bias = true;  // the qwen2 family: q/k/v biases only
    lm::LlamaModel base = tiny_model(config, 7);
    const fs::path base_dir = dir / (v.name + "_base"), adapter_dir = dir / (v.name + "_adapter");
    kaizen::models::save_pretrained(base, tok, base_dir);
    write_ids(dir / "ids.json");
    const torch::Tensor base_logits = logits_no_grad(base, b);
    {
      // kaizen -> peft.
      lm::LoraModel lora(base, v.lora);
      randomise_b(lora, 14);
      lora.save(adapter_dir);
      const torch::Tensor ours = logits_no_grad(base, b);
      CHECK(max_abs_diff(ours, base_logits) > 1e-3);
      const int rc = run_python("load '" + base_dir.string() + "' '" + adapter_dir.string() + "' '" +
                                (dir / "ids.json").string() + "' '" + (dir / (v.name + "_peft.f32")).string() + "'");
      if (rc == 77) {
        std::cout << "KAIZEN_SKIP: python, transformers or peft is missing" << std::endl;
        return;
      }
      REQUIRE(rc == 0);
      const torch::Tensor theirs = read_logits(dir / (v.name + "_peft.f32"), 2, 12, 40);
      const double diff = max_abs_diff(ours, theirs);
      INFO("kaizen adapter in peft: max |logit difference| " << diff);
      CHECK(diff <= 1e-4);
    }
    {
      // peft -> kaizen: an adapter peft made (random B) on the same model.
      nlohmann::json cfg = {{"r", v.lora.r}, {"lora_alpha", v.lora.lora_alpha}, {"target_modules", v.lora.target_modules[0] == "all-linear" ? nlohmann::json("all-linear") : nlohmann::json(v.lora.target_modules)},
                            {"use_rslora", v.lora.use_rslora}, {"seed", 5}};
      if (!v.lora.layers_to_transform.empty()) cfg["layers_to_transform"] = v.lora.layers_to_transform;
      std::ofstream(dir / "peft_config.json") << cfg.dump();
      const fs::path made = dir / (v.name + "_made");
      const int rc = run_python("make '" + base_dir.string() + "' '" + made.string() + "' '" +
                                (dir / "peft_config.json").string() + "' '" + (dir / "ids.json").string() + "' '" +
                                (dir / (v.name + "_made.f32")).string() + "'");
      REQUIRE(rc == 0);
      lm::LoraModel lora = lm::LoraModel::load(base, made);
      CHECK(lora.config().use_rslora == v.lora.use_rslora);
      const torch::Tensor ours = logits_no_grad(base, b);
      const torch::Tensor theirs = read_logits(dir / (v.name + "_made.f32"), 2, 12, 40);
      CHECK(max_abs_diff(ours, base_logits) > 1e-3);
      const double diff = max_abs_diff(ours, theirs);
      INFO("peft adapter in kaizen: max |logit difference| " << diff);
      CHECK(diff <= 1e-4);
    }
  }
}

TEST_CASE("LoRA rejects bad configurations and states and files with messages that name them", "[lora][errors]") {
  REQUIRE(kOneThread);
  const auto config = tiny_config(false);
  lm::LlamaModel base = tiny_model(config, 8);
  using Cfg = lm::LoraConfig;
  CHECK_THROWS_WITH(lm::LoraModel(base, Cfg{.r = 0}), Contains("LoraConfig: r (the rank) must be > 0, got 0"));
  CHECK_THROWS_WITH(lm::LoraModel(base, Cfg{.lora_alpha = 0.0}), Contains("LoraConfig: lora_alpha must be finite and > 0, got 0"));
  CHECK_THROWS_WITH(lm::LoraModel(base, Cfg{.lora_dropout = 1.0}), Contains("LoraConfig: lora_dropout must lie in [0, 1), got 1"));
  CHECK_THROWS_WITH(lm::LoraModel(base, Cfg{.target_modules = {}}), Contains("LoraConfig: target_modules is empty"));
  CHECK_THROWS_WITH(lm::LoraModel(base, Cfg{.target_modules = {"all-linear", "q_proj"}}),
                    Contains("\"all-linear\" must be the only entry of target_modules, got 2 entries"));
  CHECK_THROWS_WITH(lm::LoraModel(base, Cfg{.target_modules = {"q_proj", "qq_proj"}}),
                    Contains("LoraModel: target module 'qq_proj' matches no projection of the model"));
  CHECK_THROWS_WITH(lm::LoraModel(base, Cfg{.target_modules = {"lm_head"}}),
                    Contains("target module 'lm_head' matches no projection") && Contains("lm_head are not adapted"));
  CHECK_THROWS_WITH(lm::LoraModel(base, Cfg{.target_modules = {"proj"}}), Contains("target module 'proj' matches no projection"));
  CHECK_THROWS_WITH(lm::LoraModel(base, Cfg{.target_modules = {"model.layers.0.self_attn.q_proj", "model.layers.5.mlp.up_proj"}}),
                    Contains("target module 'model.layers.5.mlp.up_proj' matches no projection"));
  CHECK_THROWS_WITH(lm::LoraModel(base, Cfg{.layers_to_transform = {2}}),
                    Contains("LoraModel: layers_to_transform holds 2, outside the model's layers [0, 2)"));
  // Nothing was attached by the failed attempts; a full path works.
  lm::LoraModel lora(base, Cfg{.r = 2, .target_modules = {"model.layers.0.self_attn.q_proj", "v_proj"}});
  CHECK(lora.targets() == std::vector<std::string>{"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                                                   "model.layers.1.self_attn.v_proj"});
  CHECK_THROWS_WITH(lm::LoraModel(base, Cfg{.target_modules = {"v_proj"}}),
                    Contains("LoraModel: model.layers.0.self_attn.v_proj already has an adapter attached"));
  CHECK_THROWS_WITH(lora.save("/proc/kaizen_no_such/x"), Contains("LoraModel::save: cannot create the folder"));
  CHECK_THROWS_WITH(lora.save("x", torch::kHalf), Contains("LoraModel::save: dtype must be float32 or bfloat16"));
  // Gradient checkpointing of the decoder layers passes the adapters to the checkpoint: same adapter gradients.
  {
    auto adapter_grads = [&](bool checkpointing) {
      base.set_gradient_checkpointing(checkpointing);
      for (auto& t : lora.parameters()) t.mutable_grad() = torch::Tensor();
      for (auto& t : lora.parameters()) t.data().uniform_(-0.1, 0.1);  // B != 0, so A gets a gradient too
      torch::manual_seed(3);
      lora.logits(batch_of(kIds)).pow(2).sum().backward();
      std::vector<torch::Tensor> g;
      for (auto& t : lora.parameters()) g.push_back(t.grad().defined() ? t.grad().clone() : torch::Tensor());
      return g;
    };
    torch::manual_seed(11);
    const auto with = adapter_grads(true);
    torch::manual_seed(11);
    const auto without = adapter_grads(false);
    REQUIRE(with.size() == without.size());
    for (std::size_t i = 0; i < with.size(); ++i) {
      REQUIRE(with[i].defined());
      REQUIRE(without[i].defined());
      CHECK(with[i].abs().sum().item<double>() > 0.0);
      // Float32 rounding only: the recomputation runs the layer again (relative to the gradient's scale).
      CHECK((with[i] - without[i]).abs().max().item<double>() <= 1e-5 * without[i].abs().max().item<double>());
    }
  }

  // Files.
  const TempDir tmp("lora_errors");
  lora.save(tmp.path / "good");
  lm::LlamaModel other = tiny_model(config, 8);
  CHECK_THROWS_WITH(lm::LoraModel::load(other, tmp.path / "missing"), Contains("adapter_config.json': cannot open the file"));
  const std::string good_config = read_text(tmp.path / "good" / "adapter_config.json");
  auto with_config = [&](const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
    const fs::path d = tmp.path / name;
    fs::create_directories(d);
    nlohmann::json j = nlohmann::json::parse(good_config);
    edit(j);
    std::ofstream(d / "adapter_config.json") << j.dump();
    fs::copy_file(tmp.path / "good" / "adapter_model.safetensors", d / "adapter_model.safetensors");
    return d;
  };
  CHECK_THROWS_WITH(lm::LoraModel::load(other, with_config("ia3", [](auto& j) { j["peft_type"] = "IA3"; })),
                    Contains("peft_type must be \"LORA\", got \"IA3\""));
  CHECK_THROWS_WITH(lm::LoraModel::load(other, with_config("r0", [](auto& j) { j["r"] = 0; })),
                    Contains("LoraConfig: r (the rank) must be > 0, got 0"));
  CHECK_THROWS_WITH(lm::LoraModel::load(other, with_config("bias", [](auto& j) { j["bias"] = "all"; })),
                    Contains("bias must be \"none\", got \"all\""));
  CHECK_THROWS_WITH(lm::LoraModel::load(other, with_config("fifo", [](auto& j) { j["fan_in_fan_out"] = true; })),
                    Contains("fan_in_fan_out is true"));
  CHECK_THROWS_WITH(lm::LoraModel::load(other, with_config("dora", [](auto& j) { j["use_dora"] = true; })),
                    Contains("use_dora is true (DoRA)"));
  CHECK_THROWS_WITH(lm::LoraModel::load(other, with_config("mts", [](auto& j) { j["modules_to_save"] = {"lm_head"}; })),
                    Contains("modules_to_save is set ([\"lm_head\"])"));
  CHECK_THROWS_WITH(lm::LoraModel::load(other, with_config("regex", [](auto& j) { j["target_modules"] = ".*q_proj"; })),
                    Contains("target_modules \".*q_proj\" is a regular expression"));
  CHECK_THROWS_WITH(lm::LoraModel::load(other, with_config("unknown", [](auto& j) { j["target_modules"] = {"w_q"}; })),
                    Contains("target module 'w_q' matches no projection"));
  CHECK_THROWS_WITH(lm::LoraModel::load(other, with_config("type", [](auto& j) { j["r"] = "eight"; })),
                    Contains("key \"r\" has the wrong type"));
  // A config whose rank disagrees with the tensors: wrong shapes, named.
  CHECK_THROWS_WITH(lm::LoraModel::load(other, with_config("r4", [](auto& j) { j["r"] = 4; })),
                    Contains("tensor 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' has shape [2, 32], "
                             "expected [4, 32]"));
  // A config that adapts fewer modules than the file holds: an unexpected tensor; more: a missing one.
  CHECK_THROWS_WITH(lm::LoraModel::load(other, with_config("fewer", [](auto& j) { j["target_modules"] = {"q_proj"}; })),
                    Contains("unexpected tensor 'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight'"));
  CHECK_THROWS_WITH(lm::LoraModel::load(other, with_config("more", [](auto& j) { j["target_modules"] = {"q_proj", "v_proj", "k_proj"}; })),
                    Contains("missing tensor 'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight'"));
  // A file with a wrongly shaped B.
  {
    const fs::path d = tmp.path / "shape";
    fs::create_directories(d);
    std::ofstream(d / "adapter_config.json") << good_config;
    std::vector<torch::Tensor> keep;
    std::vector<kaizen::io::TensorToWrite> tensors;
    for (const auto& [name, t] : lora.named_parameters()) {
      torch::Tensor c = name.ends_with("layers.1.self_attn.v_proj.lora_B.weight") ? torch::zeros({15, 2}) : t.detach().contiguous();
      keep.push_back(c);
      tensors.push_back({name, kaizen::io::DType::F32, {c.size(0), c.size(1)},
                         std::span<const std::byte>(static_cast<const std::byte*>(c.data_ptr()), c.nbytes())});
    }
    kaizen::io::write_safetensors(d / "adapter_model.safetensors", tensors);
    CHECK_THROWS_WITH(lm::LoraModel::load(other, d),
                      Contains("tensor 'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight' has shape [15, 2], "
                               "expected [16, 2]"));
  }
  // The failed loads left `other` without adapters; loading into a merged model is refused.
  lm::LoraModel ok = lm::LoraModel::load(other, tmp.path / "good");
  ok.merge();
  CHECK_THROWS_WITH(ok.load_weights(tmp.path / "good"), Contains("LoraModel::load_weights: the adapters are merged"));
}
