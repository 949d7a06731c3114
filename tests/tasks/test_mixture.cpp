// tasks::Mixture: one category per (operand width, operator) of arithmetic and per countdown size;
// every generated problem's answer verifies through the mixture; answers are routed to the right task.
#include <algorithm>
#include <set>
#include <string>

#include <catch2/catch.hpp>

#include <kaizen/tasks/mixture.hpp>

using namespace kaizen;
using Catch::Contains;

TEST_CASE("Mixture: categories, names, generation and routed verification", "[mixture]") {
  const tasks::Mixture mix({.min_digits = 1, .max_digits = 2, .operators = "+-", .min_numbers = 2, .max_numbers = 3});
  REQUIRE(mix.num_categories() == 6);
  CHECK(mix.category_name(0) == "1-digit +");
  CHECK(mix.category_name(1) == "1-digit -");
  CHECK(mix.category_name(3) == "2-digit -");
  CHECK(mix.category_name(5) == "countdown 3");
  Rng rng(5);
  std::set<std::int64_t> seen;
  for (int i = 0; i < 600; ++i) {
    const tasks::Problem p = mix.generate(-1, rng);
    seen.insert(p.category);
    INFO(p.prompt << " -> " << p.answer);
    CHECK(mix.verify(p.prompt, p.reference, p.answer));
    CHECK_FALSE(mix.verify(p.prompt, p.reference, std::string(p.answer).append("1")));
  }
  CHECK(seen.size() == 6);
  for (std::int64_t c = 0; c < 6; ++c) {
    const tasks::Problem p = mix.generate(c, rng);
    CHECK(p.category == c);
    if (c == 3) {
      CHECK(p.prompt.find('-') != std::string::npos);
      CHECK(p.prompt.size() >= 6);  // two 2-digit operands
    }
    if (c == 5) CHECK(std::count(p.prompt.begin(), p.prompt.end(), ',') == 2);
  }
  // a countdown prompt is not answered by writing its target (the arithmetic rule would accept it)
  CHECK_FALSE(mix.verify("3,5,7>22:", "22", "22"));
  CHECK(mix.verify("3,5,7>22:", "22", "3*5+7"));
  CHECK(mix.verify("27+58=", "85", "85"));
  const tasks::Mixture arithmetic_only({.max_digits = 1, .operators = "*", .max_numbers = 0});
  CHECK(arithmetic_only.num_categories() == 1);
  CHECK_FALSE(arithmetic_only.verify("3,5,7>22:", "22", "3*5+7"));
}

TEST_CASE("Mixture rejects bad options and categories with the values", "[mixture]") {
  CHECK_THROWS_WITH(tasks::Mixture({.operators = ""}), Contains("operators must not be empty"));
  CHECK_THROWS_WITH(tasks::Mixture({.operators = "+-+"}), Contains("operator '+' appears twice in \"+-+\""));
  CHECK_THROWS_WITH(tasks::Mixture({.min_digits = 3, .max_digits = 2}), Contains("min_digits <= max_digits, got 3 and 2"));
  CHECK_THROWS_WITH(tasks::Mixture({.min_numbers = 4, .max_numbers = 3}), Contains("min_numbers <= max_numbers, got 4 and 3"));
  CHECK_THROWS_WITH(tasks::Mixture({.operators = "/"}), Contains("operators must be a non-empty subset"));
  const tasks::Mixture mix;
  Rng rng(1);
  CHECK_THROWS_WITH(mix.generate(6, rng), Contains("category must be < 6, got 6"));
  CHECK_THROWS_WITH(mix.category_name(-1), Contains("category must be in [0, 6), got -1"));
}
