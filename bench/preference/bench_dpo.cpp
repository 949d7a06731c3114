// DPO loss forward + backward at batch 256: kaizen::preference::dpo_loss (input checks, metrics)
// against the same loss composed from plain LibTorch ops, measured in the same run. Also the path
// from token log-probs [2N, T] (mask reduction + split + loss). Prints kaizen / plain time ratios.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include <kaizen/preference/dpo.hpp>
#include <kaizen/preference/sequence_logprobs.hpp>

namespace {

constexpr double kBeta = 0.1;

struct Inputs {
  torch::Tensor chosen, rejected, reference_chosen, reference_rejected;
  explicit Inputs(std::int64_t n) {
    torch::manual_seed(0);
    chosen = (-50 * torch::rand({n})).requires_grad_();
    rejected = (-50 * torch::rand({n})).requires_grad_();
    reference_chosen = -50 * torch::rand({n});
    reference_rejected = -50 * torch::rand({n});
  }
  void clear_grads() {
    chosen.mutable_grad() = torch::Tensor();
    rejected.mutable_grad() = torch::Tensor();
  }
};

void BM_kaizen_dpo(benchmark::State& state) {
  Inputs in(state.range(0));
  for (auto _ : state) {
    const auto out = kaizen::preference::dpo_loss(
        {in.chosen, in.rejected, in.reference_chosen, in.reference_rejected}, {.beta = kBeta});
    out.loss.backward();
    benchmark::DoNotOptimize(out.metrics.accuracy.data_ptr());
    in.clear_grads();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_plain_dpo(benchmark::State& state) {
  Inputs in(state.range(0));
  for (auto _ : state) {
    const auto h = (in.chosen - in.reference_chosen) - (in.rejected - in.reference_rejected);
    const auto loss = -torch::log_sigmoid(kBeta * h).mean();
    // The same metrics TRL logs, so both sides compute the same things.
    const auto cr = kBeta * (in.chosen - in.reference_chosen).detach();
    const auto rr = kBeta * (in.rejected - in.reference_rejected).detach();
    const auto accuracy = cr.gt(rr).to(torch::kFloat32).mean();
    const auto margin = (cr - rr).mean();
    loss.backward();
    benchmark::DoNotOptimize(accuracy.data_ptr());
    benchmark::DoNotOptimize(margin.data_ptr());
    in.clear_grads();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

struct TokenInputs {
  torch::Tensor policy, reference, mask;
  TokenInputs(std::int64_t n, std::int64_t t) {
    torch::manual_seed(1);
    policy = (-torch::rand({2 * n, t})).requires_grad_();
    reference = -torch::rand({2 * n, t});
    mask = torch::rand({2 * n, t}).gt(0.3);
    mask.select(1, 0).fill_(true);
  }
};

void BM_kaizen_dpo_from_tokens(benchmark::State& state) {
  TokenInputs in(state.range(0), state.range(1));
  for (auto _ : state) {
    const auto pairs = kaizen::preference::pair_logprobs(in.policy, in.mask, in.reference);
    const auto out = kaizen::preference::dpo_loss(pairs, {.beta = kBeta});
    out.loss.backward();
    in.policy.mutable_grad() = torch::Tensor();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_plain_dpo_from_tokens(benchmark::State& state) {
  TokenInputs in(state.range(0), state.range(1));
  const std::int64_t n = state.range(0);
  for (auto _ : state) {
    const auto m = in.mask.to(in.policy.scalar_type());
    const auto policy = (in.policy * m).sum(1);
    const auto reference = (in.reference * m).sum(1);
    const auto h = (policy.narrow(0, 0, n) - reference.narrow(0, 0, n)) - (policy.narrow(0, n, n) - reference.narrow(0, n, n));
    const auto loss = -torch::log_sigmoid(kBeta * h).mean();
    loss.backward();
    in.policy.mutable_grad() = torch::Tensor();
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

BENCHMARK(BM_kaizen_dpo)->Arg(256);
BENCHMARK(BM_plain_dpo)->Arg(256);
BENCHMARK(BM_kaizen_dpo_from_tokens)->Args({256, 512});
BENCHMARK(BM_plain_dpo_from_tokens)->Args({256, 512});

// Remembers each benchmark's time per iteration, so main() can print kaizen / plain ratios.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs)
      if (run.run_type == Run::RT_Iteration && !run.error_occurred)
        times_[run.benchmark_name()] = {run.GetAdjustedRealTime(), run.GetAdjustedCPUTime()};
    ConsoleReporter::ReportRuns(runs);
  }
  void print_ratio(const std::string& ours, const std::string& baseline) const {
    const auto a = times_.find(ours), b = times_.find(baseline);
    if (a == times_.end() || b == times_.end()) return;
    std::printf("ratio %s / %s = %.3f (real time), %.3f (CPU time)\n", ours.c_str(), baseline.c_str(),
                a->second.first / b->second.first, a->second.second / b->second.second);
  }

 private:
  std::map<std::string, std::pair<double, double>> times_;  // real, CPU time per iteration
};

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(1);  // a shared machine: single-threaded numbers are the stable ones
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.print_ratio("BM_kaizen_dpo/256", "BM_plain_dpo/256");
  reporter.print_ratio("BM_kaizen_dpo_from_tokens/256/512", "BM_plain_dpo_from_tokens/256/512");
  benchmark::Shutdown();
  return 0;
}
