// Curriculum throughput: one training step = sample(256 arms) + update(256 gains), at 1k and 100k arms.
// Baseline (same run): 256 uniform draws, the cost of not having a curriculum. After the runs a table
// prints each curriculum's time per step as a multiple of the baseline at the same arm count.
//
//   bench_curriculum --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include <kaizen/curriculum.hpp>

namespace {

using kaizen::ArmId;
using kaizen::Rng;
namespace cur = kaizen::curriculum;

constexpr std::size_t kDraws = 256;

template <class C>
void run_steps(benchmark::State& state, C curriculum) {
  Rng rng(1), env(2);
  std::vector<double> gains(kDraws);
  for (auto _ : state) {
    const std::vector<ArmId> arms = curriculum.sample(kDraws, rng);
    for (std::size_t i = 0; i < kDraws; ++i) gains[i] = kaizen::uniform01(env);
    curriculum.update(arms, gains);
    benchmark::DoNotOptimize(arms.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kDraws));
}

std::size_t arms_of(const benchmark::State& state) {
  return static_cast<std::size_t>(state.range(0));
}

void BM_Uniform(benchmark::State& state) {
  Rng rng(1), env(2);
  const std::size_t k = arms_of(state);
  std::vector<ArmId> arms(kDraws);
  std::vector<double> gains(kDraws);
  for (auto _ : state) {
    for (auto& a : arms) a = static_cast<ArmId>(kaizen::uniform_index(rng, k));
    for (auto& g : gains) g = kaizen::uniform01(env);
    benchmark::DoNotOptimize(arms.data());
    benchmark::DoNotOptimize(gains.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kDraws));
}
void BM_Sec(benchmark::State& s) {
  run_steps(s, cur::SelfEvolvingCurriculum(arms_of(s), {.tau = 0.2}));
}
void BM_Ucb1(benchmark::State& s) {
  run_steps(s, cur::Ucb1(arms_of(s)));
}
void BM_DiscountedUcb(benchmark::State& s) {
  run_steps(s, cur::DiscountedUcb(arms_of(s)));
}
void BM_SlidingWindowUcb(benchmark::State& s) {
  run_steps(s, cur::SlidingWindowUcb(arms_of(s)));
}
void BM_Exp3S(benchmark::State& s) {
  run_steps(s, cur::Exp3(arms_of(s), {.alpha = 0.001}));
}
void BM_BetaThompson(benchmark::State& s) {
  run_steps(s, cur::BetaThompson(arms_of(s)));
}
void BM_GaussianThompson(benchmark::State& s) {
  run_steps(s, cur::GaussianThompson(arms_of(s)));
}
void BM_EpsilonGreedy(benchmark::State& s) {
  run_steps(s, cur::EpsilonGreedy(arms_of(s)));
}
void BM_Learnability(benchmark::State& s) {
  run_steps(s, cur::LearnabilitySampler(arms_of(s)));
}
void BM_LinUcb(benchmark::State& s) {
  Rng rng(3);
  Eigen::MatrixXd x(static_cast<Eigen::Index>(arms_of(s)), 8);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = kaizen::uniform01(rng);
  run_steps(s, cur::LinUcb(x));
}
void BM_PromptPool(benchmark::State& state) {
  cur::PromptPool pool(1);
  for (std::size_t a = 0; a < arms_of(state); ++a)
    pool.add_arm(std::vector<kaizen::Prompt>(4, kaizen::Prompt{}));
  Rng rng(1);
  std::vector<ArmId> arms(kDraws);
  for (auto _ : state) {
    for (auto& a : arms) a = static_cast<ArmId>(kaizen::uniform_index(rng, arms_of(state)));
    benchmark::DoNotOptimize(pool.draw(arms).data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kDraws));
}

#define KAIZEN_CURRICULUM_BENCH(fn) BENCHMARK(fn)->Arg(1000)->Arg(100000)->Unit(benchmark::kMicrosecond)
KAIZEN_CURRICULUM_BENCH(BM_Uniform);
KAIZEN_CURRICULUM_BENCH(BM_Sec);
KAIZEN_CURRICULUM_BENCH(BM_Ucb1);
KAIZEN_CURRICULUM_BENCH(BM_DiscountedUcb);
KAIZEN_CURRICULUM_BENCH(BM_SlidingWindowUcb);
KAIZEN_CURRICULUM_BENCH(BM_Exp3S);
KAIZEN_CURRICULUM_BENCH(BM_BetaThompson);
KAIZEN_CURRICULUM_BENCH(BM_GaussianThompson);
KAIZEN_CURRICULUM_BENCH(BM_EpsilonGreedy);
KAIZEN_CURRICULUM_BENCH(BM_Learnability);
KAIZEN_CURRICULUM_BENCH(BM_LinUcb);
KAIZEN_CURRICULUM_BENCH(BM_PromptPool);

// Console output as usual, plus the CPU time per step of every run, for the ratio table (CPU time: the
// machines these run on are often shared, which inflates wall time unevenly).
class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (!r.error_occurred)
        seconds_[r.benchmark_name()] = r.GetAdjustedCPUTime() / benchmark::GetTimeUnitMultiplier(r.time_unit);
    ConsoleReporter::ReportRuns(runs);
  }
  const std::map<std::string, double>& seconds() const { return seconds_; }

 private:
  std::map<std::string, double> seconds_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RecordingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::cout << "\nCPU time per step (" << kDraws << " draws + update) relative to the uniform baseline:\n";
  for (const char* arms : {"1000", "100000"}) {
    const auto base = reporter.seconds().find(std::string("BM_Uniform/") + arms);
    if (base == reporter.seconds().end()) continue;
    for (const auto& [name, sec] : reporter.seconds()) {
      const auto slash = name.rfind('/');
      if (name.substr(slash + 1) != arms || name == base->first) continue;
      std::cout << "  " << std::left << std::setw(28) << name << std::right << std::setw(12) << std::fixed
                << std::setprecision(1) << sec * 1e6 << " us  " << std::setw(10) << sec / base->second
                << "x uniform (" << std::setprecision(2) << base->second * 1e6 << " us)\n";
    }
  }
  benchmark::Shutdown();
  return 0;
}
