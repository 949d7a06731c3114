// kaizen/consistency/extract.hpp - pull a final answer out of a model's text and put it in a
// canonical form, so answers from different samples can be compared (votes, verifiers, maj@k).
//
// Extractors (each returns std::nullopt when nothing parses; none throws, none allocates more than
// O(|text|), all run in time linear in |text|, on arbitrary bytes):
//   extract_boxed         the content of the last complete `\boxed{...}` / `\fbox{...}` /
//                         `\framebox{...}`, braces nested to any depth; `\{` and `\}` are literal
//                         braces, not structure.
//   extract_answer_phrase the rest of the sentence after the last "answer is" / "answer:".
//   extract_last_number   the last number in the text: optional sign ('-', '+', U+2212), digits
//                         with optional thousands separators (`1,234,567` or `1{,}234`: groups of
//                         exactly three), optional decimal part, optional `/denominator`, or
//                         `\frac{a}{b}` (also `\dfrac`, `\tfrac`, spaces allowed: `\frac {5}{36}`),
//                         or a mixed number `2\tfrac{1}{2}` (= 5/2). It returns nothing rather than
//                         a wrong number: a fraction whose arguments are not numbers, a dotted run
//                         such as `3.0.1`, or a zero denominator clears what was found before it.
//   extract_choice        a multiple-choice letter: the last `(X)`, else the last standalone X after
//                         the last word "answer", else a text that is only `X`, `X.` or `X)`.
//   extract_answer        a policy over the above (boxed, then the first number of the answer
//                         phrase, then the last number, by default) or a user-supplied extractor,
//                         followed by normalize_answer.
//
// Normalisation (normalize_answer), repeated until a pass changes nothing (so it is idempotent):
// peel, in any order, surrounding whitespace, enclosing `$...$`, trailing '.'s and a whole-answer
// `\text{}`, `\textbf{}`, `\mathrm{}`, `\mathbf{}`; drop `\left`, `\right`, LaTeX spaces (`\,` `\!`
// `\;` `\:` `\ `) and all whitespace (an escaped backslash `\\` stays whole); then, when what is left
// is a number in any form above, write it canonically: the exact rational value in lowest terms, as
// an integer ("1,000" -> "1000"), as a terminating decimal when the denominator divides a power of
// ten ("1/2", "0.50", "\frac{2}{4}" -> "0.5"), else as "p/q" ("2/6" -> "1/3"). Numbers too long for
// exact 64-bit arithmetic keep a textual canonical form (separators and redundant zeros removed).
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

/// A number as written: sign, integer digits (separators removed), fraction digits, and an optional
/// denominator in the same form. `end` is one past its last character in the scanned text.
struct NumberSpan {
  bool negative = false;
  std::string int_digits;
  std::string frac_digits;
  bool has_denominator = false;
  std::string den_int_digits;
  std::string den_frac_digits;
  std::string whole_digits;  ///< the whole part of a mixed number (`2\tfrac{1}{2}`), else empty
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
  // A separator is "," or the LaTeX "{,}" (`1{,}250`).
  if (lead >= 1 && lead <= 3) {
    for (;;) {
      const std::size_t width = (s.substr(p, 3) == "{,}") ? 3 : (p < s.size() && s[p] == ',') ? 1 : 0;
      const std::size_t q = p + width;
      if (width == 0 || q + 2 >= s.size() || !is_digit(s[q]) || !is_digit(s[q + 1]) || !is_digit(s[q + 2]) ||
          (q + 3 < s.size() && is_digit(s[q + 3])))
        break;
      int_digits.append(s.substr(q, 3));
      p = q + 3;
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

/// Width of a minus sign at `p`: 1 for '-', 3 for U+2212 MINUS SIGN (UTF-8 E2 88 92), else 0.
[[nodiscard]] inline std::size_t minus_width(std::string_view s, std::size_t p) noexcept {
  if (p < s.size() && s[p] == '-') return 1;
  return s.substr(p, 3) == "\xE2\x88\x92" ? 3 : 0;
}

[[nodiscard]] inline std::size_t skip_spaces(std::string_view s, std::size_t p) noexcept {
  while (p < s.size() && is_space(s[p])) ++p;
  return p;
}

/// Length of `\frac`, `\dfrac` or `\tfrac` at `p` (not a prefix of a longer command), else 0.
[[nodiscard]] inline std::size_t frac_macro_width(std::string_view s, std::size_t p) noexcept {
  for (std::string_view macro : {std::string_view("\\frac"), std::string_view("\\dfrac"), std::string_view("\\tfrac")})
    if (s.substr(p, macro.size()) == macro && !(p + macro.size() < s.size() && is_alpha(s[p + macro.size()])))
      return macro.size();
  return 0;
}

/// Scans `{[-]decimal}{decimal}` (spaces allowed around the parts) at `q`, just after a fraction
/// macro, into `n`; returns one past the closing brace, or npos.
inline std::size_t scan_frac_arguments(std::string_view s, std::size_t q, NumberSpan& n) {
  constexpr auto npos = std::string_view::npos;
  q = skip_spaces(s, q);
  if (q >= s.size() || s[q] != '{') return npos;
  q = skip_spaces(s, q + 1);
  bool num_negative = false;
  if (const auto w = minus_width(s, q); w > 0) {
    num_negative = true;
    q += w;
  }
  if (!scan_decimal(s, q, n.int_digits, n.frac_digits)) return npos;
  q = skip_spaces(s, q);
  if (q >= s.size() || s[q] != '}') return npos;
  q = skip_spaces(s, q + 1);
  if (q >= s.size() || s[q] != '{') return npos;
  q = skip_spaces(s, q + 1);
  if (!scan_decimal(s, q, n.den_int_digits, n.den_frac_digits)) return npos;
  q = skip_spaces(s, q);
  if (q >= s.size() || s[q] != '}') return npos;
  n.has_denominator = true;
  n.negative = n.negative != num_negative;
  return q + 1;
}

/// Scans a number starting exactly at `pos` (a sign, a digit, a '.' before a digit, or `\frac`).
/// A whole number followed by a fraction macro of whole numbers, numerator < denominator, is a
/// mixed number (`2\tfrac{1}{2}` = 5/2).
inline std::optional<NumberSpan> scan_number_at(std::string_view s, std::size_t pos) {
  NumberSpan n;
  n.begin = pos;
  std::size_t p = pos;
  if (const auto w = minus_width(s, p); w > 0) {
    n.negative = true;
    p += w;
  } else if (p < s.size() && s[p] == '+') {
    ++p;
  }
  if (const auto w = frac_macro_width(s, p); w > 0) {
    const auto end = scan_frac_arguments(s, p + w, n);
    if (end == std::string_view::npos) return std::nullopt;
    n.end = end;
    return n;
  }
  if (!scan_decimal(s, p, n.int_digits, n.frac_digits)) return std::nullopt;
  if (p + 1 < s.size() && s[p] == '/' && (is_digit(s[p + 1]) || s[p + 1] == '.')) {
    std::size_t q = p + 1;
    if (scan_decimal(s, q, n.den_int_digits, n.den_frac_digits)) {
      n.has_denominator = true;
      p = q;
    }
  } else if (n.frac_digits.empty() && !n.int_digits.empty()) {
    const std::size_t q = skip_spaces(s, p);
    if (const auto w = frac_macro_width(s, q); w > 0) {
      NumberSpan part;
      const auto end = scan_frac_arguments(s, q + w, part);
      const auto top = part.int_digits.find_first_not_of('0'), bottom = part.den_int_digits.find_first_not_of('0');
      const bool proper = end != std::string_view::npos && !part.negative && part.frac_digits.empty() &&
                          part.den_frac_digits.empty() && bottom != std::string::npos &&
                          (top == std::string::npos ||
                           std::pair(part.int_digits.size() - top, std::string_view(part.int_digits).substr(top)) <
                               std::pair(part.den_int_digits.size() - bottom, std::string_view(part.den_int_digits).substr(bottom)));
      if (proper) {
        n.whole_digits = std::move(n.int_digits);
        n.int_digits = std::move(part.int_digits);
        n.has_denominator = true;
        n.den_int_digits = std::move(part.den_int_digits);
        p = end;
      }
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
  if (!n.whole_digits.empty()) {  // mixed number: whole + num/den, all whole numbers
    std::int64_t whole = 0, one = 1, dnum = 0, p = 0;
    if (!decimal_to_rational(n.whole_digits, "", whole, one) || !decimal_to_rational(n.int_digits, "", num, one) ||
        !decimal_to_rational(n.den_int_digits, "", dnum, one) || dnum == 0 || __builtin_mul_overflow(whole, dnum, &p) ||
        __builtin_add_overflow(p, num, &p))
      return std::nullopt;
    return format_rational(n.negative, p, dnum);
  }
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

/// The last (or, with `first`, the first) number of `text` with its canonical text. A number that
/// cannot be trusted clears what was found before it, so that nothing is returned rather than a
/// wrong number: a fraction macro whose arguments are not plain numbers (`\frac{x}{36}`: its
/// arguments are skipped), a dotted run such as a version `3.0.1`, and a zero denominator.
[[nodiscard]] inline std::optional<std::pair<NumberSpan, std::string>> scan_numbers(std::string_view s, bool first) {
  std::optional<std::pair<NumberSpan, std::string>> best;
  std::vector<std::size_t> match;  // brace table, built on the first non-numeric fraction
  std::size_t p = 0;
  while (p < s.size()) {
    const char c = s[p];
    const bool starts_digit = is_digit(c) || (c == '.' && p + 1 < s.size() && is_digit(s[p + 1]));
    const std::size_t frac_width = c == '\\' ? frac_macro_width(s, p) : 0;
    // A sign only when it cannot be a binary minus: not after a letter, digit or closing bracket.
    const bool starts_sign = (minus_width(s, p) > 0 || c == '+') &&
                             (p == 0 || (!is_alnum(s[p - 1]) && s[p - 1] != ')' && s[p - 1] != ']' && s[p - 1] != '}'));
    if (starts_digit || frac_width > 0 || starts_sign) {
      if (auto n = scan_number_at(s, p); n && n->end > p) {
        const bool dotted = n->end + 1 < s.size() && s[n->end] == '.' && is_digit(s[n->end + 1]) &&
                            !n->has_denominator && !n->frac_digits.empty();
        if (dotted) {  // "3.0.1": skip the whole run, trust nothing before it
          best.reset();
          p = n->end;
          while (p < s.size() && (is_digit(s[p]) || (s[p] == '.' && p + 1 < s.size() && is_digit(s[p + 1])))) ++p;
          continue;
        }
        auto text = canonical(*n);
        if (text) best = std::make_pair(*n, std::move(*text));
        else best.reset();
        if (first && best) return best;
        p = n->end;
        continue;
      }
      const std::size_t macro_at = (frac_width > 0) ? p : (p + minus_width(s, p) + (c == '+' ? 1 : 0));
      const std::size_t width = frac_macro_width(s, macro_at);
      if (width > 0) {  // a fraction that is not a plain number: its digits are not the answer
        best.reset();
        if (match.empty()) match = match_braces(s);
        std::size_t q = macro_at + width;
        for (int argument = 0; argument < 2; ++argument) {
          const std::size_t open = skip_spaces(s, q);
          if (open >= s.size() || s[open] != '{' || match[open] == std::string_view::npos) break;
          q = match[open] + 1;
        }
        p = q;
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

[[nodiscard]] inline std::optional<std::pair<NumberSpan, std::string>> last_number(std::string_view s) {
  return scan_numbers(s, false);
}

/// A whole string that is exactly one number (after trimming) in canonical form.
[[nodiscard]] inline std::optional<std::string> whole_number(std::string_view s) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  auto n = scan_number_at(s, 0);
  if (!n || n->end != s.size()) return std::nullopt;
  return canonical(*n);
}

[[nodiscard]] inline bool iequals_prefix(std::string_view s, std::size_t pos, std::string_view word) noexcept {
  if (pos + word.size() > s.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i)
    if (to_lower(s[pos + i]) != word[i]) return false;
  return true;
}

}  // namespace detail

namespace detail {

/// Whether s[i] is escaped by an odd run of backslashes before it (at or after `lo`).
[[nodiscard]] inline bool escaped(std::string_view s, std::size_t i, std::size_t lo = 0) noexcept {
  std::size_t run = 0;
  while (i > lo + run && s[i - run - 1] == '\\') ++run;
  return run % 2 == 1;
}

/// trim() that keeps a trailing escaped space (`7\ ` stays `7\ `, so the pair is dropped as a
/// LaTeX space later instead of leaving a lone backslash).
[[nodiscard]] inline std::string_view trim_latex(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()) && !escaped(s, s.size() - 1)) s.remove_suffix(1);
  return s;
}

}  // namespace detail

/// The content of the last complete `\boxed{...}` (or `\fbox{...}`, `\framebox{...}`) in `text`,
/// trimmed; nested braces are matched, `\{`/`\}` are literal. std::nullopt when there is none, or
/// it is unbalanced (an earlier complete one is then returned) or empty. "Last" is by the position
/// of the macro, so in `\boxed{\boxed{5}}` it is the inner one. One pass over a brace table and a
/// single copy at the end: linear in |text| however the boxes nest.
[[nodiscard]] inline std::optional<std::string> extract_boxed(std::string_view text) {
  const auto match = detail::match_braces(text);
  std::optional<std::string_view> best;
  std::size_t best_pos = 0;
  for (std::string_view macro : {std::string_view("\\boxed"), std::string_view("\\fbox"), std::string_view("\\framebox")}) {
    for (std::size_t pos = text.find(macro); pos != std::string_view::npos; pos = text.find(macro, pos + 1)) {
      if (best && pos < best_pos) continue;
      std::size_t open = pos + macro.size();
      while (open < text.size() && detail::is_space(text[open])) ++open;
      if (open >= text.size() || text[open] != '{' || match[open] == std::string_view::npos) continue;
      const std::string_view inner = detail::trim_latex(text.substr(open + 1, match[open] - open - 1));
      if (inner.empty()) continue;
      best = inner;
      best_pos = pos;
    }
  }
  if (!best) return std::nullopt;
  return std::string(*best);
}

/// What follows the last "answer is" / "answer:" (any case) in `text`, up to the end of its
/// sentence (a newline, or a '.', '!', '?' or ';' outside `$...$` and not inside a number), trimmed; std::nullopt when
/// there is no such phrase or it is empty. "The final answer is $7$, not 9." -> "$7$, not 9".
[[nodiscard]] inline std::optional<std::string> extract_answer_phrase(std::string_view text) {
  std::size_t start = std::string_view::npos;
  for (std::size_t i = 0; i + 6 <= text.size(); ++i) {
    if (!detail::iequals_prefix(text, i, "answer")) continue;
    std::size_t q = i + 6;
    if (q < text.size() && text[q] == ':') {
      start = q + 1;
    } else {
      q = detail::skip_spaces(text, q);
      if (detail::iequals_prefix(text, q, "is") && !(q + 2 < text.size() && detail::is_alpha(text[q + 2]))) {
        q += 2;
        if (q < text.size() && text[q] == ':') ++q;
        start = q;
      }
    }
  }
  if (start == std::string_view::npos) return std::nullopt;
  std::size_t end = start;
  bool in_math = false;  // inside $...$ only a newline ends the phrase ("is $5!$.")
  while (end < text.size()) {
    const char c = text[end];
    if (c == '\n') break;
    if (c == '$' && !detail::escaped(text, end)) in_math = !in_math;
    if (!in_math && (c == '!' || c == '?' || c == ';')) break;
    if (!in_math && c == '.' && !(end + 1 < text.size() && detail::is_digit(text[end + 1]))) break;
    ++end;
  }
  const std::string_view phrase = detail::trim_latex(text.substr(start, end - start));
  if (phrase.empty()) return std::nullopt;
  return std::string(phrase);
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

namespace detail {

/// One pass of normalize_answer: peel the outer layers (whitespace, `$...$`, trailing '.', whole
/// `\text{}`-like wrappers) in any order by index over one brace table, drop spaces and spacing
/// macros, then write a number canonically.
[[nodiscard]] inline std::string normalize_step(std::string_view s) {
  const auto match = match_braces(s);
  std::size_t lo = 0, hi = s.size();
  for (bool changed = true; changed;) {
    changed = false;
    while (lo < hi && is_space(s[lo])) ++lo, changed = true;
    while (hi > lo && (is_space(s[hi - 1]) || s[hi - 1] == '.') && !escaped(s, hi - 1, lo)) --hi, changed = true;
    if (hi - lo >= 2 && s[lo] == '$' && s[hi - 1] == '$' && !escaped(s, hi - 1, lo)) {
      ++lo, --hi;
      changed = true;
    }
    for (std::string_view macro : {std::string_view("\\text"), std::string_view("\\textbf"), std::string_view("\\mathrm"),
                                   std::string_view("\\mathbf")}) {
      const std::size_t open = lo + macro.size();
      if (hi < open + 2 || s.substr(lo, macro.size()) != macro || s[open] != '{' || match[open] != hi - 1) continue;
      lo = open + 1;
      hi -= 1;
      changed = true;
    }
  }
  std::string out;
  out.reserve(hi - lo);
  for (std::size_t i = lo; i < hi; ++i) {
    if (is_space(s[i])) continue;
    if (s[i] == '\\' && i + 1 < hi) {
      const char next = s[i + 1];
      if (next == '\\') {  // an escaped backslash (a matrix row break) stays whole
        out += "\\\\";
        ++i;
        continue;
      }
      if (next == ',' || next == '!' || next == ';' || next == ':' || is_space(next)) {
        ++i;
        continue;
      }
      if (s.substr(i, 5) == "\\left" && !(i + 5 < hi && is_alpha(s[i + 5]))) {
        i += 4;
        continue;
      }
      if (s.substr(i, 6) == "\\right" && !(i + 6 < hi && is_alpha(s[i + 6]))) {
        i += 5;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  while (!out.empty() && out.back() == '.' && !escaped(out, out.size() - 1)) out.pop_back();
  if (auto number = whole_number(out)) return *number;
  return out;
}

}  // namespace detail

/// The canonical form of an answer (see the header comment): "$\text{1,000}$ " -> "1000",
/// "\dfrac{1}{2}" -> "0.5", "x + 1." -> "x+1". Never throws; an all-whitespace answer gives "".
/// Idempotent by construction: passes repeat until one changes nothing (two passes for almost
/// every answer, each linear); an input that has not settled after 8 passes gives "" (no answer).
[[nodiscard]] inline std::string normalize_answer(std::string_view answer) {
  std::string current = detail::normalize_step(answer);
  for (int pass = 0; pass < 8; ++pass) {
    std::string next = detail::normalize_step(current);
    if (next == current) return current;
    current = std::move(next);
  }
  return std::string();
}

/// Which extractor extract_answer runs.
enum class AnswerFormat : std::uint8_t {
  boxed_then_number,  ///< the last \boxed{} if any, else the first number after the last "answer is" /
                      ///< "answer:", else the last number (the default for math)
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
      if (!raw)
        if (auto phrase = extract_answer_phrase(text))
          if (auto first = detail::scan_numbers(*phrase, true)) raw = std::move(first->second);
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
