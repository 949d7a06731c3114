// Time per item of kaizen's MathVerifier over the labelled corpus (tests/reward/math/data), median
// and p99, against Hugging Face math-verify timed over the same corpus by time_math_verify.py in
// the same run (once, before the benchmark). Both sides keep each item's best time over repeats
// (math-verify: 3), so scheduling noise is removed the same way. Counters: kaizen_median_us, kaizen_p99_us,
// mv_median_us, mv_p99_us and the ratios x_median = mv / kaizen, x_p99 = mv p99 / kaizen p99; once
// with the per-thread gold cache off (gold_cache:0, every item parses its gold) and once on.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <kaizen/reward/math_verifier.hpp>

namespace {

struct Item {
  std::string text, gold;
  kaizen::FinishReason finish = kaizen::FinishReason::stop;
};

std::vector<Item> load() {
  std::vector<Item> out;
  std::ifstream in(KAIZEN_MATH_CORPUS);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    out.push_back({j.at("text"), j.at("gold"),
                   j.value("finish", std::string("stop")) == "length" ? kaizen::FinishReason::length : kaizen::FinishReason::stop});
  }
  return out;
}

/// math-verify's median and p99 microseconds per item, or {0, 0} when it cannot run.
std::pair<double, double> math_verify_times() {
  static const std::pair<double, double> times = [] {
    const std::string command = std::string("\"") + KAIZEN_MATH_PYTHON + "\" \"" + KAIZEN_MATH_TIMER + "\" \"" + KAIZEN_MATH_CORPUS + "\" 2>/dev/null";
    std::pair<double, double> out{0.0, 0.0};
    if (FILE* pipe = popen(command.c_str(), "r")) {
      if (std::fscanf(pipe, "%lf %lf", &out.first, &out.second) != 2) out = {0.0, 0.0};
      pclose(pipe);
    }
    return out;
  }();
  return times;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

/// state.range(0) == 1: the gold cache on (items in corpus order, so consecutive items with the same
/// gold share a parse, as a GRPO group does); 0: off (every item parses its gold: the cold figure).
void BM_math_verifier_corpus(benchmark::State& state) {
  const auto items = load();
  kaizen::reward::MathVerifierOptions options;
  options.cache_gold = state.range(0) == 1;
  const kaizen::reward::MathVerifier verifier(options);
  std::vector<double> per_item(items.size(), 1e300);
  std::size_t accepted = 0;
  for (auto _ : state) {
    for (std::size_t i = 0; i < items.size(); ++i) {
      const auto start = std::chrono::steady_clock::now();
      const bool ok = verifier.check(items[i].text, items[i].gold, items[i].finish).correct;
      const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
      per_item[i] = std::min(per_item[i], us);  // best of the iterations: scheduling noise removed
      accepted += ok;
    }
  }
  benchmark::DoNotOptimize(accepted);
  const double median = percentile(per_item, 0.5), p99 = percentile(per_item, 0.99);
  const auto [mv_median, mv_p99] = math_verify_times();
  state.counters["kaizen_median_us"] = median;
  state.counters["kaizen_p99_us"] = p99;
  state.counters["mv_median_us"] = mv_median;
  state.counters["mv_p99_us"] = mv_p99;
  state.counters["x_median"] = mv_median > 0 ? mv_median / median : 0.0;
  state.counters["x_p99"] = mv_p99 > 0 ? mv_p99 / p99 : 0.0;
  state.counters["items"] = static_cast<double>(items.size());
}
BENCHMARK(BM_math_verifier_corpus)->Arg(0)->Arg(1)->ArgName("gold_cache")->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace

BENCHMARK_MAIN();
