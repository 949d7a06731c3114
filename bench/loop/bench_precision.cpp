// Time and peak memory of one policy-gradient training step (log-probs, policy_loss with kDapo, backward,
// clip, AdamW step) under the memory/precision switches of the update, on the same model and batch:
//   fp32          the plain step
//   bf16          loop::Bf16Compute (bf16 autocast compute, fp32 master weights, gradients and AdamW state)
//   bf16_copy     the alternative design: a bf16 copy of the model runs forward and backward, its gradients
//                 are cast into the fp32 master's, AdamW steps the master, the copy is refreshed from it
//   checkpointed  fp32 with LlamaConfig::gradient_checkpointing (decoder layers recomputed in backward)
//   accumulated   fp32, the batch as 4 micro-batches (gradient accumulation, the full batch's normaliser)
// Model: Llama, hidden 256, 4 layers, intermediate 688, vocabulary 512; batch 8 rows x 256 tokens (32 prompt
// + 224 completion). Memory: the resident-set high-water mark above the resident set before the step (VmHWM
// reset through /proc/self/clear_refs), with glibc's mmap threshold fixed at 64 KiB so freed tensors leave the
// resident set; on CUDA (KAIZEN_BENCH_DEVICE=cuda) the caching allocator's peak above what was allocated
// before the step. Figures: <mode>/fp32 ratios of time and peak memory.
//
// `bench_precision --demo [--steps N] [--out DIR]` instead runs the GRPO demo's setting (examples/grpo_demo:
// 2-digit addition, Llama 2 x 64, the supervised warm start to 20 % probe pass@1) and then GRPO from the
// same warm start twice, fp32 and bf16 (Bf16Compute), printing both reward/loss curves, held-out pass@1 before
// and after, and the peak resident set of each run; metrics as JSON lines in DIR/metrics.jsonl.
#include <benchmark/benchmark.h>

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <kaizen/config.hpp>
#include <kaizen/core/collate.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/loop.hpp>
#include <kaizen/loop/batch.hpp>
#include <kaizen/loop/optimizer.hpp>
#include <kaizen/loop/precision.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/policy_gradient/aggregation.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/tasks.hpp>

#if KAIZEN_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <common/tiny_setup.hpp>
#include <support/figures.hpp>

namespace {

namespace pg = kaizen::policy_gradient;
namespace loop = kaizen::loop;

constexpr std::int64_t kRows = 8;
constexpr std::int64_t kPrompt = 32;
constexpr std::int64_t kCompletion = 224;
constexpr std::int64_t kVocab = 512;

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

kaizen::lm::LlamaConfig bench_config() {
  kaizen::lm::LlamaConfig c;
  c.vocab_size = kVocab;
  c.hidden_size = 256;
  c.intermediate_size = 688;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = kPrompt + kCompletion;
  return c;
}

/// The fp32 master model, its optimiser, a batch of random tokens with random advantages; a bf16 copy of the
/// model for the bf16_copy design.
struct Setup {
  std::unique_ptr<kaizen::lm::LlamaModel> model, copy16;
  kaizen::TokenBatch batch;
  torch::Tensor old_logprobs, advantages;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<torch::Tensor> params, params16;

  Setup() {
    const torch::Device device = bench_device();
    torch::manual_seed(1);
    model = std::make_unique<kaizen::lm::LlamaModel>(bench_config());
    model->to(device);
    copy16 = std::make_unique<kaizen::lm::LlamaModel>(bench_config());
    copy16->to(device, torch::kBFloat16);
    std::vector<kaizen::Rollout> rollouts(kRows);
    const torch::Tensor ids = torch::randint(kVocab, {kRows, kPrompt + kCompletion}, torch::kLong);
    for (std::int64_t b = 0; b < kRows; ++b) {
      auto& r = rollouts[static_cast<std::size_t>(b)];
      for (std::int64_t t = 0; t < kPrompt; ++t) r.prompt.push_back(ids[b][t].item<std::int64_t>());
      for (std::int64_t t = kPrompt; t < kPrompt + kCompletion; ++t)
        r.completion.tokens.push_back(ids[b][t].item<std::int64_t>());
      r.group = b / 4;
    }
    batch = kaizen::collate(std::span<const kaizen::Rollout>(rollouts),
                            {.vocab_size = kVocab, .max_length = kPrompt + kCompletion, .device = device});
    old_logprobs = loop::frozen_logprobs(*model, batch);
    advantages = torch::randn({kRows}, torch::TensorOptions().device(device));
    params = model->parameters();
    params16 = copy16->parameters();
    optimizer = std::make_unique<torch::optim::AdamW>(loop::make_adamw(params, {.learning_rate = 1e-5}));
  }

  /// Refreshes the bf16 copy from the fp32 master.
  void refresh_copy() {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < params.size(); ++i) params16[i].copy_(params[i]);
  }
};

Setup& setup() {
  static Setup s;
  return s;
}

enum class Mode { fp32, bf16, bf16_copy, checkpointed, accumulated };

double step(Setup& s, Mode mode) {
  s.model->set_gradient_checkpointing(mode == Mode::checkpointed);
  auto loss_of = [&](auto& policy, const kaizen::TokenBatch& b, const torch::Tensor& old, const torch::Tensor& adv,
                     std::optional<double> normaliser) {
    const torch::Tensor lp = loop::policy_logprobs(policy, b);
    return pg::policy_loss(lp.to(torch::kFloat), old, torch::Tensor(), adv, b.completion_mask, pg::kDapo, normaliser).loss;
  };
  if (mode == Mode::bf16_copy) {
    for (auto& p : s.params16) p.mutable_grad() = torch::Tensor();
    loss_of(*s.copy16, s.batch, s.old_logprobs, s.advantages, std::nullopt).backward();
    s.optimizer->zero_grad();
    for (std::size_t i = 0; i < s.params.size(); ++i) s.params[i].mutable_grad() = s.params16[i].grad().to(torch::kFloat);
    const double norm = torch::nn::utils::clip_grad_norm_(s.params, 1.0);
    s.optimizer->step();
    s.refresh_copy();
    return norm;
  }
  if (mode == Mode::accumulated) {
    const double n = pg::loss_normaliser(pg::kDapo.aggregation, s.batch.completion_mask);
    s.optimizer->zero_grad();
    for (std::int64_t r = 0; r < kRows; r += kRows / 4) {
      const torch::Tensor idx = torch::arange(r, r + kRows / 4, torch::kLong);
      const kaizen::TokenBatch mb = loop::select_rows(s.batch, idx);
      const torch::Tensor i = idx.to(s.old_logprobs.device());
      loss_of(*s.model, mb, s.old_logprobs.index_select(0, i), s.advantages.index_select(0, i), n).backward();
    }
    const double norm = torch::nn::utils::clip_grad_norm_(s.params, 1.0);
    s.optimizer->step();
    return norm;
  }
  torch::Tensor loss;
  if (mode == Mode::bf16) {
    loop::Bf16Compute<kaizen::lm::LlamaModel> view{s.model.get()};
    loss = loss_of(view, s.batch, s.old_logprobs, s.advantages, std::nullopt);
  } else {
    loss = loss_of(*s.model, s.batch, s.old_logprobs, s.advantages, std::nullopt);
  }
  return loop::apply_update(*s.optimizer, s.params, loss, 1.0);
}

template <Mode M>
void BM_train_step(benchmark::State& state) {
  Setup& s = setup();
  PeakMeter meter{bench_device()};
  double peak = 0.0;
  for (auto _ : state) {
    meter.start();
    benchmark::DoNotOptimize(step(s, M));
    peak = std::max(peak, meter.stop_mib());
  }
  state.counters["peak_MiB"] = peak;
}

BENCHMARK(BM_train_step<Mode::fp32>)->Name("BM_step_fp32")->Iterations(4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_train_step<Mode::bf16>)->Name("BM_step_bf16")->Iterations(4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_train_step<Mode::bf16_copy>)
    ->Name("BM_step_bf16_copy")
    ->Iterations(4)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_train_step<Mode::checkpointed>)
    ->Name("BM_step_checkpointed")
    ->Iterations(4)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_train_step<Mode::accumulated>)
    ->Name("BM_step_accumulated")
    ->Iterations(4)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---------------------------------------------------------------------------------------------------------
// --demo: the GRPO demo's setting, fp32 and bf16 from one warm start.

int run_demo(int steps, const std::string& out_dir) {
  using namespace kaizen;
  const auto t_start = tiny::begin_run(out_dir, 1, 1);
  const tasks::Arithmetic task({.min_digits = 2, .max_digits = 2, .operators = "+"});
  const tasks::CharTokenizer tokenizer;
  const tasks::HeldOutSplit<tasks::Arithmetic> split(task, 200, 1001);
  const std::vector<Prompt> held_out = tiny::held_out_prompts(split, tokenizer);
  lm::LlamaModel model(tiny::llama_config(tokenizer, {}));
  lm::LlamaSampler sampler(model, tokenizer);
  tasks::TaskVerifier<tasks::Arithmetic, tasks::CharTokenizer> verifier{&task, &tokenizer};
  SamplingParams sampling;
  sampling.max_new_tokens = 12;
  sampling.stop_tokens = {tokenizer.eos_id()};
  const CollateOptions collate{.pad_id = tokenizer.pad_id(), .vocab_size = model.config().vocab_size,
                               .padding = Padding::right, .max_length = model.config().max_position_embeddings};
  std::ofstream metrics_file(std::filesystem::path(out_dir) / "metrics.jsonl");
  const loop::JsonLinesWriter jsonl(metrics_file);

  const std::int64_t sft = tiny::warm_start(
      model, sampler, verifier, split, tokenizer, sampling, collate, 0.2, 4000, 3e-3, 1,
      [&](const tasks::Problem& p, Rng&) { return tasks::answer_tokens(p, tokenizer); }, jsonl);
  std::printf("warm start: %lld SFT steps\n", static_cast<long long>(sft));
  SamplingParams eval = sampling;
  eval.seed = 77;
  const tiny::HeldOut before = tiny::measure(sampler, verifier, std::span<const Prompt>(held_out), 4, eval);
  const loop::ParameterSnapshot start = loop::take_snapshot(model);

  struct Run {
    std::vector<double> reward, loss;
    double pass_after = 0.0, seconds = 0.0, peak_mib = 0.0;
  };
  auto source = [&](ArmId arm, Rng& rng) { return tasks::make_prompt(split.train(arm, rng), tokenizer); };
  const pg::Objective<pg::TokenRatio, pg::SymmetricClip, pg::NoKl, pg::SeqMeanTokenMean> objective{};
  auto run = [&](loop::Precision precision, std::uint64_t seed) {
    loop::restore_snapshot(model, start);
    loop::GrpoConfig grpo{.steps = steps, .prompts_per_step = 64, .group_size = 8, .epochs = 2,
                          .learning_rate = 1e-3, .warmup_steps = 20, .sampling = sampling, .seed = seed,
                          .collate = collate};
    Run r;
    const std::string name = loop::precision_name(precision);
    auto on_step = [&](const nlohmann::json& m) {
      nlohmann::json rec = m;
      rec["precision"] = name;
      rec["loop_seed"] = seed;
      jsonl(rec);
      r.reward.push_back(m["reward_mean"].get<double>());
      r.loss.push_back(m["loss"].get<double>());
    };
    std::ofstream("/proc/self/clear_refs") << "5";
    const double rss_before = static_cast<double>(status_bytes("VmRSS")) / (1 << 20);
    const auto t0 = std::chrono::steady_clock::now();
    if (precision == loop::Precision::bf16) {
      loop::Bf16Compute<lm::LlamaModel> bf16{&model};
      loop::grpo(bf16, sampler, verifier, source, objective, grpo, on_step);
    } else {
      loop::grpo(model, sampler, verifier, source, objective, grpo, on_step);
    }
    r.seconds = tiny::seconds_since(t0);
    r.peak_mib = static_cast<double>(status_bytes("VmHWM")) / (1 << 20) - rss_before;
    r.pass_after = tiny::measure(sampler, verifier, std::span<const Prompt>(held_out), 4, eval).pass_at_1;
    jsonl({{"event", "summary"}, {"precision", name}, {"loop_seed", seed}, {"pass_at_1_before", before.pass_at_1},
           {"pass_at_1_after", r.pass_after}, {"seconds", r.seconds}, {"peak_rss_above_start_MiB", r.peak_mib}});
    return r;
  };
  // fp32 and bf16 share the loop seed (same prompts, sampler seeds and shuffles: a paired comparison);
  // a second fp32 run with another loop seed measures the run-to-run noise the difference is judged against.
  const Run fp32 = run(loop::Precision::fp32, 2);
  const Run bf16 = run(loop::Precision::bf16, 2);
  const Run other = run(loop::Precision::fp32, 3);
  std::printf("step  reward_fp32  reward_bf16  reward_fp32_seed3  loss_fp32   loss_bf16\n");
  for (std::size_t i = 0; i < fp32.reward.size(); ++i)
    std::printf("%4zu  %11.3f  %11.3f  %17.3f  %10.5f  %10.5f\n", i + 1, fp32.reward[i], bf16.reward[i],
                other.reward[i], fp32.loss[i], bf16.loss[i]);
  auto last_mean = [](const std::vector<double>& v, std::size_t n) {
    std::vector<double> tail(v.end() - static_cast<std::ptrdiff_t>(std::min(n, v.size())), v.end());
    return tiny::mean_sd(tail);
  };
  const std::size_t tail = std::max<std::size_t>(1, fp32.reward.size() / 4);
  const auto [f_mean, f_sd] = last_mean(fp32.reward, tail);
  const auto [b_mean, b_sd] = last_mean(bf16.reward, tail);
  const auto [o_mean, o_sd] = last_mean(other.reward, tail);
  std::printf("reward over the last %zu steps: fp32 %.3f +- %.3f, bf16 %.3f +- %.3f, fp32 seed 3 %.3f +- %.3f "
              "(mean +- sd)\n", tail, f_mean, f_sd, b_mean, b_sd, o_mean, o_sd);
  double paired = 0.0, seeds = 0.0;
  for (std::size_t i = 0; i < fp32.reward.size(); ++i) {
    paired += std::abs(fp32.reward[i] - bf16.reward[i]) / static_cast<double>(fp32.reward.size());
    seeds += std::abs(fp32.reward[i] - other.reward[i]) / static_cast<double>(fp32.reward.size());
  }
  std::printf("mean |reward difference| per step: fp32 vs bf16 (same seed) %.4f, fp32 seed 2 vs seed 3 %.4f\n",
              paired, seeds);
  std::printf("held-out pass@1 (200 x 4): before %.3f, after fp32 %.3f, after bf16 %.3f, after fp32 seed 3 %.3f\n",
              before.pass_at_1, fp32.pass_after, bf16.pass_after, other.pass_after);
  std::printf("GRPO time: fp32 %.1f s, bf16 %.1f s; peak resident set above the run's start: fp32 %.1f MiB, bf16 %.1f MiB\n",
              fp32.seconds, bf16.seconds, fp32.peak_mib, bf16.peak_mib);
  std::printf("total %.1f s; metrics: %s\n", tiny::seconds_since(t_start),
              (std::filesystem::path(out_dir) / "metrics.jsonl").string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);  // large tensors are mmapped and unmapped: freed memory leaves the RSS
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--demo") == 0) {
      int steps = 40;
      std::string out = "out/precision_demo";
      for (int j = 1; j + 1 < argc; ++j) {
        if (std::strcmp(argv[j], "--steps") == 0) steps = std::atoi(argv[j + 1]);
        if (std::strcmp(argv[j], "--out") == 0) out = argv[j + 1];
      }
      return run_demo(steps, out);
    }
  }
  torch::set_num_threads(1);
  using kaizen::bench::Figures;
  using kaizen::bench::Results;
  return kaizen::bench::run(argc, argv, [](const Results& r, Figures& f) {
    const std::string device = bench_device().is_cuda() ? "cuda" : "cpu";
    const std::string base = "BM_step_fp32/iterations:4/real_time";
    f.figure("train_step_fp32_peak_MiB_" + device, r.counter(base, "peak_MiB"), "MiB", "fp32 step, peak memory");
    for (const char* mode : {"bf16", "bf16_copy", "checkpointed", "accumulated"}) {
      const std::string name = std::string("BM_step_") + mode + "/iterations:4/real_time";
      const std::string tag = std::string(mode) + "_" + device;
      f.figure("train_step_" + tag + "_peak_MiB", r.counter(name, "peak_MiB"), "MiB", std::string(mode) + " step, peak memory");
      f.ratio("train_step_" + tag + "_over_fp32_time", r.real_seconds(name) / r.real_seconds(base),
              std::string("time of a training step, ") + mode + " / fp32 (lower is better)");
      f.ratio("train_step_" + tag + "_over_fp32_peak_memory", r.counter(name, "peak_MiB") / r.counter(base, "peak_MiB"),
              std::string("peak memory of a training step, ") + mode + " / fp32 (lower is better)");
    }
  });
}
