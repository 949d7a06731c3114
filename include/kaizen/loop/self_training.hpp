// kaizen/loop/self_training.hpp - the grow/improve engine of rejection-sampling fine-tuning, composed from
// the loop stages; rest_em.hpp, star.hpp and bstar.hpp are thin algorithm boxes over it.
//
// Iteration t = 1..T, from the base policy π_0 (parameters snapshotted when the run starts):
//   0. (B-STaR) tune(t): choose this iteration's sampling params and selection rule
//   1. grow:    for every training prompt x (or a random subset of prompts_per_iteration, drawn without
//               replacement), sample N completions from the current policy π_{t-1} and score them
//   2. filter:  D_t = the samples the selection rule keeps (score >= threshold, best first, ≤ cap per prompt,
//               distinct) — rejection_sampling.hpp
//   3. (STaR)   rationalise: for each prompt with nothing kept, sample N_r completions of hint(x) (the prompt
//               with its answer given), score them against x, keep what the rule keeps, and store it under x
//               (without the hint)
//   4. improve: π_t = SFT of π_0 (restart_from_base, ReST-EM/STaR) or of π_{t-1} on D_t: `sft_steps` steps (or
//               ceil(sft_epochs·|D_t| / batch_size)) of batch_size examples drawn uniformly with replacement,
//               fresh AdamW each iteration; an empty D_t skips the steps (π_t = π_0 or π_{t-1})
// Data parallel (config.communicator set): every rank runs the same engine, so the ranks agree on the subset, the
// SFT batches and D_t without sending them; grow and rationalisation split the prompts over the ranks, each prompt
// sampled in its own call seeded from the call's one engine draw (distributed::rollout_groups / sample_groups) and
// all-gathered, so D_t does not depend on the number of ranks; each SFT step splits the batch's rows over the
// ranks and sums the gradients (distributed::sft_update); rank 0 writes the checkpoints (then a barrier), which
// hold nothing that depends on the number of ranks, so a run resumes on any number. Null: one process, unchanged.
// Every random draw (subset, sampler seeds, SFT batches) comes from the loop's engine; the checkpoint holds
// the policy, the optimiser, the engine, the phase (grow or improve), the SFT step within the iteration,
// D_t, the tuned knobs, and the base snapshot (base.pt), so a run resumed mid-iteration is bit-equal to the
// one that never stopped.
//
// References: Zelikman et al. 2022, "STaR: Bootstrapping Reasoning With Reasoning" (arXiv 2203.14465);
// Singh et al. 2023, "Beyond Human Data: Scaling Self-Training for Problem-Solving with Language Models"
// (ReST-EM, arXiv 2312.06585); Zeng et al. 2024, "B-STaR" (arXiv 2412.17256).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <numeric>
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
#include <kaizen/distributed/communicator.hpp>
#include <kaizen/distributed/data_parallel.hpp>
#include <kaizen/distributed/data_parallel_stages.hpp>
#include <kaizen/loop/checkpoint.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/rejection_sampling.hpp>
#include <kaizen/loop/rollout.hpp>
#include <kaizen/loop/snapshot.hpp>
#include <kaizen/loop/update.hpp>

namespace kaizen::loop {

struct SelfTrainingConfig {
  std::int64_t iterations = 3;              ///< T, >= 0 (counting resumed iterations)
  std::int64_t samples_per_prompt = 8;      ///< N, >= 1
  SelectionRule selection{};                ///< what is kept (threshold, cap > 0, distinct)
  std::int64_t prompts_per_iteration = 0;   ///< 0 = every prompt; else a random subset of this size, > 0
  std::int64_t prompts_per_sampler_call = 64;  ///< chunking of the grow phase, > 0
  std::int64_t sft_steps = 100;             ///< SFT steps per iteration, >= 0 (when sft_epochs == 0)
  double sft_epochs = 0.0;                  ///< > 0: steps = ceil(sft_epochs · |D_t| / batch_size) instead
  std::int64_t batch_size = 16;             ///< SFT examples per step, > 0
  AdamWConfig optimizer{.learning_rate = 1e-3, .weight_decay = 0.0, .beta1 = 0.9, .beta2 = 0.999};
  double max_grad_norm = 1.0;               ///< <= 0 = no clip
  bool restart_from_base = true;            ///< improve from π_0 (ReST-EM, STaR) or from π_{t-1}
  SamplingParams sampling{};                ///< grow-phase sampling (its seed is replaced per call)
  CollateOptions collate{};
  std::uint64_t seed = 0;
  std::int64_t checkpoint_every = 0;        ///< > 0: checkpoint every so many SFT steps, after each grow and at the end
  std::filesystem::path checkpoint_dir;
  std::filesystem::path resume_from;
  std::int64_t stop_after_sft_steps = 0;    ///< > 0: stop (with a checkpoint) once this many SFT steps are done in
                                            ///< total — an interruption, for tests and time-boxed runs
  /// Data parallel (see the top of the file): this rank's job; same config, prompts and initial weights on every
  /// rank. Null: one process, unchanged.
  distributed::Communicator* communicator = nullptr;
};

/// Per-iteration customisation: B-STaR's tuning, STaR's hint, monitors and evaluation.
struct SelfTrainingHooks {
  /// Before grow: may change this iteration's sampling params and selection rule (B-STaR); may draw from rng.
  std::function<void(std::int64_t iteration, Rng& rng, SamplingParams& sampling, SelectionRule& rule,
                     nlohmann::json& metrics)>
      tune;
  /// STaR rationalisation: the prompt with its answer given as a hint. Unset = no rationalisation.
  std::function<Prompt(const Prompt&)> hint;
  std::int64_t rationalisation_samples = 1;  ///< N_r, >= 1 (used when hint is set)
  /// After grow (and rationalisation): the grown groups (scores as rewards) and the rule; may add metrics.
  std::function<void(std::span<const Group> groups, const SelectionRule& rule, nlohmann::json& metrics)> on_grown;
  /// After improve: e.g. a held-out evaluation into `metrics`.
  std::function<void(std::int64_t iteration, nlohmann::json& metrics)> after_iteration;
};

struct SelfTrainingResult {
  std::int64_t iterations = 0;           ///< iterations completed (including resumed ones)
  std::int64_t sft_steps = 0;            ///< SFT steps done in total (including resumed ones)
  bool stopped = false;                  ///< ended by stop_after_sft_steps
  std::vector<nlohmann::json> history;   ///< one record per iteration finished in this call
};

namespace detail {

inline void check_config(const SelfTrainingConfig& c, const std::string& who) {
  KAIZEN_CHECK(c.iterations >= 0, who, ": iterations must be >= 0, got ", c.iterations);
  KAIZEN_CHECK(c.samples_per_prompt >= 1, who, ": samples_per_prompt (N) must be >= 1, got ", c.samples_per_prompt);
  validate(c.selection, who);
  KAIZEN_CHECK(c.prompts_per_iteration >= 0, who, ": prompts_per_iteration must be >= 0 (0 = all), got ",
               c.prompts_per_iteration);
  KAIZEN_CHECK(c.prompts_per_sampler_call > 0, who, ": prompts_per_sampler_call must be > 0, got ",
               c.prompts_per_sampler_call);
  KAIZEN_CHECK(c.sft_steps >= 0, who, ": sft_steps must be >= 0, got ", c.sft_steps);
  KAIZEN_CHECK(c.sft_epochs >= 0.0 && std::isfinite(c.sft_epochs), who, ": sft_epochs must be finite and >= 0, got ",
               c.sft_epochs);
  KAIZEN_CHECK(c.batch_size > 0, who, ": batch_size must be > 0, got ", c.batch_size);
  KAIZEN_CHECK(c.optimizer.learning_rate > 0.0, who, ": learning_rate must be > 0, got ", c.optimizer.learning_rate);
  KAIZEN_CHECK(c.checkpoint_every >= 0, who, ": checkpoint_every must be >= 0, got ", c.checkpoint_every);
  KAIZEN_CHECK(c.checkpoint_every == 0 || !c.checkpoint_dir.empty(), who, ": checkpoint_every > 0 needs a checkpoint_dir");
  KAIZEN_CHECK(c.stop_after_sft_steps >= 0, who, ": stop_after_sft_steps must be >= 0, got ", c.stop_after_sft_steps);
  KAIZEN_CHECK(c.stop_after_sft_steps == 0 || c.checkpoint_every > 0, who,
               ": stop_after_sft_steps > 0 needs checkpoint_every > 0 (the stop writes a checkpoint)");
  validate(c.sampling);
}

inline nlohmann::json dataset_to_json(const std::vector<Rollout>& dataset) {
  nlohmann::json out = nlohmann::json::array();
  for (const Rollout& r : dataset) out.push_back({r.prompt, r.completion.tokens, r.reward, r.group});
  return out;
}

inline std::vector<Rollout> dataset_from_json(const nlohmann::json& j) {
  std::vector<Rollout> out;
  for (const auto& row : j) {
    Rollout r;
    r.prompt = row.at(0).get<std::vector<TokenId>>();
    r.completion.tokens = row.at(1).get<std::vector<TokenId>>();
    r.reward = row.at(2).get<double>();
    r.group = row.at(3).get<std::int64_t>();
    out.push_back(std::move(r));
  }
  return out;
}

inline nlohmann::json sampling_to_json(const SamplingParams& p) {
  return {{"temperature", p.temperature}, {"top_k", p.top_k}, {"top_p", p.top_p}, {"min_p", p.min_p}};
}

}  // namespace detail

/// Runs the engine (see the top of the file) on `prompts` until `config.iterations` iterations are done.
/// `sampler` must sample from `policy` (so the grow phase samples the current iterate). `reward` scores
/// samples for selection (a 0/1 verifier for ReST-EM and STaR). `who` names the loop in errors and in the
/// metrics' "event" ("<who>_iteration", "<who>_sft"). Throws kaizen::Error on an empty prompt set, a bad
/// config (N < 1, cap <= 0, ...), a base snapshot that does not fit the policy, and whatever the stages reject.
template <Policy P, Sampler S, OutcomeReward R>
SelfTrainingResult self_train(P& policy, S& sampler, R& reward, std::span<const Prompt> prompts,
                              const SelfTrainingConfig& config, const MetricsCallback& on_metrics = {},
                              const SelfTrainingHooks& hooks = {}, const std::string& who = "self_train") {
  using Clock = std::chrono::steady_clock;
  KAIZEN_CHECK(!prompts.empty(), who, ": the prompt set is empty; expected at least one training prompt");
  detail::check_config(config, who);
  KAIZEN_CHECK(!hooks.hint || hooks.rationalisation_samples >= 1, who,
               ": rationalisation_samples must be >= 1, got ", hooks.rationalisation_samples);
  const std::vector<torch::Tensor> params = policy.parameters();
  auto optimizer = std::make_unique<torch::optim::AdamW>(make_adamw(params, config.optimizer));
  distributed::Communicator* const comm = config.communicator;
  std::unique_ptr<distributed::GradientBuckets> buckets;
  if (comm != nullptr) {
    distributed::check_same_parameters(*comm, params, who);  // same start on every rank
    buckets = std::make_unique<distributed::GradientBuckets>(*comm, params);
  }

  // The loop's state beyond LoopState: phase, SFT step within the iteration, D_t, tuned knobs.
  LoopState state;  // state.step = SFT steps done in total
  state.rng.seed(config.seed);
  std::int64_t iteration = 0;  // iterations finished
  bool improving = false;      // false: the next thing is grow; true: D_t is built, SFT under way
  std::int64_t iteration_step = 0, iteration_steps = 0;
  std::vector<Rollout> dataset;
  SamplingParams sampling = config.sampling;
  SelectionRule rule = config.selection;
  nlohmann::json record;  // this iteration's metrics so far
  ParameterSnapshot base;

  if (!config.resume_from.empty()) {
    state = load_checkpoint(config.resume_from, policy, *optimizer);
    const nlohmann::json& x = state.extra;
    KAIZEN_CHECK(x.is_object() && x.contains("iteration"), who, ": ", config.resume_from.string(),
                 " is not a checkpoint of this loop (state.json has no iteration)");
    iteration = x.at("iteration").get<std::int64_t>();
    improving = x.at("improving").get<bool>();
    iteration_step = x.at("iteration_step").get<std::int64_t>();
    iteration_steps = x.at("iteration_steps").get<std::int64_t>();
    dataset = detail::dataset_from_json(x.at("dataset"));
    sampling.temperature = x.at("sampling").at("temperature").get<double>();
    rule.threshold = x.at("threshold").get<double>();
    rule.cap = x.at("cap").get<std::int64_t>();
    record = x.at("record");
    const torch::Device device = params.empty() ? torch::Device(torch::kCPU) : params.front().device();
    base = load_snapshot(config.resume_from / "base.pt", device);
    KAIZEN_CHECK(base.tensors.size() == params.size(), who, ": the base snapshot has ", base.tensors.size(),
                 " tensors but the policy has ", params.size());
  } else {
    base = take_snapshot(policy);
  }
  auto save = [&] {
    state.extra = {{"iteration", iteration},
                   {"improving", improving},
                   {"iteration_step", iteration_step},
                   {"iteration_steps", iteration_steps},
                   {"dataset", detail::dataset_to_json(dataset)},
                   {"sampling", detail::sampling_to_json(sampling)},
                   {"threshold", rule.threshold},
                   {"cap", rule.cap},
                   {"record", record}};
    if (comm == nullptr || comm->rank() == 0) {
      save_checkpoint(config.checkpoint_dir, policy, *optimizer, state);
      save_snapshot(config.checkpoint_dir / "base.pt", base);
    }
    if (comm != nullptr) comm->barrier();  // the checkpoint is complete when any rank goes on
  };
  const bool checkpointing = config.checkpoint_every > 0;

  SelfTrainingResult result;
  while (iteration < config.iterations) {
    if (!improving) {
      // 0. Tune this iteration's knobs (B-STaR).
      const auto t0 = Clock::now();
      sampling = config.sampling;
      rule = config.selection;
      record = {{"event", who + "_iteration"}, {"iteration", iteration + 1}};
      if (hooks.tune) hooks.tune(iteration + 1, state.rng, sampling, rule, record);
      validate(sampling);
      validate(rule, who);
      // 1. Grow: N samples per prompt (all prompts or a random subset) from the current policy.
      std::vector<Prompt> chosen(prompts.begin(), prompts.end());
      if (config.prompts_per_iteration > 0 && config.prompts_per_iteration < static_cast<std::int64_t>(chosen.size())) {
        for (std::size_t i = 0; i < static_cast<std::size_t>(config.prompts_per_iteration); ++i)
          std::swap(chosen[i], chosen[i + uniform_index(state.rng, chosen.size() - i)]);
        chosen.resize(static_cast<std::size_t>(config.prompts_per_iteration));
      }
      std::vector<Group> groups;
      const auto chunk = static_cast<std::size_t>(config.prompts_per_sampler_call);
      for (std::size_t start = 0; start < chosen.size(); start += chunk) {
        const std::span<const Prompt> part =
            std::span<const Prompt>(chosen).subspan(start, std::min(chunk, chosen.size() - start));
        for (Group& g : distributed::rollout_groups(comm, sampler, reward, part, config.samples_per_prompt, sampling,
                                                    state.rng, who))
          groups.push_back(std::move(g));
      }
      // 2. Filter: what the rule keeps.
      double reward_sum = 0.0;
      std::int64_t sampled = 0, with_kept = 0;
      dataset.clear();
      std::vector<std::size_t> failed;
      for (std::size_t g = 0; g < groups.size(); ++g) {
        for (double r : groups[g].rewards) reward_sum += r;
        sampled += static_cast<std::int64_t>(groups[g].rewards.size());
        const std::vector<std::size_t> kept = select_indices(groups[g], rule);
        if (kept.empty()) failed.push_back(g);
        else ++with_kept;
        for (std::size_t i : kept)
          dataset.push_back(Rollout{groups[g].prompt.tokens, groups[g].completions[i], groups[g].rewards[i],
                                    static_cast<std::int64_t>(g)});
      }
      record["sampled"] = sampled;
      record["reward_mean"] = reward_sum / static_cast<double>(sampled);
      record["prompts"] = static_cast<std::int64_t>(groups.size());
      record["prompts_with_kept"] = with_kept;
      record["kept_from_samples"] = static_cast<std::int64_t>(dataset.size());
      record["temperature"] = sampling.temperature;
      record["threshold"] = rule.threshold;
      // 3. Rationalise (STaR): the failed prompts again, with the answer as a hint; stored without it.
      if (hooks.hint && !failed.empty()) {
        std::vector<Prompt> hinted;
        for (std::size_t g : failed) hinted.push_back(hooks.hint(groups[g].prompt));
        std::vector<Completion> completions;
        for (std::size_t start = 0; start < hinted.size(); start += chunk) {
          const std::span<const Prompt> part =
              std::span<const Prompt>(hinted).subspan(start, std::min(chunk, hinted.size() - start));
          for (Completion& c : distributed::sample_groups(comm, sampler, part, hooks.rationalisation_samples, sampling,
                                                          state.rng, who))
            completions.push_back(std::move(c));
        }
        const auto Nr = static_cast<std::size_t>(hooks.rationalisation_samples);
        std::int64_t rationalised = 0, rationalised_prompts = 0;
        for (std::size_t f = 0; f < failed.size(); ++f) {
          Group rg;
          rg.prompt = groups[failed[f]].prompt;  // scored and stored against the prompt without the hint
          for (std::size_t i = 0; i < Nr; ++i) rg.completions.push_back(std::move(completions[f * Nr + i]));
          const std::vector<Prompt> repeated(Nr, rg.prompt);
          rg.rewards = score(reward, std::span<const Prompt>(repeated), std::span<const Completion>(rg.completions));
          const std::vector<std::size_t> kept = select_indices(rg, rule);
          if (!kept.empty()) ++rationalised_prompts;
          for (std::size_t i : kept) {
            dataset.push_back(Rollout{rg.prompt.tokens, rg.completions[i], rg.rewards[i], static_cast<std::int64_t>(failed[f])});
            ++rationalised;
          }
        }
        record["rationalisation_sampled"] = static_cast<std::int64_t>(completions.size());
        record["rationalised"] = rationalised;
        record["rationalised_prompts"] = rationalised_prompts;
      }
      record["kept"] = static_cast<std::int64_t>(dataset.size());
      if (hooks.on_grown) hooks.on_grown(std::span<const Group>(groups), rule, record);
      // 4. Improve starts: from the base, with a fresh optimiser.
      iteration_steps = dataset.empty() ? 0
                        : config.sft_epochs > 0.0
                            ? static_cast<std::int64_t>(std::ceil(config.sft_epochs * static_cast<double>(dataset.size()) /
                                                                  static_cast<double>(config.batch_size)))
                            : config.sft_steps;
      record["sft_steps"] = iteration_steps;
      record["grow_seconds"] = std::chrono::duration<double>(Clock::now() - t0).count();
      if (config.restart_from_base) restore_snapshot(policy, base, who.c_str());
      optimizer = std::make_unique<torch::optim::AdamW>(make_adamw(params, config.optimizer));
      improving = true;
      iteration_step = 0;
      if (checkpointing) save();
    }
    // 4. Improve: SFT on D_t.
    const auto t1 = Clock::now();
    while (iteration_step < iteration_steps) {
      if (config.stop_after_sft_steps > 0 && state.step >= config.stop_after_sft_steps) {
        save();
        result.stopped = true;
        result.iterations = iteration;
        result.sft_steps = state.step;
        return result;
      }
      std::vector<Rollout> batch;
      for (std::int64_t i = 0; i < config.batch_size; ++i) batch.push_back(dataset[uniform_index(state.rng, dataset.size())]);
      const SftStepResult s = distributed::sft_step(comm, policy, *optimizer, params, std::move(batch), config.collate,
                                                    config.max_grad_norm, buckets.get());
      ++iteration_step;
      ++state.step;
      if (on_metrics)
        on_metrics({{"event", who + "_sft"}, {"iteration", iteration + 1}, {"step", iteration_step}, {"loss", s.loss},
                    {"tokens", s.tokens}});
      if (iteration_step == iteration_steps) record["final_sft_loss"] = s.loss;
      if (checkpointing && state.step % config.checkpoint_every == 0 && iteration_step < iteration_steps) save();
    }
    record["sft_seconds"] = std::chrono::duration<double>(Clock::now() - t1).count();
    ++iteration;
    improving = false;
    if (hooks.after_iteration) hooks.after_iteration(iteration, record);
    if (on_metrics) on_metrics(record);
    result.history.push_back(record);
    if (checkpointing) save();
  }
  result.iterations = iteration;
  result.sft_steps = state.step;
  return result;
}

}  // namespace kaizen::loop
