// kaizen/tasks/arithmetic.hpp - multi-digit integer arithmetic: "a+b=" -> "c".
//
// Operands are drawn uniformly with d digits (d = min_digits + category; one-digit operands include
// 0), the operator uniformly from `operators` ("+", "-", "*"). Subtraction keeps a >= b so answers
// are non-negative. The category is the operand width, so a curriculum can move from 1-digit to
// wider problems. The verifier extracts the last number of the completion
// (kaizen::consistency::extract_last_number) and compares it with the exact result.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <kaizen/consistency/extract.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/tasks/problem.hpp>

namespace kaizen::tasks {

struct ArithmeticOptions {
  int min_digits = 1;               ///< operand width of category 0, in [1, 9]
  int max_digits = 2;               ///< widest operands, in [min_digits, 9]
  std::string operators = "+";      ///< any of '+', '-', '*'
};

class Arithmetic {
 public:
  /// Throws kaizen::Error on digit bounds outside [1, 9] or an unknown / empty operator set.
  explicit Arithmetic(ArithmeticOptions options = {}) : options_(std::move(options)) {
    KAIZEN_CHECK(options_.min_digits >= 1 && options_.min_digits <= options_.max_digits && options_.max_digits <= 9,
                 "Arithmetic: expected 1 <= min_digits <= max_digits <= 9, got ", options_.min_digits, " and ",
                 options_.max_digits);
    KAIZEN_CHECK(!options_.operators.empty() && options_.operators.find_first_not_of("+-*") == std::string::npos,
                 "Arithmetic: operators must be a non-empty subset of \"+-*\", got \"", options_.operators, "\"");
  }

  [[nodiscard]] std::int64_t num_categories() const { return options_.max_digits - options_.min_digits + 1; }

  /// A problem of `category` (operand width min_digits + category); category < 0 draws one uniformly.
  /// Throws kaizen::Error for category >= num_categories().
  [[nodiscard]] Problem generate(std::int64_t category, Rng& rng) const {
    KAIZEN_CHECK(category < num_categories(), "Arithmetic::generate: category must be < ", num_categories(),
                 ", got ", category);
    if (category < 0) category = static_cast<std::int64_t>(uniform_index(rng, static_cast<std::uint64_t>(num_categories())));
    const int digits = options_.min_digits + static_cast<int>(category);
    const char op = options_.operators[uniform_index(rng, options_.operators.size())];
    std::int64_t a = operand(digits, rng), b = operand(digits, rng);
    if (op == '-' && a < b) std::swap(a, b);
    const std::int64_t value = op == '+' ? a + b : op == '-' ? a - b : a * b;
    Problem p;
    p.prompt = std::to_string(a) + op + std::to_string(b) + "=";
    p.answer = std::to_string(value);
    p.reference = p.answer;
    p.category = category;
    return p;
  }

  /// True when the last number in `completion` equals `reference` (after normalisation).
  [[nodiscard]] bool verify(std::string_view /*prompt*/, std::string_view reference, std::string_view completion) const {
    const auto got = consistency::extract_last_number(completion);
    return got.has_value() && *got == consistency::normalize_answer(reference);
  }

 private:
  [[nodiscard]] static std::int64_t operand(int digits, Rng& rng) {
    std::int64_t lo = 1;
    for (int i = 1; i < digits; ++i) lo *= 10;
    const std::int64_t hi = lo * 10;
    if (digits == 1) lo = 0;
    return lo + static_cast<std::int64_t>(uniform_index(rng, static_cast<std::uint64_t>(hi - lo)));
  }

  ArithmeticOptions options_;
};

}  // namespace kaizen::tasks
