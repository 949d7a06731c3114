// kernels/src/row_kernels.cuh - CTA-cooperative passes over one logits row, shared by the token
// log-prob, fused-linear and sampling kernels: the online statistics pass (forward) and the gradient
// pass (backward). Both stream the row in 16-byte vectors with an unaligned scalar head and tail.
#pragma once

#include "device_math.cuh"

namespace kaizen::kernels::detail {

inline constexpr int kUnroll = 4;  ///< vectors in flight per thread (memory-level parallelism)

template <class T>
__device__ __forceinline__ Vec<T> load_streaming(const Vec<T>* p) {
  const uint4 raw = __ldcs(reinterpret_cast<const uint4*>(p));
  Vec<T> out;
  memcpy(&out, &raw, sizeof(out));
  return out;
}

template <class T>
__device__ __forceinline__ Vec<T> load_vec(const Vec<T>* p) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  Vec<T> out;
  memcpy(&out, &raw, sizeof(out));
  return out;
}

template <class T>
__device__ __forceinline__ void store_vec(Vec<T>* p, const Vec<T>& value) {
  uint4 raw;
  memcpy(&raw, &value, sizeof(raw));
  *reinterpret_cast<uint4*>(p) = raw;
}

/// 2^x by the hardware's ex2.approx (flushes subnormal results to 0). Called only after the clamp at
/// −126, so the range guard of exp2f is dead weight; NaN stays NaN.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// max(d, lo) by comparison: a NaN d stays NaN (fmaxf would return lo and drop it).
__device__ __forceinline__ float clamp_low(float d, float lo) { return d < lo ? lo : d; }

/// Adds values u (already in base-2 units, u = x·inv_t·log2e) to an online state; the tilt t only when
/// kEntropy (a template switch: no FFMA per element without entropy). A NaN u makes s (and t) NaN.
template <bool kEntropy, int K>
__device__ __forceinline__ void online_add(Online& st, const float (&u)[K]) {
  float vmax = u[0];
#pragma unroll
  for (int k = 1; k < K; ++k) vmax = fmaxf(vmax, u[k]);
  if (vmax == -INFINITY) return;
  if (vmax > st.m) st.rescale_to(vmax);
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const float d = clamp_low(u[k] - st.m, -126.0f);  // masked logits add 2^-126, never 0·(−inf)
    const float e = fast_exp2(d);
    st.s += e;
    if constexpr (kEntropy) st.t = fmaf(e, d, st.t);
  }
}

/// This thread's share of the online statistics of row x[0..v) with u = x·scale. 32-bit in-row indices
/// (v < 2^31, checked on the host).
template <bool kEntropy, class T>
__device__ __forceinline__ Online row_online(const T* x, int v, float scale) {
  Online st;
  const int head = static_cast<int>(head_elements(x, v));
  for (int j = threadIdx.x; j < head; j += blockDim.x) {
    const float u[1] = {to_float(x[j]) * scale};
    online_add<kEntropy>(st, u);
  }
  constexpr int W = Vec<T>::size;
  const int nvec = (v - head) / W;
  const auto* body = reinterpret_cast<const Vec<T>*>(x + head);
  const int threads = static_cast<int>(blockDim.x);
  for (int base = threadIdx.x; base < nvec; base += threads * kUnroll) {
    Vec<T> buf[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const int idx = base + k * threads;
      if (idx < nvec) buf[k] = load_streaming(body + idx);
    }
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const int idx = base + k * threads;
      if (idx < nvec) {
        float u[W];
#pragma unroll
        for (int e = 0; e < W; ++e) u[e] = to_float(buf[k].v[e]) * scale;
        online_add<kEntropy>(st, u);
      }
    }
  }
  for (int j = head + nvec * W + static_cast<int>(threadIdx.x); j < v; j += threads) {
    const float u[1] = {to_float(x[j]) * scale};
    online_add<kEntropy>(st, u);
  }
  return st;
}

/// Per-row constants of the backward: ∂/∂x_j = inv_t·(g_lp(δ_{j,target} − p_j) − g_h p_j (d_j + H)),
/// d_j = z_j − lse (natural units, clamped at −87 by comparison so NaN flows), p_j = e^{d_j}.
/// target < 0: no target term (an out-of-range target; the forward gave NaN).
struct RowGrad {
  float inv_t;
  float lse;
  float entropy;
  float g_lp;
  float g_h;
  int target;
};

__device__ __forceinline__ float grad_element(float x, int j, const RowGrad& r) {
  const float d = clamp_low(fmaf(x, r.inv_t, -r.lse), -87.0f);
  const float p = fast_exp2(d * kLog2e);
  const float g = (j == r.target ? r.g_lp : 0.0f) - p * fmaf(r.g_h, d + r.entropy, r.g_lp);
  return g * r.inv_t;
}

/// Writes the gradient of row x[0..v) into g[0..v) (g may equal x). CTA-cooperative.
template <class T>
__device__ __forceinline__ void row_backward(const T* x, T* g, int v, const RowGrad& r) {
  const int head = static_cast<int>(head_elements(x, v));
  const int threads = static_cast<int>(blockDim.x);
  constexpr int W = Vec<T>::size;
  // The vector path needs x and g equally misaligned; otherwise the row goes element by element, with
  // kUnroll·W independent loads in flight per thread.
  if (head_elements(static_cast<const T*>(g), v) != head) {
    constexpr int U = 8;
    for (int base = threadIdx.x; base < v; base += threads * U) {
      float xs[U];
#pragma unroll
      for (int k = 0; k < U; ++k) {
        const int j = base + k * threads;
        xs[k] = j < v ? to_float(x[j]) : 0.0f;
      }
#pragma unroll
      for (int k = 0; k < U; ++k) {
        const int j = base + k * threads;
        if (j < v) g[j] = from_float<T>(grad_element(xs[k], j, r));
      }
    }
    return;
  }
  for (int j = threadIdx.x; j < head; j += threads) g[j] = from_float<T>(grad_element(to_float(x[j]), j, r));
  const int nvec = (v - head) / W;
  const auto* in = reinterpret_cast<const Vec<T>*>(x + head);
  auto* out = reinterpret_cast<Vec<T>*>(g + head);
  for (int base = threadIdx.x; base < nvec; base += threads * kUnroll) {
    Vec<T> buf[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const int idx = base + k * threads;
      if (idx < nvec) buf[k] = load_vec(in + idx);
    }
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const int idx = base + k * threads;
      if (idx < nvec) {
        const int j0 = head + idx * W;
        Vec<T> o;
#pragma unroll
        for (int e = 0; e < W; ++e) o.v[e] = from_float<T>(grad_element(to_float(buf[k].v[e]), j0 + e, r));
        store_vec(out + idx, o);
      }
    }
  }
  for (int j = head + nvec * W + static_cast<int>(threadIdx.x); j < v; j += threads)
    g[j] = from_float<T>(grad_element(to_float(x[j]), j, r));
}

}  // namespace kaizen::kernels::detail
