// kaizen/loop/ppo.hpp - PPO with a critic for LLM policies: per-token values from a value model, GAE per
// token, the clipped surrogate for the actor, value clipping for the critic, critic warm-up, and a KL to a
// reference either as a per-token reward penalty or as a loss term.
//
// One step, for prompts x_1..x_P drawn from the prompt source:
//   1. sample G completions per prompt from the sampler (seed drawn from the loop's engine); r_b = reward
//   2. collate; log π_old = the trainer's log-probs of the sampled tokens (no gradient), log π_ref likewise
//      from the reference when config.kl_reward_coefficient > 0 or the objective has a KL term
//   3. V_old = critic.token_values(batch) [B, T] (no gradient): column t holds V(s_t), the value of the state
//      that generates completion token t; checked: [B, T], floating, finite on completion tokens
//   4. token rewards on the completion tokens (m = completion mask, last = the row's last completion token):
//        r_t = −β_r (log π_old,t − log π_ref,t)  +  [t = last] · r_b          (β_r = kl_reward_coefficient)
//      (the k1 penalty of InstructGPT; a row without completion tokens contributes nothing)
//   5. GAE over the completion tokens (policy_gradient::gae): δ_t = r_t + γ V_old,next − V_old,t,
//      A_t = δ_t + γλ A_next, returns R_t = A_t + V_old,t (V after the last token = 0);
//      with whiten_advantages: A ← (A − mean_m A) / sqrt(var_m A + 1e-8) over the batch's completion tokens
//   6. actor (skipped while step ≤ critic_warmup_steps): `epochs` passes over shuffled mini-batches of groups of
//      policy_gradient::policy_loss with the per-token A (loop::policy_gradient_update; the objective's clip is
//      PPO's token-level ratio clip, its KL term the loss-side KL to the reference)
//   7. critic: `critic_epochs` passes over shuffled mini-batches of groups of the clipped value loss
//        V_clip = V_old + clip(V − V_old, −ε_v, +ε_v)
//        L_V = c_v · ½ · Σ m_t max((V_t − R_t)², (V_clip,t − R_t)²) / Σ m_t       (ε_v <= 0: no clipping)
//   8. metrics (value_loss, value_clip_fraction, explained_variance 1 − Var_m(R − V_old) / Var_m(R), the
//      actor's loss / clip_fraction / kl / entropy, approx_kl = mean_m[(ρ − 1) − log ρ], ρ = π_new / π_old
//      after the actor epochs (one extra no-grad forward), ...); checkpoint
// Critic: any type with token_values(TokenBatch) -> [B, T] and parameters(); lm::ValueModel (a separate Llama
// trunk + scalar head) models it, and so does a user's head on the policy's own hidden states (return only
// the parameters the critic optimiser should train from parameters()).
// Checkpoints hold the policy (loop/checkpoint.hpp: parameters.pt, optimizer.pt, state.json with the step and
// the engine) plus critic_parameters.pt and critic_optimizer.pt; resuming continues exactly as the run that
// never stopped. The loop runs in one process (no communicator).
//
// References: Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv 1707.06347);
// Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage Estimation"
// (arXiv 1506.02438); Ouyang et al. 2022, "Training language models to follow instructions with human
// feedback" (per-token KL reward penalty, arXiv 2203.02155); Huang et al. 2022, "The 37 Implementation
// Details of Proximal Policy Optimization" (value clipping, advantage whitening, explained variance);
// Schulman 2020, "Approximating KL Divergence" (the k3 estimator used for approx_kl).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/checkpoint.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/prompts.hpp>
#include <kaizen/loop/rollout.hpp>
#include <kaizen/loop/update.hpp>
#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/torch/logit_transform.hpp>

namespace kaizen::loop {

/// A critic for PPO: per-token values V(s_t) [B, T] aligned with batch.input_ids (column t = the value of the
/// state that generates token t), and the parameters its optimiser trains.
template <class C>
concept Critic = requires(C& c, const TokenBatch& b) {
  { c.token_values(b) } -> std::convertible_to<torch::Tensor>;
  { c.parameters() } -> std::convertible_to<std::vector<torch::Tensor>>;
};

/// PPO's actor objective: token-level ratio, symmetric clip ε = 0.2, no KL in the loss, token mean.
using PpoObjective = policy_gradient::Objective<policy_gradient::TokenRatio, policy_gradient::SymmetricClip,
                                                policy_gradient::NoKl, policy_gradient::TokenMean>;
inline constexpr PpoObjective kPpoObjective{};

struct PpoConfig {
  std::int64_t steps = 100;              ///< the run ends after this many steps (counting resumed ones), >= 0
  std::int64_t prompts_per_step = 16;    ///< P, > 0
  std::int64_t group_size = 4;           ///< completions per prompt, >= 1 (mini-batches are made of whole groups)
  std::int64_t epochs = 1;               ///< actor passes over each step's rollouts, > 0
  std::int64_t critic_epochs = 1;        ///< critic passes over each step's rollouts, > 0
  std::int64_t minibatch_groups = 0;     ///< groups per optimiser step (actor and critic); 0 = all at once
  double learning_rate = 1e-4;           ///< actor AdamW, > 0
  std::int64_t warmup_steps = 0;         ///< actor learning-rate warm-up over its first updating steps, >= 0
  double critic_learning_rate = 1e-4;    ///< critic AdamW, > 0 (constant)
  double weight_decay = 0.0;             ///< AdamW decoupled weight decay (both), >= 0
  double beta1 = 0.9;                    ///< AdamW (both)
  double beta2 = 0.99;                   ///< AdamW (both)
  double max_grad_norm = 1.0;            ///< actor global-norm clip; <= 0 = off
  double critic_max_grad_norm = 1.0;     ///< critic global-norm clip; <= 0 = off
  double gamma = 1.0;                    ///< GAE discount γ ∈ [0, 1]
  double lambda = 0.95;                  ///< GAE λ ∈ [0, 1]
  bool whiten_advantages = true;         ///< whiten A over the batch's completion tokens
  double value_clip = 0.2;               ///< ε_v of V_clip; <= 0 = unclipped value loss
  double value_coefficient = 0.5;        ///< c_v, > 0
  std::int64_t critic_warmup_steps = 0;  ///< the first so many steps update the critic only, >= 0
  double kl_reward_coefficient = 0.0;    ///< β_r of the per-token KL reward penalty, >= 0 (0 = off);
                                         ///< a loss-side KL is the objective's Kl option
  SamplingParams sampling{};             ///< how rollouts are drawn (its seed is replaced every step)
  std::uint64_t seed = 0;                ///< seeds the loop's engine (prompts, sampler seeds, shuffles)
  CollateOptions collate{};              ///< pad id, vocabulary size, context (max_length), device
  std::int64_t checkpoint_every = 0;     ///< > 0: save to checkpoint_dir every so many steps and at the end
  std::filesystem::path checkpoint_dir;  ///< where checkpoints go
  std::filesystem::path resume_from;     ///< non-empty: continue from this checkpoint
  std::string name = "ppo";              ///< the metrics' "event" and the prefix of error messages
};

/// What a finished run hands back.
struct PpoResult {
  std::int64_t steps = 0;               ///< steps completed (including resumed ones)
  std::vector<nlohmann::json> history;  ///< the metrics of the steps this call ran
};

/// The clipped value loss and how often the clipped branch was the larger one.
struct ValueLossResult {
  torch::Tensor loss;          ///< scalar, with gradient through `values`
  double clip_fraction = 0.0;  ///< fraction of masked tokens where (V_clip − R)² > (V − R)²
};

/// L_V = c · ½ · Σ m max((V − R)², (V_clip − R)²) / Σ m with V_clip = V_old + clip(V − V_old, ±ε) (ε <= 0:
/// ½ Σ m (V − R)² / Σ m · c). `values` [B, T] (with gradient), `old_values`, `returns` [B, T], `mask` [B, T]
/// with at least one true entry. Throws kaizen::Error on mismatched shapes, an empty mask or c <= 0.
[[nodiscard]] inline ValueLossResult ppo_value_loss(const torch::Tensor& values, const torch::Tensor& old_values,
                                                    const torch::Tensor& returns, const torch::Tensor& mask,
                                                    double clip, double coefficient) {
  KAIZEN_CHECK(values.defined() && values.dim() == 2, "ppo_value_loss: expected [B, T] values, got ",
               values.defined() ? values.sizes() : torch::IntArrayRef{});
  KAIZEN_CHECK(old_values.sizes() == values.sizes() && returns.sizes() == values.sizes() &&
                   mask.sizes() == values.sizes(),
               "ppo_value_loss: expected old_values, returns and mask of shape ", values.sizes(), ", got ",
               old_values.sizes(), ", ", returns.sizes(), " and ", mask.sizes());
  KAIZEN_CHECK(coefficient > 0.0 && std::isfinite(coefficient), "ppo_value_loss: the coefficient must be > 0, got ",
               coefficient);
  const torch::Tensor m = mask.to(values.device(), values.scalar_type());
  const double n = m.sum().item<double>();
  KAIZEN_CHECK(n > 0.0, "ppo_value_loss: the mask selects no token");
  const torch::Tensor v_old = old_values.detach().to(values.device(), values.scalar_type());
  const torch::Tensor ret = returns.detach().to(values.device(), values.scalar_type());
  const torch::Tensor unclipped = (values - ret).square();
  ValueLossResult out;
  if (clip > 0.0) {
    const torch::Tensor v_clip = v_old + (values - v_old).clamp(-clip, clip);
    const torch::Tensor clipped = (v_clip - ret).square();
    out.loss = coefficient * 0.5 * (torch::maximum(unclipped, clipped) * m).sum() / n;
    out.clip_fraction = ((clipped > unclipped).to(m.scalar_type()) * m).sum().item<double>() / n;
  } else {
    out.loss = coefficient * 0.5 * (unclipped * m).sum() / n;
  }
  return out;
}

/// 1 − Var_m(R − V) / Var_m(R) over the masked tokens (population variances); NaN when Var_m(R) = 0 or the
/// mask is empty. 1 = the values predict the returns, 0 = no better than their mean.
[[nodiscard]] inline double explained_variance(const torch::Tensor& values, const torch::Tensor& returns,
                                               const torch::Tensor& mask) {
  const torch::Tensor m = mask.to(torch::kCPU, torch::kDouble);
  const double n = m.sum().item<double>();
  if (n <= 0.0) return std::numeric_limits<double>::quiet_NaN();
  auto var = [&](const torch::Tensor& x) {
    const double mean = (x * m).sum().item<double>() / n;
    return ((x - mean).square() * m).sum().item<double>() / n;
  };
  const torch::Tensor r = returns.detach().to(torch::kCPU, torch::kDouble);
  const double vr = var(r);
  if (vr <= 0.0) return std::numeric_limits<double>::quiet_NaN();
  return 1.0 - var(r - values.detach().to(torch::kCPU, torch::kDouble)) / vr;
}

/// Per-token rewards of step 4 (see the top of the file): the outcome reward r_b on the row's last completion
/// token, minus β (log π_old − log π_ref) on every completion token when β > 0. `rewards` [B], `mask` [B, T];
/// `old_logprobs`, `ref_logprobs` [B, T] (only read when β > 0). Returns [B, T] in `mask`-aligned float32 on
/// the device of `old_logprobs` (or of `mask`).
[[nodiscard]] inline torch::Tensor ppo_token_rewards(const torch::Tensor& rewards, const torch::Tensor& mask,
                                                     const torch::Tensor& old_logprobs,
                                                     const torch::Tensor& ref_logprobs, double beta) {
  KAIZEN_CHECK(mask.defined() && mask.dim() == 2, "ppo_token_rewards: expected a [B, T] mask");
  KAIZEN_CHECK(rewards.defined() && rewards.dim() == 1 && rewards.size(0) == mask.size(0),
               "ppo_token_rewards: expected [", mask.size(0), "] rewards, got ",
               rewards.defined() ? rewards.sizes() : torch::IntArrayRef{});
  KAIZEN_CHECK(beta >= 0.0 && std::isfinite(beta), "ppo_token_rewards: beta must be >= 0, got ", beta);
  const torch::Device device = old_logprobs.defined() ? old_logprobs.device() : mask.device();
  const torch::Tensor m = mask.to(device, torch::kFloat);
  const std::int64_t T = m.size(1);
  // The last completion column of each row: argmax of m_t · (t + 1); rows without completion tokens get none.
  const torch::Tensor cols = torch::arange(1, T + 1, torch::TensorOptions().dtype(torch::kFloat).device(device));
  const torch::Tensor last = (m * cols).argmax(1);
  const torch::Tensor has = m.sum(1) > 0;
  torch::Tensor out = torch::zeros_like(m);
  const torch::Tensor r = torch::where(has, rewards.to(device, torch::kFloat), torch::zeros_like(m.select(1, 0)));
  out.scatter_(1, last.unsqueeze(1), r.unsqueeze(1));
  if (beta > 0.0) {
    KAIZEN_CHECK(old_logprobs.defined() && ref_logprobs.defined() && old_logprobs.sizes() == mask.sizes() &&
                     ref_logprobs.sizes() == mask.sizes(),
                 "ppo_token_rewards: a KL penalty needs [B, T] old and reference log-probs");
    out = out - beta * (old_logprobs.to(torch::kFloat) - ref_logprobs.to(device, torch::kFloat)) * m;
  }
  return out;
}

namespace detail {

inline void check_ppo_config(const PpoConfig& c) {
  const std::string& n = c.name;
  KAIZEN_CHECK(c.steps >= 0, n, ": steps must be >= 0, got ", c.steps);
  KAIZEN_CHECK(c.prompts_per_step > 0, n, ": prompts_per_step must be > 0, got ", c.prompts_per_step);
  KAIZEN_CHECK(c.group_size >= 1, n, ": group_size must be >= 1, got ", c.group_size);
  KAIZEN_CHECK(c.epochs > 0, n, ": epochs must be > 0, got ", c.epochs);
  KAIZEN_CHECK(c.critic_epochs > 0, n, ": critic_epochs must be > 0, got ", c.critic_epochs);
  KAIZEN_CHECK(c.minibatch_groups >= 0, n, ": minibatch_groups must be >= 0 (0 = all), got ", c.minibatch_groups);
  KAIZEN_CHECK(c.learning_rate > 0.0, n, ": learning_rate must be > 0, got ", c.learning_rate);
  KAIZEN_CHECK(c.critic_learning_rate > 0.0, n, ": critic_learning_rate must be > 0, got ", c.critic_learning_rate);
  KAIZEN_CHECK(c.weight_decay >= 0.0, n, ": weight_decay must be >= 0, got ", c.weight_decay);
  KAIZEN_CHECK(c.warmup_steps >= 0, n, ": warmup_steps must be >= 0, got ", c.warmup_steps);
  KAIZEN_CHECK(c.gamma >= 0.0 && c.gamma <= 1.0, n, ": gamma must be in [0, 1], got ", c.gamma);
  KAIZEN_CHECK(c.lambda >= 0.0 && c.lambda <= 1.0, n, ": lambda must be in [0, 1], got ", c.lambda);
  KAIZEN_CHECK(std::isfinite(c.value_clip), n, ": value_clip must be finite (<= 0 = off), got ", c.value_clip);
  KAIZEN_CHECK(c.value_coefficient > 0.0 && std::isfinite(c.value_coefficient), n,
               ": value_coefficient must be > 0, got ", c.value_coefficient);
  KAIZEN_CHECK(c.critic_warmup_steps >= 0, n, ": critic_warmup_steps must be >= 0, got ", c.critic_warmup_steps);
  KAIZEN_CHECK(c.kl_reward_coefficient >= 0.0 && std::isfinite(c.kl_reward_coefficient), n,
               ": kl_reward_coefficient must be >= 0, got ", c.kl_reward_coefficient);
  KAIZEN_CHECK(c.checkpoint_every >= 0, n, ": checkpoint_every must be >= 0, got ", c.checkpoint_every);
  KAIZEN_CHECK(c.checkpoint_every == 0 || !c.checkpoint_dir.empty(), n, ": checkpoint_every > 0 needs a checkpoint_dir");
  validate(c.sampling);
}

/// What the critic returned: defined, floating, [B, T], finite on the completion tokens.
inline void check_critic_values(const std::string& who, const torch::Tensor& v, const TokenBatch& batch) {
  const std::int64_t B = batch.batch_size(), T = batch.length();
  KAIZEN_CHECK(v.defined() && v.is_floating_point(), who, ": the critic returned ",
               v.defined() ? "a non-floating tensor" : "an undefined tensor", "; expected floating values [", B, ", ",
               T, "]");
  KAIZEN_CHECK(v.dim() == 2 && v.size(0) == B && v.size(1) == T, who, ": the critic returned shape ", v.sizes(),
               "; expected [", B, ", ", T, "] (one value per token)");
  const torch::Tensor bad = torch::logical_not(torch::isfinite(v.detach())).logical_and(
      batch.completion_mask.to(v.device(), torch::kBool));
  if (bad.any().item<bool>()) {
    const torch::Tensor at = bad.nonzero().cpu();
    const std::int64_t b = at[0][0].item<std::int64_t>(), t = at[0][1].item<std::int64_t>();
    fail(who, ": the critic returned a non-finite value (", v.detach()[b][t].item<double>(), ") at row ", b,
         ", column ", t);
  }
}

/// Shuffled group mini-batches: row indices of each mini-batch, one Fisher-Yates shuffle from `rng`.
[[nodiscard]] inline std::vector<std::vector<std::int64_t>> group_minibatches(std::int64_t groups, std::int64_t group_size,
                                                                              std::int64_t minibatch_groups, Rng& rng) {
  const std::int64_t per_batch = minibatch_groups > 0 ? std::min(minibatch_groups, groups) : groups;
  std::vector<std::int64_t> order(static_cast<std::size_t>(groups));
  for (std::int64_t g = 0; g < groups; ++g) order[static_cast<std::size_t>(g)] = g;
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[uniform_index(rng, i)]);
  std::vector<std::vector<std::int64_t>> out;
  for (std::int64_t start = 0; start < groups; start += per_batch) {
    std::vector<std::int64_t> rows;
    for (std::int64_t g = start; g < std::min(groups, start + per_batch); ++g)
      for (std::int64_t i = 0; i < group_size; ++i) rows.push_back(order[static_cast<std::size_t>(g)] * group_size + i);
    out.push_back(std::move(rows));
  }
  return out;
}

inline void save_critic(const std::filesystem::path& dir, const std::vector<torch::Tensor>& params,
                        torch::optim::Optimizer& optimizer) {
  std::vector<torch::Tensor> cpu;
  for (const torch::Tensor& p : params) cpu.push_back(p.detach().cpu());
  torch::save(cpu, (dir / "critic_parameters.pt").string());
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  archive.save_to((dir / "critic_optimizer.pt").string());
}

inline void load_critic(const std::filesystem::path& dir, const std::vector<torch::Tensor>& params,
                        torch::optim::Optimizer& optimizer, const std::string& who) {
  for (const char* name : {"critic_parameters.pt", "critic_optimizer.pt"})
    KAIZEN_CHECK(std::filesystem::exists(dir / name), who, ": ", (dir / name).string(), " does not exist");
  std::vector<torch::Tensor> saved;
  torch::load(saved, (dir / "critic_parameters.pt").string());
  KAIZEN_CHECK(saved.size() == params.size(), who, ": the checkpoint has ", saved.size(),
               " critic parameter tensors but the critic has ", params.size());
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) {
      KAIZEN_CHECK(saved[i].sizes() == params[i].sizes(), who, ": critic parameter ", i, " has shape ",
                   saved[i].sizes(), " in the checkpoint but ", params[i].sizes(), " in the critic");
      torch::Tensor p = params[i];
      p.copy_(saved[i]);
    }
  }
  torch::serialize::InputArchive archive;
  archive.load_from((dir / "critic_optimizer.pt").string());
  optimizer.load(archive);
}

}  // namespace detail

/// Runs PPO from the current policy and critic (or from `config.resume_from`) until `config.steps` steps are
/// done (see the top of the file).
///
/// `policy`: trained in place (any kaizen::Policy; a HiddenStatePolicy takes the fused log-prob path).
/// `critic`: trained in place (loop::Critic, e.g. lm::ValueModel). `sampler`: samples from the policy itself.
/// `reward`: any OutcomeReward. `source(arm, rng)`: prompts (arm = -1). `objective`: the actor's
/// policy_gradient::Objective (kPpoObjective: PPO's clip ε = 0.2); its KL term, if any, is the loss-side KL.
/// `reference`: a frozen policy of any Policy type, required when config.kl_reward_coefficient > 0 or the
/// objective has a KL term. `on_metrics` receives {"event": config.name, "step", ...} after every step.
/// Throws kaizen::Error on an invalid config (γ or λ outside [0, 1], ...), a missing reference, critic values
/// of the wrong shape or non-finite, and for everything the sampler, reward, collate, gae or policy_loss reject.
template <Policy P, Critic V, Sampler S, OutcomeReward R, PromptSource Src, class Ratio, class Clip, class Kl,
          class Aggregate, Policy Ref = P>
PpoResult ppo(P& policy, V& critic, S& sampler, R& reward, Src& source,
              const policy_gradient::Objective<Ratio, Clip, Kl, Aggregate>& objective, const PpoConfig& config,
              const MetricsCallback& on_metrics = {}, Ref* reference = nullptr) {
  using Clock = std::chrono::steady_clock;
  constexpr bool kKlLoss = Kl::estimator != policy_gradient::KlEstimator::none;
  const std::string& who = config.name;
  detail::check_ppo_config(config);
  const bool kl_reward = config.kl_reward_coefficient > 0.0;
  KAIZEN_CHECK(!(kKlLoss || kl_reward) || reference != nullptr, who, ": ",
               kKlLoss ? "the objective has a KL term" : "kl_reward_coefficient > 0",
               ", so a reference policy is required");
  const bool with_ref = kKlLoss || kl_reward;
  const lm::LogitTransform transform = lm::LogitTransform::from(config.sampling);
  const std::vector<torch::Tensor> params = policy.parameters();
  const std::vector<torch::Tensor> critic_params = critic.parameters();
  KAIZEN_CHECK(!critic_params.empty(), who, ": the critic has no parameters to train");
  const AdamWConfig adam{.learning_rate = config.learning_rate, .weight_decay = config.weight_decay,
                         .beta1 = config.beta1, .beta2 = config.beta2};
  torch::optim::AdamW optimizer = make_adamw(params, adam);
  AdamWConfig critic_adam = adam;
  critic_adam.learning_rate = config.critic_learning_rate;
  torch::optim::AdamW critic_optimizer = make_adamw(critic_params, critic_adam);
  LoopState state;
  state.rng.seed(config.seed);
  if (!config.resume_from.empty()) {
    state = load_checkpoint(config.resume_from, policy, optimizer);
    detail::load_critic(config.resume_from, critic_params, critic_optimizer, who);
  }
  auto save = [&] {
    save_checkpoint(config.checkpoint_dir, policy, optimizer, state);
    detail::save_critic(config.checkpoint_dir, critic_params, critic_optimizer);
  };
  const RolloutOptions rollout_options{.prompts = config.prompts_per_step, .group_size = config.group_size, .who = who};

  PpoResult result;
  while (state.step < config.steps) {
    const auto t0 = Clock::now();
    // 1. Prompts, G rollouts each, rewards.
    const StepRollouts r = rollout_step(sampler, reward, source, rollout_options, config.sampling, state.rng);
    const auto sampled = static_cast<double>(r.sampled_groups * config.group_size);
    const bool actor_updates = state.step >= config.critic_warmup_steps;
    nlohmann::json metrics = {{"event", who},
                              {"step", state.step + 1},
                              {"reward_mean", r.reward_sum / sampled},
                              {"completion_length_mean", static_cast<double>(r.sampled_tokens) / sampled},
                              {"actor_updated", actor_updates}};
    const auto t1 = Clock::now();
    // 2. Collate; old / reference log-probs.
    const TokenBatch batch = collate(std::span<const Prompt>(r.prompts), std::span<const Completion>(r.completions),
                                     std::span<const double>(r.rewards), config.group_size, config.collate);
    const torch::Tensor old_logprobs = frozen_logprobs(policy, batch, transform);
    torch::Tensor ref_logprobs;
    if (with_ref) ref_logprobs = frozen_logprobs(*reference, batch, transform);
    const torch::Tensor mask = batch.completion_mask.to(old_logprobs.device());
    const torch::Tensor m = mask.to(torch::kFloat);
    const double tokens = m.sum().item<double>();
    // 3. The critic's values of the rollouts' states.
    torch::Tensor old_values;
    {
      torch::NoGradGuard no_grad;
      old_values = critic.token_values(batch);
    }
    detail::check_critic_values(who, old_values, batch);
    old_values = torch::where(mask, old_values.detach().to(old_logprobs.device(), torch::kFloat), torch::zeros_like(m));
    // 4-5. Token rewards, GAE, whitening.
    const torch::Tensor token_rewards = ppo_token_rewards(batch.rewards, mask, old_logprobs, ref_logprobs,
                                                          config.kl_reward_coefficient);
    if (kl_reward)
      metrics["kl_reward"] = ((old_logprobs - ref_logprobs) * m).sum().item<double>() / std::max(tokens, 1.0);
    const policy_gradient::GaeResult g = policy_gradient::gae(token_rewards, old_values, mask, config.gamma, config.lambda);
    torch::Tensor advantages = g.advantages;
    metrics["advantage_mean"] = (advantages * m).sum().item<double>() / std::max(tokens, 1.0);
    if (config.whiten_advantages) {
      KAIZEN_CHECK(tokens >= 2.0, who, ": whitening the advantages needs at least 2 completion tokens in the step, got ",
                   tokens);
      advantages = policy_gradient::masked_whiten(advantages, mask);
    }
    metrics["value_mean"] = (old_values * m).sum().item<double>() / std::max(tokens, 1.0);
    metrics["return_mean"] = (g.returns * m).sum().item<double>() / std::max(tokens, 1.0);
    const double ev = explained_variance(old_values, g.returns, mask);
    if (std::isfinite(ev)) metrics["explained_variance"] = ev;
    // 6. Actor epochs (after the critic warm-up).
    if (actor_updates) {
      const double lr =
          warmup_learning_rate(config.learning_rate, config.warmup_steps, state.step + 1 - config.critic_warmup_steps);
      set_learning_rate(optimizer, lr);
      metrics["learning_rate"] = lr;
      policy_gradient_update(policy, optimizer, params, batch, old_logprobs, ref_logprobs, advantages, transform,
                             objective,
                             {.group_size = config.group_size, .epochs = config.epochs,
                              .minibatch_groups = config.minibatch_groups, .max_grad_norm = config.max_grad_norm},
                             state.rng)
          .write_to(metrics);
      const torch::Tensor new_logprobs = frozen_logprobs(policy, batch, transform);
      const torch::Tensor log_ratio = (new_logprobs - old_logprobs) * m;
      metrics["approx_kl"] = ((log_ratio.exp() - 1.0 - log_ratio) * m).sum().item<double>() / std::max(tokens, 1.0);
    }
    // 7. Critic epochs.
    const std::int64_t groups = batch.batch_size() / config.group_size;
    double value_loss = 0.0, value_clip_fraction = 0.0, critic_grad_norm = 0.0;
    std::int64_t critic_updates = 0;
    for (std::int64_t epoch = 0; epoch < config.critic_epochs; ++epoch) {
      for (const std::vector<std::int64_t>& rows :
           detail::group_minibatches(groups, config.group_size, config.minibatch_groups, state.rng)) {
        const torch::Tensor index = torch::tensor(rows, torch::kLong);
        const TokenBatch mb = select_rows(batch, index);
        const torch::Tensor idx = index.to(old_values.device());
        const torch::Tensor mb_mask = mask.index_select(0, idx);
        if (!mb_mask.any().item<bool>()) continue;  // only empty completions: nothing to regress
        torch::Tensor values = critic.token_values(mb);
        detail::check_critic_values(who, values, mb);
        values = values.to(old_values.device(), torch::kFloat);
        const ValueLossResult vl = ppo_value_loss(values, old_values.index_select(0, idx), g.returns.index_select(0, idx),
                                                  mb_mask, config.value_clip, config.value_coefficient);
        value_loss += vl.loss.item<double>();
        value_clip_fraction += vl.clip_fraction;
        critic_grad_norm += apply_update(critic_optimizer, critic_params, vl.loss, config.critic_max_grad_norm);
        ++critic_updates;
      }
    }
    if (critic_updates > 0) {
      const auto n = static_cast<double>(critic_updates);
      metrics["value_loss"] = value_loss / n;
      metrics["value_clip_fraction"] = value_clip_fraction / n;
      metrics["critic_grad_norm"] = critic_grad_norm / n;
    }
    metrics["critic_updates"] = critic_updates;
    metrics["critic_learning_rate"] = config.critic_learning_rate;
    // 8. Bookkeeping, metrics, checkpoint.
    ++state.step;
    const auto t2 = Clock::now();
    metrics["sample_seconds"] = std::chrono::duration<double>(t1 - t0).count();
    metrics["train_seconds"] = std::chrono::duration<double>(t2 - t1).count();
    metrics["sampled_tokens"] = r.sampled_tokens;
    if (on_metrics) on_metrics(metrics);
    result.history.push_back(std::move(metrics));
    if (config.checkpoint_every > 0 && (state.step % config.checkpoint_every == 0 || state.step == config.steps)) save();
  }
  result.steps = state.step;
  return result;
}

/// PPO with the default actor objective (kPpoObjective) and no reference.
template <Policy P, Critic V, Sampler S, OutcomeReward R, PromptSource Src>
PpoResult ppo(P& policy, V& critic, S& sampler, R& reward, Src& source, const PpoConfig& config,
              const MetricsCallback& on_metrics = {}) {
  return ppo(policy, critic, sampler, reward, source, kPpoObjective, config, on_metrics, static_cast<P*>(nullptr));
}

}  // namespace kaizen::loop
