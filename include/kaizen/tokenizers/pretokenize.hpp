// kaizen/tokenizers/pretokenize.hpp - the pre-tokenizer: splits text into the pieces BPE encodes one
// at a time, with the Unicode split patterns of the supported model families, run by PCRE2 (JIT).
//
// A pre-tokenizer is a sequence of split steps. Each step runs one regular expression over every piece
// the previous step produced and cuts it by a behaviour (the Hugging Face `tokenizers` vocabulary):
//   isolated             every match and every gap between matches becomes its own piece;
//   removed              gaps become pieces, matches are dropped;
//   merged_with_previous a match is glued to the gap before it;
//   merged_with_next     a match is glued to the gap after it;
//   contiguous           consecutive matches fuse into one piece, gaps stay pieces.
// Empty pieces are never produced; a pattern that matches the empty string advances by one character.
//
// Family patterns (facts of each tokenizer; the regular expressions are the published ones):
//   gpt2    ByteLevel with its regex:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   smollm  Digits(individual: every \p{N} character alone), then the gpt2 regex (SmolLM / SmolLM2)
//   llama3  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   qwen2   as llama3 with \p{N} (one digit per piece) instead of \p{N}{1,3}
// Patterns compile with PCRE2_UTF | PCRE2_UCP, so \s, \p{L}, \p{N} and (?i) follow Unicode properties as
// the Oniguruma engine behind `tokenizers` does. Text is validated as UTF-8 once by the caller (see
// bpe.hpp) and matched with PCRE2_NO_UTF_CHECK.
//
// References: PCRE2 API (pcre2api(3), pcre2jit(3)); Radford et al. 2019 (GPT-2 byte-level BPE);
// Hugging Face tokenizers documentation of pre-tokenizers (Split, Digits, ByteLevel, Sequence).
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <kaizen/core/error.hpp>

namespace kaizen::tokenizers {

/// How a split step cuts a piece around the matches of its pattern.
enum class SplitBehavior : std::uint8_t { isolated, removed, merged_with_previous, merged_with_next, contiguous };

/// The published split patterns (see the header comment).
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace detail {

/// Per-thread PCRE2 match state: one match-data block (whole-match offsets only) and a JIT stack large
/// enough for long runs of letters or spaces (the default 32 KiB overflows on them).
struct MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  MatchState() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (data == nullptr || context == nullptr || stack == nullptr) {
      release();
      throw Error("kaizen::tokenizers: PCRE2 could not allocate its match state");
    }
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;
  ~MatchState() { release(); }
  void release() {
    if (data != nullptr) pcre2_match_data_free(data);
    if (context != nullptr) pcre2_match_context_free(context);
    if (stack != nullptr) pcre2_jit_stack_free(stack);
    data = nullptr;
    context = nullptr;
    stack = nullptr;
  }
};

inline MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

/// Length in bytes of the UTF-8 character starting with lead byte `b` (1 for a stray byte).
[[nodiscard]] constexpr std::size_t utf8_length(unsigned char b) noexcept {
  if (b < 0x80) return 1;
  if ((b >> 5) == 0x6) return 2;
  if ((b >> 4) == 0xE) return 3;
  if ((b >> 3) == 0x1E) return 4;
  return 1;
}

}  // namespace detail

/// A compiled PCRE2 pattern (UTF, UCP, JIT-compiled when the platform has a JIT). Movable, not copyable.
class Regex {
 public:
  /// Throws kaizen::Error naming `what` (e.g. the tokenizer.json key) and PCRE2's message and offset.
  /// `literal` matches the pattern text verbatim (a `String` split pattern).
  Regex(std::string_view pattern, std::string_view what, bool literal = false) : pattern_(pattern), literal_(literal) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    std::uint32_t options = PCRE2_UTF | PCRE2_UCP;
    if (literal) options |= PCRE2_LITERAL;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                                     &error_code, &error_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof message);
      fail(what, ": the pattern \"", pattern, "\" does not compile: ", reinterpret_cast<const char*>(message),
           " at offset ", error_offset);
    }
    code_.reset(code);
    jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  }

  [[nodiscard]] const std::string& pattern() const noexcept { return pattern_; }
  [[nodiscard]] bool jit() const noexcept { return jit_; }
  /// True when the pattern text is matched verbatim (a tokenizer.json `String` split pattern).
  [[nodiscard]] bool literal() const noexcept { return literal_; }

  /// Calls f(begin, end) (byte offsets into `subject`) for every non-empty match, left to right.
  /// `subject` must be valid UTF-8 (not re-checked).
  template <class F>
  void for_each_match(std::string_view subject, F&& f) const {
    auto& state = detail::match_state();
    const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
    std::size_t start = 0;
    while (start < subject.size()) {
      const int rc = jit_ ? pcre2_jit_match(code_.get(), s, subject.size(), start, PCRE2_NO_UTF_CHECK, state.data,
                                            state.context)
                          : pcre2_match(code_.get(), s, subject.size(), start, PCRE2_NO_UTF_CHECK, state.data,
                                        state.context);
      if (rc == PCRE2_ERROR_NOMATCH) return;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof message);
        fail("kaizen::tokenizers::Regex: matching \"", pattern_, "\" failed: ", reinterpret_cast<const char*>(message),
             " (subject of ", subject.size(), " bytes, at offset ", start, ")");
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
      const std::size_t b = ovector[0];
      const std::size_t e = ovector[1];
      if (e > b) {
        f(b, e);
        start = e;
      } else {  // empty match: step over one character
        start = b + detail::utf8_length(static_cast<unsigned char>(subject[b]));
      }
    }
  }

 private:
  struct CodeFree {
    void operator()(pcre2_code* c) const noexcept { pcre2_code_free(c); }
  };
  std::string pattern_;
  bool literal_ = false;
  std::unique_ptr<pcre2_code, CodeFree> code_;
  bool jit_ = false;
};

/// One split step: a pattern and what to do with its matches.
struct SplitStep {
  Regex regex;
  SplitBehavior behavior = SplitBehavior::isolated;
};

/// A sequence of split steps; `split` turns text into pieces (views into the text).
class PreTokenizer {
 public:
  PreTokenizer() = default;
  explicit PreTokenizer(std::vector<SplitStep> steps) : steps_(std::move(steps)) {}

  void add(SplitStep step) { steps_.push_back(std::move(step)); }
  [[nodiscard]] const std::vector<SplitStep>& steps() const noexcept { return steps_; }

  /// Appends the pieces of `text` to `out` (no step: the whole text is one piece). `scratch` holds the
  /// intermediate levels and is reused between calls to avoid allocation.
  void split(std::string_view text, std::vector<std::string_view>& out, std::vector<std::string_view>& scratch) const {
    if (text.empty()) return;
    if (steps_.empty()) {
      out.push_back(text);
      return;
    }
    if (steps_.size() == 1) {
      apply(steps_[0], text, out);
      return;
    }
    scratch.clear();
    apply(steps_[0], text, scratch);
    std::size_t begin = 0;  // the current level's pieces are scratch[begin, end)
    for (std::size_t i = 1; i < steps_.size(); ++i) {
      const std::size_t end = scratch.size();
      const bool last = i + 1 == steps_.size();
      for (std::size_t p = begin; p < end; ++p) {
        const std::string_view piece = scratch[p];  // copy: scratch may grow below
        apply(steps_[i], piece, last ? out : scratch);
      }
      begin = end;
    }
  }

  /// Convenience form returning a fresh vector.
  [[nodiscard]] std::vector<std::string_view> split(std::string_view text) const {
    std::vector<std::string_view> out;
    std::vector<std::string_view> scratch;
    split(text, out, scratch);
    return out;
  }

 private:
  static void apply(const SplitStep& step, std::string_view piece, std::vector<std::string_view>& out) {
    std::size_t last = 0;                 // end of the previous match
    std::size_t pending_begin = 0;        // start of a piece still open (merged_with_next / contiguous)
    bool pending = false;
    auto emit = [&](std::size_t b, std::size_t e) {
      if (e > b) out.push_back(piece.substr(b, e - b));
    };
    step.regex.for_each_match(piece, [&](std::size_t b, std::size_t e) {
      switch (step.behavior) {
        case SplitBehavior::isolated:
          emit(last, b);
          emit(b, e);
          break;
        case SplitBehavior::removed:
          emit(last, b);
          break;
        case SplitBehavior::merged_with_previous:  // the gap before the match, if any, takes it
          emit(last, e);
          break;
        case SplitBehavior::merged_with_next:
          if (pending) {
            emit(pending_begin, b);  // the open match plus the gap up to this match
          } else {
            emit(last, b);
          }
          pending = true;
          pending_begin = b;
          break;
        case SplitBehavior::contiguous:
          if (!pending || b != last) {  // otherwise the match extends the open run
            if (pending) emit(pending_begin, last);
            emit(last, b);
            pending = true;
            pending_begin = b;
          }
          break;
      }
      last = e;
    });
    switch (step.behavior) {
      case SplitBehavior::merged_with_next:
        emit(pending ? pending_begin : last, piece.size());
        break;
      case SplitBehavior::contiguous:
        if (pending) emit(pending_begin, last);
        emit(last, piece.size());
        break;
      default:
        emit(last, piece.size());
    }
  }

  std::vector<SplitStep> steps_;
};

/// The pre-tokenizer of a named family: "gpt2", "smollm", "llama3" (alias "llama-bpe", the GGUF name)
/// or "qwen2". Throws kaizen::Error naming an unknown family.
[[nodiscard]] inline PreTokenizer family_pretokenizer(std::string_view family) {
  PreTokenizer pre;
  const std::string what = std::string("kaizen::tokenizers::family_pretokenizer(\"") + std::string(family) + "\")";
  if (family == "gpt2") {
    pre.add({Regex(kGpt2Pattern, what), SplitBehavior::isolated});
  } else if (family == "smollm") {
    pre.add({Regex(R"(\p{N})", what), SplitBehavior::isolated});
    pre.add({Regex(kGpt2Pattern, what), SplitBehavior::isolated});
  } else if (family == "llama3" || family == "llama-bpe") {
    pre.add({Regex(kLlama3Pattern, what), SplitBehavior::isolated});
  } else if (family == "qwen2") {
    pre.add({Regex(kQwen2Pattern, what), SplitBehavior::isolated});
  } else {
    fail("kaizen::tokenizers::family_pretokenizer: unknown pre-tokenizer \"", family,
         "\"; supported: gpt2, smollm, llama3 (llama-bpe), qwen2");
  }
  return pre;
}

}  // namespace kaizen::tokenizers
