// policy_loss forward + backward at [64 x 4096] tokens (float32, CPU) against the plain LibTorch
// composition of the same formula (no validation, no metrics), measured in the same run; prints the
// ratio kaizen / plain for each objective. Run with --benchmark_min_time=0.2 on shared machines.
#include <iostream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>

namespace pg = kaizen::policy_gradient;

namespace {

constexpr std::int64_t kRows = 64;
constexpr std::int64_t kColumns = 4096;

struct Data {
  torch::Tensor lp, old, ref, adv, mask;
};

Data make_data() {
  torch::manual_seed(0);
  Data d;
  d.old = -torch::rand({kRows, kColumns}) * 4;
  d.lp = (d.old + torch::randn({kRows, kColumns}) * 0.2).requires_grad_(true);
  d.ref = d.old + torch::randn({kRows, kColumns}) * 0.2;
  const auto rewards = (torch::rand({kRows}) > 0.5).to(torch::kFloat32);
  d.adv = pg::group_advantages(rewards, torch::arange(kRows).floor_divide(8));
  const auto lengths = torch::randint(kColumns / 4, kColumns + 1, {kRows, 1});
  d.mask = torch::arange(kColumns).unsqueeze(0) < lengths;
  return d;
}

// GRPO: token ratio, symmetric clip 0.2, k3 KL (β = 0.04), seq-mean-token-mean.
void BM_kaizen_grpo(benchmark::State& state) {
  auto d = make_data();
  for (auto _ : state) {
    auto out = pg::policy_loss(d.lp, d.old, d.ref, d.adv, d.mask, pg::GrpoObjective{});
    out.loss.backward();
    benchmark::DoNotOptimize(d.lp.grad().data_ptr());
    d.lp.mutable_grad().reset();
  }
  state.SetItemsProcessed(state.iterations() * kRows * kColumns);
}

void BM_plain_grpo(benchmark::State& state) {
  auto d = make_data();
  for (auto _ : state) {
    const auto m = d.mask.to(torch::kFloat32);
    const auto ratio = (d.lp - d.old).exp();
    const auto a = d.adv.unsqueeze(1);
    const auto obj = torch::minimum(ratio * a, ratio.clamp(0.8, 1.2) * a);
    const auto diff = d.ref - d.lp;
    const auto kl = diff.exp() - diff - 1;
    const auto per_token = -obj + 0.04 * kl;
    const auto loss = ((per_token * m).sum(1) / m.sum(1)).mean();
    loss.backward();
    benchmark::DoNotOptimize(d.lp.grad().data_ptr());
    d.lp.mutable_grad().reset();
  }
  state.SetItemsProcessed(state.iterations() * kRows * kColumns);
}

// DAPO: token ratio, clip-higher 0.2 / 0.28, no KL, token-mean.
void BM_kaizen_dapo(benchmark::State& state) {
  auto d = make_data();
  for (auto _ : state) {
    auto out = pg::policy_loss(d.lp, d.old, {}, d.adv, d.mask, pg::DapoObjective{});
    out.loss.backward();
    benchmark::DoNotOptimize(d.lp.grad().data_ptr());
    d.lp.mutable_grad().reset();
  }
  state.SetItemsProcessed(state.iterations() * kRows * kColumns);
}

void BM_plain_dapo(benchmark::State& state) {
  auto d = make_data();
  for (auto _ : state) {
    const auto m = d.mask.to(torch::kFloat32);
    const auto ratio = (d.lp - d.old).exp();
    const auto a = d.adv.unsqueeze(1);
    const auto obj = torch::minimum(ratio * a, ratio.clamp(0.8, 1.28) * a);
    const auto loss = (-obj * m).sum() / m.sum();
    loss.backward();
    benchmark::DoNotOptimize(d.lp.grad().data_ptr());
    d.lp.mutable_grad().reset();
  }
  state.SetItemsProcessed(state.iterations() * kRows * kColumns);
}

BENCHMARK(BM_kaizen_grpo)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_plain_grpo)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_kaizen_dapo)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_plain_dapo)->Unit(benchmark::kMillisecond);

// Console output plus the per-iteration time of each benchmark, to print ratios at the end.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      if (run.run_type == Run::RT_Iteration && run.iterations > 0) {
        times_[run.run_name.function_name] = {run.GetAdjustedRealTime(), run.GetAdjustedCPUTime()};
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
  void print_ratio(const std::string& name) const {
    const auto k = times_.find("BM_kaizen_" + name), p = times_.find("BM_plain_" + name);
    if (k == times_.end() || p == times_.end()) return;
    // CPU time is the steadier figure on a shared machine (one LibTorch thread); both are printed.
    std::cout << "ratio " << name << ": kaizen policy_loss / plain LibTorch = " << k->second.first / p->second.first
              << " (real time: " << k->second.first << " vs " << p->second.first << " ms), "
              << k->second.second / p->second.second << " (CPU time: " << k->second.second << " vs "
              << p->second.second << " ms) per forward+backward at [" << kRows << " x " << kColumns
              << "] float32, validation and metrics included\n";
  }

 private:
  std::map<std::string, std::pair<double, double>> times_;  // real, CPU (ms)
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  torch::set_num_threads(1);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratio("grpo");
  reporter.print_ratio("dapo");
  benchmark::Shutdown();
  return 0;
}
