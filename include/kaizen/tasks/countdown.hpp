// kaizen/tasks/countdown.hpp - Countdown: reach a target with the given numbers.
//
// Prompt "3,5,7>22:" asks for an expression over +, -, *, / and parentheses that uses each given
// number at most once (exactly once with `use_all`) and evaluates exactly (rational arithmetic in
// 64 bits, |numerator|, denominator <= 1e9 at every step, else wrong; division must not be by zero)
// to the target 22; "3*5+7" is one answer. The whole completion must be the expression (no spaces,
// no "= 22"): this is the task's exact checker; it needs no CAS. The generator draws k numbers in [1, max_value]
// (k = min_numbers + category), combines them left to right with random operators, keeping every
// intermediate value a non-negative integer, and uses the result as the target, so every problem has
// a solution (recorded as Problem::answer). The category is the count of numbers.
//
// Reference: the arithmetic game of the TV show "Countdown"; used as an RL reasoning task by
// TinyZero (Pan et al. 2025) and in the SEC curriculum paper (arXiv 2505.14970).
#pragma once

#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/tasks/problem.hpp>

namespace kaizen::tasks {

struct CountdownOptions {
  int min_numbers = 2;  ///< numbers in category 0, >= 2
  int max_numbers = 3;  ///< >= min_numbers, <= 6
  int max_value = 9;    ///< numbers lie in [1, max_value], max_value in [1, 99]
  bool use_all = false; ///< verify: every given number must be used (exactly once), as in TinyZero
};

class Countdown {
 public:
  /// Throws kaizen::Error on bounds outside the ranges documented on CountdownOptions.
  explicit Countdown(CountdownOptions options = {}) : options_(options) {
    KAIZEN_CHECK(options_.min_numbers >= 2 && options_.min_numbers <= options_.max_numbers && options_.max_numbers <= 6,
                 "Countdown: expected 2 <= min_numbers <= max_numbers <= 6, got ", options_.min_numbers, " and ",
                 options_.max_numbers);
    KAIZEN_CHECK(options_.max_value >= 1 && options_.max_value <= 99, "Countdown: max_value must be in [1, 99], got ",
                 options_.max_value);
  }

  [[nodiscard]] std::int64_t num_categories() const { return options_.max_numbers - options_.min_numbers + 1; }

  /// A problem with min_numbers + category numbers (category < 0: drawn uniformly).
  [[nodiscard]] Problem generate(std::int64_t category, Rng& rng) const {
    KAIZEN_CHECK(category < num_categories(), "Countdown::generate: category must be < ", num_categories(), ", got ",
                 category);
    if (category < 0) category = static_cast<std::int64_t>(uniform_index(rng, static_cast<std::uint64_t>(num_categories())));
    const int k = options_.min_numbers + static_cast<int>(category);
    std::vector<std::int64_t> numbers;
    for (int i = 0; i < k; ++i)
      numbers.push_back(1 + static_cast<std::int64_t>(uniform_index(rng, static_cast<std::uint64_t>(options_.max_value))));
    std::int64_t value = numbers[0];
    std::string expr = std::to_string(numbers[0]);
    for (int i = 1; i < k; ++i) {
      const std::int64_t x = numbers[static_cast<std::size_t>(i)];
      char op = "+-*"[uniform_index(rng, 3)];
      if (op == '-' && value < x) op = '+';
      value = op == '+' ? value + x : op == '-' ? value - x : value * x;
      const bool wrap = op == '*' && i > 1;
      if (wrap) {
        expr.insert(expr.begin(), '(');
        expr.push_back(')');
      }
      expr.push_back(op);
      expr.append(std::to_string(x));
    }
    Problem p;
    for (int i = 0; i < k; ++i) {
      if (i > 0) p.prompt.push_back(',');
      p.prompt.append(std::to_string(numbers[static_cast<std::size_t>(i)]));
    }
    p.prompt.push_back('>');
    p.prompt.append(std::to_string(value));
    p.prompt.push_back(':');
    p.answer = expr;
    p.reference = std::to_string(value);
    p.category = category;
    return p;
  }

  /// True when `completion` is an expression over the prompt's numbers (each at most once) whose exact
  /// value is the target `reference`. Malformed text is simply wrong (false), never an error.
  [[nodiscard]] bool verify(std::string_view prompt, std::string_view reference, std::string_view completion) const {
    std::vector<std::int64_t> available;
    const std::size_t gt = prompt.find('>');
    if (gt == std::string_view::npos) return false;
    std::int64_t current = -1;
    for (char c : prompt.substr(0, gt + 1)) {
      if (c >= '0' && c <= '9') current = (current < 0 ? 0 : current * 10) + (c - '0');
      else if (current >= 0) { available.push_back(current); current = -1; }
    }
    std::int64_t target = 0;
    for (char c : reference) {
      if (c < '0' || c > '9' || target > 1'000'000'000) return false;
      target = target * 10 + (c - '0');
    }
    Parser parser{completion, 0, available};
    const auto value = parser.expression(0);
    if (!value || parser.pos != completion.size()) return false;
    if (options_.use_all && !parser.available.empty()) return false;
    return value->den != 0 && value->num == target * value->den;
  }

 private:
  /// Exact rational p / q with q > 0.
  struct Rational {
    std::int64_t num = 0, den = 1;
  };
  static constexpr std::int64_t kLimit = 1'000'000'000;  // keeps products inside 64 bits

  [[nodiscard]] static std::optional<Rational> normalised(std::int64_t n, std::int64_t d) {
    if (d == 0) return std::nullopt;
    if (d < 0) { n = -n; d = -d; }
    const std::int64_t g = std::gcd(n < 0 ? -n : n, d);
    n /= g; d /= g;
    if (n > kLimit || n < -kLimit || d > kLimit) return std::nullopt;
    return Rational{n, d};
  }

  /// Recursive-descent parser: expression := term (('+'|'-') term)*, term := factor (('*'|'/') factor)*,
  /// factor := number | '(' expression ')'. Numbers consume entries of `available`.
  struct Parser {
    std::string_view text;
    std::size_t pos;
    std::vector<std::int64_t> available;

    std::optional<Rational> expression(int depth) {
      auto left = term(depth);
      while (left && pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
        const char op = text[pos++];
        const auto right = term(depth);
        if (!right) return std::nullopt;
        left = normalised(op == '+' ? left->num * right->den + right->num * left->den
                                    : left->num * right->den - right->num * left->den,
                          left->den * right->den);
      }
      return left;
    }
    std::optional<Rational> term(int depth) {
      auto left = factor(depth);
      while (left && pos < text.size() && (text[pos] == '*' || text[pos] == '/')) {
        const char op = text[pos++];
        const auto right = factor(depth);
        if (!right) return std::nullopt;
        left = op == '*' ? normalised(left->num * right->num, left->den * right->den)
                         : normalised(left->num * right->den, left->den * right->num);
      }
      return left;
    }
    std::optional<Rational> factor(int depth) {
      if (pos >= text.size() || depth > 32) return std::nullopt;
      if (text[pos] == '(') {
        ++pos;
        auto inner = expression(depth + 1);
        if (!inner || pos >= text.size() || text[pos] != ')') return std::nullopt;
        ++pos;
        return inner;
      }
      std::int64_t n = 0;
      const std::size_t start = pos;
      while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && pos - start < 6) n = n * 10 + (text[pos++] - '0');
      if (pos == start || (pos < text.size() && text[pos] >= '0' && text[pos] <= '9')) return std::nullopt;
      for (auto it = available.begin(); it != available.end(); ++it) {
        if (*it == n) {
          available.erase(it);
          return Rational{n, 1};
        }
      }
      return std::nullopt;  // not one of the given numbers, or used too often
    }
  };

  CountdownOptions options_;
};

}  // namespace kaizen::tasks
