// The preference losses added for the peers' loss types: hand values at the points that define them,
// AOT's rank coupling, the NLL normalisations of RPO / CPO / ORPO, KTO's apo_zero_unpaired, and bad input.
// (Values and gradients on random inputs are in test_losses.cpp; TRL / Liger conformance in tests/parity.)
#include <cmath>
#include <numbers>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <kaizen/preference/aot.hpp>
#include <kaizen/preference/apo.hpp>
#include <kaizen/preference/bco.hpp>
#include <kaizen/preference/cpo.hpp>
#include <kaizen/preference/discopop.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/exo.hpp>
#include <kaizen/preference/f_divergence.hpp>
#include <kaizen/preference/kto.hpp>
#include <kaizen/preference/nca.hpp>
#include <kaizen/preference/orpo.hpp>
#include <kaizen/preference/rpo.hpp>
#include <kaizen/preference/simpo.hpp>
#include <kaizen/preference/sppo.hpp>

namespace pref = kaizen::preference;
using Catch::Contains;

namespace {
const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

pref::PairLogProbs pairs(std::vector<double> pc, std::vector<double> pr, std::vector<double> rc, std::vector<double> rr,
                         std::vector<double> lc = {}, std::vector<double> lr = {}) {
  pref::PairLogProbs p;
  p.chosen = torch::tensor(pc, f64).requires_grad_(true);
  p.rejected = torch::tensor(pr, f64).requires_grad_(true);
  p.reference_chosen = torch::tensor(rc, f64);
  p.reference_rejected = torch::tensor(rr, f64);
  if (lc.empty()) lc.assign(pc.size(), 1.0), lr.assign(pc.size(), 1.0);
  p.chosen_lengths = torch::tensor(lc, f64);
  p.rejected_lengths = torch::tensor(lr, f64);
  return p;
}

double log_sigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }
}  // namespace

TEST_CASE("new pair losses at the policy equal to the reference take their hand values", "[preference][peers]") {
  const auto p = pairs({-5, -2}, {-7, -1}, {-5, -2}, {-7, -1});
  const double ln2 = std::numbers::ln2;
  // EXO: KL((½, ½) ‖ (1 − ε, ε)) = −log 2 − ½ log(ε (1 − ε)).
  CHECK(pref::exo_loss(p, {.beta = 0.1, .epsilon = 0.01}).loss.item<double>() ==
        Approx(-ln2 - 0.5 * std::log(0.01 * 0.99)));
  CHECK(pref::nca_loss(p).loss.item<double>() == Approx(2 * ln2));
  CHECK(pref::bco_pair_loss(p).loss.item<double>() == Approx(2 * ln2));
  CHECK(pref::sppo_hard_loss(p, {.beta = 0.1}).loss.item<double>() == Approx(50.0));  // 2 · (1/(2β))²
  CHECK(pref::apo_loss(p).loss.item<double>() == Approx(1.0));
  CHECK(pref::apo_loss(p, {.anchor = pref::ApoAnchor::down}).loss.item<double>() == Approx(1.0));
  CHECK(pref::discopop_loss(p).loss.item<double>() == Approx(0.5 * ln2 + 0.5));
  for (auto kind : {pref::FDivergence::reverse_kl, pref::FDivergence::forward_kl, pref::FDivergence::js,
                    pref::FDivergence::alpha}) {
    CHECK(pref::dpo_loss(p, {.beta = 0.1, .divergence = {.kind = kind}}).loss.item<double>() == Approx(ln2));
  }
  CHECK(pref::aot_loss(p).loss.item<double>() == Approx(ln2));
}

TEST_CASE("EXO is minimal where the pair softmax equals the label distribution", "[preference][peers][exo]") {
  const double eps = 0.1, beta = 0.5;
  const double h_star = std::log((1 - eps) / eps) / beta;  // σ(β h) = 1 − ε
  const auto at = [&](double h) {
    return pref::exo_loss(pairs({h}, {0.0}, {0.0}, {0.0}), {.beta = beta, .epsilon = eps}).loss.item<double>();
  };
  CHECK(at(h_star) == Approx(0.0).margin(1e-12));
  CHECK(at(h_star + 0.1) > at(h_star));
  CHECK(at(h_star - 0.1) > at(h_star));
}

TEST_CASE("f-divergence scores: alpha near 1 is reverse KL, JS and forward KL by hand", "[preference][peers][fdpo]") {
  const auto u = torch::tensor({-2.0, 0.0, 1.5}, f64);
  const auto rev = pref::detail::f_divergence_score(u, {});
  CHECK(torch::allclose(pref::detail::f_divergence_score(u, {.kind = pref::FDivergence::alpha, .alpha = 1.0}), rev));
  CHECK(torch::allclose(pref::detail::f_divergence_score(u, {.kind = pref::FDivergence::alpha, .alpha = 1.0 + 1e-9}), rev,
                        1e-6, 1e-8));
  // forward KL: 1 − e^(−u); JS: log(2t/(1+t)), t = e^u.
  CHECK(pref::detail::f_divergence_score(u, {.kind = pref::FDivergence::forward_kl})[0].item<double>() ==
        Approx(1 - std::exp(2.0)));
  CHECK(pref::detail::f_divergence_score(u, {.kind = pref::FDivergence::js})[2].item<double>() ==
        Approx(std::log(2 * std::exp(1.5) / (1 + std::exp(1.5)))));
}

TEST_CASE("AOT compares sorted margins rank by rank and equals cDPO for one pair", "[preference][peers][aot]") {
  // Policy margins h^θ = {3, −1, 0.5}, reference margins {0, 2, −4}: sorted {−1, 0.5, 3} − {−4, 0, 2} = {3, 0.5, 1}.
  const auto p = pairs({1, -1, 0.5}, {-2, 0, 0}, {0, 2, -4}, {0, 0, 0});
  const auto out = pref::aot_loss(p, {.beta = 1.0});
  CHECK(out.per_example[0].item<double>() == Approx(-log_sigmoid(3.0)));
  CHECK(out.per_example[1].item<double>() == Approx(-log_sigmoid(0.5)));
  CHECK(out.per_example[2].item<double>() == Approx(-log_sigmoid(1.0)));
  out.loss.backward();
  // The rank-0 value −1 belongs to pair 1: its chosen gradient is −σ(−3)/3.
  CHECK(p.chosen.grad()[1].item<double>() == Approx(-(1 - 1 / (1 + std::exp(-3.0))) / 3));
  // Unpaired: sorted u_w {−4... } − sorted u_l.
  const auto u = pref::aot_loss(p, {.beta = 1.0, .variant = pref::AotVariant::unpaired});
  // u_w = {1, −3, 4.5} → {−3, 1, 4.5}; u_l = {−2, 0, 0} → {−2, 0, 0}; d = {−1, 1, 4.5}.
  CHECK(u.loss.item<double>() ==
        Approx((-log_sigmoid(-1.0) - log_sigmoid(1.0) - log_sigmoid(4.5)) / 3));
  const auto one = pairs({-3}, {-5}, {-4}, {-4});
  CHECK(pref::aot_loss(one, {.beta = 0.3, .label_smoothing = 0.2}).loss.item<double>() ==
        Approx(pref::dpo_loss(one, {.beta = 0.3, .label_smoothing = 0.2}).loss.item<double>()));
}

TEST_CASE("NLL terms: per sequence (paper) or the batch token mean (TRL / Liger)", "[preference][peers][nll]") {
  // chosen sums −4 (4 tokens) and −9 (3 tokens): per sequence mean(1, 3) = 2; batch tokens 13/7.
  const auto p = pairs({-4, -9}, {-6, -6}, {-4, -9}, {-6, -6}, {4, 3}, {2, 2});
  const double dpo = pref::dpo_loss(p).loss.item<double>();
  CHECK(pref::rpo_loss(p, {.beta = 0.1, .alpha = 1.0}).loss.item<double>() == Approx(dpo + 2.0));
  const pref::NllOptions batch{.normalisation = pref::NllNormalisation::batch_tokens};
  CHECK(pref::rpo_loss(p, {.beta = 0.1, .alpha = 1.0, .nll = batch}).loss.item<double>() == Approx(dpo + 13.0 / 7));
  // A global token count (the whole batch over chunks): 26 tokens halves it.
  CHECK(pref::rpo_loss(p, {.beta = 0.1, .alpha = 1.0, .nll = {.normalisation = pref::NllNormalisation::batch_tokens,
                                                               .nll_tokens = 14}})
            .loss.item<double>() == Approx(dpo + 13.0 / 14));
  const double cpo0 = pref::cpo_loss(p, {.beta = 0.1, .alpha = 0.0}).loss.item<double>();
  CHECK(pref::cpo_loss(p, {.beta = 0.1, .alpha = 0.5, .nll = batch}).loss.item<double>() == Approx(cpo0 + 0.5 * 13.0 / 7));
  // ORPO over prompt + response: the NLL reads nll_chosen / nll_chosen_lengths (−10 and −20 over 10 tokens each).
  const auto orpo_plain = pref::orpo_loss(p, {.lambda = 0.1});
  pref::OrpoOptions with_prompt{.lambda = 0.1, .nll = batch};
  with_prompt.nll_chosen = torch::tensor({-10.0, -20.0}, f64);
  with_prompt.nll_chosen_lengths = torch::tensor({10.0, 10.0}, f64);
  const auto orpo_prompt = pref::orpo_loss(p, with_prompt);
  CHECK(orpo_prompt.loss.item<double>() - orpo_plain.loss.item<double>() == Approx(30.0 / 20 - 2.0));
}

TEST_CASE("KTO apo_zero_unpaired by hand, without a KL baseline", "[preference][peers][kto]") {
  pref::UnpairedLogProbs u;
  u.policy = torch::tensor({-3.0, -5.0}, f64).requires_grad_(true);
  u.reference = torch::tensor({-4.0, -4.0}, f64);
  u.desirable = torch::tensor({true, false});
  const auto out = pref::kto_loss(u, {.beta = 0.5, .desirable_weight = 2.0, .undesirable_weight = 1.0,
                                      .loss = pref::KtoVariant::apo_zero_unpaired});
  const auto sig = [](double x) { return 1 / (1 + std::exp(-x)); };
  // r = {1, −1}: desirable 2·(1 − σ(0.5)), undesirable σ(−0.5).
  CHECK(out.loss.item<double>() == Approx((2 * (1 - sig(0.5)) + sig(-0.5)) / 2));
  CHECK_THROWS_WITH(pref::kto_loss(u, 0.2, {.loss = pref::KtoVariant::apo_zero_unpaired}),
                    Contains("apo_zero_unpaired has no KL baseline"));
  CHECK_THROWS_WITH(pref::kto_loss(u, pref::KtoOptions{}), Contains("expected a KL baseline z0 for the kto variant"));
}

TEST_CASE("the new losses reject bad options and inputs with their names", "[preference][peers][errors]") {
  const auto p = pairs({-5, -2}, {-7, -1}, {-5, -2}, {-7, -1}, {3, 2}, {2, 2});
  CHECK_THROWS_WITH(pref::exo_loss(p, {.beta = 0.1, .epsilon = 0.0}), Contains("exo_loss: expected epsilon in (0, 1), got 0"));
  CHECK_THROWS_WITH(pref::nca_loss(p, {.beta = -1}), Contains("nca_loss: expected beta > 0"));
  CHECK_THROWS_WITH(pref::discopop_loss(p, {.beta = 0.1, .tau = 0.0}), Contains("discopop_loss: expected tau > 0"));
  CHECK_THROWS_WITH(pref::aot_loss(p, {.beta = 0.1, .label_smoothing = 0.7}),
                    Contains("aot_loss: expected label_smoothing in [0, 0.5], got 0.7"));
  CHECK_THROWS_WITH(pref::simpo_loss(p, {.beta = 2, .gamma = 0.5, .label_smoothing = -0.1}),
                    Contains("simpo_loss: expected label_smoothing in [0, 0.5]"));
  CHECK_THROWS_WITH(pref::bco_pair_loss(p, {.beta = 0.1, .shift = INFINITY}), Contains("bco_pair_loss: expected a finite shift"));
  CHECK_THROWS_WITH(pref::dpo_loss(p, {.beta = 0.1, .divergence = {.kind = pref::FDivergence::alpha, .alpha = NAN}}),
                    Contains("dpo_loss: expected a finite alpha"));
  // e^(−u) overflows for u = −800 under the forward KL.
  const auto far = pairs({-805}, {-7}, {-5}, {-7});
  CHECK_THROWS_WITH(pref::dpo_loss(far, {.beta = 0.1, .divergence = {.kind = pref::FDivergence::forward_kl}}),
                    Contains("dpo_loss: the f-divergence score of a log-ratio is not finite"));
  auto no_lengths = p;
  no_lengths.chosen_lengths = torch::Tensor();
  CHECK_THROWS_WITH(pref::dpo_norm_loss(no_lengths), Contains("dpo_norm_loss: expected chosen_lengths"));
  CHECK_THROWS_WITH(pref::rpo_loss(p, {.beta = 0.1, .alpha = 1, .nll = {.normalisation = pref::NllNormalisation::batch_tokens,
                                                                        .nll_tokens = -1}}),
                    Contains("rpo_loss: expected nll_tokens >= 0"));
  pref::OrpoOptions half{.lambda = 0.1};
  half.nll_chosen = torch::tensor({-1.0, -2.0}, f64);
  CHECK_THROWS_WITH(pref::orpo_loss(p, half), Contains("orpo_loss: expected both nll_chosen and nll_chosen_lengths"));
}
