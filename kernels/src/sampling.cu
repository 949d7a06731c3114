// kernels/src/sampling.cu - one 1024-thread CTA per row: a max pass, then a radix select on the bit
// pattern of e = exp(u − m) for the top-k threshold (3 count-histogram passes) and the top-p threshold
// (3 count+mass histogram passes), then an inverse-CDF draw over fixed-point masses by a CTA scan over
// contiguous segments. All masses are uint64 fixed point, so every sum is exact and order-free: the draw
// always lands on a kept token with positive mass. Rules and the shared arithmetic:
// kaizen/torch/ops/sampling_select.hpp (the CPU path and the host tests use the same functions).
#include <kaizen/kernels/sampling.hpp>

#include <kaizen/torch/ops/sampling_select.hpp>

#include "cuda_check.cuh"
#include "device_math.cuh"
#include "row_kernels.cuh"

namespace kaizen::kernels {

namespace {

namespace sm = kaizen::ops::sampling;

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kUnrollVec = 2;  // 1024 threads × 2 × 16 B in flight per row; 4 spilled at bf16 (64-register cap)

struct DeviceExp {
  __host__ __device__ float operator()(float d) const { return expf(d); }
};

__device__ __forceinline__ float block_max(float x) {
  __shared__ float partial[kWarps];
  for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = x;
  __syncthreads();
  float total = -INFINITY;
  for (int w = 0; w < kWarps; ++w) total = fmaxf(total, partial[w]);
  __syncthreads();
  return total;
}

/// Exclusive prefix sum of x over the CTA in thread order; `total` gets the sum over all threads.
__device__ __forceinline__ unsigned long long block_exclusive_scan(unsigned long long x, unsigned long long& total) {
  __shared__ unsigned long long warp_sums[kWarps];
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  unsigned long long inc = x;
  for (int o = 1; o < 32; o <<= 1) {
    const unsigned long long y = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += y;
  }
  if (lane == 31) warp_sums[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    unsigned long long w = warp_sums[lane];
    for (int o = 1; o < 32; o <<= 1) {
      const unsigned long long y = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += y;
    }
    warp_sums[lane] = w;
  }
  __syncthreads();
  const unsigned long long offset = warp == 0 ? 0ULL : warp_sums[warp - 1];
  total = warp_sums[kWarps - 1];
  __syncthreads();  // warp_sums is reused by the next scan
  return offset + inc - x;
}

/// Calls f(j, x_j as float) for this thread's share of row x[0..v): an unaligned scalar head, then
/// 16-byte vectors, kUnrollVec in flight per thread, then the scalar tail. 32-bit in-row indices.
template <class T, class F>
__device__ __forceinline__ void for_each_element(const T* x, int v, F&& f) {
  const int head = static_cast<int>(detail::head_elements(x, v));
  for (int j = threadIdx.x; j < head; j += kThreads) f(j, detail::to_float(x[j]));
  constexpr int W = detail::Vec<T>::size;
  const int nvec = (v - head) / W;
  const auto* body = reinterpret_cast<const detail::Vec<T>*>(x + head);
  for (int base = threadIdx.x; base < nvec; base += kThreads * kUnrollVec) {
    detail::Vec<T> buf[kUnrollVec];
#pragma unroll
    for (int k = 0; k < kUnrollVec; ++k) {
      const int idx = base + k * kThreads;
      if (idx < nvec) buf[k] = detail::load_vec(body + idx);
    }
#pragma unroll
    for (int k = 0; k < kUnrollVec; ++k) {
      const int idx = base + k * kThreads;
      if (idx < nvec) {
#pragma unroll
        for (int e = 0; e < W; ++e) f(head + idx * W + e, detail::to_float(buf[k].v[e]));
      }
    }
  }
  for (int j = head + nvec * W + static_cast<int>(threadIdx.x); j < v; j += kThreads) f(j, detail::to_float(x[j]));
}

template <class T>
__global__ void __launch_bounds__(kThreads) sample_kernel(const T* __restrict__ logits, int v, float inv_t,
                                                          std::int64_t top_k, float top_p, float min_p,
                                                          const std::uint64_t* __restrict__ uniforms,
                                                          std::int64_t* __restrict__ ids,
                                                          float* __restrict__ logprobs,
                                                          float* __restrict__ filtered_logprobs) {
  __shared__ unsigned int counts[sm::kMaxBins];
  __shared__ unsigned long long masses[sm::kMaxBins];
  __shared__ int sh_bin;
  __shared__ unsigned long long sh_above;
  __shared__ int sh_chosen;

  const T* x = logits + static_cast<std::int64_t>(blockIdx.x) * v;
  float m = -INFINITY;
  for_each_element(x, v, [&](int, float xv) { m = fmaxf(m, sm::tempered(xv, inv_t)); });
  m = block_max(m);
  const auto weight = [&](float xv) { return sm::weight_of(sm::tempered(xv, inv_t), m, DeviceExp{}); };

  // Order: top-k, then top-p over the top-k survivors, then min-p (lm::LogitTransform's order).
  float tau = 0.0f;
  if (top_k > 0 && top_k < v) {
    std::uint32_t prefix = 0;
    unsigned long long above = 0;
    for (int pass = 0; pass < sm::kPasses; ++pass) {
      const int bins = sm::digit_bins(pass);
      for (int b = threadIdx.x; b < bins; b += kThreads) counts[b] = 0;
      __syncthreads();
      for_each_element(x, v, [&](int, float xv) {
        const std::uint32_t key = sm::key_of(weight(xv));
        if (sm::in_prefix(key, prefix, pass)) atomicAdd(&counts[sm::digit_of(key, pass)], 1u);
      });
      __syncthreads();
      // Thread t owns bins [hi − per + 1, hi], hi = bins − 1 − t·per: thread order is descending bin order.
      const int per = bins / kThreads;
      const int hi = bins - 1 - static_cast<int>(threadIdx.x) * per;
      unsigned long long local = 0;
      for (int i = 0; i < per; ++i) local += counts[hi - i];
      unsigned long long total = 0;
      unsigned long long cum = above + block_exclusive_scan(local, total);
      for (int i = 0; i < per; ++i) {
        const unsigned long long c = counts[hi - i];
        if (sm::topk_bin(cum, c, static_cast<unsigned long long>(top_k))) {
          sh_bin = hi - i;
          sh_above = cum;
        }
        cum += c;
      }
      __syncthreads();
      prefix |= static_cast<std::uint32_t>(sh_bin) << sm::digit_shift(pass);
      above = sh_above;
      __syncthreads();
    }
    tau = fmaxf(tau, sm::value_of(prefix));
  }
  if (top_p < 1.0f) {
    std::uint32_t prefix = 0;
    unsigned long long above = 0;
    unsigned long long target = 0;
    for (int pass = 0; pass < sm::kPasses; ++pass) {
      const int bins = sm::digit_bins(pass);
      for (int b = threadIdx.x; b < bins; b += kThreads) {
        counts[b] = 0;
        masses[b] = 0;
      }
      if (threadIdx.x == 0) sh_bin = bins;
      __syncthreads();
      for_each_element(x, v, [&](int, float xv) {
        const float e = weight(xv);
        if (!(e >= tau && e > 0.0f)) return;
        const std::uint32_t key = sm::key_of(e);
        if (!sm::in_prefix(key, prefix, pass)) return;
        const int d = sm::digit_of(key, pass);
        atomicAdd(&counts[d], 1u);
        atomicAdd(&masses[d], static_cast<unsigned long long>(sm::mass_of(e)));
      });
      __syncthreads();
      const int per = bins / kThreads;
      const int hi = bins - 1 - static_cast<int>(threadIdx.x) * per;
      unsigned long long local = 0;
      for (int i = 0; i < per; ++i) local += masses[hi - i];
      unsigned long long total = 0;
      const unsigned long long excl = block_exclusive_scan(local, total);
      if (pass == 0) target = sm::topp_target(total, static_cast<double>(top_p));
      // The threshold's bin: the lowest non-empty bin whose higher survivors' mass passes topp_bin.
      unsigned long long cum = above + excl;
      for (int i = 0; i < per; ++i) {
        if (counts[hi - i] != 0 && sm::topp_bin(cum, target)) atomicMin(&sh_bin, hi - i);
        cum += masses[hi - i];
      }
      __syncthreads();
      const int chosen = sh_bin;
      cum = above + excl;
      for (int i = 0; i < per; ++i) {
        if (hi - i == chosen) sh_above = cum;
        cum += masses[hi - i];
      }
      __syncthreads();
      prefix |= static_cast<std::uint32_t>(chosen) << sm::digit_shift(pass);
      above = sh_above;
      __syncthreads();
    }
    tau = fmaxf(tau, sm::value_of(prefix));
  }
  tau = fmaxf(tau, min_p);

  // Inverse CDF in vocabulary order: thread t owns the contiguous segment [t·seg, (t+1)·seg).
  const int seg = (v + kThreads - 1) / kThreads;
  const int begin = min(static_cast<int>(threadIdx.x) * seg, v);
  const int end = min(begin + seg, v);
  unsigned long long mine = 0;
  unsigned long long all = 0;
  for (int j = begin; j < end; ++j) {
    const float e = weight(detail::to_float(x[j]));
    const unsigned long long q = sm::mass_of(e);
    all += q;
    if (e >= tau && e > 0.0f) mine += q;
  }
  if (threadIdx.x == 0) sh_chosen = -1;
  unsigned long long kept = 0;
  const unsigned long long start = block_exclusive_scan(mine, kept);
  unsigned long long everything = 0;
  (void)block_exclusive_scan(all, everything);
  if (kept > 0) {
    const unsigned long long r = sm::draw_point(kept, uniforms[blockIdx.x]);
    if (start <= r && r - start < mine) {  // exactly one thread: the segments tile [0, kept)
      unsigned long long local = 0;
      for (int j = begin; j < end; ++j) {
        const float e = weight(detail::to_float(x[j]));
        if (!(e >= tau && e > 0.0f)) continue;
        local += sm::mass_of(e);
        if (local > r - start) {
          sh_chosen = j;
          break;
        }
      }
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    const int id = sh_chosen;
    if (kept == 0 || id < 0) {  // every logit −inf or NaN (id < 0 cannot happen with kept > 0)
      ids[blockIdx.x] = 0;
      logprobs[blockIdx.x] = NAN;
      filtered_logprobs[blockIdx.x] = NAN;
      return;
    }
    const float u = sm::tempered(detail::to_float(x[id]), inv_t);
    const double d = u == m ? 0.0 : static_cast<double>(u) - static_cast<double>(m);
    const double log_scale = 40.0 * 0.6931471805599453;
    ids[blockIdx.x] = id;
    logprobs[blockIdx.x] = static_cast<float>(d - (log(static_cast<double>(everything)) - log_scale));
    filtered_logprobs[blockIdx.x] = static_cast<float>(d - (log(static_cast<double>(kept)) - log_scale));
  }
}

}  // namespace

void sample_tokens(const void* logits, DType dtype, std::int64_t rows, std::int64_t v, float inv_temperature,
                   std::int64_t top_k, float top_p, float min_p, const std::uint64_t* uniforms, std::int64_t* ids,
                   float* logprobs, float* filtered_logprobs, void* stream) {
  constexpr const char* fn = "kernels::sample_tokens";
  KAIZEN_CHECK(rows >= 0 && rows <= 0x7fffffffLL, fn, ": expected 0 <= rows < 2^31, got ", rows);
  KAIZEN_CHECK(v >= 1 && v <= sm::kMaxVocab, fn, ": expected a vocabulary of 1 to 2^23 tokens, got ", v);
  KAIZEN_CHECK(inv_temperature > 0.0f, fn, ": expected 1 / temperature > 0, got ", inv_temperature);
  KAIZEN_CHECK(top_k >= 0, fn, ": expected top_k >= 0 (0 = off), got ", top_k);
  KAIZEN_CHECK(top_p > 0.0f && top_p <= 1.0f, fn, ": expected top_p in (0, 1], got ", top_p);
  KAIZEN_CHECK(min_p >= 0.0f && min_p < 1.0f, fn, ": expected min_p in [0, 1), got ", min_p);
  if (rows == 0) return;
  detail::dispatch_dtype(dtype, fn, [&](auto tag) {
    using T = decltype(tag);
    sample_kernel<T><<<static_cast<unsigned>(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(logits), static_cast<int>(v), inv_temperature, top_k, top_p, min_p, uniforms, ids,
        logprobs, filtered_logprobs);
  });
  check_last_launch(fn);
}

}  // namespace kaizen::kernels
