// Gradient accumulation over micro-batches and bf16 mixed precision in the policy-gradient update
// (loop/update.hpp, loop/precision.hpp). Oracles: the full-batch loss and gradients of the same objective
// (accumulation must reproduce them under every aggregation mode), and the same micro-batches divided by
// their own normaliser (the wrong rule, which must differ where the modes make it matter).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/precision.hpp>
#include <kaizen/loop/update.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/policy_gradient/aggregation.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>

#include "loop_test_support.hpp"

namespace {

namespace pg = kaizen::policy_gradient;
namespace loop = kaizen::loop;
using kaizen::TokenBatch;
using kaizen::lm::LlamaConfig;
using kaizen::lm::LlamaModel;
using kaizen_test::kOneThread;

constexpr std::int64_t kGroup = 2;
constexpr std::int64_t kGroups = 4;
constexpr std::int64_t kVocab = 24;

LlamaModel make_model(torch::Dtype dtype, std::uint64_t seed) {
  torch::manual_seed(seed);
  LlamaConfig c;
  c.vocab_size = kVocab;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 32;
  LlamaModel m(c);
  m.to(dtype);
  return m;
}

/// 8 rows (4 groups of 2) with prompts of 2-4 tokens and completions of 1-9 tokens, so token counts differ
/// between rows and between micro-batches (the case where the normaliser rule matters).
TokenBatch make_batch() {
  torch::manual_seed(5);
  std::vector<kaizen::Rollout> rollouts(static_cast<std::size_t>(kGroup * kGroups));
  const std::int64_t completion_lengths[] = {1, 9, 3, 7, 2, 2, 8, 5};
  for (std::size_t i = 0; i < rollouts.size(); ++i) {
    auto& r = rollouts[i];
    const std::int64_t prompt = 2 + static_cast<std::int64_t>(i % 3);
    for (std::int64_t t = 0; t < prompt; ++t) r.prompt.push_back(torch::randint(kVocab, {1}).item<std::int64_t>());
    for (std::int64_t t = 0; t < completion_lengths[i]; ++t)
      r.completion.tokens.push_back(torch::randint(kVocab, {1}).item<std::int64_t>());
    r.group = static_cast<std::int64_t>(i) / kGroup;
  }
  return kaizen::collate(std::span<const kaizen::Rollout>(rollouts), {.vocab_size = kVocab, .max_length = 32});
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

struct LossAndGrads {
  double loss = 0.0;
  std::vector<torch::Tensor> grads;
};

/// The loss of `objective` summed over micro-batches of `rows_per_micro` rows (the whole batch when it is
/// the batch size), each divided by `normaliser` (nullopt: the micro-batch's own), and the summed gradients.
template <class Objective>
LossAndGrads accumulate(LlamaModel& model, const TokenBatch& batch, const torch::Tensor& old, const torch::Tensor& ref,
                        const torch::Tensor& adv, const Objective& objective, std::int64_t rows_per_micro,
                        std::optional<double> normaliser) {
  for (auto& p : model.parameters()) p.mutable_grad() = torch::Tensor();
  LossAndGrads out;
  for (std::int64_t start = 0; start < batch.batch_size(); start += rows_per_micro) {
    const std::int64_t n = std::min(rows_per_micro, batch.batch_size() - start);
    const torch::Tensor index = torch::arange(start, start + n, torch::kLong);
    const TokenBatch mb = loop::select_rows(batch, index);
    const pg::PolicyLossResult r = pg::policy_loss(loop::policy_logprobs(model, mb), old.index_select(0, index),
                                                   ref.index_select(0, index), adv.index_select(0, index), mb.completion_mask,
                                                   objective, normaliser);
    r.loss.backward();
    out.loss += r.loss.item<double>();
  }
  for (auto& p : model.parameters()) out.grads.push_back(p.grad().clone());
  return out;
}

template <class Aggregate>
void check_accumulation(Aggregate aggregation, const char* name, bool own_normaliser_differs) {
  using Objective = pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::KlLoss<pg::KlEstimator::k3>, Aggregate>;
  Objective objective;
  objective.aggregation = aggregation;
  objective.kl.coefficient = 0.05;
  const TokenBatch batch = make_batch();
  for (const auto& [dtype, tolerance] : {std::pair{torch::kFloat, 1e-6}, std::pair{torch::kDouble, 1e-12}}) {
    INFO(name << ", " << (dtype == torch::kFloat ? "float32" : "float64"));
    LlamaModel model = make_model(dtype, 3);
    LlamaModel reference = make_model(dtype, 4);
    const torch::Tensor old = loop::frozen_logprobs(model, batch) +
                              0.05 * torch::randn({batch.batch_size(), batch.length()}, dtype) * batch.completion_mask;
    const torch::Tensor ref = loop::frozen_logprobs(reference, batch);
    const torch::Tensor adv = torch::randn({batch.batch_size()}, dtype);
    const double n_full = pg::loss_normaliser(aggregation, batch.completion_mask);

    const LossAndGrads full = accumulate(model, batch, old, ref, adv, objective, batch.batch_size(), std::nullopt);
    double largest = 0.0;
    for (const auto& g : full.grads) largest = std::max(largest, g.abs().max().item<double>());
    REQUIRE(largest > 1e-4);  // the gradients compared are not all zero
    for (const std::int64_t rows : {kGroup, 3 * kGroup, std::int64_t{1}}) {  // 4 micro, uneven 6 + 2, per row
      INFO("micro-batches of " << rows << " rows");
      double n_sum = 0.0;
      for (std::int64_t s = 0; s < batch.batch_size(); s += rows)
        n_sum += pg::loss_normaliser(aggregation,
                                     batch.completion_mask.narrow(0, s, std::min(rows, batch.batch_size() - s)));
      CHECK(n_sum == n_full);  // the normaliser is additive over micro-batches
      const LossAndGrads acc = accumulate(model, batch, old, ref, adv, objective, rows, n_full);
      CHECK(std::abs(acc.loss - full.loss) <= tolerance);
      REQUIRE(acc.grads.size() == full.grads.size());
      double worst = 0.0;
      for (std::size_t i = 0; i < acc.grads.size(); ++i) worst = std::max(worst, max_abs_diff(acc.grads[i], full.grads[i]));
      CHECK(worst <= tolerance);
      // The wrong rule (each micro-batch divided by its own normaliser) does not give the full-batch loss.
      if (own_normaliser_differs) {
        const LossAndGrads own = accumulate(model, batch, old, ref, adv, objective, rows, std::nullopt);
        CHECK(std::abs(own.loss - full.loss) > 1e-3);
      }
    }
  }
}

}  // namespace

TEST_CASE("Accumulation over micro-batches equals the full batch under token-mean", "[loop][accumulation]") {
  REQUIRE(kOneThread);
  check_accumulation(pg::TokenMean{}, "token-mean", true);
}

TEST_CASE("Accumulation over micro-batches equals the full batch under seq-mean-token-mean", "[loop][accumulation]") {
  REQUIRE(kOneThread);
  check_accumulation(pg::SeqMeanTokenMean{}, "seq-mean-token-mean", true);
}

TEST_CASE("Accumulation over micro-batches equals the full batch under seq-mean-token-sum", "[loop][accumulation]") {
  REQUIRE(kOneThread);
  check_accumulation(pg::SeqMeanTokenSum{}, "seq-mean-token-sum", true);
}

TEST_CASE("Accumulation over micro-batches equals the full batch under the constant normaliser of Dr. GRPO",
          "[loop][accumulation]") {
  REQUIRE(kOneThread);
  check_accumulation(pg::SeqMeanTokenSumNorm{.constant = 16.0}, "seq-mean-token-sum-norm", true);
}

namespace {

/// Runs one policy_gradient_update (2 epochs, mini-batches of 2 groups) on a copy of `start` and returns it.
template <class Objective>
std::pair<loop::PolicyGradientStats, LlamaModel> run_update(LlamaModel& start, const TokenBatch& batch,
                                                            const torch::Tensor& old, const torch::Tensor& ref,
                                                            const torch::Tensor& adv, const Objective& objective,
                                                            loop::PolicyGradientUpdateOptions options) {
  LlamaModel model = make_model(start.parameters().front().scalar_type(), 99);
  model.copy_from(start);
  const std::vector<torch::Tensor> params = model.parameters();
  torch::optim::AdamW optimizer = loop::make_adamw(params, {.learning_rate = 1e-2});
  kaizen::Rng rng;
  rng.seed(7);
  options.group_size = kGroup;
  options.epochs = 2;
  options.minibatch_groups = 2;
  const auto stats = loop::policy_gradient_update(model, optimizer, params, batch, old, ref, adv, {}, objective, options, rng);
  return {stats, std::move(model)};
}

}  // namespace

TEST_CASE("policy_gradient_update with micro_batch_groups takes the same steps as without", "[loop][accumulation]") {
  REQUIRE(kOneThread);
  const TokenBatch batch = make_batch();
  // float64, so that AdamW's first steps (g / (|g| + ε)) do not amplify rounding: the parameters after
  // 4 updates agree to 1e-10, and so do the reported metrics.
  LlamaModel start = make_model(torch::kDouble, 3);
  LlamaModel reference = make_model(torch::kDouble, 4);
  const torch::Tensor old = loop::frozen_logprobs(start, batch);
  const torch::Tensor ref = loop::frozen_logprobs(reference, batch);
  const torch::Tensor adv = torch::randn({batch.batch_size()}, torch::kDouble);
  pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::KlLoss<pg::KlEstimator::k3>, pg::TokenMean> objective;
  objective.kl.coefficient = 0.05;
  auto [whole_stats, whole] = run_update(start, batch, old, ref, adv, objective, {});
  auto [micro_stats, micro] = run_update(start, batch, old, ref, adv, objective, {.micro_batch_groups = 1});
  CHECK(whole_stats.updates == 4);
  CHECK(micro_stats.updates == 4);
  CHECK(std::abs(whole_stats.loss - micro_stats.loss) <= 1e-10);
  CHECK(std::abs(whole_stats.kl - micro_stats.kl) <= 1e-10);
  CHECK(std::abs(whole_stats.entropy - micro_stats.entropy) <= 1e-10);
  CHECK(std::abs(whole_stats.clip_fraction - micro_stats.clip_fraction) <= 1e-10);
  CHECK(std::abs(whole_stats.grad_norm - micro_stats.grad_norm) <= 1e-10);
  CHECK(whole_stats.clip_fraction > 0.0);  // later updates are off-policy: the clip statistics are exercised
  auto a = whole.parameters();
  auto b = micro.parameters();
  double worst = 0.0, moved = 0.0;
  auto s = start.parameters();
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, max_abs_diff(a[i], b[i]));
    moved = std::max(moved, max_abs_diff(a[i], s[i]));
  }
  CHECK(worst <= 1e-10);
  CHECK(moved > 1e-3);  // the updates did change the parameters

  SECTION("a negative micro_batch_groups is an error naming it") {
    CHECK_THROWS_WITH(run_update(start, batch, old, ref, adv, objective, {.micro_batch_groups = -1}),
                      Catch::Contains("policy_gradient_update: micro_batch_groups must be >= 0") &&
                          Catch::Contains("got -1"));
  }
}

TEST_CASE("bf16 compute keeps fp32 master weights, gradients and optimiser state", "[loop][precision]") {
  REQUIRE(kOneThread);
  const TokenBatch batch = make_batch();
  LlamaModel model = make_model(torch::kFloat, 3);
  loop::Bf16Compute<LlamaModel> bf16{&model};

  // The forward really runs in bf16 (the hidden states differ from fp32 by bf16 rounding, not more).
  const torch::Tensor h32 = model.hidden_states(batch);
  const torch::Tensor h16 = bf16.hidden_states(batch);
  CHECK(h16.scalar_type() == torch::kFloat);
  const double diff = max_abs_diff(h16, h32);
  CHECK(diff > 1e-4);
  CHECK(diff < 0.1);
  const torch::Tensor l32 = loop::policy_logprobs(model, batch);
  const torch::Tensor l16 = loop::policy_logprobs(bf16, batch);
  CHECK(l16.scalar_type() == torch::kFloat);
  CHECK(max_abs_diff(l16, l32) > 1e-5);
  CHECK(max_abs_diff(l16, l32) < 0.05);
  // Without gradient (sampling, frozen log-probs) nothing changes.
  {
    torch::NoGradGuard no_grad;
    CHECK(torch::equal(bf16.hidden_states(batch), model.hidden_states(batch)));
  }
  // The logits path is computed in bf16 and handed back in fp32.
  const torch::Tensor logits = bf16.logits(batch);
  CHECK(logits.scalar_type() == torch::kFloat);
  CHECK(max_abs_diff(logits, model.logits(batch)) > 1e-5);

  // One update through policy_gradient_update with Precision::bf16.
  const torch::Tensor old = loop::frozen_logprobs(model, batch);
  const torch::Tensor adv = torch::randn({batch.batch_size()});
  LlamaModel copy = make_model(torch::kFloat, 99);
  copy.copy_from(model);
  const std::vector<torch::Tensor> params = model.parameters();
  torch::optim::AdamW optimizer = loop::make_adamw(params, {.learning_rate = 1e-3});
  kaizen::Rng rng;
  rng.seed(1);
  const auto stats = loop::policy_gradient_update(
      model, optimizer, params, batch, old, torch::Tensor(), adv, {}, pg::kDapo,
      {.group_size = kGroup, .precision = loop::Precision::bf16}, rng);
  CHECK(stats.updates == 1);
  CHECK(std::isfinite(stats.loss));
  for (const auto& p : params) {
    CHECK(p.scalar_type() == torch::kFloat);
    REQUIRE(p.grad().defined());
    CHECK(p.grad().scalar_type() == torch::kFloat);
  }
  std::int64_t states = 0;
  for (const auto& [key, state] : optimizer.state()) {
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*state);
    CHECK(s.exp_avg().scalar_type() == torch::kFloat);
    CHECK(s.exp_avg_sq().scalar_type() == torch::kFloat);
    ++states;
  }
  CHECK(states == static_cast<std::int64_t>(params.size()));
  // The same update in fp32 from the same start: a close but not identical loss.
  const std::vector<torch::Tensor> params32 = copy.parameters();
  torch::optim::AdamW optimizer32 = loop::make_adamw(params32, {.learning_rate = 1e-3});
  kaizen::Rng rng32;
  rng32.seed(1);
  const auto stats32 = loop::policy_gradient_update(copy, optimizer32, params32, batch, old, torch::Tensor(), adv, {},
                                                    pg::kDapo, {.group_size = kGroup}, rng32);
  CHECK(stats.loss != stats32.loss);
  CHECK(std::abs(stats.loss - stats32.loss) <= 0.02 * std::max(1.0, std::abs(stats32.loss)));
  // Autocast is off again after the update.
  CHECK_FALSE(at::autocast::is_autocast_enabled(at::kCPU));
}

TEST_CASE("parse_precision accepts fp32 and bf16 and names them otherwise", "[loop][precision]") {
  CHECK(loop::parse_precision("fp32") == loop::Precision::fp32);
  CHECK(loop::parse_precision("bf16") == loop::Precision::bf16);
  CHECK(std::string(loop::precision_name(loop::Precision::bf16)) == "bf16");
  CHECK_THROWS_WITH(loop::parse_precision("fp16"),
                    Catch::Contains("parse_precision: expected \"fp32\" or \"bf16\", got \"fp16\""));
}
