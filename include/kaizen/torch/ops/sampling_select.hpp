// kaizen/torch/ops/sampling_select.hpp - the selection and draw arithmetic of ops::sample_tokens, shared
// by the CPU path (ops.hpp) and the CUDA kernel (kernels/src/sampling.cu): host and device run the same
// functions on the same integers, so a host test of this header checks the kernel's decisions.
//
// Per row, with u_j = x_j / T (NaN read as −inf), m = max u, and e_j = 0 for u_j = −inf, else
// e_j = exp(max(u_j − m, −87)) ∈ (0, 1]:
//   mass    q_j = trunc(e_j · 2^40), an integer (fixed point): every sum below is an exact uint64 sum, the
//           same in any order (V ≤ 2^23 keeps Σ q < 2^63). A token with e_j < 2^-40 has q_j = 0.
//   top-k   keep e_j ≥ the k-th largest e (ties at that value all kept); k = 0 or k ≥ V: off
//   top-p   among the top-k survivors S (e_j > 0), with A(j) = Σ_{i ∈ S, e_i > e_j} q_i and
//           T = trunc(top_p · Σ_S q): keep j iff A(j) < T or A(j) = 0 (the most probable value always stays)
//   min-p   keep e_j ≥ min_p (e_max = 1; relative to the maximum, so renormalising does not change it)
//   in that order, as lm::LogitTransform (the trainer's transform) and Hugging Face's processors.
//   draw    R = ⌊Σ_kept q · w / 2^64⌋ for a 64-bit uniform integer w; the first kept j in vocabulary order
//           whose inclusive prefix Σ q exceeds R. As R < Σ_kept q exactly, some kept j with q_j > 0 always
//           claims it: never a token outside the kept set, never a masked one (q = 0, e = 0), no fallback.
//   empty   a row with no kept mass (every logit −inf or NaN) gives id 0 and NaN log-probs.
// Thresholds are found by a most-significant-digit radix select on the bit pattern of e (non-negative
// floats order like their bits), digits of 11, 11 and 10 bits: three histogram passes for top-k (counts)
// and three for top-p (counts and masses), no sort. Each pass narrows to the one bin that holds the
// threshold; the bin is chosen by the predicates below (topk_bin / topp_bin), which the kernel evaluates
// in parallel over a suffix scan of the histogram and the host walks in order: both give the same bin.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#if defined(__CUDACC__)
#define KAIZEN_HD __host__ __device__ __forceinline__
#else
#define KAIZEN_HD inline
#endif

namespace kaizen::ops::sampling {

inline constexpr int kPasses = 3;
inline constexpr int kMaxBins = 2048;
inline constexpr float kMassScale = 1099511627776.0f;  // 2^40
inline constexpr std::int64_t kMaxVocab = std::int64_t{1} << 23;
inline constexpr float kMinExponent = -87.0f;

KAIZEN_HD constexpr int digit_shift(int pass) { return pass == 0 ? 21 : pass == 1 ? 10 : 0; }
KAIZEN_HD constexpr int digit_bits(int pass) { return pass == 2 ? 10 : 11; }
KAIZEN_HD constexpr int digit_bins(int pass) { return 1 << digit_bits(pass); }

/// Bit pattern of e ≥ 0 (monotone: larger e, larger key).
KAIZEN_HD std::uint32_t key_of(float e) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(e);
#else
  std::uint32_t k;
  std::memcpy(&k, &e, sizeof(k));
  return k;
#endif
}
KAIZEN_HD float value_of(std::uint32_t k) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(k);
#else
  float e;
  std::memcpy(&e, &k, sizeof(e));
  return e;
#endif
}

/// u = x / T with NaN read as −inf (a NaN logit is never drawn).
KAIZEN_HD float tempered(float x, float inv_t) {
  const float u = x * inv_t;
  return u == u ? u : -INFINITY;
}

/// e = exp(max(u − m, −87)) for a finite-or-+inf u, 0 for u = −inf. `expf` is the caller's exp
/// (the CPU's exp_approx or CUDA's expf): the integers below are what host and device then share.
template <class Exp>
KAIZEN_HD float weight_of(float u, float m, Exp&& expf_) {
  if (u == -INFINITY) return 0.0f;
  const float d = u == m ? 0.0f : u - m;
  return expf_(d < kMinExponent ? kMinExponent : d);
}

KAIZEN_HD std::uint64_t mass_of(float e) { return static_cast<std::uint64_t>(e * kMassScale); }

/// Digit of `key` in `pass`, and whether its higher digits equal those of `prefix`.
KAIZEN_HD int digit_of(std::uint32_t key, int pass) {
  return static_cast<int>((key >> digit_shift(pass)) & static_cast<std::uint32_t>(digit_bins(pass) - 1));
}
KAIZEN_HD bool in_prefix(std::uint32_t key, std::uint32_t prefix, int pass) {
  const int high = digit_shift(pass) + digit_bits(pass);
  return high >= 32 || (key >> high) == (prefix >> high);
}

/// Top-k: is bin b (count c, with `above` elements in higher bins, those of earlier passes included)
/// the one holding the k-th largest value? Exactly one non-empty bin answers yes when above < k ≤ total.
KAIZEN_HD bool topk_bin(std::uint64_t above, std::uint64_t c, std::uint64_t k) { return above < k && k <= above + c; }

/// Top-p: may a non-empty bin whose higher-valued survivors hold mass `cum` contain kept tokens? The
/// answer is monotone in cum (yes, then no, going down the bins): the threshold's bin is the lowest
/// non-empty bin that answers yes.
KAIZEN_HD bool topp_bin(std::uint64_t cum, std::uint64_t target) { return cum < target || cum == 0; }

/// T = trunc(top_p · total): the top-p target in mass units.
KAIZEN_HD std::uint64_t topp_target(std::uint64_t total, double top_p) {
  return static_cast<std::uint64_t>(static_cast<double>(total) * top_p);
}

/// R = ⌊total · w / 2^64⌋ < total (total > 0).
KAIZEN_HD std::uint64_t draw_point(std::uint64_t total, std::uint64_t w) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(total, w);
#else
  const std::uint64_t a_lo = total & 0xffffffffu, a_hi = total >> 32;
  const std::uint64_t b_lo = w & 0xffffffffu, b_hi = w >> 32;
  const std::uint64_t p0 = a_lo * b_lo, p1 = a_lo * b_hi, p2 = a_hi * b_lo, p3 = a_hi * b_hi;
  const std::uint64_t mid = (p0 >> 32) + (p1 & 0xffffffffu) + (p2 & 0xffffffffu);
  return p3 + (p1 >> 32) + (p2 >> 32) + (mid >> 32);
#endif
}

/// The 64-bit uniform integer for a double uniform in [0, 1) (53 significant bits kept exactly).
inline std::uint64_t uniform_bits(double uniform) {
  if (!(uniform > 0.0)) return 0;
  if (uniform >= 1.0) return ~std::uint64_t{0};
  return static_cast<std::uint64_t>(std::ldexp(uniform, 64));
}

/// Host versions of the selection over an array of weights e[0..v): the kernel does the same passes
/// with shared-memory histograms. Returns the kept threshold on e (keep e ≥ tau and e > 0).
struct HostSelect {
  std::uint32_t counts[kMaxBins];
  std::uint64_t masses[kMaxBins];

  /// k-th largest e (exact, ties included), 0 < k ≤ v.
  float kth_largest(const float* e, std::int64_t v, std::int64_t k) {
    std::uint32_t prefix = 0;
    std::uint64_t above = 0;
    for (int pass = 0; pass < kPasses; ++pass) {
      const int bins = digit_bins(pass);
      for (int b = 0; b < bins; ++b) counts[b] = 0;
      for (std::int64_t j = 0; j < v; ++j) {
        const std::uint32_t key = key_of(e[j]);
        if (in_prefix(key, prefix, pass)) ++counts[digit_of(key, pass)];
      }
      std::uint64_t cum = above;
      for (int b = bins - 1; b >= 0; --b) {
        if (topk_bin(cum, counts[b], static_cast<std::uint64_t>(k))) {
          prefix |= static_cast<std::uint32_t>(b) << digit_shift(pass);
          above = cum;
          break;
        }
        cum += counts[b];
      }
    }
    return value_of(prefix);
  }

  /// Top-p threshold among the survivors e ≥ tau, e > 0 (at least one survivor).
  float top_p_threshold(const float* e, std::int64_t v, float tau, double top_p) {
    std::uint32_t prefix = 0;
    std::uint64_t above = 0;
    std::uint64_t target = 0;
    for (int pass = 0; pass < kPasses; ++pass) {
      const int bins = digit_bins(pass);
      for (int b = 0; b < bins; ++b) {
        counts[b] = 0;
        masses[b] = 0;
      }
      for (std::int64_t j = 0; j < v; ++j) {
        if (!(e[j] >= tau && e[j] > 0.0f)) continue;
        const std::uint32_t key = key_of(e[j]);
        if (!in_prefix(key, prefix, pass)) continue;
        ++counts[digit_of(key, pass)];
        masses[digit_of(key, pass)] += mass_of(e[j]);
      }
      if (pass == 0) {
        std::uint64_t total = 0;
        for (int b = 0; b < bins; ++b) total += masses[b];
        target = topp_target(total, top_p);
      }
      std::uint64_t cum = above;
      int chosen = -1;
      std::uint64_t chosen_cum = 0;
      for (int b = bins - 1; b >= 0; --b) {
        if (counts[b] == 0) continue;
        if (!topp_bin(cum, target)) break;
        chosen = b;
        chosen_cum = cum;
        cum += masses[b];
      }
      if (chosen < 0) return value_of(prefix);  // unreachable with a survivor in the prefix
      prefix |= static_cast<std::uint32_t>(chosen) << digit_shift(pass);
      above = chosen_cum;
    }
    return value_of(prefix);
  }
};

/// The kept threshold for top-k, top-p and min-p in that order (keep e ≥ tau and e > 0), on the host:
/// top-p's mass is over the top-k survivors (as lm::LogitTransform, the trainer's transform, defines it),
/// and min-p, a threshold relative to the maximum, is the same before or after renormalising.
inline float host_threshold(const float* e, std::int64_t v, std::int64_t top_k, double top_p, float min_p,
                            HostSelect& sel) {
  float tau = 0.0f;
  if (top_k > 0 && top_k < v) tau = sel.kth_largest(e, v, top_k);
  if (top_p < 1.0) {
    const float p = sel.top_p_threshold(e, v, tau, top_p);
    tau = p > tau ? p : tau;
  }
  return min_p > tau ? min_p : tau;
}

/// The draw over kept tokens in vocabulary order: {id, kept mass}; id −1 when the kept mass is 0.
inline std::pair<std::int64_t, std::uint64_t> host_draw(const float* e, std::int64_t v, float tau, std::uint64_t w) {
  std::uint64_t total = 0;
  for (std::int64_t j = 0; j < v; ++j)
    if (e[j] >= tau && e[j] > 0.0f) total += mass_of(e[j]);
  if (total == 0) return {-1, 0};
  const std::uint64_t r = draw_point(total, w);
  std::uint64_t acc = 0;
  for (std::int64_t j = 0; j < v; ++j) {
    if (!(e[j] >= tau && e[j] > 0.0f)) continue;
    acc += mass_of(e[j]);
    if (acc > r) return {j, total};
  }
  return {-1, total};  // unreachable: acc reaches total > r
}

}  // namespace kaizen::ops::sampling
