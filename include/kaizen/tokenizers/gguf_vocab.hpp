// kaizen/tokenizers/gguf_vocab.hpp - the tokenizer stored in a GGUF file: its tokenizer.ggml.* metadata
// read with kaizen/io/gguf.hpp into a GgufVocab, then built by tokenizer_from_gguf().
//
//   kaizen::io::GgufFile file("SmolLM2-135M-Instruct.Q4_1.gguf");
//   kaizen::tokenizers::BpeTokenizer tok = kaizen::tokenizers::tokenizer_from_gguf(file);
//
// Keys: tokenizer.ggml.model must be "gpt2" (byte-level BPE); tokens, merges (required), token_type,
// pre, bos/eos/padding_token_id and add_bos_token (optional). A missing or mistyped key is a kaizen::Error
// naming the file and the key.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <variant>

#include <kaizen/core/error.hpp>
#include <kaizen/io/gguf.hpp>
#include <kaizen/tokenizers/bpe.hpp>
#include <kaizen/tokenizers/tokenizer_json.hpp>

namespace kaizen::tokenizers {

/// The tokenizer.ggml.* metadata of `file` as a GgufVocab.
[[nodiscard]] inline GgufVocab gguf_vocab(const io::GgufFile& file) {
  const std::string what = "GGUF '" + file.path() + "'";
  const std::string model = file.get_string("tokenizer.ggml.model");
  KAIZEN_CHECK(model == "gpt2", "kaizen::tokenizers: ", what,
               ": tokenizer.ggml.model is '", model, "'; only byte-level BPE ('gpt2') is supported");
  GgufVocab vocab;
  vocab.source = what;
  vocab.tokens = file.get_string_array("tokenizer.ggml.tokens");
  vocab.merges = file.get_string_array("tokenizer.ggml.merges");
  if (file.contains("tokenizer.ggml.token_type")) {
    const io::GgufArray& types = file.get_array("tokenizer.ggml.token_type");
    vocab.token_types.reserve(types.values.size());
    for (const io::GgufValue& v : types.values) {
      KAIZEN_CHECK(v.is_integer(), "kaizen::tokenizers: ", what, ": tokenizer.ggml.token_type holds a non-integer");
      const std::int64_t t = std::holds_alternative<std::int64_t>(v.value)
                                 ? std::get<std::int64_t>(v.value)
                                 : static_cast<std::int64_t>(std::min<std::uint64_t>(std::get<std::uint64_t>(v.value), INT64_MAX));
      KAIZEN_CHECK(t >= INT32_MIN && t <= INT32_MAX, "kaizen::tokenizers: ", what,
                   ": tokenizer.ggml.token_type holds ", t);
      vocab.token_types.push_back(static_cast<std::int32_t>(t));
    }
  }
  if (file.contains("tokenizer.ggml.pre")) vocab.pre = file.get_string("tokenizer.ggml.pre");
  if (file.contains("tokenizer.ggml.bos_token_id")) vocab.bos_id = file.get_int("tokenizer.ggml.bos_token_id");
  if (file.contains("tokenizer.ggml.eos_token_id")) vocab.eos_id = file.get_int("tokenizer.ggml.eos_token_id");
  if (file.contains("tokenizer.ggml.padding_token_id")) vocab.pad_id = file.get_int("tokenizer.ggml.padding_token_id");
  if (file.contains("tokenizer.ggml.add_bos_token")) vocab.add_bos = file.get_bool("tokenizer.ggml.add_bos_token");
  return vocab;
}

/// The tokenizer stored in a GGUF file.
[[nodiscard]] inline BpeTokenizer tokenizer_from_gguf(const io::GgufFile& file) {
  return tokenizer_from_gguf(gguf_vocab(file));
}

}  // namespace kaizen::tokenizers
