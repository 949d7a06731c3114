// kernels/src/policy_objective.cu - one CTA per row: a block reduction of the row sums, then every token's
// loss and gradient from policy_gradient/detail/token_objective.hpp, then a block reduction of the row
// statistics; a one-CTA kernel sums the rows in a fixed order. Formulas: kaizen/kernels/policy_objective.hpp.
#include <kaizen/kernels/policy_objective.hpp>
#include <kaizen/kernels/runtime.hpp>

#include <type_traits>

#include "cuda_check.cuh"

namespace kaizen::kernels {

namespace {

namespace pg = policy_gradient;
namespace pgd = policy_gradient::detail;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

/// Block-wide reduction of N doubles (sums; the maximum for index `max_index`, whose values are ≥ 0),
/// in a fixed order; the result is in every thread's `v`. `shared` holds kWarps × N doubles.
template <int N>
__device__ __forceinline__ void block_reduce(double (&v)[N], int max_index, double (*shared)[N]) {
  const auto combine = [max_index](int k, double a, double b) { return k == max_index ? fmax(a, b) : a + b; };
  for (int k = 0; k < N; ++k)
    for (int offset = 16; offset > 0; offset >>= 1) v[k] = combine(k, v[k], __shfl_xor_sync(0xffffffffu, v[k], offset));
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (lane == 0)
    for (int k = 0; k < N; ++k) shared[warp][k] = v[k];
  __syncthreads();
  if (warp == 0) {
    for (int k = 0; k < N; ++k) {
      double x = lane < kWarps ? shared[lane][k] : 0.0;
      for (int offset = 16; offset > 0; offset >>= 1) x = combine(k, x, __shfl_xor_sync(0xffffffffu, x, offset));
      v[k] = x;
    }
  }
  __syncthreads();
  if (threadIdx.x == 0)
    for (int k = 0; k < N; ++k) shared[0][k] = v[k];
  __syncthreads();
  for (int k = 0; k < N; ++k) v[k] = shared[0][k];
  __syncthreads();
}

template <class S>
struct Inputs {
  const S* logp;
  const S* old;
  const S* ref;
  const S* adv;
  std::int64_t adv_row_stride;
  std::int64_t adv_col_stride;
  const S* mask;
  const S* entropy;
  const S* sampler;
  std::int64_t cols;
  S* grad;
  double* row_stats;
};

template <pg::RatioLevel R, pg::ClipMode C, pg::KlEstimator K, class S>
__global__ void __launch_bounds__(kThreads) objective_kernel(Inputs<S> x, pgd::TokenObjectiveParams<S> p) {
  __shared__ double shared_sums[kWarps][4];
  __shared__ double shared_stats[kWarps][pgd::kRowStatCount];
  constexpr bool row_ratio_used = R != pg::RatioLevel::token;
  const std::int64_t row = blockIdx.x;
  const std::int64_t o = row * x.cols;
  const S* lp = x.logp + o;
  const S* old = x.old + o;
  const S* mask = x.mask + o;
  const S* adv = x.adv + row * x.adv_row_stride;
  const std::int64_t as = x.adv_col_stride;
  const S* ref = x.ref != nullptr ? x.ref + o : nullptr;
  const S* entropy = x.entropy != nullptr ? x.entropy + o : nullptr;
  const S* sampler = x.sampler != nullptr ? x.sampler + o : nullptr;
  S* grad = x.grad + o;
  double* out = x.row_stats + row * pgd::kRowStatCount;

  // Sweep 1: n_i, the log-ratio sum, the importance gap, non-finite inputs.
  double sums[4] = {0.0, 0.0, 0.0, 0.0};
  for (std::int64_t t = threadIdx.x; t < x.cols; t += kThreads) {
    const S m = mask[t];
    if (m == S(0)) continue;
    sums[0] += static_cast<double>(m);
    const S a = adv[t * as];
    const bool finite = pgd::is_finite_value(lp[t]) && pgd::is_finite_value(old[t]) && pgd::is_finite_value(a) &&
                        (ref == nullptr || pgd::is_finite_value(ref[t])) &&
                        (entropy == nullptr || pgd::is_finite_value(entropy[t])) &&
                        (sampler == nullptr || pgd::is_finite_value(sampler[t]));
    if (!finite) {
      sums[3] += 1.0;
      continue;
    }
    if constexpr (row_ratio_used) {
      sums[1] += static_cast<double>(m) * static_cast<double>(pgd::row_log_ratio_term<R, C>(lp[t], old[t], a, p));
    }
    if (sampler != nullptr) sums[2] += static_cast<double>(old[t] - sampler[t]);
  }
  block_reduce<4>(sums, -1, shared_sums);
  const double n = sums[0];
  if (n <= 0 || sums[3] > 0) {  // reported by the caller; leave defined values behind
    for (std::int64_t t = threadIdx.x; t < x.cols; t += kThreads) grad[t] = S(0);
    if (threadIdx.x == 0) {
      for (int k = 0; k < pgd::kRowStatCount; ++k) out[k] = 0.0;
      out[pgd::kStatTokens] = n;
      out[pgd::kStatNonFinite] = sums[3];
      out[pgd::kStatEmptyRows] = n <= 0 ? 1.0 : 0.0;
    }
    return;
  }
  const S rho = row_ratio_used ? pgd::row_ratio<S>(sums[1], n) : S(1);
  const S row_weight = sampler != nullptr && p.importance_level == pg::ImportanceLevel::sequence
                           ? pgd::importance_weight(static_cast<S>(sums[2]), p)
                           : S(1);
  const S div = static_cast<S>(p.per_row_mean ? n : 1.0);

  // Sweep 2: the tokens.
  double st[pgd::kRowStatCount];
  for (int k = 0; k < pgd::kRowStatCount; ++k) st[k] = 0.0;
  for (std::int64_t t = threadIdx.x; t < x.cols; t += kThreads) {
    const S m = mask[t];
    if (m == S(0)) {
      grad[t] = S(0);
      continue;
    }
    const S w = sampler == nullptr ? S(1)
                : p.importance_level == pg::ImportanceLevel::token ? pgd::importance_weight(S(old[t] - sampler[t]), p)
                                                                   : row_weight;
    const S h = entropy != nullptr ? entropy[t] : S(0);
    const auto terms =
        pgd::token_terms<R, C, K>(lp[t], old[t], ref != nullptr ? ref[t] : S(0), adv[t * as], h, w, rho, p);
    grad[t] = m * terms.grad / div;
    pgd::add_token_stats(st, terms, m, entropy != nullptr ? h : lp[t], w);
  }
  block_reduce<pgd::kRowStatCount>(st, pgd::kStatRatioMax, shared_stats);
  if (threadIdx.x == 0) {
    st[pgd::kStatTokens] = n;
    st[pgd::kStatNonFinite] = 0.0;
    st[pgd::kStatEmptyRows] = 0.0;
    pgd::finish_row_stats(st, p.per_row_mean);
    for (int k = 0; k < pgd::kRowStatCount; ++k) out[k] = st[k];
  }
}

__global__ void __launch_bounds__(kThreads) totals_kernel(const double* __restrict__ row_stats, std::int64_t rows,
                                                           double* __restrict__ totals) {
  __shared__ double shared[kWarps][pgd::kRowStatCount];
  double v[pgd::kRowStatCount];
  for (int k = 0; k < pgd::kRowStatCount; ++k) v[k] = 0.0;
  for (std::int64_t r = threadIdx.x; r < rows; r += kThreads) {
    pgd::merge_stats(v, row_stats + r * pgd::kRowStatCount);
  }
  block_reduce<pgd::kRowStatCount>(v, pgd::kStatRatioMax, shared);
  if (threadIdx.x == 0)
    for (int k = 0; k < pgd::kRowStatCount; ++k) totals[k] = v[k];
}

template <class T, T V>
using Constant = std::integral_constant<T, V>;

template <class F>
void dispatch_ratio(pg::RatioLevel r, const F& f) {
  switch (r) {
    case pg::RatioLevel::token: return f(Constant<pg::RatioLevel, pg::RatioLevel::token>{});
    case pg::RatioLevel::sequence: return f(Constant<pg::RatioLevel, pg::RatioLevel::sequence>{});
    case pg::RatioLevel::geometric: return f(Constant<pg::RatioLevel, pg::RatioLevel::geometric>{});
  }
  fail("kernels::policy_objective: unknown ratio level ", static_cast<int>(r));
}

/// Symmetric clipping arrives here as asymmetric (pgd::kernel_clip_mode).
template <class F>
void dispatch_clip(pg::ClipMode c, const F& f) {
  switch (pgd::kernel_clip_mode(c)) {
    case pg::ClipMode::none: return f(Constant<pg::ClipMode, pg::ClipMode::none>{});
    case pg::ClipMode::asymmetric: return f(Constant<pg::ClipMode, pg::ClipMode::asymmetric>{});
    case pg::ClipMode::dual: return f(Constant<pg::ClipMode, pg::ClipMode::dual>{});
    case pg::ClipMode::cispo: return f(Constant<pg::ClipMode, pg::ClipMode::cispo>{});
    case pg::ClipMode::sapo: return f(Constant<pg::ClipMode, pg::ClipMode::sapo>{});
    case pg::ClipMode::symmetric: break;
  }
  fail("kernels::policy_objective: unknown clip mode ", static_cast<int>(c));
}

template <class F>
void dispatch_kl(pg::KlEstimator k, const F& f) {
  switch (k) {
    case pg::KlEstimator::none: return f(Constant<pg::KlEstimator, pg::KlEstimator::none>{});
    case pg::KlEstimator::k1: return f(Constant<pg::KlEstimator, pg::KlEstimator::k1>{});
    case pg::KlEstimator::k2: return f(Constant<pg::KlEstimator, pg::KlEstimator::k2>{});
    case pg::KlEstimator::k3: return f(Constant<pg::KlEstimator, pg::KlEstimator::k3>{});
    case pg::KlEstimator::k3_importance: return f(Constant<pg::KlEstimator, pg::KlEstimator::k3_importance>{});
  }
  fail("kernels::policy_objective: unknown KL estimator ", static_cast<int>(k));
}

template <class S>
Inputs<S> typed(const PolicyObjectiveTensors& t, std::int64_t cols) {
  return {static_cast<const S*>(t.logprobs),     static_cast<const S*>(t.old_logprobs),
          static_cast<const S*>(t.ref_logprobs), static_cast<const S*>(t.advantages),
          t.advantage_row_stride,                t.advantage_col_stride,
          static_cast<const S*>(t.mask),         static_cast<const S*>(t.entropy),
          static_cast<const S*>(t.sampler_logprobs), cols,
          static_cast<S*>(t.grad_logprobs),      t.row_stats};
}

}  // namespace

void policy_objective(pg::RatioLevel ratio, pg::ClipMode clip, pg::KlEstimator kl,
                      const pgd::TokenObjectiveParams<double>& params, ObjectiveDType dtype,
                      const PolicyObjectiveTensors& tensors, std::int64_t rows, std::int64_t cols, void* stream) {
  constexpr const char* fn = "kernels::policy_objective";
  KAIZEN_CHECK(rows >= 0 && rows <= 0x7fffffffLL, fn, ": expected 0 <= rows < 2^31, got ", rows);
  KAIZEN_CHECK(cols >= 0 && cols <= 0x7fffffffLL, fn, ": expected 0 <= cols < 2^31, got ", cols);
  KAIZEN_CHECK(pgd::supported_combination(ratio, clip), fn, ": ratio level ", static_cast<int>(ratio),
               " cannot be combined with clip mode ", static_cast<int>(clip), " (see policy_gradient::Objective)");
  KAIZEN_CHECK(kl == pg::KlEstimator::none || tensors.ref_logprobs != nullptr, fn,
               ": expected ref_logprobs for a KL estimator, got nullptr");
  KAIZEN_CHECK(params.importance_action == pg::ImportanceAction::none || tensors.sampler_logprobs != nullptr, fn,
               ": expected sampler_logprobs for truncated importance sampling, got nullptr");
  const auto s = static_cast<cudaStream_t>(stream);
  if (rows > 0) {
    dispatch_ratio(ratio, [&](auto r) {
      dispatch_clip(clip, [&](auto c) {
        if constexpr (pgd::supported_combination(decltype(r)::value, decltype(c)::value)) {
          dispatch_kl(kl, [&](auto k) {
            constexpr auto R = decltype(r)::value;
            constexpr auto C = decltype(c)::value;
            constexpr auto K = decltype(k)::value;
            if (dtype == ObjectiveDType::f64) {
              objective_kernel<R, C, K, double><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(
                  typed<double>(tensors, cols), params);
            } else {
              objective_kernel<R, C, K, float><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(
                  typed<float>(tensors, cols), pgd::params_as<float>(params));
            }
          });
        } else {
          fail(fn, ": unsupported combination");  // rejected above; kept for the compile-time branch
        }
      });
    });
    check_last_launch(fn);
  }
  totals_kernel<<<1, kThreads, 0, s>>>(tensors.row_stats, rows, tensors.totals);
  check_last_launch(fn);
}

}  // namespace kaizen::kernels
