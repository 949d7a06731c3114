// kaizen/io/gguf_model.hpp - a GGUF decoder checkpoint seen as a Hugging Face one: the DecoderConfig
// from GGUF metadata, GGUF tensor names mapped to Hugging Face names, and llama.cpp's q/k row
// permutation undone, so dequantised GGUF weights equal what transformers loads from the same file.
//
// Metadata (ARCH = general.architecture, one of llama, qwen2, qwen3):
//   ARCH.block_count → num_hidden_layers, ARCH.embedding_length → hidden_size,
//   ARCH.feed_forward_length → intermediate_size, ARCH.attention.head_count (_kv) → heads (kv heads,
//   default = heads), ARCH.attention.key_length → head_dim (default hidden / heads),
//   ARCH.context_length → max_position_embeddings, ARCH.rope.freq_base → rope θ (default 10000),
//   ARCH.attention.layer_norm_rms_epsilon → rms_norm_eps, ARCH.vocab_size (or the length of
//   tokenizer.ggml.tokens) → vocab_size, ARCH.rope.scaling.{type,factor,original_context_length} →
//   rope scaling (none/linear), tokenizer.ggml.{bos,eos,padding}_token_id → special ids.
//   Tied embeddings ⇔ no output.weight tensor; q/k/v bias ⇔ blk.0.attn_q.bias present;
//   q/k norm ⇔ blk.0.attn_q_norm.weight present (Qwen3).
//   Refused: other architectures, ARCH.rope.dimension_count ≠ head_dim (partial rotary), rope
//   scaling types other than none/linear, a rope_freqs.weight tensor (precomputed llama3 factors).
//
// Names: token_embd → model.embed_tokens, output_norm → model.norm, output → lm_head,
//   blk.N.{attn_norm, ffn_norm} → model.layers.N.{input_layernorm, post_attention_layernorm},
//   blk.N.attn_{q,k,v,output} → model.layers.N.self_attn.{q,k,v,o}_proj,
//   blk.N.attn_{q,k}_norm → model.layers.N.self_attn.{q,k}_norm,
//   blk.N.ffn_{gate,up,down} → model.layers.N.mlp.{gate,up,down}_proj   (each .weight / .bias).
//
// Permutation: for the llama architecture, llama.cpp's converter stores q_proj (with n = heads) and
// k_proj (with n = kv heads) rows reordered so that, within each head of D rows, row 2i + j holds
// Hugging Face row j·D/2 + i (i < D/2, j ∈ {0, 1}): the "rotate_half" RoPE pairs (i, i + D/2) become
// adjacent (i, i+1) pairs. unpermute_qk_rows() applies the inverse; qwen2/qwen3 are stored unpermuted.
//
// References: the GGUF specification and its standardised key names (ggml docs/gguf.md); the
// permutation as described in llama.cpp's convert_hf_to_gguf (LlamaModel.permute).
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/io/decoder_config.hpp>
#include <kaizen/io/gguf.hpp>

namespace kaizen::io {

namespace detail {

struct GgufNamePair {
  std::string_view gguf;
  std::string_view hf;
};

inline constexpr GgufNamePair kGgufGlobalNames[] = {
    {"token_embd", "model.embed_tokens"},
    {"output_norm", "model.norm"},
    {"output", "lm_head"},
};

inline constexpr GgufNamePair kGgufLayerNames[] = {
    {"attn_norm", "input_layernorm"},       {"ffn_norm", "post_attention_layernorm"},
    {"attn_q", "self_attn.q_proj"},         {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},         {"attn_output", "self_attn.o_proj"},
    {"attn_q_norm", "self_attn.q_norm"},    {"attn_k_norm", "self_attn.k_norm"},
    {"ffn_gate", "mlp.gate_proj"},          {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};

// Splits "<stem>.<weight|bias>" ; returns false for another suffix.
inline bool split_param(std::string_view name, std::string_view& stem, std::string_view& suffix) {
  for (std::string_view s : {".weight", ".bias"})
    if (name.size() > s.size() && name.ends_with(s)) {
      stem = name.substr(0, name.size() - s.size());
      suffix = s;
      return true;
    }
  return false;
}

// Parses a decimal layer index without sign or leading zeros; nullopt otherwise.
inline std::optional<std::int64_t> parse_layer(std::string_view s) {
  if (s.empty() || s.size() > 9 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  std::int64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace detail

/// The Hugging Face name of a GGUF tensor name, or nullopt for a name with no equivalent.
[[nodiscard]] inline std::optional<std::string> gguf_to_hf_name(std::string_view name) {
  std::string_view stem, suffix;
  if (!detail::split_param(name, stem, suffix)) return std::nullopt;
  for (const auto& p : detail::kGgufGlobalNames)
    if (stem == p.gguf) return std::string(p.hf) + std::string(suffix);
  if (!stem.starts_with("blk.")) return std::nullopt;
  stem.remove_prefix(4);
  const auto dot = stem.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const auto layer = detail::parse_layer(stem.substr(0, dot));
  if (!layer) return std::nullopt;
  const auto part = stem.substr(dot + 1);
  for (const auto& p : detail::kGgufLayerNames)
    if (part == p.gguf)
      return "model.layers." + std::to_string(*layer) + "." + std::string(p.hf) + std::string(suffix);
  return std::nullopt;
}

/// The GGUF name of a Hugging Face tensor name, or nullopt.
[[nodiscard]] inline std::optional<std::string> hf_to_gguf_name(std::string_view name) {
  std::string_view stem, suffix;
  if (!detail::split_param(name, stem, suffix)) return std::nullopt;
  for (const auto& p : detail::kGgufGlobalNames)
    if (stem == p.hf) return std::string(p.gguf) + std::string(suffix);
  if (!stem.starts_with("model.layers.")) return std::nullopt;
  stem.remove_prefix(13);
  const auto dot = stem.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const auto layer = detail::parse_layer(stem.substr(0, dot));
  if (!layer) return std::nullopt;
  const auto part = stem.substr(dot + 1);
  for (const auto& p : detail::kGgufLayerNames)
    if (part == p.hf) return "blk." + std::to_string(*layer) + "." + std::string(p.gguf) + std::string(suffix);
  return std::nullopt;
}

namespace detail {
inline void check_qk_geometry(std::size_t size, std::int64_t rows, std::int64_t cols, std::int64_t n_head,
                              std::string_view fn) {
  KAIZEN_CHECK(rows > 0 && cols > 0 && n_head > 0 && rows % n_head == 0 && (rows / n_head) % 2 == 0, fn,
               ": rows ", rows, " must split into ", n_head, " heads of an even number of rows (cols ", cols, ")");
  KAIZEN_CHECK(static_cast<std::uint64_t>(rows) * static_cast<std::uint64_t>(cols) == size, fn, ": buffer of ", size,
               " floats is not [", rows, ", ", cols, "]");
}
}  // namespace detail

/// Undoes llama.cpp's q/k row permutation in place on a row-major [rows, cols] buffer (cols = 1 for
/// a bias), with rows = n_head · D: row h·D + 2i + j moves to h·D + j·D/2 + i.
inline void unpermute_qk_rows(std::span<float> data, std::int64_t rows, std::int64_t cols, std::int64_t n_head) {
  detail::check_qk_geometry(data.size(), rows, cols, n_head, "unpermute_qk_rows");
  const auto D = rows / n_head, half = D / 2;
  const auto C = static_cast<std::size_t>(cols);
  std::vector<float> head(static_cast<std::size_t>(D) * C);
  for (std::int64_t h = 0; h < n_head; ++h) {
    float* base = data.data() + static_cast<std::size_t>(h * D) * C;
    std::copy(base, base + head.size(), head.begin());
    for (std::int64_t i = 0; i < half; ++i)
      for (std::int64_t j = 0; j < 2; ++j)
        std::copy_n(head.begin() + static_cast<std::ptrdiff_t>((2 * i + j) * cols), C,
                    base + static_cast<std::size_t>(j * half + i) * C);
  }
}

/// The forward permutation (what llama.cpp's converter applies): row h·D + j·D/2 + i → h·D + 2i + j.
inline void permute_qk_rows(std::span<float> data, std::int64_t rows, std::int64_t cols, std::int64_t n_head) {
  detail::check_qk_geometry(data.size(), rows, cols, n_head, "permute_qk_rows");
  const auto D = rows / n_head, half = D / 2;
  const auto C = static_cast<std::size_t>(cols);
  std::vector<float> head(static_cast<std::size_t>(D) * C);
  for (std::int64_t h = 0; h < n_head; ++h) {
    float* base = data.data() + static_cast<std::size_t>(h * D) * C;
    std::copy(base, base + head.size(), head.begin());
    for (std::int64_t i = 0; i < half; ++i)
      for (std::int64_t j = 0; j < 2; ++j)
        std::copy_n(head.begin() + static_cast<std::ptrdiff_t>((j * half + i) * cols), C,
                    base + static_cast<std::size_t>(2 * i + j) * C);
  }
}

/// The DecoderConfig described by a GGUF file's metadata and tensor set (rules in the header comment).
[[nodiscard]] inline DecoderConfig decoder_config_from_gguf(const GgufFile& f) {
  const std::string source = "GGUF '" + f.path() + "'";
  DecoderConfig c;
  const std::string arch = f.get_string("general.architecture");
  if (arch == "llama") c.family = DecoderFamily::Llama;
  else if (arch == "qwen2") c.family = DecoderFamily::Qwen2;
  else if (arch == "qwen3") c.family = DecoderFamily::Qwen3;
  else fail(source, ": key 'general.architecture' = \"", arch, "\" is not supported (llama, qwen2, qwen3 are)");
  const std::string p = arch + ".";
  c.num_hidden_layers = f.get_int(p + "block_count");
  c.hidden_size = f.get_int(p + "embedding_length");
  c.intermediate_size = f.get_int(p + "feed_forward_length");
  c.num_attention_heads = f.get_int(p + "attention.head_count");
  if (c.num_attention_heads <= 0)
    fail(source, ": key '", p, "attention.head_count' must be positive, got ", c.num_attention_heads);
  c.num_key_value_heads =
      f.contains(p + "attention.head_count_kv") ? f.get_int(p + "attention.head_count_kv") : c.num_attention_heads;
  c.head_dim = f.contains(p + "attention.key_length") ? f.get_int(p + "attention.key_length")
                                                      : c.hidden_size / c.num_attention_heads;
  if (f.contains(p + "rope.dimension_count") && f.get_int(p + "rope.dimension_count") != c.head_dim)
    fail(source, ": key '", p, "rope.dimension_count' = ", f.get_int(p + "rope.dimension_count"),
         " differs from head_dim ", c.head_dim, " (partial rotary embeddings are not supported)");
  c.max_position_embeddings = f.get_int(p + "context_length");
  c.rope_theta = f.contains(p + "rope.freq_base") ? f.get_float(p + "rope.freq_base") : 10000.0;
  c.rms_norm_eps = f.get_float(p + "attention.layer_norm_rms_epsilon");
  if (f.contains(p + "vocab_size")) c.vocab_size = f.get_int(p + "vocab_size");
  else c.vocab_size = static_cast<std::int64_t>(f.get_array("tokenizer.ggml.tokens").values.size());
  if (f.contains(p + "rope.scaling.type")) {
    const auto& type = f.get_string(p + "rope.scaling.type");
    if (type == "linear") {
      c.rope_scaling.type = RopeType::Linear;
      c.rope_scaling.factor = f.get_float(p + "rope.scaling.factor");
    } else if (type != "none") {
      fail(source, ": key '", p, "rope.scaling.type' = \"", type, "\" is not supported (none, linear are)");
    }
  }
  if (f.find_tensor("rope_freqs.weight") != nullptr)
    fail(source, ": tensor 'rope_freqs.weight' (precomputed rope scaling factors) is not supported");
  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.o_bias = f.find_tensor("blk.0.attn_output.bias") != nullptr;
  c.mlp_bias = f.find_tensor("blk.0.ffn_up.bias") != nullptr;
  c.qk_norm = f.find_tensor("blk.0.attn_q_norm.weight") != nullptr;
  if (c.family == DecoderFamily::Qwen3 && !c.qk_norm)
    fail(source, ": qwen3 checkpoint without tensor 'blk.0.attn_q_norm.weight'");
  if (f.contains("tokenizer.ggml.bos_token_id")) c.bos_token_id = f.get_int("tokenizer.ggml.bos_token_id");
  if (f.contains("tokenizer.ggml.eos_token_id")) c.eos_token_ids.push_back(f.get_int("tokenizer.ggml.eos_token_id"));
  if (f.contains("tokenizer.ggml.padding_token_id")) c.pad_token_id = f.get_int("tokenizer.ggml.padding_token_id");
  c.validate(source);
  return c;
}

/// Hugging Face name → ggml type name and row-major shape of every tensor in a GGUF file (names with
/// no Hugging Face equivalent are kept as they are, so check_tensors() reports them).
[[nodiscard]] inline std::map<std::string, TensorSpec, std::less<>> tensor_specs(const GgufFile& f) {
  std::map<std::string, TensorSpec, std::less<>> out;
  for (const auto& t : f.tensors()) {
    const auto hf = gguf_to_hf_name(t.name);
    out.emplace(hf ? *hf : t.name, TensorSpec{std::string(ggml_type_name(t.type)), t.shape()});
  }
  return out;
}

/// The dtypes check_tensors() should accept for a GGUF checkpoint: the dequantisable ggml types.
[[nodiscard]] inline TensorCheckOptions gguf_check_options() {
  TensorCheckOptions o;
  o.allowed_dtypes.clear();
  for (const auto& t : kGgmlTypes)
    if (t.dequantizable) o.allowed_dtypes.emplace(t.name);
  return o;
}

/// The float32 values of the Hugging Face tensor `hf_name` from a GGUF file, in Hugging Face layout
/// (row-major; q_proj/k_proj rows unpermuted for the llama architecture). A tied lm_head.weight
/// is served from token_embd.weight. Throws "missing tensor" naming the file when absent.
[[nodiscard]] inline std::vector<float> load_hf_tensor(const GgufFile& f, const DecoderConfig& c, std::string_view hf_name) {
  auto gguf_name = hf_to_gguf_name(hf_name);
  if (!gguf_name) fail("GGUF '", f.path(), "': missing tensor '", hf_name, "' (no GGUF equivalent)");
  if (hf_name == "lm_head.weight" && c.tie_word_embeddings) gguf_name = "token_embd.weight";
  const auto& t = f.tensor(*gguf_name);
  auto values = f.dequantize(t);
  if (c.family == DecoderFamily::Llama) {
    const bool q = hf_name.ends_with("self_attn.q_proj.weight") || hf_name.ends_with("self_attn.q_proj.bias");
    const bool k = hf_name.ends_with("self_attn.k_proj.weight") || hf_name.ends_with("self_attn.k_proj.bias");
    if (q || k) {
      const auto shape = t.shape();
      const std::int64_t rows = shape[0];
      const std::int64_t cols = shape.size() > 1 && rows > 0 ? static_cast<std::int64_t>(t.n_elements) / rows : 1;
      unpermute_qk_rows(values, rows, cols, q ? c.num_attention_heads : c.num_key_value_heads);
    }
  }
  return values;
}

}  // namespace kaizen::io
