// kaizen/loop/score.hpp - SCoRe: two-attempt self-correction trained by on-policy multi-turn RL on the
// model's own attempts only.
//
// One step, for P prompts x drawn uniformly (with replacement) from the training set by the loop's engine:
//   1. two-attempt rollouts (loop/multi_turn.hpp): G first attempts y₁ per prompt, one second attempt y₂ per
//      first attempt from x₂ = x ⊕ y₁ ⊕ instruction; r_k = r̂(x, y_k) from the reward (a 0/1 checker)
//   2. per-attempt rewards (score_turn_rewards), stage I for the first `stage1_steps` steps, then stage II:
//        stage I:   R₁ = 0,   R₂ = r₂                                   (optimise the second attempt only)
//        stage II:  R₁ = r₁,  R₂ = r₂ + α (r₂ − r₁)                      (both; the shaped bonus pays for fixing
//                                                                        and charges for breaking an answer)
//      each attempt's tokens are credited with their own attempt's reward (the bonus never reaches the
//      first attempt, which would otherwise be paid (1 − α) r₁ for being right)
//   3. one batch with both attempts as rows: group g = (prompt, attempt) holds its G rows; advantages
//      A = group_advantages(R, g) (kaizen::policy_gradient; with scale none: REINFORCE with the group mean
//      as baseline); log π_old (the policy at sampling time) and log π_ref (the frozen reference) without
//      gradient, under the sampling transform
//   4. one AdamW update on
//        L = policy_loss(log π_θ, log π_old, A; objective without KL)
//          + aggregate(β_row · KL_t(π_θ ‖ π_ref), objective's aggregation)
//      with β_row = β₂ on first attempts in stage I (the strong pin of attempt 1 to the base), β₁ on
//      everything else (stage I second attempts, both attempts in stage II), KL_t the chosen estimator (k3)
// The checkpoint holds the policy, the AdamW state, the engine, the step (which fixes the stage) and the
// reference's parameters (reference.pt), so a run resumed mid-stage is bit-equal to the one that never stopped.
//
// Defaults (the paper; β/α as in a public re-implementation's math config): β₁ = 0.01, β₂ = 0.1 = 10 β₁,
// α = 10. Oracle (α = 10, stage II): (r₁, r₂) = (0, 1) → R₂ = 11; (1, 0) → −10; (1, 1) → 1; (0, 0) → 0.
//
// Reference: A. Kumar, V. Zhuang, R. Agarwal, Y. Su, J. D. Co-Reyes, A. Singh, K. Baumli, S. Iqbal,
// C. Bishop, R. Roelofs, L. M. Zhang, K. McKinney, D. Shrivastava, C. Paduraru, G. Tucker, D. Precup,
// F. Behbahani, A. Faust, "Training Language Models to Self-Correct via Reinforcement Learning",
// arXiv 2409.12917 (2024).
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/reward.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/checkpoint.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/multi_turn.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/snapshot.hpp>
#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/aggregation.hpp>
#include <kaizen/policy_gradient/kl.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/torch/logit_transform.hpp>
#include <kaizen/torch/policy_logprobs.hpp>

namespace kaizen::loop {

enum class ScoreStage : std::uint8_t { one = 1, two = 2 };

/// The rewards credited to the two attempts of one pair.
struct TurnRewards {
  double first = 0.0;
  double second = 0.0;
};

/// Stage I: (0, r₂); stage II: (r₁, r₂ + α (r₂ − r₁)). Throws kaizen::Error on α < 0 or a non-finite value.
[[nodiscard]] inline TurnRewards score_turn_rewards(double r1, double r2, double alpha, ScoreStage stage) {
  KAIZEN_CHECK(std::isfinite(alpha) && alpha >= 0.0, "score_turn_rewards: alpha must be finite and >= 0, got ", alpha);
  KAIZEN_CHECK(std::isfinite(r1) && std::isfinite(r2), "score_turn_rewards: rewards must be finite, got ", r1, " and ", r2);
  if (stage == ScoreStage::one) return {0.0, r2};
  return {r1, r2 + alpha * (r2 - r1)};
}

/// SCoRe's objective without its KL (which the loop adds per attempt): REINFORCE on one on-policy update
/// (the ratio is 1), per-sequence mean of the token losses.
using ScoreObjective =
    policy_gradient::Objective<policy_gradient::TokenRatio, policy_gradient::NoClip, policy_gradient::NoKl,
                               policy_gradient::SeqMeanTokenMean>;

struct ScoreConfig {
  std::int64_t stage1_steps = 50;      ///< steps of stage I, >= 0
  std::int64_t stage2_steps = 50;      ///< steps of stage II after them, >= 0
  std::int64_t prompts_per_step = 16;  ///< P, > 0
  std::int64_t group_size = 4;         ///< G first attempts per prompt (one second attempt each), >= 2
  double alpha = 10.0;                 ///< stage-II shaping of the second attempt's reward, >= 0
  double beta1 = 0.01;                 ///< KL to the reference on every attempt but stage I's first, >= 0
  double beta2 = 0.1;                  ///< stage I: KL pin of the first attempt to the reference, >= 0
  policy_gradient::KlEstimator kl_estimator = policy_gradient::KlEstimator::k3;  ///< not k3_importance
  std::vector<TokenId> instruction;    ///< the correction instruction appended after the first attempt
  AdamWConfig optimizer{.learning_rate = 1e-4, .weight_decay = 0.0, .beta1 = 0.9, .beta2 = 0.99};
  double max_grad_norm = 1.0;          ///< <= 0 = no clip
  SamplingParams sampling{};           ///< both attempts (its seed is replaced per sampler call)
  policy_gradient::GroupAdvantageOptions advantages{};
  std::uint64_t seed = 0;              ///< the loop's engine (prompt draws, sampler seeds)
  CollateOptions collate{};            ///< max_length must hold x ⊕ y₁ ⊕ instruction ⊕ y₂
  std::int64_t checkpoint_every = 0;   ///< > 0: checkpoint every so many steps and at the end
  std::filesystem::path checkpoint_dir;
  std::filesystem::path resume_from;   ///< non-empty: continue from this checkpoint
  std::int64_t stop_after_steps = 0;   ///< > 0: stop (with a checkpoint) once this many steps are done
};

struct ScoreResult {
  std::int64_t steps = 0;               ///< steps done (including resumed ones)
  bool stopped = false;                 ///< ended by stop_after_steps
  std::vector<nlohmann::json> history;  ///< the "score" metrics of the steps this call ran
};

namespace detail {

inline void check_config(const ScoreConfig& c) {
  KAIZEN_CHECK(c.stage1_steps >= 0 && c.stage2_steps >= 0, "score: stage1_steps and stage2_steps must be >= 0, got ",
               c.stage1_steps, " and ", c.stage2_steps);
  KAIZEN_CHECK(c.prompts_per_step > 0, "score: prompts_per_step must be > 0, got ", c.prompts_per_step);
  KAIZEN_CHECK(c.group_size >= 2, "score: group_size must be >= 2 (the advantage baseline is the group mean), got ",
               c.group_size);
  KAIZEN_CHECK(std::isfinite(c.alpha) && c.alpha >= 0.0, "score: alpha must be finite and >= 0, got ", c.alpha);
  KAIZEN_CHECK(std::isfinite(c.beta1) && c.beta1 >= 0.0, "score: beta1 must be finite and >= 0, got ", c.beta1);
  KAIZEN_CHECK(std::isfinite(c.beta2) && c.beta2 >= 0.0, "score: beta2 must be finite and >= 0, got ", c.beta2);
  KAIZEN_CHECK(c.kl_estimator != policy_gradient::KlEstimator::none &&
                   c.kl_estimator != policy_gradient::KlEstimator::k3_importance,
               "score: kl_estimator must be k1, k2 or k3 (the update is on-policy; set beta1 = beta2 = 0 for no KL)");
  KAIZEN_CHECK(c.optimizer.learning_rate > 0.0, "score: learning_rate must be > 0, got ", c.optimizer.learning_rate);
  KAIZEN_CHECK(c.checkpoint_every >= 0, "score: checkpoint_every must be >= 0, got ", c.checkpoint_every);
  KAIZEN_CHECK(c.checkpoint_every == 0 || !c.checkpoint_dir.empty(), "score: checkpoint_every > 0 needs a checkpoint_dir");
  KAIZEN_CHECK(c.stop_after_steps >= 0, "score: stop_after_steps must be >= 0, got ", c.stop_after_steps);
  KAIZEN_CHECK(c.stop_after_steps == 0 || c.checkpoint_every > 0,
               "score: stop_after_steps > 0 needs checkpoint_every > 0 (the stop writes a checkpoint)");
  validate(c.sampling);
}

}  // namespace detail

/// Runs SCoRe (see the top of the file) on `prompts` until stage1_steps + stage2_steps steps are done.
/// `policy`: trained in place; `sampler` must sample from it. `reference`: the frozen π_ref of the KL terms
/// (typically a copy of the policy before training; never updated; saved in checkpoints and restored from
/// them). `reward`: the checker r̂(x, y) (0/1 for the metrics' threshold 1). `objective`: the policy term,
/// without KL (ScoreObjective by default). `on_metrics` receives {"event":"score","step","stage",
/// "accuracy_t1","accuracy_t2","delta","delta_i_to_c","delta_c_to_i","reward_t1","reward_t2",
/// "shaped_reward_t2","loss","policy_loss","kl_t1","kl_t2","grad_norm",...} per step (training attempts).
/// Throws kaizen::Error on an empty prompt set, a bad config (α < 0, β < 0, G < 2, ...), a checkpoint
/// without the reference, and everything the sampler, reward, collate or the loss reject.
template <Policy P, Sampler S, OutcomeReward R, class Ratio = policy_gradient::TokenRatio,
          class Clip = policy_gradient::NoClip, class Kl = policy_gradient::NoKl,
          class Aggregate = policy_gradient::SeqMeanTokenMean>
ScoreResult score(P& policy, P& reference, S& sampler, R& reward, std::span<const Prompt> prompts,
                  const ScoreConfig& config, const MetricsCallback& on_metrics = {},
                  const policy_gradient::Objective<Ratio, Clip, Kl, Aggregate>& objective = {}) {
  static_assert(Kl::estimator == policy_gradient::KlEstimator::none,
                "kaizen::loop::score: the loop adds its own per-attempt KL (beta1, beta2); pass an objective "
                "without a KL term (policy_gradient::NoKl)");
  using Clock = std::chrono::steady_clock;
  KAIZEN_CHECK(!prompts.empty(), "score: the prompt set is empty; expected at least one training prompt");
  detail::check_config(config);
  const lm::LogitTransform transform = lm::LogitTransform::from(config.sampling);
  const std::vector<torch::Tensor> params = policy.parameters();
  torch::optim::AdamW optimizer = make_adamw(params, config.optimizer);
  LoopState state;
  state.rng.seed(config.seed);
  if (!config.resume_from.empty()) {
    state = load_checkpoint(config.resume_from, policy, optimizer);
    KAIZEN_CHECK(std::filesystem::exists(config.resume_from / "reference.pt"), "score: ",
                 (config.resume_from / "reference.pt").string(),
                 " does not exist (not a checkpoint of this loop: the reference is saved with it)");
    const torch::Device device = params.empty() ? torch::Device(torch::kCPU) : params.front().device();
    restore_snapshot(reference, load_snapshot(config.resume_from / "reference.pt", device), "score");
  }
  auto save = [&] {
    save_checkpoint(config.checkpoint_dir, policy, optimizer, state);
    save_snapshot(config.checkpoint_dir / "reference.pt", take_snapshot(reference));
  };
  const std::int64_t total = config.stage1_steps + config.stage2_steps;
  const auto G = static_cast<std::size_t>(config.group_size);

  ScoreResult result;
  while (state.step < total) {
    if (config.stop_after_steps > 0 && state.step >= config.stop_after_steps) {
      save();
      result.stopped = true;
      result.steps = state.step;
      return result;
    }
    const auto t0 = Clock::now();
    const ScoreStage stage = state.step < config.stage1_steps ? ScoreStage::one : ScoreStage::two;
    // 1. Prompts, two attempts each, rewards against the original prompt.
    std::vector<Prompt> chosen;
    chosen.reserve(static_cast<std::size_t>(config.prompts_per_step));
    for (std::int64_t i = 0; i < config.prompts_per_step; ++i) chosen.push_back(prompts[uniform_index(state.rng, prompts.size())]);
    const TwoTurnRollouts r = two_turn_rollout(sampler, reward, std::span<const Prompt>(chosen), config.group_size,
                                               config.sampling, config.instruction, state.rng, "score");
    const auto t1 = Clock::now();
    // 2. Per-attempt rewards of this stage.
    const std::size_t n = r.first.size();
    std::vector<Rollout> rows;
    rows.reserve(2 * n);
    double shaped2 = 0.0;
    for (std::size_t p = 0; p < chosen.size(); ++p) {
      for (std::size_t i = p * G; i < (p + 1) * G; ++i) {
        const TurnRewards t = score_turn_rewards(r.first_rewards[i], r.second_rewards[i], config.alpha, stage);
        rows.push_back(Rollout{r.prompts[i].tokens, r.first[i], t.first, static_cast<std::int64_t>(2 * p)});
      }
      for (std::size_t i = p * G; i < (p + 1) * G; ++i) {
        const TurnRewards t = score_turn_rewards(r.first_rewards[i], r.second_rewards[i], config.alpha, stage);
        rows.push_back(Rollout{r.second_prompts[i].tokens, r.second[i], t.second, static_cast<std::int64_t>(2 * p + 1)});
        shaped2 += t.second / static_cast<double>(n);
      }
    }
    // 3. One batch, group-relative advantages, frozen log-probs.
    const TokenBatch batch = collate(std::span<const Rollout>(rows), config.collate);
    const torch::Tensor old_logprobs = frozen_logprobs(policy, batch, transform);
    const torch::Tensor ref_logprobs = frozen_logprobs(reference, batch, transform);
    const torch::Tensor advantages = policy_gradient::group_advantages(batch.rewards.to(old_logprobs.dtype()),
                                                                       batch.group_ids, config.advantages);
    std::vector<double> beta_rows(rows.size(), config.beta1);
    std::vector<double> is_first(rows.size(), 0.0);
    for (std::size_t p = 0; p < chosen.size(); ++p)
      for (std::size_t i = 0; i < G; ++i) {
        is_first[2 * p * G + i] = 1.0;
        if (stage == ScoreStage::one) beta_rows[2 * p * G + i] = config.beta2;
      }
    // 4. One update on the policy term plus the per-attempt KL.
    const torch::Tensor logprobs = loop::policy_logprobs(policy, batch, transform);
    const auto pg = policy_gradient::policy_loss(logprobs, old_logprobs, torch::Tensor(), advantages,
                                                 batch.completion_mask, objective);
    const torch::Tensor kl = policy_gradient::kl_estimate(logprobs, ref_logprobs, batch.completion_mask, config.kl_estimator);
    const auto opts = torch::TensorOptions().dtype(kl.scalar_type()).device(kl.device());
    const torch::Tensor beta = torch::tensor(beta_rows, torch::kDouble).to(opts).unsqueeze(1);
    const torch::Tensor kl_loss = policy_gradient::aggregate(kl * beta, batch.completion_mask, objective.aggregation);
    const torch::Tensor loss = pg.loss + kl_loss;
    const double loss_value = loss.item<double>();
    const double grad_norm = apply_update(optimizer, params, loss, config.max_grad_norm);
    // Mean KL per token of each attempt (diagnostics).
    double kl_t1 = 0.0, kl_t2 = 0.0;
    {
      torch::NoGradGuard no_grad;
      const torch::Tensor m = batch.completion_mask.to(kl.scalar_type());
      const torch::Tensor first = torch::tensor(is_first, torch::kDouble).to(opts).unsqueeze(1);
      kl_t1 = ((kl * first).sum() / (m * first).sum()).item<double>();
      kl_t2 = ((kl * (1 - first)).sum() / (m * (1 - first)).sum()).item<double>();
    }
    ++state.step;
    const SelfCorrectionMetrics sc = self_correction_metrics(r.first_rewards, r.second_rewards);
    double reward1 = 0.0, reward2 = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      reward1 += r.first_rewards[i] / static_cast<double>(n);
      reward2 += r.second_rewards[i] / static_cast<double>(n);
    }
    nlohmann::json metrics = {{"event", "score"},
                              {"step", state.step},
                              {"stage", static_cast<int>(stage)},
                              {"reward_t1", reward1},
                              {"reward_t2", reward2},
                              {"shaped_reward_t2", shaped2},
                              {"loss", loss_value},
                              {"policy_loss", pg.metrics.policy_loss},
                              {"kl_t1", kl_t1},
                              {"kl_t2", kl_t2},
                              {"grad_norm", grad_norm}};
    const nlohmann::json sc_json = sc.to_json();
    for (auto it = sc_json.begin(); it != sc_json.end(); ++it) metrics[it.key()] = it.value();
    const auto t2 = Clock::now();
    metrics["sample_seconds"] = std::chrono::duration<double>(t1 - t0).count();
    metrics["train_seconds"] = std::chrono::duration<double>(t2 - t1).count();
    if (on_metrics) on_metrics(metrics);
    result.history.push_back(std::move(metrics));
    if (config.checkpoint_every > 0 && (state.step % config.checkpoint_every == 0 || state.step == total)) save();
  }
  result.steps = state.step;
  return result;
}

}  // namespace kaizen::loop
