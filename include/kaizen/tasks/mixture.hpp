// kaizen/tasks/mixture.hpp - a multi-category task: arithmetic by operand width and operator, and
// countdown by the count of numbers, one category (curriculum arm) per combination.
//
// Categories, in order: for each width d in [min_digits, max_digits], for each operator o of
// `operators` (in the order given): "d-digit o" (Arithmetic with operands of exactly d digits and
// operator o); then for each k in [min_numbers, max_numbers]: "countdown k" (Countdown with exactly k
// numbers in [1, max_value]). Problem::category is that index, so a curriculum (SEC, ...) sees one
// arm per category. With no countdown (max_numbers = 0) the task is arithmetic only.
// verify() routes by the prompt's form: countdown prompts hold '>' ("3,5,7>22:"), arithmetic prompts
// end with '=' ("27+58="); each is checked by its own task's verifier.
//
// Reference: the categories follow SEC's setup (Chen et al. 2025, arXiv 2505.14970: Countdown by
// size, and a 2-D curriculum over difficulty x problem type).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/countdown.hpp>
#include <kaizen/tasks/problem.hpp>

namespace kaizen::tasks {

struct MixtureOptions {
  int min_digits = 1;              ///< arithmetic widths [min_digits, max_digits], 1 <= min <= max <= 9
  int max_digits = 2;
  std::string operators = "+-";   ///< non-empty, distinct, each of '+', '-', '*'
  int min_numbers = 2;             ///< countdown sizes [min_numbers, max_numbers]; max_numbers = 0: none
  int max_numbers = 3;
  int max_value = 9;               ///< countdown numbers in [1, max_value]
};

class Mixture {
 public:
  /// Throws kaizen::Error on options the component tasks reject, or a repeated operator.
  explicit Mixture(MixtureOptions options = {}) : options_(std::move(options)) {
    KAIZEN_CHECK(!options_.operators.empty(), "Mixture: operators must not be empty");
    for (std::size_t i = 0; i < options_.operators.size(); ++i)
      KAIZEN_CHECK(options_.operators.find(options_.operators[i]) == i, "Mixture: operator '", options_.operators[i],
                   "' appears twice in \"", options_.operators, "\"");
    for (int d = options_.min_digits; d <= options_.max_digits; ++d)
      for (char op : options_.operators) {
        arithmetic_.emplace_back(ArithmeticOptions{.min_digits = d, .max_digits = d, .operators = std::string(1, op)});
        names_.push_back(std::to_string(d) + "-digit " + op);
      }
    KAIZEN_CHECK(!arithmetic_.empty(), "Mixture: expected min_digits <= max_digits, got ", options_.min_digits, " and ",
                 options_.max_digits);
    if (options_.max_numbers > 0) {
      for (int k = options_.min_numbers; k <= options_.max_numbers; ++k) {
        countdown_.emplace_back(CountdownOptions{.min_numbers = k, .max_numbers = k, .max_value = options_.max_value});
        names_.push_back("countdown " + std::to_string(k));
      }
      KAIZEN_CHECK(!countdown_.empty(), "Mixture: expected min_numbers <= max_numbers, got ", options_.min_numbers,
                   " and ", options_.max_numbers);
    }
  }

  [[nodiscard]] std::int64_t num_categories() const {
    return static_cast<std::int64_t>(arithmetic_.size() + countdown_.size());
  }

  /// "2-digit +", "countdown 3", ... Throws kaizen::Error outside [0, num_categories()).
  [[nodiscard]] const std::string& category_name(std::int64_t category) const {
    KAIZEN_CHECK(category >= 0 && category < num_categories(), "Mixture::category_name: category must be in [0, ",
                 num_categories(), "), got ", category);
    return names_[static_cast<std::size_t>(category)];
  }

  /// A problem of `category` (< 0: drawn uniformly). Throws kaizen::Error for category >= num_categories().
  [[nodiscard]] Problem generate(std::int64_t category, Rng& rng) const {
    KAIZEN_CHECK(category < num_categories(), "Mixture::generate: category must be < ", num_categories(), ", got ",
                 category);
    if (category < 0) category = static_cast<std::int64_t>(uniform_index(rng, static_cast<std::uint64_t>(num_categories())));
    const auto c = static_cast<std::size_t>(category);
    Problem p = c < arithmetic_.size() ? arithmetic_[c].generate(0, rng) : countdown_[c - arithmetic_.size()].generate(0, rng);
    p.category = category;
    return p;
  }

  [[nodiscard]] bool verify(std::string_view prompt, std::string_view reference, std::string_view completion) const {
    if (prompt.find('>') != std::string_view::npos)
      return !countdown_.empty() && countdown_.front().verify(prompt, reference, completion);
    return arithmetic_.front().verify(prompt, reference, completion);
  }

 private:
  MixtureOptions options_;
  std::vector<Arithmetic> arithmetic_;
  std::vector<Countdown> countdown_;
  std::vector<std::string> names_;
};

}  // namespace kaizen::tasks
