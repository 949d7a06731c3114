// config.json and GGUF metadata -> DecoderConfig, the expected tensor set and its checks, the GGUF ->
// Hugging Face name map and q/k unpermutation (against transformers loading the same GGUF), and
// rope frequencies (against transformers' rope initialisation).
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <kaizen/io/gguf_model.hpp>
#include <kaizen/io/hf_config.hpp>

#include "io_fixtures.hpp"

namespace fs = std::filesystem;
using namespace kaizen::io;
using Catch::Contains;

namespace {

const fs::path kData = KAIZEN_IO_DATA_DIR;

nlohmann::json load_json(const fs::path& p) { return nlohmann::json::parse(io_test::read_text(p)); }

DecoderConfig with(const std::string& file, const std::function<void(nlohmann::json&)>& edit) {
  auto j = load_json(kData / file);
  edit(j);
  return parse_hf_config(j, file);
}

}  // namespace

TEST_CASE("realistic config.json files of each family parse with the right fields", "[io][hf_config]") {
  const auto l2 = load_hf_config(kData / "llama2_7b.json");
  CHECK(l2.family == DecoderFamily::Llama);
  CHECK(l2.architecture == "LlamaForCausalLM");
  CHECK(l2.hidden_size == 4096);
  CHECK(l2.num_key_value_heads == 32);
  CHECK(l2.head_dim == 128);
  CHECK(l2.rope_theta == 10000.0);
  CHECK(l2.rope_scaling.type == RopeType::Default);
  CHECK(l2.rms_norm_eps == 1e-5);
  CHECK_FALSE(l2.tie_word_embeddings);
  CHECK(l2.torch_dtype == "float16");
  CHECK_FALSE(l2.qkv_bias);

  const auto l3 = load_hf_config(kData / "llama3_1_8b_instruct.json");
  CHECK(l3.num_key_value_heads == 8);
  CHECK(l3.vocab_size == 128256);
  CHECK(l3.rope_theta == 500000.0);
  CHECK(l3.rope_scaling.type == RopeType::Llama3);
  CHECK(l3.rope_scaling.factor == 8.0);
  CHECK(l3.rope_scaling.low_freq_factor == 1.0);
  CHECK(l3.rope_scaling.high_freq_factor == 4.0);
  CHECK(l3.rope_scaling.original_max_position_embeddings == 8192);
  CHECK(l3.eos_token_ids == std::vector<std::int64_t>{128001, 128008, 128009});
  CHECK(l3.bos_token_id == 128000);

  const auto sm = load_hf_config(kData / "smollm2_135m_instruct.json");
  CHECK(sm.num_hidden_layers == 30);
  CHECK(sm.hidden_size == 576);
  CHECK(sm.intermediate_size == 1536);
  CHECK(sm.num_attention_heads == 9);
  CHECK(sm.num_key_value_heads == 3);
  CHECK(sm.head_dim == 64);
  CHECK(sm.rope_theta == 100000.0);
  CHECK(sm.tie_word_embeddings);
  CHECK(sm.pad_token_id == 2);

  const auto tl = load_hf_config(kData / "tinyllama_1_1b_chat.json");
  CHECK(tl.num_hidden_layers == 22);
  CHECK(tl.num_key_value_heads == 4);
  CHECK(tl.head_dim == 64);
  CHECK(tl.max_position_embeddings == 2048);

  const auto q2 = load_hf_config(kData / "qwen2_5_0_5b_instruct.json");
  CHECK(q2.family == DecoderFamily::Qwen2);
  CHECK(q2.qkv_bias);
  CHECK_FALSE(q2.o_bias);
  CHECK_FALSE(q2.qk_norm);
  CHECK(q2.head_dim == 64);
  CHECK(q2.rope_theta == 1e6);
  CHECK(q2.tie_word_embeddings);

  const auto q3 = load_hf_config(kData / "qwen3_0_6b.json");
  CHECK(q3.family == DecoderFamily::Qwen3);
  CHECK(q3.head_dim == 128);  // explicit, != 1024 / 16
  CHECK(q3.qk_norm);
  CHECK_FALSE(q3.qkv_bias);
  CHECK(q3.max_position_embeddings == 40960);
  const auto shapes = expected_tensor_shapes(q3);
  CHECK(shapes.at("model.layers.27.self_attn.q_proj.weight") == std::vector<std::int64_t>{2048, 1024});
  CHECK(shapes.at("model.layers.0.self_attn.k_norm.weight") == std::vector<std::int64_t>{128});
  CHECK_FALSE(shapes.contains("lm_head.weight"));
  CHECK(shapes.size() == 2 + 28 * 11);

  // rope variants written by transformers 4.x with the "type" spelling
  const auto lin = with("llama2_7b.json", [](auto& j) { j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}}; });
  CHECK(lin.rope_scaling.type == RopeType::Linear);
  CHECK(lin.rope_scaling.factor == 2.0);
  const auto dyn = with("llama2_7b.json", [](auto& j) { j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 4.0}}; });
  CHECK(dyn.rope_scaling.type == RopeType::Dynamic);
  const auto v5 = with("llama2_7b.json", [](auto& j) {
    j.erase("rope_scaling");
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 20000.0}};
  });
  CHECK(v5.rope_theta == 20000.0);
}

TEST_CASE("unknown architectures and unsupported options are refused with the key and value named", "[io][hf_config]") {
  auto refuse = [](const std::string& file, const std::function<void(nlohmann::json&)>& edit) {
    return [=] { (void)with(file, edit); };
  };
  CHECK_THROWS_WITH(refuse("llama2_7b.json", [](auto& j) { j["architectures"] = {"MistralForCausalLM"}; })(),
                    Contains("llama2_7b.json") && Contains("key 'architectures' = \"MistralForCausalLM\" is not supported"));
  CHECK_THROWS_WITH(refuse("llama2_7b.json", [](auto& j) { j.erase("architectures"); j["model_type"] = "gemma"; })(),
                    Contains("key 'model_type' = \"gemma\" is not supported"));
  CHECK_THROWS_WITH(refuse("llama2_7b.json", [](auto& j) { j["model_type"] = "qwen2"; })(),
                    Contains("disagrees with 'model_type' = \"qwen2\""));
  CHECK_THROWS_WITH(refuse("llama2_7b.json", [](auto& j) { j["hidden_act"] = "gelu"; })(),
                    Contains("key 'hidden_act' = \"gelu\" is not supported"));
  CHECK_THROWS_WITH(refuse("llama2_7b.json", [](auto& j) { j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}}; })(),
                    Contains("key 'rope_scaling.rope_type' = \"yarn\" is not supported"));
  CHECK_THROWS_WITH(refuse("llama2_7b.json", [](auto& j) { j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}, {"beta_fast", 32}}; })(),
                    Contains("key 'rope_scaling.beta_fast' = 32 is not supported"));
  CHECK_THROWS_WITH(refuse("llama3_1_8b_instruct.json", [](auto& j) { j["rope_scaling"].erase("low_freq_factor"); })(),
                    Contains("llama3 rope scaling needs key 'rope_scaling.low_freq_factor'"));
  CHECK_THROWS_WITH(refuse("qwen2_5_0_5b_instruct.json", [](auto& j) { j["use_sliding_window"] = true; })(),
                    Contains("key 'use_sliding_window' = true is not supported"));
  CHECK_THROWS_WITH(refuse("qwen3_0_6b.json", [](auto& j) { j["layer_types"] = {"full_attention", "sliding_attention"}; })(),
                    Contains("key 'layer_types' entry \"sliding_attention\" is not supported"));
  CHECK_THROWS_WITH(refuse("qwen3_0_6b.json", [](auto& j) { j["quantization_config"] = {{"quant_method", "awq"}}; })(),
                    Contains("key 'quantization_config'") && Contains("awq"));
  CHECK_THROWS_WITH(refuse("llama2_7b.json", [](auto& j) { j.erase("hidden_size"); })(),
                    Contains("missing required key 'hidden_size'"));
  CHECK_THROWS_WITH(refuse("llama2_7b.json", [](auto& j) { j["num_key_value_heads"] = 5; })(),
                    Contains("num_attention_heads 32 is not a multiple of num_key_value_heads 5"));
  CHECK_THROWS_WITH(refuse("llama2_7b.json", [](auto& j) { j["num_hidden_layers"] = 1LL << 40; })(),
                    Contains("'num_hidden_layers' = 1099511627776 exceeds the limit of 4096"));
  CHECK_THROWS_WITH(refuse("llama2_7b.json", [](auto& j) { j["head_dim"] = -2; })(), Contains("'head_dim' must be positive, got -2"));
  CHECK_THROWS_WITH(refuse("qwen2_5_0_5b_instruct.json", [](auto& j) { j["head_dim"] = 32; })(),
                    Contains("key 'head_dim' = 32 must equal hidden_size / num_attention_heads for qwen2"));
  CHECK_THROWS_WITH(refuse("llama2_7b.json", [](auto& j) { j["hidden_size"] = "4096"; })(),
                    Contains("key 'hidden_size' must be an integer, got \"4096\""));
  CHECK_THROWS_WITH(parse_hf_config_text("{\"model_type\": \"llama\",", "broken.json"),
                    Contains("config.json 'broken.json'") && Contains("malformed JSON"));
  CHECK_THROWS_WITH(load_hf_config("/nonexistent/config.json"), Contains("cannot open '/nonexistent/config.json'"));
}

TEST_CASE("check_tensors names the missing, misshapen, wrongly typed or unexpected tensor", "[io][hf_config]") {
  const auto c = load_hf_config(kData / "qwen2_5_0_5b_instruct.json");
  std::map<std::string, TensorSpec, std::less<>> t;
  for (const auto& [name, shape] : expected_tensor_shapes(c)) t[name] = {"BF16", shape};
  CHECK_NOTHROW(check_tensors(c, t, "ok"));
  auto missing = t;
  missing.erase("model.layers.3.self_attn.k_proj.bias");
  CHECK_THROWS_WITH(check_tensors(c, missing, "ckpt"), Contains("ckpt: missing tensor 'model.layers.3.self_attn.k_proj.bias' (expected shape [128])"));
  auto shape = t;
  shape["model.layers.0.mlp.up_proj.weight"].shape = {4864, 895};
  CHECK_THROWS_WITH(check_tensors(c, shape, "ckpt"),
                    Contains("tensor 'model.layers.0.mlp.up_proj.weight' has shape [4864, 895]") && Contains("expects [4864, 896]"));
  auto dtype = t;
  dtype["model.norm.weight"].dtype = "I64";
  CHECK_THROWS_WITH(check_tensors(c, dtype, "ckpt"), Contains("tensor 'model.norm.weight' has dtype I64, expected one of BF16 F16 F32"));
  auto extra = t;
  extra["model.layers.24.mlp.up_proj.weight"] = {"BF16", {4864, 896}};
  CHECK_THROWS_WITH(check_tensors(c, extra, "ckpt"), Contains("unexpected tensor 'model.layers.24.mlp.up_proj.weight'"));
  auto tied_head = t;  // a tied lm_head of the right shape is tolerated
  tied_head["lm_head.weight"] = {"BF16", {151936, 896}};
  CHECK_NOTHROW(check_tensors(c, tied_head, "ckpt"));
}

TEST_CASE("tiny random checkpoints written by transformers: config and tensor set agree", "[io][hf_config]") {
  const auto dir = io_test::fixture("hf_tiny");
  if (!dir) return;
  const auto summary = load_json(*dir / "summary.json");
  for (const auto& [kind, s] : summary.items()) {
    INFO(kind);
    const auto c = load_hf_config(*dir / kind);
    CHECK(c.vocab_size == s["vocab_size"].get<std::int64_t>());
    CHECK(c.hidden_size == s["hidden_size"].get<std::int64_t>());
    CHECK(c.intermediate_size == s["intermediate_size"].get<std::int64_t>());
    CHECK(c.num_hidden_layers == s["num_hidden_layers"].get<std::int64_t>());
    CHECK(c.num_attention_heads == s["num_attention_heads"].get<std::int64_t>());
    CHECK(c.num_key_value_heads == s["num_key_value_heads"].get<std::int64_t>());
    CHECK(c.head_dim == s["head_dim"].get<std::int64_t>());
    CHECK(c.max_position_embeddings == s["max_position_embeddings"].get<std::int64_t>());
    CHECK(c.rms_norm_eps == s["rms_norm_eps"].get<double>());
    CHECK(c.rope_theta == s["rope_theta"].get<double>());
    CHECK(rope_type_name(c.rope_scaling.type) == s["rope_type"].get<std::string>());
    CHECK(c.tie_word_embeddings == s["tie_word_embeddings"].get<bool>());
    // the state dict transformers builds is exactly the expected tensor set (+ a tied lm_head)
    auto expected = expected_tensor_shapes(c);
    if (c.tie_word_embeddings) expected["lm_head.weight"] = {c.vocab_size, c.hidden_size};
    std::vector<std::string> names;
    for (const auto& [n, shape] : expected) names.push_back(n);
    CHECK(names == s["tensors"].get<std::vector<std::string>>());
    // and the saved (sharded) checkpoint passes the check
    SafetensorsCheckpoint ckpt(*dir / kind);
    CHECK_NOTHROW(check_tensors(c, tensor_specs(ckpt), kind));
  }
  const auto c = load_hf_config(*dir / "qwen2");
  SafetensorsCheckpoint ckpt(*dir / "qwen2");
  const TensorCheckOptions bf16_only{.allowed_dtypes = {"BF16"}};
  CHECK_THROWS_WITH(check_tensors(c, tensor_specs(ckpt), "qwen2", bf16_only), Contains("has dtype F32, expected one of BF16"));
}

TEST_CASE("rope inverse frequencies equal transformers' for default, linear, dynamic and llama3", "[io][hf_config]") {
  const auto dir = io_test::fixture("rope");
  if (!dir) return;
  const auto cases = load_json(*dir / "rope.json");
  for (const auto& [name, cs] : cases.items()) {
    INFO(name);
    nlohmann::json cfg = {{"model_type", "llama"}, {"vocab_size", 10}, {"hidden_size", 1024}, {"intermediate_size", 8},
                          {"num_hidden_layers", 1}, {"num_attention_heads", 8},
                          {"max_position_embeddings", name == "llama3" ? 131072 : 2048},
                          {"rope_parameters", cs["config"]}};
    const auto c = parse_hf_config(cfg, name);
    const auto f = rope_inverse_frequencies(c, cs["seq_len"].get<std::int64_t>());
    const auto want = cs["inv_freq"].get<std::vector<double>>();
    REQUIRE(f.size() == want.size());
    for (std::size_t i = 0; i < f.size(); ++i) CHECK(f[i] == Approx(want[i]).epsilon(2e-6));  // transformers works in float32
  }
}

TEST_CASE("GGUF tensor names map to Hugging Face names and back", "[io][gguf_model]") {
  CHECK(gguf_to_hf_name("token_embd.weight") == "model.embed_tokens.weight");
  CHECK(gguf_to_hf_name("output_norm.weight") == "model.norm.weight");
  CHECK(gguf_to_hf_name("output.weight") == "lm_head.weight");
  CHECK(gguf_to_hf_name("blk.12.attn_q.weight") == "model.layers.12.self_attn.q_proj.weight");
  CHECK(gguf_to_hf_name("blk.0.attn_k.bias") == "model.layers.0.self_attn.k_proj.bias");
  CHECK(gguf_to_hf_name("blk.3.attn_output.weight") == "model.layers.3.self_attn.o_proj.weight");
  CHECK(gguf_to_hf_name("blk.3.attn_q_norm.weight") == "model.layers.3.self_attn.q_norm.weight");
  CHECK(gguf_to_hf_name("blk.29.ffn_down.weight") == "model.layers.29.mlp.down_proj.weight");
  CHECK(gguf_to_hf_name("blk.1.attn_norm.weight") == "model.layers.1.input_layernorm.weight");
  CHECK(gguf_to_hf_name("blk.1.ffn_norm.weight") == "model.layers.1.post_attention_layernorm.weight");
  CHECK_FALSE(gguf_to_hf_name("rope_freqs.weight"));
  CHECK_FALSE(gguf_to_hf_name("blk.01.attn_q.weight"));
  CHECK_FALSE(gguf_to_hf_name("blk.x.attn_q.weight"));
  CHECK_FALSE(gguf_to_hf_name("blk.1.attn_q"));
  const auto c = load_hf_config(kData / "qwen3_0_6b.json");
  for (const auto& [name, shape] : expected_tensor_shapes(c)) {
    const auto g = hf_to_gguf_name(name);
    REQUIRE(g);
    CHECK(gguf_to_hf_name(*g) == name);
  }
}

TEST_CASE("q/k row permutation: hand example, and unpermute inverts permute", "[io][gguf_model]") {
  // one head of D = 4 rows, 1 column: HF rows [a0 a1 b0 b1] (pairs (0,2), (1,3)) are stored [a0 b0 a1 b1]
  std::vector<float> stored{0, 2, 1, 3};
  unpermute_qk_rows(stored, 4, 1, 1);
  CHECK(stored == std::vector<float>{0, 1, 2, 3});
  std::vector<float> x(3 * 8 * 5);
  std::iota(x.begin(), x.end(), 0.0f);
  auto y = x;
  permute_qk_rows(y, 24, 5, 3);
  CHECK(y != x);
  unpermute_qk_rows(y, 24, 5, 3);
  CHECK(y == x);
  CHECK_THROWS_WITH(unpermute_qk_rows(y, 24, 5, 5), Contains("rows 24 must split into 5 heads"));
  CHECK_THROWS_WITH(unpermute_qk_rows(y, 24, 4, 3), Contains("is not [24, 4]"));
}

TEST_CASE("SmolLM2 GGUF: DecoderConfig from metadata, tensor set, and q/k equal to transformers' loading", "[io][gguf_model][smollm2]") {
  const auto dir = io_test::fixture("gguf_smollm2");
  if (!dir) return;
  GgufFile f(load_json(*dir / "manifest.json")["path"].get<std::string>());
  const auto c = decoder_config_from_gguf(f);
  CHECK(c.family == DecoderFamily::Llama);
  CHECK(c.num_hidden_layers == 30);
  CHECK(c.hidden_size == 576);
  CHECK(c.intermediate_size == 1536);
  CHECK(c.num_attention_heads == 9);
  CHECK(c.num_key_value_heads == 3);
  CHECK(c.head_dim == 64);
  CHECK(c.vocab_size == 49152);
  CHECK(c.max_position_embeddings == 8192);
  CHECK(c.rope_theta == 100000.0);
  CHECK(c.rms_norm_eps == static_cast<double>(1e-5f));
  CHECK(c.tie_word_embeddings);
  CHECK_FALSE(c.qkv_bias);
  CHECK(c.bos_token_id == 1);
  CHECK(c.eos_token_ids == std::vector<std::int64_t>{2});
  CHECK(c.pad_token_id == 2);
  CHECK_NOTHROW(check_tensors(c, tensor_specs(f), f.path(), gguf_check_options()));
  CHECK_THROWS_WITH(check_tensors(c, tensor_specs(f), f.path()),
                    Contains("SmolLM2-135M-Instruct.Q4_1.gguf") && Contains("has dtype Q8_0, expected one of BF16 F16 F32"));
  CHECK_THROWS_WITH(load_hf_tensor(f, c, "model.layers.30.self_attn.q_proj.weight"),
                    Contains("missing tensor 'blk.30.attn_q.weight'"));
  // the same config the realistic config.json gives
  const auto hf = load_hf_config(kData / "smollm2_135m_instruct.json");
  CHECK(expected_tensor_shapes(hf) == expected_tensor_shapes(c));

  const auto ref = io_test::fixture("hf_gguf");
  if (!ref) return;
  const auto summary = load_json(*ref / "summary.json");
  CHECK(summary["num_hidden_layers"] == c.num_hidden_layers);
  CHECK(summary["num_key_value_heads"] == c.num_key_value_heads);
  CHECK(summary["vocab_size"] == c.vocab_size);
  CHECK(summary["rope_theta"].get<double>() == c.rope_theta);
  CHECK(summary["tie_word_embeddings"].get<bool>() == c.tie_word_embeddings);
  for (const auto& name : summary["names"]) {
    INFO(name.get<std::string>());
    const auto want = io_test::read_f32(*ref / (name.get<std::string>() + ".f32"));
    const auto got = load_hf_tensor(f, c, name.get<std::string>());
    CHECK(io_test::bit_equal(got, want));
    if (name.get<std::string>().find("v_proj") == std::string::npos) {
      // without the unpermutation they differ
      CHECK_FALSE(io_test::bit_equal(f.dequantize(*hf_to_gguf_name(name.get<std::string>())), want));
    }
  }
}

TEST_CASE("GGUF metadata of an unknown architecture is refused by name", "[io][gguf_model]") {
  const auto path = io_test::fixtures_dir() / "scratch" / "arch.gguf";
  fs::create_directories(path.parent_path());
  std::vector<std::byte> b;
  auto put = [&](const void* p, std::size_t n) {
    const auto* s = static_cast<const std::byte*>(p);
    b.insert(b.end(), s, s + n);
  };
  const std::uint32_t magic = kGgufMagic, version = 3, type_string = 8;
  const std::uint64_t zero = 0, one = 1;
  put(&magic, 4); put(&version, 4); put(&zero, 8); put(&one, 8);
  const std::string key = "general.architecture", value = "mamba";
  const std::uint64_t kl = key.size(), vl = value.size();
  put(&kl, 8); put(key.data(), key.size()); put(&type_string, 4); put(&vl, 8); put(value.data(), value.size());
  io_test::write_bytes(path, b.data(), b.size());
  GgufFile f(path);
  CHECK_THROWS_WITH(decoder_config_from_gguf(f), Contains("arch.gguf") && Contains("key 'general.architecture' = \"mamba\" is not supported"));
}
