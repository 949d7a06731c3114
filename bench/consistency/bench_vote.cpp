// Vote and extraction throughput. The baseline in the same run counts the same answers with a
// std::map<std::string, int> (the obvious hand-written tally); `x_map` = vote time / baseline time.
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <kaizen/consistency/extract.hpp>
#include <kaizen/consistency/vote.hpp>
#include <kaizen/core/rng.hpp>

namespace {

std::vector<std::optional<std::string>> make_answers(std::size_t n, std::size_t distinct) {
  kaizen::Rng rng(1);
  std::vector<std::optional<std::string>> out;
  for (std::size_t i = 0; i < n; ++i) out.emplace_back("answer_" + std::to_string(kaizen::uniform_index(rng, distinct)));
  return out;
}

void BM_majority_vote(benchmark::State& state) {
  const auto answers = make_answers(static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)));
  double vote_seconds = 0.0, map_seconds = 0.0;
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    const auto vote = kaizen::consistency::majority_vote(answers);
    benchmark::DoNotOptimize(vote->support);
    vote_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    start = std::chrono::steady_clock::now();
    std::map<std::string, int> counts;
    for (const auto& a : answers) ++counts[*a];
    benchmark::DoNotOptimize(counts.size());
    map_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  state.counters["answers/s"] = benchmark::Counter(static_cast<double>(answers.size()) * static_cast<double>(state.iterations()) / vote_seconds);
  state.counters["x_map"] = vote_seconds / map_seconds;
}

void BM_extract_answer(benchmark::State& state) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "Step " + std::to_string(i) + ": we add 1,234.5 and 3/4 to get x. ";
  text += "So the answer is \\boxed{\\frac{12}{16}}.";
  for (auto _ : state) benchmark::DoNotOptimize(kaizen::consistency::extract_answer(text));
  state.SetBytesProcessed(static_cast<std::int64_t>(text.size()) * state.iterations());
}

}  // namespace

BENCHMARK(BM_majority_vote)->Args({16, 4})->Args({64, 8})->Args({4096, 64});
BENCHMARK(BM_extract_answer);
BENCHMARK_MAIN();
