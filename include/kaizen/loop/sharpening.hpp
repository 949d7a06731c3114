// kaizen/loop/sharpening.hpp - self-improvement by sharpening: train the model to put its mass on the
// answers it itself finds most likely (the model as its own verifier).
//
// Self-reward (the base model's own sequence log-likelihood, temperature 1, no sampling transform):
//   r_self(x, y) = log π_base(y | x) = Σ_t log π_base(y_t | x, y_<t)                 (plain)
//   r_self(x, y) = (1 / |y|) Σ_t log π_base(y_t | x, y_<t)                            (length-normalised)
// (the stop token, when sampled, is one of the |y| tokens).
//
// SFT-sharpening (sft_sharpening): for each prompt x draw y_1..y_N ~ π_base, keep
//   ŷ = argmax_i r_self(x, y_i)   (ties: the first sample),
// then supervised fine-tuning of the policy on the pairs (x, ŷ) (the sft_step stage, as
// loop::supervised_finetune). The samples are all drawn and scored before the first update, so "base" is
// the policy as it is passed in. A checkpoint taken during the SFT holds the selected pairs, so a resumed
// run continues exactly (same batches, same AdamW state) without sampling again.
//
// RL-sharpening (RlSharpeningReward): maximise over π
//   J(π) = E_{y~π}[ log π_base(y|x) ] − β KL(π(·|x) ‖ π_base(·|x)),   β > 0,
// whose maximiser is π*(y|x) ∝ π_base(y|x)^{1 + 1/β} (power_sharpen). The KL is put in the reward:
//   r(x, y) = log π_base(y|x) − β (log π(y|x) − log π_base(y|x)),
// so that E_{y~π}[r ∇log π] = ∇J (the expectation of ∇log π is 0, which absorbs the KL's own
// derivative). Use it with loop::grpo and an objective without a KL term; log π is the policy's
// sequence log-likelihood at scoring time (right after sampling: on-policy).
// sharpening_objective(π, π_base, β) evaluates J for an enumerable answer set (unit tests, analysis).
//
// Reference: A. Huang, A. Block, D. J. Foster, D. Rohatgi, C. Zhang, M. Simchowitz, J. T. Ash,
// A. Krishnamurthy, "Self-Improvement in Language Models: The Sharpening Mechanism", ICLR 2025,
// arXiv 2412.01951 (SFT-Sharpening and RLHF-Sharpening; the closed form above).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/checkpoint.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/self_training.hpp>
#include <kaizen/loop/sft.hpp>
#include <kaizen/loop/update.hpp>
#include <kaizen/torch/policy_logprobs.hpp>

namespace kaizen::loop {

/// π*(y) ∝ probs(y)^{1 + 1/beta}, normalised: the maximiser of sharpening_objective.
/// Throws kaizen::Error on beta <= 0 or non-finite, an empty distribution, a negative or non-finite
/// probability, or probabilities that sum to 0.
[[nodiscard]] inline std::vector<double> power_sharpen(std::span<const double> probs, double beta) {
  KAIZEN_CHECK(std::isfinite(beta) && beta > 0.0, "power_sharpen: beta must be finite and > 0, got ", beta);
  KAIZEN_CHECK(!probs.empty(), "power_sharpen: expected at least one probability, got none");
  double total = 0.0;
  for (std::size_t i = 0; i < probs.size(); ++i) {
    KAIZEN_CHECK(std::isfinite(probs[i]) && probs[i] >= 0.0, "power_sharpen: probability ", i, " is ", probs[i],
                 ", expected a finite value >= 0");
    total += probs[i];
  }
  KAIZEN_CHECK(total > 0.0, "power_sharpen: the probabilities sum to 0");
  // in log space, shifted by the largest term, so tiny probabilities and large exponents do not underflow
  const double exponent = 1.0 + 1.0 / beta;
  double max_log = -std::numeric_limits<double>::infinity();
  for (double p : probs)
    if (p > 0.0) max_log = std::max(max_log, exponent * std::log(p / total));
  std::vector<double> out(probs.size(), 0.0);
  double z = 0.0;
  for (std::size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] > 0.0) out[i] = std::exp(exponent * std::log(probs[i] / total) - max_log);
    z += out[i];
  }
  for (double& v : out) v /= z;
  return out;
}

/// J(π) = Σ_y π(y) log base(y) − β Σ_y π(y) log(π(y) / base(y)) over an enumerated answer set.
/// Terms with π(y) = 0 contribute 0. Throws kaizen::Error on beta <= 0, a size mismatch, or π putting
/// mass where base has none (J = −∞).
[[nodiscard]] inline double sharpening_objective(std::span<const double> pi, std::span<const double> base, double beta) {
  KAIZEN_CHECK(std::isfinite(beta) && beta > 0.0, "sharpening_objective: beta must be finite and > 0, got ", beta);
  KAIZEN_CHECK(pi.size() == base.size() && !pi.empty(), "sharpening_objective: ", pi.size(), " policy and ",
               base.size(), " base probabilities (expected the same non-zero count)");
  double j = 0.0;
  for (std::size_t i = 0; i < pi.size(); ++i) {
    if (pi[i] <= 0.0) continue;
    KAIZEN_CHECK(base[i] > 0.0, "sharpening_objective: answer ", i, " has policy probability ", pi[i],
                 " but base probability ", base[i]);
    j += pi[i] * std::log(base[i]) - beta * pi[i] * std::log(pi[i] / base[i]);
  }
  return j;
}

/// The RL-sharpening reward of one sample from its sequence log-likelihoods under the base and the
/// current policy: log_base − beta (log_policy − log_base). Throws on beta <= 0 or non-finite inputs.
[[nodiscard]] inline double rl_sharpening_reward(double log_base, double log_policy, double beta) {
  KAIZEN_CHECK(std::isfinite(beta) && beta > 0.0, "rl_sharpening_reward: beta must be finite and > 0, got ", beta);
  KAIZEN_CHECK(std::isfinite(log_base) && std::isfinite(log_policy), "rl_sharpening_reward: log-likelihoods must be "
               "finite, got base ", log_base, " and policy ", log_policy);
  return log_base - beta * (log_policy - log_base);
}

/// The sequence log-likelihood of completions[i] given prompts[i] under `policy` (temperature 1, no
/// gradient), summed over the completion's tokens, or averaged when `length_normalise`. Scored in
/// chunks of `chunk` rows. Throws kaizen::Error on mismatched sizes, chunk < 1, and for everything
/// collate or the policy reject.
template <Policy P>
[[nodiscard]] std::vector<double> sequence_loglik(P& policy, std::span<const Prompt> prompts,
                                                  std::span<const Completion> completions, bool length_normalise,
                                                  const CollateOptions& collate_options = {}, std::int64_t chunk = 256) {
  KAIZEN_CHECK(prompts.size() == completions.size(), "sequence_loglik: ", prompts.size(), " prompts but ",
               completions.size(), " completions");
  KAIZEN_CHECK(chunk >= 1, "sequence_loglik: chunk must be >= 1, got ", chunk);
  std::vector<double> out;
  out.reserve(completions.size());
  torch::NoGradGuard no_grad;
  CollateOptions options = collate_options;
  options.masked_spans.clear();  // the likelihood of the whole completion, whatever the loss masks
  for (std::size_t start = 0; start < completions.size(); start += static_cast<std::size_t>(chunk)) {
    const std::size_t end = std::min(completions.size(), start + static_cast<std::size_t>(chunk));
    std::vector<Rollout> rows;
    rows.reserve(end - start);
    for (std::size_t i = start; i < end; ++i) {
      Rollout r{prompts[i].tokens, completions[i], 0.0, static_cast<std::int64_t>(i - start)};
      r.completion.logprobs.clear();
      rows.push_back(std::move(r));
    }
    const TokenBatch batch = collate(std::span<const Rollout>(rows), options);
    const torch::Tensor lp = loop::policy_logprobs(policy, batch).to(torch::kDouble).sum(1).cpu().contiguous();
    const torch::Tensor n = batch.completion_lengths.to(torch::kDouble).cpu().contiguous();
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto k = static_cast<std::int64_t>(i);
      const double v = lp[k].item<double>();
      out.push_back(length_normalise ? v / n[k].item<double>() : v);
    }
  }
  return out;
}

/// r_self as a batched kaizen::OutcomeReward: the base policy's own log-likelihood of each completion.
/// `base` is kept by pointer (it must outlive the reward) and is never updated here.
template <Policy P>
struct SelfLikelihoodReward {
  P* base = nullptr;
  bool length_normalise = false;
  CollateOptions collate{};

  [[nodiscard]] std::vector<double> operator()(std::span<const Prompt> prompts, std::span<const Completion> completions) {
    KAIZEN_CHECK(base != nullptr, "SelfLikelihoodReward: no base policy");
    return sequence_loglik(*base, prompts, completions, length_normalise, collate);
  }
};

/// The RL-sharpening reward (file comment) as a batched kaizen::OutcomeReward for loop::grpo:
/// r = log π_base(y|x) − β (log π(y|x) − log π_base(y|x)), `policy` the model being trained,
/// `base` a frozen copy of it from before training. Use an objective without a KL term (the KL to the
/// base is in the reward). Throws kaizen::Error on a missing policy, beta <= 0.
template <Policy P>
struct RlSharpeningReward {
  P* policy = nullptr;
  P* base = nullptr;
  double beta = 1.0;
  bool length_normalise = false;
  CollateOptions collate{};

  [[nodiscard]] std::vector<double> operator()(std::span<const Prompt> prompts, std::span<const Completion> completions) {
    KAIZEN_CHECK(policy != nullptr && base != nullptr, "RlSharpeningReward: the policy and the base must both be set");
    KAIZEN_CHECK(std::isfinite(beta) && beta > 0.0, "RlSharpeningReward: beta must be finite and > 0, got ", beta);
    const std::vector<double> lb = sequence_loglik(*base, prompts, completions, length_normalise, collate);
    const std::vector<double> lp = sequence_loglik(*policy, prompts, completions, length_normalise, collate);
    std::vector<double> out(lb.size());
    for (std::size_t i = 0; i < lb.size(); ++i) out[i] = rl_sharpening_reward(lb[i], lp[i], beta);
    return out;
  }
};

/// For `scores` laid out as groups of `group_size` consecutive samples, the index (into scores) of
/// each group's best sample; ties go to the first. Throws on group_size < 1 or a size that is not a
/// multiple of it, and on a NaN score.
[[nodiscard]] inline std::vector<std::size_t> best_in_groups(std::span<const double> scores, std::int64_t group_size) {
  KAIZEN_CHECK(group_size >= 1, "best_in_groups: group_size must be >= 1, got ", group_size);
  const auto G = static_cast<std::size_t>(group_size);
  KAIZEN_CHECK(scores.size() % G == 0, "best_in_groups: ", scores.size(), " scores is not a multiple of group_size ",
               group_size);
  std::vector<std::size_t> out;
  for (std::size_t start = 0; start < scores.size(); start += G) {
    std::size_t best = start;
    for (std::size_t i = start; i < start + G; ++i) {
      KAIZEN_CHECK(!std::isnan(scores[i]), "best_in_groups: score ", i, " is NaN");
      if (scores[i] > scores[best]) best = i;
    }
    out.push_back(best);
  }
  return out;
}

struct SftSharpeningConfig {
  std::int64_t samples_per_prompt = 8;  ///< N, >= 1
  bool length_normalise = false;        ///< select by the mean instead of the sum of token log-probs
  SamplingParams sampling{};            ///< how the N samples are drawn (seed as given)
  SftConfig sft{};                      ///< the fine-tuning on the selected pairs (its collate scores too)
  std::int64_t checkpoint_every = 0;    ///< > 0: checkpoint every so many SFT steps, after the selection and at the end
  std::filesystem::path checkpoint_dir; ///< where checkpoints go
  std::filesystem::path resume_from;    ///< non-empty: continue from this checkpoint (no sampling, no selection)
  std::int64_t stop_after_sft_steps = 0;  ///< > 0: stop (with a checkpoint) once this many SFT steps are done —
                                          ///< an interruption, for tests and time-boxed runs
};

struct SftSharpeningResult {
  std::vector<Rollout> selected;        ///< one (prompt, ŷ) per prompt; reward = r_self(ŷ)
  double mean_selected_loglik = 0.0;    ///< mean r_self of the selected samples
  double mean_sample_loglik = 0.0;      ///< mean r_self of all N samples (what plain sampling gives)
  double final_loss = 0.0;              ///< the last SFT loss
  std::int64_t sft_steps = 0;           ///< SFT steps done (including resumed ones)
  bool stopped = false;                 ///< ended by stop_after_sft_steps (an early end by sft.stop_when is not a stop)
};

/// SFT-sharpening (file comment): N samples per prompt from `sampler` (which must sample from
/// `policy`, the base), best by the policy's own log-likelihood, then config.sft steps of SFT on the
/// selected pairs (each step draws config.sft.batch_size of them uniformly with an engine seeded by
/// config.sft.seed; AdamW with betas 0.9 / 0.999, config.sft's rate, decay and clip — what
/// loop::supervised_finetune does). Reports {"event":"sft_sharpening_select", ...} then the "sft"
/// metrics to `on_metrics`; config.sft.stop_when is honoured.
/// Exact resume: with checkpoint_every > 0 a checkpoint (loop/checkpoint.hpp) holds the policy, the AdamW
/// state, the SFT engine, the step, the selected pairs and the selection's means; a run resumed from it
/// with `resume_from` (the policy's initial weights do not matter) skips sampling and selection and
/// continues bit-equal to the run that never stopped.
/// Throws kaizen::Error on no prompts, N < 1, a sampler returning the wrong count, a bad SFT or
/// checkpoint setting, a checkpoint of another loop, and for everything sft_step or collate reject.
template <Policy P, Sampler S>
SftSharpeningResult sft_sharpening(P& policy, S& sampler, std::span<const Prompt> prompts,
                                   const SftSharpeningConfig& config, const MetricsCallback& on_metrics = {}) {
  const SftConfig& sft = config.sft;
  KAIZEN_CHECK(!prompts.empty(), "sft_sharpening: expected at least one prompt, got none");
  KAIZEN_CHECK(config.samples_per_prompt >= 1, "sft_sharpening: samples_per_prompt (N) must be >= 1, got ",
               config.samples_per_prompt);
  KAIZEN_CHECK(sft.steps >= 0, "sft_sharpening: sft.steps must be >= 0, got ", sft.steps);
  KAIZEN_CHECK(sft.batch_size > 0, "sft_sharpening: sft.batch_size must be > 0, got ", sft.batch_size);
  KAIZEN_CHECK(sft.learning_rate > 0.0, "sft_sharpening: sft.learning_rate must be > 0, got ", sft.learning_rate);
  KAIZEN_CHECK(sft.weight_decay >= 0.0, "sft_sharpening: sft.weight_decay must be >= 0, got ", sft.weight_decay);
  KAIZEN_CHECK(!sft.stop_when || sft.stop_check_every > 0,
               "sft_sharpening: sft.stop_check_every must be > 0 when stop_when is set, got ", sft.stop_check_every);
  KAIZEN_CHECK(config.checkpoint_every >= 0, "sft_sharpening: checkpoint_every must be >= 0, got ",
               config.checkpoint_every);
  KAIZEN_CHECK(config.checkpoint_every == 0 || !config.checkpoint_dir.empty(),
               "sft_sharpening: checkpoint_every > 0 needs a checkpoint_dir");
  KAIZEN_CHECK(config.stop_after_sft_steps >= 0, "sft_sharpening: stop_after_sft_steps must be >= 0, got ",
               config.stop_after_sft_steps);
  KAIZEN_CHECK(config.stop_after_sft_steps == 0 || config.checkpoint_every > 0,
               "sft_sharpening: stop_after_sft_steps > 0 needs checkpoint_every > 0 (the stop writes a checkpoint)");
  validate(config.sampling);
  const std::vector<torch::Tensor> params = policy.parameters();
  torch::optim::AdamW optimizer = make_adamw(
      params, {.learning_rate = sft.learning_rate, .weight_decay = sft.weight_decay, .beta1 = 0.9, .beta2 = 0.999});
  LoopState state;  // state.step = SFT steps done; state.rng draws the SFT batches
  state.rng.seed(sft.seed);
  SftSharpeningResult result;

  if (!config.resume_from.empty()) {
    state = load_checkpoint(config.resume_from, policy, optimizer);
    const nlohmann::json& x = state.extra;
    KAIZEN_CHECK(x.is_object() && x.contains("sft_sharpening_selected"), "sft_sharpening: ",
                 config.resume_from.string(), " is not a checkpoint of this loop (state.json has no selected pairs)");
    result.selected = detail::dataset_from_json(x.at("sft_sharpening_selected"));
    result.mean_selected_loglik = x.at("mean_selected_loglik").get<double>();
    result.mean_sample_loglik = x.at("mean_sample_loglik").get<double>();
    result.final_loss = x.at("final_loss").get<double>();
  } else {
    // Grow: N samples per prompt from the base; select each prompt's most likely one under the base.
    const auto N = static_cast<std::size_t>(config.samples_per_prompt);
    std::vector<Prompt> repeated;
    repeated.reserve(prompts.size() * N);
    for (const Prompt& p : prompts)
      for (std::size_t i = 0; i < N; ++i) repeated.push_back(p);
    const std::vector<Completion> samples = sampler.sample(std::span<const Prompt>(repeated), config.sampling);
    KAIZEN_CHECK(samples.size() == repeated.size(), "sft_sharpening: the sampler returned ", samples.size(),
                 " completions for ", repeated.size(), " prompts");
    const std::vector<double> scores = sequence_loglik(policy, std::span<const Prompt>(repeated),
                                                       std::span<const Completion>(samples), config.length_normalise,
                                                       sft.collate);
    const std::vector<std::size_t> best = best_in_groups(scores, config.samples_per_prompt);
    for (double s : scores) result.mean_sample_loglik += s / static_cast<double>(scores.size());
    for (std::size_t p = 0; p < best.size(); ++p) {
      Rollout r{prompts[p].tokens, samples[best[p]], scores[best[p]], static_cast<std::int64_t>(p)};
      r.completion.logprobs.clear();
      result.mean_selected_loglik += scores[best[p]] / static_cast<double>(best.size());
      result.selected.push_back(std::move(r));
    }
    if (on_metrics)
      on_metrics({{"event", "sft_sharpening_select"},
                  {"prompts", prompts.size()},
                  {"samples_per_prompt", config.samples_per_prompt},
                  {"mean_selected_loglik", result.mean_selected_loglik},
                  {"mean_sample_loglik", result.mean_sample_loglik}});
  }
  auto save = [&] {
    state.extra = {{"sft_sharpening_selected", detail::dataset_to_json(result.selected)},
                   {"mean_selected_loglik", result.mean_selected_loglik},
                   {"mean_sample_loglik", result.mean_sample_loglik},
                   {"final_loss", result.final_loss}};
    save_checkpoint(config.checkpoint_dir, policy, optimizer, state);
  };
  const bool checkpointing = config.checkpoint_every > 0;
  if (checkpointing && config.resume_from.empty()) save();

  // Improve: SFT on the selected pairs.
  while (state.step < sft.steps) {
    if (config.stop_after_sft_steps > 0 && state.step >= config.stop_after_sft_steps) {
      save();
      result.stopped = true;
      result.sft_steps = state.step;
      return result;
    }
    std::vector<Rollout> batch;
    batch.reserve(static_cast<std::size_t>(sft.batch_size));
    for (std::int64_t i = 0; i < sft.batch_size; ++i)
      batch.push_back(result.selected[uniform_index(state.rng, result.selected.size())]);
    const SftStepResult s = sft_step(policy, optimizer, params, std::move(batch), sft.collate, sft.max_grad_norm);
    ++state.step;
    result.final_loss = s.loss;
    if (on_metrics) on_metrics({{"event", "sft"}, {"step", state.step}, {"loss", s.loss}, {"tokens", s.tokens}});
    const bool early = sft.stop_when && state.step % sft.stop_check_every == 0 && sft.stop_when(state.step);
    if (checkpointing && (early || state.step == sft.steps || state.step % config.checkpoint_every == 0)) save();
    if (early) break;
  }
  result.sft_steps = state.step;
  return result;
}

}  // namespace kaizen::loop
