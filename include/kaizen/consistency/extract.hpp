// kaizen/consistency/extract.hpp - pull a final answer out of a model's text and put it in a
// canonical form, so answers from different samples can be compared (votes, verifiers, maj@k).
//
// Extractors (each returns std::nullopt when nothing parses; none throws, none allocates more than
// O(|text|), all run in time linear in |text|, on arbitrary bytes):
//   extract_boxed        the content of the last complete `\boxed{...}` / `\fbox{...}`, braces nested
//                        to any depth; `\{` and `\}` are literal braces, not structure.
//   extract_last_number  the last number in the text: optional sign, digits with optional thousands
//                        separators (`1,234,567`: groups of exactly three), optional decimal part,
//                        optional `/denominator`, or `\frac{a}{b}` (also `\dfrac`, `\tfrac`).
//   extract_choice       a multiple-choice letter: the last `(X)`, else the last standalone X after
//                        the last word "answer", else a text that is only `X`, `X.` or `X)`.
//   extract_answer       a policy over the above (boxed, then last number, by default) or a
//                        user-supplied extractor, followed by normalize_answer.
//
// Normalisation (normalize_answer): trim; strip enclosing `$...$`; unwrap a whole-answer `\text{}`,
// `\textbf{}`, `\mathrm{}`, `\mathbf{}`; drop `\left`, `\right`, thin spaces (`\,` `\!` `\;` `\:`) and all
// whitespace; drop trailing '.'s; then, when what is left is a number in any form above, write it
// canonically: the exact rational value in lowest terms, as an integer ("1,000" -> "1000"), as a
// terminating decimal when the denominator divides a power of ten ("1/2", "0.50", "\frac{2}{4}" ->
// "0.5"), else as "p/q" ("2/6" -> "1/3"). Numbers too long for exact 64-bit arithmetic keep a
// textual canonical form (separators and redundant zeros removed).
//
// References: Wang et al., "Self-Consistency Improves Chain of Thought Reasoning in Language Models"
// (2022, arXiv 2203.11171) compare parsed final answers; Hendrycks et al., MATH (2021,
// arXiv 2103.03874) introduced the `\boxed{}` answer convention.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kaizen::consistency {

namespace detail {

[[nodiscard]] constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
[[nodiscard]] constexpr bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
[[nodiscard]] constexpr bool is_alnum(char c) noexcept { return is_digit(c) || is_alpha(c); }
[[nodiscard]] constexpr bool is_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
[[nodiscard]] constexpr char to_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

[[nodiscard]] inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

/// A number as written: sign, integer digits (separators removed), fraction digits, and an optional
/// denominator in the same form. `end` is one past its last character in the scanned text.
struct NumberSpan {
  bool negative = false;
  std::string int_digits;
  std::string frac_digits;
  bool has_denominator = false;
  std::string den_int_digits;
  std::string den_frac_digits;
  std::size_t begin = 0;
  std::size_t end = 0;
};

/// Scans an unsigned decimal at `pos`: digits with optional ",ddd" groups, optional ".digits".
/// Returns false when no digit is there. Leaves `pos` after the decimal.
inline bool scan_decimal(std::string_view s, std::size_t& pos, std::string& int_digits, std::string& frac_digits) {
  std::size_t p = pos;
  int_digits.clear();
  frac_digits.clear();
  std::size_t lead = 0;
  while (p < s.size() && is_digit(s[p])) {
    int_digits.push_back(s[p++]);
    ++lead;
  }
  // Thousands separators only after a 1-3 digit head and only in groups of exactly three digits.
  if (lead >= 1 && lead <= 3) {
    while (p + 3 < s.size() && s[p] == ',' && is_digit(s[p + 1]) && is_digit(s[p + 2]) && is_digit(s[p + 3]) &&
           (p + 4 >= s.size() || !is_digit(s[p + 4]))) {
      int_digits.append(s.substr(p + 1, 3));
      p += 4;
    }
  }
  if (p < s.size() && s[p] == '.' && p + 1 < s.size() && is_digit(s[p + 1])) {
    ++p;
    while (p < s.size() && is_digit(s[p])) frac_digits.push_back(s[p++]);
  }
  if (int_digits.empty() && frac_digits.empty()) return false;
  pos = p;
  return true;
}

/// Scans a number starting exactly at `pos` (a sign, a digit, a '.' before a digit, or `\frac`).
inline std::optional<NumberSpan> scan_number_at(std::string_view s, std::size_t pos) {
  NumberSpan n;
  n.begin = pos;
  std::size_t p = pos;
  if (p < s.size() && (s[p] == '-' || s[p] == '+')) {
    n.negative = s[p] == '-';
    ++p;
  }
  for (std::string_view macro : {std::string_view("\\frac"), std::string_view("\\dfrac"), std::string_view("\\tfrac")}) {
    if (s.substr(p, macro.size()) != macro) continue;
    std::size_t q = p + macro.size();
    if (q >= s.size() || s[q] != '{') return std::nullopt;
    ++q;
    bool num_negative = false;
    if (q < s.size() && s[q] == '-') {
      num_negative = true;
      ++q;
    }
    if (!scan_decimal(s, q, n.int_digits, n.frac_digits)) return std::nullopt;
    if (q + 1 >= s.size() || s[q] != '}' || s[q + 1] != '{') return std::nullopt;
    q += 2;
    if (!scan_decimal(s, q, n.den_int_digits, n.den_frac_digits)) return std::nullopt;
    if (q >= s.size() || s[q] != '}') return std::nullopt;
    n.has_denominator = true;
    n.negative = n.negative != num_negative;
    n.end = q + 1;
    return n;
  }
  if (!scan_decimal(s, p, n.int_digits, n.frac_digits)) return std::nullopt;
  if (p + 1 < s.size() && s[p] == '/' && (is_digit(s[p + 1]) || s[p + 1] == '.')) {
    std::size_t q = p + 1;
    if (scan_decimal(s, q, n.den_int_digits, n.den_frac_digits)) {
      n.has_denominator = true;
      p = q;
    }
  }
  n.end = p;
  return n;
}

[[nodiscard]] inline std::string strip_leading_zeros(std::string digits) {
  const auto first = digits.find_first_not_of('0');
  return first == std::string::npos ? std::string("0") : digits.substr(first);
}

[[nodiscard]] inline std::string strip_trailing_zeros(std::string digits) {
  const auto last = digits.find_last_not_of('0');
  return last == std::string::npos ? std::string() : digits.substr(0, last + 1);
}

/// Exact value of int_digits.frac_digits as num / 10^k; false on 64-bit overflow.
inline bool decimal_to_rational(const std::string& int_digits, const std::string& frac_digits, std::int64_t& num,
                                std::int64_t& den) {
  num = 0;
  den = 1;
  const std::string digits = int_digits + frac_digits;
  for (char c : digits) {
    if (__builtin_mul_overflow(num, std::int64_t{10}, &num)) return false;
    if (__builtin_add_overflow(num, std::int64_t{c - '0'}, &num)) return false;
  }
  for (std::size_t i = 0; i < frac_digits.size(); ++i)
    if (__builtin_mul_overflow(den, std::int64_t{10}, &den)) return false;
  return true;
}

/// Canonical text of num/den (den > 0, any num): integer, terminating decimal, or "p/q".
[[nodiscard]] inline std::string format_rational(bool negative, std::int64_t num, std::int64_t den) {
  const std::int64_t g = std::gcd(num, den);
  num /= g;
  den /= g;
  std::string sign = (negative && num != 0) ? "-" : "";
  if (den == 1) return sign + std::to_string(num);
  std::int64_t rest = den;
  int twos = 0, fives = 0;
  while (rest % 2 == 0) rest /= 2, ++twos;
  while (rest % 5 == 0) rest /= 5, ++fives;
  if (rest == 1) {
    // num/den = num * 2^(k-twos) * 5^(k-fives) / 10^k with k = max(twos, fives).
    const int k = twos > fives ? twos : fives;
    std::int64_t scaled = num;
    bool overflow = false;
    for (int i = twos; i < k; ++i) overflow = overflow || __builtin_mul_overflow(scaled, std::int64_t{2}, &scaled);
    for (int i = fives; i < k; ++i) overflow = overflow || __builtin_mul_overflow(scaled, std::int64_t{5}, &scaled);
    if (!overflow) {
      std::string digits = std::to_string(scaled);
      if (digits.size() <= static_cast<std::size_t>(k)) digits.insert(0, static_cast<std::size_t>(k) + 1 - digits.size(), '0');
      const std::size_t point = digits.size() - static_cast<std::size_t>(k);
      return sign + digits.substr(0, point) + "." + digits.substr(point);
    }
  }
  return sign + std::to_string(num) + "/" + std::to_string(den);
}

/// Textual canonical form of a decimal too long for exact arithmetic.
[[nodiscard]] inline std::string format_decimal_text(const std::string& int_digits, const std::string& frac_digits) {
  std::string out = strip_leading_zeros(int_digits);
  const std::string frac = strip_trailing_zeros(frac_digits);
  if (!frac.empty()) out += "." + frac;
  return out;
}

/// Canonical text of a scanned number; std::nullopt for a zero denominator.
[[nodiscard]] inline std::optional<std::string> canonical(const NumberSpan& n) {
  std::int64_t num = 0, den = 1;
  const bool exact = decimal_to_rational(n.int_digits, n.frac_digits, num, den);
  if (!n.has_denominator) {
    if (exact) return format_rational(n.negative, num, den);
    const std::string text = format_decimal_text(n.int_digits, n.frac_digits);
    return (n.negative && text != "0") ? "-" + text : text;
  }
  std::int64_t dnum = 0, dden = 1;
  const bool dexact = decimal_to_rational(n.den_int_digits, n.den_frac_digits, dnum, dden);
  if (exact && dexact) {
    if (dnum == 0) return std::nullopt;
    // (num/den) / (dnum/dden) = (num*dden) / (den*dnum)
    std::int64_t p = 0, q = 0;
    if (!__builtin_mul_overflow(num, dden, &p) && !__builtin_mul_overflow(den, dnum, &q)) return format_rational(n.negative, p, q);
  }
  const std::string top = format_decimal_text(n.int_digits, n.frac_digits);
  const std::string bottom = format_decimal_text(n.den_int_digits, n.den_frac_digits);
  if (bottom == "0") return std::nullopt;
  return (n.negative && top != "0" ? "-" : "") + top + "/" + bottom;
}

/// Where the last number of `text` starts and ends, and its canonical text.
[[nodiscard]] inline std::optional<std::pair<NumberSpan, std::string>> last_number(std::string_view s) {
  std::optional<std::pair<NumberSpan, std::string>> best;
  std::size_t p = 0;
  while (p < s.size()) {
    const char c = s[p];
    const bool starts_digit = is_digit(c) || (c == '.' && p + 1 < s.size() && is_digit(s[p + 1]));
    const bool starts_frac = c == '\\';
    // A sign only when it cannot be a binary minus: not after a letter, digit or closing bracket.
    const bool starts_sign = (c == '-' || c == '+') && (p == 0 || (!is_alnum(s[p - 1]) && s[p - 1] != ')' &&
                                                                   s[p - 1] != ']' && s[p - 1] != '}'));
    if (starts_digit || starts_frac || starts_sign) {
      if (auto n = scan_number_at(s, p); n && n->end > p) {
        if (auto text = canonical(*n)) best = std::make_pair(*n, std::move(*text));
        p = n->end;
        continue;
      }
    }
    if (is_alnum(c)) {
      while (p < s.size() && is_alnum(s[p])) ++p;  // digits inside a word ("x2", "v3") are no number
      continue;
    }
    ++p;
  }
  return best;
}

/// A whole string that is exactly one number (after trimming) in canonical form.
[[nodiscard]] inline std::optional<std::string> whole_number(std::string_view s) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  auto n = scan_number_at(s, 0);
  if (!n || n->end != s.size()) return std::nullopt;
  return canonical(*n);
}

/// For each '{' at i, match[i] is the index of its closing '}' (or npos). Escaped braces are skipped.
[[nodiscard]] inline std::vector<std::size_t> match_braces(std::string_view s) {
  std::vector<std::size_t> match(s.size(), std::string_view::npos);
  std::vector<std::size_t> open;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;  // "\{" and "\}" are literal; "\\" is an escaped backslash
      continue;
    }
    if (s[i] == '{') {
      open.push_back(i);
    } else if (s[i] == '}' && !open.empty()) {
      match[open.back()] = i;
      open.pop_back();
    }
  }
  return match;
}

[[nodiscard]] inline bool iequals_prefix(std::string_view s, std::size_t pos, std::string_view word) noexcept {
  if (pos + word.size() > s.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i)
    if (to_lower(s[pos + i]) != word[i]) return false;
  return true;
}

}  // namespace detail

/// The content of the last complete `\boxed{...}` (or `\fbox{...}`) in `text`, trimmed; nested
/// braces are matched, `\{`/`\}` are literal. std::nullopt when there is none, or it is unbalanced
/// (an earlier complete one is then returned) or empty.
[[nodiscard]] inline std::optional<std::string> extract_boxed(std::string_view text) {
  const auto match = detail::match_braces(text);
  std::optional<std::string> best;
  std::size_t best_pos = 0;
  for (std::string_view macro : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
    for (std::size_t pos = text.find(macro); pos != std::string_view::npos; pos = text.find(macro, pos + 1)) {
      std::size_t open = pos + macro.size();
      while (open < text.size() && detail::is_space(text[open])) ++open;
      if (open >= text.size() || text[open] != '{' || match[open] == std::string_view::npos) continue;
      const std::string_view inner = detail::trim(text.substr(open + 1, match[open] - open - 1));
      if (inner.empty() || (best && pos < best_pos)) continue;
      best = std::string(inner);
      best_pos = pos;
    }
  }
  return best;
}

/// The last number in `text` in canonical form (see the header comment): "The total is 1,234."
/// -> "1234"; "x = \frac{6}{8}" -> "0.75"; "about -2.50 m" -> "-2.5". std::nullopt when none.
[[nodiscard]] inline std::optional<std::string> extract_last_number(std::string_view text) {
  auto found = detail::last_number(text);
  if (!found) return std::nullopt;
  return std::move(found->second);
}

/// A choice letter from `letters` (default "ABCDE"): the last `(X)`; else the last standalone X
/// after the last occurrence of the word "answer" (any case); else a text that is only "X", "X." or
/// "X)". Lower-case letters in `text` do not count (a standalone "a" is usually an article).
[[nodiscard]] inline std::optional<char> extract_choice(std::string_view text, std::string_view letters = "ABCDE") {
  auto allowed = [&](char c) { return detail::is_alpha(c) && letters.find(c) != std::string_view::npos; };
  std::optional<char> parenthesised;
  for (std::size_t i = 0; i + 2 < text.size(); ++i)
    if (text[i] == '(' && allowed(text[i + 1]) && text[i + 2] == ')') parenthesised = text[i + 1];
  if (parenthesised) return parenthesised;
  std::size_t answer_at = std::string_view::npos;
  for (std::size_t i = 0; i + 6 <= text.size(); ++i)
    if (detail::iequals_prefix(text, i, "answer")) answer_at = i + 6;
  if (answer_at != std::string_view::npos) {
    std::optional<char> last;
    for (std::size_t i = answer_at; i < text.size(); ++i) {
      const bool left_ok = i == 0 || !detail::is_alnum(text[i - 1]);
      const bool right_ok = i + 1 == text.size() || !detail::is_alnum(text[i + 1]);
      if (allowed(text[i]) && left_ok && right_ok) last = text[i];
    }
    if (last) return last;
  }
  std::string_view t = detail::trim(text);
  if (!t.empty() && (t.back() == '.' || t.back() == ')')) t.remove_suffix(1);
  if (t.size() == 1 && allowed(t[0])) return t[0];
  return std::nullopt;
}

/// The canonical form of an answer (see the header comment): "$\text{1,000}$ " -> "1000",
/// "\dfrac{1}{2}" -> "0.5", "x + 1." -> "x+1". Never throws; an all-whitespace answer gives "".
[[nodiscard]] inline std::string normalize_answer(std::string_view answer) {
  std::string_view s = detail::trim(answer);
  while (s.size() >= 2 && s.front() == '$' && s.back() == '$') s = detail::trim(s.substr(1, s.size() - 2));
  // Unwrap whole-answer \text{...} layers in one pass over a brace table of the outer string.
  const auto match = detail::match_braces(s);
  std::size_t lo = 0, hi = s.size();
  for (bool changed = true; changed;) {
    changed = false;
    for (std::string_view macro : {std::string_view("\\text"), std::string_view("\\textbf"), std::string_view("\\mathrm"),
                                   std::string_view("\\mathbf")}) {
      const std::size_t open = lo + macro.size();
      if (hi < open + 2 || s.substr(lo, macro.size()) != macro || s[open] != '{' || match[open] != hi - 1) continue;
      lo = open + 1;
      hi -= 1;
      while (lo < hi && detail::is_space(s[lo])) ++lo;
      while (hi > lo && detail::is_space(s[hi - 1])) --hi;
      changed = true;
    }
  }
  s = s.substr(lo, hi - lo);
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (detail::is_space(s[i])) continue;
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char next = s[i + 1];
      if (next == ',' || next == '!' || next == ';' || next == ':' || next == ' ') {
        ++i;
        continue;
      }
      if (s.substr(i, 5) == "\\left" && !(i + 5 < s.size() && detail::is_alpha(s[i + 5]))) {
        i += 4;
        continue;
      }
      if (s.substr(i, 6) == "\\right" && !(i + 6 < s.size() && detail::is_alpha(s[i + 6]))) {
        i += 5;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  while (!out.empty() && out.back() == '.') out.pop_back();
  if (auto number = detail::whole_number(out)) return *number;
  return out;
}

/// Which extractor extract_answer runs.
enum class AnswerFormat : std::uint8_t {
  boxed_then_number,  ///< the last \boxed{} if any, else the last number (the default for math)
  boxed,              ///< only \boxed{}
  last_number,        ///< only the last number
  choice,             ///< only a choice letter (see extract_choice)
};

/// Options of extract_answer.
struct ExtractOptions {
  AnswerFormat format = AnswerFormat::boxed_then_number;
  std::string_view choice_letters = "ABCDE";  ///< letters extract_choice accepts
};

/// A user-supplied extractor: `f(std::string_view text) -> std::optional<std::string>`.
template <class F>
concept AnswerExtractor = requires(F& f, std::string_view text) {
  { f(text) } -> std::convertible_to<std::optional<std::string>>;
};

/// The normalised final answer of `text` under `options.format`; std::nullopt when nothing parses
/// (or what parses normalises to an empty string).
[[nodiscard]] inline std::optional<std::string> extract_answer(std::string_view text, const ExtractOptions& options = {}) {
  std::optional<std::string> raw;
  switch (options.format) {
    case AnswerFormat::boxed_then_number:
      raw = extract_boxed(text);
      if (!raw) raw = extract_last_number(text);
      break;
    case AnswerFormat::boxed: raw = extract_boxed(text); break;
    case AnswerFormat::last_number: raw = extract_last_number(text); break;
    case AnswerFormat::choice:
      if (auto c = extract_choice(text, options.choice_letters)) raw = std::string(1, *c);
      break;
  }
  if (!raw) return std::nullopt;
  std::string normal = normalize_answer(*raw);
  if (normal.empty()) return std::nullopt;
  return normal;
}

/// The normalised answer a user extractor finds in `text`; std::nullopt when it finds none.
template <AnswerExtractor F>
[[nodiscard]] std::optional<std::string> extract_answer(std::string_view text, F&& extractor) {
  std::optional<std::string> raw = extractor(text);
  if (!raw) return std::nullopt;
  std::string normal = normalize_answer(*raw);
  if (normal.empty()) return std::nullopt;
  return normal;
}

}  // namespace kaizen::consistency
