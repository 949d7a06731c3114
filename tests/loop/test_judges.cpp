// Judge concept and adapters: a verifier and a reward model as judges, the policy as a judge through a
// template and a score parser (unparsable judgements score 0), judge_scores' checks on count and
// finiteness, determinism of the policy judge under its saved call counter. LibTorch-free.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <kaizen/core/judge.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/judges.hpp>

namespace {

using kaizen::Completion;
using kaizen::Prompt;

Completion text_completion(std::string text) {
  Completion c;
  c.text = std::move(text);
  for (char ch : c.text) c.tokens.push_back(static_cast<unsigned char>(ch));
  return c;
}

std::vector<kaizen::TokenId> encode(std::string_view text) {
  std::vector<kaizen::TokenId> out;
  for (char ch : text) out.push_back(static_cast<unsigned char>(ch));
  return out;
}
std::string decode(std::span<const kaizen::TokenId> ids) {
  std::string out;
  for (auto id : ids) out += static_cast<char>(id);
  return out;
}

/// Verifier: the completion's text equals the prompt's reference.
struct ExactMatch {
  bool operator()(const Prompt& p, const Completion& c) const { return c.text == p.reference; }
};

/// A batched "reward model": the completion's length, and the number of calls it received.
struct LengthModel {
  int calls = 0;
  std::vector<double> operator()(std::span<const Prompt>, std::span<const Completion> cs) {
    ++calls;
    std::vector<double> out;
    for (const auto& c : cs) out.push_back(static_cast<double>(c.text.size()));
    return out;
  }
};

/// A sampler standing in for the policy: answers each judge prompt with scripted text (by the prompt's
/// text); a response text containing "?" gets a judgement that depends on the seed, to test determinism.
struct ScriptedSampler {
  std::map<std::string, std::string> script;
  std::vector<std::string> seen;
  std::vector<std::uint64_t> seeds;
  std::vector<Completion> sample(std::span<const Prompt> prompts, const kaizen::SamplingParams& params) {
    seeds.push_back(params.seed);
    std::vector<Completion> out;
    for (const Prompt& p : prompts) {
      seen.push_back(p.text);
      CHECK(p.tokens == encode(p.text));
      const auto it = script.find(p.text);
      std::string judgement = it != script.end() ? it->second : "no idea";
      if (p.text.find('?') != std::string::npos) judgement = "Score: " + std::to_string(params.seed % 5);
      out.push_back(text_completion(judgement));
    }
    return out;
  }
};

/// A judge that returns whatever it is told to.
struct FixedJudge {
  std::vector<double> scores;
  std::vector<double> operator()(const Prompt&, std::span<const Completion>) const { return scores; }
};

}  // namespace

TEST_CASE("Judge concept: minimal judges model it, near misses do not", "[loop][judges]") {
  STATIC_REQUIRE(kaizen::Judge<FixedJudge>);
  STATIC_REQUIRE(kaizen::Judge<kaizen::loop::OutcomeJudge<ExactMatch>>);
  STATIC_REQUIRE(kaizen::Judge<kaizen::loop::OutcomeJudge<LengthModel>>);
  STATIC_REQUIRE(kaizen::Judge<kaizen::loop::PolicyJudge<ScriptedSampler>>);
  STATIC_REQUIRE_FALSE(kaizen::Judge<ExactMatch>);  // scores one completion, not a candidate set
  STATIC_REQUIRE_FALSE(kaizen::Judge<int>);
}

TEST_CASE("A verifier and a reward model as judges score each candidate", "[loop][judges]") {
  Prompt p;
  p.reference = "42";
  const std::vector<Completion> cands = {text_completion("41"), text_completion("42"), text_completion("4242")};
  ExactMatch verifier;
  auto vj = kaizen::loop::verifier_judge(verifier);
  CHECK(kaizen::judge_scores(vj, p, cands) == std::vector<double>{0.0, 1.0, 0.0});
  LengthModel rm;
  auto rj = kaizen::loop::reward_model_judge(rm);
  CHECK(kaizen::judge_scores(rj, p, cands) == std::vector<double>{2.0, 2.0, 4.0});
  CHECK(rm.calls == 1);  // one batched call per prompt
  CHECK(kaizen::judge_scores(rj, p, std::span<const Completion>()).empty());
}

TEST_CASE("judge_scores rejects a wrong count and non-finite scores with the values", "[loop][judges][errors]") {
  const Prompt p;
  const std::vector<Completion> cands(3);
  FixedJudge short_judge{{1.0, 2.0}};
  CHECK_THROWS_WITH(kaizen::judge_scores(short_judge, p, cands),
                    Catch::Contains("judge_scores: the judge returned 2 scores for 3 candidates"));
  FixedJudge nan_judge{{1.0, std::numeric_limits<double>::quiet_NaN(), 0.0}};
  CHECK_THROWS_WITH(kaizen::judge_scores(nan_judge, p, cands),
                    Catch::Contains("judge_scores: the judge's score nan for candidate 1 is not finite"));
  FixedJudge inf_judge{{1.0, 0.0, -std::numeric_limits<double>::infinity()}};
  CHECK_THROWS_WITH(kaizen::judge_scores(inf_judge, p, cands), Catch::Contains("score -inf for candidate 2"));
  kaizen::loop::OutcomeJudge<ExactMatch> empty;
  CHECK_THROWS_WITH(empty(p, cands), Catch::Contains("OutcomeJudge: no reward was given"));
}

TEST_CASE("The policy as judge: template, parser, unparsable judgements score 0", "[loop][judges]") {
  ScriptedSampler sampler;
  sampler.script = {
      {"Q: 2+2 A: 4 Rate 0-5:", "<score>5</score>"},
      {"Q: 2+2 A: 5 Rate 0-5:", "Score: 1"},
      {"Q: 2+2 A: 22 Rate 0-5:", "I think it is fine"},  // no score: unparsable
      {"Q: 2+2 A: 3 Rate 0-5:", "<score>9</score>"},     // outside [0, 5]: unparsable
  };
  kaizen::loop::PolicyJudgeOptions options{.prompt_template = "Q: {prompt} A: {response} Rate 0-5:",
                                           .score = {.max_score = 5.0}};
  kaizen::loop::PolicyJudge judge(sampler, encode, decode, options);
  Prompt p;
  p.tokens = encode("2+2");  // no text: the judge decodes the tokens
  std::vector<Completion> cands = {text_completion("4"), text_completion("5"), text_completion("22"),
                                   text_completion("3")};
  cands[1].text.clear();  // decoded from tokens too
  const auto scores = kaizen::judge_scores(judge, p, cands);
  CHECK(scores == std::vector<double>{1.0, 0.2, 0.0, 0.0});
  CHECK(judge.unparsable() == 2);
  CHECK(sampler.seen.size() == 4);
  CHECK(sampler.seen[1] == "Q: 2+2 A: 5 Rate 0-5:");
  CHECK(judge.judge_prompt("x", "y") == "Q: x A: y Rate 0-5:");

  // A custom parser replaces the default one; judgements are averaged.
  ScriptedSampler s2;
  s2.script = {{"2+2|4", "yes"}, {"2+2|5", "no"}};
  kaizen::loop::PolicyJudge yes_no(
      s2, encode, decode, {.prompt_template = "{prompt}|{response}", .judgements = 3, .score = {.max_score = 1.0}},
      [](std::string_view t) -> std::optional<double> {
        if (t == "yes") return 1.0;
        if (t == "no") return 0.0;
        return std::nullopt;
      });
  Prompt q;
  q.text = "2+2";
  CHECK(yes_no(q, std::vector<Completion>{text_completion("4"), text_completion("5")}) == std::vector<double>{1.0, 0.0});
  CHECK(s2.seen.size() == 6);  // 3 judgements per candidate, one sampler call
  CHECK(s2.seeds.size() == 1);
}

TEST_CASE("The policy judge is deterministic given its seed and saved call counter", "[loop][judges]") {
  auto run = [](kaizen::loop::PolicyJudge<ScriptedSampler>& judge, int calls) {
    Prompt p;
    p.text = "x";
    std::vector<std::vector<double>> out;
    for (int i = 0; i < calls; ++i) out.push_back(judge(p, std::vector<Completion>{text_completion("?"), text_completion("??")}));
    return out;
  };
  const kaizen::loop::PolicyJudgeOptions options{.prompt_template = "{prompt}{response}", .judgements = 2,
                                                 .score = {.max_score = 4.0}, .seed = 7};
  ScriptedSampler a, b, c;
  kaizen::loop::PolicyJudge full(a, encode, decode, options);
  const auto all = run(full, 4);
  kaizen::loop::PolicyJudge part(b, encode, decode, options);
  (void)run(part, 2);
  kaizen::loop::PolicyJudge resumed(c, encode, decode, options);
  resumed.restore(part.state());
  CHECK(part.state() == 2);
  const auto rest = run(resumed, 2);
  CHECK(rest[0] == all[2]);
  CHECK(rest[1] == all[3]);
  CHECK(c.seeds == std::vector<std::uint64_t>(a.seeds.begin() + 2, a.seeds.end()));
  // Different calls draw different seeds.
  CHECK(a.seeds[0] != a.seeds[1]);
}

TEST_CASE("The policy judge rejects bad settings and a sampler that returns the wrong count", "[loop][judges][errors]") {
  ScriptedSampler sampler;
  using J = kaizen::loop::PolicyJudge<ScriptedSampler>;
  CHECK_THROWS_WITH(J(sampler, encode, decode, {.prompt_template = "{prompt} only"}),
                    Catch::Contains("PolicyJudge: the prompt template must contain {prompt} and {response}, got \"{prompt} only\""));
  CHECK_THROWS_WITH(J(sampler, encode, decode, {.judgements = 0}),
                    Catch::Contains("PolicyJudge: judgements must be >= 1, got 0"));
  CHECK_THROWS_WITH(J(sampler, {}, decode), Catch::Contains("PolicyJudge: encode and decode are required"));
  kaizen::SamplingParams bad;
  bad.temperature = 0.0;
  CHECK_THROWS_WITH(J(sampler, encode, decode, {.sampling = bad}), Catch::Contains("temperature must be > 0"));

  struct Short {
    std::vector<Completion> sample(std::span<const Prompt>, const kaizen::SamplingParams&) { return {}; }
  } short_sampler;
  kaizen::loop::PolicyJudge<Short> j(short_sampler, encode, decode);
  Prompt p;
  p.text = "x";
  CHECK_THROWS_WITH(j(p, std::vector<Completion>{text_completion("a")}),
                    Catch::Contains("PolicyJudge: the sampler returned 0 judgements for 1 judge prompts"));
  kaizen::loop::PolicyJudge<ScriptedSampler> out_of_range(sampler, encode, decode, {.score = {.max_score = 5.0}},
                                                          [](std::string_view) -> std::optional<double> { return 7.0; });
  CHECK_THROWS_WITH(out_of_range(p, std::vector<Completion>{text_completion("a")}),
                    Catch::Contains("PolicyJudge: the parser returned 7, outside [0, 5]"));
}
