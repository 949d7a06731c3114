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
// The configuration uses the names and meaning of a Hugging Face Llama / Qwen2 config.json and the
// parameter names follow its state dict (model.layers.N.self_attn.q_proj.weight, ...), so real
// checkpoints can be mapped onto it.
//
// References: Touvron et al. 2023, "LLaMA" (arXiv 2302.13971); Zhang & Sennrich 2019, "Root Mean
// Square Layer Normalization" (arXiv 1910.07467); Su et al. 2021, "RoFormer" (arXiv 2104.09864);
// Ainslie et al. 2023, "GQA" (arXiv 2305.13245); Shazeer 2020, "GLU Variants Improve Transformer"
// (arXiv 2002.05202).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/io/decoder_config.hpp>

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
/// Built by LlamaModel::forward on its first cached call; grows along the sequence dimension.
struct KvCache {
  std::vector<torch::Tensor> keys;    ///< per layer [B, num_key_value_heads, S, head_dim]
  std::vector<torch::Tensor> values;  ///< per layer [B, num_key_value_heads, S, head_dim]
  torch::Tensor valid;                ///< [B, S] bool: key column s is a real token

  [[nodiscard]] std::int64_t length() const { return valid.defined() ? valid.size(1) : 0; }
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
  }

  /// x [B, T, H]; cos/sin [B, 1, T, D]; mask [B, 1, T, S] bool (true = may attend), S = past + T.
  /// With a cache, appends this call's keys/values to (past_k, past_v) and returns them through them.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, torch::Tensor* past_k, torch::Tensor* past_v) {
    const std::int64_t B = x.size(0), T = x.size(1);
    torch::Tensor q = q_proj(x).view({B, T, heads_, head_dim_});
    torch::Tensor k = k_proj(x).view({B, T, kv_heads_, head_dim_});
    if (q_norm) {
      q = q_norm(q);
      k = k_norm(k);
    }
    q = q.transpose(1, 2);
    k = k.transpose(1, 2);
    torch::Tensor v = v_proj(x).view({B, T, kv_heads_, head_dim_}).transpose(1, 2);
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
    if (past_k != nullptr) {
      if (past_k->defined()) {
        k = torch::cat({*past_k, k}, 2);
        v = torch::cat({*past_v, v}, 2);
      }
      *past_k = k;
      *past_v = v;
    }
    if (kv_heads_ != heads_) {
      k = k.repeat_interleave(heads_ / kv_heads_, 1);
      v = v.repeat_interleave(heads_ / kv_heads_, 1);
    }
    torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(head_dim_));
    scores = scores.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
    const torch::Tensor attn = torch::softmax(scores, -1);
    return o_proj(torch::matmul(attn, v).transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
  }

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RmsNorm q_norm{nullptr}, k_norm{nullptr};  ///< only with qk_norm

 private:
  std::int64_t heads_, kv_heads_, head_dim_;
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
  }
  torch::Tensor forward(const torch::Tensor& x) { return down_proj(torch::silu(gate_proj(x)) * up_proj(x)); }
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
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
                        const torch::Tensor& mask, torch::Tensor* past_k, torch::Tensor* past_v) {
    const torch::Tensor h = x + self_attn(input_layernorm(x), cos, sin, mask, past_k, past_v);
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
  }

  [[nodiscard]] const LlamaConfig& config() const { return config_; }

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
    const torch::Tensor keys_valid =
        past > 0 ? torch::cat({cache->valid.to(device), attention_mask}, 1) : attention_mask;
    const torch::Tensor q_col = torch::arange(past, past + T, torch::TensorOptions().dtype(torch::kLong).device(device));
    const torch::Tensor k_col = torch::arange(past + T, torch::TensorOptions().dtype(torch::kLong).device(device));
    const torch::Tensor causal = k_col.unsqueeze(0) <= q_col.unsqueeze(1);  // [T, S]
    const torch::Tensor self = k_col.unsqueeze(0) == q_col.unsqueeze(1);
    const torch::Tensor mask = (causal.unsqueeze(0) & keys_valid.unsqueeze(1)) | self.unsqueeze(0);  // [B, T, S]
    const torch::Tensor mask4 = mask.unsqueeze(1);

    if (cache != nullptr && past == 0) {
      cache->keys.assign(static_cast<std::size_t>(config_.num_hidden_layers), torch::Tensor());
      cache->values.assign(static_cast<std::size_t>(config_.num_hidden_layers), torch::Tensor());
    }
    for (std::size_t l = 0; l < model->layers->size(); ++l) {
      auto layer = model->layers->ptr<detail::DecoderLayerImpl>(l);
      h = layer->forward(h, cos, sin, mask4, cache != nullptr ? &cache->keys[l] : nullptr,
                         cache != nullptr ? &cache->values[l] : nullptr);
    }
    if (cache != nullptr) cache->valid = keys_valid;
    return model->norm(h);
  }

  /// [V, H]: the matrix that maps hidden states to logits (the token embedding when tied).
  [[nodiscard]] torch::Tensor output_embedding() {
    return config_.tie_word_embeddings ? model->embed_tokens->weight : lm_head->weight;
  }

  /// Logits [N..., V] from hidden states [N..., H].
  [[nodiscard]] torch::Tensor project(const torch::Tensor& hidden) {
    return torch::matmul(hidden, output_embedding().t());
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
    const std::int64_t lo = ids.min().item<std::int64_t>(), hi = ids.max().item<std::int64_t>();
    KAIZEN_CHECK(lo >= 0 && hi < config_.vocab_size, "LlamaModel: token ids must lie in [0, ", config_.vocab_size,
                 "), got the range [", lo, ", ", hi, "]");
    const std::int64_t pmin = pos.min().item<std::int64_t>(), pmax = pos.max().item<std::int64_t>();
    KAIZEN_CHECK(pmin >= 0 && pmax < config_.max_position_embeddings, "LlamaModel: position ids must lie in [0, ",
                 config_.max_position_embeddings, ") (max_position_embeddings), got the range [", pmin, ", ", pmax,
                 "]");
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
