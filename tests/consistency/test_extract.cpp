#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/consistency/extract.hpp>
#include <kaizen/core/rng.hpp>

using namespace kaizen;
using namespace kaizen::consistency;
using std::nullopt;

TEST_CASE("extract_boxed matches nested braces and takes the last complete box", "[consistency][extract]") {
  CHECK(extract_boxed("so the answer is \\boxed{42}.") == "42");
  CHECK(extract_boxed("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}");
  CHECK(extract_boxed("\\boxed{a^{2} + {b_{1}}}") == "a^{2} + {b_{1}}");
  CHECK(extract_boxed("first \\boxed{1} then \\boxed{ 2 }") == "2");
  CHECK(extract_boxed("\\boxed{3} and an unclosed \\boxed{4") == "3");
  CHECK(extract_boxed("\\boxed {12}") == "12");
  CHECK(extract_boxed("\\fbox{7}") == "7");
  CHECK(extract_boxed("\\boxed{5} later \\fbox{6}") == "6");
  CHECK(extract_boxed("\\boxed{\\{1, 2\\}}") == "\\{1, 2\\}");
  CHECK(extract_boxed("\\boxed{}") == nullopt);
  CHECK(extract_boxed("\\boxed") == nullopt);
  CHECK(extract_boxed("no box here") == nullopt);
  CHECK(extract_boxed("") == nullopt);
}

TEST_CASE("extract_last_number handles separators, decimals, fractions and signs", "[consistency][extract]") {
  CHECK(extract_last_number("The total is 1,234.") == "1234");
  CHECK(extract_last_number("1,000,000 grains") == "1000000");
  CHECK(extract_last_number("3 apples and 4.50 pears") == "4.5");
  CHECK(extract_last_number("x = -7") == "-7");
  CHECK(extract_last_number("+3") == "3");
  CHECK(extract_last_number("3-4") == "4");  // binary minus, not a sign
  CHECK(extract_last_number("ratio 3/4") == "0.75");
  CHECK(extract_last_number("1/3 of it") == "1/3");
  CHECK(extract_last_number("2/6") == "1/3");
  CHECK(extract_last_number("x = \\frac{6}{8}") == "0.75");
  CHECK(extract_last_number("-\\frac{1}{3}") == "-1/3");
  CHECK(extract_last_number("\\dfrac{-3}{6}") == "-0.5");
  CHECK(extract_last_number("list 1,2,3") == "3");
  CHECK(extract_last_number("12,34") == "34");  // not a thousands group
  CHECK(extract_last_number("end of sentence 5.") == "5");
  CHECK(extract_last_number("0.000") == "0");
  CHECK(extract_last_number("-0") == "0");
  CHECK(extract_last_number("007") == "7");
  CHECK(extract_last_number(".5") == "0.5");
  CHECK(extract_last_number("1.25/0.5") == "2.5");
  CHECK(extract_last_number("123456789012345678901234.500") == "123456789012345678901234.5");
  CHECK(extract_last_number("v2 and x3") == nullopt);  // digits inside words are not numbers
  CHECK(extract_last_number("5/0") == nullopt);        // a zero denominator is no number
  CHECK(extract_last_number("no digits") == nullopt);
  CHECK(extract_last_number("") == nullopt);
}

TEST_CASE("extract_choice finds parenthesised, answer-prefixed and bare letters", "[consistency][extract]") {
  CHECK(extract_choice("Between (A) and (C), the answer is (C).") == 'C');
  CHECK(extract_choice("Answer: B") == 'B');
  CHECK(extract_choice("a cat sat. The answer is D because A fails") == 'A');
  CHECK(extract_choice("the answer is D.") == 'D');
  CHECK(extract_choice("  B. ") == 'B');
  CHECK(extract_choice("E)") == 'E');
  CHECK(extract_choice("(F)") == nullopt);
  CHECK(extract_choice("(F)", "ABCDEF") == 'F');
  CHECK(extract_choice("the answer is a guess") == nullopt);
  CHECK(extract_choice("nothing") == nullopt);
}

TEST_CASE("normalize_answer canonicalises latex wrappers, spaces and numbers", "[consistency][extract]") {
  CHECK(normalize_answer("$\\text{1,000}$ ") == "1000");
  CHECK(normalize_answer("\\dfrac{1}{2}") == "0.5");
  CHECK(normalize_answer("0.50") == "0.5");
  CHECK(normalize_answer("2/4") == "0.5");
  CHECK(normalize_answer("x + 1.") == "x+1");
  CHECK(normalize_answer("\\left( 1, 2 \\right)") == "(1,2)");
  CHECK(normalize_answer("\\textbf{ \\text{ 7 } }") == "7");
  CHECK(normalize_answer("3\\,000") == "3000");
  CHECK(normalize_answer("\\text{a}+\\text{b}") == "\\text{a}+\\text{b}");  // not one wrapper
  CHECK(normalize_answer("   ") == "");
}

TEST_CASE("extract_answer applies a format policy or a user extractor, then normalises", "[consistency][extract]") {
  CHECK(extract_answer("so x = 3, hence \\boxed{2.50}") == "2.5");
  CHECK(extract_answer("the answer is 42") == "42");
  CHECK(extract_answer("nothing to see") == nullopt);
  CHECK(extract_answer("\\boxed{ }") == nullopt);
  CHECK(extract_answer("it is 7", {.format = AnswerFormat::boxed}) == nullopt);
  CHECK(extract_answer("\\boxed{7} then 8", {.format = AnswerFormat::last_number}) == "8");
  CHECK(extract_answer("answer: (B)", {.format = AnswerFormat::choice}) == "B");
  auto after_hashes = [](std::string_view text) -> std::optional<std::string> {
    const auto at = text.rfind("####");
    if (at == std::string_view::npos) return nullopt;
    return std::string(text.substr(at + 4));
  };
  static_assert(AnswerExtractor<decltype(after_hashes)>);
  static_assert(!AnswerExtractor<int>);
  CHECK(extract_answer("work... #### 1,200", after_hashes) == "1200");
  CHECK(extract_answer("no marker", after_hashes) == nullopt);
  CHECK(extract_answer("#### ", after_hashes) == nullopt);
}

namespace {
// Random text over arbitrary bytes, or over the tokens extraction reacts to (denser in edge cases).
std::string random_text(Rng& rng, bool bytes) {
  static const std::vector<std::string_view> tokens{
      "\\boxed", "\\fbox", "{", "}", "\\{", "\\}", "\\", "\\frac", "\\dfrac", "$", "\\text", "(", ")", "A", "E",
      "answer", "-", "+", ".", ",", "/", "0", "7", "999", "1,234", " ", "\n", "x", "\\left", "\\,", "\xff", std::string_view("\0", 1)};
  const auto length = uniform_index(rng, 300);
  std::string out;
  for (std::uint64_t i = 0; i < length; ++i) {
    if (bytes) out.push_back(static_cast<char>(uniform_index(rng, 256)));
    else out.append(tokens[uniform_index(rng, tokens.size())]);
  }
  return out;
}
}  // namespace

TEST_CASE("extraction never crashes and keeps its invariants on arbitrary bytes (fuzz)", "[consistency][extract][fuzz]") {
  Rng rng(20261127);
  for (int iteration = 0; iteration < 20000; ++iteration) {
    const std::string text = random_text(rng, iteration % 2 == 0);
    if (auto boxed = extract_boxed(text)) {
      CHECK(!boxed->empty());
      CHECK(text.find(*boxed) != std::string::npos);
    }
    if (auto number = extract_last_number(text)) {
      // A canonical number is a fixed point: extracting from it gives it back.
      CHECK(extract_last_number(*number) == number);
      CHECK(normalize_answer(*number) == *number);
    }
    if (auto letter = extract_choice(text)) CHECK(std::string_view("ABCDE").find(*letter) != std::string_view::npos);
    for (auto format : {AnswerFormat::boxed_then_number, AnswerFormat::boxed, AnswerFormat::last_number, AnswerFormat::choice})
      if (auto answer = extract_answer(text, {.format = format})) CHECK(!answer->empty());
  }
}

TEST_CASE("extraction stays linear on large adversarial inputs", "[consistency][extract][fuzz]") {
  // Each would take minutes if any extractor were quadratic; ctest's timeout turns a hang into a failure.
  std::string nested;
  for (int i = 0; i < 100000; ++i) nested += "\\text{";
  nested += "5";
  for (int i = 0; i < 100000; ++i) nested += "}";
  CHECK(normalize_answer(nested) == "5");
  CHECK(extract_answer("\\boxed{" + nested + "}") == "5");
  const std::string opens(1000000, '{');
  CHECK(extract_boxed("\\boxed" + opens) == nullopt);
  std::string boxes;
  for (int i = 0; i < 100000; ++i) boxes += "\\boxed{";
  CHECK(extract_boxed(boxes) == nullopt);
  const std::string digits(1000000, '9');
  CHECK(extract_last_number(digits) == digits);
  std::string signs;
  for (int i = 0; i < 200000; ++i) signs += "-\\frac{1";
  CHECK(extract_last_number(signs) == "1");
  std::string answers;
  for (int i = 0; i < 200000; ++i) answers += "answer ";
  CHECK(extract_choice(answers) == nullopt);
}

TEST_CASE("extract_boxed is linear on nested boxes and keeps an escaped trailing space", "[consistency][extract]") {
  // 2 x 64K nested boxes: each box's content used to be copied, quadratic in the depth.
  std::string nested;
  for (int i = 0; i < 65536; ++i) nested += "\\boxed{";
  nested += "7";
  for (int i = 0; i < 65536; ++i) nested += "}";
  CHECK(extract_boxed(nested) == "7");
  CHECK(extract_boxed("\\framebox{9}") == "9");
  CHECK(extract_boxed("\\boxed{7\\ }") == "7\\ ");
  CHECK(extract_answer("\\boxed{7\\ }") == "7");
}

TEST_CASE("extract_last_number returns nothing rather than a wrong number", "[consistency][extract]") {
  CHECK(extract_last_number("$\\frac {5}{36}$") == "5/36");
  CHECK(extract_last_number("$\\$1{,}250$") == "1250");
  CHECK(extract_last_number("2\\tfrac{1}{2}") == "2.5");
  CHECK(extract_last_number("-2\\frac{1}{4} m") == "-2.25");
  CHECK(extract_last_number("3\\frac{5}{2}") == "2.5");  // not a proper fraction: no mixed number
  CHECK(extract_last_number("\xE2\x88\x92" "3") == "-3");  // U+2212 MINUS SIGN
  CHECK(extract_last_number("5\xE2\x88\x92" "3") == "3");  // binary minus
  CHECK(extract_last_number("3.0.1") == nullopt);
  CHECK(extract_last_number("version 3.0.1 gives 5") == "5");
  CHECK(extract_last_number("7 then \\frac{x}{36}") == nullopt);
  CHECK(extract_last_number("\\frac{\\sqrt{3}}{2}") == nullopt);
  CHECK(extract_last_number("5 then 3/0") == nullopt);
}

TEST_CASE("extract_answer reads the number right after the answer phrase", "[consistency][extract]") {
  CHECK(extract_answer("The answer is 7, not 9.") == "7");
  CHECK(extract_answer("so the final answer is: $-3.50$. We checked 4 cases") == "-3.5");
  CHECK(extract_answer("Answer: 12\nthen 13") == "12");
  CHECK(extract_answer_phrase("The answer is 7, not 9.") == "7, not 9");
  CHECK(extract_answer_phrase("answer isotope") == nullopt);
  CHECK(extract_answer_phrase("the answer is .") == nullopt);
}

TEST_CASE("normalize_answer keeps escaped backslashes and is idempotent", "[consistency][extract]") {
  CHECK(normalize_answer("a \\\\ b") == "a\\\\b");
  CHECK(normalize_answer("\\text{Monday}.") == "Monday");
  CHECK(normalize_answer("\\text{Monday}") == "Monday");
  CHECK(normalize_answer("\\text{$5$}") == "5");
  CHECK(normalize_answer("$\\text{ 1,000 }$.") == "1000");
  CHECK(normalize_answer("7\\ ") == "7");
  CHECK(normalize_answer("\\,\\text{5}") == "5");  // needs a second pass: settled by the repetition
  Rng rng(77);
  for (int iteration = 0; iteration < 20000; ++iteration) {
    const std::string text = random_text(rng, iteration % 2 == 0);
    const std::string once = normalize_answer(text);
    CHECK(normalize_answer(once) == once);
  }
}
