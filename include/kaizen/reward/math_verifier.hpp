// kaizen/reward/math_verifier.hpp - the math Verifier the loops use:
// `MathVerifier{}(prompt, completion) -> bool`, with `prompt.reference` the gold answer. It models
// kaizen::Verifier and, through bool -> double, kaizen::OutcomeReward (core/reward.hpp).
//
// Steps of MathVerifier::check(completion_text, gold):
//   1. Truncation: a completion that stopped on the token limit (FinishReason::length) or for
//      another reason (::abort) is rejected (`reject_truncated`): its "answer" may be a fragment.
//   2. Extraction (reward/math_extract.hpp): boxes, tags, phrases, GSM8K, last number; hedges,
//      conflicting boxes and unclosed blocks are rejected.
//   3. Multiple choice: a gold that is one letter A-Z (optionally "(B)", "B." or "\text{B}") is
//      compared with the letter of the answer (the answer itself when it is a letter, else
//      consistency::extract_choice over the completion).
//   4. Fast paths: the same text (trimmed) -> correct; both texts plain rational arithmetic
//      (math_screen.hpp, arithmetic_value: `-3`, `0.5`, `\frac{3}{4}`, `2^{10}`, `1.5 \times 10^{6}`)
//      -> their exact values decide: equal -> correct, further apart than twice the tolerance ->
//      incorrect (`arithmetic_screen`; the same verdicts as the steps below, property-tested);
//      consistency::normalize_answer of both equal -> correct; both plain numbers (canonical exact
//      rationals) and different -> incorrect.
//   5. Parse both (reward/math_parse.hpp) and compare (reward/math_equal.hpp: plain rational
//      arithmetic exactly in 64 bits, everything else with GiNaC). When either does not parse,
//      compare normalize_math texts (case-insensitive).
// The gold's normal form and parse are cached per thread for the next call with the same gold
// (`cache_gold`): a group of completions for one prompt parses its gold once.
// The verdict carries the extracted answer and the reason for a rejection (for logs and tests).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <kaizen/consistency/extract.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/reward/math_equal.hpp>
#include <kaizen/reward/math_extract.hpp>
#include <kaizen/reward/math_parse.hpp>
#include <kaizen/reward/math_screen.hpp>

namespace kaizen::reward {

struct MathVerifierOptions {
  MathExtractOptions extract;
  ParseOptions parse;
  EqualOptions equal;
  bool reject_truncated = true;  ///< FinishReason::length / ::abort are wrong answers
  bool cache_gold = true;        ///< reuse the parsed gold of the previous call on this thread when it is the same text
  bool arithmetic_screen = true;  ///< answers and golds written as plain rational arithmetic compare by value first (step 4)
};

struct MathVerdict {
  bool correct = false;
  std::optional<std::string> answer;  ///< the extracted answer text
  std::string reason;                 ///< why it was rejected (empty when correct)
};

class MathVerifier {
  /// What equivalent() derives from a gold answer alone (cached per thread, see `cache_gold`).
  struct Gold {
    std::string text;
    std::string normalized;  ///< consistency::normalize_answer
    bool digits_around_space = false;
    bool plain_number = false;
    bool parsed_ready = false;  ///< `parsed` is computed on first need (the text fast paths may decide first)
    ParseResult parsed;
  };

 public:
  MathVerifier() = default;
  explicit MathVerifier(MathVerifierOptions options) : options_(std::move(options)) {}

  [[nodiscard]] const MathVerifierOptions& options() const noexcept { return options_; }

  /// The verdict on `text` against `gold`; `finish` tells whether the text was cut short.
  /// Throws kaizen::Error only on an empty gold answer (a dataset bug, not a wrong answer).
  [[nodiscard]] MathVerdict check(std::string_view text, std::string_view gold, FinishReason finish = FinishReason::stop) const {
    KAIZEN_CHECK(!consistency::detail::trim(gold).empty(), "MathVerifier::check: the gold answer is empty (prompt.reference unset?)");
    MathVerdict verdict;
    if (options_.reject_truncated && finish != FinishReason::stop) {
      verdict.reason = "truncated";
      return verdict;
    }
    const MathExtraction extracted = extract_math_answer(text, options_.extract);
    if (!extracted.answer) {
      verdict.reason = std::string(to_string(extracted.failure));
      // A letter question may be answered in prose: "The answer is (B)." has no box or number.
      if (extracted.failure != ExtractFailure::no_answer) return verdict;
    }
    verdict.answer = extracted.answer;
    if (const auto letter = choice_letter(gold)) {
      std::optional<char> given = extracted.answer ? choice_letter(*extracted.answer) : std::nullopt;
      if (!given) given = consistency::extract_choice(text, "ABCDEFGHIJ");
      verdict.correct = given == letter;
      verdict.reason = verdict.correct ? "" : "wrong choice";
      return verdict;
    }
    if (!extracted.answer) return verdict;
    verdict.correct = equivalent(*extracted.answer, gold);
    verdict.reason = verdict.correct ? "" : "not equal";
    return verdict;
  }

  /// Whether two answer texts (already extracted) are the same answer: steps 4 and 5 above.
  [[nodiscard]] bool equivalent(std::string_view answer, std::string_view gold) const {
    const std::string_view answer_trimmed = consistency::detail::trim(answer);
    if (!answer_trimmed.empty() && answer_trimmed == consistency::detail::trim(gold)) return true;  // same text
    if (options_.arithmetic_screen) {  // both plain rational arithmetic: their values decide (math_screen.hpp)
      if (const auto a = math_detail::arithmetic_value(answer)) {
        if (const auto g = math_detail::arithmetic_value(gold)) {
          if (*a == *g) return true;
          const double x = static_cast<double>(a->num) / static_cast<double>(a->den);
          const double y = static_cast<double>(g->num) / static_cast<double>(g->den);
          const double d = std::fabs(x - y), m = std::max(std::fabs(x), std::fabs(y));
          const double tol = std::max(options_.equal.rel_tol, 0.0);
          if (d > 2 * tol * m && (tol > 0 || d > 0)) return false;  // near the tolerance: the full path decides
        }
      }
    }
    Gold& g = prepared_gold(gold);
    // The fast path drops spaces, which would glue "2 1/2" into 21/2: not for such texts.
    if (!g.digits_around_space && !digits_around_space(answer)) {
      const std::string a = consistency::normalize_answer(answer);
      if (!a.empty() && a == g.normalized) return true;
      if (g.plain_number && is_plain_number(a) && !within_tolerance(a, g.normalized)) return false;
    }
    const ParseResult pa = parse_math(answer, options_.parse);
    if (!pa.expr && pa.error == "hedge") return false;
    if (!g.parsed_ready) {
      g.parsed = parse_math(gold, options_.parse);
      g.parsed_ready = true;
    }
    if (pa.expr && g.parsed.expr) return math_equal(*g.parsed.expr, *pa.expr, options_.equal);
    const std::string na = lower(normalize_math(answer, options_.parse)), ng = lower(normalize_math(gold, options_.parse));
    return !na.empty() && na == ng;
  }

  /// tasks::AnswerCheck: a finished completion's text against a gold answer (e.g. Problem::reference),
  /// so that `tasks::CheckedTask<tasks::Arithmetic, MathVerifier>` verifies a task with this verifier.
  [[nodiscard]] bool operator()(std::string_view completion_text, std::string_view gold) const {
    return check(completion_text, gold).correct;
  }

  /// kaizen::Verifier: the completion's text against `prompt.reference`.
  [[nodiscard]] bool operator()(const Prompt& prompt, const Completion& completion) const {
    return check(completion.text, prompt.reference, completion.finish).correct;
  }

 private:
  MathVerifierOptions options_;

  /// The gold's derived forms: computed, or the previous call's on this thread when the gold text
  /// and parse options are the same (a GRPO group checks G completions against one gold).
  [[nodiscard]] Gold& prepared_gold(std::string_view gold) const {
    thread_local Gold cache;
    thread_local ParseOptions cache_options;
    thread_local bool valid = false;
    const ParseOptions& o = options_.parse;
    if (options_.cache_gold && valid && cache.text == gold && cache_options.max_depth == o.max_depth &&
        cache_options.max_nodes == o.max_nodes && cache_options.max_length == o.max_length)
      return cache;
    cache.text.assign(gold.data(), gold.size());
    cache.digits_around_space = digits_around_space(gold);
    cache.normalized = cache.digits_around_space ? std::string() : consistency::normalize_answer(gold);
    cache.plain_number = is_plain_number(cache.normalized);
    cache.parsed_ready = false;
    cache_options = o;
    valid = true;
    return cache;
  }

  [[nodiscard]] static std::string lower(std::string s) {
    for (auto& c : s)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
  }

  /// Whether two canonical numbers could be equal under the numeric tolerance (then the CAS decides).
  [[nodiscard]] bool within_tolerance(const std::string& a, const std::string& g) const {
    auto value = [](const std::string& s) {  // strtod: no exception whatever the text
      const auto slash = s.find('/');
      if (slash == std::string::npos) return std::strtod(s.c_str(), nullptr);
      return std::strtod(s.substr(0, slash).c_str(), nullptr) / std::strtod(s.substr(slash + 1).c_str(), nullptr);
    };
    const double x = value(a), y = value(g);
    return std::fabs(x - y) <= options_.equal.rel_tol * std::max(std::fabs(x), std::fabs(y));
  }

  [[nodiscard]] static bool digits_around_space(std::string_view s) {
    for (std::size_t i = 1; i + 1 < s.size(); ++i) {
      if (!consistency::detail::is_space(s[i])) continue;
      std::size_t j = i;
      while (j < s.size() && consistency::detail::is_space(s[j])) ++j;
      if (j < s.size() && consistency::detail::is_digit(s[j]) && consistency::detail::is_digit(s[i - 1])) return true;
      i = j - 1;
    }
    return false;
  }

  /// A canonical number from consistency::normalize_answer that fits exact arithmetic: "-12",
  /// "0.25", "1/3" (at most 18 digits, so the canonical text is the exact value).
  [[nodiscard]] static bool is_plain_number(std::string_view s) {
    if (s.empty() || s.size() > 18) return false;
    std::size_t i = s[0] == '-' ? 1 : 0;
    if (i >= s.size()) return false;
    int marks = 0;
    const std::size_t first = i;
    for (; i < s.size(); ++i) {
      if (s[i] == '.' || s[i] == '/') {
        ++marks;
        if (i == first || i + 1 == s.size()) return false;  // "212/", "/3": no number
      } else if (!consistency::detail::is_digit(s[i])) {
        return false;
      }
    }
    return marks <= 1;
  }

  /// "B", "(B)", "B.", "B)", "\text{B}", "\textbf{(B)}" -> 'B'; anything else -> nullopt.
  [[nodiscard]] static std::optional<char> choice_letter(std::string_view s) {
    bool letter = false;  // cheap screen: no upper-case letter, no choice
    for (char c : s) letter = letter || (c >= 'A' && c <= 'Z');
    if (!letter || s.size() > 24) return std::nullopt;
    std::string t = consistency::normalize_answer(s);
    if (t.size() >= 2 && t.front() == '(' && t.back() == ')') t = t.substr(1, t.size() - 2);
    if (t.size() == 2 && (t.back() == ')' || t.back() == '.')) t.pop_back();
    if (t.size() == 1 && t[0] >= 'A' && t[0] <= 'Z') return t[0];
    return std::nullopt;
  }
};

static_assert(Verifier<MathVerifier>);
static_assert(OutcomeReward<MathVerifier>);

}  // namespace kaizen::reward
