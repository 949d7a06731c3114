// MCTS guided by a batched LibTorch process-reward model: leaves evaluated per second at batch 1, 8
// and 64 on CPU (1 LibTorch thread), and the fraction of the search's time spent outside the model.
//
// Model: lm::ValueModel (a separate Llama trunk + scalar head) at the tiny size the examples use
// (hidden 64, 2 layers, 4 heads / 2 KV heads, vocabulary 24, context 48), random weights.
// Problem: a synthetic step problem whose expand is cheap (8 children of 3 random tokens per leaf, depth
// <= 8 steps; a 12-token prompt), so what is not the model is the search itself plus the evaluator's
// batching. Search: lazy evaluation (only the selected leaves are scored; AlphaZero style), PUCT,
// leaves_per_round = batch with virtual loss, so each evaluate call scores up to `batch` leaves in one
// forward (rows_per_call shows how full the batches were).
//
// Two runs per batch size:
//   BM_prm_mcts_library   lm::ValueModelEvaluator as the evaluate() (what loops use): leaves_per_s.
//   BM_prm_mcts_split     the same work through the same library pieces (path tokens -> make_step_batch
//                         -> ValueModel::step_values -> checked_values) with a clock around step_values:
//                         outside_model = 1 - (time in step_values) / (time of the whole search).
// Counters: leaves_per_s, rows_per_call, outside_model (fraction), model_ms_per_call.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/value_head.hpp>
#include <kaizen/search/mcts.hpp>

namespace {

using namespace kaizen;
using namespace kaizen::search;
using Clock = std::chrono::steady_clock;

constexpr std::int64_t kVocab = 24;
constexpr std::uint32_t kBranch = 8;
constexpr std::uint32_t kStepTokens = 3;
constexpr std::uint32_t kMaxDepth = 8;

lm::LlamaConfig tiny_config() {
  lm::LlamaConfig c;
  c.vocab_size = kVocab;
  c.hidden_size = 64;
  c.intermediate_size = 176;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 48;
  return c;
}

std::vector<TokenId> prompt_tokens() {
  std::vector<TokenId> p;
  for (TokenId i = 0; i < 12; ++i) p.push_back(1 + i % (kVocab - 1));
  return p;
}

/// Steps of 3 random tokens; a node at depth kMaxDepth is terminal. `Evaluate` scores nodes.
template <class Evaluate>
struct StepProblem {
  struct State {};
  Evaluate* evaluate_fn;
  Rng rng{5};
  void expand(const Tree<State>&, std::span<const ExpandRequest> requests, Expansion<State>& out) {
    TokenId step[kStepTokens];
    for (std::size_t i = 0; i < requests.size(); ++i)
      for (std::uint32_t c = 0; c < requests[i].count; ++c) {
        for (TokenId& t : step) t = 1 + static_cast<TokenId>(uniform_index(rng, kVocab - 1));
        out.add(i, State{}, 1.0 / kBranch, {}, std::span<const TokenId>(step, kStepTokens));
      }
  }
  void evaluate(const Tree<State>& tree, std::span<const NodeId> nodes, std::span<double> values) {
    (*evaluate_fn)(tree, nodes, values);
  }
  bool terminal(const Tree<State>& tree, NodeId id) { return tree[id].depth >= kMaxDepth; }
};

/// ValueModelEvaluator's work, with a clock around the model call.
struct SplitEvaluator {
  lm::ValueModel* model;
  std::vector<TokenId> prompt;
  double model_seconds = 0.0;
  std::uint64_t calls = 0, rows = 0;
  template <class State>
  void operator()(const Tree<State>& tree, std::span<const NodeId> nodes, std::span<double> values) {
    torch::NoGradGuard no_grad;
    std::vector<std::vector<TokenId>> seq;
    std::vector<std::vector<std::int64_t>> ends;
    std::vector<std::size_t> slot;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (tree[nodes[i]].depth == 0) {
        values[i] = 0.0;
        continue;
      }
      std::vector<TokenId> s = prompt;
      for (NodeId n : tree.path(nodes[i])) {
        const auto t = tree.tokens(n);
        s.insert(s.end(), t.begin(), t.end());
      }
      ends.push_back({static_cast<std::int64_t>(s.size())});
      seq.push_back(std::move(s));
      slot.push_back(i);
    }
    if (seq.empty()) return;
    ++calls;
    const lm::StepValueBatch batch = lm::make_step_batch(seq, ends, {}, 0, model->config().max_position_embeddings);
    const auto t0 = Clock::now();
    const torch::Tensor v = model->step_values(batch);
    const torch::Tensor cpu = v.contiguous();  // CPU already: no copy; forces the result
    model_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    const std::vector<double> out = lm::checked_values(cpu, seq.size(), "SplitEvaluator");
    for (std::size_t k = 0; k < slot.size(); ++k) values[slot[k]] = out[k];
    rows += seq.size();
  }
};

MctsOptions options_for(std::size_t batch, std::size_t simulations) {
  return {.selection = Selection::puct, .c = 1.5, .evaluation = Evaluation::lazy, .simulations = simulations,
          .leaves_per_round = batch, .virtual_loss_value = 0.0, .branch = kBranch};
}

std::size_t simulations_for(std::size_t batch) { return batch == 1 ? 128 : batch == 8 ? 512 : 2048; }

void BM_prm_mcts_library(benchmark::State& state) {
  torch::set_num_threads(1);
  torch::manual_seed(0);
  const auto batch = static_cast<std::size_t>(state.range(0));
  lm::ValueModel model(tiny_config());
  model.eval();
  double seconds = 0.0;
  std::uint64_t rows = 0, calls = 0;
  for (auto _ : state) {
    lm::ValueModelEvaluator evaluator(model, prompt_tokens());
    StepProblem<lm::ValueModelEvaluator> problem{&evaluator};
    Mcts mcts(problem, options_for(batch, simulations_for(batch)));
    const auto t0 = Clock::now();
    mcts.search();
    seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    rows += evaluator.rows();
    calls += evaluator.calls();
  }
  state.counters["leaves_per_s"] = static_cast<double>(rows) / seconds;
  state.counters["rows_per_call"] = static_cast<double>(rows) / static_cast<double>(calls);
}

void BM_prm_mcts_split(benchmark::State& state) {
  torch::set_num_threads(1);
  torch::manual_seed(0);
  const auto batch = static_cast<std::size_t>(state.range(0));
  lm::ValueModel model(tiny_config());
  model.eval();
  double seconds = 0.0, model_seconds = 0.0;
  std::uint64_t rows = 0, calls = 0;
  for (auto _ : state) {
    SplitEvaluator evaluator{&model, prompt_tokens()};
    StepProblem<SplitEvaluator> problem{&evaluator};
    Mcts mcts(problem, options_for(batch, simulations_for(batch)));
    const auto t0 = Clock::now();
    mcts.search();
    seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    model_seconds += evaluator.model_seconds;
    rows += evaluator.rows;
    calls += evaluator.calls;
  }
  state.counters["leaves_per_s"] = static_cast<double>(rows) / seconds;
  state.counters["rows_per_call"] = static_cast<double>(rows) / static_cast<double>(calls);
  state.counters["outside_model"] = 1.0 - model_seconds / seconds;
  state.counters["model_ms_per_call"] = 1e3 * model_seconds / static_cast<double>(calls);
}

}  // namespace

BENCHMARK(BM_prm_mcts_library)->Arg(1)->Arg(8)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_prm_mcts_split)->Arg(1)->Arg(8)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
