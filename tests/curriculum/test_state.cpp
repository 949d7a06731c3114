// Every curriculum models kaizen::Curriculum, saves and restores exactly (save -> restore -> continue
// gives the draws of the run that never stopped), and rejects bad input with kaizen errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include <kaizen/curriculum.hpp>
#include <kaizen/curriculum/linucb.hpp>

namespace {

using kaizen::ArmId;
using kaizen::Rng;
namespace cur = kaizen::curriculum;

static_assert(kaizen::Curriculum<cur::SelfEvolvingCurriculum>);
static_assert(kaizen::Curriculum<cur::Ucb1>);
static_assert(kaizen::Curriculum<cur::DiscountedUcb>);
static_assert(kaizen::Curriculum<cur::SlidingWindowUcb>);
static_assert(kaizen::Curriculum<cur::Exp3>);
static_assert(kaizen::Curriculum<cur::BetaThompson>);
static_assert(kaizen::Curriculum<cur::GaussianThompson>);
static_assert(kaizen::Curriculum<cur::EpsilonGreedy>);
static_assert(kaizen::Curriculum<cur::LinUcb>);
static_assert(kaizen::Curriculum<cur::LearnabilitySampler>);

constexpr std::size_t kArms = 6;

// Gains in [0, 1] from a fixed per-arm success rate, drawn from the environment's own engine.
std::vector<double> bernoulli_gains(const std::vector<ArmId>& arms, Rng& env) {
  std::vector<double> g;
  for (ArmId a : arms) g.push_back(kaizen::uniform01(env) < 0.15 * static_cast<double>(a) ? 1.0 : 0.0);
  return g;
}

std::vector<ArmId> run(auto& curriculum, Rng& rng, Rng& env, int steps) {
  std::vector<ArmId> all;
  for (int s = 0; s < steps; ++s) {
    const std::vector<ArmId> arms = curriculum.sample(5, rng);
    curriculum.update(arms, bernoulli_gains(arms, env));
    all.insert(all.end(), arms.begin(), arms.end());
  }
  return all;
}

// Runs 40 steps, saves (state through JSON text, engines through save_rng), runs 40 more; then a second
// instance, built with other settings, restores and runs the same 40 steps.
template <class C>
void check_resume(C original, C other) {
  Rng rng(17), env(23);
  run(original, rng, env, 40);
  const std::string saved = original.state().dump();
  const std::string saved_rng = kaizen::save_rng(rng), saved_env = kaizen::save_rng(env);
  const std::vector<ArmId> uninterrupted = run(original, rng, env, 40);

  Rng rng2(999), env2(999);
  kaizen::restore_rng(rng2, saved_rng);
  kaizen::restore_rng(env2, saved_env);
  other.restore(nlohmann::json::parse(saved));
  CHECK(other.state().dump() == saved);
  const std::vector<ArmId> resumed = run(other, rng2, env2, 40);
  CHECK(resumed == uninterrupted);
  CHECK(other.probabilities() == original.probabilities());
  CHECK(other.state() == original.state());
}

}  // namespace

TEST_CASE("Save, restore and continue reproduces the uninterrupted run", "[curriculum][state]") {
  SECTION("SEC") {
    check_resume(cur::SelfEvolvingCurriculum(kArms, {.alpha = 0.3, .tau = 0.4}),
                 cur::SelfEvolvingCurriculum(2));
  }
  SECTION("UCB1") {
    check_resume(cur::Ucb1(kArms, {.exploration = 0.7}), cur::Ucb1(1));
  }
  SECTION("discounted UCB") {
    check_resume(cur::DiscountedUcb(kArms, {.gamma = 0.95}), cur::DiscountedUcb(3));
  }
  SECTION("sliding-window UCB") {
    check_resume(cur::SlidingWindowUcb(kArms, {.window = 37}), cur::SlidingWindowUcb(kArms));
  }
  SECTION("EXP3.S") {
    check_resume(cur::Exp3(kArms, {.gamma = 0.2, .alpha = 0.01}), cur::Exp3(kArms));
  }
  SECTION("Beta Thompson") {
    check_resume(cur::BetaThompson(kArms, {.prior_alpha = 0.5, .probability_trials = 100}),
                 cur::BetaThompson(2));
  }
  SECTION("Gaussian Thompson") {
    check_resume(cur::GaussianThompson(kArms, {.noise_variance = 0.1, .probability_trials = 100}),
                 cur::GaussianThompson(2));
  }
  SECTION("epsilon-greedy") {
    check_resume(cur::EpsilonGreedy(kArms, {.epsilon = 0.3, .decay = 0.01}), cur::EpsilonGreedy(2));
  }
  SECTION("LinUCB") {
    Eigen::MatrixXd x(kArms, 3);
    for (Eigen::Index a = 0; a < x.rows(); ++a)
      x.row(a) << 1.0, static_cast<double>(a) / 5.0, (a % 2 == 0 ? 1.0 : 0.0);
    check_resume(cur::LinUcb(x, {.alpha = 0.8, .lambda = 0.5}), cur::LinUcb(Eigen::MatrixXd::Identity(2, 2)));
  }
  SECTION("learnability") {
    check_resume(cur::LearnabilitySampler(kArms, {.rate = 0.3}), cur::LearnabilitySampler(1));
  }
}

TEST_CASE("Restoring a state of another kind or with missing fields fails", "[curriculum][state]") {
  cur::Ucb1 ucb(3);
  cur::SelfEvolvingCurriculum sec(3);
  CHECK_THROWS_WITH(
      sec.restore(ucb.state()),
      Catch::StartsWith("SelfEvolvingCurriculum::restore: expected a state of kind \"sec\", got \"ucb1\""));
  CHECK_THROWS_WITH(
      sec.restore(nlohmann::json::array()),
      Catch::StartsWith("SelfEvolvingCurriculum::restore: expected a state object with a \"kind\" field"));
  nlohmann::json state = sec.state();
  state["tau"] = 0.0;
  CHECK_THROWS_WITH(sec.restore(state),
                    Catch::StartsWith("SelfEvolvingCurriculum: expected a temperature tau > 0, got 0"));
  state = sec.state();
  state["values"] = nlohmann::json::array();
  CHECK_THROWS_WITH(sec.restore(state),
                    Catch::StartsWith("SelfEvolvingCurriculum::restore: expected at least one arm"));
  state = ucb.state();
  state["sums"] = {1.0};
  CHECK_THROWS_WITH(ucb.restore(state),
                    Catch::StartsWith("Ucb1::restore: expected \"sums\" to hold 3 values, got 1"));
  state = ucb.state();
  state.erase("counts");
  CHECK_THROWS_WITH(ucb.restore(state),
                    Catch::StartsWith("Ucb1::restore: the state lacks the array \"counts\""));
  cur::SlidingWindowUcb sw(2, {.window = 4});
  const std::vector<ArmId> arms{1};
  const std::vector<double> gains{0.5};
  sw.update(arms, gains);
  state = sw.state();
  state["window_arms"] = {7};
  CHECK_THROWS_WITH(sw.restore(state),
                    Catch::StartsWith("SlidingWindowUcb::restore: expected window arm ids in [0, 2), got 7"));
}

TEST_CASE("Every curriculum rejects an empty arm set, unknown arms and non-finite gains",
          "[curriculum][errors]") {
  CHECK_THROWS_WITH(cur::Ucb1(0), Catch::StartsWith("Ucb1: expected at least one arm, got an empty arm set"));
  CHECK_THROWS_WITH(cur::DiscountedUcb(0), Catch::StartsWith("DiscountedUcb: expected at least one arm"));
  CHECK_THROWS_WITH(cur::SlidingWindowUcb(0),
                    Catch::StartsWith("SlidingWindowUcb: expected at least one arm"));
  CHECK_THROWS_WITH(cur::Exp3(0), Catch::StartsWith("Exp3: expected at least one arm"));
  CHECK_THROWS_WITH(cur::BetaThompson(0), Catch::StartsWith("BetaThompson: expected at least one arm"));
  CHECK_THROWS_WITH(cur::GaussianThompson(0),
                    Catch::StartsWith("GaussianThompson: expected at least one arm"));
  CHECK_THROWS_WITH(cur::EpsilonGreedy(0), Catch::StartsWith("EpsilonGreedy: expected at least one arm"));
  CHECK_THROWS_WITH(cur::LearnabilitySampler(0),
                    Catch::StartsWith("LearnabilitySampler: expected at least one arm"));
  CHECK_THROWS_WITH(cur::LinUcb(Eigen::MatrixXd(0, 2)),
                    Catch::StartsWith("LinUcb: expected at least one arm"));
  CHECK_THROWS_WITH(cur::LinUcb(Eigen::MatrixXd(2, 0)),
                    Catch::StartsWith("LinUcb: expected at least one feature per arm, got 0"));

  const std::vector<ArmId> unknown{0, -1};
  const std::vector<ArmId> known{0, 1};
  const std::vector<double> finite{0.5, 0.5};
  const std::vector<double> nan{0.5, NAN};
  auto check = [&](auto curriculum, const std::string& name) {
    INFO(name);
    CHECK_THROWS_WITH(curriculum.update(unknown, finite),
                      Catch::StartsWith(name + "::update: expected arm ids in [0, 2), got -1 at position 1"));
    CHECK_THROWS_WITH(
        curriculum.update(known, nan),
        Catch::StartsWith(name + "::update: expected finite gains, got nan for arm 1 at position 1"));
    const std::vector<ArmId> too_far{2};
    const std::vector<double> one{0.5};
    CHECK_THROWS_WITH(curriculum.update(too_far, one),
                      Catch::StartsWith(name + "::update: expected arm ids in [0, 2), got 2 at position 0"));
  };
  check(cur::SelfEvolvingCurriculum(2), "SelfEvolvingCurriculum");
  check(cur::Ucb1(2), "Ucb1");
  check(cur::DiscountedUcb(2), "DiscountedUcb");
  check(cur::SlidingWindowUcb(2), "SlidingWindowUcb");
  check(cur::Exp3(2), "Exp3");
  check(cur::BetaThompson(2), "BetaThompson");
  check(cur::GaussianThompson(2), "GaussianThompson");
  check(cur::EpsilonGreedy(2), "EpsilonGreedy");
  check(cur::LinUcb(Eigen::MatrixXd::Identity(2, 2)), "LinUcb");
  check(cur::LearnabilitySampler(2), "LearnabilitySampler");
}

TEST_CASE("Curricula reject settings outside their ranges", "[curriculum][errors]") {
  CHECK_THROWS_WITH(cur::Ucb1(2, {.exploration = -1.0}),
                    Catch::StartsWith("Ucb1: expected an exploration constant >= 0, got -1"));
  CHECK_THROWS_WITH(cur::DiscountedUcb(2, {.gamma = 1.5}),
                    Catch::StartsWith("DiscountedUcb: expected a discount gamma in (0, 1], got 1.5"));
  CHECK_THROWS_WITH(
      cur::SlidingWindowUcb(2, {.window = 0}),
      Catch::StartsWith("SlidingWindowUcb: expected a window of at least one observation, got 0"));
  CHECK_THROWS_WITH(cur::Exp3(2, {.gamma = 0.0}), Catch::StartsWith("Exp3: expected gamma in (0, 1], got 0"));
  CHECK_THROWS_WITH(cur::Exp3(2, {.alpha = 1.0}), Catch::StartsWith("Exp3: expected alpha in [0, 1), got 1"));
  CHECK_THROWS_WITH(
      cur::BetaThompson(2, {.prior_beta = 0.0}),
      Catch::StartsWith("BetaThompson: expected a Beta prior with positive parameters, got Beta(1, 0)"));
  CHECK_THROWS_WITH(
      cur::GaussianThompson(2, {.noise_variance = -1.0}),
      Catch::StartsWith("GaussianThompson: expected a finite prior mean and positive variances"));
  CHECK_THROWS_WITH(cur::EpsilonGreedy(2, {.epsilon = 1.5}),
                    Catch::StartsWith("EpsilonGreedy: expected epsilon in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(cur::LearnabilitySampler(2, {.floor = 0.0}),
                    Catch::StartsWith("LearnabilitySampler: expected floor > 0, got 0"));
  CHECK_THROWS_WITH(cur::LinUcb(Eigen::MatrixXd::Identity(2, 2), {.lambda = 0.0}),
                    Catch::StartsWith("LinUcb: expected a ridge lambda > 0, got 0"));
  Eigen::MatrixXd bad = Eigen::MatrixXd::Identity(2, 2);
  bad(1, 1) = NAN;
  CHECK_THROWS_WITH(cur::LinUcb(bad), Catch::StartsWith("LinUcb: expected finite arm features"));
}

TEST_CASE("Arms added while training are drawn and updated like the others", "[curriculum][state]") {
  cur::Ucb1 ucb(2);
  const std::vector<ArmId> arms{0, 1};
  const std::vector<double> gains{0.5, 0.5};
  ucb.update(arms, gains);
  CHECK(ucb.add_arm() == 2);
  Rng rng(0);
  CHECK(ucb.sample(1, rng) == std::vector<ArmId>{2});  // never drawn: first
  cur::BetaThompson ts(1);
  CHECK(ts.add_arm() == 1);
  const std::vector<ArmId> new_arm{1};
  const std::vector<double> one{1.0};
  ts.update(new_arm, one);
  CHECK(ts.posterior_means()[1] == Approx(2.0 / 3.0).epsilon(1e-15));
  cur::LearnabilitySampler ls(1);
  CHECK(ls.add_arm() == 1);
  CHECK(ls.success_rates()[1] == 0.5);
  cur::EpsilonGreedy eg(1);
  CHECK(eg.add_arm() == 1);
  CHECK(eg.probabilities().size() == 2);
  cur::DiscountedUcb d(1);
  cur::SlidingWindowUcb s(1);
  cur::GaussianThompson g(1);
  CHECK(d.add_arm() == 1);
  CHECK(s.add_arm() == 1);
  CHECK(g.add_arm() == 1);
}
