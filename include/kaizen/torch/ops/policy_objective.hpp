// kaizen/torch/ops/policy_objective.hpp - the fused policy-gradient objective: policy_gradient::policy_loss
// in one pass over the per-token inputs, with the gradient computed in that pass.
//
//   policy_objective(logprobs, old_logprobs, ref_logprobs, advantages, mask, objective[, entropy][, N])
//       → {loss, PolicyLossMetrics}
//
// For every Objective<Ratio, Clip, Kl, Aggregate> (options.hpp) the loss, its gradient with respect to
// the log-probs (and the entropy) and every metric equal policy_loss's (policy_loss.hpp), which
// composes LibTorch ops under autograd. Here each row is read twice: once for its sums (valid tokens
// n_i, the GSPO/GMPO log-ratio sum, the sequence-level importance gap, non-finite inputs), once for
// the tokens, whose ℓ_t and dℓ_t/dlp_t come from policy_gradient/detail/token_objective.hpp (the math
// shared with the CUDA kernel). Aggregation is a per-token weight applied in the same pass:
//   L = s · Σ_i Σ_t m_it ℓ_it / div_i,   ∂L/∂lp_it = s · m_it · dℓ_it/dlp_it / div_i,
//   div_i = n_i for SeqMeanTokenMean, else 1;  s = 1/N (1/(N · L_c) for SeqMeanTokenSumNorm),
// N = the caller's normaliser or this batch's (valid tokens for TokenMean, rows otherwise). The
// backward multiplies the saved per-token gradient by the upstream gradient: nothing is recomputed.
//
// Dispatch: CPU tensors (float32 / float64) run the fused loop, rows split over LibTorch's threads
// (cpu_parallel.hpp); CUDA tensors run kaizen::kernels::policy_objective when kaizen was built with
// its kernels (KAIZEN_WITH_CUDA), and are an error naming the fix otherwise.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include <torch/torch.h>

#include <kaizen/config.hpp>
#include <kaizen/core/error.hpp>
#include <kaizen/policy_gradient/detail/checks.hpp>
#include <kaizen/policy_gradient/detail/token_objective.hpp>
#include <kaizen/policy_gradient/options.hpp>
#include <kaizen/policy_gradient/policy_loss.hpp>
#include <kaizen/policy_gradient/ratio.hpp>
#include <kaizen/torch/ops/cpu_parallel.hpp>

#if KAIZEN_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <kaizen/kernels/policy_objective.hpp>
#endif

namespace kaizen::ops {

/// The loss (a scalar with autograd) and policy_loss's metrics for the same call.
struct PolicyObjectiveResult {
  torch::Tensor loss;
  policy_gradient::PolicyLossMetrics metrics;
};

namespace detail {

static_assert(policy_gradient::detail::kLogRatioBound == policy_gradient::kMaxLogRatio,
              "token_objective.hpp and ratio.hpp must bound the log-ratio alike");

/// Raw views of one call's prepared inputs: contiguous [B, T] of S (the mask converted to S);
/// `advantages` is read at row · adv_row_stride + t · adv_col_stride ([B] or [B, T] inputs).
template <class S>
struct ObjectiveRows {
  const S* logp = nullptr;
  const S* old = nullptr;
  const S* ref = nullptr;      ///< null without a KL term
  const S* adv = nullptr;
  std::int64_t adv_row_stride = 0;
  std::int64_t adv_col_stride = 0;
  const S* mask = nullptr;
  const S* entropy = nullptr;  ///< null without an entropy input
  const S* sampler = nullptr;  ///< null without truncated importance sampling
  std::int64_t cols = 0;
  S* grad = nullptr;           ///< out: m · dℓ/dlp / div_i, 0 on padding
  double* stats = nullptr;     ///< out: [B, kRowStatCount] (token_objective.hpp)
};

/// The fused loop over rows [begin, end).
template <policy_gradient::RatioLevel R, policy_gradient::ClipMode C, policy_gradient::KlEstimator K, class S>
void objective_rows_cpu(const ObjectiveRows<S>& x, const policy_gradient::detail::TokenObjectiveParams<S>& p,
                        std::int64_t begin, std::int64_t end) {
  namespace pgd = policy_gradient::detail;
  using policy_gradient::ImportanceLevel;
  using policy_gradient::RatioLevel;
  constexpr bool row_ratio_used = R != RatioLevel::token;
  const std::int64_t cols = x.cols;
  for (std::int64_t row = begin; row < end; ++row) {
    const std::int64_t o = row * cols;
    const S* lp = x.logp + o;
    const S* old = x.old + o;
    const S* mask = x.mask + o;
    const S* adv = x.adv + row * x.adv_row_stride;
    const std::int64_t as = x.adv_col_stride;
    const S* ref = x.ref != nullptr ? x.ref + o : nullptr;
    const S* entropy = x.entropy != nullptr ? x.entropy + o : nullptr;
    const S* sampler = x.sampler != nullptr ? x.sampler + o : nullptr;
    S* grad = x.grad + o;
    double* st = x.stats + row * pgd::kRowStatCount;
    for (int k = 0; k < pgd::kRowStatCount; ++k) st[k] = 0.0;

    // Pass 1: the row's sums.
    double n = 0, log_ratio_sum = 0, gap_sum = 0, bad = 0;
    for (std::int64_t t = 0; t < cols; ++t) {
      const S m = mask[t];
      if (m == S(0)) continue;
      n += static_cast<double>(m);
      const S a = adv[t * as];
      const bool finite = pgd::is_finite_value(lp[t]) && pgd::is_finite_value(old[t]) && pgd::is_finite_value(a) &&
                          (ref == nullptr || pgd::is_finite_value(ref[t])) &&
                          (entropy == nullptr || pgd::is_finite_value(entropy[t])) &&
                          (sampler == nullptr || pgd::is_finite_value(sampler[t]));
      if (!finite) {
        bad += 1;
        continue;
      }
      if constexpr (row_ratio_used) {
        log_ratio_sum += static_cast<double>(m) * static_cast<double>(pgd::row_log_ratio_term<R, C>(lp[t], old[t], a, p));
      }
      if (sampler != nullptr) gap_sum += static_cast<double>(old[t] - sampler[t]);
    }
    st[pgd::kStatTokens] = n;
    st[pgd::kStatNonFinite] = bad;
    if (n <= 0 || bad > 0) {  // an error the caller reports; leave defined values behind
      st[pgd::kStatEmptyRows] = n <= 0 ? 1.0 : 0.0;
      for (std::int64_t t = 0; t < cols; ++t) grad[t] = S(0);
      continue;
    }
    const S rho = row_ratio_used ? pgd::row_ratio<S>(log_ratio_sum, n) : S(1);
    const S row_weight = sampler != nullptr && p.importance_level == ImportanceLevel::sequence
                             ? pgd::importance_weight(static_cast<S>(gap_sum), p)
                             : S(1);
    const S div = static_cast<S>(p.per_row_mean ? n : 1.0);

    // Pass 2: the tokens.
    for (std::int64_t t = 0; t < cols; ++t) {
      const S m = mask[t];
      if (m == S(0)) {
        grad[t] = S(0);
        continue;
      }
      const S w = sampler == nullptr ? S(1)
                  : p.importance_level == ImportanceLevel::token ? pgd::importance_weight(S(old[t] - sampler[t]), p)
                                                                 : row_weight;
      const S h = entropy != nullptr ? entropy[t] : S(0);
      const auto terms = pgd::token_terms<R, C, K>(lp[t], old[t], ref != nullptr ? ref[t] : S(0), adv[t * as], h, w,
                                                   rho, p);
      grad[t] = m * terms.grad / div;
      pgd::add_token_stats(st, terms, m, entropy != nullptr ? h : lp[t], w);
    }
    pgd::finish_row_stats(st, p.per_row_mean);
  }
}

/// A CPU tensor, or a CUDA tensor in a build with the kernels.
inline void check_objective_device(std::string_view fn, const torch::Tensor& t) {
  if (t.is_cuda()) {
    KAIZEN_CHECK(kWithCudaKernels, fn, ": got a CUDA tensor (", t.device(),
                 ") but kaizen was built without its CUDA kernels (KAIZEN_WITH_CUDA=0); reconfigure with a CUDA "
                 "compiler and -DKAIZEN_ENABLE_CUDA=ON, or move the tensors to the CPU");
    return;
  }
  KAIZEN_CHECK(t.is_cpu(), fn, ": expected a CPU or CUDA tensor, got device ", t.device());
}

/// Autograd node: the loss value and the per-token gradients were computed together in the forward
/// pass; backward only scales them by the upstream gradient times the aggregation scale s.
struct PolicyObjectiveFunction : torch::autograd::Function<PolicyObjectiveFunction> {
  /// `logprobs` / `entropy`: the differentiable inputs (their values are not read here);
  /// `grad_logprobs` / `grad_entropy`: ∂L/∂· / s, absent where no gradient flows; `loss`: the value.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& logprobs,
                               const std::optional<torch::Tensor>& entropy,
                               const std::optional<torch::Tensor>& grad_logprobs,
                               const std::optional<torch::Tensor>& grad_entropy, double loss, double scale) {
    (void)entropy;
    std::vector<torch::Tensor> saved;
    if (grad_logprobs.has_value()) saved.push_back(*grad_logprobs);
    if (grad_entropy.has_value()) saved.push_back(*grad_entropy);
    ctx->save_for_backward(saved);
    ctx->saved_data["grad_logprobs"] = grad_logprobs.has_value();
    ctx->saved_data["grad_entropy"] = grad_entropy.has_value();
    ctx->saved_data["scale"] = scale;
    return torch::full({}, loss, logprobs.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor g = grads[0] * ctx->saved_data["scale"].toDouble();
    std::size_t next = 0;
    const auto take = [&](const char* key) {
      return ctx->saved_data[key].toBool() ? saved[next++] * g : torch::Tensor();
    };
    torch::Tensor grad_logprobs = take("grad_logprobs");
    torch::Tensor grad_entropy = take("grad_entropy");
    return {grad_logprobs, grad_entropy, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

/// Validates like policy_loss (its shared checks, plus those policy_loss leaves to importance_weights and
/// resolve_normaliser) and returns the mask in the log-prob dtype.
template <class Ratio, class Clip, class Kl, class Aggregate>
torch::Tensor check_objective_inputs(std::string_view fn, const policy_gradient::PolicyLossInputs& in,
                                     const policy_gradient::Objective<Ratio, Clip, Kl, Aggregate>& objective,
                                     std::optional<double> normaliser) {
  namespace pgd = policy_gradient::detail;
  using namespace policy_gradient;
  torch::Tensor m = pgd::check_policy_inputs(fn, in, objective);
  check_objective_device(fn, in.logprobs);
  if (objective.importance.action != ImportanceAction::none) {
    KAIZEN_CHECK(objective.importance.cap > 0, fn, ": expected cap > 0, got ", objective.importance.cap);
    pgd::check_like(fn, "sampler_logprobs", in.sampler_logprobs, in.logprobs, "logprobs");
  }
  if (normaliser.has_value()) {
    KAIZEN_CHECK(*normaliser > 0 && std::isfinite(*normaliser), fn, ": expected a positive finite normaliser, got ",
                 *normaliser);
  }
  if constexpr (Aggregate::mode == AggregationMode::seq_mean_token_sum_norm) {
    KAIZEN_CHECK(objective.aggregation.constant > 0, fn, ": expected SeqMeanTokenSumNorm::constant > 0, got ",
                 objective.aggregation.constant);
  }
  return m;
}

}  // namespace detail

/// The policy-gradient loss of `objective` fused into one pass: value, gradient and metrics equal
/// policy_gradient::policy_loss(in, objective, normaliser) (to rounding), for every Objective.
///
/// Inputs as PolicyLossInputs: [B, T] float32 or float64 log-probs (logprobs carries the gradient,
/// entropy may), advantages [B] or [B, T], a bool or floating mask; all on one device (CPU, or CUDA
/// with the kernels). `normaliser`: the global N of the aggregation (aggregation.hpp); defaults to
/// this batch's. The loss is differentiable with respect to `logprobs` and `entropy`; the gradient is
/// computed in the forward pass and only scaled in the backward.
/// Throws kaizen::Error with policy_loss's messages under "ops::policy_objective: ..." on: an
/// undefined, non-float, mis-shaped, wrong-dtype or wrong-device input; a row of `mask` with no valid
/// token; a non-finite input on a valid token; a missing ref_logprobs / entropy / sampler_logprobs the
/// options need; an invalid option value (ε < 0, c <= 1, τ <= 0, cap <= 0, L_c <= 0, β < 0, N <= 0);
/// a CUDA tensor in a build without kernels.
template <class Ratio, class Clip, class Kl, class Aggregate>
[[nodiscard]] PolicyObjectiveResult policy_objective(
    const policy_gradient::PolicyLossInputs& in,
    const policy_gradient::Objective<Ratio, Clip, Kl, Aggregate>& objective,
    std::optional<double> normaliser = std::nullopt) {
  namespace pgd = policy_gradient::detail;
  using namespace policy_gradient;
  constexpr std::string_view fn = "ops::policy_objective";
  const torch::Tensor m = detail::check_objective_inputs(fn, in, objective, normaliser).contiguous();
  const bool with_kl = Kl::estimator != KlEstimator::none;
  const bool with_entropy = in.entropy.defined();
  const bool with_importance = objective.importance.action != ImportanceAction::none;
  const std::int64_t rows = in.logprobs.size(0);
  const std::int64_t cols = in.logprobs.size(1);

  torch::NoGradGuard no_grad;
  const auto prepare = [](const torch::Tensor& t) { return t.detach().contiguous(); };
  const torch::Tensor lp = prepare(in.logprobs);
  const torch::Tensor old = prepare(in.old_logprobs);
  const torch::Tensor adv = prepare(in.advantages);
  const torch::Tensor ref = with_kl ? prepare(in.ref_logprobs) : torch::Tensor();
  const torch::Tensor entropy = with_entropy ? prepare(in.entropy) : torch::Tensor();
  const torch::Tensor sampler = with_importance ? prepare(in.sampler_logprobs) : torch::Tensor();
  const std::int64_t adv_row_stride = adv.dim() == 1 ? 1 : cols;
  const std::int64_t adv_col_stride = adv.dim() == 1 ? 0 : 1;
  torch::Tensor grad = torch::empty_like(lp);
  const auto params = pgd::token_objective_params(objective);

  // totals[k]: the row statistics summed over rows (max for the ratio maximum).
  std::vector<double> totals(pgd::kRowStatCount, 0.0);
#if KAIZEN_WITH_CUDA
  if (lp.is_cuda()) {
    const c10::cuda::CUDAGuard guard(lp.device());  // launch on the tensors' device, not the current one
    const auto stats_opts = lp.options().dtype(torch::kFloat64);
    torch::Tensor row_stats = torch::empty({rows, pgd::kRowStatCount}, stats_opts);
    torch::Tensor device_totals = torch::empty({pgd::kRowStatCount}, stats_opts);
    const auto ptr = [](const torch::Tensor& t) -> const void* { return t.defined() ? t.data_ptr() : nullptr; };
    const kernels::PolicyObjectiveTensors tensors{
        .logprobs = ptr(lp), .old_logprobs = ptr(old), .ref_logprobs = ptr(ref), .advantages = ptr(adv),
        .advantage_row_stride = adv_row_stride, .advantage_col_stride = adv_col_stride, .mask = ptr(m),
        .entropy = ptr(entropy), .sampler_logprobs = ptr(sampler), .grad_logprobs = grad.data_ptr(),
        .row_stats = row_stats.data_ptr<double>(), .totals = device_totals.data_ptr<double>()};
    kernels::policy_objective(Ratio::level, Clip::mode, Kl::estimator, params,
                              lp.scalar_type() == torch::kFloat64 ? kernels::ObjectiveDType::f64
                                                                  : kernels::ObjectiveDType::f32,
                              tensors, rows, cols, c10::cuda::getCurrentCUDAStream().stream());
    const torch::Tensor host = device_totals.to(torch::kCPU);
    std::copy(host.data_ptr<double>(), host.data_ptr<double>() + pgd::kRowStatCount, totals.begin());
  } else
#endif
  {  // CPU (a CUDA tensor without the kernels was rejected by check_objective_inputs)
    torch::Tensor row_stats = torch::empty({rows, pgd::kRowStatCount}, torch::kFloat64);
    AT_DISPATCH_FLOATING_TYPES(lp.scalar_type(), "kaizen_policy_objective", [&] {
      using S = scalar_t;
      const auto data = [](const torch::Tensor& t) -> const S* { return t.defined() ? t.data_ptr<S>() : nullptr; };
      const detail::ObjectiveRows<S> x{.logp = data(lp), .old = data(old), .ref = data(ref), .adv = data(adv),
                                       .adv_row_stride = adv_row_stride, .adv_col_stride = adv_col_stride,
                                       .mask = data(m), .entropy = data(entropy), .sampler = data(sampler),
                                       .cols = cols, .grad = grad.data_ptr<S>(),
                                       .stats = row_stats.data_ptr<double>()};
      const auto p = pgd::params_as<S>(params);
      detail::parallel_rows(rows, 2 * cols, [&](std::int64_t begin, std::int64_t end) {
        detail::objective_rows_cpu<Ratio::level, Clip::mode, Kl::estimator, S>(x, p, begin, end);
      });
    });
    const double* s = row_stats.data_ptr<double>();
    for (std::int64_t r = 0; r < rows; ++r) pgd::merge_stats(totals.data(), s + r * pgd::kRowStatCount);
  }

  if (totals[pgd::kStatEmptyRows] > 0) pgd::check_rows_nonempty(fn, m);
  if (totals[pgd::kStatNonFinite] > 0) {
    pgd::check_finite(fn, "logprobs", in.logprobs, m);
    pgd::check_finite(fn, "old_logprobs", in.old_logprobs, m);
    pgd::check_finite(fn, "advantages", in.advantages.dim() == 1 ? in.advantages.unsqueeze(1).expand_as(m)
                                                                 : in.advantages, m);
    if (with_kl) pgd::check_finite(fn, "ref_logprobs", in.ref_logprobs, m);
    if (with_entropy) pgd::check_finite(fn, "entropy", in.entropy, m);
    if (with_importance) pgd::check_finite(fn, "sampler_logprobs", in.sampler_logprobs, m);
    fail(fn, ": internal error: non-finite inputs were counted but none was found");
  }

  const double tokens = totals[pgd::kStatTokens];
  const double n = normaliser.has_value() ? *normaliser
                   : Aggregate::mode == AggregationMode::token_mean ? tokens
                                                                     : static_cast<double>(rows);
  KAIZEN_CHECK(n > 0 && std::isfinite(n), fn, ": expected a positive finite normaliser, got ", n);
  double scale = 1.0 / n;
  if constexpr (Aggregate::mode == AggregationMode::seq_mean_token_sum_norm) scale /= objective.aggregation.constant;
  const double loss_value = scale * totals[pgd::kStatLoss];

  torch::Tensor grad_entropy;
  if (with_entropy && in.entropy.requires_grad() && objective.entropy_coefficient != 0) {
    // ∂L/∂H_t = −c_H · s · m_t / div_i (s applied in the backward).
    const torch::Tensor div = params.per_row_mean ? m.sum(1, /*keepdim=*/true) : torch::ones({1, 1}, m.options());
    grad_entropy = m / div * (-objective.entropy_coefficient);
  }
  policy_gradient::PolicyLossMetrics metrics{
      .loss = loss_value,
      .policy_loss = scale * totals[pgd::kStatPolicy],
      .kl = totals[pgd::kStatKl] / tokens,
      .entropy = (with_entropy ? 1.0 : -1.0) * totals[pgd::kStatEntropy] / tokens,
      .clip_fraction_low = totals[pgd::kStatClipLow] / tokens,
      .clip_fraction_high = totals[pgd::kStatClipHigh] / tokens,
      .clip_fraction_dual = totals[pgd::kStatClipDual] / tokens,
      .ratio_mean = totals[pgd::kStatRatioSum] / tokens,
      .ratio_max = totals[pgd::kStatRatioMax],
      .importance_weight_mean = with_importance ? totals[pgd::kStatWeightSum] / tokens : 1.0,
      .tokens = tokens,
      .sequences = static_cast<double>(rows)};
  torch::Tensor loss;
  {
    at::AutoGradMode enable_grad(true);
    const auto optional = [](const torch::Tensor& t) {
      return t.defined() ? std::optional<torch::Tensor>(t) : std::optional<torch::Tensor>();
    };
    loss = detail::PolicyObjectiveFunction::apply(
        in.logprobs, optional(in.entropy), in.logprobs.requires_grad() ? optional(grad) : std::nullopt,
        optional(grad_entropy), loss_value, scale);
  }
  return {loss, metrics};
}

/// Positional form: policy_objective(logprobs, old_logprobs, ref_logprobs, advantages, mask, objective
/// [, entropy][, N]); `ref_logprobs` and `entropy` may be undefined when the options do not use them.
template <class Ratio, class Clip, class Kl, class Aggregate>
[[nodiscard]] PolicyObjectiveResult policy_objective(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                                                     const torch::Tensor& ref_logprobs, const torch::Tensor& advantages,
                                                     const torch::Tensor& mask,
                                                     const policy_gradient::Objective<Ratio, Clip, Kl, Aggregate>& objective,
                                                     const torch::Tensor& entropy = {},
                                                     std::optional<double> normaliser = std::nullopt) {
  return policy_objective(policy_gradient::PolicyLossInputs{.logprobs = logprobs, .old_logprobs = old_logprobs,
                                                            .ref_logprobs = ref_logprobs, .advantages = advantages,
                                                            .mask = mask, .entropy = entropy},
                          objective, normaliser);
}

}  // namespace kaizen::ops
