// kaizen/models/pretrained.hpp - loads real decoder checkpoints (Llama 2/3, SmolLM2, TinyLlama,
// Qwen2/Qwen2.5, Qwen3) into lm::LlamaModel: a Hugging Face folder (config.json + model.safetensors
// or shards + model.safetensors.index.json) or a GGUF file.
//
// Rules:
//   config      io::load_hf_config (config.json) or io::decoder_config_from_gguf (GGUF metadata), then
//               lm::LlamaConfig::from, which maps every field (head_dim, q/k/v, o and MLP biases,
//               q/k norm, rope θ and scaling, rms_norm_eps, tied embeddings).
//   tensors     io::check_tensors first: every tensor the config implies must be present with its
//               shape, nothing unexpected (a tied lm_head.weight copy is accepted), dtypes F32/F16/BF16
//               (safetensors) or any dequantisable ggml type (GGUF). Then each model parameter is
//               filled from the tensor of the same Hugging Face name, converted to float32 (F16/BF16
//               widen exactly; GGUF blocks dequantise, q/k rows unpermuted for the llama architecture)
//               and then to LoadOptions::dtype (float32 or bfloat16, round to nearest even).
//   Every refusal is a kaizen::Error naming the file and the field or tensor.
//
// Usage:
//   auto p = kaizen::models::from_pretrained("/path/to/SmolLM2-135M");        // float32, CPU
//   auto q = kaizen::models::from_gguf("smollm2.gguf", {.dtype = torch::kBFloat16});
//   torch::Tensor logits = p.model->logits(batch);                              // [B, T, V]
//
// References: the safetensors format, the GGUF specification, transformers' Llama/Qwen2/Qwen3 models
// (state-dict names and meaning).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/io/decoder_config.hpp>
#include <kaizen/io/gguf.hpp>
#include <kaizen/io/gguf_model.hpp>
#include <kaizen/io/hf_config.hpp>
#include <kaizen/io/safetensors.hpp>
#include <kaizen/models/llama.hpp>

namespace kaizen::models {

struct LoadOptions {
  torch::ScalarType dtype = torch::kFloat;  ///< kFloat or kBFloat16
  torch::Device device = torch::kCPU;
};

/// A loaded checkpoint: the model, its configuration and the checkpoint's own description
/// (special token ids, family, torch_dtype, ...).
struct Pretrained {
  std::shared_ptr<lm::LlamaModel> model;
  lm::LlamaConfig config;
  io::DecoderConfig source;
};

namespace detail {

inline void check_options(const LoadOptions& o, std::string_view who) {
  KAIZEN_CHECK(o.dtype == torch::kFloat || o.dtype == torch::kBFloat16, who,
               ": dtype must be float32 or bfloat16, got ", c10::toString(o.dtype));
}

/// Builds the model and fills every parameter from `fetch(hf_name)` (float32, row-major).
template <class Fetch>
Pretrained build(const io::DecoderConfig& dc, const std::string& source, const LoadOptions& options, Fetch&& fetch) {
  Pretrained out;
  out.source = dc;
  out.config = lm::LlamaConfig::from(dc);
  out.model = std::make_shared<lm::LlamaModel>(out.config);
  torch::NoGradGuard no_grad;
  for (auto& p : out.model->named_parameters()) {
    const std::string& name = p.key();
    torch::Tensor& param = p.value();
    std::vector<float> values = fetch(name);
    KAIZEN_CHECK(static_cast<std::int64_t>(values.size()) == param.numel(), source, ": tensor '", name, "' holds ",
                 values.size(), " values, the model parameter has shape ", param.sizes(), " (", param.numel(),
                 " values)");
    param.copy_(torch::from_blob(values.data(), param.sizes(), torch::kFloat));
  }
  out.model->to(options.device, options.dtype);
  out.model->eval();
  return out;
}

}  // namespace detail

/// Loads a Hugging Face checkpoint folder (config.json + model.safetensors or a sharded index).
[[nodiscard]] inline Pretrained from_pretrained(const std::filesystem::path& dir, const LoadOptions& options = {}) {
  detail::check_options(options, "from_pretrained");
  KAIZEN_CHECK(std::filesystem::is_directory(dir), "from_pretrained: '", dir.string(), "' is not a folder");
  const io::DecoderConfig dc = io::load_hf_config(dir);
  const io::SafetensorsCheckpoint ckpt(dir);
  io::check_tensors(dc, io::tensor_specs(ckpt), dir.string());
  return detail::build(dc, dir.string(), options, [&](const std::string& name) { return ckpt.to_float(name); });
}

/// Loads a GGUF file (architectures llama, qwen2, qwen3; any dequantisable tensor type).
[[nodiscard]] inline Pretrained from_gguf(const std::filesystem::path& path, const LoadOptions& options = {}) {
  detail::check_options(options, "from_gguf");
  const io::GgufFile file(path);
  const io::DecoderConfig dc = io::decoder_config_from_gguf(file);
  io::check_tensors(dc, io::tensor_specs(file), path.string(), io::gguf_check_options());
  return detail::build(dc, path.string(), options,
                       [&](const std::string& name) { return io::load_hf_tensor(file, dc, name); });
}

}  // namespace kaizen::models
