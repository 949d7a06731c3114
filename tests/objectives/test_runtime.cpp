// The runtime entry (kaizen/objectives/runtime.hpp) against the compile-time calls it names: for every accepted
// loss_type (and the options that change the selected objective), the loss, its gradient and the metrics equal
// those of the hand-written compile-time call on the same random float64 inputs exactly (the same code runs).
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <kaizen/objectives/runtime.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/policy_gradient/token_masks.hpp>
#include <kaizen/policy_gradient/vespo.hpp>
#include <kaizen/preference/aot.hpp>
#include <kaizen/preference/apo.hpp>
#include <kaizen/preference/bco.hpp>
#include <kaizen/preference/cpo.hpp>
#include <kaizen/preference/discopop.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/exo.hpp>
#include <kaizen/preference/hinge.hpp>
#include <kaizen/preference/ipo.hpp>
#include <kaizen/preference/kto.hpp>
#include <kaizen/preference/nca.hpp>
#include <kaizen/preference/orpo.hpp>
#include <kaizen/preference/rpo.hpp>
#include <kaizen/preference/simpo.hpp>
#include <kaizen/preference/sppo.hpp>

namespace obj = kaizen::objectives;
namespace pg = kaizen::policy_gradient;
namespace pref = kaizen::preference;
using Catch::Contains;

namespace {

constexpr std::int64_t kRows = 6, kCols = 7;

/// Random float64 per-token inputs: ragged rows, junk (NaN / -inf) in the padding, per-sequence advantages.
pg::PolicyLossInputs random_policy_inputs(std::uint64_t seed) {
  torch::manual_seed(static_cast<std::int64_t>(seed));
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const auto lengths = torch::tensor({7, 3, 5, 1, 6, 4}, torch::kInt64);
  const auto mask = torch::arange(kCols).unsqueeze(0) < lengths.unsqueeze(1);
  const auto junk = [&](const torch::Tensor& t, double value) { return torch::where(mask, t, torch::full_like(t, value)); };
  const auto lp = -torch::rand({kRows, kCols}, f64) * 3 - 0.05;
  pg::PolicyLossInputs in;
  in.logprobs = junk(lp, -INFINITY);
  in.old_logprobs = junk(lp + 0.4 * torch::randn({kRows, kCols}, f64), std::numeric_limits<double>::quiet_NaN());
  in.ref_logprobs = junk(lp + 0.5 * torch::randn({kRows, kCols}, f64), INFINITY);
  in.sampler_logprobs = junk(in.old_logprobs + 0.3 * torch::randn({kRows, kCols}, f64), std::numeric_limits<double>::quiet_NaN());
  in.advantages = torch::randn({kRows}, f64);
  in.mask = mask;
  in.entropy = junk(torch::rand({kRows, kCols}, f64) * 2, std::numeric_limits<double>::quiet_NaN());
  return in;
}

struct Outcome {
  double loss;
  torch::Tensor grad;
  pg::PolicyLossMetrics metrics;
};

/// Runs `loss` on fresh leaves of the inputs and returns the loss, d loss / d logprobs and the metrics.
Outcome run(const pg::PolicyLossInputs& inputs, const std::function<pg::PolicyLossResult(const pg::PolicyLossInputs&)>& loss) {
  pg::PolicyLossInputs in = inputs;
  in.logprobs = inputs.logprobs.detach().clone().requires_grad_(true);
  const auto out = loss(in);
  out.loss.backward();
  return {out.loss.item<double>(), in.logprobs.grad().clone(), out.metrics};
}

void require_same(const Outcome& runtime, const Outcome& compiled) {
  CHECK(std::isfinite(runtime.loss));
  CHECK(runtime.loss == compiled.loss);  // exact: the same instantiation runs
  CHECK(torch::equal(runtime.grad, compiled.grad));
  CHECK(torch::isfinite(runtime.grad).all().item<bool>());
  const auto& a = runtime.metrics;
  const auto& b = compiled.metrics;
  CHECK(a.loss == b.loss);
  CHECK(a.policy_loss == b.policy_loss);
  CHECK(a.kl == b.kl);
  CHECK(a.entropy == b.entropy);
  CHECK(a.clip_fraction_low == b.clip_fraction_low);
  CHECK(a.clip_fraction_high == b.clip_fraction_high);
  CHECK(a.clip_fraction_dual == b.clip_fraction_dual);
  CHECK(a.ratio_mean == b.ratio_mean);
  CHECK(a.ratio_max == b.ratio_max);
  CHECK(a.importance_weight_mean == b.importance_weight_mean);
  CHECK(a.tokens == b.tokens);
  CHECK(a.sequences == b.sequences);
}

/// One runtime config against its compile-time objective.
template <class Objective>
void check_policy(const obj::PolicyLossConfig& config, const Objective& objective, const std::string& expected_type,
                  std::optional<double> normaliser = std::nullopt) {
  INFO("loss_type " << config.loss_type << " -> " << expected_type);
  CHECK(obj::resolve(config).describe() == expected_type);
  for (const std::uint64_t seed : {1u, 2u}) {
    const auto inputs = random_policy_inputs(seed);
    require_same(run(inputs, [&](const auto& in) { return obj::policy_loss(config, in, normaliser); }),
                 run(inputs, [&](const auto& in) { return pg::policy_loss(in, objective, normaliser); }));
  }
}

using pg::AsymmetricClip, pg::SymmetricClip, pg::TokenRatio, pg::SequenceRatio, pg::GeometricRatio, pg::NoKl,
    pg::KlLoss, pg::KlEstimator, pg::TokenMean, pg::SeqMeanTokenMean, pg::SeqMeanTokenSum, pg::SeqMeanTokenSumNorm;
using K3 = KlLoss<KlEstimator::k3>;
using K3i = KlLoss<KlEstimator::k3_importance>;

}  // namespace

TEST_CASE("runtime policy losses equal the compile-time objectives for every loss_type", "[objectives][policy_gradient]") {
  check_policy({.loss_type = "grpo"}, pg::Objective<TokenRatio, SymmetricClip, NoKl, SeqMeanTokenMean>{},
               "Objective<TokenRatio, SymmetricClip, NoKl, SeqMeanTokenMean>");
  check_policy({.loss_type = "bnpo", .epsilon = 0.25}, pg::Objective<TokenRatio, SymmetricClip, NoKl, TokenMean>{.clip = {0.25}},
               "Objective<TokenRatio, SymmetricClip, NoKl, TokenMean>");
  check_policy({.loss_type = "dr_grpo", .max_completion_length = kCols},
               pg::Objective<TokenRatio, SymmetricClip, NoKl, SeqMeanTokenSumNorm>{.aggregation = {.constant = kCols}},
               "Objective<TokenRatio, SymmetricClip, NoKl, SeqMeanTokenSumNorm>");
  check_policy({.loss_type = "dapo", .epsilon_high = 0.28}, pg::DapoObjective{},
               "Objective<TokenRatio, AsymmetricClip, NoKl, TokenMean>", /*num_items_in_batch*/ 71.0);
  check_policy({.loss_type = "dapo"}, pg::Objective<TokenRatio, SymmetricClip, NoKl, TokenMean>{},
               "Objective<TokenRatio, SymmetricClip, NoKl, TokenMean>");
  check_policy({.loss_type = "luspo"}, pg::Objective<SequenceRatio, SymmetricClip, NoKl, SeqMeanTokenSum>{},
               "Objective<SequenceRatio, SymmetricClip, NoKl, SeqMeanTokenSum>");
  check_policy({.loss_type = "luspo", .importance_sampling_level = "sequence", .epsilon_high = 0.3},
               pg::LuspoObjective{.clip = {0.2, 0.3}}, "Objective<SequenceRatio, AsymmetricClip, NoKl, SeqMeanTokenSum>");
  // CISPO: TRL's epsilon_high is the absolute cap (default 5 here, as ScaleRL / TRL's docs); published loss value.
  check_policy({.loss_type = "cispo"}, pg::CispoObjective{.clip = pg::cispo_cap(5.0)},
               "Objective<TokenRatio, CispoClip, NoKl, TokenMean>");
  check_policy({.loss_type = "cispo", .epsilon_high = 1.1, .cispo_loss_value = "weight"},
               pg::CispoObjective{.clip = pg::cispo_cap(1.1, pg::CispoLossValue::weight)},
               "Objective<TokenRatio, CispoClip, NoKl, TokenMean>", 50.0);
  check_policy({.loss_type = "sapo"}, pg::SapoObjective{}, "Objective<TokenRatio, SapoGate, NoKl, SeqMeanTokenMean>");
  check_policy({.loss_type = "sapo", .sapo_temperature_pos = 0.5, .sapo_temperature_neg = 2.0},
               pg::SapoObjective{.clip = {.tau_positive = 0.5, .tau_negative = 2.0}},
               "Objective<TokenRatio, SapoGate, NoKl, SeqMeanTokenMean>");
  check_policy({.loss_type = "gmpo", .epsilon = 0.4}, pg::kGmpo, "Objective<GeometricRatio, SymmetricClip, NoKl, SeqMeanTokenMean>");
  check_policy({.loss_type = "gmpo", .epsilon = 0.3, .epsilon_high = 0.5},
               pg::Objective<GeometricRatio, AsymmetricClip, NoKl, SeqMeanTokenMean>{.clip = {0.3, 0.5}},
               "Objective<GeometricRatio, AsymmetricClip, NoKl, SeqMeanTokenMean>");
}

TEST_CASE("runtime VESPO equals vespo_loss", "[objectives][policy_gradient]") {
  const obj::PolicyLossConfig config{.loss_type = "vespo", .vespo_k_pos = 1.5, .vespo_lambda_neg = 2.5};
  CHECK(obj::resolve(config).describe() == "vespo_loss<TokenMean>");
  const auto inputs = random_policy_inputs(3);
  for (const std::optional<double> n : {std::optional<double>{}, std::optional<double>{40.0}}) {
    auto a = inputs;
    a.logprobs = inputs.logprobs.detach().clone().requires_grad_(true);
    const auto runtime = obj::policy_loss(config, a, n);
    runtime.loss.backward();
    auto b = inputs;
    b.logprobs = inputs.logprobs.detach().clone().requires_grad_(true);
    const auto compiled = pg::vespo_loss(b.logprobs, b.old_logprobs, b.advantages, b.mask,
                                         {.k_positive = 1.5, .lambda_positive = 3.0, .k_negative = 3.0, .lambda_negative = 2.5},
                                         TokenMean{}, n);
    compiled.backward();
    CHECK(runtime.loss.item<double>() == compiled.item<double>());
    CHECK(torch::equal(a.logprobs.grad(), b.logprobs.grad()));
    CHECK(runtime.metrics.loss == compiled.item<double>());
    CHECK(runtime.metrics.tokens == 26.0);
    CHECK(runtime.metrics.sequences == 6.0);
  }
}

TEST_CASE("runtime options select the ratio level, KL estimator, clip, cap, aggregation and masks", "[objectives][policy_gradient]") {
  // GSPO: grpo at the sequence level, as TRL.
  check_policy({.loss_type = "grpo", .importance_sampling_level = "sequence", .epsilon = 3e-4, .epsilon_high = 4e-4},
               pg::kGspo, "Objective<SequenceRatio, AsymmetricClip, NoKl, SeqMeanTokenMean>");
  check_policy({.loss_type = "bnpo", .importance_sampling_level = "sequence"},
               pg::Objective<SequenceRatio, SymmetricClip, NoKl, TokenMean>{},
               "Objective<SequenceRatio, SymmetricClip, NoKl, TokenMean>");
  // KL: beta > 0 gives TRL's default use_bias_correction_kl = true, i.e. k3 times the ratio.
  check_policy({.loss_type = "grpo", .beta = 0.04}, pg::Objective<TokenRatio, SymmetricClip, K3i, SeqMeanTokenMean>{.kl = {.coefficient = 0.04}},
               "Objective<TokenRatio, SymmetricClip, KlLoss<KlEstimator::k3_importance>, SeqMeanTokenMean>");
  check_policy({.loss_type = "grpo", .beta = 0.04, .use_bias_correction_kl = false},
               pg::Objective<TokenRatio, SymmetricClip, K3, SeqMeanTokenMean>{.kl = {.coefficient = 0.04}},
               "Objective<TokenRatio, SymmetricClip, KlLoss<KlEstimator::k3>, SeqMeanTokenMean>");
  check_policy({.loss_type = "grpo", .beta = 0.1, .kl_estimator = "k3", .kl_clamp = 10},
               pg::Objective<TokenRatio, SymmetricClip, K3, SeqMeanTokenMean>{.kl = {.coefficient = 0.1, .clamp = 10}},
               "Objective<TokenRatio, SymmetricClip, KlLoss<KlEstimator::k3>, SeqMeanTokenMean>");
  check_policy({.loss_type = "bnpo", .beta = 0.2, .kl_estimator = "k1"},
               pg::Objective<TokenRatio, SymmetricClip, KlLoss<KlEstimator::k1>, TokenMean>{.kl = {.coefficient = 0.2}},
               "Objective<TokenRatio, SymmetricClip, KlLoss<KlEstimator::k1>, TokenMean>");
  check_policy({.loss_type = "dapo", .epsilon_high = 0.28, .beta = 0.2, .kl_estimator = "k2"},
               pg::Objective<TokenRatio, AsymmetricClip, KlLoss<KlEstimator::k2>, TokenMean>{.kl = {.coefficient = 0.2}},
               "Objective<TokenRatio, AsymmetricClip, KlLoss<KlEstimator::k2>, TokenMean>");
  check_policy({.loss_type = "luspo", .beta = 0.05, .kl_estimator = "k3_importance"},
               pg::Objective<SequenceRatio, SymmetricClip, K3i, SeqMeanTokenSum>{.kl = {.coefficient = 0.05}},
               "Objective<SequenceRatio, SymmetricClip, KlLoss<KlEstimator::k3_importance>, SeqMeanTokenSum>");
  check_policy({.loss_type = "sapo", .beta = 0.05, .use_bias_correction_kl = false},
               pg::Objective<TokenRatio, pg::SapoGate, K3, SeqMeanTokenMean>{.kl = {.coefficient = 0.05}},
               "Objective<TokenRatio, SapoGate, KlLoss<KlEstimator::k3>, SeqMeanTokenMean>");
  check_policy({.loss_type = "cispo", .epsilon_high = 3.0, .beta = 0.05},
               pg::Objective<TokenRatio, pg::CispoClip, K3i, TokenMean>{.clip = pg::cispo_cap(3.0), .kl = {.coefficient = 0.05}},
               "Objective<TokenRatio, CispoClip, KlLoss<KlEstimator::k3_importance>, TokenMean>");
  // delta (two-sided clip) and the dual clip.
  check_policy({.loss_type = "grpo", .delta = 1.3}, pg::Objective<TokenRatio, SymmetricClip, NoKl, SeqMeanTokenMean>{.ratio_cap = 1.3},
               "Objective<TokenRatio, SymmetricClip, NoKl, SeqMeanTokenMean>");
  check_policy({.loss_type = "dapo", .epsilon_high = 0.28, .dual_clip = 3.0},
               pg::Objective<TokenRatio, pg::DualClip, NoKl, TokenMean>{.clip = {0.2, 0.28, 3.0}},
               "Objective<TokenRatio, DualClip, NoKl, TokenMean>");
  check_policy({.loss_type = "grpo", .importance_sampling_level = "sequence", .dual_clip = 2.0},
               pg::Objective<SequenceRatio, pg::DualClip, NoKl, SeqMeanTokenMean>{.clip = {0.2, 0.2, 2.0}},
               "Objective<SequenceRatio, DualClip, NoKl, SeqMeanTokenMean>");
  // The aggregation named explicitly, the entropy bonus and truncated importance sampling.
  check_policy({.loss_type = "grpo", .loss_aggregation = "seq_mean_token_sum_norm", .max_completion_length = 12},
               pg::Objective<TokenRatio, SymmetricClip, NoKl, SeqMeanTokenSumNorm>{.aggregation = {.constant = 12}},
               "Objective<TokenRatio, SymmetricClip, NoKl, SeqMeanTokenSumNorm>");
  check_policy({.loss_type = "gmpo", .loss_aggregation = "token_mean"},
               pg::Objective<GeometricRatio, SymmetricClip, NoKl, TokenMean>{},
               "Objective<GeometricRatio, SymmetricClip, NoKl, TokenMean>");
  check_policy({.loss_type = "bnpo", .entropy_coef = 0.01},
               pg::Objective<TokenRatio, SymmetricClip, NoKl, TokenMean>{.entropy_coefficient = 0.01},
               "Objective<TokenRatio, SymmetricClip, NoKl, TokenMean>");
  check_policy({.loss_type = "grpo", .vllm_importance_sampling_correction = true,
                .vllm_importance_sampling_mode = "token_truncate", .vllm_importance_sampling_clip_max = 1.2},
               pg::Objective<TokenRatio, SymmetricClip, NoKl, SeqMeanTokenMean>{
                   .importance = {.action = pg::ImportanceAction::truncate, .level = pg::ImportanceLevel::token, .cap = 1.2}},
               "Objective<TokenRatio, SymmetricClip, NoKl, SeqMeanTokenMean>");
  check_policy({.loss_type = "grpo", .vllm_importance_sampling_correction = true},
               pg::Objective<TokenRatio, SymmetricClip, NoKl, SeqMeanTokenMean>{
                   .importance = {.action = pg::ImportanceAction::mask, .level = pg::ImportanceLevel::sequence, .cap = 3.0}},
               "Objective<TokenRatio, SymmetricClip, NoKl, SeqMeanTokenMean>");
}

TEST_CASE("runtime token masks equal the policy_token_mask built by hand", "[objectives][policy_gradient]") {
  const obj::PolicyLossConfig config{.loss_type = "grpo", .beta = 0.04, .use_bias_correction_kl = false,
                                     .top_entropy_quantile = 0.5, .off_policy_mask_threshold = 0.05};
  const auto inputs = random_policy_inputs(4);
  const auto keep_entropy = pg::high_entropy_mask(inputs.entropy, inputs.mask, 0.5);
  const auto keep_sequence =
      pg::off_policy_sequence_mask(inputs.advantages, inputs.logprobs, inputs.sampler_logprobs, inputs.mask, 0.05);
  // The case means something only if each mask drops some of what it sees and keeps the rest.
  CHECK(keep_sequence.sum().item<double>() > 0);
  CHECK(keep_sequence.sum().item<double>() < kRows);
  CHECK(keep_entropy.sum().item<double>() < inputs.mask.sum().item<double>());
  const pg::Objective<TokenRatio, SymmetricClip, K3, SeqMeanTokenMean> objective{.kl = {.coefficient = 0.04}};
  require_same(run(inputs, [&](const auto& in) { return obj::policy_loss(config, in); }), run(inputs, [&](auto in) {
                 in.policy_token_mask = keep_entropy * keep_sequence.unsqueeze(1);
                 return pg::policy_loss(in, objective);
               }));
  // Without the masks the loss differs (the masks are not ignored).
  const auto unmasked = run(inputs, [&](const auto& in) { return pg::policy_loss(in, objective); });
  CHECK(unmasked.loss != run(inputs, [&](const auto& in) { return obj::policy_loss(config, in); }).loss);
}

// --- preference -------------------------------------------------------------------------------------------------

namespace {

pref::PairLogProbs random_pairs(std::uint64_t seed) {
  torch::manual_seed(static_cast<std::int64_t>(seed));
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  constexpr std::int64_t n = 5;
  pref::PairLogProbs p;
  p.chosen_lengths = torch::randint(3, 20, {n}, f64);
  p.rejected_lengths = torch::randint(3, 20, {n}, f64);
  p.chosen = -torch::rand({n}, f64) * p.chosen_lengths * 0.8 - 0.1;
  p.rejected = -torch::rand({n}, f64) * p.rejected_lengths * 0.8 - 0.1;
  p.reference_chosen = p.chosen + 0.6 * torch::randn({n}, f64);
  p.reference_rejected = p.rejected + 0.6 * torch::randn({n}, f64);
  return p;
}

struct PrefOutcome {
  double loss;
  torch::Tensor grad_chosen, grad_rejected, per_example;
  pref::PreferenceLoss result;
};

PrefOutcome run_pairs(const pref::PairLogProbs& pairs, const std::function<pref::PreferenceLoss(const pref::PairLogProbs&)>& loss) {
  pref::PairLogProbs p = pairs;
  p.chosen = pairs.chosen.detach().clone().requires_grad_(true);
  p.rejected = pairs.rejected.detach().clone().requires_grad_(true);
  auto out = loss(p);
  out.loss.backward();
  return {out.loss.item<double>(), p.chosen.grad().clone(), p.rejected.grad().clone(), out.per_example.detach(), out};
}

void require_same_metrics(const pref::PreferenceMetrics& a, const pref::PreferenceMetrics& b) {
  const auto same = [](const torch::Tensor& x, const torch::Tensor& y) {
    return x.defined() == y.defined() && (!x.defined() || torch::equal(x, y));
  };
  CHECK(same(a.chosen_reward, b.chosen_reward));
  CHECK(same(a.rejected_reward, b.rejected_reward));
  CHECK(same(a.margin, b.margin));
  CHECK(same(a.accuracy, b.accuracy));
  CHECK(same(a.nll, b.nll));
  CHECK(same(a.log_odds_ratio, b.log_odds_ratio));
  CHECK(same(a.baseline, b.baseline));
}

void check_pref(const obj::PreferenceLossConfig& config,
                const std::function<pref::PreferenceLoss(const pref::PairLogProbs&)>& compiled) {
  INFO("loss_type " << config.loss_type);
  const auto pairs = random_pairs(7);
  const auto a = run_pairs(pairs, [&](const auto& p) { return obj::preference_loss(config, p); });
  const auto b = run_pairs(pairs, compiled);
  CHECK(std::isfinite(a.loss));
  CHECK(a.loss == b.loss);
  CHECK(torch::equal(a.grad_chosen, b.grad_chosen));
  CHECK(torch::equal(a.grad_rejected, b.grad_rejected));
  CHECK(torch::equal(a.per_example, b.per_example));
  CHECK(torch::equal(a.result.chosen_rewards, b.result.chosen_rewards));
  CHECK(torch::equal(a.result.rejected_rewards, b.result.rejected_rewards));
  require_same_metrics(a.result.metrics, b.result.metrics);
}

}  // namespace

TEST_CASE("runtime preference losses equal the compile-time calls for every paired loss_type", "[objectives][preference]") {
  check_pref({}, [](const auto& p) { return pref::dpo_loss(p); });
  check_pref({.loss_type = "sigmoid", .beta = 0.3, .label_smoothing = 0.1},
             [](const auto& p) { return pref::dpo_loss(p, {.beta = 0.3, .label_smoothing = 0.1}); });
  check_pref({.loss_type = "sigmoid", .f_divergence_type = "forward_kl"},
             [](const auto& p) { return pref::dpo_loss(p, {.divergence = {.kind = pref::FDivergence::forward_kl}}); });
  check_pref({.loss_type = "sigmoid", .f_divergence_type = "js_divergence"},
             [](const auto& p) { return pref::dpo_loss(p, {.divergence = {.kind = pref::FDivergence::js}}); });
  check_pref({.loss_type = "sigmoid", .f_divergence_type = "alpha_divergence", .f_alpha_divergence_coef = 0.3},
             [](const auto& p) { return pref::dpo_loss(p, {.divergence = {.kind = pref::FDivergence::alpha, .alpha = 0.3}}); });
  check_pref({.loss_type = "sigmoid_norm"}, [](const auto& p) { return pref::dpo_norm_loss(p); });
  check_pref({.loss_type = "sigmoid_norm", .f_divergence_type = "js_divergence"},
             [](const auto& p) { return pref::dpo_norm_loss(p, {.divergence = {.kind = pref::FDivergence::js}}); });
  check_pref({.loss_type = "hinge", .beta = 0.5}, [](const auto& p) { return pref::hinge_loss(p, {.beta = 0.5}); });
  check_pref({.loss_type = "ipo"}, [](const auto& p) { return pref::ipo_loss(p, {.tau = 0.1, .length_normalize = true}); });
  check_pref({.loss_type = "ipo", .ipo_length_normalize = false}, [](const auto& p) { return pref::ipo_loss(p); });
  check_pref({.loss_type = "robust", .label_smoothing = 0.1},
             [](const auto& p) { return pref::robust_dpo_loss(p, {.beta = 0.1, .label_smoothing = 0.1}); });
  check_pref({.loss_type = "exo_pair", .label_smoothing = 1e-3},
             [](const auto& p) { return pref::exo_loss(p, {.beta = 0.1, .epsilon = 1e-3}); });
  check_pref({.loss_type = "nca_pair"}, [](const auto& p) { return pref::nca_loss(p); });
  check_pref({.loss_type = "bco_pair"}, [](const auto& p) { return pref::bco_pair_loss(p); });
  check_pref({.loss_type = "sppo_hard"}, [](const auto& p) { return pref::sppo_hard_loss(p); });
  check_pref({.loss_type = "aot", .label_smoothing = 0.1},
             [](const auto& p) { return pref::aot_loss(p, {.beta = 0.1, .label_smoothing = 0.1}); });
  check_pref({.loss_type = "aot_unpaired"},
             [](const auto& p) { return pref::aot_loss(p, {.variant = pref::AotVariant::unpaired}); });
  check_pref({.loss_type = "apo_zero"}, [](const auto& p) { return pref::apo_loss(p); });
  check_pref({.loss_type = "apo_down"}, [](const auto& p) { return pref::apo_loss(p, {.anchor = pref::ApoAnchor::down}); });
  check_pref({.loss_type = "discopop", .discopop_tau = 0.1},
             [](const auto& p) { return pref::discopop_loss(p, {.beta = 0.1, .tau = 0.1}); });
  check_pref({.loss_type = "simpo", .beta = 2.0, .label_smoothing = 0.1, .simpo_gamma = 0.7},
             [](const auto& p) { return pref::simpo_loss(p, {.beta = 2.0, .gamma = 0.7, .label_smoothing = 0.1}); });
  check_pref({.loss_type = "cpo", .cpo_alpha = 0.5}, [](const auto& p) {
    return pref::cpo_loss(p, {.beta = 0.1, .alpha = 0.5, .nll = {.normalisation = pref::NllNormalisation::batch_tokens}});
  });
  check_pref({.loss_type = "rpo", .rpo_alpha = 0.7}, [](const auto& p) {
    return pref::rpo_loss(p, {.beta = 0.1, .alpha = 0.7, .nll = {.normalisation = pref::NllNormalisation::batch_tokens}});
  });
  check_pref({.loss_type = "rpo", .nll_normalisation = "per_sequence"},
             [](const auto& p) { return pref::rpo_loss(p, {.beta = 0.1, .alpha = 1.0}); });
  check_pref({.loss_type = "orpo", .beta = 0.2}, [](const auto& p) {
    return pref::orpo_loss(p, {.lambda = 0.2, .nll = {.normalisation = pref::NllNormalisation::batch_tokens}});
  });
}

TEST_CASE("runtime unpaired preference losses equal kto_loss", "[objectives][preference]") {
  torch::manual_seed(11);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const pref::UnpairedLogProbs batch{.policy = -torch::rand({8}, f64) * 10,
                                     .reference = -torch::rand({8}, f64) * 10,
                                     .desirable = torch::tensor({true, false, true, true, false, false, true, false})};
  const auto z0 = torch::tensor(0.3, f64);
  const obj::PreferenceLossConfig kto{.loss_type = "kto", .beta = 0.2, .desirable_weight = 1.5, .undesirable_weight = 0.8};
  const auto a = obj::preference_loss(kto, batch, z0);
  const auto b = pref::kto_loss(batch, z0, {.beta = 0.2, .desirable_weight = 1.5, .undesirable_weight = 0.8});
  CHECK(a.loss.item<double>() == b.loss.item<double>());
  CHECK(torch::equal(a.per_example, b.per_example));
  require_same_metrics(a.metrics, b.metrics);
  const obj::PreferenceLossConfig apo{.loss_type = "apo_zero_unpaired", .desirable_weight = 2.0};
  const auto c = obj::preference_loss(apo, batch);
  const auto d = pref::kto_loss(batch, {.beta = 0.1, .desirable_weight = 2.0, .loss = pref::KtoVariant::apo_zero_unpaired});
  CHECK(c.loss.item<double>() == d.loss.item<double>());
  CHECK(torch::equal(c.per_example, d.per_example));
  CHECK_THROWS_WITH(obj::preference_loss(kto, batch), Contains("kto needs the KL baseline z0"));
  CHECK_THROWS_WITH(obj::preference_loss(apo, batch, z0), Contains("apo_zero_unpaired has no KL baseline"));
  CHECK_THROWS_WITH(obj::preference_loss(obj::PreferenceLossConfig{}, batch),
                    Contains("sigmoid takes pairs (PairLogProbs), got unpaired examples"));
  CHECK_THROWS_WITH(obj::preference_loss(kto, random_pairs(1)), Contains("kto takes unpaired examples"));
}

TEST_CASE("every accepted loss_type is covered by the equality tests above", "[objectives]") {
  // The lists the runtime accepts; the test cases above name each of them (a new name must get a case).
  CHECK(obj::policy_loss_types().size() == 9);
  CHECK(obj::preference_loss_types().size() == 20);
  for (const auto name : obj::policy_loss_types()) {
    INFO(name);
    CHECK_NOTHROW(obj::resolve({.loss_type = std::string(name)}));
  }
}
