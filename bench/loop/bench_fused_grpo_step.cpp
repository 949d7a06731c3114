// Peak memory and time of one GRPO update step with the fused linear + log-prob path against the logits
// path, on the same model, batch and objective, at vocabularies V = 32000 and 49152:
//   fused   loop::policy_logprobs on the LlamaModel (a HiddenStatePolicy): ops::fused_linear_logprobs from
//           the hidden states and the output embedding over the completion tokens, chunked, so the
//           [B, T, V] logits never exist
//   logits  loop::policy_logprobs on loop::LogitsOnly<LlamaModel>: logits [B, T, V] -> log-softmax -> gather
// Each step: log-probs, policy_gradient::policy_loss (kDapo: token ratio, clip-higher, token mean),
// backward, gradient clip, AdamW step. Model: Llama, hidden 256, 1 layer (the output layer dominates, as in
// the memory question), batch 8 rows x 256 tokens (32 prompt + 224 completion).
// Memory: on the CPU the resident-set high-water mark above the resident set before the step (the kernel's
// VmHWM, reset through /proc/self/clear_refs before each step); on CUDA (KAIZEN_BENCH_DEVICE=cuda) the
// caching allocator's peak above what was allocated before the step. Counters peak_MiB (largest over the
// iterations); figures: fused/logits ratios of peak memory and of time per V. Run with OMP_WAIT_POLICY=passive
// on shared machines.
#include <benchmark/benchmark.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <kaizen/config.hpp>
#include <kaizen/core/collate.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>

#if KAIZEN_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <support/figures.hpp>

namespace {

namespace pg = kaizen::policy_gradient;
namespace loop = kaizen::loop;

constexpr std::int64_t kRows = 8;
constexpr std::int64_t kPrompt = 32;
constexpr std::int64_t kCompletion = 224;

torch::Device bench_device() {
  const char* d = std::getenv("KAIZEN_BENCH_DEVICE");
  if (d != nullptr && std::string(d) == "cuda" && torch::cuda::is_available()) return torch::kCUDA;
  return torch::kCPU;
}

/// Resident-set figures of this process from /proc/self/status, in bytes (0 when unreadable).
std::int64_t status_bytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stoll(line.substr(key.size() + 1)) * 1024;
  }
  return 0;
}

/// Measures the peak memory of one call above the memory in use before it.
struct PeakMeter {
  torch::Device device;
  std::int64_t before = 0;
  void start() {
#if KAIZEN_WITH_CUDA
    if (device.is_cuda()) {
      torch::cuda::synchronize();
      const auto dev = static_cast<c10::DeviceIndex>(device.has_index() ? device.index() : 0);
      c10::cuda::CUDACachingAllocator::resetPeakStats(dev);
      before = c10::cuda::CUDACachingAllocator::getDeviceStats(dev).allocated_bytes[0].current;
      return;
    }
#endif
    std::ofstream("/proc/self/clear_refs") << "5";  // resets VmHWM to the current resident set
    before = status_bytes("VmRSS");
  }
  [[nodiscard]] double stop_mib() const {
#if KAIZEN_WITH_CUDA
    if (device.is_cuda()) {
      torch::cuda::synchronize();
      const auto dev = static_cast<c10::DeviceIndex>(device.has_index() ? device.index() : 0);
      const auto peak = c10::cuda::CUDACachingAllocator::getDeviceStats(dev).allocated_bytes[0].peak;
      return static_cast<double>(peak - before) / (1 << 20);
    }
#endif
    return static_cast<double>(status_bytes("VmHWM") - before) / (1 << 20);
  }
};

/// The model, a batch of random tokens with random advantages, and the optimiser.
struct Setup {
  std::unique_ptr<kaizen::lm::LlamaModel> model;
  kaizen::TokenBatch batch;
  torch::Tensor old_logprobs, advantages;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<torch::Tensor> params;

  explicit Setup(std::int64_t vocab) {
    const torch::Device device = bench_device();
    torch::manual_seed(1);
    kaizen::lm::LlamaConfig c;
    c.vocab_size = vocab;
    c.hidden_size = 256;
    c.intermediate_size = 512;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = kPrompt + kCompletion;
    model = std::make_unique<kaizen::lm::LlamaModel>(c);
    model->to(device);
    std::vector<kaizen::Rollout> rollouts(kRows);
    const torch::Tensor ids = torch::randint(vocab, {kRows, kPrompt + kCompletion}, torch::kLong);
    for (std::int64_t b = 0; b < kRows; ++b) {
      auto& r = rollouts[static_cast<std::size_t>(b)];
      for (std::int64_t t = 0; t < kPrompt; ++t) r.prompt.push_back(ids[b][t].item<std::int64_t>());
      for (std::int64_t t = kPrompt; t < kPrompt + kCompletion; ++t)
        r.completion.tokens.push_back(ids[b][t].item<std::int64_t>());
      r.group = b / 4;
    }
    batch = kaizen::collate(std::span<const kaizen::Rollout>(rollouts),
                            {.vocab_size = vocab, .max_length = kPrompt + kCompletion, .device = device});
    old_logprobs = loop::frozen_logprobs(*model, batch);
    advantages = torch::randn({kRows}, torch::TensorOptions().device(device));
    params = model->parameters();
    optimizer = std::make_unique<torch::optim::AdamW>(loop::make_adamw(params, {.learning_rate = 1e-5}));
  }
};

Setup& setup(std::int64_t vocab) {
  static std::unique_ptr<Setup> s;
  static std::int64_t held = -1;
  if (held != vocab) {
    s.reset();
    s = std::make_unique<Setup>(vocab);
    held = vocab;
  }
  return *s;
}

template <class P>
double step(P& policy, Setup& s) {
  const torch::Tensor logprobs = loop::policy_logprobs(policy, s.batch);
  const auto out = pg::policy_loss(logprobs, s.old_logprobs, torch::Tensor(), s.advantages, s.batch.completion_mask,
                                   pg::kDapo);
  return loop::apply_update(*s.optimizer, s.params, out.loss, 1.0);
}

template <bool Fused>
void BM_grpo_step(benchmark::State& state) {
  Setup& s = setup(state.range(0));
  loop::LogitsOnly<kaizen::lm::LlamaModel> logits_only{s.model.get()};
  PeakMeter meter{bench_device()};
  double peak = 0.0;
  for (auto _ : state) {
    meter.start();
    if constexpr (Fused) benchmark::DoNotOptimize(step(*s.model, s));
    else benchmark::DoNotOptimize(step(logits_only, s));
    peak = std::max(peak, meter.stop_mib());
  }
  state.counters["peak_MiB"] = peak;
  state.counters["tokens"] = s.batch.completion_mask.sum().item<double>();
}

void BM_grpo_step_fused(benchmark::State& state) { BM_grpo_step<true>(state); }
void BM_grpo_step_logits(benchmark::State& state) { BM_grpo_step<false>(state); }

BENCHMARK(BM_grpo_step_fused)->Arg(32000)->Arg(49152)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_grpo_step_logits)->Arg(32000)->Arg(49152)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(1);
  using kaizen::bench::Figures;
  using kaizen::bench::Results;
  return kaizen::bench::run(argc, argv, [](const Results& r, Figures& f) {
    const std::string device = bench_device().is_cuda() ? "cuda" : "cpu";
    for (const char* v : {"32000", "49152"}) {
      const std::string fused = std::string("BM_grpo_step_fused/") + v + "/iterations:3/real_time";
      const std::string logits = std::string("BM_grpo_step_logits/") + v + "/iterations:3/real_time";
      const std::string tag = std::string("_V") + v + "_" + device;
      f.figure("grpo_step_fused_peak_MiB" + tag, r.counter(fused, "peak_MiB"), "MiB", "fused path, peak memory");
      f.figure("grpo_step_logits_peak_MiB" + tag, r.counter(logits, "peak_MiB"), "MiB", "logits path, peak memory");
      f.ratio("grpo_step_fused_over_logits_peak_memory" + tag, r.counter(fused, "peak_MiB") / r.counter(logits, "peak_MiB"),
              "peak memory of a GRPO step, fused / logits path (lower is better)");
      f.ratio("grpo_step_fused_over_logits_time" + tag, r.real_seconds(fused) / r.real_seconds(logits),
              "time of a GRPO step, fused / logits path (lower is better)");
    }
  });
}
