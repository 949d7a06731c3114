// NFT, LPO / TA-LPO drift objectives and the DAPO data pieces: reference-doc oracles (§6, §7, §16.4),
// invariants, finite differences, and bad input.
#include <cmath>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/policy_gradient/dapo.hpp>
#include <kaizen/policy_gradient/drift.hpp>
#include <kaizen/policy_gradient/nft.hpp>

namespace pg = kaizen::policy_gradient;

namespace {
const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
torch::Tensor f64(std::vector<double> v) { return torch::tensor(v, kF64); }
}  // namespace

// ---- NFT ------------------------------------------------------------------------------------------

TEST_CASE("NFT on-policy gradient coefficients match the reference-doc oracle", "[policy_gradient][nft]") {
  // Row 0 correct, row 1 wrong; r̂ = 0.25; on-policy (R = 1); one token each.
  for (const auto weighting : {pg::NftWeighting::one_minus_rate, pg::NftWeighting::sqrt_odds}) {
    auto lp = torch::zeros({2, 1}, kF64).requires_grad_(true);
    const auto loss = pg::nft_loss(lp, torch::zeros({2, 1}, kF64), torch::ones({2, 1}, torch::kBool), f64({1, 0}),
                                   f64({0.25, 0.25}), {.weighting = weighting});
    CHECK(loss.item<double>() == 0.0);  // at R = 1 both losses are 0
    loss.backward();
    const double pos = lp.grad()[0][0].item<double>() * 1000, neg = lp.grad()[1][0].item<double>() * 1000;
    if (weighting == pg::NftWeighting::one_minus_rate) {
      CHECK(pos == Approx(-0.75));
      CHECK(neg == Approx(0.25));
      // Ratio to GRPO's coefficients −A = (−1.7321, +0.5774) is sqrt(r̂(1 − r̂)) = 0.4330 for both.
      CHECK(pos / -1.7321 == Approx(0.4330).margin(1e-4));
      CHECK(neg / 0.5774 == Approx(0.4330).margin(1e-4));
    } else {
      CHECK(pos == Approx(-1.7321).margin(1e-4));
      CHECK(neg == Approx(0.5774).margin(1e-4));
    }
  }
}

TEST_CASE("NFT negative loss uses a straight-through clamp", "[policy_gradient][nft]") {
  // proxy = (1 − r̂R)/(1 − r̂) = 0.6 with r̂ = 0.5 and R = 1.4: value clamped to ε⁻ = 1 (log 1 = 0), but
  // the gradient is −∇proxy/1 = r̂R/(1 − r̂) = 1.4 per unit of log R (times ω = 0.5, / 1000).
  auto lp = torch::full({1, 1}, std::log(1.4), kF64).requires_grad_(true);
  const auto loss = pg::nft_loss(lp, torch::zeros({1, 1}, kF64), torch::ones({1, 1}, torch::kBool), f64({0}), f64({0.5}));
  CHECK(loss.item<double>() == 0.0);
  loss.backward();
  CHECK(lp.grad().item<double>() * 1000 == Approx(0.5 * 1.4));
  CHECK(pg::straight_through_clamp_min(f64({0.6}), 1.0).item<double>() == 1.0);
}

TEST_CASE("NFT equals a float64 re-implementation, with finite-difference gradients", "[policy_gradient][nft]") {
  torch::manual_seed(71);
  const auto old = -torch::rand({3, 4}, kF64) * 2;
  auto lp = (old + torch::randn({3, 4}, kF64) * 0.2).requires_grad_(true);
  const auto mask = torch::tensor({1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1}, torch::kBool).view({3, 4});
  const auto correct = f64({1, 0, 0});
  const auto rate = f64({0.4, 0.4, 0.01});  // the last one is clamped to 0.02
  const pg::NftOptions options{.negative_weight = 0.7, .epsilon_negative = 0.5};
  const auto reference = [&](const torch::Tensor& x) {
    double total = 0;
    for (int b = 0; b < 3; ++b) {
      const double r = std::min(std::max(rate[b].item<double>(), 0.02), 0.98);
      const double w = 1 - r;
      for (int t = 0; t < 4; ++t) {
        if (!mask[b][t].item<bool>()) continue;
        const double R = std::exp(std::min(x[b][t].item<double>() - old[b][t].item<double>(), 10.0));
        const double l = correct[b].item<double>() > 0.5 ? -std::log(R)
                                                         : -0.7 * std::log(std::max((1 - r * R) / (1 - r), 0.5));
        total += w * l;
      }
    }
    return total / 1000;
  };
  const auto loss = pg::nft_loss(lp, old, mask, correct, rate, options);
  CHECK(loss.item<double>() == Approx(reference(lp.detach())).epsilon(1e-10));
  loss.backward();
  for (int b = 0; b < 3; ++b) {
    for (int t = 0; t < 4; ++t) {
      auto plus = lp.detach().clone(), minus = lp.detach().clone();
      plus[b][t] += 1e-6;
      minus[b][t] -= 1e-6;
      const double fd = (reference(plus) - reference(minus)) / 2e-6;
      // Where the negative proxy is clamped, the straight-through gradient differs from the value's
      // slope (which is 0) by design: compare only unclamped tokens there.
      const double r = std::min(std::max(rate[b].item<double>(), 0.02), 0.98);
      const double R = std::exp(lp[b][t].item<double>() - old[b][t].item<double>());
      if (correct[b].item<double>() < 0.5 && (1 - r * R) / (1 - r) < 0.5) continue;
      CHECK(lp.grad()[b][t].item<double>() == Approx(fd).epsilon(1e-6).margin(1e-12));
    }
  }
}

TEST_CASE("nft_correct_rate averages correctness within each group", "[policy_gradient][nft]") {
  const auto rate = pg::nft_correct_rate(f64({1, 0, 0, 0, 1, 1}), torch::tensor({0, 0, 0, 0, 1, 1}));
  CHECK(torch::allclose(rate, f64({0.25, 0.25, 0.25, 0.25, 1, 1})));
}

TEST_CASE("NFT rejects bad input", "[policy_gradient][nft]") {
  using Catch::StartsWith;
  const auto lp = torch::zeros({2, 2}, kF64);
  const auto mask = torch::ones({2, 2}, torch::kBool);
  CHECK_THROWS_WITH(pg::nft_loss(lp, lp, mask, f64({1, 0.5}), f64({0.5, 0.5})),
                    StartsWith("nft_loss: expected `correct` to hold 0 or 1, got min 0.5, max 1"));
  CHECK_THROWS_WITH(pg::nft_loss(lp, lp, mask, f64({1, 0}), f64({0.5, 1.5})),
                    StartsWith("nft_loss: expected `correct_rate` in [0, 1], got min 0.5, max 1.5"));
  CHECK_THROWS_WITH(pg::nft_loss(lp, lp, mask, f64({1, 0, 1}), f64({0.5, 0.5})),
                    StartsWith("nft_loss: expected `correct` of shape [2] (as `logprobs[:, 0]`), got [3]"));
  CHECK_THROWS_WITH(pg::nft_loss(lp, lp, mask, f64({1, 0}), f64({0.5, 0.5}), {.epsilon_negative = 0}),
                    StartsWith("nft_loss: expected epsilon_positive >= 0 and epsilon_negative > 0, got 0, 0"));
}

// ---- LPO / TA-LPO drift ---------------------------------------------------------------------------

namespace {
double drift_at(const auto& drift, double ratio, double advantage, double progress = 0.0) {
  return drift(f64({ratio}), f64({advantage}), progress).template item<double>();
}

// f(1, A) = 0 and the central-difference slope at ρ = 1 vanishes, for A ∈ {−2..2} and several p.
void check_mirror_constraints(const auto& drift) {
  for (double a : {-2.0, -1.0, 0.0, 1.0, 2.0}) {
    for (double p : {0.0, 0.5, 1.0}) {
      INFO("A = " << a << ", progress = " << p);
      CHECK(drift_at(drift, 1.0, a, p) == 0.0);
      // Step 1e-7: an MLP drift is exactly flat only while |out| < its 1e-4 offset around ρ = 1.
      CHECK(std::abs(drift_at(drift, 1.0 + 1e-7, a, p) - drift_at(drift, 1.0 - 1e-7, a, p)) / 2e-7 < 1e-6);
      CHECK(drift_at(drift, 1.7, a, p) >= 0.0);
      CHECK(drift_at(drift, 0.4, a, p) >= 0.0);
    }
  }
}
}  // namespace

TEST_CASE("drifts satisfy the mirror-learning constraints", "[policy_gradient][drift]") {
  check_mirror_constraints(pg::PpoClipDrift{});
  check_mirror_constraints(pg::ScheduledPpoDrift{});
  check_mirror_constraints(pg::DiscoveredDrift{});
  torch::manual_seed(81);
  check_mirror_constraints(pg::MlpDrift{.w1 = torch::randn({16, 8}, kF64), .w2 = torch::randn({1, 16}, kF64)});
  check_mirror_constraints(
      pg::MlpDrift{.w1 = torch::randn({16, 16}, kF64), .w2 = torch::randn({1, 16}, kF64), .temporal = true});
}

TEST_CASE("drifts match the reference-doc oracles", "[policy_gradient][drift]") {
  // PPO drift: f(1.5, +1), ε = 0.2 = 0.3, so ρA − f = 1.2 = min(1.5, 1.2).
  CHECK(drift_at(pg::PpoClipDrift{}, 1.5, 1.0) == Approx(0.3));
  const pg::DiscoveredDrift discovered{};
  CHECK(drift_at(discovered, 3.0, 1.0) == Approx(2 - 2 * std::tanh(1.0)));
  CHECK(drift_at(discovered, 3.0, 1.0) == Approx(0.4768).margin(1e-4));
  CHECK(drift_at(discovered, 1.5, 1.0) == Approx(0.0102).margin(1e-4));
  CHECK(drift_at(discovered, 0.5, 1.0) == 0.0);
  CHECK(drift_at(discovered, 0.5, -1.0) == Approx(0.2015).margin(1e-4));
  CHECK(drift_at(discovered, 2.0, -1.0) == 0.0);
  // Scheduled PPO drift tightens from ε = 0.3 to 0.1 over training.
  const pg::ScheduledPpoDrift scheduled{};
  CHECK(drift_at(scheduled, 1.5, 1.0, 0.0) == Approx(0.2));
  CHECK(drift_at(scheduled, 1.5, 1.0, 1.0) == Approx(0.4));
  CHECK(scheduled.epsilon(0.5) == Approx(0.2));
}

TEST_CASE("drift_loss: PPO drift reproduces PPO-clip, zero MLP drift gives −mean(ρA)", "[policy_gradient][drift]") {
  torch::manual_seed(82);
  const auto old = -torch::rand({4, 5}, kF64);
  const auto lp = old + torch::randn({4, 5}, kF64) * 0.4;
  const auto adv = torch::randn({4, 5}, kF64);
  const auto mask = torch::rand({4, 5}) > 0.2;
  mask.select(1, 0).fill_(true);
  const auto ratio = (lp - old).exp();
  const auto m = mask.to(torch::kFloat64);
  const auto ppo = -(torch::minimum(ratio * adv, ratio.clamp(0.8, 1.2) * adv) * m).sum() / m.sum();
  CHECK(pg::drift_loss(lp, old, adv, mask, pg::PpoClipDrift{}, 0.3).item<double>() == Approx(ppo.item<double>()));
  const pg::MlpDrift zero{.w1 = torch::zeros({8, 16}, kF64), .w2 = torch::zeros({1, 8}, kF64), .temporal = true};
  CHECK(pg::drift_loss(lp, old, adv, mask, zero, 0.7).item<double>() ==
        Approx((-(ratio * adv) * m).sum().item<double>() / m.sum().item<double>()));
}

TEST_CASE("drift_loss gradients match finite differences (Discovered and temporal MLP drifts)", "[policy_gradient][drift]") {
  torch::manual_seed(83);
  const auto old = -torch::rand({3, 4}, kF64);
  const auto base = old + torch::randn({3, 4}, kF64) * 0.3;
  const auto adv = torch::randn({3}, kF64);
  const auto mask = torch::ones({3, 4}, torch::kBool);
  const pg::MlpDrift mlp{.w1 = torch::randn({8, 16}, kF64) * 0.5, .w2 = torch::randn({1, 8}, kF64), .temporal = true};
  const auto check = [&](const auto& drift) {
    auto lp = base.clone().requires_grad_(true);
    pg::drift_loss(lp, old, adv, mask, drift, 0.4, pg::SeqMeanTokenMean{}).backward();
    for (int b = 0; b < 3; ++b) {
      for (int t = 0; t < 4; ++t) {
        auto plus = base.clone(), minus = base.clone();
        plus[b][t] += 1e-6;
        minus[b][t] -= 1e-6;
        const torch::Tensor up = pg::drift_loss(plus, old, adv, mask, drift, 0.4, pg::SeqMeanTokenMean{});
        const torch::Tensor down = pg::drift_loss(minus, old, adv, mask, drift, 0.4, pg::SeqMeanTokenMean{});
        const double fd = (up.item<double>() - down.item<double>()) / 2e-6;
        CHECK(lp.grad()[b][t].item<double>() == Approx(fd).epsilon(1e-6).margin(1e-9));
      }
    }
  };
  check(pg::DiscoveredDrift{});
  check(mlp);
}

TEST_CASE("drift objectives reject bad input", "[policy_gradient][drift]") {
  using Catch::StartsWith;
  const auto lp = torch::zeros({2, 2}, kF64);
  const auto mask = torch::ones({2, 2}, torch::kBool);
  CHECK_THROWS_WITH(pg::drift_loss(lp, lp, f64({1, 1}), mask, pg::DiscoveredDrift{}, 1.5),
                    StartsWith("drift_loss: expected progress in [0, 1], got 1.5"));
  const pg::MlpDrift wrong{.w1 = torch::zeros({4, 8}, kF64), .w2 = torch::zeros({1, 4}, kF64), .temporal = true};
  CHECK_THROWS_WITH(pg::drift_loss(lp, lp, f64({1, 1}), mask, wrong, 0.5),
                    StartsWith("MlpDrift: expected w1 of shape [H, 16], got [4, 8]"));
  CHECK_THROWS_WITH(pg::drift_loss(lp, lp, f64({1, 1, 1}), mask, pg::DiscoveredDrift{}, 0.5),
                    StartsWith("drift_loss: expected `advantages` of shape [2, 2] (as `logprobs`), got [3]"));
}

// ---- DAPO pieces ----------------------------------------------------------------------------------

TEST_CASE("DAPO soft overlong punishment matches the reference-doc oracles", "[policy_gradient][dapo]") {
  CHECK(pg::overlong_penalty(18432, 20480, 4096) == Approx(-0.5));
  CHECK(pg::overlong_penalty(16384, 20480, 4096) == 0.0);
  CHECK(pg::overlong_penalty(20481, 20480, 4096) == -1.0);
  CHECK(pg::overlong_penalty(20480, 20480, 4096) == Approx(-1.0));
  const auto t = pg::overlong_penalty(torch::tensor({18432, 16384, 20481, 100}), 20480, 4096);
  CHECK(torch::allclose(t, torch::tensor({-0.5f, 0.0f, -1.0f, 0.0f})));
  CHECK_THROWS_WITH(pg::overlong_penalty(10, 100, 200),
                    Catch::StartsWith("overlong_penalty: expected 0 < cache_length <= max_length, got cache_length = 200, max_length = 100"));
  CHECK_THROWS_WITH(pg::overlong_penalty(f64({1.0}), 100, 20),
                    Catch::StartsWith("overlong_penalty: expected 1-D integer `lengths`, got"));
}

TEST_CASE("dynamic sampling drops zero-variance groups and reports how many to refill", "[policy_gradient][dapo]") {
  const auto rewards = f64({1, 1, 1, 0, 1, 0, 0, 0, 0.5, 0.5});
  const auto groups = torch::tensor({0, 0, 1, 1, 2, 2, 3, 3, 4, 4});
  const auto out = pg::dynamic_sampling_filter(rewards, groups);
  CHECK(out.kept_groups == 2);
  CHECK(out.dropped_groups == 3);
  CHECK(out.groups_to_refill == 3);
  CHECK(torch::equal(out.keep, torch::tensor({2, 3, 4, 5})));
  CHECK(pg::dynamic_sampling_filter(rewards, groups, 2).groups_to_refill == 0);
  CHECK(pg::dynamic_sampling_filter(rewards, groups, 4).groups_to_refill == 2);
  CHECK_THROWS_WITH(pg::dynamic_sampling_filter(rewards, groups, -2),
                    Catch::StartsWith("dynamic_sampling_filter: expected target_groups >= 0"));
}

TEST_CASE("untruncated_rows keeps completions that finished", "[policy_gradient][dapo]") {
  CHECK(torch::equal(pg::untruncated_rows(torch::tensor({false, true, false})), torch::tensor({0, 2})));
  CHECK_THROWS_WITH(pg::untruncated_rows(torch::tensor({0, 1})),
                    Catch::StartsWith("untruncated_rows: expected a 1-D bool `truncated` [B], got"));
}
