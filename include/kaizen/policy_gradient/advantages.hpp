// kaizen/policy_gradient/advantages.hpp - advantage estimators for LLM policy gradients.
//
// Outcome (one scalar reward r_i per sequence, sequences grouped by prompt; g(i) is i's group, G_g
// its size, μ_g and σ_g the group's mean and standard deviation):
//   group_advantages    A_i = (r_i − μ_g) / s,  s = σ_g + ε (GRPO), σ_batch + ε, or 1 (Dr. GRPO)
//   rloo_advantages     A_i = r_i − (Σ_{j∈g, j≠i} r_j)/(G_g − 1) = G_g/(G_g − 1) · (r_i − μ_g)
//   opo_advantages      A_i = r_i − Σ_{j∈g} l_j r_j / Σ_{j∈g} l_j            (l_j = length of j)
//   remax_advantages    A_i = r_i − r(ŷ_i^greedy)
//   pass_at_k_advantages  analytic pass@k group advantages for binary rewards (see the function)
//   reinforce_pp_baseline_advantages  (r_i − μ_g) broadcast to tokens, then whitened over the batch
// Per token (r_t rewards, V_t values, mask m):
//   reinforce_pp_advantages  R_t = Σ_{t'≥t} γ^{t'−t} r_{t'} over valid tokens, whitened over the batch
//   gae                 δ_t = r_t + γ V_{t+1} − V_t,  A_t = δ_t + γλ A_{t+1}, returns A_t + V_t
// A group whose rewards are all equal gets exactly zero advantage (never 0/ε noise or NaN).
// broadcast_to_tokens turns [B] sequence advantages into [B, T] through the completion mask.
//
// References: GRPO (Shao et al. 2024, arXiv 2402.03300), Dr. GRPO (Liu et al. 2025, arXiv
// 2503.20783), RLOO (Ahmadian et al. 2024, arXiv 2402.14740), REINFORCE++ (Hu 2025, arXiv 2501.03262),
// ReMax (Li et al. 2023, arXiv 2310.10505), GAE (Schulman et al. 2015, arXiv 1506.02438), OPO (Hao et
// al. 2025, arXiv 2505.23585), Pass@k training (Chen et al. 2025, arXiv 2508.10751), group-mean /
// batch-std scaling (Liu et al. 2025, "Tricks or Traps", arXiv 2508.08221). Formulas cross-checked
// against verl's core_algos.py (unbiased std, ε = 1e-6, masked whitening with Bessel correction).
#pragma once

#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

#include <torch/types.h>

#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/detail/checks.hpp>

namespace kaizen::policy_gradient {

/// What the centred group rewards are divided by.
enum class AdvantageScale : std::uint8_t {
  group,  ///< σ_g + ε (GRPO)
  batch,  ///< σ over the whole batch of rewards + ε (group mean, batch std; "LitePPO")
  none,   ///< 1 (Dr. GRPO: centring only)
};

/// Which standard deviation: unbiased divides by n − 1 (torch.std; verl and TRL's GRPO), biased by n.
enum class StdEstimator : std::uint8_t { unbiased, biased };

struct GroupAdvantageOptions {
  AdvantageScale scale = AdvantageScale::group;
  StdEstimator std = StdEstimator::unbiased;  ///< default matches verl/TRL GRPO
  double epsilon = 1e-6;                      ///< added to the std before dividing
};

namespace detail {

/// Dense group index in [0, num_groups) for each row, and each group's size.
struct Groups {
  torch::Tensor index;   ///< [B] int64
  torch::Tensor counts;  ///< [num_groups], rewards' dtype
  std::int64_t size = 0;
};

[[nodiscard]] inline Groups make_groups(std::string_view fn, const torch::Tensor& rewards,
                                        const torch::Tensor& group_ids) {
  check_real(fn, "rewards", rewards);
  KAIZEN_CHECK(rewards.dim() == 1 && rewards.numel() > 0, fn, ": expected non-empty 1-D `rewards` [B], got shape ",
               rewards.sizes());
  KAIZEN_CHECK(group_ids.defined() && group_ids.dim() == 1 && group_ids.numel() == rewards.numel(), fn,
               ": expected `group_ids` of shape [", rewards.numel(), "], got ",
               group_ids.defined() ? group_ids.sizes() : torch::IntArrayRef{});
  KAIZEN_CHECK(!torch::isFloatingType(group_ids.scalar_type()) && group_ids.scalar_type() != torch::kBool, fn,
               ": expected integer `group_ids`, got ", group_ids.scalar_type());
  KAIZEN_CHECK(group_ids.device() == rewards.device(), fn, ": expected `group_ids` on ", rewards.device(),
               ", got ", group_ids.device());
  check_finite(fn, "rewards", rewards);
  auto [unique, inverse] = at::_unique(group_ids, /*sorted=*/true, /*return_inverse=*/true);
  Groups g;
  g.size = unique.numel();
  g.index = inverse.to(torch::kInt64);
  g.counts = torch::zeros({g.size}, rewards.options()).index_add_(0, g.index, torch::ones_like(rewards));
  return g;
}

[[nodiscard]] inline torch::Tensor group_mean(const Groups& g, const torch::Tensor& x) {
  return torch::zeros({g.size}, x.options()).index_add_(0, g.index, x) / g.counts;
}

/// True for rows whose group's values are all identical.
[[nodiscard]] inline torch::Tensor constant_group_rows(const Groups& g, const torch::Tensor& x) {
  const auto hi = torch::full({g.size}, -INFINITY, x.options()).scatter_reduce(0, g.index, x, "amax");
  const auto lo = torch::full({g.size}, INFINITY, x.options()).scatter_reduce(0, g.index, x, "amin");
  return (hi == lo).index_select(0, g.index);
}

inline void check_min_group_size(std::string_view fn, const Groups& g, const torch::Tensor& group_ids,
                                 double min_size, std::string_view why) {
  const torch::Tensor small = g.counts < min_size;
  if (small.any().item<bool>()) {
    const auto k = small.nonzero()[0][0].item<std::int64_t>();
    const auto row = (g.index == k).nonzero()[0][0].item<std::int64_t>();
    fail(fn, ": expected every group to have at least ", min_size, " members (", why, "), got group id ",
         group_ids[row].item<std::int64_t>(), " with ", g.counts[k].item<double>());
  }
}

}  // namespace detail

/// Group-relative advantages (GRPO, Dr. GRPO, group-mean/batch-std).
/// `rewards` [B] float32/64, finite; `group_ids` [B] integer (any values, any order; equal id = same
/// prompt). Returns [B] in rewards' dtype: A_i = (r_i − μ_g) / s with s chosen by `options.scale`.
/// A group whose rewards are all equal gets 0. Throws kaizen::Error on shape/dtype/device mismatch,
/// non-finite rewards, or (unbiased std) a group with fewer than 2 members.
[[nodiscard]] inline torch::Tensor group_advantages(const torch::Tensor& rewards, const torch::Tensor& group_ids,
                                                    const GroupAdvantageOptions& options = {}) {
  constexpr std::string_view fn = "group_advantages";
  KAIZEN_CHECK(options.epsilon >= 0, fn, ": expected epsilon >= 0, got ", options.epsilon);
  const auto g = detail::make_groups(fn, rewards, group_ids);
  const bool unbiased = options.std == StdEstimator::unbiased;
  if (options.scale == AdvantageScale::group && unbiased)
    detail::check_min_group_size(fn, g, group_ids, 2, "the unbiased std divides by n - 1");
  const auto centred = rewards - detail::group_mean(g, rewards).index_select(0, g.index);
  torch::Tensor scale;
  switch (options.scale) {
    case AdvantageScale::group: {
      const auto sq = torch::zeros({g.size}, rewards.options()).index_add_(0, g.index, centred * centred);
      scale = (sq / (unbiased ? g.counts - 1 : g.counts)).sqrt().index_select(0, g.index) + options.epsilon;
      break;
    }
    case AdvantageScale::batch:
      KAIZEN_CHECK(!unbiased || rewards.numel() >= 2, fn,
                   ": expected at least 2 rewards for the unbiased batch std, got ", rewards.numel());
      scale = rewards.std(/*dim=*/0, /*unbiased=*/unbiased, /*keepdim=*/false) + options.epsilon;
      break;
    case AdvantageScale::none: scale = torch::ones({}, rewards.options()); break;
  }
  return torch::where(detail::constant_group_rows(g, rewards), torch::zeros_like(rewards), centred / scale);
}

/// RLOO leave-one-out: A_i = r_i − mean of the other members of i's group = G/(G−1) (r_i − μ_g).
/// Shapes and checks as group_advantages; every group needs at least 2 members.
[[nodiscard]] inline torch::Tensor rloo_advantages(const torch::Tensor& rewards, const torch::Tensor& group_ids) {
  constexpr std::string_view fn = "rloo_advantages";
  const auto g = detail::make_groups(fn, rewards, group_ids);
  detail::check_min_group_size(fn, g, group_ids, 2, "leave-one-out needs another member");
  const auto n = g.counts.index_select(0, g.index);
  const auto a = (rewards - detail::group_mean(g, rewards).index_select(0, g.index)) * n / (n - 1);
  return torch::where(detail::constant_group_rows(g, rewards), torch::zeros_like(rewards), a);
}

/// OPO optimal baseline: A_i = r_i − Σ_{j∈g} l_j r_j / Σ_{j∈g} l_j, with `lengths` [B] (completion
/// token counts, > 0, any numeric dtype). Throws on a non-positive length.
[[nodiscard]] inline torch::Tensor opo_advantages(const torch::Tensor& rewards, const torch::Tensor& lengths,
                                                  const torch::Tensor& group_ids) {
  constexpr std::string_view fn = "opo_advantages";
  const auto g = detail::make_groups(fn, rewards, group_ids);
  KAIZEN_CHECK(lengths.defined() && lengths.sizes() == rewards.sizes(), fn, ": expected `lengths` of shape ",
               rewards.sizes(), ", got ", lengths.defined() ? lengths.sizes() : torch::IntArrayRef{});
  KAIZEN_CHECK(lengths.device() == rewards.device(), fn, ": expected `lengths` on ", rewards.device(), ", got ",
               lengths.device());
  const auto l = lengths.to(rewards.scalar_type());
  KAIZEN_CHECK((l > 0).all().item<bool>(), fn, ": expected every length > 0, got minimum ",
               l.min().item<double>());
  const auto num = torch::zeros({g.size}, rewards.options()).index_add_(0, g.index, l * rewards);
  const auto den = torch::zeros({g.size}, rewards.options()).index_add_(0, g.index, l);
  const auto a = rewards - (num / den).index_select(0, g.index);
  return torch::where(detail::constant_group_rows(g, rewards), torch::zeros_like(rewards), a);
}

/// ReMax: A_i = r_i − r̂_i, where r̂_i is the reward of the greedy completion of the same prompt.
/// Both [B], same dtype and device, finite.
[[nodiscard]] inline torch::Tensor remax_advantages(const torch::Tensor& rewards, const torch::Tensor& greedy_rewards) {
  constexpr std::string_view fn = "remax_advantages";
  detail::check_real(fn, "rewards", rewards);
  KAIZEN_CHECK(rewards.dim() == 1, fn, ": expected 1-D `rewards` [B], got shape ", rewards.sizes());
  detail::check_like(fn, "greedy_rewards", greedy_rewards, rewards, "rewards");
  detail::check_finite(fn, "rewards", rewards);
  detail::check_finite(fn, "greedy_rewards", greedy_rewards);
  return rewards - greedy_rewards;
}

/// Pass@k advantages for binary rewards (Chen et al. 2025, analytic form). For a group of N samples
/// with c correct and k ≤ N, with ρ(a, b, k) = C(a, k) / C(b, k):
///   R̄ = 1 − ρ(N−c, N, k)             (expected pass@k of a random k-subset)
///   σ = sqrt(R̄ (1 − R̄))
///   A⁺ = (1 − R̄) / σ                 (correct samples)
///   A⁻ = (1 − R̄ − ρ(N−c−1, N−1, k−1)) / σ   (incorrect samples)
/// σ = 0 (all wrong, or every k-subset passes) gives 0. k = 1 reproduces GRPO with the biased std
/// and ε = 0. `rewards` must be 0 or 1; throws when a group is smaller than k or k < 1.
[[nodiscard]] inline torch::Tensor pass_at_k_advantages(const torch::Tensor& rewards, const torch::Tensor& group_ids,
                                                        std::int64_t k) {
  constexpr std::string_view fn = "pass_at_k_advantages";
  KAIZEN_CHECK(k >= 1, fn, ": expected k >= 1, got ", k);
  const auto g = detail::make_groups(fn, rewards, group_ids);
  KAIZEN_CHECK(((rewards == 0) | (rewards == 1)).all().item<bool>(), fn,
               ": expected binary rewards (0 or 1), got a value ",
               rewards.index_select(0, ((rewards != 0) & (rewards != 1)).nonzero().reshape({-1})).index({0}).item<double>());
  detail::check_min_group_size(fn, g, group_ids, static_cast<double>(k), "pass@k draws k of them");
  const auto correct = torch::zeros({g.size}, rewards.options()).index_add_(0, g.index, rewards).to(torch::kCPU, torch::kFloat64);
  const auto counts = g.counts.to(torch::kCPU, torch::kFloat64);
  // ρ(a, b, k) = Π_{j<k} (a − j)/(b − j), 0 when a < k.
  const auto rho = [](double a, double b, std::int64_t kk) {
    double p = 1.0;
    for (std::int64_t j = 0; j < kk; ++j) p *= std::max(a - static_cast<double>(j), 0.0) / (b - static_cast<double>(j));
    return p;
  };
  std::vector<double> pos(static_cast<std::size_t>(g.size)), neg(static_cast<std::size_t>(g.size));
  for (std::int64_t i = 0; i < g.size; ++i) {
    const double n = counts[i].item<double>(), c = correct[i].item<double>();
    const double mean = 1.0 - rho(n - c, n, k);
    const double sigma = std::sqrt(mean * (1.0 - mean));
    const auto u = static_cast<std::size_t>(i);
    pos[u] = sigma > 0 ? (1.0 - mean) / sigma : 0.0;
    neg[u] = sigma > 0 ? (1.0 - mean - rho(n - c - 1, n - 1, k - 1)) / sigma : 0.0;
  }
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto a_pos = torch::tensor(pos, opts).to(rewards.device(), rewards.scalar_type()).index_select(0, g.index);
  const auto a_neg = torch::tensor(neg, opts).to(rewards.device(), rewards.scalar_type()).index_select(0, g.index);
  return torch::where(rewards > 0.5, a_pos, a_neg);
}

/// Per-sequence advantages [B] → per-token [B, T]: A_bt = A_b · m_bt. `mask` [B, T] bool or floating.
[[nodiscard]] inline torch::Tensor broadcast_to_tokens(const torch::Tensor& advantages, const torch::Tensor& mask) {
  constexpr std::string_view fn = "broadcast_to_tokens";
  detail::check_real(fn, "advantages", advantages);
  KAIZEN_CHECK(advantages.dim() == 1, fn, ": expected 1-D `advantages` [B], got shape ", advantages.sizes());
  KAIZEN_CHECK(mask.defined() && mask.dim() == 2 && mask.size(0) == advantages.size(0), fn,
               ": expected `mask` of shape [", advantages.size(0), ", T], got ",
               mask.defined() ? mask.sizes() : torch::IntArrayRef{});
  KAIZEN_CHECK(mask.device() == advantages.device(), fn, ": expected `mask` on ", advantages.device(), ", got ",
               mask.device());
  return advantages.unsqueeze(1) * mask.to(advantages.scalar_type());
}

/// Whitening over the valid tokens of the whole batch: (x − mean) / sqrt(var + ε), var with Bessel's
/// correction (as verl's masked_whiten), zero outside the mask; all-equal valid values give 0.
/// `values` [B, T] float, `mask` [B, T] with at least 2 valid tokens.
[[nodiscard]] inline torch::Tensor masked_whiten(const torch::Tensor& values, const torch::Tensor& mask,
                                                 double epsilon = 1e-8) {
  constexpr std::string_view fn = "masked_whiten";
  detail::check_real(fn, "values", values);
  KAIZEN_CHECK(values.dim() == 2, fn, ": expected [B, T] `values`, got shape ", values.sizes());
  const auto m = detail::mask_as(fn, mask, values);
  const auto n = m.sum();
  KAIZEN_CHECK(n.item<double>() >= 2, fn, ": expected at least 2 valid tokens, got ", n.item<double>());
  detail::check_finite(fn, "values", values, m);
  const auto x = torch::where(m != 0, values, torch::zeros_like(values));
  const auto mean = (x * m).sum() / n;
  const auto var = ((x - mean).square() * m).sum() / (n - 1);
  const auto valid = m != 0;
  const bool constant = (torch::where(valid, x, torch::full_like(x, -INFINITY)).max() ==
                         torch::where(valid, x, torch::full_like(x, INFINITY)).min()).item<bool>();
  if (constant) return torch::zeros_like(values);
  return (x - mean) * torch::rsqrt(var + epsilon) * m;
}

/// REINFORCE++: per-token rewards [B, T] (e.g. kl_penalized_rewards) → discounted returns over valid
/// tokens R_t = r_t + γ R_{next valid t}, whitened over the batch (masked_whiten).
[[nodiscard]] inline torch::Tensor reinforce_pp_advantages(const torch::Tensor& token_rewards, const torch::Tensor& mask,
                                                           double gamma = 1.0) {
  constexpr std::string_view fn = "reinforce_pp_advantages";
  detail::check_real(fn, "token_rewards", token_rewards);
  KAIZEN_CHECK(token_rewards.dim() == 2, fn, ": expected [B, T] `token_rewards`, got shape ", token_rewards.sizes());
  KAIZEN_CHECK(gamma >= 0 && gamma <= 1, fn, ": expected gamma in [0, 1], got ", gamma);
  const auto m = detail::mask_as(fn, mask, token_rewards);
  detail::check_finite(fn, "token_rewards", token_rewards, m);
  const auto r = torch::where(m != 0, token_rewards, torch::zeros_like(token_rewards));
  auto returns = torch::zeros_like(r);
  auto running = torch::zeros({r.size(0)}, r.options());
  for (std::int64_t t = r.size(1) - 1; t >= 0; --t) {
    const auto valid = m.select(1, t) != 0;
    running = torch::where(valid, r.select(1, t) + gamma * running, running);
    returns.select(1, t).copy_(torch::where(valid, running, torch::zeros_like(running)));
  }
  return masked_whiten(returns, m);
}

/// REINFORCE++ with a group baseline: (r_i − μ_g) broadcast to the tokens of row i, then whitened
/// over all valid tokens of the batch. `rewards` [B], `group_ids` [B], `mask` [B, T].
[[nodiscard]] inline torch::Tensor reinforce_pp_baseline_advantages(const torch::Tensor& rewards,
                                                                    const torch::Tensor& group_ids,
                                                                    const torch::Tensor& mask) {
  const auto centred = group_advantages(rewards, group_ids, {.scale = AdvantageScale::none});
  return masked_whiten(broadcast_to_tokens(centred, mask), mask);
}

/// Output of gae().
struct GaeResult {
  torch::Tensor advantages;  ///< [B, T], zero outside the mask
  torch::Tensor returns;     ///< [B, T] = advantages + values on valid tokens, zero elsewhere
};

/// Generalised advantage estimation over the valid tokens of each row (padding and prompt columns are
/// skipped: "next" means the next valid token, whose value is 0 after the last one):
///   δ_t = r_t + γ V_next − V_t,   A_t = δ_t + γ λ A_next.
/// `token_rewards`, `values` [B, T] same dtype/device; `mask` [B, T]. No whitening (see masked_whiten).
[[nodiscard]] inline GaeResult gae(const torch::Tensor& token_rewards, const torch::Tensor& values,
                                   const torch::Tensor& mask, double gamma = 1.0, double lambda = 0.95) {
  constexpr std::string_view fn = "gae";
  detail::check_real(fn, "token_rewards", token_rewards);
  KAIZEN_CHECK(token_rewards.dim() == 2, fn, ": expected [B, T] `token_rewards`, got shape ", token_rewards.sizes());
  detail::check_like(fn, "values", values, token_rewards, "token_rewards");
  KAIZEN_CHECK(gamma >= 0 && gamma <= 1, fn, ": expected gamma in [0, 1], got ", gamma);
  KAIZEN_CHECK(lambda >= 0 && lambda <= 1, fn, ": expected lambda in [0, 1], got ", lambda);
  const auto m = detail::mask_as(fn, mask, token_rewards);
  detail::check_finite(fn, "token_rewards", token_rewards, m);
  detail::check_finite(fn, "values", values, m);
  const auto r = token_rewards.detach();
  const auto v = values.detach();
  auto advantages = torch::zeros_like(r);
  auto next_value = torch::zeros({r.size(0)}, r.options());
  auto next_advantage = torch::zeros({r.size(0)}, r.options());
  for (std::int64_t t = r.size(1) - 1; t >= 0; --t) {
    const auto valid = m.select(1, t) != 0;
    const auto delta = r.select(1, t) + gamma * next_value - v.select(1, t);
    const auto a = delta + gamma * lambda * next_advantage;
    next_advantage = torch::where(valid, a, next_advantage);
    next_value = torch::where(valid, v.select(1, t), next_value);
    advantages.select(1, t).copy_(torch::where(valid, a, torch::zeros_like(a)));
  }
  return {advantages, (advantages + v) * m};
}

}  // namespace kaizen::policy_gradient
