// Tests of kaizen::ops::fused_linear_logprobs, sample_tokens and group_stats on the CPU.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

#include <torch/torch.h>

#include <kaizen/core/rng.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/torch/ops.hpp>

namespace {

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

// float64 oracle of the kept set of sample_tokens, by full sort (the op itself never sorts).
std::vector<double> kept_probabilities(const torch::Tensor& row, const kaizen::SamplingParams& p) {
  const auto z = row.to(torch::kFloat64) / p.temperature;
  const auto probs = torch::softmax(z, -1).contiguous();
  std::vector<double> pr(probs.data_ptr<double>(), probs.data_ptr<double>() + probs.numel());
  const double pmax = *std::max_element(pr.begin(), pr.end());
  // Order: top-k, top-p over the top-k survivors, min-p (lm::LogitTransform's order).
  std::vector<bool> keep(pr.size(), true);
  if (p.top_k > 0 && p.top_k < static_cast<std::int64_t>(pr.size())) {
    auto sorted = pr;
    std::sort(sorted.begin(), sorted.end(), std::greater<>());
    for (std::size_t j = 0; j < pr.size(); ++j) keep[j] = pr[j] >= sorted[p.top_k - 1];
  }
  double survivors = 0;
  for (std::size_t j = 0; j < pr.size(); ++j) survivors += keep[j] ? pr[j] : 0.0;
  auto out = pr;
  for (std::size_t j = 0; j < pr.size(); ++j) {
    double above = 0;
    for (std::size_t i = 0; i < pr.size(); ++i) above += (keep[i] && pr[i] > pr[j]) ? pr[i] : 0.0;
    const bool k = keep[j] && above < p.top_p * survivors && pr[j] >= p.min_p * pmax;
    out[j] = k ? pr[j] : 0.0;
  }
  const double kept = std::accumulate(out.begin(), out.end(), 0.0);
  for (auto& x : out) x /= kept;
  return out;
}

}  // namespace

TEST_CASE("fused_linear_logprobs equals log_softmax of hidden times weight for any chunking", "[ops][fused_linear]") {
  torch::manual_seed(3);
  for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
    for (const std::int64_t chunk : {0, 1, 3, 7, 50}) {
      for (const bool with_entropy : {false, true}) {
        CAPTURE(dtype, chunk, with_entropy);
        const auto hidden = torch::randn({7, 13}, torch::kFloat64).to(dtype);
        const auto weight = (torch::randn({37, 13}, torch::kFloat64) * 0.5).to(dtype);
        const auto targets = torch::randint(0, 37, {7}, torch::kInt64);
        auto h = hidden.clone().requires_grad_(true);
        auto w = weight.clone().requires_grad_(true);
        const auto got = kaizen::ops::fused_linear_logprobs(
            h, w, targets, {.temperature = 0.8, .with_entropy = with_entropy, .chunk_size = chunk});
        torch::manual_seed(9);
        const auto g1 = torch::randn({7}, torch::kFloat64);
        const auto g2 = torch::randn({7}, torch::kFloat64);
        auto loss = (got.logprobs.to(torch::kFloat64) * g1).sum();
        if (with_entropy) loss = loss + (got.entropy.to(torch::kFloat64) * g2).sum();
        loss.backward();

        auto hr = hidden.to(torch::kFloat64).clone().requires_grad_(true);
        auto wr = weight.to(torch::kFloat64).clone().requires_grad_(true);
        const auto lp_all = torch::log_softmax(hr.matmul(wr.t()) / 0.8, -1);
        const auto ref_lp = lp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1);
        const auto ref_h = -(lp_all.exp() * lp_all).sum(-1);
        auto ref_loss = (ref_lp * g1).sum();
        if (with_entropy) ref_loss = ref_loss + (ref_h * g2).sum();
        ref_loss.backward();

        const double tol = dtype == torch::kFloat64 ? 1e-11 : 1e-4;
        CHECK(max_abs_diff(got.logprobs, ref_lp) < tol);
        if (with_entropy) CHECK(max_abs_diff(got.entropy, ref_h) < tol);
        CHECK(max_abs_diff(h.grad(), hr.grad()) < tol);
        CHECK(max_abs_diff(w.grad(), wr.grad()) < tol);
      }
    }
  }
}

TEST_CASE("fused_linear_logprobs accepts batch-time-hidden input and rejects bad input", "[ops][fused_linear]") {
  torch::manual_seed(4);
  const auto hidden = torch::randn({2, 3, 5});
  const auto weight = torch::randn({11, 5});
  const auto targets = torch::randint(0, 11, {2, 3}, torch::kInt64);
  const auto got = kaizen::ops::fused_linear_logprobs(hidden, weight, targets);
  const auto ref = torch::log_softmax(hidden.matmul(weight.t()).to(torch::kFloat64), -1)
                       .gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  REQUIRE(got.logprobs.sizes() == targets.sizes());
  CHECK(max_abs_diff(got.logprobs, ref) < 1e-5);

  using kaizen::ops::fused_linear_logprobs;
  CHECK_THROWS_WITH(fused_linear_logprobs(hidden, weight.to(torch::kFloat64), targets),
                    Catch::StartsWith("ops::fused_linear_logprobs: expected the weight in the hidden dtype Float, got Double"));
  CHECK_THROWS_WITH(fused_linear_logprobs(hidden, torch::randn({11, 4}), targets),
                    Catch::StartsWith("ops::fused_linear_logprobs: expected weight [V, 5] for hidden [2, 3, 5], got [11, 4]"));
  CHECK_THROWS_WITH(fused_linear_logprobs(hidden, weight, targets, {.chunk_size = -2}),
                    Catch::StartsWith("ops::fused_linear_logprobs: expected chunk_size >= 0 (0 = automatic), got -2"));
  CHECK_THROWS_WITH(fused_linear_logprobs(hidden, weight, targets + 11),
                    Catch::StartsWith("ops::fused_linear_logprobs: expected target ids in [0, 11)"));
  CHECK_THROWS_WITH(fused_linear_logprobs(hidden, weight, targets.view({6})),
                    Catch::StartsWith("ops::fused_linear_logprobs: expected targets of shape [2, 3] for hidden [2, 3, 5], got [6]"));
  CHECK_THROWS_WITH(fused_linear_logprobs(hidden, weight, targets, {.temperature = 0.0}),
                    Catch::StartsWith("ops::fused_linear_logprobs: expected a finite temperature > 0, got 0"));
}

TEST_CASE("sample_tokens never draws a masked or NaN logit, and a row with none finite gives id 0 and NaN",
          "[ops][sample_tokens]") {
  torch::manual_seed(21);
  const std::int64_t v = 257;
  auto row = torch::randn({v}) * 2;
  row.narrow(0, 0, 100).fill_(-std::numeric_limits<float>::infinity());
  row[v - 1] = -std::numeric_limits<float>::infinity();  // the last token masked: the old fallback's pick
  row[150] = std::numeric_limits<float>::quiet_NaN();
  const std::int64_t draws = 20000;
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    const auto logits = row.to(dtype).unsqueeze(0).expand({draws, v}).contiguous();
    for (const auto& params : {kaizen::SamplingParams{.temperature = 1.0}, kaizen::SamplingParams{.top_p = 0.999},
                               kaizen::SamplingParams{.top_k = 200}}) {
      kaizen::Rng rng(31);
      const auto out = kaizen::ops::sample_tokens(logits, params, rng);
      const auto ids = out.ids;
      CHECK((ids < 100).sum().item<std::int64_t>() == 0);
      CHECK((ids == v - 1).sum().item<std::int64_t>() == 0);
      CHECK((ids == 150).sum().item<std::int64_t>() == 0);
      CHECK(torch::isfinite(out.sampling_logprobs).all().item<bool>());
    }
  }
  auto dead = torch::full({3, 9}, -std::numeric_limits<float>::infinity());
  dead[1].fill_(std::numeric_limits<float>::quiet_NaN());
  dead[2][4] = 1.0f;
  kaizen::Rng rng(2);
  const auto out = kaizen::ops::sample_tokens(dead, {}, rng);
  CHECK(out.ids[0].item<std::int64_t>() == 0);
  CHECK(out.ids[1].item<std::int64_t>() == 0);
  CHECK(out.ids[2].item<std::int64_t>() == 4);
  CHECK(std::isnan(out.sampling_logprobs[0].item<float>()));
  CHECK(std::isnan(out.tempered_logprobs[1].item<float>()));
  CHECK(out.sampling_logprobs[2].item<float>() == 0.0f);
}

TEST_CASE("fused_linear_logprobs skips the GEMMs of inputs that need no gradient, bf16 and temperature",
          "[ops][fused_linear]") {
  torch::manual_seed(41);
  const auto hidden = torch::randn({70, 48});
  const auto weight = torch::randn({1100, 48}) * 0.3;
  const auto targets = torch::randint(0, 1100, {70}, torch::kInt64);
  const kaizen::ops::TokenLogprobOptions opts{.temperature = 0.8, .with_entropy = true, .chunk_size = 16};
  const auto run = [&](bool grad_h, bool grad_w, torch::ScalarType dtype) {
    auto h = hidden.to(dtype).clone().requires_grad_(grad_h);  // a fresh leaf each run (to() may return self)
    auto w = weight.to(dtype).clone().requires_grad_(grad_w);
    const auto out = kaizen::ops::fused_linear_logprobs(h, w, targets, opts);
    (out.logprobs.sum() + 0.3 * out.entropy.sum()).backward();
    return std::make_pair(h.grad(), w.grad());
  };
  // float64 reference through autograd of log_softmax.
  auto h64 = hidden.to(torch::kFloat64).requires_grad_(true);
  auto w64 = weight.to(torch::kFloat64).requires_grad_(true);
  const auto lp = torch::log_softmax(torch::mm(h64, w64.t()) / 0.8, -1);
  const auto ent = -(lp.exp() * lp).sum(-1);
  (lp.gather(-1, targets.unsqueeze(-1)).sum() + 0.3 * ent.sum()).backward();
  const auto [gh, gw] = run(true, true, torch::kFloat32);
  CHECK(max_abs_diff(gh, h64.grad()) < 1e-4);
  CHECK(max_abs_diff(gw, w64.grad()) < 1e-4);
  const auto [gh_only, gw_none] = run(true, false, torch::kFloat32);
  CHECK(!gw_none.defined());
  CHECK(max_abs_diff(gh_only, gh) == 0.0);
  const auto [gh_none, gw_only] = run(false, true, torch::kFloat32);
  CHECK(!gh_none.defined());
  CHECK(max_abs_diff(gw_only, gw) == 0.0);
  // bfloat16: the weight gradient is one GEMM per vocabulary slice (rounded once), the hidden gradient
  // accumulates in fp32: both within a few bf16 ulps of the float64 gradient of the bf16 inputs.
  auto hb = hidden.to(torch::kBFloat16).to(torch::kFloat64).requires_grad_(true);
  auto wb = weight.to(torch::kBFloat16).to(torch::kFloat64).requires_grad_(true);
  const auto lpb = torch::log_softmax(torch::mm(hb, wb.t()) / 0.8, -1);
  const auto entb = -(lpb.exp() * lpb).sum(-1);
  (lpb.gather(-1, targets.unsqueeze(-1)).sum() + 0.3 * entb.sum()).backward();
  const auto [ghb, gwb] = run(true, true, torch::kBFloat16);
  const double scale_h = hb.grad().abs().max().item<double>();
  const double scale_w = wb.grad().abs().max().item<double>();
  CHECK(max_abs_diff(ghb, hb.grad()) < 0.03 * scale_h);
  CHECK(max_abs_diff(gwb, wb.grad()) < 0.03 * scale_w);
}

TEST_CASE("token_logprobs in-place backward bumps the logits' version, so a node that saved them raises",
          "[ops][token_logprobs]") {
  torch::manual_seed(3);
  auto x = torch::randn({4, 33}).requires_grad_(true);
  const auto targets = torch::randint(0, 33, {4}, torch::kInt64);
  const auto logits = x.exp();  // exp's backward reads its own result
  const auto out = kaizen::ops::token_logprobs(logits, targets, {.inplace_backward = true});
  CHECK_THROWS_WITH(out.logprobs.sum().backward(), Catch::Contains("modified by an inplace operation"));
  // Out of place it is fine.
  auto y = torch::randn({4, 33}).requires_grad_(true);
  kaizen::ops::token_logprobs(y.exp(), targets).logprobs.sum().backward();
  CHECK(y.grad().defined());
}

TEST_CASE("sample_tokens draws only kept tokens, with the filtered frequencies and both log-probs",
          "[ops][sample_tokens]") {
  torch::manual_seed(6);
  struct Case {
    kaizen::SamplingParams params;
    std::int64_t v;
  };
  std::vector<Case> cases;
  for (const std::int64_t v : {1, 9, 131}) {
    cases.push_back({{.temperature = 1.0}, v});
    cases.push_back({{.temperature = 0.7, .top_k = 5}, v});
    cases.push_back({{.temperature = 1.3, .top_p = 0.8}, v});
    cases.push_back({{.temperature = 0.9, .min_p = 0.05}, v});
    cases.push_back({{.temperature = 0.6, .top_k = 20, .top_p = 0.9, .min_p = 0.01}, v});
  }
  for (const auto& c : cases) {
    for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      CAPTURE(c.v, c.params.temperature, c.params.top_k, c.params.top_p, c.params.min_p, dtype);
      const auto row = (torch::randn({c.v}, torch::kFloat64) * 2).to(dtype);
      const std::int64_t draws = 4000;
      const auto logits = row.unsqueeze(0).expand({draws, c.v}).contiguous();
      kaizen::Rng rng(123);
      const auto out = kaizen::ops::sample_tokens(logits, c.params, rng);
      const auto keep = kept_probabilities(row, c.params);
      const auto full = torch::log_softmax(row.to(torch::kFloat64) / c.params.temperature, -1);
      std::vector<double> freq(static_cast<std::size_t>(c.v), 0.0);
      const auto* ids = out.ids.data_ptr<std::int64_t>();
      bool all_kept = true;
      for (std::int64_t i = 0; i < draws; ++i) {
        all_kept = all_kept && keep[static_cast<std::size_t>(ids[i])] > 0;
        freq[static_cast<std::size_t>(ids[i])] += 1.0 / draws;
      }
      CHECK(all_kept);
      double worst = 0;
      for (std::size_t j = 0; j < freq.size(); ++j) worst = std::max(worst, std::abs(freq[j] - keep[j]));
      CHECK(worst < 0.035);
      const auto ref_lp = full.index_select(0, out.ids);
      CHECK(max_abs_diff(out.tempered_logprobs, ref_lp) < 2e-5);
      const auto keep_t = torch::tensor(keep, torch::kFloat64).index_select(0, out.ids).log();
      CHECK(max_abs_diff(out.sampling_logprobs, keep_t) < 2e-5);
    }
  }
}

TEST_CASE("sample_tokens is deterministic per seed, greedy at top_k 1, and checks its input", "[ops][sample_tokens]") {
  torch::manual_seed(8);
  const auto logits = torch::randn({16, 50});
  kaizen::Rng a(5), b(5);
  const auto x = kaizen::ops::sample_tokens(logits, {.top_p = 0.9}, a);
  const auto y = kaizen::ops::sample_tokens(logits, {.top_p = 0.9}, b);
  CHECK(torch::equal(x.ids, y.ids));
  CHECK(a() == b());
  const auto greedy = kaizen::ops::sample_tokens(logits, {.top_k = 1}, a);
  CHECK(torch::equal(greedy.ids, logits.argmax(-1)));
  CHECK(max_abs_diff(greedy.sampling_logprobs, torch::zeros({16})) < 1e-6);
  const auto single = kaizen::ops::sample_tokens(logits[0], {.top_k = 1}, a);
  CHECK(single.ids.dim() == 0);
  CHECK(single.ids.item<std::int64_t>() == logits[0].argmax().item<std::int64_t>());

  CHECK_THROWS_WITH(kaizen::ops::sample_tokens(logits, {.temperature = 0.0}, a),
                    Catch::StartsWith("SamplingParams: temperature must be > 0, got 0"));
  CHECK_THROWS_WITH(kaizen::ops::sample_tokens(logits, {.top_p = 1.5}, a),
                    Catch::StartsWith("SamplingParams: top_p must be in (0, 1], got 1.5"));
  CHECK_THROWS_WITH(kaizen::ops::sample_tokens(logits.view({4, 4, 50}), {}, a),
                    Catch::StartsWith("ops::sample_tokens: expected logits [B, V] or [V], got shape [4, 4, 50]"));
  CHECK_THROWS_WITH(kaizen::ops::sample_tokens(logits.to(torch::kInt64), {}, a),
                    Catch::StartsWith("ops::sample_tokens: expected logits of dtype float32, float64, bfloat16 or float16, got Long"));
  CHECK_THROWS_WITH(kaizen::ops::sample_tokens(torch::zeros({2, 0}), {}, a),
                    Catch::StartsWith("ops::sample_tokens: expected a vocabulary of at least 1"));
  CHECK_THROWS_WITH(kaizen::ops::sample_tokens(torch::zeros({(1 << 23) + 1}), {}, a),
                    Catch::StartsWith("ops::sample_tokens: expected a vocabulary of at most 2^23 tokens (fixed-point "
                                      "masses), got logits of shape [8388609]"));
}

TEST_CASE("group_stats equals per-group torch mean and std, and checks its groups", "[ops][group_stats]") {
  torch::manual_seed(12);
  const auto values = torch::randn({3 + 5 + 2 + 8}) * 4 + 1;
  const auto offsets = torch::tensor({0, 3, 8, 10, 18}, torch::kInt64);
  for (const bool unbiased : {true, false}) {
    for (const bool scale : {true, false}) {
      const auto got = kaizen::ops::group_stats(values, offsets, {.unbiased = unbiased, .epsilon = 1e-4, .scale = scale});
      for (std::int64_t g = 0; g < 4; ++g) {
        const auto o = offsets.data_ptr<std::int64_t>();
        const auto seg = values.slice(0, o[g], o[g + 1]).to(torch::kFloat64);
        const double mu = seg.mean().item<double>();
        const double sd = seg.std(/*unbiased=*/unbiased).item<double>();
        CHECK(got.mean[g].item<double>() == Approx(mu).margin(1e-6));
        CHECK(got.std[g].item<double>() == Approx(sd).epsilon(1e-6));
        const auto want = scale ? (seg - mu) / (sd + 1e-4) : seg - mu;
        CHECK(max_abs_diff(got.advantages.slice(0, o[g], o[g + 1]), want) < 1e-5);
      }
    }
  }
  CHECK_THROWS_WITH(kaizen::ops::group_stats(values, torch::tensor({0, 1, 18}, torch::kInt64)),
                    Catch::StartsWith("ops::group_stats: expected every group to have at least 2 members (the "
                                      "unbiased std divides by n - 1), group 0 has 1"));
  CHECK_THROWS_WITH(kaizen::ops::group_stats(values, torch::tensor({0, 5, 17}, torch::kInt64)),
                    Catch::StartsWith("ops::group_stats: expected offsets from 0 to 18 (the number of values), got 0 to 17"));
  auto bad = values.clone();
  bad[4] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(kaizen::ops::group_stats(bad, offsets), Catch::StartsWith("ops::group_stats: expected finite values"));
  CHECK_THROWS_WITH(kaizen::ops::group_stats(values, offsets.to(torch::kInt32)),
                    Catch::StartsWith("ops::group_stats: expected int64 offsets [G + 1], got Int"));
  CHECK_THROWS_WITH(kaizen::ops::group_stats(values, offsets, {.epsilon = -1.0}),
                    Catch::StartsWith("ops::group_stats: expected epsilon >= 0, got -1"));
}
