// CPU: token log-prob forward (and forward + backward) on fp32 [2048, 32000] — kaizen's fused loop vs
// LibTorch log_softmax + gather — with a memcpy of the same logits measured in the same run as the
// bandwidth ceiling. Prints the speed-up and the fraction of the memcpy bandwidth after the table.
#include <benchmark/benchmark.h>

#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <kaizen/torch/ops.hpp>

namespace {

constexpr std::int64_t kTokens = 2048;
constexpr std::int64_t kVocab = 32000;

struct Inputs {
  torch::Tensor logits = (torch::randn({kTokens, kVocab}) * 3).contiguous();
  torch::Tensor targets = torch::randint(0, kVocab, {kTokens}, torch::kInt64);
};

Inputs& inputs() {
  static Inputs in = [] {
    torch::manual_seed(0);
    return Inputs{};
  }();
  return in;
}

const double kLogitBytes = static_cast<double>(kTokens) * kVocab * sizeof(float);

void BM_Memcpy(benchmark::State& state) {
  const auto& in = inputs();
  std::vector<float> dst(static_cast<std::size_t>(in.logits.numel()));
  for (auto _ : state) {
    std::memcpy(dst.data(), in.logits.data_ptr<float>(), static_cast<std::size_t>(kLogitBytes));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 2 * kLogitBytes));  // read + write
}

void BM_TorchForward(benchmark::State& state) {
  const auto& in = inputs();
  for (auto _ : state) {
    auto lp = torch::log_softmax(in.logits, -1).gather(-1, in.targets.unsqueeze(-1)).squeeze(-1);
    benchmark::DoNotOptimize(lp.data_ptr());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kLogitBytes));
}

void BM_KaizenForward(benchmark::State& state) {
  const auto& in = inputs();
  const bool entropy = state.range(0) != 0;
  for (auto _ : state) {
    auto r = kaizen::ops::token_logprobs(in.logits, in.targets, {.with_entropy = entropy});
    benchmark::DoNotOptimize(r.logprobs.data_ptr());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kLogitBytes));
}

void BM_TorchForwardBackward(benchmark::State& state) {
  const auto& in = inputs();
  auto x = in.logits.clone().requires_grad_(true);
  for (auto _ : state) {
    x.mutable_grad() = torch::Tensor();
    torch::log_softmax(x, -1).gather(-1, in.targets.unsqueeze(-1)).sum().backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 3 * kLogitBytes));  // floor: R, R, W
}

void BM_KaizenForwardBackward(benchmark::State& state) {
  const auto& in = inputs();
  auto x = in.logits.clone().requires_grad_(true);
  for (auto _ : state) {
    x.mutable_grad() = torch::Tensor();
    kaizen::ops::token_logprobs(x, in.targets).logprobs.sum().backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 3 * kLogitBytes));
}

BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TorchForward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_KaizenForward)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TorchForwardBackward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_KaizenForwardBackward)->Unit(benchmark::kMillisecond)->UseRealTime();

/// Console output plus a record of each benchmark's time per iteration, for the ratios printed after.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) seconds_[run.benchmark_name()] = run.GetAdjustedRealTime() / 1e3;  // ms → s
    ConsoleReporter::ReportRuns(runs);
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    const auto t = [&](const std::string& name) { return seconds_.count(name) ? seconds_.at(name) : 0.0; };
    const double memcpy_s = t("BM_Memcpy/real_time");
    if (memcpy_s <= 0) return;
    const double ceiling = 2 * kLogitBytes / memcpy_s / 1e9;
    std::cout << "\n[2048 x 32000] fp32 logits (" << kLogitBytes / (1 << 20) << " MiB), torch threads "
              << at::get_num_threads() << "\nmemcpy ceiling: " << ceiling << " GB/s (read + write)\n";
    const auto line = [&](const char* what, const std::string& ours, const std::string& theirs, double bytes) {
      if (t(ours) <= 0 || t(theirs) <= 0) return;
      const double gbs = bytes / t(ours) / 1e9;
      std::cout << what << ": kaizen " << t(ours) * 1e3 << " ms, LibTorch " << t(theirs) * 1e3
                << " ms, speed-up " << t(theirs) / t(ours) << "x, " << gbs << " GB/s = " << gbs / ceiling
                << " of memcpy\n";
    };
    line("forward", "BM_KaizenForward/0/real_time", "BM_TorchForward/real_time", kLogitBytes);
    line("forward + entropy", "BM_KaizenForward/1/real_time", "BM_TorchForward/real_time", kLogitBytes);
    line("forward + backward", "BM_KaizenForwardBackward/real_time", "BM_TorchForwardBackward/real_time",
         3 * kLogitBytes);
  }

 private:
  std::map<std::string, double> seconds_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
