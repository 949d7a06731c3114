// kernels::policy_objective (through ops::policy_objective on CUDA tensors) against the fused CPU path,
// itself tested against policy_loss (test_policy_objective.cpp): every supported option combination,
// float64 (1e-12) and float32 (1e-5), odd sizes (one token, T not a multiple of the CTA width, long
// rows), with the gradient buffer poisoned through the caching allocator before each call. Label cuda:
// Skipped where no GPU is present.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <utility>

#include <torch/torch.h>

#include <kaizen/torch/ops/policy_objective.hpp>
#include <support/cuda.hpp>
#include <support/objective_combinations.hpp>

namespace pg = kaizen::policy_gradient;
namespace ops = kaizen::ops;

namespace {

/// Fills and frees blocks of the given byte sizes so the next allocations of those sizes hold NaN.
void poison_allocator(std::initializer_list<std::int64_t> bytes) {
  for (const auto b : bytes) {
    auto t = torch::full({(b + 3) / 4}, std::numeric_limits<float>::quiet_NaN(),
                         torch::TensorOptions().device(torch::kCUDA));
    (void)t;
  }
}

double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

using ObjectiveFn = std::function<ops::PolicyObjectiveResult(const pg::PolicyLossInputs&)>;

void compare_devices(const ObjectiveFn& objective, std::int64_t B, std::int64_t T, std::uint64_t seed,
                     torch::Dtype dtype, double tol, bool per_sequence_advantage) {
  torch::manual_seed(static_cast<std::int64_t>(seed));
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto old = -torch::rand({B, T}, opts) * 3 - 0.1;
  const auto lp = old + torch::randn({B, T}, opts) * 0.3;
  const auto ref = old + torch::randn({B, T}, opts) * 0.4;
  const auto sampler = old + torch::randn({B, T}, opts) * 0.3;
  const auto entropy = torch::rand({B, T}, opts) * 2;
  const auto adv = per_sequence_advantage ? torch::randn({B}, opts) : torch::randn({B, T}, opts);
  auto mask = torch::rand({B, T}) > 0.3;
  mask.select(1, 0).fill_(true);
  const auto run = [&](torch::Device device) {
    const auto to = [&](const torch::Tensor& t) { return t.to(device, t.is_floating_point() ? dtype : t.scalar_type()); };
    auto x = to(lp).clone().requires_grad_(true);
    auto h = to(entropy).clone().requires_grad_(true);
    const std::int64_t bytes = B * T * (dtype == torch::kFloat64 ? 8 : 4);
    if (device.is_cuda()) poison_allocator({bytes, bytes, B * pg::detail::kRowStatCount * 8});
    auto out = objective(pg::PolicyLossInputs{.logprobs = x, .old_logprobs = to(old), .ref_logprobs = to(ref),
                                              .advantages = to(adv), .mask = to(mask), .entropy = h,
                                              .sampler_logprobs = to(sampler)});
    out.loss.backward();
    return std::pair{out, std::pair{x.grad().to(torch::kCPU, torch::kFloat64),
                                    h.grad().defined() ? h.grad().to(torch::kCPU, torch::kFloat64) : torch::Tensor()}};
  };
  const auto [cpu, cpu_grads] = run(torch::kCPU);
  const auto [gpu, gpu_grads] = run(torch::kCUDA);
  INFO("B = " << B << ", T = " << T << ", dtype " << dtype);
  CHECK(gpu.loss.is_cuda());
  const auto same = [tol](double a, double b) { return a == Approx(b).epsilon(tol).margin(tol); };
  CHECK(same(gpu.loss.item<double>(), cpu.loss.item<double>()));
  CHECK(same(gpu.metrics.policy_loss, cpu.metrics.policy_loss));
  CHECK(same(gpu.metrics.kl, cpu.metrics.kl));
  CHECK(same(gpu.metrics.entropy, cpu.metrics.entropy));
  CHECK(same(gpu.metrics.clip_fraction_low, cpu.metrics.clip_fraction_low));
  CHECK(same(gpu.metrics.clip_fraction_high, cpu.metrics.clip_fraction_high));
  CHECK(same(gpu.metrics.clip_fraction_dual, cpu.metrics.clip_fraction_dual));
  CHECK(same(gpu.metrics.ratio_mean, cpu.metrics.ratio_mean));
  CHECK(same(gpu.metrics.ratio_max, cpu.metrics.ratio_max));
  CHECK(same(gpu.metrics.importance_weight_mean, cpu.metrics.importance_weight_mean));
  CHECK(gpu.metrics.tokens == cpu.metrics.tokens);
  CHECK(torch::isfinite(gpu_grads.first).all().item<bool>());
  CHECK(max_abs(gpu_grads.first - cpu_grads.first) <= tol * max_abs(cpu_grads.first));
  CHECK(gpu_grads.second.defined() == cpu_grads.second.defined());
  if (cpu_grads.second.defined()) CHECK(max_abs(gpu_grads.second - cpu_grads.second) <= tol * max_abs(cpu_grads.second));
}

template <class R, class C, class K, class A>
void check_combination(int& index) {
  const int i = index++;
  pg::Objective<R, C, K, A> objective{};
  if constexpr (C::mode == pg::ClipMode::dual) objective.clip.c = 1.3;
  if constexpr (K::estimator != pg::KlEstimator::none) {
    objective.kl.coefficient = 0.3;
    objective.kl.clamp = i % 2 == 0 ? 10.0 : 0.02;
  }
  objective.entropy_coefficient = i % 2 == 0 ? 0.0 : 0.05;
  const pg::ImportanceAction actions[] = {pg::ImportanceAction::none, pg::ImportanceAction::truncate,
                                          pg::ImportanceAction::mask};
  objective.importance = {.action = actions[i % 3],
                          .level = (i / 3) % 2 == 0 ? pg::ImportanceLevel::token : pg::ImportanceLevel::sequence,
                          .cap = 1.3};
  const std::pair<std::int64_t, std::int64_t> shapes[] = {{1, 1}, {3, 1000}, {7, 257}, {64, 4097}};
  const auto [B, T] = shapes[i % 4];
  INFO("combination " << i);
  const ObjectiveFn fused = [&](const pg::PolicyLossInputs& in) { return ops::policy_objective(in, objective); };
  compare_devices(fused, B, T, static_cast<std::uint64_t>(2000 + i), torch::kFloat64, 1e-12, i % 4 == 1);
  compare_devices(fused, B, T, static_cast<std::uint64_t>(2000 + i), torch::kFloat32, 1e-5, i % 4 == 1);
}

}  // namespace

TEST_CASE("CUDA policy objective equals the fused CPU path for every option combination",
          "[cuda][policy_objective]") {
  KAIZEN_REQUIRE_GPU();
  int combinations = 0;
  kaizen::test::for_each_objective(
      [&]<class R, class C, class K, class A>() { check_combination<R, C, K, A>(combinations); });
  CHECK(combinations == 260);
}

TEST_CASE("CUDA policy objective reports bad rows like the CPU path", "[cuda][policy_objective]") {
  KAIZEN_REQUIRE_GPU();
  using Catch::StartsWith;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCUDA);
  const auto lp = torch::zeros({2, 3}, opts);
  const auto adv = torch::ones({2}, opts);
  auto mask = torch::ones({2, 3}, opts.dtype(torch::kBool));
  auto bad = torch::zeros({2, 3}, opts);
  bad[1][2] = NAN;
  CHECK_THROWS_WITH(ops::policy_objective(lp, bad, {}, adv, mask, pg::DapoObjective{}),
                    StartsWith("ops::policy_objective: expected finite `old_logprobs`, got nan at row 1, column 2"));
  mask[0].fill_(false);
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp, {}, adv, mask, pg::DapoObjective{}),
                    StartsWith("ops::policy_objective: expected every row to have a valid token, got row 0 with none"));
  CHECK_THROWS_WITH(ops::policy_objective(lp, lp.cpu(), {}, adv, mask, pg::DapoObjective{}),
                    StartsWith("ops::policy_objective: expected `old_logprobs` on cuda:0 (as `logprobs`), got cpu"));
}
