// kaizen/io/decoder_config.hpp - a torch-free description of a decoder-only transformer checkpoint
// (Llama 2/3, SmolLM2, TinyLlama, Qwen2/Qwen2.5, Qwen3), the tensors such a checkpoint must hold,
// and the rotary-embedding frequencies its rope settings imply.
//
// Families (Hugging Face state-dict names, row-major shapes; H = hidden_size, F = intermediate_size,
// D = head_dim, Q = num_attention_heads, K = num_key_value_heads, V = vocab_size, L = layers):
//   model.embed_tokens.weight [V, H]; model.norm.weight [H]; lm_head.weight [V, H] unless tied
//   model.layers.N.input_layernorm.weight [H], .post_attention_layernorm.weight [H]
//   model.layers.N.self_attn.q_proj.weight [Q·D, H], k_proj/v_proj [K·D, H], o_proj [H, Q·D]
//   model.layers.N.mlp.gate_proj.weight [F, H], up_proj [F, H], down_proj [H, F]
//   q/k/v biases [Q·D], [K·D], [K·D] when qkv_bias (Qwen2 always; Llama/Qwen3 attention_bias),
//   o_proj bias [H] when o_bias (Llama/Qwen3 attention_bias), MLP biases when mlp_bias (Llama),
//   self_attn.q_norm.weight / k_norm.weight [D] when qk_norm (Qwen3: RMSNorm over each head's D).
//
// RoPE inverse frequencies for head dimension D and base θ: f_i = θ^(-2i/D), i < D/2, then
//   linear:  f_i / factor
//   dynamic: for a sequence of s > original positions, θ' = θ·(factor·s/original − (factor − 1))^(D/(D−2))
//            replaces θ (NTK-aware scaling; below original positions nothing changes)
//   llama3:  wavelength w_i = 2π/f_i; w_i > original/low_freq_factor → f_i/factor;
//            w_i < original/high_freq_factor → f_i; otherwise (1−t)·f_i/factor + t·f_i with
//            t = (original/w_i − low_freq_factor)/(high_freq_factor − low_freq_factor).
// These follow transformers' rope initialisation functions (modeling_rope_utils) in meaning; they
// are computed here in double precision.
//
// References: Touvron et al. 2023 (Llama 2, arXiv 2307.09288); Llama 3 herd paper (arXiv 2407.21783,
// rope scaling of 3.1); Chen et al. 2023, "Extending context window ... positional interpolation"
// (arXiv 2306.15595, linear); bloc97's NTK-aware scaling (dynamic); Qwen2/Qwen3 technical reports.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <numbers>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <kaizen/core/error.hpp>

namespace kaizen::io {

enum class DecoderFamily { Llama, Qwen2, Qwen3 };

[[nodiscard]] constexpr std::string_view family_name(DecoderFamily f) noexcept {
  switch (f) {
    case DecoderFamily::Llama: return "llama";
    case DecoderFamily::Qwen2: return "qwen2";
    case DecoderFamily::Qwen3: return "qwen3";
  }
  return "?";
}

enum class RopeType { Default, Linear, Dynamic, Llama3 };

[[nodiscard]] constexpr std::string_view rope_type_name(RopeType t) noexcept {
  switch (t) {
    case RopeType::Default: return "default";
    case RopeType::Linear: return "linear";
    case RopeType::Dynamic: return "dynamic";
    case RopeType::Llama3: return "llama3";
  }
  return "?";
}

/// Rope scaling as in a config's rope_scaling / rope_parameters (fields unused by a type stay default).
struct RopeScaling {
  RopeType type = RopeType::Default;
  double factor = 1.0;                                ///< linear, dynamic, llama3
  double low_freq_factor = 1.0;                       ///< llama3
  double high_freq_factor = 4.0;                      ///< llama3
  std::int64_t original_max_position_embeddings = 0;  ///< llama3 (required), dynamic (0: max_position_embeddings)
};

/// Everything needed to build the decoder and map a checkpoint onto it, without LibTorch.
struct DecoderConfig {
  DecoderFamily family = DecoderFamily::Llama;
  std::string architecture;  ///< e.g. "LlamaForCausalLM" (empty when the source does not say)
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;
  std::int64_t head_dim = 0;  ///< explicit (Qwen3, newer Llama configs) or hidden_size / num_attention_heads
  std::int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  ///< bias on q_proj/k_proj/v_proj
  bool o_bias = false;    ///< bias on o_proj
  bool mlp_bias = false;  ///< bias on gate/up/down projections
  bool qk_norm = false;   ///< per-head RMSNorm on q and k before RoPE (Qwen3)
  std::optional<std::int64_t> bos_token_id;
  std::vector<std::int64_t> eos_token_ids;
  std::optional<std::int64_t> pad_token_id;
  std::string torch_dtype;  ///< "bfloat16", "float32", ... as the config says; empty when absent

  /// Throws kaizen::Error (prefixed by `source`) unless sizes are positive and within sane limits
  /// (so nothing sized from them can overflow or exhaust memory) and heads divide evenly.
  void validate(std::string_view source) const {
    auto positive = [&](std::int64_t v, std::string_view key, std::int64_t limit) {
      if (v <= 0) fail(source, ": '", key, "' must be positive, got ", v);
      if (v > limit) fail(source, ": '", key, "' = ", v, " exceeds the limit of ", limit);
    };
    positive(vocab_size, "vocab_size", std::int64_t{1} << 24);
    positive(hidden_size, "hidden_size", std::int64_t{1} << 20);
    positive(intermediate_size, "intermediate_size", std::int64_t{1} << 22);
    positive(num_hidden_layers, "num_hidden_layers", 4096);
    positive(num_attention_heads, "num_attention_heads", 4096);
    positive(num_key_value_heads, "num_key_value_heads", 4096);
    positive(head_dim, "head_dim", 65536);
    positive(max_position_embeddings, "max_position_embeddings", std::int64_t{1} << 30);
    if (num_attention_heads % num_key_value_heads != 0)
      fail(source, ": num_attention_heads ", num_attention_heads, " is not a multiple of num_key_value_heads ",
           num_key_value_heads);
    if (head_dim % 2 != 0) fail(source, ": head_dim ", head_dim, " must be even for RoPE");
    if (!(rms_norm_eps > 0)) fail(source, ": 'rms_norm_eps' must be positive, got ", rms_norm_eps);
    if (!(rope_theta > 0)) fail(source, ": 'rope_theta' must be positive, got ", rope_theta);
    const auto& r = rope_scaling;
    if (r.type != RopeType::Default && !(r.factor > 0))
      fail(source, ": rope scaling 'factor' must be positive, got ", r.factor);
    if (r.type == RopeType::Llama3) {
      if (r.original_max_position_embeddings <= 0)
        fail(source, ": llama3 rope scaling needs a positive 'original_max_position_embeddings'");
      if (!(r.high_freq_factor > r.low_freq_factor))
        fail(source, ": llama3 rope scaling needs high_freq_factor > low_freq_factor, got ", r.high_freq_factor,
             " and ", r.low_freq_factor);
    }
  }
};

/// The inverse frequencies f_i (i < head_dim/2) for positions in a sequence of `seq_len` tokens
/// (seq_len matters only to dynamic scaling; see the header comment for the rules).
[[nodiscard]] inline std::vector<double> rope_inverse_frequencies(const DecoderConfig& c, std::int64_t seq_len = 0) {
  const auto D = c.head_dim;
  KAIZEN_CHECK(D > 0 && D % 2 == 0, "rope_inverse_frequencies: head_dim must be positive and even, got ", D);
  const auto& r = c.rope_scaling;
  double base = c.rope_theta;
  if (r.type == RopeType::Dynamic) {
    const double original = static_cast<double>(r.original_max_position_embeddings > 0
                                                    ? r.original_max_position_embeddings
                                                    : c.max_position_embeddings);
    const double s = static_cast<double>(seq_len);
    if (s > original)
      base *= std::pow(r.factor * s / original - (r.factor - 1.0), static_cast<double>(D) / static_cast<double>(D - 2));
  }
  std::vector<double> f(static_cast<std::size_t>(D / 2));
  for (std::int64_t i = 0; i < D / 2; ++i)
    f[static_cast<std::size_t>(i)] = 1.0 / std::pow(base, static_cast<double>(2 * i) / static_cast<double>(D));
  if (r.type == RopeType::Linear) {
    for (auto& x : f) x /= r.factor;
  } else if (r.type == RopeType::Llama3) {
    const double original = static_cast<double>(r.original_max_position_embeddings);
    const double low_wavelen = original / r.low_freq_factor;
    const double high_wavelen = original / r.high_freq_factor;
    for (auto& x : f) {
      const double wavelen = 2.0 * std::numbers::pi / x;
      if (wavelen > low_wavelen) {
        x /= r.factor;
      } else if (wavelen >= high_wavelen) {
        const double t = (original / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        x = (1.0 - t) * x / r.factor + t * x;
      }
    }
  }
  return f;
}

/// A tensor's element type (as its file names it: "F32", "BF16", "Q4_1", ...) and row-major shape.
struct TensorSpec {
  std::string dtype;
  std::vector<std::int64_t> shape;
};

/// The tensors a checkpoint of `c` holds, by Hugging Face name, with their shapes.
/// lm_head.weight is included unless the embeddings are tied.
[[nodiscard]] inline std::map<std::string, std::vector<std::int64_t>> expected_tensor_shapes(const DecoderConfig& c) {
  std::map<std::string, std::vector<std::int64_t>> out;
  const auto H = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
  const auto QD = c.num_attention_heads * D, KD = c.num_key_value_heads * D;
  out["model.embed_tokens.weight"] = {c.vocab_size, H};
  out["model.norm.weight"] = {H};
  if (!c.tie_word_embeddings) out["lm_head.weight"] = {c.vocab_size, H};
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out[p + "input_layernorm.weight"] = {H};
    out[p + "post_attention_layernorm.weight"] = {H};
    out[p + "self_attn.q_proj.weight"] = {QD, H};
    out[p + "self_attn.k_proj.weight"] = {KD, H};
    out[p + "self_attn.v_proj.weight"] = {KD, H};
    out[p + "self_attn.o_proj.weight"] = {H, QD};
    if (c.qkv_bias) {
      out[p + "self_attn.q_proj.bias"] = {QD};
      out[p + "self_attn.k_proj.bias"] = {KD};
      out[p + "self_attn.v_proj.bias"] = {KD};
    }
    if (c.o_bias) out[p + "self_attn.o_proj.bias"] = {H};
    if (c.qk_norm) {
      out[p + "self_attn.q_norm.weight"] = {D};
      out[p + "self_attn.k_norm.weight"] = {D};
    }
    out[p + "mlp.gate_proj.weight"] = {F, H};
    out[p + "mlp.up_proj.weight"] = {F, H};
    out[p + "mlp.down_proj.weight"] = {H, F};
    if (c.mlp_bias) {
      out[p + "mlp.gate_proj.bias"] = {F};
      out[p + "mlp.up_proj.bias"] = {F};
      out[p + "mlp.down_proj.bias"] = {H};
    }
  }
  return out;
}

struct TensorCheckOptions {
  /// dtypes a tensor may have; empty accepts any.
  std::set<std::string, std::less<>> allowed_dtypes{"F32", "F16", "BF16"};
  /// Tensors not in expected_tensor_shapes are refused (rotary inv_freq buffers and a tied
  /// lm_head.weight of the right shape are always accepted).
  bool refuse_unexpected = true;
};

namespace detail {
inline std::string shape_string(const std::vector<std::int64_t>& s) {
  std::ostringstream o;
  o << '[';
  for (std::size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << ']';
  return o.str();
}
}  // namespace detail

/// Checks that `tensors` (name → dtype and shape) is exactly a checkpoint of `c`: every expected
/// tensor present with its shape, dtypes allowed, nothing unexpected. Throws kaizen::Error naming
/// `source` and the first offending tensor ("missing tensor", "has shape ... expected ...", ...).
inline void check_tensors(const DecoderConfig& c, const std::map<std::string, TensorSpec, std::less<>>& tensors,
                          std::string_view source, const TensorCheckOptions& options = {}) {
  const auto expected = expected_tensor_shapes(c);
  for (const auto& [name, shape] : expected) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) fail(source, ": missing tensor '", name, "' (expected shape ", detail::shape_string(shape), ")");
    if (it->second.shape != shape)
      fail(source, ": tensor '", name, "' has shape ", detail::shape_string(it->second.shape), ", but the config (",
           family_name(c.family), ", hidden_size ", c.hidden_size, ", heads ", c.num_attention_heads, "/",
           c.num_key_value_heads, ", head_dim ", c.head_dim, ") expects ", detail::shape_string(shape));
    if (!options.allowed_dtypes.empty() && !options.allowed_dtypes.contains(it->second.dtype)) {
      std::string allowed;
      for (const auto& d : options.allowed_dtypes) allowed += (allowed.empty() ? "" : " ") + d;
      fail(source, ": tensor '", name, "' has dtype ", it->second.dtype, ", expected one of ", allowed);
    }
  }
  if (!options.refuse_unexpected) return;
  for (const auto& [name, spec] : tensors) {
    if (expected.contains(name)) continue;
    if (name.ends_with("rotary_emb.inv_freq")) continue;
    if (name == "lm_head.weight" && c.tie_word_embeddings &&
        spec.shape == std::vector<std::int64_t>{c.vocab_size, c.hidden_size})
      continue;
    fail(source, ": unexpected tensor '", name, "' with shape ", detail::shape_string(spec.shape),
         " for a ", family_name(c.family), " config with ", c.num_hidden_layers, " layers");
  }
}

}  // namespace kaizen::io
