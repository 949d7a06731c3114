// Tests of kaizen/tasks/: the character tokenizer, the arithmetic and countdown generators and
// verifiers (every generated answer verifies; wrong answers do not), the held-out split.
#include <catch2/catch.hpp>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/countdown.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>

using kaizen::tasks::Arithmetic;
using kaizen::tasks::CharTokenizer;
using kaizen::tasks::Countdown;

TEST_CASE("CharTokenizer round-trips and rejects unknown characters", "[tasks][tokenizer]") {
  const CharTokenizer tok;
  CHECK(tok.vocab_size() == 2 + static_cast<std::int64_t>(CharTokenizer::kDefaultAlphabet.size()));
  const std::vector<kaizen::TokenId> ids = tok.encode("12+(3*4)=");
  CHECK(ids.size() == 9);
  CHECK(ids[0] == 3);  // '1' is the second alphabet character, after pad 0 and eos 1
  std::vector<kaizen::TokenId> with_specials = ids;
  with_specials.push_back(tok.eos_id());
  with_specials.push_back(tok.pad_id());
  CHECK(tok.decode(with_specials) == "12+(3*4)=");
  CHECK_THROWS_WITH(tok.encode("1a"), Catch::StartsWith("CharTokenizer::encode: unknown character 'a' (byte 97) at position 1"));
  const std::vector<kaizen::TokenId> bad{2, 99};
  CHECK_THROWS_WITH(tok.decode(bad), Catch::StartsWith("CharTokenizer::decode: token id 99 at position 1"));
  CHECK_THROWS_WITH(CharTokenizer("abca"), Catch::StartsWith("CharTokenizer: character 'a' appears twice"));
}

TEST_CASE("Arithmetic problems are correct and verified", "[tasks][arithmetic]") {
  const Arithmetic task({.min_digits = 1, .max_digits = 3, .operators = "+-*"});
  CHECK(task.num_categories() == 3);
  kaizen::Rng rng(7);
  std::set<std::int64_t> categories;
  for (int i = 0; i < 300; ++i) {
    const kaizen::tasks::Problem p = task.generate(-1, rng);
    categories.insert(p.category);
    const std::size_t op = p.prompt.find_first_of("+-*", 1);
    REQUIRE(op != std::string::npos);
    const std::int64_t a = std::stoll(p.prompt.substr(0, op));
    const std::int64_t b = std::stoll(p.prompt.substr(op + 1, p.prompt.size() - op - 2));
    CHECK(p.prompt.back() == '=');
    CHECK(std::to_string(a).size() <= static_cast<std::size_t>(1 + p.category));
    const char o = p.prompt[op];
    CHECK(std::stoll(p.answer) == (o == '+' ? a + b : o == '-' ? a - b : a * b));
    CHECK(task.verify(p.prompt, p.reference, p.answer));
    CHECK_FALSE(task.verify(p.prompt, p.reference, std::to_string(std::stoll(p.answer) + 1)));
    CHECK_FALSE(task.verify(p.prompt, p.reference, ""));
  }
  CHECK(categories == std::set<std::int64_t>{0, 1, 2});
  CHECK_THROWS_WITH(task.generate(3, rng), Catch::StartsWith("Arithmetic::generate: category must be < 3, got 3"));
  CHECK_THROWS_WITH(Arithmetic({.min_digits = 0, .max_digits = 2, .operators = "+"}),
                    Catch::StartsWith("Arithmetic: expected 1 <= min_digits <= max_digits <= 9"));
  CHECK_THROWS_WITH(Arithmetic({.min_digits = 1, .max_digits = 2, .operators = "/"}),
                    Catch::StartsWith("Arithmetic: operators must be a non-empty subset"));
}

TEST_CASE("Countdown answers verify and wrong expressions do not", "[tasks][countdown]") {
  const Countdown task({.min_numbers = 2, .max_numbers = 4, .max_value = 9});
  kaizen::Rng rng(3);
  for (int i = 0; i < 300; ++i) {
    const kaizen::tasks::Problem p = task.generate(-1, rng);
    INFO(p.prompt << " " << p.answer);
    CHECK(task.verify(p.prompt, p.reference, p.answer));
    CHECK_FALSE(task.verify(p.prompt, p.reference, p.answer + "+"));
  }
  // Hand-checked cases on "3,5,7>22:".
  CHECK(task.verify("3,5,7>22:", "22", "3*5+7"));
  CHECK(task.verify("3,5,7>22:", "22", "7+5*3"));
  CHECK_FALSE(task.verify("3,5,7>22:", "22", "3*5+8"));     // 8 is not given
  CHECK_FALSE(task.verify("3,5,7>22:", "22", "3*5+7+7"));   // 7 used twice
  CHECK_FALSE(task.verify("3,5,7>22:", "22", "3*5"));       // wrong value
  CHECK_FALSE(task.verify("3,5,7>22:", "22", "7/(5-5)"));   // division by zero / reuse
  CHECK(task.verify("3,6>2:", "2", "6/3"));
  CHECK_THROWS_WITH(Countdown({.min_numbers = 1, .max_numbers = 3, .max_value = 9}),
                    Catch::StartsWith("Countdown: expected 2 <= min_numbers <= max_numbers <= 6"));
}

TEST_CASE("Countdown's checker is exact and counts the numbers", "[tasks][countdown]") {
  const Countdown task({.min_numbers = 2, .max_numbers = 4, .max_value = 9});
  const Countdown all({.min_numbers = 2, .max_numbers = 4, .max_value = 9, .use_all = true});
  // exact rationals: fractions in the middle, no rounding either way
  CHECK(task.verify("3,7,4,7>1:", "1", "3/7+4/7"));
  CHECK(task.verify("2,2,7>7:", "7", "7/2*2"));
  CHECK_FALSE(task.verify("3,2>1:", "1", "3/2"));             // 1.5 is not 1
  CHECK_FALSE(task.verify("1,3,9>3:", "3", "1/3*9+1"));       // 4, not 3
  CHECK(task.verify("1,3,9>3:", "3", "1/3*9"));
  // each number at most once, or exactly once with use_all
  CHECK(task.verify("3,5,7>15:", "15", "3*5"));
  CHECK_FALSE(all.verify("3,5,7>15:", "15", "3*5"));          // 7 unused
  CHECK(all.verify("3,5,7>22:", "22", "3*5+7"));
  CHECK(all.verify("5,5>10:", "10", "5+5"));                   // a repeated number, used as often as given
  CHECK_FALSE(all.verify("5,5>10:", "10", "5+5+5"));
  // malformed or overflowing text is wrong, never an error
  CHECK_FALSE(task.verify("99,99,99,99,99,99>0:", "0", "99*99*99*99*99*99"));
  CHECK_FALSE(task.verify("3,5,7>22:", "22", "3*5+7=22"));
  CHECK_FALSE(task.verify("3,5,7>22:", "22", "((((3*5+7"));
  kaizen::Rng rng(11);
  for (int i = 0; i < 300; ++i) {
    const kaizen::tasks::Problem p = all.generate(-1, rng);
    CHECK(all.verify(p.prompt, p.reference, p.answer));  // the generator's solution uses every number
  }
}

TEST_CASE("CheckedTask swaps the answer check and keeps the problems", "[tasks][checked]") {
  const Arithmetic base({.min_digits = 1, .max_digits = 2, .operators = "+"});
  // an independent check: the completion must be exactly the reference
  auto exact = [](std::string_view completion, std::string_view reference) { return completion == reference; };
  const kaizen::tasks::CheckedTask<Arithmetic, decltype(exact)> task(base, exact);
  static_assert(kaizen::tasks::VerifiableTask<decltype(task)>);
  CHECK(task.num_categories() == base.num_categories());
  kaizen::Rng a(5), b(5);
  for (int i = 0; i < 50; ++i) {
    const auto p = task.generate(-1, a), q = base.generate(-1, b);
    CHECK(p.prompt == q.prompt);
    CHECK(task.verify(p.prompt, p.reference, p.answer));
    CHECK(base.verify(p.prompt, p.reference, "x = " + p.answer));       // the light check: last number
    CHECK_FALSE(task.verify(p.prompt, p.reference, "x = " + p.answer));  // the swapped check
  }
}

TEST_CASE("HeldOutSplit never trains on a held-out prompt", "[tasks][split]") {
  const Arithmetic task({.min_digits = 1, .max_digits = 1, .operators = "+"});
  const kaizen::tasks::HeldOutSplit<Arithmetic> split(task, 40, 5);
  std::set<std::string> held;
  for (const auto& p : split.held_out()) held.insert(p.prompt);
  CHECK(held.size() == 40);
  kaizen::Rng rng(9);
  for (int i = 0; i < 500; ++i) CHECK(held.count(split.train(-1, rng).prompt) == 0);
  CHECK_THROWS_WITH(kaizen::tasks::HeldOutSplit<Arithmetic>(task, 101, 5),
                    Catch::StartsWith("HeldOutSplit: could not draw 101 distinct problems"));
  const CharTokenizer tok;
  const kaizen::Prompt prompt = kaizen::tasks::make_prompt(split.held_out()[0], tok);
  CHECK(tok.decode(prompt.tokens) == split.held_out()[0].prompt);
  CHECK(prompt.reference == split.held_out()[0].reference);
  const auto answer = kaizen::tasks::answer_tokens(split.held_out()[0], tok);
  CHECK(answer.back() == tok.eos_id());
}
