#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <kaizen/core/rng.hpp>
#include <kaizen/reward/math_verifier.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/problem.hpp>

using namespace kaizen;
using namespace kaizen::reward;

namespace {
bool same(std::string_view answer, std::string_view gold) { return MathVerifier{}.equivalent(answer, gold); }

struct Item {
  std::string text, gold, kind;
  bool label = false;
  FinishReason finish = FinishReason::stop;
};

std::vector<Item> corpus() {
  std::ifstream in(KAIZEN_MATH_CORPUS);
  REQUIRE(in.good());
  std::vector<Item> out;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    out.push_back({j.at("text"), j.at("gold"), j.at("kind"), j.at("label").get<bool>(),
                   j.value("finish", std::string("stop")) == "length" ? FinishReason::length : FinishReason::stop});
  }
  return out;
}
}  // namespace

TEST_CASE("extraction follows boxes, tags, phrases, GSM8K and the last number", "[reward][math]") {
  CHECK(extract_math_answer("so \\boxed{12} apples").answer == "12");
  CHECK(extract_math_answer("so \\framebox{12}").answer == "12");
  CHECK(extract_math_answer("<answer>\\frac{1}{2}</answer>").answer == "\\frac{1}{2}");
  CHECK(extract_math_answer("The answer is 7, not 9.").answer == "7");
  CHECK(extract_math_answer("**Answer:** 12").answer == "12");
  CHECK(extract_math_answer("work\n#### 1,200\n").answer == "1,200");
  CHECK(extract_math_answer("She has 10 + 5 = 15 apples.").answer == "15");
  CHECK(extract_math_answer("She has 15 apples.", {.last_number_fallback = false}).failure == ExtractFailure::no_answer);
  CHECK(extract_math_answer("We get 36. Then we add the").failure == ExtractFailure::truncated);
  CHECK(extract_math_answer("\\boxed{2} or rather \\boxed{3}").failure == ExtractFailure::conflicting);
  CHECK(extract_math_answer("\\boxed{3} and again \\boxed{3.0}").answer == "3.0");
  CHECK(extract_math_answer("\\boxed{2 or 3}").failure == ExtractFailure::hedge);
  CHECK(extract_math_answer("\\boxed{3} then \\boxed{4").failure == ExtractFailure::truncated);
  CHECK(extract_math_answer("<think>maybe \\boxed{5}</think> it is \\boxed{6}").answer == "6");
  CHECK(extract_math_answer("<think>so \\boxed{5}</think>").answer == "5");  // nothing after: fallback
  CHECK(extract_math_answer("<think>so \\boxed{5}</think>", {.think_fallback = false}).failure == ExtractFailure::no_answer);
  CHECK(extract_math_answer("<think>it is \\boxed{5}").failure == ExtractFailure::truncated);
}

TEST_CASE("equivalent forms compare equal through the CAS", "[reward][math]") {
  CHECK(same("3\\sqrt{2}", "\\sqrt{18}"));
  CHECK(same("1024", "2^{10}"));
  CHECK(same("\\frac12", "0.5"));
  CHECK(same("\\{3, 1, 2\\}", "\\{1,2,3\\}"));
  CHECK(same("(1, 2]", "(1,2]"));
  CHECK(same("\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"));
  CHECK(same("x^2+2x+1", "(x+1)^2"));
  CHECK(same("2x - y + 1 = 0", "y=2x+1"));
  CHECK(same("\\sin^2 x + \\cos^2 x", "1"));
  CHECK(same("\\pm 2", "-2, 2"));
  CHECK(same("x \\in [2, 5)", "[2,5)"));
  CHECK(same("1.5 \\times 10^{6}", "1500000"));
  CHECK(same("1.5e3", "1500"));
  CHECK(same("2\\frac{1}{2}", "\\frac52"));
  CHECK(same("2 1/2", "\\frac52"));
  CHECK(same("twenty-one", "21"));
  CHECK(same("\xE2\x88\x92" "3", "-3"));
  CHECK(same("\xEF\xBC\x91\xEF\xBC\x92", "12"));
  CHECK(same("1\\,234", "1234"));
  CHECK(same("\\$1{,}250", "1250"));
  CHECK(same("80 km/h", "80"));
  CHECK(same("60^\\circ", "60"));
  CHECK(same("\\text{Monday}", "monday"));
  CHECK(same("3+4i", "4i+3"));
  CHECK(!same("(-1, 3)", "(3,-1)"));
  CHECK(!same("0.3333333", "\\frac{1}{3}"));
  CHECK(!same("3.14", "\\pi"));
  CHECK(!same("(1, 2)", "(1,2]"));
  CHECK(!same("\\{1,2\\}", "\\{1,2,3\\}"));
  CHECK(!same("3", "-3, 3"));
  CHECK(!same("2\\pi", "\\pi"));
}

TEST_CASE("options: percent rule, list order, tolerance, interval as tuple", "[reward][math]") {
  auto with = [](auto change) {
    MathVerifierOptions options;
    change(options);
    return MathVerifier(options);
  };
  CHECK(same("45\\%", "45"));
  CHECK(same("45\\%", "0.45"));
  CHECK(!with([](auto& o) { o.equal.percent = PercentRule::as_number; }).equivalent("45\\%", "0.45"));
  CHECK(!with([](auto& o) { o.equal.percent = PercentRule::as_fraction; }).equivalent("45\\%", "45"));
  CHECK(same("3, 2, 1", "1, 2, 3"));
  CHECK(!with([](auto& o) { o.equal.ordered_lists = true; }).equivalent("3, 2, 1", "1, 2, 3"));
  CHECK(with([](auto& o) { o.equal.rel_tol = 1e-3; }).equivalent("0.33333", "\\frac13"));
  CHECK(!with([](auto& o) { o.equal.tuple_is_open_interval = false; }).equivalent("(1, 2)", "(1,2]") );
  CHECK(!with([](auto& o) { o.equal.equation_rhs = false; }).equivalent("x = 3", "3"));
}

TEST_CASE("the verifier models Verifier and rejects truncated completions", "[reward][math]") {
  static_assert(Verifier<MathVerifier>);
  static_assert(OutcomeReward<MathVerifier>);
  const MathVerifier verifier;
  Prompt prompt;
  prompt.reference = "\\frac{1}{2}";
  Completion completion;
  completion.text = "so the answer is \\boxed{0.5}";
  CHECK(verifier(prompt, completion));
  completion.finish = FinishReason::length;
  CHECK_FALSE(verifier(prompt, completion));
  CHECK(verifier.check("The answer is (B).", "B").correct);
  CHECK_FALSE(verifier.check("The answer is (B).", "C").correct);
  CHECK(verifier.check("\\boxed{\\text{(A)}}", "A").correct);
  prompt.reference = "  ";
  REQUIRE_THROWS_WITH(verifier(prompt, completion), Catch::Contains("MathVerifier::check: the gold answer is empty"));
}

TEST_CASE("guards: deep nesting, huge powers and bad input are rejected, not crashed", "[reward][math]") {
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "(";
  deep += "1";
  for (int i = 0; i < 100000; ++i) deep += ")";
  const auto parsed = parse_math(deep, {.max_length = 1000000});
  CHECK(!parsed.expr);
  CHECK(parsed.error == "too large");  // the token budget trips first
  CHECK(parse_math(std::string(70, '(') + "1" + std::string(70, ')')).error == "too deep");
  CHECK(parse_math(std::string(20, '(') + "1" + std::string(20, ')')).expr);
  CHECK(parse_math(std::string(30000, '1')).error == "too long");
  CHECK(parse_math("2 or 3").error == "hedge");
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(same("2^{10^{9}}", "4"));
  CHECK_FALSE(same("(x+1)^{100000}", "1"));
  CHECK_FALSE(same("1000!", "5"));
  CHECK_FALSE(same("\\frac{1}{0}", "5"));
  CHECK_FALSE(same("212 /", "212"));  // found by the fuzzer: "212/" is no plain number (strtod, no throw)
  CHECK_FALSE(MathVerifier{}.check("Final answer: The final answer is $212 /$.", "3").correct);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  const auto result = math_equal_explained(*parse_math("2^{10^{9}}").expr, *parse_math("4").expr);
  CHECK(result.why == "exponent too large");
}

TEST_CASE("normalize_math is idempotent over the corpus and random strings", "[reward][math][property]") {
  for (const auto& item : corpus()) {
    for (std::string_view s : {std::string_view(item.gold), std::string_view(item.text)}) {
      const std::string once = normalize_math(s);
      CHECK(normalize_math(once) == once);
      const std::string key = consistency::normalize_answer(s);
      CHECK(consistency::normalize_answer(key) == key);
    }
    if (auto answer = extract_math_answer(item.text).answer) {
      const std::string once = normalize_math(*answer);
      CHECK(normalize_math(once) == once);
    }
  }
  static const std::vector<std::string_view> tokens{
      "\\frac", "{", "}", "(", ")", "[", "]", "\\{", "\\}", "1", "23", ",", "456", ".", "x", "y", "=", "+", "-", "^",
      "\\sqrt", "\\pi", "\\text{cm}", "\\text{", " ", "or", "and", "%", "\\%", "\\$", "$", "\\left", "\\right",
      "\\begin{pmatrix}", "\\end{pmatrix}", "&", "\\\\", "\\pm", "\\cup", "\\infty", "e", "5e3", "!", "|", "_",
      "\xE2\x88\x92", "\xEF\xBC\x91", "five", "twenty-", "\\,", "\\boxed", "\\le", "\\in", "\xff"};
  Rng rng(19);
  for (int iteration = 0; iteration < 20000; ++iteration) {
    std::string s;
    const auto length = uniform_index(rng, 40);
    for (std::uint64_t i = 0; i < length; ++i) {
      if (iteration % 4 == 0) s.push_back(static_cast<char>(uniform_index(rng, 256)));
      else s.append(tokens[uniform_index(rng, tokens.size())]);
    }
    const std::string once = normalize_math(s);
    CHECK(normalize_math(once) == once);
    const std::string key = consistency::normalize_answer(s);
    CHECK(consistency::normalize_answer(key) == key);
  }
}

TEST_CASE("corpus accuracy stays above the measured floor", "[reward][math][corpus]") {
  const MathVerifier verifier;
  int n = 0, right = 0, false_accepts = 0;
  for (const auto& item : corpus()) {
    const bool verdict = verifier.check(item.text, item.gold, item.finish).correct;
    ++n;
    right += verdict == item.label;
    false_accepts += verdict && !item.label;
    if (verdict != item.label) WARN("misjudged: " << item.kind << " gold=" << item.gold << " text=" << item.text);
  }
  const double accuracy = static_cast<double>(right) / n;
  INFO("accuracy " << accuracy << " false accepts " << false_accepts << " of " << n);
  CHECK(n >= 500);
  // Measured 597/597 on 2026-12-03 after the held-out fixes (567/567 before the first held-out 30) (the corpus was also the development set, see docs/rewards.md);
  // the floor leaves room for deliberate rule changes, not for regressions of more than ~1%.
  CHECK(accuracy >= 0.99);
  CHECK(false_accepts <= 2);
}

TEST_CASE("held-out fixes: units with exponents, hedges around the answer, trailing periods", "[reward][math]") {
  const MathVerifier verifier;
  // first held-out 30 (2026-12-03): a unit with an exponent was read as a factor
  CHECK(verifier.check(R"(The area is $\boxed{25\sqrt{3}\text{ cm}^2}$.)", R"(25\sqrt3)").correct);
  CHECK(same(R"(12\text{ m}^2)", "12"));
  CHECK_FALSE(same(R"(12\text{ m}^2)", "144"));
  // a hedge after the box, in the same sentence
  const auto hedged = verifier.check(R"(Between 3 and 4, I'd say \boxed{3}, though 4 is also possible.)", "3");
  CHECK_FALSE(hedged.correct);
  CHECK(hedged.reason == "hedge");
  CHECK_FALSE(verifier.check(R"(So $x = \boxed{4}$, perhaps 5.)", "4").correct);
  // ...but not in the next sentence, and not "possible" alone
  CHECK(verifier.check(R"(So $\boxed{6}$ is the smallest possible value.)", "6").correct);
  CHECK(verifier.check(R"(The answer is $\boxed{4}$. Other values or cases fail.)", "4").correct);
  // second held-out 64: a hedge in the clause after an answer phrase, "$11.50." and \text{m/s}
  CHECK_FALSE(verifier.check("I think the answer is 12, but it could also be 14.", "12").correct);
  CHECK(verifier.check("The final answer is $7$, not 9.", "7").correct);
  CHECK(verifier.check("With the coupon he pays $11.50.\nThe answer is $11.50.", "11.5").correct);
  CHECK_FALSE(verifier.check("The answer is $13.50.", "11.5").correct);
  CHECK(verifier.check(R"(The speed is $\boxed{15\ \text{m/s}}$.)", "15").correct);
}

TEST_CASE("the rational fast path agrees with the CAS and falls back on overflow", "[reward][math]") {
  // plain rational arithmetic: decided without GiNaC, same verdicts
  CHECK(same("2^{10}", "1024"));
  CHECK(same("1.5e3", "1500"));
  CHECK(same("5!", "120"));
  CHECK(same(R"(\frac{3}{8})", "0.375"));
  CHECK(same("2^{-2}", "0.25"));
  CHECK(same("-(3-5)", "2"));
  CHECK_FALSE(same("0.3333333", R"(\frac13)"));  // distinct exact values: only within rel_tol 1e-9
  CHECK_FALSE(same("2^{10}", "1000"));
  CHECK(same("0.3333333333333", R"(\frac13)"));   // within 1e-9 relative, as on the CAS path
  // beyond 64 bits: GiNaC decides
  CHECK(same("10^{20}", "100000000000000000000"));
  CHECK(same("2^{62} \\cdot 2^{62}", "2^{124}"));
  CHECK_FALSE(same("10^{20}", "200000000000000000000"));
  CHECK(same("21!", "51090942171709440000"));
  // the gold cache: same verdicts with it on and off, and with golds alternating
  MathVerifierOptions off;
  off.cache_gold = false;
  const MathVerifier cached, uncached(off);
  for (int round = 0; round < 3; ++round) {
    for (auto [answer, gold, expected] : {std::tuple{"3\\sqrt2", "\\sqrt{18}", true}, {"4", "\\sqrt{18}", false},
                                          {"1/2", "0.5", true}, {"0.5", "\\sqrt{18}", false}}) {
      CHECK(cached.equivalent(answer, gold) == expected);
      CHECK(uncached.equivalent(answer, gold) == expected);
    }
  }
}

TEST_CASE("tasks verified by the math verifier through CheckedTask", "[reward][math][tasks]") {
  const tasks::Arithmetic arithmetic(tasks::ArithmeticOptions{.min_digits = 1, .max_digits = 3, .operators = "+-*"});
  const tasks::CheckedTask<tasks::Arithmetic, MathVerifier> task(arithmetic, MathVerifier{});
  static_assert(tasks::VerifiableTask<decltype(task)>);
  Rng rng(7);
  for (int i = 0; i < 200; ++i) {
    const tasks::Problem p = task.generate(-1, rng);
    CHECK(task.verify(p.prompt, p.reference, p.answer));
    CHECK(task.verify(p.prompt, p.reference, "The answer is \\boxed{" + p.answer + "}."));
    CHECK_FALSE(task.verify(p.prompt, p.reference, std::to_string(std::stoll(p.answer) + 1)));
    CHECK_FALSE(task.verify(p.prompt, p.reference, ""));
  }
  // where the verifier and the light check differ: a hedge (the last number is right), a decimal
  CHECK(arithmetic.verify("2+3=", "5", "4 or 5"));
  CHECK_FALSE(task.verify("2+3=", "5", "4 or 5"));
  CHECK(task.verify("2+3=", "5", "5.0"));
}

namespace {

/// A random answer text: rational arithmetic, symbols, roots, functions, powers, percents, lists,
/// sets, intervals, equations and `\pm` (the screen's inputs and the CAS path's).
struct RandomAnswer {
  Rng& rng;
  bool arithmetic_only = false;  ///< numbers, + - * / ^, groups and fractions only (the arithmetic scan's grammar and near it)
  std::uint64_t pick(std::uint64_t n) { return uniform_index(rng, n); }
  std::string number() {
    switch (pick(10)) {
      case 0: return std::to_string(pick(13));
      case 1: return std::to_string(pick(1000));
      case 2: return std::to_string(pick(10)) + "." + std::to_string(pick(100));
      case 3: return "0." + std::string(pick(3), '0') + std::to_string(1 + pick(99));
      case 4: return std::to_string(pick(100000000000000000ULL));
      case 5: return "0" + std::to_string(pick(10));
      case 6: return "1.5e" + std::to_string(pick(4));
      case 7: {
        static const std::vector<std::string_view> odd{"five", "Forty", "twenty-one", "Twenty-one", "\xEF\xBC\x91\xEF\xBC\x92", "\xE2\x88\x92 3",
                                                       "1,234", "1,23", "1{,}250", "1\\,234", "5!", "3!^2", "2^3!", "2e", "1.5E-2", "60^\\circ",
                                                       "\\$18", "\\left(3\\right)", "2^-3", "2^1,000", "3\xC3\x97" "4", ".5", "5.", "007"};
        return std::string(odd[pick(odd.size())]);
      }
      default: return std::to_string(1 + pick(9));
    }
  }
  std::string atom(int depth) {
    if (depth > 3) return number();
    static const std::vector<std::string_view> functions{"\\sin", "\\cos", "\\tan", "\\ln", "\\exp", "\\arctan", "\\arcsin", "\\sec", "\\cot"};
    static constexpr std::uint64_t arithmetic[] = {0, 1, 13, 14};
    switch (arithmetic_only ? arithmetic[pick(4)] : pick(20)) {
      case 0: return "(" + expr(depth + 1) + ")";
      case 1: return "\\frac{" + expr(depth + 1) + "}{" + expr(depth + 1) + "}";
      case 2: return "x";
      case 3: return "y";
      case 4: return "\\sqrt{" + expr(depth + 1) + "}";
      case 5: return "\\pi";
      case 6: return "e";
      case 7: return std::string(functions[pick(functions.size())]) + "(" + expr(depth + 1) + ")";
      case 8: return "|" + expr(depth + 1) + "|";
      case 9: return "\\infty";
      case 10: return "i";
      case 11: return "\\sqrt[3]{" + expr(depth + 1) + "}";
      case 12: return number() + "\\%";
      case 13: return "{" + expr(depth + 1) + "}";
      default: return number();
    }
  }
  std::string unary(int depth) {
    static const std::vector<std::string_view> exponents{"2", "3", "{-1}", "-2", "0", "{1/2}", "{x}", "{70}", "{10^{9}}", "34"};
    std::string a = atom(depth);
    if (pick(5) == 0) a += "^" + std::string(exponents[pick(exponents.size())]);
    if (pick(8) == 0) a = "-" + a;
    return a;
  }
  std::string expr(int depth) {
    static const std::vector<std::string_view> products{"*", "\\cdot ", " \\times ", "/", " ", ""};
    std::string e = unary(depth);
    while (pick(3) == 0) e += std::string(products[pick(products.size())]) + unary(depth);
    while (pick(3) == 0) e += (pick(2) ? " + " : "-") + unary(depth);
    return e;
  }
  std::string top() {
    if (arithmetic_only) return pick(4) ? expr(0) : "$" + expr(0) + "$";
    switch (pick(10)) {
      case 0: return expr(0) + ", " + expr(0);
      case 1: return "\\{" + expr(1) + ", " + expr(1) + "\\}";
      case 2: return "x = " + expr(0);
      case 3: return "(" + expr(1) + ", " + expr(1) + "]";
      case 4: return expr(0) + " \\pm " + expr(1);
      case 5: return "$" + expr(0) + "$";
      default: return expr(0);
    }
  }
  /// The same value written differently, or nearly the same (around the tolerance).
  std::string variant(const std::string& a) {
    switch (pick(7)) {
      case 0: return "(" + a + ")";
      case 1: return "2\\cdot(" + a + ")/2";
      case 2: return "(" + a + ") + 0";
      case 3: return "(" + a + ")\\cdot 1.0000000001";
      case 4: return "(" + a + ") + 10^{-12}";
      case 5: return "(" + a + ")\\cdot 1.000001";
      default: return "$" + a + "$";
    }
  }
};

}  // namespace

TEST_CASE("the numeric screen and the arithmetic scan give the CAS path's verdicts", "[reward][math][property]") {
  // Every pair of the corpus' answers and golds (parsed), screen on and off.
  std::vector<std::string> texts;
  {
    std::ifstream in(KAIZEN_MATH_CORPUS);
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      const auto j = nlohmann::json::parse(line);
      texts.push_back(j.at("gold"));
      if (auto answer = extract_math_answer(j.at("text").get<std::string>()).answer) texts.push_back(*answer);
    }
  }
  std::sort(texts.begin(), texts.end());
  texts.erase(std::unique(texts.begin(), texts.end()), texts.end());
  std::vector<MathExpr> trees;
  for (const auto& t : texts)
    if (auto parsed = parse_math(t); parsed.expr) trees.push_back(std::move(*parsed.expr));
  REQUIRE(trees.size() > 300);
  EqualOptions screen_off;
  screen_off.numeric_screen = false;
  int equal = 0, mismatches = 0;
  for (const auto& gold : trees) {
    for (const auto& given : trees) {
      const bool with = math_equal(gold, given), without = math_equal(gold, given, screen_off);
      equal += without;
      if (with != without && ++mismatches <= 5) FAIL_CHECK("screen " << with << " vs CAS " << without << ": " << print_math(gold) << " | " << print_math(given));
    }
  }
  CHECK(mismatches == 0);
  CHECK(equal > 1000);  // measured 1337 equal pairs of 190096: the pairs exercise both verdicts

  // Random answers: a random pair or a value and a rewriting of it, through the whole verifier with
  // both screens on and off (MathVerifier::equivalent).
  MathVerifierOptions off;
  off.equal.numeric_screen = false;
  off.arithmetic_screen = false;
  const MathVerifier screened, unscreened(off);
  Rng rng(2026);
  RandomAnswer random{rng};
  int pairs = 0, accepted = 0;
  mismatches = 0;
  for (int k = 0; k < 4000; ++k) {
    random.arithmetic_only = k % 2 == 1;
    std::string a = random.top(), b = random.pick(2) ? random.top() : random.variant(a);
    if (random.pick(2)) std::swap(a, b);
    const bool with = screened.equivalent(a, b), without = unscreened.equivalent(a, b);
    ++pairs;
    accepted += without;
    if (with != without && ++mismatches <= 5) FAIL_CHECK("screened " << with << " vs unscreened " << without << ": " << a << " | " << b);
  }
  CHECK(mismatches == 0);
  CHECK(accepted > pairs / 10);
}

TEST_CASE("the numeric screen decides what it can and leaves the rest to the CAS", "[reward][math]") {
  using math_detail::arithmetic_value;
  using math_detail::SmallRational;
  // the arithmetic scan: values of plain rational arithmetic, nothing for anything else
  CHECK(arithmetic_value("$-3$") == SmallRational{-3, 1});
  CHECK(arithmetic_value("\\frac{3}{4}") == SmallRational{3, 4});
  CHECK(arithmetic_value("1.5 \\times 10^{6}") == SmallRational{1500000, 1});
  CHECK(arithmetic_value("2^{10} - 2^-1") == SmallRational{2047, 2});
  CHECK(arithmetic_value("-2^2") == SmallRational{-4, 1});
  CHECK(arithmetic_value("1/2*3") == SmallRational{3, 2});
  // as the lexer reads them: separators, scientific notation, words, fullwidth digits, U+2212, n!, degrees, \$
  CHECK(arithmetic_value("1,234.5") == SmallRational{2469, 2});
  CHECK(arithmetic_value("1{,}250") == SmallRational{1250, 1});
  CHECK(arithmetic_value("1.5e3") == SmallRational{1500, 1});
  CHECK(arithmetic_value("Forty") == SmallRational{40, 1});
  CHECK(arithmetic_value("twenty-one") == SmallRational{21, 1});
  CHECK(arithmetic_value("\xEF\xBC\x91\xEF\xBC\x93") == SmallRational{13, 1});
  CHECK(arithmetic_value("\xE2\x88\x92" "3") == SmallRational{-3, 1});
  CHECK(arithmetic_value("5!") == SmallRational{120, 1});
  CHECK(arithmetic_value("60^{\\circ}") == SmallRational{60, 1});
  CHECK(arithmetic_value("\\$18.50") == SmallRational{37, 2});
  for (const char* other : {"2\\frac12", "2\\frac{1}{2}", "2 1/2", "2(3)", "(1,234)", "1,23", "5.", "007", "2^3^2", "0^0", "1/0", "50\\%",
                            "21!", "x", "5 cm", "Twenty-one", "\\sqrt{4}", "9223372036854775807 * 2", "\\frac12", "((((((((((1))))))))))"})
    CHECK_FALSE(arithmetic_value(other));
  // the same verdicts with and without the screens, including the guards' reasons
  MathVerifierOptions off;
  off.equal.numeric_screen = false;
  off.arithmetic_screen = false;
  const MathVerifier screened, unscreened(off);
  for (auto [answer, gold] : {std::pair{"\\sin^2 x + \\cos^2 x", "1"}, {"\\sqrt{72}", "6\\sqrt{2}"}, {"\\sqrt{62}", "6\\sqrt{2}"},
                              {"2e", "e^2"}, {"1.414", "\\sqrt{2}"}, {"1.41421356237", "\\sqrt2"}, {"(x-1)(x+1)", "x^2-1"},
                              {"\\tan(\\pi/2)", "\\tan(\\frac{\\pi}{2})"}, {"\\ln(0)", "\\ln 0"}, {"x", "|x|"}, {"y = 2x - 1", "y=2x+1"},
                              {"2x - y + 1 = 0", "y=2x+1"}, {"45\\%", "0.45"}, {"(1,\\infty)", "(1, \\infty)"}, {"0.3333333", "\\frac13"},
                              {"0.3333333333333", "\\frac13"}, {"2^{10}", "1000"}, {"0^0", "1"}, {"\\frac{1}{x-x}", "1"},
                              // found by the random pairs: 1992^{-102} underflows a double (the screen leaves it to the CAS)
                              {"(1.5e3^34*{1992^-3}^34)\\cdot 1.000001", "1.5e3^34*{1992^-3}^34"}}) {
    INFO(answer << " vs " << gold);
    CHECK(screened.equivalent(answer, gold) == unscreened.equivalent(answer, gold));
  }
  const auto refused = math_equal_explained(*parse_math("2^{10^{9}}").expr, *parse_math("4").expr);
  CHECK_FALSE(refused.equal);
  CHECK(refused.why == "exponent too large");
}
