// Advantage estimators: reference-doc oracles (algorithms.md §16.4), float64 loop re-implementations on
// random inputs, invariants, and bad input.
#include <cmath>
#include <cstdint>
#include <map>
#include <vector>

#include <catch2/catch.hpp>

#include <kaizen/policy_gradient/advantages.hpp>

namespace pg = kaizen::policy_gradient;

namespace {
torch::Tensor f64(std::vector<double> v) { return torch::tensor(v, torch::kFloat64); }
torch::Tensor ids(std::vector<std::int64_t> v) { return torch::tensor(v, torch::kInt64); }
std::vector<double> vec(const torch::Tensor& t) {
  const auto c = t.to(torch::kCPU, torch::kFloat64).contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}
void check_close(const torch::Tensor& got, const std::vector<double>& want, double tol = 1e-6) {
  const auto g = vec(got);
  REQUIRE(g.size() == want.size());
  for (std::size_t i = 0; i < g.size(); ++i) CHECK(g[i] == Approx(want[i]).margin(tol).epsilon(tol));
}

// Float64 loop re-implementation of group statistics (independent of the tensor code).
std::vector<double> reference_group(const std::vector<double>& r, const std::vector<std::int64_t>& g, bool scale,
                                    bool unbiased, double eps, bool rloo) {
  std::map<std::int64_t, std::vector<std::size_t>> members;
  for (std::size_t i = 0; i < r.size(); ++i) members[g[i]].push_back(i);
  std::vector<double> out(r.size());
  for (const auto& [id, rows] : members) {
    double mean = 0;
    for (auto i : rows) mean += r[i];
    const double n = static_cast<double>(rows.size());
    mean /= n;
    double ss = 0;
    for (auto i : rows) ss += (r[i] - mean) * (r[i] - mean);
    const double sd = std::sqrt(ss / (unbiased ? n - 1 : n));
    for (auto i : rows) {
      if (rloo) {
        out[i] = r[i] - (mean * n - r[i]) / (n - 1);
      } else {
        out[i] = scale ? (r[i] - mean) / (sd + eps) : r[i] - mean;
      }
      if (ss == 0) out[i] = 0;
    }
  }
  return out;
}
}  // namespace

TEST_CASE("GRPO advantages match the reference-doc oracles", "[policy_gradient][advantages]") {
  check_close(pg::group_advantages(f64({1, 0, 0, 0}), ids({0, 0, 0, 0})), {1.5, -0.5, -0.5, -0.5}, 1e-5);
  check_close(pg::group_advantages(f64({1, 1, 0, 0}), ids({7, 7, 7, 7})), {0.8660, 0.8660, -0.8660, -0.8660}, 1e-4);
  // Biased std: [1,0,0,0] has σ = sqrt(3)/4.
  const double s = std::sqrt(3.0) / 4;
  check_close(pg::group_advantages(f64({1, 0, 0, 0}), ids({0, 0, 0, 0}), {.std = pg::StdEstimator::biased, .epsilon = 0}),
              {0.75 / s, -0.25 / s, -0.25 / s, -0.25 / s});
}

TEST_CASE("Dr. GRPO and RLOO advantages match the reference-doc oracles", "[policy_gradient][advantages]") {
  check_close(pg::group_advantages(f64({1, 0, 0, 0}), ids({0, 0, 0, 0}), {.scale = pg::AdvantageScale::none}),
              {0.75, -0.25, -0.25, -0.25});
  check_close(pg::rloo_advantages(f64({1, 0, 0, 0}), ids({0, 0, 0, 0})), {1, -1.0 / 3, -1.0 / 3, -1.0 / 3});
}

TEST_CASE("group advantages equal a float64 loop re-implementation on random inputs", "[policy_gradient][advantages]") {
  torch::manual_seed(3);
  const auto rewards = torch::randn({24}, torch::kFloat64);
  const auto groups = torch::randperm(24).remainder(5);  // 5 interleaved groups of 4-5
  std::vector<std::int64_t> g(24);
  for (int i = 0; i < 24; ++i) g[static_cast<std::size_t>(i)] = groups[i].item<std::int64_t>();
  const auto r = vec(rewards);
  check_close(pg::group_advantages(rewards, groups), reference_group(r, g, true, true, 1e-6, false), 1e-9);
  check_close(pg::group_advantages(rewards, groups, {.std = pg::StdEstimator::biased}),
              reference_group(r, g, true, false, 1e-6, false), 1e-9);
  check_close(pg::group_advantages(rewards, groups, {.scale = pg::AdvantageScale::none}),
              reference_group(r, g, false, true, 0, false), 1e-9);
  check_close(pg::rloo_advantages(rewards, groups), reference_group(r, g, false, true, 0, true), 1e-9);
  // Batch scale: group-centred, divided by the batch std of the rewards.
  const double batch_sd = rewards.std().item<double>();
  auto centred = reference_group(r, g, false, true, 0, false);
  for (auto& a : centred) a /= batch_sd + 1e-6;
  check_close(pg::group_advantages(rewards, groups, {.scale = pg::AdvantageScale::batch}), centred, 1e-9);
  // float32 agrees with float64.
  check_close(pg::group_advantages(rewards.to(torch::kFloat32), groups), reference_group(r, g, true, true, 1e-6, false),
              1e-5);
}

TEST_CASE("group-relative advantages sum to zero within each group", "[policy_gradient][advantages]") {
  torch::manual_seed(4);
  const auto rewards = torch::rand({32}, torch::kFloat64);
  const auto groups = torch::arange(32).floor_divide(8);
  for (const auto& a : {pg::group_advantages(rewards, groups),
                        pg::group_advantages(rewards, groups, {.scale = pg::AdvantageScale::none}),
                        pg::rloo_advantages(rewards, groups)}) {
    CHECK(a.view({4, 8}).sum(1).abs().max().item<double>() < 1e-12);
  }
}

TEST_CASE("zero-variance groups get exactly zero advantage", "[policy_gradient][advantages]") {
  const auto rewards = f64({0.1, 0.1, 0.1, 1, 0, 0.7, 0.7});
  const auto groups = ids({0, 0, 0, 1, 1, 2, 2});
  for (const auto& a : {pg::group_advantages(rewards, groups), pg::rloo_advantages(rewards, groups),
                        pg::group_advantages(rewards, groups, {.std = pg::StdEstimator::biased}),
                        pg::opo_advantages(rewards, ids({3, 4, 5, 1, 2, 3, 9}), groups),
                        pg::pass_at_k_advantages(f64({1, 1, 1, 1, 0, 0, 0}), groups, 2)}) {
    CHECK_FALSE(a.isnan().any().item<bool>());
    CHECK(a[0].item<double>() == 0.0);
    CHECK(a[1].item<double>() == 0.0);
    CHECK(a[2].item<double>() == 0.0);
    CHECK(a[5].item<double>() == 0.0);
    CHECK(a[6].item<double>() == 0.0);
  }
}

TEST_CASE("OPO subtracts the length-weighted group mean", "[policy_gradient][advantages]") {
  // b = (1*1 + 3*0) / (1 + 3) = 0.25
  check_close(pg::opo_advantages(f64({1, 0}), ids({2, 6}), ids({0, 0})), {0.75, -0.25});
  // Equal lengths: OPO = Dr. GRPO.
  torch::manual_seed(5);
  const auto r = torch::randn({12}, torch::kFloat64);
  const auto g = torch::arange(12).floor_divide(4);
  CHECK(torch::allclose(pg::opo_advantages(r, torch::full({12}, 7), g),
                        pg::group_advantages(r, g, {.scale = pg::AdvantageScale::none})));
}

TEST_CASE("ReMax subtracts the greedy reward", "[policy_gradient][advantages]") {
  check_close(pg::remax_advantages(f64({1, 0, 0.5}), f64({0.5, 0.5, 0.5})), {0.5, -0.5, 0});
}

TEST_CASE("pass@k advantages: k = 1 is GRPO with the biased std, and a hand-computed k = 2 case",
          "[policy_gradient][advantages]") {
  const auto r = f64({1, 0, 0, 0, 1, 1, 0, 0});
  const auto g = ids({0, 0, 0, 0, 1, 1, 1, 1});
  CHECK(torch::allclose(pg::pass_at_k_advantages(r, g, 1),
                        pg::group_advantages(r, g, {.std = pg::StdEstimator::biased, .epsilon = 0}), 1e-12, 1e-12));
  // N = 4, c = 1, k = 2: R̄ = 1 − C(3,2)/C(4,2) = 0.5, σ = 0.5; A⁺ = 1; A⁻ = (0.5 − C(2,1)/C(3,1)) / 0.5 = −1/3.
  check_close(pg::pass_at_k_advantages(f64({1, 0, 0, 0}), ids({0, 0, 0, 0}), 2), {1, -1.0 / 3, -1.0 / 3, -1.0 / 3});
}

TEST_CASE("broadcast_to_tokens spreads sequence advantages over valid tokens", "[policy_gradient][advantages]") {
  const auto mask = torch::tensor({1, 1, 0, 0, 1, 1}, torch::kBool).view({2, 3});
  check_close(pg::broadcast_to_tokens(f64({2, -1}), mask), {2, 2, 0, 0, -1, -1});
}

TEST_CASE("GAE: γ = λ = 1 with zero values gives the terminal reward everywhere", "[policy_gradient][advantages]") {
  auto rewards = torch::zeros({2, 5}, torch::kFloat64);
  rewards[0][3] = 2.0;
  rewards[1][4] = -1.0;
  const auto mask = torch::tensor({0, 1, 1, 1, 0, 0, 0, 1, 1, 1}, torch::kBool).view({2, 5});
  const auto out = pg::gae(rewards, torch::zeros_like(rewards), mask, 1.0, 1.0);
  check_close(out.advantages, {0, 2, 2, 2, 0, 0, 0, -1, -1, -1});
  check_close(out.returns, {0, 2, 2, 2, 0, 0, 0, -1, -1, -1});
}

TEST_CASE("GAE equals a float64 loop over valid tokens on random inputs", "[policy_gradient][advantages]") {
  torch::manual_seed(6);
  const auto r = torch::randn({3, 7}, torch::kFloat64);
  const auto v = torch::randn({3, 7}, torch::kFloat64);
  const auto mask = torch::rand({3, 7}) > 0.3;
  const double gamma = 0.9, lambda = 0.8;
  const auto out = pg::gae(r, v, mask, gamma, lambda);
  std::vector<double> want;
  for (int b = 0; b < 3; ++b) {
    std::vector<double> row(7, 0.0);
    double next_v = 0, next_a = 0;
    for (int t = 6; t >= 0; --t) {
      if (!mask[b][t].item<bool>()) continue;
      const double delta = r[b][t].item<double>() + gamma * next_v - v[b][t].item<double>();
      row[static_cast<std::size_t>(t)] = next_a = delta + gamma * lambda * next_a;
      next_v = v[b][t].item<double>();
    }
    want.insert(want.end(), row.begin(), row.end());
  }
  check_close(out.advantages, want, 1e-12);
  check_close(out.returns, vec((out.advantages + v) * mask), 1e-12);
}

TEST_CASE("REINFORCE++ whitens discounted returns over the batch", "[policy_gradient][advantages]") {
  auto rewards = torch::zeros({2, 4}, torch::kFloat64);
  rewards[0][2] = 1.0;
  rewards[1][3] = -1.0;
  rewards[1][1] = 0.5;
  const auto mask = torch::tensor({1, 1, 1, 0, 1, 1, 1, 1}, torch::kBool).view({2, 4});
  // Returns (γ = 1): row 0 [1, 1, 1, ·], row 1 [−0.5, −0.5, −1, −1].
  const std::vector<double> ret = {1, 1, 1, -0.5, -0.5, -1, -1};
  double mean = 0, var = 0;
  for (double x : ret) mean += x / 7;
  for (double x : ret) var += (x - mean) * (x - mean) / 6;
  const double k = 1 / std::sqrt(var + 1e-8);
  check_close(pg::reinforce_pp_advantages(rewards, mask),
              {(1 - mean) * k, (1 - mean) * k, (1 - mean) * k, 0, (-0.5 - mean) * k, (-0.5 - mean) * k, (-1 - mean) * k,
               (-1 - mean) * k},
              1e-12);
  // Baseline form: all-equal group rewards whiten to zero, never NaN.
  const auto flat = pg::reinforce_pp_baseline_advantages(f64({1, 1}), ids({0, 0}), mask);
  CHECK(flat.abs().max().item<double>() == 0.0);
  // Baseline form: group-centred then whitened.
  const auto a = pg::reinforce_pp_baseline_advantages(f64({1, 0}), ids({0, 0}), mask);
  const auto manual = pg::masked_whiten(pg::broadcast_to_tokens(f64({0.5, -0.5}), mask), mask);
  CHECK(torch::allclose(a, manual));
}

TEST_CASE("advantage estimators reject bad input with a message naming the values", "[policy_gradient][advantages]") {
  using Catch::StartsWith;
  CHECK_THROWS_WITH(pg::group_advantages(f64({1, 0}), ids({0, 0, 0})),
                    StartsWith("group_advantages: expected `group_ids` of shape [2], got [3]"));
  CHECK_THROWS_WITH(pg::group_advantages(torch::tensor({1, 0}), ids({0, 0})),
                    StartsWith("group_advantages: expected `rewards` to be float32 or float64, got Long"));
  CHECK_THROWS_WITH(pg::group_advantages(f64({1, NAN}), ids({0, 0})),
                    StartsWith("group_advantages: expected finite `rewards`, got nan at index 1"));
  CHECK_THROWS_WITH(pg::group_advantages(f64({1, 0, 3}), ids({0, 0, 9})),
                    StartsWith("group_advantages: expected every group to have at least 2 members (the unbiased std "
                               "divides by n - 1), got group id 9 with 1"));
  CHECK_THROWS_WITH(pg::group_advantages(f64({1, 0}), f64({0, 0})),
                    StartsWith("group_advantages: expected integer `group_ids`, got Double"));
  CHECK_THROWS_WITH(pg::rloo_advantages(f64({1}), ids({4})),
                    StartsWith("rloo_advantages: expected every group to have at least 2 members"));
  CHECK_THROWS_WITH(pg::opo_advantages(f64({1, 0}), ids({0, 3}), ids({0, 0})),
                    StartsWith("opo_advantages: expected every length > 0, got minimum 0"));
  CHECK_THROWS_WITH(pg::pass_at_k_advantages(f64({1, 0.5}), ids({0, 0}), 1),
                    StartsWith("pass_at_k_advantages: expected binary rewards (0 or 1), got a value 0.5"));
  CHECK_THROWS_WITH(pg::pass_at_k_advantages(f64({1, 0}), ids({0, 0}), 3),
                    StartsWith("pass_at_k_advantages: expected every group to have at least 3 members"));
  CHECK_THROWS_WITH(pg::remax_advantages(f64({1, 0}), f64({1})),
                    StartsWith("remax_advantages: expected `greedy_rewards` of shape [2] (as `rewards`), got [1]"));
  CHECK_THROWS_WITH(pg::gae(torch::zeros({2, 3}, torch::kFloat64), torch::zeros({2, 3}), torch::ones({2, 3})),
                    StartsWith("gae: expected `values` of dtype Double (as `token_rewards`), got Float"));
  CHECK_THROWS_WITH(pg::gae(torch::zeros({2, 3}), torch::zeros({2, 3}), torch::ones({2, 3}), 1.5),
                    StartsWith("gae: expected gamma in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(pg::broadcast_to_tokens(f64({1, 2}), torch::ones({3, 4})),
                    StartsWith("broadcast_to_tokens: expected `mask` of shape [2, T], got [3, 4]"));
}
