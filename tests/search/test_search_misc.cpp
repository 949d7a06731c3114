#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/core/rng.hpp>
#include <kaizen/search/beam.hpp>
#include <kaizen/search/best_of_n.hpp>
#include <kaizen/search/iterative_deepening.hpp>
#include <kaizen/search/trace.hpp>

using namespace kaizen;
using namespace kaizen::search;

TEST_CASE("quality values match the ReST-MCTS* oracle", "[search][trace][rest_mcts]") {
  const std::vector<std::size_t> m{2, 1, 0};
  const std::vector<bool> reach{true, true, true};
  const auto v = quality_values(m, reach);
  REQUIRE(v.size() == 3);
  CHECK(v[0] == Approx(1.0 / 3.0));
  CHECK(v[1] == Approx(2.0 / 3.0));
  CHECK(v[2] == Approx(1.0));
  CHECK(quality_value_step(0.5, 1, false) == Approx(0.25));  // m + 1 = 2
  CHECK(quality_value_step(0.1, 0, false) == 0.0);           // clamped at 0
  CHECK_THROWS_WITH(quality_value_step(1.5, 0, true), Catch::StartsWith("quality_value_step: expected v_prev in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(quality_values(m, std::vector<bool>{true}),
                    Catch::StartsWith("quality_values: expected one reach flag per step, got 3 steps and 1 flags"));
  // Random paths: values stay in [0, 1].
  Rng rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    double prev = 0.0;
    for (int k = 0; k < 10; ++k) {
      prev = quality_value_step(prev, uniform_index(rng, 5), uniform_index(rng, 2) == 0);
      CHECK(prev >= 0.0);
      CHECK(prev <= 1.0);
    }
  }
}

TEST_CASE("tree traces give value targets, step advantages and preference pairs", "[search][trace]") {
  // root -> s1 -> s2 -> s3 (correct terminal); s1 -> x (incorrect terminal); root -> y (incorrect terminal)
  Tree<int> tree;
  const NodeId s1 = tree.add_child(0, 1), y = tree.add_child(0, 0);
  const NodeId s2 = tree.add_child(s1, 1), x = tree.add_child(s1, 0);
  const NodeId s3 = tree.add_child(s2, 1);
  tree[s3].terminal = tree[x].terminal = tree[y].terminal = true;
  const auto targets = quality_value_targets(tree, [](const Tree<int>& t, NodeId id) { return t.state(id) == 1; });
  CHECK(targets.value[0] == 0.0);
  CHECK(targets.value[s1] == Approx(1.0 / 3.0));
  CHECK(targets.value[s2] == Approx(2.0 / 3.0));
  CHECK(targets.value[s3] == Approx(1.0));
  CHECK(targets.steps_to_correct[s1] == 2);
  CHECK(!targets.reaches_correct[x]);
  CHECK(targets.steps_to_correct[x] == 2);                           // inherited from s1
  CHECK(targets.value[x] == Approx(1.0 / 3.0 - (2.0 / 3.0) / 3.0));  // 1/9
  CHECK(targets.steps_to_correct[y] == 3);                           // inherited from the root
  CHECK(targets.value[y] == 0.0);                                    // max(0 - 1/4, 0)

  const auto adv = step_advantages(tree, targets.value);
  CHECK(adv[0] == 0.0);
  CHECK(adv[s2] == Approx(1.0 / 3.0));
  CHECK(adv[x] == Approx(1.0 / 9.0 - 1.0 / 3.0));
  CHECK_THROWS_WITH(step_advantages(tree, std::vector<double>{0.0}),
                    Catch::StartsWith("step_advantages: expected one value per node (6), got 1"));

  for (NodeId id = 0; id < tree.size(); ++id) tree[id].visits = 1;
  const auto pairs = step_pairs(tree, targets.value);
  REQUIRE(pairs.size() == 2);
  CHECK(pairs[0].parent == 0);
  CHECK(pairs[0].chosen == s1);
  CHECK(pairs[0].rejected == y);
  CHECK(pairs[0].margin == Approx(1.0 / 3.0));
  CHECK(pairs[1].parent == s1);
  CHECK(pairs[1].chosen == s2);
  CHECK(pairs[1].rejected == x);
  CHECK(step_pairs(tree, targets.value, {.min_margin = 0.4}).size() == 1);  // only s2 vs x (5/9)
  tree[y].visits = 0;
  CHECK(step_pairs(tree, targets.value, {.min_visits = 1}).size() == 1);
  const auto values = node_values(tree);
  CHECK(values.size() == tree.size());
  std::vector<double> bad(tree.size(), 0.0);
  bad[2] = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(step_pairs(tree, bad), Catch::StartsWith("step_pairs: expected finite values, got nan for node 2"));
}

namespace {
// Depth-2 binary tree of steps with fixed process-reward scores (the beam oracle).
struct TwoSteps {
  struct State {
    std::string path;
  };
  std::size_t expand_calls = 0;
  void expand(const Tree<State>& tree, std::span<const ExpandRequest> requests, Expansion<State>& out) {
    ++expand_calls;
    for (std::size_t i = 0; i < requests.size(); ++i)
      for (char step : {'A', 'B'}) out.add(i, State{tree.state(requests[i].leaf).path + step}, 0.5, std::string(1, step));
  }
  void evaluate(const Tree<State>& tree, std::span<const NodeId> nodes, std::span<double> values) {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const std::string& p = tree.state(nodes[i]).path;
      values[i] = p == "A" ? 0.9 : p == "B" ? b_score : p == "AA" ? 0.1 : p == "AB" ? 0.2 : p == "BA" ? 0.9 : 0.3;
    }
  }
  bool terminal(const Tree<State>& tree, NodeId id) { return tree.state(id).path.size() >= 2; }
  double b_score = 0.6;
};
}  // namespace

TEST_CASE("beam search with a process reward beats greedy on the oracle tree", "[search][beam]") {
  auto run = [](std::size_t width, ScoreAggregation rule) {
    TwoSteps problem;
    Tree<TwoSteps::State> tree;
    const BeamResult result = beam_search(problem, tree, {.beam_width = width, .expansions_per_beam = 2, .max_depth = 5,
                                                          .aggregation = rule});
    CHECK(result.expand_calls == 2);
    CHECK(result.evaluate_calls == 2);
    std::vector<std::string> finished;
    for (NodeId id : result.finished) finished.push_back(tree.state(id).path);
    return std::make_pair(finished, result.finished.empty() ? 0.0 : tree[result.finished[0]].value);
  };
  // product: AA .09, AB .18, BA .54, BB .18. Width 1 is greedy (A then AB).
  CHECK(run(1, ScoreAggregation::product).first == std::vector<std::string>{"AB"});
  const auto [wide, best] = run(2, ScoreAggregation::product);
  CHECK(wide == std::vector<std::string>{"BA", "AB"});  // AB ties BB at .18: the earlier node stays
  CHECK(best == Approx(0.54));
  CHECK(run(2, ScoreAggregation::min).first == std::vector<std::string>{"BA", "BB"});  // .6, .3 vs .2, .1
  CHECK(run(2, ScoreAggregation::mean).second == Approx(0.75));
  CHECK(run(2, ScoreAggregation::last).first == std::vector<std::string>{"BA", "BB"});
  CHECK(aggregate_step(ScoreAggregation::mean, 0.5, 0.8, 3) == Approx(0.6));

  TwoSteps bad;
  bad.b_score = std::numeric_limits<double>::quiet_NaN();
  Tree<TwoSteps::State> tree;
  CHECK_THROWS_WITH(beam_search(bad, tree, {.beam_width = 4, .expansions_per_beam = 2}),
                    Catch::Contains("expected a finite value"));
  CHECK_THROWS_WITH(beam_search(bad, tree, {.beam_width = 0}), Catch::StartsWith("beam_search: expected beam_width > 0, got 0"));
  CHECK_THROWS_WITH(beam_search(bad, tree, {.expansions_per_beam = 0}),
                    Catch::StartsWith("beam_search: expected expansions_per_beam > 0, got 0"));
  CHECK_THROWS_WITH(beam_search(bad, tree, {.max_depth = 0}), Catch::StartsWith("beam_search: expected max_depth > 0, got 0"));
}

TEST_CASE("best-of-N selects by reward, verifier or self-likelihood", "[search][best_of_n]") {
  const Prompt prompt{.reference = "4"};
  const std::vector<Completion> completions{
      {.tokens = {1, 2}, .logprobs = {-0.5F, -0.5F}, .text = "5"},
      {.tokens = {1, 2, 3, 4}, .logprobs = {-0.25F, -0.25F, -0.25F, -0.5F}, .text = "4"},
      {.tokens = {1}, .logprobs = {-0.75F}, .text = "4"}};
  auto length = [](const Prompt&, const Completion& c) { return static_cast<double>(c.text.size() + c.tokens.size()); };
  CHECK(best_of_n(prompt, completions, length).index == 1);
  auto verifier = [](const Prompt& p, const Completion& c) { return c.text == p.reference; };
  const BestOfN verified = best_of_n(prompt, completions, verifier);
  CHECK(verified.index == 1);  // the first verified sample
  CHECK(verified.scores == std::vector<double>{0.0, 1.0, 1.0});
  SelfLikelihood sum_lp;
  const BestOfN likely = best_of_n(prompt, completions, sum_lp);
  CHECK(likely.index == 2);  // sums -1, -1.25, -0.75
  CHECK(likely.score == Approx(-0.75));
  SelfLikelihood mean_lp{.length_normalize = true};
  CHECK(best_of_n(prompt, completions, mean_lp).index == 1);  // means -0.5, -0.3125, -0.75

  const std::vector<double> p{0.5, 0.3, 0.2};
  const auto sharpened = power_sharpen(p, 2.0);  // beta = 1
  CHECK(sharpened[0] == Approx(0.658).epsilon(1e-3));
  CHECK(sharpened[1] == Approx(0.237).epsilon(1e-2));
  CHECK(sharpened[2] == Approx(0.105).epsilon(1e-2));
  Rng rng(4);
  for (int trial = 0; trial < 100; ++trial) {  // sharpening never moves the argmax
    std::vector<double> q{uniform01(rng), uniform01(rng), uniform01(rng), uniform01(rng)};
    const auto s = power_sharpen(q, 1.0 + 1.0 / (0.1 + uniform01(rng)));
    CHECK(std::max_element(s.begin(), s.end()) - s.begin() == std::max_element(q.begin(), q.end()) - q.begin());
  }

  CHECK_THROWS_WITH(best_of_n(prompt, std::span<const Completion>(), length),
                    Catch::StartsWith("best_of_n: expected at least one completion, got none"));
  auto nan = [](const Prompt&, const Completion&) { return std::numeric_limits<double>::quiet_NaN(); };
  CHECK_THROWS_WITH(best_of_n(prompt, completions, nan), Catch::StartsWith("score: reward nan for completion 0 is not finite"));
  const std::vector<Completion> no_logprobs{{.tokens = {1}}};
  CHECK_THROWS_WITH(best_of_n(prompt, no_logprobs, sum_lp), Catch::StartsWith("SelfLikelihood: expected per-token log-probs, got none"));
  CHECK_THROWS_WITH(power_sharpen(std::vector<double>{}, 2.0), Catch::StartsWith("power_sharpen: expected at least one probability"));
  CHECK_THROWS_WITH(power_sharpen(p, 0.0), Catch::StartsWith("power_sharpen: expected a positive finite exponent, got 0"));
  CHECK_THROWS_WITH(power_sharpen(std::vector<double>{0.0, 0.0}, 2.0),
                    Catch::StartsWith("power_sharpen: expected a positive total probability, got 0"));
}

namespace {
// Emits one token per character "x" and finishes after `stop_after` tokens (never when 0).
struct Typist {
  std::size_t stop_after = 0;
  std::size_t produced = 0;
  std::vector<std::size_t> budgets;
  Continuation operator()(std::string_view, std::size_t max_new_tokens) {
    budgets.push_back(max_new_tokens);
    const std::size_t left = stop_after == 0 ? max_new_tokens : std::min(max_new_tokens, stop_after - produced);
    produced += left;
    return Continuation{std::string(left, 'x'), left, stop_after != 0 && produced == stop_after};
  }
};
}  // namespace

TEST_CASE("iterative deepening sampling inserts triggers at geometric budgets", "[search][iterative_deepening]") {
  const IterativeDeepeningOptions options{.initial_budget = 256, .growth = 2.0, .max_budget = 2048, .trigger = "|W|"};
  CHECK(deepening_budgets(options) == std::vector<std::size_t>{256, 512, 1024, 2048});
  CHECK(deepening_budgets({.initial_budget = 3, .growth = 1.1, .max_budget = 6}) == std::vector<std::size_t>{3, 4, 5, 6});
  static_assert(Continuer<Typist>);

  Typist endless;
  const DeepenedSample long_one = iterative_deepening_sample(endless, "Q:", options);
  CHECK(long_one.tokens == 2048);
  CHECK(!long_one.finished);
  CHECK(long_one.trigger_offsets == std::vector<std::size_t>{256, 512 + 3, 1024 + 6});
  CHECK(endless.budgets == std::vector<std::size_t>{256, 256, 512, 1024});
  CHECK(long_one.text.substr(256, 3) == "|W|");

  Typist quick{.stop_after = 100};
  const DeepenedSample short_one = iterative_deepening_sample(quick, "Q:", options);
  CHECK(short_one.finished);
  CHECK(short_one.tokens == 100);
  CHECK(short_one.trigger_offsets.empty());

  Typist medium{.stop_after = 300};
  const DeepenedSample mid = iterative_deepening_sample(medium, "Q:", options);
  CHECK(mid.finished);
  CHECK(mid.tokens == 300);
  CHECK(mid.trigger_offsets.size() == 1);

  CHECK_THROWS_WITH(deepening_budgets({.initial_budget = 0}), Catch::StartsWith("iterative_deepening: expected initial_budget > 0, got 0"));
  CHECK_THROWS_WITH(deepening_budgets({.growth = 1.0}), Catch::StartsWith("iterative_deepening: expected growth > 1, got 1"));
  CHECK_THROWS_WITH(deepening_budgets({.initial_budget = 10, .max_budget = 5}),
                    Catch::StartsWith("iterative_deepening: expected max_budget >= initial_budget, got 5 < 10"));
  auto greedy = [](std::string_view, std::size_t n) { return Continuation{"", n + 1, false}; };
  CHECK_THROWS_WITH(iterative_deepening_sample(greedy, "Q:", options),
                    Catch::StartsWith("iterative_deepening_sample: the generator returned 257 tokens for a budget of 256"));
}

TEST_CASE("sample budgets grow until the vote is confident or a verifier accepts", "[search][iterative_deepening]") {
  std::vector<std::optional<std::string>> stream{"1", "2", "1", "3", "1", "1", "1", "1"};
  stream.resize(64, "1");
  std::size_t next = 0;
  std::vector<std::size_t> requests;
  auto draw = [&](std::size_t n) {
    requests.push_back(n);
    std::vector<std::optional<std::string>> out(stream.begin() + static_cast<std::ptrdiff_t>(next),
                                                stream.begin() + static_cast<std::ptrdiff_t>(next + n));
    next += n;
    return out;
  };
  // totals 2 (conf .5), 4 (.5), 8 (.75), 16 (.875 >= .8)
  const auto confident = grow_until_confident(draw, {.initial = 2, .growth = 2.0, .max_samples = 64, .confidence = 0.8});
  CHECK(confident.samples == 16);
  CHECK(confident.stopped_early);
  CHECK(requests == std::vector<std::size_t>{2, 2, 4, 8});
  CHECK(confident.vote->answer == "1");

  next = 0;
  requests.clear();
  auto verified = grow_until(draw, {.initial = 1, .growth = 3.0, .max_samples = 5},
                             [](const auto& vote) { return vote.answer == "3"; });
  CHECK(verified.samples == 5);  // totals 1, 3, 5 (capped); "3" never leads
  CHECK(!verified.stopped_early);
  CHECK(requests == std::vector<std::size_t>{1, 2, 2});

  CHECK_THROWS_WITH(grow_until_confident(draw, {.initial = 0}), Catch::StartsWith("grow_until: expected initial > 0, got 0"));
  CHECK_THROWS_WITH(grow_until_confident(draw, {.growth = 0.5}), Catch::StartsWith("grow_until: expected growth > 1, got 0.5"));
  CHECK_THROWS_WITH(grow_until_confident(draw, {.initial = 8, .max_samples = 4}),
                    Catch::StartsWith("grow_until: expected max_samples >= initial, got 4 < 8"));
  CHECK_THROWS_WITH(grow_until_confident(draw, {.confidence = 0.0}),
                    Catch::StartsWith("grow_until_confident: expected confidence in (0, 1], got 0"));
}
