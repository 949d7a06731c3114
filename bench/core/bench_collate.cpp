// Collation throughput: rollouts -> padded TokenBatch, against the same padding done with
// torch::nn::utils::rnn::pad_sequence over per-row tensors (the usual LibTorch route), same run.
// The baseline builds only the padded token ids and log-probs; collate also builds the attention and
// completion masks, positions, rewards and group ids, so a ratio near 1 means collate's extra tensors
// cost nothing. Figures: collate time / pad_sequence time and tokens/s, per shape (rows x length).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include <support/figures.hpp>

#include <kaizen/core/collate.hpp>
#include <kaizen/core/rng.hpp>

namespace {
std::vector<kaizen::Rollout> make_rollouts(std::int64_t batch, std::int64_t length) {
  kaizen::Rng rng(0);
  std::vector<kaizen::Rollout> out;
  for (std::int64_t b = 0; b < batch; ++b) {
    kaizen::Rollout r;
    r.prompt.resize(64, 1);
    const auto n = static_cast<std::size_t>(length / 2 + static_cast<std::int64_t>(kaizen::uniform_index(rng, length / 2)));
    r.completion.tokens.resize(n, 2);
    r.completion.logprobs.resize(n, -0.5F);
    r.group = b / 8;
    out.push_back(std::move(r));
  }
  return out;
}

void BM_collate(benchmark::State& state) {
  const auto rollouts = make_rollouts(state.range(0), state.range(1));
  std::int64_t tokens = 0;
  for (auto _ : state) {
    const kaizen::TokenBatch b = kaizen::collate(rollouts, {.vocab_size = 32000});
    benchmark::DoNotOptimize(b.input_ids.data_ptr());
    tokens += b.input_ids.numel();
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}

void BM_pad_sequence_baseline(benchmark::State& state) {
  const auto rollouts = make_rollouts(state.range(0), state.range(1));
  std::int64_t tokens = 0;
  for (auto _ : state) {
    std::vector<torch::Tensor> rows, lps;
    for (const auto& r : rollouts) {
      std::vector<std::int64_t> ids(r.prompt);
      ids.insert(ids.end(), r.completion.tokens.begin(), r.completion.tokens.end());
      rows.push_back(torch::tensor(ids));
      lps.push_back(torch::tensor(r.completion.logprobs));
    }
    const torch::Tensor ids = torch::nn::utils::rnn::pad_sequence(rows, /*batch_first=*/true);
    const torch::Tensor lp = torch::nn::utils::rnn::pad_sequence(lps, /*batch_first=*/true);
    benchmark::DoNotOptimize(ids.data_ptr());
    benchmark::DoNotOptimize(lp.data_ptr());
    tokens += ids.numel();
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}
}  // namespace

BENCHMARK(BM_collate)->Args({64, 512})->Args({256, 1024});
BENCHMARK(BM_pad_sequence_baseline)->Args({64, 512})->Args({256, 1024});

int main(int argc, char** argv) {
  using kaizen::bench::Figures;
  using kaizen::bench::Results;
  return kaizen::bench::run(argc, argv, [](const Results& r, Figures& f) {
    for (const std::string shape : {"64/512", "256/1024"}) {
      const std::string tag = "b" + shape.substr(0, shape.find('/')) + "_t" + shape.substr(shape.find('/') + 1);
      f.ratio("collate_over_pad_sequence_" + tag,
              r.real_seconds("BM_collate/" + shape) / r.real_seconds("BM_pad_sequence_baseline/" + shape),
              "collate time / pad_sequence time, " + shape + " rows/length (lower is better)");
      f.figure("collate_tokens_per_s_" + tag, r.counter("BM_collate/" + shape, "tokens/s"), "tokens/s",
               "collate throughput (padded tokens)");
    }
  });
}
