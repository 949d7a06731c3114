// kernels/src/sampling.cu - one CTA per row: max and normaliser, then bisection for the top-k and
// top-p thresholds, then an inverse-CDF draw by a CTA scan over contiguous segments of the row.
#include <kaizen/kernels/sampling.hpp>

#include "cuda_check.cuh"
#include "device_math.cuh"

namespace kaizen::kernels {

namespace {

constexpr int kThreads = 1024;

/// Order-preserving map of a float to uint32 (larger float ⇒ larger key) and back.
__device__ __forceinline__ std::uint32_t key_of(float f) {
  const std::uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float float_of(std::uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

__device__ __forceinline__ float block_max(float x) {
  __shared__ float partial[32];
  for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = x;
  __syncthreads();
  float total = -INFINITY;
  for (int w = 0; w < static_cast<int>((blockDim.x + 31) / 32); ++w) total = fmaxf(total, partial[w]);
  __syncthreads();
  return total;
}

template <class T>
__global__ void __launch_bounds__(kThreads) sample_kernel(const T* __restrict__ logits, std::int64_t v, float inv_t,
                                                          std::int64_t top_k, float top_p, float min_p,
                                                          const float* __restrict__ uniforms,
                                                          std::int64_t* __restrict__ ids,
                                                          float* __restrict__ logprobs,
                                                          float* __restrict__ filtered_logprobs) {
  const std::int64_t row = blockIdx.x;
  const T* x = logits + row * v;
  const auto u_at = [&](std::int64_t j) { return detail::to_float(x[j]) * inv_t; };
  const auto e_of = [](float u, float m) { return expf(fmaxf(u - m, -87.0f)); };

  float m = -INFINITY;
  for (std::int64_t j = threadIdx.x; j < v; j += blockDim.x) m = fmaxf(m, u_at(j));
  m = block_max(m);
  float total = 0.0f;
  for (std::int64_t j = threadIdx.x; j < v; j += blockDim.x) total += e_of(u_at(j), m);
  total = detail::block_sum(total);

  // Threshold on u: keep u ≥ tau. min-p: e ≥ min_p ⇔ u ≥ m + log(min_p).
  float tau = min_p > 0.0f ? m + logf(min_p) : -INFINITY;
  if (top_k > 0 && top_k < v) {
    // Largest key K with count(u ≥ float_of(K)) ≥ k.
    std::uint32_t lo = key_of(-INFINITY);
    std::uint32_t hi = key_of(m);
    while (lo < hi) {
      const std::uint32_t mid = lo + (hi - lo + 1) / 2;
      const float t = float_of(mid);
      float count = 0.0f;
      for (std::int64_t j = threadIdx.x; j < v; j += blockDim.x) count += u_at(j) >= t ? 1.0f : 0.0f;
      count = detail::block_sum(count);
      if (count >= static_cast<float>(top_k)) lo = mid;
      else hi = mid - 1;
    }
    tau = fmaxf(tau, float_of(lo));
  }
  if (top_p < 1.0f) {
    float survivors = 0.0f;
    for (std::int64_t j = threadIdx.x; j < v; j += blockDim.x) {
      const float u = u_at(j);
      survivors += u >= tau ? e_of(u, m) : 0.0f;
    }
    const float target = top_p * detail::block_sum(survivors);
    // Smallest key K ≥ key(tau) with Σ_{u > float_of(K)} e < target.
    std::uint32_t lo = key_of(tau);
    std::uint32_t hi = key_of(m);
    while (lo < hi) {
      const std::uint32_t mid = lo + (hi - lo) / 2;
      const float t = float_of(mid);
      float above = 0.0f;
      for (std::int64_t j = threadIdx.x; j < v; j += blockDim.x) {
        const float u = u_at(j);
        above += u > t ? e_of(u, m) : 0.0f;
      }
      above = detail::block_sum(above);
      if (above < target) hi = mid;
      else lo = mid + 1;
    }
    tau = fmaxf(tau, float_of(lo));
  }

  // Inverse CDF in vocabulary order: thread t owns the contiguous segment [t·seg, (t+1)·seg).
  const std::int64_t seg = (v + blockDim.x - 1) / blockDim.x;
  const std::int64_t begin = static_cast<std::int64_t>(threadIdx.x) * seg;
  const std::int64_t end = begin + seg < v ? begin + seg : v;
  float mine = 0.0f;
  std::int64_t my_last = -1;
  for (std::int64_t j = begin; j < end; ++j) {
    const float u = u_at(j);
    if (u >= tau) {
      mine += e_of(u, m);
      my_last = j;
    }
  }
  __shared__ float prefix[kThreads];
  __shared__ long long last_kept;
  __shared__ long long chosen;
  prefix[threadIdx.x] = mine;
  if (threadIdx.x == 0) {
    last_kept = -1;
    chosen = -1;
  }
  __syncthreads();
  if (my_last >= 0) atomicMax(&last_kept, static_cast<long long>(my_last));
  if (threadIdx.x == 0) {  // exclusive scan over the CTA's segment sums
    float run = 0.0f;
    for (int t = 0; t < static_cast<int>(blockDim.x); ++t) {
      const float s = prefix[t];
      prefix[t] = run;
      run += s;
    }
  }
  __syncthreads();
  const float kept = detail::block_sum(mine);
  const float r = uniforms[row] * kept;
  const float start = prefix[threadIdx.x];
  if (mine > 0.0f && start <= r && r < start + mine) {
    float acc = start;
    for (std::int64_t j = begin; j < end; ++j) {
      const float u = u_at(j);
      if (u < tau) continue;
      acc += e_of(u, m);
      if (acc > r) {
        chosen = j;  // at most one segment contains r
        break;
      }
    }
    if (acc <= r) chosen = my_last;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    const std::int64_t id = chosen >= 0 ? chosen : last_kept;
    const float d = u_at(id) - m;
    ids[row] = id;
    logprobs[row] = d - logf(total);
    filtered_logprobs[row] = d - logf(kept);
  }
}

}  // namespace

void sample_tokens(const void* logits, DType dtype, std::int64_t rows, std::int64_t v, float inv_temperature,
                   std::int64_t top_k, float top_p, float min_p, const float* uniforms, std::int64_t* ids,
                   float* logprobs, float* filtered_logprobs, void* stream) {
  constexpr const char* fn = "kernels::sample_tokens";
  KAIZEN_CHECK(rows >= 0 && rows <= 0x7fffffffLL, fn, ": expected 0 <= rows < 2^31, got ", rows);
  KAIZEN_CHECK(v >= 1, fn, ": expected a vocabulary of at least 1, got ", v);
  KAIZEN_CHECK(inv_temperature > 0.0f, fn, ": expected 1 / temperature > 0, got ", inv_temperature);
  KAIZEN_CHECK(top_k >= 0, fn, ": expected top_k >= 0 (0 = off), got ", top_k);
  KAIZEN_CHECK(top_p > 0.0f && top_p <= 1.0f, fn, ": expected top_p in (0, 1], got ", top_p);
  KAIZEN_CHECK(min_p >= 0.0f && min_p < 1.0f, fn, ": expected min_p in [0, 1), got ", min_p);
  if (rows == 0) return;
  detail::dispatch_dtype(dtype, fn, [&](auto tag) {
    using T = decltype(tag);
    sample_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(logits), v, inv_temperature, top_k, top_p, min_p, uniforms, ids, logprobs,
        filtered_logprobs);
  });
  check_last_launch(fn);
}

}  // namespace kaizen::kernels
