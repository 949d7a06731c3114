// kaizen/tokenizers/tokenizer_json.hpp - builds a BpeTokenizer from a Hugging Face `tokenizer.json` or
// from the vocabulary arrays of a GGUF file (tokenizer.ggml.*).
//
// tokenizer.json keys read (anything else in these sections is refused with the key named, never
// silently ignored when it would change the ids):
//   model            type "BPE"; vocab {token: id}; merges as "a b" strings or ["a", "b"] pairs;
//                    ignore_merges; dropout null/0, byte_fallback false, continuing_subword_prefix and
//                    end_of_word_suffix empty/null (the byte-level families use none of them).
//   added_tokens     [{id, content, special, lstrip, rstrip, single_word: false, normalized}].
//   normalizer       null or {"type": "NFC"} (see Normalization in bpe.hpp), or a Sequence of those.
//   pre_tokenizer    null, Split {pattern: {Regex | String}, behavior, invert: false}, Digits
//                    {individual_digits}, ByteLevel {add_prefix_space: false, use_regex}, or a Sequence.
//   decoder          ByteLevel (or a Sequence holding only ByteLevel); null is refused (not byte-level).
//   post_processor   null, ByteLevel (no ids), TemplateProcessing (the ids around $A in `single` are
//                    added by encode with add_special_tokens), or a Sequence of those.
// The end-of-sequence / padding / BOS tokens are not in tokenizer.json (transformers keeps them in
// tokenizer_config.json): pass them by name in TokenizerJsonOptions.
//
// GGUF (llama.cpp's tokenizer metadata): tokens (byte-level strings), merges ("a b"), token_type
// (1 normal, 2 unknown, 3 control -> special added token, 4 user-defined -> added token, 5 unused,
// 6 byte), pre (gpt2, smollm, llama-bpe / llama3, qwen2; llama-bpe also sets ignore_merges), bos/eos/pad
// ids, add_bos_token.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/tokenizers/bpe.hpp>
#include <kaizen/tokenizers/pretokenize.hpp>

namespace kaizen::tokenizers {

/// Which added tokens play the roles tokenizer.json does not record.
struct TokenizerJsonOptions {
  std::string eos_token;  ///< e.g. "<|im_end|>"; empty: none (eos_id() then throws)
  std::string pad_token;  ///< empty: the eos token
  std::string bos_token;  ///< empty: none
};

namespace detail {

using nlohmann::json;

class JsonReader {
 public:
  explicit JsonReader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void error(std::string_view key, std::string_view what) const {
    fail("kaizen::tokenizers: ", source_, ": ", key, ": ", what);
  }
  const json& member(const json& object, std::string_view key, std::string_view path) const {
    if (!object.is_object()) error(path, "expected an object");
    const auto it = object.find(std::string(key));
    if (it == object.end()) error(std::string(path) + "." + std::string(key), "missing");
    return *it;
  }
  const json* optional(const json& object, std::string_view key) const {
    const auto it = object.find(std::string(key));
    return (it == object.end() || it->is_null()) ? nullptr : &*it;
  }
  std::string string(const json& value, std::string_view path) const {
    if (!value.is_string()) error(path, std::string("expected a string, got ") + value.type_name());
    return value.get<std::string>();
  }
  bool boolean(const json& object, std::string_view key, std::string_view path, bool fallback) const {
    const json* v = optional(object, key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) error(std::string(path) + "." + std::string(key), "expected true or false");
    return v->get<bool>();
  }
  TokenId id(const json& value, std::string_view path) const {
    if (!value.is_number_integer()) error(path, std::string("expected an integer id, got ") + value.type_name());
    const auto v = value.get<std::int64_t>();
    if (v < 0 || v >= BpeTokenizer::kMaxId) error(path, "id " + std::to_string(v) + " is out of range");
    return v;
  }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

/// Nesting limit of Sequence components (each level recurses; a hostile file must not exhaust the stack).
inline constexpr int kMaxNesting = 8;

inline void check_depth(const JsonReader& r, std::string_view path, int depth) {
  if (depth > kMaxNesting) r.error(path, "Sequence nesting deeper than " + std::to_string(kMaxNesting));
}

inline void read_normalizer(const JsonReader& r, const json& node, std::string_view path, Normalization& out,
                            int depth = 0) {
  check_depth(r, path, depth);
  const std::string type = r.string(r.member(node, "type", path), std::string(path) + ".type");
  if (type == "NFC") {
    out = Normalization::nfc;
  } else if (type == "Sequence") {
    const json& list = r.member(node, "normalizers", path);
    if (!list.is_array()) r.error(std::string(path) + ".normalizers", "expected an array");
    for (std::size_t i = 0; i < list.size(); ++i) {
      read_normalizer(r, list[i], std::string(path) + ".normalizers[" + std::to_string(i) + "]", out, depth + 1);
    }
  } else {
    r.error(std::string(path) + ".type", "unsupported normalizer \"" + type + "\" (supported: NFC, Sequence)");
  }
}

inline void read_pre_tokenizer(const JsonReader& r, const json& node, std::string_view path, PreTokenizer& out,
                               int depth = 0) {
  check_depth(r, path, depth);
  const std::string p(path);
  const std::string type = r.string(r.member(node, "type", path), p + ".type");
  if (type == "Sequence") {
    const json& list = r.member(node, "pretokenizers", path);
    if (!list.is_array()) r.error(p + ".pretokenizers", "expected an array");
    for (std::size_t i = 0; i < list.size(); ++i) {
      read_pre_tokenizer(r, list[i], p + ".pretokenizers[" + std::to_string(i) + "]", out, depth + 1);
    }
  } else if (type == "Split") {
    const json& pattern = r.member(node, "pattern", path);
    const std::string what = r.source() + ": " + p + ".pattern";
    std::optional<Regex> regex;
    if (const json* re = r.optional(pattern, "Regex")) {
      regex.emplace(r.string(*re, p + ".pattern.Regex"), what);
    } else if (const json* lit = r.optional(pattern, "String")) {
      regex.emplace(r.string(*lit, p + ".pattern.String"), what, /*literal=*/true);
    } else {
      r.error(p + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
    }
    if (r.boolean(node, "invert", p, false)) r.error(p + ".invert", "invert = true is not supported");
    const std::string behavior = r.string(r.member(node, "behavior", path), p + ".behavior");
    SplitBehavior b = SplitBehavior::isolated;
    if (behavior == "Isolated") b = SplitBehavior::isolated;
    else if (behavior == "Removed") b = SplitBehavior::removed;
    else if (behavior == "MergedWithPrevious") b = SplitBehavior::merged_with_previous;
    else if (behavior == "MergedWithNext") b = SplitBehavior::merged_with_next;
    else if (behavior == "Contiguous") b = SplitBehavior::contiguous;
    else r.error(p + ".behavior", "unknown split behavior \"" + behavior + "\"");
    out.add({std::move(*regex), b});
  } else if (type == "Digits") {
    const bool individual = r.boolean(node, "individual_digits", p, false);
    out.add({Regex(individual ? R"(\p{N})" : R"(\p{N}+)", r.source() + ": " + p), SplitBehavior::isolated});
  } else if (type == "ByteLevel") {
    if (r.boolean(node, "add_prefix_space", p, false)) {
      r.error(p + ".add_prefix_space", "add_prefix_space = true is not supported");
    }
    if (r.boolean(node, "use_regex", p, true)) {
      out.add({Regex(kGpt2Pattern, r.source() + ": " + p), SplitBehavior::isolated});
    }
  } else {
    r.error(p + ".type", "unsupported pre-tokenizer \"" + type + "\" (supported: Sequence, Split, Digits, ByteLevel)");
  }
}

inline void read_decoder(const JsonReader& r, const json& node, std::string_view path, int depth = 0) {
  check_depth(r, path, depth);
  const std::string p(path);
  const std::string type = r.string(r.member(node, "type", path), p + ".type");
  if (type == "Sequence") {
    const json& list = r.member(node, "decoders", path);
    if (!list.is_array() || list.empty()) r.error(p + ".decoders", "expected a non-empty array");
    for (std::size_t i = 0; i < list.size(); ++i) read_decoder(r, list[i], p + ".decoders[" + std::to_string(i) + "]", depth + 1);
  } else if (type != "ByteLevel") {
    r.error(p + ".type", "unsupported decoder \"" + type + "\" (kaizen decodes byte-level BPE: ByteLevel)");
  }
}

inline void read_post_processor(const JsonReader& r, const json& node, std::string_view path, BpeConfig& config,
                                int depth = 0) {
  check_depth(r, path, depth);
  const std::string p(path);
  const std::string type = r.string(r.member(node, "type", path), p + ".type");
  if (type == "ByteLevel") return;  // offsets only
  if (type == "Sequence") {
    const json& list = r.member(node, "processors", path);
    if (!list.is_array()) r.error(p + ".processors", "expected an array");
    for (std::size_t i = 0; i < list.size(); ++i) {
      read_post_processor(r, list[i], p + ".processors[" + std::to_string(i) + "]", config, depth + 1);
    }
    return;
  }
  if (type != "TemplateProcessing") {
    r.error(p + ".type", "unsupported post-processor \"" + type + "\" (supported: ByteLevel, TemplateProcessing, Sequence)");
  }
  const json& single = r.member(node, "single", path);
  if (!single.is_array()) r.error(p + ".single", "expected an array");
  const json& specials = r.member(node, "special_tokens", path);
  bool seen_sequence = false;
  for (std::size_t i = 0; i < single.size(); ++i) {
    const std::string ip = p + ".single[" + std::to_string(i) + "]";
    const json& item = single[i];
    if (r.optional(item, "Sequence") != nullptr) {
      if (seen_sequence) r.error(ip, "a second $A sequence");
      seen_sequence = true;
      continue;
    }
    const json* special = r.optional(item, "SpecialToken");
    if (special == nullptr) r.error(ip, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    const std::string name = r.string(r.member(*special, "id", ip + ".SpecialToken"), ip + ".SpecialToken.id");
    const json& entry = r.member(specials, name, p + ".special_tokens");
    const json& ids = r.member(entry, "ids", p + ".special_tokens." + name);
    if (!ids.is_array()) r.error(p + ".special_tokens." + name + ".ids", "expected an array");
    for (std::size_t k = 0; k < ids.size(); ++k) {
      const TokenId id = r.id(ids[k], p + ".special_tokens." + name + ".ids[" + std::to_string(k) + "]");
      (seen_sequence ? config.suffix_ids : config.prefix_ids).push_back(id);
    }
  }
  if (!seen_sequence) r.error(p + ".single", "no {\"Sequence\": {\"id\": \"A\"}} item");
}

inline std::optional<TokenId> find_named(const BpeConfig& config, const std::string& name) {
  if (name.empty()) return std::nullopt;
  for (const auto& added : config.added_tokens) {
    if (added.content == name) return added.id;
  }
  for (const auto& [token, id] : config.vocab) {
    if (token == name) return id;
  }
  fail("kaizen::tokenizers: ", config.source, ": the token \"", name, "\" named in TokenizerJsonOptions is not in the vocabulary");
}

}  // namespace detail

/// Parses tokenizer.json text; `source` names it in errors (the file path). Throws kaizen::Error naming
/// the source and the key for malformed JSON, missing or mistyped keys, unsupported components and
/// every vocabulary/merge inconsistency BpeTokenizer checks.
[[nodiscard]] inline BpeTokenizer tokenizer_from_json(std::string_view text, std::string source,
                                                      const TokenizerJsonOptions& options = {}) {
  using detail::json;
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    fail("kaizen::tokenizers: ", source, ": malformed JSON at byte ", e.byte, ": ", e.what());
  } catch (const json::exception& e) {
    // nlohmann reports a number literal too large for a double (e.g. 4e444444) as out_of_range.406,
    // not as a parse_error: it must become a kaizen::Error too (found by fuzz_tokenizer).
    fail("kaizen::tokenizers: ", source, ": malformed JSON: ", e.what());
  }
  const detail::JsonReader r(source);
  if (!root.is_object()) r.error("(root)", "expected a JSON object");
  BpeConfig config;
  config.source = source;

  const json& model = r.member(root, "model", "(root)");
  if (const json* type = r.optional(model, "type")) {
    const std::string t = r.string(*type, "model.type");
    if (t != "BPE") r.error("model.type", "unsupported model \"" + t + "\" (kaizen reads BPE)");
  }
  if (const json* dropout = r.optional(model, "dropout")) {
    if (!dropout->is_number() || dropout->get<double>() != 0.0) r.error("model.dropout", "BPE dropout is not supported");
  }
  if (r.boolean(model, "byte_fallback", "model", false)) r.error("model.byte_fallback", "byte_fallback is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const json* v = r.optional(model, key)) {
      if (!r.string(*v, std::string("model.") + key).empty()) r.error(std::string("model.") + key, "must be empty");
    }
  }
  config.ignore_merges = r.boolean(model, "ignore_merges", "model", false);

  const json& vocab = r.member(model, "vocab", "model");
  if (!vocab.is_object()) r.error("model.vocab", "expected an object {token: id}");
  config.vocab.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    config.vocab.emplace_back(it.key(), r.id(it.value(), "model.vocab[\"" + it.key() + "\"]"));
  }

  const json& merges = r.member(model, "merges", "model");
  if (!merges.is_array()) r.error("model.merges", "expected an array");
  config.merges.reserve(merges.size());
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const std::string path = "model.merges[" + std::to_string(i) + "]";
    const json& m = merges[i];
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const auto space = s.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == s.size() || s.find(' ', space + 1) != std::string::npos) {
        r.error(path, "\"" + s + "\" is not two tokens separated by one space");
      }
      config.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.is_array() && m.size() == 2) {
      config.merges.emplace_back(r.string(m[0], path + "[0]"), r.string(m[1], path + "[1]"));
    } else {
      r.error(path, "expected \"a b\" or [\"a\", \"b\"]");
    }
  }

  if (const json* added = r.optional(root, "added_tokens")) {
    if (!added->is_array()) r.error("added_tokens", "expected an array");
    for (std::size_t i = 0; i < added->size(); ++i) {
      const std::string path = "added_tokens[" + std::to_string(i) + "]";
      const json& a = (*added)[i];
      AddedToken token;
      token.id = r.id(r.member(a, "id", path), path + ".id");
      token.content = r.string(r.member(a, "content", path), path + ".content");
      token.special = r.boolean(a, "special", path, false);
      token.lstrip = r.boolean(a, "lstrip", path, false);
      token.rstrip = r.boolean(a, "rstrip", path, false);
      if (r.boolean(a, "single_word", path, false)) r.error(path + ".single_word", "single_word = true is not supported");
      config.added_tokens.push_back(std::move(token));
    }
  }

  if (const json* n = r.optional(root, "normalizer")) detail::read_normalizer(r, *n, "normalizer", config.normalization);
  if (const json* p = r.optional(root, "pre_tokenizer")) detail::read_pre_tokenizer(r, *p, "pre_tokenizer", config.pre_tokenizer);
  const json* decoder = r.optional(root, "decoder");
  if (decoder == nullptr) r.error("decoder", "missing (kaizen decodes byte-level BPE: ByteLevel)");
  detail::read_decoder(r, *decoder, "decoder");
  if (const json* p = r.optional(root, "post_processor")) detail::read_post_processor(r, *p, "post_processor", config);

  config.eos_id = detail::find_named(config, options.eos_token);
  config.pad_id = detail::find_named(config, options.pad_token);
  config.bos_id = detail::find_named(config, options.bos_token);
  return BpeTokenizer(std::move(config));
}

/// Reads and parses a tokenizer.json file (see tokenizer_from_json). Throws kaizen::Error naming the
/// path when it cannot be read.
[[nodiscard]] inline BpeTokenizer load_tokenizer_json(const std::string& path, const TokenizerJsonOptions& options = {}) {
  std::ifstream in(path, std::ios::binary);
  KAIZEN_CHECK(in.good(), "kaizen::tokenizers::load_tokenizer_json: cannot open \"", path, "\"");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return tokenizer_from_json(buffer.str(), path, options);
}

/// The tokenizer arrays of a GGUF file (keys tokenizer.ggml.*), as the GGUF reader hands them over.
struct GgufVocab {
  std::vector<std::string> tokens;         ///< tokenizer.ggml.tokens (byte-level strings); id = index
  std::vector<std::string> merges;         ///< tokenizer.ggml.merges ("a b")
  std::vector<std::int32_t> token_types;   ///< tokenizer.ggml.token_type (empty: all normal)
  std::string pre;                         ///< tokenizer.ggml.pre
  std::optional<TokenId> bos_id;           ///< tokenizer.ggml.bos_token_id
  std::optional<TokenId> eos_id;           ///< tokenizer.ggml.eos_token_id
  std::optional<TokenId> pad_id;           ///< tokenizer.ggml.padding_token_id
  bool add_bos = false;                    ///< tokenizer.ggml.add_bos_token
  std::string source = "GGUF";             ///< the file, for error messages
};

/// Builds the tokenizer of a GGUF file from its vocabulary arrays. Throws kaizen::Error naming the
/// source and key: token_types of the wrong length or with an unknown type, a malformed merge, an
/// unknown pre-tokenizer name, and everything BpeTokenizer checks.
[[nodiscard]] inline BpeTokenizer tokenizer_from_gguf(const GgufVocab& gguf) {
  KAIZEN_CHECK(gguf.token_types.empty() || gguf.token_types.size() == gguf.tokens.size(), "kaizen::tokenizers: ",
               gguf.source, ": tokenizer.ggml.token_type has ", gguf.token_types.size(), " entries for ",
               gguf.tokens.size(), " tokens");
  BpeConfig config;
  config.source = gguf.source;
  config.vocab.reserve(gguf.tokens.size());
  for (std::size_t i = 0; i < gguf.tokens.size(); ++i) {
    const std::int32_t type = gguf.token_types.empty() ? 1 : gguf.token_types[i];
    const auto id = static_cast<TokenId>(i);
    switch (type) {
      case 1: case 2: case 5: case 6:
        config.vocab.emplace_back(gguf.tokens[i], id);
        break;
      case 3: case 4:
        config.vocab.emplace_back(gguf.tokens[i], id);
        config.added_tokens.push_back({gguf.tokens[i], id, /*special=*/type == 3, false, false});
        break;
      default:
        fail("kaizen::tokenizers: ", gguf.source, ": tokenizer.ggml.token_type[", i, "] = ", type,
             " is not a token type (1..6)");
    }
  }
  config.merges.reserve(gguf.merges.size());
  for (std::size_t i = 0; i < gguf.merges.size(); ++i) {
    const std::string& s = gguf.merges[i];
    const auto space = s.find(' ');
    KAIZEN_CHECK(space != std::string::npos && space > 0 && space + 1 < s.size() && s.find(' ', space + 1) == std::string::npos,
                 "kaizen::tokenizers: ", gguf.source, ": tokenizer.ggml.merges[", i, "] \"", s,
                 "\" is not two tokens separated by one space");
    config.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
  }
  try {
    config.pre_tokenizer = family_pretokenizer(gguf.pre);
  } catch (const Error& e) {
    fail("kaizen::tokenizers: ", gguf.source, ": tokenizer.ggml.pre: ", e.what());
  }
  config.ignore_merges = gguf.pre == "llama-bpe" || gguf.pre == "llama3";
  config.bos_id = gguf.bos_id;
  config.eos_id = gguf.eos_id;
  config.pad_id = gguf.pad_id;
  if (gguf.add_bos) {
    KAIZEN_CHECK(gguf.bos_id.has_value(), "kaizen::tokenizers: ", gguf.source,
                 ": tokenizer.ggml.add_bos_token is true but there is no tokenizer.ggml.bos_token_id");
    config.prefix_ids.push_back(*gguf.bos_id);
  }
  return BpeTokenizer(std::move(config));
}

}  // namespace kaizen::tokenizers
