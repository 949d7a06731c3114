// Tests of loop/policy_gradient.hpp, policy_gradient/estimators.hpp and the fused log-prob path of
// loop/batch.hpp:
//   - the fused linear + log-prob path gives the logits path's log-probs, loss and gradients (fp32, 1e-5),
//     and the loops never call logits() on a HiddenStatePolicy;
//   - every built-in advantage estimator and a user-defined one run through the same loop: the advantages
//     the loop trained on equal a hand-written oracle of the estimator's formula on the rollouts it drew,
//     and one update raises the surrogate Σ A (log π_new − log π_old) on those rollouts;
//   - estimators chosen by name from the config, and the error listing the accepted names;
//   - a reference policy of another type than the policy;
//   - errors on bad estimator output and configs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/grpo.hpp>
#include <kaizen/loop/policy_gradient.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/update.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/policy_gradient/estimators.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/torch/policy_logprobs.hpp>

#include "loop_test_support.hpp"
#include "preference_loop_support.hpp"

namespace {

namespace pg = kaizen::policy_gradient;
namespace loop = kaizen::loop;
using kaizen::Completion;
using kaizen::Prompt;
using kaizen::TokenBatch;
using kaizen::lm::LlamaModel;
using kaizen_test::kOneThread;
using kaizen_test::preference_loops::DigitFraction;
using kaizen_test::preference_loops::Setup;

/// A HiddenStatePolicy whose logits() throws: a loop that runs with it never materialised [B, T, V].
struct NoLogits {
  LlamaModel* model;
  torch::Tensor logits(const TokenBatch&) { kaizen::fail("NoLogits: logits() was called"); }
  std::vector<torch::Tensor> parameters() { return model->parameters(); }
  torch::Tensor hidden_states(const TokenBatch& b) { return model->hidden_states(b); }
  torch::Tensor output_embedding() { return model->output_embedding(); }
};
static_assert(kaizen::HiddenStatePolicy<NoLogits>);
static_assert(kaizen::Policy<loop::LogitsOnly<LlamaModel>> && !kaizen::HiddenStatePolicy<loop::LogitsOnly<LlamaModel>>);

/// A policy of an unrelated type: uniform logits over V tokens, no parameters.
struct UniformPolicy {
  std::int64_t vocab;
  torch::Tensor logits(const TokenBatch& b) { return torch::zeros({b.batch_size(), b.length(), vocab}); }
  std::vector<torch::Tensor> parameters() { return {}; }
};
static_assert(kaizen::Policy<UniformPolicy>);

/// Wraps the sampler and keeps every call's prompts, completions and parameters.
struct RecordingSampler {
  kaizen::lm::LlamaSampler* inner;
  struct Call {
    std::vector<Prompt> prompts;
    std::vector<Completion> completions;
    kaizen::SamplingParams params;
  };
  std::vector<Call> calls;
  std::vector<Completion> sample(std::span<const Prompt> prompts, const kaizen::SamplingParams& params) {
    std::vector<Completion> out = inner->sample(prompts, params);
    calls.push_back({std::vector<Prompt>(prompts.begin(), prompts.end()), out, params});
    return out;
  }
};

/// Wraps an estimator and keeps what the loop passed to it and what it returned.
template <class E>
struct Recording {
  E inner;
  std::vector<pg::AdvantageInputs> inputs;
  std::vector<torch::Tensor> outputs;
  torch::Tensor operator()(const pg::AdvantageInputs& in) {
    torch::Tensor a = inner(in);
    inputs.push_back(in);
    outputs.push_back(a.detach().clone());
    return a;
  }
  [[nodiscard]] std::string name() const { return pg::estimator_name(inner); }
  [[nodiscard]] bool needs_greedy_baseline() const { return pg::estimator_needs_greedy_baseline(inner); }
  [[nodiscard]] bool needs_reference() const { return pg::estimator_needs_reference(inner); }
  [[nodiscard]] std::int64_t min_group_size() const { return pg::estimator_min_group_size(inner); }
};

/// A user's own estimator: the centred rank of each reward within its group (ties share the mean rank).
struct GroupRank {
  torch::Tensor operator()(const pg::AdvantageInputs& in) const {
    const torch::Tensor r = in.rewards.to(torch::kCPU, torch::kDouble).contiguous();
    const std::int64_t B = r.size(0), G = in.group_size;
    std::vector<double> out(static_cast<std::size_t>(B));
    for (std::int64_t g = 0; g < B / G; ++g)
      for (std::int64_t i = 0; i < G; ++i) {
        double rank = 0.0;
        for (std::int64_t j = 0; j < G; ++j) {
          const double a = r[g * G + i].item<double>(), b = r[g * G + j].item<double>();
          rank += a > b ? 1.0 : (a == b && i != j ? 0.5 : 0.0);
        }
        out[static_cast<std::size_t>(g * G + i)] = rank - static_cast<double>(G - 1) / 2.0;
      }
    return torch::tensor(out, torch::kDouble).to(in.rewards.options());
  }
  [[nodiscard]] std::string name() const { return "group_rank"; }
  [[nodiscard]] std::int64_t min_group_size() const { return 2; }
};

/// One step's rollouts as the oracles see them: rewards, lengths, group structure, greedy rewards.
struct Drawn {
  std::vector<double> rewards;     // [B]
  std::vector<double> lengths;     // [B]
  std::vector<double> greedy;      // [P] (ReMax) or empty
  std::int64_t group_size = 0;
  [[nodiscard]] std::int64_t groups() const { return static_cast<std::int64_t>(rewards.size()) / group_size; }
  [[nodiscard]] double r(std::int64_t g, std::int64_t i) const { return rewards[static_cast<std::size_t>(g * group_size + i)]; }
};

double group_mean(const Drawn& d, std::int64_t g) {
  double s = 0.0;
  for (std::int64_t i = 0; i < d.group_size; ++i) s += d.r(g, i);
  return s / static_cast<double>(d.group_size);
}
bool group_constant(const Drawn& d, std::int64_t g) {
  for (std::int64_t i = 1; i < d.group_size; ++i)
    if (d.r(g, i) != d.r(g, 0)) return false;
  return true;
}
double binomial(double n, std::int64_t k) {  // C(n, k), 0 when n < k
  if (n < static_cast<double>(k)) return 0.0;
  double c = 1.0;
  for (std::int64_t j = 0; j < k; ++j) c *= (n - static_cast<double>(j)) / static_cast<double>(j + 1);
  return c;
}

/// Sequence-level oracles, written from the papers' formulas (independently of advantages.hpp).
std::vector<double> oracle(const std::string& name, const Drawn& d, std::int64_t k = 1) {
  std::vector<double> a(d.rewards.size(), 0.0);
  const std::int64_t G = d.group_size;
  for (std::int64_t g = 0; g < d.groups(); ++g) {
    const double mu = group_mean(d, g);
    double ss = 0.0, c = 0.0, lr = 0.0, l = 0.0;
    for (std::int64_t i = 0; i < G; ++i) {
      ss += (d.r(g, i) - mu) * (d.r(g, i) - mu);
      c += d.r(g, i);
      lr += d.lengths[static_cast<std::size_t>(g * G + i)] * d.r(g, i);
      l += d.lengths[static_cast<std::size_t>(g * G + i)];
    }
    const double sd = std::sqrt(ss / static_cast<double>(G - 1));
    for (std::int64_t i = 0; i < G; ++i) {
      double& out = a[static_cast<std::size_t>(g * G + i)];
      const double r = d.r(g, i);
      if (name == "remax") {
        out = r - d.greedy[static_cast<std::size_t>(g)];
        continue;
      }
      if (group_constant(d, g)) continue;  // every group-relative estimator gives 0
      if (name == "grpo") out = (r - mu) / (sd + 1e-6);
      else if (name == "dr_grpo") out = r - mu;
      else if (name == "rloo") out = r - (c - r) / static_cast<double>(G - 1);
      else if (name == "opo") out = r - lr / l;
      else if (name == "pass_at_k") {
        const double n = static_cast<double>(G);
        const double mean = 1.0 - binomial(n - c, k) / binomial(n, k);
        const double sigma = std::sqrt(mean * (1.0 - mean));
        if (sigma == 0.0) continue;
        out = r > 0.5 ? (1.0 - mean) / sigma
                      : (1.0 - mean - binomial(n - c - 1.0, k - 1) / binomial(n - 1.0, k - 1)) / sigma;
      } else if (name == "group_rank") {
        double rank = 0.0;
        for (std::int64_t j = 0; j < G; ++j) rank += r > d.r(g, j) ? 1.0 : (r == d.r(g, j) && j != i ? 0.5 : 0.0);
        out = rank - static_cast<double>(G - 1) / 2.0;
      } else {
        FAIL("no oracle for " << name);
      }
    }
  }
  return a;
}

/// Whitening over the valid tokens (Bessel-corrected variance, ε = 1e-8), as REINFORCE++ specifies.
torch::Tensor whiten(const torch::Tensor& x, const torch::Tensor& mask) {
  const torch::Tensor m = mask.to(torch::kDouble);
  const double n = m.sum().item<double>();
  const double mean = (x * m).sum().item<double>() / n;
  const double var = ((x - mean).square() * m).sum().item<double>() / (n - 1.0);
  return (x - mean) / std::sqrt(var + 1e-8) * m;
}

/// Per-token oracles of the REINFORCE++ family on [B, T] (double), from the recorded inputs.
torch::Tensor token_oracle(const std::string& name, const pg::AdvantageInputs& in, double beta, double gamma) {
  const torch::Tensor m = in.mask.to(torch::kDouble);
  const torch::Tensor r = in.rewards.to(torch::kDouble);
  const std::int64_t B = m.size(0), T = m.size(1), G = in.group_size;
  torch::Tensor values = torch::zeros({B, T}, torch::kDouble);
  if (name == "reinforce_pp_baseline") {
    for (std::int64_t b = 0; b < B; ++b) {
      double mu = 0.0;
      for (std::int64_t i = 0; i < G; ++i) mu += r[(b / G) * G + i].item<double>() / static_cast<double>(G);
      values[b] = (r[b].item<double>() - mu) * m[b];
    }
    return whiten(values, m);
  }
  // reinforce_pp: token reward −β (log π_old − log π_ref) (k1), plus r_b on the row's last valid token;
  // returns R_t = Σ_{t' ≥ t, valid} γ^(number of valid tokens between) r_t'.
  const torch::Tensor old = in.old_logprobs.to(torch::kDouble);
  const torch::Tensor ref = beta > 0 ? in.ref_logprobs.to(torch::kDouble) : old;
  for (std::int64_t b = 0; b < B; ++b) {
    std::int64_t last = -1;
    for (std::int64_t t = 0; t < T; ++t)
      if (m[b][t].item<double>() != 0.0) last = t;
    double running = 0.0;
    for (std::int64_t t = T - 1; t >= 0; --t) {
      if (m[b][t].item<double>() == 0.0) continue;
      double reward = -beta * (old[b][t].item<double>() - ref[b][t].item<double>());
      if (t == last) reward += r[b].item<double>();
      running = reward + gamma * running;
      values[b][t] = running;
    }
  }
  return whiten(values, m);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

/// What one run of the loop left behind, for the checks.
struct Run {
  std::vector<nlohmann::json> history;
  pg::AdvantageInputs inputs;
  torch::Tensor advantages;
  TokenBatch batch;        // the step's rollouts, collated again
  Drawn drawn;
  double surrogate = 0.0;  // Σ m A (log π_new − log π_old) over the step's rollouts after the update
};

/// One step (1 epoch, all groups at once, on-policy surrogate without clipping or KL) of
/// policy_gradient_loop with `estimator`; `reward` scores completions.
template <class E, class Reward>
Run run_estimator(E estimator, Reward reward, std::int64_t group_size = 4, LlamaModel* reference = nullptr) {
  const Setup s;
  LlamaModel model = s.model(3);
  kaizen::lm::LlamaSampler inner(model, s.tokenizer.pad_id());
  RecordingSampler sampler{&inner, {}};
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) {
    return kaizen::tasks::make_prompt(s.task.generate(arm, rng), s.tokenizer);
  };
  Recording<E> recording{std::move(estimator), {}, {}};
  const pg::Objective<pg::TokenRatio, pg::NoClip, pg::NoKl, pg::TokenMean> objective{};
  loop::PolicyGradientConfig config{.steps = 1, .prompts_per_step = 4, .group_size = group_size, .learning_rate = 1e-3,
                                    .sampling = s.sampling(4), .seed = 5, .collate = s.collate()};
  Run out;
  out.history = loop::policy_gradient_loop(model, sampler, reward, source, recording, objective, config, {},
                                           reference)
                    .history;
  REQUIRE(recording.inputs.size() == 1);
  out.inputs = recording.inputs[0];
  out.advantages = recording.outputs[0];
  const auto& rollout = sampler.calls.at(0);
  out.drawn.group_size = group_size;
  for (const Completion& c : rollout.completions) {
    out.drawn.rewards.push_back(reward(Prompt{}, c));
    out.drawn.lengths.push_back(static_cast<double>(c.tokens.size()));
  }
  if (sampler.calls.size() > 1) {  // the greedy baseline rollout
    const auto& greedy = sampler.calls[1];
    CHECK(greedy.params.top_k == 1);
    REQUIRE(greedy.completions.size() == rollout.prompts.size() / static_cast<std::size_t>(group_size));
    for (const Completion& c : greedy.completions) out.drawn.greedy.push_back(reward(Prompt{}, c));
  }
  std::vector<Prompt> prompts;
  for (std::size_t i = 0; i < rollout.prompts.size(); i += static_cast<std::size_t>(group_size))
    prompts.push_back(rollout.prompts[i]);
  out.batch = kaizen::collate(std::span<const Prompt>(prompts), std::span<const Completion>(rollout.completions),
                              std::span<const double>(out.drawn.rewards), group_size, s.collate());
  const torch::Tensor after = loop::frozen_logprobs(model, out.batch);
  const torch::Tensor m = out.batch.completion_mask.to(torch::kDouble);
  const torch::Tensor a = out.advantages.dim() == 1 ? out.advantages.to(torch::kDouble).unsqueeze(1) * m
                                                    : out.advantages.to(torch::kDouble) * m;
  out.surrogate = (a * (after - out.inputs.old_logprobs).to(torch::kDouble)).sum().item<double>();
  return out;
}

/// The checks every estimator's run must pass.
void check_run(const Run& run, const std::string& name) {
  std::string rewards;
  for (double r : run.drawn.rewards) rewards += std::to_string(r) + " ";
  INFO("rewards " << rewards);
  REQUIRE(run.history.size() == 1);
  const nlohmann::json& h = run.history[0];
  CHECK(h["event"] == "policy_gradient");
  CHECK(h["advantage_estimator"] == name);
  CHECK(std::isfinite(h["loss"].get<double>()));
  CHECK(h["grad_norm"].get<double>() > 0.0);
  // The loop's inputs describe the rollouts it drew.
  CHECK(max_abs_diff(run.inputs.rewards, torch::tensor(run.drawn.rewards, torch::kDouble)) < 1e-6);
  CHECK(torch::equal(run.inputs.mask, run.batch.completion_mask));
  CHECK(torch::equal(run.inputs.lengths, run.batch.completion_lengths));
  CHECK(run.inputs.group_size == run.drawn.group_size);
  CHECK(run.advantages.abs().sum().item<double>() > 0.0);  // a non-trivial signal to learn from
  INFO("surrogate Σ A (log π_new − log π_old) = " << run.surrogate);
  CHECK(run.surrogate > 0.0);
}

/// Binary reward for pass@k: 1 when more than half of the completion's tokens are digits.
struct MostlyDigits {
  DigitFraction digits;
  double operator()(const Prompt& p, const Completion& c) const { return digits(p, c) > 0.5 ? 1.0 : 0.0; }
};

kaizen::TokenBatch sample_batch(const Setup& s, LlamaModel& model, std::int64_t group_size) {
  kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
  const std::vector<Prompt> prompts = s.prompts(3, 41);
  std::vector<Prompt> repeated;
  for (const Prompt& p : prompts)
    for (std::int64_t i = 0; i < group_size; ++i) repeated.push_back(p);
  kaizen::SamplingParams params = s.sampling(6);
  params.seed = 8;
  const std::vector<Completion> completions = sampler.sample(std::span<const Prompt>(repeated), params);
  const std::vector<double> rewards(completions.size(), 0.0);
  return kaizen::collate(std::span<const Prompt>(prompts), std::span<const Completion>(completions),
                         std::span<const double>(rewards), group_size, s.collate());
}

}  // namespace

TEST_CASE("The fused path gives the logits path's log-probs, loss and gradients", "[loop][fused]") {
  REQUIRE(kOneThread);
  const Setup s;
  LlamaModel model = s.model(11);
  LlamaModel other = s.model(12);
  const TokenBatch batch = sample_batch(s, model, 4);
  REQUIRE(batch.completion_mask.sum().item<std::int64_t>() > 10);
  loop::LogitsOnly<LlamaModel> logits_path{&model};
  NoLogits fused_only{&model};

  for (const double temperature : {1.0, 0.7}) {
    INFO("temperature " << temperature);
    const kaizen::lm::LogitTransform transform{.temperature = temperature};
    const torch::Tensor fused = loop::policy_logprobs(fused_only, batch, transform);  // logits() would throw
    const torch::Tensor plain = loop::policy_logprobs(logits_path, batch, transform);
    REQUIRE(fused.sizes() == plain.sizes());
    CHECK(fused.scalar_type() == torch::kFloat);
    CHECK(max_abs_diff(fused, plain) <= 1e-5);
    CHECK(torch::equal(plain, kaizen::lm::policy_logprobs(model, batch, transform)));
    CHECK(max_abs_diff(fused, loop::policy_logprobs(model, batch, transform)) == 0.0);  // LlamaModel: fused
    CHECK(torch::equal(fused.masked_select(batch.completion_mask.logical_not()),
                       torch::zeros({batch.completion_mask.logical_not().sum().item<std::int64_t>()})));

    // A GRPO loss with a KL term and an entropy-free objective: loss and every gradient agree.
    const torch::Tensor old = loop::frozen_logprobs(model, batch, transform) + 0.01 * torch::randn_like(fused) *
                                                                               batch.completion_mask;
    const torch::Tensor ref = loop::frozen_logprobs(other, batch, transform);
    const torch::Tensor adv = torch::randn({batch.batch_size()});
    auto loss_and_grads = [&](auto& policy) {
      for (auto& p : model.parameters()) p.mutable_grad() = torch::Tensor();
      const pg::PolicyLossResult out = pg::policy_loss(loop::policy_logprobs(policy, batch, transform), old, ref, adv,
                                       batch.completion_mask, pg::kGrpo);
      out.loss.backward();
      std::vector<torch::Tensor> grads;
      for (auto& p : model.parameters()) grads.push_back(p.grad().clone());
      return std::make_pair(out.loss.item<double>(), grads);
    };
    const auto [fused_loss, fused_grads] = loss_and_grads(fused_only);
    const auto [plain_loss, plain_grads] = loss_and_grads(logits_path);
    CHECK(std::abs(fused_loss - plain_loss) <= 1e-5);
    REQUIRE(fused_grads.size() == plain_grads.size());
    double largest = 0.0;
    for (std::size_t i = 0; i < fused_grads.size(); ++i) {
      INFO("parameter " << i);
      CHECK(max_abs_diff(fused_grads[i], plain_grads[i]) <= 1e-5);
      largest = std::max(largest, plain_grads[i].abs().max().item<double>());
    }
    CHECK(largest > 1e-3);  // the gradients compared are not all zero
  }

  SECTION("a filtering transform (top-p) takes the logits path, unchanged") {
    const kaizen::lm::LogitTransform top_p{.temperature = 1.0, .top_p = 0.9};
    CHECK(torch::equal(loop::policy_logprobs(model, batch, top_p), kaizen::lm::policy_logprobs(model, batch, top_p)));
    CHECK_THROWS_WITH(loop::policy_logprobs(fused_only, batch, top_p), Catch::Contains("NoLogits: logits() was called"));
  }
  SECTION("bad hidden states or output embedding are errors naming the shapes") {
    struct BadHidden {
      LlamaModel* model;
      torch::Tensor logits(const TokenBatch& b) { return model->logits(b); }
      std::vector<torch::Tensor> parameters() { return model->parameters(); }
      torch::Tensor hidden_states(const TokenBatch& b) { return model->hidden_states(b).narrow(1, 0, 2); }
      torch::Tensor output_embedding() { return model->output_embedding(); }
    } bad{&model};
    CHECK_THROWS_WITH(loop::policy_logprobs(bad, batch),
                      Catch::StartsWith("fused_policy_logprobs: expected hidden states [12, ") &&
                          Catch::Contains(", H] for the batch, got [12, 2, 32]"));
  }
}

TEST_CASE("GRPO, SFT and frozen log-probs never call logits() on a HiddenStatePolicy", "[loop][fused]") {
  REQUIRE(kOneThread);
  const Setup s;
  DigitFraction reward{&s.tokenizer};
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) {
    return kaizen::tasks::make_prompt(s.task.generate(arm, rng), s.tokenizer);
  };
  const loop::GrpoConfig config{.steps = 2, .prompts_per_step = 3, .group_size = 4, .epochs = 2,
                                .minibatch_groups = 1, .learning_rate = 3e-3, .sampling = s.sampling(), .seed = 3,
                                .collate = s.collate()};
  // The same run through the fused path (NoLogits, whose logits() throws) and through the model itself
  // (also fused): identical histories, bit for bit.
  LlamaModel a = s.model(4), b = s.model(4), ref_a = s.model(4), ref_b = s.model(4);
  kaizen::lm::LlamaSampler sampler_a(a, s.tokenizer.pad_id()), sampler_b(b, s.tokenizer.pad_id());
  NoLogits fused_a{&a}, fused_ref{&ref_a};
  const auto run_a = loop::grpo(fused_a, sampler_a, reward, source, pg::kGrpo, config, {}, &fused_ref);
  const auto run_b = loop::grpo(b, sampler_b, reward, source, pg::kGrpo, config, {}, &ref_b);
  REQUIRE(run_a.history.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    for (const char* key : {"loss", "kl", "grad_norm", "reward_mean", "sampler_trainer_logprob_max_abs_diff"})
      CHECK(run_a.history[i][key] == run_b.history[i][key]);
  }
  CHECK(run_a.history[1]["kl"].get<double>() > 0.0);
  kaizen_test::check_same_parameters(a, b);

  // SFT through the same path.
  auto opt = loop::make_adamw(a.parameters(), {.learning_rate = 1e-3});
  kaizen::Rng rng(2);
  std::vector<kaizen::Rollout> examples;
  for (int i = 0; i < 4; ++i) {
    const auto p = s.task.generate(-1, rng);
    examples.push_back({.prompt = s.tokenizer.encode(p.prompt), .completion = {.tokens = kaizen::tasks::answer_tokens(p, s.tokenizer)}});
  }
  const auto step = loop::sft_step(fused_a, opt, a.parameters(), examples, s.collate(), 1.0);
  CHECK(step.loss > 0.0);
  CHECK(step.grad_norm > 0.0);
}

TEST_CASE("Every advantage estimator runs through the same loop and trains on its own formula", "[loop][estimators]") {
  REQUIRE(kOneThread);
  const Setup s;
  const DigitFraction digits{&s.tokenizer};
  auto check_sequence = [](const Run& run, const std::string& name, std::int64_t k = 1) {
    check_run(run, name);
    REQUIRE(run.advantages.dim() == 1);
    CHECK(max_abs_diff(run.advantages, torch::tensor(oracle(name, run.drawn, k), torch::kDouble)) < 1e-5);
  };
  SECTION("GRPO") { check_sequence(run_estimator(pg::Grpo{}, digits), "grpo"); }
  SECTION("Dr. GRPO") { check_sequence(run_estimator(pg::DrGrpo{}, digits), "dr_grpo"); }
  SECTION("RLOO") { check_sequence(run_estimator(pg::Rloo{}, digits), "rloo"); }
  SECTION("OPO") { check_sequence(run_estimator(pg::Opo{}, digits), "opo"); }
  SECTION("pass@k (k = 2, binary rewards)") {
    const Run run = run_estimator(pg::PassAtK{2}, MostlyDigits{digits});
    check_sequence(run, "pass_at_k", 2);
  }
  SECTION("ReMax (greedy baseline rollout), also with one sample per prompt") {
    const Run run = run_estimator(pg::ReMax{}, digits);
    REQUIRE(run.drawn.greedy.size() == 4);
    check_sequence(run, "remax");
    CHECK(run.history[0].contains("greedy_reward_mean"));
    check_sequence(run_estimator(pg::ReMax{}, digits, 1), "remax");
  }
  SECTION("REINFORCE++ (per-token returns, whitened)") {
    const Run run = run_estimator(pg::ReinforcePP{}, digits);
    check_run(run, "reinforce_pp");
    REQUIRE(run.advantages.dim() == 2);
    CHECK(max_abs_diff(run.advantages, token_oracle("reinforce_pp", run.inputs, 0.0, 1.0)) < 1e-5);
  }
  SECTION("REINFORCE++ with the KL in the reward, γ < 1, against a reference") {
    LlamaModel reference = s.model(99);
    const Run run = run_estimator(pg::ReinforcePP{.gamma = 0.9, .kl_coef = 0.05}, digits, 4, &reference);
    check_run(run, "reinforce_pp");
    REQUIRE(run.inputs.ref_logprobs.defined());
    CHECK(max_abs_diff(run.inputs.ref_logprobs, loop::frozen_logprobs(reference, run.batch)) == 0.0);
    CHECK(max_abs_diff(run.advantages, token_oracle("reinforce_pp", run.inputs, 0.05, 0.9)) < 1e-5);
  }
  SECTION("REINFORCE++ with a group baseline") {
    const Run run = run_estimator(pg::ReinforcePPBaseline{}, digits);
    check_run(run, "reinforce_pp_baseline");
    REQUIRE(run.advantages.dim() == 2);
    CHECK(max_abs_diff(run.advantages, token_oracle("reinforce_pp_baseline", run.inputs, 0.0, 1.0)) < 1e-5);
  }
  SECTION("a user-defined estimator (centred rank within the group)") {
    check_sequence(run_estimator(GroupRank{}, digits), "group_rank");
  }
  SECTION("a user-defined estimator as a lambda, type-erased") {
    const pg::AnyAdvantageEstimator any = [](const pg::AdvantageInputs& in) {
      return pg::group_advantages(in.rewards, in.group_ids, {.scale = pg::AdvantageScale::none}) * 2.0;
    };
    const Run run = run_estimator(any, digits);
    check_run(run, "custom");
    CHECK(max_abs_diff(run.advantages, torch::tensor(oracle("dr_grpo", run.drawn), torch::kDouble) * 2.0) < 1e-5);
  }
}

TEST_CASE("Estimators chosen by name from the config", "[loop][estimators]") {
  REQUIRE(kOneThread);
  const Setup s;
  const MostlyDigits reward{DigitFraction{&s.tokenizer}};
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) {
    return kaizen::tasks::make_prompt(s.task.generate(arm, rng), s.tokenizer);
  };
  for (const std::string name : {"grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline", "remax", "opo",
                                 "pass_at_k"}) {
    INFO(name);
    CHECK(pg::make_advantage_estimator(name, {.k = 2}).name() == name);
    LlamaModel model = s.model(6);
    kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
    loop::PolicyGradientConfig config{.steps = 1, .prompts_per_step = 2, .group_size = 3, .learning_rate = 1e-3,
                                      .sampling = s.sampling(3), .advantage_estimator = name, .seed = 9,
                                      .collate = s.collate()};
    config.estimator_options.k = 2;
    const auto run = loop::policy_gradient_loop(model, sampler, reward, source, pg::kDapo, config);
    REQUIRE(run.history.size() == 1);
    CHECK(run.history[0]["advantage_estimator"] == name);
    CHECK(std::isfinite(run.history[0]["loss"].get<double>()));
  }
  CHECK(pg::make_advantage_estimator("grpo", {.group = {.scale = pg::AdvantageScale::batch}}).name() == "grpo");
  CHECK_THROWS_WITH(pg::make_advantage_estimator("ppo"),
                    Catch::StartsWith("make_advantage_estimator: unknown advantage_estimator 'ppo'; accepted: grpo, "
                                      "dr_grpo, rloo, reinforce_pp, reinforce_pp_baseline, remax, opo, pass_at_k"));
  CHECK_THROWS_WITH(pg::make_advantage_estimator("pass_at_k", {.k = 0}),
                    Catch::StartsWith("make_advantage_estimator: pass_at_k needs k >= 1, got 0"));
  CHECK_THROWS_WITH(pg::make_advantage_estimator("reinforce_pp", {.gamma = 1.5}),
                    Catch::StartsWith("make_advantage_estimator: reinforce_pp needs gamma in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(pg::make_advantage_estimator("reinforce_pp", {.kl_coef = -1.0}),
                    Catch::StartsWith("make_advantage_estimator: reinforce_pp needs kl_coef >= 0, got -1"));
}

TEST_CASE("The reference policy may be of another type than the policy", "[loop][reference]") {
  REQUIRE(kOneThread);
  const Setup s;
  DigitFraction reward{&s.tokenizer};
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) {
    return kaizen::tasks::make_prompt(s.task.generate(arm, rng), s.tokenizer);
  };
  const loop::GrpoConfig config{.steps = 2, .prompts_per_step = 2, .group_size = 4, .learning_rate = 3e-3,
                                .sampling = s.sampling(), .seed = 13, .collate = s.collate()};
  // The same reference weights seen as a LlamaModel (fused path) and as a LogitsOnly view (another type,
  // logits path): the same run up to the two paths' rounding.
  LlamaModel a = s.model(2), b = s.model(2), reference = s.model(2);
  kaizen::lm::LlamaSampler sampler_a(a, s.tokenizer.pad_id()), sampler_b(b, s.tokenizer.pad_id());
  loop::LogitsOnly<LlamaModel> view{&reference};
  const auto same_type = loop::grpo(a, sampler_a, reward, source, pg::kGrpo, config, {}, &reference);
  const auto other_type = loop::grpo(b, sampler_b, reward, source, pg::kGrpo, config, {}, &view);
  REQUIRE(other_type.history.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(other_type.history[i]["reward_mean"] == same_type.history[i]["reward_mean"]);
    CHECK(other_type.history[i]["kl"].get<double>() == Approx(same_type.history[i]["kl"].get<double>()).margin(1e-6));
    CHECK(other_type.history[i]["loss"].get<double>() == Approx(same_type.history[i]["loss"].get<double>()).margin(1e-5));
  }
  CHECK(same_type.history[1]["kl"].get<double>() > 0.0);

  // An unrelated Policy type without parameters: a uniform reference. The KL to it is positive from the
  // first step (the policy is not uniform), through the general loop too.
  LlamaModel c = s.model(2);
  kaizen::lm::LlamaSampler sampler_c(c, s.tokenizer.pad_id());
  UniformPolicy uniform{s.tokenizer.vocab_size()};
  const auto run = loop::policy_gradient_loop(c, sampler_c, reward, source, pg::Rloo{}, pg::kGrpo,
                                              loop::to_policy_gradient_config(config), {}, &uniform);
  CHECK(run.history[0]["kl"].get<double>() > 0.0);
  CHECK(run.history[0]["event"] == "grpo");
  CHECK(run.history[0]["advantage_estimator"] == "rloo");
}

TEST_CASE("The policy-gradient loop rejects bad estimators and configs with messages that name them",
          "[loop][estimators][errors]") {
  REQUIRE(kOneThread);
  const Setup s;
  LlamaModel model = s.model(14);
  kaizen::lm::LlamaSampler sampler(model, s.tokenizer.pad_id());
  DigitFraction reward{&s.tokenizer};
  auto source = [&](kaizen::ArmId arm, kaizen::Rng& rng) {
    return kaizen::tasks::make_prompt(s.task.generate(arm, rng), s.tokenizer);
  };
  loop::PolicyGradientConfig config{.steps = 1, .prompts_per_step = 2, .group_size = 2, .sampling = s.sampling(),
                                    .collate = s.collate()};
  const auto run = [&](auto estimator) {
    return loop::policy_gradient_loop(model, sampler, reward, source, estimator, pg::kDapo, config);
  };
  SECTION("advantages of the wrong shape") {
    CHECK_THROWS_WITH(run([](const pg::AdvantageInputs& in) { return torch::zeros({in.rewards.size(0) + 1}); }),
                      Catch::StartsWith("policy_gradient: the advantage estimator 'custom' returned shape [5]; "
                                        "expected [4] or [4, "));
  }
  SECTION("non-finite advantages") {
    CHECK_THROWS_WITH(run([](const pg::AdvantageInputs& in) { return in.rewards / 0.0 * 0.0; }),
                      Catch::StartsWith("policy_gradient: the advantage estimator 'custom' returned a non-finite advantage"));
  }
  SECTION("a group smaller than the estimator needs") {
    CHECK_THROWS_WITH(run(pg::PassAtK{3}),
                      Catch::StartsWith("policy_gradient: group_size must be >= 3 for the advantage estimator "
                                        "'pass_at_k', got 2"));
    config.group_size = 1;
    CHECK_THROWS_WITH(run(pg::Rloo{}), Catch::StartsWith("policy_gradient: group_size must be >= 2 for the "
                                                         "advantage estimator 'rloo', got 1"));
  }
  SECTION("a KL in the reward without a reference policy") {
    CHECK_THROWS_WITH(run(pg::ReinforcePP{.kl_coef = 0.1}),
                      Catch::StartsWith("policy_gradient: the advantage estimator 'reinforce_pp' needs reference "
                                        "log-probs, so a reference policy is required"));
  }
  SECTION("an unknown estimator name in the config") {
    config.advantage_estimator = "gae";
    CHECK_THROWS_WITH(loop::policy_gradient_loop(model, sampler, reward, source, pg::kDapo, config),
                      Catch::StartsWith("make_advantage_estimator: unknown advantage_estimator 'gae'; accepted: grpo"));
  }
  SECTION("ReMax called without greedy rewards") {
    const pg::AdvantageInputs in{.rewards = torch::ones({2}), .group_ids = torch::zeros({2}, torch::kLong)};
    CHECK_THROWS_WITH(pg::ReMax{}(in), Catch::StartsWith("ReMax: expected the greedy completions' rewards"));
  }
}
