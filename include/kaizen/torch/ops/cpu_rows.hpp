// kaizen/torch/ops/cpu_rows.hpp - the fused per-row CPU loops behind kaizen::ops (no LibTorch types).
//
// One logits row x[0..V) with temperature T and z = x / T:
//   lse  = log Σ_j exp(z_j)                       (max-subtracted: m = max_j x_j, s = Σ exp((x_j − m)/T))
//   logp = z_y − lse
//   H    = lse − Σ_j p_j z_j = log s − (Σ_j e_j d_j) / s,  with d_j = (x_j − m)/T, e_j = exp(d_j)
//   ∂logp/∂x_j = (δ_jy − p_j) / T
//   ∂H/∂x_j    = −p_j (z_j − E_p[z]) / T = −p_j (z_j − lse + H) / T
// These portable loops serve fp64, non-x86 CPUs and x86 CPUs without AVX2; cpu_avx2.hpp holds the
// AVX2 versions (one pass in L1-sized blocks), cpu_isa.hpp picks. Here the row is read twice (max,
// then the exponential sums) while it sits in the core's L2 cache, so memory sees one read per row;
// the backward reads x once and writes the gradient once, in place when the caller passes the same
// buffer. Inner loops run over L independent accumulators so the compiler
// vectorises them without reassociating a single float sum (no -ffast-math needed); the exponential
// is a branch-free Cephes-style polynomial (≤ 2 ulp on [−87, 88]) that vectorises likewise.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace kaizen::ops::detail {

// GCC (with its default -ftrapping-math) does not vectorise loops with floating-point compares, so
// the clamps and the row max below compare bit patterns as integers instead.

/// max(x, lo) for lo < 0 and x ≤ 0 or x > 0 alike: among negative floats a larger magnitude has a
/// larger unsigned bit pattern, positive floats have the sign bit clear. Written as a bit mask rather
/// than a conditional, which GCC would not if-convert in the entropy loop of row_forward.
[[nodiscard]] inline float clamp_low(float x, float lo) noexcept {
  const auto b = std::bit_cast<std::uint32_t>(x);
  const auto l = std::bit_cast<std::uint32_t>(lo);
  const std::uint32_t above = 0U - static_cast<std::uint32_t>(b > l);  // all ones where b > l
  return std::bit_cast<float>((l & above) | (b & ~above));
}
[[nodiscard]] inline double clamp_low(double x, double lo) noexcept { return x > lo ? x : lo; }

/// Order-preserving map float ↔ int32 (an involution): larger float ⇔ larger key.
[[nodiscard]] inline std::int32_t order_key(float f) noexcept {
  const auto i = std::bit_cast<std::int32_t>(f);
  return i ^ ((i >> 31) & 0x7fffffff);
}
[[nodiscard]] inline float from_order_key(std::int32_t k) noexcept {
  return std::bit_cast<float>(k ^ ((k >> 31) & 0x7fffffff));
}

inline constexpr int kLanes = 16;  ///< independent accumulators per row loop (four SSE / two AVX vectors)

/// exp(x) for x ≤ 88 in float, branch-free so loops over it vectorise; inputs below −87 give e^−87.
[[nodiscard]] inline float exp_approx(float x) noexcept {
  x = clamp_low(x, -87.0f);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round-to-nearest(x/ln2)
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;             // Cody-Waite split of ln 2
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const auto bits = static_cast<std::uint32_t>(static_cast<std::int32_t>(n) + 127) << 23;
  return y * std::bit_cast<float>(bits);
}

/// Accumulation type of a row: double for double logits, float otherwise (bf16/fp16/fp32).
template <class T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <class A>
[[nodiscard]] inline A exp_acc(A x) noexcept {
  if constexpr (std::is_same_v<A, float>) return exp_approx(x);
  else return std::exp(x);
}

template <class T>
[[nodiscard]] inline acc_t<T> row_max(const T* x, std::int64_t v) noexcept {
  if constexpr (std::is_same_v<acc_t<T>, double>) {
    double m = -std::numeric_limits<double>::infinity();
    for (std::int64_t j = 0; j < v; ++j) m = x[j] > m ? static_cast<double>(x[j]) : m;
    return m;
  } else {
    std::int32_t m = order_key(-std::numeric_limits<float>::infinity());
    for (std::int64_t j = 0; j < v; ++j) {
      const std::int32_t k = order_key(static_cast<float>(x[j]));
      m = k > m ? k : m;
    }
    return from_order_key(m);
  }
}

/// Exponents are clamped here before exp and before multiplying by the exponent, so a masked (−inf)
/// logit contributes e^−87 ≈ 1.6e−38 instead of a 0 · (−inf) = NaN to the entropy sums.
template <class A>
inline constexpr A kMinExponent = A(-87);

/// Statistics of one row: log-sum-exp of z, entropy of softmax(z) (when asked) and the log-prob of y.
template <class A>
struct RowStats {
  A lse;
  A entropy;
  A logprob;
};

template <bool WithEntropy, class T>
[[nodiscard]] inline RowStats<acc_t<T>> row_forward(const T* x, std::int64_t v, std::int64_t y,
                                                   acc_t<T> inv_t) noexcept {
  using A = acc_t<T>;
  const A m = row_max(x, v);
  // Blocks of kBlock: an element-wise loop (vectorised with if-conversion) fills e and e·d, then
  // kLanes independent accumulators sum them (vectorised without reassociating any one sum).
  constexpr std::int64_t kBlock = 256;
  A s[kLanes] = {};
  A t[kLanes] = {};
  A e_buf[kBlock];
  A ed_buf[kBlock];
  std::int64_t j = 0;
  for (; j + kBlock <= v; j += kBlock) {
    for (std::int64_t i = 0; i < kBlock; ++i) {
      const A d = clamp_low((static_cast<A>(x[j + i]) - m) * inv_t, kMinExponent<A>);
      const A e = exp_acc(d);
      e_buf[i] = e;
      if constexpr (WithEntropy) ed_buf[i] = e * d;
    }
    for (std::int64_t i = 0; i < kBlock; i += kLanes)
      for (int k = 0; k < kLanes; ++k) s[k] += e_buf[i + k];
    if constexpr (WithEntropy)
      for (std::int64_t i = 0; i < kBlock; i += kLanes)
        for (int k = 0; k < kLanes; ++k) t[k] += ed_buf[i + k];
  }
  for (; j < v; ++j) {
    const A d = clamp_low((static_cast<A>(x[j]) - m) * inv_t, kMinExponent<A>);
    const A e = exp_acc(d);
    s[0] += e;
    if constexpr (WithEntropy) t[0] += e * d;
  }
  A sum = 0, tilt = 0;
  for (int k = 0; k < kLanes; ++k) {
    sum += s[k];
    tilt += t[k];
  }
  const A log_s = std::log(sum);
  RowStats<A> out{};
  out.lse = m * inv_t + log_s;
  out.entropy = WithEntropy ? log_s - tilt / sum : A(0);
  out.logprob = (static_cast<A>(x[y]) - m) * inv_t - log_s;
  return out;
}

/// grad_j = inv_t · (g_lp (δ_jy − p_j) − g_h p_j (z_j − E_p[z])) written to g (which may alias x).
template <bool WithEntropy, class T>
inline void row_backward(const T* x, std::int64_t v, std::int64_t y, acc_t<T> inv_t, acc_t<T> lse,
                         acc_t<T> entropy, acc_t<T> g_lp, acc_t<T> g_h, T* g) noexcept {
  using A = acc_t<T>;
  const A x_y = static_cast<A>(x[y]);  // read before an in-place write overwrites it
  // z_j − E_p[z] = (z_j − lse) + H, written with the clamped d_j = z_j − lse so masked logits stay finite.
  for (std::int64_t j = 0; j < v; ++j) {
    const A d = clamp_low(static_cast<A>(x[j]) * inv_t - lse, kMinExponent<A>);
    const A p = exp_acc(d);
    A grad = -g_lp * p;
    if constexpr (WithEntropy) grad -= g_h * p * (d + entropy);
    g[j] = static_cast<T>(grad * inv_t);
  }
  const A d_y = clamp_low(x_y * inv_t - lse, kMinExponent<A>);
  const A p_y = exp_acc(d_y);
  A grad_y = g_lp * (A(1) - p_y);
  if constexpr (WithEntropy) grad_y -= g_h * p_y * (d_y + entropy);
  g[y] = static_cast<T>(grad_y * inv_t);
}

}  // namespace kaizen::ops::detail
