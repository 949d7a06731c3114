// Peer-compatible definitions and the objectives added for the peers' loss types: the k3 clamp (plain by
// default, verl's as an option), CISPO's absolute cap and published loss value, the ratio cap δ, the policy
// token mask with the off-policy sequence mask and the high-entropy mask, VESPO, TRL's advantage epsilon,
// and the options the fused objective refuses. Hand values throughout; TRL / Liger conformance in tests/parity.
#include <cmath>
#include <limits>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/kl.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/policy_gradient/token_masks.hpp>
#include <kaizen/policy_gradient/vespo.hpp>

namespace pg = kaizen::policy_gradient;
using Catch::Contains;

namespace {
const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
torch::Tensor t2(std::initializer_list<std::initializer_list<double>> rows) {
  std::vector<torch::Tensor> out;
  for (const auto& r : rows) out.push_back(torch::tensor(std::vector<double>(r), f64));
  return torch::stack(out);
}
}  // namespace

TEST_CASE("k3 is plain by default, and verl clamp is an option that zeroes the gradient past it", "[policy_gradient][kl][peers]") {
  // d = ref − lp = 3: k3 = e³ − 4 = 16.0855 > 10.
  const auto lp = t2({{-4.0, -1.0}}).requires_grad_(true);
  const auto ref = t2({{-1.0, -1.0}});
  const auto mask = torch::ones({1, 2}, torch::kBool);
  CHECK(std::isinf(pg::KlLoss<pg::KlEstimator::k3>{}.clamp));
  const auto plain = pg::kl_estimate(lp, ref, mask, pg::KlEstimator::k3);
  CHECK(plain[0][0].item<double>() == Approx(std::exp(3.0) - 4.0));
  plain.sum().backward();
  CHECK(lp.grad()[0][0].item<double>() == Approx(1 - std::exp(3.0)));  // dk3/dlp = 1 − e^d
  lp.mutable_grad().zero_();
  const auto clamped = pg::kl_estimate(lp, ref, mask, pg::KlEstimator::k3, {}, pg::kVerlKlClamp);
  CHECK(clamped[0][0].item<double>() == 10.0);
  clamped.sum().backward();
  CHECK(lp.grad()[0][0].item<double>() == 0.0);  // the clamp removes the KL gradient where π_θ ≪ π_ref
  CHECK_THROWS_WITH(pg::kl_estimate(lp, ref, mask, pg::KlEstimator::k3, {}, 0.0),
                    Contains("kl_estimate: expected a clamp > 0 (+inf: none), got 0"));
  // In the loss: the default objective uses the plain value.
  const auto adv = torch::zeros({1}, f64);
  const auto out = pg::policy_loss(lp, lp.detach(), ref, adv, mask,
                                   pg::Objective<pg::TokenRatio, pg::NoClip, pg::KlLoss<pg::KlEstimator::k3>,
                                                 pg::TokenMean>{.kl = {.coefficient = 1.0}});
  CHECK(out.loss.item<double>() == Approx((std::exp(3.0) - 4.0) / 2));
}

TEST_CASE("CISPO: the absolute cap and the published loss value, with equal gradients", "[policy_gradient][cispo][peers]") {
  // r = {e^2 = 7.39, e^0.5 = 1.65, e^-1}: capped at 5 → {5, 1.65, 0.37}; A = 2 on every token.
  const auto old = t2({{-3.0, -1.5, -1.0}});
  const auto mask = torch::ones({1, 3}, torch::kBool);
  const auto adv = torch::full({1}, 2.0, f64);
  const auto clip = pg::cispo_cap(5.0);
  CHECK(clip.epsilon_low == 1.0);
  CHECK(clip.epsilon_high == 4.0);
  CHECK(clip.value == pg::CispoLossValue::log_prob);
  const double w[] = {5.0, std::exp(0.5), std::exp(-1.0)};
  const double lpv[] = {-1.0, -1.0, -2.0};
  auto lp1 = t2({{-1.0, -1.0, -2.0}}).requires_grad_(true);
  const auto published = pg::policy_loss(lp1, old, {}, adv, mask, pg::CispoObjective{.clip = clip});
  CHECK(published.loss.item<double>() == Approx(-(w[0] * 2 * lpv[0] + w[1] * 2 * lpv[1] + w[2] * 2 * lpv[2]) / 3));
  published.loss.backward();
  auto lp2 = t2({{-1.0, -1.0, -2.0}}).requires_grad_(true);
  auto weight_form = clip;
  weight_form.value = pg::CispoLossValue::weight;
  const auto kaizen = pg::policy_loss(lp2, old, {}, adv, mask, pg::CispoObjective{.clip = weight_form});
  CHECK(kaizen.loss.item<double>() == Approx(-(w[0] + w[1] + w[2]) * 2 / 3));
  kaizen.loss.backward();
  CHECK(torch::allclose(lp1.grad(), lp2.grad()));
  CHECK(lp1.grad()[0][0].item<double>() == Approx(-5.0 * 2 / 3));
  CHECK(pg::CispoClip{}.epsilon_high == 4.0);  // default cap 5 (ScaleRL, TRL's documented value)
}

TEST_CASE("the ratio cap delta bounds the unclipped term of a negative advantage", "[policy_gradient][delta][peers]") {
  // r = e^0.5 = 1.6487, A = −1, ε = 0.2: PPO gives −min(−1.6487, −1.2) = 1.6487; with δ = 1.3, 1.3 and no gradient.
  const auto old = t2({{-1.5}});
  const auto mask = torch::ones({1, 1}, torch::kBool);
  const auto adv = torch::full({1}, -1.0, f64);
  auto lp = t2({{-1.0}}).requires_grad_(true);
  const auto ppo = pg::policy_loss(lp, old, {}, adv, mask, pg::Objective<>{});
  CHECK(ppo.loss.item<double>() == Approx(std::exp(0.5)));
  const auto capped = pg::policy_loss(lp, old, {}, adv, mask, pg::Objective<>{.ratio_cap = 1.3});
  CHECK(capped.loss.item<double>() == Approx(1.3));
  capped.loss.backward();
  CHECK(lp.grad()[0][0].item<double>() == 0.0);
  // A positive advantage is untouched when δ > 1 + ε.
  CHECK(pg::policy_loss(lp, old, {}, -adv, mask, pg::Objective<>{.ratio_cap = 1.3}).loss.item<double>() == Approx(-1.2));
  CHECK_THROWS_WITH(pg::policy_loss(lp, old, {}, adv, mask, pg::Objective<>{.ratio_cap = -1.0}),
                    Contains("policy_loss: expected ratio_cap > 0"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, old, {}, adv, mask, pg::CispoObjective{.ratio_cap = 2.0}),
                    Contains("ratio_cap applies to the token and sequence ratios"));
}

TEST_CASE("the fused objective's checks refuse what only policy_loss computes", "[policy_gradient][peers][errors]") {
  const auto lp = t2({{-1.0, -2.0}});
  const pg::PolicyLossInputs in{.logprobs = lp, .old_logprobs = lp, .advantages = torch::ones({1}, f64),
                                .mask = torch::ones({1, 2}, torch::kBool)};
  CHECK_THROWS_WITH(pg::detail::check_policy_inputs("policy_objective", in, pg::Objective<>{.ratio_cap = 2.0}),
                    Contains("policy_objective: a finite ratio_cap is computed by policy_loss only"));
  CHECK_THROWS_WITH(pg::detail::check_policy_inputs("policy_objective", in, pg::CispoObjective{.clip = pg::cispo_cap(5)}),
                    Contains("CispoLossValue::log_prob is computed by policy_loss only"));
  auto masked = in;
  masked.policy_token_mask = torch::ones({1}, f64);
  CHECK_THROWS_WITH(pg::detail::check_policy_inputs("policy_objective", masked, pg::Objective<>{}),
                    Contains("`policy_token_mask` is computed by policy_loss only"));
  CHECK_NOTHROW(pg::detail::check_policy_inputs("policy_objective", in, pg::Objective<>{}));
}

TEST_CASE("off-policy sequence mask and the policy token mask keep the normaliser", "[policy_gradient][masks][peers]") {
  // Rows: A = {1, −1, −1}; mean (sampler − lp) = {2, 0.25, 1}: with δ = 0.5 rows 0 (A ≥ 0) and 1 (D ≤ δ) stay.
  const auto lp = t2({{-1.0, -1.0}, {-1.0, -1.0}, {-1.0, -1.0}});
  const auto sampler = t2({{1.0, 1.0}, {-0.5, -1.0}, {0.0, 0.0}});
  const auto mask = torch::ones({3, 2}, torch::kBool);
  const auto adv = torch::tensor({1.0, -1.0, -1.0}, f64);
  const auto keep = pg::off_policy_sequence_mask(adv, lp, sampler, mask, 0.5);
  CHECK(keep[0].item<double>() == 1.0);
  CHECK(keep[1].item<double>() == 1.0);
  CHECK(keep[2].item<double>() == 0.0);
  CHECK_THROWS_WITH(pg::off_policy_sequence_mask(adv, lp, sampler, mask, -1.0),
                    Contains("off_policy_sequence_mask: expected delta >= 0, got -1"));
  // On policy (old = lp): every token's obj is A; row 2's is masked, N stays 6 tokens: (−1 −1 + 1 + 1 + 0)/6 …
  auto x = lp.clone().requires_grad_(true);
  const auto out = pg::policy_loss(pg::PolicyLossInputs{.logprobs = x, .old_logprobs = lp, .advantages = adv,
                                                        .mask = mask, .policy_token_mask = keep},
                                   pg::Objective<pg::TokenRatio, pg::NoClip>{});
  CHECK(out.loss.item<double>() == Approx((-1.0 - 1.0 + 1.0 + 1.0) / 6));
  out.loss.backward();
  CHECK(x.grad()[2][0].item<double>() == 0.0);
  CHECK(x.grad()[0][0].item<double>() == Approx(-1.0 / 6));
}

TEST_CASE("high-entropy mask keeps the tokens at or above the batch quantile", "[policy_gradient][masks][peers]") {
  const auto h = t2({{0.1, 0.5, 99.0}, {0.9, 2.0, -5.0}});
  const auto mask = t2({{1, 1, 0}, {1, 1, 0}}).to(torch::kBool);
  // Valid entropies {0.1, 0.5, 0.9, 2.0}; keep 0.5 → the 0.5-quantile 0.7 → {0.9, 2.0}.
  const auto m = pg::high_entropy_mask(h, mask, 0.5);
  CHECK(m.equal(t2({{0, 0, 0}, {1, 1, 0}}).to(torch::kBool)));
  CHECK(pg::high_entropy_mask(h, mask, 1.0).equal(mask));
  CHECK_THROWS_WITH(pg::high_entropy_mask(h, mask, 0.0), Contains("high_entropy_mask: expected keep_fraction in (0, 1]"));
}

TEST_CASE("VESPO's Gamma weight: 1 on policy, exp(λ + k log w − λ w) off it", "[policy_gradient][vespo][peers]") {
  // Row 0 on policy (w = 1, φ = 1); row 1 with Σ Δ = log 2 (w = 2) and A ≥ 0: φ = e^(3 + 2 log 2 − 6) = 4e^−3;
  // row 2 the same ratio and A < 0: φ = e^(2 + 3 log 2 − 4) = 8e^−2.
  auto lp = t2({{-1.0, -2.0}, {-1.0, -2.0}, {-1.0, -2.0}}).requires_grad_(true);
  const auto l2 = std::log(2.0);
  const auto old = t2({{-1.0, -2.0}, {-1.0 - l2, -2.0}, {-1.0, -2.0 - l2}});
  const auto mask = torch::ones({3, 2}, torch::kBool);
  const auto adv = torch::tensor({1.0, 0.5, -2.0}, f64);
  const auto phi = pg::vespo_weights(lp, old, adv, mask);
  CHECK(phi[0].item<double>() == Approx(1.0));
  CHECK(phi[1].item<double>() == Approx(4 * std::exp(-3.0)));
  CHECK(phi[2].item<double>() == Approx(8 * std::exp(-2.0)));
  const auto loss = pg::vespo_loss(lp, old, adv, mask);
  const double p0 = 1.0, p1 = 4 * std::exp(-3.0), p2 = 8 * std::exp(-2.0);
  CHECK(loss.item<double>() == Approx(-(p0 * 1.0 * -3.0 + p1 * 0.5 * -3.0 + p2 * -2.0 * -3.0) / 6));
  loss.backward();
  CHECK(lp.grad()[2][1].item<double>() == Approx(p2 * 2.0 / 6));
  CHECK_THROWS_WITH(pg::vespo_weights(lp, old, adv, mask, {.lambda_positive = 0.0}),
                    Contains("vespo_weights: expected finite k and lambda > 0"));
}

TEST_CASE("group advantages with TRL's epsilon 1e-4 and verl's 1e-6", "[policy_gradient][advantages][peers]") {
  const auto rewards = torch::tensor({1.0, 0.0, 0.0, 1.0}, f64);
  const auto groups = torch::tensor({0, 0, 0, 0});
  const double sd = std::sqrt(1.0 / 3.0);  // unbiased std of {1, 0, 0, 1}
  CHECK(pg::group_advantages(rewards, groups, {.epsilon = 1e-4})[0].item<double>() == Approx(0.5 / (sd + 1e-4)).epsilon(1e-12));
  CHECK(pg::group_advantages(rewards, groups)[0].item<double>() == Approx(0.5 / (sd + 1e-6)).epsilon(1e-12));
  CHECK(pg::group_advantages(rewards, groups, {.std = pg::StdEstimator::biased})[0].item<double>() ==
        Approx(0.5 / (0.5 + 1e-6)).epsilon(1e-12));
}
