// kaizen/models/value_head.hpp - scalar heads on a Llama trunk: a value / process-reward model (PRM)
// that scores every reasoning step of a solution, and the policy's own yes/no judgement of a step.
//
// ValueModel = a SEPARATE small Llama trunk (its own LlamaModel, optionally initialised from the
// policy's weights with init_trunk_from) plus a linear head on the final hidden state:
//     v(x, s_1..s_k) = σ(w · h_T + b),   h_T = the trunk's hidden state at the LAST token of step k
// so one forward pass over prompt + steps scores every step of the path at once (the hidden state
// at each step's last token is causal: it sees the prompt and steps 1..k only). Values lie in
// (0, 1), the range of ReST-MCTS*'s quality values. A separate trunk (not the policy's) was chosen
// so SFT of the policy and regression of the PRM never pull one set of weights two ways, and a
// policy restarted from its base (ReST-EM style) keeps its PRM; the cost is a second forward pass.
//
// Training (value_loss), over N scored steps with targets y_i ∈ [0, 1]:
//     ValueLoss::mse  (1/N) Σ (σ(z_i) − y_i)²                               (ReST-MCTS*'s value model)
//     ValueLoss::bce  −(1/N) Σ y_i log σ(z_i) + (1 − y_i) log(1 − σ(z_i))    (soft labels; from logits)
// Batching: StepValueBatch holds right-padded paths [B, T] and the (row, column) of each scored step's
// last token, so any number of steps of any number of paths go through one forward pass.
//
// Use from search: ValueModelEvaluator is the evaluate() of a step search (loop/steps.hpp): one batched
// forward per round for every node to score (prompt + path tokens, value at the last token).
// ValueModelPrm models kaizen::ProcessReward (prompt, step texts) -> one score per step, through a
// tokenizer, so search::ProcessRewardEvaluator, MCTS and beam search take it unchanged.
//
// YesNoJudge: the policy itself as a step judge (self-PRM): for a judge prompt ending in a question
// ("... is the last step correct?"), p = exp(l_yes) / (exp(l_yes) + exp(l_no)) from the policy's
// next-token logits at the prompt's last token (= σ(l_yes − l_no)); no extra weights.
//
// For PPO (loop/ppo.hpp), token_values(batch) gives the raw head output per token, [B, T]: column t is
// V(s_t) = w · h_{t−1} + b, the value of the state that generates token t (no σ: returns are unbounded).
//
// Errors: paths longer than the trunk's context, step positions outside their row, targets outside
// [0, 1] or non-finite, a non-finite value (diverged weights) - kaizen::Error with the values.
//
// References: Zhang et al., "ReST-MCTS*" (2024, arXiv 2406.03816) - value model regressed with MSE on
// quality values; Lightman et al., "Let's Verify Step by Step" (2023, arXiv 2305.20050) - step scores
// at step ends; Wang et al., "Math-Shepherd" (2024, arXiv 2312.08935) - soft step labels with BCE.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/error.hpp>
#include <kaizen/core/policy.hpp>
#include <kaizen/core/token_batch.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/search/tree.hpp>

namespace kaizen::lm {

/// The training loss of a value model.
enum class ValueLoss : std::uint8_t { mse, bce };

/// Paths to score, right-padded, and the last token of every scored step.
struct StepValueBatch {
  torch::Tensor input_ids;       ///< [B, T] int64
  torch::Tensor position_ids;    ///< [B, T] int64
  torch::Tensor attention_mask;  ///< [B, T] bool
  torch::Tensor rows, cols;      ///< [N] int64: scored step i ends at input_ids[rows[i], cols[i]]
  torch::Tensor targets;         ///< [N] float32 in [0, 1] (training), undefined otherwise
  [[nodiscard]] std::int64_t steps() const { return rows.defined() ? rows.size(0) : 0; }
};

/// Builds a StepValueBatch: sequences[b] is a path's tokens, step_ends[b] the exclusive end (1..len) of
/// each scored step in it, `targets` (optional) one value per scored step in row-major order.
/// Throws kaizen::Error on an empty sequence, a sequence longer than `max_length` (> 0), an end outside
/// [1, len], a target count that differs from the steps, or a target outside [0, 1].
[[nodiscard]] inline StepValueBatch make_step_batch(std::span<const std::vector<TokenId>> sequences,
                                                    std::span<const std::vector<std::int64_t>> step_ends,
                                                    std::span<const double> targets = {}, TokenId pad_id = 0,
                                                    std::int64_t max_length = 0, torch::Device device = torch::kCPU) {
  KAIZEN_CHECK(sequences.size() == step_ends.size(), "make_step_batch: ", sequences.size(), " sequences but ",
               step_ends.size(), " lists of step ends");
  KAIZEN_CHECK(!sequences.empty(), "make_step_batch: expected at least one sequence");
  std::int64_t width = 0;
  std::vector<std::int64_t> rows, cols;
  for (std::size_t b = 0; b < sequences.size(); ++b) {
    const auto len = static_cast<std::int64_t>(sequences[b].size());
    KAIZEN_CHECK(len > 0, "make_step_batch: sequence ", b, " is empty");
    KAIZEN_CHECK(max_length <= 0 || len <= max_length, "make_step_batch: sequence ", b, " has ", len,
                 " tokens but the model's context is ", max_length);
    width = std::max(width, len);
    for (std::int64_t e : step_ends[b]) {
      KAIZEN_CHECK(e >= 1 && e <= len, "make_step_batch: step end ", e, " of sequence ", b, " is outside [1, ", len, "]");
      rows.push_back(static_cast<std::int64_t>(b));
      cols.push_back(e - 1);
    }
  }
  KAIZEN_CHECK(targets.empty() || targets.size() == rows.size(), "make_step_batch: ", targets.size(),
               " targets for ", rows.size(), " scored steps");
  for (std::size_t i = 0; i < targets.size(); ++i)
    KAIZEN_CHECK(std::isfinite(targets[i]) && targets[i] >= 0.0 && targets[i] <= 1.0, "make_step_batch: target ", i,
                 " is ", targets[i], ", expected a value in [0, 1]");
  const auto B = static_cast<std::int64_t>(sequences.size());
  torch::Tensor ids = torch::full({B, width}, pad_id, torch::kLong);
  torch::Tensor pos = torch::zeros({B, width}, torch::kLong);
  torch::Tensor mask = torch::zeros({B, width}, torch::kBool);
  auto a_ids = ids.accessor<std::int64_t, 2>();
  auto a_pos = pos.accessor<std::int64_t, 2>();
  auto a_mask = mask.accessor<bool, 2>();
  for (std::int64_t b = 0; b < B; ++b) {
    const auto& s = sequences[static_cast<std::size_t>(b)];
    for (std::size_t t = 0; t < s.size(); ++t) {
      a_ids[b][static_cast<std::int64_t>(t)] = s[t];
      a_pos[b][static_cast<std::int64_t>(t)] = static_cast<std::int64_t>(t);
      a_mask[b][static_cast<std::int64_t>(t)] = true;
    }
  }
  StepValueBatch out;
  out.input_ids = ids.to(device);
  out.position_ids = pos.to(device);
  out.attention_mask = mask.to(device);
  out.rows = torch::tensor(rows, torch::kLong).to(device);
  out.cols = torch::tensor(cols, torch::kLong).to(device);
  if (!targets.empty())
    out.targets = torch::tensor(std::vector<double>(targets.begin(), targets.end()), torch::kDouble).to(torch::kFloat).to(device);
  return out;
}

/// A value / process-reward model: a Llama trunk and a scalar head (see the file comment).
class ValueModel : public torch::nn::Module {
 public:
  /// A trunk with `config` (N(0, 0.02) weights) and a zero-initialised head (every value starts at 0.5).
  explicit ValueModel(const LlamaConfig& config) {
    trunk = register_module("trunk", std::make_shared<LlamaModel>(config));
    head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(config.hidden_size, 1).bias(true)));
    torch::NoGradGuard no_grad;
    head->weight.zero_();
    head->bias.zero_();
  }

  [[nodiscard]] const LlamaConfig& config() const { return trunk->config(); }

  /// Copies a policy's weights (same configuration) into the trunk; the head is kept.
  void init_trunk_from(LlamaModel& policy) { trunk->copy_from(policy); }

  /// Head logits z [N] of every scored step of `batch` (σ(z) is the value).
  [[nodiscard]] torch::Tensor step_logits(const StepValueBatch& batch) {
    KAIZEN_CHECK(batch.steps() > 0, "ValueModel: the batch scores no step");
    const torch::Tensor h = trunk->forward(batch.input_ids, batch.position_ids, batch.attention_mask);  // [B, T, H]
    const torch::Tensor picked = h.index({batch.rows, batch.cols});                                    // [N, H]
    return head(picked).squeeze(-1).to(torch::kFloat);
  }

  /// Per-token values for PPO (loop/ppo.hpp's Critic): [B, T] float32 aligned with batch.input_ids, where
  /// column t holds V(s_t), the value of the state that generates token t: the head's raw output w · h_{t-1}
  /// + b at the hidden state of column t − 1 (unbounded, no σ), and 0 at column 0. With right padding every
  /// completion token's state is inside the row. Throws kaizen::Error when the rows are longer than the
  /// trunk's context.
  [[nodiscard]] torch::Tensor token_values(const TokenBatch& batch) {
    KAIZEN_CHECK(batch.length() <= config().max_position_embeddings, "ValueModel::token_values: the batch has ",
                 batch.length(), " columns but the model's context is ", config().max_position_embeddings);
    const torch::Tensor h = trunk->forward(batch.input_ids, batch.position_ids, batch.attention_mask);  // [B, T, H]
    const torch::Tensor z = head(h).squeeze(-1).to(torch::kFloat);                                     // [B, T]
    return torch::cat({torch::zeros({z.size(0), 1}, z.options()), z.narrow(1, 0, z.size(1) - 1)}, 1);
  }

  /// Values σ(z) ∈ (0, 1) of every scored step of `batch`, [N] float32.
  [[nodiscard]] torch::Tensor step_values(const StepValueBatch& batch) { return torch::sigmoid(step_logits(batch)); }

  /// The training loss on batch.targets (see the file comment). Throws kaizen::Error without targets.
  [[nodiscard]] torch::Tensor value_loss(const StepValueBatch& batch, ValueLoss loss = ValueLoss::mse) {
    KAIZEN_CHECK(batch.targets.defined() && batch.targets.size(0) == batch.steps(),
                 "ValueModel::value_loss: expected one target per scored step (", batch.steps(), "), got ",
                 batch.targets.defined() ? batch.targets.size(0) : 0);
    const torch::Tensor z = step_logits(batch);
    if (loss == ValueLoss::bce) return torch::binary_cross_entropy_with_logits(z, batch.targets);
    return (torch::sigmoid(z) - batch.targets).pow(2).mean();
  }

  std::shared_ptr<LlamaModel> trunk;
  torch::nn::Linear head{nullptr};
};

/// Reads per-step values as doubles and checks them: `expected` values, all finite. `who` names the caller.
[[nodiscard]] inline std::vector<double> checked_values(const torch::Tensor& values, std::size_t expected, const char* who) {
  const torch::Tensor v = values.detach().to(torch::kCPU, torch::kDouble).contiguous();
  KAIZEN_CHECK(static_cast<std::size_t>(v.numel()) == expected, who, ": the value model returned ", v.numel(),
               " values for ", expected, " steps");
  std::vector<double> out(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
  for (std::size_t i = 0; i < out.size(); ++i)
    KAIZEN_CHECK(std::isfinite(out[i]), who, ": the value of step ", i, " is ", out[i], ", expected a finite value");
  return out;
}

/// Scores paths in chunks of `max_batch` rows (0 = all at once) under no-grad; returns one value per
/// step end, in order. Throws kaizen::Error as make_step_batch and on non-finite values.
[[nodiscard]] inline std::vector<double> score_paths(ValueModel& model, std::span<const std::vector<TokenId>> sequences,
                                                     std::span<const std::vector<std::int64_t>> step_ends,
                                                     std::int64_t max_batch = 0, TokenId pad_id = 0) {
  torch::NoGradGuard no_grad;
  const torch::Device device = model.head->weight.device();
  std::vector<double> out;
  const std::size_t chunk = max_batch > 0 ? static_cast<std::size_t>(max_batch) : std::max<std::size_t>(sequences.size(), 1);
  for (std::size_t begin = 0; begin < sequences.size(); begin += chunk) {
    const std::size_t n = std::min(chunk, sequences.size() - begin);
    std::size_t expected = 0;
    for (std::size_t i = begin; i < begin + n; ++i) expected += step_ends[i].size();
    if (expected == 0) continue;
    const StepValueBatch batch = make_step_batch(sequences.subspan(begin, n), step_ends.subspan(begin, n), {}, pad_id,
                                                 model.config().max_position_embeddings, device);
    for (double v : checked_values(model.step_values(batch), expected, "score_paths")) out.push_back(v);
  }
  return out;
}

/// The evaluate() of a step search (loop/steps.hpp): values[i] = the value model's value of nodes[i]'s
/// path (prompt + step tokens on the path); the root gets `root_value`. One batched forward per call
/// (chunks of max_batch rows). Holds a reference to the model.
class ValueModelEvaluator {
 public:
  ValueModelEvaluator(ValueModel& model, std::vector<TokenId> prompt_tokens, double root_value = 0.0,
                      std::int64_t max_batch = 0, TokenId pad_id = 0)
      : model_(&model), prompt_(std::move(prompt_tokens)), root_value_(root_value), max_batch_(max_batch), pad_id_(pad_id) {
    KAIZEN_CHECK(!prompt_.empty(), "ValueModelEvaluator: the prompt has no tokens");
    KAIZEN_CHECK(std::isfinite(root_value), "ValueModelEvaluator: expected a finite root_value, got ", root_value);
  }

  template <class State>
  void operator()(const search::Tree<State>& tree, std::span<const search::NodeId> nodes, std::span<double> values) {
    KAIZEN_CHECK(nodes.size() == values.size(), "ValueModelEvaluator: ", nodes.size(), " nodes but ", values.size(),
                 " value slots");
    std::vector<std::vector<TokenId>> sequences;
    std::vector<std::vector<std::int64_t>> ends;
    std::vector<std::size_t> slot;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      KAIZEN_CHECK(nodes[i] < tree.size(), "ValueModelEvaluator: expected a node id < ", tree.size(), ", got ", nodes[i]);
      if (tree[nodes[i]].depth == 0) {
        values[i] = root_value_;
        continue;
      }
      std::vector<TokenId> seq = prompt_;
      for (search::NodeId n : tree.path(nodes[i])) {
        const auto t = tree.tokens(n);
        seq.insert(seq.end(), t.begin(), t.end());
      }
      ends.push_back({static_cast<std::int64_t>(seq.size())});
      sequences.push_back(std::move(seq));
      slot.push_back(i);
    }
    ++calls_;
    if (sequences.empty()) return;
    const std::vector<double> v = score_paths(*model_, sequences, ends, max_batch_, pad_id_);
    for (std::size_t k = 0; k < slot.size(); ++k) values[slot[k]] = v[k];
    rows_ += sequences.size();
  }

  [[nodiscard]] std::uint64_t calls() const noexcept { return calls_; }
  [[nodiscard]] std::uint64_t rows() const noexcept { return rows_; }

 private:
  ValueModel* model_;
  std::vector<TokenId> prompt_;
  double root_value_;
  std::int64_t max_batch_;
  TokenId pad_id_;
  std::uint64_t calls_ = 0, rows_ = 0;
};

/// The value model as a kaizen::ProcessReward: (prompt, step texts) -> one value per step, the steps
/// encoded by `encode` and appended to prompt.tokens; one forward pass per call.
class ValueModelPrm {
 public:
  using Encode = std::function<std::vector<TokenId>(std::string_view)>;
  ValueModelPrm(ValueModel& model, Encode encode, TokenId pad_id = 0)
      : model_(&model), encode_(std::move(encode)), pad_id_(pad_id) {
    KAIZEN_CHECK(static_cast<bool>(encode_), "ValueModelPrm: expected an encode function");
  }

  [[nodiscard]] std::vector<double> operator()(const Prompt& prompt, std::span<const std::string> steps) {
    if (steps.empty()) return {};
    std::vector<std::vector<TokenId>> seq(1, prompt.tokens);
    std::vector<std::vector<std::int64_t>> ends(1);
    for (const std::string& s : steps) {
      const std::vector<TokenId> t = encode_(s);
      KAIZEN_CHECK(!t.empty(), "ValueModelPrm: step \"", s, "\" encodes to no token");
      seq[0].insert(seq[0].end(), t.begin(), t.end());
      ends[0].push_back(static_cast<std::int64_t>(seq[0].size()));
    }
    KAIZEN_CHECK(!prompt.tokens.empty(), "ValueModelPrm: the prompt has no tokens");
    return score_paths(*model_, seq, ends, 0, pad_id_);
  }

 private:
  ValueModel* model_;
  Encode encode_;
  TokenId pad_id_;
};

/// The policy's own yes/no judgement (see the file comment): judge(prompts) -> p(yes) per prompt, from one
/// batched forward pass (chunks of max_batch). Holds a reference to the policy.
template <Policy P>
class YesNoJudge {
 public:
  /// Throws kaizen::Error when the two tokens are equal or negative.
  YesNoJudge(P& policy, TokenId yes, TokenId no, std::int64_t max_batch = 0, TokenId pad_id = 0)
      : policy_(&policy), yes_(yes), no_(no), max_batch_(max_batch), pad_id_(pad_id) {
    KAIZEN_CHECK(yes >= 0 && no >= 0 && yes != no, "YesNoJudge: expected two distinct token ids >= 0, got ", yes,
                 " and ", no);
  }

  [[nodiscard]] std::vector<double> operator()(std::span<const Prompt> prompts) {
    torch::NoGradGuard no_grad;
    std::vector<double> out;
    const std::size_t chunk = max_batch_ > 0 ? static_cast<std::size_t>(max_batch_) : std::max<std::size_t>(prompts.size(), 1);
    for (std::size_t begin = 0; begin < prompts.size(); begin += chunk) {
      const std::size_t n = std::min(chunk, prompts.size() - begin);
      std::vector<std::vector<TokenId>> seq;
      std::vector<std::vector<std::int64_t>> ends;
      for (std::size_t i = begin; i < begin + n; ++i) {
        KAIZEN_CHECK(!prompts[i].tokens.empty(), "YesNoJudge: judge prompt ", i, " has no tokens");
        seq.push_back(prompts[i].tokens);
        ends.push_back({static_cast<std::int64_t>(prompts[i].tokens.size())});
      }
      const StepValueBatch b = make_step_batch(seq, ends, {}, pad_id_);
      TokenBatch tb;
      const torch::Device device = std::vector<torch::Tensor>(policy_->parameters()).front().device();
      tb.input_ids = b.input_ids.to(device);
      tb.position_ids = b.position_ids.to(device);
      tb.attention_mask = b.attention_mask.to(device);
      const torch::Tensor logits = policy_->logits(tb);  // [B, T, V]
      KAIZEN_CHECK(yes_ < logits.size(-1) && no_ < logits.size(-1), "YesNoJudge: token ids ", yes_, " and ", no_,
                   " must lie in the vocabulary [0, ", logits.size(-1), ")");
      const torch::Tensor last = logits.index({b.rows.to(device), b.cols.to(device)}).to(torch::kDouble);  // [n, V]
      const torch::Tensor p = torch::sigmoid(last.select(1, yes_) - last.select(1, no_));
      for (double v : checked_values(p, n, "YesNoJudge")) out.push_back(v);
    }
    return out;
  }

 private:
  P* policy_;
  TokenId yes_, no_;
  std::int64_t max_batch_;
  TokenId pad_id_;
};

}  // namespace kaizen::lm
