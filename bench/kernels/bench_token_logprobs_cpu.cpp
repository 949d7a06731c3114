// CPU: token log-prob forward (and forward + backward) on fp32 [2048, 32000] — kaizen's fused loops vs
// LibTorch log_softmax + gather — with a memcpy of the same logits measured in the same run as the
// bandwidth ceiling. Every benchmark runs at 1 thread and at LibTorch's default intra-op thread count
// (both sides set through at::set_num_threads; kaizen splits rows over them with parallel_rows, the
// memcpy too). kaizen runs on the ISA its dispatch picks (cpu_isa.hpp) and, for comparison, forced to
// the portable loops. After the table, the figures: per thread count (suffix threads1, and threads_default
// for LibTorch's default count), the memcpy ceiling, kaizen's ms and GB/s, the speed-up over LibTorch
// (token_logprobs_<pass>_speedup_vs_libtorch_<threads>) and the fraction of the memcpy bandwidth.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <kaizen/torch/ops.hpp>
#include <kaizen/torch/ops/cpu_isa.hpp>
#include <kaizen/torch/ops/cpu_parallel.hpp>

#include <support/figures.hpp>

namespace {

constexpr std::int64_t kTokens = 2048;
constexpr std::int64_t kVocab = 32000;
const double kLogitBytes = static_cast<double>(kTokens) * kVocab * sizeof(float);

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

const int kDefaultThreads = at::get_num_threads();

/// Sets LibTorch's intra-op thread count (used by LibTorch's ops and by kaizen's) for one benchmark.
class Threads {
 public:
  explicit Threads(std::int64_t n) { at::set_num_threads(static_cast<int>(n)); }
  ~Threads() { at::set_num_threads(kDefaultThreads); }
  Threads(const Threads&) = delete;
  Threads& operator=(const Threads&) = delete;
};

void BM_Memcpy(benchmark::State& state) {
  const Threads threads(state.range(0));
  const auto& in = inputs();
  std::vector<float> dst(static_cast<std::size_t>(in.logits.numel()));
  const float* src = in.logits.data_ptr<float>();
  for (auto _ : state) {
    kaizen::ops::detail::parallel_rows(kTokens, kVocab, [&](std::int64_t begin, std::int64_t end) {
      std::memcpy(dst.data() + begin * kVocab, src + begin * kVocab,
                  static_cast<std::size_t>((end - begin) * kVocab) * sizeof(float));
    });
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 2 * kLogitBytes));  // read + write
}

void BM_TorchForward(benchmark::State& state) {
  const Threads threads(state.range(0));
  const auto& in = inputs();
  for (auto _ : state) {
    auto lp = torch::log_softmax(in.logits, -1).gather(-1, in.targets.unsqueeze(-1)).squeeze(-1);
    benchmark::DoNotOptimize(lp.data_ptr());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kLogitBytes));
}

/// range(0): with entropy; range(1): threads; range(2): 1 = forced to the portable loops.
void BM_KaizenForward(benchmark::State& state) {
  const Threads threads(state.range(1));
  const kaizen::ops::ScopedCpuIsa isa(state.range(2) != 0 ? kaizen::ops::CpuIsa::portable : kaizen::ops::CpuIsa::avx2);
  state.SetLabel(isa.active() == kaizen::ops::CpuIsa::avx2 ? "avx2" : "portable");
  const auto& in = inputs();
  const bool entropy = state.range(0) != 0;
  for (auto _ : state) {
    auto r = kaizen::ops::token_logprobs(in.logits, in.targets, {.with_entropy = entropy});
    benchmark::DoNotOptimize(r.logprobs.data_ptr());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kLogitBytes));
}

void BM_TorchForwardBackward(benchmark::State& state) {
  const Threads threads(state.range(0));
  const auto& in = inputs();
  auto x = in.logits.clone().requires_grad_(true);
  for (auto _ : state) {
    x.mutable_grad() = torch::Tensor();
    torch::log_softmax(x, -1).gather(-1, in.targets.unsqueeze(-1)).sum().backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 3 * kLogitBytes));  // floor: R, R, W
}

/// range(0): threads; range(1): 1 = inplace_backward (the gradient overwrites the logits, so no fresh
/// 250 MiB buffer and its page faults; later iterations run on the previous gradient, finite values
/// of the same size, which costs the loops the same).
void BM_KaizenForwardBackward(benchmark::State& state) {
  const Threads threads(state.range(0));
  const bool inplace = state.range(1) != 0;
  const auto& in = inputs();
  auto x = in.logits.clone().requires_grad_(true);
  for (auto _ : state) {
    x.mutable_grad() = torch::Tensor();
    kaizen::ops::token_logprobs(x, in.targets, {.inplace_backward = inplace}).logprobs.sum().backward();
    benchmark::DoNotOptimize(x.grad().data_ptr());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 3 * kLogitBytes));
}

std::vector<std::int64_t> thread_counts() {
  if (kDefaultThreads <= 1) return {1};
  return {1, kDefaultThreads};
}

benchmark::internal::Benchmark* timed(benchmark::internal::Benchmark* b) {
  return b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void register_benchmarks() {
  for (const std::int64_t t : thread_counts()) {
    timed(benchmark::RegisterBenchmark("BM_Memcpy", BM_Memcpy)->ArgName("threads")->Arg(t));
    timed(benchmark::RegisterBenchmark("BM_TorchForward", BM_TorchForward)->ArgName("threads")->Arg(t));
    for (const std::int64_t entropy : {0, 1})
      for (const std::int64_t portable : {0, 1})
        timed(benchmark::RegisterBenchmark("BM_KaizenForward", BM_KaizenForward)
                  ->ArgNames({"entropy", "threads", "portable"})
                  ->Args({entropy, t, portable}));
    timed(benchmark::RegisterBenchmark("BM_TorchForwardBackward", BM_TorchForwardBackward)->ArgName("threads")->Arg(t));
    for (const std::int64_t inplace : {0, 1})
      timed(benchmark::RegisterBenchmark("BM_KaizenForwardBackward", BM_KaizenForwardBackward)
                ->ArgNames({"threads", "inplace"})
                ->Args({t, inplace}));
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_benchmarks();
  using kaizen::bench::Figures;
  using kaizen::bench::Results;
  return kaizen::bench::run(argc, argv, [](const Results& r, Figures& f) {
    f.figure("cpu_isa_avx2", kaizen::ops::active_cpu_isa() == kaizen::ops::CpuIsa::avx2 ? 1 : 0, "flag",
             "1 when kaizen's dispatch picked the AVX2 loops, 0 for the portable ones");
    f.figure("default_threads", kDefaultThreads, "threads", "LibTorch's default intra-op thread count (threads_default)");
    for (const std::int64_t threads : thread_counts()) {
      const std::string th = "threads:" + std::to_string(threads);
      // Figure suffix: threads1, and threads_default for LibTorch's default count (when above 1).
      const std::string tag = threads == 1 ? "threads1" : "threads_default";
      const double memcpy_s = r.real_seconds("BM_Memcpy/" + th + "/real_time");
      const double ceiling = 2 * kLogitBytes / memcpy_s / 1e9;
      f.figure("memcpy_gbs_" + tag, ceiling, "GB/s", "memcpy of the logits, read + write: the bandwidth ceiling");
      const std::string torch_fwd = "BM_TorchForward/" + th + "/real_time";
      const std::string torch_fwd_bwd = "BM_TorchForwardBackward/" + th + "/real_time";
      f.figure("libtorch_forward_ms_" + tag, r.real_seconds(torch_fwd) * 1e3, "ms", "log_softmax + gather");
      f.figure("libtorch_forward_backward_ms_" + tag, r.real_seconds(torch_fwd_bwd) * 1e3, "ms",
               "log_softmax + gather + backward");
      const auto line = [&](const std::string& what, const std::string& description, const std::string& ours,
                            const std::string& theirs, double bytes) {
        const double o = r.real_seconds(ours + "/real_time");
        const double l = r.real_seconds(theirs);
        const double gbs = bytes / o / 1e9;
        const std::string name = "token_logprobs_" + what;
        f.figure(name + "_ms_" + tag, o * 1e3, "ms", "kaizen " + description);
        f.ratio(name + "_speedup_vs_libtorch_" + tag, l / o,
                "LibTorch time / kaizen time, " + description + " (higher is better)");
        f.figure(name + "_gbs_" + tag, gbs, "GB/s", "kaizen " + description + ", logit bytes moved per second");
        f.ratio(name + "_memcpy_fraction_" + tag, gbs / ceiling, "kaizen GB/s / memcpy GB/s, " + description);
      };
      for (const int portable : {0, 1}) {
        const std::string suffix = portable != 0 ? "_portable" : "";
        const std::string isa = portable != 0 ? " [portable loops]" : "";
        const std::string p = "/portable:" + std::to_string(portable);
        line("forward" + suffix, "forward" + isa, "BM_KaizenForward/entropy:0/" + th + p, torch_fwd, kLogitBytes);
        line("forward_entropy" + suffix, "forward + entropy" + isa, "BM_KaizenForward/entropy:1/" + th + p, torch_fwd,
             kLogitBytes);
      }
      line("forward_backward", "forward + backward", "BM_KaizenForwardBackward/" + th + "/inplace:0", torch_fwd_bwd,
           3 * kLogitBytes);
      line("forward_backward_inplace", "forward + backward, in place", "BM_KaizenForwardBackward/" + th + "/inplace:1",
           torch_fwd_bwd, 3 * kLogitBytes);
    }
  });
}
