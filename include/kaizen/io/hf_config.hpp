// kaizen/io/hf_config.hpp - a Hugging Face config.json -> DecoderConfig, for the Llama family
// (Llama 2/3, SmolLM2, TinyLlama), Qwen2/Qwen2.5 and Qwen3; anything else is refused by name.
//
// Rules (keys as transformers writes them, 4.x and 5.x spellings both read):
//   family: "architectures" (one of LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM) and/or
//     "model_type" (llama, qwen2, qwen3); when both are present they must agree.
//   required: vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads.
//   defaults: num_key_value_heads = num_attention_heads; head_dim = hidden_size / num_attention_heads
//     (Qwen3: 128, its transformers default); max_position_embeddings 2048 (llama) / 32768 (qwen);
//     rms_norm_eps 1e-6; rope θ 10000; tie_word_embeddings false.
//   rope: "rope_parameters" {rope_theta, rope_type, ...} (transformers 5) or top-level "rope_theta"
//     plus "rope_scaling" {type|rope_type, factor, ...} (4.x); types default, linear, dynamic,
//     llama3; the others (yarn, longrope, ...) and unknown keys inside the block are refused.
//   biases: llama attention_bias → q, k, v and o; mlp_bias → MLP; qwen2 → q, k, v always, o never;
//     qwen3 attention_bias → q, k, v and o, and q/k RMSNorm always.
//   refused: hidden_act other than silu, use_sliding_window true, layer_types other than
//     full_attention, quantization_config, partial_rotary_factor ≠ 1, logit soft-capping.
// Every refusal is a kaizen::Error naming the source, the key and its value.
//
// Writing (hf_config_json): the keys transformers 5 writes for the family — architectures, model_type,
//   sizes, head_dim, rms_norm_eps, "rope_parameters" {rope_type, rope_theta, scaling fields},
//   attention_bias (llama/qwen3), mlp_bias (llama), use_sliding_window false and layer_types
//   (qwen2/qwen3), tie_word_embeddings, hidden_act silu, bos/eos/pad ids, dtype. A DecoderConfig that
//   the family cannot express (qwen2 without q/k/v biases, q/k/v bias without o bias on llama, ...) is
//   refused by name. parse_hf_config(hf_config_json(c)) == c for every accepted c (tested).
//
// Reference: transformers' LlamaConfig, Qwen2Config, Qwen3Config documentation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/error.hpp>
#include <kaizen/io/decoder_config.hpp>
#include <kaizen/io/safetensors.hpp>

namespace kaizen::io {

namespace detail {

struct ConfigReader {
  const nlohmann::json& j;
  std::string source;

  [[nodiscard]] const nlohmann::json* find(const nlohmann::json& obj, std::string_view key) const {
    const auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  [[nodiscard]] std::int64_t integer(const nlohmann::json& v, std::string_view key) const {
    if (!v.is_number_integer()) fail(source, ": key '", key, "' must be an integer, got ", v.dump());
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
      fail(source, ": key '", key, "' = ", v.dump(), " is out of range");
    return v.get<std::int64_t>();
  }
  [[nodiscard]] std::int64_t required_int(std::string_view key) const {
    const auto* v = find(j, key);
    if (v == nullptr) fail(source, ": missing required key '", key, "'");
    return integer(*v, key);
  }
  [[nodiscard]] std::int64_t int_or(std::string_view key, std::int64_t fallback) const {
    const auto* v = find(j, key);
    return v == nullptr ? fallback : integer(*v, key);
  }
  [[nodiscard]] double number(const nlohmann::json& v, std::string_view key) const {
    if (!v.is_number()) fail(source, ": key '", key, "' must be a number, got ", v.dump());
    return v.get<double>();
  }
  [[nodiscard]] double number_or(std::string_view key, double fallback) const {
    const auto* v = find(j, key);
    return v == nullptr ? fallback : number(*v, key);
  }
  [[nodiscard]] bool boolean_or(std::string_view key, bool fallback) const {
    const auto* v = find(j, key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) fail(source, ": key '", key, "' must be true or false, got ", v->dump());
    return v->get<bool>();
  }
  [[nodiscard]] std::optional<std::string> string(std::string_view key) const {
    const auto* v = find(j, key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) fail(source, ": key '", key, "' must be a string, got ", v->dump());
    return v->get<std::string>();
  }
};

inline RopeType parse_rope_type(const std::string& source, std::string_view key, const std::string& value) {
  if (value == "default") return RopeType::Default;
  if (value == "linear") return RopeType::Linear;
  if (value == "dynamic") return RopeType::Dynamic;
  if (value == "llama3") return RopeType::Llama3;
  fail(source, ": key '", key, "' = \"", value, "\" is not supported (default, linear, dynamic, llama3 are)");
}

}  // namespace detail

/// The DecoderConfig a config.json object describes; `source` (the file name) prefixes errors.
[[nodiscard]] inline DecoderConfig parse_hf_config(const nlohmann::json& j, std::string_view source_name) {
  const std::string source = "config.json '" + std::string(source_name) + "'";
  if (!j.is_object()) fail(source, ": expected a JSON object, got ", j.type_name());
  detail::ConfigReader r{j, source};
  DecoderConfig c;

  // --- family -------------------------------------------------------------------------------------
  std::optional<DecoderFamily> from_arch, from_type;
  if (const auto* a = r.find(j, "architectures")) {
    if (!a->is_array() || a->size() != 1 || !(*a)[0].is_string())
      fail(source, ": key 'architectures' must be a list of one class name, got ", a->dump());
    c.architecture = (*a)[0].get<std::string>();
    if (c.architecture == "LlamaForCausalLM") from_arch = DecoderFamily::Llama;
    else if (c.architecture == "Qwen2ForCausalLM") from_arch = DecoderFamily::Qwen2;
    else if (c.architecture == "Qwen3ForCausalLM") from_arch = DecoderFamily::Qwen3;
    else
      fail(source, ": key 'architectures' = \"", c.architecture,
           "\" is not supported (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM are)");
  }
  if (const auto mt = r.string("model_type")) {
    if (*mt == "llama") from_type = DecoderFamily::Llama;
    else if (*mt == "qwen2") from_type = DecoderFamily::Qwen2;
    else if (*mt == "qwen3") from_type = DecoderFamily::Qwen3;
    else fail(source, ": key 'model_type' = \"", *mt, "\" is not supported (llama, qwen2, qwen3 are)");
  }
  if (!from_arch && !from_type) fail(source, ": neither 'architectures' nor 'model_type' names the model");
  if (from_arch && from_type && *from_arch != *from_type)
    fail(source, ": key 'architectures' = \"", c.architecture, "\" disagrees with 'model_type' = \"",
         family_name(*from_type), "\"");
  c.family = from_arch ? *from_arch : *from_type;
  const bool qwen = c.family != DecoderFamily::Llama;

  // --- unsupported options --------------------------------------------------------------------------
  if (const auto act = r.string("hidden_act"); act && *act != "silu")
    fail(source, ": key 'hidden_act' = \"", *act, "\" is not supported (silu is)");
  if (r.boolean_or("use_sliding_window", false))
    fail(source, ": key 'use_sliding_window' = true is not supported (full attention only)");
  if (const auto* lt = r.find(j, "layer_types")) {
    if (!lt->is_array()) fail(source, ": key 'layer_types' must be a list, got ", lt->dump());
    for (const auto& t : *lt)
      if (!t.is_string() || t.get<std::string>() != "full_attention")
        fail(source, ": key 'layer_types' entry ", t.dump(), " is not supported (full_attention only)");
  }
  if (const auto* q = r.find(j, "quantization_config"))
    fail(source, ": key 'quantization_config' = ", q->dump(), " is not supported (unquantised checkpoints only)");
  for (const char* key : {"attn_logit_softcapping", "final_logit_softcapping"})
    if (const auto* v = r.find(j, key)) fail(source, ": key '", key, "' = ", v->dump(), " is not supported");
  if (const auto* p = r.find(j, "partial_rotary_factor"); p != nullptr && r.number(*p, "partial_rotary_factor") != 1.0)
    fail(source, ": key 'partial_rotary_factor' = ", p->dump(), " is not supported (1.0 only)");

  // --- sizes ------------------------------------------------------------------------------------------
  c.vocab_size = r.required_int("vocab_size");
  c.hidden_size = r.required_int("hidden_size");
  c.intermediate_size = r.required_int("intermediate_size");
  c.num_hidden_layers = r.required_int("num_hidden_layers");
  c.num_attention_heads = r.required_int("num_attention_heads");
  if (c.num_attention_heads <= 0) fail(source, ": 'num_attention_heads' must be positive, got ", c.num_attention_heads);
  c.num_key_value_heads = r.int_or("num_key_value_heads", c.num_attention_heads);
  const std::int64_t default_head_dim = c.family == DecoderFamily::Qwen3 ? 128 : c.hidden_size / c.num_attention_heads;
  c.head_dim = r.int_or("head_dim", default_head_dim);
  c.max_position_embeddings = r.int_or("max_position_embeddings", qwen ? 32768 : 2048);
  c.rms_norm_eps = r.number_or("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = r.boolean_or("tie_word_embeddings", false);

  // --- biases and norms ---------------------------------------------------------------------------
  const bool attention_bias = r.boolean_or("attention_bias", false);
  switch (c.family) {
    case DecoderFamily::Llama:
      c.qkv_bias = c.o_bias = attention_bias;
      c.mlp_bias = r.boolean_or("mlp_bias", false);
      break;
    case DecoderFamily::Qwen2:
      c.qkv_bias = true;
      break;
    case DecoderFamily::Qwen3:
      c.qkv_bias = c.o_bias = attention_bias;
      c.qk_norm = true;
      break;
  }

  // --- rope ---------------------------------------------------------------------------------------
  std::optional<double> theta_top;
  if (const auto* t = r.find(j, "rope_theta")) theta_top = r.number(*t, "rope_theta");
  const nlohmann::json* rope = r.find(j, "rope_parameters");
  std::string rope_key = "rope_parameters";
  if (rope == nullptr) {
    rope = r.find(j, "rope_scaling");
    rope_key = "rope_scaling";
  }
  c.rope_theta = theta_top.value_or(10000.0);
  if (rope != nullptr) {
    if (!rope->is_object()) fail(source, ": key '", rope_key, "' must be an object, got ", rope->dump());
    for (const auto& [k, v] : rope->items()) {
      static const std::set<std::string, std::less<>> known{"rope_type", "type", "factor", "low_freq_factor",
                                                             "high_freq_factor", "original_max_position_embeddings",
                                                             "rope_theta"};
      if (!known.contains(k)) fail(source, ": key '", rope_key, ".", k, "' = ", v.dump(), " is not supported");
    }
    auto field = [&](std::string_view k) -> const nlohmann::json* { return r.find(*rope, k); };
    auto key = [&](std::string_view k) { return rope_key + "." + std::string(k); };
    std::string type = "default";
    for (const char* k : {"rope_type", "type"})
      if (const auto* v = field(k)) {
        if (!v->is_string()) fail(source, ": key '", key(k), "' must be a string, got ", v->dump());
        type = v->get<std::string>();
      }
    c.rope_scaling.type = detail::parse_rope_type(source, key("rope_type"), type);
    if (const auto* v = field("rope_theta")) {
      const double t = r.number(*v, key("rope_theta"));
      if (theta_top && *theta_top != t)
        fail(source, ": key '", key("rope_theta"), "' = ", t, " disagrees with 'rope_theta' = ", *theta_top);
      c.rope_theta = t;
    }
    auto need = [&](std::string_view k) -> const nlohmann::json& {
      const auto* v = field(k);
      if (v == nullptr) fail(source, ": ", type, " rope scaling needs key '", key(k), "'");
      return *v;
    };
    if (c.rope_scaling.type != RopeType::Default) c.rope_scaling.factor = r.number(need("factor"), key("factor"));
    if (c.rope_scaling.type == RopeType::Llama3) {
      c.rope_scaling.low_freq_factor = r.number(need("low_freq_factor"), key("low_freq_factor"));
      c.rope_scaling.high_freq_factor = r.number(need("high_freq_factor"), key("high_freq_factor"));
      c.rope_scaling.original_max_position_embeddings =
          r.integer(need("original_max_position_embeddings"), key("original_max_position_embeddings"));
    } else if (const auto* v = field("original_max_position_embeddings")) {
      c.rope_scaling.original_max_position_embeddings = r.integer(*v, key("original_max_position_embeddings"));
    }
  }

  // --- special tokens and dtype -------------------------------------------------------------------------
  if (const auto* b = r.find(j, "bos_token_id")) c.bos_token_id = r.integer(*b, "bos_token_id");
  if (const auto* p = r.find(j, "pad_token_id")) c.pad_token_id = r.integer(*p, "pad_token_id");
  if (const auto* e = r.find(j, "eos_token_id")) {
    if (e->is_array()) {
      for (const auto& x : *e) c.eos_token_ids.push_back(r.integer(x, "eos_token_id"));
    } else {
      c.eos_token_ids.push_back(r.integer(*e, "eos_token_id"));
    }
  }
  if (const auto d = r.string("dtype")) c.torch_dtype = *d;
  else if (const auto td = r.string("torch_dtype")) c.torch_dtype = *td;

  c.validate(source);
  if (c.family == DecoderFamily::Qwen2 && c.head_dim * c.num_attention_heads != c.hidden_size)
    fail(source, ": key 'head_dim' = ", c.head_dim, " must equal hidden_size / num_attention_heads for qwen2");
  return c;
}

/// Parses config.json text; malformed JSON is a kaizen::Error naming `source_name` and the position.
[[nodiscard]] inline DecoderConfig parse_hf_config_text(std::string_view text, std::string_view source_name) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("config.json '", source_name, "': malformed JSON: ", e.what());
  }
  return parse_hf_config(j, source_name);
}

/// Reads and parses a config.json file (or the config.json inside a folder).
[[nodiscard]] inline DecoderConfig load_hf_config(const std::filesystem::path& path) {
  const auto file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  std::ifstream in(file, std::ios::binary);
  if (!in) fail("load_hf_config: cannot open '", file.string(), "'");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_hf_config_text(text.str(), file.string());
}

/// Name → dtype and shape of every tensor in a safetensors checkpoint, for check_tensors().
[[nodiscard]] inline std::map<std::string, TensorSpec, std::less<>> tensor_specs(const SafetensorsCheckpoint& ckpt) {
  std::map<std::string, TensorSpec, std::less<>> out;
  for (const auto& name : ckpt.names()) {
    const auto& t = ckpt.info(name);
    out.emplace(name, TensorSpec{std::string(dtype_name(t.dtype)), t.shape});
  }
  return out;
}

/// The config.json document of `c` (see the header comment: "Writing"). Throws kaizen::Error naming the
/// field when the family cannot express `c`.
[[nodiscard]] inline nlohmann::ordered_json hf_config_json(const DecoderConfig& c) {
  c.validate("hf_config_json");
  const auto bad = [&](std::string_view what) {
    fail("hf_config_json: a ", family_name(c.family), " config cannot express ", what, " (qkv_bias ", c.qkv_bias,
         ", o_bias ", c.o_bias, ", mlp_bias ", c.mlp_bias, ", qk_norm ", c.qk_norm, ")");
  };
  switch (c.family) {
    case DecoderFamily::Llama:
      if (c.qkv_bias != c.o_bias) bad("q/k/v biases without the o_proj bias or the reverse (attention_bias sets both)");
      if (c.qk_norm) bad("q/k norms");
      break;
    case DecoderFamily::Qwen2:
      if (!c.qkv_bias) bad("q/k/v projections without biases");
      if (c.o_bias || c.mlp_bias) bad("o_proj or MLP biases");
      if (c.qk_norm) bad("q/k norms");
      if (c.head_dim * c.num_attention_heads != c.hidden_size) bad("head_dim != hidden_size / num_attention_heads");
      break;
    case DecoderFamily::Qwen3:
      if (c.qkv_bias != c.o_bias) bad("q/k/v biases without the o_proj bias or the reverse (attention_bias sets both)");
      if (c.mlp_bias) bad("MLP biases");
      if (!c.qk_norm) bad("attention without q/k norms");
      break;
  }
  static constexpr std::string_view kArch[] = {"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"};
  using oj = nlohmann::ordered_json;
  oj j = oj::object();
  j["architectures"] = {std::string(kArch[static_cast<int>(c.family)])};
  j["model_type"] = std::string(family_name(c.family));
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.family != DecoderFamily::Qwen2) j["attention_bias"] = c.qkv_bias;
  if (c.family == DecoderFamily::Llama) j["mlp_bias"] = c.mlp_bias;
  if (c.family != DecoderFamily::Llama) {
    j["use_sliding_window"] = false;
    j["layer_types"] = std::vector<std::string>(static_cast<std::size_t>(c.num_hidden_layers), "full_attention");
  }
  oj rope = {{"rope_type", std::string(rope_type_name(c.rope_scaling.type))}, {"rope_theta", c.rope_theta}};
  const auto& r = c.rope_scaling;
  if (r.type != RopeType::Default) rope["factor"] = r.factor;
  if (r.type == RopeType::Llama3) {
    rope["low_freq_factor"] = r.low_freq_factor;
    rope["high_freq_factor"] = r.high_freq_factor;
  }
  if (r.original_max_position_embeddings > 0) rope["original_max_position_embeddings"] = r.original_max_position_embeddings;
  j["rope_parameters"] = rope;
  j["bos_token_id"] = c.bos_token_id ? oj(*c.bos_token_id) : oj(nullptr);
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (c.eos_token_ids.empty()) j["eos_token_id"] = nullptr;
  else j["eos_token_id"] = c.eos_token_ids;
  j["pad_token_id"] = c.pad_token_id ? oj(*c.pad_token_id) : oj(nullptr);
  j["dtype"] = c.torch_dtype.empty() ? std::string("float32") : c.torch_dtype;
  j["use_cache"] = true;
  return j;
}

}  // namespace kaizen::io
