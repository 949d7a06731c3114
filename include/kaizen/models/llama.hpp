// kaizen/models/llama.hpp - a Llama-architecture decoder in the LibTorch C++ frontend, with a KV cache.
//
//   h_0      = E[x]                                         token embedding E [V, H]
//   a_l      = h_{l-1} + W_o · Attn(RoPE(W_q n), RoPE(W_k n), W_v n),   n = RMSNorm(h_{l-1})
//   h_l      = a_l + W_down · (SiLU(W_gate m) ⊙ W_up m),    m = RMSNorm(a_l)
//   logits   = RMSNorm(h_L) · U^T                          U = E when tie_word_embeddings
//
//   RMSNorm(x) = x / sqrt(mean(x²) + ε) ⊙ g
//   RoPE rotates each (i, i + D/2) pair of a head's dimensions by angle p · f_i at position p
//   (the "rotate_half" layout of Hugging Face Llama), so q·k depends only on the relative position;
//   f_i = θ^(−2i/D), or the scaled frequencies of io::rope_inverse_frequencies when rope_scaling is
//   linear / dynamic / llama3 (dynamic uses the batch's largest position + 1 as the sequence length).
//   Optional pieces, each off by default, for real checkpoints: an explicit head_dim D (Qwen3: D need
//   not be hidden / heads), q/k/v biases (attention_bias; Qwen2), an o_proj bias (o_bias), MLP biases
//   (mlp_bias), and a per-head RMSNorm of q and k over D before RoPE (qk_norm; Qwen3), and an untied
//   output matrix U = lm_head.weight.
//   Grouped-query attention: num_attention_heads query heads share num_key_value_heads K/V heads
//   (each K/V head serves num_attention_heads / num_key_value_heads query heads).
//
// A query attends to the keys that are real tokens (attention_mask true) at or before its own column,
// and always to itself (so a padding query never sees an empty row and stays finite); padding therefore
// never changes a real token's output, with left or right padding. Positions come from position_ids,
// so a left-padded row gets the same rotations as the unpadded sequence.
//
// Speed (the arithmetic above is unchanged by each): attention is PyTorch's scaled_dot_product_attention
// (fused CPU/CUDA kernels; grouped-query heads through enable_gqa, so K/V are never repeated); the KV
// cache is preallocated and written in place (KvCache); without gradient (sampling, frozen log-probs)
// q/k/v and gate/up each run as one GEMM over a shared weight buffer the separate parameters alias
// (detail::FusedRows), and project() cuts the output head into 1024-row slices for a few rows on the CPU.
//
// The configuration uses the names and meaning of a Hugging Face Llama / Qwen2 config.json and the
// parameter names follow its state dict (model.layers.N.self_attn.q_proj.weight, ...), so real
// checkpoints can be mapped onto it.
//
// References: Touvron et al. 2023, "LLaMA" (arXiv 2302.13971); Zhang & Sennrich 2019, "Root Mean
// Square Layer Normalization" (arXiv 1910.07467); Su et al. 2021, "RoFormer" (arXiv 2104.09864);
// Ainslie et al. 2023, "GQA" (arXiv 2305.13245); Shazeer 2020, "GLU Variants Improve Transformer"
// (arXiv 2002.05202).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/io/decoder_config.hpp>
#include <kaizen/torch/checkpoint.hpp>

// The decoder families live in namespace kaizen::lm (as torch/ does): a namespace kaizen::torch or kaizen::models
// would hide ::torch or read oddly at call sites; lm:: names what they are.
namespace kaizen::lm {

/// Model hyper-parameters, named as in a Hugging Face Llama / Qwen2 config.json.
struct LlamaConfig {
  std::int64_t vocab_size = 32;
  std::int64_t hidden_size = 64;
  std::int64_t intermediate_size = 176;
  std::int64_t num_hidden_layers = 2;
  std::int64_t num_attention_heads = 4;
  std::int64_t num_key_value_heads = 2;
  std::int64_t max_position_embeddings = 64;  ///< the context: prompt + completion tokens
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = true;
  bool attention_bias = false;  ///< bias on q/k/v projections (Qwen2: true)
  bool o_bias = false;          ///< bias on o_proj (Hugging Face Llama/Qwen3 with attention_bias: true)
  bool mlp_bias = false;        ///< bias on gate/up/down projections (Llama mlp_bias)
  bool qk_norm = false;         ///< RMSNorm of each q and k head over head_dim before RoPE (Qwen3)
  std::int64_t explicit_head_dim = 0;  ///< head_dim when > 0 (Qwen3); 0: hidden_size / num_attention_heads
  io::RopeScaling rope_scaling;        ///< rope scaling (default: none)
  /// Training only (not part of a checkpoint's config.json): recompute each decoder layer's activations in
  /// backward instead of keeping them (ops::checkpoint), when the forward runs with gradient and no KV cache.
  /// Same values and gradients; less memory, one more forward of the layers per backward.
  bool gradient_checkpointing = false;

  [[nodiscard]] std::int64_t head_dim() const {
    return explicit_head_dim > 0 ? explicit_head_dim : hidden_size / num_attention_heads;
  }

  /// The model configuration for a checkpoint described by `c` (every io::DecoderConfig feature maps
  /// onto one of the fields above). Throws kaizen::Error naming the field when a value is not usable.
  [[nodiscard]] static LlamaConfig from(const io::DecoderConfig& c) {
    LlamaConfig out;
    out.vocab_size = c.vocab_size;
    out.hidden_size = c.hidden_size;
    out.intermediate_size = c.intermediate_size;
    out.num_hidden_layers = c.num_hidden_layers;
    out.num_attention_heads = c.num_attention_heads;
    out.num_key_value_heads = c.num_key_value_heads;
    KAIZEN_CHECK(c.head_dim > 0, "LlamaConfig::from: head_dim must be > 0, got ", c.head_dim);
    out.explicit_head_dim =
        c.num_attention_heads > 0 && c.head_dim * c.num_attention_heads == c.hidden_size ? 0 : c.head_dim;
    out.max_position_embeddings = c.max_position_embeddings;
    out.rms_norm_eps = c.rms_norm_eps;
    out.rope_theta = c.rope_theta;
    out.rope_scaling = c.rope_scaling;
    out.tie_word_embeddings = c.tie_word_embeddings;
    out.attention_bias = c.qkv_bias;
    out.o_bias = c.o_bias;
    out.mlp_bias = c.mlp_bias;
    out.qk_norm = c.qk_norm;
    out.validate();
    return out;
  }

  /// The inverse rotary frequencies f_i (i < head_dim / 2) for a sequence of `seq_len` positions.
  [[nodiscard]] std::vector<double> rope_inverse_frequencies(std::int64_t seq_len) const {
    io::DecoderConfig d;
    d.head_dim = head_dim();
    d.rope_theta = rope_theta;
    d.rope_scaling = rope_scaling;
    d.max_position_embeddings = max_position_embeddings;
    return io::rope_inverse_frequencies(d, seq_len);
  }

  /// Throws kaizen::Error naming the field unless every size is positive and the heads divide evenly.
  void validate() const {
    KAIZEN_CHECK(vocab_size > 0, "LlamaConfig: vocab_size must be > 0, got ", vocab_size);
    KAIZEN_CHECK(hidden_size > 0, "LlamaConfig: hidden_size must be > 0, got ", hidden_size);
    KAIZEN_CHECK(intermediate_size > 0, "LlamaConfig: intermediate_size must be > 0, got ", intermediate_size);
    KAIZEN_CHECK(num_hidden_layers > 0, "LlamaConfig: num_hidden_layers must be > 0, got ", num_hidden_layers);
    KAIZEN_CHECK(explicit_head_dim >= 0, "LlamaConfig: explicit_head_dim must be >= 0, got ", explicit_head_dim);
    KAIZEN_CHECK(num_attention_heads > 0 && (explicit_head_dim > 0 || hidden_size % num_attention_heads == 0),
                 "LlamaConfig: num_attention_heads must be > 0 and divide hidden_size ", hidden_size, ", got ",
                 num_attention_heads);
    KAIZEN_CHECK(head_dim() % 2 == 0, "LlamaConfig: the head dimension (head_dim, or hidden_size / "
                 "num_attention_heads) must be even for rotary embeddings, got ", head_dim());
    KAIZEN_CHECK(num_key_value_heads > 0 && num_attention_heads % num_key_value_heads == 0,
                 "LlamaConfig: num_key_value_heads must be > 0 and divide num_attention_heads ",
                 num_attention_heads, ", got ", num_key_value_heads);
    KAIZEN_CHECK(max_position_embeddings > 1, "LlamaConfig: max_position_embeddings must be > 1, got ",
                 max_position_embeddings);
    KAIZEN_CHECK(rms_norm_eps > 0.0, "LlamaConfig: rms_norm_eps must be > 0, got ", rms_norm_eps);
    KAIZEN_CHECK(rope_theta > 0.0, "LlamaConfig: rope_theta must be > 0, got ", rope_theta);
    const auto& r = rope_scaling;
    KAIZEN_CHECK(r.type == io::RopeType::Default || r.factor > 0.0, "LlamaConfig: rope_scaling.factor must be > 0, got ",
                 r.factor);
    KAIZEN_CHECK(r.type != io::RopeType::Llama3 ||
                     (r.original_max_position_embeddings > 0 && r.high_freq_factor > r.low_freq_factor),
                 "LlamaConfig: llama3 rope_scaling needs original_max_position_embeddings > 0 and "
                 "high_freq_factor > low_freq_factor, got ", r.original_max_position_embeddings, ", ",
                 r.high_freq_factor, " and ", r.low_freq_factor);
  }

  /// Reads a config.json object; absent keys keep their defaults (num_key_value_heads defaults to
  /// num_attention_heads, as in Hugging Face). Throws kaizen::Error on a non-object or invalid values.
  [[nodiscard]] static LlamaConfig from_json(const nlohmann::json& j) {
    KAIZEN_CHECK(j.is_object(), "LlamaConfig::from_json: expected a JSON object, got ", j.type_name());
    LlamaConfig c;
    auto read = [&](const char* key, auto& field) {
      if (!j.contains(key) || j.at(key).is_null()) return;
      try {
        j.at(key).get_to(field);
      } catch (const nlohmann::json::exception& e) {
        fail("LlamaConfig::from_json: key \"", key, "\" has the wrong type: ", e.what());
      }
    };
    read("vocab_size", c.vocab_size);
    read("hidden_size", c.hidden_size);
    read("intermediate_size", c.intermediate_size);
    read("num_hidden_layers", c.num_hidden_layers);
    read("num_attention_heads", c.num_attention_heads);
    c.num_key_value_heads = c.num_attention_heads;
    read("num_key_value_heads", c.num_key_value_heads);
    read("max_position_embeddings", c.max_position_embeddings);
    read("rms_norm_eps", c.rms_norm_eps);
    read("rope_theta", c.rope_theta);
    read("tie_word_embeddings", c.tie_word_embeddings);
    read("attention_bias", c.attention_bias);
    read("head_dim", c.explicit_head_dim);
    c.validate();
    return c;
  }

  [[nodiscard]] nlohmann::json to_json() const {
    return {{"architectures", {"LlamaForCausalLM"}},
            {"vocab_size", vocab_size},
            {"hidden_size", hidden_size},
            {"intermediate_size", intermediate_size},
            {"num_hidden_layers", num_hidden_layers},
            {"num_attention_heads", num_attention_heads},
            {"num_key_value_heads", num_key_value_heads},
            {"max_position_embeddings", max_position_embeddings},
            {"rms_norm_eps", rms_norm_eps},
            {"rope_theta", rope_theta},
            {"tie_word_embeddings", tie_word_embeddings},
            {"attention_bias", attention_bias}};
  }
  // from_json/to_json cover the original fields (and head_dim); checkpoints go through
  // io::parse_hf_config and LlamaConfig::from, which know every family's conventions.
};

/// Keys and values of every layer for the tokens seen so far, plus which of them are real tokens.
/// Built by LlamaModel::forward on its first cached call. The buffers are preallocated along the
/// sequence dimension (capacity columns, of which the first length() are filled): each call writes its
/// columns in place, and a call past the capacity reallocates to max(needed, 2 × capacity), so a decode
/// loop copies nothing per step. Set `reserve` before the first call to size the buffers for the whole
/// generation (prompt + new tokens) at once.
struct KvCache {
  std::vector<torch::Tensor> keys;    ///< per layer [B, num_key_value_heads, capacity, head_dim]
  std::vector<torch::Tensor> values;  ///< per layer [B, num_key_value_heads, capacity, head_dim]
  torch::Tensor valid;                ///< [B, capacity] bool: key column s is a real token (false past length())
  std::int64_t used = 0;              ///< filled columns
  std::int64_t reserve = 0;           ///< columns to allocate when the cache starts (at least the first call's)

  [[nodiscard]] std::int64_t length() const { return used; }
  [[nodiscard]] std::int64_t capacity() const { return valid.defined() ? valid.size(1) : 0; }
};

namespace detail {

/// x / sqrt(mean(x²) + ε) ⊙ g, computed in float32 (or float64) and cast back to x's dtype.
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(std::int64_t size, double eps) : eps_(eps) {
    weight = register_parameter("weight", torch::ones({size}));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const auto compute = x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    const torch::Tensor xf = x.to(compute);
    const torch::Tensor normed = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps_);
    return weight * normed.to(x.scalar_type());
  }
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RmsNorm);

/// Several Linear layers that read the same input (q/k/v; gate/up), with their weights (and biases) laid
/// out back to back in one buffer: each layer's parameter is re-pointed (set_data) at its rows of the
/// buffer, so the parameters keep their names, shapes, gradients and optimizer state, an in-place
/// update of one writes the buffer, and without gradient one GEMM computes all outputs. Anything that
/// gives a parameter new storage (Module::to to another dtype or device, a loader that swaps tensors)
/// breaks the aliasing; valid() then turns false, the caller takes the separate layers, and fuse()
/// rebuilds the buffer.
class FusedRows {
 public:
  FusedRows() = default;
  explicit FusedRows(std::vector<torch::nn::Linear> parts) : parts_(std::move(parts)) {}

  /// Copies the layers' weights (and biases, when every layer has one) into a fresh buffer and points
  /// each parameter at its rows of it.
  void fuse() {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> ws, bs;
    bool biased = true;
    for (const auto& p : parts_) {
      ws.push_back(p->weight);
      biased = biased && p->bias.defined();
      if (p->bias.defined()) bs.push_back(p->bias);
    }
    weight_ = torch::cat(ws, 0);
    bias_ = biased ? torch::cat(bs, 0) : torch::Tensor();
    std::int64_t row = 0;
    for (auto& p : parts_) {
      const std::int64_t n = p->weight.size(0);
      p->weight.set_data(weight_.narrow(0, row, n));
      if (biased) p->bias.set_data(bias_.narrow(0, row, n));
      row += n;
    }
  }

  /// Whether every parameter still lives at its rows of the buffer (same storage, offset, dtype, device).
  [[nodiscard]] bool valid() const {
    if (!weight_.defined()) return false;
    std::int64_t row = 0;
    for (const auto& p : parts_) {
      const std::int64_t n = p->weight.size(0);
      if (!aliased(p->weight, weight_, row, n)) return false;
      if (bias_.defined() && !aliased(p->bias, bias_, row, n)) return false;
      if (!bias_.defined() && p->bias.defined()) return false;
      row += n;
    }
    return row == weight_.size(0);
  }

  /// All layers' outputs of `x` [..., in] concatenated along the last dimension (one GEMM).
  [[nodiscard]] torch::Tensor forward(const torch::Tensor& x) const { return torch::linear(x, weight_, bias_); }

 private:
  [[nodiscard]] static bool aliased(const torch::Tensor& p, const torch::Tensor& buffer, std::int64_t row, std::int64_t n) {
    const std::int64_t width = buffer.dim() == 2 ? buffer.size(1) : 1;
    return p.defined() && p.is_alias_of(buffer) && p.scalar_type() == buffer.scalar_type() &&
           p.device() == buffer.device() && p.storage_offset() == buffer.storage_offset() + row * width &&
           p.size(0) == n && p.is_contiguous();
  }

  std::vector<torch::nn::Linear> parts_;
  torch::Tensor weight_, bias_;
};

/// Whether the low-rank adapters of one owner (models/lora.hpp's LoraModel) take part in the forward:
/// `enabled` false runs the frozen base (e.g. as the reference policy); `merged` says their update
/// already lives in the base weights (W += scale · B A), so the forward adds nothing.
struct AdapterSwitch {
  bool enabled = true;
  bool merged = false;
};

/// A low-rank update attached to one projection y = W x + b (models/lora.hpp creates, owns and saves them):
///   y = W x + b + scale · B (A dropout(x)),   A [r, in], B [out, r]
/// Dropout (probability `dropout`) acts only in training mode with gradient recording on: without gradient
/// (sampling, frozen log-probs) the adapter is deterministic, so the sampler and the trainer agree.
struct LowRankAdapter {
  torch::Tensor A, B;
  double scale = 1.0;
  double dropout = 0.0;
  std::shared_ptr<const AdapterSwitch> state;  ///< shared by all adapters of one owner; null = always on

  /// The update s · B (A dropout(x)) in `dtype`, or an undefined tensor when there is nothing to add (adapters
  /// off, or merged). Throws kaizen::Error for a forward the merged weights cannot give: adapters off (the
  /// base is not stored), or with gradient into A and B.
  [[nodiscard]] torch::Tensor update(const torch::Tensor& x, bool training, torch::ScalarType dtype) const {
    if (state && !state->enabled) {
      KAIZEN_CHECK(!state->merged, "LoRA: the adapters are merged into the base weights, so the model cannot run "
                   "with adapters off; unmerge() first");
      return {};
    }
    if (state && state->merged) {
      KAIZEN_CHECK(!(torch::GradMode::is_enabled() && A.requires_grad()),
                   "LoRA: the adapters are merged into the base weights, so a forward with gradient would not train "
                   "them; unmerge() before training (or run without gradient)");
      return {};
    }
    torch::Tensor in = x.to(A.scalar_type());
    if (dropout > 0.0 && training && torch::GradMode::is_enabled()) in = torch::dropout(in, dropout, /*train=*/true);
    return (torch::linear(torch::linear(in, A), B) * scale).to(dtype);
  }
  /// `y` (the projection's output for `x`) plus the update.
  [[nodiscard]] torch::Tensor add_to(const torch::Tensor& y, const torch::Tensor& x, bool training) const {
    const torch::Tensor u = update(x, training, y.scalar_type());
    return u.defined() ? y + u : y;
  }
  /// Adds the update into `y` in place (a view of a fused no-gradient output keeps its layout).
  void add_into(const torch::Tensor& y, const torch::Tensor& x, bool training) const {
    const torch::Tensor u = update(x, training, y.scalar_type());
    if (u.defined()) y.add_(u);
  }
};

/// lin(x), plus the update of `adapter` when one is attached.
[[nodiscard]] inline torch::Tensor adapted(torch::nn::Linear& lin, const std::shared_ptr<LowRankAdapter>& adapter,
                                           const torch::Tensor& x, bool training) {
  torch::Tensor y = lin(x);
  return adapter ? adapter->add_to(y, x, training) : y;
}

/// (x1, x2) -> (-x2, x1) over the two halves of the last dimension.
[[nodiscard]] inline torch::Tensor rotate_half(const torch::Tensor& x) {
  const std::int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const LlamaConfig& c)
      : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim()) {
    if (c.qk_norm) {
      q_norm = register_module("q_norm", RmsNorm(head_dim_, c.rms_norm_eps));
      k_norm = register_module("k_norm", RmsNorm(head_dim_, c.rms_norm_eps));
    }
    q_proj = register_module("q_proj", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, heads_ * head_dim_)
                                                             .bias(c.attention_bias)));
    k_proj = register_module("k_proj", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, kv_heads_ * head_dim_)
                                                             .bias(c.attention_bias)));
    v_proj = register_module("v_proj", torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, kv_heads_ * head_dim_)
                                                             .bias(c.attention_bias)));
    o_proj = register_module("o_proj", torch::nn::Linear(torch::nn::LinearOptions(heads_ * head_dim_, c.hidden_size)
                                                             .bias(c.o_bias)));
    qkv_ = FusedRows({q_proj, k_proj, v_proj});
  }

  /// Lays q/k/v out in one buffer (FusedRows) for the gradient-free path; LlamaModel calls it.
  void fuse() { qkv_.fuse(); }

  /// x [B, T, H]; cos/sin [B, 1, T, D]; mask [B, 1, T, S] bool (true = may attend), S = past + T.
  /// With a cache (cache_k/cache_v [B, kv_heads, capacity, D], capacity >= S), writes this call's keys
  /// and values into columns [past, S) and attends over columns [0, S).
  /// Attention is PyTorch's scaled_dot_product_attention (its fused CPU/CUDA kernels), grouped-query
  /// heads through enable_gqa, so K/V are never repeated per query head.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, torch::Tensor* cache_k, torch::Tensor* cache_v, std::int64_t past) {
    const std::int64_t B = x.size(0), T = x.size(1);
    torch::Tensor q, k, v;
    if (!torch::GradMode::is_enabled() && qkv_.valid()) {  // one GEMM for q, k and v
      const torch::Tensor qkv = qkv_.forward(x);
      q = qkv.narrow(-1, 0, heads_ * head_dim_);
      k = qkv.narrow(-1, heads_ * head_dim_, kv_heads_ * head_dim_);
      v = qkv.narrow(-1, (heads_ + kv_heads_) * head_dim_, kv_heads_ * head_dim_);
      // Adapters add into the fused output in place (no gradient here), so q/k/v keep their layout.
      if (adapters.q_proj) adapters.q_proj->add_into(q, x, is_training());
      if (adapters.k_proj) adapters.k_proj->add_into(k, x, is_training());
      if (adapters.v_proj) adapters.v_proj->add_into(v, x, is_training());
    } else {
      q = adapted(q_proj, adapters.q_proj, x, is_training());
      k = adapted(k_proj, adapters.k_proj, x, is_training());
      v = adapted(v_proj, adapters.v_proj, x, is_training());
    }
    q = q.view({B, T, heads_, head_dim_});
    k = k.view({B, T, kv_heads_, head_dim_});
    if (q_norm) {
      q = q_norm(q);
      k = k_norm(k);
    }
    q = q.transpose(1, 2);
    k = k.transpose(1, 2);
    v = v.view({B, T, kv_heads_, head_dim_}).transpose(1, 2);
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
    if (cache_k != nullptr) {
      cache_k->narrow(2, past, T).copy_(k);
      cache_v->narrow(2, past, T).copy_(v);
      k = cache_k->narrow(2, 0, past + T);
      v = cache_v->narrow(2, 0, past + T);
    }
    const torch::Tensor out =
        at::scaled_dot_product_attention(q, k, v, mask, /*dropout_p=*/0.0, /*is_causal=*/false,
                                         1.0 / std::sqrt(static_cast<double>(head_dim_)), /*enable_gqa=*/kv_heads_ != heads_);
    return adapted(o_proj, adapters.o_proj, out.transpose(1, 2).reshape({B, T, heads_ * head_dim_}), is_training());
  }

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  /// Low-rank adapters on the projections (null: none); models/lora.hpp attaches them.
  struct Adapters {
    std::shared_ptr<LowRankAdapter> q_proj, k_proj, v_proj, o_proj;
  } adapters;
  /// The attached adapters' A and B tensors (for a caller that lists every trainable tensor the forward reads).
  [[nodiscard]] std::vector<torch::Tensor> adapter_tensors() const {
    std::vector<torch::Tensor> out;
    for (const auto* a : {&adapters.q_proj, &adapters.k_proj, &adapters.v_proj, &adapters.o_proj})
      if (*a) out.insert(out.end(), {(*a)->A, (*a)->B});
    return out;
  }
  RmsNorm q_norm{nullptr}, k_norm{nullptr};  ///< only with qk_norm

 private:
  std::int64_t heads_, kv_heads_, head_dim_;
  FusedRows qkv_;
};
TORCH_MODULE(Attention);

/// SwiGLU: W_down (SiLU(W_gate x) ⊙ W_up x).
class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const LlamaConfig& c) {
    gate_proj = register_module("gate_proj",
                                torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.intermediate_size).bias(c.mlp_bias)));
    up_proj = register_module("up_proj",
                              torch::nn::Linear(torch::nn::LinearOptions(c.hidden_size, c.intermediate_size).bias(c.mlp_bias)));
    down_proj = register_module("down_proj",
                                torch::nn::Linear(torch::nn::LinearOptions(c.intermediate_size, c.hidden_size).bias(c.mlp_bias)));
    gate_up_ = FusedRows({gate_proj, up_proj});
  }
  /// Lays gate/up out in one buffer (FusedRows) for the gradient-free path; LlamaModel calls it.
  void fuse() { gate_up_.fuse(); }
  torch::Tensor forward(const torch::Tensor& x) {
    if (!torch::GradMode::is_enabled() && gate_up_.valid()) {  // one GEMM for gate and up
      const torch::Tensor gu = gate_up_.forward(x);
      const std::int64_t n = gu.size(-1) / 2;
      const torch::Tensor gate = gu.narrow(-1, 0, n), up = gu.narrow(-1, n, n);
      if (adapters.gate_proj) adapters.gate_proj->add_into(gate, x, is_training());
      if (adapters.up_proj) adapters.up_proj->add_into(up, x, is_training());
      return adapted(down_proj, adapters.down_proj, torch::silu(gate) * up, is_training());
    }
    return adapted(down_proj, adapters.down_proj,
                   torch::silu(adapted(gate_proj, adapters.gate_proj, x, is_training())) *
                       adapted(up_proj, adapters.up_proj, x, is_training()),
                   is_training());
  }
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
  /// Low-rank adapters on the projections (null: none); models/lora.hpp attaches them.
  struct Adapters {
    std::shared_ptr<LowRankAdapter> gate_proj, up_proj, down_proj;
  } adapters;
  /// The attached adapters' A and B tensors (for a caller that lists every trainable tensor the forward reads).
  [[nodiscard]] std::vector<torch::Tensor> adapter_tensors() const {
    std::vector<torch::Tensor> out;
    for (const auto* a : {&adapters.gate_proj, &adapters.up_proj, &adapters.down_proj})
      if (*a) out.insert(out.end(), {(*a)->A, (*a)->B});
    return out;
  }

 private:
  FusedRows gate_up_;
};
TORCH_MODULE(Mlp);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  explicit DecoderLayerImpl(const LlamaConfig& c) {
    self_attn = register_module("self_attn", Attention(c));
    mlp = register_module("mlp", Mlp(c));
    input_layernorm = register_module("input_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps));
    post_attention_layernorm = register_module("post_attention_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, torch::Tensor* cache_k, torch::Tensor* cache_v, std::int64_t past) {
    const torch::Tensor h = x + self_attn(input_layernorm(x), cos, sin, mask, cache_k, cache_v, past);
    return h + mlp(post_attention_layernorm(h));
  }
  Attention self_attn{nullptr};
  Mlp mlp{nullptr};
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

/// The decoder stack without the output head ("model." in a Hugging Face state dict).
class LlamaBodyImpl : public torch::nn::Module {
 public:
  explicit LlamaBodyImpl(const LlamaConfig& c) {
    embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
    layers = register_module("layers", torch::nn::ModuleList());
    for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) layers->push_back(DecoderLayer(c));
    norm = register_module("norm", RmsNorm(c.hidden_size, c.rms_norm_eps));
  }
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RmsNorm norm{nullptr};
};
TORCH_MODULE(LlamaBody);

}  // namespace detail

/// The Llama decoder with its output head. Models kaizen::Policy and kaizen::HiddenStatePolicy.
///
/// Use it by value or through std::shared_ptr (it is a torch::nn::Module, not a ModuleHolder):
///   LlamaModel model(LlamaConfig{...});           // float32, CPU, N(0, 0.02) weights
///   torch::Tensor logits = model.logits(batch);   // [B, T, V]
/// Every entry point throws kaizen::Error on an id outside [0, vocab_size), a sequence longer than
/// max_position_embeddings, or mismatched shapes.
class LlamaModel : public torch::nn::Module {
 public:
  explicit LlamaModel(const LlamaConfig& config) : config_(config) {
    config_.validate();
    model = register_module("model", detail::LlamaBody(config_));
    if (!config_.tie_word_embeddings) {
      lm_head = register_module("lm_head",
                                torch::nn::Linear(torch::nn::LinearOptions(config_.hidden_size, config_.vocab_size).bias(false)));
    }
    torch::NoGradGuard no_grad;
    for (auto& p : named_parameters()) {
      if (p.key().find("norm") != std::string::npos) continue;  // RMSNorm gains stay 1
      if (p.value().dim() == 1) p.value().zero_();               // biases
      else p.value().normal_(0.0, 0.02);
    }
    fuse_projections();
  }

  /// (Re)builds the fused q/k/v and gate/up buffers of every layer (detail::FusedRows): the gradient-free
  /// forward (sampling, frozen log-probs) then runs one GEMM for q, k, v and one for gate, up. Called by
  /// the constructor and after to(); call it again after anything else gives the parameters new storage
  /// (until then the separate projections are used, with the same results).
  void fuse_projections() {
    for (std::size_t l = 0; l < model->layers->size(); ++l) {
      auto layer = model->layers->ptr<detail::DecoderLayerImpl>(l);
      layer->self_attn->fuse();
      layer->mlp->fuse();
    }
  }

  void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override {
    torch::nn::Module::to(device, dtype, non_blocking);
    fuse_projections();
  }
  void to(torch::Dtype dtype, bool non_blocking = false) override {
    torch::nn::Module::to(dtype, non_blocking);
    fuse_projections();
  }
  void to(torch::Device device, bool non_blocking = false) override {
    torch::nn::Module::to(device, non_blocking);
    fuse_projections();
  }

  [[nodiscard]] const LlamaConfig& config() const { return config_; }

  /// Turns gradient checkpointing of the decoder layers on or off (LlamaConfig::gradient_checkpointing).
  void set_gradient_checkpointing(bool on) { config_.gradient_checkpointing = on; }

  /// The final hidden states [B, T, H] (after the last RMSNorm) for `input_ids` [B, T] int64,
  /// `position_ids` [B, T] int64 and `attention_mask` [B, T] bool (true on real tokens).
  /// With `cache`, the call continues the cached sequence: its keys are the cache's plus this call's,
  /// and the cache is extended in place (an empty cache starts one).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                        const torch::Tensor& attention_mask, KvCache* cache = nullptr) {
    check_inputs(input_ids, position_ids, attention_mask);
    const std::int64_t B = input_ids.size(0), T = input_ids.size(1);
    const std::int64_t past = cache != nullptr ? cache->length() : 0;
    if (cache != nullptr && past > 0) {
      KAIZEN_CHECK(cache->valid.size(0) == B, "LlamaModel: the KV cache holds ", cache->valid.size(0),
                   " rows but the input has ", B);
    }
    const auto device = input_ids.device();
    torch::Tensor h = model->embed_tokens(input_ids);
    const auto [cos, sin] = rotary(position_ids, h.scalar_type());

    // Keys: the cache's columns then this call's. Query i (absolute column past + i) may attend to
    // key j when j <= past + i and key j is real, and always to itself.
    if (cache != nullptr) grow(*cache, B, past + T, h.scalar_type(), device);
    torch::Tensor keys_valid = attention_mask;
    if (cache != nullptr) {
      cache->valid.narrow(1, past, T).copy_(attention_mask);
      keys_valid = cache->valid.narrow(1, 0, past + T);
    }
    const torch::Tensor q_col = torch::arange(past, past + T, torch::TensorOptions().dtype(torch::kLong).device(device));
    const torch::Tensor k_col = torch::arange(past + T, torch::TensorOptions().dtype(torch::kLong).device(device));
    const torch::Tensor causal = k_col.unsqueeze(0) <= q_col.unsqueeze(1);  // [T, S]
    const torch::Tensor self = k_col.unsqueeze(0) == q_col.unsqueeze(1);
    const torch::Tensor mask = (causal.unsqueeze(0) & keys_valid.unsqueeze(1)) | self.unsqueeze(0);  // [B, T, S]
    const torch::Tensor mask4 = mask.unsqueeze(1);

    for (std::size_t l = 0; l < model->layers->size(); ++l) {
      auto layer = model->layers->ptr<detail::DecoderLayerImpl>(l);
      if (config_.gradient_checkpointing && cache == nullptr && torch::GradMode::is_enabled()) {
        // Only the layer's input is kept; its activations are recomputed in backward (torch/checkpoint.hpp).
        h = ops::checkpoint(
            [layer, cos, sin, mask4](const torch::Tensor& x) {
              return layer->forward(x, cos, sin, mask4, nullptr, nullptr, 0);
            },
            h, [&layer] {
              // The layer's own weights and any low-rank adapters attached to it (models/lora.hpp) receive gradients.
              auto p = layer->parameters();
              for (auto& t : layer->self_attn->adapter_tensors()) p.push_back(t);
              for (auto& t : layer->mlp->adapter_tensors()) p.push_back(t);
              return p;
            }());
        continue;
      }
      h = layer->forward(h, cos, sin, mask4, cache != nullptr ? &cache->keys[l] : nullptr,
                         cache != nullptr ? &cache->values[l] : nullptr, past);
    }
    if (cache != nullptr) cache->used = past + T;
    return model->norm(h);
  }

  /// [V, H]: the matrix that maps hidden states to logits (the token embedding when tied).
  [[nodiscard]] torch::Tensor output_embedding() {
    return config_.tie_word_embeddings ? model->embed_tokens->weight : lm_head->weight;
  }

  /// Logits [N..., V] from hidden states [N..., H].
  /// Without gradient, on the CPU, for up to 256 rows (a decode step), the product is taken in slices of
  /// 1024 vocabulary rows: a single [N, H] × [H, V] GEMM with V in the tens of thousands runs several
  /// times slower in LibTorch's CPU BLAS than the same product cut into cache-sized slices (measured on
  /// SmolLM2's 49,152 × 576 head at 16 rows: 286 ms whole, 35 ms in 1024-row slices, float32; bfloat16
  /// 45 ms and 20 ms). Same products, same values.
  [[nodiscard]] torch::Tensor project(const torch::Tensor& hidden) {
    const torch::Tensor w = output_embedding();
    constexpr std::int64_t kSlice = 1024, kMaxRows = 256;
    const std::int64_t V = w.size(0);
    if (torch::GradMode::is_enabled() || !hidden.device().is_cpu() || V <= 2 * kSlice ||
        hidden.numel() > kMaxRows * hidden.size(-1)) {
      return torch::matmul(hidden, w.t());
    }
    std::vector<torch::Tensor> parts;
    parts.reserve(static_cast<std::size_t>((V + kSlice - 1) / kSlice));
    for (std::int64_t v = 0; v < V; v += kSlice) parts.push_back(torch::linear(hidden, w.narrow(0, v, std::min(kSlice, V - v))));
    return torch::cat(parts, -1);
  }

  /// HiddenStatePolicy: [B, T, H] for a TokenBatch (uses input_ids, position_ids, attention_mask).
  [[nodiscard]] torch::Tensor hidden_states(const TokenBatch& batch) {
    return forward(batch.input_ids, batch.position_ids, batch.attention_mask);
  }

  /// Policy: [B, T, V] logits; column t predicts input_ids[:, t + 1].
  [[nodiscard]] torch::Tensor logits(const TokenBatch& batch) { return project(hidden_states(batch)); }

  /// Copies every parameter of `other` (same configuration) into this model, e.g. for a frozen reference.
  void copy_from(LlamaModel& other) {
    torch::NoGradGuard no_grad;
    auto mine = named_parameters();
    auto theirs = other.named_parameters();
    KAIZEN_CHECK(mine.size() == theirs.size(), "LlamaModel::copy_from: the models have ", mine.size(), " and ",
                 theirs.size(), " parameters");
    for (auto& p : mine) {
      const torch::Tensor* src = theirs.find(p.key());
      KAIZEN_CHECK(src != nullptr && src->sizes() == p.value().sizes(), "LlamaModel::copy_from: parameter ",
                   p.key(), " is missing or has another shape in the source model");
      p.value().copy_(*src);
    }
  }

  detail::LlamaBody model{nullptr};
  torch::nn::Linear lm_head{nullptr};

 private:
  void check_inputs(const torch::Tensor& ids, const torch::Tensor& pos, const torch::Tensor& mask) const {
    KAIZEN_CHECK(ids.defined() && ids.dim() == 2 && ids.scalar_type() == torch::kLong,
                 "LlamaModel: input_ids must be [B, T] int64, got ",
                 ids.defined() ? ids.sizes() : torch::IntArrayRef{}, ids.defined() ? " " : "undefined ",
                 ids.defined() ? c10::toString(ids.scalar_type()) : "");
    KAIZEN_CHECK(ids.size(1) > 0, "LlamaModel: input_ids has no columns");
    KAIZEN_CHECK(pos.defined() && pos.sizes() == ids.sizes() && pos.scalar_type() == torch::kLong,
                 "LlamaModel: position_ids must be int64 with input_ids' shape ", ids.sizes(), ", got ",
                 pos.defined() ? pos.sizes() : torch::IntArrayRef{});
    KAIZEN_CHECK(mask.defined() && mask.sizes() == ids.sizes() && mask.scalar_type() == torch::kBool,
                 "LlamaModel: attention_mask must be bool with input_ids' shape ", ids.sizes(), ", got ",
                 mask.defined() ? mask.sizes() : torch::IntArrayRef{});
    // One host read for the four bounds (a single device sync on CUDA).
    const torch::Tensor bounds = torch::stack({ids.min(), ids.max(), pos.min(), pos.max()}).cpu();
    const auto b = bounds.accessor<std::int64_t, 1>();
    const std::int64_t lo = b[0], hi = b[1], pmin = b[2], pmax = b[3];
    KAIZEN_CHECK(lo >= 0 && hi < config_.vocab_size, "LlamaModel: token ids must lie in [0, ", config_.vocab_size,
                 "), got the range [", lo, ", ", hi, "]");
    KAIZEN_CHECK(pmin >= 0 && pmax < config_.max_position_embeddings, "LlamaModel: position ids must lie in [0, ",
                 config_.max_position_embeddings, ") (max_position_embeddings), got the range [", pmin, ", ", pmax,
                 "]");
  }

  /// Makes room in `cache` for `needed` columns of B rows: allocates every layer's buffers on the first
  /// call (max(needed, cache.reserve) columns), or reallocates to max(needed, 2 × capacity) and copies
  /// the filled columns when the capacity is short.
  void grow(KvCache& cache, std::int64_t B, std::int64_t needed, torch::ScalarType dtype, torch::Device device) const {
    if (cache.valid.defined() && cache.capacity() >= needed) return;
    const std::int64_t capacity = std::max({needed, cache.reserve, 2 * cache.capacity()});
    const auto L = static_cast<std::size_t>(config_.num_hidden_layers);
    const auto opts = torch::TensorOptions().dtype(dtype).device(device);
    const std::vector<std::int64_t> shape{B, config_.num_key_value_heads, capacity, config_.head_dim()};
    torch::Tensor valid = torch::zeros({B, capacity}, torch::TensorOptions().dtype(torch::kBool).device(device));
    const std::int64_t used = cache.used;
    if (used > 0) valid.narrow(1, 0, used).copy_(cache.valid.narrow(1, 0, used));
    cache.keys.resize(L);
    cache.values.resize(L);
    for (std::size_t l = 0; l < L; ++l) {
      for (torch::Tensor* t : {&cache.keys[l], &cache.values[l]}) {
        torch::Tensor fresh = torch::empty(shape, opts);
        if (used > 0) fresh.narrow(2, 0, used).copy_(t->narrow(2, 0, used));
        *t = fresh;
      }
    }
    cache.valid = valid;
  }

  /// cos, sin [B, 1, T, D] for position_ids [B, T], in `dtype`.
  [[nodiscard]] std::pair<torch::Tensor, torch::Tensor> rotary(const torch::Tensor& position_ids,
                                                               torch::ScalarType dtype) const {
    const std::int64_t D = config_.head_dim();
    const auto opts = torch::TensorOptions().dtype(torch::kDouble).device(position_ids.device());
    torch::Tensor inv_freq;  // [D/2]
    if (config_.rope_scaling.type == io::RopeType::Default) {
      inv_freq = torch::pow(config_.rope_theta, -torch::arange(0, D, 2, opts) / static_cast<double>(D));
    } else {
      const std::int64_t seq_len = position_ids.max().item<std::int64_t>() + 1;
      std::vector<double> f = config_.rope_inverse_frequencies(seq_len);
      inv_freq = torch::tensor(f, opts);
    }
    const torch::Tensor angles = position_ids.to(torch::kDouble).unsqueeze(-1) * inv_freq;      // [B, T, D/2]
    const torch::Tensor emb = torch::cat({angles, angles}, -1).unsqueeze(1);                    // [B, 1, T, D]
    return {emb.cos().to(dtype), emb.sin().to(dtype)};
  }

  LlamaConfig config_;
};

}  // namespace kaizen::lm
