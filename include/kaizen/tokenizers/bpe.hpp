// kaizen/tokenizers/bpe.hpp - byte-level BPE: encode text to token ids and decode ids to text, with added
// (special) tokens, a pre-tokenizer (pretokenize.hpp) and a streaming decoder safe on partial UTF-8.
//
// Encode, in order (the pipeline of Hugging Face `tokenizers` for byte-level BPE models):
//   1. The text must be valid UTF-8 (policy: invalid input throws kaizen::Error naming the byte offset;
//      Python strings, which the reference tokenizes, cannot hold invalid UTF-8 either).
//   2. Added tokens are cut out first: scanning left to right, the leftmost match wins and, among
//      matches starting there, the longest. `lstrip` / `rstrip` tokens also swallow the Unicode white
//      space before / after them. Added tokens become their id directly and are never pre-tokenized.
//   3. Each remaining span is normalised (only NFC is supported, see `Normalization`), then cut into
//      pieces by the pre-tokenizer.
//   4. Each piece is a sequence of bytes; each byte starts as its own symbol (the byte-level alphabet of
//      GPT-2: every byte has a token). BPE then repeatedly merges the adjacent pair with the lowest
//      merge rank, leftmost first on ties, until no adjacent pair has a merge. With `ignore_merges`
//      (Llama 3) a piece that is itself in the vocabulary is emitted whole, without merging.
//      Results for pieces are cached (at most kCacheCapacity entries; the cache is cleared when full).
//   5. With `add_special_tokens`, the post-processor's prefix / suffix ids (e.g. Llama 3's BOS) are added.
// Decode: every id maps to its bytes (a byte-level token string mapped back through the GPT-2 byte
// alphabet; a token holding a character outside that alphabet maps to its own UTF-8), the bytes are
// concatenated and invalid UTF-8 is replaced by U+FFFD, one per maximal invalid subpart (Unicode
// Standard ch. 3, "U+FFFD substitution of maximal subparts"), as Rust's from_utf8_lossy does.
//
// The vocabulary is stored by the raw bytes each token stands for, so encoding never builds the mapped
// strings: a piece's bytes are looked up directly.
//
// References: Sennrich et al. 2016, "Neural Machine Translation of Rare Words with Subword Units" (BPE);
// Radford et al. 2019 (byte-level alphabet); Unicode Standard 15, ch. 3.9 (UTF-8, maximal subparts).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/tokenizers/pretokenize.hpp>

namespace kaizen::tokenizers {

// ------------------------------------------------------------------------------------------------
// UTF-8 and the byte-level alphabet
// ------------------------------------------------------------------------------------------------

namespace utf8 {

/// Length of the valid UTF-8 character at s[i], or 0 when the bytes there are not one (overlong forms,
/// surrogates and code points past U+10FFFF are invalid).
[[nodiscard]] inline std::size_t valid_char_length(std::string_view s, std::size_t i) noexcept {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = at(i);
  if (b0 < 0x80) return 1;
  const std::size_t left = s.size() - i;
  if (b0 >= 0xC2 && b0 <= 0xDF) return (left >= 2 && (at(i + 1) & 0xC0) == 0x80) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (left < 3) return 0;
    const unsigned char b1 = at(i + 1);
    const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;
    return (b1 >= lo && b1 <= hi && (at(i + 2) & 0xC0) == 0x80) ? 3 : 0;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (left < 4) return 0;
    const unsigned char b1 = at(i + 1);
    const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;
    return (b1 >= lo && b1 <= hi && (at(i + 2) & 0xC0) == 0x80 && (at(i + 3) & 0xC0) == 0x80) ? 4 : 0;
  }
  return 0;
}

/// Length of the maximal prefix of s[i..] that could start a valid character (the "maximal subpart"),
/// at least 1; used for U+FFFD substitution. `complete` is false when that prefix runs to the end of `s`
/// and could still be completed by more bytes.
[[nodiscard]] inline std::size_t invalid_subpart_length(std::string_view s, std::size_t i, bool& complete) noexcept {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = at(i);
  std::size_t need = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    complete = true;
    return 1;
  }
  std::size_t k = 1;
  while (k < need && i + k < s.size()) {
    const unsigned char b = at(i + k);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b & 0xC0) == 0x80;
    if (!ok) break;
    ++k;
  }
  complete = i + k < s.size() || k == need;
  return k;
}

/// Offset of the first invalid byte of `s`, or nullopt when `s` is valid UTF-8.
[[nodiscard]] inline std::optional<std::size_t> first_invalid(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = valid_char_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

/// Appends `bytes` to `out`, replacing each maximal invalid subpart by U+FFFD.
inline void append_lossy(std::string_view bytes, std::string& out) {
  std::size_t i = 0;
  while (i < bytes.size()) {
    const std::size_t n = valid_char_length(bytes, i);
    if (n > 0) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      bool complete = true;
      i += invalid_subpart_length(bytes, i, complete);
      out.append("\xEF\xBF\xBD");
    }
  }
}

/// Decodes the code point at s[i] (which must be valid) and advances i.
[[nodiscard]] inline char32_t next_code_point(std::string_view s, std::size_t& i) noexcept {
  const auto at = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[k])); };
  const char32_t b0 = at(i);
  if (b0 < 0x80) {
    i += 1;
    return b0;
  }
  if (b0 < 0xE0) {
    const char32_t c = ((b0 & 0x1F) << 6) | (at(i + 1) & 0x3F);
    i += 2;
    return c;
  }
  if (b0 < 0xF0) {
    const char32_t c = ((b0 & 0x0F) << 12) | ((at(i + 1) & 0x3F) << 6) | (at(i + 2) & 0x3F);
    i += 3;
    return c;
  }
  const char32_t c = ((b0 & 0x07) << 18) | ((at(i + 1) & 0x3F) << 12) | ((at(i + 2) & 0x3F) << 6) | (at(i + 3) & 0x3F);
  i += 4;
  return c;
}

inline void append_code_point(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

/// Unicode White_Space (what Rust's char::is_whitespace tests; lstrip / rstrip of added tokens use it).
[[nodiscard]] constexpr bool is_white_space(char32_t c) noexcept {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace utf8

/// The GPT-2 byte-level alphabet: byte b <-> a printable code point. Printable Latin-1 bytes
/// (0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF) stand for themselves; the other 68 bytes take U+0100, U+0101, ...
/// in increasing byte order.
class ByteAlphabet {
 public:
  ByteAlphabet() {
    char32_t next = 0x100;
    to_byte_.fill(-1);
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t c = printable ? static_cast<char32_t>(b) : next++;
      to_char_[static_cast<std::size_t>(b)] = c;
      to_byte_[static_cast<std::size_t>(c)] = static_cast<std::int16_t>(b);
    }
  }

  [[nodiscard]] static const ByteAlphabet& instance() {
    static const ByteAlphabet alphabet;
    return alphabet;
  }

  /// The code point standing for byte `b`.
  [[nodiscard]] char32_t char_of(unsigned char b) const noexcept { return to_char_[b]; }

  /// The byte a code point stands for, or -1 when it is outside the alphabet.
  [[nodiscard]] int byte_of(char32_t c) const noexcept {
    return c < to_byte_.size() ? to_byte_[static_cast<std::size_t>(c)] : -1;
  }

  /// Raw bytes of a byte-level token string; a string holding any character outside the alphabet (or
  /// invalid UTF-8) stands for its own bytes.
  [[nodiscard]] std::string token_bytes(std::string_view token) const {
    std::string bytes;
    bytes.reserve(token.size());
    std::size_t i = 0;
    while (i < token.size()) {
      if (utf8::valid_char_length(token, i) == 0) return std::string(token);
      const int b = byte_of(utf8::next_code_point(token, i));
      if (b < 0) return std::string(token);
      bytes.push_back(static_cast<char>(b));
    }
    return bytes;
  }

  /// The byte-level token string of raw bytes.
  [[nodiscard]] std::string token_string(std::string_view bytes) const {
    std::string s;
    s.reserve(bytes.size() * 2);
    for (const char b : bytes) utf8::append_code_point(char_of(static_cast<unsigned char>(b)), s);
    return s;
  }

 private:
  std::array<char32_t, 256> to_char_{};
  std::array<std::int16_t, 324> to_byte_{};
};

// ------------------------------------------------------------------------------------------------
// Configuration
// ------------------------------------------------------------------------------------------------

/// A token matched in raw text before pre-tokenization (chat markers, BOS/EOS, tool tags, ...).
struct AddedToken {
  std::string content;   ///< the exact text it matches
  TokenId id = -1;
  bool special = false;  ///< special tokens are dropped by decode(ids) with skip_special_tokens
  bool lstrip = false;   ///< also swallows the white space before it
  bool rstrip = false;   ///< also swallows the white space after it
};

/// Text normalisation before pre-tokenization.
///   none  the text is used as is;
///   nfc   Unicode NFC. kaizen has no Unicode composition tables: it accepts text made only of code
///         points it proves NFC-stable (starters without decomposition that never compose with a
///         neighbour: ASCII and Latin-1, precomposed Latin/Greek/Cyrillic letters, CJK, kana, Hangul
///         syllables, common punctuation and symbols, emoji) — for such text NFC is the identity — and
///         throws kaizen::Error naming the first other code point (a combining mark, a compatibility
///         singleton, a script it does not list). It never returns a silently unnormalised encoding.
enum class Normalization : std::uint8_t { none, nfc };

/// Everything a byte-level BPE tokenizer is made of. Token strings are in byte-level form ("Ġthe").
struct BpeConfig {
  std::vector<std::pair<std::string, TokenId>> vocab;        ///< model vocabulary
  std::vector<std::pair<std::string, std::string>> merges;   ///< merge rules, rank = position
  std::vector<AddedToken> added_tokens;
  PreTokenizer pre_tokenizer;
  Normalization normalization = Normalization::none;
  bool ignore_merges = false;              ///< emit a piece that is in the vocabulary without merging
  std::vector<TokenId> prefix_ids;         ///< added before the text when add_special_tokens (BOS)
  std::vector<TokenId> suffix_ids;         ///< added after it
  std::optional<TokenId> bos_id;
  std::optional<TokenId> eos_id;
  std::optional<TokenId> pad_id;           ///< defaults to eos_id
  std::string source = "BpeConfig";        ///< names the origin in error messages (file path, "GGUF ...")
};

struct EncodeOptions {
  bool add_special_tokens = false;  ///< add the post-processor's prefix/suffix ids (e.g. BOS)
};

struct DecodeOptions {
  bool skip_special_tokens = true;  ///< drop special added tokens (the Tokenizer concept's contract)
};

// ------------------------------------------------------------------------------------------------
// The tokenizer
// ------------------------------------------------------------------------------------------------

/// Byte-level BPE tokenizer; models kaizen::tasks::Tokenizer. Thread-safe for concurrent const use.
class BpeTokenizer {
 public:
  static constexpr std::size_t kCacheCapacity = 16384;   ///< pieces cached before the cache is cleared
  static constexpr std::size_t kMaxCachedPiece = 256;    ///< longer pieces are not cached
  static constexpr TokenId kMaxId = (TokenId{1} << 24);  ///< ids at or past this are refused

  /// Validates and indexes `config`. Throws kaizen::Error naming config.source and the offending entry:
  /// negative or huge ids, ids not dense enough (max id >= 4 * entries + 1024), duplicate ids with
  /// different tokens, a merge naming a token outside the vocabulary or whose concatenation is not in
  /// it, bos/eos/pad ids outside the vocabulary.
  explicit BpeTokenizer(BpeConfig config) : source_(std::move(config.source)) {
    const auto& alphabet = ByteAlphabet::instance();
    const std::size_t entries = config.vocab.size() + config.added_tokens.size();
    KAIZEN_CHECK(!config.vocab.empty(), source_, ": the vocabulary is empty");
    TokenId max_id = -1;
    auto check_id = [&](TokenId id, std::string_view what, std::string_view token) {
      KAIZEN_CHECK(id >= 0 && id < kMaxId, source_, ": ", what, " \"", token, "\" has id ", id,
                   " outside [0, ", kMaxId, ")");
      max_id = std::max(max_id, id);
    };
    for (const auto& [token, id] : config.vocab) check_id(id, "vocabulary token", token);
    for (const auto& added : config.added_tokens) check_id(added.id, "added token", added.content);
    KAIZEN_CHECK(static_cast<std::size_t>(max_id) < 4 * entries + 1024, source_, ": the largest id ", max_id,
                 " is far past the ", entries, " tokens given (ids must be dense)");
    const auto size = static_cast<std::size_t>(max_id) + 1;
    id_bytes_.assign(size, {});
    id_token_.assign(size, {});
    kind_.assign(size, Kind::none);
    in_model_vocab_.assign(size, false);

    token_to_id_.reserve(entries);
    bytes_to_id_.reserve(config.vocab.size());
    for (const auto& [token, id] : config.vocab) {
      const auto u = static_cast<std::size_t>(id);
      KAIZEN_CHECK(kind_[u] == Kind::none || id_token_[u] == token, source_, ": id ", id, " is given to both \"",
                   id_token_[u], "\" and \"", token, "\"");
      kind_[u] = Kind::model;
      in_model_vocab_[u] = true;
      id_token_[u] = token;
      id_bytes_[u] = alphabet.token_bytes(token);
      token_to_id_.emplace(token, id);
      bytes_to_id_.emplace(id_bytes_[u], id);
    }
    for (std::size_t b = 0; b < 256; ++b) {
      // Some vocabularies (SmolLM2) lack tokens for bytes that never occur in UTF-8 text or for rare
      // control bytes; encoding such a byte throws (see encode).
      const auto it = bytes_to_id_.find(std::string(1, static_cast<char>(b)));
      byte_id_[b] = it != bytes_to_id_.end() ? it->second : -1;
    }

    merges_.reserve(config.merges.size());
    for (std::size_t rank = 0; rank < config.merges.size(); ++rank) {
      const auto& [left, right] = config.merges[rank];
      const auto l = token_to_id_.find(left);
      const auto r = token_to_id_.find(right);
      KAIZEN_CHECK(l != token_to_id_.end(), source_, ": merges[", rank, "] \"", left, " ", right, "\": \"", left,
                   "\" is not in the vocabulary");
      KAIZEN_CHECK(r != token_to_id_.end(), source_, ": merges[", rank, "] \"", left, " ", right, "\": \"", right,
                   "\" is not in the vocabulary");
      const auto merged = token_to_id_.find(left + right);
      KAIZEN_CHECK(merged != token_to_id_.end(), source_, ": merges[", rank, "] \"", left, " ", right,
                   "\": the merged token \"", left + right, "\" is not in the vocabulary");
      // the first (lowest-rank) rule for a pair wins, as in the reference
      merges_.try_emplace(pair_key(l->second, r->second),
                          Merge{static_cast<std::uint32_t>(rank), static_cast<std::uint32_t>(merged->second)});
    }

    for (auto& added : config.added_tokens) {
      KAIZEN_CHECK(!added.content.empty(), source_, ": added token with id ", added.id, " has empty content");
      KAIZEN_CHECK(!utf8::first_invalid(added.content), source_, ": added token with id ", added.id,
                   " is not valid UTF-8");
      const auto u = static_cast<std::size_t>(added.id);
      if (kind_[u] == Kind::model) shadowed_model_tokens_.emplace_back(u, id_token_[u]);
      kind_[u] = added.special ? Kind::special : Kind::added;
      id_token_[u] = added.content;
      id_bytes_[u] = alphabet.token_bytes(added.content);
      token_to_id_.insert_or_assign(added.content, added.id);
      added_by_first_byte_[static_cast<unsigned char>(added.content[0])].push_back(added_.size());
      added_.push_back(std::move(added));
    }
    for (auto& list : added_by_first_byte_) {  // longest first: the first match found is the longest
      std::stable_sort(list.begin(), list.end(),
                       [&](std::size_t a, std::size_t b) { return added_[a].content.size() > added_[b].content.size(); });
    }

    pre_ = std::move(config.pre_tokenizer);
    normalization_ = config.normalization;
    ignore_merges_ = config.ignore_merges;
    for (const TokenId id : config.prefix_ids) check_known(id, "post-processor prefix id");
    for (const TokenId id : config.suffix_ids) check_known(id, "post-processor suffix id");
    prefix_ids_ = std::move(config.prefix_ids);
    suffix_ids_ = std::move(config.suffix_ids);
    if (config.bos_id) check_known(*config.bos_id, "bos id");
    if (config.eos_id) check_known(*config.eos_id, "eos id");
    if (config.pad_id) check_known(*config.pad_id, "pad id");
    bos_id_ = config.bos_id;
    eos_id_ = config.eos_id;
    pad_id_ = config.pad_id ? config.pad_id : config.eos_id;
  }

  BpeTokenizer(const BpeTokenizer&) = delete;
  BpeTokenizer& operator=(const BpeTokenizer&) = delete;
  BpeTokenizer(BpeTokenizer&& other) noexcept = default;
  BpeTokenizer& operator=(BpeTokenizer&& other) noexcept = default;

  // --- the Tokenizer concept -------------------------------------------------------------------

  /// Largest id + 1 (model and added tokens together).
  [[nodiscard]] std::int64_t vocab_size() const noexcept { return static_cast<std::int64_t>(id_bytes_.size()); }

  /// Throws kaizen::Error when the tokenizer was built without an end-of-sequence token.
  [[nodiscard]] TokenId eos_id() const {
    KAIZEN_CHECK(eos_id_.has_value(), source_, ": BpeTokenizer::eos_id: no end-of-sequence token was configured");
    return *eos_id_;
  }
  /// The padding id (the eos id when none was given).
  [[nodiscard]] TokenId pad_id() const {
    KAIZEN_CHECK(pad_id_.has_value(), source_, ": BpeTokenizer::pad_id: no padding (or eos) token was configured");
    return *pad_id_;
  }
  [[nodiscard]] std::optional<TokenId> bos_id() const noexcept { return bos_id_; }

  /// Token ids of `text`; added tokens inside the text become their ids. No BOS is added unless
  /// options.add_special_tokens (a chat template already writes its own). Throws on invalid UTF-8.
  [[nodiscard]] std::vector<TokenId> encode(std::string_view text, EncodeOptions options = {}) const {
    std::vector<TokenId> ids;
    ids.reserve(text.size() / 3 + 8);
    encode_into(text, ids, options);
    return ids;
  }

  /// Appends the ids of `text` to `ids` (see encode).
  void encode_into(std::string_view text, std::vector<TokenId>& ids, EncodeOptions options = {}) const {
    if (const auto bad = utf8::first_invalid(text)) {
      fail("kaizen::tokenizers::BpeTokenizer::encode: the text is not valid UTF-8 at byte ", *bad, " (0x",
           hex(static_cast<unsigned char>(text[*bad])), ")");
    }
    if (options.add_special_tokens) ids.insert(ids.end(), prefix_ids_.begin(), prefix_ids_.end());
    Scratch scratch;
    std::size_t start = 0;  // start of the text not yet encoded
    std::size_t i = 0;
    while (i < text.size()) {
      const auto& candidates = added_by_first_byte_[static_cast<unsigned char>(text[i])];
      const AddedToken* hit = nullptr;
      for (const std::size_t k : candidates) {
        const auto& c = added_[k].content;
        if (text.compare(i, c.size(), c) == 0) {
          hit = &added_[k];
          break;
        }
      }
      if (hit == nullptr) {
        ++i;
        continue;
      }
      std::size_t b = i;
      std::size_t e = i + hit->content.size();
      if (hit->lstrip) b = strip_left(text, start, b);
      if (hit->rstrip) e = strip_right(text, e);
      encode_span(text.substr(start, b - start), start, ids, scratch);
      ids.push_back(hit->id);
      start = e;
      i = e;
    }
    encode_span(text.substr(start), start, ids, scratch);
    if (options.add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  }

  /// The text of `ids`; special added tokens are dropped unless !options.skip_special_tokens. Invalid
  /// UTF-8 in the byte sequence becomes U+FFFD. Throws kaizen::Error on an id with no token.
  [[nodiscard]] std::string decode(std::span<const TokenId> ids, DecodeOptions options = {}) const {
    std::string bytes;
    bytes.reserve(ids.size() * 4);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const TokenId id = ids[i];
      check_decodable(id, i);
      if (options.skip_special_tokens && kind_[static_cast<std::size_t>(id)] == Kind::special) continue;
      bytes.append(id_bytes_[static_cast<std::size_t>(id)]);
    }
    std::string text;
    text.reserve(bytes.size());
    utf8::append_lossy(bytes, text);
    return text;
  }

  // --- lookups ---------------------------------------------------------------------------------

  /// The id of a token string (byte-level form, or an added token's content), or nullopt.
  [[nodiscard]] std::optional<TokenId> token_to_id(std::string_view token) const {
    const auto it = token_to_id_.find(token);
    if (it == token_to_id_.end()) return std::nullopt;
    return it->second;
  }
  /// The token string of `id` (byte-level form). Throws on an id with no token.
  [[nodiscard]] const std::string& id_to_token(TokenId id) const {
    check_decodable(id, 0);
    return id_token_[static_cast<std::size_t>(id)];
  }
  /// The raw bytes `id` stands for. Throws on an id with no token.
  [[nodiscard]] const std::string& id_to_bytes(TokenId id) const {
    check_decodable(id, 0);
    return id_bytes_[static_cast<std::size_t>(id)];
  }
  [[nodiscard]] bool is_special(TokenId id) const noexcept {
    return id >= 0 && id < vocab_size() && kind_[static_cast<std::size_t>(id)] == Kind::special;
  }
  [[nodiscard]] const std::vector<AddedToken>& added_tokens() const noexcept { return added_; }
  [[nodiscard]] const std::string& source() const noexcept { return source_; }

  // --- the configuration, for writing it back out (tokenizer_json_write.hpp) ----------------------

  /// The model vocabulary (byte-level token strings with their ids), by increasing id.
  [[nodiscard]] std::vector<std::pair<std::string, TokenId>> model_vocab() const {
    std::vector<std::pair<std::string, TokenId>> out;
    for (std::size_t u = 0; u < in_model_vocab_.size(); ++u) {
      if (!in_model_vocab_[u]) continue;
      // an added token given the id of a model token keeps the model token's string (GGUF control tokens
      // are both; their strings agree)
      out.emplace_back(kind_[u] == Kind::model ? id_token_[u] : model_token_string(u), static_cast<TokenId>(u));
    }
    return out;
  }
  /// The merge rules in rank order (a rule that repeats an earlier pair was dropped when loading: the
  /// first one wins, so the written list encodes identically).
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> merges() const {
    std::vector<std::pair<std::uint32_t, std::uint64_t>> ranked;
    ranked.reserve(merges_.size());
    for (const auto& [key, m] : merges_) ranked.emplace_back(m.rank, key);
    std::sort(ranked.begin(), ranked.end());
    std::vector<std::pair<std::string, std::string>> out;
    out.reserve(ranked.size());
    for (const auto& [rank, key] : ranked) {
      out.emplace_back(model_token_string(static_cast<std::size_t>(key >> 32)),
                       model_token_string(static_cast<std::size_t>(key & 0xFFFFFFFFu)));
    }
    return out;
  }
  [[nodiscard]] const PreTokenizer& pre_tokenizer() const noexcept { return pre_; }
  [[nodiscard]] Normalization normalization() const noexcept { return normalization_; }
  [[nodiscard]] bool ignore_merges() const noexcept { return ignore_merges_; }
  [[nodiscard]] const std::vector<TokenId>& prefix_ids() const noexcept { return prefix_ids_; }
  [[nodiscard]] const std::vector<TokenId>& suffix_ids() const noexcept { return suffix_ids_; }
  [[nodiscard]] std::optional<TokenId> eos_id_if_any() const noexcept { return eos_id_; }
  /// The configured padding id only (pad_id() falls back to eos).
  [[nodiscard]] std::optional<TokenId> pad_id_if_any() const noexcept { return pad_id_; }

 private:
  enum class Kind : std::uint8_t { none, model, added, special };
  struct Merge {
    std::uint32_t rank;
    std::uint32_t id;
  };
  struct Symbol {
    TokenId id;
    std::int32_t prev;
    std::int32_t next;
    std::uint32_t len;
  };
  struct Candidate {
    std::uint32_t rank;
    std::int32_t pos;
    std::uint32_t id;
    friend bool operator>(const Candidate& a, const Candidate& b) noexcept {
      return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
    }
  };
  struct Scratch {
    std::vector<std::string_view> pieces;
    std::vector<std::string_view> levels;
    std::vector<Symbol> symbols;
    std::vector<Candidate> heap;
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  using StringMap = std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>>;

  static std::string hex(std::size_t v) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string s;
    s.push_back(digits[(v >> 4) & 0xF]);
    s.push_back(digits[v & 0xF]);
    return s;
  }
  static constexpr std::uint64_t pair_key(TokenId a, TokenId b) noexcept {
    return (static_cast<std::uint64_t>(a) << 32) | static_cast<std::uint64_t>(b);
  }

  /// The model vocabulary's string for id u (also when an added token took the id).
  const std::string& model_token_string(std::size_t u) const {
    if (kind_[u] == Kind::model) return id_token_[u];
    for (auto it = shadowed_model_tokens_.rbegin(); it != shadowed_model_tokens_.rend(); ++it)
      if (it->first == u) return it->second;
    return id_token_[u];
  }

  void check_known(TokenId id, std::string_view what) const {
    KAIZEN_CHECK(id >= 0 && id < vocab_size() && kind_[static_cast<std::size_t>(id)] != Kind::none, source_, ": ",
                 what, " ", id, " is not a token of the vocabulary");
  }
  void check_decodable(TokenId id, std::size_t position) const {
    KAIZEN_CHECK(id >= 0 && id < vocab_size() && kind_[static_cast<std::size_t>(id)] != Kind::none,
                 "kaizen::tokenizers::BpeTokenizer::decode: token id ", id, " at position ", position,
                 " is not in the vocabulary of ", source_, " (size ", vocab_size(), ")");
  }

  /// Start of the white space run ending at `b` (not before `floor`).
  static std::size_t strip_left(std::string_view text, std::size_t floor, std::size_t b) {
    // walk code points from floor, remembering where the trailing white-space run began
    std::size_t i = floor;
    std::size_t run = b;
    bool in_run = false;
    while (i < b) {
      const std::size_t at = i;
      const char32_t c = utf8::next_code_point(text, i);
      if (utf8::is_white_space(c)) {
        if (!in_run) run = at;
        in_run = true;
      } else {
        in_run = false;
      }
    }
    return in_run ? run : b;
  }
  /// End of the white space run starting at `e`.
  static std::size_t strip_right(std::string_view text, std::size_t e) {
    std::size_t i = e;
    while (i < text.size()) {
      std::size_t next = i;
      if (!utf8::is_white_space(utf8::next_code_point(text, next))) break;
      i = next;
    }
    return i;
  }

  void normalize_check(std::string_view span, std::size_t offset) const {
    if (normalization_ != Normalization::nfc) return;
    std::size_t i = 0;
    while (i < span.size()) {
      if (static_cast<unsigned char>(span[i]) < 0x80) {
        ++i;
        continue;
      }
      const std::size_t at = i;
      const char32_t c = utf8::next_code_point(span, i);
      if (!nfc_stable(c)) {
        fail("kaizen::tokenizers::BpeTokenizer::encode: normalizer NFC: U+", code_point_hex(c), " at byte ",
             offset + at, " is outside the characters kaizen proves NFC-stable (", source_,
             "); see docs/tokenizers.md");
      }
    }
  }
  static std::string code_point_hex(char32_t c) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string s;
    for (int shift = 20; shift >= 0; shift -= 4) {
      const auto d = (c >> shift) & 0xF;
      if (!s.empty() || d != 0 || shift <= 12) s.push_back(digits[d]);
    }
    return s;
  }
  /// Code points that are starters (ccc 0), have no canonical decomposition change under NFC and are
  /// never the second element of a canonical composition (see Normalization).
  static constexpr bool nfc_stable(char32_t c) noexcept {
    struct Range {
      char32_t lo, hi;
    };
    constexpr Range ranges[] = {
        {0x0000, 0x02FF},   {0x0386, 0x0386},   {0x0388, 0x03CE},  {0x0400, 0x0482},   {0x048A, 0x052F},
        {0x05D0, 0x05EA},   {0x0621, 0x064A},   {0x0660, 0x0669},   {0x1E00, 0x1EFF},  {0x2002, 0x200F},   {0x2010, 0x2027},
        {0x2030, 0x205E},   {0x20A0, 0x20C0},   {0x2100, 0x2125},  {0x2127, 0x2129},   {0x212C, 0x2131},
        {0x2190, 0x2328},   {0x232B, 0x23FF},   {0x2460, 0x27BF},   {0x2900, 0x2AFF},  {0x3000, 0x3029},   {0x3030, 0x303F},
        {0x3041, 0x3096},   {0x309B, 0x30FF},   {0x4E00, 0x9FFF},  {0xAC00, 0xD7A3},   {0xFE00, 0xFE0F},
        {0xFF01, 0xFF60},   {0x1F000, 0x1FAFF},
    };
    for (const auto& r : ranges) {
      if (c >= r.lo && c <= r.hi) return c != 0x2ADC;  // U+2ADC is a composition exclusion
    }
    return false;
  }

  void encode_span(std::string_view span, std::size_t offset, std::vector<TokenId>& ids, Scratch& scratch) const {
    if (span.empty()) return;
    normalize_check(span, offset);
    scratch.pieces.clear();
    pre_.split(span, scratch.pieces, scratch.levels);
    for (const std::string_view piece : scratch.pieces) encode_piece(piece, ids, scratch);
  }

  [[noreturn]] void fail_missing_byte(std::string_view piece, std::size_t i) const {
    const auto b = static_cast<unsigned char>(piece[i]);
    fail("kaizen::tokenizers::BpeTokenizer::encode: byte 0x", hex(b), " (in \"", piece,
         "\") has no token in the vocabulary of ", source_,
         " (Hugging Face tokenizers drops such bytes silently; kaizen refuses)");
  }

  void encode_piece(std::string_view piece, std::vector<TokenId>& ids, Scratch& scratch) const {
    if (piece.size() == 1) {
      const TokenId id = byte_id_[static_cast<unsigned char>(piece[0])];
      if (id < 0) fail_missing_byte(piece, 0);
      ids.push_back(id);
      return;
    }
    if (ignore_merges_) {
      const auto it = bytes_to_id_.find(piece);
      if (it != bytes_to_id_.end()) {
        ids.push_back(it->second);
        return;
      }
    }
    const bool cacheable = piece.size() <= kMaxCachedPiece;
    if (cacheable) {
      std::lock_guard lock(cache_->mutex);
      const auto it = cache_->words.find(piece);
      if (it != cache_->words.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const std::size_t first = ids.size();
    merge(piece, ids, scratch);
    if (cacheable) {
      std::lock_guard lock(cache_->mutex);
      if (cache_->words.size() >= kCacheCapacity) cache_->words.clear();
      cache_->words.try_emplace(std::string(piece), ids.begin() + static_cast<std::ptrdiff_t>(first), ids.end());
    }
  }

  /// BPE over the bytes of one piece: lowest rank first, leftmost on ties (a binary heap with lazy
  /// invalidation: a popped candidate is applied only if its pair is still adjacent and unchanged).
  void merge(std::string_view piece, std::vector<TokenId>& ids, Scratch& scratch) const {
    auto& sym = scratch.symbols;
    auto& heap = scratch.heap;
    const auto n = static_cast<std::int32_t>(piece.size());
    sym.resize(piece.size());
    for (std::int32_t i = 0; i < n; ++i) {
      const TokenId id = byte_id_[static_cast<unsigned char>(piece[static_cast<std::size_t>(i)])];
      if (id < 0) fail_missing_byte(piece, static_cast<std::size_t>(i));
      sym[static_cast<std::size_t>(i)] = {id, i - 1, i + 1 < n ? i + 1 : -1, 1};
    }
    heap.clear();
    const auto greater = std::greater<Candidate>{};
    auto push = [&](std::int32_t left) {
      const auto& l = sym[static_cast<std::size_t>(left)];
      if (l.next < 0) return;
      const auto it = merges_.find(pair_key(l.id, sym[static_cast<std::size_t>(l.next)].id));
      if (it == merges_.end()) return;
      heap.push_back({it->second.rank, left, it->second.id});
      std::push_heap(heap.begin(), heap.end(), greater);
    };
    for (std::int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), greater);
      const Candidate top = heap.back();
      heap.pop_back();
      auto& left = sym[static_cast<std::size_t>(top.pos)];
      if (left.len == 0 || left.next < 0) continue;
      auto& right = sym[static_cast<std::size_t>(left.next)];
      const auto it = merges_.find(pair_key(left.id, right.id));
      if (it == merges_.end() || it->second.id != top.id) continue;
      left.id = top.id;
      left.len += right.len;
      right.len = 0;
      left.next = right.next;
      if (left.next >= 0) sym[static_cast<std::size_t>(left.next)].prev = top.pos;
      if (left.prev >= 0) push(left.prev);
      push(top.pos);
    }
    for (std::int32_t i = 0; i >= 0; i = sym[static_cast<std::size_t>(i)].next) ids.push_back(sym[static_cast<std::size_t>(i)].id);
  }

  struct Cache {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<TokenId>, StringHash, std::equal_to<>> words;
  };

  std::string source_;
  std::vector<std::string> id_bytes_;
  std::vector<std::string> id_token_;
  std::vector<Kind> kind_;
  std::vector<bool> in_model_vocab_;                 ///< the id was given in BpeConfig::vocab
  std::vector<std::pair<std::size_t, std::string>> shadowed_model_tokens_;  ///< model strings of ids an added token took
  StringMap token_to_id_;
  StringMap bytes_to_id_;
  std::unordered_map<std::uint64_t, Merge> merges_;
  std::array<TokenId, 256> byte_id_{};
  std::vector<AddedToken> added_;
  std::array<std::vector<std::size_t>, 256> added_by_first_byte_{};
  PreTokenizer pre_;
  Normalization normalization_ = Normalization::none;
  bool ignore_merges_ = false;
  std::vector<TokenId> prefix_ids_;
  std::vector<TokenId> suffix_ids_;
  std::optional<TokenId> bos_id_;
  std::optional<TokenId> eos_id_;
  std::optional<TokenId> pad_id_;
  std::unique_ptr<Cache> cache_ = std::make_unique<Cache>();
};

// ------------------------------------------------------------------------------------------------
// Streaming decode
// ------------------------------------------------------------------------------------------------

/// Decodes ids one at a time (as a sampler produces them) into text that is always valid UTF-8:
/// the bytes of an incomplete trailing character are held back until the tokens completing it arrive;
/// bytes that can no longer become a valid character come out as U+FFFD (as decode() would).
/// The concatenation of every push() and the final finish() equals decode(all ids).
class StreamDecoder {
 public:
  explicit StreamDecoder(const BpeTokenizer& tokenizer, DecodeOptions options = {})
      : tokenizer_(&tokenizer), options_(options) {}

  /// The text that became complete with `id` (possibly empty).
  [[nodiscard]] std::string push(TokenId id) {
    const std::string& bytes = tokenizer_->id_to_bytes(id);  // validates the id
    if (options_.skip_special_tokens && tokenizer_->is_special(id)) return {};
    pending_.append(bytes);
    std::string out;
    std::size_t i = 0;
    while (i < pending_.size()) {
      const std::size_t n = utf8::valid_char_length(pending_, i);
      if (n > 0) {
        out.append(pending_, i, n);
        i += n;
        continue;
      }
      bool complete = true;
      const std::size_t k = utf8::invalid_subpart_length(pending_, i, complete);
      if (!complete) break;  // may still be completed: hold back
      out.append("\xEF\xBF\xBD");
      i += k;
    }
    pending_.erase(0, i);
    return out;
  }

  /// Flushes held-back bytes (as U+FFFD: the stream ended inside a character) and resets.
  [[nodiscard]] std::string finish() {
    std::string out;
    utf8::append_lossy(pending_, out);
    pending_.clear();
    return out;
  }

  /// Bytes currently held back (0 to 3).
  [[nodiscard]] std::size_t pending_bytes() const noexcept { return pending_.size(); }

 private:
  const BpeTokenizer* tokenizer_;
  DecodeOptions options_;
  std::string pending_;
};

}  // namespace kaizen::tokenizers
