// Tests of kaizen/loop/rejection_sampling.hpp and kaizen/loop/balance.hpp (torch-free): the balance-score
// oracles of algorithms.md §2 (0.2 and 0.9), monitors recomputed by hand on a small labelled set, the
// selection rule (threshold, cap, distinct, score order), the monotonicity of kept counts in the
// threshold, the grid search's argmax and tie rule, and the errors on bad input.
#include <catch2/catch.hpp>

#include <cstdint>
#include <span>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/balance.hpp>
#include <kaizen/loop/rejection_sampling.hpp>

namespace {

using kaizen::Completion;
using kaizen::Group;
using kaizen::loop::KeptCounts;
using kaizen::loop::LabelledGroup;

Completion tokens(std::vector<kaizen::TokenId> t) {
  Completion c;
  c.tokens = std::move(t);
  return c;
}

/// A group whose sample j has tokens {j} (all distinct), score scores[j], correctness correct[j].
LabelledGroup labelled(const std::vector<double>& scores, const std::vector<double>& correct) {
  LabelledGroup lg;
  lg.group.prompt.tokens = {1, 2};
  for (std::size_t j = 0; j < scores.size(); ++j) lg.group.completions.push_back(tokens({static_cast<kaizen::TokenId>(j)}));
  lg.group.rewards = scores;
  lg.correct = correct;
  return lg;
}

}  // namespace

TEST_CASE("balance score matches the oracles of the B-STaR digest", "[loop][bstar]") {
  CHECK(kaizen::loop::balance_score({.kept = 10, .kept_correct = 4}, 8) == Approx(0.2));
  CHECK(kaizen::loop::balance_score({.kept = 10, .kept_correct = 9}, 8) == Approx(0.9));
  CHECK(kaizen::loop::balance_score({.kept = 0, .kept_correct = 0}, 8) == 0.0);
  const std::vector<KeptCounts> qs = {{10, 4}, {10, 9}, {0, 0}};
  CHECK(kaizen::loop::mean_balance_score(std::span<const KeptCounts>(qs), 8, true) == Approx(0.55));
  CHECK(kaizen::loop::mean_balance_score(std::span<const KeptCounts>(qs), 8, false) == Approx(1.1 / 3.0));
}

TEST_CASE("balance score stays in 0..1 over every count", "[loop][bstar]") {
  for (std::int64_t n_star = 1; n_star <= 9; n_star += 4)
    for (std::int64_t kept = 0; kept <= 12; ++kept)
      for (std::int64_t correct = 0; correct <= kept; ++correct) {
        const double bs = kaizen::loop::balance_score({kept, correct}, n_star);
        CHECK(bs >= 0.0);
        CHECK(bs <= 1.0);
      }
}

TEST_CASE("selection keeps the best scores above the threshold, capped and without duplicates", "[loop][select]") {
  Group g;
  g.prompt.tokens = {5};
  g.completions = {tokens({1}), tokens({2}), tokens({2}), tokens({3}), tokens({4})};
  g.rewards = {0.5, 0.9, 0.9, 0.2, 0.7};
  using kaizen::loop::select_indices;
  CHECK(select_indices(g, {.threshold = 0.5, .strict = false, .cap = 10, .distinct = true}) == std::vector<std::size_t>{1, 4, 0});
  CHECK(select_indices(g, {.threshold = 0.5, .strict = true, .cap = 10, .distinct = false}) == std::vector<std::size_t>{1, 2, 4});
  CHECK(select_indices(g, {.threshold = 0.0, .strict = false, .cap = 2, .distinct = true}) == std::vector<std::size_t>{1, 4});
  CHECK(select_indices(g, {.threshold = 1.0, .strict = false, .cap = 3, .distinct = true}).empty());
  const std::vector<Group> groups = {g, g};
  const auto examples = kaizen::loop::select_examples(std::span<const Group>(groups), {.threshold = 0.7, .cap = 5});
  REQUIRE(examples.size() == 4);
  CHECK(examples[0].completion.tokens == std::vector<kaizen::TokenId>{2});
  CHECK(examples[0].prompt == std::vector<kaizen::TokenId>{5});
  CHECK(examples[1].reward == 0.7);
  CHECK(examples[2].group == 1);
}

TEST_CASE("raising the threshold never keeps more samples", "[loop][select]") {
  kaizen::Rng rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<double> scores, correct;
    for (int j = 0; j < 12; ++j) {
      scores.push_back(static_cast<double>(kaizen::uniform_index(rng, 21)) / 10.0 - 1.0);
      correct.push_back(static_cast<double>(kaizen::uniform_index(rng, 2)));
    }
    const std::vector<LabelledGroup> qs = {labelled(scores, correct)};
    double previous = 1e9;
    for (double tau = -1.0; tau <= 1.0; tau += 0.1) {
      const auto m = kaizen::loop::monitor(std::span<const LabelledGroup>(qs), tau, {.n_star = 4, .cap = 12});
      CHECK(m.kept_per_query <= previous);
      previous = m.kept_per_query;
    }
  }
}

TEST_CASE("monitors recomputed by hand on two queries", "[loop][bstar]") {
  // Query A: 4 samples, scores [0.9, 0.8, 0.3, 0.1], correct [1, 0, 1, 0].
  // Query B: 4 samples, scores [0.6, 0.6, 0.6, 0.6], correct [0, 0, 0, 0].
  const std::vector<LabelledGroup> qs = {labelled({0.9, 0.8, 0.3, 0.1}, {1, 0, 1, 0}),
                                         labelled({0.6, 0.6, 0.6, 0.6}, {0, 0, 0, 0})};
  // τ = 0.5, cap 8: A keeps 2 (1 correct), B keeps 4 (0 correct).
  const auto m = kaizen::loop::monitor(std::span<const LabelledGroup>(qs), 0.5, {.n_star = 2, .cap = 8, .s = 2});
  CHECK(m.pass_at_k == Approx(0.5));         // A has a correct sample, B none
  CHECK(m.pass_at_k_s == Approx(0.5));       // A has 2 correct
  CHECK(m.distinct_correct == Approx(1.0));  // (2 + 0) / 2
  CHECK(m.kept_per_query == Approx(3.0));    // (2 + 4) / 2
  CHECK(m.kept_precision == Approx(1.0 / 6.0));
  // bs_A = min(1/2, 1)·(1/2) = 0.25, bs_B = 0 → mean 0.125
  CHECK(m.balance_score == Approx(0.125));
  // τ = 0.85: A keeps 1 (correct), B keeps none (skipped): bs = min(1/2,1)·1 = 0.5
  const auto high = kaizen::loop::monitor(std::span<const LabelledGroup>(qs), 0.85, {.n_star = 2, .cap = 8, .s = 2});
  CHECK(high.balance_score == Approx(0.5));
  CHECK(high.kept_precision == Approx(1.0));
  const auto counted = kaizen::loop::monitor(std::span<const LabelledGroup>(qs), 0.85,
                                             {.n_star = 2, .cap = 8, .s = 2, .skip_empty = false});
  CHECK(counted.balance_score == Approx(0.25));
}

TEST_CASE("the grid search picks the highest balance score, ties to the first", "[loop][bstar]") {
  const std::vector<double> temps = {0.5, 1.0}, taus = {0.2, 0.5, 0.85};
  std::vector<double> called;
  auto sample_at = [&](double t) {
    called.push_back(t);
    if (t == 0.5) return std::vector<LabelledGroup>{labelled({0.9, 0.8, 0.3, 0.1}, {1, 0, 1, 0})};
    return std::vector<LabelledGroup>{labelled({0.9, 0.9, 0.9, 0.1}, {1, 1, 1, 0})};
  };
  const auto best = kaizen::loop::tune_balance(std::span<const double>(temps), std::span<const double>(taus), sample_at,
                                               {.n_star = 2, .cap = 8});
  CHECK(called == temps);
  // t=1.0, τ=0.2/0.5/0.85: 3 kept, 3 correct → 1.0 (first at τ=0.2). t=0.5 peaks at 0.5.
  CHECK(best.temperature == 1.0);
  CHECK(best.threshold == 0.2);
  CHECK(best.monitors.balance_score == Approx(1.0));
  CHECK(best.table.size() == 6);
}

TEST_CASE("rejection-sampling selection and B-STaR monitors reject bad input with values", "[loop][errors]") {
  using Catch::Contains;
  Group g;
  g.completions = {tokens({1})};
  g.rewards = {1.0};
  REQUIRE_THROWS_WITH(kaizen::loop::select_indices(g, {.cap = 0}), Contains("cap must be > 0, got 0"));
  REQUIRE_THROWS_WITH(kaizen::loop::select_indices(g, {.cap = -3}), Contains("got -3"));
  g.rewards = {1.0, 0.0};
  REQUIRE_THROWS_WITH(kaizen::loop::select_indices(g, {}), Contains("1 completions but 2 rewards"));
  REQUIRE_THROWS_WITH(kaizen::loop::balance_score({5, 6}, 8), Contains("kept = 5, kept_correct = 6"));
  REQUIRE_THROWS_WITH(kaizen::loop::balance_score({5, 1}, 0), Contains("must be >= 1, got 0"));
  const std::vector<double> empty, one = {0.5};
  auto sample_at = [](double) { return std::vector<LabelledGroup>{labelled({0.5}, {1})}; };
  REQUIRE_THROWS_WITH(kaizen::loop::tune_balance(std::span<const double>(empty), std::span<const double>(one), sample_at, {}),
                      Contains("temperature grid is empty"));
  REQUIRE_THROWS_WITH(kaizen::loop::tune_balance(std::span<const double>(one), std::span<const double>(empty), sample_at, {}),
                      Contains("reward-threshold grid is empty"));
  const std::vector<LabelledGroup> bad = {labelled({0.5, 0.2}, {1})};
  REQUIRE_THROWS_WITH(kaizen::loop::monitor(std::span<const LabelledGroup>(bad), 0.0, {}),
                      Contains("2 samples but 1 correctness labels"));
  const std::vector<LabelledGroup> half = {labelled({0.5}, {0.5})};
  REQUIRE_THROWS_WITH(kaizen::loop::monitor(std::span<const LabelledGroup>(half), 0.0, {}), Contains("must be 0 or 1, got 0.5"));
  REQUIRE_THROWS_WITH(kaizen::loop::monitor(std::span<const LabelledGroup>(), 0.0, {}), Contains("at least one query"));
}
