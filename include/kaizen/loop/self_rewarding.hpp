// kaizen/loop/self_rewarding.hpp - Self-Rewarding and Temporal Self-Rewarding language models.
//
// Self-Rewarding (Yuan et al. 2024): iterative DPO (loop/iterative_dpo.hpp) whose judge is the policy
// itself, prompted as an LLM-as-a-judge (loop::PolicyJudge over a sampler of the same model): M_t samples
// N answers per prompt, M_t scores them, best-vs-worst pairs train M_{t+1}. Because chosen and rejected
// both come from M_t and improve together, their score gap shrinks over iterations.
//
// Temporal Self-Rewarding (Wang et al. 2025) decouples them in time. Iteration t:
//   1. π_ref ← M_t (refresh_reference), keep a snapshot of M_t; draw P prompts
//   2. sample N answers per prompt from M_t (model tag 1) and N from the anchor M_0 (tag 0, a frozen copy of
//      the initial model behind `anchor_sampler`); score all with the judge
//   3. anchored rejection: pairs = preference::temporal_pairs (rejected = worst anchor answer, chosen = best
//      current answer); `provisional_steps` DPO steps from M_t -> provisional M'_{t+1}
//   4. future-guided chosen: sample N answers per prompt from M'_{t+1} (tag 2); restore M_t (so the judge,
//      when it is the policy, is M_t for every score of the iteration); score them; rebuild the pairs with
//      the future answers (a future best that strictly beats the current best replaces the chosen)
//   5. `steps_per_iteration` DPO steps from M_t on the refreshed pairs -> M_{t+1}
// The pair rule's oracle (digest §9): current {7, 9}, anchor {2, 5}, future {10, 8} -> (future 10, anchor 2).
// Phases 1-5 are resumable mid-iteration: the checkpoint carries the phase, its step, the samples and pairs,
// the drawn prompts, the snapshot of M_t (snapshot.pt), the reference (reference.pt), the judge's state and
// the engine. Metrics: {"event":"temporal_pairs","stage":"anchored"|"future_guided", ...pair stats} and the
// "dpo" / "iteration_end" records of iterative_dpo.
// The exact ordering of the two phases and the sample counts per model are a reconstruction from the
// paper's summary (digest §9, §17 item 6); the loop exposes both counts.
//
// References: Yuan et al. 2024, "Self-Rewarding Language Models" (arXiv 2401.10020); Wang et al. 2025,
// "Temporal Self-Rewarding Language Models" (arXiv 2508.06026).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/judge.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/sampler.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/iterative_dpo.hpp>
#include <kaizen/loop/judges.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/preference/pair_builder.hpp>

namespace kaizen::loop {

/// Self-Rewarding: iterative_dpo with the policy as its own judge. `judge` must sample from the policy
/// (a PolicyJudge over a sampler of the same model); its call counter is saved in checkpoints.
template <Policy P, Sampler S, Sampler JS>
PreferenceLoopResult self_rewarding(P& policy, P& reference, S& sampler, PolicyJudge<JS>& judge,
                                    std::span<const Prompt> prompts, const PreferenceLoopConfig& config,
                                    const MetricsCallback& on_metrics = {}) {
  return iterative_dpo(policy, reference, sampler, judge, prompts, config, on_metrics);
}

/// The temporal loop's own settings.
struct TemporalConfig {
  std::int64_t provisional_steps = 0;  ///< DPO steps that make M'_{t+1}; 0 = steps_per_iteration
  std::int64_t anchor_samples = 0;     ///< answers per prompt from M_0; 0 = samples_per_prompt
  std::int64_t future_samples = 0;     ///< answers per prompt from M'_{t+1}; 0 = samples_per_prompt
};

/// Temporal Self-Rewarding (see the header). `sampler` samples from the policy; `anchor_sampler` from a
/// frozen copy of the initial model (never trained here). Other arguments as iterative_dpo.
/// Throws kaizen::Error like iterative_dpo, and on negative TemporalConfig counts.
template <Policy P, Sampler S, Sampler A, Judge J>
PreferenceLoopResult temporal_self_rewarding(P& policy, P& reference, S& sampler, A& anchor_sampler, J& judge,
                                             std::span<const Prompt> prompts, const PreferenceLoopConfig& config,
                                             const TemporalConfig& temporal = {}, const MetricsCallback& on_metrics = {}) {
  detail::check_preference_config("temporal_self_rewarding", config, prompts.size());
  KAIZEN_CHECK(temporal.provisional_steps >= 0 && temporal.anchor_samples >= 0 && temporal.future_samples >= 0,
               "temporal_self_rewarding: expected provisional_steps, anchor_samples and future_samples >= 0 (0 = default), got ",
               temporal.provisional_steps, ", ", temporal.anchor_samples, ", ", temporal.future_samples);
  const std::int64_t provisional_steps = temporal.provisional_steps > 0 ? temporal.provisional_steps : config.steps_per_iteration;
  const std::int64_t anchor_n = temporal.anchor_samples > 0 ? temporal.anchor_samples : config.samples_per_prompt;
  const std::int64_t future_n = temporal.future_samples > 0 ? temporal.future_samples : config.samples_per_prompt;
  constexpr std::int64_t kAnchor = 0, kCurrent = 1, kFuture = 2;
  const preference::TemporalOptions ids{.anchor_model = kAnchor, .current_model = kCurrent, .future_model = kFuture,
                                        .margin = config.pairs.margin, .tie_break = config.pairs.tie_break,
                                        .seed = config.pairs.seed};

  const std::vector<torch::Tensor> params = policy.parameters();
  auto opt = detail::fresh_adamw(params, config.optimizer);
  std::vector<torch::Tensor> snapshot;  // M_t during phases 1-2
  detail::PreferenceLoopState s;
  s.rng.seed(config.seed);
  if (!config.resume_from.empty()) {
    s = detail::load_preference_checkpoint(config.resume_from, policy, reference, *opt, judge, &snapshot);
  } else {
    detail::assign_parameters(reference, detail::parameter_copy(policy));
  }
  auto save = [&] {
    detail::save_preference_checkpoint(config.checkpoint_dir, policy, reference, *opt, judge, s,
                                       s.phase == 1 ? &snapshot : nullptr);
  };
  PreferenceLoopResult result;
  auto report_pairs = [&](const char* stage, std::size_t identical) {
    nlohmann::json m = {{"event", "temporal_pairs"}, {"stage", stage}, {"iteration", s.iteration + 1}, {"step", s.steps},
                        {"identical_dropped", identical}};
    s.data.write_pair_stats(m);
    std::int64_t chosen_future = 0, chosen_current = 0, rejected_anchor = 0;
    for (const auto& p : s.data.pairs) {
      chosen_future += s.data.scored[p.chosen].model == kFuture ? 1 : 0;
      chosen_current += s.data.scored[p.chosen].model == kCurrent ? 1 : 0;
      rejected_anchor += s.data.scored[p.rejected].model == kAnchor ? 1 : 0;
    }
    m["chosen_from_future"] = chosen_future;
    m["chosen_from_current"] = chosen_current;
    m["rejected_from_anchor"] = rejected_anchor;
    if (on_metrics) on_metrics(m);
    result.history.push_back(std::move(m));
  };
  while (s.iteration < config.iterations) {
    if (s.phase == 0) {  // 1-3a: reference, snapshot, current and anchor samples, anchored pairs
      if (config.refresh_reference) detail::assign_parameters(reference, detail::parameter_copy(policy));
      snapshot = detail::parameter_copy(policy);
      s.data = PreferenceData{};
      const auto drawn = draw_prompt_indices(prompts.size(), config.prompts_per_iteration, s.rng);
      s.extra = {{"drawn", drawn}};
      (void)sample_and_judge(sampler, judge, prompts, drawn, config.samples_per_prompt, config.sampling, s.rng, kCurrent,
                             s.data, "temporal_self_rewarding");
      (void)sample_and_judge(anchor_sampler, judge, prompts, drawn, anchor_n, config.sampling, s.rng, kAnchor, s.data,
                             "temporal_self_rewarding (anchor)");
      s.data.pairs = preference::temporal_pairs(s.data.scored, ids);
      report_pairs("anchored", s.data.drop_identical());
      opt = detail::fresh_adamw(params, config.optimizer);
      s.phase = 1;
      s.phase_step = 0;
    }
    if (s.phase == 1) {  // 3b: provisional model
      detail::train_phase(policy, reference, *opt, params, prompts, s, config, on_metrics, result, "provisional",
                          provisional_steps, save);
      s.phase = 2;
      s.phase_step = 0;
    }
    if (s.phase == 2) {  // 4: future samples, back to M_t, judge, refreshed pairs
      const auto drawn = s.extra.at("drawn").get<std::vector<std::size_t>>();
      std::vector<Prompt> drawn_prompts;
      for (std::size_t i : drawn) drawn_prompts.push_back(prompts[i]);
      const std::vector<Completion> future = sample_groups(sampler, std::span<const Prompt>(drawn_prompts), future_n,
                                                           config.sampling, s.rng, "temporal_self_rewarding (future)");
      detail::assign_parameters(policy, snapshot);
      snapshot.clear();
      const auto N = static_cast<std::size_t>(future_n);
      for (std::size_t p = 0; p < drawn.size(); ++p) {
        const std::span<const Completion> group(future.data() + p * N, N);
        const std::vector<double> scores = judge_scores(judge, drawn_prompts[p], group);
        for (std::size_t i = 0; i < N; ++i) s.data.add(drawn[p], static_cast<std::int64_t>(p), kFuture, group[i], scores[i]);
      }
      s.data.pairs = preference::temporal_pairs(s.data.scored, ids);
      report_pairs("future_guided", s.data.drop_identical());
      opt = detail::fresh_adamw(params, config.optimizer);
      s.phase = 3;
      s.phase_step = 0;
    }
    // 5: M_{t+1} from M_t on the refreshed pairs.
    detail::train_phase(policy, reference, *opt, params, prompts, s, config, on_metrics, result, "dpo",
                        config.steps_per_iteration, save);
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
