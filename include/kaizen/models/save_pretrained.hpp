// kaizen/models/save_pretrained.hpp - writes an lm::LlamaModel and its tokenizer as a Hugging Face
// checkpoint folder that transformers (AutoModelForCausalLM / AutoTokenizer .from_pretrained) loads and
// generates from, and that models::from_pretrained reads back.
//
// Files written into `dir` (created if needed):
//   model.safetensors (or model-0000i-of-0000N.safetensors + model.safetensors.index.json when larger
//     than SaveOptions::max_shard_bytes): every parameter under its Hugging Face name, row-major, in
//     float32 or bfloat16 (round to nearest even, as torch's conversion). With tied embeddings no
//     lm_head.weight is written (transformers re-ties it to model.embed_tokens.weight on load).
//   config.json: io::hf_config_json of the model's configuration (family, sizes, rope parameters,
//     biases, q/k norms) with bos/eos/pad ids from the tokenizer and dtype as saved.
//   generation_config.json: bos_token_id, eos_token_id, pad_token_id (the ids transformers' generate
//     stops and pads with).
//   tokenizer.json, tokenizer_config.json (with the chat template): tokenizers/tokenizer_json_write.hpp.
//   special_tokens_map.json: bos/eos/pad token strings.
// Family: SaveOptions::family, else inferred from the configuration — q/k norms → qwen3; q/k/v biases
// without o_proj/MLP biases → qwen2; otherwise llama. A configuration the family cannot express is
// refused by io::hf_config_json.
// Refused with kaizen::Error: a tokenizer with more ids than the model's vocabulary (the model could
// not embed them), dtype other than float32/bfloat16, a folder that cannot be created or written (the
// path is named).
//
// Usage:
//   auto p = kaizen::models::from_gguf(gguf_path);
//   auto tok = kaizen::tokenizers::tokenizer_from_gguf(kaizen::io::GgufFile(gguf_path));
//   kaizen::models::save_pretrained(*p.model, tok, "out/smollm2", {.chat_template = template_text});
//
// References: the safetensors format; transformers' save_pretrained folder layout (config.json,
// generation_config.json, tokenizer files).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/io/decoder_config.hpp>
#include <kaizen/io/hf_config.hpp>
#include <kaizen/io/safetensors.hpp>
#include <kaizen/tokenizers/bpe.hpp>
#include <kaizen/tokenizers/tokenizer_json_write.hpp>
#include <kaizen/models/llama.hpp>

namespace kaizen::models {

struct SaveOptions {
  torch::ScalarType dtype = torch::kFloat;            ///< kFloat or kBFloat16
  std::optional<io::DecoderFamily> family;            ///< default: inferred (see the header comment)
  std::string chat_template;                          ///< Jinja text for tokenizer_config.json; empty: none
  std::uint64_t max_shard_bytes = 5'000'000'000ULL;   ///< larger checkpoints are sharded
};

/// The checkpoint description of a model configuration for `family` (inferred when not given).
[[nodiscard]] inline io::DecoderConfig decoder_config_of(const lm::LlamaConfig& m,
                                                         std::optional<io::DecoderFamily> family = std::nullopt) {
  io::DecoderConfig c;
  if (family) {
    c.family = *family;
  } else if (m.qk_norm) {
    c.family = io::DecoderFamily::Qwen3;
  } else if (m.attention_bias && !m.o_bias && !m.mlp_bias) {
    c.family = io::DecoderFamily::Qwen2;
  } else {
    c.family = io::DecoderFamily::Llama;
  }
  c.vocab_size = m.vocab_size;
  c.hidden_size = m.hidden_size;
  c.intermediate_size = m.intermediate_size;
  c.num_hidden_layers = m.num_hidden_layers;
  c.num_attention_heads = m.num_attention_heads;
  c.num_key_value_heads = m.num_key_value_heads;
  c.head_dim = m.head_dim();
  c.max_position_embeddings = m.max_position_embeddings;
  c.rms_norm_eps = m.rms_norm_eps;
  c.rope_theta = m.rope_theta;
  c.rope_scaling = m.rope_scaling;
  c.tie_word_embeddings = m.tie_word_embeddings;
  c.qkv_bias = m.attention_bias;
  c.o_bias = m.o_bias;
  c.mlp_bias = m.mlp_bias;
  c.qk_norm = m.qk_norm;
  return c;
}

namespace detail {

inline void write_json(const std::filesystem::path& path, const nlohmann::ordered_json& j) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("save_pretrained: cannot open '", path.string(), "' for writing");
  out << j.dump(2, ' ', false) << '\n';
  out.flush();
  if (!out) fail("save_pretrained: writing '", path.string(), "' failed");
}

}  // namespace detail

/// Writes `model` and `tokenizer` into `dir` as a Hugging Face checkpoint (see the header comment).
/// Returns the names of the files written.
inline std::vector<std::string> save_pretrained(lm::LlamaModel& model, const tokenizers::BpeTokenizer& tokenizer,
                                                const std::filesystem::path& dir, const SaveOptions& options = {}) {
  KAIZEN_CHECK(options.dtype == torch::kFloat || options.dtype == torch::kBFloat16,
               "save_pretrained: dtype must be float32 or bfloat16, got ", c10::toString(options.dtype));
  const lm::LlamaConfig& mc = model.config();
  KAIZEN_CHECK(tokenizer.vocab_size() <= mc.vocab_size, "save_pretrained: the tokenizer '", tokenizer.source(),
               "' has ids up to ", tokenizer.vocab_size() - 1, " but the model's vocabulary has only ", mc.vocab_size,
               " rows (vocab_size); the tokenizer does not belong to this model");

  io::DecoderConfig dc = decoder_config_of(mc, options.family);
  dc.torch_dtype = options.dtype == torch::kBFloat16 ? "bfloat16" : "float32";
  dc.bos_token_id = tokenizer.bos_id();
  if (const auto eos = tokenizer.eos_id_if_any()) dc.eos_token_ids = {*eos};
  dc.pad_token_id = tokenizer.pad_id_if_any();
  nlohmann::ordered_json config = io::hf_config_json(dc);  // refuses what the family cannot express

  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    fail("save_pretrained: cannot create the folder '", dir.string(), "'", ec ? ": " + ec.message() : std::string());

  // Tensors: contiguous CPU copies in the saved dtype, kept alive while the files are written.
  std::vector<torch::Tensor> keep;
  std::vector<io::TensorToWrite> tensors;
  {
    torch::NoGradGuard no_grad;
    for (const auto& p : model.named_parameters()) {
      torch::Tensor t = p.value().detach().to(torch::kCPU, options.dtype).contiguous();
      keep.push_back(t);
      io::TensorToWrite w;
      w.name = p.key();
      w.dtype = options.dtype == torch::kBFloat16 ? io::DType::BF16 : io::DType::F32;
      w.shape.assign(t.sizes().begin(), t.sizes().end());
      w.data = std::span<const std::byte>(static_cast<const std::byte*>(t.data_ptr()), t.nbytes());
      tensors.push_back(std::move(w));
    }
  }
  // Everything the config implies must be there (and nothing else): a model whose parameters do not
  // match its own config would write a checkpoint no loader accepts.
  std::map<std::string, io::TensorSpec, std::less<>> specs;
  for (const auto& t : tensors) specs[t.name] = {std::string(io::dtype_name(t.dtype)), t.shape};
  io::check_tensors(dc, specs, "save_pretrained('" + dir.string() + "')");

  std::vector<std::string> files =
      io::write_safetensors_checkpoint(dir, tensors, options.max_shard_bytes, {{"format", "pt"}});
  detail::write_json(dir / "config.json", config);
  files.emplace_back("config.json");

  nlohmann::ordered_json generation = nlohmann::ordered_json::object();
  generation["bos_token_id"] = config["bos_token_id"];
  generation["eos_token_id"] = config["eos_token_id"];
  generation["pad_token_id"] = config["pad_token_id"];
  detail::write_json(dir / "generation_config.json", generation);
  files.emplace_back("generation_config.json");

  detail::write_json(dir / "tokenizer.json", tokenizers::tokenizer_json(tokenizer));
  files.emplace_back("tokenizer.json");
  detail::write_json(dir / "tokenizer_config.json",
                     tokenizers::tokenizer_config_json(
                         tokenizer, {.chat_template = options.chat_template, .model_max_length = mc.max_position_embeddings}));
  files.emplace_back("tokenizer_config.json");
  nlohmann::ordered_json special = nlohmann::ordered_json::object();
  const nlohmann::ordered_json tc = tokenizers::tokenizer_config_json(tokenizer);
  for (const char* key : {"bos_token", "eos_token", "pad_token"})
    if (!tc[key].is_null()) special[key] = tc[key];
  detail::write_json(dir / "special_tokens_map.json", special);
  files.emplace_back("special_tokens_map.json");
  return files;
}

}  // namespace kaizen::models
