// Loading checkpoints into lm::LlamaModel against transformers: tiny random Llama / Qwen2 / Qwen3
// (logits and greedy continuations), SmolLM2-135M-Instruct from its GGUF (logits), and refusals.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/models/pretrained.hpp>

#include "io_fixtures.hpp"

namespace fs = std::filesystem;
using kaizen::models::from_gguf;
using kaizen::models::from_pretrained;

namespace {

torch::Tensor ids_tensor(const nlohmann::json& rows) {
  std::vector<std::int64_t> flat;
  for (const auto& r : rows)
    for (const auto& v : r) flat.push_back(v.get<std::int64_t>());
  return torch::tensor(flat, torch::kLong).view({static_cast<std::int64_t>(rows.size()), -1});
}

torch::Tensor full_logits(kaizen::lm::LlamaModel& m, const torch::Tensor& ids) {
  const auto B = ids.size(0), T = ids.size(1);
  const torch::Tensor pos = torch::arange(T, torch::kLong).unsqueeze(0).expand({B, T}).contiguous();
  const torch::Tensor mask = torch::ones({B, T}, torch::kBool);
  torch::NoGradGuard g;
  return m.project(m.forward(ids, pos, mask)).to(torch::kFloat);
}

/// Greedy continuation of `prompt` [1, T] by `n` tokens, through the KV cache.
std::vector<std::int64_t> greedy(kaizen::lm::LlamaModel& m, const torch::Tensor& prompt, int n) {
  torch::NoGradGuard g;
  kaizen::lm::KvCache cache;
  std::vector<std::int64_t> out(prompt.data_ptr<std::int64_t>(), prompt.data_ptr<std::int64_t>() + prompt.numel());
  torch::Tensor ids = prompt;
  std::int64_t past = 0;
  for (int i = 0; i < n; ++i) {
    const auto T = ids.size(1);
    const torch::Tensor pos = torch::arange(past, past + T, torch::kLong).unsqueeze(0);
    const torch::Tensor h = m.forward(ids, pos, torch::ones({1, T}, torch::kBool), &cache);
    const std::int64_t next = m.project(h.select(1, T - 1)).argmax(-1).item<std::int64_t>();
    out.push_back(next);
    past += T;
    ids = torch::tensor({next}, torch::kLong).view({1, 1});
  }
  return out;
}

torch::Tensor reference_logits(const fs::path& dir, const nlohmann::json& ref) {
  std::vector<float> v = io_test::read_f32(dir / "logits.f32");
  std::vector<std::int64_t> shape = ref.at("logits_shape").get<std::vector<std::int64_t>>();
  return torch::from_blob(v.data(), shape, torch::kFloat).clone();
}

/// Empties (or creates) a flat folder. Not std::filesystem::remove_all: the libtorch.so of the torch
/// wheel exports its own copy of that symbol, which crashes (null call) when the folder holds files.
void fresh_folder(const fs::path& dir) {
  if (fs::is_directory(dir)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
    for (const auto& f : files) REQUIRE(::unlink(f.c_str()) == 0);
  }
  fs::create_directories(dir);
}

void copy_folder(const fs::path& from, const fs::path& to) {
  fresh_folder(to);
  for (const auto& e : fs::directory_iterator(from)) fs::copy_file(e.path(), to / e.path().filename());
}

void edit_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(io_test::read_text(dir / "config.json"));
  edit(j);
  std::ofstream(dir / "config.json") << j.dump(1);
}

}  // namespace

TEST_CASE("models: tiny transformers checkpoints give transformers' logits and greedy tokens", "[models]") {
  const auto fx = io_test::fixture("tiny");
  if (!fx) return;
  for (const char* kind : {"llama", "qwen2", "qwen3"}) {
    INFO("family " << kind);
    const fs::path dir = *fx / kind;
    const auto ref = nlohmann::json::parse(io_test::read_text(dir / "reference.json"));
    auto p = from_pretrained(dir);
    const torch::Tensor ids = ids_tensor(ref.at("ids"));
    const torch::Tensor expected = reference_logits(dir, ref);
    const torch::Tensor got = full_logits(*p.model, ids);
    REQUIRE(got.sizes() == expected.sizes());
    const double diff = (got - expected).abs().max().item<double>();
    const double scale = expected.abs().max().item<double>();
    INFO("max |logit diff| " << diff << " (max |logit| " << scale << ")");
    CHECK(diff <= 1e-4);
    CHECK(scale > 0.5);  // the random weights give logits far from zero, so the comparison means something

    const auto want = ref.at("generated").get<std::vector<std::int64_t>>();
    const auto tokens = greedy(*p.model, ids.narrow(0, 0, 1), 32);
    CHECK(tokens == want);

    // bfloat16: the same weights rounded; logits stay close to float32's (measured ≈ 1e-2 of their range).
    auto b = from_pretrained(dir, {.dtype = torch::kBFloat16});
    REQUIRE(b.model->model->embed_tokens->weight.scalar_type() == torch::kBFloat16);
    const double bdiff = (full_logits(*b.model, ids) - expected).abs().max().item<double>();
    INFO("bf16 max |logit diff| " << bdiff);
    CHECK(bdiff <= 0.1 * scale);
    CHECK(bdiff > 0.0);
  }
}

TEST_CASE("models: the configuration maps every checkpoint feature", "[models]") {
  const auto fx = io_test::fixture("tiny");
  if (!fx) return;
  const auto llama = from_pretrained(*fx / "llama").config;
  CHECK((llama.attention_bias && llama.o_bias && llama.mlp_bias && !llama.qk_norm && !llama.tie_word_embeddings));
  CHECK(llama.rope_scaling.type == kaizen::io::RopeType::Llama3);
  CHECK(llama.rope_theta == 500000.0);
  CHECK(llama.rms_norm_eps == 1e-5);
  const auto qwen2 = from_pretrained(*fx / "qwen2").config;
  CHECK((qwen2.attention_bias && !qwen2.o_bias && !qwen2.mlp_bias && !qwen2.qk_norm && qwen2.tie_word_embeddings));
  const auto qwen3 = from_pretrained(*fx / "qwen3");
  CHECK((qwen3.config.qk_norm && !qwen3.config.attention_bias && qwen3.config.head_dim() == 24));
  CHECK(qwen3.config.rope_scaling.type == kaizen::io::RopeType::Linear);
  CHECK(qwen3.model->model->layers->ptr<kaizen::lm::detail::DecoderLayerImpl>(0)->self_attn->q_proj->weight.sizes() ==
        torch::IntArrayRef({96, 64}));
}

TEST_CASE("models: SmolLM2-135M-Instruct from GGUF gives transformers' logits", "[models]") {
  const auto fx = io_test::fixture("smollm2");
  if (!fx) return;
  const auto ref = nlohmann::json::parse(io_test::read_text(*fx / "reference.json"));
  auto p = from_gguf(ref.at("gguf").get<std::string>());
  CHECK(p.config.num_hidden_layers == 30);
  CHECK(p.config.hidden_size == 576);
  CHECK(p.config.tie_word_embeddings);
  const torch::Tensor expected = reference_logits(*fx, ref);
  const torch::Tensor got = full_logits(*p.model, ids_tensor(ref.at("ids")));
  REQUIRE(got.sizes() == expected.sizes());
  const double diff = (got - expected).abs().max().item<double>();
  const double scale = expected.abs().max().item<double>();
  INFO("max |logit diff| " << diff << ", max |logit| " << scale);
  CHECK(diff <= 1e-3 * scale);
  CHECK((got.argmax(-1) == expected.argmax(-1)).all().item<bool>());
}

TEST_CASE("models: bad checkpoints are refused with the names", "[models]") {
  const auto fx = io_test::fixture("tiny");
  if (!fx) return;
  const fs::path work = io_test::fixtures_dir() / "bad";

  SECTION("config and tensor shapes disagree") {
    copy_folder(*fx / "qwen2", work / "shape");
    edit_config(work / "shape", [](nlohmann::json& j) { j["intermediate_size"] = 128; });
    REQUIRE_THROWS_WITH(from_pretrained(work / "shape"),
                        Catch::Contains("tensor 'model.layers.0.mlp.down_proj.weight' has shape [64, 96]") &&
                            Catch::Contains("expects [64, 128]"));
  }
  SECTION("a tensor is missing") {
    const fs::path dir = work / "missing";
    fresh_folder(dir);
    fs::copy_file(*fx / "qwen3" / "config.json", dir / "config.json");
    const kaizen::io::SafetensorsCheckpoint ckpt(*fx / "qwen3");
    std::vector<std::vector<std::byte>> data;
    std::vector<kaizen::io::TensorToWrite> tensors;
    const auto names = ckpt.names();
    data.reserve(names.size());
    for (const auto& name : names) {
      if (name == "model.layers.1.self_attn.k_norm.weight") continue;
      const auto v = ckpt.view(name);
      data.emplace_back(v.bytes.begin(), v.bytes.end());
      tensors.push_back({name, v.info->dtype, v.info->shape, data.back()});
    }
    kaizen::io::write_safetensors(dir / "model.safetensors", tensors);
    REQUIRE_THROWS_WITH(from_pretrained(dir), Catch::Contains("missing tensor 'model.layers.1.self_attn.k_norm.weight'"));
  }
  SECTION("an unsupported architecture") {
    copy_folder(*fx / "llama", work / "arch");
    edit_config(work / "arch", [](nlohmann::json& j) {
      j["architectures"] = {"MistralForCausalLM"};
      j["model_type"] = "mistral";
    });
    REQUIRE_THROWS_WITH(from_pretrained(work / "arch"), Catch::Contains("MistralForCausalLM"));
  }
  SECTION("not a folder, or a dtype the loader does not offer") {
    REQUIRE_THROWS_WITH(from_pretrained(work / "nowhere"), Catch::Contains("is not a folder"));
    REQUIRE_THROWS_WITH(from_pretrained(*fx / "qwen2", {.dtype = torch::kHalf}),
                        Catch::Contains("dtype must be float32 or bfloat16"));
  }
}

TEST_CASE("models: LlamaConfig::from refuses unusable fields by name", "[models]") {
  kaizen::io::DecoderConfig d;
  d.vocab_size = 10;
  d.hidden_size = 8;
  d.intermediate_size = 16;
  d.num_hidden_layers = 1;
  d.num_attention_heads = 2;
  d.num_key_value_heads = 2;
  d.head_dim = 4;
  d.max_position_embeddings = 16;
  const auto ok = kaizen::lm::LlamaConfig::from(d);
  CHECK(ok.explicit_head_dim == 0);
  CHECK(ok.head_dim() == 4);
  d.head_dim = 6;
  CHECK(kaizen::lm::LlamaConfig::from(d).head_dim() == 6);
  d.head_dim = 3;
  REQUIRE_THROWS_WITH(kaizen::lm::LlamaConfig::from(d), Catch::Contains("head_dim") && Catch::Contains("even"));
  d.head_dim = 4;
  d.num_key_value_heads = 3;
  REQUIRE_THROWS_WITH(kaizen::lm::LlamaConfig::from(d), Catch::Contains("num_key_value_heads"));
  d.num_key_value_heads = 2;
  d.rope_scaling.type = kaizen::io::RopeType::Llama3;
  REQUIRE_THROWS_WITH(kaizen::lm::LlamaConfig::from(d), Catch::Contains("original_max_position_embeddings"));
  d.rope_scaling.type = kaizen::io::RopeType::Linear;
  d.rope_scaling.factor = 0.0;
  REQUIRE_THROWS_WITH(kaizen::lm::LlamaConfig::from(d), Catch::Contains("rope_scaling.factor"));
}
