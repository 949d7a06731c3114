// Preference losses: hand-computed oracles, the limits that define them, a float64 scalar
// re-implementation on random inputs (values and finite-difference gradients), and bad input.
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <kaizen/core/rng.hpp>
#include <kaizen/preference.hpp>
namespace pref = kaizen::preference;

namespace {

const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

// One pair in plain doubles: policy / reference sequence log-probs and lengths.
struct Pair {
  double pc, pr, rc, rr, lc, lr;
};

pref::PairLogProbs to_tensors(const std::vector<Pair>& pairs, bool grad = true) {
  std::vector<double> pc, pr, rc, rr, lc, lr;
  for (const Pair& p : pairs) {
    pc.push_back(p.pc), pr.push_back(p.pr), rc.push_back(p.rc), rr.push_back(p.rr), lc.push_back(p.lc),
        lr.push_back(p.lr);
  }
  pref::PairLogProbs out;
  out.chosen = torch::tensor(pc, f64).requires_grad_(grad);
  out.rejected = torch::tensor(pr, f64).requires_grad_(grad);
  // The reference asks for gradients too, so the tests can see that the losses detach it.
  out.reference_chosen = torch::tensor(rc, f64).requires_grad_(grad);
  out.reference_rejected = torch::tensor(rr, f64).requires_grad_(grad);
  out.chosen_lengths = torch::tensor(lc, f64);
  out.rejected_lengths = torch::tensor(lr, f64);
  return out;
}

std::vector<Pair> random_pairs(std::uint64_t seed, int n) {
  kaizen::Rng rng(seed);
  std::vector<Pair> out;
  for (int i = 0; i < n; ++i) {
    Pair p{};
    p.lc = 4.0 + static_cast<double>(kaizen::uniform_index(rng, 40));
    p.lr = 4.0 + static_cast<double>(kaizen::uniform_index(rng, 40));
    p.pc = -p.lc * (0.2 + 1.5 * kaizen::uniform01(rng));
    p.pr = -p.lr * (0.2 + 1.5 * kaizen::uniform01(rng));
    p.rc = p.pc + 4.0 * kaizen::normal01(rng);
    p.rr = p.pr + 4.0 * kaizen::normal01(rng);
    out.push_back(p);
  }
  return out;
}

double log_sigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double log1mexp(double x) { return std::log(1.0 - std::exp(x)); }

struct LossCase {
  std::string name;
  std::function<pref::PreferenceLoss(const pref::PairLogProbs&)> loss;
  std::function<double(const Pair&)> per_pair;    // float64 scalar re-implementation
  std::function<double(const Pair&)> chosen_reward;
  std::function<double(const Pair&)> rejected_reward;
};

std::vector<LossCase> loss_cases() {
  const double b = 0.1;
  std::vector<LossCase> cases;
  const auto h = [](const Pair& p) { return (p.pc - p.rc) - (p.pr - p.rr); };
  const auto dpo_cr = [b](const Pair& p) { return b * (p.pc - p.rc); };
  const auto dpo_rr = [b](const Pair& p) { return b * (p.pr - p.rr); };
  cases.push_back({"dpo", [](const auto& p) { return pref::dpo_loss(p); },
                   [=](const Pair& p) { return -log_sigmoid(b * h(p)); }, dpo_cr, dpo_rr});
  cases.push_back({"cdpo", [](const auto& p) { return pref::dpo_loss(p, {.beta = 0.1, .label_smoothing = 0.2}); },
                   [=](const Pair& p) { return -0.8 * log_sigmoid(b * h(p)) - 0.2 * log_sigmoid(-b * h(p)); }, dpo_cr,
                   dpo_rr});
  cases.push_back({"robust_dpo",
                   [](const auto& p) { return pref::robust_dpo_loss(p, {.beta = 0.1, .label_smoothing = 0.2}); },
                   [=](const Pair& p) { return (-0.8 * log_sigmoid(b * h(p)) + 0.2 * log_sigmoid(-b * h(p))) / 0.6; },
                   dpo_cr, dpo_rr});
  cases.push_back({"ipo", [](const auto& p) { return pref::ipo_loss(p); },
                   [=](const Pair& p) { return std::pow(h(p) - 5.0, 2); }, dpo_cr, dpo_rr});
  cases.push_back({"ipo_mean", [](const auto& p) { return pref::ipo_loss(p, {.tau = 0.5, .length_normalize = true}); },
                   [=](const Pair& p) {
                     const double hm = (p.pc / p.lc - p.rc / p.lc) - (p.pr / p.lr - p.rr / p.lr);
                     return std::pow(hm - 1.0, 2);
                   },
                   [](const Pair& p) { return 0.5 * (p.pc - p.rc) / p.lc; },
                   [](const Pair& p) { return 0.5 * (p.pr - p.rr) / p.lr; }});
  cases.push_back({"hinge", [](const auto& p) { return pref::hinge_loss(p, {.beta = 0.5}); },
                   [=](const Pair& p) { return std::max(0.0, 1.0 - 0.5 * h(p)); },
                   [](const Pair& p) { return 0.5 * (p.pc - p.rc); }, [](const Pair& p) { return 0.5 * (p.pr - p.rr); }});
  cases.push_back({"simpo", [](const auto& p) { return pref::simpo_loss(p, {.beta = 2.0, .gamma = 0.7}); },
                   [](const Pair& p) { return -log_sigmoid(2.0 * p.pc / p.lc - 2.0 * p.pr / p.lr - 0.7); },
                   [](const Pair& p) { return 2.0 * p.pc / p.lc; }, [](const Pair& p) { return 2.0 * p.pr / p.lr; }});
  cases.push_back({"cpo", [](const auto& p) { return pref::cpo_loss(p, {.beta = 0.1, .alpha = 0.5}); },
                   [](const Pair& p) { return -log_sigmoid(0.1 * (p.pc - p.pr)) - 0.5 * p.pc / p.lc; },
                   [](const Pair& p) { return 0.1 * p.pc; }, [](const Pair& p) { return 0.1 * p.pr; }});
  cases.push_back({"rpo", [](const auto& p) { return pref::rpo_loss(p, {.beta = 0.1, .alpha = 2.0}); },
                   [=](const Pair& p) { return -log_sigmoid(b * h(p)) - 2.0 * p.pc / p.lc; }, dpo_cr, dpo_rr});
  cases.push_back({"orpo", [](const auto& p) { return pref::orpo_loss(p, {.lambda = 0.3}); },
                   [](const Pair& p) {
                     const double mw = p.pc / p.lc, ml = p.pr / p.lr;
                     const double log_odds = (mw - log1mexp(mw)) - (ml - log1mexp(ml));
                     return -mw - 0.3 * log_sigmoid(log_odds);
                   },
                   [](const Pair& p) { return 0.3 * p.pc / p.lc; }, [](const Pair& p) { return 0.3 * p.pr / p.lr; }});
  // Losses added for the peers' loss types (formulas in their headers, re-derived here from the papers).
  const auto ls = [](double z, double e) { return -(1 - e) * log_sigmoid(z) - e * log_sigmoid(-z); };
  const auto u_w = [](const Pair& p) { return p.pc - p.rc; };
  const auto u_l = [](const Pair& p) { return p.pr - p.rr; };
  cases.push_back({"exo", [](const auto& p) { return pref::exo_loss(p, {.beta = 0.1, .epsilon = 0.05}); },
                   [=](const Pair& p) {
                     const double z = b * h(p);
                     return sigmoid(z) * (log_sigmoid(z) - std::log(0.95)) + sigmoid(-z) * (log_sigmoid(-z) - std::log(0.05));
                   },
                   dpo_cr, dpo_rr});
  cases.push_back({"nca", [](const auto& p) { return pref::nca_loss(p); },
                   [=](const Pair& p) {
                     return -log_sigmoid(b * u_w(p)) - 0.5 * log_sigmoid(-b * u_w(p)) - 0.5 * log_sigmoid(-b * u_l(p));
                   },
                   dpo_cr, dpo_rr});
  cases.push_back({"bco_pair", [](const auto& p) { return pref::bco_pair_loss(p, {.beta = 0.1, .shift = 0.2}); },
                   [=](const Pair& p) { return -log_sigmoid(b * u_w(p) - 0.2) - log_sigmoid(-(b * u_l(p) - 0.2)); },
                   dpo_cr, dpo_rr});
  cases.push_back({"sppo_hard", [](const auto& p) { return pref::sppo_hard_loss(p, {.beta = 0.5}); },
                   [](const Pair& p) { return std::pow(p.pc - p.rc - 1.0, 2) + std::pow(p.pr - p.rr + 1.0, 2); },
                   [](const Pair& p) { return 0.5 * (p.pc - p.rc); }, [](const Pair& p) { return 0.5 * (p.pr - p.rr); }});
  cases.push_back({"apo_zero", [](const auto& p) { return pref::apo_loss(p); },
                   [=](const Pair& p) { return 1 - sigmoid(b * u_w(p)) + sigmoid(b * u_l(p)); }, dpo_cr, dpo_rr});
  cases.push_back({"apo_down", [](const auto& p) { return pref::apo_loss(p, {.anchor = pref::ApoAnchor::down}); },
                   [=](const Pair& p) { return sigmoid(b * u_w(p)) + 1 - sigmoid(b * (u_w(p) - u_l(p))); }, dpo_cr,
                   dpo_rr});
  cases.push_back({"discopop", [](const auto& p) { return pref::discopop_loss(p, {.beta = 0.1, .tau = 0.5}); },
                   [=](const Pair& p) {
                     const double z = b * h(p), m = sigmoid(z / 0.5);
                     return (1 - m) * -log_sigmoid(z) + m * std::exp(-z);
                   },
                   dpo_cr, dpo_rr});
  cases.push_back({"dpo_norm", [](const auto& p) { return pref::dpo_norm_loss(p); },
                   [=](const Pair& p) { return -log_sigmoid(b * (u_w(p) / p.lc - u_l(p) / p.lr)); }, dpo_cr, dpo_rr});
  cases.push_back({"dpo_forward_kl",
                   [](const auto& p) { return pref::dpo_loss(p, {.beta = 0.01, .divergence = {.kind = pref::FDivergence::forward_kl}}); },
                   [=](const Pair& p) { return -log_sigmoid(0.01 * (std::exp(-u_l(p)) - std::exp(-u_w(p)))); },
                   [](const Pair& p) { return 0.01 * (p.pc - p.rc); }, [](const Pair& p) { return 0.01 * (p.pr - p.rr); }});
  cases.push_back({"dpo_js", [](const auto& p) { return pref::dpo_loss(p, {.beta = 0.1, .divergence = {.kind = pref::FDivergence::js}}); },
                   [=](const Pair& p) {
                     // f'(t) = log(2t/(1+t)) with t = e^u
                     const auto f = [](double u) { return std::log(2 * std::exp(u) / (1 + std::exp(u))); };
                     return -log_sigmoid(b * (f(u_w(p)) - f(u_l(p))));
                   },
                   dpo_cr, dpo_rr});
  cases.push_back({"dpo_alpha",
                   [](const auto& p) {
                     return pref::dpo_loss(p, {.beta = 0.1, .divergence = {.kind = pref::FDivergence::alpha, .alpha = 0.6}});
                   },
                   [=](const Pair& p) {
                     const auto f = [](double u) { return (std::pow(std::exp(u), -0.4) - 1) / -0.4; };
                     return -log_sigmoid(b * (f(u_w(p)) - f(u_l(p))));
                   },
                   dpo_cr, dpo_rr});
  cases.push_back({"simpo_smoothed",
                   [](const auto& p) { return pref::simpo_loss(p, {.beta = 2.0, .gamma = 0.7, .label_smoothing = 0.2}); },
                   [=](const Pair& p) { return ls(2.0 * p.pc / p.lc - 2.0 * p.pr / p.lr - 0.7, 0.2); },
                   [](const Pair& p) { return 2.0 * p.pc / p.lc; }, [](const Pair& p) { return 2.0 * p.pr / p.lr; }});
  return cases;
}

double mean_loss(const LossCase& c, const std::vector<Pair>& pairs) {
  double sum = 0.0;
  for (const Pair& p : pairs) sum += c.per_pair(p);
  return sum / static_cast<double>(pairs.size());
}

}  // namespace

TEST_CASE("every loss matches a float64 re-implementation in value, rewards and gradient", "[preference][losses]") {
  for (std::uint64_t seed : {1U, 2U, 3U}) {
    const auto pairs = random_pairs(seed, 9);
    for (const LossCase& c : loss_cases()) {
      INFO(c.name << " seed " << seed);
      const auto t = to_tensors(pairs);
      const auto out = c.loss(t);
      REQUIRE(out.loss.dim() == 0);
      CHECK(std::abs(out.loss.item<double>() - mean_loss(c, pairs)) <= 1e-6);
      for (std::size_t i = 0; i < pairs.size(); ++i) {
        const auto k = static_cast<std::int64_t>(i);
        CHECK(std::abs(out.per_example[k].item<double>() - c.per_pair(pairs[i])) <= 1e-6);
        CHECK(std::abs(out.chosen_rewards[k].item<double>() - c.chosen_reward(pairs[i])) <= 1e-6);
        CHECK(std::abs(out.rejected_rewards[k].item<double>() - c.rejected_reward(pairs[i])) <= 1e-6);
      }
      out.loss.backward();
      CHECK_FALSE(t.reference_chosen.grad().defined());
      CHECK_FALSE(t.reference_rejected.grad().defined());
      const double step = 1e-6;
      for (std::size_t i = 0; i < pairs.size(); ++i) {
        for (double Pair::*field : {&Pair::pc, &Pair::pr}) {
          auto up = pairs, down = pairs;
          up[i].*field += step;
          down[i].*field -= step;
          const double fd = (mean_loss(c, up) - mean_loss(c, down)) / (2 * step);
          const auto& grad = field == &Pair::pc ? t.chosen.grad() : t.rejected.grad();
          CHECK(std::abs(grad[static_cast<std::int64_t>(i)].item<double>() - fd) <= 1e-6);
        }
      }
      // Metrics summarise the rewards.
      const auto cr = out.chosen_rewards, rr = out.rejected_rewards;
      CHECK(out.metrics.margin.item<double>() == Approx((cr - rr).mean().item<double>()));
      CHECK(out.metrics.accuracy.item<double>() == Approx(cr.gt(rr).to(torch::kFloat64).mean().item<double>()));
      CHECK(out.metrics.chosen_reward.item<double>() == Approx(cr.mean().item<double>()));
      CHECK(out.metrics.rejected_reward.item<double>() == Approx(rr.mean().item<double>()));
    }
  }
}

TEST_CASE("float32 inputs give the float64 values to float32 accuracy", "[preference][losses]") {
  const auto pairs = random_pairs(7, 16);
  for (const LossCase& c : loss_cases()) {
    INFO(c.name);
    auto t = to_tensors(pairs, false);
    for (torch::Tensor* x : {&t.chosen, &t.rejected, &t.reference_chosen, &t.reference_rejected, &t.chosen_lengths,
                             &t.rejected_lengths})
      *x = x->to(torch::kFloat32);
    const auto out = c.loss(t);
    CHECK(out.loss.scalar_type() == torch::kFloat32);
    CHECK(out.loss.item<double>() == Approx(mean_loss(c, pairs)).epsilon(1e-5));
  }
}

TEST_CASE("DPO with the policy equal to the reference gives log 2 for every beta and pushes h up",
          "[preference][dpo]") {
  for (double beta : {1e-3, 0.1, 1.0, 10.0}) {
    const auto t = to_tensors({{-5, -7, -5, -7, 3, 3}, {-2, -1, -2, -1, 3, 3}});
    const auto out = pref::dpo_loss(t, {.beta = beta});
    CHECK(out.loss.item<double>() == Approx(std::log(2.0)));
    out.loss.backward();
    // dL/dh = -beta/2 per pair, averaged over 2 pairs.
    CHECK(t.chosen.grad()[0].item<double>() == Approx(-beta / 4));
    CHECK(t.rejected.grad()[0].item<double>() == Approx(beta / 4));
    CHECK(out.metrics.accuracy.item<double>() == 0.0);
    CHECK(out.metrics.margin.item<double>() == 0.0);
  }
}

TEST_CASE("DPO tends to log 2 as beta goes to 0, and its label-noise variants reduce to it", "[preference][dpo]") {
  const auto t = to_tensors(random_pairs(11, 8), false);
  CHECK(pref::dpo_loss(t, {.beta = 1e-9}).loss.item<double>() == Approx(std::log(2.0)).epsilon(1e-8));
  const double dpo = pref::dpo_loss(t).loss.item<double>();
  CHECK(pref::dpo_loss(t, {.beta = 0.1, .label_smoothing = 0.0}).loss.item<double>() == dpo);
  CHECK(pref::robust_dpo_loss(t).loss.item<double>() == Approx(dpo).epsilon(1e-12));
  CHECK(pref::rpo_loss(t, {.beta = 0.1, .alpha = 0.0}).loss.item<double>() == Approx(dpo).epsilon(1e-12));
  // cDPO at h = 0 is log 2 for every smoothing.
  const auto equal = to_tensors({{-3, -4, -3, -4, 2, 2}});
  CHECK(pref::dpo_loss(equal, {.beta = 0.1, .label_smoothing = 0.3}).loss.item<double>() == Approx(std::log(2.0)));
  // DPO hand value: beta = 0.1, h = 10 => -log sigma(1) = 0.3132617.
  CHECK(pref::dpo_loss(to_tensors({{-10, -20, -10, -10, 1, 1}})).loss.item<double>() == Approx(0.3132617).epsilon(1e-6));
}

TEST_CASE("IPO is 25 at the reference and minimised at h = 1/(2 tau)", "[preference][ipo]") {
  CHECK(pref::ipo_loss(to_tensors({{-5, -6, -5, -6, 2, 2}})).loss.item<double>() == Approx(25.0));
  for (double tau : {0.1, 0.25, 1.0}) {
    const double target = 1.0 / (2.0 * tau);
    const auto at = to_tensors({{-1.0, -1.0 - target, 0, 0, 1, 1}});
    const auto out = pref::ipo_loss(at, {.tau = tau});
    CHECK(out.loss.item<double>() == Approx(0.0).margin(1e-12));
    out.loss.backward();
    CHECK(at.chosen.grad()[0].item<double>() == Approx(0.0).margin(1e-12));
    for (double off : {-0.3, 0.3}) {
      const auto near = to_tensors({{-1.0 + off, -1.0 - target, 0, 0, 1, 1}}, false);
      CHECK(pref::ipo_loss(near, {.tau = tau}).loss.item<double>() == Approx(0.09));
    }
  }
}

TEST_CASE("hinge loss vanishes beyond the margin 1/beta", "[preference][hinge]") {
  const auto t = to_tensors({{-1, -12, 0, 0, 1, 1}, {-1, -2, 0, 0, 1, 1}});
  const auto out = pref::hinge_loss(t, {.beta = 0.1});  // h = 11 -> 0; h = 1 -> 0.9
  CHECK(out.per_example[0].item<double>() == 0.0);
  CHECK(out.per_example[1].item<double>() == Approx(0.9));
}

TEST_CASE("SimPO with equal average log-probs and gamma 0.5 gives log(1 + e^0.5)", "[preference][simpo]") {
  for (double beta : {1.0, 2.0, 2.5}) {
    // -6/3 == -8/4: equal averages despite different lengths and sums.
    const auto out = pref::simpo_loss(to_tensors({{-6, -8, 0, 0, 3, 4}}), {.beta = beta, .gamma = 0.5});
    CHECK(out.loss.item<double>() == Approx(0.9740770).epsilon(1e-6));
  }
  // Reference-free: reference log-probs are not needed.
  auto t = to_tensors({{-6, -8, 0, 0, 3, 4}});
  t.reference_chosen = torch::Tensor();
  t.reference_rejected = torch::Tensor();
  CHECK_NOTHROW(pref::simpo_loss(t));
  CHECK_NOTHROW(pref::cpo_loss(t));
  CHECK_NOTHROW(pref::orpo_loss(t));
}

TEST_CASE("ORPO and CPO hand-computed values", "[preference][orpo][cpo]") {
  // ORPO: mean log-probs log 0.5 (odds 1) and log 0.25 (odds 1/3): log odds ratio = log 3,
  // loss = NLL + lambda * -log sigma(log 3) = log 2 + 0.1 * log(4/3) = 0.7219154.
  const auto o = pref::orpo_loss(to_tensors({{2 * std::log(0.5), 3 * std::log(0.25), 0, 0, 2, 3}}));
  CHECK(o.loss.item<double>() == Approx(0.7219154).epsilon(1e-6));
  CHECK(o.metrics.log_odds_ratio.item<double>() == Approx(std::log(3.0)));
  CHECK(o.metrics.nll.item<double>() == Approx(std::log(2.0)));
  // CPO: beta 0.1, log-probs -10 and -20, |y_w| = 5: -log sigma(1) + 10/5 = 2.3132617.
  const auto c = pref::cpo_loss(to_tensors({{-10, -20, 0, 0, 5, 7}}));
  CHECK(c.loss.item<double>() == Approx(2.3132617).epsilon(1e-6));
  CHECK(c.metrics.nll.item<double>() == Approx(2.0));
}

TEST_CASE("KTO matches hand values and a float64 re-implementation, with z0 detached", "[preference][kto]") {
  // beta 0.1, r = 10, z0 = 0: desirable 1 - sigma(1) = 0.2689414, undesirable 1 - sigma(-1) = 0.7310586.
  pref::UnpairedLogProbs u{torch::tensor({-5.0, -5.0}, f64), torch::tensor({-15.0, -15.0}, f64),
                           torch::tensor({true, false})};
  const auto hand = pref::kto_loss(u, 0.0);
  CHECK(hand.per_example[0].item<double>() == Approx(0.2689414).epsilon(1e-6));
  CHECK(hand.per_example[1].item<double>() == Approx(0.7310586).epsilon(1e-6));
  CHECK(hand.metrics.accuracy.item<double>() == 0.5);  // the undesirable one sits above z0

  kaizen::Rng rng(5);
  const int m = 11;
  std::vector<double> pol, ref;
  std::vector<bool> good;
  for (int i = 0; i < m; ++i) {
    pol.push_back(-20.0 * kaizen::uniform01(rng));
    ref.push_back(pol.back() + 5.0 * kaizen::normal01(rng));
    good.push_back(i % 3 != 0);
  }
  auto desirable = torch::zeros({m}, torch::kBool);
  for (int i = 0; i < m; ++i) desirable[i] = static_cast<bool>(good[static_cast<std::size_t>(i)]);
  const double beta = 0.3, wd = 1.2, wu = 0.8;
  const auto policy = torch::tensor(pol, f64).requires_grad_();
  // z0 from "mismatched" pairs: a shifted copy of the batch, as TRL does.
  const auto kl_policy = torch::roll(policy, 1) + 1.0, kl_ref = torch::roll(torch::tensor(ref, f64), 1);
  const auto z0 = pref::kto_kl_baseline(kl_policy, kl_ref);
  CHECK_FALSE(z0.requires_grad());
  const double z = z0.item<double>();
  CHECK(z == Approx(std::max(0.0, (torch::tensor(pol, f64) + 1.0 - torch::tensor(ref, f64)).mean().item<double>())));
  const auto reference_fn = [&](const std::vector<double>& p) {
    double sum = 0.0;
    for (std::size_t i = 0; i < p.size(); ++i) {
      const double r = p[i] - ref[i];
      sum += good[i] ? wd * (1.0 - sigmoid(beta * (r - z))) : wu * (1.0 - sigmoid(beta * (z - r)));
    }
    return sum / static_cast<double>(p.size());
  };
  const auto out = pref::kto_loss({policy, torch::tensor(ref, f64), desirable}, z0,
                                  {.beta = beta, .desirable_weight = wd, .undesirable_weight = wu});
  CHECK(std::abs(out.loss.item<double>() - reference_fn(pol)) <= 1e-6);
  out.loss.backward();
  for (std::size_t i = 0; i < pol.size(); ++i) {
    auto up = pol, down = pol;
    up[i] += 1e-6;
    down[i] -= 1e-6;
    CHECK(std::abs(policy.grad()[static_cast<std::int64_t>(i)].item<double>() -
                   (reference_fn(up) - reference_fn(down)) / 2e-6) <= 1e-6);
  }
  CHECK(out.chosen_rewards.numel() + out.rejected_rewards.numel() == m);
  CHECK(out.metrics.baseline.item<double>() == Approx(z));
  // A negative mismatched KL estimate is clamped to 0.
  CHECK(pref::kto_kl_baseline(torch::tensor({-3.0}, f64), torch::tensor({-1.0}, f64)).item<double>() == 0.0);
}

TEST_CASE("BCO centres rewards on the running mean and matches a float64 re-implementation", "[preference][bco]") {
  // All rewards equal: delta equals them, every example costs log 2.
  pref::BcoRewardShift shift;
  pref::UnpairedLogProbs same{torch::tensor({-4.0, -4.0, -4.0}, f64), torch::tensor({-6.0, -6.0, -6.0}, f64),
                              torch::tensor({true, false, true})};
  const auto first = pref::bco_loss(same, shift);
  CHECK(shift.count == 1);
  CHECK(shift.mean == Approx(0.2));
  CHECK(first.loss.item<double>() == Approx(std::log(2.0)));
  // A second batch with mean reward 0.6: delta = (0.2 + 0.6) / 2.
  pref::UnpairedLogProbs second{torch::tensor({-1.0, -3.0}, f64).requires_grad_(), torch::tensor({-8.0, -8.0}, f64),
                                torch::tensor({true, false})};
  const auto out = pref::bco_loss(second, shift);
  CHECK(shift.mean == Approx(0.4));
  const double r0 = 0.7 - 0.4, r1 = 0.5 - 0.4;
  const double expected = (-log_sigmoid(r0) - log_sigmoid(-r1)) / 2;
  CHECK(std::abs(out.loss.item<double>() - expected) <= 1e-9);
  out.loss.backward();
  // delta carries no gradient: dL/dpolicy_0 = -0.1 * sigmoid(-r0) / 2, dL/dpolicy_1 = 0.1 * sigmoid(r1) / 2.
  CHECK(second.policy.grad()[0].item<double>() == Approx(-0.1 * sigmoid(-r0) / 2));
  CHECK(second.policy.grad()[1].item<double>() == Approx(0.1 * sigmoid(r1) / 2));
  CHECK(out.metrics.baseline.item<double>() == Approx(0.4));
  CHECK(out.metrics.accuracy.item<double>() == 0.5);  // desirable above delta, undesirable also above
}

TEST_CASE("reference-free DPO is DPO with zero reference log-probs", "[preference][dpo]") {
  const auto pairs = random_pairs(21, 6);
  const auto t = to_tensors(pairs, false);
  const auto free = pref::dpo_loss(pref::ReferenceFree{}.apply(t), {.beta = 0.2});
  double expected = 0.0;
  for (const Pair& p : pairs) expected += -log_sigmoid(0.2 * (p.pc - p.pr));
  CHECK(free.loss.item<double>() == Approx(expected / 6).epsilon(1e-12));
}

TEST_CASE("losses reject mismatched counts, non-finite log-probs and bad hyper-parameters", "[preference][errors]") {
  const auto good = to_tensors(random_pairs(3, 4), false);
  SECTION("mismatched chosen and rejected counts") {
    auto bad = good;
    bad.rejected = bad.rejected.narrow(0, 0, 3);
    CHECK_THROWS_WITH(pref::dpo_loss(bad),
                      Catch::StartsWith("dpo_loss: expected as many rejected as chosen log-probs (4), got shape [3]"));
    CHECK_THROWS_WITH(pref::simpo_loss(bad),
                      Catch::StartsWith("simpo_loss: expected as many rejected as chosen log-probs (4), got shape [3]"));
    auto ref = good;
    ref.reference_rejected = ref.reference_rejected.narrow(0, 0, 2);
    CHECK_THROWS_WITH(pref::ipo_loss(ref),
                      Catch::StartsWith("ipo_loss: expected reference_rejected of shape [4] (one per example), got [2]"));
    auto len = good;
    len.chosen_lengths = len.chosen_lengths.narrow(0, 0, 1);
    CHECK_THROWS_WITH(pref::orpo_loss(len),
                      Catch::StartsWith("orpo_loss: expected chosen_lengths of shape [4] (one per example), got [1]"));
    CHECK_THROWS_WITH(pref::dpo_loss(pref::PairLogProbs{}),
                      Catch::StartsWith("dpo_loss: expected chosen log-probs of shape [N] with N > 0, got []"));
  }
  SECTION("non-finite log-probs") {
    for (double v : {std::numeric_limits<double>::quiet_NaN(), -std::numeric_limits<double>::infinity()}) {
      auto bad = good;
      bad.chosen = bad.chosen.clone();
      bad.chosen[2] = v;
      CHECK_THROWS_WITH(pref::dpo_loss(bad), Catch::StartsWith("dpo_loss: expected finite chosen, got 1 non-finite value(s)"));
      CHECK_THROWS_WITH(pref::cpo_loss(bad), Catch::StartsWith("cpo_loss: expected finite chosen, got 1 non-finite value(s)"));
      auto ref = good;
      ref.reference_rejected = ref.reference_rejected.clone();
      ref.reference_rejected[0] = v;
      CHECK_THROWS_WITH(pref::hinge_loss(ref),
                        Catch::StartsWith("hinge_loss: expected finite reference_rejected, got 1 non-finite value(s)"));
    }
  }
  SECTION("beta <= 0 and other hyper-parameters") {
    using Loss = std::function<void(double)>;
    const std::vector<std::pair<std::string, Loss>> by_beta = {
        {"dpo_loss", [&](double b) { (void)pref::dpo_loss(good, {.beta = b}); }},
        {"robust_dpo_loss", [&](double b) { (void)pref::robust_dpo_loss(good, {.beta = b}); }},
        {"hinge_loss", [&](double b) { (void)pref::hinge_loss(good, {.beta = b}); }},
        {"simpo_loss", [&](double b) { (void)pref::simpo_loss(good, {.beta = b}); }},
        {"cpo_loss", [&](double b) { (void)pref::cpo_loss(good, {.beta = b}); }},
        {"rpo_loss", [&](double b) { (void)pref::rpo_loss(good, {.beta = b}); }},
    };
    for (const auto& [name, call] : by_beta) {
      CHECK_THROWS_WITH(call(0.0), Catch::StartsWith(name + ": expected beta > 0 and finite, got 0"));
      CHECK_THROWS_WITH(call(-0.5), Catch::StartsWith(name + ": expected beta > 0 and finite, got -0.5"));
    }
    CHECK_THROWS_WITH(pref::ipo_loss(good, {.tau = 0.0}), Catch::StartsWith("ipo_loss: expected tau > 0 and finite, got 0"));
    CHECK_THROWS_WITH(pref::orpo_loss(good, {.lambda = -1.0}),
                      Catch::StartsWith("orpo_loss: expected lambda > 0 and finite, got -1"));
    CHECK_THROWS_WITH(pref::dpo_loss(good, {.beta = 0.1, .label_smoothing = 0.6}),
                      Catch::StartsWith("dpo_loss: expected label_smoothing in [0, 0.5], got 0.6"));
    CHECK_THROWS_WITH(pref::robust_dpo_loss(good, {.beta = 0.1, .label_smoothing = 0.5}),
                      Catch::StartsWith("robust_dpo_loss: expected label_smoothing in [0, 0.5), got 0.5"));
    CHECK_THROWS_WITH(pref::simpo_loss(good, {.beta = 2.0, .gamma = -1.0}),
                      Catch::StartsWith("simpo_loss: expected gamma >= 0 and finite, got -1"));
    CHECK_THROWS_WITH(pref::rpo_loss(good, {.beta = 0.1, .alpha = -1.0}),
                      Catch::StartsWith("rpo_loss: expected alpha >= 0 and finite, got -1"));
  }
  SECTION("missing reference, bad lengths, probability one") {
    auto no_ref = good;
    no_ref.reference_chosen = torch::Tensor();
    CHECK_THROWS_WITH(pref::dpo_loss(no_ref),
                      Catch::StartsWith("dpo_loss: expected reference_chosen log-probs of shape [4], got an undefined tensor"));
    auto zero_len = good;
    zero_len.rejected_lengths = torch::zeros({4}, f64);
    CHECK_THROWS_WITH(pref::simpo_loss(zero_len), Catch::StartsWith("simpo_loss: expected rejected_lengths > 0, got 4 value(s) <= 0"));
    auto certain = good;
    certain.chosen = torch::zeros({4}, f64);
    CHECK_THROWS_WITH(pref::orpo_loss(certain),
                      Catch::StartsWith("orpo_loss: expected mean log-probs < 0 (probability < 1), got 4 value(s) >= 0"));
  }
  SECTION("unpaired losses") {
    pref::UnpairedLogProbs u{torch::zeros({3}, f64), torch::zeros({3}, f64), torch::tensor({true, false, true})};
    pref::BcoRewardShift shift;
    auto wrong = u;
    wrong.desirable = torch::tensor({true, false});
    CHECK_THROWS_WITH(pref::kto_loss(wrong, 0.0),
                      Catch::StartsWith("kto_loss: expected one desirable flag per example (3), got shape [2]"));
    wrong.desirable = torch::ones({3});
    CHECK_THROWS_WITH(pref::bco_loss(wrong, shift), Catch::StartsWith("bco_loss: expected bool desirable flags, got Float"));
    CHECK(shift.count == 0);
    auto nan = u;
    nan.reference = torch::full({3}, std::nan(""), f64);
    CHECK_THROWS_WITH(pref::kto_loss(nan, 0.0), Catch::StartsWith("kto_loss: expected finite reference, got 3 non-finite value(s)"));
    CHECK_THROWS_WITH(pref::kto_loss(u, -0.1), Catch::StartsWith("kto_loss: expected a KL baseline >= 0 and finite, got -0.1"));
    CHECK_THROWS_WITH(pref::kto_loss(u, 0.0, {.beta = 0.0}), Catch::StartsWith("kto_loss: expected beta > 0 and finite, got 0"));
    CHECK_THROWS_WITH(pref::kto_loss(u, 0.0, {.beta = 0.1, .desirable_weight = 0.0}),
                      Catch::StartsWith("kto_loss: expected desirable_weight and undesirable_weight > 0, got 0 and 1"));
    CHECK_THROWS_WITH(pref::bco_loss(u, shift, {.beta = -1.0}), Catch::StartsWith("bco_loss: expected beta > 0 and finite, got -1"));
    CHECK_THROWS_WITH(pref::kto_kl_baseline(torch::zeros({3}, f64), torch::zeros({2}, f64)),
                      Catch::StartsWith("kto_kl_baseline: expected reference of shape [3] (one per example), got [2]"));
  }
}
