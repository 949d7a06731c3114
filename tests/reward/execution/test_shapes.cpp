// Reward shapes: format rewards, SSRL's checker and information mask, group-relative length
// rewards, SSR-Zero's self-judge parse, weighted composites.
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <kaizen/reward/composite.hpp>
#include <kaizen/reward/format.hpp>
#include <kaizen/reward/length.hpp>
#include <kaizen/reward/self_judge.hpp>

using kaizen::Completion;
using kaizen::Prompt;
using namespace kaizen::reward;
using Catch::Contains;

namespace {

Completion text(std::string s) {
  Completion c;
  c.text = std::move(s);
  return c;
}

const std::vector<std::string> kThinkAnswer{"think", "answer"};

}  // namespace

TEST_CASE("format: tags present, in order, and the strict template", "[format]") {
  CHECK(tags_present("<answer>1</answer> <think>x</think>", kThinkAnswer));
  CHECK_FALSE(tags_in_order("<answer>1</answer> <think>x</think>", kThinkAnswer));
  CHECK(tags_in_order("intro <think>x</think> then <answer>1</answer> tail", kThinkAnswer));
  CHECK_FALSE(tags_present("<think>x</think> <answer>1", kThinkAnswer));  // unclosed
  CHECK_FALSE(tags_present("</think>x<think>", kThinkAnswer));

  CHECK(matches_template("<think>x</think><answer>1</answer>", kThinkAnswer));
  CHECK(matches_template("\n <think>a\nb</think>\n\n<answer> 1 </answer>\n", kThinkAnswer));
  CHECK_FALSE(matches_template("intro <think>x</think><answer>1</answer>", kThinkAnswer));     // text before
  CHECK_FALSE(matches_template("<think>x</think><answer>1</answer> bye", kThinkAnswer));       // text after
  CHECK_FALSE(matches_template("<think>x</think>and<answer>1</answer>", kThinkAnswer));        // text between
  CHECK_FALSE(matches_template("<think> </think><answer>1</answer>", kThinkAnswer));           // empty block
  CHECK(matches_template("<think> </think><answer>1</answer>", kThinkAnswer, {.allow_empty = true}));
  CHECK_FALSE(matches_template("<think>x</think><answer>1</answer><answer>2</answer>", kThinkAnswer));
  CHECK_FALSE(matches_template("<think>a<think>b</think><answer>1</answer>", kThinkAnswer));   // nested
  CHECK_FALSE(matches_template("<answer>1</answer><think>x</think>", kThinkAnswer));           // order

  const FormatReward strict{};
  CHECK(strict(Prompt{}, text("<think>x</think><answer>1</answer>")) == 1.0);
  CHECK(strict(Prompt{}, text("<think>x</think>so<answer>1</answer>")) == 0.0);
  const FormatReward loose{.tags = kThinkAnswer, .strict = false};
  CHECK(loose(Prompt{}, text("<think>x</think>so<answer>1</answer>")) == 1.0);

  REQUIRE_THROWS_WITH(matches_template("x", std::vector<std::string>{}), Contains("give at least one tag"));
  REQUIRE_THROWS_WITH(tags_present("x", std::vector<std::string>{"a>b"}), Contains("tag name 'a>b' must not contain"));
  REQUIRE_THROWS_WITH(tags_in_order("x", std::vector<std::string>{""}), Contains("a tag name must not be empty"));
  REQUIRE_THROWS_WITH((FormatReward{.tags = {}})(Prompt{}, text("x")), Contains("give at least one tag"));
}

TEST_CASE("format: SSRL's checker", "[format]") {
  const std::string good =
      "<think>need the capital</think>\n<search>capital of France</search>\n<information>Paris is the capital."
      "</information>\n<think>so Paris</think>\n<answer>Paris</answer>";
  CHECK(ssrl_format_ok(good));
  CHECK(ssrl_format_ok("  \n" + good + "\n"));
  CHECK_FALSE(ssrl_format_ok("Sure. " + good));                                   // does not start with <think>
  CHECK_FALSE(ssrl_format_ok(good + " done"));                                     // does not end with </answer>
  CHECK_FALSE(ssrl_format_ok("<think>a</think><search>q\nmore</search><information>i</information>"
                             "<answer>x</answer>"));                               // multi-line search
  CHECK_FALSE(ssrl_format_ok("<think>a</think><search>q</search><information> </information>"
                             "<answer>x</answer>"));                               // empty block
  CHECK_FALSE(ssrl_format_ok("<think>a</think><tool>q</tool><information>i</information>"
                             "<answer>x</answer>"));                               // unknown tag
  CHECK_FALSE(ssrl_format_ok("<think>a<search>q</search></think><information>i</information>"
                             "<answer>x</answer>"));                               // nested
  CHECK_FALSE(ssrl_format_ok("<think>a</think><answer>x</answer>"));               // 2 blocks < 4
  CHECK(ssrl_format_ok("<think>a</think><answer>x</answer>", {.min_tags = 2}));
  CHECK(ssrl_format_ok("<think>is 1 < 2?</think><search>q</search><information>i</information><answer>x</answer>"));
  CHECK_FALSE(ssrl_format_ok("<think>a</think></search><search>q</search><information>i</information>"
                             "<answer>x</answer>"));                               // stray closing tag
}

TEST_CASE("format: information mask covers exactly the block's tokens", "[format]") {
  const std::string s = "<think>t</think><information>abc def</information><answer>x</answer>";
  const auto spans = tag_spans(s, "<information>", "</information>");
  REQUIRE(spans.size() == 1);
  CHECK(s.substr(spans[0].first, spans[0].second - spans[0].first) == "<information>abc def</information>");
  const auto inner = tag_spans(s, "<information>", "</information>", false);
  CHECK(s.substr(inner[0].first, inner[0].second - inner[0].first) == "abc def");
  // tokenise by hand: tags are one token each, words are tokens, the space is one token
  std::vector<std::pair<std::size_t, std::size_t>> offsets;
  const std::vector<std::string> pieces = {"<think>", "t", "</think>", "<information>", "abc", " ", "def",
                                           "</information>", "<answer>", "x", "</answer>"};
  std::size_t pos = 0;
  for (const std::string& p : pieces) {
    offsets.emplace_back(pos, pos + p.size());
    pos += p.size();
  }
  REQUIRE(pos == s.size());
  const auto mask = span_token_mask(offsets, spans);
  CHECK(mask == std::vector<std::uint8_t>{1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1});  // k = 5 tokens masked
  const auto mask_inner = span_token_mask(offsets, inner);
  CHECK(mask_inner == std::vector<std::uint8_t>{1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1});  // k = 3
  // two blocks, an unclosed last one runs to the end
  const std::string two = "a<i>b</i>c<i>d";
  const auto sp = tag_spans(two, "<i>", "</i>", false);
  CHECK(sp == std::vector<std::pair<std::size_t, std::size_t>>{{4, 5}, {13, 14}});
  REQUIRE_THROWS_WITH(tag_spans("x", "", "</i>"), Contains("must not be empty"));
  const std::vector<std::pair<std::size_t, std::size_t>> unsorted{{5, 6}, {1, 2}};
  REQUIRE_THROWS_WITH(span_token_mask(offsets, unsorted), Contains("spans must be sorted and disjoint"));
}

TEST_CASE("length: Kimi oracle and the other forms", "[length]") {
  const std::vector<double> lengths{100, 200, 300};
  const bool correct[] = {true, true, false};
  const auto kimi = length_terms(lengths, correct);
  REQUIRE(kimi.size() == 3);
  CHECK(kimi[0] == Approx(0.5));
  CHECK(kimi[1] == Approx(0.0).margin(1e-12));
  CHECK(kimi[2] == Approx(-0.5));
  // a wrong short answer is not paid for being short: min(0, 0.5) = 0
  const bool wrong_first[] = {false, true, true};
  CHECK(length_terms(lengths, wrong_first)[0] == 0.0);
  // all lengths equal => zeros
  const std::vector<double> same{50, 50, 50};
  CHECK(length_terms(same, correct) == std::vector<double>{0, 0, 0});
  // accuracy gate: 2/3 < 0.8 => zeros; 2/3 >= 0.5 => the Kimi terms
  CHECK(length_terms(lengths, correct, {.acc_gate = 0.8}) == std::vector<double>{0, 0, 0});
  CHECK(length_terms(lengths, correct, {.acc_gate = 0.5})[0] == Approx(0.5));

  // zscore: correct lengths 100, 200: mean 150, std 50 => z = -1, +1
  const auto z = length_terms(lengths, correct, {.mode = LengthMode::zscore, .alpha = 0.4});
  CHECK(z[0] == Approx(-0.4 / (1 + std::exp(1.0))));
  CHECK(z[1] == Approx(-0.4 / (1 + std::exp(-1.0))));
  CHECK(z[2] == 0.0);
  const bool one[] = {false, true, false};
  CHECK(length_terms(lengths, one, {.mode = LengthMode::zscore, .alpha = 1.0})[1] == Approx(-0.5));
  // minmax over correct samples
  const auto mm = length_terms(lengths, correct, {.mode = LengthMode::minmax, .alpha = 2.0});
  CHECK(mm == std::vector<double>{2.0, 0.0, 0.0});

  kaizen::Group g;
  g.completions.resize(3);
  g.completions[0].tokens.resize(100);
  g.completions[1].tokens.resize(200);
  g.completions[2].tokens.resize(300);
  g.rewards = {1.0, 1.0, 0.0};
  apply_length_reward(g, {.weight = 0.5});
  CHECK(g.rewards[0] == Approx(1.25));
  CHECK(g.rewards[1] == Approx(1.0));
  CHECK(g.rewards[2] == Approx(-0.25));

  REQUIRE_THROWS_WITH(length_terms(lengths, std::span<const bool>(correct, 2)), Contains("3 lengths but 2"));
  const std::vector<double> negative{-1, 2, 3};
  REQUIRE_THROWS_WITH(length_terms(negative, correct), Contains("length 0 is -1"));
  REQUIRE_THROWS_WITH(length_terms(lengths, correct, {.acc_gate = 1.5}), Contains("acc_gate must be in [0, 1], got 1.5"));
  REQUIRE_THROWS_WITH(length_terms(lengths, correct, {.alpha = -1}), Contains("alpha must be finite and >= 0, got -1"));
  kaizen::Group bad;
  bad.completions.resize(2);
  REQUIRE_THROWS_WITH(apply_length_reward(bad), Contains("2 completions but 0 rewards"));
}

TEST_CASE("self-judge: scores parsed by the documented rules, unparsable gives 0", "[self_judge]") {
  CHECK(parse_judge_score("85") == 85.0);
  CHECK(parse_judge_score(" 85/100.\n") == 85.0);
  CHECK(parse_judge_score("<think>fluent, one error</think>Score: 85") == 85.0);
  CHECK(parse_judge_score("The translation is good. Final score: **72.5** out of 100") == 72.5);
  CHECK(parse_judge_score("score = 3", {.max_score = 5}) == 3.0);
  CHECK(parse_judge_score("I give it <score>90</score>") == 90.0);
  CHECK(parse_judge_score("\\boxed{60}") == 60.0);
  CHECK(parse_judge_score("<think>maybe 20</think>\n\\boxed{ 40 / 100 }") == 40.0);
  // unparsable
  CHECK_FALSE(parse_judge_score("a good translation").has_value());
  CHECK_FALSE(parse_judge_score("80 or 90").has_value());
  CHECK_FALSE(parse_judge_score("between 80 and 90").has_value());
  CHECK_FALSE(parse_judge_score("Score: excellent").has_value());
  CHECK_FALSE(parse_judge_score("<think>I think 85").has_value());  // truncated
  CHECK_FALSE(parse_judge_score("150").has_value());                 // out of range
  CHECK_FALSE(parse_judge_score("Score: -5").has_value());
  CHECK_FALSE(parse_judge_score("<score>high</score>").has_value());
  CHECK_FALSE(parse_judge_score("").has_value());
  CHECK_FALSE(parse_judge_score("1.2.3").has_value());

  SelfJudgeReward r{[](const Prompt&, const Completion& c) { return c.text; }};
  CHECK(r(Prompt{}, text("85")) == Approx(0.85));
  CHECK(r(Prompt{}, text("no idea")) == 0.0);
  CHECK(r(Prompt{}, text("Score: 100")) == 1.0);
  REQUIRE_THROWS_WITH(SelfJudgeReward{}(Prompt{}, text("x")), Contains("no judge callable"));
  REQUIRE_THROWS_WITH(parse_judge_score("1", {.max_score = 0}), Contains("max_score must be finite and > 0, got 0"));
}

namespace {

struct Exact {  // 1 when the completion text equals the reference
  double operator()(const Prompt& p, const Completion& c) const { return c.text == p.reference ? 1.0 : 0.0; }
};

struct BatchedLength {  // batched only: text length / 10
  int calls = 0;
  std::vector<double> operator()(std::span<const Prompt>, std::span<const Completion> cs) {
    ++calls;
    std::vector<double> out;
    for (const Completion& c : cs) out.push_back(static_cast<double>(c.text.size()) / 10.0);
    return out;
  }
};

}  // namespace

TEST_CASE("composite: weighted sums over per-sample and batched rewards", "[composite]") {
  // SSRL: 0.9 * EM + 0.1 * format
  auto ssrl = composite({0.9, 0.1}, Exact{}, FormatReward{});
  Prompt p;
  p.reference = "<think>x</think><answer>1</answer>";
  CHECK(ssrl(p, text("<think>x</think><answer>1</answer>")) == Approx(1.0));
  p.reference = "something else";
  CHECK(ssrl(p, text("<think>x</think><answer>1</answer>")) == Approx(0.1));
  p.reference = "plain";
  CHECK(ssrl(p, text("plain")) == Approx(0.9));

  auto mixed = composite({2.0, 1.0}, Exact{}, BatchedLength{});
  static_assert(kaizen::OutcomeReward<decltype(mixed)>);
  static_assert(!kaizen::PerSampleReward<decltype(mixed)>);
  std::vector<Prompt> ps(2);
  ps[0].reference = "ab";
  ps[1].reference = "zz";
  const std::vector<Completion> cs{text("ab"), text("abcd")};
  const auto out = kaizen::score(mixed, ps, cs);
  CHECK(out == std::vector<double>{2.0 + 0.2, 0.0 + 0.4});
  const auto parts = mixed.components(ps, cs);
  CHECK(parts[0] == std::vector<double>{1.0, 0.0});
  CHECK(parts[1] == std::vector<double>{0.2, 0.4});

  auto mean = composite_mean({3.0, 1.0}, Exact{}, Exact{});
  p.reference = "a";
  CHECK(mean(p, text("a")) == Approx(1.0));

  REQUIRE_THROWS_WITH(composite({1.0}, Exact{}, Exact{}), Contains("1 weights for 2 components"));
  REQUIRE_THROWS_WITH(composite({1.0, 2.0, 3.0}, Exact{}), Contains("3 weights for 1 components"));
  REQUIRE_THROWS_WITH(composite({NAN}, Exact{}), Contains("weight 0 is nan"));
  REQUIRE_THROWS_WITH(composite_mean({1.0, -1.0}, Exact{}, Exact{}), Contains("normalize needs a positive weight sum"));
}
