// kaizen/loop/offline_preference.hpp - offline preference optimisation over a fixed dataset: DPO, IPO, KTO,
// ORPO, SimPO and CPO, with a live or precomputed reference, an evaluation split, and reward accuracy and
// margin metrics.
//
// Data (JSON Lines, one example a line; text fields are strings, encoded by the caller's tokenizer, or
// arrays of token ids):
//   paired    {"prompt": ..., "chosen": ..., "rejected": ... [, "reference_chosen": x, "reference_rejected": y]}
//   unpaired  {"prompt": ..., "completion": ..., "label": true|false [, "reference": x]}
// reference_* are precomputed sequence log-prob sums log π_ref(y|x) over the completion tokens.
//
// One step: `batch_size` examples from a shuffled pass over the training split (a new shuffle from the
// loop's engine at each pass), collated chosen rows then rejected rows; log π_θ per token through
// loop::policy_logprobs (the fused path for a HiddenStatePolicy), summed over each completion; log π_ref
// from the live reference (no gradient) or the examples' precomputed values; the loss chosen by name:
//   dpo    preference::dpo_loss     −log σ(β[(π_w − ref_w) − (π_l − ref_l)])            needs a reference
//   ipo    preference::ipo_loss     ((π_w − ref_w) − (π_l − ref_l) − 1/(2τ))²           needs a reference
//   kto    preference::kto_loss     unpaired; z0 from each example's prompt with the next example's
//                                   completion under both models (live reference), or the APO-zero form
//                                   (KtoOptions::loss = apo_zero_unpaired) with precomputed ones; paired data
//                                   is used as chosen = desirable, rejected = undesirable
//   orpo   preference::orpo_loss    NLL(y_w) + λ·(−log σ(log odds ratio))                reference-free
//   simpo  preference::simpo_loss   −log σ(β/|y_w| π_w − β/|y_l| π_l − γ)               reference-free
//   cpo    preference::cpo_loss     −log σ(β(π_w − π_l)) + α NLL(y_w)                   reference-free
// then one AdamW update with global gradient-norm clipping. Every `eval_every` steps (and before the first
// and after the last) the loss and its metrics are computed over the whole evaluation split without
// gradient. Metrics: {"event":"offline_preference","step","loss","reward_accuracy","margin","chosen_reward",
// "rejected_reward","grad_norm"} and {"event":"offline_preference_eval","step",...same without grad_norm}.
//
// Data parallel (config.communicator set): every rank draws the same batch; its pairs are split over the ranks,
// each rank back-propagates its pairs' losses divided by the whole batch's pair count and the gradients are summed
// (distributed::sharded_mean_update), so N ranks train the one-process model up to summation order; metrics are
// the whole batch's; every rank evaluates the whole evaluation split. Not for kto (z0 is a statistic of the whole
// batch) nor a batch-token NLL (orpo / cpo with NllNormalisation::batch_tokens): those throw kaizen::Error.
//
// References: Rafailov et al. 2023 (DPO, arXiv 2305.18290); Azar et al. 2023 (IPO, arXiv 2310.12036);
// Ethayarajh et al. 2024 (KTO, arXiv 2402.01306); Hong et al. 2024 (ORPO, arXiv 2403.07691); Meng et al. 2024
// (SimPO, arXiv 2405.14734); Xu et al. 2024 (CPO, arXiv 2401.08417).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <istream>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/rng.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/distributed/communicator.hpp>
#include <kaizen/distributed/data_parallel.hpp>
#include <kaizen/distributed/data_parallel_stages.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/metrics.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/preference/cpo.hpp>
#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/ipo.hpp>
#include <kaizen/preference/kto.hpp>
#include <kaizen/preference/orpo.hpp>
#include <kaizen/preference/preference_loss_types.hpp>
#include <kaizen/preference/sequence_logprobs.hpp>
#include <kaizen/preference/simpo.hpp>

namespace kaizen::loop {

/// A prompt with a preferred and a dispreferred completion.
struct PreferenceExample {
  std::vector<TokenId> prompt, chosen, rejected;
  std::optional<double> reference_chosen, reference_rejected;  ///< precomputed log π_ref sums, if any
};

/// A prompt with one completion labelled desirable or not (KTO).
struct UnpairedExample {
  std::vector<TokenId> prompt, completion;
  bool desirable = true;
  std::optional<double> reference;  ///< precomputed log π_ref sum, if any
};

/// A preference dataset: paired examples, unpaired ones, or both.
struct PreferenceDataset {
  std::vector<PreferenceExample> pairs;
  std::vector<UnpairedExample> unpaired;
  [[nodiscard]] std::size_t size() const { return pairs.size() + unpaired.size(); }
};

namespace detail {

template <class Tokenize>
std::vector<TokenId> preference_tokens(const nlohmann::json& line, const char* field, std::size_t number,
                                       Tokenize& tokenize) {
  KAIZEN_CHECK(line.contains(field), "load_preference_jsonl: line ", number, ": missing field '", field, "'");
  const nlohmann::json& v = line.at(field);
  if (v.is_string()) return tokenize(v.get<std::string>());
  KAIZEN_CHECK(v.is_array(), "load_preference_jsonl: line ", number, ": field '", field,
               "' must be a string or an array of token ids, got ", v.type_name());
  std::vector<TokenId> ids;
  for (const auto& x : v) {
    KAIZEN_CHECK(x.is_number_integer() && x.get<std::int64_t>() >= 0, "load_preference_jsonl: line ", number,
                 ": field '", field, "' must hold non-negative integer token ids, got ", x.dump());
    ids.push_back(x.get<TokenId>());
  }
  return ids;
}

inline std::optional<double> preference_number(const nlohmann::json& line, const char* field, std::size_t number) {
  if (!line.contains(field)) return std::nullopt;
  KAIZEN_CHECK(line.at(field).is_number(), "load_preference_jsonl: line ", number, ": field '", field,
               "' must be a number, got ", line.at(field).dump());
  return line.at(field).get<double>();
}

}  // namespace detail

/// Reads a JSON Lines preference dataset (format at the top of the file) from `in`; `tokenize(std::string)`
/// returns token ids. Blank lines are skipped. Throws kaizen::Error naming the line and the field on
/// malformed JSON, a missing or mistyped field, or a line that is neither paired nor unpaired.
template <class Tokenize>
[[nodiscard]] PreferenceDataset read_preference_jsonl(std::istream& in, Tokenize&& tokenize) {
  PreferenceDataset out;
  std::string text;
  for (std::size_t number = 1; std::getline(in, text); ++number) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json line = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    KAIZEN_CHECK(!line.is_discarded() && line.is_object(), "load_preference_jsonl: line ", number,
                 " is not a JSON object");
    if (line.contains("chosen") || line.contains("rejected")) {
      PreferenceExample e;
      e.prompt = detail::preference_tokens(line, "prompt", number, tokenize);
      e.chosen = detail::preference_tokens(line, "chosen", number, tokenize);
      e.rejected = detail::preference_tokens(line, "rejected", number, tokenize);
      e.reference_chosen = detail::preference_number(line, "reference_chosen", number);
      e.reference_rejected = detail::preference_number(line, "reference_rejected", number);
      KAIZEN_CHECK(e.reference_chosen.has_value() == e.reference_rejected.has_value(), "load_preference_jsonl: line ",
                   number, ": give both reference_chosen and reference_rejected, or neither");
      out.pairs.push_back(std::move(e));
    } else if (line.contains("completion") || line.contains("label")) {
      UnpairedExample e;
      e.prompt = detail::preference_tokens(line, "prompt", number, tokenize);
      e.completion = detail::preference_tokens(line, "completion", number, tokenize);
      KAIZEN_CHECK(line.contains("label") && line.at("label").is_boolean(), "load_preference_jsonl: line ", number,
                   ": field 'label' must be true or false");
      e.desirable = line.at("label").get<bool>();
      e.reference = detail::preference_number(line, "reference", number);
      out.unpaired.push_back(std::move(e));
    } else {
      fail("load_preference_jsonl: line ", number,
           ": expected a paired example (prompt, chosen, rejected) or an unpaired one (prompt, completion, label)");
    }
  }
  return out;
}

/// read_preference_jsonl from the file `path`. Throws kaizen::Error when it cannot be opened.
template <class Tokenize>
[[nodiscard]] PreferenceDataset load_preference_jsonl(const std::filesystem::path& path, Tokenize&& tokenize) {
  std::ifstream in(path);
  KAIZEN_CHECK(in.good(), "load_preference_jsonl: cannot open ", path.string());
  return read_preference_jsonl(in, std::forward<Tokenize>(tokenize));
}

/// Splits `data` into {train, eval}: each part (paired, unpaired) shuffled by an engine seeded with `seed`,
/// the first round(eval_fraction · n) examples go to eval. Throws unless 0 <= eval_fraction < 1.
[[nodiscard]] inline std::pair<PreferenceDataset, PreferenceDataset> split_preference_dataset(PreferenceDataset data,
                                                                                             double eval_fraction,
                                                                                             std::uint64_t seed) {
  KAIZEN_CHECK(eval_fraction >= 0.0 && eval_fraction < 1.0, "split_preference_dataset: eval_fraction must be in [0, 1), got ",
               eval_fraction);
  Rng rng(seed);
  std::pair<PreferenceDataset, PreferenceDataset> out;
  auto split = [&](auto& all, auto& train, auto& eval) {
    for (std::size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[uniform_index(rng, i)]);
    const auto n_eval = static_cast<std::size_t>(std::llround(eval_fraction * static_cast<double>(all.size())));
    for (std::size_t i = 0; i < all.size(); ++i) (i < n_eval ? eval : train).push_back(std::move(all[i]));
  };
  split(data.pairs, out.first.pairs, out.second.pairs);
  split(data.unpaired, out.first.unpaired, out.second.unpaired);
  return out;
}

struct OfflinePreferenceConfig {
  std::string loss = "dpo";           ///< dpo, ipo, kto, orpo, simpo, cpo
  std::int64_t steps = 100;           ///< optimiser steps, >= 0
  std::int64_t batch_size = 8;        ///< examples (pairs, or unpaired examples for kto) per step, > 0
  double learning_rate = 1e-5;        ///< AdamW, > 0
  double weight_decay = 0.0;          ///< AdamW, >= 0
  double max_grad_norm = 1.0;         ///< <= 0 = off
  std::int64_t eval_every = 0;        ///< > 0: evaluate every so many steps (always before the first and after the last)
  std::int64_t eval_batch_size = 64;  ///< examples per no-gradient evaluation batch, > 0
  std::uint64_t seed = 0;             ///< the loop's engine (shuffles)
  CollateOptions collate{};
  preference::DpoOptions dpo{};
  preference::IpoOptions ipo{};
  preference::KtoOptions kto{};
  preference::OrpoOptions orpo{};
  preference::SimpoOptions simpo{};
  preference::CpoOptions cpo{};
  /// Data parallel: the collectives of this rank's job (same config, data and initial weights on every rank).
  /// Null: one process, unchanged.
  distributed::Communicator* communicator = nullptr;
};

/// The loss names offline_preference accepts, comma-separated.
inline constexpr std::string_view kOfflinePreferenceLosses = "dpo, ipo, kto, orpo, simpo, cpo";

/// Loss and metrics of one batch (or of the evaluation split).
struct OfflinePreferenceMetrics {
  double loss = 0.0, reward_accuracy = 0.0, margin = 0.0, chosen_reward = 0.0, rejected_reward = 0.0;
  std::int64_t examples = 0;
  [[nodiscard]] nlohmann::json to_json() const {
    return {{"loss", loss},
            {"reward_accuracy", reward_accuracy},
            {"margin", margin},
            {"chosen_reward", chosen_reward},
            {"rejected_reward", rejected_reward},
            {"examples", examples}};
  }
};

/// What a finished run hands back.
struct OfflinePreferenceResult {
  std::int64_t steps = 0;
  OfflinePreferenceMetrics initial_eval, final_eval;  ///< over the evaluation split (zeros when it is empty)
  std::vector<nlohmann::json> history;                ///< every metrics record, in order
};

namespace detail {

[[nodiscard]] inline bool loss_needs_reference(const std::string& loss, const preference::KtoOptions& kto) {
  return loss == "dpo" || loss == "ipo" || (loss == "kto" && kto.loss == preference::KtoVariant::kto);
}

/// Rows of one collated batch: `rows[i]` = (prompt, completion) and each row's precomputed reference.
struct PreferenceRows {
  std::vector<Rollout> rows;
  std::vector<std::optional<double>> reference;
  std::vector<bool> desirable;  ///< unpaired rows only
};

inline void add_row(PreferenceRows& r, const std::vector<TokenId>& prompt, const std::vector<TokenId>& completion,
                    std::optional<double> reference) {
  Rollout row;
  row.prompt = prompt;
  row.completion.tokens = completion;
  row.group = static_cast<std::int64_t>(r.rows.size());
  r.rows.push_back(std::move(row));
  r.reference.push_back(reference);
}

/// Per-row log-prob sums [R] of `policy` (with gradient unless `frozen`) over the completions of `rows`.
template <Policy P>
[[nodiscard]] torch::Tensor row_sums(P& policy, const TokenBatch& batch, bool frozen) {
  const torch::Tensor lp = frozen ? frozen_logprobs(policy, batch) : loop::policy_logprobs(policy, batch);
  return preference::sequence_logprobs(lp, batch.completion_mask);
}

/// Reference sums for `rows`: live (reference != nullptr) or precomputed (every row must carry one).
template <class Ref>
[[nodiscard]] torch::Tensor reference_sums(Ref* reference, const TokenBatch& batch, const PreferenceRows& rows,
                                           const std::string& loss, const torch::TensorOptions& options) {
  if (reference != nullptr) return row_sums(*reference, batch, /*frozen=*/true).to(options);
  std::vector<double> values;
  for (std::size_t i = 0; i < rows.reference.size(); ++i) {
    KAIZEN_CHECK(rows.reference[i].has_value(), "offline_preference: the ", loss,
                 " loss needs reference log-probs: pass a reference policy or give every example its precomputed "
                 "reference log-probs (a batch row has none)");
    values.push_back(*rows.reference[i]);
  }
  return torch::tensor(values, torch::kDouble).to(options);
}

}  // namespace detail

/// The loss named by config.loss on a batch of paired `pairs` (or unpaired `unpaired`; exactly one non-empty).
/// Returns the preference::PreferenceLoss (differentiable unless `frozen`).
template <Policy P, class Ref>
[[nodiscard]] preference::PreferenceLoss offline_preference_loss(P& policy, Ref* reference,
                                                                 std::span<const PreferenceExample* const> pairs,
                                                                 std::span<const UnpairedExample* const> unpaired,
                                                                 const OfflinePreferenceConfig& config, bool frozen) {
  const std::string& loss = config.loss;
  const bool needs_ref = detail::loss_needs_reference(loss, config.kto);
  if (loss == "kto") {
    // Unpaired rows, then (KL form) each prompt with the next example's completion.
    detail::PreferenceRows rows;
    for (const auto* e : pairs) {
      detail::add_row(rows, e->prompt, e->chosen, e->reference_chosen);
      rows.desirable.push_back(true);
      detail::add_row(rows, e->prompt, e->rejected, e->reference_rejected);
      rows.desirable.push_back(false);
    }
    for (const auto* e : unpaired) {
      detail::add_row(rows, e->prompt, e->completion, e->reference);
      rows.desirable.push_back(e->desirable);
    }
    const TokenBatch batch = collate(std::span<const Rollout>(rows.rows), config.collate);
    const torch::Tensor policy_sums = detail::row_sums(policy, batch, frozen);
    const auto options = policy_sums.options().requires_grad(false);
    std::vector<std::uint8_t> labels(rows.desirable.begin(), rows.desirable.end());
    const torch::Tensor desirable = torch::tensor(labels, torch::kUInt8).to(torch::kBool).to(options.device());
    const auto ref = detail::reference_sums(reference, batch, rows, loss, options);
    const preference::UnpairedLogProbs u{.policy = policy_sums, .reference = ref, .desirable = desirable};
    if (!needs_ref) return preference::kto_loss(u, config.kto);
    KAIZEN_CHECK(reference != nullptr, "offline_preference: the kto loss's KL baseline needs a live reference policy "
                 "(or KtoOptions::loss = apo_zero_unpaired with precomputed reference log-probs)");
    KAIZEN_CHECK(rows.rows.size() >= 2, "offline_preference: the kto loss needs at least 2 examples per batch, got ",
                 rows.rows.size());
    std::vector<Rollout> mismatched = rows.rows;
    for (std::size_t i = 0; i < mismatched.size(); ++i)
      mismatched[i].completion = rows.rows[(i + 1) % rows.rows.size()].completion;
    const TokenBatch mb = collate(std::span<const Rollout>(mismatched), config.collate);
    const torch::Tensor z0 = preference::kto_kl_baseline(detail::row_sums(policy, mb, /*frozen=*/true).to(options),
                                                         detail::row_sums(*reference, mb, /*frozen=*/true).to(options));
    return preference::kto_loss(u, z0, config.kto);
  }
  KAIZEN_CHECK(!pairs.empty(), "offline_preference: the ", loss, " loss needs paired examples (prompt, chosen, "
               "rejected); the batch has none");
  detail::PreferenceRows rows;
  for (const auto* e : pairs) detail::add_row(rows, e->prompt, e->chosen, e->reference_chosen);
  for (const auto* e : pairs) detail::add_row(rows, e->prompt, e->rejected, e->reference_rejected);
  const TokenBatch batch = collate(std::span<const Rollout>(rows.rows), config.collate);
  const torch::Tensor lp = frozen ? frozen_logprobs(policy, batch) : loop::policy_logprobs(policy, batch);
  preference::PairLogProbs p = preference::pair_logprobs(lp, batch.completion_mask);
  if (needs_ref) {
    const auto ref = detail::reference_sums(reference, batch, rows, loss, p.chosen.options().requires_grad(false));
    std::tie(p.reference_chosen, p.reference_rejected) = preference::split_chosen_rejected(ref);
  }
  if (loss == "dpo") return preference::dpo_loss(p, config.dpo);
  if (loss == "ipo") return preference::ipo_loss(p, config.ipo);
  if (loss == "orpo") return preference::orpo_loss(p, config.orpo);
  if (loss == "simpo") return preference::simpo_loss(p, config.simpo);
  if (loss == "cpo") return preference::cpo_loss(p, config.cpo);
  fail("offline_preference: unknown loss '", loss, "'; accepted: ", kOfflinePreferenceLosses);
}

namespace detail {

[[nodiscard]] inline OfflinePreferenceMetrics to_metrics(const preference::PreferenceLoss& out, std::int64_t examples) {
  auto value = [](const torch::Tensor& t) { return t.defined() ? t.item<double>() : 0.0; };
  return {.loss = out.loss.item<double>(),
          .reward_accuracy = value(out.metrics.accuracy),
          .margin = value(out.metrics.margin),
          .chosen_reward = value(out.metrics.chosen_reward),
          .rejected_reward = value(out.metrics.rejected_reward),
          .examples = examples};
}

}  // namespace detail

/// Loss and metrics over the whole of `data` without gradient, in batches of config.eval_batch_size,
/// averaged with each batch weighted by its example count. Zeros for an empty dataset.
template <Policy P, class Ref>
[[nodiscard]] OfflinePreferenceMetrics evaluate_preference(P& policy, Ref* reference, const PreferenceDataset& data,
                                                           const OfflinePreferenceConfig& config) {
  torch::NoGradGuard no_grad;
  OfflinePreferenceMetrics total;
  const auto n = static_cast<std::size_t>(config.eval_batch_size);
  auto add = [&](const OfflinePreferenceMetrics& m) {
    const auto w = static_cast<double>(m.examples);
    total.loss += w * m.loss;
    total.reward_accuracy += w * m.reward_accuracy;
    total.margin += w * m.margin;
    total.chosen_reward += w * m.chosen_reward;
    total.rejected_reward += w * m.rejected_reward;
    total.examples += m.examples;
  };
  for (std::size_t start = 0; start < data.pairs.size(); start += n) {
    std::vector<const PreferenceExample*> batch;
    for (std::size_t i = start; i < std::min(data.pairs.size(), start + n); ++i) batch.push_back(&data.pairs[i]);
    add(detail::to_metrics(offline_preference_loss(policy, reference, std::span<const PreferenceExample* const>(batch),
                                                   {}, config, true),
                           static_cast<std::int64_t>(batch.size())));
  }
  if (config.loss == "kto") {
    for (std::size_t start = 0; start < data.unpaired.size(); start += n) {
      std::vector<const UnpairedExample*> batch;
      for (std::size_t i = start; i < std::min(data.unpaired.size(), start + n); ++i) batch.push_back(&data.unpaired[i]);
      add(detail::to_metrics(offline_preference_loss(policy, reference, {},
                                                     std::span<const UnpairedExample* const>(batch), config, true),
                             static_cast<std::int64_t>(batch.size())));
    }
  }
  if (total.examples > 0) {
    const auto w = static_cast<double>(total.examples);
    total.loss /= w;
    total.reward_accuracy /= w;
    total.margin /= w;
    total.chosen_reward /= w;
    total.rejected_reward /= w;
  }
  return total;
}

/// Trains `policy` offline on `train` with the loss config.loss (see the top of the file), evaluating on
/// `eval`. `reference`: a frozen reference policy of any Policy type, or nullptr to use the examples'
/// precomputed reference log-probs (dpo, ipo, kto need one or the other; orpo, simpo, cpo ignore it).
/// Throws kaizen::Error on an unknown loss (listing the accepted ones), an invalid config, an empty training
/// split, paired losses without paired examples, a missing reference, and for everything collate and the
/// losses reject.
template <Policy P, Policy Ref = P>
OfflinePreferenceResult offline_preference(P& policy, const PreferenceDataset& train, const PreferenceDataset& eval,
                                           const OfflinePreferenceConfig& config, const MetricsCallback& on_metrics = {},
                                           Ref* reference = nullptr) {
  constexpr std::string_view fn = "offline_preference";
  const std::string& loss = config.loss;
  KAIZEN_CHECK(loss == "dpo" || loss == "ipo" || loss == "kto" || loss == "orpo" || loss == "simpo" || loss == "cpo",
               fn, ": unknown loss '", loss, "'; accepted: ", kOfflinePreferenceLosses);
  KAIZEN_CHECK(config.steps >= 0, fn, ": steps must be >= 0, got ", config.steps);
  KAIZEN_CHECK(config.batch_size > 0, fn, ": batch_size must be > 0, got ", config.batch_size);
  KAIZEN_CHECK(config.eval_batch_size > 0, fn, ": eval_batch_size must be > 0, got ", config.eval_batch_size);
  KAIZEN_CHECK(config.eval_every >= 0, fn, ": eval_every must be >= 0, got ", config.eval_every);
  const bool kto = loss == "kto";
  const std::size_t available = kto ? train.size() : train.pairs.size();
  KAIZEN_CHECK(available > 0, fn, ": the training split has no ", kto ? "examples" : "paired examples", " for the ",
               loss, " loss");
  const std::vector<torch::Tensor> params = policy.parameters();
  torch::optim::AdamW optimizer =
      make_adamw(params, {.learning_rate = config.learning_rate, .weight_decay = config.weight_decay});
  Rng rng(config.seed);
  distributed::Communicator* const comm = config.communicator;
  std::unique_ptr<distributed::GradientBuckets> buckets;
  if (comm != nullptr) {
    KAIZEN_CHECK(!kto, fn, ": the kto loss is not data-parallel (its KL baseline z0 is a statistic of the whole "
                 "batch); run it without a communicator");
    const bool batch_tokens = (loss == "orpo" && config.orpo.nll.normalisation == preference::NllNormalisation::batch_tokens) ||
                              (loss == "cpo" && config.cpo.nll.normalisation == preference::NllNormalisation::batch_tokens);
    KAIZEN_CHECK(!batch_tokens, fn, ": the ", loss, " loss with a batch-token NLL (NllNormalisation::batch_tokens) "
                 "is not data-parallel; use per_sequence or run without a communicator");
    distributed::check_same_parameters(*comm, params, fn);  // same start on every rank
    buckets = std::make_unique<distributed::GradientBuckets>(*comm, params);
  }
  OfflinePreferenceResult result;
  auto report = [&](nlohmann::json m) {
    if (on_metrics) on_metrics(m);
    result.history.push_back(std::move(m));
  };
  auto run_eval = [&](std::int64_t step) {
    const OfflinePreferenceMetrics m = evaluate_preference(policy, reference, eval, config);
    nlohmann::json j = m.to_json();
    j["event"] = "offline_preference_eval";
    j["step"] = step;
    report(std::move(j));
    return m;
  };
  result.initial_eval = run_eval(0);
  // Examples in one index space: pairs first, then (kto) unpaired ones; shuffled at each pass.
  std::vector<std::size_t> order;
  std::size_t cursor = 0;
  for (std::int64_t step = 1; step <= config.steps; ++step) {
    std::vector<const PreferenceExample*> pairs;
    std::vector<const UnpairedExample*> unpaired;
    for (std::int64_t k = 0; k < config.batch_size && k < static_cast<std::int64_t>(available); ++k) {
      if (cursor == order.size()) {
        order.resize(available);
        for (std::size_t i = 0; i < available; ++i) order[i] = i;
        for (std::size_t i = available; i > 1; --i) std::swap(order[i - 1], order[uniform_index(rng, i)]);
        cursor = 0;
      }
      const std::size_t i = order[cursor++];
      if (i < train.pairs.size()) pairs.push_back(&train.pairs[i]);
      else unpaired.push_back(&train.unpaired[i - train.pairs.size()]);
    }
    nlohmann::json j;
    double grad_norm = 0.0;
    if (comm == nullptr) {
      const preference::PreferenceLoss out =
          offline_preference_loss(policy, reference, std::span<const PreferenceExample* const>(pairs),
                                  std::span<const UnpairedExample* const>(unpaired), config, false);
      grad_norm = apply_update(optimizer, params, out.loss, config.max_grad_norm);
      j = detail::to_metrics(out, static_cast<std::int64_t>(pairs.size() + unpaired.size())).to_json();
    } else {  // the pairs split over the ranks; metrics as sums weighted by each part's pair count
      auto shard = [&](std::int64_t begin, std::int64_t end) {
        const auto part = std::span<const PreferenceExample* const>(pairs).subspan(
            static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin));
        const preference::PreferenceLoss out = offline_preference_loss(policy, reference, part, {}, config, false);
        const OfflinePreferenceMetrics m = detail::to_metrics(out, end - begin);
        const auto n = static_cast<double>(end - begin);
        return std::pair{out.per_example, std::vector<double>{m.loss * n, m.reward_accuracy * n, m.margin * n,
                                                              m.chosen_reward * n, m.rejected_reward * n}};
      };
      const auto count = static_cast<std::int64_t>(pairs.size());
      const distributed::ShardedUpdate u =
          distributed::sharded_mean_update(*comm, optimizer, params, count, 5, shard, config.max_grad_norm, *buckets);
      const auto n = static_cast<double>(count);
      grad_norm = u.grad_norm;
      j = OfflinePreferenceMetrics{.loss = u.sums[0] / n, .reward_accuracy = u.sums[1] / n, .margin = u.sums[2] / n,
                                   .chosen_reward = u.sums[3] / n, .rejected_reward = u.sums[4] / n,
                                   .examples = count}.to_json();
    }
    j["event"] = "offline_preference";
    j["step"] = step;
    j["grad_norm"] = grad_norm;
    report(std::move(j));
    result.steps = step;
    if (config.eval_every > 0 && step % config.eval_every == 0 && step != config.steps) run_eval(step);
  }
  result.final_eval = config.steps > 0 ? run_eval(config.steps) : result.initial_eval;
  return result;
}

}  // namespace kaizen::loop
