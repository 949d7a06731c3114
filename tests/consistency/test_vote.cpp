#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/consistency.hpp>

using namespace kaizen;
using namespace kaizen::consistency;
using std::nullopt;

TEST_CASE("majority and weighted votes match the reference oracle", "[consistency][vote]") {
  const std::vector<int> answers{3, 5, 3, 7};
  const auto majority = majority_vote(answers);
  REQUIRE(majority);
  CHECK(majority->answer == 3);
  CHECK(majority->support == 2.0);
  CHECK(majority->runner_up == 1.0);
  CHECK(majority->total == 4.0);
  CHECK(majority->confidence == 0.5);
  CHECK(majority->margin == 0.25);
  CHECK(majority->first_index == 0);
  CHECK(majority->distinct == 3);
  const auto weighted = weighted_vote(answers, std::vector<double>{0.1, 0.9, 0.1, 0.2});
  REQUIRE(weighted);
  CHECK(weighted->answer == 5);
  CHECK(weighted->support == Approx(0.9));
  CHECK(weighted->runner_up == Approx(0.2));
  CHECK(weighted->confidence == Approx(0.9 / 1.3));
  CHECK(weighted->margin == Approx(0.7 / 1.3));
}

TEST_CASE("votes break ties by first occurrence and let missing answers abstain", "[consistency][vote]") {
  const std::vector<std::string> tie{"b", "a", "a", "b"};
  CHECK(majority_vote(tie)->answer == "b");
  const std::vector<std::string> tie2{"a", "b", "b", "a"};
  CHECK(majority_vote(tie2)->answer == "a");
  const auto w = weighted_vote(tie, std::vector<double>{0.5, 1.0, 0.0, 0.5});
  CHECK(w->answer == "b");  // 1.0 each, "b" came first
  CHECK(w->margin == 0.0);

  const std::vector<std::optional<std::string>> partial{nullopt, "7", nullopt, "8", "8"};
  const auto vote = majority_vote(partial);
  REQUIRE(vote);
  CHECK(vote->answer == "8");
  CHECK(vote->first_index == 3);
  CHECK(vote->answered == 3);
  CHECK(vote->abstained == 2);
  CHECK(vote->confidence == Approx(2.0 / 3.0));
  const std::vector<std::optional<std::string>> none{nullopt, nullopt};
  CHECK(majority_vote(none) == nullopt);  // documented: every sample abstained
  CHECK(weighted_vote(none, std::vector<double>{1.0, 1.0}) == nullopt);
}

TEST_CASE("votes agree with a brute-force recount on random inputs", "[consistency][vote]") {
  Rng rng(7);
  for (int trial = 0; trial < 500; ++trial) {
    const auto n = 1 + uniform_index(rng, 30);
    std::vector<std::optional<int>> answers;
    std::vector<double> weights;
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto a = static_cast<int>(uniform_index(rng, 5));
      answers.push_back(a == 4 ? std::nullopt : std::optional<int>(a));
      weights.push_back(uniform01(rng));
    }
    for (bool use_weights : {false, true}) {
      double best = -1.0;
      int winner = -1;
      for (std::size_t i = 0; i < answers.size(); ++i) {  // candidates in first-occurrence order
        if (!answers[i]) continue;
        bool seen = false;
        for (std::size_t j = 0; j < i; ++j) seen = seen || answers[j] == answers[i];
        if (seen) continue;
        double s = 0.0;
        for (std::size_t j = 0; j < answers.size(); ++j)
          if (answers[j] == answers[i]) s += use_weights ? weights[j] : 1.0;
        if (s > best) best = s, winner = *answers[i];
      }
      const auto vote = use_weights ? weighted_vote(answers, weights) : majority_vote(answers);
      if (winner < 0) {
        CHECK(vote == nullopt);
      } else {
        REQUIRE(vote);
        CHECK(vote->answer == winner);
        CHECK(vote->support == Approx(best));
        CHECK(vote->margin >= 0.0);
        CHECK(vote->confidence <= 1.0 + 1e-12);
      }
    }
  }
}

TEST_CASE("weights_from_logprobs is a max-shifted softmax", "[consistency][vote]") {
  const std::vector<double> lp{-1.0, -3.0, -1.5};
  const auto w = weights_from_logprobs(lp);
  CHECK(w[0] == 1.0);
  CHECK(w[1] == Approx(std::exp(-2.0)));
  CHECK(w[2] == Approx(std::exp(-0.5)));
  CHECK(weights_from_logprobs(lp, 2.0)[1] == Approx(std::exp(-1.0)));
  const std::vector<std::string> answers{"x", "y", "y"};
  CHECK(weighted_vote(answers, w)->answer == "x");  // 1 > e^-2 + e^-0.5
}

TEST_CASE("votes reject empty candidates, bad weights and NaN", "[consistency][vote][errors]") {
  const std::vector<int> empty;
  CHECK_THROWS_WITH(majority_vote(empty), Catch::StartsWith("majority_vote: expected at least one answer, got none"));
  CHECK_THROWS_WITH(weighted_vote(empty, std::vector<double>{}),
                    Catch::StartsWith("weighted_vote: expected at least one answer, got none"));
  const std::vector<int> two{1, 2};
  CHECK_THROWS_WITH(weighted_vote(two, std::vector<double>{1.0}),
                    Catch::StartsWith("weighted_vote: expected one weight per answer, got 2 answers and 1 weights"));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(weighted_vote(two, std::vector<double>{1.0, nan}),
                    Catch::StartsWith("weighted_vote: expected finite non-negative weights, got nan at index 1"));
  CHECK_THROWS_WITH(weighted_vote(two, std::vector<double>{-1.0, 1.0}),
                    Catch::StartsWith("weighted_vote: expected finite non-negative weights, got -1 at index 0"));
  CHECK_THROWS_WITH(weighted_vote(two, std::vector<double>{0.0, 0.0}),
                    Catch::StartsWith("weighted_vote: expected a positive total weight over the 2 answered samples"));
  CHECK_THROWS_WITH(weights_from_logprobs(std::vector<double>{}),
                    Catch::StartsWith("weights_from_logprobs: expected at least one log-prob, got none"));
  CHECK_THROWS_WITH(weights_from_logprobs(std::vector<double>{0.0, nan}),
                    Catch::StartsWith("weights_from_logprobs: expected finite log-probs, got nan at index 1"));
  CHECK_THROWS_WITH(weights_from_logprobs(std::vector<double>{0.0}, 0.0),
                    Catch::StartsWith("weights_from_logprobs: expected a positive finite temperature, got 0"));
}

namespace {
// Replays a fixed answer sequence window by window and counts what was drawn.
struct Replay {
  explicit Replay(std::vector<std::optional<std::string>> cycle) : answers(std::move(cycle)) {}
  std::vector<std::optional<std::string>> answers;
  std::size_t next = 0;
  std::vector<std::size_t> requests;
  std::vector<std::optional<std::string>> operator()(std::size_t n) {
    requests.push_back(n);
    std::vector<std::optional<std::string>> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(answers[(next++) % answers.size()]);
    return out;
  }
};
}  // namespace

TEST_CASE("early-stopping self-consistency stops at the first agreeing window", "[consistency][early_stopping]") {
  Replay replay{{"1", "2", "1", "3", "3", "3", "3"}};
  replay.answers.resize(40, "3");
  static_assert(AnswerSource<Replay&>);
  static_assert(!AnswerSource<int>);
  const auto result = early_stopping_vote(std::ref(replay), {.window = 4, .max_samples = 20});
  // windows: [1 2 1 3] disagree, [3 3 3 3] agree -> stop after 8 samples
  CHECK(result.samples == 8);
  CHECK(result.stopped_early);
  CHECK(replay.requests == std::vector<std::size_t>{4, 4});
  REQUIRE(result.vote);
  CHECK(result.vote->answer == "3");
  CHECK(result.vote->support == 5.0);

  Replay alternating{{"a", "b"}};
  const auto capped = early_stopping_vote(std::ref(alternating), {.window = 3, .max_samples = 10});
  CHECK(capped.samples == 10);
  CHECK(!capped.stopped_early);
  CHECK(alternating.requests == std::vector<std::size_t>{3, 3, 3, 1});
  CHECK(capped.vote->answer == "a");  // 5 vs 5, "a" first

  Replay abstaining{{nullopt}};
  const auto none = early_stopping_vote(std::ref(abstaining), {.window = 2, .max_samples = 4});
  CHECK(none.samples == 4);
  CHECK(none.vote == nullopt);
}

TEST_CASE("adaptive consistency uses the exact Beta stopping rule", "[consistency][early_stopping]") {
  CHECK(leader_probability(0, 0) == Approx(0.5));
  CHECK(leader_probability(1, 0) == Approx(0.75));
  CHECK(leader_probability(3, 0) == Approx(0.9375));
  CHECK(leader_probability(4, 0) == Approx(0.96875));
  CHECK(leader_probability(2, 2) == Approx(0.5));
  CHECK(leader_probability(3, 1) == Approx(26.0 / 32.0));  // n = 5: (1 + 5 + 10 + 10) / 32
  CHECK(leader_probability(2000, 0) == Approx(1.0));
  CHECK(leader_probability(1000, 1000) == Approx(0.5).margin(1e-9));

  Replay unanimous{{"42"}};
  const auto fast = adaptive_consistency_vote(std::ref(unanimous));
  CHECK(fast.samples == 4);  // 0.75, 0.875, 0.9375, 0.96875 >= 0.95
  CHECK(fast.stopped_early);
  CHECK(fast.leader_probability == Approx(0.96875));
  CHECK(fast.vote->answer == "42");

  Replay split{{"x", "y"}};
  const auto slow = adaptive_consistency_vote(std::ref(split), {.batch = 4, .max_samples = 12});
  CHECK(slow.samples == 12);
  CHECK(!slow.stopped_early);
  CHECK(split.requests == std::vector<std::size_t>{4, 4, 4});

  Replay min_bound{{"z"}};
  CHECK(adaptive_consistency_vote(std::ref(min_bound), {.min_samples = 6}).samples == 6);
}

TEST_CASE("stopping votes reject zero budgets and short draws", "[consistency][early_stopping][errors]") {
  Replay replay{{"1"}};
  CHECK_THROWS_WITH(early_stopping_vote(std::ref(replay), {.window = 0}),
                    Catch::StartsWith("early_stopping_vote: expected window > 0, got 0"));
  CHECK_THROWS_WITH(early_stopping_vote(std::ref(replay), {.window = 5, .max_samples = 3}),
                    Catch::StartsWith("early_stopping_vote: expected max_samples >= window, got 3 < 5"));
  auto short_draw = [](std::size_t) { return std::vector<int>{1}; };
  CHECK_THROWS_WITH(early_stopping_vote(short_draw, {.window = 2, .max_samples = 4}),
                    Catch::StartsWith("early_stopping_vote: the answer source returned 1 answers, expected 2"));
  CHECK_THROWS_WITH(adaptive_consistency_vote(std::ref(replay), {.threshold = 0.5}),
                    Catch::StartsWith("adaptive_consistency_vote: expected threshold in (0.5, 1), got 0.5"));
  CHECK_THROWS_WITH(adaptive_consistency_vote(std::ref(replay), {.batch = 0}),
                    Catch::StartsWith("adaptive_consistency_vote: expected batch > 0, got 0"));
  CHECK_THROWS_WITH(adaptive_consistency_vote(std::ref(replay), {.max_samples = 0}),
                    Catch::StartsWith("adaptive_consistency_vote: expected max_samples > 0, got 0"));
  CHECK_THROWS_WITH(adaptive_consistency_vote(std::ref(replay), {.min_samples = 5, .max_samples = 4}),
                    Catch::StartsWith("adaptive_consistency_vote: expected min_samples <= max_samples, got 5 > 4"));
  CHECK_THROWS_WITH(leader_probability(1, 2), Catch::StartsWith("leader_probability: expected runner_up <= leader"));
}

TEST_CASE("pass@k is the unbiased estimator and maj@k votes over subsets", "[consistency][pass_at_k]") {
  CHECK(pass_at_k(10, 0, 5) == 0.0);
  CHECK(pass_at_k(10, 10, 1) == 1.0);
  CHECK(pass_at_k(10, 3, 1) == Approx(0.3));
  CHECK(pass_at_k(5, 2, 2) == Approx(1.0 - 3.0 / 10.0));  // 1 - C(3,2)/C(5,2)
  CHECK(pass_at_k(4, 2, 3) == 1.0);                       // n - c < k
  // Brute force over all k-subsets of n = 8 samples.
  for (std::size_t c = 0; c <= 8; ++c) {
    for (std::size_t k = 1; k <= 8; ++k) {
      std::size_t subsets = 0, hit = 0;
      for (unsigned mask = 0; mask < 256; ++mask) {
        if (static_cast<std::size_t>(__builtin_popcount(mask)) != k) continue;
        ++subsets;
        if ((mask & ((1U << c) - 1U)) != 0U) ++hit;  // the first c samples are the correct ones
      }
      CHECK(pass_at_k(8, c, k) == Approx(static_cast<double>(hit) / static_cast<double>(subsets)));
    }
  }

  const std::vector<std::string> answers{"4", "4", "5", "6"};
  Rng rng(3);
  CHECK(maj_at_k(answers, std::string("4"), 4, rng) == 1.0);
  CHECK(maj_at_k(answers, std::string("5"), 4, rng) == 0.0);
  CHECK(majority_correct(answers, std::string("4")));
  // k = 1: the vote is one uniformly drawn sample, so maj@1 -> 2/4.
  CHECK(maj_at_k(answers, std::string("4"), 1, rng, 20000) == Approx(0.5).margin(0.02));
  // k = 2 over 6 equally likely pairs: {4,4} {4,5} {4,6} {4,5} {4,6} -> "4" first -> 5/6 pairs win.
  CHECK(maj_at_k(answers, std::string("4"), 2, rng, 20000) == Approx(5.0 / 6.0).margin(0.02));

  CHECK_THROWS_WITH(pass_at_k(0, 0, 1), Catch::StartsWith("pass_at_k: expected n > 0 samples, got 0"));
  CHECK_THROWS_WITH(pass_at_k(3, 4, 1), Catch::StartsWith("pass_at_k: expected c <= n, got c = 4 and n = 3"));
  CHECK_THROWS_WITH(pass_at_k(3, 1, 0), Catch::StartsWith("pass_at_k: expected 1 <= k <= n = 3, got k = 0"));
  CHECK_THROWS_WITH(maj_at_k(answers, std::string("4"), 5, rng),
                    Catch::StartsWith("maj_at_k: expected 1 <= k <= n = 4, got k = 5"));
  CHECK_THROWS_WITH(maj_at_k(answers, std::string("4"), 2, rng, 0),
                    Catch::StartsWith("maj_at_k: expected resamples > 0 when k < n, got 0"));
}
