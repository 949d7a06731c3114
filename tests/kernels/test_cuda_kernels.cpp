// CUDA kernels behind kaizen::ops, against float64 references and the CPU path (label cuda: Skipped
// where no GPU is present). Outputs are poisoned through the caching allocator: a NaN-filled block of
// the output's size is freed just before each call, so a kernel that skips an element leaves a NaN.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include <kaizen/core/rng.hpp>
#include <kaizen/torch/ops.hpp>
#include <support/cuda.hpp>

namespace {

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kCPU, torch::kFloat64) - b.to(torch::kCPU, torch::kFloat64)).abs().max().item<double>();
}

/// Fills and frees blocks of the given byte sizes so the next allocations of those sizes hold NaN.
void poison_allocator(std::initializer_list<std::int64_t> bytes) {
  for (const auto b : bytes) {
    auto t = torch::full({(b + 3) / 4}, std::numeric_limits<float>::quiet_NaN(),
                         torch::TensorOptions().device(torch::kCUDA));
    (void)t;
  }
}

struct Reference {
  torch::Tensor logprobs, entropy;
};

Reference reference(const torch::Tensor& logits, const torch::Tensor& targets, double temperature) {
  const auto lp = torch::log_softmax(logits.to(torch::kFloat64) / temperature, -1);
  const auto p = lp.exp();
  return {lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1),
          -torch::where(p > 0, p * lp, torch::zeros_like(p)).sum(-1)};
}

}  // namespace

TEST_CASE("CUDA token_logprobs forward and backward match float64 at odd sizes and every dtype",
          "[cuda][token_logprobs]") {
  KAIZEN_REQUIRE_GPU();
  const std::vector<std::pair<std::int64_t, std::int64_t>> shapes = {{1, 1}, {1, 7}, {3, 33}, {5, 1003}, {17, 32000},
                                                                      {4, 151936}, {2, 151937}};
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kFloat16}) {
    for (const auto& [n, v] : shapes) {
      for (const double temperature : {1.0, 0.7}) {
        CAPTURE(dtype, n, v, temperature);
        torch::manual_seed(n * 31 + v);
        const auto cpu_logits = (torch::randn({n, v}, torch::kFloat64) * 3).to(dtype);
        const auto cpu_targets = torch::randint(0, v, {n}, torch::kInt64);
        const auto logits = cpu_logits.cuda();
        const auto targets = cpu_targets.cuda();
        poison_allocator({n * 4, n * 4, n * 4});
        const auto got = kaizen::ops::token_logprobs(logits, targets, {.temperature = temperature, .with_entropy = true});
        const auto want = reference(cpu_logits, cpu_targets, temperature);
        CHECK(max_abs_diff(got.logprobs, want.logprobs) < 5e-5);
        CHECK(max_abs_diff(got.entropy, want.entropy) < 5e-5);

        const auto g_lp = torch::randn({n}, torch::kFloat64);
        const auto g_h = torch::randn({n}, torch::kFloat64);
        auto x = logits.clone().requires_grad_(true);
        poison_allocator({n * v * static_cast<std::int64_t>(logits.element_size())});
        const auto r = kaizen::ops::token_logprobs(x, targets, {.temperature = temperature, .with_entropy = true});
        ((r.logprobs.to(torch::kFloat64) * g_lp.cuda()).sum() + (r.entropy.to(torch::kFloat64) * g_h.cuda()).sum())
            .backward();
        auto xr = cpu_logits.to(torch::kFloat64).requires_grad_(true);
        const auto ref = reference(xr, cpu_targets, temperature);
        ((ref.logprobs * g_lp).sum() + (ref.entropy * g_h).sum()).backward();
        const auto diff = (x.grad().to(torch::kCPU, torch::kFloat64) - xr.grad()).abs();
        const double rel = dtype == torch::kFloat32 ? 1e-5 : (dtype == torch::kBFloat16 ? 1.0 / 128 : 1.0 / 1024);
        CHECK((diff <= xr.grad().abs() * rel + 1e-6).all().item<bool>());
      }
    }
  }
}

TEST_CASE("CUDA token_logprobs in place, misaligned rows and a CPU-equal result", "[cuda][token_logprobs]") {
  KAIZEN_REQUIRE_GPU();
  torch::manual_seed(2);
  const auto base = (torch::randn({9, 4099}) * 2).to(torch::kBFloat16);
  const auto targets = torch::randint(0, 4099, {9}, torch::kInt64);
  // Rows of odd length start at odd element offsets: the scalar head path runs on every row but the first.
  const auto cpu = kaizen::ops::token_logprobs(base, targets, {.with_entropy = true});
  const auto gpu = kaizen::ops::token_logprobs(base.cuda(), targets.cuda(), {.with_entropy = true});
  CHECK(max_abs_diff(cpu.logprobs, gpu.logprobs) < 2e-5);
  CHECK(max_abs_diff(cpu.entropy, gpu.entropy) < 2e-5);
  // A column slice: row stride > V, misaligned start.
  const auto wide = torch::randn({6, 1001}).cuda();
  const auto sliced = wide.narrow(1, 3, 997);
  const auto ids = torch::randint(0, 997, {6}, torch::kInt64);
  CHECK(max_abs_diff(kaizen::ops::token_logprobs(sliced, ids.cuda()).logprobs,
                     reference(sliced.cpu(), ids, 1.0).logprobs) < 2e-5);
  // In place: the gradient lands in the logits buffer and equals the out-of-place one.
  auto a = base.cuda().requires_grad_(true);
  kaizen::ops::token_logprobs(a, targets.cuda()).logprobs.sum().backward();
  auto b = base.cuda().requires_grad_(true);
  kaizen::ops::token_logprobs(b, targets.cuda(), {.inplace_backward = true}).logprobs.sum().backward();
  CHECK(b.grad().data_ptr() == b.data_ptr());
  CHECK(max_abs_diff(a.grad(), b.grad()) == 0.0);
}

TEST_CASE("CUDA token_logprobs with N times V above 2^31 uses 64-bit offsets", "[cuda][token_logprobs]") {
  KAIZEN_REQUIRE_GPU();
  const std::int64_t n = 16400;
  const std::int64_t v = 131072;  // n·v = 2.15e9 > 2^31
  torch::manual_seed(4);
  const auto logits = torch::randn({n, v}, torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16));
  const auto targets = torch::randint(0, v, {n}, torch::TensorOptions().device(torch::kCUDA).dtype(torch::kInt64));
  const auto got = kaizen::ops::token_logprobs(logits, targets);
  // Check the last rows (beyond the 2^31-element boundary) against float64 on the CPU.
  const auto tail = logits.narrow(0, n - 8, 8).cpu();
  const auto want = reference(tail, targets.narrow(0, n - 8, 8).cpu(), 1.0);
  CHECK(max_abs_diff(got.logprobs.narrow(0, n - 8, 8), want.logprobs) < 5e-5);
}

TEST_CASE("CUDA fused_linear_logprobs matches the CPU op in float32", "[cuda][fused_linear]") {
  KAIZEN_REQUIRE_GPU();
  torch::manual_seed(5);
  const auto hidden = torch::randn({37, 64});
  const auto weight = torch::randn({1001, 64}) * 0.2;
  const auto targets = torch::randint(0, 1001, {37}, torch::kInt64);
  auto hc = hidden.clone().requires_grad_(true);
  auto wc = weight.clone().requires_grad_(true);
  const auto cpu = kaizen::ops::fused_linear_logprobs(hc, wc, targets, {.with_entropy = true, .chunk_size = 8});
  (cpu.logprobs.sum() + 0.5 * cpu.entropy.sum()).backward();
  auto hg = hidden.cuda().requires_grad_(true);
  auto wg = weight.cuda().requires_grad_(true);
  const auto gpu =
      kaizen::ops::fused_linear_logprobs(hg, wg, targets.cuda(), {.with_entropy = true, .chunk_size = 8});
  (gpu.logprobs.sum() + 0.5 * gpu.entropy.sum()).backward();
  // TF32 may be used by cuBLAS for float32 GEMMs: compare within its precision.
  CHECK(max_abs_diff(cpu.logprobs, gpu.logprobs) < 5e-2);
  CHECK(max_abs_diff(cpu.entropy, gpu.entropy) < 5e-2);
  CHECK(max_abs_diff(hc.grad(), hg.grad()) < 5e-2);
  CHECK(max_abs_diff(wc.grad(), wg.grad()) < 5e-2);
}

TEST_CASE("CUDA sample_tokens agrees with the CPU sampler given the same draws", "[cuda][sample_tokens]") {
  KAIZEN_REQUIRE_GPU();
  torch::manual_seed(6);
  const auto logits = torch::randn({64, 32000}) * 3;
  for (const auto& params : {kaizen::SamplingParams{.temperature = 0.7, .top_p = 0.9},
                             kaizen::SamplingParams{.temperature = 1.0, .top_k = 50},
                             kaizen::SamplingParams{.temperature = 0.8, .top_k = 100, .top_p = 0.95, .min_p = 0.02},
                             kaizen::SamplingParams{.temperature = 1.2}}) {
    kaizen::Rng a(9), b(9);
    const auto cpu = kaizen::ops::sample_tokens(logits, params, a);
    poison_allocator({64 * 8, 64 * 4, 64 * 4});
    const auto gpu = kaizen::ops::sample_tokens(logits.cuda(), params, b);
    // Float summation order differs, so a draw sitting on a CDF boundary may move by one token.
    const double agree = (cpu.ids == gpu.ids.cpu()).to(torch::kFloat64).mean().item<double>();
    CHECK(agree > 0.95);
    const auto same = cpu.ids == gpu.ids.cpu();
    CHECK(max_abs_diff(cpu.tempered_logprobs.masked_select(same), gpu.tempered_logprobs.cpu().masked_select(same)) < 5e-5);
    CHECK(max_abs_diff(cpu.sampling_logprobs.masked_select(same), gpu.sampling_logprobs.cpu().masked_select(same)) <
          5e-5);
  }
  kaizen::Rng rng(1);
  const auto greedy = kaizen::ops::sample_tokens(logits.cuda(), {.top_k = 1}, rng);
  CHECK(torch::equal(greedy.ids.cpu(), logits.argmax(-1)));
}

TEST_CASE("CUDA group_stats matches the CPU path", "[cuda][group_stats]") {
  KAIZEN_REQUIRE_GPU();
  torch::manual_seed(7);
  const auto values = torch::randn({1000}) * 3;
  const auto offsets = torch::tensor({0, 2, 40, 41 + 59, 300, 1000}, torch::kInt64);
  for (const bool unbiased : {true, false}) {
    const kaizen::ops::GroupStatsOptions options{.unbiased = unbiased, .epsilon = 1e-6, .scale = true};
    const auto cpu = kaizen::ops::group_stats(values, offsets, options);
    poison_allocator({5 * 4, 5 * 4, 1000 * 4});
    const auto gpu = kaizen::ops::group_stats(values.cuda(), offsets.cuda(), options);
    CHECK(max_abs_diff(cpu.mean, gpu.mean) < 1e-6);
    CHECK(max_abs_diff(cpu.std, gpu.std) < 1e-5);
    CHECK(max_abs_diff(cpu.advantages, gpu.advantages) < 1e-5);
  }
}

TEST_CASE("CUDA ops reject a device mismatch and float64 logits", "[cuda][token_logprobs]") {
  KAIZEN_REQUIRE_GPU();
  const auto logits = torch::randn({2, 5}).cuda();
  CHECK_THROWS_WITH(kaizen::ops::token_logprobs(logits, torch::zeros({2}, torch::kInt64)),
                    Catch::StartsWith("ops::token_logprobs: expected targets on the logits' device cuda:0, got cpu"));
  CHECK_THROWS_WITH(kaizen::ops::token_logprobs(logits.to(torch::kFloat64), torch::zeros({2}, torch::kInt64).cuda()),
                    Catch::StartsWith("ops::token_logprobs: the CUDA kernels take float32, bfloat16 or float16 logits"));
}
