// policy_loss forward + backward at [64 x 4096] tokens (float32, CPU) against the plain LibTorch
// composition of the same formula (no validation, no metrics), measured in the same run; prints the
// ratio kaizen / plain for each objective (figures policy_loss_<objective>_over_plain, real and CPU time).
// Run with --benchmark_min_time=0.2 on shared machines.
#include <string>

#include <benchmark/benchmark.h>

#include <kaizen/policy_gradient/advantages.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>

#include <support/figures.hpp>

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
  const auto step = [&] {
    auto out = pg::policy_loss(d.lp, d.old, d.ref, d.adv, d.mask, pg::GrpoObjective{});
    out.loss.backward();
    benchmark::DoNotOptimize(d.lp.grad().data_ptr());
    d.lp.mutable_grad().reset();
  };
  step();  // warm-up: the first call allocates (and, first in the program, initialises LibTorch)
  for (auto _ : state) step();
  state.SetItemsProcessed(state.iterations() * kRows * kColumns);
}

void BM_plain_grpo(benchmark::State& state) {
  auto d = make_data();
  const auto step = [&] {
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
  };
  step();  // warm-up: the first call allocates (and, first in the program, initialises LibTorch)
  for (auto _ : state) step();
  state.SetItemsProcessed(state.iterations() * kRows * kColumns);
}

// DAPO: token ratio, clip-higher 0.2 / 0.28, no KL, token-mean.
void BM_kaizen_dapo(benchmark::State& state) {
  auto d = make_data();
  const auto step = [&] {
    auto out = pg::policy_loss(d.lp, d.old, {}, d.adv, d.mask, pg::DapoObjective{});
    out.loss.backward();
    benchmark::DoNotOptimize(d.lp.grad().data_ptr());
    d.lp.mutable_grad().reset();
  };
  step();  // warm-up: the first call allocates (and, first in the program, initialises LibTorch)
  for (auto _ : state) step();
  state.SetItemsProcessed(state.iterations() * kRows * kColumns);
}

void BM_plain_dapo(benchmark::State& state) {
  auto d = make_data();
  const auto step = [&] {
    const auto m = d.mask.to(torch::kFloat32);
    const auto ratio = (d.lp - d.old).exp();
    const auto a = d.adv.unsqueeze(1);
    const auto obj = torch::minimum(ratio * a, ratio.clamp(0.8, 1.28) * a);
    const auto loss = (-obj * m).sum() / m.sum();
    loss.backward();
    benchmark::DoNotOptimize(d.lp.grad().data_ptr());
    d.lp.mutable_grad().reset();
  };
  step();  // warm-up: the first call allocates (and, first in the program, initialises LibTorch)
  for (auto _ : state) step();
  state.SetItemsProcessed(state.iterations() * kRows * kColumns);
}

BENCHMARK(BM_kaizen_grpo)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_plain_grpo)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_kaizen_dapo)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_plain_dapo)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(1);
  using kaizen::bench::Figures;
  using kaizen::bench::Results;
  return kaizen::bench::run(argc, argv, [](const Results& r, Figures& f) {
    // CPU time is the steadier figure on a shared machine (one LibTorch thread); both are reported.
    for (const std::string name : {"grpo", "dapo"}) {
      const std::string k = "BM_kaizen_" + name, p = "BM_plain_" + name;
      const std::string shape = "forward+backward at [" + std::to_string(kRows) + " x " + std::to_string(kColumns) +
                                "] float32, validation and metrics included";
      f.figure("kaizen_" + name + "_ms", r.real_seconds(k) * 1e3, "ms", "kaizen policy_loss " + shape + ", real time");
      f.figure("plain_" + name + "_ms", r.real_seconds(p) * 1e3, "ms", "plain LibTorch, real time");
      f.figure("kaizen_" + name + "_cpu_ms", r.cpu_seconds(k) * 1e3, "ms", "kaizen policy_loss, CPU time");
      f.figure("plain_" + name + "_cpu_ms", r.cpu_seconds(p) * 1e3, "ms", "plain LibTorch, CPU time");
      f.ratio("policy_loss_" + name + "_over_plain", r.real_seconds(k) / r.real_seconds(p),
              "kaizen policy_loss / plain LibTorch, real time (lower is better)");
      f.ratio("policy_loss_" + name + "_over_plain_cpu", r.cpu_seconds(k) / r.cpu_seconds(p),
              "kaizen policy_loss / plain LibTorch, CPU time (lower is better)");
    }
  });
}
