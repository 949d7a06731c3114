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

#if KAIZEN_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <kaizen/kernels/sampling.hpp>
#include <kaizen/kernels/token_logprobs.hpp>
#endif

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

TEST_CASE("CUDA token_logprobs with N times V above 2^31 uses 64-bit offsets", "[cuda][token_logprobs][heavy]") {
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

// ---- second pass (kernel-review.md): NaN, masks, strides, streams, devices, gradients, sampler draws ----

namespace {
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

torch::TensorOptions cuda_opts(torch::ScalarType dtype) { return torch::TensorOptions().device(torch::kCUDA).dtype(dtype); }
}  // namespace

TEST_CASE("CUDA token_logprobs NaN, -inf and all-masked rows as on the CPU", "[cuda][token_logprobs]") {
  KAIZEN_REQUIRE_GPU();
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kFloat16}) {
    CAPTURE(dtype);
    torch::manual_seed(13);
    auto x = torch::randn({6, 4099}) * 3;
    x[0][17] = kNaN;                          // one NaN logit: NaN row (the CPU test's rule)
    x[1].narrow(0, 0, 4000).fill_(kNegInf);   // mostly masked, finite result
    x[2].fill_(kNegInf);                      // all masked: NaN log-prob and entropy
    x[3].fill_(kNaN);                         // all NaN
    x[4][4098] = kNaN;                        // NaN in the scalar tail
    x[5].narrow(0, 0, 8).fill_(kNaN);         // a whole vector of NaN in one thread's share
    const auto cpu_x = x.to(dtype);
    auto targets = torch::randint(4000, 4099, {6}, torch::kInt64);
    const auto cpu = kaizen::ops::token_logprobs(cpu_x, targets, {.with_entropy = true});
    const auto gpu = kaizen::ops::token_logprobs(cpu_x.cuda(), targets.cuda(), {.with_entropy = true});
    const auto gl = gpu.logprobs.cpu();
    const auto ge = gpu.entropy.cpu();
    for (const int r : {0, 2, 3, 4, 5}) {
      CAPTURE(r);
      CHECK(std::isnan(gl[r].item<float>()));
      CHECK(std::isnan(ge[r].item<float>()));
    }
    for (const int r : {0, 4, 5}) CHECK(std::isnan(cpu.logprobs[r].item<float>()));  // the CPU rule for NaN
    CHECK(std::abs(gl[1].item<float>() - cpu.logprobs[1].item<float>()) < 5e-5);
    CHECK(std::abs(ge[1].item<float>() - cpu.entropy[1].item<float>()) < 5e-5);
    // The gradient of a NaN row is NaN too (through the saved LSE), finite elsewhere.
    auto xg = cpu_x.cuda().requires_grad_(true);
    kaizen::ops::token_logprobs(xg, targets.cuda()).logprobs.narrow(0, 0, 2).sum().backward();
    CHECK(torch::isnan(xg.grad()[0]).all().item<bool>());
    CHECK(torch::isfinite(xg.grad()[1]).all().item<bool>());
  }
}

TEST_CASE("CUDA token_logprobs backward with N times V above 2^31", "[cuda][token_logprobs][heavy]") {
  KAIZEN_REQUIRE_GPU();
  const std::int64_t n = 16400;
  const std::int64_t v = 131075;  // odd V: heads and tails at offsets beyond 2^31
  torch::manual_seed(14);
  auto logits = torch::randn({n, v}, cuda_opts(torch::kBFloat16)).requires_grad_(true);
  const auto targets = torch::randint(0, v, {n}, cuda_opts(torch::kInt64));
  const auto out = kaizen::ops::token_logprobs(logits, targets, {.temperature = 0.9, .with_entropy = true});
  const auto g_lp = torch::randn({n}, cuda_opts(torch::kFloat32));
  const auto g_h = torch::randn({n}, cuda_opts(torch::kFloat32));
  torch::autograd::backward({out.logprobs, out.entropy}, {g_lp, g_h});
  const auto tail = logits.detach().narrow(0, n - 4, 4).cpu().to(torch::kFloat64).requires_grad_(true);
  const auto lp = torch::log_softmax(tail / 0.9, -1);
  const auto ent = -(lp.exp() * lp).sum(-1);
  const auto t_tail = targets.narrow(0, n - 4, 4).cpu();
  torch::autograd::backward({lp.gather(-1, t_tail.unsqueeze(-1)).squeeze(-1), ent},
                            {g_lp.narrow(0, n - 4, 4).cpu().to(torch::kFloat64), g_h.narrow(0, n - 4, 4).cpu().to(torch::kFloat64)});
  const double scale = tail.grad().abs().max().item<double>();
  CHECK(max_abs_diff(logits.grad().narrow(0, n - 4, 4), tail.grad()) < 0.01 * scale + 1e-6);
}

TEST_CASE("CUDA ops on a non-default stream and a non-current device", "[cuda][token_logprobs]") {
  KAIZEN_REQUIRE_GPU();
  torch::manual_seed(15);
  const auto x = (torch::randn({33, 5003}) * 2).to(torch::kBFloat16);
  const auto t = torch::randint(0, 5003, {33}, torch::kInt64);
  const auto want = kaizen::ops::token_logprobs(x, t, {.with_entropy = true});
#if KAIZEN_WITH_CUDA
  {
    const auto stream = c10::cuda::getStreamFromPool();
    const c10::cuda::CUDAStreamGuard guard(stream);
    const auto xs = x.cuda();
    const auto ts = t.cuda();
    const auto got = kaizen::ops::token_logprobs(xs, ts, {.with_entropy = true});
    kaizen::Rng rng(1);
    const auto sampled = kaizen::ops::sample_tokens(xs, {.top_p = 0.9}, rng);
    stream.synchronize();
    CHECK(max_abs_diff(got.logprobs, want.logprobs) < 5e-5);
    CHECK(max_abs_diff(got.entropy, want.entropy) < 5e-5);
    CHECK((sampled.ids.cpu() < 5003).all().item<bool>());
  }
  if (torch::cuda::device_count() >= 2) {
    const c10::cuda::CUDAGuard current(0);
    const auto xs = x.to(torch::Device(torch::kCUDA, 1));
    const auto ts = t.to(torch::Device(torch::kCUDA, 1));
    const auto got = kaizen::ops::token_logprobs(xs, ts, {.with_entropy = true});
    CHECK(got.logprobs.device().index() == 1);
    CHECK(max_abs_diff(got.logprobs, want.logprobs) < 5e-5);
  } else {
    std::cout << "note: one GPU: the non-current-device part needs two\n";
  }
#endif
}

TEST_CASE("CUDA gradients without entropy and of the entropy alone", "[cuda][token_logprobs]") {
  KAIZEN_REQUIRE_GPU();
  torch::manual_seed(16);
  const auto x = torch::randn({7, 3001}) * 2;
  const auto t = torch::randint(0, 3001, {7}, torch::kInt64);
  for (const bool entropy_only : {false, true}) {
    CAPTURE(entropy_only);
    auto ref = x.to(torch::kFloat64).requires_grad_(true);
    const auto lp = torch::log_softmax(ref / 1.1, -1);
    if (entropy_only) (-(lp.exp() * lp).sum(-1)).sum().backward();
    else lp.gather(-1, t.unsqueeze(-1)).sum().backward();
    auto xg = x.cuda().requires_grad_(true);
    const auto out = kaizen::ops::token_logprobs(xg, t.cuda(), {.temperature = 1.1, .with_entropy = entropy_only});
    if (entropy_only) out.entropy.sum().backward();
    else out.logprobs.sum().backward();
    CHECK(max_abs_diff(xg.grad(), ref.grad()) < 1e-5);
  }
}

TEST_CASE("CUDA token_logprobs reads a B x T x V slice in place, without a copy", "[cuda][token_logprobs]") {
  KAIZEN_REQUIRE_GPU();
#if KAIZEN_WITH_CUDA
  torch::manual_seed(17);
  const std::int64_t b = 4, t = 65, v = 32003;
  const auto full = (torch::randn({b, t, v}, cuda_opts(torch::kFloat32)) * 2).to(torch::kBFloat16);
  const auto sliced = full.narrow(1, 0, t - 1);  // logits[:, :-1, :]: not contiguous
  REQUIRE(!sliced.is_contiguous());
  const auto targets = torch::randint(0, v, {b, t - 1}, cuda_opts(torch::kInt64));
  const auto device = full.device().index();
  c10::cuda::CUDACachingAllocator::resetPeakStats(device);
  const auto before = c10::cuda::CUDACachingAllocator::getDeviceStats(device).allocated_bytes[0].current;
  const auto got = kaizen::ops::token_logprobs(sliced, targets, {.with_entropy = true});
  const auto peak = c10::cuda::CUDACachingAllocator::getDeviceStats(device).allocated_bytes[0].peak;
  CHECK(peak - before < sliced.numel() * 2 / 4);  // a copy would add the slice's 2 bytes per element
  const auto want = reference(sliced.cpu().contiguous(), targets.cpu(), 1.0);
  CHECK(max_abs_diff(got.logprobs, want.logprobs) < 5e-5);
  CHECK(max_abs_diff(got.entropy, want.entropy) < 5e-5);
  // The gradient through the slice equals the contiguous copy's.
  auto a = sliced.detach().clone().requires_grad_(true);
  kaizen::ops::token_logprobs(a, targets).logprobs.sum().backward();
  auto f = full.detach().clone().requires_grad_(true);
  kaizen::ops::token_logprobs(f.narrow(1, 0, t - 1), targets).logprobs.sum().backward();
  CHECK(max_abs_diff(f.grad().narrow(1, 0, t - 1), a.grad()) == 0.0);
  CHECK(f.grad().narrow(1, t - 1, 1).abs().max().item<float>() == 0.0f);
  // B8: a [1, V] view with a stride(0) != V takes the in-place backward.
  auto last = full.narrow(0, 0, 1).select(1, t - 1).detach().clone();
  auto view = torch::empty({1, 2 * v}, cuda_opts(torch::kBFloat16)).narrow(1, 0, v).as_strided({1, v}, {7 * v, 1});
  view.copy_(last);
  view.requires_grad_(true);
  CHECK_NOTHROW(kaizen::ops::token_logprobs(view, targets.narrow(0, 0, 1).select(1, 0),
                                            {.inplace_backward = true}).logprobs.sum().backward());
#endif
}

TEST_CASE("CUDA fused_linear_logprobs in bf16 with temperature, and frozen inputs", "[cuda][fused_linear]") {
  KAIZEN_REQUIRE_GPU();
  torch::manual_seed(18);
  const auto hidden = torch::randn({300, 256}).to(torch::kBFloat16);
  const auto weight = (torch::randn({5003, 256}) * 0.1).to(torch::kBFloat16);
  const auto targets = torch::randint(0, 5003, {300}, torch::kInt64);
  auto h64 = hidden.to(torch::kFloat64).requires_grad_(true);
  auto w64 = weight.to(torch::kFloat64).requires_grad_(true);
  const auto lp = torch::log_softmax(torch::mm(h64, w64.t()) / 0.7, -1);
  const auto ent = -(lp.exp() * lp).sum(-1);
  (lp.gather(-1, targets.unsqueeze(-1)).sum() + 0.5 * ent.sum()).backward();
  for (const auto& [gh, gw] : {std::pair{true, true}, std::pair{true, false}, std::pair{false, true}}) {
    CAPTURE(gh, gw);
    auto h = hidden.cuda().requires_grad_(gh);
    auto w = weight.cuda().requires_grad_(gw);
    const auto out = kaizen::ops::fused_linear_logprobs(h, w, targets.cuda(),
                                                        {.temperature = 0.7, .with_entropy = true, .chunk_size = 64});
    (out.logprobs.sum() + 0.5 * out.entropy.sum()).backward();
    CHECK(max_abs_diff(out.logprobs, lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)) < 0.05);
    CHECK(h.grad().defined() == gh);
    CHECK(w.grad().defined() == gw);
    if (gh) CHECK(max_abs_diff(h.grad(), h64.grad()) < 0.02 * h64.grad().abs().max().item<double>());
    if (gw) CHECK(max_abs_diff(w.grad(), w64.grad()) < 0.02 * w64.grad().abs().max().item<double>());
  }
}

TEST_CASE("CUDA sample_tokens: 1e6 draws over masked logits never return a masked id", "[cuda][sample_tokens][heavy]") {
  KAIZEN_REQUIRE_GPU();
  torch::manual_seed(19);
  const std::int64_t rows = 8192, v = 151936;
  auto x = torch::randn({rows, v}, cuda_opts(torch::kFloat32)) * 2;
  const auto mask = torch::rand({rows, v}, cuda_opts(torch::kFloat32)) < 0.5;
  x.masked_fill_(mask, kNegInf);
  x.narrow(1, v - 1, 1).fill_(kNegInf);
  x.narrow(1, 1000, 1).fill_(kNaN);
  for (const auto dtype : {torch::kBFloat16, torch::kFloat32}) {
    const auto xd = x.to(dtype);
    const auto masked = torch::logical_or(mask, torch::isnan(x));
    std::int64_t draws = 0;
    for (const auto& params : {kaizen::SamplingParams{.temperature = 1.0}, kaizen::SamplingParams{.top_p = 0.95},
                               kaizen::SamplingParams{.top_k = 64, .top_p = 0.9, .min_p = 0.01}}) {
      for (int rep = 0; rep < (dtype == torch::kBFloat16 ? 45 : 15); ++rep) {
        kaizen::Rng rng(100 + rep);
        const auto out = kaizen::ops::sample_tokens(xd, params, rng);
        const auto hit = masked.gather(1, out.ids.unsqueeze(1)).sum().item<std::int64_t>();
        REQUIRE(hit == 0);
        REQUIRE(((out.ids >= 0) & (out.ids < v - 1)).all().item<bool>());
        REQUIRE(torch::isfinite(out.sampling_logprobs).all().item<bool>());
        draws += rows;
      }
    }
    CAPTURE(dtype, draws);
    CHECK(draws >= (dtype == torch::kBFloat16 ? 1000000 : 300000));
  }
#if KAIZEN_WITH_CUDA
  // The uniform at its top (all 64 bits set) with the last token masked: the kept mass's last token.
  auto row = torch::randn({4, 1003}, cuda_opts(torch::kFloat32));
  row.narrow(1, 1002, 1).fill_(kNegInf);
  row[3].fill_(kNegInf);  // all masked: id 0, NaN log-probs
  const auto bits = torch::full({4}, -1, cuda_opts(torch::kInt64));  // 0xffff... as uint64
  auto ids = torch::empty({4}, cuda_opts(torch::kInt64));
  auto lp = torch::empty({4}, cuda_opts(torch::kFloat32));
  auto flp = torch::empty({4}, cuda_opts(torch::kFloat32));
  kaizen::kernels::sample_tokens(row.data_ptr(), kaizen::kernels::DType::f32, 4, 1003, 1.0f, 0, 1.0f, 0.0f,
                                 reinterpret_cast<const std::uint64_t*>(bits.data_ptr<std::int64_t>()),
                                 ids.data_ptr<std::int64_t>(), lp.data_ptr<float>(), flp.data_ptr<float>(),
                                 c10::cuda::getCurrentCUDAStream().stream());
  const auto ic = ids.cpu();
  for (int r = 0; r < 3; ++r) CHECK(ic[r].item<std::int64_t>() == 1001);
  CHECK(ic[3].item<std::int64_t>() == 0);
  CHECK(std::isnan(flp.cpu()[3].item<float>()));
#endif
}
