// policy_loss: reference-doc oracles, a float64 loop re-implementation on random inputs (values and
// gradients, the latter by central finite differences of the re-implementation), micro-batch
// invariance for every aggregation, metrics, and bad input.
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/policy_gradient/policy_loss.hpp>

namespace pg = kaizen::policy_gradient;

namespace {

using Grid = std::vector<std::vector<double>>;

Grid grid(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  Grid out(static_cast<std::size_t>(c.size(0)), std::vector<double>(static_cast<std::size_t>(c.size(1))));
  for (std::int64_t b = 0; b < c.size(0); ++b)
    for (std::int64_t t = 0; t < c.size(1); ++t)
      out[static_cast<std::size_t>(b)][static_cast<std::size_t>(t)] = c[b][t].item<double>();
  return out;
}

// Everything the float64 re-implementation needs, read off an Objective (the math below is written
// from the formulas in options.hpp, independently of the tensor code).
struct Config {
  pg::RatioLevel ratio = pg::RatioLevel::token;
  pg::ClipMode clip = pg::ClipMode::none;
  double lo = 0, hi = 0, c = 0, tau_pos = 1, tau_neg = 1;
  pg::KlEstimator kl = pg::KlEstimator::none;
  double beta = 0, kl_clamp = 10;
  pg::AggregationMode aggregation = pg::AggregationMode::token_mean;
  double constant = 1;
  double entropy_coefficient = 0;
  pg::TruncatedImportanceSampling importance{};
};

template <class R, class C, class K, class A>
Config config_of(const pg::Objective<R, C, K, A>& o) {
  Config cfg;
  cfg.ratio = R::level;
  cfg.clip = C::mode;
  if constexpr (C::mode == pg::ClipMode::symmetric) cfg.lo = cfg.hi = o.clip.epsilon;
  if constexpr (C::mode == pg::ClipMode::asymmetric || C::mode == pg::ClipMode::dual || C::mode == pg::ClipMode::cispo) {
    cfg.lo = o.clip.epsilon_low;
    cfg.hi = o.clip.epsilon_high;
  }
  if constexpr (C::mode == pg::ClipMode::dual) cfg.c = o.clip.c;
  if constexpr (C::mode == pg::ClipMode::sapo) {
    cfg.tau_pos = o.clip.tau_positive;
    cfg.tau_neg = o.clip.tau_negative;
  }
  cfg.kl = K::estimator;
  cfg.beta = o.kl.coefficient;
  cfg.kl_clamp = o.kl.clamp;
  cfg.aggregation = A::mode;
  if constexpr (A::mode == pg::AggregationMode::seq_mean_token_sum_norm) cfg.constant = o.aggregation.constant;
  cfg.entropy_coefficient = o.entropy_coefficient;
  cfg.importance = o.importance;
  return cfg;
}

struct Inputs {
  Grid lp, old, ref, adv, mask, entropy, sampler;
};

// The loss, in doubles. `lp0` is where stop-gradient factors are evaluated (= lp for the value).
double reference_loss(const Config& cfg, const Inputs& in, const Grid& lp, const Grid& lp0) {
  const std::size_t B = lp.size(), T = lp[0].size();
  const auto clamp = [](double x, double a, double b) { return std::min(std::max(x, a), b); };
  double total = 0, tokens = 0;
  for (std::size_t b = 0; b < B; ++b) {
    double n = 0, seq_delta = 0, seq_delta0 = 0, geo = 0, seq_u = 0;
    for (std::size_t t = 0; t < T; ++t) {
      if (in.mask[b][t] == 0) continue;
      const double m = in.mask[b][t];
      n += m;
      const double d = clamp(lp[b][t] - in.old[b][t], -20, 20);
      seq_delta += m * d;
      seq_delta0 += m * clamp(lp0[b][t] - in.old[b][t], -20, 20);
      const double bounded = clamp(d, -cfg.lo, cfg.hi);
      const bool clips = cfg.clip == pg::ClipMode::symmetric || cfg.clip == pg::ClipMode::asymmetric;
      geo += m * (!clips ? d : in.adv[b][t] >= 0 ? std::min(d, bounded) : std::max(d, bounded));
      seq_u += in.old[b][t] - (in.sampler.empty() ? 0.0 : in.sampler[b][t]);
    }
    tokens += n;
    double row = 0;
    for (std::size_t t = 0; t < T; ++t) {
      const double m = in.mask[b][t];
      if (m == 0) continue;
      const double a = in.adv[b][t];
      const double d = clamp(lp[b][t] - in.old[b][t], -20, 20);
      double r = std::exp(d);
      if (cfg.ratio == pg::RatioLevel::sequence) r = std::exp(seq_delta / n);
      if (cfg.ratio == pg::RatioLevel::geometric) r = std::exp(geo / n);
      double obj = r * a;
      if (cfg.ratio != pg::RatioLevel::geometric) {
        switch (cfg.clip) {
          case pg::ClipMode::none: break;
          case pg::ClipMode::symmetric:
          case pg::ClipMode::asymmetric: obj = std::min(r * a, clamp(r, 1 - cfg.lo, 1 + cfg.hi) * a); break;
          case pg::ClipMode::dual:
            obj = std::min(r * a, clamp(r, 1 - cfg.lo, 1 + cfg.hi) * a);
            if (a < 0) obj = std::max(obj, cfg.c * a);
            break;
          case pg::ClipMode::cispo: {
            const double r0 = std::exp(clamp(lp0[b][t] - in.old[b][t], -20, 20));
            obj = clamp(r0, 1 - cfg.lo, 1 + cfg.hi) * a * std::exp(lp[b][t] - lp0[b][t]);
            break;
          }
          case pg::ClipMode::sapo: {
            const double tau = a > 0 ? cfg.tau_pos : cfg.tau_neg;
            obj = 4 / tau / (1 + std::exp(-tau * (r - 1))) * a;
            break;
          }
        }
      }
      double w = 1;
      if (cfg.importance.action != pg::ImportanceAction::none) {
        const double u = cfg.importance.level == pg::ImportanceLevel::token ? in.old[b][t] - in.sampler[b][t] : seq_u;
        const double cap = std::log(cfg.importance.cap);
        w = cfg.importance.action == pg::ImportanceAction::truncate ? std::exp(std::min(u, cap))
                                                                     : (u <= cap ? std::exp(u) : 0.0);
      }
      double kl = 0;
      const double dr = in.ref.empty() ? 0.0 : in.ref[b][t] - lp[b][t];
      switch (cfg.kl) {
        case pg::KlEstimator::none: break;
        case pg::KlEstimator::k1: kl = -dr; break;
        case pg::KlEstimator::k2: kl = 0.5 * dr * dr; break;
        case pg::KlEstimator::k3: kl = clamp(std::exp(dr) - dr - 1, -cfg.kl_clamp, cfg.kl_clamp); break;
        case pg::KlEstimator::k3_importance:
          kl = std::exp(d) * clamp(std::exp(dr) - dr - 1, -cfg.kl_clamp, cfg.kl_clamp);
          break;
      }
      const double h = in.entropy.empty() ? 0.0 : in.entropy[b][t];
      const double l = -w * obj + cfg.beta * kl - cfg.entropy_coefficient * h;
      row += m * l;
    }
    total += cfg.aggregation == pg::AggregationMode::seq_mean_token_mean ? row / n : row;
  }
  const double rows = static_cast<double>(B);
  switch (cfg.aggregation) {
    case pg::AggregationMode::token_mean: return total / tokens;
    case pg::AggregationMode::seq_mean_token_mean:
    case pg::AggregationMode::seq_mean_token_sum: return total / rows;
    case pg::AggregationMode::seq_mean_token_sum_norm: return total / (rows * cfg.constant);
  }
  return 0;
}

struct Random {
  torch::Tensor lp, old, ref, adv, mask, entropy, sampler;
};

Random random_inputs(std::uint64_t seed, bool per_sequence_advantage, std::int64_t B = 4, std::int64_t T = 6) {
  torch::manual_seed(seed);
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  Random r;
  r.old = -torch::rand({B, T}, opts) * 3 - 0.1;
  r.lp = (r.old + torch::randn({B, T}, opts) * 0.3).requires_grad_(true);
  r.ref = r.old + torch::randn({B, T}, opts) * 0.3;
  r.sampler = r.old + torch::randn({B, T}, opts) * 0.5;
  r.entropy = torch::rand({B, T}, opts) * 2;
  r.adv = per_sequence_advantage ? torch::randn({B, 1}, opts).expand({B, T}).contiguous() : torch::randn({B, T}, opts);
  r.mask = torch::rand({B, T}) > 0.3;
  r.mask.select(1, 0).fill_(true);  // every row has a valid token
  return r;
}

// Checks value (rel 1e-10) and gradient (central differences of the float64 re-implementation,
// rel 1e-6) of policy_loss against reference_loss on random float64 inputs; then float32 against
// float64 (rel 1e-4).
template <class Obj>
void check_against_reference(const Obj& objective, std::uint64_t seed, bool per_sequence_advantage) {
  const auto r = random_inputs(seed, per_sequence_advantage);
  const Config cfg = config_of(objective);
  const pg::PolicyLossInputs in{.logprobs = r.lp, .old_logprobs = r.old, .ref_logprobs = r.ref, .advantages = r.adv,
                                .mask = r.mask, .entropy = r.entropy, .sampler_logprobs = r.sampler};
  pg::PolicyLossResult result = pg::policy_loss(in, objective);
  result.loss.backward();
  const auto grad = grid(r.lp.grad());
  const Inputs ref_in{grid(r.lp), grid(r.old), grid(r.ref), grid(r.adv), grid(r.mask.to(torch::kFloat64)),
                      grid(r.entropy), grid(r.sampler)};
  const double want = reference_loss(cfg, ref_in, ref_in.lp, ref_in.lp);
  CHECK(result.loss.item<double>() == Approx(want).epsilon(1e-10).margin(1e-12));
  CHECK(result.metrics.loss == Approx(want).epsilon(1e-10).margin(1e-12));
  const double h = 1e-6;
  for (std::size_t b = 0; b < ref_in.lp.size(); ++b) {
    for (std::size_t t = 0; t < ref_in.lp[b].size(); ++t) {
      Grid plus = ref_in.lp, minus = ref_in.lp;
      plus[b][t] += h;
      minus[b][t] -= h;
      const double fd = (reference_loss(cfg, ref_in, plus, ref_in.lp) - reference_loss(cfg, ref_in, minus, ref_in.lp)) / (2 * h);
      INFO("row " << b << ", column " << t);
      CHECK(grad[b][t] == Approx(fd).epsilon(1e-6).margin(1e-9));
    }
  }
  // float32 agrees with the float64 reference.
  const auto lp32 = r.lp.detach().to(torch::kFloat32);
  const auto f = [](const torch::Tensor& t) { return t.to(torch::kFloat32); };
  const pg::PolicyLossResult r32 = pg::policy_loss(pg::PolicyLossInputs{.logprobs = lp32, .old_logprobs = f(r.old), .ref_logprobs = f(r.ref),
                                                        .advantages = f(r.adv), .mask = r.mask, .entropy = f(r.entropy),
                                                        .sampler_logprobs = f(r.sampler)},
                                   objective);
  CHECK(r32.loss.item<double>() == Approx(want).epsilon(1e-4).margin(1e-6));
}

}  // namespace

TEST_CASE("policy_loss equals a float64 re-implementation: token ratio, every clip mode",
          "[policy_gradient][policy_loss]") {
  check_against_reference(pg::Objective<pg::TokenRatio, pg::NoClip>{}, 11, false);
  check_against_reference(pg::Objective<pg::TokenRatio, pg::SymmetricClip>{.clip = {.epsilon = 0.1}}, 12, false);
  check_against_reference(pg::DapoObjective{}, 13, false);
  check_against_reference(pg::DualClipPpoObjective{.clip = {.epsilon_low = 0.1, .epsilon_high = 0.1, .c = 1.2}}, 14, false);
  check_against_reference(pg::CispoObjective{.clip = {.epsilon_low = 0.1, .epsilon_high = 0.1}}, 15, false);
  check_against_reference(pg::SapoObjective{}, 16, false);
}

TEST_CASE("policy_loss equals a float64 re-implementation: sequence (GSPO) and geometric (GMPO) ratios",
          "[policy_gradient][policy_loss]") {
  check_against_reference(pg::GspoObjective{.clip = {.epsilon_low = 0.05, .epsilon_high = 0.08}}, 21, true);
  check_against_reference(pg::Objective<pg::SequenceRatio, pg::NoClip, pg::NoKl, pg::TokenMean>{}, 22, true);
  check_against_reference(pg::GmpoObjective{.clip = {.epsilon = 0.2}}, 23, true);
  check_against_reference(pg::Objective<pg::GeometricRatio, pg::AsymmetricClip, pg::NoKl, pg::TokenMean>{}, 24, true);
  check_against_reference(pg::Objective<pg::GeometricRatio, pg::NoClip>{}, 25, true);
}

TEST_CASE("policy_loss equals a float64 re-implementation: KL estimators, entropy bonus, aggregations",
          "[policy_gradient][policy_loss]") {
  check_against_reference(pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::KlLoss<pg::KlEstimator::k1>>{.kl = {.coefficient = 0.3}}, 31, false);
  check_against_reference(pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::KlLoss<pg::KlEstimator::k2>>{.kl = {.coefficient = 0.3}}, 32, false);
  check_against_reference(pg::GrpoObjective{.kl = {.coefficient = 0.5}}, 33, false);
  check_against_reference(pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::KlLoss<pg::KlEstimator::k3_importance>>{.kl = {.coefficient = 0.5}}, 34, false);
  check_against_reference(pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::NoKl, pg::SeqMeanTokenSum>{.entropy_coefficient = 0.01}, 35, false);
  check_against_reference(pg::DrGrpoObjective{.aggregation = {.constant = 16}}, 36, false);
}

TEST_CASE("policy_loss equals a float64 re-implementation: truncated importance sampling",
          "[policy_gradient][policy_loss]") {
  using Imp = pg::TruncatedImportanceSampling;
  check_against_reference(pg::DapoObjective{.importance = Imp{.action = pg::ImportanceAction::truncate, .cap = 1.3}}, 41, false);
  check_against_reference(pg::DapoObjective{.importance = Imp{.action = pg::ImportanceAction::mask, .cap = 1.3}}, 42, false);
  check_against_reference(pg::DapoObjective{.importance = Imp{.action = pg::ImportanceAction::truncate,
                                                              .level = pg::ImportanceLevel::sequence, .cap = 1.5}}, 43, false);
  check_against_reference(pg::DapoObjective{.importance = Imp{.action = pg::ImportanceAction::mask,
                                                              .level = pg::ImportanceLevel::sequence, .cap = 1.5}}, 44, false);
}

namespace {
// One token: logprob log(ρ), old 0. Returns {loss, d loss / d logprob}.
template <class Obj>
std::pair<double, double> one_token(const Obj& objective, double ratio, double advantage, double ref = 0.0) {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  auto lp = torch::full({1, 1}, std::log(ratio), opts).requires_grad_(true);
  pg::PolicyLossResult out = pg::policy_loss(lp, torch::zeros({1, 1}, opts), torch::full({1, 1}, ref, opts),
                             torch::full({1}, advantage, opts), torch::ones({1, 1}, torch::kBool), objective);
  out.loss.backward();
  return {out.loss.item<double>(), lp.grad().item<double>()};
}
}  // namespace

TEST_CASE("policy_loss matches the reference-doc oracles", "[policy_gradient][policy_loss]") {
  const pg::Objective<pg::TokenRatio, pg::SymmetricClip> ppo{};
  // PPO clip: A = +1, ρ = 1.5, ε = 0.2 ⇒ objective 1.2 and zero gradient; A = −1, ρ = 0.5 ⇒ −0.8.
  auto [l1, g1] = one_token(ppo, 1.5, 1.0);
  CHECK(l1 == Approx(-1.2));
  CHECK(g1 == 0.0);
  auto [l2, g2] = one_token(ppo, 0.5, -1.0);
  CHECK(l2 == Approx(0.8));
  CHECK(g2 == 0.0);
  // Inside the clip range the gradient is −ρA.
  CHECK(one_token(ppo, 1.1, 2.0).second == Approx(-1.1 * 2.0));
  // Clip-higher: ρ = 1.25 is clipped by ε = 0.2 but not by ε_high = 0.28.
  CHECK(one_token(pg::DapoObjective{}, 1.25, 1.0).second == Approx(-1.25));
  // Dual clip: A = −1, ρ = 5, c = 3 ⇒ objective −3 and zero gradient.
  auto [l3, g3] = one_token(pg::DualClipPpoObjective{}, 5.0, -1.0);
  CHECK(l3 == Approx(3.0));
  CHECK(g3 == 0.0);
  // CISPO keeps the gradient of a clipped token: value and slope ŵA with ŵ = 1.28 (cap 1.28 set explicitly;
  // the default cap 5 does not bind at ρ = 1.5).
  auto [l4, g4] = one_token(pg::CispoObjective{.clip = {.epsilon_high = 0.28}}, 1.5, 1.0);
  CHECK(l4 == Approx(-1.28));
  CHECK(g4 == Approx(-1.28));
  CHECK(one_token(pg::CispoObjective{}, 1.5, 1.0).second == Approx(-1.5));
  // SAPO at ρ = 1: value (2/τ)A, slope A.
  auto [l5, g5] = one_token(pg::SapoObjective{}, 1.0, -1.0);
  CHECK(l5 == Approx(2.0 / 1.05));
  CHECK(g5 == Approx(1.0));
  // k3 with π_θ = 2 π_ref: 0.5 + log 2 − 1 = 0.1931 (A = 0 isolates the KL term, β = 1).
  const pg::Objective<pg::TokenRatio, pg::NoClip, pg::KlLoss<pg::KlEstimator::k3>> k3{.kl = {.coefficient = 1.0}};
  CHECK(one_token(k3, 1.0, 0.0, -std::log(2.0)).first == Approx(0.1931).margin(1e-4));
  CHECK(one_token(k3, 1.0, 0.0, 0.0).first == 0.0);
}

TEST_CASE("GSPO sequence ratio of log-ratios 0.2, 0, -0.2 is 1", "[policy_gradient][policy_loss]") {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto old = torch::zeros({1, 3}, opts);
  const auto lp = torch::tensor({0.2, 0.0, -0.2}, opts).view({1, 3});
  const auto out = pg::policy_loss(lp, old, {}, torch::ones({1}, opts), torch::ones({1, 3}, torch::kBool), pg::kGspo);
  CHECK(out.metrics.ratio_mean == Approx(1.0));
  CHECK(out.metrics.ratio_max == Approx(1.0));
  CHECK(out.loss.item<double>() == Approx(-1.0));
}

TEST_CASE("policy_loss metrics: clip fractions, KL, entropy, ratio, tokens", "[policy_gradient][policy_loss]") {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  // ratios [1.5, 0.5, 1.0, 2.0(padding)], advantages [+1, −1, +1, +1]
  const auto lp = torch::tensor({std::log(1.5), std::log(0.5), 0.0, std::log(2.0)}, opts).view({2, 2});
  const auto adv = torch::tensor({1.0, -1.0, 1.0, 1.0}, opts).view({2, 2});
  const auto mask = torch::tensor({true, true, true, false}).view({2, 2});
  const auto entropy = torch::tensor({1.0, 2.0, 3.0, 100.0}, opts).view({2, 2});
  const pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::KlLoss<pg::KlEstimator::k1>> obj{.kl = {.coefficient = 0.1}};
  const auto out = pg::policy_loss(pg::PolicyLossInputs{.logprobs = lp, .old_logprobs = torch::zeros_like(lp),
                                                        .ref_logprobs = torch::zeros_like(lp), .advantages = adv,
                                                        .mask = mask, .entropy = entropy},
                                   obj);
  CHECK(out.metrics.tokens == 3.0);
  CHECK(out.metrics.sequences == 2.0);
  CHECK(out.metrics.clip_fraction_high == Approx(1.0 / 3));
  CHECK(out.metrics.clip_fraction_low == Approx(1.0 / 3));
  CHECK(out.metrics.clip_fraction_dual == 0.0);
  CHECK(out.metrics.ratio_mean == Approx(1.0));
  CHECK(out.metrics.ratio_max == Approx(1.5));
  CHECK(out.metrics.entropy == Approx(2.0));
  CHECK(out.metrics.kl == Approx((std::log(1.5) + std::log(0.5)) / 3));
  CHECK(out.metrics.importance_weight_mean == 1.0);
  // policy part: −(1.2 − 0.8 + 1.0)/3; KL part: 0.1 · kl.
  CHECK(out.metrics.policy_loss == Approx(-1.4 / 3));
  CHECK(out.metrics.loss == Approx(-1.4 / 3 + 0.1 * out.metrics.kl));
}

TEST_CASE("entropy bonus and truncated importance weights act as documented", "[policy_gradient][policy_loss]") {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto zeros = torch::zeros({1, 2}, opts);
  auto entropy = torch::tensor({1.0, 3.0}, opts).view({1, 2}).requires_grad_(true);
  const auto mask = torch::ones({1, 2}, torch::kBool);
  auto out = pg::policy_loss(pg::PolicyLossInputs{.logprobs = zeros, .old_logprobs = zeros, .advantages = zeros,
                                                  .mask = mask, .entropy = entropy},
                             pg::DapoObjective{.entropy_coefficient = 0.5});
  CHECK(out.loss.item<double>() == Approx(-0.5 * 2.0));
  out.loss.backward();
  CHECK(entropy.grad()[0][0].item<double>() == Approx(-0.25));
  // TIS: u = log 3 is truncated to the cap 2; MIS masks it to 0.
  const auto sampler = torch::tensor({-std::log(3.0), 0.0}, opts).view({1, 2});
  const auto adv = torch::ones({1}, opts);
  using Imp = pg::TruncatedImportanceSampling;
  const auto tis = pg::policy_loss(pg::PolicyLossInputs{.logprobs = zeros, .old_logprobs = zeros, .advantages = adv,
                                                        .mask = mask, .sampler_logprobs = sampler},
                                   pg::DapoObjective{.importance = Imp{.action = pg::ImportanceAction::truncate}});
  CHECK(tis.loss.item<double>() == Approx(-(2.0 + 1.0) / 2));
  CHECK(tis.metrics.importance_weight_mean == Approx(1.5));
  const auto mis = pg::policy_loss(pg::PolicyLossInputs{.logprobs = zeros, .old_logprobs = zeros, .advantages = adv,
                                                        .mask = mask, .sampler_logprobs = sampler},
                                   pg::DapoObjective{.importance = Imp{.action = pg::ImportanceAction::mask}});
  CHECK(mis.loss.item<double>() == Approx(-(0.0 + 1.0) / 2));
}

namespace {
template <class Obj>
void check_micro_batch_invariance(const Obj& objective, std::uint64_t seed) {
  const auto r = random_inputs(seed, true, 8, 7);
  pg::PolicyLossResult full = pg::policy_loss(r.lp, r.old, r.ref, r.adv, r.mask, objective);
  full.loss.backward();
  const auto full_grad = r.lp.grad().clone();
  r.lp.grad().zero_();
  double normaliser = 0;
  for (std::int64_t k = 0; k < 4; ++k) normaliser += pg::loss_normaliser(objective.aggregation, r.mask.narrow(0, 2 * k, 2));
  double summed = 0;
  for (std::int64_t k = 0; k < 4; ++k) {
    const auto rows = [&](const torch::Tensor& t) { return t.narrow(0, 2 * k, 2); };
    pg::PolicyLossResult part = pg::policy_loss(rows(r.lp), rows(r.old), rows(r.ref), rows(r.adv), rows(r.mask), objective, normaliser);
    part.loss.backward();
    summed += part.loss.item<double>();
  }
  CHECK(summed == Approx(full.loss.item<double>()).epsilon(1e-12));
  CHECK((r.lp.grad() - full_grad).abs().max().item<double>() <= 1e-6 * full_grad.abs().max().item<double>());
  CHECK((r.lp.grad() - full_grad).abs().max().item<double>() < 1e-12);
}
}  // namespace

TEST_CASE("one batch equals four micro-batches with the global normaliser, for every aggregation",
          "[policy_gradient][policy_loss][aggregation]") {
  check_micro_batch_invariance(pg::Objective<pg::TokenRatio, pg::AsymmetricClip, pg::KlLoss<pg::KlEstimator::k3>, pg::TokenMean>{}, 51);
  check_micro_batch_invariance(pg::Objective<pg::TokenRatio, pg::AsymmetricClip, pg::KlLoss<pg::KlEstimator::k3>, pg::SeqMeanTokenMean>{}, 52);
  check_micro_batch_invariance(pg::Objective<pg::TokenRatio, pg::AsymmetricClip, pg::KlLoss<pg::KlEstimator::k3>, pg::SeqMeanTokenSum>{}, 53);
  check_micro_batch_invariance(pg::Objective<pg::TokenRatio, pg::AsymmetricClip, pg::KlLoss<pg::KlEstimator::k3>, pg::SeqMeanTokenSumNorm>{.aggregation = {.constant = 7}}, 54);
  check_micro_batch_invariance(pg::kGspo, 55);
  check_micro_batch_invariance(pg::kGmpo, 56);
}

TEST_CASE("aggregate: each mode on a hand-computed example, and bad input", "[policy_gradient][aggregation]") {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto loss = torch::tensor({1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, opts).view({2, 3});
  const auto mask = torch::tensor({true, true, false, true, true, true}).view({2, 3});
  CHECK(pg::aggregate(loss, mask, pg::TokenMean{}).item<double>() == Approx(18.0 / 5));
  CHECK(pg::aggregate(loss, mask, pg::SeqMeanTokenMean{}).item<double>() == Approx((1.5 + 5.0) / 2));
  CHECK(pg::aggregate(loss, mask, pg::SeqMeanTokenSum{}).item<double>() == Approx(18.0 / 2));
  CHECK(pg::aggregate(loss, mask, pg::SeqMeanTokenSumNorm{.constant = 3}).item<double>() == Approx(18.0 / 6));
  CHECK(pg::aggregate(loss, mask, pg::TokenMean{}, 9.0).item<double>() == Approx(2.0));
  CHECK(pg::loss_normaliser(pg::TokenMean{}, mask) == 5.0);
  CHECK(pg::loss_normaliser(pg::SeqMeanTokenMean{}, mask) == 2.0);
  CHECK_THROWS_WITH(pg::aggregate(loss, mask, pg::TokenMean{}, -1.0),
                    Catch::StartsWith("aggregate: expected a positive finite normaliser, got -1"));
  CHECK_THROWS_WITH(pg::aggregate(loss, torch::zeros({2, 3}, torch::kBool), pg::TokenMean{}),
                    Catch::StartsWith("aggregate: expected every row to have a valid token, got row 0 with none"));
}

TEST_CASE("without the global normaliser token-mean micro-batches do not add up to the batch",
          "[policy_gradient][policy_loss][aggregation]") {
  const auto r = random_inputs(57, true, 8, 7);
  auto full = pg::policy_loss(r.lp, r.old, r.ref, r.adv, r.mask, pg::DapoObjective{});
  double summed = 0;
  for (std::int64_t k = 0; k < 4; ++k) {
    const auto rows = [&](const torch::Tensor& t) { return t.narrow(0, 2 * k, 2); };
    summed += pg::policy_loss(rows(r.lp), rows(r.old), rows(r.ref), rows(r.adv), rows(r.mask), pg::DapoObjective{}).loss.item<double>();
  }
  CHECK(std::abs(summed / 4 - full.loss.item<double>()) > 1e-6);
}

TEST_CASE("a float mask weights tokens, and an all-ones float mask equals the bool mask", "[policy_gradient][policy_loss]") {
  const auto r = random_inputs(59, false);
  const pg::Objective<pg::TokenRatio, pg::NoClip, pg::NoKl, pg::TokenMean> reinforce{};
  const auto as_bool = pg::policy_loss(r.lp, r.old, {}, r.adv, r.mask, reinforce).loss.item<double>();
  const auto as_float =
      pg::policy_loss(r.lp, r.old, {}, r.adv, r.mask.to(torch::kFloat64), reinforce).loss.item<double>();
  CHECK(as_float == Approx(as_bool).epsilon(1e-12));
  const auto weights = r.mask.to(torch::kFloat64) * torch::rand({4, 6}, torch::kFloat64).add(0.5);
  const auto ratio = (r.lp.detach() - r.old).exp();
  const double want = (-(ratio * r.adv) * weights).sum().item<double>() / weights.sum().item<double>();
  CHECK(pg::policy_loss(r.lp, r.old, {}, r.adv, weights, reinforce).loss.item<double>() == Approx(want).epsilon(1e-12));
}

namespace {
// Padding filled with -inf log-probs and NaN advantages / reference / entropy / sampler log-probs
// gives the same loss as clean padding, a finite gradient, and zero gradient on padded tokens.
template <class Obj>
void check_padding_is_inert(const Obj& objective, std::uint64_t seed) {
  const auto r = random_inputs(seed, false);
  const auto pad = r.mask.logical_not();
  auto lp_pad = r.lp.detach().clone().masked_fill_(pad, -INFINITY).requires_grad_(true);
  const auto nan_pad = [&](const torch::Tensor& t) { return t.clone().masked_fill_(pad, NAN); };
  const pg::PolicyLossInputs dirty{.logprobs = lp_pad, .old_logprobs = nan_pad(r.old), .ref_logprobs = nan_pad(r.ref),
                                   .advantages = nan_pad(r.adv), .mask = r.mask, .entropy = nan_pad(r.entropy),
                                   .sampler_logprobs = nan_pad(r.sampler)};
  const pg::PolicyLossInputs clean{.logprobs = r.lp, .old_logprobs = r.old, .ref_logprobs = r.ref, .advantages = r.adv,
                                   .mask = r.mask, .entropy = r.entropy, .sampler_logprobs = r.sampler};
  pg::PolicyLossResult a = pg::policy_loss(dirty, objective);
  a.loss.backward();
  pg::PolicyLossResult b = pg::policy_loss(clean, objective);
  CHECK(a.loss.item<double>() == Approx(b.loss.item<double>()).epsilon(1e-12));
  CHECK(torch::isfinite(lp_pad.grad()).all().item<bool>());
  CHECK((lp_pad.grad().masked_select(pad) == 0).all().item<bool>());
}
}  // namespace

TEST_CASE("padding never leaks into the loss or its gradient", "[policy_gradient][policy_loss]") {
  using Imp = pg::TruncatedImportanceSampling;
  check_padding_is_inert(pg::GrpoObjective{}, 58);
  check_padding_is_inert(pg::DapoObjective{.entropy_coefficient = 0.1,
                                           .importance = Imp{.action = pg::ImportanceAction::mask,
                                                             .level = pg::ImportanceLevel::sequence}}, 59);
  check_padding_is_inert(pg::kGspo, 60);
  check_padding_is_inert(pg::kGmpo, 61);
  check_padding_is_inert(pg::CispoObjective{}, 62);
  check_padding_is_inert(pg::SapoObjective{}, 63);
  check_padding_is_inert(pg::DualClipPpoObjective{}, 64);
  check_padding_is_inert(pg::Objective<pg::TokenRatio, pg::NoClip, pg::KlLoss<pg::KlEstimator::k3_importance>,
                                       pg::SeqMeanTokenSumNorm>{}, 65);
}

TEST_CASE("policy_loss rejects bad input with a message naming the values", "[policy_gradient][policy_loss]") {
  using Catch::StartsWith;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto lp = torch::zeros({2, 3}, opts);
  const auto mask = torch::ones({2, 3}, torch::kBool);
  const auto adv = torch::ones({2}, opts);
  const pg::DapoObjective dapo{};
  CHECK_THROWS_WITH(pg::policy_loss(lp, torch::zeros({2, 4}, opts), {}, adv, mask, dapo),
                    StartsWith("policy_loss: expected `old_logprobs` of shape [2, 3] (as `logprobs`), got [2, 4]"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, torch::zeros({2, 3}), {}, adv, mask, dapo),
                    StartsWith("policy_loss: expected `old_logprobs` of dtype Double (as `logprobs`), got Float"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, torch::zeros({2, 3}, opts.device(torch::kMeta)), {}, adv, mask, dapo),
                    StartsWith("policy_loss: expected `old_logprobs` on cpu (as `logprobs`), got meta"));
  CHECK_THROWS_WITH(pg::policy_loss(torch::zeros({2, 3}, torch::kInt64), lp, {}, adv, mask, dapo),
                    StartsWith("policy_loss: expected `logprobs` to be float32 or float64, got Long"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, lp, {}, torch::ones({3}, opts), mask, dapo),
                    StartsWith("policy_loss: expected per-sequence `advantages` of shape [2], got [3]"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, lp, {}, adv, torch::ones({2, 2}, torch::kBool), dapo),
                    StartsWith("policy_loss: expected `mask` of shape [2, 3], got [2, 2]"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, lp, {}, adv, torch::tensor({true, true, true, false, false, false}).view({2, 3}), dapo),
                    StartsWith("policy_loss: expected every row to have a valid token, got row 1 with none"));
  auto bad_adv = torch::ones({2, 3}, opts);
  bad_adv[1][2] = INFINITY;
  CHECK_THROWS_WITH(pg::policy_loss(lp, lp, {}, bad_adv, mask, dapo),
                    StartsWith("policy_loss: expected finite `advantages`, got inf at row 1, column 2"));
  auto bad_lp = torch::zeros({2, 3}, opts);
  bad_lp[0][1] = NAN;
  CHECK_THROWS_WITH(pg::policy_loss(bad_lp, lp, {}, adv, mask, dapo),
                    StartsWith("policy_loss: expected finite `logprobs`, got nan at row 0, column 1"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, bad_lp, {}, adv, mask, dapo),
                    StartsWith("policy_loss: expected finite `old_logprobs`, got nan at row 0, column 1"));
  auto bad_ref = torch::zeros({2, 3}, opts);
  bad_ref[1][0] = -INFINITY;
  CHECK_THROWS_WITH(pg::policy_loss(lp, lp, bad_ref, adv, mask, pg::GrpoObjective{}),
                    StartsWith("policy_loss: expected finite `ref_logprobs`, got -inf at row 1, column 0"));
  CHECK_THROWS_WITH(pg::policy_loss(pg::PolicyLossInputs{.logprobs = lp, .old_logprobs = lp, .advantages = adv,
                                                         .mask = mask, .entropy = bad_lp},
                                    pg::DapoObjective{.entropy_coefficient = 0.1}),
                    StartsWith("policy_loss: expected finite `entropy`, got nan at row 0, column 1"));
  CHECK_THROWS_WITH(pg::policy_loss(pg::PolicyLossInputs{.logprobs = lp, .old_logprobs = lp, .advantages = adv,
                                                         .mask = mask, .entropy = torch::zeros({3, 2}, opts)},
                                    dapo),
                    StartsWith("policy_loss: expected `entropy` of shape [2, 3] (as `logprobs`), got [3, 2]"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, lp, {}, adv, torch::ones({2, 3}, torch::kInt32), dapo),
                    StartsWith("policy_loss: expected `mask` to be bool or floating, got Int"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, lp, {}, adv, mask, pg::GrpoObjective{}),
                    StartsWith("policy_loss: expected `ref_logprobs` for a KL term in the loss, got none"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, lp, lp, adv, mask, pg::DualClipPpoObjective{.clip = {.c = 0.5}}),
                    StartsWith("policy_loss: expected the dual-clip constant c > 1, got 0.5"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, lp, lp, adv, mask, pg::DapoObjective{.entropy_coefficient = 0.1}),
                    StartsWith("policy_loss: expected a per-token `entropy` for entropy_coefficient = 0.1, got none"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, lp, lp, adv, mask,
                                    pg::DapoObjective{.importance = {.action = pg::ImportanceAction::truncate}}),
                    StartsWith("policy_loss: expected `sampler_logprobs` for truncated importance sampling, got none"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, lp, lp, adv, mask, dapo, 0.0),
                    StartsWith("policy_loss: expected a positive finite normaliser, got 0"));
  CHECK_THROWS_WITH(pg::policy_loss(lp, lp, lp, adv, mask, pg::DrGrpoObjective{.aggregation = {.constant = -1}}),
                    StartsWith("policy_loss: expected SeqMeanTokenSumNorm::constant > 0, got -1"));
}

TEST_CASE("KL estimators: values, non-negativity of k2/k3, and KL in the reward", "[policy_gradient][kl]") {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto lp = torch::tensor({std::log(2.0), 0.0, -1.0}, opts).view({1, 3});
  const auto ref = torch::zeros({1, 3}, opts);
  const auto mask = torch::ones({1, 3}, torch::kBool);
  const auto k3 = pg::kl_estimate(lp, ref, mask, pg::KlEstimator::k3);
  CHECK(k3[0][0].item<double>() == Approx(0.1931).margin(1e-4));
  CHECK(k3[0][1].item<double>() == 0.0);
  CHECK(pg::kl_estimate(lp, ref, mask, pg::KlEstimator::k1)[0][2].item<double>() == Approx(-1.0));
  CHECK(pg::kl_estimate(lp, ref, mask, pg::KlEstimator::k2)[0][2].item<double>() == Approx(0.5));
  torch::manual_seed(61);
  const auto a = torch::randn({5, 9}, opts) * 2, b = torch::randn({5, 9}, opts) * 2;
  const auto all = torch::ones({5, 9}, torch::kBool);
  CHECK((pg::kl_estimate(a, b, all, pg::KlEstimator::k3) >= 0).all().item<bool>());
  CHECK((pg::kl_estimate(a, b, all, pg::KlEstimator::k2) >= 0).all().item<bool>());
  // k3_importance with old = logprobs equals k3.
  CHECK(torch::allclose(pg::kl_estimate(a, b, all, pg::KlEstimator::k3_importance, a),
                        pg::kl_estimate(a, b, all, pg::KlEstimator::k3)));
  // KL in the reward: −β·KL per token plus the score on the last valid token.
  const auto old = torch::tensor({0.5, 0.1, 9.0, 0.2, 0.3, 0.0}, opts).view({2, 3});
  const auto m = torch::tensor({true, true, false, true, true, true}).view({2, 3});
  const auto rewards = pg::kl_penalized_rewards(torch::tensor({1.0, -1.0}, opts), old, torch::zeros({2, 3}, opts), m,
                                                pg::KlEstimator::k1, 0.1);
  CHECK(rewards[0][0].item<double>() == Approx(-0.05));
  CHECK(rewards[0][1].item<double>() == Approx(-0.01 + 1.0));
  CHECK(rewards[0][2].item<double>() == 0.0);
  CHECK(rewards[1][2].item<double>() == Approx(-1.0));
  CHECK_THROWS_WITH(pg::kl_estimate(lp, ref, mask, pg::KlEstimator::k3_importance),
                    Catch::StartsWith("kl_estimate: expected `old_logprobs` for the k3_importance estimator, got none"));
  CHECK_THROWS_WITH(pg::kl_penalized_rewards(torch::ones({3}, opts), old, torch::zeros({2, 3}, opts), m, pg::KlEstimator::k1, 0.1),
                    Catch::StartsWith("kl_penalized_rewards: expected `scores` of shape [2], got [3]"));
}
