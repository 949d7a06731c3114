// kaizen/tasks/tokenizer.hpp - the Tokenizer concept and a character-level tokenizer for the embedded
// tasks (digits, operators, separators): one token per character plus padding and end-of-sequence.
//
// Ids: 0 = padding, 1 = end of sequence (the natural stop token), 2 + i = the i-th alphabet character.
// Character level keeps the demo self-contained (no vocabulary file to download) and makes every
// answer a short, exactly checkable token sequence.
#pragma once

#include <array>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen::tasks {

/// Text <-> token ids.
///
/// Required expressions (t: const T&, text: std::string_view, ids: std::span<const TokenId>):
/// @code
///   t.encode(text)   -> std::vector<TokenId>   // throws kaizen::Error on text it cannot represent
///   t.decode(ids)    -> std::string            // special tokens (padding, end of sequence) produce no text
///   t.vocab_size()   -> std::int64_t
///   t.eos_id()       -> TokenId                // the token that ends an answer
///   t.pad_id()       -> TokenId
/// @endcode
template <class T>
concept Tokenizer = requires(const T& t, std::string_view text, std::span<const TokenId> ids) {
  { t.encode(text) } -> std::convertible_to<std::vector<TokenId>>;
  { t.decode(ids) } -> std::convertible_to<std::string>;
  { t.vocab_size() } -> std::convertible_to<std::int64_t>;
  { t.eos_id() } -> std::convertible_to<TokenId>;
  { t.pad_id() } -> std::convertible_to<TokenId>;
};

/// One token per character of a fixed alphabet, plus padding (id 0) and end of sequence (id 1).
class CharTokenizer {
 public:
  /// Digits, the four operators, parentheses, '=', '>', ',', ':' and space: enough for every task here.
  static constexpr std::string_view kDefaultAlphabet = "0123456789+-*/()=>,: ";

  /// Throws kaizen::Error on an empty alphabet or a repeated character.
  explicit CharTokenizer(std::string_view alphabet = kDefaultAlphabet) : alphabet_(alphabet) {
    KAIZEN_CHECK(!alphabet_.empty(), "CharTokenizer: expected a non-empty alphabet");
    index_.fill(-1);
    for (std::size_t i = 0; i < alphabet_.size(); ++i) {
      const auto c = static_cast<unsigned char>(alphabet_[i]);
      KAIZEN_CHECK(index_[c] < 0, "CharTokenizer: character '", alphabet_[i], "' appears twice in the alphabet");
      index_[c] = static_cast<TokenId>(i) + kFirstCharId;
    }
  }

  [[nodiscard]] std::int64_t vocab_size() const { return static_cast<std::int64_t>(alphabet_.size()) + kFirstCharId; }
  [[nodiscard]] TokenId pad_id() const { return 0; }
  [[nodiscard]] TokenId eos_id() const { return 1; }

  /// One id per character. Throws kaizen::Error naming the first character outside the alphabet.
  [[nodiscard]] std::vector<TokenId> encode(std::string_view text) const {
    std::vector<TokenId> ids;
    ids.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
      const TokenId id = index_[static_cast<unsigned char>(text[i])];
      KAIZEN_CHECK(id >= 0, "CharTokenizer::encode: unknown character '", text[i], "' (byte ",
                   static_cast<int>(static_cast<unsigned char>(text[i])), ") at position ", i,
                   "; the alphabet is \"", alphabet_, "\"");
      ids.push_back(id);
    }
    return ids;
  }

  /// The text of `ids`; padding and end-of-sequence produce nothing. Throws kaizen::Error on an id
  /// outside [0, vocab_size).
  [[nodiscard]] std::string decode(std::span<const TokenId> ids) const {
    std::string text;
    text.reserve(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const TokenId id = ids[i];
      KAIZEN_CHECK(id >= 0 && id < vocab_size(), "CharTokenizer::decode: token id ", id, " at position ", i,
                   " is outside the vocabulary [0, ", vocab_size(), ")");
      if (id >= kFirstCharId) text.push_back(alphabet_[static_cast<std::size_t>(id - kFirstCharId)]);
    }
    return text;
  }

 private:
  static constexpr TokenId kFirstCharId = 2;
  std::string alphabet_;
  std::array<TokenId, 256> index_{};
};

}  // namespace kaizen::tasks
