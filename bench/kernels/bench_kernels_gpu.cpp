// GPU timings of kaizen's kernels and of LibTorch eager at the same shapes, with the device-to-device
// copy ceiling and the bf16 GEMM rate measured in the same run. Run by bench/gpu/run.sh:
//   bench_kernels_gpu N V H OUT.jsonl
// Every line of OUT is one JSON record {name, ms, extra_gib, floor_ms, fraction}; the same table goes to
// stdout. Times are medians of CUDA-event-timed iterations after warm-up; memory is the caching
// allocator's peak above what was allocated before the call (the inputs and outputs themselves count
// only where noted in the record name).
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <kaizen/core/rng.hpp>
#include <kaizen/kernels/runtime.hpp>
#include <kaizen/kernels/token_logprobs.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/torch/ops.hpp>
#include <kaizen/torch/ops/policy_objective.hpp>

namespace {

struct Timing {
  double ms;
  double extra_gib;
};

Timing measure(const std::function<void()>& f, int iterations = 20) {
  for (int i = 0; i < 3; ++i) f();
  torch::cuda::synchronize();
  const auto device = c10::cuda::current_device();
  c10::cuda::CUDACachingAllocator::resetPeakStats(device);
  const auto before = c10::cuda::CUDACachingAllocator::getDeviceStats(device).allocated_bytes[0].current;
  std::vector<double> ms;
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  const auto stream = c10::cuda::getCurrentCUDAStream().stream();
  for (int i = 0; i < iterations; ++i) {
    cudaEventRecord(start, stream);
    f();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float t = 0;
    cudaEventElapsedTime(&t, start, stop);
    ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  const auto peak = c10::cuda::CUDACachingAllocator::getDeviceStats(device).allocated_bytes[0].peak;
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], static_cast<double>(peak - before) / (1ULL << 30)};
}

struct Table {
  std::ofstream out;
  std::string shape;
  void row(const std::string& name, const Timing& t, double floor_ms) {
    const double fraction = floor_ms > 0 ? floor_ms / t.ms : 0.0;
    std::printf("%-58s %10.3f ms %8.3f GiB  floor %8.3f ms  %5.2f of floor\n", name.c_str(), t.ms, t.extra_gib,
                floor_ms, fraction);
    out << "{\"shape\":\"" << shape << "\",\"name\":\"" << name << "\",\"ms\":" << t.ms << ",\"extra_gib\":"
        << t.extra_gib << ",\"floor_ms\":" << floor_ms << ",\"fraction\":" << fraction << "}\n";
    out.flush();
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s N V H OUT.jsonl\n", argv[0]);
    return 2;
  }
  if (!torch::cuda::is_available()) {
    std::printf("KAIZEN_SKIP: no CUDA device is available on this machine\n");
    return 0;
  }
  const std::int64_t n = std::stoll(argv[1]);
  const std::int64_t v = std::stoll(argv[2]);
  const std::int64_t h = std::stoll(argv[3]);
  Table table{std::ofstream(argv[4], std::ios::app), "N=" + std::to_string(n) + " V=" + std::to_string(v) +
                                                          " H=" + std::to_string(h)};
  std::printf("device: %s; shape %s, bf16\n", kaizen::kernels::device_name(0).c_str(), table.shape.c_str());
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const auto bf16 = cuda.dtype(torch::kBFloat16);

  // Ceilings measured in this run.
  const auto logits = (torch::randn({n, v}, bf16) * 3).contiguous();
  const auto targets = torch::randint(0, v, {n}, cuda.dtype(torch::kInt64));
  auto copy_dst = torch::empty_like(logits);
  const Timing copy = measure([&] { copy_dst.copy_(logits); });
  const double bytes = static_cast<double>(logits.numel()) * 2.0;
  const double copy_bw = 2 * bytes / (copy.ms * 1e-3);  // read + write, bytes/s
  copy_dst = torch::Tensor();
  table.row("ceiling: device-to-device copy of the logits (R+W)", copy, 0);
  const double fwd_floor = bytes / copy_bw * 1e3;
  const double fb_floor = 3 * bytes / copy_bw * 1e3;
  std::printf("copy bandwidth %.2f TB/s; token log-prob floors: fwd %.3f ms, fwd+bwd %.3f ms\n", copy_bw / 1e12,
              fwd_floor, fb_floor);

  // (1) token log-prob.
  table.row("kaizen token_logprobs fwd", measure([&] { (void)kaizen::ops::token_logprobs(logits, targets); }),
            fwd_floor);
  table.row("kaizen token_logprobs fwd + entropy",
            measure([&] { (void)kaizen::ops::token_logprobs(logits, targets, {.with_entropy = true}); }), fwd_floor);
  table.row("kaizen token_logprobs fwd, check_targets=false (no host sync)",
            measure([&] { (void)kaizen::ops::token_logprobs(logits, targets, {.check_targets = false}); }), fwd_floor);
  {
    const auto f32 = logits.options().dtype(torch::kFloat32);
    auto lp = torch::empty({n}, f32), lse = torch::empty({n}, f32);
    table.row("kaizen kernels::token_logprobs_forward (kernel API, no allocation)", measure([&] {
                kaizen::kernels::token_logprobs_forward(logits.data_ptr(), kaizen::kernels::DType::bf16,
                                                        targets.data_ptr<std::int64_t>(), n, v, v, n, n * v, 1.0f,
                                                        lp.data_ptr<float>(), lse.data_ptr<float>(), nullptr,
                                                        c10::cuda::getCurrentCUDAStream().stream());
              }),
              fwd_floor);
  }
  table.row("kaizen token_logprobs fwd, T=0.7",
            measure([&] { (void)kaizen::ops::token_logprobs(logits, targets, {.temperature = 0.7}); }), fwd_floor);
  {
    auto x = logits.clone().requires_grad_(true);
    table.row("kaizen token_logprobs fwd+bwd (new grad buffer)", measure([&] {
                x.mutable_grad() = torch::Tensor();
                kaizen::ops::token_logprobs(x, targets).logprobs.sum().backward();
              }),
              fb_floor);
    table.row("kaizen token_logprobs fwd+bwd, in place", measure([&] {
                x.mutable_grad() = torch::Tensor();
                kaizen::ops::token_logprobs(x, targets, {.inplace_backward = true}).logprobs.sum().backward();
              }),
              fb_floor);
    table.row("torch eager log_softmax+gather fwd", measure([&] {
                torch::NoGradGuard guard;
                (void)torch::log_softmax(logits.to(torch::kFloat32), -1).gather(-1, targets.unsqueeze(-1));
              }),
              fwd_floor);
    table.row("torch eager log_softmax+gather fwd+bwd", measure([&] {
                x.mutable_grad() = torch::Tensor();
                torch::log_softmax(x.to(torch::kFloat32), -1).gather(-1, targets.unsqueeze(-1)).sum().backward();
              }),
              fb_floor);
  }

  // (2) fused linear + log-prob, fwd + bwd; floor = 3 GEMMs at the bf16 rate measured here.
  {
    const auto a = torch::randn({8192, 8192}, bf16);
    const Timing gemm = measure([&] { (void)torch::mm(a, a); }, 10);
    const double rate = 2.0 * 8192.0 * 8192.0 * 8192.0 / (gemm.ms * 1e-3);
    std::printf("bf16 GEMM 8192^3: %.1f TFLOP/s\n", rate / 1e12);
    const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(h) * static_cast<double>(v);
    const double floor3 = 3 * flops / rate * 1e3;
    auto hidden = (torch::randn({n, h}, bf16) * 0.05).requires_grad_(true);
    auto weight = (torch::randn({v, h}, bf16) * 0.05).requires_grad_(true);
    for (const std::int64_t chunk : {0, 1024, 4096}) {
      table.row("kaizen fused_linear_logprobs fwd+bwd chunk=" + std::to_string(chunk) + "",
                measure([&] {
                  hidden.mutable_grad() = torch::Tensor();
                  weight.mutable_grad() = torch::Tensor();
                  kaizen::ops::fused_linear_logprobs(hidden, weight, targets, {.chunk_size = chunk})
                      .logprobs.sum()
                      .backward();
                }, 5),
                floor3);
    }
    {
      weight.requires_grad_(false);
      table.row("kaizen fused_linear_logprobs fwd+bwd, frozen lm_head (dW skipped; floor: 3 GEMMs)",
                measure([&] {
                  hidden.mutable_grad() = torch::Tensor();
                  kaizen::ops::fused_linear_logprobs(hidden, weight, targets).logprobs.sum().backward();
                }, 5),
                floor3);
      weight.requires_grad_(true);
    }
    table.row("torch eager matmul+log_softmax+gather fwd+bwd (floor: 3 GEMMs)", measure([&] {
                hidden.mutable_grad() = torch::Tensor();
                weight.mutable_grad() = torch::Tensor();
                torch::log_softmax(hidden.matmul(weight.t()).to(torch::kFloat32), -1)
                    .gather(-1, targets.unsqueeze(-1))
                    .sum()
                    .backward();
              }, 5),
              floor3);
  }

  // (4) sampling at the decode batch 128, and group statistics.
  {
    const auto dec = (torch::randn({128, v}, bf16) * 3).contiguous();
    kaizen::Rng rng(1);
    const double read_floor = static_cast<double>(dec.numel()) * 2.0 / copy_bw * 1e3;
    table.row("kaizen sample_tokens [128,V] T=0.7 top-p 0.9",
              measure([&] { (void)kaizen::ops::sample_tokens(dec, {.temperature = 0.7, .top_p = 0.9}, rng); }),
              read_floor);
    table.row("kaizen sample_tokens [128,V] T=0.7 top-k 50",
              measure([&] { (void)kaizen::ops::sample_tokens(dec, {.temperature = 0.7, .top_k = 50}, rng); }),
              read_floor);
    table.row("kaizen sample_tokens [128,V] T=0.7 min-p 0.05",
              measure([&] { (void)kaizen::ops::sample_tokens(dec, {.temperature = 0.7, .min_p = 0.05}, rng); }),
              read_floor);
    table.row("kaizen sample_tokens [128,V] T=0.7 top-k 50 + top-p 0.9",
              measure([&] { (void)kaizen::ops::sample_tokens(dec, {.temperature = 0.7, .top_k = 50, .top_p = 0.9}, rng); }),
              read_floor);
    table.row("kaizen sample_tokens [128,V] T=0.7 (no filter)",
              measure([&] { (void)kaizen::ops::sample_tokens(dec, {.temperature = 0.7}, rng); }), read_floor);
    table.row("torch sort+cumsum+multinomial top-p 0.9 [128,V]", measure([&] {
                const auto probs = torch::softmax(dec.to(torch::kFloat32) / 0.7, -1);
                const auto [sorted, idx] = probs.sort(-1, /*descending=*/true);
                const auto cum = sorted.cumsum(-1);
                const auto masked = sorted.masked_fill(cum - sorted >= 0.9, 0.0);
                const auto pick = torch::multinomial(masked, 1);
                (void)idx.gather(-1, pick);
              }),
              read_floor);
    const auto rewards = torch::randn({64 * 16}, cuda.dtype(torch::kFloat32));
    const auto offsets = torch::arange(0, 64 * 16 + 1, 16, cuda.dtype(torch::kInt64));
    table.row("kaizen group_stats 64 groups x 16 (includes host-side checks)",
              measure([&] { (void)kaizen::ops::group_stats(rewards, offsets); }), 0);
  }

  // (5) the fused policy objective on fp32 [64, 4096] per-token inputs, forward + backward, against
  // policy_loss (LibTorch eager). Floor: read log-probs, old, ref (fp32) and the bool mask, write the
  // gradient (17 bytes per token) at the copy bandwidth; both include one metrics copy to the host.
  {
    namespace pg = kaizen::policy_gradient;
    const auto f32 = cuda.dtype(torch::kFloat32);
    const auto old = -torch::rand({64, 4096}, f32) * 3 - 0.1;
    auto lp = (old + torch::randn({64, 4096}, f32) * 0.2).requires_grad_(true);
    const auto ref = old + torch::randn({64, 4096}, f32) * 0.2;
    const auto adv = torch::randn({64}, f32);
    const auto mask = torch::arange(4096, cuda.dtype(torch::kInt64)).unsqueeze(0) <
                      torch::randint(1024, 4097, {64, 1}, cuda.dtype(torch::kInt64));
    const double floor = 17.0 * 64 * 4096 / copy_bw * 1e3;
    const auto objective_row = [&](const std::string& name, const auto& objective) {
      table.row("kaizen policy_objective " + name + " [64,4096] fwd+bwd", measure([&] {
                  lp.mutable_grad() = torch::Tensor();
                  kaizen::ops::policy_objective(lp, old, ref, adv, mask, objective).loss.backward();
                }),
                floor);
      table.row("torch eager policy_loss " + name + " [64,4096] fwd+bwd", measure([&] {
                  lp.mutable_grad() = torch::Tensor();
                  pg::policy_loss(lp, old, ref, adv, mask, objective).loss.backward();
                }),
                floor);
    };
    objective_row("GRPO", pg::kGrpo);
    objective_row("DAPO", pg::kDapo);
  }
  return 0;
}
