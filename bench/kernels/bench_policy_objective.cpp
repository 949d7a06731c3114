// CPU: the fused policy objective (ops::policy_objective) against policy_gradient::policy_loss (LibTorch
// ops under autograd), forward + backward on float32 [64, 4096] per-token inputs, for the GRPO objective
// (token ratio, symmetric clip, k3 KL, seq-mean-token-mean) and the DAPO objective (clip-higher, no KL,
// token-mean). Both run at LibTorch's default intra-op thread count. After the table: the speed-up of
// the fused op over policy_loss for each objective, measured in the same run.
#include <benchmark/benchmark.h>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/torch/ops/policy_objective.hpp>

namespace {

namespace pg = kaizen::policy_gradient;

constexpr std::int64_t kRows = 64;
constexpr std::int64_t kCols = 4096;

struct Inputs {
  torch::Tensor lp, old, ref, adv, mask;
};

const Inputs& inputs() {
  static const Inputs in = [] {
    torch::manual_seed(0);
    Inputs r;
    r.old = -torch::rand({kRows, kCols}) * 3 - 0.1;
    r.lp = r.old + torch::randn({kRows, kCols}) * 0.2;
    r.ref = r.old + torch::randn({kRows, kCols}) * 0.2;
    r.adv = torch::randn({kRows});
    // Completions of random lengths (right padding), as a GRPO batch has.
    const auto lengths = torch::randint(kCols / 4, kCols + 1, {kRows, 1});
    r.mask = torch::arange(kCols).unsqueeze(0) < lengths;
    return r;
  }();
  return in;
}

template <class Obj>
void BM_PolicyLoss(benchmark::State& state, Obj objective) {
  const auto& in = inputs();
  auto lp = in.lp.clone().requires_grad_(true);
  pg::policy_loss(lp, in.old, in.ref, in.adv, in.mask, objective).loss.backward();  // warm-up: first allocations
  for (auto _ : state) {
    lp.mutable_grad() = torch::Tensor();
    pg::policy_loss(lp, in.old, in.ref, in.adv, in.mask, objective).loss.backward();
    benchmark::DoNotOptimize(lp.grad().data_ptr());
  }
}

template <class Obj>
void BM_Fused(benchmark::State& state, Obj objective) {
  const auto& in = inputs();
  auto lp = in.lp.clone().requires_grad_(true);
  kaizen::ops::policy_objective(lp, in.old, in.ref, in.adv, in.mask, objective).loss.backward();  // warm-up
  for (auto _ : state) {
    lp.mutable_grad() = torch::Tensor();
    kaizen::ops::policy_objective(lp, in.old, in.ref, in.adv, in.mask, objective).loss.backward();
    benchmark::DoNotOptimize(lp.grad().data_ptr());
  }
}

benchmark::internal::Benchmark* timed(benchmark::internal::Benchmark* b) {
  return b->Unit(benchmark::kMillisecond)->UseRealTime();
}

/// Console output plus each benchmark's time per iteration, for the ratios printed after the table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) seconds_[run.benchmark_name()] = run.GetAdjustedRealTime() / 1e3;  // ms → s
    ConsoleReporter::ReportRuns(runs);
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::cout << "\nfloat32 [" << kRows << " x " << kCols << "], forward + backward, " << at::get_num_threads()
              << " threads\n";
    for (const std::string objective : {"GRPO", "DAPO"}) {
      const auto ours = seconds_.find("BM_Fused/" + objective + "/real_time");
      const auto theirs = seconds_.find("BM_PolicyLoss/" + objective + "/real_time");
      if (ours == seconds_.end() || theirs == seconds_.end()) continue;
      std::cout << "  " << objective << ": fused " << ours->second * 1e3 << " ms, policy_loss " << theirs->second * 1e3
                << " ms, speed-up " << theirs->second / ours->second << "x\n";
    }
  }

 private:
  std::map<std::string, double> seconds_;
};

}  // namespace

int main(int argc, char** argv) {
  timed(benchmark::RegisterBenchmark("BM_PolicyLoss/GRPO", BM_PolicyLoss<pg::GrpoObjective>, pg::kGrpo));
  timed(benchmark::RegisterBenchmark("BM_Fused/GRPO", BM_Fused<pg::GrpoObjective>, pg::kGrpo));
  timed(benchmark::RegisterBenchmark("BM_PolicyLoss/DAPO", BM_PolicyLoss<pg::DapoObjective>, pg::kDapo));
  timed(benchmark::RegisterBenchmark("BM_Fused/DAPO", BM_Fused<pg::DapoObjective>, pg::kDapo));
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
