// SEC: the oracle values of reference/algorithms.md §1, the decay options, the gain helper, and the
// Boltzmann distribution's invariants.
#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <vector>

#include <kaizen/curriculum/sec.hpp>

namespace {

using kaizen::ArmId;
using kaizen::curriculum::advantage_gains;
using kaizen::curriculum::SecOptions;
using kaizen::curriculum::SelfEvolvingCurriculum;

// GRPO's group-relative advantage in float64: (r - mean) / (unbiased std + eps).
std::vector<double> grpo_advantages(const std::vector<double>& rewards, double eps = 1e-6) {
  const double n = static_cast<double>(rewards.size());
  const double mean = std::accumulate(rewards.begin(), rewards.end(), 0.0) / n;
  double ss = 0.0;
  for (double r : rewards) ss += (r - mean) * (r - mean);
  const double sd = std::sqrt(ss / (n - 1.0));
  std::vector<double> a;
  for (double r : rewards) a.push_back((r - mean) / (sd + eps));
  return a;
}

}  // namespace

TEST_CASE("SEC reproduces the reference oracle for rewards 1 1 0 0", "[curriculum][sec]") {
  const std::vector<double> adv = grpo_advantages({1, 1, 0, 0});
  const std::vector<ArmId> arms{0, 0, 0, 0};
  const auto gains = advantage_gains(arms, adv);
  REQUIRE(gains.arms == std::vector<ArmId>{0});
  CHECK(gains.gains[0] == Approx(0.8660).margin(1e-4));

  SelfEvolvingCurriculum sec(2, {.alpha = 0.5, .tau = 1.0});
  sec.update(gains.arms, gains.gains);
  CHECK(sec.values()[0] == Approx(0.4330).margin(1e-4));
  CHECK(sec.values()[1] == 0.0);
  const auto p = sec.probabilities();
  CHECK(p[0] == Approx(0.6066).margin(1e-4));
  CHECK(p[0] == Approx(std::exp(sec.values()[0]) / (std::exp(sec.values()[0]) + 1.0)).epsilon(1e-12));
  CHECK(p[0] + p[1] == Approx(1.0).epsilon(1e-15));
}

TEST_CASE("SEC gives zero reward to all-correct and all-wrong groups", "[curriculum][sec]") {
  const std::vector<ArmId> arms{3, 3, 3, 3, 1, 1, 1, 1};
  std::vector<double> adv = grpo_advantages({1, 1, 1, 1});
  const std::vector<double> wrong = grpo_advantages({0, 0, 0, 0});
  adv.insert(adv.end(), wrong.begin(), wrong.end());
  const auto gains = advantage_gains(arms, adv);
  REQUIRE(gains.arms == std::vector<ArmId>{3, 1});
  CHECK(gains.gains == std::vector<double>{0.0, 0.0});

  SelfEvolvingCurriculum sec(4, {.alpha = 0.5});
  sec.update(gains.arms, gains.gains);
  for (double p : sec.probabilities()) CHECK(p == Approx(0.25).epsilon(1e-15));
}

TEST_CASE("SEC averages the gains of an arm within a step", "[curriculum][sec]") {
  SelfEvolvingCurriculum sec(3, {.alpha = 0.2, .tau = 0.5});
  const std::vector<ArmId> arms{0, 2, 0, 0};
  const std::vector<double> gains{1.0, 0.3, 0.5, 0.0};
  sec.update(arms, gains);
  CHECK(sec.values()[0] == Approx(0.2 * 0.5).epsilon(1e-15));
  CHECK(sec.values()[1] == 0.0);
  CHECK(sec.values()[2] == Approx(0.2 * 0.3).epsilon(1e-15));
  // Boltzmann at tau = 0.5, recomputed independently.
  const double z = std::exp(0.1 / 0.5) + 1.0 + std::exp(0.06 / 0.5);
  const auto p = sec.probabilities();
  CHECK(p[0] == Approx(std::exp(0.1 / 0.5) / z).epsilon(1e-14));
  CHECK(p[1] == Approx(1.0 / z).epsilon(1e-14));
  CHECK(p[2] == Approx(std::exp(0.06 / 0.5) / z).epsilon(1e-14));
}

TEST_CASE("SEC decays unsampled arms by (1 - alpha)^n unless told not to", "[curriculum][sec]") {
  const double alpha = 0.3;
  SelfEvolvingCurriculum decaying(2, {.alpha = alpha, .decay_unsampled = true});
  SelfEvolvingCurriculum paper(2, {.alpha = alpha, .decay_unsampled = false});
  const std::vector<ArmId> first{0};
  const std::vector<double> gain{0.8};
  decaying.update(first, gain);
  paper.update(first, gain);
  const double q0 = alpha * 0.8;
  const std::vector<ArmId> other{1};
  const std::vector<double> zero{0.0};
  for (int n = 1; n <= 7; ++n) {
    decaying.update(other, zero);
    paper.update(other, zero);
    CHECK(decaying.values()[0] == Approx(q0 * std::pow(1.0 - alpha, n)).epsilon(1e-12));
    CHECK(paper.values()[0] == Approx(q0).epsilon(1e-15));
  }
  // An empty step is a step in which nothing was drawn.
  decaying.update({}, {});
  CHECK(decaying.values()[0] == Approx(q0 * std::pow(1.0 - alpha, 8)).epsilon(1e-12));
}

TEST_CASE("SEC probabilities are a distribution, uniform for equal values or a large temperature",
          "[curriculum][sec]") {
  SelfEvolvingCurriculum sec(5, {.alpha = 0.5, .tau = 1e9});
  const std::vector<ArmId> arms{0, 1, 2};
  const std::vector<double> gains{2.0, 0.5, 1.0};
  sec.update(arms, gains);
  auto p = sec.probabilities();
  for (double x : p) CHECK(x == Approx(0.2).epsilon(1e-6));

  SelfEvolvingCurriculum sharp(5, {.alpha = 0.5, .tau = 0.05});
  sharp.update(arms, gains);
  p = sharp.probabilities();
  CHECK(std::accumulate(p.begin(), p.end(), 0.0) == Approx(1.0).epsilon(1e-14));
  CHECK(p[0] > 0.99);
}

TEST_CASE("SEC draws follow its probabilities", "[curriculum][sec]") {
  SelfEvolvingCurriculum sec(4, {.alpha = 1.0, .tau = 0.5});
  const std::vector<ArmId> arms{0, 1, 2, 3};
  const std::vector<double> gains{0.1, 0.9, 0.4, 0.0};
  sec.update(arms, gains);
  const auto p = sec.probabilities();
  kaizen::Rng rng(11);
  const std::size_t n = 40000;
  const auto draws = sec.sample(n, rng);
  REQUIRE(draws.size() == n);
  std::vector<double> freq(4, 0.0);
  for (ArmId a : draws) freq[static_cast<std::size_t>(a)] += 1.0 / static_cast<double>(n);
  // 5 standard errors of a binomial proportion.
  for (std::size_t a = 0; a < 4; ++a)
    CHECK(std::abs(freq[a] - p[a]) < 5.0 * std::sqrt(p[a] * (1 - p[a]) / n));
}

TEST_CASE("SEC concentrates on the arm that keeps producing advantage", "[curriculum][sec]") {
  // Arm 1 is learnable (mixed groups), arms 0 and 2 are solved / hopeless (zero advantage).
  SelfEvolvingCurriculum sec(3, {.alpha = 0.5, .tau = 0.2});
  kaizen::Rng rng(3);
  for (int step = 0; step < 30; ++step) {
    const auto arms = sec.sample(16, rng);
    std::vector<double> gains;
    for (ArmId a : arms) gains.push_back(a == 1 ? 0.9 : 0.0);
    sec.update(arms, gains);
  }
  CHECK(sec.probabilities()[1] > 0.9);
}

TEST_CASE("SEC token-level gains take the masked mean of |advantage|", "[curriculum][sec]") {
  // Two rollouts of arm 5 and one of arm 2, three token slots each.
  const std::vector<ArmId> arms{5, 2, 5};
  const std::vector<double> adv{1.0,  -2.0, 99.0,  // third token is padding
                                -0.5, -0.5, -0.5,  // all tokens count
                                3.0,  3.0,  3.0};  // mask all zero: score 0
  const std::vector<double> mask{1, 1, 0, 1, 1, 1, 0, 0, 0};
  const auto g = advantage_gains(arms, adv, mask, 3);
  REQUIRE(g.arms == std::vector<ArmId>{5, 2});
  CHECK(g.gains[0] == Approx((1.5 + 0.0) / 2.0).epsilon(1e-15));
  CHECK(g.gains[1] == Approx(0.5).epsilon(1e-15));
  CHECK_THROWS_WITH(
      advantage_gains(arms, adv, mask, 4),
      Catch::StartsWith("advantage_gains: expected token advantages and mask of 3 x 4 = 12 values"));
  const std::vector<double> bad_mask{1, 1, 0, 1, -1, 1, 0, 0, 0};
  CHECK_THROWS_WITH(advantage_gains(arms, adv, bad_mask, 3),
                    Catch::StartsWith("advantage_gains: expected mask values >= 0, got -1"));
  const std::vector<double> nan_adv{1.0, NAN, 0.0, 0, 0, 0, 0, 0, 0};
  CHECK_THROWS_WITH(advantage_gains(arms, nan_adv, mask, 3),
                    Catch::StartsWith("advantage_gains: expected finite advantages, got nan"));
}

TEST_CASE("SEC rejects bad settings and bad updates", "[curriculum][sec]") {
  CHECK_THROWS_WITH(SelfEvolvingCurriculum(3, {.tau = 0.0}),
                    Catch::StartsWith("SelfEvolvingCurriculum: expected a temperature tau > 0, got 0"));
  CHECK_THROWS_WITH(SelfEvolvingCurriculum(3, {.tau = -1.0}),
                    Catch::StartsWith("SelfEvolvingCurriculum: expected a temperature tau > 0, got -1"));
  CHECK_THROWS_WITH(SelfEvolvingCurriculum(3, {.alpha = 0.0}),
                    Catch::StartsWith("SelfEvolvingCurriculum: expected alpha in (0, 1], got 0"));
  CHECK_THROWS_WITH(
      SelfEvolvingCurriculum(0),
      Catch::StartsWith("SelfEvolvingCurriculum: expected at least one arm, got an empty arm set"));
  SelfEvolvingCurriculum sec(3);
  const std::vector<ArmId> unknown{0, 3};
  const std::vector<double> two{0.1, 0.2};
  CHECK_THROWS_WITH(
      sec.update(unknown, two),
      Catch::StartsWith("SelfEvolvingCurriculum::update: expected arm ids in [0, 3), got 3 at position 1"));
  const std::vector<ArmId> ok{0, 1};
  const std::vector<double> inf{0.1, INFINITY};
  CHECK_THROWS_WITH(
      sec.update(ok, inf),
      Catch::StartsWith("SelfEvolvingCurriculum::update: expected finite gains, got inf for arm 1"));
  const std::vector<double> one{0.1};
  CHECK_THROWS_WITH(sec.update(ok, one),
                    Catch::StartsWith("SelfEvolvingCurriculum::update: expected one gain per "
                                      "arm id, got 2 arm ids and 1 gains"));
  CHECK(sec.values() == std::vector<double>{0.0, 0.0, 0.0});  // nothing applied by a failed update
  const std::vector<ArmId> negative{-1};
  CHECK_THROWS_WITH(advantage_gains(negative, one),
                    Catch::StartsWith("advantage_gains: expected arm ids >= 0, got -1"));
}

TEST_CASE("SEC arms added while training start at value 0", "[curriculum][sec]") {
  SelfEvolvingCurriculum sec(2, {.alpha = 0.5});
  const std::vector<ArmId> arms{0};
  const std::vector<double> gains{1.0};
  sec.update(arms, gains);
  CHECK(sec.add_arm() == 2);
  REQUIRE(sec.num_arms() == 3);
  CHECK(sec.values()[2] == 0.0);
  const auto p = sec.probabilities();
  CHECK(p[1] == Approx(p[2]).epsilon(1e-15));
  const std::vector<ArmId> new_arm{2};
  sec.update(new_arm, gains);
  CHECK(sec.values()[2] == Approx(0.5).epsilon(1e-15));
}
