// Self-PRM reranking (search/self_prm.hpp): hand-computed choices under each aggregation, the tie rule,
// one batched judge call, the ProcessReward form, an oracle-judge property, and the errors.
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/core/reward.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/search/beam.hpp>
#include <kaizen/search/process_reward_adapter.hpp>
#include <kaizen/search/self_prm.hpp>

using namespace kaizen;
using namespace kaizen::search;
using Catch::Matchers::Contains;

namespace {

// Candidates are step lists written as "s1|s2|s3" in Completion::text.
std::vector<std::string> split_bar(const Completion& c) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : c.text) {
    if (ch == '|') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(ch);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// The judge prompt's text: the question, then the steps so far joined by '|'.
Prompt make_judge_prompt(const Prompt& q, std::span<const std::string> steps) {
  Prompt p;
  p.text = q.text + "#";
  for (std::size_t k = 0; k < steps.size(); ++k) {
    if (k > 0) p.text.push_back('|');
    p.text.append(steps[k]);
  }
  return p;
}

// Scores the LAST step of a judge prompt from a table (unknown steps: 0.5); counts calls and prompts.
struct TableJudge {
  std::map<std::string, double> table;
  int calls = 0;
  std::vector<std::string> seen;
  std::vector<double> operator()(std::span<const Prompt> prompts) {
    ++calls;
    std::vector<double> out;
    for (const Prompt& p : prompts) {
      seen.push_back(p.text);
      const std::size_t bar = p.text.find_last_of("|#");
      const auto it = table.find(p.text.substr(bar + 1));
      out.push_back(it == table.end() ? 0.5 : it->second);
    }
    return out;
  }
};

Completion cand(const std::string& text, std::vector<float> logprobs = {}) {
  Completion c;
  c.text = text;
  c.logprobs = std::move(logprobs);
  return c;
}

}  // namespace

static_assert(StepJudge<TableJudge>);

TEST_CASE("self_prm_rerank: min, product, mean and last aggregation choose the hand-computed candidate") {
  // Steps: a 0.9, b 0.4, c 0.8, d 0.7, e 0.6, f 1.0.
  TableJudge judge{{{"a", 0.9}, {"b", 0.4}, {"c", 0.8}, {"d", 0.7}, {"e", 0.6}, {"f", 1.0}}};
  Prompt q;
  q.text = "Q";
  // A = a|b: min 0.4, product 0.36, mean 0.65, last 0.4
  // B = c|d: min 0.7, product 0.56, mean 0.75, last 0.7
  // C = e|f|f: min 0.6, product 0.6, mean 0.8667, last 1.0
  const std::vector<Completion> c{cand("a|b"), cand("c|d"), cand("e|f|f")};
  const auto by_min = self_prm_rerank(q, std::span<const Completion>(c), split_bar, make_judge_prompt, judge);
  CHECK(by_min.index == 1);
  CHECK(by_min.score == Approx(0.7));
  CHECK(by_min.scores[0] == Approx(0.4));
  CHECK(by_min.scores[2] == Approx(0.6));
  REQUIRE(by_min.step_scores[2].size() == 3);
  CHECK(by_min.step_scores[2][1] == Approx(1.0));
  // One batched judge call with one prompt per (candidate, step prefix): 2 + 2 + 3.
  CHECK(judge.calls == 1);
  CHECK(by_min.judge_prompts == 7);
  REQUIRE(judge.seen.size() == 7);
  CHECK(judge.seen[0] == "Q#a");
  CHECK(judge.seen[1] == "Q#a|b");
  CHECK(judge.seen[6] == "Q#e|f|f");
  const auto by_product = self_prm_rerank(q, std::span<const Completion>(c), split_bar, make_judge_prompt, judge,
                                          {.aggregation = StepValue::product});
  CHECK(by_product.index == 2);
  CHECK(by_product.score == Approx(0.6));
  const auto by_mean = self_prm_rerank(q, std::span<const Completion>(c), split_bar, make_judge_prompt, judge,
                                       {.aggregation = StepValue::mean});
  CHECK(by_mean.index == 2);
  CHECK(by_mean.score == Approx(2.6 / 3.0));
  const auto by_last = self_prm_rerank(q, std::span<const Completion>(c), split_bar, make_judge_prompt, judge,
                                       {.aggregation = StepValue::last});
  CHECK(by_last.index == 2);
  CHECK(by_last.score == Approx(1.0));
}

TEST_CASE("self_prm_rerank: tie rule - higher mean step score, then higher log-likelihood, then the earlier index") {
  TableJudge judge{{{"lo", 0.25}, {"mid", 0.5}, {"hi", 0.75}}};
  Prompt q;
  q.text = "Q";
  SECTION("equal min, the higher mean wins") {
    const std::vector<Completion> c{cand("lo|mid"), cand("lo|hi")};
    CHECK(self_prm_rerank(q, std::span<const Completion>(c), split_bar, make_judge_prompt, judge).index == 1);
  }
  SECTION("equal min and mean, the higher log-likelihood wins") {
    const std::vector<Completion> c{cand("lo|hi", {-1.0f, -2.0f}), cand("hi|lo", {-0.5f, -0.5f})};
    CHECK(self_prm_rerank(q, std::span<const Completion>(c), split_bar, make_judge_prompt, judge).index == 1);
  }
  SECTION("all equal, or log-probs missing on one side: the earlier index") {
    const std::vector<Completion> c{cand("mid|mid"), cand("mid|mid"), cand("mid|mid", {-0.1f})};
    CHECK(self_prm_rerank(q, std::span<const Completion>(c), split_bar, make_judge_prompt, judge).index == 0);
    const std::vector<Completion> d{cand("mid", {-3.0f}), cand("mid", {-1.0f})};
    CHECK(self_prm_rerank(q, std::span<const Completion>(d), split_bar, make_judge_prompt, judge).index == 1);
  }
  SECTION("a candidate without steps scores 0") {
    const std::vector<Completion> c{cand(""), cand("lo")};
    const auto r = self_prm_rerank(q, std::span<const Completion>(c), split_bar, make_judge_prompt, judge);
    CHECK(r.scores[0] == 0.0);
    CHECK(r.index == 1);
    CHECK(r.judge_prompts == 1);
  }
}

TEST_CASE("self_prm_rerank: an oracle judge always picks a correct candidate when one exists") {
  // Steps are digits; a step is "correct" when it is even. The oracle judge says 1 for even, 0 for odd,
  // so under min aggregation the chosen candidate is all-even whenever such a candidate exists.
  struct Oracle {
    std::vector<double> operator()(std::span<const Prompt> prompts) {
      std::vector<double> out;
      for (const Prompt& p : prompts) out.push_back((p.text.back() - '0') % 2 == 0 ? 1.0 : 0.0);
      return out;
    }
  } oracle;
  Rng rng(7);
  Prompt q;
  q.text = "Q";
  int with_correct = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<Completion> c;
    bool any = false;
    for (int i = 0; i < 4; ++i) {
      std::string t;
      bool ok = true;
      const auto k = 1 + uniform_index(rng, 3);
      for (std::uint64_t s = 0; s < k; ++s) {
        const char d = static_cast<char>('0' + uniform_index(rng, 10));
        ok = ok && (d - '0') % 2 == 0;
        if (s > 0) t.push_back('|');
        t.push_back(d);
      }
      any = any || ok;
      c.push_back(cand(t));
    }
    const auto r = self_prm_rerank(q, std::span<const Completion>(c), split_bar, make_judge_prompt, oracle);
    if (!any) continue;
    ++with_correct;
    bool chosen_ok = true;
    for (const auto& s : split_bar(c[r.index])) chosen_ok = chosen_ok && (s[0] - '0') % 2 == 0;
    REQUIRE(chosen_ok);
  }
  CHECK(with_correct > 100);
}

TEST_CASE("SelfPrm is a ProcessReward and guides beam search through ProcessRewardProblem") {
  static_assert(ProcessReward<SelfPrm<TableJudge, decltype(&make_judge_prompt)>>);
  TableJudge judge{{{"a", 0.9}, {"b", 0.6}}};
  auto builder = &make_judge_prompt;
  SelfPrm prm(judge, builder);
  Prompt q;
  q.text = "Q";
  const std::vector<std::string> steps{"b", "a", "x"};
  const std::vector<double> s = prm(q, std::span<const std::string>(steps));
  REQUIRE(s.size() == 3);
  CHECK(s[0] == Approx(0.6));
  CHECK(s[1] == Approx(0.9));
  CHECK(s[2] == Approx(0.5));
  CHECK(judge.seen.back() == "Q#b|a|x");

  // Steps "a" / "b" to depth 2: beam search with width 1 follows the self-judge's best step twice.
  struct TwoSteps {
    struct State {};
    void expand(const Tree<State>& tree, std::span<const ExpandRequest> requests, Expansion<State>& out) {
      for (std::size_t i = 0; i < requests.size(); ++i) {
        if (tree[requests[i].leaf].depth >= 2) continue;
        out.add(i, {}, 0.5, "b");
        out.add(i, {}, 0.5, "a");
      }
    }
    bool terminal(const Tree<State>& tree, NodeId id) { return tree[id].depth >= 2; }
  } steps_problem;
  ProcessRewardProblem problem(steps_problem, prm, q);
  Tree<TwoSteps::State> tree;
  const BeamResult r = beam_search(problem, tree, {.beam_width = 1, .expansions_per_beam = 2, .max_depth = 3});
  REQUIRE(r.finished.size() == 1);
  CHECK(tree.path_text(r.finished[0], "|") == "a|a");
}

TEST_CASE("self-PRM errors: wrong count, out-of-range or non-finite judge scores, no candidates") {
  Prompt q;
  q.text = "Q";
  const std::vector<Completion> c{cand("a|b"), cand("c")};
  struct Short {
    std::vector<double> operator()(std::span<const Prompt> p) { return std::vector<double>(p.size() - 1, 0.5); }
  } short_judge;
  REQUIRE_THROWS_WITH(self_prm_rerank(q, std::span<const Completion>(c), split_bar, make_judge_prompt, short_judge),
                      Contains("the judge returned 2 scores for 3 judge prompts"));
  struct Fixed {
    double v;
    std::vector<double> operator()(std::span<const Prompt> p) { return std::vector<double>(p.size(), v); }
  };
  Fixed above{1.5}, nan{std::numeric_limits<double>::quiet_NaN()};
  REQUIRE_THROWS_WITH(self_prm_rerank(q, std::span<const Completion>(c), split_bar, make_judge_prompt, above),
                      Contains("scored step 0 of candidate 0 as 1.5, expected a probability in [0, 1]"));
  REQUIRE_THROWS_WITH(self_prm_rerank(q, std::span<const Completion>(c), split_bar, make_judge_prompt, nan),
                      Contains("as nan, expected a probability"));
  REQUIRE_THROWS_WITH(self_prm_rerank(q, std::span<const Completion>(), split_bar, make_judge_prompt, above),
                      Contains("self_prm_rerank: expected at least one candidate, got none"));
  auto builder = &make_judge_prompt;
  SelfPrm prm(short_judge, builder);
  const std::vector<std::string> steps{"a", "b"};
  REQUIRE_THROWS_WITH(prm(q, std::span<const std::string>(steps)), Contains("the judge returned 1 scores for 2"));
}
