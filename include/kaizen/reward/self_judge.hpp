// kaizen/reward/self_judge.hpp - SSR-Zero's self-judge reward: the policy itself, prompted as a
// judge, writes a judgement of its own completion; the reward is the score read from that text,
// scaled to [0, 1], and 0 when no score can be read.
//
// parse_judge_score(judgement, options) reads the score by these rules, first match wins:
//   0. Only the text after the last `</think>` is read (a judgement that thinks first); a `<think>`
//      that is never closed means a truncated judgement => unparsable.
//   1. `<score>X</score>`: the last such tag.
//   2. `\boxed{X}`: the last one.
//   3. The last keyword "score" (any case) followed, after optional spaces and one of ':', '=',
//      "is", "of", by X.
//   4. The whole remaining text is X alone, optionally followed by "/ max_score" and a '.'.
// X is a plain decimal number (digits, an optional '.' and digits; an optional leading '-').
// "X/max_score" and "X out of max_score" are read as X. A value outside [0, max_score] is
// unparsable. Anything else ("good translation", two bare numbers, "80 or 90") is unparsable.
// SelfJudgeReward returns score / max_score, or 0 when unparsable; `judge(prompt, completion)` is
// the caller's call into the current policy (a callable returning the judgement text).
//
// References: SSR-Zero (Yang et al., 2025, arXiv 2505.16637): reference-free GEMBA-DA-style 0..100
// self-scores; the /100 scaling is the documented default, not verified against the authors' code.
#pragma once

#include <cmath>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>

namespace kaizen::reward {

struct JudgeScoreOptions {
  double max_score = 100.0;  ///< the judge's scale is [0, max_score]; > 0
};

namespace detail {

[[nodiscard]] inline bool ascii_digit(char c) noexcept { return c >= '0' && c <= '9'; }
[[nodiscard]] inline bool ascii_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/// Reads a plain decimal number at s[pos]; returns its value and the position after it.
[[nodiscard]] inline std::optional<std::pair<double, std::size_t>> read_number(std::string_view s, std::size_t pos) {
  std::size_t i = pos;
  bool neg = false;
  if (i < s.size() && s[i] == '-') {
    neg = true;
    ++i;
  }
  const std::size_t digits = i;
  double v = 0.0;
  while (i < s.size() && ascii_digit(s[i])) v = v * 10.0 + (s[i++] - '0');
  if (i == digits) return std::nullopt;
  if (i + 1 < s.size() && s[i] == '.' && ascii_digit(s[i + 1])) {
    ++i;
    double scale = 0.1;
    while (i < s.size() && ascii_digit(s[i])) {
      v += (s[i++] - '0') * scale;
      scale *= 0.1;
    }
  }
  if (i < s.size() && (ascii_digit(s[i]) || s[i] == '.' ) && i + 1 < s.size() && ascii_digit(s[i + 1]))
    return std::nullopt;  // "1.2.3"
  return std::make_pair(neg ? -v : v, i);
}

[[nodiscard]] inline std::size_t skip_space(std::string_view s, std::size_t i) {
  while (i < s.size() && ascii_space(s[i])) ++i;
  return i;
}

/// Skips an optional "/ max" or "out of max" after a number; returns the position after it.
[[nodiscard]] inline std::size_t skip_denominator(std::string_view s, std::size_t i) {
  std::size_t j = skip_space(s, i);
  if (j < s.size() && s[j] == '/') {
    const auto d = read_number(s, skip_space(s, j + 1));
    if (d) return d->second;
  }
  if (s.substr(j, 6) == "out of") {
    const auto d = read_number(s, skip_space(s, j + 6));
    if (d) return d->second;
  }
  return i;
}

[[nodiscard]] inline std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace detail

/// The judge's score on its own scale, or nullopt when the text has none by the rules above.
[[nodiscard]] inline std::optional<double> parse_judge_score(std::string_view judgement,
                                                             const JudgeScoreOptions& options = {}) {
  KAIZEN_CHECK(std::isfinite(options.max_score) && options.max_score > 0.0,
               "parse_judge_score: max_score must be finite and > 0, got ", options.max_score);
  std::string_view s = judgement;
  const std::size_t think_end = s.rfind("</think>");
  if (think_end != std::string_view::npos) {
    s.remove_prefix(think_end + 8);
  } else if (s.find("<think>") != std::string_view::npos) {
    return std::nullopt;  // truncated inside its reasoning
  }
  const auto in_range = [&](double v) -> std::optional<double> {
    if (v < 0.0 || v > options.max_score) return std::nullopt;
    return v;
  };
  // 1. <score>X</score>
  if (const std::size_t at = s.rfind("<score>"); at != std::string_view::npos) {
    const std::size_t b = detail::skip_space(s, at + 7);
    const auto v = detail::read_number(s, b);
    if (!v) return std::nullopt;
    const std::size_t e = detail::skip_space(s, detail::skip_denominator(s, v->second));
    if (s.substr(e, 8) != "</score>") return std::nullopt;
    return in_range(v->first);
  }
  // 2. \boxed{X}
  if (const std::size_t at = s.rfind("\\boxed{"); at != std::string_view::npos) {
    const auto v = detail::read_number(s, detail::skip_space(s, at + 7));
    if (!v) return std::nullopt;
    const std::size_t e = detail::skip_space(s, detail::skip_denominator(s, v->second));
    if (e >= s.size() || s[e] != '}') return std::nullopt;
    return in_range(v->first);
  }
  // 3. "score" keyword
  const std::string lower = detail::lower_ascii(s);
  if (const std::size_t at = lower.rfind("score"); at != std::string::npos) {
    std::size_t i = at + 5;
    if (i < lower.size() && lower[i] == 's') ++i;  // "scores"
    i = detail::skip_space(lower, i);
    bool linked = false;
    for (std::string_view link : {std::string_view(":"), std::string_view("="), std::string_view("is"),
                                  std::string_view("of")}) {
      if (std::string_view(lower).substr(i, link.size()) == link) {
        i += link.size();
        linked = true;
        break;
      }
    }
    if (linked) {
      i = detail::skip_space(lower, i);
      while (i < lower.size() && (lower[i] == '*' || lower[i] == '"')) ++i;  // markdown bold, quotes
      const auto v = detail::read_number(s, i);
      if (v) return in_range(v->first);
    }
    return std::nullopt;
  }
  // 4. the bare number
  std::size_t i = detail::skip_space(s, 0);
  const auto v = detail::read_number(s, i);
  if (!v) return std::nullopt;
  i = detail::skip_space(s, detail::skip_denominator(s, v->second));
  if (i < s.size() && s[i] == '.') i = detail::skip_space(s, i + 1);
  if (i != s.size()) return std::nullopt;
  return in_range(v->first);
}

/// SSR-Zero's reward: parse_judge_score(judge(prompt, completion)) / max_score, 0 when unparsable.
struct SelfJudgeReward {
  std::function<std::string(const Prompt&, const Completion&)> judge;
  JudgeScoreOptions options{};

  [[nodiscard]] double operator()(const Prompt& prompt, const Completion& completion) const {
    KAIZEN_CHECK(static_cast<bool>(judge), "SelfJudgeReward: no judge callable was given");
    const std::optional<double> v = parse_judge_score(judge(prompt, completion), options);
    return v ? *v / options.max_score : 0.0;
  }
};

}  // namespace kaizen::reward
