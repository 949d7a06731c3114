// kaizen/loop/rest_mcts.hpp - ReST-MCTS*: self-training of a policy and its process reward model
// (PRM) from MCTS* over reasoning steps, without human step labels.
//
// Iteration t = 1..T (policy π_{t-1}, value model V_{t-1}):
//   1. search:  for every training prompt x (or a random subset of prompts_per_iteration), MCTS* over
//               steps (loop/steps.hpp: the sampler over π proposes `branch` next steps per expansion,
//               V scores every new node; search/mcts.hpp with the ReST-MCTS* rules by default: UCT
//               c = 0.4 with unvisited bonus 0.8, eager evaluation, roll-out blend α = 0.5,
//               visit-weighted backup). The verifier judges every terminal node against x's reference.
//   2. targets: quality values of every node of the tree (search/trace.hpp), with v_0 = 0,
//                 w_k = (1 − v_{k−1}) / (m_k + 1) · (1 − 2 r_k),   v_k = max(v_{k−1} + w_k, 0)
//               (m_k: steps from node k to the nearest correct terminal; r_k = 0 when one is below
//               it, else 1), kept for nodes visited at least prm_min_visits times and all terminals.
//               PRM example = (x + steps 1..k, v_k).
//   3. traces:  correct terminal paths whose value-model score (the node's evaluation) is at least
//               min_trace_value (ReST-MCTS*'s vm_critic filter, 0.2) and that have >= min_trace_steps
//               steps; at most `cap` distinct traces per prompt, highest value first.
//   4. train:   V_t = V_{t-1} + prm_steps AdamW steps of value_loss (MSE by default) on the targets
//               (batches drawn uniformly with replacement; this iteration's targets, or all so far
//               with accumulate_prm_data); π_t = π_{t-1} (or the base π_0 when restart_from_base) +
//               sft_steps (or ceil(sft_epochs·|traces| / sft_batch)) steps of SFT on the kept traces;
//               fresh optimisers for each phase of each iteration. An empty dataset skips its phase.
// Every draw (prompt subset, per-search seeds, batches) comes from the loop's engine. The checkpoint
// holds the policy, the value model, both optimisers, the engine, the phase (search / prm / sft),
// the position inside it, both datasets built so far and the base snapshot, so a run resumed in the
// middle of a search phase, a PRM phase or an SFT phase is bit-equal to one that never stopped.
// Trees are discarded after their prompt: everything the loop needs from them is in the datasets.
// Generated tokens (every token the sampler produced during search) are counted per iteration, for
// comparisons at equal generation budget.
//
// Reference: Zhang et al., "ReST-MCTS*: LLM Self-Training via Process Reward Guided Tree Search"
// (2024, arXiv 2406.03816); code THUDM/ReST-MCTS (MCTS/mcts.py, MCTS/base.py, PRM/train_VM_*.py,
// self_train/vm_critic/filter_policy_examples_by_value.py): defaults above.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
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
#include <kaizen/core/types.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/snapshot.hpp>
#include <kaizen/loop/steps.hpp>
#include <kaizen/loop/update.hpp>
#include <kaizen/models/value_head.hpp>
#include <kaizen/search/mcts.hpp>
#include <kaizen/search/trace.hpp>

namespace kaizen::loop {

/// ReST-MCTS*'s search defaults (see the file comment); simulations per prompt is the caller's budget.
[[nodiscard]] inline search::MctsOptions rest_mcts_search_defaults() {
  return {.selection = search::Selection::uct, .c = 0.4, .unvisited_bonus = 0.8, .backup = search::Backup::rest_mcts,
          .evaluation = search::Evaluation::eager, .rollout_alpha = 0.5, .simulations = 16, .leaves_per_round = 1,
          .branch = 3};
}

struct RestMctsConfig {
  std::int64_t iterations = 2;               ///< T, >= 0 (counting resumed iterations)
  std::int64_t prompts_per_iteration = 0;    ///< 0 = every prompt, else a random subset of this size
  search::MctsOptions search = rest_mcts_search_defaults();  ///< its seed is replaced per prompt
  StepSearchOptions steps{};                 ///< segmentation and step sampling (its seed is replaced per prompt)
  std::uint32_t prm_min_visits = 1;          ///< nodes with fewer visits give no PRM target (terminals always do)
  double min_trace_value = 0.2;              ///< value-model filter of kept traces (vm_critic)
  std::int64_t min_trace_steps = 1;          ///< shorter traces are dropped
  std::int64_t cap = 4;                      ///< kept traces per prompt, > 0
  std::int64_t prm_steps = 100;              ///< value-model steps per iteration, >= 0
  std::int64_t prm_batch = 64;               ///< > 0
  AdamWConfig prm_optimizer{.learning_rate = 1e-3};
  lm::ValueLoss prm_loss = lm::ValueLoss::mse;
  std::int64_t sft_steps = 100;              ///< policy SFT steps per iteration, >= 0 (when sft_epochs == 0)
  double sft_epochs = 0.0;                   ///< > 0: SFT steps = ceil(sft_epochs · |traces| / sft_batch) instead
  bool accumulate_prm_data = false;          ///< keep earlier iterations' PRM examples (else: this iteration's only)
  std::int64_t sft_batch = 32;               ///< > 0
  AdamWConfig sft_optimizer{.learning_rate = 1e-3};
  double max_grad_norm = 1.0;                ///< both phases; <= 0 = no clip
  bool restart_from_base = false;            ///< SFT from π_0 each iteration (ReST-EM style) or continue
  CollateOptions collate{};                  ///< policy SFT batches
  TokenId pad_id = 0;                        ///< value-model padding
  std::int64_t value_max_batch = 0;          ///< rows per value-model forward in search (0 = all)
  std::uint64_t seed = 0;
  std::int64_t checkpoint_every = 0;         ///< > 0: checkpoint every so many units (a searched prompt, a PRM
                                             ///< step or an SFT step), after each phase and at the end
  std::filesystem::path checkpoint_dir;
  std::filesystem::path resume_from;
  std::int64_t stop_after_units = 0;         ///< > 0: stop with a checkpoint once this many units are done in total
};

struct RestMctsHooks {
  /// After each iteration (e.g. a held-out evaluation into `metrics`).
  std::function<void(std::int64_t iteration, nlohmann::json& metrics)> after_iteration;
  /// After each searched prompt: the prompt, the tree and its quality targets (e.g. step-level analysis).
  std::function<void(const Prompt&, const search::Tree<StepState>&, const search::QualityTargets&)> on_tree;
};

struct RestMctsResult {
  std::int64_t iterations = 0;          ///< iterations completed (including resumed ones)
  std::int64_t units = 0;               ///< units done in total
  bool stopped = false;                 ///< ended by stop_after_units
  std::vector<nlohmann::json> history;  ///< one record per iteration finished in this call
};

/// One value-model training example: a path prefix and the quality value of its last step.
struct ValueExample {
  std::vector<TokenId> tokens;
  double target = 0.0;
};

namespace detail {

inline void check_rest_mcts(const RestMctsConfig& c) {
  const char* who = "rest_mcts";
  KAIZEN_CHECK(c.iterations >= 0, who, ": iterations must be >= 0, got ", c.iterations);
  KAIZEN_CHECK(c.prompts_per_iteration >= 0, who, ": prompts_per_iteration must be >= 0 (0 = all), got ",
               c.prompts_per_iteration);
  KAIZEN_CHECK(c.cap > 0, who, ": cap must be > 0, got ", c.cap);
  KAIZEN_CHECK(std::isfinite(c.min_trace_value), who, ": min_trace_value must be finite, got ", c.min_trace_value);
  KAIZEN_CHECK(c.prm_steps >= 0 && c.sft_steps >= 0, who, ": prm_steps and sft_steps must be >= 0, got ", c.prm_steps,
               " and ", c.sft_steps);
  KAIZEN_CHECK(c.sft_epochs >= 0.0 && std::isfinite(c.sft_epochs), who, ": sft_epochs must be finite and >= 0, got ",
               c.sft_epochs);
  KAIZEN_CHECK(c.prm_batch > 0 && c.sft_batch > 0, who, ": prm_batch and sft_batch must be > 0, got ", c.prm_batch,
               " and ", c.sft_batch);
  KAIZEN_CHECK(c.checkpoint_every >= 0, who, ": checkpoint_every must be >= 0, got ", c.checkpoint_every);
  KAIZEN_CHECK(c.checkpoint_every == 0 || !c.checkpoint_dir.empty(), who, ": checkpoint_every > 0 needs a checkpoint_dir");
  KAIZEN_CHECK(c.stop_after_units >= 0, who, ": stop_after_units must be >= 0, got ", c.stop_after_units);
  KAIZEN_CHECK(c.stop_after_units == 0 || c.checkpoint_every > 0, who,
               ": stop_after_units > 0 needs checkpoint_every > 0 (the stop writes a checkpoint)");
  search::validate(c.search);
  c.steps.segmenter.validate(who);
}

inline void rest_mcts_save_tensors(const std::filesystem::path& file, const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> cpu;
  for (const torch::Tensor& p : params) cpu.push_back(p.detach().cpu());
  torch::save(cpu, file.string());
}

inline void rest_mcts_load_tensors(const std::filesystem::path& file, const std::vector<torch::Tensor>& params, const char* what) {
  KAIZEN_CHECK(std::filesystem::exists(file), "rest_mcts: ", file.string(), " does not exist");
  std::vector<torch::Tensor> saved;
  torch::load(saved, file.string());
  KAIZEN_CHECK(saved.size() == params.size(), "rest_mcts: the checkpoint's ", what, " has ", saved.size(),
               " tensors but the model has ", params.size());
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < params.size(); ++i) {
    KAIZEN_CHECK(saved[i].sizes() == params[i].sizes(), "rest_mcts: ", what, " tensor ", i, " has shape ",
                 saved[i].sizes(), " in the checkpoint but ", params[i].sizes(), " in the model");
    params[i].copy_(saved[i]);
  }
}

inline void rest_mcts_save_optimizer(const std::filesystem::path& file, torch::optim::Optimizer& opt) {
  torch::serialize::OutputArchive archive;
  opt.save(archive);
  archive.save_to(file.string());
}

inline void rest_mcts_load_optimizer(const std::filesystem::path& file, torch::optim::Optimizer& opt) {
  KAIZEN_CHECK(std::filesystem::exists(file), "rest_mcts: ", file.string(), " does not exist");
  torch::serialize::InputArchive archive;
  archive.load_from(file.string());
  opt.load(archive);
}

}  // namespace detail

/// Runs ReST-MCTS* (see the top of the file). `sampler` must sample from `policy`; `verifier(prompt,
/// completion) -> bool` judges a finished trace (Completion::tokens = all step tokens, text = the joined
/// step texts when the step decode is set, finish = stop when the last step ended with an end token).
/// `decode` (optional) gives step texts. Metrics: "rest_mcts_iteration" per iteration, "rest_mcts_prm" and
/// "rest_mcts_sft" per training step. Throws kaizen::Error on an empty prompt set, a bad config, a
/// checkpoint that does not fit, and whatever the stages reject (a non-finite value, a path beyond the
/// value model's context, ...).
template <Policy P, Sampler S, Verifier V>
RestMctsResult rest_mcts(P& policy, S& sampler, lm::ValueModel& value_model, V& verifier, std::span<const Prompt> prompts,
                         const RestMctsConfig& config, const MetricsCallback& on_metrics = {},
                         const RestMctsHooks& hooks = {},
                         std::function<std::string(std::span<const TokenId>)> decode = {}) {
  using Clock = std::chrono::steady_clock;
  using search::NodeId;
  KAIZEN_CHECK(!prompts.empty(), "rest_mcts: the prompt set is empty; expected at least one training prompt");
  detail::check_rest_mcts(config);
  const std::vector<torch::Tensor> policy_params = policy.parameters();
  const std::vector<torch::Tensor> value_params = value_model.parameters();
  auto prm_opt = std::make_unique<torch::optim::AdamW>(make_adamw(value_params, config.prm_optimizer));
  auto sft_opt = std::make_unique<torch::optim::AdamW>(make_adamw(policy_params, config.sft_optimizer));

  Rng rng(config.seed);
  std::int64_t iteration = 0, units = 0, phase = 0, position = 0;  // phase 0 search, 1 prm, 2 sft
  std::vector<std::int64_t> chosen;  // prompt indices of this iteration (empty: not drawn yet)
  std::vector<ValueExample> prm_data;
  std::vector<Rollout> sft_data;
  nlohmann::json record;
  ParameterSnapshot base;

  auto save = [&] {
    const auto& dir = config.checkpoint_dir;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    KAIZEN_CHECK(!ec, "rest_mcts: cannot create ", dir.string(), ": ", ec.message());
    detail::rest_mcts_save_tensors(dir / "policy.pt", policy_params);
    detail::rest_mcts_save_tensors(dir / "value.pt", value_params);
    detail::rest_mcts_save_optimizer(dir / "prm_optimizer.pt", *prm_opt);
    detail::rest_mcts_save_optimizer(dir / "sft_optimizer.pt", *sft_opt);
    if (config.restart_from_base) save_snapshot(dir / "base.pt", base);
    nlohmann::json prm = nlohmann::json::array(), sft = nlohmann::json::array();
    for (const ValueExample& e : prm_data) prm.push_back({e.tokens, e.target});
    for (const Rollout& r : sft_data) sft.push_back({r.prompt, r.completion.tokens});
    const nlohmann::json state = {{"iteration", iteration}, {"units", units},   {"phase", phase},
                                  {"position", position},   {"chosen", chosen}, {"prm_data", prm},
                                  {"sft_data", sft},        {"record", record}, {"rng", save_rng(rng)}};
    std::ofstream out(dir / "state.json");
    out << state.dump() << '\n';
    KAIZEN_CHECK(out.good(), "rest_mcts: writing ", (dir / "state.json").string(), " failed");
  };

  if (!config.resume_from.empty()) {
    const auto& dir = config.resume_from;
    KAIZEN_CHECK(std::filesystem::exists(dir / "state.json"), "rest_mcts: ", (dir / "state.json").string(),
                 " does not exist");
    detail::rest_mcts_load_tensors(dir / "policy.pt", policy_params, "policy");
    detail::rest_mcts_load_tensors(dir / "value.pt", value_params, "value model");
    detail::rest_mcts_load_optimizer(dir / "prm_optimizer.pt", *prm_opt);
    detail::rest_mcts_load_optimizer(dir / "sft_optimizer.pt", *sft_opt);
    std::ifstream in(dir / "state.json");
    nlohmann::json s;
    try {
      in >> s;
      iteration = s.at("iteration").get<std::int64_t>();
      units = s.at("units").get<std::int64_t>();
      phase = s.at("phase").get<std::int64_t>();
      position = s.at("position").get<std::int64_t>();
      chosen = s.at("chosen").get<std::vector<std::int64_t>>();
      for (const auto& row : s.at("prm_data"))
        prm_data.push_back({row.at(0).get<std::vector<TokenId>>(), row.at(1).get<double>()});
      for (const auto& row : s.at("sft_data")) {
        Rollout r;
        r.prompt = row.at(0).get<std::vector<TokenId>>();
        r.completion.tokens = row.at(1).get<std::vector<TokenId>>();
        sft_data.push_back(std::move(r));
      }
      record = s.at("record");
      restore_rng(rng, s.at("rng").get<std::string>());
    } catch (const nlohmann::json::exception& e) {
      fail("rest_mcts: ", (dir / "state.json").string(), " is not a checkpoint of this loop: ", e.what());
    }
    for (std::int64_t i : chosen)
      KAIZEN_CHECK(i >= 0 && i < static_cast<std::int64_t>(prompts.size()), "rest_mcts: the checkpoint chose prompt ", i,
                   " but the prompt set has ", prompts.size());
    if (config.restart_from_base) {
      const torch::Device device = policy_params.empty() ? torch::Device(torch::kCPU) : policy_params.front().device();
      base = load_snapshot(dir / "base.pt", device);
    }
  } else if (config.restart_from_base) {
    base = take_snapshot(policy);
  }
  const bool checkpointing = config.checkpoint_every > 0;
  RestMctsResult result;
  // Counts one unit; true when the run must stop here (a checkpoint has been written).
  auto unit_done = [&]() {
    ++units;
    if (config.stop_after_units > 0 && units >= config.stop_after_units) {
      save();
      return true;
    }
    if (checkpointing && units % config.checkpoint_every == 0) save();
    return false;
  };
  auto stopped = [&] {
    result.stopped = true;
    result.iterations = iteration;
    result.units = units;
    return result;
  };

  while (iteration < config.iterations) {
    if (phase == 0) {
      if (chosen.empty()) {  // a new iteration: draw the prompts
        record = {{"event", "rest_mcts_iteration"}, {"iteration", iteration + 1}, {"searched", 0}, {"nodes", 0},
                  {"terminals", 0}, {"correct_terminals", 0}, {"prompts_solved", 0}, {"generated_tokens", 0},
                  {"sampler_calls", 0}, {"kept", 0}, {"search_seconds", 0.0}};
        std::vector<std::int64_t> all(prompts.size());
        for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int64_t>(i);
        const auto n = config.prompts_per_iteration > 0
                           ? std::min<std::size_t>(static_cast<std::size_t>(config.prompts_per_iteration), all.size())
                           : all.size();
        if (n < all.size())
          for (std::size_t i = 0; i < n; ++i) std::swap(all[i], all[i + uniform_index(rng, all.size() - i)]);
        all.resize(n);
        chosen = all;
        position = 0;
        if (!config.accumulate_prm_data) prm_data.clear();
        sft_data.clear();
      }
      // 1-3. Search each chosen prompt; collect PRM targets and kept traces.
      while (position < static_cast<std::int64_t>(chosen.size())) {
        const auto t0 = Clock::now();
        const Prompt& prompt = prompts[static_cast<std::size_t>(chosen[static_cast<std::size_t>(position)])];
        StepSearchOptions so = config.steps;
        so.seed = rng();
        search::MctsOptions mo = config.search;
        mo.seed = rng();
        lm::ValueModelEvaluator evaluator(value_model, prompt.tokens, 0.0, config.value_max_batch, config.pad_id);
        StepSearchProblem problem(sampler, evaluator, prompt, so, decode);
        search::Mcts mcts(problem, mo);
        mcts.search();
        const search::Tree<StepState>& tree = mcts.tree();
        const StepSegmenter& seg = config.steps.segmenter;
        std::vector<char> correct(tree.size(), 0);
        std::int64_t terminals = 0, n_correct = 0;
        for (NodeId id = 1; id < tree.size(); ++id) {
          if (!tree[id].terminal) continue;
          ++terminals;
          Completion c;
          for (NodeId n : tree.path(id)) {
            const auto t = tree.tokens(n);
            c.tokens.insert(c.tokens.end(), t.begin(), t.end());
          }
          c.finish = !c.tokens.empty() && seg.is_end(c.tokens.back()) ? FinishReason::stop : FinishReason::length;
          if (decode) c.text = tree.path_text(id, "");
          correct[id] = verifier(prompt, c) ? 1 : 0;
          n_correct += correct[id];
        }
        const search::QualityTargets q =
            search::quality_value_targets(tree, [&](const search::Tree<StepState>&, NodeId id) { return correct[id] != 0; });
        if (hooks.on_tree) hooks.on_tree(prompt, tree, q);
        std::vector<TokenId> path_tokens;
        for (NodeId id = 1; id < tree.size(); ++id) {
          if (!tree[id].terminal && tree[id].visits < config.prm_min_visits) continue;
          ValueExample e{problem.prefix(tree, id), q.value[id]};
          prm_data.push_back(std::move(e));
        }
        // Kept traces: correct, value-filtered, long enough, distinct, best value first, at most cap.
        std::vector<NodeId> good;
        for (NodeId id = 1; id < tree.size(); ++id)
          if (correct[id] && tree[id].evaluation >= config.min_trace_value &&
              static_cast<std::int64_t>(tree[id].depth) >= config.min_trace_steps)
            good.push_back(id);
        std::stable_sort(good.begin(), good.end(), [&](NodeId a, NodeId b) { return tree[a].evaluation > tree[b].evaluation; });
        std::vector<std::vector<TokenId>> kept;
        for (NodeId id : good) {
          if (static_cast<std::int64_t>(kept.size()) >= config.cap) break;
          std::vector<TokenId> full = problem.prefix(tree, id);
          std::vector<TokenId> completion(full.begin() + static_cast<std::ptrdiff_t>(prompt.tokens.size()), full.end());
          if (std::find(kept.begin(), kept.end(), completion) != kept.end()) continue;
          kept.push_back(completion);
          Rollout r;
          r.prompt = prompt.tokens;
          r.completion.tokens = std::move(completion);
          sft_data.push_back(std::move(r));
        }
        record["searched"] = record["searched"].get<std::int64_t>() + 1;
        record["nodes"] = record["nodes"].get<std::int64_t>() + static_cast<std::int64_t>(tree.size());
        record["terminals"] = record["terminals"].get<std::int64_t>() + terminals;
        record["correct_terminals"] = record["correct_terminals"].get<std::int64_t>() + n_correct;
        record["prompts_solved"] = record["prompts_solved"].get<std::int64_t>() + (n_correct > 0 ? 1 : 0);
        record["generated_tokens"] = record["generated_tokens"].get<std::int64_t>() +
                                     static_cast<std::int64_t>(problem.generated_tokens());
        record["sampler_calls"] = record["sampler_calls"].get<std::int64_t>() + static_cast<std::int64_t>(problem.sampler_calls());
        record["kept"] = static_cast<std::int64_t>(sft_data.size());
        record["search_seconds"] = record["search_seconds"].get<double>() + std::chrono::duration<double>(Clock::now() - t0).count();
        ++position;
        if (unit_done()) return stopped();
      }
      record["prm_examples"] = static_cast<std::int64_t>(prm_data.size());
      double target_mean = 0.0;
      for (const ValueExample& e : prm_data) target_mean += e.target / static_cast<double>(prm_data.size());
      record["prm_target_mean"] = target_mean;
      phase = 1;
      position = 0;
      prm_opt = std::make_unique<torch::optim::AdamW>(make_adamw(value_params, config.prm_optimizer));
      if (checkpointing) save();
    }
    if (phase == 1) {
      // 4a. Value model on the quality-value targets.
      const std::int64_t steps = prm_data.empty() ? 0 : config.prm_steps;
      const auto t0 = Clock::now();
      while (position < steps) {
        std::vector<std::vector<TokenId>> seq;
        std::vector<std::vector<std::int64_t>> ends;
        std::vector<double> targets;
        for (std::int64_t i = 0; i < config.prm_batch; ++i) {
          const ValueExample& e = prm_data[uniform_index(rng, prm_data.size())];
          seq.push_back(e.tokens);
          ends.push_back({static_cast<std::int64_t>(e.tokens.size())});
          targets.push_back(e.target);
        }
        const lm::StepValueBatch batch =
            lm::make_step_batch(seq, ends, targets, config.pad_id, value_model.config().max_position_embeddings,
                                value_model.head->weight.device());
        const torch::Tensor loss = value_model.value_loss(batch, config.prm_loss);
        apply_update(*prm_opt, value_params, loss, config.max_grad_norm);
        ++position;
        const double l = loss.item<double>();
        if (on_metrics) on_metrics({{"event", "rest_mcts_prm"}, {"iteration", iteration + 1}, {"step", position}, {"loss", l}});
        if (position == steps) record["prm_final_loss"] = l;
        if (unit_done()) return stopped();
      }
      record["prm_seconds"] = std::chrono::duration<double>(Clock::now() - t0).count();
      phase = 2;
      position = 0;
      if (config.restart_from_base) restore_snapshot(policy, base, "rest_mcts");
      sft_opt = std::make_unique<torch::optim::AdamW>(make_adamw(policy_params, config.sft_optimizer));
      if (checkpointing) save();
    }
    // 4b. Policy SFT on the kept traces.
    const std::int64_t steps =
        sft_data.empty() ? 0
        : config.sft_epochs > 0.0
            ? static_cast<std::int64_t>(std::ceil(config.sft_epochs * static_cast<double>(sft_data.size()) /
                                                  static_cast<double>(config.sft_batch)))
            : config.sft_steps;
    const auto t0 = Clock::now();
    while (position < steps) {
      std::vector<Rollout> batch;
      for (std::int64_t i = 0; i < config.sft_batch; ++i) batch.push_back(sft_data[uniform_index(rng, sft_data.size())]);
      const SftStepResult s = sft_step(policy, *sft_opt, policy_params, std::move(batch), config.collate, config.max_grad_norm);
      ++position;
      if (on_metrics) on_metrics({{"event", "rest_mcts_sft"}, {"iteration", iteration + 1}, {"step", position}, {"loss", s.loss}});
      if (position == steps) record["sft_final_loss"] = s.loss;
      if (unit_done()) return stopped();
    }
    record["sft_seconds"] = std::chrono::duration<double>(Clock::now() - t0).count();
    ++iteration;
    phase = 0;
    position = 0;
    chosen.clear();
    if (hooks.after_iteration) hooks.after_iteration(iteration, record);
    if (on_metrics) on_metrics(record);
    result.history.push_back(record);
    if (checkpointing) save();
  }
  result.iterations = iteration;
  result.units = units;
  return result;
}

}  // namespace kaizen::loop
