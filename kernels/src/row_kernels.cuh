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

/// Adds values u (already in base-2 units, u = x·inv_t·log2e) to an online state.
template <int K>
__device__ __forceinline__ void online_add(Online& st, const float (&u)[K]) {
  float vmax = u[0];
#pragma unroll
  for (int k = 1; k < K; ++k) vmax = fmaxf(vmax, u[k]);
  if (vmax == -INFINITY) return;
  if (vmax > st.m) st.rescale_to(vmax);
#pragma unroll
  for (int k = 0; k < K; ++k) {
    const float d = fmaxf(u[k] - st.m, -126.0f);  // masked logits add 2^-126, never 0·(−inf)
    const float e = exp2f(d);
    st.s += e;
    st.t = fmaf(e, d, st.t);
  }
}

/// This thread's share of the online statistics of row x[0..v) with u = x·scale.
template <class T>
__device__ __forceinline__ Online row_online(const T* x, std::int64_t v, float scale) {
  Online st;
  const std::int64_t head = head_elements(x, v);
  for (std::int64_t j = threadIdx.x; j < head; j += blockDim.x) {
    const float u[1] = {to_float(x[j]) * scale};
    online_add(st, u);
  }
  constexpr int W = Vec<T>::size;
  const std::int64_t nvec = (v - head) / W;
  const auto* body = reinterpret_cast<const Vec<T>*>(x + head);
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * kUnroll;
  for (std::int64_t base = threadIdx.x; base < nvec; base += step) {
    Vec<T> buf[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const std::int64_t idx = base + static_cast<std::int64_t>(k) * blockDim.x;
      if (idx < nvec) buf[k] = load_streaming(body + idx);
    }
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const std::int64_t idx = base + static_cast<std::int64_t>(k) * blockDim.x;
      if (idx < nvec) {
        float u[W];
#pragma unroll
        for (int e = 0; e < W; ++e) u[e] = to_float(buf[k].v[e]) * scale;
        online_add(st, u);
      }
    }
  }
  for (std::int64_t j = head + nvec * W + threadIdx.x; j < v; j += blockDim.x) {
    const float u[1] = {to_float(x[j]) * scale};
    online_add(st, u);
  }
  return st;
}

/// Per-row constants of the backward: ∂/∂x_j = inv_t·(g_lp(δ_{j,target} − p_j) − g_h p_j (d_j + H)),
/// d_j = z_j − lse (natural units, clamped at −87), p_j = e^{d_j}.
struct RowGrad {
  float inv_t;
  float lse;
  float entropy;
  float g_lp;
  float g_h;
  std::int64_t target;
};

__device__ __forceinline__ float grad_element(float x, std::int64_t j, const RowGrad& r) {
  const float d = fmaxf(fmaf(x, r.inv_t, -r.lse), -87.0f);
  const float p = exp2f(d * kLog2e);
  const float g = (j == r.target ? r.g_lp : 0.0f) - p * fmaf(r.g_h, d + r.entropy, r.g_lp);
  return g * r.inv_t;
}

/// Writes the gradient of row x[0..v) into g[0..v) (g may equal x). CTA-cooperative.
template <class T>
__device__ __forceinline__ void row_backward(const T* x, T* g, std::int64_t v, const RowGrad& r) {
  const std::int64_t head = head_elements(x, v);
  constexpr int W = Vec<T>::size;
  // The vector path needs x and g equally misaligned; otherwise the whole row goes element by element.
  const bool vector_ok = head_elements(static_cast<const T*>(g), v) == head;
  const std::int64_t scalar_end = vector_ok ? head : v;
  for (std::int64_t j = threadIdx.x; j < scalar_end; j += blockDim.x)
    g[j] = from_float<T>(grad_element(to_float(x[j]), j, r));
  if (!vector_ok) return;
  const std::int64_t nvec = (v - head) / W;
  const auto* in = reinterpret_cast<const Vec<T>*>(x + head);
  auto* out = reinterpret_cast<Vec<T>*>(g + head);
  const std::int64_t step = static_cast<std::int64_t>(blockDim.x) * kUnroll;
  for (std::int64_t base = threadIdx.x; base < nvec; base += step) {
    Vec<T> buf[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const std::int64_t idx = base + static_cast<std::int64_t>(k) * blockDim.x;
      if (idx < nvec) buf[k] = load_vec(in + idx);
    }
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const std::int64_t idx = base + static_cast<std::int64_t>(k) * blockDim.x;
      if (idx < nvec) {
        const std::int64_t j0 = head + idx * W;
        Vec<T> o;
#pragma unroll
        for (int e = 0; e < W; ++e) o.v[e] = from_float<T>(grad_element(to_float(buf[k].v[e]), j0 + e, r));
        store_vec(out + idx, o);
      }
    }
  }
  for (std::int64_t j = head + nvec * W + threadIdx.x; j < v; j += blockDim.x)
    g[j] = from_float<T>(grad_element(to_float(x[j]), j, r));
}

}  // namespace kaizen::kernels::detail
