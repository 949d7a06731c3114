// kaizen/loop/iterative_dpo.hpp - online / iterative DPO: the policy samples, a Judge ranks its samples,
// and a DPO run on the best-vs-worst pairs makes the next policy.
//
// Iteration t (M_t = the policy at its start):
//   1. π_ref ← M_t when `refresh_reference` (else π_ref stays the model the run started from)
//   2. draw P prompts from the pool (uniform, without replacement; P = 0: the whole pool)
//   3. sample N completions per prompt from the sampler over the policy (seed drawn from the loop's engine)
//   4. s = judge(x, y_1..y_N) for each prompt (core/judge.hpp; wrong count or non-finite -> kaizen::Error)
//   5. pairs = best-vs-worst per prompt (preference::best_vs_worst_pairs: s_w > s_l, s_w − s_l >= margin);
//      pairs whose two completions are token-identical are dropped
//   6. `steps_per_iteration` DPO steps from M_t with a fresh AdamW: each step takes `pairs_per_step` pairs
//      drawn uniformly without replacement (0 = all), loss = −log σ(β h) on sequence log-prob sums
//      (preference/dpo.hpp), log-probs under the model's own distribution (no sampling transform); with
//      nll_weight α > 0 the loss is RPO's −log σ(β h) + α·NLL(y_w)/|y_w| (Iterative RPO, preference/rpo.hpp)
// Metrics: {"event":"iterative_dpo_pairs", "iteration", "pairs", "chosen_score_mean", "rejected_score_mean",
// "score_gap_mean", "judge_score_mean", ...} after step 5, {"event":"dpo", "step", "loss", "margin", "accuracy",
// "grad_norm"} after each DPO step, and {"event":"iteration_end","iteration"} after step 6 (evaluate there).
// Checkpoints (every `checkpoint_every` DPO steps and at the end) hold the policy, the phase's optimiser,
// the engine, the reference's parameters (reference.pt), the judge's state when it has one, and the
// iteration's pairs, so a run resumed mid-iteration continues bit for bit like the run that never stopped.
//
// The pieces (PreferenceData, draw_prompt_indices, judge_groups, dpo_step, save/load of the extra state) are
// shared with loop/self_rewarding.hpp.
//
// References: Xu et al. 2023, "Some things are more CRINGE than others: iterative preference optimization
// with the pairwise cringe loss" (arXiv 2312.16682); Yuan et al. 2024, "Self-Rewarding Language Models"
// (arXiv 2401.10020); Pang et al. 2024, "Iterative Reasoning Preference Optimization" (arXiv 2404.19733);
// Xiong et al. 2024, "Iterative Preference Learning from Human Feedback" (online
// iterative DPO, arXiv 2312.11456); Rafailov et al. 2023, DPO (arXiv 2305.18290).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/judge.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/checkpoint.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/rollout.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/pair_builder.hpp>
#include <kaizen/preference/reference_strategy.hpp>
#include <kaizen/preference/rpo.hpp>
#include <kaizen/preference/sequence_logprobs.hpp>
#include <kaizen/torch/policy_logprobs.hpp>

namespace kaizen::loop {

/// What every iterated preference loop shares.
struct PreferenceLoopConfig {
  std::int64_t iterations = 3;              ///< >= 0; the run ends after this many (counting resumed ones)
  std::int64_t prompts_per_iteration = 64;  ///< P >= 0 (0 = the whole pool), <= pool size
  std::int64_t samples_per_prompt = 4;      ///< N >= 2: a pair needs two samples
  std::int64_t steps_per_iteration = 20;    ///< DPO optimiser steps per iteration, >= 1
  std::int64_t pairs_per_step = 16;         ///< pairs per DPO step, >= 0 (0 = all the iteration's pairs)
  preference::DpoOptions dpo{};             ///< β, label smoothing
  double nll_weight = 0.0;                  ///< α >= 0: add α·NLL(y_w)/|y_w| (RPO, Iterative RPO uses 1); 0 = DPO
  preference::PairOptions pairs{};          ///< margin, tie break
  bool refresh_reference = true;            ///< π_ref ← M_t at each iteration's start; false: the initial model
  AdamWConfig optimizer{.learning_rate = 1e-4};
  double max_grad_norm = 1.0;               ///< <= 0: off
  SamplingParams sampling{};                ///< how the policy samples (its seed is replaced per call)
  std::uint64_t seed = 0;                   ///< seeds the loop's engine
  CollateOptions collate{};
  std::int64_t checkpoint_every = 0;        ///< > 0: save every so many DPO steps and at the end
  std::filesystem::path checkpoint_dir;
  std::filesystem::path resume_from;        ///< non-empty: continue from this checkpoint
};

using IterativeDpoConfig = PreferenceLoopConfig;

/// What a finished run hands back.
struct PreferenceLoopResult {
  std::int64_t iterations = 0;          ///< iterations completed (including resumed ones)
  std::int64_t steps = 0;               ///< DPO steps completed (including resumed ones)
  std::vector<nlohmann::json> history;  ///< every record this call reported
};

/// Samples of one iteration with their judge scores: sample k answers pool prompt prompt_index[k];
/// scored[k].prompt is the position of that prompt in the iteration's draw, scored[k].model the generator.
struct PreferenceData {
  std::vector<std::size_t> prompt_index;
  std::vector<std::vector<TokenId>> tokens;
  std::vector<preference::ScoredSample> scored;
  std::vector<preference::PreferencePair> pairs;  ///< index the samples

  void add(std::size_t pool_index, std::int64_t position, std::int64_t model, const Completion& c, double score) {
    prompt_index.push_back(pool_index);
    tokens.push_back(c.tokens);
    scored.push_back({position, score, model});
  }

  [[nodiscard]] nlohmann::json to_json() const {
    nlohmann::json pj = nlohmann::json::array();
    for (const auto& p : pairs) pj.push_back({p.prompt, p.chosen, p.rejected, p.chosen_score, p.rejected_score});
    nlohmann::json sj = nlohmann::json::array();
    for (const auto& s : scored) sj.push_back({s.prompt, s.score, s.model});
    return {{"prompt_index", prompt_index}, {"tokens", tokens}, {"scored", sj}, {"pairs", pj}};
  }
  [[nodiscard]] static PreferenceData from_json(const nlohmann::json& j) {
    PreferenceData d;
    d.prompt_index = j.at("prompt_index").get<std::vector<std::size_t>>();
    d.tokens = j.at("tokens").get<std::vector<std::vector<TokenId>>>();
    for (const auto& s : j.at("scored")) d.scored.push_back({s[0].get<std::int64_t>(), s[1].get<double>(), s[2].get<std::int64_t>()});
    for (const auto& p : j.at("pairs"))
      d.pairs.push_back({p[0].get<std::int64_t>(), p[1].get<std::size_t>(), p[2].get<std::size_t>(), p[3].get<double>(),
                         p[4].get<double>()});
    return d;
  }

  /// Drops pairs whose chosen and rejected completions are token-identical; returns how many it dropped.
  std::size_t drop_identical() {
    const std::size_t before = pairs.size();
    std::erase_if(pairs, [&](const preference::PreferencePair& p) { return tokens[p.chosen] == tokens[p.rejected]; });
    return before - pairs.size();
  }

  /// Pair statistics for the metrics record.
  void write_pair_stats(nlohmann::json& m) const {
    double chosen = 0.0, rejected = 0.0, all = 0.0;
    for (const auto& p : pairs) chosen += p.chosen_score, rejected += p.rejected_score;
    for (const auto& s : scored) all += s.score;
    const double n = static_cast<double>(pairs.size());
    m["pairs"] = pairs.size();
    m["samples"] = scored.size();
    m["judge_score_mean"] = scored.empty() ? 0.0 : all / static_cast<double>(scored.size());
    m["chosen_score_mean"] = pairs.empty() ? 0.0 : chosen / n;
    m["rejected_score_mean"] = pairs.empty() ? 0.0 : rejected / n;
    m["score_gap_mean"] = pairs.empty() ? 0.0 : (chosen - rejected) / n;
  }
};

namespace detail {

inline void check_preference_config(const char* fn, const PreferenceLoopConfig& c, std::size_t pool) {
  KAIZEN_CHECK(pool > 0, fn, ": expected a non-empty prompt set, got 0 prompts");
  KAIZEN_CHECK(c.samples_per_prompt >= 2, fn, ": samples_per_prompt (N) must be >= 2 to form a pair, got ",
               c.samples_per_prompt);
  KAIZEN_CHECK(c.iterations >= 0, fn, ": iterations must be >= 0, got ", c.iterations);
  KAIZEN_CHECK(c.prompts_per_iteration >= 0 && static_cast<std::size_t>(c.prompts_per_iteration) <= pool, fn,
               ": prompts_per_iteration must be in [0, ", pool, "] (0 = all), got ", c.prompts_per_iteration);
  KAIZEN_CHECK(c.steps_per_iteration >= 1, fn, ": steps_per_iteration must be >= 1, got ", c.steps_per_iteration);
  KAIZEN_CHECK(c.pairs_per_step >= 0, fn, ": pairs_per_step must be >= 0 (0 = all), got ", c.pairs_per_step);
  KAIZEN_CHECK(c.nll_weight >= 0.0 && std::isfinite(c.nll_weight), fn, ": nll_weight must be >= 0 and finite, got ",
               c.nll_weight);
  KAIZEN_CHECK(c.nll_weight == 0.0 || c.dpo.label_smoothing == 0.0, fn,
               ": label_smoothing (cDPO) and nll_weight (RPO) cannot be combined, got ", c.dpo.label_smoothing, " and ",
               c.nll_weight);
  KAIZEN_CHECK(c.checkpoint_every >= 0, fn, ": checkpoint_every must be >= 0, got ", c.checkpoint_every);
  KAIZEN_CHECK(c.checkpoint_every == 0 || !c.checkpoint_dir.empty(), fn, ": checkpoint_every > 0 needs a checkpoint_dir");
  KAIZEN_CHECK(c.optimizer.learning_rate > 0.0, fn, ": learning_rate must be > 0, got ", c.optimizer.learning_rate);
  KAIZEN_CHECK(c.optimizer.weight_decay >= 0.0, fn, ": weight_decay must be >= 0, got ", c.optimizer.weight_decay);
  validate(c.sampling);
}

[[nodiscard]] inline std::unique_ptr<torch::optim::AdamW> fresh_adamw(const std::vector<torch::Tensor>& params,
                                                                       const AdamWConfig& c) {
  return std::make_unique<torch::optim::AdamW>(
      params, torch::optim::AdamWOptions(c.learning_rate).weight_decay(c.weight_decay).betas({c.beta1, c.beta2}));
}

/// Copies of a policy's parameters (detached, on their device).
template <Policy P>
[[nodiscard]] std::vector<torch::Tensor> parameter_copy(P& policy) {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& p : std::vector<torch::Tensor>(policy.parameters())) out.push_back(p.detach().clone());
  return out;
}

/// Writes `values` into the policy's parameters in place.
template <Policy P>
void assign_parameters(P& policy, const std::vector<torch::Tensor>& values) {
  preference::mix_parameters(policy.parameters(), values, 1.0);
}

inline void save_tensors(const std::filesystem::path& file, const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> cpu;
  for (const auto& t : tensors) cpu.push_back(t.detach().cpu());
  torch::save(cpu, file.string());
}
[[nodiscard]] inline std::vector<torch::Tensor> load_tensors(const std::filesystem::path& file) {
  KAIZEN_CHECK(std::filesystem::exists(file), "load_checkpoint: ", file.string(), " does not exist");
  std::vector<torch::Tensor> out;
  torch::load(out, file.string());
  return out;
}

template <class J>
[[nodiscard]] nlohmann::json judge_state(J& judge) {
  if constexpr (requires { judge.state(); }) return judge.state();
  else return nlohmann::json();
}
template <class J>
void restore_judge(J& judge, const nlohmann::json& state) {
  if constexpr (requires { judge.restore(state.get<decltype(judge.state())>()); }) {
    KAIZEN_CHECK(!state.is_null(), "resume: the checkpoint has no judge state but the judge keeps one");
    judge.restore(state.get<decltype(judge.state())>());
  }
}

}  // namespace detail

/// Positions of `count` prompts drawn uniformly without replacement from a pool of `pool` (count = 0: all,
/// in order). Throws kaizen::Error on an empty pool or count > pool.
[[nodiscard]] inline std::vector<std::size_t> draw_prompt_indices(std::size_t pool, std::int64_t count, Rng& rng) {
  KAIZEN_CHECK(pool > 0, "draw_prompt_indices: expected a non-empty prompt set, got 0 prompts");
  KAIZEN_CHECK(count >= 0 && static_cast<std::size_t>(count) <= pool, "draw_prompt_indices: expected 0 <= count <= ",
               pool, ", got ", count);
  std::vector<std::size_t> order(pool);
  for (std::size_t i = 0; i < pool; ++i) order[i] = i;
  if (count == 0) return order;
  for (std::size_t k = 0; k < static_cast<std::size_t>(count); ++k) std::swap(order[k], order[k + uniform_index(rng, pool - k)]);
  order.resize(static_cast<std::size_t>(count));
  return order;
}

/// Samples N completions for each drawn prompt from `sampler` and scores each prompt's N with `judge`;
/// appends them to `data` tagged with `model`. Returns the completions (prompt-major).
template <Sampler S, Judge J>
std::vector<Completion> sample_and_judge(S& sampler, J& judge, std::span<const Prompt> pool,
                                         std::span<const std::size_t> drawn, std::int64_t n, const SamplingParams& params,
                                         Rng& rng, std::int64_t model, PreferenceData& data, const char* who) {
  std::vector<Prompt> prompts;
  for (std::size_t i : drawn) prompts.push_back(pool[i]);
  std::vector<Completion> completions = sample_groups(sampler, std::span<const Prompt>(prompts), n, params, rng, who);
  const auto N = static_cast<std::size_t>(n);
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    const std::span<const Completion> group(completions.data() + p * N, N);
    const std::vector<double> scores = judge_scores(judge, prompts[p], group);
    for (std::size_t i = 0; i < N; ++i) data.add(drawn[p], static_cast<std::int64_t>(p), model, group[i], scores[i]);
  }
  return completions;
}

/// One DPO step on the pairs `chosen_pairs` (indices into data.pairs): collate chosen rows then rejected rows,
/// policy log-probs with gradient, reference log-probs without, dpo_loss, apply_update. Returns the metrics.
template <Policy P>
nlohmann::json dpo_step(P& policy, P& reference, torch::optim::Optimizer& optimizer, const std::vector<torch::Tensor>& params,
                        std::span<const Prompt> pool, const PreferenceData& data, std::span<const std::size_t> chosen_pairs,
                        const PreferenceLoopConfig& config) {
  KAIZEN_CHECK(!chosen_pairs.empty(), "dpo_step: expected at least one pair");
  std::vector<Rollout> rows;
  rows.reserve(2 * chosen_pairs.size());
  for (int half = 0; half < 2; ++half) {
    for (std::size_t k : chosen_pairs) {
      const preference::PreferencePair& pair = data.pairs[k];
      const std::size_t s = half == 0 ? pair.chosen : pair.rejected;
      Rollout r;
      r.prompt = pool[data.prompt_index[s]].tokens;
      r.completion.tokens = data.tokens[s];
      r.group = static_cast<std::int64_t>(rows.size());
      rows.push_back(std::move(r));
    }
  }
  const TokenBatch batch = collate(std::span<const Rollout>(rows), config.collate);
  const torch::Tensor ref = frozen_logprobs(reference, batch);
  const torch::Tensor lp = loop::policy_logprobs(policy, batch);
  const preference::PairLogProbs pair_lp = preference::pair_logprobs(lp, batch.completion_mask, ref);
  const auto out = config.nll_weight > 0.0
                       ? preference::rpo_loss(pair_lp, {.beta = config.dpo.beta, .alpha = config.nll_weight})
                       : preference::dpo_loss(pair_lp, config.dpo);
  const double grad_norm = apply_update(optimizer, params, out.loss, config.max_grad_norm);
  return {{"event", "dpo"},
          {"loss", out.loss.item<double>()},
          {"margin", out.metrics.margin.item<double>()},
          {"accuracy", out.metrics.accuracy.item<double>()},
          {"chosen_reward", out.metrics.chosen_reward.item<double>()},
          {"rejected_reward", out.metrics.rejected_reward.item<double>()},
          {"pairs", chosen_pairs.size()},
          {"grad_norm", grad_norm}};
}

/// Indices of the pairs one DPO step uses: all (pairs_per_step = 0 or >= available) or a uniform draw.
[[nodiscard]] inline std::vector<std::size_t> step_pairs(std::size_t available, std::int64_t pairs_per_step, Rng& rng) {
  std::vector<std::size_t> idx(available);
  for (std::size_t i = 0; i < available; ++i) idx[i] = i;
  if (pairs_per_step <= 0 || static_cast<std::size_t>(pairs_per_step) >= available) return idx;
  for (std::size_t k = 0; k < static_cast<std::size_t>(pairs_per_step); ++k)
    std::swap(idx[k], idx[k + uniform_index(rng, available - k)]);
  idx.resize(static_cast<std::size_t>(pairs_per_step));
  return idx;
}

namespace detail {

/// The resumable position of a preference loop; `phase` numbers are each loop's own.
struct PreferenceLoopState {
  std::int64_t iteration = 0;
  std::int64_t phase = 0;
  std::int64_t phase_step = 0;
  std::int64_t steps = 0;  ///< DPO steps in total
  Rng rng;
  PreferenceData data;
  nlohmann::json extra;  ///< loop-specific (e.g. temporal's drawn prompts)
};

template <Policy P, class J>
void save_preference_checkpoint(const std::filesystem::path& dir, P& policy, P& reference, torch::optim::Optimizer& opt,
                                J& judge, const PreferenceLoopState& s, const std::vector<torch::Tensor>* snapshot) {
  LoopState ls;
  ls.step = s.steps;
  ls.rng = s.rng;
  ls.extra = {{"iteration", s.iteration}, {"phase", s.phase},          {"phase_step", s.phase_step},
              {"data", s.data.to_json()}, {"judge", judge_state(judge)}, {"loop", s.extra},
              {"has_snapshot", snapshot != nullptr}};
  save_checkpoint(dir, policy, opt, ls);
  save_tensors(dir / "reference.pt", parameter_copy(reference));
  if (snapshot != nullptr) save_tensors(dir / "snapshot.pt", *snapshot);
}

template <Policy P, class J>
PreferenceLoopState load_preference_checkpoint(const std::filesystem::path& dir, P& policy, P& reference,
                                               torch::optim::Optimizer& opt, J& judge, std::vector<torch::Tensor>* snapshot) {
  LoopState ls = load_checkpoint(dir, policy, opt);
  PreferenceLoopState s;
  s.steps = ls.step;
  s.rng = ls.rng;
  s.iteration = ls.extra.at("iteration").get<std::int64_t>();
  s.phase = ls.extra.at("phase").get<std::int64_t>();
  s.phase_step = ls.extra.at("phase_step").get<std::int64_t>();
  s.data = PreferenceData::from_json(ls.extra.at("data"));
  s.extra = ls.extra.at("loop");
  restore_judge(judge, ls.extra.at("judge"));
  assign_parameters(reference, load_tensors(dir / "reference.pt"));
  if (snapshot != nullptr && ls.extra.at("has_snapshot").get<bool>()) *snapshot = load_tensors(dir / "snapshot.pt");
  return s;
}

/// Runs DPO steps of the current phase until `steps` are done, checkpointing as configured.
/// `save()` writes a checkpoint of the current state.
template <Policy P, class Save>
void train_phase(P& policy, P& reference, torch::optim::Optimizer& opt, const std::vector<torch::Tensor>& params,
                 std::span<const Prompt> pool, PreferenceLoopState& s, const PreferenceLoopConfig& config,
                 const MetricsCallback& on_metrics, PreferenceLoopResult& result, const char* phase_name, std::int64_t steps,
                 Save&& save) {
  while (s.phase_step < steps) {
    if (s.data.pairs.empty()) {
      s.phase_step = steps;  // nothing to learn from this iteration
      break;
    }
    const std::vector<std::size_t> chosen = step_pairs(s.data.pairs.size(), config.pairs_per_step, s.rng);
    nlohmann::json m = dpo_step(policy, reference, opt, params, pool, s.data, chosen, config);
    ++s.phase_step;
    ++s.steps;
    m["step"] = s.steps;
    m["iteration"] = s.iteration + 1;
    m["phase"] = phase_name;
    if (on_metrics) on_metrics(m);
    result.history.push_back(std::move(m));
    if (config.checkpoint_every > 0 && s.steps % config.checkpoint_every == 0) save();
  }
}

}  // namespace detail

/// Runs iterative DPO (see the header) from the current policy, or from `config.resume_from`.
/// `policy`: trained in place. `reference`: a model of the same architecture, overwritten with the policy's
/// parameters at the start (and at every iteration with refresh_reference). `sampler`: samples from the
/// policy itself. `judge`: any kaizen::Judge. `prompts`: the prompt pool.
/// Throws kaizen::Error on an empty prompt set, N < 2, a judge returning the wrong count or non-finite
/// scores, invalid config values, and for everything the sampler, collate or dpo_loss reject.
template <Policy P, Sampler S, Judge J>
PreferenceLoopResult iterative_dpo(P& policy, P& reference, S& sampler, J& judge, std::span<const Prompt> prompts,
                                   const PreferenceLoopConfig& config, const MetricsCallback& on_metrics = {}) {
  detail::check_preference_config("iterative_dpo", config, prompts.size());
  const std::vector<torch::Tensor> params = policy.parameters();
  auto opt = detail::fresh_adamw(params, config.optimizer);
  detail::PreferenceLoopState s;
  s.rng.seed(config.seed);
  if (!config.resume_from.empty()) {
    s = detail::load_preference_checkpoint(config.resume_from, policy, reference, *opt, judge, nullptr);
  } else {
    detail::assign_parameters(reference, detail::parameter_copy(policy));
  }
  auto save = [&] { detail::save_preference_checkpoint(config.checkpoint_dir, policy, reference, *opt, judge, s, nullptr); };
  PreferenceLoopResult result;
  while (s.iteration < config.iterations) {
    if (s.phase == 0) {  // 1-5: reference, prompts, samples, judge, pairs
      if (config.refresh_reference) detail::assign_parameters(reference, detail::parameter_copy(policy));
      s.data = PreferenceData{};
      const auto drawn = draw_prompt_indices(prompts.size(), config.prompts_per_iteration, s.rng);
      (void)sample_and_judge(sampler, judge, prompts, drawn, config.samples_per_prompt, config.sampling, s.rng, 0, s.data,
                             "iterative_dpo");
      s.data.pairs = preference::best_vs_worst_pairs(s.data.scored, config.pairs);
      const std::size_t identical = s.data.drop_identical();
      nlohmann::json m = {{"event", "iterative_dpo_pairs"}, {"iteration", s.iteration + 1}, {"step", s.steps},
                          {"prompts", drawn.size()}, {"identical_dropped", identical}};
      s.data.write_pair_stats(m);
      if (on_metrics) on_metrics(m);
      result.history.push_back(std::move(m));
      opt = detail::fresh_adamw(params, config.optimizer);
      s.phase = 1;
      s.phase_step = 0;
    }
    detail::train_phase(policy, reference, *opt, params, prompts, s, config, on_metrics, result, "dpo", config.steps_per_iteration, save);
    ++s.iteration;
    s.phase = 0;
    s.phase_step = 0;
    const nlohmann::json end = {{"event", "iteration_end"}, {"iteration", s.iteration}, {"step", s.steps}};
    if (on_metrics) on_metrics(end);
    result.history.push_back(end);
  }
  if (config.checkpoint_every > 0) save();
  result.iterations = s.iteration;
  result.steps = s.steps;
  return result;
}

}  // namespace kaizen::loop
