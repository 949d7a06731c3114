// Data-parallel costs on c10d Gloo, run as a job (every rank runs this program):
//   scripts/launch_local.sh 2 build/bench/distributed/bench_distributed
//
//   BM_allreduce_bucketed/<MiB>  GradientBuckets::all_reduce over 64 gradient tensors of a model's mix of shapes
//                                totalling <MiB> MiB (float32), 25 MiB buckets: the gradients are views of the
//                                buckets' buffers (attached on the first iteration), so each iteration is one
//                                in-place collective per bucket and no copy
//   BM_allreduce_raw/<MiB>       one raw c10d allreduce (ProcessGroupGloo::allreduce + wait) of one flat tensor of the
//                                same bytes: the engine's own speed, no flatten
//   BM_backward_only/<MiB>       forward + backward of a 16-layer tanh MLP whose weights total <MiB> MiB (compute)
//   BM_backward_then_raw/<MiB>   the same, then one raw c10d allreduce of a flat tensor of the same bytes (no overlap)
//   BM_backward_overlapped/<MiB> the same through GradientBuckets::arm / finish, 4 MiB buckets: backward accumulates
//                                into the buckets and each full bucket's all-reduce starts while backward goes on
//   BM_grpo_step_one_process     one GRPO step (8 prompts x 4 samples, tiny Llama) on rank 0 alone (SingleProcess,
//                                the other ranks wait), the data-parallel stages with one rank
//   BM_grpo_step_data_parallel   the same step with the prompts and mini-batches split over every rank
// Figures: allreduce_bucketed_over_raw (raw time / bucketed time: 1 = the bucketing costs nothing, goal >= 0.9),
// overlap_speedup (backward_then_raw / backward_overlapped), overlap_hidden_fraction (share of the all-reduce time
// hidden behind backward: (then_raw - overlapped) / (then_raw - backward_only)),
// grpo_speedup (one-process time / data-parallel time) and grpo_parallel_efficiency (speedup / ranks).
// Iteration counts are fixed: every rank must issue the same collectives.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <kaizen/distributed/c10d.hpp>
#include <kaizen/distributed/communicator.hpp>
#include <kaizen/distributed/data_parallel.hpp>
#include <kaizen/distributed/single_process.hpp>
#include <kaizen/loop/grpo.hpp>
#include <kaizen/models/llama.hpp>
#include <kaizen/models/llama_sampler.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/tasks/arithmetic.hpp>
#include <kaizen/tasks/problem.hpp>
#include <kaizen/tasks/tokenizer.hpp>

#include <support/figures.hpp>

namespace {

namespace kd = kaizen::distributed;

std::unique_ptr<kd::Communicator> g_comm;

/// 64 float32 tensors in a transformer's proportions (embedding-sized, square, rectangular, vectors) scaled to
/// `bytes` in total.
std::vector<torch::Tensor> gradient_like(std::int64_t bytes) {
  const std::int64_t floats = bytes / 4;
  const std::vector<double> shares{0.12, 0.03, 0.03, 0.06, 0.0005};  // emb, q, k, mlp, norm (per layer below)
  std::vector<torch::Tensor> out;
  std::int64_t used = 0;
  out.push_back(torch::zeros({static_cast<std::int64_t>(floats * shares[0])}, torch::requires_grad()));
  used += out.back().numel();
  const std::int64_t per = (floats - used) / 63;
  for (int i = 0; i < 63; ++i) {
    const std::int64_t n = i == 62 ? floats - used : std::max<std::int64_t>(1, per * (1 + (i % 3)) / 2);
    out.push_back(torch::zeros({n}, torch::requires_grad()));
    used += n;
  }
  for (auto& p : out) p.mutable_grad() = torch::randn_like(p);
  return out;
}

void BM_allreduce_bucketed(benchmark::State& state) {
  if (g_comm->world_size() < 2) {
    state.SkipWithError("needs >= 2 ranks: run under scripts/launch_local.sh 2");
    return;
  }
  const std::int64_t bytes = state.range(0) << 20;
  std::vector<torch::Tensor> params = gradient_like(bytes);
  kd::GradientBuckets buckets(*g_comm, params);
  g_comm->barrier();
  for (auto _ : state) buckets.all_reduce(kd::ReduceOp::sum);
  state.SetBytesProcessed(state.iterations() * bytes);
  state.counters["buckets"] = static_cast<double>(buckets.bucket_count());
}

void BM_allreduce_raw(benchmark::State& state) {
  auto* c10d = dynamic_cast<kd::C10dCommunicator*>(g_comm.get());
  if (c10d == nullptr) {
    state.SkipWithError("needs >= 2 ranks: run under scripts/launch_local.sh 2");
    return;
  }
  const std::int64_t bytes = state.range(0) << 20;
  torch::Tensor flat = torch::randn({bytes / 4});
  c10d->barrier();
  for (auto _ : state) c10d->wait(c10d->all_reduce_async(flat));
  state.SetBytesProcessed(state.iterations() * bytes);
}

/// A 16-layer tanh MLP of square float32 weights totalling `mib` MiB, and its input.
struct Mlp {
  std::vector<torch::Tensor> weights;
  torch::Tensor x;
  explicit Mlp(std::int64_t mib) {
    const auto d = static_cast<std::int64_t>(std::sqrt(static_cast<double>((mib << 20) / 4 / 16)));
    torch::manual_seed(3);
    for (int l = 0; l < 16; ++l) weights.push_back((torch::randn({d, d}) / std::sqrt(static_cast<double>(d))).requires_grad_());
    x = torch::randn({64, d});
  }
  [[nodiscard]] std::int64_t bytes() const { return 16 * weights.front().numel() * 4; }
  void backward() {
    torch::Tensor h = x;
    for (const auto& w : weights) h = torch::tanh(h.matmul(w));
    h.sum().backward();
  }
  void zero_grad() {
    for (auto& w : weights) w.mutable_grad() = torch::Tensor();
  }
};

void BM_backward_only(benchmark::State& state) {
  Mlp mlp(state.range(0));
  g_comm->barrier();
  for (auto _ : state) {
    mlp.zero_grad();
    mlp.backward();
  }
}

void BM_backward_then_raw(benchmark::State& state) {
  auto* c10d = dynamic_cast<kd::C10dCommunicator*>(g_comm.get());
  if (c10d == nullptr) {
    state.SkipWithError("needs >= 2 ranks: run under scripts/launch_local.sh 2");
    return;
  }
  Mlp mlp(state.range(0));
  torch::Tensor flat = torch::randn({mlp.bytes() / 4});
  c10d->barrier();
  for (auto _ : state) {
    mlp.zero_grad();
    mlp.backward();
    c10d->wait(c10d->all_reduce_async(flat));
  }
  state.SetBytesProcessed(state.iterations() * mlp.bytes());
}

void BM_backward_overlapped(benchmark::State& state) {
  if (g_comm->world_size() < 2) {
    state.SkipWithError("needs >= 2 ranks: run under scripts/launch_local.sh 2");
    return;
  }
  Mlp mlp(state.range(0));
  kd::GradientBuckets buckets(*g_comm, mlp.weights, 4LL << 20);
  g_comm->barrier();
  for (auto _ : state) {
    mlp.zero_grad();
    buckets.arm();
    mlp.backward();
    buckets.finish();
  }
  state.SetBytesProcessed(state.iterations() * mlp.bytes());
  state.counters["buckets"] = static_cast<double>(buckets.bucket_count());
}

struct GrpoBench {
  kaizen::tasks::CharTokenizer tokenizer;
  kaizen::tasks::Arithmetic task{{.min_digits = 1, .max_digits = 2, .operators = "+"}};
  kaizen::lm::LlamaModel model = make_model(tokenizer);

  static kaizen::lm::LlamaModel make_model(const kaizen::tasks::CharTokenizer& tokenizer) {
    kaizen::lm::LlamaConfig c;
    c.vocab_size = tokenizer.vocab_size();
    c.hidden_size = 128;
    c.intermediate_size = 256;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.max_position_embeddings = 32;
    torch::manual_seed(1);
    return kaizen::lm::LlamaModel(c);
  }

  /// Runs `steps` GRPO steps over `comm` from the current weights.
  void steps(kd::Communicator& comm, std::int64_t steps, std::uint64_t seed) {
    kaizen::lm::LlamaSampler sampler(model, tokenizer.pad_id());
    auto reward = [this](const kaizen::Prompt&, const kaizen::Completion& c) {
      const std::string text = tokenizer.decode(c.tokens);
      double digits = 0.0;
      for (char ch : text) digits += (ch >= '0' && ch <= '9') ? 1.0 : 0.0;
      return c.tokens.empty() ? 0.0 : digits / static_cast<double>(c.tokens.size());
    };
    auto source = [this](kaizen::ArmId arm, kaizen::Rng& rng) {
      return kaizen::tasks::make_prompt(task.generate(arm, rng), tokenizer);
    };
    kaizen::SamplingParams sampling;
    sampling.max_new_tokens = 8;
    sampling.stop_tokens = {tokenizer.eos_id()};
    kaizen::loop::GrpoConfig config{.steps = steps, .prompts_per_step = 8, .group_size = 4, .epochs = 1,
                                    .learning_rate = 1e-3, .sampling = sampling, .seed = seed,
                                    .collate = {.pad_id = tokenizer.pad_id(), .vocab_size = tokenizer.vocab_size(),
                                                .max_length = 32}};
    config.communicator = &comm;
    const auto objective = kaizen::policy_gradient::Objective<kaizen::policy_gradient::TokenRatio,
                                                              kaizen::policy_gradient::SymmetricClip>{};
    (void)kaizen::loop::grpo(model, sampler, reward, source, objective, config);
  }
};

void BM_grpo_step_one_process(benchmark::State& state) {
  if (g_comm->rank() != 0) {
    state.SkipWithError("rank 0 measures the one-process step");
    return;
  }
  GrpoBench bench;
  kd::SingleProcess one;
  bench.steps(one, 1, 0);  // warm-up
  std::uint64_t seed = 1;
  for (auto _ : state) bench.steps(one, 1, seed++);
}

void BM_grpo_step_data_parallel(benchmark::State& state) {
  GrpoBench bench;
  g_comm->barrier();  // rank 0 may still be in the one-process benchmark
  bench.steps(*g_comm, 1, 0);
  std::uint64_t seed = 1;
  for (auto _ : state) bench.steps(*g_comm, 1, seed++);
}

BENCHMARK(BM_allreduce_bucketed)->Arg(4)->Arg(64)->Iterations(20)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_allreduce_raw)->Arg(4)->Arg(64)->Iterations(20)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_backward_only)->Arg(16)->Iterations(10)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_backward_then_raw)->Arg(16)->Iterations(10)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_backward_overlapped)->Arg(16)->Iterations(10)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_grpo_step_one_process)->Iterations(5)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_grpo_step_data_parallel)->Iterations(5)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  kd::C10dOptions options;
  options.backend = "gloo";
  g_comm = kd::make_communicator(options);
  const double ranks = g_comm->world_size();
  return kaizen::bench::run(argc, argv, [ranks](const kaizen::bench::Results& r, kaizen::bench::Figures& f) {
    for (const char* size : {"4", "64"}) {
      const std::string b = std::string("BM_allreduce_bucketed/") + size + "/iterations:20/real_time";
      const std::string w = std::string("BM_allreduce_raw/") + size + "/iterations:20/real_time";
      f.ratio(std::string("allreduce_bucketed_over_raw_") + size + "mib", r.real_seconds(w) / r.real_seconds(b),
              std::string("raw c10d allreduce time / bucketed gradient all-reduce time, ") + size +
                  " MiB float32 (1 = no overhead; goal >= 0.9)");
    }
    const double compute = r.real_seconds("BM_backward_only/16/iterations:10/real_time");
    const double serial = r.real_seconds("BM_backward_then_raw/16/iterations:10/real_time");
    const double overlapped = r.real_seconds("BM_backward_overlapped/16/iterations:10/real_time");
    f.ratio("overlap_speedup", serial / overlapped,
            "(backward, then a raw all-reduce of the same bytes) / backward with bucketed all-reduces overlapped, "
            "16 MiB MLP, 4 MiB buckets (> 1: the overlap pays)");
    f.ratio("overlap_hidden_fraction", (serial - overlapped) / (serial - compute),
            "share of the all-reduce time hidden behind backward (1 = all of it)");
    const double one = r.real_seconds("BM_grpo_step_one_process/iterations:5/real_time");
    const double dp = r.real_seconds("BM_grpo_step_data_parallel/iterations:5/real_time");
    f.ratio("grpo_speedup", one / dp, "one-process GRPO step time / data-parallel step time on the job's ranks");
    f.ratio("grpo_parallel_efficiency", one / dp / ranks, "speedup / number of ranks");
  });
}
