// Vote and extraction throughput. The baseline in the same run counts the same answers with a
// std::map<std::string, int> (the obvious hand-written tally); `x_map` = vote time / baseline time.
// Figures: that ratio and the vote's answers/s per (answers, distinct answers), and extraction's MB/s.
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <support/figures.hpp>

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

int main(int argc, char** argv) {
  using kaizen::bench::Figures;
  using kaizen::bench::Results;
  return kaizen::bench::run(argc, argv, [](const Results& r, Figures& f) {
    for (const auto& [n, k] : {std::pair{16, 4}, std::pair{64, 8}, std::pair{4096, 64}}) {
      const std::string name = "BM_majority_vote/" + std::to_string(n) + "/" + std::to_string(k);
      const std::string tag = "n" + std::to_string(n) + "_k" + std::to_string(k);
      f.ratio("majority_vote_over_map_" + tag, r.counter(name, "x_map"),
              "majority_vote time / std::map tally, " + std::to_string(n) + " answers, " + std::to_string(k) +
                  " distinct (lower is better)");
      f.figure("majority_vote_answers_per_s_" + tag, r.counter(name, "answers/s"), "answers/s", "majority_vote throughput");
    }
    f.figure("extract_answer_mb_per_s", r.counter("BM_extract_answer", "bytes_per_second") / 1e6, "MB/s",
             "extract_answer over a 40-step solution with a \\boxed{} answer");
  });
}
