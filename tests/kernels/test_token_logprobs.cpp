// Tests of kaizen::ops::token_logprobs on the CPU against float64 LibTorch references.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <torch/torch.h>

#include <kaizen/torch/ops.hpp>
#include <kaizen/torch/ops/cpu_isa.hpp>
#include <kaizen/torch/ops/cpu_parallel.hpp>

namespace {

using kaizen::ops::TokenLogprobOptions;
using kaizen::ops::token_logprobs;

struct Reference {
  torch::Tensor logprobs;
  torch::Tensor entropy;
};

// float64 oracle: log_softmax + gather on the (already rounded) logits.
Reference reference(const torch::Tensor& logits, const torch::Tensor& targets, double temperature) {
  const auto z = logits.to(torch::kFloat64) / temperature;
  const auto logp_all = torch::log_softmax(z, -1);
  Reference r;
  r.logprobs = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  const auto p = logp_all.exp();
  r.entropy = -torch::where(p > 0, p * logp_all, torch::zeros_like(p)).sum(-1);  // 0·log 0 = 0
  return r;
}

torch::Tensor random_logits(std::vector<std::int64_t> shape, torch::ScalarType dtype, std::uint64_t seed) {
  torch::manual_seed(seed);
  return (torch::randn(shape, torch::kFloat64) * 3.0 + 0.5).to(dtype);
}

torch::Tensor random_targets(torch::IntArrayRef shape, std::int64_t v) {
  return torch::randint(0, v, shape, torch::kInt64);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace

TEST_CASE("exp_approx matches std::exp to a few ulp on its whole range", "[ops][token_logprobs]") {
  double worst = 0;
  for (double x = -87.0; x <= 88.0; x += 0.0137) {
    const float got = kaizen::ops::detail::exp_approx(static_cast<float>(x));
    const double want = std::exp(static_cast<double>(static_cast<float>(x)));
    worst = std::max(worst, std::abs(got - want) / want);
  }
  CHECK(worst < 4e-7);
  CHECK(kaizen::ops::detail::exp_approx(-std::numeric_limits<float>::infinity()) < 1e-37f);
  CHECK(kaizen::ops::detail::exp_approx(0.0f) == 1.0f);
}

TEST_CASE("token_logprobs forward matches float64 log_softmax+gather for every dtype and odd size",
          "[ops][token_logprobs]") {
  const std::vector<std::vector<std::int64_t>> shapes = {{1, 1}, {1, 17}, {5, 33}, {7, 1003}, {2, 3, 37}, {3, 4099}};
  for (const auto dtype : {torch::kFloat32, torch::kFloat64, torch::kBFloat16, torch::kFloat16}) {
    for (const auto& shape : shapes) {
      for (const double temperature : {1.0, 0.7, 1.9}) {
        for (const bool with_entropy : {false, true}) {
          CAPTURE(dtype, shape, temperature, with_entropy);
          const auto logits = random_logits(shape, dtype, 11 + shape.back());
          const auto targets = random_targets(logits.sizes().slice(0, logits.dim() - 1), shape.back());
          const auto got = token_logprobs(logits, targets, {.temperature = temperature, .with_entropy = with_entropy});
          const auto want = reference(logits, targets, temperature);
          REQUIRE(got.logprobs.sizes() == targets.sizes());
          CHECK(got.logprobs.scalar_type() ==
                (dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32));
          const double tol = dtype == torch::kFloat64 ? 1e-12 : 2e-5;
          CHECK(max_abs_diff(got.logprobs, want.logprobs) < tol);
          if (with_entropy) {
            REQUIRE(got.entropy.defined());
            CHECK(max_abs_diff(got.entropy, want.entropy) < tol);
          } else {
            CHECK_FALSE(got.entropy.defined());
          }
        }
      }
    }
  }
}

TEST_CASE("token_logprobs handles -inf logits (masked vocabulary) and non-contiguous input", "[ops][token_logprobs]") {
  auto logits = random_logits({4, 50}, torch::kFloat32, 3);
  logits.index_put_({torch::indexing::Slice(), torch::indexing::Slice(40, 50)},
                    -std::numeric_limits<float>::infinity());
  const auto targets = random_targets({4}, 40);
  const auto got = token_logprobs(logits, targets, {.with_entropy = true});
  const auto want = reference(logits, targets, 1.0);
  CHECK(max_abs_diff(got.logprobs, want.logprobs) < 2e-5);
  CHECK(max_abs_diff(got.entropy, want.entropy) < 2e-5);
  auto x = logits.clone().requires_grad_(true);
  const auto r = token_logprobs(x, targets, {.with_entropy = true});
  (r.logprobs.sum() + r.entropy.sum()).backward();
  CHECK(torch::isfinite(x.grad()).all().item<bool>());
  CHECK(x.grad().index({torch::indexing::Slice(), torch::indexing::Slice(40, 50)}).abs().max().item<float>() < 1e-30f);

  const auto wide = random_logits({60, 6}, torch::kFloat32, 4);
  const auto transposed = wide.t();  // [6, 60], non-contiguous
  const auto ids = random_targets({6}, 60);
  CHECK(max_abs_diff(token_logprobs(transposed, ids).logprobs, reference(transposed, ids, 1.0).logprobs) < 2e-5);
}

TEST_CASE("token_logprobs gradients equal float64 autograd of log_softmax+gather", "[ops][token_logprobs]") {
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (const bool with_entropy : {false, true}) {
      for (const double temperature : {1.0, 0.6}) {
        CAPTURE(dtype, with_entropy, temperature);
        const auto base = random_logits({6, 131}, dtype, 21);
        const auto targets = random_targets({6}, 131);
        torch::manual_seed(5);
        const auto w_lp = torch::randn({6}, torch::kFloat64);
        const auto w_h = torch::randn({6}, torch::kFloat64);

        auto x = base.clone().requires_grad_(true);
        const auto got = token_logprobs(x, targets, {.temperature = temperature, .with_entropy = with_entropy});
        auto loss = (got.logprobs.to(torch::kFloat64) * w_lp).sum();
        if (with_entropy) loss = loss + (got.entropy.to(torch::kFloat64) * w_h).sum();
        loss.backward();

        auto xr = base.to(torch::kFloat64).clone().requires_grad_(true);
        const auto want = reference(xr, targets, temperature);
        auto ref_loss = (want.logprobs * w_lp).sum();
        if (with_entropy) ref_loss = ref_loss + (want.entropy * w_h).sum();
        ref_loss.backward();

        REQUIRE(x.grad().scalar_type() == dtype);
        CHECK(max_abs_diff(x.grad(), xr.grad()) < (dtype == torch::kFloat64 ? 1e-12 : 2e-6));
      }
    }
  }
}

TEST_CASE("token_logprobs gradient of the entropy alone, and in bfloat16", "[ops][token_logprobs]") {
  const auto base = random_logits({3, 77}, torch::kBFloat16, 8);
  const auto targets = random_targets({3}, 77);
  auto x = base.clone().requires_grad_(true);
  token_logprobs(x, targets, {.temperature = 0.8, .with_entropy = true}).entropy.sum().backward();
  auto xr = base.to(torch::kFloat64).clone().requires_grad_(true);
  reference(xr, targets, 0.8).entropy.sum().backward();
  REQUIRE(x.grad().scalar_type() == torch::kBFloat16);
  // bf16 keeps 8 significant bits: the gradient is the float64 one rounded once.
  const auto diff = (x.grad().to(torch::kFloat64) - xr.grad()).abs();
  CHECK((diff <= xr.grad().abs() * (1.0 / 128) + 1e-6).all().item<bool>());
}

TEST_CASE("token_logprobs gradient matches central finite differences", "[ops][token_logprobs]") {
  const auto base = random_logits({2, 9}, torch::kFloat64, 31);
  const auto targets = random_targets({2}, 9);
  const auto objective = [&](const torch::Tensor& logits) {
    const auto r = token_logprobs(logits, targets, {.temperature = 0.9, .with_entropy = true});
    return (r.logprobs * torch::tensor({0.3, -1.2}, torch::kFloat64)).sum() + 0.7 * r.entropy.sum();
  };
  auto x = base.clone().requires_grad_(true);
  objective(x).backward();
  const double eps = 1e-6;
  for (std::int64_t i = 0; i < 2; ++i) {
    for (std::int64_t j = 0; j < 9; ++j) {
      auto plus = base.clone();
      auto minus = base.clone();
      plus[i][j] += eps;
      minus[i][j] -= eps;
      const double fd = (objective(plus).item<double>() - objective(minus).item<double>()) / (2 * eps);
      CHECK(x.grad()[i][j].item<double>() == Approx(fd).margin(1e-7));
    }
  }
}

TEST_CASE("token_logprobs backward writes every element of a poisoned buffer, and in place", "[ops][token_logprobs]") {
  const auto logits = random_logits({5, 203}, torch::kFloat32, 41);
  const auto targets = random_targets({5}, 203);
  const auto fwd = kaizen::ops::detail::token_logprobs_forward(logits, targets, 1.3, true);
  const auto g_lp = torch::randn({5});
  const auto g_h = torch::randn({5});
  auto poisoned = torch::full_like(logits, std::numeric_limits<float>::quiet_NaN());
  kaizen::ops::detail::token_logprobs_backward(logits, targets, 1.3, fwd[1], fwd[2], g_lp, g_h, poisoned);
  CHECK(torch::isfinite(poisoned).all().item<bool>());

  auto xr = logits.to(torch::kFloat64).requires_grad_(true);
  const auto want = reference(xr, targets, 1.3);
  ((want.logprobs * g_lp.to(torch::kFloat64)).sum() + (want.entropy * g_h.to(torch::kFloat64)).sum()).backward();
  CHECK(max_abs_diff(poisoned, xr.grad()) < 2e-6);

  // In place: the gradient lands in the logits buffer itself.
  auto x = logits.clone().requires_grad_(true);
  const auto r = token_logprobs(x, targets, {.temperature = 1.3, .with_entropy = true, .inplace_backward = true});
  ((r.logprobs * g_lp).sum() + (r.entropy * g_h).sum()).backward();
  CHECK(max_abs_diff(x.grad(), xr.grad()) < 2e-6);
  CHECK(x.grad().data_ptr() == x.data_ptr());
}

TEST_CASE("token_logprobs rejects bad input with messages naming what was expected", "[ops][token_logprobs]") {
  const auto logits = random_logits({4, 10}, torch::kFloat32, 1);
  const auto targets = random_targets({4}, 10);
  CHECK_THROWS_WITH(token_logprobs(logits.to(torch::kInt32), targets),
                    Catch::StartsWith("ops::token_logprobs: expected logits of dtype float32, float64, bfloat16 or "
                                      "float16, got Int"));
  CHECK_THROWS_WITH(token_logprobs(logits, targets.to(torch::kInt32)),
                    Catch::StartsWith("ops::token_logprobs: expected int64 targets, got Int"));
  CHECK_THROWS_WITH(token_logprobs(logits, random_targets({3}, 10)),
                    Catch::StartsWith("ops::token_logprobs: expected targets of shape [4] for logits [4, 10], got [3]"));
  CHECK_THROWS_WITH(token_logprobs(logits.view({40}), random_targets({}, 10)),
                    Catch::StartsWith("ops::token_logprobs: expected logits [N, V] or [B, T, V], got shape [40]"));
  CHECK_THROWS_WITH(token_logprobs(logits, torch::tensor({0, 1, 10, 2})),
                    Catch::StartsWith("ops::token_logprobs: expected target ids in [0, 10), got ids in [0, 10]"));
  CHECK_THROWS_WITH(token_logprobs(logits, torch::tensor({0, -1, 3, 2})),
                    Catch::StartsWith("ops::token_logprobs: expected target ids in [0, 10), got ids in [-1, 3]"));
  for (const double t : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()})
    CHECK_THROWS_WITH(token_logprobs(logits, targets, {.temperature = t}),
                      Catch::StartsWith("ops::token_logprobs: expected a finite temperature > 0, got"));
  const auto meta_targets = torch::empty({4}, torch::TensorOptions().device(torch::kMeta).dtype(torch::kInt64));
  CHECK_THROWS_WITH(token_logprobs(logits, meta_targets),
                    Catch::StartsWith("ops::token_logprobs: expected targets on the logits' device cpu, got meta"));
  const auto meta_logits = torch::empty({4, 10}, torch::TensorOptions().device(torch::kMeta));
  CHECK_THROWS_WITH(token_logprobs(meta_logits, meta_targets),
                    Catch::StartsWith("ops::token_logprobs: expected a CPU or CUDA tensor, got device meta"));
  CHECK_THROWS_WITH(token_logprobs(logits.t(), torch::zeros({10}, torch::kInt64),
                                   {.inplace_backward = true}),
                    Catch::StartsWith("ops::token_logprobs: inplace_backward needs contiguous logits"));
}

TEST_CASE("token_logprobs of an empty batch is empty", "[ops][token_logprobs]") {
  const auto r = token_logprobs(torch::zeros({0, 7}), torch::zeros({0}, torch::kInt64), {.with_entropy = true});
  CHECK(r.logprobs.numel() == 0);
  CHECK(r.entropy.numel() == 0);
}

// ---- per-ISA row loops (cpu_isa.hpp / cpu_avx2.hpp) and the row splitter (cpu_parallel.hpp) ----

namespace {

using kaizen::ops::CpuIsa;
using kaizen::ops::ScopedCpuIsa;

const char* isa_name(CpuIsa isa) { return isa == CpuIsa::avx2 ? "avx2" : "portable"; }

/// Relative tolerance of a gradient in `dtype`: its rounding when stored (bf16 / fp16), else the fp32
/// error of p_j = exp(z_j − lse), a few ulp of lse (≈ 2e-6 at lse ≈ 30) relative to p_j.
double grad_rounding(torch::ScalarType dtype) {
  if (dtype == torch::kBFloat16) return 1.0 / 128;
  if (dtype == torch::kFloat16) return 1.0 / 1024;
  return 1e-5;
}

/// Forward and backward of token_logprobs on `logits` against the float64 oracle, on the ISA in effect.
void check_against_reference(const torch::Tensor& logits, const torch::Tensor& targets, double temperature) {
  const auto dtype = logits.scalar_type();
  for (const bool with_entropy : {false, true}) {
    CAPTURE(with_entropy);
    auto x = logits.clone().requires_grad_(true);
    const auto got = token_logprobs(x, targets, {.temperature = temperature, .with_entropy = with_entropy});
    // −inf → −1e10 in the oracle: the same limit values, without 0 · (−inf) in its autograd.
    auto xr = torch::nan_to_num(logits.to(torch::kFloat64), c10::nullopt, c10::nullopt, -1e10).requires_grad_(true);
    const auto want = reference(xr, targets, temperature);
    CHECK(max_abs_diff(got.logprobs, want.logprobs) < 2e-5);
    if (with_entropy) CHECK(max_abs_diff(got.entropy, want.entropy) < 2e-5);

    torch::manual_seed(17);
    const auto w_lp = torch::randn(targets.sizes(), torch::kFloat64);
    const auto w_h = torch::randn(targets.sizes(), torch::kFloat64);
    auto loss = (got.logprobs.to(torch::kFloat64) * w_lp).sum();
    auto ref_loss = (want.logprobs * w_lp).sum();
    if (with_entropy) {
      loss = loss + (got.entropy.to(torch::kFloat64) * w_h).sum();
      ref_loss = ref_loss + (want.entropy * w_h).sum();
    }
    loss.backward();
    ref_loss.backward();
    REQUIRE(x.grad().scalar_type() == dtype);
    const auto diff = (x.grad().to(torch::kFloat64) - xr.grad()).abs();
    const auto allowed = xr.grad().abs() * grad_rounding(dtype) + 2e-6;
    CHECK((diff <= allowed).all().item<bool>());
  }
}

/// The ISAs this machine can run; the test names the ones it cannot.
std::vector<CpuIsa> runnable_isas() {
  std::vector<CpuIsa> out;
  for (const CpuIsa isa : {CpuIsa::portable, CpuIsa::avx2}) {
    const ScopedCpuIsa guard(isa);
    if (guard.active() == isa) out.push_back(isa);
    else WARN("CPU ISA " << isa_name(isa) << " is not available here; its loops are not tested");
  }
  return out;
}

}  // namespace

TEST_CASE("ScopedCpuIsa caps the ISA of the fused loops and restores it", "[ops][token_logprobs]") {
  const CpuIsa detected = kaizen::ops::active_cpu_isa();
  {
    const ScopedCpuIsa guard(CpuIsa::portable);
    CHECK(guard.active() == CpuIsa::portable);
    CHECK(kaizen::ops::active_cpu_isa() == CpuIsa::portable);
  }
  CHECK(kaizen::ops::active_cpu_isa() == detected);
  const ScopedCpuIsa guard(CpuIsa::avx2);
  CHECK(guard.active() == detected);  // never more than the CPU has
#if KAIZEN_CPU_X86_AVX2
  CHECK(detected == kaizen::ops::detail::detected_cpu_isa());
#else
  CHECK(detected == CpuIsa::portable);
#endif
}

TEST_CASE("token_logprobs forward and backward match float64 on every ISA, dtype and odd size",
          "[ops][token_logprobs]") {
  // V = 1, V < 8, V not a multiple of 8 or 32, V across the 2048-element blocks of the AVX2 forward.
  const std::vector<std::vector<std::int64_t>> shapes = {{1, 1}, {3, 1}, {4, 7}, {5, 9}, {3, 33},
                                                         {2, 2047}, {2, 2049}, {3, 4103}};
  for (const CpuIsa isa : runnable_isas()) {
    const ScopedCpuIsa guard(isa);
    for (const auto dtype : {torch::kFloat32, torch::kBFloat16, torch::kFloat16}) {
      for (const auto& shape : shapes) {
        for (const double temperature : {1.0, 0.6, 2.3}) {
          CAPTURE(isa_name(isa), dtype, shape, temperature);
          const auto logits = random_logits(shape, dtype, 101 + shape.back());
          check_against_reference(logits, random_targets({shape[0]}, shape[1]), temperature);
        }
      }
    }
  }
}

TEST_CASE("token_logprobs on every ISA: masked (-inf) blocks, a rising max, and the same result as portable",
          "[ops][token_logprobs]") {
  constexpr std::int64_t v = 5003;
  const float inf = std::numeric_limits<float>::infinity();
  auto logits = random_logits({4, v}, torch::kFloat32, 7);
  using torch::indexing::Slice;
  logits.index_put_({0, Slice(0, 2100)}, -inf);             // a whole first block masked
  logits.index_put_({1, Slice(3000, 3100)}, -inf);          // a masked stretch inside a block
  logits.index_put_({2}, torch::linspace(-20.0, 25.0, v));  // every block raises the running max
  logits.index_put_({3, Slice(0, v, 2)}, -inf);             // every other logit masked
  const auto targets = torch::tensor({std::int64_t{2500}, std::int64_t{17}, v - 1, std::int64_t{1}}, torch::kInt64);
  torch::Tensor portable_lp;
  torch::Tensor portable_h;
  for (const CpuIsa isa : runnable_isas()) {
    const ScopedCpuIsa guard(isa);
    CAPTURE(isa_name(isa));
    for (const double temperature : {1.0, 0.45}) {
      CAPTURE(temperature);
      check_against_reference(logits, targets, temperature);
    }
    auto x = logits.clone().requires_grad_(true);
    const auto r = token_logprobs(x, targets, {.with_entropy = true});
    (r.logprobs.sum() + r.entropy.sum()).backward();
    CHECK(torch::isfinite(x.grad()).all().item<bool>());
    CHECK(x.grad().index({0, Slice(0, 2100)}).abs().max().item<float>() < 1e-30f);
    if (isa == CpuIsa::portable) {
      portable_lp = r.logprobs.detach();
      portable_h = r.entropy.detach();
    } else {
      CHECK(max_abs_diff(r.logprobs, portable_lp) < 1e-5);
      CHECK(max_abs_diff(r.entropy, portable_h) < 1e-5);
    }
  }
}

TEST_CASE("token_logprobs gives NaN for a row holding a NaN logit on every ISA, and only for that row",
          "[ops][token_logprobs]") {
  auto logits = random_logits({3, 101}, torch::kFloat32, 9);
  logits.index_put_({1, 50}, std::numeric_limits<float>::quiet_NaN());
  const auto targets = torch::tensor({3, 4, 5}, torch::kInt64);
  for (const CpuIsa isa : runnable_isas()) {
    const ScopedCpuIsa guard(isa);
    CAPTURE(isa_name(isa));
    const auto r = token_logprobs(logits, targets, {.with_entropy = true});
    CHECK(std::isnan(r.logprobs[1].item<float>()));
    CHECK(std::isnan(r.entropy[1].item<float>()));
    CHECK(std::isfinite(r.logprobs[0].item<float>()));
    CHECK(std::isfinite(r.logprobs[2].item<float>()));
  }
}

TEST_CASE("token_logprobs results do not depend on the thread count", "[ops][token_logprobs]") {
  const auto logits = random_logits({67, 3001}, torch::kFloat32, 13);  // 67 rows: uneven chunks
  const auto targets = random_targets({67}, 3001);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = token_logprobs(logits, targets, {.temperature = 0.8, .with_entropy = true});
  at::set_num_threads(3);
  const auto three = token_logprobs(logits, targets, {.temperature = 0.8, .with_entropy = true});
  at::set_num_threads(threads);
  CHECK(torch::equal(one.logprobs, three.logprobs));
  CHECK(torch::equal(one.entropy, three.entropy));
}

TEST_CASE("parallel_rows covers every row once, uses more than one thread, and rethrows", "[ops][parallel]") {
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  for (const std::int64_t n : {std::int64_t{1}, std::int64_t{7}, std::int64_t{1000}}) {
    CAPTURE(n);
    std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
    kaizen::ops::detail::parallel_rows(n, 4096, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) hits[static_cast<std::size_t>(i)].fetch_add(1);
    });
    for (const auto& h : hits) CHECK(h.load() == 1);
  }

  // Each chunk waits (up to 20 s) until two threads have entered: passes only if the work is shared.
  std::mutex mutex;
  std::condition_variable cv;
  std::set<std::thread::id> seen;
  kaizen::ops::detail::parallel_rows(64, 1 << 16, [&](std::int64_t, std::int64_t) {
    std::unique_lock lock(mutex);
    seen.insert(std::this_thread::get_id());
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(20), [&] { return seen.size() >= 2; });
  });
  CHECK(seen.size() >= 2);

  std::atomic<int> ran{0};
  CHECK_THROWS_WITH(kaizen::ops::detail::parallel_rows(64, 1 << 16,
                                                       [&](std::int64_t begin, std::int64_t) {
                                                         ran.fetch_add(1);
                                                         if (begin == 0) throw std::runtime_error("chunk 0 failed");
                                                       }),
                    "chunk 0 failed");
  CHECK(ran.load() == 8);  // min(64 rows, 64 chunks of work, 4 per thread · 2 threads): all ran
  at::set_num_threads(threads);
}
