// ops::policy_objective (the fused CPU path) against policy_gradient::policy_loss (LibTorch ops under
// autograd) for every Objective<Ratio, Clip, Kl, Aggregate> that compiles: loss, gradients with
// respect to the log-probs and the entropy, and every metric, in float64 (1e-10) and float32 (1e-5),
// on random inputs with padding (holding -inf / NaN), a row of length 1, per-token and per-sequence
// advantages, bool and float masks, KL clamps that bind, entropy bonus and truncated importance
// sampling. Then central finite differences of the fused loss itself, and bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <utility>

#include <torch/torch.h>

#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/torch/ops/policy_objective.hpp>
#include <support/objective_combinations.hpp>

namespace pg = kaizen::policy_gradient;
namespace ops = kaizen::ops;

namespace {

struct Random {
  torch::Tensor lp, old, ref, adv, mask, entropy, sampler;
};

/// [B, T] float64 inputs; the last row has one valid token; padding holds -inf log-probs and NaN
/// elsewhere, which must never reach the loss.
Random random_inputs(std::uint64_t seed, bool per_sequence_advantage, bool float_mask, std::int64_t B = 5,
                     std::int64_t T = 7) {
  torch::manual_seed(static_cast<std::int64_t>(seed));
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  Random r;
  r.old = -torch::rand({B, T}, opts) * 3 - 0.1;
  r.lp = r.old + torch::randn({B, T}, opts) * 0.3;
  r.ref = r.old + torch::randn({B, T}, opts) * 0.4;
  r.sampler = r.old + torch::randn({B, T}, opts) * 0.3;
  r.entropy = torch::rand({B, T}, opts) * 2;
  r.adv = per_sequence_advantage ? torch::randn({B}, opts) : torch::randn({B, T}, opts);
  auto valid = torch::rand({B, T}) > 0.3;
  valid.select(1, 0).fill_(true);
  valid[B - 1].fill_(false);
  valid[B - 1][0] = true;
  const auto pad = valid.logical_not();
  r.lp.masked_fill_(pad, -INFINITY);
  for (auto* t : {&r.old, &r.ref, &r.sampler, &r.entropy}) t->masked_fill_(pad, NAN);
  if (!per_sequence_advantage) r.adv.masked_fill_(pad, NAN);
  r.mask = float_mask ? valid.to(torch::kFloat64) * (torch::rand({B, T}, opts) + 0.5) : valid;
  return r;
}

using Loss = std::function<std::pair<torch::Tensor, pg::PolicyLossMetrics>(const pg::PolicyLossInputs&,
                                                                            std::optional<double>)>;

void check_metrics(const pg::PolicyLossMetrics& got, const pg::PolicyLossMetrics& want, double tol) {
  const auto same = [tol](double a, double b) { return a == Approx(b).epsilon(tol).margin(tol); };
  CHECK(same(got.loss, want.loss));
  CHECK(same(got.policy_loss, want.policy_loss));
  CHECK(same(got.kl, want.kl));
  CHECK(same(got.entropy, want.entropy));
  CHECK(same(got.clip_fraction_low, want.clip_fraction_low));
  CHECK(same(got.clip_fraction_high, want.clip_fraction_high));
  CHECK(same(got.clip_fraction_dual, want.clip_fraction_dual));
  CHECK(same(got.ratio_mean, want.ratio_mean));
  CHECK(same(got.ratio_max, want.ratio_max));
  CHECK(same(got.importance_weight_mean, want.importance_weight_mean));
  CHECK(same(got.tokens, want.tokens));
  CHECK(got.sequences == want.sequences);
}

double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

/// Runs both implementations on `r` in `dtype` with an upstream gradient of 1.5 and compares.
void compare(const Loss& fused, const Loss& reference, const Random& r, torch::Dtype dtype, double tol,
             std::optional<double> normaliser) {
  const auto cast = [dtype](const torch::Tensor& t) {
    return t.is_floating_point() ? t.to(dtype) : t;
  };
  const auto leaf = [&](const torch::Tensor& t) { return cast(t).clone().requires_grad_(true); };
  const auto lp_a = leaf(r.lp), lp_b = leaf(r.lp);
  const auto h_a = leaf(r.entropy), h_b = leaf(r.entropy);
  const auto inputs = [&](const torch::Tensor& lp, const torch::Tensor& h) {
    return pg::PolicyLossInputs{.logprobs = lp, .old_logprobs = cast(r.old), .ref_logprobs = cast(r.ref),
                                .advantages = cast(r.adv), .mask = cast(r.mask), .entropy = h,
                                .sampler_logprobs = cast(r.sampler)};
  };
  auto [got_loss, got_metrics] = fused(inputs(lp_a, h_a), normaliser);
  auto [want_loss, want_metrics] = reference(inputs(lp_b, h_b), normaliser);
  CHECK(got_loss.scalar_type() == dtype);
  CHECK(got_loss.dim() == 0);
  CHECK(got_loss.item<double>() == Approx(want_loss.item<double>()).epsilon(tol).margin(tol));
  check_metrics(got_metrics, want_metrics, tol);
  (got_loss * 1.5).backward();
  (want_loss * 1.5).backward();
  const auto want_grad = lp_b.grad().to(torch::kFloat64);
  REQUIRE(lp_a.grad().defined());
  CHECK(max_abs(lp_a.grad().to(torch::kFloat64) - want_grad) <= tol * max_abs(want_grad));
  CHECK(torch::isfinite(lp_a.grad()).all().item<bool>());
  if (h_b.grad().defined()) {
    REQUIRE(h_a.grad().defined());
    CHECK(max_abs(h_a.grad().to(torch::kFloat64) - h_b.grad().to(torch::kFloat64)) <=
          tol * max_abs(h_b.grad().to(torch::kFloat64)));
  }
}

/// One combination: options varied by `index` so that, over the list, every KL clamp, entropy,
/// importance mode, advantage layout, mask kind and normaliser choice is met.
template <class R, class C, class K, class A>
void check_combination(int& index) {
  const int i = index++;
  using Obj = pg::Objective<R, C, K, A>;
  Obj objective{};
  if constexpr (C::mode == pg::ClipMode::dual) objective.clip.c = 1.3;
  if constexpr (C::mode == pg::ClipMode::sapo) objective.clip.tau_positive = 0.9;
  if constexpr (K::estimator != pg::KlEstimator::none) {
    objective.kl.coefficient = 0.3;
    objective.kl.clamp = i % 2 == 0 ? 10.0 : 0.02;  // 0.02 binds on many k3 terms
  }
  if constexpr (A::mode == pg::AggregationMode::seq_mean_token_sum_norm) objective.aggregation.constant = 16;
  objective.entropy_coefficient = i % 2 == 0 ? 0.0 : 0.05;
  const pg::ImportanceAction actions[] = {pg::ImportanceAction::none, pg::ImportanceAction::truncate,
                                          pg::ImportanceAction::mask};
  objective.importance = {.action = actions[i % 3],
                          .level = (i / 3) % 2 == 0 ? pg::ImportanceLevel::token : pg::ImportanceLevel::sequence,
                          .cap = 1.3};
  const Random r = random_inputs(static_cast<std::uint64_t>(1000 + i), i % 4 == 1, i % 5 == 2);
  const std::optional<double> normaliser =
      i % 7 == 3 ? std::optional<double>(2.5 * pg::loss_normaliser(objective.aggregation, r.mask)) : std::nullopt;
  const Loss fused = [&](const pg::PolicyLossInputs& in, std::optional<double> n) {
    auto out = ops::policy_objective(in, objective, n);
    return std::pair{out.loss, out.metrics};
  };
  const Loss reference = [&](const pg::PolicyLossInputs& in, std::optional<double> n) {
    auto out = pg::policy_loss(in, objective, n);
    return std::pair{out.loss, out.metrics};
  };
  INFO("combination " << i << ": ratio " << static_cast<int>(R::level) << ", clip " << static_cast<int>(C::mode)
                      << ", kl " << static_cast<int>(K::estimator) << ", aggregation " << static_cast<int>(A::mode));
  compare(fused, reference, r, torch::kFloat64, 1e-10, normaliser);
  compare(fused, reference, r, torch::kFloat32, 1e-5, normaliser);
}

}  // namespace

TEST_CASE("fused policy objective equals policy_loss for every supported option combination",
          "[kernels][policy_objective]") {
  int combinations = 0;
  kaizen::test::for_each_objective(
      [&]<class R, class C, class K, class A>() { check_combination<R, C, K, A>(combinations); });
  // 3 ratio levels x 6 clips x 5 KL x 4 aggregations, less geometric with dual/CISPO/SAPO and
  // sequence with CISPO/SAPO.
  CHECK(combinations == 260);
}

TEST_CASE("fused policy objective gradient equals central finite differences of its own loss",
          "[kernels][policy_objective]") {
  // Objectives whose gradient is the derivative of their value (no stop-gradient factor).
  const auto check = [](const auto& objective, std::uint64_t seed) {
    const Random r = random_inputs(seed, false, seed % 2 == 0);
    auto lp = r.lp.clone().requires_grad_(true);
    const auto loss_at = [&](const torch::Tensor& x) {
      return ops::policy_objective(pg::PolicyLossInputs{.logprobs = x, .old_logprobs = r.old, .ref_logprobs = r.ref,
                                                        .advantages = r.adv, .mask = r.mask, .entropy = r.entropy},
                                   objective)
          .loss.template item<double>();
    };
    auto out = ops::policy_objective(pg::PolicyLossInputs{.logprobs = lp, .old_logprobs = r.old, .ref_logprobs = r.ref,
                                                          .advantages = r.adv, .mask = r.mask, .entropy = r.entropy},
                                     objective);
    out.loss.backward();
    const auto grad = lp.grad();
    const double h = 1e-6;
    int checked = 0;
    for (std::int64_t b = 0; b < r.lp.size(0); ++b) {
      for (std::int64_t t = 0; t < r.lp.size(1); ++t) {
        if (!std::isfinite(r.lp[b][t].item<double>())) continue;
        auto plus = r.lp.clone(), minus = r.lp.clone();
        plus[b][t] += h;
        minus[b][t] -= h;
        const double fd = (loss_at(plus) - loss_at(minus)) / (2 * h);
        INFO("seed " << seed << ", row " << b << ", column " << t);
        CHECK(grad[b][t].item<double>() == Approx(fd).epsilon(1e-6).margin(1e-9));
        ++checked;
      }
    }
    CHECK(checked > 0);
  };
  check(pg::DapoObjective{}, 71);
  check(pg::GrpoObjective{.kl = {.coefficient = 0.5}}, 72);
  check(pg::DualClipPpoObjective{.clip = {.c = 1.3}}, 73);
  check(pg::SapoObjective{}, 74);
  check(pg::Objective<pg::TokenRatio, pg::NoClip, pg::KlLoss<pg::KlEstimator::k3_importance>, pg::SeqMeanTokenSumNorm>{
            .kl = {.coefficient = 0.5}, .entropy_coefficient = 0.1},
        75);
  check(pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::KlLoss<pg::KlEstimator::k2>, pg::SeqMeanTokenSum>{
            .kl = {.coefficient = 0.5}},
        76);
}

TEST_CASE("fused policy objective matches the reference-doc oracles", "[kernels][policy_objective]") {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto one_token = [&](const auto& objective, double ratio, double advantage) {
    auto lp = torch::full({1, 1}, std::log(ratio), opts).requires_grad_(true);
    auto out = ops::policy_objective(lp, torch::zeros({1, 1}, opts), {}, torch::full({1}, advantage, opts),
                                     torch::ones({1, 1}, torch::kBool), objective);
    out.loss.backward();
    return std::pair{out.loss.template item<double>(), lp.grad().template item<double>()};
  };
  // PPO: A = +1, ρ = 1.5, ε = 0.2 ⇒ objective 1.2, no gradient; inside the range the gradient is −ρA.
  const auto [l1, g1] = one_token(pg::Objective<pg::TokenRatio, pg::SymmetricClip>{}, 1.5, 1.0);
  CHECK(l1 == Approx(-1.2));
  CHECK(g1 == 0.0);
  CHECK(one_token(pg::Objective<pg::TokenRatio, pg::SymmetricClip>{}, 1.1, 2.0).second == Approx(-2.2));
  // Dual clip: A = −1, ρ = 5, c = 3 ⇒ loss 3, no gradient; CISPO (cap 1.28 here) keeps the gradient ŵA = 1.28.
  const auto [l2, g2] = one_token(pg::DualClipPpoObjective{}, 5.0, -1.0);
  CHECK(l2 == Approx(3.0));
  CHECK(g2 == 0.0);
  CHECK(one_token(pg::CispoObjective{.clip = {.epsilon_high = 0.28}}, 1.5, 1.0).second == Approx(-1.28));
  // GSPO: log-ratios 0.2, 0, −0.2 give a sequence ratio of 1.
  const auto lp = torch::tensor({0.2, 0.0, -0.2}, opts).view({1, 3});
  const auto gspo = ops::policy_objective(lp, torch::zeros({1, 3}, opts), {}, torch::ones({1}, opts),
                                          torch::ones({1, 3}, torch::kBool), pg::kGspo);
  CHECK(gspo.metrics.ratio_mean == Approx(1.0));
  CHECK(gspo.loss.item<double>() == Approx(-1.0));
}

TEST_CASE("fused policy objective rejects bad input with policy_loss's messages", "[kernels][policy_objective]") {
  using Catch::StartsWith;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto lp = torch::zeros({2, 3}, opts);
  const auto mask = torch::ones({2, 3}, torch::kBool);
  const auto adv = torch::ones({2}, opts);
  const pg::DapoObjective dapo{};
  CHECK_THROWS_WITH(ops::policy_objective(lp, torch::zeros({2, 4}, opts), {}, adv, mask, dapo),
                    StartsWith("ops::policy_objective: expected `old_logprobs` of shape [2, 3] (as `logprobs`), got [2, 4]"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, torch::zeros({2, 3}), {}, adv, mask, dapo),
                    StartsWith("ops::policy_objective: expected `old_logprobs` of dtype Double (as `logprobs`), got Float"));
  CHECK_THROWS_WITH(ops::policy_objective(torch::zeros({2, 3}, torch::kInt64), lp, {}, adv, mask, dapo),
                    StartsWith("ops::policy_objective: expected `logprobs` to be float32 or float64, got Long"));
  CHECK_THROWS_WITH(ops::policy_objective(torch::zeros({6}, opts), lp, {}, adv, mask, dapo),
                    StartsWith("ops::policy_objective: expected [B, T] `logprobs`, got shape [6]"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, {}, torch::ones({3}, opts), mask, dapo),
                    StartsWith("ops::policy_objective: expected per-sequence `advantages` of shape [2], got [3]"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, {}, adv, torch::ones({2, 2}, torch::kBool), dapo),
                    StartsWith("ops::policy_objective: expected `mask` of shape [2, 3], got [2, 2]"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, {}, adv, torch::ones({2, 3}, torch::kInt32), dapo),
                    StartsWith("ops::policy_objective: expected `mask` to be bool or floating, got Int"));
  CHECK_THROWS_WITH(
      ops::policy_objective(lp, lp, {}, adv, torch::tensor({true, true, true, false, false, false}).view({2, 3}), dapo),
      StartsWith("ops::policy_objective: expected every row to have a valid token, got row 1 with none"));
  auto bad_adv = torch::ones({2, 3}, opts);
  bad_adv[1][2] = INFINITY;
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, {}, bad_adv, mask, dapo),
                    StartsWith("ops::policy_objective: expected finite `advantages`, got inf at row 1, column 2"));
  auto bad = torch::zeros({2, 3}, opts);
  bad[0][1] = NAN;
  CHECK_THROWS_WITH(ops::policy_objective(bad, lp, {}, adv, mask, dapo),
                    StartsWith("ops::policy_objective: expected finite `logprobs`, got nan at row 0, column 1"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, bad, {}, adv, mask, dapo),
                    StartsWith("ops::policy_objective: expected finite `old_logprobs`, got nan at row 0, column 1"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, bad, adv, mask, pg::GrpoObjective{}),
                    StartsWith("ops::policy_objective: expected finite `ref_logprobs`, got nan at row 0, column 1"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, {}, adv, mask, pg::DapoObjective{.entropy_coefficient = 0.1}, bad),
                    StartsWith("ops::policy_objective: expected finite `entropy`, got nan at row 0, column 1"));
  CHECK_THROWS_WITH(
      ops::policy_objective(pg::PolicyLossInputs{.logprobs = lp, .old_logprobs = lp, .advantages = adv, .mask = mask,
                                                 .sampler_logprobs = bad},
                            pg::DapoObjective{.importance = {.action = pg::ImportanceAction::truncate}}),
      StartsWith("ops::policy_objective: expected finite `sampler_logprobs`, got nan at row 0, column 1"));
  // A non-finite value on padding is not an error.
  auto padded_mask = mask.clone();
  padded_mask[0][1] = false;
  CHECK(std::isfinite(ops::policy_objective(bad, bad, bad, adv, padded_mask, pg::GrpoObjective{}).loss.item<double>()));
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, {}, adv, mask, pg::GrpoObjective{}),
                    StartsWith("ops::policy_objective: expected `ref_logprobs` for a KL term in the loss, got none"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, {}, adv, mask, pg::DapoObjective{.entropy_coefficient = 0.1}),
                    StartsWith("ops::policy_objective: expected a per-token `entropy` for entropy_coefficient = 0.1, got none"));
  CHECK_THROWS_WITH(
      ops::policy_objective(lp, lp, {}, adv, mask, pg::DapoObjective{.importance = {.action = pg::ImportanceAction::mask}}),
      StartsWith("ops::policy_objective: expected `sampler_logprobs` for truncated importance sampling, got none"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, {}, adv, mask, pg::DualClipPpoObjective{.clip = {.c = 0.5}}),
                    StartsWith("ops::policy_objective: expected the dual-clip constant c > 1, got 0.5"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, {}, adv, mask, pg::SapoObjective{.clip = {.tau_negative = 0}}),
                    StartsWith("ops::policy_objective: expected SAPO temperatures > 0, got tau_positive = 1, tau_negative = 0"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, lp, adv, mask, pg::GrpoObjective{.kl = {.coefficient = -1}}),
                    StartsWith("ops::policy_objective: expected a KL coefficient >= 0, got -1"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, {}, adv, mask, dapo, {}, 0.0),
                    StartsWith("ops::policy_objective: expected a positive finite normaliser, got 0"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, {}, adv, mask, pg::DrGrpoObjective{.aggregation = {.constant = -1}}),
                    StartsWith("ops::policy_objective: expected SeqMeanTokenSumNorm::constant > 0, got -1"));
  CHECK_THROWS_WITH(
      ops::policy_objective(pg::PolicyLossInputs{.logprobs = lp, .old_logprobs = lp, .advantages = adv, .mask = mask,
                                                 .sampler_logprobs = lp},
                            pg::DapoObjective{.importance = {.action = pg::ImportanceAction::mask, .cap = 0}}),
      StartsWith("ops::policy_objective: expected cap > 0, got 0"));
}
