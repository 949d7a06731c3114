// Curriculum throughput: one training step = sample(256 arms) + update(256 gains), at 1k and 100k arms.
// Baseline (same run): 256 uniform draws, the cost of not having a curriculum. After the table, the
// figures: each curriculum's CPU time per step and that time as a multiple of the baseline at the same arm
// count (<name>_over_uniform_arms<k>).
//
//   bench_curriculum --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Dense>

#include <kaizen/curriculum.hpp>
#include <kaizen/curriculum/linucb.hpp>

#include <support/figures.hpp>

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

}  // namespace

int main(int argc, char** argv) {
  using kaizen::bench::Figures;
  using kaizen::bench::Results;
  // CPU time: the machines these run on are often shared, which inflates wall time unevenly.
  static const std::vector<std::pair<std::string, std::string>> curricula = {
      {"BM_Sec", "sec"},
      {"BM_Ucb1", "ucb1"},
      {"BM_DiscountedUcb", "discounted_ucb"},
      {"BM_SlidingWindowUcb", "sliding_window_ucb"},
      {"BM_Exp3S", "exp3s"},
      {"BM_BetaThompson", "beta_thompson"},
      {"BM_GaussianThompson", "gaussian_thompson"},
      {"BM_EpsilonGreedy", "epsilon_greedy"},
      {"BM_Learnability", "learnability"},
      {"BM_LinUcb", "lin_ucb"},
      {"BM_PromptPool", "prompt_pool_draw"}};
  return kaizen::bench::run(argc, argv, [](const Results& r, Figures& f) {
    for (const std::string arms : {"1000", "100000"}) {
      const double uniform = r.cpu_seconds("BM_Uniform/" + arms);
      f.figure("uniform_step_us_arms" + arms, uniform * 1e6, "us",
               "baseline: " + std::to_string(kDraws) + " uniform draws + gains, CPU time");
      for (const auto& [bench, name] : curricula) {
        const double step = r.cpu_seconds(bench + "/" + arms);
        f.figure(name + "_step_us_arms" + arms, step * 1e6, "us",
                 "sample(" + std::to_string(kDraws) + ") + update, CPU time, " + arms + " arms");
        f.ratio(name + "_over_uniform_arms" + arms, step / uniform,
                "step CPU time / uniform baseline, " + arms + " arms (the cost of the curriculum)");
      }
    }
  });
}
