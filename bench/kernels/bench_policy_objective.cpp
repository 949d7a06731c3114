// CPU: the fused policy objective (ops::policy_objective) against policy_gradient::policy_loss (LibTorch
// ops under autograd), forward + backward on float32 [64, 4096] per-token inputs, for the GRPO objective
// (token ratio, symmetric clip, k3 KL, seq-mean-token-mean) and the DAPO objective (clip-higher, no KL,
// token-mean). Both run at LibTorch's default intra-op thread count. After the table: the speed-up of
// the fused op over policy_loss for each objective, measured in the same run (figures
// fused_<objective>_speedup_vs_policy_loss).
#include <benchmark/benchmark.h>

#include <string>

#include <torch/torch.h>

#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/torch/ops/policy_objective.hpp>

#include <support/figures.hpp>

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

}  // namespace

int main(int argc, char** argv) {
  timed(benchmark::RegisterBenchmark("BM_PolicyLoss/GRPO", BM_PolicyLoss<pg::GrpoObjective>, pg::kGrpo));
  timed(benchmark::RegisterBenchmark("BM_Fused/GRPO", BM_Fused<pg::GrpoObjective>, pg::kGrpo));
  timed(benchmark::RegisterBenchmark("BM_PolicyLoss/DAPO", BM_PolicyLoss<pg::DapoObjective>, pg::kDapo));
  timed(benchmark::RegisterBenchmark("BM_Fused/DAPO", BM_Fused<pg::DapoObjective>, pg::kDapo));
  using kaizen::bench::Figures;
  using kaizen::bench::Results;
  return kaizen::bench::run(argc, argv, [](const Results& r, Figures& f) {
    f.figure("threads", at::get_num_threads(), "threads", "LibTorch intra-op threads (both sides)");
    for (const std::string objective : {"GRPO", "DAPO"}) {
      std::string lower = objective;
      for (char& c : lower) c = static_cast<char>(c - 'A' + 'a');
      const double fused = r.real_seconds("BM_Fused/" + objective + "/real_time");
      const double loss = r.real_seconds("BM_PolicyLoss/" + objective + "/real_time");
      f.figure("fused_" + lower + "_ms", fused * 1e3, "ms", "ops::policy_objective fwd+bwd, float32 [64 x 4096]");
      f.figure("policy_loss_" + lower + "_ms", loss * 1e3, "ms", "policy_gradient::policy_loss fwd+bwd, same inputs");
      f.ratio("fused_" + lower + "_speedup_vs_policy_loss", loss / fused,
              "policy_loss time / fused time, " + objective + " objective (higher is better)");
    }
  });
}
