// kaizen/reward/math_extract.hpp - find the final answer of a model's math solution, or the reason
// there is none a verifier may trust. Builds on consistency/extract.hpp (one implementation of
// boxes, answer phrases, numbers and choice letters).
//
// Rules, in order (docs/rewards.md, "Math verifier"):
//   1. Think blocks: text after the last `</think>` is searched first; when it holds no answer the
//      whole text is searched (`think_fallback`). An opened `<think>` that never closes means the
//      output stopped mid-thought: Failure::truncated (`reject_unclosed_think`).
//   2. `<answer>...</answer>`: the last complete pair narrows the search to its content.
//   3. Boxes (`\boxed`, `\fbox`, `\framebox`): the last complete one. When boxes in the searched text
//      normalise (consistency::normalize_answer) to different answers: Failure::conflicting
//      (`reject_conflicting`). An opened `\boxed{` that never closes after the last complete
//      box: Failure::truncated.
//   4. Phrases: the rest of the sentence after the last "answer is" / "answer:" (a
//      clause after ", not" / ", but" / ", which" / ", because" / ", since" is cut, and so are
//      trailing '.'s; a sentence whose rest hedges, "12, but it could also be 14.", is a hedge).
//   5. GSM8K: the rest of the line after the last `####`.
//   6. Fallback (`last_number_fallback`): the last number of the last non-empty line, only when the
//      text ends like a finished sentence ('.', '!', '$', a closing bracket or a digit); a text that
//      stops mid-sentence ("... and the next step") is Failure::truncated.
// The answer text is then checked for hedges (the words "or", "either", "maybe", "possibly", "not
// sure", outside `\text{}` too): Failure::hedge (`reject_hedges`); so is the rest of the sentence
// after the last box (those words and "also possible", "also be", "perhaps", "might be", "could
// also"; not "possible" alone: "the smallest possible value"), as in
// "\boxed{3}, though 4 is also possible."
// Linear in |text|: every step is one or two passes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <kaizen/consistency/extract.hpp>

namespace kaizen::reward {

enum class MathSource : std::uint8_t { none, boxed, answer_tag, phrase, gsm8k, last_number };
enum class ExtractFailure : std::uint8_t { none, no_answer, hedge, conflicting, truncated };

[[nodiscard]] constexpr std::string_view to_string(ExtractFailure f) noexcept {
  switch (f) {
    case ExtractFailure::none: return "none";
    case ExtractFailure::no_answer: return "no answer";
    case ExtractFailure::hedge: return "hedge";
    case ExtractFailure::conflicting: return "conflicting answers";
    case ExtractFailure::truncated: return "truncated";
  }
  return "?";
}

struct MathExtractOptions {
  bool think_fallback = true;         ///< search the whole text when nothing follows `</think>`
  bool reject_unclosed_think = true;  ///< `<think>` without `</think>`: truncated
  bool reject_conflicting = true;     ///< boxes with different answers: rejected
  bool reject_hedges = true;          ///< "2 or 3": rejected
  bool last_number_fallback = true;   ///< rule 6
};

struct MathExtraction {
  std::optional<std::string> answer;  ///< the raw answer text (not normalised)
  MathSource source = MathSource::none;
  ExtractFailure failure = ExtractFailure::no_answer;
};

namespace math_detail {

[[nodiscard]] inline std::size_t rfind_ci(std::string_view s, std::string_view word) {
  if (word.size() > s.size()) return std::string_view::npos;
  for (std::size_t i = s.size() - word.size() + 1; i-- > 0;)
    if (consistency::detail::iequals_prefix(s, i, word)) return i;
  return std::string_view::npos;
}

/// Whether `s` holds a hedge word (whole word, any case).
[[nodiscard]] inline bool has_hedge(std::string_view s) {
  for (std::string_view word : {"or", "either", "maybe", "possibly", "not sure"}) {
    for (std::size_t i = 0; i + word.size() <= s.size(); ++i) {
      if (!consistency::detail::iequals_prefix(s, i, word)) continue;
      const bool left = i == 0 || !consistency::detail::is_alpha(s[i - 1]) || (i >= 5 && s.substr(i - 5, 5) == "\\text");
      const bool right = i + word.size() == s.size() || !consistency::detail::is_alpha(s[i + word.size()]);
      if (left && right) return true;
    }
  }
  return false;
}

/// A stack or list that keeps its first N elements inline (no allocation for the usual few).
template <class T, std::size_t N>
class InlineList {
 public:
  void push_back(const T& x) {
    if (size_ < N) inline_[size_] = x;
    else if (size_ - N < heap_.size()) heap_[size_ - N] = x;
    else heap_.push_back(x);
    ++size_;
  }
  void pop_back() noexcept { --size_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] T& operator[](std::size_t k) { return k < N ? inline_[k] : heap_[k - N]; }
  [[nodiscard]] T& back() { return (*this)[size_ - 1]; }

 private:
  T inline_[N] = {};
  std::vector<T> heap_;
  std::size_t size_ = 0;
};

/// All complete boxes that are not inside another box, in order. Linear and without a table over
/// the text: the box macros are found first, then one pass over the braces closes them, pairing as
/// consistency::detail::match_braces does ('\\' escapes the next byte, a '}' closes the latest
/// open '{'; a box's '{' follows a letter or a space, so it is never an escaped byte).
[[nodiscard]] inline std::vector<std::string_view> outer_boxes(std::string_view text, bool& unclosed_after) {
  std::vector<std::string_view> out;
  unclosed_after = false;
  struct Box {
    std::size_t pos = 0, open = 0, close = std::string_view::npos;
  };
  InlineList<Box, 8> boxes;
  for (std::size_t pos = text.find('\\'); pos != std::string_view::npos; pos = text.find('\\', pos + 1)) {
    std::size_t width = 0;
    for (std::string_view macro : {std::string_view("\\boxed"), std::string_view("\\fbox"), std::string_view("\\framebox")})
      if (text.substr(pos, macro.size()) == macro) width = macro.size();
    if (width == 0) continue;
    std::size_t open = pos + width;
    while (open < text.size() && consistency::detail::is_space(text[open])) ++open;
    if (open >= text.size() || text[open] != '{') continue;
    boxes.push_back(Box{pos, open, std::string_view::npos});
  }
  if (boxes.size() == 0) return out;
  // Brace depth over the whole text (the size of match_braces' stack); an open box waits for the
  // '}' that brings the depth back to what it was before its '{'.
  struct Waiting {
    std::size_t box = 0, depth = 0;
  };
  InlineList<Waiting, 8> waiting;
  std::size_t next = 0, depth = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\') {
      ++i;
      continue;
    }
    if (c == '{') {
      if (next < boxes.size() && boxes[next].open == i) waiting.push_back(Waiting{next++, depth});
      ++depth;
    } else if (c == '}' && depth > 0) {
      --depth;
      if (waiting.size() > 0 && waiting.back().depth == depth) {
        boxes[waiting.back().box].close = i;
        waiting.pop_back();
      }
    }
  }
  std::size_t covered = 0;  // end of the last accepted box: boxes before it are nested
  std::size_t last_end = 0;
  for (std::size_t k = 0; k < boxes.size(); ++k) {
    const Box& box = boxes[k];
    if (box.close == std::string_view::npos) {
      if (box.pos >= last_end) unclosed_after = true;
      continue;
    }
    if (box.pos < covered) continue;
    const std::string_view inner = consistency::detail::trim_latex(text.substr(box.open + 1, box.close - box.open - 1));
    covered = box.close;
    last_end = box.close + 1;
    unclosed_after = false;
    if (!inner.empty()) out.push_back(inner);
  }
  return out;
}

/// Whether text around an answer (not the answer itself) hedges: the hedge words above and
/// "also possible", "also be", "perhaps", "might be", "could also" (whole words, any case).
[[nodiscard]] inline bool has_context_hedge(std::string_view tail) {
  if (has_hedge(tail)) return true;
  for (std::string_view word : {"also possible", "also be", "perhaps", "might be", "could also"}) {
    for (std::size_t k = 0; k + word.size() <= tail.size(); ++k) {
      if (!consistency::detail::iequals_prefix(tail, k, word)) continue;
      const bool left = k == 0 || !consistency::detail::is_alpha(tail[k - 1]);
      const bool right = k + word.size() == tail.size() || !consistency::detail::is_alpha(tail[k + word.size()]);
      if (left && right) return true;
    }
  }
  return false;
}

/// Whether the rest of the sentence after the box whose content is `inner` (a view into `text`)
/// hedges: "\boxed{3}, though 4 is also possible." The tail runs from the box's closing brace to
/// the first '.', '!' or '?' followed by a space or the end, or a newline.
[[nodiscard]] inline bool has_hedge_after(std::string_view text, std::string_view inner) {
  std::size_t i = static_cast<std::size_t>(inner.data() - text.data()) + inner.size();
  std::size_t end = i;
  for (; end < text.size(); ++end) {
    const char c = text[end];
    if (c == '\n') break;
    if ((c == '.' || c == '!' || c == '?') && (end + 1 == text.size() || consistency::detail::is_space(text[end + 1]))) break;
  }
  return has_context_hedge(text.substr(i, end - i));
}

/// Cuts a trailing clause: ", not 9", ", but ...", ", which ...", ", because ...", ", since ...".
[[nodiscard]] inline std::string_view cut_clause(std::string_view phrase) {
  while (!phrase.empty() && (phrase.front() == '*' || phrase.front() == ':' || consistency::detail::is_space(phrase.front())))
    phrase.remove_prefix(1);  // markdown "**Answer:** 12"
  while (!phrase.empty() && phrase.back() == '*') phrase.remove_suffix(1);
  for (std::string_view clause : {", not", ", but", ", which", ", because", ", since", " not ", " because "}) {
    const auto at = phrase.find(clause);
    if (at != std::string_view::npos) phrase = phrase.substr(0, at);
  }
  phrase = consistency::detail::trim_latex(phrase);
  while (!phrase.empty() && phrase.back() == '.') phrase.remove_suffix(1);  // "is $11.50." ends a sentence
  return consistency::detail::trim_latex(phrase);
}

[[nodiscard]] inline MathExtraction extract_region(std::string_view text, const MathExtractOptions& options) {
  MathExtraction out;
  // 2. <answer> tags
  if (const auto close = text.rfind("</answer>"); close != std::string_view::npos) {
    const auto open = text.rfind("<answer>", close);
    if (open != std::string_view::npos) {
      const std::string_view inner = text.substr(open + 8, close - open - 8);
      bool unclosed = false;
      const auto boxes = outer_boxes(inner, unclosed);
      const std::string_view content = consistency::detail::trim_latex(boxes.empty() ? inner : boxes.back());
      if (!content.empty()) {
        out.answer = std::string(content);
        out.source = MathSource::answer_tag;
        out.failure = ExtractFailure::none;
        return out;
      }
    }
  }
  // 3. boxes
  bool unclosed = false;
  const auto boxes = outer_boxes(text, unclosed);
  if (unclosed) {
    out.failure = ExtractFailure::truncated;
    return out;
  }
  if (!boxes.empty()) {
    if (options.reject_conflicting && boxes.size() > 1) {
      const std::string last = consistency::normalize_answer(boxes.back());
      for (const auto& box : boxes)
        if (consistency::normalize_answer(box) != last) {
          out.failure = ExtractFailure::conflicting;
          return out;
        }
    }
    if (options.reject_hedges && has_hedge_after(text, boxes.back())) {
      out.failure = ExtractFailure::hedge;
      return out;
    }
    out.answer = std::string(boxes.back());
    out.source = MathSource::boxed;
    out.failure = ExtractFailure::none;
    return out;
  }
  // 4. answer phrase
  if (auto phrase = consistency::extract_answer_phrase(text)) {
    const std::string_view cut = cut_clause(*phrase);
    // The cut clause may hedge: "12, but it could also be 14."
    if (!cut.empty() && options.reject_hedges && has_context_hedge(*phrase)) {
      out.failure = ExtractFailure::hedge;
      return out;
    }
    if (!cut.empty()) {
      out.answer = std::string(cut);
      out.source = MathSource::phrase;
      out.failure = ExtractFailure::none;
      return out;
    }
  }
  // 5. GSM8K
  if (const auto hashes = text.rfind("####"); hashes != std::string_view::npos) {
    std::string_view rest = text.substr(hashes + 4);
    rest = rest.substr(0, rest.find('\n'));
    rest = consistency::detail::trim_latex(rest);
    if (!rest.empty()) {
      out.answer = std::string(rest);
      out.source = MathSource::gsm8k;
      out.failure = ExtractFailure::none;
      return out;
    }
  }
  // 6. last number of the last non-empty line
  if (options.last_number_fallback) {
    std::string_view rest = consistency::detail::trim(text);
    const auto newline = rest.rfind('\n');
    const std::string_view line = newline == std::string_view::npos ? rest : rest.substr(newline + 1);
    // Only a text that ends like a finished sentence: "... and the next step" was cut off.
    const char last = rest.empty() ? ' ' : rest.back();
    const bool finished = last == '.' || last == '!' || last == '$' || last == ')' || last == ']' || last == '}' ||
                          consistency::detail::is_digit(last);
    if (!finished) {
      out.failure = rest.empty() ? ExtractFailure::no_answer : ExtractFailure::truncated;
      return out;
    }
    if (auto number = consistency::detail::last_number(line)) {
      if (options.reject_hedges && has_hedge(line)) {
        out.failure = ExtractFailure::hedge;
        return out;
      }
      out.answer = std::string(line.substr(number->first.begin, number->first.end - number->first.begin));
      out.source = MathSource::last_number;
      out.failure = ExtractFailure::none;
      return out;
    }
  }
  return out;
}

}  // namespace math_detail

/// The final answer of `text` (see the header comment), or the reason there is none.
[[nodiscard]] inline MathExtraction extract_math_answer(std::string_view text, const MathExtractOptions& options = {}) {
  MathExtraction out;
  const auto think_close = text.rfind("</think>");
  if (think_close == std::string_view::npos && options.reject_unclosed_think && text.find("<think>") != std::string_view::npos) {
    out.failure = ExtractFailure::truncated;
    return out;
  }
  if (think_close != std::string_view::npos) {
    out = math_detail::extract_region(text.substr(think_close + 8), options);
    if (out.failure == ExtractFailure::no_answer && options.think_fallback) out = math_detail::extract_region(text, options);
  } else {
    out = math_detail::extract_region(text, options);
  }
  if (out.answer && options.reject_hedges && math_detail::has_hedge(*out.answer)) {
    out.answer.reset();
    out.failure = ExtractFailure::hedge;
  }
  return out;
}

}  // namespace kaizen::reward
