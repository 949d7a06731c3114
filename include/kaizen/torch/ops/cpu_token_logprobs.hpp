// kaizen/torch/ops/cpu_token_logprobs.hpp - the CPU token log-prob forward and backward over all rows:
// the row loops of the active ISA (cpu_isa.hpp: AVX2 + FMA + F16C loops of cpu_avx2.hpp for fp32,
// bf16 and fp16 rows when the CPU has them; the portable loops of cpu_rows.hpp otherwise, and always
// for fp64), split over LibTorch's threads by parallel_rows (cpu_parallel.hpp).
// Math: cpu_rows.hpp. Used by kaizen::ops::token_logprobs and fused_linear_logprobs (ops.hpp).
#pragma once

#include <cstdint>
#include <type_traits>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <kaizen/torch/ops/cpu_avx2.hpp>
#include <kaizen/torch/ops/cpu_isa.hpp>
#include <kaizen/torch/ops/cpu_parallel.hpp>
#include <kaizen/torch/ops/cpu_rows.hpp>

namespace kaizen::ops::detail {

#if KAIZEN_CPU_X86_AVX2
/// Element types the AVX2 loops take, and their format there (c10's 16-bit types hold the raw bits).
template <class T>
inline constexpr bool kAvx2Rows =
    std::is_same_v<T, float> || std::is_same_v<T, c10::BFloat16> || std::is_same_v<T, c10::Half>;

template <class T>
inline constexpr avx2::Format kAvx2Format = std::is_same_v<T, float>           ? avx2::Format::f32
                                            : std::is_same_v<T, c10::BFloat16> ? avx2::Format::bf16
                                                                               : avx2::Format::f16;
template <class T>
using avx2_element_t = avx2::element_t<kAvx2Format<T>>;
static_assert(sizeof(c10::BFloat16) == 2 && sizeof(c10::Half) == 2);
#endif

/// Forward statistics of one row with the loops of `isa`.
template <bool WithEntropy, class T>
[[nodiscard]] inline RowStats<acc_t<T>> forward_row(const T* x, std::int64_t v, std::int64_t y, acc_t<T> inv_t,
                                                    [[maybe_unused]] CpuIsa isa) noexcept {
#if KAIZEN_CPU_X86_AVX2
  if constexpr (kAvx2Rows<T>) {
    if (isa == CpuIsa::avx2)
      return avx2::row_forward<kAvx2Format<T>, WithEntropy>(reinterpret_cast<const avx2_element_t<T>*>(x), v, y,
                                                            inv_t);
  }
#endif
  return row_forward<WithEntropy>(x, v, y, inv_t);
}

/// Gradient of one row with the loops of `isa`, written to g (which may alias x).
template <bool WithEntropy, class T>
inline void backward_row(const T* x, std::int64_t v, std::int64_t y, acc_t<T> inv_t, acc_t<T> lse, acc_t<T> entropy,
                         acc_t<T> g_lp, acc_t<T> g_h, T* g, [[maybe_unused]] CpuIsa isa) noexcept {
  if (y < 0 || y >= v) {  // no target in this row (a vocabulary slice of fused_linear_logprobs): no δ term
    using A = acc_t<T>;
    const A x0 = static_cast<A>(x[0]);  // read before an in-place write overwrites it
    backward_row<WithEntropy>(x, v, std::int64_t{0}, inv_t, lse, entropy, g_lp, g_h, g, isa);
    const A d = clamp_low(x0 * inv_t - lse, kMinExponent<A>);
    const A p = exp_acc(d);
    A grad = -g_lp * p;
    if constexpr (WithEntropy) grad -= g_h * p * (d + entropy);
    g[0] = static_cast<T>(grad * inv_t);
    return;
  }
#if KAIZEN_CPU_X86_AVX2
  if constexpr (kAvx2Rows<T>) {
    if (isa == CpuIsa::avx2) {
      avx2::row_backward<kAvx2Format<T>, WithEntropy>(reinterpret_cast<const avx2_element_t<T>*>(x), v, y, inv_t, lse,
                                                      entropy, g_lp, g_h, reinterpret_cast<avx2_element_t<T>*>(g));
      return;
    }
  }
#endif
  row_backward<WithEntropy>(x, v, y, inv_t, lse, entropy, g_lp, g_h, g);
}

/// Rows x[N, V] (contiguous), targets y[N] in [0, V): log-probs, log-sum-exps and (when h is not
/// null) entropies of softmax(x / T), with inv_t = 1 / T, on the ISA active now (active_cpu_isa()).
template <class T>
void token_logprobs_rows(const T* x, const std::int64_t* y, std::int64_t n, std::int64_t v, acc_t<T> inv_t,
                         acc_t<T>* logp, acc_t<T>* lse, acc_t<T>* h) {
  const CpuIsa isa = active_cpu_isa();
  parallel_rows(n, v, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      if (h != nullptr) {
        const auto s = forward_row<true>(x + i * v, v, y[i], inv_t, isa);
        logp[i] = s.logprob;
        lse[i] = s.lse;
        h[i] = s.entropy;
      } else {
        const auto s = forward_row<false>(x + i * v, v, y[i], inv_t, isa);
        logp[i] = s.logprob;
        lse[i] = s.lse;
      }
    }
  });
}

/// grad[N, V] (may alias x) = ∂/∂x of Σ_i g_lp[i] logp_i + g_h[i] H_i, from the forward's lse (and
/// entropy h, needed when g_h is not null); g_lp / g_h null mean zero. ISA: active_cpu_isa().
template <class T>
void token_logprobs_grad_rows(const T* x, const std::int64_t* y, std::int64_t n, std::int64_t v, acc_t<T> inv_t,
                              const acc_t<T>* lse, const acc_t<T>* h, const acc_t<T>* g_lp, const acc_t<T>* g_h,
                              T* grad) {
  using A = acc_t<T>;
  const CpuIsa isa = active_cpu_isa();
  parallel_rows(n, v, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      const A glp = g_lp != nullptr ? g_lp[i] : A(0);
      if (g_h != nullptr)
        backward_row<true>(x + i * v, v, y[i], inv_t, lse[i], h[i], glp, g_h[i], grad + i * v, isa);
      else
        backward_row<false>(x + i * v, v, y[i], inv_t, lse[i], A(0), glp, A(0), grad + i * v, isa);
    }
  });
}

}  // namespace kaizen::ops::detail
