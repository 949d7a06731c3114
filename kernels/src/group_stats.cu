// kernels/src/group_stats.cu - one warp per group, float64 two-pass mean and spread.
#include <kaizen/kernels/group_stats.hpp>
#include <kaizen/kernels/runtime.hpp>

#include "cuda_check.cuh"

namespace kaizen::kernels {

namespace {

constexpr int kWarpsPerBlock = 8;

__device__ __forceinline__ double warp_sum(double x) {
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

__global__ void group_stats_kernel(const float* __restrict__ values, const std::int64_t* __restrict__ offsets,
                                   std::int64_t groups, bool unbiased, float epsilon, bool scale,
                                   float* __restrict__ mean, float* __restrict__ stdev,
                                   float* __restrict__ advantages) {
  const std::int64_t g = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (g >= groups) return;
  const int lane = threadIdx.x % 32;
  const std::int64_t begin = offsets[g];
  const std::int64_t end = offsets[g + 1];
  const double n = static_cast<double>(end - begin);
  double sum = 0.0;
  for (std::int64_t i = begin + lane; i < end; i += 32) sum += values[i];
  const double mu = warp_sum(sum) / n;
  double sq = 0.0;
  for (std::int64_t i = begin + lane; i < end; i += 32) {
    const double d = values[i] - mu;
    sq += d * d;
  }
  const double sigma = sqrt(warp_sum(sq) / (unbiased ? n - 1.0 : n));
  if (lane == 0) {
    mean[g] = static_cast<float>(mu);
    stdev[g] = static_cast<float>(sigma);
  }
  if (advantages != nullptr) {
    const double denom = scale ? sigma + epsilon : 1.0;
    for (std::int64_t i = begin + lane; i < end; i += 32) advantages[i] = static_cast<float>((values[i] - mu) / denom);
  }
}

}  // namespace

void group_stats(const float* values, const std::int64_t* offsets, std::int64_t groups, bool unbiased, float epsilon,
                 bool scale, float* mean, float* std, float* advantages, void* stream) {
  constexpr const char* fn = "kernels::group_stats";
  KAIZEN_CHECK(groups >= 0, fn, ": expected groups >= 0, got ", groups);
  KAIZEN_CHECK(epsilon >= 0.0f, fn, ": expected epsilon >= 0, got ", epsilon);
  if (groups == 0) return;
  const auto blocks = static_cast<unsigned>((groups + kWarpsPerBlock - 1) / kWarpsPerBlock);
  group_stats_kernel<<<blocks, kWarpsPerBlock * 32, 0, static_cast<cudaStream_t>(stream)>>>(
      values, offsets, groups, unbiased, epsilon, scale, mean, std, advantages);
  check_last_launch(fn);
}

}  // namespace kaizen::kernels
