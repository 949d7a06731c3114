// kaizen/tokenizers/tokenizer_json_write.hpp - writes a BpeTokenizer back out as the Hugging Face files a
// `transformers` AutoTokenizer loads: tokenizer.json (the `tokenizers` library's format) and
// tokenizer_config.json (special tokens, chat template, tokenizer class).
//
// tokenizer.json written:
//   model            {"type": "BPE", vocab {token: id} of the model vocabulary, merges as ["a", "b"] pairs in
//                    rank order, ignore_merges, dropout/unk/prefix/suffix null, byte_fallback false}
//   added_tokens     every added token with its id, content, special, lstrip, rstrip (single_word false,
//                    normalized = !special, as the reference writes them)
//   normalizer       {"type": "NFC"} for Normalization::nfc, else null
//   pre_tokenizer    Sequence[ one Split {pattern: {"Regex"|"String": ...}, behavior, invert: false} per
//                    split step, ByteLevel {add_prefix_space: false, trim_offsets: true, use_regex: false} ]
//                    (the ByteLevel step maps bytes to the GPT-2 alphabet; use_regex false because the
//                    splits are already explicit)
//   post_processor   TemplateProcessing when the tokenizer adds prefix/suffix ids (e.g. BOS), ids named by
//                    their token strings; otherwise ByteLevel (offsets only)
//   decoder          ByteLevel
// Reading the written text back with tokenizer_from_json gives a tokenizer that encodes and decodes
// identically (tested, together with HF tokenizers' ids on the written file).
//
// tokenizer_config.json: tokenizer_class "PreTrainedTokenizerFast", bos/eos/pad token strings (null
// when absent), chat_template (omitted when empty), model_max_length, clean_up_tokenization_spaces
// false (so transformers' decode returns exactly the byte-level text). BOS/EOS insertion is left to the
// post-processor of tokenizer.json (no add_bos_token key, which some tokenizer classes act on twice).
//
// Reference: the tokenizer.json serialisation of Hugging Face `tokenizers` (models::bpe, pre_tokenizers,
// processors::template) and transformers' tokenizer_config.json keys.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/tokenizers/bpe.hpp>
#include <kaizen/tokenizers/pretokenize.hpp>

namespace kaizen::tokenizers {

namespace detail {

[[nodiscard]] inline std::string_view split_behavior_name(SplitBehavior b) {
  switch (b) {
    case SplitBehavior::isolated: return "Isolated";
    case SplitBehavior::removed: return "Removed";
    case SplitBehavior::merged_with_previous: return "MergedWithPrevious";
    case SplitBehavior::merged_with_next: return "MergedWithNext";
    case SplitBehavior::contiguous: return "Contiguous";
  }
  fail("kaizen::tokenizers: unknown split behavior ", static_cast<int>(b));
}

inline nlohmann::ordered_json template_processing(const BpeTokenizer& tok) {
  using oj = nlohmann::ordered_json;
  oj single = oj::array(), pair = oj::array(), specials = oj::object();
  auto special = [&](TokenId id, int type_id) {
    const std::string& name = tok.id_to_token(id);
    specials[name] = {{"id", name}, {"ids", {id}}, {"tokens", {name}}};
    return oj{{"SpecialToken", {{"id", name}, {"type_id", type_id}}}};
  };
  for (const TokenId id : tok.prefix_ids()) single.push_back(special(id, 0));
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  for (const TokenId id : tok.suffix_ids()) single.push_back(special(id, 0));
  for (const TokenId id : tok.prefix_ids()) pair.push_back(special(id, 0));
  pair.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  for (const TokenId id : tok.suffix_ids()) pair.push_back(special(id, 0));
  for (const TokenId id : tok.prefix_ids()) pair.push_back(special(id, 1));
  pair.push_back({{"Sequence", {{"id", "B"}, {"type_id", 1}}}});
  for (const TokenId id : tok.suffix_ids()) pair.push_back(special(id, 1));
  return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
}

}  // namespace detail

/// The tokenizer.json document of `tok` (see the header comment).
[[nodiscard]] inline nlohmann::ordered_json tokenizer_json(const BpeTokenizer& tok) {
  using oj = nlohmann::ordered_json;
  oj root = oj::object();
  root["version"] = "1.0";
  root["truncation"] = nullptr;
  root["padding"] = nullptr;
  oj added = oj::array();
  for (const AddedToken& a : tok.added_tokens()) {
    added.push_back({{"id", a.id},
                     {"content", a.content},
                     {"single_word", false},
                     {"lstrip", a.lstrip},
                     {"rstrip", a.rstrip},
                     {"normalized", !a.special},
                     {"special", a.special}});
  }
  root["added_tokens"] = added;
  root["normalizer"] = tok.normalization() == Normalization::nfc ? oj{{"type", "NFC"}} : oj(nullptr);
  oj steps = oj::array();
  for (const SplitStep& step : tok.pre_tokenizer().steps()) {
    steps.push_back({{"type", "Split"},
                     {"pattern", {{step.regex.literal() ? "String" : "Regex", step.regex.pattern()}}},
                     {"behavior", detail::split_behavior_name(step.behavior)},
                     {"invert", false}});
  }
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});
  root["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", steps}};
  if (tok.prefix_ids().empty() && tok.suffix_ids().empty()) {
    root["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  } else {
    root["post_processor"] = detail::template_processing(tok);
  }
  root["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  oj vocab = oj::object();
  for (const auto& [token, id] : tok.model_vocab()) vocab[token] = id;
  oj merges = oj::array();
  for (const auto& [a, b] : tok.merges()) merges.push_back({a, b});
  root["model"] = {{"type", "BPE"},
                   {"dropout", nullptr},
                   {"unk_token", nullptr},
                   {"continuing_subword_prefix", nullptr},
                   {"end_of_word_suffix", nullptr},
                   {"fuse_unk", false},
                   {"byte_fallback", false},
                   {"ignore_merges", tok.ignore_merges()},
                   {"vocab", vocab},
                   {"merges", merges}};
  return root;
}

/// What tokenizer_config.json says beyond the tokenizer itself.
struct TokenizerConfigOptions {
  std::string chat_template;             ///< a Jinja template (e.g. GGUF tokenizer.chat_template); empty: none
  std::int64_t model_max_length = 0;     ///< 0: not written (transformers then uses a huge default)
};

/// The tokenizer_config.json document of `tok` (see the header comment).
[[nodiscard]] inline nlohmann::ordered_json tokenizer_config_json(const BpeTokenizer& tok,
                                                                  const TokenizerConfigOptions& options = {}) {
  using oj = nlohmann::ordered_json;
  auto name = [&](std::optional<TokenId> id) { return id ? oj(tok.id_to_token(*id)) : oj(nullptr); };
  const auto bos = tok.bos_id();
  const auto eos = tok.eos_id_if_any();
  oj c = oj::object();
  c["tokenizer_class"] = "PreTrainedTokenizerFast";
  c["bos_token"] = name(bos);
  c["eos_token"] = name(eos);
  c["pad_token"] = name(tok.pad_id_if_any());
  c["unk_token"] = nullptr;
  c["clean_up_tokenization_spaces"] = false;
  if (options.model_max_length > 0) c["model_max_length"] = options.model_max_length;
  if (!options.chat_template.empty()) c["chat_template"] = options.chat_template;
  return c;
}

}  // namespace kaizen::tokenizers
